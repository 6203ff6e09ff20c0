package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"orrery/clusterfile"
	"orrery/head"
	"orrery/pki"
	"orrery/sched"
)

// runHead implements `orrery head`: a cluster's head, which the root
// starts (over SSH, or on its own machine) and controls with these
// subcommands. Users do not run it by hand.
func runHead(e *env, args []string) int {
	const summary = "start|serve|probe|stop|token --dir DIR\n\n" +
		"A cluster's head, which `orrery run --cluster FILE` starts for each cluster of a grid:\n" +
		"  start   read the head's spec (JSON, with the join token) on standard input, start a head\n" +
		"          detached in DIR (its output in DIR/head.log), print \"started PID\"; or \"running PID\"\n" +
		"          when one already runs there\n" +
		"  serve   be the head (what start runs)\n" +
		"  probe   print one line of JSON: running, pid, build (its executable's SHA-256), jobs\n" +
		"  stop    stop the head in DIR (its nodes and jobs; results and journal stay on disk)\n" +
		"  token   print the join token of the head's own port, with which a node joins the cluster:\n" +
		"          orrery agent --connect ADDR --token-file FILE (ADDR: the cluster's `listen`)"
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintln(e.stderr, "Usage: orrery head "+summary)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return exitOK
		}
		return exitInvalid
	}
	sub := args[0]
	fs := newFlags(e, "head "+sub, "--dir DIR")
	dir := fs.String("dir", "", "the head's `directory` (one per experiment and cluster)")
	wait := fs.Duration("wait", 30*time.Second, "stop: how long to wait for the head to stop")
	if status, ok := noArgs(fs, args[1:]); !ok {
		return status
	}
	if *dir == "" {
		fmt.Fprintf(e.stderr, "orrery: head %s: --dir is needed\n", sub)
		return exitInvalid
	}
	switch sub {
	case "start":
		return headStart(e, *dir)
	case "serve":
		return headServe(e, *dir)
	case "probe":
		p, err := head.ProbeDir(*dir)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: head probe: %v\n", err)
			return exitSystem
		}
		b, _ := json.Marshal(p)
		fmt.Fprintln(e.stdout, string(b))
		return exitOK
	case "stop":
		was, err := head.Stop(*dir, *wait)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: head stop: %v\n", err)
			return exitSystem
		}
		if was {
			fmt.Fprintln(e.stdout, "stopped")
		} else {
			fmt.Fprintln(e.stdout, "not running")
		}
		return exitOK
	case "token":
		tok, err := head.Token(*dir)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: head token: %v\n", err)
			return exitSystem
		}
		fmt.Fprintln(e.stdout, tok)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "orrery: head: unknown subcommand %q (start, serve, probe, stop, token)\n", sub)
	return exitInvalid
}

// headStart starts `orrery head serve` detached (its own session, so it
// outlives the SSH session that started it), hands it the spec on its
// standard input, and waits until it holds its directory.
func headStart(e *env, dir string) int {
	spec, err := head.ReadSpec(os.Stdin)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: head start: %v\n", err)
		return exitInvalid
	}
	if err := head.SetRootAddr(dir, spec.Root); err != nil {
		fmt.Fprintf(e.stderr, "orrery: head start: %v\n", err)
		return exitSystem
	}
	if p, err := head.ProbeDir(dir); err == nil && p.Running {
		if p.PID > 0 {
			syscall.Kill(p.PID, syscall.SIGUSR1) // dial the root again now
		}
		fmt.Fprintf(e.stdout, "running %d\n", p.PID)
		return exitOK
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		fmt.Fprintf(e.stderr, "orrery: head start: %v\n", err)
		return exitSystem
	}
	logf, err := os.OpenFile(dir+"/head.log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: head start: %v\n", err)
		return exitSystem
	}
	defer logf.Close()
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: head start: %v\n", err)
		return exitSystem
	}
	b, _ := json.Marshal(spec)
	cmd := exec.Command(exe, "head", "serve", "--dir", dir)
	cmd.Stdin = bytes.NewReader(b)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(e.stderr, "orrery: head start: %v\n", err)
		return exitSystem
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		select {
		case err := <-exited:
			fmt.Fprintf(e.stderr, "orrery: head start: the head exited at once (%v): %s\n", err, oneLine(head.LogTail(dir, 3)))
			return exitSystem
		case <-time.After(20 * time.Millisecond):
		}
		if p, err := head.ProbeDir(dir); err == nil && p.Running && p.PID == cmd.Process.Pid {
			fmt.Fprintf(e.stdout, "started %d\n", p.PID)
			return exitOK
		}
	}
	cmd.Process.Kill()
	fmt.Fprintf(e.stderr, "orrery: head start: the head did not start within 30 s: %s\n", oneLine(head.LogTail(dir, 3)))
	return exitSystem
}

// oneLine joins lines for a one-line message.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " | ")), " ")
}

// headServe is the head itself.
func headServe(e *env, dir string) int {
	// Before the lock: from then on, a root may signal it (see headStart).
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	spec, err := head.ReadSpec(os.Stdin)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: head: %v\n", err)
		return exitInvalid
	}
	lock, err := head.TakeLock(dir)
	if errors.Is(err, head.ErrRunning) {
		fmt.Fprintf(e.stderr, "orrery: head: %s: %v\n", dir, err)
		return exitInvalid
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: head: %v\n", err)
		return exitSystem
	}
	defer lock.Release()
	g, err := clusterfile.Parse("cluster "+spec.Name, strings.NewReader(spec.Cluster))
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: head: %v\n", err)
		return exitInvalid
	}
	var cl *clusterfile.Cluster
	for i := range g.Clusters {
		if g.Clusters[i].Name == spec.Name {
			cl = &g.Clusters[i]
		}
	}
	if cl == nil {
		fmt.Fprintf(e.stderr, "orrery: head: the spec's cluster text has no cluster %s\n", spec.Name)
		return exitInvalid
	}
	tok, err := pki.ParseToken(spec.Token)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: head: the join token: %v\n", err)
		return exitInvalid
	}
	cfg := head.Config{Dir: dir, Cluster: *cl, Root: spec.Root, Token: tok, Lease: cl.Lease,
		Log: slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Status: func(s string) {
			fmt.Fprintf(e.stderr, "%s orrery head %s: %s\n", time.Now().Format(time.RFC3339), spec.Name, s)
		}}
	if spec.Lease != "" {
		if cfg.Lease, err = time.ParseDuration(spec.Lease); err != nil {
			fmt.Fprintf(e.stderr, "orrery: head: lease %q: %v\n", spec.Lease, err)
			return exitInvalid
		}
	}
	if spec.Policy != "" {
		if cfg.Policy, err = sched.PolicyByName(spec.Policy); err != nil {
			fmt.Fprintf(e.stderr, "orrery: head: %v\n", err)
			return exitInvalid
		}
	}
	redial := make(chan struct{}, 1)
	go func() {
		for range usr1 {
			select {
			case redial <- struct{}{}:
			default:
			}
		}
	}()
	cfg.Redial = redial
	h, err := head.New(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: head: %v\n", err)
		return exitInvalid
	}
	signal.Ignore(syscall.SIGHUP) // it outlives the session that started it
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg.Status("started")
	err = h.Run(ctx)
	switch {
	case err == nil:
		cfg.Status("the experiment is over; exiting")
		return exitOK
	case ctx.Err() != nil, errors.Is(err, head.ErrStopped):
		cfg.Status(fmt.Sprintf("stopped (%v); the jobs it held are in its journal", err))
		return exitInterrupted
	case errors.Is(err, head.ErrLeaseExpired):
		cfg.Status(fmt.Sprintf("%v (%s): stopped its nodes; its results and journal stay in %s", err, cfg.Lease, dir))
		return exitSystem
	}
	cfg.Status(err.Error())
	return exitSystem
}
