package dispatch

// Attacks through the pilot fields an untrusted node or head sends:
// Register.EndsIn, Heartbeat.Draining, and ClusterStatus.Pilots/Batch.

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// joinEnds has the node register as id with an end endsIn away.
func (n *fakeNode) joinEnds(id string, limit int, resumable bool, endsIn time.Duration) {
	n.h.log("-- %s joins as %q ending in %v", n.name, id, endsIn)
	n.h.d.Joined(n, Joining{ID: id, Resumable: resumable, Register: protocol.Register{Version: protocol.Version,
		Name: n.name, CPUs: 1, JobLimit: limit, Speed: 1, EndsIn: endsIn}})
	n.h.settle()
}

// flood sends beats from another goroutine (the loop's queue is bounded
// and a send blocks), ticking the loop until all are taken.
func (h *harness) flood(n *fakeNode, beats func(i int) protocol.Heartbeat, count int) {
	h.t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range count {
			h.d.Heartbeat(n, beats(i))
		}
	}()
	deadline := time.After(60 * time.Second)
	for {
		select {
		case <-done:
			h.settle()
			return
		case <-deadline:
			h.t.Fatal("the flood of heartbeats was not taken within a minute")
		default:
			h.settle()
		}
	}
}

// runOut ends every attempt the nodes are given until Run ends.
func (h *harness) runOut(nodes ...*fakeNode) {
	h.t.Helper()
	for range 100 {
		for _, n := range nodes {
			for _, s := range n.takeStarts() {
				n.end(s.Job, s.Attempt, ok(time.Second))
			}
		}
		select {
		case err := <-h.done:
			h.done <- err
			if err := h.wait(); err != nil {
				h.t.Fatal(err)
			}
			return
		default:
		}
		h.beats(10*time.Second, nodes...)
	}
	h.t.Fatal("the run did not end: some job is placed nowhere")
}

// TestAttackPilotEndsIn: a node registers with an absurd end (huge,
// the largest duration, negative, the smallest, zero, 1ns). No panic;
// the run still ends with every job done; the node with a far end, or
// none, takes jobs like any node; one whose end has passed hurts only
// itself (takes nothing) while the plain node does the work.
func TestAttackPilotEndsIn(t *testing.T) {
	for _, c := range []struct {
		ends  time.Duration
		takes bool
	}{{1 << 62, true}, {math.MaxInt64, true}, {-1 << 62, true}, {math.MinInt64, true}, {0, true}, {1, false}} {
		h := newHarness(t, 6, sched.FCFS, nil)
		evil, plain := h.node("evil"), h.node("plain")
		evil.joinEnds("evil", 1, false, c.ends)
		s := evil.takeStarts()
		if c.takes && len(s) != 1 {
			t.Errorf("EndsIn %d: the node was given %d attempts at its join, want 1", c.ends, len(s))
		}
		if !c.takes && len(s) != 0 {
			t.Errorf("EndsIn %d: a node whose end has passed was given %v", c.ends, s)
		}
		for _, st := range s {
			evil.end(st.Job, st.Attempt, ok(time.Second))
		}
		plain.join("plain", 1, false)
		h.runOut(evil, plain)
		counts, _ := h.st.Counts(t.Context(), h.exp.ID)
		if counts[store.Done] != 6 {
			t.Errorf("EndsIn %d: counts %v, want 6 done", c.ends, counts)
		}
	}
}

// TestAttackPilotFarEndLossPoisonsJob: a node claims an end 146 years
// away, holds job 1 for two hours, and drops (it was nowhere near its
// end). The core counts that as a loss to a pilot's end and from then
// on wants 1.1 times two hours free before it starts job 1 on a pilot:
// an honest pilot with an hour left must still be given job 1 (nothing
// else is known of how long jobs take), else a node hurts others'
// jobs by lying about its end.
func TestAttackPilotFarEndLossPoisonsJob(t *testing.T) {
	for _, hold := range []time.Duration{30 * time.Minute, 2 * time.Hour} {
		h := newHarness(t, 1, sched.FCFS, nil)
		evil := h.node("evil")
		evil.joinEnds("evil", 1, false, 1<<62)
		if s := evil.takeStarts(); len(s) != 1 {
			t.Fatalf("evil was given %v, want job 1", s)
		}
		h.beats(hold, evil)
		evil.gone()
		honest := h.node("honest")
		honest.joinEnds("honest", 1, false, time.Hour)
		h.beats(time.Minute, honest)
		if s := honest.takeStarts(); len(s) != 1 {
			t.Errorf("an honest pilot with an hour left was given %v after a node lying about its end held job 1 for %v and dropped; want job 1", s, hold)
		}
	}
}

// TestAttackPilotDrainThenRejoin: a node that drains comes back on a new
// connection (its old one dropped) without saying it drains: it still
// drains (it takes nothing), and is shut down once its attempt ended.
func TestAttackPilotDrainThenRejoin(t *testing.T) {
	h := newHarness(t, 4, sched.FCFS, nil)
	a := h.node("a")
	a.join("a", 1, true)
	if s := a.takeStarts(); len(s) != 1 {
		t.Fatalf("a was given %v, want 1 attempt", s)
	}
	h.d.Heartbeat(a, protocol.Heartbeat{Running: 1, Draining: true})
	h.settle()
	a.gone()
	a2 := h.node("a")
	a2.join("a", 2, true, protocol.AttemptRef{Job: 1, Attempt: 1})
	a2.end(1, 1, ok(time.Second))
	if s := a2.takeStarts(); len(s) != 0 {
		t.Errorf("a, which drained and came back without saying so, was given %v", s)
	}
	a2.mu.Lock()
	stopped := a2.stopped
	a2.mu.Unlock()
	if !stopped {
		t.Error("a drained, came back, its attempt ended, and it was not shut down")
	}
}

// TestAttackPilotDrainFlood: a node flips Draining on and off in 10,000
// heartbeats. It drains once (one log line), is never given a job after,
// is shut down once its attempt has ended, and the run ends on the
// other node. A later heartbeat without Draining does not undo it.
func TestAttackPilotDrainFlood(t *testing.T) {
	var pl progressLog
	var logs logBuffer
	h := newHarness(t, 4, sched.FCFS, nil, pl.opt, perNode, logs.opt)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, true)
	if s := a.takeStarts(); len(s) != 1 {
		t.Fatalf("a was given %v, want 1 attempt", s)
	}
	h.flood(a, func(i int) protocol.Heartbeat { return protocol.Heartbeat{Running: 1, Draining: i%2 == 0} }, 10000)
	h.d.Heartbeat(a, protocol.Heartbeat{Running: 1})
	h.settle()
	h.report()
	if np := nodeIn(t, pl.get(), "a"); !np.Draining {
		t.Errorf("a after its last heartbeat without Draining: %+v, want still draining", np)
	}
	if n := strings.Count(logs.String(), "node drains"); n != 1 {
		t.Errorf("the log says %d times that a drains, want once", n)
	}
	if l := len(logs.String()); l > 16<<10 {
		t.Errorf("10,000 heartbeats flipping Draining made %d bytes of log", l)
	}
	a.end(1, 1, ok(time.Second))
	a.mu.Lock()
	stopped := a.stopped
	a.mu.Unlock()
	if !stopped {
		t.Error("a drained and was not shut down")
	}
	h.flood(a, func(i int) protocol.Heartbeat { return protocol.Heartbeat{Draining: i%2 == 1} }, 1000)
	if s := a.takeStarts(); len(s) != 0 {
		t.Errorf("a, which drains, was given %v", s)
	}
	if n := strings.Count(logs.String(), "node drained: shut down"); n != 1 {
		t.Errorf("a was shut down %d times, want once", n)
	}
	b.join("b", 1, false)
	a.gone()
	h.runOut(b)
	if out := h.outOfService(); len(out) != 0 {
		t.Errorf("out of service: %v, want none", out)
	}
}

// hugeStatus is a cluster status with n pilots of oversized, hostile
// words and a batch text of size bytes.
func hugeStatus(n, size int) *protocol.ClusterStatus {
	evil := "\x1b]0;pwned\x07\x1b[2J\r\nfake\u009b31m" + strings.Repeat("w", 1000)
	ps := make([]protocol.Pilot, n)
	for i := range ps {
		ps[i] = protocol.Pilot{ID: fmt.Sprint(i) + evil, Name: evil, State: evil, Reason: evil}
	}
	return &protocol.ClusterStatus{Nodes: 1, CPUs: 1, Depth: 1, Pilots: ps,
		Batch: "\x1b[31m\nbatch " + strings.Repeat("b", size)}
}

// TestAttackPilotStatusFromPlainNode: a plain node (no head) sends a
// cluster status with 100,000 pilots and a 10 MB batch text, in a grid
// run and outside one. Nothing of it reaches progress, nor the log.
func TestAttackPilotStatusFromPlainNode(t *testing.T) {
	cs := hugeStatus(100000, 10<<20)
	for _, grid := range []bool{false, true} {
		var pl progressLog
		var logs logBuffer
		h := newHarness(t, 10, sched.FCFS, nil, pl.opt, perNode, logs.opt, func(c *Config) { c.Grid = grid })
		if grid {
			hd := h.node("h")
			hd.joinHead("head-a", "a", 2)
		}
		n := h.node("n")
		n.join("n", 1, false)
		h.d.Heartbeat(n, protocol.Heartbeat{Cluster: cs})
		h.settle()
		h.report()
		for _, c := range pl.get().Clusters {
			if len(c.Pilots) != 0 || c.Batch != "" {
				t.Errorf("grid=%v: cluster %s shows %d pilots / batch of %d bytes, sent by a plain node", grid, c.Name, len(c.Pilots), len(c.Batch))
			}
		}
		if l := len(logs.String()); l > 16<<10 {
			t.Errorf("grid=%v: a plain node's cluster status made %d bytes of log", grid, l)
		}
		if strings.Contains(logs.String(), "batch bbbb") {
			t.Errorf("grid=%v: a plain node's batch text reached the log", grid)
		}
	}
}

// printableWord reports what is wrong with s as a word for the
// terminal, of at most n bytes.
func printableWord(s string, n int) string {
	switch {
	case len(s) > n:
		return fmt.Sprintf("%d bytes, want at most %d", len(s), n)
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return "control characters kept"
	case !utf8.ValidString(s):
		return "not UTF-8"
	}
	return ""
}

// TestAttackPilotHeadWords: a head sends 100,000 pilots with control
// characters and oversized words, and a 10 MB batch text. Progress keeps
// at most maxPilots, each word bounded and printable, a known state; the
// batch text bounded and printable, in progress and in the log.
func TestAttackPilotHeadWords(t *testing.T) {
	var pl progressLog
	var logs logBuffer
	h := newHarness(t, 10, sched.FCFS, nil, pl.opt, logs.opt, func(c *Config) { c.Grid = true })
	hd := h.node("h")
	hd.joinHead("head-a", "a", 2)
	h.d.Heartbeat(hd, protocol.Heartbeat{Cluster: hugeStatus(100000, 10<<20)})
	h.settle()
	h.report()
	c := cluster(t, pl.get(), "a")
	if len(c.Pilots) == 0 || len(c.Pilots) > maxPilots {
		t.Errorf("%d pilots in progress, want 1 to %d", len(c.Pilots), maxPilots)
	}
	for i, p := range c.Pilots {
		for _, w := range []string{p.ID, p.Name, p.State, p.Reason} {
			if bad := printableWord(w, maxPilotWord); bad != "" {
				t.Errorf("pilot %d: %s: %q", i, bad, w[:min(len(w), 40)])
			}
		}
		if p.State != protocol.PilotPending {
			t.Errorf("pilot %d: state %q from a hostile state, want pending", i, p.State)
		}
	}
	if bad := printableWord(c.Batch, maxBatchWord); bad != "" || c.Batch == "" {
		t.Errorf("batch in progress: %s (%d bytes)", bad, len(c.Batch))
	}
	if l := len(logs.String()); l > 16<<10 {
		t.Errorf("a head's 10 MB batch text made %d bytes of log", l)
	}
	if strings.Contains(logs.String(), "\x1b") {
		t.Error("an escape character reached the log")
	}
}

// TestAttackPilotWordNotUTF8: a head's pilot words of invalid UTF-8
// (each byte made U+FFFD, three bytes) still fit the bound.
func TestAttackPilotWordNotUTF8(t *testing.T) {
	w := strings.Repeat("\xff", maxPilotWord-1)
	got := boundPilots([]protocol.Pilot{{ID: w, Name: w, Reason: w}})
	for _, s := range []string{got[0].ID, got[0].Name, got[0].Reason} {
		if bad := printableWord(s, maxPilotWord); bad != "" {
			t.Errorf("%d bytes of invalid UTF-8: %s", len(w), bad)
		}
	}
}

// TestAttackPilotWordBidi: a head's words carrying Unicode format
// characters that reorder or hide what the terminal shows (a
// right-to-left override, a zero-width space) are not printed as is.
func TestAttackPilotWordBidi(t *testing.T) {
	w := "job-\u202egnp.exe\u202c\u200b\u2066x\u2069"
	got := boundPilots([]protocol.Pilot{{ID: w, Name: w, Reason: w}})
	for _, s := range []string{got[0].ID, got[0].Name, got[0].Reason} {
		if strings.IndexFunc(s, func(r rune) bool { return unicode.Is(unicode.Cf, r) }) >= 0 {
			t.Errorf("format characters kept: %q", s)
		}
	}
}

// TestAttackPilotBatchFlipFlood: a head flips its batch text between two
// values in 10,000 heartbeats. The root's log must not grow with each.
func TestAttackPilotBatchFlipFlood(t *testing.T) {
	var logs logBuffer
	h := newHarness(t, 10, sched.FCFS, nil, logs.opt, func(c *Config) { c.Grid = true })
	hd := h.node("h")
	hd.joinHead("head-a", "a", 2)
	big := strings.Repeat("x", maxBatchWord)
	h.flood(hd, func(i int) protocol.Heartbeat {
		return protocol.Heartbeat{Cluster: &protocol.ClusterStatus{Nodes: 1, CPUs: 1, Depth: 2, Batch: fmt.Sprint(i%2) + big}}
	}, 10000)
	n := 0
	for _, l := range strings.Split(logs.String(), "\n") {
		if strings.Contains(l, big[:1000]) {
			n++
		}
	}
	if n > 100 {
		t.Errorf("10,000 heartbeats flipping the batch text made %d log lines of it (%d bytes of log)", n, len(logs.String()))
	}
}

// TestAttackPilotDrainForOthers: a connection never admitted says it
// drains, and so does a replaced connection of node a, and node c (for
// attempts it does not run). Nodes a and b keep taking jobs, are not
// shut down nor shown draining; only c drains.
func TestAttackPilotDrainForOthers(t *testing.T) {
	var pl progressLog
	h := newHarness(t, 8, sched.FCFS, nil, pl.opt, perNode)
	a, b, c := h.node("a"), h.node("b"), h.node("c")
	a.join("a", 1, true)
	b.join("b", 1, false)
	a.takeStarts()
	b.takeStarts()
	stranger := h.node("a") // same name, never admitted
	h.d.Heartbeat(stranger, protocol.Heartbeat{Draining: true})
	a2 := h.node("a")
	a2.join("a", 1, true, protocol.AttemptRef{Job: 1, Attempt: 1}) // a on a new connection
	h.d.Heartbeat(a, protocol.Heartbeat{Draining: true})           // the replaced one
	c.join("c", 1, false)
	c.takeStarts()
	h.d.Heartbeat(c, protocol.Heartbeat{Draining: true, Running: 5})
	h.settle()
	h.report()
	p := pl.get()
	for _, id := range []string{"a", "b"} {
		if np := nodeIn(t, p, id); np.Draining || np.Out {
			t.Errorf("%s after others said they drain: %+v", id, np)
		}
	}
	if np := nodeIn(t, p, "c"); !np.Draining {
		t.Errorf("c said it drains: %+v", np)
	}
	for _, n := range []*fakeNode{a, a2, b, stranger} {
		n.mu.Lock()
		if n.stopped {
			t.Errorf("%s was shut down by another's drain", n.name)
		}
		n.mu.Unlock()
	}
	a2.end(1, 1, ok(time.Second))
	b.end(2, 1, ok(time.Second))
	if len(a2.takeStarts()) != 1 || len(b.takeStarts()) != 1 {
		t.Error("a or b was given no new job after others drained")
	}
}
