package web

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"testing"
	"time"

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
func bigWall(i int64) int64 { return (i*7919)%100_003 + 1 }

// bigStore makes an experiment of n jobs over x = i/1000 and y = i%1000
// (i from 0) straight in the store's database: every tenth job pending
// (no attempt), every tenth but one running, the rest done on one of 50
// nodes, but those with x in 10..14 and y in 20..24 failed with exit 3.
// It returns the number of failed jobs.
func bigStore(t *testing.T, n int64) (*store.Store, *store.Experiment, int64) {
	t.Helper()
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "state")
	st, err := store.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &store.Experiment{PlanPath: "big.pln", PlanText: "parameter x\nparameter y\n", Dialect: "modern",
		Names: []string{"x", "y"}, Created: time.UnixMilli(1_700_000_000_000)}
	if err := st.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName)+"?_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// The indexes are made again after the rows: one sort each rather
	// than a million random inserts.
	indexes := map[string]string{
		"job_state":       "job(experiment, state)",
		"attempt_started": "attempt(experiment, started_at)",
		"attempt_node":    "attempt(experiment, node, job)",
		"attempt_wall":    "attempt(experiment, wall_ns)",
	}
	for name := range indexes {
		if _, err := db.Exec("DROP INDEX " + name); err != nil {
			t.Fatal(err)
		}
	}
	failed := `(i/1000 BETWEEN 10 AND 14 AND i%1000 BETWEEN 20 AND 24)`
	state := `CASE WHEN i%10=0 THEN 'pending' WHEN i%10=1 THEN 'running' WHEN ` + failed + ` THEN 'failed' ELSE 'done' END`
	start := time.Now()
	for _, q := range []string{
		`INSERT INTO job (experiment, idx, ordinal, vals, state, attempts, exit_code, updated_at)
		SELECT ?1, i+1, i, '["' || (i/1000) || '","' || (i%1000) || '"]', ` + state + `, i%10<>0,
			CASE WHEN i%10<2 THEN NULL WHEN ` + failed + ` THEN 3 ELSE 0 END, 0 FROM c`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at, ended_at, exit_code, wall_ns)
		SELECT ?1, i+1, 1, 'node' || (i%50), CASE WHEN i%10=1 THEN 'running' WHEN ` + failed + ` THEN 'failed' ELSE 'ok' END,
			?3 + i*1000000, CASE WHEN i%10=1 THEN NULL ELSE ?3 + i*1000000 + ((i*7919)%100003+1)*1000000 END,
			CASE WHEN i%10=1 THEN NULL WHEN ` + failed + ` THEN 3 ELSE 0 END,
			CASE WHEN i%10=1 THEN NULL ELSE ((i*7919)%100003+1)*1000000 END FROM c WHERE i%10<>0`,
	} {
		if _, err := db.Exec(`WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM c WHERE i < ?2-1) `+q,
			e.ID, n, e.Created.UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	for name, on := range indexes {
		if _, err := db.Exec("CREATE INDEX " + name + " ON " + on); err != nil {
			t.Fatal(err)
		}
	}
	var nf int64
	if err := db.QueryRow(`SELECT count(*) FROM job WHERE state='failed'`).Scan(&nf); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d jobs (%d failed) made in %v", n, nf, time.Since(start))
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
