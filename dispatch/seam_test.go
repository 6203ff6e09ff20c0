package dispatch

import (
	"testing"
	"time"

	"orrery/sched"
	"orrery/store"
)

// TestReportOfAnotherNodesAttempt: a node's reports count only for the
// attempts the dispatcher gave that node. An end reported by another
// node for them (a confused or hostile agent) changes nothing: the
// attempt stays running on its node, and that node's own report ends it.
func TestReportOfAnotherNodesAttempt(t *testing.T) {
	h := newHarness(t, 2, sched.FCFS, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, true)
	b.join("b", 1, true)
	sa, sb := a.takeStarts(), b.takeStarts()
	if len(sa) != 1 || len(sb) != 1 {
		t.Fatalf("starts: a %v, b %v; want one each", sa, sb)
	}
	b.end(sa[0].Job, sa[0].Attempt, ok(time.Second))
	if at, _ := h.attempt(sa[0].Job, sa[0].Attempt); at.State != store.AttemptRunning || at.Node != "a" {
		t.Fatalf("after b reported a's attempt %d.%d: %s on %s, want still running on a", sa[0].Job, sa[0].Attempt, at.State, at.Node)
	}
	a.end(sa[0].Job, sa[0].Attempt, ok(time.Second))
	b.end(sb[0].Job, sb[0].Attempt, ok(time.Second))
	for _, s := range append(sa, sb...) {
		if at, _ := h.attempt(s.Job, s.Attempt); at.State != store.AttemptOK {
			t.Errorf("attempt %d.%d: %s, want ok", s.Job, s.Attempt, at.State)
		}
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
}
