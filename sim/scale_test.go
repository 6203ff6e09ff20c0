package sim

import (
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"
)

// gridScenario is a synthetic grid: clusters × nodes single-CPU nodes of
// speeds spread 0.5–1.5 GHz, and jobs of lognormal work (mean 600 GHz·s,
// CV 0.5) whose parameters explain 90% of it.
func gridScenario(clusters, nodes, jobs int) *Scenario {
	sc := &Scenario{Name: "grid"}
	for c := range clusters {
		cl := Cluster{Name: fmt.Sprintf("c%d", c+1), Link: Link{Bandwidth: 12.5e6, Latency: 0.001},
			WAN: Link{Bandwidth: 6.25e6, Latency: 0.005 * float64(c%10+1)}}
		for n := range nodes {
			cl.Nodes = append(cl.Nodes, Node{Name: fmt.Sprintf("c%d-%d", c+1, n+1), CPUs: 1,
				Speed: 0.5 + float64((c*nodes+n)%11)/10, Memory: 4 << 30})
		}
		sc.Clusters = append(sc.Clusters, cl)
	}
	sc.Workloads = []Workload{{Name: "jobs", Groups: []JobGroup{{Count: jobs, Work: Dist{Kind: "lognormal", A: 600, B: 0.5},
		Memory: Dist{Kind: "fixed", A: 100 << 20}, StageIn: 1 << 20, StageOut: 1 << 20, Predictable: 0.9}}}}
	sc.Cases = []Case{{Name: "all"}}
	return sc
}

// TestScaleGrid simulates 100 clusters × 100 nodes and 10^6 jobs under
// orrery when ORRERY_SCALE is set (it takes tens of seconds); CI runs a
// 10×10 grid with 10^4 jobs. It reports scheduling decisions per second.
func TestScaleGrid(t *testing.T) {
	clusters, nodes, jobs := 10, 10, 10_000
	if s := os.Getenv("ORRERY_SCALE"); s != "" {
		clusters, nodes, jobs = 100, 100, 1_000_000
		if n, err := strconv.Atoi(s); err == nil && n > 1 {
			jobs = n
		}
	}
	sc := gridScenario(clusters, nodes, jobs)
	start := time.Now()
	res, err := Run(sc, sc.Cases[0], "orrery", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	t.Logf("%d clusters × %d nodes, %d jobs under orrery: %.1f s wall, %d decisions (%.0f/s), makespan %.0f s, bound %.0f s, efficiency %.3f",
		clusters, nodes, jobs, el.Seconds(), res.Decisions, float64(res.Decisions)/el.Seconds(), res.Mean, res.Bound, res.Efficiency)
	if res.Efficiency < 0.9 {
		t.Errorf("efficiency %.3f on a large uniform grid; want at least 0.9", res.Efficiency)
	}
}

// TestScaleGridFewJobsPerNode is the shape where which jobs start first
// and where the long ones go decide everything: 30 clusters × 30 nodes
// and ten jobs a node (ORRERY_SCALE=100000 runs the 100 × 100 grid of
// TestScaleGrid with 10^5 jobs, the same shape). The grid sees the
// whole sweep (its window is ten jobs a CPU), so the longest jobs start
// early, on the fastest nodes.
func TestScaleGridFewJobsPerNode(t *testing.T) {
	sc := gridScenario(30, 30, 9000)
	res, err := Run(sc, sc.Cases[0], "orrery", 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("30 clusters × 30 nodes, 9000 jobs: makespan %.0f s, bound %.0f s, efficiency %.3f", res.Mean, res.Bound, res.Efficiency)
	if res.Efficiency < 0.95 {
		t.Errorf("efficiency %.3f with ten jobs a node; want at least 0.95", res.Efficiency)
	}
}
