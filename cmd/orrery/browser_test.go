package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"orrery/pki"
	"orrery/protocol"
)

// The browser the page is tested in: Debian's chromium, which .ci/run
// installs (with certutil, of libnss3-tools, to make it trust a CA).
const browserPath = "/usr/bin/chromium"

// browserTimeout bounds a whole browser test.
const browserTimeout = 2 * time.Minute

// e2eBrowser is a headless Chromium that trusts the CA of a state
// directory the way docs/web.md tells a user to: the CA `orrery token
// --ca` prints, imported into the NSS database of the browser's HOME.
type e2eBrowser struct {
	t   *testing.T
	ctx context.Context // the first tab

	mu      sync.Mutex
	console []string // what the page said at warning level or worse
}

// e2eStartBrowser starts the browser, trusting the CA in caPEM. It ends
// when ctx does, or with the test.
func e2eStartBrowser(t *testing.T, ctx context.Context, caPEM string) *e2eBrowser {
	t.Helper()
	for _, tool := range []string{browserPath, "certutil"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the browser tests need %s (.ci/run installs chromium and libnss3-tools): %v", tool, err)
		}
	}
	home := t.TempDir()
	nss := filepath.Join(home, ".pki", "nssdb")
	ca := filepath.Join(home, "orrery-ca.pem")
	e2eWrite(t, ca, caPEM)
	if err := os.MkdirAll(nss, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-d", "sql:" + nss, "-N", "--empty-password"},
		{"-d", "sql:" + nss, "-A", "-t", "C,,", "-n", "orrery", "-i", ca},
	} {
		if out, err := exec.Command("certutil", args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	var out e2eBuffer
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browserPath),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(filepath.Join(home, "profile")),
		chromedp.Env("HOME="+home),
		chromedp.WindowSize(1280, 900),
		chromedp.CombinedOutput(&out),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("starting %s: %v\n%s", browserPath, err, out.String())
	}
	b := &e2eBrowser{t: t, ctx: bctx}
	b.listen(bctx)
	return b
}

// listen keeps what a tab's console says at warning level or worse:
// console.warn and console.error, exceptions nothing caught, and the
// browser's own log (a resource that failed to load, a policy that
// refused something).
func (b *e2eBrowser) listen(ctx context.Context) {
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			switch m.Type {
			case chromedp.ConsoleWarning, chromedp.ConsoleError, chromedp.ConsoleException:
				b.mu.Lock()
				b.console = append(b.console, fmt.Sprintf("%s (%s:%d)", m.String(), m.URL, m.Line+1))
				b.mu.Unlock()
			}
		}
	}()
}

// tab opens another tab, whose console is kept too.
func (b *e2eBrowser) tab() context.Context {
	b.t.Helper()
	ctx, cancel := chromedp.NewContext(b.ctx)
	b.t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		b.t.Fatalf("a new tab: %v", err)
	}
	b.listen(ctx)
	return ctx
}

// consoleSince returns what the console said at warning level or worse
// after its first n messages, and how many it has said in all.
func (b *e2eBrowser) consoleSince(n int) ([]string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console[n:]...), len(b.console)
}

// noConsole fails the test when the console said anything at warning
// level or worse after its first n messages.
func (b *e2eBrowser) noConsole(what string, n int) int {
	b.t.Helper()
	msgs, all := b.consoleSince(n)
	for _, m := range msgs {
		b.t.Errorf("%s: the console says %s", what, m)
	}
	return all
}

// do runs actions in the tab of ctx, and fails the test with what when
// they fail.
func do(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the tab of ctx.
func eval[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("evaluating %s: %v", expr, err)
	}
	return v
}

// waitJS waits up to d for a JavaScript expression to be true in the tab
// of ctx; when it never is, the test fails with what and the value of
// show. It asks again every 50 ms, also across a navigation (which ends
// a chromedp.Poll): the sign-in page moves on to / by itself.
func waitJS(t *testing.T, ctx context.Context, d time.Duration, what, expr, show string) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for {
		var ok bool
		ok, err = chromedp.Run(ctx, chromedp.Evaluate[bool]("Boolean("+expr+")"))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	got, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("String("+show+")"))
	t.Fatalf("%s: not within %s (last error: %v); the page shows %s", what, d, err, got)
}

// pageCounts is what the page's counters show (-1 for a counter that
// shows no number).
const pageCounts = `JSON.stringify(Object.fromEntries(["done", "running", "failed", "pending"].map(k =>
	[k, parseInt((document.getElementById("count-" + k).textContent || "").replace(/[^0-9]/g, "") || "-1", 10)])))`

// countsExpr is a JavaScript expression true when the page's counters
// show want.
func countsExpr(want map[string]int64) string {
	b, _ := json.Marshal(want)
	return fmt.Sprintf(`(() => { const want = %s, got = JSON.parse(%s); return Object.keys(want).every(k => want[k] === got[k]); })()`, b, pageCounts)
}

// statusCounts are `orrery status --json`'s counts as the page shows
// them: pending there includes the jobs not yet generated.
func statusCounts(t *testing.T, st map[string]any) map[string]int64 {
	t.Helper()
	pending := e2eNum(t, st, "pending")
	if ng, ok := st["not_generated"].(float64); ok {
		pending += int64(ng)
	}
	return map[string]int64{"done": e2eNum(t, st, "done"), "running": e2eNum(t, st, "running"),
		"failed": e2eNum(t, st, "failed"), "pending": pending}
}

// screenshotDir is where the views' screenshots go: $ORRERY_SCREENSHOTS
// (.ci/run sets it, so they are kept with the test's output), else a
// temporary directory.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ORRERY_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// showView opens a view by its tab and waits for it to be drawn.
func showView(t *testing.T, ctx context.Context, view string) {
	t.Helper()
	do(t, ctx, "open the "+view+" view", chromedp.Click(chromedp.ID("tab-"+view), chromedp.NodeVisible))
	waitJS(t, ctx, 10*time.Second, "the "+view+" view shows",
		fmt.Sprintf(`(() => { const v = document.getElementById("view-%s"); return v && !v.hidden && v.offsetHeight > 0; })()`, view),
		`location.hash`)
}

// screenshot saves a PNG of the whole page as dir/name.png.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(dir, name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of the %s view: %s", name, path)
}

// TestE2EBrowser opens the page of a running sweep in a real browser
// (Debian's Chromium, headless, trusting the run's CA as docs/web.md
// says) and checks it as a viewer sees it: it loads with nothing on the
// console; with jobs held by gates its counters are `orrery status`'s;
// as the gates open, its timeline and table follow the jobs as they
// end, without a reload; the state filter shows the failed jobs alone,
// and a failed job's log its stderr; the viewer's cookie opens none of a
// node's doors. A screenshot of each view is saved. Then `orrery web`
// serves the finished experiment's page, which loads as cleanly.
func TestE2EBrowser(t *testing.T) {
	dir := e2eDir(t)
	shots := screenshotDir(t)
	// 12 jobs; those with x=1 fail (exit 3, after printing to both
	// streams), and each with x ≥ 3 waits for its own gate file,
	// go-X-Y. With a job limit of 3, the run comes to rest with 6 jobs
	// ended and three held running; once their gates open, with 9 ended
	// and the other three held running.
	e2eWrite(t, filepath.Join(dir, "b.pln"), fmt.Sprintf(`parameter x integer range from 1 to 4
parameter y integer range from 1 to 3
task main
	shexec "if [ $x -ge 3 ]; then while [ ! -e %s/go-$x-$y ]; do sleep 0.05; done; fi; echo out x=$x y=$y; if [ $x -eq 1 ]; then echo boom x=$x y=$y >&2; exit 3; fi"
endtask
`, dir))
	release := func(jobs []e2eJob) {
		t.Helper()
		for _, j := range jobs {
			if err := os.WriteFile(filepath.Join(dir, "go-"+j.Values["x"]+"-"+j.Values["y"]), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), browserTimeout)
	defer cancel()
	run := e2eStart(t, ctx, dir, "run", "--nodes", "1", "--job-limit", "3", "--listen", "127.0.0.1:0", "b.pln")
	t.Cleanup(func() {
		for x := 3; x <= 4; x++ {
			for y := 1; y <= 3; y++ {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("go-%d-%d", x, y)), nil, 0o644)
			}
		}
	})
	if !e2eWaitFor(30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, ".orrery", "port.addr"))
		return err == nil || run.exited()
	}) || run.exited() {
		t.Fatalf("the run recorded no port address\nstderr:\n%s", run.stderr.String())
	}
	link := strings.TrimSpace(e2eMust(t, dir, "token", "--viewer"))
	caPEM := e2eMust(t, dir, "token", "--ca")
	b := e2eStartBrowser(t, ctx, caPEM)
	tab := b.ctx

	// (a) The page loads, signed in by the link, with nothing on the
	// console.
	do(t, tab, "open the viewer's link", chromedp.Navigate(link))
	waitJS(t, tab, 20*time.Second, "the page is ready", `document.body && document.body.dataset.ready === "1"`,
		`location.href + " " + document.title + " " + (document.body ? document.body.innerText.slice(0, 300) : "")`)
	if loc := eval[string](t, tab, "location.href"); strings.Contains(loc, "v=") || !strings.HasSuffix(strings.SplitN(loc, "#", 2)[0], "/") {
		t.Errorf("after signing in the page is at %s; want / with no secret in its address", loc)
	}

	// (b) At rest (three jobs held by the gates, every job with x < 3
	// ended), the counters are status's.
	held := waitRest(t, dir, 6)
	want := statusCounts(t, e2eStatus(t, dir))
	if want["failed"] != 3 || want["done"] != 3 || want["running"] != 3 || want["pending"] != 3 {
		t.Fatalf("status at rest: %v; want 3 done, 3 failed, 3 running, 3 pending", want)
	}
	waitJS(t, tab, 15*time.Second, fmt.Sprintf("the counters show status's %v", want), countsExpr(want), pageCounts)
	n := b.noConsole("the page at rest", 0)

	// (c) The gates open in turn: the timeline, then the table, follow
	// the jobs as they end, without a reload.
	do(t, tab, "mark the page", chromedp.Evaluate[chromedp.Void](`window.orreryTestMark = 1`))
	showView(t, tab, "timeline")
	waitJS(t, tab, 10*time.Second, "the timeline shows the held jobs running", timelinePixels("running")+" > 0", timelineLoaded)
	loaded := eval[int](t, tab, timelineLoaded)
	opened := time.Now()
	release(held)
	waitJS(t, tab, 10*time.Second, "the timeline follows the held jobs' end", fmt.Sprintf("%s > %d", timelineLoaded, loaded), timelineLoaded)
	t.Logf("the timeline was drawn again %s after the first held jobs were let go", time.Since(opened).Round(time.Millisecond))
	held = waitRest(t, dir, 9)
	showView(t, tab, "jobs")
	waitJS(t, tab, 10*time.Second, "the table shows the other held jobs running", rowsIn("running")+" === 3", rowStates)
	// Two of the three end; the last stays held, so that the run (and
	// its port) lives on while the page is looked at.
	last := held[2]
	opened = time.Now()
	release(held[:2])
	waitJS(t, tab, 10*time.Second, "the table shows 11 jobs ended",
		`document.querySelectorAll("#jobs-table tbody tr[data-index]").length === 12 && `+rowsIn("done")+" === 8 && "+rowsIn("failed")+" === 3 && "+rowsIn("running")+" === 1", rowStates)
	t.Logf("the table showed the jobs ended %s after they were let go", time.Since(opened).Round(time.Millisecond))
	atRest := statusCounts(t, e2eStatus(t, dir))
	waitJS(t, tab, 15*time.Second, fmt.Sprintf("the counters show status's %v", atRest), countsExpr(atRest), pageCounts)
	if eval[int](t, tab, `window.orreryTestMark || 0`) != 1 {
		t.Error("the page reloaded to follow the jobs")
	}

	// (f) The views, with their screenshots; (d) the failed jobs, and a
	// failed job's log.
	showView(t, tab, "overview")
	screenshot(t, tab, shots, "overview")
	showView(t, tab, "nodes")
	screenshot(t, tab, shots, "nodes")
	showView(t, tab, "timeline")
	screenshot(t, tab, shots, "timeline")
	showView(t, tab, "space")
	waitJS(t, tab, 10*time.Second, "the parameter space is drawn", `document.getElementById("space-canvas").width > 0`, `document.getElementById("space-jobs").textContent`)
	screenshot(t, tab, shots, "space")
	showView(t, tab, "jobs")
	do(t, tab, "filter the failed jobs", chromedp.SetValue(chromedp.ID("filter-state"), "failed"),
		chromedp.Evaluate[chromedp.Void](`document.getElementById("filter-state").dispatchEvent(new Event("change", {bubbles: true}))`))
	waitJS(t, tab, 10*time.Second, "the table shows the 3 failed jobs alone",
		`document.querySelectorAll("#jobs-table tbody tr[data-index]").length === 3 && `+rowsIn("failed")+" === 3", rowStates)
	do(t, tab, "open a failed job", chromedp.Click(chromedp.CSS(`#jobs-table tbody tr[data-index]`), chromedp.NodeVisible))
	waitJS(t, tab, 10*time.Second, "the job's panel shows its attempt", `!document.getElementById("job-panel").hidden && document.getElementById("log-btn-1") !== null`,
		`document.getElementById("job-panel").innerText.slice(0, 500)`)
	do(t, tab, "open the attempt's log", chromedp.Click(chromedp.ID("log-btn-1"), chromedp.NodeVisible))
	waitJS(t, tab, 10*time.Second, "the attempt's log shows its stderr", `!document.getElementById("job-log").hidden && /boom x=1/.test(document.getElementById("log-stderr").textContent)`,
		`document.getElementById("job-panel").innerText.slice(0, 800)`)
	if out := eval[string](t, tab, `document.getElementById("log-stdout").textContent`); !strings.Contains(out, "out x=1") {
		t.Errorf("the failed job's stdout: %q", out)
	}
	screenshot(t, tab, shots, "jobs")
	n = b.noConsole("the page's views", n)

	// (e) A viewer's cookie opens nothing but the page: from the page
	// itself, nothing can be changed, a node's paths are not there, and
	// nothing is answered without the cookie.
	probe := eval[map[string]int](t, tab, `(async () => {
		const r = {};
		for (const m of ["POST", "PUT", "DELETE"]) r[m + " /api/jobs"] = (await fetch("/api/jobs", {method: m})).status;
		r["POST /login"] = (await fetch("/login", {method: "POST"})).status;
		r["GET /api/overview without the cookie"] = (await fetch("/api/overview", {credentials: "omit"})).status;
		for (const p of ["/agent", "/join", "/enrol", "/api/nodes", "/api/attempts/1/files", "/stage/in-1.txt"]) r["GET " + p] = (await fetch(p)).status;
		return r;
	})()`)
	for k, code := range probe {
		want := 404
		switch {
		case strings.HasPrefix(k, "POST") || strings.HasPrefix(k, "PUT") || strings.HasPrefix(k, "DELETE"):
			want = 405
		case strings.Contains(k, "without the cookie"):
			want = 401
		}
		if code != want {
			t.Errorf("from the page, %s: %d, want %d", k, code, want)
		}
	}
	// The refusals are on the console (a resource that failed to load),
	// and nothing else is.
	msgs, _ := b.consoleSince(n)
	for _, m := range msgs {
		if !strings.Contains(m, "Failed to load resource") {
			t.Errorf("the probes of a node's doors: the console says %s", m)
		}
	}
	checkNodeDoorShut(t, dir, link)
	// The run's page leaves before the run ends: its stream's attempts
	// to reconnect to a port that closed would be on the console the
	// orrery web check reads.
	do(t, tab, "leave the run's page", chromedp.Navigate("about:blank"))
	release([]e2eJob{last})
	if code := run.wait(e2eRunTimeout); code != exitFailed {
		t.Fatalf("run: exit %d, want 1 (the x=1 jobs fail)\nstderr:\n%s", code, run.stderr.String())
	}
	final := statusCounts(t, e2eStatus(t, dir))

	// `orrery web` on the finished experiment: the same page, read-only,
	// loads as cleanly, with status's numbers.
	web, webLink := e2eWebStart(t, ctx, dir, "--listen", "127.0.0.1:0")
	wtab := b.tab()
	_, m := b.consoleSince(0)
	do(t, wtab, "open orrery web's link", chromedp.Navigate(webLink))
	waitJS(t, wtab, 20*time.Second, "orrery web's page is ready", `document.body && document.body.dataset.ready === "1"`,
		`location.href + " " + (document.body ? document.body.innerText.slice(0, 300) : "")`)
	waitJS(t, wtab, 15*time.Second, fmt.Sprintf("orrery web's counters show status's %v", final), countsExpr(final), pageCounts)
	showView(t, wtab, "timeline")
	waitJS(t, wtab, 10*time.Second, "orrery web's timeline shows every attempt ended, some ok and some failed",
		timelinePixels("running")+" === 0 && "+timelinePixels("ok")+" > 0 && "+timelinePixels("failed")+" > 0",
		`JSON.stringify({running: `+timelinePixels("running")+`, ok: `+timelinePixels("ok")+`, failed: `+timelinePixels("failed")+`})`)
	for _, v := range []string{"jobs", "space", "nodes", "overview"} {
		showView(t, wtab, v)
	}
	screenshot(t, wtab, shots, "web-overview")
	b.noConsole("orrery web's page", m)
	web.killGroup(syscall.SIGINT)
	if code := web.wait(30 * time.Second); code != 0 {
		t.Errorf("orrery web after SIGINT: exit %d, want 0\nstderr:\n%s", code, web.stderr.String())
	}
}

// timelineLoaded is how many times the timeline view has loaded its
// data (the page's own counter).
const timelineLoaded = `Number(document.getElementById("view-timeline").dataset.loaded || 0)`

// timelineColours are the colours of the timeline's bars (app.js's ATT).
var timelineColours = map[string][3]int{"running": {0x00, 0x72, 0xB2}, "ok": {0x00, 0x9E, 0x73}, "failed": {0xD5, 0x5E, 0x00}}

// timelinePixels is a JavaScript expression: how many pixels of the
// timeline's canvas have the colour of attempts in state.
func timelinePixels(state string) string {
	c := timelineColours[state]
	// The pixels are read from a copy made for reading, so that the page's
	// own canvas is not read back (which Chromium warns of on the console).
	return fmt.Sprintf(`(() => { const cv = document.getElementById("timeline-canvas"); if (!cv.width || !cv.height) return 0;
		const cp = document.createElement("canvas"); cp.width = cv.width; cp.height = cv.height;
		const cx = cp.getContext("2d", {willReadFrequently: true}); cx.drawImage(cv, 0, 0);
		const d = cx.getImageData(0, 0, cp.width, cp.height).data; let n = 0;
		for (let i = 0; i < d.length; i += 4) if (d[i] === %d && d[i+1] === %d && d[i+2] === %d) n++; return n; })()`, c[0], c[1], c[2])
}

// rowsIn is a JavaScript expression: how many rows of the jobs table
// show state.
func rowsIn(state string) string {
	return fmt.Sprintf(`Array.from(document.querySelectorAll("#jobs-table tbody tr[data-index]")).filter(r => r.querySelector(".state").textContent === %q).length`, state)
}

// rowStates shows the jobs table's rows, index:state.
const rowStates = `Array.from(document.querySelectorAll("#jobs-table tbody tr[data-index]")).map(r => r.dataset.index + ":" + r.querySelector(".state").textContent).join(" ")`

// waitRest waits until the run is at rest: ended jobs ended and three
// running, each with x ≥ 3 (held by its gate), which it returns.
func waitRest(t *testing.T, dir string, ended int) []e2eJob {
	t.Helper()
	var jobs, held []e2eJob
	if !e2eWaitFor(60*time.Second, func() bool {
		jobs, held = e2eJobs(t, dir), nil
		end := 0
		for _, j := range jobs {
			x, _ := strconv.Atoi(j.Values["x"])
			switch {
			case j.State == "running" && x >= 3:
				held = append(held, j)
			case j.State == "running":
				return false
			case j.State == "done" || j.State == "failed":
				end++
			}
		}
		if len(held) == 3 && end == ended {
			return true
		}
		time.Sleep(100 * time.Millisecond)
		return false
	}) {
		t.Fatalf("the run never came to rest with %d jobs ended and three held running: %+v", ended, jobs)
	}
	return held
}

// checkNodeDoorShut checks, from Go, that the viewer's credentials open
// none of a node's doors on the run's port: a TLS connection that asks
// for the agent protocol, with no client certificate, gets no answer to
// an HTTP request carrying the viewer's cookie, and its hello is refused
// when it offers the viewer secret (or the cookie) as the join secret.
func checkNodeDoorShut(t *testing.T, dir, link string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	secret := u.Query().Get("v")
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM([]byte(e2eMust(t, dir, "token", "--ca")))
	a, err := pki.Open(filepath.Join(dir, ".orrery"))
	if err != nil {
		t.Fatal(err)
	}
	cookie, ok := a.LoginCookie(secret)
	if !ok {
		t.Fatal("the viewer link's secret gives no cookie")
	}
	dial := func() *tls.Conn {
		t.Helper()
		c, err := tls.Dial("tcp", u.Host, &tls.Config{RootCAs: pool, ServerName: u.Hostname(), NextProtos: []string{protocol.ALPN}})
		if err != nil {
			t.Fatalf("a TLS connection for the agent protocol: %v", err)
		}
		if p := c.ConnectionState().NegotiatedProtocol; p != protocol.ALPN {
			t.Fatalf("the port negotiated %q, want %q", p, protocol.ALPN)
		}
		c.SetDeadline(time.Now().Add(15 * time.Second))
		return c
	}
	// An HTTP request with the cookie, where a node's hello belongs.
	c := dial()
	fmt.Fprintf(c, "GET /api/overview HTTP/1.1\r\nHost: %s\r\nCookie: orrery_viewer=%s\r\n\r\n", u.Host, cookie)
	got, err := io.ReadAll(c)
	c.Close()
	var ne interface{ Timeout() bool }
	if errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("the agent protocol with a viewer's cookie: the port kept the connection open")
	}
	if len(got) != 0 {
		t.Errorf("the agent protocol with a viewer's cookie: the port answered %q", got)
	}
	// A hello that offers the viewer's credentials as the join secret.
	enrolled, err := a.Nodes()
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := pki.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secret, cookie} {
		c := dial()
		pc := protocol.NewConnLimits(c, protocol.NodeLimits)
		if err := pc.Send(&protocol.Msg{Type: protocol.TypeHello, Hello: &protocol.Hello{Version: protocol.Version, Name: "viewer", Secret: s, PublicKey: pub}}); err != nil {
			t.Fatal(err)
		}
		m, err := pc.Recv()
		switch {
		case err != nil:
			t.Errorf("a hello with a viewer's credential: %v, want a refusal", err)
		case m.Type != protocol.TypeRefused:
			t.Errorf("a hello with a viewer's credential: the port answered %q, want %q", m.Type, protocol.TypeRefused)
		}
		c.Close()
	}
	if nodes, err := a.Nodes(); err != nil || len(nodes) != len(enrolled) {
		t.Errorf("after the viewer's tries, the enrolled nodes are %v (%v); want %v", nodes, err, enrolled)
	}
}
