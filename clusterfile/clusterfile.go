// Package clusterfile reads cluster files (docs/cluster-file.md): the
// clusters of a grid, each with its head's address and its nodes, or,
// in a file with no cluster line, the nodes of one local cluster. It
// only reads: starting heads and nodes is other packages' work, so the
// simulator can read the same files without the runtime.
package clusterfile

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// Defaults of a cluster file.
const (
	// DefaultLease is how long a cluster's head keeps working without
	// its root before it stops its nodes and exits.
	DefaultLease = time.Hour
	// DefaultKnownHosts is the known_hosts file that checks the host key
	// of a cluster's head, before ~ is expanded.
	DefaultKnownHosts = "~/.ssh/known_hosts"
	// DefaultSSHPort is the port of an SSH address that names none.
	DefaultSSHPort = 22
	// LocalName is the name of the one cluster of a file with no
	// cluster line.
	LocalName = "local"
)

// Grid is what a cluster file describes: its clusters, in file order.
type Grid struct {
	// File is the file's name as given to Parse, for messages.
	File string
	// Clusters has one cluster, named LocalName, when the file has no
	// cluster line.
	Clusters []Cluster
}

// Cluster is one cluster of a grid: where its head runs and its nodes.
type Cluster struct {
	Name string
	// Line and Col are where its cluster line starts; 0 for the one
	// cluster of a file with no cluster line.
	Line, Col int
	// SSH is where its head is reached by SSH; nil: the head runs on
	// the root's machine.
	SSH *Endpoint
	// Identity is the private key file that logs in to the head ("":
	// ssh-agent); KnownHosts the known_hosts file that checks its host
	// key (DefaultKnownHosts when SSH is set); Binary the orrery
	// executable to copy to a head of another architecture. Paths are
	// absolute: ~ is expanded, and a relative path is taken from the
	// cluster file's directory.
	Identity, KnownHosts, Binary string
	// Listen is the HOST:PORT on the cluster's own network where its
	// nodes may join the head with `orrery agent`; "": none.
	Listen string
	// Lease is how long its head goes on without the root.
	Lease time.Duration
	// Nodes are its node lines; a cluster with Listen or Slurm may have
	// none.
	Nodes []Node
	// Slurm, when set, says the cluster's nodes (beside its node lines)
	// are pilots: batch jobs its head submits to Slurm, each of which
	// starts `orrery agent` on its allocation and joins the head.
	Slurm *Slurm
}

// Defaults of a Slurm cluster.
const (
	// DefaultPilots is how many pilots a Slurm cluster keeps at most.
	DefaultPilots = 4
	// DefaultPilotIdle is how long a pilot with nothing to do waits
	// before it exits.
	DefaultPilotIdle = 2 * time.Minute
	// DefaultPilotJoinWait is how long a pilot may run without reaching
	// its head before the head cancels it.
	DefaultPilotJoinWait = time.Minute
)

// Slurm is how a cluster's head asks Slurm for its pilots.
type Slurm struct {
	// Partition and Account are sbatch's --partition and --account; ""
	// for the site's defaults.
	Partition, Account string
	// Time is each pilot's time limit; 0: the partition's default.
	Time time.Duration
	// Pilots is how many pilots may be pending or running at once.
	Pilots int
	// CPUs and Memory are what each pilot asks for (sbatch
	// --cpus-per-task and --mem); 0: the site's defaults.
	CPUs   int
	Memory int64
	// Idle is how long a pilot with nothing to do waits before it exits.
	Idle time.Duration
	// JoinWait is how long a pilot may run without its agent reaching
	// the head before the head cancels it.
	JoinWait time.Duration
	// Sbatch are further arguments to sbatch, as the file gives them
	// (split at blanks).
	Sbatch []string
}

// Node is one node line.
type Node struct {
	Name string
	// Line and Col are where its node line starts.
	Line, Col int
	// SSH is where the head starts the node's agent by SSH; nil: the
	// node runs on the head's machine.
	SSH      *Endpoint
	JobLimit int     // jobs at once; 0: its CPUs
	CPUs     int     // CPUs it reports; 0: its CPU share rounded up, or its machine's
	CPUShare float64 // CPUs' worth of time its processes get (a control group); 0: no limit
	// Memory is, on the head's machine, the memory its processes may use
	// (a control group), and over SSH the memory it offers; 0: no limit.
	Memory int64
	Speed  float64 // relative speed it reports; 0: CPUShare ÷ CPUs, or 1
}

// Limited reports whether the node needs a control group: a node on the
// head's machine with a CPU share or a memory limit.
func (n Node) Limited() bool { return n.SSH == nil && (n.CPUShare > 0 || n.Memory > 0) }

// Endpoint is an SSH address.
type Endpoint struct {
	User string // "": the user of whoever connects
	Host string // a name or an IP address, without brackets
	Port int
}

// String returns USER@HOST:PORT, an IPv6 host in brackets.
func (e Endpoint) String() string {
	host := e.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	s := host + ":" + strconv.Itoa(e.Port)
	if e.User != "" {
		s = e.User + "@" + s
	}
	return s
}

// Remote reports whether running the grid needs more than this machine:
// a cluster whose head or some node is reached by SSH, or that listens
// for nodes.
func (c *Cluster) Remote() bool {
	if c.SSH != nil || c.Listen != "" || c.Slurm != nil {
		return true
	}
	for _, n := range c.Nodes {
		if n.SSH != nil {
			return true
		}
	}
	return false
}

// Load reads the cluster file at path.
func Load(path string) (*Grid, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(path, f)
}

// ParseSize reads a size in bytes with an optional K, M or G suffix:
// 512M, 2G, 1048576.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 1 || v > (1<<62)/mult {
		return 0, fmt.Errorf("want a size such as 512M")
	}
	return v * mult, nil
}
