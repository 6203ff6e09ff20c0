package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"orrery/cgroup"
)

// startLimited starts a node whose CPU or memory is limited as an
// `orrery agent` child process with its own control group (--cgroup),
// into which it puts every process of every job it runs as soon as it
// starts, so that they are held to the limits. The agent itself runs
// outside the group: the limits stand for the node's speed and size
// as its jobs see them, and on a node of a tenth of a CPU the agent's
// own work (staging, starting, reporting) would otherwise slow its jobs
// by as much as a tenth. It talks to the dispatcher over a socket pair,
// with the same agent protocol.
func (c *Cluster) startLimited(ctx context.Context, n NodeSpec, workDir, group string, opts Options, attach func(io.ReadWriteCloser)) error {
	self := opts.Self
	if self == "" {
		var err error
		if self, err = os.Executable(); err != nil {
			return err
		}
	}
	g, err := cgroup.New(group, cgroup.Limits{CPUs: n.CPUShare, Memory: n.Memory})
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		g.Remove()
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	mine, theirs := os.NewFile(uintptr(fds[0]), "dispatcher"), os.NewFile(uintptr(fds[1]), "agent")
	defer theirs.Close()
	conn, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		g.Remove()
		return err
	}
	args := []string{"agent", "--connect", "fd:3", "--name", n.Name, "--cpus", strconv.Itoa(max(n.CPUs, 1)),
		"--job-limit", strconv.Itoa(n.JobLimit), "--speed", strconv.FormatFloat(max(n.Speed, 0), 'g', -1, 64),
		"--work-dir", workDir, "--cgroup", group}
	if n.Memory > 0 {
		args = append(args, "--memory", strconv.FormatInt(n.Memory, 10))
	}
	if opts.KeepJobDirs {
		args = append(args, "--keep")
	}
	cmd := exec.CommandContext(ctx, self, args...)
	cmd.ExtraFiles = []*os.File{theirs}
	cmd.Stderr = os.Stderr
	// Killed with this process, even by SIGKILL: its watchdog then kills
	// its jobs at once. (The signal comes when the thread that started
	// it ends; Go keeps its threads unless one is locked and its
	// goroutine returns, which this one is not.)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Start(); err != nil {
		conn.Close()
		g.Remove()
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	c.mu.Lock()
	c.groups[n.Name] = g
	c.mu.Unlock()
	attach(conn)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := cmd.Wait()
		c.mu.Lock()
		delete(c.groups, n.Name)
		c.mu.Unlock()
		if err == nil || ctx.Err() != nil {
			// The node ended with the run: what its jobs left goes,
			// even outside their process groups. (A node that failed
			// mid-run may hold jobs migrated from other nodes: Remove
			// hands them back to this process's group.)
			g.Kill()
		}
		g.Remove()
		if err != nil && ctx.Err() == nil {
			c.addErr(fmt.Errorf("node %s: %w", n.Name, err))
		}
	}()
	return nil
}

func (c *Cluster) addErr(err error) {
	c.mu.Lock()
	c.errs = append(c.errs, err)
	c.mu.Unlock()
}
