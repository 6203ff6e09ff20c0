package main

// Waiting for nodes and for the root (issue 13, point 12): an agent
// started before its root keeps trying (saying so, not too often) and
// joins once the root is up; it says when the experiment is over; each
// side gives up after its --wait with exit status 4; a --listen that
// cannot be used is refused before the state directory is made.

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// freePort returns a loopback address on which nothing listens now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// waitPlan is a small sweep for the tests of waiting.
const waitPlan = `parameter i integer range from 1 to 4
task main
	shexec "echo $i > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`

// TestE2EAgentBeforeRoot starts an agent before its root is up: it keeps
// trying, printing its failed tries at most every few seconds; once the
// root is up it joins and runs the sweep, and when the root ends the
// experiment it says so in one line and exits 0.
func TestE2EAgentBeforeRoot(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "w.pln"), waitPlan)
	t.Cleanup(func() { e2eKillUnder(dir) })
	// The token first, as a batch script would: the root uses the same
	// key material when it starts.
	tok := e2eMust(t, dir, "token", "--state-dir", ".orrery")
	e2eWrite(t, filepath.Join(dir, "join.token"), tok)
	addr := freePort(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*e2eRunTimeout)
	defer cancel()
	agent := e2eStart(t, ctx, dir, "agent", "--connect", addr, "--token-file", "join.token", "--name", "early",
		"--work-dir", filepath.Join(dir, "work"))
	if !e2eWaitFor(20*time.Second, func() bool { return strings.Contains(agent.stderr.String(), "cannot reach the root") || agent.exited() }) || agent.exited() {
		t.Fatalf("the agent did not say it cannot reach the root, or ended\nstderr:\n%s", agent.stderr.String())
	}
	time.Sleep(3 * time.Second) // several tries: 100 ms, 200 ms, … apart
	if n := len(nsLines(agent.stderr.String(), "cannot reach the root")); n > 2 {
		t.Errorf("the agent printed %d failed tries in 3 s, want them rate-limited (at most 2)\n%s", n, agent.stderr.String())
	}
	if agent.exited() {
		t.Fatalf("the agent gave up while the root was not up: exit %d\nstderr:\n%s", agent.state.ExitCode(), agent.stderr.String())
	}
	root := e2eStart(t, ctx, dir, "run", "--nodes", "0", "--listen", addr, "w.pln")
	if code := root.wait(e2eRunTimeout); code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s\nagent stderr:\n%s", code, root.stdout.String(), root.stderr.String(), agent.stderr.String())
	}
	if code := agent.wait(20 * time.Second); code != 0 {
		t.Errorf("agent: exit %d after the run ended, want 0\nstderr:\n%s", code, agent.stderr.String())
	}
	e2eNoPanic(t, "agent", agent.stderr.String())
	over := nsLines(agent.stderr.String(), "orrery agent: the experiment is over (root "+addr+" ended it); exiting")
	if len(over) != 1 {
		t.Errorf("the agent did not say once that the experiment is over:\n%s", agent.stderr.String())
	}
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" {
			t.Errorf("job %d: %s, want done", j.Index, j.State)
		}
	}
}

// TestE2EAgentWait: an agent whose root never comes up gives up after
// its --wait, with exit status 4 and a line that says so.
func TestE2EAgentWait(t *testing.T) {
	dir := e2eDir(t)
	tok := e2eMust(t, dir, "token", "--state-dir", ".orrery")
	e2eWrite(t, filepath.Join(dir, "join.token"), tok)
	code, _, stderr := e2eRun(t, dir, 30*time.Second, "agent", "--connect", freePort(t), "--token-file", "join.token",
		"--wait", "2s", "--work-dir", filepath.Join(dir, "work"))
	if code != wantSystem {
		t.Fatalf("agent --wait 2s with no root: exit %d, want %d\nstderr:\n%s", code, wantSystem, stderr)
	}
	if len(nsLines(stderr, "orrery agent: gave up", "within 2s")) != 1 {
		t.Errorf("the agent did not say once that it gave up after 2s:\n%s", stderr)
	}
}

// TestE2ERunWait: a run with no embedded node says that it waits and how
// a node joins, and when its --wait ends with no node it stops with exit
// status 4 and a line that says so; the jobs are left for the next run.
func TestE2ERunWait(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "w.pln"), waitPlan)
	code, stdout, stderr := e2eRun(t, dir, 40*time.Second, "run", "--nodes", "0", "--listen", "127.0.0.1:0", "--wait", "2s", "w.pln")
	if code != wantSystem {
		t.Fatalf("run --nodes 0 --wait 2s with no agent: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantSystem, stdout, stderr)
	}
	if len(nsLines(stderr, "orrery: waiting for nodes (for 2s); a node joins with: orrery agent --connect 127.0.0.1:")) != 1 {
		t.Errorf("run did not say once that it waits for nodes and how one joins:\n%s", stderr)
	}
	if len(nsLines(stderr, "no node", "2s")) != 1 {
		t.Errorf("run did not say once that no node came within 2s:\n%s", stderr)
	}
	if failedClaim.MatchString(stdout) || failedClaim.MatchString(stderr) {
		t.Errorf("the run claims failed jobs:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	// The default waits for ever: still waiting after a few seconds.
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	p := e2eStart(t, ctx, dir, "run", "--nodes", "0", "--listen", "127.0.0.1:0", "w.pln")
	if !e2eWaitFor(20*time.Second, func() bool {
		return strings.Contains(p.stderr.String(), "orrery: waiting for nodes (for ever)") || p.exited()
	}) || p.exited() {
		t.Fatalf("run without --wait did not say it waits for ever, or ended\nstderr:\n%s", p.stderr.String())
	}
	time.Sleep(3 * time.Second)
	if p.exited() {
		t.Fatalf("run without --wait gave up: exit %d\nstderr:\n%s", p.state.ExitCode(), p.stderr.String())
	}
}

// TestRunListenRefused: a --listen address that cannot be used (not an
// address, a port taken, a name that does not resolve) is refused with
// exit status 2 before the state directory is made.
func TestRunListenRefused(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, addr := range []string{"nonsense", taken.Addr().String(), "127.0.0.1:99999", "no-such-host.invalid:7443"} {
		dir := t.TempDir()
		plan := filepath.Join(dir, "w.pln")
		e2eWrite(t, plan, waitPlan)
		code, stdout, stderr := cli(t, "run", "--nodes", "0", "--listen", addr, plan)
		if code != exitInvalid {
			t.Errorf("--listen %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", addr, code, exitInvalid, stdout, stderr)
		}
		if !strings.Contains(stderr, "--listen") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("--listen %s: want one line naming --listen, got:\n%s", addr, stderr)
		}
		if _, err := os.Stat(filepath.Join(dir, ".orrery")); err == nil {
			t.Errorf("--listen %s: the state directory was made", addr)
		}
	}
}

// TestUsageExitStatus: `orrery run --help` and `orrery agent --help`
// list the exit statuses.
func TestUsageExitStatus(t *testing.T) {
	for cmd, want := range map[string][]int{"run": {0, 1, 2, 4, 130}, "agent": {0, 2, 3, 4, 130}} {
		code, _, stderr := cli(t, cmd, "--help")
		if code != exitOK {
			t.Errorf("%s --help: exit %d", cmd, code)
		}
		i := strings.Index(stderr, "Exit status")
		if i < 0 {
			t.Errorf("%s --help says nothing of the exit status:\n%s", cmd, stderr)
			continue
		}
		if j := strings.Index(stderr, "  -"); j > i {
			t.Errorf("%s --help: the exit statuses come before the flags:\n%s", cmd, stderr)
		}
		for _, n := range want {
			if !regexp.MustCompile(`(?m)^\s+` + strconv.Itoa(n) + `\s`).MatchString(stderr[i:]) {
				t.Errorf("%s --help does not list exit status %d:\n%s", cmd, n, stderr[i:])
			}
		}
	}
	for _, flag := range []string{"-wait", "-nodes"} {
		if _, _, stderr := cli(t, "run", "--help"); !strings.Contains(stderr, flag) {
			t.Errorf("run --help does not document %s", flag)
		}
	}
	if _, _, stderr := cli(t, "run", "--help"); !strings.Contains(stderr, "0 with --listen") {
		t.Errorf("run --help does not say --nodes may be 0 with --listen:\n%s", stderr)
	}
}

// TestExitStatuses checks the status of each command's error paths: 2
// for bad usage, 4 for a state directory that cannot be used, 1 for
// what was asked of an experiment that is not there.
func TestExitStatuses(t *testing.T) {
	dir := t.TempDir()
	plan := filepath.Join(dir, "w.pln")
	e2eWrite(t, plan, waitPlan)
	file := filepath.Join(dir, "file")
	e2eWrite(t, file, "x\n")
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	for _, tt := range []struct {
		args []string
		want int
	}{
		{[]string{"status", "--state-dir", filepath.Join(dir, "none")}, exitInvalid},
		{[]string{"jobs", "--state-dir", filepath.Join(dir, "none")}, exitInvalid},
		{[]string{"log", "--state-dir", filepath.Join(dir, "none"), "1"}, exitInvalid},
		{[]string{"rerun", "--failed", "--state-dir", filepath.Join(dir, "none")}, exitInvalid},
		{[]string{"joblog", "--state-dir", filepath.Join(dir, "none")}, exitInvalid},
		{[]string{"status", "--state-dir", empty}, exitInvalid},
		{[]string{"run", "--state-dir", filepath.Join(file, "state"), plan}, wantSystem},
		{[]string{"token", "--state-dir", filepath.Join(file, "state")}, wantSystem},
		{[]string{"run", "--nodes", "0", plan}, exitInvalid},
		{[]string{"run", "--wait", "soon", plan}, exitInvalid},
		{[]string{"agent", "--connect", "127.0.0.1:1", "--wait", "-1s", "--token", "x"}, exitInvalid},
		{[]string{"generate", "-o", filepath.Join(dir, "no", "such", "jobs.run"), plan}, exitInvalid},
		{[]string{"sim", "--trace", filepath.Join(dir, "no", "such", "trace"), "paper-table1"}, exitInvalid},
	} {
		code, _, stderr := cli(t, tt.args...)
		if code != tt.want {
			t.Errorf("orrery %s: exit %d, want %d\n%s", strings.Join(tt.args, " "), code, tt.want, stderr)
		}
		if stderr == "" {
			t.Errorf("orrery %s: no message", strings.Join(tt.args, " "))
		}
	}
	// log of a job that has not run, in an experiment that exists.
	state := filepath.Join(dir, "st")
	if code, stdout, stderr := cli(t, "run", "--state-dir", state, plan); code != exitOK {
		t.Fatalf("run: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, _, stderr := cli(t, "log", "--state-dir", state, "99"); code != exitFailed {
		t.Errorf("log of a job that has not run: exit %d, want %d\n%s", code, exitFailed, stderr)
	}
}
