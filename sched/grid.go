package sched

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"time"
)

// The grid: the coordinator's decisions.
//
// A grid of clusters runs on two levels. Each cluster has a dispatcher
// of its own (its head) whose Core places the jobs it is given on the
// cluster's nodes. Above them the coordinator (the root) decides which
// cluster gets which job: that is Grid, the Multi EnFuzion Client's
// allocator. Like Core it is pure: events and the time go in, actions
// come out, and the coordinator carries them out over the wide-area
// links (the simulator, package sim, drives the same code).
//
// The rules:
//
//   - Each cluster's queue is sized by its measured job rate: it may
//     hold (running and waiting) its slots (the jobs it runs at once)
//     plus what it runs in GridConfig.RideOut at its rate, so that its
//     nodes keep working through a cut of its link that long, within
//     its own limit; at least one job waits there, so a slot that frees
//     need not wait for the coordinator. A cluster's rate is measured
//     (jobs finished since its first start) once it has finished as
//     many jobs as its slots; until then it is its CPU power times the
//     rate per unit of power of the clusters that have one (see
//     jobRates). Until one has, one job waits beyond the slots.
//   - Jobs go, in the coordinator's order (first in, first out; longest
//     expected first under a policy that learns), to the cluster with
//     room that is expected to finish soonest. A slot takes slots ÷ rate
//     seconds a job, and a running job is counted for the share of it
//     not yet done; a cluster that shares its CPUs between more jobs
//     than it has CPUs is done when it has run what it holds at its
//     rate, one that runs a job per CPU when the slot each waiting job
//     waits for has run it.
//   - Under a policy that learns, once the sweep is closed and its model
//     predicts, a job goes to a cluster with room only if it is
//     expected to be done there by the horizon (the work left over the
//     grid's power); one that another cluster would finish by then
//     waits for room there, and the clusters with room take shorter
//     jobs (fillBy).
//   - Near the end (the sweep is closed and fewer jobs wait than twice
//     the slots) no queue is deeper than the cluster's share: the jobs
//     left are planned one by one where each is expected to finish
//     soonest, and a job planned for a full cluster waits for a slot
//     there rather than go to one that would finish it later. A cluster
//     for which no job waits then is told so (Last).
//   - Under a policy that learns and handles stragglers (orrery), once
//     its model predicts, the end game is by expected work: once no
//     more jobs wait than three times the CPUs, the last jobs all go at
//     once, longest expected first, each to the cluster where it is
//     expected to finish soonest, up to three times its slots (or its
//     own limit), and every cluster is told (Last), so that its
//     dispatcher plans its end with every job it will get. A cluster is
//     expected to be done when its CPUs have shared the work it holds
//     (the work left of its running jobs, estimated from when they
//     started, and of its waiting ones), or when its fastest CPU has
//     run the longest of them; a pinned cluster (no moves) when the CPU
//     each job waits for has run it, at the cluster's mean speed.
//   - When nothing waits at the coordinator, a job still waiting in the
//     queue of the cluster expected to finish last is withdrawn and sent
//     to one with room that would finish it sooner (by more than the
//     move costs and a twentieth of the time left): Withdraw, then,
//     once the cluster confirms (Withdrawn), Send. A cluster that
//     started it meanwhile (Started) keeps it. A job is withdrawn at
//     most twice.
//   - Under orrery, with GridConfig.Duplicates, once every job is out a
//     running job is duplicated on a cluster with idle CPUs when it is
//     expected to finish there (at the cluster's mean speed) before it
//     finishes where it runs; the first attempt to finish wins and the
//     other is stopped (Stop).
//   - Once the sweep is closed and every job has gone out, each cluster
//     not told yet is told (Last): its dispatcher closes its own queue
//     and plans its end (Core.Close). A job may still come to it.
//   - A cluster whose link is cut keeps its queue and works on: nothing
//     is sent to it or withdrawn from it until it is connected again
//     (Stop is still decided; the coordinator delivers it then). A
//     cluster lost for good gives its jobs back: those that waited there
//     go out again first in line, those that ran there too but are
//     charged a retry. A system failure on a cluster sends the job
//     elsewhere when it can, charged a retry; past GridConfig.Retries
//     it fails (Fail).

// LinkState is the state of a cluster's link to the coordinator.
type LinkState int

const (
	// Connected: messages reach the cluster's dispatcher.
	Connected LinkState = iota
	// Cut: the link is down for now; the cluster works on its queue.
	Cut
	// Lost: the cluster is gone for good (RemoveCluster).
	Lost
)

// String returns "connected", "cut" or "lost".
func (s LinkState) String() string {
	switch s {
	case Connected:
		return "connected"
	case Cut:
		return "cut"
	case Lost:
		return "lost"
	}
	return fmt.Sprintf("LinkState(%d)", int(s))
}

// GridCluster is a cluster as its dispatcher describes it to the
// coordinator.
type GridCluster struct {
	Name string
	// CPUs is how many CPUs its nodes in service have.
	CPUs int
	// Power is the CPUs' speed summed (CPUs × speed; the simulator uses
	// GHz). 0: CPUs.
	Power float64
	// Fastest is the speed of its fastest CPU. 0: Power ÷ CPUs.
	Fastest float64
	// Slots is how many jobs it runs at once (its nodes' job limits
	// summed). 0: CPUs.
	Slots int
	// Limit is the most jobs it accepts to hold, running and waiting
	// (0: no limit of its own).
	Limit int
	// WANBandwidth (bytes/s) and WANLatency (s, one way) join the
	// coordinator to it: what sending a job there costs. 0: free.
	WANBandwidth, WANLatency float64
	// Pinned says its running jobs do not move between its nodes (no
	// process migration, no checkpoints): each job ends where it
	// starts, so the cluster does not share its work out among its CPUs
	// at the end.
	Pinned bool
}

// GridConfig sets up a Grid.
type GridConfig struct {
	Policy Policy
	// Retries is how many times a job is sent again after system
	// failures on clusters (or a cluster lost while it ran there)
	// before it fails. Default 3.
	Retries int
	// RideOut is how long a cut of a cluster's link its queue should
	// outlast at the cluster's job rate. 0: 60 s; negative: none.
	RideOut time.Duration
	// Duplicates says the coordinator can run a second attempt of a
	// running job on another cluster and stop the loser.
	Duplicates bool
	// Window is how many jobs the grid wants to see beyond what the
	// clusters have room for (Wanted), so it can order them and plan
	// the end (0: ten times the open clusters' CPUs, at least 1,000;
	// -1: none). A job among the longest takes some ten times the mean;
	// ten jobs a CPU ahead, it is seen while there is time to start it
	// early enough.
	Window int
	// BalanceEvery is how often, at most, the grid looks for jobs to
	// withdraw or duplicate while nothing waits at the coordinator
	// (default 1 s).
	BalanceEvery time.Duration
}

// GridAction is something the coordinator must do: Send, Withdraw,
// Duplicate, Stop, Last or Fail.
type GridAction interface{ isGridAction() }

// Send hands an attempt of a job to a cluster's queue.
type Send struct {
	Job     int64
	Attempt int
	Cluster string
}

// Withdraw asks a cluster to take an attempt out of its queue, where it
// still waits as far as the grid knows, so the job can go elsewhere.
// The cluster answers Withdrawn, or Started when it began it first.
type Withdraw struct {
	Job     int64
	Attempt int
	Cluster string
}

// Duplicate hands a second attempt of a running job to another
// cluster's queue: it is expected to finish there first.
type Duplicate struct {
	Job     int64
	Attempt int
	Cluster string
}

// Stop tells a cluster to drop an attempt, waiting or running, that is
// no longer needed: another attempt of the job finished first. Its
// result, if one still comes, is discarded.
type Stop struct {
	Job     int64
	Attempt int
	Cluster string
}

// Last tells a cluster that the sweep is closed and every job has gone
// out: its dispatcher closes its queue (Core.Close) and plans its end.
// A job may still come to it (withdrawn from another cluster, or a
// duplicate).
type Last struct {
	Cluster string
}

func (Send) isGridAction()      {}
func (Withdraw) isGridAction()  {}
func (Duplicate) isGridAction() {}
func (Stop) isGridAction()      {}
func (Last) isGridAction()      {}
func (Fail) isGridAction()      {}

// UsesGrid reports whether a grid of several clusters runs under the
// policy as two levels: the coordinator's Grid sharing the jobs between
// the clusters, and a Core per cluster (mec, orrery). Under the others
// a grid is one machine: one Core over every node.
func (p Policy) UsesGrid() bool { return p.Grid == GridRate || p.Learn && p.Stragglers }

// ClusterStatus is a cluster as the grid sees it.
type ClusterStatus struct {
	Name    string
	Link    LinkState
	Queued  int     // attempts sent there that have not started, as far as the grid knows
	Running int     // attempts running there
	Done    int     // jobs finished there
	Rate    float64 // jobs a second: measured, or from its power (0 until a cluster has a measured rate)
	Depth   int     // how many attempts it may hold now
}

// Grid is the coordinator's allocator: which cluster of a grid runs
// which job. See the rules above.
type Grid struct {
	cfg       GridConfig
	pol       Policy
	clusters  []*gridCluster // in join order
	jobs      map[int64]*gridJob
	queue     queue // waiting at the coordinator
	model     *Model
	actions   []GridAction
	closed    bool
	now       time.Time
	lastStrag time.Time
	lastPlan  time.Time // when the grid last looked at its clusters' loads
	lastFill  time.Time // when the grid last refilled the clusters' queues
	// lastWasLast says whether that refill was the end game's.
	lastWasLast bool
	large       bool // at the last tick, a large grid under a learning policy (see largeGrid)
	returned    bool // a job came back to the queue since the last round: it goes out at once
	// rates' last answer, kept while the time and epoch (bumped by every
	// event that can change it) stay the same; callers only read it.
	epoch, ratesEpoch int
	rated, ratesOK    bool
	ratesAt           time.Time
	ratesW            []float64
	changed           bool // a cluster came, went or changed its link since
	running           int
	decided           int64
}

type gridCluster struct {
	GridCluster
	link     LinkState
	queued   []*gridAttempt // sent, not started, in the order sent
	running  []*gridAttempt
	incoming int // attempts being withdrawn elsewhere to come here
	leaving  int // attempts of its queue being withdrawn
	done     int
	first    time.Time // its first start
	at       time.Time // when its running attempts' progress was brought up to date
	told     bool      // Last sent
}

type gridJob struct {
	*jobState
	atts      []*gridAttempt // attempts out on clusters
	withdrawn int            // times withdrawn
}

// maxWithdraws bounds how often one job is withdrawn: estimates that
// change back and forth do not keep it on the wire.
const maxWithdraws = 2

type gridAttempt struct {
	job       *gridJob
	n         int
	cs        *gridCluster
	started   bool
	startedAt time.Time    // when it started, as reported
	progress  float64      // estimated work done
	dest      *gridCluster // a withdraw is pending, to send it there
	pending   bool         // a withdraw is pending
}

// NewGrid returns a grid with no cluster and no job.
func NewGrid(cfg GridConfig) *Grid {
	if cfg.Policy.Name == "" {
		cfg.Policy = MEC
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	switch {
	case cfg.RideOut == 0:
		cfg.RideOut = time.Minute
	case cfg.RideOut < 0:
		cfg.RideOut = 0
	}
	if cfg.BalanceEvery == 0 {
		cfg.BalanceEvery = time.Second
	}
	g := &Grid{cfg: cfg, pol: cfg.Policy, jobs: map[int64]*gridJob{}}
	if cfg.Policy.Learn {
		g.model = NewModel()
	}
	return g
}

// Policy returns the grid's policy.
func (g *Grid) Policy() Policy { return g.pol }

// Model returns what the grid has learned about the jobs (nil unless its
// policy learns).
func (g *Grid) Model() *Model { return g.model }

func (g *Grid) cluster(name string) *gridCluster {
	for _, cs := range g.clusters {
		if cs.Name == name {
			return cs
		}
	}
	return nil
}

func (g *Grid) tick(now time.Time) {
	if now.After(g.now) {
		g.now = now
	}
}

// AddCluster adds a cluster, connected, or updates what it says of
// itself (its CPUs change as nodes join and leave).
func (g *Grid) AddCluster(c GridCluster, now time.Time) {
	g.epoch++ // what rates says may change
	g.tick(now)
	g.changed = true
	if cs := g.cluster(c.Name); cs != nil {
		g.advance(cs, now)
		cs.GridCluster = c
		return
	}
	g.clusters = append(g.clusters, &gridCluster{GridCluster: c, at: now})
}

// SetLink says what the cluster's link is now. Lost is RemoveCluster.
func (g *Grid) SetLink(name string, s LinkState, now time.Time) {
	g.epoch++ // what rates says may change
	g.tick(now)
	if s == Lost {
		g.RemoveCluster(name, "its link was lost", now)
		return
	}
	if cs := g.cluster(name); cs != nil {
		cs.link = s
		g.changed = true
	}
}

// RemoveCluster drops a cluster for good: the jobs that waited there go
// out again first in line; those that ran there too, charged a retry
// (they fail past their retries). A late report of one of its attempts
// is ignored.
func (g *Grid) RemoveCluster(name, reason string, now time.Time) {
	g.epoch++ // what rates says may change
	g.tick(now)
	cs := g.cluster(name)
	if cs == nil {
		return
	}
	g.advance(cs, now)
	// Attempts on their way here come back to the coordinator anyway.
	for _, o := range g.clusters {
		for _, a := range o.queued {
			if a.dest == cs {
				a.dest = nil
			}
		}
	}
	atts := append(slices.Clone(cs.queued), cs.running...)
	slices.SortFunc(atts, func(a, b *gridAttempt) int { return cmp.Compare(b.job.Index, a.job.Index) })
	for _, a := range atts {
		j := a.job
		g.drop(a)
		if len(j.atts) > 0 {
			continue // it runs on elsewhere
		}
		j.reason = fmt.Sprintf("cluster %s lost: %s", name, reason)
		if a.started {
			j.failures++
			if g.failIfOut(j) {
				continue
			}
		}
		g.queue.pushFront(j.jobState, g.model)
	}
	g.clusters = slices.DeleteFunc(g.clusters, func(x *gridCluster) bool { return x == cs })
	g.changed = true
}

// Enqueue adds a job to the back of the coordinator's queue.
func (g *Grid) Enqueue(j Job) {
	if g.jobs[j.Index] != nil {
		return
	}
	js := &jobState{Job: j, attempt: j.Attempts}
	g.jobs[j.Index] = &gridJob{jobState: js}
	g.queue.push(js, g.model)
}

// Close says no more jobs will be enqueued: the grid may plan the end.
func (g *Grid) Close() { g.closed = true }

// Started reports that a cluster began an attempt sent to it. An attempt
// the grid was withdrawing stays there.
func (g *Grid) Started(cluster string, index int64, attempt int, now time.Time) {
	g.epoch++ // what rates says may change
	g.tick(now)
	_, a := g.find(cluster, index, attempt)
	if a == nil || a.started {
		return
	}
	g.start(a, now)
}

func (g *Grid) start(a *gridAttempt, now time.Time) {
	cs := a.cs
	g.advance(cs, now)
	g.unwithdraw(a)
	cs.queued = slices.DeleteFunc(cs.queued, func(x *gridAttempt) bool { return x == a })
	a.started = true
	a.startedAt = now
	cs.running = append(cs.running, a)
	g.running++
	if cs.first.IsZero() {
		cs.first = now
	}
}

// Finished reports that an attempt ended with the job's own outcome
// (success, or the job's own failure). The job's other attempts are
// stopped. It reports whether the job ended with it: false for an
// attempt the grid no longer holds (stopped, withdrawn, or on a cluster
// since lost), whose result is to be discarded.
func (g *Grid) Finished(cluster string, index int64, attempt int, u Usage, now time.Time) bool {
	g.epoch++ // what rates says may change
	g.tick(now)
	j, a := g.find(cluster, index, attempt)
	if a == nil {
		return false
	}
	cs := a.cs
	if !a.started {
		g.start(a, now) // its start was not reported
	}
	if g.model != nil {
		g.model.Observe(j.Params, u, cs.power()/float64(max(cs.CPUs, 1)))
	}
	cs.done++
	g.drop(a)
	for _, o := range slices.Clone(j.atts) {
		g.drop(o)
		g.actions = append(g.actions, Stop{Job: index, Attempt: o.n, Cluster: o.cs.Name})
	}
	delete(g.jobs, index)
	return true
}

// SystemFailure reports that a cluster could not run an attempt for a
// reason not the job's own (its dispatcher ran out of retries on its
// nodes, its disk is full): the job goes out again, to another cluster
// when there is one, charged a retry, and fails past GridConfig.Retries.
// A duplicate's failure only ends that attempt.
func (g *Grid) SystemFailure(cluster string, index int64, attempt int, reason string, now time.Time) {
	g.epoch++ // what rates says may change
	g.tick(now)
	j, a := g.find(cluster, index, attempt)
	if a == nil {
		return
	}
	g.drop(a)
	if !slices.Contains(j.failedOn, cluster) {
		j.failedOn = append(j.failedOn, cluster)
	}
	j.reason = reason
	if len(j.atts) > 0 {
		return
	}
	j.failures++
	if !g.failIfOut(j) {
		g.queue.pushFront(j.jobState, g.model)
		g.returned = true
	}
}

// Withdrawn reports that a cluster took an attempt out of its queue, as
// asked (Withdraw): the job goes out again at once.
func (g *Grid) Withdrawn(cluster string, index int64, attempt int, now time.Time) {
	g.epoch++ // what rates says may change
	g.tick(now)
	j, a := g.find(cluster, index, attempt)
	if a == nil || a.started {
		return
	}
	g.drop(a)
	if len(j.atts) == 0 {
		g.queue.pushFront(j.jobState, g.model)
		g.returned = true
	}
}

// failIfOut fails j, which has no attempt out, when it is past its
// retries.
func (g *Grid) failIfOut(j *gridJob) bool {
	if j.failures <= g.cfg.Retries {
		return false
	}
	delete(g.jobs, j.Index)
	j.failed = true
	g.actions = append(g.actions, Fail{Job: j.Index, Reason: fmt.Sprintf("%s (%d system failures)", j.reason, j.failures)})
	return true
}

// find finds an attempt that cluster holds.
func (g *Grid) find(cluster string, index int64, attempt int) (*gridJob, *gridAttempt) {
	j := g.jobs[index]
	if j == nil {
		return nil, nil
	}
	for _, a := range j.atts {
		if a.n == attempt && a.cs.Name == cluster {
			return j, a
		}
	}
	return nil, nil
}

// drop takes an attempt off its cluster.
func (g *Grid) drop(a *gridAttempt) {
	cs := a.cs
	if a.started {
		g.advance(cs, g.now)
		cs.running = slices.DeleteFunc(cs.running, func(x *gridAttempt) bool { return x == a })
		g.running--
	} else {
		g.unwithdraw(a)
		cs.queued = slices.DeleteFunc(cs.queued, func(x *gridAttempt) bool { return x == a })
	}
	a.job.atts = slices.DeleteFunc(a.job.atts, func(x *gridAttempt) bool { return x == a })
}

// unwithdraw forgets a pending withdraw of a.
func (g *Grid) unwithdraw(a *gridAttempt) {
	if !a.pending {
		return
	}
	a.pending = false
	a.cs.leaving--
	if a.dest != nil {
		a.dest.incoming--
		a.dest = nil
	}
}

// advance brings the estimated progress of cs's running attempts up to
// now: its CPUs share them, each job at most one CPU of its mean speed.
func (g *Grid) advance(cs *gridCluster, now time.Time) {
	if d := now.Sub(cs.at).Seconds(); d > 0 && len(cs.running) > 0 {
		share := cs.power() / float64(max(cs.CPUs, len(cs.running), 1))
		for _, a := range cs.running {
			a.progress += d * share
		}
	}
	if now.After(cs.at) {
		cs.at = now
	}
}

func (cs *gridCluster) power() float64 {
	if cs.Power > 0 {
		return cs.Power
	}
	return float64(cs.CPUs)
}

func (cs *gridCluster) fastest() float64 {
	if cs.Fastest > 0 {
		return cs.Fastest
	}
	return cs.power() / float64(max(cs.CPUs, 1))
}

func (cs *gridCluster) slots() int {
	if cs.Slots > 0 {
		return cs.Slots
	}
	return cs.CPUs
}

func (cs *gridCluster) held() int { return len(cs.queued) + len(cs.running) }

// open reports whether jobs may be sent to cs now.
func (cs *gridCluster) open() bool { return cs.link == Connected && cs.CPUs > 0 }

// rates returns the clusters' job rates (see jobRates). A cluster's
// measured rate counts once it has finished as many jobs as its slots:
// the first few ends say little of its rate.
func (g *Grid) rates(now time.Time) ([]float64, bool) {
	// The feed asks at every event; the answer changes only with the
	// time and the clusters' news.
	if g.rated && now.Equal(g.ratesAt) && g.epoch == g.ratesEpoch {
		return g.ratesW, g.ratesOK
	}
	w, ok := g.measure(now)
	g.rated, g.ratesAt, g.ratesEpoch, g.ratesW, g.ratesOK = true, now, g.epoch, w, ok
	return w, ok
}

// measure is rates, worked out.
func (g *Grid) measure(now time.Time) ([]float64, bool) {
	n := len(g.clusters)
	done, first, power := make([]int, n), make([]time.Time, n), make([]float64, n)
	for i, cs := range g.clusters {
		done[i], first[i], power[i] = cs.done, cs.first, cs.power()
		if cs.done < cs.slots() {
			done[i] = 0 // too few to tell its rate from chance yet
		}
	}
	return jobRates(now, done, first, power)
}

// jobRates is each cluster's job rate (jobs a second), by which the
// clusters share the jobs: its measured rate (jobs finished since its
// first start) once it has finished a job, else its CPU power times the
// rate per unit of power of the clusters that have. measured says
// whether any has; until then the rates are the powers, good only to
// compare the clusters.
func jobRates(now time.Time, done []int, first []time.Time, power []float64) (w []float64, measured bool) {
	w = make([]float64, len(done))
	var rate, pow float64
	for i := range done {
		if el := now.Sub(first[i]).Seconds(); done[i] > 0 && el > 0 {
			rate += float64(done[i]) / el
			pow += power[i]
		}
	}
	perPower := 1.0
	if pow > 0 {
		perPower = rate / pow
	}
	for i := range done {
		if el := now.Sub(first[i]).Seconds(); done[i] > 0 && el > 0 {
			w[i] = float64(done[i]) / el
		} else {
			w[i] = power[i] * perPower
		}
	}
	return w, pow > 0
}

// depth is how many attempts a cluster of job rate rate may hold: its
// slots plus what it runs in the ride-out time (at least one), within
// its own limit.
func (g *Grid) depth(cs *gridCluster, rate float64, measured bool) int {
	extra := 1
	if measured {
		extra = max(extra, int(math.Ceil(rate*g.cfg.RideOut.Seconds()-1e-9)))
	}
	d := cs.slots() + extra
	if cs.Limit > 0 {
		d = min(d, cs.Limit)
	}
	return d
}

// Wanted returns how many more jobs the grid wants enqueued: room in the
// connected clusters' queues, plus the window, less what waits already.
// The coordinator feeds it lazily from the sweep.
func (g *Grid) Wanted() int {
	w, measured := g.rates(g.now)
	room := 0
	for i, cs := range g.clusters {
		if cs.open() {
			room += max(g.depth(cs, w[i], measured)-cs.held()-cs.incoming, 0)
		}
	}
	return max(room+g.window()-g.queue.len(), 0)
}

// window is how many jobs the grid wants to see beyond the clusters'
// room (see GridConfig.Window).
func (g *Grid) window() int {
	if g.cfg.Window != 0 {
		return max(g.cfg.Window, 0)
	}
	cpus := 0
	for _, cs := range g.clusters {
		if cs.open() {
			cpus += cs.CPUs
		}
	}
	return max(windowPerCPU*cpus, 1000)
}

// windowPerCPU is the default window's jobs per CPU.
const windowPerCPU = 10

// Waiting returns how many jobs wait at the coordinator.
func (g *Grid) Waiting() int { return g.queue.len() }

// Running returns how many attempts run on the clusters.
func (g *Grid) Running() int { return g.running }

// Decisions returns how many actions the grid has decided so far.
func (g *Grid) Decisions() int64 { return g.decided }

// Status returns each cluster as the grid sees it at now.
func (g *Grid) Status(now time.Time) []ClusterStatus {
	w, measured := g.rates(now)
	out := make([]ClusterStatus, len(g.clusters))
	for i, cs := range g.clusters {
		rate := w[i]
		if !measured {
			rate = 0
		}
		out[i] = ClusterStatus{Name: cs.Name, Link: cs.link, Queued: len(cs.queued), Running: len(cs.running), Done: cs.done,
			Rate: rate, Depth: g.depth(cs, w[i], measured)}
	}
	return out
}
