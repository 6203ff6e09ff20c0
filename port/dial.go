package port

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"orrery/agent"
	"orrery/pki"
	"orrery/protocol"
)

// Client is a node agent's way to the root's port: it verifies the root
// against the join token's CA hash, enrols once with the token's secret,
// and from then on shows the certificate it was given. Its Dial is an
// agent.Dialer.
type Client struct {
	// Addr is the root's HOST:PORT, or unix:PATH for a Unix socket
	// that leads to it (an SSH-forwarded socket on a cluster's head).
	Addr  string
	Token pki.Token
	Name  string // the node name to ask for when enrolling
	// Timeout bounds the connection, the handshake and the enrolment
	// (default 30 s).
	Timeout time.Duration
	// KeyFile, when set, keeps the client's key and the certificate it
	// was enrolled with (PEM, mode 0600), so that a process that starts
	// again (a cluster head) shows the same identity instead of
	// enrolling anew.
	KeyFile string

	mu   sync.Mutex
	key  crypto.Signer
	pub  []byte
	cert *tls.Certificate
	node string
}

// Node is the node ID the root enrolled this client as ("" before).
func (c *Client) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.node
}

// Dial connects, authenticates and returns the connection, ready for the
// agent protocol. An error wraps agent.ErrRefused when the root refused
// the credentials.
func (c *Client) Dial(ctx context.Context) (*protocol.Conn, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c.mu.Lock()
	if c.key == nil {
		key, pub, err := pki.NewNodeKey()
		if err != nil {
			c.mu.Unlock()
			return nil, err
		}
		c.key, c.pub = key, pub
	}
	if c.cert == nil && c.KeyFile != "" {
		if err := c.load(); err != nil {
			c.mu.Unlock()
			return nil, err
		}
	}
	cert := c.cert
	c.mu.Unlock()
	network, addr, host := "tcp", c.Addr, ""
	if path, ok := strings.CutPrefix(c.Addr, "unix:"); ok {
		// A forwarded socket that leads to the root's port: the
		// certificate is checked against the token's CA, and the name
		// every root certificate carries.
		network, addr, host = "unix", path, "localhost"
	} else {
		var err error
		if host, _, err = net.SplitHostPort(c.Addr); err != nil {
			return nil, fmt.Errorf("--connect %q: %w", c.Addr, err)
		}
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	tc := pki.ClientConfig(c.Token, host, cert)
	tc.NextProtos = []string{protocol.ALPN}
	conn := tls.Client(raw, tc)
	if err := conn.HandshakeContext(ctx); err != nil {
		raw.Close()
		if isVerifyError(err) {
			return nil, fmt.Errorf("%w: %w", agent.ErrRefused, err)
		}
		return nil, fmt.Errorf("TLS handshake with %s: %w", c.Addr, err)
	}
	pc := protocol.NewConnLimits(conn, protocol.NodeLimits)
	hello := &protocol.Hello{Version: protocol.Version, Name: c.Name}
	if cert == nil {
		hello.Secret, hello.PublicKey = c.Token.Secret, c.pub
	}
	if err := pc.Send(&protocol.Msg{Type: protocol.TypeHello, Hello: hello}); err != nil {
		raw.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	{
		m, err := pc.Recv()
		if err != nil {
			raw.Close()
			return nil, fmt.Errorf("enrol: %w", err)
		}
		if m.Type == protocol.TypeRefused {
			raw.Close()
			return nil, fmt.Errorf("%w: %s", agent.ErrRefused, m.Error)
		}
		if m.Type != protocol.TypeEnrolled || m.Enrolled == nil {
			raw.Close()
			return nil, fmt.Errorf("enrol: the root answered %q", m.Type)
		}
		c.mu.Lock()
		if cert == nil {
			nc := pki.NodeCertificate(c.key, m.Enrolled.Cert)
			c.cert = &nc
			if c.KeyFile != "" {
				if err := c.save(m.Enrolled.Cert); err != nil {
					c.mu.Unlock()
					raw.Close()
					return nil, err
				}
			}
		}
		c.node = m.Enrolled.Node
		c.mu.Unlock()
	}
	raw.SetDeadline(time.Time{})
	return pc, nil
}

// isVerifyError reports whether a handshake failed because the root is
// not the one the token names, or refused our certificate: retrying
// will not help.
func isVerifyError(err error) bool {
	var ae tls.AlertError
	var ce *tls.CertificateVerificationError
	var he x509.HostnameError
	return errors.Is(err, pki.ErrCAMismatch) || errors.As(err, &he) || errors.As(err, &ce) ||
		errors.As(err, &ae) && (ae == 42 || ae == 43 || ae == 44 || ae == 45 || ae == 46 || ae == 48)
}

// load reads the key and certificate KeyFile keeps, if it exists.
func (c *Client) load() error {
	b, err := os.ReadFile(c.KeyFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("node credentials: %w", err)
	}
	var keyDER, certDER []byte
	for rest := b; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		switch blk.Type {
		case "PRIVATE KEY":
			keyDER = blk.Bytes
		case "CERTIFICATE":
			certDER = blk.Bytes
		}
	}
	k, err := x509.ParsePKCS8PrivateKey(keyDER)
	signer, ok := k.(crypto.Signer)
	if err != nil || !ok || certDER == nil {
		return fmt.Errorf("node credentials in %s: not a key and a certificate; remove the file to enrol again", c.KeyFile)
	}
	pub, err := x509.MarshalPKIXPublicKey(signer.Public())
	if err != nil {
		return fmt.Errorf("node credentials in %s: %w", c.KeyFile, err)
	}
	nc := pki.NodeCertificate(signer, certDER)
	c.key, c.pub, c.cert = signer, pub, &nc
	return nil
}

// save writes the key and the certificate the root issued to KeyFile,
// atomically.
func (c *Client) save(certDER []byte) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.key)
	if err != nil {
		return fmt.Errorf("node credentials: %w", err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	b = append(b, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})...)
	tmp := c.KeyFile + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("node credentials: %w", err)
	}
	if err := os.Rename(tmp, c.KeyFile); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("node credentials: %w", err)
	}
	return nil
}
