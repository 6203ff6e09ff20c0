// Package wan emulates a wide-area link on loopback: a TCP proxy
// between a listen address and a target address that delays every byte
// by a one-way delay, caps each direction's bandwidth for all the link's
// connections together, and can be cut, reset and restored. The kernel
// of the test machines has no netem; the grid's tests and bench/grid.sh
// put a Link on the path between a site and the root instead.
//
// The link is pipelined, as a real one is: a byte read from one end at
// time t leaves the bandwidth cap's token bucket at some t' ≥ t and is
// written to the other end at t' + delay, while the bytes after it are
// read and sent meanwhile. A connection's throughput is therefore
// bounded by the cap and by Window/Delay (the bytes a connection may
// have in flight per direction), never by a chunk per delay.
//
// Memory is bounded: each connection holds at most Window bytes per
// direction; when they are in flight the proxy stops reading from that
// end, so the sender is held back by TCP's own flow control. Every
// goroutine of the link ends when it is closed.
package wan

import (
	"context"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Path is one direction of a link.
type Path struct {
	// Delay is the one-way delay added to every byte.
	Delay time.Duration
	// Rate caps the direction's bandwidth in bytes per second, shared by
	// all the link's connections; 0 is no cap.
	Rate int64
	// Burst is the size in bytes of the cap's token bucket: at most
	// Burst + Rate × t bytes pass in any interval t. 0 means Rate/100
	// (10 ms of traffic), at least 16 KiB.
	Burst int
}

// Config describes a link. The zero value is a link with no delay and
// no cap.
type Config struct {
	// Up is the direction from the clients (the listen side) to the
	// target; Down is the way back.
	Up, Down Path
	// Window bounds the bytes in flight on one connection in one
	// direction (read from one end, not yet written to the other).
	// 0 means twice the larger direction's Rate × Delay, at least
	// 256 KiB, or 1 MiB where a direction has no cap.
	Window int
	// MaxConns bounds the connections open at once (those held by a cut
	// included); past it a new connection is reset at once. 0 means 256.
	MaxConns int
	// DialTimeout bounds the connection to the target; a client whose
	// target cannot be reached in time is reset. 0 means 10 s.
	DialTimeout time.Duration
	// StallTimeout bounds one write to either end: a receiver that takes
	// no data for this long gets its connection reset, as a TCP user
	// time-out would. 0 means 5 minutes.
	StallTimeout time.Duration
	// Clock gives the time; nil is the real clock.
	Clock Clock
}

// Symmetric is the config of a link with the same delay and rate (bytes
// per second, 0 for none) each way.
func Symmetric(delay time.Duration, rate int64) Config {
	p := Path{Delay: delay, Rate: rate}
	return Config{Up: p, Down: p}
}

// Clock is the link's source of time.
type Clock interface {
	Now() time.Time
	// NewTimer is time.NewTimer's equivalent.
	NewTimer(d time.Duration) Timer
}

// Timer is a *time.Timer's equivalent.
type Timer interface {
	C() <-chan time.Time
	Stop() bool
}

// Real is the real clock.
var Real Clock = realClock{}

type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.t.C }
func (t realTimer) Stop() bool          { return t.t.Stop() }

// DirStats counts one direction's bytes over the link's life.
type DirStats struct {
	// Read is the bytes read from the sending end, Written the bytes
	// written to the receiving end; Read − Written are in flight.
	Read, Written int64
}

// Stats is a snapshot of a link's counters.
type Stats struct {
	// Conns is the connections open now, those held by a cut included.
	Conns    int
	Up, Down DirStats
}

// maxChunk is the most one read takes from an end.
const maxChunk = 32 << 10

// Link is a running emulated link. Its methods may be called from any
// goroutine.
type Link struct {
	cfg    Config
	target string
	ln     net.Listener
	clock  Clock
	up     *direction
	down   *direction
	window int
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	cerr   error

	// mu guards the state below; it is held only to read or change it,
	// never across I/O or a wait.
	mu       sync.Mutex
	cut      bool
	restored time.Time     // when the last cut ended
	changed  chan struct{} // closed and replaced when cut changes
	conns    map[*conn]struct{}
	closed   bool
}

// direction is one way of the link: its path, its shared token bucket
// and its counters.
type direction struct {
	path    Path
	chunk   int
	bucket  *bucket // nil: no cap
	read    atomic.Int64
	written atomic.Int64
}

// Listen starts a link that accepts TCP connections on addr (such as
// "127.0.0.1:0") and connects each to target.
func Listen(addr, target string, cfg Config) (*Link, error) {
	if cfg.Clock == nil {
		cfg.Clock = Real
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 256
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.StallTimeout <= 0 {
		cfg.StallTimeout = 5 * time.Minute
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		cfg:     cfg,
		target:  target,
		ln:      ln,
		clock:   cfg.Clock,
		window:  window(cfg),
		ctx:     ctx,
		cancel:  cancel,
		changed: make(chan struct{}),
		conns:   make(map[*conn]struct{}),
	}
	now := l.clock.Now()
	l.up = newDirection(cfg.Up, now)
	l.down = newDirection(cfg.Down, now)
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

func window(cfg Config) int {
	if cfg.Window > 0 {
		return cfg.Window
	}
	if cfg.Up.Rate <= 0 || cfg.Down.Rate <= 0 {
		return 1 << 20
	}
	w := 256 << 10
	for _, p := range []Path{cfg.Up, cfg.Down} {
		w = max(w, int(2*float64(p.Rate)*p.Delay.Seconds()))
	}
	return w
}

func newDirection(p Path, now time.Time) *direction {
	d := &direction{path: p, chunk: maxChunk}
	if p.Rate > 0 {
		burst := p.Burst
		if burst <= 0 {
			burst = max(16<<10, int(p.Rate/100))
		}
		d.path.Burst = burst
		d.chunk = min(maxChunk, burst)
		d.bucket = &bucket{rate: float64(p.Rate), burst: float64(burst), tokens: float64(burst), last: now}
	}
	return d
}

// Addr is the address the link listens on.
func (l *Link) Addr() net.Addr { return l.ln.Addr() }

// Cut takes the link down as a real wide-area cut does: nothing passes
// either way, but no connection is told. Open connections stall (the
// bytes in flight are delivered one delay after Restore, as TCP would
// retransmit them; a sender stops once its window is full), and new
// connections are accepted here but held, not connected to the target,
// until Restore. A cut longer than a client's own time-outs ends its
// connections from its side.
func (l *Link) Cut() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.cut {
		return
	}
	l.cut = true
	close(l.changed)
	l.changed = make(chan struct{})
}

// Restore ends a cut: stalled connections resume and held ones are
// connected to the target.
func (l *Link) Restore() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.cut {
		return
	}
	l.cut = false
	l.restored = l.clock.Now()
	close(l.changed)
	l.changed = make(chan struct{})
}

// Reset resets every open connection at both ends (a TCP reset, as a
// router or firewall that drops the connection's state sends); the
// link's state, cut or not, is unchanged, so new connections go through
// unless it is cut.
func (l *Link) Reset() {
	l.mu.Lock()
	cs := make([]*conn, 0, len(l.conns))
	for c := range l.conns {
		cs = append(cs, c)
	}
	l.mu.Unlock()
	for _, c := range cs {
		c.abort()
	}
}

// Stats returns the link's counters.
func (l *Link) Stats() Stats {
	// Read before Written, so that Read − Written never overstates what
	// is in flight.
	s := Stats{
		Up:   DirStats{Read: l.up.read.Load()},
		Down: DirStats{Read: l.down.read.Load()},
	}
	s.Up.Written = l.up.written.Load()
	s.Down.Written = l.down.written.Load()
	l.mu.Lock()
	s.Conns = len(l.conns)
	l.mu.Unlock()
	return s
}

// Close stops the link: it stops listening, closes every connection at
// both ends and returns once every goroutine of the link has ended.
// Calling it again does nothing.
func (l *Link) Close() error {
	l.once.Do(func() {
		l.mu.Lock()
		l.closed = true
		l.mu.Unlock()
		l.cancel()
		l.cerr = l.ln.Close()
		l.Reset()
		l.wg.Wait()
	})
	return l.cerr
}

// state returns whether the link is cut, when the last cut ended, and a
// channel closed at the next change.
func (l *Link) state() (cut bool, restored time.Time, changed <-chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cut, l.restored, l.changed
}

// waitUp waits until the link is not cut, reporting when it was last
// restored, or false when done is closed first.
func (l *Link) waitUp(done <-chan struct{}) (time.Time, bool) {
	for {
		cut, restored, changed := l.state()
		if !cut {
			return restored, true
		}
		select {
		case <-changed:
		case <-done:
			return time.Time{}, false
		}
	}
}

// sleepUntil waits until t on the link's clock, or false when done is
// closed first.
func (l *Link) sleepUntil(t time.Time, done <-chan struct{}) bool {
	d := t.Sub(l.clock.Now())
	if d <= 0 {
		select {
		case <-done:
			return false
		default:
			return true
		}
	}
	tm := l.clock.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C():
		return true
	case <-done:
		return false
	}
}

func (l *Link) accept() {
	defer l.wg.Done()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and the like: wait a little rather than spin.
			if !l.sleepUntil(l.clock.Now().Add(50*time.Millisecond), l.ctx.Done()) {
				return
			}
			continue
		}
		c := &conn{link: l, client: nc.(*net.TCPConn), done: make(chan struct{})}
		l.mu.Lock()
		if l.closed || len(l.conns) >= l.cfg.MaxConns {
			l.mu.Unlock()
			reset(c.client)
			continue
		}
		l.conns[c] = struct{}{}
		l.wg.Add(1)
		l.mu.Unlock()
		go c.run()
	}
}

// conn is one proxied connection.
type conn struct {
	link   *Link
	client *net.TCPConn
	done   chan struct{} // closed by abort

	mu     sync.Mutex // guards the fields below
	server *net.TCPConn
	abortd bool // done is closed
	halves int  // halves that ended with a clean half-close
}

// abort resets both ends and stops the connection's goroutines.
func (c *conn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.abortd {
		return
	}
	c.abortd = true
	close(c.done)
	reset(c.client)
	if c.server != nil {
		reset(c.server)
	}
}

// reset closes a TCP connection with a reset rather than a FIN.
func reset(c *net.TCPConn) {
	c.SetLinger(0)
	c.Close()
}

func (c *conn) run() {
	l := c.link
	defer func() {
		c.abort()
		l.mu.Lock()
		delete(l.conns, c)
		l.mu.Unlock()
		l.wg.Done()
	}()
	// A connection made during a cut is held until Restore, as a SYN
	// that gets no answer is sent again.
	if _, ok := l.waitUp(c.done); !ok {
		return
	}
	ctx, cancel := context.WithTimeout(l.ctx, l.cfg.DialTimeout)
	go func() {
		select {
		case <-c.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var d net.Dialer
	sc, err := d.DialContext(ctx, "tcp", l.target)
	cancel()
	if err != nil {
		return
	}
	c.mu.Lock()
	c.server = sc.(*net.TCPConn)
	aborted := c.abortd
	c.mu.Unlock()
	if aborted {
		reset(c.server)
		return
	}
	var wg sync.WaitGroup
	wg.Add(4)
	for _, h := range []*half{
		newHalf(c, l.up, c.client, c.server),
		newHalf(c, l.down, c.server, c.client),
	} {
		go func() { defer wg.Done(); h.read() }()
		go func() { defer wg.Done(); h.write() }()
	}
	wg.Wait()
}

// segment is a piece of data in flight, or the end of the stream.
type segment struct {
	data []byte
	at   time.Time // when it reaches the other end
	end  error     // non-nil: the stream ended here (io.EOF or an error)
}

// half is one direction of one connection: a reader that takes bytes
// from src through the token bucket into a bounded queue, and a writer
// that delivers them to dst at their time.
type half struct {
	c        *conn
	dir      *direction
	src, dst *net.TCPConn

	mu     sync.Mutex
	queue  []segment
	bytes  int           // read and not yet written: at most the window
	more   chan struct{} // cap 1: a segment was queued
	space  chan struct{} // cap 1: bytes went down
	window int
}

func newHalf(c *conn, d *direction, src, dst *net.TCPConn) *half {
	return &half{c: c, dir: d, src: src, dst: dst, window: c.link.window,
		more: make(chan struct{}, 1), space: make(chan struct{}, 1)}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, maxChunk); return &b }}

// read takes bytes from src while the window has room, passes each
// chunk through the link's token bucket and queues it for its delivery
// time.
func (h *half) read() {
	l := h.c.link
	done := h.c.done
	for {
		var free int
		for {
			h.mu.Lock()
			free = h.window - h.bytes
			h.mu.Unlock()
			if free > 0 {
				break
			}
			select {
			case <-h.space:
			case <-done:
				return
			}
		}
		bp := chunkPool.Get().(*[]byte)
		n, err := h.src.Read((*bp)[:min(free, h.dir.chunk)])
		if n > 0 {
			h.dir.read.Add(int64(n))
			h.mu.Lock()
			h.bytes += n
			h.mu.Unlock()
			// Nothing is sent while the link is cut.
			if _, ok := l.waitUp(done); !ok {
				chunkPool.Put(bp)
				return
			}
			sent := l.clock.Now()
			if h.dir.bucket != nil {
				sent = h.dir.bucket.reserve(sent, n)
				if !l.sleepUntil(sent, done) {
					chunkPool.Put(bp)
					return
				}
			}
			h.push(segment{data: (*bp)[:n], at: sent.Add(h.dir.path.Delay)})
		} else {
			chunkPool.Put(bp)
		}
		if err != nil {
			h.push(segment{at: l.clock.Now().Add(h.dir.path.Delay), end: err})
			return
		}
	}
}

func (h *half) push(s segment) {
	h.mu.Lock()
	h.queue = append(h.queue, s)
	h.mu.Unlock()
	signal(h.more)
}

// pop waits for the next segment, or false when the connection ends.
func (h *half) pop() (segment, bool) {
	for {
		h.mu.Lock()
		if len(h.queue) > 0 {
			s := h.queue[0]
			h.queue[0] = segment{}
			h.queue = h.queue[1:]
			if len(h.queue) == 0 {
				h.queue = nil
			}
			h.mu.Unlock()
			return s, true
		}
		h.mu.Unlock()
		select {
		case <-h.more:
		case <-h.c.done:
			return segment{}, false
		}
	}
}

// write delivers each segment to dst at its time. A segment due while
// the link is cut is delivered one delay after Restore. The end of the
// stream is passed on as a half-close (io.EOF) or a reset of the whole
// connection (any other error).
func (h *half) write() {
	l := h.c.link
	done := h.c.done
	for {
		s, ok := h.pop()
		if !ok {
			return
		}
		for {
			if !l.sleepUntil(s.at, done) {
				return
			}
			cut, _, _ := l.state()
			if !cut {
				break
			}
			restored, ok := l.waitUp(done)
			if !ok {
				return
			}
			if r := restored.Add(h.dir.path.Delay); r.After(s.at) {
				s.at = r
			}
		}
		if s.end != nil {
			if s.end == io.EOF {
				h.dst.CloseWrite()
				h.finish()
				return
			}
			h.c.abort()
			return
		}
		h.dst.SetWriteDeadline(time.Now().Add(l.cfg.StallTimeout)) // the socket's own time
		n, err := h.dst.Write(s.data)
		h.dir.written.Add(int64(n))
		h.mu.Lock()
		h.bytes -= len(s.data)
		h.mu.Unlock()
		signal(h.space)
		b := s.data[:cap(s.data)]
		chunkPool.Put(&b)
		if err != nil {
			h.c.abort()
			return
		}
	}
}

// finish records that this half ended cleanly; the connection ends
// when both have.
func (h *half) finish() {
	c := h.c
	c.mu.Lock()
	c.halves++
	both := c.halves == 2
	c.mu.Unlock()
	if both {
		// Both ends have sent their FIN: close without a reset.
		c.mu.Lock()
		if !c.abortd {
			c.abortd = true
			close(c.done)
			c.client.Close()
			c.server.Close()
		}
		c.mu.Unlock()
	}
}

// bucket is a token bucket shared by a direction's connections. A
// reservation may take it below zero; the caller then waits until the
// debt is paid, so at most burst + rate × t bytes pass in any interval t.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens (bytes) per second
	burst  float64
	tokens float64
	last   time.Time
}

// reserve takes n tokens at now and returns when they are paid for.
func (b *bucket) reserve(now time.Time, n int) time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	// Goroutines read the clock before they take the lock, so now may
	// be a little behind the last reservation's.
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+b.rate*now.Sub(b.last).Seconds())
		b.last = now
	}
	b.tokens -= float64(n)
	if b.tokens >= 0 {
		return b.last
	}
	return b.last.Add(time.Duration(-b.tokens / b.rate * float64(time.Second)))
}
