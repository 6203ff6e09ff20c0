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

// ended records how an attempt ended.
func (r *runState) ended(node string, ev *protocol.Event) {
	j := r.jobs[ev.Job]
	if j == nil || j.attempt != ev.Attempt || j.node != node || ev.Result == nil {
		return // a stale report: the attempt was already given up
	}
	res := ev.Result
	a := store.Attempt{Job: ev.Job, N: ev.Attempt, Node: node, Ended: time.Now(), Exit: res.Exit,
		Signal: res.Signal, Wall: res.Wall, CPU: res.CPU, MaxRSS: res.MaxRSS, Error: res.Error,
		Stdout: res.Stdout, Stderr: res.Stderr}
	switch {
	case res.OK:
		a.State = store.AttemptOK
		r.batch.Finish(r.exp.ID, a, store.Done)
		r.core.Finished(ev.Job, ev.Attempt, usage(res, r.nodes[node]), a.Ended)
		delete(r.jobs, ev.Job)
		r.prog.Done++
	case res.System:
		a.State = store.AttemptLost
		r.batch.Finish(r.exp.ID, a, store.Pending)
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
		if j.node == node && j.attempt > 0 {
			r.batch.Finish(r.exp.ID, store.Attempt{Job: idx, N: j.attempt, Node: node, State: store.AttemptLost,
				Ended: now, Error: reason}, store.Pending)
			j.node = ""
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
		if j.node != "" {
			r.batch.Finish(r.exp.ID, store.Attempt{Job: idx, N: j.attempt, Node: j.node,
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
