package web

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// newsServer is New with a hub, and a viewer's cookie for it.
func newsServer(t *testing.T) (*httptest.Server, *Hub, string) {
	v := &fakeViewers{secret: "s3cret"}
	hub := NewHub()
	srv := httptest.NewUnstartedServer(New(Config{Viewers: v, News: hub}))
	srv.EnableHTTP2 = false
	srv.StartTLS()
	t.Cleanup(func() { hub.Close(); srv.Close() })
	c, _ := v.ViewerCookie()
	return srv, hub, c
}

// TestNewsPushed: a viewer's event stream starts with the latest news
// and gets each new one as it is published; /api/overview answers the
// latest; neither opens without the cookie.
func TestNewsPushed(t *testing.T) {
	srv, hub, cookie := newsServer(t)
	if resp, _ := get(t, srv, "GET", "/api/overview", cookie); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/api/overview before any news: %d, want 503", resp.StatusCode)
	}
	hub.Publish([]byte(`{"done":1}`))
	if resp, body := get(t, srv, "GET", "/api/overview", cookie); resp.StatusCode != 200 || body != `{"done":1}` {
		t.Fatalf("/api/overview: %d %q", resp.StatusCode, body)
	}
	for _, p := range []string{"/api/overview", "/api/events"} {
		if resp, body := get(t, srv, "GET", p, ""); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "done") {
			t.Errorf("%s with no cookie: %d %q", p, resp.StatusCode, body)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/api/events", nil)
	req.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("/api/events: %d %s", resp.StatusCode, ct)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") {
				lines <- strings.TrimPrefix(l, "data: ")
			}
		}
	}()
	next := func(want string) {
		t.Helper()
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("event %q, want %q", got, want)
			}
		case <-time.After(10 * time.Second): // a liveness bound
			t.Fatalf("no event %q", want)
		}
	}
	next(`{"done":1}`)
	hub.Publish([]byte(`{"done":2}`))
	next(`{"done":2}`)
}

// TestSilentViewerDropped: a viewer that opens its event stream and
// never reads it is dropped once it falls StreamQueue messages behind;
// publishing never waits on it, and a viewer that reads keeps up.
func TestSilentViewerDropped(t *testing.T) {
	srv, hub, cookie := newsServer(t)
	hub.Publish([]byte(`{"n":0}`))
	conn, err := tls.Dial("tcp", srv.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /api/events HTTP/1.1\r\nHost: x\r\nCookie: %s=%s\r\n\r\n", CookieName, cookie)
	// It never reads. Big messages fill its connection's buffers, then
	// its queue.
	big := []byte(`{"pad":"` + strings.Repeat("x", 64<<10) + `"}`)
	published := make(chan struct{})
	go func() {
		defer close(published)
		for i := 0; i < 400 && hub.Dropped() == 0; i++ {
			hub.Publish(big)
			time.Sleep(time.Millisecond)
		}
	}()
	select {
	case <-published:
	case <-time.After(30 * time.Second): // a liveness bound: Publish must never block
		t.Fatal("publishing stalled on a viewer that does not read")
	}
	if hub.Dropped() != 1 {
		t.Fatalf("%d streams dropped, want the silent viewer's", hub.Dropped())
	}
}

// TestStreamsBounded: at most MaxStreams event streams are open at once.
func TestStreamsBounded(t *testing.T) {
	hub := NewHub()
	defer hub.Close()
	for i := 0; i < MaxStreams; i++ {
		if _, ok := hub.subscribe(); !ok {
			t.Fatalf("stream %d refused", i+1)
		}
	}
	if _, ok := hub.subscribe(); ok {
		t.Fatal("one stream more than MaxStreams was opened")
	}
}
