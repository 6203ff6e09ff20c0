package head

import (
	"fmt"
	"maps"
	"slices"

	"orrery/dispatch"
	"orrery/protocol"
	"orrery/task"
)

// The head is its dispatcher's feed (dispatch.Feed): the root's
// attempts come in through the connection (started, cancelled), go out
// through Take and Withdrawn, and their ends come back through Ended.

// Names implements dispatch.Feed.
func (h *Head) Names() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.names
}

// Wake implements dispatch.Feed.
func (h *Head) Wake() <-chan struct{} { return h.wake }

// Take implements dispatch.Feed.
func (h *Head) Take(n int) []dispatch.FedJob {
	h.mu.Lock()
	defer h.mu.Unlock()
	n = min(n, len(h.queue))
	out := slices.Clone(h.queue[:n])
	h.queue = h.queue[n:]
	return out
}

// Withdrawn implements dispatch.Feed. It also settles the root's
// withdraws of attempts the dispatcher had taken (see withdrawing): it
// runs on the dispatcher's goroutine between its decisions, each start
// of which has been journalled (Started) by then, so an attempt not
// started now has not left for a node, and is given back.
func (h *Head) Withdrawn() []int64 {
	h.mu.Lock()
	var back []entry
	var err error
	for _, job := range slices.Sorted(maps.Keys(h.pulling)) {
		attempt := h.pulling[job]
		delete(h.pulling, job)
		e := h.j.entries[job]
		if e == nil || e.Attempt != attempt || e.started || e.Result != nil {
			continue // it left the queue for a node first, or ended: it runs on
		}
		if err = h.giveBack(e); err != nil {
			break
		}
		h.withdrawn = append(h.withdrawn, job)
		back = append(back, *e)
	}
	w := h.withdrawn
	h.withdrawn = nil
	h.mu.Unlock()
	if err != nil {
		h.fail(err)
	}
	for _, e := range back {
		h.removeSpool(e.Job, e.Attempt)
	}
	if len(back) > 0 {
		h.poke(h.report)
	}
	return w
}

// Closed implements dispatch.Feed.
func (h *Head) Closed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed && len(h.queue) == 0
}

// Started implements dispatch.Feed: the root hears (from the reporter)
// that the attempt left the head's queue for a node, so its allocator
// no longer takes it back to send elsewhere.
func (h *Head) Started(job int64) {
	h.mu.Lock()
	e := h.j.entries[job]
	if e == nil || e.started || e.Result != nil {
		h.mu.Unlock()
		return
	}
	err := h.j.add(record{Op: "started", entry: entry{Job: job, Attempt: e.Attempt}})
	h.mu.Unlock()
	if err != nil {
		h.fail(err)
		return
	}
	h.poke(h.report)
}

// Ended implements dispatch.Feed: the end is journalled, and the
// reporter sends it (after the attempt's results) when the root is
// there.
func (h *Head) Ended(job int64, res *protocol.Result) {
	// Only the head says an attempt was cancelled by the root (see
	// cancelled): a node of its cluster cannot make its failure look so.
	c := *res
	c.Cancelled = false
	res = &c
	h.mu.Lock()
	e := h.j.entries[job]
	if e == nil || e.Result != nil {
		h.mu.Unlock()
		return
	}
	err := h.j.add(record{Op: "end", entry: entry{Job: job, Attempt: e.Attempt, Result: res}})
	delete(h.access, job)
	h.mu.Unlock()
	if err != nil {
		h.fail(err)
		return
	}
	h.poke(h.report)
}

// poke wakes whoever waits on c.
func (h *Head) poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// fail stops the head for an error of its own (its disk).
func (h *Head) fail(err error) {
	h.log.Error("head failed", "err", err)
	h.mu.Lock()
	stop := h.stop
	h.mu.Unlock()
	if stop != nil {
		stop(err)
	}
}

// started takes an attempt the root started on the head: journalled,
// then queued for the dispatcher. An attempt of a job the head already
// holds replaces the earlier one (the root gave that up).
func (h *Head) started(s *protocol.Start) {
	if s == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if e := h.j.entries[s.Job]; e != nil && e.Attempt == s.Attempt {
		return // known: it was resumed
	}
	if err := h.j.add(record{Op: "start", entry: entry{Job: s.Job, Attempt: s.Attempt, Values: s.Values}}); err != nil {
		go h.fail(err)
		return
	}
	delete(h.requeued, s.Job) // a new attempt of its own
	delete(h.sent, s.Job)
	delete(h.access, s.Job)
	h.queue = append(h.queue, dispatch.FedJob{Index: s.Job, Values: s.Values})
	h.poke(h.wake)
	h.poke(h.fetch)
	h.poke(h.pilotNews)
}

// cancelled takes back an attempt the root no longer wants: its job
// stops on the cluster (when it still runs), its results are dropped,
// and its end ("cancelled") is sent, which the root awaits before it
// counts the attempt stopped; the root's answer (TypeRecorded) then
// forgets it.
func (h *Head) cancelled(job int64, attempt int) {
	h.mu.Lock()
	e := h.j.entries[job]
	if e == nil || (attempt != 0 && e.Attempt != attempt) {
		h.mu.Unlock()
		return
	}
	if e.Result == nil {
		i := slices.IndexFunc(h.queue, func(f dispatch.FedJob) bool { return f.Index == job })
		if i >= 0 {
			h.queue = slices.Delete(h.queue, i, i+1)
		}
		if i < 0 || h.requeued[job] {
			h.withdrawn = append(h.withdrawn, job)
		}
	}
	err := h.giveBack(e) // also when it had ended: its results are not sent
	h.mu.Unlock()
	if err != nil {
		h.fail(err)
		return
	}
	h.removeSpool(job, e.Attempt)
	h.poke(h.wake)
	h.poke(h.report)
}

// giveBack journals that the head gives attempt e back to the root
// (its end "cancelled", which the root awaits), under h.mu.
func (h *Head) giveBack(e *entry) error {
	res := &protocol.Result{Error: "cancelled by the root", Cancelled: true}
	err := h.j.add(record{Op: "end", entry: entry{Job: e.Job, Attempt: e.Attempt, Result: res}})
	e.Result = res
	delete(h.sent, e.Job)
	delete(h.access, e.Job)
	return err
}

// withdrawing takes the root's withdraw of an attempt: it is given back
// (as cancelled) only while it waits in the head's queue. One still in
// the head's queue is dropped at once; one its dispatcher took is given
// back by Withdrawn unless it started on a node first; one that started
// (or ended) runs on, and the root hears of its start (the reporter
// says it once per connection, and the registration lists it started)
// and its end.
func (h *Head) withdrawing(job int64, attempt int) {
	h.mu.Lock()
	e := h.j.entries[job]
	if e == nil || e.Attempt != attempt || e.started || e.Result != nil {
		h.mu.Unlock()
		if e != nil && e.Attempt == attempt {
			h.log.Info("the root asked back an attempt that has left the queue: it runs on", "job", job, "attempt", attempt)
		}
		return
	}
	i := slices.IndexFunc(h.queue, func(f dispatch.FedJob) bool { return f.Index == job })
	if i < 0 {
		if h.pulling == nil {
			h.pulling = map[int64]int{}
		}
		h.pulling[job] = attempt
		h.mu.Unlock()
		h.poke(h.wake)
		return
	}
	h.queue = slices.Delete(h.queue, i, i+1)
	if h.requeued[job] {
		// Back in the queue from the journal after a restart: the
		// dispatcher's store may hold it pending from before.
		h.withdrawn = append(h.withdrawn, job)
	}
	err := h.giveBack(e)
	h.mu.Unlock()
	if err != nil {
		h.fail(err)
		return
	}
	h.removeSpool(job, attempt)
	h.poke(h.report)
}

// recorded forgets an attempt whose end the root has taken.
func (h *Head) recorded(job int64, attempt int) {
	h.mu.Lock()
	e := h.j.entries[job]
	if e == nil || e.Attempt != attempt || e.Result == nil {
		h.mu.Unlock()
		return
	}
	err := h.j.add(record{Op: "drop", entry: entry{Job: job, Attempt: attempt}})
	delete(h.sent, job)
	h.mu.Unlock()
	if err != nil {
		h.fail(err)
		return
	}
	h.removeSpool(job, attempt)
}

// removeSpool removes an attempt's results from the head's disk.
func (h *Head) removeSpool(job int64, attempt int) {
	if sp, err := h.cache.Spool(job, attempt); err == nil {
		sp.Remove()
	}
}

// shutdown takes the root's word that there is no more work: the
// experiment is over (reason ""), or the root stops it.
func (h *Head) shutdown(reason string) {
	h.mu.Lock()
	h.closed = true
	stop := h.stop
	h.mu.Unlock()
	h.poke(h.wake)
	if reason != "" && stop != nil {
		stop(fmt.Errorf("%w: %s", ErrStopped, reason))
	}
}

// held lists the root's attempts the head holds, for its registration.
func (h *Head) held() []protocol.AttemptRef {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]protocol.AttemptRef, 0, len(h.j.entries))
	for _, e := range h.j.entries {
		out = append(out, protocol.AttemptRef{Job: e.Job, Attempt: e.Attempt, Started: e.started || e.Result != nil})
	}
	slices.SortFunc(out, func(a, b protocol.AttemptRef) int { return int(a.Job - b.Job) })
	return out
}

// putTarget is the root attempt whose job may write the root file name:
// its results go to that attempt's spool.
func (h *Head) putTarget(name string) (job int64, attempt int, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mainTask == nil {
		return 0, 0, false
	}
	for _, k := range slices.Sorted(maps.Keys(h.j.entries)) {
		e := h.j.entries[k]
		if e.Result != nil {
			continue
		}
		a := h.access[k]
		if a == nil {
			a = task.TaskAccess(h.mainTask, task.Job{Index: e.Job, Names: h.names, Values: e.Values})
			h.access[k] = a
		}
		if a.CanPut(name) {
			return e.Job, e.Attempt, true
		}
	}
	return 0, 0, false
}
