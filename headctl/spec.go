package headctl

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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
	"orrery/remote"
	"orrery/sshkeep"
)

// Defaults of a Spec's tuning.
const (
	// DefaultKeepAlive is the time between two keepalives on the SSH
	// connection.
	DefaultKeepAlive = 15 * time.Second
	// DefaultProbe is the time between two probes of the head while
	// connected (a head found dead is started again).
	DefaultProbe = 10 * time.Second
	// DefaultBackoff is the first wait before redialling; each failed
	// attempt doubles it, up to DefaultMaxBackoff.
	DefaultBackoff    = time.Second
	DefaultMaxBackoff = 30 * time.Second
	// DefaultCommandTimeout bounds each command run on the head's
	// machine (probe, start, making the directory).
	DefaultCommandTimeout = time.Minute
	// DefaultStatusEvery is the shortest time between two Status lines
	// that repeat the same news (still reconnecting, a head that fails
	// to restart).
	DefaultStatusEvery = 10 * time.Second
)

// Link states reported by Head.Link.
const (
	LinkConnected = sshkeep.LinkConnected // SSH up, the forward relayed
	LinkCut       = sshkeep.LinkCut       // SSH down, redialling
	LinkLost      = sshkeep.LinkLost      // gave up after Spec.GiveUp, or stopped or closed
)

// Spec is what Launch needs to start and keep one cluster's head.
type Spec struct {
	// Cluster is the cluster, as package clusterfile read it: its SSH
	// endpoint (required), identity, known_hosts, binary and lease.
	Cluster clusterfile.Cluster
	// Block is the cluster's block of the cluster file, as text; the
	// head reads its nodes from it.
	Block string
	// Token is the join token the head enrolls with. It goes on the
	// start command's standard input only.
	Token string
	// RootAddr is the root's TLS port on this machine (HOST:PORT), where
	// each connection that arrives on the forwarded socket is relayed.
	RootAddr string
	// ID is the experiment's identity (ExperimentID): the head's
	// directory is RemoteDir/h/ID on its machine ($HOME/.orrery/h/ID).
	ID string
	// Binary is the orrery executable for this machine's own platform;
	// "": os.Executable().
	Binary string
	// BinaryPlatform is Binary's platform; zero: this process's
	// (runtime.GOOS, runtime.GOARCH). Set it only when Binary is not a
	// build for the machine the root runs on.
	BinaryPlatform remote.Platform
	// Lease is how long the head goes on without the root; 0: the
	// cluster's lease, or clusterfile.DefaultLease.
	Lease time.Duration
	// Policy is the policy the head runs its nodes under (orrery's
	// policy names; "": orrery).
	Policy string
	// GiveUp is how long the supervisor redials a lost connection
	// before it gives up (Link "lost"); 0: the lease.
	GiveUp time.Duration
	// Log receives what happens, for the root's log; nil: nothing.
	Log *slog.Logger
	// Status receives lines for the user about the cluster (not
	// starting with its name, which is the first argument). It is
	// called by Launch and then by the supervisor's goroutine, one call
	// at a time, and must not block.
	Status func(cluster, line string)

	// RemoteDir is the directory on the head's machine that holds bin/
	// and h/; "": $HOME/.orrery. It must be absolute.
	RemoteDir string
	// AgentSocket is ssh-agent's socket; "": $SSH_AUTH_SOCK.
	AgentSocket string
	// Timeout bounds each SSH step (connecting with its handshake, a
	// request, a keepalive: how soon a frozen link is noticed);
	// 0: remote.DefaultTimeout.
	Timeout time.Duration
	// CommandTimeout bounds each command run on the head's machine
	// (`orrery head stop` has StopWait more); 0: DefaultCommandTimeout.
	CommandTimeout time.Duration
	// KeepAlive, Probe, Backoff, MaxBackoff and StatusEvery tune the
	// supervisor; 0: the Default values.
	KeepAlive, Probe, Backoff, MaxBackoff, StatusEvery time.Duration
}

// StartInput is the head's standard input for `orrery head start` (the
// JSON of head.StartSpec, which headctl does not import: the head's
// packages use headctl's SSH keeping).
type StartInput struct {
	Token   string `json:"token"`            // the join token
	Root    string `json:"root"`             // "unix:/path/root.sock" or "host:port"
	Cluster string `json:"cluster"`          // the cluster's block of the cluster file
	Name    string `json:"name"`             // the cluster's name
	Lease   string `json:"lease"`            // a Go duration, "1h0m0s"
	Policy  string `json:"policy,omitempty"` // the head's policy; "": orrery
}

// ProbeReport is the one line of JSON `orrery head probe` prints.
type ProbeReport struct {
	Running bool   `json:"running"`
	PID     int    `json:"pid"`
	Build   string `json:"build"` // SHA-256 (hex) of the running head's binary
	Jobs    int    `json:"jobs"`  // root attempts it holds that it has not reported
	// GaveUp is why a head that is not running stopped for good (see
	// head.GaveUpFile), "" when it did not.
	GaveUp string `json:"gave_up,omitempty"`
}

// ParseProbe reads what `orrery head probe` printed.
func ParseProbe(out []byte) (ProbeReport, error) {
	var p ProbeReport
	s := strings.TrimSpace(string(out))
	if s == "" || strings.Contains(s, "\n") {
		return p, fmt.Errorf("head probe printed %q, not one line of JSON", sshkeep.Cut(s, 200))
	}
	if err := json.Unmarshal([]byte(s), &p); err != nil {
		return p, fmt.Errorf("head probe printed %q: %v", sshkeep.Cut(s, 200), err)
	}
	return p, nil
}

// ExperimentID is the identity of an experiment as a head's directory
// name: the first 12 hex digits of the SHA-256 of the root's CA
// certificate (DER) and the experiment's number. It is short, so that
// DIR/root.sock stays within remote.MaxSocketPath.
func ExperimentID(caDER []byte, experiment int64) string {
	sum := sha256.Sum256(caDER)
	return hex.EncodeToString(sum[:])[:12] + "-" + strconv.FormatInt(experiment, 10)
}

// validID is what an ID may hold: it is one path element.
var validID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// Head directory and socket names under Spec.RemoteDir.
const (
	binDir   = "bin"
	headsDir = "h"
	sockName = "root.sock"
	logName  = "head.log"
)

// config is a Spec with its defaults filled in.
type config struct {
	Spec
	name     string
	ep       remote.Endpoint
	opts     remote.Options
	lease    time.Duration
	giveUp   time.Duration
	platform remote.Platform
}

func (s *Spec) config() (*config, error) {
	c := &config{Spec: *s, name: s.Cluster.Name}
	if c.name == "" {
		return nil, errors.New("headctl: the cluster has no name")
	}
	fail := func(format string, args ...any) (*config, error) {
		return nil, &Error{Cluster: c.name, Err: fmt.Errorf(format, args...)}
	}
	ssh := s.Cluster.SSH
	if ssh == nil {
		return fail("its head runs on the root's machine: it has no ssh address to launch it by")
	}
	c.ep = remote.Endpoint{User: ssh.User, Host: ssh.Host, Port: ssh.Port}
	if c.ep.User == "" {
		u, err := user.Current()
		if err != nil {
			return fail("ssh %s: no user, and this process's user is unknown: %v", ssh, err)
		}
		c.ep.User = u.Username
	}
	known := s.Cluster.KnownHosts
	if known == "" {
		known = clusterfile.DefaultKnownHosts
	}
	identity, err := expandHome(s.Cluster.Identity)
	if err == nil {
		known, err = expandHome(known)
	}
	if err != nil {
		return fail("%v", err)
	}
	c.opts = remote.Options{Identity: identity, KnownHosts: known, AgentSocket: s.AgentSocket, Timeout: s.Timeout}
	if s.Token == "" {
		return fail("no join token for its head")
	}
	if s.RootAddr == "" {
		return fail("no root address to relay its head's connections to")
	}
	if !validID.MatchString(s.ID) {
		return fail("experiment identity %q is not one short path element", s.ID)
	}
	if s.RemoteDir != "" && !path.IsAbs(s.RemoteDir) {
		return fail("remote directory %q is not absolute", s.RemoteDir)
	}
	if c.Binary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fail("this orrery's executable: %v", err)
		}
		c.Binary = exe
	}
	c.platform = s.BinaryPlatform
	if c.platform == (remote.Platform{}) {
		c.platform = remote.Platform{OS: runtime.GOOS, Arch: runtime.GOARCH}
	}
	c.lease = s.Lease
	if c.lease <= 0 {
		c.lease = s.Cluster.Lease
	}
	if c.lease <= 0 {
		c.lease = clusterfile.DefaultLease
	}
	c.giveUp = s.GiveUp
	if c.giveUp <= 0 {
		c.giveUp = c.lease
	}
	if c.Timeout <= 0 {
		c.Timeout = remote.DefaultTimeout
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.CommandTimeout, DefaultCommandTimeout)
	def(&c.KeepAlive, DefaultKeepAlive)
	def(&c.Probe, DefaultProbe)
	def(&c.Backoff, DefaultBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.StatusEvery, DefaultStatusEvery)
	if c.MaxBackoff < c.Backoff {
		c.MaxBackoff = c.Backoff
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	c.Log = c.Log.With("cluster", c.name)
	if c.Status == nil {
		c.Status = func(string, string) {}
	}
	return c, nil
}

// startInput is the head's standard input for `orrery head start`.
func (c *config) startInput(sock string) []byte {
	b, err := json.Marshal(StartInput{
		Token:   c.Token,
		Root:    "unix:" + sock,
		Cluster: c.Block,
		Name:    c.name,
		Lease:   c.lease.String(),
		Policy:  c.Policy,
	})
	if err != nil {
		panic(err) // strings only
	}
	return append(b, '\n')
}

// expandHome expands a leading ~/ (clusterfile has done it already for
// paths it read).
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

// limiter lets a kind of news through at most once per interval.
type limiter struct {
	every time.Duration
	last  map[string]time.Time
}

// allow reports whether news of kind may be said at now, and if so
// notes it.
func (l *limiter) allow(kind string, now time.Time) bool {
	if l.last == nil {
		l.last = map[string]time.Time{}
	}
	if t, ok := l.last[kind]; ok && now.Sub(t) < l.every {
		return false
	}
	l.last[kind] = now
	return true
}

// forget lets the next news of kind through at once.
func (l *limiter) forget(kind string) { delete(l.last, kind) }
