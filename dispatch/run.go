package dispatch

import (
	"context"
	"fmt"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"time"

	"orrery/plan"
	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
	"orrery/sweep"
	"orrery/task"
)

// liveJob is a job queued or running in this run.
type liveJob struct {
	values []string
	runs   map[int]string   // running attempts (two when duplicated) and the nodes that run them
	moved  map[int]*migrant // attempts the core moved off the node that runs them
}

// migrant is where a moved attempt's processes must be: the node whose
// control group they run in (the node that started them keeps them, as
// MOSIX's home node keeps a migrated process's deputy).
type migrant struct {
	to     string
	group  int // the process group last reported for the attempt
	placed int // the process group last moved to `to` (0: none yet)
}

// attemptKey names one attempt of a job.
type attemptKey struct {
	job     int64
	attempt int
}

// stopping is an attempt the dispatcher cancelled whose end the node
// has not reported yet.
type stopping struct {
	node   string
	state  string // how it is recorded: cancelled, or lost
	reason string
	since  time.Time
}

// runState is the state Run's goroutine owns.
type runState struct {
	d    *Dispatcher
	ctx  context.Context
	exp  *store.Experiment
	core decider
	it   *sweep.Iterator

	itDone       bool
	pendingAfter int64 // paging through jobs left pending by earlier runs
	pendingDone  bool
	cursorMoved  bool

	jobs     map[int64]*liveJob
	stopping map[attemptKey]stopping // cancelled attempts still ending
	nodes    map[string]*nodeConn    // by node ID
	links    map[Node]*nodeConn      // the connection each admitted node has now
	began    map[attemptKey]time.Time
	batch    store.Batch
	prog     Progress

	nodestart *task.Access // what nodestart may touch on the root
	mainTask  *plan.Task
	// afterApply are actions decided outside act (a lost node's moved
	// attempts to cancel, moves to carry out) that wait until the batch
	// recording them is in the store.
	afterApply []func()

	lastProgress time.Time
	lastPerNode  time.Time // when Progress.PerNode was last brought up to date
	idleSince    time.Time // since when no connected node in service was there
	waiting      bool      // said that no node is in service
	// outOfService are the nodes the core took out of service, and why.
	outOfService map[string]outOf

	state    *stateWatch // the state directory as Run opened it
	stateErr error       // set when it failed under the run: nothing more is recorded
	saved    Progress    // the counts as last recorded

	// stateBroke is set when a node's copy showed the state directory
	// cannot be written (see probeState): the run stops before it
	// records anything more.
	stateBroke error

	grid gridView // a grid's clusters, as the root sees them (clusters.go)

	// awaiting are the clusters whose heads the run waits for before it
	// decides anything, until awaitUntil (see Dispatcher.Await).
	awaiting   map[string]bool
	awaitUntil time.Time

	// drains are the nodes that drain and have not been shut down yet
	// (see drain.go).
	drains map[string]bool
}

// Run runs the experiment until every job has ended: rootstart first
// (unless an earlier run of the experiment did it), then every job not yet
// done, then rootfinish. It returns ErrInterrupted when ctx is cancelled.
func (d *Dispatcher) Run(ctx context.Context) (Summary, error) {
	exp := d.cfg.Experiment
	r := &runState{d: d, ctx: ctx, exp: exp, jobs: map[int64]*liveJob{}, nodes: map[string]*nodeConn{},
		links: map[Node]*nodeConn{}, began: map[attemptKey]time.Time{}, stopping: map[attemptKey]stopping{},
		outOfService: map[string]outOf{}, drains: map[string]bool{}}
	if d.cfg.Grid && d.cfg.Policy.UsesGrid() {
		// A grid's root under a policy that shares by rate: the
		// coordinator's allocator, its clusters the heads.
		r.core = newGridDecider(sched.GridConfig{Policy: d.cfg.Policy, Retries: d.cfg.Retries, Duplicates: true},
			10*d.cfg.Heartbeat)
	} else {
		r.core = sched.New(sched.Config{Policy: d.cfg.Policy, Retries: d.cfg.Retries,
			HeartbeatTimeout: 10 * d.cfg.Heartbeat, Duplicates: !d.cfg.Grid, Restarts: !d.cfg.Grid,
			Moves: d.cfg.Migrate != nil})
	}
	r.prog.Started = r.now()
	if len(d.await) > 0 {
		r.awaiting = map[string]bool{}
		for _, c := range d.await {
			r.awaiting[c] = true
		}
		r.awaitUntil = r.prog.Started.Add(d.awaitFor)
	}
	r.mainTask = d.cfg.Plan.Task(plan.TaskMain)
	if t := d.cfg.Plan.Task(plan.TaskNodeStart); t != nil {
		r.nodestart = task.TaskAccess(t, task.Job{Names: r.names()})
	}
	if err := r.prepare(); err != nil {
		return Summary{}, err
	}
	if err := r.rootTask(plan.TaskRootStart, true); err != nil {
		return r.summary(), err
	}
	if err := r.loop(); err != nil {
		return r.summary(), err
	}
	if err := r.rootTask(plan.TaskRootFinish, false); err != nil {
		return r.summary(), err
	}
	for _, id := range slices.Sorted(maps.Keys(r.nodes)) {
		r.tell(r.nodes[id], func(l Node) { l.Shutdown("") })
	}
	r.prog.Finished = true
	r.report(true)
	return r.summary(), nil
}

// summary reports how the run ended, with the counts read back from the
// store, so it never claims what was not saved.
func (r *runState) summary() Summary {
	ctx := context.WithoutCancel(r.ctx)
	if r.stateErr != nil {
		// The store cannot be trusted now: what it last recorded.
		r.prog.Done, r.prog.Failed, r.prog.LastError = r.saved.Done, r.saved.Failed, r.saved.LastError
	} else if counts, err := r.d.cfg.Store.Counts(ctx, r.exp.ID); err == nil {
		r.prog.Done, r.prog.Failed = counts[store.Done], counts[store.Failed]
	}
	sum := Summary{Progress: r.prog, Wall: r.now().Sub(r.prog.Started)}
	if r.stateErr == nil {
		sum.Ignored, _, _ = r.d.cfg.Store.IgnoredJobs(ctx, r.exp.ID, 0)
	}
	return sum
}

// now is the dispatcher's clock's time.
func (r *runState) now() time.Time { return r.d.clock.Now() }

// access is what an attempt of job j may touch on the root: what the
// main task's copy commands name for its values.
func (r *runState) access(index int64, j *liveJob) *task.Access {
	if r.mainTask == nil {
		return nil
	}
	return task.TaskAccess(r.mainTask, task.Job{Index: index, Names: r.names(), Values: j.values})
}

// prepare recovers from an earlier stop and positions the sweep.
func (r *runState) prepare() error {
	st := r.d.cfg.Store
	if _, err := st.Recover(r.ctx, r.exp.ID); err != nil {
		return err
	}
	// Files half-copied to the root when an earlier run stopped.
	if err := os.RemoveAll(r.d.IncomingDir()); err != nil {
		return err
	}
	if err := os.MkdirAll(r.d.IncomingDir(), 0o755); err != nil {
		return err
	}
	if err := r.watchState(); err != nil {
		return err
	}
	counts, err := st.Counts(r.ctx, r.exp.ID)
	if err != nil {
		return err
	}
	r.prog.Done, r.prog.Failed = counts[store.Done], counts[store.Failed]
	r.saved = r.prog
	if r.d.cfg.Feed != nil {
		// A head: what its root handed out, which grows as it goes.
		r.prog.Total = counts[store.Pending] + counts[store.Running] + counts[store.Done] + counts[store.Failed]
		r.itDone = true
		return nil
	}
	r.prog.Total, r.prog.Exact = r.d.cfg.Sweep.Count()
	r.it = r.d.cfg.Sweep.Iter()
	r.it.Resume(r.exp.Cursor, r.exp.LastIndex)
	r.itDone = r.exp.Generated
	return nil
}

// rootTask runs rootstart or rootfinish on the root. rootstart runs once
// per experiment; rootfinish at the end of every run that completes.
func (r *runState) rootTask(name string, once bool) error {
	t := r.d.cfg.Plan.Task(name)
	if t == nil || r.d.cfg.Feed != nil {
		return nil
	}
	st := r.d.cfg.Store
	if once {
		if done, err := st.HasEvent(r.ctx, r.exp.ID, name+".done"); err != nil || done {
			return err
		}
	}
	res, err := task.RunRootTask(r.ctx, t, task.Job{Names: r.names()}, r.d.cfg.Root, guardRoot(r.d.cfg.Exec, r.d.log))
	if err != nil {
		if r.ctx.Err() != nil {
			return ErrInterrupted
		}
		msg := err.Error()
		if res != nil && res.Failed >= 0 {
			c := res.Commands[res.Failed]
			msg += "\n" + c.Stderr.String() + c.Stdout.String()
		}
		r.batch.Event(r.exp.ID, name+".failed", 0, "", msg)
		st.Apply(context.WithoutCancel(r.ctx), &r.batch)
		return &RootTaskError{Task: name, Detail: msg}
	}
	r.batch.Event(r.exp.ID, name+".done", 0, "", "")
	return st.Apply(r.ctx, &r.batch)
}

// finished reports whether every job has ended, and every attempt the
// dispatcher cancelled has stopped (so none still copies files back).
func (r *runState) finished() bool {
	return r.generated() && len(r.jobs) == 0 && len(r.stopping) == 0
}

// generated reports whether every job there will be has been queued:
// the sweep is exhausted and no job an earlier run left is unqueued; for
// a head, its root also said no more will come.
func (r *runState) generated() bool {
	return r.itDone && r.pendingDone && (r.d.cfg.Feed == nil || r.d.cfg.Feed.Closed())
}

// loop dispatches until every job has ended.
func (r *runState) loop() error {
	tick, stopTick := r.d.clock.Ticker(r.d.cfg.Heartbeat)
	defer stopTick()
	var wake <-chan struct{} // a head's root has news
	if r.d.cfg.Feed != nil {
		wake = r.d.cfg.Feed.Wake()
	}
	r.idleSince = r.now()
	for {
		if err := r.feed(); err != nil {
			return err
		}
		if err := r.act(); err != nil {
			return err
		}
		r.report(false)
		if r.finished() {
			return nil
		}
		if err := r.checkIdle(); err != nil {
			return err
		}
		select {
		case e := <-r.d.events:
			r.handle(e)
		case <-wake:
		case <-tick:
			if err := r.checkState(nil); err != nil {
				return r.abandon(err)
			}
			r.keepHeads(r.now())
			for _, id := range r.core.Tick(r.now()) {
				r.lost(id, "node "+id+" missed its heartbeats")
			}
			r.giveUpStopping()
		case <-r.ctx.Done():
			r.interrupt()
			return ErrInterrupted
		}
		// Take whatever else has arrived, so one transaction covers it.
		for drained := false; !drained && r.batch.Len() < 2000; {
			select {
			case e := <-r.d.events:
				r.handle(e)
			default:
				drained = true
			}
		}
	}
}

// giveUpStopping stops waiting for cancelled attempts whose node has not
// confirmed them stopped within the heartbeat timeout: a node that hangs
// cannot hold the run open (its grants ended with the cancel, so it can
// copy nothing more to the root). A cluster head is waited for as long
// as it is kept (HeadTimeout): a cut link holds its answer back, and it
// answers once it is back (see resume), or its cluster is lost; under a
// grid, a job withdrawn from it goes out again only then, so that it
// never runs on two clusters at once.
func (r *runState) giveUpStopping() {
	now := r.now()
	gd, grid := r.core.(*gridDecider)
	for k, s := range r.stopping {
		if nc := r.nodes[s.node]; nc != nil && nc.head {
			continue
		}
		if now.Sub(s.since) > 10*r.d.cfg.Heartbeat {
			delete(r.stopping, k)
			r.d.log.Warn("a cancelled attempt did not stop; no longer waiting for it", "node", s.node, "job", k.job, "attempt", k.attempt)
			r.batch.Event(r.exp.ID, "attempt.unconfirmed", k.job, s.node, "the node did not confirm the cancelled attempt stopped")
			if grid {
				gd.Stopped(k.job, k.attempt, now) // one withdrawn goes out again
			}
		}
	}
}

// checkIdle gives up when work is left and no node that can run it
// (connected and in service) has been there for the configured time
// (Config.NoNodes; 0: wait for ever). Nodes out of service, or
// disconnected, are as good as none: another may join, or come back.
func (r *runState) checkIdle() error {
	if r.serving() {
		r.idleSince = r.now()
		r.waiting = false
		return nil
	}
	if !r.waiting && len(r.nodes) > 0 && r.core.NodesInService() == 0 {
		r.waiting = true
		r.d.log.Warn("no node in service: the jobs wait for a node to join (--wait)", "out_of_service", len(r.outOfService))
	}
	if r.d.cfg.NoNodes > 0 && r.now().Sub(r.idleSince) > r.d.cfg.NoNodes {
		r.interrupt()
		if err := r.allOutOfService(); err != nil {
			return err
		}
		return ErrNoNodes
	}
	return nil
}

// serving reports whether a connected node in service is there.
func (r *runState) serving() bool {
	for id, nc := range r.nodes {
		if nc.link != nil && r.core.InService(id) {
			return true
		}
	}
	return false
}

// feed queues as many jobs as the core wants: first jobs an earlier run
// left pending (or rerun marked), then new jobs from the sweep.
func (r *runState) feed() error {
	want := r.core.Wanted()
	for want > 0 && !r.pendingDone {
		n := 0
		err := r.d.cfg.Store.Jobs(r.ctx, r.exp.ID, store.Pending, r.pendingAfter, want, func(j store.Job) error {
			n++
			r.pendingAfter = j.Index
			if r.jobs[j.Index] == nil {
				r.jobs[j.Index] = &liveJob{values: j.Values}
				r.core.Enqueue(sched.Job{Index: j.Index, Params: params(j.Values), Attempts: j.Attempts})
				want--
			}
			return nil
		})
		if err != nil {
			if r.ctx.Err() != nil {
				r.interrupt()
				return ErrInterrupted
			}
			return r.abandon(r.checkState(err))
		}
		if n == 0 {
			r.pendingDone = true
		}
	}
	if r.d.cfg.Feed != nil {
		if err := r.takeFed(want); err != nil {
			if r.ctx.Err() != nil {
				r.interrupt()
				return ErrInterrupted
			}
			return r.abandon(r.checkState(err))
		}
		return nil
	}
	for ; want > 0 && !r.itDone; want-- {
		if !r.it.Next() {
			r.itDone, r.cursorMoved = true, true
			break
		}
		j := r.it.Job()
		r.jobs[j.Index] = &liveJob{values: j.Values}
		r.batch.AddJob(r.exp.ID, store.Job{Index: j.Index, Ordinal: r.it.Ordinal(), Values: j.Values})
		r.core.Enqueue(sched.Job{Index: j.Index, Params: params(j.Values)})
		r.cursorMoved = true
	}
	if r.cursorMoved {
		r.batch.Cursor(r.exp.ID, r.it.Ordinal(), r.it.Index(), r.itDone)
		r.cursorMoved = false
	}
	return nil
}

// startOn sends a recorded start to its node: now, or when the node
// reconnects. A node that cannot take it is lost.
func (r *runState) startOn(s sched.Start) {
	nc := r.nodes[s.Node]
	if nc == nil {
		return
	}
	nc.started++
	j := r.jobs[s.Job]
	msg := protocol.Start{Job: s.Job, Attempt: s.Attempt, Values: j.values}
	access := r.access(s.Job, j)
	if nc.link == nil {
		nc.waiting = append(nc.waiting, msg)
		if nc.access == nil {
			nc.access = map[attemptKey]*task.Access{}
		}
		nc.access[attemptKey{s.Job, s.Attempt}] = access
		return
	}
	if err := nc.link.Start(msg, access); err != nil {
		r.lost(s.Node, fmt.Sprintf("cannot reach node %s: %v", s.Node, err))
	}
}

// params are a job's values as numbers, for the core to learn from; a
// value that is not a number counts as 0.
func params(values []string) []float64 {
	p := make([]float64, len(values))
	for i, v := range values {
		if f, err := strconv.ParseFloat(v, 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
			p[i] = f
		}
	}
	return p
}

// act takes the core's decisions, records them, and then carries them out.
func (r *runState) act() error {
	var starts []sched.Start
	var cancels, withdraws []sched.Cancel
	now := r.now()
	if r.generated() {
		r.core.Close()
	}
	var decided []sched.Action
	if !r.holding(now) {
		began := time.Now() // wall time, as a metric; decisions take the clock's
		decided = r.core.Ready(now)
		if f := r.d.cfg.Decided; f != nil {
			f(time.Since(began))
		}
	}
	for _, a := range decided {
		switch a := a.(type) {
		case sched.Start:
			j := r.jobs[a.Job]
			if j.runs == nil {
				j.runs = map[int]string{}
			}
			j.runs[a.Attempt] = a.Node
			r.began[attemptKey{a.Job, a.Attempt}] = now
			r.batch.Start(r.exp.ID, a.Job, a.Attempt, a.Node, now)
			r.prog.Changes++
			r.startedIn(a.Node, a.Job, a.Attempt)
			starts = append(starts, a)
		case sched.Cancel:
			if r.cancel(a, now) {
				cancels = append(cancels, a)
			}
		case sched.Move:
			r.move(a)
		case sched.OutOfService:
			r.takeOut(a)
		case sched.Fail:
			r.batch.FailJob(r.exp.ID, a.Job, a.Reason)
			r.prog.Changes++
			delete(r.jobs, a.Job)
			r.prog.Failed++
			r.prog.LastError = fmt.Sprintf("job %d: %s", a.Job, a.Reason)
			r.fedEnded(a.Job, &protocol.Result{System: true, Error: a.Reason})
		}
	}
	if gd, ok := r.core.(*gridDecider); ok {
		for _, w := range gd.takeWithdraws() {
			if r.withdrawAttempt(w) {
				withdraws = append(withdraws, w)
			}
		}
	}
	// The state directory first: a job failure may be its consequence
	// (a copy into incoming/ that failed), and is not the job's.
	if r.stateBroke != nil {
		return r.abandon(r.stateBroke)
	}
	if err := r.checkState(nil); err != nil {
		return r.abandon(err)
	}
	if err := r.d.cfg.Store.Apply(r.ctx, &r.batch); err != nil {
		if r.ctx.Err() != nil {
			return ErrInterrupted
		}
		return r.abandon(r.checkState(err))
	}
	r.saved = r.prog
	for _, f := range r.afterApply {
		f()
	}
	r.afterApply = r.afterApply[:0]
	for _, a := range cancels {
		r.tell(r.nodes[a.Node], func(l Node) { l.Cancel(a.Job, a.Attempt) })
	}
	for _, w := range withdraws {
		r.tell(r.nodes[w.Node], func(l Node) { l.Withdraw(w.Job, w.Attempt) })
	}
	for _, s := range starts {
		// The feed first: a head journals that the attempt left its
		// queue before its node may run it, so a head started again
		// never lets the root take back a job that runs.
		if f := r.d.cfg.Feed; f != nil {
			f.Started(s.Job)
		}
		r.startOn(s)
	}
	r.shutDrained()
	r.prog.Running = r.core.Running()
	return nil
}
