package main

import (
	"context"
	"encoding/json"
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
// the viewer's sign-in and /metrics. One goroutine (run) owns the
// metrics' snapshot: it takes the dispatcher's latest progress when told
// of it, and the store's attempt counts every countsEvery. The live page
// itself is not built yet: a signed-in viewer gets 404.
type webSide struct {
	auth *pki.Authority
	m    *metrics.Metrics
	st   *store.Store
	exp  int64
	log  *slog.Logger

	news *web.Hub // a viewer's /api/overview and /api/events

	mu     sync.Mutex
	prog   dispatch.Progress // the latest, from the dispatcher
	posted chan struct{}     // prog changed (one slot: news, not a queue)
}

// countsEvery is how often the store's attempt counts are read for the
// metrics.
const countsEvery = 5 * time.Second

func newWebSide(auth *pki.Authority, st *store.Store, exp int64, log *slog.Logger) *webSide {
	return &webSide{auth: auth, m: metrics.New(), st: st, exp: exp, log: log, news: web.NewHub(), posted: make(chan struct{}, 1)}
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
	return web.New(web.Config{Viewers: w.auth, Metrics: w.m.Handler(token), News: w.news, Log: w.log})
}

// progress takes the dispatcher's progress (dispatch.Config.Progress,
// from its goroutine): it only keeps it and says so.
func (w *webSide) progress(p dispatch.Progress) {
	w.mu.Lock()
	w.prog = p
	w.mu.Unlock()
	select {
	case w.posted <- struct{}{}:
	default:
	}
}

// decided takes one decision's latency (dispatch.Config.Decided).
func (w *webSide) decided(d time.Duration) { w.m.ObserveDecision(d) }

// run keeps the metrics' snapshot until ctx is done. Bytes staged by
// earlier runs of the experiment are read once, at the start.
func (w *webSide) run(ctx context.Context) {
	baseIn, baseOut, err := w.st.Staged(ctx, w.exp)
	if err != nil && ctx.Err() == nil {
		w.log.Warn("metrics: the store's staged bytes", "err", err)
	}
	defer w.news.Close()
	var counts map[string]int64
	var lastNews time.Time
	t := time.NewTicker(countsEvery)
	defer t.Stop()
	for read := true; ; {
		if read {
			if c, err := w.st.AttemptCounts(ctx, w.exp); err == nil {
				counts = c
			} else if ctx.Err() == nil {
				w.log.Warn("metrics: the store's attempt counts", "err", err)
			}
		}
		w.mu.Lock()
		p := w.prog
		w.mu.Unlock()
		w.m.Update(snapshot(p, counts, baseIn, baseOut))
		if now := time.Now(); now.Sub(lastNews) >= newsEvery || p.Finished {
			lastNews = now
			if b, err := json.Marshal(overviewOf(p, now)); err == nil {
				w.news.Publish(b)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			read = true
		case <-w.posted:
			read = false
		}
	}
}

// snapshot is what the metrics export: p, the store's attempt counts,
// and the bytes staged before this run.
func snapshot(p dispatch.Progress, counts map[string]int64, baseIn, baseOut int64) metrics.Snapshot {
	pending := max(p.Total-p.Done-p.Failed-int64(p.Running), 0)
	s := metrics.Snapshot{
		Jobs:      map[string]int{"pending": int(pending), "running": p.Running, "done": int(p.Done), "failed": int(p.Failed)},
		Attempts:  counts,
		StagedIn:  baseIn + p.StagedIn,
		StagedOut: baseOut + p.StagedOut,
	}
	for _, c := range p.Clusters {
		s.Clusters = append(s.Clusters, metrics.Cluster{Name: c.Name, Link: c.Link, Rate: c.Rate, Queued: c.Queued, Running: c.Running})
	}
	for _, n := range p.PerNode {
		s.Nodes = append(s.Nodes, metrics.Node{Name: n.Name, Cluster: n.Cluster, Running: n.Running})
	}
	return s
}

// newsEvery is how often viewers are sent news at most (the progress
// changes far more often in a busy run).
const newsEvery = 250 * time.Millisecond

// overview is a viewer's news: the run's counts now.
type overview struct {
	Total        int64                      `json:"total"`
	Exact        bool                       `json:"exact"`
	Done         int64                      `json:"done"`
	Failed       int64                      `json:"failed"`
	Running      int                        `json:"running"`
	Pending      int64                      `json:"pending"`
	Nodes        int                        `json:"nodes"`
	OutOfService int                        `json:"out_of_service"`
	Elapsed      float64                    `json:"elapsed_s"`
	Finished     bool                       `json:"finished"`
	Clusters     []dispatch.ClusterProgress `json:"clusters,omitempty"`
}

func overviewOf(p dispatch.Progress, now time.Time) overview {
	o := overview{Total: p.Total, Exact: p.Exact, Done: p.Done, Failed: p.Failed, Running: p.Running,
		Pending: max(p.Total-p.Done-p.Failed-int64(p.Running), 0), Nodes: p.Nodes, OutOfService: p.OutOfService,
		Finished: p.Finished, Clusters: p.Clusters}
	if !p.Started.IsZero() {
		o.Elapsed = now.Sub(p.Started).Seconds()
	}
	return o
}
