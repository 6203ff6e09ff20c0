package dispatch

// Attacks on the root through the head seam: a node that joined with
// the join token (or a certificate enrolled with it) claiming to be a
// cluster head, a head claiming another head's attempts after a root
// restart, a head's heartbeat with absurd numbers, and ends replayed or
// reported for another head's attempts.

import (
	"math"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// claimHead has the node register as a head of cluster with depth, from
// a connection whose certificate is not a head's (Joining.Head unset):
// what any node enrolled with the join token can send.
func (n *fakeNode) claimHead(id, cluster string, depth int) {
	n.h.log("-- %s claims to be head %q of cluster %s (depth %d)", n.name, id, cluster, depth)
	n.h.d.Joined(n, Joining{ID: id, Resumable: true, Register: protocol.Register{Version: protocol.Version,
		Name: n.name, CPUs: maxCPUs, JobLimit: depth, Head: true, Cluster: cluster}})
	n.h.settle()
}

// TestAttackAgentClaimsHead: a node that is not a head the root started
// says Register.Head with the largest depth. It must not hoard the sweep
// (a head gets no slow start, up to maxHeadDepth attempts, kept through
// a cut for HeadTimeout): it gets at most a plain node's first jobs and
// is not taken for the cluster it names, in a grid run or outside one.
func TestAttackAgentClaimsHead(t *testing.T) {
	for _, grid := range []bool{false, true} {
		var prog progressLog
		h := newHarness(t, 200, sched.FCFS, nil, prog.opt, func(c *Config) { c.Grid = grid; c.HeadTimeout = time.Hour })
		evil := h.node("evil")
		evil.claimHead("evil", "monash", maxHeadDepth)
		if got := len(evil.takeStarts()); got > slowStart {
			t.Errorf("grid=%v: a node claiming to be a head was given %d attempts at once, want at most %d (slow start)", grid, got, slowStart)
		}
		h.report()
		for _, c := range prog.get().Clusters {
			t.Errorf("grid=%v: a node that is no head the root started is taken as the head of cluster %s", grid, c.Name)
		}
	}
}

// TestAttackHeadAdoptsOthersAttempts: after a root restart, a head (a
// real one, of another cluster) registers as still running attempts
// that another head held. They are not adopted by it: they stay the
// other head's, which takes them back when it returns.
func TestAttackHeadAdoptsOthersAttempts(t *testing.T) {
	const jobs = 4
	h := newHarness(t, jobs, sched.FCFS, nil)
	a := h.node("a")
	a.joinHead("head-a", "a", jobs)
	if got := len(a.takeStarts()); got != jobs {
		t.Fatalf("head a was given %d attempts, want %d", got, jobs)
	}
	h2 := h.restart(jobs)
	x := h2.node("x")
	x.rejoinHead("head-x", "x", 1, protocol.AttemptRef{Job: 2, Attempt: 1}, protocol.AttemptRef{Job: 3, Attempt: 1})
	for _, job := range []int64{2, 3} {
		if at, _ := h2.attempt(job, 1); at.State != store.AttemptInterrupted || at.Node != "head-a" {
			t.Errorf("attempt %d.1 of head-a after head-x claimed it: %s on %s, want interrupted on head-a", job, at.State, at.Node)
		}
	}
	a2 := h2.node("a")
	a2.rejoinHead("head-a", "a", jobs, protocol.AttemptRef{Job: 2, Attempt: 1}, protocol.AttemptRef{Job: 3, Attempt: 1},
		protocol.AttemptRef{Job: 4, Attempt: 1})
	for _, job := range []int64{2, 3, 4} {
		if at, _ := h2.attempt(job, 1); at.State != store.AttemptRunning || at.Node != "head-a" {
			t.Errorf("attempt %d.1 after head-a came back: %s on %s, want running on head-a (adopted)", job, at.State, at.Node)
		}
	}
}

// rejoinHead has the node register as a head that still holds running.
func (n *fakeNode) rejoinHead(id, cluster string, depth int, running ...protocol.AttemptRef) {
	n.h.log("-- %s joins as head %q of cluster %s (depth %d, running %v)", n.name, id, cluster, depth, running)
	n.h.d.Joined(n, Joining{ID: id, Resumable: true, Head: true, Register: protocol.Register{Version: protocol.Version,
		Name: n.name, CPUs: 4, JobLimit: depth, Head: true, Cluster: cluster, Running: running}})
	n.h.settle()
}

// TestAttackHeadAbsurdStatus: a head's heartbeat with negative and huge
// numbers. Its job limit stays within maxHeadDepth, and the cluster's
// view (orrery status, clusters.json) shows no negative count nor more
// CPUs or depth than the root would take from a node.
func TestAttackHeadAbsurdStatus(t *testing.T) {
	var prog progressLog
	h := newHarness(t, 10, sched.FCFS, nil, prog.opt, func(c *Config) { c.Grid = true })
	hd := h.node("h")
	hd.joinHead("head-a", "a", 2)
	h.d.Heartbeat(hd, protocol.Heartbeat{Cluster: &protocol.ClusterStatus{Nodes: -5, CPUs: math.MaxInt,
		Running: math.MaxInt, Queued: -3, Depth: math.MaxInt}})
	h.settle()
	h.report()
	c := cluster(t, prog.get(), "a")
	if c.Nodes < 0 || c.CPUs < 0 || c.CPUs > maxCPUs || c.Depth < 0 || c.Depth > maxHeadDepth || c.Running < 0 || c.Queued < 0 {
		t.Errorf("cluster view from an absurd heartbeat: %+v", c)
	}
	h.d.Heartbeat(hd, protocol.Heartbeat{Cluster: &protocol.ClusterStatus{Nodes: 1, CPUs: -7, Depth: -1}})
	h.settle()
	h.report()
	if c := cluster(t, prog.get(), "a"); c.CPUs < 0 || c.Depth < 0 {
		t.Errorf("cluster view from a negative heartbeat: %+v", c)
	}
}

// TestAttackHeadReplaysEnds: a head reports an end twice (as after a
// reconnect), and another head reports the end of an attempt it was
// never given. The job counts once, and the other head's report changes
// nothing of the attempt.
func TestAttackHeadReplaysEnds(t *testing.T) {
	var prog progressLog
	h := newHarness(t, 4, sched.FCFS, nil, prog.opt, func(c *Config) { c.Grid = true })
	a, b := h.node("a"), h.node("b")
	a.joinHead("head-a", "a", 2)
	starts := a.takeStarts()
	if len(starts) != 2 {
		t.Fatalf("head a was given %d attempts, want 2", len(starts))
	}
	b.joinHead("head-b", "b", 2)
	b.takeStarts()
	a.end(starts[0].Job, starts[0].Attempt, ok(time.Second))
	a.end(starts[0].Job, starts[0].Attempt, ok(time.Second))
	b.end(starts[1].Job, starts[1].Attempt, ok(time.Second))
	h.report()
	if at, _ := h.attempt(starts[1].Job, starts[1].Attempt); at.State != store.AttemptRunning || at.Node != "head-a" {
		t.Errorf("attempt %d.%d after another head reported its end: %s on %s, want running on head-a",
			starts[1].Job, starts[1].Attempt, at.State, at.Node)
	}
	p := prog.get()
	if p.Done != 1 || cluster(t, p, "a").Done != 1 || cluster(t, p, "b").Done != 0 {
		t.Errorf("after one job ended (reported twice) and a forged end: done %d, cluster a %d, b %d; want 1, 1, 0",
			p.Done, cluster(t, p, "a").Done, cluster(t, p, "b").Done)
	}
}
