// Package head is a cluster's head: the cluster's own dispatcher, which
// stands for the whole cluster as one node of the root's. It connects to
// the root's port as `orrery agent` does (the join token on its standard
// input, then the certificate it was enrolled with, kept in its
// directory), registers as a head (protocol.Register.Head), and takes
// the root's attempts into a queue that its own dispatcher (package
// dispatch in feed mode, over its own store) runs on the cluster's nodes
// under the chosen policy. Inputs reach the nodes through a
// content-addressed cache on the head's disk (package headcache), so a
// file common to many jobs crosses the wide-area link once; results
// wait in a spool on the head's disk until the root has them.
//
// A head keeps a journal of the root's attempts it holds and their ends
// (journal.go), so neither its link to the root nor its own process can
// lose one: after a cut it sends again every end the root has not said
// it recorded (protocol.TypeRecorded); started again, it registers the
// attempts it holds and resumes them from its store. A head whose root
// stays away longer than its lease stops its nodes, keeps its results
// and journal on disk, and exits (ErrLeaseExpired).
package head

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"orrery/cluster"
	"orrery/clusterfile"
	"orrery/dispatch"
	"orrery/headcache"
	"orrery/pki"
	"orrery/plan"
	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
	"orrery/task"
)

// Config describes a head.
type Config struct {
	// Dir holds everything the head keeps: its journal, store, cache,
	// spools, credentials and its nodes' work directories.
	Dir string
	// Cluster is the head's cluster, as the cluster file gives it.
	Cluster clusterfile.Cluster
	// Root is where the root's port is: HOST:PORT, or unix:PATH for the
	// socket the root's SSH connection forwards to it.
	Root  string
	Token pki.Token
	// Lease is how long the head goes on without its root (default 1 h).
	Lease time.Duration
	// Policy is the policy its dispatcher runs its nodes under.
	Policy sched.Policy
	// RideOut is how long a cut of its link the head's queue should
	// last its nodes (default 60 s): its depth is its slots plus its job
	// rate times this.
	RideOut time.Duration
	// CacheLimit bounds the input cache (default 10 GiB).
	CacheLimit int64
	// Self is the orrery executable that limited nodes run as `orrery
	// agent` ("": this executable).
	Self string
	// Retry is the first wait before dialling the root again (default
	// 1 s; it doubles up to 30 s).
	Retry time.Duration
	// Redial, when it receives, makes a head that waits to dial its
	// root again dial at once (a root that came back says so).
	Redial <-chan struct{}
	// Pilots tunes a Slurm cluster's pilots (see pilots.go).
	Pilots PilotOptions
	// NodeLauncher starts the cluster's nodes over SSH (`node NAME ssh
	// HOST`); nil: package sshnode with the head user's own keys and
	// known_hosts (see nodes.go).
	NodeLauncher NodeLauncher
	Log          *slog.Logger
	// Status, when set, is told in one line what the head is doing.
	Status func(string)
}

// ErrLeaseExpired is Run's error when the root stayed away for longer
// than the lease: the head stopped its nodes and kept its results.
var ErrLeaseExpired = errors.New("the root stayed away longer than the lease")

// ErrStopped is Run's error when the root stopped the experiment (its
// run was interrupted): the head stopped its nodes and keeps what it
// holds for the root's next run.
var ErrStopped = errors.New("the root stopped the experiment")

// ErrRefusedWelcome is Run's error when the root runs another
// experiment than the one this head's directory holds.
var ErrRefusedWelcome = errors.New("the root runs another experiment")

// Head is a running head.
type Head struct {
	cfg   Config
	log   *slog.Logger
	spec  cluster.Spec
	slots int
	cpus  int
	cache *headcache.Cache

	welcomed chan *protocol.Welcome // the first welcome
	report   chan struct{}          // an end waits to be sent
	wake     chan struct{}          // the dispatcher's feed has news
	fetch    chan struct{}          // a job's inputs wait to be fetched

	mu        sync.Mutex
	j         *journal
	names     []string
	mainTask  *plan.Task
	queue     []dispatch.FedJob // handed out by the root, not yet taken
	withdrawn []int64
	// pulling are the attempts the root asked back (a withdraw) that
	// the dispatcher had taken from the queue: Withdrawn, on the
	// dispatcher's goroutine, gives back those it has not started.
	pulling   map[int64]int
	closed    bool           // the root ended the experiment: no more jobs come
	stop      func(error)    // ends Run with the error
	peer      *protocol.Peer // the connection now; nil while there is none
	gen       int            // counts connections
	up        chan struct{}  // closed while a connection is up
	sent      map[int64]int  // job → the connection its end was sent on
	startSent map[int64]int  // job → the connection its start was said on
	access    map[int64]*task.Access
	seen      map[string]fs.FileInfo // root files as last described by the root
	prog      dispatch.Progress
	firstDone time.Time
	doneSince int64
	lastUp    time.Time
	far       []clusterfile.Node     // nodes over SSH
	local     size                   // the local nodes' size
	joined    map[dispatch.Node]size // nodes joined through the head's port

	joinedNames map[string]bool  // names of the nodes that ever joined its port (pilots' names)
	pilots      []protocol.Pilot // a batch cluster's pilots, as its pilot loop last saw them
	batchErr    string           // why it submits no more pilots
	pilotNews   chan struct{}    // the root handed it work: its pilots may be wanted
	gaveUp      bool             // it stopped for good (noNodesLeft)
	// requeued are the jobs put back in the queue from the journal when
	// the head started again: its dispatcher's store may hold them
	// pending too, so one taken back from the queue is withdrawn there
	// as well.
	requeued map[int64]bool
}

// New checks cfg and prepares a head.
func New(cfg Config) (*Head, error) {
	if cfg.Lease <= 0 {
		cfg.Lease = time.Hour
	}
	if cfg.RideOut <= 0 {
		cfg.RideOut = time.Minute
	}
	if cfg.CacheLimit <= 0 {
		cfg.CacheLimit = 10 << 30
	}
	if cfg.Retry <= 0 {
		cfg.Retry = time.Second
	}
	if cfg.Policy.Name == "" {
		cfg.Policy = sched.Orrery
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Status == nil {
		cfg.Status = func(string) {}
	}
	c := cfg.Cluster
	spec, overSSH := cluster.ForHead(c)
	if len(spec.Nodes) == 0 && len(overSSH) == 0 && c.Listen == "" && c.Slurm == nil {
		spec = cluster.Local(1, 0)
		spec.Nodes[0].Name = c.Name + "-1"
	}
	h := &Head{cfg: cfg, log: cfg.Log, spec: spec, welcomed: make(chan *protocol.Welcome, 1),
		report: make(chan struct{}, 1), wake: make(chan struct{}, 1), fetch: make(chan struct{}, 1), up: make(chan struct{}),
		sent: map[int64]int{}, startSent: map[int64]int{}, access: map[int64]*task.Access{}, seen: map[string]fs.FileInfo{},
		joinedNames: map[string]bool{}, pilotNews: make(chan struct{}, 1)}
	for _, n := range spec.Nodes {
		cpus := max(n.CPUs, 1)
		if n.CPUs == 0 && n.CPUShare > 0 {
			cpus = max(int(math.Ceil(n.CPUShare)), 1)
		}
		h.cpus += cpus
		h.slots += cmp.Or(n.JobLimit, cpus)
	}
	h.expectFar(overSSH)
	if sl := c.Slurm; sl != nil {
		// Until its pilots join, a Slurm cluster counts as the pilots it
		// may have: the root hands it work, for which it submits them.
		h.cpus += sl.Pilots * max(sl.CPUs, 1)
		h.slots += sl.Pilots * max(sl.CPUs, 1)
	}
	return h, nil
}

// Run runs the head until the root ends the experiment (nil), stops it
// (ErrInterrupted-like: the run was interrupted), ctx ends, or the lease
// expires.
func (h *Head) Run(ctx context.Context) error {
	os.Remove(filepath.Join(h.cfg.Dir, GaveUpFile)) // a new run tries again
	var err error
	if h.j, err = openJournal(filepath.Join(h.cfg.Dir, "journal")); err != nil {
		return err
	}
	defer h.j.close()
	// Attempts the head held when it stopped and had not finished: its
	// store may not have them yet (a crash right after the journal line).
	for _, k := range slices.Sorted(maps.Keys(h.j.entries)) {
		if e := h.j.entries[k]; e.Result == nil {
			h.queue = append(h.queue, dispatch.FedJob{Index: e.Job, Values: e.Values})
			if h.requeued == nil {
				h.requeued = map[int64]bool{}
			}
			h.requeued[e.Job] = true
		}
	}
	if h.cache, err = headcache.Open(filepath.Join(h.cfg.Dir, "cache"), h.cfg.CacheLimit); err != nil {
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	h.mu.Lock()
	h.stop = func(err error) { cancel(err) }
	h.lastUp = time.Now()
	h.mu.Unlock()
	var wg sync.WaitGroup
	wg.Add(3)
	go func() { defer wg.Done(); h.serve(ctx) }()
	go func() { defer wg.Done(); h.reporter(ctx) }()
	go func() { defer wg.Done(); h.prefetcher(ctx) }()
	defer wg.Wait()
	var w *protocol.Welcome
	select {
	case w = <-h.welcomed:
	case <-ctx.Done():
		return cause(ctx)
	}
	err = h.runCluster(ctx, w)
	if err == nil {
		err = h.drain(ctx)
	}
	cs := h.cache.Stats()
	h.cfg.Status(fmt.Sprintf("cache: %d hits, %d misses, %d bytes fetched, %d bytes served, %d evictions",
		cs.Hits, cs.Misses, cs.BytesFetched, cs.BytesServed, cs.Evictions))
	cancel(nil)
	return err
}

// cause is why ctx ended.
func cause(ctx context.Context) error {
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// runCluster runs the head's dispatcher over its nodes until the root
// ends the experiment (and every job taken has ended) or ctx ends.
func (h *Head) runCluster(ctx context.Context, w *protocol.Welcome) error {
	d, err := plan.ParseDialect(w.Dialect)
	if err != nil {
		return err
	}
	p, err := plan.Parse(w.PlanName, []byte(w.PlanText), plan.Options{Dialect: &d})
	if err != nil {
		return fmt.Errorf("the root's plan: %w", err)
	}
	st, err := store.Open(ctx, filepath.Join(h.cfg.Dir, "state"))
	if err != nil {
		return err
	}
	defer st.Close()
	exp, err := st.Latest(ctx)
	switch {
	case errors.Is(err, store.ErrNoExperiment):
		exp = &store.Experiment{PlanPath: "root:" + w.PlanName, PlanText: w.PlanText, Dialect: w.Dialect, Names: w.Names}
		if err := st.Create(ctx, exp); err != nil {
			return err
		}
	case err != nil:
		return err
	case exp.PlanText != w.PlanText:
		return fmt.Errorf("%w: its plan is not the one in %s", ErrRefusedWelcome, h.cfg.Dir)
	}
	h.mu.Lock()
	h.names, h.mainTask = w.Names, p.Task(plan.TaskMain)
	h.mu.Unlock()
	h.poke(h.fetch)
	var c *cluster.Cluster
	var migrate func(pgid int, node string) error
	if h.spec.Migratable() {
		migrate = func(pgid int, node string) error { return c.Migrate(pgid, node) }
	}
	disp := dispatch.New(dispatch.Config{Plan: p, Store: st, Experiment: exp, Root: h.cfg.Dir,
		Policy: h.cfg.Policy, Heartbeat: w.Heartbeat, Feed: h, Migrate: migrate, Log: h.log,
		Progress: h.progress, PerNode: h.cfg.Cluster.Slurm != nil})
	nodeCtx, stopNodes := context.WithCancel(context.WithoutCancel(ctx))
	c, err = cluster.Start(nodeCtx, h.spec, filepath.Join(h.cfg.Dir, "nodes"), cluster.Options{
		GroupPrefix: "head" + fmt.Sprint(exp.ID), Root: stagingRoot{h}, Log: h.log, Self: h.cfg.Self}, disp)
	if err == nil {
		far := h.startFar(disp)
		_, err = disp.Run(ctx)
		far.stop(h)
	}
	disp.Close()
	stopNodes()
	c.Wait()
	if errors.Is(err, dispatch.ErrInterrupted) {
		return cause(ctx)
	}
	return err
}

// drain waits until the root has every end the head reached (it said it
// recorded them), for at most the lease.
func (h *Head) drain(ctx context.Context) error {
	deadline := time.Now().Add(h.cfg.Lease)
	for {
		h.mu.Lock()
		left := len(h.j.entries)
		h.mu.Unlock()
		if left == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return ErrLeaseExpired
		}
		select {
		case <-ctx.Done():
			return cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// progress takes the head's dispatcher's counts.
func (h *Head) progress(p dispatch.Progress) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if p.Done > 0 && h.firstDone.IsZero() {
		h.firstDone, h.doneSince = time.Now(), p.Done
	}
	h.prog = p
}

// status is the head's view of its cluster, for its heartbeats.
func (h *Head) status() *protocol.ClusterStatus {
	h.mu.Lock()
	defer h.mu.Unlock()
	held := len(h.j.entries)
	cpus, slots := h.sizeLocked()
	return &protocol.ClusterStatus{Nodes: h.prog.Nodes - h.prog.OutOfService, CPUs: cpus, Slots: slots,
		Running: h.prog.Running, Queued: max(held-h.prog.Running, 0), Depth: h.depthLocked(),
		Pilots: slices.Clone(h.pilots), Batch: h.batchErr}
}

// depthLocked is how many of the root's attempts the head wants to hold:
// its slots, and what its job rate finishes in a ride-out (twice its
// slots until it has a rate).
func (h *Head) depthLocked() int {
	_, slots := h.sizeLocked()
	extra := slots
	if el := time.Since(h.firstDone).Seconds(); !h.firstDone.IsZero() && el >= 1 {
		rate := float64(h.prog.Done-h.doneSince) / el
		extra = int(math.Ceil(rate * h.cfg.RideOut.Seconds()))
	}
	return slots + max(extra, 1)
}
