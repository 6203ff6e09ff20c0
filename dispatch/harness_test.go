package dispatch

// The dispatch loop, driven in-process: a fake clock, fake nodes that
// record what the dispatcher asks of them (and check that each action is
// in the store before it reaches them), and a real store.

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/plan"
	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
	"orrery/sweep"
	"orrery/task"
)

var update = flag.Bool("update", false, "rewrite the golden traces in testdata/")

// fakeClock is a clock the test moves by hand.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	tick chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), tick: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Ticker(time.Duration) (<-chan time.Time, func()) { return c.tick, func() {} }

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// harness runs one dispatcher on a fake clock and a real store.
type harness struct {
	t     *testing.T
	d     *Dispatcher
	clock *fakeClock
	st    *store.Store
	exp   *store.Experiment
	done  chan error
	sum   Summary

	mu    sync.Mutex
	trace []string
}

const harnessPlan = `parameter x integer range from 1 to %d
task main
	copy root:in-$x.txt node:in.txt
	exec true
	copy node:out.txt root:results/out-$x.txt
endtask
`

// newHarness starts a dispatcher for a sweep of jobs jobs under policy.
func newHarness(t *testing.T, jobs int, policy sched.Policy, migrate func(int, string) error, opts ...func(*Config)) *harness {
	t.Helper()
	root := t.TempDir()
	d := plan.Modern
	p, err := plan.Parse("h.pln", []byte(fmt.Sprintf(harnessPlan, jobs)), plan.Options{Dialect: &d})
	if err != nil {
		t.Fatal(err)
	}
	sw, err := sweep.New(p, sweep.Options{Root: root, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(root, ".orrery"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	exp := &store.Experiment{PlanPath: filepath.Join(root, "h.pln"), PlanText: p.Source, Dialect: p.Dialect.String(), Seed: 1, Names: sw.Names}
	if err := st.Create(ctx, exp); err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, clock: newFakeClock(), st: st, exp: exp, done: make(chan error, 1)}
	cfg := Config{Plan: p, Sweep: sw, Store: st, Experiment: exp, Root: root, Policy: policy,
		Heartbeat: time.Second, Clock: h.clock, Migrate: migrate}
	for _, o := range opts {
		o(&cfg)
	}
	h.d = New(cfg)
	runCtx, cancel := context.WithCancel(ctx)
	go func() {
		sum, err := h.d.Run(runCtx)
		h.sum = sum
		h.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		h.d.Close()
	})
	return h
}

// settle returns once the loop has handled everything sent before and
// acted on it: it takes two ticks, and the second only once it is back
// in its select after the first (a tick also drains the events queued).
func (h *harness) settle() {
	h.t.Helper()
	for range 2 {
		select {
		case h.clock.tick <- h.clock.Now():
		case err := <-h.done:
			h.done <- err
			return
		case <-time.After(10 * time.Second):
			h.t.Fatal("the dispatch loop did not take a tick")
		}
	}
}

// log adds a line to the trace.
func (h *harness) log(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.trace = append(h.trace, fmt.Sprintf(format, args...))
}

// wait returns how Run ended.
func (h *harness) wait() error {
	h.t.Helper()
	select {
	case err := <-h.done:
		return err
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not end")
		return nil
	}
}

// golden compares the trace with testdata/dispatch/NAME.txt.
func (h *harness) golden(name string) {
	h.t.Helper()
	h.mu.Lock()
	got := strings.Join(h.trace, "\n") + "\n"
	h.mu.Unlock()
	path := filepath.Join("testdata", name+".txt")
	if *update {
		os.MkdirAll("testdata", 0o755)
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatalf("%v (run with -update to write it)", err)
	}
	if string(want) != got {
		h.t.Errorf("trace differs from %s (run with -update and review the diff):\n--- got\n%s--- want\n%s", path, got, want)
	}
}

// attempt returns attempt n of job as the store has it.
func (h *harness) attempt(job int64, n int) (store.Attempt, bool) {
	var found store.Attempt
	ok := false
	h.st.Attempts(context.Background(), h.exp.ID, job, func(a store.Attempt) error {
		if a.N == n {
			found, ok = a, true
		}
		return nil
	})
	return found, ok
}

// fakeNode is a node as a transport would present it: it records every
// call, and checks that what it is asked was recorded first.
type fakeNode struct {
	h    *harness
	name string

	mu      sync.Mutex
	starts  []protocol.Start
	closed  bool
	grants  map[[2]int64]*task.Access
	stopped bool
	// cancelled are the attempts the dispatcher cancelled.
	cancelled map[[2]int64]bool
	// withdrawn are the withdraws the dispatcher sent, in order.
	withdrawn [][2]int64
}

var _ Node = (*fakeNode)(nil)

func (h *harness) node(name string) *fakeNode {
	return &fakeNode{h: h, name: name, grants: map[[2]int64]*task.Access{}}
}

func (n *fakeNode) Welcome(w protocol.Welcome, _ *task.Access) error {
	n.h.log("%s: welcome as %s", n.name, w.Node)
	return nil
}

func (n *fakeNode) Start(s protocol.Start, a *task.Access) error {
	at, ok := n.h.attempt(s.Job, s.Attempt)
	if !ok || at.State != store.AttemptRunning {
		n.h.t.Errorf("%s: start %d.%d before the store has it running (%+v)", n.name, s.Job, s.Attempt, at)
	}
	if a == nil || !a.CanOpen(fmt.Sprintf("in-%s.txt", s.Values[0])) || a.CanOpen("in-0.txt") {
		n.h.t.Errorf("%s: start %d.%d with the wrong grants", n.name, s.Job, s.Attempt)
	}
	n.mu.Lock()
	n.starts = append(n.starts, s)
	n.grants[[2]int64{s.Job, int64(s.Attempt)}] = a
	n.mu.Unlock()
	n.h.log("%s: start %d.%d", n.name, s.Job, s.Attempt)
	return nil
}

func (n *fakeNode) Resume(job int64, attempt int, a *task.Access) {
	n.h.log("%s: resume %d.%d", n.name, job, attempt)
}

func (n *fakeNode) Cancel(job int64, attempt int) error {
	if at, ok := n.h.attempt(job, attempt); ok && at.State == store.AttemptRunning {
		n.h.t.Errorf("%s: cancel %d.%d before the store has it ended", n.name, job, attempt)
	}
	n.h.log("%s: cancel %d.%d", n.name, job, attempt)
	n.mu.Lock()
	if n.cancelled == nil {
		n.cancelled = map[[2]int64]bool{}
	}
	n.cancelled[[2]int64{job, int64(attempt)}] = true
	n.mu.Unlock()
	return nil
}

func (n *fakeNode) Withdraw(job int64, attempt int) error {
	n.h.log("%s: withdraw %d.%d", n.name, job, attempt)
	n.mu.Lock()
	n.withdrawn = append(n.withdrawn, [2]int64{job, int64(attempt)})
	n.mu.Unlock()
	return nil
}

// withdrew reports whether the dispatcher sent a withdraw of job's
// attempt.
func (n *fakeNode) withdrew(job int64, attempt int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return slices.Contains(n.withdrawn, [2]int64{job, int64(attempt)})
}

func (n *fakeNode) Shutdown(reason string) {
	n.mu.Lock()
	n.stopped = true
	n.mu.Unlock()
	n.h.log("%s: shutdown %s", n.name, reason)
}

func (n *fakeNode) Close() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if !n.closed {
		n.closed = true
		n.h.log("%s: closed", n.name)
	}
}

// join has the node register as id.
func (n *fakeNode) join(id string, limit int, resumable bool, running ...protocol.AttemptRef) {
	n.h.log("-- %s joins as %q (job limit %d, running %v)", n.name, id, limit, running)
	n.h.d.Joined(n, Joining{ID: id, Resumable: resumable, Register: protocol.Register{Version: protocol.Version,
		Name: n.name, CPUs: 1, JobLimit: limit, Speed: 1, Running: running}})
	n.h.settle()
}

// end reports an attempt's end.
func (n *fakeNode) end(job int64, attempt int, res protocol.Result) {
	n.h.log("-- %s reports %d.%d ok=%v", n.name, job, attempt, res.OK)
	n.h.d.Ended(n, protocol.Event{Kind: protocol.EventEnded, Job: job, Attempt: attempt, Result: &res})
	n.h.settle()
}

// gone reports the node's connection lost.
func (n *fakeNode) gone() {
	n.h.log("-- %s: connection lost", n.name)
	n.h.d.Gone(n, fmt.Errorf("connection reset"))
	n.h.settle()
}

// lastStarts returns the starts the node was given, and forgets them.
func (n *fakeNode) takeStarts() []protocol.Start {
	n.mu.Lock()
	defer n.mu.Unlock()
	s := n.starts
	n.starts = nil
	return s
}

func ok(wall time.Duration) protocol.Result {
	zero := 0
	return protocol.Result{OK: true, Exit: &zero, Wall: wall, CPU: wall}
}

// Recorded implements Recorder: only heads are told.
func (n *fakeNode) Recorded(job int64, attempt int) {
	if at, ok := n.h.attempt(job, attempt); ok && at.State == store.AttemptRunning {
		n.h.t.Errorf("%s: told %d.%d is recorded before the store has its end", n.name, job, attempt)
	}
	n.h.log("%s: recorded %d.%d", n.name, job, attempt)
}
