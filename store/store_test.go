package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), ".orrery"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestLifecycleAndRecover(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	if _, err := s.Latest(ctx); err != ErrNoExperiment {
		t.Fatalf("Latest on empty store: %v, want ErrNoExperiment", err)
	}
	e := &Experiment{PlanPath: "p.pln", PlanText: "task main\nendtask\n", Dialect: "modern", Seed: 1<<63 + 5, Names: []string{"x"}}
	if err := s.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i := int64(1); i <= 3; i++ {
		b.AddJob(e.ID, Job{Index: i, Ordinal: i - 1, Values: []string{string(rune('a' + i))}})
		b.Start(e.ID, i, 1, "n1", time.Now())
	}
	b.Cursor(e.ID, 2, 3, true)
	zero := 0
	b.Finish(e.ID, Attempt{Job: 1, N: 1, State: AttemptOK, Ended: time.Now(), Exit: &zero, Stdout: []byte("hi")}, Done)
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if b.Len() != 0 {
		t.Fatalf("batch not emptied: %d", b.Len())
	}
	got, err := s.Latest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got.Seed != e.Seed || got.Cursor != 2 || got.LastIndex != 3 || !got.Generated || got.Names[0] != "x" {
		t.Fatalf("experiment read back as %+v", got)
	}
	n, err := s.Recover(ctx, e.ID)
	if err != nil || n != 2 {
		t.Fatalf("Recover = %d, %v; want 2 jobs put back", n, err)
	}
	counts, err := s.Counts(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if counts[Done] != 1 || counts[Pending] != 2 || counts[Running] != 0 {
		t.Fatalf("counts after recover: %v", counts)
	}
	var states []string
	if err := s.Attempts(ctx, e.ID, 0, func(a Attempt) error {
		states = append(states, a.State)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{AttemptOK, AttemptInterrupted, AttemptInterrupted}
	if len(states) != 3 || states[0] != want[0] || states[1] != want[1] || states[2] != want[2] {
		t.Fatalf("attempt states %v, want %v", states, want)
	}
	var pending []int64
	if err := s.Jobs(ctx, e.ID, Pending, 0, 0, func(j Job) error {
		pending = append(pending, j.Index)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(pending) != 2 || pending[0] != 2 || pending[1] != 3 {
		t.Fatalf("pending jobs %v, want [2 3]", pending)
	}
}

func TestApplyIsAtomic(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	e := &Experiment{PlanPath: "p", PlanText: "t", Dialect: "modern"}
	if err := s.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.AddJob(e.ID, Job{Index: 1, Values: []string{}})
	b.AddJob(e.ID, Job{Index: 1, Values: []string{}}) // duplicate key: the whole batch fails
	if err := s.Apply(ctx, &b); err == nil {
		t.Fatal("Apply of a batch with a duplicate job succeeded")
	}
	counts, _ := s.Counts(ctx, e.ID)
	if counts[Pending] != 0 {
		t.Fatalf("a failed batch left %d jobs behind", counts[Pending])
	}
}

// TestEndAttemptLeavesJobState: a duplicate's attempt ends (cancelled)
// while the job's other attempt runs on, and the job's state is the
// other attempt's to settle.
func TestEndAttemptLeavesJobState(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	e := &Experiment{PlanPath: "p.pln", PlanText: "task main\nendtask\n", Dialect: "modern", Names: []string{"x"}}
	if err := s.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	var b Batch
	b.AddJob(e.ID, Job{Index: 1, Values: []string{"a"}})
	b.Start(e.ID, 1, 1, "slow", time.Now())
	b.Start(e.ID, 1, 2, "fast", time.Now())
	b.EndAttempt(e.ID, Attempt{Job: 1, N: 1, Node: "slow", State: AttemptCancelled, Ended: time.Now(), Error: "lost the race"})
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	counts, err := s.Counts(ctx, e.ID)
	if err != nil || counts[Running] != 1 {
		t.Fatalf("counts after a duplicate ended: %v (%v), want the job running", counts, err)
	}
	zero := 0
	b.Finish(e.ID, Attempt{Job: 1, N: 2, Node: "fast", State: AttemptOK, Ended: time.Now(), Exit: &zero}, Done)
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.Attempts(ctx, e.ID, 1, func(a Attempt) error {
		got = append(got, a.Node+" "+a.State+" "+a.Error)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"slow cancelled lost the race", "fast ok "}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("attempts %q, want %q", got, want)
	}
	if counts, _ := s.Counts(ctx, e.ID); counts[Done] != 1 || counts[Running] != 0 {
		t.Fatalf("counts at the end: %v, want the job done", counts)
	}
}
