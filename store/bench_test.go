package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkJobCycle measures the store's cost of one job's life as the
// dispatcher writes it: added and started in one transaction, finished in
// the next.
func BenchmarkJobCycle(b *testing.B) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "state"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	e := &Experiment{PlanPath: "p", PlanText: "t", Dialect: "modern"}
	if err := s.Create(ctx, e); err != nil {
		b.Fatal(err)
	}
	var batch Batch
	zero := 0
	b.ResetTimer()
	for i := range b.N {
		idx := int64(i + 1)
		batch.AddJob(e.ID, Job{Index: idx, Ordinal: idx - 1, Values: []string{"1", "x"}})
		batch.Cursor(e.ID, idx-1, idx, false)
		batch.Start(e.ID, idx, 1, "local1", time.Now())
		if err := s.Apply(ctx, &batch); err != nil {
			b.Fatal(err)
		}
		batch.Finish(e.ID, Attempt{Job: idx, N: 1, State: AttemptOK, Ended: time.Now(), Exit: &zero}, Done)
		if err := s.Apply(ctx, &batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}
