package sched

import (
	"container/heap"
	"slices"
)

// queue holds waiting jobs: first in, first out until a model can
// predict their work, then longest expected first.
type queue struct {
	items   []*jobState
	lpt     bool
	version int     // the model version the order was made with
	work    float64 // the expected work of its jobs, once lpt
}

// expected returns the expected work of the waiting jobs as the model
// saw them when it last reordered the queue (0 before it predicts).
func (q *queue) expected() float64 { return max(q.work, 0) }

func (q *queue) len() int { return len(q.items) }

func (q *queue) push(j *jobState, m *Model) {
	q.sync(m)
	if q.lpt {
		j.expect = m.expect(j.Params)
		q.work += j.expect
		heap.Push((*lptHeap)(&q.items), j)
		return
	}
	q.items = append(q.items, j)
}

// pushFront puts a job back first in line (a retry), or in its place by
// expected work.
func (q *queue) pushFront(j *jobState, m *Model) {
	q.sync(m)
	if q.lpt {
		q.push(j, m)
		return
	}
	q.items = slices.Insert(q.items, 0, j)
}

func (q *queue) pop(m *Model) *jobState {
	q.sync(m)
	if len(q.items) == 0 {
		return nil
	}
	if q.lpt {
		j := heap.Pop((*lptHeap)(&q.items)).(*jobState)
		q.work -= j.expect
		return j
	}
	j := q.items[0]
	q.items[0] = nil
	q.items = q.items[1:]
	return j
}

// sync reorders the queue when the model has learned more.
func (q *queue) sync(m *Model) {
	if m == nil || !m.Ready() || m.version == q.version {
		return
	}
	q.version, q.lpt, q.work = m.version, true, 0
	for _, j := range q.items {
		j.expect = m.expect(j.Params)
		q.work += j.expect
	}
	heap.Init((*lptHeap)(&q.items))
}

// lptHeap is a max-heap by expected work; ties go to the lower index.
type lptHeap []*jobState

func (h lptHeap) Len() int { return len(h) }
func (h lptHeap) Less(i, j int) bool {
	if h[i].expect != h[j].expect {
		return h[i].expect > h[j].expect
	}
	return h[i].Index < h[j].Index
}
func (h lptHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *lptHeap) Push(x any)   { *h = append(*h, x.(*jobState)) }
func (h *lptHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return j
}
