package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"orrery/cluster"
	"orrery/dispatch"
	"orrery/pki"
	"orrery/plan"
	"orrery/port"
	"orrery/sched"
	"orrery/store"
	"orrery/sweep"
	"orrery/task"
)

// exitInterrupted is the status of a run stopped by Ctrl-C or SIGTERM.
const exitInterrupted = 130

// runRun implements `orrery run`.
func runRun(e *env, args []string) int {
	fs := newFlags(e, "run", "[--nodes N] [--job-limit K] [--policy P] [--cluster FILE] [--seed N] [--state-dir DIR] [--listen HOST:PORT [--advertise NAME]] PLAN")
	nodes := fs.Int("nodes", 1, "number of `N` local nodes in the embedded cluster")
	clusterFile := fs.String("cluster", "", "cluster `file` describing the local nodes (names, job limits, CPU shares, memory)")
	jobLimit := fs.Int("job-limit", 0, "jobs each node runs at once (default: its CPUs)")
	policy := fs.String("policy", "orrery", "scheduling `policy`: orrery (learns, longest expected first on the fastest node, duplicates stragglers, restarts jobs that overcommit memory), fcfs (EnFuzion's), fcfs+mosix or mec (MOSIX's migration between the nodes of a --cluster file with control groups; elsewhere as fcfs), mosix (only there)")
	seed := fs.Uint64("seed", 0, "seed for random values of a new experiment (default: random)")
	stateDir := fs.String("state-dir", "", "state directory (default: .orrery beside the plan)")
	dialect := fs.String("dialect", "", "read the plan as `classic` or modern")
	keep := fs.Bool("keep", false, "keep the job directories of successful jobs on the nodes")
	listen := fs.String("listen", "", "also accept `orrery agent` nodes on this `address` (host:port; 0.0.0.0:PORT or [::]:PORT for every interface), over TLS, authenticated by the join token (orrery token)")
	advertise := fs.String("advertise", "", "how nodes reach --listen (`name[:port]`); the server certificate names it")
	path, status, ok := oneArg(fs, args)
	if !ok {
		return status
	}
	if *nodes < 0 || *nodes == 0 && *listen == "" {
		fmt.Fprintln(e.stderr, "orrery: --nodes must be at least 1 (or 0 with --listen)")
		return exitInvalid
	}
	pol, err := sched.PolicyByName(*policy)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: --policy: %v\n", err)
		return exitInvalid
	}
	spec := cluster.Local(*nodes, *jobLimit)
	if *clusterFile != "" {
		if spec, err = cluster.Load(*clusterFile); err != nil {
			fmt.Fprintf(e.stderr, "orrery: %v\n", err)
			return exitInvalid
		}
	}
	// Jobs migrate between the nodes of a cluster file with control
	// groups, all on this machine; not to agents that join by --listen.
	migratable := spec.Migratable() && *listen == ""
	if pol.NoQueue && !migratable {
		fmt.Fprintf(e.stderr, "orrery: --policy: policy %s starts every job at once and relies on process migration, which only the nodes of a --cluster file with control groups have (and not with --listen); use fcfs+mosix or orrery\n", pol.Name)
		return exitInvalid
	}
	p, ok := parsePlan(e, path, *dialect)
	if !ok {
		return exitInvalid
	}
	root := filepath.Dir(path)
	if *stateDir == "" {
		*stateDir = filepath.Join(root, ".orrery")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	st, err := store.Open(ctx, *stateDir)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitFailed
	}
	defer st.Close()
	exp, resumed, err := experiment(ctx, e, st, p, path, *seed, flagGiven(fs, "seed"))
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitFailed
	}
	sw, err := sweep.New(p, sweep.Options{Root: root, Seed: exp.Seed})
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return exitInvalid
	}
	if resumed {
		fmt.Fprintf(e.stderr, "orrery: resuming experiment %d from %s\n", exp.ID, *stateDir)
	}
	prog := newProgress(e)
	var c *cluster.Cluster
	var migrate func(pgid int, node string) error
	if migratable {
		migrate = func(pgid int, node string) error { return c.Migrate(pgid, node) }
	}
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d := dispatch.New(dispatch.Config{Plan: p, Sweep: sw, Store: st, Experiment: exp, Root: root,
		Policy: pol, NoNodes: 30 * time.Second, Progress: prog.update, Migrate: migrate, Log: log})
	// Nodes see the root directory confined: only what their copy
	// commands name, nothing outside it.
	nodeRoot := task.ConfinedRoot{Dir: root, TempDir: d.IncomingDir(), Hidden: []string{*stateDir}}
	stopListening := func() {}
	if *listen != "" {
		pt, err := listenPort(*listen, *advertise, *stateDir, d, nodeRoot, log)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: %v\n", err)
			return exitInvalid
		}
		fmt.Fprintf(e.stderr, "orrery: listening for agents on %s\n", pt.Addr())
		fmt.Fprintf(e.stderr, "orrery: a node joins with: orrery agent --connect %s --token-file FILE\n", joinAddr(pt.Addr(), *advertise))
		fmt.Fprintf(e.stderr, "orrery:   where FILE holds the join token that `orrery token --state-dir %s` prints (or set ORRERY_TOKEN)\n", *stateDir)
		portCtx, stopPort := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			pt.Run(portCtx)
		}()
		stopListening = func() {
			stopPort()
			<-done
		}
	}
	nodeCtx, stopNodes := context.WithCancel(ctx)
	c, err = cluster.Start(nodeCtx, spec, filepath.Join(*stateDir, "nodes"),
		cluster.Options{KeepJobDirs: *keep, GroupPrefix: fmt.Sprintf("exp%d", exp.ID), Root: nodeRoot, Log: log}, d)
	var sum dispatch.Summary
	runErr := err
	if err == nil {
		sum, runErr = d.Run(ctx)
	}
	d.Close()
	stopListening()
	stopNodes()
	c.Wait()
	prog.finish(sum)
	return closing(e, sum, runErr, root, *stateDir)
}

// experiment returns the experiment to run: the latest one in the store
// when its plan text is unchanged (resumed), or a new one.
func experiment(ctx context.Context, e *env, st *store.Store, p *plan.Plan, path string, seed uint64, seedSet bool) (*store.Experiment, bool, error) {
	last, err := st.Latest(ctx)
	if err != nil && !errors.Is(err, store.ErrNoExperiment) {
		return nil, false, err
	}
	if last != nil && last.PlanText == p.Source && last.Dialect == p.Dialect.String() {
		if seedSet && seed != last.Seed {
			fmt.Fprintf(e.stderr, "orrery: --seed %d ignored: resuming experiment %d, drawn with seed %d\n", seed, last.ID, last.Seed)
		}
		return last, true, nil
	}
	if last != nil {
		fmt.Fprintf(e.stderr, "orrery: the plan changed since experiment %d; starting a new experiment\n", last.ID)
	}
	if !seedSet {
		seed = newSeed()
	}
	abs, _ := filepath.Abs(path)
	exp := &store.Experiment{PlanPath: abs, PlanText: p.Source, Dialect: p.Dialect.String(), Seed: seed}
	sw, err := sweep.New(p, sweep.Options{Root: filepath.Dir(path), Seed: seed})
	if err == nil {
		exp.Names = sw.Names
	}
	return exp, false, st.Create(ctx, exp)
}

// closing prints the summary and returns the exit status.
func closing(e *env, sum dispatch.Summary, err error, root, stateDir string) int {
	fmt.Fprintf(e.stdout, "%d done, %d failed", sum.Done, sum.Failed)
	if left := sum.Total - sum.Done - sum.Failed; sum.Exact && left > 0 {
		fmt.Fprintf(e.stdout, ", %d not run", left)
	}
	fmt.Fprintf(e.stdout, " in %s. Results in %s; state in %s.\n", sum.Wall.Round(time.Millisecond), root, stateDir)
	switch {
	case errors.Is(err, dispatch.ErrInterrupted):
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitInterrupted
	case err != nil:
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitFailed
	case sum.Failed > 0:
		fmt.Fprintf(e.stdout, "See why: orrery jobs --state failed; orrery log JOB. Run them again: orrery rerun --failed.\n")
		return exitFailed
	}
	return exitOK
}

// listenPort opens the root's port with the state directory's key
// material (made when there is none).
func listenPort(addr, advertise, stateDir string, d *dispatch.Dispatcher, root task.Root, log *slog.Logger) (*port.Port, error) {
	auth, err := pki.Open(stateDir)
	if err != nil {
		return nil, err
	}
	return port.Listen(port.Config{Addr: addr, Advertise: advertise, Authority: auth, Dispatcher: d, Root: root, Log: log})
}

// joinAddr is the address a node connects to: the advertised one (with
// the port's port unless it names one), else the listen address.
func joinAddr(a net.Addr, advertise string) string {
	h, p, _ := net.SplitHostPort(a.String())
	if advertise == "" {
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			if name, err := os.Hostname(); err == nil {
				return net.JoinHostPort(name, p)
			}
		}
		return a.String()
	}
	if _, _, err := net.SplitHostPort(advertise); err == nil {
		return advertise
	}
	return net.JoinHostPort(advertise, p)
}
