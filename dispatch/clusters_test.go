package dispatch

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// progressLog keeps the last progress a dispatcher reported.
type progressLog struct {
	mu   sync.Mutex
	last Progress
	n    int
}

func (p *progressLog) opt(cfg *Config) {
	cfg.Progress = func(pr Progress) {
		p.mu.Lock()
		defer p.mu.Unlock()
		p.last, p.n = pr, p.n+1
	}
}

func (p *progressLog) get() Progress {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last
}

// report moves the clock past the progress callback's and the
// clusters' view's periods and lets the loop report.
func (h *harness) report() {
	h.clock.advance(clustersEvery)
	h.settle()
}

// cluster returns the named cluster of a progress, failing the test
// when it is not there.
func cluster(t *testing.T, p Progress, name string) ClusterProgress {
	t.Helper()
	for _, c := range p.Clusters {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no cluster %s in %+v", name, p.Clusters)
	return ClusterProgress{}
}

// endOn reports an attempt's end from a head, naming the node of its
// cluster that ran it.
func endOn(n *fakeNode, s protocol.Start, node string, success bool) {
	res := ok(time.Second)
	if !success {
		one := 1
		res = protocol.Result{Exit: &one, Error: "exit status 1", Wall: time.Second}
	}
	res.Node = node
	n.end(s.Job, s.Attempt, res)
}

// TestClustersSeen follows two clusters' heads through a grid run: the
// root's view of each (its link connected, cut and lost, what its
// heartbeat says, the attempts it holds, the jobs it ended and its
// rate) in Progress and in the state directory's clusters.json, and
// each attempt's cluster and node in the store.
func TestClustersSeen(t *testing.T) {
	var pl progressLog
	h := newHarness(t, 20, sched.FCFS, nil, pl.opt)
	t0 := h.clock.Now()
	east, west := h.node("he"), h.node("hw")
	east.joinHead("head-east", "east", 4)
	west.joinHead("head-west", "west", 2)
	h.d.Heartbeat(east, protocol.Heartbeat{Cluster: &protocol.ClusterStatus{Nodes: 2, CPUs: 3, Running: 3, Queued: 1, Depth: 4}})
	h.d.Heartbeat(west, protocol.Heartbeat{Cluster: &protocol.ClusterStatus{Nodes: 1, CPUs: 1, Running: 1, Queued: 1, Depth: 2}})
	h.settle()
	es, ws := east.takeStarts(), west.takeStarts()
	if len(es) != 4 || len(ws) != 2 {
		t.Fatalf("starts: east %d, west %d; want 4 and 2", len(es), len(ws))
	}
	for _, s := range es {
		if a, _ := h.attempt(s.Job, s.Attempt); a.Cluster != "east" || a.ClusterNode != "" || a.Node != "head-east" {
			t.Errorf("attempt %d.%d started on east's head: node %q, cluster %q, cluster node %q", s.Job, s.Attempt, a.Node, a.Cluster, a.ClusterNode)
		}
	}

	h.beats(30*time.Second, east, west)
	endOn(east, es[0], "e1", true)
	endOn(east, es[1], "e2", true)
	endOn(east, es[2], "e2", false)
	endOn(west, ws[0], "w1", true)
	h.report() // at t0 + 31 s
	for _, c := range []struct {
		s          protocol.Start
		state      string
		cluster, n string
	}{{es[0], store.AttemptOK, "east", "e1"}, {es[2], store.AttemptFailed, "east", "e2"}, {ws[0], store.AttemptOK, "west", "w1"}} {
		a, _ := h.attempt(c.s.Job, c.s.Attempt)
		if a.State != c.state || a.Cluster != c.cluster || a.ClusterNode != c.n {
			t.Errorf("attempt %d.%d: %s on %s/%s, want %s on %s/%s", c.s.Job, c.s.Attempt, a.State, a.Cluster, a.ClusterNode, c.state, c.cluster, c.n)
		}
	}
	p := pl.get()
	if len(p.Clusters) != 2 || p.Clusters[0].Name != "east" || p.Clusters[1].Name != "west" {
		t.Fatalf("clusters %+v, want east and west", p.Clusters)
	}
	e := cluster(t, p, "east")
	want := ClusterProgress{Name: "east", Head: "head-east", Link: LinkConnected, LinkSince: t0, Nodes: 2, CPUs: 3,
		Running: 3, Queued: 1, Depth: 4, Held: 4, Done: 2, Failed: 1, Rate: 3 / (31.0 / 60)}
	if math.Abs(e.Rate-want.Rate) > 1e-9 {
		t.Errorf("east's rate %g jobs/min, want %g (3 ends in the 31 s since it joined)", e.Rate, want.Rate)
	}
	e.Rate = want.Rate
	if !reflect.DeepEqual(e, want) {
		t.Errorf("east:\n%+v\nwant\n%+v", e, want)
	}
	if w := cluster(t, p, "west"); w.Link != LinkConnected || w.Done != 1 || w.Failed != 0 || w.Held != 2 || w.Nodes != 1 ||
		math.Abs(w.Rate-60.0/31) > 1e-9 {
		t.Errorf("west: %+v", w)
	}

	// clusters.json says the same, for orrery status.
	v, err := ReadClustersView(h.st.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if v.Format != ClustersFormat || v.Experiment != h.exp.ID || v.PID != os.Getpid() || v.Finished || v.EveryMS != 1000 ||
		!v.Written.Equal(h.clock.Now()) || len(v.Clusters) != 2 {
		t.Errorf("clusters.json: %+v", v)
	}
	if got := v.Clusters[0]; got.Name != "east" || got.Done != 2 || got.Failed != 1 || got.Link != LinkConnected || got.Nodes != 2 {
		t.Errorf("clusters.json's east: %+v", got)
	}
	if !v.Live(v.Written.Add(time.Second)) || v.Live(v.Written.Add(6*time.Second)) {
		t.Errorf("a view written at %v: live a second later %v, 6 s later %v; want true, false",
			v.Written, v.Live(v.Written.Add(time.Second)), v.Live(v.Written.Add(6*time.Second)))
	}
	if _, err := os.Stat(filepath.Join(h.st.Dir(), ClustersFile+".tmp")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is left: %v", err)
	}

	// West's link is cut: its attempts wait for it.
	west.gone()
	cutAt := h.clock.Now()
	h.report()
	if w := cluster(t, pl.get(), "west"); w.Link != LinkCut || !w.LinkSince.Equal(cutAt) || w.Held != 2 || w.Nodes != 1 || w.Done != 1 {
		t.Errorf("west cut at %v: %+v", cutAt, w)
	}
	// Then lost: still cut a minute later (a head keeps its attempts
	// through a cut), until its cluster is said lost.
	h.beats(time.Minute, east)
	if w := cluster(t, pl.get(), "west"); w.Link != LinkCut || w.Held != 2 {
		t.Errorf("west a minute into its cut: %+v", w)
	}
	h.d.LoseCluster("west", "its head's machine cannot be reached")
	h.settle()
	h.beats(time.Second, east)
	h.report()
	w := cluster(t, pl.get(), "west")
	if w.Link != LinkLost || w.Held != 0 || w.Nodes != 0 || w.Running != 0 || w.Done != 1 {
		t.Errorf("west lost: %+v", w)
	}
	if e := cluster(t, pl.get(), "east"); e.Link != LinkConnected {
		t.Errorf("east, which sent its heartbeats: %+v", e)
	}
	if v, _ := ReadClustersView(h.st.Dir()); v == nil || v.Clusters[1].Link != LinkLost {
		t.Errorf("clusters.json after west was lost: %+v", v)
	}

	// West's head joins again: connected, its counts kept.
	west2 := h.node("hw2")
	west2.joinHead("head-west", "west", 2)
	h.report()
	if w := cluster(t, pl.get(), "west"); w.Link != LinkConnected || w.Done != 1 || w.Held != 2 {
		t.Errorf("west back: %+v", w)
	}
	endOn(east, es[3], "e1", true)
	for h.endAll(east, time.Second)+h.endAll(west2, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	p = pl.get()
	var done, failed int64
	for _, c := range p.Clusters {
		done += c.Done
		failed += c.Failed
	}
	if !p.Finished || done != 19 || failed != 1 || p.Done != 19 {
		t.Errorf("at the end: finished %v, %d done and %d failed on the clusters, %d done in all; want 19, 1, 19", p.Finished, done, failed, p.Done)
	}
	if v, err := ReadClustersView(h.st.Dir()); err != nil || !v.Finished || v.Live(v.Written) {
		t.Errorf("clusters.json at the end: %+v, %v; want finished, not live", v, err)
	}
	cc, err := h.st.ClusterCounts(context.Background(), h.exp.ID)
	if err != nil {
		t.Fatal(err)
	}
	var stored int64
	for _, c := range cc {
		stored += c.Done
		if c.Done != cluster(t, p, c.Cluster).Done {
			t.Errorf("cluster %s: %d done in the store, %d in the progress", c.Cluster, c.Done, cluster(t, p, c.Cluster).Done)
		}
	}
	if stored != 19 {
		t.Errorf("the store's clusters: %+v, want 19 done in all", cc)
	}
}

// TestClustersCountEarlierRuns: a run that resumes a grid's experiment
// starts each cluster's counts from what earlier runs ended there.
func TestClustersCountEarlierRuns(t *testing.T) {
	var pl progressLog
	var b store.Batch
	h := newHarness(t, 6, sched.FCFS, nil, pl.opt, func(cfg *Config) {
		// An earlier run: job 1 done on east.
		b.AddJob(cfg.Experiment.ID, store.Job{Index: 1, Values: []string{"1"}})
		b.Start(cfg.Experiment.ID, 1, 1, "head-east", time.Now())
		b.InCluster(cfg.Experiment.ID, 1, 1, "east")
		b.Finish(cfg.Experiment.ID, store.Attempt{Job: 1, N: 1, State: store.AttemptOK, Ended: time.Now(), ClusterNode: "e1"}, store.Done)
		b.Cursor(cfg.Experiment.ID, 0, 1, false)
		if err := cfg.Store.Apply(context.Background(), &b); err != nil {
			t.Fatal(err)
		}
		cfg.Experiment.Cursor, cfg.Experiment.LastIndex = 0, 1
	})
	east := h.node("he")
	east.joinHead("head-east", "east", 2)
	h.report()
	if e := cluster(t, pl.get(), "east"); e.Done != 1 || e.Rate != 0 {
		t.Errorf("east after joining: %+v, want 1 done (an earlier run's), rate 0", e)
	}
	for h.endAll(east, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if e := cluster(t, pl.get(), "east"); e.Done != 6 {
		t.Errorf("east at the end: %+v, want 6 done", e)
	}
}

// TestNoClustersOutsideGrid: a run of plain nodes reports no cluster
// and removes a clusters' view an earlier grid run left.
func TestNoClustersOutsideGrid(t *testing.T) {
	var pl progressLog
	var stale string
	h := newHarness(t, 3, sched.FCFS, nil, pl.opt, func(cfg *Config) {
		stale = filepath.Join(cfg.Store.Dir(), ClustersFile)
		if err := os.WriteFile(stale, []byte(`{"format":1,"clusters":[{"name":"old"}]}`), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	a := h.node("a")
	a.join("a", 2, false)
	for h.endAll(a, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if p := pl.get(); len(p.Clusters) != 0 || p.Done != 3 {
		t.Errorf("progress of a run without heads: %+v", p)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an earlier run's clusters.json is left: %v", err)
	}
	if _, err := ReadClustersView(h.st.Dir()); !errors.Is(err, ErrNoClustersView) {
		t.Errorf("ReadClustersView: %v, want ErrNoClustersView", err)
	}
}

// TestClusterRate: a cluster's rate counts the ends of the last minute
// (or since it joined, when that is later), and stays right when more
// ends come than it keeps.
func TestClusterRate(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := &clusterTrack{joined: t0}
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	if r := c.rate(at(10 * time.Second)); r != 0 {
		t.Errorf("rate with no end: %g", r)
	}
	end := func(t time.Time) { c.ended(t) }
	for i := range 30 {
		end(at(time.Duration(i) * time.Second)) // one a second for 30 s
	}
	if r := c.rate(at(30 * time.Second)); math.Abs(r-60) > 1e-9 {
		t.Errorf("30 ends in the 30 s since joining: %g/min, want 60", r)
	}
	if r := c.rate(at(90 * time.Second)); r != 0 {
		t.Errorf("a minute after the last end: %g/min, want 0", r)
	}
	// 3000 ends in 3 s: only the last maxRateEnds are kept.
	c = &clusterTrack{joined: t0}
	for i := range 3000 {
		end(at(time.Duration(i) * time.Millisecond))
	}
	if len(c.ends) != maxRateEnds {
		t.Fatalf("%d ends kept, want %d", len(c.ends), maxRateEnds)
	}
	if r, want := c.rate(at(3*time.Second)), float64(maxRateEnds)/((3000-1975)*time.Millisecond).Minutes(); math.Abs(r-want) > 1e-6 {
		t.Errorf("rate after 3000 ends in 3 s: %g/min, want %g (about 60000)", r, want)
	}
}
