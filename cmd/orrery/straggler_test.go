package main

// Live runs act on the core's Cancel: the orrery policy duplicates a
// straggler onto a faster idle node and cancels the loser, and stops a
// job on a node whose jobs' resident memory passed its RAM, to start it
// again where it fits.

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// straggleCluster is a full-speed node and one at a twentieth of a CPU:
// a job that starts on the slow node takes twenty times as long there.
// The margin is wide on purpose: on a loaded machine the fast node's
// jobs take longer, and the slow job must still be far from done when
// the fast node falls idle, or no duplicate would pay.
const straggleCluster = `# a fast node and a very slow one
node fast cpus 1 cpu-share 1 job-limit 1
node slow cpus 1 cpu-share 0.05 job-limit 1
`

// TestE2EStragglerDuplicated runs 8 one-second CPU-bound jobs with
// `--policy orrery` on straggleCluster, where jobs cannot migrate. The first job to land on the slow
// node would take about 20 s there; once nothing waits, the fast node is
// idle and the core has learned the jobs' work, so it starts a duplicate
// on the fast node, which wins, and the slow attempt is cancelled: its
// process is killed and its attempt recorded as cancelled.
func TestE2EStragglerDuplicated(t *testing.T) {
	if reason := livesimUnsupported(); reason != "" {
		t.Skip(reason)
	}
	dir, units := burnerDir(t, time.Second)
	e2eWrite(t, filepath.Join(dir, "cluster.txt"), straggleCluster)
	e2eWrite(t, filepath.Join(dir, "dup.pln"), fmt.Sprintf(`parameter i integer range from 1 to 8
parameter units integer %d
`+burnerTasks+`
task main
	redirect stdout to burn.out
	exec ./burn $units
	copy node:burn.out root:results/$i.txt
endtask
`, units))
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	began := time.Now()
	// With --listen, nodes may join from elsewhere, so jobs do not migrate
	// between the cluster file's nodes (TestE2EMigration has them move):
	// the straggler is duplicated instead.
	p := e2eStart(t, ctx, dir, "run", "--cluster", "cluster.txt", "--listen", "127.0.0.1:0", "--policy", "orrery", "dup.pln")
	code := p.wait(e2eRunTimeout)
	wall := time.Since(began)
	e2eNoPanic(t, "run", p.stderr.String())
	if code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
	}
	if left := e2eWaitNoProcs(dir, 10*time.Second); len(left) > 0 {
		t.Errorf("processes left after the run: %v", left)
	}
	for i := 1; i <= 8; i++ {
		if b, err := os.ReadFile(filepath.Join(dir, "results", fmt.Sprintf("%d.txt", i))); err != nil || len(b) == 0 {
			t.Errorf("result of job %d: %q, %v", i, b, err)
		}
	}
	dups := 0
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" {
			t.Errorf("job %d: %+v, want done", j.Index, j)
		}
		if j.Attempts == 1 {
			continue
		}
		_, atts := e2eLog(t, dir, j.Index)
		states := map[string]string{}
		for _, a := range atts {
			states[a.Node] = a.State
		}
		if len(atts) != 2 || states["slow"] != "cancelled" || states["fast"] != "ok" {
			t.Errorf("job %d: attempts %+v, want one cancelled on slow and one ok on fast", j.Index, atts)
			continue
		}
		dups++
	}
	if dups != 1 {
		t.Errorf("%d jobs were duplicated, want 1 (the one on the slow node)", dups)
	}
	t.Logf("run took %.1f s; a 1-s job alone on the slow node takes about 20 s", wall.Seconds())
	if t.Failed() {
		t.Log(e2eMust(t, dir, "joblog"))
	}
}

// burnerTasks build the paper's CPU burner (examples/cputest/burn.c)
// on the root and stage it to each node once.
const burnerTasks = `task rootstart
	root:execute cc -O2 -o burn burn.c
endtask
task nodestart
	copy root:burn node:burn
endtask`

// burnerDir returns a test directory holding the burner's source, and
// the units that take about d of CPU at full speed on this machine.
func burnerDir(t *testing.T, d time.Duration) (dir string, units int) {
	t.Helper()
	dir = e2eDir(t)
	t.Cleanup(func() { e2eKillUnder(dir) })
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "cputest", "burn.c"))
	if err != nil {
		t.Fatal(err)
	}
	e2eWrite(t, filepath.Join(dir, "burn.c"), string(src))
	bin := filepath.Join(dir, "burn-calibrate")
	if out, err := exec.Command("cc", "-O2", "-o", bin, filepath.Join(dir, "burn.c")).CombinedOutput(); err != nil {
		t.Fatalf("cc: %v\n%s", err, out)
	}
	defer os.Remove(bin)
	const n = 300
	out, err := exec.Command(bin, strconv.Itoa(n)).Output()
	if err != nil {
		t.Fatalf("burn %d: %v", n, err)
	}
	var got int
	var cpu float64
	if _, err := fmt.Sscanf(string(out), "%d units in %g s of CPU", &got, &cpu); err != nil || got != n {
		t.Fatalf("burn %d printed %q (%v)", n, out, err)
	}
	return dir, max(int(math.Round(d.Seconds()*n/math.Max(cpu, 1e-3))), 1)
}

// TestE2EMemoryRelief runs jobs that each hold 200 MB for a few seconds
// (taken at once, so that no heartbeat sees a job half grown for long: a
// job that grew slowly, as a shell reading a pipe does on a busy machine,
// could be reported small enough for a second to start beside it)
// on one agent that offers 300 MB and runs 2 jobs at once. The first two
// start together (nothing is known of their memory yet); the agent's
// heartbeats report 400 MB resident, so the core stops one of them and
// starts it again only when it fits: after the first ends. From then on
// no two jobs run together on the node.
func TestE2EMemoryRelief(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "mem.pln"), `parameter i integer range from 1 to 4
task main
	shexec "perl -e '\$x = q(a) x 200000000; sleep 3'; echo $i > out.txt"
	copy node:out.txt root:results/$i.txt
endtask
`)
	t.Cleanup(func() { e2eKillUnder(dir) })
	ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
	defer cancel()
	run, addr := e2eListen(t, ctx, dir, "mem.pln")
	agent := e2eStart(t, ctx, dir, "agent", "--connect", addr, "--token-file", "join.token", "--name", "m", "--job-limit", "2",
		"--memory", "300M", "--work-dir", filepath.Join(dir, "work"))
	if code := run.wait(e2eRunTimeout); code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, run.stdout.String(), run.stderr.String())
	}
	if code := agent.wait(15 * time.Second); code != 0 {
		t.Errorf("agent: exit %d after the run ended, want 0\nstderr:\n%s", code, agent.stderr.String())
	}
	e2eNoPanic(t, "agent", agent.stderr.String())
	results := map[string]string{}
	for i := 1; i <= 4; i++ {
		results[fmt.Sprintf("%d.txt", i)] = fmt.Sprintf("%d\n", i)
	}
	e2eResults(t, filepath.Join(dir, "results"), results)

	cancelled, restarted := 0, false
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" {
			t.Errorf("job %d: %+v, want done", j.Index, j)
		}
		_, atts := e2eLog(t, dir, j.Index)
		for k, a := range atts {
			switch {
			case a.State == "cancelled":
				cancelled++
			case a.State != "ok" || k != len(atts)-1:
				t.Errorf("job %d: attempts %+v, want cancelled ones and a last one ok", j.Index, atts)
			}
		}
		restarted = restarted || len(atts) > 1
	}
	if cancelled == 0 || !restarted {
		t.Errorf("%d attempts cancelled, want at least one job stopped and started again", cancelled)
	}
	// Once the core knows what a job holds, jobs that succeed never
	// overlap: 200 MB beside 200 MB does not fit in 300 MB.
	var ok []e2eJoblogLine
	for _, l := range e2eJoblog(t, dir) {
		if l.Exit == 0 && l.Signal == 0 {
			ok = append(ok, l)
		}
	}
	if len(ok) != 4 {
		t.Fatalf("joblog: %d successful attempts, want 4", len(ok))
	}
	for i := range ok {
		for k := i + 1; k < len(ok); k++ {
			a, b := ok[i], ok[k]
			overlap := math.Min(a.Start+a.Runtime, b.Start+b.Runtime) - math.Max(a.Start, b.Start)
			if overlap > 0.5 {
				t.Errorf("jobs %d and %d ran together for %.1f s on a node where only one fits", a.Seq, b.Seq, overlap)
			}
		}
	}
}
