package dispatch

import (
	"math"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
)

// perNode has the dispatcher bring Progress.PerNode up to date.
func perNode(cfg *Config) { cfg.PerNode = true }

// nodeIn returns the named node of a progress, failing the test when it
// is not there.
func nodeIn(t *testing.T, p Progress, name string) NodeProgress {
	t.Helper()
	for _, n := range p.PerNode {
		if n.Name == name {
			return n
		}
	}
	t.Fatalf("no node %s in %+v", name, p.PerNode)
	return NodeProgress{}
}

// TestProgressOfNodes follows what Progress says of the nodes and of the
// work: each node's CPUs, speed, job limit, load, memory and the
// resident bytes of its attempts (from its heartbeats, only for attempts
// it runs); the capacity in service and the fastest speed; the work of
// the attempts that succeeded, on a CPU of speed 1, and the longest;
// the changes counted; and a node taken out of service, with why and
// since when, which no longer counts in the capacity.
func TestProgressOfNodes(t *testing.T) {
	var pl progressLog
	h := newHarness(t, 30, sched.FCFS, nil, pl.opt, perNode)
	a, b := h.node("a"), h.node("b")
	h.d.Joined(a, Joining{ID: "a", Trusted: true, Register: protocol.Register{Version: protocol.Version,
		Name: "a", CPUs: 2, JobLimit: 2, Speed: 2, Memory: 1 << 30}})
	h.settle()
	b.join("b", 1, false) // not trusted: speed 1, slow start
	as, bs := a.takeStarts(), b.takeStarts()
	if len(as) != 2 || len(bs) != 1 {
		t.Fatalf("starts: a %d, b %d; want 2 and 1", len(as), len(bs))
	}
	h.d.Heartbeat(a, protocol.Heartbeat{Load: 1.5, Resident: []protocol.Resident{
		{Job: as[0].Job, Attempt: as[0].Attempt, Bytes: 100 << 20},
		{Job: as[1].Job, Attempt: as[1].Attempt, Bytes: 3 << 30}, // more than twice its RAM: 2 GiB
		{Job: bs[0].Job, Attempt: bs[0].Attempt, Bytes: 1 << 20}, // b's: not a's to say
	}})
	h.d.Heartbeat(b, protocol.Heartbeat{Load: math.NaN(), Resident: []protocol.Resident{
		{Job: bs[0].Job, Attempt: bs[0].Attempt, Bytes: -5}}})
	h.settle()
	h.report()
	p := pl.get()
	if p.Changes != 3 {
		t.Errorf("changes %d after 3 starts, want 3", p.Changes)
	}
	if p.Capacity != 5 || p.Fastest != 2 {
		t.Errorf("capacity %g, fastest %g; want 2×2 + 1×1 = 5 and 2", p.Capacity, p.Fastest)
	}
	wantA := NodeProgress{Name: "a", Running: 2, CPUs: 2, Speed: 2, Memory: 1 << 30, Limit: 2, Load: 1.5, Resident: 100<<20 + 2<<30, Started: 2}
	if got := nodeIn(t, p, "a"); got != wantA {
		t.Errorf("a:\n%+v\nwant\n%+v", got, wantA)
	}
	wantB := NodeProgress{Name: "b", Running: 1, CPUs: 1, Speed: 1, Limit: 1, Started: 1}
	if got := nodeIn(t, p, "b"); got != wantB {
		t.Errorf("b:\n%+v\nwant\n%+v", got, wantB)
	}

	// a's attempts end: 3 s each at speed 2 is 6 s of work; what they
	// say their copies took is kept within their wall time.
	h.clock.advance(3 * time.Second)
	r0 := ok(3 * time.Second)
	r0.StagingIn, r0.StagingOut = time.Second, 500*time.Millisecond
	a.end(as[0].Job, as[0].Attempt, r0)
	r1 := ok(4 * time.Second)
	r1.StagingIn, r1.StagingOut = -time.Second, time.Hour
	a.end(as[1].Job, as[1].Attempt, r1)
	for _, c := range []struct {
		s       protocol.Start
		in, out time.Duration
	}{{as[0], time.Second, 500 * time.Millisecond}, {as[1], 0, 4 * time.Second}} {
		at, _ := h.attempt(c.s.Job, c.s.Attempt)
		if at.StagingIn != c.in || at.StagingOut != c.out {
			t.Errorf("attempt %d.%d: staging %v in, %v out; want %v and %v", c.s.Job, c.s.Attempt, at.StagingIn, at.StagingOut, c.in, c.out)
		}
	}
	// b's fails: no work counted.
	one := 1
	b.end(bs[0].Job, bs[0].Attempt, protocol.Result{Exit: &one, Error: "exit status 1", Wall: time.Hour})
	h.report()
	p = pl.get()
	if p.Work != 14 || p.Longest != 8 || p.Worked != 2 {
		t.Errorf("work %g s, longest %g s; want 3×2 + 4×2 = 14 and 8", p.Work, p.Longest)
	}
	// 3 starts, 3 ends, and the starts that took their places.
	if started := int64(len(a.starts) + len(b.starts)); p.Changes != 6+started {
		t.Errorf("changes %d, want 6 + %d started since", p.Changes, started)
	}
	if got := nodeIn(t, p, "a"); got.Resident != 0 {
		t.Errorf("a's resident bytes %d once the attempts it said them of ended, want 0", got.Resident)
	}

	// b fails every attempt outside its job: out of service.
	var outAt time.Time
	for i := 0; i < 20 && len(h.outOfService()) == 0; i++ {
		h.clock.advance(time.Second)
		outAt = h.clock.Now()
		h.failAll(b)
	}
	outs := h.outOfService()
	if len(outs) != 1 {
		t.Fatalf("out of service: %q, want b", outs)
	}
	h.report()
	p = pl.get()
	nb := nodeIn(t, p, "b")
	if !nb.Out || nb.Limit != 0 || "b: "+nb.Reason != outs[0] || !nb.OutSince.Equal(outAt) {
		t.Errorf("b out of service at %v (%q): %+v", outAt, outs[0], nb)
	}
	if na := nodeIn(t, p, "a"); na.Out || na.Reason != "" {
		t.Errorf("a, in service: %+v", na)
	}
	if p.Capacity != 4 || p.Fastest != 2 {
		t.Errorf("capacity %g, fastest %g with b out of service; want 4 and 2", p.Capacity, p.Fastest)
	}
}

// TestProgressOfHeads: a grid's root counts each head for its cluster's
// CPUs in service, as its heartbeat said, at speed 1, with its slots
// for job limit; its attempts' work counts speed 1.
func TestProgressOfHeads(t *testing.T) {
	var pl progressLog
	h := newHarness(t, 12, sched.MEC, nil, pl.opt, perNode, func(c *Config) { c.Grid = true })
	a, b := h.node("a"), h.node("b")
	a.joinHead("head-a", "a", 4)
	b.joinHead("head-b", "b", 4)
	h.d.Heartbeat(a, protocol.Heartbeat{Load: 0.5, Cluster: &protocol.ClusterStatus{Nodes: 2, CPUs: 6, Slots: 3, Depth: 4}})
	h.d.Heartbeat(b, protocol.Heartbeat{Cluster: &protocol.ClusterStatus{Nodes: 0, CPUs: 0, Slots: 0, Depth: 1}})
	h.settle()
	h.report()
	p := pl.get()
	if p.Capacity != 6 || p.Fastest != 1 {
		t.Errorf("capacity %g, fastest %g; want 6 (a's cluster; b's has no CPU in service) and 1", p.Capacity, p.Fastest)
	}
	na := nodeIn(t, p, "head-a")
	if na.Cluster != "a" || na.CPUs != 6 || na.Speed != 1 || na.Limit != 3 || na.Load != 0.5 || na.Out {
		t.Errorf("head-a: %+v; want cluster a, 6 CPUs at speed 1, job limit 3 (its slots)", na)
	}
	starts := a.takeStarts()
	if len(starts) < 2 {
		t.Fatalf("head-a was given %d attempts, want at least 2", len(starts))
	}
	h.d.Ended(a, protocol.Event{Kind: protocol.EventStarted, Job: starts[0].Job, Attempt: starts[0].Attempt})
	h.clock.advance(5 * time.Second)
	a.end(starts[0].Job, starts[0].Attempt, ok(4*time.Second))
	h.clock.advance(time.Second)
	a.end(starts[1].Job, starts[1].Attempt, ok(time.Hour)) // more than the root saw: 7 s
	h.report()
	if p := pl.get(); p.Work != 11 || p.Longest != 7 || p.Worked != 2 {
		t.Errorf("work %g, longest %g; want 4 + 7 = 11 and 7 (a head's attempts count speed 1, the wall time it says, within the root's)", p.Work, p.Longest)
	}
}
