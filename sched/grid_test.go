package sched

import (
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// gridOnly returns the actions of type T in acts.
func gridOnly[T GridAction](acts []GridAction) []T {
	var out []T
	for _, a := range acts {
		if x, ok := a.(T); ok {
			out = append(out, x)
		}
	}
	return out
}

// sentTo counts the Sends of acts per cluster.
func sentTo(acts []GridAction) map[string]int {
	n := map[string]int{}
	for _, s := range gridOnly[Send](acts) {
		n[s.Cluster]++
	}
	return n
}

// depthOf is a cluster's depth as the grid's status says.
func depthOf(t *testing.T, g *Grid, name string, now time.Time) int {
	t.Helper()
	for _, s := range g.Status(now) {
		if s.Name == name {
			return s.Depth
		}
	}
	t.Fatalf("no cluster %s", name)
	return 0
}

func enqueueGrid(g *Grid, from, to int64) {
	for i := from; i <= to; i++ {
		g.Enqueue(Job{Index: i})
	}
}

// TestGridSizesByPowerThenRate: before any cluster has a rate, each
// holds its slots and one more; then a cluster without a rate of its own
// is sized by its power at the rate per unit of power of the one that
// has, and by its own rate once it has one.
func TestGridSizesByPowerThenRate(t *testing.T) {
	g := NewGrid(GridConfig{Policy: MEC})
	g.AddCluster(GridCluster{Name: "slow", CPUs: 2, Power: 2}, t0)
	g.AddCluster(GridCluster{Name: "fast", CPUs: 2, Power: 6}, t0)
	enqueueGrid(g, 1, 100)
	acts := g.Tick(t0)
	if n := sentTo(acts); n["slow"] != 3 || n["fast"] != 3 {
		t.Fatalf("sent %v, want 3 to each (2 slots and 1 waiting: no rate yet)", n)
	}
	for _, s := range gridOnly[Send](acts) {
		if s.Attempt != 1 {
			t.Fatalf("%v: want attempt 1", s)
		}
		if s.Job <= 4 { // two on each cluster start
			g.Started(s.Cluster, s.Job, 1, t0)
		}
	}
	byCluster := map[string][]int64{}
	for _, s := range gridOnly[Send](acts) {
		byCluster[s.Cluster] = append(byCluster[s.Cluster], s.Job)
	}
	// fast finishes its two running jobs in 10 s: 0.2 jobs a second,
	// 12 in a minute. slow has finished none: 2 GHz at 0.2 ÷ 6 GHz a
	// second, 4 in a minute.
	now := t0.Add(10 * time.Second)
	for _, j := range byCluster["fast"][:2] {
		if !g.Finished("fast", j, 1, Usage{}, now) {
			t.Fatalf("fast's job %d did not end", j)
		}
	}
	if d := depthOf(t, g, "fast", now); d != 14 {
		t.Fatalf("fast's depth %d, want 2 slots + 12", d)
	}
	if d := depthOf(t, g, "slow", now); d != 6 {
		t.Fatalf("slow's depth %d, want 2 slots + 4 (its power at fast's rate per GHz)", d)
	}
	acts = g.Tick(now)
	if n := sentTo(acts); n["fast"] != 14-1 || n["slow"] != 6-3 {
		t.Fatalf("sent %v, want 13 to fast (it holds 1) and 3 to slow (it holds 3)", n)
	}
	// slow's own rate: two jobs in 40 s since its first start.
	now = t0.Add(40 * time.Second)
	for _, j := range byCluster["slow"][:2] {
		g.Finished("slow", j, 1, Usage{}, now)
	}
	if d := depthOf(t, g, "slow", now); d != 2+3 {
		t.Fatalf("slow's depth %d, want 2 slots + 3 (0.05 jobs a second for 60 s)", d)
	}
}

// TestGridRideOut: the queue beyond the slots is what the cluster runs
// in the ride-out time, within the cluster's own limit; a cut cluster
// keeps its queue and is sent nothing until it is back.
func TestGridRideOut(t *testing.T) {
	for _, tt := range []struct {
		rideOut time.Duration
		limit   int
		want    int
	}{{0, 0, 4 + 12}, {2 * time.Minute, 0, 4 + 24}, {-1, 0, 4 + 1}, {0, 10, 10}} {
		g := NewGrid(GridConfig{Policy: MEC, RideOut: tt.rideOut})
		g.AddCluster(GridCluster{Name: "c", CPUs: 4, Power: 4, Limit: tt.limit}, t0)
		enqueueGrid(g, 1, 200)
		var sent []int64
		for _, s := range gridOnly[Send](g.Tick(t0)) {
			sent = append(sent, s.Job)
		}
		for _, j := range sent[:4] {
			g.Started("c", j, 1, t0)
		}
		now := t0.Add(20 * time.Second) // 4 jobs in 20 s: 0.2 a second
		for _, j := range sent[:4] {
			g.Finished("c", j, 1, Usage{}, now)
		}
		g.Tick(now)
		if d, st := depthOf(t, g, "c", now), g.Status(now)[0]; d != tt.want || st.Queued != tt.want {
			t.Errorf("ride-out %v, limit %d: depth %d holding %d, want %d", tt.rideOut, tt.limit, d, st.Queued, tt.want)
		}
	}

	g := NewGrid(GridConfig{Policy: MEC})
	g.AddCluster(GridCluster{Name: "a", CPUs: 1}, t0)
	g.AddCluster(GridCluster{Name: "b", CPUs: 1}, t0)
	enqueueGrid(g, 1, 10)
	first := g.Tick(t0)
	g.SetLink("a", Cut, t0)
	for _, s := range g.Status(t0) {
		if s.Name == "a" && (s.Link != Cut || s.Queued != 2) {
			t.Fatalf("cut cluster a: %+v, want its 2 jobs kept", s)
		}
	}
	g.Close()
	now := t0.Add(time.Minute)
	for i := range 8 { // b runs everything it gets; a is cut
		acts := g.Tick(now)
		if i == 0 {
			acts = append(first, acts...)
		}
		for _, a := range acts {
			switch a := a.(type) {
			case Send:
				if a.Cluster == "a" {
					if i == 0 && slices.Contains(first, GridAction(a)) {
						continue // before the cut
					}
					t.Fatalf("%v: sent to a cut cluster", a)
				}
				g.Started(a.Cluster, a.Job, a.Attempt, now)
				now = now.Add(time.Second)
				g.Finished(a.Cluster, a.Job, a.Attempt, Usage{}, now)
			case Withdraw, Duplicate:
				t.Fatalf("step %d: %v with a cluster cut", i, a)
			}
		}
	}
	if st := g.Status(now); st[0].Queued != 2 || st[1].Done != 8 {
		t.Fatalf("status %+v: want a's 2 jobs still there, 8 done on b", st)
	}
	g.SetLink("a", Connected, now)
	if w := gridOnly[Withdraw](g.Tick(now)); len(w) != 1 || w[0].Cluster != "a" {
		t.Fatalf("once a is back: withdraws %v, want one of its jobs for idle b", w)
	}
}

// TestGridMovesWaitingJobs: once nothing waits at the coordinator, a job
// still waiting on a slow cluster is withdrawn for a fast one with room,
// and sent there once the slow one gives it back; one that started in
// the meantime stays.
func TestGridMovesWaitingJobs(t *testing.T) {
	for _, race := range []bool{false, true} {
		g := NewGrid(GridConfig{Policy: MEC})
		g.AddCluster(GridCluster{Name: "a", CPUs: 1, Power: 1}, t0)
		g.AddCluster(GridCluster{Name: "b", CPUs: 1, Power: 4}, t0)
		enqueueGrid(g, 1, 6)
		g.Close()
		acts := g.Tick(t0)
		on := map[string][]int64{}
		for _, s := range gridOnly[Send](acts) {
			on[s.Cluster] = append(on[s.Cluster], s.Job)
		}
		if len(on["a"]) != 2 || len(on["b"]) != 2 {
			t.Fatalf("sent %v, want 2 to each", on)
		}
		g.Started("a", on["a"][0], 1, t0)
		g.Started("b", on["b"][0], 1, t0)
		// b is done with its first job in 10 s: 0.1 a second, a 0.025
		// by its power. The two jobs left go to b, and a's waiting job
		// is worth moving there too.
		now := t0.Add(10 * time.Second)
		g.Finished("b", on["b"][0], 1, Usage{}, now)
		g.Started("b", on["b"][1], 1, now)
		acts = g.Tick(now)
		if n := sentTo(acts); n["b"] != 2 || n["a"] != 0 {
			t.Fatalf("end: sent %v, want the last 2 to b", n)
		}
		w := gridOnly[Withdraw](acts)
		waiting := on["a"][1]
		if len(w) != 1 || w[0] != (Withdraw{Job: waiting, Attempt: 1, Cluster: "a"}) {
			t.Fatalf("withdraws %v, want job %d's from a", w, waiting)
		}
		if race {
			g.Started("a", waiting, 1, now) // a began it before the withdraw reached it
			if acts := g.Tick(now); len(gridOnly[Send](acts)) != 0 {
				t.Fatalf("the job started on a, yet: %v", acts)
			}
			if g.Running() != 3 {
				t.Fatalf("%d running, want 3 (a's two, b's one)", g.Running())
			}
			continue
		}
		g.Withdrawn("a", waiting, 1, now)
		acts = g.Tick(now)
		if s := gridOnly[Send](acts); len(s) != 1 || s[0] != (Send{Job: waiting, Attempt: 2, Cluster: "b"}) {
			t.Fatalf("after the withdraw: %v, want job %d's attempt 2 sent to b", acts, waiting)
		}
	}
}

// TestGridLostCluster: a cluster lost for good gives its jobs back. What
// waited there goes out again at no cost; what ran there is charged a
// retry, and fails once out of retries. Late reports from it are
// ignored.
func TestGridLostCluster(t *testing.T) {
	g := NewGrid(GridConfig{Policy: MEC, Retries: 1})
	for i, name := range []string{"a", "b", "c"} {
		g.AddCluster(GridCluster{Name: name, CPUs: 1, Power: []float64{4, 2, 1}[i]}, t0)
	}
	enqueueGrid(g, 1, 2)
	g.Close()
	where := map[int64]Send{}
	for _, s := range gridOnly[Send](g.Tick(t0)) {
		where[s.Job] = s
	}
	if len(where) != 2 || where[1].Cluster != where[2].Cluster {
		t.Fatalf("sent %v, want both to one cluster", where)
	}
	lost := where[1].Cluster
	g.Started(lost, 1, 1, t0) // job 1 runs there; job 2 waits
	g.SetLink(lost, Lost, t0)
	if g.Running() != 0 {
		t.Fatalf("%d running after the loss", g.Running())
	}
	if g.Finished(lost, 1, 1, Usage{}, t0) {
		t.Fatal("a late result from the lost cluster ended the job")
	}
	again := map[int64]Send{}
	for _, s := range gridOnly[Send](g.Tick(t0)) {
		again[s.Job] = s
	}
	if len(again) != 2 || again[1].Attempt != 2 || again[1].Cluster == lost || again[2].Cluster == lost {
		t.Fatalf("sent again %v, want both elsewhere", again)
	}
	// Lose the cluster again, with both running: job 1 is out of
	// retries, job 2 (never run before) goes out again.
	next := again[1].Cluster
	if again[2].Cluster != next {
		t.Fatalf("sent again %v, want both to one cluster", again)
	}
	g.Started(next, 1, 2, t0)
	g.Started(next, 2, 2, t0)
	g.RemoveCluster(next, "its head was stopped", t0)
	acts := g.Tick(t0)
	f := gridOnly[Fail](acts)
	if len(f) != 1 || f[0].Job != 1 {
		t.Fatalf("fails %v, want job 1's", f)
	}
	if s := gridOnly[Send](acts); len(s) != 1 || s[0].Job != 2 || s[0].Attempt != 3 {
		t.Fatalf("sends %v, want job 2's third attempt", s)
	}
	want := fmt.Sprintf("cluster %s lost: its head was stopped (2 system failures)", next)
	if f[0].Reason != want {
		t.Fatalf("reason %q, want %q", f[0].Reason, want)
	}
}

// TestGridSystemFailureGoesElsewhere: a job a cluster could not run goes
// to another cluster while there is one, and fails past its retries.
func TestGridSystemFailureGoesElsewhere(t *testing.T) {
	g := NewGrid(GridConfig{Policy: MEC, Retries: 2})
	g.AddCluster(GridCluster{Name: "a", CPUs: 1, Power: 4}, t0)
	g.AddCluster(GridCluster{Name: "b", CPUs: 1}, t0)
	enqueueGrid(g, 1, 1)
	var tried []string
	for range 3 {
		s := gridOnly[Send](g.Tick(t0))
		if len(s) != 1 {
			t.Fatalf("sends %v after %v", s, tried)
		}
		tried = append(tried, s[0].Cluster)
		g.SystemFailure(s[0].Cluster, 1, s[0].Attempt, "disk full", t0)
	}
	if tried[0] != "a" || tried[1] != "b" {
		t.Fatalf("tried %v, want a (the faster), then b", tried)
	}
	if f := gridOnly[Fail](g.Tick(t0)); len(f) != 1 || f[0].Reason != "disk full (3 system failures)" {
		t.Fatalf("fails %v", f)
	}
}

// teachGrid runs jobs 1 to 6 on cluster c, so that the grid's model
// learns work = 100·e^p, and returns the time after.
func teachGrid(t *testing.T, g *Grid, now time.Time) time.Time {
	t.Helper()
	for i := int64(1); i <= 6; i++ {
		g.Enqueue(Job{Index: i, Params: []float64{float64(i) / 4}})
	}
	for done := 0; done < 6; {
		for _, s := range gridOnly[Send](g.Tick(now)) {
			g.Started(s.Cluster, s.Job, s.Attempt, now)
			now = now.Add(time.Second)
			g.Finished(s.Cluster, s.Job, s.Attempt, Usage{Work: 100 * expP(float64(s.Job)/4)}, now)
			done++
		}
	}
	if !g.Model().Ready() {
		t.Fatal("the grid's model learned nothing from 6 jobs")
	}
	return now
}

func expP(p float64) float64 {
	x := 1.0
	term := 1.0
	for k := 1; k < 30; k++ {
		term *= p / float64(k)
		x += term
	}
	return x
}

// TestGridEndGameOrrery: under orrery the last jobs go, longest first,
// where each is expected to finish soonest (the fast cluster takes two
// at once, beyond its depth, where the slow one would take longer for
// one), every cluster is told it has its last jobs, and a straggler is
// duplicated on a cluster left idle; the first attempt to finish wins.
func TestGridEndGameOrrery(t *testing.T) {
	g := NewGrid(GridConfig{Policy: Orrery, Duplicates: true})
	g.AddCluster(GridCluster{Name: "fast", CPUs: 2, Power: 8, Fastest: 4}, t0)
	g.AddCluster(GridCluster{Name: "slow", CPUs: 2, Power: 2, Fastest: 1}, t0)
	now := teachGrid(t, g, t0)
	// Expected work: 2009 (p 3), 1000 (p 2.3), 100 (p 0).
	g.Enqueue(Job{Index: 10, Params: []float64{3}})
	g.Enqueue(Job{Index: 11, Params: []float64{2.3}})
	g.Enqueue(Job{Index: 12, Params: []float64{0}})
	g.Close()
	now = now.Add(time.Second)
	acts := g.Tick(now)
	sends := gridOnly[Send](acts)
	want := []Send{{10, 1, "fast"}, {11, 1, "fast"}, {12, 1, "slow"}}
	if fmt.Sprint(sends) != fmt.Sprint(want) {
		t.Fatalf("sends %v, want %v: job 11 ends sooner beside job 10 on fast (3009/8 s, but no sooner than 2009/4 s) than alone on slow (1000 s)", sends, want)
	}
	if l := gridOnly[Last](acts); len(l) != 2 {
		t.Fatalf("lasts %v, want both clusters told", l)
	}
	for _, s := range sends {
		g.Started(s.Cluster, s.Job, s.Attempt, now)
	}
	// fast is done with its two in 600 s; job 12 has run 600 s at 1
	// GHz, more than its 100 of work expected: a tenth of that, 10 s,
	// is taken to be left; a duplicate on fast takes 25 s. No duplicate.
	now = now.Add(600 * time.Second)
	g.Finished("fast", 10, 1, Usage{Work: 2009}, now)
	g.Finished("fast", 11, 1, Usage{Work: 1000}, now)
	if d := gridOnly[Duplicate](g.Tick(now)); len(d) != 0 {
		t.Fatalf("duplicates %v of a job nearly done", d)
	}

	// The same end, but job 12 started late on slow: 90 s after the
	// others, it is expected to take 100 s more there, 25 s on fast.
	g = NewGrid(GridConfig{Policy: Orrery, Duplicates: true})
	g.AddCluster(GridCluster{Name: "fast", CPUs: 2, Power: 8, Fastest: 4}, t0)
	g.AddCluster(GridCluster{Name: "slow", CPUs: 2, Power: 2, Fastest: 1}, t0)
	now = teachGrid(t, g, t0)
	g.Enqueue(Job{Index: 10, Params: []float64{3}})
	g.Enqueue(Job{Index: 11, Params: []float64{2.3}})
	g.Enqueue(Job{Index: 12, Params: []float64{0}})
	g.Close()
	now = now.Add(time.Second)
	g.Tick(now)
	g.Started("fast", 10, 1, now)
	g.Started("fast", 11, 1, now)
	g.Finished("fast", 10, 1, Usage{Work: 2009}, now.Add(500*time.Second))
	g.Finished("fast", 11, 1, Usage{Work: 1000}, now.Add(500*time.Second))
	now = now.Add(500 * time.Second)
	g.Started("slow", 12, 1, now)
	now = now.Add(time.Second)
	d := gridOnly[Duplicate](g.Tick(now))
	if len(d) != 1 || d[0] != (Duplicate{Job: 12, Attempt: 2, Cluster: "fast"}) {
		t.Fatalf("duplicates %v, want job 12's on idle fast", d)
	}
	g.Started("fast", 12, 2, now)
	if !g.Finished("fast", 12, 2, Usage{Work: 100}, now.Add(25*time.Second)) {
		t.Fatal("the duplicate's end did not end the job")
	}
	if s := gridOnly[Stop](g.Tick(now.Add(25 * time.Second))); len(s) != 1 || s[0] != (Stop{Job: 12, Attempt: 1, Cluster: "slow"}) {
		t.Fatalf("stops %v, want the attempt on slow", s)
	}
	if g.Finished("slow", 12, 1, Usage{}, now.Add(99*time.Second)) {
		t.Fatal("the stopped attempt's late end ended the job again")
	}
}

// gridAtt is an attempt as the property test's driver sees it.
type gridAtt struct {
	cluster string
	state   int // queued, running, withdrawing
}

const (
	attQueued = iota
	attRunning
	attWithdrawing
)

// TestGridInvariants drives the grid with random clusters, links,
// starts, ends, failures and losses, and checks that every job ends
// exactly once, that no cluster is sent more than it may hold, that
// nothing is sent to, withdrawn from or duplicated on a cluster that is
// cut, that withdraws take only attempts still waiting, that a stop
// names an attempt of a job that ended, and that the grid's counts
// match the driver's.
func TestGridInvariants(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		policy := rapid.SampledFrom([]Policy{MEC, Orrery}).Draw(t, "policy")
		g := NewGrid(GridConfig{Policy: policy, Retries: 2, Duplicates: rapid.Bool().Draw(t, "duplicates"),
			RideOut: time.Duration(rapid.IntRange(-1, 30).Draw(t, "rideout")) * time.Second, Window: rapid.IntRange(-1, 5).Draw(t, "window")})
		now := t0
		type cl struct {
			GridCluster
			link LinkState
		}
		clusters := map[string]*cl{}
		var names []string
		nextCluster := 0
		addCluster := func() {
			c := &cl{GridCluster: GridCluster{Name: fmt.Sprint("c", nextCluster), CPUs: rapid.IntRange(1, 4).Draw(t, "cpus"),
				Slots: rapid.IntRange(0, 6).Draw(t, "slots"), Limit: rapid.IntRange(0, 8).Draw(t, "limit")}}
			c.Power = float64(c.CPUs) * rapid.Float64Range(0.5, 4).Draw(t, "speed")
			nextCluster++
			clusters[c.Name] = c
			names = append(names, c.Name)
			g.AddCluster(c.GridCluster, now)
		}
		for range rapid.IntRange(1, 3).Draw(t, "clusters") {
			addCluster()
		}
		total := rapid.IntRange(0, 30).Draw(t, "jobs")
		next := int64(1)
		ended := map[int64]int{}
		atts := map[[2]int64]*gridAtt{} // job, attempt
		of := func(job int64) (out []int64) {
			for k := range atts {
				if k[0] == job {
					out = append(out, k[1])
				}
			}
			return out
		}
		step := func() {
			acts := g.Tick(now)
			got := map[string]bool{}
			for _, a := range acts {
				switch a := a.(type) {
				case Send, Duplicate:
					var job int64
					var n int
					var c string
					if s, ok := a.(Send); ok {
						job, n, c = s.Job, s.Attempt, s.Cluster
					} else {
						d := a.(Duplicate)
						job, n, c = d.Job, d.Attempt, d.Cluster
						others := of(job)
						if !g.cfg.Duplicates || len(others) != 1 || atts[[2]int64{job, others[0]}].state != attRunning {
							t.Fatalf("%v: a duplicate of a job with attempts %v", a, others)
						}
						if from := clusters[atts[[2]int64{job, others[0]}].cluster]; from == nil || from.link != Connected {
							t.Fatalf("%v: a duplicate of a job that runs on a cluster gone or cut", a)
						}
					}
					if cs := clusters[c]; cs == nil || cs.link != Connected {
						t.Fatalf("%v: sent to a cluster gone or cut", a)
					}
					if ended[job] > 0 || atts[[2]int64{job, int64(n)}] != nil {
						t.Fatalf("%v: the job ended, or the attempt is out already", a)
					}
					atts[[2]int64{job, int64(n)}] = &gridAtt{cluster: c}
					got[c] = true
				case Withdraw:
					at := atts[[2]int64{a.Job, int64(a.Attempt)}]
					if at == nil || at.cluster != a.Cluster || at.state != attQueued || clusters[a.Cluster].link != Connected {
						t.Fatalf("%v: withdraws %+v", a, at)
					}
					at.state = attWithdrawing
				case Stop:
					at := atts[[2]int64{a.Job, int64(a.Attempt)}]
					if at == nil || at.cluster != a.Cluster || ended[a.Job] != 1 {
						t.Fatalf("%v: stops %+v of a job ended %d times", a, at, ended[a.Job])
					}
					delete(atts, [2]int64{a.Job, int64(a.Attempt)})
				case Fail:
					if len(of(a.Job)) > 0 {
						t.Fatalf("%v: the job has attempts out %v", a, of(a.Job))
					}
					ended[a.Job]++
				case Last:
					if !g.closed {
						t.Fatalf("%v before the sweep closed", a)
					}
				}
			}
			held := map[string]int{}
			running := 0
			for _, at := range atts {
				held[at.cluster]++
				if at.state == attRunning {
					running++
				}
			}
			for _, s := range g.Status(now) {
				c := clusters[s.Name]
				if s.Queued+s.Running != held[s.Name] {
					t.Fatalf("cluster %s: the grid counts %d+%d, the driver %d", s.Name, s.Queued, s.Running, held[s.Name])
				}
				// What it may hold: its depth; under orrery at the
				// end, all it accepts (its limit), or tailOver times
				// its slots; never past its limit.
				allowed := s.Depth
				if policy.Learn && c.Limit > 0 {
					allowed = c.Limit
				} else if policy.Learn {
					allowed = max(allowed, tailOver*max(c.Slots, c.CPUs))
				}
				if c.Limit > 0 {
					allowed = min(allowed, c.Limit)
				}
				if got[s.Name] && held[s.Name] > allowed {
					t.Fatalf("cluster %s was sent jobs up to %d, allowed %d", s.Name, held[s.Name], allowed)
				}
			}
			if g.Running() != running {
				t.Fatalf("the grid counts %d running, the driver %d", g.Running(), running)
			}
		}
		// pick returns a random attempt out on a connected cluster in
		// one of the states.
		pick := func(states ...int) ([2]int64, *gridAtt) {
			var keys [][2]int64
			for k, at := range atts {
				if slices.Contains(states, at.state) && clusters[at.cluster].link == Connected {
					keys = append(keys, k)
				}
			}
			if len(keys) == 0 {
				return [2]int64{}, nil
			}
			slices.SortFunc(keys, func(a, b [2]int64) int {
				if a[0] != b[0] {
					return int(a[0] - b[0])
				}
				return int(a[1] - b[1])
			})
			k := rapid.SampledFrom(keys).Draw(t, "attempt")
			return k, atts[k]
		}
		var stale [][2]int64 // attempts the grid dropped, with their clusters
		staleOn := map[[2]int64]string{}
		for steps := 0; steps < 300 && len(ended) < total; steps++ {
			for w := g.Wanted(); w > 0 && next <= int64(total); w-- {
				g.Enqueue(Job{Index: next, Params: []float64{float64(next % 3)}})
				next++
			}
			if next > int64(total) {
				g.Close()
			}
			step()
			switch rapid.IntRange(0, 9).Draw(t, "event") {
			case 0, 1:
				if k, at := pick(attQueued, attWithdrawing); at != nil {
					g.Started(at.cluster, k[0], int(k[1]), now)
					at.state = attRunning
				}
			case 2, 3, 4:
				if k, at := pick(attRunning); at != nil {
					if !g.Finished(at.cluster, k[0], int(k[1]), Usage{Work: float64(1 + k[0]%3), Wall: time.Second}, now) {
						t.Fatalf("job %d attempt %d on %s: its end was refused", k[0], k[1], at.cluster)
					}
					delete(atts, k)
					stale, staleOn[k] = append(stale, k), at.cluster
					ended[k[0]]++
				}
			case 5:
				if k, at := pick(attQueued, attRunning); at != nil {
					g.SystemFailure(at.cluster, k[0], int(k[1]), "staging failed", now)
					delete(atts, k)
				}
			case 6:
				if k, at := pick(attWithdrawing); at != nil {
					g.Withdrawn(at.cluster, k[0], int(k[1]), now)
					delete(atts, k)
					stale, staleOn[k] = append(stale, k), at.cluster
				}
			case 7:
				if len(names) == 0 {
					break
				}
				c := clusters[rapid.SampledFrom(names).Draw(t, "cluster")]
				c.link = LinkState(rapid.IntRange(0, 1).Draw(t, "link"))
				g.SetLink(c.Name, c.link, now)
			case 8:
				if len(names) > 0 && rapid.Bool().Draw(t, "lose") {
					name := rapid.SampledFrom(names).Draw(t, "lost")
					g.RemoveCluster(name, "lost", now)
					delete(clusters, name)
					names = slices.DeleteFunc(names, func(n string) bool { return n == name })
					for k, at := range atts {
						if at.cluster == name {
							delete(atts, k)
							stale, staleOn[k] = append(stale, k), name
						}
					}
				} else {
					addCluster()
				}
			case 9:
				// A late report of an attempt the grid dropped.
				if len(stale) > 0 {
					k := rapid.SampledFrom(stale).Draw(t, "stale")
					running := g.Running()
					g.Started(staleOn[k], k[0], int(k[1]), now)
					if g.Finished(staleOn[k], k[0], int(k[1]), Usage{}, now) || g.Running() != running {
						t.Fatalf("a late report of job %d attempt %d counted", k[0], k[1])
					}
				}
			}
			now = now.Add(time.Duration(rapid.IntRange(0, 30).Draw(t, "wait")) * time.Second)
		}
		// Heal: every cluster connected, at least one; then run
		// everything to its end.
		for _, c := range clusters {
			c.link = Connected
			g.SetLink(c.Name, Connected, now)
		}
		if len(names) == 0 {
			addCluster()
		}
		for w := g.Wanted(); next <= int64(total); w-- {
			g.Enqueue(Job{Index: next, Params: []float64{float64(next % 3)}})
			next++
		}
		g.Close()
		for round := 0; round < 1000 && len(ended) < total; round++ {
			step()
			keys := make([][2]int64, 0, len(atts))
			for k := range atts {
				keys = append(keys, k)
			}
			slices.SortFunc(keys, func(a, b [2]int64) int { return int(a[0]-b[0])*100 + int(a[1]-b[1]) })
			for _, k := range keys {
				at := atts[k]
				if at == nil {
					continue
				}
				switch at.state {
				case attWithdrawing:
					g.Withdrawn(at.cluster, k[0], int(k[1]), now)
					delete(atts, k)
				case attQueued:
					g.Started(at.cluster, k[0], int(k[1]), now)
					at.state = attRunning
				case attRunning:
					if g.Finished(at.cluster, k[0], int(k[1]), Usage{Work: 1, Wall: time.Second}, now) {
						ended[k[0]]++
					}
					delete(atts, k)
				}
			}
			now = now.Add(time.Second)
		}
		step()
		for j := int64(1); j <= int64(total); j++ {
			if ended[j] != 1 {
				t.Fatalf("job %d ended %d times", j, ended[j])
			}
		}
		if len(atts) != 0 || g.Running() != 0 {
			t.Fatalf("attempts left out: %v, %d running", atts, g.Running())
		}
	})
}

// TestGridAdopt checks that an adopted attempt is the cluster's, ends
// the job when it finishes, and that a forgotten job is no longer sent.
func TestGridAdopt(t *testing.T) {
	g := NewGrid(GridConfig{Policy: MEC})
	g.AddCluster(GridCluster{Name: "a", CPUs: 1, Slots: 1}, t0)
	if g.Adopt("gone", Job{Index: 1}, 2, t0) {
		t.Fatal("adopted onto an unknown cluster")
	}
	if !g.Adopt("a", Job{Index: 1, Attempts: 2}, 2, t0) {
		t.Fatal("not adopted")
	}
	g.Started("a", 1, 2, t0)
	if g.Running() != 1 {
		t.Fatalf("running %d, want the adopted attempt", g.Running())
	}
	g.Enqueue(Job{Index: 2})
	if !g.Forget(2) || g.Waiting() != 0 {
		t.Fatalf("job 2 not forgotten: %d waiting", g.Waiting())
	}
	if !g.Finished("a", 1, 2, Usage{Work: 1, Wall: time.Second}, t0) {
		t.Fatal("the adopted attempt did not end its job")
	}
	for _, a := range g.Tick(t0) {
		if s, ok := a.(Send); ok {
			t.Fatalf("sent %v after everything ended or was forgotten", s)
		}
	}
}

// TestGridCutClusterNotDuplicated: a job running on a cluster whose
// link is cut is not duplicated elsewhere: the root cannot know how it
// goes there (its end may be on its way), and a cut must not run a job
// twice. Once the link is back, the straggler may be.
func TestGridCutClusterNotDuplicated(t *testing.T) {
	g := NewGrid(GridConfig{Policy: Orrery, Duplicates: true})
	g.AddCluster(GridCluster{Name: "fast", CPUs: 2, Power: 8, Fastest: 4}, t0)
	g.AddCluster(GridCluster{Name: "slow", CPUs: 2, Power: 2, Fastest: 1}, t0)
	now := teachGrid(t, g, t0)
	g.Enqueue(Job{Index: 10, Params: []float64{3}})
	g.Enqueue(Job{Index: 11, Params: []float64{2.3}})
	g.Enqueue(Job{Index: 12, Params: []float64{0}})
	g.Close()
	now = now.Add(time.Second)
	g.Tick(now)
	g.Started("fast", 10, 1, now)
	g.Started("fast", 11, 1, now)
	g.Finished("fast", 10, 1, Usage{Work: 2009}, now.Add(500*time.Second))
	g.Finished("fast", 11, 1, Usage{Work: 1000}, now.Add(500*time.Second))
	now = now.Add(500 * time.Second)
	g.Started("slow", 12, 1, now)
	g.SetLink("slow", Cut, now)
	now = now.Add(time.Second)
	if d := gridOnly[Duplicate](g.Tick(now)); len(d) != 0 {
		t.Fatalf("duplicates %v of a job on a cluster whose link is cut", d)
	}
	g.SetLink("slow", Connected, now)
	now = now.Add(time.Second)
	if d := gridOnly[Duplicate](g.Tick(now)); len(d) != 1 || d[0].Job != 12 {
		t.Fatalf("duplicates %v once the link is back, want job 12's", d)
	}
}

// TestGridFillByHorizon: once the sweep is closed and the model
// predicts, a long job goes where it is done by the horizon (the work
// left over the grid's power), and waits for room there, counted on the
// CPU it waits for, so that the jobs after it see that CPU taken; the
// slow cluster with room is not left idle behind them. 100 jobs of 1000
// and 2000 of 10: a horizon of 120,000 ÷ 140 ≈ 857 s. The fast cluster
// (10 CPUs at 4) finishes a long job in 250 s, so three a CPU by the
// horizon; the slow one (100 CPUs at 1) in 1000 s, past it: it takes
// the long jobs left over and is filled at once.
func TestGridFillByHorizon(t *testing.T) {
	g := NewGrid(GridConfig{Policy: Orrery, RideOut: -1})
	g.AddCluster(GridCluster{Name: "fast", CPUs: 10, Power: 40, Fastest: 4}, t0)
	g.AddCluster(GridCluster{Name: "slow", CPUs: 100, Power: 100, Fastest: 1}, t0)
	now := teachGrid(t, g, t0)
	for i := range int64(100) {
		g.Enqueue(Job{Index: 100 + i, Params: []float64{math.Log(10)}})
	}
	for i := range int64(2000) {
		g.Enqueue(Job{Index: 1000 + i, Params: []float64{math.Log(0.1)}})
	}
	g.Close()
	acts := g.Tick(now.Add(time.Second))
	sends, n := gridOnly[Send](acts), sentTo(acts)
	if n["fast"] != 11 || n["slow"] != 101 {
		t.Fatalf("sent %v, want fast 11 (its slots and one) and slow 101", n)
	}
	long := 0
	for _, s := range sends {
		if s.Cluster == "slow" && s.Job < 1000 {
			long++
		}
	}
	// 30 long jobs are done by the horizon on fast (3 a CPU): 11 sent,
	// 19 wait for it; the 70 others go to slow.
	if long != 70 {
		t.Fatalf("slow got %d long jobs, want the 70 fast cannot finish by the horizon", long)
	}
}
