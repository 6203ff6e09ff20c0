package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"orrery/store"
)

// statusState makes a state directory whose experiment runs a plan of
// planJobs jobs, of which generated have been generated from the plan
// (all when generated == planJobs), done of them done, running running
// and failed failed; the rest of the generated ones are pending.
func statusState(t *testing.T, planJobs, generated, done, running, failed int64) string {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, ".orrery"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	src := fmt.Sprintf("parameter i integer range from 1 to %d\ntask main\n\texec true\nendtask\n", planJobs)
	exp := &store.Experiment{PlanPath: filepath.Join(dir, "p.pln"), PlanText: src, Dialect: "modern", Seed: 1, Names: []string{"i"}}
	if err := st.Create(ctx, exp); err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	for i := int64(1); i <= generated; i++ {
		b.AddJob(exp.ID, store.Job{Index: i, Ordinal: i - 1, Values: []string{strconv.FormatInt(i, 10)}})
	}
	b.Cursor(exp.ID, generated-1, generated, generated == planJobs)
	now := time.Now()
	zero := 0
	for i := int64(1); i <= done+running+failed; i++ {
		b.Start(exp.ID, i, 1, "local1", now)
		switch {
		case i <= done:
			b.Finish(exp.ID, store.Attempt{Job: i, N: 1, Node: "local1", State: store.AttemptOK, Started: now, Ended: now, Exit: &zero}, store.Done)
		case i <= done+failed:
			one := 1
			b.Finish(exp.ID, store.Attempt{Job: i, N: 1, Node: "local1", State: store.AttemptFailed, Started: now, Ended: now, Exit: &one}, store.Failed)
		}
	}
	if err := st.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, ".orrery")
}

// TestStatusCounts: status says how many jobs are done, failed, running,
// pending and not yet generated, and the numbers add up to the plan's
// jobs; nothing is "handed out (all)" while most are pending.
func TestStatusCounts(t *testing.T) {
	tests := []struct {
		name                                       string
		planJobs, generated, done, running, failed int64
		text                                       string
	}{
		{"all generated, most pending", 600, 600, 12, 8, 0,
			"jobs: 600 in all: 12 done, 0 failed, 8 running, 580 pending\n"},
		{"some not generated", 1000, 600, 15, 3, 2,
			"jobs: 1000 in all: 15 done, 2 failed, 3 running, 580 pending, 400 not yet generated\n"},
		{"finished", 5, 5, 4, 0, 1,
			"jobs: 5 in all: 4 done, 1 failed, 0 running, 0 pending\n"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			dir := statusState(t, test.planJobs, test.generated, test.done, test.running, test.failed)
			out := mustRun(t, "status", "--state-dir", dir)
			lines := strings.SplitAfter(out, "\n")
			if len(lines) < 2 || lines[1] != test.text {
				t.Errorf("status:\n%s\nwant the second line %q", out, test.text)
			}
			var got map[string]any
			if err := json.Unmarshal([]byte(mustRun(t, "status", "--json", "--state-dir", dir)), &got); err != nil {
				t.Fatal(err)
			}
			num := func(k string) int64 {
				f, ok := got[k].(float64)
				if !ok {
					t.Errorf("status --json: %s = %v, want a number", k, got[k])
				}
				return int64(f)
			}
			if n := num("total"); n != test.planJobs {
				t.Errorf("status --json: total %d, want %d", n, test.planJobs)
			}
			if sum := num("done") + num("failed") + num("running") + num("pending") + num("not_generated"); sum != test.planJobs {
				t.Errorf("status --json: the states add up to %d, want %d: %v", sum, test.planJobs, got)
			}
			if num("not_generated") != test.planJobs-test.generated || got["total_exact"] != true {
				t.Errorf("status --json: not_generated %v, total_exact %v; want %d, true", got["not_generated"], got["total_exact"], test.planJobs-test.generated)
			}
		})
	}
}

// TestStatusCountsUnreadablePlan: when the plan's jobs cannot be counted
// any more (its fromfile is gone), status says so instead of a number.
func TestStatusCountsUnreadablePlan(t *testing.T) {
	exp := &store.Experiment{PlanPath: filepath.Join(t.TempDir(), "p.pln"), Dialect: "classic",
		PlanText: "parameter x fromfile values.txt;\ntask main\n\texec true\nendtask\n", LastIndex: 3}
	tot := totalsOf(exp, map[store.JobState]int64{store.Done: 2, store.Pending: 1})
	want := "jobs: 2 done, 0 failed, 0 running, 1 pending, and more not yet generated (the plan cannot be read to count them)"
	if tot.String() != want || tot.Total != -1 {
		t.Errorf("totals %+v: %q, want %q", tot, tot.String(), want)
	}
}
