package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"orrery/agent"
	"orrery/cgroup"
	"orrery/cluster"
	"orrery/clusterfile"
	"orrery/pki"
	"orrery/port"
	"orrery/protocol"
)

// exitRefused is the status of an agent whose credentials the root
// refused: retrying would not help.
const exitRefused = 3

// runAgent implements `orrery agent --connect ADDR`: one node agent as
// its own process, over the root's TLS port.
func runAgent(e *env, args []string) int {
	fs := newFlags(e, "agent", "{--connect HOST:PORT | --connect-file FILE} [--token-file FILE] [--name NAME] [--cpus N] [--job-limit K] [--speed S] [--memory SIZE] [--work-dir DIR] [--wait DURATION] [--ends-in TIME] [--idle-exit DURATION]\n\n"+
		"The join token (printed by `orrery token` on the root) comes from --token-file, else $ORRERY_TOKEN,\n"+
		"else --token (visible to every user of this machine in the process list: avoid it).\n"+
		"The agent may start before the root: it keeps trying to reach it (see --wait).\n"+
		"A batch pilot says when the batch system ends it (--ends-in): it gets no job expected to run past that,\n"+
		"and drains (takes no more jobs, and leaves with status 0 once its jobs have ended) near its end,\n"+
		"or after --idle-exit without work.")
	usageFooter(e, fs, agentExitHelp)
	addr := fs.String("connect", "", "the root's `address` (host:port) to connect to")
	addrFile := fs.String("connect-file", "", "`file` whose first line is the address (host:port) to connect to, read again before each try (a head that started again on another port is found again); a missing or empty file is a root not reachable yet")
	tokenFile := fs.String("token-file", "", "`file` holding the join token")
	tokenArg := fs.String("token", "", "the join `token` (prefer --token-file or $ORRERY_TOKEN: a command line is visible to every user)")
	host, _ := os.Hostname()
	name := fs.String("name", host, "node `name` to ask for")
	cpus := fs.Int("cpus", runtime.NumCPU(), "CPUs this node offers")
	limit := fs.Int("job-limit", 0, "jobs at once (default: its CPUs)")
	speed := fs.Float64("speed", 1, "relative CPU `speed` (1 = reference; the root believes it only of nodes it started)")
	memory := fs.String("memory", "", "RAM this node offers, such as 4G (default: the machine's); orrery keeps its jobs' resident memory within it")
	work := fs.String("work-dir", defaultAgentWorkDir(), "`directory` for job directories: the user's own, writable by no one else (made if missing)")
	keep := fs.Bool("keep", false, "keep the job directories of successful jobs")
	group := fs.String("cgroup", "", "control `group` (made by the root, which passes it to the nodes it starts) that holds this node's jobs: its limits are theirs; the agent runs outside it")
	wait := fs.Duration("wait", 0, "give up with exit status 4 when the root cannot be reached for this `DURATION` (such as 90s, 2h); 0 keeps trying for ever")
	endsArg := fs.String("ends-in", "", "how long from now until the batch system ends this node: a `TIME` such as 90m, or in Slurm's words (MM, MM:SS, HH:MM:SS, D-HH:MM:SS; UNLIMITED, NOT_SET or INVALID: no end)")
	idleExit := fs.Duration("idle-exit", 0, "drain and leave (status 0) after this `DURATION` without an attempt (since it joined or its last attempt ended); 0: never")
	if status, ok := noArgs(fs, args); !ok {
		return status
	}
	if *wait < 0 {
		fmt.Fprintln(e.stderr, "orrery: agent: --wait must not be negative (0 keeps trying for ever)")
		return exitInvalid
	}
	if *idleExit < 0 {
		fmt.Fprintln(e.stderr, "orrery: agent: --idle-exit must not be negative (0: never)")
		return exitInvalid
	}
	endsIn, err := parseEndsIn(*endsArg)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: agent: --ends-in %q: %v\n", *endsArg, err)
		return exitInvalid
	}
	if *addr != "" && *addrFile != "" {
		fmt.Fprintln(e.stderr, "orrery: agent: --connect and --connect-file name the root's address twice: give one of them")
		return exitInvalid
	}
	if *addr == "" && *addrFile == "" {
		fs.Usage()
		return exitInvalid
	}
	var mem int64
	if *memory != "" {
		var err error
		if mem, err = cluster.ParseSize(*memory); err != nil {
			fmt.Fprintf(e.stderr, "orrery: agent: --memory %q: %v\n", *memory, err)
			return exitInvalid
		}
	}
	if err := checkWorkDir(*work); err != nil {
		fmt.Fprintf(e.stderr, "orrery: agent: --work-dir %s\n", err)
		return exitInvalid
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	drained := false // the dispatcher let the node go after it drained (set by Serve's or Run's goroutine, before they return)
	cfg := agent.Config{Name: *name, CPUs: *cpus, JobLimit: *limit, Speed: *speed,
		Memory: mem, WorkDir: *work, KeepJobDirs: *keep, Wait: *wait, EndsIn: endsIn, IdleExit: *idleExit,
		Drained: func() { drained = true },
		Status:  func(s string) { fmt.Fprintf(e.stderr, "orrery agent: %s\n", s) }}
	if *group != "" {
		g, err := cgroup.Lookup(*group)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: agent: --cgroup %s: %v\n", *group, err)
			return exitInvalid
		}
		cfg.Confine = func(pgid int) error {
			if err := g.AddGroup(pgid); err != nil && !errors.Is(err, cgroup.ErrEnded) {
				return err
			}
			return nil // (a command that has already ended needs no limit)
		}
	}
	if fd, ok := strings.CutPrefix(*addr, "fd:"); ok {
		// A socket the root passed to a node it started itself.
		conn, err := inherited(fd)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: agent: --connect %q: %v\n", *addr, err)
			return exitInvalid
		}
		if err := agent.Run(ctx, conn, cfg); err != nil {
			fmt.Fprintf(e.stderr, "orrery: agent: %v\n", err)
			return exitSystem
		}
		if ctx.Err() != nil {
			return exitInterrupted
		}
		return exitOK
	}
	text, err := joinToken(*tokenFile, *tokenArg)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: agent: %v\n", err)
		return exitInvalid
	}
	tok, err := pki.ParseToken(text)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: agent: the join token: %v\n", err)
		return exitInvalid
	}
	client := &port.Client{Addr: *addr, Token: tok, Name: *name}
	dial := client.Dial
	if *addrFile != "" {
		// The address as the file says it before each try (Serve tries
		// one at a time, so the client is changed by one goroutine).
		dial = func(ctx context.Context) (*protocol.Conn, error) {
			a, err := readConnectFile(*addrFile)
			if err != nil {
				return nil, err
			}
			client.Addr = a
			return client.Dial(ctx)
		}
	}
	err = agent.Serve(ctx, dial, cfg)
	switch {
	case errors.Is(err, agent.ErrRefused):
		fmt.Fprintf(e.stderr, "orrery: agent: %v\n", err)
		return exitRefused
	case errors.Is(err, agent.ErrUnreachable):
		fmt.Fprintf(e.stderr, "orrery agent: gave up: %v (root %s, --wait %s)\n", err, cmp.Or(client.Addr, *addrFile), *wait)
		return exitSystem
	case err != nil:
		fmt.Fprintf(e.stderr, "orrery: agent: %v\n", err)
		return exitSystem
	case ctx.Err() != nil:
		return exitInterrupted
	case drained:
		fmt.Fprintf(e.stderr, "orrery agent: drained; %s let this node go; exiting\n", client.Addr)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "orrery agent: the experiment is over (root %s ended it); exiting\n", client.Addr)
	return exitOK
}

// parseEndsIn reads --ends-in: a Go duration (90m), or a time limit in
// Slurm's words (MM, MM:SS, HH:MM:SS, D-HH[:MM[:SS]], as squeue's %L
// prints the time left); "", UNLIMITED, NOT_SET and INVALID mean no end
// (0).
func parseEndsIn(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	switch strings.ToUpper(s) {
	case "", "UNLIMITED", "NOT_SET", "INVALID":
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return 0, errors.New("must be above 0")
		}
		return d, nil
	}
	if strings.Trim(s, "0123456789:-") != "" {
		return 0, errors.New("want a duration such as 90m, a Slurm time such as 01:30:00 or 1-12:00:00, or UNLIMITED")
	}
	d, err := clusterfile.ParseSlurmDuration(s)
	if err == nil && d <= 0 {
		d = time.Nanosecond // its end has come: it drains at once
	}
	return d, err
}

// readConnectFile reads the address in the first line of --connect-file.
// A missing or empty file is an address not there yet: the agent tries
// again.
func readConnectFile(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return "", fmt.Errorf("no address in --connect-file %s yet (%v)", file, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	if a := strings.TrimSpace(line); a != "" {
		return a, nil
	}
	return "", fmt.Errorf("no address in --connect-file %s yet (it is empty)", file)
}

// agentExitHelp is the exit-status paragraph of `orrery agent --help`.
const agentExitHelp = `Exit status:
  0    the root ended the experiment (or told the node to stop), or let it go once it drained
       (--idle-exit, --ends-in)
  2    bad usage: a wrong flag, no join token
  3    the root refused the node's credentials (a wrong or rotated token, a revoked node):
       trying again would not help
  4    Orrery's own failure: the root could not be reached within --wait, or the
       connection of a node the root started failed
  130  interrupted (Ctrl-C, SIGTERM): its running attempts were stopped
`

// defaultAgentWorkDir is the default work directory of `orrery agent`:
// the user's own, TMPDIR/orrery-agent-UID.
func defaultAgentWorkDir() string {
	return filepath.Join(os.TempDir(), "orrery-agent-"+strconv.Itoa(os.Getuid()))
}

// checkWorkDir makes dir if it is missing (only this user can write
// into it), and refuses one that another user could have put records in
// (that make the agent kill this user's processes, or remove its files):
// a symbolic link, one owned by another user, one writable by group or
// others. Its error starts with dir.
func checkWorkDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err == nil {
			fi, err = os.Lstat(dir)
		}
	}
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = fmt.Errorf("%s %s", pe.Op, pe.Err)
		}
		return fmt.Errorf("%s: %v", dir, err)
	}
	uid := os.Getuid()
	switch st, _ := fi.Sys().(*syscall.Stat_t); {
	case fi.Mode()&os.ModeSymlink != 0:
		return fmt.Errorf("%s: is a symbolic link; name the directory itself", dir)
	case !fi.IsDir():
		return fmt.Errorf("%s: not a directory", dir)
	case st == nil || int(st.Uid) != uid:
		owner := -1
		if st != nil {
			owner = int(st.Uid)
		}
		return fmt.Errorf("%s: owned by user %d, not by you (%d); use a directory of your own", dir, owner, uid)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s: writable by group or others (mode %04o); chmod go-w it or use a directory of your own", dir, fi.Mode().Perm())
	}
	return nil
}

// joinToken finds the join token: in the file, else in $ORRERY_TOKEN,
// else on the command line.
func joinToken(file, arg string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if t := strings.TrimSpace(os.Getenv("ORRERY_TOKEN")); t != "" {
		os.Unsetenv("ORRERY_TOKEN") // the jobs inherit this environment
		return t, nil
	}
	if arg != "" {
		return strings.TrimSpace(arg), nil
	}
	return "", errors.New("no join token: pass --token-file FILE or set ORRERY_TOKEN (`orrery token` on the root prints it)")
}

// inherited returns the connection on file descriptor fd, which the
// parent process passed.
func inherited(fd string) (net.Conn, error) {
	n, err := strconv.Atoi(fd)
	if err != nil || n < 3 {
		return nil, fmt.Errorf("want fd:N with N >= 3")
	}
	f := os.NewFile(uintptr(n), "dispatcher")
	defer f.Close()
	return net.FileConn(f)
}
