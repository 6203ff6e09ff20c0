// Package dispatch is the cluster dispatcher: it drives the decision core
// (package sched) for a live cluster. It feeds the core's queue lazily from
// the sweep, records every decision in the store before acting on it,
// starts attempts on node agents through the agent protocol, serves their
// staging requests from the root directory, and runs rootstart and
// rootfinish on the root.
//
// One goroutine (Run's) owns all dispatch state. Nodes reach it through
// a transport (package link for the agent protocol) that implements Node
// and calls Joined, Ended, Heartbeat and Gone, which only queue an event
// for Run, with a bound.
package dispatch

import (
	"context"
	"errors"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"orrery/plan"
	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
	"orrery/sweep"
	"orrery/task"
)

// Config sets up a dispatcher.
type Config struct {
	Plan       *plan.Plan
	Sweep      *sweep.Sweep
	Store      *store.Store
	Experiment *store.Experiment
	// Root is the root directory: where root paths start and root tasks run.
	Root   string
	Policy sched.Policy
	// Retries is how often a job is retried after system failures (default 3).
	Retries int
	// Heartbeat is how often agents send heartbeats (default 1 s); a node
	// silent for 10 heartbeats is lost.
	Heartbeat time.Duration
	// Exec tunes root tasks (environment, output limit).
	Exec task.Options
	// Progress, when set, is called from Run's goroutine whenever the
	// counts change (at most every 100 ms) and once at the end.
	Progress func(Progress)
	// Decided, when set, is told how long each decision of the core took
	// (wall time, for metrics), from Run's goroutine: it must return at
	// once.
	Decided func(time.Duration)
	// PerNode has Progress carry each node's running attempts (a walk of
	// the jobs in hand, at most once a second).
	PerNode bool
	// Migrate, when set, moves the processes of process group pgid
	// (an attempt's command) to node's control group: process migration
	// between nodes of one machine, as the embedded cluster's are. The
	// core then moves running jobs (MOSIX's load balancing and memory
	// ushering, stragglers to faster nodes); without it, it never does.
	Migrate func(pgid int, node string) error
	// NoNodes is how long Run waits with work left and no node before it
	// gives up; 0 waits for ever (agents may join later).
	NoNodes time.Duration
	Log     *slog.Logger
	// Clock is where the time comes from; nil means the system clock.
	Clock Clock
	// Feed, when set, makes this a cluster head's dispatcher: its jobs
	// come from the feed (its root), not from Sweep, which may be nil,
	// and it runs no root task (see Feed).
	Feed Feed
	// Grid says the nodes are cluster heads, each holding a queue: a job
	// a head holds may be waiting there, not running, so the core never
	// duplicates one as a straggler, nor restarts one for memory.
	Grid bool
	// HeadTimeout is how long a head whose connection dropped keeps the
	// attempts it holds (its cluster goes on with them through a cut)
	// before they run elsewhere; default 1 h, a head's default lease.
	// LoseCluster ends it sooner.
	HeadTimeout time.Duration
}

// Progress is a snapshot of an experiment's jobs.
type Progress struct {
	Total   int64 // jobs in the sweep (an upper bound when TotalExact is false)
	Exact   bool
	Done    int64
	Failed  int64
	Running int // attempts running (a job and its duplicate are two)
	// RunningJobs is the jobs with an attempt running: what a job count
	// (done, failed, running, pending) adds up with.
	RunningJobs int
	Nodes       int
	Started     time.Time
	Finished    bool
	LastError   string // the most recent job failure, for a glance
	// OutOfService is how many of the Nodes were taken out of service:
	// their attempts kept failing as system failures (see sched).
	OutOfService int
	// Clusters are a grid's clusters, by name, as the root sees them
	// (see ClusterProgress); none outside a grid.
	Clusters []ClusterProgress
	// PerNode is each node connected now, by name, with its attempts
	// running (a grid's root: each cluster's head, and the attempts it
	// holds); only with Config.PerNode, and brought up to date at most
	// once a second.
	PerNode []NodeProgress
	// StagedIn and StagedOut are the bytes the attempts that ended in
	// this run copied from the root and back.
	StagedIn, StagedOut int64
	// Work is the CPU-seconds, on a CPU of speed 1, of the attempts that
	// succeeded in this run: each one's wall time times its node's speed
	// (a cluster head's counts speed 1). Worked is how many attempts it
	// counts, and Longest the most one of them took.
	Work, Longest float64
	Worked        int64
	// Capacity is the CPUs connected and in service now, each times its
	// speed, a node's job limit counting instead of its CPUs when larger
	// (a grid's root: its clusters' CPUs in service, or their slots, as
	// their heads last said, at speed 1); Fastest is the fastest speed among
	// them (0 when none is).
	Capacity, Fastest float64
	// Changes counts the attempts started and ended, and the jobs failed
	// without one, in this run: it grows whenever the store's jobs or
	// attempts change state.
	Changes int64
}

// NodeProgress is one node in Progress.PerNode.
type NodeProgress struct {
	Name, Cluster string
	// Running is its attempts running (a cluster head's: those it holds,
	// running or queued there).
	Running int
	// CPUs and Speed are what it counts for (a cluster head: its
	// cluster's CPUs in service, at speed 1); Memory its bytes of RAM
	// (0: not known).
	CPUs   int
	Speed  float64
	Memory int64
	// Limit is its job limit now (a cluster head: its cluster's slots);
	// 0 when out of service, -1 under a policy that sets none.
	Limit int
	// Load is its 1-minute load average as its last heartbeat said.
	Load float64
	// Resident is the bytes its running attempts hold, as its last
	// heartbeat said.
	Resident int64
	// Out is set when the core took it out of service; Reason says why
	// and OutSince since when (zero when not known).
	Out      bool
	Reason   string
	OutSince time.Time
	// Draining is set when the node said it drains (a pilot idle for
	// long, or near its end): it takes no more jobs, and is shut down
	// once its attempts have ended. A node that drains is not Out.
	Draining bool
	// Started is how many attempts the dispatcher started on it in this
	// run.
	Started int64
}

// Summary is how a run ended.
type Summary struct {
	Progress
	Wall time.Duration
	// Ignored is how many of the done jobs had commands whose failure
	// onerror ignore let pass.
	Ignored int64
}

// ErrInterrupted is returned by Run when its context was cancelled: the
// state is saved and running the experiment again resumes it.
var ErrInterrupted = errors.New("interrupted; run again to resume")

// Dispatcher runs one experiment on a cluster of nodes. Transports hand
// it nodes through Joined, Ended, Heartbeat and Gone (see Node).
type Dispatcher struct {
	cfg    Config
	log    *slog.Logger
	clock  Clock
	events chan event
	ctx    context.Context
	stop   context.CancelFunc

	await    []string      // clusters whose heads Run waits for (see Await)
	awaitFor time.Duration // how long at most

	mu    sync.Mutex
	known map[Node]bool // every node a transport has told of, until it is gone
}

// event is something a transport tells Run.
type event struct {
	node  Node
	join  *Joining
	ended *protocol.Event
	beat  *protocol.Heartbeat
	gone  bool
	err   error
	// lose is a cluster whose head its owner gave up (see LoseCluster);
	// err says why.
	lose string
}

// New returns a dispatcher.
func New(cfg Config) *Dispatcher {
	if cfg.Policy.Name == "" {
		cfg.Policy = sched.Orrery
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = time.Second
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Dispatcher{cfg: cfg, log: cfg.Log, clock: cfg.Clock, events: make(chan event, 256), ctx: ctx, stop: stop,
		known: map[Node]bool{}}
}

// IncomingDir is where files arriving on the root are written before they
// are renamed into place: in the state directory, cleared by Run.
func (d *Dispatcher) IncomingDir() string { return filepath.Join(d.cfg.Store.Dir(), "incoming") }

// send hands an event to Run, unless the dispatcher has stopped; a node
// that arrives after that is closed at once.
func (d *Dispatcher) send(e event) {
	if e.node != nil {
		d.mu.Lock()
		if e.gone {
			delete(d.known, e.node)
		} else {
			d.known[e.node] = true
		}
		d.mu.Unlock()
	}
	select {
	case d.events <- e:
	case <-d.ctx.Done():
		if !e.gone {
			e.node.Close()
		}
	}
}

// Close stops taking events and closes every node's connection. The
// transports' goroutines are their owners' to wait for.
func (d *Dispatcher) Close() {
	d.stop()
	d.mu.Lock()
	nodes := make([]Node, 0, len(d.known))
	for n := range d.known {
		nodes = append(nodes, n)
	}
	d.mu.Unlock()
	for _, n := range nodes {
		n.Close()
	}
}
