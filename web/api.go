package web

import (
	"context"
	"errors"
)

// Source answers a viewer's questions about one experiment, from its
// store (and, in a running root, from what the dispatcher last said).
// Its methods are called from many requests at once. Every answer is
// bounded: a page of jobs, a window of attempts, a grid of cells; the
// browser never receives the whole job list.
type Source interface {
	// Info is what does not change while the experiment runs.
	Info(ctx context.Context) (Info, error)
	// Jobs is one page of the jobs table.
	Jobs(ctx context.Context, q JobQuery) (JobPage, error)
	// Job is one job with its attempts (their output left out);
	// ErrNotFound when the experiment has no such job (yet).
	Job(ctx context.Context, index int64) (JobDetail, error)
	// Log is the output of attempt n of a job, each stream cut to its
	// last MaxLogBytes; ErrNotFound when there is no such attempt.
	Log(ctx context.Context, index int64, n int) (Log, error)
	// Timeline is the attempts in a window of time.
	Timeline(ctx context.Context, q TimelineQuery) (Timeline, error)
	// Space is the jobs aggregated on a grid of two parameters.
	Space(ctx context.Context, q SpaceQuery) (Space, error)
}

// ErrNotFound is a Source's answer for a job or attempt that does not
// exist: the viewer gets 404.
var ErrNotFound = errors.New("not found")

// BadQuery is a Source's answer to a query it cannot answer as asked (a
// parameter the plan does not have): the viewer gets 400 and its text.
type BadQuery struct{ Why string }

func (e *BadQuery) Error() string { return e.Why }

// Bounds of what one answer holds.
const (
	// MaxPage is the most jobs one page of the table holds (a larger
	// limit is cut to it); DefaultPage is a page's size when none is
	// asked for.
	MaxPage     = 500
	DefaultPage = 100
	// MaxCount is how far the table counts the jobs that match its
	// filters: beyond it, JobPage.Total is MaxCount and TotalCapped set.
	MaxCount = 100_000
	// MaxFilters bounds the parameter filters of one query, and
	// MaxFilterLen the bytes of one filter's value.
	MaxFilters   = 8
	MaxFilterLen = 256
	// MaxTimeline is the most attempts one timeline answer holds, and
	// DefaultTimeline how many when none is asked for.
	MaxTimeline     = 5000
	DefaultTimeline = 2000
	// MaxAxis is the most values one axis of the parameter space
	// shows: more distinct values are binned (numbers into ranges of
	// equal width, others by their sorted order).
	MaxAxis = 60
	// MaxLogBytes is how much of each stream of an attempt's output
	// one answer holds: its last MaxLogBytes.
	MaxLogBytes = 64 << 10
)

// Info is an experiment's description: /api/info.
type Info struct {
	Experiment int64    `json:"experiment"`
	Plan       string   `json:"plan"`      // the plan file's path
	PlanText   string   `json:"plan_text"` // the plan as it was run
	Dialect    string   `json:"dialect"`
	Seed       uint64   `json:"seed"`
	Created    string   `json:"created"` // RFC 3339
	Names      []string `json:"names"`   // the parameters, in the plan's order
	Policy     string   `json:"policy"`  // the dispatch policy, "" when not known
	// Live is set when a running root serves the page (its news comes
	// from the dispatcher); unset for `orrery web`, which reads the
	// store alone.
	Live bool `json:"live"`
}

// Overview is a viewer's news (/api/overview, and each event of
// /api/events): the counts now, and what the page's views show live.
type Overview struct {
	Total        int64   `json:"total"` // -1 when not known
	Exact        bool    `json:"exact"` // Total is exact, not an upper bound
	Done         int64   `json:"done"`
	Failed       int64   `json:"failed"`
	Running      int     `json:"running"`
	Pending      int64   `json:"pending"`
	Nodes        int     `json:"nodes"`
	OutOfService int     `json:"out_of_service"`
	Elapsed      float64 `json:"elapsed_s"`
	Finished     bool    `json:"finished"`
	// Rate is jobs ended per minute over the last minute; ETA the
	// seconds left at that rate (nil when it cannot be said).
	Rate float64  `json:"rate_per_min"`
	ETA  *float64 `json:"eta_s"`
	// Work is the CPU-seconds (on a CPU of speed 1) the done jobs' last
	// attempts took, Capacity the CPUs (times their speed) in service,
	// a node's job limit counting instead of its CPUs when larger.
	// BoundSoFar is Work ÷ Capacity, the least time the work done so
	// far needed on these nodes, and Efficiency BoundSoFar ÷ Elapsed;
	// Bound is the least time the whole sweep needs at the done jobs'
	// mean work (the larger of all work ÷ Capacity and the longest job
	// on the fastest CPU). Each is nil when it cannot be said.
	Work       float64  `json:"work_s"`
	Capacity   float64  `json:"capacity"`
	BoundSoFar *float64 `json:"bound_so_far_s"`
	Efficiency *float64 `json:"efficiency"`
	Bound      *float64 `json:"bound_s"`
	// Changed grows whenever a job or attempt changes state: the page
	// reloads its table and timeline when it does.
	Changed int64 `json:"changed"`
	// Clusters are a grid's clusters (none outside a grid); PerNode the
	// nodes connected now (none for `orrery web`: no run is connected).
	Clusters []ClusterView `json:"clusters,omitempty"`
	PerNode  []NodeView    `json:"per_node,omitempty"`
	// Out are the nodes out of service, and why.
	Out []NodeOut `json:"out,omitempty"`
}

// ClusterView is one cluster of a grid, as the root sees it.
type ClusterView struct {
	Name    string  `json:"name"`
	Head    string  `json:"head"`
	Link    string  `json:"link"`       // connected, cut or lost
	Since   string  `json:"link_since"` // RFC 3339, "" when not known
	Nodes   int     `json:"nodes"`
	CPUs    int     `json:"cpus"`
	Running int     `json:"running"`
	Queued  int     `json:"queued"`
	Held    int     `json:"held"`
	Done    int64   `json:"done"`
	Failed  int64   `json:"failed"`
	Rate    float64 `json:"rate_per_min"`
}

// NodeView is one node connected to the run.
type NodeView struct {
	Name    string  `json:"name"`
	Cluster string  `json:"cluster,omitempty"`
	CPUs    int     `json:"cpus"`
	Speed   float64 `json:"speed"`
	Limit   int     `json:"limit"` // its job limit now
	Running int     `json:"running"`
	Load    float64 `json:"load"`     // 1-minute load average, as it last said
	Memory  int64   `json:"memory"`   // bytes of RAM
	Used    int64   `json:"resident"` // bytes its running attempts hold
	Out     bool    `json:"out"`      // taken out of service
	Reason  string  `json:"reason,omitempty"`
}

// NodeOut is a node out of service.
type NodeOut struct {
	Node   string `json:"node"`
	Since  string `json:"since"` // RFC 3339
	Reason string `json:"reason"`
}

// JobQuery asks for one page of the jobs table (/api/jobs).
type JobQuery struct {
	State  string            // pending, running, done, failed; "" for all
	Node   string            // jobs with an attempt on this node; "" for all
	Params map[string]string // parameter name → value, all to match
	Sort   string            // "index" (default) or "wall"
	Desc   bool
	Offset int
	Limit  int // at most MaxPage
}

// JobPage is one page of the jobs table.
type JobPage struct {
	Jobs []JobRow `json:"jobs"`
	// Total is how many jobs match, counted up to MaxCount (TotalCapped
	// set when there are more).
	Total       int64 `json:"total"`
	TotalCapped bool  `json:"total_capped"`
	Offset      int   `json:"offset"`
	Limit       int   `json:"limit"`
}

// JobRow is one job in the table: its last attempt's node and wall time.
type JobRow struct {
	Index    int64             `json:"index"`
	State    string            `json:"state"`
	Values   map[string]string `json:"values"`
	Attempts int               `json:"attempts"`
	Exit     *int              `json:"exit"`
	Node     string            `json:"node,omitempty"`
	Wall     *float64          `json:"wall_s"` // nil while it runs or before it ran
}

// JobDetail is one job and its attempts (/api/jobs/INDEX).
type JobDetail struct {
	Index    int64             `json:"index"`
	State    string            `json:"state"`
	Values   map[string]string `json:"values"`
	Exit     *int              `json:"exit"`
	Attempts []AttemptView     `json:"attempts"`
}

// AttemptView is one attempt of a job, without its output.
type AttemptView struct {
	N           int      `json:"n"`
	Node        string   `json:"node"`
	Cluster     string   `json:"cluster,omitempty"`
	ClusterNode string   `json:"cluster_node,omitempty"`
	State       string   `json:"state"` // running, ok, failed, lost, interrupted, cancelled
	Started     string   `json:"started"`
	Ended       string   `json:"ended,omitempty"`
	Wall        *float64 `json:"wall_s"`
	CPU         *float64 `json:"cpu_s"`
	MaxRSS      int64    `json:"max_rss"`
	Exit        *int     `json:"exit"`
	Signal      string   `json:"signal,omitempty"`
	Error       string   `json:"error,omitempty"`
	StagingIn   float64  `json:"staging_in_s"`
	StagingOut  float64  `json:"staging_out_s"`
	StagedIn    int64    `json:"staged_in"`
	StagedOut   int64    `json:"staged_out"`
	OutBytes    int64    `json:"stdout_bytes"`
	ErrBytes    int64    `json:"stderr_bytes"`
}

// Log is an attempt's output (/api/jobs/INDEX/attempts/N/log): the last
// MaxLogBytes of each stream, as text (invalid UTF-8 replaced).
type Log struct {
	Job       int64  `json:"job"`
	N         int    `json:"n"`
	Stdout    string `json:"stdout"`
	Stderr    string `json:"stderr"`
	StdoutCut bool   `json:"stdout_cut"` // only its end is here
	StderrCut bool   `json:"stderr_cut"`
}

// TimelineQuery asks for the attempts that overlap a window of time
// (/api/timeline?from=MS&to=MS&limit=N): times in Unix milliseconds, the
// whole experiment when zero.
type TimelineQuery struct {
	From, To int64
	Limit    int // at most MaxTimeline
}

// Timeline is the attempts in a window, the latest first when there
// are more than its limit.
type Timeline struct {
	From      int64      `json:"from"` // Unix ms
	To        int64      `json:"to"`
	Now       int64      `json:"now"`
	Attempts  []Interval `json:"attempts"`
	Total     int64      `json:"total"` // in the window, counted up to MaxCount
	Truncated bool       `json:"truncated"`
	Nodes     []string   `json:"nodes"` // every node with an attempt in the window, sorted
}

// Interval is one attempt on the timeline.
type Interval struct {
	Job int64 `json:"job"`
	N   int   `json:"n"`
	// Node is the node that ran it; in a grid, CLUSTER/NODE once the
	// cluster's head said which of its nodes did, the head (the
	// cluster's name) while it waits or runs there.
	Node  string `json:"node"`
	State string `json:"state"` // as AttemptView's
	// Kind tells cancelled attempts apart: "moved" (stopped to run
	// elsewhere), "lost-race" (a duplicate ended first); "" otherwise.
	Kind string `json:"kind,omitempty"`
	// Duplicate is set when another attempt of the same job ran at the
	// same time.
	Duplicate  bool  `json:"duplicate,omitempty"`
	Start      int64 `json:"start"`         // Unix ms
	End        int64 `json:"end"`           // Unix ms; 0 while it runs
	StagingIn  int64 `json:"staging_in_ms"` // the first part of the bar
	StagingOut int64 `json:"staging_out_ms"`
}

// SpaceQuery asks for the parameter space on two parameters
// (/api/space?x=NAME&y=NAME).
type SpaceQuery struct{ X, Y string }

// Space is the generated jobs aggregated on a grid of two parameters.
type Space struct {
	// XName and YName are the parameters; XS and YS the labels of their
	// axes (values, or ranges "lo–hi" when Binned).
	XName   string   `json:"x"`
	YName   string   `json:"y"`
	XS      []string `json:"xs"`
	YS      []string `json:"ys"`
	XBinned bool     `json:"x_binned"`
	YBinned bool     `json:"y_binned"`
	Cells   []Cell   `json:"cells"`
	Jobs    int64    `json:"jobs"` // the jobs aggregated (those generated so far)
}

// Cell is the jobs at one point (or range) of the parameter space.
type Cell struct {
	I        int     `json:"i"` // index into XS
	J        int     `json:"j"` // index into YS
	N        int64   `json:"n"`
	Pending  int64   `json:"pending"`
	Running  int64   `json:"running"`
	Done     int64   `json:"done"`
	Failed   int64   `json:"failed"`
	WallMean float64 `json:"wall_mean_s"` // of those with a wall time
	WallMax  float64 `json:"wall_max_s"`
	NonZero  int64   `json:"exit_nonzero"` // with a non-zero exit status
	TopExit  *int    `json:"top_exit"`     // the most common non-zero exit status
}
