package cluster

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	s, err := Parse("c", strings.NewReader("# two nodes\nnode fast job-limit 2 cpu-share 1.5 memory 1G\n\nnode slow cpu-share 0.25 # quarter\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []NodeSpec{
		{Name: "fast", JobLimit: 2, CPUs: 2, CPUShare: 1.5, Memory: 1 << 30, Speed: 0.75},
		{Name: "slow", CPUs: 1, CPUShare: 0.25, Speed: 0.25},
	}
	if len(s.Nodes) != 2 || s.Nodes[0] != want[0] || s.Nodes[1] != want[1] {
		t.Fatalf("got %+v, want %+v", s.Nodes, want)
	}
	if !s.Nodes[1].Limited() {
		t.Error("a node with a CPU share is not Limited")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nod a\n", `c:1:1: unknown statement "nod" (did you mean node?)`},
		{"node a\nnode a\n", "c:2:6: node a is already on line 1"},
		{"node a cpu-share\n", "c:1:8: cpu-share needs a value"},
		{"node a cpu-share -1\n", `c:1:18: cpu-share "-1": must be above 0`},
		{"node a memory 12X\n", `c:1:15: memory "12X": want a size such as 512M`},
		{"node a speedy 2\n", `c:1:8: unknown node attribute "speedy" (did you mean speed?)`},
		{"# nothing\n", "c:1:1: no nodes"},
	} {
		_, err := Parse("c", strings.NewReader(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q…", tc.in, err, tc.want)
		}
	}
}

func TestParseOneClusterBlock(t *testing.T) {
	// A file of one cluster block whose nodes run on this machine is
	// what a file with no cluster line is.
	s, err := Parse("c", strings.NewReader("cluster here lease 2h\n    node fast job-limit 2 cpu-share 1.5\n    node slow\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []NodeSpec{{Name: "fast", JobLimit: 2, CPUs: 2, CPUShare: 1.5, Speed: 0.75}, {Name: "slow"}}
	if len(s.Nodes) != 2 || s.Nodes[0] != want[0] || s.Nodes[1] != want[1] {
		t.Fatalf("got %+v, want %+v", s.Nodes, want)
	}
}

// TestLoadRefusesGrid: orrery run --cluster takes one cluster of nodes
// on this machine; a grid, or SSH, is refused with one line that names
// the first cluster it cannot run, never ignored.
func TestLoadRefusesGrid(t *testing.T) {
	const notYet = "running over several clusters or over SSH (the grid) is not built yet"
	for _, tc := range []struct{ name, in, want string }{
		{"several clusters", "cluster a\n node x\ncluster b\n node y\n",
			"c:3:1: cluster b: a second cluster in the file; " + notYet},
		{"head over ssh", "cluster a ssh u@h\n node x\n", "c:1:1: cluster a: its head is reached by ssh; " + notYet},
		{"node over ssh", "node x\nnode y ssh h\n", "c:2:1: cluster local: node y is reached by ssh; " + notYet},
		{"listen", "cluster a listen h:7443\n node x\n", "c:1:1: cluster a: listen h:7443 is for a cluster's head; " + notYet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("c", strings.NewReader(tc.in))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %v, want one line starting %q", err, tc.want)
			}
		})
	}
	_, err := Load("../examples/cluster/grid.cluster")
	want := "../examples/cluster/grid.cluster:7:1: cluster monash: its head is reached by ssh; " + notYet
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load(grid.cluster) = %v, want %q…", err, want)
	}
}
