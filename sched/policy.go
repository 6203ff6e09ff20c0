package sched

import (
	"fmt"
	"slices"
	"strings"
)

// FCFS is EnFuzion's policy: the next job goes to the first node, in the
// order the nodes joined, that has a free slot. It never moves a job.
type FCFS struct{}

// Name implements Policy.
func (FCFS) Name() string { return "fcfs" }

// Pick implements Policy.
func (FCFS) Pick(free []NodeView, tried []string) int {
	return firstUntried(free, tried, func(a, b NodeView) bool { return a.Order < b.Order })
}

// Fastest is Orrery's default: the next job goes where it will run
// fastest now, the node whose CPU speed times the CPU share a new job
// would get there is highest; ties go to the node that joined first.
type Fastest struct{}

// Name implements Policy.
func (Fastest) Name() string { return "orrery" }

// Pick implements Policy.
func (Fastest) Pick(free []NodeView, tried []string) int {
	return firstUntried(free, tried, func(a, b NodeView) bool {
		ra, rb := rate(a), rate(b)
		if ra != rb {
			return ra > rb
		}
		return a.Order < b.Order
	})
}

// rate is the speed a new job would run at on n.
func rate(n NodeView) float64 {
	share := float64(max(n.CPUs, 1)) / float64(n.Running+1)
	return n.Speed * min(share, 1)
}

// firstUntried returns the best node by less, preferring nodes not in
// tried when there is one.
func firstUntried(free []NodeView, tried []string, less func(a, b NodeView) bool) int {
	best := -1
	for pass := 0; pass < 2 && best < 0; pass++ {
		for i, n := range free {
			if pass == 0 && slices.Contains(tried, n.ID) {
				continue
			}
			if best < 0 || less(n, free[best]) {
				best = i
			}
		}
	}
	return best
}

// Policies lists the policies by name.
var Policies = []Policy{Fastest{}, FCFS{}}

// PolicyByName returns the named policy.
func PolicyByName(name string) (Policy, error) {
	var names []string
	for _, p := range Policies {
		if p.Name() == name {
			return p, nil
		}
		names = append(names, p.Name())
	}
	return nil, fmt.Errorf("unknown policy %q (want one of %s)", name, strings.Join(names, ", "))
}
