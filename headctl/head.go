package headctl

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"orrery/remote"
	"orrery/sshkeep"
)

// Time limits of the remote commands that take longer than
// Spec.CommandTimeout.
const (
	// CopyTimeout bounds copying the binary to the head machine.
	CopyTimeout = 10 * time.Minute
	// StopWait is how long `orrery head stop` waits for the head to
	// exit by default; the command is given that and the command
	// timeout.
	StopWait = 30 * time.Second
)

// Error is a failure of one cluster's head. Its message is one line
// that starts with "cluster NAME: ".
type Error struct {
	Cluster string
	Err     error
}

// Error returns "cluster NAME: " and the failure, on one line.
func (e *Error) Error() string { return "cluster " + e.Cluster + ": " + sshkeep.OneLine(e.Err.Error()) }

// Unwrap returns the failure (remote's errors, such as
// remote.ErrUnknownHost and remote.ErrAuth, stay visible to errors.Is).
func (e *Error) Unwrap() error { return e.Err }

// Head is a cluster's head started (or found running) by Launch, and
// the supervisor that keeps it.
type Head struct {
	cfg   *config
	local string // the binary run on the head machine, on this machine
	build string // its SHA-256, hex
	bin   string // its path on the head machine
	dir   string // the head's directory there
	sock  string // the forwarded socket, dir/root.sock
	keep  *sshkeep.Keeper

	// Owned by whoever runs the keeper's hooks: Launch, then the
	// keeper's goroutine.
	now   func() time.Time
	lim   limiter
	fresh bool   // setup has just decided act, for check to carry out
	act   action // what setup decided

	gaveUp atomic.Pointer[string] // why the head stopped for good, once a probe found it so
}

// GaveUp is why the head stopped for good (its cluster can have no
// node: a Slurm cluster that gets no pilots), "" while it has not. The
// supervisor does not start such a head again.
func (h *Head) GaveUp() string {
	if p := h.gaveUp.Load(); p != nil {
		return *p
	}
	return ""
}

// Launch connects to the cluster's head machine, puts the right orrery
// binary there, keeps or replaces a head already running in the
// experiment's directory, forwards DIR/root.sock to Spec.RootAddr and
// starts the head when none of its build runs (see the package
// comment). It returns once the head runs, with its supervisor
// started; ctx bounds the launch only. Errors are *Error.
func Launch(ctx context.Context, spec Spec) (*Head, error) {
	cfg, err := spec.config()
	if err != nil {
		return nil, err
	}
	h := &Head{cfg: cfg, now: time.Now, lim: limiter{every: cfg.StatusEvery}}
	c, err := h.dial(ctx)
	if err != nil {
		return nil, h.err(err)
	}
	if err := h.prepare(ctx, c); err != nil {
		c.Close()
		return nil, h.err(err)
	}
	h.keep, err = sshkeep.Start(ctx, sshkeep.Config{Socket: h.sock, Target: cfg.RootAddr,
		Dial: h.dial, Setup: h.setup, Check: h.check, Stop: h.stop,
		Say: func(line string) { cfg.Status(cfg.name, line) }, Log: cfg.Log,
		GiveUpNote: fmt.Sprintf("the head stops by itself when its lease of %v runs out", cfg.lease),
		Timeout:    cfg.Timeout, CommandTimeout: cfg.CommandTimeout, KeepAlive: cfg.KeepAlive, Probe: cfg.Probe,
		Backoff: cfg.Backoff, MaxBackoff: cfg.MaxBackoff, GiveUp: cfg.giveUp, StatusEvery: cfg.StatusEvery,
		Now: h.now}, c)
	if err != nil {
		return nil, h.err(err)
	}
	return h, nil
}

// Link is the state of the SSH connection to the head's machine:
// "connected", "cut" (down, redialling) or "lost" (the supervisor gave
// up, or the head was stopped or closed).
func (h *Head) Link() string { return h.keep.Link() }

// Dir is the head's directory on its machine.
func (h *Head) Dir() string { return h.dir }

// Build is the SHA-256 (hex) of the orrery binary run on the head's
// machine.
func (h *Head) Build() string { return h.build }

// Done is closed when the supervisor has ended: it gave up (Link
// "lost"), or Stop or Close ended it.
func (h *Head) Done() <-chan struct{} { return h.keep.Done() }

// Stop stops the head (`orrery head stop`: its nodes and jobs are
// stopped, its results kept on its disk), then closes the forward and
// the SSH connection and ends the supervisor. With the connection cut,
// or after Close, it dials once more to stop the head. ctx bounds it.
func (h *Head) Stop(ctx context.Context) error {
	if err := h.keep.Stop(ctx); err != nil {
		return h.err(fmt.Errorf("stop the head: %w", err))
	}
	return nil
}

// Close drops the SSH connection and the forward and ends the
// supervisor, leaving the head running: it goes on within its lease and
// a root that launches it again finds it.
func (h *Head) Close() error {
	h.keep.Close()
	return nil
}

func (h *Head) err(err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	return &Error{Cluster: h.cfg.name, Err: err}
}

// say gives the user a line about the cluster.
func (h *Head) say(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	h.cfg.Log.Info(line)
	h.cfg.Status(h.cfg.name, line)
}

// sayEvery says news of a kind at most once per StatusEvery; it is
// logged every time.
func (h *Head) sayEvery(kind, format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	h.cfg.Log.Info(line)
	if h.lim.allow(kind, h.now()) {
		h.cfg.Status(h.cfg.name, line)
	}
}

// dial connects to the head's machine.
func (h *Head) dial(ctx context.Context) (*remote.Client, error) {
	return remote.Dial(ctx, h.cfg.ep, h.cfg.opts)
}

// step is ctx bounded by d.
func step(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d)
}

// prepare learns the machine's platform and the remote user's home,
// and picks the binary: once, at launch.
func (h *Head) prepare(ctx context.Context, c *remote.Client) error {
	sctx, cancel := step(ctx, h.cfg.CommandTimeout)
	p, err := c.Platform(sctx)
	cancel()
	if err != nil {
		return err
	}
	if h.local, err = h.cfg.chooseBinary(p); err != nil {
		return err
	}
	if h.build, err = sshkeep.FileSHA256(h.local); err != nil {
		return fmt.Errorf("binary: %v", err)
	}
	base := h.cfg.RemoteDir
	if base == "" {
		sctx, cancel := step(ctx, h.cfg.CommandTimeout)
		home, err := sshkeep.RemoteHome(sctx, c)
		cancel()
		if err != nil {
			return err
		}
		base = path.Join(home, ".orrery")
	}
	h.bin = path.Join(base, binDir, "orrery-"+h.build[:16])
	h.dir = path.Join(base, headsDir, h.cfg.ID)
	h.sock = path.Join(h.dir, sockName)
	if len(h.sock) > remote.MaxSocketPath {
		return fmt.Errorf("the head's socket %s is longer than a socket path may be (%d bytes, at most %d): use a shorter remote directory", h.sock, len(h.sock), remote.MaxSocketPath)
	}
	return nil
}

// command is the shell command that runs `orrery head VERB --dir DIR`.
func (h *Head) command(verb string) string {
	return sshkeep.ShellQuote(h.bin) + " head " + verb + " --dir " + sshkeep.ShellQuote(h.dir)
}

// setup readies a connection to serve the head (the keeper's Setup,
// before the forward): the binary in place, the directory made, the
// head probed (and replaced if of another build with no job). What the
// probe found is left for check, which starts the head, once the
// forward is relayed, when none runs. On an error the connection is
// useless.
func (h *Head) setup(ctx context.Context, c *remote.Client, again bool) error {
	h.fresh = false
	cctx, cancel := step(ctx, CopyTimeout)
	copied, err := c.CopyFile(cctx, h.local, h.bin, 0o700)
	cancel()
	if err != nil {
		return err
	}
	if copied {
		h.say("copied orrery (build %.12s) to %s", h.build, h.bin)
	}
	sctx, cancel := step(ctx, h.cfg.CommandTimeout)
	defer cancel()
	_, errOut, exit, err := c.Run(sctx, "umask 077 && mkdir -p -- "+sshkeep.ShellQuote(h.dir)+" && chmod 700 -- "+sshkeep.ShellQuote(h.dir), nil)
	if err != nil {
		return err
	}
	if exit != 0 {
		return fmt.Errorf("make %s: %s", h.dir, sshkeep.Failure(errOut, exit))
	}
	p, err := h.probe(ctx, c)
	if err != nil {
		return err
	}
	act := decide(p, h.build)
	if act == actGaveUp && !again {
		act = actStart // a new run tries again
	}
	switch act {
	case actGaveUp:
		if h.GaveUp() == "" {
			h.gaveUp.Store(&p.GaveUp)
			h.cfg.Log.Warn("the head stopped for good", "dir", h.dir, "why", p.GaveUp)
		}
	case actKeep:
		if !again {
			h.say("a head of this build already runs in %s (pid %d): kept", h.dir, p.PID)
		}
	case actKeepOther:
		h.say("a head of another build (%.12s) runs in %s (pid %d) holding %d jobs: kept; it is replaced by this build (%.12s) only when it holds none", p.Build, h.dir, p.PID, p.Jobs, h.build)
	case actReplace:
		if err := h.stop(ctx, c); err != nil {
			return fmt.Errorf("replace the head of another build: %w", err)
		}
		h.say("stopped a head of another build (%.12s, pid %d, holding no job) to start this build (%.12s)", p.Build, p.PID, h.build)
	}
	h.act, h.fresh = act, true
	return nil
}

// check makes sure the head runs (the keeper's Check, with the forward
// relayed). Right after setup it starts the head when none runs: a
// failure fails Launch, and on a connection made again it is said and
// the connection still serves (the next probe tries again). Otherwise
// it probes the head and starts it again when it died (ensure).
func (h *Head) check(ctx context.Context, c *remote.Client, launch bool) error {
	if !h.fresh {
		return h.ensure(ctx, c)
	}
	h.fresh = false
	if h.act != actStart && h.act != actReplace {
		return nil
	}
	pid, err := h.start(ctx, c)
	switch {
	case err != nil && launch:
		return err
	case err != nil:
		h.sayEvery("restart", "the head is not running, and starting it again failed: %v", err)
	case launch:
		h.say("head started in %s (pid %d)", h.dir, pid)
	default:
		h.say("the head was not running; started it again in %s (pid %d)", h.dir, pid)
	}
	return nil
}

// Actions on what a probe found.
type action int

const (
	actStart     action = iota // no head runs: start one
	actKeep                    // a head of this build runs
	actKeepOther               // a head of another build runs and holds jobs
	actReplace                 // a head of another build runs and holds no job
	actGaveUp                  // no head runs: it stopped for good in this run (GaveUp)
)

// decide says what to do with the head a probe found, for this build.
func decide(p ProbeReport, build string) action {
	switch {
	case !p.Running && p.GaveUp != "":
		return actGaveUp
	case !p.Running:
		return actStart
	case p.Build == build:
		return actKeep
	case p.Jobs > 0:
		return actKeepOther
	}
	return actReplace
}

// probe runs `orrery head probe`.
func (h *Head) probe(ctx context.Context, c *remote.Client) (ProbeReport, error) {
	ctx, cancel := step(ctx, h.cfg.CommandTimeout)
	defer cancel()
	out, errOut, exit, err := c.Run(ctx, h.command("probe"), nil)
	if err != nil {
		return ProbeReport{}, err
	}
	if exit != 0 {
		return ProbeReport{}, fmt.Errorf("head probe in %s: %s", h.dir, sshkeep.Failure(errOut, exit))
	}
	return ParseProbe(out)
}

// start runs `orrery head start` with the start input (the token) on
// its standard input, and returns the head's pid.
func (h *Head) start(ctx context.Context, c *remote.Client) (int, error) {
	sctx, cancel := step(ctx, h.cfg.CommandTimeout)
	defer cancel()
	out, errOut, exit, err := c.Run(sctx, h.command("start"), h.cfg.startInput(h.sock))
	pid, ok := parseStarted(out)
	if err == nil && exit == 0 && ok {
		h.cfg.Log.Info("head start", "said", strings.TrimSpace(string(out)))
		return pid, nil
	}
	why := ""
	switch {
	case err != nil:
		why = err.Error()
	case exit != 0:
		why = sshkeep.Failure(errOut, exit)
	default:
		why = fmt.Sprintf("it printed %q, not \"started PID\"", sshkeep.Cut(strings.TrimSpace(string(out)), 200))
	}
	return 0, fmt.Errorf("head failed to start in %s: %s%s", h.dir, why, h.logTail(ctx, c))
}

// parseStarted reads "started PID" or "running PID".
func parseStarted(out []byte) (int, bool) {
	f := strings.Fields(string(out))
	if len(f) != 2 || (f[0] != "started" && f[0] != "running") {
		return 0, false
	}
	pid, err := strconv.Atoi(f[1])
	return pid, err == nil && pid > 0
}

// logTailLines is how many of head.log's last lines a failed start
// quotes.
const logTailLines = 5

// logTail is "; head.log: LINE | LINE ..." of the head's log, or "".
func (h *Head) logTail(ctx context.Context, c *remote.Client) string {
	ctx, cancel := step(ctx, h.cfg.CommandTimeout)
	defer cancel()
	return sshkeep.LogTail(ctx, c, h.dir, logName, logTailLines)
}

// stop runs `orrery head stop`.
func (h *Head) stop(ctx context.Context, c *remote.Client) error {
	ctx, cancel := step(ctx, StopWait+h.cfg.CommandTimeout)
	defer cancel()
	out, errOut, exit, err := c.Run(ctx, h.command("stop"), nil)
	if err != nil {
		return err
	}
	if exit != 0 {
		return fmt.Errorf("head stop in %s: %s", h.dir, sshkeep.Failure(errOut, exit))
	}
	h.cfg.Log.Info("head stop", "said", strings.TrimSpace(string(out)))
	return nil
}

// ensure starts the head again when a probe finds it not running. A
// failure that is the connection's is returned, marked by
// sshkeep.Broken (the keeper then redials); others are said.
func (h *Head) ensure(ctx context.Context, c *remote.Client) error {
	p, err := h.probe(ctx, c)
	if err != nil {
		if kaErr := c.KeepAlive(ctx); kaErr != nil {
			return sshkeep.Broken(kaErr)
		}
		h.sayEvery("probe", "cannot probe the head: %v", err)
		return nil
	}
	h.lim.forget("probe")
	if p.Running {
		h.lim.forget("restart")
		return nil
	}
	if p.GaveUp != "" {
		if h.GaveUp() == "" {
			h.gaveUp.Store(&p.GaveUp)
			h.cfg.Log.Warn("the head stopped for good", "dir", h.dir, "why", p.GaveUp)
		}
		return nil
	}
	h.cfg.Log.Warn("the head is not running: starting it again", "dir", h.dir)
	pid, err := h.start(ctx, c)
	if err != nil {
		if kaErr := c.KeepAlive(ctx); kaErr != nil {
			return sshkeep.Broken(kaErr)
		}
		h.sayEvery("restart", "the head is not running, and starting it again failed: %v", err)
		return nil
	}
	h.lim.forget("restart")
	h.say("the head had stopped; started it again in %s (pid %d)", h.dir, pid)
	return nil
}
