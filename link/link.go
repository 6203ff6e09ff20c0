// Package link is the dispatcher's end of one node agent's connection:
// it speaks the agent protocol (package protocol) over any connection —
// an in-memory pipe for the embedded cluster, a socket pair for a node in
// a control group, a TLS connection from the root's port — and
// implements dispatch.Node, so the dispatch loop never sees the wire.
//
// A link owns two goroutines: a reader, which forwards registrations,
// heartbeats and attempt ends to the dispatcher and serves the node's
// staging requests, and a writer, which sends what the dispatcher asks
// through a bounded queue, each message with a deadline. A node that
// stops reading fills its queue or misses a deadline and is dropped; it
// never stalls the dispatcher.
//
// Least privilege: the node may touch on the root only what its grants
// allow — for each attempt it was given and has not ended, what the main
// task's copy commands name for that job; and what nodestart's name —
// inside the root directory. It may report only on attempts it was
// given. Every refusal is one log line.
package link

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"sync"
	"time"

	"orrery/dispatch"
	"orrery/protocol"
	"orrery/task"
)

// Dispatcher is what a link reports to; *dispatch.Dispatcher is one.
type Dispatcher interface {
	Joined(n dispatch.Node, j dispatch.Joining)
	Ended(n dispatch.Node, ev protocol.Event)
	Heartbeat(n dispatch.Node, hb protocol.Heartbeat)
	Gone(n dispatch.Node, err error)
}

var _ Dispatcher = (*dispatch.Dispatcher)(nil)

// Config describes one node's link.
type Config struct {
	// ID is the node's proven identity (its certificate's node ID), or ""
	// for a node the root started itself, which the dispatcher names
	// from its registration.
	ID string
	// Trusted, Resumable and Head are passed on to the dispatcher (see
	// dispatch.Joining).
	Trusted, Resumable, Head bool
	// Root is the root directory as the node may see it: confined to the
	// root directory. The link adds the node's grants.
	Root task.Root
	// SendTimeout bounds each message sent to the node (default 10 s).
	SendTimeout time.Duration
	// Queue bounds the messages waiting to be sent (default 4096).
	Queue int
	// MaxRequests bounds the node's staging requests in progress
	// (default 64).
	MaxRequests int
	// Log receives one line per refusal and per protocol violation.
	Log *slog.Logger
	// RegisterTimeout bounds the time from the connection to the node's
	// register (default 30 s).
	RegisterTimeout time.Duration
}

// Link is one node's connection, as the dispatcher sees it.
type Link struct {
	cfg  Config
	conn *protocol.Conn
	d    Dispatcher
	log  *slog.Logger
	quit chan struct{}
	wake chan struct{} // a message was queued

	qmu   sync.Mutex
	queue []*protocol.Msg // waiting to be sent, at most cfg.Queue

	closeOnce  sync.Once
	registered chan struct{} // closed when the node registers

	mu       sync.Mutex
	name     string // the node's ID once welcomed, for logs
	welcomed bool
	given    map[attemptKey]bool // the attempts given and not ended: their ends are taken
	grants   task.Grants         // nodestart's, and those of the attempts given and not cancelled
}

var _ dispatch.Node = (*Link)(nil)

type attemptKey struct {
	job     int64
	attempt int
}

// ErrQueueFull is why a node that does not read what it is sent is
// dropped.
var ErrQueueFull = errors.New("the node does not keep up with what it is sent")

// Serve runs a link over conn until the connection ends or ctx is done,
// and returns why it ended. The dispatcher hears Gone once it has ended,
// if it heard Joined.
func Serve(ctx context.Context, conn *protocol.Conn, d Dispatcher, cfg Config) error {
	if cfg.SendTimeout <= 0 {
		cfg.SendTimeout = 10 * time.Second
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.MaxRequests <= 0 {
		cfg.MaxRequests = 64
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.RegisterTimeout <= 0 {
		cfg.RegisterTimeout = 30 * time.Second
	}
	conn.SetSendTimeout(cfg.SendTimeout)
	l := &Link{cfg: cfg, conn: conn, d: d, log: cfg.Log, wake: make(chan struct{}, 1),
		quit: make(chan struct{}), given: map[attemptKey]bool{}, name: cfg.ID}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			l.Close()
		case <-l.quit:
			cancel() // ends staging requests in progress or waiting
		}
	}()
	go func() {
		defer wg.Done()
		l.write()
	}()
	root := protocol.NewRootServer(ctx, conn, guard{l}, cfg.MaxRequests)
	// A node that does not register in time holds no connection.
	registered := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTimer(cfg.RegisterTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			l.log.Warn("connection closed: no register in time", "node", l.nodeName(), "within", cfg.RegisterTimeout)
			l.Close()
		case <-registered:
		case <-l.quit:
		}
	}()
	l.registered = registered
	joined, err := l.read(root)
	l.Close()
	root.Close()
	wg.Wait()
	if joined {
		l.d.Gone(l, err)
	}
	return err
}

// read handles the node's messages until the connection ends or breaks
// the protocol, and reports whether the node registered.
func (l *Link) read(root *protocol.RootServer) (joined bool, err error) {
	for {
		m, err := l.conn.Recv()
		if errors.Is(err, protocol.ErrFrame) {
			return joined, l.violation(err.Error())
		}
		if err != nil {
			return joined, err
		}
		switch m.Type {
		case protocol.TypeRegister:
			if joined || m.Register == nil {
				return joined, l.violation("a second or empty register")
			}
			joined = true
			close(l.registered)
			l.d.Joined(l, dispatch.Joining{ID: l.cfg.ID, Register: *m.Register,
				Trusted: l.cfg.Trusted, Resumable: l.cfg.Resumable, Head: l.cfg.Head})
		case protocol.TypeHeartbeat:
			if !joined {
				return joined, l.violation("a heartbeat before register")
			}
			if m.Heartbeat != nil {
				l.d.Heartbeat(l, *m.Heartbeat)
			}
		case protocol.TypeEvent:
			if !joined || m.Event == nil {
				return joined, l.violation("an event before register")
			}
			if m.Event.Kind == protocol.EventStarted && l.cfg.Head && l.holds(m.Event.Job, m.Event.Attempt) {
				// A head began an attempt it held queued: its root's
				// allocator counts it running.
				l.d.Ended(l, *m.Event)
				continue
			}
			if m.Event.Kind != protocol.EventEnded {
				continue
			}
			if !l.ended(m.Event.Job, m.Event.Attempt) {
				l.log.Warn("report refused: the attempt was not given to this node (or was given up)",
					"node", l.nodeName(), "job", m.Event.Job, "attempt", m.Event.Attempt)
				continue
			}
			l.d.Ended(l, *m.Event)
		case protocol.TypeOpen, protocol.TypeStat, protocol.TypeGlob, protocol.TypeCreate, protocol.TypeData, protocol.TypeClose:
			if !l.isWelcomed() {
				return joined, l.violation("a staging request before welcome")
			}
			if err := root.Handle(m); err != nil {
				return joined, l.violation(err.Error())
			}
		default:
			return joined, l.violation(fmt.Sprintf("unexpected message %q", m.Type))
		}
	}
}

// violation logs a node that broke the protocol; its connection closes.
func (l *Link) violation(what string) error {
	l.log.Warn("connection closed: protocol violation", "node", l.nodeName(), "what", what)
	return fmt.Errorf("%w: %s", protocol.ErrFrame, what)
}

// write sends queued messages until Close, then what is still queued
// (within one send timeout in all), and closes the connection.
func (l *Link) write() {
	defer l.conn.Close()
	for {
		select {
		case <-l.wake:
			if !l.flush(time.Time{}) {
				return
			}
		case <-l.quit:
			l.flush(time.Now().Add(l.cfg.SendTimeout))
			return
		}
	}
}

// flush sends every queued message, stopping at the deadline unless it
// is zero, and reports whether the connection still works.
func (l *Link) flush(deadline time.Time) bool {
	l.qmu.Lock()
	batch := l.queue
	l.queue = nil
	l.qmu.Unlock()
	for _, m := range batch {
		if !deadline.IsZero() && time.Now().After(deadline) || l.conn.Send(m) != nil {
			return false
		}
	}
	return true
}

// enqueue queues m for the writer; a full queue drops the node.
func (l *Link) enqueue(m *protocol.Msg) error {
	select {
	case <-l.quit:
		return errors.New("the connection is closed")
	default:
	}
	l.qmu.Lock()
	full := len(l.queue) >= l.cfg.Queue
	if !full {
		l.queue = append(l.queue, m)
	}
	l.qmu.Unlock()
	if full {
		l.log.Warn("node dropped: its send queue is full", "node", l.nodeName())
		l.Close()
		return ErrQueueFull
	}
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

// Welcome implements dispatch.Node.
func (l *Link) Welcome(w protocol.Welcome, nodestart *task.Access) error {
	l.mu.Lock()
	l.name, l.welcomed = w.Node, true
	l.mu.Unlock()
	if nodestart != nil {
		l.grants.Grant("nodestart", nodestart)
	}
	return l.enqueue(&protocol.Msg{Type: protocol.TypeWelcome, Welcome: &w})
}

// Start implements dispatch.Node.
func (l *Link) Start(s protocol.Start, access *task.Access) error {
	l.grant(s.Job, s.Attempt, access)
	return l.enqueue(&protocol.Msg{Type: protocol.TypeStart, Start: &s})
}

// Resume implements dispatch.Node.
func (l *Link) Resume(job int64, attempt int, access *task.Access) {
	l.grant(job, attempt, access)
}

// Cancel implements dispatch.Node: the attempt's grants end now (it
// copies nothing more to the root); its end, which the dispatcher
// awaits, is still taken.
func (l *Link) Cancel(job int64, attempt int) error {
	key := attemptKey{job, attempt}
	l.mu.Lock()
	l.given[key] = true
	l.mu.Unlock()
	l.grants.Revoke(key)
	return l.enqueue(&protocol.Msg{Type: protocol.TypeCancel, Job: job, Attempt: attempt})
}

// Withdraw implements dispatch.Node: a cancel that a cluster head
// carries out only while the attempt still waits in its queue. The
// attempt's grants stay until its end: the head may have begun it.
func (l *Link) Withdraw(job int64, attempt int) error {
	return l.enqueue(&protocol.Msg{Type: protocol.TypeCancel, Job: job, Attempt: attempt, Withdraw: true})
}

// Recorded implements dispatch.Recorder: it tells a cluster head that
// the root has taken the end of an attempt it reported.
func (l *Link) Recorded(job int64, attempt int) {
	l.enqueue(&protocol.Msg{Type: protocol.TypeRecorded, Job: job, Attempt: attempt})
}

// Shutdown implements dispatch.Node.
func (l *Link) Shutdown(reason string) {
	l.enqueue(&protocol.Msg{Type: protocol.TypeShutdown, Error: reason})
}

// Close implements dispatch.Node: what is queued is still sent (each
// message within the send timeout), then the connection closes.
func (l *Link) Close() {
	l.closeOnce.Do(func() { close(l.quit) })
}

func (l *Link) grant(job int64, attempt int, access *task.Access) {
	key := attemptKey{job, attempt}
	l.mu.Lock()
	l.given[key] = true
	l.mu.Unlock()
	if access != nil {
		l.grants.Grant(key, access)
	}
}

// ended takes an attempt's grants back when it ends, and reports whether
// the node had been given it.
// holds reports whether the node was given the attempt and has not
// reported its end.
func (l *Link) holds(job int64, attempt int) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.given[attemptKey{job, attempt}]
}

func (l *Link) ended(job int64, attempt int) bool {
	key := attemptKey{job, attempt}
	l.mu.Lock()
	given := l.given[key]
	delete(l.given, key)
	l.mu.Unlock()
	l.grants.Revoke(key)
	return given
}

func (l *Link) isWelcomed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.welcomed
}

func (l *Link) nodeName() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.name
}

// allowed returns everything the node may touch on the root now.
func (l *Link) allowed() *task.Access { return l.grants.Access() }

// guard is the root as the node may see it: its grants checked before
// the confined root is touched, and each refusal logged.
type guard struct{ l *Link }

func (g guard) root() task.GuardedRoot {
	return task.GuardedRoot{Root: g.l.cfg.Root, Allowed: g.l.allowed}
}

func (g guard) refused(op, name string, err error) error {
	if errors.Is(err, task.ErrDenied) {
		g.l.log.Warn("staging refused", "node", g.l.nodeName(), "op", op, "path", name, "why", err)
	}
	return err
}

// CanOpen tells the root server whether the node may read name: a file
// it may only stat (a copy's destination) is not read to hash it.
func (g guard) CanOpen(name string) bool { return g.l.allowed().CanOpen(name) }

func (g guard) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := g.root().Open(ctx, name)
	return rc, g.refused("open", name, err)
}

func (g guard) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	fi, err := g.root().Stat(ctx, name)
	return fi, g.refused("stat", name, err)
}

func (g guard) Glob(ctx context.Context, pattern string) ([]string, error) {
	names, err := g.root().Glob(ctx, pattern)
	return names, g.refused("glob", pattern, err)
}

// Put checks the grant when the file starts and again when all of it
// has arrived, before it is renamed into place: an attempt cancelled or
// given up while its file was arriving leaves nothing on the root.
func (g guard) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error {
	still := func() bool { return g.l.allowed().CanPut(name) }
	return g.refused("create", name, g.root().Put(ctx, name, perm, &recheck{r: r, name: name, ok: still}))
}

// recheck is a file's bytes that end in an error, instead of EOF, when
// the grant to write it has ended meanwhile.
type recheck struct {
	r    io.Reader
	name string
	ok   func() bool
}

func (c *recheck) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err == io.EOF && !c.ok() {
		return n, &task.AccessError{Op: "put", Path: c.name, Reason: "the attempt ended or was cancelled while the file arrived"}
	}
	return n, err
}
