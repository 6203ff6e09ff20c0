package dispatch

import (
	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// Feed is where a cluster head's dispatcher takes its jobs (Config.Feed):
// the root hands them out, not a sweep. The head's dispatcher runs them
// on its cluster's nodes under its own policy, keeps them in its own
// store (the head's journal), and tells the feed how each ended. It runs
// no root task: rootstart and rootfinish are the root's.
//
// Run calls every method from its own goroutine; none may block.
type Feed interface {
	// Names are the plan's parameter names, the order of FedJob.Values.
	Names() []string
	// Wake receives when Take, Withdrawn or Closed may have news.
	Wake() <-chan struct{}
	// Take returns at most n jobs to queue.
	Take(n int) []FedJob
	// Withdrawn returns the jobs the root took back since the last
	// call: their attempts are cancelled and the jobs forgotten. Run
	// calls it between its decisions: every start decided before it
	// has been told to Started.
	Withdrawn() []int64
	// Closed reports that no more jobs will come: when every job taken
	// has ended, Run returns.
	Closed() bool
	// Started is told that an attempt of a job taken started on a node.
	Started(job int64)
	// Ended is told that a job taken ended for good, once that is in
	// the store: done (res.OK), failed by its own commands, or failed
	// after its system failures ran out of retries (res.System).
	Ended(job int64, res *protocol.Result)
}

// FedJob is a job a Feed hands out.
type FedJob struct {
	Index  int64
	Values []string
}

// names are the parameter names: the sweep's, or the feed's.
func (r *runState) names() []string {
	if f := r.d.cfg.Feed; f != nil {
		return f.Names()
	}
	return r.d.cfg.Sweep.Names
}

// takeFed queues up to want jobs from the feed; a job handed out again
// (the root took it back from this head and gave it again) is pending
// once more in the store.
func (r *runState) takeFed(want int) error {
	f := r.d.cfg.Feed
	for _, idx := range f.Withdrawn() {
		r.withdraw(idx)
	}
	if want <= 0 {
		return nil
	}
	for _, j := range f.Take(want) {
		if r.jobs[j.Index] != nil {
			continue // already here: the root's copy of it is the same job
		}
		// A job handed out again keeps counting its attempts.
		attempts := 0
		err := r.d.cfg.Store.Jobs(r.ctx, r.exp.ID, "", j.Index-1, 1, func(sj store.Job) error {
			if sj.Index == j.Index {
				attempts = sj.Attempts
			}
			return nil
		})
		if err != nil {
			return err
		}
		r.jobs[j.Index] = &liveJob{values: j.Values}
		r.batch.FeedJob(r.exp.ID, store.Job{Index: j.Index, Values: j.Values})
		r.core.Enqueue(sched.Job{Index: j.Index, Params: params(j.Values), Attempts: attempts})
		r.prog.Total++
	}
	return nil
}

// withdraw stops a job the root took back: its running attempts are
// cancelled and recorded so, and it is no longer this head's.
func (r *runState) withdraw(idx int64) {
	j := r.jobs[idx]
	r.batch.WithdrawJob(r.exp.ID, idx) // also one not queued yet
	if j == nil {
		return
	}
	now := r.now()
	r.core.Withdraw(idx, now) // its Cancel actions are carried out by act
	for n, node := range j.runs {
		delete(j.runs, n)
		r.stopAttempt(store.Attempt{Job: idx, N: n, Node: node, State: store.AttemptCancelled, Ended: now,
			Error: "the root took the job back"}, false)
	}
	delete(r.jobs, idx)
	r.prog.Total--
}

// fedEnded tells the feed, once the batch that records it is in the
// store, that a job ended.
func (r *runState) fedEnded(job int64, res *protocol.Result) {
	f := r.d.cfg.Feed
	if f == nil {
		return
	}
	r.afterApply = append(r.afterApply, func() { f.Ended(job, res) })
}
