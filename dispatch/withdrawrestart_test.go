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

// withdrawnAt records what a root records once a head confirmed it gave
// back attempt n of job, which the root withdrew from its queue to send
// the job elsewhere: the attempt cancelled, the job pending.
func (h *harness) withdrawnAt(job int64, n int, head string) {
	h.t.Helper()
	var b store.Batch
	b.Finish(h.exp.ID, store.Attempt{Job: job, N: n, Node: head, State: store.AttemptCancelled, Ended: h.clock.Now(),
		Error: "withdrawn from cluster a's queue, to go where it is expected to finish sooner"}, store.Pending)
	if err := h.st.Apply(context.Background(), &b); err != nil {
		h.t.Fatal(err)
	}
}

// states are the states of job's attempts, in order.
func (h *harness) states(job int64) []string {
	var out []string
	h.st.Attempts(context.Background(), h.exp.ID, job, func(at store.Attempt) error {
		out = append(out, at.State)
		return nil
	})
	return out
}

// TestRootRestartAdoptsWithdrawnAttempt: a root was withdrawing an
// attempt from a head's queue (it stays recorded running until the head
// answers) and was killed before the head did. The head had begun it
// meanwhile, and still holds it when the root started again: the root
// takes it back as running, so the job does not run a second time
// elsewhere; its end is the job's. When the head had given it back, its
// end says it was cancelled, and the job runs again. An attempt whose
// giving back the root recorded (cancelled) is not taken back, though
// the head still lists it (its end not yet forgotten): the job runs
// again.
func TestRootRestartAdoptsWithdrawnAttempt(t *testing.T) {
	for _, c := range []string{"ran", "given back", "recorded"} {
		const jobs = 2
		h := newHarness(t, jobs, sched.FCFS, nil)
		a := h.node("a")
		a.joinHead("head-a", "a", jobs)
		if got := len(a.takeStarts()); got != jobs {
			t.Fatalf("head a was given %d attempts, want %d", got, jobs)
		}
		var meanwhile []func()
		if c == "recorded" {
			meanwhile = append(meanwhile, func() { h.withdrawnAt(2, 1, "head-a") })
		}
		h2 := h.restart(jobs, meanwhile...)
		a2 := h2.node("a")
		a2.rejoinHead("head-a", "a", jobs, protocol.AttemptRef{Job: 1, Attempt: 1, Started: true},
			protocol.AttemptRef{Job: 2, Attempt: 1, Started: true})
		at, _ := h2.attempt(2, 1)
		if adopted := at.State == store.AttemptRunning && at.Node == "head-a"; adopted != (c != "recorded") {
			t.Errorf("%s: the withdrawn attempt 2.1 after head-a came back: %s on %s, adopted %v", c, at.State, at.Node, adopted)
		}
		a2.end(1, 1, ok(time.Second))
		switch c {
		case "ran":
			if s := a2.takeStarts(); len(s) != 0 {
				t.Errorf("%s: the new root started %v on head-a, which holds both jobs", c, s)
			}
			a2.end(2, 1, ok(time.Second))
		default:
			if c == "given back" {
				if s := a2.takeStarts(); len(s) != 0 {
					t.Errorf("%s: the new root started %v on head-a, which holds both jobs", c, s)
				}
			}
			a2.end(2, 1, protocol.Result{Error: "cancelled by the root", Cancelled: true})
			s := a2.takeStarts()
			if len(s) != 1 || s[0].Job != 2 {
				t.Fatalf("%s: after head-a said it stopped 2.1: starts %v, want job 2 again", c, s)
			}
			a2.end(2, s[0].Attempt, ok(time.Second))
		}
		if err := h2.wait(); err != nil {
			t.Fatal(err)
		}
		if h2.sum.Done != jobs {
			t.Errorf("%s: summary: %d done, want %d", c, h2.sum.Done, jobs)
		}
		want := []string{store.AttemptOK}
		if c != "ran" {
			want = []string{store.AttemptCancelled, store.AttemptOK}
		}
		if got := h2.states(2); !slices.Equal(got, want) {
			t.Errorf("%s: job 2's attempts %v, want %v", c, got, want)
		}
	}
}
