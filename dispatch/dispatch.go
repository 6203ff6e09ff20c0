// Package dispatch is the cluster dispatcher: it drives the decision core
// (package sched) for a live cluster. It feeds the core's queue lazily from
// the sweep, records every decision in the store before acting on it,
// starts attempts on node agents through the agent protocol, serves their
// staging requests from the root directory, and runs rootstart and
// rootfinish on the root.
//
// One goroutine (Run's) owns all dispatch state; each agent connection
// has a reading goroutine that only forwards messages to it.
package dispatch

import (
	"context"
	"errors"
	"io"
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
}

// Progress is a snapshot of an experiment's jobs.
type Progress struct {
	Total     int64 // jobs in the sweep (an upper bound when TotalExact is false)
	Exact     bool
	Done      int64
	Failed    int64
	Running   int
	Nodes     int
	Started   time.Time
	Finished  bool
	LastError string // the most recent job failure, for a glance
}

// Summary is how a run ended.
type Summary struct {
	Progress
	Wall time.Duration
}

// ErrInterrupted is returned by Run when its context was cancelled: the
// state is saved and running the experiment again resumes it.
var ErrInterrupted = errors.New("interrupted; run again to resume")

// Dispatcher runs one experiment on a cluster of agents.
type Dispatcher struct {
	cfg    Config
	log    *slog.Logger
	events chan event
	wg     sync.WaitGroup // connection goroutines
	ctx    context.Context
	stop   context.CancelFunc

	mu    sync.Mutex
	conns []*agentConn
}

// event is something a connection goroutine tells Run.
type event struct {
	conn *agentConn
	msg  *protocol.Msg // nil: the connection ended, with err
	err  error
}

// agentConn is one connected agent.
type agentConn struct {
	conn  *protocol.Conn
	root  *protocol.RootServer
	name  string  // set when registered
	speed float64 // its relative CPU speed
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
	ctx, stop := context.WithCancel(context.Background())
	return &Dispatcher{cfg: cfg, log: cfg.Log, events: make(chan event, 256), ctx: ctx, stop: stop}
}

// Attach serves an agent connected over rw; it may be called before or
// during Run. The connection is closed when Run ends.
func (d *Dispatcher) Attach(rw io.ReadWriteCloser) {
	c := &agentConn{conn: protocol.NewConn(rw)}
	c.root = protocol.NewRootServer(d.ctx, c.conn, task.DirRoot{Dir: d.cfg.Root, TempDir: d.tempDir()})
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer c.root.Close()
		for {
			m, err := c.conn.Recv()
			if err != nil {
				d.send(event{conn: c, err: err})
				return
			}
			if c.root.Handle(m) {
				continue
			}
			d.send(event{conn: c, msg: m})
		}
	}()
}

// tempDir is where files arriving on the root are written before they
// are renamed into place: in the state directory, cleared by Run.
func (d *Dispatcher) tempDir() string { return filepath.Join(d.cfg.Store.Dir(), "incoming") }

// send hands an event to Run, unless the dispatcher has stopped.
func (d *Dispatcher) send(e event) {
	select {
	case d.events <- e:
	case <-d.ctx.Done():
	}
}

// Close closes every agent connection and waits for their goroutines.
func (d *Dispatcher) Close() {
	d.stop()
	d.mu.Lock()
	for _, c := range d.conns {
		c.conn.Close()
	}
	d.mu.Unlock()
	d.wg.Wait()
}
