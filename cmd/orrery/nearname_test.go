package main

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// misspeltPlan refers to $alpah in shell text where alpha is a parameter
// (line 7, column 22).
const misspeltPlan = `# alpha is a parameter; $alpah is a typo that the shell would read as
# an empty variable, failing every job.
parameter alpha float select anyof 0.5 1.5;

task main
	node:execute test -n "$HOME"
	node:execute echo $alpah > out.txt
	copy node:out.txt root:results/out-$jobindex.txt
endtask
`

// TestCheckWarnsMisspeltName: check warns about a $name in shell text
// that is not a parameter when a parameter's name is near it, with the
// suggestion and its position; run prints the same warning.
func TestCheckWarnsMisspeltName(t *testing.T) {
	path := writePlan(t, "plan.pln", misspeltPlan)
	want := path + ":7:20: warning: $alpah is not a parameter; did you mean $alpha?"
	out := mustRun(t, "check", path)
	if !strings.Contains(out, want+"\n") {
		t.Errorf("check printed:\n%s\nwant the warning\n%s", out, want)
	}
	r := checkJSON(t, path)
	if !slices.Contains(r.Warnings, path+":7:20: $alpah is not a parameter; did you mean $alpha?") || len(r.Warnings) != 1 {
		t.Errorf("check --json warnings %q, want only the one about $alpah", r.Warnings)
	}
	dir := filepath.Dir(path)
	_, _, stderr := e2eRun(t, dir, time.Minute, "run", "plan.pln")
	if !strings.Contains(stderr, "plan.pln:7:20: warning: $alpah is not a parameter; did you mean $alpha?\n") {
		t.Errorf("run's stderr:\n%s\nwant the warning", stderr)
	}
	// Fixed, the plan has no warning at all ($HOME is the shell's).
	fixed := writePlan(t, "plan.pln", strings.Replace(misspeltPlan, "echo $alpah", "echo $alpha", 1))
	if r := checkJSON(t, fixed); len(r.Warnings) != 0 {
		t.Errorf("the fixed plan has warnings %q", r.Warnings)
	}
}
