package remote

// Helpers for the tests of a site behind a firewall (site_test.go): a
// network namespace that stands for a cluster's site, joined to this
// machine's own namespace (where the root runs) by a veth pair with a
// /30 of 10.214.K.0, its own OpenSSH sshd on the site's address, an
// iptables firewall inside it, and processes started inside it with
// `ip netns exec`. Nothing is routed beyond the pair. Everything a site
// makes is removed when its test ends, also when it fails, and a site
// left by a test process that was killed is removed by the next one.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"orrery/internal/netnstest"
)

var (
	siteSeq atomic.Int64
	// siteName matches the namespaces these tests make: orrs-PID-N,
	// PID being the test process that made them.
	siteName = regexp.MustCompile(`^orrs-(\d+)-\d+$`)
	siteGate = netnstest.Gate{What: "the site tests", Probe: siteProbe}
)

// siteRequire skips the test when this machine cannot host a site (not
// root, no `ip netns`, no iptables), except under CI (CI=true), where
// these are installed and their absence is a failure.
func siteRequire(t *testing.T) {
	t.Helper()
	siteGate.Require(t)
}

// siteProbe removes stale sites and checks that a namespace can be
// made, with iptables (and its conntrack match) working inside it.
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
		"-m", "conntrack", "--ctstate", "ESTABLISHED", "-j", "ACCEPT").CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables in a namespace: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

// site is a network namespace joined to this machine's namespace by a
// veth pair: Near is this machine's end's address (where the root
// listens), Addr the site's.
type site struct {
	t    *testing.T
	NS   string
	Dev  string // the veth's end in this machine's namespace
	Near string
	Addr string
}

// newSite makes a site; it is removed when the test ends.
func newSite(t *testing.T) *site {
	t.Helper()
	siteRequire(t)
	n := siteSeq.Add(1)
	s := &site{t: t, NS: fmt.Sprintf("orrs-%d-%d", os.Getpid(), n), Dev: fmt.Sprintf("os%d-%d", os.Getpid(), n)}
	// A /30 no address of this machine is in yet.
	used, err := exec.Command("ip", "-4", "-o", "addr", "show").Output()
	if err != nil {
		t.Fatalf("ip addr: %v", err)
	}
	for k := (os.Getpid()*8 + int(n)) % 250; ; k = (k + 1) % 250 {
		if !strings.Contains(string(used), fmt.Sprintf(" 10.214.%d.", k+1)) {
			s.Near, s.Addr = fmt.Sprintf("10.214.%d.1", k+1), fmt.Sprintf("10.214.%d.2", k+1)
			break
		}
	}
	s.ip("netns", "add", s.NS)
	t.Cleanup(func() {
		if err := netnstest.Delete(s.NS); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		// Deleting the namespace deletes the pair; make sure.
		if exec.Command("ip", "link", "show", s.Dev).Run() == nil {
			if out, err := exec.Command("ip", "link", "del", s.Dev).CombinedOutput(); err != nil {
				t.Errorf("cleanup: ip link del %s: %v: %s", s.Dev, err, out)
			}
		}
	})
	s.ip("-n", s.NS, "link", "set", "lo", "up")
	s.ip("link", "add", s.Dev, "type", "veth", "peer", "name", "eth0", "netns", s.NS)
	s.ip("addr", "add", s.Near+"/30", "dev", s.Dev)
	s.ip("-n", s.NS, "addr", "add", s.Addr+"/30", "dev", "eth0")
	s.ip("link", "set", s.Dev, "up")
	s.ip("-n", s.NS, "link", "set", "eth0", "up")
	return s
}

// ip runs `ip ARGS` and fails the test when it fails.
func (s *site) ip(args ...string) {
	s.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		s.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// iptables runs `iptables -w ARGS` inside the site and fails the test
// when it fails; the rules go with the namespace.
func (s *site) iptables(args ...string) {
	s.t.Helper()
	argv := append([]string{"netns", "exec", s.NS, "iptables", "-w"}, args...)
	if out, err := exec.Command("ip", argv...).CombinedOutput(); err != nil {
		s.t.Fatalf("iptables %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
}

// packets returns how many packets rule number n of chain has matched.
func (s *site) packets(chain string, n int) int64 {
	s.t.Helper()
	out, err := exec.Command("ip", "netns", "exec", s.NS, "iptables", "-w", "-L", chain, strconv.Itoa(n), "-v", "-n", "-x").CombinedOutput()
	if err != nil {
		s.t.Fatalf("iptables -L %s %d: %v: %s", chain, n, err, out)
	}
	f := strings.Fields(string(out))
	if len(f) == 0 {
		s.t.Fatalf("iptables -L %s %d: no rule", chain, n)
	}
	p, err := strconv.ParseInt(f[0], 10, 64)
	if err != nil {
		s.t.Fatalf("iptables -L %s %d: %q", chain, n, out)
	}
	return p
}

// siteSSHD is Debian's OpenSSH sshd running inside a site, on the
// site's address, port 22, with its own host key, accepting its own
// user key for root.
type siteSSHD struct {
	Dir        string
	UserKey    string
	KnownHosts string
	ep         Endpoint
	log        *lockedBuffer
}

func (d *siteSSHD) options() Options {
	return Options{Identity: d.UserKey, KnownHosts: d.KnownHosts, Timeout: 20 * time.Second}
}

// startSSHD starts sshd inside the site (before its firewall, which
// lets port 22 in) and stops it when the test ends.
func (s *site) startSSHD(t *testing.T) *siteSSHD {
	t.Helper()
	needSSH(t)
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil { // privilege separation
		t.Fatal(err)
	}
	dir := t.TempDir()
	d := &siteSSHD{Dir: dir, UserKey: filepath.Join(dir, "user_key"), KnownHosts: filepath.Join(dir, "known_hosts"),
		ep: Endpoint{User: "root", Host: s.Addr}, log: &lockedBuffer{}}
	keygen(t, filepath.Join(dir, "host_key"), "")
	keygen(t, d.UserKey, "")
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(readPub(t, d.UserKey+".pub")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Debian's default sshd_config with only what a test changes (as in
	// sshd_test.go): forwarding, root's keys-only login and
	// StreamLocalBindMask/Unlink keep Debian's defaults.
	config := fmt.Sprintf(`# The site's own address, port 22, as a head's sshd.
Port 22
ListenAddress %s
HostKey %s/host_key
PidFile none
AuthorizedKeysFile %s/authorized_keys
StrictModes no
UsePAM no
KbdInteractiveAuthentication no
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`, s.Addr, dir, dir)
	cfg := filepath.Join(dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs sshd: the process is sshd itself.
	cmd := exec.Command("ip", "netns", "exec", s.NS, sshdPath, "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = d.log, d.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", d.ep.Addr(), time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			t.Fatalf("sshd exited:\n%s", d.log)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("sshd does not listen on %s: %v\n%s", d.ep.Addr(), err, d.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	line := fmt.Sprintf("%s %s\n", s.Addr, readPub(t, filepath.Join(dir, "host_key.pub")))
	if err := os.WriteFile(d.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return d
}

// siteHelperEnv names the helper a re-executed test binary runs
// (site_test.go's init) instead of the tests.
const siteHelperEnv = "ORRERY_SITE_HELPER"

// siteRun is what a helper process inside the site did.
type siteRun struct {
	Code    int
	Stdout  string
	Stderr  string
	Elapsed time.Duration
}

// run re-executes this test binary inside the site as helper (with env
// KEY=VALUE pairs and stdin) and waits for it, for at most limit.
func (s *site) run(t *testing.T, limit time.Duration, stdin string, helper string, env ...string) siteRun {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	// ip netns exec execs the binary, so the process killed when ctx
	// ends is the helper itself.
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", s.NS, exe)
	cmd.Env = append(append(os.Environ(), siteHelperEnv+"="+helper), env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err = cmd.Run()
	r := siteRun{Stdout: stdout.String(), Stderr: stderr.String(), Elapsed: time.Since(began)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
		if ctx.Err() != nil {
			t.Fatalf("helper %s in the site still ran after %v:\n%s", helper, limit, r.Stderr)
		}
	case err != nil:
		t.Fatalf("helper %s in the site: %v", helper, err)
	}
	return r
}
