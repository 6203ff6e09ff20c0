package port_test

// Attacks on the root's port, each a test: in-process, on 127.0.0.1,
// with a real authority, real TLS, a real confined root and a recording
// dispatcher (helpers_test.go).

import (
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/agent"
	"orrery/pki"
	"orrery/port"
	"orrery/protocol"
)

// A node that says hello with neither a certificate nor a join secret is
// refused (TypeRefused, saying why), its connection closes, it never
// joins, and the port logs one line naming its address.
func TestNoCredentialsRefused(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})

	tc, err := f.tlsDial(f.tok, "127.0.0.1", nil, protocol.ALPN)
	if err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	pc := protocol.NewConnLimits(tc, protocol.NodeLimits)
	if err := pc.Send(&protocol.Msg{Type: protocol.TypeHello, Hello: &protocol.Hello{Version: protocol.Version, Name: "anon"}}); err != nil {
		t.Fatal(err)
	}
	m, err := pc.Recv()
	if err != nil {
		t.Fatalf("want a refusal, got %v", err)
	}
	if m.Type != protocol.TypeRefused || !strings.Contains(m.Error, "no credentials") {
		t.Fatalf("got %q %q, want a refusal for no credentials", m.Type, m.Error)
	}
	if m, err := pc.Recv(); err == nil {
		t.Fatalf("after the refusal the port sent %q; want the connection closed", m.Type)
	}

	// The same through the node's client: a token without its secret.
	c := f.client("anon2")
	c.Token.Secret = ""
	if _, err := c.Dial(context.Background()); !errors.Is(err, agent.ErrRefused) {
		t.Fatalf("Dial without a secret: %v, want an error wrapping agent.ErrRefused", err)
	}

	waitFor(t, 5*time.Second, "two refusals are logged", func() bool {
		return len(f.log.lines("connection refused", "no credentials")) == 2
	})
	if got := f.log.lines("connection refused", "peer="+tc.LocalAddr().String()); len(got) != 1 {
		t.Errorf("want one refusal line naming the peer %s, got %q", tc.LocalAddr(), got)
	}
	if ids := f.d.joinedIDs(); len(ids) != 0 {
		t.Errorf("nodes without credentials joined: %q", ids)
	}
}

// A wrong join secret is refused. After the secret is rotated (by a
// second Open of the state directory, as `orrery token --rotate` does)
// the old token is refused and the new one enrols, while a node enrolled
// before the rotation still reconnects with its certificate.
func TestWrongAndRotatedSecret(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})

	bad := f.client("bad")
	bad.Token.Secret = strings.Repeat("A", 43)
	if _, err := bad.Dial(context.Background()); !errors.Is(err, agent.ErrRefused) {
		t.Fatalf("Dial with a wrong secret: %v, want an error wrapping agent.ErrRefused", err)
	}

	early := f.client("early")
	conn := f.join(early)
	earlyID := early.Node()
	conn.Close()

	cli, err := pki.Open(f.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Rotate(); err != nil {
		t.Fatal(err)
	}
	newTok := token(t, cli)
	if newTok.Secret == f.tok.Secret {
		t.Fatal("Rotate kept the secret")
	}

	old := f.client("old")
	_, err = old.Dial(context.Background())
	if !errors.Is(err, agent.ErrRefused) {
		t.Fatalf("Dial with the rotated-out secret: %v, want an error wrapping agent.ErrRefused", err)
	}
	if !strings.Contains(err.Error(), "orrery token") {
		t.Errorf("the refusal %q does not say where to get a new token", err)
	}

	fresh := f.client("fresh")
	fresh.Token = newTok
	f.join(fresh).Close()

	c2 := f.join(early) // the same client: shows its certificate now
	defer c2.Close()
	if early.Node() != earlyID {
		t.Errorf("the early node came back as %q, want %q", early.Node(), earlyID)
	}
	if got, want := f.d.joinedIDs(), []string{earlyID, fresh.Node(), earlyID}; !slices.Equal(got, want) {
		t.Errorf("joined %q, want %q", got, want)
	}
	if got := f.log.lines("connection refused", "wrong join secret"); len(got) != 2 {
		t.Errorf("want two refusal lines for wrong secrets, got %q", got)
	}
}

// Plaintext — an HTTP request, or bytes that are not TLS at all — is
// dropped during the handshake: the port answers no more than a TLS
// alert, never a frame of the agent protocol, and logs one line naming
// the peer.
func TestPlaintextClosed(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})
	for _, tc := range []struct{ name, send string }{
		{"http", "GET / HTTP/1.1\r\nHost: root\r\n\r\n"},
		{"garbage", "\x00\x00\x00\x10\x00\x00\x00\x00{\"t\":\"register\"}"},
		{"tls-like garbage", "\x16\x03\x01\x00\x05hello, world, this is not TLS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := net.Dial("tcp", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, tc.send); err != nil {
				t.Fatal(err)
			}
			got, _ := closedWithin(t, conn, 5*time.Second)
			if !isTLSAlertOnly(got) {
				t.Errorf("the port answered %q; want nothing or one TLS alert", got)
			}
			waitFor(t, 5*time.Second, "the refusal is logged", func() bool {
				return len(f.log.lines("connection refused", "peer="+conn.LocalAddr().String())) > 0
			})
			if got := f.log.lines("peer=" + conn.LocalAddr().String()); len(got) != 1 || !strings.Contains(got[0], "TLS handshake") {
				t.Errorf("want one line about the TLS handshake naming the peer, got %q", got)
			}
		})
	}
	if ids := f.d.joinedIDs(); len(ids) != 0 {
		t.Errorf("plaintext peers joined: %q", ids)
	}
}

// A peer that connects and sends nothing, or finishes the TLS handshake
// and sends no hello, is closed once HelloTimeout has passed since it
// arrived, with a log line.
func TestStalledHandshakeClosed(t *testing.T) {
	const hello = 500 * time.Millisecond
	f := newFixture(t, port.Config{HelloTimeout: hello})

	t.Run("silent TCP", func(t *testing.T) {
		conn, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		got, took := closedWithin(t, conn, hello+5*time.Second)
		if !isTLSAlertOnly(got) {
			t.Errorf("the port answered %q", got)
		}
		if took < hello*8/10 {
			t.Errorf("closed after %s, before the hello timeout %s", took, hello)
		}
		waitFor(t, 5*time.Second, "the refusal is logged", func() bool {
			return len(f.log.lines("connection refused", "peer="+conn.LocalAddr().String(), "TLS handshake")) == 1
		})
	})

	t.Run("TLS without hello", func(t *testing.T) {
		start := time.Now()
		tc, err := f.tlsDial(f.tok, "127.0.0.1", nil, protocol.ALPN)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := closedWithin(t, tc, hello+5*time.Second)
		if len(got) != 0 {
			t.Errorf("the port sent %q to a peer that said no hello", got)
		}
		if took := time.Since(start); took < hello*8/10 {
			t.Errorf("closed after %s, before the hello timeout %s", took, hello)
		}
		waitFor(t, 5*time.Second, "the refusal is logged", func() bool {
			return len(f.log.lines("connection refused", "peer="+tc.LocalAddr().String(), "hello")) == 1
		})
	})
	if ids := f.d.joinedIDs(); len(ids) != 0 {
		t.Errorf("stalled peers joined: %q", ids)
	}
}

// A first frame over HelloLimits closes the connection before anything
// is allocated for it: a header claiming 64 MiB, one just over the
// limit (and sent whole), and data on the hello.
func TestOversizedHelloClosed(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})
	justOver := protocol.HelloLimits.MaxHeader + 1
	prefix, suffix := `{"t":"hello","hello":{"version":3,"name":"`, `"}}`
	body := prefix + strings.Repeat("x", justOver-len(prefix)-len(suffix)) + suffix
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"64 MiB header", frameHeader(64<<20, 0)},
		{"64 MiB data", append(frameHeader(2, 64<<20), "{}"...)},
		{"header just over the limit", append(frameHeader(uint32(len(body)), 0), body...)},
		{"data on the hello", append(frameHeader(uint32(len(`{"t":"hello"}`)), 1), `{"t":"hello"}x`...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tconn, err := f.tlsDial(f.tok, "127.0.0.1", nil, protocol.ALPN)
			if err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			// The port may close before all of a frame is written: a
			// failed write is what the attack gets.
			tconn.Write(tc.frame)
			got, _ := closedWithin(t, tconn, 5*time.Second)
			waitFor(t, 5*time.Second, "the refusal is logged", func() bool {
				return len(f.log.lines("connection refused", "peer="+tconn.LocalAddr().String(), "exceeds")) == 1
			})
			runtime.ReadMemStats(&after)
			if len(got) != 0 {
				t.Errorf("the port answered %q", got)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew >= 4<<20 {
				t.Errorf("refusing the frame allocated %d bytes; want < 4 MiB", grew)
			}
		})
	}
	if ids := f.d.joinedIDs(); len(ids) != 0 {
		t.Errorf("peers with oversized hellos joined: %q", ids)
	}
}

// A first frame that is not a hello (a register, a staging request, a
// heartbeat, an empty hello) is refused and nothing is served: no frame
// comes back, nothing joins, and the root's file is never read out.
func TestFirstFrameNotHello(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})
	for _, m := range []*protocol.Msg{
		{Type: protocol.TypeRegister, Register: &protocol.Register{Version: protocol.Version, Name: "sneaky", CPUs: 1, JobLimit: 1}},
		{Type: protocol.TypeOpen, ID: 1, Path: "in-1.txt"},
		{Type: protocol.TypeHeartbeat, Heartbeat: &protocol.Heartbeat{}},
		{Type: protocol.TypeHello},
	} {
		t.Run(m.Type, func(t *testing.T) {
			tconn, err := f.tlsDial(f.tok, "127.0.0.1", nil, protocol.ALPN)
			if err != nil {
				t.Fatal(err)
			}
			pc := protocol.NewConnLimits(tconn, protocol.NodeLimits)
			if err := pc.Send(m); err != nil {
				t.Fatal(err)
			}
			got, _ := closedWithin(t, tconn, 5*time.Second)
			if len(got) != 0 {
				t.Errorf("the port answered %q", got)
			}
			waitFor(t, 5*time.Second, "the refusal is logged", func() bool {
				return len(f.log.lines("connection refused", "peer="+tconn.LocalAddr().String())) == 1
			})
		})
	}
	if ids := f.d.joinedIDs(); len(ids) != 0 {
		t.Errorf("peers that said no hello joined: %q", ids)
	}
}

// A hello of another protocol version, and a peer that asks for no or
// another application protocol, are refused before they are served.
func TestWrongVersionOrALPNRefused(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})

	tconn, err := f.tlsDial(f.tok, "127.0.0.1", nil, protocol.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	pc := protocol.NewConnLimits(tconn, protocol.NodeLimits)
	pc.Send(&protocol.Msg{Type: protocol.TypeHello, Hello: &protocol.Hello{Version: protocol.Version - 1, Secret: f.tok.Secret}})
	if m, err := pc.Recv(); err != nil || m.Type != protocol.TypeRefused || !strings.Contains(m.Error, "version") {
		t.Errorf("old version: got %v, %v; want a refusal naming the version", m, err)
	}

	noALPN, err := f.tlsDial(f.tok, "127.0.0.1", nil)
	if err != nil {
		t.Fatalf("TLS without ALPN: %v", err)
	}
	pc = protocol.NewConnLimits(noALPN, protocol.NodeLimits)
	pc.Send(&protocol.Msg{Type: protocol.TypeHello, Hello: &protocol.Hello{Version: protocol.Version, Secret: f.tok.Secret}})
	if got, _ := closedWithin(t, noALPN, 5*time.Second); len(got) != 0 {
		t.Errorf("a peer without ALPN got %q", got)
	}
	waitFor(t, 5*time.Second, "the ALPN refusal is logged", func() bool {
		return len(f.log.lines("connection refused", "peer="+noALPN.LocalAddr().String(), "application protocol")) == 1
	})

	if _, err := f.tlsDial(f.tok, "127.0.0.1", nil, "http/1.1"); err == nil {
		t.Error("a TLS handshake asking for http/1.1 succeeded")
	}
	if ids := f.d.joinedIDs(); len(ids) != 0 {
		t.Errorf("refused peers joined: %q", ids)
	}
}

// Revoking a connected node from another Open of the state directory (as
// `orrery token --revoke` does) closes its connection within about 2 s;
// the dispatcher hears it gone, and the node's certificate is refused
// when it comes back.
func TestRevokedNodeCutOff(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second, RevokeCheck: 50 * time.Millisecond})
	c := f.client("victim")
	conn := f.join(c)
	id := c.Node()
	bystander := f.client("bystander")
	bconn := f.join(bystander)

	cli, err := pki.Open(f.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cli.Revoke(id); err != nil {
		t.Fatal(err)
	}
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		_, err := conn.Recv()
		if err == nil {
			continue // the welcome
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("the revoked node's connection is still open after %s", time.Since(start))
		}
		break
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("the revoked node's connection closed %s after the revocation; want within ~2 s", took)
	}
	waitFor(t, 5*time.Second, "the dispatcher hears the revoked node gone", func() bool { return f.d.goneCount() == 1 })
	if got := f.log.lines("node revoked", "node="+id); len(got) != 1 {
		t.Errorf("want one line saying %s was revoked, got %q", id, got)
	}

	if _, err := c.Dial(context.Background()); !errors.Is(err, agent.ErrRefused) {
		t.Fatalf("the revoked node reconnecting: %v, want an error wrapping agent.ErrRefused", err)
	}
	waitFor(t, 5*time.Second, "the refusal is logged", func() bool {
		return len(f.log.lines("connection refused", "revoked")) == 1
	})

	// The other node was not touched.
	bconn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	for {
		_, err := bconn.Recv()
		if err == nil {
			continue
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("the bystander's connection ended: %v", err)
		}
		break
	}
	if ids := f.d.joinedIDs(); !slices.Equal(ids, []string{id, bystander.Node()}) {
		t.Errorf("joined %q", ids)
	}
}

// A flood of idle connections: beyond MaxPending they are closed at once
// (one log line each, naming the peer), the pending ones are closed at
// the hello timeout, and a real node joins within HelloTimeout + 1 s.
func TestFloodOfIdleConnections(t *testing.T) {
	const (
		pending = 8
		extra   = 50
		hello   = 1500 * time.Millisecond
	)
	f := newFixture(t, port.Config{HelloTimeout: hello, MaxPending: pending, MaxConns: 64})

	start := time.Now()
	var flood []net.Conn
	for range pending + extra {
		c, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		flood = append(flood, c)
	}
	opened := time.Now()
	if opened.Sub(start) > hello/2 {
		t.Logf("warning: opening the flood took %s", opened.Sub(start))
	}

	// A real node keeps trying while the flood holds.
	node := f.client("real")
	node.Timeout = 5 * time.Second
	joined := make(chan error, 1)
	go func() {
		for {
			conn, err := node.Dial(context.Background())
			if err == nil {
				t.Cleanup(func() { conn.Close() })
				joined <- conn.Send(&protocol.Msg{Type: protocol.TypeRegister, Register: &protocol.Register{
					Version: protocol.Version, Name: "real", CPUs: 1, JobLimit: 1}})
				return
			}
			if errors.Is(err, agent.ErrRefused) || time.Since(opened) > hello+5*time.Second {
				joined <- err
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()

	// Those over MaxPending are closed at once; the rest stay until the
	// hello timeout (at least start + hello, after this check).
	var closed, open []net.Conn
	stillOpen := make([]bool, len(flood))
	var wg sync.WaitGroup
	for i, c := range flood {
		wg.Go(func() {
			c.SetReadDeadline(start.Add(hello * 2 / 3))
			var b [1]byte
			_, err := c.Read(b[:])
			var ne net.Error
			stillOpen[i] = errors.As(err, &ne) && ne.Timeout()
		})
	}
	wg.Wait()
	for i, c := range flood {
		if stillOpen[i] {
			open = append(open, c)
		} else {
			closed = append(closed, c)
		}
	}
	if len(open) > pending || len(closed) < extra {
		t.Errorf("%d of the flood are still open and %d closed; want at most %d open", len(open), len(closed), pending)
	}
	for _, c := range closed {
		if got := f.log.lines("peer=" + c.LocalAddr().String()); len(got) != 1 || !strings.Contains(got[0], "too many connections authenticating") {
			t.Errorf("want one line refusing %s as too many authenticating, got %q", c.LocalAddr(), got)
			break
		}
	}

	if err := <-joined; err != nil {
		t.Fatalf("the real node could not join during the flood: %v", err)
	}
	waitFor(t, 5*time.Second, "the real node joins", func() bool { return len(f.d.joinedIDs()) == 1 })
	// It gets in once a stalled peer's slot frees, at HelloTimeout; the
	// margin is wide so that a busy machine does not decide the test.
	if took := time.Since(opened); took > hello+4*time.Second {
		t.Errorf("the real node joined %s after the flood began; want soon after HelloTimeout (%s)", took, hello)
	}
	for _, c := range open {
		closedWithin(t, c, 5*time.Second)
	}
	if got := len(f.log.lines("connection refused", "TLS handshake")); got != len(open) {
		t.Errorf("%d hello-timeout lines for %d pending flood connections", got, len(open))
	}
}

// With MaxConns held by authenticated but idle nodes, and then by
// pending connections, the next connection is refused at once with a
// log line naming the peer and the limit; nothing crashes, a node gets
// in again once the others leave, and the port keeps running.
func TestMaxConnsExhausted(t *testing.T) {
	const maxConns = 4
	f := newFixture(t, port.Config{HelloTimeout: 10 * time.Second, MaxPending: 8, MaxConns: maxConns})

	// refusedAtOnce reports whether a new connection is closed within a
	// second, and checks the line that says so.
	refusedAtOnce := func() bool {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(time.Second))
		var b [1]byte
		_, err = c.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false // admitted
		}
		waitFor(t, 5*time.Second, "the refusal is logged", func() bool {
			return len(f.log.lines("peer="+c.LocalAddr().String(), "too many connections", "max=4")) == 1
		})
		return true
	}

	var nodes []*protocol.Conn
	for i := range maxConns {
		conn, err := f.client("idle").Dial(context.Background())
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		defer conn.Close()
		nodes = append(nodes, conn) // authenticated, never registers
	}
	if !refusedAtOnce() {
		t.Fatalf("a connection over MaxConns (all held by authenticated nodes) was admitted")
	}
	late := f.client("late")
	late.Timeout = 5 * time.Second
	if _, err := late.Dial(context.Background()); err == nil || errors.Is(err, agent.ErrRefused) {
		t.Errorf("Dial over MaxConns: %v; want a connection error that is not a refusal of credentials", err)
	}

	for _, n := range nodes {
		n.Close()
	}
	waitFor(t, 10*time.Second, "the nodes' links end", func() bool {
		return len(f.log.lines("node connection ended")) == maxConns
	})
	var pend []net.Conn
	for range maxConns {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		pend = append(pend, c)
	}
	// The nodes' slots free as their links end, then the pending
	// connections hold them all.
	waitFor(t, 10*time.Second, "a connection over MaxConns held by pending ones is refused", refusedAtOnce)

	for _, c := range pend {
		c.Close()
	}
	waitFor(t, 10*time.Second, "a node gets in again once the others left", func() bool {
		conn, err := late.Dial(context.Background())
		if err != nil {
			return false
		}
		conn.Close()
		return true
	})
	select {
	case err := <-f.done:
		t.Fatalf("Run returned while serving: %v", err)
	default:
	}
}

// A token of another root (its CA hash does not match this root's
// certificate authority) fails the handshake with an error wrapping
// agent.ErrRefused, so the agent stops instead of retrying for ever, and
// never joins. So does a certificate issued by another root.
func TestTokenOfAnotherRoot(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})
	other := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})

	c := f.client("lost")
	c.Token = other.tok
	_, err := c.Dial(context.Background())
	if err == nil {
		t.Fatal("Dial with another root's token succeeded")
	}
	if !strings.Contains(err.Error(), pki.ErrCAMismatch.Error()) {
		t.Errorf("Dial with another root's token: %v; want an error that says %q", err, pki.ErrCAMismatch)
	}
	if !errors.Is(err, agent.ErrRefused) {
		t.Errorf("BUG: Dial with another root's token returned %q, which does not wrap agent.ErrRefused, "+
			"so agent.Serve retries for ever (port/dial.go isVerifyError: crypto/tls returns VerifyConnection's error "+
			"unwrapped, neither a *tls.CertificateVerificationError nor a tls.AlertError)", err)
	}

	// This root's hash with the other's secret: a wrong secret.
	c2 := f.client("mixed")
	c2.Token.Secret = other.tok.Secret
	if _, err := c2.Dial(context.Background()); !errors.Is(err, agent.ErrRefused) {
		t.Errorf("Dial with another root's secret: %v, want an error wrapping agent.ErrRefused", err)
	}

	// A node enrolled at the other root shows that root's certificate.
	c3 := other.client("foreign")
	other.join(c3).Close()
	c3.Addr, c3.Token = f.addr, f.tok
	if _, err := c3.Dial(context.Background()); !errors.Is(err, agent.ErrRefused) {
		t.Errorf("Dial with another root's certificate: %v, want an error wrapping agent.ErrRefused", err)
	}
	if ids := f.d.joinedIDs(); len(ids) != 0 {
		t.Errorf("nodes of another root joined: %q", ids)
	}
}

// The server certificate names the listen address and the advertised
// name: a node that reaches the root by either verifies it; a name not
// in the certificate fails with an error that says to use --advertise.
func TestServerNamesAndAdvertise(t *testing.T) {
	const advertised = "orrery-root.test"
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second, Advertise: advertised + ":7443"})

	names := port.Names("127.0.0.1", advertised+":7443")
	for _, want := range []string{"127.0.0.1", "localhost", advertised} {
		if !slices.Contains(names, want) {
			t.Errorf("Names lacks %q: %q", want, names)
		}
	}

	tconn, err := f.tlsDial(f.tok, advertised, nil, protocol.ALPN)
	if err != nil {
		t.Fatalf("TLS by the advertised name: %v", err)
	}
	leaf := tconn.ConnectionState().PeerCertificates[0]
	if !slices.Contains(leaf.DNSNames, advertised) || !slices.Contains(leaf.DNSNames, "localhost") {
		t.Errorf("the certificate names %q", leaf.DNSNames)
	}
	if !slices.ContainsFunc(leaf.IPAddresses, func(ip net.IP) bool { return ip.Equal(net.IPv4(127, 0, 0, 1)) }) {
		t.Errorf("the certificate names the addresses %v, not 127.0.0.1", leaf.IPAddresses)
	}
	// A node reaching the root by that name enrols.
	pc := protocol.NewConnLimits(tconn, protocol.NodeLimits)
	_, pub, err := pki.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	pc.Send(&protocol.Msg{Type: protocol.TypeHello, Hello: &protocol.Hello{Version: protocol.Version, Name: "adv", Secret: f.tok.Secret, PublicKey: pub}})
	if m, err := pc.Recv(); err != nil || m.Type != protocol.TypeEnrolled {
		t.Errorf("enrolling by the advertised name: %v, %v", m, err)
	}

	for _, host := range []string{"localhost", "127.0.0.1"} {
		_, p, _ := net.SplitHostPort(f.addr)
		c := f.client("by-" + host)
		c.Addr = net.JoinHostPort(host, p)
		conn, err := c.Dial(context.Background())
		if err != nil {
			t.Errorf("Dial %s: %v", c.Addr, err)
			continue
		}
		conn.Close()
	}

	_, err = f.tlsDial(f.tok, "elsewhere.test", nil, protocol.ALPN)
	if err == nil || !strings.Contains(err.Error(), "--advertise elsewhere.test") {
		t.Errorf("TLS by a name the certificate lacks: %v; want an error that says --advertise", err)
	}
}

// End to end over TLS: a node enrolled with the token and started on job
// 2 reads the file its copy names; every other path, and the file
// outside the root, is refused with Denied and no data.
func TestStagingOverTLSLeastPrivilege(t *testing.T) {
	d := &recorder{start: mainAccess(t)}
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second, Dispatcher: d})
	c := f.client("stager")
	conn := f.join(c)

	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, want := range []string{protocol.TypeWelcome, protocol.TypeStart} {
		m, err := conn.Recv()
		if err != nil || m.Type != want {
			t.Fatalf("got %v, %v; want %s", m, err, want)
		}
	}
	ask := func(id uint64, path string) (data string, reply *protocol.Msg) {
		t.Helper()
		if err := conn.Send(&protocol.Msg{Type: protocol.TypeOpen, ID: id, Path: path}); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := conn.Recv()
			if err != nil {
				t.Fatalf("open %s: %v", path, err)
			}
			if m.ID != id {
				t.Fatalf("open %s: got %s for request %d", path, m.Type, m.ID)
			}
			switch m.Type {
			case protocol.TypeData:
				data += string(m.Data)
				if m.EOF {
					return data, nil
				}
			case protocol.TypeReply:
				return data, m
			}
		}
	}
	if data, r := ask(1, "in-2.txt"); r != nil || data != "input 2\n" {
		t.Errorf("open of the granted file: %q, %+v", data, r)
	}
	for i, p := range []string{"in-1.txt", "../outside.txt", "/etc/passwd", f.outside, "results/../../outside.txt"} {
		data, r := ask(uint64(10+i), p)
		if data != "" || r == nil || !r.Denied {
			t.Errorf("open %q: data %q, reply %+v; want Denied and no data", p, data, r)
		}
	}
}

// TestIPv6 listens on the IPv6 loopback: the certificate names it, and
// a node joins by it.
func TestIPv6(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	f := newFixture(t, port.Config{Addr: "[::1]:0"})
	if !strings.HasPrefix(f.addr, "[::1]:") {
		t.Fatalf("listening on %s", f.addr)
	}
	f.join(f.client("six")) // it dials [::1]:PORT, verifies the certificate by that address, enrols, registers
	if ids := f.d.joinedIDs(); len(ids) != 1 || ids[0] != "six" {
		t.Fatalf("joined %v, want six", ids)
	}
}

// TestPendingPerHost: one host may hold only a few connections still
// authenticating; another host still gets a slot.
func TestPendingPerHost(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second, MaxPending: 64, MaxPendingPerHost: 3})
	dialFrom := func(ip string) net.Conn {
		d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		c, err := d.Dial("tcp", f.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	stillOpen := func(c net.Conn) bool {
		c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		return errors.As(err, &ne) && ne.Timeout()
	}
	var held []net.Conn
	for range 3 {
		held = append(held, dialFrom("127.0.0.1"))
	}
	for _, c := range held {
		if !stillOpen(c) {
			t.Fatalf("one of the first 3 connections from 127.0.0.1 was closed")
		}
	}
	closedWithin(t, dialFrom("127.0.0.1"), time.Second) // a 4th from the same host
	if got := f.log.lines("too many connections authenticating from its host"); len(got) != 1 {
		t.Errorf("refusals logged: %q, want one", got)
	}
	if other := dialFrom("127.0.0.2"); !stillOpen(other) {
		t.Errorf("a connection from another host was closed while 127.0.0.1 held its 3")
	}
}
