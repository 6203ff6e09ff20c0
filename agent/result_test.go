package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"orrery/plan"
	"orrery/protocol"
	"orrery/task"
)

// TestResultCarriesIgnoredAndStaged: an attempt's result names the
// commands whose failure onerror ignore let pass (a process's exit
// status, a copy's error) and the bytes its copies moved each way.
func TestResultCarriesIgnoredAndStaged(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "in.txt"), []byte(strings.Repeat("abc", 200000)), 0o644); err != nil {
		t.Fatal(err)
	}
	f := startNode(t, root, `parameter x integer range from 1 to 3
task main
	copy root:in.txt node:in.txt
	onerror ignore
	shexec "exit 3"
	copy node:nothing.txt root:results/nothing.txt
	onerror fail
	shexec "wc -c < in.txt > out.txt; echo $x >> out.txt"
	copy node:out.txt root:results/out-$x.txt
endtask
`)
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 2, Attempt: 1, Values: []string{"2"}}})
	res := f.next(t, protocol.TypeEvent).Event.Result
	if !res.OK || res.StagedIn != 600000 || res.StagedOut != int64(len("600000\n2\n")) {
		t.Fatalf("result %+v: want ok, 600000 bytes in and 9 out", res)
	}
	if res.StagingIn <= 0 || res.StagingOut <= 0 || res.StagingIn+res.StagingOut > res.Wall {
		t.Errorf("staging in %v out %v of wall %v: want both timed, within the wall", res.StagingIn, res.StagingOut, res.Wall)
	}
	if len(res.Ignored) != 2 {
		t.Fatalf("ignored %+v, want the shexec and the copy", res.Ignored)
	}
	sh, cp := res.Ignored[0], res.Ignored[1]
	if sh.Pos != "5:2" || sh.Command != `shexec "exit 3"` || sh.Exit == nil || *sh.Exit != 3 || !strings.Contains(sh.Error, "exit status 3") {
		t.Errorf("ignored shexec: %+v", sh)
	}
	if cp.Pos != "6:2" || !strings.HasPrefix(cp.Command, "copy ") || cp.Exit != nil || !strings.Contains(cp.Error, "does not exist") {
		t.Errorf("ignored copy: %+v", cp)
	}
}

// TestIgnoredBounded: however many commands fail under onerror ignore,
// and however long their text, an ended event's header stays within
// what the root reads (RootLimits), beside the most output it carries.
func TestIgnoredBounded(t *testing.T) {
	long := strings.Repeat("\x01é", 20000) // escaped as \u0001 in JSON: the worst case
	res := &task.Result{Failed: -1}
	for i := range 100 {
		res.Commands = append(res.Commands, task.CommandResult{Pos: plan.Pos{Line: i + 1, Col: 2}, Command: long,
			Argv: []string{"sh"}, Exit: 1, Err: errors.New(long), Ignored: true})
	}
	res.Commands[0].Stdout = task.Output{Tail: []byte(strings.Repeat("o", maxOutput)), Total: maxOutput}
	res.Commands[0].Stderr = task.Output{Tail: []byte(strings.Repeat("e", maxOutput)), Total: maxOutput}
	out := convert(res, nil)
	if len(out.Ignored) != protocol.MaxIgnored {
		t.Fatalf("%d ignored errors sent, want %d", len(out.Ignored), protocol.MaxIgnored)
	}
	last := out.Ignored[protocol.MaxIgnored-1]
	if want := fmt.Sprintf("and %d more", 100-protocol.MaxIgnored+1); !strings.Contains(last.Error, want) {
		t.Errorf("last entry %+v does not say %q", last, want)
	}
	for _, ig := range out.Ignored {
		if len(ig.Command) > protocol.MaxIgnoredText || len(ig.Error) > protocol.MaxIgnoredText {
			t.Fatalf("an ignored error's text is %d/%d bytes, more than %d", len(ig.Command), len(ig.Error), protocol.MaxIgnoredText)
		}
	}
	out.Error = strings.Repeat("x", 4096)
	head, err := json.Marshal(&protocol.Msg{Type: protocol.TypeEvent, Event: &protocol.Event{Kind: protocol.EventEnded, Job: 1, Attempt: 1, Result: out}})
	if err != nil {
		t.Fatal(err)
	}
	if len(head) > protocol.RootLimits.MaxHeader {
		t.Errorf("an ended event's header is %d bytes, more than RootLimits' %d", len(head), protocol.RootLimits.MaxHeader)
	}
}

// TestResultStagingTimes: the copies before the first other command are
// staging in, those after the last staging out; copies between, and
// onerror and redirect, are neither. A task of copies alone counts each
// by its direction.
func TestResultStagingTimes(t *testing.T) {
	cmd := func(text string, wall time.Duration) task.CommandResult {
		return task.CommandResult{Command: text, Wall: wall}
	}
	for _, tc := range []struct {
		name    string
		cmds    []task.CommandResult
		in, out time.Duration
	}{
		{"in, between, out", []task.CommandResult{
			cmd(`copy root:"a" node:"a"`, 2*time.Second),
			cmd(`onerror ignore`, time.Millisecond),
			cmd(`copy root:"b" node:"b"`, 3*time.Second),
			cmd(`redirect stdout to "x"`, time.Millisecond),
			cmd(`shexec "run"`, 100*time.Second),
			cmd(`copy node:"c" node:"d"`, 7*time.Second),
			cmd(`exec prog`, 50*time.Second),
			cmd(`copy node:"out" root:"out"`, 4*time.Second),
			cmd(`onerror fail`, time.Millisecond),
			cmd(`copy node:"err" root:"err"`, time.Second),
		}, 5 * time.Second, 5 * time.Second},
		{"substitute is work", []task.CommandResult{
			cmd(`substitute node:"t" node:"u"`, time.Second),
			cmd(`copy root:"a" node:"a"`, 2*time.Second),
			cmd(`shexec "run"`, time.Second),
		}, 0, 0},
		{"no copies", []task.CommandResult{cmd(`shexec "run"`, time.Second)}, 0, 0},
		{"copies alone", []task.CommandResult{
			cmd(`copy root:"a" node:"a"`, 2*time.Second),
			cmd(`copy node:"a" root:"b"`, 3*time.Second),
		}, 2 * time.Second, 3 * time.Second},
		{"failed before work", []task.CommandResult{
			cmd(`copy root:"a" node:"a"`, 2*time.Second),
			cmd(`copy root:"b" node:"b"`, -time.Second), // a clock step back: never negative
		}, 2 * time.Second, 0},
		{"nothing", nil, 0, 0},
	} {
		res := convert(&task.Result{Failed: -1, Commands: tc.cmds}, nil)
		if res.StagingIn != tc.in || res.StagingOut != tc.out {
			t.Errorf("%s: staging in %v out %v, want %v and %v", tc.name, res.StagingIn, res.StagingOut, tc.in, tc.out)
		}
	}
	b, err := json.Marshal(&protocol.Result{StagingIn: time.Second, StagingOut: 2 * time.Second})
	if err != nil || !strings.Contains(string(b), `"staging_in":1000000000`) || !strings.Contains(string(b), `"staging_out":2000000000`) {
		t.Errorf("json %s %v: want staging_in and staging_out", b, err)
	}
}
