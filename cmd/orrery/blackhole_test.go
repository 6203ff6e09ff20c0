package main

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"orrery/dispatch"
)

// e2eFindFile returns the path of the first file named name under dir,
// or "".
func e2eFindFile(dir, name string) string {
	found := ""
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && d.Name() == name {
			found = path
			return fs.SkipAll
		}
		return nil
	})
	return found
}

// TestE2EBlackHoleNode: a run on two embedded nodes, one job at a time
// each. Jobs 1 and 2 hold their node until the test lets them go; the
// test meanwhile makes node local1's work directory unusable (it moves
// it away, so the attempt running there finishes, and puts a regular
// file in its place). From then on local1 fails every attempt at once as
// a system failure (its job directory). It must be taken out of service
// after a few, said on stderr and by `orrery status`, and its jobs must
// run on local2 without spending their retries: every job ends done.
func TestE2EBlackHoleNode(t *testing.T) {
	dir := e2eDir(t)
	const jobs = 30
	e2eWrite(t, filepath.Join(dir, "bh.pln"), fmt.Sprintf(`parameter i integer range from 1 to %d
task main
	shexec "if [ $i -le 2 ]; then : > started; while [ ! -e go ]; do sleep 0.02; done; fi; echo job $i > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`, jobs))
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	run := e2eStart(t, ctx, dir, "run", "--nodes", "2", "--job-limit", "1", "bh.pln")

	nodes := filepath.Join(dir, ".orrery", "nodes")
	var held [2]string // the held jobs' markers, on local1 and local2
	if !e2eWaitFor(30*time.Second, func() bool {
		held[0], held[1] = e2eFindFile(filepath.Join(nodes, "local1"), "started"), e2eFindFile(filepath.Join(nodes, "local2"), "started")
		return held[0] != "" && held[1] != "" || run.exited()
	}) || run.exited() {
		t.Fatalf("jobs 1 and 2 did not start on local1 and local2\nstdout:\n%s\nstderr:\n%s", run.stdout.String(), run.stderr.String())
	}
	// local1's work directory: moved away (the held attempt goes on in
	// it), and a regular file where it was.
	gone := filepath.Join(nodes, "local1.gone")
	if err := os.Rename(filepath.Join(nodes, "local1"), gone); err != nil {
		t.Fatal(err)
	}
	e2eWrite(t, filepath.Join(nodes, "local1"), "not a directory\n")
	rel, _ := filepath.Rel(filepath.Join(nodes, "local1"), filepath.Dir(held[0]))
	e2eWrite(t, filepath.Join(gone, rel, "go"), "")
	e2eWrite(t, filepath.Join(filepath.Dir(held[1]), "go"), "")

	code := run.wait(e2eRunTimeout)
	stdout, stderr := run.stdout.String(), run.stderr.String()
	e2eNoPanic(t, "run", stderr)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("%d done, 0 failed", jobs)) {
		t.Fatalf("run: exit %d, want 0 with %d done, 0 failed\nstdout:\n%s\nstderr:\n%s", code, jobs, stdout, stderr)
	}
	want := map[string]string{}
	for i := 1; i <= jobs; i++ {
		want[fmt.Sprintf("%d.txt", i)] = fmt.Sprintf("job %d\n", i)
	}
	e2eResults(t, filepath.Join(dir, "results"), want)
	if !strings.Contains(stderr, "node taken out of service") || !strings.Contains(stderr, "node=local1") {
		t.Errorf("run: stderr does not warn that local1 was taken out of service:\n%s", stderr)
	}

	status := e2eMust(t, dir, "status")
	if !strings.Contains(status, "node local1 out of service since ") ||
		!strings.Contains(status, "system failures in a row; the last: job directory on node local1") ||
		strings.Contains(status, "local2") {
		t.Errorf("status does not show local1 (only) out of service, with the last error:\n%s", status)
	}
	st := e2eStatus(t, dir)
	outs, _ := st["out_of_service"].([]any)
	if len(outs) != 1 || outs[0].(map[string]any)["node"] != "local1" {
		t.Errorf("status --json: out_of_service = %v, want local1", st["out_of_service"])
	}
	// Attempts on local1 after it broke: at most the streak that took it
	// out of service, and none of them counted against a job.
	failedOnLocal1 := 0
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" {
			t.Errorf("job %d is %s, want done", j.Index, j.State)
		}
		_, atts := e2eLog(t, dir, j.Index)
		for _, a := range atts {
			if a.Node == "local1" && a.State != "ok" {
				failedOnLocal1++
			}
		}
	}
	if failedOnLocal1 != 5 {
		t.Errorf("%d attempts failed on local1, want the 5 that took it out of service", failedOnLocal1)
	}
}

// TestProgressSaysOutOfService: the progress line names the nodes out
// of service, and only when there are some.
func TestProgressSaysOutOfService(t *testing.T) {
	pr := &progress{}
	pr.last = dispatch.Progress{Nodes: 2, OutOfService: 1, Started: time.Now()}
	if s := pr.status(); !strings.Contains(s, "2 nodes, 1 out of service,") {
		t.Errorf("status %q does not say 1 out of service", s)
	}
	pr.last.OutOfService = 0
	if s := pr.status(); strings.Contains(s, "out of service") {
		t.Errorf("status %q speaks of nodes out of service when there are none", s)
	}
}

// TestE2EOnlyNodeBroken: the default run, one embedded node, one job at
// a time. Job 1 holds the node until the test lets it go; meanwhile the
// test puts a regular file where the node's work directory was. The node
// then fails every attempt on its own side (its job directory): it is
// taken out of service although it is the only node, the run waits for
// a node for --wait, then exits 4 naming the node and why. `orrery
// status` shows the jobs pending, none failed; and once the directory is
// repaired, the same command finishes every job.
func TestE2EOnlyNodeBroken(t *testing.T) {
	dir := e2eDir(t)
	const jobs = 12
	e2eWrite(t, filepath.Join(dir, "one.pln"), fmt.Sprintf(`parameter i integer range from 1 to %d
task main
	shexec "if [ $i -eq 1 ] && [ ! -e %[2]s ]; then : > started; while [ ! -e %[2]s ]; do sleep 0.02; done; fi; echo job $i > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`, jobs, filepath.Join(dir, "released")))
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	run := e2eStart(t, ctx, dir, "run", "--job-limit", "1", "--wait", "2s", "one.pln")
	nodes := filepath.Join(dir, ".orrery", "nodes")
	held := ""
	if !e2eWaitFor(30*time.Second, func() bool {
		held = e2eFindFile(filepath.Join(nodes, "local1"), "started")
		return held != "" || run.exited()
	}) || run.exited() {
		t.Fatalf("job 1 did not start on local1\nstdout:\n%s\nstderr:\n%s", run.stdout.String(), run.stderr.String())
	}
	gone := filepath.Join(nodes, "local1.gone")
	if err := os.Rename(filepath.Join(nodes, "local1"), gone); err != nil {
		t.Fatal(err)
	}
	e2eWrite(t, filepath.Join(nodes, "local1"), "not a directory\n")
	e2eWrite(t, filepath.Join(dir, "released"), "")

	code := run.wait(e2eRunTimeout)
	stdout, stderr := run.stdout.String(), run.stderr.String()
	e2eNoPanic(t, "run", stderr)
	if code != exitSystem || !strings.Contains(stderr, "node local1: ") || !strings.Contains(stderr, "job directory on node local1") ||
		!strings.Contains(stderr, "out of service") || !strings.Contains(stdout, " 0 failed") {
		t.Fatalf("run: exit %d, want %d with local1 out of service, and why; none failed\nstdout:\n%s\nstderr:\n%s", code, exitSystem, stdout, stderr)
	}
	if !strings.Contains(stderr, "orrery status") {
		t.Errorf("run: stderr does not say how to see the state:\n%s", stderr)
	}
	for _, j := range e2eJobs(t, dir) {
		if j.State != "pending" && j.State != "done" {
			t.Errorf("job %d is %s, want pending (or done)", j.Index, j.State)
		}
	}
	if st := e2eStatus(t, dir); st["failed"] != 0.0 || st["pending"] != float64(jobs-1) {
		t.Errorf("status --json: %v, want %d pending, none failed", st, jobs-1)
	}

	// Repaired: the same run finishes every job.
	if err := os.Remove(filepath.Join(nodes, "local1")); err != nil {
		t.Fatal(err)
	}
	again := e2eStart(t, ctx, dir, "run", "--job-limit", "1", "--wait", "2s", "one.pln")
	if code := again.wait(e2eRunTimeout); code != 0 || !strings.Contains(again.stdout.String(), fmt.Sprintf("%d done, 0 failed", jobs)) {
		t.Fatalf("second run: exit %d\nstdout:\n%s\nstderr:\n%s", code, again.stdout.String(), again.stderr.String())
	}
}
