package sim

import (
	"math"
	"slices"
	"strings"
	"testing"
)

func TestBuiltins(t *testing.T) {
	want := []string{"paper-fig3", "paper-fig4", "paper-fig5", "paper-table1", "paper-table2", "paper-table4"}
	if d := diff(Builtins(), want); d != "" {
		t.Fatal(d)
	}
	for _, name := range want {
		sc, err := Builtin(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if sc.Name != name {
			t.Errorf("%s: scenario name %q", name, sc.Name)
		}
		if !strings.HasPrefix(sc.Summary(), "Paper ") || strings.Count(sc.Doc, "\n") < 2 {
			t.Errorf("%s: doc %q: want a first line about the paper and a paragraph", name, sc.Doc)
		}
		src, _ := BuiltinSource(name)
		if !strings.Contains(string(src), "Assumed") {
			t.Errorf("%s: states no assumption", name)
		}
		for _, c := range sc.Cases {
			pols := c.Policies
			if pols == nil {
				pols = sc.Policies
			}
			for p := range c.Paper {
				if !slices.Contains(pols, p) {
					t.Errorf("%s case %s: a paper time for %s, which the case does not run", name, c.Name, p)
				}
			}
		}
	}
	if _, err := Builtin("paper-tabel1"); err == nil || !strings.Contains(err.Error(), "did you mean paper-table1?") {
		t.Errorf("unknown built-in: %v", err)
	}
}

// capacity is the GHz of the named clusters (all when none).
func capacity(sc *Scenario, names ...string) float64 {
	ghz := 0.0
	for _, c := range sc.Clusters {
		if len(names) == 0 || slices.Contains(names, c.Name) {
			for _, n := range c.Nodes {
				ghz += float64(n.CPUs) * n.Speed
			}
		}
	}
	return ghz
}

// work is the mean total work of a workload in GHz·s.
func work(w Workload) float64 {
	total := 0.0
	for _, g := range w.Groups {
		mean := g.Work.A
		if g.Work.Kind == "uniform" {
			mean = (g.Work.A + g.Work.B) / 2
		}
		total += float64(g.Count) * mean
	}
	return total
}

func near(got, want, tol float64) bool { return math.Abs(got-want) <= tol }

// TestBuiltinFacts checks the figures the built-ins are built to match.
func TestBuiltinFacts(t *testing.T) {
	load := func(name string) *Scenario {
		sc, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		return sc
	}
	t1 := load("paper-table1")
	// MOSIX's CPU-test times are the work over the cluster's capacity.
	if got := work(t1.Workloads[0]) / capacity(t1, "c1"); !near(got, 920, 0.01) {
		t.Errorf("table1 CPU test on Cluster 1: %.1f s of work, want 920", got)
	}
	if got := work(t1.Workloads[0]) / capacity(t1, "c2"); !near(got, 575, 0.01) {
		t.Errorf("table1 CPU test on Cluster 2: %.1f s of work, want 575", got)
	}
	if p := t1.Cases[0].Paper; p["mosix"] != 921 || p["fcfs"] != 1300 {
		t.Errorf("table1 cpu-c1 paper %v", p)
	}
	// Fig. 4's processes are the CPU test's, at Table 1's unit, and as
	// many as make the grid's bound the paper's 2033 s (within 1%);
	// Fig. 3 runs the same ones.
	f4 := load("paper-fig4")
	if got := work(f4.Workloads[0]) / capacity(f4); !near(got, 2033, 0.01*2033) {
		t.Errorf("fig4 lower bound %.0f s, want 2033 within 1%%", got)
	}
	if got, want := f4.Workloads[0].Groups[0].Work.A, t1.Workloads[0].Groups[0].Work.A; got != want || got != 400 {
		t.Errorf("fig4's 1000-unit process %.1f GHz·s, Table 1's %.1f; want both 400", got, want)
	}
	if f3 := load("paper-fig3"); work(f3.Workloads[0]) != work(f4.Workloads[0]) {
		t.Errorf("fig3's work %.0f GHz·s, fig4's %.0f; want the same processes", work(f3.Workloads[0]), work(f4.Workloads[0]))
	}
	f5 := load("paper-fig5")
	for names, ghz := range map[string]float64{"c1,c2": 10.4, "c1,c2,c3": 16, "c1,c2,c3,c4": 22.75, "c1,c2,c3,c4,c5": 30.75} {
		if got := capacity(f5, strings.Split(names, ",")...); !near(got, ghz, 1e-9) {
			t.Errorf("fig5 %s: %.2f GHz, want %.2f", names, got, ghz)
		}
	}
	t4 := load("paper-table4")
	for site, ghz := range map[string]float64{"monash1": 10.4, "monash2": 21.8, "vpac": 6.3, "hebrew": 40} {
		if got := capacity(t4, site); !near(got, ghz, 0.001) {
			t.Errorf("table4 %s: %.4f GHz, want %.1f", site, got, ghz)
		}
	}
	if got := work(t4.Workloads[0]) / 3600; !near(got, 520, 0.01) {
		t.Errorf("table4 work %.2f GHz·h, want 520", got)
	}
	if got := t4.Cases[1].Paper["mec"]; !near(got, 24300, 1e-6) {
		t.Errorf("table4 all: paper %v, want 24300 s", got)
	}
}

// TestOrreryNotWorseThanFCFS: on every case of every built-in scenario,
// the default policy's mean makespan over 20 runs is not above that of
// the paper's simplest policy (EnFuzion's first come, first served) by
// more than the noise: one standard error of the difference, or the
// second at which the simulator's policies look again, whichever is
// more. With nothing learnt yet and no moves, orrery must at least
// match it (it lost on Table 1's CPU test: its model took a group no
// finished job had for the shortest, and started those jobs last).
func TestOrreryNotWorseThanFCFS(t *testing.T) {
	if raceEnabled {
		t.Skip("minutes of one goroutine's simulation under the race detector; run without -race (as .ci/run does)")
	}
	const runs = 20
	for _, name := range Builtins() {
		sc, err := Builtin(name)
		if err != nil {
			t.Fatal(err)
		}
		for i, c := range sc.Cases {
			t.Run(name+"/"+c.Name, func(t *testing.T) {
				t.Parallel()
				sc, _ := Builtin(name) // its own, for it runs beside the others
				c := sc.Cases[i]
				o, err := Run(sc, c, "orrery", runs, 1)
				if err != nil {
					t.Fatal(err)
				}
				f, err := Run(sc, c, "fcfs", runs, 1)
				if err != nil {
					t.Fatal(err)
				}
				se := math.Sqrt((o.SD*o.SD + f.SD*f.SD) / runs)
				t.Logf("orrery %.1f ± %.1f s, fcfs %.1f ± %.1f s, standard error of the difference %.1f s", o.Mean, o.SD, f.Mean, f.SD, se)
				if o.Mean > f.Mean+max(se, 1) {
					t.Errorf("orrery %.1f ± %.1f s, fcfs %.1f ± %.1f s over %d runs: orrery worse by %.1f s, more than the noise (%.1f s)",
						o.Mean, o.SD, f.Mean, f.SD, runs, o.Mean-f.Mean, max(se, 1))
				}
			})
		}
	}
}
