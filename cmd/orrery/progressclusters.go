package main

import (
	"fmt"
	"strings"

	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"orrery/dispatch"
)

// A grid's progress: one bar per cluster below the jobs' bar, and each
// cluster's counts in the periodic line.

// updateClusterBars moves each cluster's bar (made when the cluster
// first shows): its jobs ended out of those ended and held there.
func (pr *progress) updateClusterBars(cs []dispatch.ClusterProgress) {
	for _, c := range cs {
		b := pr.clusterBars[c.Name]
		if b == nil {
			if pr.clusterBars == nil {
				pr.clusterBars = map[string]*mpb.Bar{}
			}
			name := c.Name
			b = pr.p.AddBar(0,
				mpb.PrependDecorators(decor.Name(name, decor.WCSyncSpaceR), decor.CountersNoUnit("%d/%d", decor.WCSyncSpaceR)),
				mpb.AppendDecorators(decor.Any(func(decor.Statistics) string { return " " + pr.clusterStatus(name) })))
			pr.clusterBars[name] = b
		}
		ended := c.Done + c.Failed
		b.SetTotal(ended+int64(c.Held), false)
		b.SetCurrent(ended)
	}
}

// clusterStatus is the text beside a cluster's bar.
func (pr *progress) clusterStatus(name string) string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	for _, c := range pr.last.Clusters {
		if c.Name == name {
			return clusterWords(c)
		}
	}
	return ""
}

// clusterWords says a cluster's state: "connected, 2 nodes, 3 running,
// 1 queued, 0 failed, 52.1 jobs/min".
func clusterWords(c dispatch.ClusterProgress) string {
	return fmt.Sprintf("%s, %d nodes, %d running, %d queued, %d failed, %.1f jobs/min", c.Link, c.Nodes, c.Running, c.Queued, c.Failed, c.Rate)
}

// clustersLine is the periodic line's part for a grid's clusters:
// "; east: 12 done, connected, 2 nodes, …", nothing outside a grid.
func clustersLine(cs []dispatch.ClusterProgress) string {
	var b strings.Builder
	for _, c := range cs {
		fmt.Fprintf(&b, "; %s: %d done, %s", c.Name, c.Done, clusterWords(c))
	}
	return b.String()
}
