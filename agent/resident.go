package agent

import (
	"cmp"
	"slices"

	"orrery/procfs"
	"orrery/protocol"
	"orrery/task"
)

// options returns the options the attempt's commands run with: exec, with
// a Started hook that keeps the process group of the command the attempt
// runs now (and calls exec's own hook, if any).
func (a *runningAttempt) options(exec task.Options) task.Options {
	outer := exec.Started
	exec.Started = func(pgid int) func() {
		var ended func()
		if outer != nil {
			ended = outer(pgid)
		}
		a.pgid.Store(int64(pgid))
		return func() {
			a.pgid.CompareAndSwap(int64(pgid), 0)
			if ended != nil {
				ended()
			}
		}
	}
	return exec
}

// heartbeat describes the node now: how many attempts it runs, its load,
// and the resident memory of each attempt that runs a process.
func (n *agentNode) heartbeat() *protocol.Heartbeat {
	groups := map[int]attemptKey{}
	n.mu.Lock()
	running := len(n.running)
	for k, a := range n.running {
		if g := a.pgid.Load(); g > 0 {
			groups[int(g)] = k
		}
	}
	n.mu.Unlock()
	return &protocol.Heartbeat{Running: running, Load: loadAverage(), Resident: resident(groups), Draining: n.draining.Load()}
}

// resident returns the resident memory of the attempts that run a
// process, given the process group of each, ordered by job and attempt.
// An attempt not in groups (staging files, between commands), or whose
// group has no process left, is left out rather than reported as 0.
func resident(groups map[int]attemptKey) []protocol.Resident {
	if len(groups) == 0 {
		return nil
	}
	want := make(map[int]bool, len(groups))
	for g := range groups {
		want[g] = true
	}
	var out []protocol.Resident
	for g, bytes := range procfs.GroupRSS(want) {
		k := groups[g]
		out = append(out, protocol.Resident{Job: k.job, Attempt: k.attempt, Bytes: bytes, Group: g})
	}
	slices.SortFunc(out, func(a, b protocol.Resident) int {
		return cmp.Or(cmp.Compare(a.Job, b.Job), cmp.Compare(a.Attempt, b.Attempt))
	})
	return out
}
