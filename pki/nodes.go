package pki

import (
	"bufio"
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"
)

// maxNodeID is the longest node ID.
const maxNodeID = 64

// ErrUnknownNode is the error of Revoke for a node ID that never
// enrolled.
var ErrUnknownNode = errors.New("no such enrolled node")

// ErrRevoked is the error of VerifyNode for a node whose identity was
// revoked.
var ErrRevoked = errors.New("the node's identity was revoked (orrery token --revoke); enrol it again with a new token")

// EnrolledNode is one enrolled node identity.
type EnrolledNode struct {
	ID       string    // the node ID: the CN of its certificate
	Serial   string    // its certificate's serial number, hexadecimal
	Enrolled time.Time // when it enrolled
	Revoked  bool      // whether it was revoked
}

// Enrol gives a node that proved it holds the join secret its identity:
// a unique node ID made from the name it asks for, and a client
// certificate for its public key (PKIX DER: ECDSA P-256 or Ed25519),
// signed by the CA, with the ID as common name. The name is reduced to
// the characters A-Z a-z 0-9 . _ - and 64 of them ("node" when nothing
// is left); when another identity holds it, the ID is name-2, name-3, …
// The node is recorded in the nodes file before the certificate is
// returned. The caller checks the secret first (CheckSecret).
func (a *Authority) Enrol(name string, pub []byte) (nodeID string, certDER []byte, err error) {
	return a.enrol(name, pub, nil)
}

// enrol is Enrol, with ou as the certificate's organizational units.
func (a *Authority) enrol(name string, pub []byte, ou []string) (nodeID string, certDER []byte, err error) {
	key, err := parseNodeKey(pub)
	if err != nil {
		return "", nil, fmt.Errorf("enrol: %w", err)
	}
	unlock, err := lockDir(a.dir)
	if err != nil {
		return "", nil, fmt.Errorf("enrol: %w", err)
	}
	defer unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	nodes, err := a.loadNodes()
	if err != nil {
		return "", nil, fmt.Errorf("enrol: %w", err)
	}
	id := uniqueID(SanitizeName(name), nodes)
	der, cert, err := a.issue(&x509.Certificate{
		Subject:     pkix.Name{Organization: []string{"orrery"}, OrganizationalUnit: ou, CommonName: id},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}, key)
	if err != nil {
		return "", nil, fmt.Errorf("enrol %s: %w", id, err)
	}
	all := append(nodes[:len(nodes):len(nodes)], EnrolledNode{ID: id, Serial: cert.SerialNumber.Text(16), Enrolled: a.now().UTC()})
	if err := writeFileAtomic(a.dir, nodesFile, formatNodes(all)); err != nil {
		return "", nil, fmt.Errorf("enrol %s: record: %w", id, err)
	}
	return id, der, nil
}

// parseNodeKey parses a node's public key and accepts ECDSA P-256 and
// Ed25519 keys only.
func parseNodeKey(der []byte) (crypto.PublicKey, error) {
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("node public key: %w", err)
	}
	switch k := k.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("node public key: ECDSA on curve %s; want ECDSA P-256 or Ed25519", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	case *rsa.PublicKey:
		return nil, errors.New("node public key: RSA; want ECDSA P-256 or Ed25519")
	default:
		return nil, fmt.Errorf("node public key: %T; want ECDSA P-256 or Ed25519", k)
	}
	return k, nil
}

// SanitizeName turns the name a node asks for into a node ID: characters
// other than A-Z a-z 0-9 . _ - become '-', leading dots and dashes are
// dropped, at most 64 characters are kept, and an empty result is
// "node".
func SanitizeName(name string) string {
	var b strings.Builder
	for _, r := range name {
		if r < 128 && isIDChar(byte(r)) {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	id := strings.TrimLeft(b.String(), ".-")
	if len(id) > maxNodeID {
		id = id[:maxNodeID]
	}
	if id == "" {
		return "node"
	}
	return id
}

// isIDChar reports whether c may appear in a node ID.
func isIDChar(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

// validID reports whether id is a node ID SanitizeName could return.
func validID(id string) bool {
	if id == "" || len(id) > maxNodeID || id[0] == '.' || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !isIDChar(id[i]) {
			return false
		}
	}
	return true
}

// uniqueID returns base, or base-2, base-3, … the first that no enrolled
// identity (revoked ones included) holds, within 64 characters.
func uniqueID(base string, nodes []EnrolledNode) string {
	taken := make(map[string]bool, len(nodes))
	for _, n := range nodes {
		taken[strings.ToLower(n.ID)] = true
	}
	if !taken[strings.ToLower(base)] {
		return base
	}
	for i := 2; ; i++ {
		suffix := "-" + strconv.Itoa(i)
		b := base
		if len(b)+len(suffix) > maxNodeID {
			b = b[:maxNodeID-len(suffix)]
		}
		if id := b + suffix; !taken[strings.ToLower(id)] {
			return id
		}
	}
}

// VerifyNode authenticates a node by the certificate chain it showed in
// the TLS handshake (tls.ConnectionState.PeerCertificates): the first
// certificate must be signed by the CA, valid now, meant for client
// authentication and issued to an enrolled node that is not revoked
// (ErrRevoked). It returns the node ID.
func (a *Authority) VerifyNode(chain []*x509.Certificate) (nodeID string, err error) {
	if len(chain) == 0 {
		return "", errors.New("verify node: no client certificate")
	}
	leaf := chain[0]
	roots := x509.NewCertPool()
	roots.AddCert(a.ca)
	_, err = leaf.Verify(x509.VerifyOptions{
		Roots:       roots,
		CurrentTime: a.now(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "", fmt.Errorf("verify node: %w", err)
	}
	id := leaf.Subject.CommonName
	if !validID(id) {
		return "", errors.New("verify node: the certificate names no node ID")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	nodes, err := a.loadNodes()
	if err != nil {
		return "", fmt.Errorf("verify node %s: %w", id, err)
	}
	serial := leaf.SerialNumber.Text(16)
	enrolled := false
	for _, n := range nodes {
		enrolled = enrolled || n.ID == id && n.Serial == serial
	}
	if !enrolled {
		return "", fmt.Errorf("verify node %s: the certificate is not one this root issued at enrolment", id)
	}
	revoked, err := a.loadRevoked()
	if err != nil {
		return "", fmt.Errorf("verify node %s: %w", id, err)
	}
	if revoked[id] {
		return "", fmt.Errorf("verify node %s: %w", id, ErrRevoked)
	}
	return id, nil
}

// Revoke revokes an enrolled node's identity: VerifyNode refuses it from
// now on, in this process and in any other that has the state directory
// open. It is an error (ErrUnknownNode) when no node enrolled as nodeID;
// revoking a node twice is not.
func (a *Authority) Revoke(nodeID string) error {
	unlock, err := lockDir(a.dir)
	if err != nil {
		return fmt.Errorf("revoke %s: %w", nodeID, err)
	}
	defer unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	nodes, err := a.loadNodes()
	if err != nil {
		return fmt.Errorf("revoke %s: %w", nodeID, err)
	}
	found := false
	for _, n := range nodes {
		found = found || n.ID == nodeID
	}
	if !found {
		return fmt.Errorf("revoke %q: %w", nodeID, ErrUnknownNode)
	}
	revoked, err := a.loadRevoked()
	if err != nil {
		return fmt.Errorf("revoke %s: %w", nodeID, err)
	}
	if revoked[nodeID] {
		return nil
	}
	data, err := readFile(a.dir, revokedFile)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("revoke %s: %w", nodeID, err)
	}
	if len(data) > 0 && data[len(data)-1] != '\n' {
		data = append(data, '\n')
	}
	data = fmt.Appendf(data, "%s %s\n", nodeID, a.now().UTC().Format(time.RFC3339))
	if err := writeFileAtomic(a.dir, revokedFile, data); err != nil {
		return fmt.Errorf("revoke %s: %w", nodeID, err)
	}
	_, err = a.loadRevoked()
	return err
}

// Revoked reports whether nodeID was revoked, reading the revoked file
// again when another process changed it.
func (a *Authority) Revoked(nodeID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	revoked, err := a.loadRevoked()
	if err != nil {
		return true // fail closed: an unreadable list revokes everyone
	}
	return revoked[nodeID]
}

// Nodes lists the enrolled nodes in the order they enrolled, each with
// whether it was revoked.
func (a *Authority) Nodes() ([]EnrolledNode, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	nodes, err := a.loadNodes()
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	revoked, err := a.loadRevoked()
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	out := make([]EnrolledNode, len(nodes))
	for i, n := range nodes {
		n.Revoked = revoked[n.ID]
		out[i] = n
	}
	return out, nil
}

// loadNodes returns the enrolled nodes, reading the nodes file again
// when it changed. The caller holds a.mu; the slice is shared.
func (a *Authority) loadNodes() ([]EnrolledNode, error) {
	return reread(&a.nodes, a.dir, nodesFile, func(data []byte, _ bool) ([]EnrolledNode, error) {
		return parseNodes(data)
	})
}

// loadRevoked returns the set of revoked node IDs, reading the revoked
// file again when it changed. The caller holds a.mu.
func (a *Authority) loadRevoked() (map[string]bool, error) {
	return reread(&a.revoked, a.dir, revokedFile, func(data []byte, _ bool) (map[string]bool, error) {
		m := map[string]bool{}
		err := eachLine(revokedFile, data, 2, func(f []string) error {
			m[f[0]] = true
			return nil
		})
		return m, err
	})
}

// parseNodes parses the nodes file: one line per enrolment, "ID SERIAL
// TIME" (serial in hexadecimal, time in RFC 3339).
func parseNodes(data []byte) ([]EnrolledNode, error) {
	var nodes []EnrolledNode
	err := eachLine(nodesFile, data, 3, func(f []string) error {
		t, err := time.Parse(time.RFC3339, f[2])
		if err != nil {
			return fmt.Errorf("time %q: %w", f[2], err)
		}
		nodes = append(nodes, EnrolledNode{ID: f[0], Serial: f[1], Enrolled: t})
		return nil
	})
	return nodes, err
}

// formatNodes writes the nodes file.
func formatNodes(nodes []EnrolledNode) []byte {
	var b bytes.Buffer
	for _, n := range nodes {
		fmt.Fprintf(&b, "%s %s %s\n", n.ID, n.Serial, n.Enrolled.UTC().Format(time.RFC3339))
	}
	return b.Bytes()
}

// eachLine calls fn with the fields of each non-empty line of data, which
// must have n fields, the first a node ID.
func eachLine(name string, data []byte, n int, fn func(fields []string) error) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) != n || !validID(f[0]) {
			return fmt.Errorf("%s line %d: malformed", name, line)
		}
		if err := fn(f); err != nil {
			return fmt.Errorf("%s line %d: %w", name, line, err)
		}
	}
	return sc.Err()
}
