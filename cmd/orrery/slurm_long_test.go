//go:build long

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"orrery/internal/slurmtest"
)

// The long suite (go test -tags long -run Long ./cmd/orrery): cases
// that cost minutes of Slurm's time, run by hand and reported, outside
// the test command.

// TestLongSlurmTimeLimitMidJob runs a sweep on pilots of two minutes
// where one job takes far longer than the others, so that the model
// expects it to fit and the pilot's time limit ends it mid-job: Slurm
// kills the pilot, the job is the pilot's system failure, runs again on
// a new pilot, and the sweep ends with every job done once; pilots that
// reach their drain point leave with exit status 0.
func TestLongSlurmTimeLimitMidJob(t *testing.T) {
	sl := testSlurm(t)
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "p.pln"), `parameter x integer range from 1 to 14
task main
	execute sh -c "if [ $x = 12 ]; then sleep 100; else sleep 5; fi; echo done $x" > out.txt
	copy node:out.txt root:results/out-$x.txt
endtask
`)
	e2eWrite(t, filepath.Join(dir, "grid.cluster"), fmt.Sprintf("cluster here slurm partition %s time 00:02:00 pilots 1 cpus-per-pilot 1 listen %s\n",
		slurmtest.Partition, freePort(t)))
	gridStopHeads(t, dir)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.Command(e2eBinary(t), "run", "--cluster", "grid.cluster", "p.pln")
	cmd.Dir, cmd.Env = dir, sl.Environ()
	p := e2eStartCmd(t, ctx, "orrery run", cmd)
	if code := p.wait(20 * time.Minute); code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nhead.log:\n%s", code, p.stdout.String(), p.stderr.String(), headLog(dir, "here"))
	}
	t.Logf("the sweep took %v", time.Since(start).Round(time.Second))
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" || j.Attempts != 1 {
			t.Errorf("job %d at the root: %s after %d attempts", j.Index, j.State, j.Attempts)
		}
	}
	hd := filepath.Join(dir, ".orrery", "heads", "here")
	for _, j := range e2eJobs(t, dir, "--state-dir", filepath.Join(hd, "state")) {
		t.Logf("job %d on the cluster: %s after %d attempts, last on %s", j.Index, j.State, j.Attempts, j.Node)
	}
	outs, _ := filepath.Glob(filepath.Join(hd, "pilots", "*.out"))
	killed, drained := 0, 0
	for _, f := range outs {
		b, _ := os.ReadFile(f)
		s := string(b)
		switch {
		case strings.Contains(s, "DUE TO TIME LIMIT"):
			killed++
		case strings.Contains(s, "drained"):
			drained++
		}
		t.Logf("%s:\n%s", filepath.Base(f), tail(s, 6))
	}
	t.Logf("%d pilots, %d ended by their time limit mid-job, %d drained and left", len(outs), killed, drained)
	if killed == 0 {
		t.Errorf("no pilot was ended by its time limit: the case did not happen")
	}
	slurmQueueEmpty(t, sl)
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
