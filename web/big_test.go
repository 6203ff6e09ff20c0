package web

import (
	"context"
	"encoding/json"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

	"orrery/internal/bigstore"
	"orrery/store"
)

// raced reports whether the test runs under the race detector, which
// makes the pure-Go SQLite some 50 times slower (a million jobs took 5
// minutes to insert).
func raced() bool {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range bi.Settings {
		if s.Key == "-race" && s.Value == "true" {
			return true
		}
	}
	return false
}

// bigWall is the wall time, in ms, of the attempt of job i (from 0).
func bigWall(i int64) int64 { return bigstore.Wall(i) }

// bigStore makes an experiment of n jobs (see bigstore.Make) and opens
// its store. It returns the number of failed jobs.
func bigStore(t *testing.T, n int64) (*store.Store, *store.Experiment, int64) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	start := time.Now()
	e, nf, err := bigstore.Make(ctx, dir, n)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d jobs (%d failed) made in %v", n, nf, time.Since(start))
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, e, nf
}

// TestBigExperiment asks every question of a million jobs and checks
// each answer is bounded and right. Each question's time is logged, not
// checked. The race detector makes SQLite fifty times slower: under it
// the test skips, and .ci/run runs it without.
func TestBigExperiment(t *testing.T) {
	n := int64(1_000_000)
	if raced() {
		t.Skip("a million jobs take minutes under the race detector; run without -race (as .ci/run does)")
	}
	st, e, nfailed := bigStore(t, n)
	srv, c := sourceServer(t, NewStoreSource(st, e, false))
	ask := func(path string, v any) int {
		t.Helper()
		start := time.Now()
		resp, body := get(t, srv, "GET", path, c)
		t.Logf("%s: %d bytes in %v", path, len(body), time.Since(start))
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %q", path, resp.StatusCode, body)
		}
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatal(err)
		}
		return len(body)
	}

	var page JobPage
	if size := ask("/api/jobs?limit=100000", &page); len(page.Jobs) != MaxPage || size > 200<<10 || page.Total != min(n, MaxCount) || page.TotalCapped != (n > MaxCount) {
		t.Errorf("a page: %d jobs, %d bytes, total %d (capped %v)", len(page.Jobs), size, page.Total, page.TotalCapped)
	}
	ask("/api/jobs?offset="+strconv.FormatInt(n/2, 10)+"&limit=10", &page)
	if len(page.Jobs) != 10 || page.Jobs[0].Index != n/2+1 {
		t.Errorf("a far page: %+v", page.Jobs)
	}
	ask("/api/jobs?state=failed&limit=500", &page)
	if page.Total != nfailed || int64(len(page.Jobs)) != nfailed || nfailed == 0 {
		t.Errorf("failed jobs: %d of %d, want %d", len(page.Jobs), page.Total, nfailed)
	}
	for _, j := range page.Jobs {
		x, _ := strconv.Atoi(j.Values["x"])
		y, _ := strconv.Atoi(j.Values["y"])
		if j.State != "failed" || *j.Exit != 3 || x < 10 || x > 14 || y < 20 || y > 24 {
			t.Errorf("a failed job: %+v", j)
		}
	}
	ask("/api/jobs?p.x=12&p.y=345", &page)
	if page.Total != 1 || len(page.Jobs) != 1 || page.Jobs[0].Index != 12_346 {
		t.Errorf("x=12, y=345: %+v", page)
	}
	ask("/api/jobs?p.x=12&limit=500", &page)
	if page.Total != 1000 || len(page.Jobs) != 500 {
		t.Errorf("x=12: %d of %d", len(page.Jobs), page.Total)
	}
	for _, j := range page.Jobs {
		if j.Values["x"] != "12" {
			t.Fatalf("x=12 answered %+v", j)
		}
	}
	var longest, at int64
	for i := range n {
		if i%10 > 1 && bigWall(i) >= longest { // the latest of equals first
			longest, at = bigWall(i), i+1
		}
	}
	ask("/api/jobs?sort=wall&order=desc&limit=3", &page)
	if len(page.Jobs) != 3 || page.Jobs[0].Index != at || *page.Jobs[0].Wall != float64(longest)/1000 || *page.Jobs[1].Wall > *page.Jobs[0].Wall {
		t.Errorf("the longest: %+v, want job %d (%d ms)", page.Jobs, at, longest)
	}
	ask("/api/jobs?node=node7&sort=wall&limit=5", &page)
	if len(page.Jobs) != 5 || page.Jobs[0].Node != "node7" {
		t.Errorf("the shortest on node7: %+v", page.Jobs)
	}

	var sp Space
	ask("/api/space?x=x&y=y", &sp)
	var sum int64
	for _, cell := range sp.Cells {
		sum += cell.N
	}
	if len(sp.XS) > MaxAxis || len(sp.YS) > MaxAxis || !sp.YBinned || sp.XBinned != (n/1000 > MaxAxis) || len(sp.Cells) > MaxAxis*MaxAxis || sum != n || sp.Jobs != n {
		t.Errorf("space: %d×%d (binned %v %v), %d cells of %d jobs", len(sp.XS), len(sp.YS), sp.XBinned, sp.YBinned, len(sp.Cells), sum)
	}
	var failedCells int64
	for _, cell := range sp.Cells {
		failedCells += cell.Failed
		if cell.Failed > 0 && (cell.TopExit == nil || *cell.TopExit != 3) {
			t.Errorf("a cell with failures: %+v", cell)
		}
	}
	if failedCells != nfailed {
		t.Errorf("space: %d failed, want %d", failedCells, nfailed)
	}
	ask("/api/space?x=x&y=y", &sp) // cached

	var tl Timeline
	ask("/api/timeline?limit=100000", &tl)
	if len(tl.Attempts) != MaxTimeline || !tl.Truncated || tl.Total != min(n*9/10, MaxCount) || len(tl.Nodes) != 45 { // node0, node10, .. run no job (every tenth is pending)
		t.Errorf("timeline: %d attempts, truncated %v, total %d, %d nodes", len(tl.Attempts), tl.Truncated, tl.Total, len(tl.Nodes))
	}
	from := e.Created.UnixMilli() + n/2
	ask("/api/timeline?from="+strconv.FormatInt(from, 10)+"&to="+strconv.FormatInt(from+1000, 10), &tl)
	if len(tl.Attempts) == 0 || len(tl.Attempts) > DefaultTimeline {
		t.Errorf("a window: %d attempts", len(tl.Attempts))
	}
	for _, a := range tl.Attempts {
		if a.Start >= from+1000 || a.End != 0 && a.End <= from {
			t.Fatalf("out of the window: %+v", a)
		}
	}
	var d JobDetail
	ask("/api/jobs/12346", &d)
	var lg Log
	ask("/api/jobs/12346/attempts/1/log", &lg)
}
