package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// webcmdPlan is a sweep of 12 jobs (x 1..4, y 1..3) whose jobs print to
// both streams and fail (exit 3) when x is 4. Before it runs, a job
// waits for the gate file when gate is not "".
func webcmdPlan(gate string) string {
	wait := ""
	if gate != "" {
		wait = fmt.Sprintf("while [ ! -e %s ]; do sleep 0.05; done; ", gate)
	}
	return fmt.Sprintf(`parameter x integer range from 1 to 4
parameter y integer range from 1 to 3
task main
	shexec "%secho out x=$x y=$y; if [ $x -eq 4 ]; then echo boom x=$x y=$y >&2; exit 3; fi"
endtask
`, wait)
}

// webURL matches the viewer's link `orrery web` prints.
var webURL = regexp.MustCompile(`https://[^\s/]+/login\?v=[A-Za-z0-9_%=-]+`)

// e2eWebStart starts `orrery web ARGS` in dir and returns it and the
// viewer's link it printed.
func e2eWebStart(t *testing.T, ctx context.Context, dir string, args ...string) (*e2eProc, string) {
	t.Helper()
	p := e2eStart(t, ctx, dir, append([]string{"web"}, args...)...)
	var link string
	if !e2eWaitFor(30*time.Second, func() bool {
		link = webURL.FindString(p.stdout.String())
		return link != "" || p.exited()
	}) || link == "" {
		t.Fatalf("orrery web printed no link\nstdout:\n%s\nstderr:\n%s", p.stdout.String(), p.stderr.String())
	}
	if !strings.Contains(p.stdout.String(), "Ctrl-C to stop") {
		t.Errorf("orrery web does not say how to stop it: %q", p.stdout.String())
	}
	return p, link
}

// e2eViewerClient is an HTTP client that trusts the CA `orrery token
// --ca` prints for dir and follows no redirect.
func e2eViewerClient(t *testing.T, dir string) *http.Client {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(e2eMust(t, dir, "token", "--ca"))) {
		t.Fatal("orrery token --ca printed no certificate")
	}
	return &http.Client{Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// e2eSignIn opens the viewer's link and returns the cookie it gives.
func e2eSignIn(t *testing.T, client *http.Client, link string) *http.Cookie {
	t.Helper()
	resp, err := client.Get(link)
	if err != nil {
		t.Fatalf("the viewer's link: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 400 || len(resp.Cookies()) != 1 {
		t.Fatalf("the viewer's link: %d with cookies %v, want one cookie", resp.StatusCode, resp.Cookies())
	}
	return resp.Cookies()[0]
}

// TestE2EWebCmd: `orrery web` serves a finished experiment's page from
// its store: its link signs a viewer in (over TLS the CA of `orrery
// token --ca` vouches for), its numbers are `orrery status`'s, a job
// that does not exist is 404, a wrong secret 403, no cookie 401, a
// POST 405; SIGINT stops it with exit 0. Bad usage exits 2 with one
// line.
func TestE2EWebCmd(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "w.pln"), webcmdPlan(""))
	// Before any run: no experiment there, and nothing made.
	if code, stdout, stderr := e2eRun(t, dir, e2eCmdTimeout, "web", "--listen", "127.0.0.1:0"); code != exitInvalid ||
		stdout != "" || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "no experiment") {
		t.Errorf("orrery web with no experiment: exit %d, stdout %q, stderr %q; want 2 and one line saying so", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, ".orrery")); err == nil {
		t.Error("orrery web with no experiment made a state directory")
	}
	if code, _, stderr := e2eRun(t, dir, time.Minute, "run", "--nodes", "2", "w.pln"); code != exitFailed {
		t.Fatalf("run: exit %d, want 1 (jobs with x=4 fail)\nstderr:\n%s", code, stderr)
	}
	for _, bad := range [][]string{{"--listen", "nonsense"}, {"a.pln", "b.pln"}, {"--state-dir", ".orrery", "w.pln"}, {"--bogus"}} {
		code, stdout, stderr := e2eRun(t, dir, e2eCmdTimeout, append([]string{"web"}, bad...)...)
		if code != exitInvalid || stdout != "" || stderr == "" {
			t.Errorf("orrery web %s: exit %d, stdout %q, stderr %q; want 2 and why", strings.Join(bad, " "), code, stdout, stderr)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	web, link := e2eWebStart(t, ctx, dir, "--listen", "127.0.0.1:0", "w.pln")
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	base := "https://" + u.Host
	client := e2eViewerClient(t, dir)
	do := func(method, path string, c *http.Cookie) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, nil)
		if c != nil {
			req.AddCookie(c)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	if resp, body := do("GET", "/api/overview", nil); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "done") {
		t.Errorf("/api/overview with no cookie: %d %q, want 401 and nothing of the experiment", resp.StatusCode, body)
	}
	if resp, body := do("GET", "/login?v=not-the-secret", nil); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Errorf("a wrong viewer secret: %d %q with cookies %v, want 403 and none", resp.StatusCode, body, resp.Cookies())
	}
	cookie := e2eSignIn(t, client, link)
	if resp, body := do("GET", "/", cookie); resp.StatusCode != 200 || !strings.Contains(body, "<html") {
		t.Errorf("the page: %d %.200q", resp.StatusCode, body)
	}

	// Its numbers are status's (the news comes every 2 s; the first at
	// once).
	st := e2eStatus(t, dir)
	var ov map[string]any
	var body string
	if !e2eWaitFor(15*time.Second, func() bool {
		var resp *http.Response
		resp, body = do("GET", "/api/overview", cookie)
		ov = nil
		return resp.StatusCode == 200 && json.Unmarshal([]byte(body), &ov) == nil
	}) {
		t.Fatalf("/api/overview never answered: %s", body)
	}
	for _, k := range []string{"done", "failed", "running", "pending", "total"} {
		if got, want := e2eNum(t, ov, k), e2eNum(t, st, k); got != want {
			t.Errorf("/api/overview %s = %d, status --json says %d\n%s", k, got, want, body)
		}
	}
	if e2eNum(t, ov, "done") != 9 || e2eNum(t, ov, "failed") != 3 {
		t.Errorf("/api/overview: want 9 done and 3 failed: %s", body)
	}
	var info map[string]any
	if resp, body := do("GET", "/api/info", cookie); resp.StatusCode != 200 || json.Unmarshal([]byte(body), &info) != nil ||
		info["live"] != false || !strings.Contains(fmt.Sprint(info["plan_text"]), "parameter y") {
		t.Errorf("/api/info: %d %s; want the plan and live false", resp.StatusCode, body)
	}
	// A failed job's log, and jobs that do not exist.
	failed := e2eJobs(t, dir, "--state", "failed")
	if len(failed) != 3 {
		t.Fatalf("jobs --state failed: %d jobs, want 3", len(failed))
	}
	if resp, body := do("GET", fmt.Sprintf("/api/jobs/%d/attempts/1/log", failed[0].Index), cookie); resp.StatusCode != 200 ||
		!strings.Contains(body, "boom x=4") {
		t.Errorf("the log of failed job %d: %d %s", failed[0].Index, resp.StatusCode, body)
	}
	for _, p := range []string{"/api/jobs/999", "/api/jobs/1/attempts/9/log", "/api/jobs/999/attempts/1/log"} {
		if resp, body := do("GET", p, cookie); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d %q, want 404", p, resp.StatusCode, body)
		}
	}
	// A viewer can only look.
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if resp, _ := do(m, "/api/jobs", cookie); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s /api/jobs: %d, want 405", m, resp.StatusCode)
		}
	}
	// No node is served: a peer asking for the agent protocol is refused
	// in the handshake.
	if c, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"orrery-agent/3"}}); err == nil {
		t.Errorf("orrery web took a TLS connection for the agent protocol (ALPN %q)", c.ConnectionState().NegotiatedProtocol)
		c.Close()
	}

	web.killGroup(syscall.SIGINT)
	if code := web.wait(30 * time.Second); code != 0 {
		t.Errorf("orrery web after SIGINT: exit %d, want 0\nstderr:\n%s", code, web.stderr.String())
	}
	e2eNoPanic(t, "orrery web", web.stderr.String())
}
