package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"math"
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
// the viewer's sign-in and page, and /metrics. One goroutine (run) owns the
// metrics' snapshot: it takes the dispatcher's latest progress when told
// of it, and the store's attempt counts every countsEvery; and the
// viewers' news (newsState), published to news at most every newsEvery.
type webSide struct {
	auth *pki.Authority
	m    *metrics.Metrics
	st   *store.Store
	exp  int64
	log  *slog.Logger

	news   *web.Hub         // a viewer's /api/overview and /api/events
	source *web.StoreSource // a viewer's questions: jobs, timeline, space

	mu     sync.Mutex
	prog   dispatch.Progress // the latest, from the dispatcher
	posted chan struct{}     // prog changed (one slot: news, not a queue)
}

// countsEvery is how often the store's attempt counts are read for the
// metrics.
const countsEvery = 5 * time.Second

func newWebSide(auth *pki.Authority, st *store.Store, exp *store.Experiment, log *slog.Logger) *webSide {
	return &webSide{auth: auth, m: metrics.New(), st: st, exp: exp.ID, log: log, news: web.NewHub(), posted: make(chan struct{}, 1),
		source: web.NewStoreSource(st, exp, true)}
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
	return web.New(web.Config{Viewers: w.auth, Metrics: w.m.Handler(token), News: w.news, Source: w.source, Log: w.log})
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
	var news newsState
	// owed fires when news held back (newsEvery had not passed since the
	// last) is due: what changed last always reaches the viewers.
	var owed <-chan time.Time
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
		switch now := time.Now(); {
		case now.Sub(lastNews) >= newsEvery || p.Finished:
			lastNews, owed = now, nil
			if b, err := json.Marshal(news.overview(p, now)); err == nil {
				w.news.Publish(b)
			} else {
				w.log.Warn("web: the viewers' news", "err", err)
			}
		case owed == nil:
			owed = time.After(newsEvery - now.Sub(lastNews))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			read = true
		case <-w.posted:
			read = false
		case <-owed:
			owed, read = nil, false
		}
	}
}

// snapshot is what the metrics export: p, the store's attempt counts,
// and the bytes staged before this run.
func snapshot(p dispatch.Progress, counts map[string]int64, baseIn, baseOut int64) metrics.Snapshot {
	pending := max(p.Total-p.Done-p.Failed-int64(p.RunningJobs), 0)
	s := metrics.Snapshot{
		Jobs:      map[string]int{"pending": int(pending), "running": p.RunningJobs, "done": int(p.Done), "failed": int(p.Failed)},
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

// newsState is what the goroutine that publishes a viewer's news keeps
// between two: the jobs ended at each recent publication, for the rate.
// It is that goroutine's alone.
type newsState struct {
	ends     []endSample // oldest first, at most maxEndSamples
	finished time.Time   // when the run was first seen finished
}

// endSample is how many jobs had ended (done or failed) at a time.
type endSample struct {
	at    time.Time
	ended int64
}

const (
	// rateWindow is how far back the rate of jobs ended looks.
	rateWindow = time.Minute
	// maxEndSamples bounds the samples kept for the rate: news is
	// published at most every newsEvery, so a minute takes 240.
	maxEndSamples = 512
)

// rate is the jobs ended per minute over the last minute (since the
// first sample, early on), with ended jobs ended at now.
func (s *newsState) rate(now time.Time, ended int64) float64 {
	// Keep one sample at or before the window's start: the rate's base.
	from := now.Add(-rateWindow)
	i := 0
	for i+1 < len(s.ends) && !s.ends[i+1].at.After(from) {
		i++
	}
	s.ends = s.ends[i:]
	if n := len(s.ends); n > 0 && !now.After(s.ends[n-1].at) {
		s.ends[n-1].ended = ended // the same instant (or a clock that stepped back)
	} else {
		if n >= maxEndSamples {
			s.ends = append(s.ends[:0], s.ends[1:]...)
		}
		s.ends = append(s.ends, endSample{at: now, ended: ended})
	}
	base := s.ends[0]
	span := now.Sub(base.at)
	if span <= 0 || ended <= base.ended {
		return 0
	}
	return float64(ended-base.ended) / max(span, time.Second).Minutes()
}

// overview is a viewer's news from the dispatcher's progress p at now:
// the counts, the rate and what it leaves, the work against the
// capacity, the clusters and nodes.
func (s *newsState) overview(p dispatch.Progress, now time.Time) web.Overview {
	ended := p.Done + p.Failed
	left := max(p.Total-ended, 0)
	o := web.Overview{Total: p.Total, Exact: p.Exact, Done: p.Done, Failed: p.Failed, Running: p.RunningJobs,
		Pending: max(left-int64(p.RunningJobs), 0), Nodes: p.Nodes, OutOfService: p.OutOfService,
		Finished: p.Finished, Rate: s.rate(now, ended), Work: p.Work, Capacity: p.Capacity, Changed: p.Changes}
	if p.Finished && s.finished.IsZero() {
		s.finished = now
	}
	if !p.Started.IsZero() {
		end := now
		if p.Finished {
			end = s.finished // the run's time stops with it
		}
		o.Elapsed = max(end.Sub(p.Started).Seconds(), 0)
	}
	switch {
	case p.Finished:
		o.ETA = finite(0)
	case p.Exact && o.Rate > 0:
		o.ETA = finite(float64(left) / (o.Rate / 60))
	}
	if p.Capacity > 0 {
		o.BoundSoFar = finite(p.Work / p.Capacity)
		if o.Elapsed > 0 {
			o.Efficiency = finite(p.Work / p.Capacity / o.Elapsed)
		}
		if p.Worked > 0 && p.Exact && p.Total > 0 {
			bound := p.Work / float64(p.Worked) * float64(p.Total) / p.Capacity
			if p.Fastest > 0 {
				bound = max(bound, p.Longest/p.Fastest)
			}
			o.Bound = finite(bound)
		}
	}
	for _, c := range p.Clusters {
		o.Clusters = append(o.Clusters, web.ClusterView{Name: c.Name, Head: c.Head, Link: c.Link, Since: rfc3339(c.LinkSince),
			Nodes: c.Nodes, CPUs: c.CPUs, Running: c.Running, Queued: c.Queued, Held: c.Held, Done: c.Done, Failed: c.Failed,
			Rate: c.Rate})
	}
	for _, n := range p.PerNode {
		o.PerNode = append(o.PerNode, web.NodeView{Name: n.Name, Cluster: n.Cluster, CPUs: n.CPUs, Speed: n.Speed, Limit: n.Limit,
			Running: n.Running, Load: n.Load, Memory: n.Memory, Used: n.Resident, Out: n.Out, Reason: n.Reason})
		if n.Out {
			o.Out = append(o.Out, web.NodeOut{Node: n.Name, Since: rfc3339(n.OutSince), Reason: n.Reason})
		}
	}
	return o
}

// finite is a pointer to x, or nil when x is not a finite number (JSON
// has none).
func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// rfc3339 is t in RFC 3339, or "" when it is not known.
func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
