package sched

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func starts(acts []Action) []Start {
	var out []Start
	for _, a := range acts {
		if s, ok := a.(Start); ok {
			out = append(out, s)
		}
	}
	return out
}

func TestFCFSFillsNodesInJoinOrder(t *testing.T) {
	c := New(Config{Policy: FCFS{}})
	c.AddNode(Node{ID: "slow", CPUs: 1, Speed: 0.5}, t0)
	c.AddNode(Node{ID: "fast", CPUs: 2, Speed: 2}, t0)
	if w := c.Wanted(); w != 3 {
		t.Fatalf("Wanted = %d, want 3 free slots", w)
	}
	for i := int64(1); i <= 4; i++ {
		c.Enqueue(i)
	}
	got := starts(c.Ready())
	want := []Start{{1, "slow", 1}, {2, "fast", 1}, {3, "fast", 1}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("starts %v, want %v", got, want)
	}
	c.Finished(2)
	if got := starts(c.Ready()); fmt.Sprint(got) != fmt.Sprint([]Start{{4, "fast", 1}}) {
		t.Fatalf("after a finish: %v", got)
	}
}

func TestFastestPrefersFastUnloadedNodes(t *testing.T) {
	c := New(Config{Policy: Fastest{}})
	c.AddNode(Node{ID: "slow", CPUs: 2, Speed: 1}, t0)
	c.AddNode(Node{ID: "fast", CPUs: 2, Speed: 3, Limit: 4}, t0)
	for i := int64(1); i <= 4; i++ {
		c.Enqueue(i)
	}
	got := starts(c.Ready())
	// fast runs at 3 for its first two jobs, then at 3×2/3 = 2 and 3×2/4 = 1.5:
	// all better than slow's 1.
	for _, s := range got {
		if s.Node != "fast" {
			t.Fatalf("job %d went to %s; want fast for all four: %v", s.Job, s.Node, got)
		}
	}
	c.Enqueue(5)
	if got := starts(c.Ready()); len(got) != 1 || got[0].Node != "slow" {
		t.Fatalf("fifth job: %v, want slow (fast is at its limit)", got)
	}
}

func TestLostNodeRetriesElsewhereThenFails(t *testing.T) {
	c := New(Config{Policy: FCFS{}, Retries: 1, HeartbeatTimeout: 10 * time.Second})
	c.AddNode(Node{ID: "a", CPUs: 1}, t0)
	c.AddNode(Node{ID: "b", CPUs: 1}, t0)
	c.Enqueue(1)
	if got := starts(c.Ready()); got[0].Node != "a" {
		t.Fatalf("first attempt on %v", got)
	}
	c.Heartbeat("b", t0.Add(9*time.Second))
	if lost := c.Tick(t0.Add(11 * time.Second)); len(lost) != 1 || lost[0] != "a" {
		t.Fatalf("lost = %v, want [a]", lost)
	}
	got := starts(c.Ready())
	if len(got) != 1 || got[0] != (Start{1, "b", 2}) {
		t.Fatalf("retry: %v, want job 1 attempt 2 on b", got)
	}
	c.SystemFailure(1, "staging failed")
	acts := c.Ready()
	if len(acts) != 1 {
		t.Fatalf("after the last retry: %v, want one Fail", acts)
	}
	if f, ok := acts[0].(Fail); !ok || f.Job != 1 {
		t.Fatalf("after the last retry: %v, want Fail of job 1", acts)
	}
}

// TestInvariants drives the core with random events and checks that no
// node runs more than its job limit and that every job ends exactly once.
func TestInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		policy := rapid.SampledFrom(Policies).Draw(t, "policy")
		c := New(Config{Policy: policy, Retries: 2})
		now := t0
		nodes := map[string]Node{}
		for i := range rapid.IntRange(1, 4).Draw(t, "nodes") {
			n := Node{ID: fmt.Sprint("n", i), CPUs: rapid.IntRange(1, 4).Draw(t, "cpus"),
				Speed: rapid.Float64Range(0.5, 4).Draw(t, "speed"), Limit: rapid.IntRange(0, 5).Draw(t, "limit")}
			c.AddNode(n, now)
			nodes[n.ID] = n
		}
		total := rapid.IntRange(0, 40).Draw(t, "jobs")
		next := int64(1)
		ended := map[int64]int{}
		running := map[int64]string{}
		step := func() {
			for _, a := range c.Ready() {
				switch a := a.(type) {
				case Start:
					if _, dup := running[a.Job]; dup {
						t.Fatalf("job %d started while running", a.Job)
					}
					running[a.Job] = a.Node
				case Fail:
					ended[a.Job]++
				}
			}
			perNode := map[string]int{}
			for _, n := range running {
				perNode[n]++
			}
			for _, v := range c.nodes {
				if perNode[v.ID] > v.Limit {
					t.Fatalf("node %s runs %d jobs, limit %d", v.ID, perNode[v.ID], v.Limit)
				}
			}
		}
		for steps := 0; steps < 400 && (len(ended) < total || len(running) > 0); steps++ {
			for w := c.Wanted(); w > 0 && next <= int64(total); w-- {
				c.Enqueue(next)
				next++
			}
			step()
			if len(running) == 0 {
				if len(c.nodes) == 0 {
					break
				}
				continue
			}
			var job int64
			for j := range running {
				if job == 0 || j < job {
					job = j
				}
			}
			switch rapid.IntRange(0, 9).Draw(t, "event") {
			case 0:
				c.SystemFailure(job, "staging failed")
				delete(running, job)
			case 1:
				if len(c.nodes) > 1 {
					id := running[job]
					for j, n := range running {
						if n == id {
							delete(running, j)
						}
					}
					c.RemoveNode(id, "lost")
				}
			default:
				c.Finished(job)
				delete(running, job)
				ended[job]++
			}
			now = now.Add(time.Second)
			for id := range nodes {
				c.Heartbeat(id, now)
			}
		}
		for j, n := range ended {
			if n != 1 {
				t.Fatalf("job %d ended %d times", j, n)
			}
		}
		if len(c.nodes) > 0 && len(ended) != total {
			t.Fatalf("%d of %d jobs ended with nodes still up", len(ended), total)
		}
	})
}
