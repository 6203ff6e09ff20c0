package plan_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"orrery/plan"
)

// corpusDir holds the plan and run files of the nimrodg parser's test
// suite; docs/plan-language.md ("The nimrodg corpus") gives the expected
// outcome of each.
var corpusDir = filepath.Join("..", "testdata", "nimrodg") // a copy of ../shared/testdata/nimrodg, kept unchanged

// corpusErr is an expected error: its line and a part of its message.
type corpusErr struct {
	line int
	text string
}

type corpusCase struct {
	valid bool
	// Valid files.
	params, vars int
	jobs         int // jobs in the jobs block, or -1 for none
	// Invalid files: every error, in order.
	errs []corpusErr
}

var corpusOutcomes = map[string]corpusCase{
	"aero-onlyvars.pln":  {valid: true, params: 5, jobs: -1},
	"onlyjobs-good.run":  {valid: true, vars: 2, jobs: 4},
	"onlytasks-good.run": {valid: true, vars: 2, jobs: 0},
	"onlyvars-good.run":  {valid: true, vars: 2, jobs: 0},
	"test1.run":          {valid: true, vars: 2, jobs: 2},

	"badsyntax.run": {errs: []corpusErr{
		{5, "job 0001 names 3 values, want 2"},
		{6, "job 0002 names 3 values, want 2"},
		// The file ends statements with ';', so it is classic, and
		// `copy "as sdfs " "as"` copies root to root.
		{10, "copy from root to root"},
	}},
	"invalid-variable-substitution.pln": {errs: []corpusErr{{4, "unknown name $y"}}},
	"onlyjobs-first-nonone.run":         {errs: []corpusErr{{4, "first job is 0002, want 0001"}}},
	"onlyjobs-nonconsec-index.run":      {errs: []corpusErr{{5, "job 0003 is not consecutive: it follows job 0001"}}},
	"onlyjobs-vars-badval.run":          {errs: []corpusErr{{4, "job 0001: value index 5 is out of range for y"}}},
	"onlyjobs-vars-toofew.run":          {errs: []corpusErr{{4, "job 0001 names 3 values, want 2"}}},
	"onlyjobs-vars-toomany.run":         {errs: []corpusErr{{4, "job 0001 names 1 values, want 2"}}},
	"onlytasks-dup-name.run":            {errs: []corpusErr{{9, "duplicate task main"}}},
	"onlyvars-bad-index.run":            {errs: []corpusErr{{2, "variable index 2 is not consecutive"}}},
	"onlyvars-dup-index.run":            {errs: []corpusErr{{2, "duplicate variable index 0"}}},
	"onlyvars-dup-name.run":             {errs: []corpusErr{{2, "duplicate variable x"}}},
	"onlyvars-first-nonzero.run":        {errs: []corpusErr{{1, "first variable index is 1, want 0"}}},
	"test2.pln": {errs: []corpusErr{
		{14, "unknown name ${nimrod_jobindex}"},
		{16, "unknown name ${nimrod_jobindex}"},
		{18, "unknown name ${var}"},
		{20, "unknown name ${var}"},
		{24, "unknown name ${var}"},
		{26, "unknown name ${nimrod_jobindex}"},
	}},
	"test_badtask.pln": {errs: []corpusErr{
		{3, `unknown task "mai" (did you mean main?)`},
		{13, "missing task main"},
	}},
	"test_truncparam.pln": {errs: []corpusErr{{2, `unknown statement "param"`}}},
}

// corpusOther are the files of the directory that are not plans.
var corpusOther = []string{"LICENSE", "NOTICE"}

func readCorpus(t *testing.T, name string) []byte {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(corpusDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func TestCorpus(t *testing.T) {
	entries, err := os.ReadDir(corpusDir)
	if err != nil {
		t.Fatalf("the shared corpus is missing: %v", err)
	}
	var names []string
	for _, e := range entries {
		if !slices.Contains(corpusOther, e.Name()) {
			names = append(names, e.Name())
		}
	}
	for name := range corpusOutcomes {
		if !slices.Contains(names, name) {
			t.Errorf("%s is in the table but not in %s", name, corpusDir)
		}
	}
	if len(names) < len(corpusOutcomes) {
		t.Fatalf("%s holds %d plan files, the table %d", corpusDir, len(names), len(corpusOutcomes))
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			want, ok := corpusOutcomes[name]
			if !ok {
				t.Fatalf("%s has no expected outcome in the table", name)
			}
			path := filepath.Join(corpusDir, name)
			p, err := plan.Parse(path, readCorpus(t, name), plan.Options{})
			if want.valid {
				checkValidCorpus(t, p, err, want)
			} else {
				checkInvalidCorpus(t, path, p, err, want)
			}
		})
	}
}

func checkValidCorpus(t *testing.T, p *plan.Plan, err error, want corpusCase) {
	t.Helper()
	if err != nil {
		t.Fatalf("want valid, got:\n%v", err)
	}
	if p.Dialect != plan.Modern {
		t.Errorf("dialect = %s (%s), want modern", p.Dialect, p.DialectReason)
	}
	if len(p.Params) != want.params || len(p.Vars) != want.vars {
		t.Errorf("%d parameters and %d variables, want %d and %d", len(p.Params), len(p.Vars), want.params, want.vars)
	}
	switch {
	case want.jobs < 0 && p.Jobs != nil:
		t.Errorf("a jobs block of %d jobs, want none", p.Jobs.Count())
	case want.jobs >= 0 && p.Jobs == nil:
		t.Errorf("no jobs block, want %d jobs", want.jobs)
	case want.jobs >= 0 && p.Jobs.Count() != want.jobs:
		t.Errorf("%d jobs, want %d", p.Jobs.Count(), want.jobs)
	}
	if p.Task("main") == nil {
		t.Errorf("no task main")
	}
}

// errPrefix splits an error's text "FILE:LINE:COL: message".
var errPrefix = regexp.MustCompile(`^(.*):(\d+):(\d+): (.+)$`)

func checkInvalidCorpus(t *testing.T, path string, p *plan.Plan, err error, want corpusCase) {
	t.Helper()
	if err == nil {
		t.Fatalf("want invalid, got a valid plan")
	}
	if p != nil {
		t.Errorf("a plan was returned along with the errors")
	}
	lines := strings.Split(err.Error(), "\n")
	ok := len(lines) == len(want.errs)
	for i := 0; ok && i < len(lines); i++ {
		m := errPrefix.FindStringSubmatch(lines[i])
		ok = m != nil && m[1] == path && m[2] == fmt.Sprint(want.errs[i].line) && strings.Contains(m[4], want.errs[i].text)
	}
	if !ok {
		var w []string
		for _, e := range want.errs {
			w = append(w, fmt.Sprintf("%s:%d:*: …%s…", path, e.line, e.text))
		}
		t.Errorf("errors:\ngot\n\t%s\nwant\n\t%s", strings.Join(lines, "\n\t"), strings.Join(w, "\n\t"))
	}
}

// TestCorpusDetails checks what the valid files hold.
func TestCorpusDetails(t *testing.T) {
	p := parseCorpus(t, "aero-onlyvars.pln", plan.Options{})
	var got []string
	for _, q := range p.Params {
		got = append(got, describeParam(q))
	}
	want := []string{
		`aircraft_model files anyof values=["A3??.dat" "737-*.dat"]`,
		`AoA float range label="Angle of attack" from=-45 to=45 step=2.5`,
		`winglets text anyof values=["none" "fence" "blended" "raked"]`,
		`airspeed integer range from=50 to=600 step=50`,
		`turbulence float random label="Normalized Reynolds" from=1 to=2`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("aero-onlyvars.pln parameters:\ngot\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	// 37 × 4 × 12 × 1 jobs per matching file.
	steps := func(q *plan.Param) float64 {
		d := q.Domain
		return (d.To.F-d.From.F)/d.Step.F + 1
	}
	if n := steps(p.Params[1]) * float64(len(p.Params[2].Domain.Values)) * steps(p.Params[3]); n != 37*4*12 {
		t.Errorf("aero-onlyvars.pln: %v combinations per file, want %d", n, 37*4*12)
	}
	if d := p.Params[4].Domain; d.Points != nil {
		t.Errorf("turbulence has points %s, want the default of one value", d.Points.Text)
	}
	if got := p.Task("main").Commands[3].String(); got != `shexec "./run_wing_test.sh ${aircraft_model} ${winglets} ${AoA} ${airspeed} ${turbulence} >> output.${jobindex}"` {
		t.Errorf("aero-onlyvars.pln shexec = %s", got)
	}

	p = parseCorpus(t, "onlyjobs-good.run", plan.Options{})
	if got := fmt.Sprint(p.Jobs.Job(0), p.Jobs.Job(1), p.Jobs.Job(2), p.Jobs.Job(3)); got != "[0 0] [0 1] [1 0] [1 1]" {
		t.Errorf("onlyjobs-good.run jobs = %s", got)
	}

	p = parseCorpus(t, "test1.run", plan.Options{})
	var xs []string
	for _, v := range p.Vars[0].Values {
		xs = append(xs, v.Text)
	}
	if got := strings.Join(xs, "|"); got != "value-x-0|value-x-1|2|a|za|sf|a|s|a|sdfa|sd|asdfasd| " {
		t.Errorf("test1.run x = %q", got)
	}
	if got := fmt.Sprint(p.Jobs.Job(0), p.Jobs.Job(1)); got != "[0 0] [1 0]" {
		t.Errorf("test1.run jobs = %s", got)
	}
	m := p.Task("main").Commands
	if len(m) != 7 || m[0].Src.Side != plan.Node || m[0].Src.Path.String() != "as sdfs " || m[1].Dst.Side != plan.Root {
		t.Errorf("test1.run main = %v", m)
	}

	// test2.pln fails for its unknown names because it is modern: read as
	// classic, the shell text may use them, and only the copy path fails.
	_, err := plan.Parse("test2.pln", readCorpus(t, "test2.pln"), plan.Options{Dialect: forceClassic()})
	if err == nil || err.Error() != "test2.pln:26:20: unknown name ${nimrod_jobindex} in substitution" {
		t.Errorf("test2.pln read as classic: %v", err)
	}
}

func parseCorpus(t *testing.T, name string, opts plan.Options) *plan.Plan {
	t.Helper()
	p, err := plan.Parse(name, readCorpus(t, name), opts)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return p
}

// TestCorpusRoundTrip prints the tasks of every valid file in canonical
// form and reads them back.
func TestCorpusRoundTrip(t *testing.T) {
	for name, c := range corpusOutcomes {
		if !c.valid {
			continue
		}
		t.Run(name, func(t *testing.T) {
			src := string(readCorpus(t, name))
			i := strings.Index(src, "\ntask ")
			if i < 0 {
				t.Fatalf("%s has no task", name)
			}
			roundTrip(t, src[:i+1], src[i+1:])
		})
	}
}
