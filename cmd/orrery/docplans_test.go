package main

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Every plan the docs show is a fenced ```plan block, and this test runs
// each one. The HTML comment on the line before a block says more:
//
//	<!-- file examples/model/model.pln -->  the block is that file's text, run in a copy of its directory
//	<!-- in examples/reference -->          the block runs in a copy of that directory (for its files)
//	<!-- error: TEXT -->                    the block shows a bad plan: check exits 2 with TEXT on stderr
//	<!-- warning: TEXT -->                  the block runs, and check's one warning contains TEXT
//	<!-- exit N -->                         the block runs and exits N (1: some job fails, as shown)
//	<!-- jobs N -->                         check counts N jobs
//
// Directives combine with "|": <!-- in examples/reference | jobs 32 -->.
// Otherwise it runs in an empty directory. A block that runs must exit 0
// (or N) with no warning.

// looksLikePlan matches a code block that holds a plan: a task or a
// parameter statement on a line of its own.
var looksLikePlan = regexp.MustCompile(`(?m)^\s*(task\s+\w+\s*$|endtask\s*$|parameter\s+\w+\s+\w)`)

// docPlan is a plan block of the docs.
type docPlan struct {
	mdBlock
	source, dir, errText, warnText string // the directives'
	exit                           int
	jobs                           int64 // -1: not said
}

// docPlans returns every plan block of README.md and docs/*.md. It fails
// the test for a block that looks like a plan but is not marked as one,
// and for a directive it does not know.
func docPlans(t *testing.T) []docPlan {
	t.Helper()
	files := docFiles(t)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	var plans []docPlan
	for _, name := range names {
		for _, b := range mdBlocks(t, files[name], name) {
			if b.lang != "plan" {
				if (!b.fenced || b.lang == "") && looksLikePlan.MatchString(b.text) {
					t.Errorf("%s: a plan in a code block not marked ```plan, so no test runs it:\n%s", b.where(), b.text)
				}
				continue
			}
			p := docPlan{mdBlock: b, jobs: -1}
			for _, c := range strings.Split(b.comment, "|") {
				if !p.directive(strings.TrimSpace(c)) {
					t.Errorf("%s: unknown directive %q before a plan block", b.where(), c)
				}
			}
			plans = append(plans, p)
		}
	}
	return plans
}

// directive reads one directive of a plan block's comment.
func (p *docPlan) directive(c string) bool {
	word, rest, _ := strings.Cut(c, " ")
	rest = strings.TrimSpace(rest)
	switch word {
	case "":
	case "file":
		p.source = rest
		p.dir = filepath.Dir(rest)
	case "in":
		p.dir = rest
	case "error:":
		p.errText = rest
	case "warning:":
		p.warnText = rest
	case "exit", "jobs":
		n, err := strconv.Atoi(rest)
		if err != nil {
			return false
		}
		if word == "exit" {
			p.exit = n
		} else {
			p.jobs = int64(n)
		}
	default:
		return false
	}
	return true
}

// TestDocPlans runs every plan that README.md and docs/*.md show.
func TestDocPlans(t *testing.T) {
	plans := docPlans(t)
	inReadme := 0
	for _, p := range plans {
		if p.file == "README.md" {
			inReadme++
		}
	}
	if inReadme == 0 {
		t.Error("README.md shows no plan block")
	}
	for _, p := range plans {
		t.Run(p.where(), func(t *testing.T) { runDocPlan(t, p) })
	}
}

// runDocPlan checks and runs one plan block as its directive says.
func runDocPlan(t *testing.T, p docPlan) {
	dir := e2eDir(t)
	name := "doc.pln"
	if p.dir != "" {
		copyExampleDir(t, filepath.Join(repoRoot, p.dir), dir)
	}
	if p.source != "" {
		data, err := os.ReadFile(filepath.Join(repoRoot, p.source))
		if err != nil {
			t.Fatalf("%s: %v", p.where(), err)
		}
		if string(data) != p.text {
			t.Errorf("%s: the block is not the text of %s", p.where(), p.source)
		}
		name = filepath.Base(p.source)
	}
	path := filepath.Join(dir, name)
	e2eWrite(t, path, p.text)
	if p.errText != "" {
		code, _, stderr := cli(t, "check", path)
		if code != exitInvalid || !strings.Contains(stderr, p.errText) {
			t.Errorf("%s: check: exit %d, stderr:\n%s\nwant exit 2 and %q", p.where(), code, stderr, p.errText)
		}
		return
	}
	r := checkJSON(t, path)
	if p.jobs >= 0 && *r.Jobs != p.jobs {
		t.Errorf("%s: %d jobs, want %d", p.where(), *r.Jobs, p.jobs)
	}
	switch {
	case p.warnText == "" && len(r.Warnings) > 0:
		t.Errorf("%s: warnings %q, want none", p.where(), r.Warnings)
	case p.warnText != "" && (len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], p.warnText)):
		t.Errorf("%s: warnings %q, want one with %q", p.where(), r.Warnings, p.warnText)
	}
	code, stdout, stderr := e2eRun(t, dir, 2*time.Minute, "run", name)
	if code != p.exit {
		_, jobs, _ := e2eRun(t, dir, time.Minute, "jobs")
		t.Errorf("%s: run: exit %d, want %d\nstdout:\n%s\nstderr:\n%s\njobs:\n%s", p.where(), code, p.exit, stdout, stderr, jobs)
	}
}

// copyExampleDir copies the files of an example directory, without the
// state and results a run of it may have left.
func copyExampleDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".orrery") || rel == "results") {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		st, _ := d.Info()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(to, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, st.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
