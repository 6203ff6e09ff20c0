package dispatch

import (
	"context"
	"slices"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// TestGridWithdrawCrossesStart: the grid withdraws an attempt from a
// slow head's queue (head a holds its jobs and says nothing while head b
// runs its own). The root sends the head a withdraw, not a cancel, and
// keeps the attempt recorded running until the head answers. When the
// head had begun it (its EventStarted crosses the withdraw), the attempt
// runs on there: the job is sent nowhere else and ends once. When the
// head gave it back (its end "cancelled"), the attempt is recorded
// cancelled and the job goes out again; a head cut before it answered
// is asked again when it comes back.
func TestGridWithdrawCrossesStart(t *testing.T) {
	for _, mode := range []string{"crossed", "given back", "cut"} {
		crossed := mode == "crossed"
		h := newHarness(t, 12, sched.MEC, nil, func(c *Config) { c.Grid = true; c.HeadTimeout = time.Hour })
		a, b := h.node("a"), h.node("b")
		a.joinHead("head-a", "a", 4)
		b.joinHead("head-b", "b", 4)
		for _, n := range []*fakeNode{a, b} {
			h.d.Heartbeat(n, protocol.Heartbeat{Cluster: &protocol.ClusterStatus{Nodes: 1, CPUs: 2, Slots: 2, Depth: 4}})
		}
		h.settle()
		held := a.takeStarts()
		if len(held) == 0 {
			t.Fatal("head a was given nothing")
		}
		startsOf := map[int64][]string{} // job → the heads it was started on after a
		run := func(n *fakeNode) {
			for _, s := range n.takeStarts() {
				startsOf[s.Job] = append(startsOf[s.Job], n.name)
				h.d.Ended(n, protocol.Event{Kind: protocol.EventStarted, Job: s.Job, Attempt: s.Attempt})
				n.end(s.Job, s.Attempt, ok(time.Second))
			}
		}
		var pulled protocol.Start
		for i := 0; i < 60 && pulled.Job == 0; i++ {
			run(b)
			h.beats(time.Second, b)
			for _, s := range held {
				if a.withdrew(s.Job, s.Attempt) {
					pulled = s
					break
				}
			}
		}
		if pulled.Job == 0 {
			t.Fatal("the grid withdrew nothing from the slow head: the test shows nothing")
		}
		a.mu.Lock()
		cancelled := a.cancelled[[2]int64{pulled.Job, int64(pulled.Attempt)}]
		a.mu.Unlock()
		if cancelled {
			t.Errorf("%s: the root cancelled %d.%d on head a instead of withdrawing it", mode, pulled.Job, pulled.Attempt)
		}
		if at, _ := h.attempt(pulled.Job, pulled.Attempt); at.State != store.AttemptRunning {
			t.Errorf("%s: %d.%d before the head answered the withdraw: %s, want running", mode, pulled.Job, pulled.Attempt, at.State)
		}
		if mode == "cut" {
			a.gone()
			var refs []protocol.AttemptRef
			for _, s := range held {
				refs = append(refs, protocol.AttemptRef{Job: s.Job, Attempt: s.Attempt})
			}
			a.rejoinHead("head-a", "a", 4, refs...)
			a.mu.Lock()
			asked := 0
			for _, w := range a.withdrawn {
				if w == [2]int64{pulled.Job, int64(pulled.Attempt)} {
					asked++
				}
			}
			a.mu.Unlock()
			if asked != 2 {
				t.Errorf("%s: %d.%d was asked back %d times, want 2 (again after the cut)", mode, pulled.Job, pulled.Attempt, asked)
			}
		}
		if crossed {
			// The head's dispatcher had begun it: its start arrives
			// after the withdraw left the root, and the head keeps it.
			h.d.Ended(a, protocol.Event{Kind: protocol.EventStarted, Job: pulled.Job, Attempt: pulled.Attempt})
			h.settle()
		} else {
			a.end(pulled.Job, pulled.Attempt, protocol.Result{Error: "cancelled by the root", Cancelled: true})
		}
		for range 5 {
			run(b)
			h.beats(time.Second, a, b)
		}
		if crossed {
			if got := startsOf[pulled.Job]; len(got) != 0 {
				t.Errorf("%s: job %d, begun on head a, was sent out again to %v", mode, pulled.Job, got)
			}
			if at, _ := h.attempt(pulled.Job, pulled.Attempt); at.State != store.AttemptRunning {
				t.Errorf("%s: %d.%d after the head said it started: %s, want running", mode, pulled.Job, pulled.Attempt, at.State)
			}
		} else {
			if got := startsOf[pulled.Job]; len(got) != 1 {
				t.Errorf("%s: job %d, given back by head a, was started %v, want once elsewhere", mode, pulled.Job, got)
			}
			if at, _ := h.attempt(pulled.Job, pulled.Attempt); at.State != store.AttemptCancelled {
				t.Errorf("%s: %d.%d after the head gave it back: %s, want cancelled", mode, pulled.Job, pulled.Attempt, at.State)
			}
		}
		// Head a runs what it kept.
		for _, s := range held {
			mine := s.Job == pulled.Job && s.Attempt == pulled.Attempt
			switch {
			case mine && !crossed: // given back already
			case mine:
				a.end(s.Job, s.Attempt, ok(time.Second))
			case a.withdrew(s.Job, s.Attempt): // another one asked back: given back
				a.end(s.Job, s.Attempt, protocol.Result{Error: "cancelled by the root", Cancelled: true})
			default:
				h.d.Ended(a, protocol.Event{Kind: protocol.EventStarted, Job: s.Job, Attempt: s.Attempt})
				a.end(s.Job, s.Attempt, ok(time.Second))
			}
		}
		for range 20 {
			run(a)
			run(b)
			h.beats(time.Second, a, b)
		}
		if err := h.wait(); err != nil {
			t.Fatal(err)
		}
		counts, _ := h.st.Counts(context.Background(), h.exp.ID)
		if counts[store.Done] != 12 {
			t.Fatalf("%s: counts %v, want 12 done", mode, counts)
		}
		want := []string{store.AttemptCancelled, store.AttemptOK}
		if crossed {
			want = []string{store.AttemptOK}
		}
		if got := h.states(pulled.Job); !slices.Equal(got, want) {
			t.Errorf("%s: job %d's attempts %v, want %v", mode, pulled.Job, got, want)
		}
	}
}
