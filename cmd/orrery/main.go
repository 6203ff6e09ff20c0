// Command orrery runs parameter sweeps: one program run many times, each
// job with its own parameter values, across the nodes of a cluster and
// across many clusters.
//
// Usage:
//
//	orrery check [--json] [--dialect D] PLAN
//	orrery generate [--format run|jsonl] [-o FILE] [--seed N] [--limit N] PLAN
//	orrery sim [--runs N] [--seed S] [--policy P,...] [--case C,...] [--json] SCENARIO
//
// Run "orrery help" for details. ORRERY_CPUPROFILE=FILE writes a CPU
// profile of the command to FILE.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"

	"orrery/suggest"
)

// Exit statuses (see exitStatusHelp and the README).
const (
	exitOK      = 0
	exitFailed  = 1 // run: some job failed; other commands: what was asked for is not there
	exitInvalid = 2 // a bad plan or bad usage: nothing ran
	exitSystem  = 4 // Orrery's own failure: the state directory gone or unwritable, its disk full, no node
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(env *env, args []string) int
}

var commands = []command{
	{"check", "check a plan and count its jobs", runCheck},
	{"generate", "write a plan's jobs as a run file or JSON Lines", runGenerate},
	{"run", "run a plan's jobs on a cluster, resuming an interrupted run", runRun},
	{"status", "show how far the experiment has come", runStatus},
	{"jobs", "list the experiment's jobs", runJobs},
	{"log", "show every attempt of a job with its output", runLog},
	{"rerun", "make failed jobs run again on the next run", runRerun},
	{"joblog", "print attempts in GNU Parallel's --joblog format", runJoblog},
	{"agent", "run a node agent that connects to a dispatcher", runAgent},
	{"head", "a cluster's head, started by run for each cluster of a grid", runHead},
	{"web", "serve the live page of an experiment from its store, read-only", runWeb},
	{"token", "print the join token, the viewer link, the metrics token or the CA; rotate them, list or revoke nodes", runToken},
	{"sim", "simulate a sweep on clusters under each policy (scenarios: sim --list)", runSim},
}

// env is what a command reads and writes, so tests can run commands
// in-process.
type env struct {
	stdout, stderr io.Writer
}

func main() {
	if path := os.Getenv("ORRERY_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			code := run(&env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
			pprof.StopCPUProfile()
			f.Close()
			os.Exit(code)
		}
	}
	os.Exit(run(&env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:]))
}

// run runs the command line args and returns the exit status.
func run(e *env, args []string) int {
	if len(args) >= 2 && args[0] == "help" {
		return commandHelp(e, args[1:])
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(e.stdout)
		if len(args) == 0 {
			return exitInvalid
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(e, args[1:])
		}
	}
	fmt.Fprintf(e.stderr, "orrery: unknown command %q (run \"orrery help\")\n", args[0])
	return exitInvalid
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Orrery runs parameter sweeps across the nodes of a cluster and across clusters.")
	fmt.Fprintln(w, "\nUsage: orrery COMMAND [FLAGS] ARGS\n\nCommands:")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"orrery help COMMAND\" (or \"orrery COMMAND -h\") for a command's flags.")
}

// commandHelp implements `orrery help COMMAND`: the command's own help,
// as `orrery COMMAND -h` prints it, on standard output.
func commandHelp(e *env, args []string) int {
	if len(args) != 1 {
		fmt.Fprintln(e.stderr, "Usage: orrery help [COMMAND]")
		return exitInvalid
	}
	var names []string
	for _, c := range commands {
		if c.name == args[0] {
			return c.run(&env{stdout: e.stdout, stderr: e.stdout}, []string{"-h"})
		}
		names = append(names, c.name)
	}
	if args[0] == "help" {
		usage(e.stdout)
		return exitOK
	}
	fmt.Fprintf(e.stderr, "orrery: help: unknown command %q%s\n", args[0], suggest.OneOf(args[0], names))
	return exitInvalid
}

// newFlags returns a FlagSet for a subcommand that writes its usage to
// stderr.
func newFlags(e *env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "Usage: orrery %s %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// self is how to run orrery again in commands printed as advice: as the
// user ran it when they named a path (./orrery), else orrery (found on
// $PATH, or built by go run into a directory that is gone by then).
func self() string {
	a := os.Args[0]
	if !strings.ContainsRune(a, '/') || strings.Contains(a, "go-build") {
		return "orrery"
	}
	return shellQuote(a)
}

// usageFooter adds text after the flags in fs's usage.
func usageFooter(e *env, fs *flag.FlagSet, text string) {
	usage := fs.Usage
	fs.Usage = func() {
		usage()
		fmt.Fprint(e.stderr, "\n"+text)
	}
}

// parseArgs parses flags that may come before or after the positional
// arguments, and returns the positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// oneArg parses the flags of a command that takes exactly one argument
// and returns it; when ok is false, status is the exit status to return.
func oneArg(fs *flag.FlagSet, args []string) (arg string, status int, ok bool) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return "", flagStatus(err), false
	}
	if len(pos) != 1 {
		fs.Usage()
		return "", exitInvalid, false
	}
	return pos[0], exitOK, true
}

// noArgs parses the flags of a command that takes no argument.
func noArgs(fs *flag.FlagSet, args []string) (status int, ok bool) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagStatus(err), false
	}
	if len(pos) != 0 {
		fs.Usage()
		return exitInvalid, false
	}
	return exitOK, true
}

// flagGiven reports whether the named flag was on the command line.
func flagGiven(fs *flag.FlagSet, name string) bool {
	given := false
	fs.Visit(func(f *flag.Flag) { given = given || f.Name == name })
	return given
}

// flagStatus turns a flag error into an exit status.
func flagStatus(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	return exitInvalid
}
