package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestGridClusterThatCannotStart runs the grid file of issue 14, whose
// two SSH clusters cannot be reached from here: each says so in one line
// that names it, and the third cluster, whose head runs on this machine,
// runs every job.
func TestGridClusterThatCannotStart(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "p.pln"), "parameter x integer range from 1 to 4\ntask main\n\texecute echo $x\nendtask\n")
	grid, err := filepath.Abs("../../examples/cluster/grid.cluster")
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := e2eRun(t, dir, time.Minute, "run", "--cluster", grid, "p.pln")
	if code != exitOK {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr)
	}
	for _, c := range []string{"monash", "jerusalem"} {
		var lines []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.HasPrefix(l, "orrery: cluster "+c+": ") {
				lines = append(lines, l)
			}
		}
		if len(lines) != 1 {
			t.Errorf("cluster %s: %d lines about it, want 1:\n%s", c, len(lines), stderr)
		}
	}
	if !strings.Contains(stdout+stderr, "4 done, 0 failed") {
		t.Errorf("the cluster here did not run the jobs:\n%s%s", stdout, stderr)
	}
}

// TestRunBadClusterFile: every error of a cluster file is said, each on
// its own line with its position, before anything is made.
func TestRunBadClusterFile(t *testing.T) {
	path := writePlan(t, "p.pln", "parameter x integer range from 1 to 2\ntask main\n\texec echo $x\nendtask\n")
	// Every error of a cluster file, each on its own line with its
	// position.
	bad := filepath.Join(t.TempDir(), "bad.cluster")
	os.WriteFile(bad, []byte("node a cpus 0\nnode b speedd 2\n"), 0o644)
	code, _, stderr := cli(t, "run", "--cluster", bad, path)
	want := "orrery: " + bad + ":1:13: cpus \"0\": must be at least 1\n" +
		"orrery: " + bad + ":2:8: unknown node attribute \"speedd\" (did you mean speed?)\n"
	if code != exitInvalid || stderr != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit %d and:\n%s", code, stderr, exitInvalid, want)
	}
}
