package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"orrery/store"
)

// openState opens the state directory of --state-dir (default ./.orrery)
// and its latest experiment. Unless status is exitOK, it has said why:
// no experiment there (bad usage), or a state it cannot read (its own
// failure).
func openState(e *env, dir string) (st *store.Store, exp *store.Experiment, status int) {
	if dir == "" {
		dir = ".orrery"
	}
	// A directory without a database holds no experiment: say so, and
	// make nothing there (store.Open would create one).
	if _, err := os.Stat(filepath.Join(dir, store.FileName)); err != nil {
		if _, derr := os.Stat(dir); derr != nil {
			err = derr
		}
		fmt.Fprintf(e.stderr, "orrery: no experiment in %s: %v (run in the plan's directory, or pass --state-dir)\n", dir, err)
		return nil, nil, exitInvalid
	}
	ctx := context.Background()
	st, err := store.Open(ctx, dir)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return nil, nil, exitSystem
	}
	exp, err = st.Latest(ctx)
	if err != nil {
		st.Close()
		fmt.Fprintf(e.stderr, "orrery: %s: %v\n", dir, err)
		if errors.Is(err, store.ErrNoExperiment) {
			return nil, nil, exitInvalid
		}
		return nil, nil, exitSystem
	}
	return st, exp, exitOK
}

// stateFlag adds --state-dir to a command's flags.
func stateFlag(fs *flag.FlagSet) *string {
	return fs.String("state-dir", "", "state `directory` (default: ./.orrery)")
}

// runStatus implements `orrery status`.
func runStatus(e *env, args []string) int {
	fs := newFlags(e, "status", "[--json] [--state-dir DIR]")
	asJSON := fs.Bool("json", false, "print one JSON object")
	dir := stateFlag(fs)
	if status, ok := noArgs(fs, args); !ok {
		return status
	}
	st, exp, status := openState(e, *dir)
	if status != exitOK {
		return status
	}
	defer st.Close()
	counts, err := st.Counts(context.Background(), exp.ID)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	ignored, ignoredJobs, err := st.IgnoredJobs(context.Background(), exp.ID, 10)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	nodesOut, err := st.NodesOutOfService(context.Background(), exp.ID)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	grid, err := clusterStatus(st, exp, time.Now(), e.stderr)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	out := map[string]any{"ignored_errors": ignored, "experiment": exp.ID, "plan": exp.PlanPath, "dialect": exp.Dialect,
		"seed": exp.Seed, "created": exp.Created.Format(time.RFC3339), "generated_all": exp.Generated,
		"pending": counts[store.Pending], "running": counts[store.Running],
		"done": counts[store.Done], "failed": counts[store.Failed], "dispatched": exp.LastIndex}
	out["out_of_service"] = nodesOutJSON(nodesOut)
	totals := totalsOf(exp, counts)
	totals.addJSON(out)
	grid.addJSON(out)
	if *asJSON {
		return printJSON(e, out)
	}
	fmt.Fprintf(e.stdout, "experiment %d of %s (%s dialect, seed %d), started %s\n",
		exp.ID, exp.PlanPath, exp.Dialect, exp.Seed, exp.Created.Format(time.RFC3339))
	fmt.Fprintln(e.stdout, totals)
	if ignored > 0 {
		fmt.Fprintf(e.stdout, "%d with ignored errors (a command failed under onerror ignore): %s; see orrery log JOB\n",
			ignored, jobList(ignoredJobs, ignored))
	}
	printNodesOut(e.stdout, nodesOut)
	grid.print(e.stdout)
	return exitOK
}

// jobList names the first of n jobs: "job 3", "jobs 1, 4, …".
func jobList(first []int64, n int64) string {
	s := make([]string, len(first))
	for i, j := range first {
		s[i] = strconv.FormatInt(j, 10)
	}
	if int64(len(first)) < n {
		s = append(s, "…")
	}
	if n == 1 {
		return "job " + strings.Join(s, ", ")
	}
	return "jobs " + strings.Join(s, ", ")
}

func printJSON(e *env, v any) int {
	enc := json.NewEncoder(e.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	return exitOK
}

// jobJSON is one line of `orrery jobs --json`.
type jobJSON struct {
	Index    int64             `json:"index"`
	State    string            `json:"state"`
	Values   map[string]string `json:"values"`
	Attempts int               `json:"attempts"`
	Exit     *int              `json:"exit"`
	// Cluster and Node are where its last attempt ran (see attemptJSON).
	Cluster string        `json:"cluster,omitempty"`
	Node    string        `json:"node,omitempty"`
	Runs    []attemptJSON `json:"runs"` // every attempt, first first
}

// runJobs implements `orrery jobs`.
func runJobs(e *env, args []string) int {
	fs := newFlags(e, "jobs", "[--state pending|running|done|failed] [--json] [--state-dir DIR]")
	state := fs.String("state", "", "show only jobs in this `state`")
	asJSON := fs.Bool("json", false, "print one JSON object per line")
	dir := stateFlag(fs)
	if status, ok := noArgs(fs, args); !ok {
		return status
	}
	switch store.JobState(*state) {
	case "", store.Pending, store.Running, store.Done, store.Failed:
	default:
		fmt.Fprintf(e.stderr, "orrery: --state %q: want pending, running, done or failed\n", *state)
		return exitInvalid
	}
	st, exp, status := openState(e, *dir)
	if status != exitOK {
		return status
	}
	defer st.Close()
	if *asJSON {
		if err := writeJobsJSON(e, st, exp, store.JobState(*state)); err != nil {
			fmt.Fprintf(e.stderr, "orrery: %v\n", err)
			return exitSystem
		}
		return exitOK
	}
	err := st.Jobs(context.Background(), exp.ID, store.JobState(*state), 0, 0, func(j store.Job) error {
		exit := "-"
		if j.Exit != nil {
			exit = strconv.Itoa(*j.Exit)
		}
		var kv []string
		for i, n := range exp.Names {
			if i < len(j.Values) {
				kv = append(kv, n+"="+j.Values[i])
			}
		}
		_, err := fmt.Fprintf(e.stdout, "%d\t%s\tattempts=%d\texit=%s\t%s\n", j.Index, j.State, j.Attempts, exit, strings.Join(kv, " "))
		return err
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	return exitOK
}

// runLog implements `orrery log JOB`: every attempt's outcome and output.
func runLog(e *env, args []string) int {
	fs := newFlags(e, "log", "[--state-dir DIR] JOB")
	dir := stateFlag(fs)
	arg, status, ok := oneArg(fs, args)
	if !ok {
		return status
	}
	job, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || job < 1 {
		fmt.Fprintf(e.stderr, "orrery: log: %q is not a job number\n", arg)
		return exitInvalid
	}
	st, exp, status := openState(e, *dir)
	if status != exitOK {
		return status
	}
	defer st.Close()
	n := 0
	err = st.Attempts(context.Background(), exp.ID, job, func(a store.Attempt) error {
		n++
		fmt.Fprintf(e.stdout, "=== job %d attempt %d on %s: %s", a.Job, a.N, host(a), a.State)
		if a.Exit != nil {
			fmt.Fprintf(e.stdout, ", exit %d", *a.Exit)
		}
		if a.Signal != "" {
			fmt.Fprintf(e.stdout, ", signal %s", a.Signal)
		}
		fmt.Fprintf(e.stdout, ", wall %s, cpu %s, max rss %.1f MB\n", a.Wall.Round(time.Millisecond),
			a.CPU.Round(time.Millisecond), float64(a.MaxRSS)/(1<<20))
		if a.Error != "" {
			fmt.Fprintf(e.stdout, "error: %s\n", a.Error)
		}
		printIgnored(e, filepath.Base(exp.PlanPath), a.Ignored)
		if len(a.Stdout) > 0 {
			fmt.Fprintf(e.stdout, "--- stdout\n%s", a.Stdout)
		}
		if len(a.Stderr) > 0 {
			fmt.Fprintf(e.stdout, "--- stderr\n%s", a.Stderr)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	if n == 0 {
		fmt.Fprintf(e.stderr, "orrery: job %d has not run\n", job)
		return exitFailed
	}
	return exitOK
}

// printIgnored prints an attempt's commands whose failure onerror
// ignore let pass: where, what, its exit status or signal, and why.
func printIgnored(e *env, file string, ig []store.Ignored) {
	if len(ig) == 0 {
		return
	}
	fmt.Fprintln(e.stdout, "ignored errors (onerror ignore):")
	for _, c := range ig {
		if c.Pos == "" {
			fmt.Fprintf(e.stdout, "  %s\n", c.Error)
			continue
		}
		fmt.Fprintf(e.stdout, "  %s:%s: %s", file, c.Pos, c.Command)
		if c.Exit != nil {
			fmt.Fprintf(e.stdout, ": exit %d", *c.Exit)
		}
		if c.Signal != "" {
			fmt.Fprintf(e.stdout, ": signal %s", c.Signal)
		}
		fmt.Fprintf(e.stdout, "\n      %s\n", c.Error)
	}
}

// runRerun implements `orrery rerun --failed`: failed jobs become pending,
// and the next `orrery run` runs them again.
func runRerun(e *env, args []string) int {
	fs := newFlags(e, "rerun", "--failed [--state-dir DIR]")
	failed := fs.Bool("failed", false, "put every failed job back to pending")
	dir := stateFlag(fs)
	if status, ok := noArgs(fs, args); !ok {
		return status
	}
	if !*failed {
		fmt.Fprintln(e.stderr, "orrery: rerun: say which jobs: --failed")
		return exitInvalid
	}
	st, exp, status := openState(e, *dir)
	if status != exitOK {
		return status
	}
	defer st.Close()
	n, err := st.RerunFailed(context.Background(), exp.ID)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	fmt.Fprintf(e.stdout, "%d failed jobs will run again: %s\n", n, runAgainCommand(*dir, exp.PlanPath))
	return exitOK
}

// runJoblog implements `orrery joblog`: GNU Parallel's --joblog columns,
// one line per attempt.
func runJoblog(e *env, args []string) int {
	fs := newFlags(e, "joblog", "[--state-dir DIR]")
	dir := stateFlag(fs)
	if status, ok := noArgs(fs, args); !ok {
		return status
	}
	st, exp, status := openState(e, *dir)
	if status != exitOK {
		return status
	}
	defer st.Close()
	ctx := context.Background()
	fmt.Fprintln(e.stdout, "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand")
	err := st.Attempts(ctx, exp.ID, 0, func(a store.Attempt) error {
		if a.State == store.AttemptRunning {
			return nil
		}
		exit, sig := -1, 0
		if a.Exit != nil {
			exit = *a.Exit
		}
		if a.Signal != "" {
			sig = signalNumber(a.Signal)
		}
		runtime := a.Wall.Seconds()
		if runtime == 0 && !a.Ended.IsZero() {
			runtime = a.Ended.Sub(a.Started).Seconds()
		}
		_, err := fmt.Fprintf(e.stdout, "%d\t%s\t%.3f\t%.3f\t%d\t%d\t%d\t%d\tjob %d attempt %d\n", a.Job, host(a),
			float64(a.Started.UnixNano())/1e9, runtime, a.StagedIn, a.StagedOut, exit, sig, a.Job, a.N)
		return err
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitSystem
	}
	return exitOK
}
