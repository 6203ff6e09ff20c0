package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"orrery/pki"
	"orrery/port"
	"orrery/store"
	"orrery/web"
)

// webUsage is the usage line of `orrery web`.
const webUsage = "[--state-dir DIR | PLAN] [--listen ADDR]"

// defaultWebListen is where `orrery web` listens when not told: this
// machine only, on a port of its own (a run's port is usually chosen
// with --listen; 7444 stays clear of it and of the common 8080, 8443).
const defaultWebListen = "127.0.0.1:7444"

// webNewsEvery is how often `orrery web` reads the store for a viewer's
// news: no dispatcher tells it of changes, so it looks.
const webNewsEvery = 2 * time.Second

// Bounds of `orrery web`'s HTTP server, as the run's port has for its
// web peers (port.Listen): a request's header within 10 s, all of it
// within 30 s, an answer within a minute (the event stream's writes
// take 10 s each), an idle connection kept 2 minutes, headers of at
// most 64 KiB, and at most webMaxConns connections at once, a quarter
// of them from one address.
const (
	webReadHeader      = 10 * time.Second
	webRead            = 30 * time.Second
	webWrite           = time.Minute
	webIdle            = 2 * time.Minute
	webMaxHeader       = 64 << 10
	webMaxConns        = 256
	webMaxConnsPerHost = webMaxConns / 4
)

// runWeb implements `orrery web`: the live page of an experiment that
// is not running (or is, elsewhere), read from its store. It changes
// nothing there but the key material a state directory without it
// gets (the certificate authority, the viewer secret on first use, and a
// server certificate that names the address it listens on), and prints
// the viewer's link. A store of an older build is migrated when opened,
// as every command does.
func runWeb(e *env, args []string) int {
	fs := newFlags(e, "web", webUsage)
	stateDir := fs.String("state-dir", "", "state `directory` (default: .orrery beside PLAN, or ./.orrery)")
	listen := fs.String("listen", defaultWebListen, "`address` (HOST:PORT) to serve the page on, over TLS; port 0 picks a free one")
	usageFooter(e, fs, `Serves the page of the state directory's latest experiment, read-only,
from its store (a run may be going on there at the same time), and
prints the viewer's link, https://ADDR/login?v=SECRET, with the same
secret `+"`orrery token --viewer`"+` gives. A browser trusts the page once
it trusts the CA `+"`orrery token --ca`"+` prints (see docs/web.md).
Ctrl-C stops it.
`)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	fail := func(status int, format string, a ...any) int {
		fmt.Fprintf(e.stderr, "orrery: web: "+format+"\n", a...)
		return status
	}
	switch {
	case len(pos) > 1:
		return fail(exitInvalid, "want at most one plan, got %d arguments (usage: orrery web %s)", len(pos), webUsage)
	case len(pos) == 1 && *stateDir != "":
		return fail(exitInvalid, "give --state-dir or a plan, not both")
	}
	host, _, err := net.SplitHostPort(*listen)
	if err != nil {
		return fail(exitInvalid, "--listen %q: want HOST:PORT (such as %s)", *listen, defaultWebListen)
	}
	dir, status := webStateDir(e, *stateDir, pos)
	if status != exitOK {
		return status
	}
	// Key material this build cannot read is refused before anything
	// is opened, as run does.
	if err := pki.Check(dir); err != nil {
		return fail(exitSystem, "%v", err)
	}
	st, exp, status := openState(e, dir)
	if status != exitOK {
		return status
	}
	defer st.Close()
	auth, err := pki.Open(dir)
	if err != nil {
		return fail(exitSystem, "%v", err)
	}
	secret, err := auth.ViewerSecret()
	if err != nil {
		return fail(exitSystem, "%v", err)
	}
	tc, err := auth.ServerConfig(port.Names(host, ""))
	if err != nil {
		return fail(exitSystem, "%v", err)
	}
	tc = tc.Clone()
	tc.MinVersion, tc.MaxVersion = tls.VersionTLS13, tls.VersionTLS13
	tc.NextProtos = []string{port.ALPNHTTP} // browsers alone: no node is served here
	tc.ClientAuth = tls.NoClientCert
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fail(exitInvalid, "--listen %s: %v", *listen, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(e.stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	hub := web.NewHub()
	srv := &http.Server{
		Handler:           web.New(web.Config{Viewers: auth, News: hub, Source: web.NewStoreSource(st, exp, false), Log: log}),
		ReadHeaderTimeout: webReadHeader, ReadTimeout: webRead, WriteTimeout: webWrite, IdleTimeout: webIdle, MaxHeaderBytes: webMaxHeader,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		web.StoreNews(ctx, st, exp, hub, webNewsEvery, webTotal(st, exp), log)
	}()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(tls.NewListener(limitListener(ln, webMaxConns, webMaxConnsPerHost), tc)) }()
	fmt.Fprintf(e.stdout, "orrery: the page of experiment %d (read-only): %s  (Ctrl-C to stop)\n",
		exp.ID, viewerURL(ln.Addr().String(), secret))
	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
	}
	// Event streams never go idle: they end first, then the server.
	hub.Close()
	shut, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	srv.Shutdown(shut)
	cancel()
	srv.Close()
	stop()
	wg.Wait()
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fail(exitSystem, "%v", serveErr)
	}
	return exitOK
}

// webStateDir returns the state directory of `orrery web`: --state-dir;
// else, with a plan, the one `orrery run PLAN` uses (.orrery beside the
// plan); else ./.orrery.
func webStateDir(e *env, stateDir string, pos []string) (string, int) {
	if stateDir != "" || len(pos) == 0 {
		if stateDir == "" {
			stateDir = ".orrery"
		}
		return stateDir, exitOK
	}
	fi, err := os.Stat(pos[0])
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(e.stderr, "orrery: web: no plan %s (for a state directory, use --state-dir)\n", pos[0])
		return "", exitInvalid
	case err != nil:
		fmt.Fprintf(e.stderr, "orrery: web: plan: %v\n", err)
		return "", exitInvalid
	case fi.IsDir():
		fmt.Fprintf(e.stderr, "orrery: web: %s is a directory, not a plan (for a state directory, use --state-dir)\n", pos[0])
		return "", exitInvalid
	}
	return filepath.Join(filepath.Dir(pos[0]), ".orrery"), exitOK
}

// webTotal returns how many jobs the experiment has, for StoreNews:
// counted once, as `orrery status` counts them (totalsOf).
func webTotal(st *store.Store, exp *store.Experiment) func() (n int64, exact, ok bool) {
	var t jobTotals
	var counted bool
	return func() (int64, bool, bool) {
		if !counted {
			counts, err := st.Counts(context.Background(), exp.ID)
			if err != nil {
				return 0, false, false // asked again next round
			}
			t, counted = totalsOf(exp, counts), true
		}
		return t.Total, t.Exact, t.Total >= 0
	}
}

// limitListener accepts at most n connections at once, and at most
// perHost from one address (as the run's port does): beyond them, Accept
// waits for one to close (the kernel's backlog holds the rest), and a
// connection from an address that holds its share is closed at once, so
// one peer cannot take every slot.
func limitListener(ln net.Listener, n, perHost int) net.Listener {
	return &limitedListener{Listener: ln, sem: make(chan struct{}, n), perHost: max(perHost, 1), hosts: map[string]int{}}
}

type limitedListener struct {
	net.Listener
	sem     chan struct{}
	perHost int

	mu    sync.Mutex
	hosts map[string]int // connections open, by the peer's address
}

// Accept takes a slot, then a connection, which gives the slot back
// when it closes.
func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		l.sem <- struct{}{}
		c, err := l.Listener.Accept()
		if err != nil {
			<-l.sem
			return nil, err
		}
		host := c.RemoteAddr().String()
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		l.mu.Lock()
		if l.hosts[host] >= l.perHost {
			l.mu.Unlock()
			c.Close()
			<-l.sem
			continue
		}
		l.hosts[host]++
		l.mu.Unlock()
		return &slotConn{Conn: c, release: sync.OnceFunc(func() {
			l.mu.Lock()
			if l.hosts[host]--; l.hosts[host] <= 0 {
				delete(l.hosts, host)
			}
			l.mu.Unlock()
			<-l.sem
		})}, nil
	}
}

// slotConn gives its listener's slot back when closed.
type slotConn struct {
	net.Conn
	release func()
}

func (c *slotConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}
