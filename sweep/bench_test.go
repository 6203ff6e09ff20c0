package sweep_test

import (
	"io"
	"testing"

	"orrery/plan"
	"orrery/sweep"
)

// benchPlan has five parameters of the common kinds and about 2.8·10^10
// jobs, more than any benchmark walks. The large integer range comes
// first, so it changes rarely; the others are small and precomputed.
const benchPlan = `parameter i integer range from 1 to 100000
parameter f float range from 0 to 1 step 0.001
parameter t text select anyof "alpha" "beta" "gamma" "delta"
parameter p float range from 1 to 2 points 7
parameter r integer random from 1 to 1000 points 10
task main
	exec run ${i} ${f} ${t} ${p} ${r}
endtask
`

// benchConstraint keeps about half of benchPlan's jobs.
const benchConstraint = "constraint r % 2 == 0 || t == \"beta\"\n"

func benchSweep(b *testing.B, src string) *sweep.Sweep {
	b.Helper()
	p, err := plan.Parse("bench.pln", []byte(src), plan.Options{})
	if err != nil {
		b.Fatal(err)
	}
	s, err := sweep.New(p, sweep.Options{Root: b.TempDir(), Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// reportJobs reports the rate of b.N jobs.
func reportJobs(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "jobs/s")
}

// countingWriter counts the bytes written to it.
type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return len(p), nil
}

// BenchmarkWriteJSONL writes b.N jobs as JSON Lines: one op is one job.
func BenchmarkWriteJSONL(b *testing.B) {
	for _, c := range []struct{ name, src string }{
		{"cross", benchPlan},
		{"constrained", benchPlan + benchConstraint},
	} {
		b.Run(c.name, func(b *testing.B) {
			s := benchSweep(b, c.src)
			var w countingWriter
			b.ReportAllocs()
			b.ResetTimer()
			n, err := s.WriteJSONL(&w, int64(b.N))
			if err != nil || n != int64(b.N) {
				b.Fatalf("WriteJSONL wrote %d jobs of %d: %v", n, b.N, err)
			}
			reportJobs(b)
			b.ReportMetric(float64(w.n)/float64(b.N), "B/job")
		})
	}
}

// BenchmarkWriteRunFileJobs writes b.N jobs as a run file: one op is one
// job. The plan's domains are small, so the variable lists cost little.
func BenchmarkWriteRunFileJobs(b *testing.B) {
	src := `parameter i integer range from 1 to 1000
parameter t text select anyof "alpha" "beta" "gamma" "delta"
parameter f float range from 0 to 1 step 0.001
parameter g float range from 0 to 1 step 0.001
parameter h integer range from 1 to 1000
task main
	exec run ${i} ${t} ${f} ${g} ${h}
endtask
`
	s := benchSweep(b, src)
	b.ReportAllocs()
	b.ResetTimer()
	n, err := s.WriteRunFile(io.Discard, int64(b.N))
	if err != nil || n != int64(b.N) {
		b.Fatalf("WriteRunFile wrote %d jobs of %d: %v", n, b.N, err)
	}
	reportJobs(b)
}

// BenchmarkIterate walks b.N jobs: one op is one job.
func BenchmarkIterate(b *testing.B) {
	walk := func(b *testing.B, src string, visit func(it *sweep.Iterator, names int)) {
		s := benchSweep(b, src)
		names := len(s.Names)
		b.ReportAllocs()
		b.ResetTimer()
		it := s.Iter()
		for range b.N {
			if !it.Next() {
				b.Fatalf("the sweep ended after %d jobs", it.Index())
			}
			visit(it, names)
		}
		if it.Index() != int64(b.N) {
			b.Fatalf("job number %d after %d jobs", it.Index(), b.N)
		}
		reportJobs(b)
	}
	var sink int
	b.Run("next", func(b *testing.B) {
		walk(b, benchPlan, func(*sweep.Iterator, int) {})
	})
	b.Run("values", func(b *testing.B) {
		walk(b, benchPlan, func(it *sweep.Iterator, names int) {
			for i := range names {
				sink += len(it.Value(i))
			}
		})
	})
	b.Run("job", func(b *testing.B) {
		walk(b, benchPlan, func(it *sweep.Iterator, _ int) {
			sink += len(it.Job().Values)
		})
	})
	b.Run("constrained", func(b *testing.B) {
		walk(b, benchPlan+benchConstraint, func(*sweep.Iterator, int) {})
	})
	if sink < 0 {
		b.Fatal("impossible")
	}
}
