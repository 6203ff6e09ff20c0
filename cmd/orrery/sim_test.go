package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"orrery/sim"
)

// simBuiltins are the built-in scenarios `sim --list` must show.
var simBuiltins = []string{"paper-fig3", "paper-fig4", "paper-fig5", "paper-table1", "paper-table2", "paper-table4"}

func TestSimList(t *testing.T) {
	out := mustRun(t, "sim", "--list")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(simBuiltins) {
		t.Fatalf("sim --list printed %d lines, want %d:\n%s", len(lines), len(simBuiltins), out)
	}
	for i, name := range simBuiltins {
		if f := strings.Fields(lines[i]); f[0] != name || len(f) < 3 || f[1] != "Paper" {
			t.Errorf("line %d: %q, want %s and its summary", i+1, lines[i], name)
		}
	}
}

func TestSimPrint(t *testing.T) {
	out := mustRun(t, "sim", "--print", "paper-table4")
	sc, err := sim.Parse("printed.scn", strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if sc.Name != "paper-table4" || !strings.Contains(out, "Assumed") {
		t.Errorf("sim --print paper-table4 printed scenario %q:\n%s", sc.Name, out)
	}
}

// TestSimErrors checks the errors that stop `orrery sim` before anything
// runs: each is one clear message and exit status 2.
func TestSimErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.scn")
	os.WriteFile(bad, []byte("cluster c\n node a memroy 1G\nend\nworkload w\n jobs 0 work 1\nend\n"), 0o644)
	for _, tt := range []struct {
		name string
		args []string
		want []string // each a line of stderr, as a regular expression
	}{
		{"bad file", []string{bad}, []string{
			regexp.QuoteMeta(bad) + `:2:9: unknown node attribute "memroy" \(did you mean memory\?\)`,
			regexp.QuoteMeta(bad) + `:5:7: jobs "0": must be at least 1`}},
		{"missing file", []string{filepath.Join(dir, "none.scn")}, []string{`orrery: open .*none.scn: no such file`}},
		{"unknown built-in", []string{"paper-tabel1"}, []string{
			`orrery: unknown scenario "paper-tabel1" \(did you mean paper-table1\?\) \(built-in: paper-fig3, .*paper-table4\)`}},
		{"unknown policy", []string{"--policy", "fcfs,mosx", "paper-table1"}, []string{
			`orrery: --policy: unknown policy "mosx" \(did you mean mosix\?\)`}},
		{"unknown case", []string{"paper-table1", "--case", "cpu-c3"}, []string{
			`orrery: --case: scenario paper-table1 has no case "cpu-c3" \(it has cpu-c1, cpu-c2, .*\)`}},
		{"bad runs", []string{"--runs", "0", "paper-table1"}, []string{`orrery: --runs must be at least 1`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := cli(t, append([]string{"sim"}, tt.args...)...)
			if code != exitInvalid || stdout != "" {
				t.Errorf("exit %d, stdout %q; want exit %d and no output", code, stdout, exitInvalid)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if len(lines) != len(tt.want) {
				t.Fatalf("stderr has %d lines, want %d:\n%s", len(lines), len(tt.want), stderr)
			}
			for i, re := range tt.want {
				if !regexp.MustCompile("^" + re).MatchString(lines[i]) {
					t.Errorf("stderr line %d:\n%s\nwant it to match\n%s", i+1, lines[i], re)
				}
			}
		})
	}
}

func TestSimUsage(t *testing.T) {
	for _, args := range [][]string{{"sim"}, {"sim", "a", "b"}, {"sim", "--list", "paper-fig3"}, {"sim", "--bogus", "paper-fig3"}} {
		if code, _, stderr := cli(t, args...); code != exitInvalid || !strings.Contains(stderr, "Usage: orrery sim") {
			t.Errorf("orrery %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr)
		}
	}
	if code, _, _ := cli(t, "sim", "-h"); code != exitOK {
		t.Errorf("sim -h: exit %d", code)
	}
}

// TestSimTableFormat checks the table without the engine.
func TestSimTableFormat(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	var b bytes.Buffer
	printSimTable(&b, []simResult{
		{Case: "cpu-c1", Policy: "mosix", Mean: f(920.4), SD: f(0.15), Bound: 920, Efficiency: f(0.9996), Paper: f(921)},
		{Case: "hybrid-c1", Policy: "mosix", Bound: 768, Failed: "swap exhausted on c1-1"},
		{Case: "all", Policy: "mec", Mean: f(24512), SD: f(310), Bound: 23847, Efficiency: f(0.9729), Paper: f(24300)},
	})
	want := `case       policy  makespan                bound             efficiency  paper
cpu-c1     mosix   920 ± 0.15 s            920 s             100.0%      921 s
hybrid-c1  mosix   does not fit [1]        768 s             —           —
all        mec     24512 ± 310 s (6.81 h)  23847 s (6.62 h)  97.3%       24300 s (6.75 h)
[1] hybrid-c1, mosix: does not fit: swap exhausted on c1-1
`
	if b.String() != want {
		t.Errorf("table:\n%s\nwant:\n%s", b.String(), want)
	}
}

// simJSON runs `orrery sim --json` and decodes each result into a map,
// skipping the test until the engine is written.
func simJSON(t *testing.T, args ...string) (scenario string, results []map[string]any) {
	t.Helper()
	code, stdout, stderr := cli(t, append([]string{"sim", "--json"}, args...)...)
	if code != exitOK {
		t.Fatalf("sim --json %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	var out struct {
		Scenario string           `json:"scenario"`
		Results  []map[string]any `json:"results"`
	}
	dec := json.NewDecoder(strings.NewReader(stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		t.Fatalf("sim --json printed no JSON object: %v\n%s", err, stdout)
	}
	return out.Scenario, out.Results
}

func TestSimJSON(t *testing.T) {
	name, results := simJSON(t, "--runs", "1", "paper-table1")
	if name != "paper-table1" || len(results) != 15 {
		t.Fatalf("scenario %q with %d results, want paper-table1 with 5 cases × 3 policies", name, len(results))
	}
	keys := []string{"case", "policy", "makespan_mean", "makespan_sd", "bound", "efficiency", "paper"}
	for _, r := range results {
		for _, k := range keys {
			if _, ok := r[k]; !ok {
				t.Errorf("result %v has no %q", r, k)
			}
		}
		if _, failed := r["failed"]; failed != (r["makespan_mean"] == nil) || failed != (r["efficiency"] == nil) {
			t.Errorf("result %v: a failed result, and only one, has null makespan and efficiency", r)
		}
		if len(r) != len(keys) && len(r) != len(keys)+1 {
			t.Errorf("result %v has keys beyond %v and failed", r, keys)
		}
	}
	first := results[0]
	if first["case"] != "cpu-c1" || first["policy"] != "fcfs" || first["paper"] != 1300.0 {
		t.Errorf("first result %v, want cpu-c1 under fcfs with the paper's 1300 s", first)
	}
	if eff, ok := first["efficiency"].(float64); !ok || eff <= 0 || eff > 1 {
		t.Errorf("efficiency %v, want a fraction", first["efficiency"])
	}
}

// TestSimFile runs a scenario file with a cluster file beside it, the
// flags after the scenario, and a trace.
func TestSimFile(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "two.cluster"), []byte("node fast cpus 2 speed 1\nnode slow speed 0.5\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "mine.scn"), []byte(`# My two nodes.
cluster lab from two.cluster
workload w
    jobs 6 work 10
end
case one per-cpu 1
case two per-cpu 2
`), 0o644)
	trace := filepath.Join(dir, "trace.txt")
	name, results := simJSON(t, filepath.Join(dir, "mine.scn"), "--policy", "fcfs", "--case", "two", "--trace", trace)
	if name != "mine" || len(results) != 1 || results[0]["case"] != "two" || results[0]["policy"] != "fcfs" {
		t.Fatalf("scenario %q, results %v", name, results)
	}
	if b, err := os.ReadFile(trace); err != nil || !strings.HasPrefix(string(b), "# scenario mine case two policy fcfs seed 1\n") {
		t.Errorf("trace %q, %v", b, err)
	}
}

func TestSimTable(t *testing.T) {
	code, stdout, stderr := cli(t, "sim", "--runs", "2", "--seed", "7", "paper-fig4")
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if lines[0] != "scenario paper-fig4, seed 7, 2 runs per case and policy" || len(lines) != 6 {
		t.Fatalf("table:\n%s", stdout)
	}
	if f := strings.Fields(lines[1]); strings.Join(f, " ") != "case policy makespan bound efficiency paper" {
		t.Errorf("header %q", lines[1])
	}
	for i, want := range []string{"per-cpu-1 mec", "per-cpu-4 mec", "weighted mec", "orrery orrery"} {
		if f := strings.Fields(lines[i+2]); strings.Join(f[:2], " ") != want || !strings.Contains(lines[i+2], " ± ") {
			t.Errorf("row %d: %q, want %s with a makespan", i+1, lines[i+2], want)
		}
	}
}
