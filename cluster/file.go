package cluster

import (
	"fmt"
	"io"

	"orrery/clusterfile"
)

// notYet ends the refusal of a cluster file that the embedded cluster
// cannot run.
const notYet = "running over several clusters or over SSH (the grid) is not built yet: orrery run takes a file of one cluster whose nodes run on this machine"

// Load reads a cluster file (docs/cluster-file.md) of one cluster whose
// nodes run on this machine: node lines,
//
//	node NAME [job-limit N] [cpus N] [cpu-share F] [memory SIZE] [speed F]
//
// with no cluster line, or under one cluster line with no ssh or listen.
// cpu-share is how many CPUs' worth of time the node's processes get
// (enforced with a cgroup CPU quota: 0.5 is half of one CPU); memory
// (enforced with a cgroup memory limit) takes a suffix K, M or G; cpus is
// the CPUs the node reports (default: its share rounded up); speed is the
// relative speed it reports (default: share ÷ cpus). A grid (several
// clusters, or SSH) is refused with one line that names the first
// cluster it cannot run.
func Load(path string) (Spec, error) {
	g, err := clusterfile.Load(path)
	if err != nil {
		return Spec{}, err
	}
	return FromGrid(g)
}

// Parse reads a cluster file from r, as Load does; name is used in
// messages.
func Parse(name string, r io.Reader) (Spec, error) {
	g, err := clusterfile.Parse(name, r)
	if err != nil {
		return Spec{}, err
	}
	return FromGrid(g)
}

// FromGrid returns the embedded cluster of a grid of one cluster whose
// nodes all run on this machine, or an error that names the first
// cluster that is not that.
func FromGrid(g *clusterfile.Grid) (Spec, error) {
	refuse := func(line, col int, c clusterfile.Cluster, why string) error {
		if line == 0 {
			line, col = 1, 1
		}
		return fmt.Errorf("%s:%d:%d: cluster %s: %s; %s", g.File, line, col, c.Name, why, notYet)
	}
	for i, c := range g.Clusters {
		switch {
		case i > 0:
			return Spec{}, refuse(c.Line, c.Col, c, "a second cluster in the file")
		case c.SSH != nil:
			return Spec{}, refuse(c.Line, c.Col, c, "its head is reached by ssh")
		case c.Listen != "":
			return Spec{}, refuse(c.Line, c.Col, c, fmt.Sprintf("listen %s is for a cluster's head", c.Listen))
		}
		for _, n := range c.Nodes {
			if n.SSH != nil {
				return Spec{}, refuse(n.Line, n.Col, c, fmt.Sprintf("node %s is reached by ssh", n.Name))
			}
		}
	}
	var s Spec
	for _, n := range g.Clusters[0].Nodes {
		s.Nodes = append(s.Nodes, NodeSpec{Name: n.Name, JobLimit: n.JobLimit, CPUs: n.CPUs,
			Speed: n.Speed, CPUShare: n.CPUShare, Memory: n.Memory})
	}
	return s, nil
}

// ParseSize reads a size in bytes with an optional K, M or G suffix:
// 512M, 2G, 1048576.
func ParseSize(s string) (int64, error) { return clusterfile.ParseSize(s) }
