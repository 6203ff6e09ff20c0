package main

// End-to-end tests of `orrery run` and the commands that read its state:
// the real binary runs as separate processes (the dispatcher, agents),
// killed and interrupted the way a user or a crash would. Each test has
// its own directory and plan and is bounded in time; they check what the
// user sees (exit status, result files, status/jobs/log/joblog), not
// timings.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// e2eRunTimeout bounds one `orrery run` in these tests.
const e2eRunTimeout = 60 * time.Second

// TestE2ESweep runs a sweep with staging both ways on two nodes and checks
// that the results and every view of the state agree.
func TestE2ESweep(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "sweep.pln"), `# 10 x 2 = 20 jobs
parameter i integer range from 1 to 10
parameter w text select anyof "alpha" "beta"
task main
	copy root:in/$i.txt node:in.txt
	shexec "tr a-z A-Z < in.txt > out.txt; echo $w $jobindex >> out.txt; echo job $jobindex says hi"
	copy node:out.txt root:results/$jobindex.txt
endtask
`)
	for i := 1; i <= 10; i++ {
		e2eWrite(t, filepath.Join(dir, "in", fmt.Sprintf("%d.txt", i)), fmt.Sprintf("input %d\n", i))
	}
	type jobWant struct {
		i int
		w string
	}
	want := map[int64]jobWant{}
	results := map[string]string{}
	k := int64(0)
	for i := 1; i <= 10; i++ {
		for _, w := range []string{"alpha", "beta"} {
			k++
			want[k] = jobWant{i, w}
			results[fmt.Sprintf("%d.txt", k)] = fmt.Sprintf("INPUT %d\n%s %d\n", i, w, k)
		}
	}

	code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, "run", "--nodes", "2", "--job-limit", "2", "sweep.pln")
	if code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "20 done, 0 failed") {
		t.Errorf("run: summary %q does not say 20 done, 0 failed", stdout)
	}
	e2eResults(t, filepath.Join(dir, "results"), results)

	st := e2eStatus(t, dir)
	for key, n := range map[string]int64{"done": 20, "failed": 0, "pending": 0, "running": 0, "dispatched": 20, "experiment": 1} {
		if got := e2eNum(t, st, key); got != n {
			t.Errorf("status --json: %s = %d, want %d", key, got, n)
		}
	}
	if st["generated_all"] != true {
		t.Errorf("status --json: generated_all = %v, want true", st["generated_all"])
	}
	if st["plan"] != filepath.Join(dir, "sweep.pln") {
		t.Errorf("status --json: plan = %v, want %s", st["plan"], filepath.Join(dir, "sweep.pln"))
	}
	if st["dialect"] != "modern" {
		t.Errorf("status --json: dialect = %v, want modern", st["dialect"])
	}

	jobs := e2eJobs(t, dir)
	if len(jobs) != 20 {
		t.Fatalf("jobs --json: %d jobs, want 20", len(jobs))
	}
	for n, j := range jobs {
		w := want[int64(n+1)]
		if j.Index != int64(n+1) {
			t.Errorf("jobs --json: job %d has index %d", n+1, j.Index)
		}
		if j.State != "done" || j.Attempts != 1 || j.Exit == nil || *j.Exit != 0 {
			t.Errorf("jobs --json: job %d = %+v, want done, 1 attempt, exit 0", j.Index, j)
		}
		if len(j.Values) != 2 || j.Values["i"] != strconv.Itoa(w.i) || j.Values["w"] != w.w {
			t.Errorf("jobs --json: job %d values %v, want i=%d w=%s", j.Index, j.Values, w.i, w.w)
		}
	}
	if n := len(e2eJobs(t, dir, "--state", "done")); n != 20 {
		t.Errorf("jobs --state done: %d jobs, want 20", n)
	}
	if n := len(e2eJobs(t, dir, "--state", "failed")); n != 0 {
		t.Errorf("jobs --state failed: %d jobs, want 0", n)
	}

	joblog := e2eJoblog(t, dir)
	if len(joblog) != 20 {
		t.Fatalf("joblog: %d lines, want 20", len(joblog))
	}
	hosts := map[int64]string{}
	for _, l := range joblog {
		if _, dup := hosts[l.Seq]; dup {
			t.Errorf("joblog: job %d appears twice", l.Seq)
		}
		hosts[l.Seq] = l.Host
		if l.Host != "local1" && l.Host != "local2" {
			t.Errorf("joblog: job %d on host %q, want local1 or local2", l.Seq, l.Host)
		}
		if l.Exit != 0 || l.Signal != 0 || l.Command != fmt.Sprintf("job %d attempt 1", l.Seq) {
			t.Errorf("joblog: job %d: exit %d signal %d command %q", l.Seq, l.Exit, l.Signal, l.Command)
		}
	}
	for k := int64(1); k <= 20; k++ {
		out, atts := e2eLog(t, dir, k)
		if len(atts) != 1 || atts[0].N != 1 || atts[0].State != "ok" || !strings.HasPrefix(atts[0].Rest, ", exit 0") {
			t.Errorf("log %d: attempts %+v, want one ok with exit 0\n%s", k, atts, out)
			continue
		}
		if atts[0].Node != hosts[k] {
			t.Errorf("log %d: ran on %s, joblog says %s", k, atts[0].Node, hosts[k])
		}
		if !strings.Contains(out, fmt.Sprintf("job %d says hi\n", k)) {
			t.Errorf("log %d: the job's stdout is missing:\n%s", k, out)
		}
	}
}

// e2eFaultRun runs a plan that has failing jobs and checks the run went on:
// exit 1 and the summary counts.
func e2eFaultRun(t *testing.T, dir, plan string, done, failed int) string {
	t.Helper()
	code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, "run", plan)
	wantCode := 0
	if failed > 0 {
		wantCode = 1
	}
	if code != wantCode {
		t.Fatalf("run: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantCode, stdout, stderr)
	}
	if s := fmt.Sprintf("%d done, %d failed", done, failed); !strings.Contains(stdout, s) {
		t.Errorf("run: summary %q does not say %q", stdout, s)
	}
	return stdout
}

// e2eStates checks the states of the jobs in `orrery jobs --json`.
func e2eStates(t *testing.T, dir string, want ...string) []e2eJob {
	t.Helper()
	jobs := e2eJobs(t, dir)
	var got []string
	for _, j := range jobs {
		got = append(got, j.State)
	}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("job states %v, want %v", got, want)
	}
	return jobs
}

// e2eFailedBecause checks that job's only attempt failed with an error
// containing every one of reasons.
func e2eFailedBecause(t *testing.T, dir string, job int64, reasons ...string) {
	t.Helper()
	out, atts := e2eLog(t, dir, job)
	if atts[len(atts)-1].State != "failed" {
		t.Errorf("log %d: last attempt %+v, want failed\n%s", job, atts[len(atts)-1], out)
	}
	var errLine string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "error: ") {
			errLine = l
		}
	}
	if errLine == "" {
		t.Errorf("log %d: no error line:\n%s", job, out)
	}
	for _, r := range reasons {
		if !strings.Contains(errLine, r) {
			t.Errorf("log %d: error %q does not say %q", job, errLine, r)
		}
	}
}

// TestE2EFaults runs one plan per kind of job fault: each is recorded with
// a clear reason, and the other jobs run.
func TestE2EFaults(t *testing.T) {
	t.Run("missing program", func(t *testing.T) {
		dir := e2eDir(t)
		e2eWrite(t, filepath.Join(dir, "p.pln"), `parameter prog text select anyof "true" "nosuch-program" "echo"
task main
	exec $prog
endtask
`)
		e2eFaultRun(t, dir, "p.pln", 2, 1)
		e2eStates(t, dir, "done", "failed", "done")
		e2eFailedBecause(t, dir, 2, "p.pln:3:", "nosuch-program", "not found")
	})

	t.Run("missing input then rerun", func(t *testing.T) {
		dir := e2eDir(t)
		e2eWrite(t, filepath.Join(dir, "p.pln"), `parameter i integer range from 1 to 4
task main
	copy root:in/$i.txt node:in.txt
	shexec "cat in.txt > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`)
		for _, i := range []int{1, 3, 4} {
			e2eWrite(t, filepath.Join(dir, "in", fmt.Sprintf("%d.txt", i)), fmt.Sprintf("in %d\n", i))
		}
		e2eFaultRun(t, dir, "p.pln", 3, 1)
		e2eStates(t, dir, "done", "failed", "done", "done")
		e2eFailedBecause(t, dir, 2, "p.pln:3:", "in/2.txt", "does not exist")
		if _, err := os.Stat(filepath.Join(dir, "results", "2.txt")); err == nil {
			t.Errorf("results/2.txt exists after job 2 failed")
		}

		// Fix the cause, then rerun only the failed job.
		e2eWrite(t, filepath.Join(dir, "in", "2.txt"), "in 2\n")
		out := e2eMust(t, dir, "rerun", "--failed")
		if !strings.HasPrefix(out, "1 failed jobs will run again") {
			t.Errorf("rerun --failed: %q, want 1 failed job", out)
		}
		if st := e2eStatus(t, dir); e2eNum(t, st, "pending") != 1 || e2eNum(t, st, "failed") != 0 {
			t.Errorf("status after rerun --failed: %v, want 1 pending, 0 failed", st)
		}
		code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, "run", "p.pln")
		if code != 0 {
			t.Fatalf("run after rerun: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
		}
		if !strings.Contains(stderr, "resuming experiment 1") {
			t.Errorf("run after rerun: stderr %q does not say it resumes experiment 1", stderr)
		}
		jobs := e2eStates(t, dir, "done", "done", "done", "done")
		for _, j := range jobs {
			want := 1
			if j.Index == 2 {
				want = 2
			}
			if j.Attempts != want {
				t.Errorf("job %d: %d attempts, want %d (only the failed job runs again)", j.Index, j.Attempts, want)
			}
		}
		_, atts := e2eLog(t, dir, 2)
		if len(atts) != 2 || atts[0].State != "failed" || atts[1].State != "ok" {
			t.Errorf("log 2: attempts %+v, want failed then ok", atts)
		}
		e2eResults(t, filepath.Join(dir, "results"), map[string]string{
			"1.txt": "in 1\n", "2.txt": "in 2\n", "3.txt": "in 3\n", "4.txt": "in 4\n"})
	})

	t.Run("1 GB of stdout", func(t *testing.T) {
		dir := e2eDir(t)
		e2eWrite(t, filepath.Join(dir, "p.pln"), `parameter i integer range from 1 to 3
task main
	shexec "if [ $i = 2 ]; then head -c 1000000000 /dev/zero; fi; echo tail-$i"
endtask
`)
		e2eFaultRun(t, dir, "p.pln", 3, 0)
		e2eStates(t, dir, "done", "done", "done")
		out, atts := e2eLog(t, dir, 2)
		if atts[0].State != "ok" {
			t.Errorf("log 2: %+v, want ok", atts)
		}
		if len(out) > 1<<20 {
			t.Errorf("log 2: %d bytes of output kept, want it bounded (< 1 MiB)", len(out))
		}
		if !strings.Contains(out, "tail-2\n") || !strings.Contains(out, "of 1000000007 bytes") {
			t.Errorf("log 2 does not show the end of the output and its total size:\n%.300q", out)
		}
		var size int64
		filepath.Walk(filepath.Join(dir, ".orrery"), func(path string, fi os.FileInfo, err error) error {
			if err == nil && strings.HasPrefix(fi.Name(), "state.db") {
				size += fi.Size()
			}
			return nil
		})
		if size > 20<<20 {
			t.Errorf("state database is %d bytes after one job wrote 1 GB, want it bounded", size)
		}
	})

	t.Run("child left running", func(t *testing.T) {
		dir := e2eDir(t)
		e2eWrite(t, filepath.Join(dir, "p.pln"), `parameter i integer range from 1 to 3
task main
	shexec "sleep 300 & echo started $i"
endtask
`)
		e2eFaultRun(t, dir, "p.pln", 3, 0)
		e2eStates(t, dir, "done", "done", "done")
		out, _ := e2eLog(t, dir, 1)
		if !strings.Contains(out, "started 1\n") {
			t.Errorf("log 1 does not show the job's output:\n%s", out)
		}
		if left := e2eWaitNoProcs(filepath.Join(dir, ".orrery"), time.Second); len(left) > 0 {
			e2eKillUnder(filepath.Join(dir, ".orrery"))
			t.Errorf("processes of finished jobs still running: %+v", left)
		}
	})

	t.Run("node path leaving the job directory", func(t *testing.T) {
		dir := e2eDir(t)
		e2eWrite(t, filepath.Join(dir, "x"), "a root file\n")
		e2eWrite(t, filepath.Join(dir, "p.pln"), `parameter src text select anyof "a.txt" "../x" "/etc/passwd" "link" "../../../../x"
task main
	shexec "echo hi > a.txt; ln -s /etc/passwd link"
	copy node:$src root:out/$jobindex.txt
endtask
`)
		e2eFaultRun(t, dir, "p.pln", 1, 4)
		e2eStates(t, dir, "done", "failed", "failed", "failed", "failed")
		e2eFailedBecause(t, dir, 2, "p.pln:4:", "../x", "refused")
		e2eFailedBecause(t, dir, 3, "p.pln:4:", "/etc/passwd", "refused")
		e2eFailedBecause(t, dir, 4, "p.pln:4:", "link", "refused")
		e2eFailedBecause(t, dir, 5, "p.pln:4:", "../../../../x", "refused")
		e2eResults(t, filepath.Join(dir, "out"), map[string]string{"1.txt": "hi\n"})
	})
}

// TestE2ECrashSafety kills `orrery run` with SIGKILL at several points and
// runs it again each time: the sweep completes with every result, and no
// job recorded done before a kill runs again.
func TestE2ECrashSafety(t *testing.T) {
	const n = 60
	dir := e2eDir(t)
	ranLog := filepath.Join(dir, "ran.log")
	e2eWrite(t, filepath.Join(dir, "crash.pln"), fmt.Sprintf(`parameter i integer range from 1 to %d
task main
	shexec "sleep 0.05; echo $i >> %s; echo $i > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`, n, ranLog))
	t.Cleanup(func() { e2eKillUnder(dir) })
	args := []string{"run", "--job-limit", "4", "crash.pln"}

	// doneAt[job] is the job's attempt count when it was first seen done
	// after a kill.
	doneAt := map[int64]int{}
	record := func(when string) {
		t.Helper()
		code, stdout, stderr := e2eRun(t, dir, e2eCmdTimeout, "jobs", "--state", "done", "--json")
		if code != 0 {
			// Killed before the experiment was recorded: nothing is done.
			if !strings.Contains(stderr, "no experiment") {
				t.Fatalf("jobs after %s: exit %d\n%s", when, code, stderr)
			}
			return
		}
		jobs := e2eDecodeJobs(t, stdout)
		for _, j := range jobs {
			if _, ok := doneAt[j.Index]; !ok {
				doneAt[j.Index] = j.Attempts
			}
		}
		t.Logf("after %s: %d jobs done, %d lines in ran.log", when, len(jobs), e2eCountLines(ranLog))
	}
	kill := func(when string, trigger func() bool) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
		defer cancel()
		p := e2eStart(t, ctx, dir, args...)
		if !e2eWaitFor(30*time.Second, func() bool { return p.exited() || trigger() }) {
			t.Fatalf("kill %s: the run made no progress\nstderr:\n%s", when, p.stderr.String())
		}
		if p.exited() {
			t.Fatalf("kill %s: the run ended before it was killed (exit %d)\nstdout:\n%s\nstderr:\n%s",
				when, p.wait(0), p.stdout.String(), p.stderr.String())
		}
		p.killGroup(syscall.SIGKILL)
		p.wait(10 * time.Second)
		if p.signaled() != syscall.SIGKILL {
			t.Fatalf("kill %s: the run was not killed but ended: %v", when, p.state)
		}
		record(when)
	}
	linesAtLeast := func(more int) func() bool {
		start := e2eCountLines(ranLog)
		return func() bool { return e2eCountLines(ranLog) >= start+more }
	}
	kill("at start", func() bool { return true })
	kill("after 50ms", func() func() bool {
		at := time.Now().Add(50 * time.Millisecond)
		return func() bool { return time.Now().After(at) }
	}())
	kill("after 8 more jobs", linesAtLeast(8))
	kill("after 12 more jobs", linesAtLeast(12))
	kill("after 1 more job", linesAtLeast(1))
	kill("after 10 more jobs", linesAtLeast(10))

	code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, args...)
	if code != 0 {
		t.Fatalf("final run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	results := map[string]string{}
	for i := 1; i <= n; i++ {
		results[fmt.Sprintf("%d.txt", i)] = fmt.Sprintf("%d\n", i)
	}
	e2eResults(t, filepath.Join(dir, "results"), results)

	jobs := e2eJobs(t, dir)
	if len(jobs) != n {
		t.Fatalf("jobs --json: %d jobs, want %d", len(jobs), n)
	}
	if st := e2eStatus(t, dir); e2eNum(t, st, "done") != n || e2eNum(t, st, "running") != 0 || e2eNum(t, st, "pending") != 0 {
		t.Errorf("status --json: %v, want %d done", st, n)
	}
	ran := e2eLines(t, ranLog)
	rerun := 0
	for _, j := range jobs {
		idx := strconv.FormatInt(j.Index, 10)
		if j.State != "done" || j.Exit == nil || *j.Exit != 0 || j.Attempts < 1 {
			t.Errorf("job %d: %+v, want done with exit 0", j.Index, j)
		}
		if before, ok := doneAt[j.Index]; ok && before != j.Attempts {
			t.Errorf("job %d was done with %d attempts after a kill, and has %d now: it ran again", j.Index, before, j.Attempts)
		}
		// Every attempt is recorded before it starts, so the shell ran at
		// most once per recorded attempt, and at least once.
		if ran[idx] < 1 || ran[idx] > j.Attempts {
			t.Errorf("job %d: its shell ran %d times, but %d attempts are recorded", j.Index, ran[idx], j.Attempts)
		}
		if j.Attempts > 1 {
			rerun++
		}
		_, atts := e2eLog(t, dir, j.Index)
		ok := 0
		for k, a := range atts {
			if a.N != k+1 {
				t.Errorf("log %d: attempt %d numbered %d", j.Index, k+1, a.N)
			}
			switch a.State {
			case "ok":
				ok++
			case "interrupted":
			default:
				t.Errorf("log %d: attempt %d is %s, want ok or interrupted", j.Index, a.N, a.State)
			}
		}
		if ok != 1 || len(atts) != j.Attempts || atts[len(atts)-1].State != "ok" {
			t.Errorf("log %d: attempts %+v; want %d attempts, the last one the only ok one", j.Index, atts, j.Attempts)
		}
	}
	t.Logf("%d jobs done before the last kill; %d jobs needed more than one attempt", len(doneAt), rerun)
	if len(doneAt) == 0 {
		t.Errorf("no job was done at any kill point: the kills did not test resuming")
	}
}

// TestE2EInterrupt stops a run with SIGINT (Ctrl-C) mid-sweep: it exits
// 130 with no job process left, and the next run reruns the interrupted
// jobs and completes.
func TestE2EInterrupt(t *testing.T) {
	dir := e2eDir(t)
	started := filepath.Join(dir, "started.log")
	e2eWrite(t, filepath.Join(dir, "int.pln"), fmt.Sprintf(`parameter i integer range from 1 to 6
task main
	shexec "echo $i >> %s; sleep 2; echo $i > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`, started))
	t.Cleanup(func() { e2eKillUnder(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	p := e2eStart(t, ctx, dir, "run", "--job-limit", "3", "int.pln")
	if !e2eWaitFor(30*time.Second, func() bool { return e2eCountLines(started) >= 3 || p.exited() }) || p.exited() {
		t.Fatalf("the jobs did not start\nstderr:\n%s", p.stderr.String())
	}
	if procs := e2eProcsUnder(filepath.Join(dir, ".orrery", "nodes")); len(procs) == 0 {
		t.Fatalf("no job processes found running under %s", filepath.Join(dir, ".orrery", "nodes"))
	}
	// The state can be read while the run writes it.
	if st := e2eStatus(t, dir); e2eNum(t, st, "running") < 1 {
		t.Errorf("status --json during the run: %v, want jobs running", st)
	}
	p.killGroup(syscall.SIGINT) // as a terminal's Ctrl-C does
	code := p.wait(15 * time.Second)
	e2eNoPanic(t, "run", p.stderr.String())
	if code != 130 {
		t.Fatalf("run after SIGINT: exit %d, want 130\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "interrupted") {
		t.Errorf("run after SIGINT: stderr does not say it was interrupted:\n%s", p.stderr.String())
	}
	if left := e2eProcsUnder(dir); len(left) > 0 {
		t.Errorf("processes left after the interrupted run ended: %+v", left)
	}
	interrupted := map[int64]bool{}
	for _, j := range e2eJobs(t, dir) {
		if j.State == "running" {
			t.Errorf("job %d still running after the run ended", j.Index)
		}
		if j.State == "pending" && j.Attempts > 0 {
			interrupted[j.Index] = true
			_, atts := e2eLog(t, dir, j.Index)
			if atts[len(atts)-1].State != "interrupted" {
				t.Errorf("log %d: %+v, want the attempt interrupted", j.Index, atts)
			}
		}
	}
	if len(interrupted) == 0 {
		t.Fatalf("no job was recorded as interrupted")
	}

	code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, "run", "--job-limit", "3", "int.pln")
	if code != 0 {
		t.Fatalf("second run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "resuming experiment 1") {
		t.Errorf("second run: stderr %q does not say it resumes", stderr)
	}
	results := map[string]string{}
	for i := 1; i <= 6; i++ {
		results[fmt.Sprintf("%d.txt", i)] = fmt.Sprintf("%d\n", i)
	}
	e2eResults(t, filepath.Join(dir, "results"), results)
	ran := e2eLines(t, started)
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" {
			t.Errorf("job %d: %s after the second run, want done", j.Index, j.State)
		}
		if interrupted[j.Index] {
			_, atts := e2eLog(t, dir, j.Index)
			if len(atts) != 2 || atts[0].State != "interrupted" || atts[1].State != "ok" {
				t.Errorf("log %d: %+v, want interrupted then ok", j.Index, atts)
			}
			if c := ran[strconv.FormatInt(j.Index, 10)]; c != 2 {
				t.Errorf("interrupted job %d started %d times, want 2", j.Index, c)
			}
		}
	}
}

var e2eListening = regexp.MustCompile(`orrery: listening for agents on (\S+)`)

// e2eListen starts `orrery run --nodes 0 --listen 127.0.0.1:0 PLAN` and
// returns it with the address it listens on; the join token is in
// DIR/join.token (agents take --token-file join.token).
func e2eListen(t *testing.T, ctx context.Context, dir, plan string) (*e2eProc, string) {
	t.Helper()
	p := e2eStart(t, ctx, dir, "run", "--nodes", "0", "--listen", "127.0.0.1:0", plan)
	var addr string
	if !e2eWaitFor(20*time.Second, func() bool {
		if m := e2eListening.FindStringSubmatch(p.stderr.String()); m != nil {
			addr = m[1]
			return true
		}
		return p.exited()
	}) || addr == "" {
		t.Fatalf("run --listen did not say where it listens\nstderr:\n%s", p.stderr.String())
	}
	var out, errb strings.Builder
	if code := run(&env{stdout: &out, stderr: &errb}, []string{"token", "--state-dir", filepath.Join(dir, ".orrery")}); code != 0 {
		t.Fatalf("orrery token: exit %d: %s", code, errb.String())
	}
	if err := os.WriteFile(filepath.Join(dir, "join.token"), []byte(out.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p, addr
}

// TestE2EAgents runs a sweep on two `orrery agent` processes over TCP.
func TestE2EAgents(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "ag.pln"), `parameter i integer range from 1 to 16
task main
	copy root:in.txt node:in.txt
	shexec "sleep 0.2; echo $i $(cat in.txt) > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`)
	e2eWrite(t, filepath.Join(dir, "in.txt"), "staged\n")
	t.Cleanup(func() { e2eKillUnder(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	run, addr := e2eListen(t, ctx, dir, "ag.pln")
	var agents []*e2eProc
	for _, name := range []string{"a", "b"} {
		agents = append(agents, e2eStart(t, ctx, dir, "agent", "--connect", addr, "--token-file", "join.token", "--name", name,
			"--job-limit", "2", "--work-dir", filepath.Join(dir, "work-"+name)))
	}
	if code := run.wait(e2eRunTimeout); code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, run.stdout.String(), run.stderr.String())
	}
	for i, a := range agents {
		if code := a.wait(15 * time.Second); code != 0 {
			t.Errorf("agent %d: exit %d after the run ended, want 0\nstderr:\n%s", i, code, a.stderr.String())
		}
		e2eNoPanic(t, "agent", a.stderr.String())
	}
	results := map[string]string{}
	for i := 1; i <= 16; i++ {
		results[fmt.Sprintf("%d.txt", i)] = fmt.Sprintf("%d staged\n", i)
	}
	e2eResults(t, filepath.Join(dir, "results"), results)
	hosts := map[string]int{}
	lines := e2eJoblog(t, dir)
	for _, l := range lines {
		hosts[l.Host]++
		if l.Exit != 0 {
			t.Errorf("joblog: %+v, want exit 0", l)
		}
	}
	if len(lines) != 16 || hosts["a"] == 0 || hosts["b"] == 0 || hosts["a"]+hosts["b"] != 16 {
		t.Errorf("joblog: %d lines on hosts %v, want 16 on both a and b", len(lines), hosts)
	}
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" || j.Attempts != 1 {
			t.Errorf("job %d: %+v, want done in one attempt", j.Index, j)
		}
	}
}

// TestE2EAgentKilled loses one of two agents while it runs jobs: killed
// (its connection closes) or stopped (it goes silent). Either way the
// root waits for the heartbeat timeout (10 s), since a network node may
// come back; meanwhile the idle agent may run duplicates of its jobs.
// Its attempts are recorded lost (or cancelled, a duplicate having won),
// and their jobs run again on the other agent.
func TestE2EAgentKilled(t *testing.T) {
	t.Run("killed", func(t *testing.T) { e2eAgentLost(t, syscall.SIGKILL) })
	t.Run("stopped", func(t *testing.T) { e2eAgentLost(t, syscall.SIGSTOP) })
}

func e2eAgentLost(t *testing.T, sig syscall.Signal) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "ag.pln"), `parameter i integer range from 1 to 8
task main
	shexec "sleep 1; echo $i > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`)
	t.Cleanup(func() { e2eKillUnder(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	run, addr := e2eListen(t, ctx, dir, "ag.pln")
	workA := filepath.Join(dir, "work-a")
	a := e2eStart(t, ctx, dir, "agent", "--connect", addr, "--token-file", "join.token", "--name", "a", "--job-limit", "2", "--work-dir", workA)
	b := e2eStart(t, ctx, dir, "agent", "--connect", addr, "--token-file", "join.token", "--name", "b", "--job-limit", "2", "--work-dir", filepath.Join(dir, "work-b"))
	if !e2eWaitFor(20*time.Second, func() bool { return len(e2eProcsUnder(workA)) > 0 }) {
		t.Fatalf("agent a never ran a job\nrun stderr:\n%s\nagent stderr:\n%s", run.stderr.String(), a.stderr.String())
	}
	a.killGroup(sig)
	if sig == syscall.SIGKILL {
		a.wait(10 * time.Second)
	}
	if code := run.wait(e2eRunTimeout); code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, run.stdout.String(), run.stderr.String())
	}
	e2eNoPanic(t, "run", run.stderr.String())
	if code := b.wait(15 * time.Second); code != 0 {
		t.Errorf("agent b: exit %d, want 0\nstderr:\n%s", code, b.stderr.String())
	}
	results := map[string]string{}
	for i := 1; i <= 8; i++ {
		results[fmt.Sprintf("%d.txt", i)] = fmt.Sprintf("%d\n", i)
	}
	e2eResults(t, filepath.Join(dir, "results"), results)
	lost := 0
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" {
			t.Errorf("job %d: %s, want done", j.Index, j.State)
		}
		out, atts := e2eLog(t, dir, j.Index)
		for k, at := range atts {
			switch {
			case at.State == "ok" && k == len(atts)-1:
			case (at.State == "lost" || at.State == "cancelled") && at.Node == "a":
				// Lost with the node, or given up when a duplicate on b
				// won first (the node may come back, so its attempts are
				// kept for the heartbeat timeout).
				lost++
				if !strings.Contains(out, "error: ") {
					t.Errorf("log %d: the lost attempt has no reason:\n%s", j.Index, out)
				}
			default:
				t.Errorf("log %d: attempt %+v; want lost attempts on a, then one ok", j.Index, at)
			}
		}
		if last := atts[len(atts)-1]; len(atts) > 1 && last.Node != "b" {
			t.Errorf("log %d: job lost on a ran again on %s, want b", j.Index, last.Node)
		}
	}
	if lost == 0 {
		t.Errorf("no attempt on agent a was recorded lost or cancelled")
	}
}

// TestE2EFullDisk runs with the state directory on a small tmpfs that
// fills up: a clear error and a non-zero exit; then, with room again, the
// run resumes and completes without losing what was done.
func TestE2EFullDisk(t *testing.T) {
	dir := e2eDir(t)
	mnt := filepath.Join(dir, "st")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		e2eKillUnder(dir)
		if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
			t.Errorf("umount: %v\n%s", err, out)
			exec.Command("umount", "-l", mnt).Run()
		}
	})
	// Each job keeps 64 KiB of output in the state: 300 KiB holds a few.
	e2eWrite(t, filepath.Join(dir, "full.pln"), `parameter i integer range from 1 to 30
task main
	shexec "head -c 60000 /dev/urandom | base64; echo $i > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`)
	state := filepath.Join(mnt, ".orrery")
	code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, "run", "--job-limit", "2", "--state-dir", state, "full.pln")
	if code != wantSystem {
		t.Fatalf("run on a full disk: exit %d, want %d (Orrery's own failure)\nstdout:\n%s\nstderr:\n%s", code, wantSystem, stdout, stderr)
	}
	if len(nsLines(stderr, "the disk that holds the state directory", "is full", "Make room, then resume with: ", "orrery run")) != 1 {
		t.Errorf("run on a full disk: stderr does not say once that the disk is full:\n%s", stderr)
	}
	if failedClaim.MatchString(stdout) || failedClaim.MatchString(stderr) {
		t.Errorf("run on a full disk claims failed jobs:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	jobs := e2eJobs(t, dir, "--state-dir", state, "--state", "done")
	t.Logf("full disk: %d jobs recorded done; run said %q", len(jobs), strings.TrimSpace(stdout))
	if m := regexp.MustCompile(`(\d+) done`).FindStringSubmatch(stdout); m == nil {
		t.Errorf("run on a full disk printed no summary: %q", stdout)
	} else if said, _ := strconv.Atoi(m[1]); said > len(jobs) {
		t.Errorf("run on a full disk said %d done, but only %d jobs are recorded done", said, len(jobs))
	}
	doneAt := map[int64]int{}
	for _, j := range jobs {
		doneAt[j.Index] = j.Attempts
	}

	if out, err := exec.Command("mount", "-o", "remount,size=20m", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount tmpfs bigger: %v\n%s", err, out)
	}
	code, stdout, stderr = e2eRun(t, dir, e2eRunTimeout, "run", "--job-limit", "2", "--state-dir", state, "full.pln")
	if code != 0 {
		t.Fatalf("run with room again: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "resuming experiment 1") {
		t.Errorf("run with room again: stderr %q does not say it resumes", stderr)
	}
	results := map[string]string{}
	for i := 1; i <= 30; i++ {
		results[fmt.Sprintf("%d.txt", i)] = fmt.Sprintf("%d\n", i)
	}
	e2eResults(t, filepath.Join(dir, "results"), results)
	all := e2eJobs(t, dir, "--state-dir", state)
	if len(all) != 30 {
		t.Errorf("jobs: %d, want 30", len(all))
	}
	for _, j := range all {
		if j.State != "done" {
			t.Errorf("job %d: %s, want done", j.Index, j.State)
		}
		if before, ok := doneAt[j.Index]; ok && before != j.Attempts {
			t.Errorf("job %d was done with %d attempts, and has %d now", j.Index, before, j.Attempts)
		}
	}
}

// TestE2EClusterCgroups runs on a cluster file with one limited node: its
// jobs run in an orrery control group, the other node's do not, and no
// group is left behind.
func TestE2EClusterCgroups(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "cluster.txt"), `# one plain node, one limited
node fast job-limit 1
node slow job-limit 1 cpu-share 0.5 memory 256M
`)
	e2eWrite(t, filepath.Join(dir, "cg.pln"), `parameter i integer range from 1 to 8
task main
	copy root:limits.sh node:limits.sh
	shexec "sleep 0.2; sh limits.sh"
	copy node:cg.txt root:cg/$i.txt
	copy node:agentcg.txt root:agentcg/$i.txt
	copy node:limits.txt root:limits/$i.txt
endtask
`)
	// limits.sh records the job's control groups, its node agent's (the
	// parent of the shell that runs it), and the CPU and memory limits of
	// the groups it is in.
	e2eWrite(t, filepath.Join(dir, "limits.sh"), `cat /proc/self/cgroup > cg.txt
cat /proc/$(awk '{print $4}' /proc/$PPID/stat)/cgroup > agentcg.txt
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
	p=$(sed -n 's/^0:://p' /proc/self/cgroup)
	echo "cpu $(cat /sys/fs/cgroup$p/cpu.max 2>&1)" > limits.txt
	echo "memory $(cat /sys/fs/cgroup$p/memory.max 2>&1)" >> limits.txt
else
	c=$(awk -F: '{n=split($2,a,","); for(i=1;i<=n;i++) if(a[i]=="cpu") print $3}' /proc/self/cgroup)
	m=$(awk -F: '{n=split($2,a,","); for(i=1;i<=n;i++) if(a[i]=="memory") print $3}' /proc/self/cgroup)
	echo "cpu $(cat /sys/fs/cgroup/cpu$c/cpu.cfs_quota_us 2>&1) $(cat /sys/fs/cgroup/cpu$c/cpu.cfs_period_us 2>&1)" > limits.txt
	echo "memory $(cat /sys/fs/cgroup/memory$m/memory.limit_in_bytes 2>&1)" >> limits.txt
fi
`)
	t.Cleanup(func() { e2eKillUnder(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	// fcfs: nothing migrates, so each job reads the groups of the node
	// that started it (TestE2EMigration moves jobs between groups).
	p := e2eStart(t, ctx, dir, "run", "--policy", "fcfs", "--cluster", "cluster.txt", "cg.pln")
	code := p.wait(e2eRunTimeout)
	e2eNoPanic(t, "run", p.stderr.String())
	if code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
	}
	v2 := false
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		v2 = true
	}
	hosts := map[string]int{}
	for _, l := range e2eJoblog(t, dir) {
		hosts[l.Host]++
		b, err := os.ReadFile(filepath.Join(dir, "cg", fmt.Sprintf("%d.txt", l.Seq)))
		if err != nil {
			t.Errorf("job %d: %v", l.Seq, err)
			continue
		}
		cpu, mem, inOrrery := "", "", false
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			f := strings.SplitN(line, ":", 3)
			if len(f) != 3 {
				t.Errorf("job %d: bad /proc/self/cgroup line %q", l.Seq, line)
				continue
			}
			inOrrery = inOrrery || strings.Contains(f[2], "orrery")
			for _, c := range strings.Split(f[1], ",") {
				switch {
				case v2 && f[0] == "0":
					cpu, mem = f[2], f[2]
				case c == "cpu":
					cpu = f[2]
				case c == "memory":
					mem = f[2]
				}
			}
		}
		switch l.Host {
		case "slow":
			if !strings.Contains(cpu, "orrery") || !strings.Contains(mem, "orrery") {
				t.Errorf("job %d on the limited node: cpu group %q, memory group %q, want orrery groups", l.Seq, cpu, mem)
			}
			// The node's agent runs outside its limits: they are its
			// jobs'.
			if a, err := os.ReadFile(filepath.Join(dir, "agentcg", fmt.Sprintf("%d.txt", l.Seq))); err != nil || strings.Contains(string(a), "orrery") {
				t.Errorf("job %d on the limited node: its agent's groups (%v):\n%s", l.Seq, err, a)
			}
			// cpu-share 0.5: 50 ms of CPU time per 100 ms; memory 256M.
			lim, err := os.ReadFile(filepath.Join(dir, "limits", fmt.Sprintf("%d.txt", l.Seq)))
			if want := "cpu 50000 100000\nmemory 268435456\n"; err != nil || string(lim) != want {
				t.Errorf("job %d on the limited node: limits %q (%v), want %q", l.Seq, lim, err, want)
			}
		case "fast":
			if inOrrery {
				t.Errorf("job %d on the unlimited node ran in an orrery group:\n%s", l.Seq, b)
			}
		default:
			t.Errorf("job %d on unknown host %q", l.Seq, l.Host)
		}
	}
	if hosts["slow"] == 0 || hosts["fast"] == 0 || hosts["slow"]+hosts["fast"] != 8 {
		t.Errorf("jobs per host %v, want 8 jobs on both fast and slow", hosts)
	}
	// The groups this run made are named exp1-PID-NODE.
	mine := fmt.Sprintf("-%d-", p.pid())
	parents := []string{"/sys/fs/cgroup/cpu/orrery", "/sys/fs/cgroup/memory/orrery"}
	if v2 {
		parents = []string{"/sys/fs/cgroup/orrery"}
	}
	for _, parent := range parents {
		ents, _ := os.ReadDir(parent)
		for _, e := range ents {
			if e.IsDir() && strings.Contains(e.Name(), mine) {
				t.Errorf("control group %s left behind", filepath.Join(parent, e.Name()))
			}
		}
	}
}
