// Package remote reaches a cluster's head machine over SSH
// (golang.org/x/crypto/ssh): it checks the machine's host key against
// known_hosts, authenticates with ssh-agent or an identity file, runs
// commands with their secrets on standard input, starts long-running
// processes whose streams stay open, copies a file atomically, reports
// the machine's platform, and asks the server for a forwarded Unix
// socket that carries a head's traffic back through the SSH connection.
//
// Every network step has a deadline: the TCP connection and the SSH
// handshake and authentication have Options.Timeout; a request to the
// server (a forward, a keepalive) that is not answered within it closes
// the connection, so nothing waits forever on a peer that went silent.
// Commands run until their context ends.
package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// DefaultTimeout bounds each network step when Options.Timeout is zero.
const DefaultTimeout = 30 * time.Second

// Endpoint is the SSH server to reach and the user to log in as.
type Endpoint struct {
	User string
	Host string // a name or an address; an IPv6 address without brackets
	Port int    // 0 means 22
}

func (e Endpoint) port() int {
	if e.Port == 0 {
		return 22
	}
	return e.Port
}

// Addr is host:port, as dialled and as known_hosts matches it.
func (e Endpoint) Addr() string { return net.JoinHostPort(e.Host, strconv.Itoa(e.port())) }

// String is USER@HOST[:PORT], as a cluster file writes it.
func (e Endpoint) String() string {
	h := e.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	if e.Port != 0 && e.Port != 22 {
		h += ":" + strconv.Itoa(e.Port)
	}
	if e.User == "" {
		return h
	}
	return e.User + "@" + h
}

// Options says how to check the server and authenticate to it.
type Options struct {
	// Identity is a private key file. An encrypted one cannot be read
	// here: load it into ssh-agent instead.
	Identity string
	// KnownHosts is the known_hosts file the host key is checked
	// against (required: there is no default here, the caller has one).
	KnownHosts string
	// AgentSocket is ssh-agent's socket; empty means $SSH_AUTH_SOCK.
	// The agent's keys are offered after the identity file's.
	AgentSocket string
	// Timeout bounds each network step (DefaultTimeout when zero).
	Timeout time.Duration
}

// ErrUnknownHost is returned (wrapped in a *HostKeyError) when
// known_hosts has no key for the host.
var ErrUnknownHost = errors.New("unknown host key")

// ErrChangedHostKey is returned (wrapped in a *HostKeyError) when the
// host presents a key other than the one known_hosts holds for it:
// possibly a man-in-the-middle attack.
var ErrChangedHostKey = errors.New("changed host key")

// ErrAuth is returned (wrapped) when the server refused every key.
var ErrAuth = errors.New("authentication refused")

// ErrEncryptedIdentity is returned (wrapped) when the identity file is
// encrypted and no agent key was accepted in its place.
var ErrEncryptedIdentity = errors.New("encrypted identity")

// HostKeyError is a host key refused: Err is ErrUnknownHost or
// ErrChangedHostKey. Its message is one line that names the host and
// the known_hosts file and says what to do.
type HostKeyError struct {
	Err        error
	Endpoint   Endpoint
	KnownHosts string
	Key        ssh.PublicKey // the key the host presented
	Known      string        // for a changed key: FILE:LINE of the known key
}

func (e *HostKeyError) Error() string {
	scan := "ssh-keyscan "
	if e.Endpoint.port() != 22 {
		scan += "-p " + strconv.Itoa(e.Endpoint.port()) + " "
	}
	scan += e.Endpoint.Host + " >> " + e.KnownHosts
	if e.Err == ErrChangedHostKey && e.Key == nil {
		return fmt.Sprintf("host key of %s changed (it no longer offers a key of the types known at %s): possibly an attack, refused; if the host was really re-keyed, remove its line from %s, check the new key, then add it with: %s",
			e.Endpoint.Addr(), e.Known, e.KnownHosts, scan)
	}
	fp := ssh.FingerprintSHA256(e.Key)
	if e.Err == ErrChangedHostKey {
		return fmt.Sprintf("host key of %s changed (now %s %s, known at %s): possibly an attack, refused; if the host was really re-keyed, remove its line from %s, check the new key, then add it with: %s",
			e.Endpoint.Addr(), e.Key.Type(), fp, e.Known, e.KnownHosts, scan)
	}
	return fmt.Sprintf("host key of %s (%s %s) not in %s: check it, then add it with: %s",
		e.Endpoint.Addr(), e.Key.Type(), fp, e.KnownHosts, scan)
}

func (e *HostKeyError) Unwrap() error { return e.Err }

// Machine is what the head launcher needs of a remote machine. *Client
// implements it over SSH.
type Machine interface {
	// Run runs command with stdin as its standard input (secrets go
	// here, never on the command line) and returns its output and exit
	// status. A non-zero exit is not an error.
	Run(ctx context.Context, command string, stdin []byte) (stdout, stderr []byte, exit int, err error)
	// Start starts a long-running command whose streams stay open.
	Start(ctx context.Context, command string) (Process, error)
	// CopyFile puts the local file at the remote path atomically,
	// unless the remote file already has the same SHA-256.
	CopyFile(ctx context.Context, local, remote string, mode os.FileMode) (copied bool, err error)
	// Platform is the machine's GOOS and GOARCH.
	Platform(ctx context.Context) (Platform, error)
	// ListenUnix listens on a Unix socket on the remote machine;
	// connections to it arrive through the SSH connection.
	ListenUnix(ctx context.Context, path string) (net.Listener, error)
	// Close closes the connection and everything on it.
	Close() error
}

var _ Machine = (*Client)(nil)

// Client is one SSH connection to a machine.
type Client struct {
	ssh      *ssh.Client
	endpoint Endpoint
	timeout  time.Duration

	closeOnce sync.Once
	closeErr  error
}

// Dial connects to the endpoint, checks its host key against
// opts.KnownHosts and authenticates. Connecting, the handshake and
// authentication together take at most opts.Timeout, and stop when ctx
// ends.
func Dial(ctx context.Context, ep Endpoint, opts Options) (*Client, error) {
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	if ep.User == "" {
		return nil, fmt.Errorf("ssh %s: no user", ep)
	}
	if opts.KnownHosts == "" {
		return nil, fmt.Errorf("ssh %s: no known_hosts file", ep)
	}
	check, err := knownhosts.New(opts.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: known hosts: %v", ep, err)
	}
	var hostKeyErr *HostKeyError
	callback := func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		var re *knownhosts.RevokedError
		switch {
		case errors.As(err, &ke) && len(ke.Want) == 0:
			hostKeyErr = &HostKeyError{Err: ErrUnknownHost, Endpoint: ep, KnownHosts: opts.KnownHosts, Key: key}
			return hostKeyErr
		case errors.As(err, &ke):
			hostKeyErr = &HostKeyError{Err: ErrChangedHostKey, Endpoint: ep, KnownHosts: opts.KnownHosts, Key: key,
				Known: fmt.Sprintf("%s:%d", ke.Want[0].Filename, ke.Want[0].Line)}
			return hostKeyErr
		case errors.As(err, &re):
			return fmt.Errorf("host key of %s is revoked (%s)", ep.Addr(), re)
		}
		return err
	}

	auth, agentConn, identityErr, err := authMethods(opts)
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", ep, err)
	}
	if agentConn != nil {
		// The agent is needed during authentication only.
		defer agentConn.Close()
	}
	config := &ssh.ClientConfig{
		User:              ep.User,
		Auth:              auth,
		HostKeyCallback:   callback,
		HostKeyAlgorithms: knownAlgorithms(check, ep),
		Timeout:           timeout,
	}

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", ep.Addr())
	if err != nil {
		return nil, fmt.Errorf("ssh %s: %w", ep, stepErr(ctx, err, timeout))
	}
	// The handshake has the rest of the step's time; ctx ending closes
	// the connection, which ends the handshake at once.
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c, chans, reqs, err := ssh.NewClientConn(conn, ep.Addr(), config)
	if !stop() || err != nil {
		if err == nil {
			c.Close()
		}
		conn.Close()
		switch {
		case hostKeyErr != nil:
			return nil, fmt.Errorf("ssh %s: %w", ep, hostKeyErr)
		case err != nil && len(config.HostKeyAlgorithms) > 0 && strings.Contains(err.Error(), "no common algorithm for host key"):
			// The host no longer has a key of any type known_hosts
			// holds for it.
			return nil, fmt.Errorf("ssh %s: %w", ep, &HostKeyError{Err: ErrChangedHostKey, Endpoint: ep, KnownHosts: opts.KnownHosts,
				Known: knownAt(check, ep)})
		case err != nil && strings.Contains(err.Error(), "unable to authenticate"):
			if identityErr != nil {
				return nil, fmt.Errorf("ssh %s: %w", ep, identityErr)
			}
			return nil, fmt.Errorf("ssh %s: %w: no key was accepted (%s)", ep, ErrAuth, tried(opts, agentConn != nil))
		case err == nil || ctx.Err() != nil:
			return nil, fmt.Errorf("ssh %s: %w", ep, stepErr(ctx, context.DeadlineExceeded, timeout))
		}
		return nil, fmt.Errorf("ssh %s: %w", ep, stepErr(ctx, err, timeout))
	}
	conn.SetDeadline(time.Time{})
	return &Client{ssh: ssh.NewClient(c, chans, reqs), endpoint: ep, timeout: timeout}, nil
}

// stepErr says that a step ran out of time rather than the raw error of
// a closed connection.
func stepErr(ctx context.Context, err error, timeout time.Duration) error {
	if ctx.Err() == context.Canceled {
		return ctx.Err()
	}
	var ne net.Error
	if ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("no answer within %v", timeout)
	}
	return err
}

func tried(opts Options, agent bool) string {
	var s []string
	if opts.Identity != "" {
		s = append(s, "identity "+opts.Identity)
	}
	if agent {
		s = append(s, "ssh-agent's keys")
	}
	if len(s) == 0 {
		return "no identity and no ssh-agent"
	}
	return "tried " + strings.Join(s, " and ")
}

// authMethods gathers the identity file's key and the agent's keys into
// one public-key method (the library uses only the first method of each
// kind). An encrypted identity is not an error yet when an agent may
// hold its key: identityErr is returned for Dial to report if the
// server refuses the rest.
func authMethods(opts Options) (methods []ssh.AuthMethod, agentConn net.Conn, identityErr, err error) {
	var signers []ssh.Signer
	if opts.Identity != "" {
		pem, err := os.ReadFile(opts.Identity)
		if err != nil {
			return nil, nil, nil, fmt.Errorf("identity: %v", err)
		}
		s, err := ssh.ParsePrivateKey(pem)
		var missing *ssh.PassphraseMissingError
		switch {
		case errors.As(err, &missing):
			identityErr = fmt.Errorf("%w: %s is encrypted: load it into ssh-agent (ssh-add %s) and set SSH_AUTH_SOCK", ErrEncryptedIdentity, opts.Identity, opts.Identity)
		case err != nil:
			return nil, nil, nil, fmt.Errorf("identity %s: %v", opts.Identity, err)
		default:
			signers = append(signers, s)
		}
	}
	sock := opts.AgentSocket
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	var agentSigners func() ([]ssh.Signer, error)
	if sock != "" {
		conn, err := net.DialTimeout("unix", sock, 5*time.Second)
		if err == nil {
			agentConn = conn
			agentSigners = agent.NewClient(conn).Signers
		} else if identityErr == nil && len(signers) == 0 {
			return nil, nil, nil, fmt.Errorf("ssh-agent at %s: %v", sock, err)
		}
	}
	if identityErr != nil && agentConn == nil {
		return nil, nil, nil, identityErr
	}
	if len(signers) == 0 && agentConn == nil {
		return nil, nil, nil, errors.New("no identity file and no ssh-agent (SSH_AUTH_SOCK): nothing to authenticate with")
	}
	methods = []ssh.AuthMethod{ssh.PublicKeysCallback(func() ([]ssh.Signer, error) {
		all := append([]ssh.Signer(nil), signers...)
		if agentSigners != nil {
			if more, err := agentSigners(); err == nil {
				all = append(all, more...)
			}
		}
		return all, nil
	})}
	return methods, agentConn, identityErr, nil
}

// knownAlgorithms lists the host key algorithms of the keys known_hosts
// holds for the endpoint, so that the server is asked for the key that
// can be checked rather than another one it also has (which would look
// like a changed key). Nil (the library's default) for an unknown host.
func knownAlgorithms(check ssh.HostKeyCallback, ep Endpoint) []string {
	err := check(ep.Addr(), &net.TCPAddr{IP: net.IPv4zero}, probeKey{})
	var ke *knownhosts.KeyError
	if !errors.As(err, &ke) || len(ke.Want) == 0 {
		return nil
	}
	var algos []string
	seen := map[string]bool{}
	add := func(a string) {
		if !seen[a] {
			seen[a] = true
			algos = append(algos, a)
		}
	}
	for _, k := range ke.Want {
		switch t := k.Key.Type(); t {
		case ssh.KeyAlgoRSA:
			add(ssh.KeyAlgoRSASHA512)
			add(ssh.KeyAlgoRSASHA256)
			add(ssh.KeyAlgoRSA)
		default:
			add(t)
		}
	}
	return algos
}

// knownAt is FILE:LINE of the first key known_hosts holds for ep.
func knownAt(check ssh.HostKeyCallback, ep Endpoint) string {
	var ke *knownhosts.KeyError
	if errors.As(check(ep.Addr(), &net.TCPAddr{IP: net.IPv4zero}, probeKey{}), &ke) && len(ke.Want) > 0 {
		return fmt.Sprintf("%s:%d", ke.Want[0].Filename, ke.Want[0].Line)
	}
	return "?"
}

// probeKey is a key no known_hosts line holds: checking it returns the
// host's known keys.
type probeKey struct{}

func (probeKey) Type() string                        { return "orrery-probe" }
func (probeKey) Marshal() []byte                     { return []byte("orrery-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe") }

// Endpoint is where the client is connected.
func (c *Client) Endpoint() Endpoint { return c.endpoint }

// Close closes the connection, its sessions and its listeners.
func (c *Client) Close() error {
	c.closeOnce.Do(func() { c.closeErr = c.ssh.Close() })
	return c.closeErr
}

// Wait blocks until the connection ends.
func (c *Client) Wait() error { return c.ssh.Wait() }

// KeepAlive asks the server to answer, within the client's timeout;
// with no answer in time it closes the connection (so that everything
// on it fails at once) and returns an error.
func (c *Client) KeepAlive(ctx context.Context) error {
	return c.request(ctx, "keepalive", func() error {
		_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
		return err
	})
}

// request runs one request to the server with the client's timeout: a
// server that does not answer in time, or ctx ending first, closes the
// connection.
func (c *Client) request(ctx context.Context, what string, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("ssh %s: %s: %w", c.endpoint, what, err)
		}
		return nil
	case <-ctx.Done():
		c.Close()
		<-done
		return fmt.Errorf("ssh %s: %s: %w", c.endpoint, what, stepErr(ctx, ctx.Err(), c.timeout))
	}
}
