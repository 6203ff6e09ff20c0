package dispatch

import (
	"fmt"
	"slices"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// decider is what decides for the dispatch loop: a sched.Core over the
// nodes, or, for a grid's root under a policy that shares by rate
// (mec, orrery), gridDecider over sched.Grid, whose clusters are the
// heads.
type decider interface {
	AddNode(n sched.Node, now time.Time)
	Adopt(j sched.Job, attempt int, node string, now time.Time) bool
	AttemptFailed(index int64, attempt int, now time.Time)
	AttemptLost(index int64, attempt int, reason string, now time.Time)
	Close()
	Enqueue(j sched.Job)
	Finished(index int64, attempt int, u sched.Usage, now time.Time)
	Heartbeat(id string, now time.Time)
	InService(id string) bool
	Limit(id string) int
	Model() *sched.Model
	NodeFailure(index int64, attempt int, reason string, now time.Time)
	NodesInService() int
	NodesOutOfService() int
	Ready(now time.Time) []sched.Action
	RemoveNode(id, reason string, now time.Time)
	Resident(index int64, attempt int, bytes int64)
	Running() int
	SetSpeed(id string, speed float64)
	SystemFailure(index int64, attempt int, reason string, now time.Time)
	Tick(now time.Time) []string
	Wanted() int
	Withdraw(index int64, now time.Time) bool
}

var _ decider = (*sched.Core)(nil)
var _ decider = (*gridDecider)(nil)

// gridDecider drives sched.Grid for a grid's root: each head is a node
// of the root's that stands for its cluster. Grid's Send and Duplicate
// become starts on the cluster's head, Stop a cancel, and Withdraw a
// withdraw (takeWithdraws): the attempt stays the head's, running as
// far as the root records, until the head answers either that it took
// it back (its end "cancelled": Withdrawn, and the job goes out again)
// or that it had begun it (Started: it runs on there). What heads
// report goes back to Grid by cluster.
type gridDecider struct {
	g       *sched.Grid
	timeout time.Duration // a head silent this long is lost
	nodes   map[string]*gridHead
	byName  map[string]string       // cluster → its head's node ID
	where   map[attemptKey]string   // each attempt out → its cluster
	pulled  map[attemptKey]struct{} // attempts being withdrawn
	// withdraws are the withdraws Ready decided, for act to carry out.
	withdraws []sched.Cancel
}

type gridHead struct {
	cluster  string
	lastSeen time.Time
	slots    int // the jobs its cluster runs at once, as it last said
}

func newGridDecider(cfg sched.GridConfig, timeout time.Duration) *gridDecider {
	return &gridDecider{g: sched.NewGrid(cfg), timeout: timeout, nodes: map[string]*gridHead{},
		byName: map[string]string{}, where: map[attemptKey]string{}, pulled: map[attemptKey]struct{}{}}
}

// AddNode adds a head, or updates what it says of its cluster: Limit is
// its slots (jobs at once) under a grid.
func (d *gridDecider) AddNode(n sched.Node, now time.Time) {
	h := d.nodes[n.ID]
	if h == nil {
		h = &gridHead{cluster: n.Cluster}
		d.nodes[n.ID] = h
		d.byName[n.Cluster] = n.ID
	}
	h.lastSeen, h.slots = now, max(n.Limit, 1)
	d.g.AddCluster(sched.GridCluster{Name: n.Cluster, CPUs: n.CPUs, Power: float64(n.CPUs) * max(n.Speed, 0),
		Slots: max(n.Limit, 1)}, now)
}

func (d *gridDecider) Adopt(j sched.Job, attempt int, node string, now time.Time) bool {
	h := d.nodes[node]
	if h == nil || !d.g.Adopt(h.cluster, j, attempt, now) {
		return false
	}
	d.where[attemptKey{j.Index, attempt}] = h.cluster
	return true
}

// Started says the head began an attempt on one of its nodes; it
// reports whether the root was withdrawing it, which it no longer does
// (Grid keeps the attempt there).
func (d *gridDecider) Started(index int64, attempt int, now time.Time) bool {
	key := attemptKey{index, attempt}
	c, ok := d.where[key]
	if !ok {
		return false
	}
	_, pulled := d.pulled[key]
	delete(d.pulled, key)
	d.g.Started(c, index, attempt, now)
	return pulled
}

// takeWithdraws returns the withdraws decided since the last call.
func (d *gridDecider) takeWithdraws() []sched.Cancel {
	w := d.withdraws
	d.withdraws = nil
	return w
}

// Stopped says an attempt the root cancelled has stopped on its head:
// one withdrawn may go out again.
func (d *gridDecider) Stopped(index int64, attempt int, now time.Time) {
	key := attemptKey{index, attempt}
	c, ok := d.where[key]
	if !ok {
		return
	}
	delete(d.where, key)
	if _, ok := d.pulled[key]; ok {
		delete(d.pulled, key)
		d.g.Withdrawn(c, index, attempt, now)
	}
}

// withdrawing reports whether the root cancelled the attempt to send it
// elsewhere (not because it lost to another attempt).
func (d *gridDecider) withdrawing(index int64, attempt int) bool {
	_, ok := d.pulled[attemptKey{index, attempt}]
	return ok
}

// out takes an attempt's cluster, forgetting it.
func (d *gridDecider) out(index int64, attempt int) (string, bool) {
	key := attemptKey{index, attempt}
	c, ok := d.where[key]
	delete(d.where, key)
	delete(d.pulled, key)
	return c, ok
}

func (d *gridDecider) AttemptFailed(index int64, attempt int, now time.Time) {
	d.SystemFailure(index, attempt, "the attempt failed", now)
}

func (d *gridDecider) AttemptLost(index int64, attempt int, reason string, now time.Time) {
	d.SystemFailure(index, attempt, reason, now)
}

func (d *gridDecider) NodeFailure(index int64, attempt int, reason string, now time.Time) {
	d.SystemFailure(index, attempt, reason, now)
}

func (d *gridDecider) SystemFailure(index int64, attempt int, reason string, now time.Time) {
	if c, ok := d.out(index, attempt); ok {
		d.g.SystemFailure(c, index, attempt, reason, now)
	}
}

func (d *gridDecider) Finished(index int64, attempt int, u sched.Usage, now time.Time) {
	if c, ok := d.out(index, attempt); ok {
		d.g.Finished(c, index, attempt, u, now)
	}
}

func (d *gridDecider) Close()              { d.g.Close() }
func (d *gridDecider) Enqueue(j sched.Job) { d.g.Enqueue(j) }
func (d *gridDecider) Model() *sched.Model { return d.g.Model() }
func (d *gridDecider) Running() int        { return d.g.Running() }
func (d *gridDecider) Wanted() int         { return d.g.Wanted() }

func (d *gridDecider) Heartbeat(id string, now time.Time) {
	if h := d.nodes[id]; h != nil {
		h.lastSeen = now
	}
}

func (d *gridDecider) InService(id string) bool { return d.nodes[id] != nil }
func (d *gridDecider) NodesInService() int      { return len(d.nodes) }

// Limit is a head's slots: the jobs its cluster runs at once (it may
// hold more, queued); 0 for no head.
func (d *gridDecider) Limit(id string) int {
	if h := d.nodes[id]; h != nil {
		return h.slots
	}
	return 0
}

func (d *gridDecider) NodesOutOfService() int { return 0 }

func (d *gridDecider) Resident(int64, int, int64)             {}
func (d *gridDecider) SetSpeed(string, float64)               {}
func (d *gridDecider) Withdraw(index int64, _ time.Time) bool { return d.g.Forget(index) }

func (d *gridDecider) RemoveNode(id, reason string, now time.Time) {
	h := d.nodes[id]
	if h == nil {
		return
	}
	delete(d.nodes, id)
	delete(d.byName, h.cluster)
	for k, c := range d.where {
		if c == h.cluster {
			delete(d.where, k)
			delete(d.pulled, k)
		}
	}
	d.g.RemoveCluster(h.cluster, reason, now)
}

// Tick returns the heads silent for longer than the timeout.
func (d *gridDecider) Tick(now time.Time) []string {
	var out []string
	for id, h := range d.nodes {
		if now.Sub(h.lastSeen) > d.timeout {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

// Ready carries Grid's decisions over into the dispatch loop's actions.
func (d *gridDecider) Ready(now time.Time) []sched.Action {
	var out []sched.Action
	for _, a := range d.g.Tick(now) {
		switch a := a.(type) {
		case sched.Send:
			out = append(out, d.start(a.Job, a.Attempt, a.Cluster))
		case sched.Duplicate:
			out = append(out, d.start(a.Job, a.Attempt, a.Cluster))
		case sched.Withdraw:
			d.pulled[attemptKey{a.Job, a.Attempt}] = struct{}{}
			d.withdraws = append(d.withdraws, sched.Cancel{Job: a.Job, Attempt: a.Attempt, Node: d.byName[a.Cluster]})
		case sched.Stop:
			out = append(out, sched.Cancel{Job: a.Job, Attempt: a.Attempt, Node: d.byName[a.Cluster]})
		case sched.Fail:
			out = append(out, a)
		}
	}
	return out
}

// cancelReason says why the core stopped a running attempt.
func (r *runState) cancelReason(c sched.Cancel) string {
	if _, ok := r.core.(*gridDecider); ok {
		return "stopped: another attempt of the job ended first"
	}
	return fmt.Sprintf("stopped: node %s had more resident memory than RAM; the job starts again where it fits", c.Node)
}

// withdrawnReason is how an attempt a head took out of its queue when
// asked (a withdraw) is recorded.
func (d *gridDecider) withdrawnReason(node string) string {
	return fmt.Sprintf("withdrawn from cluster %s's queue, to go where it is expected to finish sooner", d.nodes[node].clusterName())
}

// withdrawAttempt records a withdraw Ready decided, which act sends
// once its batch is applied: the attempt stays recorded running until
// the head answers (see gridDecider). It reports whether the head must
// be told.
func (r *runState) withdrawAttempt(w sched.Cancel) bool {
	j := r.jobs[w.Job]
	if j == nil || j.runs[w.Attempt] != w.Node || r.nodes[w.Node] == nil {
		return false // it ended meanwhile
	}
	r.batch.Event(r.exp.ID, "attempt.withdrawing", w.Job, w.Node,
		fmt.Sprintf("attempt %d asked back from the cluster's queue, to go where it is expected to finish sooner", w.Attempt))
	return true
}

// confirmWithdrawn takes a head's end "cancelled" of an attempt the root
// was withdrawing: the head took it out of its queue, so it is recorded
// cancelled now and its job goes out again. It reports whether the end
// was that.
func (r *runState) confirmWithdrawn(nc *nodeConn, j *liveJob, a store.Attempt, res *protocol.Result) bool {
	gd, ok := r.core.(*gridDecider)
	if !ok || !nc.head || !res.Cancelled || res.OK || !gd.withdrawing(a.Job, a.N) {
		return false
	}
	a.State, a.Error = store.AttemptCancelled, gd.withdrawnReason(nc.id)
	r.endAttempt(a, len(j.runs) == 0)
	r.batch.Event(r.exp.ID, "attempt.withdrawn", a.Job, nc.id, a.Error)
	gd.Stopped(a.Job, a.N, a.Ended) // Withdrawn: the job goes out again
	return true
}

// keptStarted takes a head's word that an attempt the root was
// withdrawing had left its queue for a node first: it runs on there.
func (r *runState) keptStarted(gd *gridDecider, nc *nodeConn, job int64, attempt int, now time.Time) {
	if gd.Started(job, attempt, now) {
		r.batch.Event(r.exp.ID, "attempt.kept", job, nc.id,
			fmt.Sprintf("attempt %d had started on cluster %s before the withdraw reached it: it runs on there", attempt, nc.cluster))
	}
}

// clusterName is the head's cluster ("" for none).
func (h *gridHead) clusterName() string {
	if h == nil {
		return ""
	}
	return h.cluster
}

func (d *gridDecider) start(job int64, attempt int, cluster string) sched.Action {
	d.where[attemptKey{job, attempt}] = cluster
	return sched.Start{Job: job, Attempt: attempt, Node: d.byName[cluster]}
}
