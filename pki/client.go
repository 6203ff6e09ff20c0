package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// ErrCAMismatch is the error of a handshake whose server shows no
// certificate authority with the token's hash: it is not the root the
// token came from.
var ErrCAMismatch = errors.New("the root's certificate authority does not match the token")

// ClientConfig returns the TLS configuration with which a node connects
// to the root: TLS 1.3 only, trusting nothing but the certificate
// authority whose public key hash the token carries. The server must show
// that CA in its chain and a leaf it signed for server authentication
// naming serverName (a DNS name or IP address; empty skips the name
// check). cert is the node's identity, or nil while it enrols.
// NextProtos is left to the caller (such as protocol.ALPN).
func ClientConfig(tok Token, serverName string, cert *tls.Certificate) *tls.Config {
	serverName = strings.TrimSuffix(strings.TrimPrefix(serverName, "["), "]")
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		MaxVersion: tls.VersionTLS13,
		ServerName: serverName,
		// The standard verification against the system's roots does not
		// apply: the root's CA is its own. InsecureSkipVerify turns that
		// off only; VerifyConnection below, which crypto/tls runs on
		// every handshake (resumed ones included) and which fails the
		// handshake on any error, verifies the server against the CA
		// pinned by the token's hash.
		InsecureSkipVerify: true,
		VerifyConnection: func(cs tls.ConnectionState) error {
			return verifyServer(tok.CAHash, serverName, cs.PeerCertificates)
		},
	}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return cfg
}

// verifyServer verifies the root's certificate chain against the CA
// whose SubjectPublicKeyInfo hashes to caHash.
func verifyServer(caHash [32]byte, serverName string, chain []*x509.Certificate) error {
	if len(chain) == 0 {
		return errors.New("the root showed no certificate")
	}
	var ca *x509.Certificate
	for _, c := range chain {
		if c.IsCA && sha256.Sum256(c.RawSubjectPublicKeyInfo) == caHash {
			ca = c
			break
		}
	}
	if ca == nil {
		return ErrCAMismatch
	}
	leaf := chain[0]
	if leaf.IsCA {
		return errors.New("the root showed its certificate authority instead of a server certificate")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)
	if _, err := leaf.Verify(x509.VerifyOptions{
		Roots:     roots,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		return fmt.Errorf("the root's certificate: %w", err)
	}
	if serverName == "" {
		return nil
	}
	if err := leaf.VerifyHostname(serverName); err != nil {
		names := append([]string(nil), leaf.DNSNames...)
		for _, ip := range leaf.IPAddresses {
			names = append(names, ip.String())
		}
		return fmt.Errorf("the root's certificate is not valid for %q (it names %s): connect by one of those names, or start the root with --advertise %s: %w",
			serverName, strings.Join(names, ", "), serverName, err)
	}
	return nil
}

// NewNodeKey makes a node's key pair (ECDSA P-256) and returns the
// private key and the public key in PKIX DER, as Hello.PublicKey carries
// it.
func NewNodeKey() (crypto.Signer, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("node key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("node key: %w", err)
	}
	return key, pub, nil
}

// NodeCertificate joins a node's key and the certificate the root issued
// it at enrolment (Enrolled.Cert, DER) into the identity ClientConfig
// shows.
func NodeCertificate(key crypto.Signer, certDER []byte) tls.Certificate {
	c := tls.Certificate{Certificate: [][]byte{certDER}, PrivateKey: key}
	if leaf, err := x509.ParseCertificate(certDER); err == nil {
		c.Leaf = leaf
	}
	return c
}
