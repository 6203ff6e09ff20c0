package main

import (
	"os"
	"strings"
	"testing"
)

// TestQueriesMakeNothing: the commands that read an experiment, pointed
// at a directory that holds none, say so with exit status 2 and leave
// the directory as it was (no state database made in it).
func TestQueriesMakeNothing(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"status"}, {"jobs"}, {"log", "1"}, {"joblog"}, {"rerun", "--failed"}} {
		code, _, stderr := cli(t, append(args, "--state-dir", dir)...)
		if code != exitInvalid || !strings.Contains(stderr, "no experiment in "+dir) {
			t.Errorf("orrery %s on an empty directory: exit %d, stderr %q; want %d and \"no experiment in %s\"",
				strings.Join(args, " "), code, stderr, exitInvalid, dir)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 0 {
			t.Fatalf("orrery %s made %v in a directory that held no experiment", strings.Join(args, " "), entries)
		}
	}
}
