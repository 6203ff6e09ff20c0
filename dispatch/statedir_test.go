package dispatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// failed is a job's own failure, as a copy into a removed incoming/
// looks to the dispatcher.
func failed(msg string) protocol.Result {
	one := 1
	return protocol.Result{Exit: &one, Error: msg, Wall: time.Second}
}

// TestStateDirRemoved removes the state directory while attempts run,
// and a node then reports them failed (their copies to the root could
// not be written): Run stops with a StateError, tells the node to stop,
// and counts no job failed.
func TestStateDirRemoved(t *testing.T) {
	for _, tt := range []struct {
		name  string
		brk   func(t *testing.T, dir string)
		want  StateProblem
		words string
	}{
		{"removed", func(t *testing.T, dir string) {
			if err := os.RemoveAll(dir); err != nil {
				t.Fatal(err)
			}
		}, StateRemoved, "was removed during the run"},
		{"database replaced", func(t *testing.T, dir string) {
			db := filepath.Join(dir, store.FileName)
			if err := os.WriteFile(db+".new", []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(db+".new", db); err != nil {
				t.Fatal(err)
			}
		}, StateReplaced, "was replaced during the run"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, 4, sched.FCFS, nil)
			a := h.node("a")
			a.join("a", 2, false)
			starts := a.takeStarts()
			if len(starts) != 2 {
				t.Fatalf("%d starts, want 2", len(starts))
			}
			tt.brk(t, h.st.Dir())
			for _, s := range starts {
				res := failed("copy node:out.txt: incoming: no such file or directory")
				h.d.Ended(a, protocol.Event{Kind: protocol.EventEnded, Job: s.Job, Attempt: s.Attempt, Result: &res})
			}
			h.settle()
			err := h.wait()
			var se *StateError
			if !errors.As(err, &se) || se.Problem != tt.want {
				t.Fatalf("Run: %v, want a StateError (problem %d)", err, tt.want)
			}
			if got := err.Error(); !strings.Contains(got, tt.words) || !strings.Contains(got, h.st.Dir()) {
				t.Errorf("error %q does not say %q and name the directory", got, tt.words)
			}
			if h.sum.Failed != 0 || h.sum.LastError != "" {
				t.Errorf("summary counts %d failed (%q), want none", h.sum.Failed, h.sum.LastError)
			}
			a.mu.Lock()
			stopped := a.stopped
			a.mu.Unlock()
			if !stopped {
				t.Error("the node was not told to stop its attempts")
			}
		})
	}
}

// TestDiskFull: the errors of a full disk, from SQLite or the file
// system, are told apart from other write errors.
func TestDiskFull(t *testing.T) {
	for _, tt := range []struct {
		err  error
		full bool
	}{
		{fmt.Errorf("write state: %w", sqliteErr(13)), true},      // SQLITE_FULL
		{fmt.Errorf("write state: %w", sqliteErr(13|1<<8)), true}, // an extended code of it
		{fmt.Errorf("write: %w", &os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), true},
		{errors.New("write state: database or disk is full (13)"), true},
		{fmt.Errorf("write state: %w", sqliteErr(8)), false}, // SQLITE_READONLY
		{errors.New("write state: disk I/O error"), false},
	} {
		if got := diskFull(tt.err); got != tt.full {
			t.Errorf("diskFull(%v) = %v, want %v", tt.err, got, tt.full)
		}
	}
}

// sqliteErr is an error with a SQLite result code, as the driver's are.
type sqliteErr int

func (e sqliteErr) Error() string { return fmt.Sprintf("sqlite error %d", int(e)) }
func (e sqliteErr) Code() int     { return int(e) }

// TestStateDirDoubt: a state directory whose files fail to stat with an
// error other than "not there" (here a symbolic-link loop in place of
// incoming/; on a network file system, a time-out) does not stop the run
// at once, as a passing error should not; once it has lasted stateDoubt,
// Run stops with a StateError.
func TestStateDirDoubt(t *testing.T) {
	h := newHarness(t, 4, sched.FCFS, nil)
	a := h.node("a")
	a.join("a", 1, false)
	if len(a.takeStarts()) != 1 {
		t.Fatal("no start")
	}
	// A symbolic link to itself takes incoming/'s place in one step (the
	// loop must never see incoming/ missing): stat then fails with ELOOP.
	in := h.d.IncomingDir()
	if err := os.Symlink(filepath.Base(in), in+".loop"); err != nil {
		t.Fatal(err)
	}
	if err := unix.Renameat2(unix.AT_FDCWD, in+".loop", unix.AT_FDCWD, in, unix.RENAME_EXCHANGE); err != nil {
		t.Fatal(err)
	}
	h.settle()
	h.clock.advance(stateDoubt / 2)
	h.settle()
	select {
	case err := <-h.done:
		t.Fatalf("Run ended at the first failed stat: %v", err)
	default:
	}
	h.clock.advance(stateDoubt)
	h.settle()
	err := h.wait()
	var se *StateError
	if !errors.As(err, &se) || se.Problem != StateUnwritable || !errors.Is(err, syscall.ELOOP) {
		t.Fatalf("Run: %v, want a StateError (unwritable) wrapping ELOOP", err)
	}
}
