package sched

import (
	"slices"
	"time"
)

// Withdraw forgets a job the driver no longer wants run (a cluster head
// whose root took the job back): it leaves the queue, and each attempt
// of it that runs is cancelled (a Cancel action per attempt). It reports
// whether the core held the job.
func (c *Core) Withdraw(index int64, now time.Time) bool {
	j := c.jobs[index]
	if j == nil {
		return false
	}
	if len(j.runs) == 0 {
		c.unqueue(j)
	}
	for _, r := range slices.Clone(j.runs) {
		c.release(r, now)
		c.actions = append(c.actions, Cancel{Job: index, Attempt: r.attempt, Node: r.node.ID})
	}
	delete(c.jobs, index)
	return true
}

// Adopt takes in an attempt that already runs on node without the core
// having started it: a cluster head that kept working while the root
// was down reports, when the root comes back, the attempts it still
// holds, which the root had started before it stopped. The job must not
// be held by the core (withdraw it first); attempt becomes its latest.
// It reports whether the attempt was adopted (false: unknown node, or
// the core holds the job).
func (c *Core) Adopt(j Job, attempt int, node string, now time.Time) bool {
	n := c.nodes[node]
	if n == nil || c.jobs[j.Index] != nil {
		return false
	}
	js := &jobState{Job: j, attempt: max(attempt, j.Attempts)}
	c.jobs[j.Index] = js
	r := &run{job: js, attempt: attempt, node: n, home: n, start: now, at: now}
	js.runs = append(js.runs, r)
	n.runs = append(n.runs, r)
	n.held++
	c.running++
	if n.cluster.first.IsZero() {
		n.cluster.first = now
	}
	c.listFree(n)
	return true
}
