package pki

import (
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// Cluster heads. A grid's root hands each head it starts a head token:
// the CA's hash with the head secret (pki/head.secret), which `orrery
// token` never prints. A node that enrols with it gets a certificate
// whose subject carries HeadOU, and only a node that shows one may
// stand for a cluster at the root (a head holds as many attempts as it
// asks for, with no slow start): a node that joined with the join token
// cannot claim to be a head.

// headSecretFile holds the head secret (made on first use).
const headSecretFile = "head.secret"

// HeadOU is the organizational unit in the subject of a cluster head's
// certificate.
const HeadOU = "orrery cluster head"

// HeadToken returns the token the root hands a cluster head it starts
// (on the head's standard input, never printed): the CA's hash and the
// head secret, which it makes on first use.
func (a *Authority) HeadToken() (string, error) {
	unlock, err := lockDir(a.dir)
	if err != nil {
		return "", fmt.Errorf("head token: %w", err)
	}
	defer unlock()
	s, err := a.headSecret()
	if errors.Is(err, fs.ErrNotExist) {
		if s, err = newSecret(); err == nil {
			err = writeFileAtomic(a.dir, headSecretFile, []byte(s+"\n"))
		}
	}
	if err != nil {
		return "", fmt.Errorf("head token: %w", err)
	}
	return Token{CAHash: a.caHash, Secret: s}.Encode(), nil
}

// headSecret reads the head secret.
func (a *Authority) headSecret() (string, error) {
	b, err := readFile(a.dir, headSecretFile)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if err := checkSecret(s); err != nil {
		return "", fmt.Errorf("%s: %w", headSecretFile, err)
	}
	return s, nil
}

// CheckHeadSecret reports whether s is the head secret, in the same time
// whatever s is (see CheckSecret). No head secret yet: false.
func (a *Authority) CheckHeadSecret(s string) bool {
	cur, err := a.headSecret()
	if err != nil || s == "" {
		return false
	}
	x, y := sha256.Sum256([]byte(s)), sha256.Sum256([]byte(cur))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1
}

// EnrolHead enrols a cluster head as Enrol does a node (the caller
// checked the head secret: CheckHeadSecret); its certificate carries
// HeadOU.
func (a *Authority) EnrolHead(name string, pub []byte) (nodeID string, certDER []byte, err error) {
	return a.enrol(name, pub, []string{HeadOU})
}

// IsHead reports whether a node's certificate, which VerifyNode
// accepted, was issued to a cluster head (EnrolHead).
func IsHead(leaf *x509.Certificate) bool {
	return leaf != nil && slices.Contains(leaf.Subject.OrganizationalUnit, HeadOU)
}
