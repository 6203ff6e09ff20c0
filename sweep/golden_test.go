package sweep_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"orrery/plan"
	"orrery/sweep"
)

var update = flag.Bool("update", false, "rewrite the golden job lists testdata/*.jobs.jsonl")

// testdata is the project's testdata directory, seen from this package.
const testdata = "../testdata"

// goldenSeed is the seed the golden job lists are generated with.
const goldenSeed = 42

// testdataPlans returns the plans in testdata, sorted.
func testdataPlans(t *testing.T) []string {
	t.Helper()
	plans, err := filepath.Glob(filepath.Join(testdata, "*.pln"))
	if err != nil {
		t.Fatal(err)
	}
	if len(plans) == 0 {
		t.Fatalf("no plans in %s", testdata)
	}
	return plans
}

// loadTestdata parses a plan of testdata and makes its sweep with the
// golden seed.
func loadTestdata(t *testing.T, path string) *sweep.Sweep {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Parse(path, src, plan.Options{})
	if err != nil {
		t.Fatalf("parse %s:\n%v", path, err)
	}
	s, err := sweep.New(p, sweep.Options{Root: testdata, Seed: goldenSeed})
	if err != nil {
		t.Fatalf("sweep %s:\n%v", path, err)
	}
	return s
}

// TestGolden compares each testdata plan's jobs, as JSON Lines with seed
// 42, with its golden file NAME.jobs.jsonl. Run `go test ./sweep -update`
// to rewrite the golden files, and review the diff.
func TestGolden(t *testing.T) {
	for _, path := range testdataPlans(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".pln")
		t.Run(name, func(t *testing.T) {
			s := loadTestdata(t, path)
			var buf bytes.Buffer
			n, err := s.WriteJSONL(&buf, -1)
			if err != nil {
				t.Fatal(err)
			}
			if count, exact := s.Count(); !exact || count != n {
				t.Errorf("Count() = %d, %v; WriteJSONL wrote %d jobs", count, exact, n)
			}
			if lines := int64(bytes.Count(buf.Bytes(), []byte("\n"))); lines != n {
				t.Errorf("WriteJSONL returned %d but wrote %d lines", n, lines)
			}
			golden := filepath.Join(testdata, name+".jobs.jsonl")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./sweep -update to create it)", err)
			}
			if got := buf.String(); got != string(want) {
				t.Errorf("jobs of %s differ from %s:\n%s", path, golden, lineDiff(string(want), got))
			}
		})
	}
}

// TestGoldenRoundTrip writes each testdata plan as a run file, reads it
// back, and checks that it yields the same jobs and the same canonical
// tasks; the run file read back is drawn with another seed, so random
// values must come from the file, not from the seed.
func TestGoldenRoundTrip(t *testing.T) {
	for _, path := range testdataPlans(t) {
		t.Run(filepath.Base(path), func(t *testing.T) {
			s := loadTestdata(t, path)
			r := roundTrip(t, s)

			// Writing the run file's own sweep again gives the same
			// variables, jobs and tasks (the header comment aside).
			var first, second bytes.Buffer
			if _, err := s.WriteRunFile(&first, -1); err != nil {
				t.Fatal(err)
			}
			if _, err := r.WriteRunFile(&second, -1); err != nil {
				t.Fatal(err)
			}
			if a, b := dropComments(first.String()), dropComments(second.String()); a != b {
				t.Errorf("run file of the run file differs:\n%s", lineDiff(a, b))
			}
		})
	}
}

// TestGoldenFilesHaveJobs makes sure no golden file is silently empty and
// that every golden file still has its plan.
func TestGoldenFilesHaveJobs(t *testing.T) {
	goldens, err := filepath.Glob(filepath.Join(testdata, "*.jobs.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	if len(goldens) != len(testdataPlans(t)) {
		t.Errorf("%d golden files for %d plans", len(goldens), len(testdataPlans(t)))
	}
	for _, g := range goldens {
		planFile := strings.TrimSuffix(g, ".jobs.jsonl") + ".pln"
		if _, err := os.Stat(planFile); err != nil {
			t.Errorf("golden file %s has no plan: %v", g, err)
		}
		data, err := os.ReadFile(g)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) == 0 {
			t.Errorf("%s is empty", g)
		}
	}
}

// TestTestdataCoverage checks that the testdata plans together use every
// statement, type, domain form, task and command of the language, so the
// golden tests cover them all.
func TestTestdataCoverage(t *testing.T) {
	have := map[string]bool{}
	for _, path := range testdataPlans(t) {
		p := loadTestdata(t, path).Plan
		have["dialect "+p.Dialect.String()] = true
		lines := strings.Split(p.Source, "\n")
		for _, l := range lines {
			if strings.HasSuffix(strings.TrimSpace(l), ";") {
				have["; ending"] = true
			}
		}
		if len(p.Constraints) > 0 {
			have["constraint"] = true
		}
		if len(p.Zips) > 0 {
			have["zip"] = true
		}
		for _, q := range p.Params {
			d := q.Domain
			have["type "+q.Type.String()] = true
			have["domain "+d.Kind.String()] = true
			if q.Label != "" {
				have["label"] = true
			}
			line := lines[q.Pos.Line-1]
			switch d.Kind {
			case plan.Single:
				if strings.Contains(line, " default ") {
					have["default VALUE"] = true
				} else {
					have["single VALUE"] = true
				}
			case plan.Range:
				kind := q.Type.String() + " range"
				switch {
				case d.Points != nil:
					have[kind+" points"] = true
				case d.Step == nil:
					have[kind+" without step"] = true
				case d.Step.F < 0:
					have[kind+" negative step"] = true
				default:
					have[kind+" step"] = true
				}
			case plan.Random:
				kind := q.Type.String() + " random"
				if d.Points != nil {
					have[kind+" points"] = true
				} else {
					have[kind] = true
				}
			case plan.AnyOf:
				if len(d.Defaults) > 0 {
					have["anyof default"] = true
				}
				if len(d.Values) > 1 && q.Type == plan.Files {
					have["files several globs"] = true
				}
			case plan.OneOf:
				if len(d.Defaults) > 0 {
					have["oneof default"] = true
				} else {
					have["oneof without default"] = true
				}
			}
		}
		for _, task := range p.Tasks {
			have["task "+task.Name] = true
			for _, c := range task.Commands {
				have["command "+c.Keyword] = true
			}
		}
	}
	want := []string{
		"dialect classic", "dialect modern", "; ending", "constraint", "zip", "label",
		"type integer", "type float", "type text", "type files",
		"domain single", "domain range", "domain random", "domain anyof", "domain oneof", "domain fromfile",
		"single VALUE", "default VALUE",
		"integer range without step", "integer range negative step", "integer range points",
		"float range without step", "float range step", "float range negative step", "float range points",
		"integer random", "float random points",
		"anyof default", "files several globs", "oneof default", "oneof without default",
		"task rootstart", "task nodestart", "task main", "task rootfinish",
		"command copy", "command substitute", "command execute", "command node:execute",
		"command root:execute", "command exec", "command lexec", "command lpexec", "command shexec",
		"command onerror", "command redirect",
	}
	for _, w := range want {
		if !have[w] {
			t.Errorf("no testdata plan uses %s", w)
		}
	}
}

// dropComments removes the comment lines of a run file.
func dropComments(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// lineDiff shows the first lines where two texts differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl + "\n")
			shown++
		}
	}
	if len(w) != len(g) {
		b.WriteString("want " + strconv.Itoa(len(w)) + " lines, got " + strconv.Itoa(len(g)) + "\n")
	}
	return b.String()
}
