package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/vbauerster/mpb/v8"

	"orrery/dispatch"
)

// gridProgress is a grid's progress: two clusters, one of them cut.
func gridProgress() dispatch.Progress {
	return dispatch.Progress{Total: 40, Exact: true, Done: 15, Failed: 1, Running: 6, Nodes: 2, Started: time.Now().Add(-time.Minute),
		Clusters: []dispatch.ClusterProgress{
			{Name: "east", Link: dispatch.LinkConnected, Nodes: 2, CPUs: 3, Running: 3, Queued: 1, Held: 4, Done: 12, Failed: 1, Rate: 52.14},
			{Name: "west", Link: dispatch.LinkCut, Nodes: 1, CPUs: 1, Running: 1, Held: 2, Done: 3, Rate: 6},
		}}
}

// TestProgressLineNamesClusters: the periodic line (standard error not a
// terminal) names each cluster's counts, link and rate; outside a grid
// it names none.
func TestProgressLineNamesClusters(t *testing.T) {
	var stdout, stderr bytes.Buffer
	pr := newProgressBars(&env{stdout: &stdout, stderr: &stderr}, false)
	pr.lineAt = time.Time{}
	pr.update(gridProgress())
	line := stderr.String()
	for _, want := range []string{
		"orrery: 15/40 done, 6 running, 1 failed, 2 nodes,",
		"; east: 12 done, connected, 2 nodes, 3 running, 1 queued, 1 failed, 52.1 jobs/min",
		"; west: 3 done, cut, 1 nodes, 1 running, 0 queued, 0 failed, 6.0 jobs/min\n",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("progress line %q does not say %q", line, want)
		}
	}
	stderr.Reset()
	pr.lineAt = time.Time{}
	p := gridProgress()
	p.Clusters = nil
	pr.update(p)
	if line := stderr.String(); strings.Contains(line, ";") || !strings.HasPrefix(line, "orrery: 15/40 done") {
		t.Errorf("progress line outside a grid: %q", line)
	}
}

// TestProgressBarPerCluster: with bars, each cluster has its own below
// the jobs' bar: its jobs ended out of those ended and held there, its
// link and rate.
func TestProgressBarPerCluster(t *testing.T) {
	var stdout, stderr e2eBuffer
	// Rendered as on a terminal, into a buffer.
	pr := newProgressBars(&env{stdout: &stdout, stderr: &stderr}, true, mpb.WithAutoRefresh(), mpb.WithWidth(160))
	pr.update(gridProgress())
	ansi := regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")
	wants := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^jobs +16/40 `),
		regexp.MustCompile(`(?m)^east +13/17 .* connected, 2 nodes, 3 running, 1 queued, 1 failed, 52\.1 jobs/min$`),
		regexp.MustCompile(`(?m)^west +3/5 .* cut, 1 nodes, 1 running, 0 queued, 0 failed, 6\.0 jobs/min$`),
	}
	rendered := func() bool {
		out := ansi.ReplaceAllString(stdout.String(), "")
		for _, w := range wants {
			if !w.MatchString(out) {
				return false
			}
		}
		return true
	}
	ok := e2eWaitFor(10*time.Second, rendered)
	pr.finish(dispatch.Summary{})
	if !ok {
		t.Errorf("the bars do not show each cluster (want %v):\n%s", wants, ansi.ReplaceAllString(stdout.String(), ""))
	}
}
