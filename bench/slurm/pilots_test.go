//go:build bench

package slurm

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"orrery/internal/slurmtest"
)

// htc is the slurm.conf lines of Slurm's High Throughput Computing
// Administration Guide (doc/html/high_throughput.shtml) that apply to
// one machine, each with the guide's reason; they replace the test
// Slurm's defaults of the same key.
//
// batch_sched_delay is the guide's knob, but set to 0 rather than its
// example's 20: it bounds how long the scheduling of batch jobs may be
// put off, which saves work when thousands of sbatch calls arrive a
// second; here, where one array's tasks wait for CPUs, it puts off each
// task's start by up to that long. Measured on this machine (20 tasks
// of 0.5 s on 2 CPUs): 30.8 s with the default 3 s, 12.7 s with 0; 20
// would be worse still. sched_min_interval (the example's 2000000) is
// left at its default (2 µs) for the same reason: 0 measured the same.
//
// Left out: defer (it helps when hundreds of jobs are submitted at once;
// it would put off each pilot's start to the next periodic pass); the
// backfill options (sched/builtin has no backfill); several
// SlurmctldPort ports and the kernel's socket limits, for bursts of
// thousands of RPCs (the array is one, the pilots a few), and the
// machine's, not this run's; munged's threads (munged may be the
// machine's). ProctrackType=proctrack/pgid measured the same as the test
// Slurm's proctrack/linuxproc. The test Slurm already has no job submit
// plugin and no PrologSlurmctld/EpilogSlurmctld, as the guide suggests.
var htc = []struct{ line, why string }{
	{"SchedulerType=sched/builtin", "most jobs short: FIFO, no priority sort"},
	{"PriorityType=priority/basic", "considerably faster than the other priority plugins"},
	{"SchedulerParameters=batch_sched_delay=0,partition_job_depth=500,sched_max_job_start=200", "no delay to schedule batch jobs; the guide's depths"},
	{"JobAcctGatherType=jobacct_gather/none", "no job accounting collection"},
	{"JobCompType=jobcomp/none", "no job completion records"},
	{"AccountingStorageType=accounting_storage/none", "no accounting records"},
	{"MinJobAge=5", "purge ended jobs' records after a few seconds"},
	{"MessageTimeout=20", "slurmctld's answers depend on its load: a little more than 10 s"},
	{"SlurmctldDebug=error", "less logging"},
	{"SlurmdDebug=error", "less logging"},
}

// orreryBin is the orrery the benchmark built.
var orreryBin string

// The guide's own example values for its scheduling knobs (defer,
// batch_sched_delay=20, sched_min_interval=2000000) are left out: they
// trade each job's start for the controller's load under thousands of
// submissions a second. Measured here with them, the array ran 88 of
// its 200 tasks in 14 minutes (defer leaves each start to the periodic
// pass): not a comparison worth making.

// TestPilots measures 200 jobs of 0.5 s as a job array and through
// Orrery's pilots on a Slurm configured as the High Throughput
// Computing guide suggests (htc), then on the test Slurm's own
// configuration (Debian's defaults: sched/backfill, batch_sched_delay
// 3 s...), and on the embedded cluster, on the same machine in the same
// run. The targets are judged on the guide's configuration, as the
// issue asks.
func TestPilots(t *testing.T) {
	jobs := envInt(t, "SLURM_JOBS", 200)
	cpus := runtime.NumCPU()
	base := t.TempDir()
	orreryBin = filepath.Join(base, "orrery")
	root, _ := filepath.Abs("../..")
	build := exec.Command("go", "build", "-o", orreryBin, "./cmd/orrery")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	plan := fmt.Sprintf("parameter x integer range from 1 to %d\ntask main\n\texecute sleep 0.5\nendtask\n", jobs)
	type result struct{ array, pilots time.Duration }
	var res []result
	for i, conf := range []struct {
		name string
		htc  bool
	}{{"the High Throughput Computing guide suggests", true}, {"Debian's defaults (the test Slurm's own)", false}} {
		if i > 0 && os.Getenv("SLURM_ONLY") == "htc" {
			break
		}
		var extra []string
		for _, s := range htc {
			if conf.htc {
				extra = append(extra, s.line)
			}
		}
		// SLURM_EXTRA: further lines (separated by ';') that replace these,
		// to try other settings.
		for _, l := range strings.Split(os.Getenv("SLURM_EXTRA"), ";") {
			if l = strings.TrimSpace(l); l != "" {
				extra = append(extra, l)
			}
		}
		extra = lastOfEachKey(extra)
		dir := filepath.Join(base, fmt.Sprintf("run%d", i))
		sl, err := slurmtest.StartWith(filepath.Join(dir, "slurm"), slurmtest.Options{Extra: strings.Join(extra, "\n")})
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("Slurm (slurm-wlm %s), one node of %d CPUs, configured as %s:\n", slurmVersion(sl), cpus, conf.name)
		checkConfig(t, sl, extra)
		for _, l := range extra {
			why := "SLURM_EXTRA"
			for _, s := range htc {
				if s.line == l {
					why = s.why
				}
			}
			fmt.Printf("  %-60s # %s\n", l, why)
		}
		warmUp(t, sl)
		array, peak := runArray(t, sl, filepath.Join(dir, "array"), jobs)
		fmt.Printf("job array of %d tasks (sleep 0.5):      %6.1f s (at most %d tasks seen running at once)\n", jobs, array.Seconds(), peak)
		pilotsFile := fmt.Sprintf("cluster here slurm partition %s time 00:30:00 pilots %d cpus-per-pilot 1 listen %s\n",
			slurmtest.Partition, cpus, freeAddr(t))
		pilots := runOrrery(t, sl, filepath.Join(dir, "pilots"), plan, pilotsFile)
		fmt.Printf("orrery run, %d pilots of 1 CPU:          %6.1f s\n\n", cpus, pilots.Seconds())
		if q := queue(t, sl); q != "" {
			t.Errorf("Slurm's queue after the run through pilots is not empty:\n%s", q)
		}
		cancelAll(t, sl)
		sl.Stop()
		res = append(res, result{array, pilots})
	}
	var local strings.Builder
	for i := range cpus {
		fmt.Fprintf(&local, "node n%d cpus 1\n", i+1)
	}
	embedded := runOrrery(t, nil, filepath.Join(base, "embedded"), plan, local.String())
	fmt.Printf("orrery run, embedded, %d nodes of 1 CPU: %6.1f s\n", cpus, embedded.Seconds())

	r1 := res[0].array.Seconds() / res[0].pilots.Seconds()
	r2 := res[0].pilots.Seconds() / embedded.Seconds()
	fmt.Printf("\nSlurm as the guide suggests:\n  array / pilots:    %.2f (target >= 3)\n  pilots / embedded: %.2f (target <= 1.2)\n", r1, r2)
	if len(res) > 1 {
		fmt.Printf("Slurm with Debian's defaults:\n  array / pilots:    %.2f\n  pilots / embedded: %.2f\n",
			res[1].array.Seconds()/res[1].pilots.Seconds(), res[1].pilots.Seconds()/embedded.Seconds())
	}
	if r1 < 3 {
		fmt.Printf("MISSED: Orrery through pilots is %.2fx as fast as the job array, not 3x\n", r1)
		t.Errorf("MISSED: array/pilots %.2f", r1)
	}
	if r2 > 1.2 {
		fmt.Printf("MISSED: Orrery through pilots takes %.0f%% longer than the embedded cluster\n", 100*(r2-1))
		t.Errorf("MISSED: pilots/embedded %.2f", r2)
	}
}

// runArray submits a job array of n tasks of `sleep 0.5`, one CPU each,
// and returns the time from its submission to the end of its last task,
// seen by polling squeue, and the most tasks seen running at once. Every
// task must have completed.
func runArray(t *testing.T, sl *slurmtest.Cluster, dir string, n int) (time.Duration, int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "job.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nsleep 0.5\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := slurmCmd(t, sl, dir, "sbatch", "--parsable", "--job-name=bench-array", "--partition="+slurmtest.Partition,
		"--time=00:30:00", fmt.Sprintf("--array=1-%d", n), "--cpus-per-task=1", "--output=/dev/null", script)
	id := strings.TrimSpace(strings.SplitN(out, ";", 2)[0])
	if _, err := strconv.Atoi(id); err != nil {
		t.Fatalf("sbatch said %q, not a job ID", out)
	}
	// Each task's last state seen; a task leaves squeue's records
	// MinJobAge after its end, far longer than the polling interval.
	states := map[string]string{}
	peak := 0
	deadline := start.Add(20 * time.Minute)
	for {
		cmd := exec.Command("squeue", "--noheader", "--array", "--states=all", "--jobs="+id, "--format=%i %T")
		cmd.Env = sl.Environ()
		out, err := cmd.Output()
		now := time.Now()
		active, running := false, 0
		if err == nil {
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				f := strings.Fields(l)
				if len(f) != 2 {
					continue
				}
				states[f[0]] = f[1]
				if f[1] == "RUNNING" {
					running++
				}
				switch f[1] {
				case "PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING":
					active = true
				}
			}
		}
		peak = max(peak, running)
		// squeue -j of a job whose records are gone fails: it has ended.
		if !active && (err != nil || len(states) >= n) {
			done := 0
			for task, s := range states {
				if s == "COMPLETED" {
					done++
				} else {
					t.Errorf("array task %s ended %s", task, s)
				}
			}
			if done != n {
				t.Fatalf("%d of the array's %d tasks were seen completed (squeue: %v)", done, n, err)
			}
			return now.Sub(start), peak
		}
		if now.After(deadline) {
			t.Fatalf("the job array has not ended in 20 minutes: %d tasks seen", len(states))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// warmUp runs one batch job and waits for its end, so that the array
// meets a controller that runs as a busy site's does: a slurmctld that
// has just started puts off its first scheduling by about 3 s.
func warmUp(t *testing.T, sl *slurmtest.Cluster) {
	t.Helper()
	slurmCmd(t, sl, "", "sbatch", "--job-name=bench-warm-up", "--partition="+slurmtest.Partition, "--time=00:05:00",
		"--output=/dev/null", "--wrap=true")
	deadline := time.Now().Add(time.Minute)
	for strings.TrimSpace(slurmCmd(t, sl, "", "squeue", "--noheader", "--format=%i")) != "" {
		if time.Now().After(deadline) {
			t.Fatal("the warm-up job has not ended within a minute")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// runOrrery runs `orrery run --cluster c.cluster p.pln` in a fresh
// directory with plan and cluster file and returns its wall time; every
// job must succeed.
func runOrrery(t *testing.T, sl *slurmtest.Cluster, dir, plan, cluster string) time.Duration {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"p.pln": plan, "c.cluster": cluster} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, orreryBin, "run", "--cluster", "c.cluster", "--state-dir", filepath.Join(dir, "state"), "p.pln")
	cmd.Dir, cmd.Env = dir, os.Environ()
	if sl != nil {
		cmd.Env = sl.Environ()
	}
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	if err != nil {
		head := filepath.Join(dir, "state", "heads", "here")
		var logs strings.Builder
		for _, pat := range []string{"head.log", "pilots/*.out"} {
			files, _ := filepath.Glob(filepath.Join(head, pat))
			for _, f := range files {
				b, _ := os.ReadFile(f)
				fmt.Fprintf(&logs, "--- %s:\n%s\n", f, tail(string(b), 40))
			}
		}
		t.Fatalf("orrery run in %s: %v after %.1f s\n%s\n%s", dir, err, took.Seconds(), tail(string(out), 40), logs.String())
	}
	return took
}

// checkConfig fails unless `scontrol show config` shows every line of
// extra as set.
func checkConfig(t *testing.T, sl *slurmtest.Cluster, extra []string) {
	t.Helper()
	out := slurmCmd(t, sl, "", "scontrol", "show", "config")
	shown := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			shown[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
		}
	}
	for _, l := range extra {
		k, v, _ := strings.Cut(l, "=")
		got, ok := shown[strings.ToLower(k)]
		if !ok || !sameSetting(strings.ToLower(k), v, got) {
			t.Fatalf("slurmctld does not take %s: scontrol show config says %s = %q", l, k, got)
		}
	}
}

// sameSetting reports whether scontrol's value got is the configured v.
func sameSetting(key, v, got string) bool {
	switch key {
	case "minjobage", "messagetimeout":
		return strings.HasPrefix(got, v+" sec")
	case "slurmctlddebug", "slurmddebug":
		return strings.EqualFold(got, v)
	case "jobacctgathertype", "jobcomptype", "accountingstoragetype":
		// scontrol shows a "none" plugin as such, or as "(null)".
		return got == v || (strings.HasSuffix(v, "/none") && (got == "(null)" || got == ""))
	}
	return got == v
}

// lastOfEachKey keeps, of lines that set the same key, the last.
func lastOfEachKey(lines []string) []string {
	var out []string
	pos := map[string]int{}
	for _, l := range lines {
		k, _, _ := strings.Cut(l, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if i, ok := pos[k]; ok {
			out[i] = l
			continue
		}
		pos[k] = len(out)
		out = append(out, l)
	}
	return out
}

// queue is every job left in the Slurm's queue, one line each.
func queue(t *testing.T, sl *slurmtest.Cluster) string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		q := strings.TrimSpace(slurmCmd(t, sl, "", "squeue", "--noheader", "--format=%i %j %T"))
		if q == "" || time.Now().After(deadline) {
			return q
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// cancelAll cancels whatever is left in the test Slurm's queue (its own,
// private one) and waits until the queue is empty.
func cancelAll(t *testing.T, sl *slurmtest.Cluster) {
	cmd := exec.Command("squeue", "--noheader", "--format=%i")
	cmd.Env = sl.Environ()
	out, _ := cmd.Output()
	if ids := strings.Fields(string(out)); len(ids) > 0 {
		c := exec.Command("scancel", ids...)
		c.Env = sl.Environ()
		c.Run()
		if q := queue(t, sl); q != "" {
			t.Errorf("Slurm's queue is not empty at the end:\n%s", q)
		}
	}
}

func slurmVersion(sl *slurmtest.Cluster) string {
	cmd := exec.Command("sinfo", "--version")
	cmd.Env = sl.Environ()
	out, _ := cmd.Output()
	f := strings.Fields(string(out))
	if len(f) == 0 {
		return "?"
	}
	return f[len(f)-1]
}

// slurmCmd runs a Slurm command with the test Slurm's environment and
// returns its output; it fails the test when the command fails.
func slurmCmd(t *testing.T, sl *slurmtest.Cluster, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir, cmd.Env = dir, sl.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// freeAddr is a TCP address on 127.0.0.1 free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}

func envInt(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	return def
}
