package sched

import (
	"cmp"
	"slices"
	"time"
)

// gain is how much faster a job must run after a move or duplicate for
// the core to make it: below this a move is not worth its cost and the
// risk of moving back.
const gain = 1.1

// each is the speed each job on n runs at now.
func each(n *nodeState) float64 {
	return n.Speed * min(float64(n.CPUs)/float64(max(len(n.runs), 1)), 1)
}

// after is the speed each job on n would run at with one more.
func after(n *nodeState) float64 {
	return n.Speed * min(float64(n.CPUs)/float64(len(n.runs)+1), 1)
}

// fits reports whether r's memory fits in n's RAM beside what runs there.
func fits(n *nodeState, r *run) bool {
	return n.Memory <= 0 || n.resident+r.resident <= n.Memory
}

// moveCost is how long moving r inside cs takes: its memory over the
// link, plus the latency.
func moveCost(cs *clusterState, r *run) float64 {
	t := cs.Latency
	if cs.Bandwidth > 0 {
		t += float64(r.resident) / cs.Bandwidth
	}
	return t
}

// moveCostTo is how long moving r to dst takes: inside a cluster over
// its link; to another cluster through the root, over both clusters'
// links and WAN links in turn.
func moveCostTo(r *run, dst *nodeState) float64 {
	from, to := r.node.cluster, dst.cluster
	if from == to {
		return moveCost(from, r)
	}
	t := moveCost(from, r) + moveCost(to, r) + from.WANLatency + to.WANLatency
	for _, bw := range []float64{from.WANBandwidth, to.WANBandwidth} {
		if bw > 0 {
			t += float64(r.resident) / bw
		}
	}
	return t
}

// stageCost is how long staging j to a node of cs takes over the WAN.
func stageCost(cs *clusterState, j *jobState) float64 {
	t := 2 * cs.WANLatency
	if cs.WANBandwidth > 0 {
		t += float64(j.Stage) / cs.WANBandwidth
	}
	return t
}

// reaches reports whether the driver can move a running attempt from
// node from to node to: inside a cluster that is not pinned with
// Config.Moves, between two such clusters only with Config.MovesAcross
// too.
func (c *Core) reaches(from, to *nodeState) bool {
	return c.moves(from.cluster) && c.moves(to.cluster) && (from.cluster == to.cluster || c.cfg.MovesAcross)
}

// movable reports whether r may move now: not while it is still settling
// after its last move.
func (c *Core) movable(r *run, now time.Time) bool {
	if r.moved.IsZero() {
		return true
	}
	settle := 2*moveCost(r.node.cluster, r) + c.cfg.BalanceEvery.Seconds()
	return now.Sub(r.moved).Seconds() >= settle
}

// move moves a running attempt to another node. A MOSIX migration keeps
// the slot where the job started (the queue knows nothing of it); a move
// by the core's own policy takes the slot along.
func (c *Core) move(r *run, to *nodeState, withSlot bool, now time.Time) {
	from := r.node
	c.progress(from, now)
	c.progress(to, now)
	from.runs = slices.DeleteFunc(from.runs, func(x *run) bool { return x == r })
	from.resident -= r.resident
	to.runs = append(to.runs, r)
	to.resident += r.resident
	// It makes no progress until it is there.
	r.at = now.Add(time.Duration(moveCostTo(r, to) * float64(time.Second)))
	r.node, r.moved = to, now
	if withSlot {
		r.home.held--
		c.listFree(r.home)
		r.home = to
		to.held++
		c.listFree(to)
	}
	c.actions = append(c.actions, Move{Job: r.job.Index, Attempt: r.attempt, From: from.ID, To: to.ID})
}

// balance is MOSIX inside each cluster: memory ushering first, then load
// balancing, one move at a time until nothing is worth moving. A policy
// that learns levels load only once no job waits and none will come
// (Close): until then it places each job on the fastest slot itself,
// and a MOSIX move would only take a job off its home node, whose slot
// stays held, and leave a CPU idle while jobs wait (on a grid of 10^4
// nodes that cost orrery a tenth of its efficiency; a cluster's
// dispatcher, whose queue the grid's coordinator refills a job at a
// time, sees its queue empty for a moment often). With toIdle, it
// levels load only onto idle nodes (the end-of-run plan does the rest).
func (c *Core) balance(now time.Time, toIdle bool) {
	level := !c.pol.Learn || c.closed && c.queue.len() == 0
	for _, cs := range c.clusters {
		if len(cs.nodes) < 2 || !c.moves(cs) {
			continue
		}
		for moves := 0; moves < 4*len(cs.nodes); moves++ {
			if !c.usher(cs, now) && (!level || !c.level(cs, toIdle, now)) {
				break
			}
		}
	}
}

// usher moves the largest job that fits elsewhere off a node whose
// resident memory exceeds its RAM.
func (c *Core) usher(cs *clusterState, now time.Time) bool {
	for _, src := range cs.nodes {
		if src.Memory <= 0 || src.resident <= src.Memory {
			continue
		}
		runs := slices.Clone(src.runs)
		slices.SortFunc(runs, func(a, b *run) int {
			if r := cmp.Compare(b.resident, a.resident); r != 0 {
				return r
			}
			return cmp.Compare(a.job.Index, b.job.Index)
		})
		for _, r := range runs {
			if !c.movable(r, now) {
				continue
			}
			var dst *nodeState
			for _, n := range cs.nodes {
				if n != src && n.out == "" && fits(n, r) && (dst == nil || after(n) > after(dst)) {
					dst = n
				}
			}
			if dst != nil {
				c.move(r, dst, false, now)
				return true
			}
		}
	}
	return false
}

// level moves one job from the node where jobs get the least CPU to the
// node where one more would get the most (with toIdle, only to a node
// that runs nothing), when that is worth it.
func (c *Core) level(cs *clusterState, toIdle bool, now time.Time) bool {
	var src, dst *nodeState
	for _, n := range cs.nodes {
		if len(n.runs) > 0 && (src == nil || each(n) < each(src)) {
			src = n
		}
	}
	if src == nil {
		return false
	}
	for _, n := range cs.nodes {
		if n != src && n.out == "" && (dst == nil || after(n) > after(dst)) {
			dst = n
		}
	}
	if dst == nil || after(dst) < gain*each(src) || toIdle && len(dst.runs) > 0 {
		return false
	}
	var pick *run
	var pickLeft float64
	for _, r := range src.runs {
		if !c.movable(r, now) || !fits(dst, r) {
			continue
		}
		left := c.left(r, now)
		if pick == nil || left > pickLeft || left == pickLeft && r.job.Index < pick.job.Index {
			pick, pickLeft = r, left
		}
	}
	if pick == nil {
		return false
	}
	c.move(pick, dst, false, now)
	return true
}

// left is r's expected work left: expectLeft when the model knows, else
// how long it has run (MOSIX's guess that old processes live long).
func (c *Core) left(r *run, now time.Time) float64 {
	if c.model.Ready() {
		return c.expectLeft(r)
	}
	return now.Sub(r.start).Seconds()
}

// stragglers, once nothing waits, gives the best free slots to the
// running jobs expected to finish last, when a move (or a fresh
// duplicate) would finish them sooner.
func (c *Core) stragglers(now time.Time) {
	if !c.model.Ready() || len(c.free) == 0 || !c.cfg.Moves && !c.cfg.Duplicates {
		return
	}
	slots := c.slots(nil)
	if len(slots) == 0 {
		return
	}
	type cand struct {
		r    *run
		left float64 // work
		t    float64 // seconds to finish where it is
	}
	var cands []cand
	for _, n := range c.byOrder {
		c.progress(n, now)
		for _, r := range n.runs {
			if len(r.job.runs) > 1 {
				continue
			}
			left := c.expectLeft(r)
			cands = append(cands, cand{r, left, left / each(n)})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		if r := cmp.Compare(b.t, a.t); r != 0 {
			return r
		}
		return cmp.Compare(a.r.job.Index, b.r.job.Index)
	})
	// The best slots help the worst stragglers if anything does: look at
	// a few of each, and stop at the first slot that helps none.
	const look = 32
	taken := map[*nodeState]int{}
	for _, s := range slots {
		if taken[s.node] > s.k {
			continue
		}
		dst, rate := s.node, after(s.node)
		helped := false
		seen := 0
		for i := 0; i < len(cands) && seen < look; i++ {
			cd := cands[i]
			r := cd.r
			if r == nil || r.node == dst {
				continue
			}
			seen++
			switch {
			case c.reaches(r.node, dst) && fits(dst, r) && c.movable(r, now) &&
				moveCostTo(r, dst)+cd.left/rate < cd.t/gain && endsBy(dst, now, moveCostTo(r, dst)+cd.left/rate):
				c.move(r, dst, true, now)
			case c.cfg.Duplicates && !r.job.lostOne && c.room(dst, r.job) && c.beforeEnd(r.job, dst, now, 0) && stageCost(dst.cluster, r.job)+c.model.expectJob(r.job)/rate < cd.t:
				// The first attempt runs on: a duplicate on an idle slot
				// costs nothing unless it wins.
				c.start(r.job, dst, now)
			default:
				continue
			}
			taken[dst]++
			cands[i].r = nil
			helped = true
			break
		}
		if !helped {
			return
		}
	}
}

// maxRestarts bounds how often one job is stopped to relieve memory.
const maxRestarts = 3

// relieve stops, on each node whose resident memory exceeds its RAM,
// the attempts that have done least (the larger first among equals)
// until the rest fit, and queues their jobs again first in line; the
// placement then starts them only where their memory fits. A job that
// has been stopped maxRestarts times stays where it is.
func (c *Core) relieve(now time.Time) {
	nodes := c.overfull
	c.overfull = nil
	for _, n := range nodes {
		if c.nodes[n.ID] != n {
			continue // lost meanwhile
		}
		for n.Memory > 0 && n.resident > n.Memory && len(n.runs) > 1 {
			c.progress(n, now)
			var pick *run
			for _, r := range n.runs {
				if len(r.job.runs) > 1 || r.job.restarts >= maxRestarts || r.resident == 0 {
					continue
				}
				if pick == nil || r.progress < pick.progress ||
					r.progress == pick.progress && r.resident > pick.resident {
					pick = r
				}
			}
			if pick == nil {
				break
			}
			j := pick.job
			c.release(pick, now)
			c.actions = append(c.actions, Cancel{Job: j.Index, Attempt: pick.attempt, Node: n.ID})
			j.restarts++
			c.queue.pushFront(j, c.model)
		}
	}
}

// room reports whether j's expected memory fits on n beside what runs
// there (an idle node always has room).
func (c *Core) room(n *nodeState, j *jobState) bool {
	need := c.need(j)
	return need <= 0 || n.Memory <= 0 || len(n.runs) == 0 || n.resident+need <= n.Memory
}

// need is the resident memory a policy that learns expects j to take:
// what an attempt of it reported, else what finished jobs took, else
// the mean peak of the jobs that reported any (0: unknown).
func (c *Core) need(j *jobState) int64 {
	switch {
	case j.mem > 0 || !c.pol.Learn:
		return j.mem
	case c.model.Memory() > 0:
		return c.model.Memory()
	case c.memJobs > 0:
		return c.memSum / int64(c.memJobs)
	}
	return 0
}
