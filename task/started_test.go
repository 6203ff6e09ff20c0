package task

import (
	"strconv"
	"strings"
	"testing"
)

// TestStartedHook: Options.Started hears of each process's group while it
// runs (the shell's $$ is its group, which it leads), and its end after.
func TestStartedHook(t *testing.T) {
	f := newFixture(t)
	var calls []string
	opts := Options{Started: func(pgid int) func() {
		calls = append(calls, "started "+strconv.Itoa(pgid))
		return func() {
			if running(pgid) {
				t.Errorf("process %d runs after ended was called", pgid)
			}
			calls = append(calls, "ended "+strconv.Itoa(pgid))
		}
	}}
	res, err := f.run("", "\tshexec \"echo $$\"\n\tshexec \"echo $$\"", opts)
	if err != nil {
		t.Fatalf("%v\n%s", err, dump(res))
	}
	var want []string
	for _, c := range res.Commands {
		pid := strings.TrimSpace(c.Stdout.String())
		want = append(want, "started "+pid, "ended "+pid)
	}
	if strings.Join(calls, ", ") != strings.Join(want, ", ") {
		t.Fatalf("calls %q, want %q", calls, want)
	}
	res, err = f.run("", "\texec true\n\texec true", Options{Started: func(int) func() { return nil }})
	if err != nil {
		t.Fatalf("a hook returning nil: %v\n%s", err, dump(res))
	}
}
