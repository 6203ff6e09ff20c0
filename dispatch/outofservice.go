package dispatch

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"orrery/sched"
)

// ErrAllOutOfService is the error Run's error wraps when work is left
// and every node left was taken out of service (see sched.OutOfService):
// nothing can run the jobs. They are saved; a later run does them.
var ErrAllOutOfService = errors.New("every node is out of service")

// takeOut records the core's decision to take a node out of service,
// and says so on the log once it is in the store. Its running attempts
// are left to finish.
func (r *runState) takeOut(o sched.OutOfService) {
	r.batch.Event(r.exp.ID, "node.out", 0, o.Node, o.Reason)
	r.outOfService[o.Node] = o.Reason
	r.prog.OutOfService = r.core.NodesOutOfService()
	r.afterApply = append(r.afterApply, func() {
		r.d.log.Warn("node taken out of service: its attempts keep failing outside the jobs' commands; no new attempt goes there, and its jobs run elsewhere without spending their retries",
			"node", o.Node, "reason", o.Reason)
	})
}

// allOutOfService is Run's error when work is left, nodes are there, but
// every one of them is out of service and nothing runs any more.
func (r *runState) allOutOfService() error {
	var why []string
	for _, id := range slices.Sorted(maps.Keys(r.outOfService)) {
		if r.nodes[id] != nil {
			why = append(why, "node "+id+": "+r.outOfService[id])
		}
	}
	return fmt.Errorf("%w (%s); the jobs left are saved: see orrery status, and run again once a node works", ErrAllOutOfService, strings.Join(why, "; "))
}

// stalled reports whether every node the run counts on is out of
// service and nothing runs on them any more (their attempts were left
// to finish), so no job can ever start.
func (r *runState) stalled() bool {
	return len(r.nodes) > 0 && r.core.NodesInService() == 0 && r.core.Running() == 0 && len(r.stopping) == 0
}
