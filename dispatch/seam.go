package dispatch

import (
	"time"

	"orrery/protocol"
	"orrery/task"
)

// Node is one node as the dispatcher reaches it, whatever carries it: an
// agent-protocol connection (package link, over an in-memory pipe, a
// socket pair or the root's TLS port), and later a cluster head or a
// batch-system pilot. Every method returns at once: a transport queues
// what it sends, with a bound, and reports a node that cannot keep up
// as gone.
type Node interface {
	// Welcome admits the node into the experiment. nodestart is what the
	// node may touch on the root while it runs nodestart (nil: nothing).
	Welcome(w protocol.Welcome, nodestart *task.Access) error
	// Start asks the node to run an attempt; access is what that attempt
	// may touch on the root, granted until it ends or is cancelled.
	Start(s protocol.Start, access *task.Access) error
	// Resume takes back an attempt the node still runs after it
	// reconnected, with its grants, without starting it again.
	Resume(job int64, attempt int, access *task.Access)
	// Cancel stops an attempt; its grants end at once, so a cancelled
	// attempt copies nothing more to the root.
	Cancel(job int64, attempt int) error
	// Withdraw asks a cluster head to take back an attempt only if it
	// still waits in the head's queue (sent to heads only): its grants
	// stay, as the head may have begun it; the head answers with the
	// attempt's end "cancelled" when it took it back, else with its
	// start (EventStarted) and later its real end.
	Withdraw(job int64, attempt int) error
	// Shutdown tells the node there is no more work: it may exit.
	Shutdown(reason string)
	// Close drops the node's connection; the transport then reports it
	// Gone.
	Close()
}

// Joining is what a transport knows of a node that asks to join.
type Joining struct {
	// ID is the node's identity: the node ID its certificate names, or
	// the name of a node the root started itself. Reports from a Node
	// count only for the attempts the dispatcher gave that ID.
	ID       string
	Register protocol.Register
	// Trusted is set for nodes the root started itself (the embedded
	// cluster): their claimed speed is believed. Other nodes are
	// scheduled by what the root measures of them.
	Trusted bool
	// Resumable is set when the node may reconnect after its connection
	// drops (a network node): its attempts are then given up only when
	// its heartbeats have been missing for the heartbeat timeout.
	Resumable bool
	// Head is set when the node proved it is a cluster head the root
	// started (its certificate was issued to one: pki.IsHead). Only then
	// is its Register.Head taken; a node that claims it without this is
	// refused.
	Head bool
}

// Joined is called by a transport when a node registers: the dispatcher
// admits it (calling n.Welcome) or refuses it (calling n.Close).
func (d *Dispatcher) Joined(n Node, j Joining) {
	d.send(event{node: n, join: &j})
}

// Ended is called by a transport when a node reports an attempt's end.
func (d *Dispatcher) Ended(n Node, ev protocol.Event) {
	d.send(event{node: n, ended: &ev})
}

// Heartbeat is called by a transport when a node says it is alive.
func (d *Dispatcher) Heartbeat(n Node, hb protocol.Heartbeat) {
	d.send(event{node: n, beat: &hb})
}

// Gone is called by a transport, once per Node, when its connection has
// ended.
func (d *Dispatcher) Gone(n Node, err error) {
	d.send(event{node: n, gone: true, err: err})
}

// Clock is where the dispatcher reads the time, so tests can drive it.
type Clock interface {
	Now() time.Time
	// Ticker returns a channel that receives the time every d, and a
	// function that stops it.
	Ticker(d time.Duration) (<-chan time.Time, func())
}

// realClock is the system clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Ticker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}
