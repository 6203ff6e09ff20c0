package sitetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"orrery/internal/netnstest"
)

// A site stands for a cluster's site: a network namespace joined to this
// machine's own namespace (where the root runs) by a veth pair with a
// /30 of 10.214.K.0, with its own OpenSSH sshd on the site's address,
// port 22, an iptables firewall inside it, and processes started inside
// it with `ip netns exec`. Nothing is routed beyond the pair.

var (
	siteSeq atomic.Int64
	// siteName matches the namespaces sites are: orrs-PID-N, PID being
	// the test process that made them.
	siteName = regexp.MustCompile(`^orrs-(\d+)-\d+$`)
	siteGate = netnstest.Gate{What: "the site tests", Probe: siteProbe}
	// addrMu keeps this process's sites from picking one /30 twice.
	addrMu sync.Mutex
)

// RequireSite returns when this machine can host a site (root, `ip
// netns`, iptables with its conntrack and comment matches inside a
// namespace, sshd); otherwise it skips the test, or fails it under CI.
func RequireSite(t testing.TB) {
	t.Helper()
	siteGate.Require(t)
	NeedSSH(t)
}

// siteProbe removes stale sites and checks that a namespace can be
// made, with iptables (and the matches the firewall uses) working
// inside it.
func siteProbe() error {
	for _, c := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
	}
	netnstest.RemoveStale(siteName)
	name := fmt.Sprintf("orrs-%d-0", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, strings.TrimSpace(string(out)))
	}
	defer netnstest.Delete(name)
	out, err := exec.Command("ip", "netns", "exec", name, "iptables", "-w", "-A", "INPUT",
		"-m", "conntrack", "--ctstate", "ESTABLISHED", "-m", "comment", "--comment", "probe", "-j", "ACCEPT").CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables in a namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// SiteOptions says how to make a site.
type SiteOptions struct {
	// Firewall applies Site.Firewall once the site's sshd listens.
	Firewall bool
}

// Site is a network namespace joined to this machine's namespace by a
// veth pair, with its own sshd. It is removed when its test ends, with
// every process left in it.
type Site struct {
	t testing.TB
	// NS is the namespace's name (for `ip netns exec NS`).
	NS string
	// Dev is the veth's end in this machine's namespace.
	Dev string
	// Near is the address of this machine's end of the pair (where the
	// root listens); Addr is the site's.
	Near string
	Addr string
	// SSHD is the site's sshd, on Addr port 22, which lets the current
	// user (root) log in with SSHD.Identity.
	SSHD *Server
}

// NewSite makes a site with its sshd running; it is removed when the
// test ends.
func NewSite(t testing.TB, opts SiteOptions) *Site {
	t.Helper()
	RequireSite(t)
	n := siteSeq.Add(1)
	s := &Site{t: t, NS: fmt.Sprintf("orrs-%d-%d", os.Getpid(), n), Dev: fmt.Sprintf("os%d-%d", os.Getpid(), n)}
	s.ip("netns", "add", s.NS)
	t.Cleanup(func() {
		if err := netnstest.Delete(s.NS); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		// Deleting the namespace deletes the pair (the kernel may take
		// a moment); make sure.
		for i := 0; exec.Command("ip", "link", "show", s.Dev).Run() == nil; i++ {
			out, err := exec.Command("ip", "link", "del", s.Dev).CombinedOutput()
			if err != nil && i == 100 {
				t.Errorf("cleanup: ip link del %s: %v: %s", s.Dev, err, out)
				break
			}
			if err != nil {
				time.Sleep(20 * time.Millisecond)
			}
		}
	})
	s.ip("-n", s.NS, "link", "set", "lo", "up")
	s.ip("link", "add", s.Dev, "type", "veth", "peer", "name", "eth0", "netns", s.NS)
	s.pickAddr()
	s.ip("-n", s.NS, "addr", "add", s.Addr+"/30", "dev", "eth0")
	s.ip("link", "set", s.Dev, "up")
	s.ip("-n", s.NS, "link", "set", "eth0", "up")

	s.SSHD = newServer(t, s.Addr)
	s.SSHD.Port = 22
	if err := s.SSHD.start(t, []string{"ip", "netns", "exec", s.NS}); err != nil {
		t.Fatalf("sshd in site %s: %v\n%s", s.NS, err, s.SSHD.Log())
	}
	if opts.Firewall {
		s.Firewall(t)
	}
	return s
}

// pickAddr gives this machine's end of the pair the first address of a
// /30 of 10.214.K.0 that no other device has (another test process may
// pick the same one at once: then one of them moves on).
func (s *Site) pickAddr() {
	s.t.Helper()
	addrMu.Lock()
	defer addrMu.Unlock()
	k := rand.IntN(250)
	for range 250 {
		k = (k + 1) % 250
		prefix := fmt.Sprintf(" 10.214.%d.", k+1)
		if others(prefix, "") {
			continue
		}
		near := fmt.Sprintf("10.214.%d.1", k+1)
		s.ip("addr", "add", near+"/30", "dev", s.Dev)
		if others(prefix, s.Dev) {
			s.ip("addr", "del", near+"/30", "dev", s.Dev)
			continue
		}
		s.Near, s.Addr = near, fmt.Sprintf("10.214.%d.2", k+1)
		return
	}
	s.t.Fatal("no /30 of 10.214.0.0/16 is free for a site")
}

// others reports whether a device other than dev has an IPv4 address
// that starts with prefix (" 10.214.K.").
func others(prefix, dev string) bool {
	out, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		return true
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if strings.Contains(line, prefix) && len(f) > 1 && strings.TrimSuffix(strings.SplitN(f[1], "@", 2)[0], ":") != dev {
			return true
		}
	}
	return false
}

// ip runs `ip ARGS` and fails the test when it fails.
func (s *Site) ip(args ...string) {
	s.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		s.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// The comments that mark the firewall's two dropping rules, whose
// packets Dropped counts.
const (
	dropIn  = "sitetest-drop-in"
	dropOut = "sitetest-drop-out"
)

// Firewall makes the site's firewall: in, nothing but SSH to the site's
// sshd (and what belongs to connections already made, and loopback);
// out, no connection to this machine's address (Near), only the packets
// of connections already made. Everything else coming in, and every new
// connection to Near, is dropped (not refused) by a rule whose packets
// Dropped counts. The rules are appended to INPUT and OUTPUT.
func (s *Site) Firewall(t testing.TB) {
	t.Helper()
	ssh := strconv.Itoa(s.SSHD.Port)
	s.IPTables(t, "-A", "INPUT", "-i", "lo", "-j", "ACCEPT")
	s.IPTables(t, "-A", "INPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	s.IPTables(t, "-A", "INPUT", "-p", "tcp", "-d", s.Addr, "--dport", ssh, "-m", "conntrack", "--ctstate", "NEW", "-j", "ACCEPT")
	s.IPTables(t, "-A", "INPUT", "-m", "comment", "--comment", dropIn, "-j", "DROP")
	s.IPTables(t, "-A", "OUTPUT", "-o", "lo", "-j", "ACCEPT")
	s.IPTables(t, "-A", "OUTPUT", "-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
	s.IPTables(t, "-A", "OUTPUT", "-d", s.Near, "-m", "comment", "--comment", dropOut, "-j", "DROP")
}

// IPTables runs `iptables -w ARGS` inside the site and fails the test
// when it fails; the rules go with the namespace.
func (s *Site) IPTables(t testing.TB, args ...string) {
	t.Helper()
	argv := append([]string{"netns", "exec", s.NS, "iptables", "-w"}, args...)
	if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
		t.Fatalf("iptables %s in site %s: %v: %s", strings.Join(args, " "), s.NS, err, strings.TrimSpace(string(out)))
	}
}

// Packets returns how many packets rule number n (from 1) of chain has
// matched.
func (s *Site) Packets(t testing.TB, chain string, n int) int64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", s.NS, "iptables", "-w", "-L", chain, strconv.Itoa(n), "-v", "-n", "-x").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -L %s %d in site %s: %v: %s", chain, n, s.NS, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		t.Fatalf("iptables -L %s %d in site %s: no rule", chain, n, s.NS)
	}
	p, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		t.Fatalf("iptables -L %s %d in site %s: %q", chain, n, s.NS, out)
	}
	return p
}

// Dropped returns how many packets the firewall has dropped coming in
// and going out to Near.
func (s *Site) Dropped(t testing.TB) (in, out int64) {
	t.Helper()
	return s.marked(t, "INPUT", dropIn), s.marked(t, "OUTPUT", dropOut)
}

// marked returns the packets of chain's rule with comment mark.
func (s *Site) marked(t testing.TB, chain, mark string) int64 {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", s.NS, "iptables", "-w", "-L", chain, "-v", "-n", "-x").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -L %s in site %s: %v: %s", chain, s.NS, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if !strings.Contains(line, "/* "+mark+" */") {
			continue
		}
		f := strings.Fields(line)
		if p, err := strconv.ParseInt(f[0], 10, 64); err == nil {
			return p
		}
	}
	t.Fatalf("site %s: no firewall rule %s in %s (Firewall not applied?):\n%s", s.NS, mark, chain, out)
	return 0
}

// Command returns a command that runs argv inside the site, not yet
// started. `ip netns exec` execs argv, so the process (the one ctx
// kills) is argv's own.
func (s *Site) Command(ctx context.Context, argv ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", s.NS}, argv...)...)
}

// Result is what a process run in the site did.
type Result struct {
	Code    int
	Stdout  string
	Stderr  string
	Elapsed time.Duration
}

// Run runs argv inside the site, with env (KEY=VALUE) added to this
// process's environment and stdin, and waits for it; it fails the test
// when argv cannot start or still runs after limit (it is killed then).
func (s *Site) Run(t testing.TB, limit time.Duration, stdin string, argv []string, env ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := s.Command(ctx, argv...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	r := Result{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(began)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
		if ctx.Err() != nil {
			t.Fatalf("%s in site %s still ran after %v:\n%s", argv[0], s.NS, limit, r.Stderr)
		}
	case err != nil:
		t.Fatalf("%s in site %s: %v", argv[0], s.NS, err)
	}
	return r
}

// HelperEnv names the helper a test binary re-executed by RunHelper
// runs: the test package's init (or TestMain) checks it and runs the
// helper instead of the tests.
const HelperEnv = "ORRERY_SITE_HELPER"

// RunHelper re-executes this test binary inside the site with
// HelperEnv=helper (and env, stdin) and waits for it, as Run does.
func (s *Site) RunHelper(t testing.TB, limit time.Duration, stdin, helper string, env ...string) Result {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return s.Run(t, limit, stdin, []string{exe}, append([]string{HelperEnv + "=" + helper}, env...)...)
}

// Process is a process started inside a site.
type Process struct {
	Cmd            *exec.Cmd
	Stdout, Stderr *Buffer

	done chan struct{}
	err  error
}

// Start starts argv inside the site with env added to this process's
// environment; it is killed, if it still runs, when the test ends.
func (s *Site) Start(t testing.TB, argv []string, env ...string) *Process {
	t.Helper()
	p := &Process{Cmd: s.Command(context.Background(), argv...), Stdout: &Buffer{}, Stderr: &Buffer{}, done: make(chan struct{})}
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("%s in site %s: %v", argv[0], s.NS, err)
	}
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Cmd.Process.Kill(); <-p.done })
	return p
}

// PID is the process's ID.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Done is closed when the process has ended.
func (p *Process) Done() <-chan struct{} { return p.done }

// Wait waits for the process to end and returns what Cmd.Wait did.
func (p *Process) Wait() error {
	<-p.done
	return p.err
}
