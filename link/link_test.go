package link_test

// Attacks on a node's link, each a test: link.Serve over net.Pipe, the
// test playing the node with protocol.Conn, a recording dispatcher, and a
// real confined root directory with a file outside it.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/dispatch"
	"orrery/link"
	"orrery/plan"
	"orrery/protocol"
	"orrery/task"
)

// testPlan's main task copies in-$x.txt and link-$x.txt from the root
// and results/out-$x.txt back.
const testPlan = `parameter x integer range from 1 to 3
task main
	copy root:in-$x.txt node:in.txt
	copy root:link-$x.txt node:link.txt
	exec true
	copy node:out.txt root:results/out-$x.txt
endtask
`

// access returns the grants of job's main task in testPlan, built as the
// dispatcher builds them.
func access(t *testing.T, job int64) *task.Access {
	t.Helper()
	d := plan.Modern
	p, err := plan.Parse("p.pln", []byte(testPlan), plan.Options{Dialect: &d})
	if err != nil {
		t.Fatal(err)
	}
	return task.TaskAccess(p.Task("main"), task.Job{Index: job, Names: []string{"x"}, Values: []string{fmt.Sprint(job)}})
}

// logBuf collects a logger's output; safe for concurrent use.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// lines returns the log lines that contain every one of subs.
func (l *logBuf) lines(subs ...string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(l.String()))
next:
	for sc.Scan() {
		for _, s := range subs {
			if !strings.Contains(sc.Text(), s) {
				continue next
			}
		}
		out = append(out, sc.Text())
	}
	return out
}

// recorder is a fake dispatcher. It records what the link reports; on
// Joined it welcomes the node (unless noWelcome) and, when start is set,
// starts attempt 1 of job 2 with the grants TaskAccess gives it.
type recorder struct {
	noWelcome bool
	start     *task.Access

	mu     sync.Mutex
	node   dispatch.Node
	joined int
	ended  []protocol.Event
	beats  int
	gone   []error
}

var _ link.Dispatcher = (*recorder)(nil)

func (r *recorder) Joined(n dispatch.Node, j dispatch.Joining) {
	r.mu.Lock()
	r.node, r.joined = n, r.joined+1
	r.mu.Unlock()
	if r.noWelcome {
		return
	}
	n.Welcome(protocol.Welcome{Node: "n1", Experiment: 1, PlanName: "p.pln", PlanText: testPlan,
		Dialect: "modern", Names: []string{"x"}, Heartbeat: time.Second}, nil)
	if r.start != nil {
		n.Start(protocol.Start{Job: 2, Attempt: 1, Values: []string{"2"}}, r.start)
	}
}

func (r *recorder) Ended(n dispatch.Node, ev protocol.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ended = append(r.ended, ev)
}

func (r *recorder) Heartbeat(n dispatch.Node, hb protocol.Heartbeat) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.beats++
}

func (r *recorder) Gone(n dispatch.Node, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.gone = append(r.gone, err)
}

func (r *recorder) counts() (joined, ended, beats, gone int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.joined, len(r.ended), r.beats, len(r.gone)
}

func (r *recorder) theNode() dispatch.Node {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.node
}

// rootDir makes a root directory with in-1..3.txt, link-2.txt (a symlink
// out of it, to outside.txt next to it) and returns it.
func rootDir(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "root")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		write(t, filepath.Join(dir, fmt.Sprintf("in-%d.txt", i)), fmt.Sprintf("input %d\n", i))
	}
	write(t, filepath.Join(base, "outside.txt"), "the root's secrets\n")
	write(t, filepath.Join(base, "x"), "climbed out\n")
	if err := os.Symlink("../outside.txt", filepath.Join(dir, "link-2.txt")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func write(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// testLink is one link served over net.Pipe, and the test's end of it.
type testLink struct {
	t    *testing.T
	d    *recorder
	log  *logBuf
	raw  net.Conn           // the node's end
	node *protocol.Conn     // the node's end, framed
	msgs chan *protocol.Msg // what the node read, once reading
	done chan error         // Serve's result
}

// serve runs link.Serve over net.Pipe with cfg (its Root and Log are
// filled in when unset) and fails the test when Serve has not returned
// within 10 s of the test's end.
func serve(t *testing.T, d *recorder, cfg link.Config) *testLink {
	t.Helper()
	a, b := net.Pipe()
	l := &testLink{t: t, d: d, log: &logBuf{}, raw: b, node: protocol.NewConnLimits(b, protocol.NodeLimits),
		msgs: make(chan *protocol.Msg, 4096), done: make(chan error, 1)}
	l.node.SetSendTimeout(10 * time.Second)
	if cfg.Root == nil {
		cfg.Root = task.ConfinedRoot{Dir: rootDir(t)}
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(l.log, nil))
	}
	if cfg.ID == "" {
		cfg.ID = "n1"
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { l.done <- link.Serve(ctx, protocol.NewConn(a), d, cfg) }()
	t.Cleanup(func() {
		cancel()
		b.Close()
		select {
		case err := <-l.done:
			l.done <- err
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10 s of the connection's end")
		}
	})
	return l
}

// read starts reading what the link sends into l.msgs.
func (l *testLink) read() {
	go func() {
		for {
			m, err := l.node.Recv()
			if err != nil {
				close(l.msgs)
				return
			}
			l.msgs <- m
		}
	}()
}

// send sends m as the node, failing the test on error.
func (l *testLink) send(m *protocol.Msg) {
	l.t.Helper()
	if err := l.node.Send(m); err != nil {
		l.t.Fatalf("node send %s: %v", m.Type, err)
	}
}

// register sends the node's registration.
func (l *testLink) register() {
	l.t.Helper()
	l.send(&protocol.Msg{Type: protocol.TypeRegister, Register: &protocol.Register{
		Version: protocol.Version, Name: "n1", CPUs: 1, Memory: 1 << 30, Speed: 1, JobLimit: 2}})
}

// expect returns the next message the node read, which must be of type
// typ.
func (l *testLink) expect(typ string) *protocol.Msg {
	l.t.Helper()
	select {
	case m, ok := <-l.msgs:
		if !ok {
			l.t.Fatalf("the connection ended; want a %s", typ)
		}
		if m.Type != typ {
			l.t.Fatalf("the node got %s (%+v); want %s", m.Type, m, typ)
		}
		return m
	case <-time.After(10 * time.Second):
		l.t.Fatalf("no %s within 10 s", typ)
	}
	return nil
}

// beat sends a heartbeat and waits until the dispatcher has it: the link
// reads in order, so everything the node sent before has been handled.
func (l *testLink) beat() {
	l.t.Helper()
	_, _, before, _ := l.d.counts()
	l.send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: &protocol.Heartbeat{}})
	waitFor(l.t, 10*time.Second, "the heartbeat reaches the dispatcher", func() bool {
		_, _, beats, _ := l.d.counts()
		return beats > before
	})
}

// ended waits for Serve's result.
func (l *testLink) ended(within time.Duration) error {
	l.t.Helper()
	select {
	case err := <-l.done:
		l.done <- err
		return err
	case <-time.After(within):
		l.t.Fatalf("the link is still up after %s", within)
	}
	return nil
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting until %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func endedEvent(job int64, attempt int) *protocol.Msg {
	return &protocol.Msg{Type: protocol.TypeEvent, Event: &protocol.Event{Kind: protocol.EventEnded, Job: job, Attempt: attempt,
		Result: &protocol.Result{OK: true}}}
}

// A node may report only on attempts it was given: an end of job 99, or
// of another attempt of job 2, is refused with one log line and never
// reaches the dispatcher; the end of the attempt given is forwarded once,
// and a second report of it is refused. A cancelled attempt's end is
// still awaited, so it is forwarded.
func TestReportsOnlyOnGivenAttempts(t *testing.T) {
	d := &recorder{start: access(t, 2)}
	l := serve(t, d, link.Config{})
	l.read()
	l.register()
	l.expect(protocol.TypeWelcome)
	l.expect(protocol.TypeStart)

	l.send(endedEvent(99, 1))
	l.send(&protocol.Msg{Type: protocol.TypeEvent, Event: &protocol.Event{Kind: protocol.EventStarted, Job: 99, Attempt: 1}})
	l.send(endedEvent(2, 2))
	l.beat()
	if _, ended, _, _ := d.counts(); ended != 0 {
		t.Fatalf("the dispatcher heard %d ends of attempts the node was not given", ended)
	}
	if got := l.log.lines("report refused", "job=99", "attempt=1", "node=n1"); len(got) != 1 {
		t.Errorf("want one line refusing the report on job 99, got %q", got)
	}

	l.send(endedEvent(2, 1))
	l.send(endedEvent(2, 1))
	l.beat()
	if _, ended, _, _ := d.counts(); ended != 1 {
		t.Errorf("the dispatcher heard %d ends of job 2's attempt; want exactly one", ended)
	}
	if got := l.log.lines("report refused", "job=2"); len(got) != 2 {
		t.Errorf("want two lines refusing reports on job 2 (attempt 2, and attempt 1 again), got %q", got)
	}

	n := d.theNode()
	n.Start(protocol.Start{Job: 3, Attempt: 1, Values: []string{"3"}}, access(t, 3))
	n.Cancel(3, 1)
	l.expect(protocol.TypeStart)
	l.expect(protocol.TypeCancel)
	l.send(endedEvent(3, 1))
	l.beat()
	if _, ended, _, _ := d.counts(); ended != 2 {
		t.Errorf("the end of a cancelled attempt was not forwarded (%d ends)", ended)
	}
	if got := l.log.lines("report refused"); len(got) != 3 {
		t.Errorf("want three refusals in all, got %q", got)
	}
}

// staging is one staging exchange as the node sees it.
type staging struct {
	data  string
	reply *protocol.Msg
	other []*protocol.Msg // frames for other requests (none expected)
}

// open asks for a root file and collects the answer.
func (l *testLink) open(id uint64, path string) staging {
	l.t.Helper()
	l.send(&protocol.Msg{Type: protocol.TypeOpen, ID: id, Path: path})
	return l.answer(id)
}

// answer collects the answer to request id: data frames to EOF, or a
// reply.
func (l *testLink) answer(id uint64) staging {
	l.t.Helper()
	var s staging
	for {
		var m *protocol.Msg
		select {
		case m = <-l.msgs:
		case <-time.After(10 * time.Second):
			l.t.Fatalf("no answer to request %d within 10 s", id)
		}
		if m == nil {
			l.t.Fatalf("the connection ended before request %d was answered", id)
		}
		if m.ID != id {
			s.other = append(s.other, m)
			continue
		}
		switch m.Type {
		case protocol.TypeData:
			s.data += string(m.Data)
			if m.EOF {
				return s
			}
		case protocol.TypeReply:
			s.reply = m
			return s
		default:
			l.t.Fatalf("request %d answered with %s", id, m.Type)
		}
	}
}

// create writes a root file as the node and returns the reply.
func (l *testLink) create(id uint64, path, data string) staging {
	l.t.Helper()
	l.send(&protocol.Msg{Type: protocol.TypeCreate, ID: id, Path: path, Mode: 0o644})
	l.send(&protocol.Msg{Type: protocol.TypeData, ID: id, Data: []byte(data)})
	l.send(&protocol.Msg{Type: protocol.TypeClose, ID: id})
	return l.answer(id)
}

// Least privilege on staging: after the start of job 2 with the grants
// TaskAccess gives it, the node reads the file its copy names and writes
// the result its copy names, and nothing else: absolute paths, paths that
// climb out, a root file of another job, a granted symlink that points
// out of the root, and a create of an ungranted path are each refused
// with Denied, no data and one log line, and create nothing. Once the
// attempt is cancelled, the granted file is refused too.
func TestStagingLeastPrivilege(t *testing.T) {
	dir := rootDir(t)
	d := &recorder{start: access(t, 2)}
	l := serve(t, d, link.Config{Root: task.ConfinedRoot{Dir: dir}})
	l.read()
	l.register()
	l.expect(protocol.TypeWelcome)
	l.expect(protocol.TypeStart)

	if s := l.open(1, "in-2.txt"); s.reply != nil || s.data != "input 2\n" {
		t.Fatalf("open of the granted file: data %q, reply %+v", s.data, s.reply)
	}
	if s := l.create(2, "results/out-2.txt", "result 2\n"); s.reply == nil || s.reply.Error != "" {
		t.Fatalf("create of the granted result: %+v", s.reply)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "results", "out-2.txt")); err != nil || string(b) != "result 2\n" {
		t.Errorf("the granted result on the root: %q, %v", b, err)
	}

	id := uint64(10)
	denied := 0
	check := func(what string, s staging) {
		t.Helper()
		denied++
		if s.data != "" || s.reply == nil || !s.reply.Denied || s.reply.Error == "" {
			t.Errorf("%s: data %q, reply %+v; want a reply with Error and Denied, and no data", what, s.data, s.reply)
		}
		if len(s.other) != 0 {
			t.Errorf("%s: unexpected frames %+v", what, s.other)
		}
	}
	for _, p := range []string{"/etc/passwd", "../x", "results/../../x", "in-1.txt", "link-2.txt", "../outside.txt", dir + "/in-2.txt"} {
		id++
		s := l.open(id, p)
		check("open "+p, s)
		if p == "link-2.txt" && s.reply != nil && !strings.Contains(s.reply.Error, "symlink") {
			t.Errorf("the granted symlink out was refused for %q; want the confined root's refusal", s.reply.Error)
		}
	}
	id++
	l.send(&protocol.Msg{Type: protocol.TypeStat, ID: id, Path: "in-3.txt"})
	check("stat in-3.txt", l.answer(id))
	id++
	l.send(&protocol.Msg{Type: protocol.TypeGlob, ID: id, Path: "*.txt"})
	check("glob *.txt", l.answer(id))
	for _, p := range []string{"evil.txt", "results/out-3.txt", "../evil.txt", "in-2.txt"} {
		id++
		check("create "+p, l.create(id, p, "overwritten\n"))
	}
	for _, p := range []string{filepath.Join(dir, "evil.txt"), filepath.Join(dir, "results", "out-3.txt"), filepath.Join(dir, "..", "evil.txt")} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a refused create left %s (%v)", p, err)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "in-2.txt")); string(b) != "input 2\n" {
		t.Errorf("a refused create changed in-2.txt to %q", b)
	}

	d.theNode().Cancel(2, 1)
	l.expect(protocol.TypeCancel)
	id++
	check("open in-2.txt after cancel", l.open(id, "in-2.txt"))
	id++
	check("create results/out-2.txt after cancel", l.create(id, "results/out-2.txt", "late\n"))

	if got := l.log.lines("staging refused", "node=n1"); len(got) != denied {
		t.Errorf("%d lines of staging refused for %d refusals:\n%s", len(got), denied, strings.Join(got, "\n"))
	}
	if _, _, _, gone := d.counts(); gone != 0 {
		t.Errorf("refusals dropped the node")
	}
}

// A node that stops reading never blocks the dispatcher: with a queue of
// 8 and a send timeout of 200 ms, 100 starts and 100 cancels each return
// at once, the node is dropped (one log line) and the dispatcher hears
// it gone within about a second.
func TestNodeThatStopsReading(t *testing.T) {
	d := &recorder{}
	l := serve(t, d, link.Config{Queue: 8, SendTimeout: 200 * time.Millisecond})
	l.register() // and never read
	waitFor(t, 10*time.Second, "the node joins", func() bool { j, _, _, _ := d.counts(); return j == 1 })
	n := d.theNode()

	start := time.Now()
	var slowest time.Duration
	full := 0
	var lastErr error
	for i := range 100 {
		t0 := time.Now()
		err := n.Start(protocol.Start{Job: int64(i + 1), Attempt: 1, Values: []string{"1"}}, access(t, 1))
		if errors.Is(err, link.ErrQueueFull) {
			full++
		}
		lastErr = err
		slowest = max(slowest, time.Since(t0))
		t0 = time.Now()
		// The queue may fill on a cancel as well as on a start.
		if err := n.Cancel(int64(i+1), 1); errors.Is(err, link.ErrQueueFull) {
			full++
		}
		slowest = max(slowest, time.Since(t0))
	}
	pushed := time.Since(start)
	// Had each call waited for its message to be sent (200 ms before the
	// send times out), 200 calls would take 40 s; the bound is far from
	// both, so a busy machine does not decide it.
	if pushed > 5*time.Second {
		t.Errorf("200 Start and Cancel calls took %s (slowest %s); they must never wait for the node", pushed, slowest)
	}
	if full > 1 {
		t.Errorf("%d calls said the queue is full; want at most one (the link is closed after it)", full)
	}
	if lastErr == nil {
		t.Errorf("the last Start to a dropped node returned no error")
	}
	waitFor(t, 3*time.Second, "the dispatcher hears the node gone", func() bool { _, _, _, g := d.counts(); return g == 1 })
	t.Logf("pushed 200 calls in %s; gone %s after the first", pushed, time.Since(start))
	l.ended(time.Second)
	if got := l.log.lines("send queue is full", "node=n1"); len(got) != full {
		t.Errorf("want %d lines dropping the node for its full queue, got %q", full, got)
	}
}

// rawFrame returns a frame with the given header and data, whatever they
// are (Conn.Send refuses to make a bad one).
func rawFrame(head string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(head)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
	return append(append(b, head...), data...)
}

// Protocol violations close the connection, with a log line, and the
// dispatcher hears a registered node gone.
func TestProtocolViolationsClose(t *testing.T) {
	reg := func(l *testLink) { l.register() }
	welcomed := func(l *testLink) {
		l.register()
		l.expect(protocol.TypeWelcome)
	}
	for _, tc := range []struct {
		name      string
		noWelcome bool
		before    func(*testLink)
		frame     []byte // sent raw when set
		msg       *protocol.Msg
		registers bool
	}{
		{name: "staging before welcome", noWelcome: true, before: reg, registers: true,
			msg: &protocol.Msg{Type: protocol.TypeOpen, ID: 1, Path: "in-2.txt"}},
		{name: "staging before register", before: func(*testLink) {},
			msg: &protocol.Msg{Type: protocol.TypeOpen, ID: 1, Path: "in-2.txt"}},
		{name: "second register", before: welcomed, registers: true,
			msg: &protocol.Msg{Type: protocol.TypeRegister, Register: &protocol.Register{Version: protocol.Version, Name: "again"}}},
		{name: "empty register", before: func(*testLink) {}, msg: &protocol.Msg{Type: protocol.TypeRegister}},
		{name: "heartbeat before register", before: func(*testLink) {},
			msg: &protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: &protocol.Heartbeat{}}},
		{name: "event before register", before: func(*testLink) {}, msg: endedEvent(1, 1)},
		{name: "unknown type", before: welcomed, registers: true, msg: &protocol.Msg{Type: "bogus"}},
		{name: "a hello after authentication", before: welcomed, registers: true,
			msg: &protocol.Msg{Type: protocol.TypeHello, Hello: &protocol.Hello{Version: protocol.Version}}},
		{name: "a welcome from the node", before: welcomed, registers: true,
			msg: &protocol.Msg{Type: protocol.TypeWelcome, Welcome: &protocol.Welcome{}}},
		{name: "staging request without an ID", before: welcomed, registers: true,
			msg: &protocol.Msg{Type: protocol.TypeStat, Path: "in-2.txt"}},
		{name: "data on a non-data message", before: welcomed, registers: true,
			frame: rawFrame(`{"t":"heartbeat","heartbeat":{}}`, []byte("hello"))},
		{name: "header not JSON", before: welcomed, registers: true, frame: rawFrame(`not json`, nil)},
		{name: "header over RootLimits", before: welcomed, registers: true,
			frame: binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 2<<20), 0)},
		{name: "data over a chunk", before: welcomed, registers: true,
			frame: binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 2), protocol.ChunkSize+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &recorder{noWelcome: tc.noWelcome}
			l := serve(t, d, link.Config{})
			l.read()
			tc.before(l)
			if tc.frame != nil {
				if _, err := l.raw.Write(tc.frame); err != nil {
					t.Fatal(err)
				}
			} else {
				l.send(tc.msg)
			}
			err := l.ended(5 * time.Second)
			if !errors.Is(err, protocol.ErrFrame) {
				t.Errorf("Serve returned %v; want an error wrapping protocol.ErrFrame", err)
			}
			for m := range l.msgs { // to the end of the connection
				if m.Type == protocol.TypeData || m.Type == protocol.TypeReply {
					t.Errorf("the link served %s to a node that broke the protocol", m.Type)
				}
			}
			joined, _, _, gone := d.counts()
			if want := map[bool]int{true: 1, false: 0}[tc.registers]; joined != want || gone != want {
				t.Errorf("joined %d, gone %d; want %d of each", joined, gone, want)
			}
			got := l.log.lines("protocol violation")
			switch {
			case len(got) == 0 && tc.frame != nil:
				t.Errorf("BUG: a frame that breaks the protocol (%v) closes the link without a log line, "+
					"though link.Config.Log promises one line per protocol violation: link/link.go read() "+
					"returns Recv's error as it is (lines 150-152); it should log an error wrapping protocol.ErrFrame "+
					"as l.violation does", err)
			case len(got) != 1:
				t.Errorf("want one line saying the connection closed for a protocol violation; got %q (Serve: %v)", got, err)
			}
		})
	}
}

// settleGoroutines waits until at most n goroutines run, and reports how
// many there are.
func settleGoroutines(n int, within time.Duration) int {
	deadline := time.Now().Add(within)
	for {
		got := runtime.NumGoroutine()
		if got <= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// 20 opens at once of a granted 1 MiB file that the node never reads,
// with MaxRequests 4: the link holds at most 4 requests in progress (its
// reader waits: back-pressure, so the heartbeats behind them wait too),
// memory stays bounded, the answers fail once their send deadline passes
// and the reader gets past the requests (today the heartbeats reach the
// dispatcher again; once a failed answer drops the node, as
// TestNodeDroppedWhenStagingAnswerMissesDeadline wants, the link ends),
// and once the connection ends no goroutine is left behind.
func TestTooManyStagingRequests(t *testing.T) {
	before := runtime.NumGoroutine()
	dir := rootDir(t)
	write(t, filepath.Join(dir, "in-2.txt"), strings.Repeat("x", 1<<20))
	d := &recorder{start: access(t, 2)}
	const sendTimeout = 300 * time.Millisecond
	l := serve(t, d, link.Config{Root: task.ConfinedRoot{Dir: dir}, MaxRequests: 4, SendTimeout: sendTimeout})
	l.register()
	for _, want := range []string{protocol.TypeWelcome, protocol.TypeStart} {
		m, err := l.node.Recv()
		if err != nil || m.Type != want {
			t.Fatalf("got %v, %v; want %s", m, err, want)
		}
	}
	// From here on the node never reads.
	runtime.GC()
	var m0 runtime.MemStats
	runtime.ReadMemStats(&m0)

	sent := make(chan error, 1)
	go func() {
		for i := range 20 {
			if err := l.node.Send(&protocol.Msg{Type: protocol.TypeOpen, ID: uint64(i + 1), Path: "in-2.txt"}); err != nil {
				sent <- err
				return
			}
		}
		for range 5 {
			if err := l.node.Send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: &protocol.Heartbeat{}}); err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	var peak uint64
	deadline := time.Now().Add(sendTimeout / 2)
	for time.Now().Before(deadline) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		peak = max(peak, m.HeapAlloc)
		time.Sleep(20 * time.Millisecond)
	}
	if peak > m0.HeapAlloc && peak-m0.HeapAlloc > 16<<20 {
		t.Errorf("the heap grew by %d bytes while 20 requests waited; want it bounded by MaxRequests chunks", peak-m0.HeapAlloc)
	}
	// Back-pressure: the reader waits for a free slot, so the heartbeats
	// behind the requests cannot arrive before the first answer missed
	// its deadline.
	if _, _, beats, _ := d.counts(); beats != 0 {
		t.Errorf("%d heartbeats overtook 16 staging requests waiting for a slot", beats)
	}
	// The answers miss their deadline; then the reader moves on: the
	// waiting requests are handled and the heartbeats behind them reach
	// the dispatcher, or the link drops the node whose answers it could
	// not send. Either way the reader is not stuck.
	waitFor(t, sendTimeout+10*time.Second, "the reader gets past the stalled requests", func() bool {
		_, _, beats, gone := d.counts()
		return beats == 5 || gone == 1
	})
	l.raw.Close()
	l.ended(10 * time.Second)
	<-sent
	waitFor(t, 5*time.Second, "the dispatcher hears the node gone", func() bool { _, _, _, g := d.counts(); return g == 1 })
	if got := settleGoroutines(before, 10*time.Second); got > before {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the link ended, %d before:\n%s", got, before, buf[:runtime.Stack(buf, true)])
	}
}

// A staging answer that misses its send deadline leaves the connection
// unable to send (protocol.Conn is broken after a failed Send), so the
// node must be dropped, as the package says of a node that "misses a
// deadline". The node here keeps sending heartbeats but never reads.
func TestNodeDroppedWhenStagingAnswerMissesDeadline(t *testing.T) {
	d := &recorder{start: access(t, 2)}
	const sendTimeout = 200 * time.Millisecond
	l := serve(t, d, link.Config{SendTimeout: sendTimeout})
	l.register()
	for _, want := range []string{protocol.TypeWelcome, protocol.TypeStart} {
		if m, err := l.node.Recv(); err != nil || m.Type != want {
			t.Fatalf("got %v, %v; want %s", m, err, want)
		}
	}
	l.send(&protocol.Msg{Type: protocol.TypeOpen, ID: 1, Path: "in-2.txt"}) // never read
	stop := make(chan struct{})
	beating := make(chan struct{})
	go func() {
		defer close(beating)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if l.node.Send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: &protocol.Heartbeat{}}) != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-beating }()

	deadline := time.Now().Add(sendTimeout + 3*time.Second)
	for time.Now().Before(deadline) {
		if _, _, _, gone := d.counts(); gone == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, _, beats, _ := d.counts()
	t.Errorf("BUG: the node is still connected %s after a staging answer missed its %s send deadline "+
		"(%d heartbeats forwarded since); its connection can send nothing more, so its requests wait for ever "+
		"while the dispatcher thinks it healthy. protocol/rootserver.go ignores the error of conn.Send "+
		"(reply, and the data frames in open); the link should be closed when it fails",
		sendTimeout+3*time.Second, sendTimeout, beats)
}
