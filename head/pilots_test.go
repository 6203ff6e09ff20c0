package head

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/batch"
	"orrery/clusterfile"
	"orrery/dispatch"
	"orrery/protocol"
)

// fakeBatch is a batch system in memory: submitted jobs wait until the
// test runs or ends them.
type fakeBatch struct {
	mu       sync.Mutex
	n        int
	jobs     []batch.Job
	requests []batch.Request
	refuse   error
	cancels  []batch.JobID
}

func (f *fakeBatch) Submit(ctx context.Context, r batch.Request) (batch.JobID, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return "", f.refuse
	}
	f.n++
	id := batch.JobID(fmt.Sprint(100 + f.n))
	f.jobs = append(f.jobs, batch.Job{ID: id, Name: r.Name, State: batch.Pending, Reason: "Priority"})
	f.requests = append(f.requests, r)
	return id, nil
}

func (f *fakeBatch) Jobs(ctx context.Context, prefix string) ([]batch.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []batch.Job
	for _, j := range f.jobs {
		if strings.HasPrefix(j.Name, prefix) {
			out = append(out, j)
		}
	}
	return out, nil
}

func (f *fakeBatch) Cancel(ctx context.Context, ids ...batch.JobID) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancels = append(f.cancels, ids...)
	for _, id := range ids {
		f.set(id, batch.Ended)
	}
	return nil
}

// set sets a job's state; an ended job leaves the list, as it leaves
// squeue's.
func (f *fakeBatch) set(id batch.JobID, st batch.State) {
	for i, j := range f.jobs {
		if j.ID == id {
			if st == batch.Ended {
				f.jobs = append(f.jobs[:i], f.jobs[i+1:]...)
				return
			}
			f.jobs[i].State, f.jobs[i].Reason = st, ""
			return
		}
	}
}

func (f *fakeBatch) runAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		f.set(j.ID, batch.Running)
	}
}

func (f *fakeBatch) count() (pending, running int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, j := range f.jobs {
		if j.State == batch.Pending {
			pending++
		} else {
			running++
		}
	}
	return
}

// pilotHead is a head of a Slurm cluster with a journal and the fake
// batch system, its pilot loop ready.
func pilotHead(t *testing.T, sl clusterfile.Slurm, fb *fakeBatch) (*Head, *pilotLoop, *[]string) {
	t.Helper()
	dir := t.TempDir()
	var said []string
	var mu sync.Mutex
	h, err := New(Config{Dir: dir, Cluster: clusterfile.Cluster{Name: "hpc", Slurm: &sl},
		Pilots: PilotOptions{System: fb}, Self: "/opt/orrery's/orrery",
		Status: func(s string) { mu.Lock(); said = append(said, s); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	if h.j, err = openJournal(filepath.Join(dir, "journal")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.j.close() })
	l := h.startPilots("login1:7443", "0123456789ab", "")
	if l == nil {
		t.Fatalf("no pilot loop: %q", said)
	}
	return h, l, &said
}

// hand gives the head n of the root's attempts.
func hand(h *Head, from, n int) {
	for i := from; i < from+n; i++ {
		h.started(&protocol.Start{Job: int64(i), Attempt: 1})
	}
}

// TestPilotsFollowTheWork: no pilot while nothing waits; as work comes,
// pilots up to the cluster's maximum, at most two waiting in the batch
// queue at once; a pilot's script holds the paths of the token and the
// address, never the token, and its name the experiment's identity.
func TestPilotsFollowTheWork(t *testing.T) {
	fb := &fakeBatch{}
	h, l, _ := pilotHead(t, clusterfile.Slurm{Pilots: 3, CPUs: 2, Time: time.Hour, Partition: "short", Idle: time.Minute}, fb)
	ctx := context.Background()
	l.round(ctx)
	if p, r := fb.count(); p+r != 0 {
		t.Fatalf("%d pilots submitted with no work", p+r)
	}
	hand(h, 1, 10) // 10 jobs at 2 CPUs a pilot: 5 wanted, 3 at most
	l.round(ctx)
	if p, r := fb.count(); p != 2 || r != 0 {
		t.Fatalf("%d pending and %d running after the first work; want 2 pending (the backlog)", p, r)
	}
	fb.runAll()
	l.round(ctx)
	if p, r := fb.count(); p != 1 || r != 2 {
		t.Fatalf("%d pending and %d running; want 1 more pending, 3 in all", p, r)
	}
	fb.runAll()
	l.round(ctx)
	if p, r := fb.count(); p != 0 || r != 3 {
		t.Fatalf("%d pending and %d running; want 3 running, no more", p, r)
	}
	r := fb.requests[0]
	if r.Name != "orrery-0123456789ab-hpc-p1" || fb.requests[2].Name != "orrery-0123456789ab-hpc-p3" {
		t.Errorf("pilot names %q, %q", r.Name, fb.requests[2].Name)
	}
	if r.Partition != "short" || r.Time != time.Hour || r.CPUs != 2 || !strings.HasSuffix(r.Output, "/pilots/"+r.Name+".out") {
		t.Errorf("request %+v", r)
	}
	script := string(r.Script)
	tok, err := os.ReadFile(filepath.Join(h.cfg.Dir, "pilots", "addr"))
	if err != nil || strings.TrimSpace(string(tok)) != "login1:7443" {
		t.Errorf("pilots/addr: %q, %v", tok, err)
	}
	for _, want := range []string{`bin='/opt/orrery'\''s/orrery'`, "--connect-file '" + h.cfg.Dir + "/pilots/addr'",
		"tok='" + h.cfg.Dir + "/join.token'", "--token-file \"$tok\"", "--ends-in \"$left\"", "left=3600s", "--idle-exit 1m0s", `SLURM_CPUS_ON_NODE`} {
		if !strings.Contains(script, want) {
			t.Errorf("the script lacks %q:\n%s", want, script)
		}
	}
	st := h.status()
	if len(st.Pilots) != 3 || st.Pilots[0].ID != "101" || st.Pilots[0].State != protocol.PilotRunning {
		t.Errorf("status pilots %+v", st.Pilots)
	}
	// A head started again continues the serial numbers.
	l2 := h.startPilots("login1:7443", "0123456789ab", "")
	if l2.next != 4 {
		t.Errorf("next serial %d after 3 pilots, want 4", l2.next)
	}
	// The end cancels every pilot and waits until none is listed.
	l.end()
	if p, r := fb.count(); p+r != 0 || len(fb.cancels) != 3 {
		t.Errorf("after the end: %d pending, %d running, cancels %v", p, r, fb.cancels)
	}
}

// permanent is a refusal that asking again will not change.
type permanent struct{ error }

func (permanent) Permanent() bool { return true }

// TestPilotsRefused: a refusal the batch system will always give stops
// the submitting at once, in its own words, naming the cluster; a
// cluster that has no other node then stops its head for good, saying
// why in its directory for the root.
func TestPilotsRefused(t *testing.T) {
	fb := &fakeBatch{refuse: permanent{errors.New("sbatch: error: invalid partition specified: nosuch")}}
	h, l, said := pilotHead(t, clusterfile.Slurm{Pilots: 2}, fb)
	var stopped error
	h.stop = func(err error) { stopped = err }
	hand(h, 1, 3)
	l.round(context.Background())
	want := "cluster hpc: no pilots: sbatch: error: invalid partition specified: nosuch"
	if st := h.status(); st.Batch != want || st.CPUs != 0 {
		t.Errorf("status batch %q, cpus %d; want %q and no CPUs", st.Batch, st.CPUs, want)
	}
	if !errors.Is(stopped, ErrNoNodes) {
		t.Errorf("the head was stopped with %v, want ErrNoNodes", stopped)
	}
	p, err := ProbeDir(h.cfg.Dir)
	if err != nil || p.GaveUp != want {
		t.Errorf("probe %+v, %v; want gave_up %q", p, err, want)
	}
	if len(*said) == 0 || !strings.Contains(strings.Join(*said, "\n"), want) {
		t.Errorf("said %q", *said)
	}
}

// TestPilotsUnreached: pilots that run and end without their agent ever
// joining (a wrong listen address) stop the submitting after two, with
// the last pilot's own last words, and cancel those still queued.
func TestPilotsUnreached(t *testing.T) {
	fb := &fakeBatch{}
	h, l, _ := pilotHead(t, clusterfile.Slurm{Pilots: 4}, fb)
	h.stop = func(error) {}
	hand(h, 1, 8)
	ctx := context.Background()
	l.round(ctx)
	fb.runAll()
	l.round(ctx) // 2 running, 2 pending
	for _, r := range fb.requests[:2] {
		os.WriteFile(r.Output, []byte("orrery: agent: dial tcp 10.9.9.9:7443: connect: connection refused\n"), 0o600)
	}
	fb.mu.Lock()
	fb.set("101", batch.Ended)
	fb.set("102", batch.Ended)
	fb.mu.Unlock()
	l.round(ctx)
	st := h.status()
	if !strings.Contains(st.Batch, "2 pilots in a row ended without reaching the head at login1:7443") ||
		!strings.Contains(st.Batch, "connection refused") {
		t.Errorf("batch %q", st.Batch)
	}
	if p, _ := fb.count(); p != 0 {
		t.Errorf("%d pilots left pending after giving up", p)
	}
	n := len(fb.requests)
	hand(h, 9, 8)
	l.round(ctx)
	if len(fb.requests) != n {
		t.Errorf("a pilot was submitted after giving up")
	}
}

// TestPilotJoinedIsNotUnreached: a pilot whose agent joined, ran jobs
// and ended (it reached its time) does not count towards giving up.
func TestPilotJoinedIsNotUnreached(t *testing.T) {
	fb := &fakeBatch{}
	h, l, _ := pilotHead(t, clusterfile.Slurm{Pilots: 1}, fb)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		hand(h, 10*i+1, 1)
		l.round(ctx)
		fb.runAll()
		h.mu.Lock()
		h.joinedNames[fb.requests[i].Name] = true
		h.prog.PerNode = []dispatch.NodeProgress{{Name: fb.requests[i].Name, Started: 2}}
		h.mu.Unlock()
		l.round(ctx)
		fb.mu.Lock()
		fb.set(batch.JobID(fmt.Sprint(101+i)), batch.Ended)
		fb.mu.Unlock()
		l.round(ctx)
	}
	if st := h.status(); st.Batch != "" || len(fb.requests) < 3 {
		t.Errorf("batch %q after %d pilots that joined", st.Batch, len(fb.requests))
	}
}

// TestPilotsTimeTooShort: pilots that join and leave with work waiting
// and no job started on them (no job fits in their time) stop the
// submitting after two, saying the time is too short.
func TestPilotsTimeTooShort(t *testing.T) {
	fb := &fakeBatch{}
	h, l, _ := pilotHead(t, clusterfile.Slurm{Pilots: 1, Time: 5 * time.Minute}, fb)
	h.stop = func(error) {}
	ctx := context.Background()
	hand(h, 1, 3)
	for i := 0; i < 2; i++ {
		l.round(ctx)
		fb.runAll()
		l.round(ctx)
		h.mu.Lock()
		h.joinedNames[fb.requests[i].Name] = true
		h.mu.Unlock()
		fb.mu.Lock()
		fb.set(batch.JobID(fmt.Sprint(101+i)), batch.Ended)
		fb.mu.Unlock()
	}
	l.round(ctx)
	want := "cluster hpc: time 00:05:00 is shorter than any job is expected to take: 2 pilots in a row left without a job while 3 waited"
	if st := h.status(); !strings.HasPrefix(st.Batch, want) {
		t.Errorf("batch %q, want %q", st.Batch, want)
	}
	if len(fb.requests) != 2 {
		t.Errorf("%d pilots submitted, want 2", len(fb.requests))
	}
}

// TestPilotsNearTheEnd: once the root has filled the head's queue and
// then left it short for a while (it has no more), no pilot is
// submitted beyond those alive.
func TestPilotsNearTheEnd(t *testing.T) {
	fb := &fakeBatch{}
	h, l, _ := pilotHead(t, clusterfile.Slurm{Pilots: 4}, fb)
	ctx := context.Background()
	_, _, _, depth := h.load()
	hand(h, 1, depth) // full
	l.round(ctx)
	fb.runAll()
	l.round(ctx)
	if p, r := fb.count(); p+r != 4 {
		t.Fatalf("%d pilots with a full queue, want 4", p+r)
	}
	h.mu.Lock()
	for _, r := range fb.requests {
		h.joinedNames[r.Name] = true
		h.prog.PerNode = append(h.prog.PerNode, dispatch.NodeProgress{Name: r.Name, Started: 1})
	}
	h.mu.Unlock()
	l.round(ctx) // they ran jobs
	// The root has no more: the queue is short, and stays so.
	h.mu.Lock()
	for k := range h.j.entries {
		if len(h.j.entries) <= depth/2 {
			break
		}
		delete(h.j.entries, k)
	}
	h.mu.Unlock()
	l.fullAt = time.Now().Add(-2 * rootDry)
	fb.mu.Lock()
	fb.set("101", batch.Ended)
	fb.set("102", batch.Ended)
	fb.mu.Unlock()
	n := len(fb.requests)
	l.round(ctx)
	if len(fb.requests) != n {
		t.Errorf("%d pilots submitted near the end, with 2 alive", len(fb.requests)-n)
	}
	// None alive and work left: one.
	fb.mu.Lock()
	fb.set("103", batch.Ended)
	fb.set("104", batch.Ended)
	fb.mu.Unlock()
	l.round(ctx)
	if len(fb.requests) != n+1 {
		t.Errorf("%d pilots submitted with none alive and work left, want 1", len(fb.requests)-n)
	}
}

// TestPilotsNotJoining: a pilot that runs for JoinWait without its agent
// joining is cancelled, and two such stop the submitting with the
// pilot's last words (not Slurm's line about the cancel).
func TestPilotsNotJoining(t *testing.T) {
	fb := &fakeBatch{}
	h, l, _ := pilotHead(t, clusterfile.Slurm{Pilots: 2}, fb)
	h.stop = func(error) {}
	ctx := context.Background()
	hand(h, 1, 4)
	l.round(ctx)
	fb.runAll()
	l.round(ctx)
	for _, r := range l.recs {
		r.since = time.Now().Add(-2 * l.opts.JoinWait)
	}
	for _, r := range fb.requests {
		os.WriteFile(r.Output, []byte("orrery: agent: cannot reach the root (dial tcp 127.0.0.1:9: connect: connection refused)\nslurmstepd-vm: error: *** JOB 101 ON vm CANCELLED AT 2026-11-30T17:00:00 ***\n"), 0o600)
	}
	l.round(ctx) // cancels both
	if len(fb.cancels) != 2 {
		t.Fatalf("cancels %v, want the 2 pilots that did not join", fb.cancels)
	}
	l.round(ctx) // they ended
	st := h.status()
	if !strings.Contains(st.Batch, "2 pilots in a row ended without reaching the head at login1:7443 (listen): the last said: orrery: agent: cannot reach the root") {
		t.Errorf("batch %q", st.Batch)
	}
}
