package task

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"orrery/sweep"
)

func TestExecLexecLpexecShell(t *testing.T) {
	f := newFixture(t)
	res := f.mustRun("", `
	exec echo hello $x
	lexec /bin/sh custom0 -c "echo \$0"
	lpexec sh other0 -c "echo \$0"
	shexec "echo shell $x > made.txt; pwd"
	exec touch ./touched`)
	want := []string{"hello ex\n", "custom0\n", "other0\n", f.job + "\n", ""}
	for i, w := range want {
		if got := res.Commands[i].Stdout.String(); got != w {
			t.Errorf("command %d (%s): stdout %q, want %q", i, res.Commands[i].Command, got, w)
		}
		if c := res.Commands[i]; c.Exit != 0 || c.Err != nil {
			t.Errorf("command %d: exit %d, err %v", i, c.Exit, c.Err)
		}
	}
	if got := f.read(f.job, "made.txt"); got != "shell ex\n" {
		t.Errorf("made.txt = %q", got)
	}
	if _, err := os.Stat(filepath.Join(f.job, "touched")); err != nil {
		t.Errorf("exec touch in the job directory: %v", err)
	}
	if got := strings.Join(res.Commands[1].Argv, " "); got != "custom0 -c echo $0" {
		t.Errorf("lexec argv = %q", got)
	}
	if res.Failed != -1 || res.Err != nil {
		t.Errorf("Failed %d, Err %v", res.Failed, res.Err)
	}
}

func TestClassicExecute(t *testing.T) {
	f := newFixture(t)
	res := f.mustRun(`parameter x text select anyof "ex";`, `
	node:execute echo $x ${HOME:-nohome} > out.txt
	execute cat out.txt`)
	if got := res.Commands[1].Stdout.String(); !strings.HasPrefix(got, "ex ") || got == "ex ${HOME:-nohome}\n" {
		t.Errorf("classic shell text: %q (the shell should expand ${HOME...})", got)
	}
}

func TestEnvironment(t *testing.T) {
	f := newFixture(t)
	res := f.mustRun(`parameter x text select anyof "ex"
parameter n integer range from 7 to 8`,
		`shexec "echo \$x \$n \$ORRERY_JOBINDEX \$ORRERY_JOBNAME \$INHERITED"`)
	if got := res.Commands[0].Stdout.String(); got != "ex 7 1 j1 kept\n" {
		t.Errorf("environment: %q", got)
	}
}

func TestJobEnvironReplaces(t *testing.T) {
	j := Job{Index: 3, Names: []string{"PATH", "y"}, Values: []string{"/p", "v"}}
	env := j.Environ([]string{"PATH=/usr/bin", "HOME=/h", "y=old"})
	want := "HOME=/h PATH=/p y=v ORRERY_JOBINDEX=3 ORRERY_JOBNAME=j3"
	if got := strings.Join(env, " "); got != want {
		t.Errorf("Environ = %q, want %q", got, want)
	}
	if got := (Job{}).Environ([]string{"A=1"}); len(got) != 1 {
		t.Errorf("no job: Environ = %q", got)
	}
}

func TestNewJobAgreesWithSweep(t *testing.T) {
	p := parsePlan(t, "parameter a integer range from 1 to 3\nparameter b text select anyof \"p\" \"q\"\ntask main\nexec true\nendtask\n")
	s, err := sweep.New(p, sweep.Options{})
	if err != nil {
		t.Fatal(err)
	}
	it := s.Iter()
	for it.Next() {
		sj := it.Job()
		j, want := NewJob(s, sj), s.Lookup(sj)
		for _, name := range []string{"a", "b", "jobindex", "jobname", "nosuch"} {
			gv, gok := j.Lookup(name)
			wv, wok := want(name)
			if gv != wv || gok != wok {
				t.Errorf("job %d: Lookup(%q) = %q %v, sweep says %q %v", sj.Index, name, gv, gok, wv, wok)
			}
		}
	}
}

func TestMissingProgram(t *testing.T) {
	f := newFixture(t)
	res, err := f.run("", "\texec true\n\texec nosuch-program-xyz arg\n\texec true", Options{})
	want := `t.pln:4:2: task main: exec "nosuch-program-xyz": executable file not found in $PATH`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if !errors.Is(err, exec.ErrNotFound) {
		t.Errorf("errors.Is(err, exec.ErrNotFound) = false")
	}
	var ce *CommandError
	if !errors.As(err, &ce) || ce.Index != 1 || ce.Task != "main" {
		t.Errorf("CommandError = %+v", ce)
	}
	if res.Failed != 1 || len(res.Commands) != 2 || res.Commands[1].Exit != -1 {
		t.Errorf("Failed %d, %d commands run, exit %d", res.Failed, len(res.Commands), res.Commands[1].Exit)
	}

	_, err = f.run("", "\tlexec ./nosuch ./nosuch", Options{})
	if err == nil || !strings.Contains(err.Error(), `lexec "./nosuch": no such file or directory`) {
		t.Errorf("lexec: err = %v", err)
	}
	// lexec does not search PATH.
	_, err = f.run("", "\tlexec true true", Options{})
	if err == nil || !strings.Contains(err.Error(), "no such file or directory") {
		t.Errorf("lexec true: err = %v (lexec must not search PATH)", err)
	}
}

func TestExitStatusFailsTask(t *testing.T) {
	f := newFixture(t)
	res, err := f.run("", "\tshexec \"echo oops >&2; exit 3\"\n\tshexec \"touch never\"", Options{})
	if err == nil || !strings.HasSuffix(err.Error(), `shexec "echo oops >&2; exit 3": exit status 3`) {
		t.Fatalf("err = %v", err)
	}
	c := res.Commands[0]
	if c.Exit != 3 || c.Stderr.String() != "oops\n" {
		t.Errorf("exit %d, stderr %q", c.Exit, c.Stderr.String())
	}
	if _, err := os.Stat(filepath.Join(f.job, "never")); err == nil {
		t.Error("a command after the failing one ran")
	}
}

func TestOnErrorIgnore(t *testing.T) {
	f := newFixture(t)
	res, err := f.run("", `
	onerror ignore
	exec false
	copy root:missing node:missing
	shexec "touch after"
	onerror fail
	exec false
	shexec "touch never"`, Options{})
	if err == nil || res.Failed != 5 {
		t.Fatalf("err %v, Failed %d, want the second exec false (index 5)\n%s", err, res.Failed, dump(res))
	}
	for i, want := range []bool{false, true, true, false, false, false} {
		if got := res.Commands[i].Ignored; got != want {
			t.Errorf("command %d (%s): Ignored %v, want %v", i, res.Commands[i].Command, got, want)
		}
	}
	if res.Commands[1].Err == nil || res.Commands[1].Exit != 1 {
		t.Errorf("ignored exec false: err %v exit %d", res.Commands[1].Err, res.Commands[1].Exit)
	}
	if _, err := os.Stat(filepath.Join(f.job, "after")); err != nil {
		t.Error("the command after an ignored failure did not run")
	}
	if _, err := os.Stat(filepath.Join(f.job, "never")); err == nil {
		t.Error("onerror fail did not stop the task")
	}
}

func TestRedirect(t *testing.T) {
	f := newFixture(t)
	f.write(f.job, "log.txt", "old\n")
	f.write(f.job, "app.txt", "old\n")
	res := f.mustRun("", `
	redirect stdout to log.txt
	shexec "echo one; echo err1 >&2"
	exec echo two
	redirect stderr to log.txt
	shexec "echo three >&2"
	redirect stdout append to app.txt
	exec echo appended
	redirect stdout off
	redirect stderr off
	shexec "echo kept; echo kept2 >&2"
	redirect stdout to sub/dir/new.txt
	exec echo deep`)
	if got := f.read(f.job, "log.txt"); got != "one\ntwo\nthree\n" {
		t.Errorf("log.txt = %q", got)
	}
	if got := f.read(f.job, "app.txt"); got != "old\nappended\n" {
		t.Errorf("app.txt = %q", got)
	}
	if got := f.read(f.job, "sub/dir/new.txt"); got != "deep\n" {
		t.Errorf("new.txt = %q", got)
	}
	if c := res.Commands[1]; c.Stdout.Total != 0 || c.Stderr.String() != "err1\n" {
		t.Errorf("redirected command kept stdout %q, stderr %q", c.Stdout.Tail, c.Stderr.Tail)
	}
	if c := res.Commands[9]; c.Stdout.String() != "kept\n" || c.Stderr.String() != "kept2\n" {
		t.Errorf("after off: stdout %q, stderr %q", c.Stdout.Tail, c.Stderr.Tail)
	}
}

func TestSubstituteCommand(t *testing.T) {
	f := newFixture(t)
	f.write(f.root, "model.tmpl", "x=$x y=${x}! job=$jobindex $jobname\n\\$x $HOME ${nope} $5 $ a\\b ${x\n")
	f.mustRun("", `
	copy root:model.tmpl node:model.tmpl
	substitute node:model.tmpl node:model.in
	copy root:model.tmpl node:same.txt
	substitute node:same.txt node:same.txt`)
	want := "x=ex y=ex! job=1 j1\n$x $HOME ${nope} $5 $ a\\b ${x\n"
	if got := f.read(f.job, "model.in"); got != want {
		t.Errorf("substitute gave\n%q\nwant\n%q", got, want)
	}
	if got := f.read(f.job, "same.txt"); got != want {
		t.Errorf("substitute in place gave\n%q\nwant\n%q", got, want)
	}
	_, err := f.run("", "\tsubstitute node:absent.tmpl node:out", Options{})
	if err == nil || !strings.Contains(err.Error(), `substitute absent.tmpl out: node path "absent.tmpl": no such file or directory`) {
		t.Errorf("missing template: %v", err)
	}
}

func TestCancelledBeforeStart(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := f.runCtx(ctx, "", "\tonerror ignore\n\tshexec \"touch ran\"", Options{})
	if !errors.Is(err, context.Canceled) || res.Failed != 0 {
		t.Fatalf("err %v, Failed %d", err, res.Failed)
	}
	if _, err := os.Stat(filepath.Join(f.job, "ran")); err == nil {
		t.Error("a command ran after the context was cancelled")
	}
}

func TestRootTask(t *testing.T) {
	root := t.TempDir()
	p := parsePlan(t, `parameter x text select anyof "a";
task rootstart
	root:execute mkdir -p results; pwd > results/where.txt
	redirect stdout to log/start.txt
	exec echo started
endtask
task main
	node:execute true
endtask
`)
	res, err := RunRootTask(context.Background(), p.Task("rootstart"), Job{}, root, Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, dump(res))
	}
	if b, _ := os.ReadFile(filepath.Join(root, "results/where.txt")); string(b) != root+"\n" {
		t.Errorf("root:execute ran in %q, want %q", b, root)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "log/start.txt")); string(b) != "started\n" {
		t.Errorf("root redirect wrote %q", b)
	}
	if _, err := RunTask(context.Background(), p.Task("rootstart"), Job{}, t.TempDir(), DirRoot{Dir: root}, Options{}); err == nil {
		t.Error("RunTask ran a root task")
	}
}
