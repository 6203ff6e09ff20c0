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
// where one job takes far longer than the others (200 s): the model
// expects it to fit, so it starts, and the pilot's time limit ends it
// mid-job. Slurm kills the pilot; the job is the pilot's system failure,
// not the job's: it is not failed, and, now known to need more than a
// pilot's time, starts on no later pilot, which leave idle; after two
// the cluster says its time is too short, and the run ends with that
// job saved and every other done. Pilots that drain or idle out leave
// with exit status 0.
func TestLongSlurmTimeLimitMidJob(t *testing.T) {
	sl := testSlurm(t)
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "p.pln"), `parameter x integer range from 1 to 14
task main
	execute sh -c "if [ $x = 12 ]; then sleep 200; else sleep 5; fi; echo done $x" > out.txt
	copy node:out.txt root:results/out-$x.txt
endtask
`)
	e2eWrite(t, filepath.Join(dir, "grid.cluster"), fmt.Sprintf("cluster here slurm partition %s time 00:02:00 pilots 1 cpus-per-pilot 1 idle 20s listen %s\n",
		slurmtest.Partition, freePort(t)))
	gridStopHeads(t, dir)
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cmd := exec.Command(e2eBinary(t), "run", "--wait", "10s", "--cluster", "grid.cluster", "p.pln")
	cmd.Dir, cmd.Env = dir, sl.Environ()
	p := e2eStartCmd(t, ctx, "orrery run", cmd)
	code := p.wait(20 * time.Minute)
	t.Logf("the sweep took %v, exit %d; its stderr's last lines:\n%s", time.Since(start).Round(time.Second), code, tail(p.stderr.String(), 4))
	if code == 0 {
		t.Errorf("exit 0 with a job no pilot can run")
	}
	want := "orrery: cluster here: time 00:02:00 is shorter than any job is expected to take"
	if !strings.Contains(p.stderr.String(), want) {
		t.Errorf("stderr does not say %q", want)
	}
	for _, j := range e2eJobs(t, dir) {
		switch {
		case j.Index == 12 && j.State == "failed":
			t.Errorf("job 12 failed: its pilot's end is not its failure")
		case j.Index != 12 && (j.State != "done" || j.Attempts != 1):
			t.Errorf("job %d at the root: %s after %d attempts", j.Index, j.State, j.Attempts)
		}
	}
	hd := filepath.Join(dir, ".orrery", "heads", "here")
	for _, j := range e2eJobs(t, dir, "--state-dir", filepath.Join(hd, "state")) {
		if j.Attempts != 1 || j.State != "done" {
			t.Logf("job %d on the cluster: %s after %d attempts, last on %s", j.Index, j.State, j.Attempts, j.Node)
		}
	}
	outs, _ := filepath.Glob(filepath.Join(hd, "pilots", "*.out"))
	killed, left := 0, 0
	for _, f := range outs {
		b, _ := os.ReadFile(f)
		s := string(b)
		switch {
		case strings.Contains(s, "DUE TO TIME LIMIT"):
			killed++
		case strings.Contains(s, "drained"):
			left++
		}
		t.Logf("%s:\n%s", filepath.Base(f), tail(s, 4))
	}
	t.Logf("%d pilots: %d ended by their time limit mid-job, %d drained or idled out and left", len(outs), killed, left)
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
