package head

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"orrery/batch"
	"orrery/clusterfile"
	"orrery/internal/atomicfile"
	"orrery/pilots"
	"orrery/protocol"
	"orrery/slurm"
)

// A Slurm cluster's nodes are pilots (`cluster NAME slurm ...`): batch
// jobs the head submits whose script starts `orrery agent` on the
// allocation, which joins the head's port as any node that joins by
// itself does. One goroutine (runPilots) owns the pilots: every poll it
// lists the experiment's pilots in the batch queue, asks package pilots
// how many more the work wants, and submits them; when the head's
// cluster ends it cancels what is left and waits until the batch queue
// holds none of them.
//
// What a pilot needs reaches it through files in the head's directory,
// never through the batch system, which shows a job's name, command line
// and comment to every user: the join token (join.token, 0600), and the
// head's address now (pilots/addr, read at every dial, so a pilot still
// queued or running when the head starts again finds its new port).
// The head's own executable is the pilot's: compute nodes must see the
// head's file system (the home directory on most clusters).

// PilotOptions tunes a Slurm cluster's pilots.
type PilotOptions struct {
	// System is the batch system; nil: Slurm's commands on this machine.
	System batch.System
	// Poll is the time between two looks at the batch queue (default
	// 5 s).
	Poll time.Duration
	// Wait is how long a pilot's agent tries to reach the head before it
	// gives up (default 5 minutes).
	Wait time.Duration
	// Unreached is how many pilots in a row that ended without joining
	// stop the submitting (default 2).
	Unreached int
}

// pilotDir is the directory, in the head's, of its pilots' address
// file, serial counter and output.
const pilotDir = "pilots"

// endWait bounds the wait for the batch queue to let go of the pilots
// cancelled at the end.
const endWait = time.Minute

// pilotRec is what the head knows of one of its pilots.
type pilotRec struct {
	id      batch.JobID
	name    string
	state   batch.State
	reason  string
	running bool // seen running in the batch queue
}

// pilotLoop is the state of the pilots' goroutine.
type pilotLoop struct {
	h       *Head
	c       clusterfile.Cluster
	sys     batch.System
	opts    PilotOptions
	pool    *pilots.Pool
	prefix  string
	dir     string
	addr    string // where pilots reach the head
	recs    map[batch.JobID]*pilotRec
	ended   []protocol.Pilot // the last few ended, newest last
	next    int              // the next pilot's serial number
	lost    int              // pilots in a row that ended without joining
	said    string           // the last listing error said
	gaveUp  bool             // the giving up was said
	perSlot int
}

// startPilots opens the pilots' directory and returns their loop, or
// nil (said in one line) when the cluster cannot have pilots.
func (h *Head) startPilots(addr, id string) *pilotLoop {
	c := h.cfg.Cluster
	if c.Slurm == nil {
		return nil
	}
	opts := h.cfg.Pilots
	if opts.System == nil {
		opts.System = slurm.New(slurm.Local)
	}
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Second
	}
	if opts.Wait <= 0 {
		opts.Wait = 5 * time.Minute
	}
	if opts.Unreached <= 0 {
		opts.Unreached = 2
	}
	fail := func(format string, args ...any) *pilotLoop {
		msg := fmt.Sprintf("cluster %s: no pilots: ", c.Name) + fmt.Sprintf(format, args...)
		h.log.Warn(msg)
		h.cfg.Status(msg)
		h.setBatch(msg)
		return nil
	}
	prefix, err := pilots.Prefix(id, c.Name)
	if err != nil {
		return fail("%v", err)
	}
	dir := filepath.Join(h.cfg.Dir, pilotDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail("%v", err)
	}
	if err := atomicfile.Write(dir, "addr", []byte(addr+"\n"), 0o600); err != nil {
		return fail("%v", err)
	}
	next := 1
	if b, err := os.ReadFile(filepath.Join(dir, "next")); err == nil {
		if v, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && v > 0 {
			next = v
		}
	}
	return &pilotLoop{h: h, c: c, sys: opts.System, opts: opts, prefix: prefix, dir: dir, addr: addr,
		pool: pilots.New(pilots.Config{Max: c.Slurm.Pilots}), recs: map[batch.JobID]*pilotRec{}, next: next,
		perSlot: max(c.Slurm.CPUs, 1)}
}

// run looks at the batch queue every poll, and at once when the root
// hands the head work, until ctx ends; then it cancels the pilots left
// and waits for the batch queue to let them go.
func (l *pilotLoop) run(ctx context.Context) {
	if l == nil {
		return
	}
	defer l.end()
	t := time.NewTicker(l.opts.Poll)
	defer t.Stop()
	for {
		l.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.h.pilotNews:
		}
	}
}

// round is one look at the batch queue and what it asks for.
func (l *pilotLoop) round(ctx context.Context) {
	now := time.Now()
	jobs, err := l.sys.Jobs(ctx, l.prefix)
	if err != nil {
		if ctx.Err() == nil {
			if msg := fmt.Sprintf("cluster %s: the batch queue: %v", l.c.Name, err); msg != l.said {
				l.h.cfg.Status(msg)
				l.said = msg
			}
			l.h.log.Warn("listing the pilots", "err", err)
		}
		return
	}
	l.said = ""
	mine := slices.DeleteFunc(jobs, func(j batch.Job) bool { return !pilots.Mine(l.prefix, j.Name) })
	l.note(mine)
	if l.stopped(ctx) {
		return
	}
	waiting, running := l.h.load()
	alive := len(l.recs)
	want := pilots.Want(waiting, running, l.perSlot, alive, l.h.closing())
	for n := l.pool.Decide(now, mine, want); n > 0; n-- {
		if !l.submit(ctx, now) {
			break
		}
	}
	if !l.stopped(ctx) {
		l.publish()
	}
}

// stopped reports whether the pool stopped submitting; the first time,
// it says why and cancels the pilots still queued, and once no pilot is
// left, a cluster with no other node stops its head for good.
func (l *pilotLoop) stopped(ctx context.Context) bool {
	err := l.pool.Err()
	if err == nil {
		return false
	}
	l.giveUp(ctx, err)
	l.publish()
	if len(l.recs) == 0 {
		l.h.noNodesLeft(fmt.Sprintf("cluster %s: %v", l.c.Name, err))
	}
	return true
}

// note takes the batch queue's list of the pilots: new ones, changes,
// and those gone from it, which ended. A pilot that ended without its
// agent ever joining counts towards Unreached.
func (l *pilotLoop) note(jobs []batch.Job) {
	seen := map[batch.JobID]bool{}
	for _, j := range jobs {
		if j.State == batch.Ended {
			continue
		}
		seen[j.ID] = true
		r := l.recs[j.ID]
		if r == nil {
			r = &pilotRec{id: j.ID, name: j.Name}
			l.recs[j.ID] = r
			if s, err := strconv.Atoi(strings.TrimPrefix(j.Name, l.prefix)); err == nil && s >= l.next {
				l.next = s + 1
			}
		}
		r.state, r.reason = j.State, j.Reason
		if j.State == batch.Running {
			r.running = true
		}
	}
	for id, r := range l.recs {
		if seen[id] {
			continue
		}
		delete(l.recs, id)
		joined := l.h.pilotJoined(r.name)
		reason := ""
		if !joined {
			reason = l.lastWords(r.name)
			if reason == "" && !r.running {
				reason = "ended before it ran"
			}
		}
		l.ended = append(l.ended, protocol.Pilot{ID: string(id), Name: r.name, State: protocol.PilotEnded, Reason: reason})
		if len(l.ended) > 8 {
			l.ended = l.ended[len(l.ended)-8:]
		}
		switch {
		case joined:
			l.lost = 0
		case r.running:
			l.lost++
			if l.lost >= l.opts.Unreached {
				why := "it said nothing"
				if reason != "" {
					why = reason
				}
				l.pool.GiveUp(fmt.Errorf("%d pilots in a row ended without reaching the head at %s (listen): the last said: %s", l.lost, l.addr, why))
			}
		}
	}
}

// lastWords is the last line a pilot wrote to its output, "" when none.
func (l *pilotLoop) lastWords(name string) string {
	f, err := os.Open(filepath.Join(l.dir, name+".out"))
	if err != nil {
		return ""
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > 64<<10 {
		f.Seek(st.Size()-64<<10, 0)
	}
	last := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			last = s
		}
	}
	return oneLine(last)
}

// submit submits one pilot; false when the batch system refused it.
func (l *pilotLoop) submit(ctx context.Context, now time.Time) bool {
	serial := l.next
	l.next++
	if err := atomicfile.Write(l.dir, "next", []byte(strconv.Itoa(l.next)+"\n"), 0o600); err != nil {
		l.pool.GiveUp(fmt.Errorf("its serial numbers: %w", err))
		return false
	}
	name := pilots.Name(l.prefix, serial)
	s := l.c.Slurm
	id, err := l.sys.Submit(ctx, batch.Request{Name: name, Script: l.script(), Partition: s.Partition,
		Account: s.Account, Time: s.Time, CPUs: s.CPUs, Memory: s.Memory,
		Output: filepath.Join(l.dir, name+".out"), Extra: s.Sbatch})
	if ctx.Err() != nil {
		return false
	}
	l.pool.Submitted(now, err)
	if err != nil {
		l.h.log.Warn("a pilot was refused", "err", err)
		if l.pool.Err() == nil {
			l.h.cfg.Status(fmt.Sprintf("cluster %s: a pilot was refused: %v (trying again later)", l.c.Name, err))
		}
		return false
	}
	l.recs[id] = &pilotRec{id: id, name: name, state: batch.Pending}
	l.h.log.Info("pilot submitted", "id", id, "name", name)
	return true
}

// giveUp says once why no more pilots are submitted, and cancels those
// still waiting in the batch queue: none of them would do better.
func (l *pilotLoop) giveUp(ctx context.Context, err error) {
	if l.gaveUp {
		return
	}
	l.gaveUp = true
	msg := fmt.Sprintf("cluster %s: %v", l.c.Name, err)
	l.h.log.Warn(msg)
	l.h.cfg.Status(msg)
	l.h.setBatch(msg)
	var pending []batch.JobID
	for id, r := range l.recs {
		if r.state == batch.Pending {
			pending = append(pending, id)
		}
	}
	if len(pending) > 0 {
		if err := l.sys.Cancel(ctx, pending...); err != nil {
			l.h.cfg.Status(fmt.Sprintf("cluster %s: cancelling its pilots: %v", l.c.Name, err))
		}
	}
}

// publish gives the head the pilots' states for its heartbeats.
func (l *pilotLoop) publish() {
	var out []protocol.Pilot
	for _, r := range l.recs {
		st := protocol.PilotPending
		if r.state == batch.Running {
			st = protocol.PilotRunning
			if l.h.pilotDraining(r.name) {
				st = protocol.PilotDraining
			}
		}
		out = append(out, protocol.Pilot{ID: string(r.id), Name: r.name, State: st, Reason: r.reason})
	}
	slices.SortFunc(out, func(a, b protocol.Pilot) int { return pilotOrder(a.ID, b.ID) })
	out = append(out, l.ended...)
	l.h.mu.Lock()
	l.h.pilots = out
	l.h.mu.Unlock()
}

// pilotOrder orders batch job IDs by number, then as text.
func pilotOrder(a, b string) int {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		switch {
		case x < y:
			return -1
		case x > y:
			return 1
		}
		return 0
	}
	return strings.Compare(a, b)
}

// end cancels every pilot of the experiment's cluster still in the batch
// queue and waits (at most endWait) until the queue lists none: nothing
// of Orrery's is left queued or running after the head.
func (l *pilotLoop) end() {
	ctx, cancel := context.WithTimeout(context.Background(), endWait)
	defer cancel()
	for first := true; ; first = false {
		jobs, err := l.sys.Jobs(ctx, l.prefix)
		if err != nil {
			if ctx.Err() == nil {
				l.h.cfg.Status(fmt.Sprintf("cluster %s: its pilots at the end: %v", l.c.Name, err))
			}
			return
		}
		var ids []batch.JobID
		for _, j := range jobs {
			if pilots.Mine(l.prefix, j.Name) && j.State != batch.Ended {
				ids = append(ids, j.ID)
			}
		}
		if len(ids) == 0 {
			l.note(nil)
			l.publish()
			return
		}
		if first || len(ids) > 0 {
			if err := l.sys.Cancel(ctx, ids...); err != nil && ctx.Err() == nil {
				l.h.cfg.Status(fmt.Sprintf("cluster %s: cancelling its pilots: %v", l.c.Name, err))
			}
		}
		select {
		case <-ctx.Done():
			l.h.cfg.Status(fmt.Sprintf("cluster %s: %d pilots still in the batch queue after %v: %s", l.c.Name, len(ids), endWait, joinIDs(ids)))
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func joinIDs(ids []batch.JobID) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = string(id)
	}
	return strings.Join(s, " ")
}

// script is a pilot's batch script: it runs the head's own orrery as an
// agent that reads the head's address and the join token from the
// head's directory, offers the allocation's CPUs and memory, and knows
// when Slurm will end it.
func (l *pilotLoop) script() []byte {
	self, err := os.Executable()
	if err != nil || l.h.cfg.Self != "" {
		self = l.h.cfg.Self
	}
	s := l.c.Slurm
	limit := "UNLIMITED"
	if s.Time > 0 {
		limit = strconv.FormatInt(int64(s.Time/time.Second), 10) + "s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# An Orrery pilot of cluster %s: one agent on this allocation, which joins the cluster's head.\n", l.c.Name)
	fmt.Fprintf(&b, "bin=%s\n", shellQuote(self))
	b.WriteString(`if [ ! -x "$bin" ]; then
  echo "orrery pilot: $bin is not on $(hostname): this cluster's compute nodes must see the head's file system" >&2
  exit 1
fi
`)
	fmt.Fprintf(&b, "left=$(squeue --noheader --jobs=\"$SLURM_JOB_ID\" --format=%%L 2>/dev/null) || left=\n")
	fmt.Fprintf(&b, "[ -n \"$left\" ] || left=%s\n", limit)
	b.WriteString(`set -- --cpus "${SLURM_CPUS_ON_NODE:-1}"
if [ -n "$SLURM_MEM_PER_NODE" ]; then set -- "$@" --memory "${SLURM_MEM_PER_NODE}M"; fi
`)
	fmt.Fprintf(&b, "exec \"$bin\" agent --connect-file %s --token-file %s --name \"$SLURM_JOB_NAME\" --wait %s --idle-exit %s --ends-in \"$left\" \"$@\"\n",
		shellQuote(filepath.Join(l.dir, "addr")), shellQuote(filepath.Join(l.h.cfg.Dir, JoinTokenFile)),
		l.opts.Wait, s.Idle)
	return []byte(b.String())
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// load is the head's work for its pilots: the root's attempts waiting
// in its queue, and those running on its nodes.
func (h *Head) load() (waiting, running int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	held := len(h.j.entries)
	return max(held-h.prog.Running, 0), h.prog.Running
}

// closing reports whether no more work will come to the head.
func (h *Head) closing() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

// pilotJoined reports whether a node of the name joined the head's port.
func (h *Head) pilotJoined(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.joinedNames[name]
}

// pilotDraining reports whether the node of the name drains, as the
// dispatcher's progress last said.
func (h *Head) pilotDraining(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.prog.PerNode {
		if n.Name == name {
			return n.Draining
		}
	}
	return false
}

// GaveUpFile is the file in a head's directory that says why the head
// stopped for good: a Slurm cluster that gets no pilots and has no other
// node. The root does not start such a head again in its run; a later
// run does, which removes the file.
const GaveUpFile = "gave-up"

// noNodesLeft stops the head for good when its cluster can have no node
// any more: it gets no pilots (why), has no node lines, and no node is
// joined. The root then runs the jobs the head held elsewhere.
func (h *Head) noNodesLeft(why string) {
	h.mu.Lock()
	none := len(h.spec.Nodes) == 0 && len(h.far) == 0 && len(h.joined) == 0
	h.mu.Unlock()
	if !none {
		return
	}
	if err := atomicfile.Write(h.cfg.Dir, GaveUpFile, []byte(oneLine(why)+"\n"), 0o600); err != nil {
		h.log.Warn("cannot record why the head stops", "err", err)
	}
	h.fail(fmt.Errorf("%w: %s", ErrNoNodes, why))
}

// ErrNoNodes is Run's error when the head's cluster can have no node:
// a Slurm cluster that gets no pilots and has no other node.
var ErrNoNodes = errors.New("the cluster has no node and can get none")

// setBatch notes why the cluster has no more pilots, for its
// heartbeats; its size is then what has joined, not the pilots it may
// have.
func (h *Head) setBatch(msg string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.batchErr == "" {
		if sl := h.cfg.Cluster.Slurm; sl != nil {
			h.cpus -= sl.Pilots * max(sl.CPUs, 1)
			h.slots -= sl.Pilots * max(sl.CPUs, 1)
		}
	}
	h.batchErr = msg
}
