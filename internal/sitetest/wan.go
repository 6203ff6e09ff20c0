package sitetest

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"orrery/wan"
)

// WAN starts an emulated wide-area link (package wan) on 127.0.0.1 in
// front of target ("host:port", such as a site's sshd): each connection
// to the returned address is carried to target with delay added each
// way and each direction capped at rate bytes per second (0: no cap).
// The link closes when the test ends; the *wan.Link cuts, resets and
// restores it.
func WAN(t testing.TB, target string, delay time.Duration, rate int64) (string, *wan.Link) {
	t.Helper()
	l, err := wan.Listen("127.0.0.1:0", target, wan.Symmetric(delay, rate))
	if err != nil {
		t.Fatalf("wan link to %s: %v", target, err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), l
}

// Via returns the server as reached through addr (a WAN link's
// address): Host and Port are addr's, and KnownHosts a file of its own
// that holds the host key for addr.
func (s *Server) Via(t testing.TB, addr string) *Server {
	t.Helper()
	v := *s
	host, port, err := splitHostPort(addr)
	if err != nil {
		t.Fatalf("Via %q: %v", addr, err)
	}
	v.Host, v.Port = host, port
	v.KnownHosts = filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(v.KnownHosts, []byte(s.KnownHostsLine(addr)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return &v
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	return host, port, err
}
