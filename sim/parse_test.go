package sim

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// diff returns "" when got equals want, else both as indented JSON.
// (The module does not depend on go-cmp yet.)
func diff(got, want any) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	return "got:\n" + string(g) + "\nwant:\n" + string(w)
}

// node is a node with the file format's defaults.
func node(name string, cpus int, ghz float64, mem, swap int64) Node {
	return Node{Name: name, CPUs: cpus, Speed: ghz, Memory: mem, Swap: swap, Thrash: DefaultThrash}
}

const (
	mib = 1 << 20
	gib = 1 << 30
)

var goodScenarios = []struct {
	name string
	src  string
	want *Scenario
}{
	{"minimal defaults", `
cluster c
    node a
end
workload w
    jobs 3 work 10
end`, &Scenario{Name: "x", Runs: 5, Policies: policyNames,
		Clusters:  []Cluster{{Name: "c", Nodes: []Node{node("a", 1, 1, 0, 0)}}},
		Workloads: []Workload{{Name: "w", Order: "random", Groups: []JobGroup{{Count: 3, Work: Dist{"fixed", 10, 0}}}}},
		Cases:     []Case{{Name: "all"}}}},

	{"doc, units after use, ranges, links, cases", `# Two clusters.
#
# Second paragraph.   

# not doc
scenario mine   # the name
runs 3
policies fcfs,mosix orrery
cluster c1 link 100Mb/s 0.1ms wan 12.5MB/s 150ms
    nodes 2 cpus 2 speed 500MHz memory 256M swap 256M   # c1-1, c1-2
    node big cpus 8 speed 1.2GHz memory 1.5G thrash 50 job-limit 4
	nodes 3 speed 0.4GHz..0.8 # c1-3..c1-5
end
cluster c2 link 1Gb/s 2s no-migration
    nodes 1 speed 0.4..0.8
end
workload cpu order given
    jobs 8 work 1000u memory 2M
    jobs 2 work uniform 10u 20 memory uniform 10M 200M stage-in 1K stage-out 1.5K predictable 0.9
    jobs 1 work lognormal 1701.8 0.5 memory lognormal 100M 0.25
    jobs 1 work fixed 5u memory fixed 1G
end
unit 0.4
case one workload cpu clusters c2 per-cpu 1 no-migration paper fcfs=1300 mosix=921
case weighted clusters c1,c2 per-cpu 2.5,4 checkpoint policies mec,orrery paper mec=14.2h,orrery=2min
`, &Scenario{Name: "mine", Doc: "Two clusters.\n\nSecond paragraph.", Runs: 3,
		Policies: []string{"fcfs", "mosix", "orrery"},
		Clusters: []Cluster{
			{Name: "c1", Link: Link{12.5e6, 1e-4}, WAN: Link{12.5e6, 0.15}, Nodes: []Node{
				node("c1-1", 2, 0.5, 256*mib, 256*mib), node("c1-2", 2, 0.5, 256*mib, 256*mib),
				{Name: "big", CPUs: 8, Speed: 1.2, Memory: 1.5 * gib, Thrash: 50, Limit: 4},
				node("c1-3", 1, 0.4, 0, 0), node("c1-4", 1, 0.6000000000000001, 0, 0), node("c1-5", 1, 0.8, 0, 0)}},
			{Name: "c2", Link: Link{1.25e8, 2}, NoMigration: true, Nodes: []Node{node("c2-1", 1, 0.6000000000000001, 0, 0)}},
		},
		Workloads: []Workload{{Name: "cpu", Order: "given", Groups: []JobGroup{
			{Count: 8, Work: Dist{"fixed", 400, 0}, Memory: Dist{"fixed", 2 * mib, 0}},
			{Count: 2, Work: Dist{"uniform", 4, 20}, Memory: Dist{"uniform", 10 * mib, 200 * mib},
				StageIn: 1024, StageOut: 1536, Predictable: 0.9},
			{Count: 1, Work: Dist{"lognormal", 1701.8, 0.5}, Memory: Dist{"lognormal", 100 * mib, 0.25}},
			{Count: 1, Work: Dist{"fixed", 2, 0}, Memory: Dist{"fixed", gib, 0}},
		}}},
		Cases: []Case{
			{Name: "one", Workload: "cpu", Clusters: []string{"c2"}, PerCPU: []float64{1}, NoMigration: true,
				Paper: map[string]float64{"fcfs": 1300, "mosix": 921}},
			{Name: "weighted", Clusters: []string{"c1", "c2"}, PerCPU: []float64{2.5, 4}, Checkpoint: true,
				Policies: []string{"mec", "orrery"}, Paper: map[string]float64{"mec": 14.2 * 3600, "orrery": 120}},
		}}},
}

func TestParseGood(t *testing.T) {
	for _, tt := range goodScenarios {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse("dir/x.scn", strings.NewReader(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if d := diff(got, tt.want); d != "" {
				t.Error(d)
			}
		})
	}
}

func TestParseClusterFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "lab.cluster"), []byte(
		"node fast job-limit 2 cpu-share 1.5 memory 1G\nnode slow cpus 4 speed 0.5\nnode plain\n"), 0o644)
	src := "cluster lab from lab.cluster wan 10Mb/s 150ms\nworkload w\n jobs 1 work 1\nend\n"
	path := filepath.Join(dir, "s.scn")
	os.WriteFile(path, []byte(src), 0o644)
	sc, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []Cluster{{Name: "lab", WAN: Link{1.25e6, 0.15}, Nodes: []Node{
		{Name: "fast", CPUs: 2, Speed: 0.75, Memory: gib, Thrash: DefaultThrash, Limit: 2},
		{Name: "slow", CPUs: 4, Speed: 0.5, Thrash: DefaultThrash},
		{Name: "plain", CPUs: 1, Speed: 1, Thrash: DefaultThrash},
	}}}
	if d := diff(sc.Clusters, want); d != "" {
		t.Error(d)
	}
	if sc.Name != "s" {
		t.Errorf("name %q, want s (from the file name)", sc.Name)
	}
	twice := "cluster lab from lab.cluster\ncluster lab2 from lab.cluster\nworkload w\n jobs 1 work 1\nend\n"
	_, err = Parse(path, strings.NewReader(twice))
	if want := ":2:19: node fast is already on cluster lab (lab.cluster)"; err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("two clusters from one file: %v, want %s", err, want)
	}
}

// base is a valid scenario that the bad inputs below add a line to.
const base = "cluster c\n node a\nend\nworkload w\n jobs 1 work 1\nend\n" // lines 1-6

var badScenarios = []struct {
	name, src, want string
}{
	{"unknown statement", "clustr c\n", "x.scn:1:1: unknown statement \"clustr\" (did you mean cluster?)"},
	{"unknown statement far", base + "frobnicate\n", "x.scn:7:1: unknown statement \"frobnicate\" (want scenario"},
	{"unknown node attribute", "cluster c\n node a memroy 1G\nend\n", "x.scn:2:9: unknown node attribute \"memroy\" (did you mean memory?)"},
	{"unknown block line", "cluster c\n nod a\nend\n", "x.scn:2:2: unknown cluster line \"nod\" (did you mean node?)"},
	{"jobs outside workload", "jobs 1 work 1\n", "x.scn:1:1: jobs outside a workload block"},
	{"jobs in cluster", "cluster c\n jobs 1 work 1\nend\n", "x.scn:2:2: unknown cluster line \"jobs\""},
	{"end alone", base + "end\n", "x.scn:7:1: end without a cluster or workload block"},
	{"missing end at eof", "workload w\n jobs 1 work 1\n", "x.scn:1:1: workload w has no end"},
	{"missing end before next", "cluster c\n node a\nworkload w\n jobs 1 work 1\nend\n", "x.scn:1:1: cluster c has no end"},
	{"zero cpus", "cluster c\n node a cpus 0\nend\n", "x.scn:2:14: cpus \"0\": must be at least 1"},
	{"bad cpus", "cluster c\n node a cpus two\nend\n", "x.scn:2:14: cpus \"two\": want a whole number"},
	{"zero nodes", "cluster c\n nodes 0\nend\n", "x.scn:2:8: nodes \"0\": must be at least 1"},
	{"zero jobs", "workload w\n jobs 0 work 1\nend\n", "x.scn:2:7: jobs \"0\": must be at least 1"},
	{"no work", "workload w\n jobs 2 memory 1M\nend\n", "x.scn:2:2: jobs needs work"},
	{"zero work", "workload w\n jobs 2 work 0\nend\n", "x.scn:2:14: work must be above 0"},
	{"bad work", "workload w\n jobs 2 work 10x\nend\n", "x.scn:2:14: work \"10x\": want GHz·s"},
	{"uniform reversed", "workload w\n jobs 2 work uniform 5 2\nend\n", "x.scn:2:24: work uniform 5 2: the upper end is below the lower"},
	{"missing value", "workload w\n jobs 2 work uniform 5\nend\n", "x.scn:2:9: work needs a value"},
	{"predictable above 1", "workload w\n jobs 2 work 1 predictable 1.5\nend\n", "x.scn:2:28: predictable \"1.5\": want a share from 0 to 1"},
	{"bad size", "cluster c\n node a memory lots\nend\n", "x.scn:2:16: memory \"lots\": want a size"},
	{"negative size", "cluster c\n node a memory -1M\nend\n", "x.scn:2:16: memory \"-1M\": want a size"},
	{"bad speed", "cluster c\n node a speed 5Hz\nend\n", "x.scn:2:15: speed \"5Hz\": want a speed"},
	{"speed range on one node", "cluster c\n node a speed 1..2\nend\n", "x.scn:2:15: speed \"1..2\": a range of speeds needs `nodes N`"},
	{"bad bandwidth", "cluster c link 100Mbps 1ms\n node a\nend\n", "x.scn:1:16: link bandwidth \"100Mbps\": want a bandwidth"},
	{"latency without unit", "cluster c link 100Mb/s 0.1\n node a\nend\n", "x.scn:1:24: link latency \"0.1\": want a time"},
	{"link without latency", "cluster c link 100Mb/s\n node a\nend\n", "x.scn:1:11: link needs a value"},
	{"cluster no nodes", base + "cluster d\nend\n", "x.scn:7:1: cluster d has no nodes"},
	{"workload no jobs", base + "workload v\nend\n", "x.scn:7:1: workload v has no jobs"},
	{"duplicate cluster", base + "cluster c\n node b\nend\n", "x.scn:7:9: cluster c is already on line 1"},
	{"duplicate node", "cluster c\n nodes 2\n node c-2\nend\n", "x.scn:3:7: node c-2 is already on line 2"},
	{"duplicate node in another cluster", base + "cluster d\n node a\nend\n", "x.scn:8:7: node a is already on line 2 (node names are unique in a scenario)"},
	{"duplicate case", base + "case a\ncase a\n", "x.scn:8:6: case a is already on line 7"},
	{"bad name", "cluster c,d\n node a\nend\n", "x.scn:1:9: bad name \"c,d\""},
	{"runs twice", base + "runs 2\nruns 3\n", "x.scn:8:1: runs is already on line 7"},
	{"runs zero", base + "runs 0\n", "x.scn:7:6: runs \"0\": must be at least 1"},
	{"runs extra", base + "runs 2 3\n", "x.scn:7:8: unexpected \"3\" after runs 2"},
	{"unknown policy", base + "policies fcfs mosx\n", "x.scn:7:15: unknown policy \"mosx\" (did you mean mosix?)"},
	{"case unknown cluster", base + "case a clusters c,e\n", "x.scn:7:17: case a: no cluster \"e\""},
	{"case unknown workload", base + "case a workload ww\n", "x.scn:7:17: case a: no workload \"ww\" (did you mean w?)"},
	{"case unknown policy", base + "case a policies fcfs,mec,bogus\n", "x.scn:7:17: unknown policy \"bogus\""},
	{"case unknown attribute", base + "case a percpu 2\n", "x.scn:7:8: unknown case attribute \"percpu\" (did you mean per-cpu?)"},
	{"per-cpu count", base + "cluster d\n node b\nend\ncase a per-cpu 1,2,3\n", "x.scn:10:16: case a: per-cpu has 3 values for 2 clusters"},
	{"per-cpu count named", base + "cluster d\n node b\nend\ncase a clusters d per-cpu 1,2\n", "x.scn:10:27: case a: per-cpu has 2 values for 1 clusters"},
	{"per-cpu zero", base + "case a per-cpu 0\n", "x.scn:7:16: per-cpu \"0\": must be above 0"},
	{"paper unknown policy", base + "case a paper fcfs=1 enfuzion=2\n", "x.scn:7:21: paper: unknown policy \"enfuzion\""},
	{"paper bad time", base + "case a paper fcfs=soon\n", "x.scn:7:14: paper fcfs \"soon\": want a time"},
	{"paper empty", base + "case a paper\n", "x.scn:7:8: paper needs POLICY=SECONDS"},
	{"attribute twice", base + "case a checkpoint checkpoint\n", "x.scn:7:19: checkpoint is given twice"},
	{"bad order", "workload w order sorted\n jobs 1 work 1\nend\n", "x.scn:1:18: order \"sorted\": want random or given"},
	{"no cluster", "workload w\n jobs 1 work 1\nend\n", "x.scn:1:1: no cluster"},
	{"no workload", "cluster c\n node a\nend\n", "x.scn:1:1: no workload"},
	{"missing cluster file", "cluster c from nothere.cluster\n", "x.scn:1:16: cluster file: open nothere.cluster"},
	{"errors in order", "cluster c\n node a cpus 0\n node b speed x\nend\n", "x.scn:2:14: cpus \"0\": must be at least 1\nx.scn:3:15: speed"},
}

func TestParseBad(t *testing.T) {
	for _, tt := range badScenarios {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := Parse("x.scn", strings.NewReader(tt.src))
			if err == nil {
				t.Fatalf("no error; got %+v", sc)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tt.want)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Errorf("error is a %T, not an ErrorList", err)
			}
		})
	}
}

// TestParseErrorLimit checks that a file full of mistakes gives at most
// maxErrors of them.
func TestParseErrorLimit(t *testing.T) {
	src := strings.Repeat("bogus\n", 100)
	_, err := Parse("x.scn", strings.NewReader(src))
	if n := strings.Count(err.Error(), "\n") + 1; n != maxErrors {
		t.Errorf("%d errors, want %d", n, maxErrors)
	}
}

func TestCheckPolicy(t *testing.T) {
	for _, name := range policyNames {
		if err := CheckPolicy(name); err != nil {
			t.Error(err)
		}
	}
	if err := CheckPolicy("fcfs+mosx"); err == nil || !strings.Contains(err.Error(), "did you mean fcfs+mosix?") {
		t.Errorf("CheckPolicy(fcfs+mosx) = %v", err)
	}
}

// TestDocExample parses the example of docs/simulator.md.
func TestDocExample(t *testing.T) {
	doc, err := os.ReadFile("../docs/simulator.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(doc), "### Example: my two clusters\n")
	var src strings.Builder
	for _, line := range strings.Split(rest, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if text, ok := strings.CutPrefix(line, "    "); ok || line == "" {
			src.WriteString(text + "\n")
		}
	}
	sc, err := Parse("my.scn", strings.NewReader(src.String()))
	if err != nil {
		t.Fatalf("%v\n%s", err, src.String())
	}
	if sc.Name != "my-two-clusters" || len(sc.Clusters) != 2 || len(sc.Cases) != 6 || len(sc.Clusters[1].Nodes) != 5 {
		t.Errorf("parsed %+v", sc)
	}
}
