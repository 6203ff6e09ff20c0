package dispatch

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"orrery/plan"
	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
	"orrery/sweep"
)

// restart starts another dispatcher on h's store and experiment, as
// `orrery run` started again after a crash does; h's own loop no longer
// takes events. The sweep has jobs jobs, as h's. Each of meanwhile
// runs before the other starts (h's loop, idle, writes nothing more):
// what a root killed with -9 left in the store.
func (h *harness) restart(jobs int, meanwhile ...func()) *harness {
	t := h.t
	t.Helper()
	h.d.Close()
	for _, f := range meanwhile {
		f()
	}
	d := plan.Modern
	p, err := plan.Parse("h.pln", []byte(fmt.Sprintf(harnessPlan, jobs)), plan.Options{Dialect: &d})
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Dir(h.exp.PlanPath)
	sw, err := sweep.New(p, sweep.Options{Root: root, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	exp, err := h.st.Latest(context.Background()) // as the state directory has it
	if err != nil || exp.ID != h.exp.ID {
		t.Fatalf("the experiment in the store: %+v, %v", exp, err)
	}
	h2 := &harness{t: t, clock: newFakeClock(), st: h.st, exp: exp, done: make(chan error, 1)}
	h2.clock.advance(time.Hour) // the new root starts later
	h2.d = New(Config{Plan: p, Sweep: sw, Store: h.st, Experiment: exp, Root: root, Policy: sched.FCFS,
		Heartbeat: time.Second, Clock: h2.clock})
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		sum, err := h2.d.Run(ctx)
		h2.sum = sum
		h2.done <- err
	}()
	t.Cleanup(func() {
		cancel()
		h2.d.Close()
	})
	return h2
}

// TestRootRestartDropsEarlierAttempts: a node that outlived a crashed
// root comes back to the root started after it, still running the
// attempts the earlier root gave it. Nothing of them reaches the new
// root's records: their ends are taken but dropped (the store keeps them
// interrupted, no job counts them), they are cancelled, and their jobs
// run again as new attempts, each ending with exactly one ok attempt.
func TestRootRestartDropsEarlierAttempts(t *testing.T) {
	const jobs = 2
	h := newHarness(t, jobs, sched.FCFS, nil)
	a := h.node("a")
	a.join("a", jobs, true)
	earlier := a.takeStarts()
	if len(earlier) != jobs {
		t.Fatalf("%d starts, want %d", len(earlier), jobs)
	}

	h2 := h.restart(jobs)
	a2 := h2.node("a")
	var refs []protocol.AttemptRef
	for _, s := range earlier {
		refs = append(refs, protocol.AttemptRef{Job: s.Job, Attempt: s.Attempt})
	}
	a2.join("a", jobs, true, refs...)
	for _, s := range earlier { // what the earlier root's attempts report
		a2.end(s.Job, s.Attempt, ok(time.Second))
	}
	for _, s := range earlier {
		if at, _ := h2.attempt(s.Job, s.Attempt); at.State != store.AttemptInterrupted {
			t.Errorf("attempt %d.%d of the earlier root is %s after its end was reported, want interrupted", s.Job, s.Attempt, at.State)
		}
	}
	if n := h2.endAll(a2, time.Second); n != jobs {
		t.Fatalf("the new root started %d attempts, want %d", n, jobs)
	}
	for h2.endAll(a2, time.Second) > 0 {
	}
	if err := h2.wait(); err != nil {
		t.Fatal(err)
	}
	if h2.sum.Done != jobs {
		t.Errorf("summary: %d done, want %d", h2.sum.Done, jobs)
	}
	for _, s := range earlier {
		var states []string
		h2.st.Attempts(context.Background(), h2.exp.ID, s.Job, func(at store.Attempt) error {
			states = append(states, at.State)
			return nil
		})
		if len(states) != 2 || states[0] != store.AttemptInterrupted || states[1] != store.AttemptOK {
			t.Errorf("job %d: attempts %v, want [interrupted ok]", s.Job, states)
		}
	}
	cancels := 0
	h2.mu.Lock()
	for _, l := range h2.trace {
		for _, s := range earlier {
			if l == fmt.Sprintf("a: cancel %d.%d", s.Job, s.Attempt) {
				cancels++
			}
		}
	}
	h2.mu.Unlock()
	if cancels != jobs {
		t.Errorf("%d of the earlier root's attempts were cancelled, want %d:\n%v", cancels, jobs, h2.trace)
	}
}
