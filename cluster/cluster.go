// Package cluster starts an embedded cluster: node agents in this
// process, each joined to the dispatcher over an in-memory connection
// that speaks the same agent protocol a remote node speaks over TCP.
package cluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"sync"

	"orrery/agent"
	"orrery/node"
)

// NodeSpec describes one node of an embedded cluster.
type NodeSpec struct {
	Name     string
	JobLimit int     // jobs at once; 0: its CPUs
	CPUs     int     // CPUs it reports; 0: the machine's share
	Speed    float64 // relative speed it reports; 0: 1
}

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

// Cluster is a running embedded cluster.
type Cluster struct {
	wg   sync.WaitGroup
	mu   sync.Mutex
	errs []error
}

// Options tune the nodes of an embedded cluster.
type Options struct {
	KeepJobDirs bool          // keep successful jobs' directories
	Exec        agent.Options // how commands run
}

// Start starts every node of spec, each in workDir/NAME, and hands the
// dispatcher's end of each connection to attach. The nodes run until
// the dispatcher shuts them down, their connection closes, or ctx ends.
func Start(ctx context.Context, spec Spec, workDir string, opts Options, attach func(io.ReadWriteCloser)) *Cluster {
	c := &Cluster{}
	for _, n := range spec.Nodes {
		dispatcherEnd, nodeEnd := net.Pipe()
		attach(dispatcherEnd)
		cfg := node.Config{Name: n.Name, CPUs: n.CPUs, Speed: n.Speed, JobLimit: n.JobLimit,
			WorkDir: filepath.Join(workDir, n.Name), KeepJobDirs: opts.KeepJobDirs, Exec: opts.Exec}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := node.Run(ctx, nodeEnd, cfg); err != nil {
				c.mu.Lock()
				c.errs = append(c.errs, fmt.Errorf("node %s: %w", cfg.Name, err))
				c.mu.Unlock()
			}
		}()
	}
	return c
}

// Wait waits for every node to stop and returns their errors.
func (c *Cluster) Wait() []error {
	c.wg.Wait()
	return c.errs
}
