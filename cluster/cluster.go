// Package cluster starts an embedded cluster: node agents in this
// process, each joined to the dispatcher over an in-memory connection
// that speaks the same agent protocol a remote node speaks over TLS, and
// served by the same transport (package link), grants and all.
package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"

	"orrery/agent"
	"orrery/cgroup"
	"orrery/link"
	"orrery/protocol"
	"orrery/task"
)

// NodeSpec describes one node of an embedded cluster.
type NodeSpec struct {
	Name     string
	JobLimit int     // jobs at once; 0: its CPUs
	CPUs     int     // CPUs it reports; 0: the machine's share
	Speed    float64 // relative speed it reports; 0: 1
	CPUShare float64 // CPUs' worth of time its processes get (cgroup quota); 0: no limit
	Memory   int64   // bytes its processes may use (cgroup limit); 0: no limit
}

// Limited reports whether the node needs a control group.
func (n NodeSpec) Limited() bool { return n.CPUShare > 0 || n.Memory > 0 }

// Spec is an embedded cluster.
type Spec struct {
	Nodes []NodeSpec
}

// Local returns a cluster of n identical nodes that share this machine's
// CPUs, each with the given job limit (0: its share of the CPUs).
func Local(n, jobLimit int) Spec {
	cpus := max(runtime.NumCPU()/max(n, 1), 1)
	var s Spec
	for i := 1; i <= n; i++ {
		s.Nodes = append(s.Nodes, NodeSpec{Name: fmt.Sprintf("local%d", i), CPUs: cpus, JobLimit: jobLimit})
	}
	return s
}

// Migratable reports whether running jobs can move between the
// cluster's nodes: when one of them runs in a control group of its own
// (the rest run in this process's group), a job's processes move from
// node to node by changing group, keeping their progress.
func (s Spec) Migratable() bool {
	for _, n := range s.Nodes {
		if n.Limited() {
			return true
		}
	}
	return false
}

// Cluster is a running embedded cluster.
type Cluster struct {
	staleOnce sync.Once
	wg        sync.WaitGroup
	mu        sync.Mutex
	errs      []error
	groups    map[string]*cgroup.Group // limited nodes' groups
	local     map[string]bool          // nodes in this process
}

// Options tune the nodes of an embedded cluster.
type Options struct {
	KeepJobDirs bool         // keep successful jobs' directories
	Exec        task.Options // how commands run
	// Self is the orrery executable that limited nodes run as `orrery
	// agent`; "" means this executable.
	Self string
	// GroupPrefix starts the names of the nodes' control groups
	// (PREFIX-PID-NODE); it must not contain '-'.
	GroupPrefix string
	// Root is the root directory as nodes may see it (confined to it).
	Root task.Root
	// Log receives the links' refusals.
	Log *slog.Logger
}

// Start starts every node of spec, each in workDir/NAME, and serves the
// dispatcher's end of each connection with a link to d. The nodes run
// until the dispatcher shuts them down, their connection closes, or ctx
// ends.
func Start(ctx context.Context, spec Spec, workDir string, opts Options, d link.Dispatcher) (*Cluster, error) {
	c := &Cluster{groups: map[string]*cgroup.Group{}, local: map[string]bool{}}
	attach := func(rw io.ReadWriteCloser) {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			conn := protocol.NewConnLimits(rw, protocol.RootLimits)
			// Nodes the root started itself: trusted, and they cannot
			// come back once their connection is gone.
			link.Serve(ctx, conn, d, link.Config{Trusted: true, Root: opts.Root, Log: opts.Log})
		}()
	}
	for _, n := range spec.Nodes {
		if n.Limited() {
			c.removeStaleGroups()
			group := groupName(opts.GroupPrefix, n.Name)
			if err := c.startLimited(ctx, n, filepath.Join(workDir, n.Name), group, opts, attach); err != nil {
				return c, err
			}
			continue
		}
		c.local[n.Name] = true
		dispatcherEnd, nodeEnd := net.Pipe()
		attach(dispatcherEnd)
		cfg := agent.Config{Name: n.Name, CPUs: n.CPUs, Speed: n.Speed, JobLimit: n.JobLimit,
			WorkDir: filepath.Join(workDir, n.Name), KeepJobDirs: opts.KeepJobDirs, Exec: opts.Exec}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := agent.Run(ctx, nodeEnd, cfg); err != nil {
				c.addErr(fmt.Errorf("node %s: %w", cfg.Name, err))
			}
		}()
	}
	return c, nil
}

// Migrate moves the processes of process group pgid (a job's command,
// started by any node of the cluster) to node: into its control group, or
// into this process's group for a node without limits. The processes
// keep running, at the speed and within the memory of their new node.
func (c *Cluster) Migrate(pgid int, node string) error {
	c.mu.Lock()
	g := c.groups[node]
	c.mu.Unlock()
	if g == nil && c.local[node] {
		var err error
		if g, err = cgroup.Self(); err != nil {
			return err
		}
	}
	if g == nil {
		return fmt.Errorf("node %s is not a node of the embedded cluster", node)
	}
	return g.AddGroup(pgid)
}

// Wait waits for every node to stop and returns their errors.
func (c *Cluster) Wait() []error {
	c.wg.Wait()
	return c.errs
}

// groupName names a limited node's control group: the prefix, the PID of
// the process that made it, and the node.
func groupName(prefix string, node string) string {
	return fmt.Sprintf("%s-%d-%s", prefix, os.Getpid(), node)
}

// removeStaleGroups removes, once, the groups that killed runs left.
func (c *Cluster) removeStaleGroups() {
	c.staleOnce.Do(func() {
		cgroup.RemoveStale(func(name string) (int, bool) {
			parts := strings.SplitN(name, "-", 3)
			if len(parts) < 3 {
				return 0, false
			}
			pid, err := strconv.Atoi(parts[1])
			return pid, err == nil
		})
	})
}
