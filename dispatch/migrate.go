package dispatch

import (
	"fmt"

	"orrery/protocol"
	"orrery/sched"
)

// move records the core's decision to move a running attempt and
// carries it out as soon as the attempt's process group is known.
func (r *runState) move(m sched.Move) {
	j := r.jobs[m.Job]
	if j == nil || j.runs[m.Attempt] == "" {
		return
	}
	if j.moved == nil {
		j.moved = map[int]*migrant{}
	}
	mg := j.moved[m.Attempt]
	if mg == nil {
		mg = &migrant{}
		j.moved[m.Attempt] = mg
	}
	mg.to, mg.placed = m.To, 0
	r.batch.Event(r.exp.ID, "attempt.moved", m.Job, m.To, fmt.Sprintf("attempt %d from node %s", m.Attempt, m.From))
	// Carried out once the move is in the store.
	r.afterApply = append(r.afterApply, func() { r.migrate(m.Job, m.Attempt, mg) })
}

// located notes the process group a node reported for an attempt, and
// moves it where the core placed it when the group is new (the attempt
// started another command, which starts where its node is).
func (r *runState) located(x protocol.Resident) {
	j := r.jobs[x.Job]
	if j == nil || x.Group <= 0 {
		return
	}
	if mg := j.moved[x.Attempt]; mg != nil {
		mg.group = x.Group
		r.migrate(x.Job, x.Attempt, mg)
	}
}

// migrate moves an attempt's current process group to its node's
// control group, once per group and destination.
func (r *runState) migrate(job int64, attempt int, mg *migrant) {
	if mg.group <= 0 || mg.placed == mg.group || r.d.cfg.Migrate == nil {
		return
	}
	if err := r.d.cfg.Migrate(mg.group, mg.to); err != nil {
		r.d.log.Warn("migrate", "job", job, "attempt", attempt, "to", mg.to, "err", err)
		return
	}
	mg.placed = mg.group
}
