package agent

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/task"
)

// fakeDispatcher is the dispatcher's end of a connection, driven by the
// test: it serves staging from a root directory and hands every other
// message to the test.
type fakeDispatcher struct {
	conn    *protocol.Conn
	msgs    chan *protocol.Msg
	workDir string // the node's
}

func startNode(t *testing.T, root, planText string, mods ...func(*Config)) *fakeDispatcher {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	workDir := t.TempDir()
	cfg := Config{Name: "n1", CPUs: 2, WorkDir: workDir, Exec: task.Options{KillGrace: 200 * time.Millisecond}}
	for _, m := range mods {
		m(&cfg)
	}
	go func() { done <- Run(ctx, b, cfg) }()
	f := &fakeDispatcher{conn: protocol.NewConn(a), msgs: make(chan *protocol.Msg, 16), workDir: workDir}
	rs := protocol.NewRootServer(ctx, f.conn, task.DirRoot{Dir: root}, 0)
	go func() {
		for {
			m, err := f.conn.Recv()
			if err != nil {
				close(f.msgs)
				return
			}
			if rs.Handle(m) != nil {
				f.msgs <- m
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		f.conn.Close()
		if err := <-done; err != nil {
			t.Errorf("node.Run: %v", err)
		}
		rs.Close()
	})
	reg := f.next(t, protocol.TypeRegister)
	if reg.Register.Name != "n1" || reg.Register.CPUs != 2 || reg.Register.Memory <= 0 {
		t.Fatalf("register = %+v", reg.Register)
	}
	f.send(t, &protocol.Msg{Type: protocol.TypeWelcome, Welcome: &protocol.Welcome{Node: "n1", Experiment: 1,
		PlanName: "t.pln", PlanText: planText, Dialect: "modern", Names: []string{"x"}, Heartbeat: 50 * time.Millisecond}})
	return f
}

func (f *fakeDispatcher) send(t *testing.T, m *protocol.Msg) {
	t.Helper()
	if err := f.conn.Send(m); err != nil {
		t.Fatal(err)
	}
}

// next returns the next message of type typ, skipping heartbeats.
func (f *fakeDispatcher) next(t *testing.T, typ string) *protocol.Msg {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, ok := <-f.msgs:
			if !ok {
				t.Fatalf("connection closed waiting for %s", typ)
			}
			if m.Type == typ {
				return m
			}
			if m.Type != protocol.TypeHeartbeat {
				t.Fatalf("got %s while waiting for %s", m.Type, typ)
			}
		case <-timeout:
			t.Fatalf("no %s within 10 s", typ)
		}
	}
}

// heartbeat returns the first heartbeat for which ok holds, failing when
// an attempt ends first.
func (f *fakeDispatcher) heartbeat(t *testing.T, ok func(*protocol.Heartbeat) bool) *protocol.Heartbeat {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case m, open := <-f.msgs:
			if !open {
				t.Fatal("connection closed waiting for a heartbeat")
			}
			if m.Type != protocol.TypeHeartbeat {
				t.Fatalf("got %s %+v while waiting for a heartbeat", m.Type, m.Event)
			}
			if ok(m.Heartbeat) {
				return m.Heartbeat
			}
		case <-timeout:
			t.Fatal("no such heartbeat within 10 s")
		}
	}
}

// residentOf returns the resident memory a heartbeat reports for an
// attempt, and whether it reports any.
func residentOf(hb *protocol.Heartbeat, job int64, attempt int) (int64, bool) {
	for _, r := range hb.Resident {
		if r.Job == job && r.Attempt == attempt {
			return r.Bytes, true
		}
	}
	return 0, false
}

// TestStagingBothWays runs a job that copies a root file in, works on it,
// and copies the result out, all over the protocol.
func TestStagingBothWays(t *testing.T) {
	root := t.TempDir()
	if err := os.WriteFile(filepath.Join(root, "in.txt"), []byte(strings.Repeat("abc", 200000)), 0o644); err != nil {
		t.Fatal(err)
	}
	f := startNode(t, root, `parameter x integer range from 1 to 3
task main
	copy root:in.txt node:in.txt
	shexec "wc -c < in.txt > out.txt; echo $x >> out.txt"
	copy node:out.txt root:results/out-$x.txt
endtask
`)
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 2, Attempt: 1, Values: []string{"2"}}})
	ev := f.next(t, protocol.TypeEvent).Event
	if ev.Job != 2 || ev.Attempt != 1 || !ev.Result.OK || *ev.Result.Exit != 0 {
		t.Fatalf("event %+v, result %+v", ev, ev.Result)
	}
	got, err := os.ReadFile(filepath.Join(root, "results", "out-2.txt"))
	if err != nil || string(got) != "600000\n2\n" {
		t.Fatalf("result on the root: %q, %v", got, err)
	}
}

// TestCancel stops a running attempt with a cancel message.
func TestCancel(t *testing.T) {
	f := startNode(t, t.TempDir(), "parameter x integer range from 1 to 3\ntask main\n\texec sleep 60\nendtask\n")
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 1, Values: []string{"1"}}})
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	f.send(t, &protocol.Msg{Type: protocol.TypeCancel, Job: 1, Attempt: 1})
	ev := f.next(t, protocol.TypeEvent).Event
	if ev.Result.OK || ev.Result.Signal == "" || ev.Result.System || ev.Result.Error != "cancelled by the dispatcher" {
		t.Fatalf("cancelled attempt: %+v", ev.Result)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("cancel took %s", d)
	}
	if _, err := os.Stat(filepath.Join(f.workDir, "experiment-1", "j1.1")); err == nil {
		t.Error("the cancelled attempt's directory was kept as a failed job's")
	}
}

// TestCancelOneAttempt: a cancel stops only the attempt it names, not
// another attempt of the same job running beside it.
func TestCancelOneAttempt(t *testing.T) {
	f := startNode(t, t.TempDir(), "parameter x integer range from 1 to 3\ntask main\n\texec sleep $x\nendtask\n")
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 1, Values: []string{"60"}}})
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 2, Values: []string{"3"}}})
	f.heartbeat(t, func(hb *protocol.Heartbeat) bool { // both run sleep
		_, one := residentOf(hb, 1, 1)
		_, two := residentOf(hb, 1, 2)
		return one && two
	})
	start := time.Now()
	f.send(t, &protocol.Msg{Type: protocol.TypeCancel, Job: 1, Attempt: 1})
	ev := f.next(t, protocol.TypeEvent).Event
	if ev.Job != 1 || ev.Attempt != 1 || ev.Result.OK || ev.Result.Error != "cancelled by the dispatcher" {
		t.Fatalf("first end: job %d attempt %d, %+v; want attempt 1 cancelled", ev.Job, ev.Attempt, ev.Result)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the cancel took %s", d)
	}
	ev = f.next(t, protocol.TypeEvent).Event
	if ev.Job != 1 || ev.Attempt != 2 || !ev.Result.OK {
		t.Fatalf("second end: job %d attempt %d, %+v; want attempt 2 OK", ev.Job, ev.Attempt, ev.Result)
	}
}

// TestCancelEveryAttempt: a cancel without an attempt number (from an
// older dispatcher) stops every attempt of the job.
func TestCancelEveryAttempt(t *testing.T) {
	f := startNode(t, t.TempDir(), "parameter x integer range from 1 to 3\ntask main\n\texec sleep 60\nendtask\n")
	for _, a := range []int{1, 2} {
		f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 3, Attempt: a, Values: []string{"3"}}})
	}
	f.heartbeat(t, func(hb *protocol.Heartbeat) bool { return len(hb.Resident) == 2 })
	f.send(t, &protocol.Msg{Type: protocol.TypeCancel, Job: 3})
	ended := map[int]bool{}
	for range 2 {
		ev := f.next(t, protocol.TypeEvent).Event
		if ev.Job != 3 || ev.Result.OK || ev.Result.Error != "cancelled by the dispatcher" {
			t.Fatalf("job %d attempt %d: %+v", ev.Job, ev.Attempt, ev.Result)
		}
		ended[ev.Attempt] = true
	}
	if !ended[1] || !ended[2] {
		t.Fatalf("ended attempts %v", ended)
	}
}

// TestCancelDuringNodestart: cancelling the attempt that runs nodestart
// does not fail nodestart for the attempts after it.
func TestCancelDuringNodestart(t *testing.T) {
	f := startNode(t, t.TempDir(), `parameter x integer range from 1 to 3
task nodestart
	exec sleep 0.5
endtask
task main
	exec true
endtask
`)
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 1, Values: []string{"1"}}})
	time.Sleep(100 * time.Millisecond)
	f.send(t, &protocol.Msg{Type: protocol.TypeCancel, Job: 1, Attempt: 1})
	if r := f.next(t, protocol.TypeEvent).Event.Result; r.OK || r.Error != "cancelled by the dispatcher" {
		t.Fatalf("cancelled attempt: %+v", r)
	}
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 2, Attempt: 1, Values: []string{"2"}}})
	if r := f.next(t, protocol.TypeEvent).Event.Result; !r.OK {
		t.Fatalf("the attempt after: %+v", r)
	}
}

// TestResidentMemory: a heartbeat reports the resident memory of an
// attempt's processes: here a shell holding 50 MB in a variable.
func TestResidentMemory(t *testing.T) {
	f := startNode(t, t.TempDir(), `parameter x integer range from 1 to 3
task main
	shexec "m=$(yes | head -c 50000000); sleep 10; echo ${#m}"
endtask
`)
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 4, Attempt: 2, Values: []string{"1"}}})
	hb := f.heartbeat(t, func(hb *protocol.Heartbeat) bool {
		b, _ := residentOf(hb, 4, 2)
		return b >= 40<<20
	})
	if hb.Running != 1 || len(hb.Resident) != 1 {
		t.Fatalf("heartbeat %+v: want one attempt", hb)
	}
	t.Logf("resident: %d bytes", hb.Resident[0].Bytes)
}

// TestMissingRootFileIsTheJobsFailure: a missing input is the job's own
// failure (running it elsewhere would not help), not a system failure.
func TestMissingRootFileIsTheJobsFailure(t *testing.T) {
	f := startNode(t, t.TempDir(), "parameter x integer range from 1 to 3\ntask main\n\tcopy root:nofile node:.\nendtask\n")
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 3, Attempt: 1, Values: []string{"3"}}})
	r := f.next(t, protocol.TypeEvent).Event.Result
	if r.OK || r.System || !strings.Contains(r.Error, "nofile") {
		t.Fatalf("result %+v", r)
	}
}

// TestConfine puts each command of a job under the node's limits
// (Config.Confine) as it starts; a command that cannot be is killed, and
// the attempt is the node's system failure, not the job's.
func TestConfine(t *testing.T) {
	const plan = "parameter x integer range from 1 to 3\ntask main\n\texec true\n\texec sleep 30\nendtask\n"
	var confined []int
	f := startNode(t, t.TempDir(), "parameter x integer range from 1 to 3\ntask main\n\texec true\n\texec true\nendtask\n",
		func(c *Config) { c.Confine = func(pgid int) error { confined = append(confined, pgid); return nil } })
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 1, Values: []string{"1"}}})
	if ev := f.next(t, protocol.TypeEvent).Event; !ev.Result.OK {
		t.Fatalf("confined attempt: %+v", ev.Result)
	}
	if len(confined) != 2 || confined[0] <= 0 || confined[1] <= 0 {
		t.Fatalf("confined process groups %v, want the job's two commands'", confined)
	}

	f = startNode(t, t.TempDir(), plan,
		func(c *Config) { c.Confine = func(int) error { return errors.New("no such group") } })
	start := time.Now()
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 1, Values: []string{"1"}}})
	res := f.next(t, protocol.TypeEvent).Event.Result
	if res.OK || !res.System || res.Side != protocol.SideNode || !strings.Contains(res.Error, "its limits: no such group") {
		t.Fatalf("an attempt that could not be confined: %+v", res)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("the unconfined attempt took %s: its command was not killed", d)
	}
}
