package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"orrery/plan"
)

// accessPlan is the plan of the access tests: classic (the `;`), so a
// bare copy path is on the root.
const accessPlan = `parameter x integer range from 1 to 3;
task nodestart
    copy tool.sh node:.
endtask
task main
    copy input-$x.txt node:input.txt
    copy data/*.csv node:.
    node:execute sh tool.sh
    copy node:output.txt results/out-$x.txt
    copy node:*.log results/logs/
endtask
`

// xJob is job number i of a plan with the one parameter x.
func xJob(i int64, x string) Job { return Job{Index: i, Names: []string{"x"}, Values: []string{x}} }

// accessCase is one question to an Access.
type accessCase struct {
	op, name string
	want     bool
}

func (c accessCase) ask(a *Access) bool {
	switch c.op {
	case "open":
		return a.CanOpen(c.name)
	case "stat":
		return a.CanStat(c.name)
	case "glob":
		return a.CanGlob(c.name)
	case "put":
		return a.CanPut(c.name)
	}
	panic("unknown op " + c.op)
}

func checkAccess(t *testing.T, what string, a *Access, cases []accessCase) {
	t.Helper()
	for _, c := range cases {
		if got := c.ask(a); got != c.want {
			t.Errorf("%s: %s %q = %v, want %v", what, c.op, c.name, got, c.want)
		}
	}
}

// never lists what no grant of any plan allows.
var never = []accessCase{
	{"open", "/etc/passwd", false},
	{"stat", "/etc/passwd", false},
	{"put", "/etc/passwd", false},
	{"glob", "/etc/*", false},
	{"open", "../x", false},
	{"open", "..", false},
	{"open", "a/../../x", false},
	{"put", "../results/out-2.txt", false},
	{"open", "", false},
	{"stat", ".", false},
	{"put", ".", false},
	{"glob", "../*", false},
}

func TestTaskAccess(t *testing.T) {
	p := parsePlan(t, accessPlan)
	mainTask, nodestart := p.Task(plan.TaskMain), p.Task(plan.TaskNodeStart)
	main2 := TaskAccess(mainTask, xJob(2, "2"))
	checkAccess(t, "main x=2", main2, append([]accessCase{
		// copy input-$x.txt node:input.txt
		{"open", "input-2.txt", true},
		{"stat", "input-2.txt", true},
		{"open", "./input-2.txt", true},
		{"open", "data/../input-2.txt", true}, // the same path, lexically
		{"open", "input-1.txt", false},
		{"open", "input-3.txt", false},
		{"put", "input-2.txt", false},
		// copy data/*.csv node:.
		{"glob", "data/*.csv", true},
		{"glob", "./data//*.csv", true},
		{"glob", "data/*", false},
		{"glob", "*", false},
		{"glob", "data/*/*.csv", false},
		{"open", "data/a.csv", true},
		{"stat", "data/b.csv", true},
		{"open", "./data/a.csv", true},
		{"open", "data/sub/a.csv", false},
		{"open", "other.csv", false},
		{"open", "data/a.txt", false},
		{"open", "data", false},
		{"put", "data/a.csv", false},
		// copy node:output.txt results/out-$x.txt
		{"stat", "results/out-2.txt", true},
		{"put", "results/out-2.txt", true},
		{"put", "results//out-2.txt", true},
		{"put", "results/out-2.txt/output.txt", true}, // out-2.txt may be a directory
		{"put", "results/out-2.txt/other.txt", false},
		{"open", "results/out-2.txt", false},
		{"put", "results/out-1.txt", false},
		{"put", "results/out-3.txt", false},
		{"stat", "results/out-1.txt", false},
		// copy node:*.log results/logs/
		{"put", "results/logs/a.log", true},
		{"put", "./results/logs/b.log", true},
		{"put", "results/logs/../x", false},
		{"put", "results/logs/../logs.log", false},
		{"put", "results/logs/sub/a.log", false},
		{"put", "results/logs/a.txt", false}, // copy writes only names *.log matches
		{"put", "results/logs", false},
		{"stat", "results/logs", false}, // written as a directory: copy does not ask
		{"open", "results/logs/a.log", false},
		// nodestart's file is not main's
		{"open", "tool.sh", false},
	}, never...))
	if got := fmt.Sprint(main2.Reads()); got != "[input-2.txt]" {
		t.Errorf("Reads: %s, want the one plain source (a glob's files are not known ahead)", got)
	}

	checkAccess(t, "nodestart", TaskAccess(nodestart, Job{}), append([]accessCase{
		{"open", "tool.sh", true},
		{"stat", "tool.sh", true},
		{"put", "tool.sh", false},
		{"open", "input-2.txt", false},
		{"put", "results/out-2.txt", false},
	}, never...))

	// Root tasks and missing tasks grant nothing.
	rootTask := &plan.Task{Name: plan.TaskRootStart, Commands: mainTask.Commands}
	for what, a := range map[string]*Access{
		"root task": TaskAccess(rootTask, xJob(2, "2")),
		"nil task":  TaskAccess(nil, xJob(2, "2")),
		"nil":       nil,
	} {
		checkAccess(t, what, a, []accessCase{
			{"open", "input-2.txt", false},
			{"glob", "data/*.csv", false},
			{"put", "results/out-2.txt", false},
		})
	}
}

func TestAccessAdd(t *testing.T) {
	p := parsePlan(t, accessPlan)
	a := TaskAccess(p.Task(plan.TaskNodeStart), Job{})
	a.Add(TaskAccess(p.Task(plan.TaskMain), xJob(1, "1")))
	a.Add(TaskAccess(p.Task(plan.TaskMain), xJob(3, "3")))
	a.Add(nil)
	a.Add(a)
	checkAccess(t, "nodestart + x=1 + x=3", a, append([]accessCase{
		{"open", "tool.sh", true},
		{"open", "input-1.txt", true},
		{"open", "input-3.txt", true},
		{"open", "input-2.txt", false},
		{"put", "results/out-1.txt", true},
		{"put", "results/out-3.txt", true},
		{"put", "results/out-2.txt", false},
		{"put", "results/logs/x.log", true},
		{"open", "data/a.csv", true},
	}, never...))

	var g Grants
	if g.Access().CanOpen("tool.sh") {
		t.Error("empty Grants allow tool.sh")
	}
	g.Grant("nodestart", TaskAccess(p.Task(plan.TaskNodeStart), Job{}))
	g.Grant(1, TaskAccess(p.Task(plan.TaskMain), xJob(1, "1")))
	g.Grant(2, TaskAccess(p.Task(plan.TaskMain), xJob(2, "2")))
	before := g.Access()
	checkAccess(t, "grants", before, []accessCase{
		{"open", "tool.sh", true}, {"open", "input-1.txt", true}, {"open", "input-2.txt", true},
	})
	g.Revoke(1)
	g.Revoke("never granted")
	checkAccess(t, "grants after revoking 1", g.Access(), []accessCase{
		{"open", "tool.sh", true}, {"open", "input-1.txt", false}, {"open", "input-2.txt", true},
		{"put", "results/out-1.txt", false}, {"put", "results/out-2.txt", true},
	})
	if !before.CanOpen("input-1.txt") {
		t.Error("Revoke changed an Access returned before")
	}
}

func TestTaskAccessOutsideRoot(t *testing.T) {
	// Values that climb out of the root directory, and absolute paths,
	// give no grant at all.
	p := parsePlan(t, `parameter x text select anyof "../../etc/passwd";
task main
    copy root:in/$x node:a
    copy root:$x node:b
    copy root:data/$x/* node:c/
    copy node:c root:out/$x
    copy node:d root:/abs/$x
    copy node:*.e root:$x/
    copy node:f root:/tmp/
    copy node:g root:..
    copy node:h root:../
endtask
`)
	q := parsePlan(t, `parameter x text select anyof "../../etc/passwd";
task main
    copy root:$x node:a
    copy root:$x/* node:b/
    copy node:c root:$x
    copy node:*.d root:$x/
endtask
`)
	for _, tc := range []struct {
		p *plan.Plan
		x string
	}{
		{p, "../../etc/passwd"},
		{q, "../../etc/passwd"},
		{q, "../x"},
		{q, ".."},
		{q, "/etc/passwd"},
		{q, "/"},
	} {
		a := TaskAccess(tc.p.Task(plan.TaskMain), xJob(1, tc.x))
		if len(a.reads)+len(a.stats)+len(a.puts)+len(a.globs)+len(a.children) != 0 {
			t.Errorf("x=%q: granted %+v", tc.x, *a)
		}
		checkAccess(t, "x="+tc.x, a, never)
	}

	// A value with "../" that stays inside the root is a root path like
	// any other: the check is lexical, as os.Root's is.
	a := TaskAccess(parsePlan(t, accessPlan).Task(plan.TaskMain), xJob(1, "../../etc/passwd"))
	checkAccess(t, "x=../../etc/passwd", a, append([]accessCase{
		{"open", "input-../../etc/passwd.txt", true}, // that is etc/passwd.txt in the root
		{"open", "etc/passwd.txt", true},
		{"open", "etc/passwd", false},
		{"open", "../etc/passwd", false},
		{"put", "results/out-../../etc/passwd.txt", true}, // results/etc/passwd.txt
		{"put", "results/etc/passwd.txt", true},
		{"put", "etc/passwd.txt", false},
	}, never...))
}

func TestTaskAccessNames(t *testing.T) {
	// Literal names with glob metacharacters, and sources in directories.
	p := parsePlan(t, `parameter x text select anyof "a";
task main
    copy "in/\\[$x\\].txt" node:.
    copy node:sub/weird[1].txt root:out/
    copy node:sub/*.csv root:csv
    copy node:one.txt root:./
endtask
`)
	a := TaskAccess(p.Task(plan.TaskMain), xJob(1, "a"))
	checkAccess(t, "names", a, []accessCase{
		{"glob", `in/\[a\].txt`, true},
		{"open", "in/[a].txt", true},
		{"open", "in/a.txt", false},
		{"put", "out/weird1.txt", true}, // a node glob: copy writes what it matches
		{"put", "out/weird[1].txt", false},
		{"put", "csv", true},
		{"stat", "csv", true},
		{"put", "csv/x.csv", true},
		{"put", "csv/x.txt", false},
		{"put", "one.txt", true},
		{"put", "two.txt", false},
	})
}

// recordingRoot is a Root that records the calls that reach it.
type recordingRoot struct {
	calls []string
	globs []string // what Glob returns
}

func (r *recordingRoot) Open(_ context.Context, name string) (io.ReadCloser, error) {
	r.calls = append(r.calls, "open "+name)
	return io.NopCloser(strings.NewReader("data")), nil
}

func (r *recordingRoot) Stat(_ context.Context, name string) (fs.FileInfo, error) {
	r.calls = append(r.calls, "stat "+name)
	return nil, fs.ErrNotExist
}

func (r *recordingRoot) Put(_ context.Context, name string, _ fs.FileMode, rd io.Reader) error {
	r.calls = append(r.calls, "put "+name)
	_, err := io.Copy(io.Discard, rd)
	return err
}

func (r *recordingRoot) Glob(_ context.Context, pattern string) ([]string, error) {
	r.calls = append(r.calls, "glob "+pattern)
	return r.globs, nil
}

// countingReader counts the reads made of it.
type countingReader struct{ reads int }

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return 0, io.EOF
}

func TestGuardedRoot(t *testing.T) {
	p := parsePlan(t, accessPlan)
	var g Grants
	g.Grant(2, TaskAccess(p.Task(plan.TaskMain), xJob(2, "2")))
	ctx := context.Background()
	for _, tc := range []struct {
		op, name string
		call     string // the call that reaches the Root, or "" when refused
		reason   string
	}{
		{"open", "input-2.txt", "open input-2.txt", ""},
		{"open", "./input-2.txt", "open input-2.txt", ""},
		{"open", "input-1.txt", "", "no copy command of this node's attempts names it"},
		{"open", "secret.txt", "", "no copy command of this node's attempts names it"},
		{"open", "/etc/passwd", "", "outside the root directory"},
		{"open", "a/../../x", "", "outside the root directory"},
		{"stat", "data/a.csv", "stat data/a.csv", ""},
		{"stat", "results/out-2.txt", "stat results/out-2.txt", ""},
		{"stat", "results/out-1.txt", "", "no copy command of this node's attempts names it"},
		{"stat", "../x", "", "outside the root directory"},
		{"put", "results/logs//a.log", "put results/logs/a.log", ""},
		{"put", "results/logs/../x", "", "no copy command of this node's attempts names it"},
		{"put", "results/../../x", "", "outside the root directory"},
		{"put", "/tmp/x", "", "outside the root directory"},
		{"glob", "data/*.csv", "glob data/*.csv", ""},
		{"glob", "*", "", "no copy command of this node's attempts names it"},
		{"glob", "/root/.*", "", "outside the root directory"},
	} {
		rec := &recordingRoot{}
		gr := GuardedRoot{Root: rec, Allowed: g.Access}
		var err error
		body := &countingReader{}
		switch tc.op {
		case "open":
			var rc io.ReadCloser
			if rc, err = gr.Open(ctx, tc.name); err == nil {
				rc.Close()
			}
		case "stat":
			_, err = gr.Stat(ctx, tc.name)
		case "put":
			err = gr.Put(ctx, tc.name, 0o644, body)
		case "glob":
			_, err = gr.Glob(ctx, tc.name)
		}
		what := tc.op + " " + tc.name
		if tc.call != "" {
			if errors.Is(err, ErrDenied) || !slices.Equal(rec.calls, []string{tc.call}) {
				t.Errorf("%s: calls %q, err %v; want the call %q", what, rec.calls, err, tc.call)
			}
			continue
		}
		if len(rec.calls) != 0 {
			t.Errorf("%s: refused, yet reached the root: %q", what, rec.calls)
		}
		if body.reads != 0 {
			t.Errorf("%s: a refused Put read its data", what)
		}
		var ae *AccessError
		if !errors.As(err, &ae) || !errors.Is(err, ErrDenied) || ae.Op != tc.op {
			t.Errorf("%s: err = %#v, want an *AccessError of op %s that is ErrDenied", what, err, tc.op)
			continue
		}
		if want := fmt.Sprintf("root path %q refused: %s", tc.name, tc.reason); err.Error() != want {
			t.Errorf("%s:\n got %s\nwant %s", what, err, want)
		}
	}

	// Glob keeps only the matches the node may read.
	rec := &recordingRoot{globs: []string{"data/a.csv", "data/b.csv", "data/sub/c.csv", "secret.txt", "../x", "/etc/passwd"}}
	got, err := GuardedRoot{Root: rec, Allowed: g.Access}.Glob(ctx, "data/*.csv")
	if want := []string{"data/a.csv", "data/b.csv"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("Glob = %q, %v; want %q", got, err, want)
	}

	// Grants are read per request: a revoked attempt's files are refused
	// at once; no Allowed allows nothing.
	g.Revoke(2)
	rec = &recordingRoot{}
	if _, err := (GuardedRoot{Root: rec, Allowed: g.Access}).Open(ctx, "input-2.txt"); !errors.Is(err, ErrDenied) || len(rec.calls) != 0 {
		t.Errorf("after Revoke: %v, calls %q", err, rec.calls)
	}
	if _, err := (GuardedRoot{Root: rec}).Stat(ctx, "input-2.txt"); !errors.Is(err, ErrDenied) || len(rec.calls) != 0 {
		t.Errorf("nil Allowed: %v, calls %q", err, rec.calls)
	}
}

func TestCheckRootPath(t *testing.T) {
	for _, tc := range []struct{ in, clean, reason string }{
		{"a/b", "a/b", ""},
		{"./a//b/", "a/b", ""},
		{"a/../b", "b", ""},
		{"..a/b", "..a/b", ""},
		{"a/..b", "a/..b", ""},
		{"/etc/passwd", "", "outside the root directory"},
		{"//x", "", "outside the root directory"},
		{"..", "", "outside the root directory"},
		{"../x", "", "outside the root directory"},
		{"a/../../x", "", "outside the root directory"},
		{"a/b/../../..", "", "outside the root directory"},
		{"", "", "empty path"},
		{".", "", "the root directory itself is not a file"},
		{"a/..", "", "the root directory itself is not a file"},
	} {
		c, err := CheckRootPath(tc.in)
		if tc.reason == "" {
			if err != nil || c != tc.clean {
				t.Errorf("CheckRootPath(%q) = %q, %v; want %q", tc.in, c, err, tc.clean)
			}
			continue
		}
		want := fmt.Sprintf("root path %q refused: %s", tc.in, tc.reason)
		if c != "" || err == nil || err.Error() != want || !errors.Is(err, ErrDenied) {
			t.Errorf("CheckRootPath(%q) = %q, %v; want %s", tc.in, c, err, want)
		}
	}
}

// TestGrantsMatchCopy runs the plan's tasks for real against a guarded,
// confined root: everything copy does must be granted, and a node with
// another job's grants is refused.
func TestGrantsMatchCopy(t *testing.T) {
	p := parsePlan(t, accessPlan)
	for _, outIsDir := range []bool{false, true} {
		t.Run(fmt.Sprintf("outIsDir=%v", outIsDir), func(t *testing.T) {
			f := newFixture(t)
			f.write(f.root, "tool.sh", "echo out > output.txt; echo a > a.log; echo b > b.log\n")
			f.write(f.root, "input-2.txt", "in 2")
			f.write(f.root, "input-1.txt", "in 1")
			f.write(f.root, "data/a.csv", "a")
			f.write(f.root, "data/b.csv", "b")
			f.write(f.root, "data/sub/c.csv", "c")
			if outIsDir {
				os.MkdirAll(filepath.Join(f.root, "results/out-2.txt"), 0o755)
			}
			var g Grants
			root := GuardedRoot{Root: ConfinedRoot{Dir: f.root}, Allowed: g.Access}
			opts := Options{Env: testEnv(), File: "t.pln"}
			ctx := context.Background()
			g.Grant("nodestart", TaskAccess(p.Task(plan.TaskNodeStart), Job{}))
			if _, err := RunTask(ctx, p.Task(plan.TaskNodeStart), Job{}, f.job, root, opts); err != nil {
				t.Fatalf("nodestart: %v", err)
			}
			job := xJob(2, "2")
			g.Grant(job.Index, TaskAccess(p.Task(plan.TaskMain), job))
			if res, err := RunTask(ctx, p.Task(plan.TaskMain), job, f.job, root, opts); err != nil {
				t.Fatalf("main: %v\n%s", err, dump(res))
			}
			out := "results/out-2.txt"
			if outIsDir {
				out += "/output.txt"
			}
			for n, want := range map[string]string{out: "out\n", "results/logs/a.log": "a\n", "results/logs/b.log": "b\n"} {
				if got := f.read(f.root, n); got != want {
					t.Errorf("%s = %q, want %q", n, got, want)
				}
			}
			if got := f.read(f.job, "input.txt"); got != "in 2" {
				t.Errorf("input.txt = %q", got)
			}

			// The same node, granted job 2 only, cannot run job 1.
			res, err := RunTask(ctx, p.Task(plan.TaskMain), xJob(1, "1"), f.job, root, opts)
			var ce *CommandError
			if !errors.Is(err, ErrDenied) || !errors.As(err, &ce) || ce.Index != 0 {
				t.Fatalf("job 1 with job 2's grants: %v\n%s", err, dump(res))
			}
			if want := `root path "input-1.txt" refused: no copy command`; !strings.Contains(err.Error(), want) {
				t.Errorf("message %q lacks %q", err, want)
			}
		})
	}
}

// systemRoot fails every request with a root-side system failure, as
// the wire client reports one.
type systemRoot struct{ recordingRoot }

func (systemRoot) Open(context.Context, string) (io.ReadCloser, error) {
	return nil, fmt.Errorf("%w: open input.txt: too many open files", ErrRootSystem)
}

func (systemRoot) Stat(context.Context, string) (fs.FileInfo, error) {
	return nil, fmt.Errorf("%w: stat input.txt: too many open files", ErrRootSystem)
}

func TestRootSystemErrorReachesCaller(t *testing.T) {
	f := newFixture(t)
	p := parsePlan(t, "parameter x text default \"a\"\ntask main\n  copy root:input.txt node:input.txt\n  exec true\nendtask\n")
	opts := Options{Env: testEnv()}
	res, err := RunTask(context.Background(), p.Task(plan.TaskMain), xJob(1, "a"), f.job, &systemRoot{}, opts)
	var ce *CommandError
	if !errors.Is(err, ErrRootSystem) || !errors.As(err, &ce) || res.RootSystemError() == nil {
		t.Errorf("RunTask = %v (RootSystemError %v); want a *CommandError wrapping ErrRootSystem", err, res.RootSystemError())
	}
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrDenied) {
		t.Errorf("a system failure reads as a job failure: %v", err)
	}

	// Under onerror ignore the task goes on, but the result still says
	// the root failed it.
	p = parsePlan(t, "parameter x text default \"a\"\ntask main\n  onerror ignore\n  copy root:input.txt node:input.txt\nendtask\n")
	res, err = RunTask(context.Background(), p.Task(plan.TaskMain), xJob(1, "a"), f.job, &systemRoot{}, opts)
	if err != nil || !errors.Is(res.RootSystemError(), ErrRootSystem) {
		t.Errorf("ignored: err %v, RootSystemError %v", err, res.RootSystemError())
	}

	// A job failure is not one.
	p = parsePlan(t, "parameter x text default \"a\"\ntask main\n  copy root:missing.txt node:input.txt\nendtask\n")
	res, err = RunTask(context.Background(), p.Task(plan.TaskMain), xJob(1, "a"), f.job, ConfinedRoot{Dir: f.root}, opts)
	if err == nil || errors.Is(err, ErrRootSystem) || res.RootSystemError() != nil {
		t.Errorf("missing file: err %v, RootSystemError %v", err, res.RootSystemError())
	}
}
