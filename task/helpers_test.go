package task

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"orrery/plan"
	"orrery/sweep"
)

// parsePlan parses a plan text, failing the test on any error.
func parsePlan(t *testing.T, src string) *plan.Plan {
	t.Helper()
	p, err := plan.Parse("t.pln", []byte(src), plan.Options{})
	if err != nil {
		t.Fatalf("parse:\n%s\n%v", src, err)
	}
	return p
}

// firstJob returns the plan's first job.
func firstJob(t *testing.T, p *plan.Plan, root string) Job {
	t.Helper()
	s, err := sweep.New(p, sweep.Options{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	it := s.Iter()
	if !it.Next() {
		t.Fatal("the plan has no jobs")
	}
	return NewJob(s, it.Job())
}

// env is a small, known environment for test jobs.
func testEnv() []string {
	return []string{"PATH=" + os.Getenv("PATH"), "INHERITED=kept"}
}

// fixture is a root directory and a job directory for one test.
type fixture struct {
	t    *testing.T
	root string // the root directory
	job  string // the job directory (not created)
}

func newFixture(t *testing.T) *fixture {
	base := t.TempDir()
	f := &fixture{t: t, root: filepath.Join(base, "root"), job: filepath.Join(base, "node", "j1")}
	if err := os.MkdirAll(f.root, 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// write creates a file (and its directories) under dir.
func (f *fixture) write(dir, name, content string) {
	f.t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

// read returns a file's content, failing when it is missing.
func (f *fixture) read(dir, name string) string {
	f.t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		f.t.Fatal(err)
	}
	return string(b)
}

// run parses a plan whose main task is body, after the parameter lines
// params, and runs main for the first job.
func (f *fixture) run(params, body string, opts Options) (*Result, error) {
	f.t.Helper()
	return f.runCtx(context.Background(), params, body, opts)
}

func (f *fixture) runCtx(ctx context.Context, params, body string, opts Options) (*Result, error) {
	f.t.Helper()
	if params == "" {
		params = `parameter x text select anyof "ex" "other"`
	}
	p := parsePlan(f.t, params+"\ntask main\n"+body+"\nendtask\n")
	if opts.Env == nil {
		opts.Env = testEnv()
	}
	opts.File = "t.pln"
	return RunTask(ctx, p.Task("main"), firstJob(f.t, p, f.root), f.job, DirRoot{Dir: f.root}, opts)
}

// mustRun runs like run and fails the test when the task fails.
func (f *fixture) mustRun(params, body string) *Result {
	f.t.Helper()
	res, err := f.run(params, body, Options{})
	if err != nil {
		f.t.Fatalf("task failed: %v\n%s", err, dump(res))
	}
	return res
}

// dump describes a result for failure messages.
func dump(res *Result) string {
	var b strings.Builder
	for _, c := range res.Commands {
		fmt.Fprintf(&b, "  %s exit=%d signal=%d err=%v\n    stdout=%q\n    stderr=%q\n",
			c.Command, c.Exit, c.Signal, c.Err, c.Stdout.Tail, c.Stderr.Tail)
	}
	return b.String()
}
