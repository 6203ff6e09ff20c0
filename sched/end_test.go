package sched

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// TestNodeEndKeepsLongJobsOff checks that a node with an end gets no job
// the model expects to run past it, while a node without one gets it,
// and a short job still goes to the node that ends.
func TestNodeEndKeepsLongJobsOff(t *testing.T) {
	c := New(Config{Policy: Orrery})
	c.AddNode(Node{ID: "pilot", CPUs: 1, Speed: 1}, t0)
	c.AddNode(Node{ID: "plain", CPUs: 1, Speed: 0.5}, t0)
	now := teach(c, t0) // work = 10·e^p
	if !c.Model().Ready() {
		t.Fatal("the model learned nothing from 6 jobs")
	}
	// The pilot (the faster node) has 90 s left, 30 s past the margin:
	// room for job 11 (10 s of work), not for job 10 (546 s).
	c.AddNode(Node{ID: "pilot", CPUs: 1, Speed: 1, End: now.Add(EndMargin + 30*time.Second)}, now)
	c.Enqueue(Job{Index: 10, Params: []float64{4}})
	c.Enqueue(Job{Index: 11, Params: []float64{0}})
	got := map[int64]string{}
	for _, s := range starts(c.Ready(now)) {
		got[s.Job] = s.Node
	}
	if got[10] != "plain" || got[11] != "pilot" {
		t.Fatalf("starts %v: want job 10 (546 s of work) on plain, job 11 (10 s) on pilot", got)
	}
}

// TestNodeEndWithoutModel checks the rule while nothing predicts a
// job's work (fcfs learns nothing): a job starts on a node with an end
// while no job has ended, then only when the longest wall time seen
// fits before the end; once the end less the margin has come, nothing
// starts there.
func TestNodeEndWithoutModel(t *testing.T) {
	c := New(Config{Policy: FCFS})
	end := t0.Add(EndMargin + 100*time.Second)
	c.AddNode(Node{ID: "pilot", CPUs: 1, Limit: 1, End: end}, t0)
	c.AddNode(Node{ID: "plain", CPUs: 1, Limit: 1}, t0)
	enqueue(c, 1, 4)
	s := starts(c.Ready(t0))
	if len(s) != 2 || s[0] != (Start{1, "pilot", 1}) {
		t.Fatalf("starts %v, want job 1 on pilot (nothing known yet) and job 2 on plain", s)
	}
	now := t0.Add(20 * time.Second)
	c.Finished(1, 1, Usage{Wall: 20 * time.Second}, now)
	if s := starts(c.Ready(now)); len(s) != 1 || s[0] != (Start{3, "pilot", 1}) {
		t.Fatalf("after a 20 s job, with 80 s left: %v, want job 3 on pilot", s)
	}
	now = now.Add(30 * time.Second)
	c.Finished(2, 1, Usage{Wall: 50 * time.Second}, now)
	c.Finished(3, 1, Usage{Wall: 30 * time.Second}, now)
	// 50 s left before the margin, and a job took 50 s: it just fits.
	if s := starts(c.Ready(now)); len(s) != 1 || s[0] != (Start{4, "pilot", 1}) {
		t.Fatalf("with 50 s left and 50 s the longest: %v, want job 4 on pilot", s)
	}
	c.Finished(4, 1, Usage{Wall: time.Second}, now.Add(time.Second))
	enqueue(c, 5, 5)
	if s := starts(c.Ready(now.Add(time.Second))); len(s) != 1 || s[0].Node != "plain" {
		t.Fatalf("with 49 s left and 50 s the longest: %v, want job 5 on plain", s)
	}

	// Nothing known, but the end less the margin has come.
	c = New(Config{Policy: FCFS})
	c.AddNode(Node{ID: "pilot", CPUs: 1, End: t0.Add(EndMargin)}, t0)
	enqueue(c, 1, 1)
	if acts := c.Ready(t0); len(acts) != 0 {
		t.Fatalf("at the end less the margin: %v, want nothing started", acts)
	}
}

// TestDrain checks that a node that drains starts nothing more, lets
// its attempt finish, and is neither out of service nor said to be.
func TestDrain(t *testing.T) {
	for _, p := range Policies {
		t.Run(p.Name, func(t *testing.T) {
			c := New(Config{Policy: p, Moves: true, Duplicates: true})
			c.AddNode(Node{ID: "a", CPUs: 1, Limit: 1}, t0)
			c.AddNode(Node{ID: "b", CPUs: 1, Limit: 1}, t0)
			enqueue(c, 1, 2)
			s := starts(c.Ready(t0))
			if len(s) == 0 || s[0].Node != "a" {
				t.Fatalf("starts %v, want job 1 on a", s)
			}
			if !c.Drain("a") || c.Drain("a") || !c.Draining("a") || c.Draining("b") {
				t.Fatal("Drain: want true once, then false; Draining: a only")
			}
			if c.InService("a") || c.NodesOutOfService() != 0 || c.NodesInService() != 1 || c.Limit("a") != 0 {
				t.Fatalf("a drains: in service %v, out of service %d, in service %d, limit %d; want false, 0, 1, 0",
					c.InService("a"), c.NodesOutOfService(), c.NodesInService(), c.Limit("a"))
			}
			now := t0
			for range 5 {
				now = now.Add(time.Second)
				for _, a := range c.Ready(now) {
					switch a := a.(type) {
					case Start:
						if a.Node == "a" {
							t.Fatalf("job %d starts on a, which drains", a.Job)
						}
					case Move:
						if a.To == "a" {
							t.Fatalf("job %d moves to a, which drains", a.Job)
						}
					case OutOfService:
						t.Fatalf("%v: a drain is no failure", a)
					}
				}
			}
			// Job 1 still runs on a, unless a policy moved it off (to b).
			if c.jobs[1] == nil || len(c.jobs[1].runs) == 0 {
				t.Fatal("job 1 no longer runs")
			}
			r := c.jobs[1].runs[0]
			c.Finished(1, r.attempt, Usage{Wall: time.Second}, now)
			if c.jobs[1] != nil || c.NodesOutOfService() != 0 {
				t.Fatal("job 1 did not finish where it ran")
			}
		})
	}
}

// TestNodeEndInvariant drives the core with random events on nodes
// that may end or drain, and checks: no attempt starts on a node with
// an end when the core's own bound on the job's time at the node's full
// speed (the model's WorkBound, or the longest wall time seen while it
// predicts nothing) would run past the end less EndMargin; nothing
// starts or moves to a node that drains, and draining takes no node out
// of service; every job ends exactly once, and all end while a node
// without an end is there.
func TestNodeEndInvariant(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		policy := rapid.SampledFrom(Policies).Draw(t, "policy")
		c := New(Config{Policy: policy, Retries: 2, Moves: rapid.Bool().Draw(t, "moves"),
			Duplicates: rapid.Bool().Draw(t, "duplicates"), Restarts: rapid.Bool().Draw(t, "restarts")})
		now := t0
		nodes := map[string]Node{}
		forever := 0                // nodes without an end that do not drain
		drainAt := map[string]int{} // the step at which a node drains
		for i := range rapid.IntRange(1, 4).Draw(t, "nodes") {
			cpus := rapid.IntRange(1, 4).Draw(t, "cpus")
			n := Node{ID: fmt.Sprint("n", i), CPUs: cpus, Speed: rapid.Float64Range(0.5, 4).Draw(t, "speed"),
				Limit: rapid.IntRange(0, cpus).Draw(t, "limit")}
			if rapid.Bool().Draw(t, "ends") {
				n.End = now.Add(time.Duration(rapid.IntRange(0, 200).Draw(t, "end")) * time.Second)
			} else {
				forever++
			}
			if rapid.Bool().Draw(t, "drains") {
				drainAt[n.ID] = rapid.IntRange(0, 200).Draw(t, "drain at")
			}
			c.AddNode(n, now)
			nodes[n.ID] = n
		}
		work := func(job int64) float64 { return 2 * math.Exp(float64(job%3)) }
		total := rapid.IntRange(1, 20).Draw(t, "jobs")
		next := int64(1)
		ended := map[int64]int{}
		type att struct {
			job   int64
			n     int
			node  string
			start time.Time
		}
		var running []att
		drained := map[string]bool{}
		longest := time.Duration(0) // the longest wall time reported
		drop := func(job int64, n int) att {
			for i, a := range running {
				if a.job == job && a.n == n {
					running = append(running[:i], running[i+1:]...)
					return a
				}
			}
			t.Fatalf("job %d attempt %d is not running", job, n)
			return att{}
		}
		step := func() {
			for _, a := range c.Ready(now) {
				switch a := a.(type) {
				case Start:
					if drained[a.Node] {
						t.Fatalf("job %d starts on %s, which drains", a.Job, a.Node)
					}
					if n := nodes[a.Node]; !n.End.IsZero() {
						need := longest.Seconds()
						if w, ok := c.Model().WorkBound([]float64{float64(a.Job % 3)}); ok {
							need = w / n.Speed
						}
						if left := n.End.Sub(now) - EndMargin; left <= 0 || need > left.Seconds() {
							t.Fatalf("job %d starts on %s with %v left before its end less the margin; it needs %.1f s",
								a.Job, a.Node, left, need)
						}
					}
					running = append(running, att{a.Job, a.Attempt, a.Node, now})
				case Move:
					if drained[a.To] {
						t.Fatalf("job %d moves to %s, which drains", a.Job, a.To)
					}
					at := drop(a.Job, a.Attempt)
					running = append(running, att{a.Job, a.Attempt, a.To, at.start})
				case Cancel:
					drop(a.Job, a.Attempt)
				case Fail:
					ended[a.Job]++
				case OutOfService:
					t.Fatalf("%v: no failure here is the node's", a)
				}
			}
			if c.NodesOutOfService() != 0 {
				t.Fatalf("%d nodes out of service; draining is no failure", c.NodesOutOfService())
			}
		}
		for steps := 0; steps < 3000 && (len(ended) < total || len(running) > 0); steps++ {
			for w := c.Wanted(); w > 0 && next <= int64(total); w-- {
				c.Enqueue(Job{Index: next, Params: []float64{float64(next % 3)}})
				next++
			}
			if next > int64(total) {
				c.Close()
			}
			step()
			now = now.Add(time.Second)
			for id := range nodes {
				c.Heartbeat(id, now)
			}
			for id, at := range drainAt {
				if at == steps && !drained[id] {
					c.Drain(id)
					drained[id] = true
					if nodes[id].End.IsZero() {
						forever--
					}
				}
			}
			// An attempt ends once its work is done at its node's speed
			// (the other attempt of a job that ended is cancelled next).
			for _, a := range slices.Clone(running) {
				if ended[a.job] > 0 || now.Sub(a.start).Seconds() < work(a.job)/nodes[a.node].Speed {
					continue
				}
				wall := now.Sub(a.start)
				c.Finished(a.job, a.n, Usage{Work: work(a.job), Wall: wall}, now)
				longest = max(longest, wall)
				drop(a.job, a.n)
				ended[a.job]++
			}
		}
		for j, n := range ended {
			if n != 1 {
				t.Fatalf("job %d ended %d times", j, n)
			}
		}
		if forever > 0 && len(ended) != total {
			t.Fatalf("%d of %d jobs ended with a node without an end in service", len(ended), total)
		}
	})
}

// TestEndedNodeLossesFree: attempts lost with a node that has an end (a
// batch pilot, ended by its time limit, a cancel or pre-emption) are not
// charged to their jobs, which run again however often that happens up
// to MaxEndedLosses; past it, each loss is charged, so a job that kills
// every pilot it runs on still ends failed.
func TestEndedNodeLossesFree(t *testing.T) {
	c := New(Config{Policy: FCFS, Retries: 1})
	enqueue(c, 1, 1)
	now := t0
	var failed bool
	losses := 0
	for i := 0; i < MaxEndedLosses+5 && !failed; i++ {
		id := fmt.Sprintf("pilot%d", i)
		c.AddNode(Node{ID: id, CPUs: 1, Limit: 1, End: now.Add(time.Hour)}, now)
		for _, a := range c.Ready(now) {
			if _, ok := a.(Fail); ok {
				failed = true
			}
		}
		now = now.Add(time.Second)
		c.RemoveNode(id, "pilot ended", now)
		losses++
		for _, a := range c.Ready(now) {
			if _, ok := a.(Fail); ok {
				failed = true
			}
		}
	}
	if !failed || losses <= MaxEndedLosses {
		t.Fatalf("failed %v after %d losses with pilots, want no failure up to %d and one after", failed, losses, MaxEndedLosses)
	}
	// A node without an end charges at once.
	d := New(Config{Policy: FCFS, Retries: 1})
	enqueue(d, 1, 1)
	for i := 0; i < 2; i++ {
		d.AddNode(Node{ID: "n", CPUs: 1, Limit: 1}, now)
		d.Ready(now)
		d.RemoveNode("n", "lost", now)
	}
	var f bool
	for _, a := range d.Ready(now) {
		if _, ok := a.(Fail); ok {
			f = true
		}
	}
	if !f {
		t.Fatalf("a job lost twice with plain nodes under 1 retry did not fail")
	}
}

// TestEndCutShortLearnt: a job whose attempt a pilot's end cut short
// after 100 s does not start again on a pilot with 80 s of room, however
// short the model expects it, but does on one with more, or on a node
// with no end.
func TestEndCutShortLearnt(t *testing.T) {
	c := New(Config{Policy: FCFS})
	enqueue(c, 1, 1)
	now := t0
	c.AddNode(Node{ID: "p1", CPUs: 1, Limit: 1, End: now.Add(100 * time.Second)}, now)
	if s := starts(c.Ready(now)); len(s) != 1 {
		t.Fatalf("starts %v", s)
	}
	now = now.Add(100 * time.Second) // p1's end
	c.RemoveNode("p1", "pilot ended", now)
	c.AddNode(Node{ID: "p2", CPUs: 1, Limit: 1, End: now.Add(EndMargin + 80*time.Second)}, now)
	if s := starts(c.Ready(now)); len(s) != 0 {
		t.Fatalf("starts %v on a pilot with 80 s of room for a job cut short after 100 s", s)
	}
	c.AddNode(Node{ID: "p3", CPUs: 1, Limit: 1, End: now.Add(EndMargin + 200*time.Second)}, now)
	if s := starts(c.Ready(now)); len(s) != 1 || s[0].Node != "p3" {
		t.Fatalf("starts %v, want the job on p3 (200 s of room)", s)
	}
}
