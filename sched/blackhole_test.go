package sched

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// blackHoleRun drives a core to the end of its jobs: fail(node, job)
// says whether an attempt there fails as a system failure (else it
// finishes); a node's attempts end slow steps after they start (fast
// nodes' at once). It returns the actions, in order, and the jobs that
// finished.
func blackHoleRun(t *testing.T, c *Core, jobs int64, slow map[string]int, fail func(node string, job int64) bool) (acts []Action, finished []int64) {
	t.Helper()
	enqueue(c, 1, jobs)
	c.Close()
	type att struct {
		Start
		at int
	}
	var running []att
	now := t0
	for step := 0; step < 10000; step++ {
		for _, a := range c.Ready(now) {
			acts = append(acts, a)
			if s, ok := a.(Start); ok {
				running = append(running, att{s, step + slow[s.Node]})
			}
		}
		if len(running) == 0 {
			return acts, finished
		}
		var later []att
		for _, r := range running {
			switch {
			case r.at > step:
				later = append(later, r)
			case fail(r.Node, r.Job):
				c.SystemFailure(r.Job, r.Attempt, "job directory on node "+r.Node+": gone", now)
			default:
				c.Finished(r.Job, r.Attempt, Usage{}, now)
				finished = append(finished, r.Job)
			}
		}
		running = later
		now = now.Add(time.Second)
		for _, id := range []string{"a", "b", "c"} {
			c.Heartbeat(id, now)
		}
	}
	t.Fatalf("the jobs did not end: %v", acts)
	return nil, nil
}

// TestBlackHoleNodeTakenOut: a node that fails every attempt as a system
// failure, beside a slower one that works, is taken out of service after
// BlackHole failures in a row; no job spends its retries there (every job
// finishes, none fails), and nothing starts there afterwards.
func TestBlackHoleNodeTakenOut(t *testing.T) {
	for _, pol := range []Policy{FCFS, Orrery} {
		t.Run(pol.Name, func(t *testing.T) {
			c := New(Config{Policy: pol, Retries: 1})
			c.AddNode(Node{ID: "a", CPUs: 1, Limit: 2}, t0)
			c.AddNode(Node{ID: "b", CPUs: 1, Limit: 1}, t0)
			acts, finished := blackHoleRun(t, c, 20, map[string]int{"b": 3}, func(node string, _ int64) bool { return node == "a" })
			if f := only[Fail](acts); len(f) > 0 {
				t.Fatalf("jobs failed: %v", f)
			}
			if len(finished) != 20 {
				t.Fatalf("%d jobs finished, want 20", len(finished))
			}
			outs := only[OutOfService](acts)
			if len(outs) != 1 || outs[0].Node != "a" {
				t.Fatalf("out of service: %v, want node a once", outs)
			}
			want := fmt.Sprintf("%d system failures in a row; the last: job directory on node a: gone", BlackHole)
			if outs[0].Reason != want {
				t.Errorf("reason %q, want %q", outs[0].Reason, want)
			}
			i := slices.IndexFunc(acts, func(a Action) bool { _, ok := a.(OutOfService); return ok })
			onA := 0
			for k, a := range acts {
				if s, ok := a.(Start); ok && s.Node == "a" {
					onA++
					if k > i {
						t.Errorf("%v after node a was taken out of service", s)
					}
				}
			}
			// Taken out at the 5th failure; a second attempt running there
			// then (its job limit is 2) is left to finish.
			if onA < BlackHole || onA > BlackHole+1 {
				t.Errorf("%d attempts on a, want %d or %d", onA, BlackHole, BlackHole+1)
			}
			if in, out := c.NodesInService(), c.NodesOutOfService(); in != 1 || out != 1 {
				t.Errorf("%d nodes in service, %d out; want 1 and 1", in, out)
			}
		})
	}
}

// TestRetriesGivenBack: a job whose attempt failed on a node is not sent
// straight back there while another node could take it, so it spends no
// retries there. With one retry and a single slot on each node, job 1
// fails on a while b is busy: it used to go back to a at once and fail
// for good; now it waits for b, and a is taken out of service by the
// other jobs' failures.
func TestRetriesGivenBack(t *testing.T) {
	c := New(Config{Policy: FCFS, Retries: 1})
	c.AddNode(Node{ID: "a", CPUs: 1, Limit: 1}, t0)
	c.AddNode(Node{ID: "b", CPUs: 1, Limit: 1}, t0)
	acts, finished := blackHoleRun(t, c, 8, map[string]int{"b": 50}, func(node string, _ int64) bool { return node == "a" })
	if f := only[Fail](acts); len(f) > 0 {
		t.Fatalf("jobs failed: %v", f)
	}
	if len(finished) != 8 {
		t.Fatalf("%d jobs finished, want 8", len(finished))
	}
	n := 0
	for _, s := range starts(acts) {
		if s.Job == 1 && s.Node == "a" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("job 1 ran %d times on a, want once: a job that failed there goes elsewhere", n)
	}
}

// TestOneJobDoesNotTakeANodeOut: job 1 fails on a every time as a
// system failure (a is healthy: every other job finishes there), while b
// is busy with long jobs. The job is held for b rather than sent back to
// a at once, and its failures alone never take a out of service.
func TestOneJobDoesNotTakeANodeOut(t *testing.T) {
	for _, pol := range []Policy{FCFS, Orrery} {
		t.Run(pol.Name, func(t *testing.T) {
			c := New(Config{Policy: pol})
			c.AddNode(Node{ID: "a", CPUs: 1, Limit: 1}, t0)
			c.AddNode(Node{ID: "b", CPUs: 1, Limit: 1}, t0)
			acts, finished := blackHoleRun(t, c, 6, map[string]int{"b": 45}, func(node string, job int64) bool { return node == "a" && job == 1 })
			if outs := only[OutOfService](acts); len(outs) > 0 {
				t.Fatalf("out of service: %v; one job's failures took a healthy node out", outs)
			}
			if f := only[Fail](acts); len(f) > 0 || len(finished) != 6 {
				t.Fatalf("%d finished, failed %v; want all 6 finished", len(finished), f)
			}
			var onA []int
			for i, a := range acts {
				if s, ok := a.(Start); ok && s.Job == 1 && s.Node == "a" {
					onA = append(onA, i)
				}
			}
			if len(onA) > 2 {
				t.Errorf("job 1 started %d times on a; want it held for b after failing there", len(onA))
			}
		})
	}
}

// TestLastNodeOwnFailures: the only node fails every attempt as its own
// failure (its job directory cannot be made). It is taken out of service
// after BlackHole failures of distinct jobs although it is the last, no
// job is charged (none fails), and nothing starts afterwards: the jobs
// wait for a node.
func TestLastNodeOwnFailures(t *testing.T) {
	c := New(Config{Policy: FCFS})
	c.AddNode(Node{ID: "a", CPUs: 1, Limit: 1}, t0)
	enqueue(c, 1, 20)
	c.Close()
	now := t0
	var acts []Action
	jobs := map[int64]bool{}
	for k := 0; k < 100; k++ {
		got := c.Ready(now)
		acts = append(acts, got...)
		ss := starts(got)
		if len(ss) == 0 {
			break
		}
		for _, s := range ss {
			jobs[s.Job] = true
			c.NodeFailure(s.Job, s.Attempt, "job directory on node a: not a directory", now)
		}
		now = now.Add(time.Millisecond)
	}
	outs := only[OutOfService](acts)
	if len(outs) != 1 || outs[0].Node != "a" {
		t.Fatalf("out of service: %v, want a", outs)
	}
	if f := only[Fail](acts); len(f) > 0 {
		t.Fatalf("jobs failed: %v", f)
	}
	if n := len(starts(acts)); n != BlackHole || len(jobs) != BlackHole {
		t.Errorf("%d attempts of %d jobs, want %d of distinct jobs", n, len(jobs), BlackHole)
	}
	if c.NodesInService() != 0 || c.Queued() != 20 {
		t.Errorf("%d in service, %d queued; want 0 and all 20 waiting", c.NodesInService(), c.Queued())
	}
}

// TestLastNodeJobsFailures: on the only node, failures that may be the
// jobs' (SystemFailure) are charged at once: the jobs fail with their
// error after their retries, and the node stays in service.
func TestLastNodeJobsFailures(t *testing.T) {
	c := New(Config{Policy: FCFS})
	c.AddNode(Node{ID: "a", CPUs: 1, Limit: 1}, t0)
	acts, finished := blackHoleRun(t, c, 3, nil, func(string, int64) bool { return true })
	if len(finished) != 0 || len(only[Fail](acts)) != 3 || c.NodesInService() != 1 {
		t.Fatalf("%d finished, failed %v, %d in service; want the 3 failed and a in service", len(finished), only[Fail](acts), c.NodesInService())
	}
}

// TestJobFailingEverywhereIsTheJobs: jobs whose attempts fail as system
// failures on every node (a file they stage breaks every node alike) do
// not take every node out of service and stall the sweep: at least one
// node stays in service, and the jobs fail with their error after their
// retries there. The other jobs finish.
func TestJobFailingEverywhereIsTheJobs(t *testing.T) {
	for _, pol := range []Policy{FCFS, Orrery} {
		t.Run(pol.Name, func(t *testing.T) {
			c := New(Config{Policy: pol})
			c.AddNode(Node{ID: "a", CPUs: 1, Limit: 2}, t0)
			c.AddNode(Node{ID: "b", CPUs: 1, Limit: 2}, t0)
			c.AddNode(Node{ID: "c", CPUs: 1, Limit: 2}, t0)
			bad := func(_ string, job int64) bool { return job > 10 }
			acts, finished := blackHoleRun(t, c, 20, nil, bad)
			if len(finished) != 10 {
				t.Fatalf("%d jobs finished, want the 10 good ones", len(finished))
			}
			fails := only[Fail](acts)
			if len(fails) != 10 {
				t.Fatalf("%d jobs failed, want the 10 bad ones: %v", len(fails), fails)
			}
			for _, f := range fails {
				if want := "job directory on node "; f.Job <= 10 || len(f.Reason) < len(want) || f.Reason[:len(want)] != want {
					t.Errorf("%v: want a bad job failed with its error", f)
				}
			}
			if c.NodesInService() == 0 {
				t.Fatalf("every node was taken out of service: %v", only[OutOfService](acts))
			}
		})
	}
}

// TestAllBadSweepKeepsTheLastNode: when every job fails everywhere (say
// nodestart fails on every node), the failures are the jobs': here each
// job has failed on both nodes by the time a streak is long enough, so
// both stay in service (and the last one would stay in any case); the
// jobs fail with their error.
func TestAllBadSweepKeepsTheLastNode(t *testing.T) {
	c := New(Config{Policy: FCFS})
	c.AddNode(Node{ID: "a", CPUs: 1, Limit: 1}, t0)
	c.AddNode(Node{ID: "b", CPUs: 1, Limit: 1}, t0)
	acts, finished := blackHoleRun(t, c, 12, nil, func(string, int64) bool { return true })
	if len(finished) != 0 || len(only[Fail](acts)) != 12 {
		t.Fatalf("%d finished and %d failed, want 0 and 12", len(finished), len(only[Fail](acts)))
	}
	if c.NodesInService() != 2 {
		t.Fatalf("%d nodes in service, want both: %v", c.NodesInService(), only[OutOfService](acts))
	}
}

// TestJobFailuresNeverCountAgainstANode: attempts that end with the
// job's own failure (Finished), or a duplicate's failure of its own
// (AttemptFailed), and attempts lost with the node's connection
// (AttemptLost), never take a node out of service, however many.
func TestJobFailuresNeverCountAgainstANode(t *testing.T) {
	c := New(Config{Policy: FCFS})
	c.AddNode(Node{ID: "a", CPUs: 1, Limit: 1}, t0)
	c.AddNode(Node{ID: "b", CPUs: 1, Limit: 1}, t0)
	enqueue(c, 1, 40)
	c.Close()
	now := t0
	for k := 0; c.Running() > 0 || c.Queued() > 0; k++ {
		if k > 1000 {
			t.Fatal("the jobs did not end")
		}
		for _, s := range starts(c.Ready(now)) {
			switch {
			case s.Node == "a" && k%2 == 0:
				c.AttemptLost(s.Job, s.Attempt, "lost with the connection", now)
			case s.Node == "a":
				c.Finished(s.Job, s.Attempt, Usage{}, now) // the job's own failure, as far as the core knows
			default:
				c.AttemptFailed(s.Job, s.Attempt, now) // not a duplicate: treated as lost
			}
		}
	}
	if c.NodesOutOfService() != 0 {
		t.Fatalf("%d nodes out of service, want none", c.NodesOutOfService())
	}
}

// TestEveryNodeOutOfService: when the last node in service is lost, the
// nodes left are all out of service: the core says so (the driver ends
// the run) and starts nothing.
func TestEveryNodeOutOfService(t *testing.T) {
	c := New(Config{Policy: FCFS})
	c.AddNode(Node{ID: "a", CPUs: 1, Limit: 1}, t0)
	c.AddNode(Node{ID: "b", CPUs: 1, Limit: 1}, t0)
	enqueue(c, 1, 20)
	now := t0
	for k := 0; c.NodesOutOfService() == 0; k++ {
		if k > 1000 {
			t.Fatal("node a was never taken out of service")
		}
		for _, s := range starts(c.Ready(now)) {
			if s.Node == "a" {
				c.SystemFailure(s.Job, s.Attempt, "broken", now)
			}
		}
	}
	c.RemoveNode("b", "lost", now)
	if got := starts(c.Ready(now)); len(got) != 0 || c.NodesInService() != 0 || c.Queued() == 0 {
		t.Fatalf("starts %v, %d in service, %d queued; want none, 0 and the jobs waiting", got, c.NodesInService(), c.Queued())
	}
}
