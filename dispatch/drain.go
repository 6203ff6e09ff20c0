package dispatch

import (
	"fmt"
	"time"

	"orrery/protocol"
	"orrery/sched"
)

// Nodes that end and nodes that drain: batch-system pilots.
//
// A pilot's agent says in its register how long it has left before the
// batch system ends it (protocol.Register.EndsIn: a duration, since the
// clocks differ); the dispatcher turns that into a time on its own clock
// and gives it to the core as the node's end (sched.Node.End), so no
// attempt starts there that is expected to run past it. A node that
// registers again says it afresh.
//
// A node that drains (protocol.Heartbeat.Draining: it was idle for its
// --idle-exit, or its end is near) starts nothing more (sched's Drain:
// no failure, no out-of-service warning), and once no attempt of the
// dispatcher's runs there (nor one it cancelled that has not confirmed
// it stopped, nor a start waiting for it to reconnect) it is told to
// shut down. The loop is serial and the connection ordered, so no start
// crosses the shutdown. Its connection's end then drops it quietly
// ("node.left"); an attempt still running when the batch system kills
// it is lost with the node, as on any lost node.

// drainer is a core that lets nodes drain (sched.Core; not a grid's,
// whose nodes are cluster heads).
type drainer interface {
	Drain(id string) bool
}

var _ drainer = (*sched.Core)(nil)

// endOf is the end a node's register says it has, on the dispatcher's
// clock (zero: none).
func (r *runState) endOf(reg protocol.Register) time.Time {
	if reg.EndsIn > 0 && !reg.Head {
		return r.now().Add(reg.EndsIn)
	}
	return time.Time{}
}

// resumeEnd takes the end a node that registered again says it has now.
func (r *runState) resumeEnd(nc *nodeConn, reg protocol.Register) {
	if nc.head {
		return
	}
	if end := r.endOf(reg); !end.Equal(nc.end) {
		nc.end = end
		r.core.AddNode(r.schedNode(nc), r.now())
	}
	if nc.draining && nc.shut {
		// Told to shut down on a connection that dropped: told again
		// once it has nothing left to run.
		nc.shut = false
		r.drains[nc.id] = true
	}
}

// drain takes a node that says it drains out of the placement: nothing
// more starts there, and it is shut down once its attempts have ended.
func (r *runState) drain(nc *nodeConn) {
	if nc.draining || nc.head {
		return
	}
	dr, ok := r.core.(drainer)
	if !ok {
		return
	}
	nc.draining = true
	dr.Drain(nc.id)
	r.drains[nc.id] = true
	r.batch.Event(r.exp.ID, "node.draining", 0, nc.id, "takes no more jobs; shut down once its attempts have ended")
	r.d.log.Info("node drains: no new attempt goes there; it is shut down once its attempts have ended",
		"node", nc.id, "running", r.busy()[nc.id])
}

// busy counts, by node, the attempts the dispatcher has there: running,
// cancelled and not yet confirmed stopped, or waiting for the node to
// reconnect.
func (r *runState) busy() map[string]int {
	k := map[string]int{}
	for _, j := range r.jobs {
		for _, node := range j.runs {
			k[node]++
		}
	}
	for _, s := range r.stopping {
		k[s.node]++
	}
	return k
}

// shutDrained tells each node that drains and has no attempt left to
// shut down (once what ended there is in the store: act calls it after
// the batch is applied).
func (r *runState) shutDrained() {
	if len(r.drains) == 0 {
		return
	}
	busy := r.busy()
	for id := range r.drains {
		nc := r.nodes[id]
		switch {
		case nc == nil:
			delete(r.drains, id)
		case nc.link == nil || busy[id] > 0 || len(nc.waiting) > 0:
			// Not now: it runs attempts, or is away.
		default:
			delete(r.drains, id)
			nc.shut = true
			r.d.log.Info("node drained: shut down", "node", id)
			nc.link.Shutdown(fmt.Sprintf("node %s drained", id))
		}
	}
}
