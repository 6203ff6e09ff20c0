package dispatch

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// Recorder is a Node that must hear when the root has taken an
// attempt's end (a cluster head, which keeps each end in its journal
// until then, so an end lost with a connection is sent again and one
// the root has is never held for ever). A transport that carries heads
// implements it; the dispatcher calls it once the end is in the store,
// also for an end it refused as stale.
type Recorder interface {
	Recorded(job int64, attempt int)
}

// recorded tells a head, once the batch is in the store, that the end
// of an attempt it reported was taken.
func (r *runState) recorded(nc *nodeConn, job int64, attempt int) {
	if !nc.head {
		return
	}
	if j := r.jobs[job]; j != nil && j.runs[attempt] != "" && j.runs[attempt] != nc.id {
		return // another node's attempt, still running there: not taken
	}
	n := nc.link
	rec, ok := n.(Recorder)
	if !ok {
		return
	}
	r.afterApply = append(r.afterApply, func() {
		if nc.link == n {
			rec.Recorded(job, attempt)
		}
	})
}

// headBeat takes a head's view of its cluster from its heartbeat: how
// many of the root's attempts it wants to hold now becomes its job
// limit.
func (r *runState) headBeat(nc *nodeConn, cs *protocol.ClusterStatus) {
	if !nc.head || cs == nil {
		return
	}
	cpus := clampInt(cs.CPUs, 1, maxCPUs)
	limit := clampInt(cs.Depth, 1, maxHeadDepth)
	slots := clampInt(cs.Slots, 0, maxHeadDepth)
	if slots != nc.status.Slots {
		nc.limit = 0 // tell the core
	}
	nc.beaten = true
	if b := Printable(cs.Batch, maxBatchWord); b != "" && b != nc.status.Batch && r.now().Sub(nc.batchSaid) >= batchSayEvery {
		// The head's reason for submitting no more pilots, which names
		// its cluster; a reason that keeps changing is said at most
		// every batchSayEvery.
		nc.batchSaid = r.now()
		r.d.log.Warn(b)
	}
	nc.status = protocol.ClusterStatus{Nodes: clampInt(cs.Nodes, 0, maxCPUs), CPUs: clampInt(cs.CPUs, 0, maxCPUs), Slots: slots,
		Running: clampInt(cs.Running, 0, maxHeadDepth), Queued: clampInt(cs.Queued, 0, maxHeadDepth), Depth: clampInt(cs.Depth, 0, maxHeadDepth),
		Pilots: boundPilots(cs.Pilots), Batch: Printable(cs.Batch, maxBatchWord)}
	if limit != nc.limit || cpus != nc.cpus {
		nc.limit, nc.cpus = limit, cpus
		r.core.AddNode(r.schedNode(nc), r.now())
	}
}

// Bounds on a head's word on its pilots: how many it lists, and the
// length of each text.
const (
	maxPilots    = 64
	maxPilotWord = 256
	maxBatchWord = 1024
)

// boundPilots keeps at most maxPilots of a head's pilots, each text
// clipped.
func boundPilots(ps []protocol.Pilot) []protocol.Pilot {
	out := make([]protocol.Pilot, 0, min(len(ps), maxPilots))
	for _, p := range ps[:min(len(ps), maxPilots)] {
		st := p.State
		switch st {
		case protocol.PilotPending, protocol.PilotRunning, protocol.PilotDraining, protocol.PilotEnded:
		default:
			st = protocol.PilotPending
		}
		out = append(out, protocol.Pilot{ID: Printable(p.ID, maxPilotWord), Name: Printable(p.Name, maxPilotWord),
			State: st, Reason: Printable(p.Reason, maxPilotWord)})
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// batchSayEvery is the shortest time between two log lines of one
// head's reason to submit no more pilots.
const batchSayEvery = time.Minute

// Printable cuts s to at most n bytes, on a rune's boundary, each control
// or format character (an escape sequence, a line break, a bidirectional
// override) made a space and invalid UTF-8 dropped: a head's words are
// printed on the user's terminal.
func Printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) > n {
		s = s[:n]
		for len(s) > 0 && !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}

// maxHeadDepth bounds how many of the root's attempts one head may hold.
const maxHeadDepth = 1 << 16

// adoptable finds, among the attempts a head reports it still holds when
// it joins, those the root may take back as running rather than cancel:
// a root that was stopped (killed, even) and started again recorded them
// interrupted, while the head kept working on them. An attempt is
// adoptable when it is its job's latest, the job is still pending, and
// it was this node's, and interrupted. An attempt the root was
// withdrawing from the head's queue is among them: it stays recorded
// running until the head answers (its end "cancelled" when it gave it
// back, which is recorded then, so a cancelled attempt never ran
// there), so a root killed in between left it interrupted, and the head
// may have begun it meanwhile; when the head had given it back, its end
// says so and the job runs again. Other attempts are cancelled as
// usual.
func (r *runState) adoptable(id string, reg protocol.Register) map[attemptKey]*liveJob {
	if !reg.Head || len(reg.Running) == 0 {
		return nil
	}
	out := map[attemptKey]*liveJob{}
	for _, a := range reg.Running {
		if j := r.jobs[a.Job]; j != nil && len(j.runs) > 0 {
			continue // it runs elsewhere in this run
		}
		var job *store.Job
		err := r.d.cfg.Store.Jobs(r.ctx, r.exp.ID, store.Pending, a.Job-1, 1, func(j store.Job) error {
			if j.Index == a.Job {
				job = &j
			}
			return nil
		})
		if err != nil || job == nil || job.Attempts != a.Attempt {
			continue
		}
		mine := false
		r.d.cfg.Store.Attempts(r.ctx, r.exp.ID, a.Job, func(at store.Attempt) error {
			if at.N == a.Attempt {
				mine = at.Node == id && at.State == store.AttemptInterrupted
			}
			return nil
		})
		if mine {
			out[attemptKey{a.Job, a.Attempt}] = &liveJob{values: job.Values}
		}
	}
	return out
}

// adopt takes the adoptable attempts in as running on nc's node.
func (r *runState) adopt(nc *nodeConn, adopted map[attemptKey]*liveJob, running []protocol.AttemptRef) {
	now := r.now()
	for _, key := range slices.SortedFunc(maps.Keys(adopted), func(a, b attemptKey) int { return cmp.Compare(a.job, b.job) }) {
		lj := adopted[key]
		if old := r.jobs[key.job]; old != nil {
			r.core.Withdraw(key.job, now) // queued again by this run: it runs on the head instead
		}
		lj.runs = map[int]string{key.attempt: nc.id}
		r.jobs[key.job] = lj
		r.began[key] = now
		r.batch.Start(r.exp.ID, key.job, key.attempt, nc.id, now)
		r.prog.Changes++
		r.startedIn(nc.id, key.job, key.attempt)
		r.batch.Event(r.exp.ID, "attempt.adopted", key.job, nc.id, fmt.Sprintf("attempt %d still ran on the head", key.attempt))
		r.core.Adopt(sched.Job{Index: key.job, Params: params(lj.values), Attempts: key.attempt}, key.attempt, nc.id, now)
	}
	if gd, ok := r.core.(*gridDecider); ok {
		// What already left the head's queue for a node is not taken
		// back to be sent elsewhere.
		for _, a := range running {
			if a.Started && adopted[attemptKey{a.Job, a.Attempt}] != nil {
				gd.Started(a.Job, a.Attempt, now)
			}
		}
	}
}

// Await has Run hold every decision until a head of each of clusters has
// joined, or within has passed: a root started again after it stopped
// lets the heads that kept its attempts come back and be adopted before
// it hands their jobs to others. Call it before Run.
func (d *Dispatcher) Await(clusters []string, within time.Duration) {
	d.await = append(d.await, clusters...)
	d.awaitFor = within
}

// holding reports whether the run still waits for heads (see Await).
func (r *runState) holding(now time.Time) bool {
	if len(r.awaiting) == 0 {
		return false
	}
	if now.After(r.awaitUntil) {
		r.awaiting = nil
		return false
	}
	return true
}

// LoseCluster says a cluster is lost for good (its head's machine cannot
// be reached, or its head cannot be started again): the attempts its
// head holds run elsewhere, and a head that comes back later is taken as
// new.
func (d *Dispatcher) LoseCluster(cluster, reason string) {
	d.send(event{lose: cluster, err: errors.New(reason)})
}

// loseCluster carries out LoseCluster.
func (r *runState) loseCluster(cluster string, why error) {
	for _, id := range slices.Sorted(maps.Keys(r.nodes)) {
		if nc := r.nodes[id]; nc.head && nc.cluster == cluster {
			r.lost(id, fmt.Sprintf("cluster %s lost: %v", cluster, why))
		}
	}
}

// keepHeads keeps the heads whose connection dropped less than
// HeadTimeout ago alive in the core: their clusters go on with what they
// hold through a cut.
func (r *runState) keepHeads(now time.Time) {
	timeout := r.d.cfg.HeadTimeout
	if timeout <= 0 {
		timeout = time.Hour
	}
	for id, nc := range r.nodes {
		// Cut: its connection dropped, or it stalls (a cut on the way
		// that no end has noticed yet).
		last := nc.heard
		if nc.downSince.After(last) {
			last = nc.downSince
		}
		if nc.head && now.Sub(last) < timeout {
			r.core.Heartbeat(id, now)
		}
	}
}
