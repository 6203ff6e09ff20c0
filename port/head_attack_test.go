package port_test

// Attacks at the port on the grid's heads: a node that joined with the
// join token passing for a cluster head, and a fake root behind the Unix
// socket a head dials (unix:PATH, where no host name is checked).

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"orrery/pki"
	"orrery/port"
	"orrery/protocol"
)

// joinedHead returns whether the last node that joined was marked a
// cluster head the root started.
func (f *fixture) joinedHead() bool {
	f.d.mu.Lock()
	defer f.d.mu.Unlock()
	return f.d.joined[len(f.d.joined)-1].Head
}

// TestAttackJoinTokenIsNoHead: only a node enrolled with the head token
// (which the root hands the heads it starts, and never prints) is marked
// a head for the dispatcher, also when it comes back with its
// certificate; a node of the join token is not, whatever name it asks
// for and whatever it registers.
func TestAttackJoinTokenIsNoHead(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})
	dir := t.TempDir()

	agentKeys := filepath.Join(dir, "agent.pem")
	evil := f.client("monash")
	evil.KeyFile = agentKeys
	f.join(evil).Close()
	if f.joinedHead() {
		t.Fatal("a node enrolled with the join token is marked a cluster head")
	}
	again := f.client("monash")
	again.KeyFile = agentKeys
	f.join(again).Close()
	if f.joinedHead() {
		t.Fatal("a node with the certificate the join token got is marked a cluster head")
	}

	s, err := f.auth.HeadToken()
	if err != nil {
		t.Fatal(err)
	}
	htok, err := pki.ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	if htok.Secret == f.tok.Secret || htok.CAHash != f.tok.CAHash {
		t.Fatal("the head token is the join token, or names another CA")
	}
	headKeys := filepath.Join(dir, "head.pem")
	hd := f.client("monash")
	hd.Token, hd.KeyFile = htok, headKeys
	f.join(hd).Close()
	if !f.joinedHead() {
		t.Fatal("a node enrolled with the head token is not marked a cluster head")
	}
	back := f.client("monash")
	back.Token, back.KeyFile = f.tok, headKeys // its certificate, no secret sent
	f.join(back).Close()
	if !f.joinedHead() {
		t.Fatal("a head that came back with its certificate is not marked a cluster head")
	}
}

// fakeRoot serves TLS with cert on a Unix socket, as a local user who
// planted a socket (or rewrote DIR/root) to catch a head would; it
// counts the bytes a client sends after the handshake (a hello carrying
// the join secret).
func fakeRoot(t *testing.T, cert tls.Certificate) (string, *atomic.Int64) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "root.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var got atomic.Int64
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{protocol.ALPN}, MinVersion: tls.VersionTLS13}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil {
					return
				}
				buf := make([]byte, 4096)
				for {
					n, err := tc.Read(buf)
					got.Add(int64(n))
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return sock, &got
}

// TestAttackFakeRootOnSocket: a head dials unix:PATH, where the name
// checked is "localhost"; a fake root there is refused by the token's CA
// hash and the server-only key usage: one with its own CA, and one that
// shows a node's certificate signed by the real CA (a compromised node's
// own key and certificate). Neither hears the hello, so neither learns
// the secret.
func TestAttackFakeRootOnSocket(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})
	keys := filepath.Join(t.TempDir(), "node.pem")
	n := f.client("compromised")
	n.KeyFile = keys
	f.join(n).Close()
	pemData, err := os.ReadFile(keys)
	if err != nil {
		t.Fatal(err)
	}
	nodeCert, err := tls.X509KeyPair(pemData, pemData)
	if err != nil {
		t.Fatal(err)
	}
	nodeCert.Certificate = append(nodeCert.Certificate, f.auth.CACert().Raw)

	for name, cert := range map[string]tls.Certificate{"own CA": selfCA(t), "a node's certificate": nodeCert} {
		sock, got := fakeRoot(t, cert)
		c := f.client("victim-head")
		c.Addr = "unix:" + sock
		_, err := c.Dial(context.Background())
		if err == nil {
			t.Errorf("%s: a head dialled a fake root on its socket", name)
		}
		time.Sleep(50 * time.Millisecond) // let the fake root read what may have come
		if n := got.Load(); n != 0 {
			t.Errorf("%s: the fake root read %d bytes after the handshake", name, n)
		}
	}
}

// selfCA is a server certificate for "localhost" signed by a CA of its
// own.
func selfCA(t *testing.T) tls.Certificate {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fake CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "orrery root"}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, leaf, ca, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}
}
