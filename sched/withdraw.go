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
