package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"orrery/internal/slurmtest"
)

// The tests of a Slurm cluster run a real Slurm on this machine
// (internal/slurmtest: Debian's slurmctld and slurmd, munge), one for
// the whole package, stopped by TestMain.
var (
	slurmOnce sync.Once
	slurmC    *slurmtest.Cluster
	slurmErr  error
	slurmDir  string
)

// testSlurm starts the package's Slurm on first use.
func testSlurm(t *testing.T) *slurmtest.Cluster {
	t.Helper()
	slurmOnce.Do(func() {
		slurmDir, slurmErr = os.MkdirTemp("", "orrery-slurm-")
		if slurmErr == nil {
			slurmC, slurmErr = slurmtest.Start(slurmDir)
		}
	})
	if slurmErr != nil {
		t.Fatalf("a test Slurm: %v", slurmErr)
	}
	return slurmC
}

// stopTestSlurm stops the package's Slurm, if it started.
func stopTestSlurm() {
	if slurmC != nil {
		slurmC.Stop()
	}
	if slurmDir != "" {
		os.RemoveAll(slurmDir)
	}
}

// slurmRun runs `orrery ARGS` in dir with the test Slurm's environment.
func slurmRun(t *testing.T, sl *slurmtest.Cluster, dir string, timeout time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.Command(e2eBinary(t), args...)
	cmd.Dir, cmd.Env = dir, sl.Environ()
	p := e2eStartCmd(t, ctx, "orrery "+strings.Join(args, " "), cmd)
	code = p.wait(timeout + 5*time.Second)
	stdout, stderr = p.stdout.String(), p.stderr.String()
	e2eNoPanic(t, p.name, stderr)
	return code, stdout, stderr
}

// slurmQueue is every job in the test Slurm's queue, one line each:
// ID NAME STATE.
func slurmQueue(t *testing.T, sl *slurmtest.Cluster) string {
	t.Helper()
	cmd := exec.Command("squeue", "--noheader", "--format=%i %j %T")
	cmd.Env = sl.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("squeue: %v: %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

// slurmQueueEmpty fails the test when Orrery left a job in the queue
// (cancelled pilots may take a moment to leave it).
func slurmQueueEmpty(t *testing.T, sl *slurmtest.Cluster) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		q := slurmQueue(t, sl)
		if !strings.Contains(q, "orrery-") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Orrery's pilots are still in Slurm's queue after the run:\n%s", q)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestE2ESlurmPilots runs a sweep on a Slurm cluster: the head submits
// pilots, whose agents join it and run the jobs with staging both ways;
// at the end no pilot is left in Slurm's queue, and `orrery status`
// lists the pilots with their Slurm job IDs.
func TestE2ESlurmPilots(t *testing.T) {
	sl := testSlurm(t)
	dir := slurmPilotSweep(t, sl, 12)
	// status --json lists the cluster's pilots, by Slurm job ID.
	var st struct {
		Clusters []struct {
			Name   string
			Pilots []struct{ ID, Name, State, Reason string }
		}
	}
	out := e2eMust(t, dir, "status", "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Clusters) != 1 || len(st.Clusters[0].Pilots) == 0 {
		t.Fatalf("status --json lists no pilot:\n%s", out)
	}
	for _, p := range st.Clusters[0].Pilots {
		if _, err := strconv.Atoi(p.ID); err != nil || !regexp.MustCompile(`^orrery-[0-9a-f]{12}-here-p[0-9]+$`).MatchString(p.Name) ||
			!slices.Contains([]string{"pending", "running", "draining", "ended"}, p.State) {
			t.Errorf("pilot %+v", p)
		}
	}
}

// slurmPilotSweep runs a sweep of n jobs, staging both ways, on a Slurm
// cluster of two pilots of one CPU; it checks that every job was done on
// a pilot and that no pilot is left in the queue, and returns the run's
// directory.
func slurmPilotSweep(t *testing.T, sl *slurmtest.Cluster, n int) string {
	t.Helper()
	dir := gridDir(t, n, fmt.Sprintf("cluster here slurm partition %s time 00:10:00 pilots 2 cpus-per-pilot 1 listen %s\n",
		slurmtest.Partition, freePort(t)))
	gridStopHeads(t, dir)
	code, stdout, stderr := slurmRun(t, sl, dir, 3*time.Minute, "run", "--cluster", "grid.cluster", "p.pln")
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nhead.log:\n%s", code, stdout, stderr, headLog(dir, "here"))
	}
	e2eResults(t, filepath.Join(dir, "results"), gridWant(n))
	for _, j := range e2eJobs(t, dir) {
		// The pilots ran the jobs: each ran on a node named as a pilot.
		if j.State != "done" || j.Cluster != "here" || !strings.HasPrefix(j.Node, "orrery-") {
			t.Errorf("job %d is %s on %s/%s, want done on a pilot of here", j.Index, j.State, j.Cluster, j.Node)
		}
	}
	slurmQueueEmpty(t, sl)
	return dir
}

// TestE2ESlurmUnknownPartition: a partition Slurm does not know is one
// clear line that names the cluster and the partition, in Slurm's own
// words; the run ends (no node can run the jobs) with them saved, and
// nothing is left in Slurm's queue.
func TestE2ESlurmUnknownPartition(t *testing.T) {
	sl := testSlurm(t)
	dir := gridDir(t, 3, fmt.Sprintf("cluster here slurm partition nosuch time 00:10:00 listen %s\n", freePort(t)))
	gridStopHeads(t, dir)
	code, stdout, stderr := slurmRun(t, sl, dir, 2*time.Minute, "run", "--wait", "5s", "--cluster", "grid.cluster", "p.pln")
	if code == 0 {
		t.Fatalf("exit 0 with no partition\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	if !strings.Contains(stderr, "cluster here: no pilots: sbatch: error: invalid partition specified: nosuch") {
		t.Errorf("stderr does not say the partition is unknown, naming the cluster:\n%s\nhead.log:\n%s", stderr, headLog(dir, "here"))
	}
	slurmQueueEmpty(t, sl)
}

// headLog is the log of a local head of the run in dir, for a failure's
// message.
func headLog(dir, cluster string) string {
	b, _ := os.ReadFile(filepath.Join(dir, ".orrery", "heads", cluster, "head.log"))
	return string(b)
}

// slurmSweep starts `orrery run` of n jobs of secs seconds each, with
// their results copied back, on a Slurm cluster of at most pilots pilots
// of one CPU; it returns the run's directory and process.
func slurmSweep(t *testing.T, sl *slurmtest.Cluster, n, secs, pilots int) (string, *e2eProc) {
	t.Helper()
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "p.pln"), fmt.Sprintf(`parameter x integer range from 1 to %d
task main
	execute sh -c "sleep %d; echo done $x" > out.txt
	copy node:out.txt root:results/out-$x.txt
endtask
`, n, secs))
	e2eWrite(t, filepath.Join(dir, "grid.cluster"), fmt.Sprintf("cluster here slurm partition %s time 00:10:00 pilots %d cpus-per-pilot 1 listen %s\n",
		slurmtest.Partition, pilots, freePort(t)))
	gridStopHeads(t, dir)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.Command(e2eBinary(t), "run", "--cluster", "grid.cluster", "p.pln")
	cmd.Dir, cmd.Env = dir, sl.Environ()
	return dir, e2eStartCmd(t, ctx, "orrery run", cmd)
}

// waitClusterRunning waits (at most 2 minutes, a liveness bound) until
// the cluster's head says a job runs on one of its pilots.
func waitClusterRunning(t *testing.T, sl *slurmtest.Cluster, dir string) {
	t.Helper()
	state := filepath.Join(dir, ".orrery", "heads", "here", "state")
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			t.Fatalf("no job ran on a pilot within 2 minutes; queue:\n%s\nhead.log:\n%s", slurmQueue(t, sl), headLog(dir, "here"))
		}
		time.Sleep(200 * time.Millisecond)
		if _, err := os.Stat(filepath.Join(state, "state.db")); err != nil {
			continue
		}
		code, out, _ := e2eRun(t, dir, time.Minute, "status", "--json", "--state-dir", state)
		var st struct{ Running int }
		if code == 0 && json.Unmarshal([]byte(out), &st) == nil && st.Running >= 1 {
			return
		}
	}
}

// slurmDoneOnce checks the results of slurmSweep's n jobs, and that the
// root recorded each done after one attempt.
func slurmDoneOnce(t *testing.T, dir string, n int) {
	t.Helper()
	want := map[string]string{}
	for i := 1; i <= n; i++ {
		want[fmt.Sprintf("out-%d.txt", i)] = fmt.Sprintf("done %d\n", i)
	}
	e2eResults(t, filepath.Join(dir, "results"), want)
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" || j.Attempts != 1 {
			t.Errorf("job %d at the root: %s after %d attempts, want done after 1", j.Index, j.State, j.Attempts)
		}
	}
}

// TestE2ESlurmScancel cancels the one pilot with scancel while it runs
// a job: the job is a system failure of the pilot, not the job's; it
// runs again on a new pilot, and every job ends exactly once, done.
func TestE2ESlurmScancel(t *testing.T) {
	sl := testSlurm(t)
	const n = 4
	dir, p := slurmSweep(t, sl, n, 3, 1)
	headState := filepath.Join(dir, ".orrery", "heads", "here", "state")
	// Wait until a job runs on the pilot, then cancel the pilot.
	waitClusterRunning(t, sl, dir)
	var pilot string
	for _, l := range strings.Split(slurmQueue(t, sl), "\n") {
		if f := strings.Fields(l); len(f) == 3 && strings.HasPrefix(f[1], "orrery-") && f[2] == "RUNNING" {
			pilot = f[0]
		}
	}
	if pilot == "" {
		t.Fatalf("a job runs, but no pilot is running in the queue:\n%s", slurmQueue(t, sl))
	}
	c := exec.Command("scancel", pilot)
	c.Env = sl.Environ()
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("scancel %s: %v: %s", pilot, err, out)
	}
	if code := p.wait(3 * time.Minute); code != 0 {
		t.Fatalf("exit %d after the pilot was cancelled\nstdout:\n%s\nstderr:\n%s\nhead.log:\n%s", code, p.stdout.String(), p.stderr.String(), headLog(dir, "here"))
	}
	slurmDoneOnce(t, dir, n)
	// On the cluster, the job the pilot ran was lost with it, and ran
	// again: one attempt more than the jobs.
	attempts := 0
	for _, j := range e2eJobs(t, dir, "--state-dir", headState) {
		if j.State != "done" {
			t.Errorf("job %d on the cluster is %s", j.Index, j.State)
		}
		attempts += j.Attempts
	}
	if attempts != n+1 {
		t.Errorf("%d attempts on the cluster for %d jobs, want %d: the cancelled pilot's job once more", attempts, n, n+1)
	}
	slurmQueueEmpty(t, sl)
}

// TestE2ESlurmListenUnusable: a listen address the head cannot have
// (not one of its machine's) is one clear line naming the cluster and
// the address; no pilot is submitted, the run ends with its jobs saved.
func TestE2ESlurmListenUnusable(t *testing.T) {
	sl := testSlurm(t)
	dir := gridDir(t, 2, "cluster here slurm time 00:10:00 listen 192.0.2.1:7443\n")
	gridStopHeads(t, dir)
	code, stdout, stderr := slurmRun(t, sl, dir, 2*time.Minute, "run", "--wait", "5s", "--cluster", "grid.cluster", "p.pln")
	if code == 0 {
		t.Fatalf("exit 0 with an unusable listen\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	if !strings.Contains(stderr, "orrery: cluster here: listen 192.0.2.1:7443:") || !strings.Contains(stderr, "no pilot could join there") {
		t.Errorf("stderr does not name the cluster and its listen:\n%s\nhead.log:\n%s", stderr, headLog(dir, "here"))
	}
	if q := slurmQueue(t, sl); strings.Contains(q, "orrery-") {
		t.Errorf("pilots in the queue:\n%s", q)
	}
	if _, err := os.Stat(filepath.Join(dir, ".orrery", "heads", "here", "pilots", "next")); err == nil {
		t.Errorf("a pilot was submitted")
	}
}

// TestE2ESlurmHeadKilled kills the cluster's head with -9 while its
// pilots run jobs: the root starts it again, the pilots still queued or
// running find it (they read its address again), and the sweep ends
// with every job done once, without a new pilot for each old one, and
// nothing left in Slurm's queue.
func TestE2ESlurmHeadKilled(t *testing.T) {
	sl := testSlurm(t)
	const n = 8
	dir, p := slurmSweep(t, sl, n, 2, 2)
	hd := filepath.Join(dir, ".orrery", "heads", "here")
	waitClusterRunning(t, sl, dir)
	b, err := os.ReadFile(filepath.Join(hd, "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.Fields(string(b))[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := p.wait(3 * time.Minute); code != 0 {
		t.Fatalf("exit %d after the head was killed\nstdout:\n%s\nstderr:\n%s\nhead.log:\n%s", code, p.stdout.String(), p.stderr.String(), headLog(dir, "here"))
	}
	slurmDoneOnce(t, dir, n)
	next, err := os.ReadFile(filepath.Join(hd, "pilots", "next"))
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := strconv.Atoi(strings.TrimSpace(string(next))); v-1 > 3 {
		t.Errorf("%d pilots submitted for 2 at once across one restart of the head: the running ones were not used again\nhead.log:\n%s", v-1, headLog(dir, "here"))
	}
	slurmQueueEmpty(t, sl)
}

// TestE2ESlurmPilotsCannotReach: a firewall (an iptables rule on this
// machine that resets every connection to the head's listen port) keeps
// the pilots from the head: the head cancels each pilot that has run its
// join-wait without joining, and after two says so in one line naming the
// cluster and the address, with the pilot's own words; the run ends
// with its jobs saved and nothing left in Slurm's queue.
func TestE2ESlurmPilotsCannotReach(t *testing.T) {
	sl := testSlurm(t)
	listen := freePort(t)
	_, port, _ := strings.Cut(listen, ":")
	rule := []string{"INPUT", "-i", "lo", "-p", "tcp", "--dport", port, "-m", "comment", "--comment", "orrery-test-pilots",
		"-j", "REJECT", "--reject-with", "tcp-reset"}
	if out, err := exec.Command("iptables", append([]string{"-w", "-I"}, rule...)...).CombinedOutput(); err != nil {
		t.Fatalf("iptables: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("iptables", append([]string{"-w", "-D"}, rule...)...).Run() })
	dir := gridDir(t, 2, fmt.Sprintf("cluster here slurm partition %s time 00:10:00 pilots 2 join-wait 15s listen %s\n", slurmtest.Partition, listen))
	gridStopHeads(t, dir)
	code, stdout, stderr := slurmRun(t, sl, dir, 4*time.Minute, "run", "--wait", "5s", "--cluster", "grid.cluster", "p.pln")
	if code == 0 {
		t.Fatalf("exit 0 with pilots that cannot reach the head\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	want := "orrery: cluster here: 2 pilots in a row ended without reaching the head at " + listen + " (listen): the last said: "
	if !strings.Contains(stderr, want) || !strings.Contains(stderr, "connection refused") {
		t.Errorf("stderr does not say the pilots cannot reach the head:\n%s\nwant %q\nhead.log:\n%s", stderr, want, headLog(dir, "here"))
	}
	for _, j := range e2eJobs(t, dir) {
		if j.State == "failed" {
			t.Errorf("job %d failed: the pilots' fault is not the job's", j.Index)
		}
	}
	slurmQueueEmpty(t, sl)
}

// TestE2ESlurmMissing: a head whose machine has no Slurm commands says
// so in one line naming the cluster, and the run ends with its jobs
// saved.
func TestE2ESlurmMissing(t *testing.T) {
	sl := testSlurm(t)
	dir := gridDir(t, 2, fmt.Sprintf("cluster here slurm time 00:10:00 listen %s\n", freePort(t)))
	gridStopHeads(t, dir)
	// A PATH with sh and the usual tools, but no Slurm: a directory of
	// links to what the run needs.
	bin := filepath.Join(t.TempDir(), "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sh", "sleep", "cat", "wc"} {
		p, err := exec.LookPath(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(p, filepath.Join(bin, name)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.Command(e2eBinary(t), "run", "--wait", "5s", "--cluster", "grid.cluster", "p.pln")
	cmd.Dir = dir
	for _, kv := range sl.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+bin)
	p := e2eStartCmd(t, ctx, "orrery run", cmd)
	if code := p.wait(2 * time.Minute); code == 0 {
		t.Fatalf("exit 0 with no Slurm\nstderr:\n%s", p.stderr.String())
	}
	if want := "orrery: cluster here: no pilots: squeue: not found: is Slurm installed where it runs?"; !strings.Contains(p.stderr.String(), want) {
		t.Errorf("stderr does not say Slurm is missing:\n%s\nwant %q\nhead.log:\n%s", p.stderr.String(), want, headLog(dir, "here"))
	}
	for _, j := range e2eJobs(t, dir) {
		if j.State == "failed" {
			t.Errorf("job %d failed", j.Index)
		}
	}
}

// privateTmpSlurm starts a test Slurm of its own whose jobs each have
// their own /tmp (job_container/tmpfs), stopped when the test ends; the
// package's Slurm is left running, idle, beside it.
func privateTmpSlurm(t *testing.T) *slurmtest.Cluster {
	t.Helper()
	testSlurm(t)
	sdir, err := os.MkdirTemp("/var/tmp", "orrery-slurm-private-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sdir) })
	sl, err := slurmtest.StartWith(sdir, slurmtest.Options{PrivateTmp: true})
	if err != nil {
		t.Fatalf("a test Slurm whose jobs have their own /tmp: %v", err)
	}
	t.Cleanup(sl.Stop)
	return sl
}

// TestE2ESlurmNoSharedFS runs a sweep on a Slurm whose jobs each have
// their own /tmp (job_container/tmpfs), where the head's directory and
// executable are: its compute node does not see them. The pilots fetch
// orrery and the join token from the head's port, each for a munge
// credential of their own job's, and run the sweep with staging both
// ways; each says so in its output; the batch script Slurm keeps holds
// neither the token's secret nor a credential; the queue is empty after.
func TestE2ESlurmNoSharedFS(t *testing.T) {
	sl := privateTmpSlurm(t)
	dir := slurmPilotSweep(t, sl, 8)
	if bin := e2eBinary(t); !strings.HasPrefix(dir, "/tmp/") || !strings.HasPrefix(bin, "/tmp/") {
		t.Fatalf("the run's directory %s and orrery %s must be in /tmp, which the pilots do not see", dir, bin)
	}
	heads := filepath.Join(dir, ".orrery", "heads", "here")
	outs, _ := filepath.Glob(filepath.Join(heads, "pilots", "*.out"))
	fetched := 0
	for _, f := range outs {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), "does not see the head's file system: running orrery as fetched from the head") {
			fetched++
		} else {
			t.Errorf("pilot output %s does not say it ran the fetched orrery:\n%s", f, b)
		}
		if testing.Verbose() {
			t.Logf("%s:\n%s", filepath.Base(f), b)
		}
	}
	if fetched == 0 {
		t.Fatalf("no pilot output in %s", heads)
	}
	tok, err := os.ReadFile(filepath.Join(heads, "join.token"))
	if err != nil {
		t.Fatal(err)
	}
	secret := strings.TrimSpace(string(tok))
	secret = secret[strings.LastIndex(secret, ".")+1:]
	// What Slurm keeps of a pilot, which scontrol shows to the user and
	// the administrators, holds no secret.
	var st struct {
		Clusters []struct{ Pilots []struct{ ID string } }
	}
	if err := json.Unmarshal([]byte(e2eMust(t, dir, "status", "--json")), &st); err != nil || len(st.Clusters) != 1 {
		t.Fatalf("status --json: %v", err)
	}
	shown := 0
	for _, p := range st.Clusters[0].Pilots {
		cmd := exec.Command("scontrol", "write", "batch_script", p.ID, "-")
		cmd.Env = sl.Environ()
		script, err := cmd.Output()
		if err != nil {
			continue // purged since it ended
		}
		shown++
		if strings.Contains(string(script), secret) || strings.Contains(string(script), "MUNGE:") {
			t.Errorf("pilot %s's batch script holds a secret:\n%s", p.ID, script)
		}
		if !strings.Contains(string(script), "BEGIN CERTIFICATE") {
			t.Errorf("pilot %s's batch script does not carry the head's CA:\n%s", p.ID, script)
		}
	}
	if shown == 0 {
		t.Errorf("scontrol shows the script of none of the pilots %+v", st.Clusters[0].Pilots)
	}
	if strings.Contains(headLog(dir, "here"), secret) {
		t.Errorf("the head's log holds the join secret")
	}
}

// TestE2ESlurmNoSharedFSNoMunge: pilots that do not see the head's file
// system, on compute nodes without munge (a PATH without it, which the
// pilots inherit), cannot fetch orrery: each says why in its output, and
// after two the head stops submitting with that pilot's last words; no
// job fails and the queue is empty.
func TestE2ESlurmNoSharedFSNoMunge(t *testing.T) {
	sl := privateTmpSlurm(t)
	dir := gridDir(t, 2, fmt.Sprintf("cluster here slurm partition %s time 00:10:00 pilots 1 cpus-per-pilot 1 listen %s\n",
		slurmtest.Partition, freePort(t)))
	gridStopHeads(t, dir)
	// Every command of /bin and /usr/bin but munge's, in links outside
	// /tmp (which the pilots do not see).
	bin, err := os.MkdirTemp("/var/tmp", "orrery-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(bin) })
	for _, from := range []string{"/usr/bin", "/bin"} {
		entries, err := os.ReadDir(from)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if e.Name() == "munge" || e.Name() == "unmunge" {
				continue
			}
			if err := os.Symlink(filepath.Join(from, e.Name()), filepath.Join(bin, e.Name())); err != nil && !errors.Is(err, fs.ErrExist) {
				t.Fatal(err)
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.Command(e2eBinary(t), "run", "--wait", "5s", "--cluster", "grid.cluster", "p.pln")
	cmd.Dir = dir
	for _, kv := range sl.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PATH="+bin+":/usr/sbin:/sbin")
	p := e2eStartCmd(t, ctx, "orrery run", cmd)
	if code := p.wait(3 * time.Minute); code == 0 {
		t.Fatalf("exit 0 with pilots that cannot fetch orrery\nstderr:\n%s", p.stderr.String())
	}
	stderr := p.stderr.String()
	want := "the last said: orrery pilot: vm sees neither "
	host, _ := os.Hostname()
	want = strings.Replace(want, "vm", strings.SplitN(host, ".", 2)[0], 1)
	if !strings.Contains(stderr, "orrery: cluster here: 2 pilots in a row ended without reaching the head") ||
		!strings.Contains(stderr, want) || !strings.Contains(stderr, "and has no munge to fetch them from the head with") {
		t.Errorf("stderr does not say the pilots have no munge:\n%s\nhead.log:\n%s", stderr, headLog(dir, "here"))
	}
	for _, j := range e2eJobs(t, dir) {
		if j.State == "failed" {
			t.Errorf("job %d failed: the pilots' fault is not the job's", j.Index)
		}
	}
	slurmQueueEmpty(t, sl)
}
