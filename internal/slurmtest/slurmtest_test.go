package slurmtest

import (
	"strings"
	"testing"
)

// TestConfigExtra: a line of Extra replaces the default line of the same
// key whatever its case, once; other lines are added; the rest of the
// default stays.
func TestConfigExtra(t *testing.T) {
	conf := config("h", "/d", []int{1, 2}, 3, "minjobage=5\n# a comment\n\nSchedulerParameters=defer,sched_min_interval=0\nSlurmctldDebug=error\n")
	count := func(prefix string) int {
		n := 0
		for _, l := range strings.Split(conf, "\n") {
			if strings.HasPrefix(strings.ToLower(l), strings.ToLower(prefix)) {
				n++
			}
		}
		return n
	}
	for prefix, want := range map[string]int{
		"MinJobAge=30": 0, "minjobage=5": 1, "MinJobAge": 1,
		"SchedulerParameters=defer,sched_min_interval=0": 1, "SlurmctldDebug=error": 1,
		"NodeName=h NodeAddr=127.0.0.1 CPUs=3 ": 1, "SlurmctldPort=1": 1, "# a comment": 0,
	} {
		if got := count(prefix); got != want {
			t.Errorf("%d lines start with %q, want %d:\n%s", got, prefix, want, conf)
		}
	}
	if def := config("h", "/d", []int{1, 2}, 3, ""); !strings.Contains(def, "MinJobAge=30\n") || strings.Count(def, "\n") != strings.Count(conf, "\n")-2 {
		t.Errorf("the default configuration changed:\n%s", def)
	}
}
