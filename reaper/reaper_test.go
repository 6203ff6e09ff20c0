package reaper

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A helper process (this test binary run again with helperEnv set)
// starts a group that ignores SIGTERM and has grandchildren, lists it with
// the shared watchdog, prints "PGID WATCHDOG-PID" and waits to be killed.
const helperEnv = "ORRERY_REAPER_HELPER"

// groupScript runs a shell and two grandchildren, all ignoring SIGTERM.
const groupScript = "trap '' TERM; sleep 300 & sleep 300 & wait"

func TestMain(m *testing.M) {
	if os.Getenv(helperEnv) == "1" {
		helper()
		return
	}
	os.Exit(m.Run())
}

func helper() {
	wd, err := Shared()
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	cmd := exec.Command("/bin/sh", "-c", groupScript)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := wd.Add(cmd.Process.Pid); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(cmd.Process.Pid, wd.PID())
	select {}
}

// members returns the live (not zombie) processes of group pgid.
func members(pgid int) []int {
	var pids []int
	eachProc(func(pid int, st stat) {
		if st.pgrp == pgid && st.state != 'Z' {
			pids = append(pids, pid)
		}
	})
	return pids
}

// waitGone waits up to d for group pgid to have no process, and returns
// those left.
func waitGone(pgid int, d time.Duration) []int {
	deadline := time.Now().Add(d)
	for {
		left := members(pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startGroup starts groupScript in a process group of its own, with env
// added to its environment, and waits until its three processes run. The
// group is killed when the test ends.
func startGroup(t *testing.T, env ...string) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", groupScript)
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait() // reap the leader
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	deadline := time.Now().Add(10 * time.Second)
	for len(members(pgid)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("group %d has %v, want 3 processes", pgid, members(pgid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pgid
}

// TestKilledOwner: kill -9 of a process that listed a group (which
// ignores SIGTERM, and has grandchildren): within 2 s no process of the
// group is left, and the watchdog has exited.
func TestKilledOwner(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(out).ReadString('\n')
	f := strings.Fields(line)
	if err != nil || len(f) != 2 {
		t.Fatalf("helper said %q, %v", line, err)
	}
	pgid, _ := strconv.Atoi(f[0])
	watchdog, _ := strconv.Atoi(f[1])
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL); syscall.Kill(watchdog, syscall.SIGKILL) })
	deadline := time.Now().Add(10 * time.Second)
	for len(members(pgid)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("group %d has %v, want 3 processes", pgid, members(pgid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, ok := StartTime(watchdog); !ok {
		t.Fatalf("the watchdog %d does not run", watchdog)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if left := waitGone(pgid, 2*time.Second); len(left) > 0 {
		t.Fatalf("2 s after kill -9 of its owner, processes %v of group %d still run", left, pgid)
	}
	if !waitExit(watchdog, 2*time.Second) {
		t.Errorf("the watchdog %d still runs after it killed the groups", watchdog)
	}
}

// waitExit waits up to d for process pid to end (or be a zombie).
func waitExit(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if _, ok := StartTime(pid); !ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRemovedGroupSpared: when the watchdog's pipe ends, it kills the
// groups still listed, not those removed from its list.
func TestRemovedGroupSpared(t *testing.T) {
	wd, err := Start()
	if err != nil {
		t.Fatal(err)
	}
	a, b, c := startGroup(t), startGroup(t), startGroup(t)
	for _, g := range []int{a, b, c} {
		if err := wd.Add(g); err != nil {
			t.Fatal(err)
		}
	}
	if err := wd.Remove(b); err != nil { // the middle of the list
		t.Fatal(err)
	}
	if err := wd.Remove(12345678); err != nil { // not listed: no effect
		t.Fatal(err)
	}
	if err := wd.Close(); err != nil {
		t.Fatal(err)
	}
	for _, g := range []int{a, c} {
		if left := waitGone(g, 2*time.Second); len(left) > 0 { // SIGKILL is sent, not yet taken
			t.Errorf("listed group %d: processes %v still run 2 s after the watchdog ended", g, left)
		}
	}
	if left := members(b); len(left) != 3 {
		t.Errorf("removed group %d: %v left, want its 3 processes spared", b, left)
	}
	if err := wd.Add(a); err == nil {
		t.Error("Add after Close: no error")
	}
}

// TestKill: Kill ends every process of a recorded group, grandchildren
// included, but not a group of the same ID that started after the
// record, nor one whose processes lack the recorded mark, nor one whose
// leader started at another time than recorded.
func TestKill(t *testing.T) {
	mark := fmt.Sprintf("ORRERY_REAPER_TEST=%d-%d", os.Getpid(), time.Now().UnixNano())
	pgid := startGroup(t, mark)
	g, ok := Lookup(pgid)
	if !ok || g.ID != pgid || g.Start == 0 {
		t.Fatalf("Lookup(%d) = %+v, %v", pgid, g, ok)
	}
	g.Mark = mark
	for _, other := range []struct {
		what string
		g    Group
	}{
		{"a group recorded after its processes started", Group{ID: pgid, Start: g.Start + 1e9, Mark: mark}}, // in ten years' clock ticks
		{"a group without the mark", Group{ID: pgid, Start: g.Start, Mark: mark + "-other"}},
		{"a group with no mark recorded", Group{ID: pgid, Start: g.Start}},
		{"a group whose leader started after the record", Group{ID: pgid, Start: g.Start - 1, Mark: mark}},
	} {
		if n, err := Kill([]Group{other.g}, time.Second); n != 0 || err != nil {
			t.Errorf("Kill of %s: %d killed, %v", other.what, n, err)
		}
		if left := members(pgid); len(left) != 3 {
			t.Fatalf("Kill of %s: group %d: %v, want its 3 processes spared", other.what, pgid, left)
		}
	}
	n, err := Kill([]Group{g}, 5*time.Second)
	if err != nil || n != 3 {
		t.Fatalf("Kill: %d killed, %v; want 3", n, err)
	}
	if left := members(pgid); len(left) > 0 {
		t.Fatalf("group %d: %v left", pgid, left)
	}
	if _, ok := Lookup(pgid); ok {
		t.Errorf("Lookup finds group %d after it was killed", pgid)
	}
}

// TestPIDNamespace: the identifier is the inode that /proc/self/ns/pid
// names.
func TestPIDNamespace(t *testing.T) {
	ns := PIDNamespace()
	if ns == "" {
		t.Fatal("no PID namespace")
	}
	link, err := os.Readlink("/proc/self/ns/pid")
	if err != nil || link != "pid:["+ns+"]" {
		t.Errorf("PIDNamespace() = %q, /proc/self/ns/pid -> %q (%v)", ns, link, err)
	}
}

// TestParseStat reads a stat line whose command name holds ") (".
func TestParseStat(t *testing.T) {
	line := "42 (a) (b) S 1 40 40 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"
	st, ok := parseStat([]byte(line))
	if !ok || st.state != 'S' || st.pgrp != 40 || st.start != 987654 {
		t.Fatalf("parseStat = %+v, %v", st, ok)
	}
	if _, ok := parseStat([]byte("42 (x) S 1")); ok {
		t.Error("a short line parsed")
	}
}
