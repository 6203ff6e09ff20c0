// Package procfs reads what Orrery needs of Linux's /proc: which
// processes belong to a process group (an attempt's command runs in one
// of its own), and how much memory they hold.
package procfs

import (
	"bytes"
	"os"
	"strconv"
)

// GroupRSS returns the resident memory, in bytes, of each process group in
// groups: the sum of the resident set sizes of its processes, read from
// /proc in one pass. A group with no process left is absent from the
// result. Processes that end during the scan are skipped. Memory that
// processes share (libraries, copy-on-write pages after a fork) is counted
// once per process. Linux only: elsewhere the result is empty.
func GroupRSS(groups map[int]bool) map[int]int64 {
	out := map[int]int64{}
	page := int64(os.Getpagesize())
	each(func(_, pgrp int, rss int64) {
		if groups[pgrp] {
			out[pgrp] += rss * page
		}
	})
	return out
}

// Members returns the processes of process group pgid (none when it has
// no process left, or on a system without /proc).
func Members(pgid int) []int {
	var pids []int
	each(func(pid, pgrp int, _ int64) {
		if pgrp == pgid {
			pids = append(pids, pid)
		}
	})
	return pids
}

// each calls fn with every process's ID, process group and resident set
// size (in pages), read from /proc in one pass. Processes that end during
// the scan are skipped.
func each(fn func(pid, pgrp int, rss int64)) {
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
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue // the process ended
		}
		if pgrp, rss, ok := parseStat(b); ok {
			fn(pid, pgrp, rss)
		}
	}
}

// parseStat returns the process group and the resident set size (in
// pages) from the text of /proc/PID/stat. The second field, the command
// name in parentheses, may hold spaces and ')': the fields are counted
// after the last ')'.
func parseStat(b []byte) (pgrp int, rss int64, ok bool) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := bytes.Fields(b[i+1:]) // f[0] is field 3, the state
	if len(f) < 22 {
		return 0, 0, false
	}
	pgrp, err1 := strconv.Atoi(string(f[5-3]))
	rss, err2 := strconv.ParseInt(string(f[24-3]), 10, 64)
	return pgrp, rss, err1 == nil && err2 == nil
}
