// Package sched is Orrery's decision core: which job runs on which node,
// what happens when a node is lost or an attempt fails. It is pure: events
// and the current time go in, actions come out. It does no I/O, starts no
// goroutine, never reads the clock and has no randomness of its own, so
// the live dispatcher and a simulator drive the same code (the model is
// etcd's raft package: Step, then Ready).
package sched

import (
	"fmt"
	"slices"
	"time"
)

// Node is a machine that runs jobs, as it registered.
type Node struct {
	ID    string
	CPUs  int
	Speed float64 // relative CPU speed; 1 is a reference CPU
	Limit int     // job limit: jobs it runs at once (0: one per CPU)
}

// Action is something the driver must do. Its concrete types are Start
// and Fail.
type Action interface{ isAction() }

// Start tells the driver to start an attempt of a job on a node.
type Start struct {
	Job     int64
	Node    string
	Attempt int // 1 for the first attempt
}

// Fail tells the driver a job has failed for good: its system failures
// reached the retry limit.
type Fail struct {
	Job    int64
	Reason string
}

func (Start) isAction() {}
func (Fail) isAction()  {}

// Policy chooses a node for a job among the nodes with a free slot.
type Policy interface {
	// Name is the policy's name as given to --policy.
	Name() string
	// Pick returns the index in free of the node to run job on. tried
	// names nodes where the job already failed for system reasons; a
	// policy should avoid them when it can.
	Pick(free []NodeView, tried []string) int
}

// NodeView is what a policy sees of a node.
type NodeView struct {
	Node
	Running int       // jobs running on it now
	Order   int       // 0 for the first node that joined
	Since   time.Time // when it joined
}

// Config sets up a core.
type Config struct {
	Policy Policy
	// Retries is how many times a job is tried again after system
	// failures (a lost node, failed staging) before it fails. Default 3.
	Retries int
	// HeartbeatTimeout is how long a node may stay silent before it is
	// lost. Default 15 s.
	HeartbeatTimeout time.Duration
}

type nodeState struct {
	NodeView
	lastSeen time.Time
	jobs     map[int64]bool
}

type jobState struct {
	index    int64
	attempt  int      // attempts made so far
	failures int      // system failures so far
	tried    []string // nodes where a system failure happened
	node     string   // while running
}

// Core holds the dispatch state of one cluster.
type Core struct {
	cfg     Config
	nodes   []*nodeState // in join order
	queue   []*jobState  // waiting jobs, in order
	running map[int64]*jobState
	actions []Action
	joined  int
}

// New returns a core with no nodes and no jobs.
func New(cfg Config) *Core {
	if cfg.Policy == nil {
		cfg.Policy = FCFS{}
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.HeartbeatTimeout == 0 {
		cfg.HeartbeatTimeout = 15 * time.Second
	}
	return &Core{cfg: cfg, running: map[int64]*jobState{}}
}

// AddNode registers a node (or re-registers one, keeping its place).
func (c *Core) AddNode(n Node, now time.Time) {
	if n.Limit <= 0 {
		n.Limit = max(n.CPUs, 1)
	}
	if n.Speed <= 0 {
		n.Speed = 1
	}
	if ns := c.node(n.ID); ns != nil {
		ns.Node, ns.lastSeen = n, now
		return
	}
	c.nodes = append(c.nodes, &nodeState{NodeView: NodeView{Node: n, Order: c.joined, Since: now},
		lastSeen: now, jobs: map[int64]bool{}})
	c.joined++
}

func (c *Core) node(id string) *nodeState {
	for _, n := range c.nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// Heartbeat notes that a node is alive.
func (c *Core) Heartbeat(id string, now time.Time) {
	if n := c.node(id); n != nil {
		n.lastSeen = now
	}
}

// Tick lets time pass: nodes silent for longer than the heartbeat timeout
// are lost. It returns the lost nodes' IDs.
func (c *Core) Tick(now time.Time) []string {
	var lost []string
	for _, n := range slices.Clone(c.nodes) {
		if now.Sub(n.lastSeen) > c.cfg.HeartbeatTimeout {
			lost = append(lost, n.ID)
			c.RemoveNode(n.ID, "node "+n.ID+" missed its heartbeats")
		}
	}
	return lost
}

// RemoveNode drops a node; its running jobs count a system failure and
// are queued again (first in line), or fail when out of retries.
func (c *Core) RemoveNode(id, reason string) {
	i := slices.IndexFunc(c.nodes, func(n *nodeState) bool { return n.ID == id })
	if i < 0 {
		return
	}
	n := c.nodes[i]
	c.nodes = slices.Delete(c.nodes, i, i+1)
	jobs := make([]int64, 0, len(n.jobs))
	for j := range n.jobs {
		jobs = append(jobs, j)
	}
	slices.Sort(jobs)
	for _, j := range slices.Backward(jobs) {
		c.systemFailure(j, reason)
	}
}

// Enqueue adds a job to the back of the queue.
func (c *Core) Enqueue(index int64) { c.queue = append(c.queue, &jobState{index: index}) }

// EnqueueRetry adds a job that was already tried attempts times (before
// a restart) to the back of the queue; its next attempt is attempts+1.
func (c *Core) EnqueueRetry(index int64, attempts int) {
	c.queue = append(c.queue, &jobState{index: index, attempt: attempts})
}

// Finished reports that a job's attempt ended with the job's own outcome
// (success or the job's failure): it leaves its node.
func (c *Core) Finished(index int64) {
	if j := c.running[index]; j != nil {
		c.release(j)
	}
}

// SystemFailure reports that a job's attempt failed for a reason not the
// job's own (staging failed, the node broke): the job runs again,
// elsewhere when it can, until it runs out of retries.
func (c *Core) SystemFailure(index int64, reason string) { c.systemFailure(index, reason) }

func (c *Core) systemFailure(index int64, reason string) {
	j := c.running[index]
	if j == nil {
		return
	}
	node := j.node
	c.release(j)
	j.tried = append(j.tried, node)
	j.failures++
	if j.failures > c.cfg.Retries {
		c.actions = append(c.actions, Fail{Job: index, Reason: fmt.Sprintf("%s (%d system failures)", reason, j.failures)})
		return
	}
	c.queue = append([]*jobState{j}, c.queue...)
}

func (c *Core) release(j *jobState) {
	if n := c.node(j.node); n != nil {
		delete(n.jobs, j.index)
		n.Running--
	}
	delete(c.running, j.index)
	j.node = ""
}

// Wanted returns how many more jobs the core wants queued so that every
// free slot has a job: the driver feeds the queue lazily from the sweep.
func (c *Core) Wanted() int {
	free := 0
	for _, n := range c.nodes {
		free += n.Limit - n.Running
	}
	return max(free-len(c.queue), 0)
}

// Running returns the number of running jobs.
func (c *Core) Running() int { return len(c.running) }

// Queued returns the number of waiting jobs.
func (c *Core) Queued() int { return len(c.queue) }

// Ready places waiting jobs on free slots and returns every action since
// the last call.
func (c *Core) Ready() []Action {
	var free []NodeView
	for len(c.queue) > 0 {
		free = free[:0]
		for _, n := range c.nodes {
			if n.Running < n.Limit {
				free = append(free, n.NodeView)
			}
		}
		if len(free) == 0 {
			break
		}
		j := c.queue[0]
		c.queue = c.queue[1:]
		n := c.node(free[c.cfg.Policy.Pick(free, j.tried)].ID)
		j.attempt++
		j.node = n.ID
		n.jobs[j.index] = true
		n.Running++
		c.running[j.index] = j
		c.actions = append(c.actions, Start{Job: j.index, Node: n.ID, Attempt: j.attempt})
	}
	out := c.actions
	c.actions = nil
	return out
}
