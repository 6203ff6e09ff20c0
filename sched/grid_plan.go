package sched

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"time"
)

// The grid's decisions: Tick and what it calls (see grid.go for the
// rules).

// gridLoad is an open cluster as one round of decisions sees it.
type gridLoad struct {
	cs   *gridCluster
	rate float64 // jobs a second
	room int     // attempts it may still be sent now
	// By job rates: a job takes a slot slots ÷ rate seconds (per). A
	// cluster that runs more jobs than CPUs (shared) is done when it
	// has run the jobs it holds (count, those running counted for the
	// share of them left) at its rate; one that runs a job per CPU
	// when the slot that each job waits for has run it (slotFree: when
	// each slot is expected to be free, seconds from now).
	per      float64
	shared   bool
	count    float64
	slotFree floatHeap
	// With a model: the expected work left of what it holds for the
	// plan, and the most of one job; for a pinned cluster, when each of
	// its CPUs is expected to be free (seconds from now).
	work, longest float64
	free          floatHeap
	idle          int // CPUs it leaves idle
}

// floatHeap is a min-heap of times.
type floatHeap []float64

func (h floatHeap) Len() int           { return len(h) }
func (h floatHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h floatHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *floatHeap) Push(x any)        { *h = append(*h, x.(float64)) }
func (h *floatHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// speed is the mean speed of cs's CPUs.
func (cs *gridCluster) speed() float64 { return cs.power() / float64(max(cs.CPUs, 1)) }

// endNow is when l is expected to be done with what it holds.
func (g *Grid) endNow(l *gridLoad, byWork bool) float64 {
	if byWork && l.cs.Pinned {
		return slices.Max(l.free)
	}
	if byWork {
		return max(l.work/l.cs.power(), l.longest/l.cs.fastest())
	}
	switch {
	case l.rate <= 0:
		return math.Inf(1)
	case l.shared:
		return l.count / l.rate
	}
	return slices.Max(l.slotFree)
}

// endWith is when l is expected to be done with j too.
func (g *Grid) endWith(l *gridLoad, j *jobState, byWork bool) float64 {
	if byWork {
		w := g.model.expectJob(j)
		if l.cs.Pinned {
			// It runs where a CPU frees first, to its end.
			return g.stageCost(l.cs, j) + l.free[0] + w/l.cs.speed()
		}
		return g.stageCost(l.cs, j) + max((l.work+w)/l.cs.power(), max(l.longest, w)/l.cs.fastest())
	}
	switch {
	case l.rate <= 0:
		return math.Inf(1)
	case l.shared:
		return (l.count + 1) / l.rate
	}
	return l.slotFree[0] + l.per
}

// add counts j in l's plan (sign 1), or no longer (sign -1).
func (g *Grid) add(l *gridLoad, j *jobState, byWork bool, sign float64) {
	if sign > 0 {
		l.take()
	} else {
		l.give()
	}
	if byWork {
		w := g.model.expectJob(j)
		l.work += sign * w
		if sign > 0 {
			l.longest = max(l.longest, w)
			g.occupy(l, w)
		}
	}
}

// addWork counts the expected work of j, which l holds already.
func (g *Grid) addWork(l *gridLoad, j *jobState) {
	w := g.model.expectJob(j)
	l.work += w
	l.longest = max(l.longest, w)
	g.occupy(l, w)
}

// take books a job on the slot of l that frees first.
func (l *gridLoad) take() {
	l.count++
	if len(l.slotFree) > 0 {
		l.slotFree[0] += l.per
		heap.Fix(&l.slotFree, 0)
	}
}

// give takes a job off the slot of l that frees last.
func (l *gridLoad) give() {
	l.count--
	if len(l.slotFree) > 0 {
		i := 0
		for k, t := range l.slotFree {
			if t > l.slotFree[i] {
				i = k
			}
		}
		l.slotFree[i] = max(l.slotFree[i]-l.per, 0)
		heap.Fix(&l.slotFree, i)
	}
}

// occupy books work w on the CPU of l that frees first (the plan reads
// it only for a pinned cluster; fillBy for every cluster).
func (g *Grid) occupy(l *gridLoad, w float64) {
	if len(l.free) > 0 {
		l.free[0] += w / l.cs.speed()
		heap.Fix(&l.free, 0)
	}
}

// stageCost is how long sending j to cs takes over its WAN link.
func (g *Grid) stageCost(cs *gridCluster, j *jobState) float64 {
	t := 2 * cs.WANLatency
	if cs.WANBandwidth > 0 {
		t += float64(j.Stage) / cs.WANBandwidth
	}
	return t
}

// left is the work a running attempt is expected to have left.
func (g *Grid) left(a *gridAttempt) float64 {
	w := g.model.expectJob(a.job.jobState)
	return max(w-a.progress, w/10)
}

// endGame is how many times the slots of the open clusters the jobs
// waiting at the coordinator may be, at most, for the grid to plan the
// end by job rates: the share of each cluster matters only then.
const endGame = 2

// endCap is how many attempts cs may hold at the end under a policy that
// plans it (the last jobs sent at once): its own limit, else as many
// times its slots as its dispatcher may put on a node then (tailOver).
func endCap(cs *gridCluster) int {
	if cs.Limit > 0 {
		return cs.Limit
	}
	return tailOver * cs.slots()
}

// Tick makes the grid's decisions for the time now and returns every
// action since the last call.
func (g *Grid) Tick(now time.Time) []GridAction {
	g.tick(now)
	byWork := g.pol.Learn && g.model.Ready()
	slots, cpus := 0, 0
	for _, cs := range g.clusters {
		if cs.open() {
			slots += cs.slots()
			cpus += cs.CPUs
		}
	}
	g.large = g.pol.Learn && cpus >= largeGrid
	waiting := g.queue.len()
	last := byWork && g.closed && waiting > 0 && waiting <= tailOver*cpus
	plan := waiting == 0 || last || !byWork && g.closed && waiting <= endGame*slots
	horizon := !plan && byWork && g.closed
	var loads []*gridLoad
	// With nothing waiting, what is left to decide (withdraws and
	// duplicates) is looked at once per BalanceEvery, or when a cluster
	// came, went or changed its link. A cluster's queue holds what it
	// runs in the ride-out time beside its slots, and at the end (last)
	// up to endCap: on a large grid under a policy that learns, the
	// coordinator refills the queues every fillEvery, or at once when a
	// slot stands empty, a cluster changed, a job came back (withdrawn,
	// or failed where it ran) or the end game begins (the last jobs go
	// at once). Each round weighs what every cluster holds, which on
	// 10^4 nodes costs more than the few jobs a second it sends; on a
	// smaller grid a round costs little, and mec's rounds stay at every
	// tick, as the paper's MEC is modelled.
	throttle := g.large && (!plan || last)
	due := waiting > 0 && (!throttle || g.changed || g.returned || last != g.lastWasLast || now.Sub(g.lastFill) >= fillEvery || g.emptySlot())
	if due || g.changed || now.Sub(g.lastPlan) >= g.cfg.BalanceEvery && waiting == 0 {
		g.lastPlan, g.changed, g.returned = now, false, false
		if throttle {
			g.lastFill, g.lastWasLast = now, last
		}
		loads = g.loads(now, (plan || horizon) && byWork)
	}
	if len(loads) > 0 {
		switch {
		case horizon:
			g.fillBy(loads)
		case !plan:
			g.fill(loads)
		case last:
			g.sendLast(loads)
		default:
			g.plan(loads, byWork)
		}
		if plan && g.queue.len() == 0 {
			g.rebalance(loads, byWork)
			if byWork && g.pol.Stragglers && g.cfg.Duplicates && g.closed && now.Sub(g.lastStrag) >= g.cfg.BalanceEvery {
				g.lastStrag = now
				g.stragglers(loads)
			}
		}
	}
	if g.closed && g.queue.len() == 0 && !slices.ContainsFunc(g.clusters, func(cs *gridCluster) bool { return cs.leaving > 0 }) {
		for _, cs := range g.clusters {
			g.tell(cs)
		}
	}
	out := g.actions
	g.actions = nil
	g.decided += int64(len(out))
	return out
}

// loads lists the open clusters as a round of decisions sees them;
// byWork adds the expected work they hold.
func (g *Grid) loads(now time.Time, byWork bool) []*gridLoad {
	w, measured := g.rates(now)
	var out []*gridLoad
	for i, cs := range g.clusters {
		if !cs.open() {
			continue
		}
		held := cs.held()
		l := &gridLoad{cs: cs, rate: w[i], room: g.depth(cs, w[i], measured) - held - cs.incoming,
			idle: max(cs.CPUs-held-cs.incoming, 0)}
		// Each slot takes slots ÷ rate seconds a job; a running job
		// frees its slot when the share of it expected to be left is
		// done (all of it while no rate is measured), and what waits
		// there takes the slots in turn.
		if w[i] > 0 {
			l.per = float64(cs.slots()) / w[i]
		}
		l.shared = cs.slots() > cs.CPUs
		// By work, nothing reads the count or the slots.
		if !byWork {
			ends := make([]float64, 0, len(cs.running))
			for _, a := range cs.running {
				left := 1.0
				if measured && l.per > 0 {
					left = max(1-now.Sub(a.startedAt).Seconds()/l.per, 0.1)
				}
				l.count += left
				ends = append(ends, left*l.per)
			}
			if !l.shared {
				slices.Sort(ends)
				l.slotFree = make(floatHeap, max(cs.slots(), 1))
				copy(l.slotFree, ends[max(len(ends)-len(l.slotFree), 0):])
				heap.Init(&l.slotFree)
			}
			for range len(cs.queued) - cs.leaving + cs.incoming {
				l.take()
			}
		}
		if byWork {
			g.advance(cs, now)
			share := cs.power() / float64(max(cs.CPUs, len(cs.running), 1))
			var ends []float64
			for _, a := range cs.running {
				left := g.left(a)
				l.work += left
				l.longest = max(l.longest, left)
				ends = append(ends, left/share)
			}
			// A CPU frees when a job ends and fewer than CPUs are
			// left (for a cluster whose jobs move, roughly).
			slices.Sort(ends)
			l.free = make(floatHeap, max(cs.CPUs, 1))
			copy(l.free, ends[max(len(ends)-len(l.free), 0):])
			heap.Init(&l.free)
			for _, a := range cs.queued {
				if !a.pending {
					g.addWork(l, a.job.jobState)
				}
			}
		}
		out = append(out, l)
	}
	if byWork {
		// What is on its way to a cluster counts there.
		for _, cs := range g.clusters {
			for _, a := range cs.queued {
				if a.dest != nil {
					if l := loadOf(out, a.dest); l != nil {
						g.addWork(l, a.job.jobState)
					}
				}
			}
		}
	}
	return out
}

func loadOf(loads []*gridLoad, cs *gridCluster) *gridLoad {
	for _, l := range loads {
		if l.cs == cs {
			return l
		}
	}
	return nil
}

// choose returns the load where j is expected to finish soonest: among
// those with room when room is set, and, while another would take it,
// not a cluster where it failed.
func (g *Grid) choose(loads []*gridLoad, j *jobState, byWork, room bool) *gridLoad {
	avoid := avoids(loads, j, room)
	var best *gridLoad
	bestEnd := math.Inf(1)
	for _, l := range loads {
		if room && l.room <= 0 || avoid && slices.Contains(j.failedOn, l.cs.Name) {
			continue
		}
		if e := g.endWith(l, j, byWork); e < bestEnd {
			best, bestEnd = l, e
		}
	}
	return best
}

// avoids reports whether j keeps off the clusters where it failed:
// while another (with room, when room is set) would take it.
func avoids(loads []*gridLoad, j *jobState, room bool) bool {
	return len(j.failedOn) > 0 && slices.ContainsFunc(loads, func(l *gridLoad) bool {
		return !slices.Contains(j.failedOn, l.cs.Name) && (!room || l.room > 0)
	})
}

// fill sends waiting jobs, in order, to the clusters with room, each to
// the one expected to finish soonest.
func (g *Grid) fill(loads []*gridLoad) {
	for g.queue.len() > 0 {
		j := g.queue.pop(g.model)
		l := g.choose(loads, j, false, true)
		if l == nil { // no room anywhere
			g.queue.pushFront(j, g.model)
			return
		}
		g.send(j, l, false)
	}
}

// fillBy is fill once the sweep is closed under a policy whose model
// predicts: the coordinator then knows the work left, and so the
// horizon, when the grid would be done if its CPUs shared that work. A
// job goes, longest expected first, to the cluster with room where it
// is expected to be done soonest, but only if that is by the horizon: a
// job that one cluster would finish by then only after a slot there
// frees waits for it, and the clusters with room take shorter jobs
// instead. Longest-first alone hands the long jobs to whichever cluster
// asks, and a slow one that takes a long job near the end finishes it
// long after the others are done. A job no cluster would finish by the
// horizon goes where it is done soonest.
func (g *Grid) fillBy(loads []*gridLoad) {
	work, power := 0.0, 0.0
	for _, l := range loads {
		work += l.work
		power += l.cs.power()
	}
	work += g.queue.expected()
	if power <= 0 {
		return // no open cluster
	}
	horizon := work / power
	var wait []*jobState
	for len(wait) < fillScan && g.queue.len() > 0 {
		j := g.queue.pop(g.model)
		w := g.model.expectJob(j)
		avoid := avoids(loads, j, true)
		var best, soonest *gridLoad // soonest: with room or not
		bestEnd, soonestEnd := math.Inf(1), math.Inf(1)
		for _, l := range loads {
			if avoid && slices.Contains(j.failedOn, l.cs.Name) || len(l.free) == 0 {
				continue
			}
			e := g.stageCost(l.cs, j) + l.free[0] + w/l.cs.speed()
			if e < soonestEnd {
				soonest, soonestEnd = l, e
			}
			if l.room > 0 && e < bestEnd {
				best, bestEnd = l, e
			}
		}
		switch {
		case best == nil: // no room anywhere
			g.queue.pushFront(j, g.model)
			for _, j := range wait {
				g.queue.push(j, g.model)
			}
			return
		case bestEnd > horizon && soonestEnd <= horizon:
			// It waits for room where it is done in time, and counts
			// there, so that the jobs after it do not all count on
			// the same CPU.
			g.add(soonest, j, true, 1)
			wait = append(wait, j)
		default:
			g.send(j, best, true)
		}
	}
	for _, j := range wait {
		g.queue.push(j, g.model)
	}
}

// largeGrid is how many CPUs make a grid large: there, under a policy
// that learns, the coordinator saves its rounds (fillEvery, planCut).
const largeGrid = 1000

// fillEvery is how often, at most, a large grid refills the clusters'
// queues while every slot holds a job.
const fillEvery = 10 * time.Second

// emptySlot reports whether an open cluster has a slot with no job.
func (g *Grid) emptySlot() bool {
	return slices.ContainsFunc(g.clusters, func(cs *gridCluster) bool {
		return cs.open() && cs.held()+cs.incoming-cs.leaving < cs.slots()
	})
}

// fillScan bounds how many jobs fillBy sets aside in one round to find
// one that a cluster with room finishes by the horizon.
const fillScan = 64

// plan places every waiting job, in order, where it is expected to
// finish soonest, and sends it there if the cluster has room; else it
// waits for room there, and counts there for the jobs after it.
func (g *Grid) plan(loads []*gridLoad, byWork bool) {
	var keep []*jobState
	waits := map[*gridLoad]bool{} // a job waits for room there
	cut := false
	for g.queue.len() > 0 {
		if g.large && len(keep) >= planCut*len(loads) && !slices.ContainsFunc(loads, func(l *gridLoad) bool { return l.room > 0 }) {
			// No cluster has room: the jobs after these would all wait.
			// Where each would wait only decides which clusters are told
			// Last, which a later round can do; on a large grid, going
			// over every job and every cluster at each tick costs 100
			// clusters with 30,000 jobs left most of their time.
			cut = len(waits) < len(loads)
			break
		}
		j := g.queue.pop(g.model)
		l := g.choose(loads, j, byWork, false)
		switch {
		case l == nil:
			keep = append(keep, j)
		case l.room > 0:
			g.send(j, l, byWork)
		default:
			g.add(l, j, byWork, 1)
			keep = append(keep, j)
			waits[l] = true
		}
	}
	for _, j := range keep {
		g.queue.push(j, g.model)
	}
	if !g.closed || cut {
		return
	}
	// A cluster for which no job waits has all it will get.
	for _, l := range loads {
		if !waits[l] {
			g.tell(l.cs)
		}
	}
}

// planCut is how many jobs per cluster plan keeps waiting, once no
// cluster has room, before it stops going down the queue.
const planCut = 4

// tell tells cs, once, that it has all the jobs it will get (Last).
func (g *Grid) tell(cs *gridCluster) {
	if !cs.told {
		cs.told = true
		g.actions = append(g.actions, Last{Cluster: cs.Name})
	}
}

// sendLast sends the last jobs, longest expected first, each to the
// cluster where it is expected to finish soonest, up to endCap: the
// clusters' dispatchers then plan their ends with every job they will
// get (Last).
func (g *Grid) sendLast(loads []*gridLoad) {
	for _, l := range loads {
		l.room = max(l.room, endCap(l.cs)-l.cs.held()-l.cs.incoming)
	}
	g.plan(loads, true)
}

// send hands j to l's cluster.
func (g *Grid) send(j *jobState, l *gridLoad, byWork bool) {
	a := g.attach(j, l.cs)
	g.add(l, j, byWork, 1)
	l.room--
	l.idle = max(l.idle-1, 0)
	g.actions = append(g.actions, Send{Job: j.Index, Attempt: a.n, Cluster: l.cs.Name})
}

// attach makes a new attempt of j, waiting on cs.
func (g *Grid) attach(j *jobState, cs *gridCluster) *gridAttempt {
	gj := g.jobs[j.Index]
	j.attempt++
	a := &gridAttempt{job: gj, n: j.attempt, cs: cs}
	gj.atts = append(gj.atts, a)
	cs.queued = append(cs.queued, a)
	return a
}

// rebalance withdraws jobs still waiting in the queue of the cluster
// expected to finish last for one with room that would finish them
// sooner, one at a time while that brings the later end forward by
// more than the move costs and minGain of the time left.
func (g *Grid) rebalance(loads []*gridLoad, byWork bool) {
	if len(loads) < 2 {
		return
	}
	for range 1000 {
		var worst *gridLoad
		var a *gridAttempt
		for _, l := range loads {
			if byWork && l.cs.Pinned {
				// Its end is its last CPU's, which one job less may
				// not bring forward: its dispatcher places what waits.
				continue
			}
			b := l.cs.withdrawable()
			if b != nil && (worst == nil || g.endNow(l, byWork) > g.endNow(worst, byWork)) {
				worst, a = l, b
			}
		}
		if worst == nil {
			return
		}
		j := a.job.jobState
		var best *gridLoad
		for _, l := range loads {
			if l != worst && l.room > 0 && !slices.Contains(j.failedOn, l.cs.Name) &&
				(best == nil || g.endWith(l, j, byWork) < g.endWith(best, j, byWork)) {
				best = l
			}
		}
		// It must gain what the move costs (the round trip to the
		// cluster it leaves, and the trip to the other), and minGain of
		// the time left: rates measured early change back and forth.
		if best == nil {
			return
		}
		cost := 2*worst.cs.WANLatency + g.stageCost(best.cs, j)
		if g.endWith(best, j, byWork)+cost >= (1-minGain)*g.endNow(worst, byWork) {
			return
		}
		a.pending, a.dest = true, best.cs
		a.job.withdrawn++
		worst.cs.leaving++
		best.cs.incoming++
		g.add(worst, j, byWork, -1)
		g.add(best, j, byWork, 1)
		best.room--
		best.idle = max(best.idle-1, 0)
		g.actions = append(g.actions, Withdraw{Job: j.Index, Attempt: a.n, Cluster: worst.cs.Name})
	}
}

// withdrawable is the last attempt of cs's queue that may be withdrawn:
// not being withdrawn already, not a duplicate, of a job not withdrawn
// too often already.
func (cs *gridCluster) withdrawable() *gridAttempt {
	for i := len(cs.queued) - 1; i >= 0; i-- {
		if a := cs.queued[i]; !a.pending && len(a.job.atts) == 1 && a.job.withdrawn < maxWithdraws {
			return a
		}
	}
	return nil
}

// stragglers duplicates, on clusters with idle CPUs (the fastest
// first), the running jobs expected to finish last, when a duplicate is
// expected to finish before them.
func (g *Grid) stragglers(loads []*gridLoad) {
	type cand struct {
		a *gridAttempt
		t float64 // seconds until it is expected to finish where it runs
	}
	var cands []cand
	for _, cs := range g.clusters {
		if cs.link != Connected {
			// Its jobs' ends may be on their way: a duplicate would run
			// them twice across a cut, and the root cannot know they
			// straggle.
			continue
		}
		g.advance(cs, g.now)
		share := cs.power() / float64(max(cs.CPUs, len(cs.running), 1))
		for _, a := range cs.running {
			if len(a.job.atts) == 1 {
				cands = append(cands, cand{a, g.left(a) / share})
			}
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if r := cmp.Compare(b.t, a.t); r != 0 {
			return r
		}
		return cmp.Compare(a.a.job.Index, b.a.job.Index)
	})
	dests := slices.Clone(loads)
	slices.SortStableFunc(dests, func(a, b *gridLoad) int { return cmp.Compare(b.cs.speed(), a.cs.speed()) })
	const look = 32
	for _, l := range dests {
		for l.idle > 0 && l.room > 0 {
			helped := false
			for i, seen := 0, 0; i < len(cands) && seen < look; i++ {
				a := cands[i].a
				if a == nil || a.cs == l.cs || slices.Contains(a.job.failedOn, l.cs.Name) {
					continue
				}
				seen++
				j := a.job.jobState
				if g.stageCost(l.cs, j)+g.model.expectJob(j)/l.cs.speed() >= cands[i].t {
					continue
				}
				d := g.attach(j, l.cs)
				g.add(l, j, true, 1)
				l.room--
				l.idle--
				g.actions = append(g.actions, Duplicate{Job: j.Index, Attempt: d.n, Cluster: l.cs.Name})
				cands[i].a = nil
				helped = true
				break
			}
			if !helped {
				break
			}
		}
	}
}
