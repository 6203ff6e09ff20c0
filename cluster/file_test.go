package cluster

import (
	"strings"
	"testing"

	"orrery/clusterfile"
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

// TestLoadRefusesGrid: the embedded cluster takes one cluster of nodes
// on this machine; a grid, SSH or listen is refused with one line that
// names the first cluster it cannot run, never ignored (a grid runs
// through its heads).
func TestLoadRefusesGrid(t *testing.T) {
	const notYet = "the embedded cluster runs the nodes of one cluster on this machine; a grid"
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

// TestForHead: a head takes its cluster whole — the nodes on its own
// machine as an embedded cluster, the nodes over SSH as their lines —
// whatever the cluster's own ssh and listen.
func TestForHead(t *testing.T) {
	g, err := clusterfile.Parse("c", strings.NewReader("cluster a ssh u@h listen 127.0.0.1:7443\n"+
		" node x job-limit 2 cpu-share 0.5\n node y ssh bob@n1:2222 job-limit 3 memory 1G\n node z ssh n2\n"))
	if err != nil {
		t.Fatal(err)
	}
	local, overSSH := ForHead(g.Clusters[0])
	want := NodeSpec{Name: "x", JobLimit: 2, CPUs: 1, CPUShare: 0.5, Speed: 0.5}
	if len(local.Nodes) != 1 || local.Nodes[0] != want {
		t.Errorf("local nodes %+v, want [%+v]", local.Nodes, want)
	}
	if len(overSSH) != 2 || overSSH[0].Name != "y" || overSSH[1].Name != "z" {
		t.Fatalf("nodes over SSH %+v, want y and z", overSSH)
	}
	if e := overSSH[0].SSH; e == nil || e.User != "bob" || e.Host != "n1" || e.Port != 2222 || overSSH[0].JobLimit != 3 || overSSH[0].Memory != 1<<30 {
		t.Errorf("node y: %+v (ssh %+v)", overSSH[0], overSSH[0].SSH)
	}
	if e := overSSH[1].SSH; e == nil || e.User != "" || e.Host != "n2" {
		t.Errorf("node z: ssh %+v", e)
	}
	// The embedded cluster itself still refuses such a cluster.
	if _, err := FromGrid(g); err == nil || !strings.Contains(err.Error(), "cluster a: its head is reached by ssh") {
		t.Errorf("FromGrid = %v", err)
	}
}
