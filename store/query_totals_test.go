package store

import (
	"context"
	"testing"
	"time"
)

// TestTotals counts ended attempts by state and sums their staged bytes,
// leaving out attempts still running and other experiments'.
func TestTotals(t *testing.T) {
	ctx := context.Background()
	st, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var exps [2]int64
	for i := range exps {
		e := &Experiment{PlanPath: "p.pln", PlanText: "x", Names: []string{"x"}}
		if err := st.Create(ctx, e); err != nil {
			t.Fatal(err)
		}
		exps[i] = e.ID
	}
	now := time.Now()
	var b Batch
	for _, exp := range exps {
		for j := int64(1); j <= 4; j++ {
			b.AddJob(exp, Job{Index: j, Values: []string{"1"}})
			b.Start(exp, j, 1, "n1", now)
		}
		b.Finish(exp, Attempt{Job: 1, N: 1, Node: "n1", Ended: now, State: AttemptOK, StagedIn: 10, StagedOut: 100}, Done)
		b.Finish(exp, Attempt{Job: 2, N: 1, Node: "n1", Ended: now, State: AttemptOK, StagedIn: 20, StagedOut: 200}, Done)
		b.Finish(exp, Attempt{Job: 3, N: 1, Node: "n1", Ended: now, State: AttemptFailed, StagedIn: 5}, Failed)
	}
	if err := st.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	got, err := st.AttemptCounts(ctx, exps[0])
	if err != nil {
		t.Fatal(err)
	}
	if got["ok"] != 2 || got["failed"] != 1 || len(got) != 2 {
		t.Fatalf("attempt counts %v, want 2 ok, 1 failed (the running one not counted)", got)
	}
	in, out, err := st.Staged(ctx, exps[0])
	if err != nil || in != 35 || out != 300 {
		t.Fatalf("staged %d in, %d out (%v), want 35 and 300", in, out, err)
	}
}
