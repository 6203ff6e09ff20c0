package dispatch

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// testFeed is a head's root as its dispatcher sees it.
type testFeed struct {
	wake chan struct{}

	mu        sync.Mutex
	queue     []FedJob
	withdrawn []int64
	closed    bool
	ended     map[int64][]*protocol.Result
	order     []int64
	started   []int64
}

func newTestFeed() *testFeed {
	return &testFeed{wake: make(chan struct{}, 1), ended: map[int64][]*protocol.Result{}}
}

func (f *testFeed) Names() []string       { return []string{"x"} }
func (f *testFeed) Wake() <-chan struct{} { return f.wake }

func (f *testFeed) Take(n int) []FedJob {
	f.mu.Lock()
	defer f.mu.Unlock()
	n = min(n, len(f.queue))
	out := slices.Clone(f.queue[:n])
	f.queue = f.queue[n:]
	return out
}

func (f *testFeed) Withdrawn() []int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := f.withdrawn
	f.withdrawn = nil
	return w
}

func (f *testFeed) Closed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.closed && len(f.queue) == 0
}

func (f *testFeed) Started(job int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started = append(f.started, job)
}

func (f *testFeed) Ended(job int64, res *protocol.Result) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ended[job] = append(f.ended[job], res)
	f.order = append(f.order, job)
}

func (f *testFeed) poke(change func(f *testFeed)) {
	f.mu.Lock()
	change(f)
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

func (f *testFeed) give(idx ...int64) {
	f.poke(func(f *testFeed) {
		for _, i := range idx {
			f.queue = append(f.queue, FedJob{Index: i, Values: []string{fmt.Sprint(i)}})
		}
	})
}

// TestFeedRunsWhatTheRootHandsOut runs a head's dispatcher: jobs come
// from the feed as the root hands them out, each end is told to the feed
// once it is in the store, a job the root takes back is cancelled where
// it runs and never reported, and Run ends once the root says no more
// will come and the last has ended.
func TestFeedRunsWhatTheRootHandsOut(t *testing.T) {
	feed := newTestFeed()
	h := newHarness(t, 1, sched.FCFS, nil, func(c *Config) { c.Feed = feed; c.Sweep = nil })
	a := h.node("a")
	a.join("a", 2, false)
	if s := a.takeStarts(); len(s) != 0 {
		t.Fatalf("started %v before the root handed out anything", s)
	}
	feed.give(5, 7, 9)
	h.settle()
	starts := a.takeStarts()
	if len(starts) != 2 || starts[0].Job != 5 || starts[1].Job != 7 {
		t.Fatalf("starts %v, want jobs 5 and 7 (job limit 2)", starts)
	}
	// The root takes job 7 back while it runs.
	feed.poke(func(f *testFeed) { f.withdrawn = append(f.withdrawn, 7) })
	h.settle()
	if got := a.takeStarts(); len(got) != 1 || got[0].Job != 9 {
		t.Fatalf("starts %v, want job 9 in the slot job 7 freed", got)
	}
	a.end(5, 1, ok(time.Second))
	a.end(7, 1, ok(time.Second)) // the cancelled attempt stops
	feed.poke(func(f *testFeed) { f.closed = true })
	h.settle()
	select {
	case err := <-h.done:
		t.Fatalf("Run ended (%v) with job 9 running", err)
	default:
	}
	a.end(9, 1, protocol.Result{Error: "exit status 3"})
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	feed.mu.Lock()
	defer feed.mu.Unlock()
	if fmt.Sprint(feed.order) != "[5 9]" || !feed.ended[5][0].OK || feed.ended[9][0].OK {
		t.Fatalf("ends told %v (%v), want 5 done then 9 failed", feed.order, feed.ended)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 1 || counts[store.Failed] != 1 || counts[store.Withdrawn] != 1 {
		t.Fatalf("counts %v, want 1 done, 1 failed, 1 withdrawn", counts)
	}
	at, _ := h.attempt(7, 1)
	if at.State != store.AttemptCancelled {
		t.Fatalf("withdrawn job's attempt is %q, want cancelled", at.State)
	}
	h.golden("feed")
}

// TestFeedJobHandedOutAgain checks that a job the root hands out again
// after taking it back runs again, and that the head's journal (its
// store) holds its new end.
func TestFeedJobHandedOutAgain(t *testing.T) {
	feed := newTestFeed()
	h := newHarness(t, 1, sched.FCFS, nil, func(c *Config) { c.Feed = feed; c.Sweep = nil })
	a := h.node("a")
	a.join("a", 1, false)
	feed.give(3)
	h.settle()
	feed.poke(func(f *testFeed) { f.withdrawn = append(f.withdrawn, 3) })
	h.settle()
	a.end(3, 1, ok(time.Second))
	feed.give(3)
	h.settle()
	if got := a.takeStarts(); len(got) != 2 || got[1].Job != 3 || got[1].Attempt != 2 {
		t.Fatalf("starts %v, want job 3 again as attempt 2", got)
	}
	feed.poke(func(f *testFeed) { f.closed = true })
	a.end(3, 2, ok(time.Second))
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if len(feed.ended[3]) != 1 || !feed.ended[3][0].OK {
		t.Fatalf("ends of job 3 told: %v, want one, done", feed.ended[3])
	}
}
