package port_test

// Helpers of the port's attack tests: a recording dispatcher, a real
// authority in a temporary state directory, a real confined root with a
// file outside it, the port itself on 127.0.0.1, and ways to play a
// well-behaved node or an attacker.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/dispatch"
	"orrery/link"
	"orrery/pki"
	"orrery/plan"
	"orrery/port"
	"orrery/protocol"
	"orrery/task"
)

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
	sc.Buffer(make([]byte, 64<<10), 1<<20)
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

// recorder is a fake dispatcher: it records what its links report,
// welcomes every node that registers and, when start is set, starts
// attempt 1 of job 2 on it with the grants of the plan's main task.
type recorder struct {
	start *task.Access // granted with the start; nil: no start

	mu     sync.Mutex
	joined []dispatch.Joining
	nodes  []dispatch.Node
	ended  []protocol.Event
	beats  int
	gone   []error
}

var _ link.Dispatcher = (*recorder)(nil)

func (r *recorder) Joined(n dispatch.Node, j dispatch.Joining) {
	r.mu.Lock()
	r.joined = append(r.joined, j)
	r.nodes = append(r.nodes, n)
	r.mu.Unlock()
	n.Welcome(protocol.Welcome{Node: j.ID, Experiment: 1, PlanName: "p.pln", PlanText: testPlan,
		Names: []string{"x"}, Heartbeat: time.Second}, nil)
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

// joinedIDs returns the IDs of the nodes that joined, in order.
func (r *recorder) joinedIDs() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ids []string
	for _, j := range r.joined {
		ids = append(ids, j.ID)
	}
	return ids
}

func (r *recorder) goneCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.gone)
}

// testPlan is the plan the fixture's dispatcher starts job 2 of.
const testPlan = `parameter x integer range from 1 to 3
task main
	copy root:in-$x.txt node:in.txt
	exec true
	copy node:out.txt root:results/out-$x.txt
endtask
`

// mainAccess returns the grants of job 2's main task in testPlan.
func mainAccess(t *testing.T) *task.Access {
	t.Helper()
	d := plan.Modern
	p, err := plan.Parse("p.pln", []byte(testPlan), plan.Options{Dialect: &d})
	if err != nil {
		t.Fatal(err)
	}
	return task.TaskAccess(p.Task("main"), task.Job{Index: 2, Names: []string{"x"}, Values: []string{"2"}})
}

// fixture is a root port serving a real authority, a confined root
// directory and a recording dispatcher on 127.0.0.1.
type fixture struct {
	t        *testing.T
	stateDir string
	rootDir  string
	outside  string // a file next to the root directory: never served
	auth     *pki.Authority
	tok      pki.Token
	d        *recorder
	log      *logBuf
	p        *port.Port
	addr     string // 127.0.0.1:PORT
	cancel   context.CancelFunc
	done     chan error
}

// newFixture starts a port with cfg's limits (Addr, Authority,
// Dispatcher, Root and Log are filled in) and stops it at the end of the
// test, failing it when Run does not return.
func newFixture(t *testing.T, cfg port.Config) *fixture {
	t.Helper()
	base := t.TempDir()
	f := &fixture{t: t, stateDir: filepath.Join(base, "state"), rootDir: filepath.Join(base, "root"),
		outside: filepath.Join(base, "outside.txt"), d: &recorder{}, log: &logBuf{}, done: make(chan error, 1)}
	if err := os.MkdirAll(f.rootDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 3; i++ {
		writeFile(t, filepath.Join(f.rootDir, fmt.Sprintf("in-%d.txt", i)), fmt.Sprintf("input %d\n", i))
	}
	writeFile(t, f.outside, "the root's secrets\n")
	var err error
	if f.auth, err = pki.Open(f.stateDir); err != nil {
		t.Fatal(err)
	}
	f.tok = token(t, f.auth)
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	cfg.Authority = f.auth
	if cfg.Dispatcher == nil {
		cfg.Dispatcher = f.d
	} else {
		f.d = cfg.Dispatcher.(*recorder)
	}
	cfg.Root = task.ConfinedRoot{Dir: f.rootDir}
	cfg.Log = slogTo(f.log)
	if f.p, err = port.Listen(cfg); err != nil {
		t.Fatal(err)
	}
	f.addr = f.p.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.p.Run(ctx) }()
	t.Cleanup(f.stop)
	return f
}

// stop stops the port and waits for Run.
func (f *fixture) stop() {
	f.t.Helper()
	f.cancel()
	select {
	case err := <-f.done:
		if err != nil {
			f.t.Errorf("Run: %v", err)
		}
		f.done <- err // for a second stop
	case <-time.After(10 * time.Second):
		f.t.Errorf("Run did not return within 10 s of its context's end")
	}
}

// client returns a node client with the fixture's token.
func (f *fixture) client(name string) *port.Client {
	return &port.Client{Addr: f.addr, Token: f.tok, Name: name, Timeout: 10 * time.Second}
}

// token returns the authority's current join token.
func token(t *testing.T, a *pki.Authority) pki.Token {
	t.Helper()
	s, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := pki.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// join dials with c, registers and waits until the dispatcher heard the
// node join. It returns the node's connection, which the test closes.
func (f *fixture) join(c *port.Client) *protocol.Conn {
	f.t.Helper()
	before := len(f.d.joinedIDs())
	conn, err := c.Dial(context.Background())
	if err != nil {
		f.t.Fatalf("Dial: %v", err)
	}
	f.t.Cleanup(func() { conn.Close() })
	register(f.t, conn, c.Name)
	waitFor(f.t, 5*time.Second, "the dispatcher hears the node join", func() bool {
		return len(f.d.joinedIDs()) > before
	})
	return conn
}

// register sends a node's registration.
func register(t *testing.T, conn *protocol.Conn, name string) {
	t.Helper()
	conn.SetSendTimeout(5 * time.Second)
	err := conn.Send(&protocol.Msg{Type: protocol.TypeRegister, Register: &protocol.Register{
		Version: protocol.Version, Name: name, CPUs: 1, Memory: 1 << 30, Speed: 1, JobLimit: 1}})
	if err != nil {
		t.Fatalf("register: %v", err)
	}
}

// waitFor polls cond until it holds or timeout passes (then the test
// fails, saying what did not happen).
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

// tlsDial connects to the fixture over TLS as a node would with tok and
// cert, asking for the application protocols alpn, and returns the
// finished handshake's connection.
func (f *fixture) tlsDial(tok pki.Token, serverName string, cert *tls.Certificate, alpn ...string) (*tls.Conn, error) {
	raw, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	f.t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	cfg := pki.ClientConfig(tok, serverName, cert)
	cfg.NextProtos = alpn
	tc := tls.Client(raw, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, err
	}
	return tc, nil
}

// closedWithin reads from conn until it closes, and fails the test when
// it is still open after d. It returns the bytes read before the end and
// how long the connection stayed open.
func closedWithin(t *testing.T, conn net.Conn, d time.Duration) ([]byte, time.Duration) {
	t.Helper()
	start := time.Now()
	conn.SetReadDeadline(start.Add(d))
	var got bytes.Buffer
	_, err := io.Copy(&got, conn)
	took := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("the connection is still open after %s (read %d bytes)", d, got.Len())
	}
	return got.Bytes(), took
}

// isTLSAlertOnly reports whether b is nothing or one TLS alert record:
// what a TLS server may answer to a peer it drops during the handshake.
// No frame of the agent protocol is in it.
func isTLSAlertOnly(b []byte) bool {
	return len(b) == 0 || len(b) == 7 && b[0] == 0x15 && b[1] == 0x03 && b[3] == 0 && b[4] == 2
}

// frameHeader returns the 8 bytes that start a frame of the agent
// protocol claiming head bytes of header and data bytes of data.
func frameHeader(head, data uint32) []byte {
	return []byte{byte(head >> 24), byte(head >> 16), byte(head >> 8), byte(head),
		byte(data >> 24), byte(data >> 16), byte(data >> 8), byte(data)}
}

// slogTo returns a logger that writes text lines, debug level and up, to w.
func slogTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
