package agent

import (
	"context"
	"fmt"
	"time"
)

// Draining. A node that drains takes no more jobs: it says so in its
// heartbeats (protocol.Heartbeat.Draining, and once out of the usual
// cycle when it starts), the dispatcher starts nothing more there, and
// once what runs there has ended it sends a shutdown, on which Serve or
// Run returns nil. A node drains, for good, when
//
//   - Config.IdleExit is set and it has had no attempt for that long
//     since it registered or its last attempt ended (a batch pilot that
//     finds no work gives its allocation back), or
//   - Config.EndsIn is set and the end less the drain margin has come
//     (see drainMargin): what it runs can end before the batch system
//     kills it, and the dispatcher keeps attempts expected to run past
//     the end off it in the first place (the register says how long is
//     left: Register.EndsIn).

// endsIn is how long the node has left before its end, as of now on the
// agent's own monotonic clock: what a register says. 0: no end; at
// least 1 ns once the end has passed (it still has one).
func (n *agentNode) endsIn() time.Duration {
	if n.cfg.EndsIn <= 0 {
		return 0
	}
	return max(n.cfg.EndsIn-time.Since(n.born), time.Nanosecond)
}

// drainMargin is how long before its end a node with a time limit of
// limit drains: 5% of the limit, at least a minute, and never more than
// half the limit.
func drainMargin(limit time.Duration) time.Duration {
	return min(max(time.Minute, limit/20), limit/2)
}

// watchDrain starts the goroutine that has the node drain when its
// idle time or its end says so, until ctx ends (finish waits for it).
func (n *agentNode) watchDrain(ctx context.Context) {
	if n.cfg.IdleExit <= 0 && n.cfg.EndsIn <= 0 {
		return
	}
	every := time.Second
	if n.cfg.IdleExit > 0 {
		every = min(every, max(n.cfg.IdleExit/10, 10*time.Millisecond))
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		var end *time.Timer // fires at the end less the margin
		var endC <-chan time.Time
		if n.cfg.EndsIn > 0 {
			end = time.NewTimer(n.cfg.EndsIn - drainMargin(n.cfg.EndsIn) - time.Since(n.born))
			defer end.Stop()
			endC = end.C
		}
		var tick <-chan time.Time
		if n.cfg.IdleExit > 0 {
			t := time.NewTicker(every)
			defer t.Stop()
			tick = t.C
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-endC:
				n.drain(fmt.Sprintf("its end is near (%s left)", n.endsIn().Round(time.Second)))
				return
			case <-tick:
				if idle := n.idleFor(); idle >= n.cfg.IdleExit {
					n.drain(fmt.Sprintf("no attempt for %s", idle.Round(time.Millisecond)))
					return
				}
			}
		}
	}()
}

// idleFor is how long the node has had no attempt: since it registered
// or its last attempt ended; 0 while an attempt runs or has an end not
// yet sent, or before it first registered.
func (n *agentNode) idleFor() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.active.IsZero() || len(n.running) > 0 || len(n.ending) > 0 || len(n.unsent) > 0 {
		return 0
	}
	return time.Since(n.active)
}

// drain has the node drain, for good, and its next heartbeat say so at
// once.
func (n *agentNode) drain(why string) {
	if n.draining.Swap(true) {
		return
	}
	n.cfg.Status(fmt.Sprintf("draining: %s; taking no more jobs, leaving once the %d running have ended", why, n.runningCount()))
	select {
	case n.drainNow <- struct{}{}:
	default:
	}
}
