package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EWebOnThePort runs a sweep that listens, with its jobs held, and
// checks its web side on the same port as its nodes: /metrics answers
// only its bearer token and says how many jobs are where; the viewer link
// `orrery token --viewer` prints signs a browser in, and rotating it
// signs the browser out; the CA `orrery token --ca` prints is what the
// port's certificate checks against.
func TestE2EWebOnThePort(t *testing.T) {
	dir := e2eDir(t)
	gate := filepath.Join(dir, "go")
	e2eWrite(t, filepath.Join(dir, "w.pln"), fmt.Sprintf(`parameter x integer range from 1 to 3
task main
	execute sh -c "while [ ! -e %s ]; do sleep 0.05; done"
endtask
`, gate))
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	run := e2eStart(t, ctx, dir, "run", "--nodes", "1", "--job-limit", "1", "--listen", "127.0.0.1:0", "w.pln")
	t.Cleanup(func() { os.WriteFile(gate, nil, 0o644) })
	if !e2eWaitFor(30*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(dir, ".orrery", "port.addr"))
		return err == nil || run.exited()
	}) || run.exited() {
		t.Fatalf("the run recorded no port address\nstderr:\n%s", run.stderr.String())
	}
	viewer := strings.TrimSpace(e2eMust(t, dir, "token", "--viewer"))
	token := strings.TrimSpace(e2eMust(t, dir, "token", "--metrics"))
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(e2eMust(t, dir, "token", "--ca"))) {
		t.Fatal("orrery token --ca printed no certificate")
	}
	base, _, ok := strings.Cut(strings.TrimPrefix(viewer, "https://"), "/")
	if !ok || !strings.HasPrefix(viewer, "https://") || !strings.Contains(viewer, "/login?v=") {
		t.Fatalf("viewer link %q", viewer)
	}
	client := &http.Client{Timeout: 10 * time.Second,
		Transport:     &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"h2", "http/1.1"}}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, url string, kv ...string) (*http.Response, string) {
		t.Helper()
		req, _ := http.NewRequest(method, url, nil)
		for i := 0; i+1 < len(kv); i += 2 {
			req.Header.Set(kv[i], kv[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, url, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	metricsURL := "https://" + base + "/metrics"
	if resp, body := do("GET", metricsURL); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "orrery_jobs") {
		t.Fatalf("/metrics with no token: %d %q", resp.StatusCode, body)
	}
	var body string
	if !e2eWaitFor(30*time.Second, func() bool {
		var resp *http.Response
		resp, body = do("GET", metricsURL, "Authorization", "Bearer "+token)
		return resp.StatusCode == 200 && strings.Contains(body, `orrery_jobs{state="running"} 1`) && strings.Contains(body, `orrery_jobs{state="pending"} 2`) &&
			strings.Contains(body, `orrery_node_running_attempts{cluster="",node="local1"} 1`)
	}) {
		t.Fatalf("/metrics never said 1 job running (on local1) and 2 pending:\n%s", body)
	}
	if !strings.Contains(body, "orrery_dispatch_decision_seconds_count") {
		t.Errorf("/metrics has no decision latency:\n%s", body)
	}

	// A viewer.
	if resp, _ := do("GET", "https://"+base+"/"); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the page with no cookie: %d, want 401", resp.StatusCode)
	}
	resp, _ := do("GET", viewer)
	if resp.StatusCode != http.StatusOK || len(resp.Cookies()) != 1 {
		t.Fatalf("the viewer link: %d with cookies %v, want 200 and one cookie", resp.StatusCode, resp.Cookies())
	}
	cookie := resp.Cookies()[0]
	withCookie := func() int {
		req, _ := http.NewRequest("GET", "https://"+base+"/", nil)
		req.AddCookie(cookie)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// Signed in: the cookie opens the page.
	if code := withCookie(); code != http.StatusOK {
		t.Fatalf("the page with the cookie: %d, want 200", code)
	}
	// The viewer's news: the counts, as JSON.
	var news string
	if !e2eWaitFor(30*time.Second, func() bool {
		var resp *http.Response
		resp, news = do("GET", "https://"+base+"/api/overview", "Cookie", cookie.Name+"="+cookie.Value)
		return resp.StatusCode == 200 && strings.Contains(news, `"running":1`) && strings.Contains(news, `"pending":2`)
	}) {
		t.Fatalf("/api/overview never said 1 running and 2 pending: %s", news)
	}
	if resp, body := do("GET", "https://"+base+"/api/overview"); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "running") {
		t.Fatalf("/api/overview with no cookie: %d %q", resp.StatusCode, body)
	}
	if resp, body := do("GET", metricsURL, "Cookie", cookie.Name+"="+cookie.Value); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "orrery_jobs") {
		t.Fatalf("/metrics with a viewer's cookie: %d", resp.StatusCode)
	}
	rotated := strings.TrimSpace(e2eMust(t, dir, "token", "--viewer", "--rotate"))
	if rotated == viewer {
		t.Fatal("--rotate printed the same viewer link")
	}
	if code := withCookie(); code != http.StatusUnauthorized {
		t.Fatalf("the cookie of a rotated-out link: %d, want 401", code)
	}
	if resp, _ := do("GET", viewer); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("the rotated-out link: %d, want 403", resp.StatusCode)
	}

	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if code := run.wait(e2eRunTimeout); code != 0 {
		t.Fatalf("run: exit %d\nstderr:\n%s", code, run.stderr.String())
	}
	// The run no longer listens: no viewer link points at it.
	if code, out, _ := e2eRun(t, dir, time.Minute, "token", "--viewer"); code == 0 {
		t.Errorf("after the run, orrery token --viewer printed %q", out)
	}
}
