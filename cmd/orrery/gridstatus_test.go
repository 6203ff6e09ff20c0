package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gridStatusPlan is a sweep of jobs long enough to watch.
const gridStatusPlan = `parameter x integer range from 1 to %d
task main
	execute sh -c "sleep 0.4; echo $x" > out.txt
	copy node:out.txt root:results/out-$x.txt
endtask
`

// gridCluster is what `status --json` says of one cluster.
type gridCluster struct {
	Name     string   `json:"name"`
	Link     string   `json:"link"`
	SeenLink string   `json:"seen_link"`
	Stale    bool     `json:"stale"`
	Head     string   `json:"head"`
	Nodes    int      `json:"nodes"`
	Running  int      `json:"running"`
	Queued   int      `json:"queued"`
	Done     int64    `json:"done"`
	Failed   int64    `json:"failed"`
	Rate     *float64 `json:"rate"`
}

// gridStatusOf runs `status --json` in dir and returns its clusters and
// whether they are the running root's.
func gridStatusOf(t *testing.T, dir string) (map[string]gridCluster, bool, string) {
	t.Helper()
	out := e2eMust(t, dir, "status", "--json")
	var st struct {
		Clusters []gridCluster `json:"clusters"`
		Live     *bool         `json:"clusters_live"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Clusters == nil || st.Live == nil {
		t.Fatalf("status --json: no clusters list or clusters_live (%v):\n%s", err, out)
	}
	m := map[string]gridCluster{}
	for _, c := range st.Clusters {
		if c.Rate == nil {
			t.Errorf("status --json: cluster %s has no rate:\n%s", c.Name, out)
		}
		m[c.Name] = c
	}
	return m, *st.Live, out
}

// TestE2EGridStatus watches a two-cluster grid whose heads run on this
// machine: while the root runs, `status --json` has each cluster live
// (connected, its nodes); with the root killed (-9) the view is stale and
// every link lost; the same command resumes the run to its end; then
// each cluster's done (from the store) sums to the jobs, `status` prints
// the clusters' table, and `jobs --json`, `joblog` and `log` name the
// cluster and node of every attempt.
func TestE2EGridStatus(t *testing.T) {
	const n = 60
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "p.pln"), fmt.Sprintf(gridStatusPlan, n))
	e2eWrite(t, filepath.Join(dir, "grid.cluster"), "cluster east\n    node e1 job-limit 2\n    node e2 job-limit 1\ncluster west\n    node w1 job-limit 2\n")
	nodesOf := map[string]map[string]bool{"east": {"e1": true, "e2": true}, "west": {"w1": true}}
	t.Cleanup(func() {
		// Heads left by a failed test: they would outlive it by their lease.
		for c := range nodesOf {
			e2eRun(t, dir, e2eCmdTimeout, "head", "stop", "--dir", filepath.Join(dir, ".orrery", "heads", c))
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root := e2eStart(t, ctx, dir, "run", "--cluster", "grid.cluster", "p.pln")
	var live map[string]gridCluster
	ok := e2eWaitFor(time.Minute, func() bool {
		if root.exited() {
			return true
		}
		code, _, _ := e2eRun(t, dir, e2eCmdTimeout, "status")
		if code != 0 {
			return false // no experiment yet
		}
		cs, isLive, _ := gridStatusOf(t, dir)
		live = cs
		return isLive && cs["east"].Link == "connected" && cs["west"].Link == "connected" &&
			cs["east"].Nodes == 2 && cs["west"].Nodes == 1 && cs["east"].Done+cs["west"].Done > 0
	})
	if !ok || root.exited() {
		t.Fatalf("status --json never showed both clusters live, connected, with their nodes and a job done (last %+v)\nroot's stderr:\n%s", live, root.stderr.String())
	}
	for name, c := range live {
		if c.Stale || c.SeenLink != "" || c.Head == "" || c.Running < 0 || c.Queued < 0 {
			t.Errorf("cluster %s while the root runs: %+v", name, c)
		}
	}
	text := e2eMust(t, dir, "status")
	if !regexp.MustCompile(`(?m)^clusters \(live, as the root saw them .* ago\):\n +CLUSTER +LINK +NODES .*JOBS/MIN\n +east +connected +2 `).MatchString(text) {
		t.Errorf("status while the root runs does not show the live clusters:\n%s", text)
	}

	// The root killed: its view is stale at once, every link lost.
	root.killGroup(syscall.SIGKILL)
	root.wait(30 * time.Second)
	cs, isLive, out := gridStatusOf(t, dir)
	if isLive || len(cs) != 2 {
		t.Errorf("status --json with the root killed: live %v, want false\n%s", isLive, out)
	}
	for name, c := range cs {
		if c.Link != "lost" || !c.Stale || c.SeenLink != "connected" {
			t.Errorf("cluster %s with the root killed: link %q, stale %v, seen link %q; want lost, true, connected", name, c.Link, c.Stale, c.SeenLink)
		}
	}
	if text := e2eMust(t, dir, "status"); !strings.Contains(text, "clusters (stale: the root is not running;") {
		t.Errorf("status with the root killed does not say its view is stale:\n%s", text)
	}

	// Resumed to its end.
	code, stdout, stderr := e2eRun(t, dir, 2*time.Minute, "run", "--cluster", "grid.cluster", "p.pln")
	if code != 0 {
		t.Fatalf("run again: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	cs, isLive, out = gridStatusOf(t, dir)
	var done int64
	for name, c := range cs {
		done += c.Done
		if c.Link != "lost" || !c.Stale || c.Failed != 0 || *c.Rate < 0 {
			t.Errorf("cluster %s after the run: %+v", name, c)
		}
	}
	if isLive || len(cs) != 2 || done != n {
		t.Errorf("status --json after the run: live %v, clusters %d, %d done on them; want false, 2, %d\n%s", isLive, len(cs), done, n, out)
	}
	if text := e2eMust(t, dir, "status"); !regexp.MustCompile(`(?m)^clusters \(the run has ended; .*\n.*CLUSTER.*\n +east +\S+ +.*\n +west `).MatchString(text) {
		t.Errorf("status after the run does not show the clusters' table:\n%s", text)
	}

	// Every attempt names its cluster, and the node there once it ended.
	jobs := e2eMust(t, dir, "jobs", "--json")
	var count int
	for _, line := range strings.Split(strings.TrimSpace(jobs), "\n") {
		var j struct {
			Index   int64  `json:"index"`
			State   string `json:"state"`
			Cluster string `json:"cluster"`
			Node    string `json:"node"`
			Runs    []struct {
				Attempt int    `json:"attempt"`
				State   string `json:"state"`
				Node    string `json:"node"`
				Cluster string `json:"cluster"`
				Head    string `json:"head"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(line), &j); err != nil {
			t.Fatalf("jobs --json: %v in %q", err, line)
		}
		count++
		if j.State != "done" || !nodesOf[j.Cluster][j.Node] || len(j.Runs) == 0 {
			t.Errorf("job %d: %s on %q/%q with %d attempts; want done on a cluster's node: %s", j.Index, j.State, j.Cluster, j.Node, len(j.Runs), line)
		}
		for _, r := range j.Runs {
			if nodesOf[r.Cluster] == nil || r.Head == "" || r.State == "ok" && !nodesOf[r.Cluster][r.Node] {
				t.Errorf("job %d attempt %d: %s on cluster %q node %q head %q", j.Index, r.Attempt, r.State, r.Cluster, r.Node, r.Head)
			}
		}
	}
	if count != n {
		t.Errorf("jobs --json: %d jobs, want %d", count, n)
	}
	hosts := map[string]int{}
	for _, l := range e2eJoblog(t, dir) {
		c, node, _ := strings.Cut(l.Host, "/")
		if nodesOf[c] == nil || l.Exit == 0 && !nodesOf[c][node] {
			t.Errorf("joblog: job %d (exit %d) on host %q, want CLUSTER/NODE", l.Seq, l.Exit, l.Host)
		}
		hosts[c]++
	}
	if hosts["east"] == 0 || hosts["west"] == 0 {
		t.Errorf("joblog: attempts by cluster %v, want both clusters", hosts)
	}
	_, atts := e2eLog(t, dir, 1)
	if c, node, _ := strings.Cut(atts[len(atts)-1].Node, "/"); !nodesOf[c][node] {
		t.Errorf("log 1: the last attempt on %q, want CLUSTER/NODE", atts[len(atts)-1].Node)
	}
}

// TestE2EStatusNoClusters: outside a grid, `status --json` has an empty
// clusters list, and `status` prints no clusters' table.
func TestE2EStatusNoClusters(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "p.pln"), fmtPlan)
	e2eMust(t, dir, "run", "p.pln")
	out := e2eMust(t, dir, "status", "--json")
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if cs, ok := st["clusters"].([]any); !ok || len(cs) != 0 || st["clusters_live"] != false || st["clusters_seen"] != nil {
		t.Errorf("status --json outside a grid: clusters %v, clusters_live %v, clusters_seen %v; want [], false, null",
			st["clusters"], st["clusters_live"], st["clusters_seen"])
	}
	if text := e2eMust(t, dir, "status"); strings.Contains(text, "CLUSTER") {
		t.Errorf("status outside a grid prints clusters:\n%s", text)
	}
	for _, l := range e2eJoblog(t, dir) {
		if strings.Contains(l.Host, "/") {
			t.Errorf("joblog outside a grid: host %q", l.Host)
		}
	}
}
