// Package port is the root's one network port: a TCP listener that
// speaks only TLS 1.3 and serves nothing before its peer is
// authenticated.
//
// The TLS handshake's application protocol (ALPN) says what the peer
// is: protocol.ALPN for a node agent or a cluster head, and, when the
// port has a web handler (Config.Web), "http/1.1" for a browser or
// Prometheus, whose every request the handler authenticates. A node agent's first frame must be a hello, read under
// protocol.HelloLimits within HelloTimeout of the connection's
// arrival: either the node shows the client certificate it was enrolled
// with, or it sends the join secret and a public key and is enrolled
// (issued a certificate naming its node ID). Anything else — no
// credential, a wrong or rotated-out secret, a revoked node, plaintext,
// a stalled or oversized handshake — is refused with one log line that
// names the peer's address, and the connection closes: never a job,
// never a byte of a file.
//
// The port bounds the connections it holds (MaxConns) and those still
// authenticating (MaxPending); a connection beyond either is closed at
// once, so a flood of idle connections cannot keep a real node out. When
// accepting fails for want of file descriptors, it backs off and tries
// again.
package port

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"orrery/link"
	"orrery/pki"
	"orrery/protocol"
	"orrery/task"
)

// Config sets up the root's port.
type Config struct {
	// Addr is the address to listen on (HOST:PORT; any host, IPv6 in
	// brackets, port 0 for any).
	Addr string
	// Listener, when set, is a socket already bound to Addr, which the
	// port serves instead of binding its own (so a caller can refuse an
	// address before it makes anything).
	Listener net.Listener
	// Advertise is how others reach the port (NAME or NAME:PORT); the
	// server certificate names it.
	Advertise string
	// Authority holds the CA, the server certificate and the join secret.
	Authority *pki.Authority
	// Dispatcher hears of every authenticated node.
	Dispatcher link.Dispatcher
	// Root is the root directory as nodes may see it.
	Root task.Root
	Log  *slog.Logger
	// MaxConns bounds the connections held at once (default 1024);
	// MaxPending those still authenticating (default 64), and
	// MaxPendingPerHost those still authenticating from one address
	// (default 8), so one host cannot take every slot.
	MaxConns, MaxPending, MaxPendingPerHost int
	// HelloTimeout bounds the TLS handshake and the hello (default 10 s).
	HelloTimeout time.Duration
	// RevokeCheck is how often revoked nodes are looked for among the
	// connected ones (default 250 ms).
	RevokeCheck time.Duration
	// SendTimeout bounds each message sent to a node (default 10 s).
	SendTimeout time.Duration
	// Web, when set, is served over HTTP/1.1 on the same port to peers
	// whose TLS handshake asks for it (ALPN "http/1.1", as browsers and
	// Prometheus do): the live page and /metrics. The handler
	// authenticates every request itself (a viewer's cookie, a bearer
	// token); the port bounds the connections (MaxConns, and
	// MaxPendingPerHost until the handshake is done) and their timeouts.
	// An HTTP peer never reaches a node's link, nor a node the handler.
	Web http.Handler
	// MaxWebConns bounds the web peers' connections held at once
	// (default a quarter of MaxConns), so that viewers can never take
	// the nodes' room.
	MaxWebConns int
	// MaxWebConnsPerHost bounds those from one address (default 64, a
	// quarter of the default MaxWebConns), so one host cannot take every
	// web slot; viewers behind one address (a NAT) share it: each
	// browser holds an event stream and a few more over HTTP/1.1.
	MaxWebConnsPerHost int
}

// ALPNHTTP is the TLS application protocol of the port's web peers.
const ALPNHTTP = "http/1.1"

// Port is a listening root port.
type Port struct {
	cfg  Config
	ln   net.Listener
	tls  *tls.Config
	log  *slog.Logger
	wg   sync.WaitGroup
	open atomic.Int64 // connections held
	sem  chan struct{}

	mu      sync.Mutex
	conns   map[net.Conn]string // every connection held, with its node ID once known
	pending map[string]int      // connections authenticating, by host

	web     *http.Server // nil without Config.Web
	webLn   *connQueue
	webOpen atomic.Int64   // web peers' connections held
	webHost map[string]int // of those, by host; under mu
}

// Listen binds the port and prepares its certificate, which names the
// listen address, this machine's host name and addresses, and the
// advertised name.
func Listen(cfg Config) (*Port, error) {
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = 1024
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 64
	}
	if cfg.MaxPendingPerHost <= 0 {
		cfg.MaxPendingPerHost = 8
	}
	if cfg.MaxWebConns <= 0 {
		cfg.MaxWebConns = max(cfg.MaxConns/4, 1)
	}
	if cfg.MaxWebConnsPerHost <= 0 {
		cfg.MaxWebConnsPerHost = max(cfg.MaxWebConns/4, 1)
	}
	if cfg.HelloTimeout <= 0 {
		cfg.HelloTimeout = 10 * time.Second
	}
	if cfg.RevokeCheck <= 0 {
		cfg.RevokeCheck = 250 * time.Millisecond
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", cfg.Addr, err)
	}
	ln := cfg.Listener
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Addr); err != nil {
			return nil, err
		}
	}
	tc, err := cfg.Authority.ServerConfig(Names(host, cfg.Advertise))
	if err != nil {
		ln.Close()
		return nil, err
	}
	tc = tc.Clone()
	tc.MinVersion, tc.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	tc.NextProtos = []string{protocol.ALPN}
	p := &Port{cfg: cfg, ln: ln, tls: tc, log: cfg.Log, sem: make(chan struct{}, cfg.MaxPending),
		conns: map[net.Conn]string{}, pending: map[string]int{}, webHost: map[string]int{}}
	if cfg.Web != nil {
		tc.NextProtos = append(tc.NextProtos, ALPNHTTP)
		p.webLn = &connQueue{ch: make(chan net.Conn), done: make(chan struct{}), addr: ln.Addr()}
		// A request, body and all, arrives within three hello timeouts
		// (30 s by default): a peer that sends half of one holds no slot
		// for long.
		// An answer has a minute (the event stream sets each write's
		// own deadline): a viewer that never reads holds no handler.
		p.web = &http.Server{Handler: cfg.Web, ReadHeaderTimeout: cfg.HelloTimeout, ReadTimeout: 3 * cfg.HelloTimeout,
			WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
			MaxHeaderBytes: 64 << 10, ErrorLog: slog.NewLogLogger(cfg.Log.Handler(), slog.LevelWarn)}
	}
	return p, nil
}

// Addr is the address the port listens on.
func (p *Port) Addr() net.Addr { return p.ln.Addr() }

// Names are the names the server certificate must carry: the listen
// host (unless it is a wildcard), this machine's host name, its
// interface addresses, localhost, and the advertised name.
func Names(host, advertise string) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		names = append(names, host)
	}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLinkLocalUnicast() {
				names = append(names, ipn.IP.String())
			}
		}
	}
	if advertise != "" {
		if h, _, err := net.SplitHostPort(advertise); err == nil {
			advertise = h
		}
		names = append(names, advertise)
	}
	return names
}

// Run accepts connections until ctx is done, then closes them all and
// waits for their goroutines.
func (p *Port) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.watchRevoked(ctx)
	}()
	stop := context.AfterFunc(ctx, func() { p.ln.Close() })
	defer stop()
	if p.web != nil {
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.web.Serve(p.webLn)
		}()
		// Web peers' connections (event streams among them) close with
		// ctx.
		stopWeb := context.AfterFunc(ctx, func() {
			p.webLn.Close()
			p.web.Close()
		})
		defer stopWeb()
	}
	backoff := 5 * time.Millisecond
	for {
		conn, err := p.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				break
			}
			// Out of file descriptors, say: wait and try again.
			p.log.Warn("accept failed; retrying", "err", err, "in", backoff)
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !p.admit(conn) {
			continue
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.release(conn)
			p.serve(ctx, conn)
		}()
	}
	// Connections still authenticating close now; nodes' links close
	// with ctx, after sending what they have queued (a shutdown).
	p.mu.Lock()
	for c, id := range p.conns {
		if id == "" {
			c.Close()
		}
	}
	p.mu.Unlock()
	p.wg.Wait()
	return nil
}

// admit takes a new connection within the bounds, or closes it.
func (p *Port) admit(conn net.Conn) bool {
	if p.open.Load() >= int64(p.cfg.MaxConns) {
		p.log.Warn("connection refused: too many connections", "peer", conn.RemoteAddr(), "max", p.cfg.MaxConns)
		conn.Close()
		return false
	}
	host := hostOf(conn)
	p.mu.Lock()
	if p.pending[host] >= p.cfg.MaxPendingPerHost {
		p.mu.Unlock()
		p.log.Warn("connection refused: too many connections authenticating from its host", "peer", conn.RemoteAddr(), "max", p.cfg.MaxPendingPerHost)
		conn.Close()
		return false
	}
	p.mu.Unlock()
	select {
	case p.sem <- struct{}{}:
	default:
		p.log.Warn("connection refused: too many connections authenticating", "peer", conn.RemoteAddr(), "max", p.cfg.MaxPending)
		conn.Close()
		return false
	}
	p.open.Add(1)
	p.mu.Lock()
	p.conns[conn] = ""
	p.pending[host]++
	p.mu.Unlock()
	return true
}

// authenticated releases a connection's authenticating slots.
func (p *Port) authenticated(conn net.Conn) {
	<-p.sem
	host := hostOf(conn)
	p.mu.Lock()
	if p.pending[host]--; p.pending[host] <= 0 {
		delete(p.pending, host)
	}
	p.mu.Unlock()
}

// hostOf is the address a connection comes from, without its port.
func hostOf(conn net.Conn) string {
	h, _, err := net.SplitHostPort(conn.RemoteAddr().String())
	if err != nil {
		return conn.RemoteAddr().String()
	}
	return h
}

func (p *Port) release(conn net.Conn) {
	conn.Close()
	p.mu.Lock()
	delete(p.conns, conn)
	p.mu.Unlock()
	p.open.Add(-1)
}

// serve authenticates one connection and, for a node, serves its link;
// a web peer's goes to the web server (serveWeb).
func (p *Port) serve(ctx context.Context, raw net.Conn) {
	tc, err := p.handshake(ctx, raw)
	if err == nil && p.web != nil && tc.ConnectionState().NegotiatedProtocol == ALPNHTTP {
		p.authenticated(raw)
		p.serveWeb(ctx, raw, tc)
		return
	}
	var id string
	var head bool
	var conn *protocol.Conn
	if err == nil {
		id, head, conn, err = p.authenticate(raw, tc)
	}
	p.authenticated(raw)
	if err != nil {
		p.log.Warn("connection refused", "peer", raw.RemoteAddr(), "why", err)
		return
	}
	p.mu.Lock()
	// One connection per node: a newer one replaces the older.
	for c, other := range p.conns {
		if other == id && c != raw {
			p.log.Info("node reconnected: its older connection closed", "node", id, "peer", c.RemoteAddr())
			c.Close()
			p.conns[c] = ""
		}
	}
	p.conns[raw] = id
	p.mu.Unlock()
	p.log.Info("node authenticated", "node", id, "peer", raw.RemoteAddr())
	err = link.Serve(ctx, conn, p.cfg.Dispatcher, link.Config{ID: id, Head: head, Resumable: true, Root: p.cfg.Root,
		Log: p.log, SendTimeout: p.cfg.SendTimeout})
	p.log.Info("node connection ended", "node", id, "peer", raw.RemoteAddr(), "err", err)
}

// errRefused is a hello whose credentials do not hold.
var errRefused = errors.New("credentials refused")

// handshake runs the TLS handshake within the hello timeout, which
// also bounds the hello that follows (authenticate); raw keeps that
// deadline.
func (p *Port) handshake(ctx context.Context, raw net.Conn) (*tls.Conn, error) {
	deadline := time.Now().Add(p.cfg.HelloTimeout)
	raw.SetDeadline(deadline)
	hctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	tc := tls.Server(raw, p.tls)
	if err := tc.HandshakeContext(hctx); err != nil {
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	return tc, nil
}

// serveWeb hands a web peer's connection to the web server and waits
// until it is closed (by the server, the peer, or ctx), so that it counts
// against MaxConns as long as it is held.
func (p *Port) serveWeb(ctx context.Context, raw net.Conn, tc *tls.Conn) {
	if p.webOpen.Add(1) > int64(p.cfg.MaxWebConns) {
		p.webOpen.Add(-1)
		p.log.Warn("web connection refused: too many web connections", "peer", raw.RemoteAddr(), "max", p.cfg.MaxWebConns)
		tc.Close()
		return
	}
	defer p.webOpen.Add(-1)
	host := hostOf(raw)
	p.mu.Lock()
	if p.webHost[host] >= p.cfg.MaxWebConnsPerHost {
		p.mu.Unlock()
		p.log.Warn("web connection refused: too many web connections from its host", "peer", raw.RemoteAddr(), "max", p.cfg.MaxWebConnsPerHost)
		tc.Close()
		return
	}
	p.webHost[host]++
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		if p.webHost[host]--; p.webHost[host] <= 0 {
			delete(p.webHost, host)
		}
		p.mu.Unlock()
	}()
	raw.SetDeadline(time.Time{}) // the web server sets its own
	wc := &watchedConn{Conn: tc, closed: make(chan struct{})}
	select {
	case p.webLn.ch <- wc:
	case <-p.webLn.done:
		tc.Close()
		return
	case <-ctx.Done():
		tc.Close()
		return
	}
	select {
	case <-wc.closed:
	case <-ctx.Done():
		tc.Close()
	}
}

// connQueue is the web server's listener: the port hands it the
// connections whose handshake asked for HTTP.
type connQueue struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
	addr net.Addr
}

// Accept implements net.Listener.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

// Addr implements net.Listener.
func (q *connQueue) Addr() net.Addr { return q.addr }

// watchedConn says when it has been closed.
type watchedConn struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *watchedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

// authenticate reads the hello of a node whose TLS handshake is done,
// within the hello timeout, and returns the node's ID, whether it is a
// cluster head the root started (enrolled with the head secret), and its
// connection.
func (p *Port) authenticate(raw net.Conn, tc *tls.Conn) (string, bool, *protocol.Conn, error) {
	st := tc.ConnectionState()
	if st.NegotiatedProtocol != protocol.ALPN {
		return "", false, nil, fmt.Errorf("application protocol %q is not served", st.NegotiatedProtocol)
	}
	conn := protocol.NewConnLimits(tc, protocol.HelloLimits)
	m, err := conn.Recv()
	if err != nil {
		return "", false, nil, fmt.Errorf("hello: %w", err)
	}
	if m.Type != protocol.TypeHello || m.Hello == nil {
		return "", false, nil, fmt.Errorf("the first message is %q, not a hello", m.Type)
	}
	h := m.Hello
	if h.Version != protocol.Version {
		refuse(conn, fmt.Sprintf("protocol version %d; this root speaks %d", h.Version, protocol.Version))
		return "", false, nil, fmt.Errorf("protocol version %d", h.Version)
	}
	var id string
	head := false
	switch {
	case len(st.PeerCertificates) > 0:
		if id, err = p.cfg.Authority.VerifyNode(st.PeerCertificates); err != nil {
			refuse(conn, "the node's certificate is not accepted (revoked, or from another root)")
			return "", false, nil, fmt.Errorf("%w: certificate: %v", errRefused, err)
		}
		head = pki.IsHead(st.PeerCertificates[0])
		if err := conn.Send(&protocol.Msg{Type: protocol.TypeEnrolled, Enrolled: &protocol.Enrolled{Node: id}}); err != nil {
			return "", false, nil, fmt.Errorf("hello: %w", err)
		}
	case h.Secret != "":
		// A cluster head the root started enrols with the head secret.
		head = p.cfg.Authority.CheckHeadSecret(h.Secret)
		if !head && !p.cfg.Authority.CheckSecret(h.Secret) {
			refuse(conn, "the join token is wrong or was rotated out; get a new one with `orrery token`")
			return "", false, nil, fmt.Errorf("%w: wrong join secret", errRefused)
		}
		enrol := p.cfg.Authority.Enrol
		if head {
			enrol = p.cfg.Authority.EnrolHead
		}
		var cert []byte
		if id, cert, err = enrol(h.Name, h.PublicKey); err != nil {
			refuse(conn, "enrolment failed: "+err.Error())
			return "", false, nil, fmt.Errorf("enrol: %w", err)
		}
		if err := conn.Send(&protocol.Msg{Type: protocol.TypeEnrolled, Enrolled: &protocol.Enrolled{Node: id, Cert: cert}}); err != nil {
			return "", false, nil, fmt.Errorf("enrol: %w", err)
		}
		p.log.Info("node enrolled", "node", id, "head", head, "peer", raw.RemoteAddr())
	default:
		refuse(conn, "no credentials: pass the join token (orrery token) to orrery agent")
		return "", false, nil, fmt.Errorf("%w: no credentials", errRefused)
	}
	raw.SetDeadline(time.Time{})
	conn.SetLimits(protocol.RootLimits)
	return id, head, conn, nil
}

// refuse tells a peer why it is refused, within a short deadline.
func refuse(conn *protocol.Conn, why string) {
	conn.SetSendTimeout(time.Second)
	conn.Send(&protocol.Msg{Type: protocol.TypeRefused, Error: why})
}

// watchRevoked closes the connections of nodes revoked while connected.
func (p *Port) watchRevoked(ctx context.Context) {
	t := time.NewTicker(p.cfg.RevokeCheck)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		p.mu.Lock()
		for c, id := range p.conns {
			if id != "" && p.cfg.Authority.Revoked(id) {
				p.log.Warn("node revoked: connection closed", "node", id, "peer", c.RemoteAddr())
				c.Close()
				p.conns[c] = ""
			}
		}
		p.mu.Unlock()
	}
}
