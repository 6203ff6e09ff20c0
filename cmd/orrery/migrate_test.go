package main

// Live process migration between the nodes of a cluster file: a job's
// processes move from one node's control group to another's and keep
// running, as MOSIX moves a process between machines.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// migrateCluster is a full-speed node and a slow one (a fraction of a
// CPU, the %g), both in control groups.
const migrateCluster = `# a fast node and a slow one, both in control groups
node fast cpus 1 cpu-share 1 job-limit 1
node slow cpus 1 cpu-share %g job-limit 1
`

// TestE2EMigration runs one-second CPU-bound jobs on migrateCluster.
// Under fcfs+mosix (3 jobs, slow node at 0.2), one job starts on the slow
// node (5 s of wall time there); once the fast node is idle and nothing
// waits, load balancing moves it there: its processes change control
// group and finish on the fast node. Under mosix (4 jobs, slow node at
// 0.5), every job starts on the node that joined first and load
// balancing spreads them: 4 on the fast node are a load of 4, 3 and 1 on
// the slow one 3 and 2. Each job records the control group it ends in.
func TestE2EMigration(t *testing.T) {
	if reason := livesimUnsupported(); reason != "" {
		t.Skip(reason)
	}
	for _, c := range []struct {
		policy string
		slow   float64
		jobs   int
	}{{"fcfs+mosix", 0.2, 3}, {"mosix", 0.5, 4}} {
		policy := c.policy
		t.Run(policy, func(t *testing.T) {
			dir, units := burnerDir(t, time.Second)
			e2eWrite(t, filepath.Join(dir, "cluster.txt"), fmt.Sprintf(migrateCluster, c.slow))
			e2eWrite(t, filepath.Join(dir, "mig.pln"), fmt.Sprintf(`parameter i integer range from 1 to %d
parameter units integer %d
`+burnerTasks+`
task main
	shexec "./burn $units > burn.out; cat /proc/self/cgroup > cg.txt"
	copy node:cg.txt root:cg/$i.txt
endtask
`, c.jobs, units))
			ctx, cancel := context.WithTimeout(context.Background(), e2eRunTimeout)
			defer cancel()
			p := e2eStart(t, ctx, dir, "run", "--cluster", "cluster.txt", "--policy", policy, "mig.pln")
			code := p.wait(e2eRunTimeout)
			e2eNoPanic(t, "run", p.stderr.String())
			if code != 0 {
				t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, p.stdout.String(), p.stderr.String())
			}
			lines := e2eJoblog(t, dir)
			moved := 0
			for _, l := range lines {
				b, err := os.ReadFile(filepath.Join(dir, "cg", fmt.Sprintf("%d.txt", l.Seq)))
				if err != nil {
					t.Errorf("job %d: %v", l.Seq, err)
					continue
				}
				ended := "fast"
				if strings.Contains(string(b), "-slow") {
					ended = "slow"
				}
				if ended != l.Host {
					moved++
					t.Logf("job %d started on %s, ended in %s's group after %.1f s", l.Seq, l.Host, ended, l.Runtime)
				}
				if l.Host == "slow" && ended == "slow" && policy == "fcfs+mosix" {
					t.Errorf("job %d ran on the slow node to its end (%.1f s) while the fast one was idle", l.Seq, l.Runtime)
				}
			}
			if moved == 0 {
				t.Errorf("no job moved:\n%s", e2eMust(t, dir, "joblog"))
			}
			if len(lines) != c.jobs {
				t.Errorf("joblog: %d attempts, want %d", len(lines), c.jobs)
			}
			for _, j := range e2eJobs(t, dir) {
				if j.State != "done" || j.Attempts != 1 {
					t.Errorf("job %d: %+v, want done in one attempt", j.Index, j)
				}
			}
		})
	}
}
