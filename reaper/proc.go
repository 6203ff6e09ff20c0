package reaper

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Group names a process group so that it can be found again after the
// process that started it is gone: its ID, its leader's start time, and a
// mark in its processes' environment. A process belongs to it when it is
// in a group of that ID, started no earlier than the leader (a group ID
// is reused only once every process of the old group has ended), and
// holds the mark: a group ID may be reused meanwhile by an unrelated
// group, whose processes lack it.
type Group struct {
	ID    int
	Start uint64 // the leader's start, in clock ticks after boot
	// Mark is an environment entry, NAME=VALUE, that the group's
	// processes were started with. Without one, nothing is killed.
	Mark string
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

// PIDNamespace returns an identifier of this process's PID namespace
// (the inode of /proc/self/ns/pid): process IDs from another namespace
// name other processes. It is "" when it cannot be read.
func PIDNamespace() string {
	fi, err := os.Stat("/proc/self/ns/pid")
	if err != nil {
		return ""
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return strconv.FormatUint(st.Ino, 10)
}

// Kill sends SIGKILL to every process of the groups, again until none is
// left (a process may fork meanwhile), and waits at most wait for them to
// end. It returns the processes it killed, and an error naming those
// still there at the end.
//
// A process is killed only when it is one of a group's (see Group) and
// its environment, read from /proc/PID/environ, holds the group's mark; a
// process whose environment cannot be read (another user's, or one that
// ran a set-user-ID program) is spared, and so is one that cannot be
// signalled (EPERM): neither is this user's. A group whose leader (the
// process whose ID is the group's) runs with another start time than
// recorded is another group: it is spared whole.
func Kill(groups []Group, wait time.Duration) (int, error) {
	want := map[int][]Group{}
	for _, g := range groups {
		if g.ID <= 1 || g.Mark == "" {
			continue
		}
		if st, ok := readStat(g.ID); ok && st.start != g.Start {
			continue // the ID is a new process's: the group ended
		}
		want[g.ID] = append(want[g.ID], g)
	}
	if len(want) == 0 {
		return 0, nil
	}
	type proc struct {
		pid   int
		start uint64
	}
	ours := map[proc]bool{} // whether each process seen holds its group's mark
	killed := map[int]bool{}
	deadline := time.Now().Add(wait)
	for {
		var left []int
		eachProc(func(pid int, st stat) {
			if st.state == 'Z' {
				return
			}
			p := proc{pid, st.start}
			mine, seen := ours[p]
			if !seen {
				for _, g := range want[st.pgrp] {
					if st.start >= g.Start && hasEnv(pid, g.Mark) {
						mine = true
						break
					}
				}
				ours[p] = mine
			}
			if mine {
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
			switch err := syscall.Kill(pid, syscall.SIGKILL); err {
			case nil:
				killed[pid] = true
			case syscall.EPERM: // not this user's: not ours
				if st, ok := readStat(pid); ok {
					ours[proc{pid, st.start}] = false
				}
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// maxEnviron bounds how much of a process's environment hasEnv reads.
const maxEnviron = 8 << 20

// hasEnv reports whether process pid's environment holds entry, as it
// was when the process started (or as the process has since rewritten
// it); false when it cannot be read.
func hasEnv(pid int, entry string) bool {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxEnviron))
	if err != nil {
		return false
	}
	for len(b) > 0 {
		e, rest, _ := bytes.Cut(b, []byte{0})
		if string(e) == entry {
			return true
		}
		b = rest
	}
	return false
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
