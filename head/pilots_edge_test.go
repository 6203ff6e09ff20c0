package head

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/batch"
	"orrery/clusterfile"
	"orrery/pilots"
	"orrery/pki"
)

// TestPilotsFastFailingStop: a pilot whose script fails at once
// (the compute nodes do not see the head's binary: the script's own
// check) ends between two polls, never seen running. The docs promise
// "after two such pilots the head stops submitting"; it must not submit
// for ever.
func TestPilotsFastFailingStop(t *testing.T) {
	fb := &fakeBatch{}
	h, l, _ := pilotHead(t, clusterfile.Slurm{Pilots: 2}, fb)
	h.stop = func(error) {}
	hand(h, 1, 8)
	ctx := context.Background()
	for i := 0; i < 10; i++ {
		l.round(ctx)
		fb.mu.Lock()
		for _, r := range fb.requests {
			os.WriteFile(r.Output, []byte("orrery pilot: /opt/orrery's/orrery is not on cn07: this cluster's compute nodes must see the head's file system\n"), 0o600)
		}
		for _, j := range append([]batch.Job(nil), fb.jobs...) {
			fb.set(j.ID, batch.Ended) // ran and failed within one poll
		}
		fb.mu.Unlock()
	}
	if n := len(fb.requests); n > 4 || l.pool.Err() == nil {
		t.Errorf("%d pilots submitted over 10 polls, all failing at once; pool error %v: want the submitting stopped after 2", n, l.pool.Err())
	}
}

// TestPilotDirTightened: a pilots directory left with a looser
// mode (an older build, a user's chmod) is made 0700 again.
func TestPilotDirTightened(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, pilotDir), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(dir, pilotDir), 0o777)
	h, err := New(Config{Dir: dir, Cluster: clusterfile.Cluster{Name: "hpc", Slurm: &clusterfile.Slurm{Pilots: 1}},
		Pilots: PilotOptions{System: &fakeBatch{}}, Self: "/x/orrery", Status: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	if l := h.startPilots("login1:7443", "0123456789ab", ""); l == nil {
		t.Fatal("no pilot loop")
	}
	fi, err := os.Stat(filepath.Join(dir, pilotDir))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("pilots directory mode %v, want 0700", fi.Mode().Perm())
	}
}

// flakyBatch fails its next failJobs listings.
type flakyBatch struct {
	*fakeBatch
	mu       sync.Mutex
	failJobs int
}

func (f *flakyBatch) Jobs(ctx context.Context, prefix string) ([]batch.Job, error) {
	f.mu.Lock()
	fail := f.failJobs > 0
	if fail {
		f.failJobs--
	}
	f.mu.Unlock()
	if fail {
		return nil, errors.New("squeue: error: slurm_load_jobs error: Socket timed out on send/recv operation")
	}
	return f.fakeBatch.Jobs(ctx, prefix)
}

// TestPilotsEndSurvivesOneSqueueFailure: one squeue time-out at the end
// must not leave the pilots queued and running after the head.
func TestPilotsEndSurvivesOneSqueueFailure(t *testing.T) {
	fb := &fakeBatch{}
	fl := &flakyBatch{fakeBatch: fb}
	h, l, _ := pilotHead(t, clusterfile.Slurm{Pilots: 3}, fb)
	l.sys = fl
	hand(h, 1, 6)
	l.round(context.Background())
	fb.runAll()
	l.round(context.Background())
	if p, r := fb.count(); p+r == 0 {
		t.Fatal("no pilot submitted")
	}
	fl.mu.Lock()
	fl.failJobs = 1
	fl.mu.Unlock()
	done := make(chan struct{})
	go func() { l.end(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("end did not return")
	}
	if p, r := fb.count(); p+r != 0 {
		t.Errorf("%d pending and %d running pilots left in the batch queue after the end (one squeue failure)", p, r)
	}
}

// TestPilotNameIsNodeID: the head finds a pilot's node in its
// dispatcher's progress by the pilot's job name (pilotDraining,
// pilotStarted); the port enrols the node under pki.SanitizeName of the
// name, cut to 64 bytes: the longest cluster name a pilot's name may
// hold leaves its names whole.
func TestPilotNameIsNodeID(t *testing.T) {
	prefix, err := pilots.Prefix("0123456789ab", strings.Repeat("c", 24))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 9, 10, 100, 1e6} {
		name := pilots.Name(prefix, n)
		if id := pki.SanitizeName(name); id != name {
			t.Errorf("pilot %d: name %q (%d bytes) enrols as %q: the head never finds it in its progress", n, name, len(name), id)
		}
	}
}

// TestPilotsUnusableClusterNameStops: a cluster name the cluster file
// accepts ('+') but a pilot's name does not leaves a Slurm cluster with
// no pilot and no node; the head must give up (noNodesLeft) rather than
// hold the root's jobs with nothing to run them.
func TestPilotsUnusableClusterNameStops(t *testing.T) {
	// The cluster file refuses such a name; a head given one all the
	// same stops.
	if _, err := clusterfile.Parse("x.cluster", strings.NewReader("cluster a+b slurm\n")); err == nil {
		t.Errorf("the cluster file takes a Slurm cluster named a+b")
	}
	g := &clusterfile.Grid{Clusters: []clusterfile.Cluster{{Name: "a+b", Slurm: &clusterfile.Slurm{Pilots: 1}}}}
	dir := t.TempDir()
	h, err := New(Config{Dir: dir, Cluster: g.Clusters[0], Pilots: PilotOptions{System: &fakeBatch{}},
		Self: "/x/orrery", Status: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	var stopped error
	h.stop = func(err error) { stopped = err }
	if l := h.startPilots("login1:7443", "0123456789ab", ""); l != nil {
		return // pilots work for the name: fine
	}
	if _, err := os.Stat(filepath.Join(dir, GaveUpFile)); err != nil || !errors.Is(stopped, ErrNoNodes) {
		t.Errorf("cluster %q gets no pilots, yet the head goes on (stop %v, gave-up file %v)", g.Clusters[0].Name, stopped, err)
	}
}
