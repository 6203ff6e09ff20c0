package dispatch

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
	"orrery/task"
)

// nodeConn is a node the dispatcher counts on: admitted, and not lost.
type nodeConn struct {
	id        string
	link      Node // nil while a resumable node is disconnected
	speed     float64
	cpus      int
	memory    int64
	trusted   bool
	resumable bool
	proven    bool // its ID is an identity it proved (a certificate), not a name
	// head is set for a cluster head: one node that stands for the
	// cluster (cluster) of its own nodes, with its own queue.
	head      bool
	cluster   string
	status    protocol.ClusterStatus // the head's last view of its cluster
	downSince time.Time              // when its connection dropped (a head's cut)
	heard     time.Time              // when it last said anything (a head's heartbeat)
	limit     int                    // its job limit now (0: the policy's choice)
	claimed   int                    // the job limit it claims, which slow start grows to
	beaten    bool                   // a head's status came with a heartbeat
	started   int64                  // attempts started on it in this run
	batchSaid time.Time              // when a head's reason to submit no more pilots was last logged
	load      float64                // its 1-minute load average, as it last said
	// residents are the resident bytes of its attempts, as its last
	// heartbeat said (only attempts it ran then).
	residents map[attemptKey]int64
	// waiting are starts decided while the node was disconnected: sent
	// when it is back (the attempts are recorded; if it does not come
	// back, they are lost with it).
	waiting []protocol.Start
	access  map[attemptKey]*task.Access // of the waiting starts
	// end is when the batch system ends the node (a pilot), on the
	// dispatcher's clock, from what it said when it last registered
	// (zero: no end known).
	end time.Time
	// draining is set once the node said it drains (see drain.go);
	// shut once it has been told to shut down.
	draining, shut bool
}

// handle applies one event from a transport.
func (r *runState) handle(e event) {
	if e.join != nil {
		r.join(e.node, *e.join)
		return
	}
	if e.lose != "" {
		r.loseCluster(e.lose, e.err)
		return
	}
	nc := r.links[e.node]
	if e.gone {
		delete(r.links, e.node)
		if nc == nil || nc.link != e.node {
			return // never admitted, or replaced by a newer connection
		}
		nc.link = nil
		nc.downSince = r.now()
		if gd, ok := r.core.(*gridDecider); ok && nc.head {
			gd.g.SetLink(nc.cluster, sched.Cut, r.now()) // it keeps its queue; nothing is sent or withdrawn
		}
		reason := fmt.Sprintf("lost the connection to node %s: %v", nc.id, e.err)
		if !nc.resumable || nc.shut {
			r.lost(nc.id, reason)
			return
		}
		r.d.log.Warn("node disconnected; its attempts wait for it to come back", "node", nc.id, "err", e.err)
		r.batch.Event(r.exp.ID, "node.disconnected", 0, nc.id, reason)
		return
	}
	if nc == nil || nc.link != e.node {
		return // not admitted (yet), or a connection that was replaced
	}
	now := r.now()
	nc.heard = now
	switch {
	case e.beat != nil:
		r.core.Heartbeat(nc.id, now)
		nc.load = plausibleLoad(e.beat.Load)
		r.resident(nc, e.beat.Resident)
		r.headBeat(nc, e.beat.Cluster)
		if e.beat.Draining {
			r.drain(nc)
		}
	case e.ended != nil && e.ended.Kind == protocol.EventStarted:
		if gd, ok := r.core.(*gridDecider); ok && nc.head {
			if j := r.jobs[e.ended.Job]; j != nil && j.runs[e.ended.Attempt] == nc.id {
				r.keptStarted(gd, nc, e.ended.Job, e.ended.Attempt, now) // also one being withdrawn: it runs on
			}
		}
	case e.ended != nil && e.ended.Kind == protocol.EventEnded:
		r.core.Heartbeat(nc.id, now)
		r.ended(nc, e.ended)
	}
}

// join admits a node that registered: a new node, or one that comes back
// on a new connection and resumes the attempts it still runs.
func (r *runState) join(n Node, j Joining) {
	reg := j.Register
	if reg.Version != protocol.Version {
		r.d.log.Warn("node refused: protocol version", "node", j.ID, "version", reg.Version, "want", protocol.Version)
		n.Shutdown(fmt.Sprintf("protocol version %d, the dispatcher speaks %d", reg.Version, protocol.Version))
		n.Close()
		return
	}
	if reg.Head && !j.Head {
		// Only a head the root started (its certificate says so) may
		// stand for a cluster: a head holds a queue as deep as it asks,
		// with no slow start, kept through a cut for HeadTimeout.
		r.d.log.Warn("node refused: it claims to be a cluster head, which the root did not start", "node", j.ID, "cluster", reg.Cluster)
		n.Shutdown("only a cluster head the root started may register as one")
		n.Close()
		return
	}
	id := j.ID
	if id != "" {
		// A proven identity is never renamed: whoever shows it again is
		// the same node, and no other node can come to bear its name.
		if old := r.nodes[id]; old != nil {
			if old.proven {
				r.resume(old, n, reg)
				return
			}
			r.d.log.Warn("node refused: its ID is the name of a node the root started", "node", id)
			n.Shutdown(fmt.Sprintf("node ID %s is taken by a node of the root's own cluster; enrol this node under another --name", id))
			n.Close()
			return
		}
	} else {
		base := cmp.Or(reg.Name, "node")
		id = base
		for i := 2; r.nodes[id] != nil; i++ {
			id = fmt.Sprintf("%s-%d", base, i)
		}
	}
	nc := &nodeConn{id: id, link: n, trusted: j.Trusted, resumable: j.Resumable, proven: j.ID != "", speed: 1,
		cpus: clampInt(reg.CPUs, 1, maxCPUs), memory: max(reg.Memory, 0), head: reg.Head, cluster: reg.Cluster, heard: r.now(),
		end: r.endOf(reg)}
	if j.Trusted && reg.Speed > 0 {
		nc.speed = reg.Speed
	}
	limit := clampInt(reg.JobLimit, 0, maxCPUs)
	if reg.Head {
		// A head holds a queue as deep as it asks for (its cluster's
		// slots and what rides out a cut), and says so as it learns.
		limit = clampInt(reg.JobLimit, 1, maxHeadDepth)
	} else if !j.Trusted {
		// Slow start: a node the root did not start gets a few jobs at
		// first and more as it finishes them, up to what it claims, so
		// a node that takes jobs and sits on them holds few.
		nc.claimed = cmp.Or(limit, nc.cpus)
		limit = min(nc.claimed, slowStart)
	}
	nc.limit = limit
	// Attempts of an earlier connection the dispatcher no longer counts on
	// (given up, or of a root that ran before this one): their ends are
	// taken, and they are cancelled below; except, from a head, those a
	// root that stopped had started there, which it takes back as running.
	adopted := r.adoptable(id, reg)
	for _, a := range reg.Running {
		key := attemptKey{a.Job, a.Attempt}
		if lj := adopted[key]; lj != nil {
			n.Resume(a.Job, a.Attempt, r.access(a.Job, lj))
			continue
		}
		n.Resume(a.Job, a.Attempt, nil)
	}
	if err := n.Welcome(r.welcome(id), r.nodestart); err != nil {
		n.Close()
		return
	}
	r.nodes[id], r.links[n] = nc, nc
	r.core.AddNode(r.schedNode(nc), r.now())
	r.adopt(nc, adopted, reg.Running)
	if reg.Head {
		delete(r.awaiting, reg.Cluster)
	}
	r.headJoined(nc)
	detail := fmt.Sprintf("%d CPUs, speed %g, job limit %d", nc.cpus, nc.speed, limit)
	r.batch.Event(r.exp.ID, "node.joined", 0, id, detail)
	r.d.log.Info("node joined", "node", id, "cpus", nc.cpus, "job_limit", limit)
	r.prog.Nodes = len(r.nodes)
	r.afterApply = append(r.afterApply, func() {
		if nc.link == n {
			for _, a := range reg.Running {
				if adopted[attemptKey{a.Job, a.Attempt}] == nil {
					n.Cancel(a.Job, a.Attempt)
				}
			}
		}
	})
}

// maxCPUs bounds the CPUs and job limit a node may claim.
const maxCPUs = 4096

// slowStart is the job limit a node the root did not start begins with;
// each job it finishes raises it by two, up to what it claims.
const slowStart = 4

// schedNode is the node as the core sees it.
func (r *runState) schedNode(nc *nodeConn) sched.Node {
	n := sched.Node{ID: nc.id, Cluster: nc.cluster, CPUs: nc.cpus, Speed: nc.speed, Limit: nc.limit, Memory: nc.memory, End: nc.end}
	if _, ok := r.core.(*gridDecider); ok {
		n.Limit = cmp.Or(nc.status.Slots, nc.cpus) // the allocator sizes the queue
	}
	return n
}

// grow raises a slow-starting node's job limit after a job it finished.
func (r *runState) grow(nc *nodeConn) {
	if nc.trusted || nc.limit >= nc.claimed {
		return
	}
	nc.limit = min(nc.limit+2, nc.claimed)
	r.core.AddNode(r.schedNode(nc), r.now())
}

func clampInt(v, lo, hi int) int { return min(max(v, lo), hi) }

// welcome is what a node admitted as id is told.
func (r *runState) welcome(id string) protocol.Welcome {
	p := r.d.cfg.Plan
	return protocol.Welcome{Node: id, Experiment: r.exp.ID, PlanName: p.File, PlanText: p.Source,
		Dialect: p.Dialect.String(), Names: r.names(), Heartbeat: r.d.cfg.Heartbeat}
}

// resume takes back a node that reconnected: the attempts it still runs
// go on, those it no longer knows of are lost (their start or their end
// was lost with the connection: they run again), those the dispatcher
// gave up are cancelled, and the starts decided meanwhile are sent.
func (r *runState) resume(nc *nodeConn, n Node, reg protocol.Register) {
	if nc.link != nil {
		delete(r.links, nc.link)
		nc.link.Close() // an older connection that has not noticed yet
	}
	// Grants first: the node may report an attempt's end as soon as it
	// is welcomed.
	var unwanted, rewithdraw []protocol.AttemptRef
	has := map[attemptKey]bool{}
	now := r.now()
	gd, grid := r.core.(*gridDecider)
	for _, a := range reg.Running {
		has[attemptKey{a.Job, a.Attempt}] = true
		if j := r.jobs[a.Job]; j != nil && j.runs[a.Attempt] == nc.id {
			n.Resume(a.Job, a.Attempt, r.access(a.Job, j))
			if grid && gd.withdrawing(a.Job, a.Attempt) && !a.Started {
				// Asked back before the cut: asked again. One it began
				// or ended says so again (its start, its end).
				rewithdraw = append(rewithdraw, a)
			}
		} else {
			// Given up meanwhile, or being stopped: no grants, but its
			// end is taken; it is cancelled once what gave it up is in
			// the store.
			n.Resume(a.Job, a.Attempt, nil)
			unwanted = append(unwanted, a)
		}
	}
	if err := n.Welcome(r.welcome(nc.id), r.nodestart); err != nil {
		n.Close()
		nc.link = nil
		return
	}
	nc.link, r.links[n] = n, nc
	r.core.Heartbeat(nc.id, now)
	r.resumeEnd(nc, reg)
	r.afterApply = append(r.afterApply, func() {
		if nc.link == n {
			for _, a := range unwanted {
				n.Cancel(a.Job, a.Attempt)
			}
			for _, a := range rewithdraw {
				n.Withdraw(a.Job, a.Attempt)
			}
		}
	})
	for _, s := range nc.waiting {
		key := attemptKey{s.Job, s.Attempt}
		has[key] = true
		n.Start(s, nc.access[key])
	}
	nc.waiting, nc.access = nil, nil
	for idx, j := range r.jobs {
		for a, at := range j.runs {
			if at == nc.id && !has[attemptKey{idx, a}] {
				delete(j.runs, a)
				if grid && gd.withdrawing(idx, a) {
					// Asked back, and no longer there: it never ran there.
					r.confirmWithdrawn(nc, j, store.Attempt{Job: idx, N: a, Node: nc.id, Ended: now},
						&protocol.Result{Cancelled: true})
					continue
				}
				r.endAttempt(store.Attempt{Job: idx, N: a, Node: nc.id, State: store.AttemptLost, Ended: now,
					Error: "node " + nc.id + " came back without the attempt (lost with the connection)"}, len(j.runs) == 0)
				r.core.AttemptLost(idx, a, "lost with the connection", now)
			}
		}
	}
	for key, s := range r.stopping {
		if s.node == nc.id && !has[key] {
			delete(r.stopping, key)
			if grid {
				gd.Stopped(key.job, key.attempt, now) // it came back without it
			}
		}
	}
	if grid && nc.head {
		gd.g.SetLink(nc.cluster, sched.Connected, now)
	}
	r.batch.Event(r.exp.ID, "node.resumed", 0, nc.id, fmt.Sprintf("%d attempts still running", len(reg.Running)))
	r.d.log.Info("node reconnected", "node", nc.id, "running", len(reg.Running))
}

// resident passes a node's report of its attempts' memory to the core:
// only for attempts the node runs, and never more than it has.
func (r *runState) resident(nc *nodeConn, rs []protocol.Resident) {
	clear(nc.residents)
	for _, x := range rs {
		if j := r.jobs[x.Job]; j != nil && j.runs[x.Attempt] == nc.id {
			b := r.plausibleMemory(nc, x.Bytes)
			if nc.residents == nil {
				nc.residents = map[attemptKey]int64{}
			}
			nc.residents[attemptKey{x.Job, x.Attempt}] = b
			r.core.Resident(x.Job, x.Attempt, b)
			if nc.trusted {
				r.located(x) // a process group means something only on this machine
			}
		}
	}
}

// plausibleLoad bounds a node's report of its load average: not a
// number, or below 0, is 0; at most maxLoad.
func plausibleLoad(l float64) float64 {
	if !(l > 0) {
		return 0
	}
	return min(l, maxLoad)
}

// maxLoad bounds the load average a node may report.
const maxLoad = 1 << 20

// plausibleMemory bounds a node's report of memory by what it has.
func (r *runState) plausibleMemory(nc *nodeConn, b int64) int64 {
	if nc.memory > 0 {
		return min(max(b, 0), 2*nc.memory)
	}
	return min(max(b, 0), 1<<50)
}

// ended records how an attempt ended.
func (r *runState) ended(nc *nodeConn, ev *protocol.Event) {
	if ev.Result == nil {
		return
	}
	node := nc.id
	res := ev.Result
	now := r.now()
	key := attemptKey{ev.Job, ev.Attempt}
	r.prog.StagedIn += max(res.StagedIn, 0)
	r.prog.StagedOut += max(res.StagedOut, 0)
	said := res.Wall // what the node says, before the root's measure replaces it
	r.measure(nc, key, res, now)
	res.StagingIn, res.StagingOut = boundStaging(res.StagingIn, res.StagingOut, res.Wall)
	a := store.Attempt{Job: ev.Job, N: ev.Attempt, Node: node, Ended: now, Exit: res.Exit,
		Signal: res.Signal, Wall: res.Wall, CPU: res.CPU, MaxRSS: res.MaxRSS, Error: res.Error,
		Stdout: res.Stdout, Stderr: res.Stderr, Ignored: ignoredOf(res), StagedIn: res.StagedIn, StagedOut: res.StagedOut,
		StagingIn: res.StagingIn, StagingOut: res.StagingOut}
	r.recorded(nc, ev.Job, ev.Attempt) // a head may forget it once this batch is in
	r.placed(nc, &a, res.Node)
	if s, ok := r.stopping[key]; ok && s.node == node {
		// A cancelled attempt has stopped: record what it used.
		delete(r.stopping, key)
		if gd, ok := r.core.(*gridDecider); ok {
			gd.Stopped(ev.Job, ev.Attempt, now) // one withdrawn may go out again
		}
		a.State, a.Error = s.state, s.reason
		r.batch.EndAttempt(r.exp.ID, a)
		r.prog.Changes++
		return
	}
	j := r.jobs[ev.Job]
	if j == nil || j.runs[ev.Attempt] != node {
		r.d.log.Warn("report refused: the node does not run that attempt", "node", node, "job", ev.Job, "attempt", ev.Attempt)
		return // a stale report: the attempt was already given up
	}
	delete(j.runs, ev.Attempt)
	delete(r.began, key)
	if r.confirmWithdrawn(nc, j, a, res) {
		return // the head took it out of its queue: the job goes out again
	}
	if res.Cancelled && !res.OK && nc.head {
		// A head stopped it because a root cancelled it, but this root
		// does not await that (it was started again since, and took the
		// attempt back): the job was not at fault; it runs again.
		a.State = store.AttemptCancelled
		r.endAttempt(a, len(j.runs) == 0)
		r.core.AttemptLost(ev.Job, ev.Attempt, "cancelled by an earlier root", now)
		return
	}
	if !res.OK && !res.System && len(j.runs) > 0 {
		// One of two attempts failed: the other may still succeed (the
		// duplicate's node may lack what the job needs). Only this
		// attempt ends.
		a.State = store.AttemptFailed
		r.batch.EndAttempt(r.exp.ID, a)
		r.prog.Changes++
		r.core.AttemptFailed(ev.Job, ev.Attempt, a.Ended)
		return
	}
	if !res.System {
		r.settled(ev.Job, j, a.Ended)
	}
	switch {
	case res.OK:
		r.worked(nc, res.Wall, said)
		r.learnSpeed(nc, j, res)
		r.grow(nc)
		a.State = store.AttemptOK
		r.batch.Finish(r.exp.ID, a, store.Done)
		r.prog.Changes++
		r.core.Finished(ev.Job, ev.Attempt, usage(res, nc), a.Ended)
		delete(r.jobs, ev.Job)
		r.prog.Done++
		r.clusterEnded(nc, true)
		res.Node = node
		r.fedEnded(ev.Job, res)
	case res.System:
		a.State = store.AttemptLost
		if res.Side == protocol.SideRoot {
			// The root's side failed (its disk, its descriptors): no
			// fault of the node's. When it is the state directory that
			// cannot be written, the run stops; the job is not charged.
			if err := r.probeState(); err != nil {
				r.stateBroke = err
				return
			}
		}
		r.endAttempt(a, len(j.runs) == 0) // else its duplicate runs on
		switch res.Side {
		case protocol.SideRoot:
			r.core.AttemptLost(ev.Job, ev.Attempt, res.Error, a.Ended)
		case protocol.SideNode:
			r.core.NodeFailure(ev.Job, ev.Attempt, res.Error, a.Ended)
		default:
			r.core.SystemFailure(ev.Job, ev.Attempt, res.Error, a.Ended)
		}
	default:
		a.State = store.AttemptFailed
		r.batch.Finish(r.exp.ID, a, store.Failed)
		r.prog.Changes++
		r.core.Finished(ev.Job, ev.Attempt, usage(res, nc), a.Ended)
		delete(r.jobs, ev.Job)
		r.prog.Failed++
		r.clusterEnded(nc, false)
		r.prog.LastError = fmt.Sprintf("job %d: %s", ev.Job, res.Error)
		res.Node = node
		r.fedEnded(ev.Job, res)
	}
}

// boundStaging bounds what a node says its copies took: never below
// 0, and within the attempt's wall time when that is known.
func boundStaging(in, out, wall time.Duration) (time.Duration, time.Duration) {
	in, out = max(in, 0), max(out, 0)
	if wall > 0 {
		in = min(in, wall)
		out = min(out, wall-in)
	}
	return in, out
}

// worked counts the work of an attempt that succeeded on nc: its wall
// time on a CPU of speed 1. A head's attempts count speed 1 (it stands
// for nodes of many speeds), and the wall time it says its node took,
// within what the root saw (which includes the attempt's wait in the
// head's queue).
func (r *runState) worked(nc *nodeConn, wall, said time.Duration) {
	speed := nc.speed
	if nc.head {
		speed = 1
		wall = min(max(said, 0), wall)
	}
	w := max(wall, 0).Seconds() * speed
	r.prog.Work += w
	r.prog.Worked++
	r.prog.Longest = max(r.prog.Longest, w)
}

// learnSpeed updates the speed of a node whose claims are not believed
// from an attempt it finished: the work the core expects of the job
// over the wall time the root observed (an average over its attempts,
// each weighing 30%), within 1/20 and 20 times the reference.
func (r *runState) learnSpeed(nc *nodeConn, j *liveJob, res *protocol.Result) {
	if nc.trusted || nc.head || res.Wall <= 0 {
		return // a head's attempts wait in its queue: their wall time is no speed
	}
	work, ok := r.core.Model().Work(params(j.values))
	if !ok || work <= 0 {
		return
	}
	sample := min(max(work/res.Wall.Seconds(), 0.05), 20)
	nc.speed = 0.7*nc.speed + 0.3*sample
	r.core.SetSpeed(nc.id, nc.speed)
}

// measure replaces what a node that the root did not start says of an
// attempt by what the root can check: the wall time the root observed
// (from the start it sent to the end it received), CPU time no more than
// that wall time on every CPU the node has, memory no more than twice
// its RAM. A node cannot make itself look faster, or its jobs bigger,
// than the root saw.
func (r *runState) measure(nc *nodeConn, key attemptKey, res *protocol.Result, now time.Time) {
	began, ok := r.began[key]
	if nc.trusted || !ok {
		return
	}
	wall := max(now.Sub(began), 0)
	res.Wall = wall
	res.CPU = min(max(res.CPU, 0), wall*time.Duration(nc.cpus))
	res.MaxRSS = r.plausibleMemory(nc, res.MaxRSS)
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
		Error: r.cancelReason(c)},
		len(j.runs) == 0)
	return r.nodes[c.Node] != nil
}

// stopAttempt records an attempt as stopped (its job pending again
// when requeue is set) and waits for its node to report it stopped.
func (r *runState) stopAttempt(a store.Attempt, requeue bool) {
	r.endAttempt(a, requeue)
	r.batch.Event(r.exp.ID, "attempt."+a.State, a.Job, a.Node, a.Error)
	if r.nodes[a.Node] != nil {
		r.stopping[attemptKey{a.Job, a.N}] = stopping{node: a.Node, state: a.State, reason: a.Error, since: r.now()}
	}
}

// endAttempt records how an attempt ended; when requeue is set it was
// the job's last running attempt, and the job waits to run again.
func (r *runState) endAttempt(a store.Attempt, requeue bool) {
	delete(r.began, attemptKey{a.Job, a.N})
	r.prog.Changes++
	if requeue {
		r.batch.Finish(r.exp.ID, a, store.Pending)
	} else {
		r.batch.EndAttempt(r.exp.ID, a)
	}
}

// usage is what an attempt used, for the core to learn from.
func usage(res *protocol.Result, nc *nodeConn) sched.Usage {
	return sched.Usage{Work: res.CPU.Seconds() * nc.speed, Memory: res.MaxRSS, Wall: res.Wall}
}

// lost drops a node: its attempts are recorded as lost, and the core
// queues their jobs again (or fails them when out of retries).
func (r *runState) lost(node, reason string) {
	nc := r.nodes[node]
	if nc == nil {
		return
	}
	delete(r.nodes, node)
	if nc.link != nil {
		delete(r.links, nc.link)
		nc.link.Close()
	}
	kind := "node.lost"
	if nc.shut {
		kind, reason = "node.left", "node "+node+" drained and was shut down"
		r.d.log.Info("node left: it drained and was shut down", "node", node)
	} else {
		r.d.log.Warn("node lost", "node", node, "reason", reason)
	}
	now := r.now()
	for idx, j := range r.jobs {
		for n, at := range j.runs {
			if mg := j.moved[n]; at != node && mg != nil && mg.to == node && r.nodes[at] != nil {
				// Moved there: the core takes it for lost with the node;
				// its processes, kept by the node that started them, stop.
				delete(j.runs, n)
				r.stopAttempt(store.Attempt{Job: idx, N: n, Node: at, State: store.AttemptLost, Ended: now,
					Error: reason + " (the attempt had moved there)"}, len(j.runs) == 0)
				r.afterApply = append(r.afterApply, func() { r.tell(r.nodes[at], func(l Node) { l.Cancel(idx, n) }) })
				continue
			}
			if at != node {
				continue
			}
			delete(j.runs, n)
			delete(r.began, attemptKey{idx, n})
			a := store.Attempt{Job: idx, N: n, Node: node, State: store.AttemptLost, Ended: now, Error: reason}
			r.endAttempt(a, len(j.runs) == 0)
		}
	}
	for k, s := range r.stopping {
		if s.node == node {
			delete(r.stopping, k) // recorded as cancelled already
		}
	}
	r.batch.Event(r.exp.ID, kind, 0, node, reason)
	r.core.RemoveNode(node, reason, now)
	delete(r.drains, node)
	r.prog.Nodes = len(r.nodes)
	r.prog.OutOfService = r.core.NodesOutOfService()
	delete(r.outOfService, node)
}

// tell calls f with the node's connection, when it has one.
func (r *runState) tell(nc *nodeConn, f func(Node)) {
	if nc != nil && nc.link != nil {
		f(nc.link)
	}
}

// interrupt records the running attempts as interrupted, so the next run
// starts them again, and tells the nodes to stop.
func (r *runState) interrupt() {
	now := r.now()
	for idx, j := range r.jobs {
		for n, node := range j.runs {
			r.batch.Finish(r.exp.ID, store.Attempt{Job: idx, N: n, Node: node,
				State: store.AttemptInterrupted, Ended: now, Error: "the run was stopped"}, store.Pending)
			r.prog.Changes++
		}
	}
	r.d.cfg.Store.Apply(context.WithoutCancel(r.ctx), &r.batch)
	for _, nc := range r.nodes {
		r.tell(nc, func(l Node) { l.Shutdown("the run was interrupted") })
	}
}

// report calls the progress callback, at most every 100 ms unless final.
func (r *runState) report(final bool) {
	now := r.now()
	r.saveClusters(now, final) // a grid's clusters, for orrery status
	if r.d.cfg.Progress == nil || !final && now.Sub(r.lastProgress) < 100*time.Millisecond {
		return
	}
	r.lastProgress = now
	r.prog.Running = r.core.Running()
	r.prog.RunningJobs = 0
	for _, j := range r.jobs {
		if len(j.runs) > 0 {
			r.prog.RunningJobs++
		}
	}
	r.prog.Clusters = r.clusterProgress(now)
	r.prog.Capacity, r.prog.Fastest = r.capacity()
	if r.d.cfg.PerNode && (final || now.Sub(r.lastPerNode) >= time.Second) {
		r.lastPerNode = now
		r.prog.PerNode = r.nodeProgress()
	}
	r.d.cfg.Progress(r.prog)
}

// counts is what a node counts for: its CPUs and their speed (a
// cluster head: its cluster's CPUs in service as it last said, or what
// it registered with before its first heartbeat, at speed 1).
func (nc *nodeConn) counts() (int, float64) {
	if !nc.head {
		return nc.cpus, nc.speed
	}
	if nc.beaten {
		return nc.status.CPUs, 1
	}
	return nc.cpus, 1
}

// capacity is the CPUs connected and in service now (or the node's job
// limit, when larger), each times its speed, and the fastest speed among
// them.
func (r *runState) capacity() (total, fastest float64) {
	for id, nc := range r.nodes {
		if nc.link == nil || !r.core.InService(id) {
			continue
		}
		cpus, speed := nc.counts()
		if cpus > 0 {
			// A node that runs more jobs at once than it has CPUs
			// counts its slots: each job's wall time then stands for
			// its share of a CPU, and the efficiency stays within 1.
			if l := r.core.Limit(id); l > cpus && l < noLimit {
				cpus = l
			}
			total += float64(cpus) * speed
			fastest = max(fastest, speed)
		}
	}
	return total, fastest
}

// nodeProgress is each connected node, by name: what it is, and its
// attempts running.
func (r *runState) nodeProgress() []NodeProgress {
	running := map[string]int{}
	resident := map[string]int64{}
	for idx, j := range r.jobs {
		for a, node := range j.runs {
			running[node]++
			if nc := r.nodes[node]; nc != nil {
				if b, ok := nc.residents[attemptKey{idx, a}]; ok {
					resident[node] = min(resident[node]+b, maxResident)
				}
			}
		}
	}
	out := make([]NodeProgress, 0, len(r.nodes))
	for id, nc := range r.nodes {
		cpus, speed := nc.counts()
		limit := r.core.Limit(id)
		if limit >= noLimit {
			limit = -1
		}
		_, black := r.outOfService[id]
		p := NodeProgress{Name: id, Cluster: nc.cluster, Running: running[id], CPUs: cpus, Speed: speed,
			Memory: nc.memory, Limit: limit, Load: nc.load, Resident: resident[id],
			Out: !r.core.InService(id) && (!nc.draining || black), Draining: nc.draining, Started: nc.started}
		if p.Out {
			o := r.outOfService[id]
			p.Reason, p.OutSince = o.reason, o.since
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b NodeProgress) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// noLimit is the job limit the core gives a node under a policy that
// queues nothing: as good as none.
const noLimit = 1 << 30

// maxResident bounds the resident bytes summed over one node's attempts.
const maxResident = 1 << 60
