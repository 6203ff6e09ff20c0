package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// open opens the key material of a new state directory.
func open(t *testing.T) (*Authority, string) {
	t.Helper()
	dir := t.TempDir()
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return a, dir
}

// token returns a's token, parsed.
func token(t *testing.T, a *Authority) Token {
	t.Helper()
	s, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// node is an enrolled node's identity.
type node struct {
	id   string
	cert tls.Certificate
}

// enrol enrols a node named name with a new key.
func enrol(t *testing.T, a *Authority, name string) node {
	t.Helper()
	key, pub, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	id, der, err := a.Enrol(name, pub)
	if err != nil {
		t.Fatal(err)
	}
	return node{id, NodeCertificate(key, der)}
}

// result is what one side of a handshake saw.
type result struct {
	state tls.ConnectionState
	err   error
}

// handshake runs a TLS handshake over loopback TCP between a server with
// scfg and a client with ccfg, and returns what each side saw.
func handshake(t *testing.T, scfg, ccfg *tls.Config) (server, client result) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		s := tls.Server(c, scfg)
		err = s.Handshake()
		done <- result{s.ConnectionState(), err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	cl := tls.Client(c, ccfg)
	client.err = cl.Handshake()
	client.state = cl.ConnectionState()
	if client.err != nil {
		c.Close()
	}
	server = <-done
	c.Close()
	return server, client
}

// serverConfig returns a's server configuration for localhost.
func serverConfig(t *testing.T, a *Authority) *tls.Config {
	t.Helper()
	cfg, err := a.ServerConfig([]string{"127.0.0.1", "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestEnrolThenHandshakeWithIdentity(t *testing.T) {
	a, _ := open(t)
	scfg := serverConfig(t, a)
	tok := token(t, a)

	// Enrolling: no client certificate yet; the server verifies the
	// secret the node sends.
	srv, cl := handshake(t, scfg, ClientConfig(tok, "localhost", nil))
	if srv.err != nil || cl.err != nil {
		t.Fatalf("enrolling handshake: server %v, client %v", srv.err, cl.err)
	}
	if cl.state.Version != tls.VersionTLS13 {
		t.Errorf("version %x, want TLS 1.3", cl.state.Version)
	}
	if len(srv.state.PeerCertificates) != 0 {
		t.Fatalf("enrolling node showed %d certificates", len(srv.state.PeerCertificates))
	}
	if _, err := a.VerifyNode(srv.state.PeerCertificates); err == nil {
		t.Error("VerifyNode accepted a connection without certificate")
	}
	if !a.CheckSecret(tok.Secret) {
		t.Fatal("CheckSecret refused the token's secret")
	}
	n := enrol(t, a, "worker 1")
	if n.id != "worker-1" {
		t.Errorf("node ID %q, want worker-1", n.id)
	}

	// Enrolled: the node shows its certificate, by name and by address.
	for _, name := range []string{"localhost", "127.0.0.1", ""} {
		srv, cl = handshake(t, scfg, ClientConfig(tok, name, &n.cert))
		if srv.err != nil || cl.err != nil {
			t.Fatalf("server name %q: server %v, client %v", name, srv.err, cl.err)
		}
		id, err := a.VerifyNode(srv.state.PeerCertificates)
		if err != nil || id != n.id {
			t.Errorf("server name %q: VerifyNode = %q, %v; want %q", name, id, err, n.id)
		}
	}
}

func TestEd25519NodeIdentity(t *testing.T) {
	a, _ := open(t)
	pubKey, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(pubKey)
	id, der, err := a.Enrol("ed", pub)
	if err != nil {
		t.Fatal(err)
	}
	cert := NodeCertificate(key, der)
	srv, cl := handshake(t, serverConfig(t, a), ClientConfig(token(t, a), "localhost", &cert))
	if srv.err != nil || cl.err != nil {
		t.Fatalf("server %v, client %v", srv.err, cl.err)
	}
	if got, err := a.VerifyNode(srv.state.PeerCertificates); err != nil || got != id {
		t.Errorf("VerifyNode = %q, %v; want %q", got, err, id)
	}
}

func TestWrongCAHashFailsHandshake(t *testing.T) {
	a, _ := open(t)
	other, _ := open(t)
	tok := token(t, other) // another root's token
	srv, cl := handshake(t, serverConfig(t, a), ClientConfig(tok, "localhost", nil))
	if cl.err == nil || !errors.Is(cl.err, ErrCAMismatch) {
		t.Errorf("client error %v, want %v", cl.err, ErrCAMismatch)
	}
	if srv.err == nil {
		t.Error("server completed a handshake the client refused")
	}
	tok = token(t, a)
	tok.CAHash[0] ^= 1
	if _, cl := handshake(t, serverConfig(t, a), ClientConfig(tok, "localhost", nil)); !errors.Is(cl.err, ErrCAMismatch) {
		t.Errorf("client error %v, want %v", cl.err, ErrCAMismatch)
	}
}

func TestServerNameMismatchSaysAdvertise(t *testing.T) {
	a, _ := open(t)
	_, cl := handshake(t, serverConfig(t, a), ClientConfig(token(t, a), "root.example.org", nil))
	if cl.err == nil {
		t.Fatal("client accepted a certificate that does not name root.example.org")
	}
	if !strings.Contains(cl.err.Error(), "--advertise root.example.org") {
		t.Errorf("error %q does not say --advertise root.example.org", cl.err)
	}
}

func TestServerOnlyShowingLeafOfAnotherCAFails(t *testing.T) {
	// A server that shows the token's CA but a leaf signed by another
	// CA is refused.
	a, _ := open(t)
	other, _ := open(t)
	ocfg := serverConfig(t, other)
	cert, err := ocfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	forged := *cert
	forged.Certificate = [][]byte{cert.Certificate[0], a.ca.Raw}
	scfg := &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{forged}}
	_, cl := handshake(t, scfg, ClientConfig(token(t, a), "localhost", nil))
	if cl.err == nil || errors.Is(cl.err, ErrCAMismatch) {
		t.Errorf("client error %v, want a verification error", cl.err)
	}
}

func TestCheckSecret(t *testing.T) {
	a, _ := open(t)
	tok := token(t, a)
	if !a.CheckSecret(tok.Secret) {
		t.Error("right secret refused")
	}
	wrong := []byte(tok.Secret)
	wrong[len(wrong)-1] ^= 1
	for _, s := range []string{string(wrong), "", tok.Secret + "x", tok.Secret[:len(tok.Secret)-1], " " + tok.Secret} {
		if a.CheckSecret(s) {
			t.Errorf("wrong secret (%d characters) accepted", len(s))
		}
	}
}

func TestRotate(t *testing.T) {
	a, dir := open(t)
	scfg := serverConfig(t, a)
	old := token(t, a)
	n := enrol(t, a, "n")

	// Another process rotates the secret.
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Rotate(); err != nil {
		t.Fatal(err)
	}
	tok := token(t, b)
	if tok.Secret == old.Secret {
		t.Fatal("Rotate kept the secret")
	}
	if tok.CAHash != old.CAHash {
		t.Error("Rotate changed the CA")
	}
	if a.CheckSecret(old.Secret) {
		t.Error("old secret accepted after rotation")
	}
	if !a.CheckSecret(tok.Secret) {
		t.Error("new secret refused after rotation")
	}
	if got := token(t, a); got.Secret != tok.Secret {
		t.Error("the first Authority's token still has the old secret")
	}
	// The enrolled node keeps working, with its old token too.
	srv, cl := handshake(t, scfg, ClientConfig(old, "localhost", &n.cert))
	if srv.err != nil || cl.err != nil {
		t.Fatalf("server %v, client %v", srv.err, cl.err)
	}
	if id, err := a.VerifyNode(srv.state.PeerCertificates); err != nil || id != n.id {
		t.Errorf("after rotation VerifyNode = %q, %v", id, err)
	}
	// Rotating in the same Authority takes effect too.
	if err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	if a.CheckSecret(tok.Secret) || b.CheckSecret(tok.Secret) {
		t.Error("second rotation: previous secret still accepted")
	}
}

func TestRevokeFromAnotherOpen(t *testing.T) {
	a, dir := open(t)
	n := enrol(t, a, "victim")
	keep := enrol(t, a, "keeper")
	if _, err := a.VerifyNode([]*x509.Certificate{n.cert.Leaf}); err != nil {
		t.Fatal(err)
	}
	if a.Revoked(n.id) {
		t.Fatal("revoked before revocation")
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Revoke(n.id); err != nil {
		t.Fatal(err)
	}
	if !a.Revoked(n.id) {
		t.Error("revocation by another Open not seen")
	}
	if _, err := a.VerifyNode([]*x509.Certificate{n.cert.Leaf}); !errors.Is(err, ErrRevoked) {
		t.Errorf("VerifyNode of a revoked node: %v, want %v", err, ErrRevoked)
	}
	if _, err := a.VerifyNode([]*x509.Certificate{keep.cert.Leaf}); err != nil {
		t.Errorf("revoking one node refused another: %v", err)
	}
	if err := b.Revoke(n.id); err != nil {
		t.Errorf("revoking twice: %v", err)
	}
	if err := b.Revoke("nobody"); !errors.Is(err, ErrUnknownNode) {
		t.Errorf("Revoke(nobody) = %v, want %v", err, ErrUnknownNode)
	}
	nodes, err := a.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].ID != n.id || !nodes[0].Revoked || nodes[1].ID != keep.id || nodes[1].Revoked {
		t.Errorf("Nodes = %+v", nodes)
	}
	if want := n.cert.Leaf.SerialNumber.Text(16); nodes[0].Serial != want {
		t.Errorf("serial %s, want %s", nodes[0].Serial, want)
	}
	// A new Enrol does not reuse a revoked ID.
	if again := enrol(t, b, "victim"); again.id != "victim-2" {
		t.Errorf("enrolling as a revoked name gave %q, want victim-2", again.id)
	}
}

func TestFileModes(t *testing.T) {
	a, dir := open(t)
	serverConfig(t, a)
	n := enrol(t, a, "n")
	if err := a.Revoke(n.id); err != nil {
		t.Fatal(err)
	}
	if err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	pki := filepath.Join(dir, "pki")
	checkModes(t, pki, []string{caKeyFile, caCertFile, secretFile, serverKeyFile, serverCertFile, nodesFile, revokedFile, lockFile})

	// Open fixes loosened modes.
	os.Chmod(pki, 0o755)
	os.Chmod(filepath.Join(pki, caKeyFile), 0o644)
	os.Chmod(filepath.Join(pki, secretFile), 0o666)
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	checkModes(t, pki, nil)
}

// checkModes checks that dir is 0700 and holds the files want (at
// least), each 0600, and nothing else.
func checkModes(t *testing.T, dir string, want []string) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("%s: mode %v, want 0700", dir, fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range entries {
		seen[e.Name()] = true
		info, _ := e.Info()
		if !info.Mode().IsRegular() || info.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want a regular file, 0600", e.Name(), info.Mode())
		}
		if strings.HasPrefix(e.Name(), ".tmp") {
			t.Errorf("temporary file %s left behind", e.Name())
		}
	}
	for _, w := range want {
		if !seen[w] {
			t.Errorf("no %s in %s", w, dir)
		}
	}
}

func TestOpenRefusesSymlink(t *testing.T) {
	dir := t.TempDir()
	real := t.TempDir()
	if err := os.Symlink(real, filepath.Join(dir, "pki")); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Open with pki a symlink: %v", err)
	}
}

func TestReopenKeepsCAAndSecret(t *testing.T) {
	a, dir := open(t)
	tok1, _ := a.Token()
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	tok2, _ := b.Token()
	if tok1 != tok2 {
		t.Error("reopening changed the token")
	}
	if !bytes.Equal(a.ca.Raw, b.ca.Raw) {
		t.Error("reopening changed the CA certificate")
	}
}

func TestConcurrentOpenMakesOneCA(t *testing.T) {
	for range 5 {
		dir := t.TempDir()
		const n = 8
		var wg sync.WaitGroup
		tokens := make([]string, n)
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				a, err := Open(dir)
				if err != nil {
					errs[i] = err
					return
				}
				tokens[i], errs[i] = a.Token()
			})
		}
		wg.Wait()
		for i := range n {
			if errs[i] != nil {
				t.Fatal(errs[i])
			}
			if tokens[i] != tokens[0] {
				t.Fatalf("concurrent Opens gave different tokens (different CAs or secrets)")
			}
		}
		a, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if tok, _ := a.Token(); tok != tokens[0] {
			t.Fatal("the CA on disk is not the one the concurrent Opens returned")
		}
	}
}

func TestValidity(t *testing.T) {
	a, _ := open(t)
	cfg := serverConfig(t, a)
	srv, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	n := enrol(t, a, "n")
	now := time.Now()
	year := 365 * 24 * time.Hour
	for _, c := range []struct {
		name string
		cert *x509.Certificate
		life time.Duration
	}{
		{"CA", a.ca, 10 * year},
		{"server", srv.Leaf, year},
		{"node", n.cert.Leaf, year},
	} {
		if c.cert.NotBefore.After(now.Add(-59*time.Minute)) || c.cert.NotBefore.Before(now.Add(-62*time.Minute)) {
			t.Errorf("%s: NotBefore %v, want about now - 1h", c.name, c.cert.NotBefore)
		}
		if d := c.cert.NotAfter.Sub(now); d < c.life-time.Hour || d > c.life+time.Hour {
			t.Errorf("%s: valid for %v more, want %v", c.name, d, c.life)
		}
		if c.cert.SerialNumber.BitLen() < 96 || c.cert.SerialNumber.BitLen() > 128 {
			t.Errorf("%s: serial of %d bits, want a random 128-bit one", c.name, c.cert.SerialNumber.BitLen())
		}
	}
	if !a.ca.IsCA || srv.Leaf.IsCA || n.cert.Leaf.IsCA {
		t.Error("wrong IsCA")
	}
	if len(srv.Certificate) != 2 || !bytes.Equal(srv.Certificate[1], a.ca.Raw) {
		t.Error("server chain is not leaf + CA")
	}
}

// clock is a settable clock for the Authority.
type clock struct{ t atomic.Pointer[time.Time] }

func (c *clock) set(t time.Time) { c.t.Store(&t) }
func (c *clock) now() time.Time  { return *c.t.Load() }

func TestServerCertNamesAndRenewal(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var clk clock
	clk.set(time.Now().Add(-340 * 24 * time.Hour)) // issue 340 days ago
	a.now = clk.now
	names := []string{"127.0.0.1", "localhost", "Root.Example.org.", "::1", "[::1]"}
	cfg, err := a.ServerConfig(names)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 || cfg.MaxVersion != tls.VersionTLS13 || cfg.ClientAuth != tls.RequestClientCert {
		t.Errorf("config: versions %x-%x, client auth %v", cfg.MinVersion, cfg.MaxVersion, cfg.ClientAuth)
	}
	first, err := cfg.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"127.0.0.1", "localhost", "root.example.org", "::1"} {
		if err := first.Leaf.VerifyHostname(n); err != nil {
			t.Errorf("server certificate does not name %s: %v", n, err)
		}
	}
	if len(first.Leaf.DNSNames) != 2 || len(first.Leaf.IPAddresses) != 2 {
		t.Errorf("names %v %v, want 2 DNS names and 2 addresses", first.Leaf.DNSNames, first.Leaf.IPAddresses)
	}

	// Reused while it names everything and has time left.
	clk.set(time.Now().Add(-300 * 24 * time.Hour))
	again, err := a.ServerConfig([]string{"localhost"})
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := again.GetCertificate(nil)
	if c2.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) != 0 {
		t.Error("server certificate not reused for a subset of its names")
	}
	// A new name means a new certificate.
	more, err := a.ServerConfig([]string{"localhost", "other.example.org"})
	if err != nil {
		t.Fatal(err)
	}
	c3, _ := more.GetCertificate(nil)
	if c3.Leaf.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 || c3.Leaf.VerifyHostname("other.example.org") != nil {
		t.Error("server certificate not reissued for a new name")
	}

	// The first config, still running, renews lazily: at real time its
	// certificate has about 25 days left.
	clk.set(time.Now())
	tok := token(t, a)
	_, cl := handshake(t, cfg, ClientConfig(tok, "localhost", nil))
	if cl.err != nil {
		t.Fatal(cl.err)
	}
	got := cl.state.PeerCertificates[0]
	if got.SerialNumber.Cmp(first.Leaf.SerialNumber) == 0 {
		t.Fatal("server certificate with 25 days left not renewed")
	}
	if got.NotAfter.Sub(time.Now()) < 360*24*time.Hour {
		t.Errorf("renewed certificate ends %v", got.NotAfter)
	}
	if err := got.VerifyHostname("root.example.org"); err != nil {
		t.Errorf("renewed certificate lost a name: %v", err)
	}
	onDisk, err := readCert(a.dir, serverCertFile)
	if err != nil {
		t.Fatal(err)
	}
	if onDisk.SerialNumber.Cmp(got.SerialNumber) != 0 {
		t.Error("renewed certificate not written to server.crt")
	}
	// The next handshake keeps it.
	_, cl = handshake(t, cfg, ClientConfig(tok, "127.0.0.1", nil))
	if cl.err != nil || cl.state.PeerCertificates[0].SerialNumber.Cmp(got.SerialNumber) != 0 {
		t.Errorf("second handshake after renewal: %v", cl.err)
	}
}

func TestServerConfigBadNames(t *testing.T) {
	a, _ := open(t)
	for _, names := range [][]string{nil, {""}, {"bad name"}, {"a..b"}, {"*.example.org"}} {
		if _, err := a.ServerConfig(names); err == nil {
			t.Errorf("ServerConfig(%q) accepted", names)
		}
	}
}

func TestVerifyNodeRefusesOtherCA(t *testing.T) {
	a, _ := open(t)
	other, _ := open(t)
	n := enrol(t, other, "n")
	// Even recorded here as enrolled, with its serial, it is refused.
	record(t, a, n.id, n.cert.Leaf)
	chain := []*x509.Certificate{n.cert.Leaf, other.ca}
	if id, err := a.VerifyNode(chain); err == nil {
		t.Errorf("VerifyNode accepted a certificate of another CA as %q", id)
	}
}

func TestVerifyNodeRefusesWithoutClientAuth(t *testing.T) {
	a, _ := open(t)
	n := enrol(t, a, "n")
	// A certificate signed by the right CA, recorded as enrolled, but
	// for server authentication only.
	_, der, err := issueTest(a, "server-only", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	record(t, a, "server-only", leaf)
	if id, err := a.VerifyNode([]*x509.Certificate{leaf}); err == nil {
		t.Errorf("VerifyNode accepted a certificate without ClientAuth as %q", id)
	} else if !strings.Contains(err.Error(), "usage") {
		t.Errorf("refused for another reason than its key usage: %v", err)
	}
	// The root's own server certificate is no node identity either.
	srv, err := serverConfig(t, a).GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if id, err := a.VerifyNode([]*x509.Certificate{srv.Leaf}); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Errorf("VerifyNode of the server certificate: %q, %v; want a key usage error", id, err)
	}
	// A ClientAuth certificate from the right CA that no enrolment issued.
	_, der, err = issueTest(a, n.id, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth})
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	if id, err := a.VerifyNode([]*x509.Certificate{leaf}); err == nil {
		t.Errorf("VerifyNode accepted a certificate not issued at enrolment as %q", id)
	}
	if _, err := a.VerifyNode([]*x509.Certificate{n.cert.Leaf}); err != nil {
		t.Errorf("the enrolled certificate: %v", err)
	}
}

// record adds cert to a's nodes file as the enrolment of id, so that
// only the check under test can refuse it.
func record(t *testing.T, a *Authority, id string, cert *x509.Certificate) {
	t.Helper()
	a.mu.Lock()
	nodes, err := a.loadNodes()
	a.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	nodes = append(nodes, EnrolledNode{ID: id, Serial: cert.SerialNumber.Text(16), Enrolled: time.Now()})
	if err := writeFileAtomic(a.dir, nodesFile, formatNodes(nodes)); err != nil {
		t.Fatal(err)
	}
}

// issueTest signs a certificate with a's CA for a new key, named cn,
// with the given key usages.
func issueTest(a *Authority, cn string, eku []x509.ExtKeyUsage) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, _, err := a.issue(&x509.Certificate{Subject: pkix.Name{CommonName: cn}, ExtKeyUsage: eku}, key.Public())
	return key, der, err
}

func TestEnrolIDs(t *testing.T) {
	a, _ := open(t)
	long := strings.Repeat("x", 100)
	for _, c := range []struct{ name, want string }{
		{"worker 1", "worker-1"},
		{"worker 1", "worker-1-2"},
		{"worker-1", "worker-1-3"},
		{"WORKER-1", "WORKER-1-4"},
		{"", "node"},
		{"", "node-2"},
		{"../etc/passwd", "etc-passwd"},
		{"héllo", "h-llo"},
		{"...", "node-3"},
		{long, long[:64]},
		{long, long[:62] + "-2"},
	} {
		n := enrol(t, a, c.name)
		if n.id != c.want {
			t.Errorf("Enrol(%q) = %q, want %q", c.name, n.id, c.want)
		}
		if n.cert.Leaf.Subject.CommonName != n.id {
			t.Errorf("certificate CN %q, want %q", n.cert.Leaf.Subject.CommonName, n.id)
		}
	}
}

func TestEnrolConcurrentIDsUnique(t *testing.T) {
	a, dir := open(t)
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, pub, _ := NewNodeKey()
	const n = 10
	ids := make([]string, 2*n)
	var wg sync.WaitGroup
	for i := range 2 * n {
		auth := a
		if i%2 == 1 {
			auth = b
		}
		wg.Go(func() {
			id, _, err := auth.Enrol("same", pub)
			if err != nil {
				t.Error(err)
			}
			ids[i] = id
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			t.Errorf("node ID %q given twice", id)
		}
		seen[id] = true
	}
	nodes, err := a.Nodes()
	if err != nil || len(nodes) != 2*n {
		t.Errorf("Nodes: %d, %v; want %d", len(nodes), err, 2*n)
	}
}

func TestEnrolKeyTypes(t *testing.T) {
	a, _ := open(t)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, pub := range map[string]any{"P-384": p384.Public(), "RSA": rsaKey.Public()} {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := a.Enrol("n", der); err == nil || !strings.Contains(err.Error(), "want ECDSA P-256") {
			t.Errorf("%s key: %v", name, err)
		}
	}
	if _, _, err := a.Enrol("n", []byte("not a key")); err == nil {
		t.Error("garbage key accepted")
	}
	if nodes, _ := a.Nodes(); len(nodes) != 0 {
		t.Errorf("refused keys recorded %d nodes", len(nodes))
	}
}

func TestParseToken(t *testing.T) {
	a, _ := open(t)
	s, _ := a.Token()
	if strings.ContainsAny(s, " \t\n") || strings.Count(s, ".") != 2 || !strings.HasPrefix(s, "orrery1.") {
		t.Errorf("token %q is not one URL-safe line", s)
	}
	tok, err := ParseToken("  " + s + "\n")
	if err != nil {
		t.Fatal(err)
	}
	if tok.CAHash != sha256.Sum256(a.ca.RawSubjectPublicKeyInfo) || tok.CAHash != a.CAHash() {
		t.Error("token's CA hash is not the CA's SPKI hash")
	}
	if tok.Encode() != s {
		t.Errorf("Encode = %q, want %q", tok.Encode(), s)
	}
	hash := strings.Split(s, ".")[1]
	const secret = "SeCrEtSeCrEtSeCrEtSeCrEt"
	for _, c := range []struct{ in, want string }{
		{"", "empty"},
		{"hello", "does not start with"},
		{"orrery2." + hash + "." + secret, `format "orrery2" is not supported`},
		{"orrery1." + hash, "no secret"},
		{"orrery1." + hash[1:] + "." + secret, "CA hash"},
		{"orrery1." + hash + "x." + secret, "CA hash"},
		{"orrery1.!!." + secret, "CA hash"},
		{"orrery1." + hash + "." + secret[:21], "too short"},
		{"orrery1." + hash + "." + secret + "!", "characters other than"},
		{"orrery1." + hash + "." + secret + ".more", "characters other than"},
		{"orrery1." + hash + "." + secret + " " + secret, "characters other than"},
	} {
		_, err := ParseToken(c.in)
		if err == nil {
			t.Errorf("ParseToken(%q) accepted", c.in)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, c.want) {
			t.Errorf("ParseToken(%q) = %q, want it to say %q", c.in, msg, c.want)
		}
		if strings.Contains(msg, secret[:10]) || strings.Contains(msg, "\n") {
			t.Errorf("ParseToken(%q) error %q quotes the secret or is not one line", c.in, msg)
		}
	}
}

func TestTokenRedacted(t *testing.T) {
	a, _ := open(t)
	tok := token(t, a)
	wrapped := struct {
		Tok Token
		P   *Token
	}{tok, &tok}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T"} {
		out = append(out, fmt.Sprintf(verb, tok), fmt.Sprintf(verb, &tok), fmt.Sprintf(verb, wrapped))
	}
	out = append(out, fmt.Sprint(tok), fmt.Sprintln(tok), tok.String(), tok.GoString())
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		slog.New(h).Info("joined", "token", tok, "ptr", &tok)
	}
	out = append(out, logs.String())
	js, err := json.Marshal(wrapped)
	if err != nil {
		t.Fatal(err)
	}
	out = append(out, string(js))
	for _, s := range out {
		if strings.Contains(s, tok.Secret) || strings.Contains(s, fmt.Sprintf("%x", tok.Secret)) {
			t.Errorf("secret printed: %s", s)
		}
	}
	if !strings.Contains(tok.String(), "REDACTED") || !strings.Contains(logs.String(), "REDACTED") {
		t.Errorf("redacted forms do not say so: %s / %s", tok.String(), logs.String())
	}
}

func TestMissingSecretFile(t *testing.T) {
	a, dir := open(t)
	if err := os.Remove(filepath.Join(dir, "pki", secretFile)); err != nil {
		t.Fatal(err)
	}
	if a.CheckSecret("anything-anything-anything") {
		t.Error("CheckSecret accepted a secret with no secret file")
	}
	if _, err := a.Token(); err == nil || !strings.Contains(err.Error(), "--rotate") {
		t.Errorf("Token without a secret file: %v", err)
	}
	// Reopening makes a new one.
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !a.CheckSecret(token(t, b).Secret) {
		t.Error("new secret not seen")
	}
	if _, err := os.Stat(filepath.Join(dir, "pki", secretFile)); errors.Is(err, fs.ErrNotExist) {
		t.Error("no new secret file")
	}
}
