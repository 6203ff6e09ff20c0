package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefusesGridClusterFile: orrery run --cluster takes one cluster
// of nodes on this machine; a grid file is refused with one line that
// names its first cluster run cannot run, before anything is made.
func TestRunRefusesGridClusterFile(t *testing.T) {
	path := writePlan(t, "p.pln", "parameter x integer range from 1 to 2\ntask main\n\texec echo $x\nendtask\n")
	grid, err := filepath.Abs("../../examples/cluster/grid.cluster")
	if err != nil {
		t.Fatal(err)
	}
	code, _, stderr := cli(t, "run", "--cluster", grid, path)
	want := "orrery: " + grid + ":7:1: cluster monash: its head is reached by ssh; running over several clusters or over SSH (the grid) is not built yet"
	if code != exitInvalid || !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 {
		t.Errorf("exit %d, stderr:\n%s\nwant exit %d and one line starting %q", code, stderr, exitInvalid, want)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), ".orrery")); !os.IsNotExist(err) {
		t.Errorf("a refused cluster file made the state directory (%v)", err)
	}

	// Every error of a cluster file, each on its own line with its
	// position.
	bad := filepath.Join(t.TempDir(), "bad.cluster")
	os.WriteFile(bad, []byte("node a cpus 0\nnode b speedd 2\n"), 0o644)
	code, _, stderr = cli(t, "run", "--cluster", bad, path)
	want = "orrery: " + bad + ":1:13: cpus \"0\": must be at least 1\n" +
		"orrery: " + bad + ":2:8: unknown node attribute \"speedd\" (did you mean speed?)\n"
	if code != exitInvalid || stderr != want {
		t.Errorf("exit %d, stderr:\n%s\nwant exit %d and:\n%s", code, stderr, exitInvalid, want)
	}
}
