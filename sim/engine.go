package sim

import (
	"container/heap"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"time"

	"orrery/sched"
)

// ErrNoFit is the error of a run that cannot complete: a node's resident
// memory exceeded its RAM and swap (MOSIX starting every job at home).
var ErrNoFit = errors.New("does not fit")

// epoch is the simulated clock's zero, as the core sees it.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// maxEvents stops a run that would never end.
const maxEvents = 1 << 31

// Run simulates case c of sc under policy, runs times with seeds seed,
// seed+1, …, and sums the outcome up.
func Run(sc *Scenario, c Case, policy string, runs int, seed uint64) (Result, error) {
	res := Result{Case: c.Name, Policy: policy, Paper: c.Paper[policy]}
	var bounds []float64
	for i := range max(runs, 1) {
		s, err := newSim(sc, c, policy, seed+uint64(i), nil)
		if err != nil {
			return res, err
		}
		bounds = append(bounds, s.bound)
		t, err := s.run()
		res.Decisions += s.decisions()
		if errors.Is(err, ErrNoFit) {
			res.Failed = err.Error()
			continue
		}
		if err != nil {
			return res, err
		}
		res.Makespans = append(res.Makespans, t)
	}
	res.Bound, _ = meanSD(bounds)
	res.Mean, res.SD = meanSD(res.Makespans)
	if len(res.Makespans) > 0 {
		res.Efficiency = res.Bound / res.Mean
	}
	return res, nil
}

// Simulate runs case c of sc once under policy with the given seed and
// returns the makespan in seconds. When trace is not nil it gets one line
// per event.
func Simulate(sc *Scenario, c Case, policy string, seed uint64, trace io.Writer) (float64, error) {
	s, err := newSim(sc, c, policy, seed, trace)
	if err != nil {
		return 0, err
	}
	return s.run()
}

// machine is a simulated node.
type machine struct {
	Node
	cluster *site
	runs    []*run  // running (CPU shared equally among them)
	rss     int64   // resident memory of runs
	at      float64 // when the runs' remaining work was last brought up to date
	version int     // bumped whenever the next completion may change
	nic     float64 // when its network interface is free for a move
}

// site is a simulated cluster.
type site struct {
	*Cluster
	lan, wan float64 // when the root's link to the nodes, and the WAN link, are free
}

// phase is where an attempt is.
type phase int

const (
	stagingIn phase = iota
	running
	moving
	stagingOut
	gone
	deliver // a message arrives (two-level runs)
)

// run is one attempt of a job.
type run struct {
	job     *job
	attempt int   // the core's attempt
	root    int   // the grid's attempt it belongs to (two-level runs)
	head    *head // the dispatcher that started it (nil: the one core)
	node    *machine
	phase   phase
	left    float64 // work left
	started float64
	staged  float64 // seconds spent staging
}

// event is something that happens at a time.
type event struct {
	at      float64
	seq     int64
	kind    phase // the phase that ends: stagingIn, running (node completion), moving, stagingOut; gone: a tick
	run     *run
	node    *machine
	version int
	msg     *message
}

type events []*event

func (e events) Len() int { return len(e) }
func (e events) Less(i, j int) bool {
	if e[i].at != e[j].at {
		return e[i].at < e[j].at
	}
	return e[i].seq < e[j].seq
}
func (e events) Swap(i, j int)  { e[i], e[j] = e[j], e[i] }
func (e *events) Push(x any)    { *e = append(*e, x.(*event)) }
func (e *events) Pop() any      { old := *e; x := old[len(old)-1]; *e = old[:len(old)-1]; return x }
func (e *events) add(ev *event) { heap.Push(e, ev) }

// sim is one simulated run.
type sim struct {
	core   *sched.Core // the one core of a one-level run
	grid   *sched.Grid // the coordinator of a two-level run
	heads  []*head     // the clusters' dispatchers of a two-level run
	pol    sched.Policy
	jobs   []job
	next   int // jobs enqueued so far
	left   int // jobs not yet finished
	runs   map[runKey]*run
	nodes  map[string]*machine
	queue  events
	seq    int64
	now    float64
	end    float64
	ticks  bool
	bound  float64
	trace  io.Writer
	failed error
	// gridDue says the coordinator has news to decide on.
	gridDue bool
}

// runKey names an attempt: the core's attempt of a job, in the core of
// a head (0 in a one-level run).
type runKey struct {
	head    int
	job     int64
	attempt int
}

func (s *sim) key(h *head, job int64, attempt int) runKey {
	if h == nil {
		return runKey{job: job, attempt: attempt}
	}
	return runKey{head: h.index, job: job, attempt: attempt}
}

// decisions counts the scheduling actions of the run.
func (s *sim) decisions() int64 {
	if s.grid == nil {
		return s.core.Decisions()
	}
	n := s.grid.Decisions()
	for _, h := range s.heads {
		n += h.core.Decisions()
	}
	return n
}

// newSim sets up a run of case c of sc under policy.
func newSim(sc *Scenario, c Case, policy string, seed uint64, trace io.Writer) (*sim, error) {
	pol, err := sched.PolicyByName(policy)
	if err != nil {
		return nil, err
	}
	w, err := workload(sc, c)
	if err != nil {
		return nil, err
	}
	cls, err := clusters(sc, c)
	if err != nil {
		return nil, err
	}
	// MOSIX migrates any process inside a cluster (unless the cluster or
	// the case says no-migration), under every policy that balances
	// load; a job that checkpoints can move anywhere.
	moves := pol.Balance || c.Checkpoint
	s := &sim{pol: pol, jobs: draw(w, seed), runs: map[runKey]*run{}, nodes: map[string]*machine{}, trace: trace,
		ticks: pol.Balance && moves || pol.Stragglers}
	s.left = len(s.jobs)
	if twoLevel(pol, cls, c) {
		return s, s.setupGrid(cls, c, policy)
	}
	s.core = sched.New(sched.Config{Policy: pol, Moves: moves, MovesAcross: c.Checkpoint, Duplicates: true, Restarts: true})
	var all []Node
	for i, cl := range cls {
		per := perCPUOf(c, policy, i)
		s.core.AddCluster(sched.Cluster{Name: cl.Name, PerCPU: per, Bandwidth: cl.Link.Bandwidth, Latency: cl.Link.Latency,
			WANBandwidth: cl.WAN.Bandwidth, WANLatency: cl.WAN.Latency, Pinned: (cl.NoMigration || c.NoMigration) && !c.Checkpoint})
		sc := &site{Cluster: cl}
		for _, n := range cl.Nodes {
			if s.nodes[n.Name] != nil {
				return nil, fmt.Errorf("two nodes named %q", n.Name)
			}
			if n.Thrash == 0 {
				n.Thrash = 100
			}
			n.Speed = cmpOr(n.Speed, 1)
			n.CPUs = max(n.CPUs, 1)
			s.nodes[n.Name] = &machine{Node: n, cluster: sc}
			s.core.AddNode(sched.Node{ID: n.Name, Cluster: cl.Name, CPUs: n.CPUs, Speed: n.Speed, Limit: n.Limit,
				Memory: n.Memory}, epoch)
			all = append(all, n)
		}
	}
	s.bound = bound(s.jobs, all)
	return s, nil
}

// perCPUOf is the case's processes per CPU for the i-th of its clusters
// under policy (0: none set).
func perCPUOf(c Case, policy string, i int) float64 {
	perCPU := c.PerCPU
	if p, ok := c.PerCPUFor[policy]; ok {
		perCPU = p
	}
	switch {
	case len(perCPU) == 1:
		return perCPU[0]
	case len(perCPU) > 1:
		return perCPU[i]
	}
	return 0
}

func cmpOr(v, d float64) float64 {
	if v <= 0 {
		return d
	}
	return v
}

// workload finds the case's workload.
func workload(sc *Scenario, c Case) (*Workload, error) {
	for i := range sc.Workloads {
		if c.Workload == "" || sc.Workloads[i].Name == c.Workload {
			return &sc.Workloads[i], nil
		}
	}
	return nil, fmt.Errorf("case %s: no workload %q", c.Name, c.Workload)
}

// clusters finds the case's clusters.
func clusters(sc *Scenario, c Case) ([]*Cluster, error) {
	var out []*Cluster
	for i := range sc.Clusters {
		if len(c.Clusters) == 0 || slices.Contains(c.Clusters, sc.Clusters[i].Name) {
			out = append(out, &sc.Clusters[i])
		}
	}
	if len(out) == 0 || len(c.Clusters) > 0 && len(out) != len(c.Clusters) {
		return nil, fmt.Errorf("case %s: clusters %v not all in the scenario", c.Name, c.Clusters)
	}
	return out, nil
}

func (s *sim) at(t float64) time.Time { return epoch.Add(time.Duration(t * 1e9)) }

func (s *sim) add(ev *event) {
	s.seq++
	ev.seq = s.seq
	s.queue.add(ev)
}

func (s *sim) logf(format string, args ...any) {
	if s.trace != nil {
		fmt.Fprintf(s.trace, "%10.3f "+format+"\n", append([]any{s.now}, args...)...)
	}
}

// run runs the simulation to the end and returns the makespan.
func (s *sim) run() (float64, error) {
	s.decide()
	if s.ticks || s.grid != nil {
		s.add(&event{at: 1, kind: gone})
	}
	for n := 0; s.left > 0; n++ {
		if s.failed != nil {
			return 0, s.failed
		}
		if len(s.queue) == 0 || n > maxEvents {
			return 0, fmt.Errorf("the run stalled at %.0f s with %d jobs left", s.now, s.left)
		}
		ev := heap.Pop(&s.queue).(*event)
		s.now = ev.at
		s.handle(ev)
		for len(s.queue) > 0 && s.queue[0].at == s.now {
			s.handle(heap.Pop(&s.queue).(*event))
		}
		s.decide()
	}
	if s.failed != nil {
		return 0, s.failed
	}
	return s.end, nil
}

// handle applies one event.
func (s *sim) handle(ev *event) {
	switch ev.kind {
	case gone: // a tick: let balancing look again
		if s.left > 0 {
			s.add(&event{at: s.now + 1, kind: gone})
		}
		s.gridDue = true
		for _, h := range s.heads {
			h.due = true
		}
	case deliver:
		s.receive(ev.msg)
	case stagingIn, moving: // staged in, or arrived after a move
		r := ev.run
		if r.phase != ev.kind {
			return
		}
		word := "run"
		if ev.kind == moving {
			word = "arrive"
		}
		s.logf("%s j%d %s %s", word, r.job.index, r.label(), r.node.Name)
		s.enter(r, r.node)
	case running:
		n := ev.node
		if ev.version != n.version {
			return
		}
		s.advance(n)
		var done []*run
		for _, r := range n.runs {
			if r.left <= 1e-9*max(r.job.work, 1) {
				done = append(done, r)
			}
		}
		for _, r := range done {
			s.leave(r)
			s.logf("ran j%d %s %s", r.job.index, r.label(), n.Name)
			var t float64
			if r.head != nil {
				t = s.book(&n.cluster.lan, n.cluster.Link, r.job.out) - s.now // to the head; the WAN after
			} else {
				t = s.transfer(n.cluster, r.job.out)
			}
			r.phase, r.staged = stagingOut, r.staged+t
			s.add(&event{at: s.now + t, kind: stagingOut, run: r})
		}
		s.reschedule(n)
	case stagingOut:
		r := ev.run
		if r.phase != stagingOut {
			return
		}
		r.phase = gone
		delete(s.runs, s.key(r.head, r.job.index, r.attempt))
		wall := s.now - r.started
		u := sched.Usage{Work: r.job.work, Memory: r.job.memory,
			Wall: time.Duration(wall * 1e9), Stage: time.Duration(r.staged * 1e9)}
		if r.head != nil {
			s.ended(r, u)
			return
		}
		s.core.Finished(r.job.index, r.attempt, u, s.at(s.now))
		if !r.job.done {
			r.job.done = true
			s.left--
			s.end = s.now
			s.logf("done j%d a%d %s", r.job.index, r.attempt, r.node.Name)
		}
	}
}

// transfer books bytes over a cluster's links (the WAN first when the
// scenario has one) and returns how long the transfer takes from now.
func (s *sim) transfer(c *site, bytes int64) float64 {
	t := s.now
	book := func(free *float64, l Link) {
		if l.Bandwidth <= 0 && l.Latency <= 0 {
			return
		}
		begin := max(t, *free)
		d := 0.0
		if l.Bandwidth > 0 {
			d = float64(bytes) / l.Bandwidth
		}
		*free = begin + d
		t = begin + d + l.Latency
	}
	book(&c.wan, c.WAN)
	book(&c.lan, c.Link)
	return t - s.now
}

// enter puts a run on its node's CPUs.
func (s *sim) enter(r *run, n *machine) {
	s.advance(n)
	r.phase = running
	n.runs = append(n.runs, r)
	n.rss += r.job.memory
	if r.head != nil {
		r.head.core.Resident(r.job.index, r.attempt, r.job.memory)
		r.head.due = true
	} else {
		s.core.Resident(r.job.index, r.attempt, r.job.memory)
	}
	if n.Memory > 0 && n.rss > n.Memory+n.Swap && s.failed == nil {
		s.failed = fmt.Errorf("%w: swap exhausted on %s (%d MB resident, %d MB RAM + %d MB swap)",
			ErrNoFit, n.Name, n.rss>>20, n.Memory>>20, n.Swap>>20)
	}
	s.reschedule(n)
}

// leave takes a run off its node's CPUs.
func (s *sim) leave(r *run) {
	n := r.node
	s.advance(n)
	n.runs = slices.DeleteFunc(n.runs, func(x *run) bool { return x == r })
	n.rss -= r.job.memory
	s.reschedule(n)
}

// rate is how fast each run on n progresses (GHz): its share of the CPUs,
// slowed by thrashing when resident memory exceeds RAM.
func (n *machine) rate() float64 {
	if len(n.runs) == 0 {
		return 0
	}
	r := n.Speed * min(float64(n.CPUs)/float64(len(n.runs)), 1)
	if n.Memory > 0 && n.rss > n.Memory {
		r /= 1 + n.Thrash*float64(n.rss-n.Memory)/float64(n.Memory)
	}
	return r
}

// advance brings the work left of n's runs up to now.
func (s *sim) advance(n *machine) {
	if d := s.now - n.at; d > 0 {
		rate := n.rate()
		for _, r := range n.runs {
			r.left -= d * rate
		}
	}
	n.at = s.now
}

// reschedule plans n's next completion.
func (s *sim) reschedule(n *machine) {
	n.version++
	if len(n.runs) == 0 {
		return
	}
	least := math.Inf(1)
	for _, r := range n.runs {
		least = min(least, r.left)
	}
	s.add(&event{at: s.now + max(least, 0)/n.rate(), kind: running, node: n, version: n.version})
}

// decide feeds the core and carries out its actions (in a two-level
// run: the grid's, then each dispatcher's that has news).
func (s *sim) decide() {
	if s.grid != nil {
		s.decideGrid()
		return
	}
	for w := s.core.Wanted(); w > 0 && s.next < len(s.jobs); w-- {
		j := &s.jobs[s.next]
		s.core.Enqueue(sched.Job{Index: j.index, Params: j.params, Stage: j.in + j.out})
		s.next++
	}
	if s.next == len(s.jobs) {
		s.core.Close()
	}
	s.act(nil, s.core.Ready(s.at(s.now)))
}

// act carries out the actions of a core: the one core's (h nil), or
// the core of a cluster's dispatcher.
func (s *sim) act(h *head, acts []sched.Action) {
	for _, a := range acts {
		switch a := a.(type) {
		case sched.Start:
			j := &s.jobs[a.Job-1]
			n := s.nodes[a.Node]
			r := &run{job: j, attempt: a.Attempt, node: n, left: j.work, started: s.now, head: h}
			var t float64
			if h != nil {
				held := h.held[a.Job]
				if held == nil { // not the root's: cannot happen
					s.failed = fmt.Errorf("cluster %s started job %d, which it does not hold", h.site.Name, a.Job)
					return
				}
				r.root = held.attempt
				if !held.started {
					held.started = true
					s.up(h, 0, &message{kind: msgStarted, job: a.Job, attempt: held.attempt})
				}
				t = s.book(&n.cluster.lan, n.cluster.Link, j.in) - s.now // on the head already
			} else {
				t = s.transfer(n.cluster, j.in)
			}
			s.runs[s.key(h, a.Job, a.Attempt)] = r
			r.staged = t
			s.logf("start j%d %s %s", a.Job, r.label(), a.Node)
			s.add(&event{at: s.now + t, kind: stagingIn, run: r})
		case sched.Move:
			s.move(h, a)
		case sched.Cancel:
			k := s.key(h, a.Job, a.Attempt)
			r := s.runs[k]
			if r == nil {
				continue
			}
			if r.phase == running {
				s.leave(r)
			}
			r.phase = gone
			delete(s.runs, k)
			s.logf("cancel j%d %s %s", a.Job, r.label(), a.Node)
		case sched.Fail:
			if h != nil {
				s.failedHere(h, a)
				continue
			}
			s.failed = fmt.Errorf("job %d failed: %s", a.Job, a.Reason)
		}
	}
}

// move carries out a move: a running job stops, its memory crosses the
// link from its node, and it resumes on the other node.
func (s *sim) move(h *head, a sched.Move) {
	r := s.runs[s.key(h, a.Job, a.Attempt)]
	to := s.nodes[a.To]
	if r == nil || to == nil {
		return
	}
	s.logf("move j%d %s %s %s", a.Job, r.label(), a.From, a.To)
	switch r.phase {
	case stagingIn:
		r.node = to // not started yet: it starts there instead
	case running, moving:
		from := r.node
		if r.phase == running {
			s.leave(r)
		}
		// Inside a cluster over its link; to another cluster through
		// the root, over both clusters' links and WAN links in turn.
		hops := []Link{from.cluster.Link}
		if to.cluster != from.cluster {
			hops = append(hops, from.cluster.WAN, to.cluster.WAN, to.cluster.Link)
		}
		begin := max(s.now, from.nic)
		d, lat := 0.0, 0.0
		for _, l := range hops {
			if l.Bandwidth > 0 {
				d += float64(r.job.memory) / l.Bandwidth
			}
			lat += l.Latency
		}
		from.nic = begin + d
		r.node, r.phase = to, moving
		s.add(&event{at: begin + d + lat, kind: moving, run: r})
	}
}
