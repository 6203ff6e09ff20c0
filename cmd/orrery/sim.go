package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"orrery/sim"
)

// simReport is what `orrery sim --json` prints.
type simReport struct {
	Scenario string      `json:"scenario"`
	Results  []simResult `json:"results"`
}

// simResult is one case under one policy. The pointers are null when
// the case did not fit (Failed says why) or has no paper figure.
type simResult struct {
	Case       string   `json:"case"`
	Policy     string   `json:"policy"`
	Mean       *float64 `json:"makespan_mean"`
	SD         *float64 `json:"makespan_sd"`
	Bound      float64  `json:"bound"`
	Efficiency *float64 `json:"efficiency"`
	Paper      *float64 `json:"paper"`
	Failed     string   `json:"failed,omitempty"`
}

// simFlags are the flags of `orrery sim`.
type simFlags struct {
	list, print, asJSON bool
	runsGiven           bool
	runs                int
	seed                uint64
	policies, cases     string
	trace               string
}

// runSim implements `orrery sim`.
func runSim(e *env, args []string) int {
	fs := newFlags(e, "sim", "[--runs N] [--seed S] [--policy P,...] [--case C,...] [--json] [--trace FILE] SCENARIO\n"+
		"       orrery sim --list | --print SCENARIO\n"+
		"SCENARIO is a scenario file (see docs/simulator.md) or a built-in's name.")
	var f simFlags
	fs.BoolVar(&f.list, "list", false, "list the built-in scenarios")
	fs.BoolVar(&f.print, "print", false, "print the scenario's file instead of running it (a start for your own)")
	fs.IntVar(&f.runs, "runs", 0, "`N` seeded runs of each case and policy (default: the scenario's runs)")
	fs.Uint64Var(&f.seed, "seed", 1, "seed `S` of the first run; run k has seed S+k-1")
	fs.StringVar(&f.policies, "policy", "", "comma-separated `policies` to run instead of the scenario's")
	fs.StringVar(&f.cases, "case", "", "comma-separated `cases` to run (default: all)")
	fs.BoolVar(&f.asJSON, "json", false, "print one JSON object")
	fs.StringVar(&f.trace, "trace", "", "write the events of the first run of each case and policy to `FILE`")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	f.runsGiven = flagGiven(fs, "runs")
	if f.list {
		if len(pos) != 0 {
			fs.Usage()
			return exitInvalid
		}
		return listScenarios(e)
	}
	if len(pos) != 1 {
		fs.Usage()
		return exitInvalid
	}
	if f.print {
		return printScenario(e, pos[0])
	}
	return simulate(e, pos[0], f)
}

// listScenarios prints each built-in scenario with its summary.
func listScenarios(e *env) int {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	for _, name := range sim.Builtins() {
		sc, err := sim.Builtin(name)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: built-in %v\n", err)
			return exitSystem
		}
		fmt.Fprintf(tw, "%s\t%s\n", name, sc.Summary())
	}
	tw.Flush()
	return exitOK
}

// isScenarioFile reports whether arg names a scenario file rather than a
// built-in: a file that exists, or a name with a slash or an extension
// (built-in names have neither).
func isScenarioFile(arg string) bool {
	if _, err := os.Stat(arg); err == nil {
		return true
	}
	return strings.ContainsAny(arg, "/"+string(os.PathSeparator)) || filepath.Ext(arg) != ""
}

// loadScenario reads a scenario file or a built-in.
func loadScenario(e *env, arg string) (*sim.Scenario, bool) {
	var sc *sim.Scenario
	var err error
	if isScenarioFile(arg) {
		sc, err = sim.Load(arg)
	} else {
		sc, err = sim.Builtin(arg)
	}
	if err != nil {
		var list sim.ErrorList
		if errors.As(err, &list) {
			fmt.Fprintln(e.stderr, err)
		} else {
			fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		}
		return nil, false
	}
	return sc, true
}

// printScenario prints a built-in's file, or a scenario file.
func printScenario(e *env, arg string) int {
	var src []byte
	var err error
	if isScenarioFile(arg) {
		src, err = os.ReadFile(arg)
	} else {
		src, err = sim.BuiltinSource(arg)
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return exitInvalid
	}
	e.stdout.Write(src)
	return exitOK
}

// simulate runs the scenario's cases and prints the results.
func simulate(e *env, arg string, f simFlags) int {
	sc, ok := loadScenario(e, arg)
	if !ok {
		return exitInvalid
	}
	runs := sc.Runs
	if f.runsGiven {
		runs = f.runs
	}
	if runs < 1 {
		fmt.Fprintln(e.stderr, "orrery: --runs must be at least 1")
		return exitInvalid
	}
	cases, ok := pickCases(e, sc, f)
	if !ok {
		return exitInvalid
	}
	var trace io.Writer
	if f.trace != "" {
		tf, err := os.Create(f.trace)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: --trace: %v\n", err)
			if badPath(err) {
				return exitInvalid
			}
			return exitSystem
		}
		defer tf.Close()
		trace = tf
	}
	rep := simReport{Scenario: sc.Name, Results: []simResult{}}
	total := 0
	for _, c := range cases {
		total += len(c.Policies) * runs
	}
	meter := newSimMeter(e.stderr, isTerminal(e.stderr), total)
	for _, c := range cases {
		for _, pol := range c.Policies {
			meter.show(c.Name, pol)
			r, err := sim.Run(sc, c, pol, runs, f.seed)
			meter.add(runs)
			if err != nil {
				meter.clear()
				fmt.Fprintf(e.stderr, "orrery: case %s, policy %s: %v\n", c.Name, pol, err)
				return exitInvalid // a scenario that cannot be simulated
			}
			if trace != nil {
				traceRun(trace, sc, c, pol, f.seed)
			}
			rep.Results = append(rep.Results, resultOf(c, pol, r))
		}
	}
	meter.clear()
	if f.asJSON {
		return printJSON(e, rep)
	}
	fmt.Fprintf(e.stdout, "scenario %s, seed %d, %s per case and policy\n", sc.Name, f.seed, plural(int64(runs), "run"))
	printSimTable(e.stdout, rep.Results)
	return exitOK
}

// simMeter shows how far `orrery sim` has come, on a terminal: one line
// on standard error, rewritten in place, of the runs done out of all and
// the case running; cleared before the results are printed. When
// standard error is not a terminal it shows nothing, so that scripts and
// logs get only the results.
type simMeter struct {
	w           io.Writer // nil: show nothing
	done, total int
}

// newSimMeter returns a meter writing to w when show is set (w is a
// terminal), else one that writes nothing.
func newSimMeter(w io.Writer, show bool, total int) *simMeter {
	m := &simMeter{total: total}
	if show {
		m.w = w
	}
	return m
}

// show rewrites the line: the runs done, and the case and policy that
// run next.
func (m *simMeter) show(caseName, policy string) {
	if m.w != nil {
		fmt.Fprintf(m.w, "\rorrery sim: %d/%d runs done; running case %s, policy %s\x1b[K", m.done, m.total, caseName, policy)
	}
}

// add counts n more runs done.
func (m *simMeter) add(n int) { m.done += n }

// clear erases the line.
func (m *simMeter) clear() {
	if m.w != nil {
		fmt.Fprint(m.w, "\r\x1b[K")
	}
}

// pickCases returns the cases to run, each with the policies to run it
// under, as --case and --policy say.
func pickCases(e *env, sc *sim.Scenario, f simFlags) ([]sim.Case, bool) {
	var policies []string
	for _, p := range splitList(f.policies) {
		if err := sim.CheckPolicy(p); err != nil {
			fmt.Fprintf(e.stderr, "orrery: --policy: %v\n", err)
			return nil, false
		}
		policies = append(policies, p)
	}
	var names []string
	for _, c := range sc.Cases {
		names = append(names, c.Name)
	}
	want := splitList(f.cases)
	for _, name := range want {
		if !slices.Contains(names, name) {
			fmt.Fprintf(e.stderr, "orrery: --case: scenario %s has no case %q (it has %s)\n", sc.Name, name, strings.Join(names, ", "))
			return nil, false
		}
	}
	var out []sim.Case
	for _, c := range sc.Cases {
		if len(want) > 0 && !slices.Contains(want, c.Name) {
			continue
		}
		switch {
		case len(policies) > 0:
			c.Policies = policies
		case len(c.Policies) == 0:
			c.Policies = sc.Policies
		}
		out = append(out, c)
	}
	return out, true
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

// traceRun writes the trace of the first run of case c under pol.
func traceRun(w io.Writer, sc *sim.Scenario, c sim.Case, pol string, seed uint64) {
	fmt.Fprintf(w, "# scenario %s case %s policy %s seed %d\n", sc.Name, c.Name, pol, seed)
	if _, err := sim.Simulate(sc, c, pol, seed, w); err != nil {
		fmt.Fprintf(w, "# %v\n", err)
	}
}

// resultOf turns an engine result into what the command prints.
func resultOf(c sim.Case, pol string, r sim.Result) simResult {
	out := simResult{Case: c.Name, Policy: pol, Bound: r.Bound}
	if p, ok := c.Paper[pol]; ok {
		out.Paper = &p
	}
	if r.Failed != "" {
		out.Failed = strings.TrimPrefix(r.Failed, "does not fit: ")
		return out
	}
	out.Mean, out.SD = &r.Mean, &r.SD
	if r.Mean > 0 {
		eff := r.Bound / r.Mean
		out.Efficiency = &eff
	}
	return out
}

// printSimTable prints the results as a table. Why a case did not fit
// goes in a note below the table, so that one long reason does not widen
// the column.
func printSimTable(w io.Writer, results []simResult) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tpolicy\tmakespan\tbound\tefficiency\tpaper")
	var notes []string
	for _, r := range results {
		span, eff, paper := "", "—", "—"
		if r.Mean != nil {
			span = fmt.Sprintf("%s ± %s s%s", roundSeconds(*r.Mean), roundSeconds(*r.SD), hours(*r.Mean))
		} else {
			notes = append(notes, fmt.Sprintf("[%d] %s, %s: does not fit: %s", len(notes)+1, r.Case, r.Policy, r.Failed))
			span = fmt.Sprintf("does not fit [%d]", len(notes))
		}
		if r.Efficiency != nil {
			eff = fmt.Sprintf("%.1f%%", 100**r.Efficiency)
		}
		if r.Paper != nil {
			paper = seconds(*r.Paper)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Case, r.Policy, span, seconds(r.Bound), eff, paper)
	}
	tw.Flush()
	for _, n := range notes {
		fmt.Fprintln(w, n)
	}
}

// seconds formats a time: "921 s", "24512 s (6.81 h)" from 3 h up.
func seconds(s float64) string { return roundSeconds(s) + " s" + hours(s) }

// hours returns " (6.81 h)" for a time of 3 h or more, else "".
func hours(s float64) string {
	if s < 3*3600 {
		return ""
	}
	return fmt.Sprintf(" (%.2f h)", s/3600)
}

// roundSeconds prints whole seconds, or two figures below 10 s.
func roundSeconds(s float64) string {
	if s < 10 && s != math.Trunc(s) {
		return fmt.Sprintf("%.2g", s)
	}
	return fmt.Sprintf("%.0f", s)
}
