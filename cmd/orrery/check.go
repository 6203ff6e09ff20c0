package main

import (
	"fmt"
	"text/tabwriter"

	"orrery/plan"
)

// checkReport is what `orrery check --json` prints.
type checkReport struct {
	File       string        `json:"file"`
	Dialect    string        `json:"dialect"`
	Reason     string        `json:"dialect_reason,omitempty"`
	Jobs       int64         `json:"jobs"`
	JobsExact  bool          `json:"jobs_exact"`
	Seed       *uint64       `json:"seed,omitempty"`
	Parameters []paramReport `json:"parameters"`
	Tasks      []taskReport  `json:"tasks"`
	Warnings   []string      `json:"warnings"`

	warnings []plan.Warning // as printed for a person
}

type paramReport struct {
	Name   string `json:"name"`
	Type   string `json:"type"`
	Domain string `json:"domain"`
	Count  int64  `json:"count"`
}

type taskReport struct {
	Name     string `json:"name"`
	Commands int    `json:"commands"`
}

// runCheck implements `orrery check`.
func runCheck(e *env, args []string) int {
	fs := newFlags(e, "check", "[--json] [--dialect classic|modern] [--seed N] PLAN")
	asJSON := fs.Bool("json", false, "print one JSON object")
	dialect := fs.String("dialect", "", "read the plan as `classic` or modern, whatever it looks like")
	seed := fs.Uint64("seed", 0, "seed for random values (matters only for counting with a constraint)")
	path, status, ok := oneArg(fs, args)
	if !ok {
		return status
	}
	l, ok := loadPlan(e, path, *dialect, seed)
	if !ok {
		return exitInvalid
	}
	r := report(l)
	if *asJSON {
		return printJSON(e, r)
	}
	printReport(e, r)
	return exitOK
}

// report gathers what check says about a plan.
func report(l *loaded) checkReport {
	p, s := l.plan, l.sweep
	r := checkReport{File: p.File, Dialect: p.Dialect.String(), Reason: p.DialectReason,
		Parameters: []paramReport{}, Tasks: []taskReport{}, Warnings: []string{}}
	r.Jobs, r.JobsExact = s.Count()
	if s.Random() {
		r.Seed = &s.Seed
	}
	for i, name := range s.Names {
		pr := paramReport{Name: name, Type: "text", Domain: "list", Count: s.Domains[i].Len()}
		if i < len(p.Params) {
			pr.Type, pr.Domain = p.Params[i].Type.String(), p.Params[i].Domain.Kind.String()
		}
		r.Parameters = append(r.Parameters, pr)
	}
	for _, t := range p.Tasks {
		r.Tasks = append(r.Tasks, taskReport{Name: t.Name, Commands: len(t.Commands)})
	}
	r.warnings = append(append([]plan.Warning(nil), p.Warnings...), s.Warnings...)
	for _, w := range r.warnings {
		r.Warnings = append(r.Warnings, w.String())
	}
	return r
}

// printReport prints the report for a person.
func printReport(e *env, r checkReport) {
	w := e.stdout
	fmt.Fprintf(w, "%s: valid plan, %s dialect", r.File, r.Dialect)
	if r.Reason != "" {
		fmt.Fprintf(w, " (%s)", r.Reason)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "parameters:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, q := range r.Parameters {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", q.Name, q.Type, q.Domain, plural(q.Count, "value"))
	}
	if len(r.Parameters) == 0 {
		fmt.Fprintln(tw, "  (none)")
	}
	tw.Flush()
	if r.JobsExact {
		fmt.Fprintf(w, "jobs: %d\n", r.Jobs)
	} else {
		fmt.Fprintf(w, "jobs: at most %d (a constraint removes some; too many combinations to count here)\n", r.Jobs)
	}
	if r.Seed != nil {
		fmt.Fprintf(w, "seed: %d (random values are drawn from it)\n", *r.Seed)
	}
	fmt.Fprint(w, "tasks:")
	for _, t := range r.Tasks {
		fmt.Fprintf(w, " %s (%s)", t.Name, plural(int64(t.Commands), "command"))
	}
	fmt.Fprintln(w)
	for _, m := range r.warnings {
		fmt.Fprintln(w, warningLine(m))
	}
}

// warningLine returns a plan warning as a person reads it:
// "FILE:LINE:COL: warning: message".
func warningLine(w plan.Warning) string {
	return fmt.Sprintf("%s:%d:%d: warning: %s", w.File, w.Pos.Line, w.Pos.Col, w.Msg)
}

// printWarnings prints a plan's warnings on stderr, one line each.
func printWarnings(e *env, ws []plan.Warning) {
	for _, w := range ws {
		fmt.Fprintln(e.stderr, warningLine(w))
	}
}

// plural returns "1 value", "2 values".
func plural(n int64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
