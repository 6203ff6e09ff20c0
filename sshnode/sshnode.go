package sshnode

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/user"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"orrery/clusterfile"
	"orrery/headctl"
	"orrery/remote"
	"orrery/sshkeep"
)

// DefaultStopWait is how long Stop waits for the agent to end after
// SIGTERM before it sends SIGKILL.
const DefaultStopWait = 30 * time.Second

// Options say how a head reaches its nodes' machines; they are the same
// for every node. Zero values are the defaults.
type Options struct {
	// KnownHosts checks the machines' host keys; "": the head user's
	// ~/.ssh/known_hosts.
	KnownHosts string
	// Identities are private key files tried in turn, after ssh-agent's
	// keys; nil: those of ~/.ssh/id_ed25519, id_ecdsa and id_rsa that
	// exist.
	Identities []string
	// AgentSocket is ssh-agent's socket; "": $SSH_AUTH_SOCK.
	AgentSocket string
	// Binary is the orrery executable copied to the nodes' machines;
	// "": this executable. It must be of the machines' platform.
	Binary string
	// RemoteDir is the directory on a node's machine that holds bin/
	// and n/; "": $HOME/.orrery there. It must be absolute.
	RemoteDir string
	// Timeout bounds each SSH step (connecting, a request, a keepalive);
	// 0: remote.DefaultTimeout.
	Timeout time.Duration
	// CommandTimeout bounds each command run on a node's machine;
	// 0: headctl.DefaultCommandTimeout.
	CommandTimeout time.Duration
	// StopWait is how long Stop lets the agent end before it kills it;
	// 0: DefaultStopWait.
	StopWait time.Duration
	// GiveUp is how long the supervisor redials a lost connection
	// before it gives up; 0: the node's Spec.Wait.
	GiveUp time.Duration
	// KeepAlive, Probe, Backoff, MaxBackoff and StatusEvery tune the
	// supervisor; 0: headctl's Default values.
	KeepAlive, Probe, Backoff, MaxBackoff, StatusEvery time.Duration
}

// Spec is one node to start and keep.
type Spec struct {
	// Cluster is the cluster's name, for messages.
	Cluster string
	// Node is the node's line; its SSH endpoint is required (its user
	// defaults to the head's).
	Node clusterfile.Node
	// HeadAddr is the head's port on this machine (HOST:PORT): each
	// connection that arrives on the node's forwarded socket is relayed
	// there.
	HeadAddr string
	// Token is the join token of the head's port. It goes on the
	// start command's standard input only.
	Token string
	// ID names the head on the node's machine: the node's directory is
	// RemoteDir/n/ID-NODE. It is a short path element, the same for
	// every start of the same head (see HeadID).
	ID string
	// Wait is how long the agent goes on without reaching the head
	// before it exits (its --wait): the head's lease; 0: clusterfile's
	// DefaultLease.
	Wait time.Duration
	// Status receives one line at a time for the user about the node
	// ("node NAME: ..."); it must not block. Nil: nothing.
	Status func(line string)
	// Log receives what happens; nil: nothing.
	Log *slog.Logger
}

// HeadID is the ID of a head whose port's certificate authority has
// the given certificate (DER): the first 12 hex digits of its SHA-256.
func HeadID(caDER []byte) string {
	sum := sha256.Sum256(caDER)
	return hex.EncodeToString(sum[:])[:12]
}

// Launcher starts nodes over SSH.
type Launcher struct{ opts Options }

// New returns a launcher with opts.
func New(opts Options) *Launcher { return &Launcher{opts: opts} }

// Remote layout under Options.RemoteDir.
const (
	binDir   = "bin"
	nodesDir = "n"
	sockName = "head.sock"
	logName  = "agent.log"
)

// validID is what Spec.ID may be: one short path element.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$`)

// Launch connects to the node's machine, puts the orrery binary there,
// forwards the node's socket to the head's port and starts the agent
// unless it runs already (see the package comment). It returns once the
// agent runs, with its supervisor started; ctx bounds the launch only.
// Errors are one line, "cluster NAME: node NODE: ...".
func (l *Launcher) Launch(ctx context.Context, spec Spec) (*Node, error) {
	n, err := l.node(spec)
	if err != nil {
		return nil, err
	}
	c, err := n.dial(ctx)
	if err != nil {
		return nil, n.err(err)
	}
	if err := n.prepare(ctx, c); err != nil {
		c.Close()
		return nil, n.err(err)
	}
	t := n.tune
	n.keep, err = sshkeep.Start(ctx, sshkeep.Config{Socket: n.sock, Target: loopback(spec.HeadAddr),
		Dial: n.dial, Setup: n.setup, Check: n.check, Stop: n.stopAgent,
		Say: n.status, Log: n.log, GiveUpNote: fmt.Sprintf("its agent ends by itself once it has not reached the head for %v (its --wait)", n.spec.Wait),
		Timeout: t.timeout, CommandTimeout: t.command, KeepAlive: t.keepAlive, Probe: t.probe,
		Backoff: t.backoff, MaxBackoff: t.maxBackoff, GiveUp: t.giveUp, StatusEvery: t.statusEvery}, c)
	if err != nil {
		return nil, n.err(err)
	}
	return n, nil
}

// Node is a node's agent started (or found running) by Launch, and the
// supervisor that keeps it.
type Node struct {
	spec  Spec
	name  string
	ep    remote.Endpoint
	tries []remote.Options // ways to authenticate, in order
	good  int              // the one that worked last
	tune  tuning
	log   *slog.Logger

	remoteDir string          // Options.RemoteDir
	binary    string          // the local binary
	platform  remote.Platform // its platform
	build     string          // its SHA-256, hex
	bin       string          // its path on the node's machine
	dir       string          // the node's directory there
	sock      string          // the forwarded socket, dir/head.sock
	keep      *sshkeep.Keeper
	saidEnd   bool // the agent's end was said (owned by whoever checks)
}

// tuning is Options with the defaults filled in.
type tuning struct {
	timeout, command, stopWait, giveUp    time.Duration
	keepAlive, probe, backoff, maxBackoff time.Duration
	statusEvery                           time.Duration
}

// node checks a spec and makes its Node, not yet connected.
func (l *Launcher) node(spec Spec) (*Node, error) {
	o := l.opts
	n := &Node{spec: spec, name: spec.Node.Name, remoteDir: o.RemoteDir, log: cmp.Or(spec.Log, slog.New(slog.DiscardHandler))}
	n.log = n.log.With("cluster", spec.Cluster, "node", n.name)
	if spec.Status == nil {
		n.spec.Status = func(string) {}
	}
	fail := func(format string, args ...any) (*Node, error) { return nil, n.err(fmt.Errorf(format, args...)) }
	if spec.Node.SSH == nil {
		return fail("it runs on the head's machine, not over SSH")
	}
	ssh := spec.Node.SSH
	n.ep = remote.Endpoint{User: ssh.User, Host: ssh.Host, Port: ssh.Port}
	if n.ep.User == "" {
		u, err := user.Current()
		if err != nil {
			return fail("ssh %s: no user, and the head's user is unknown: %v", n.ep, err)
		}
		n.ep.User = u.Username
	}
	switch {
	case spec.Token == "":
		return fail("no join token for its agent")
	case spec.HeadAddr == "":
		return fail("no head port to relay its agent's connections to")
	case !validID.MatchString(spec.ID):
		return fail("head identity %q is not one short path element", spec.ID)
	case o.RemoteDir != "" && !path.IsAbs(o.RemoteDir):
		return fail("remote directory %q is not absolute", o.RemoteDir)
	}
	var err error
	if n.tries, err = authTries(o); err != nil {
		return fail("%v", err)
	}
	n.binary, n.platform = o.Binary, remote.Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
	if n.binary == "" {
		if n.binary, err = os.Executable(); err != nil {
			return fail("this orrery's executable: %v", err)
		}
	} else if n.platform, err = headctl.ELFPlatform(n.binary); err != nil {
		return fail("binary: %v", err)
	}
	if spec.Wait <= 0 {
		n.spec.Wait = clusterfile.DefaultLease
	}
	n.tune = tuning{
		timeout:     cmp.Or(o.Timeout, remote.DefaultTimeout),
		command:     cmp.Or(o.CommandTimeout, headctl.DefaultCommandTimeout),
		stopWait:    cmp.Or(o.StopWait, DefaultStopWait),
		giveUp:      cmp.Or(o.GiveUp, n.spec.Wait),
		keepAlive:   cmp.Or(o.KeepAlive, headctl.DefaultKeepAlive),
		probe:       cmp.Or(o.Probe, headctl.DefaultProbe),
		backoff:     cmp.Or(o.Backoff, headctl.DefaultBackoff),
		maxBackoff:  cmp.Or(o.MaxBackoff, headctl.DefaultMaxBackoff),
		statusEvery: cmp.Or(o.StatusEvery, headctl.DefaultStatusEvery),
	}
	n.tune.maxBackoff = max(n.tune.maxBackoff, n.tune.backoff)
	return n, nil
}

// authTries are the ways to log in, in order: ssh-agent alone when
// there is one, then each identity file (with the agent's keys after
// it, as remote offers them).
func authTries(o Options) ([]remote.Options, error) {
	known := o.KnownHosts
	if known == "" {
		known = clusterfile.DefaultKnownHosts
	}
	known, err := expandHome(known)
	if err != nil {
		return nil, err
	}
	ids := o.Identities
	if ids == nil {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("the head user's home: %v", err)
		}
		for _, f := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			if p := filepath.Join(home, ".ssh", f); fileExists(p) {
				ids = append(ids, p)
			}
		}
	}
	base := remote.Options{KnownHosts: known, AgentSocket: o.AgentSocket, Timeout: o.Timeout}
	var tries []remote.Options
	if cmp.Or(o.AgentSocket, os.Getenv("SSH_AUTH_SOCK")) != "" {
		tries = append(tries, base)
	}
	for _, id := range ids {
		t := base
		if t.Identity, err = expandHome(id); err != nil {
			return nil, err
		}
		tries = append(tries, t)
	}
	if len(tries) == 0 {
		return nil, errors.New("no key to log in with: no ssh-agent (SSH_AUTH_SOCK) and none of ~/.ssh/id_ed25519, id_ecdsa, id_rsa")
	}
	return tries, nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// expandHome expands a leading ~/.
func expandHome(p string) (string, error) {
	if p != "~" && !strings.HasPrefix(p, "~/") {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("%s: %v", p, err)
	}
	return filepath.Join(home, p[1:]), nil
}

// status gives the user a line about the node.
func (n *Node) status(line string) { n.spec.Status("node " + n.name + ": " + line) }

// say gives the user a line about the node, and logs it.
func (n *Node) say(line string) {
	n.log.Info(line)
	n.status(line)
}

// err makes a failure one line naming the cluster and the node.
func (n *Node) err(err error) error {
	var e *headctl.Error
	if errors.As(err, &e) {
		return err
	}
	return &headctl.Error{Cluster: n.spec.Cluster, Err: fmt.Errorf("node %s: %w", n.name, err)}
}

// dial connects with the first way to log in that the machine accepts,
// starting with the one that worked last. A refused host key, or a
// machine that cannot be reached, ends it at once.
func (n *Node) dial(ctx context.Context) (*remote.Client, error) {
	var first error
	for i := range n.tries {
		k := (n.good + i) % len(n.tries)
		c, err := remote.Dial(ctx, n.ep, n.tries[k])
		if err == nil {
			n.good = k
			return c, nil
		}
		if first == nil || errors.Is(first, remote.ErrEncryptedIdentity) && !errors.Is(err, remote.ErrEncryptedIdentity) {
			first = err
		}
		if !errors.Is(err, remote.ErrAuth) && !errors.Is(err, remote.ErrEncryptedIdentity) {
			return nil, err
		}
	}
	return nil, first
}

// step is ctx bounded by d.
func step(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// prepare checks the machine's platform, learns the remote user's home
// and picks the paths there: once, at launch.
func (n *Node) prepare(ctx context.Context, c *remote.Client) error {
	sctx, cancel := step(ctx, n.tune.command)
	p, err := c.Platform(sctx)
	cancel()
	if err != nil {
		return err
	}
	if p != n.platform {
		return fmt.Errorf("its machine is %s and the head's orrery is %s: a node over SSH runs the head's own build", p, n.platform)
	}
	if n.build, err = sshkeep.FileSHA256(n.binary); err != nil {
		return fmt.Errorf("binary: %v", err)
	}
	base := n.remoteDir
	if base == "" {
		sctx, cancel := step(ctx, n.tune.command)
		home, err := sshkeep.RemoteHome(sctx, c)
		cancel()
		if err != nil {
			return err
		}
		base = path.Join(home, ".orrery")
	}
	n.bin = path.Join(base, binDir, "orrery-"+n.build[:16])
	elem := n.spec.ID + "-" + n.name
	n.dir = path.Join(base, nodesDir, elem)
	if len(path.Join(n.dir, sockName)) > remote.MaxSocketPath {
		// A long node name: its hash instead.
		sum := sha256.Sum256([]byte(n.name))
		n.dir = path.Join(base, nodesDir, n.spec.ID+"-"+hex.EncodeToString(sum[:])[:12])
	}
	n.sock = path.Join(n.dir, sockName)
	if len(n.sock) > remote.MaxSocketPath {
		return fmt.Errorf("its socket %s is longer than a socket path may be (%d bytes, at most %d): use a shorter remote directory", n.sock, len(n.sock), remote.MaxSocketPath)
	}
	return nil
}

// loopback is addr with a wildcard host (a port listening on every
// address) replaced by the loopback address of its family.
func loopback(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if ip != nil && ip.To4() == nil {
			return net.JoinHostPort("::1", port)
		}
		return net.JoinHostPort("127.0.0.1", port)
	}
	return addr
}

// setup makes a connection ready to serve the node: the binary in
// place.
func (n *Node) setup(ctx context.Context, c *remote.Client, _ bool) error {
	cctx, cancel := step(ctx, headctl.CopyTimeout)
	copied, err := c.CopyFile(cctx, n.binary, n.bin, 0o700)
	cancel()
	if err != nil {
		return err
	}
	if copied {
		n.say(fmt.Sprintf("copied orrery (build %.12s) to %s", n.build, n.bin))
	}
	return nil
}

// agentArgs is the agent's command line (no secret: the token comes on
// its standard input).
func (n *Node) agentArgs() []string {
	nd := n.spec.Node
	args := []string{n.bin, "agent", "--connect", "unix:" + path.Join(n.dir, sockName), "--token-file", "/dev/stdin",
		"--name", n.name, "--work-dir", path.Join(n.dir, "work"), "--wait", n.spec.Wait.String()}
	if nd.CPUs > 0 {
		args = append(args, "--cpus", strconv.Itoa(nd.CPUs))
	}
	if nd.JobLimit > 0 {
		args = append(args, "--job-limit", strconv.Itoa(nd.JobLimit))
	}
	if nd.Speed > 0 {
		args = append(args, "--speed", strconv.FormatFloat(nd.Speed, 'g', -1, 64))
	}
	if nd.Memory > 0 {
		args = append(args, "--memory", strconv.FormatInt(nd.Memory, 10))
	}
	return args
}

// Link is the state of the SSH connection to the node's machine:
// "connected", "cut" (down, redialling) or "lost" (the supervisor gave
// up, or the node was stopped or closed): sshkeep's Link* constants.
func (n *Node) Link() string { return n.keep.Link() }

// Dir is the node's directory on its machine: its socket, agent.log,
// agent.pid and the agent's work directory.
func (n *Node) Dir() string { return n.dir }

// Done is closed when the supervisor has ended.
func (n *Node) Done() <-chan struct{} { return n.keep.Done() }

// Stop stops the agent (SIGTERM to its process group; SIGKILL after
// StopWait), then closes the forward and the connection and ends the
// supervisor. With the connection cut, or after Close, it dials once
// more. ctx bounds it.
func (n *Node) Stop(ctx context.Context) error {
	if err := n.keep.Stop(ctx); err != nil {
		return n.err(fmt.Errorf("stop its agent: %w", err))
	}
	return nil
}

// Close drops the connection and the forward and ends the supervisor,
// leaving the agent running: it goes on for its --wait, and the next
// launch of the same head finds it.
func (n *Node) Close() error {
	n.keep.Close()
	return nil
}
