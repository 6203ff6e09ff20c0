package sim

import (
	"fmt"
	"slices"

	"orrery/sched"
)

// A grid runs on two levels, as `orrery run` runs one: a coordinator
// (the root) whose sched.Grid shares the jobs between the clusters, and
// in each cluster a dispatcher (its head) whose own sched.Core places
// the jobs it is given on the cluster's nodes. They talk over the
// cluster's WAN link: each message (a job sent with its input, a
// withdraw, a stop, a report of a start or of an end with its output)
// is a transfer on that link, one at a time in the order sent, so
// messages arrive in order. A job's output reaches the root, and the
// job is done, when its report has crossed the WAN.

// twoLevel reports whether case c runs on two levels: a grid of several
// clusters under a policy that shares jobs through the coordinator
// (mec, orrery). A case whose jobs checkpoint stays on one level, one
// core over every node, since the coordinator does not move running
// jobs between clusters.
func twoLevel(pol sched.Policy, cls []*Cluster, c Case) bool {
	return len(cls) > 1 && pol.UsesGrid() && !c.Checkpoint
}

// head is a cluster's dispatcher in a two-level run.
type head struct {
	index int
	site  *site
	core  *sched.Core
	held  map[int64]*heldJob // the root's attempts it holds, by job
	due   bool               // its core has news to decide on
}

// heldJob is a root's attempt a head holds.
type heldJob struct {
	attempt int  // the grid's attempt
	started bool // reported started
}

// msgKind is what a message says.
type msgKind int

const (
	msgSend      msgKind = iota // to a head: a job for its queue (Send or Duplicate)
	msgWithdraw                 // to a head: take the attempt out of the queue
	msgStop                     // to a head: drop the attempt
	msgLast                     // to a head: no more jobs but moved ones
	msgStarted                  // to the root: the attempt started
	msgFinished                 // to the root: the attempt ended, with its output
	msgFailed                   // to the root: the head could not run it
	msgWithdrawn                // to the root: taken out of the queue as asked
)

// message is a message between the coordinator and a head.
type message struct {
	kind    msgKind
	head    *head
	job     int64
	attempt int // the grid's
	node    string
	usage   sched.Usage
	reason  string
}

// label names an attempt in the trace: a1 for the first, and in a
// two-level run a2.3 for the head's third attempt of the grid's second.
func (r *run) label() string {
	switch {
	case r.head == nil:
		return fmt.Sprintf("a%d", r.attempt)
	case r.attempt == 1:
		return fmt.Sprintf("a%d", r.root)
	}
	return fmt.Sprintf("a%d.%d", r.root, r.attempt)
}

// setupGrid sets up the coordinator and a dispatcher per cluster.
func (s *sim) setupGrid(cls []*Cluster, c Case, policy string) error {
	s.grid = sched.NewGrid(sched.GridConfig{Policy: s.pol, Duplicates: true})
	s.gridDue = true
	var all []Node
	for i, cl := range cls {
		per := perCPUOf(c, policy, i)
		core := sched.New(sched.Config{Policy: s.pol, Moves: s.pol.Balance, Duplicates: true, Restarts: true})
		core.AddCluster(sched.Cluster{Name: cl.Name, PerCPU: per, Bandwidth: cl.Link.Bandwidth, Latency: cl.Link.Latency,
			Pinned: cl.NoMigration || c.NoMigration})
		st := &site{Cluster: cl}
		h := &head{index: i + 1, site: st, core: core, held: map[int64]*heldJob{}}
		s.heads = append(s.heads, h)
		gc := sched.GridCluster{Name: cl.Name, WANBandwidth: cl.WAN.Bandwidth, WANLatency: cl.WAN.Latency,
			Pinned: cl.NoMigration || c.NoMigration}
		for _, n := range cl.Nodes {
			if s.nodes[n.Name] != nil {
				return fmt.Errorf("two nodes named %q", n.Name)
			}
			if n.Thrash == 0 {
				n.Thrash = 100
			}
			n.Speed = cmpOr(n.Speed, 1)
			n.CPUs = max(n.CPUs, 1)
			s.nodes[n.Name] = &machine{Node: n, cluster: st}
			core.AddNode(sched.Node{ID: n.Name, Cluster: cl.Name, CPUs: n.CPUs, Speed: n.Speed, Limit: n.Limit,
				Memory: n.Memory}, epoch)
			all = append(all, n)
			gc.CPUs += n.CPUs
			gc.Power += float64(n.CPUs) * n.Speed
			gc.Fastest = max(gc.Fastest, n.Speed)
			switch {
			case n.Limit > 0:
				gc.Slots += n.Limit
			case per > 0:
				gc.Slots += max(int(per*float64(n.CPUs)+0.5), 1)
			default:
				gc.Slots += n.CPUs
			}
		}
		s.grid.AddCluster(gc, epoch)
	}
	s.bound = bound(s.jobs, all)
	return nil
}

// book books a transfer of bytes over a link, after what it carries
// already, and returns when it arrives.
func (s *sim) book(free *float64, l Link, bytes int64) float64 {
	if l.Bandwidth <= 0 && l.Latency <= 0 {
		return s.now
	}
	begin := max(s.now, *free)
	d := 0.0
	if l.Bandwidth > 0 {
		d = float64(bytes) / l.Bandwidth
	}
	*free = begin + d
	return begin + d + l.Latency
}

// down sends a message, and bytes with it, from the coordinator to a
// head.
func (s *sim) down(h *head, bytes int64, m *message) {
	m.head = h
	s.add(&event{at: s.book(&h.site.wan, h.site.WAN, bytes), kind: deliver, msg: m})
}

// up sends a message, and bytes with it, from a head to the coordinator.
func (s *sim) up(h *head, bytes int64, m *message) { s.down(h, bytes, m) }

// decideGrid feeds the grid, carries out its actions, and then those of
// each dispatcher with news.
func (s *sim) decideGrid() {
	now := s.at(s.now)
	for w := s.grid.Wanted(); w > 0 && s.next < len(s.jobs); w-- {
		j := &s.jobs[s.next]
		s.grid.Enqueue(sched.Job{Index: j.index, Params: j.params, Stage: j.in + j.out})
		s.next++
		s.gridDue = true
	}
	if s.next == len(s.jobs) {
		s.grid.Close()
	}
	if s.gridDue {
		s.gridDue = false
		for _, a := range s.grid.Tick(now) {
			s.coordinate(a)
		}
	}
	for _, h := range s.heads {
		if h.due {
			h.due = false
			s.act(h, h.core.Ready(now))
		}
	}
}

// headOf finds a cluster's dispatcher.
func (s *sim) headOf(cluster string) *head {
	i := slices.IndexFunc(s.heads, func(h *head) bool { return h.site.Name == cluster })
	return s.heads[i]
}

// coordinate carries out a grid's action: a message to a head.
func (s *sim) coordinate(a sched.GridAction) {
	switch a := a.(type) {
	case sched.Send:
		s.logf("send j%d a%d %s", a.Job, a.Attempt, a.Cluster)
		s.down(s.headOf(a.Cluster), s.jobs[a.Job-1].in, &message{kind: msgSend, job: a.Job, attempt: a.Attempt})
	case sched.Duplicate:
		s.logf("duplicate j%d a%d %s", a.Job, a.Attempt, a.Cluster)
		s.down(s.headOf(a.Cluster), s.jobs[a.Job-1].in, &message{kind: msgSend, job: a.Job, attempt: a.Attempt})
	case sched.Withdraw:
		s.logf("withdraw j%d a%d %s", a.Job, a.Attempt, a.Cluster)
		s.down(s.headOf(a.Cluster), 0, &message{kind: msgWithdraw, job: a.Job, attempt: a.Attempt})
	case sched.Stop:
		s.logf("stop j%d a%d %s", a.Job, a.Attempt, a.Cluster)
		s.down(s.headOf(a.Cluster), 0, &message{kind: msgStop, job: a.Job, attempt: a.Attempt})
	case sched.Last:
		s.logf("last %s", a.Cluster)
		s.down(s.headOf(a.Cluster), 0, &message{kind: msgLast})
	case sched.Fail:
		s.failed = fmt.Errorf("job %d failed: %s", a.Job, a.Reason)
	}
}

// receive handles a message that arrived.
func (s *sim) receive(m *message) {
	h, now := m.head, s.at(s.now)
	name := h.site.Name
	switch m.kind {
	case msgSend:
		if h.held[m.job] != nil {
			h.core.Withdraw(m.job, now) // an older attempt of it: this one replaces it
		}
		j := &s.jobs[m.job-1]
		h.core.Enqueue(sched.Job{Index: j.index, Params: j.params, Stage: j.in + j.out})
		h.held[m.job] = &heldJob{attempt: m.attempt}
		h.due = true
	case msgWithdraw:
		// An attempt that started already stays: its start is on its way.
		if hj := h.held[m.job]; hj != nil && hj.attempt == m.attempt && !hj.started {
			h.core.Withdraw(m.job, now)
			delete(h.held, m.job)
			h.due = true
			s.logf("withdrawn j%d a%d %s", m.job, m.attempt, name)
			s.up(h, 0, &message{kind: msgWithdrawn, job: m.job, attempt: m.attempt})
		}
	case msgStop:
		if hj := h.held[m.job]; hj != nil && hj.attempt == m.attempt {
			h.core.Withdraw(m.job, now) // its running attempts are cancelled
			delete(h.held, m.job)
			h.due = true
		}
	case msgLast:
		h.core.Close()
		h.due = true
	case msgStarted:
		s.grid.Started(name, m.job, m.attempt, now)
		s.gridDue = true
	case msgFinished:
		if s.grid.Finished(name, m.job, m.attempt, m.usage, now) {
			j := &s.jobs[m.job-1]
			if !j.done {
				j.done = true
				s.left--
				s.end = s.now
				s.logf("done j%d a%d %s", m.job, m.attempt, m.node)
			}
		}
		s.gridDue = true
	case msgFailed:
		s.grid.SystemFailure(name, m.job, m.attempt, m.reason, now)
		s.gridDue = true
	case msgWithdrawn:
		s.grid.Withdrawn(name, m.job, m.attempt, now)
		s.gridDue = true
	}
}

// ended is the end of a head's attempt, its output on the head: the
// head's core hears of it, and the root, if the attempt is still the
// one it wants, gets the output over the WAN.
func (s *sim) ended(r *run, u sched.Usage) {
	h := r.head
	h.core.Finished(r.job.index, r.attempt, u, s.at(s.now))
	h.due = true
	if hj := h.held[r.job.index]; hj != nil && hj.attempt == r.root {
		delete(h.held, r.job.index)
		s.up(h, r.job.out, &message{kind: msgFinished, job: r.job.index, attempt: r.root, node: r.node.Name, usage: u})
	}
}

// failedHere is a head's core giving up on a job: a system failure, for
// the root to send it elsewhere.
func (s *sim) failedHere(h *head, f sched.Fail) {
	hj := h.held[f.Job]
	if hj == nil {
		return
	}
	delete(h.held, f.Job)
	s.up(h, 0, &message{kind: msgFailed, job: f.Job, attempt: hj.attempt, reason: f.Reason})
}
