package sitetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// SSHDPath is Debian's OpenSSH server.
const SSHDPath = "/usr/sbin/sshd"

// Endpoint is an SSH server to reach and the user to log in as. It has
// remote.Endpoint's fields, in the same order, so that
// remote.Endpoint(e) converts it.
type Endpoint struct {
	User string
	Host string
	Port int
}

// Addr is the endpoint's host:port.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.Port)) }

// Server is Debian's OpenSSH sshd started by a test in the foreground,
// with its own host keys, accepting one user key for the current user
// (root). It stops when the test ends.
type Server struct {
	// Host and Port are where it listens: 127.0.0.1 and a free port for
	// SSHD, the site's address and port 22 for a site's.
	Host string
	Port int
	// User is the user a test logs in as: the current user (root).
	User string
	// Dir holds its configuration, keys and known_hosts; a test may put
	// its own files there.
	Dir string
	// HostKey is the ed25519 host key's public line ("TYPE BASE64
	// COMMENT"), HostKeyECDSA the ECDSA one's.
	HostKey      string
	HostKeyECDSA string
	// Identity is the private key file it accepts (unencrypted).
	Identity string
	// AuthorizedKeys is the file of the keys it accepts: a test may
	// rewrite it (sshd reads it at each login).
	AuthorizedKeys string
	// KnownHosts is a known_hosts file that holds the ed25519 host key
	// for Host and Port.
	KnownHosts string
	// PID is sshd's process ID (the listener; each connection is served
	// by a child of it).
	PID int

	log *Buffer
}

// Endpoint is where to log in.
func (s *Server) Endpoint() Endpoint { return Endpoint{User: s.User, Host: s.Host, Port: s.Port} }

// Addr is the host:port sshd listens on.
func (s *Server) Addr() string { return s.Endpoint().Addr() }

// Log is what sshd has written (with -e: its log), for failure messages.
func (s *Server) Log() string { return s.log.String() }

// KnownHostsLine is the known_hosts line of the ed25519 host key for
// addr ("host:port"): "[host]:port KEY", or "host KEY" for port 22.
func (s *Server) KnownHostsLine(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = addr, "22"
	}
	if port != "22" {
		host = "[" + host + "]:" + port
	}
	return host + " " + s.HostKey
}

// Agent starts an ssh-agent holding the server's user key (stopped when
// the test ends) and returns its socket.
func (s *Server) Agent(t testing.TB) string {
	t.Helper()
	return StartAgent(t, t.TempDir(), s.Identity, "")
}

// Buffer is a bytes.Buffer that several goroutines may use at once (a
// process's stdout and stderr, say).
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// NeedSSH skips the test when OpenSSH's server and tools are not
// installed, except under CI, where .ci/run installs them and their
// absence is a failure; it skips when the test does not run as root
// (the servers log in as root). It keeps the developer's own agent out
// of the tests: the first call in a test process unsets SSH_AUTH_SOCK
// for the whole process (so a parallel test may call it); a test that
// wants an agent names its socket (StartAgent), or sets SSH_AUTH_SOCK
// after this call (t.Setenv, in a test that is not parallel).
func NeedSSH(t testing.TB) {
	t.Helper()
	for _, p := range []string{SSHDPath, "ssh-keygen", "ssh-agent", "ssh-add", "ssh-keyscan"} {
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
	noAgent.Do(func() { os.Unsetenv("SSH_AUTH_SOCK") })
}

// noAgent unsets the developer's SSH_AUTH_SOCK once per test process.
var noAgent sync.Once

// Keygen makes an ed25519 key pair at file (and file.pub), encrypted
// with passphrase unless it is empty.
func Keygen(t testing.TB, file, passphrase string) {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "orrery-test", "-f", file).CombinedOutput()
	if err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
}

// ReadPub returns a public key file's line, without its newline.
func ReadPub(t testing.TB, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// SSHD starts sshd on 127.0.0.1 and a free port; it stops when the test
// ends.
func SSHD(t testing.TB) *Server {
	t.Helper()
	NeedSSH(t)
	s := newServer(t, "127.0.0.1")
	for attempt := 0; ; attempt++ {
		s.Port = freePort(t)
		err := s.start(t, nil)
		if err == nil {
			break
		}
		if attempt == 2 {
			t.Fatalf("sshd did not start: %v\n%s", err, s.log)
		}
	}
	return s
}

// newServer makes the server's directory, keys and authorized keys.
func newServer(t testing.TB, host string) *Server {
	t.Helper()
	// sshd's privilege separation directory (compiled in); the
	// package's init script makes it when the service starts.
	if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
		t.Fatal(err)
	}
	name := "root"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	dir := t.TempDir()
	s := &Server{Host: host, User: name, Dir: dir,
		Identity:       filepath.Join(dir, "user_key"),
		AuthorizedKeys: filepath.Join(dir, "authorized_keys"),
		KnownHosts:     filepath.Join(dir, "known_hosts"),
		log:            &Buffer{}}
	Keygen(t, filepath.Join(dir, "host_key"), "")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", filepath.Join(dir, "host_key_ecdsa")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	s.HostKey = ReadPub(t, filepath.Join(dir, "host_key.pub"))
	s.HostKeyECDSA = ReadPub(t, filepath.Join(dir, "host_key_ecdsa.pub"))
	Keygen(t, s.Identity, "")
	if err := os.WriteFile(s.AuthorizedKeys, []byte(ReadPub(t, s.Identity+".pub")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// start writes the configuration for s.Host and s.Port and starts sshd
// (through the command prefix wrap, such as `ip netns exec NS`, which
// must exec it); it returns an error when sshd exits or does not listen
// (its port taken meanwhile) and otherwise writes known_hosts and stops
// sshd when the test ends.
func (s *Server) start(t testing.TB, wrap []string) error {
	t.Helper()
	// Debian's default sshd_config (Include of sshd_config.d,
	// KbdInteractiveAuthentication no, X11Forwarding yes, PrintMotd no,
	// AcceptEnv, the sftp subsystem) with only what one test on one
	// machine needs changed. Forwarding (TCP and Unix socket),
	// PermitRootLogin (prohibit-password: keys only) and
	// StreamLocalBindMask/Unlink keep Debian's defaults: they are what
	// the tests check.
	config := fmt.Sprintf(`# A port and address of the test's rather than everyone's port 22.
Port %d
ListenAddress %s
# The test's own host keys rather than the machine's /etc/ssh keys
# (two types, as Debian's default has three).
HostKey %s/host_key
HostKey %s/host_key_ecdsa
# No pid file in /run, which the machine's own sshd would use.
PidFile none
# The test's user key rather than root's ~/.ssh/authorized_keys.
AuthorizedKeysFile %s
# The key lies under /tmp, which is world-writable (sticky): strict
# modes refuse every directory above the file that others may write.
StrictModes no
# PAM's session modules (pam_loginuid) fail in a container; keys need
# no PAM. Without PAM (and systemd's logind) nothing kills what a
# session leaves running detached when it ends.
UsePAM no
KbdInteractiveAuthentication no
X11Forwarding yes
PrintMotd no
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
# Commands run as on a machine whose login shell starts quickly:
# Debian's bash runs the user's ~/.bashrc for a command from sshd when
# it is the top-level shell (SHLVL unset), and this machine's (pyenv
# init, say) is not the test's and may take seconds for each command.
# A race-built test binary run as a command (a stand-in head) does not
# wait a second when it exits (ThreadSanitizer's atexit sleep); races
# are still reported, and exit with status 66.
SetEnv SHLVL=1 GORACE=atexit_sleep_ms=0
`, s.Port, s.Host, s.Dir, s.Dir, s.AuthorizedKeys)
	cfg := filepath.Join(s.Dir, "sshd_config")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// sshd runs every session's command with the user's shell, and
	// bash run by sshd reads ~/.bashrc even when not interactive: root's
	// rc files on a developer's or CI's machine (pyenv's init takes 2 s
	// and waits a minute for a lock a killed session left) would make
	// every SSH command slow, or stall it. In a mount namespace of its
	// own, sshd and its sessions see them empty; nothing else changes.
	argv := append(append([]string{}, wrap...), "unshare", "-m", "--propagation", "private",
		"/bin/sh", "-c", maskRC, "sh", SSHDPath, "-D", "-e", "-f", cfg)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		t.Fatalf("sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	if err := waitListening(s.Addr(), exited); err != nil {
		cmd.Process.Kill()
		<-exited
		return err
	}
	s.PID = cmd.Process.Pid
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	// Only the ed25519 key is known, which golang.org/x/crypto/ssh asks
	// for last by default.
	if err := os.WriteFile(s.KnownHosts, []byte(s.KnownHostsLine(s.Addr())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return nil
}

// maskRC mounts an empty file over each shell start-up file of the
// user's home that exists, then runs its arguments.
const maskRC = `for f in "$HOME/.bashrc" "$HOME/.profile" "$HOME/.bash_profile" "$HOME/.bash_login"; do
	if [ -f "$f" ]; then mount --bind /dev/null "$f" || exit 1; fi
done
exec "$@"`

// waitListening waits until something accepts on addr, or sshd exits
// (a port taken meanwhile), for a generous while.
func waitListening(addr string, exited <-chan struct{}) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-exited:
			return fmt.Errorf("sshd exited")
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sshd does not listen on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// StartAgent starts ssh-agent in the foreground on a socket in dir and
// adds key (with its passphrase, through SSH_ASKPASS); it stops the
// agent when the test ends, and returns the socket.
func StartAgent(t testing.TB, dir, key, passphrase string) string {
	t.Helper()
	sock := filepath.Join(dir, "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	var log Buffer
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
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	return sock
}
