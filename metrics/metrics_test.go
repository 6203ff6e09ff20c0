package metrics

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const testToken = "s3cret-metrics-token"

func testSnapshot() Snapshot {
	return Snapshot{
		Jobs:     map[string]int{"pending": 7, "running": 3, "done": 12, "failed": 2},
		Attempts: map[string]int64{"ok": 12, "failed": 4, "lost": 1, "cancelled": 5},
		Clusters: []Cluster{
			{Name: "alpha", Link: "up", Rate: 90, Queued: 4, Running: 2},
			{Name: "beta", Link: "down", Rate: 0, Queued: 0, Running: 1},
		},
		Nodes: []Node{
			{Name: "a1", Cluster: "alpha", Running: 2},
			{Name: "b1", Cluster: "beta", Running: 1},
		},
		StagedIn:  123456,
		StagedOut: 7890,
	}
}

// wantLines are lines the exposition of testSnapshot must hold.
var wantLines = []string{
	`orrery_jobs{state="pending"} 7`,
	`orrery_jobs{state="running"} 3`,
	`orrery_jobs{state="done"} 12`,
	`orrery_jobs{state="failed"} 2`,
	`orrery_attempts_total{outcome="ok"} 12`,
	`orrery_attempts_total{outcome="failed"} 4`,
	`orrery_attempts_total{outcome="lost"} 1`,
	`orrery_attempts_total{outcome="cancelled"} 5`,
	`orrery_cluster_link_info{cluster="alpha",state="up"} 1`,
	`orrery_cluster_link_info{cluster="beta",state="down"} 1`,
	`orrery_cluster_rate_jobs_per_second{cluster="alpha"} 1.5`,
	`orrery_cluster_rate_jobs_per_second{cluster="beta"} 0`,
	`orrery_cluster_queued_jobs{cluster="alpha"} 4`,
	`orrery_cluster_queued_jobs{cluster="beta"} 0`,
	`orrery_cluster_running_attempts{cluster="alpha"} 2`,
	`orrery_cluster_running_attempts{cluster="beta"} 1`,
	`orrery_node_running_attempts{cluster="alpha",node="a1"} 2`,
	`orrery_node_running_attempts{cluster="beta",node="b1"} 1`,
	`orrery_staged_in_bytes_total 123456`,
	`orrery_staged_out_bytes_total 7890`,
	`orrery_export_omitted_clusters 0`,
	`orrery_export_omitted_nodes 0`,
	`orrery_dispatch_decision_seconds_bucket{le="1e-05"} 0`,
	`orrery_dispatch_decision_seconds_bucket{le="5e-05"} 1`,
	`orrery_dispatch_decision_seconds_bucket{le="0.001"} 2`,
	`orrery_dispatch_decision_seconds_bucket{le="1"} 2`,
	`orrery_dispatch_decision_seconds_bucket{le="+Inf"} 3`,
	`orrery_dispatch_decision_seconds_count 3`,
}

// families are the metric families every scrape after an Update holds,
// each with HELP and TYPE.
var families = map[string]string{
	"orrery_jobs":                         "gauge",
	"orrery_attempts_total":               "counter",
	"orrery_cluster_link_info":            "gauge",
	"orrery_cluster_rate_jobs_per_second": "gauge",
	"orrery_cluster_queued_jobs":          "gauge",
	"orrery_cluster_running_attempts":     "gauge",
	"orrery_node_running_attempts":        "gauge",
	"orrery_staged_in_bytes_total":        "counter",
	"orrery_staged_out_bytes_total":       "counter",
	"orrery_export_omitted_clusters":      "gauge",
	"orrery_export_omitted_nodes":         "gauge",
	"orrery_dispatch_decision_seconds":    "histogram",
}

// fed returns a Metrics holding testSnapshot and three decisions.
func fed() *Metrics {
	m := New()
	m.Update(testSnapshot())
	m.ObserveDecision(30 * time.Microsecond)
	m.ObserveDecision(700 * time.Microsecond)
	m.ObserveDecision(3 * time.Second)
	return m
}

// get sends method to url with the given Authorization header values
// and returns the response and its body.
func get(t *testing.T, c *http.Client, method, url string, auth ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auth {
		req.Header.Add("Authorization", a)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, string(b)
}

// scrape returns an authenticated scrape of m's handler.
func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler(func() string { return testToken }))
	defer srv.Close()
	resp, body := get(t, srv.Client(), http.MethodGet, srv.URL+"/metrics", "Bearer "+testToken)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: status %d, body %q", resp.StatusCode, body)
	}
	return body
}

func TestHandlerRefusesWithoutTheToken(t *testing.T) {
	m := fed()
	var mu sync.Mutex
	tok := testToken
	srv := httptest.NewServer(m.Handler(func() string { mu.Lock(); defer mu.Unlock(); return tok }))
	defer srv.Close()
	c := srv.Client()
	u := srv.URL + "/metrics"

	refused := []struct {
		name   string
		method string
		auth   []string
	}{
		{"missing", http.MethodGet, nil},
		{"wrong token", http.MethodGet, []string{"Bearer wrong-token"}},
		{"token prefix", http.MethodGet, []string{"Bearer " + testToken[:len(testToken)-1]}},
		{"token plus suffix", http.MethodGet, []string{"Bearer " + testToken + "x"}},
		{"empty bearer", http.MethodGet, []string{"Bearer "}},
		{"no scheme", http.MethodGet, []string{testToken}},
		{"basic scheme", http.MethodGet, []string{"Basic " + testToken}},
		{"token scheme", http.MethodGet, []string{"Token " + testToken}},
		{"two headers", http.MethodGet, []string{"Bearer " + testToken, "Bearer " + testToken}},
		{"post without token", http.MethodPost, nil},
	}
	for _, tc := range refused {
		resp, body := get(t, c, tc.method, u, tc.auth...)
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d, want 401", tc.name, resp.StatusCode)
		}
		if got := resp.Header.Get("WWW-Authenticate"); got != `Bearer realm="orrery metrics"` {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, got)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%s: Cache-Control %q", tc.name, got)
		}
		if body != "unauthorized\n" {
			t.Errorf("%s: body %q, want one line that reveals nothing", tc.name, body)
		}
	}

	for _, auth := range []string{"Bearer " + testToken, "bearer " + testToken} {
		resp, body := get(t, c, http.MethodGet, u, auth)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%q: status %d, want 200", auth, resp.StatusCode)
		}
		if got := resp.Header.Get("Cache-Control"); got != "no-store" {
			t.Errorf("%q: Cache-Control %q", auth, got)
		}
		if !strings.Contains(body, "orrery_jobs{") {
			t.Errorf("%q: body lacks orrery_jobs:\n%s", auth, body)
		}
	}
	resp, body := get(t, c, http.MethodHead, u, "Bearer "+testToken)
	if resp.StatusCode != http.StatusOK || body != "" {
		t.Errorf("HEAD: status %d, body %q; want 200 and no body", resp.StatusCode, body)
	}
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		resp, _ := get(t, c, method, u, "Bearer "+testToken)
		if resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s with token: status %d, want 405", method, resp.StatusCode)
		}
		if got := resp.Header.Get("Allow"); got != "GET, HEAD" {
			t.Errorf("%s with token: Allow %q", method, got)
		}
	}

	// A rotated token takes effect at once; an empty one refuses all.
	mu.Lock()
	tok = "rotated"
	mu.Unlock()
	if resp, _ := get(t, c, http.MethodGet, u, "Bearer "+testToken); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("old token after rotation: status %d, want 401", resp.StatusCode)
	}
	if resp, _ := get(t, c, http.MethodGet, u, "Bearer rotated"); resp.StatusCode != http.StatusOK {
		t.Errorf("rotated token: status %d, want 200", resp.StatusCode)
	}
	mu.Lock()
	tok = ""
	mu.Unlock()
	for _, auth := range [][]string{nil, {"Bearer "}, {"Bearer"}, {"Bearer rotated"}} {
		if resp, _ := get(t, c, http.MethodGet, u, auth...); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("empty token, Authorization %q: status %d, want 401", auth, resp.StatusCode)
		}
	}

	nilSrv := httptest.NewServer(m.Handler(nil))
	defer nilSrv.Close()
	if resp, _ := get(t, nilSrv.Client(), http.MethodGet, nilSrv.URL, "Bearer "); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("nil token func: status %d, want 401", resp.StatusCode)
	}
}

func TestBodyHoldsTheSnapshot(t *testing.T) {
	m := New()
	body := scrape(t, m)
	if strings.Contains(body, "orrery_jobs") {
		t.Errorf("before any Update the body exports jobs:\n%s", body)
	}
	if !strings.Contains(body, "orrery_dispatch_decision_seconds_count 0") {
		t.Errorf("before any Update the body lacks the empty histogram:\n%s", body)
	}

	s := testSnapshot()
	m.Update(s)
	m.ObserveDecision(30 * time.Microsecond)
	m.ObserveDecision(700 * time.Microsecond)
	m.ObserveDecision(3 * time.Second)
	// Update copies: changing the caller's snapshot afterwards changes nothing.
	s.Jobs["pending"] = 1000
	s.Attempts["ok"] = 1000
	s.Nodes[0].Running = 1000
	s.Clusters[0].Queued = 1000

	body = scrape(t, m)
	lines := make(map[string]bool)
	for _, l := range strings.Split(body, "\n") {
		lines[l] = true
	}
	for _, w := range wantLines {
		if !lines[w] {
			t.Errorf("body lacks line %q", w)
		}
	}
	for name, typ := range families {
		if !strings.Contains(body, "# HELP "+name+" ") {
			t.Errorf("body lacks HELP for %s", name)
		}
		if !lines["# TYPE "+name+" "+typ] {
			t.Errorf("body lacks TYPE %s for %s", typ, name)
		}
	}
	if strings.Contains(body, "1000") {
		t.Errorf("a change to the caller's snapshot after Update shows:\n%s", body)
	}
	if strings.Contains(body, "go_") || strings.Contains(body, "process_") {
		t.Errorf("body holds runtime or process metrics:\n%s", body)
	}
	if t.Failed() {
		t.Logf("body:\n%s", body)
	}
}

func TestLabelsAreBounded(t *testing.T) {
	s := testSnapshot()
	s.Nodes = nil
	const nodes = 5 * MaxNodes
	for i := range nodes {
		s.Nodes = append(s.Nodes, Node{Name: fmt.Sprintf("n%06d", i), Cluster: "alpha", Running: 1})
	}
	// A repeat of an exported node is exported once.
	s.Nodes = append(s.Nodes[:10:10], append([]Node{{Name: "n000000", Cluster: "alpha", Running: 9}}, s.Nodes[10:]...)...)
	for i := range 2 * MaxClusters {
		s.Clusters = append(s.Clusters, Cluster{Name: fmt.Sprintf("c%05d", i), Link: "up"})
	}
	s.Clusters = append([]Cluster{s.Clusters[0]}, s.Clusters...) // a repeat
	for i := range 3 * MaxKeys {
		s.Jobs[fmt.Sprintf("state%03d", i)] = i
	}
	long := "a" + strings.Repeat("é", MaxLabelBytes) // the cap falls inside a rune
	s.Attempts[long+"x"] = 1
	s.Attempts[long+"y"] = 2 // cleans to the same label value: summed
	s.Attempts["bad\xffutf8"] = 3

	m := New()
	m.Update(s)
	body := scrape(t, m)
	count := func(prefix string) int {
		n := 0
		for _, l := range strings.Split(body, "\n") {
			if strings.HasPrefix(l, prefix) {
				n++
			}
		}
		return n
	}
	if n := count("orrery_node_running_attempts{"); n != MaxNodes {
		t.Errorf("%d node series exported, want the cap %d", n, MaxNodes)
	}
	if n := count("orrery_cluster_queued_jobs{"); n != MaxClusters {
		t.Errorf("%d cluster series exported, want the cap %d", n, MaxClusters)
	}
	if n := count("orrery_jobs{"); n != MaxKeys {
		t.Errorf("%d job-state series exported, want the cap %d", n, MaxKeys)
	}
	for _, w := range []string{
		fmt.Sprintf("orrery_export_omitted_nodes %d", nodes+1-MaxNodes),
		fmt.Sprintf("orrery_export_omitted_clusters %d", 2*MaxClusters+2+1-MaxClusters),
		`orrery_node_running_attempts{cluster="alpha",node="n000000"} 1`,
		`orrery_attempts_total{outcome="a` + strings.Repeat("é", MaxLabelBytes/2-1) + `"} 3`,
		`orrery_attempts_total{outcome="bad` + "\uFFFD" + `utf8"} 3`,
	} {
		if !strings.Contains(body, w+"\n") {
			t.Errorf("body lacks line %q", w)
		}
	}
	if strings.Contains(body, `node="n010000"`) {
		t.Error("a node beyond the cap is exported")
	}
}

func TestUpdateIsSafeFromAnyGoroutine(t *testing.T) {
	m := New()
	srv := httptest.NewServer(m.Handler(func() string { return testToken }))
	defer srv.Close()
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				s := testSnapshot()
				s.Jobs["done"] = i
				s.Nodes = append(s.Nodes, Node{Name: fmt.Sprint("g", g), Cluster: "alpha", Running: i})
				m.Update(s)
				m.ObserveDecision(time.Duration(i) * time.Microsecond)
			}
		})
	}
	for range 20 {
		resp, body := get(t, srv.Client(), http.MethodGet, srv.URL, "Bearer "+testToken)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("scrape during updates: status %d, body %q", resp.StatusCode, body)
		}
	}
	wg.Wait()
	if body := scrape(t, m); !strings.Contains(body, "orrery_dispatch_decision_seconds_count 800\n") {
		t.Errorf("after 800 decisions:\n%s", body)
	}
}

// needTool returns the path of a Debian prometheus package tool; the test
// fails, never skips, without it.
func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found (install Debian's prometheus package): %v", name, err)
	}
	return p
}

func TestPromtoolChecksMetrics(t *testing.T) {
	promtool := needTool(t, "promtool")
	m := fed()
	s := testSnapshot()
	for i := range 50 {
		s.Nodes = append(s.Nodes, Node{Name: fmt.Sprintf("node-%d", i), Cluster: "alpha", Running: i % 3})
	}
	m.Update(s)
	body := scrape(t, m)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s\nbody:\n%s", err, out, body)
	}
	if len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("promtool check metrics reports:\n%s", out)
	}

	// The check can fail: a counter without _total is reported.
	bad := "# HELP orrery_bad A counter.\n# TYPE orrery_bad counter\norrery_bad 1\n"
	cmd = exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(bad)
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("promtool check metrics passes a counter without _total:\n%s", out)
	}
}

func TestRealPrometheusScrapes(t *testing.T) {
	bin := needTool(t, "prometheus")
	dir := t.TempDir()

	m := fed()
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler(func() string { return testToken }))
	srv := httptest.NewTLSServer(mux)
	defer srv.Close()
	target := strings.TrimPrefix(srv.URL, "https://")

	caFile := filepath.Join(dir, "ca.pem")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(caFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: orrery
    scheme: https
    metrics_path: /metrics
    tls_config:
      ca_file: %[1]s
    authorization:
      type: Bearer
      credentials: %[2]s
    static_configs:
      - targets: ['%[3]s']
  - job_name: orrery_wrong_token
    scheme: https
    metrics_path: /metrics
    tls_config:
      ca_file: %[1]s
    authorization:
      type: Bearer
      credentials: not-the-token
    static_configs:
      - targets: ['%[3]s']
`, caFile, testToken, target)
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}

	addr := freeAddr(t)
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	cmd := exec.Command(bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(dir, "tsdb"),
		"--web.listen-address="+addr,
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting prometheus: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			log, _ := os.ReadFile(logFile.Name())
			t.Logf("prometheus log:\n%s", log)
		}
	}()

	api := &http.Client{Timeout: 5 * time.Second}
	query := func(q string) (map[string]string, error) {
		resp, err := api.Get("http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q))
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		var r struct {
			Status string
			Error  string
			Data   struct {
				Result []struct {
					Metric map[string]string
					Value  [2]any
				}
			}
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&r); err != nil {
			return nil, fmt.Errorf("query %s: %v", q, err)
		}
		if r.Status != "success" {
			return nil, fmt.Errorf("query %s: %s %s", q, r.Status, r.Error)
		}
		out := make(map[string]string)
		for _, s := range r.Data.Result {
			key := s.Metric["state"]
			if key == "" {
				key = s.Metric["outcome"]
			}
			if key == "" {
				key = s.Metric["job"]
			}
			v, _ := s.Value[1].(string)
			out[key] = v
		}
		return out, nil
	}
	// eventually polls until every query returns its wanted values, for
	// at most 60 s (a liveness bound: Prometheus scrapes every second).
	eventually := func(what string, want map[string]map[string]string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		var last string
		for {
			ok := true
			for q, w := range want {
				got, err := query(q)
				if err != nil {
					ok, last = false, err.Error()
					break
				}
				if fmt.Sprint(got) != fmt.Sprint(w) {
					ok, last = false, fmt.Sprintf("%s = %v, want %v", q, got, w)
					break
				}
			}
			if ok {
				return
			}
			select {
			case err := <-exited:
				t.Fatalf("%s: prometheus exited: %v", what, err)
			case <-time.After(250 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not seen within 60 s; last: %s", what, last)
			}
		}
	}

	eventually("first scrape", map[string]map[string]string{
		`up{job="orrery"}`:                       {"orrery": "1"},
		`up{job="orrery_wrong_token"}`:           {"orrery_wrong_token": "0"},
		`orrery_jobs{job="orrery"}`:              {"pending": "7", "running": "3", "done": "12", "failed": "2"},
		`orrery_attempts_total`:                  {"ok": "12", "failed": "4", "lost": "1", "cancelled": "5"},
		`sum(orrery_node_running_attempts)`:      {"": "3"},
		`orrery_dispatch_decision_seconds_count`: {"orrery": "3"},
	})

	// A later snapshot reaches Prometheus during the run.
	s := testSnapshot()
	s.Jobs = map[string]int{"pending": 0, "running": 1, "done": 20, "failed": 3}
	s.Attempts["ok"] = 20
	m.Update(s)
	eventually("updated snapshot", map[string]map[string]string{
		`orrery_jobs`:                         {"pending": "0", "running": "1", "done": "20", "failed": "3"},
		`orrery_attempts_total{outcome="ok"}`: {"ok": "20"},
		`up{job="orrery_wrong_token"}`:        {"orrery_wrong_token": "0"},
	})
}

// freeAddr returns a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
