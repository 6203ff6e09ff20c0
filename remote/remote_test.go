package remote

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"orrery/internal/sitetest"
)

func TestRunStdinOutputExit(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	c := s.dial(t)
	out, errOut, exit, err := c.Run(context.Background(), "cat; echo oops >&2; exit 3", []byte("hello\nworld"))
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "hello\nworld" || string(errOut) != "oops\n" || exit != 3 {
		t.Fatalf("got stdout %q, stderr %q, exit %d", out, errOut, exit)
	}
}

// The secret handed on standard input is on no command line of the
// remote machine while the process holding it runs; the scan does see
// the remote command's own line (its marker).
func TestSecretNeverOnCommandLine(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	c := s.dial(t)
	secret := "orrery-secret-" + rand.Text()
	marker := "orrery-marker-" + rand.Text()
	p, err := c.Start(context.Background(), ": "+marker+"; IFS= read -r s; echo ready; IFS= read -r _; echo ${#s}")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := io.WriteString(p.Stdin(), secret+"\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(p.Stdout())
	if line, err := r.ReadString('\n'); line != "ready\n" {
		t.Fatalf("read %q, %v; stderr %s", line, err, p.Stderr())
	}
	lines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	sawMarker := false
	for _, f := range lines {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // the process ended
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret: %q", f, b)
		}
		sawMarker = sawMarker || bytes.Contains(b, []byte(marker))
	}
	if !sawMarker {
		t.Fatal("no command line holds the remote command's marker: the scan sees nothing")
	}
	if _, err := io.WriteString(p.Stdin(), "\n"); err != nil {
		t.Fatal(err)
	}
	if line, _ := r.ReadString('\n'); line != fmt.Sprintf("%d\n", len(secret)) {
		t.Fatalf("the remote process read %q, want the secret's length %d", line, len(secret))
	}
	if exit, err := p.Wait(); exit != 0 || err != nil {
		t.Fatalf("exit %d, %v", exit, err)
	}
}

// A started process's streams stay open across many exchanges.
func TestStartStreamsStayOpen(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	c := s.dial(t)
	p, err := c.Start(context.Background(), "while IFS= read -r l; do echo \"got $l\"; done; echo bye >&2; exit 7")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	r := bufio.NewReader(p.Stdout())
	for i := range 50 {
		fmt.Fprintf(p.Stdin(), "%d\n", i)
		if line, err := r.ReadString('\n'); line != fmt.Sprintf("got %d\n", i) {
			t.Fatalf("round %d: %q, %v", i, line, err)
		}
	}
	p.Stdin().Close()
	io.Copy(io.Discard, r)
	exit, err := p.Wait()
	if exit != 7 || err != nil || string(p.Stderr()) != "bye\n" {
		t.Fatalf("exit %d, %v, stderr %q", exit, err, p.Stderr())
	}
}

func TestUnknownHostRefused(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	known := filepath.Join(s.Dir, "empty_known_hosts")
	if err := os.WriteFile(known, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	opts := s.options()
	opts.KnownHosts = known
	_, err := Dial(context.Background(), s.endpoint(), opts)
	if !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("Dial: %v, want ErrUnknownHost", err)
	}
	msg := err.Error()
	add := fmt.Sprintf("ssh-keyscan -p %d 127.0.0.1 >> %s", s.Port, known)
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "127.0.0.1") || !strings.Contains(msg, "not in "+known) || !strings.HasSuffix(msg, add) {
		t.Fatalf("message %q: want one line naming the host and %s and ending %q", msg, known, add)
	}
	// The advice works: after it, the host is known.
	if out, err := exec.Command("sh", "-c", add).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", add, err, out)
	}
	c, err := Dial(context.Background(), s.endpoint(), opts)
	if err != nil {
		t.Fatalf("Dial after ssh-keyscan: %v", err)
	}
	c.Close()
}

func TestChangedHostKeyRefused(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	other := filepath.Join(s.Dir, "other_host_key")
	sitetest.Keygen(t, other, "")
	line := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, sitetest.ReadPub(t, other+".pub"))
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Dial(context.Background(), s.endpoint(), s.options())
	if !errors.Is(err, ErrChangedHostKey) {
		t.Fatalf("Dial: %v, want ErrChangedHostKey", err)
	}
	if msg := err.Error(); strings.Contains(msg, "\n") || !strings.Contains(msg, "possibly an attack") || !strings.Contains(msg, s.KnownHosts+":1") {
		t.Fatalf("message %q", msg)
	}

	// A known key of another type, which the host does not have, is a
	// changed key too, not a failed negotiation.
	rsa := filepath.Join(s.Dir, "rsa_host_key")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsa).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	line = fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, sitetest.ReadPub(t, rsa+".pub"))
	if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Dial(context.Background(), s.endpoint(), s.options())
	if !errors.Is(err, ErrChangedHostKey) || !strings.Contains(err.Error(), "possibly an attack") {
		t.Fatalf("Dial with an RSA known key: %v, want ErrChangedHostKey", err)
	}
}

// A host with keys of two types: whichever one known_hosts holds is
// asked for, rather than the library's favourite (ECDSA before ed25519),
// which would look like a changed key.
func TestKnownKeyOfEachType(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	for _, key := range []string{s.HostKey, s.HostKeyECDSA} {
		line := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, key)
		if err := os.WriteFile(s.KnownHosts, []byte(line), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Dial(context.Background(), s.endpoint(), s.options())
		if err != nil {
			t.Fatalf("Dial with only %.20s... known: %v", key, err)
		}
		c.Close()
	}
}

func TestWrongUserKeyRefused(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	wrong := filepath.Join(s.Dir, "wrong_key")
	sitetest.Keygen(t, wrong, "")
	opts := s.options()
	opts.Identity = wrong
	_, err := Dial(context.Background(), s.endpoint(), opts)
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "\n") || !strings.Contains(err.Error(), wrong) {
		t.Fatalf("Dial: %v, want ErrAuth naming %s", err, wrong)
	}
}

func TestEncryptedIdentity(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	enc := filepath.Join(s.Dir, "enc_key")
	sitetest.Keygen(t, enc, "sesame")
	if err := os.WriteFile(filepath.Join(s.Dir, "authorized_keys"), []byte(sitetest.ReadPub(t, enc+".pub")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	opts := s.options()
	opts.Identity = enc
	_, err := Dial(context.Background(), s.endpoint(), opts)
	if !errors.Is(err, ErrEncryptedIdentity) || !strings.Contains(err.Error(), "ssh-add "+enc) {
		t.Fatalf("Dial: %v, want ErrEncryptedIdentity saying ssh-add %s", err, enc)
	}

	// Loaded into ssh-agent, the same key logs in, with the identity
	// still named and with none.
	opts.AgentSocket = sitetest.StartAgent(t, s.Dir, enc, "sesame")
	for _, identity := range []string{enc, ""} {
		opts.Identity = identity
		c, err := Dial(context.Background(), s.endpoint(), opts)
		if err != nil {
			t.Fatalf("Dial with the key in ssh-agent (identity %q): %v", identity, err)
		}
		if out, _, _, err := c.Run(context.Background(), "echo in", nil); err != nil || string(out) != "in\n" {
			t.Fatalf("Run: %q, %v", out, err)
		}
		c.Close()
	}
}

// ssh-agent found through SSH_AUTH_SOCK, with no identity file.
func TestAgentFromEnvironment(t *testing.T) {
	s := startSSHD(t)
	t.Setenv("SSH_AUTH_SOCK", sitetest.StartAgent(t, s.Dir, s.Identity, ""))
	opts := s.options()
	opts.Identity = ""
	c, err := Dial(context.Background(), s.endpoint(), opts)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
}

func TestCopyFile(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	c := s.dial(t)
	ctx := context.Background()
	bin, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(s.Dir, "head", "bin", "orrery")
	copied, err := c.CopyFile(ctx, bin, dst, 0o755)
	if err != nil || !copied {
		t.Fatalf("first copy: %v, %v", copied, err)
	}
	sameFile(t, bin, dst)
	st, _ := os.Stat(dst)
	if st.Mode().Perm() != 0o755 {
		t.Fatalf("mode %v", st.Mode())
	}
	ino := st.Sys().(*syscall.Stat_t).Ino

	copied, err = c.CopyFile(ctx, bin, dst, 0o755)
	if err != nil || copied {
		t.Fatalf("second copy of the same file: copied %v, %v", copied, err)
	}
	if st, _ := os.Stat(dst); st.Sys().(*syscall.Stat_t).Ino != ino {
		t.Fatal("the same file was replaced")
	}

	other := filepath.Join(t.TempDir(), "orrery")
	if err := os.WriteFile(other, []byte("#!/bin/sh\necho another build\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	copied, err = c.CopyFile(ctx, other, dst, 0o755)
	if err != nil || !copied {
		t.Fatalf("copy of another build: %v, %v", copied, err)
	}
	sameFile(t, other, dst)
	if out, _ := exec.Command(dst).Output(); string(out) != "another build\n" {
		t.Fatalf("the copy runs and says %q", out)
	}
	entries, _ := os.ReadDir(filepath.Dir(dst))
	if len(entries) != 1 {
		t.Fatalf("the directory holds %d files, want only orrery (no temporary left)", len(entries))
	}
}

func sameFile(t *testing.T, a, b string) {
	t.Helper()
	x, err := os.ReadFile(a)
	if err != nil {
		t.Fatal(err)
	}
	y, err := os.ReadFile(b)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x, y) {
		t.Fatalf("%s (%d bytes) differs from %s (%d bytes)", b, len(y), a, len(x))
	}
}

func TestPlatform(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	c := s.dial(t)
	p, err := c.Platform(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if p.OS != runtime.GOOS || p.Arch != runtime.GOARCH {
		t.Fatalf("Platform %v, want %s/%s", p, runtime.GOOS, runtime.GOARCH)
	}
}

func TestGOARCH(t *testing.T) {
	for m, want := range map[string]string{
		"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm",
		"ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64",
		"mips": "", "sparc64": "", "": "",
	} {
		if got, ok := GOARCH(m); got != want || ok != (want != "") {
			t.Errorf("GOARCH(%q) = %q, %v; want %q", m, got, ok, want)
		}
	}
}

// A head's traffic through a Unix socket forwarded by Debian's default
// sshd: connections to the remote socket reach the root's port.
func TestForwardUnixSocketCarriesTraffic(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	c := s.dial(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The root's port: answers each line with its upper case.
	port, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer port.Close()
	go func() {
		for {
			conn, err := port.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				r := bufio.NewReader(conn)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					io.WriteString(conn, strings.ToUpper(line))
				}
			}()
		}
	}()
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", port.Addr().String())
	}

	sock := filepath.Join(s.Dir, "exp", "root.sock")
	ln, err := c.ListenUnix(ctx, sock)
	if err != nil {
		t.Fatal(err)
	}
	relayed := make(chan error, 1)
	go func() { relayed <- Relay(ctx, ln, dial) }()
	if st, err := os.Stat(sock); err != nil || st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o600 {
		t.Fatalf("remote socket: %v, %v; want a socket only its user may use", st.Mode(), err)
	}
	talk(t, sock, 3)

	// A second connection replaces the first one's forward, and the
	// socket file the first left behind.
	c.Close()
	if _, err := os.Stat(sock); err != nil {
		t.Logf("sshd removed the socket itself: %v", err)
	}
	if err := <-relayed; err == nil {
		t.Fatal("Relay returned no error when its connection ended")
	}
	c2 := s.dial(t)
	ln2, err := c2.ListenUnix(ctx, sock)
	if err != nil {
		t.Fatalf("ListenUnix again at the same path: %v", err)
	}
	go Relay(ctx, ln2, dial)
	talk(t, sock, 3)

	// A path that is not a socket is never removed.
	file := filepath.Join(s.Dir, "exp", "notes")
	os.WriteFile(file, []byte("keep"), 0o600)
	if _, err := c2.ListenUnix(ctx, file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("ListenUnix on a file: %v", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep" {
		t.Fatal("the file was replaced")
	}
}

// talk opens n connections to the remote socket at once and sends each
// a megabyte of lines.
func talk(t *testing.T, sock string, n int) {
	t.Helper()
	errs := make(chan error, n)
	for i := range n {
		go func() {
			conn, err := net.Dial("unix", sock)
			if err != nil {
				errs <- err
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(2 * time.Minute))
			var want bytes.Buffer
			go func() {
				w := bufio.NewWriter(conn)
				for j := range 16384 {
					fmt.Fprintf(w, "conn %d line %d %s\n", i, j, strings.Repeat("x", 40))
				}
				w.Flush()
			}()
			for j := range 16384 {
				fmt.Fprintf(&want, "CONN %d LINE %d %s\n", i, j, strings.Repeat("X", 40))
			}
			got := make([]byte, want.Len())
			if _, err := io.ReadFull(conn, got); err != nil {
				errs <- fmt.Errorf("conn %d: %v", i, err)
				return
			}
			if !bytes.Equal(got, want.Bytes()) {
				errs <- fmt.Errorf("conn %d: the reply differs", i)
				return
			}
			errs <- nil
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// A server that accepts the connection and never speaks: Dial gives up
// after its timeout.
func TestDialDeadline(t *testing.T) {
	t.Parallel()
	sitetest.NeedSSH(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := make(chan net.Conn, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held <- c
		}
	}()
	defer func() {
		for len(held) > 0 {
			(<-held).Close()
		}
	}()
	dir := t.TempDir()
	sitetest.Keygen(t, filepath.Join(dir, "key"), "")
	os.WriteFile(filepath.Join(dir, "known_hosts"), nil, 0o600)
	port := ln.Addr().(*net.TCPAddr).Port
	done := make(chan error, 1)
	go func() {
		_, err := Dial(context.Background(), Endpoint{User: "root", Host: "127.0.0.1", Port: port},
			Options{Identity: filepath.Join(dir, "key"), KnownHosts: filepath.Join(dir, "known_hosts"), Timeout: time.Second})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no answer within 1s") {
			t.Fatalf("Dial: %v, want no answer within 1s", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Dial did not give up on a silent server")
	}
}

// A server that goes silent after login (a frozen link): a keepalive
// gets no answer within the timeout and closes the connection, so what
// runs on it fails instead of waiting forever.
func TestKeepAliveDeadline(t *testing.T) {
	t.Parallel()
	s := startSSHD(t)
	// A proxy to sshd that stops carrying bytes when frozen.
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	frozen := make(chan struct{})
	var mu sync.Mutex
	var conns []net.Conn
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	accepted := make(chan net.Conn, 1)
	go func() {
		in, err := proxy.Accept()
		if err != nil {
			return
		}
		accepted <- in
	}()
	opts := s.options()
	opts.Timeout = 2 * time.Second
	ep := s.endpoint()
	ep.Port = proxy.Addr().(*net.TCPAddr).Port
	// known_hosts names the proxy's port.
	os.WriteFile(s.KnownHosts, []byte(fmt.Sprintf("[127.0.0.1]:%d %s\n", ep.Port, s.HostKey)), 0o600)
	go func() {
		in := <-accepted
		out, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port))
		if err != nil {
			in.Close()
			return
		}
		mu.Lock()
		conns = append(conns, in, out)
		mu.Unlock()
		cp := func(dst, src net.Conn) {
			buf := make([]byte, 32<<10)
			for {
				n, err := src.Read(buf)
				select {
				case <-frozen:
					return
				default:
				}
				if err != nil {
					dst.Close()
					return
				}
				dst.Write(buf[:n])
			}
		}
		go cp(out, in)
		cp(in, out)
	}()
	c, err := Dial(context.Background(), ep, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.KeepAlive(context.Background()); err != nil {
		t.Fatalf("KeepAlive on a live link: %v", err)
	}
	close(frozen)
	done := make(chan error, 1)
	go func() { done <- c.KeepAlive(context.Background()) }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "no answer within 2s") {
			t.Fatalf("KeepAlive on a frozen link: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("KeepAlive did not give up on a frozen link")
	}
	if _, _, _, err := c.Run(context.Background(), "true", nil); err == nil {
		t.Fatal("Run on the closed connection succeeded")
	}
}
