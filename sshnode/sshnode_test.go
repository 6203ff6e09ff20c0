package sshnode

// Tests against Debian's OpenSSH sshd on loopback (internal/sitetest),
// with this test binary as a stand-in agent (the real one runs in
// package head's tests): started as `agent --connect unix:SOCK
// --token-file /dev/stdin ... --work-dir W`, it reads the token, writes
// it to W/token, and keeps a connection through the socket open, over
// which it sends "join TOKEN NAME" and exits with the status the other
// end sends ("exit N"); it exits 130 on SIGTERM and dials again when
// the connection drops.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"orrery/clusterfile"
	"orrery/internal/sitetest"
	"orrery/sshkeep"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		os.Exit(standIn(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// standIn is the stand-in agent.
func standIn(args []string) int {
	flags := map[string]string{}
	for i := 0; i+1 < len(args); i += 2 {
		flags[args[i]] = args[i+1]
	}
	tok, err := os.ReadFile(flags["--token-file"])
	if err != nil {
		fmt.Fprintln(os.Stderr, "stand-in agent:", err)
		return 2
	}
	work := flags["--work-dir"]
	os.WriteFile(filepath.Join(work, "token"), tok, 0o600)
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	sock := strings.TrimPrefix(flags["--connect"], "unix:")
	exit := make(chan int, 1)
	go func() {
		for {
			c, err := net.Dial("unix", sock)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			fmt.Fprintf(c, "join %s %s\n", strings.TrimSpace(string(tok)), flags["--name"])
			line, _ := bufio.NewReader(c).ReadString('\n')
			c.Close()
			if f := strings.Fields(line); len(f) == 2 && f[0] == "exit" {
				n, _ := strconv.Atoi(f[1])
				exit <- n
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	select {
	case <-term:
		return 130
	case n := <-exit:
		return n
	}
}

// headPort stands for the head's port: it records each join line and
// answers with reply once there is one (until then it holds the
// connection).
type headPort struct {
	ln     net.Listener
	closed chan struct{}
	mu     sync.Mutex
	joins  []string
	reply  string
	conns  []net.Conn
}

func newHeadPort(t *testing.T) *headPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &headPort{ln: ln, closed: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, c)
			p.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				line, err := bufio.NewReader(c).ReadString('\n')
				if err != nil {
					return
				}
				p.mu.Lock()
				p.joins = append(p.joins, strings.TrimSpace(line))
				p.mu.Unlock()
				for {
					p.mu.Lock()
					reply := p.reply
					p.mu.Unlock()
					if reply != "" {
						fmt.Fprintln(c, reply)
						return
					}
					select {
					case <-p.closed:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		close(p.closed)
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		wg.Wait()
	})
	return p
}

func (p *headPort) joined() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.joins...)
}

func (p *headPort) setReply(r string) {
	p.mu.Lock()
	p.reply = r
	p.mu.Unlock()
}

// lines records status lines.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (s *lines) add(line string) {
	s.mu.Lock()
	s.l = append(s.l, line)
	s.mu.Unlock()
}

func (s *lines) count(prefix string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.l {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (s *lines) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.l, "\n")
}

// rig is a test's node machine (sshd on loopback, this machine), head
// port and launcher, with this test binary placed as the orrery binary.
type rig struct {
	t      *testing.T
	srv    *sitetest.Server
	base   string
	port   *headPort
	status *lines
	l      *Launcher
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv := sitetest.SSHD(t)
	base, err := os.MkdirTemp("", "sn") // short: the socket's path must be
	if err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	os.MkdirAll(filepath.Join(base, binDir), 0o700)
	if err := os.WriteFile(filepath.Join(base, binDir, "orrery-"+hex.EncodeToString(sum[:])[:16]), b, 0o700); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, srv: srv, base: base, port: newHeadPort(t), status: &lines{}}
	r.l = New(Options{KnownHosts: srv.KnownHosts, Identities: []string{srv.Identity}, RemoteDir: base,
		Timeout: 5 * time.Second, KeepAlive: 200 * time.Millisecond, Probe: 200 * time.Millisecond,
		Backoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, StopWait: 3 * time.Second})
	t.Cleanup(func() {
		if pid := r.pid(); pid > 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		os.RemoveAll(base)
		if t.Failed() {
			t.Logf("status:\n%s", r.status)
		}
	})
	return r
}

const testID = "0123456789ab"

func (r *rig) spec(token string) Spec {
	return Spec{Cluster: "c1", Node: clusterfile.Node{Name: "n1", SSH: &clusterfile.Endpoint{User: r.srv.User, Host: r.srv.Host, Port: r.srv.Port}, JobLimit: 2},
		HeadAddr: r.port.ln.Addr().String(), Token: token, ID: testID, Wait: time.Minute, Status: r.status.add}
}

func (r *rig) dir() string { return filepath.Join(r.base, nodesDir, testID+"-n1") }

// pid is the agent's process ID from agent.pid (0: none).
func (r *rig) pid() int {
	b, _ := os.ReadFile(filepath.Join(r.dir(), "agent.pid"))
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

func eventually(t *testing.T, what string, s fmt.Stringer, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 15 s\nstatus:\n%s", what, s)
		}
	}
}

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// Launch starts the agent with the token on its standard input only and
// its socket relayed to the head's port; Close leaves it running, and a
// launch again keeps it; Stop stops it, and no check starts it again.
func TestLaunchKeepStop(t *testing.T) {
	r := newRig(t)
	tok := "orrery1.test." + rand.Text()
	n, err := r.l.Launch(context.Background(), r.spec(tok))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the agent joined", r.status, func() bool { return len(r.port.joined()) > 0 })
	if j := r.port.joined()[0]; j != "join "+tok+" n1" {
		t.Fatalf("joined with %q", j)
	}
	pid := r.pid()
	cmd, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || strings.Contains(string(cmd), tok) || !strings.Contains(string(cmd), "--token-file\x00/dev/stdin\x00") {
		t.Fatalf("the agent's command line %q (%v)", cmd, err)
	}
	if r.status.count("node n1: agent started on "+r.srv.User+"@"+r.srv.Addr()+" (pid "+strconv.Itoa(pid)+")") != 1 {
		t.Fatalf("status:\n%s", r.status)
	}
	if n.Link() != sshkeep.LinkConnected {
		t.Fatalf("link %s", n.Link())
	}

	// The head goes (killed -9, say): the agent stays; the next head of
	// the same identity finds it.
	n.Close()
	if n.Link() != sshkeep.LinkLost || !alive(pid) {
		t.Fatalf("after Close: link %s, agent alive %v", n.Link(), alive(pid))
	}
	n, err = r.l.Launch(context.Background(), r.spec(tok))
	if err != nil {
		t.Fatal(err)
	}
	if r.pid() != pid || r.status.count("node n1: its agent already runs on "+r.srv.User+"@"+r.srv.Addr()+" (pid "+strconv.Itoa(pid)+"): kept") != 1 {
		t.Fatalf("pid %d (was %d)\nstatus:\n%s", r.pid(), pid, r.status)
	}

	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("the agent runs after Stop")
	}
	if b, _ := os.ReadFile(filepath.Join(r.dir(), "agent.exit")); strings.TrimSpace(string(b)) != "stopped" {
		t.Fatalf("agent.exit %q", b)
	}
	select {
	case <-n.Done():
	default:
		t.Fatal("the supervisor runs after Stop")
	}
	// Stop again dials to find it stopped.
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// An agent that dies is started again; one that ends because the head
// ended the experiment (status 0) is not.
func TestRestartAndEnd(t *testing.T) {
	r := newRig(t)
	n, err := r.l.Launch(context.Background(), r.spec("orrery1.test."+rand.Text()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	eventually(t, "the agent joined", r.status, func() bool { return len(r.port.joined()) > 0 })
	pid := r.pid()
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, "started again", r.status, func() bool { return r.status.count("node n1: its agent had stopped (status 137") == 1 })
	if p := r.pid(); p == pid || !alive(p) {
		t.Fatalf("agent %d after the restart (was %d)", p, pid)
	}

	r.port.setReply("exit 0")
	eventually(t, "said it ended", r.status, func() bool {
		return r.status.count("node n1: its agent ended (the head ended the experiment, or told it to stop): not started again") == 1
	})
	pid = r.pid()
	time.Sleep(600 * time.Millisecond) // three checks
	if alive(pid) || r.pid() != pid || r.status.count("node n1: its agent had stopped") != 1 {
		t.Fatalf("the agent was started again\nstatus:\n%s", r.status)
	}
}

// Bad input: each one line naming the cluster and the node.
func TestBadInput(t *testing.T) {
	r := newRig(t)
	check := func(name string, err error, want string, is error) {
		t.Helper()
		if err == nil || !strings.HasPrefix(err.Error(), "cluster c1: node n1: ") || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v; want one line with %q", name, err, want)
		}
		if is != nil && !errors.Is(err, is) {
			t.Errorf("%s: %v is not %v", name, err, is)
		}
	}
	s := r.spec("tok")
	s.Node.SSH = nil
	_, err := r.l.Launch(context.Background(), s)
	check("no ssh", err, "it runs on the head's machine", nil)

	s = r.spec("tok")
	s.ID = "../x"
	_, err = r.l.Launch(context.Background(), s)
	check("bad ID", err, `head identity "../x"`, nil)

	unknown := filepath.Join(t.TempDir(), "known_hosts")
	os.WriteFile(unknown, nil, 0o600)
	l := New(Options{KnownHosts: unknown, Identities: []string{r.srv.Identity}, RemoteDir: r.base, Timeout: 5 * time.Second})
	_, err = l.Launch(context.Background(), r.spec("tok"))
	check("unknown host", err, "not in "+unknown+": check it, then add it with: ssh-keyscan -p "+strconv.Itoa(r.srv.Port)+" 127.0.0.1 >> "+unknown, nil)

	other := filepath.Join(t.TempDir(), "id")
	sitetest.Keygen(t, other, "")
	l = New(Options{KnownHosts: r.srv.KnownHosts, Identities: []string{other}, RemoteDir: r.base, Timeout: 5 * time.Second})
	_, err = l.Launch(context.Background(), r.spec("tok"))
	check("refused key", err, "authentication refused", nil)

	t.Setenv("HOME", t.TempDir())
	_, err = New(Options{KnownHosts: r.srv.KnownHosts}).Launch(context.Background(), r.spec("tok"))
	check("no key", err, "no key to log in with", nil)

	// A refused key, then one that works: the second is used.
	l = New(Options{KnownHosts: r.srv.KnownHosts, Identities: []string{other, r.srv.Identity}, RemoteDir: r.base,
		Timeout: 5 * time.Second, Probe: time.Hour, KeepAlive: time.Hour})
	n, err := l.Launch(context.Background(), r.spec("tok"))
	if err != nil {
		t.Fatalf("with a second key that works: %v", err)
	}
	if err := n.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestLoopback(t *testing.T) {
	for in, want := range map[string]string{
		"0.0.0.0:7443":     "127.0.0.1:7443",
		":7443":            "127.0.0.1:7443",
		"[::]:7443":        "[::1]:7443",
		"10.1.0.1:7443":    "10.1.0.1:7443",
		"127.0.0.1:1":      "127.0.0.1:1",
		"head.example:443": "head.example:443",
	} {
		if got := loopback(in); got != want {
			t.Errorf("loopback(%q) = %q, want %q", in, got, want)
		}
	}
}

// The check that runs as soon as a killed agent's link ends can come
// before the shell that waited for the agent has written its status:
// the start script waits for the status, and says how the agent ended
// (status 137), not that it was killed unseen.
func TestStartWaitsForTheStatus(t *testing.T) {
	d := t.TempDir()
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(d, "agent.pid"), []byte(strconv.Itoa(dead.Process.Pid)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(300 * time.Millisecond)
		os.WriteFile(filepath.Join(d, "agent.exit"), []byte("137\n"), 0o600)
	}()
	work := filepath.Join(d, "work")
	agent := []string{"sh", "-c", "sleep 30", "agent", work}
	words := make([]string, len(agent))
	for i, a := range agent {
		words[i] = sshkeep.ShellQuote(a)
	}
	cmd := exec.Command("sh", "-c", fmt.Sprintf(startScript, sshkeep.ShellQuote(d), 0, strings.Join(words, " ")))
	cmd.Stdin = strings.NewReader("token\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("start script: %v: %s", err, out)
	}
	f := strings.Fields(string(out))
	if len(f) > 1 {
		if pid, err := strconv.Atoi(f[1]); err == nil {
			// The shell that waits for the agent writes its status into
			// d when it ends: let it, before d is removed.
			t.Cleanup(func() {
				syscall.Kill(pid, syscall.SIGKILL)
				for i := 0; i < 100; i++ {
					if _, err := os.Stat(filepath.Join(d, "agent.exit")); err == nil {
						break
					}
					time.Sleep(50 * time.Millisecond)
				}
			})
		}
	}
	if len(f) != 3 || f[0] != "started" || f[2] != "137" {
		t.Fatalf("start script printed %q; want started PID 137", out)
	}
}
