package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"orrery/store"
)

// StoreSource is a Source over an experiment's store: every answer is
// one or a few bounded queries (see store's JobsPage, Timeline, Space
// and Log), each given at most QueryTimeout.
type StoreSource struct {
	st   *store.Store
	exp  *store.Experiment
	live bool
	now  func() time.Time

	// asking holds a slot for each question being asked of the store:
	// a viewer's questions take at most askers of the run's CPUs and
	// readers of its database, however many viewers ask at once.
	asking chan struct{}
	// aggregating holds one slot while a parameter space is computed:
	// one at a time, whatever the viewers ask, so that they cost the
	// run at most one CPU.
	aggregating chan struct{}

	mu    sync.Mutex
	space map[SpaceQuery]*spaceEntry // at most spaceEntries
}

var _ Source = (*StoreSource)(nil)

// QueryTimeout bounds each question a StoreSource asks its store: a
// pathological query gives up rather than hold a connection for ever.
const QueryTimeout = 10 * time.Second

// SpaceTimeout bounds the computing of a parameter space, which reads
// every job: 4 s for a million on this project's 2-CPU machine alone,
// 8 to 10 s beside other readers (the run's writes, the page's news).
// It is computed once for every viewer who asks meanwhile, and kept
// fresh four times as long as it took.
const SpaceTimeout = 30 * time.Second

// askers is how many questions of viewers a StoreSource asks its store
// at once; the others wait their turn within QueryTimeout.
const askers = 2

// ask bounds a question: it gives it timeout (QueryTimeout but for a
// parameter space), and waits for its turn among the askers. The
// question ends with done.
func (s *StoreSource) ask(ctx context.Context, timeout time.Duration) (_ context.Context, done func(), err error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	select {
	case s.asking <- struct{}{}:
		return ctx, func() { <-s.asking; cancel() }, nil
	case <-ctx.Done():
		cancel()
		return nil, nil, fmt.Errorf("too many viewers' questions at once: %w", context.DeadlineExceeded)
	}
}

// SpaceFresh is how long a StoreSource answers the same parameter
// space from its cache at least, so that viewers reloading it do not
// aggregate a million jobs each; an answer that took longer to compute
// is kept spaceCostFactor times as long as it took (a parameter space
// that takes 4 s is computed at most every 20 s: a fifth of one CPU
// while viewers watch it). spaceEntries bounds the cache.
const (
	SpaceFresh      = 2 * time.Second
	spaceCostFactor = 4
	spaceEntries    = 16
)

// spaceEntry is one parameter space computed, or being computed (done
// open): a second viewer asking meanwhile waits for it.
type spaceEntry struct {
	done  chan struct{}
	at    time.Time
	fresh time.Duration // how long it is answered from the cache
	sp    Space
	err   error
}

// NewStoreSource answers for the experiment exp of st; live says a
// running root serves the page (Info.Live).
func NewStoreSource(st *store.Store, exp *store.Experiment, live bool) *StoreSource {
	return &StoreSource{st: st, exp: exp, live: live, now: time.Now, space: map[SpaceQuery]*spaceEntry{},
		aggregating: make(chan struct{}, 1), asking: make(chan struct{}, askers)}
}

// Info is the experiment's description.
func (s *StoreSource) Info(ctx context.Context) (Info, error) {
	var set struct {
		Policy string `json:"policy"`
	}
	json.Unmarshal([]byte(s.exp.Settings), &set) // an older build's settings: no policy
	names := s.exp.Names
	if names == nil {
		names = []string{}
	}
	return Info{Experiment: s.exp.ID, Plan: s.exp.PlanPath, PlanText: s.exp.PlanText, Dialect: s.exp.Dialect,
		Seed: s.exp.Seed, Created: s.exp.Created.UTC().Format(time.RFC3339), Names: names, Policy: set.Policy, Live: s.live}, nil
}

// position is the place of a parameter in the jobs' values, or a
// BadQuery naming the known ones.
func (s *StoreSource) position(name string) (int, error) {
	if i := slices.Index(s.exp.Names, name); i >= 0 {
		return i, nil
	}
	return 0, &BadQuery{Why: fmt.Sprintf("no parameter %q: the plan has %s", clip(name), strings.Join(s.exp.Names, ", "))}
}

// clip shortens what a viewer sent before an answer repeats it.
func clip(s string) string {
	if len(s) <= 64 {
		return s
	}
	return strings.ToValidUTF8(s[:64], "") + "…"
}

// jobStates are the states a viewer may filter on.
var jobStates = []string{string(store.Pending), string(store.Running), string(store.Done), string(store.Failed)}

// Jobs is one page of the jobs table.
func (s *StoreSource) Jobs(ctx context.Context, q JobQuery) (JobPage, error) {
	if q.State != "" && !slices.Contains(jobStates, q.State) {
		return JobPage{}, &BadQuery{Why: fmt.Sprintf("no job state %q: one of %s", clip(q.State), strings.Join(jobStates, ", "))}
	}
	if len(q.Params) > MaxFilters {
		return JobPage{}, &BadQuery{Why: fmt.Sprintf("%d parameter filters: at most %d", len(q.Params), MaxFilters)}
	}
	if len(q.Node) > MaxFilterLen {
		return JobPage{}, &BadQuery{Why: fmt.Sprintf("a node name of %d bytes: at most %d", len(q.Node), MaxFilterLen)}
	}
	vq := store.ViewJobQuery{State: store.JobState(q.State), Node: q.Node, Desc: q.Desc, Offset: max(q.Offset, 0), CountCap: MaxCount}
	switch q.Sort {
	case "", "index":
	case "wall":
		vq.ByWall = true
	default:
		return JobPage{}, &BadQuery{Why: fmt.Sprintf("no sort %q: index or wall", clip(q.Sort))}
	}
	for _, name := range slices.Sorted(maps.Keys(q.Params)) {
		v := q.Params[name]
		if len(v) > MaxFilterLen {
			return JobPage{}, &BadQuery{Why: fmt.Sprintf("the filter on %s is %d bytes: at most %d", clip(name), len(v), MaxFilterLen)}
		}
		i, err := s.position(name)
		if err != nil {
			return JobPage{}, err
		}
		vq.Params = append(vq.Params, store.ViewParam{Pos: i, Value: v})
	}
	vq.Limit = q.Limit
	if vq.Limit <= 0 {
		vq.Limit = DefaultPage
	}
	vq.Limit = min(vq.Limit, MaxPage)
	ctx, done, err := s.ask(ctx, QueryTimeout)
	if err != nil {
		return JobPage{}, err
	}
	defer done()
	rows, total, capped, err := s.st.JobsPage(ctx, s.exp.ID, vq)
	if err != nil {
		return JobPage{}, err
	}
	page := JobPage{Jobs: make([]JobRow, 0, len(rows)), Total: total, TotalCapped: capped, Offset: vq.Offset, Limit: vq.Limit}
	for _, r := range rows {
		row := JobRow{Index: r.Index, State: string(r.State), Values: s.values(r.Values), Attempts: r.Attempts,
			Exit: r.Exit, Node: r.Node}
		if r.Wall != nil {
			row.Wall = seconds(*r.Wall)
		}
		page.Jobs = append(page.Jobs, row)
	}
	return page, nil
}

// values names a job's values.
func (s *StoreSource) values(vs []string) map[string]string {
	m := make(map[string]string, len(vs))
	for i, v := range vs {
		if i < len(s.exp.Names) {
			m[s.exp.Names[i]] = v
		}
	}
	return m
}

func seconds(d time.Duration) *float64 {
	f := d.Seconds()
	return &f
}

// Job is one job and its attempts, without their output.
func (s *StoreSource) Job(ctx context.Context, index int64) (JobDetail, error) {
	ctx, done, err := s.ask(ctx, QueryTimeout)
	if err != nil {
		return JobDetail{}, err
	}
	defer done()
	j, err := s.st.Job(ctx, s.exp.ID, index)
	if errors.Is(err, store.ErrNotFound) {
		return JobDetail{}, ErrNotFound
	}
	if err != nil {
		return JobDetail{}, err
	}
	as, err := s.st.JobAttempts(ctx, s.exp.ID, index)
	if err != nil {
		return JobDetail{}, err
	}
	d := JobDetail{Index: j.Index, State: string(j.State), Values: s.values(j.Values), Exit: j.Exit, Attempts: make([]AttemptView, 0, len(as))}
	for _, a := range as {
		v := AttemptView{N: a.N, Node: a.Node, Cluster: a.Cluster, ClusterNode: a.ClusterNode, State: a.State,
			Started: a.Started.UTC().Format(time.RFC3339Nano), MaxRSS: a.MaxRSS, Exit: a.Exit, Signal: a.Signal, Error: a.Error,
			StagingIn: a.StagingIn.Seconds(), StagingOut: a.StagingOut.Seconds(), StagedIn: a.StagedIn, StagedOut: a.StagedOut,
			OutBytes: a.OutBytes, ErrBytes: a.ErrBytes}
		if !a.Ended.IsZero() {
			v.Ended = a.Ended.UTC().Format(time.RFC3339Nano)
			v.Wall, v.CPU = seconds(a.Wall), seconds(a.CPU)
		}
		d.Attempts = append(d.Attempts, v)
	}
	return d, nil
}

// Log is the end of an attempt's output.
func (s *StoreSource) Log(ctx context.Context, index int64, n int) (Log, error) {
	ctx, done, err := s.ask(ctx, QueryTimeout)
	if err != nil {
		return Log{}, err
	}
	defer done()
	t, err := s.st.Log(ctx, s.exp.ID, index, n, MaxLogBytes)
	if errors.Is(err, store.ErrNotFound) {
		return Log{}, ErrNotFound
	}
	if err != nil {
		return Log{}, err
	}
	return Log{Job: index, N: n, Stdout: tail(t.Stdout, t.OutBytes), Stderr: tail(t.Stderr, t.ErrBytes),
		StdoutCut: t.OutBytes > int64(len(t.Stdout)), StderrCut: t.ErrBytes > int64(len(t.Stderr))}, nil
}

// tail is the end of a stream as text: a character the cut split is
// dropped, and invalid UTF-8 replaced.
func tail(b []byte, whole int64) string {
	if whole > int64(len(b)) {
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.RuneStart(b[0]); i++ {
			b = b[1:]
		}
	}
	return strings.ToValidUTF8(string(b), "\uFFFD")
}

// Timeline is the attempts in a window of time.
func (s *StoreSource) Timeline(ctx context.Context, q TimelineQuery) (Timeline, error) {
	now := s.now()
	from, to := q.From, q.To
	if from == 0 {
		from = s.exp.Created.UnixMilli()
	}
	if to == 0 {
		to = now.UnixMilli() + 1
	}
	if from < 0 || to <= from {
		return Timeline{}, &BadQuery{Why: fmt.Sprintf("the window from %d to %d ms is empty", from, to)}
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultTimeline
	}
	limit = min(limit, MaxTimeline)
	ctx, done, err := s.ask(ctx, QueryTimeout)
	if err != nil {
		return Timeline{}, err
	}
	defer done()
	tl, err := s.st.Timeline(ctx, s.exp.ID, time.UnixMilli(from), time.UnixMilli(to), limit, MaxCount)
	if err != nil {
		return Timeline{}, err
	}
	out := Timeline{From: from, To: to, Now: now.UnixMilli(), Attempts: make([]Interval, 0, len(tl.Attempts)),
		Total: tl.Total, Truncated: tl.Total > int64(len(tl.Attempts)), Nodes: tl.Nodes}
	if out.Nodes == nil {
		out.Nodes = []string{}
	}
	for _, a := range tl.Attempts {
		iv := Interval{Job: a.Job, N: a.N, Node: a.Node, State: a.State, Kind: a.Kind, Duplicate: a.Duplicate,
			Start: a.Started.UnixMilli(), StagingIn: a.StagingIn.Milliseconds(), StagingOut: a.StagingOut.Milliseconds()}
		if !a.Ended.IsZero() {
			iv.End = a.Ended.UnixMilli()
		}
		out.Attempts = append(out.Attempts, iv)
	}
	return out, nil
}

// Space is the jobs on a grid of two parameters, from a cache of
// answers at most SpaceFresh old.
func (s *StoreSource) Space(ctx context.Context, q SpaceQuery) (Space, error) {
	x, err := s.position(q.X)
	if err != nil {
		return Space{}, err
	}
	y, err := s.position(q.Y)
	if err != nil {
		return Space{}, err
	}
	s.mu.Lock()
	e := s.space[q]
	if e != nil && e.at.IsZero() || e != nil && s.now().Sub(e.at) < e.fresh {
		s.mu.Unlock()
		select {
		case <-e.done:
			return e.sp, e.err
		case <-ctx.Done():
			return Space{}, ctx.Err()
		}
	}
	if len(s.space) >= spaceEntries {
		s.evictLocked()
	}
	e = &spaceEntry{done: make(chan struct{})}
	s.space[q] = e
	s.mu.Unlock()
	// Computed for whoever waits, so not cut short by the first
	// viewer going away; SpaceTimeout bounds it.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), SpaceTimeout)
	select {
	case s.aggregating <- struct{}{}:
		if actx, done, err := s.ask(cctx, SpaceTimeout); err != nil {
			e.err = err
		} else {
			began := s.now()
			e.sp, e.err = s.space1(actx, q, x, y)
			done()
			e.fresh = max(SpaceFresh, spaceCostFactor*s.now().Sub(began))
		}
		<-s.aggregating
	case <-cctx.Done():
		e.err = fmt.Errorf("the parameter space waited its turn too long: %w", context.Cause(cctx))
	}
	cancel()
	s.mu.Lock()
	e.at = s.now()
	if e.err != nil && s.space[q] == e {
		delete(s.space, q) // not kept: the next viewer asks again
	}
	s.mu.Unlock()
	close(e.done)
	return e.sp, e.err
}

// evictLocked drops the oldest finished entry, or any when all are
// being computed (their waiters keep them).
func (s *StoreSource) evictLocked() {
	var victim *SpaceQuery
	var at time.Time
	for q, e := range s.space {
		if victim == nil || !e.at.IsZero() && (at.IsZero() || e.at.Before(at)) {
			victim, at = &q, e.at
		}
	}
	if victim != nil {
		delete(s.space, *victim)
	}
}

// space1 computes one parameter space.
func (s *StoreSource) space1(ctx context.Context, q SpaceQuery, x, y int) (Space, error) {
	vs, err := s.st.Space(ctx, s.exp.ID, x, y, MaxAxis)
	if err != nil {
		return Space{}, err
	}
	sp := Space{XName: q.X, YName: q.Y, XS: orEmpty(vs.X.Labels), YS: orEmpty(vs.Y.Labels), XBinned: vs.X.Binned, YBinned: vs.Y.Binned,
		Cells: make([]Cell, 0, len(vs.Cells)), Jobs: vs.Jobs}
	for _, c := range vs.Cells {
		cell := Cell{I: c.I, J: c.J, N: c.N, Pending: c.Pending, Running: c.Running, Done: c.Done, Failed: c.Failed,
			WallMax: c.WallMax.Seconds(), NonZero: c.NonZero, TopExit: c.TopExit}
		if c.Walls > 0 {
			cell.WallMean = c.WallSum.Seconds() / float64(c.Walls)
		}
		sp.Cells = append(sp.Cells, cell)
	}
	return sp, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
