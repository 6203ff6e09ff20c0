package sweep_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"orrery/plan"
	"orrery/sweep"
)

// withMain adds a minimal main task to parameter statements.
func withMain(params string) string {
	return params + "\ntask main\n\texec true\nendtask\n"
}

// parsePlan parses src as test.pln and fails the test on errors.
func parsePlan(t *testing.T, src string) *plan.Plan {
	t.Helper()
	p, err := plan.Parse("test.pln", []byte(src), plan.Options{})
	if err != nil {
		t.Fatalf("parse:\n%v\nsource:\n%s", err, src)
	}
	return p
}

// build parses src and makes its sweep, failing the test on errors.
func build(t *testing.T, src string, opts sweep.Options) *sweep.Sweep {
	t.Helper()
	p := parsePlan(t, src)
	s, err := sweep.New(p, opts)
	if err != nil {
		t.Fatalf("sweep:\n%v\nsource:\n%s", err, src)
	}
	return s
}

// buildErr parses src and makes its sweep, expecting an error from one
// of the two; it returns the errors.
func buildErr(t *testing.T, src string, opts sweep.Options) plan.ErrorList {
	t.Helper()
	p, err := plan.Parse("test.pln", []byte(src), plan.Options{})
	if err == nil {
		_, err = sweep.New(p, opts)
	}
	if err == nil {
		t.Fatalf("no error for:\n%s", src)
	}
	var list plan.ErrorList
	if !errors.As(err, &list) || len(list) == 0 {
		t.Fatalf("error %v (%T) is not a plan.ErrorList", err, err)
	}
	for _, e := range list {
		if e.File != "test.pln" || e.Pos.Line < 1 || e.Pos.Col < 1 {
			t.Errorf("error %q has no file position", e.Error())
		}
	}
	return list
}

// allJobs iterates the sweep, checking that jobs are numbered 1, 2, … and
// that Count agrees.
func allJobs(t *testing.T, s *sweep.Sweep) []sweep.Job {
	t.Helper()
	var jobs []sweep.Job
	it := s.Iter()
	for it.Next() {
		j := it.Job()
		if want := int64(len(jobs) + 1); j.Index != want || it.Index() != want {
			t.Fatalf("job %d has number %d (Index() %d)", want, j.Index, it.Index())
		}
		if len(j.Values) != len(s.Names) {
			t.Fatalf("job %d has %d values for %d names", j.Index, len(j.Values), len(s.Names))
		}
		for i := range s.Names {
			if it.Value(i) != j.Values[i] {
				t.Fatalf("job %d: Value(%d) = %q, Job().Values[%d] = %q", j.Index, i, it.Value(i), i, j.Values[i])
			}
		}
		jobs = append(jobs, j)
	}
	if it.Next() {
		t.Fatal("Next() is true again after the last job")
	}
	if n, exact := s.Count(); exact && n != int64(len(jobs)) {
		t.Errorf("Count() = %d (exact), the iterator gives %d jobs", n, len(jobs))
	}
	return jobs
}

// valuesOf returns the values of jobs.
func valuesOf(jobs []sweep.Job) [][]string {
	out := make([][]string, len(jobs))
	for i, j := range jobs {
		out[i] = j.Values
	}
	return out
}

// rows parses "a b c|d e f" into job values (for short tables).
func rows(s string) [][]string {
	var out [][]string
	for _, r := range strings.Split(s, "|") {
		out = append(out, strings.Fields(r))
	}
	return out
}

// domainValues lists every value of a domain.
func domainValues(d sweep.Domain) []string {
	out := make([]string, d.Len())
	for i := range d.Len() {
		out[i] = d.Value(i)
	}
	return out
}

// paramValues builds a plan of the one statement `parameter x DECL` and
// returns x's values.
func paramValues(t *testing.T, decl string) []string {
	t.Helper()
	s := build(t, withMain("parameter x "+decl), sweep.Options{})
	return domainValues(s.Domains[0])
}

// roundTrip writes s as a run file, reads it back with another seed and
// checks that it yields the same names, jobs and canonical tasks.
func roundTrip(t *testing.T, s *sweep.Sweep) *sweep.Sweep {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.WriteRunFile(&buf, -1)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Parse("roundtrip.run", buf.Bytes(), plan.Options{})
	if err != nil {
		t.Fatalf("the run file does not parse:\n%v\n%s", err, buf.String())
	}
	r, err := sweep.New(p, sweep.Options{Root: t.TempDir(), Seed: s.Seed + 1})
	if err != nil {
		t.Fatalf("the run file's sweep: %v\n%s", err, buf.String())
	}
	if !slices.Equal(r.Names, s.Names) {
		t.Errorf("run file names %q, plan names %q", r.Names, s.Names)
	}
	want, got := allJobs(t, s), allJobs(t, r)
	if int64(len(want)) != n {
		t.Errorf("WriteRunFile returned %d, the plan has %d jobs", n, len(want))
	}
	if len(got) != len(want) {
		t.Fatalf("run file has %d jobs, plan has %d\n%s", len(got), len(want), buf.String())
	}
	for i := range want {
		if !slices.Equal(got[i].Values, want[i].Values) {
			t.Fatalf("job %d: run file gives %q, plan gives %q", i+1, got[i].Values, want[i].Values)
		}
	}
	var wt, gt strings.Builder
	if err := s.Plan.WriteTasks(&wt); err != nil {
		t.Fatal(err)
	}
	if err := r.Plan.WriteTasks(&gt); err != nil {
		t.Fatal(err)
	}
	if wt.String() != gt.String() {
		t.Errorf("canonical tasks differ after the round trip:\nplan:\n%s\nrun file:\n%s", wt.String(), gt.String())
	}
	return r
}

// jsonl writes the sweep as JSON Lines and decodes every line.
func jsonl(t *testing.T, s *sweep.Sweep, limit int64) (raw []string, jobs []map[string]any) {
	t.Helper()
	var buf bytes.Buffer
	n, err := s.WriteJSONL(&buf, limit)
	if err != nil {
		t.Fatal(err)
	}
	text := buf.String()
	if text == "" {
		if n != 0 {
			t.Errorf("WriteJSONL returned %d and wrote nothing", n)
		}
		return nil, nil
	}
	if !strings.HasSuffix(text, "\n") {
		t.Errorf("JSON Lines output does not end in a newline: %q", text)
	}
	raw = strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	if int64(len(raw)) != n {
		t.Errorf("WriteJSONL returned %d, wrote %d lines", n, len(raw))
	}
	for i, line := range raw {
		if !json.Valid([]byte(line)) {
			t.Fatalf("line %d is not JSON: %s", i+1, line)
		}
		var obj map[string]any
		if err := json.Unmarshal([]byte(line), &obj); err != nil {
			t.Fatal(err)
		}
		if idx, ok := obj["index"].(float64); !ok || int(idx) != i+1 {
			t.Errorf("line %d has index %v", i+1, obj["index"])
		}
		jobs = append(jobs, obj)
	}
	return raw, jobs
}

func TestLastParameterVariesFastest(t *testing.T) {
	s := build(t, withMain(`
parameter a integer range from 1 to 2
parameter b text select anyof x y
parameter c float select anyof 0.5 1.5 2.5`), sweep.Options{})
	if want := []string{"a", "b", "c"}; !slices.Equal(s.Names, want) {
		t.Fatalf("Names = %q, want %q", s.Names, want)
	}
	want := rows("1 x 0.5|1 x 1.5|1 x 2.5|1 y 0.5|1 y 1.5|1 y 2.5|2 x 0.5|2 x 1.5|2 x 2.5|2 y 0.5|2 y 1.5|2 y 2.5")
	got := valuesOf(allJobs(t, s))
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("jobs:\n got %q\nwant %q", got, want)
	}
	if n, exact := s.Count(); n != 12 || !exact || s.Size() != 12 {
		t.Errorf("Count() = %d, %v; Size() = %d; want 12", n, exact, s.Size())
	}
}

func TestSingleValues(t *testing.T) {
	s := build(t, withMain(`
parameter a integer 7
parameter b float default 2.5
parameter c text "hello world"
parameter d text default plain
parameter e text select oneof first second third
parameter f text select oneof first second third default third
parameter g integer select anyof 3 1 2 default 2`), sweep.Options{})
	got := valuesOf(allJobs(t, s))
	want := [][]string{
		{"7", "2.5", "hello world", "plain", "first", "third", "3"},
		{"7", "2.5", "hello world", "plain", "first", "third", "1"},
		{"7", "2.5", "hello world", "plain", "first", "third", "2"},
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("jobs:\n got %q\nwant %q", got, want)
	}
}

func TestZeroParametersIsOneJob(t *testing.T) {
	s := build(t, withMain(""), sweep.Options{})
	if n, exact := s.Count(); n != 1 || !exact {
		t.Errorf("Count() = %d, %v; want 1, true", n, exact)
	}
	jobs := allJobs(t, s)
	if len(jobs) != 1 || jobs[0].Index != 1 || len(jobs[0].Values) != 0 {
		t.Fatalf("jobs = %+v, want one job with no values", jobs)
	}
	raw, _ := jsonl(t, s, -1)
	if want := []string{`{"index":1,"values":{}}`}; !slices.Equal(raw, want) {
		t.Errorf("JSONL = %q, want %q", raw, want)
	}
	roundTrip(t, s)
}

func TestParameterWithNoValuesIsZeroJobs(t *testing.T) {
	p := parsePlan(t, withMain("parameter a integer range from 1 to 3\nparameter empty\nparameter c text select anyof x y"))
	warned := false
	for _, w := range p.Warnings {
		warned = warned || strings.Contains(w.Msg, "empty")
	}
	if !warned {
		t.Errorf("no warning names the parameter without values: %v", p.Warnings)
	}
	s, err := sweep.New(p, sweep.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n, exact := s.Count(); n != 0 || !exact || s.Size() != 0 {
		t.Errorf("Count() = %d, %v; Size() = %d; want 0", n, exact, s.Size())
	}
	if jobs := allJobs(t, s); len(jobs) != 0 {
		t.Errorf("got %d jobs, want none", len(jobs))
	}
	if raw, _ := jsonl(t, s, -1); len(raw) != 0 {
		t.Errorf("JSONL = %q, want nothing", raw)
	}
	roundTrip(t, s)
}

func TestCountOfHugePlanIsInstant(t *testing.T) {
	src := withMain(`
parameter a integer range from 1 to 1000
parameter b integer range from 1 to 1000
parameter c float range from 0.001 to 1 step 0.001
parameter d integer range from 1000 to 1 step -1`)
	start := time.Now()
	s := build(t, src, sweep.Options{})
	n, exact := s.Count()
	it := s.Iter()
	var first [][]string
	for range 3 {
		if !it.Next() {
			t.Fatal("no job")
		}
		first = append(first, it.Job().Values)
	}
	// Generating the jobs would take hours: the bound is far from both,
	// so a busy machine does not decide the test.
	if elapsed := time.Since(start); elapsed > 30*time.Second {
		t.Errorf("building, counting and starting 10^12 jobs took %v", elapsed)
	}
	if n != 1_000_000_000_000 || !exact {
		t.Errorf("Count() = %d, %v; want 10^12, exact", n, exact)
	}
	if want := rows("1 1 0.001 1000|1 1 0.001 999|1 1 0.001 998"); !slices.EqualFunc(first, want, slices.Equal) {
		t.Errorf("first jobs %q, want %q", first, want)
	}
	var buf bytes.Buffer
	if k, err := s.WriteJSONL(&buf, 2); err != nil || k != 2 {
		t.Errorf("WriteJSONL(limit 2) = %d, %v", k, err)
	}
}

func TestCountOverflowIsAnError(t *testing.T) {
	var b strings.Builder
	for i := range 7 {
		fmt.Fprintf(&b, "parameter p%d integer range from 1 to 1000\n", i)
	}
	// 10^21 jobs: more than an int64 holds; a wrapped count would be wrong.
	buildErr(t, withMain(b.String()), sweep.Options{})
}

func TestZipLockstep(t *testing.T) {
	s := build(t, withMain(`
parameter a integer range from 1 to 3
parameter c text select anyof p q
parameter b text select anyof x y z
zip a b`), sweep.Options{})
	// The group takes the place of a, its first member; a and b advance
	// together.
	want := rows("1 p x|1 q x|2 p y|2 q y|3 p z|3 q z")
	if got := valuesOf(allJobs(t, s)); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("jobs:\n got %q\nwant %q", got, want)
	}
	if n, exact := s.Count(); n != 6 || !exact {
		t.Errorf("Count() = %d, %v; want 6", n, exact)
	}
	roundTrip(t, s)
}

func TestZipThreeMembers(t *testing.T) {
	s := build(t, withMain(`
parameter a integer range from 1 to 2
parameter b text select anyof x y
parameter c float range from 0.5 to 1 step 0.5
zip a b c`), sweep.Options{})
	want := rows("1 x 0.5|2 y 1")
	if got := valuesOf(allJobs(t, s)); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("jobs:\n got %q\nwant %q", got, want)
	}
}

func TestZipUnequalLengthsIsAnError(t *testing.T) {
	src := withMain(`
parameter a integer range from 1 to 3
parameter b text select anyof x y
zip a b`)
	errs := buildErr(t, src, sweep.Options{})
	if errs[0].Pos.Line != 4 {
		t.Errorf("error at %v, want line 4 (the zip): %v", errs[0].Pos, errs)
	}
	for _, name := range []string{"a", "b"} {
		if !strings.Contains(errs.Error(), name) {
			t.Errorf("error %q does not name %s", errs.Error(), name)
		}
	}
}

func TestConstraint(t *testing.T) {
	src := withMain(`
parameter a integer range from 1 to 5
parameter b integer range from 1 to 5
parameter mode text select anyof fast slow
constraint a < b && (a + b) % 2 == 1
constraint mode == "fast" || a * 2 > b`)
	s := build(t, src, sweep.Options{})
	var want [][]string
	for a := 1; a <= 5; a++ {
		for b := 1; b <= 5; b++ {
			for _, mode := range []string{"fast", "slow"} {
				if a < b && (a+b)%2 == 1 && (mode == "fast" || a*2 > b) {
					want = append(want, []string{strconv.Itoa(a), strconv.Itoa(b), mode})
				}
			}
		}
	}
	got := valuesOf(allJobs(t, s)) // also checks the numbering 1, 2, …
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("jobs:\n got %q\nwant %q", got, want)
	}
	if n, exact := s.Count(); n != int64(len(want)) || !exact {
		t.Errorf("Count() = %d, %v; want %d, exact", n, exact, len(want))
	}
	if s.Size() != 50 {
		t.Errorf("Size() = %d, want 50 combinations", s.Size())
	}
	raw, _ := jsonl(t, s, 3) // numbered over the jobs kept
	if len(raw) != 3 || !strings.HasPrefix(raw[2], `{"index":3,`) {
		t.Errorf("first 3 JSON lines: %q", raw)
	}
	r := roundTrip(t, s)
	if n, _ := r.Count(); n != int64(len(want)) {
		t.Errorf("run file Count() = %d, want %d", n, len(want))
	}
}

func TestConstraintKeepingNothing(t *testing.T) {
	s := build(t, withMain("parameter a integer range from 1 to 5\nconstraint a > 5"), sweep.Options{})
	if n, exact := s.Count(); n != 0 || !exact {
		t.Errorf("Count() = %d, %v; want 0, exact", n, exact)
	}
	if jobs := allJobs(t, s); len(jobs) != 0 {
		t.Errorf("%d jobs, want none", len(jobs))
	}
}

func TestConstraintWithZip(t *testing.T) {
	s := build(t, withMain(`
parameter a integer range from 1 to 4
parameter b integer range from 10 to 40 step 10
parameter c text select anyof x y
zip a b
constraint b != 20 && c == "y"`), sweep.Options{})
	want := rows("1 10 y|3 30 y|4 40 y")
	if got := valuesOf(allJobs(t, s)); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("jobs:\n got %q\nwant %q", got, want)
	}
}

func TestGlobs(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"z.dat", "a.dat", "m.dat", "sub/b.dat", "sub/c.txt", "notes.txt"} {
		writeFile(t, filepath.Join(root, f), "x\n")
	}
	if err := os.Mkdir(filepath.Join(root, "dir.dat"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Overlapping patterns: a.dat and sub/b.dat match twice.
	src := withMain(`parameter f files select anyof "*.dat" "a.dat" "sub/*.dat" "*/b.dat"`)
	s := build(t, src, sweep.Options{Root: root})
	got := domainValues(s.Domains[0])
	want := []string{"a.dat", "m.dat", "sub/b.dat", "z.dat"}
	if !slices.Equal(got, want) {
		t.Errorf("files = %q, want %q (sorted, once each, relative to the root, no directories)", got, want)
	}
	roundTrip(t, s)
}

// TestGlobsEmptyRoot: an empty Root is the current directory, and a file
// spelled two ways by two patterns ("a.dat", "./a.dat") is still one file.
func TestGlobsEmptyRoot(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.dat"), "x\n")
	writeFile(t, filepath.Join(root, "b.dat"), "x\n")
	t.Chdir(root)
	src := withMain(`parameter f files select anyof "a.dat" "./a.dat" "*.dat" "./b.dat"`)
	for _, r := range []string{"", "."} {
		s := build(t, src, sweep.Options{Root: r})
		if got, want := domainValues(s.Domains[0]), []string{"a.dat", "b.dat"}; !slices.Equal(got, want) {
			t.Errorf("Root %q: files = %q, want %q (each file once)", r, got, want)
		}
	}
}

func TestGlobMatchingNothingIsAnError(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a.dat"), "x\n")
	if err := os.Mkdir(filepath.Join(root, "only-a-dir.in"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := withMain("parameter f files select anyof \"*.dat\" \"*.xyz\"\n" +
		"parameter g files select anyof \"a.dat\" \"*.in\"")
	errs := buildErr(t, src, sweep.Options{Root: root})
	lines := strings.Split(src, "\n")
	want := []struct {
		line    int
		pattern string
	}{{1, `"*.xyz"`}, {2, `"*.in"`}}
	if len(errs) != len(want) {
		t.Fatalf("%d errors, want %d (one per pattern that matches no file):\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		e := errs[i]
		col := strings.Index(lines[w.line-1], w.pattern) + 1 // the quote
		if e.Pos.Line != w.line || e.Pos.Col != col && e.Pos.Col != col+1 {
			t.Errorf("error %q: want it at %d:%d, the pattern %s", e.Error(), w.line, col, w.pattern)
		}
		if !strings.Contains(e.Msg, strings.Trim(w.pattern, `"`)) {
			t.Errorf("error %q does not name the pattern %s", e.Error(), w.pattern)
		}
	}
	// Relative to the root, not to the current directory: the same plan
	// finds nothing from another root.
	buildErr(t, withMain(`parameter f files select anyof "a.dat"`), sweep.Options{Root: t.TempDir()})
}

func TestFromFile(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "lists", "values.txt"), "# solvers\n\ncg\n  \nbicgstab\n# gmres\nsor")
	writeFile(t, filepath.Join(root, "crlf.txt"), "# header\r\none\r\n\r\ntwo\r\n")
	s := build(t, "parameter v fromfile \"lists/values.txt\";\nparameter w fromfile crlf.txt;\n"+
		"task main\n\tnode:execute echo $v $w\nendtask\n", sweep.Options{Root: root})
	if got, want := domainValues(s.Domains[0]), []string{"cg", "bicgstab", "sor"}; !slices.Equal(got, want) {
		t.Errorf("values = %q, want %q (blank and # lines skipped, last line without a newline kept)", got, want)
	}
	if got, want := domainValues(s.Domains[1]), []string{"one", "two"}; !slices.Equal(got, want) {
		t.Errorf("CRLF values = %q, want %q", got, want)
	}
	if s.Plan.Dialect != plan.Classic {
		t.Errorf("fromfile plan read as %v, want classic", s.Plan.Dialect)
	}
	roundTrip(t, s)
}

func TestFromFileMissingIsAnError(t *testing.T) {
	src := "parameter v fromfile \"values.txt\";\ntask main\n\tnode:execute echo $v\nendtask\n"
	errs := buildErr(t, src, sweep.Options{Root: t.TempDir()})
	if errs[0].Pos.Line != 1 || !strings.Contains(errs[0].Msg, "values.txt") {
		t.Errorf("error %q: want line 1, naming values.txt", errs[0].Error())
	}
}

func TestFromFileWithoutValuesIsZeroJobs(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "none.txt"), "# nothing yet\n\n")
	s := build(t, "parameter v fromfile none.txt;\ntask main\n\tnode:execute echo $v\nendtask\n", sweep.Options{Root: root})
	if n, _ := s.Count(); n != 0 {
		t.Errorf("Count() = %d, want 0", n)
	}
	if len(s.Warnings) == 0 {
		t.Error("no warning for a fromfile without values")
	}
}

// TestAeroOnlyVars runs the nimrodg corpus plan with files that match its
// globs "A3??.dat" and "737-*.dat": 37 × 4 × 12 × 1 jobs per file.
func TestAeroOnlyVars(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testdata, "nimrodg", "aero-onlyvars.pln"))
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	planFile := filepath.Join(root, "aero-onlyvars.pln")
	writeFile(t, planFile, string(src))
	for _, f := range []string{"A380.dat", "A340.dat", "737-800.dat", "B747.dat", "A3800.dat", "A38.dat", "737-800.txt"} {
		writeFile(t, filepath.Join(root, f), "model\n")
	}
	p, err := plan.Parse(planFile, src, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := sweep.New(p, sweep.Options{Root: root, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := domainValues(s.Domains[0]), []string{"737-800.dat", "A340.dat", "A380.dat"}; !slices.Equal(got, want) {
		t.Errorf("aircraft_model = %q, want %q", got, want)
	}
	perFile := int64(37 * 4 * 12 * 1)
	if n, exact := s.Count(); n != 3*perFile || !exact {
		t.Errorf("Count() = %d, %v; want %d", n, exact, 3*perFile)
	}
	aoa := domainValues(s.Domains[1])
	if len(aoa) != 37 || aoa[0] != "-45" || aoa[1] != "-42.5" || aoa[18] != "0" || aoa[36] != "45" {
		t.Errorf("AoA = %q", aoa)
	}
	speed := domainValues(s.Domains[3])
	if len(speed) != 12 || speed[0] != "50" || speed[11] != "600" {
		t.Errorf("airspeed = %q", speed)
	}
	jobs := allJobs(t, s)
	per := map[string]int64{}
	for _, j := range jobs {
		per[j.Values[0]]++
		v, err := strconv.ParseFloat(j.Values[4], 64)
		if err != nil || v < 1 || v >= 2 {
			t.Fatalf("job %d: turbulence %q is not in [1, 2)", j.Index, j.Values[4])
		}
	}
	for f, n := range per {
		if n != perFile {
			t.Errorf("%d jobs for %s, want %d", n, f, perFile)
		}
	}

	// With only A380.dat, the pattern "737-*.dat" matches nothing: an
	// error at its position on line 1.
	for _, f := range []string{"A340.dat", "737-800.dat"} {
		if err := os.Remove(filepath.Join(root, f)); err != nil {
			t.Fatal(err)
		}
	}
	_, err = sweep.New(p, sweep.Options{Root: root, Seed: 3})
	var errs plan.ErrorList
	if !errors.As(err, &errs) || len(errs) != 1 {
		t.Fatalf("without 737 files: error %v, want one error", err)
	}
	col := strings.Index(string(src), `"737-*.dat"`) + 1
	if e := errs[0]; e.File != planFile || e.Pos.Line != 1 || e.Pos.Col != col && e.Pos.Col != col+1 {
		t.Errorf("error %q: want %s:1:%d", e.Error(), planFile, col)
	}
	os.Rename(filepath.Join(root, "737-800.txt"), filepath.Join(root, "737-900.dat"))
	s, err = sweep.New(p, sweep.Options{Root: root, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := s.Count(); n != 2*perFile {
		t.Errorf("with A380.dat and 737-900.dat: Count() = %d, want %d", n, 2*perFile)
	}
}

// oddValues are values that need escaping in JSON and in plan strings.
var oddValues = []string{
	`say "hi"`, `back\slash`, "two\nlines", "tab\there", "cr\rhere", "bell\x07", "nul-ish \x01\x1f",
	"café ☕ 日本語", "<html> & 'quotes'", "line\u2028sep", "cost $5 ${HOME}", "", " spaced ", "#not a comment",
	"a;b", "/* not a comment */", "// nor this",
}

// oddPlan returns a plan whose parameter v takes the odd values.
func oddPlan(vals []string) string {
	var b strings.Builder
	b.WriteString("parameter v text select anyof")
	for _, v := range vals {
		b.WriteString(" " + plan.Quote(v))
	}
	b.WriteString("\nparameter n integer range from 1 to 2\n")
	b.WriteString("task main\n\tshexec \"echo '$v' $n\"\nendtask\n")
	return b.String()
}

func TestOddValuesParse(t *testing.T) {
	s := build(t, oddPlan(oddValues), sweep.Options{})
	if got := domainValues(s.Domains[0]); !slices.Equal(got, oddValues) {
		t.Errorf("values read back as\n%q\nwant\n%q", got, oddValues)
	}
}

func TestJSONLEscaping(t *testing.T) {
	s := build(t, oddPlan(oddValues), sweep.Options{})
	raw, jobs := jsonl(t, s, -1)
	if len(jobs) != 2*len(oddValues) {
		t.Fatalf("%d jobs, want %d", len(jobs), 2*len(oddValues))
	}
	for i, obj := range jobs {
		vals, ok := obj["values"].(map[string]any)
		if !ok {
			t.Fatalf("line %d: no values object: %s", i+1, raw[i])
		}
		want := oddValues[i/2]
		if vals["v"] != want || vals["n"] != strconv.Itoa(i%2+1) {
			t.Errorf("line %d decodes to v=%q n=%q, want %q %q: %s", i+1, vals["v"], vals["n"], want, strconv.Itoa(i%2+1), raw[i])
		}
		if strings.ContainsAny(raw[i], "\n\r") {
			t.Errorf("line %d holds a raw line break", i+1)
		}
	}
}

func TestJSONLInvalidUTF8(t *testing.T) {
	s := build(t, withMain(`parameter v text select anyof "ok" "bad \xff\xfe byte"`), sweep.Options{})
	raw, jobs := jsonl(t, s, -1)
	if len(jobs) != 2 {
		t.Fatalf("jobs %q", raw)
	}
	if !utf8Valid(raw[1]) {
		t.Errorf("line is not valid UTF-8: %q", raw[1])
	}
	if got := jobs[1]["values"].(map[string]any)["v"]; got != "bad \ufffd\ufffd byte" {
		t.Errorf("decoded %q, want the bad bytes as U+FFFD", got)
	}
	// The run file keeps the bytes exactly.
	roundTrip(t, s)
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\x00") == s }

func TestJSONLKeysInDeclarationOrder(t *testing.T) {
	s := build(t, withMain("parameter zeta integer 1\nparameter alpha text a\nparameter mid float 0.5"), sweep.Options{})
	raw, _ := jsonl(t, s, -1)
	dec := json.NewDecoder(strings.NewReader(raw[0]))
	var keys []string
	depth := 0
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch tok {
		case json.Delim('{'):
			depth++
			continue
		case json.Delim('}'):
			depth--
			continue
		}
		if k, ok := tok.(string); ok && depth == 2 && dec.More() {
			keys = append(keys, k)
			dec.Token() // the value
		}
	}
	if want := []string{"zeta", "alpha", "mid"}; !slices.Equal(keys, want) {
		t.Errorf("keys %q, want %q: %s", keys, want, raw[0])
	}
}

func TestRunFileRoundTripOddValues(t *testing.T) {
	vals := append(slices.Clone(oddValues), "bad \xff byte", "\\$x", "$jobname")
	s := build(t, oddPlan(vals), sweep.Options{})
	roundTrip(t, s)
}

func TestWriteLimit(t *testing.T) {
	s := build(t, withMain("parameter a integer range from 1 to 4\nparameter b text select anyof x y z"), sweep.Options{})
	all := allJobs(t, s)
	for _, limit := range []int64{0, 1, 5, 12, 100} {
		want := min(limit, 12)
		raw, _ := jsonl(t, s, limit)
		if int64(len(raw)) != want {
			t.Errorf("WriteJSONL(limit %d) wrote %d jobs, want %d", limit, len(raw), want)
		}
		var buf bytes.Buffer
		n, err := s.WriteRunFile(&buf, limit)
		if err != nil || n != want {
			t.Errorf("WriteRunFile(limit %d) = %d, %v; want %d", limit, n, err, want)
		}
		p, err := plan.Parse("limit.run", buf.Bytes(), plan.Options{})
		if err != nil {
			t.Fatalf("limit %d: %v\n%s", limit, err, buf.String())
		}
		r, err := sweep.New(p, sweep.Options{})
		if err != nil {
			t.Fatal(err)
		}
		got := allJobs(t, r)
		if int64(len(got)) != want {
			t.Fatalf("limit %d: run file has %d jobs, want %d", limit, len(got), want)
		}
		for i := range got {
			if !slices.Equal(got[i].Values, all[i].Values) {
				t.Errorf("limit %d: job %d is %q, want %q", limit, i+1, got[i].Values, all[i].Values)
			}
		}
	}
}

// TestRunFileExplicitJobs reads a run file: its jobs block, not the cross
// product, is the job list.
func TestRunFileExplicitJobs(t *testing.T) {
	src := `variable x index 0 list "0" "1" "2"
variable y index 1 list "a" "b"
jobs
	0001 0 1
	0002 2 0
	0003 2 1
endjobs
task main
	exec echo $x $y
endtask
`
	s := build(t, src, sweep.Options{})
	want := rows("0 b|2 a|2 b")
	if got := valuesOf(allJobs(t, s)); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("jobs %q, want %q", got, want)
	}
	if n, exact := s.Count(); n != 3 || !exact {
		t.Errorf("Count() = %d, %v", n, exact)
	}
	roundTrip(t, s)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRunFileWithoutJobsBlock: without a jobs block, a run file's
// variables cross like parameters, the last varying fastest.
func TestRunFileWithoutJobsBlock(t *testing.T) {
	s := build(t, `variable x index 0 list "a" "b"
variable y index 1 list "1" "2" "3"
task main
	exec echo $x $y
endtask
`, sweep.Options{})
	want := rows("a 1|a 2|a 3|b 1|b 2|b 3")
	if got := valuesOf(allJobs(t, s)); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("jobs %q, want %q", got, want)
	}
}

func TestLookup(t *testing.T) {
	s := build(t, withMain("parameter a integer range from 1 to 3\nparameter b text select anyof x y"), sweep.Options{})
	jobs := allJobs(t, s)
	names := map[string]bool{}
	for _, j := range jobs {
		look := s.Lookup(j)
		for i, n := range s.Names {
			if v, ok := look(n); !ok || v != j.Values[i] {
				t.Errorf("job %d: Lookup(%s) = %q, %v; want %q", j.Index, n, v, ok, j.Values[i])
			}
		}
		if v, ok := look("jobindex"); !ok || v != strconv.FormatInt(j.Index, 10) {
			t.Errorf("job %d: Lookup(jobindex) = %q, %v", j.Index, v, ok)
		}
		name, ok := look("jobname")
		if !ok || name == "" || names[name] {
			t.Errorf("job %d: Lookup(jobname) = %q, %v: want a name no other job has", j.Index, name, ok)
		}
		names[name] = true
		if _, ok := look("HOME"); ok {
			t.Errorf("Lookup(HOME) found a value")
		}
	}
}
