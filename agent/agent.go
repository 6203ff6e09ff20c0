// Package agent is a node agent: it connects to a dispatcher through the
// agent protocol, registers its node, runs the attempts it is given (each
// job in its own directory, nodestart once before the first), stages files
// to and from the root over the same connection, and reports every
// attempt's outcome and, in its heartbeats, each running attempt's
// resident memory. `orrery agent` runs one as its own process over TCP;
// the embedded cluster runs several in-process over in-memory pipes.
package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"orrery/plan"
	"orrery/protocol"
	"orrery/task"
)

// Config describes the node an agent runs.
type Config struct {
	Name     string
	CPUs     int
	Memory   int64   // bytes; 0 if unknown
	Speed    float64 // relative CPU speed; 0 means 1
	JobLimit int     // 0: one job per CPU
	// WorkDir holds the node's job directories.
	WorkDir string
	// KeepJobDirs keeps the directories of successful jobs too (failed
	// jobs' directories are always kept for a look).
	KeepJobDirs bool
	// Exec tunes how commands run (environment, kill grace, output limit).
	Exec task.Options
	Log  *slog.Logger
	// Status, when set, is told in one line what the agent is doing
	// (connected, running N, lost the root, retrying).
	Status func(string)
	// Confine, when set, puts each command's process group under the
	// node's limits (its control group) as soon as it has started: the
	// node's limits hold its jobs, not the agent (on a node of a tenth of
	// a CPU, the agent's own work would take a tenth of the jobs' time).
	// A command it fails to confine is killed: the attempt is a system
	// failure of the node.
	Confine func(pgid int) error
	// Wait is how long Serve keeps trying to reach the root while it has
	// no connection before it gives up with ErrUnreachable; 0 tries for
	// ever.
	Wait time.Duration
	// EndsIn is how long after Serve or Run is called the batch system
	// ends the node (a pilot's time limit); 0: no end. Each register
	// says how long is left, and the node drains (see drain.go) when
	// the end less its drain margin has come.
	EndsIn time.Duration
	// IdleExit, when above 0, has the node drain once it has had no
	// attempt for that long since it registered or its last attempt
	// ended.
	IdleExit time.Duration
	// Drained, when set, is called when the dispatcher shuts the node
	// down after it drained (Serve or Run then returns nil).
	Drained func()
}

// Dialer returns a new connection to the dispatcher, its peer
// authenticated. An error that wraps ErrRefused ends the agent at once.
type Dialer func(ctx context.Context) (*protocol.Conn, error)

// ErrRefused is the error of a dialer whose credentials the root refused.
var ErrRefused = errors.New("the root refused this node's credentials")

// ErrUnreachable is Serve's error when it could not reach the root for
// Config.Wait.
var ErrUnreachable = errors.New("cannot reach the root")

// agentNode is the state of a running agent: it outlives connections.
type agentNode struct {
	cfg Config
	log *slog.Logger

	welcome *protocol.Welcome
	plan    *plan.Plan

	startMu sync.Mutex // held while nodestart runs
	started bool       // nodestart succeeded: it is not run again

	inc     *incarnation
	expDir  string // WORKDIR/experiment-E: failed jobs' directories are kept here
	nodeDir string // this incarnation's job directories and nodestart's

	born     time.Time   // when Serve or Run was called: EndsIn counts from here (on the monotonic clock)
	draining atomic.Bool // set once the node drains: for good
	// drainNow is signalled when the node starts to drain, so that a
	// heartbeat says so at once (capacity 1: one is enough).
	drainNow chan struct{}

	mu      sync.Mutex
	peer    *protocol.Peer               // the connection now; nil while there is none
	up      chan struct{}                // closed when a connection is up (replaced when it drops)
	unsent  []*protocol.Msg              // attempt ends not yet sent: sent on the next connection
	ending  map[attemptKey]*protocol.Msg // attempt ends being sent now
	running map[attemptKey]*runningAttempt
	free    []string // clean job directories to reuse
	slots   int      // job directories made so far
	// active is when the node last registered, or last started or ended
	// an attempt: what --idle-exit counts from (zero before it first
	// registered).
	active time.Time
	wg     sync.WaitGroup
}

// attemptKey names an attempt. Two attempts of a job may run on a node at
// once: a restart may land where the cancelled attempt is still stopping.
type attemptKey struct {
	job     int64
	attempt int
}

// runningAttempt is an attempt the agent runs.
type runningAttempt struct {
	stop context.CancelCauseFunc // stops the attempt; errCancelled for the dispatcher's cancel
	pgid atomic.Int64            // the process group of its command now; 0 when it runs none
}

// errCancelled is why an attempt the dispatcher cancelled stopped, as
// opposed to one stopped because the agent is shutting down.
var errCancelled = errors.New("cancelled by the dispatcher")

func newAgentNode(cfg Config) *agentNode {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Speed <= 0 {
		cfg.Speed = 1
	}
	if cfg.Memory <= 0 {
		cfg.Memory = memTotal()
	}
	if cfg.Status == nil {
		cfg.Status = func(string) {}
	}
	return &agentNode{cfg: cfg, log: cfg.Log, running: map[attemptKey]*runningAttempt{}, up: make(chan struct{}),
		ending: map[attemptKey]*protocol.Msg{}, inc: claim(cfg.WorkDir, cfg.Log, cfg.Status),
		born: time.Now(), drainNow: make(chan struct{}, 1)}
}

// finish waits for the attempts to end, and then ends the incarnation.
func (n *agentNode) finish() {
	n.wg.Wait()
	n.inc.end()
}

// Run serves one dispatcher over rw until the dispatcher says shutdown,
// the connection ends, or ctx is cancelled; running attempts are stopped
// before it returns. It is for nodes the root starts itself, whose
// connection cannot come back.
func Run(ctx context.Context, rw io.ReadWriteCloser, cfg Config) error {
	n := newAgentNode(cfg)
	conn := protocol.NewConnLimits(rw, protocol.NodeLimits)
	ctx, cancel := context.WithCancel(ctx)
	defer n.finish() // runs last: the attempts are stopped first
	defer cancel()
	n.watchDrain(ctx)
	shutdown, err := n.session(ctx, cancel, conn)
	if shutdown || ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("connection to the dispatcher: %w", err)
}

// Serve runs the agent over connections from dial: when one drops, it
// dials again with backoff (saying so) while its attempts run on, and on
// the new connection it resumes them. It returns nil when the dispatcher
// says shutdown or ctx ends, and an error wrapping ErrRefused at once
// when the root refuses its credentials.
func Serve(ctx context.Context, dial Dialer, cfg Config) error {
	n := newAgentNode(cfg)
	ctx, cancel := context.WithCancel(ctx)
	defer n.finish() // runs last: the attempts are stopped first
	defer cancel()
	n.watchDrain(ctx)
	backoff := minBackoff
	connected := false
	lostAt := time.Now() // since when there has been no connection
	var saidAt time.Time // when a failed try was last reported
	var last error       // the last try's error, unless the wait cut it short
	for {
		dctx, stopDial := ctx, context.CancelFunc(func() {})
		if n.cfg.Wait > 0 {
			dctx, stopDial = context.WithDeadline(ctx, lostAt.Add(n.cfg.Wait))
		}
		conn, err := dial(dctx)
		if err != nil && dctx.Err() != nil && ctx.Err() == nil && last != nil {
			err = last // the wait ended during the try: the reason is the one before
		}
		last = err
		stopDial()
		switch {
		case ctx.Err() != nil:
			if conn != nil {
				conn.Close()
			}
			return nil
		case errors.Is(err, ErrRefused):
			return err
		case err != nil:
			left := n.cfg.Wait - time.Since(lostAt)
			if n.cfg.Wait > 0 && left <= 0 {
				return fmt.Errorf("%w within %s: %s", ErrUnreachable, n.cfg.Wait, brief(err))
			}
			// Each failed try, briefly, at most every sayEvery.
			if saidAt.IsZero() || time.Since(saidAt) >= sayEvery {
				saidAt = time.Now()
				what, until := "cannot reach the root yet", "; trying again, for ever"
				if connected {
					what = fmt.Sprintf("cannot reach the root (%d attempts running)", n.runningCount())
				}
				if n.cfg.Wait > 0 {
					until = fmt.Sprintf("; trying again for %s more", left.Round(time.Second))
				}
				n.cfg.Status(fmt.Sprintf("%s: %s%s", what, brief(err), until))
			}
			pause := backoff
			if n.cfg.Wait > 0 {
				pause = min(pause, left)
			}
			select {
			case <-time.After(pause):
			case <-ctx.Done():
				return nil
			}
			backoff = min(2*backoff, maxBackoff)
			continue
		}
		backoff, connected, saidAt = minBackoff, true, time.Time{}
		shutdown, err := n.session(ctx, cancel, conn)
		if shutdown || ctx.Err() != nil {
			return nil
		}
		lostAt = time.Now()
		n.cfg.Status(fmt.Sprintf("lost the root (%v); %d attempts running; reconnecting", err, n.runningCount()))
	}
}

// sayEvery is how often Serve reports failed tries to reach the root.
const sayEvery = 10 * time.Second

// brief is the gist of an error to reach the root: "connection
// refused", "i/o timeout", "lookup HOST: no such host".
func brief(err error) string {
	var errno syscall.Errno
	var dns *net.DNSError
	switch {
	case errors.As(err, &dns):
		return dns.Error()
	case errors.As(err, &errno):
		return errno.Error()
	case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded):
		return "timed out"
	}
	return err.Error()
}

// Backoff between attempts to reach the root.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// session serves one connection until it ends, and reports whether the
// dispatcher said shutdown (then stop has been called).
func (n *agentNode) session(ctx context.Context, stop context.CancelFunc, conn *protocol.Conn) (bool, error) {
	defer conn.Close()
	sctx, end := context.WithCancel(ctx)
	defer end()
	go func() { // close the connection on cancel, which ends the reader
		<-sctx.Done()
		conn.Close()
	}()
	conn.SetSendTimeout(sendTimeout)
	peer := protocol.NewPeer(conn)
	n.mu.Lock()
	n.active = time.Now() // --idle-exit counts from the register
	n.mu.Unlock()
	err := peer.Send(&protocol.Msg{Type: protocol.TypeRegister, Register: &protocol.Register{
		Version: protocol.Version, Name: n.cfg.Name, CPUs: n.cfg.CPUs, Memory: n.cfg.Memory,
		Speed: n.cfg.Speed, JobLimit: n.cfg.JobLimit, Running: n.known(), EndsIn: n.endsIn()}})
	if err != nil {
		return false, fmt.Errorf("register: %w", err)
	}
	shutdown := false
	err = peer.Run(func(m *protocol.Msg) {
		switch m.Type {
		case protocol.TypeWelcome:
			if e := n.welcomed(ctx, m.Welcome); e != nil {
				n.log.Error("welcome", "err", e)
				n.cfg.Status("refused the root's welcome: " + e.Error())
				stop()
				return
			}
			n.connected(peer)
			n.cfg.Status(fmt.Sprintf("connected as node %s; %d attempts running", m.Welcome.Node, n.runningCount()))
		case protocol.TypeStart:
			n.start(ctx, m.Start)
		case protocol.TypeCancel:
			n.cancel(m.Job, m.Attempt)
		case protocol.TypeShutdown:
			shutdown = true
			switch {
			case n.draining.Load():
				n.cfg.Status("drained: the dispatcher let this node go")
				if n.cfg.Drained != nil {
					n.cfg.Drained()
				}
			case m.Error != "":
				n.cfg.Status("the root ended the experiment: " + m.Error)
			}
			stop()
		}
	})
	n.disconnected(peer)
	return shutdown, err
}

// sendTimeout bounds each message the agent sends.
const sendTimeout = 10 * time.Second

// connected makes peer the connection attempts use, and sends the
// attempt ends that waited for one.
func (n *agentNode) connected(p *protocol.Peer) {
	n.mu.Lock()
	n.peer = p
	close(n.up)
	unsent := n.unsent
	n.unsent = nil
	n.mu.Unlock()
	for _, m := range unsent {
		n.send(m)
	}
	if n.draining.Load() {
		// A node that drains says so on each connection at once.
		n.send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: n.heartbeat()})
	}
}

// disconnected forgets peer, if it is the connection now.
func (n *agentNode) disconnected(p *protocol.Peer) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.peer == p {
		n.peer = nil
		n.up = make(chan struct{})
	}
}

// send sends m on the connection there is now. An attempt's end that
// cannot be sent waits for the next connection; anything else is
// dropped (a heartbeat).
func (n *agentNode) send(m *protocol.Msg) {
	n.mu.Lock()
	p := n.peer
	if p == nil && m.Type == protocol.TypeEvent {
		n.unsent = append(n.unsent, m)
		delete(n.ending, attemptKey{m.Event.Job, m.Event.Attempt})
	}
	n.mu.Unlock()
	if p == nil {
		return
	}
	err := p.Send(m)
	if m.Type != protocol.TypeEvent {
		return
	}
	n.mu.Lock()
	delete(n.ending, attemptKey{m.Event.Job, m.Event.Attempt})
	if err != nil {
		n.unsent = append(n.unsent, m)
	}
	n.mu.Unlock()
}

// known lists the attempts the node still runs, and those whose end it
// has not been able to send: what it tells a dispatcher it comes back to.
func (n *agentNode) known() []protocol.AttemptRef {
	n.mu.Lock()
	defer n.mu.Unlock()
	var refs []protocol.AttemptRef
	for k := range n.running {
		refs = append(refs, protocol.AttemptRef{Job: k.job, Attempt: k.attempt})
	}
	for _, m := range n.unsent {
		refs = append(refs, protocol.AttemptRef{Job: m.Event.Job, Attempt: m.Event.Attempt})
	}
	for k := range n.ending {
		refs = append(refs, protocol.AttemptRef{Job: k.job, Attempt: k.attempt})
	}
	return refs
}

func (n *agentNode) runningCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.running)
}

// peerNow returns the connection there is now, waiting for one while
// there is none, until ctx ends.
func (n *agentNode) peerNow(ctx context.Context) (*protocol.Peer, error) {
	for {
		n.mu.Lock()
		p, up := n.peer, n.up
		n.mu.Unlock()
		if p != nil {
			return p, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %v", protocol.ErrLost, context.Cause(ctx))
		}
	}
}

// welcomed takes the plan and starts the heartbeats.
func (n *agentNode) welcomed(ctx context.Context, w *protocol.Welcome) error {
	if w == nil {
		return errors.New("empty welcome")
	}
	if n.welcome != nil {
		if w.Experiment != n.welcome.Experiment || w.PlanText != n.welcome.PlanText {
			return fmt.Errorf("the root now runs experiment %d, not %d; start a new agent for it", w.Experiment, n.welcome.Experiment)
		}
		return nil // a reconnect: the plan is known, the heartbeats run
	}
	d, err := plan.ParseDialect(w.Dialect)
	if err != nil {
		return err
	}
	p, err := plan.Parse(w.PlanName, []byte(w.PlanText), plan.Options{Dialect: &d})
	if err != nil {
		return fmt.Errorf("the dispatcher's plan: %w", err)
	}
	n.welcome, n.plan = w, p
	n.cfg.Exec.File = w.PlanName
	n.expDir = filepath.Join(n.cfg.WorkDir, fmt.Sprintf("experiment-%d", w.Experiment))
	n.nodeDir = n.inc.jobsDir(n.expDir)
	every := w.Heartbeat
	if every <= 0 {
		every = time.Second
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				n.send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: n.heartbeat()})
			case <-n.drainNow:
				// It has just started to drain: say so out of the cycle.
				n.send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: n.heartbeat()})
			}
		}
	}()
	return nil
}

// start runs an attempt in its own goroutine and reports its end, also
// when the dispatcher cancelled it: then the processes are gone.
func (n *agentNode) start(ctx context.Context, s *protocol.Start) {
	if s == nil || n.plan == nil {
		return
	}
	key := attemptKey{s.Job, s.Attempt}
	jctx, stop := context.WithCancelCause(ctx)
	a := &runningAttempt{stop: stop}
	n.mu.Lock()
	n.running[key] = a
	n.active = time.Now()
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer stop(nil)
		res := n.attempt(ctx, jctx, s, a.options(n.cfg.Exec))
		m := &protocol.Msg{Type: protocol.TypeEvent, Event: &protocol.Event{
			Kind: protocol.EventEnded, Job: s.Job, Attempt: s.Attempt, Result: res}}
		n.mu.Lock()
		if n.running[key] == a {
			delete(n.running, key)
		}
		n.active = time.Now()
		// Known as ending until sent, so a register made meanwhile
		// still names it (see known).
		n.ending[key] = m
		n.mu.Unlock()
		n.send(m)
	}()
}

// cancel stops attempt attempt of job, or every attempt of job when
// attempt is 0 (a dispatcher older than attempt numbers in cancels).
func (n *agentNode) cancel(job int64, attempt int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, a := range n.running {
		if k.job == job && (attempt == 0 || k.attempt == attempt) {
			a.stop(errCancelled)
		}
	}
}

// cancelled reports whether the dispatcher cancelled the attempt whose
// context is jctx.
func cancelled(jctx context.Context) bool {
	return errors.Is(context.Cause(jctx), errCancelled)
}

// attempt runs nodestart (until it succeeds once, under the node's context
// ctx, so that cancelling the attempt that runs it does not fail it for all) and
// then the job's main task under the attempt's context jctx. An attempt
// the dispatcher cancelled fails with errCancelled, and its directory is
// reused like a successful one's: nothing went wrong with the job.
func (n *agentNode) attempt(ctx, jctx context.Context, s *protocol.Start, opts task.Options) *protocol.Result {
	var unconfined error
	opts = n.inc.guard(opts, n.confine(&unconfined))
	if err := n.startNode(ctx); err != nil {
		return &protocol.Result{System: true, Side: protocol.SideNode, Error: "nodestart failed on node " + n.cfg.Name + ": " + err.Error()}
	}
	dir, err := n.jobDir()
	if err != nil {
		return &protocol.Result{System: true, Side: protocol.SideNode, Error: fmt.Sprintf("job directory on node %s: %v", n.cfg.Name, err)}
	}
	job := task.Job{Index: s.Job, Names: n.welcome.Names, Values: s.Values}
	var moved staged
	res, err := task.RunTask(jctx, n.plan.Task(plan.TaskMain), job, dir, root{now: n.peerNow, lost: n.disconnected, moved: &moved}, opts)
	out := convert(res, err)
	moved.fill(out)
	stopped := cancelled(jctx)
	if stopped {
		out.OK, out.System, out.Error = false, false, errCancelled.Error()
	} else if unconfined != nil {
		out.OK, out.System, out.Side = false, true, protocol.SideNode
		out.Error = fmt.Sprintf("node %s could not hold a command to its limits: %v", n.cfg.Name, unconfined)
	}
	n.releaseDir(dir, out.OK || stopped, fmt.Sprintf("j%d.%d", s.Job, s.Attempt))
	return out
}

// jobDir returns an empty directory for an attempt, holding links to the
// files nodestart left: a reused one when a job before left it clean
// (making and removing a directory per job costs more than many short
// jobs themselves), else a new one. Both are this incarnation's own: an
// attempt never shares a directory with one of an earlier agent, whose
// processes might still write there.
func (n *agentNode) jobDir() (string, error) {
	n.mu.Lock()
	var dir string
	reused := len(n.free) > 0
	if reused {
		dir, n.free = n.free[len(n.free)-1], n.free[:len(n.free)-1]
	} else {
		n.slots++
		dir = filepath.Join(n.nodeDir, fmt.Sprintf("slot%d", n.slots))
	}
	n.mu.Unlock()
	if !reused {
		if err := emptyDir(dir); err != nil { // a new slot
			return "", err
		}
	}
	return dir, n.seedJobDir(dir)
}

// releaseDir takes a finished attempt's directory back for reuse, or,
// after a failure (or with KeepJobDirs), keeps it under the job's name
// for a look.
func (n *agentNode) releaseDir(dir string, ok bool, name string) {
	if !ok || n.cfg.KeepJobDirs {
		kept := filepath.Join(n.expDir, name)
		os.RemoveAll(kept)
		if os.Rename(dir, kept) != nil {
			return
		}
		return
	}
	if emptyDir(dir) != nil {
		return
	}
	n.mu.Lock()
	n.free = append(n.free, dir)
	n.mu.Unlock()
}

// emptyDir makes dir an existing, empty directory.
func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// startNode runs nodestart unless it succeeded already: a failure is not
// kept, so the next attempt tries again (the node may have been repaired).
// Attempts wait while it runs.
func (n *agentNode) startNode(ctx context.Context) error {
	n.startMu.Lock()
	defer n.startMu.Unlock()
	if n.started {
		return nil
	}
	if err := n.nodestart(ctx); err != nil {
		return err
	}
	n.started = true
	return nil
}

// nodestart runs the nodestart task, if any, in the node's own directory;
// its files are linked into every job directory.
func (n *agentNode) nodestart(ctx context.Context) error {
	start := filepath.Join(n.nodeDir, "nodestart")
	if err := os.MkdirAll(start, 0o755); err != nil {
		return err
	}
	t := n.plan.Task(plan.TaskNodeStart)
	if t == nil {
		return nil
	}
	var unconfined error
	_, err := task.RunTask(ctx, t, task.Job{Names: n.welcome.Names}, start, root{now: n.peerNow, lost: n.disconnected}, n.inc.guard(n.cfg.Exec, n.confine(&unconfined)))
	return cmp.Or(unconfined, err)
}

// confine returns what puts each command's process group under the
// node's limits (Config.Confine), or nil when the node has none. The
// incarnation's guard calls it right after the watchdog has the group,
// before anything else: the command has just executed its program, which
// has not loaded yet. A command that cannot be confined is killed, and
// *failed says why. (It runs on the goroutine that runs the task:
// *failed is read once RunTask has returned.)
func (n *agentNode) confine(failed *error) func(pgid int) {
	confine := n.cfg.Confine
	if confine == nil {
		return nil
	}
	return func(pgid int) {
		if err := confine(pgid); err != nil {
			syscall.Kill(-pgid, syscall.SIGKILL)
			if *failed == nil {
				*failed = err
			}
		}
	}
}

// seedJobDir fills an empty job directory with hard links to (or,
// across file systems, copies of) the files nodestart left.
func (n *agentNode) seedJobDir(dir string) error {
	start := filepath.Join(n.nodeDir, "nodestart")
	return filepath.WalkDir(start, func(path string, d os.DirEntry, err error) error {
		if err != nil || path == start {
			return err
		}
		rel, _ := filepath.Rel(start, path)
		dst := filepath.Join(dir, rel)
		if d.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if os.Link(path, dst) == nil {
			return nil
		}
		return copyFile(path, dst)
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// loadAverage returns the 1-minute load average, or 0.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	f, _ := strconv.ParseFloat(strings.Fields(string(b) + " 0")[0], 64)
	return f
}

// memTotal returns the machine's memory in bytes, or 0.
func memTotal() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}
