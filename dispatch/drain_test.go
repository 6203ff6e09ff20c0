package dispatch

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// logBuffer keeps what the dispatcher logs, for a test to read.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) opt(cfg *Config) { cfg.Log = slog.New(slog.NewTextHandler(b, nil)) }

// TestDrainingNode: node a says it drains while it runs job 1. No new
// attempt goes there (job 2 goes to b, which joins after), progress says
// it drains and is not out of service, and once job 1 has ended (it is
// recorded done) a is told to shut down, and nothing starts there after.
// Its connection's end then drops it quietly: no node lost, nothing out
// of service.
func TestDrainingNode(t *testing.T) {
	var pl progressLog
	var logs logBuffer
	h := newHarness(t, 3, sched.FCFS, nil, pl.opt, perNode, logs.opt)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, true)
	if s := a.takeStarts(); len(s) != 1 || s[0].Job != 1 {
		t.Fatalf("a was given %v, want job 1", s)
	}
	h.d.Heartbeat(a, protocol.Heartbeat{Running: 1, Draining: true})
	h.settle()
	b.join("b", 1, false)
	if s := b.takeStarts(); len(s) != 1 || s[0].Job != 2 {
		t.Fatalf("b was given %v, want job 2", s)
	}
	h.report()
	p := pl.get()
	if np := nodeIn(t, p, "a"); !np.Draining || np.Out || np.Running != 1 {
		t.Errorf("a in progress: %+v, want draining, not out, 1 running", np)
	}
	if p.OutOfService != 0 {
		t.Errorf("progress counts %d nodes out of service, want 0", p.OutOfService)
	}
	a.mu.Lock()
	early := a.stopped
	a.mu.Unlock()
	if early {
		t.Fatal("a was shut down while job 1 ran there")
	}
	a.end(1, 1, ok(time.Second))
	if at, _ := h.attempt(1, 1); at.State != store.AttemptOK {
		t.Errorf("job 1's attempt on a: %s, want ok", at.State)
	}
	a.mu.Lock()
	stopped := a.stopped
	a.mu.Unlock()
	if !stopped {
		t.Fatal("a drained (job 1 ended) and was not shut down")
	}
	b.end(2, 1, ok(time.Second))
	if s := b.takeStarts(); len(s) != 1 || s[0].Job != 3 {
		t.Fatalf("b was given %v, want job 3", s)
	}
	a.gone()
	b.end(3, 1, ok(time.Second))
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if s := a.takeStarts(); len(s) != 0 {
		t.Errorf("a, which drains, was given %v", s)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 3 {
		t.Errorf("counts %v, want 3 done", counts)
	}
	if out := h.outOfService(); len(out) != 0 {
		t.Errorf("out of service: %v, want none", out)
	}
	log := logs.String()
	for _, bad := range []string{"node lost", "out of service", "disconnected"} {
		if strings.Contains(log, bad) {
			t.Errorf("the log says %q of a node that drained:\n%s", bad, log)
		}
	}
	for _, want := range []string{"node drains", "node left"} {
		if !strings.Contains(log, want) {
			t.Errorf("the log does not say %q:\n%s", want, log)
		}
	}
}

// TestNodeEndKeepsLongJobsOff: once a job has taken 10 minutes, a node
// that registers with 5 minutes left (a pilot near its time limit) is
// given no job, while the node without an end takes the next one.
func TestNodeEndKeepsLongJobsOff(t *testing.T) {
	h := newHarness(t, 3, sched.FCFS, nil)
	plain, pilot := h.node("plain"), h.node("pilot")
	plain.join("plain", 1, false)
	if s := plain.takeStarts(); len(s) != 1 {
		t.Fatalf("plain was given %v, want job 1", s)
	}
	h.beats(10*time.Minute, plain)
	plain.end(1, 1, ok(10*time.Minute))
	if s := plain.takeStarts(); len(s) != 1 || s[0].Job != 2 {
		t.Fatalf("plain was given %v, want job 2", s)
	}
	h.d.Joined(pilot, Joining{ID: "pilot", Register: protocol.Register{Version: protocol.Version,
		Name: "pilot", CPUs: 1, JobLimit: 1, Speed: 1, EndsIn: 5 * time.Minute}})
	h.settle()
	h.beats(time.Minute, plain, pilot)
	if s := pilot.takeStarts(); len(s) != 0 {
		t.Fatalf("the pilot, with 5 minutes left, was given %v after a job took 10 minutes", s)
	}
	plain.end(2, 1, ok(time.Minute))
	if s := plain.takeStarts(); len(s) != 1 || s[0].Job != 3 {
		t.Fatalf("plain was given %v, want job 3", s)
	}
	if s := pilot.takeStarts(); len(s) != 0 {
		t.Fatalf("the pilot was given %v", s)
	}
	plain.end(3, 1, ok(time.Second))
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
}
