package sched

import "time"

// Adopt takes in an attempt of a job that already runs (or waits) on a
// cluster without the grid having sent it: a coordinator started again
// takes back what a cluster kept working on while it was down. The job
// must not be held by the grid (Forget it first); attempt becomes its
// latest. It reports whether the attempt was adopted.
func (g *Grid) Adopt(cluster string, j Job, attempt int, now time.Time) bool {
	g.tick(now)
	cs := g.cluster(cluster)
	if cs == nil || g.jobs[j.Index] != nil {
		return false
	}
	js := &jobState{Job: j, attempt: max(attempt, j.Attempts)}
	gj := &gridJob{jobState: js}
	g.jobs[j.Index] = gj
	a := &gridAttempt{job: gj, n: attempt, cs: cs}
	gj.atts = append(gj.atts, a)
	cs.queued = append(cs.queued, a)
	g.changed = true
	return true
}

// Forget drops a job that waits at the coordinator (not out on a
// cluster): its driver takes it back. It reports whether it was there.
func (g *Grid) Forget(index int64) bool {
	j := g.jobs[index]
	if j == nil || len(j.atts) > 0 {
		return false
	}
	g.queue.remove(j.jobState)
	delete(g.jobs, index)
	return true
}
