package sitetest

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"sync/atomic"
	"testing"

	"orrery/cgroup"
	"orrery/internal/netnstest"
)

var (
	groupSeq atomic.Int64
	// groupName matches the control groups these tests make:
	// sitetest-PID-N, PID being the test process that made them.
	groupName = regexp.MustCompile(`^sitetest-(\d+)-\d+$`)
	groupGate = netnstest.Gate{What: "the CPU group tests", Needs: "root and the cgroup cpu controller", Probe: groupProbe}
)

// groupProbe removes the groups of test processes that were killed and
// checks that a group with a CPU quota can be made here.
func groupProbe() error {
	cgroup.RemoveStale(func(name string) (int, bool) {
		m := groupName.FindStringSubmatch(name)
		if m == nil {
			return 0, false
		}
		pid, err := strconv.Atoi(m[1])
		return pid, err == nil
	})
	g, err := cgroup.New(fmt.Sprintf("sitetest-%d-0", os.Getpid()), cgroup.Limits{CPUs: 0.5})
	if err != nil {
		return err
	}
	return g.Remove()
}

// CPUGroup is a control group (package cgroup, v2 or v1) with a CPU
// quota: the processes in it together get at most CPUs CPUs' worth of
// time, as a slower node would. When the test ends its processes are
// killed and it is removed.
type CPUGroup struct {
	// Name is its name below Orrery's parent group.
	Name string
	// CPUs is its quota.
	CPUs float64
	// Group is the group itself.
	Group *cgroup.Group
}

// NewCPUGroup makes a group with a quota of cpus CPUs (0.25: a quarter
// of one). It skips the test where groups cannot be made, except under
// CI, where it fails it.
func NewCPUGroup(t testing.TB, cpus float64) *CPUGroup {
	t.Helper()
	groupGate.Require(t)
	if cpus <= 0 {
		t.Fatalf("NewCPUGroup: quota %v: want more than 0", cpus)
	}
	name := fmt.Sprintf("sitetest-%d-%d", os.Getpid(), groupSeq.Add(1))
	g, err := cgroup.New(name, cgroup.Limits{CPUs: cpus})
	if err != nil {
		t.Fatalf("NewCPUGroup: %v", err)
	}
	t.Cleanup(func() {
		if err := g.Kill(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := g.Remove(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	return &CPUGroup{Name: name, CPUs: cpus, Group: g}
}

// Add moves process pid into the group; the children it starts later
// are in it too (those it started before are not).
func (g *CPUGroup) Add(t testing.TB, pid int) {
	t.Helper()
	if err := g.Group.Add(pid); err != nil {
		t.Fatalf("group %s: add process %d: %v", g.Name, pid, err)
	}
}

// Start starts cmd in the group from its first instruction: a shell
// that waits on a pipe is started in its place, moved into the group,
// and then execs cmd's program (so cmd.Process is the program's own).
// cmd may be a Site's Command. The caller waits for cmd as usual.
func (g *CPUGroup) Start(t testing.TB, cmd *exec.Cmd) {
	t.Helper()
	if cmd.Err != nil {
		t.Fatalf("group %s: %v", g.Name, cmd.Err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	fd := 3 + len(cmd.ExtraFiles)
	cmd.ExtraFiles = append(cmd.ExtraFiles, r)
	script := fmt.Sprintf(`read go <&%d || exit 125; exec %d<&-; exec "$@"`, fd, fd)
	argv := append([]string{"/bin/sh", "-c", script, "sh", cmd.Path}, cmd.Args[1:]...)
	cmd.Path, cmd.Args = "/bin/sh", argv
	err = cmd.Start()
	r.Close()
	if err != nil {
		t.Fatalf("group %s: start %s: %v", g.Name, argv[4], err)
	}
	if err := g.Group.Add(cmd.Process.Pid); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("group %s: add process %d: %v", g.Name, cmd.Process.Pid, err)
	}
	if _, err := w.Write([]byte("go\n")); err != nil {
		t.Fatalf("group %s: release %s: %v", g.Name, argv[4], err)
	}
}

// Shell starts `sh -c script` in the group (as Start does), its output
// kept; it is killed, if it still runs, when the test ends.
func (g *CPUGroup) Shell(t testing.TB, script string) *Process {
	t.Helper()
	p := &Process{Cmd: exec.Command("/bin/sh", "-c", script), Stdout: &Buffer{}, Stderr: &Buffer{}, done: make(chan struct{})}
	p.Cmd.Stdout, p.Cmd.Stderr = p.Stdout, p.Stderr
	g.Start(t, p.Cmd)
	go func() { p.err = p.Cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.Cmd.Process.Kill(); <-p.done })
	return p
}
