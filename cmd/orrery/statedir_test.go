package main

// The state directory failing under a run (issue 13, point 3): removed,
// turned into a file, or its database replaced. The run stops at once
// with one line and exit status 4 (Orrery's own failure), marks no job
// failed on the way out, and the line's advice works.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// wantSystem is the exit status of Orrery's own failure (exitSystem),
// spelled out so the tests say what users see.
const wantSystem = 4

// stateDirPlan is a sweep of jobs that sleep and copy a result back.
const stateDirPlan = `parameter i integer range from 1 to 12
task main
	shexec "sleep 0.5; echo $i > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`

// failedClaim matches a summary or progress line that counts failed jobs.
var failedClaim = regexp.MustCompile(`\b[1-9]\d* failed|See why|rerun --failed`)

// stateDirBreak starts a run, lets it copy a first result back, breaks
// the state directory with brk, and checks how the run ends: exit
// status 4 within a generous deadline, the one line naming what
// happened (want), no claim of failed jobs, and advice that works.
func stateDirBreak(t *testing.T, want string, brk func(t *testing.T, state string)) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "sd.pln"), stateDirPlan)
	t.Cleanup(func() { e2eKillUnder(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	p := e2eStart(t, ctx, dir, "run", "--job-limit", "2", "sd.pln")
	if !e2eWaitFor(30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, "results", "1.txt"))
		return err == nil || p.exited()
	}) || p.exited() {
		t.Fatalf("the run copied no result back, or ended early\nstdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
	}
	brk(t, filepath.Join(dir, ".orrery"))
	code := p.wait(30 * time.Second)
	stdout, stderr := p.stdout.String(), p.stderr.String()
	e2eNoPanic(t, "run", stderr)
	if code != wantSystem {
		t.Fatalf("run: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, wantSystem, stdout, stderr)
	}
	lines := nsLines(stderr, want)
	if len(lines) != 1 {
		t.Fatalf("stderr has %d lines saying %q, want 1:\n%s", len(lines), want, stderr)
	}
	if failedClaim.MatchString(stdout) || failedClaim.MatchString(stderr) {
		t.Errorf("the run claims failed jobs:\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	// Its running attempts were cancelled: no job process is left.
	if left := e2eWaitNoProcs(dir, 10*time.Second); len(left) > 0 {
		t.Errorf("job processes left after the run stopped: %+v", left)
	}
	if !strings.Contains(lines[0], "Results already copied are in results/") {
		t.Errorf("the line does not say where the results are: %q", lines[0])
	}
	// The advice works as written from where the run was started.
	m := regexp.MustCompile(`Start again with: \S*orrery (.+)$`).FindStringSubmatch(lines[0])
	if m == nil {
		t.Fatalf("the line gives no command to start again: %q", lines[0])
	}
	if st, err := os.Stat(filepath.Join(dir, ".orrery")); err == nil && !st.IsDir() {
		os.Remove(filepath.Join(dir, ".orrery")) // the file that replaced it: the user removes it first
	}
	args := strings.Fields(m[1])
	code, stdout, stderr = e2eRun(t, dir, e2eRunTimeout, args...)
	if code != 0 {
		t.Fatalf("the advice %q: exit %d\nstdout:\n%s\nstderr:\n%s", m[1], code, stdout, stderr)
	}
	results := map[string]string{}
	for i := 1; i <= 12; i++ {
		results[fmt.Sprintf("%d.txt", i)] = fmt.Sprintf("%d\n", i)
	}
	e2eResults(t, filepath.Join(dir, "results"), results)
}

// TestE2EStateDirRemoved removes the state directory (rm -rf) while jobs
// run.
func TestE2EStateDirRemoved(t *testing.T) {
	stateDirBreak(t, "was removed during the run", func(t *testing.T, state string) {
		stateDirRemove(t, state)
	})
}

// stateDirRemove removes the state directory as rm -rf does, again while
// the running nodes make directories in it.
func stateDirRemove(t *testing.T, state string) {
	t.Helper()
	var err error
	for range 50 {
		if err = os.RemoveAll(state); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal(err)
}

// TestE2EStateDirReplaced replaces the state directory by a file, or its
// database by another file, while jobs run.
func TestE2EStateDirReplaced(t *testing.T) {
	t.Run("directory-by-file", func(t *testing.T) {
		stateDirBreak(t, "was removed during the run", func(t *testing.T, state string) {
			// Again while the running nodes make directories in it.
			for i := 0; ; i++ {
				stateDirRemove(t, state)
				err := os.WriteFile(state, []byte("not a directory\n"), 0o644)
				if err == nil {
					break
				}
				if i == 50 {
					t.Fatal(err)
				}
			}
		})
	})
	t.Run("database", func(t *testing.T) {
		stateDirBreak(t, "was replaced during the run", func(t *testing.T, state string) {
			db := filepath.Join(state, "state.db")
			tmp := db + ".new"
			if err := os.WriteFile(tmp, []byte("another file\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, db); err != nil {
				t.Fatal(err)
			}
		})
	})
}
