package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
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
