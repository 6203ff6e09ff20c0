//go:build bench

package grid

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"orrery/headctl"
	"orrery/internal/sitetest"
	"orrery/pki"
	"orrery/store"
)

// paperSite is one of the paper's four sites (its Table 3).
type paperSite struct {
	name string
	ghz  float64 // the site's total GHz
	cpus int     // its processors: a site gets at most this many nodes
	far  bool    // across the world from the root (Jerusalem)
}

// paperSites are the sites of Table 3; the root was at Monash.
var paperSites = []paperSite{
	{"monash1", 10.4, 16, false},
	{"monash2", 21.8, 30, false},
	{"vpac", 6.3, 7, false},
	{"hebrew", 40.0, 48, true},
}

// The built-in paper-table4's links from the root: 50 Mb/s to each
// Melbourne site and 10 Mb/s to Jerusalem, as bytes a second for the wan
// link and as the simulator writes them.
const (
	nearRate    = 50_000_000 / 8
	farRate     = 10_000_000 / 8
	nearRateSim = "50Mb/s"
	farRateSim  = "10Mb/s"
)

// config is what a Table 4 run is, from the GRID_* variables.
type config struct {
	runs      int           // runs per policy
	jobs      int           // jobs per run
	cpus      float64       // the sites' CPU quotas together
	makespan  float64       // the bound aimed at, in seconds: sets the jobs' mean work
	policies  []string      // in the order they take turns
	seed      uint64        // run k draws its jobs with seed+k-1
	mecPerCPU int           // mec's processes per CPU (the built-in's 2)
	maxNodes  int           // nodes per site at most
	minShare  float64       // the smallest node's CPU quota
	spread    float64       // node speeds within a site: ± this share of the site's mean
	cv        float64       // the jobs' work: coefficient of variation
	nearDelay time.Duration // one way, root to each Melbourne site
	farDelay  time.Duration // one way, root to Jerusalem
	timeout   time.Duration // one `orrery run` at most
	out       string        // where to keep each run's files ("": nowhere)
}

func loadConfig(t *testing.T) config {
	t.Helper()
	c := config{
		runs:      envInt(t, "GRID_RUNS", 3),
		jobs:      envInt(t, "GRID_JOBS", 300),
		cpus:      envFloat(t, "GRID_CPUS", 1.6),
		makespan:  envFloat(t, "GRID_MAKESPAN", 180),
		seed:      uint64(envInt(t, "GRID_SEED", 1)),
		mecPerCPU: envInt(t, "GRID_MEC_PER_CPU", 2),
		maxNodes:  envInt(t, "GRID_MAX_NODES", 6),
		minShare:  envFloat(t, "GRID_MIN_SHARE", 0.1),
		spread:    envFloat(t, "GRID_SPREAD", 0.3),
		cv:        envFloat(t, "GRID_CV", 0.1),
		nearDelay: envDuration(t, "GRID_NEAR_DELAY", 5*time.Millisecond),
		farDelay:  envDuration(t, "GRID_FAR_DELAY", 150*time.Millisecond),
		out:       os.Getenv("GRID_OUT"),
	}
	c.timeout = envDuration(t, "GRID_RUN_TIMEOUT", time.Duration(5*c.makespan+180)*time.Second)
	for _, p := range strings.Split(cmpOr(os.Getenv("GRID_POLICIES"), "mec,orrery"), ",") {
		if p = strings.TrimSpace(p); p != "" {
			c.policies = append(c.policies, p)
		}
	}
	switch {
	case c.runs < 1, c.jobs < 1, c.maxNodes < 1, c.mecPerCPU < 1:
		t.Fatalf("GRID_RUNS, GRID_JOBS, GRID_MAX_NODES and GRID_MEC_PER_CPU want at least 1")
	case c.cpus <= 0, c.makespan <= 0, c.minShare <= 0, c.cv < 0, c.spread < 0 || c.spread >= 1:
		t.Fatalf("GRID_CPUS, GRID_MAKESPAN and GRID_MIN_SHARE want more than 0, GRID_CV at least 0, GRID_SPREAD from 0 to below 1")
	case len(c.policies) == 0:
		t.Fatalf("GRID_POLICIES names no policy")
	}
	return c
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%s=%q: not a whole number", name, s)
	}
	return v
}

func envFloat(t *testing.T, name string, def float64) float64 {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("%s=%q: not a number", name, s)
	}
	return v
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("%s=%q: not a duration such as 150ms", name, s)
	}
	return v
}

// node is one node of a site: a control group with a CPU quota.
type node struct {
	name  string
	share float64
}

// siteLayout is a site's nodes.
type siteLayout struct {
	paperSite
	nodes []node
}

func (s siteLayout) share() float64 {
	var x float64
	for _, n := range s.nodes {
		x += n.share
	}
	return x
}

// layout shares cfg.cpus between the sites in the paper's proportions,
// each site's share between as many nodes as keep each at least
// minShare (at most maxNodes, and at most the paper's processors), their
// speeds spread evenly over ±spread of the site's mean, as the built-in
// scenario spreads them, as far as minShare lets.
func layout(cfg config) []siteLayout {
	var total float64
	for _, s := range paperSites {
		total += s.ghz
	}
	var out []siteLayout
	for _, s := range paperSites {
		share := cfg.cpus * s.ghz / total
		n := min(max(int(share/cfg.minShare+1e-9), 1), cfg.maxNodes, s.cpus)
		mean := share / float64(n)
		sp := max(min(cfg.spread, 1-cfg.minShare/mean), 0)
		l := siteLayout{paperSite: s}
		for i := range n {
			f := 1.0
			if n > 1 {
				f = 1 - sp + 2*sp*float64(i)/float64(n-1)
			}
			l.nodes = append(l.nodes, node{name: fmt.Sprintf("%s-%d", s.name, i+1), share: math.Round(mean*f*1e4) / 1e4})
		}
		out = append(out, l)
	}
	return out
}

// say prints a line of the bench's report on the test's standard output.
func say(format string, args ...any) {
	fmt.Printf(format+"\n", args...)
}

// gridSite is a site as the root reaches it: through its wan link.
type gridSite struct {
	siteLayout
	site *sitetest.Site
	ssh  *sitetest.Server
}

// clusterBlock is the site's block of the cluster file; every node
// takes jobLimit jobs at once (0: the policy's choice).
func (g gridSite) clusterBlock(jobLimit int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "cluster %s ssh %s@%s:%d identity %s known-hosts %s\n", g.name, g.ssh.User, g.ssh.Host, g.ssh.Port,
		g.ssh.Identity, g.ssh.KnownHosts)
	for _, n := range g.nodes {
		fmt.Fprintf(&b, "    node %s cpu-share %.4f", n.name, n.share)
		if jobLimit > 0 {
			fmt.Fprintf(&b, " job-limit %d", jobLimit)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// bench is what every run shares.
type bench struct {
	cfg    config
	sites  []gridSite
	orrery string  // the orrery binary
	burn   string  // the burner
	loops  int     // BURN_UNIT_LOOPS: one unit is about a millisecond of CPU
	unit   float64 // CPU seconds of one unit at full speed
	home   string
	base   string // a directory of the test's
}

// TestTable4 runs the paper's Table 4 live, scaled to this machine, and
// prints each run and the table; a missed target fails it.
func TestTable4(t *testing.T) {
	cfg := loadConfig(t)
	if os.Geteuid() != 0 {
		t.Skip("needs root: sites are network namespaces and nodes control groups")
	}
	sitetest.RequireSite(t)
	sitetest.NewCPUGroup(t, 0.1) // skips where control groups with a CPU quota cannot be made
	if _, err := exec.LookPath("cc"); err != nil {
		t.Skip("no C compiler (cc) to build the burner")
	}
	b := &bench{cfg: cfg, base: t.TempDir()}
	if cfg.out != "" {
		// Everything is kept: each run's directory, with its state.
		b.base = cfg.out
		if err := os.MkdirAll(b.base, 0o755); err != nil {
			t.Fatalf("GRID_OUT: %v", err)
		}
	}
	var err error
	if b.home, err = os.UserHomeDir(); err != nil {
		t.Fatal(err)
	}
	b.build(t)
	b.calibrate(t)

	lay := layout(cfg)
	var quota float64
	var desc []string
	for _, s := range lay {
		quota += s.share()
		var shares []string
		for _, n := range s.nodes {
			shares = append(shares, fmt.Sprintf("%.3f", n.share))
		}
		delay := cfg.nearDelay
		if s.far {
			delay = cfg.farDelay
		}
		desc = append(desc, fmt.Sprintf("%s %.3f CPU in %d nodes (%s), %s away", s.name, s.share(), len(s.nodes),
			strings.Join(shares, " "), delay))
	}
	mean := cfg.makespan * quota / float64(cfg.jobs)
	say("== Table 4 live: %d jobs of %.3f CPU s on average (lognormal, CV %g), %d runs per policy, seed %d; %d CPUs, load %s",
		cfg.jobs, mean, cfg.cv, cfg.runs, cfg.seed, runtime.NumCPU(), loadavg())
	for _, d := range desc {
		say("   %s", d)
	}
	say("   %.3f CPUs in all; burner: %.4f ms of CPU per unit at full speed (BURN_UNIT_LOOPS=%d)", quota, b.unit*1e3, b.loops)

	start := time.Now()
	for _, s := range lay {
		site := sitetest.NewSite(t, sitetest.SiteOptions{Firewall: true})
		mirrorCgroups(t, site)
		delay, rate := cfg.nearDelay, int64(nearRate)
		if s.far {
			delay, rate = cfg.farDelay, farRate
		}
		addr, _ := sitetest.WAN(t, fmt.Sprintf("%s:%d", site.Addr, site.SSHD.Port), delay, rate)
		b.sites = append(b.sites, gridSite{siteLayout: s, site: site, ssh: site.SSHD.Via(t, addr)})
	}
	say("   sites made in %s", time.Since(start).Round(time.Millisecond))

	res := map[string][]runOut{}
	for r := 1; r <= cfg.runs; r++ {
		seed := cfg.seed + uint64(r) - 1
		work := b.draw(t, mean, seed)
		units := make([]int, len(work))
		for i, w := range work {
			units[i] = max(int(math.Round(w/b.unit)), 1)
		}
		// Policies take turns, the first one first in odd runs, so that
		// a machine that grows busier weighs on each alike.
		order := append([]string(nil), cfg.policies...)
		if r%2 == 0 {
			for i, j := 0, len(order)-1; i < j; i, j = i+1, j-1 {
				order[i], order[j] = order[j], order[i]
			}
		}
		for _, p := range order {
			o := b.run(t, r, seed, p, mean, units)
			res[p] = append(res[p], o)
			o.print()
		}
	}
	b.table(t, res, quota)
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// build builds orrery and the burner, and puts orrery where a head's
// machine keeps it (this machine's ~/.orrery/bin), so that no run spends
// its first seconds copying it over a slow link.
func (b *bench) build(t *testing.T) {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	// A build ID of its own makes the binary, and so its name on the
	// heads' machine (~/.orrery/bin/orrery-HASH), this test's alone: the
	// tests of cmd/orrery build the same tree and remove their copy,
	// which would be this one, when they end.
	b.orrery = filepath.Join(b.base, "orrery")
	cmd := exec.Command("go", "build", fmt.Sprintf("-ldflags=-buildid=orrery-bench-grid-%d-%d", os.Getpid(), time.Now().UnixNano()),
		"-o", b.orrery, "./cmd/orrery")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/orrery: %v\n%s", err, out)
	}
	b.burn = filepath.Join(b.base, "burn")
	if out, err := exec.Command("cc", "-O2", "-o", b.burn, filepath.Join(root, "examples", "cputest", "burn.c")).CombinedOutput(); err != nil {
		t.Fatalf("cc burn.c: %v\n%s", err, out)
	}
	data, err := os.ReadFile(b.orrery)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	dst := filepath.Join(b.home, ".orrery", "bin", "orrery-"+hex.EncodeToString(sum[:])[:16])
	if _, err := os.Stat(dst); err == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst+".bench", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(dst+".bench", dst); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(dst) })
}

// burnCPU runs the burner unthrottled and returns the CPU seconds it
// says it used.
func (b *bench) burnCPU(t *testing.T, loops, units int) float64 {
	t.Helper()
	cmd := exec.Command(b.burn, strconv.Itoa(units))
	cmd.Env = append(os.Environ(), "BURN_UNIT_LOOPS="+strconv.Itoa(loops))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("burn: %v", err)
	}
	_, cpu, ok := parseBurn(out)
	if !ok {
		t.Fatalf("burn printed %q", out)
	}
	return cpu
}

// parseBurn reads the burner's line, "N units in X s of CPU", from its
// output (an attempt's output has a line before it that names the
// command).
func parseBurn(out []byte) (units int, cpu float64, ok bool) {
	for _, l := range strings.Split(string(out), "\n") {
		if n, err := fmt.Sscanf(l, "%d units in %g s of CPU", &units, &cpu); err == nil && n == 2 {
			return units, cpu, true
		}
	}
	return 0, 0, false
}

// calibrate scales the burner so that a unit is about a millisecond of
// CPU at full speed, and measures it (the least of two runs of a second).
func (b *bench) calibrate(t *testing.T) {
	t.Helper()
	const probe = 300
	cpu := max(b.burnCPU(t, 400000, probe), 1e-3)
	b.loops = max(int(math.Round(1e-3/(cpu/(probe*400000)))), 1)
	b.unit = math.Inf(1)
	for range 2 {
		b.unit = min(b.unit, b.burnCPU(t, b.loops, 1000)/1000)
	}
	if b.unit <= 0 {
		t.Fatalf("the burner used no CPU")
	}
}

// workLine is the workload's one line, the same in the scenario that
// draws the jobs and in each run's: so the simulator draws the same jobs.
func (b *bench) workLine(mean float64) string {
	return fmt.Sprintf("    jobs %d work lognormal %.9g %.9g predictable 1", b.cfg.jobs, mean, b.cfg.cv)
}

// drawSpeed is the speed of the nodes of the scenario that draws the
// jobs: each job runs alone on a node this slow, so the trace shows its
// work, times 1/drawSpeed, to the trace's millisecond.
const drawSpeed = 0.001

// draw returns the work (CPU seconds at full speed) of the jobs run r
// runs, in their order, as `orrery sim` draws them with seed from the
// built-in paper-table4's distribution (lognormal, mean, CV): one node
// per job, each job alone on its own node from the start, and the trace
// of when each job ran says how much work it is. predictable 1: the
// burner's units are a parameter of the live plan, so a policy that
// learns may know each job's work from it, as the simulated one may
// from the parameter the simulator gives it.
func (b *bench) draw(t *testing.T, mean float64, seed uint64) []float64 {
	t.Helper()
	dir := filepath.Join(b.base, fmt.Sprintf("draw-%d", seed))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	scn := fmt.Sprintf("# bench/grid: the jobs of seed %d, each alone on a node of %g GHz\nscenario draw\nruns 1\npolicies fcfs\n\n"+
		"cluster d\n    nodes %d cpus 1 speed %g\nend\n\nworkload astro order random\n%s\nend\n\ncase draw per-cpu 1\n",
		seed, drawSpeed, b.cfg.jobs, drawSpeed, b.workLine(mean))
	file := filepath.Join(dir, "draw.scn")
	trace := filepath.Join(dir, "draw.trace")
	if err := os.WriteFile(file, []byte(scn), 0o644); err != nil {
		t.Fatal(err)
	}
	res := b.sim(t, file, "fcfs", seed, "--trace", trace)
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ran := map[int]float64{}
	began := map[int]float64{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 3 || strings.HasPrefix(fs[0], "#") || !strings.HasPrefix(fs[2], "j") {
			continue
		}
		at, err1 := strconv.ParseFloat(fs[0], 64)
		j, err2 := strconv.Atoi(fs[2][1:])
		if err1 != nil || err2 != nil {
			t.Fatalf("draw trace: line %q", sc.Text())
		}
		switch fs[1] {
		case "run":
			if _, ok := began[j]; !ok {
				began[j] = at
			}
		case "ran":
			ran[j] = at
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	work := make([]float64, b.cfg.jobs)
	var longest float64
	for j := 1; j <= b.cfg.jobs; j++ {
		s, ok1 := began[j]
		e, ok2 := ran[j]
		if !ok1 || !ok2 || e <= s {
			t.Fatalf("draw trace %s: job %d has no run and ran (the trace's format changed?)", trace, j)
		}
		work[j-1] = (e - s) * drawSpeed
		longest = max(longest, work[j-1])
	}
	// The simulator's bound there is the longest job on a node of
	// drawSpeed: the jobs read from the trace must agree with it.
	if want := res.Bound * drawSpeed; math.Abs(longest-want) > 1e-5+1e-4*want {
		t.Fatalf("draw: the longest job read from the trace is %g CPU s, the simulator's bound says %g", longest, want)
	}
	return work
}

// simResult is one result of `orrery sim --json`.
type simResult struct {
	Case     string   `json:"case"`
	Policy   string   `json:"policy"`
	Makespan *float64 `json:"makespan_mean"`
	Bound    float64  `json:"bound"`
	Failed   string   `json:"failed"`
}

// sim runs `orrery sim --json --runs 1` on one policy and returns its
// one result.
func (b *bench) sim(t *testing.T, file, policy string, seed uint64, extra ...string) simResult {
	t.Helper()
	args := append([]string{"sim", "--json", "--runs", "1", "--seed", strconv.FormatUint(seed, 10), "--policy", policy}, extra...)
	cmd := exec.Command(b.orrery, append(args, file)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("orrery %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	var r struct {
		Results []simResult `json:"results"`
	}
	if err := json.Unmarshal(out, &r); err != nil || len(r.Results) != 1 {
		t.Fatalf("orrery sim printed %q (%v), want one result", out, err)
	}
	if r.Results[0].Makespan == nil {
		t.Fatalf("orrery sim %s: %s under %s did not complete: %s", file, r.Results[0].Case, policy, r.Results[0].Failed)
	}
	return r.Results[0]
}

// runOut is what one live run measured.
type runOut struct {
	run      int
	seed     uint64
	policy   string
	makespan float64            // first start on a node to the last end on one, s
	rootSpan float64            // the root's first hand-over to its last result, s
	wall     float64            // `orrery run` from start to exit, s
	skew     float64            // the last site's first start after the first site's, s
	bound    float64            // total work ÷ the quotas (or the longest job on the largest), s
	boundCal float64            // the same with the calibrated work
	boundGot float64            // the same with the speeds measured
	got      float64            // the CPU the nodes got ÷ their quotas, while they ran jobs
	sim      float64            // orrery sim fed the measured speeds, s
	perSite  map[string]int     // jobs done per site
	speeds   map[string]float64 // measured speed per node (CPUs' worth of the burner's work)
	quotas   map[string]float64
	cpuUnit  float64 // CPU per unit over the run's done attempts, s
	unit     float64 // calibrated CPU per unit, s
	busy     float64 // the machine's CPUs busy on average during the run
	attempts int     // node attempts, duplicates and restarts included
	sites    []string
}

func (o runOut) eff() float64   { return o.bound / o.makespan }
func (o runOut) ratio() float64 { return o.makespan / o.sim }

func (o runOut) print() {
	var ps []string
	for _, s := range o.sites {
		ps = append(ps, fmt.Sprintf("%s %d", s, o.perSite[s]))
	}
	say("run %d %-6s seed %d: live %.1f s, bound %.1f s, efficiency %.1f%%, sim %.1f s, live/sim %.3f", o.run, o.policy, o.seed,
		o.makespan, o.bound, 100*o.eff(), o.sim, o.ratio())
	say("    root span %.1f s, orrery run %.1f s, last site's first start +%.1f s; jobs per site: %s; %d node attempts",
		o.rootSpan, o.wall, o.skew, strings.Join(ps, ", "), o.attempts)
	var names []string
	for n := range o.speeds {
		names = append(names, n)
	}
	sort.Strings(names)
	var sp []string
	for _, n := range names {
		sp = append(sp, fmt.Sprintf("%s %.2f", n, o.speeds[n]*o.cpuUnit/o.unit/o.quotas[n]))
	}
	say("    CPU got ÷ quota: %s", strings.Join(sp, ", "))
	say("    nodes got %.0f%% of their quotas; against the capacity they got: bound %.1f s, efficiency %.1f%%; machine busy %.2f CPUs",
		100*o.got, o.boundGot, 100*o.boundGot/o.makespan, o.busy)
	say("    CPU per unit %.4f ms in the run, %.4f calibrated (bound with the calibrated work %.1f s)", o.cpuUnit*1e3, o.unit*1e3, o.boundCal)
}

// busyCPUs is the CPU seconds the machine has spent busy since boot.
func busyCPUs() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	var busy float64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		if i < len(f) {
			v, _ := strconv.ParseFloat(f[i], 64)
			busy += v
		}
	}
	return busy / 100
}

// planText is the live plan: job x burns units[x-1] units; the burner
// is staged through each head (its cache takes it across the wide-area
// link once).
func planText(loops int, units []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# bench/grid: the jobs of one Table 4 run\nparameter x integer range from 1 to %d\nparameter units integer select anyof", len(units))
	for _, u := range units {
		fmt.Fprintf(&b, " %d", u)
	}
	fmt.Fprintf(&b, "\nparameter BURN_UNIT_LOOPS integer %d\nzip x units\n\ntask main\n\tcopy root:burn node:burn\n\texec ./burn $units\nendtask\n", loops)
	return b.String()
}

// attempt is one attempt as a head recorded it on its node.
type attempt struct {
	node       string
	start, end time.Time
	cpu        float64
	units      int // from the burner's output; 0 when it did not finish
}

// run runs one live run and sets it against the bound and the simulator.
func (b *bench) run(t *testing.T, r int, seed uint64, policy string, mean float64, units []int) runOut {
	t.Helper()
	cfg := b.cfg
	dir := filepath.Join(b.base, fmt.Sprintf("run%d-%s", r, policy))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	jobLimit := 0
	if policy == "mec" {
		jobLimit = cfg.mecPerCPU
	}
	var cf strings.Builder
	fmt.Fprintf(&cf, "# bench/grid: Table 4 run %d, seed %d, --policy %s\n", r, seed, policy)
	for _, s := range b.sites {
		cf.WriteString(s.clusterBlock(jobLimit))
	}
	burn, err := os.ReadFile(b.burn)
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"grid.cluster": []byte(cf.String()), "p.pln": []byte(planText(b.loops, units)), "burn": burn} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	// Whatever becomes of the run, its heads are stopped and their
	// directories removed when the test ends.
	t.Cleanup(func() {
		if hds, err := b.headDirs(dir); err == nil {
			for _, hd := range hds {
				b.stopHead(hd, "")
			}
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), cfg.timeout)
	defer cancel()
	cmd := exec.Command(b.orrery, "run", "--cluster", "grid.cluster", "--policy", policy, "p.pln")
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b0, t0 := busyCPUs(), time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("orrery run: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var runErr error
	select {
	case runErr = <-done:
	case <-ctx.Done():
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		runErr = fmt.Errorf("did not end within %s", cfg.timeout)
	}
	wall := time.Since(t0).Seconds()
	busy := (busyCPUs() - b0) / wall
	heads, err := b.headDirs(dir)
	if err != nil {
		t.Fatalf("run %d, --policy %s: %v\nstdout:\n%s\nstderr:\n%s", r, policy, err, tail(stdout.String()), tail(stderr.String()))
	}
	if cfg.out != "" {
		b.keep(t, dir, stdout.Bytes(), stderr.Bytes(), heads)
	}
	if runErr != nil {
		var logs strings.Builder
		for _, hd := range heads {
			data, _ := os.ReadFile(filepath.Join(hd, "head.log"))
			fmt.Fprintf(&logs, "--- %s/head.log\n%s", hd, tail(string(data)))
		}
		t.Fatalf("run %d, --policy %s: orrery run: %v\nstdout:\n%s\nstderr:\n%s\n%s", r, policy, runErr, tail(stdout.String()),
			tail(stderr.String()), logs.String())
	}

	o := runOut{run: r, seed: seed, policy: policy, wall: wall, busy: busy, unit: b.unit, perSite: map[string]int{},
		speeds: map[string]float64{}, quotas: map[string]float64{}}
	// The root's store: every job done, when the root handed the first
	// over and had the last result, and the CPU each job's run took.
	ra := b.rootAttempts(t, dir, len(units))
	o.rootSpan = ra.span
	// Each head's store: when each attempt started and ended on its
	// node, and the CPU it used.
	var atts []attempt
	firstBySite := map[string]time.Time{}
	for i, s := range b.sites {
		o.sites = append(o.sites, s.name)
		o.perSite[s.name] = ra.perCluster[s.name]
		hd := heads[i]
		as := b.headAttempts(t, hd, s.name)
		for _, a := range as {
			if f, ok := firstBySite[s.name]; !ok || a.start.Before(f) {
				firstBySite[s.name] = a.start
			}
		}
		atts = append(atts, as...)
		keepIn := ""
		if cfg.out != "" {
			keepIn = filepath.Join(dir, "head-"+s.name)
		}
		b.stopHead(hd, keepIn)
	}
	if len(atts) == 0 {
		t.Fatalf("run %d, --policy %s: the heads recorded no attempt", r, policy)
	}
	o.attempts = len(atts)
	first, last := atts[0].start, atts[0].end
	for _, a := range atts {
		if a.start.Before(first) {
			first = a.start
		}
		if a.end.After(last) {
			last = a.end
		}
	}
	o.makespan = last.Sub(first).Seconds()
	for _, f := range firstBySite {
		o.skew = max(o.skew, f.Sub(first).Seconds())
	}

	// The work: each job's CPU as its run took it, and as calibrated
	// (its units at the burner's CPU per unit, unthrottled).
	var work, longest, workCal, longestCal, unitsAll float64
	for j, u := range units {
		c, ok := ra.cpu[int64(j+1)]
		if !ok || c <= 0 {
			t.Fatalf("run %d, --policy %s: job %d has no CPU time recorded", r, policy, j+1)
		}
		work += c
		longest = max(longest, c)
		workCal += float64(u) * b.unit
		longestCal = max(longestCal, float64(u)*b.unit)
		unitsAll += float64(u)
	}
	o.cpuUnit = work / unitsAll
	// Measured speeds: each node's CPU over the time it had an attempt
	// running; for the simulator, whose jobs are the calibrated work, in
	// calibrated work a second (times b.unit / the run's CPU per unit).
	scale := b.unit / o.cpuUnit
	var quota, largest, capacity, fastest, got, gotQuota float64
	for _, s := range b.sites {
		for _, n := range s.nodes {
			o.quotas[n.name] = n.share
			quota += n.share
			largest = max(largest, n.share)
			v := nodeSpeed(atts, n.name)
			if v > 0 {
				got += v
				gotQuota += n.share
			} else {
				v = n.share // it ran nothing: its quota
			}
			o.speeds[n.name] = v * scale
			capacity += v * scale
			fastest = max(fastest, v*scale)
		}
	}
	o.got = got / gotQuota
	o.bound = max(work/quota, longest/largest)
	o.boundCal = max(workCal/quota, longestCal/largest)
	o.boundGot = max(workCal/capacity, longestCal/fastest)

	// The simulator on the run's clusters with the measured speeds and
	// the same jobs (the same workload line and seed draw them).
	var scn strings.Builder
	fmt.Fprintf(&scn, "# bench/grid: Table 4 run %d, seed %d, --policy %s, as it ran: its sites, their links,\n"+
		"# each node's speed as measured (CPUs' worth of the burner's work), the same jobs.\n\n"+
		"scenario table4-live\nruns 1\npolicies %s\n\n", r, seed, policy, policy)
	for _, s := range b.sites {
		rate, delay := nearRateSim, cfg.nearDelay
		if s.far {
			rate, delay = farRateSim, cfg.farDelay
		}
		fmt.Fprintf(&scn, "cluster %s wan %s %gms\n", s.name, rate, float64(delay)/float64(time.Millisecond))
		for _, n := range s.nodes {
			fmt.Fprintf(&scn, "    node %s cpus 1 speed %.6f\n", n.name, o.speeds[n.name])
		}
		scn.WriteString("end\n\n")
	}
	fmt.Fprintf(&scn, "workload astro order random\n%s\nend\n\ncase live", b.workLine(mean))
	if policy == "mec" {
		fmt.Fprintf(&scn, " per-cpu mec=%d", cfg.mecPerCPU)
	}
	scn.WriteString("\n")
	file := filepath.Join(dir, "live.scn")
	if err := os.WriteFile(file, []byte(scn.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	o.sim = *b.sim(t, file, policy, seed).Makespan
	return o
}

// keep writes what a run printed, its joblog and its heads' logs into
// its directory (GRID_OUT keeps it).
func (b *bench) keep(t *testing.T, dir string, stdout, stderr []byte, heads []string) {
	t.Helper()
	os.WriteFile(filepath.Join(dir, "run.out"), stdout, 0o644)
	os.WriteFile(filepath.Join(dir, "run.err"), stderr, 0o644)
	if j, err := exec.Command(b.orrery, "joblog", "--state-dir", filepath.Join(dir, ".orrery")).Output(); err == nil {
		os.WriteFile(filepath.Join(dir, "joblog.txt"), j, 0o644)
	}
	for _, hd := range heads {
		if data, err := os.ReadFile(filepath.Join(hd, "head.log")); err == nil {
			name := filepath.Base(hd)
			os.WriteFile(filepath.Join(dir, "head-"+name[strings.LastIndex(name, "-")+1:]+".log"), data, 0o644)
		}
	}
}

// tail is the end of a long output.
func tail(s string) string {
	if len(s) > 4000 {
		return "…" + s[len(s)-4000:]
	}
	return s
}

// rootRecord is what the root's store says of a run.
type rootRecord struct {
	span       float64           // the first attempt's hand-over to the last result, s
	perCluster map[string]int    // jobs done per cluster
	cpu        map[int64]float64 // each job's CPU in the attempt that did it, s
}

// rootAttempts checks in the root's store that every job is done, and
// reads what it says of the run.
func (b *bench) rootAttempts(t *testing.T, dir string, jobs int) rootRecord {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, ".orrery"))
	if err != nil {
		t.Fatalf("the root's store: %v", err)
	}
	defer st.Close()
	exp, err := st.Latest(ctx)
	if err != nil {
		t.Fatalf("the root's store: %v", err)
	}
	done := 0
	var notDone []string
	if err := st.Jobs(ctx, exp.ID, "", 0, 0, func(j store.Job) error {
		if j.State == store.Done {
			done++
		} else if len(notDone) < 10 {
			notDone = append(notDone, fmt.Sprintf("job %d %s", j.Index, j.State))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if done != jobs {
		t.Fatalf("the root: %d jobs done, want %d (%s)", done, jobs, strings.Join(notDone, ", "))
	}
	var first, last time.Time
	rec := rootRecord{perCluster: map[string]int{}, cpu: map[int64]float64{}}
	if err := st.Attempts(ctx, exp.ID, 0, func(a store.Attempt) error {
		if first.IsZero() || a.Started.Before(first) {
			first = a.Started
		}
		if a.Ended.After(last) {
			last = a.Ended
		}
		if a.State == store.AttemptOK {
			rec.perCluster[a.Cluster]++
			rec.cpu[a.Job] = a.CPU.Seconds()
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	rec.span = last.Sub(first).Seconds()
	return rec
}

// headDirs are the directories of the run's heads on the sites' machine
// (this one): ~/.orrery/h/ID-CLUSTER, ID the experiment's identity.
func (b *bench) headDirs(dir string) ([]string, error) {
	state := filepath.Join(dir, ".orrery")
	if _, err := os.Stat(filepath.Join(state, store.FileName)); err != nil {
		return nil, fmt.Errorf("the root's store: %w", err)
	}
	a, err := pki.Open(state)
	if err != nil {
		return nil, fmt.Errorf("the root's key material: %w", err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, state)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	exp, err := st.Latest(ctx)
	if err != nil {
		return nil, err
	}
	id := headctl.ExperimentID(a.CACert().Raw, exp.ID)
	var out []string
	for _, s := range b.sites {
		out = append(out, filepath.Join(b.home, ".orrery", "h", id+"-"+s.name))
	}
	return out, nil
}

// headAttempts reads the attempts a head ran on its nodes from its store.
func (b *bench) headAttempts(t *testing.T, hd, cluster string) []attempt {
	t.Helper()
	state := filepath.Join(hd, "state")
	if _, err := os.Stat(filepath.Join(state, store.FileName)); err != nil {
		t.Fatalf("cluster %s: its head's store: %v", cluster, err)
	}
	ctx := context.Background()
	st, err := store.Open(ctx, state)
	if err != nil {
		t.Fatalf("cluster %s: its head's store: %v", cluster, err)
	}
	defer st.Close()
	exp, err := st.Latest(ctx)
	if errors.Is(err, store.ErrNoExperiment) {
		return nil
	}
	if err != nil {
		t.Fatalf("cluster %s: its head's store: %v", cluster, err)
	}
	var out []attempt
	if err := st.Attempts(ctx, exp.ID, 0, func(a store.Attempt) error {
		if a.Started.IsZero() || a.Ended.IsZero() {
			return nil
		}
		x := attempt{node: a.Node, start: a.Started, end: a.Ended, cpu: a.CPU.Seconds()}
		if a.State == store.AttemptOK {
			if u, _, ok := parseBurn(a.Stdout); ok {
				x.units = u
			}
		}
		out = append(out, x)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// stopHead stops a head left running (`orrery head stop`) and removes
// its directory, after copying it to keepIn unless that is "".
func (b *bench) stopHead(hd, keepIn string) {
	if _, err := os.Stat(hd); err != nil {
		return
	}
	exec.Command(b.orrery, "head", "stop", "--dir", hd, "--wait", "30s").Run()
	if keepIn != "" {
		exec.Command("cp", "-a", hd, keepIn).Run()
	}
	os.RemoveAll(hd)
}

// nodeSpeed is a node's CPU over the time it had an attempt that used
// CPU (the union of their spans): CPUs' worth, 0 when it ran nothing.
func nodeSpeed(atts []attempt, name string) float64 {
	type span struct{ s, e time.Time }
	var spans []span
	var cpu float64
	for _, a := range atts {
		if a.node == name && a.cpu > 0 && a.end.After(a.start) {
			spans = append(spans, span{a.start, a.end})
			cpu += a.cpu
		}
	}
	if len(spans) == 0 {
		return 0
	}
	sort.Slice(spans, func(i, j int) bool { return spans[i].s.Before(spans[j].s) })
	var busy time.Duration
	cur := spans[0]
	for _, s := range spans[1:] {
		if s.s.After(cur.e) {
			busy += cur.e.Sub(cur.s)
			cur = s
		} else if s.e.After(cur.e) {
			cur.e = s.e
		}
	}
	busy += cur.e.Sub(cur.s)
	return cpu / busy.Seconds()
}

// meanSD is the mean and sample standard deviation of xs.
func meanSD(xs []float64) (float64, float64) {
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	if len(xs) < 2 {
		return m, 0
	}
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	return m, math.Sqrt(v / float64(len(xs)-1))
}

// Targets from issue 14, point 9.
const (
	targetEff   = 0.95 // orrery's makespan against the bound, live
	targetRatio = 0.10 // |live / sim - 1|
)

// table prints the policies' figures and fails the test for a target
// missed.
func (b *bench) table(t *testing.T, res map[string][]runOut, quota float64) {
	say("")
	say("Table 4 live (%d jobs, %.2f CPUs on 4 sites, %d runs per policy): mean ± S.D.", b.cfg.jobs, quota, b.cfg.runs)
	say("%-8s %-18s %-9s %-14s %-18s %-15s %-11s %s", "policy", "makespan", "bound", "efficiency", "simulated", "live/sim",
		"quota got", "efficiency vs capacity got")
	type row struct{ eff, ratio float64 }
	rows := map[string]row{}
	var gotAll []float64
	for _, p := range b.cfg.policies {
		var live, bound, eff, sim, ratio, got, effGot []float64
		for _, o := range res[p] {
			live = append(live, o.makespan)
			bound = append(bound, o.bound)
			eff = append(eff, o.eff())
			sim = append(sim, o.sim)
			ratio = append(ratio, o.ratio())
			got = append(got, o.got)
			effGot = append(effGot, o.boundGot/o.makespan)
		}
		gotAll = append(gotAll, got...)
		lm, ls := meanSD(live)
		bm, _ := meanSD(bound)
		em, es := meanSD(eff)
		sm, ss := meanSD(sim)
		rm, rs := meanSD(ratio)
		gm, _ := meanSD(got)
		gem, ges := meanSD(effGot)
		say("%-8s %-18s %-9s %-14s %-18s %-15s %-11s %s", p, fmt.Sprintf("%.1f ± %.1f s", lm, ls), fmt.Sprintf("%.1f s", bm),
			fmt.Sprintf("%.1f%% ± %.1f", 100*em, 100*es), fmt.Sprintf("%.1f ± %.1f s", sm, ss), fmt.Sprintf("%.3f ± %.3f", rm, rs),
			fmt.Sprintf("%.0f%%", 100*gm), fmt.Sprintf("%.1f%% ± %.1f", 100*gem, 100*ges))
		rows[p] = row{em, rm}
	}
	say("paper (all four sites, mec): 6.75 h against 6.6 h best, 98%%")
	say("targets: orrery >= %.0f%% of the bound live; live within %.0f%% of simulated", 100*targetEff, 100*targetRatio)
	if g, _ := meanSD(gotAll); g < 0.9 {
		say("NOTE: the nodes got only %.0f%% of their CPU quotas: other work on this machine took the rest, so the efficiency", 100*g)
		say("      against the quotas' bound says more of the machine than of the policies: run it on an idle machine")
	}
	if r, ok := rows["orrery"]; ok && r.eff < targetEff {
		say("MISSED: orrery at %.1f%% of the bound (target %.0f%%)", 100*r.eff, 100*targetEff)
		t.Errorf("MISSED: orrery at %.1f%% of the bound", 100*r.eff)
	}
	for _, p := range b.cfg.policies {
		if r := rows[p]; math.Abs(r.ratio-1) > targetRatio {
			say("MISSED: %s live/sim %.3f (target within %.0f%%)", p, r.ratio, 100*targetRatio)
			t.Errorf("MISSED: %s live/sim %.3f", p, r.ratio)
		}
	}
}

// mirrorCgroups gives the site's sshd, and so the heads it starts and
// their nodes, this machine's control groups: `ip netns exec` mounts a
// sysfs of the namespace's own, without /sys/fs/cgroup's mounts, so a
// head there cannot make a node with a CPU quota. It mounts, in sshd's
// mount namespace (private, so nothing leaks out), the cgroup2
// hierarchy or the v1 cpu and memory hierarchies where this machine has
// them: the same hierarchies, so the groups are the machine's.
func mirrorCgroups(t *testing.T, s *sitetest.Site) {
	t.Helper()
	pid := strconv.Itoa(s.SSHD.PID)
	in := func(script string) ([]byte, error) {
		return exec.Command("nsenter", "-t", pid, "-m", "--", "sh", "-ec", script).CombinedOutput()
	}
	const has = "test -e /sys/fs/cgroup/cgroup.controllers || test -e /sys/fs/cgroup/cpu/cgroup.procs"
	if _, err := in(has); err == nil {
		return
	}
	script, err := cgroupMounts()
	if err != nil {
		t.Fatalf("site %s: %v", s.NS, err)
	}
	if out, err := in(script + "\n" + has); err != nil {
		t.Fatalf("site %s: mounting the control groups in its sshd's namespace: %v\n%s\n%s", s.NS, err, script, out)
	}
}

// cgroupMounts is a script that mounts what this machine has under
// /sys/fs/cgroup that package cgroup uses: a tmpfs holding the v1
// hierarchies, the cgroup2 hierarchy, and the v1 ones of the cpu and
// memory controllers, with their options.
func cgroupMounts() (string, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	const root = "/sys/fs/cgroup"
	var lines []string
	for _, l := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(l, " - ")
		f, g := strings.Fields(pre), strings.Fields(post)
		if !ok || len(f) < 5 || len(g) < 3 {
			continue
		}
		at, fstype := f[4], g[0]
		if at != root && !strings.HasPrefix(at, root+"/") {
			continue
		}
		switch fstype {
		case "tmpfs":
			if at == root {
				lines = append(lines, "mount -t tmpfs -o mode=755 tmpfs "+root)
			}
		case "cgroup2":
			lines = append(lines, "mkdir -p "+at, "mount -t cgroup2 cgroup2 "+at)
		case "cgroup":
			var opts []string
			use := false
			for _, o := range strings.Split(g[2], ",") {
				if o == "rw" || o == "ro" {
					continue
				}
				opts = append(opts, o)
				use = use || o == "cpu" || o == "memory"
			}
			if use {
				lines = append(lines, "mkdir -p "+at, "mount -t cgroup -o "+strings.Join(opts, ",")+" cgroup "+at)
			}
		}
	}
	if len(lines) == 0 {
		return "", fmt.Errorf("this machine has no control groups under %s", root)
	}
	// v1's usual links, such as cpu -> cpu,cpuacct.
	if es, err := os.ReadDir(root); err == nil {
		for _, e := range es {
			if e.Type()&os.ModeSymlink != 0 {
				if to, err := os.Readlink(filepath.Join(root, e.Name())); err == nil {
					lines = append(lines, fmt.Sprintf("ln -sfn %s %s", to, filepath.Join(root, e.Name())))
				}
			}
		}
	}
	return strings.Join(lines, "\n"), nil
}
