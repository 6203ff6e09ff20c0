package dispatch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// broken is what a node whose job directories are gone reports for
// every attempt.
func broken(node string) protocol.Result {
	return protocol.Result{System: true, Error: "job directory on node " + node + ": lstat /x/slot1: no such file or directory"}
}

// failAll reports every start the node holds as a system failure.
func (h *harness) failAll(n *fakeNode) int {
	starts := n.takeStarts()
	for _, s := range starts {
		n.end(s.Job, s.Attempt, broken(n.name))
	}
	return len(starts)
}

// outOfService returns the nodes out of service as the store has them,
// as "node: reason".
func (h *harness) outOfService() []string {
	h.t.Helper()
	nodes, err := h.st.NodesOutOfService(context.Background(), h.exp.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for _, n := range nodes {
		out = append(out, n.Node+": "+n.Reason)
	}
	return out
}

// TestBlackHoleNode: node a fails every attempt as a system failure
// within milliseconds. It is taken out of service (an event in the store,
// before anything else is decided) and gets no more attempts; the jobs
// it failed get their retries back and run on b, so every job ends
// done, none failed.
func TestBlackHoleNode(t *testing.T) {
	h := newHarness(t, 12, sched.FCFS, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 2, false)
	b.join("b", 1, false)
	for h.failAll(a)+h.endAll(b, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 12 || counts[store.Failed] != 0 {
		t.Fatalf("counts %v, want 12 done", counts)
	}
	outs := h.outOfService()
	want := "a: 5 system failures in a row; the last: job directory on node a: lstat /x/slot1: no such file or directory"
	if len(outs) != 1 || outs[0] != want {
		t.Fatalf("out of service: %q, want [%q]", outs, want)
	}
	if h.sum.OutOfService != 1 || h.sum.Nodes != 2 {
		t.Errorf("progress: %d nodes, %d out of service; want 2 and 1", h.sum.Nodes, h.sum.OutOfService)
	}
	h.log("-- out of service: %q", outs)
	h.golden("blackhole")
}

// TestEveryNodeOutOfService: once a is out of service and b, the last
// node in service, is lost, no node is left to run the jobs: the run
// waits for a node as long as Config.NoNodes says (not less), then ends
// with an error that says every node is out of service, and why; the
// jobs left are pending (a later run does them), not failed.
func TestEveryNodeOutOfService(t *testing.T) {
	h := newHarness(t, 12, sched.FCFS, nil, func(c *Config) { c.NoNodes = 5 * time.Second })
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, false)
	b.join("b", 1, false)
	for len(h.outOfService()) == 0 {
		if h.failAll(a) == 0 {
			t.Fatal("a has no attempt left to fail and is still in service")
		}
	}
	b.gone()
	h.clock.advance(4 * time.Second)
	h.settle()
	select {
	case err := <-h.done:
		t.Fatalf("Run ended before the wait for a node was over: %v", err)
	default:
	}
	h.clock.advance(2 * time.Second)
	h.settle()
	err := h.wait()
	var oos *OutOfServiceError
	if !errors.As(err, &oos) || !errors.Is(err, ErrAllOutOfService) || !strings.Contains(err.Error(), "node a: 5 system failures in a row") {
		t.Fatalf("Run: %v, want an error that every node is out of service, and why", err)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Failed] != 0 || counts[store.Pending] == 0 {
		t.Fatalf("counts %v, want jobs pending and none failed", counts)
	}
}

// nodeBroken is what a node whose job directories cannot be made reports:
// a failure on the node's side.
func nodeBroken(node string) protocol.Result {
	return protocol.Result{System: true, Side: protocol.SideNode, Error: "job directory on node " + node + ": mkdir /x/slot1: not a directory"}
}

// TestOnlyNodeBroken: the only node fails every attempt on its own side
// (its job directory). It is taken out of service although it is the
// last, no job is charged for it, and the run waits for a node
// (Config.NoNodes), then ends saying which node is out of service and
// why, every job that ran left pending.
func TestOnlyNodeBroken(t *testing.T) {
	h := newHarness(t, 12, sched.FCFS, nil, func(c *Config) { c.NoNodes = 2 * time.Second })
	a := h.node("a")
	a.join("a", 1, false)
	for len(h.outOfService()) == 0 {
		starts := a.takeStarts()
		if len(starts) == 0 {
			t.Fatal("a has no attempt left to fail and is still in service")
		}
		for _, s := range starts {
			a.end(s.Job, s.Attempt, nodeBroken("a"))
		}
	}
	h.clock.advance(3 * time.Second)
	h.settle()
	err := h.wait()
	var oos *OutOfServiceError
	if !errors.As(err, &oos) || len(oos.Nodes) != 1 || oos.Nodes[0].Node != "a" ||
		!strings.Contains(oos.Nodes[0].Reason, "job directory on node a") {
		t.Fatalf("Run: %v, want node a out of service, and why", err)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Failed] != 0 || counts[store.Done] != 0 || counts[store.Pending] < sched.BlackHole {
		t.Fatalf("counts %v, want the jobs that ran pending, none failed", counts)
	}
}

// TestLastNodeComesBack: a is out of service and b, the last node in
// service, drops its connection for a moment: the run waits (for ever by
// default) instead of ending, and once b is back every job is done.
func TestLastNodeComesBack(t *testing.T) {
	h := newHarness(t, 8, sched.FCFS, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, false)
	b.join("b", 1, true)
	for len(h.outOfService()) == 0 {
		if h.failAll(a) == 0 {
			t.Fatal("a has no attempt left to fail and is still in service")
		}
	}
	running := b.takeStarts()
	b.gone()
	h.clock.advance(5 * time.Second)
	h.settle()
	select {
	case err := <-h.done:
		t.Fatalf("Run ended while b was away for a moment: %v", err)
	default:
	}
	b2 := h.node("b2")
	var refs []protocol.AttemptRef
	for _, s := range running {
		refs = append(refs, protocol.AttemptRef{Job: s.Job, Attempt: s.Attempt})
	}
	b2.join("b", 1, true, refs...)
	for _, s := range running {
		b2.end(s.Job, s.Attempt, ok(time.Second))
	}
	for h.endAll(b2, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 8 {
		t.Fatalf("counts %v, want 8 done", counts)
	}
}

// TestRootSideFailuresNotTheNodes: attempts that fail because the root's
// side failed for a passing reason (the node reports Side root; the state
// directory can still be written) never take a node out of service,
// however many: the jobs pay for them with their retries, as for a lost
// connection.
func TestRootSideFailuresNotTheNodes(t *testing.T) {
	h := newHarness(t, 3, sched.FCFS, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, false)
	b.join("b", 1, false)
	full := protocol.Result{System: true, Side: protocol.SideRoot, Error: "h.pln:4:2: copy node:out.txt root:results/out-1.txt: failure on the root's side\nresource temporarily unavailable"}
	for {
		starts := append(a.takeStarts(), b.takeStarts()...)
		if len(starts) == 0 {
			break
		}
		for _, s := range starts {
			n := a
			if at, _ := h.attempt(s.Job, s.Attempt); at.Node == "b" {
				n = b
			}
			n.end(s.Job, s.Attempt, full)
		}
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if outs := h.outOfService(); len(outs) != 0 {
		t.Fatalf("out of service: %q, want none", outs)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Failed] != 3 {
		t.Fatalf("counts %v, want the 3 jobs failed after their retries", counts)
	}
}
