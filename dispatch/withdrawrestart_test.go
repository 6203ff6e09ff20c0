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

// withdrawnAt records what a root records when it withdraws attempt n
// of job from head's queue to send the job elsewhere (cancel): the
// attempt cancelled, the job pending; the head has not yet said it
// stopped it.
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

// TestRootRestartAdoptsWithdrawnAttempt: a root withdrew an attempt from
// a head's queue (recorded cancelled, the job pending until the head
// says it stopped it) and was killed before the head said so. The head
// had begun it meanwhile (or never heard the cancel), and still holds it
// when the root started again: the root takes it back as running, so
// the job does not run a second time elsewhere; its end is the job's.
// When the head did stop it, its end says it was cancelled, and the job
// runs again.
func TestRootRestartAdoptsWithdrawnAttempt(t *testing.T) {
	for _, stopped := range []bool{false, true} {
		const jobs = 2
		h := newHarness(t, jobs, sched.FCFS, nil)
		a := h.node("a")
		a.joinHead("head-a", "a", jobs)
		if got := len(a.takeStarts()); got != jobs {
			t.Fatalf("head a was given %d attempts, want %d", got, jobs)
		}
		h2 := h.restart(jobs, func() { h.withdrawnAt(2, 1, "head-a") })
		a2 := h2.node("a")
		a2.rejoinHead("head-a", "a", jobs, protocol.AttemptRef{Job: 1, Attempt: 1, Started: true},
			protocol.AttemptRef{Job: 2, Attempt: 1, Started: true})
		if at, _ := h2.attempt(2, 1); at.State != store.AttemptRunning || at.Node != "head-a" {
			t.Errorf("stopped=%v: the withdrawn attempt 2.1 after head-a came back: %s on %s, want running on head-a (adopted)",
				stopped, at.State, at.Node)
		}
		if s := a2.takeStarts(); len(s) != 0 {
			t.Errorf("stopped=%v: the new root started %v on head-a, which holds both jobs", stopped, s)
		}
		a2.end(1, 1, ok(time.Second))
		if stopped {
			a2.end(2, 1, protocol.Result{Error: "cancelled by the root", Cancelled: true})
			s := a2.takeStarts()
			if len(s) != 1 || s[0].Job != 2 {
				t.Fatalf("stopped=%v: after head-a said it stopped 2.1: starts %v, want job 2 again", stopped, s)
			}
			a2.end(2, s[0].Attempt, ok(time.Second))
		} else {
			a2.end(2, 1, ok(time.Second))
		}
		if err := h2.wait(); err != nil {
			t.Fatal(err)
		}
		if h2.sum.Done != jobs {
			t.Errorf("stopped=%v: summary: %d done, want %d", stopped, h2.sum.Done, jobs)
		}
		want := []string{store.AttemptOK}
		if stopped {
			want = []string{store.AttemptCancelled, store.AttemptOK}
		}
		if got := h2.states(2); !slices.Equal(got, want) {
			t.Errorf("stopped=%v: job 2's attempts %v, want %v", stopped, got, want)
		}
	}
}
