package remote

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/internal/sitetest"
	"orrery/pki"
)

// A cluster's head behind a firewall that lets nothing in but SSH and
// nothing out to the root reaches the root's TLS port through a Unix
// socket forwarded by the site's own sshd (Debian's OpenSSH), relayed
// by the root: several TLS connections of megabytes each way, checked
// byte for byte at both ends; and again after the SSH connection is cut
// by the network (a TCP reset) and after the root closes it, each time
// with a new connection and the forward at the same path.
//
// The site is a network namespace joined to this machine's by a veth
// pair; the root (this test process) runs in this machine's namespace,
// where it listens with a TLS server of the project's pki. The head is
// this test binary re-executed inside the site (siteHelper).
func TestSiteTrafficThroughFirewall(t *testing.T) {
	t.Parallel()
	s := sitetest.NewSite(t, sitetest.SiteOptions{})
	d := s.SSHD
	a, err := pki.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	token, err := a.Token()
	if err != nil {
		t.Fatal(err)
	}
	root := startSiteRoot(t, a, s.Near)
	const conns, size = 4, 4 << 20
	began := time.Now()

	// exchange runs the head in the site: one TLS connection per id at
	// once, by net to addr, and returns what it did.
	exchange := func(network, addr string, limit, deadline time.Duration, bytes int, ids ...uint64) sitetest.Result {
		t.Helper()
		var list []string
		for _, id := range ids {
			list = append(list, strconv.FormatUint(id, 10))
		}
		return s.RunHelper(t, limit, token, "exchange",
			"ORRERY_SITE_NET="+network, "ORRERY_SITE_ADDR="+addr, "ORRERY_SITE_NAME="+s.Near,
			"ORRERY_SITE_IDS="+strings.Join(list, ","), "ORRERY_SITE_BYTES="+strconv.Itoa(bytes),
			"ORRERY_SITE_DEADLINE="+deadline.String())
	}
	ids := func(round int) []uint64 {
		var l []uint64
		for i := range conns {
			l = append(l, uint64(round*100+i))
		}
		return l
	}

	// Without a firewall the site reaches the root directly: the route,
	// the listener and TLS work, so what stops the next dial is the
	// firewall.
	if r := exchange("tcp", root.addr, 2*time.Minute, time.Minute, 64<<10, 1); r.Code != 0 {
		t.Fatalf("direct exchange before the firewall: exit %d\n%s", r.Code, r.Stderr)
	}
	root.check(t, s.Addr, 64<<10, 1)

	// The firewall: in, only SSH to the head's address (and what belongs
	// to connections already made); out, no new connection to the
	// root's address, dropped by a rule of its own, which counts.
	s.Firewall(t)

	// Now the head cannot reach the root's port: its packets are
	// dropped, and the root sees no connection.
	accepted := root.accepted()
	r := exchange("tcp", root.addr, 2*time.Minute, 3*time.Second, 64<<10, 2)
	if r.Code != siteDialFailed || !strings.Contains(r.Stderr, "dial") {
		t.Fatalf("direct dial through the firewall: exit %d, want %d (dial failed)\n%s", r.Code, siteDialFailed, r.Stderr)
	}
	if _, p := s.Dropped(t); p == 0 {
		t.Fatalf("the rule that drops connections to the root's address matched no packet; the head said:\n%s", r.Stderr)
	}
	if n := root.accepted(); n != accepted {
		t.Fatalf("the root accepted %d connections during the blocked dial", n-accepted)
	}
	t.Logf("direct dial from the site: %s", strings.TrimSpace(r.Stderr))
	// Nothing but SSH gets in: a port where nothing listens does not
	// even refuse (which it would do without the firewall).
	if c, err := net.DialTimeout("tcp", net.JoinHostPort(s.Addr, "2222"), 3*time.Second); err == nil {
		c.Close()
		t.Fatal("a connection into the site other than SSH got through")
	} else if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("a connection into the site other than SSH: %v, want no answer (dropped)", err)
	}

	// The root dials the site's sshd, asks for the forwarded socket and
	// relays its connections to the root's port.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sock := filepath.Join(d.Dir, "exp", "root.sock")
	ep := Endpoint(d.Endpoint())
	opts := Options{Identity: d.Identity, KnownHosts: d.KnownHosts, Timeout: 20 * time.Second}
	dialRoot := func(ctx context.Context) (net.Conn, error) {
		dl := net.Dialer{Timeout: 20 * time.Second}
		return dl.DialContext(ctx, "tcp", root.addr)
	}
	connect := func() (*Client, chan error) {
		t.Helper()
		c, err := Dial(ctx, ep, opts)
		if err != nil {
			t.Fatalf("Dial: %v\nsshd:\n%s", err, d.Log())
		}
		t.Cleanup(func() { c.Close() })
		ln, err := c.ListenUnix(ctx, sock)
		if err != nil {
			t.Fatalf("ListenUnix %s: %v\nsshd:\n%s", sock, err, d.Log())
		}
		relayed := make(chan error, 1)
		go func() { relayed <- Relay(ctx, ln, dialRoot) }()
		return c, relayed
	}
	round := func(n int) {
		t.Helper()
		start := time.Now()
		if r := exchange("unix", sock, 5*time.Minute, 3*time.Minute, size, ids(n)...); r.Code != 0 {
			t.Fatalf("round %d through the forwarded socket: exit %d\n%s\nsshd:\n%s", n, r.Code, r.Stderr, d.Log())
		}
		root.check(t, s.Near, size, ids(n)...)
		t.Logf("round %d: %d connections, %d MiB each way each, in %v", n, conns, size>>20, time.Since(start).Round(time.Millisecond))
	}
	c, relayed := connect()
	round(1)

	// The network cuts the SSH connection: the site answers the root's
	// next packet with a TCP reset.
	s.IPTables(t, "-I", "INPUT", "1", "-p", "tcp", "-s", s.Near, "-d", s.Addr, "--dport", "22", "-j", "REJECT", "--reject-with", "tcp-reset")
	if err := c.KeepAlive(ctx); err == nil {
		t.Fatal("KeepAlive through a connection the site resets: no error")
	} else {
		t.Logf("cut: %v", err)
	}
	waitRelay(t, relayed)
	if p := s.Packets(t, "INPUT", 1); p == 0 {
		t.Fatal("the connection ended, but not by the site's reset: the rule matched no packet")
	}
	// Meanwhile the head cannot get through: the socket leads to the
	// sshd session of the dead connection, which lingers (or, once that
	// session ends, to nothing).
	if r := exchange("unix", sock, 2*time.Minute, 5*time.Second, 64<<10, 3); r.Code == 0 {
		t.Fatal("the head exchanged data while the SSH connection was cut")
	} else {
		t.Logf("the head during the cut: %s", strings.TrimSpace(r.Stderr))
	}
	s.IPTables(t, "-D", "INPUT", "1")
	c, relayed = connect()
	round(2)

	// The root closes the connection itself (as when it stops, or gives
	// up on a connection that went silent), then connects again.
	c.Close()
	waitRelay(t, relayed)
	_, _ = connect()
	round(4)
	t.Logf("whole test after the site was up: %v", time.Since(began).Round(time.Millisecond))
}

// waitRelay waits for Relay to return after its connection ended; it
// must say so with an error.
func waitRelay(t *testing.T, relayed <-chan error) {
	t.Helper()
	select {
	case err := <-relayed:
		if err == nil {
			t.Fatal("Relay returned no error when its SSH connection ended")
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("Relay still runs two minutes after its SSH connection ended")
	}
}

// siteRoot stands for the root's TLS port: a TLS 1.3 server with a
// certificate of the project's pki for its address. Each connection
// carries one exchange (siteServe), whose outcome it records by id.
type siteRoot struct {
	addr string

	mu     sync.Mutex
	n      int
	result map[uint64]siteResult
}

type siteResult struct {
	from  string // the peer's IP address
	bytes int
	err   error
}

func startSiteRoot(t *testing.T, a *pki.Authority, host string) *siteRoot {
	t.Helper()
	cfg, err := a.ServerConfig([]string{host})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", net.JoinHostPort(host, "0"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := &siteRoot{addr: ln.Addr().String(), result: map[uint64]siteResult{}}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.n++
			r.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(3 * time.Minute))
				id, n, err := siteServe(conn)
				from, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
				r.mu.Lock()
				defer r.mu.Unlock()
				if _, dup := r.result[id]; dup && err == nil {
					err = fmt.Errorf("connection %d came twice", id)
				}
				r.result[id] = siteResult{from: from, bytes: n, err: err}
			}()
		}
	}()
	return r
}

// accepted is how many connections the root has accepted.
func (r *siteRoot) accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}

// check waits for the root's outcome of each id: every byte received as
// sent, from the address from.
func (r *siteRoot) check(t *testing.T, from string, bytes int, ids ...uint64) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for _, id := range ids {
		for {
			r.mu.Lock()
			res, ok := r.result[id]
			r.mu.Unlock()
			if ok {
				switch {
				case res.err != nil:
					t.Fatalf("root, connection %d: %v", id, res.err)
				case res.bytes != bytes:
					t.Fatalf("root, connection %d: %d bytes, want %d", id, res.bytes, bytes)
				case res.from != from:
					t.Fatalf("root, connection %d came from %s, want %s", id, res.from, from)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("root: no outcome for connection %d", id)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// The exchange on one connection: the head sends an id and a length
// (8 bytes each, big-endian), then length bytes of siteStream(id, up);
// the root sends length bytes of siteStream(id, down) meanwhile. Each
// side checks every byte it receives.
const (
	siteUp   = 'u'
	siteDown = 'd'
	// siteMaxBytes bounds the length the root accepts.
	siteMaxBytes = 64 << 20
	// siteDialFailed is the head's exit status when it could not
	// connect at all.
	siteDialFailed = 3
)

// siteStream is the pseudo-random byte stream of one direction of one
// connection.
func siteStream(id uint64, dir byte) *rand.ChaCha8 {
	var seed [32]byte
	binary.BigEndian.PutUint64(seed[:], id)
	seed[8] = dir
	return rand.NewChaCha8(seed)
}

// siteSend writes n bytes of the stream.
func siteSend(w io.Writer, id uint64, dir byte, n int) error {
	src := siteStream(id, dir)
	buf := make([]byte, 32<<10)
	for n > 0 {
		b := buf[:min(n, len(buf))]
		src.Read(b)
		if _, err := w.Write(b); err != nil {
			return err
		}
		n -= len(b)
	}
	return nil
}

// siteVerify reads n bytes and checks them against the stream.
func siteVerify(r io.Reader, id uint64, dir byte, n int) error {
	src := siteStream(id, dir)
	got, want := make([]byte, 32<<10), make([]byte, 32<<10)
	for off := 0; off < n; {
		g, w := got[:min(n-off, len(got))], want[:min(n-off, len(want))]
		if _, err := io.ReadFull(r, g); err != nil {
			return fmt.Errorf("after %d of %d bytes: %w", off, n, err)
		}
		src.Read(w)
		for i := range g {
			if g[i] != w[i] {
				return fmt.Errorf("byte %d of %d differs: %#x, want %#x", off+i, n, g[i], w[i])
			}
		}
		off += len(g)
	}
	return nil
}

// siteServe is the root's side of one exchange; it returns the id, how
// many bytes arrived intact and the first error.
func siteServe(conn net.Conn) (uint64, int, error) {
	var hdr [16]byte
	if _, err := io.ReadFull(conn, hdr[:]); err != nil {
		return 0, 0, fmt.Errorf("header: %w", err)
	}
	id, n := binary.BigEndian.Uint64(hdr[:8]), binary.BigEndian.Uint64(hdr[8:])
	if n > siteMaxBytes {
		return id, 0, fmt.Errorf("length %d: more than %d", n, siteMaxBytes)
	}
	sent := make(chan error, 1)
	go func() { sent <- siteSend(conn, id, siteDown, int(n)) }()
	err := siteVerify(conn, id, siteUp, int(n))
	if err != nil {
		conn.Close()
		<-sent
		return id, 0, fmt.Errorf("receiving: %w", err)
	}
	if err := <-sent; err != nil {
		return id, int(n), fmt.Errorf("sending: %w", err)
	}
	return id, int(n), nil
}

// siteExchange is the head's side of one exchange.
func siteExchange(conn net.Conn, id uint64, n int) error {
	var hdr [16]byte
	binary.BigEndian.PutUint64(hdr[:8], id)
	binary.BigEndian.PutUint64(hdr[8:], uint64(n))
	sent := make(chan error, 1)
	go func() {
		if _, err := conn.Write(hdr[:]); err != nil {
			sent <- err
			return
		}
		sent <- siteSend(conn, id, siteUp, n)
	}()
	if err := siteVerify(conn, id, siteDown, n); err != nil {
		conn.Close()
		<-sent
		return fmt.Errorf("receiving: %w", err)
	}
	if err := <-sent; err != nil {
		return fmt.Errorf("sending: %w", err)
	}
	return nil
}

func init() {
	if h := os.Getenv(sitetest.HelperEnv); h != "" {
		os.Exit(siteHelper(h))
	}
}

// siteHelper is the head, run by the re-executed test binary inside the
// site. "exchange" dials ORRERY_SITE_NET ORRERY_SITE_ADDR once per id
// of ORRERY_SITE_IDS at once, speaks TLS over each (trusting the CA of
// the token on standard input, for the server name ORRERY_SITE_NAME),
// and runs one exchange of ORRERY_SITE_BYTES bytes each way, every step
// within ORRERY_SITE_DEADLINE. Exit 0: all good; siteDialFailed: a
// connection could not be made; 1: anything else.
func siteHelper(h string) int {
	if h != "exchange" {
		fmt.Fprintf(os.Stderr, "unknown helper %q\n", h)
		return 2
	}
	tokenLine, err := io.ReadAll(io.LimitReader(os.Stdin, 4096))
	if err != nil {
		fmt.Fprintln(os.Stderr, "token:", err)
		return 2
	}
	tok, err := pki.ParseToken(strings.TrimSpace(string(tokenLine)))
	if err != nil {
		fmt.Fprintln(os.Stderr, "token:", err)
		return 2
	}
	network, addr, name := os.Getenv("ORRERY_SITE_NET"), os.Getenv("ORRERY_SITE_ADDR"), os.Getenv("ORRERY_SITE_NAME")
	n, err1 := strconv.Atoi(os.Getenv("ORRERY_SITE_BYTES"))
	deadline, err2 := time.ParseDuration(os.Getenv("ORRERY_SITE_DEADLINE"))
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var ids []uint64
	for _, f := range strings.Split(os.Getenv("ORRERY_SITE_IDS"), ",") {
		id, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 2
		}
		ids = append(ids, id)
	}
	codes := make(chan int, len(ids))
	for _, id := range ids {
		go func() {
			raw, err := net.DialTimeout(network, addr, deadline)
			if err != nil {
				fmt.Fprintf(os.Stderr, "connection %d: dial: %v\n", id, err)
				codes <- siteDialFailed
				return
			}
			defer raw.Close()
			raw.SetDeadline(time.Now().Add(deadline))
			conn := tls.Client(raw, pki.ClientConfig(tok, name, nil))
			if err := conn.Handshake(); err != nil {
				fmt.Fprintf(os.Stderr, "connection %d: TLS: %v\n", id, err)
				codes <- 1
				return
			}
			if err := siteExchange(conn, id, n); err != nil {
				fmt.Fprintf(os.Stderr, "connection %d: %v\n", id, err)
				codes <- 1
				return
			}
			codes <- 0
		}()
	}
	code := 0
	for range ids {
		code = max(code, <-codes)
	}
	return code
}
