package web

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"orrery/store"
)

// The tests of this file attack the viewer's side: each names what it
// tries. Those that pass are regression tests of defences that hold.

// attackPaths are every kind of question a viewer may ask.
var attackPaths = []string{
	"/", "/assets/app.js", "/assets/index.html", "/api/info", "/api/jobs", "/api/jobs?state=failed",
	"/api/jobs/7", "/api/jobs/7/attempts/1/log", "/api/timeline", "/api/space?x=x&y=y",
	"/api/overview", "/api/events",
}

// attackServer serves the store of sourceStore with the embedded page,
// a hub with news, and a log the test reads.
func attackServer(t *testing.T, logw io.Writer) (*httptest.Server, *fakeViewers, *store.Store, *store.Experiment) {
	t.Helper()
	st, e := sourceStore(t)
	v := &fakeViewers{secret: "s3cret-viewer-secret"}
	hub := NewHub()
	hub.Publish([]byte(`{"done":1}`))
	lg := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := httptest.NewUnstartedServer(New(Config{Viewers: v, News: hub, Source: NewStoreSource(st, e, false), Log: lg}))
	srv.EnableHTTP2 = false
	srv.Config.ErrorLog = log.New(logw, "http: ", 0)
	srv.StartTLS()
	t.Cleanup(func() { hub.Close(); srv.Close() })
	return srv, v, st, e
}

// syncBuffer is a log the server writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestAttackNothingWithoutCookie: no cookie, an empty, forged or
// rotated-out one, the cookie under another name, the secret itself as
// the cookie, or the secret in a question's query: every path and
// method is refused, with nothing of the experiment in the answer.
func TestAttackNothingWithoutCookie(t *testing.T) {
	srv, v, _, _ := attackServer(t, io.Discard)
	old, _ := v.ViewerCookie()
	v.mu.Lock()
	v.secret = "rotated-secret"
	v.mu.Unlock()
	for _, c := range []string{"", "forged", old, "s3cret-viewer-secret", "rotated-secret", strings.Repeat("a", 4000)} {
		for _, p := range attackPaths {
			for _, m := range []string{"GET", "HEAD", "POST", "OPTIONS"} {
				resp, body := get(t, srv, m, p, c)
				if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "sweep.pln") || strings.Contains(body, `"done"`) ||
					strings.Contains(body, "<html") || strings.Contains(body, "function") {
					t.Errorf("%s %s with cookie %.20q: %d %.80q, want 401 and nothing", m, p, c, resp.StatusCode, body)
				}
			}
		}
	}
	// The secret in a question's query is no credential.
	for _, p := range []string{"/api/info?v=rotated-secret", "/?v=rotated-secret"} {
		if resp, _ := get(t, srv, "GET", p, ""); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", p, resp.StatusCode)
		}
	}
	// The right cookie under another name, or as a bearer token.
	good, _ := v.ViewerCookie()
	if resp, _ := get(t, srv, "GET", "/api/info", "", "Cookie", "orrery_viewer2="+good); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the cookie under another name: %d", resp.StatusCode)
	}
	if resp, _ := get(t, srv, "GET", "/api/info", "", "Authorization", "Bearer "+good); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the cookie as a bearer token: %d", resp.StatusCode)
	}
	// Path tricks before sign-in: a cleaned path is at most a redirect,
	// never the page.
	for _, p := range []string{"/login/../api/info", "/api/../login?v=x", "//api/info", "/assets/../api/info", "/login/", "/LOGIN?v=rotated-secret"} {
		resp, body := get(t, srv, "GET", p, "")
		if resp.StatusCode == 200 || strings.Contains(body, "sweep.pln") || len(resp.Cookies()) > 0 {
			t.Errorf("%s without a cookie: %d %q, cookies %v", p, resp.StatusCode, body, resp.Cookies())
		}
	}
}

// TestAttackViewerChangesNothing: with the cookie, every method but GET
// and HEAD is refused on every path, and asking every question (GET and
// HEAD) changes nothing in the store.
func TestAttackViewerChangesNothing(t *testing.T) {
	srv, v, st, e := attackServer(t, io.Discard)
	c, _ := v.ViewerCookie()
	ctx := context.Background()
	before, err := st.Mark(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	pb, err := st.Progress(ctx, e.ID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range attackPaths {
		for _, m := range []string{"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"} {
			resp, body := get(t, srv, m, p, c)
			if resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(body, "sweep.pln") {
				t.Errorf("%s %s: %d %.60q, want 405", m, p, resp.StatusCode, body)
			}
		}
		if p == "/api/events" {
			continue // a stream: get would wait for its end
		}
		for _, m := range []string{"GET", "HEAD"} {
			if resp, _ := get(t, srv, m, p, c); resp.StatusCode != 200 {
				t.Errorf("%s %s: %d", m, p, resp.StatusCode)
			}
		}
	}
	after, err := st.Mark(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	pa, err := st.Progress(ctx, e.ID, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if !before.Same(after) || pa != pb {
		t.Fatalf("a viewer's questions changed the store: %+v %+v → %+v %+v", before, pb, after, pa)
	}
}

// TestAttackSQLInjection: SQL in every value a viewer sends (filters,
// parameter names, node, sort, order, state, space axes) is taken as
// data or refused, and the store is intact afterwards.
func TestAttackSQLInjection(t *testing.T) {
	srv, v, st, e := attackServer(t, io.Discard)
	c, _ := v.ViewerCookie()
	sqls := []string{
		"' OR '1'='1", "1' OR 1=1 --", "3'); DROP TABLE job; --", `"]') OR 1=1 --`, "1 UNION SELECT * FROM attempt",
		"$[0]", "%", "_", "\x00", "'||(SELECT stdout FROM attempt LIMIT 1)||'",
	}
	for _, s := range sqls {
		q := url.QueryEscape(s)
		var page JobPage
		for _, p := range []string{"/api/jobs?p.x=" + q, "/api/jobs?node=" + q, "/api/jobs?p.x=" + q + "&sort=wall", "/api/jobs?node=" + q + "&sort=wall&order=desc"} {
			getJSON(t, srv, c, p, &page)
			if page.Total != 0 || len(page.Jobs) != 0 {
				t.Errorf("%s matched %d jobs", p, page.Total)
			}
		}
		for _, p := range []string{"/api/jobs?p." + q + "=1", "/api/jobs?sort=" + q, "/api/jobs?order=" + q, "/api/jobs?state=" + q,
			"/api/space?x=" + q + "&y=y", "/api/space?x=x&y=" + q, "/api/jobs/" + url.PathEscape(s), "/api/timeline?from=" + q} {
			resp, body := get(t, srv, "GET", p, c)
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusNotFound {
				t.Errorf("%s: %d %q, want 400", p, resp.StatusCode, body)
			}
			if strings.Contains(strings.ToLower(body), "sqlite") || strings.Contains(body, "syntax") || strings.Contains(body, "json_extract") || strings.Contains(body, "FROM job") {
				t.Errorf("%s: the answer shows SQL: %q", p, body)
			}
		}
	}
	var page JobPage
	getJSON(t, srv, c, "/api/jobs", &page)
	if page.Total != 600 {
		t.Fatalf("after the injections the store has %d jobs, want 600", page.Total)
	}
	if m, err := st.Mark(context.Background(), e.ID); err != nil || m.Attempts != 300 {
		t.Fatalf("after the injections: %+v %v", m, err)
	}
}

// TestAttackPathTricks: /assets/ serves the embedded files alone, and
// /api/jobs/... refuses every odd job, attempt or trailing part.
func TestAttackPathTricks(t *testing.T) {
	srv, v, _, _ := attackServer(t, io.Discard)
	c, _ := v.ViewerCookie()
	for _, p := range []string{
		"/assets/", "/assets/../web.go", "/assets/..%2fweb.go", "/assets/%2e%2e/web.go", "/assets/.%2e/page.go",
		"/assets/app.js%00.html", "/assets/app.js/", "/assets/./app.css/x", "/assets/..", "/assets/app.js.map",
		"/assets//etc/passwd", "/assets/%2fetc%2fpasswd", "/assets/..\\web.go", "/web.go", "/index.html", "/assets",
		"/api/jobs/7/attempts/1/log/x", "/api/jobs/7/attempts/1", "/api/jobs/7/attempts", "/api/jobs/7/../../info",
		"/api/jobs/7%2fattempts%2f1%2flog%2f..", "/api/jobs/-1", "/api/jobs/9223372036854775808", "/api/jobs/0x7",
		"/api/jobs/7/attempts/-1/log", "/api/jobs/7/attempts/99999999999999999999/log", "/api/jobs/7/attempts/1e0/log",
		"/api/jobs/ 7", "/api/jobs/", "/api/infox", "/api/space/x",
	} {
		resp, body := get(t, srv, "GET", p, c)
		if resp.StatusCode == 200 && !strings.HasPrefix(body, "{") || resp.StatusCode == 200 && p != "/api/jobs/7/attempts/1/log" {
			if resp.StatusCode == 200 {
				t.Errorf("%s: 200 %.80q, want 301, 400 or 404", p, body)
			}
		}
		if resp.StatusCode >= 500 || strings.Contains(body, "package web") || strings.Contains(body, "root:") {
			t.Errorf("%s: %d %.80q", p, resp.StatusCode, body)
		}
	}
}

// TestAttackNoScriptInjection: values, node names, errors and plan
// text with markup come back as JSON or plain text (never HTML, never
// sniffed), and the page's script builds its DOM from text alone.
func TestAttackNoScriptInjection(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	x := `<img src=x onerror=alert(1)>`
	e := &store.Experiment{PlanPath: "</script><script>alert(1)</script>.pln", PlanText: "parameter " + x + "\n", Dialect: "modern",
		Names: []string{x}, Created: time.Now().Add(-time.Hour)}
	if err := st.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	var b store.Batch
	b.AddJob(e.ID, store.Job{Index: 1, Values: []string{"<script>alert(1)</script>"}})
	b.Start(e.ID, 1, 1, "<svg onload=alert(1)>", time.Now().Add(-time.Minute))
	one := 1
	b.Finish(e.ID, store.Attempt{Job: 1, N: 1, State: store.AttemptFailed, Ended: time.Now(), Exit: &one,
		Error: "<iframe src=javascript:alert(1)>", Stdout: []byte("<script>alert(2)</script>")}, store.Failed)
	if err := st.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	srv, c := sourceServer(t, NewStoreSource(st, e, false))
	for _, p := range []string{"/api/info", "/api/jobs", "/api/jobs/1", "/api/jobs/1/attempts/1/log", "/api/timeline",
		"/api/space?x=" + url.QueryEscape(x) + "&y=" + url.QueryEscape(x),
		"/api/jobs?p." + url.QueryEscape(x) + "=<b>", "/api/jobs?node=<b>x</b>", "/api/space?x=<b>&y=<i>", "/api/jobs?state=<script>"} {
		resp, body := get(t, srv, "GET", p, c)
		ct := resp.Header.Get("Content-Type")
		if ct != "application/json" && !strings.HasPrefix(ct, "text/plain") || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d as %q (nosniff %q)", p, resp.StatusCode, ct, resp.Header.Get("X-Content-Type-Options"))
		}
		if ct == "application/json" && strings.Contains(body, "<script") {
			t.Errorf("%s: raw markup in JSON (json.Marshal escapes < > &): %.120q", p, body)
		}
	}
	js, err := os.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", "srcdoc", "javascript:"} {
		if bytes.Contains(js, []byte(sink)) {
			t.Errorf("app.js uses %s: the page must build its DOM with textContent", sink)
		}
	}
	page, err := os.ReadFile("assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(page, []byte("<script>")) || bytes.Contains(page, []byte(" onclick=")) || bytes.Contains(page, []byte(" onload=")) {
		t.Error("index.html has an inline script or handler")
	}
}

// TestAttackBounds: huge, negative, overflowing and NaN numbers, many
// or long filters are refused or cut to the bounds; no answer is a 500.
func TestAttackBounds(t *testing.T) {
	srv, v, _, _ := attackServer(t, io.Discard)
	c, _ := v.ViewerCookie()
	long := url.QueryEscape(strings.Repeat("é", 40_000))
	var many []string
	for i := range 1000 {
		many = append(many, "p.x"+strconv.Itoa(i)+"=1")
	}
	for _, p := range []string{
		"/api/jobs?limit=9223372036854775807", "/api/jobs?limit=99999999999999999999999", "/api/jobs?limit=NaN", "/api/jobs?limit=-0",
		"/api/jobs?limit=1073741824", "/api/jobs?offset=-1", "/api/jobs?offset=10000000", "/api/jobs?offset=Inf", "/api/jobs?limit=0x10",
		"/api/jobs?p." + long + "=1", "/api/jobs?p.x=" + long, "/api/jobs?node=" + long, "/api/jobs?" + strings.Join(many, "&"),
		"/api/jobs?sort=" + long, "/api/jobs?state=" + long, "/api/space?x=" + long + "&y=y",
		"/api/timeline?from=-1", "/api/timeline?to=-9223372036854775808", "/api/timeline?from=9007199254740993",
		"/api/timeline?limit=9223372036854775807", "/api/timeline?from=NaN", "/api/timeline?from=1&to=1",
		"/api/timeline?from=9007199254740991&to=9007199254740992", "/api/jobs/99999999999999999999",
	} {
		resp, body := get(t, srv, "GET", p, c)
		if resp.StatusCode >= 500 || len(body) > 256<<10 {
			t.Errorf("%.80s: %d with %d bytes", p, resp.StatusCode, len(body))
		}
		if resp.StatusCode == 400 && (len(body) > 1024 || strings.Count(body, "\n") != 1) {
			t.Errorf("%.80s: a refusal of %d bytes: %.100q", p, len(body), body)
		}
	}
	var page JobPage
	getJSON(t, srv, c, "/api/jobs?limit=1073741824", &page)
	if len(page.Jobs) != MaxPage {
		t.Errorf("a huge limit gave %d jobs", len(page.Jobs))
	}
	var lg Log
	getJSON(t, srv, c, "/api/jobs/7/attempts/1/log", &lg)
	if len(lg.Stdout) > MaxLogBytes || !lg.StdoutCut {
		t.Errorf("a long output: %d bytes (cut %v)", len(lg.Stdout), lg.StdoutCut)
	}
}

// TestAttackTimelineFarWindow: a window that ends far in the future
// (a "to" the route accepts: up to 2^53 ms) holds every attempt that
// started before it, though time.UnixMilli(to).UnixNano() is past
// int64's range (the year 2262).
func TestAttackTimelineFarWindow(t *testing.T) {
	srv, v, _, _ := attackServer(t, io.Discard)
	c, _ := v.ViewerCookie()
	var all, far Timeline
	getJSON(t, srv, c, "/api/timeline", &all)
	getJSON(t, srv, c, "/api/timeline?to="+strconv.FormatInt(1<<53, 10), &far)
	if all.Total != 300 || far.Total != all.Total {
		t.Fatalf("the whole experiment: %d attempts; a window to 2^53 ms: %d (to %d), want the same", all.Total, far.Total, far.To)
	}
}

// TestAttackSecretNotLogged: the viewer secret and its cookie reach no
// log line (the handler's or the HTTP server's), no answer's body and
// no redirect, whatever a viewer sends.
func TestAttackSecretNotLogged(t *testing.T) {
	var logs syncBuffer
	srv, v, _, _ := attackServer(t, &logs)
	secret := "s3cret-viewer-secret"
	cookie, _ := v.ViewerCookie()
	for _, p := range []string{"/login?v=" + secret, "/login?v=" + secret + ";x=1", "/login?v=" + secret + "&v=2", "/login?x=1&v=" + secret,
		"/login?v=" + secret + "x", "/login?v=" + secret[:10], "/login/?v=" + secret} {
		resp, body := get(t, srv, "GET", p, "")
		if strings.Contains(body, secret) || strings.Contains(resp.Header.Get("Location"), secret) || strings.Contains(body, cookie) {
			t.Errorf("%s: the secret or cookie in the answer: %q (Location %q)", p, body, resp.Header.Get("Location"))
		}
	}
	// A signed-in viewer's failing questions log their query: the
	// cookie is not in it.
	for _, p := range []string{"/api/jobs?p.zz=" + secret, "/api/jobs/x" + secret, "/api/info?v=" + secret} {
		get(t, srv, "GET", p, cookie)
	}
	// A broken request, as raw bytes.
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /login?v=%s HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", secret)
	io.ReadAll(bufio.NewReader(conn))
	conn.Close()
	time.Sleep(50 * time.Millisecond)
	l := logs.String()
	if strings.Contains(l, secret) || strings.Contains(l, cookie) {
		t.Fatalf("the secret or its cookie reached the log:\n%s", l)
	}
	if !strings.Contains(l, "viewer signed in") || !strings.Contains(l, "viewer refused") {
		t.Fatalf("the log has no sign-in lines (the test saw no log):\n%s", l)
	}
}

// TestAttackEventStreamOutlivesReadTimeout: the root's HTTP server has
// a ReadTimeout (port: 3 × HelloTimeout, 30 s; `orrery web`: webRead),
// which stays set on the connection after a GET's headers, and a
// WriteTimeout (a minute) for the whole answer; an event stream whose
// viewer reads it must outlive both (each of its writes sets its own
// deadline; a stream cut every minute would make the page reconnect and
// miss news).
func TestAttackEventStreamOutlivesReadTimeout(t *testing.T) {
	v := &fakeViewers{secret: "s3cret"}
	hub := NewHub()
	srv := httptest.NewUnstartedServer(New(Config{Viewers: v, News: hub}))
	srv.EnableHTTP2 = false
	srv.Config.ReadTimeout = 300 * time.Millisecond
	srv.Config.WriteTimeout = 300 * time.Millisecond // the port's and orrery web's are a minute
	srv.StartTLS()
	t.Cleanup(func() { hub.Close(); srv.Close() })
	c, _ := v.ViewerCookie()
	hub.Publish([]byte(`{"n":0}`))
	req, _ := http.NewRequest("GET", srv.URL+"/api/events", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: c})
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ended := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, resp.Body)
		ended <- err
	}()
	stop := time.After(1500 * time.Millisecond) // five read timeouts
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := 1; ; i++ {
		select {
		case err := <-ended:
			t.Fatalf("the event stream ended after %v (ReadTimeout and WriteTimeout %v), its viewer reading: %v", time.Duration(i)*50*time.Millisecond, srv.Config.ReadTimeout, err)
		case <-stop:
			return
		case <-tick.C:
			hub.Publish([]byte(`{"n":` + strconv.Itoa(i) + `}`))
		}
	}
}

// TestAttackHeadEventStream: HEAD /api/events answers its headers and
// holds no stream slot (MaxStreams such requests would shut every other
// viewer's news out).
func TestAttackHeadEventStream(t *testing.T) {
	srv, hub, c := newsServer(t)
	hub.Publish([]byte(`{"n":0}`))
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "HEAD /api/events HTTP/1.1\r\nHost: x\r\nCookie: %s=%s\r\n\r\n", CookieName, c)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	line, _ := br.ReadString('\n')
	if !strings.Contains(line, "200") {
		t.Fatalf("HEAD /api/events: %q", line)
	}
	for {
		h, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("HEAD /api/events: its headers never ended: %v", err)
		}
		if h == "\r\n" {
			break
		}
	}
	streams := func() int { hub.mu.Lock(); defer hub.mu.Unlock(); return len(hub.streams) }
	if n := streams(); n != 0 {
		t.Fatalf("%d streams open for a HEAD request, want none", n)
	}
}

// inFlight counts the goroutines whose stack holds fn.
func inFlight(fn string) int {
	buf := make([]byte, 8<<20)
	buf = buf[:runtime.Stack(buf, true)]
	n := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			n++
		}
	}
	return n
}

// maxQueriesAtOnce is what a viewer's expensive questions (a parameter
// space, a filtered count over every job) should be allowed to run at
// once, on a root with a dispatcher to serve: a few.
const maxQueriesAtOnce = 4

// TestAttackExpensiveQueriesBounded: 20 viewers (or one with 20
// requests) ask for parameter spaces on distinct axes, and then for
// filtered counts that match nothing, over a store of 200k jobs. Each
// is a scan of every job. Parameter spaces take one slot at a time
// (StoreSource.aggregating); filtered job queries have no bound, so
// the root's CPUs go to them while the dispatcher writes. It logs the
// figures and fails when more than maxQueriesAtOnce ran at once.
func TestAttackExpensiveQueriesBounded(t *testing.T) {
	n := int64(200_000)
	if raced() {
		n = 10_000 // SQLite is 50 times slower under the race detector
	}
	st, e, _ := bigStore(t, n)
	wide := *e
	wide.Names = []string{"x", "y", "a", "b", "c", "d"} // more axes: more distinct spaces (36)
	src := NewStoreSource(st, &wide, false)
	srv, c := sourceServer(t, src)
	ctx := context.Background()

	// A writer's batch: 100 attempts started, as the dispatcher writes.
	next := int64(1) // pending jobs are 1, 11, 21, …
	apply := func() time.Duration {
		var b store.Batch
		for range 100 {
			b.Start(e.ID, next, 1, "nodeW", time.Now())
			next += 10
		}
		start := time.Now()
		if err := st.Apply(ctx, &b); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}
	var idle []time.Duration
	for range 5 {
		idle = append(idle, apply())
	}

	flood := func(what string, alone string, paths []string, fn string) int {
		t0 := time.Now()
		if resp, body := get(t, srv, "GET", alone, c); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %q", alone, resp.StatusCode, body)
		}
		t.Logf("%s: one alone took %v", what, time.Since(t0).Round(time.Millisecond))
		var wg sync.WaitGroup
		var peak, codes atomic.Int64
		done := make(chan struct{})
		go func() { // the sampler
			for {
				select {
				case <-done:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if k := int64(inFlight(fn)); k > peak.Load() {
					peak.Store(k)
				}
			}
		}()
		start := time.Now()
		var slowest atomic.Int64
		for _, p := range paths {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t0 := time.Now()
				req, _ := http.NewRequest("GET", srv.URL+p, nil)
				req.AddCookie(&http.Cookie{Name: CookieName, Value: c})
				resp, err := srv.Client().Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					if codes.Add(1) == 1 {
						t.Logf("%s: %d after %v", p, resp.StatusCode, time.Since(t0).Round(time.Millisecond))
					}
				}
				if d := int64(time.Since(t0)); d > slowest.Load() {
					slowest.Store(d)
				}
			}()
		}
		// The writer meanwhile.
		var busy []time.Duration
		for i := 0; i < 40; i++ {
			busy = append(busy, apply())
			if inFlight(fn) == 0 && i >= 3 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		wg.Wait()
		close(done)
		slices.Sort(busy)
		slices.Sort(idle)
		t.Logf("%s: %d requests over %d jobs in %v (slowest %v, %d not 200); at most %d at once; "+
			"a writer's batch of 100: idle median %v max %v; meanwhile median %v max %v (%d batches)",
			what, len(paths), n, time.Since(start).Round(time.Millisecond), time.Duration(slowest.Load()).Round(time.Millisecond), codes.Load(), peak.Load(),
			idle[len(idle)/2], idle[len(idle)-1], busy[len(busy)/2], busy[len(busy)-1], len(busy))
		return int(peak.Load())
	}

	var spaces []string
	for _, x := range wide.Names {
		for _, y := range wide.Names {
			if len(spaces) < 20 && (x != "d" || y != "d") {
				spaces = append(spaces, "/api/space?x="+x+"&y="+y)
			}
		}
	}
	peakSpace := flood("space", "/api/space?x=d&y=d", spaces, "(*Store).Space(") // the store's aggregation itself

	var counts []string
	for i := range 20 {
		counts = append(counts, "/api/jobs?p.x=none"+strconv.Itoa(i)+"&p.y=none&sort=wall")
	}
	peakJobs := flood("filtered jobs", "/api/jobs?p.x=alone&p.y=none&sort=wall", counts, "store.(*Store).JobsPage")

	if peakSpace > maxQueriesAtOnce || peakJobs > maxQueriesAtOnce {
		t.Fatalf("viewers ran %d parameter spaces and %d filtered job counts at once, want at most %d each: "+
			"nothing bounds a viewer's expensive questions", peakSpace, peakJobs, maxQueriesAtOnce)
	}
}
