package sshkeep

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"orrery/remote"
)

// Link states reported by Keeper.Link.
const (
	LinkConnected = "connected" // SSH up, the forward relayed
	LinkCut       = "cut"       // SSH down, redialling
	LinkLost      = "lost"      // gave up after GiveUp, or stopped or closed
)

// Config is what a Keeper keeps, and how.
type Config struct {
	// Socket is the Unix socket on the machine (an absolute path of at
	// most remote.MaxSocketPath bytes) whose connections are relayed to
	// Target (HOST:PORT on this machine).
	Socket, Target string

	// Dial connects to the machine.
	Dial func(ctx context.Context) (*remote.Client, error)
	// Setup readies a new connection before the forward (again: not
	// the first); an error makes the connection useless.
	Setup func(ctx context.Context, c *remote.Client, again bool) error
	// Check makes sure the process runs, once the forward is up: at
	// Start (launch true; its error fails Start), on each connection
	// after a drop, and every Probe. An error after Start is said (at
	// most every StatusEvery) unless the connection failed, and the
	// next check tries again. An error made by Broken is the
	// connection's own: it is not said, and the keeper redials with
	// it as the cause.
	Check func(ctx context.Context, c *remote.Client, launch bool) error
	// Stop stops the process.
	Stop func(ctx context.Context, c *remote.Client) error

	// Say gives the user a line; it must not block. Log gets every line
	// and more; nil: nothing.
	Say func(line string)
	Log *slog.Logger
	// GiveUpNote ends the line said on giving up: what becomes of the
	// process ("the head stops by itself when its lease runs out").
	GiveUpNote string

	// Timeout bounds each SSH step (a keepalive, a relayed dial);
	// CommandTimeout each command (the forward's). KeepAlive and Probe
	// are the times between keepalives and between checks; Backoff the
	// first wait before redialling, doubled up to MaxBackoff; GiveUp how
	// long it redials; StatusEvery the shortest time between two lines
	// of the same news. All are required.
	Timeout, CommandTimeout, KeepAlive, Probe, Backoff, MaxBackoff, GiveUp, StatusEvery time.Duration
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Keeper keeps a process joined over one SSH connection at a time.
type Keeper struct {
	cfg     Config
	link    atomic.Int32
	stopReq chan stopRequest
	cancel  context.CancelFunc
	done    chan struct{}

	last map[string]time.Time // owned by the supervisor: when news of each kind was said
}

type stopRequest struct {
	ctx   context.Context
	reply chan error
}

const (
	linkConnected int32 = iota
	linkCut
	linkLost
)

// Start serves c (Setup, the forward, Check) and then keeps the process
// with its own goroutine; ctx bounds Start only. On an error c is
// closed.
func Start(ctx context.Context, cfg Config, c *remote.Client) (*Keeper, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Say == nil {
		cfg.Say = func(string) {}
	}
	k := &Keeper{cfg: cfg, stopReq: make(chan stopRequest), done: make(chan struct{})}
	s, err := k.serve(ctx, c, false)
	if err != nil {
		return nil, err
	}
	if err := cfg.Check(ctx, c, true); err != nil {
		s.close()
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k.cancel = cancel
	k.link.Store(linkConnected)
	go k.supervise(sctx, s)
	return k, nil
}

// Link is LinkConnected, LinkCut or LinkLost.
func (k *Keeper) Link() string {
	switch k.link.Load() {
	case linkConnected:
		return LinkConnected
	case linkCut:
		return LinkCut
	}
	return LinkLost
}

// Done is closed when the keeper has ended: it gave up, or Stop or
// Close ended it.
func (k *Keeper) Done() <-chan struct{} { return k.done }

// Stop stops the process (the Stop hook), then closes the forward and
// the connection and ends the keeper. With the connection cut, or after
// Close, it dials once more. ctx bounds it.
func (k *Keeper) Stop(ctx context.Context) error {
	req := stopRequest{ctx: ctx, reply: make(chan error, 1)}
	select {
	case k.stopReq <- req:
		err := <-req.reply
		<-k.done
		return err
	case <-k.done:
		return k.dialAndStop(ctx)
	}
}

// Close ends the keeper and drops the connection, leaving the process
// running.
func (k *Keeper) Close() {
	k.cancel()
	<-k.done
}

// say gives the user a line, and logs it.
func (k *Keeper) say(line string) {
	k.cfg.Log.Info(line)
	k.cfg.Say(line)
}

// sayEvery says news of a kind at most once per StatusEvery; it is
// logged every time.
func (k *Keeper) sayEvery(kind, line string) {
	k.cfg.Log.Info(line)
	now := k.cfg.Now()
	if k.last == nil {
		k.last = map[string]time.Time{}
	}
	if t, ok := k.last[kind]; ok && now.Sub(t) < k.cfg.StatusEvery {
		return
	}
	k.last[kind] = now
	k.cfg.Say(line)
}

// forget lets the next news of kind through at once.
func (k *Keeper) forget(kind string) { delete(k.last, kind) }

// conn is one SSH connection serving the process: the forwarded socket
// relayed to the target.
type conn struct {
	c         *remote.Client
	stopRelay context.CancelFunc
	relayDone chan struct{}
	relayErr  error
	ended     chan struct{} // the SSH connection ended
	endErr    error
}

// serve sets a connection up and relays the forwarded socket; on an
// error the connection is closed.
func (k *Keeper) serve(ctx context.Context, c *remote.Client, again bool) (*conn, error) {
	if err := k.cfg.Setup(ctx, c, again); err != nil {
		c.Close()
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, k.cfg.CommandTimeout+k.cfg.Timeout)
	ln, err := c.ListenUnix(sctx, k.cfg.Socket)
	cancel()
	if err != nil {
		c.Close()
		return nil, err
	}
	rctx, stopRelay := context.WithCancel(context.Background())
	s := &conn{c: c, stopRelay: stopRelay, relayDone: make(chan struct{}), ended: make(chan struct{})}
	timeout, target := k.cfg.Timeout, k.cfg.Target
	dial := func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		return d.DialContext(ctx, "tcp", target)
	}
	go func() {
		err := remote.Relay(rctx, ln, dial)
		if err == nil {
			err = errors.New("the forward ended")
		}
		s.relayErr = err
		close(s.relayDone)
	}()
	go func() {
		err := c.Wait()
		if err == nil {
			err = errors.New("closed")
		}
		s.endErr = fmt.Errorf("the SSH connection ended: %v", err)
		close(s.ended)
	}()
	return s, nil
}

// close ends the relay and the connection and waits for both.
func (s *conn) close() {
	s.stopRelay()
	s.c.Close()
	<-s.relayDone
	<-s.ended
}

// cut reports whether s's connection has ended.
func (s *conn) cut() bool {
	select {
	case <-s.ended:
		return true
	default:
		return false
	}
}

// supervise keeps the process until Stop, Close, or GiveUp without a
// connection.
func (k *Keeper) supervise(ctx context.Context, s *conn) {
	defer close(k.done)
	defer k.link.Store(linkLost)
	for {
		req, cause := k.watch(ctx, s)
		if req != nil {
			err := k.cfg.Stop(req.ctx, s.c)
			if err != nil && req.ctx.Err() == nil && s.cut() {
				// The connection failed under the command: once more,
				// on a connection of its own.
				s.close()
				req.reply <- k.dialAndStop(req.ctx)
				return
			}
			s.close()
			req.reply <- err
			return
		}
		s.close()
		if ctx.Err() != nil {
			return
		}
		if s = k.reconnect(ctx, cause); s == nil {
			return
		}
	}
}

// watch serves a connection until it fails, ctx ends or Stop asks.
func (k *Keeper) watch(ctx context.Context, s *conn) (*stopRequest, error) {
	ka := time.NewTicker(k.cfg.KeepAlive)
	defer ka.Stop()
	probe := time.NewTicker(k.cfg.Probe)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case req := <-k.stopReq:
			return &req, nil
		case <-s.ended:
			return nil, s.endErr
		case <-s.relayDone:
			// The relay ends with the connection: say why the
			// connection ended, when it did.
			t := time.NewTimer(k.cfg.Timeout)
			select {
			case <-s.ended:
				t.Stop()
				return nil, s.endErr
			case <-t.C:
				return nil, s.relayErr
			}
		case <-ka.C:
			if err := s.c.KeepAlive(ctx); err != nil {
				return nil, err
			}
		case <-probe.C:
			if err := k.cfg.Check(ctx, s.c, false); err != nil {
				if b, ok := errors.AsType[*brokenError](err); ok {
					return nil, b.err
				}
				if kaErr := s.c.KeepAlive(ctx); kaErr != nil {
					return nil, kaErr
				}
				k.sayEvery("check", err.Error())
				continue
			}
			k.forget("check")
		}
	}
}

// reconnect redials with backoff until a connection serves the process
// again (returned), GiveUp passes (nil, link lost), ctx ends or Stop
// asks (nil).
func (k *Keeper) reconnect(ctx context.Context, cause error) *conn {
	k.link.Store(linkCut)
	since := k.cfg.Now()
	k.forget("cut")
	k.sayEvery("cut", fmt.Sprintf("SSH connection lost (%v); reconnecting", cause))
	for n := 0; ; n++ {
		left := k.cfg.GiveUp - k.cfg.Now().Sub(since)
		if left <= 0 {
			k.link.Store(linkLost)
			line := fmt.Sprintf("gave up after %v without an SSH connection (%v)", k.cfg.GiveUp, cause)
			if k.cfg.GiveUpNote != "" {
				line += "; " + k.cfg.GiveUpNote
			}
			k.say(line)
			return nil
		}
		t := time.NewTimer(min(Backoff(n, k.cfg.Backoff, k.cfg.MaxBackoff), left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case req := <-k.stopReq:
			t.Stop()
			req.reply <- k.dialAndStop(req.ctx)
			return nil
		case <-t.C:
		}
		if k.cfg.Now().Sub(since) >= k.cfg.GiveUp {
			continue
		}
		s, err := k.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			cause = err
			k.sayEvery("cut", fmt.Sprintf("still reconnecting after %v: %s", k.cfg.Now().Sub(since).Round(time.Second), OneLine(err.Error())))
			continue
		}
		k.link.Store(linkConnected)
		k.say(fmt.Sprintf("SSH connection back after %v", k.cfg.Now().Sub(since).Round(time.Millisecond)))
		return s
	}
}

// connect dials and serves a new connection, and checks the process (a
// failed check is said; the connection still serves).
func (k *Keeper) connect(ctx context.Context) (*conn, error) {
	c, err := k.cfg.Dial(ctx)
	if err != nil {
		return nil, err
	}
	s, err := k.serve(ctx, c, true)
	if err != nil {
		return nil, err
	}
	if err := k.cfg.Check(ctx, c, false); err != nil {
		if b, ok := errors.AsType[*brokenError](err); ok {
			s.close()
			return nil, b.err
		}
		k.sayEvery("check", err.Error())
	}
	return s, nil
}

// Broken marks an error of a Check hook as the connection's own (the
// hook found it failing, by a keepalive of its own, say): the keeper
// drops the connection and redials, with err as the cause.
func Broken(err error) error { return &brokenError{err} }

// brokenError is an error made by Broken.
type brokenError struct{ err error }

func (b *brokenError) Error() string { return b.err.Error() }
func (b *brokenError) Unwrap() error { return b.err }

// dialAndStop stops the process over a connection of its own.
func (k *Keeper) dialAndStop(ctx context.Context) error {
	c, err := k.cfg.Dial(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	return k.cfg.Stop(ctx, c)
}

// Backoff is the wait before redial attempt n (0 the first): base
// doubled n times, at most max.
func Backoff(n int, base, max time.Duration) time.Duration {
	d := base
	for range n {
		if d >= max/2 {
			return max
		}
		d *= 2
	}
	return min(d, max)
}

// RemoteHome is the remote user's $HOME, which must be an absolute path.
func RemoteHome(ctx context.Context, c *remote.Client) (string, error) {
	out, errOut, exit, err := c.Run(ctx, `printf '%s\n' "$HOME"`, nil)
	if err != nil {
		return "", err
	}
	home := strings.TrimSpace(string(out))
	if exit != 0 || !path.IsAbs(home) {
		return "", fmt.Errorf("the remote user's $HOME is %q (%s), not an absolute path", home, Failure(errOut, exit))
	}
	return home, nil
}

// FileSHA256 is the hex SHA-256 of a file: the build of a binary.
func FileSHA256(file string) (string, error) {
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %v", file, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Failure is a failed command's standard error as one line (at most
// 500 bytes), or its exit status.
func Failure(stderr []byte, exit int) string {
	if s := OneLine(string(stderr)); s != "" {
		return Cut(s, 500)
	}
	return fmt.Sprintf("exit status %d", exit)
}

// OneLine folds every run of white space (newlines too) into a space.
func OneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Cut shortens s to at most n bytes (and an ellipsis).
func Cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// ShellQuote quotes s for a POSIX shell.
func ShellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// LogTail is "; NAME: LINE | LINE ..." of the last n lines of the log
// file dir/NAME on c's machine, each on one line and cut to 300 bytes,
// or "" when there is none: what a failed start quotes of its log.
func LogTail(ctx context.Context, c *remote.Client, dir, name string, n int) string {
	out, _, exit, err := c.Run(ctx, fmt.Sprintf("tail -n %d -- %s 2>/dev/null", n, ShellQuote(path.Join(dir, name))), nil)
	if err != nil || exit != 0 {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = OneLine(l); l != "" {
			lines = append(lines, Cut(l, 300))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "; " + name + ": " + strings.Join(lines, " | ")
}
