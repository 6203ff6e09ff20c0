package dispatch

import (
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
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
