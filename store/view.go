package store

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// This file is the store's side of a viewer's page: bounded queries
// (a page of jobs, a window of attempts, a grid of cells, the tail of
// one output) that read no attempt's output but the one asked for.

// ErrNotFound is the answer of Job, JobAttempts and Log for a job or
// attempt the store does not have.
var ErrNotFound = errors.New("not found")

// ViewJobQuery asks for one page of an experiment's jobs.
type ViewJobQuery struct {
	State JobState // "" for every state
	// Node keeps the jobs with an attempt (any, not only the last) on
	// that node; "" for all.
	Node string
	// Params keeps the jobs whose value at a position (in the order of
	// Experiment.Names) is the one given; all must match.
	Params []ViewParam
	// ByWall sorts by the wall time of each job's last attempt (the jobs
	// whose last attempt has none, running or never run, come after the
	// others, by index); otherwise by index.
	ByWall bool
	Desc   bool
	Offset int
	Limit  int
	// CountCap bounds the count of matching jobs (JobsPage's total).
	CountCap int
}

// ViewParam is a filter on one parameter: its position and value.
type ViewParam struct {
	Pos   int
	Value string
}

// ViewJob is one row of the jobs table: a job and its last attempt's
// node and wall time.
type ViewJob struct {
	Index    int64
	State    JobState
	Values   []string
	Attempts int
	Exit     *int
	Node     string         // the last attempt's, "" before the first
	Wall     *time.Duration // the last attempt's, nil while it runs or before it ran
}

// jobFilter is the WHERE of a jobs query over job j, and its arguments.
func jobFilter(exp int64, q ViewJobQuery) (string, []any) {
	w := []string{"j.experiment=?"}
	args := []any{exp}
	if q.State != "" {
		w = append(w, "j.state=?")
		args = append(args, string(q.State))
	}
	for _, p := range q.Params {
		w = append(w, fmt.Sprintf("json_extract(j.vals, '$[%d]')=?", p.Pos))
		args = append(args, p.Value)
	}
	if q.Node != "" {
		w = append(w, "j.idx IN (SELECT b.job FROM attempt b WHERE b.experiment=? AND b.node=?)")
		args = append(args, exp, q.Node)
	}
	return strings.Join(w, " AND "), args
}

// jobCols are a jobs query's columns, over job j and its last attempt a.
const jobCols = `j.idx, j.state, j.vals, j.attempts, j.exit_code, a.node, a.wall_ns`

// lastAttempt joins a job j to its last attempt a.
const lastAttempt = `a.experiment=j.experiment AND a.job=j.idx AND a.n=j.attempts`

// JobsPage returns one page of an experiment's jobs that match q, and
// how many match, counted up to q.CountCap (capped set when there are
// more). Sorted by wall time, it reads the attempts by the attempt_wall
// index, so the longest (or shortest) jobs come without sorting them all.
func (s *Store) JobsPage(ctx context.Context, exp int64, q ViewJobQuery) (jobs []ViewJob, total int64, capped bool, err error) {
	where, args := jobFilter(exp, q)
	limit, offset := max(q.Limit, 0), max(q.Offset, 0)
	order := ""
	if q.Desc {
		order = " DESC"
	}
	if !q.ByWall {
		jobs, err = s.viewJobs(ctx, `SELECT `+jobCols+` FROM job j LEFT JOIN attempt a ON `+lastAttempt+
			` WHERE `+where+` ORDER BY j.idx`+order+` LIMIT ? OFFSET ?`, append(args, limit, offset)...)
	} else {
		jobs, err = s.jobsByWall(ctx, exp, where, args, order, limit, offset)
	}
	if err != nil {
		return nil, 0, false, err
	}
	capN := max(q.CountCap, 0)
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 FROM job j WHERE `+where+` LIMIT ?)`,
		append(args, capN+1)...).Scan(&total); err != nil {
		return nil, 0, false, fmt.Errorf("count jobs: %w", err)
	}
	if total > int64(capN) {
		total, capped = int64(capN), true
	}
	return jobs, total, capped, nil
}

// jobsByWall is a page of jobs sorted by their last attempt's wall time:
// first those with one (from the attempt_wall index), then the others
// by index.
func (s *Store) jobsByWall(ctx context.Context, exp int64, where string, args []any, order string, limit, offset int) ([]ViewJob, error) {
	timed := `FROM attempt a JOIN job j ON j.experiment=a.experiment AND j.idx=a.job AND j.attempts=a.n
		WHERE a.experiment=? AND a.wall_ns IS NOT NULL AND ` + where
	targs := append([]any{exp}, args...)
	jobs, err := s.viewJobs(ctx, `SELECT `+jobCols+` `+timed+` ORDER BY a.wall_ns`+order+`, a.job`+order+` LIMIT ? OFFSET ?`,
		append(targs, limit, offset)...)
	if err != nil || len(jobs) == limit {
		return jobs, err
	}
	// The timed jobs ran out on this page: the rest come from the others.
	skip := 0
	if len(jobs) == 0 && offset > 0 {
		var n int
		if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM (SELECT 1 `+timed+` LIMIT ?)`, append(targs, offset)...).Scan(&n); err != nil {
			return nil, fmt.Errorf("read jobs: %w", err)
		}
		skip = offset - n
	}
	rest, err := s.viewJobs(ctx, `SELECT `+jobCols+` FROM job j LEFT JOIN attempt a ON `+lastAttempt+
		` WHERE `+where+` AND a.wall_ns IS NULL ORDER BY j.idx LIMIT ? OFFSET ?`, append(args, limit-len(jobs), skip)...)
	return append(jobs, rest...), err
}

// viewJobs reads the rows of a jobs query.
func (s *Store) viewJobs(ctx context.Context, query string, args ...any) ([]ViewJob, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read jobs: %w", err)
	}
	defer rows.Close()
	var out []ViewJob
	for rows.Next() {
		var j ViewJob
		var vals, st string
		var exit, wall sql.NullInt64
		var node sql.NullString
		if err := rows.Scan(&j.Index, &st, &vals, &j.Attempts, &exit, &node, &wall); err != nil {
			return nil, fmt.Errorf("read jobs: %w", err)
		}
		if err := json.Unmarshal([]byte(vals), &j.Values); err != nil {
			return nil, fmt.Errorf("read job %d: %w", j.Index, err)
		}
		j.State, j.Exit, j.Node = JobState(st), intOf(exit), node.String
		if wall.Valid {
			d := time.Duration(wall.Int64)
			j.Wall = &d
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

func intOf(n sql.NullInt64) *int {
	if !n.Valid {
		return nil
	}
	i := int(n.Int64)
	return &i
}

// Job returns one job, or ErrNotFound.
func (s *Store) Job(ctx context.Context, exp, idx int64) (Job, error) {
	j := Job{Index: idx}
	var vals, st string
	var exit sql.NullInt64
	var updated int64
	err := s.db.QueryRowContext(ctx, `SELECT ordinal, vals, state, attempts, exit_code, updated_at FROM job
		WHERE experiment=? AND idx=?`, exp, idx).Scan(&j.Ordinal, &vals, &st, &j.Attempts, &exit, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, fmt.Errorf("read job %d: %w", idx, err)
	}
	if err := json.Unmarshal([]byte(vals), &j.Values); err != nil {
		return Job{}, fmt.Errorf("read job %d: %w", idx, err)
	}
	j.State, j.Exit, j.Updated = JobState(st), intOf(exit), time.Unix(0, updated)
	return j, nil
}

// ViewAttempt is an attempt without its output: Stdout and Stderr are
// left empty, and OutBytes and ErrBytes are their lengths.
type ViewAttempt struct {
	Attempt
	OutBytes, ErrBytes int64
}

// JobAttempts returns the attempts of one job, in order, without their
// output.
func (s *Store) JobAttempts(ctx context.Context, exp, job int64) ([]ViewAttempt, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT n, node, state, started_at, ended_at, exit_code, signal,
		wall_ns, cpu_ns, max_rss, error, coalesce(length(stdout), 0), coalesce(length(stderr), 0), staged_in, staged_out,
		cluster, cluster_node, staging_in_ns, staging_out_ns FROM attempt
		WHERE experiment=? AND job=? ORDER BY n`, exp, job)
	if err != nil {
		return nil, fmt.Errorf("read attempts of job %d: %w", job, err)
	}
	defer rows.Close()
	var out []ViewAttempt
	for rows.Next() {
		a := ViewAttempt{Attempt: Attempt{Job: job}}
		var started int64
		var ended, exit, wall, cpu, rss, in, outb, stagingIn, stagingOut sql.NullInt64
		var sig, msg, cluster, clusterNode sql.NullString
		if err := rows.Scan(&a.N, &a.Node, &a.State, &started, &ended, &exit, &sig, &wall, &cpu, &rss, &msg,
			&a.OutBytes, &a.ErrBytes, &in, &outb, &cluster, &clusterNode, &stagingIn, &stagingOut); err != nil {
			return nil, fmt.Errorf("read attempts of job %d: %w", job, err)
		}
		a.Started, a.Exit = time.Unix(0, started), intOf(exit)
		if ended.Valid {
			a.Ended = time.Unix(0, ended.Int64)
		}
		a.Signal, a.Error = sig.String, msg.String
		a.Wall, a.CPU, a.MaxRSS = time.Duration(wall.Int64), time.Duration(cpu.Int64), rss.Int64
		a.StagedIn, a.StagedOut = in.Int64, outb.Int64
		a.StagingIn, a.StagingOut = time.Duration(stagingIn.Int64), time.Duration(stagingOut.Int64)
		a.Cluster, a.ClusterNode = cluster.String, clusterNode.String
		out = append(out, a)
	}
	return out, rows.Err()
}

// LogTail is the end of an attempt's output.
type LogTail struct {
	Stdout, Stderr []byte // the last bytes asked for of each stream
	// OutBytes and ErrBytes are each stream's whole length.
	OutBytes, ErrBytes int64
}

// Log returns the last max bytes of each stream of attempt n of a job
// (cut in the database: a long output is not read whole), or
// ErrNotFound.
func (s *Store) Log(ctx context.Context, exp, job int64, n, max int) (LogTail, error) {
	var t LogTail
	err := s.db.QueryRowContext(ctx, `SELECT coalesce(length(stdout), 0), coalesce(length(stderr), 0),
		CASE WHEN length(stdout) > ?1 THEN substr(stdout, -?1) ELSE stdout END,
		CASE WHEN length(stderr) > ?1 THEN substr(stderr, -?1) ELSE stderr END
		FROM attempt WHERE experiment=?2 AND job=?3 AND n=?4`, max, exp, job, n).Scan(&t.OutBytes, &t.ErrBytes, &t.Stdout, &t.Stderr)
	if errors.Is(err, sql.ErrNoRows) {
		return LogTail{}, ErrNotFound
	}
	if err != nil {
		return LogTail{}, fmt.Errorf("read output of attempt %d of job %d: %w", n, job, err)
	}
	return t, nil
}

// Kinds of cancelled attempts (ViewInterval.Kind).
const (
	KindMoved    = "moved"     // stopped to run elsewhere (memory, or a cluster's queue)
	KindLostRace = "lost-race" // a duplicate of the job ended first
)

// CancelKind tells a cancelled attempt's cause from the error the
// dispatcher recorded (dispatch's settled, cancelReason and withdraw):
// KindLostRace, KindMoved, or "" for another state or cause.
func CancelKind(state, errText string) string {
	if state != AttemptCancelled {
		return ""
	}
	switch {
	case strings.Contains(errText, "another attempt of the job ended first"):
		return KindLostRace
	case strings.Contains(errText, "starts again where it fits"),
		strings.Contains(errText, "withdrawn from cluster"),
		strings.Contains(errText, "the root took the job back"):
		return KindMoved
	}
	return ""
}

// ViewInterval is one attempt on a timeline.
type ViewInterval struct {
	Job   int64
	N     int
	Node  string
	State string
	Kind  string // CancelKind's
	// Duplicate is set when another attempt of the job overlapped it.
	Duplicate             bool
	Started, Ended        time.Time // Ended zero while it runs
	StagingIn, StagingOut time.Duration
}

// placeOf is where the timeline puts an attempt: its node; in a grid,
// CLUSTER/NODE once the cluster's head said which of its nodes ran it,
// and the head (the cluster's name) while it waits or runs there.
const placeOf = `coalesce(a.cluster || '/' || a.cluster_node, a.node)`

// ViewTimeline is the attempts in a window of time.
type ViewTimeline struct {
	Attempts []ViewInterval // the latest started first
	// Total is how many attempts overlap the window, counted up to the
	// cap; Capped is set when there are more.
	Total  int64
	Capped bool
	// Nodes are the nodes of the attempts counted in Total, sorted.
	Nodes []string
}

// Timeline returns the attempts that overlap the window [from, to):
// the limit latest started, by the attempt_started index, without
// their output. It counts those in the window, and their nodes, up to
// countCap. The scan goes back in start time until it has them all:
// a window near the start of a long experiment reads little, one near
// its end that holds few attempts reads every earlier attempt's start.
func (s *Store) Timeline(ctx context.Context, exp int64, from, to time.Time, limit, countCap int) (ViewTimeline, error) {
	var tl ViewTimeline
	window := `FROM attempt a INDEXED BY attempt_started WHERE a.experiment=? AND a.started_at < ? AND (a.ended_at IS NULL OR a.ended_at > ?)`
	args := []any{exp, nanos(to), nanos(from)}
	rows, err := s.db.QueryContext(ctx, `SELECT a.job, a.n, `+placeOf+`, a.state, a.started_at, a.ended_at,
		coalesce(a.staging_in_ns, 0), coalesce(a.staging_out_ns, 0), CASE WHEN a.state=? THEN a.error END,
		EXISTS (SELECT 1 FROM attempt b WHERE b.experiment=a.experiment AND b.job=a.job AND b.n<>a.n
			AND +b.started_at < coalesce(a.ended_at, 9223372036854775807)
			AND coalesce(b.ended_at, 9223372036854775807) > a.started_at)
		`+window+` ORDER BY a.started_at DESC LIMIT ?`, append(append([]any{AttemptCancelled}, args...), max(limit, 0))...)
	if err != nil {
		return tl, fmt.Errorf("read the timeline: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var iv ViewInterval
		var started int64
		var ended, in, out sql.NullInt64
		var msg sql.NullString
		if err := rows.Scan(&iv.Job, &iv.N, &iv.Node, &iv.State, &started, &ended, &in, &out, &msg, &iv.Duplicate); err != nil {
			return tl, fmt.Errorf("read the timeline: %w", err)
		}
		iv.Started = time.Unix(0, started)
		if ended.Valid {
			iv.Ended = time.Unix(0, ended.Int64)
		}
		iv.StagingIn, iv.StagingOut = time.Duration(in.Int64), time.Duration(out.Int64)
		iv.Kind = CancelKind(iv.State, msg.String)
		tl.Attempts = append(tl.Attempts, iv)
	}
	if err := rows.Err(); err != nil {
		return tl, fmt.Errorf("read the timeline: %w", err)
	}
	rows.Close()
	capN := max(countCap, 0)
	nodes, err := s.db.QueryContext(ctx, `SELECT node, count(*) FROM (SELECT `+placeOf+` AS node `+window+` LIMIT ?)
		GROUP BY node ORDER BY node`, append(args, capN+1)...)
	if err != nil {
		return tl, fmt.Errorf("count the timeline: %w", err)
	}
	defer nodes.Close()
	for nodes.Next() {
		var node string
		var n int64
		if err := nodes.Scan(&node, &n); err != nil {
			return tl, fmt.Errorf("count the timeline: %w", err)
		}
		tl.Nodes = append(tl.Nodes, node)
		tl.Total += n
	}
	if tl.Total > int64(capN) {
		tl.Total, tl.Capped = int64(capN), true
	}
	return tl, nodes.Err()
}

// ViewAxis is one axis of the parameter space: the labels of its
// values, or of its bins when the parameter has more distinct values
// than fit.
type ViewAxis struct {
	Labels  []string
	Binned  bool
	Numeric bool // every value is a number: the axis is in numeric order
	key     string
	args    []any
	index   map[string]int // a value's place, when not binned
}

// ViewCell is the jobs at one point (or bin) of the parameter space.
type ViewCell struct {
	I, J                           int
	N                              int64
	Pending, Running, Done, Failed int64
	Walls                          int64         // jobs whose last attempt has a wall time
	WallSum, WallMax               time.Duration // of those
	NonZero                        int64         // jobs with a non-zero exit status
	TopExit                        *int          // the most common non-zero exit status
}

// ViewSpace is the jobs of an experiment on a grid of two parameters.
type ViewSpace struct {
	X, Y  ViewAxis
	Cells []ViewCell // in order of I, then J
	Jobs  int64
}

// Space aggregates an experiment's jobs on the parameters at positions
// x and y, each axis at most maxAxis values wide: a parameter with more
// distinct values is binned, into ranges of equal width when every
// value is a number, otherwise by its sorted order. It reads every job
// and its last attempt (without output) two or three times: a second or
// so for a million jobs.
func (s *Store) Space(ctx context.Context, exp int64, x, y, maxAxis int) (*ViewSpace, error) {
	maxAxis = max(maxAxis, 1)
	sp := &ViewSpace{}
	var err error
	if sp.X, err = s.axis(ctx, exp, x, maxAxis); err != nil {
		return nil, err
	}
	if sp.Y, err = s.axis(ctx, exp, y, maxAxis); err != nil {
		return nil, err
	}
	from := `FROM job j LEFT JOIN attempt a ON ` + lastAttempt + ` WHERE j.experiment=?`
	args := append(append(append([]any{}, sp.X.args...), sp.Y.args...), exp)
	rows, err := s.db.QueryContext(ctx, `SELECT `+sp.X.key+` AS kx, `+sp.Y.key+` AS ky, count(*),
		sum(j.state='pending'), sum(j.state='running'), sum(j.state='done'), sum(j.state='failed'),
		count(a.wall_ns), total(a.wall_ns), coalesce(max(a.wall_ns), 0), sum(coalesce(j.exit_code, 0)<>0)
		`+from+` GROUP BY kx, ky`, args...)
	if err != nil {
		return nil, fmt.Errorf("aggregate jobs: %w", err)
	}
	defer rows.Close()
	type ij struct{ i, j int }
	at := map[ij]int{}
	for rows.Next() {
		var kx, ky any
		var c ViewCell
		var sum float64
		var wmax int64
		if err := rows.Scan(&kx, &ky, &c.N, &c.Pending, &c.Running, &c.Done, &c.Failed, &c.Walls, &sum, &wmax, &c.NonZero); err != nil {
			return nil, fmt.Errorf("aggregate jobs: %w", err)
		}
		c.I, c.J = sp.X.place(kx), sp.Y.place(ky)
		c.WallSum, c.WallMax = time.Duration(sum), time.Duration(wmax)
		sp.Jobs += c.N
		if k, ok := at[ij{c.I, c.J}]; ok { // two keys in one place (cannot happen; kept safe)
			sp.Cells[k].merge(c)
			continue
		}
		at[ij{c.I, c.J}] = len(sp.Cells)
		sp.Cells = append(sp.Cells, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("aggregate jobs: %w", err)
	}
	rows.Close()
	// The most common non-zero exit status of each cell: few rows, as
	// failures are few (at most one per job).
	exits, err := s.db.QueryContext(ctx, `SELECT `+sp.X.key+` AS kx, `+sp.Y.key+` AS ky, j.exit_code, count(*)
		FROM job j WHERE j.experiment=? AND coalesce(j.exit_code, 0)<>0 GROUP BY kx, ky, j.exit_code`, args...)
	if err != nil {
		return nil, fmt.Errorf("aggregate exit statuses: %w", err)
	}
	defer exits.Close()
	best := map[ij]int64{}
	for exits.Next() {
		var kx, ky any
		var code, n int64
		if err := exits.Scan(&kx, &ky, &code, &n); err != nil {
			return nil, fmt.Errorf("aggregate exit statuses: %w", err)
		}
		p := ij{sp.X.place(kx), sp.Y.place(ky)}
		k, ok := at[p]
		if !ok {
			continue
		}
		c := &sp.Cells[k]
		if b, seen := best[p]; !seen || n > b || n == b && c.TopExit != nil && int(code) < *c.TopExit {
			best[p] = n
			e := int(code)
			c.TopExit = &e
		}
	}
	if err := exits.Err(); err != nil {
		return nil, fmt.Errorf("aggregate exit statuses: %w", err)
	}
	sortCells(sp.Cells)
	return sp, nil
}

func (c *ViewCell) merge(o ViewCell) {
	c.N += o.N
	c.Pending += o.Pending
	c.Running += o.Running
	c.Done += o.Done
	c.Failed += o.Failed
	c.Walls += o.Walls
	c.WallSum += o.WallSum
	c.WallMax = max(c.WallMax, o.WallMax)
	c.NonZero += o.NonZero
}

func sortCells(cs []ViewCell) {
	slices.SortFunc(cs, func(a, b ViewCell) int {
		if a.I != b.I {
			return a.I - b.I
		}
		return a.J - b.J
	})
}

// place is the index on the axis of a key the aggregate returned.
func (ax *ViewAxis) place(k any) int {
	if ax.index == nil { // binned: the key is the bin
		switch v := k.(type) {
		case int64:
			return min(max(int(v), 0), len(ax.Labels)-1)
		case float64:
			return min(max(int(v), 0), len(ax.Labels)-1)
		}
		return 0
	}
	var s string
	switch v := k.(type) {
	case string:
		s = v
	case []byte:
		s = string(v)
	case nil:
		s = ""
	default:
		s = fmt.Sprint(v)
	}
	return ax.index[s]
}

// numericSQL is true for a text value that is a JSON number.
const numericSQL = `CASE WHEN json_valid(v) THEN json_type(v) IN ('integer', 'real') ELSE 0 END`

// axis decides how to show the parameter at position pos: its distinct
// values (in numeric order when all are numbers, else in byte order),
// or bins of them when there are more than maxAxis.
func (s *Store) axis(ctx context.Context, exp int64, pos, maxAxis int) (ViewAxis, error) {
	ax := ViewAxis{}
	val := fmt.Sprintf("json_extract(j.vals, '$[%d]')", pos)
	distinct := `SELECT DISTINCT coalesce(` + val + `, '') AS v FROM job j WHERE j.experiment=?`
	var n, numeric, integers int64
	var lo, hi float64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(`+numericSQL+`), 0),
		coalesce(sum(CASE WHEN json_valid(v) THEN json_type(v)='integer' ELSE 0 END), 0),
		coalesce(min(CAST(v AS REAL)), 0), coalesce(max(CAST(v AS REAL)), 0) FROM (`+distinct+`)`, exp).Scan(&n, &numeric, &integers, &lo, &hi); err != nil {
		return ax, fmt.Errorf("read the values of parameter %d: %w", pos+1, err)
	}
	ax.Numeric = n > 0 && numeric == n
	if n <= int64(maxAxis) {
		vals, err := s.texts(ctx, distinct+` ORDER BY v`, exp)
		if err != nil {
			return ax, err
		}
		if ax.Numeric {
			slices.SortFunc(vals, func(a, b string) int { return cmp.Compare(num(a), num(b)) })
		}
		ax.Labels, ax.index, ax.key = vals, map[string]int{}, "coalesce("+val+", '')"
		for i, v := range vals {
			ax.index[v] = i
		}
		return ax, nil
	}
	ax.Binned = true
	if ax.Numeric {
		integral := integers == n
		width := (hi - lo) / float64(maxAxis)
		if integral {
			width = math.Ceil((hi - lo + 1) / float64(maxAxis))
		}
		if width <= 0 || math.IsNaN(width) || math.IsInf(width, 0) {
			width = 1
		}
		bins := min(int((hi-lo)/width)+1, maxAxis)
		for b := range bins {
			a, z := lo+float64(b)*width, lo+float64(b+1)*width
			if integral {
				z--
			} else if b == bins-1 {
				z = hi
			}
			ax.Labels = append(ax.Labels, label(a)+"–"+label(z))
		}
		ax.key = "min(max(CAST((CAST(" + val + " AS REAL) - ?) / ? AS INTEGER), 0), ?)"
		ax.args = []any{lo, width, bins - 1}
		return ax, nil
	}
	// Not all numbers: bins of consecutive values in byte order, each
	// chunk values wide; a value's bin is how many bins' first values
	// it is not below.
	chunk := (n + int64(maxAxis) - 1) / int64(maxAxis)
	rows, err := s.db.QueryContext(ctx, distinct+` ORDER BY v`, exp)
	if err != nil {
		return ax, fmt.Errorf("read the values of parameter %d: %w", pos+1, err)
	}
	defer rows.Close()
	var firsts []string
	var i int64
	var prev string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return ax, fmt.Errorf("read the values of parameter %d: %w", pos+1, err)
		}
		if i%chunk == 0 {
			if len(firsts) > 0 {
				ax.Labels[len(ax.Labels)-1] += "–" + prev
			}
			firsts = append(firsts, v)
			ax.Labels = append(ax.Labels, v)
		}
		prev = v
		i++
	}
	if err := rows.Err(); err != nil {
		return ax, fmt.Errorf("read the values of parameter %d: %w", pos+1, err)
	}
	if len(ax.Labels) > 0 {
		ax.Labels[len(ax.Labels)-1] += "–" + prev
	}
	terms := []string{"0"}
	for _, f := range firsts[1:] {
		terms = append(terms, "(coalesce("+val+", '') >= ?)")
		ax.args = append(ax.args, f)
	}
	ax.key = "(" + strings.Join(terms, " + ") + ")"
	return ax, nil
}

// texts reads a query's one text column.
func (s *Store) texts(ctx context.Context, query string, args ...any) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("read parameter values: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read parameter values: %w", err)
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

func num(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// label writes a bin's bound: an integer as one, else in 4 digits.
func label(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatInt(int64(f), 10)
	}
	return strconv.FormatFloat(f, 'g', 4, 64)
}

// ViewMark is a cheap fingerprint of an experiment's progress: it
// changes when a job changes state or an attempt starts. It reads
// indexes only.
type ViewMark struct {
	Counts    map[JobState]int64
	Attempts  int64     // attempts recorded
	LastStart time.Time // of the latest attempt; zero before the first
}

// Mark reads an experiment's ViewMark, in one read transaction (the
// counts and the attempts of one moment).
func (s *Store) Mark(ctx context.Context, exp int64) (ViewMark, error) {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return ViewMark{}, fmt.Errorf("read progress: %w", err)
	}
	defer tx.Rollback()
	m := ViewMark{Counts: map[JobState]int64{}}
	rows, err := tx.QueryContext(ctx, `SELECT state, count(*) FROM job WHERE experiment=? GROUP BY state`, exp)
	if err != nil {
		return ViewMark{}, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return ViewMark{}, fmt.Errorf("count jobs: %w", err)
		}
		m.Counts[JobState(st)] = n
	}
	if err := rows.Err(); err != nil {
		return ViewMark{}, fmt.Errorf("count jobs: %w", err)
	}
	rows.Close()
	var last sql.NullInt64
	if err := tx.QueryRowContext(ctx, `SELECT count(*), max(started_at) FROM attempt WHERE experiment=?`, exp).Scan(&m.Attempts, &last); err != nil {
		return ViewMark{}, fmt.Errorf("count attempts: %w", err)
	}
	if last.Valid {
		m.LastStart = time.Unix(0, last.Int64)
	}
	return m, nil
}

// Same reports whether two marks are of the same progress.
func (m ViewMark) Same(o ViewMark) bool {
	if m.Attempts != o.Attempts || !m.LastStart.Equal(o.LastStart) || len(m.Counts) != len(o.Counts) {
		return false
	}
	for k, v := range m.Counts {
		if o.Counts[k] != v {
			return false
		}
	}
	return true
}

// ViewProgress is what a viewer's news sums over every attempt.
type ViewProgress struct {
	// Work is the wall time of the successful attempts (a done job has
	// one).
	Work time.Duration
	// Ended is how many attempts ended, successful or failed, after the
	// time asked for.
	Ended int64
	// Running is how many attempts run; LastEnd is when the last one
	// that ended did (zero before the first).
	Running int64
	LastEnd time.Time
}

// Progress sums an experiment's attempts (without reading their
// output, but every one of them: call it when Mark changed).
func (s *Store) Progress(ctx context.Context, exp int64, since time.Time) (ViewProgress, error) {
	var p ViewProgress
	var work float64
	var last sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT total(CASE WHEN state=?2 THEN wall_ns END),
		coalesce(sum(state IN (?2, ?3) AND ended_at > ?4), 0), coalesce(sum(ended_at IS NULL), 0), max(ended_at)
		FROM attempt WHERE experiment=?1`, exp, AttemptOK, AttemptFailed, nanos(since)).Scan(&work, &p.Ended, &p.Running, &last)
	if err != nil {
		return p, fmt.Errorf("sum attempts: %w", err)
	}
	p.Work = time.Duration(work)
	if last.Valid {
		p.LastEnd = time.Unix(0, last.Int64)
	}
	return p, nil
}
