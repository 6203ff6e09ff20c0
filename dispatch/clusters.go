package dispatch

// The grid as the root sees it: one ClusterProgress per cluster whose
// head joined, in Progress.Clusters and, for `orrery status` (another
// process), in the state directory's clusters.json.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"orrery/protocol"
	"orrery/store"
)

// The link of a cluster's head, as the root sees it.
const (
	// LinkConnected: the head is connected.
	LinkConnected = "connected"
	// LinkCut: the head's connection dropped; the root keeps its
	// attempts for the heartbeat timeout, waiting for it to come back.
	LinkCut = "cut"
	// LinkLost: the root gave the head up (its attempts run again
	// elsewhere), until it joins again.
	LinkLost = "lost"
)

// ClusterProgress is one cluster of a grid as the root sees it.
type ClusterProgress struct {
	Name string `json:"name"`
	// Head is the node ID the cluster's head has at the root.
	Head string `json:"head"`
	Link string `json:"link"` // LinkConnected, LinkCut or LinkLost
	// LinkSince is when the link became what it is (in this run).
	LinkSince time.Time `json:"link_since"`
	// Nodes, CPUs, Running, Queued and Depth are the head's last word on
	// its cluster (its heartbeat): its nodes connected and in service,
	// their CPUs, the root's attempts running on them and waiting in its
	// queue (together at most Held), and how many it asks to hold. Zero
	// once the head is lost.
	Nodes   int `json:"nodes"`
	CPUs    int `json:"cpus"`
	Running int `json:"running"`
	Queued  int `json:"queued"`
	Depth   int `json:"depth"`
	// Held is how many attempts the root has handed the head and not had
	// back: what it counts on the cluster.
	Held int `json:"held"`
	// Done and Failed are the jobs that ended there, earlier runs of the
	// experiment included.
	Done   int64 `json:"done"`
	Failed int64 `json:"failed"`
	// Rate is how many jobs ended there per minute, measured at the
	// root over the last minute (or since the cluster joined this run).
	Rate float64 `json:"rate"`
	// Pilots are a batch cluster's pilots as its head last said (Slurm's
	// job ID, pending, running, draining or ended, and Slurm's reason
	// for a pending one); Batch why it submits no more, "" while it
	// does.
	Pilots []protocol.Pilot `json:"pilots,omitempty"`
	Batch  string           `json:"batch,omitempty"`
}

// gridView is the clusters Run has seen, by name. It is Run's.
type gridView struct {
	clusters map[string]*clusterTrack
	base     map[string]store.ClusterCount // the store's counts when the first head joined
	cleared  bool                          // an earlier run's clusters.json is gone
	savedAt  time.Time
	saveErr  bool // said that clusters.json cannot be written
}

// clusterTrack is one cluster as Run follows it.
type clusterTrack struct {
	nc           *nodeConn // its head: the last to join for it
	joined       time.Time // first joined in this run
	link         string
	since        time.Time
	done, failed int64
	ends         []time.Time // of jobs ended there, within rateWindow, oldest first
	dropped      time.Time   // the newest end dropped for room (not counted)
}

const (
	// rateWindow is how far back a cluster's rate looks.
	rateWindow = time.Minute
	// maxRateEnds bounds the ends kept per cluster for its rate.
	maxRateEnds = 1024
	// maxClusterNode bounds the node name a head reports for an attempt.
	maxClusterNode = 256
)

// headJoined starts following the cluster of a head that joined.
func (r *runState) headJoined(nc *nodeConn) {
	if !nc.head {
		return
	}
	g := &r.grid
	if g.clusters == nil {
		g.clusters = map[string]*clusterTrack{}
		g.base = map[string]store.ClusterCount{}
		// The jobs earlier runs ended on each cluster: nothing of this
		// run has ended on a head yet.
		counts, err := r.d.cfg.Store.ClusterCounts(context.WithoutCancel(r.ctx), r.exp.ID)
		if err != nil {
			r.d.log.Warn("cannot read the clusters' counts", "err", err)
		}
		for _, c := range counts {
			g.base[c.Cluster] = c
		}
	}
	now := r.now()
	c := g.clusters[nc.cluster]
	if c == nil {
		b := g.base[nc.cluster]
		c = &clusterTrack{joined: now, done: b.Done, failed: b.Failed}
		g.clusters[nc.cluster] = c
	}
	c.nc = nc
	c.refresh(r, now)
}

// startedIn records, with a start just decided, the cluster whose head
// runs it.
func (r *runState) startedIn(node string, job int64, attempt int) {
	if nc := r.nodes[node]; nc != nil && nc.head {
		r.batch.InCluster(r.exp.ID, job, attempt, nc.cluster)
	}
}

// placed names, in an attempt's end reported by a head, its cluster and
// the node of that cluster that ran it.
func (r *runState) placed(nc *nodeConn, a *store.Attempt, node string) {
	if !nc.head {
		return
	}
	a.Cluster = nc.cluster
	if len(node) > maxClusterNode {
		node = node[:maxClusterNode]
	}
	a.ClusterNode = strings.ToValidUTF8(node, "?")
}

// clusterEnded counts a job that ended (ok: done, else failed) on a
// head's cluster.
func (r *runState) clusterEnded(nc *nodeConn, ok bool) {
	c := r.grid.clusters[nc.cluster]
	if !nc.head || c == nil {
		return
	}
	if ok {
		c.done++
	} else {
		c.failed++
	}
	c.ended(r.now())
}

// ended counts an end at now for the rate.
func (c *clusterTrack) ended(now time.Time) {
	c.prune(now)
	if len(c.ends) >= maxRateEnds {
		c.dropped = c.ends[0]
		c.ends = c.ends[1:]
	}
	c.ends = append(c.ends, now)
}

// prune forgets the ends older than the rate's window.
func (c *clusterTrack) prune(now time.Time) {
	i := 0
	for i < len(c.ends) && now.Sub(c.ends[i]) > rateWindow {
		i++
	}
	if i > 0 {
		c.ends = slices.Delete(c.ends, 0, i)
	}
}

// rate is the jobs per minute that ended there over the window.
func (c *clusterTrack) rate(now time.Time) float64 {
	c.prune(now)
	from := now.Add(-rateWindow)
	if c.joined.After(from) {
		from = c.joined
	}
	if c.dropped.After(from) {
		from = c.dropped
	}
	span := max(now.Sub(from), time.Second)
	return float64(len(c.ends)) / span.Minutes()
}

// refresh updates the link as the root sees it now.
func (c *clusterTrack) refresh(r *runState, now time.Time) {
	link := LinkLost
	if r.nodes[c.nc.id] == c.nc {
		link = LinkConnected
		if c.nc.link == nil {
			link = LinkCut
		}
	}
	if link != c.link {
		c.link, c.since = link, now
	}
}

// clusterProgress is every cluster's view now, by name; nil outside a
// grid.
func (r *runState) clusterProgress(now time.Time) []ClusterProgress {
	g := &r.grid
	if len(g.clusters) == 0 {
		return nil
	}
	held := map[string]int{}
	for _, j := range r.jobs {
		for _, node := range j.runs {
			held[node]++
		}
	}
	out := make([]ClusterProgress, 0, len(g.clusters))
	for _, name := range slices.Sorted(maps.Keys(g.clusters)) {
		c := g.clusters[name]
		c.refresh(r, now)
		p := ClusterProgress{Name: name, Head: c.nc.id, Link: c.link, LinkSince: c.since,
			Done: c.done, Failed: c.failed, Rate: c.rate(now)}
		if c.link != LinkLost {
			// The head's last heartbeat, within what the root still
			// counts on it (the heartbeat may predate ends since).
			s := c.nc.status
			p.Held = held[c.nc.id]
			p.Running = min(max(s.Running, 0), p.Held)
			p.Queued = min(max(s.Queued, 0), p.Held-p.Running)
			p.Nodes, p.CPUs, p.Depth = s.Nodes, s.CPUs, s.Depth
			p.Pilots, p.Batch = s.Pilots, s.Batch
		}
		out = append(out, p)
	}
	return out
}

// ClustersFile is the file in the state directory where a grid's root
// keeps its view of the clusters for `orrery status`, rewritten (to a
// temporary name, then renamed) at most every second while it runs.
const ClustersFile = "clusters.json"

// ClustersFormat is the version of ClustersFile's format.
const ClustersFormat = 1

// ClustersView is the content of ClustersFile.
type ClustersView struct {
	Format     int       `json:"format"`
	Experiment int64     `json:"experiment"`
	Written    time.Time `json:"written"`
	// EveryMS is how often, in milliseconds, the root rewrites the
	// file while it runs.
	EveryMS  int64             `json:"every_ms"`
	PID      int               `json:"pid"`  // the root's process
	Host     string            `json:"host"` // its machine
	Finished bool              `json:"finished"`
	Clusters []ClusterProgress `json:"clusters"`
}

// clustersEvery is how often Run rewrites ClustersFile at most.
const clustersEvery = time.Second

// saveClusters writes the clusters' view for `orrery status`: at most
// every clustersEvery, and at the end. A run that has seen no head yet
// removes an earlier run's file instead.
func (r *runState) saveClusters(now time.Time, final bool) {
	g := &r.grid
	if r.stateErr != nil {
		return
	}
	path := filepath.Join(r.d.cfg.Store.Dir(), ClustersFile)
	if len(g.clusters) == 0 {
		if !g.cleared {
			g.cleared = true
			os.Remove(path)
		}
		return
	}
	for _, c := range g.clusters {
		c.refresh(r, now) // so a link's change is dated when the loop saw it
	}
	if !final && !g.savedAt.IsZero() && now.Sub(g.savedAt) < clustersEvery {
		return
	}
	g.savedAt = now
	host, _ := os.Hostname()
	v := ClustersView{Format: ClustersFormat, Experiment: r.exp.ID, Written: now,
		EveryMS: max(clustersEvery, r.d.cfg.Heartbeat).Milliseconds(), PID: os.Getpid(), Host: host,
		Finished: r.prog.Finished, Clusters: r.clusterProgress(now)}
	if err := writeAtomic(path, v); err != nil && !g.saveErr {
		g.saveErr = true
		r.d.log.Warn("cannot write the clusters' view for orrery status", "err", err)
	}
}

// writeAtomic writes v as JSON to path through a temporary file, so a
// reader sees the old file or the new one, never part of one.
func writeAtomic(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// ErrNoClustersView is returned by ReadClustersView when the state
// directory has no clusters' view: no grid ran there (or none has
// joined yet).
var ErrNoClustersView = errors.New("no clusters' view")

// ReadClustersView reads the clusters' view a grid's root keeps in the
// state directory dir. A view of a newer format is refused.
func ReadClustersView(dir string) (*ClustersView, error) {
	b, err := os.ReadFile(filepath.Join(dir, ClustersFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoClustersView
	}
	if err != nil {
		return nil, fmt.Errorf("read the clusters' view: %w", err)
	}
	var v ClustersView
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("read the clusters' view %s: %w", filepath.Join(dir, ClustersFile), err)
	}
	if v.Format != ClustersFormat {
		return nil, fmt.Errorf("the clusters' view %s has format %d; this build reads %d", filepath.Join(dir, ClustersFile), v.Format, ClustersFormat)
	}
	return &v, nil
}

// Live reports whether the view is the running root's, at time now: the
// run has not finished, the file was rewritten within five of its
// periods (at least 5 s), and its process is alive when it ran on this
// machine.
func (v *ClustersView) Live(now time.Time) bool {
	if v.Finished || now.Sub(v.Written) > max(5*time.Duration(v.EveryMS)*time.Millisecond, 5*time.Second) {
		return false
	}
	if host, err := os.Hostname(); err == nil && host == v.Host && v.PID > 0 {
		if err := syscall.Kill(v.PID, 0); errors.Is(err, syscall.ESRCH) {
			return false
		}
	}
	return true
}
