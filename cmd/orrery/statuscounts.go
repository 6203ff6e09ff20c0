package main

import (
	"fmt"
	"path/filepath"
	"strings"

	"orrery/plan"
	"orrery/store"
	"orrery/sweep"
)

// jobTotals is how many of an experiment's jobs are in each state, and
// how many the plan has that are not generated yet (jobs are generated
// from the plan as the run needs them). The numbers add up to Total.
type jobTotals struct {
	Done, Failed, Running, Pending int64
	// NotGenerated is how many jobs of the plan have no job record yet:
	// exact, an upper bound (!Exact: a constraint removes an unknown
	// number of a huge cross product), or -1 when the plan cannot be
	// read any more.
	NotGenerated int64
	Total        int64 // -1 when NotGenerated is
	Exact        bool
}

// totalsOf counts an experiment's jobs from the store's counts and, when
// not every job has been generated, from its plan.
func totalsOf(exp *store.Experiment, counts map[store.JobState]int64) jobTotals {
	t := jobTotals{Done: counts[store.Done], Failed: counts[store.Failed], Running: counts[store.Running],
		Pending: counts[store.Pending], Exact: true}
	generated := t.Done + t.Failed + t.Running + t.Pending
	if !exp.Generated {
		t.NotGenerated = -1
		if all, exact, ok := planJobs(exp); ok {
			t.NotGenerated, t.Exact = max(all-exp.LastIndex, 0), exact
		}
	}
	t.Total = generated + t.NotGenerated
	if t.NotGenerated < 0 {
		t.Total = -1
	}
	return t
}

// planJobs counts the jobs of an experiment's plan, as `check` does.
func planJobs(exp *store.Experiment) (n int64, exact, ok bool) {
	var opts plan.Options
	if d, err := plan.ParseDialect(exp.Dialect); err == nil {
		opts.Dialect = &d
	}
	p, err := plan.Parse(exp.PlanPath, []byte(exp.PlanText), opts)
	if err != nil {
		return 0, false, false
	}
	s, err := sweep.New(p, sweep.Options{Root: filepath.Dir(exp.PlanPath), Seed: exp.Seed})
	if err != nil {
		return 0, false, false
	}
	n, exact = s.Count()
	return n, exact, true
}

// String says the counts plainly: "jobs: 600 in all: 12 done, 0 failed,
// 8 running, 580 pending" (and ", 400 not yet generated" when some are).
func (t jobTotals) String() string {
	var b strings.Builder
	switch {
	case t.Total < 0:
		b.WriteString("jobs: ")
	case t.Exact:
		fmt.Fprintf(&b, "jobs: %d in all: ", t.Total)
	default:
		fmt.Fprintf(&b, "jobs: at most %d in all: ", t.Total)
	}
	fmt.Fprintf(&b, "%d done, %d failed, %d running, %d pending", t.Done, t.Failed, t.Running, t.Pending)
	switch {
	case t.NotGenerated < 0:
		b.WriteString(", and more not yet generated (the plan cannot be read to count them)")
	case t.NotGenerated > 0 && t.Exact:
		fmt.Fprintf(&b, ", %d not yet generated", t.NotGenerated)
	case t.NotGenerated > 0:
		fmt.Fprintf(&b, ", at most %d not yet generated (a constraint removes some)", t.NotGenerated)
	}
	return b.String()
}

// addJSON adds the counts to `status --json`'s object: total and
// not_generated are null when unknown.
func (t jobTotals) addJSON(out map[string]any) {
	out["done"], out["failed"], out["running"], out["pending"] = t.Done, t.Failed, t.Running, t.Pending
	out["total"], out["not_generated"], out["total_exact"] = nullIfNegative(t.Total), nullIfNegative(t.NotGenerated), t.Exact
}

func nullIfNegative(n int64) any {
	if n < 0 {
		return nil
	}
	return n
}
