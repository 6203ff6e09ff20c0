package dispatch

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"orrery/sched"
)

// ErrAllOutOfService is the error Run's error (an *OutOfServiceError)
// wraps when work was left and every node left was out of service (see
// sched.OutOfService) for Config.NoNodes: nothing could run the jobs.
// They are saved; a later run does them.
var ErrAllOutOfService = errors.New("every node is out of service")

// takeOut records the core's decision to take a node out of service,
// and says so on the log once it is in the store. Its running attempts
// are left to finish.
func (r *runState) takeOut(o sched.OutOfService) {
	r.batch.Event(r.exp.ID, "node.out", 0, o.Node, o.Reason)
	r.outOfService[o.Node] = outOf{reason: o.Reason, since: r.now()}
	r.prog.OutOfService = r.core.NodesOutOfService()
	r.afterApply = append(r.afterApply, func() {
		r.d.log.Warn("node taken out of service: its attempts keep failing outside the jobs' commands; no new attempt goes there, and its jobs run elsewhere without spending their retries",
			"node", o.Node, "reason", o.Reason)
	})
}

// outOf is why and since when a node is out of service.
type outOf struct {
	reason string
	since  time.Time
}

// OutOfServiceError is Run's error when work was left and no node in
// service was connected for Config.NoNodes, while nodes were out of
// service: nothing could run the jobs. They are saved (not failed); a
// later run does them. errors.Is(err, ErrAllOutOfService) holds.
type OutOfServiceError struct {
	Nodes []NodeOut // the nodes out of service, by ID
}

// NodeOut is a node out of service, and why.
type NodeOut struct {
	Node, Reason string
}

func (e *OutOfServiceError) Error() string {
	var why []string
	for _, n := range e.Nodes {
		why = append(why, "node "+n.Node+": "+n.Reason)
	}
	return fmt.Sprintf("%v (%s); the jobs left are saved", ErrAllOutOfService, strings.Join(why, "; "))
}

func (e *OutOfServiceError) Unwrap() error { return ErrAllOutOfService }

// allOutOfService is Run's error when the wait for a node ended and
// nodes are out of service (nil when none is).
func (r *runState) allOutOfService() error {
	e := &OutOfServiceError{}
	for _, id := range slices.Sorted(maps.Keys(r.outOfService)) {
		if r.nodes[id] != nil {
			e.Nodes = append(e.Nodes, NodeOut{Node: id, Reason: r.outOfService[id].reason})
		}
	}
	if len(e.Nodes) == 0 {
		return nil
	}
	return e
}
