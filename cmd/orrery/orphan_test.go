package main

// Jobs do not outlive the node agent that runs them: `kill -9` of `orrery
// run` (in-process nodes) or of an `orrery agent` process leaves none of
// its jobs' processes running, and the resumed attempts of the killed
// ones write into directories of their own.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// orphanPlan's jobs each start two grandchildren, all ignoring SIGTERM,
// note that they started in DIR/started.log, and write their own shell's
// PID (the attempt's identity) into out.txt twice, 3 s apart; out.txt is
// their result.
const orphanPlan = `parameter i integer range from 1 to %d
task main
	shexec "trap '' TERM; sleep 30 & sleep 30 & echo start $$ >> out.txt; echo $i >> %s; sleep 3; echo end $$ >> out.txt"
	copy node:out.txt root:results/r-$i.txt
endtask
`

// orphanMark returns an environment variable unique to this test, which
// every process of the orrery processes it is given to inherits.
func orphanMark(t *testing.T) string {
	return fmt.Sprintf("ORRERY_ORPHAN_MARK=%d-%d-%s", os.Getpid(), time.Now().UnixNano(),
		strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
}

// orphanProcs returns the live processes whose environment holds mark,
// each as "PID: command line".
func orphanProcs(mark string) []string {
	ents, _ := os.ReadDir("/proc")
	var out []string
	want := []byte(mark + "\x00")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil || !bytes.Contains(env, want) {
			continue
		}
		if s := e2eProcState(pid); s == "Z" || s == "" {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out = append(out, fmt.Sprintf("%d: %s", pid, strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))))
	}
	return out
}

// orphanWaitGone waits up to d for every process holding mark to end,
// and returns those left.
func orphanWaitGone(mark string, d time.Duration) []string {
	deadline := time.Now().Add(d)
	for {
		left := orphanProcs(mark)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// orphanKillAll kills what a failing test left running.
func orphanKillAll(mark string) {
	for _, p := range orphanProcs(mark) {
		pid, _ := strconv.Atoi(strings.SplitN(p, ":", 2)[0])
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// orphanStart starts `orrery ARGS` in dir with mark in its environment.
func orphanStart(t *testing.T, ctx context.Context, dir, mark string, args ...string) *e2eProc {
	t.Helper()
	cmd := exec.Command(e2eBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), mark)
	return e2eStartCmd(t, ctx, "orrery "+strings.Join(args, " "), cmd)
}

// orphanResults checks that each of the n result files holds the lines
// of exactly one attempt: "start P" and "end P" for one shell P.
func orphanResults(t *testing.T, dir string, n int) {
	t.Helper()
	for i := 1; i <= n; i++ {
		path := filepath.Join(dir, "results", fmt.Sprintf("r-%d.txt", i))
		b, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("result %d: %v", i, err)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		ok := len(lines) == 2
		if ok {
			start, sok := strings.CutPrefix(lines[0], "start ")
			end, eok := strings.CutPrefix(lines[1], "end ")
			ok = sok && eok && start == end
		}
		if !ok {
			t.Errorf("results/r-%d.txt holds %q; want the start and end lines of one attempt", i, b)
		}
	}
}

// TestE2EOrphansKilledRun kills `orrery run` with SIGKILL while its jobs
// (and their children) run: within 2 s none of them is left; the same
// command then resumes, and every result holds the lines of exactly one
// attempt.
func TestE2EOrphansKilledRun(t *testing.T) {
	const n = 4
	dir := e2eDir(t)
	started := filepath.Join(dir, "started.log")
	e2eWrite(t, filepath.Join(dir, "o.pln"), fmt.Sprintf(orphanPlan, n, started))
	mark := orphanMark(t)
	t.Cleanup(func() { orphanKillAll(mark) })
	args := []string{"run", "--job-limit", strconv.Itoa(n), "o.pln"}

	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	p := orphanStart(t, ctx, dir, mark, args...)
	if !e2eWaitFor(30*time.Second, func() bool { return p.exited() || e2eCountLines(started) >= n }) || p.exited() {
		t.Fatalf("the jobs did not all start\nstderr:\n%s", p.stderr.String())
	}
	if len(orphanProcs(mark)) < 3*n {
		t.Fatalf("want at least %d job processes running, found %v", 3*n, orphanProcs(mark))
	}
	syscall.Kill(p.pid(), syscall.SIGKILL)
	if left := orphanWaitGone(mark, 2*time.Second); len(left) > 0 {
		t.Errorf("2 s after kill -9 of orrery run, %d of its processes still run:\n%s", len(left), strings.Join(left, "\n"))
	}
	p.wait(10 * time.Second)

	p = orphanStart(t, ctx, dir, mark, args...)
	if code := p.wait(e2eRunTimeout); code != 0 {
		t.Fatalf("resumed run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
	}
	orphanResults(t, dir, n)
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" || j.Attempts != 2 {
			t.Errorf("job %d: %+v, want done at its second attempt", j.Index, j)
		}
	}
	if left := orphanWaitGone(mark, 2*time.Second); len(left) > 0 {
		t.Errorf("after the resumed run ended, %d of its processes still run:\n%s", len(left), strings.Join(left, "\n"))
	}
}

// TestE2EOrphansKilledAgent kills an `orrery agent` process with SIGKILL
// while its jobs run: within 2 s none of them is left. An agent started
// again on the same work directory runs the jobs again, and every result
// holds the lines of exactly one attempt.
func TestE2EOrphansKilledAgent(t *testing.T) {
	const n = 2
	dir := e2eDir(t)
	started := filepath.Join(dir, "started.log")
	e2eWrite(t, filepath.Join(dir, "o.pln"), fmt.Sprintf(orphanPlan, n, started))
	first, second := orphanMark(t)+"-first", orphanMark(t)+"-second"
	t.Cleanup(func() { orphanKillAll(first); orphanKillAll(second); e2eKillUnder(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*e2eRunTimeout)
	defer cancel()
	run, addr := e2eListen(t, ctx, dir, "o.pln")
	work := filepath.Join(dir, "work")
	agentArgs := []string{"agent", "--connect", addr, "--token-file", "join.token", "--name", "a",
		"--job-limit", strconv.Itoa(n), "--work-dir", work}
	a := orphanStart(t, ctx, dir, first, agentArgs...)
	if !e2eWaitFor(30*time.Second, func() bool { return a.exited() || e2eCountLines(started) >= n }) || a.exited() {
		t.Fatalf("the jobs did not all start\nrun stderr:\n%s\nagent stderr:\n%s", run.stderr.String(), a.stderr.String())
	}
	syscall.Kill(a.pid(), syscall.SIGKILL)
	if left := orphanWaitGone(first, 2*time.Second); len(left) > 0 {
		t.Errorf("2 s after kill -9 of orrery agent, %d of its processes still run:\n%s", len(left), strings.Join(left, "\n"))
	}
	a.wait(10 * time.Second)

	a = orphanStart(t, ctx, dir, second, agentArgs...)
	if code := run.wait(e2eRunTimeout); code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s\nagent stderr:\n%s", code, run.stdout.String(), run.stderr.String(), a.stderr.String())
	}
	if code := a.wait(15 * time.Second); code != 0 {
		t.Errorf("agent: exit %d, want 0\nstderr:\n%s", code, a.stderr.String())
	}
	orphanResults(t, dir, n)
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" {
			t.Errorf("job %d: %+v, want done", j.Index, j)
		}
	}
}

// TestE2EOrphansKilledClusterRun is TestE2EOrphansKilledRun with the
// node of a cluster file in a control group: an `orrery agent` child
// process of `orrery run`, which goes with it, and its jobs with it.
func TestE2EOrphansKilledClusterRun(t *testing.T) {
	if reason := livesimUnsupported(); reason != "" {
		t.Skip(reason)
	}
	const n = 2
	dir := e2eDir(t)
	started := filepath.Join(dir, "started.log")
	e2eWrite(t, filepath.Join(dir, "o.pln"), fmt.Sprintf(orphanPlan, n, started))
	e2eWrite(t, filepath.Join(dir, "cluster.txt"), fmt.Sprintf("node c1 cpus 1 cpu-share 1 job-limit %d\n", n))
	mark := orphanMark(t)
	t.Cleanup(func() { orphanKillAll(mark) })
	args := []string{"run", "--cluster", "cluster.txt", "o.pln"}

	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	p := orphanStart(t, ctx, dir, mark, args...)
	if !e2eWaitFor(30*time.Second, func() bool { return p.exited() || e2eCountLines(started) >= n }) || p.exited() {
		t.Fatalf("the jobs did not all start\nstderr:\n%s", p.stderr.String())
	}
	syscall.Kill(p.pid(), syscall.SIGKILL)
	if left := orphanWaitGone(mark, 2*time.Second); len(left) > 0 {
		t.Errorf("2 s after kill -9 of orrery run, %d of its processes still run:\n%s", len(left), strings.Join(left, "\n"))
	}
	p.wait(10 * time.Second)

	p = orphanStart(t, ctx, dir, mark, args...)
	if code := p.wait(e2eRunTimeout); code != 0 {
		t.Fatalf("resumed run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
	}
	orphanResults(t, dir, n)
	if left := orphanWaitGone(mark, 2*time.Second); len(left) > 0 {
		t.Errorf("after the resumed run ended, %d of its processes still run:\n%s", len(left), strings.Join(left, "\n"))
	}
}

// TestE2EOrphansKilledRootStart kills `orrery run` with SIGKILL while its
// rootstart task (on the root, not on a node: as examples/cputest's `cc`
// step) runs a process group with children, all ignoring SIGTERM: within
// 2 s none of them is left.
func TestE2EOrphansKilledRootStart(t *testing.T) {
	dir := e2eDir(t)
	started := filepath.Join(dir, "started.log")
	e2eWrite(t, filepath.Join(dir, "o.pln"), fmt.Sprintf(`parameter i integer range from 1 to 2
task rootstart
	shexec "trap '' TERM; sleep 30 & sleep 30 & echo started >> %s; wait"
endtask
task main
	exec true
endtask
`, started))
	mark := orphanMark(t)
	t.Cleanup(func() { orphanKillAll(mark) })
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	p := orphanStart(t, ctx, dir, mark, "run", "o.pln")
	if !e2eWaitFor(30*time.Second, func() bool { return p.exited() || e2eCountLines(started) >= 1 }) || p.exited() {
		t.Fatalf("rootstart did not start\nstderr:\n%s", p.stderr.String())
	}
	if !e2eWaitFor(10*time.Second, func() bool { return len(orphanProcs(mark)) >= 4 }) {
		t.Fatalf("want orrery run and rootstart's 3 processes running, found %v", orphanProcs(mark))
	}
	syscall.Kill(p.pid(), syscall.SIGKILL)
	if left := orphanWaitGone(mark, 2*time.Second); len(left) > 0 {
		t.Errorf("2 s after kill -9 of orrery run, %d of its rootstart's processes still run:\n%s", len(left), strings.Join(left, "\n"))
	}
	p.wait(10 * time.Second)
}
