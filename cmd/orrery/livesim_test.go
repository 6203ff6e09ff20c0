package main

// The CPU test on a throttled cluster file: the paper's CPU test
// (examples/cputest) runs for real on nodes throttled by cgroup CPU
// quotas, and `orrery sim` is given the same cluster file and jobs. What
// the test checks does not depend on how busy the machine is; how close
// the live makespan comes to the simulated one does, and is measured by
// bench/livesim.sh.

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// livesimTarget is the makespan the test aims at, in seconds: the
	// burner is scaled so that FCFS on livesimCluster takes about this
	// long. bench/livesim.sh runs the same for a minute.
	livesimTarget = 6.0
	// livesimRunTimeout bounds the real run: a busy machine slows the
	// nodes down, which this test does not judge.
	livesimRunTimeout = 150 * time.Second
)

// livesimCluster is two single-CPU nodes, one at full speed and one at
// half: 1.5 of the machine's 2 CPUs, the rest left to orrery itself.
// Speed = cpu-share ÷ cpus, so 1 and 0.5.
const livesimCluster = `# livesim: a full-speed node and a half-speed node
node fast cpus 1 cpu-share 1 job-limit 1
node slow cpus 1 cpu-share 0.5 job-limit 1
`

// livesimSpeeds are the speeds of livesimCluster's nodes, in file order.
var livesimSpeeds = []float64{1, 0.5}

// TestE2ELiveCPUTest runs the paper's CPU test (16 burner processes: 8 of
// 1000 work units, 4 of 200, 4 of 100) for real with
// `orrery run --cluster --policy fcfs` on two nodes throttled by cgroup
// CPU quotas, and checks what holds however busy the machine is:
//   - the run completes: every job done in one attempt, with its units,
//     jobs on both nodes, and no process left;
//   - FCFS's order: the jobs start in plan order, the first two on
//     different nodes, and a node runs one job at a time;
//   - the CPU time per unit the jobs report is the calibrated one (the
//     burner's scale reaches every job through its environment);
//   - `orrery sim`, given the run's cluster file and jobs, predicts the
//     FCFS makespan worked out by hand (within 1%).
//
// Whether the live makespan is within 10% of the simulated one depends
// on the CPU other work leaves to the throttled nodes: bench/livesim.sh
// measures it.
func TestE2ELiveCPUTest(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the CPU test for several seconds")
	}
	if reason := livesimUnsupported(); reason != "" {
		t.Skip(reason)
	}
	dir := e2eDir(t)
	t.Cleanup(func() { e2eKillUnder(dir) })
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "cputest", "burn.c"))
	if err != nil {
		t.Fatal(err)
	}
	planText, err := os.ReadFile(filepath.Join("..", "..", "examples", "cputest", "cputest.pln"))
	if err != nil {
		t.Fatal(err)
	}
	units := livesimUnits(t, string(planText))
	// FCFS gives a job to the first free node in the order the nodes
	// joined, which in a live run is whichever registered first; the
	// schedule is the same either way only when that order does not matter.
	if a, b := fcfsListSchedule(units, livesimSpeeds, 1), fcfsListSchedule(units, []float64{livesimSpeeds[1], livesimSpeeds[0]}, 1); a != b {
		t.Fatalf("cputest.pln's jobs %v: FCFS's makespan depends on which node joins first (%v or %v units)", units, a, b)
	}

	// Calibrate the burner: seconds of CPU per unit at full speed.
	loops, u := livesimCalibrate(t, src, units)

	// The CPU test, with the burner's scale as one more parameter: job
	// values are in the job's environment, so BURN_UNIT_LOOPS reaches it.
	e2eWrite(t, filepath.Join(dir, "burn.c"), string(src))
	e2eWrite(t, filepath.Join(dir, "cputest.pln"), fmt.Sprintf("%s\n# livesim: the burner's scale, calibrated\nparameter BURN_UNIT_LOOPS integer %d\n", planText, loops))
	e2eWrite(t, filepath.Join(dir, "cluster.txt"), livesimCluster)

	code, stdout, stderr := e2eRun(t, dir, livesimRunTimeout, "run", "--cluster", "cluster.txt", "--policy", "fcfs", "cputest.pln")
	if code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if left := e2eWaitNoProcs(dir, 10*time.Second); len(left) > 0 {
		t.Errorf("processes left after the run: %v", left)
	}

	live := livesimSchedule(t, dir, units)
	if uRun, ok := livesimRunUnit(t, dir, units); ok {
		// CPU time, unlike wall time, is what the job did whatever else
		// runs; the bounds only allow for the noise of a shared machine.
		t.Logf("the jobs' own CPU time gives %.4f ms/unit (calibration: %.4f ms/unit, ratio %.4f)",
			uRun*1e3, u*1e3, uRun/u)
		if r := uRun / u; r < 1/1.5 || r > 1.5 {
			t.Errorf("the jobs used %.4f ms of CPU per unit, the calibration %.4f ms: the burner's scale did not reach them", uRun*1e3, u*1e3)
		}
	}
	hand := fcfsListSchedule(units, livesimSpeeds, u)
	sim := livesimSim(t, dir, units, u)
	t.Logf("makespan: simulated %.3f s, FCFS by hand %.3f s, live %.3f s (live/sim %.4f: not judged here, see bench/livesim.sh)",
		sim, hand, live, live/sim)
	if math.Abs(sim-hand)/hand > 0.01 {
		t.Errorf("orrery sim predicts %.3f s for the run's cluster file and jobs under FCFS; the list schedule worked out by hand takes %.3f s", sim, hand)
	}
}

// livesimUnsupported says why the test cannot run here, or "".
func livesimUnsupported() string {
	if runtime.GOOS != "linux" {
		return "needs Linux control groups"
	}
	if os.Geteuid() != 0 {
		return "needs root: the cluster file's nodes are throttled by cgroup CPU quotas"
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		b, _ := os.ReadFile("/sys/fs/cgroup/cgroup.controllers")
		if !slices.Contains(strings.Fields(string(b)), "cpu") {
			return "the cgroup v2 hierarchy has no cpu controller"
		}
	} else if _, err := os.Stat("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"); err != nil {
		return "no cgroup CPU controller (neither v2 nor v1 cpu with CFS quotas)"
	}
	if runtime.NumCPU() < 2 {
		return fmt.Sprintf("needs 2 CPUs for nodes of 1 and 0.5 CPUs and orrery itself; have %d", runtime.NumCPU())
	}
	if _, err := exec.LookPath("cc"); err != nil {
		return "no C compiler (cc) to build the burner"
	}
	return ""
}

// livesimUnits returns the units of the plan's jobs, in plan order: the
// values of its units parameter.
func livesimUnits(t *testing.T, planText string) []float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^parameter units integer select anyof (.*)$`).FindStringSubmatch(planText)
	if m == nil {
		t.Fatal("examples/cputest/cputest.pln: no line `parameter units integer select anyof …`")
	}
	var units []float64
	for _, f := range strings.Fields(m[1]) {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("cputest.pln: units value %q: %v", f, err)
		}
		units = append(units, v)
	}
	return units
}

// livesimCalibrate builds the burner, picks its BURN_UNIT_LOOPS so that
// FCFS on livesimCluster takes about livesimTarget seconds, and measures
// the CPU seconds a unit then takes at full speed (best of 2 runs of about
// a second each).
func livesimCalibrate(t *testing.T, src []byte, units []float64) (loops int64, u float64) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "burn")
	e2eWrite(t, bin+".c", string(src))
	if out, err := exec.Command("cc", "-O2", "-o", bin, bin+".c").CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	burn := func(loops int64, n int) (cpu, wall float64) {
		t.Helper()
		cmd := exec.Command(bin, strconv.Itoa(n))
		cmd.Env = append(os.Environ(), fmt.Sprintf("BURN_UNIT_LOOPS=%d", loops))
		began := time.Now()
		out, err := cmd.Output()
		wall = time.Since(began).Seconds()
		if err != nil {
			t.Fatalf("burn %d: %v", n, err)
		}
		var got int
		if _, err := fmt.Sscanf(string(out), "%d units in %g s of CPU", &got, &cpu); err != nil || got != n {
			t.Fatalf("burn %d printed %q (%v)", n, out, err)
		}
		return cpu, wall
	}
	// A rough speed at the default scale picks the scale.
	const defaultLoops = 400000
	cpu, _ := burn(defaultLoops, 200)
	perLoop := math.Max(cpu, 1e-3) / (200 * defaultLoops)
	uWant := livesimTarget / fcfsListSchedule(units, livesimSpeeds, 1)
	loops = max(int64(math.Round(uWant/perLoop)), 1)
	// The calibration proper: about a second, twice.
	n := max(int(math.Round(1/uWant)), 1)
	u = math.Inf(1)
	for range 2 {
		cpu, wall := burn(loops, n)
		t.Logf("calibration: burn %d with BURN_UNIT_LOOPS=%d: %.3f s CPU, %.3f s wall", n, loops, cpu, wall)
		u = min(u, cpu/float64(n))
	}
	t.Logf("calibration: %.4f ms per unit at full speed (aimed at %.4f)", u*1e3, uWant*1e3)
	return loops, u
}

// fcfsListSchedule is the makespan of FCFS list scheduling, worked out by
// hand: each job in order goes to the node that frees first (ties to the
// node listed first), one job per node at a time; a job of N units takes
// N·u ÷ speed seconds.
func fcfsListSchedule(units, speeds []float64, u float64) float64 {
	free := make([]float64, len(speeds))
	for _, n := range units {
		i := 0
		for k := range free {
			if free[k] < free[i] {
				i = k
			}
		}
		free[i] += n * u / speeds[i]
	}
	return slices.Max(free)
}

// livesimSchedule checks that every job ran once and succeeded, with the
// plan's units, in FCFS's order: the jobs start in plan order (the root
// records an attempt's start when it hands the job out), the first two
// on different nodes, and each node runs one job at a time. It returns
// the span from the first attempt's start to the last one's end, from
// the joblog.
func livesimSchedule(t *testing.T, dir string, units []float64) float64 {
	t.Helper()
	jobs := e2eJobs(t, dir)
	if len(jobs) != len(units) {
		t.Fatalf("%d jobs, want %d", len(jobs), len(units))
	}
	for i, j := range jobs {
		if j.State != "done" || j.Attempts != 1 || j.Values["units"] != strconv.FormatFloat(units[i], 'f', -1, 64) {
			t.Errorf("job %d: %+v, want done in 1 attempt with units %v", j.Index, j, units[i])
		}
	}
	lines := e2eJoblog(t, dir)
	if len(lines) != len(units) {
		t.Fatalf("joblog: %d attempts, want %d", len(lines), len(units))
	}
	slices.SortFunc(lines, func(a, b e2eJoblogLine) int { return int(a.Seq - b.Seq) })
	first, last := math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		first = min(first, l.Start)
		last = max(last, l.Start+l.Runtime)
	}
	// The joblog's times are rounded to the millisecond.
	const slack = 0.002
	perNode := map[string]int{}
	ends := map[string]float64{} // the end of each node's last job so far
	for i, l := range lines {
		perNode[l.Host]++
		t.Logf("job %2d on %-4s %7.3f – %7.3f s", l.Seq, l.Host, l.Start-first, l.Start+l.Runtime-first)
		if l.Seq != int64(i+1) {
			t.Fatalf("joblog: attempts of jobs %v, want one of each job 1–%d", lines, len(units))
		}
		if i > 0 && l.Start < lines[i-1].Start {
			t.Errorf("job %d started before job %d: FCFS hands jobs out in plan order", l.Seq, lines[i-1].Seq)
		}
		if end, ok := ends[l.Host]; ok && l.Start < end-slack {
			t.Errorf("job %d started on %s at %.3f s, before that node's previous job ended at %.3f s (job limit 1)",
				l.Seq, l.Host, l.Start-first, end-first)
		}
		ends[l.Host] = l.Start + l.Runtime
	}
	if lines[0].Host == lines[1].Host {
		t.Errorf("jobs 1 and 2 both ran on %s; FCFS starts one on each free node", lines[0].Host)
	}
	if perNode["fast"] == 0 || perNode["slow"] == 0 {
		t.Errorf("jobs per node %v, want jobs on both fast and slow", perNode)
	}
	return last - first
}

// livesimRunUnit returns the CPU seconds per unit the jobs themselves
// reported (results/proc-N.txt).
func livesimRunUnit(t *testing.T, dir string, units []float64) (float64, bool) {
	t.Helper()
	var cpu, total float64
	for i, n := range units {
		b, err := os.ReadFile(filepath.Join(dir, "results", fmt.Sprintf("proc-%d.txt", i+1)))
		if err != nil {
			t.Errorf("result of job %d: %v", i+1, err)
			return 0, false
		}
		var got int
		var c float64
		if _, err := fmt.Sscanf(string(b), "%d units in %g s of CPU", &got, &c); err != nil || float64(got) != n {
			t.Errorf("results/proc-%d.txt = %q, want %v units", i+1, b, n)
			return 0, false
		}
		cpu += c
		total += n
	}
	return cpu / total, true
}

// livesimScenario is the scenario for `orrery sim`: the cluster file of
// the run, and the plan's jobs in plan order, in work units of u GHz·s
// (u CPU seconds at speed 1, one full CPU).
func livesimScenario(units []float64, u float64) string {
	var b strings.Builder
	fmt.Fprintf(&b, `# The CPU test of TestE2ELiveCPUTest: the cluster file it ran on
# and the jobs of examples/cputest/cputest.pln in plan order.
scenario livesim
runs 1
policies fcfs
# GHz·s per work unit: the burner's calibrated CPU seconds per unit at
# full speed (speed 1 is one full CPU).
unit %.9g
cluster live from cluster.txt
workload cputest order given
`, u)
	for i := 0; i < len(units); {
		j := i
		for j < len(units) && units[j] == units[i] {
			j++
		}
		fmt.Fprintf(&b, "\tjobs %d work %su\n", j-i, strconv.FormatFloat(units[i], 'f', -1, 64))
		i = j
	}
	b.WriteString("end\ncase live workload cputest clusters live\n")
	return b.String()
}

// livesimSimResult is the part of `orrery sim --json` the test reads.
type livesimSimResult struct {
	Scenario string `json:"scenario"`
	Results  []struct {
		Case         string  `json:"case"`
		Policy       string  `json:"policy"`
		MakespanMean float64 `json:"makespan_mean"`
	} `json:"results"`
}

// livesimSim writes the scenario beside the cluster file and returns the
// makespan `orrery sim` predicts for it under FCFS.
func livesimSim(t *testing.T, dir string, units []float64, u float64) float64 {
	t.Helper()
	scenario := livesimScenario(units, u)
	e2eWrite(t, filepath.Join(dir, "livesim.scenario"), scenario)
	t.Logf("scenario for orrery sim:\n%s", scenario)
	out := e2eMust(t, dir, "sim", "--json", "--runs", "1", "--policy", "fcfs", "livesim.scenario")
	var res livesimSimResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("sim --json: %v in\n%s", err, out)
	}
	if len(res.Results) != 1 || res.Results[0].Case != "live" || res.Results[0].Policy != "fcfs" ||
		!(res.Results[0].MakespanMean > 0) {
		t.Fatalf("sim --json: want one result, case live, policy fcfs, with a makespan; got\n%s\nfor the scenario\n%s", out, scenario)
	}
	return res.Results[0].MakespanMean
}
