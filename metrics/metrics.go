// Package metrics exposes an experiment's figures to Prometheus in its
// text exposition format.
//
// It knows nothing of the dispatcher or the store: its owner feeds it a
// Snapshot (Metrics.Update) whenever the figures change and the
// dispatcher's decision latencies (Metrics.ObserveDecision), and a
// scrape reads the latest snapshot. Exported, all prefixed orrery_ and
// in base units:
//
//	orrery_jobs{state}                              gauge: jobs by state
//	orrery_attempts_total{outcome}                  counter: attempts ended, by outcome
//	orrery_cluster_link_info{cluster,state}         gauge, always 1: a cluster's link state
//	orrery_cluster_rate_jobs_per_second{cluster}    gauge: a cluster's measured job rate
//	orrery_cluster_queued_jobs{cluster}             gauge: jobs queued at a cluster
//	orrery_cluster_running_attempts{cluster}        gauge: attempts running in a cluster
//	orrery_node_running_attempts{cluster,node}      gauge: attempts running on a node
//	orrery_staged_in_bytes_total                    counter: bytes staged to nodes
//	orrery_staged_out_bytes_total                   counter: bytes staged back from nodes
//	orrery_export_omitted_clusters                  gauge: clusters left out by the caps
//	orrery_export_omitted_nodes                     gauge: nodes left out by the caps
//	orrery_dispatch_decision_seconds                histogram: dispatcher decision latency
//
// Label values come from the caller's Snapshot strings, so this package
// bounds the series: at most MaxKeys job states and MaxKeys attempt
// outcomes, MaxClusters clusters and MaxNodes nodes are exported, each
// label value is cut to MaxLabelBytes bytes of valid UTF-8, and a
// repeated cluster or (cluster, node) pair is exported once.
//
// Nothing is served without a credential: Metrics.Handler serves only a
// request that carries the caller's bearer token (the token Prometheus
// is given in its scrape config's authorization setting); the caller
// chooses, stores and rotates that token. The registry is private (no
// global default registry) and holds no Go runtime or process
// collectors.
package metrics

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Bounds on the series one scrape exports. Entries beyond a bound are
// left out; orrery_export_omitted_clusters and
// orrery_export_omitted_nodes count the clusters and nodes left out.
const (
	// MaxNodes bounds the nodes exported: the first MaxNodes distinct
	// (cluster, node) pairs of Snapshot.Nodes, in slice order.
	MaxNodes = 10000
	// MaxClusters bounds the clusters exported: the first MaxClusters
	// distinct names of Snapshot.Clusters, in slice order.
	MaxClusters = 1000
	// MaxKeys bounds the job states and the attempt outcomes exported:
	// the first MaxKeys of each map's keys in sorted order.
	MaxKeys = 64
	// MaxLabelBytes bounds a label value's length; a longer value is cut
	// at a rune boundary.
	MaxLabelBytes = 128
)

// Request bounds of Handler.
const (
	// maxInFlight is how many scrapes are served at once; one beyond it
	// is answered 503.
	maxInFlight = 4
	// scrapeTimeout bounds gathering one scrape.
	scrapeTimeout = 10 * time.Second
)

// Snapshot is an experiment's figures at one moment. Counters
// (Attempts, StagedIn, StagedOut) are totals since the experiment
// began and never decrease.
type Snapshot struct {
	// Jobs counts jobs by state (pending, running, done, failed, ...).
	Jobs map[string]int
	// Attempts counts ended attempts by outcome (ok, failed, lost,
	// cancelled, ...).
	Attempts map[string]int64
	// Clusters lists the experiment's clusters.
	Clusters []Cluster
	// Nodes lists the experiment's nodes.
	Nodes []Node
	// StagedIn is the bytes copied from the root to nodes.
	StagedIn int64
	// StagedOut is the bytes copied from nodes back to the root.
	StagedOut int64
}

// Cluster is one cluster's figures.
type Cluster struct {
	// Name names the cluster.
	Name string
	// Link is the state of the cluster's link to the root; empty exports
	// no orrery_cluster_link_info series.
	Link string
	// Rate is the cluster's measured rate in jobs per minute (exported
	// in jobs per second).
	Rate float64
	// Queued is the jobs queued at the cluster.
	Queued int
	// Running is the attempts running in the cluster.
	Running int
}

// Node is one node's figures.
type Node struct {
	// Name names the node.
	Name string
	// Cluster names the node's cluster.
	Cluster string
	// Running is the attempts running on the node.
	Running int
}

// Metrics holds the latest snapshot and the decision-latency histogram
// and serves them to Prometheus. Make one with New; its methods are safe
// from any goroutine.
type Metrics struct {
	reg      *prometheus.Registry
	latest   atomic.Pointer[prepared]
	decision prometheus.Histogram
}

// New returns a Metrics with no snapshot yet: until the first Update,
// a scrape exports only the decision-latency histogram.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.decision = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "orrery_dispatch_decision_seconds",
		Help: "Time the dispatcher took to make one scheduling decision.",
		Buckets: []float64{
			10e-6, 25e-6, 50e-6,
			100e-6, 250e-6, 500e-6,
			1e-3, 2.5e-3, 5e-3,
			10e-3, 25e-3, 50e-3,
			100e-3, 250e-3, 500e-3,
			1,
		},
	})
	m.reg.MustRegister(m.decision, (*collector)(m))
	return m
}

// Update replaces the exported snapshot with s. It copies what it keeps,
// so the caller may change s's maps and slices afterwards.
func (m *Metrics) Update(s Snapshot) {
	m.latest.Store(prepare(s))
}

// ObserveDecision records one dispatcher decision that took d.
func (m *Metrics) ObserveDecision(d time.Duration) {
	m.decision.Observe(d.Seconds())
}

// Handler serves the metrics to a GET or HEAD request that carries the
// header "Authorization: Bearer T", where T equals token() (compared in
// constant time; token is called on every request, so the caller may
// rotate it). An empty token refuses every request. Any other request
// is answered 401 with a one-line body, or 405 when it is authenticated
// but neither GET nor HEAD. Responses are never cached.
func (m *Metrics) Handler(token func() string) http.Handler {
	serve := promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.HTTPErrorOnError,
		MaxRequestsInFlight: maxInFlight,
		Timeout:             scrapeTimeout,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if !authorized(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="orrery metrics"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		serve.ServeHTTP(w, r)
	})
}

// authorized reports whether r carries exactly one Authorization header
// holding a bearer credential equal to a non-empty token(). Both sides
// are hashed before the constant-time comparison, so neither the
// token's content nor its length shows in the timing.
func authorized(r *http.Request, token func() string) bool {
	if token == nil {
		return false
	}
	want := token()
	if want == "" {
		return false
	}
	vals := r.Header.Values("Authorization")
	if len(vals) != 1 {
		return false
	}
	scheme, got, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	got = strings.TrimLeft(got, " ")
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// prepared is a snapshot made ready to export: copied, with label values
// cleaned, duplicates dropped and the caps applied.
type prepared struct {
	jobs            []labelled
	attempts        []labelled
	clusters        []Cluster
	nodes           []Node
	omittedClusters int
	omittedNodes    int
	stagedIn        int64
	stagedOut       int64
}

// labelled is one label value and its sample.
type labelled struct {
	label string
	value float64
}

// prepare copies s into a prepared snapshot.
func prepare(s Snapshot) *prepared {
	p := &prepared{
		jobs:      keyed(s.Jobs),
		attempts:  keyed(s.Attempts),
		stagedIn:  s.StagedIn,
		stagedOut: s.StagedOut,
	}
	seenC := make(map[string]bool, min(len(s.Clusters), MaxClusters))
	for _, c := range s.Clusters {
		c.Name, c.Link = clean(c.Name), clean(c.Link)
		if seenC[c.Name] || len(p.clusters) == MaxClusters {
			p.omittedClusters++
			continue
		}
		seenC[c.Name] = true
		p.clusters = append(p.clusters, c)
	}
	type nodeKey struct{ cluster, name string }
	seenN := make(map[nodeKey]bool, min(len(s.Nodes), MaxNodes))
	for _, n := range s.Nodes {
		n.Name, n.Cluster = clean(n.Name), clean(n.Cluster)
		k := nodeKey{n.Cluster, n.Name}
		if seenN[k] || len(p.nodes) == MaxNodes {
			p.omittedNodes++
			continue
		}
		seenN[k] = true
		p.nodes = append(p.nodes, n)
	}
	return p
}

// keyed returns the first MaxKeys distinct cleaned keys of m in sorted
// order with their values; keys that clean to the same value are summed.
func keyed[V int | int64](m map[string]V) []labelled {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var out []labelled
	at := make(map[string]int, min(len(keys), MaxKeys))
	for _, k := range keys {
		c := clean(k)
		if i, ok := at[c]; ok {
			out[i].value += float64(m[k])
			continue
		}
		if len(out) == MaxKeys {
			continue
		}
		at[c] = len(out)
		out = append(out, labelled{c, float64(m[k])})
	}
	return out
}

// clean makes s a valid, bounded label value: invalid UTF-8 is replaced
// and the result cut to at most MaxLabelBytes bytes at a rune boundary.
func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= MaxLabelBytes {
		return s
	}
	cut := MaxLabelBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// Descriptions of the snapshot's series.
var (
	jobsDesc = prometheus.NewDesc("orrery_jobs",
		"Jobs of the experiment by state.", []string{"state"}, nil)
	attemptsDesc = prometheus.NewDesc("orrery_attempts_total",
		"Attempts ended since the experiment began, by outcome.", []string{"outcome"}, nil)
	linkDesc = prometheus.NewDesc("orrery_cluster_link_info",
		"State of a cluster's link to the root (always 1; the state is the label).", []string{"cluster", "state"}, nil)
	rateDesc = prometheus.NewDesc("orrery_cluster_rate_jobs_per_second",
		"Measured job rate of a cluster, in jobs per second.", []string{"cluster"}, nil)
	queuedDesc = prometheus.NewDesc("orrery_cluster_queued_jobs",
		"Jobs queued at a cluster.", []string{"cluster"}, nil)
	clusterRunningDesc = prometheus.NewDesc("orrery_cluster_running_attempts",
		"Attempts running in a cluster.", []string{"cluster"}, nil)
	nodeRunningDesc = prometheus.NewDesc("orrery_node_running_attempts",
		"Attempts running on a node.", []string{"cluster", "node"}, nil)
	stagedInDesc = prometheus.NewDesc("orrery_staged_in_bytes_total",
		"Bytes staged from the root to nodes since the experiment began.", nil, nil)
	stagedOutDesc = prometheus.NewDesc("orrery_staged_out_bytes_total",
		"Bytes staged from nodes back to the root since the experiment began.", nil, nil)
	omittedClustersDesc = prometheus.NewDesc("orrery_export_omitted_clusters",
		"Clusters of the latest snapshot left out of these metrics, beyond the export cap or repeated.", nil, nil)
	omittedNodesDesc = prometheus.NewDesc("orrery_export_omitted_nodes",
		"Nodes of the latest snapshot left out of these metrics, beyond the export cap or repeated.", nil, nil)
)

// collector exports the latest snapshot as constant metrics at scrape
// time.
type collector Metrics

// Describe sends the descriptions of every snapshot series.
func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{jobsDesc, attemptsDesc, linkDesc, rateDesc,
		queuedDesc, clusterRunningDesc, nodeRunningDesc, stagedInDesc, stagedOutDesc, omittedClustersDesc, omittedNodesDesc} {
		ch <- d
	}
}

// Collect sends the latest snapshot's series; none before the first
// Update.
func (c *collector) Collect(ch chan<- prometheus.Metric) {
	p := c.latest.Load()
	if p == nil {
		return
	}
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	for _, j := range p.jobs {
		ch <- prometheus.MustNewConstMetric(jobsDesc, gauge, j.value, j.label)
	}
	for _, a := range p.attempts {
		ch <- prometheus.MustNewConstMetric(attemptsDesc, counter, a.value, a.label)
	}
	for _, cl := range p.clusters {
		if cl.Link != "" {
			ch <- prometheus.MustNewConstMetric(linkDesc, gauge, 1, cl.Name, cl.Link)
		}
		ch <- prometheus.MustNewConstMetric(rateDesc, gauge, cl.Rate/60, cl.Name)
		ch <- prometheus.MustNewConstMetric(queuedDesc, gauge, float64(cl.Queued), cl.Name)
		ch <- prometheus.MustNewConstMetric(clusterRunningDesc, gauge, float64(cl.Running), cl.Name)
	}
	for _, n := range p.nodes {
		ch <- prometheus.MustNewConstMetric(nodeRunningDesc, gauge, float64(n.Running), n.Cluster, n.Name)
	}
	ch <- prometheus.MustNewConstMetric(stagedInDesc, counter, float64(p.stagedIn))
	ch <- prometheus.MustNewConstMetric(stagedOutDesc, counter, float64(p.stagedOut))
	ch <- prometheus.MustNewConstMetric(omittedClustersDesc, gauge, float64(p.omittedClusters))
	ch <- prometheus.MustNewConstMetric(omittedNodesDesc, gauge, float64(p.omittedNodes))
}
