package cluster

import (
	"fmt"
	"io"

	"orrery/clusterfile"
)

// gridNote ends the refusal of a cluster file that the embedded cluster
// cannot run: a grid, which runs through its clusters' heads.
const gridNote = "the embedded cluster runs the nodes of one cluster on this machine; a grid (several clusters, a head or nodes over SSH, a listen) runs through its clusters' heads, which orrery run --cluster FILE starts"

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
// clusters, SSH, or listen) is refused with one line that names the
// first cluster it cannot run: a grid runs through its clusters' heads
// (see ForHead).
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
		return fmt.Errorf("%s:%d:%d: cluster %s: %s; %s", g.File, line, col, c.Name, why, gridNote)
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
	s, _ := ForHead(g.Clusters[0])
	return s, nil
}

// ForHead returns a cluster's nodes as its head runs them: the nodes on
// the head's own machine, as an embedded cluster (local), and the node
// lines `node NAME ssh [USER@]HOST` of the nodes it starts on other
// machines over SSH (overSSH, in file order). The cluster's own ssh and
// listen are its head's business (how the root reaches the head, where
// nodes may join it), so they are not refused here.
func ForHead(c clusterfile.Cluster) (local Spec, overSSH []clusterfile.Node) {
	for _, n := range c.Nodes {
		if n.SSH != nil {
			overSSH = append(overSSH, n)
			continue
		}
		local.Nodes = append(local.Nodes, NodeSpec{Name: n.Name, JobLimit: n.JobLimit, CPUs: n.CPUs,
			Speed: n.Speed, CPUShare: n.CPUShare, Memory: n.Memory})
	}
	return local, overSSH
}

// ParseSize reads a size in bytes with an optional K, M or G suffix:
// 512M, 2G, 1048576.
func ParseSize(s string) (int64, error) { return clusterfile.ParseSize(s) }
