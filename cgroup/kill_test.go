package cgroup

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// escaped starts, in g, a shell whose two children are one in its
// process group and one that left it (setsid), and returns their PIDs and
// the shell's.
func escaped(t *testing.T, g *Group) []int {
	t.Helper()
	pidFile := filepath.Join(t.TempDir(), "pids")
	cmd, in := waiting(t, "sleep 60 & a=$!; setsid sleep 60 & echo $a $! > "+pidFile+".tmp; mv "+pidFile+".tmp "+pidFile+"; wait")
	if err := g.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(in, "go")
	pids := []int{cmd.Process.Pid}
	waitFor(t, "the children start", func() bool {
		b, err := os.ReadFile(pidFile)
		if err != nil {
			return false
		}
		for _, f := range strings.Fields(string(b)) {
			n, _ := strconv.Atoi(f)
			pids = append(pids, n)
		}
		return true
	})
	for _, pid := range pids[1:] {
		t.Cleanup(func() { exec.Command("kill", "-9", strconv.Itoa(pid)).Run() })
	}
	return pids
}

// alive reports whether process pid runs (a zombie does not).
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

// TestKill: Kill ends every process in the group, one that left its
// process group included.
func TestKill(t *testing.T) {
	g, _ := newGroup(t, Limits{CPUs: 1, Memory: 256 << 20})
	pids := escaped(t, g)
	if err := g.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the group's processes end", func() bool {
		for _, pid := range pids {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

// TestRemoveStaleKills: the processes a killed run's group still holds
// end with it.
func TestRemoveStaleKills(t *testing.T) {
	g, name := newGroup(t, Limits{CPUs: 1, Memory: 256 << 20})
	pids := escaped(t, g)
	gone := exec.Command("true") // a maker that no longer runs
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := RemoveStale(func(n string) (int, bool) { return gone.Process.Pid, n == name }); err != nil {
		t.Fatal(err)
	}
	for _, pid := range pids {
		if alive(pid) {
			t.Errorf("process %d of a stale group still runs", pid)
		}
	}
}
