package sched

import (
	"container/heap"
	"fmt"
	"slices"
)

// Black-hole nodes: a node whose attempts keep failing as system failures
// (its job directories are gone, its disk is full, nodestart broke) would
// fail every job in milliseconds and drain the queue. HTCondor calls these
// black holes. The rule:
//
//   - A node's streak is the system failures (SystemFailure) of its
//     attempts since the last attempt there that reached the job's own
//     outcome (Finished, or AttemptFailed: success or the job's failure
//     both show the node can run the job's commands). A job's own failure
//     never counts against a node; neither does an attempt lost with the
//     node's connection or with the node (AttemptLost).
//   - A failure in a streak is not charged to its job yet: the job runs
//     again, elsewhere when it can. When the streak ends with an attempt
//     that reached the job's outcome, its failures were chance and are
//     charged; a job then past its retries fails.
//   - When the streak reaches Config.BlackHole failures, the node is taken
//     out of service: no attempt starts there any more (those running
//     there finish), and its streak's failures are not charged: the jobs
//     have their retries back.
//   - Unless the failures are the jobs': when every job of the streak has
//     also failed as a system failure on every other node in service, the
//     failure happens on every node alike. The node stays in service and
//     the failures are charged, so those jobs fail with their error.
//   - The last node in service is never taken out: on it, a system
//     failure is charged at once (there is nowhere else for the job to
//     go). So the sweep never stalls because of the jobs' own failures:
//     they fail there.
//
// Every node can be out of service only when the last node in service is
// lost; NodesInService then says 0, and the driver ends the run.

// BlackHole is the default Config.BlackHole: five system failures in a
// row. A broken node reaches five within a second, and since the jobs
// have their retries back, each failure before it costs only a short
// attempt; a healthy node almost never fails five attempts in a row by
// chance (most of its attempts end with the job's own outcome). It is
// more than the attempts a job makes by default (4), but no job spends
// retries while they wait in a streak.
const BlackHole = 5

// blame is one system failure in a node's streak.
type blame struct {
	job    *jobState
	charge bool // the job's retries pay for it (not a duplicate's failure)
}

// blame counts a system failure of job j on n: against n when another
// node is in service, else against j at once. alone says no other
// attempt of j runs on (the failure is then j's to pay, or n's).
func (c *Core) blame(n *nodeState, j *jobState, alone bool, reason string) {
	switch {
	case n.out != "":
		// Out of service: its failures are its own, never the job's.
	case c.cfg.BlackHole < 0 || c.NodesInService() < 2:
		if alone {
			c.charge(j, 1)
		}
	default:
		n.streak = append(n.streak, blame{job: j, charge: alone})
		if len(n.streak) >= c.cfg.BlackHole {
			c.judge(n, reason)
		}
	}
	if alone {
		c.charge(j, 0) // past its retries already (charged while it ran)
	}
}

// judge decides about a node whose streak is long enough: the jobs', when
// they failed on every other node in service too; else the node's, which
// is taken out of service.
func (c *Core) judge(n *nodeState, reason string) {
	if c.everywhere(n) {
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

// everywhere reports whether every job of n's streak, still waiting, has
// failed as a system failure on every other node in service.
func (c *Core) everywhere(n *nodeState) bool {
	for _, b := range n.streak {
		if c.jobs[b.job.Index] != b.job {
			return false
		}
		for _, m := range c.byOrder {
			if m != n && m.out == "" && !slices.Contains(b.job.tried, m.ID) {
				return false
			}
		}
	}
	return true
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

// lastInService charges the streak of the last node in service, if one
// is left alone: its failures can no longer take it out.
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
	if last != nil {
		c.settle(last, true)
	}
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
// and still holds (until they are lost).
func (c *Core) NodesOutOfService() int { return len(c.byOrder) - c.NodesInService() }
