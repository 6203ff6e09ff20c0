// Package cgroup limits the CPU and memory of a group of processes with a
// Linux control group, v1 or v2, whichever the machine has. Orrery uses
// it to make the nodes of an embedded cluster as slow or as small as a
// cluster file says, so a heterogeneous cluster can be tried on one
// machine.
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"orrery/procfs"
)

// Root is where control groups are mounted.
const Root = "/sys/fs/cgroup"

// period is the CPU quota period, in microseconds.
const period = 100000

// Limits are what a group may use. Zero means no limit.
type Limits struct {
	CPUs   float64 // CPUs' worth of time per period (0.5: half a CPU)
	Memory int64   // bytes
}

// Group is a control group this process made.
type Group struct {
	dirs []string // one per controller (v1) or one (v2)
}

// V2 reports whether the machine uses the unified (v2) hierarchy.
func V2() bool {
	_, err := os.Stat(filepath.Join(Root, "cgroup.controllers"))
	return err == nil
}

// New makes the group name (a path below Orrery's own parent group) with
// the given limits.
func New(name string, l Limits) (*Group, error) {
	g := &Group{}
	if V2() {
		dir := filepath.Join(Root, "orrery", name)
		if err := enableV2(filepath.Join(Root, "orrery")); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		g.dirs = []string{dir}
		if l.CPUs > 0 {
			if err := write(dir, "cpu.max", fmt.Sprintf("%d %d", int64(l.CPUs*period), period)); err != nil {
				return nil, g.fail(err)
			}
		}
		if l.Memory > 0 {
			if err := write(dir, "memory.max", strconv.FormatInt(l.Memory, 10)); err != nil {
				return nil, g.fail(err)
			}
		}
		return g, nil
	}
	if l.CPUs > 0 {
		dir := filepath.Join(Root, "cpu", "orrery", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("cgroup: %w", err)
		}
		g.dirs = append(g.dirs, dir)
		if err := write(dir, "cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
			return nil, g.fail(err)
		}
		if err := write(dir, "cpu.cfs_quota_us", strconv.FormatInt(int64(l.CPUs*period), 10)); err != nil {
			return nil, g.fail(err)
		}
	}
	if l.Memory > 0 {
		dir := filepath.Join(Root, "memory", "orrery", name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, g.fail(fmt.Errorf("cgroup: %w", err))
		}
		g.dirs = append(g.dirs, dir)
		if err := write(dir, "memory.limit_in_bytes", strconv.FormatInt(l.Memory, 10)); err != nil {
			return nil, g.fail(err)
		}
	}
	return g, nil
}

// enableV2 turns on the cpu and memory controllers for dir's children.
func enableV2(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("cgroup: %w", err)
	}
	for _, d := range []string{Root, dir} {
		if err := write(d, "cgroup.subtree_control", "+cpu +memory"); err != nil {
			return err
		}
	}
	return nil
}

func write(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup: set %s: %w", file, err)
	}
	return nil
}

// fail removes what New made and returns err.
func (g *Group) fail(err error) error {
	g.Remove()
	return err
}

// Add moves a process into the group. Its children started later are in
// the group too.
func (g *Group) Add(pid int) error {
	for _, d := range g.dirs {
		if err := write(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// AddGroup moves every process of process group pgid into the group: a
// running job migrates to the node the group limits, and keeps its
// progress, or a job just started comes under its node's limits.
// Processes that end meanwhile are skipped; one a member forks while
// they move is moved too (its parent may have forked before it moved):
// the members are listed again until no new one shows.
func (g *Group) AddGroup(pgid int) error {
	var errs []error
	done := map[int]bool{}
	moved := 0
	// The leader first, at once (its PID is the group's): what it forks
	// from then on is born in the group.
	done[pgid] = true
	if err := g.Add(pgid); err == nil {
		moved++
	} else if !errors.Is(err, syscall.ESRCH) {
		errs = append(errs, err)
	}
	for round := 0; ; round++ {
		if round == addRounds {
			errs = append(errs, fmt.Errorf("cgroup: process group %d still forks new processes after %d rounds", pgid, addRounds))
			break
		}
		fresh := 0
		for _, pid := range procfs.Members(pgid) {
			if done[pid] {
				continue
			}
			done[pid] = true
			fresh++
			if err := g.Add(pid); err == nil {
				moved++
			} else if !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, err)
			}
		}
		if fresh == 0 {
			break
		}
	}
	if moved == 0 && len(errs) == 0 {
		return fmt.Errorf("%w: %d", ErrEnded, pgid)
	}
	return errors.Join(errs...)
}

// ErrEnded is AddGroup's error when the process group had no process
// left to move.
var ErrEnded = errors.New("cgroup: no process left in process group")

// addRounds bounds how often AddGroup lists a group's members again.
const addRounds = 8

// Lookup returns the group name that New made (in this process or
// another: a node's agent is told the group its jobs go in). It is an
// error when no controller holds it.
func Lookup(name string) (*Group, error) {
	if name == "" || filepath.IsAbs(name) || strings.Contains(name, "..") {
		return nil, fmt.Errorf("cgroup: %q is not a group's name", name)
	}
	var dirs []string
	if V2() {
		dirs = []string{filepath.Join(Root, "orrery", name)}
	} else {
		dirs = []string{filepath.Join(Root, "cpu", "orrery", name), filepath.Join(Root, "memory", "orrery", name)}
	}
	g := &Group{}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "cgroup.procs")); err == nil {
			g.dirs = append(g.dirs, d)
		}
	}
	if len(g.dirs) == 0 {
		return nil, fmt.Errorf("cgroup: no control group %s", name)
	}
	return g, nil
}

// Self returns the group this process runs in (its cpu and memory groups
// on v1). Processes added to it run as this one does; it must not be
// removed.
func Self() (*Group, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("cgroup: %w", err)
	}
	g := &Group{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case V2() && f[0] == "0":
			g.dirs = []string{filepath.Join(Root, f[2])}
		case !V2():
			for _, c := range strings.Split(f[1], ",") {
				if c == "cpu" || c == "memory" {
					g.dirs = append(g.dirs, filepath.Join(Root, c, f[2]))
				}
			}
		}
	}
	if len(g.dirs) == 0 {
		return nil, errors.New("cgroup: this process's groups are not in /proc/self/cgroup")
	}
	return g, nil
}

// Kill kills every process in the group (cgroup.kill on v2 where the
// kernel has it, else SIGKILL to each, again until none is left) and
// waits at most a few seconds for them to end: a node's jobs do not
// outlive it, even those that left their process group.
func (g *Group) Kill() error {
	for _, d := range g.dirs {
		write(d, "cgroup.kill", "1") // v2 (Linux 5.14); where absent, the loop below
	}
	deadline := time.Now().Add(killWait)
	for {
		left := 0
		for _, d := range g.dirs {
			pids, _ := readPids(d)
			for _, p := range pids {
				if pid, err := strconv.Atoi(p); err == nil && !zombie(p) && syscall.Kill(pid, syscall.SIGKILL) == nil {
					left++
				}
			}
		}
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cgroup: %d processes still in %s after SIGKILL", left, g.dirs[0])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// zombie reports whether process pid has ended and waits to be reaped
// (or is gone).
func zombie(pid string) bool {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) == 0 || f[0] == "Z"
}

// killWait bounds how long Kill waits for the group's processes to end.
const killWait = 5 * time.Second

// Remove deletes the group; processes still in it are moved to the parent
// first.
func (g *Group) Remove() error {
	var errs []error
	for _, d := range g.dirs {
		if pids, err := readPids(d); err == nil {
			for _, pid := range pids {
				write(filepath.Dir(d), "cgroup.procs", pid)
			}
		}
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("cgroup: %w", err))
		}
	}
	g.dirs = nil
	return errors.Join(errs...)
}

func readPids(dir string) ([]string, error) {
	f, err := os.Open(filepath.Join(dir, "cgroup.procs"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var pids []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if p := strings.TrimSpace(sc.Text()); p != "" {
			pids = append(pids, p)
		}
	}
	return pids, sc.Err()
}

// RemoveStale removes the groups below Orrery's parent groups that a
// process no longer running made: owner returns the PID a group's name
// records (and false for names it does not know), after killing the
// processes still in them. It is how a run cleans up after an earlier one
// that was killed.
func RemoveStale(owner func(name string) (int, bool)) error {
	parents := []string{filepath.Join(Root, "orrery")}
	if !V2() {
		parents = []string{filepath.Join(Root, "cpu", "orrery"), filepath.Join(Root, "memory", "orrery")}
	}
	var errs []error
	for _, parent := range parents {
		entries, err := os.ReadDir(parent)
		if err != nil {
			continue // no group was ever made here
		}
		for _, e := range entries {
			pid, ok := owner(e.Name())
			if !e.IsDir() || !ok {
				continue
			}
			if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err == nil {
				continue // its maker still runs
			}
			// Its maker was killed: so are the processes it left.
			g := &Group{dirs: []string{filepath.Join(parent, e.Name())}}
			if err := g.Kill(); err != nil {
				errs = append(errs, err)
			}
			if err := g.Remove(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}
