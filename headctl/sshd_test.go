package headctl

// Tests against Debian's OpenSSH sshd on loopback (internal/sitetest),
// with the stand-in head of standin_test.go copied as the orrery
// binary. The head machine is this machine, so a test reads the head's
// directory directly.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

// rig is one test's head machine (sshd), root port and records. Each
// test has its own sshd, root port and remote directory (the head's
// directory, its binary and forwarded socket under it), so that the
// tests run in parallel: what one test kills, restarts or freezes is
// no other's, and each test's processes are told apart by their
// directory.
type rig struct {
	t      *testing.T
	srv    *sitetest.Server
	base   string // Spec.RemoteDir
	root   net.Listener
	status *statusLog
	log    *sitetest.Buffer
}

const testID = "0123456789ab-1"

// sshTests is how many tests of this package run in parallel when go
// test is not told (-parallel): its tests that use sshd, which spend
// their time waiting for sshd, the stand-in head and the supervisor's
// timers rather than on a CPU, all at once; go test's default
// (GOMAXPROCS: 2 on this machine) would run them two at a time.
const sshTests = 8

// parallelSSHTests sets -test.parallel to sshTests unless it was given
// (or GOMAXPROCS is larger); TestMain calls it after flag.Parse.
func parallelSSHTests() {
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.parallel" })
	if !given && runtime.GOMAXPROCS(0) < sshTests {
		flag.Set("test.parallel", strconv.Itoa(sshTests))
	}
}

func newRig(t *testing.T) *rig {
	t.Helper()
	srv := sitetest.SSHD(t)
	// A short directory, so that DIR/root.sock fits in a socket path.
	base, err := os.MkdirTemp("", "hc")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, srv: srv, base: base, root: rootPort(t), status: &statusLog{}, log: &sitetest.Buffer{}}
	t.Cleanup(func() {
		t.Logf("status:\n%s\nlog:\n%s", r.status, r.log)
		killHeads(filepath.Join(base, headsDir))
		os.RemoveAll(base)
	})
	return r
}

// killHeads kills every head still running in a directory of heads.
func killHeads(heads string) {
	dirs, _ := filepath.Glob(filepath.Join(heads, "*"))
	for _, dir := range dirs {
		if pid := headPID(dir); pid != 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// spec is a Spec for the rig's head machine with the supervisor's
// timings short, but for Probe: a probe runs the stand-in head (a
// race-built test binary) through sshd and a shell, which costs a CPU
// more than a tenth of a second, and the tests run in parallel on few
// CPUs. TestDeadHeadRestarted, about probes, probes often.
func (r *rig) spec(binary string) Spec {
	srv := r.srv
	return Spec{
		Cluster: clusterfile.Cluster{
			Name:       "jerusalem",
			SSH:        &clusterfile.Endpoint{User: srv.User, Host: srv.Host, Port: srv.Port},
			Identity:   srv.Identity,
			KnownHosts: srv.KnownHosts,
		},
		Block:       "cluster jerusalem ssh " + srv.User + "@" + srv.Addr() + "\n    node n1 job-limit 2\n",
		Token:       "orrery-token-" + rand.Text(),
		RootAddr:    r.root.Addr().String(),
		ID:          testID,
		Binary:      binary,
		RemoteDir:   r.base,
		Log:         slog.New(slog.NewTextHandler(r.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Status:      r.status.add,
		Timeout:     10 * time.Second,
		KeepAlive:   200 * time.Millisecond,
		Probe:       5 * time.Second,
		Backoff:     50 * time.Millisecond,
		MaxBackoff:  500 * time.Millisecond,
		StatusEvery: 10 * time.Second,
	}
}

// dir is the head's directory.
func (r *rig) dir() string { return filepath.Join(r.base, headsDir, testID) }

// launch launches and closes the head's connection when the test ends.
func (r *rig) launch(s Spec) *Head {
	r.t.Helper()
	h, err := Launch(context.Background(), s)
	if err != nil {
		r.t.Fatalf("Launch: %v\nstatus:\n%s\nsshd:\n%s", err, r.status, r.srv.Log())
	}
	r.t.Cleanup(func() { h.Close() })
	return h
}

// pid is the running head's pid (0: none).
func (r *rig) pid() int { return headPID(r.dir()) }

// starts is how many times `head start` ran.
func (r *rig) starts() int {
	b, _ := os.ReadFile(filepath.Join(r.dir(), "starts"))
	return strings.Count(string(b), "start\n")
}

// probes is how many times `head probe` ran.
func (r *rig) probes() int {
	b, _ := os.ReadFile(filepath.Join(r.dir(), "probes"))
	return strings.Count(string(b), "probe\n")
}

// build is the build the running head reports.
func (r *rig) build() string {
	b, _ := os.ReadFile(filepath.Join(r.dir(), "build"))
	return strings.TrimSpace(string(b))
}

// talk sends a line through the forwarded socket and checks that the
// root's port answers it.
func (r *rig) talk() error {
	conn, err := net.DialTimeout("unix", filepath.Join(r.dir(), sockName), 10*time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	msg := "hello " + rand.Text() + "\n"
	if _, err := io.WriteString(conn, msg); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("no answer through the socket: %v", err)
	}
	if line != strings.ToUpper(msg) {
		return fmt.Errorf("answer %q to %q", line, msg)
	}
	return nil
}

// rootPort stands for the root's TLS port: it answers each line with
// its upper case.
func rootPort(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := io.WriteString(c, strings.ToUpper(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln
}

// statusLog records Status lines.
type statusLog struct {
	mu    sync.Mutex
	lines []string
}

func (s *statusLog) add(cluster, line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, cluster+": "+line)
}

func (s *statusLog) count(sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, l := range s.lines {
		if strings.Contains(l, sub) {
			n++
		}
	}
	return n
}

func (s *statusLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// standIn is the stand-in head as a build of its own: this test binary
// with a note appended (an ELF executable runs the same with bytes
// after its end), so that each build has its own SHA-256.
func standIn(t *testing.T, note string) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	f := filepath.Join(t.TempDir(), "orrery")
	out, err := os.OpenFile(f, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	// Copied by the kernel (copy_file_range), rather than read into
	// this race-built process, which checks every byte it touches.
	_, err = io.Copy(out, in)
	if err == nil {
		_, err = io.WriteString(out, "\norrery stand-in head build "+note+" "+rand.Text()+"\n")
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// eventually polls cond for up to a minute (generous: this is about
// whether it happens, not how fast).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after a minute", what)
		}
	}
}

// alive reports whether pid is a live process (not a zombie).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(stat, ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// A first launch copies the binary, makes the directory, forwards the
// socket before it starts the head and hands the head its start input;
// a second launch (after the root's connection dropped) copies nothing
// and keeps the running head; Stop stops it and closes the forward.
func TestLaunchKeepStop(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	bin := standIn(t, "A")
	s := r.spec(bin)
	s.Lease = 90 * time.Minute
	h := r.launch(s)
	if h.Link() != LinkConnected {
		t.Fatalf("link %s", h.Link())
	}

	build, _ := sshkeep.FileSHA256(bin)
	remoteBin := filepath.Join(r.base, binDir, "orrery-"+build[:16])
	if h.Build() != build || h.Dir() != r.dir() {
		t.Fatalf("build %s dir %s; want %s %s", h.Build(), h.Dir(), build, r.dir())
	}
	if got, _ := sshkeep.FileSHA256(remoteBin); got != build {
		t.Fatalf("%s: %q, want the binary (%s)", remoteBin, got, build)
	}
	if r.status.count("copied orrery") != 1 || r.status.count("head started in "+r.dir()) != 1 {
		t.Fatalf("status:\n%s", r.status)
	}
	if st, err := os.Stat(r.dir()); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("head directory: %v %v", st.Mode(), err)
	}
	pid := r.pid()
	if pid == 0 || r.starts() != 1 || r.build() != build {
		t.Fatalf("pid %d, %d starts, build %s", pid, r.starts(), r.build())
	}
	if b, _ := os.ReadFile(filepath.Join(r.dir(), "sock-at-start")); string(b) != "yes" {
		t.Fatalf("the forwarded socket was not there when the head started: %q", b)
	}
	var in StartInput
	b, _ := os.ReadFile(filepath.Join(r.dir(), "spec.json"))
	if err := json.Unmarshal(b, &in); err != nil {
		t.Fatal(err)
	}
	want := StartInput{Token: s.Token, Root: "unix:" + filepath.Join(r.dir(), sockName), Cluster: s.Block, Name: "jerusalem", Lease: "1h30m0s"}
	if in != want {
		t.Fatalf("start input %+v, want %+v", in, want)
	}
	if err := r.talk(); err != nil {
		t.Fatal(err)
	}

	// The root's connection drops (a root killed with -9): the head
	// goes on, and a new launch finds it.
	st1, _ := os.Stat(remoteBin)
	h.Close()
	if h.Link() != LinkLost || !alive(pid) {
		t.Fatalf("after Close: link %s, head alive %v", h.Link(), alive(pid))
	}
	h = r.launch(s)
	if r.status.count("copied orrery") != 1 {
		t.Fatalf("copied again:\n%s", r.status)
	}
	if st2, _ := os.Stat(remoteBin); !os.SameFile(st1, st2) {
		t.Fatal("the binary was replaced")
	}
	if r.pid() != pid || r.starts() != 1 || r.status.count(fmt.Sprintf("already runs in %s (pid %d): kept", r.dir(), pid)) != 1 {
		t.Fatalf("pid %d (was %d), %d starts; status:\n%s", r.pid(), pid, r.starts(), r.status)
	}
	if err := r.talk(); err != nil {
		t.Fatal(err)
	}

	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alive(pid) || r.pid() != 0 {
		t.Fatal("the head runs after Stop")
	}
	select {
	case <-h.Done():
	default:
		t.Fatal("the supervisor runs after Stop")
	}
	if h.Link() != LinkLost {
		t.Fatalf("link %s after Stop", h.Link())
	}
	if err := r.talk(); err == nil {
		t.Fatal("the forwarded socket still carries connections after Stop")
	}
	// Stop again: the head is not running, which is no error.
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The default directory is under the remote user's $HOME.
func TestLaunchUnderHome(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	s := r.spec(standIn(t, "home"))
	s.RemoteDir = ""
	s.ID = "hctest" + strings.ToLower(rand.Text()[:8]) + "-1"
	home, err := os.UserHomeDir()
	if err != nil {
		t.Fatal(err)
	}
	build, _ := sshkeep.FileSHA256(s.Binary)
	dir := filepath.Join(home, ".orrery", headsDir, s.ID)
	remoteBin := filepath.Join(home, ".orrery", binDir, "orrery-"+build[:16])
	// The directories this test makes (others may use them meanwhile:
	// they are removed only when empty).
	var made []string
	for _, d := range []string{filepath.Join(home, ".orrery", headsDir), filepath.Join(home, ".orrery", binDir), filepath.Join(home, ".orrery")} {
		if _, err := os.Stat(d); err != nil {
			made = append(made, d)
		}
	}
	t.Cleanup(func() {
		if pid := headPID(dir); pid != 0 {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		os.RemoveAll(dir)
		os.Remove(remoteBin)
		for _, d := range made {
			os.Remove(d)
		}
	})
	h := r.launch(s)
	if h.Dir() != dir || headPID(dir) == 0 {
		t.Fatalf("dir %s (want %s), pid %d", h.Dir(), dir, headPID(dir))
	}
	if _, err := os.Stat(remoteBin); err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// The join token is on no command line of the head machine while `head
// start` holds it, nor in what the root says or logs; the head has it
// from its standard input.
func TestSecretOnlyOnStdin(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	s := r.spec(standIn(t, "secret"))
	if err := os.MkdirAll(r.dir(), 0o700); err != nil {
		t.Fatal(err)
	}
	hold := filepath.Join(r.dir(), "hold")
	os.WriteFile(hold, nil, 0o600)
	launched := make(chan error, 1)
	var h *Head
	go func() {
		var err error
		h, err = Launch(context.Background(), s)
		launched <- err
	}()
	eventually(t, "head start holds the token", func() bool {
		_, err := os.Stat(filepath.Join(r.dir(), "holding"))
		return err == nil
	})
	marker := []byte("\x00head\x00start\x00--dir\x00" + r.dir() + "\x00")
	files, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	sawMarker := false
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // ended
		}
		if bytes.Contains(b, []byte(s.Token)) {
			t.Errorf("%s holds the token: %q", f, b)
		}
		sawMarker = sawMarker || bytes.Contains(b, marker)
	}
	if !sawMarker {
		t.Fatal("no command line is `head start`'s: the scan sees nothing")
	}
	os.Remove(hold)
	if err := <-launched; err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if b, _ := os.ReadFile(filepath.Join(r.dir(), "spec.json")); !bytes.Contains(b, []byte(s.Token)) {
		t.Fatalf("the head did not get the token on its standard input: %q", b)
	}
	if strings.Contains(r.status.String(), s.Token) || strings.Contains(r.log.String(), s.Token) || strings.Contains(r.srv.Log(), s.Token) {
		t.Fatal("the token is in the status lines, the log or sshd's log")
	}
}

// A head of another build that holds jobs is kept, and the root says
// why; one that holds none is replaced by this build.
func TestOtherBuild(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	a, b := standIn(t, "A"), standIn(t, "B")
	buildA, _ := sshkeep.FileSHA256(a)
	buildB, _ := sshkeep.FileSHA256(b)
	h := r.launch(r.spec(a))
	pidA := r.pid()
	h.Close()

	os.WriteFile(filepath.Join(r.dir(), "jobs"), []byte("2\n"), 0o600)
	h = r.launch(r.spec(b))
	if r.pid() != pidA || r.build() != buildA || r.starts() != 1 {
		t.Fatalf("the head of build A holding jobs: pid %d (was %d), build %.12s, %d starts", r.pid(), pidA, r.build(), r.starts())
	}
	if r.status.count(fmt.Sprintf("a head of another build (%.12s) runs in %s (pid %d) holding 2 jobs: kept", buildA, r.dir(), pidA)) != 1 {
		t.Fatalf("status:\n%s", r.status)
	}
	if err := r.talk(); err != nil {
		t.Fatal(err)
	}
	h.Close()

	os.WriteFile(filepath.Join(r.dir(), "jobs"), []byte("0\n"), 0o600)
	h = r.launch(r.spec(b))
	pidB := r.pid()
	if alive(pidA) || pidB == 0 || pidB == pidA || r.build() != buildB || r.starts() != 2 {
		t.Fatalf("the head of build A holding none: A alive %v, pid %d, build %.12s, %d starts", alive(pidA), pidB, r.build(), r.starts())
	}
	if r.status.count(fmt.Sprintf("stopped a head of another build (%.12s, pid %d, holding no job)", buildA, pidA)) != 1 {
		t.Fatalf("status:\n%s", r.status)
	}
	if err := r.talk(); err != nil {
		t.Fatal(err)
	}
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// sshd killed (with the processes serving the connection) and started
// again: the supervisor reconnects, forwards the socket again and keeps
// the head, which ran all along.
func TestSSHDRestart(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	h := r.launch(r.spec(standIn(t, "restart")))
	pid := r.pid()

	killTree(t, r.srv.PID, pid)
	eventually(t, "link cut", func() bool { return h.Link() == LinkCut })
	eventually(t, "said the cut", func() bool { return r.status.count("SSH connection lost") == 1 })
	if !alive(pid) {
		t.Fatal("the head died with sshd")
	}
	sshd := restartSSHD(t, r.srv)
	eventually(t, "link back", func() bool { return h.Link() == LinkConnected })
	if r.status.count("SSH connection back") != 1 {
		t.Fatalf("status:\n%s", r.status)
	}
	if r.pid() != pid || r.starts() != 1 {
		t.Fatalf("the head was restarted: pid %d (was %d), %d starts", r.pid(), pid, r.starts())
	}
	if err := r.talk(); err != nil {
		t.Fatal(err)
	}

	// Stop while the connection is cut: it cannot reach the head, says
	// so, and ends the supervisor; once sshd is back, Stop stops it.
	killTree(t, sshd, pid)
	eventually(t, "link cut again", func() bool { return h.Link() == LinkCut })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	err := h.Stop(ctx)
	cancel()
	if err == nil || !strings.HasPrefix(err.Error(), "cluster jerusalem: stop the head: ") {
		t.Fatalf("Stop with sshd down: %v", err)
	}
	select {
	case <-h.Done():
	default:
		t.Fatal("the supervisor runs after Stop")
	}
	if !alive(pid) {
		t.Fatal("the head died with sshd")
	}
	restartSSHD(t, r.srv)
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("the head runs after Stop")
	}
}

// killTree kills pid and every process below it, but keep.
func killTree(t *testing.T, pid, keep int) {
	t.Helper()
	parent := map[int]int{}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		i := bytes.LastIndexByte(b, ')')
		if i < 0 {
			continue
		}
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) < 2 {
			continue
		}
		p, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		pp, _ := strconv.Atoi(fields[1])
		parent[p] = pp
	}
	var tree []int
	for p := range parent {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				tree = append(tree, p)
				break
			}
		}
	}
	for _, p := range tree {
		if p != keep {
			syscall.Kill(p, syscall.SIGKILL)
		}
	}
	eventually(t, "sshd's processes gone", func() bool {
		for _, p := range tree {
			if p != keep && alive(p) {
				return false
			}
		}
		return true
	})
}

// restartSSHD starts sshd again with the server's configuration (the
// same port, keys and known_hosts) and returns its pid.
func restartSSHD(t *testing.T, srv *sitetest.Server) int {
	t.Helper()
	var log sitetest.Buffer
	for attempt := 0; ; attempt++ {
		cmd := exec.Command(sitetest.SSHDPath, "-D", "-e", "-f", filepath.Join(srv.Dir, "sshd_config"))
		cmd.Stdout, cmd.Stderr = &log, &log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		up := false
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline) && !up; time.Sleep(20 * time.Millisecond) {
			select {
			case <-exited:
				deadline = time.Time{}
				continue
			default:
			}
			if c, err := net.DialTimeout("tcp", srv.Addr(), time.Second); err == nil {
				c.Close()
				up = true
			}
		}
		if up {
			t.Cleanup(func() {
				killTree(t, cmd.Process.Pid, 0)
				<-exited
			})
			return cmd.Process.Pid
		}
		cmd.Process.Kill()
		<-exited
		if attempt == 5 {
			t.Fatalf("sshd did not start again:\n%s", log.String())
		}
		time.Sleep(time.Second)
	}
}

// A head that dies is started again by the supervisor, in the same
// directory.
func TestDeadHeadRestarted(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	s := r.spec(standIn(t, "dead"))
	s.StatusEvery = time.Hour
	s.Probe = 200 * time.Millisecond
	h := r.launch(s)
	pid := r.pid()

	// Probes of a head that runs keep it.
	n := r.probes()
	eventually(t, "probed", func() bool { return r.probes() >= n+3 })
	if r.pid() != pid || r.starts() != 1 || h.Link() != LinkConnected {
		t.Fatalf("after probes: pid %d (was %d), %d starts, link %s; status:\n%s", r.pid(), pid, r.starts(), h.Link(), r.status)
	}

	syscall.Kill(pid, syscall.SIGKILL)
	eventually(t, "head started again", func() bool {
		p := r.pid()
		return p != 0 && p != pid
	})
	if r.starts() != 2 {
		t.Fatalf("%d starts", r.starts())
	}
	eventually(t, "said so", func() bool { return r.status.count("the head had stopped; started it again in "+r.dir()) == 1 })
	if h.Link() != LinkConnected {
		t.Fatalf("link %s", h.Link())
	}
	if err := r.talk(); err != nil {
		t.Fatal(err)
	}

	// A head that dies and cannot start again: said (once within
	// StatusEvery), with its log; tried again until it starts.
	fail := filepath.Join(r.dir(), "fail-start")
	os.WriteFile(fail, nil, 0o600)
	syscall.Kill(r.pid(), syscall.SIGKILL)
	eventually(t, "said it failed", func() bool {
		return r.status.count("the head is not running, and starting it again failed: head failed to start in "+r.dir()+": the head exited before it held its lock: see head.log; head.log: ") == 1
	})
	n = r.starts()
	eventually(t, "tried again", func() bool { return r.starts() > n })
	if c := r.status.count("starting it again failed"); c != 1 {
		t.Fatalf("said %d times within StatusEvery (an hour):\n%s", c, r.status)
	}
	os.Remove(fail)
	eventually(t, "started at last", func() bool { return r.pid() != 0 })
	eventually(t, "said so", func() bool { return r.status.count("the head had stopped; started it again in "+r.dir()) == 2 })

	// Stop after Close dials to stop the head.
	h.Close()
	pid = r.pid()
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("the head runs after Stop")
	}
}

// A link that freezes (no reset, nothing passes): the keepalive gets no
// answer within the timeout, the supervisor redials until the link is
// back, and then keeps the head; with the link down for longer than
// GiveUp it gives up (Link "lost"), and Stop still stops the head once
// the link is back.
func TestFrozenLink(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	addr, link := sitetest.WAN(t, r.srv.Addr(), 0, 0)
	via := r.srv.Via(t, addr)
	s := r.spec(standIn(t, "frozen"))
	s.Cluster.SSH = &clusterfile.Endpoint{User: via.User, Host: via.Host, Port: via.Port}
	s.Cluster.KnownHosts = via.KnownHosts
	s.Timeout = 3 * time.Second
	s.CommandTimeout = 20 * time.Second
	h := r.launch(s)
	pid := r.pid()

	link.Cut()
	eventually(t, "link cut", func() bool { return h.Link() == LinkCut })
	link.Restore()
	eventually(t, "link back", func() bool { return h.Link() == LinkConnected })
	if r.pid() != pid || r.starts() != 1 {
		t.Fatalf("the head was restarted: pid %d (was %d), %d starts", r.pid(), pid, r.starts())
	}
	if err := r.talk(); err != nil {
		t.Fatal(err)
	}
	h.Close()

	s.GiveUp = 3 * time.Second
	h = r.launch(s)
	link.Cut()
	select {
	case <-h.Done():
	case <-time.After(2 * time.Minute):
		t.Fatal("the supervisor did not give up")
	}
	if h.Link() != LinkLost || r.status.count("gave up after 3s without an SSH connection") != 1 || !alive(pid) {
		t.Fatalf("link %s, head alive %v; status:\n%s", h.Link(), alive(pid), r.status)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	err := h.Stop(ctx)
	cancel()
	if err == nil || !strings.HasPrefix(err.Error(), "cluster jerusalem: stop the head: ") {
		t.Fatalf("Stop over a cut link: %v", err)
	}
	link.Restore()
	if err := h.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if alive(pid) {
		t.Fatal("the head runs after Stop")
	}
}

// checkErr checks that err is one line that starts with the cluster's
// name and holds want.
func checkErr(t *testing.T, err error, want ...string) {
	t.Helper()
	var e *Error
	if err == nil || !errors.As(err, &e) || e.Cluster != "jerusalem" {
		t.Fatalf("error %v: want a *Error of cluster jerusalem", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "cluster jerusalem: ") {
		t.Fatalf("%q: want one line starting with the cluster", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Fatalf("%q: want %q in it", msg, w)
		}
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	bin := standIn(t, "bad")

	t.Run("unknown host key", func(t *testing.T) {
		s := r.spec(bin)
		s.Cluster.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
		os.WriteFile(s.Cluster.KnownHosts, nil, 0o600)
		_, err := Launch(context.Background(), s)
		checkErr(t, err, "not in "+s.Cluster.KnownHosts, fmt.Sprintf("ssh-keyscan -p %d 127.0.0.1 >> %s", r.srv.Port, s.Cluster.KnownHosts))
	})
	t.Run("refused key", func(t *testing.T) {
		s := r.spec(bin)
		s.Cluster.Identity = filepath.Join(t.TempDir(), "other_key")
		sitetest.Keygen(t, s.Cluster.Identity, "")
		_, err := Launch(context.Background(), s)
		checkErr(t, err, "authentication refused", s.Cluster.Identity)
	})
	t.Run("unreachable host", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		s := r.spec(bin)
		s.Cluster.SSH.Port = port
		_, err := Launch(context.Background(), s)
		checkErr(t, err, "connection refused")
	})
	t.Run("another architecture", func(t *testing.T) {
		// The root is made to be a mips64le machine (one that
		// remote.Platform never reports), so that this head machine is
		// of another architecture.
		s := r.spec(bin)
		s.BinaryPlatform.OS, s.BinaryPlatform.Arch = "linux", "mips64le"
		_, err := Launch(context.Background(), s)
		checkErr(t, err, "the head machine is linux/", " and the cluster has no `binary` for it")

		// A binary for a third platform.
		s.Cluster.Binary = writeELF(t, elf.ELFCLASS64, binary.BigEndian, elf.ELFOSABI_NONE, elf.EM_S390)
		_, err = Launch(context.Background(), s)
		checkErr(t, err, "and its `binary` "+s.Cluster.Binary+" is for linux/s390x")

		// The cluster's binary for the machine's own platform is used.
		s.Cluster.Binary = bin
		s.Binary = "/nonexistent/orrery"
		h, err := Launch(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		build, _ := sshkeep.FileSHA256(bin)
		if h.Build() != build || r.build() != build {
			t.Fatalf("build %.12s, head's %.12s; want the cluster's binary %.12s", h.Build(), r.build(), build)
		}
		if err := h.Stop(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("head fails to start", func(t *testing.T) {
		s := r.spec(bin)
		os.MkdirAll(r.dir(), 0o700)
		os.WriteFile(filepath.Join(r.dir(), "fail-start"), nil, 0o600)
		defer os.Remove(filepath.Join(r.dir(), "fail-start"))
		_, err := Launch(context.Background(), s)
		checkErr(t, err, "head failed to start in "+r.dir()+": the head exited before it held its lock: see head.log; head.log: ",
			"stand-in head: opening the journal | stand-in head: cannot open the journal: no space left on device")
		if err := r.talk(); err == nil {
			t.Fatal("the forward outlived a failed launch")
		}
	})
}
