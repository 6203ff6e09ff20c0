package dispatch

import (
	"context"
	"strings"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// joinHead has the node register as a cluster head holding up to depth
// of the root's attempts.
func (n *fakeNode) joinHead(id, cluster string, depth int) {
	n.h.log("-- %s joins as head %q of cluster %s (depth %d)", n.name, id, cluster, depth)
	n.h.d.Joined(n, Joining{ID: id, Resumable: true, Head: true, Register: protocol.Register{Version: protocol.Version,
		Name: n.name, CPUs: 4, JobLimit: depth, Head: true, Cluster: cluster}})
	n.h.settle()
}

// TestHeadHoldsItsDepth checks how the root treats a cluster head: it
// gets as many attempts as it asks to hold at once (no slow start), more
// when its heartbeat asks for more, and hears that each end it reported
// was taken once that is in the store, also an end the root no longer
// wanted.
func TestHeadHoldsItsDepth(t *testing.T) {
	h := newHarness(t, 12, sched.FCFS, nil)
	hd := h.node("h")
	hd.joinHead("head-a", "a", 6)
	if got := len(hd.takeStarts()); got != 6 {
		t.Fatalf("the head was given %d attempts, want its depth 6", got)
	}
	h.d.Heartbeat(hd, protocol.Heartbeat{Cluster: &protocol.ClusterStatus{Nodes: 2, CPUs: 4, Depth: 9}})
	h.settle()
	if got := len(hd.takeStarts()); got != 3 {
		t.Fatalf("after asking for 9: %d more attempts, want 3", got)
	}
	hd.end(1, 1, ok(time.Second))
	hd.end(1, 1, ok(time.Second)) // sent again after a reconnect: stale, still taken
	h.golden("head")
}

// TestHeadCutKeepsItsAttempts checks that a head whose connection drops
// keeps the attempts it holds for HeadTimeout, past the heartbeat
// timeout of a node (its cluster works on through a cut), and that a
// cluster said lost has them run elsewhere at once.
func TestHeadCutKeepsItsAttempts(t *testing.T) {
	h := newHarness(t, 4, sched.FCFS, nil, func(c *Config) { c.Grid = true; c.HeadTimeout = time.Hour })
	a, b := h.node("a"), h.node("b")
	a.joinHead("head-a", "a", 4)
	if got := len(a.takeStarts()); got != 4 {
		t.Fatalf("head a was given %d attempts, want 4", got)
	}
	b.joinHead("head-b", "b", 4)
	a.gone()
	h.beats(time.Minute, b) // six heartbeat timeouts of a node
	if got := b.takeStarts(); len(got) != 0 {
		t.Fatalf("the cut head's attempts moved to b: %v", got)
	}
	h.d.LoseCluster("a", "its machine cannot be reached")
	h.settle()
	if got := len(b.takeStarts()); got != 4 {
		t.Fatalf("after cluster a was lost, b was given %d attempts, want its 4", got)
	}
	h.golden("headcut")
}

// TestGridDeciderRunsASweep drives a grid's root under mec: the
// coordinator's allocator (sched.Grid) sends the jobs to the heads by
// their slots (from their heartbeats), takes their starts, and ends the
// run once every job is done.
func TestGridDeciderRunsASweep(t *testing.T) {
	h := newHarness(t, 12, sched.MEC, nil, func(c *Config) { c.Grid = true })
	a, b := h.node("a"), h.node("b")
	a.joinHead("head-a", "a", 4)
	b.joinHead("head-b", "b", 4)
	for _, n := range []*fakeNode{a, b} {
		h.d.Heartbeat(n, protocol.Heartbeat{Cluster: &protocol.ClusterStatus{Nodes: 1, CPUs: 2, Slots: 2, Depth: 4}})
	}
	h.settle()
	done := 0
	// An attempt withdrawn after this fake head took it, but before it
	// said so, still "ends" here; the store counts each job once.
	for round := 0; done < 12 && round < 50; round++ {
		for _, n := range []*fakeNode{a, b} {
			for _, s := range n.takeStarts() {
				if n.withdrew(s.Job, s.Attempt) {
					// Withdrawn from its queue before it started: the
					// head says it gave it back.
					n.end(s.Job, s.Attempt, protocol.Result{Error: "cancelled by the root", Cancelled: true})
					continue
				}
				h.d.Ended(n, protocol.Event{Kind: protocol.EventStarted, Job: s.Job, Attempt: s.Attempt})
				h.clock.advance(time.Second)
				n.end(s.Job, s.Attempt, ok(time.Second))
				done++
			}
		}
		h.beats(time.Second, a, b)
	}
	if done < 12 {
		t.Fatalf("%d attempts ended, want at least one per job (12); trace:\n%s", done, strings.Join(h.trace, "\n"))
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 12 {
		t.Fatalf("counts %v, want 12 done", counts)
	}
}

// TestHeadCancelledEndIsNoFailure checks that a head's end of an attempt
// cancelled by a root (Result.Cancelled) which this root does not await
// (a root started again since took the attempt back) is no failure of
// the job: it runs again, and the run ends with every job done.
func TestHeadCancelledEndIsNoFailure(t *testing.T) {
	h := newHarness(t, 2, sched.FCFS, nil)
	hd := h.node("h")
	hd.joinHead("head-a", "a", 2)
	starts := hd.takeStarts()
	if len(starts) != 2 {
		t.Fatalf("the head was given %d attempts, want 2", len(starts))
	}
	hd.end(starts[0].Job, starts[0].Attempt, protocol.Result{Error: "cancelled by the root", Cancelled: true})
	again := hd.takeStarts()
	if len(again) != 1 || again[0].Job != starts[0].Job || again[0].Attempt != starts[0].Attempt+1 {
		t.Fatalf("after the cancelled end, starts %+v, want job %d again", again, starts[0].Job)
	}
	hd.end(again[0].Job, again[0].Attempt, ok(time.Second))
	hd.end(starts[1].Job, starts[1].Attempt, ok(time.Second))
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 2 || counts[store.Failed] != 0 {
		t.Fatalf("counts %v, want 2 done and none failed", counts)
	}
}

// TestGridWithdrawWaitsForASilentHead withdraws jobs from a head whose
// link has stalled (it holds them, and answers nothing for a minute):
// the root waits for its answer as long as it keeps the head, not the
// ten heartbeats it gives a node, so the withdrawn jobs go out again
// once the head says they stopped, and the run ends with every job done
// (it never ended before: the root stopped waiting, and the grid waited
// for ever for the withdrawn jobs to come back).
func TestGridWithdrawWaitsForASilentHead(t *testing.T) {
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
	run := func(n *fakeNode) {
		for _, s := range n.takeStarts() {
			h.d.Ended(n, protocol.Event{Kind: protocol.EventStarted, Job: s.Job, Attempt: s.Attempt})
			n.end(s.Job, s.Attempt, ok(time.Second))
		}
	}
	for range 60 { // a minute of a's silence
		run(b)
		h.beats(time.Second, b)
	}
	pulled := 0
	for _, s := range held {
		if a.withdrew(s.Job, s.Attempt) {
			pulled++
			a.end(s.Job, s.Attempt, protocol.Result{Error: "cancelled by the root", Cancelled: true})
			continue
		}
		h.d.Ended(a, protocol.Event{Kind: protocol.EventStarted, Job: s.Job, Attempt: s.Attempt})
		a.end(s.Job, s.Attempt, ok(time.Second))
	}
	if pulled == 0 {
		t.Fatal("the grid withdrew nothing from the silent head: the test shows nothing")
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
		t.Fatalf("counts %v, want 12 done (%d withdrawn from the silent head)", counts, pulled)
	}
}
