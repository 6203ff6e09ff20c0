package procfs

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestGroupRSSOfThisProcess scans /proc for the test's own process group,
// which holds at least the test process and the 20 MiB it has touched.
func TestGroupRSSOfThisProcess(t *testing.T) {
	buf := make([]byte, 20<<20)
	for i := 0; i < len(buf); i += 512 {
		buf[i] = 1
	}
	own := statmRSS(t)
	me := syscall.Getpgrp()
	const none = 1 << 30 // above any pid_max: never a group
	got := GroupRSS(map[int]bool{me: true, none: true})
	runtime.KeepAlive(buf)
	if _, ok := got[none]; ok || len(got) != 1 {
		t.Errorf("groups %v: want only %d", got, me)
	}
	if rss := got[me]; rss < 20<<20 || rss < own*3/4 {
		t.Errorf("group %d: %d bytes resident; this process alone has %d, 20 MiB of them touched by the test", me, rss, own)
	}
}

// statmRSS returns this process's resident memory from /proc/self/statm.
func statmRSS(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b))
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return pages * int64(os.Getpagesize())
}

func TestParseStat(t *testing.T) {
	tail := " 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24"
	stat := func(comm string, pgrp int) string {
		return fmt.Sprintf("4242 (%s) S 1 %d 7 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 1000 9000000 777%s\n", comm, pgrp, tail)
	}
	for _, c := range []struct {
		text      string
		pgrp      int
		rss       int64
		ok        bool
		describes string
	}{
		{stat("sleep", 55), 55, 777, true, "a plain name"},
		{stat("a b) 9 9 (c", 56), 56, 777, true, "a name with spaces and parentheses"},
		{stat(")", 57), 57, 777, true, "a name that is a parenthesis"},
		{"4242 (sh) S 1 55 7", 0, 0, false, "a short line"},
		{"garbage", 0, 0, false, "no parenthesis"},
	} {
		pgrp, rss, ok := parseStat([]byte(c.text))
		if pgrp != c.pgrp || rss != c.rss || ok != c.ok {
			t.Errorf("%s: parseStat(%q) = %d, %d, %v; want %d, %d, %v", c.describes, c.text, pgrp, rss, ok, c.pgrp, c.rss, c.ok)
		}
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		t.Fatal(err)
	}
	if pgrp, rss, ok := parseStat(b); !ok || pgrp != syscall.Getpgrp() || rss <= 0 {
		t.Errorf("own stat %q: pgrp %d, rss %d, ok %v", b, pgrp, rss, ok)
	}
}

// TestMembers finds this process in its own process group.
func TestMembers(t *testing.T) {
	pids := Members(syscall.Getpgrp())
	found := false
	for _, p := range pids {
		found = found || p == os.Getpid()
	}
	if !found {
		t.Errorf("members of group %d: %v, want this process (%d) among them", syscall.Getpgrp(), pids, os.Getpid())
	}
	if got := Members(1 << 30); len(got) != 0 {
		t.Errorf("members of a group that cannot exist: %v", got)
	}
}
