package main

import (
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"

	"orrery/dispatch"
)

// progress shows a run's progress: live bars when standard output is a
// terminal, and a line every few seconds on standard error whenever that
// is not a terminal (a log file keeps the progress) or there are no bars.
type progress struct {
	e      *env
	mu     sync.Mutex
	last   dispatch.Progress
	lines  bool // print the periodic line
	lineAt time.Time

	p      *mpb.Progress
	bar    *mpb.Bar
	tickAt time.Time // when the bar last moved
	// clusterBars are a grid's bars, one per cluster, below the jobs'
	// (progressclusters.go).
	clusterBars map[string]*mpb.Bar
}

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	return isatty.IsTerminal(f.Fd())
}

func newProgress(e *env) *progress {
	return newProgressBars(e, isTerminal(e.stdout))
}

// newProgressBars is newProgress, with bars on standard output or not
// (opts are more of the bars' options).
func newProgressBars(e *env, bars bool, opts ...mpb.ContainerOption) *progress {
	pr := &progress{e: e, lineAt: time.Now()}
	if bars {
		pr.p = mpb.New(append([]mpb.ContainerOption{mpb.WithOutput(e.stdout), mpb.WithRefreshRate(200 * time.Millisecond)}, opts...)...)
		pr.bar = pr.p.AddBar(0,
			mpb.PrependDecorators(decor.Name("jobs", decor.WCSyncSpaceR), decor.CountersNoUnit("%d/%d", decor.WCSyncSpaceR)),
			mpb.AppendDecorators(
				decor.Any(func(decor.Statistics) string { return pr.status() }),
				decor.Name(" ETA "), decor.EwmaETA(decor.ET_STYLE_GO, 30)))
	}
	pr.lines = pr.bar == nil || !isTerminal(e.stderr)
	return pr
}

// status is the text beside the bar: running, failed, rate.
func (pr *progress) status() string {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	s := pr.last
	rate := float64(s.Done+s.Failed) / max(time.Since(s.Started).Seconds(), 1e-3)
	out := ""
	if s.OutOfService > 0 {
		out = fmt.Sprintf(", %d out of service", s.OutOfService)
	}
	return fmt.Sprintf(" %d running, %d failed, %d nodes%s, %.1f jobs/s", s.Running, s.Failed, s.Nodes, out, rate)
}

// update takes a new snapshot (called from the dispatcher's goroutine).
func (pr *progress) update(s dispatch.Progress) {
	pr.mu.Lock()
	prev := pr.last
	pr.last = s
	pr.mu.Unlock()
	if pr.bar != nil {
		pr.bar.SetTotal(s.Total, false)
		ended, before := s.Done+s.Failed, prev.Done+prev.Failed
		if ended > before && !pr.tickAt.IsZero() {
			pr.bar.EwmaSetCurrent(ended, time.Since(pr.tickAt)/time.Duration(ended-before))
		} else {
			pr.bar.SetCurrent(ended)
		}
		pr.tickAt = time.Now()
		pr.updateClusterBars(s.Clusters)
	}
	if pr.lines && time.Since(pr.lineAt) >= lineEvery {
		pr.lineAt = time.Now()
		fmt.Fprintf(pr.e.stderr, "orrery: %d/%d done,%s%s\n", s.Done, s.Total, pr.status(), clustersLine(s.Clusters))
	}
}

// lineEvery is how often the periodic progress line is printed.
const lineEvery = 5 * time.Second

// finish ends the bars before the summary is printed.
func (pr *progress) finish(sum dispatch.Summary) {
	if pr.bar != nil {
		pr.bar.SetTotal(-1, true)
		for _, b := range pr.clusterBars {
			b.SetTotal(-1, true)
		}
		pr.p.Wait()
	}
}
