package web

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"orrery/store"
)

// StoreNews publishes to hub, every every, a viewer's news read from
// the store alone: for `orrery web`, which no run is connected to (no
// nodes, no capacity). total says how many jobs the sweep has (and
// whether exactly), from its plan; nil, or ok false, when not known.
// It returns when ctx is done.
//
// It is cheap while nothing changes: each round reads the jobs' counts
// and the attempts' count and latest start from indexes, and sums the
// attempts (work done, jobs ended in the last minute, the last end)
// only when those changed or jobs ended in the last minute. Changed
// grows by one each round that finds a change.
func StoreNews(ctx context.Context, st *store.Store, exp *store.Experiment, hub *Hub, every time.Duration,
	total func() (n int64, exact, ok bool), log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := &storeNews{st: st, exp: exp, total: total, now: time.Now}
	tick := time.NewTicker(max(every, 10*time.Millisecond))
	defer tick.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, QueryTimeout)
		ov, err := n.round(rctx)
		cancel()
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("read the experiment's progress", "err", err)
		case err == nil:
			if b, err := json.Marshal(ov); err == nil {
				hub.Publish(b)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// storeNews is StoreNews's state between rounds (its goroutine's
// alone).
type storeNews struct {
	st    *store.Store
	exp   *store.Experiment
	total func() (int64, bool, bool)
	now   func() time.Time

	mark    store.ViewMark
	marked  bool
	prog    store.ViewProgress
	out     []NodeOut
	changed int64
}

// round reads the store and makes the news.
func (n *storeNews) round(ctx context.Context) (Overview, error) {
	now := n.now()
	m, err := n.st.Mark(ctx, n.exp.ID)
	if err != nil {
		return Overview{}, err
	}
	fresh := !n.marked || !m.Same(n.mark)
	if fresh || n.prog.Ended > 0 {
		p, err := n.st.Progress(ctx, n.exp.ID, now.Add(-time.Minute))
		if err != nil {
			return Overview{}, err
		}
		n.prog = p
	}
	if fresh {
		outs, err := n.st.NodesOutOfService(ctx, n.exp.ID)
		if err != nil {
			return Overview{}, err
		}
		n.out = n.out[:0]
		for _, o := range outs {
			n.out = append(n.out, NodeOut{Node: o.Node, Since: o.Since.UTC().Format(time.RFC3339), Reason: o.Reason})
		}
		if n.marked {
			n.changed++
		}
		n.mark, n.marked = m, true
	}
	c := m.Counts
	ov := Overview{Total: -1, Done: c[store.Done], Failed: c[store.Failed], Running: int(c[store.Running]),
		Pending: c[store.Pending] + c[store.Withdrawn], Work: n.prog.Work.Seconds(), Changed: n.changed,
		Rate: float64(n.prog.Ended), Out: append([]NodeOut(nil), n.out...)}
	ov.OutOfService = len(ov.Out)
	if n.total != nil {
		if t, exact, ok := n.total(); ok {
			ov.Total, ov.Exact = t, exact
			ov.Pending = max(t-ov.Done-ov.Failed-int64(ov.Running), 0)
			ov.Finished = exact && ov.Done+ov.Failed == t && n.prog.Running == 0
		}
	}
	end := n.prog.LastEnd
	if n.prog.Running > 0 || end.IsZero() && m.Attempts > 0 {
		end = now
	}
	if !end.IsZero() {
		ov.Elapsed = max(end.Sub(n.exp.Created).Seconds(), 0)
	}
	if ov.Total >= 0 && ov.Rate > 0 {
		eta := float64(max(ov.Total-ov.Done-ov.Failed, 0)) / ov.Rate * 60
		ov.ETA = &eta
	}
	return ov, nil
}
