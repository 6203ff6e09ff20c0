package sim

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gridFile is a grid cluster file of two clusters whose nodes the
// simulator can see.
const gridFile = `cluster monash ssh alice@head.monash.example
    node n1 ssh n1 cpus 2 speed 1.5
    node n2 ssh n2 job-limit 3
cluster here
    node fast job-limit 2 cpu-share 1.5 memory 1G
`

func TestParseClustersFromGrid(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "grid.cluster"), []byte(gridFile), 0o644)
	src := "clusters from grid.cluster wan 10Mb/s 150ms no-migration\ncluster lab\n node a\nend\nworkload w\n jobs 1 work 1\nend\ncase both clusters monash,here\n"
	sc, err := Parse(filepath.Join(dir, "s.scn"), strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	wan := Link{1.25e6, 0.15}
	want := []Cluster{
		{Name: "monash", WAN: wan, NoMigration: true, Nodes: []Node{
			{Name: "n1", CPUs: 2, Speed: 1.5, Thrash: DefaultThrash},
			{Name: "n2", CPUs: 1, Speed: 1, Thrash: DefaultThrash, Limit: 3},
		}},
		{Name: "here", WAN: wan, NoMigration: true, Nodes: []Node{
			{Name: "fast", CPUs: 2, Speed: 0.75, Memory: gib, Thrash: DefaultThrash, Limit: 2},
		}},
		{Name: "lab", Nodes: []Node{node("a", 1, 1, 0, 0)}},
	}
	if d := diff(sc.Clusters, want); d != "" {
		t.Error(d)
	}

	// A file of one cluster block gives its nodes to `cluster NAME from`.
	os.WriteFile(filepath.Join(dir, "one.cluster"), []byte("cluster here\n node fast cpus 2\n"), 0o644)
	src = "cluster lab from one.cluster\nworkload w\n jobs 1 work 1\nend\n"
	sc, err = Parse(filepath.Join(dir, "s.scn"), strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	if d := diff(sc.Clusters, []Cluster{{Name: "lab", Nodes: []Node{node("fast", 2, 1, 0, 0)}}}); d != "" {
		t.Error(d)
	}
}

func TestParseClustersFromGridBad(t *testing.T) {
	t.Setenv("HOME", t.TempDir())
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "grid.cluster"), []byte(gridFile), 0o644)
	os.WriteFile(filepath.Join(dir, "bad.cluster"), []byte("node a cpus 0\nnode b speedd 1\n"), 0o644)
	example, err := filepath.Abs("../examples/cluster/grid.cluster")
	if err != nil {
		t.Fatal(err)
	}
	const w = "workload w\n jobs 1 work 1\nend\n"
	for _, tc := range []struct{ name, src, want string }{
		{"several clusters for one", "cluster lab from grid.cluster\n" + w,
			"s.scn:1:18: cluster file grid.cluster has 2 clusters (monash, here): name each with `clusters from grid.cluster`"},
		{"a name taken", "cluster here\n node a\nend\nclusters from grid.cluster\n" + w,
			"s.scn:4:15: cluster here is already on line 1"},
		{"a node name taken", "cluster lab\n node n2\nend\nclusters from grid.cluster\n" + w,
			"s.scn:4:15: node n2 is already on line 2"},
		{"a cluster with no node line", "clusters from " + example + "\n" + w,
			"s.scn:1:15: cluster jerusalem of " + example + " has no node lines (its nodes join its head): the simulator needs its nodes"},
		{"every error of the file", "clusters from bad.cluster\n" + w,
			"s.scn:1:15: cluster file: " + filepath.Join(dir, "bad.cluster") + ":1:13: cpus \"0\": must be at least 1\n" +
				filepath.Join(dir, "s.scn") + ":1:15: cluster file: " + filepath.Join(dir, "bad.cluster") + ":2:8: unknown node attribute \"speedd\""},
		{"no file", "clusters from\n" + w, "s.scn:1:10: from needs a value"},
		{"no from", "clusters grid.cluster\n" + w, "s.scn:1:10: want clusters from FILE"},
		{"unknown attribute", "clusters from grid.cluster lnk 1Mb/s 1ms\n" + w, "s.scn:1:28: unknown clusters attribute \"lnk\" (did you mean link?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "s.scn"), strings.NewReader(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
}

// TestSimDoesNotImportTheRuntime: the simulator reads cluster files with
// package clusterfile, without the packages that run nodes.
func TestSimDoesNotImportTheRuntime(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		switch pkg {
		case "orrery/cluster", "orrery/agent", "orrery/task", "orrery/cgroup", "orrery/link", "orrery/dispatch", "orrery/store", "orrery/protocol", "net":
			t.Errorf("sim depends on %s", pkg)
		}
	}
}
