package reaper

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Group names a process group so that it can be found again after the
// process that started it is gone: its ID and its leader's start time.
// A process belongs to it when it is in a group of that ID and started no
// earlier than the leader: a group ID is reused only once every process
// of the old group has ended.
type Group struct {
	ID    int
	Start uint64 // the leader's start, in clock ticks after boot
}

// Lookup returns process group pgid, its start time read from its
// leader's /proc entry; false when the leader has ended.
func Lookup(pgid int) (Group, bool) {
	st, ok := readStat(pgid)
	if !ok || st.pgrp != pgid || st.state == 'Z' {
		return Group{}, false
	}
	return Group{ID: pgid, Start: st.start}, true
}

// Self returns this process's start time, in clock ticks after boot.
func Self() (uint64, bool) {
	st, ok := readStat(os.Getpid())
	return st.start, ok
}

// StartTime returns the start time of process pid, in clock ticks after
// boot; false when it does not run.
func StartTime(pid int) (uint64, bool) {
	st, ok := readStat(pid)
	if !ok || st.state == 'Z' {
		return 0, false
	}
	return st.start, true
}

// BootID returns an identifier of this boot of the machine: start times
// from another boot mean nothing.
func BootID() string {
	b, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	return strings.TrimSpace(string(b))
}

// Kill sends SIGKILL to every process of the groups, again until none is
// left (a process may fork meanwhile), and waits at most wait for them to
// end. It returns the processes it killed, and an error naming those
// still there at the end.
func Kill(groups []Group, wait time.Duration) (int, error) {
	if len(groups) == 0 {
		return 0, nil
	}
	want := map[int]uint64{}
	for _, g := range groups {
		if s, ok := want[g.ID]; !ok || g.Start < s {
			want[g.ID] = g.Start
		}
	}
	killed := map[int]bool{}
	deadline := time.Now().Add(wait)
	for {
		var left []int
		eachProc(func(pid int, st stat) {
			if start, ok := want[st.pgrp]; ok && st.start >= start && st.state != 'Z' {
				left = append(left, pid)
			}
		})
		if len(left) == 0 {
			return len(killed), nil
		}
		if time.Now().After(deadline) {
			return len(killed), fmt.Errorf("reaper: processes %v did not end within %s of SIGKILL", left, wait)
		}
		for _, pid := range left {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed[pid] = true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stat is what Kill needs of /proc/PID/stat.
type stat struct {
	state byte
	pgrp  int
	start uint64
}

func readStat(pid int) (stat, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return stat{}, false
	}
	return parseStat(b)
}

// parseStat reads the state (field 3), the process group (field 5) and
// the start time (field 22) of /proc/PID/stat. The command name (field 2)
// may hold spaces and ')': fields are counted after the last ')'.
func parseStat(b []byte) (stat, bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, false
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3
	if len(f) < 22-2 || len(f[0]) != 1 {
		return stat{}, false
	}
	pgrp, err1 := strconv.Atoi(string(f[5-3]))
	start, err2 := strconv.ParseUint(string(f[22-3]), 10, 64)
	return stat{state: f[0][0], pgrp: pgrp, start: start}, err1 == nil && err2 == nil
}

// eachProc calls fn with every process in /proc.
func eachProc(fn func(pid int, st stat)) {
	d, err := os.Open("/proc")
	if err != nil {
		return
	}
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil {
			continue
		}
		if st, ok := readStat(pid); ok {
			fn(pid, st)
		}
	}
}
