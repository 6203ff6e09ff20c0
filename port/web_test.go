package port_test

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"orrery/port"
)

// webClient is a browser's client of the fixture: it trusts the root's
// CA, and asks for HTTP/2 or HTTP/1.1 (ALPN), as browsers do.
func (f *fixture) webClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(f.auth.CACert())
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"h2", "http/1.1"}}}
	f.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// echoWeb answers every request with its path.
var echoWeb = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	io.WriteString(w, "page "+r.URL.Path)
})

// served sends a request on a web connection and reads its answer: the
// port has taken the connection in (a handshake done on the client's
// side may not yet be counted on the port's).
func served(t *testing.T, c net.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "GET /x HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer on a web connection: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "page /x" {
		t.Fatalf("answer %q", body)
	}
}

// TestWebOnThePort serves a web handler on the root's port beside the
// nodes: a browser's request reaches it over HTTP/1.1, and a node still
// joins over the agent protocol.
func TestWebOnThePort(t *testing.T) {
	f := newFixture(t, port.Config{Web: echoWeb})
	resp, err := f.webClient().Get("https://" + f.addr + "/overview")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "page /overview" || resp.Proto != "HTTP/1.1" {
		t.Fatalf("%s %d %q, want HTTP/1.1 200 %q", resp.Proto, resp.StatusCode, body, "page /overview")
	}
	f.join(f.client("n1"))
}

// TestWebNotServedWithoutHandler: a port with no web handler offers no
// HTTP; a browser's handshake fails, and nothing is served.
func TestWebNotServedWithoutHandler(t *testing.T) {
	f := newFixture(t, port.Config{})
	if _, err := f.webClient().Get("https://" + f.addr + "/"); err == nil {
		t.Fatal("a port without a web handler answered an HTTP request")
	}
	if _, err := f.tlsDial(f.tok, "127.0.0.1", nil, port.ALPNHTTP); err == nil || !strings.Contains(err.Error(), "protocol") {
		t.Fatalf("a handshake asking only for HTTP: %v, want it refused for its application protocol", err)
	}
}

// TestWebConnectionsBounded: web peers hold at most MaxWebConns
// connections; one more is closed at once, and a node still joins.
func TestWebConnectionsBounded(t *testing.T) {
	f := newFixture(t, port.Config{Web: echoWeb, MaxWebConns: 2, MaxWebConnsPerHost: 10})
	for i := range 2 {
		c, err := f.tlsDial(f.tok, "127.0.0.1", nil, port.ALPNHTTP)
		if err != nil {
			t.Fatalf("web connection %d: %v", i+1, err)
		}
		served(t, c) // counted by the port before the next one comes
	}
	waitFor(t, 5*time.Second, "the port holds both web connections", func() bool {
		return len(f.log.lines("too many web connections")) == 0
	})
	extra, err := f.tlsDial(f.tok, "127.0.0.1", nil, port.ALPNHTTP)
	if err != nil {
		t.Fatal(err)
	}
	closedWithin(t, extra, 5*time.Second)
	waitFor(t, 5*time.Second, "the port says why", func() bool {
		return len(f.log.lines("too many web connections")) == 1
	})
	f.join(f.client("n1"))
}

// TestWebConnectionsBoundedPerHost: one host holds at most
// MaxWebConnsPerHost web connections, so it cannot take every web slot.
func TestWebConnectionsBoundedPerHost(t *testing.T) {
	f := newFixture(t, port.Config{Web: echoWeb, MaxWebConns: 10, MaxWebConnsPerHost: 2})
	for i := range 2 {
		c, err := f.tlsDial(f.tok, "127.0.0.1", nil, port.ALPNHTTP)
		if err != nil {
			t.Fatalf("web connection %d: %v", i+1, err)
		}
		served(t, c) // counted by the port before the next one comes
	}
	extra, err := f.tlsDial(f.tok, "127.0.0.1", nil, port.ALPNHTTP)
	if err != nil {
		t.Fatal(err)
	}
	closedWithin(t, extra, 5*time.Second)
	waitFor(t, 5*time.Second, "the port says why", func() bool {
		return len(f.log.lines("too many web connections from its host")) == 1
	})
}

// TestWebHalfRequestDropped: a peer that sends a request's headers and
// half its body, then nothing, loses its connection within the read
// timeout (three hello timeouts) instead of holding a web slot.
func TestWebHalfRequestDropped(t *testing.T) {
	f := newFixture(t, port.Config{Web: echoWeb, HelloTimeout: 500 * time.Millisecond})
	c, err := f.tlsDial(f.tok, "127.0.0.1", nil, port.ALPNHTTP)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Time{})
	if _, err := io.WriteString(c, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nhalf"); err != nil {
		t.Fatal(err)
	}
	if _, open := closedWithin(t, c, 10*time.Second); open > 5*time.Second {
		t.Fatalf("the half request's connection stayed open %s", open)
	}
}

// TestWebHugeHeadersRefused: a web peer that sends headers beyond 64 KiB
// gets 431 and its connection closed; the handler never sees it.
func TestWebHugeHeadersRefused(t *testing.T) {
	var seen atomic.Bool
	f := newFixture(t, port.Config{Web: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { seen.Store(true) })})
	c, err := f.tlsDial(f.tok, "127.0.0.1", nil, port.ALPNHTTP)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	go io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "+strings.Repeat("a", 1<<20)+"\r\n\r\n")
	got, _ := closedWithin(t, c, 10*time.Second)
	if !strings.Contains(string(got), " 431 ") || seen.Load() {
		t.Fatalf("huge headers: %q (handler called: %v), want 431 and no call", got, seen.Load())
	}
}

// TestWebPlaintextRefused: a plaintext HTTP request to the port gets no
// answer but the end of the connection (the port speaks only TLS).
func TestWebPlaintextRefused(t *testing.T) {
	f := newFixture(t, port.Config{Web: echoWeb})
	c, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	got, _ := closedWithin(t, c, 15*time.Second)
	if strings.Contains(string(got), "page") || strings.Contains(string(got), "HTTP/1.1 200") {
		t.Fatalf("plaintext HTTP was answered: %q", got)
	}
}
