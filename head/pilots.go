package head

import (
	"bufio"
	"cmp"
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
	"orrery/dispatch"
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
// The head's own executable is the pilot's where compute nodes see the
// head's file system (the home directory on most clusters); where they
// do not, the script fetches the executable and the join token from the
// head's port for a credential of the batch system's (boot.go).

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
	// JoinWait is how long a pilot may run without its agent joining
	// before the head cancels it as one that cannot reach it (default:
	// the cluster's join-wait).
	JoinWait time.Duration
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
	running bool      // seen running in the batch queue
	since   time.Time // when it was first seen running
	ran     bool      // its agent was seen with attempts started on it
	gaveUp  bool      // cancelled: it ran JoinWait without its agent joining
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
	addr    string            // where pilots reach the head
	caPEM   string            // the head's CA certificate, which a pilot that fetches from the port checks it against
	creds   batch.Credentials // nil: the batch system has none, and pilots cannot fetch
	recs    map[batch.JobID]*pilotRec
	ended   []protocol.Pilot // the last few ended, newest last
	next    int              // the next pilot's serial number
	lost    int              // pilots in a row that ended without joining
	idle    int              // pilots in a row that joined and ended with work waiting and none started on them
	fullAt  time.Time        // when the head last held as many attempts as it asked the root for
	said    string           // the last listing error said
	gaveUp  bool             // the giving up was said
	perSlot int
}

// startPilots opens the pilots' directory and returns their loop, or
// nil (said in one line) when the cluster cannot have pilots.
func (h *Head) startPilots(addr, id, caPEM string) *pilotLoop {
	c := h.cfg.Cluster
	if c.Slurm == nil {
		return nil
	}
	opts := h.cfg.Pilots
	opts.System = h.batchSystem()
	if opts.Poll <= 0 {
		opts.Poll = 5 * time.Second
	}
	if opts.Wait <= 0 {
		opts.Wait = 5 * time.Minute
	}
	if opts.Unreached <= 0 {
		opts.Unreached = 2
	}
	if opts.JoinWait <= 0 {
		opts.JoinWait = cmp.Or(c.Slurm.JoinWait, clusterfile.DefaultPilotJoinWait)
	}
	fail := func(format string, args ...any) *pilotLoop {
		msg := fmt.Sprintf("cluster %s: no pilots: ", c.Name) + fmt.Sprintf(format, args...)
		h.log.Warn(msg)
		h.cfg.Status(msg)
		h.setBatch(msg)
		h.noNodesLeft(msg)
		return nil
	}
	prefix, err := pilots.Prefix(id, c.Name)
	if err != nil {
		return fail("%v", err)
	}
	dir := filepath.Join(h.cfg.Dir, pilotDir)
	if err := prepareDir(dir); err != nil {
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
	creds, _ := opts.System.(batch.Credentials)
	return &pilotLoop{h: h, c: c, sys: opts.System, opts: opts, prefix: prefix, dir: dir, addr: addr, caPEM: caPEM, creds: creds,
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
	if err != nil && batch.Permanent(err) && ctx.Err() == nil {
		// squeue missing: there is no batch system here to ask.
		l.pool.GiveUp(fmt.Errorf("no pilots: %w", err))
		l.stopped(ctx)
		return
	}
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
	l.unjoined(ctx, now)
	if l.stopped(ctx) {
		return
	}
	waiting, running, held, depth := l.h.load()
	if held >= depth {
		l.fullAt = now
	}
	alive := len(l.recs)
	want := pilots.Want(waiting, running, l.perSlot, alive, l.ending(now, held, depth))
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

// unjoined cancels the pilots that have run for JoinWait without their
// agent joining the head: they cannot reach it (a listen address the
// compute nodes cannot reach, a firewall), and when they end they count
// towards giving up, with their own last words.
func (l *pilotLoop) unjoined(ctx context.Context, now time.Time) {
	var ids []batch.JobID
	for id, r := range l.recs {
		if r.running && !r.gaveUp && now.Sub(r.since) >= l.opts.JoinWait && !l.h.pilotJoined(r.name) {
			r.gaveUp = true
			ids = append(ids, id)
			l.h.log.Warn("a pilot has not reached the head: cancelling it", "id", id, "name", r.name, "after", l.opts.JoinWait)
		}
	}
	if len(ids) > 0 {
		if err := l.sys.Cancel(ctx, ids...); err != nil && ctx.Err() == nil {
			l.h.cfg.Status(fmt.Sprintf("cluster %s: cancelling its pilots: %v", l.c.Name, err))
		}
	}
}

// rootDry is how long the root must leave the head short of the
// attempts it asks for before the head takes it that the root has no
// more: the sweep is near its end.
const rootDry = 10 * time.Second

// ending reports whether no more work is coming beyond what the head
// holds: the root ended the experiment, or, having once filled the
// head's queue, has left it short for rootDry. New pilots then only
// replace those gone.
func (l *pilotLoop) ending(now time.Time, held, depth int) bool {
	if l.h.closing() {
		return true
	}
	return held < depth && !l.fullAt.IsZero() && now.Sub(l.fullAt) >= rootDry
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
		if j.State == batch.Running && !r.running {
			r.running, r.since = true, time.Now()
		}
		if l.h.pilotStarted(r.name) > 0 {
			r.ran = true
		}
	}
	for id, r := range l.recs {
		if seen[id] {
			continue
		}
		delete(l.recs, id)
		joined := l.h.pilotJoined(r.name)
		reason := ""
		ran := r.running
		if !joined {
			reason = l.lastWords(r.name)
			// One that ran and ended between two looks was never seen
			// running, but wrote its output.
			if _, err := os.Stat(filepath.Join(l.dir, r.name+".out")); err == nil {
				ran = true
			}
			if reason == "" && !ran {
				reason = "ended before it ran"
			}
		}
		l.ended = append(l.ended, protocol.Pilot{ID: string(id), Name: r.name, State: protocol.PilotEnded, Reason: reason})
		if len(l.ended) > 8 {
			l.ended = l.ended[len(l.ended)-8:]
		}
		waiting, _, _, _ := l.h.load()
		switch {
		case joined && !r.ran && waiting > 0:
			// It left with work waiting and none started on it: the
			// jobs do not fit in its time (or its memory).
			l.lost = 0
			l.idle++
			if l.idle >= l.opts.Unreached {
				l.pool.GiveUp(l.tooShort(waiting))
			}
		case joined:
			l.lost, l.idle = 0, 0
		case ran:
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

// tooShort is why pilots that joined took none of the jobs waiting.
func (l *pilotLoop) tooShort(waiting int) error {
	if t := l.c.Slurm.Time; t > 0 {
		return fmt.Errorf("time %s is shorter than any job is expected to take: %d pilots in a row left without a job while %d waited; give the pilots more time",
			slurmTime(t), l.idle, waiting)
	}
	return fmt.Errorf("%d pilots in a row left without a job while %d waited: the jobs fit neither their time left nor their memory", l.idle, waiting)
}

// slurmTime writes d as Slurm does: [D-]HH:MM:SS.
func slurmTime(d time.Duration) string {
	s := int64(d / time.Second)
	days, h, m, sec := s/86400, s/3600%24, s/60%60, s%60
	if days > 0 {
		return fmt.Sprintf("%d-%02d:%02d:%02d", days, h, m, sec)
	}
	return fmt.Sprintf("%02d:%02d:%02d", h, m, sec)
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
		// Slurm's own lines ("slurmstepd: error: *** JOB 7 ON n1
		// CANCELLED ...") say how it ended, not why.
		if s := strings.TrimSpace(sc.Text()); s != "" && !strings.HasPrefix(s, "slurmstepd") {
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
	l.publish() // its fetches from the head's port are served from now
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
// of Orrery's is left queued or running after the head. A listing that
// fails is tried again; if the batch queue cannot be listed at all, the
// pilots the loop knows of are cancelled.
func (l *pilotLoop) end() {
	ctx, cancel := context.WithTimeout(context.Background(), endWait)
	defer cancel()
	var cancelled time.Time
	var lastErr error
	for {
		jobs, err := l.sys.Jobs(ctx, l.prefix)
		var ids []batch.JobID
		if err == nil {
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
		} else {
			lastErr = err
			for id := range l.recs {
				ids = append(ids, id)
			}
			if batch.Permanent(err) || len(ids) == 0 && l.next == 1 {
				return // no batch system here, or no pilot was ever submitted
			}
		}
		// scancel again now and then: a pilot submitted as the first
		// was cancelled, or a cancel the controller lost.
		if len(ids) > 0 && time.Since(cancelled) >= 5*time.Second {
			if err := l.sys.Cancel(ctx, ids...); err != nil && ctx.Err() == nil {
				l.h.log.Warn("cancelling the pilots", "err", err)
			}
			cancelled = time.Now()
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("cluster %s: %d pilots may still be in the batch queue after %v: %s", l.c.Name, len(ids), endWait, joinIDs(ids))
			if lastErr != nil {
				msg += fmt.Sprintf(" (the batch queue: %v)", lastErr)
			}
			l.h.cfg.Status(msg)
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

// script is a pilot's batch script: it runs orrery as an agent that
// offers the allocation's CPUs and memory and knows when Slurm will end
// it. Where the compute node sees the head's file system, that is the
// head's own executable, which reads the head's address and the join
// token from the head's directory; elsewhere the script fetches both
// from the head's port (boot.go), each for a fresh credential of the
// batch system's.
func (l *pilotLoop) script() []byte {
	s := l.c.Slurm
	limit := "UNLIMITED"
	if s.Time > 0 {
		limit = strconv.FormatInt(int64(s.Time/time.Second), 10) + "s"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "#!/bin/sh\n# An Orrery pilot of cluster %s: one agent on this allocation, which joins the cluster's head.\n", l.c.Name)
	fmt.Fprintf(&b, "bin=%s\ntok=%s\n", shellQuote(l.h.executable()), shellQuote(filepath.Join(l.h.cfg.Dir, JoinTokenFile)))
	fmt.Fprintf(&b, "left=$(squeue --noheader --jobs=\"$SLURM_JOB_ID\" --format=%%L 2>/dev/null) || left=\n")
	fmt.Fprintf(&b, "[ -n \"$left\" ] || left=%s\n", limit)
	b.WriteString(`set -- --cpus "${SLURM_CPUS_ON_NODE:-1}"
if [ -n "$SLURM_MEM_PER_NODE" ]; then set -- "$@" --memory "${SLURM_MEM_PER_NODE}M"; fi
`)
	fmt.Fprintf(&b, "set -- \"$@\" --name \"$SLURM_JOB_NAME\" --wait %s --idle-exit %s --ends-in \"$left\"\n", l.opts.Wait, s.Idle)
	fmt.Fprintf(&b, "if [ -x \"$bin\" ] && [ -r \"$tok\" ]; then\n  exec \"$bin\" agent --connect-file %s --token-file \"$tok\" \"$@\"\nfi\n",
		shellQuote(filepath.Join(l.dir, "addr")))
	if l.creds == nil {
		b.WriteString(`echo "orrery pilot: $bin or $tok is not on $(hostname): this cluster's compute nodes must see the head's file system" >&2
exit 1
`)
		return []byte(b.String())
	}
	url := "https://" + l.addr
	tries := max(int(l.opts.Wait/(5*time.Second)), 1)
	fmt.Fprintf(&b, `# This node does not see the head's file system: fetch orrery and the
# join token from the head's port, checked against the head's CA, each
# for a fresh credential of this job's.
for c in curl %[1]s; do
  command -v "$c" >/dev/null || { echo "orrery pilot: $(hostname) sees neither $bin nor $tok, and has no $c to fetch them from the head with" >&2; exit 1; }
done
umask 077
d=$(mktemp -d "${TMPDIR:-/tmp}/orrery-pilot.XXXXXX") || exit 1
trap 'rm -rf "$d"' EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP
cat > "$d/ca.pem" <<'ORRERY_CA'
%[2]sORRERY_CA
fetch() {
  n=0
  while :; do
    code=$(%[3]s | curl -sS --cacert "$d/ca.pem" --connect-timeout 20 --max-time 900 --data-binary @- -o "$d/$1" -w '%%{http_code}' %[4]s"/pilot/$1") || code=000
    [ "$code" = 200 ] && return 0
    n=$((n+1))
    case $code in
    000|5*) [ $n -lt %[5]d ] && { sleep 5; continue; } ;;
    *) [ $n -lt 3 ] && { sleep 5; continue; } ;;
    esac
    echo "orrery pilot: cannot fetch $1 from the head at %[6]s (HTTP $code): $(head -c 300 "$d/$1" 2>/dev/null | head -n 1)" >&2
    return 1
  done
}
fetch orrery && fetch token || exit 1
chmod 700 "$d/orrery"
echo "orrery pilot: $(hostname) does not see the head's file system: running orrery as fetched from the head" >&2
"$d/orrery" agent --connect %[6]s --token-file "$d/token" "$@"
`, shellQuote(strings.Fields(l.creds.CredentialCommand())[0]), l.caPEM, l.creds.CredentialCommand(), shellQuote(url), tries, shellQuote(l.addr))
	return []byte(b.String())
}

// batchSystem is the head's batch system: the one its options give, or
// Slurm's commands on this machine.
func (h *Head) batchSystem() batch.System {
	if h.cfg.Pilots.System != nil {
		return h.cfg.Pilots.System
	}
	return slurm.New(slurm.Local)
}

// shellQuote quotes s for sh.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// load is the head's work for its pilots: the root's attempts waiting
// in its queue and running on its nodes, all it holds, and how many it
// asks the root for.
func (h *Head) load() (waiting, running, held, depth int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	held = len(h.j.entries)
	return max(held-h.prog.Running, 0), h.prog.Running, held, h.depthLocked()
}

// pilotNode is the node of the name as the head's dispatcher's
// progress last said; zero when it has none.
func (h *Head) pilotNode(name string) dispatch.NodeProgress {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range h.prog.PerNode {
		if n.Name == name {
			return n
		}
	}
	return dispatch.NodeProgress{}
}

// pilotStarted is how many attempts the head's dispatcher started on
// the node of the name.
func (h *Head) pilotStarted(name string) int64 { return h.pilotNode(name).Started }

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

// pilotDraining reports whether the node of the name drains.
func (h *Head) pilotDraining(name string) bool { return h.pilotNode(name).Draining }

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
	none := len(h.spec.Nodes) == 0 && len(h.far) == 0 && len(h.joined) == 0 && !h.gaveUp
	if none {
		h.gaveUp = true
	}
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
