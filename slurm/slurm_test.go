package slurm

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"orrery/batch"
	"orrery/internal/slurmtest"
)

// TestMain runs the package's tests against a real Slurm on this
// machine (internal/slurmtest), which the commands find through
// SLURM_CONF.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "orrery-slurm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := slurmtest.Start(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start the test Slurm:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	os.Setenv("SLURM_CONF", c.Conf)
	code := m.Run()
	c.Stop()
	os.RemoveAll(dir)
	os.Exit(code)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// waitFor polls cond every 100 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); ; {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// find is the job id among jobs, and whether it is there.
func find(jobs []batch.Job, id batch.JobID) (batch.Job, bool) {
	for _, j := range jobs {
		if j.ID == id {
			return j, true
		}
	}
	return batch.Job{}, false
}

// TestSubmitRunsAndEnds: a job submitted with its script on standard
// input runs, with the CPUs asked for, and leaves the queue when done.
func TestSubmitRunsAndEnds(t *testing.T) {
	ctx := ctxT(t)
	s := New(Local)
	out := filepath.Join(t.TempDir(), "ran")
	id, err := s.Submit(ctx, batch.Request{Name: "orrery-t1-run", Partition: slurmtest.Partition, Time: 2 * time.Minute, CPUs: 1,
		Memory: 100 << 20, Script: []byte("#!/bin/sh\necho \"$SLURM_JOB_ID $SLURM_CPUS_PER_TASK\" > " + out + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(60*time.Second, func() bool {
		b, err := os.ReadFile(out)
		return err == nil && strings.TrimSpace(string(b)) == string(id)+" 1"
	}) {
		b, _ := os.ReadFile(out)
		t.Fatalf("job %s never wrote its ID and CPUs: %q", id, b)
	}
	if !waitFor(60*time.Second, func() bool {
		jobs, err := s.Jobs(ctx, "orrery-t1-")
		j, ok := find(jobs, id)
		return err == nil && (!ok || j.State == batch.Ended)
	}) {
		t.Fatalf("job %s never left the queue", id)
	}
}

// TestCancel: a running job cancelled stops, and cancelling it again
// (or one that never was) is no error.
func TestCancel(t *testing.T) {
	ctx := ctxT(t)
	s := New(Local)
	mark := filepath.Join(t.TempDir(), "started")
	id, err := s.Submit(ctx, batch.Request{Name: "orrery-t2-cancel", Script: []byte("#!/bin/sh\ntouch " + mark + "\nexec sleep 300\n")})
	if err != nil {
		t.Fatal(err)
	}
	if !waitFor(60*time.Second, func() bool {
		jobs, _ := s.Jobs(ctx, "orrery-t2-")
		j, ok := find(jobs, id)
		_, err := os.Stat(mark)
		return ok && j.State == batch.Running && err == nil
	}) {
		t.Fatalf("job %s never ran", id)
	}
	if err := s.Cancel(ctx, id); err != nil {
		t.Fatal(err)
	}
	if !waitFor(30*time.Second, func() bool {
		jobs, err := s.Jobs(ctx, "orrery-t2-")
		j, ok := find(jobs, id)
		return err == nil && (!ok || j.State == batch.Ended)
	}) {
		t.Fatalf("job %s still runs after scancel", id)
	}
	if err := s.Cancel(ctx, id, "999999"); err != nil {
		t.Fatalf("cancelling an ended job and one that never was: %v", err)
	}
	if err := s.Cancel(ctx, "1;rm"); err == nil {
		t.Fatal("a job ID that is no number was passed to scancel")
	}
}

// TestJobsByPrefix: Jobs lists only the jobs whose names carry the
// prefix (one experiment's pilots), with a pending job's reason.
func TestJobsByPrefix(t *testing.T) {
	ctx := ctxT(t)
	s := New(Local)
	mine, err := s.Submit(ctx, batch.Request{Name: "orrery-expA-p1", Extra: []string{"--hold"}, Script: []byte("#!/bin/sh\ntrue\n")})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := s.Submit(ctx, batch.Request{Name: "orrery-expB-p1", Extra: []string{"--hold"}, Script: []byte("#!/bin/sh\ntrue\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Cancel(context.Background(), mine, theirs)
	jobs, err := s.Jobs(ctx, "orrery-expA-")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].ID != mine || jobs[0].State != batch.Pending || !strings.Contains(jobs[0].Reason, "Held") {
		t.Fatalf("jobs of expA: %+v; want only %s, pending and held", jobs, mine)
	}
}

// TestUnknownPartition: sbatch's refusal comes back in Slurm's own
// words, naming the partition.
func TestUnknownPartition(t *testing.T) {
	_, err := New(Local).Submit(ctxT(t), batch.Request{Name: "orrery-t3", Partition: "nope", Script: []byte("#!/bin/sh\ntrue\n")})
	if err == nil || !strings.Contains(err.Error(), "invalid partition specified: nope") || strings.Contains(err.Error(), "\n") {
		t.Fatalf("an unknown partition: %v; want one line in Slurm's words naming it", err)
	}
	if !batch.Permanent(err) {
		t.Errorf("an unknown partition is not taken as permanent: %v", err)
	}
}

// TestPermanent: a missing command and a refusal of the request are
// permanent; a controller that does not answer is not.
func TestPermanent(t *testing.T) {
	_, err := New(func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		return Local(ctx, stdin, "/nonexistent/sbatch", args...)
	}).Submit(ctxT(t), batch.Request{Name: "orrery-t9", Script: []byte("#!/bin/sh\n")})
	if err == nil || !batch.Permanent(err) {
		t.Errorf("sbatch missing: %v; want a permanent error", err)
	}
	busy := &CommandError{Name: "sbatch", Err: errors.New("exit status 1"),
		Stderr: "sbatch: error: Batch job submission failed: Socket timed out on send/recv operation\n"}
	if batch.Permanent(busy) {
		t.Errorf("a controller's time-out is taken as permanent: %v", busy)
	}
	acct := &CommandError{Name: "sbatch", Err: errors.New("exit status 1"),
		Stderr: "sbatch: error: Batch job submission failed: Invalid account or account/partition combination specified\n"}
	if !batch.Permanent(acct) {
		t.Errorf("an unknown account is not taken as permanent: %v", acct)
	}
}

// TestScriptStaysOutOfSight: what the script holds (a pilot's
// credentials) shows in neither squeue's nor scontrol's view of the job,
// which every user of the cluster can read.
func TestScriptStaysOutOfSight(t *testing.T) {
	ctx := ctxT(t)
	s := New(Local)
	const secret = "s3cret-join-token-9f2c"
	id, err := s.Submit(ctx, batch.Request{Name: "orrery-t4-secret", Extra: []string{"--hold"},
		Script: []byte("#!/bin/sh\nTOKEN=" + secret + "\ntrue\n")})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Cancel(context.Background(), id)
	for _, args := range [][]string{{"squeue", "--noheader", "--format=%all"}, {"scontrol", "show", "job", string(id)}} {
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v: %s", args, err, out)
		}
		if !strings.Contains(string(out), string(id)) || strings.Contains(string(out), secret) {
			t.Fatalf("%v shows the script's secret (or not the job):\n%s", args, out)
		}
	}
}

// TestMissingCommand: a Slurm command that is not there says so.
func TestMissingCommand(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := New(Local).Jobs(ctxT(t), "x")
	var ce *CommandError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "squeue: not found") {
		t.Fatalf("no squeue on PATH: %v", err)
	}
}

// TestStates maps squeue's states as a pilot needs them.
func TestStates(t *testing.T) {
	for _, c := range []struct {
		in   string
		want batch.State
	}{{"PENDING", batch.Pending}, {"CONFIGURING", batch.Pending}, {"REQUEUED", batch.Pending}, {"RUNNING", batch.Running},
		{"COMPLETING", batch.Running}, {"COMPLETED", batch.Ended}, {"TIMEOUT", batch.Ended}, {"PREEMPTED", batch.Ended},
		{"SOMETHING_NEW", batch.Pending}} {
		if got := stateOf(c.in); got != c.want {
			t.Errorf("%s: %s, want %s", c.in, got, c.want)
		}
	}
	if !slices.Contains([]batch.State{batch.Pending, batch.Running, batch.Ended}, stateOf("")) {
		t.Error("the empty state maps to no state")
	}
}
