package task

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// seqTail returns the last n bytes of the output of `seq 1 last`, and the
// output's length.
func seqTail(last, n int) ([]byte, int64) {
	var total int64
	for i := 1; i <= last; i++ {
		total += int64(len(strconv.Itoa(i)) + 1)
	}
	var parts [][]byte
	size := 0
	for i := last; i >= 1 && size < n; i-- {
		p := []byte(strconv.Itoa(i) + "\n")
		parts = append(parts, p)
		size += len(p)
	}
	var b []byte
	for i := len(parts) - 1; i >= 0; i-- {
		b = append(b, parts[i]...)
	}
	return b[len(b)-n:], total
}

func TestLargeOutputKeepsTail(t *testing.T) {
	const n = 13_000_000 // about 101 MiB of output
	f := newFixture(t)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	res := f.mustRun("", fmt.Sprintf("\texec seq 1 %d", n))
	runtime.ReadMemStats(&after)
	out := res.Commands[0].Stdout
	want, total := seqTail(n, DefaultOutputLimit)
	if total < 100<<20 {
		t.Fatalf("the test writes only %d bytes", total)
	}
	if out.Total != total {
		t.Errorf("Total = %d, want %d", out.Total, total)
	}
	if !bytes.Equal(out.Tail, want) {
		t.Errorf("kept %d bytes ending %q, want the last %d ending %q",
			len(out.Tail), out.Tail[max(0, len(out.Tail)-20):], len(want), want[len(want)-20:])
	}
	if !out.Truncated() {
		t.Error("Truncated() = false")
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("running the job allocated %d MiB for %d MiB of output", alloc>>20, total>>20)
	}
}

// running reports whether a process exists and is not a zombie.
func running(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z' && b[i+2] != 'X'
}

// gone reports whether a process has exited, waiting up to two seconds.
func gone(pid int) bool {
	for deadline := time.Now().Add(2 * time.Second); running(pid); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// readPid reads a process id a job wrote into a file.
func readPid(t *testing.T, path string) int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

func TestBackgroundChildIsKilled(t *testing.T) {
	f := newFixture(t)
	start := time.Now()
	res := f.mustRun("", `	shexec "sleep 100 & echo $! > child.pid; echo done"`)
	if took := time.Since(start); took > 30*time.Second { // far from both: the child sleeps 100 s
		t.Errorf("the command took %v: it waited for its background child", took)
	}
	if got := res.Commands[0].Stdout.String(); got != "done\n" {
		t.Errorf("stdout %q", got)
	}
	pid := readPid(t, filepath.Join(f.job, "child.pid"))
	if !gone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("background child %d outlived its command", pid)
	}
}

func TestCancelKillsGroupAfterGrace(t *testing.T) {
	f := newFixture(t)
	const grace = 400 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := filepath.Join(f.job, "ready")
	var cancelled time.Time
	go func() {
		for {
			if _, err := os.Stat(ready); err == nil {
				cancelled = time.Now()
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	res, err := f.runCtx(ctx, "", `	onerror ignore
	shexec "trap '' TERM; sleep 100 & echo $! > sleep.pid; touch ready; wait; wait; wait"
	shexec "touch never"`, Options{KillGrace: grace})
	took := time.Since(cancelled)
	if !errors.Is(err, context.Canceled) || res.Failed != 1 {
		t.Fatalf("err %v, Failed %d (cancel must fail the task even under onerror ignore)", err, res.Failed)
	}
	if took < grace || took > grace+30*time.Second { // the child would sleep 100 s
		t.Errorf("the task ended %v after cancel; want SIGKILL after the %v grace", took, grace)
	}
	if c := res.Commands[1]; c.Signal != syscall.SIGKILL || c.Exit != -1 {
		t.Errorf("signal %v, exit %d; want SIGKILL", c.Signal, c.Exit)
	}
	if pid := readPid(t, filepath.Join(f.job, "sleep.pid")); !gone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("child %d that ignores SIGTERM survived the cancel", pid)
	}
	if _, err := os.Stat(filepath.Join(f.job, "never")); err == nil {
		t.Error("a command ran after cancel")
	}
}

func TestCancelTerminates(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	res, err := f.runCtx(ctx, "", "\texec sleep 100", Options{KillGrace: 10 * time.Second})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if took := time.Since(start); took > 30*time.Second { // sleep 100; the signal below tells SIGTERM from the SIGKILL after the grace
		t.Errorf("took %v: SIGTERM should have stopped sleep at once", took)
	}
	if c := res.Commands[0]; c.Signal != syscall.SIGTERM {
		t.Errorf("signal %v, want SIGTERM", c.Signal)
	}
}

func TestResourceUse(t *testing.T) {
	f := newFixture(t)
	res := f.mustRun("", `	shexec "i=0; while [ \$i -lt 100000 ]; do i=\$((i+1)); done"
	exec true`)
	c := res.Commands[0]
	if c.CPU() <= 0 || c.MaxRSS <= 0 || c.Wall <= 0 {
		t.Errorf("CPU %v, MaxRSS %d, Wall %v: want all non-zero", c.CPU(), c.MaxRSS, c.Wall)
	}
	if c.CPU() > c.Wall+100*time.Millisecond {
		t.Errorf("CPU %v above wall %v for a single-threaded loop", c.CPU(), c.Wall)
	}
	if res.CPU() < c.CPU() || res.MaxRSS < c.MaxRSS || res.Wall < c.Wall {
		t.Errorf("task totals CPU %v MaxRSS %d Wall %v below the command's", res.CPU(), res.MaxRSS, res.Wall)
	}
}

func TestProcessOutsideGroupDoesNotHangOutput(t *testing.T) {
	f := newFixture(t)
	const grace = 300 * time.Millisecond
	start := time.Now()
	res, err := f.run("", `	shexec "setsid sh -c 'echo $$ > escaped.pid; exec sleep 30' & while [ ! -s escaped.pid ]; do sleep 0.01; done; echo out"`, Options{KillGrace: grace})
	took := time.Since(start)
	pid := readPid(t, filepath.Join(f.job, "escaped.pid"))
	defer syscall.Kill(pid, syscall.SIGKILL) // setsid left the group: not ours to reach
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Commands[0].Stdout.String(); got != "out\n" {
		t.Errorf("stdout %q", got)
	}
	if took < grace || took > grace+20*time.Second { // the escaped process sleeps 30 s
		t.Errorf("took %v: reading output should stop %v after the command ends", took, grace)
	}
	if !running(pid) {
		t.Errorf("process %d that left the group is gone: the test did not test a held pipe", pid)
	}
}

// TestProgramBusyForAMoment runs a program that is still open for
// writing when the command starts (as when another job's command,
// forked meanwhile, holds a copy of the descriptor its copy wrote it
// through): the start is tried again until the program is free, and the
// job does not fail with "text file busy".
func TestProgramBusyForAMoment(t *testing.T) {
	f := newFixture(t)
	prog := filepath.Join(f.root, "prog")
	w, err := os.OpenFile(prog, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteString("#!/bin/sh\necho ran\n"); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(150 * time.Millisecond)
		w.Close()
		close(released)
	}()
	res := f.mustRun("", "\texec "+prog)
	<-released
	if got := string(res.Commands[0].Stdout.Tail); got != "ran\n" {
		t.Fatalf("stdout %q, want %q", got, "ran\n")
	}
}
