package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Validity of the certificates.
const (
	// clockSkew is how far before its issue every certificate starts to
	// be valid, so a peer whose clock is a little behind accepts it.
	clockSkew = time.Hour
	// caValidity is the lifetime of the certificate authority.
	caValidity = 10 * 365 * 24 * time.Hour
	// leafValidity is the lifetime of server and node certificates.
	leafValidity = 365 * 24 * time.Hour
	// renewBefore is how long before it expires the server certificate
	// is replaced.
	renewBefore = 30 * 24 * time.Hour
)

// Authority is the root's key material in a state directory: the
// certificate authority, the join secret, the server certificate, the
// enrolled and revoked nodes, and the secrets of the web page and
// /metrics. Its methods are safe for concurrent use, and other processes
// may change the same directory (rotate a secret, revoke a node) while
// it is open: what they change is read again.
type Authority struct {
	dir    string           // the pki directory
	now    func() time.Time // the clock; tests replace it
	ca     *x509.Certificate
	caKey  crypto.Signer
	caHash [32]byte // SHA-256 of the CA's SubjectPublicKeyInfo

	mu      sync.Mutex
	secret  cached[string]
	nodes   cached[[]EnrolledNode]
	revoked cached[map[string]bool]
	viewer  cached[webSecret] // viewer.secret and its cookie
	metrics cached[webSecret] // metrics.secret
}

// cached is the content of a file as of one stamp.
type cached[T any] struct {
	stamp stamp
	read  bool
	val   T
}

// Open opens the key material in stateDir/pki, creating the state
// directory, the pki directory, the certificate authority and the join
// secret when they are missing. Opening the same directory again, from
// this process or another, gives the same authority and secret; two
// processes that open a fresh directory at once still create one
// authority. Open refuses a pki directory that is a symbolic link or
// belongs to another user, and makes the directory 0700 and its files
// 0600 when they are not.
func Open(stateDir string) (*Authority, error) {
	if err := os.MkdirAll(stateDir, dirMode); err != nil {
		return nil, fmt.Errorf("open key material: %w", err)
	}
	dir := filepath.Join(stateDir, "pki")
	if err := checkVersion(stateDir, dir); err != nil {
		return nil, err // before anything in the directory changes
	}
	if err := preparePKIDir(dir); err != nil {
		return nil, fmt.Errorf("open key material: %w", err)
	}
	a := &Authority{dir: dir, now: time.Now}
	if err := a.init(); err != nil {
		return nil, fmt.Errorf("open key material in %s: %w", dir, err)
	}
	return a, nil
}

// init loads the authority and the secret, creating what is missing
// under the directory's lock.
func (a *Authority) init() error {
	unlock, err := lockDir(a.dir)
	if err != nil {
		return err
	}
	defer unlock()
	// The lock file and anything left by a crash get their modes fixed
	// too, now that no one else changes the directory.
	if err := preparePKIDir(a.dir); err != nil {
		return err
	}
	if err := checkVersion(filepath.Dir(a.dir), a.dir); err != nil {
		return err // written meanwhile by another build
	}
	if err := writeVersion(a.dir); err != nil {
		return fmt.Errorf("record the key material's version: %w", err)
	}
	haveCert, err := exists(a.dir, caCertFile)
	if err != nil {
		return err
	}
	if !haveCert {
		// No certificate: nothing was ever issued, so a key alone (a
		// crash between the two writes) is replaced too.
		if err := a.createCA(); err != nil {
			return fmt.Errorf("create certificate authority: %w", err)
		}
	} else if err := a.loadCA(); err != nil {
		return err
	}
	haveSecret, err := exists(a.dir, secretFile)
	if err != nil {
		return err
	}
	if !haveSecret {
		if err := writeSecret(a.dir); err != nil {
			return fmt.Errorf("create join secret: %w", err)
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err = a.currentSecret()
	return err
}

// createCA makes a new certificate authority and writes ca.key and
// ca.crt.
func (a *Authority) createCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	serial, err := newSerial()
	if err != nil {
		return err
	}
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"orrery"}, CommonName: "orrery root CA"},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return err
	}
	keyPEM, err := marshalKey(key)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(a.dir, caKeyFile, keyPEM); err != nil {
		return err
	}
	if err := writeFileAtomic(a.dir, caCertFile, certPEM(der)); err != nil {
		return err
	}
	return a.loadCA()
}

// loadCA reads ca.crt and ca.key and checks that they belong together.
func (a *Authority) loadCA() error {
	cert, err := readCert(a.dir, caCertFile)
	if err != nil {
		return err
	}
	if !cert.IsCA {
		return fmt.Errorf("%s: not a certificate authority", caCertFile)
	}
	key, err := readKey(a.dir, caKeyFile)
	if err != nil {
		return err
	}
	if !publicKeyEqual(key.Public(), cert.PublicKey) {
		return fmt.Errorf("%s does not hold the key of %s", caKeyFile, caCertFile)
	}
	a.ca, a.caKey = cert, key
	a.caHash = sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return nil
}

// CAHash returns the SHA-256 hash of the certificate authority's public
// key (its SubjectPublicKeyInfo, DER), which the join token carries.
func (a *Authority) CAHash() [32]byte { return a.caHash }

// CACert returns the certificate authority's certificate.
func (a *Authority) CACert() *x509.Certificate { return a.ca }

// issue signs a certificate for pub from tmpl, filling in the serial
// number and the validity: from an hour ago (clock skew) for a year,
// but not past the authority's own end.
func (a *Authority) issue(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, *x509.Certificate, error) {
	serial, err := newSerial()
	if err != nil {
		return nil, nil, err
	}
	now := a.now()
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-clockSkew)
	tmpl.NotAfter = now.Add(leafValidity)
	if tmpl.NotAfter.After(a.ca.NotAfter) {
		tmpl.NotAfter = a.ca.NotAfter
	}
	if !tmpl.NotAfter.After(now) {
		return nil, nil, errors.New("the certificate authority has expired")
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.BasicConstraintsValid = true
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ca, pub, a.caKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, err
	}
	return der, cert, nil
}

// newSerial returns a random, non-zero 128-bit serial number.
func newSerial() (*big.Int, error) {
	var b [16]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		if n := new(big.Int).SetBytes(b[:]); n.Sign() > 0 {
			return n, nil
		}
	}
}

// marshalKey encodes a private key as PKCS #8 PEM.
func marshalKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// certPEM encodes a certificate as PEM.
func certPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// readCert reads one PEM certificate from dir/name.
func readCert(dir, name string) (*x509.Certificate, error) {
	data, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%s: no PEM certificate", name)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cert, nil
}

// readKey reads a PEM PKCS #8 private key from dir/name. The error never
// quotes the file.
func readKey(dir, name string) (crypto.Signer, error) {
	data, err := readFile(dir, name)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PEM private key", name)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: malformed private key", name)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: unusable private key type %T", name, k)
	}
	return signer, nil
}

// publicKeyEqual reports whether two public keys are the same.
func publicKeyEqual(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// reread returns c's value, read again with load when dir/name changed
// since it was last read. The caller holds a.mu.
func reread[T any](c *cached[T], dir, name string, load func(data []byte, exists bool) (T, error)) (T, error) {
	st, err := stampOf(dir, name)
	if err != nil {
		return c.val, err
	}
	if c.read && st == c.stamp {
		return c.val, nil
	}
	var data []byte
	if st.exists {
		data, err = readFile(dir, name)
		if errors.Is(err, fs.ErrNotExist) {
			st = stamp{} // removed in between
		} else if err != nil {
			return c.val, err
		}
	}
	v, err := load(data, st.exists)
	if err != nil {
		return c.val, err
	}
	c.stamp, c.read, c.val = st, true, v
	return v, nil
}
