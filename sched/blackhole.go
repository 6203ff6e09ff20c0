package sched

import (
	"container/heap"
	"fmt"
	"slices"
	"time"
)

// Black-hole nodes: a node whose attempts keep failing as system failures
// (its job directories are gone, its disk is full, nodestart broke) would
// fail every job in milliseconds and drain the queue. HTCondor calls these
// black holes. The rule:
//
//   - A node's streak is the system failures (SystemFailure and
//     NodeFailure) of its attempts since the last attempt there that
//     reached the job's own outcome (Finished, or AttemptFailed: success
//     or the job's failure both show the node can run the job's
//     commands). A job's own failure never counts against a node;
//     neither does an attempt lost with the node's connection or with the
//     node (AttemptLost).
//   - A failure in a streak is not charged to its job yet: the job runs
//     again, elsewhere when it can. When the streak ends with an attempt
//     that reached the job's outcome, its failures were chance and are
//     charged; a job then past its retries fails.
//   - A job that fails again on a node where it is in the streak already
//     is charged at once: one job alone never takes a node out, and it
//     cannot fail for ever without paying.
//   - When the streak holds Config.BlackHole failures of at least
//     BlackHoleJobs distinct jobs, the node is taken out of service: no
//     attempt starts there any more (those running there finish), and its
//     streak's failures not yet charged are not: the jobs have their
//     retries back.
//   - Unless the failures are the jobs': when no failure of the streak
//     is the node's own for certain (NodeFailure), and every job of the
//     streak has also failed as a system failure on every other node in
//     service, the failure happens on every node alike. The node stays in
//     service and the failures are charged, so those jobs fail with their
//     error.
//   - On the last node in service, a failure that may be the job's
//     (SystemFailure) is charged at once (there is nowhere else for the
//     job to go), so the sweep never stalls because of the jobs' own
//     failures: they fail there. A failure that is the node's own
//     (NodeFailure) counts against it still, and may take the last node
//     out of service.
//
// A job that failed on a node is placed elsewhere when it can: while
// another node in service could take it, it is held for up to HoldBack
// rather than sent back there, and on a node where it failed other jobs
// go first.
//
// No node is in service when the last one is taken out or lost;
// NodesInService then says 0, and the driver waits for a node, as when
// it has none.

// BlackHole is the default Config.BlackHole: five system failures in a
// row. A broken node reaches five within a second, and since the jobs
// have their retries back, each failure before it costs only a short
// attempt; a healthy node almost never fails five attempts in a row by
// chance (most of its attempts end with the job's own outcome). It is
// more than the attempts a job makes by default (4), but no job spends
// retries while they wait in a streak.
const BlackHole = 5

// BlackHoleJobs is how many distinct jobs a streak must hold to take a
// node out of service (fewer when Config.BlackHole is smaller): one job
// that fails, or two, say more of the jobs than of the node.
const BlackHoleJobs = 3

// HoldBack is how long a job that failed on a node as a system failure
// waits for another node in service rather than go back there.
const HoldBack = 30 * time.Second

// blame is one system failure in a node's streak.
type blame struct {
	job    *jobState
	charge bool // the job's retries pay for it if the streak is chance (not a duplicate's failure, nor charged already)
	own    bool // the node's own failure for certain (NodeFailure)
}

// blame counts a system failure of job j on n: against n when another
// node is in service or the failure is the node's own (own), else
// against j at once. alone says no other attempt of j runs on (the
// failure is then j's to pay, or n's).
func (c *Core) blame(n *nodeState, j *jobState, alone, own bool, reason string) {
	switch {
	case n.out == drainOut:
		// It drains, in good standing: it is judged no more, and the
		// job pays, as on the last node in service.
		if alone {
			c.charge(j, 1)
		}
	case n.out != "":
		// Out of service: its failures are its own, never the job's.
	case c.cfg.BlackHole < 0 || !own && c.NodesInService() < 2:
		if alone {
			c.charge(j, 1)
		}
	case slices.ContainsFunc(n.streak, func(b blame) bool { return b.job == j }):
		// Again: the job pays, and counts once among the streak's jobs.
		n.streak = append(n.streak, blame{job: j, own: own})
		if alone {
			c.charge(j, 1)
		}
		c.judgeIfDue(n, reason)
	default:
		n.streak = append(n.streak, blame{job: j, charge: alone, own: own})
		c.judgeIfDue(n, reason)
	}
	if alone {
		c.charge(j, 0) // past its retries already (charged while it ran)
	}
}

// judgeIfDue judges n when its streak holds Config.BlackHole failures of
// enough distinct jobs.
func (c *Core) judgeIfDue(n *nodeState, reason string) {
	if len(n.streak) < c.cfg.BlackHole {
		return
	}
	var jobs []*jobState
	for _, b := range n.streak {
		if !slices.Contains(jobs, b.job) {
			jobs = append(jobs, b.job)
		}
	}
	if len(jobs) >= min(BlackHoleJobs, c.cfg.BlackHole) {
		c.judge(n, reason)
	}
}

// judge decides about a node whose streak is long enough: the jobs', when
// they failed on every other node in service too (and none of the
// failures is the node's own for certain); else the node's, which is
// taken out of service.
func (c *Core) judge(n *nodeState, reason string) {
	if !slices.ContainsFunc(n.streak, func(b blame) bool { return b.own }) && c.everywhere(n) {
		c.settle(n, true)
		return
	}
	n.out = fmt.Sprintf("%d system failures in a row; the last: %s", len(n.streak), reason)
	c.settle(n, false)
	c.setLimit(n) // no slot: it leaves the free list
	n.cluster.cpus -= n.CPUs
	n.cluster.power -= float64(n.CPUs) * n.Speed
	c.actions = append(c.actions, OutOfService{Node: n.ID, Reason: n.out})
	c.lastInService()
}

// everywhere reports whether the jobs of n's streak fail as system
// failures on every node alike: none has ended since but by failing, and
// those that failed on every other node in service too are at least as
// many as those not yet tried elsewhere (held for another node, say), and
// at least one.
func (c *Core) everywhere(n *nodeState) bool {
	var known, unknown []*jobState
	for _, b := range n.streak {
		if c.jobs[b.job.Index] != b.job && !b.job.failed {
			return false // it ended elsewhere
		}
		if slices.Contains(known, b.job) || slices.Contains(unknown, b.job) {
			continue
		}
		all := true
		for _, m := range c.byOrder {
			if m != n && m.out == "" && !slices.Contains(b.job.failedOn, m.ID) {
				all = false
			}
		}
		if all {
			known = append(known, b.job)
		} else {
			unknown = append(unknown, b.job)
		}
	}
	return len(known) > 0 && len(known) >= len(unknown)
}

// settle ends n's streak: its failures are charged to their jobs when
// charge is set, else forgiven.
func (c *Core) settle(n *nodeState, charge bool) {
	streak := n.streak
	n.streak = nil
	if !charge {
		return
	}
	for _, b := range streak {
		if b.charge {
			c.charge(b.job, 1)
		}
	}
}

// lastInService charges the failures that may be the jobs' in the streak
// of the last node in service, if one is left alone: they can no longer
// take it out. Its own failures stay in its streak.
func (c *Core) lastInService() {
	var last *nodeState
	for _, n := range c.byOrder {
		if n.out == "" {
			if last != nil {
				return
			}
			last = n
		}
	}
	if last == nil {
		return
	}
	var own []blame
	for _, b := range last.streak {
		if b.own {
			own = append(own, b)
		}
	}
	last.streak = slices.DeleteFunc(last.streak, func(b blame) bool { return b.own })
	c.settle(last, true)
	last.streak = own
}

// holdsOff reports whether j, which failed on n as a system failure, waits
// rather than run there again: for HoldBack after its last failure, while
// another node in service where it has not failed could take it.
func (c *Core) holdsOff(j *jobState, n *nodeState, now time.Time) bool {
	if !slices.Contains(j.failedOn, n.ID) || now.Sub(j.failedAt) >= HoldBack {
		return false
	}
	return slices.ContainsFunc(c.byOrder, func(m *nodeState) bool {
		return m.out == "" && !slices.Contains(j.failedOn, m.ID)
	})
}

// InService reports whether the node id is known and in service.
func (c *Core) InService(id string) bool {
	n := c.nodes[id]
	return n != nil && n.out == ""
}

// charge counts k more system failures against j (k may be 0) and fails
// j when that takes it past its retries and no attempt of it runs: a job
// that runs has its fate decided when the attempt ends.
func (c *Core) charge(j *jobState, k int) {
	if c.jobs[j.Index] != j {
		return // it ended meanwhile
	}
	j.failures += k
	if j.failures <= c.cfg.Retries || len(j.runs) > 0 {
		return
	}
	c.unqueue(j)
	delete(c.jobs, j.Index)
	j.failed = true
	c.actions = append(c.actions, Fail{Job: j.Index, Reason: fmt.Sprintf("%s (%d system failures)", j.reason, j.failures)})
}

// unqueue takes a waiting job out of the queue it waits in.
func (c *Core) unqueue(j *jobState) {
	if cs := j.held; cs != nil {
		cs.queue = slices.DeleteFunc(cs.queue, func(x *jobState) bool { return x == j })
		j.held = nil
		return
	}
	c.queue.remove(j)
}

// remove takes j out of the queue, if it is there.
func (q *queue) remove(j *jobState) {
	i := slices.Index(q.items, j)
	switch {
	case i < 0:
	case q.lpt:
		heap.Remove((*lptHeap)(&q.items), i)
		q.work -= j.expect
	default:
		q.items = slices.Delete(q.items, i, i+1)
	}
}

// NodesInService returns how many nodes may be given attempts.
func (c *Core) NodesInService() int {
	k := 0
	for _, n := range c.byOrder {
		if n.out == "" {
			k++
		}
	}
	return k
}

// NodesOutOfService returns how many nodes the core took out of service
// and still holds (until they are lost); a node that drains (see Drain)
// is not one of them.
func (c *Core) NodesOutOfService() int {
	k := 0
	for _, n := range c.byOrder {
		if n.out != "" && n.out != drainOut {
			k++
		}
	}
	return k
}
