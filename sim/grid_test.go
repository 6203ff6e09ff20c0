package sim

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// traceLine is one event of a trace.
type traceLine struct {
	at   float64
	what string
	args []string
}

func parseTrace(t *testing.T, s string) []traceLine {
	t.Helper()
	var out []traceLine
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		f := strings.Fields(l)
		at, err := strconv.ParseFloat(f[0], 64)
		if err != nil || len(f) < 2 {
			t.Fatalf("trace line %q", l)
		}
		out = append(out, traceLine{at, f[1], f[2:]})
	}
	return out
}

// TestTwoLevels runs the golden grid: under mec and orrery a coordinator
// sends the jobs to the clusters' dispatchers over each cluster's WAN
// link, and each job is done once, when its output has crossed it back;
// the other policies, and a grid of one cluster, run one core over every
// node.
func TestTwoLevels(t *testing.T) {
	sc, err := Load(filepath.Join("..", "testdata", "sim", "golden.scn"))
	if err != nil {
		t.Fatal(err)
	}
	// far: 10 Mb/s, 50 ms one way; near: 100 Mb/s, 1 ms. Each job stages
	// 1 MB in, or none.
	wan := map[string]Link{"near": {12.5e6, 0.001}, "far": {1.25e6, 0.05}}
	for _, p := range sc.Policies {
		var trace bytes.Buffer
		if _, err := Simulate(sc, sc.Cases[0], p, 7, &trace); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		lines := parseTrace(t, trace.String())
		sent := map[string]float64{} // job attempt → when sent
		sentTo := map[string]string{}
		done := map[string]int{}
		twoLevel := false
		for _, l := range lines {
			switch l.what {
			case "send", "duplicate":
				twoLevel = true
				sent[l.args[0]+" "+l.args[1]], sentTo[l.args[0]+" "+l.args[1]] = l.at, l.args[2]
			case "start":
				// a1, or a1.2 for the head's second attempt of it.
				key := l.args[0] + " " + strings.Split(l.args[1], ".")[0]
				at, ok := sent[key]
				if twoLevel && !ok {
					t.Errorf("%s: %s started before it was sent", p, key)
				}
				if c := sentTo[key]; ok && (!strings.HasPrefix(l.args[2], c+"-") || l.at < at+wan[c].Latency) {
					t.Errorf("%s: %s sent to %s at %.3f, started on %s at %.3f: want there, the WAN's latency later",
						p, key, c, at, l.args[2], l.at)
				}
			case "done":
				done[l.args[0]]++
			}
		}
		if want := p == "mec" || p == "orrery"; twoLevel != want {
			t.Errorf("%s: two levels %v, want %v", p, twoLevel, want)
		}
		for i := 1; i <= 12; i++ {
			if n := done[fmt.Sprint("j", i)]; n != 1 {
				t.Errorf("%s: job %d done %d times", p, i, n)
			}
		}
	}
	// One cluster: one level, whatever the policy.
	one := *sc
	one.Clusters = sc.Clusters[:1]
	var trace bytes.Buffer
	if _, err := Simulate(&one, Case{Name: "near"}, "mec", 7, &trace); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(trace.String(), " send ") {
		t.Errorf("one cluster under mec ran on two levels:\n%s", trace.String())
	}
}

// TestTwoLevelsCheckpoint: a case whose jobs checkpoint stays on one
// level, where a running job may move to another cluster.
func TestTwoLevelsCheckpoint(t *testing.T) {
	sc, err := Load(filepath.Join("..", "testdata", "sim", "golden.scn"))
	if err != nil {
		t.Fatal(err)
	}
	c := sc.Cases[0]
	c.Checkpoint = true
	var trace bytes.Buffer
	if _, err := Simulate(sc, c, "orrery", 7, &trace); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(trace.String(), " send ") {
		t.Errorf("a checkpointing case ran on two levels")
	}
}
