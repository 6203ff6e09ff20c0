// Package agent is a node agent: it connects to a dispatcher through the
// agent protocol, registers its node, runs the attempts it is given (each
// job in its own directory, nodestart once before the first), stages files
// to and from the root over the same connection, and reports every
// attempt's outcome and, in its heartbeats, each running attempt's
// resident memory. `orrery agent` runs one as its own process over TCP;
// the embedded cluster runs several in-process over in-memory pipes.
package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
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
}

// agentNode is the state of a running agent.
type agentNode struct {
	cfg  Config
	peer *protocol.Peer
	log  *slog.Logger

	welcome *protocol.Welcome
	plan    *plan.Plan

	startOnce sync.Once
	startErr  error // nodestart's failure, if any
	nodeDir   string

	mu      sync.Mutex
	running map[attemptKey]*runningAttempt
	free    []string // clean job directories to reuse
	slots   int      // job directories made so far
	wg      sync.WaitGroup
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

// Run serves one dispatcher over rw until the dispatcher says shutdown,
// the connection ends, or ctx is cancelled; running attempts are stopped
// before it returns.
func Run(ctx context.Context, rw io.ReadWriteCloser, cfg Config) error {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Speed <= 0 {
		cfg.Speed = 1
	}
	if cfg.Memory <= 0 {
		cfg.Memory = memTotal()
	}
	conn := protocol.NewConn(rw)
	defer conn.Close()
	n := &agentNode{cfg: cfg, peer: protocol.NewPeer(conn), log: cfg.Log, running: map[attemptKey]*runningAttempt{}}
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer n.wg.Wait()
	go func() { // close the connection on cancel, which ends the reader
		<-ctx.Done()
		conn.Close()
	}()
	err := n.peer.Send(&protocol.Msg{Type: protocol.TypeRegister, Register: &protocol.Register{
		Version: protocol.Version, Name: cfg.Name, CPUs: cfg.CPUs, Memory: cfg.Memory,
		Speed: cfg.Speed, JobLimit: cfg.JobLimit}})
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	shutdown := false
	err = n.peer.Run(func(m *protocol.Msg) {
		switch m.Type {
		case protocol.TypeWelcome:
			if e := n.welcomed(ctx, m.Welcome); e != nil {
				n.log.Error("welcome", "err", e)
				cancel()
			}
		case protocol.TypeStart:
			n.start(ctx, m.Start)
		case protocol.TypeCancel:
			n.cancel(m.Job, m.Attempt)
		case protocol.TypeShutdown:
			shutdown = true
			cancel()
		}
	})
	cancel()
	if shutdown || parent.Err() != nil {
		return nil
	}
	return fmt.Errorf("connection to the dispatcher: %w", err)
}

// welcomed takes the plan and starts the heartbeats.
func (n *agentNode) welcomed(ctx context.Context, w *protocol.Welcome) error {
	if w == nil {
		return errors.New("empty welcome")
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
	n.nodeDir = filepath.Join(n.cfg.WorkDir, fmt.Sprintf("experiment-%d", w.Experiment))
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
				n.peer.Send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: n.heartbeat()})
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
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer stop(nil)
		res := n.attempt(ctx, jctx, s, a.options(n.cfg.Exec))
		n.mu.Lock()
		if n.running[key] == a {
			delete(n.running, key)
		}
		n.mu.Unlock()
		n.peer.Send(&protocol.Msg{Type: protocol.TypeEvent, Event: &protocol.Event{
			Kind: protocol.EventEnded, Job: s.Job, Attempt: s.Attempt, Result: res}})
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

// attempt runs nodestart (once per node, under the node's context ctx, so
// that cancelling the attempt that runs it does not fail it for all) and
// then the job's main task under the attempt's context jctx. An attempt
// the dispatcher cancelled fails with errCancelled, and its directory is
// reused like a successful one's: nothing went wrong with the job.
func (n *agentNode) attempt(ctx, jctx context.Context, s *protocol.Start, opts task.Options) *protocol.Result {
	n.startOnce.Do(func() { n.startErr = n.nodestart(ctx) })
	if n.startErr != nil {
		return &protocol.Result{System: true, Error: "nodestart failed on node " + n.cfg.Name + ": " + n.startErr.Error()}
	}
	dir, err := n.jobDir()
	if err != nil {
		return &protocol.Result{System: true, Error: fmt.Sprintf("job directory on node %s: %v", n.cfg.Name, err)}
	}
	job := task.Job{Index: s.Job, Names: n.welcome.Names, Values: s.Values}
	res, err := task.RunTask(jctx, n.plan.Task(plan.TaskMain), job, dir, n.peer, opts)
	out := convert(res, err)
	stopped := cancelled(jctx)
	if stopped {
		out.OK, out.System, out.Error = false, false, errCancelled.Error()
	}
	n.releaseDir(dir, out.OK || stopped, fmt.Sprintf("j%d.%d", s.Job, s.Attempt))
	return out
}

// jobDir returns an empty directory for an attempt, holding links to the
// files nodestart left: a reused one when a job before left it clean
// (making and removing a directory per job costs more than many short
// jobs themselves), else a new one.
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
		if err := emptyDir(dir); err != nil { // a new slot, or one an earlier run left
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
		kept := filepath.Join(n.nodeDir, name)
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
	_, err := task.RunTask(ctx, t, task.Job{Names: n.welcome.Names}, start, n.peer, n.cfg.Exec)
	return err
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
