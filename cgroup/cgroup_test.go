package cgroup

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// unsupported says why the tests cannot make groups here, or "": they
// need root on Linux and the cpu and memory controllers, v1 or v2.
func unsupported() string {
	if runtime.GOOS != "linux" {
		return "control groups are Linux's"
	}
	if os.Geteuid() != 0 {
		return "making control groups needs root"
	}
	if V2() {
		b, err := os.ReadFile(filepath.Join(Root, "cgroup.controllers"))
		if err != nil {
			return err.Error()
		}
		for _, c := range []string{"cpu", "memory"} {
			if !slices.Contains(strings.Fields(string(b)), c) {
				return "the cgroup v2 hierarchy has no " + c + " controller"
			}
		}
		return ""
	}
	for _, f := range []string{"cpu/cpu.cfs_quota_us", "memory/memory.limit_in_bytes"} {
		if _, err := os.Stat(filepath.Join(Root, f)); err != nil {
			return "no cgroup v2 hierarchy and no v1 " + filepath.Dir(f) + " controller: " + err.Error()
		}
	}
	return ""
}

var serial atomic.Int64

// newGroup makes a group with a name of this test process's and removes
// it when the test ends.
func newGroup(t *testing.T, l Limits) (*Group, string) {
	t.Helper()
	if reason := unsupported(); reason != "" {
		t.Skip(reason)
	}
	name := fmt.Sprintf("test-%d-%d", os.Getpid(), serial.Add(1))
	g, err := New(name, l)
	if err != nil {
		t.Fatal(err)
	}
	dirs := slices.Clone(g.dirs)
	t.Cleanup(func() {
		g.Remove()
		for _, d := range dirs {
			os.Remove(d)
		}
	})
	return g, name
}

// dirOf returns the group's directory for a controller ("cpu" or
// "memory"; on v2 the one directory).
func dirOf(t *testing.T, g *Group, controller string) string {
	t.Helper()
	if V2() {
		return g.dirs[0]
	}
	for _, d := range g.dirs {
		if strings.HasPrefix(d, filepath.Join(Root, controller)+"/") {
			return d
		}
	}
	t.Fatalf("the group %v has no %s directory", g.dirs, controller)
	return ""
}

func readFile(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// waiting starts a shell that runs script once a line arrives on its
// standard input, and returns it with that input.
func waiting(t *testing.T, script string) (*exec.Cmd, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command("sh", "-c", "read go; "+script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
	})
	return cmd, in
}

// inGroup reports whether process pid is in dir's group, from
// /proc/PID/cgroup.
func inGroup(t *testing.T, pid int, dir string) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		var path string
		if V2() {
			path = filepath.Join(Root, f[2])
		} else {
			for _, c := range strings.Split(f[1], ",") {
				if top := filepath.Join(Root, c); c != "" && (dir == top || strings.HasPrefix(dir, top+"/")) {
					path = filepath.Join(Root, c, f[2])
				}
			}
		}
		if path == dir {
			return true
		}
	}
	return false
}

// TestLimits: New writes the CPU quota and the memory limit, Add puts a
// process (and the children it starts later) in the group, and Remove
// moves what is left to the parent and deletes the group.
func TestLimits(t *testing.T) {
	g, _ := newGroup(t, Limits{CPUs: 0.5, Memory: 64 << 20})
	cpu, mem := dirOf(t, g, "cpu"), dirOf(t, g, "memory")
	if V2() {
		if got := readFile(t, cpu, "cpu.max"); got != "50000 100000" {
			t.Errorf("cpu.max = %q, want 50000 100000", got)
		}
		if got := readFile(t, mem, "memory.max"); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.max = %q, want %d", got, 64<<20)
		}
	} else {
		if got := readFile(t, cpu, "cpu.cfs_quota_us"); got != "50000" {
			t.Errorf("cpu.cfs_quota_us = %q, want 50000", got)
		}
		if got := readFile(t, cpu, "cpu.cfs_period_us"); got != "100000" {
			t.Errorf("cpu.cfs_period_us = %q, want 100000", got)
		}
		if got := readFile(t, mem, "memory.limit_in_bytes"); got != strconv.Itoa(64<<20) {
			t.Errorf("memory.limit_in_bytes = %q, want %d", got, 64<<20)
		}
	}

	childFile := filepath.Join(t.TempDir(), "child")
	cmd, in := waiting(t, "sleep 60 & echo $! > "+childFile+"; wait")
	pid := cmd.Process.Pid
	if err := g.Add(pid); err != nil {
		t.Fatal(err)
	}
	for _, d := range g.dirs {
		if !inGroup(t, pid, d) {
			t.Errorf("process %d is not in %s after Add", pid, d)
		}
		if pids := readFile(t, d, "cgroup.procs"); pids != strconv.Itoa(pid) {
			t.Errorf("%s/cgroup.procs = %q, want %d", d, pids, pid)
		}
	}
	fmt.Fprintln(in, "go")
	var child int
	waitFor(t, "the child starts", func() bool {
		n, err := os.ReadFile(childFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(n)))
		return err == nil && child > 0
	})
	for _, d := range g.dirs {
		if !inGroup(t, child, d) {
			t.Errorf("the child %d its member started is not in %s", child, d)
		}
	}

	dirs := slices.Clone(g.dirs)
	if err := g.Remove(); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there after Remove (%v)", d, err)
		}
		if !inGroup(t, pid, filepath.Dir(d)) || !inGroup(t, child, filepath.Dir(d)) {
			t.Errorf("after Remove, processes %d and %d are not in the parent group %s", pid, child, filepath.Dir(d))
		}
	}
	if err := syscall.Kill(pid, 0); err != nil {
		t.Errorf("Remove ended the group's process %d: %v", pid, err)
	}
}

// TestCPUQuotaHolds: a process that spins in a group of a fifth of a CPU
// gets no more than a fifth of a CPU: its CPU time is at most a fifth of
// the wall time it spun plus one quota period. A busy machine can only
// give it less, so the bound holds however busy the machine is.
func TestCPUQuotaHolds(t *testing.T) {
	g, _ := newGroup(t, Limits{CPUs: 0.2})
	cmd, in := waiting(t, "while :; do :; done")
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	fmt.Fprintln(in, "go")
	time.Sleep(1500 * time.Millisecond)
	syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	wall := time.Since(began)
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	t.Logf("spun for %s of wall time, %s of CPU", wall.Round(time.Millisecond), cpu.Round(time.Millisecond))
	if limit := time.Duration(0.2*float64(wall)) + period*time.Microsecond; cpu > limit {
		t.Errorf("a process in a group of 0.2 CPUs used %s of CPU in %s, over %s", cpu, wall, limit)
	}
	if cpu == 0 {
		t.Errorf("the process used no CPU: it did not spin")
	}
}

// TestMemoryLimitHolds: a process that holds 256 MB in a group of 32 MB
// never has more than 32 MB charged to the group, and with no swap the
// kernel kills it.
func TestMemoryLimitHolds(t *testing.T) {
	const limit = 32 << 20
	g, _ := newGroup(t, Limits{Memory: limit})
	mem := dirOf(t, g, "memory")
	// tail keeps the last line, and /dev/zero has no newline.
	cmd, in := waiting(t, "head -c 256M /dev/zero | tail -n 1 >/dev/null")
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(in, "go")
	in.Close()
	cmd.Wait()
	peakFile := "memory.max_usage_in_bytes"
	if V2() {
		peakFile = "memory.peak"
	}
	peak, err := os.ReadFile(filepath.Join(mem, peakFile))
	if err != nil {
		if V2() && errors.Is(err, os.ErrNotExist) {
			t.Logf("no memory.peak (Linux < 5.19): only the kill is checked")
		} else {
			t.Fatal(err)
		}
	} else if n, err := strconv.ParseInt(strings.TrimSpace(string(peak)), 10, 64); err != nil || n > limit || n == 0 {
		t.Errorf("%s = %q, want at most the limit %d", peakFile, peak, limit)
	} else {
		t.Logf("peak charge %d bytes, limit %d", n, limit)
	}
	if swapTotal(t) == 0 {
		events := "memory.oom_control" // v1: oom_kill since Linux 4.13
		if V2() {
			events = "memory.events"
		}
		text := readFile(t, mem, events)
		kills := -1
		for _, line := range strings.Split(text, "\n") {
			if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" {
				kills, _ = strconv.Atoi(f[1])
			}
		}
		switch {
		case kills < 0:
			t.Logf("%s does not count OOM kills:\n%s", events, text)
		case kills == 0:
			t.Errorf("a process that held 256 MB in a group of %d bytes, with no swap, was not killed:\n%s", limit, text)
		}
		if cmd.ProcessState.Success() {
			t.Errorf("the shell whose tail held 256 MB exited 0; want tail killed")
		}
	}
}

// swapTotal returns the machine's swap, in kB.
func swapTotal(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "SwapTotal:" {
			n, _ := strconv.ParseInt(f[1], 10, 64)
			return n
		}
	}
	return 0
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30 s", what)
		}
	}
}

// TestAddGroupAndSelf: AddGroup moves every process of a process group
// (a running job migrating to a node), and Self is where this process
// runs, so adding to it moves a process back.
func TestAddGroupAndSelf(t *testing.T) {
	g, _ := newGroup(t, Limits{CPUs: 1, Memory: 256 << 20})
	childFile := filepath.Join(t.TempDir(), "child")
	cmd, in := waiting(t, "sleep 60 & echo $! > "+childFile+"; wait")
	fmt.Fprintln(in, "go")
	var child int
	waitFor(t, "the child starts", func() bool {
		n, err := os.ReadFile(childFile)
		child, _ = strconv.Atoi(strings.TrimSpace(string(n)))
		return err == nil && child > 0
	})
	pgid := cmd.Process.Pid
	if err := g.AddGroup(pgid); err != nil {
		t.Fatal(err)
	}
	for _, d := range g.dirs {
		if !inGroup(t, pgid, d) || !inGroup(t, child, d) {
			t.Errorf("after AddGroup(%d), processes %d and %d are not both in %s", pgid, pgid, child, d)
		}
	}
	self, err := Self()
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range self.dirs {
		if !inGroup(t, os.Getpid(), d) {
			t.Errorf("Self() names %s; this process is not in it", d)
		}
	}
	if err := self.AddGroup(pgid); err != nil {
		t.Fatal(err)
	}
	for _, d := range self.dirs {
		if !inGroup(t, child, d) {
			t.Errorf("after moving back, process %d is not in %s", child, d)
		}
	}
	if pids := readFile(t, g.dirs[0], "cgroup.procs"); pids != "" {
		t.Errorf("the group still holds %q after its processes moved back", pids)
	}
	if err := g.AddGroup(1 << 22); err == nil {
		t.Errorf("AddGroup of a process group with no process: no error")
	}
}

// TestRemoveStale removes the groups whose maker no longer runs, and only
// those.
func TestRemoveStale(t *testing.T) {
	live, liveName := newGroup(t, Limits{CPUs: 1, Memory: 256 << 20})
	stale, staleName := newGroup(t, Limits{CPUs: 1, Memory: 256 << 20})
	// A PID that no process has: one that ran and was reaped.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	owners := map[string]int{liveName: os.Getpid(), staleName: gone.Process.Pid}
	if err := RemoveStale(func(name string) (int, bool) { pid, ok := owners[name]; return pid, ok }); err != nil {
		t.Fatal(err)
	}
	for _, d := range live.dirs {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("the group of a running maker was removed: %v", err)
		}
	}
	for _, d := range stale.dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the group %s of a maker that ended is still there (%v)", d, err)
		}
	}
}
