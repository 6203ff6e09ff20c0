package remote

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const sshdPath = "/usr/sbin/sshd"

// testSSHD is Debian's OpenSSH sshd, started by a test on 127.0.0.1 in
// the foreground with its own host key, accepting the test's user key.
type testSSHD struct {
	Port         int
	Dir          string
	HostKey      string // the ed25519 host key's public line: "TYPE BASE64 COMMENT"
	HostKeyECDSA string // the ECDSA host key's
	UserKey      string // private key file authorized for root
	KnownHosts   string // a known_hosts file that holds the host key
	log          *lockedBuffer
}

func (s *testSSHD) endpoint() Endpoint {
	return Endpoint{User: "root", Host: "127.0.0.1", Port: s.Port}
}

func (s *testSSHD) options() Options {
	return Options{Identity: s.UserKey, KnownHosts: s.KnownHosts, Timeout: 20 * time.Second}
}

// dial connects with the test's key and closes the client when the
// test ends (before sshd stops).
func (s *testSSHD) dial(t *testing.T) *Client {
	t.Helper()
	c, err := Dial(context.Background(), s.endpoint(), s.options())
	if err != nil {
		t.Fatalf("Dial: %v\nsshd:\n%s", err, s.log)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// needSSH skips the test when OpenSSH's server is not installed, except
// under CI, where .ci/run installs it and its absence is a failure.
func needSSH(t *testing.T) {
	t.Helper()
	for _, p := range []string{sshdPath, "ssh-keygen", "ssh-agent", "ssh-add", "ssh-keyscan"} {
		if _, err := exec.LookPath(p); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s missing: .ci/run installs openssh-server", p)
			}
			t.Skipf("%s not installed (apt-get install openssh-server; .ci/run does it)", p)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("sshd tests log in as root and need to run as root")
	}
	// Keep the developer's own agent out of the tests.
	t.Setenv("SSH_AUTH_SOCK", "")
}

// keygen makes an ed25519 key pair at file (file.pub), with passphrase.
func keygen(t *testing.T, file, passphrase string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "orrery-test", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

func readPub(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// startSSHD starts sshd and stops it when the test ends.
func startSSHD(t *testing.T) *testSSHD {
	t.Helper()
	needSSH(t)
	// sshd's privilege separation directory (compiled in); the
	// package's init script makes it when the service starts.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	s := &testSSHD{Dir: dir, UserKey: filepath.Join(dir, "user_key"), KnownHosts: filepath.Join(dir, "known_hosts"), log: &lockedBuffer{}}
	keygen(t, filepath.Join(dir, "host_key"), "")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", filepath.Join(dir, "host_key_ecdsa")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	s.HostKeyECDSA = readPub(t, filepath.Join(dir, "host_key_ecdsa.pub"))
	keygen(t, s.UserKey, "")
	s.HostKey = readPub(t, filepath.Join(dir, "host_key.pub"))
	if err := os.WriteFile(filepath.Join(dir, "authorized_keys"), []byte(readPub(t, s.UserKey+".pub")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 0; ; attempt++ {
		s.Port = freePort(t)
		// Debian's default sshd_config (Include of sshd_config.d,
		// KbdInteractiveAuthentication no, X11Forwarding yes, PrintMotd
		// no, AcceptEnv, the sftp subsystem) with only what one test on
		// one machine needs changed. Forwarding (TCP and Unix socket),
		// PermitRootLogin (prohibit-password: keys only) and
		// StreamLocalBindMask/Unlink keep Debian's defaults: they are
		// what the tests check.
		config := fmt.Sprintf(`# A free port, on loopback only, rather than everyone's port 22.
Port %d
ListenAddress 127.0.0.1
# The test's own host keys rather than the machine's /etc/ssh keys
# (two types, as Debian's default has three).
HostKey %s/host_key
HostKey %s/host_key_ecdsa
# No pid file in /run, which the machine's own sshd would use.
PidFile none
# The test's user key rather than root's ~/.ssh/authorized_keys.
AuthorizedKeysFile %s/authorized_keys
# The key lies under /tmp, which is world-writable (sticky): strict
# modes refuse every directory above the file that others may write.
StrictModes no
# PAM's session modules (pam_loginuid) fail in a container; keys need
# no PAM.
UsePAM no
KbdInteractiveAuthentication no
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
`, s.Port, dir, dir, dir)
		cfg := filepath.Join(dir, "sshd_config")
		if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sshdPath, "-D", "-e", "-f", cfg)
		cmd.Stdout = s.log
		cmd.Stderr = s.log
		if err := cmd.Start(); err != nil {
			t.Fatalf("sshd: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if waitListening(s.Port, exited) {
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
			})
			break
		}
		cmd.Process.Kill()
		<-exited
		if attempt == 2 {
			t.Fatalf("sshd did not start:\n%s", s.log)
		}
	}
	// Only the ed25519 key is known, which the library asks for last
	// by default.
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, s.HostKey)
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// waitListening waits until something accepts on port, or sshd exits
// (a port taken meanwhile), for a generous while.
func waitListening(port int, exited <-chan struct{}) bool {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startAgent starts ssh-agent in the foreground on a socket in dir and
// adds key (with its passphrase, through SSH_ASKPASS); it stops the
// agent when the test ends.
func startAgent(t *testing.T, dir, key, passphrase string) string {
	t.Helper()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	var log lockedBuffer
	agent.Stdout, agent.Stderr = &log, &log
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { agent.Wait(); close(exited) }()
	t.Cleanup(func() { agent.Process.Kill(); <-exited })
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 1500 {
			t.Fatalf("ssh-agent made no socket: %s", log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	askpass := filepath.Join(dir, "askpass")
	if err := os.WriteFile(askpass, []byte("#!/bin/sh\necho '"+passphrase+"'\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	add := exec.Command("ssh-add", key)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock, "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0")
	add.Stdin = nil
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	return sock
}
