package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"orrery/cluster"
	"orrery/clusterfile"
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
	fs := newFlags(e, "run", "[--nodes N] [--job-limit K] [--policy P] [--cluster FILE] [--seed N] [--state-dir DIR] [--listen HOST:PORT [--advertise NAME]] [--wait DURATION] PLAN")
	usageFooter(e, fs, runExitHelp)
	nodes := fs.Int("nodes", 1, "number of `N` local nodes in the embedded cluster; 0 with --listen: only agents (orrery agent) run jobs")
	clusterFile := fs.String("cluster", "", "cluster `file` describing the local nodes (names, job limits, CPU shares, memory)")
	jobLimit := fs.Int("job-limit", 0, "jobs each node runs at once (default: its CPUs)")
	policy := fs.String("policy", "orrery", "scheduling `policy`: orrery (learns, longest expected first on the fastest node, duplicates stragglers, restarts jobs that overcommit memory), fcfs (EnFuzion's), fcfs+mosix or mec (MOSIX's migration between the nodes of a --cluster file with control groups; elsewhere as fcfs), mosix (only there)")
	seed := fs.Uint64("seed", 0, "seed for random values of a new experiment (default: random)")
	stateDir := fs.String("state-dir", "", "state directory (default: .orrery beside the plan)")
	dialect := fs.String("dialect", "", "read the plan as `classic` or modern")
	keep := fs.Bool("keep", false, "keep the job directories of successful jobs on the nodes")
	listen := fs.String("listen", "", "also accept nodes that run orrery agent on this `address` (host:port; 0.0.0.0:PORT or [::]:PORT for every interface), over TLS, authenticated by the join token (orrery token)")
	advertise := fs.String("advertise", "", "how nodes reach --listen (`name[:port]`); the server certificate names it")
	wait := fs.Duration("wait", 0, "with work left and no node connected, wait this `DURATION` (such as 90s, 2h) for one before giving up with exit status 4; 0 waits for ever (default: for ever with --listen, as batch-system nodes may sit in a queue for hours; 30s without, as no node can join)")
	path, status, ok := oneArg(fs, args)
	if !ok {
		return status
	}
	if *wait < 0 {
		fmt.Fprintln(e.stderr, "orrery: --wait must not be negative (0 waits for ever)")
		return exitInvalid
	}
	if !flagGiven(fs, "wait") && *listen == "" {
		*wait = 30 * time.Second
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
	var gridFile *clusterfile.Grid
	if *clusterFile != "" {
		g, isg, err := isGrid(*clusterFile)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: %s\n", strings.ReplaceAll(err.Error(), "\n", "\norrery: "))
			return exitInvalid
		}
		if isg {
			// The root coordinates: every cluster's head joins its port.
			gridFile, spec = g, cluster.Spec{}
			if !flagGiven(fs, "wait") {
				*wait = 5 * time.Minute
			}
		} else if spec, err = cluster.Load(*clusterFile); err != nil {
			// Every error of the file, one per line.
			fmt.Fprintf(e.stderr, "orrery: %s\n", strings.ReplaceAll(err.Error(), "\n", "\norrery: "))
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
	// A --listen address that cannot be used is refused before anything
	// is made.
	var ln net.Listener
	portAddr := *listen
	if gridFile != nil && portAddr == "" {
		portAddr = "127.0.0.1:0" // heads reach it on this machine, or through their SSH forwards
	}
	if portAddr != "" {
		if ln, err = net.Listen("tcp", portAddr); err != nil {
			fmt.Fprintf(e.stderr, "orrery: --listen %s: %v\n", *listen, err)
			return exitInvalid
		}
		defer ln.Close()
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if portAddr != "" {
		// Key material this build cannot read is refused before the
		// store is opened, so that nothing in the directory changes.
		if err := pki.Check(*stateDir); err != nil {
			fmt.Fprintf(e.stderr, "orrery: %v\n", err)
			return exitSystem
		}
	}
	st, err := store.Open(ctx, *stateDir)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	defer st.Close()
	exp, resumed, err := experiment(ctx, e, st, p, path, *seed, flagGiven(fs, "seed"), pol.Name)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
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
	// With a port, web peers (Prometheus, viewers) are served on it too.
	var auth *pki.Authority
	var ws *webSide
	progress, decided := prog.update, func(time.Duration) {}
	if portAddr != "" {
		if auth, err = pki.Open(*stateDir); err != nil {
			fmt.Fprintf(e.stderr, "orrery: %v\n", err)
			return exitSystem
		}
		ws = newWebSide(auth, st, exp, log)
		progress = func(p dispatch.Progress) { prog.update(p); ws.progress(p) }
		decided = ws.decided
	}
	d := dispatch.New(dispatch.Config{Plan: p, Sweep: sw, Store: st, Experiment: exp, Root: root,
		Policy: pol, NoNodes: *wait, Progress: progress, Decided: decided, PerNode: ws != nil, Migrate: migrate, Log: log,
		Grid: gridFile != nil, HeadTimeout: maxLease(gridFile)})
	// Nodes see the root directory confined: only what their copy
	// commands name, nothing outside it.
	nodeRoot := task.ConfinedRoot{Dir: root, TempDir: d.IncomingDir(), Hidden: []string{*stateDir}}
	stopListening := func() {}
	stopWatching := func() {}
	var heads *grid
	if portAddr != "" {
		pt, err := port.Listen(port.Config{Addr: portAddr, Listener: ln, Advertise: *advertise, Authority: auth, Dispatcher: d,
			Root: nodeRoot, Log: log, Web: ws.handler()})
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: %v\n", err)
			return exitSystem
		}
		// Where `orrery token --viewer` sends a viewer.
		if err := recordPortAddr(*stateDir, joinAddr(pt.Addr(), *advertise)); err != nil {
			log.Warn("the port's address is not recorded for orrery token --viewer", "err", err)
		}
		if *listen != "" {
			fmt.Fprintf(e.stderr, "orrery: listening for agents on %s\n", pt.Addr())
			joins := "orrery agent --connect " + shellQuote(joinAddr(pt.Addr(), *advertise)) + " --token-file FILE"
			if len(spec.Nodes) == 0 && gridFile == nil {
				fmt.Fprintf(e.stderr, "orrery: waiting for nodes (%s); a node joins with: %s\n", forDuration(*wait), joins)
			} else {
				fmt.Fprintf(e.stderr, "orrery: a node joins with: %s\n", joins)
			}
			fmt.Fprintf(e.stderr, "orrery:   where FILE holds the join token that `%s token --state-dir %s` prints (or set ORRERY_TOKEN)\n", self(), shellQuote(*stateDir))
		}
		portCtx, stopPort := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			pt.Run(portCtx)
		}()
		totalsDone := make(chan struct{})
		go func() {
			defer close(totalsDone)
			ws.run(portCtx)
		}()
		stopListening = func() {
			stopPort()
			<-done
			<-totalsDone
			forgetPortAddr(*stateDir) // no viewer link points at a port that is gone
		}
		if gridFile != nil {
			heads, err = startGrid(ctx, e, *clusterFile, gridFile, auth, pt.Addr().String(), *stateDir, exp.ID, pol, log)
			if err != nil {
				stopListening()
				fmt.Fprintf(e.stderr, "orrery: %v\n", err)
				return exitSystem
			}
			// Heads that kept attempts of a root that stopped come back
			// first, so that those are taken back, not run again.
			d.Await(heads.names(), headsAwait)
			watchCtx, stopWatch := context.WithCancel(ctx)
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				heads.watch(watchCtx, d.LoseCluster)
			}()
			stopWatching = func() { stopWatch(); <-watched }
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
	stopWatching()
	if heads != nil {
		heads.finish(runErr == nil)
	}
	d.Close()
	stopListening()
	stopNodes()
	c.Wait()
	prog.finish(sum)
	return closing(e, sum, runErr, where{results: resultsDir(p, root), stateDir: *stateDir,
		again: self() + " run " + shellJoin(args), wait: *wait})
}

// runExitHelp is the exit-status paragraph of `orrery run --help`.
const runExitHelp = `Exit status:
  0    every job succeeded
  1    some job failed (or rootstart or rootfinish): see orrery jobs --state failed
  2    a bad plan or bad usage (a wrong flag, a --listen address that cannot be used): nothing ran
  4    Orrery's own failure: the state directory removed, replaced or unwritable, its disk
       full, or no node connected and in service within --wait (nodes out of service:
       orrery status says why); the jobs left are saved where they can be
  130  interrupted (Ctrl-C, SIGTERM): run the same command again to resume
`

// forDuration says how long a wait lasts: "for ever" for 0.
func forDuration(d time.Duration) string {
	if d <= 0 {
		return "for ever"
	}
	return "for " + d.String()
}

// experiment returns the experiment to run: the latest one in the store
// when its plan text is unchanged (resumed), or a new one, which records
// the policy it was started with. It prints the plan's warnings first.
func experiment(ctx context.Context, e *env, st *store.Store, p *plan.Plan, path string, seed uint64, seedSet bool, policy string) (*store.Experiment, bool, error) {
	printWarnings(e, p.Warnings)
	last, err := st.Latest(ctx)
	if err != nil && !errors.Is(err, store.ErrNoExperiment) {
		return nil, false, err
	}
	if last != nil && last.PlanText == p.Source && last.Dialect == p.Dialect.String() {
		if seedSet && seed != last.Seed {
			fmt.Fprintf(e.stderr, "orrery: --seed %d ignored: resuming experiment %d, drawn with seed %d\n", seed, last.ID, last.Seed)
		}
		if was := startedPolicy(last); was != "" && was != policy {
			fmt.Fprintf(e.stderr, "orrery: note: experiment %d was started with --policy %s; resuming it under %s runs only the jobs it has not finished. To compare policies, give each its own state directory: %s run --policy %s --state-dir %s %s\n",
				last.ID, was, policy, self(), policy, shellQuote(filepath.Join(filepath.Dir(path), ".orrery-"+policy)), shellQuote(path))
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
	exp := &store.Experiment{PlanPath: abs, PlanText: p.Source, Dialect: p.Dialect.String(), Seed: seed,
		Settings: settingsJSON(policy)}
	sw, err := sweep.New(p, sweep.Options{Root: filepath.Dir(path), Seed: seed})
	if err == nil {
		exp.Names = sw.Names
	}
	return exp, false, st.Create(ctx, exp)
}

// closing prints the summary and returns the exit status.
func closing(e *env, sum dispatch.Summary, err error, w where) int {
	fmt.Fprintf(e.stdout, "%d done, %d failed", sum.Done, sum.Failed)
	if sum.Ignored > 0 {
		fmt.Fprintf(e.stdout, ", %d with ignored errors", sum.Ignored) // orrery status names them
	}
	if left := sum.Total - sum.Done - sum.Failed; sum.Exact && left > 0 {
		fmt.Fprintf(e.stdout, ", %d not run", left)
	}
	var stateErr *dispatch.StateError
	lost := errors.As(err, &stateErr)
	fmt.Fprintf(e.stdout, " in %s. Results in %s", sum.Wall.Round(time.Millisecond), w.results)
	if !lost {
		fmt.Fprintf(e.stdout, "; state in %s", w.stateDir)
	}
	fmt.Fprintln(e.stdout, ".")
	var rootTask *dispatch.RootTaskError
	switch {
	case errors.Is(err, dispatch.ErrInterrupted):
		fmt.Fprintf(e.stderr, "orrery: interrupted; the jobs left are saved. Resume with: %s\n", w.again)
		return exitInterrupted
	case lost:
		then := "Start again with"
		switch stateErr.Problem {
		case dispatch.StateFull:
			then = "Make room, then resume with"
		case dispatch.StateUnwritable:
			then = "Once it can be written, resume with"
		}
		fmt.Fprintf(e.stderr, "orrery: %v; nothing more was recorded. Results already copied are in %s. %s: %s\n", err, w.results, then, w.again)
		return exitSystem
	case errors.Is(err, dispatch.ErrNoNodes):
		fmt.Fprintf(e.stderr, "orrery: no node connected for %s (--wait); the jobs left are saved. Once nodes can join, resume with: %s\n", w.wait, w.again)
		return exitSystem
	case errors.Is(err, dispatch.ErrAllOutOfService):
		fmt.Fprintf(e.stderr, "orrery: no node in service for %s (--wait): %v. See: %s status%s. Once a node works, resume with: %s\n", w.wait, err, self(), w.stateFlag(), w.again)
		return exitSystem
	case errors.As(err, &rootTask):
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitFailed
	case err != nil:
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	case sum.Failed > 0:
		me, flag := self(), w.stateFlag()
		fmt.Fprintf(e.stdout, "See why: %s jobs --state failed%s\n", me, flag)
		fmt.Fprintf(e.stdout, "         %s log JOB%s\n", me, flag)
		fmt.Fprintf(e.stdout, "Run them again: %s rerun --failed%s\n", me, flag)
		return exitFailed
	}
	return exitOK
}

// where tells the user where a run's things are, in words and commands
// that work as written from the current directory.
type where struct {
	results  string // where the results went (resultsDir)
	stateDir string // the state directory, as given or beside the plan
	again    string // the command that runs the experiment again: the one the user gave
	wait     time.Duration
}

// stateFlag is what the query commands (jobs, log, rerun …) need to find
// the state directory from the current directory: nothing for ./.orrery.
func (w where) stateFlag() string {
	if filepath.Clean(w.stateDir) == ".orrery" {
		return ""
	}
	return " --state-dir " + shellQuote(w.stateDir)
}

// runAgainCommand is the command that runs an experiment again, as
// written from the current directory: its plan (planPath is absolute),
// with --state-dir when the state directory stateDir (as the user gave
// it; "" for ./.orrery) is not the one beside the plan.
func runAgainCommand(stateDir, planPath string) string {
	if stateDir == "" {
		stateDir = ".orrery"
	}
	plan := planPath
	if wd, err := os.Getwd(); err == nil {
		if rel, err := filepath.Rel(wd, planPath); err == nil && !strings.HasPrefix(rel, "..") {
			plan = rel
		}
	}
	cmd := self() + " run "
	if abs, err := filepath.Abs(stateDir); err != nil || abs != filepath.Join(filepath.Dir(planPath), ".orrery") {
		cmd += "--state-dir " + shellQuote(stateDir) + " "
	}
	return cmd + shellQuote(plan)
}

// resultsDir is where a run's results go, relative to the current
// directory and ending in a slash: the common directory of the root-side
// destinations of the plan's copies from the nodes, or the plan's
// directory when there are none.
func resultsDir(p *plan.Plan, root string) string {
	var common []string
	found := false
	for _, t := range p.Tasks {
		if t.OnRoot() {
			continue
		}
		for _, c := range t.Commands {
			if c.Op != plan.OpCopy || c.Src.Side != plan.Node || c.Dst.Side != plan.Root {
				continue
			}
			d, ok := destDir(c.Dst.Path)
			if !ok {
				continue
			}
			parts := strings.Split(d, "/")
			if d == "." {
				parts = nil
			}
			if !found {
				common, found = parts, true
				continue
			}
			n := 0
			for n < len(common) && n < len(parts) && common[n] == parts[n] {
				n++
			}
			common = common[:n]
		}
	}
	dir := filepath.Join(root, filepath.FromSlash(strings.Join(common, "/")))
	if abs, err := filepath.Abs(dir); err == nil {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, abs); err == nil {
				dir = rel
			} else {
				dir = abs
			}
		}
	}
	return strings.TrimSuffix(dir, string(filepath.Separator)) + string(filepath.Separator)
}

// destDir is the directory, relative to the root directory and slash-
// separated, into which a copy's root destination writes: as far as the
// path is known before its first $name. ok is false for a path outside
// the root directory (which copy refuses).
func destDir(t plan.Template) (dir string, ok bool) {
	var b strings.Builder
	vars := false
	for _, part := range t.Parts {
		if part.Var {
			vars = true
			break
		}
		b.WriteString(part.Text)
	}
	s := b.String()
	switch {
	case vars:
		dir = path.Dir(s + "x") // "results/out-$i" and "results/$i/out" are in results
	case s == "." || strings.HasSuffix(s, "/"):
		dir = path.Clean(s)
	default:
		dir = path.Dir(s)
	}
	if path.IsAbs(dir) || dir == ".." || strings.HasPrefix(dir, "../") {
		return "", false
	}
	return dir, true
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:=@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shellJoin quotes and joins a command line's arguments.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
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
