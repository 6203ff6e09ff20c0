package head

import (
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	"orrery/dispatch"
	"orrery/headcache"
	"orrery/protocol"
	"orrery/task"
)

// TestWithdrawKeepsStarted checks what the head does with the root's
// withdraw (a cancel with Withdraw set): an attempt that left its queue
// for a node runs on, and its start is what the root hears, also when
// the withdraw reached the head after its dispatcher had decided to
// start it but before it journalled so; one still in the head's queue,
// or taken by its dispatcher and not started, is given back ("cancelled").
// A plain cancel still stops a started attempt.
func TestWithdrawKeepsStarted(t *testing.T) {
	h := journalHead(t)
	j := h.j
	for job := int64(1); job <= 5; job++ {
		h.take(&protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: job, Attempt: 1, Values: []string{"x"}}})
	}
	if got := h.Take(4); len(got) != 4 {
		t.Fatalf("the dispatcher took %d jobs, want 4", len(got))
	}
	// Job 1 left the queue for a node; job 2's start was decided when
	// its withdraw arrived, and is journalled just after; job 3 waits in
	// the dispatcher's queue; job 5 in the head's.
	h.Started(1)
	withdraw := func(job int64) {
		h.take(&protocol.Msg{Type: protocol.TypeCancel, Job: job, Attempt: 1, Withdraw: true})
	}
	withdraw(1)
	withdraw(2)
	h.Started(2)
	withdraw(3)
	withdraw(5)
	back := h.Withdrawn()
	slices.Sort(back)
	if !slices.Equal(back, []int64{3}) {
		t.Errorf("the dispatcher was told to withdraw %v, want [3]", back)
	}
	for job, given := range map[int64]bool{1: false, 2: false, 3: true, 4: false, 5: true} {
		e := j.entries[job]
		if e == nil {
			t.Fatalf("job %d: no longer held", job)
		}
		if got := e.Result != nil && e.Result.Cancelled; got != given {
			t.Errorf("job %d: given back %v (result %+v), want %v", job, got, e.Result, given)
		}
	}
	if slices.ContainsFunc(h.queue, func(f dispatch.FedJob) bool { return f.Index == 5 }) {
		t.Error("job 5, given back, is still in the head's queue")
	}
	// The root hears that 1.1 and 2.1 started (the reporter says it on
	// each connection).
	var said []int64
	for {
		e, ok := h.nextStart(1)
		if !ok {
			break
		}
		said = append(said, e.Job)
		h.startSent[e.Job] = 1
	}
	slices.Sort(said)
	if !slices.Equal(said, []int64{1, 2}) {
		t.Errorf("the starts said to the root: %v, want [1 2]", said)
	}
	for _, a := range h.held() {
		if (a.Job == 1 || a.Job == 2) && !a.Started {
			t.Errorf("the registration lists %d.%d as not started", a.Job, a.Attempt)
		}
	}
	// A plain cancel stops what runs.
	h.take(&protocol.Msg{Type: protocol.TypeCancel, Job: 1, Attempt: 1})
	if back := h.Withdrawn(); !slices.Equal(back, []int64{1}) {
		t.Errorf("after a cancel of 1.1, the dispatcher was told to withdraw %v, want [1]", back)
	}
	if e := j.entries[1]; e.Result == nil || !e.Result.Cancelled {
		t.Errorf("after a cancel of 1.1: result %+v, want cancelled", e.Result)
	}
}

// TestWithdrawRequeuedAfterRestart: a job put back in the head's queue
// from its journal when the head started again may also be pending in
// its dispatcher's store from before; taken back from the queue (a
// withdraw or a cancel), it is withdrawn from the dispatcher too, so the
// dispatcher does not run a job the root has sent elsewhere. A new
// attempt of it handed over since is not.
func TestWithdrawRequeuedAfterRestart(t *testing.T) {
	h := journalHead(t)
	for job := int64(1); job <= 3; job++ {
		h.take(&protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: job, Attempt: 1, Values: []string{"x"}}})
	}
	// As Run does when the head starts again: the journal's unended
	// attempts are back in the queue.
	h.requeued = map[int64]bool{1: true, 2: true, 3: true}
	h.take(&protocol.Msg{Type: protocol.TypeCancel, Job: 1, Attempt: 1, Withdraw: true})
	h.take(&protocol.Msg{Type: protocol.TypeCancel, Job: 2, Attempt: 1})
	h.take(&protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 3, Attempt: 2, Values: []string{"x"}}})
	back := h.Withdrawn()
	slices.Sort(back)
	if !slices.Equal(back, []int64{1, 2}) {
		t.Errorf("the dispatcher was told to withdraw %v, want [1 2]", back)
	}
}

// journalHead is a head with a journal and a cache in a test directory,
// driven by its message handler alone (no root, no dispatcher).
func journalHead(t *testing.T) *Head {
	t.Helper()
	dir := t.TempDir()
	j, err := openJournal(filepath.Join(dir, "journal"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.close() })
	cache, err := headcache.Open(filepath.Join(dir, "cache"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return &Head{j: j, cache: cache, log: slog.New(slog.DiscardHandler), access: map[int64]*task.Access{}, sent: map[int64]int{},
		startSent: map[int64]int{}, report: make(chan struct{}, 1), wake: make(chan struct{}, 1),
		fetch: make(chan struct{}, 1), pilotNews: make(chan struct{}, 1)}
}
