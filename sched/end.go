package sched

import (
	"math"
	"time"
)

// Nodes that end, and nodes that leave.
//
// A batch system's pilot is a node with an end (Node.End): the batch
// system kills it then, and an attempt still running is lost with it.
// No attempt starts on such a node when it is expected to run past the
// end less EndMargin. How long a job is expected to take there is the
// model's prediction of its work scaled up for the model's uncertainty
// (Model.WorkBound), at the speed of one of the node's slots, plus its
// share of staging; while the model predicts nothing (or under a policy
// that does not learn), the longest wall time of an attempt that ended
// with its job's outcome; when nothing is known at all, the job starts.
// A job whose attempt was cut short by a node's end needs at least 1.1
// times as long as that attempt ran, whatever else says less.
//
// A node that leaves (a pilot idle for long, or near its end) drains
// (Drain): nothing starts or moves there any more and what runs there
// finishes, as on a node out of service, but it is no failure: it does
// not count among NodesOutOfService, no OutOfService action says so,
// and its later system failures are charged to their jobs, not to it.

// EndMargin is how long before a node's end an attempt started there
// must be expected to be done.
const EndMargin = time.Minute

// drainOut is the out-of-service reason of a node that drains.
const drainOut = "draining"

// beforeEnd reports whether j, started on n after wait seconds from
// now, is expected to be done before n's end less EndMargin: always
// when n has no end, and, while nothing is known of how long jobs take,
// whenever that time has not passed.
func (c *Core) beforeEnd(j *jobState, n *nodeState, now time.Time, wait float64) bool {
	if n.End.IsZero() {
		return true
	}
	return endsBy(n, now, wait+c.endNeed(j, n))
}

// endsBy reports whether something that takes secs seconds from now on
// n is done before n's end less EndMargin (always when n has no end).
// Nothing is, once that time has come.
func endsBy(n *nodeState, now time.Time, secs float64) bool {
	if n.End.IsZero() {
		return true
	}
	left := n.End.Sub(now) - EndMargin
	return left > 0 && secs <= left.Seconds()
}

// endNeed is how long, in seconds, j is expected to take at most on n
// (see the comment at the top of this file); 0 when nothing is known.
func (c *Core) endNeed(j *jobState, n *nodeState) float64 {
	t := c.expectedOn(j, n)
	// An attempt that a node's end cut short shows the job takes longer
	// than it ran, whatever the model says (on a node of like speed).
	return max(t, j.ranFor.Seconds()*1.1)
}

// expectedOn is endNeed from what the core learnt of jobs in general.
func (c *Core) expectedOn(j *jobState, n *nodeState) float64 {
	w, ok := c.model.WorkBound(j.Params)
	if !ok {
		return c.longest.Seconds()
	}
	rate := slotRate(n)
	if c.pol.NoQueue {
		rate = after(n) // its limit is no limit: what it runs now, and j
	}
	t := w / rate
	if s := c.model.StageShare(); s > 0 && s < 0.9 {
		t /= 1 - s
	}
	if math.IsNaN(t) {
		return 0
	}
	return t
}

// Drain takes node id out of service because it leaves: no attempt
// starts or moves there any more, and those running there finish (the
// driver may let it go once none is left). It is no failure of the
// node's (see the comment at the top of this file). It reports whether
// the node was known and not draining already; a node out of service
// already stays out as it was.
func (c *Core) Drain(id string) bool {
	n := c.nodes[id]
	if n == nil || n.drains {
		return false
	}
	n.drains = true
	if n.out != "" {
		return true
	}
	n.out = drainOut
	c.setLimit(n) // no slot: it leaves the free list
	n.cluster.cpus -= n.CPUs
	n.cluster.power -= float64(n.CPUs) * n.Speed
	c.lastInService()
	return true
}

// Draining reports whether node id drains (see Drain).
func (c *Core) Draining(id string) bool {
	n := c.nodes[id]
	return n != nil && n.drains
}
