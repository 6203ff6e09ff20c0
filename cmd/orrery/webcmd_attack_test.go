package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWebCmdAttackLimitListener: limitListener holds at most n
// connections; a connection closed twice gives its slot back once, and
// an Accept that fails gives its slot back.
func TestWebCmdAttackLimitListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := limitListener(raw, 2, 2).(*limitedListener)
	defer ll.Close()
	for range 4 {
		c, err := net.Dial("tcp", raw.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	type acc struct {
		c   net.Conn
		err error
	}
	accept := func() chan acc {
		ch := make(chan acc, 1)
		go func() { c, err := ll.Accept(); ch <- acc{c, err} }()
		return ch
	}
	c1, c2 := <-accept(), <-accept()
	if c1.err != nil || c2.err != nil {
		t.Fatal(c1.err, c2.err)
	}
	third := accept()
	select {
	case a := <-third:
		t.Fatalf("a third connection was accepted with two slots: %v", a.err)
	case <-time.After(200 * time.Millisecond):
	}
	c1.c.Close()
	c1.c.Close() // twice: one slot back, not two
	a3 := <-third
	if a3.err != nil {
		t.Fatal(a3.err)
	}
	fourth := accept()
	select {
	case <-fourth:
		t.Fatal("a connection closed twice gave two slots back")
	case <-time.After(200 * time.Millisecond):
	}
	a3.c.Close()
	if a := <-fourth; a.err == nil {
		a.c.Close()
	}
	c2.c.Close()
	// The listener closed: Accept fails, and keeps no slot.
	raw.Close()
	if a := <-accept(); a.err == nil {
		t.Fatal("Accept on a closed listener succeeded")
	}
	if n := len(ll.sem); n != 0 {
		t.Errorf("after every connection closed and a failed Accept, %d slots are held, want 0", n)
	}
}

// webAttackSnapshot hashes every file under the state directory but
// SQLite's -wal and -shm, which a reader may make and remove.
func webAttackSnapshot(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	m := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, "-wal") || strings.HasSuffix(p, "-shm") {
			return err
		}
		b, err := os.ReadFile(p)
		m[p] = sha256.Sum256(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWebCmdAttackTLS: `orrery web` on a finished run speaks TLS 1.3
// alone, HTTP/1.1 alone (a peer offering only h2 is refused; one
// offering no ALPN is served), asks no client certificate, has a
// certificate naming [::1] when it listens there, drops a peer that
// never finishes its handshake within the header timeout, exits 0 on
// SIGTERM with one line on stdout, and changes no byte of the state
// directory (the store, pki/) of a run that listened.
func TestWebCmdAttackTLS(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "w.pln"), webcmdPlan(""))
	if code, _, stderr := e2eRun(t, dir, time.Minute, "run", "--nodes", "1", "--listen", "127.0.0.1:0", "w.pln"); code != exitFailed {
		t.Fatalf("run: exit %d, want 1\nstderr:\n%s", code, stderr)
	}
	state := filepath.Join(dir, ".orrery")
	before := webAttackSnapshot(t, state)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	web, link := e2eWebStart(t, ctx, dir, "--listen", "[::1]:0")
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "::1" {
		t.Errorf("the link's host is %q, want ::1", u.Hostname())
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(e2eMust(t, dir, "token", "--ca")))
	dial := func(cfg *tls.Config) (*tls.Conn, error) {
		cfg.RootCAs = pool
		return tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", u.Host, cfg)
	}
	if c, err := dial(&tls.Config{MaxVersion: tls.VersionTLS12}); err == nil {
		t.Errorf("a TLS 1.2 handshake succeeded (version %x)", c.ConnectionState().Version)
		c.Close()
	}
	if c, err := dial(&tls.Config{NextProtos: []string{"h2"}}); err == nil {
		t.Errorf("a peer offering only h2 was served (ALPN %q)", c.ConnectionState().NegotiatedProtocol)
		c.Close()
	}
	asked := false
	c, err := dial(&tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		asked = true
		return &tls.Certificate{}, nil
	}})
	if err != nil {
		t.Fatalf("a TLS 1.3 handshake with no ALPN, checking the certificate for [::1]: %v", err)
	}
	if st := c.ConnectionState(); st.Version != tls.VersionTLS13 || st.NegotiatedProtocol != "" || asked {
		t.Errorf("handshake: version %x, ALPN %q, client certificate asked %v; want TLS 1.3, none, false", st.Version, st.NegotiatedProtocol, asked)
	}
	c.Close()
	// A peer that connects and says nothing is dropped by the handshake
	// deadline (the header timeout, 10 s), so it holds no slot for ever.
	raw, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	raw.SetReadDeadline(start.Add(webReadHeader + 10*time.Second))
	_, err = io.Copy(io.Discard, raw)
	raw.Close()
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Errorf("a silent peer was still held after %s", time.Since(start).Round(time.Second))
	}

	web.killGroup(syscall.SIGTERM)
	if code := web.wait(30 * time.Second); code != 0 {
		t.Errorf("orrery web after SIGTERM: exit %d, want 0\nstderr:\n%s", code, web.stderr.String())
	}
	if out := web.stdout.String(); strings.Count(out, "\n") != 1 {
		t.Errorf("orrery web's stdout is not one line: %q", out)
	}
	e2eNoPanic(t, "orrery web", web.stderr.String())
	after := webAttackSnapshot(t, state)
	for p, h := range before {
		if after[p] != h {
			t.Errorf("orrery web changed %s", p)
		}
	}
	for p := range after {
		// The viewer secret is made on first use (docs/web.md): the one
		// file web may add.
		if _, ok := before[p]; !ok && filepath.Base(p) != "viewer.secret" {
			t.Errorf("orrery web made %s", p)
		}
	}
}

// TestWebCmdAttackPerHost: one address holds at most its share of the
// connections; one more from it is closed at once, and its slot given
// back when one of its connections closes.
func TestWebCmdAttackPerHost(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ll := limitListener(raw, 4, 1)
	defer ll.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ll.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	first, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	held := <-accepted
	second, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	second.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := second.Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Fatalf("a second connection from an address that holds its share: read %v, want it closed at once", err)
	}
	select {
	case c := <-accepted:
		t.Fatalf("a second connection from one address was accepted: %v", c.RemoteAddr())
	default:
	}
	held.Close()
	third, err := net.Dial("tcp", raw.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the address's slot was not given back when its connection closed")
	}
}
