package sitetest_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"orrery/cgroup"
	"orrery/internal/netnstest"
	"orrery/internal/sitetest"
	"orrery/remote"
)

func TestMain(m *testing.M) {
	if h := os.Getenv(sitetest.HelperEnv); h != "" {
		os.Exit(helper(h))
	}
	os.Exit(m.Run())
}

// Exit status of the "dial" helper when it could not connect.
const dialFailed = 3

// helper is what this test binary does when a site test re-executes it
// inside a site: "listen" accepts TCP connections on ORRERY_ADDR and
// closes them, having printed "listening"; "dial" connects to
// ORRERY_ADDR within 3 s (exit 0, or dialFailed).
func helper(h string) int {
	addr := os.Getenv("ORRERY_ADDR")
	switch h {
	case "listen":
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println("listening")
		for {
			c, err := ln.Accept()
			if err != nil {
				return 1
			}
			c.Close()
		}
	case "dial":
		c, err := net.DialTimeout("tcp", addr, 3*time.Second)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return dialFailed
		}
		c.Close()
		return 0
	}
	fmt.Fprintf(os.Stderr, "unknown helper %q\n", h)
	return 2
}

// dial logs in to s with its key and closes the client when the test
// ends.
func dial(t *testing.T, s *sitetest.Server) *remote.Client {
	t.Helper()
	c, err := remote.Dial(context.Background(), remote.Endpoint(s.Endpoint()),
		remote.Options{Identity: s.Identity, KnownHosts: s.KnownHosts, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("Dial %s: %v\nsshd:\n%s", s.Addr(), err, s.Log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// run runs cmd over c and fails the test unless it exits 0.
func run(t *testing.T, c *remote.Client, cmd string) string {
	t.Helper()
	out, errOut, code, err := c.Run(context.Background(), cmd, nil)
	if err != nil || code != 0 {
		t.Fatalf("%s: exit %d, %v: %s", cmd, code, err, errOut)
	}
	return string(out)
}

// The loopback sshd: the current user logs in with the key, the host
// key is the one known_hosts holds, and an agent holding the key logs
// in without the identity file.
func TestSSHD(t *testing.T) {
	t.Parallel()
	s := sitetest.SSHD(t)
	if s.Host != "127.0.0.1" || s.Port == 0 || s.User == "" {
		t.Fatalf("endpoint %+v", s.Endpoint())
	}
	if sock := os.Getenv("SSH_AUTH_SOCK"); sock != "" {
		t.Fatalf("SSH_AUTH_SOCK is %s after SSHD: the developer's agent would log the tests in", sock)
	}
	c := dial(t, s)
	if got := strings.TrimSpace(run(t, c, "id -un")); got != s.User {
		t.Fatalf("logged in as %q, want %q", got, s.User)
	}
	// A command's shell is not a top-level one (bash, which counts
	// itself in SHLVL, would run the user's ~/.bashrc), and a race-built
	// binary it runs does not sleep when it exits.
	env := strings.Fields(run(t, c, `echo "${SHLVL:-0} ${GORACE:--} ${BASH_VERSION:+bash}"`))
	level := 1
	if len(env) == 3 {
		level = 2
	}
	if n, err := strconv.Atoi(env[0]); err != nil || n < level || env[1] != "atexit_sleep_ms=0" {
		t.Fatalf("a command's SHLVL, GORACE and shell: %q, want SHLVL %d or more and GORACE atexit_sleep_ms=0", env, level)
	}
	known, err := os.ReadFile(s.KnownHosts)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, s.HostKey); string(known) != want {
		t.Fatalf("known_hosts %q, want %q", known, want)
	}

	sock := s.Agent(t)
	a, err := remote.Dial(context.Background(), remote.Endpoint(s.Endpoint()),
		remote.Options{KnownHosts: s.KnownHosts, AgentSocket: sock, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("Dial with the key in ssh-agent: %v", err)
	}
	a.Close()
	// With another key, no login: the server checks it.
	wrong := filepath.Join(t.TempDir(), "wrong_key")
	sitetest.Keygen(t, wrong, "")
	if _, err := remote.Dial(context.Background(), remote.Endpoint(s.Endpoint()),
		remote.Options{Identity: wrong, KnownHosts: s.KnownHosts, Timeout: 20 * time.Second}); !errors.Is(err, remote.ErrAuth) {
		t.Fatalf("Dial with another key: %v, want ErrAuth", err)
	}
}

// rootListener listens on addr in this machine's namespace and counts
// the connections it accepts.
func rootListener(t *testing.T, addr string) (net.Listener, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln, &n
}

// A site with the firewall: SSH from this machine's side gets in, any
// other port is dropped (no answer at all), and the site cannot open a
// connection to this machine's address, though both work without the
// firewall.
func TestSiteFirewall(t *testing.T) {
	t.Parallel()
	s := sitetest.NewSite(t, sitetest.SiteOptions{})
	if s.SSHD.Host != s.Addr || s.SSHD.Port != 22 {
		t.Fatalf("the site's sshd is at %s, want %s:22", s.SSHD.Addr(), s.Addr)
	}
	other := net.JoinHostPort(s.Addr, "2222")
	p := s.Start(t, []string{os.Args[0]}, sitetest.HelperEnv+"=listen", "ORRERY_ADDR="+other)
	for !strings.Contains(p.Stdout.String(), "listening") {
		select {
		case <-p.Done():
			t.Fatalf("listener in the site ended: %v\n%s", p.Wait(), p.Stderr)
		case <-time.After(20 * time.Millisecond):
		}
	}
	ln, accepted := rootListener(t, net.JoinHostPort(s.Near, "0"))
	dialOut := func(want int) {
		t.Helper()
		r := s.RunHelper(t, time.Minute, "", "dial", "ORRERY_ADDR="+ln.Addr().String())
		if r.Code != want {
			t.Fatalf("dial from the site to %s: exit %d, want %d\n%s", ln.Addr(), r.Code, want, r.Stderr)
		}
	}

	// Without the firewall: everything gets through.
	c, err := net.DialTimeout("tcp", other, 10*time.Second)
	if err != nil {
		t.Fatalf("into the site without the firewall: %v", err)
	}
	c.Close()
	dialOut(0)
	if accepted.Load() != 1 {
		t.Fatalf("the root accepted %d connections from the site, want 1", accepted.Load())
	}

	s.Firewall(t)
	if in, out := s.Dropped(t); in != 0 || out != 0 {
		t.Fatalf("dropped %d in, %d out before any traffic", in, out)
	}
	// SSH gets in, and stays up (its packets belong to a connection
	// made).
	cl := dial(t, s.SSHD)
	if got := strings.TrimSpace(run(t, cl, "echo in")); got != "in" {
		t.Fatalf("over SSH: %q", got)
	}
	// Another port does not even refuse.
	if c, err := net.DialTimeout("tcp", other, 2*time.Second); err == nil {
		c.Close()
		t.Fatal("a connection into the site other than SSH got through")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a connection into the site other than SSH: %v, want no answer (dropped)", err)
	}
	if in, _ := s.Dropped(t); in == 0 {
		t.Fatal("the firewall's inbound drop rule matched no packet")
	}
	// Out: no connection to the root's address.
	dialOut(dialFailed)
	if _, out := s.Dropped(t); out == 0 {
		t.Fatal("the firewall's outbound drop rule matched no packet")
	}
	if accepted.Load() != 1 {
		t.Fatalf("the root accepted a connection from the site through the firewall")
	}
	// Inside the site, its own address is reachable (loopback).
	if r := s.RunHelper(t, time.Minute, "", "dial", "ORRERY_ADDR="+other); r.Code != 0 {
		t.Fatalf("inside the site, to %s: exit %d\n%s", other, r.Code, r.Stderr)
	}
	if got := strings.TrimSpace(run(t, cl, "echo still")); got != "still" {
		t.Fatalf("over SSH after the drops: %q", got)
	}
}

// children returns the processes whose parent is pid.
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var l []int
	for _, e := range entries {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid(p) == pid {
			l = append(l, p)
		}
	}
	return l
}

// ppid returns process pid's parent, or -1.
func ppid(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return -1
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 || f[0] == "Z" {
		return -1
	}
	p, _ := strconv.Atoi(f[1])
	return p
}

// A process started over SSH that detaches (setsid, its streams off the
// session) keeps running after the session and the connection end: the
// site's sshd, without PAM or systemd, kills nothing it leaves.
func TestDetachedSurvivesSession(t *testing.T) {
	t.Parallel()
	s := sitetest.NewSite(t, sitetest.SiteOptions{Firewall: true})
	pidFile := filepath.Join(t.TempDir(), "pid")
	c := dial(t, s.SSHD)
	run(t, c, fmt.Sprintf(`setsid sh -c 'echo $$ > %s; exec sleep 600' </dev/null >/dev/null 2>&1 &`, pidFile))
	var pid int
	for deadline := time.Now().Add(30 * time.Second); ; {
		b, _ := os.ReadFile(pidFile)
		if p, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			pid = p
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the detached process wrote no PID")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Cleanup(func() { syscall.Kill(pid, syscall.SIGKILL) })
	c.Close()
	// The session is over once sshd's listener has no child left.
	for deadline := time.Now().Add(30 * time.Second); len(children(s.SSHD.PID)) > 0; {
		if time.Now().After(deadline) {
			t.Fatalf("sshd still serves a session 30 s after the client closed: %v", children(s.SSHD.PID))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !netnstest.Alive(pid) || ppid(pid) < 0 {
		t.Fatalf("the detached process %d ended with its session", pid)
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if !strings.HasPrefix(string(cmdline), "sleep\x00600") {
		t.Fatalf("process %d is %q, not the detached sleep", pid, cmdline)
	}
	// A new session sees it.
	c2 := dial(t, s.SSHD)
	run(t, c2, fmt.Sprintf("kill -0 %d", pid))
}

// A WAN link in front of the site's sshd: the root logs in through it,
// each round trip takes at least the two delays, and a reset of the
// link ends the connection.
func TestWANInFrontOfSSHD(t *testing.T) {
	t.Parallel()
	s := sitetest.NewSite(t, sitetest.SiteOptions{Firewall: true})
	const delay = 100 * time.Millisecond
	addr, link := sitetest.WAN(t, s.SSHD.Addr(), delay, 1<<20)
	far := s.SSHD.Via(t, addr)
	if far.Addr() != addr || far.KnownHosts == s.SSHD.KnownHosts {
		t.Fatalf("Via: %s with %s", far.Addr(), far.KnownHosts)
	}
	c := dial(t, far)
	for range 3 {
		began := time.Now()
		if got := strings.TrimSpace(run(t, c, "echo far")); got != "far" {
			t.Fatalf("through the link: %q", got)
		}
		if rtt := time.Since(began); rtt < 2*delay {
			t.Fatalf("a command through the link took %v, less than two delays (%v)", rtt, 2*delay)
		}
	}
	if st := link.Stats(); st.Conns != 1 || st.Up.Written == 0 || st.Down.Written == 0 {
		t.Fatalf("link stats %+v: want the one SSH connection, carrying bytes each way", st)
	}
	link.Reset()
	if err := c.KeepAlive(context.Background()); err == nil {
		t.Fatal("KeepAlive through a reset link: no error")
	}
	// A new connection goes through.
	dial(t, far)
}

// A CPU group: its quota is set, a process added by PID is in it, and a
// command started in it (in a site, too) is in it from its first
// instruction.
func TestCPUGroup(t *testing.T) {
	t.Parallel()
	g := sitetest.NewCPUGroup(t, 0.25)
	quota := filepath.Join(cgroup.Root, "orrery", g.Name, "cpu.max")
	want := "25000 100000"
	if !cgroup.V2() {
		quota = filepath.Join(cgroup.Root, "cpu", "orrery", g.Name, "cpu.cfs_quota_us")
		want = "25000"
	}
	if b, err := os.ReadFile(quota); err != nil || strings.TrimSpace(string(b)) != want {
		t.Fatalf("%s: %q, %v; want %q", quota, b, err, want)
	}
	// The command's first child reads its own groups.
	p := g.Shell(t, "cat /proc/self/cgroup")
	if err := p.Wait(); err != nil {
		t.Fatalf("shell: %v: %s", err, p.Stderr)
	}
	if !strings.Contains(p.Stdout.String(), "/orrery/"+g.Name+"\n") {
		t.Fatalf("a child of the shell is not in %s:\n%s", g.Name, p.Stdout)
	}

	// By PID.
	other := sitetest.NewCPUGroup(t, 0.5)
	sleeper := g.Shell(t, "exec sleep 600")
	other.Add(t, sleeper.PID())
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", sleeper.PID()))
	if !strings.Contains(string(b), "/orrery/"+other.Name+"\n") {
		t.Fatalf("process %d added to %s is in:\n%s", sleeper.PID(), other.Name, b)
	}

	// In a site.
	s := sitetest.NewSite(t, sitetest.SiteOptions{})
	cmd := s.Command(context.Background(), "sh", "-c", "cat /proc/self/cgroup; readlink /proc/self/ns/net")
	var out sitetest.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	g.Start(t, cmd)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("in the site: %v: %s", err, out.String())
	}
	self, _ := os.Readlink("/proc/self/ns/net")
	if !strings.Contains(out.String(), "/orrery/"+g.Name+"\n") || strings.Contains(out.String(), self) {
		t.Fatalf("the command in the site, in %s and not in this namespace (%s):\n%s", g.Name, self, out.String())
	}
}
