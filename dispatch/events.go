package dispatch

import (
	"context"
	"fmt"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// handle applies one event from an agent connection.
func (r *runState) handle(e event) {
	c := e.conn
	if e.msg == nil {
		if c.name != "" && r.nodes[c.name] == c {
			r.lost(c.name, fmt.Sprintf("lost the connection to node %s: %v", c.name, e.err))
		}
		return
	}
	m := e.msg
	switch m.Type {
	case protocol.TypeRegister:
		r.register(c, m.Register)
	case protocol.TypeHeartbeat:
		if c.name != "" {
			r.core.Heartbeat(c.name, time.Now())
			if m.Heartbeat != nil {
				r.resident(c.name, m.Heartbeat.Resident)
			}
		}
	case protocol.TypeEvent:
		if c.name != "" && m.Event != nil && m.Event.Kind == protocol.EventEnded {
			r.core.Heartbeat(c.name, time.Now())
			r.ended(c.name, m.Event)
		}
	}
}

// register admits an agent under a name no other node has.
func (r *runState) register(c *agentConn, reg *protocol.Register) {
	if reg == nil || c.name != "" {
		return
	}
	if reg.Version != protocol.Version {
		c.conn.Send(&protocol.Msg{Type: protocol.TypeShutdown, Error: fmt.Sprintf(
			"protocol version %d, the dispatcher speaks %d", reg.Version, protocol.Version)})
		c.conn.Close()
		return
	}
	name := reg.Name
	if name == "" {
		name = "node"
	}
	for i := 2; r.nodes[name] != nil; i++ {
		name = fmt.Sprintf("%s-%d", reg.Name, i)
	}
	c.name = name
	r.nodes[name] = c
	r.core.AddNode(sched.Node{ID: name, CPUs: reg.CPUs, Speed: reg.Speed, Limit: reg.JobLimit, Memory: reg.Memory}, time.Now())
	c.speed = max(reg.Speed, 0)
	p := r.d.cfg.Plan
	c.conn.Send(&protocol.Msg{Type: protocol.TypeWelcome, Welcome: &protocol.Welcome{
		Node: name, Experiment: r.exp.ID, PlanName: p.File, PlanText: p.Source, Dialect: p.Dialect.String(),
		Names: r.d.cfg.Sweep.Names, Heartbeat: r.d.cfg.Heartbeat}})
	r.batch.Event(r.exp.ID, "node.joined", 0, name, fmt.Sprintf("%d CPUs, speed %g, job limit %d", reg.CPUs, reg.Speed, reg.JobLimit))
	r.prog.Nodes = len(r.nodes)
}

// resident passes a node's report of its attempts' memory to the core.
func (r *runState) resident(node string, rs []protocol.Resident) {
	for _, x := range rs {
		if j := r.jobs[x.Job]; j != nil && j.runs[x.Attempt] == node {
			r.core.Resident(x.Job, x.Attempt, x.Bytes)
			r.located(x)
		}
	}
}

// ended records how an attempt ended.
func (r *runState) ended(node string, ev *protocol.Event) {
	if ev.Result == nil {
		return
	}
	res := ev.Result
	a := store.Attempt{Job: ev.Job, N: ev.Attempt, Node: node, Ended: time.Now(), Exit: res.Exit,
		Signal: res.Signal, Wall: res.Wall, CPU: res.CPU, MaxRSS: res.MaxRSS, Error: res.Error,
		Stdout: res.Stdout, Stderr: res.Stderr}
	key := attemptKey{ev.Job, ev.Attempt}
	if s, ok := r.stopping[key]; ok && s.node == node {
		// A cancelled attempt has stopped: record what it used.
		delete(r.stopping, key)
		a.State, a.Error = s.state, s.reason
		r.batch.EndAttempt(r.exp.ID, a)
		return
	}
	j := r.jobs[ev.Job]
	if j == nil || j.runs[ev.Attempt] != node {
		return // a stale report: the attempt was already given up
	}
	delete(j.runs, ev.Attempt)
	if !res.OK && !res.System && len(j.runs) > 0 {
		// One of two attempts failed: the other may still succeed (the
		// duplicate's node may lack what the job needs). Only this
		// attempt ends.
		a.State = store.AttemptFailed
		r.batch.EndAttempt(r.exp.ID, a)
		r.core.SystemFailure(ev.Job, ev.Attempt, res.Error, a.Ended)
		return
	}
	if !res.System {
		r.settled(ev.Job, j, a.Ended)
	}
	switch {
	case res.OK:
		a.State = store.AttemptOK
		r.batch.Finish(r.exp.ID, a, store.Done)
		r.core.Finished(ev.Job, ev.Attempt, usage(res, r.nodes[node]), a.Ended)
		delete(r.jobs, ev.Job)
		r.prog.Done++
	case res.System:
		a.State = store.AttemptLost
		r.endAttempt(a, len(j.runs) == 0) // else its duplicate runs on
		r.core.SystemFailure(ev.Job, ev.Attempt, res.Error, a.Ended)
	default:
		a.State = store.AttemptFailed
		r.batch.Finish(r.exp.ID, a, store.Failed)
		r.core.Finished(ev.Job, ev.Attempt, usage(res, r.nodes[node]), a.Ended)
		delete(r.jobs, ev.Job)
		r.prog.Failed++
		r.prog.LastError = fmt.Sprintf("job %d: %s", ev.Job, res.Error)
	}
}

// settled records the other attempts of a job that has just ended (a
// duplicate lost the race) as cancelled; the core cancels them too, and
// act tells their nodes.
func (r *runState) settled(job int64, j *liveJob, now time.Time) {
	for n, node := range j.runs {
		delete(j.runs, n)
		r.stopAttempt(store.Attempt{Job: job, N: n, Node: node, State: store.AttemptCancelled, Ended: now,
			Error: "another attempt of the job ended first"}, false)
	}
}

// cancel records the core's decision to stop an attempt and reports
// whether its node must be told. A job that has ended had its other
// attempts recorded when it did (see settled); otherwise the core
// stopped the attempt to free its node's memory and queued the job again.
func (r *runState) cancel(c sched.Cancel, now time.Time) bool {
	key := attemptKey{c.Job, c.Attempt}
	j := r.jobs[c.Job]
	if j == nil {
		_, ok := r.stopping[key] // not there: it ended meanwhile
		return ok && r.nodes[c.Node] != nil
	}
	if j.runs[c.Attempt] != c.Node {
		return false
	}
	delete(j.runs, c.Attempt)
	r.stopAttempt(store.Attempt{Job: c.Job, N: c.Attempt, Node: c.Node, State: store.AttemptCancelled, Ended: now,
		Error: fmt.Sprintf("stopped: node %s had more resident memory than RAM; the job starts again where it fits", c.Node)},
		len(j.runs) == 0)
	return r.nodes[c.Node] != nil
}

// stopAttempt records an attempt as stopped (its job pending again
// when requeue is set) and waits for its node to report it stopped.
func (r *runState) stopAttempt(a store.Attempt, requeue bool) {
	r.endAttempt(a, requeue)
	r.batch.Event(r.exp.ID, "attempt."+a.State, a.Job, a.Node, a.Error)
	if r.nodes[a.Node] != nil {
		r.stopping[attemptKey{a.Job, a.N}] = stopping{node: a.Node, state: a.State, reason: a.Error}
	}
}

// endAttempt records how an attempt ended; when requeue is set it was
// the job's last running attempt, and the job waits to run again.
func (r *runState) endAttempt(a store.Attempt, requeue bool) {
	if requeue {
		r.batch.Finish(r.exp.ID, a, store.Pending)
	} else {
		r.batch.EndAttempt(r.exp.ID, a)
	}
}

// usage is what an attempt used, for the core to learn from.
func usage(res *protocol.Result, c *agentConn) sched.Usage {
	speed := 1.0
	if c != nil && c.speed > 0 {
		speed = c.speed
	}
	return sched.Usage{Work: res.CPU.Seconds() * speed, Memory: res.MaxRSS, Wall: res.Wall}
}

// lost drops a node: its attempts are recorded as lost, and the core
// queues their jobs again (or fails them when out of retries).
func (r *runState) lost(node, reason string) {
	c := r.nodes[node]
	if c == nil {
		return
	}
	delete(r.nodes, node)
	c.conn.Close()
	now := time.Now()
	for idx, j := range r.jobs {
		for n, at := range j.runs {
			if mg := j.moved[n]; at != node && mg != nil && mg.to == node && r.nodes[at] != nil {
				// Moved there: the core takes it for lost with the node;
				// its processes, kept by the node that started them, stop.
				delete(j.runs, n)
				r.stopAttempt(store.Attempt{Job: idx, N: n, Node: at, State: store.AttemptLost, Ended: now,
					Error: reason + " (the attempt had moved there)"}, len(j.runs) == 0)
				r.nodes[at].conn.Send(&protocol.Msg{Type: protocol.TypeCancel, Job: idx, Attempt: n})
				continue
			}
			if at != node {
				continue
			}
			delete(j.runs, n)
			a := store.Attempt{Job: idx, N: n, Node: node, State: store.AttemptLost, Ended: now, Error: reason}
			r.endAttempt(a, len(j.runs) == 0)
		}
	}
	for k, s := range r.stopping {
		if s.node == node {
			delete(r.stopping, k) // recorded as cancelled already
		}
	}
	r.batch.Event(r.exp.ID, "node.lost", 0, node, reason)
	r.core.RemoveNode(node, reason, now)
	r.prog.Nodes = len(r.nodes)
}

// interrupt records the running attempts as interrupted, so the next run
// starts them again, and tells the agents to stop.
func (r *runState) interrupt() {
	now := time.Now()
	for idx, j := range r.jobs {
		for n, node := range j.runs {
			r.batch.Finish(r.exp.ID, store.Attempt{Job: idx, N: n, Node: node,
				State: store.AttemptInterrupted, Ended: now, Error: "the run was stopped"}, store.Pending)
		}
	}
	r.d.cfg.Store.Apply(context.WithoutCancel(r.ctx), &r.batch)
	for _, c := range r.nodes {
		c.conn.Send(&protocol.Msg{Type: protocol.TypeShutdown})
	}
}

// report calls the progress callback, at most every 100 ms unless final.
func (r *runState) report(final bool) {
	if r.d.cfg.Progress == nil || !final && time.Since(r.lastProgress) < 100*time.Millisecond {
		return
	}
	r.lastProgress = time.Now()
	r.prog.Running = r.core.Running()
	r.d.cfg.Progress(r.prog)
}
