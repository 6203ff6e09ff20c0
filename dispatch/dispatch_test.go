package dispatch

import (
	"context"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// beats lets d pass in steps of 5 s, the nodes sending heartbeats.
func (h *harness) beats(d time.Duration, nodes ...*fakeNode) {
	h.log("-- %s pass; %d nodes send heartbeats", d, len(nodes))
	for d > 0 {
		step := min(d, 5*time.Second)
		h.clock.advance(step)
		d -= step
		for _, n := range nodes {
			h.d.Heartbeat(n, protocol.Heartbeat{})
		}
		h.settle()
	}
}

// endAll reports every start the node holds as done, after d.
func (h *harness) endAll(n *fakeNode, d time.Duration) int {
	starts := n.takeStarts()
	h.clock.advance(d)
	for _, s := range starts {
		n.end(s.Job, s.Attempt, ok(d))
	}
	return len(starts)
}

// TestSweepOnTwoNodes runs a sweep on two nodes with job limits and
// pins the dispatcher's actions in a golden trace.
func TestSweepOnTwoNodes(t *testing.T) {
	h := newHarness(t, 6, sched.FCFS, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 2, false)
	b.join("b", 1, false)
	for h.endAll(a, time.Second)+h.endAll(b, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 6 {
		t.Fatalf("counts %v, want 6 done", counts)
	}
	h.golden("sweep")
}

// TestHeartbeatsMissed loses a node whose heartbeats stop: its attempts
// are recorded lost and run again on the other node; a late report of
// the lost attempt is discarded, so each job has one result.
func TestHeartbeatsMissed(t *testing.T) {
	h := newHarness(t, 3, sched.FCFS, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 2, true)
	h.clock.advance(5 * time.Second)
	b.join("b", 1, true)
	h.beats(6*time.Second, b) // a silent for 11 s: past 10 heartbeats
	late := a.takeStarts()
	if len(late) != 2 {
		t.Fatalf("a had %d starts, want 2", len(late))
	}
	a.end(late[0].Job, late[0].Attempt, ok(time.Second)) // too late: discarded
	for h.endAll(b, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	for _, s := range late {
		at, _ := h.attempt(s.Job, s.Attempt)
		if at.State != store.AttemptLost {
			t.Errorf("attempt %d.%d is %s, want lost", s.Job, s.Attempt, at.State)
		}
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 3 {
		t.Fatalf("counts %v, want 3 done", counts)
	}
	h.golden("heartbeats-missed")
}

// TestReconnectResumes has a node come back within the heartbeat
// timeout: the attempt it still runs goes on (its result counts, it is
// not run again), the one it lost runs again, and a start decided while
// it was away reaches it when it is back.
func TestReconnectResumes(t *testing.T) {
	h := newHarness(t, 3, sched.FCFS, nil)
	a := h.node("a")
	a.join("a", 2, true)
	first := a.takeStarts()
	if len(first) != 2 {
		t.Fatalf("%d starts, want 2", len(first))
	}
	a.gone()
	h.clock.advance(3 * time.Second)
	a2 := h.node("a'")
	// It still runs the first attempt; the second's start was lost.
	a2.join("a", 2, true, protocol.AttemptRef{Job: first[0].Job, Attempt: first[0].Attempt})
	a2.end(first[0].Job, first[0].Attempt, ok(4*time.Second))
	for h.endAll(a2, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if at, _ := h.attempt(first[0].Job, first[0].Attempt); at.State != store.AttemptOK {
		t.Errorf("resumed attempt is %s, want ok", at.State)
	}
	if at, _ := h.attempt(first[1].Job, first[1].Attempt); at.State != store.AttemptLost {
		t.Errorf("lost attempt is %s, want lost", at.State)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 3 {
		t.Fatalf("counts %v, want 3 done", counts)
	}
	h.golden("reconnect")
}

// TestReconnectTooLate has a node come back after the heartbeat timeout:
// its jobs ran elsewhere, its old attempt is cancelled and its late
// result discarded.
func TestReconnectTooLate(t *testing.T) {
	h := newHarness(t, 2, sched.FCFS, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, true)
	first := a.takeStarts()
	a.gone()
	b.join("b", 1, true)
	h.beats(11*time.Second, b)
	a2 := h.node("a'")
	a2.join("a", 1, true, protocol.AttemptRef{Job: first[0].Job, Attempt: first[0].Attempt})
	a2.end(first[0].Job, first[0].Attempt, ok(12*time.Second))
	for h.endAll(b, time.Second)+h.endAll(a2, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	var results int
	h.st.Attempts(context.Background(), h.exp.ID, 0, func(at store.Attempt) error {
		if at.State == store.AttemptOK {
			results++
		}
		return nil
	})
	if results != 2 {
		t.Fatalf("%d ok attempts for 2 jobs, want exactly one each", results)
	}
	h.golden("reconnect-too-late")
}

// TestUntrustedNodeMeasured: a node the root did not start cannot claim
// speed, and what it says it used is bounded by what the root observed.
func TestUntrustedNodeMeasured(t *testing.T) {
	h := newHarness(t, 1, sched.Orrery, nil)
	a := h.node("a")
	h.d.Joined(a, Joining{ID: "a", Resumable: true, Register: protocol.Register{Version: protocol.Version,
		Name: "a", CPUs: 2, JobLimit: 1, Speed: 1000, Memory: 1 << 30}})
	h.settle()
	s := a.takeStarts()
	if len(s) != 1 {
		t.Fatalf("%d starts", len(s))
	}
	h.clock.advance(3 * time.Second)
	zero := 0
	a.end(s[0].Job, s[0].Attempt, protocol.Result{OK: true, Exit: &zero, Wall: time.Millisecond,
		CPU: 1000 * time.Hour, MaxRSS: 1 << 62})
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	at, _ := h.attempt(s[0].Job, s[0].Attempt)
	if at.Wall != 3*time.Second || at.CPU != 6*time.Second || at.MaxRSS != 2<<30 {
		t.Fatalf("recorded wall %v cpu %v rss %d; want the root's 3s, ≤ 6s, ≤ 2 GiB", at.Wall, at.CPU, at.MaxRSS)
	}
}

// TestStartToDisconnectedNodeWaits: a start decided for a node whose
// connection dropped is recorded and sent when it is back.
func TestNodeGoneWithoutResume(t *testing.T) {
	h := newHarness(t, 2, sched.FCFS, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, false)
	a.gone() // a node the root started: it cannot come back
	b.join("b", 1, false)
	for h.endAll(b, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	h.golden("gone")
}

// TestSilentWorkerDuplicated: a node that keeps sending heartbeats but
// never finishes its job: once nothing else waits, the job is duplicated
// on the idle node (as a straggler is), its result counts, and the
// hanging attempt is cancelled.
func TestSilentWorkerDuplicated(t *testing.T) {
	h := newHarness(t, 8, sched.Orrery, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, true)
	b.join("b", 1, true)
	hung := a.takeStarts()
	var dup []protocol.Start
	for i := 0; i < 60 && len(dup) == 0; i++ {
		h.beats(time.Second, a, b)
		for _, s := range b.takeStarts() {
			if s.Job == hung[0].Job {
				dup = append(dup, s)
				continue
			}
			b.end(s.Job, s.Attempt, ok(time.Second))
		}
	}
	if len(dup) != 1 || dup[0].Job != hung[0].Job {
		t.Fatalf("no duplicate of the hung job %d on the idle node after 60 s (got %v)", hung[0].Job, dup)
	}
	b.end(dup[0].Job, dup[0].Attempt, ok(time.Second))
	// a never confirms the cancel: the run stops waiting for it after
	// the heartbeat timeout.
	h.beats(11*time.Second, a, b)
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if at, _ := h.attempt(hung[0].Job, hung[0].Attempt); at.State != store.AttemptCancelled {
		t.Errorf("hung attempt is %s, want cancelled", at.State)
	}
}

// TestProvenIDNeverRenamed: a network node whose proven ID is the name
// of a node the root started is refused, not renamed (a renamed ID could
// later be enrolled by another identity and take the node's attempts);
// a node showing its own ID again resumes.
func TestProvenIDNeverRenamed(t *testing.T) {
	h := newHarness(t, 4, sched.FCFS, nil)
	emb := h.node("local1")
	emb.join("", 1, false) // named from its register
	clash := h.node("clash")
	clash.join("local1", 2, true)
	clash.mu.Lock()
	closed, got := clash.closed, len(clash.starts)
	clash.mu.Unlock()
	if !closed || got != 0 {
		t.Fatalf("a proven ID equal to a root node's name: closed %v, %d starts; want refused", closed, got)
	}
	x := h.node("x")
	x.join("x", 1, true)
	s := x.takeStarts()
	x.gone()
	x2 := h.node("x'")
	x2.join("x", 1, true, protocol.AttemptRef{Job: s[0].Job, Attempt: s[0].Attempt})
	x2.end(s[0].Job, s[0].Attempt, ok(time.Second))
	if at, _ := h.attempt(s[0].Job, s[0].Attempt); at.State != store.AttemptOK || at.Node != "x" {
		t.Fatalf("resumed attempt: %s on %s, want ok on x", at.State, at.Node)
	}
}

// TestSlowStart: a node the root did not start gets 4 jobs at first,
// whatever it claims, and two more for each it finishes.
func TestSlowStart(t *testing.T) {
	h := newHarness(t, 20, sched.FCFS, nil)
	a := h.node("a")
	a.join("a", 100, true)
	first := a.takeStarts()
	if len(first) != slowStart {
		t.Fatalf("%d starts at first, want %d", len(first), slowStart)
	}
	a.end(first[0].Job, first[0].Attempt, ok(time.Second))
	if more := a.takeStarts(); len(more) != 3 {
		t.Fatalf("%d starts after one job ended, want 3 (its slot and two more)", len(more))
	}
}
