package sched

import (
	"fmt"
	"strings"
)

// Placement is how a policy picks a node for a job among those with a
// free slot.
type Placement int

const (
	// FirstFree takes the first node, in the order the nodes joined
	// (EnFuzion's order of starting them), that has a free slot.
	FirstFree Placement = iota
	// Fastest takes the slot where the job will run fastest now: the
	// node's speed times the CPU share the job would get there. With a
	// learned model, the longest jobs get the fastest slots.
	Fastest
)

// GridMode is how a policy shares jobs between clusters.
type GridMode int

const (
	// GridGlobal places jobs from one queue straight onto nodes of any
	// cluster, as if the clusters were one machine.
	GridGlobal GridMode = iota
	// GridRate is the Multi EnFuzion Client's: each cluster holds a
	// queue of its own, sized in proportion to its measured job rate (its
	// CPU power until it has one) so that all finish together; waiting
	// jobs move between cluster queues when the rates say so.
	GridRate
)

// Policy is a scheduling policy: a named combination of the mechanisms
// the core implements.
type Policy struct {
	Name    string
	Summary string
	// Placement picks nodes for waiting jobs.
	Placement Placement
	// NoQueue starts every job at once on the home node (the first node
	// to join) and leaves spreading them to the balancer: MOSIX alone.
	NoQueue bool
	// Balance moves running jobs from nodes where they get less CPU (per
	// unit of speed) to nodes where they would get more, and off nodes
	// whose resident memory exceeds their RAM (MOSIX's load balancing and
	// memory ushering). It acts only when the driver can move jobs
	// (Config.Moves), inside a cluster that is not Pinned; under a policy
	// that learns, it levels load only once no job waits.
	Balance bool
	// Learn predicts each job's work and memory from finished jobs (as a
	// function of its parameter values), starts the longest expected job
	// first, and chooses processes per CPU by itself.
	Learn bool
	// Stragglers, once no job waits, moves (Config.Moves: inside their
	// cluster, or to another with Config.MovesAcross) or duplicates
	// (Config.Duplicates, anywhere) running jobs onto faster idle slots,
	// when that finishes them sooner.
	Stragglers bool
	// Grid is how the jobs are shared between clusters.
	Grid GridMode
}

// The policies.
var (
	FCFS = Policy{Name: "fcfs", Summary: "EnFuzion: the next job to the first free slot in node order; never moves a job"}

	MOSIX = Policy{Name: "mosix", NoQueue: true, Balance: true,
		Summary: "MOSIX alone: every job starts at once on the home node; load balancing and memory ushering move them"}

	FCFSMOSIX = Policy{Name: "fcfs+mosix", Balance: true,
		Summary: "EnFuzion over MOSIX: a job limit per node, and migration to balance load and memory"}

	MEC = Policy{Name: "mec", Balance: true, Grid: GridRate,
		Summary: "the Multi EnFuzion Client: cluster queues sized by measured job rate, fcfs+mosix inside each"}

	Orrery = Policy{Name: "orrery", Placement: Fastest, Balance: true, Learn: true, Stragglers: true,
		Summary: "learns jobs' work and memory, longest expected first on the fastest slot, processes per CPU chosen by itself, stragglers moved or duplicated"}
)

// Policies lists the policies, the default first.
var Policies = []Policy{Orrery, FCFS, MOSIX, FCFSMOSIX, MEC}

// PolicyNames returns the policies' names, the default first.
func PolicyNames() []string {
	names := make([]string, len(Policies))
	for i, p := range Policies {
		names[i] = p.Name
	}
	return names
}

// PolicyByName returns the named policy.
func PolicyByName(name string) (Policy, error) {
	for _, p := range Policies {
		if p.Name == name {
			return p, nil
		}
	}
	return Policy{}, fmt.Errorf("unknown policy %q (want one of %s)", name, strings.Join(PolicyNames(), ", "))
}
