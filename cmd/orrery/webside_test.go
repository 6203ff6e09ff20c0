package main

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"orrery/dispatch"
	"orrery/web"
)

// near reports whether x is set and within 1e-9 of want.
func near(x *float64, want float64) bool { return x != nil && math.Abs(*x-want) < 1e-9 }

func show(x *float64) string {
	if x == nil {
		return "nil"
	}
	b, _ := json.Marshal(*x)
	return string(b)
}

// TestWebSideOverviewArithmetic follows a viewer's news through a run's
// progresses: the rate of jobs ended over the last minute, the time it
// leaves, the work against the capacity (bound so far, efficiency) and
// the bound on the whole sweep, each unset while it cannot be said.
func TestWebSideOverviewArithmetic(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var s newsState
	p := dispatch.Progress{Total: 100, Exact: true, Started: t0}

	o := s.overview(p, t0)
	if o.Rate != 0 || o.ETA != nil || o.BoundSoFar != nil || o.Efficiency != nil || o.Bound != nil || o.Pending != 100 {
		t.Errorf("at the start: %+v; want no rate, nothing said, 100 pending", o)
	}

	// 30 s in: 12 ended, 4 running, 40 s of work over 10 attempts on 8
	// CPUs of capacity.
	p.Done, p.Failed, p.Running, p.RunningJobs = 10, 2, 5, 4 // one of them duplicated
	p.Work, p.Worked, p.Longest, p.Capacity, p.Fastest, p.Changes = 40, 10, 6, 8, 2, 26
	o = s.overview(p, t0.Add(30*time.Second))
	if o.Rate != 24 || !near(o.ETA, 88/0.4) || o.Pending != 84 || o.Elapsed != 30 || o.Changed != 26 {
		t.Errorf("30 s in: rate %g/min, ETA %s s, %d pending, elapsed %g, changed %d; want 24, 220, 84, 30, 26",
			o.Rate, show(o.ETA), o.Pending, o.Elapsed, o.Changed)
	}
	if o.Work != 40 || o.Capacity != 8 || !near(o.BoundSoFar, 5) || !near(o.Efficiency, 5.0/30) || !near(o.Bound, 50) {
		t.Errorf("30 s in: work %g, capacity %g, bound so far %s, efficiency %s, bound %s; want 40, 8, 5, 1/6, 4×100/8 = 50",
			o.Work, o.Capacity, show(o.BoundSoFar), show(o.Efficiency), show(o.Bound))
	}

	// 90 s in: the rate looks back a minute, to 30 s in (12 ended then).
	p.Done = 40
	o = s.overview(p, t0.Add(90*time.Second))
	if o.Rate != 30 || !near(o.ETA, 58/0.5) {
		t.Errorf("90 s in: rate %g/min, ETA %s; want 30 (30 ended in the last minute) and 116", o.Rate, show(o.ETA))
	}
	// The longest job on the fastest CPU bounds the sweep when it is
	// longer than all the work spread over the capacity.
	p.Longest = 400
	if o = s.overview(p, t0.Add(91*time.Second)); !near(o.Bound, 200) {
		t.Errorf("bound %s with a job of 400 s (speed 1) on CPUs of speed 2; want 200", show(o.Bound))
	}
	// Nothing ends for more than a minute: no rate, no ETA.
	if o = s.overview(p, t0.Add(200*time.Second)); o.Rate != 0 || o.ETA != nil {
		t.Errorf("after a minute without an end: rate %g, ETA %s; want 0 and nil", o.Rate, show(o.ETA))
	}

	// A total that is only an upper bound says no ETA and no bound.
	inexact := p
	inexact.Exact = false
	inexact.Done++
	if o = s.overview(inexact, t0.Add(201*time.Second)); o.Rate <= 0 || o.ETA != nil || o.Bound != nil || o.BoundSoFar == nil {
		t.Errorf("inexact total: rate %g, ETA %s, bound %s, bound so far %s; want a rate, no ETA, no bound, a bound so far",
			o.Rate, show(o.ETA), show(o.Bound), show(o.BoundSoFar))
	}
	// No capacity (no node in service): nothing against it.
	none := p
	none.Capacity, none.Fastest = 0, 0
	if o = s.overview(none, t0.Add(202*time.Second)); o.BoundSoFar != nil || o.Efficiency != nil || o.Bound != nil {
		t.Errorf("no capacity: %s %s %s, want nil", show(o.BoundSoFar), show(o.Efficiency), show(o.Bound))
	}
	// A number JSON cannot carry is left unset.
	huge := p
	huge.Work, huge.Capacity = 1e300, 1e-300
	o = s.overview(huge, t0.Add(203*time.Second))
	if o.BoundSoFar != nil || o.Efficiency != nil || o.Bound != nil {
		t.Errorf("infinite bounds: %s %s %s, want nil", show(o.BoundSoFar), show(o.Efficiency), show(o.Bound))
	}
	if _, err := json.Marshal(o); err != nil {
		t.Errorf("json: %v", err)
	}

	// Finished: nothing left, and the elapsed time stops.
	p.Done, p.Failed, p.Running, p.Finished = 98, 2, 0, true
	o = s.overview(p, t0.Add(300*time.Second))
	if !near(o.ETA, 0) || o.Pending != 0 || o.Elapsed != 300 || !o.Finished {
		t.Errorf("finished: ETA %s, %d pending, elapsed %g; want 0, 0, 300", show(o.ETA), o.Pending, o.Elapsed)
	}
	if o = s.overview(p, t0.Add(400*time.Second)); o.Elapsed != 300 {
		t.Errorf("published again after the end: elapsed %g, want 300", o.Elapsed)
	}
}

// TestWebSideRateBounded: however often the news is published, the
// samples kept for the rate stay within their bound, and the rate stays
// true to the ends.
func TestWebSideRateBounded(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var s newsState
	p := dispatch.Progress{Total: 1 << 20, Exact: true, Started: t0}
	var o web.Overview
	// One job ends every 10 ms for two minutes: 6000 a minute.
	for i := range 12000 {
		p.Done = int64(i)
		o = s.overview(p, t0.Add(time.Duration(i)*10*time.Millisecond))
		if len(s.ends) > maxEndSamples {
			t.Fatalf("%d samples kept, want at most %d", len(s.ends), maxEndSamples)
		}
	}
	if math.Abs(o.Rate-6000) > 1 {
		t.Errorf("rate %g/min, want 6000", o.Rate)
	}
	// Two progresses at the same instant count once.
	var same newsState
	p.Done = 0
	same.overview(p, t0)
	p.Done = 5
	same.overview(p, t0.Add(30*time.Second))
	p.Done = 7
	if o = same.overview(p, t0.Add(30*time.Second)); o.Rate != 14 || len(same.ends) != 2 {
		t.Errorf("rate %g with %d samples, want 14 and 2", o.Rate, len(same.ends))
	}
}

// TestWebSideOverviewNodes: the clusters and nodes of a progress become
// the page's, and the nodes out of service are listed with why and
// since when.
func TestWebSideOverviewNodes(t *testing.T) {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var s newsState
	p := dispatch.Progress{Total: 10, Exact: true, Started: t0, Nodes: 2, OutOfService: 1,
		Clusters: []dispatch.ClusterProgress{{Name: "east", Head: "head-east", Link: dispatch.LinkConnected, LinkSince: t0,
			Nodes: 2, CPUs: 3, Running: 1, Queued: 2, Held: 3, Done: 4, Failed: 1, Rate: 2.5}},
		PerNode: []dispatch.NodeProgress{
			{Name: "a", Running: 2, CPUs: 4, Speed: 1.5, Memory: 1 << 30, Limit: 4, Load: 2.25, Resident: 5 << 20},
			{Name: "b", CPUs: 1, Speed: 1, Out: true, Reason: "5 system failures in a row", OutSince: t0.Add(time.Minute)},
			{Name: "c", CPUs: 1, Speed: 1, Out: true, Reason: "why"},
		}}
	o := s.overview(p, t0.Add(2*time.Minute))
	wantC := web.ClusterView{Name: "east", Head: "head-east", Link: "connected", Since: "2026-01-02T03:04:05Z", Nodes: 2, CPUs: 3,
		Running: 1, Queued: 2, Held: 3, Done: 4, Failed: 1, Rate: 2.5}
	if len(o.Clusters) != 1 || o.Clusters[0] != wantC {
		t.Errorf("clusters %+v, want [%+v]", o.Clusters, wantC)
	}
	wantA := web.NodeView{Name: "a", CPUs: 4, Speed: 1.5, Limit: 4, Running: 2, Load: 2.25, Memory: 1 << 30, Used: 5 << 20}
	if len(o.PerNode) != 3 || o.PerNode[0] != wantA || !o.PerNode[1].Out || o.PerNode[1].Reason != "5 system failures in a row" {
		t.Errorf("nodes %+v", o.PerNode)
	}
	wantOut := []web.NodeOut{{Node: "b", Since: "2026-01-02T03:05:05Z", Reason: "5 system failures in a row"}, {Node: "c", Reason: "why"}}
	if len(o.Out) != 2 || o.Out[0] != wantOut[0] || o.Out[1] != wantOut[1] {
		t.Errorf("out %+v, want %+v", o.Out, wantOut)
	}
	b, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"per_node":[{"name":"a"`, `"resident":5242880`, `"out":[{"node":"b"`, `"link_since":"2026-01-02T03:04:05Z"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("json %s: no %s", b, k)
		}
	}
}
