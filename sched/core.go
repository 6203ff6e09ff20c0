// Package sched is Orrery's decision core: which job runs on which node of
// which cluster, when a running job moves or gets a duplicate, what
// happens when a node is lost or an attempt fails. It is pure: events and
// the current time go in, actions come out. It does no I/O, starts no
// goroutine, never reads the clock and has no randomness, so the live
// dispatcher and the simulator (package sim) drive the same code (the
// model is etcd's raft package: Step, then Ready).
//
// The policies are the paper's: fcfs (EnFuzion), mosix, fcfs+mosix, mec
// (the Multi EnFuzion Client) and orrery, which adds what the paper left
// as future work. See Policy.
package sched

import (
	"cmp"
	"math"
	"slices"
	"time"
)

// Node is a machine that runs jobs, as it registered.
type Node struct {
	ID      string
	Cluster string // the cluster it belongs to ("" for a single cluster)
	CPUs    int
	Speed   float64 // relative CPU speed (the simulator uses GHz); 1 by default
	Limit   int     // job limit: jobs it runs at once (0: the policy's choice)
	Memory  int64   // RAM in bytes (0: unknown)
	// End is when the batch system ends the node (a pilot's time
	// limit), on the driver's clock; zero: never. No attempt starts
	// there that is expected to run past End less EndMargin (see
	// Core.beforeEnd).
	End time.Time
}

// Cluster describes a group of nodes behind one dispatcher.
type Cluster struct {
	Name string
	// PerCPU is the job limit, in processes per CPU, of its nodes that
	// have no limit of their own (0: one per CPU, or automatic under a
	// policy that learns).
	PerCPU float64
	// Bandwidth (bytes/s) and Latency (s) of the links inside the cluster:
	// what a move between two of its nodes costs. 0: free.
	Bandwidth, Latency float64
	// WANBandwidth and WANLatency join the grid's root to the cluster:
	// what staging a job there costs. 0: free.
	WANBandwidth, WANLatency float64
	// Pinned says running jobs cannot move between its nodes, nor in or
	// out of it, even when the driver can move jobs elsewhere: nothing
	// migrates processes there, and its jobs do not checkpoint.
	Pinned bool
}

// Job is a job handed to the core.
type Job struct {
	Index int64
	// Params are the job's numeric parameter values, from which a
	// learning policy predicts its work and memory. May be nil.
	Params []float64
	// Attempts is how many attempts were made before (after a restart).
	Attempts int
	// Stage is the bytes the job copies in and out, when known: moving it
	// to a far cluster costs their transfer.
	Stage int64
}

// Usage is what a finished attempt used, as far as the driver knows.
type Usage struct {
	Work   float64       // CPU seconds on a speed-1 CPU (CPU time × node speed); 0: unknown
	Memory int64         // peak resident bytes; 0: unknown
	Wall   time.Duration // start to end, staging included
	Stage  time.Duration // the part of Wall spent staging
}

// Action is something the driver must do: Start, Move, Cancel, Fail or
// OutOfService.
type Action interface{ isAction() }

// Start tells the driver to start an attempt of a job on a node.
type Start struct {
	Job     int64
	Node    string
	Attempt int // 1 for the first attempt
}

// Move tells the driver to move a running attempt to another node,
// keeping its progress (process migration or checkpoint and restore).
type Move struct {
	Job      int64
	Attempt  int
	From, To string
}

// Cancel tells the driver to stop an attempt that is no longer needed:
// another attempt of its job (a duplicate) finished first.
type Cancel struct {
	Job     int64
	Attempt int
	Node    string
}

// Fail tells the driver a job has failed for good: its system failures
// reached the retry limit.
type Fail struct {
	Job    int64
	Reason string
}

// OutOfService tells the driver the core took a node out of service:
// its attempts kept failing as system failures (a black-hole node). No
// attempt starts there any more; those running there are left to finish.
// Reason says why, with the last failure's error.
type OutOfService struct {
	Node   string
	Reason string
}

func (Start) isAction()        {}
func (Move) isAction()         {}
func (Cancel) isAction()       {}
func (Fail) isAction()         {}
func (OutOfService) isAction() {}

// Config sets up a core.
type Config struct {
	Policy Policy
	// Retries is how many times a job is tried again after system
	// failures (a lost node, failed staging) before it fails. Default 3.
	// Failures on a node then taken out of service do not count.
	Retries int
	// BlackHole is how many system failures in a row, with no attempt
	// between them that reached the job's own outcome, take a node out
	// of service (default BlackHole; -1: never).
	BlackHole int
	// HeartbeatTimeout is how long a node may stay silent before it is
	// lost. Default 15 s.
	HeartbeatTimeout time.Duration
	// Moves says the driver can move a running job between nodes of a
	// cluster (MOSIX process migration, control groups on one machine,
	// or jobs that checkpoint). Without it, policies that balance load
	// only place new jobs.
	Moves bool
	// MovesAcross says the driver can also move a running job to another
	// cluster (the job checkpoints, so what it has done travels with it).
	MovesAcross bool
	// Duplicates says the driver can run a second attempt of a running
	// job and cancel the loser.
	Duplicates bool
	// Restarts says the driver can stop a running attempt and start the
	// job again from the beginning: a policy that learns then takes a
	// job off a node whose memory is overcommitted (it would thrash)
	// when it cannot move it, and starts it again where it fits.
	Restarts bool
	// BalanceEvery is how often load balancing runs (default 1 s).
	BalanceEvery time.Duration
	// Window is how many waiting jobs the core wants to see ahead, so a
	// policy that orders jobs or shares them between clusters has
	// something to work with (default 1,000 for policies that learn or
	// share by rate, else only enough to fill free slots; -1: none).
	Window int
}

type nodeState struct {
	Node
	cluster  *clusterState
	order    int // join order, over all clusters
	limit    int // the job limit in force
	lastSeen time.Time
	runs     []*run // attempts running on it, including ones moving in
	held     int    // attempts holding one of its slots (started here)
	resident int64  // known resident memory of its runs
	free     bool   // listed in Core.free
	out      string // why it is out of service ("": in service; drainOut: it drains)
	drains   bool   // it leaves (see Drain)
	// streak are the system failures of its attempts since the last one
	// that reached the job's own outcome: not charged to their jobs
	// until it is known whether they are the node's (see blackhole.go).
	streak []blame
}

// run is one attempt of a job on a node.
type run struct {
	job      *jobState
	attempt  int
	node     *nodeState // where it runs
	home     *nodeState // where it holds a slot: where it started, unless moved with its slot
	start    time.Time
	resident int64
	progress float64   // estimated work done, as of at
	at       time.Time // when progress was last brought up to date
	moved    time.Time // when it last moved (zero: never)
}

type jobState struct {
	Job
	attempt  int // attempts started so far
	failures int // system failures so far
	ended    int // attempts lost with a node the batch system ended (see RemoveNode)
	// ranFor is the longest an attempt of it ran before a node with an
	// end was lost under it at that end: on a node that ends it needs at
	// least that (endNeed).
	ranFor time.Duration
	tried  []string // nodes where a system failure happened
	// lostOne is set when an attempt failed as the job's own failure
	// while another ran on: the job gets no further duplicate, so the
	// attempt left decides it (a job that fails everywhere would
	// otherwise be duplicated, and fail, for ever).
	lostOne  bool
	failedOn []string  // nodes where a system or node failure of it happened (not a lost attempt)
	failedAt time.Time // when the last of them happened
	ownOn    []string  // nodes where a node failure of it happened (NodeFailure)
	failed   bool      // failed for good after its system failures
	reason   string    // the last system failure's error
	runs     []*run    // running attempts (two when duplicated)
	held     *clusterState
	expect   float64 // predicted work, cached by the queue
	// seen and seenAt: expectJob's cache, the work predicted when the
	// model's stamp was seenAt-1 (0: none).
	seen     float64
	seenAt   int
	mem      int64 // the most resident memory an attempt reported
	restarts int   // attempts stopped to relieve a node's memory
}

// Core holds the dispatch state of a grid of clusters (one cluster for
// a live dispatcher today).
type Core struct {
	cfg       Config
	pol       Policy
	clusters  []*clusterState
	nodes     map[string]*nodeState
	byOrder   []*nodeState // in join order
	free      []*nodeState // nodes with a free slot, unordered
	queue     queue        // waiting, not yet given to a cluster
	jobs      map[int64]*jobState
	model     *Model
	actions   []Action
	joined    int
	closed    bool
	lastBal   time.Time
	lastStrag time.Time
	deferred  bool         // the tail placement left free slots to jobs that wait for busy nodes
	overfull  []*nodeState // nodes whose resident memory passed their RAM since the last decisions
	memSum    int64        // the peak resident memory reported, summed over jobs
	memJobs   int          // jobs that reported resident memory
	running   int
	decided   int64
	longest   time.Duration // the longest wall time of an attempt that ended with its job's outcome
}

// New returns a core with no nodes and no jobs.
func New(cfg Config) *Core {
	if cfg.Policy.Name == "" {
		cfg.Policy = FCFS
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.BlackHole == 0 {
		cfg.BlackHole = BlackHole
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 15 * time.Second
	}
	if cfg.BalanceEvery == 0 {
		cfg.BalanceEvery = time.Second
	}
	if cfg.Window == 0 && (cfg.Policy.Learn || cfg.Policy.Grid == GridRate) {
		cfg.Window = 1000
	}
	cfg.Window = max(cfg.Window, 0)
	c := &Core{cfg: cfg, pol: cfg.Policy, nodes: map[string]*nodeState{}, jobs: map[int64]*jobState{}}
	if cfg.Policy.Learn {
		c.model = NewModel()
	}
	c.queue.lpt = false
	return c
}

// Policy returns the core's policy.
func (c *Core) Policy() Policy { return c.pol }

// Model returns what the core has learned about the jobs (nil unless its
// policy learns).
func (c *Core) Model() *Model { return c.model }

// AddCluster declares a cluster. Nodes of an undeclared cluster join a
// cluster of that name with default settings.
func (c *Core) AddCluster(cl Cluster) {
	if cs := c.cluster(cl.Name); cs != nil {
		cs.Cluster = cl
		return
	}
	c.clusters = append(c.clusters, &clusterState{Cluster: cl, index: len(c.clusters)})
}

func (c *Core) cluster(name string) *clusterState {
	for _, cs := range c.clusters {
		if cs.Name == name {
			return cs
		}
	}
	return nil
}

// AddNode registers a node (or re-registers one, keeping its place).
func (c *Core) AddNode(n Node, now time.Time) {
	if n.Speed <= 0 {
		n.Speed = 1
	}
	n.CPUs = max(n.CPUs, 1)
	if ns := c.nodes[n.ID]; ns != nil {
		ns.Node, ns.lastSeen = n, now
		c.setLimit(ns)
		return
	}
	cs := c.cluster(n.Cluster)
	if cs == nil {
		c.AddCluster(Cluster{Name: n.Cluster})
		cs = c.clusters[len(c.clusters)-1]
	}
	ns := &nodeState{Node: n, cluster: cs, order: c.joined, lastSeen: now}
	c.joined++
	c.nodes[n.ID] = ns
	c.byOrder = append(c.byOrder, ns)
	cs.nodes = append(cs.nodes, ns)
	cs.cpus += n.CPUs
	cs.power += float64(n.CPUs) * n.Speed
	c.setLimit(ns)
}

// SetSpeed changes a node's relative speed: for a node whose claims the
// driver does not believe, what it measured of the node's attempts.
func (c *Core) SetSpeed(id string, speed float64) {
	n := c.nodes[id]
	if n == nil || speed <= 0 || math.IsInf(speed, 0) || math.IsNaN(speed) {
		return
	}
	if n.out == "" {
		n.cluster.power += float64(n.CPUs) * (speed - n.Speed)
	}
	n.Speed = speed
}

// Limit returns the job limit in force on node id: 0 when it is out of
// service or unknown, 1<<30 under a policy that queues nothing.
func (c *Core) Limit(id string) int {
	if n := c.nodes[id]; n != nil {
		return n.limit
	}
	return 0
}

// setLimit works out a node's job limit and keeps the free list true.
func (c *Core) setLimit(n *nodeState) {
	switch {
	case n.out != "":
		n.limit = 0
	case c.pol.NoQueue:
		n.limit = 1 << 30
	case n.Limit > 0:
		n.limit = n.Limit
	case n.cluster.PerCPU > 0:
		n.limit = max(int(n.cluster.PerCPU*float64(n.CPUs)+0.5), 1)
	case c.model != nil:
		n.limit = c.model.perCPU(n)
	default:
		n.limit = n.CPUs
	}
	c.listFree(n)
}

func (c *Core) listFree(n *nodeState) {
	want := n.held < n.limit
	if want == n.free {
		return
	}
	n.free = want
	if want {
		c.free = append(c.free, n)
		return
	}
	i := slices.Index(c.free, n)
	c.free[i] = c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
}

// Heartbeat notes that a node is alive.
func (c *Core) Heartbeat(id string, now time.Time) {
	if n := c.nodes[id]; n != nil {
		n.lastSeen = now
	}
}

// Tick lets time pass: nodes silent for longer than the heartbeat timeout
// are lost. It returns the lost nodes' IDs.
func (c *Core) Tick(now time.Time) []string {
	var lost []string
	for _, n := range slices.Clone(c.byOrder) {
		if now.Sub(n.lastSeen) > c.cfg.HeartbeatTimeout {
			lost = append(lost, n.ID)
			c.RemoveNode(n.ID, "node "+n.ID+" missed its heartbeats", now)
		}
	}
	return lost
}

// RemoveNode drops a node; its running attempts count a system failure
// and their jobs are queued again (first in line), or fail when out of
// retries.
func (c *Core) RemoveNode(id, reason string, now time.Time) {
	n := c.nodes[id]
	if n == nil {
		return
	}
	var lost []*run // running there, or started there (a migrated process dies with its home)
	for _, j := range c.jobs {
		for _, r := range j.runs {
			if r.node == n || r.home == n {
				lost = append(lost, r)
			}
		}
	}
	slices.SortFunc(lost, func(a, b *run) int { return cmp.Compare(a.job.Index, b.job.Index) })
	for _, r := range lost {
		if n.End.IsZero() {
			c.AttemptLost(r.job.Index, r.attempt, reason, now)
			continue
		}
		// A node with an end is a batch system's (a pilot): its
		// attempts die with it when the batch system ends it (its time
		// limit, a cancel, pre-emption), which is not the job's doing:
		// no retry is charged, unless it happens more than
		// MaxEndedLosses times to one job (a job that kills its pilot).
		r.job.ended++
		if !now.Before(n.End.Add(-2 * EndMargin)) {
			// Lost at its node's end (not before it, which a node may
			// claim falsely far away): it needs more time than it had.
			r.job.ranFor = max(r.job.ranFor, now.Sub(r.start))
		}
		c.lose(r.job.Index, r.attempt, reason, now, r.job.ended > MaxEndedLosses)
	}
	// Failures it had not yet answered for were its own: it broke.
	c.settle(n, false)
	if n.free {
		n.limit = 0
		c.listFree(n)
	}
	delete(c.nodes, id)
	c.byOrder = slices.DeleteFunc(c.byOrder, func(x *nodeState) bool { return x == n })
	cs := n.cluster
	cs.nodes = slices.DeleteFunc(cs.nodes, func(x *nodeState) bool { return x == n })
	if n.out == "" {
		cs.cpus -= n.CPUs
		cs.power -= float64(n.CPUs) * n.Speed
	}
	c.lastInService()
}

// Enqueue adds a job to the back of the queue.
func (c *Core) Enqueue(j Job) {
	js := &jobState{Job: j, attempt: j.Attempts}
	c.jobs[j.Index] = js
	c.queue.push(js, c.model)
}

// Close says no more jobs will be enqueued: what waits is the tail of the
// experiment, where a policy may rebalance and duplicate.
func (c *Core) Close() { c.closed = true }

// Finished reports that an attempt ended with the job's own outcome
// (success or the job's failure). Other attempts of the job are cancelled.
func (c *Core) Finished(index int64, attempt int, u Usage, now time.Time) {
	j, r := c.attempt(index, attempt)
	if r == nil {
		return
	}
	if c.model != nil {
		c.model.Observe(j.Params, u, r.node.Speed)
	}
	c.longest = max(c.longest, u.Wall)
	cs := r.node.cluster
	cs.done++
	// The node ran the job's commands: its failures before were chance,
	// or their jobs'.
	c.settle(r.node, true)
	for _, o := range slices.Clone(j.runs) {
		c.release(o, now)
		if o != r {
			c.actions = append(c.actions, Cancel{Job: index, Attempt: o.attempt, Node: o.node.ID})
		}
	}
	delete(c.jobs, index)
}

// SystemFailure reports that a node failed an attempt for a reason not
// the job's own as far as the core can tell (staging, a lost connection
// to the root): the job runs again, elsewhere when it can, until it runs
// out of retries. A duplicate's failure only ends that attempt. The
// failure counts against the node: one that keeps failing attempts is
// taken out of service, and the failures there are not charged to the
// jobs; unless the jobs fail on every node alike (see blackhole.go).
func (c *Core) SystemFailure(index int64, attempt int, reason string, now time.Time) {
	c.systemFailure(index, attempt, reason, false, now)
}

// NodeFailure reports that a node failed an attempt for a reason that is
// the node's own for certain (its job directory cannot be made, its
// nodestart failed, the agent's own machinery): as SystemFailure, but
// the failures count against the node even when it is the last in
// service, which it may then leave (see blackhole.go).
func (c *Core) NodeFailure(index int64, attempt int, reason string, now time.Time) {
	c.systemFailure(index, attempt, reason, true, now)
}

func (c *Core) systemFailure(index int64, attempt int, reason string, own bool, now time.Time) {
	j, r := c.attempt(index, attempt)
	if r == nil {
		return
	}
	n := r.node
	c.release(r, now)
	j.tried = append(j.tried, n.ID)
	if !slices.Contains(j.failedOn, n.ID) {
		j.failedOn = append(j.failedOn, n.ID)
	}
	if own && !slices.Contains(j.ownOn, n.ID) {
		j.ownOn = append(j.ownOn, n.ID)
	}
	j.failedAt = now
	j.reason = reason
	alone := len(j.runs) == 0 // no other attempt of the job runs on
	if alone {
		c.queue.pushFront(j, c.model)
	}
	c.blame(n, j, alone, own, reason)
}

// AttemptLost reports that an attempt was lost for a reason that is
// neither the job's nor its node's doing as far as the core can tell
// (lost with its node's connection, or with the node): the job runs
// again, elsewhere when it can, and is charged a retry.
func (c *Core) AttemptLost(index int64, attempt int, reason string, now time.Time) {
	c.lose(index, attempt, reason, now, true)
}

// MaxEndedLosses is how many of a job's attempts may be lost with nodes
// the batch system ended before each such loss is charged a retry.
const MaxEndedLosses = 10

// lose carries out AttemptLost, charging a retry when charged.
func (c *Core) lose(index int64, attempt int, reason string, now time.Time, charged bool) {
	j, r := c.attempt(index, attempt)
	if r == nil {
		return
	}
	c.release(r, now)
	j.tried = append(j.tried, r.node.ID)
	j.reason = reason
	if len(j.runs) > 0 {
		return
	}
	c.queue.pushFront(j, c.model)
	if charged {
		c.charge(j, 1)
	}
}

// AttemptFailed reports that one attempt of a job that runs elsewhere
// too (a duplicate) ended with the job's own failure: only that attempt
// ends, since the other may still succeed (its node may have what the
// job lacked). It never counts against the node. When no other attempt
// runs, it is taken as lost.
func (c *Core) AttemptFailed(index int64, attempt int, now time.Time) {
	j, r := c.attempt(index, attempt)
	if r == nil {
		return
	}
	if len(j.runs) == 1 {
		c.AttemptLost(index, attempt, "the attempt failed", now)
		return
	}
	c.settle(r.node, true)
	c.release(r, now)
	j.tried = append(j.tried, r.node.ID)
	j.lostOne = true
}

// Resident reports the resident memory of a running attempt.
func (c *Core) Resident(index int64, attempt int, bytes int64) {
	j, r := c.attempt(index, attempt)
	if r == nil {
		return
	}
	r.node.resident += bytes - r.resident
	r.resident = bytes
	if bytes > j.mem {
		if j.mem == 0 {
			c.memJobs++
		}
		c.memSum += bytes - j.mem
		j.mem = bytes
	}
	if n := r.node; c.relieves(n) && n.Memory > 0 && n.resident > n.Memory {
		c.overfull = append(c.overfull, n)
	}
}

// attempt finds a running attempt of a job the core holds; r is nil
// when there is none (the job ended, or the attempt was cancelled).
func (c *Core) attempt(index int64, attempt int) (*jobState, *run) {
	j := c.jobs[index]
	if j == nil {
		return nil, nil
	}
	return j, j.find(attempt)
}

func (j *jobState) find(attempt int) *run {
	for _, r := range j.runs {
		if r.attempt == attempt {
			return r
		}
	}
	return nil
}

// release takes a run off its node.
func (c *Core) release(r *run, now time.Time) {
	n := r.node
	c.progress(n, now)
	n.runs = slices.DeleteFunc(n.runs, func(x *run) bool { return x == r })
	n.resident -= r.resident
	r.home.held--
	r.job.runs = slices.DeleteFunc(r.job.runs, func(x *run) bool { return x == r })
	c.running--
	c.listFree(r.home)
}

// Wanted returns how many more jobs the core wants queued: enough for
// every free slot, plus the policy's window. The driver feeds the queue
// lazily from the sweep.
func (c *Core) Wanted() int {
	free := 0
	for _, n := range c.free {
		free += n.limit - n.held
		if c.pol.NoQueue {
			free = 1 << 20
			break
		}
	}
	// Jobs that failed as system failures wait for another node, or
	// let others go first: they fill no free slot.
	failed := 0
	for _, j := range c.queue.items {
		if len(j.failedOn) > 0 {
			failed++
		}
	}
	return max(free+c.cfg.Window-(c.queue.len()-failed)-c.held(), 0)
}

func (c *Core) held() int {
	h := 0
	for _, cs := range c.clusters {
		h += len(cs.queue)
	}
	return h
}

// Running returns the number of running attempts.
func (c *Core) Running() int { return c.running }

// Queued returns the number of waiting jobs.
func (c *Core) Queued() int { return c.queue.len() + c.held() }

// Decisions returns how many actions the core has decided so far.
func (c *Core) Decisions() int64 { return c.decided }

// relieves reports whether the core restarts jobs to relieve n when its
// memory is overcommitted: under a policy that learns, when the driver
// can restart jobs but ushering cannot move them off n (they cannot
// move, or n's cluster has no other node).
func (c *Core) relieves(n *nodeState) bool {
	return c.pol.Learn && c.cfg.Restarts && (!c.moves(n.cluster) || len(n.cluster.nodes) < 2)
}

// moves reports whether running jobs can move between cs's nodes.
func (c *Core) moves(cs *clusterState) bool { return c.cfg.Moves && !cs.Pinned }

// Ready makes the core's decisions for the time now and returns every
// action since the last call.
func (c *Core) Ready(now time.Time) []Action {
	if c.pol.Grid == GridRate && len(c.clusters) > 1 {
		c.allocate(now)
	}
	if len(c.overfull) > 0 {
		c.relieve(now)
	}
	c.place(now)
	finishing := c.finishing()
	if c.pol.Balance && c.cfg.Moves && now.Sub(c.lastBal) >= c.cfg.BalanceEvery {
		c.lastBal = now
		if finishing && c.queue.len() == 0 {
			// The plan would not see jobs that wait for a slot.
			c.rebalanceTail(now)
		} else {
			c.balance(now, false)
		}
	}
	if !finishing && c.pol.Stragglers && c.closed && (c.Queued() == 0 || c.deferred) && now.Sub(c.lastStrag) >= c.cfg.BalanceEvery {
		c.lastStrag = now
		c.stragglers(now)
	}
	out := c.actions
	c.actions = nil
	c.decided += int64(len(out))
	return out
}
