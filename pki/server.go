package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
)

// ServerConfig returns the TLS configuration of the root's port: TLS 1.3
// only, with a server certificate (chain: leaf, then the CA) that names
// every one of names, each a DNS name or an IP address (the listen host,
// the machine's host name and addresses, the advertised name). The
// certificate is kept in server.crt and server.key and reused while it
// names them all and has more than 30 days left; otherwise a new one is
// issued. A handshake that finds less than 30 days left renews it, so a
// server that runs for months needs no restart.
//
// The configuration requests a client certificate but does not require
// or verify it (tls.RequestClientCert): a node that is enrolling has
// none yet. The caller must authenticate every connection before serving
// it: VerifyNode on the peer's certificates, or, for a node without one,
// CheckSecret on the join secret it sends. NextProtos is left to the
// caller, who sets the application protocols the port speaks (such as
// protocol.ALPN).
func (a *Authority) ServerConfig(names []string) (*tls.Config, error) {
	dns, ips, err := splitNames(names)
	if err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	s := &serverCert{a: a, dns: dns, ips: ips}
	if err := s.load(); err != nil {
		return nil, fmt.Errorf("server certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:     tls.VersionTLS13,
		MaxVersion:     tls.VersionTLS13,
		ClientAuth:     tls.RequestClientCert,
		GetCertificate: s.get,
	}, nil
}

// serverCert is the server certificate of one ServerConfig.
type serverCert struct {
	a   *Authority
	dns []string // lower case, sorted
	ips []net.IP

	mu   sync.Mutex
	cert *tls.Certificate
}

// get returns the server certificate for a handshake, renewing it first
// when less than 30 days are left.
func (s *serverCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.a.needsRenewal(s.cert.Leaf) {
		if err := s.loadLocked(); err != nil {
			// Keep serving the old certificate while it is valid.
			if s.a.now().Before(s.cert.Leaf.NotAfter) {
				return s.cert, nil
			}
			return nil, fmt.Errorf("renew server certificate: %w", err)
		}
	}
	return s.cert, nil
}

// load sets s.cert: the certificate on disk when it will do, otherwise a
// new one.
func (s *serverCert) load() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.loadLocked()
}

func (s *serverCert) loadLocked() error {
	a := s.a
	unlock, err := lockDir(a.dir)
	if err != nil {
		return err
	}
	defer unlock()
	if cert, err := a.readServerCert(); err == nil && s.suits(cert.Leaf) {
		s.cert = cert
		return nil
	}
	// Missing, damaged, issued by another authority, short of a name or
	// near its end: issue a new one.
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	der, leaf, err := a.issue(&x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"orrery"}, CommonName: "orrery root"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    s.dns,
		IPAddresses: s.ips,
	}, key.Public())
	if err != nil {
		return err
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(a.dir, serverKeyFile, keyPEM); err != nil {
		return err
	}
	if err := writeFileAtomic(a.dir, serverCertFile, certPEM(der)); err != nil {
		return err
	}
	s.cert = &tls.Certificate{Certificate: [][]byte{der, a.ca.Raw}, PrivateKey: key, Leaf: leaf}
	return nil
}

// suits reports whether leaf names all of s's names, was issued by the
// current authority and need not be renewed yet.
func (s *serverCert) suits(leaf *x509.Certificate) bool {
	if leaf.CheckSignatureFrom(s.a.ca) != nil || s.a.needsRenewal(leaf) {
		return false
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return false
	}
	for _, n := range s.dns {
		if !slices.ContainsFunc(leaf.DNSNames, func(d string) bool { return strings.EqualFold(d, n) }) {
			return false
		}
	}
	for _, ip := range s.ips {
		if !slices.ContainsFunc(leaf.IPAddresses, ip.Equal) {
			return false
		}
	}
	return true
}

// needsRenewal reports whether leaf has less than 30 days left (and a
// new certificate would last longer: none outlives the authority).
func (a *Authority) needsRenewal(leaf *x509.Certificate) bool {
	now := a.now()
	expiring := leaf.NotAfter.Sub(now) < renewBefore && leaf.NotAfter.Before(a.ca.NotAfter)
	return expiring || now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter)
}

// readServerCert reads server.crt and server.key.
func (a *Authority) readServerCert() (*tls.Certificate, error) {
	leaf, err := readCert(a.dir, serverCertFile)
	if err != nil {
		return nil, err
	}
	key, err := readKey(a.dir, serverKeyFile)
	if err != nil {
		return nil, err
	}
	if !publicKeyEqual(key.Public(), leaf.PublicKey) {
		return nil, fmt.Errorf("%s does not hold the key of %s", serverKeyFile, serverCertFile)
	}
	return &tls.Certificate{Certificate: [][]byte{leaf.Raw, a.ca.Raw}, PrivateKey: key, Leaf: leaf}, nil
}

// splitNames sorts names into DNS names (lower case, without a final
// dot) and IP addresses (brackets removed), dropping duplicates.
func splitNames(names []string) (dns []string, ips []net.IP, err error) {
	for _, n := range names {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		if ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(n, "["), "]")); ip != nil {
			if !slices.ContainsFunc(ips, ip.Equal) {
				ips = append(ips, ip)
			}
			continue
		}
		n = strings.ToLower(strings.TrimSuffix(n, "."))
		if !validDNSName(n) {
			return nil, nil, fmt.Errorf("%q is neither a DNS name nor an IP address", n)
		}
		if !slices.Contains(dns, n) {
			dns = append(dns, n)
		}
	}
	if len(dns) == 0 && len(ips) == 0 {
		return nil, nil, errors.New("no names to put in it")
	}
	slices.Sort(dns)
	return dns, ips, nil
}

// validDNSName reports whether n is a plausible DNS name: labels of
// letters, digits, '-' and '_', separated by dots.
func validDNSName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
