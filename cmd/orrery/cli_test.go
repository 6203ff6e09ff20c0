package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"orrery/plan"
	"orrery/sweep"
)

// testdata is the project's testdata directory, seen from this package.
const testdata = "../../testdata"

// goldenSeed is the seed the golden job lists were generated with (see
// sweep/golden_test.go).
const goldenSeed = "42"

// cli runs the command line in-process and returns the exit status and
// what it printed.
func cli(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(&env{stdout: &out, stderr: &errOut}, args)
	return code, out.String(), errOut.String()
}

// mustRun runs the command line and fails the test unless it exits 0.
func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := cli(t, args...)
	if code != exitOK {
		t.Fatalf("orrery %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout
}

// testdataPlan returns the path of a testdata plan.
func testdataPlan(name string) string { return filepath.Join(testdata, name+".pln") }

// golden returns the golden JSON Lines of a testdata plan.
func golden(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(testdata, name+".jobs.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// writePlan writes a plan into a new temporary directory.
func writePlan(t *testing.T, name, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// jsonReport is what `check --json` prints, as a consumer reads it.
type jsonReport struct {
	File       string  `json:"file"`
	Dialect    string  `json:"dialect"`
	Jobs       *int64  `json:"jobs"`
	Seed       *uint64 `json:"seed"`
	Parameters []struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Count *int64 `json:"count"`
	} `json:"parameters"`
	Tasks []struct {
		Name     string `json:"name"`
		Commands int    `json:"commands"`
	} `json:"tasks"`
	Warnings []string `json:"warnings"`
}

func checkJSON(t *testing.T, args ...string) jsonReport {
	t.Helper()
	out := mustRun(t, append([]string{"check", "--json"}, args...)...)
	var r jsonReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("check --json printed no JSON object: %v\n%s", err, out)
	}
	if r.Jobs == nil {
		t.Fatalf("check --json has no jobs:\n%s", out)
	}
	return r
}

var testdataPlans = []struct {
	name    string
	dialect string
}{
	{"enfuzion", "classic"},
	{"ranges", "classic"},
	{"points", "classic"},
	{"nimrodg", "modern"},
	{"constrained", "modern"},
	{"odd-values", "modern"},
}

func TestCheckTestdata(t *testing.T) {
	for _, tt := range testdataPlans {
		t.Run(tt.name, func(t *testing.T) {
			path := testdataPlan(tt.name)
			jobs := strings.Count(golden(t, tt.name), "\n")
			code, stdout, stderr := cli(t, "check", path)
			if code != exitOK || stderr != "" {
				t.Fatalf("check: exit %d, stderr %q", code, stderr)
			}
			for _, want := range []string{tt.dialect, strconv.Itoa(jobs)} {
				if !strings.Contains(stdout, want) {
					t.Errorf("check output does not mention %q:\n%s", want, stdout)
				}
			}
			r := checkJSON(t, path)
			if r.Dialect != tt.dialect {
				t.Errorf("dialect %q, want %q", r.Dialect, tt.dialect)
			}
			if *r.Jobs != int64(jobs) {
				t.Errorf("jobs %d, the golden file has %d", *r.Jobs, jobs)
			}
		})
	}
}

func TestCheckJSONReport(t *testing.T) {
	path := testdataPlan("enfuzion")
	r := checkJSON(t, path)
	want := []struct {
		name, typ string
		count     int64
	}{
		{"mesh", "files", 3}, {"solver", "text", 2}, {"order", "integer", 2}, {"relax", "float", 2},
		{"precond", "text", 1}, {"scheme", "text", 1}, {"mode", "text", 2}, {"tol", "float", 1},
		{"iters", "integer", 1}, {"title", "text", 1},
	}
	if len(r.Parameters) != len(want) {
		t.Fatalf("%d parameters, want %d: %+v", len(r.Parameters), len(want), r.Parameters)
	}
	product := int64(1)
	for i, w := range want {
		p := r.Parameters[i]
		typeOK := p.Type == w.typ || w.name == "solver" && p.Type == "fromfile"
		if p.Name != w.name || !typeOK || p.Count == nil || *p.Count != w.count {
			t.Errorf("parameter %d: %+v, want %s %s with %d values", i, p, w.name, w.typ, w.count)
		}
		product *= w.count
	}
	if *r.Jobs != product {
		t.Errorf("jobs %d, want %d", *r.Jobs, product)
	}
	var tasks []string
	for _, task := range r.Tasks {
		tasks = append(tasks, task.Name+":"+strconv.Itoa(task.Commands))
	}
	if want := []string{"rootstart:1", "main:6", "rootfinish:1"}; !slices.Equal(tasks, want) {
		t.Errorf("tasks %q, want %q", tasks, want)
	}
	// The three bare copy paths of main are read as root paths, with a
	// warning each, at their positions.
	if len(r.Warnings) != 3 {
		t.Errorf("warnings %q, want 3", r.Warnings)
	}
	for _, w := range r.Warnings {
		if !regexp.MustCompile(`^` + regexp.QuoteMeta(path) + `:(19|20|24):\d+: `).MatchString(w) {
			t.Errorf("warning %q is not FILE:LINE:COL on a bare copy line", w)
		}
	}
	if r.Seed != nil {
		t.Errorf("seed %d reported for a plan without random values", *r.Seed)
	}
}

func TestCheckJSONSeedAndNoValues(t *testing.T) {
	r := checkJSON(t, "--seed", "77", testdataPlan("points"))
	if r.Seed == nil || *r.Seed != 77 {
		t.Errorf("seed %v, want 77 for a plan with random values", r.Seed)
	}
	path := writePlan(t, "empty.pln", "parameter x integer range from 1 to 3\nparameter nothing\ntask main\n\texec echo $x $nothing\nendtask\n")
	r = checkJSON(t, path)
	if *r.Jobs != 0 {
		t.Errorf("jobs %d, want 0 for a parameter without values", *r.Jobs)
	}
	if len(r.Parameters) != 2 || r.Parameters[1].Name != "nothing" || r.Parameters[1].Count == nil || *r.Parameters[1].Count != 0 {
		t.Errorf("parameters %+v", r.Parameters)
	}
	found := false
	for _, w := range r.Warnings {
		found = found || strings.HasPrefix(w, path+":2:") && strings.Contains(w, "nothing")
	}
	if !found {
		t.Errorf("no warning at %s:2 about the parameter without values: %q", path, r.Warnings)
	}
}

// errLines checks that every line of stderr is an error: FILE:LINE:COL: message.
func errLines(t *testing.T, stderr, file string) [][2]int {
	t.Helper()
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(file) + `:(\d+):(\d+): \S`)
	var pos [][2]int
	for _, line := range strings.Split(strings.TrimSuffix(stderr, "\n"), "\n") {
		m := re.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("stderr line %q is not %s:LINE:COL: message", line, file)
			continue
		}
		l, _ := strconv.Atoi(m[1])
		c, _ := strconv.Atoi(m[2])
		pos = append(pos, [2]int{l, c})
	}
	return pos
}

func TestCheckInvalidPlan(t *testing.T) {
	path := writePlan(t, "bad.pln", `parameter x integer range from 1 to 3
paramter y text select anyof a b
parameter z float select anyof 1 two
task mian
	exec echo $x
endtask
`)
	for _, args := range [][]string{{"check", path}, {"check", "--json", path}, {"generate", path}, {"generate", "--format", "jsonl", path}} {
		code, stdout, stderr := cli(t, args...)
		if code != exitInvalid {
			t.Errorf("%q: exit %d, want %d", args, code, exitInvalid)
		}
		if stdout != "" {
			t.Errorf("%q printed on stdout: %q", args, stdout)
		}
		pos := errLines(t, stderr, path)
		lines := map[int]bool{}
		for _, p := range pos {
			lines[p[0]] = true
		}
		// All errors in one pass: the misspelled statement, the bad
		// float, the unknown task (and a missing main).
		for _, l := range []int{2, 3, 4} {
			if !lines[l] {
				t.Errorf("%q: no error on line %d:\n%s", args, l, stderr)
			}
		}
	}
	_, _, stderr := cli(t, "check", path)
	if !strings.Contains(stderr, path+":2:1: ") {
		t.Errorf("the unknown statement is not reported at 2:1:\n%s", stderr)
	}
}

func TestCheckSweepErrorHasPosition(t *testing.T) {
	path := writePlan(t, "glob.pln", "parameter f files select anyof \"*.nothing\"\ntask main\n\texec cat $f\nendtask\n")
	code, stdout, stderr := cli(t, "check", path)
	if code != exitInvalid || stdout != "" {
		t.Errorf("exit %d, stdout %q; want %d and nothing", code, stdout, exitInvalid)
	}
	pos := errLines(t, stderr, path)
	if len(pos) != 1 || pos[0][0] != 1 {
		t.Errorf("errors at %v, want one on line 1:\n%s", pos, stderr)
	}
}

func TestCheckMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.pln")
	code, stdout, stderr := cli(t, "check", path)
	if code != exitInvalid || stdout != "" || !strings.Contains(stderr, "missing.pln") {
		t.Errorf("exit %d, stdout %q, stderr %q; want %d and an error naming the file", code, stdout, stderr, exitInvalid)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"check"},
		{"check", "a.pln", "b.pln"},
		{"check", "--no-such-flag", testdataPlan("ranges")},
		{"generate"},
		{"generate", "--format", "xml", testdataPlan("ranges")},
		{"check", "--dialect", "ancient", testdataPlan("ranges")},
	} {
		code, stdout, stderr := cli(t, args...)
		if code != exitInvalid {
			t.Errorf("%q: exit %d, want %d", args, code, exitInvalid)
		}
		if stderr == "" && stdout == "" {
			t.Errorf("%q: printed nothing", args)
		}
	}
}

func TestGenerateJSONLMatchesGolden(t *testing.T) {
	for _, tt := range testdataPlans {
		t.Run(tt.name, func(t *testing.T) {
			got := mustRun(t, "generate", "--format", "jsonl", "--seed", goldenSeed, testdataPlan(tt.name))
			if want := golden(t, tt.name); got != want {
				t.Errorf("generate --format jsonl differs from the golden file:\n got %q\nwant %q", got, want)
			}
		})
	}
}

// TestGeneratedRunFileYieldsSameJobs: a run file written by generate,
// given back to check and generate, yields the plan's jobs; read back
// with another seed, random values stay those the run file recorded.
func TestGeneratedRunFileYieldsSameJobs(t *testing.T) {
	for _, tt := range testdataPlans {
		t.Run(tt.name, func(t *testing.T) {
			runFile := filepath.Join(t.TempDir(), tt.name+".run")
			if out := mustRun(t, "generate", "--seed", goldenSeed, "-o", runFile, testdataPlan(tt.name)); out != "" {
				t.Errorf("generate -o printed on stdout: %q", out)
			}
			want := golden(t, tt.name)
			r := checkJSON(t, runFile)
			if *r.Jobs != int64(strings.Count(want, "\n")) {
				t.Errorf("check on the run file: %d jobs, want %d", *r.Jobs, strings.Count(want, "\n"))
			}
			got := mustRun(t, "generate", "--format", "jsonl", "--seed", "1", runFile)
			if got != want {
				t.Errorf("jobs of the run file differ from the plan's:\n got %q\nwant %q", got, want)
			}
			// The default format is a run file too.
			again := mustRun(t, "generate", "--seed", "1", runFile)
			p, err := plan.Parse("again.run", []byte(again), plan.Options{})
			if err != nil {
				t.Fatalf("generate's default output is not a run file: %v\n%s", err, again)
			}
			s, err := sweep.New(p, sweep.Options{})
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if _, err := s.WriteJSONL(&buf, -1); err != nil {
				t.Fatal(err)
			}
			if buf.String() != want {
				t.Errorf("the run file of the run file has other jobs")
			}
		})
	}
}

func TestGenerateOutputFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "jobs.jsonl")
	planPath := testdataPlan("nimrodg")
	stdout := mustRun(t, "generate", "--format", "jsonl", "--seed", "1", planPath)
	for range 2 { // a new file, then replacing it
		if got := mustRun(t, "generate", "--format", "jsonl", "--seed", "1", "-o", out, planPath); got != "" {
			t.Errorf("stdout %q, want nothing with -o", got)
		}
		data, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != stdout {
			t.Errorf("-o wrote %q, stdout gets %q", data, stdout)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only jobs.jsonl (no temporary files left)", names)
	}

	// A failed generate leaves the existing file as it was.
	bad := writePlan(t, "bad.pln", "parameter x integer range from 1 to 3\ntask main\n\texec echo $y\nendtask\n")
	if code, _, _ := cli(t, "generate", "-o", out, bad); code != exitInvalid {
		t.Errorf("exit %d for a bad plan", code)
	}
	if data, _ := os.ReadFile(out); string(data) != stdout {
		t.Errorf("a failed generate changed %s", out)
	}

	// A directory that does not exist: bad usage (exit 2), nothing written.
	missing := filepath.Join(dir, "no", "such", "dir", "jobs.run")
	code, _, stderr := cli(t, "generate", "-o", missing, planPath)
	if code != exitInvalid || stderr == "" {
		t.Errorf("-o into a missing directory: exit %d, stderr %q; want %d and a message", code, stderr, exitInvalid)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Errorf("%s was created", missing)
	}
}

// TestGenerateOutputFileMode: the file -o writes has the permissions any
// new file gets (0666 less the umask), like a shell redirection, not the
// private 0600 of a temporary file.
func TestGenerateOutputFileMode(t *testing.T) {
	dir := t.TempDir()
	ref := filepath.Join(dir, "reference")
	f, err := os.Create(ref)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	refInfo, err := os.Stat(ref)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "jobs.run")
	mustRun(t, "generate", "-o", out, testdataPlan("ranges"))
	info, err := os.Stat(out)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Perm() != refInfo.Mode().Perm() {
		t.Errorf("generate -o made a file with mode %v; a new file gets %v", info.Mode().Perm(), refInfo.Mode().Perm())
	}
}

func TestGenerateLimit(t *testing.T) {
	name := "nimrodg"
	all := strings.SplitAfter(golden(t, name), "\n")
	for _, limit := range []int{0, 1, 5, 36, 1000} {
		n := min(limit, 36)
		got := mustRun(t, "generate", "--format", "jsonl", "--limit", strconv.Itoa(limit), testdataPlan(name))
		if want := strings.Join(all[:n], ""); got != want {
			t.Errorf("--limit %d: got %q, want the first %d golden lines", limit, got, n)
		}
		runOut := mustRun(t, "generate", "--limit", strconv.Itoa(limit), testdataPlan(name))
		p, err := plan.Parse("limit.run", []byte(runOut), plan.Options{})
		if err != nil {
			t.Fatalf("--limit %d: run file does not parse: %v", limit, err)
		}
		if p.Jobs == nil || p.Jobs.Count() != n {
			t.Errorf("--limit %d: run file lists %v jobs, want %d", limit, p.Jobs, n)
		}
	}
}

func TestGenerateSeed(t *testing.T) {
	path := testdataPlan("points")
	gen := func(args ...string) (string, string) {
		code, stdout, stderr := cli(t, append(append([]string{"generate", "--format", "jsonl"}, args...), path)...)
		if code != exitOK {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		return stdout, stderr
	}
	a, _ := gen("--seed", "1")
	b, _ := gen("--seed", "1")
	c, _ := gen("--seed", "2")
	if a != b {
		t.Error("--seed 1 twice gives different jobs")
	}
	if a == c {
		t.Error("--seed 1 and --seed 2 give the same jobs")
	}
	// Without --seed a new seed is drawn and printed, so the run can be
	// drawn again.
	d, stderr := gen()
	e, _ := gen()
	if d == e {
		t.Error("two runs without --seed drew the same values")
	}
	m := regexp.MustCompile(`seed (\d+)`).FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("without --seed, stderr does not say which seed was drawn: %q", stderr)
	}
	if again, _ := gen("--seed", m[1]); again != d {
		t.Errorf("--seed %s does not draw the same values again", m[1])
	}
	// The run file records the seed.
	runOut, _ := gen("--format", "run", "--seed", "31337")
	if !strings.Contains(runOut, "31337") {
		t.Errorf("the run file does not record seed 31337:\n%s", runOut)
	}
	// A plan without random values says nothing about seeds.
	if _, stderr := func() (string, string) {
		_, o, e := cli(t, "generate", testdataPlan("ranges"))
		return o, e
	}(); stderr != "" {
		t.Errorf("stderr %q for a plan without random values", stderr)
	}
}

func TestShellPlanRunFileRoundTrip(t *testing.T) {
	// Classic shell text keeps unknown names for the shell; the generated
	// run file keeps them literal, in whatever dialect it is read.
	path := writePlan(t, "shell.pln", "parameter x integer range from 1 to 2;\n"+
		"task main\n\tnode:execute echo $x ${HOME} \"$USER\" > out.$jobindex\nendtask\n")
	runFile := filepath.Join(filepath.Dir(path), "shell.run")
	mustRun(t, "generate", "-o", runFile, path)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p1, err := plan.Parse(path, src, plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runSrc, err := os.ReadFile(runFile)
	if err != nil {
		t.Fatal(err)
	}
	p2, err := plan.Parse(runFile, runSrc, plan.Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, runSrc)
	}
	lookup := func(name string) (string, bool) {
		if name == "x" {
			return "7", true
		}
		if name == "jobindex" {
			return "3", true
		}
		return "", false
	}
	want := "echo 7 ${HOME} \"$USER\" > out.3"
	for _, p := range []*plan.Plan{p1, p2} {
		if got := p.Task("main").Commands[0].Args[0].Expand(lookup); got != want {
			t.Errorf("%s: shell text expands to %q, want %q", p.File, got, want)
		}
	}
}
