package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gridPlan copies a 256 KiB input every job shares and one of its own to
// the node, and its result back.
const gridPlan = `parameter x integer range from 1 to %d
task main
	copy root:common.dat node:common.dat
	copy root:in/in-$x.txt node:in.txt
	execute sh -c "sleep 0.05; cat in.txt; wc -c < common.dat" > out.txt
	copy node:out.txt root:results/out-$x.txt
endtask
`

// gridDir makes a plan directory for n jobs with its inputs.
func gridDir(t *testing.T, n int, cluster string) string {
	t.Helper()
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "p.pln"), fmt.Sprintf(gridPlan, n))
	e2eWrite(t, filepath.Join(dir, "common.dat"), strings.Repeat("x", 256<<10))
	for i := 1; i <= n; i++ {
		e2eWrite(t, filepath.Join(dir, "in", fmt.Sprintf("in-%d.txt", i)), fmt.Sprintf("input %d\n", i))
	}
	e2eWrite(t, filepath.Join(dir, "grid.cluster"), cluster)
	return dir
}

// gridWant is the results of n jobs.
func gridWant(n int) map[string]string {
	want := map[string]string{}
	for i := 1; i <= n; i++ {
		want[fmt.Sprintf("out-%d.txt", i)] = fmt.Sprintf("input %d\n%d\n", i, 256<<10)
	}
	return want
}

// TestE2EGridLocalHeads runs a sweep over two clusters whose heads run on
// this machine: each cluster's head (`orrery head`) joins the root's
// port as one node, runs its share of the jobs on its own nodes, stages
// through its cache (the input every job shares crosses to each head
// once) and its spool, and exits once the root has every result.
func TestE2EGridLocalHeads(t *testing.T) {
	const n = 40
	dir := gridDir(t, n, "cluster east\n    node e1 job-limit 2\n    node e2 job-limit 1\ncluster west\n    node w1 job-limit 2\n")
	code, stdout, stderr := e2eRun(t, dir, 2*time.Minute, "run", "--cluster", "grid.cluster", "p.pln")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	e2eResults(t, filepath.Join(dir, "results"), gridWant(n))
	jobs := e2eJobs(t, dir)
	if len(jobs) != n {
		t.Fatalf("%d jobs, want %d", len(jobs), n)
	}
	for _, j := range jobs {
		if j.State != "done" {
			t.Errorf("job %d is %s", j.Index, j.State)
		}
	}
	for _, c := range []string{"east", "west"} {
		hd := filepath.Join(dir, ".orrery", "heads", c)
		if p := e2eMust(t, dir, "head", "probe", "--dir", hd); !strings.Contains(p, `"running":false`) || !strings.Contains(p, `"jobs":0`) {
			t.Errorf("cluster %s: its head after the run: %s", c, p)
		}
		st := e2eStatus(t, dir, "--state-dir", filepath.Join(hd, "state"))
		if done := e2eNum(t, st, "done"); done == 0 {
			t.Errorf("cluster %s ran no job (status %v)", c, st)
		}
		log, err := os.ReadFile(filepath.Join(hd, "head.log"))
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`cache: (\d+) hits, (\d+) misses, (\d+) bytes fetched`).FindStringSubmatch(string(log))
		if m == nil {
			t.Fatalf("cluster %s: no cache line in its log:\n%s", c, log)
		}
		// The shared input (256 KiB) crossed once, with the jobs' own
		// small inputs.
		if fetched, _ := strconv.Atoi(m[3]); fetched >= 2*256<<10 {
			t.Errorf("cluster %s fetched %d bytes: the shared input crossed more than once (%s)", c, fetched, m[0])
		}
	}
}

// gridStopHeads stops every head left under dir's state directory when
// the test ends (they are detached: they outlive the root on purpose).
func gridStopHeads(t *testing.T, dir string) {
	t.Cleanup(func() {
		heads, _ := filepath.Glob(filepath.Join(dir, ".orrery", "heads", "*"))
		for _, hd := range heads {
			e2eRun(t, dir, time.Minute, "head", "stop", "--dir", hd)
		}
	})
}

// TestE2EGridRootKilled kills the root with -9 in the middle of a grid
// run: the heads go on with the jobs they hold, and the root started
// again takes their attempts back as running (adopts them) instead of
// running them again, so every job runs exactly once and its result is
// recorded once.
func TestE2EGridRootKilled(t *testing.T) {
	const n = 24
	dir, want := gridRunsDir(t, n, "0.5", "cluster east\n    node e1 job-limit 2\ncluster west\n    node w1 job-limit 2\n")
	gridStopHeads(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := e2eStart(t, ctx, dir, "run", "--cluster", "grid.cluster", "p.pln")
	if !e2eWaitFor(30*time.Second, func() bool { return len(gridRuns(dir)) >= 6 }) {
		t.Fatalf("no job ran within 30 s:\n%s", root.stderr.String())
	}
	// Once the heads have fetched the inputs of jobs they hold beyond
	// those that began, they can go on without the root (on a busy
	// machine the root may not have handed any over yet at 6 runs).
	heads := []string{filepath.Join(dir, ".orrery", "heads", "east"), filepath.Join(dir, ".orrery", "heads", "west")}
	cached := func() int {
		k := 0
		for _, hd := range heads {
			objs, _ := filepath.Glob(filepath.Join(hd, "cache", "objects", "*"))
			k += len(objs)
		}
		return k
	}
	if !e2eWaitFor(30*time.Second, func() bool { return cached() >= len(gridRuns(dir))+4 }) {
		t.Fatalf("the heads fetched %d inputs ahead of %d runs within 30 s", cached(), len(gridRuns(dir)))
	}
	root.killGroup(syscall.SIGKILL)
	root.wait(10 * time.Second)
	killedAt := len(gridRuns(dir))
	// The heads work on (a liveness bound, not a speed: 30 s).
	if !e2eWaitFor(30*time.Second, func() bool { return len(gridRuns(dir)) > killedAt }) {
		var held []string
		for _, hd := range heads {
			_, out, _ := e2eRun(t, dir, time.Minute, "head", "probe", "--dir", hd)
			log, _ := os.ReadFile(filepath.Join(hd, "head.log"))
			held = append(held, hd+": "+out+string(log))
		}
		t.Errorf("no job started on the heads within 30 s of the root's kill (%d runs); heads:\n%s", killedAt, strings.Join(held, "\n"))
	}
	code, stdout, stderr := e2eRun(t, dir, 2*time.Minute, "run", "--cluster", "grid.cluster", "p.pln")
	if code != 0 {
		failed := e2eJobs(t, dir, "--state", "failed")
		var why string
		for _, j := range failed {
			w, _ := e2eLog(t, dir, j.Index)
			why += w
		}
		t.Fatalf("the run started again: exit %d\nstdout:\n%s\nstderr:\n%s\nfailed:\n%s", code, stdout, stderr, why)
	}
	e2eResults(t, filepath.Join(dir, "results"), want)
	runs := gridRuns(dir)
	for i := 1; i <= n; i++ {
		if got := runs[strconv.Itoa(i)]; got != 1 {
			t.Errorf("job %d ran %d times, want once", i, got)
		}
	}
	log := e2eMust(t, dir, "status", "--json")
	if !strings.Contains(log, `"done": `+strconv.Itoa(n)) && !strings.Contains(log, `"done":`+strconv.Itoa(n)) {
		t.Errorf("status after the run: %s", log)
	}
}

// gridRunsDir makes a plan directory for n jobs of secs seconds that
// count their runs in dir/runs (faultPlan), with the cluster file; want
// is the results.
func gridRunsDir(t *testing.T, n int, secs, cluster string) (dir string, want map[string]string) {
	t.Helper()
	dir = e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "p.pln"), fmt.Sprintf(faultPlan, n, dir, secs))
	want = map[string]string{}
	for i := 1; i <= n; i++ {
		e2eWrite(t, filepath.Join(dir, "in", fmt.Sprintf("in-%d.txt", i)), fmt.Sprintf("input %d\n", i))
		want[fmt.Sprintf("out-%d.txt", i)] = fmt.Sprintf("input %d\n", i)
	}
	os.MkdirAll(filepath.Join(dir, "runs"), 0o755)
	e2eWrite(t, filepath.Join(dir, "grid.cluster"), cluster)
	return dir, want
}

// gridRuns counts, per job, the lines its runs wrote to dir/runs/JOB.
func gridRuns(dir string) map[string]int {
	out := map[string]int{}
	ents, _ := os.ReadDir(filepath.Join(dir, "runs"))
	for _, e := range ents {
		out[e.Name()] = e2eCountLines(filepath.Join(dir, "runs", e.Name()))
	}
	return out
}

// TestE2EGridLease kills the root with -9 and leaves it down: each head
// goes on for its lease, then stops its nodes and exits, keeping what it
// holds on its disk; the root started again starts the heads again,
// which hand over what they kept, and every result arrives once.
func TestE2EGridLease(t *testing.T) {
	const n = 16
	dir, want := gridRunsDir(t, n, "0.3", "cluster east lease 3s\n    node e1 job-limit 2\ncluster west lease 3s\n    node w1 job-limit 1\n")
	gridStopHeads(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := e2eStart(t, ctx, dir, "run", "--cluster", "grid.cluster", "p.pln")
	if !e2eWaitFor(30*time.Second, func() bool { return len(gridRuns(dir)) >= 3 }) {
		t.Fatalf("no job ran within 30 s:\n%s", root.stderr.String())
	}
	root.killGroup(syscall.SIGKILL)
	root.wait(10 * time.Second)
	heads := []string{filepath.Join(dir, ".orrery", "heads", "east"), filepath.Join(dir, ".orrery", "heads", "west")}
	ended := e2eWaitFor(20*time.Second, func() bool {
		for _, hd := range heads {
			if p := e2eMust(t, dir, "head", "probe", "--dir", hd); strings.Contains(p, `"running":true`) {
				return false
			}
		}
		return true
	})
	if !ended {
		t.Fatalf("the heads still run 20 s after the root went, with a lease of 3 s")
	}
	if left := e2eWaitNoProcs(dir, 5*time.Second); len(left) > 0 {
		t.Errorf("processes left after the heads' lease ended: %v", left)
	}
	held := 0
	for _, hd := range heads {
		log, _ := os.ReadFile(filepath.Join(hd, "head.log"))
		if !strings.Contains(string(log), "lease") {
			t.Errorf("%s's log does not say its lease ended:\n%s", hd, log)
		}
		var p struct{ Jobs int }
		json.Unmarshal([]byte(e2eMust(t, dir, "head", "probe", "--dir", hd)), &p)
		held += p.Jobs
	}
	if held == 0 {
		t.Errorf("the heads kept nothing for the root")
	}
	code, stdout, stderr := e2eRun(t, dir, 2*time.Minute, "run", "--cluster", "grid.cluster", "p.pln")
	if code != 0 {
		t.Fatalf("the run started again: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	e2eResults(t, filepath.Join(dir, "results"), want)
}

// TestE2EGridInterrupted stops the root with Ctrl-C (SIGINT) in the
// middle of a grid run: every head, node and job stops, the root exits
// 130, and the same command finishes the sweep.
func TestE2EGridInterrupted(t *testing.T) {
	const n = 16
	dir := gridDir(t, n, "cluster east\n    node e1 job-limit 2\ncluster west\n    node w1 job-limit 2\n")
	e2eWrite(t, filepath.Join(dir, "p.pln"), strings.Replace(fmt.Sprintf(gridPlan, n), "sleep 0.05", "sleep 1", 1))
	gridStopHeads(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := e2eStart(t, ctx, dir, "run", "--cluster", "grid.cluster", "p.pln")
	if !e2eWaitFor(30*time.Second, func() bool { return len(e2eProcsUnder(filepath.Join(dir, ".orrery", "heads"))) >= 2 }) {
		t.Fatalf("no job ran within 30 s:\n%s", root.stderr.String())
	}
	syscall.Kill(root.pid(), syscall.SIGINT)
	if code := root.wait(time.Minute); code != exitInterrupted {
		t.Fatalf("exit %d after Ctrl-C, want %d\n%s", code, exitInterrupted, root.stderr.String())
	}
	if left := e2eWaitNoProcs(dir, 5*time.Second); len(left) > 0 {
		t.Errorf("left running after Ctrl-C: %v", left)
	}
	for _, c := range []string{"east", "west"} {
		if p := e2eMust(t, dir, "head", "probe", "--dir", filepath.Join(dir, ".orrery", "heads", c)); !strings.Contains(p, `"running":false`) {
			t.Errorf("cluster %s's head after Ctrl-C: %s", c, p)
		}
	}
	e2eMust(t, dir, "run", "--cluster", "grid.cluster", "p.pln")
	e2eResults(t, filepath.Join(dir, "results"), gridWant(n))
}
