package headctl

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"orrery/remote"
)

// Time limits of the remote commands that take longer than
// Spec.CommandTimeout.
const (
	// CopyTimeout bounds copying the binary to the head machine.
	CopyTimeout = 10 * time.Minute
	// StopWait is how long `orrery head stop` waits for the head to
	// exit by default; the command is given that and the command
	// timeout.
	StopWait = 30 * time.Second
)

// Error is a failure of one cluster's head. Its message is one line
// that starts with "cluster NAME: ".
type Error struct {
	Cluster string
	Err     error
}

// Error returns "cluster NAME: " and the failure, on one line.
func (e *Error) Error() string { return "cluster " + e.Cluster + ": " + oneLine(e.Err.Error()) }

// Unwrap returns the failure (remote's errors, such as
// remote.ErrUnknownHost and remote.ErrAuth, stay visible to errors.Is).
func (e *Error) Unwrap() error { return e.Err }

// Head is a cluster's head started (or found running) by Launch, and
// the supervisor that keeps it.
type Head struct {
	cfg   *config
	local string // the binary run on the head machine, on this machine
	build string // its SHA-256, hex
	bin   string // its path on the head machine
	dir   string // the head's directory there
	sock  string // the forwarded socket, dir/root.sock

	link    atomic.Int32
	stopReq chan stopRequest
	cancel  context.CancelFunc
	done    chan struct{}

	// Owned by the supervisor (by Launch before it starts).
	now func() time.Time
	lim limiter
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

// Launch connects to the cluster's head machine, puts the right orrery
// binary there, keeps or replaces a head already running in the
// experiment's directory, forwards DIR/root.sock to Spec.RootAddr and
// starts the head when none of its build runs (see the package
// comment). It returns once the head runs, with its supervisor
// started; ctx bounds the launch only. Errors are *Error.
func Launch(ctx context.Context, spec Spec) (*Head, error) {
	cfg, err := spec.config()
	if err != nil {
		return nil, err
	}
	h := &Head{cfg: cfg, stopReq: make(chan stopRequest), done: make(chan struct{}), now: time.Now,
		lim: limiter{every: cfg.StatusEvery}}
	c, err := remote.Dial(ctx, cfg.ep, cfg.opts)
	if err != nil {
		return nil, h.err(err)
	}
	if err := h.prepare(ctx, c); err != nil {
		c.Close()
		return nil, h.err(err)
	}
	s, startErr, err := h.setup(ctx, c, false)
	if err == nil && startErr != nil {
		s.close()
		err = startErr
	}
	if err != nil {
		return nil, h.err(err)
	}
	sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	h.cancel = cancel
	h.link.Store(linkConnected)
	go h.supervise(sctx, s)
	return h, nil
}

// Link is the state of the SSH connection to the head's machine:
// "connected", "cut" (down, redialling) or "lost" (the supervisor gave
// up, or the head was stopped or closed).
func (h *Head) Link() string {
	switch h.link.Load() {
	case linkConnected:
		return LinkConnected
	case linkCut:
		return LinkCut
	}
	return LinkLost
}

// Dir is the head's directory on its machine.
func (h *Head) Dir() string { return h.dir }

// Build is the SHA-256 (hex) of the orrery binary run on the head's
// machine.
func (h *Head) Build() string { return h.build }

// Done is closed when the supervisor has ended: it gave up (Link
// "lost"), or Stop or Close ended it.
func (h *Head) Done() <-chan struct{} { return h.done }

// Stop stops the head (`orrery head stop`: its nodes and jobs are
// stopped, its results kept on its disk), then closes the forward and
// the SSH connection and ends the supervisor. With the connection cut,
// or after Close, it dials once more to stop the head. ctx bounds it.
func (h *Head) Stop(ctx context.Context) error {
	req := stopRequest{ctx: ctx, reply: make(chan error, 1)}
	select {
	case h.stopReq <- req:
		err := <-req.reply
		<-h.done
		return err
	case <-h.done:
		return h.dialAndStop(ctx)
	}
}

// Close drops the SSH connection and the forward and ends the
// supervisor, leaving the head running: it goes on within its lease and
// a root that launches it again finds it.
func (h *Head) Close() error {
	h.cancel()
	<-h.done
	return nil
}

func (h *Head) err(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Cluster: h.cfg.name, Err: err}
}

// say gives the user a line about the cluster.
func (h *Head) say(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	h.cfg.Log.Info(line)
	h.cfg.Status(h.cfg.name, line)
}

// sayEvery says news of a kind at most once per StatusEvery; it is
// logged every time.
func (h *Head) sayEvery(kind, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	h.cfg.Log.Info(line)
	if h.lim.allow(kind, h.now()) {
		h.cfg.Status(h.cfg.name, line)
	}
}

// step is ctx bounded by d.
func step(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// prepare learns the machine's platform and the remote user's home,
// and picks the binary: once, at launch.
func (h *Head) prepare(ctx context.Context, c *remote.Client) error {
	sctx, cancel := step(ctx, h.cfg.CommandTimeout)
	p, err := c.Platform(sctx)
	cancel()
	if err != nil {
		return err
	}
	if h.local, err = h.cfg.chooseBinary(p); err != nil {
		return err
	}
	if h.build, err = fileSHA256(h.local); err != nil {
		return fmt.Errorf("binary: %v", err)
	}
	base := h.cfg.RemoteDir
	if base == "" {
		sctx, cancel := step(ctx, h.cfg.CommandTimeout)
		out, errOut, exit, err := c.Run(sctx, `printf '%s\n' "$HOME"`, nil)
		cancel()
		if err != nil {
			return err
		}
		home := strings.TrimSpace(string(out))
		if exit != 0 || !path.IsAbs(home) {
			return fmt.Errorf("the remote user's $HOME is %q (%s), not an absolute path", home, failure(errOut, exit))
		}
		base = path.Join(home, ".orrery")
	}
	h.bin = path.Join(base, binDir, "orrery-"+h.build[:16])
	h.dir = path.Join(base, headsDir, h.cfg.ID)
	h.sock = path.Join(h.dir, sockName)
	if len(h.sock) > remote.MaxSocketPath {
		return fmt.Errorf("the head's socket %s is longer than a socket path may be (%d bytes, at most %d): use a shorter remote directory", h.sock, len(h.sock), remote.MaxSocketPath)
	}
	return nil
}

// command is the shell command that runs `orrery head VERB --dir DIR`.
func (h *Head) command(verb string) string {
	return shellQuote(h.bin) + " head " + verb + " --dir " + shellQuote(h.dir)
}

// setup makes a connection serve the head: the binary in place, the
// directory made, the head probed (and replaced if of another build
// with no job), the forward relayed, and the head started when none
// runs. err is a failure that leaves the connection useless (it is
// closed); startErr a head that failed to start on a connection that
// serves (s is returned open).
func (h *Head) setup(ctx context.Context, c *remote.Client, again bool) (s *session, startErr, err error) {
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	cctx, cancel := step(ctx, CopyTimeout)
	copied, err := c.CopyFile(cctx, h.local, h.bin, 0o700)
	cancel()
	if err != nil {
		return nil, nil, err
	}
	if copied {
		h.say("copied orrery (build %.12s) to %s", h.build, h.bin)
	}
	sctx, cancel := step(ctx, h.cfg.CommandTimeout)
	defer cancel()
	_, errOut, exit, err := c.Run(sctx, "umask 077 && mkdir -p -- "+shellQuote(h.dir)+" && chmod 700 -- "+shellQuote(h.dir), nil)
	if err != nil {
		return nil, nil, err
	}
	if exit != 0 {
		return nil, nil, fmt.Errorf("make %s: %s", h.dir, failure(errOut, exit))
	}
	p, err := h.probe(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	act := decide(p, h.build)
	switch act {
	case actKeep:
		if !again {
			h.say("a head of this build already runs in %s (pid %d): kept", h.dir, p.PID)
		}
	case actKeepOther:
		h.say("a head of another build (%.12s) runs in %s (pid %d) holding %d jobs: kept; it is replaced by this build (%.12s) only when it holds none", p.Build, h.dir, p.PID, p.Jobs, h.build)
	case actReplace:
		if err := h.stop(ctx, c); err != nil {
			return nil, nil, fmt.Errorf("replace the head of another build: %w", err)
		}
		h.say("stopped a head of another build (%.12s, pid %d, holding no job) to start this build (%.12s)", p.Build, p.PID, h.build)
	}
	s, err = h.forward(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	if act == actStart || act == actReplace {
		pid, err := h.start(ctx, c)
		switch {
		case err != nil:
			startErr = err
		case again:
			h.say("the head was not running; started it again in %s (pid %d)", h.dir, pid)
		default:
			h.say("head started in %s (pid %d)", h.dir, pid)
		}
	}
	return s, startErr, nil
}

// Actions on what a probe found.
type action int

const (
	actStart     action = iota // no head runs: start one
	actKeep                    // a head of this build runs
	actKeepOther               // a head of another build runs and holds jobs
	actReplace                 // a head of another build runs and holds no job
)

// decide says what to do with the head a probe found, for this build.
func decide(p ProbeReport, build string) action {
	switch {
	case !p.Running:
		return actStart
	case p.Build == build:
		return actKeep
	case p.Jobs > 0:
		return actKeepOther
	}
	return actReplace
}

// probe runs `orrery head probe`.
func (h *Head) probe(ctx context.Context, c *remote.Client) (ProbeReport, error) {
	ctx, cancel := step(ctx, h.cfg.CommandTimeout)
	defer cancel()
	out, errOut, exit, err := c.Run(ctx, h.command("probe"), nil)
	if err != nil {
		return ProbeReport{}, err
	}
	if exit != 0 {
		return ProbeReport{}, fmt.Errorf("head probe in %s: %s", h.dir, failure(errOut, exit))
	}
	return ParseProbe(out)
}

// start runs `orrery head start` with the start input (the token) on
// its standard input, and returns the head's pid.
func (h *Head) start(ctx context.Context, c *remote.Client) (int, error) {
	sctx, cancel := step(ctx, h.cfg.CommandTimeout)
	defer cancel()
	out, errOut, exit, err := c.Run(sctx, h.command("start"), h.cfg.startInput(h.sock))
	pid, ok := parseStarted(out)
	if err == nil && exit == 0 && ok {
		h.cfg.Log.Info("head start", "said", strings.TrimSpace(string(out)))
		return pid, nil
	}
	why := ""
	switch {
	case err != nil:
		why = err.Error()
	case exit != 0:
		why = failure(errOut, exit)
	default:
		why = fmt.Sprintf("it printed %q, not \"started PID\"", cut(strings.TrimSpace(string(out)), 200))
	}
	return 0, fmt.Errorf("head failed to start in %s: %s%s", h.dir, why, h.logTail(ctx, c))
}

// parseStarted reads "started PID" or "running PID".
func parseStarted(out []byte) (int, bool) {
	f := strings.Fields(string(out))
	if len(f) != 2 || (f[0] != "started" && f[0] != "running") {
		return 0, false
	}
	pid, err := strconv.Atoi(f[1])
	return pid, err == nil && pid > 0
}

// logTailLines is how many of head.log's last lines a failed start
// quotes.
const logTailLines = 5

// logTail is "; head.log: LINE | LINE ..." of the head's log, or "".
func (h *Head) logTail(ctx context.Context, c *remote.Client) string {
	ctx, cancel := step(ctx, h.cfg.CommandTimeout)
	defer cancel()
	out, _, exit, err := c.Run(ctx, fmt.Sprintf("tail -n %d -- %s 2>/dev/null", logTailLines, shellQuote(path.Join(h.dir, logName))), nil)
	if err != nil || exit != 0 {
		return ""
	}
	var lines []string
	for _, l := range strings.Split(string(out), "\n") {
		if l = oneLine(l); l != "" {
			lines = append(lines, cut(l, 300))
		}
	}
	if len(lines) == 0 {
		return ""
	}
	return "; " + logName + ": " + strings.Join(lines, " | ")
}

// stop runs `orrery head stop`.
func (h *Head) stop(ctx context.Context, c *remote.Client) error {
	ctx, cancel := step(ctx, StopWait+h.cfg.CommandTimeout)
	defer cancel()
	out, errOut, exit, err := c.Run(ctx, h.command("stop"), nil)
	if err != nil {
		return err
	}
	if exit != 0 {
		return fmt.Errorf("head stop in %s: %s", h.dir, failure(errOut, exit))
	}
	h.cfg.Log.Info("head stop", "said", strings.TrimSpace(string(out)))
	return nil
}

// session is one SSH connection serving the head: the forwarded socket
// relayed to the root's port.
type session struct {
	c         *remote.Client
	cancel    context.CancelFunc // ends the relay
	relayDone chan struct{}
	relayErr  error
	ended     chan struct{} // the SSH connection ended
	endErr    error
}

// forward asks for DIR/root.sock and relays its connections to the
// root's port.
func (h *Head) forward(ctx context.Context, c *remote.Client) (*session, error) {
	sctx, cancel := step(ctx, h.cfg.CommandTimeout+h.cfg.Timeout)
	defer cancel()
	ln, err := c.ListenUnix(sctx, h.sock)
	if err != nil {
		return nil, err
	}
	rctx, rcancel := context.WithCancel(context.Background())
	s := &session{c: c, cancel: rcancel, relayDone: make(chan struct{}), ended: make(chan struct{})}
	timeout := h.cfg.Timeout
	addr := h.cfg.RootAddr
	dial := func(ctx context.Context) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		return d.DialContext(ctx, "tcp", addr)
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
func (s *session) close() {
	s.cancel()
	s.c.Close()
	<-s.relayDone
	<-s.ended
}

// supervise keeps the head while the root runs: it owns the session.
func (h *Head) supervise(ctx context.Context, s *session) {
	defer close(h.done)
	defer h.link.Store(linkLost)
	for {
		req, cause := h.watch(ctx, s)
		if req != nil {
			err := h.stop(req.ctx, s.c)
			lost := false
			select {
			case <-s.ended:
				lost = true
			default:
			}
			s.close()
			switch {
			case err != nil && lost && req.ctx.Err() == nil:
				// The connection failed under the command: once
				// more on a connection of its own.
				err = h.dialAndStop(req.ctx)
			case err != nil:
				err = h.err(fmt.Errorf("stop the head: %w", err))
			}
			req.reply <- err
			return
		}
		s.close()
		if ctx.Err() != nil {
			return
		}
		if s = h.reconnect(ctx, cause); s == nil {
			return
		}
	}
}

// watch serves a connection until it fails, ctx ends or Stop asks:
// keepalives, and probes that start the head again when it died.
func (h *Head) watch(ctx context.Context, s *session) (*stopRequest, error) {
	ka := time.NewTicker(h.cfg.KeepAlive)
	defer ka.Stop()
	probe := time.NewTicker(h.cfg.Probe)
	defer probe.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case req := <-h.stopReq:
			return &req, nil
		case <-s.ended:
			return nil, s.endErr
		case <-s.relayDone:
			// The relay ends when the connection does: say why the
			// connection ended, when it did.
			t := time.NewTimer(h.cfg.Timeout)
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
			if err := h.ensure(ctx, s.c); err != nil {
				return nil, err
			}
		}
	}
}

// ensure starts the head again when a probe finds it not running. A
// failure that is the connection's is returned (watch then redials);
// others are said.
func (h *Head) ensure(ctx context.Context, c *remote.Client) error {
	p, err := h.probe(ctx, c)
	if err != nil {
		if kaErr := c.KeepAlive(ctx); kaErr != nil {
			return kaErr
		}
		h.sayEvery("probe", "cannot probe the head: %v", err)
		return nil
	}
	h.lim.forget("probe")
	if p.Running {
		h.lim.forget("restart")
		return nil
	}
	h.cfg.Log.Warn("the head is not running: starting it again", "dir", h.dir)
	pid, err := h.start(ctx, c)
	if err != nil {
		if kaErr := c.KeepAlive(ctx); kaErr != nil {
			return kaErr
		}
		h.sayEvery("restart", "the head is not running, and starting it again failed: %v", err)
		return nil
	}
	h.lim.forget("restart")
	h.say("the head had stopped; started it again in %s (pid %d)", h.dir, pid)
	return nil
}

// reconnect redials with backoff until a connection serves the head
// again (returned), GiveUp passes since the cut (nil, Link "lost"),
// ctx ends or Stop asks (nil).
func (h *Head) reconnect(ctx context.Context, cause error) *session {
	h.link.Store(linkCut)
	since := h.now()
	h.lim.forget("cut")
	h.sayEvery("cut", "SSH connection lost (%v); reconnecting", cause)
	for n := 0; ; n++ {
		left := h.cfg.giveUp - h.now().Sub(since)
		if left <= 0 {
			h.link.Store(linkLost)
			h.say("gave up after %v without an SSH connection (%v); the head stops by itself when its lease of %v runs out", h.cfg.giveUp, cause, h.cfg.lease)
			return nil
		}
		t := time.NewTimer(min(backoff(n, h.cfg.Backoff, h.cfg.MaxBackoff), left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case req := <-h.stopReq:
			t.Stop()
			req.reply <- h.dialAndStop(req.ctx)
			return nil
		case <-t.C:
		}
		if h.now().Sub(since) >= h.cfg.giveUp {
			continue
		}
		s, err := h.connect(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			cause = err
			h.sayEvery("cut", "still reconnecting after %v: %v", h.now().Sub(since).Round(time.Second), oneLine(err.Error()))
			continue
		}
		h.link.Store(linkConnected)
		h.say("SSH connection back after %v", h.now().Sub(since).Round(time.Millisecond))
		return s
	}
}

// connect dials and sets the connection up to serve the head; a head
// that fails to start is said, and the connection still serves (the
// next probe tries again).
func (h *Head) connect(ctx context.Context) (*session, error) {
	c, err := remote.Dial(ctx, h.cfg.ep, h.cfg.opts)
	if err != nil {
		return nil, err
	}
	s, startErr, err := h.setup(ctx, c, true)
	if err != nil {
		return nil, err
	}
	if startErr != nil {
		h.sayEvery("restart", "the head is not running, and starting it again failed: %v", startErr)
	}
	return s, nil
}

// dialAndStop stops the head over a connection of its own.
func (h *Head) dialAndStop(ctx context.Context) error {
	c, err := remote.Dial(ctx, h.cfg.ep, h.cfg.opts)
	if err != nil {
		return h.err(fmt.Errorf("stop the head: %w", err))
	}
	defer c.Close()
	if err := h.stop(ctx, c); err != nil {
		return h.err(fmt.Errorf("stop the head: %w", err))
	}
	return nil
}

// failure is a failed command's standard error as one line.
func failure(stderr []byte, exit int) string {
	if s := oneLine(string(stderr)); s != "" {
		return cut(s, 500)
	}
	return fmt.Sprintf("exit status %d", exit)
}

// oneLine folds every run of white space (newlines too) into a space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cut shortens s to at most n bytes.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
