package main

import (
	"context"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"orrery/dispatch"
	"orrery/metrics"
	"orrery/pki"
	"orrery/store"
	"orrery/web"
)

// webSide is what a run serves on its port to web peers (port.Config.Web):
// the viewer's sign-in and /metrics, fed from the dispatcher's progress
// and, every totalsEvery, the store's attempt totals. The live page
// itself is not built yet: a signed-in viewer gets 404.
type webSide struct {
	auth *pki.Authority
	m    *metrics.Metrics
	st   *store.Store
	exp  int64
	log  *slog.Logger

	mu     sync.Mutex
	prog   dispatch.Progress
	totals store.AttemptTotals
}

// totalsEvery is how often the store's attempt totals are read for the
// metrics (one scan of the experiment's attempts each time).
const totalsEvery = 5 * time.Second

func newWebSide(auth *pki.Authority, st *store.Store, exp int64, log *slog.Logger) *webSide {
	return &webSide{auth: auth, m: metrics.New(), st: st, exp: exp, log: log,
		totals: store.AttemptTotals{ByState: map[string]int64{}}}
}

// handler is port.Config.Web.
func (w *webSide) handler() http.Handler {
	token := func() string {
		t, err := w.auth.MetricsToken()
		if err != nil {
			w.log.Error("metrics token", "err", err)
			return "" // refuses every scrape
		}
		return t
	}
	return web.New(web.Config{Viewers: w.auth, Metrics: w.m.Handler(token), Log: w.log})
}

// progress takes the dispatcher's progress (Config.Progress: from its
// goroutine, so it only copies).
func (w *webSide) progress(p dispatch.Progress) {
	w.mu.Lock()
	w.prog = p
	w.mu.Unlock()
	w.update()
}

// decided takes one decision's latency (dispatch.Config.Decided).
func (w *webSide) decided(d time.Duration) { w.m.ObserveDecision(d) }

// run reads the store's totals every totalsEvery until ctx is done.
func (w *webSide) run(ctx context.Context) {
	t := time.NewTicker(totalsEvery)
	defer t.Stop()
	for {
		if tot, err := w.st.Totals(ctx, w.exp); err == nil {
			w.mu.Lock()
			w.totals = tot
			w.mu.Unlock()
			w.update()
		} else if ctx.Err() == nil {
			w.log.Warn("metrics: the store's attempt totals", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// update hands the metrics a snapshot of what is known now.
func (w *webSide) update() {
	w.mu.Lock()
	p, tot := w.prog, w.totals
	w.mu.Unlock()
	pending := max(p.Total-p.Done-p.Failed-int64(p.Running), 0)
	s := metrics.Snapshot{
		Jobs:      map[string]int{"pending": int(pending), "running": p.Running, "done": int(p.Done), "failed": int(p.Failed)},
		Attempts:  tot.ByState,
		StagedIn:  tot.StagedIn,
		StagedOut: tot.StagedOut,
	}
	for _, c := range p.Clusters {
		s.Clusters = append(s.Clusters, metrics.Cluster{Name: c.Name, Link: c.Link, Rate: c.Rate, Queued: c.Queued, Running: c.Running})
	}
	for _, n := range p.PerNode {
		s.Nodes = append(s.Nodes, metrics.Node{Name: n.Name, Cluster: n.Cluster, Running: n.Running})
	}
	w.m.Update(s)
}
