package dispatch

import (
	"context"
	"errors"
	"os"
	"syscall"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// TestRootSideStateFailureStopsRun: a node reports that the root's side
// failed a copy, and the state directory's incoming/ cannot be written
// (full, or unwritable: the probe of it fails so). Run stops with a
// StateError that says which, and no job is charged or failed: the
// attempts are not recorded as ended, and the next run does them.
func TestRootSideStateFailureStopsRun(t *testing.T) {
	for _, tt := range []struct {
		name  string
		errno syscall.Errno
		want  StateProblem
	}{
		{"full", syscall.ENOSPC, StateFull},
		{"quota", syscall.EDQUOT, StateFull},
		{"permission", syscall.EACCES, StateUnwritable},
		{"read-only", syscall.EROFS, StateUnwritable},
		{"disk", syscall.EIO, StateUnwritable},
	} {
		t.Run(tt.name, func(t *testing.T) {
			real := probeDir
			probeDir = func(dir string) error {
				if _, err := os.Stat(dir); err != nil {
					t.Errorf("probe of %s: %v", dir, err)
				}
				return &os.PathError{Op: "open", Path: dir + "/.probe-1", Err: tt.errno}
			}
			t.Cleanup(func() { probeDir = real })
			h := newHarness(t, 4, sched.FCFS, nil)
			a := h.node("a")
			a.join("a", 2, false)
			starts := a.takeStarts()
			if len(starts) != 2 {
				t.Fatalf("%d starts, want 2", len(starts))
			}
			a.end(starts[0].Job, starts[0].Attempt, protocol.Result{System: true, Side: protocol.SideRoot,
				Error: "h.pln:4:2: copy node:out.txt root:results/out-1.txt: failure on the root's side\n" + tt.errno.Error()})
			err := h.wait()
			var se *StateError
			if !errors.As(err, &se) || se.Problem != tt.want || !errors.Is(err, tt.errno) {
				t.Fatalf("Run: %v, want a StateError (problem %d) for %v", err, tt.want, tt.errno)
			}
			a.mu.Lock()
			stopped := a.stopped
			a.mu.Unlock()
			if !stopped {
				t.Error("the node was not told to stop its attempts")
			}
			counts, _ := h.st.Counts(context.Background(), h.exp.ID)
			if counts[store.Failed] != 0 || counts[store.Done] != 0 {
				t.Fatalf("counts %v, want none failed", counts)
			}
			if at, _ := h.attempt(starts[0].Job, starts[0].Attempt); at.State != store.AttemptRunning {
				t.Errorf("the attempt is recorded %q, want it left running (recovered by the next run)", at.State)
			}
		})
	}
}

// TestRootSidePassingFailure: the probe of the state directory succeeds
// (the real one, on a real directory): a root-side failure is then a
// passing one, charged to the job as a lost attempt, and the run goes on.
func TestRootSidePassingFailure(t *testing.T) {
	h := newHarness(t, 1, sched.FCFS, nil)
	a := h.node("a")
	a.join("a", 1, false)
	s := a.takeStarts()[0]
	a.end(s.Job, s.Attempt, protocol.Result{System: true, Side: protocol.SideRoot, Error: "failure on the root's side: too many open files"})
	if at, _ := h.attempt(s.Job, s.Attempt); at.State != store.AttemptLost {
		t.Fatalf("attempt %+v, want lost", at)
	}
	for h.endAll(a, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
}
