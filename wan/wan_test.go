package wan

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Every test runs real TCP on loopback, with real time. A busy machine
// can only make the proxy slower: lower bounds on time (and upper
// bounds on throughput) are asserted strictly, upper bounds on time only
// loosely, for liveness.

// target is a TCP server on 127.0.0.1 that hands each accepted
// connection to serve in its own goroutine; close stops it and waits for
// every handler.
type target struct {
	ln       net.Listener
	wg       sync.WaitGroup
	accepted atomic.Int64
	mu       sync.Mutex
	conns    []net.Conn
}

func newTarget(t *testing.T, serve func(net.Conn)) *target {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &target{ln: ln}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				serve(c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *target) addr() string { return s.ln.Addr().String() }

// echo copies what it reads back, then half-closes.
func echo(c net.Conn) {
	io.Copy(c, c)
	c.(*net.TCPConn).CloseWrite()
}

func newLink(t *testing.T, to string, cfg Config) *Link {
	t.Helper()
	l, err := Listen("127.0.0.1:0", to, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func dial(t *testing.T, l *Link) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.TCPConn)
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// pingPong sends one byte and waits for it back, returning the round
// trip.
func pingPong(t *testing.T, c net.Conn) time.Duration {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := c.Write([]byte{'p'}); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(c, b[:]); err != nil {
		t.Fatal(err)
	}
	return time.Since(start)
}

func TestDelayPingPong(t *testing.T) {
	const delay = 100 * time.Millisecond
	s := newTarget(t, echo)
	l := newLink(t, s.addr(), Symmetric(delay, 0))
	c := dial(t, l)
	for i := range 5 {
		rtt := pingPong(t, c)
		if rtt < 2*delay {
			t.Fatalf("round trip %d took %v, less than twice the one-way delay %v", i, rtt, delay)
		}
		if rtt > 2*delay+10*time.Second {
			t.Fatalf("round trip %d took %v, far more than twice the one-way delay %v", i, rtt, delay)
		}
	}
}

func TestAsymmetricDelay(t *testing.T) {
	s := newTarget(t, echo)
	l := newLink(t, s.addr(), Config{Up: Path{Delay: 150 * time.Millisecond}, Down: Path{Delay: 50 * time.Millisecond}})
	c := dial(t, l)
	if rtt := pingPong(t, c); rtt < 200*time.Millisecond || rtt > 200*time.Millisecond+10*time.Second {
		t.Fatalf("round trip %v over 150 ms up and 50 ms down", rtt)
	}
}

// TestPipelined sends 4 MiB over a 300 ms link with no rate cap: the
// link carries many chunks at once, so it takes about one delay, where a
// proxy that waited the delay for each chunk it read would take over
// 128 delays (38 s).
func TestPipelined(t *testing.T) {
	const delay = 300 * time.Millisecond
	const size = 4 << 20
	got := make(chan int64, 1)
	s := newTarget(t, func(c net.Conn) {
		n, _ := io.Copy(io.Discard, c)
		got <- n
	})
	cfg := Symmetric(delay, 0)
	cfg.Window = 8 << 20
	l := newLink(t, s.addr(), cfg)
	c := dial(t, l)
	data := randomBytes(t, size)
	start := time.Now()
	for off := 0; off < size; off += 16 << 10 {
		if _, err := c.Write(data[off : off+16<<10]); err != nil {
			t.Fatal(err)
		}
	}
	c.CloseWrite()
	var n int64
	select {
	case n = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("the transfer did not end within 30 s")
	}
	el := time.Since(start)
	if n != size {
		t.Fatalf("target got %d bytes, want %d", n, size)
	}
	if el < delay {
		t.Fatalf("4 MiB arrived in %v, less than the one-way delay %v", el, delay)
	}
	if el > delay+6*time.Second {
		t.Fatalf("4 MiB took %v over a %v link with no cap: the link is not pipelined", el, delay)
	}
}

// meter records the bytes received over time and checks that they never
// pass burst + rate × (time since start).
type meter struct {
	mu     sync.Mutex
	start  time.Time
	total  int64
	rate   float64
	burst  float64
	excess string
}

func (m *meter) add(n int) {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.total += int64(n)
	limit := m.burst + m.rate*now.Sub(m.start).Seconds()
	if float64(m.total) > limit && m.excess == "" {
		m.excess = fmt.Sprintf("received %d bytes %v after the start, past the cap's %.0f", m.total, now.Sub(m.start), limit)
	}
}

func (m *meter) counter(c net.Conn) (int64, error) {
	buf := make([]byte, 32<<10)
	var n int64
	for {
		k, err := c.Read(buf)
		if k > 0 {
			m.add(k)
			n += int64(k)
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

func TestRateCap(t *testing.T) {
	const rate = 1_000_000 // 8 Mb/s
	const burst = 32 << 10
	const size = 3_000_000
	m := &meter{rate: rate, burst: burst}
	got := make(chan int64, 1)
	s := newTarget(t, func(c net.Conn) {
		n, _ := m.counter(c)
		got <- n
	})
	cfg := Symmetric(50*time.Millisecond, rate)
	cfg.Up.Burst, cfg.Down.Burst = burst, burst
	l := newLink(t, s.addr(), cfg)
	c := dial(t, l)
	data := randomBytes(t, size)
	m.start = time.Now()
	go func() {
		c.Write(data)
		c.CloseWrite()
	}()
	var n int64
	select {
	case n = <-got:
	case <-time.After(60 * time.Second):
		t.Fatal("3 MB at 1 MB/s did not arrive within 60 s")
	}
	el := time.Since(m.start)
	if n != size {
		t.Fatalf("target got %d bytes, want %d", n, size)
	}
	if m.excess != "" {
		t.Fatal(m.excess)
	}
	if min := time.Duration(float64(size-burst) / rate * float64(time.Second)); el < min {
		t.Fatalf("3 MB took %v at 1 MB/s, less than %v", el, min)
	}
	t.Logf("3 MB at a 1 MB/s cap with 50 ms delay: %v (%.0f kB/s)", el, float64(size)/el.Seconds()/1000)
}

// TestSharedCap runs 8 connections at once over a 1 MB/s link: the cap
// is the link's, so together they get no more than 1 MB/s.
func TestSharedCap(t *testing.T) {
	const rate = 1_000_000
	const burst = 32 << 10
	const conns = 8
	const each = 256 << 10
	m := &meter{rate: rate, burst: burst}
	got := make(chan int64, conns)
	s := newTarget(t, func(c net.Conn) {
		n, _ := m.counter(c)
		got <- n
	})
	cfg := Symmetric(20*time.Millisecond, rate)
	cfg.Up.Burst, cfg.Down.Burst = burst, burst
	l := newLink(t, s.addr(), cfg)
	data := randomBytes(t, each)
	cs := make([]*net.TCPConn, conns)
	for i := range cs {
		cs[i] = dial(t, l)
	}
	m.start = time.Now()
	for _, c := range cs {
		go func() {
			c.Write(data)
			c.CloseWrite()
		}()
	}
	deadline := time.After(60 * time.Second)
	for range conns {
		select {
		case n := <-got:
			if n != each {
				t.Fatalf("a connection carried %d bytes, want %d", n, each)
			}
		case <-deadline:
			t.Fatal("8 × 256 KiB at 1 MB/s did not arrive within 60 s")
		}
	}
	el := time.Since(m.start)
	if m.excess != "" {
		t.Fatal(m.excess)
	}
	if min := time.Duration(float64(conns*each-burst) / rate * float64(time.Second)); el < min {
		t.Fatalf("8 × 256 KiB took %v at 1 MB/s, less than %v", el, min)
	}
	t.Logf("8 connections, 2 MiB in all, over one 1 MB/s link: %v", el)
}

// TestIntegrity sends random data both ways on several connections at
// once through an echo server, with a delay and a cap, and checks every
// byte and the half-close in each direction.
func TestIntegrity(t *testing.T) {
	const conns = 4
	const size = 1 << 20
	s := newTarget(t, echo)
	l := newLink(t, s.addr(), Config{
		Up:     Path{Delay: 20 * time.Millisecond, Rate: 20_000_000},
		Down:   Path{Delay: 5 * time.Millisecond},
		Window: 128 << 10,
	})
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for range conns {
		c := dial(t, l)
		data := randomBytes(t, size)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			go func() {
				// random write sizes
				for off := 0; off < size; {
					n := 1 + int(data[off])*97
					n = min(n, size-off)
					if _, err := c.Write(data[off : off+n]); err != nil {
						return
					}
					off += n
				}
				c.CloseWrite()
			}()
			back, err := io.ReadAll(c)
			if err != nil {
				errs <- err
				return
			}
			if !bytes.Equal(back, data) {
				errs <- fmt.Errorf("the data came back changed: got %d bytes", len(back))
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestCutStalls cuts the link: a connection stalls (nothing passes, it
// is not reset), a new connection is held without reaching the target,
// and after Restore both go through.
func TestCutStalls(t *testing.T) {
	s := newTarget(t, echo)
	l := newLink(t, s.addr(), Symmetric(10*time.Millisecond, 0))
	c := dial(t, l)
	pingPong(t, c)

	l.Cut()
	c.SetDeadline(time.Now().Add(700 * time.Millisecond))
	if _, err := c.Write([]byte{'x'}); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	_, err := c.Read(b[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("a read across a cut link ended with %v, want a stall (time-out)", err)
	}
	before := s.accepted.Load()
	held := dial(t, l)
	time.Sleep(300 * time.Millisecond)
	if n := s.accepted.Load(); n != before {
		t.Fatalf("a connection made during the cut reached the target")
	}

	l.Restore()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'x' {
		t.Fatalf("after Restore the stalled byte did not arrive: %q, %v", b[:], err)
	}
	if rtt := pingPong(t, held); rtt < 20*time.Millisecond {
		t.Fatalf("held connection's round trip %v, less than twice the delay", rtt)
	}
	pingPong(t, dial(t, l))
}

// TestReset resets every connection (both ends see an error), and new
// connections still go through.
func TestReset(t *testing.T) {
	targetErr := make(chan error, 1)
	s := newTarget(t, func(c net.Conn) {
		c.SetDeadline(time.Now().Add(30 * time.Second))
		_, err := io.Copy(io.Discard, c)
		select {
		case targetErr <- err:
		default:
		}
	})
	l := newLink(t, s.addr(), Symmetric(10*time.Millisecond, 0))
	c := dial(t, l)
	c.Write([]byte("hello"))
	for s.accepted.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	l.Reset()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	if _, err := c.Read(b[:]); !isReset(err) {
		t.Fatalf("client read after Reset: %v, want connection reset", err)
	}
	select {
	case err := <-targetErr:
		if !isReset(err) {
			t.Fatalf("target read after Reset: %v, want connection reset", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the target's side was not reset within 10 s")
	}
	for deadline := time.Now().Add(10 * time.Second); l.Stats().Conns != 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections left 10 s after Reset", l.Stats().Conns)
		}
	}
	c2 := dial(t, l)
	c2.Write([]byte("again"))
	for s.accepted.Load() < 2 {
		time.Sleep(5 * time.Millisecond)
	}
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// TestWindowBound checks the per-connection bound: with a receiver that
// reads nothing, the proxy stops reading once Window bytes are in
// flight, so the sender is held back by TCP and the proxy's memory stays
// bounded.
func TestWindowBound(t *testing.T) {
	const window = 64 << 10
	stop := make(chan struct{})
	s := newTarget(t, func(c net.Conn) { <-stop })
	defer close(stop)
	cfg := Symmetric(5*time.Millisecond, 0)
	cfg.Window = window
	l := newLink(t, s.addr(), cfg)
	c := dial(t, l)
	data := randomBytes(t, 64<<20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.SetWriteDeadline(time.Now().Add(20 * time.Second))
		c.Write(data)
	}()
	end := time.Now().Add(1500 * time.Millisecond)
	var peak int64
	for time.Now().Before(end) {
		st := l.Stats()
		if q := st.Up.Read - st.Up.Written; q > peak {
			peak = q
		}
		time.Sleep(time.Millisecond)
	}
	st := l.Stats()
	if peak > window {
		t.Fatalf("%d bytes in flight on one connection, past its window of %d", peak, window)
	}
	if st.Up.Read == 0 {
		t.Fatal("the proxy read nothing")
	}
	if st.Up.Read >= int64(len(data)) {
		t.Fatalf("the proxy read all %d bytes from a sender whose receiver reads nothing", st.Up.Read)
	}
	t.Logf("receiver stalled: proxy read %d bytes, delivered %d, peak in flight %d", st.Up.Read, st.Up.Written, peak)
	l.Close()
	<-done
}

// TestMaxConns refuses connections past the bound.
func TestMaxConns(t *testing.T) {
	s := newTarget(t, echo)
	cfg := Symmetric(time.Millisecond, 0)
	cfg.MaxConns = 2
	l := newLink(t, s.addr(), cfg)
	a, b := dial(t, l), dial(t, l)
	pingPong(t, a)
	pingPong(t, b)
	// The link refuses with a reset at once, which the dial itself may
	// already see (the handshake completes in the kernel before the
	// proxy's accept), or else the first read.
	if nc, err := net.DialTimeout("tcp", l.Addr().String(), 5*time.Second); err == nil {
		c := nc.(*net.TCPConn)
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte{'p'})
		var buf [1]byte
		if _, err := c.Read(buf[:]); err == nil {
			t.Fatal("a third connection went through a link of at most 2")
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("a third connection: %v, want refused by a reset", err)
	}
	a.Close()
	for l.Stats().Conns > 1 {
		time.Sleep(5 * time.Millisecond)
	}
	pingPong(t, dial(t, l))
}

// wanGoroutines lists the goroutines the proxy started: those created
// by the package's code outside its tests.
func wanGoroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		_, creator, ok := strings.Cut(g, "\ncreated by orrery/wan.")
		if !ok {
			continue
		}
		// the line after "created by" names the creator's file
		lines := strings.SplitN(creator, "\n", 3)
		if len(lines) >= 2 && !strings.Contains(lines[1], "_test.go:") {
			out = append(out, g)
		}
	}
	return out
}

// TestCloseEndsEverything closes a link with connections in every
// state (busy, stalled on a full window, held by a cut, being dialled):
// every goroutine of the proxy ends, the clients' connections are
// closed, and Close may be called again.
func TestCloseEndsEverything(t *testing.T) {
	stop := make(chan struct{})
	s := newTarget(t, func(c net.Conn) {
		select {
		case <-stop:
		default:
			io.Copy(io.Discard, c)
		}
	})
	defer close(stop)
	cfg := Symmetric(20*time.Millisecond, 5_000_000)
	cfg.Window = 64 << 10
	l, err := Listen("127.0.0.1:0", s.addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	var cs []*net.TCPConn
	for range 4 {
		c := dial(t, l)
		cs = append(cs, c)
		go func() {
			c.SetWriteDeadline(time.Now().Add(20 * time.Second))
			c.Write(make([]byte, 16<<20))
		}()
	}
	time.Sleep(200 * time.Millisecond)
	l.Cut()
	for range 3 {
		cs = append(cs, dial(t, l))
	}
	time.Sleep(100 * time.Millisecond)
	if len(wanGoroutines()) == 0 {
		t.Fatal("no goroutine of the proxy seen: the check cannot work")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(wanGoroutines()) > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left 10 s after Close:\n%s", strings.Join(wanGoroutines(), "\n\n"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, c := range cs {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil && !isReset(err) {
			t.Fatalf("client %d after Close: %v, want its connection closed", i, err)
		}
	}
	if _, err := net.DialTimeout("tcp", l.Addr().String(), time.Second); err == nil {
		t.Fatal("a closed link still accepts connections")
	}
}
