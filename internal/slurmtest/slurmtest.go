// Package slurmtest starts a real Slurm on this machine for tests: Debian's
// slurmctld and slurmd (package slurm-wlm), one node with this machine's
// CPUs, a partition named Partition, authenticated by munge. Every file is
// under a directory the caller gives; the ports are free ones. It needs
// root (the daemons run as root), as the test command does.
package slurmtest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Partition is the one partition of a test Slurm.
const Partition = "short"

// Cluster is a running test Slurm. Its commands find it through the
// environment variable SLURM_CONF=Conf.
type Cluster struct {
	Dir  string
	Conf string
	Node string // the node's name (this machine's host name)
}

// Options changes a test Slurm's configuration.
type Options struct {
	// Extra is further slurm.conf lines (KEY=VALUE ...). A line whose
	// first key the default configuration sets too replaces the default
	// line (keys compared as Slurm does, without regard to case), so
	// MinJobAge=5 replaces MinJobAge=30 and a NodeName line the default
	// node; other lines are added.
	Extra string
	// PrivateTmp gives each job its own /tmp and /dev/shm (Slurm's
	// job_container/tmpfs), so that a job does not see what this
	// machine keeps there, as a compute node that does not share the
	// submitting machine's file system. Every file of the Slurm itself
	// must then be outside /tmp: dir must be.
	PrivateTmp bool
}

// Start writes a configuration under dir and starts munged (when it does
// not run), slurmctld and slurmd, and waits until the node is idle.
func Start(dir string) (*Cluster, error) {
	return StartWith(dir, Options{})
}

// StartWith is Start with the configuration changed by o.
func StartWith(dir string, o Options) (*Cluster, error) {
	for _, bin := range []string{"/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged"} {
		if _, err := os.Stat(bin); err != nil {
			return nil, fmt.Errorf("%s missing: install slurm-wlm and munge (.ci/run does)", bin)
		}
	}
	if err := StartMunge(); err != nil {
		return nil, err
	}
	host, err := os.Hostname()
	if err != nil {
		return nil, err
	}
	host = strings.SplitN(host, ".", 2)[0]
	c := &Cluster{Dir: dir, Conf: filepath.Join(dir, "slurm.conf"), Node: host}
	for _, d := range []string{"state", "spool", "log"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, err
		}
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	extra := o.Extra
	if o.PrivateTmp {
		if abs, err := filepath.Abs(dir); err != nil || abs == "/tmp" || strings.HasPrefix(abs, "/tmp/") || strings.HasPrefix(abs, "/dev/shm/") {
			return nil, fmt.Errorf("a Slurm whose jobs have their own /tmp keeps its files outside /tmp and /dev/shm, not in %s", dir)
		}
		base := filepath.Join(dir, "containers")
		if err := os.MkdirAll(base, 0o700); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(dir, "job_container.conf"), []byte("AutoBasePath=true\nBasePath="+base+"\n"), 0o644); err != nil {
			return nil, err
		}
		extra = "JobContainerType=job_container/tmpfs\nPrologFlags=Contain\n" + extra
	}
	conf := config(host, dir, ports, runtime.NumCPU(), extra)
	if err := os.WriteFile(c.Conf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	for _, d := range []string{"/usr/sbin/slurmctld", "/usr/sbin/slurmd"} {
		cmd := exec.Command(d, "-f", c.Conf)
		cmd.Env = c.Environ()
		if out, err := cmd.CombinedOutput(); err != nil {
			c.Stop()
			return nil, fmt.Errorf("%s: %v: %s%s", filepath.Base(d), err, out, c.logs())
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		cmd := exec.Command("sinfo", "--noheader", "--format=%t")
		cmd.Env = c.Environ()
		out, err := cmd.Output()
		if err == nil && strings.TrimSpace(string(out)) == "idle" {
			return c, nil
		}
		if time.Now().After(deadline) {
			c.Stop()
			return nil, fmt.Errorf("the test Slurm's node is not idle within a minute (sinfo: %q, %v)%s", out, err, c.logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// config is the slurm.conf of a test Slurm on host, its files under dir,
// listening on ports (slurmctld's, slurmd's), with one node of cpus
// CPUs; extra's lines replace the default lines of the same first key
// and the rest are added at the end.
func config(host, dir string, ports []int, cpus int, extra string) string {
	conf := fmt.Sprintf(`ClusterName=orrerytest
SlurmctldHost=%[1]s(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=%[2]s/state
SlurmdSpoolDir=%[2]s/spool
SlurmctldPidFile=%[2]s/slurmctld.pid
SlurmdPidFile=%[2]s/slurmd.pid
SlurmctldLogFile=%[2]s/log/slurmctld.log
SlurmdLogFile=%[2]s/log/slurmd.log
SlurmctldPort=%[3]d
SlurmdPort=%[4]d
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
SchedulerType=sched/backfill
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/none
InactiveLimit=0
KillWait=5
MinJobAge=30
SlurmctldTimeout=30
SlurmdTimeout=30
Waittime=0
NodeName=%[1]s NodeAddr=127.0.0.1 CPUs=%[5]d RealMemory=1000 State=UNKNOWN
PartitionName=%[6]s Nodes=%[1]s Default=YES MaxTime=INFINITE State=UP
`, host, dir, ports[0], ports[1], cpus, Partition)
	set := map[string]bool{}
	var add []string
	for _, l := range strings.Split(extra, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		set[confKey(l)] = true
		add = append(add, l)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSuffix(conf, "\n"), "\n") {
		if !set[confKey(l)] {
			out = append(out, l)
		}
	}
	return strings.Join(append(out, add...), "\n") + "\n"
}

// confKey is the first key of a slurm.conf line, in lower case.
func confKey(line string) string {
	k, _, _ := strings.Cut(line, "=")
	return strings.ToLower(strings.TrimSpace(k))
}

// Environ is this process's environment with SLURM_CONF set to the
// cluster's configuration.
func (c *Cluster) Environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLURM_CONF=") {
			env = append(env, kv)
		}
	}
	return append(env, "SLURM_CONF="+c.Conf)
}

// Stop stops the daemons (and the jobs they run) and waits for them to go.
func (c *Cluster) Stop() {
	for _, d := range []string{"slurmd", "slurmctld"} {
		b, err := os.ReadFile(filepath.Join(c.Dir, d+".pid"))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 1 {
			continue
		}
		syscall.Kill(pid, syscall.SIGTERM)
		for i := 0; i < 100 && syscall.Kill(pid, 0) == nil; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// logs is the daemons' last log lines, for an error.
func (c *Cluster) logs() string {
	var b strings.Builder
	for _, f := range []string{"slurmctld.log", "slurmd.log"} {
		data, err := os.ReadFile(filepath.Join(c.Dir, "log", f))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		fmt.Fprintf(&b, "\n--- %s:\n%s", f, strings.Join(lines[max(len(lines)-8, 0):], "\n"))
	}
	return b.String()
}

// StartMunge starts munged unless a credential can already be made (it
// stays running: munged is the machine's, shared by every test that
// needs it).
func StartMunge() error {
	if exec.Command("sh", "-c", "munge -n | unmunge").Run() == nil {
		return nil
	}
	if err := os.MkdirAll("/run/munge", 0o755); err != nil {
		return err
	}
	exec.Command("chown", "munge:munge", "/run/munge").Run()
	cmd := exec.Command("/usr/sbin/munged", "--force")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("munged: %v: %s", err, out.String())
	}
	for i := 0; i < 50; i++ {
		if exec.Command("sh", "-c", "munge -n | unmunge").Run() == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("munged started but gives no credential: %s", out.String())
}

// freePorts returns n TCP ports free on 127.0.0.1 now.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
