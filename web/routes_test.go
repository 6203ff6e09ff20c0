package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"orrery/store"
)

// sourceStore is a store of 600 jobs over x (i%10) and y (i%7): the
// first 300 done on n1 or n2 taking i ms, job 7 failed with exit 2 and
// a long output, the rest pending.
func sourceStore(t *testing.T) (*store.Store, *store.Experiment) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &store.Experiment{PlanPath: "sweep.pln", PlanText: "parameter x\n", Dialect: "modern", Seed: 7,
		Settings: `{"policy":"mosix"}`, Names: []string{"x", "y"}, Created: time.Now().Add(-time.Hour)}
	if err := st.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	zero, two := 0, 2
	t0 := time.Now().Add(-30 * time.Minute)
	for i := int64(1); i <= 600; i++ {
		b.AddJob(e.ID, store.Job{Index: i, Ordinal: i - 1, Values: []string{strconv.Itoa(int(i % 10)), strconv.Itoa(int(i % 7))}})
		if i > 300 {
			continue
		}
		start := t0.Add(time.Duration(i) * time.Second)
		b.Start(e.ID, i, 1, "n"+strconv.Itoa(int(1+i%2)), start)
		a := store.Attempt{Job: i, N: 1, State: store.AttemptOK, Ended: start.Add(time.Duration(i) * time.Millisecond),
			Wall: time.Duration(i) * time.Millisecond, Exit: &zero}
		state := store.Done
		if i == 7 {
			a.State, a.Exit, state = store.AttemptFailed, &two, store.Failed
			a.Stdout = append([]byte("é"), []byte(strings.Repeat("x", MaxLogBytes))...)
			a.Stderr = []byte("boom\xff")
		}
		b.Finish(e.ID, a, state)
	}
	if err := st.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return st, e
}

// sourceServer serves a Source to a signed-in viewer; it returns the
// viewer's cookie.
func sourceServer(t *testing.T, src Source) (*httptest.Server, string) {
	t.Helper()
	v := &fakeViewers{secret: "s3"}
	srv := httptest.NewTLSServer(New(Config{Viewers: v, Source: src}))
	t.Cleanup(srv.Close)
	c, _ := v.ViewerCookie()
	return srv, c
}

// getJSON asks path and decodes a 200 answer into v.
func getJSON(t *testing.T, srv *httptest.Server, cookie, path string, v any) {
	t.Helper()
	resp, body := get(t, srv, "GET", path, cookie)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%s: %d %s %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s: %v in %q", path, err, body)
	}
}

func TestSourceAnswers(t *testing.T) {
	st, e := sourceStore(t)
	srv, c := sourceServer(t, NewStoreSource(st, e, false))

	var info Info
	getJSON(t, srv, c, "/api/info", &info)
	if info.Experiment != e.ID || info.Policy != "mosix" || strings.Join(info.Names, ",") != "x,y" || info.Seed != 7 || info.Live {
		t.Errorf("info: %+v", info)
	}

	var page JobPage
	getJSON(t, srv, c, "/api/jobs?p.x=3&p.y=3&limit=5", &page)
	// x=3 and y=3: i ≡ 3 (mod 70).
	if page.Total != 9 || len(page.Jobs) != 5 || page.Jobs[0].Index != 3 || page.Jobs[1].Index != 73 {
		t.Fatalf("filtered page: %+v", page)
	}
	for _, j := range page.Jobs {
		if j.Values["x"] != "3" || j.Values["y"] != "3" {
			t.Fatalf("a job that does not match: %+v", j)
		}
	}
	getJSON(t, srv, c, "/api/jobs?limit=1000000", &page)
	if len(page.Jobs) != MaxPage || page.Limit != MaxPage || page.Total != 600 {
		t.Fatalf("a huge limit: %d jobs, limit %d, total %d", len(page.Jobs), page.Limit, page.Total)
	}
	getJSON(t, srv, c, "/api/jobs?state=failed", &page)
	if len(page.Jobs) != 1 || page.Jobs[0].Index != 7 || *page.Jobs[0].Exit != 2 {
		t.Fatalf("failed jobs: %+v", page.Jobs)
	}
	getJSON(t, srv, c, "/api/jobs?sort=wall&order=desc&limit=2&node=n1", &page)
	if len(page.Jobs) != 2 || page.Jobs[0].Index != 300 || page.Jobs[1].Index != 298 || page.Jobs[0].Node != "n1" || *page.Jobs[0].Wall != 0.3 {
		t.Fatalf("longest on n1: %+v", page.Jobs)
	}
	getJSON(t, srv, c, "/api/jobs?offset=598", &page)
	if len(page.Jobs) != 2 || page.Jobs[1].Index != 600 || page.Jobs[1].Wall != nil || page.Jobs[1].State != "pending" {
		t.Fatalf("last page: %+v", page.Jobs)
	}

	var d JobDetail
	getJSON(t, srv, c, "/api/jobs/7", &d)
	if d.Index != 7 || len(d.Attempts) != 1 || d.Attempts[0].OutBytes != int64(MaxLogBytes+2) || d.Attempts[0].ErrBytes != 5 || d.Values["x"] != "7" {
		t.Fatalf("job 7: %+v", d)
	}
	var lg Log
	getJSON(t, srv, c, "/api/jobs/7/attempts/1/log", &lg)
	if !lg.StdoutCut || lg.Stdout != strings.Repeat("x", MaxLogBytes) || lg.StderrCut || lg.Stderr != "boom\uFFFD" {
		t.Fatalf("log: cut %v %v, %d bytes, stderr %q", lg.StdoutCut, lg.StderrCut, len(lg.Stdout), lg.Stderr)
	}

	var tl Timeline
	getJSON(t, srv, c, "/api/timeline?limit=100000", &tl)
	if len(tl.Attempts) != 300 || tl.Total != 300 || tl.Truncated || strings.Join(tl.Nodes, ",") != "n1,n2" || tl.Attempts[0].Job != 300 {
		t.Fatalf("timeline: %d attempts, total %d, nodes %v", len(tl.Attempts), tl.Total, tl.Nodes)
	}
	getJSON(t, srv, c, "/api/timeline?limit=10", &tl)
	if len(tl.Attempts) != 10 || !tl.Truncated {
		t.Fatalf("a short timeline: %d attempts, truncated %v", len(tl.Attempts), tl.Truncated)
	}

	var sp Space
	getJSON(t, srv, c, "/api/space?x=x&y=y", &sp)
	var n int64
	for _, cell := range sp.Cells {
		n += cell.N
	}
	if len(sp.XS) != 10 || len(sp.YS) != 7 || len(sp.Cells) != 70 || n != 600 || sp.Jobs != 600 {
		t.Fatalf("space: %d×%d, %d cells, %d jobs", len(sp.XS), len(sp.YS), len(sp.Cells), n)
	}
}

func TestSourceRefuses(t *testing.T) {
	st, e := sourceStore(t)
	srv, c := sourceServer(t, NewStoreSource(st, e, false))
	long := strings.Repeat("v", MaxFilterLen+1)
	var many []string
	for i := range MaxFilters + 1 {
		many = append(many, "p.x"+strconv.Itoa(i)+"=1")
	}
	for _, tc := range []struct {
		path string
		code int
		says string
	}{
		{"/api/jobs/9999", 404, ""},
		{"/api/jobs/7/attempts/2/log", 404, ""},
		{"/api/jobs/9999/attempts/1/log", 404, ""},
		{"/api/jobs/7/nothing", 404, ""},
		{"/api/jobs/seven", 400, "a job is a number"},
		{"/api/jobs/7/attempts/0/log", 400, "from 1"},
		{"/api/jobs?p.z=1", 400, `no parameter "z": the plan has x, y`},
		{"/api/jobs?p.x=1&p.x=2", 400, "once"},
		{"/api/jobs?state=lost", 400, `no job state "lost"`},
		{"/api/jobs?sort=name", 400, "index or wall"},
		{"/api/jobs?order=up", 400, "asc or desc"},
		{"/api/jobs?limit=-1", 400, "limit="},
		{"/api/jobs?offset=99999999", 400, "offset="},
		{"/api/jobs?offset=1e3", 400, "offset="},
		{"/api/jobs?p.x=" + long, 400, "at most 256"},
		{"/api/jobs?node=" + long, 400, "at most 256"},
		{"/api/jobs?" + strings.Join(many, "&"), 400, "more than 8"},
		{"/api/timeline?from=20&to=10", 400, "empty"},
		{"/api/timeline?from=x", 400, "from="},
		{"/api/space?x=x", 400, "two parameters"},
		{"/api/space?x=x&y=" + url.QueryEscape("<script>"), 400, "no parameter"},
	} {
		resp, body := get(t, srv, "GET", tc.path, c)
		if resp.StatusCode != tc.code || !strings.Contains(body, tc.says) || strings.Count(body, "\n") != 1 {
			t.Errorf("%s: %d %q, want %d saying %q", tc.path, resp.StatusCode, body, tc.code, tc.says)
		}
		if resp.Header.Get("Connection") == "close" {
			t.Errorf("%s: a signed-in viewer's connection closed", tc.path)
		}
	}
	// Nothing without the cookie.
	if resp, _ := get(t, srv, "GET", "/api/jobs/7", ""); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no cookie: %d", resp.StatusCode)
	}
}

// failingSource fails as a broken store would.
type failingSource struct{ *StoreSource }

func (failingSource) Info(context.Context) (Info, error) {
	return Info{}, errors.New("open /secret/path/state.db: disk I/O error")
}

func TestSourceFailureHidden(t *testing.T) {
	st, e := sourceStore(t)
	srv, c := sourceServer(t, failingSource{NewStoreSource(st, e, true)})
	resp, body := get(t, srv, "GET", "/api/info", c)
	if resp.StatusCode != 500 || strings.Contains(body, "secret") || strings.Contains(body, "disk") {
		t.Fatalf("a failure: %d %q", resp.StatusCode, body)
	}
}

func TestSpaceCached(t *testing.T) {
	st, e := sourceStore(t)
	src := NewStoreSource(st, e, false)
	now := time.Now()
	src.now = func() time.Time { return now }
	ctx := context.Background()
	a, err := src.Space(ctx, SpaceQuery{X: "x", Y: "y"})
	if err != nil {
		t.Fatal(err)
	}
	// A job ends: within SpaceFresh the answer is the cached one, after
	// it a new one.
	var b store.Batch
	b.Start(e.ID, 600, 1, "n1", now)
	if err := st.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	running := func(sp Space) (n int64) {
		for _, c := range sp.Cells {
			n += c.Running
		}
		return n
	}
	if s, err := src.Space(ctx, SpaceQuery{X: "x", Y: "y"}); err != nil || running(s) != running(a) {
		t.Fatalf("within %v: %d running, %v", SpaceFresh, running(s), err)
	}
	now = now.Add(SpaceFresh)
	if s, err := src.Space(ctx, SpaceQuery{X: "x", Y: "y"}); err != nil || running(s) != running(a)+1 {
		t.Fatalf("after %v: %d running, %v", SpaceFresh, running(s), err)
	}
	for i := range 3 * spaceEntries {
		names := []string{"x", "y"}
		if _, err := src.Space(ctx, SpaceQuery{X: names[i%2], Y: names[i/2%2]}); err != nil {
			t.Fatal(err)
		}
		now = now.Add(time.Millisecond)
	}
	if len(src.space) > spaceEntries {
		t.Fatalf("%d spaces cached", len(src.space))
	}
}

func TestStoreNews(t *testing.T) {
	st, e := sourceStore(t)
	hub := NewHub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		StoreNews(ctx, st, e, hub, 10*time.Millisecond, func() (int64, bool, bool) { return 1000, true, true }, nil)
	}()
	defer func() { cancel(); <-done }()
	var ov Overview
	deadline := time.Now().Add(10 * time.Second)
	for hub.Latest() == nil {
		if time.Now().After(deadline) {
			t.Fatal("no news")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := json.Unmarshal(hub.Latest(), &ov); err != nil {
		t.Fatal(err)
	}
	// Work: 1 ms + … + 300 ms, less job 7's failure.
	work := float64(300*301/2-7) / 1000
	if ov.Total != 1000 || ov.Done != 299 || ov.Failed != 1 || ov.Pending != 700 || ov.Finished ||
		ov.Work < work-1e-6 || ov.Work > work+1e-6 || ov.Elapsed < 1790 || ov.Changed != 0 {
		t.Fatalf("news: %+v", ov)
	}
	var b store.Batch
	b.Start(e.ID, 301, 1, "n1", time.Now())
	if err := st.Apply(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	for ov.Changed == 0 || ov.Running == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no change seen: %+v", ov)
		}
		time.Sleep(10 * time.Millisecond)
		json.Unmarshal(hub.Latest(), &ov)
	}
	if ov.Changed != 1 || ov.Running != 1 || ov.Pending != 699 {
		t.Fatalf("news after a start: %+v", ov)
	}
}
