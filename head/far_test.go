package head

// Tests of a head's nodes on other machines, with real parts: a root in
// this process (its key material, store, dispatcher and TLS port, as
// `orrery run` makes them for a grid), a head (New and Run) that joins
// it, Debian's OpenSSH sshd on loopback (internal/sitetest) for nodes
// over SSH, and the real orrery binary, built once, as the agents.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"orrery/clusterfile"
	"orrery/dispatch"
	"orrery/internal/sitetest"
	"orrery/pki"
	"orrery/plan"
	"orrery/port"
	"orrery/sched"
	"orrery/sshnode"
	"orrery/store"
	"orrery/sweep"
	"orrery/task"
)

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// orreryBinary builds the orrery command once per test run.
func orreryBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "orrery-head-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "orrery")
		// Without symbols: a smaller binary is copied sooner.
		out, err := exec.Command("go", "build", "-ldflags=-s -w", "-o", binPath, "orrery/cmd/orrery").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("building orrery: %v", binErr)
	}
	return binPath
}

// farPlan runs jobs of a fifth of a second each, staging a result back.
const farPlan = `parameter x integer range from 1 to %d
task main
	execute sh -c "sleep %s; echo out $x" > out.txt
	copy node:out.txt root:results/out-$x.txt
endtask
`

// testRoot is a grid's root in this process, running a sweep of n jobs.
type testRoot struct {
	t     *testing.T
	n     int
	dir   string
	addr  string
	token pki.Token
	st    *store.Store
	exp   *store.Experiment
	done  chan struct{}
	sum   dispatch.Summary
	err   error
}

func startRoot(t *testing.T, n int, sleep string) *testRoot {
	t.Helper()
	r := &testRoot{t: t, n: n, dir: t.TempDir(), done: make(chan struct{})}
	src := fmt.Sprintf(farPlan, n, sleep)
	p, err := plan.Parse("p.pln", []byte(src), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stateDir := filepath.Join(r.dir, ".orrery")
	if r.st, err = store.Open(ctx, stateDir); err != nil {
		t.Fatal(err)
	}
	sw, err := sweep.New(p, sweep.Options{Root: r.dir, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	r.exp = &store.Experiment{PlanPath: filepath.Join(r.dir, "p.pln"), PlanText: p.Source, Dialect: p.Dialect.String(), Seed: 1, Names: sw.Names}
	if err := r.st.Create(ctx, r.exp); err != nil {
		t.Fatal(err)
	}
	auth, err := pki.Open(stateDir)
	if err != nil {
		t.Fatal(err)
	}
	text, err := auth.HeadToken() // what a grid's root hands its heads
	if err != nil {
		t.Fatal(err)
	}
	if r.token, err = pki.ParseToken(text); err != nil {
		t.Fatal(err)
	}
	d := dispatch.New(dispatch.Config{Plan: p, Sweep: sw, Store: r.st, Experiment: r.exp, Root: r.dir,
		Policy: sched.Orrery, Heartbeat: 500 * time.Millisecond, Grid: true, HeadTimeout: time.Minute})
	pt, err := port.Listen(port.Config{Addr: "127.0.0.1:0", Authority: auth, Dispatcher: d,
		Root: task.ConfinedRoot{Dir: r.dir, TempDir: d.IncomingDir(), Hidden: []string{stateDir}}})
	if err != nil {
		t.Fatal(err)
	}
	r.addr = pt.Addr().String()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		pt.Run(ctx)
	}()
	go func() {
		defer wg.Done()
		defer close(r.done)
		r.sum, r.err = d.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		d.Close()
		r.st.Close()
	})
	return r
}

// wait waits for the sweep to end and checks every job succeeded once,
// with its result, on a node whose name matches node.
func (r *testRoot) wait(limit time.Duration, node *regexp.Regexp, status fmt.Stringer) {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(limit):
		r.t.Fatalf("the sweep did not end within %v\nstatus:\n%s", limit, status)
	}
	if r.err != nil || r.sum.Done != int64(r.n) || r.sum.Failed != 0 {
		r.t.Fatalf("sweep: %d done, %d failed, err %v; want %d done\nstatus:\n%s", r.sum.Done, r.sum.Failed, r.err, r.n, status)
	}
	for x := 1; x <= r.n; x++ {
		b, err := os.ReadFile(filepath.Join(r.dir, "results", fmt.Sprintf("out-%d.txt", x)))
		if err != nil || string(b) != fmt.Sprintf("out %d\n", x) {
			r.t.Errorf("result %d: %q, %v", x, b, err)
		}
	}
	done := 0
	err := r.st.AttemptsOf(context.Background(), r.exp.ID, 0, int64(r.n), func(a store.Attempt) error {
		if a.State == store.AttemptOK {
			done++
			if !node.MatchString(a.ClusterNode) {
				r.t.Errorf("job %d ran on node %q of cluster %q, want %v", a.Job, a.ClusterNode, a.Cluster, node)
			}
		}
		return nil
	})
	if err != nil {
		r.t.Fatal(err)
	}
	if done != r.n {
		r.t.Errorf("%d attempts done, want %d (one per job)", done, r.n)
	}
}

// statusLog records a head's status lines.
type statusLog struct {
	mu    sync.Mutex
	lines []string
	times []time.Time
}

func (s *statusLog) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	s.times = append(s.times, time.Now())
}

// find returns the lines that match re.
func (s *statusLog) find(re string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for _, l := range s.lines {
		if regexp.MustCompile(re).MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func (s *statusLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	for i, l := range s.lines {
		fmt.Fprintf(&b, "%s %s\n", s.times[i].Format("15:04:05.000"), l)
	}
	return b.String()
}

// eventually waits up to 20 s for cond.
func eventually(t *testing.T, what string, status fmt.Stringer, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 20 s\nstatus:\n%s", what, status)
		}
	}
}

// testHead is a head run in this process.
type testHead struct {
	dir    string
	status *statusLog
	log    *sitetest.Buffer
	done   chan struct{}
	err    error
}

// runHead starts a head of the cluster text's cluster for root r.
func runHead(t *testing.T, r *testRoot, text string, launcher NodeLauncher) *testHead {
	t.Helper()
	g, err := clusterfile.Parse("test.cluster", strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	th := &testHead{dir: t.TempDir(), status: &statusLog{}, log: &sitetest.Buffer{}, done: make(chan struct{})}
	h, err := New(Config{Dir: th.dir, Cluster: g.Clusters[0], Root: r.addr, Token: r.token, Lease: time.Minute,
		Retry: 100 * time.Millisecond, NodeLauncher: launcher, Status: th.status.add,
		Log: slog.New(slog.NewTextHandler(th.log, &slog.HandlerOptions{Level: slog.LevelInfo}))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(th.done)
		th.err = h.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-th.done
		if t.Failed() {
			t.Logf("head status:\n%s\nhead log:\n%s", th.status, th.log)
		}
	})
	return th
}

// end waits for the head to end after the sweep: the experiment is over.
func (th *testHead) end(t *testing.T) {
	t.Helper()
	select {
	case <-th.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the head did not end\nstatus:\n%s", th.status)
	}
	if th.err != nil {
		t.Fatalf("head: %v\nstatus:\n%s", th.err, th.status)
	}
}

// sshNodes is a launcher for nodes on srv's machine (this one), with a
// short remote directory (the socket path must be short) and quick
// supervision; its agents are killed when the test ends. With placed,
// the binary is already where the launcher copies it (so that it does
// not copy it again).
func sshNodes(t *testing.T, knownHosts, identity string, placed bool) (NodeLauncher, string) {
	t.Helper()
	base, err := os.MkdirTemp("", "sn")
	if err != nil {
		t.Fatal(err)
	}
	bin := orreryBinary(t)
	if placed {
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		os.MkdirAll(filepath.Join(base, "bin"), 0o700)
		if err := os.WriteFile(filepath.Join(base, "bin", "orrery-"+hex.EncodeToString(sum[:])[:16]), b, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for _, pid := range agentPIDs(base) {
			if pgid, err := syscall.Getpgid(pid); err == nil && pgid > 1 {
				syscall.Kill(-pgid, syscall.SIGKILL) // with the shell that waits for it
			}
			syscall.Kill(pid, syscall.SIGKILL)
		}
		os.RemoveAll(base)
	})
	return SSHNodes(sshnode.Options{KnownHosts: knownHosts, Identities: []string{identity}, Binary: bin,
		RemoteDir: base, Timeout: 5 * time.Second, KeepAlive: 200 * time.Millisecond, Probe: 300 * time.Millisecond,
		Backoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond, StopWait: 5 * time.Second}), base
}

// agentPIDs are the process IDs of the agents under base.
func agentPIDs(base string) []int {
	files, _ := filepath.Glob(filepath.Join(base, "n", "*", "agent.pid"))
	var pids []int
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// alive reports whether process pid lives.
func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// agentPID is the agent's process under base for node, 0 if none.
func agentPID(base, node string) int {
	files, _ := filepath.Glob(filepath.Join(base, "n", "*-"+node, "agent.pid"))
	if len(files) != 1 {
		return 0
	}
	b, _ := os.ReadFile(files[0])
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// A head whose cluster has a node over SSH runs its jobs there: the
// agent is started on the node's machine over SSH, joins the head's
// port through the forwarded socket, runs every job, and is gone once
// the experiment is over. A second node line whose host key is unknown
// is one line of error that names the cluster and the node, and the
// cluster carries on without it. The join token is on no command line.
func TestSSHNodeRunsJobs(t *testing.T) {
	srv := sitetest.SSHD(t)
	r := startRoot(t, 12, "0.2")
	launcher, base := sshNodes(t, srv.KnownHosts, srv.Identity, false)
	text := fmt.Sprintf("cluster c1\n    node n1 ssh %s@%s job-limit 2\n    node n2 ssh %s@localhost:%d\n",
		srv.User, srv.Addr(), srv.User, srv.Port)
	th := runHead(t, r, text, launcher)

	eventually(t, "n1's agent running", th.status, func() bool { return agentPID(base, "n1") != 0 })
	pid := agentPID(base, "n1")
	tok, err := os.ReadFile(filepath.Join(th.dir, JoinTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(tok))
	if fi, err := os.Stat(filepath.Join(th.dir, JoinTokenFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, %v; want mode 0600", JoinTokenFile, fi, err)
	}
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		if b, err := os.ReadFile(f); err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("the join token is on the command line of %s: %q", f, b)
		}
	}

	r.wait(30*time.Second, regexp.MustCompile(`^n1$`), th.status)
	th.end(t)
	if alive(pid) {
		t.Errorf("n1's agent (pid %d) runs after the experiment", pid)
	}
	bad := th.status.find(`node n2`)
	want := fmt.Sprintf("cluster c1: node n2: ssh %s@localhost:%d: host key of localhost:%d (", srv.User, srv.Port, srv.Port)
	if len(bad) != 1 || !strings.HasPrefix(bad[0], want) || !strings.Contains(bad[0], ") not in "+srv.KnownHosts+": check it, then add it with: ssh-keyscan") {
		t.Errorf("n2's lines: %q; want one that starts %q", bad, want)
	}
	if s := th.status.find(`^node n1: agent started on ` + regexp.QuoteMeta(srv.User+"@"+srv.Addr()) + ` \(pid \d+\)$`); len(s) != 1 {
		t.Errorf("no line that says n1's agent started\nstatus:\n%s", th.status)
	}
}

// The agent of a node over SSH outlives its SSH connection: when the
// connection drops, the agent runs its jobs on and the head connects
// again and forwards the socket again, and the agent rejoins through
// it. An agent that dies is started again.
func TestSSHNodeSurvivesDrop(t *testing.T) {
	srv := sitetest.SSHD(t)
	addr, link := sitetest.WAN(t, srv.Addr(), 0, 0)
	via := srv.Via(t, addr)
	r := startRoot(t, 24, "0.3")
	launcher, base := sshNodes(t, via.KnownHosts, srv.Identity, true)
	th := runHead(t, r, fmt.Sprintf("cluster c1\n    node n1 ssh %s@%s job-limit 2\n", via.User, addr), launcher)

	results := func() int {
		m, _ := filepath.Glob(filepath.Join(r.dir, "results", "*"))
		return len(m)
	}
	eventually(t, "a first result", th.status, func() bool { return results() >= 2 })
	pid := agentPID(base, "n1")
	link.Reset()
	eventually(t, "the cut said", th.status, func() bool { return len(th.status.find(`^node n1: SSH connection lost`)) == 1 })
	eventually(t, "the link back", th.status, func() bool { return len(th.status.find(`^node n1: SSH connection back`)) == 1 })
	if agentPID(base, "n1") != pid || !alive(pid) {
		t.Fatalf("the agent did not outlive its SSH connection: pid %d, now %d", pid, agentPID(base, "n1"))
	}
	n := results()
	eventually(t, "results after the cut", th.status, func() bool { return results() >= n+2 })

	// The agent dies: it is started again, joins as a new node, and
	// the jobs it held run again there.
	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, "the agent started again", th.status, func() bool {
		return len(th.status.find(`^node n1: its agent had stopped \(status 137; agent.log: .*\); started it again \(pid \d+\)$`)) == 1
	})
	if p := agentPID(base, "n1"); p == pid || !alive(p) {
		t.Fatalf("agent pid %d after the restart (was %d)", p, pid)
	}
	select {
	case <-r.done:
	case <-time.After(40 * time.Second):
		t.Fatalf("the sweep did not end\nstatus:\n%s", th.status)
	}
	if r.err != nil || r.sum.Done != int64(r.n) || r.sum.Failed != 0 {
		t.Fatalf("sweep: %d done, %d failed, err %v\nstatus:\n%s", r.sum.Done, r.sum.Failed, r.err, th.status)
	}
	th.end(t)
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// With `listen`, nodes join the head by themselves: `orrery agent
// --connect ADDR --token-file F` with the token the head keeps in
// DIR/join.token, which `orrery head token --dir DIR` prints. A wrong
// token is refused, and nothing is served to it.
func TestListenJoin(t *testing.T) {
	bin := orreryBinary(t)
	r := startRoot(t, 10, "0.1")
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(freePort(t)))
	th := runHead(t, r, "cluster c2 listen "+addr+"\n", nil)
	eventually(t, "the head's port", th.status, func() bool {
		return len(th.status.find(`^nodes join the cluster at `+regexp.QuoteMeta(addr)+` with: `)) == 1
	})

	tokFile := filepath.Join(th.dir, JoinTokenFile)
	tok, err := os.ReadFile(tokFile)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "head", "token", "--dir", th.dir).Output()
	if err != nil || string(out) != string(tok) {
		t.Fatalf("orrery head token printed %q (%v); %s holds %q", out, err, JoinTokenFile, tok)
	}
	real, err := pki.ParseToken(string(tok))
	if err != nil {
		t.Fatal(err)
	}

	// A token of the right authority with a wrong secret.
	wrong := filepath.Join(t.TempDir(), "wrong.token")
	os.WriteFile(wrong, []byte(pki.Token{CAHash: real.CAHash, Secret: rand.Text()}.Encode()+"\n"), 0o600)
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "agent", "--connect", addr, "--token-file", wrong, "--name", "intruder", "--work-dir", filepath.Join(t.TempDir(), "w"), "--wait", "10s")
	cmd.Stderr = &stderr
	err = cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 3 || !strings.Contains(stderr.String(), "the join token is wrong") {
		t.Fatalf("an agent with a wrong token: %v\n%s", err, stderr.String())
	}

	var agentErr sitetest.Buffer
	agent := exec.Command(bin, "agent", "--connect", addr, "--token-file", tokFile, "--name", "j1", "--job-limit", "2",
		"--work-dir", filepath.Join(t.TempDir(), "w"), "--wait", "30s")
	agent.Stdout, agent.Stderr = &agentErr, &agentErr
	agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = agent.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-agent.Process.Pid, syscall.SIGKILL)
		<-exited
	})
	r.wait(30*time.Second, regexp.MustCompile(`^j1$`), th.status)
	th.end(t)
	select {
	case <-exited:
		if waitErr != nil {
			t.Errorf("the agent ended with %v:\n%s", waitErr, agentErr.String())
		}
	case <-time.After(20 * time.Second):
		t.Errorf("the agent runs after the experiment:\n%s", agentErr.String())
	}
	if log := th.log.String(); !strings.Contains(log, "connection refused") || !strings.Contains(log, "wrong join secret") {
		t.Errorf("the head's log does not say it refused the wrong token:\n%s", log)
	}
}
