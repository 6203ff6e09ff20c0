package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestComparePolicies: the README's way to compare policies, a state
// directory per policy, runs every job under each; and resuming an
// experiment with a policy other than the one it was started with says
// so, and how to compare.
func TestComparePolicies(t *testing.T) {
	dir := e2eDir(t)
	for _, f := range []string{"hello.pln", "greeting.tmpl"} {
		data, err := os.ReadFile(filepath.Join(repoRoot, "examples", "hello", f))
		if err != nil {
			t.Fatal(err)
		}
		e2eWrite(t, filepath.Join(dir, f), string(data))
	}
	for _, pol := range []string{"fcfs", "orrery"} {
		state := ".orrery-" + pol
		out := e2eMust(t, dir, "run", "--policy", pol, "--state-dir", state, "hello.pln")
		if !strings.HasPrefix(out, "12 done, 0 failed") {
			t.Errorf("run --policy %s: %q, want all 12 jobs done", pol, out)
		}
		st := e2eStatus(t, dir, "--state-dir", state)
		if n := e2eNum(t, st, "done"); n != 12 {
			t.Errorf("policy %s: %d jobs done, want 12", pol, n)
		}
		if n := strings.Count(e2eMust(t, dir, "joblog", "--state-dir", state), "\n") - 1; n != 12 {
			t.Errorf("policy %s: %d attempts, want 12 (each job run once in its own state directory)", pol, n)
		}
	}
	// The same state directory under another policy resumes the finished
	// experiment: nothing runs, and a note says why and what to do.
	code, stdout, stderr := e2eRun(t, dir, time.Minute, "run", "--policy", "orrery", "--state-dir", ".orrery-fcfs", "hello.pln")
	if code != exitOK {
		t.Errorf("resume under another policy: exit %d, %q", code, stdout)
	}
	if n := strings.Count(e2eMust(t, dir, "joblog", "--state-dir", ".orrery-fcfs"), "\n") - 1; n != 12 {
		t.Errorf("resume under another policy: %d attempts, want the 12 of the first run alone", n)
	}
	want := "orrery: note: experiment 1 was started with --policy fcfs; resuming it under orrery runs only the jobs it has not finished. " +
		"To compare policies, give each its own state directory: "
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, " run --policy orrery --state-dir .orrery-orrery hello.pln\n") {
		t.Errorf("resume under another policy: stderr\n%s\nwant the note\n%s", stderr, want)
	}
	// The same policy resumes without a note.
	if _, _, stderr := e2eRun(t, dir, time.Minute, "run", "--policy", "fcfs", "--state-dir", ".orrery-fcfs", "hello.pln"); strings.Contains(stderr, "note:") {
		t.Errorf("resume under the same policy: a note:\n%s", stderr)
	}
}

// TestReadmeComparesPolicies: the README shows the comparison as runs of
// one plan under different policies, each with its own state directory.
func TestReadmeComparesPolicies(t *testing.T) {
	cmds := readmeCommands(t, "Compare policies")
	var plans, policies, states []string
	for _, c := range cmds {
		f := strings.Fields(c.line)
		if len(f) < 2 || f[0] != "./orrery" || f[1] != "run" {
			t.Errorf("%s: %q is not an ./orrery run", c.where, c.line)
			continue
		}
		flag := func(name string) string {
			if i := slices.Index(f, name); i >= 0 && i+1 < len(f) {
				return f[i+1]
			}
			return ""
		}
		plans = append(plans, f[len(f)-1])
		policies = append(policies, flag("--policy"))
		states = append(states, flag("--state-dir"))
	}
	if len(cmds) < 2 || len(slices.Compact(slices.Clone(plans))) != 1 ||
		len(slices.Compact(slices.Sorted(slices.Values(policies)))) != len(cmds) ||
		len(slices.Compact(slices.Sorted(slices.Values(states)))) != len(cmds) || slices.Contains(states, "") {
		t.Errorf("README's Compare policies: plans %q, policies %q, state directories %q; want one plan, a policy and a state directory each", plans, policies, states)
	}
	for _, p := range plans {
		if _, err := os.Stat(filepath.Join(repoRoot, p)); err != nil {
			t.Errorf("README's Compare policies runs %s: %v", p, err)
		}
	}
}
