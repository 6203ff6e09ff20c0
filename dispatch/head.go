package dispatch

import (
	"orrery/protocol"
)

// Recorder is a Node that must hear when the root has taken an
// attempt's end (a cluster head, which keeps each end in its journal
// until then, so an end lost with a connection is sent again and one
// the root has is never held for ever). A transport that carries heads
// implements it; the dispatcher calls it once the end is in the store,
// also for an end it refused as stale.
type Recorder interface {
	Recorded(job int64, attempt int)
}

// recorded tells a head, once the batch is in the store, that the end
// of an attempt it reported was taken.
func (r *runState) recorded(nc *nodeConn, job int64, attempt int) {
	if !nc.head {
		return
	}
	n := nc.link
	rec, ok := n.(Recorder)
	if !ok {
		return
	}
	r.afterApply = append(r.afterApply, func() {
		if nc.link == n {
			rec.Recorded(job, attempt)
		}
	})
}

// headBeat takes a head's view of its cluster from its heartbeat: how
// many of the root's attempts it wants to hold now becomes its job
// limit.
func (r *runState) headBeat(nc *nodeConn, cs *protocol.ClusterStatus) {
	if !nc.head || cs == nil {
		return
	}
	nc.status = *cs
	cpus := clampInt(cs.CPUs, 1, maxCPUs)
	limit := clampInt(cs.Depth, 1, maxHeadDepth)
	if limit != nc.limit || cpus != nc.cpus {
		nc.limit, nc.cpus = limit, cpus
		r.core.AddNode(r.schedNode(nc), r.now())
	}
}

// maxHeadDepth bounds how many of the root's attempts one head may hold.
const maxHeadDepth = 1 << 16
