package agent

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"orrery/protocol"
	"orrery/task"
)

// TestNodestartFailureNotKept: nodestart that fails is the node's
// failure (Side node), and is run again by the next attempt: once what
// it needs is there, the node works.
func TestNodestartFailureNotKept(t *testing.T) {
	marker := filepath.Join(t.TempDir(), "ready")
	f := startNode(t, t.TempDir(), fmt.Sprintf(`parameter x integer range from 1 to 3
task nodestart
	exec test -e %s
endtask
task main
	exec true
endtask
`, marker))
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 1, Values: []string{"1"}}})
	r := f.next(t, protocol.TypeEvent).Event.Result
	if r.OK || !r.System || r.Side != protocol.SideNode {
		t.Fatalf("attempt while nodestart fails: %+v, want a system failure on the node's side", r)
	}
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 2, Attempt: 1, Values: []string{"2"}}})
	if r := f.next(t, protocol.TypeEvent).Event.Result; !r.OK {
		t.Fatalf("attempt after nodestart can succeed: %+v, want it to run nodestart again and succeed", r)
	}
}

// TestJobDirFailureIsTheNodes: an attempt whose job directory cannot be
// made fails on the node's side.
func TestJobDirFailureIsTheNodes(t *testing.T) {
	f := startNode(t, t.TempDir(), "parameter x integer range from 1 to 3\ntask main\n\texec true\nendtask\n")
	// A regular file in place of the node's work directory: no job
	// directory can be made.
	if err := os.RemoveAll(f.workDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f.workDir, []byte("not a directory\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(f.workDir) })
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 1, Values: []string{"1"}}})
	r := f.next(t, protocol.TypeEvent).Event.Result
	if r.OK || !r.System || r.Side != protocol.SideNode {
		t.Fatalf("result %+v, want a system failure on the node's side", r)
	}
}

// TestRootSideInResult: a copy the root's side failed is a system
// failure on the root's side; a task error outside any command is a
// system failure whose side is not known.
func TestRootSideInResult(t *testing.T) {
	rootErr := &task.CommandError{Err: errors.Join(task.ErrRootSystem, errors.New("no space left on device"))}
	if r := convert(&task.Result{Failed: -1}, rootErr); !r.System || r.Side != protocol.SideRoot {
		t.Errorf("root-side copy failure: %+v", r)
	}
	if r := convert(&task.Result{Failed: -1}, errors.New("something")); !r.System || r.Side != "" {
		t.Errorf("other failure: %+v", r)
	}
}
