package head

import (
	"context"
	"io"
	"maps"
	"slices"

	"orrery/task"
)

// prefetcher fetches into the cache the root files each job the head
// holds will read, ahead of the job: a job queued on the head then runs
// on while the link to the root is cut, and a job that starts finds its
// inputs on the head's disk. One file at a time, in job order; a fetch
// that fails is left for the job itself, which fails or retries as it
// would have.
func (h *Head) prefetcher(ctx context.Context) {
	done := map[int64]int{} // job → the root attempt whose inputs are fetched
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.fetch:
		}
		for {
			job, attempt, reads := h.nextFetch(done)
			if reads == nil {
				break
			}
			for _, name := range reads {
				if ctx.Err() != nil {
					return
				}
				if rc, err := h.cache.Root(upstream{h: h, fresh: true}).Open(ctx, name); err == nil {
					io.Copy(io.Discard, rc)
					rc.Close()
				}
			}
			done[job] = attempt
		}
		for job := range done {
			if !h.holds(job) {
				delete(done, job)
			}
		}
	}
}

// nextFetch is the first job the head holds, not ended, whose inputs are
// not fetched yet, and what it reads.
func (h *Head) nextFetch(done map[int64]int) (int64, int, []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.mainTask == nil {
		return 0, 0, nil
	}
	for _, k := range slices.Sorted(maps.Keys(h.j.entries)) {
		e := h.j.entries[k]
		if e.Result != nil || done[k] == e.Attempt {
			continue
		}
		reads := task.TaskAccess(h.mainTask, task.Job{Index: e.Job, Names: h.names, Values: e.Values}).Reads()
		if reads == nil {
			reads = []string{}
		}
		return e.Job, e.Attempt, reads
	}
	return 0, 0, nil
}

// holds reports whether the head holds an attempt of job.
func (h *Head) holds(job int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.j.entries[job] != nil
}
