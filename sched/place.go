package sched

import (
	"cmp"
	"container/heap"
	"math"
	"slices"
	"time"
)

// clusterState is a cluster as the core tracks it.
type clusterState struct {
	Cluster
	index int
	nodes []*nodeState // in join order
	queue []*jobState  // jobs given to the cluster, waiting (GridRate)
	cpus  int
	power float64 // CPUs × speed
	done  int     // jobs finished here
	first time.Time
}

// slot is room for one more job on a node.
type slot struct {
	node *nodeState
	k    int     // 0 for the node's first free slot
	rate float64 // the speed a job would run at there
}

// slots lists the free slots of the nodes in free (all clusters when
// only is nil), best first for the policy.
func (c *Core) slots(only *clusterState) []slot {
	var out []slot
	for _, n := range c.free {
		if only != nil && n.cluster != only {
			continue
		}
		if c.pol.Learn && c.model != nil && c.model.Ready() {
			if l := c.model.perCPU(n); l != n.limit && n.Limit <= 0 && n.cluster.PerCPU <= 0 {
				n.limit = l
			}
		}
		for k := 0; n.held+k < n.limit; k++ {
			share := float64(n.CPUs) / float64(len(n.runs)+k+1)
			out = append(out, slot{node: n, k: k, rate: n.Speed * min(share, 1)})
		}
	}
	slices.SortFunc(out, func(a, b slot) int {
		if c.pol.Placement == Fastest {
			if r := cmp.Compare(b.rate, a.rate); r != 0 {
				return r
			}
		}
		if r := cmp.Compare(a.node.order, b.node.order); r != 0 {
			return r
		}
		return cmp.Compare(a.k, b.k)
	})
	return out
}

// place starts waiting jobs on free slots.
func (c *Core) place(now time.Time) {
	if c.pol.NoQueue {
		c.placeHome(now)
		return
	}
	if c.pol.Grid == GridRate && len(c.clusters) > 1 {
		for _, cs := range c.clusters {
			if len(cs.queue) == 0 {
				continue
			}
			c.fill(c.slots(cs), func() *jobState {
				if len(cs.queue) == 0 {
					return nil
				}
				j := cs.queue[0]
				cs.queue = cs.queue[1:]
				j.held = nil
				return j
			}, now)
		}
		return
	}
	c.deferred = false
	if c.queue.len() > 0 && c.finishing() {
		c.startTail(now) // what it leaves waits, by its choice
		return
	}
	if c.queue.len() == 0 || len(c.free) == 0 {
		return
	}
	if c.pol.Learn && c.closed && c.model.Ready() && c.queue.len() <= 3*c.running {
		c.placeTail(c.slots(nil), now)
		return
	}
	c.fill(c.slots(nil), func() *jobState { return c.queue.pop(c.model) }, now)
}

// tailScan bounds how many waiting jobs one tail placement looks at
// beyond the free slots, so that a long queue costs no more per event
// than a short one.
const tailScan = 256

// busy is a node without a free slot, as the tail placement sees it.
type busy struct {
	node *nodeState
	free float64 // seconds from now until it is expected to free a slot
	rate float64 // the speed a job would run at there
	i    int     // index in its class's heap
}

// busyHeap orders busy nodes by when they are expected to free a slot.
type busyHeap []*busy

func (h busyHeap) Len() int { return len(h) }
func (h busyHeap) Less(i, j int) bool {
	if h[i].free != h[j].free {
		return h[i].free < h[j].free
	}
	return h[i].node.order < h[j].node.order
}
func (h busyHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i]; h[i].i = i; h[j].i = j }
func (h *busyHeap) Push(x any)   { b := x.(*busy); b.i = len(*h); *h = append(*h, b) }
func (h *busyHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	*h = old[:len(old)-1]
	return b
}

// placeTail places the last jobs, longest expected first. A job that
// is expected to finish on the best free slot before the whole
// experiment is (now + the work left ÷ the capacity) starts there. One
// that would finish later goes where it is expected to finish soonest
// (earliest completion time): on the free slot, or, when a busy node
// that is faster would still finish it sooner, on that node once it
// frees a slot. The job then waits, and the busy node is booked for it,
// so the jobs after it see that node as busy for longer. This keeps the
// last long jobs off slow CPUs.
func (c *Core) placeTail(slots []slot, now time.Time) {
	var classes []*busyHeap
	end := -1.0
	var wait []*jobState
	for used := 0; used < len(slots); {
		j := c.queue.pop(c.model)
		if j == nil {
			break
		}
		w := c.model.expectJob(j)
		// The best free slot whose node's end it would not run past
		// comes first (the others keep their order).
		k := slices.IndexFunc(slots[used:], func(s slot) bool { return c.beforeEnd(j, s.node, now, 0) })
		if k < 0 {
			wait = append(wait, j) // it would run past the end of every free slot's node
			continue
		}
		if k > 0 {
			s := slots[used+k]
			copy(slots[used+1:used+k+1], slots[used:used+k])
			slots[used] = s
		}
		s := slots[used]
		if !c.room(s.node, j) || c.holdsOff(j, s.node, now) {
			wait = append(wait, j) // no room for its memory there, or it failed there: it waits
			continue
		}
		here := stageCost(s.node.cluster, j) + w/s.rate
		if end < 0 {
			end = c.workLeft(w, now) / c.power()
			classes = c.busyClasses(now)
		}
		var best *busy
		var bestH *busyHeap
		if here > end && len(wait) < tailScan {
			there := here
			for _, h := range classes {
				b := (*h)[0]
				if t := b.free + stageCost(b.node.cluster, j) + w/b.rate; t < there && c.beforeEnd(j, b.node, now, b.free) {
					best, bestH, there = b, h, t
				}
			}
			if best != nil {
				best.free = there
				heap.Fix(bestH, best.i)
				wait = append(wait, j)
				continue
			}
		}
		c.start(j, s.node, now)
		used++
	}
	c.deferred = len(wait) > 0 && len(c.free) > 0
	for _, j := range wait {
		c.queue.push(j, c.model)
	}
}

// workLeft is the work expected to be left: the waiting jobs', j's
// (just taken from the queue) and what the running jobs have left.
func (c *Core) workLeft(j float64, now time.Time) float64 {
	work := j
	for _, q := range c.queue.items {
		work += q.expect
	}
	for _, n := range c.byOrder {
		c.progress(n, now)
		for _, r := range n.runs {
			if len(r.job.runs) == 1 || r == r.job.runs[0] {
				work += c.expectLeft(r)
			}
		}
	}
	return work
}

// power is the speed of all the CPUs together.
func (c *Core) power() float64 {
	p := 0.0
	for _, cs := range c.clusters {
		p += cs.power
	}
	return p
}

// speedClass groups speeds within 2% of each other.
func speedClass(rate float64) int {
	return int(math.Round(math.Log(rate) / math.Log(1.02)))
}

// busyClasses lists the nodes without a free slot, with when each is
// expected to free one, in heaps by speed class: the node that would
// finish a job soonest is at the top of one of them.
func (c *Core) busyClasses(now time.Time) []*busyHeap {
	byClass := map[int]*busyHeap{}
	var classes []*busyHeap
	for _, n := range c.byOrder {
		if n.free || len(n.runs) == 0 || n.out != "" {
			continue
		}
		c.progress(n, now)
		soonest := c.freesIn(n)
		rate := slotRate(n)
		k := speedClass(rate)
		h := byClass[k]
		if h == nil {
			h = &busyHeap{}
			byClass[k] = h
			classes = append(classes, h)
		}
		heap.Push(h, &busy{node: n, free: soonest, rate: rate})
	}
	return classes
}

// freesIn is how many seconds from now n is expected to free a slot:
// when the first of its runs ends.
func (c *Core) freesIn(n *nodeState) float64 {
	soonest := math.Inf(1)
	for _, r := range n.runs {
		soonest = min(soonest, c.expectLeft(r)/each(n))
	}
	return soonest
}

// slotRate is the speed a job runs at on n when n runs as many jobs as
// its limit.
func slotRate(n *nodeState) float64 {
	return n.Speed * min(float64(n.CPUs)/float64(max(n.limit, 1)), 1)
}

// expectLeft is the work r is expected to have left. A job that has
// already run past its prediction is not about to end: it is given a
// tenth of its prediction more.
func (c *Core) expectLeft(r *run) float64 {
	w := c.model.expectJob(r.job)
	left := max(w-r.progress, w/10)
	if r.progress > overdue*w {
		// Far past what it should take: a hung process, or a node that
		// does not run what it says it runs. Expect it to run about as
		// long again as it has overrun, so that a duplicate on a free
		// slot wins (once it has run some 4 times its expected work).
		left = max(left, r.progress-(overdue-0.1)*w)
	}
	return left
}

// overdue is how many times its expected work an attempt runs before
// the core stops trusting that it is nearly done.
const overdue = 3

// fill gives jobs from next to the slots, in order, skipping slots on
// nodes where a job already failed when another slot is free. A job whose
// only free slots are on nodes where it failed as a system failure waits
// while another node in service could take it (see Core.holdsOff); where
// it failed as the node's own failure, or on the last node in service,
// it lets the jobs behind it go first (see Core.afterOthers).
func (c *Core) fill(slots []slot, next func() *jobState, now time.Time) {
	used := make([]bool, len(slots))
	left := len(slots)
	var back []*jobState  // jobs that wait: their memory fits on no free slot now, or held back
	var later []*jobState // jobs that failed on the free slots' nodes: after the others
	defer func() {
		for i := len(back) - 1; i >= 0; i-- {
			c.queue.pushFront(back[i], c.model)
		}
	}()
	// choose returns the slot for j, or -1 when its memory fits on none,
	// or it would run past the end of every free slot's node.
	choose := func(j *jobState) int {
		pick := -1
		for i := range slots {
			if used[i] || !c.beforeEnd(j, slots[i].node, now, 0) {
				continue
			}
			if pick < 0 {
				pick = i
			}
			if len(j.tried) == 0 || !slices.Contains(j.tried, slots[i].node.ID) {
				pick = i
				break
			}
		}
		if pick >= 0 && c.pol.Learn && !c.room(slots[pick].node, j) {
			pick = -1
			for i := range slots {
				if !used[i] && c.room(slots[i].node, j) && c.beforeEnd(j, slots[i].node, now, 0) {
					pick = i
					break
				}
			}
		}
		return pick
	}
	for left > 0 && len(back)+len(later) < tailScan {
		j := next()
		if j == nil {
			break
		}
		pick := choose(j)
		switch {
		case pick < 0:
			back = append(back, j) // it fits nowhere free now: it waits for room
			continue
		case c.holdsOff(j, slots[pick].node, now):
			back = append(back, j)
			continue
		case c.afterOthers(j, slots[pick].node):
			later = append(later, j)
			continue
		}
		used[pick] = true
		left--
		c.start(j, slots[pick].node, now)
	}
	for i, j := range later {
		if left == 0 {
			back = append(back, later[i:]...)
			break
		}
		pick := choose(j)
		if pick < 0 {
			back = append(back, j)
			continue
		}
		used[pick] = true
		left--
		c.start(j, slots[pick].node, now)
	}
}

// afterOthers reports whether j, placed on n, lets the jobs behind it go
// first: it failed there as the node's own failure, or n is the last
// node in service and j failed there. Then a broken node's streak holds
// distinct jobs. A job that failed as a system failure on every node in
// service (of several) goes again at once: whether it fails everywhere
// alike is what tells its failures from the nodes'.
func (c *Core) afterOthers(j *jobState, n *nodeState) bool {
	return slices.Contains(j.ownOn, n.ID) || slices.Contains(j.failedOn, n.ID) && c.NodesInService() == 1
}

// placeHome starts every waiting job on the home node: the first node
// in service, in join order, whose end (if it has one) the job would not
// run past. A job that would run past every such node's end waits.
func (c *Core) placeHome(now time.Time) {
	if !slices.ContainsFunc(c.byOrder, func(n *nodeState) bool { return n.out == "" }) {
		return
	}
	var wait []*jobState
	for j := c.queue.pop(c.model); j != nil; j = c.queue.pop(c.model) {
		i := slices.IndexFunc(c.byOrder, func(n *nodeState) bool { return n.out == "" && c.beforeEnd(j, n, now, 0) })
		if i < 0 {
			wait = append(wait, j)
			continue
		}
		c.start(j, c.byOrder[i], now)
	}
	for _, j := range wait {
		c.queue.push(j, c.model)
	}
}

// start starts an attempt of j on n.
func (c *Core) start(j *jobState, n *nodeState, now time.Time) {
	c.progress(n, now)
	j.attempt++
	// Until the attempt reports its own, it is taken to need what the
	// job last did.
	need := c.need(j)
	r := &run{job: j, attempt: j.attempt, node: n, home: n, start: now, at: now, resident: need}
	n.resident += need
	j.runs = append(j.runs, r)
	n.runs = append(n.runs, r)
	n.held++
	c.running++
	if n.cluster.first.IsZero() {
		n.cluster.first = now
	}
	c.listFree(n)
	c.actions = append(c.actions, Start{Job: j.Index, Node: n.ID, Attempt: j.attempt})
}

// progress brings the estimated progress of a node's runs up to now.
func (c *Core) progress(n *nodeState, now time.Time) {
	if len(n.runs) == 0 {
		return
	}
	rate := n.Speed * min(float64(n.CPUs)/float64(len(n.runs)), 1)
	for _, r := range n.runs {
		if now.After(r.at) {
			r.progress += now.Sub(r.at).Seconds() * rate
			r.at = now
		}
	}
}

// weights is each cluster's share of the jobs: its job rate (see
// jobRates, which Grid uses too).
func (c *Core) weights(now time.Time) []float64 {
	n := len(c.clusters)
	done, first, power := make([]int, n), make([]time.Time, n), make([]float64, n)
	for i, cs := range c.clusters {
		done[i], first[i], power[i] = cs.done, cs.first, cs.power
	}
	w, _ := jobRates(now, done, first, power)
	return w
}

// allocate gives waiting jobs to clusters in proportion to their job
// rates, so that all are expected to finish together, and moves waiting
// jobs from clusters expected to finish late to ones expected to finish
// early.
func (c *Core) allocate(now time.Time) {
	w := c.weights(now)
	held := func(i int) float64 {
		cs := c.clusters[i]
		run := 0
		for _, n := range cs.nodes {
			run += len(n.runs)
		}
		return float64(run + len(cs.queue))
	}
	load := make([]float64, len(c.clusters))
	for i := range c.clusters {
		load[i] = held(i)
	}
	// finish is when cluster i is expected to be done with n jobs.
	finish := func(i int, n float64) float64 {
		if w[i] <= 0 || len(c.clusters[i].nodes) == 0 {
			return math.Inf(1)
		}
		return n / w[i]
	}
	best := func() int {
		b := -1
		for i := range c.clusters {
			if f := finish(i, load[i]+1); !math.IsInf(f, 1) && (b < 0 || f < finish(b, load[b]+1)) {
				b = i
			}
		}
		return b
	}
	for c.queue.len() > 0 {
		b := best()
		if b < 0 {
			return
		}
		j := c.queue.pop(c.model)
		c.give(j, c.clusters[b])
		load[b]++
	}
	for moves := 0; moves < 1000; moves++ {
		worst := -1
		for i, cs := range c.clusters {
			if len(cs.queue) > 0 && (worst < 0 || finish(i, load[i]) > finish(worst, load[worst])) {
				worst = i
			}
		}
		b := best()
		if worst < 0 || b < 0 || b == worst || finish(b, load[b]+1) >= finish(worst, load[worst]) {
			return
		}
		from := c.clusters[worst]
		j := from.queue[len(from.queue)-1]
		from.queue = from.queue[:len(from.queue)-1]
		c.give(j, c.clusters[b])
		load[worst]--
		load[b]++
		c.decided++
	}
}

func (c *Core) give(j *jobState, cs *clusterState) {
	j.held = cs
	cs.queue = append(cs.queue, j)
}
