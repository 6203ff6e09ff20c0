package sched

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// The end of an experiment, when the driver can move running jobs
// (they checkpoint, or MOSIX migrates them).
//
// Placing indivisible jobs one by one leaves the last ones ending at
// different times, and the CPUs that finish first stand idle. With moves
// the core can do better: once few jobs wait, it starts them all at once
// (the nodes share their CPUs between more jobs), then plans when each
// node will be done with the work it holds and keeps moving jobs off the
// node expected to finish last, or swapping a job there with a shorter
// one on a faster node, while that brings the end sooner. This is the
// preemptive schedule of uniform machines, whose best makespan is the
// work over the capacity: the pieces left of partly run jobs are what
// lets the last CPUs finish together.

// minGain is the least a move must bring the planned end forward, as a
// share of the time left, to be made.
const minGain = 0.05

// finishing reports whether the core plans the end of the experiment: a
// policy that learns and handles stragglers, a driver that can move jobs
// in some cluster, every job enqueued, a model that predicts their work,
// and no more waiting jobs than CPUs, or than the nodes can start at
// once.
func (c *Core) finishing() bool {
	if !c.pol.Learn || !c.pol.Stragglers || !c.cfg.Moves || !c.closed || !c.model.Ready() {
		return false
	}
	cpus, moving := 0, false
	for _, cs := range c.clusters {
		moving = moving || c.moves(cs)
		cpus += cs.cpus
	}
	if !moving || c.queue.len() > cpus {
		return false // the common case, without a walk over every node
	}
	room := 0
	for _, n := range c.byOrder {
		room += max(tailCap(n)-n.held, 0)
	}
	return c.queue.len() <= room
}

// load is what a node holds, as the plan for the end sees it.
type load struct {
	node    *nodeState
	work    float64 // expected work left of its runs
	longest float64 // the most work left of one of them
	end     float64 // seconds from now until it is expected to be done
}

// done is when a node with the given work and longest run is expected
// to be done: its CPUs share the work, and no run goes faster than one
// CPU.
func done(n *nodeState, work, longest float64) float64 {
	return max(work/(n.Speed*float64(n.CPUs)), longest/n.Speed)
}

func (l *load) update() { l.end = done(l.node, l.work, l.longest) }

// loads lists every node's load, brought up to now.
func (c *Core) loads(now time.Time) []*load {
	out := make([]*load, 0, len(c.byOrder))
	for _, n := range c.byOrder {
		c.progress(n, now)
		l := &load{node: n}
		l.work, l.longest = c.holds(n, nil, nil)
		l.update()
		out = append(out, l)
	}
	return out
}

// startTail starts the waiting jobs, longest expected first, where
// each is expected to finish soonest given the work already there. When
// jobs can move between clusters that is the node where it would be
// done soonest; when they can move only inside a cluster, the cluster
// that would be done soonest with its CPUs sharing its work (the plan
// then levels its nodes), and there the node that would be done
// soonest. A job waits instead when it would be done sooner after a
// slot frees on a full node (a limit the user set), or when its memory
// fits on no node.
func (c *Core) startTail(now time.Time) {
	loads := c.loads(now)
	// Expected work left in each cluster, the most of one job, and the
	// fastest CPU there: with its nodes levelled, a cluster is done
	// when its CPUs have shared its work, and no job goes faster than
	// the fastest CPU.
	work, longest, fastest := map[*clusterState]float64{}, map[*clusterState]float64{}, map[*clusterState]float64{}
	freeAt := map[*load]float64{} // when a full node is expected to free a slot
	for _, l := range loads {
		cs := l.node.cluster
		work[cs] += l.work
		longest[cs] = max(longest[cs], l.longest)
		fastest[cs] = max(fastest[cs], l.node.Speed)
		if n := l.node; !tailRoom(n) && len(n.runs) > 0 && (n.Limit > 0 || cs.PerCPU > 0) {
			freeAt[l] = c.freesIn(n)
		}
	}
	var wait []*jobState
	for j := c.queue.pop(c.model); j != nil; j = c.queue.pop(c.model) {
		w := c.model.expectJob(j)
		var best *load
		bestScore, bestEnd := math.Inf(1), math.Inf(1)
		for _, l := range loads {
			if !c.room(l.node, j) || l.node.out != "" || c.holdsOff(j, l.node, now) || !c.beforeEnd(j, l.node, now, freeAt[l]) {
				continue
			}
			cs := l.node.cluster
			var score, end float64
			switch t, full := freeAt[l]; {
			case full:
				score = t + stageCost(cs, j) + w/slotRate(l.node)
				end = score
			case !tailRoom(l.node):
				continue
			default:
				end = stageCost(cs, j) + done(l.node, l.work+w, max(l.longest, w))
				score = end
				if !c.cfg.MovesAcross && c.moves(cs) {
					score = stageCost(cs, j) + max((work[cs]+w)/cs.power, max(longest[cs], w)/fastest[cs])
				}
			}
			if score < bestScore || score == bestScore && end < bestEnd {
				best, bestScore, bestEnd = l, score, end
			}
		}
		if best == nil {
			wait = append(wait, j)
			continue
		}
		cs := best.node.cluster
		work[cs] += w
		longest[cs] = max(longest[cs], w)
		if _, full := freeAt[best]; full {
			freeAt[best] = bestEnd // it waits for that slot
			wait = append(wait, j)
			continue
		}
		c.start(j, best.node, now)
		best.work += w
		best.longest = max(best.longest, w)
		best.update()
	}
	for _, j := range wait {
		c.queue.push(j, c.model)
	}
}

// tailOver is how many times the job limit it chose a policy that plans
// the end may put on a node then: enough that the faster clusters can
// take their share of the last jobs when jobs cannot leave a cluster.
const tailOver = 3

// tailRoom reports whether n may take one more job at the end: below
// tailOver times the limit the policy chose for it, or below a limit
// the user set.
func tailRoom(n *nodeState) bool { return n.held < tailCap(n) }

// tailCap is how many jobs n may hold at the end.
func tailCap(n *nodeState) int {
	if n.Limit <= 0 && n.cluster.PerCPU <= 0 {
		return tailOver * n.limit
	}
	return n.limit
}

// tailDests bounds how many of the nodes expected to be done soonest the
// plan considers as destinations for each move.
const tailDests = 64

// rebalanceTail balances each cluster as MOSIX does (ushering memory,
// levelling load), then moves jobs off the nodes expected to finish
// last, one move or swap at a time, while that brings one's end forward by more
// than minGain of the time left. Jobs that cannot leave their cluster
// are rebalanced inside each cluster on its own.
func (c *Core) rebalanceTail(now time.Time) {
	// Memory first, and no CPU idle beside one that jobs share.
	c.balance(now, true)
	loads := c.loads(now)
	if c.cfg.MovesAcross {
		c.rebalanceAmong(slices.DeleteFunc(loads, func(l *load) bool { return !c.moves(l.node.cluster) }), now)
		return
	}
	groups := map[*clusterState][]*load{}
	var order []*clusterState
	for _, l := range loads {
		cs := l.node.cluster
		if groups[cs] == nil {
			order = append(order, cs)
		}
		groups[cs] = append(groups[cs], l)
	}
	for _, cs := range order {
		if c.moves(cs) {
			c.rebalanceAmong(groups[cs], now)
		}
	}
}

// rebalanceAmong rebalances the end among loads, nodes between which
// jobs can move. A node it cannot help (its one job is already where it
// runs fastest, or still settling) is passed over for the next latest,
// up to tailStuck of them.
func (c *Core) rebalanceAmong(loads []*load, now time.Time) {
	if len(loads) < 2 {
		return
	}
	byEnd := func() []*load {
		dests := slices.Clone(loads)
		slices.SortFunc(dests, func(a, b *load) int {
			if r := cmp.Compare(a.end, b.end); r != 0 {
				return r
			}
			return cmp.Compare(a.node.order, b.node.order)
		})
		return dests
	}
	sorted := byEnd()
	stuck, moves := 0, 0
	for i := len(sorted) - 1; i >= 0 && stuck < tailStuck && moves < len(loads); i-- {
		last := sorted[i]
		if last.end <= 0 {
			return
		}
		if !c.relieveLast(last, dests(last, sorted), now) {
			stuck++
			continue
		}
		moves++
		sorted = byEnd()
		i = len(sorted) - stuck
	}
}

// dests is up to tailDests of the nodes in sorted (soonest done first)
// other than last.
func dests(last *load, sorted []*load) []*load {
	out := make([]*load, 0, tailDests)
	for _, d := range sorted {
		if len(out) == tailDests {
			break
		}
		if d != last && d.node.out == "" {
			out = append(out, d)
		}
	}
	return out
}

// tailStuck bounds how many of the latest nodes rebalanceAmong passes
// over when it cannot bring their ends forward.
const tailStuck = 8

// relieveLast makes the best move or swap of a job on last with one of
// dests that brings last's end forward, if one is worth it, and reports
// whether it made one.
func (c *Core) relieveLast(last *load, dests []*load, now time.Time) bool {
	type choice struct {
		a, b *run // a leaves last for dst; b (if any) comes back
		dst  *load
		end  float64 // the later of the two nodes' new ends
	}
	best := choice{end: last.end * (1 - minGain)}
	for _, a := range last.node.runs {
		if len(a.job.runs) > 1 || !c.movable(a, now) {
			continue
		}
		la := c.expectLeft(a)
		for _, d := range dests {
			if fits(d.node, a) && tailRoom(d.node) {
				t := moveCostTo(a, d.node)
				end := max(c.without(last, a, nil), t+done(d.node, d.work+la, max(d.longest, la)))
				if end < best.end {
					best = choice{a: a, dst: d, end: end}
				}
			}
			for _, b := range d.node.runs {
				if last.node.out != "" || len(b.job.runs) > 1 || !c.movable(b, now) || !swapFits(last.node, a, b) || !swapFits(d.node, b, a) ||
					a.home != last.node && !tailRoom(last.node) || b.home != d.node && !tailRoom(d.node) {
					continue
				}
				lb := c.expectLeft(b)
				if lb >= la {
					continue
				}
				t := max(moveCostTo(a, d.node), moveCostTo(b, last.node))
				end := max(t+c.without(last, a, b), t+c.without(d, b, a))
				if end < best.end {
					best = choice{a: a, b: b, dst: d, end: end}
				}
			}
		}
	}
	if best.a == nil {
		return false
	}
	dst := best.dst
	c.move(best.a, dst.node, true, now)
	if best.b != nil {
		c.move(best.b, last.node, true, now)
	}
	for _, l := range []*load{last, dst} {
		l.work, l.longest = c.holds(l.node, nil, nil)
		l.update()
	}
	return true
}

// without is when l's node is expected to be done without run out and,
// if in is not nil, with run in instead.
func (c *Core) without(l *load, out, in *run) float64 {
	work, longest := c.holds(l.node, out, in)
	return done(l.node, work, longest)
}

// holds is the expected work left on n, and the most left of one run,
// without run out and with run in (either may be nil).
func (c *Core) holds(n *nodeState, out, in *run) (work, longest float64) {
	for _, r := range n.runs {
		if r != out {
			left := c.expectLeft(r)
			work += left
			longest = max(longest, left)
		}
	}
	if in != nil {
		left := c.expectLeft(in)
		work += left
		longest = max(longest, left)
	}
	return work, longest
}

// swapFits reports whether n's memory holds what runs there with run
// out replaced by run in.
func swapFits(n *nodeState, out, in *run) bool {
	return n.Memory <= 0 || n.resident-out.resident+in.resident <= n.Memory
}
