package web

import (
	"crypto/subtle"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
)

// fakeViewers is a viewer secret that the test can rotate.
type fakeViewers struct {
	mu     sync.Mutex
	secret string
}

func (f *fakeViewers) LoginCookie(s string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if s == "" || subtle.ConstantTimeCompare([]byte(s), []byte(f.secret)) != 1 {
		return "", false
	}
	return "cookie-of-" + f.secret, true
}

func (f *fakeViewers) ViewerCookie() (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "cookie-of-" + f.secret, nil
}

func (f *fakeViewers) CheckViewerCookie(c string) bool {
	want, _ := f.ViewerCookie()
	return c != "" && subtle.ConstantTimeCompare([]byte(c), []byte(want)) == 1
}

// server is New over a page that says hello and a metrics handler that
// wants the bearer token "metrics-token".
func newTestServer(t *testing.T, v *fakeViewers) *httptest.Server {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "the page "+r.URL.Path) })
	metrics := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer metrics-token" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		io.WriteString(w, "orrery_jobs 1\n")
	})
	srv := httptest.NewTLSServer(New(Config{Viewers: v, Page: page, Metrics: metrics}))
	t.Cleanup(srv.Close)
	return srv
}

// get sends a request with the cookie c (unless "") and the headers
// kv, following no redirect.
func get(t *testing.T, srv *httptest.Server, method, path, cookie string, kv ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: CookieName, Value: cookie})
	}
	for i := 0; i+1 < len(kv); i += 2 {
		req.Header.Set(kv[i], kv[i+1])
	}
	c := srv.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// TestViewerSignsIn follows a viewer from the link to the page: the
// secret becomes a cookie with the right attributes, the browser moves
// on to / by itself (the secret in no address it keeps), and the page then
// opens with the cookie alone.
func TestViewerSignsIn(t *testing.T) {
	v := &fakeViewers{secret: "s3cret"}
	srv := newTestServer(t, v)
	resp, body := get(t, srv, "GET", "/login?v=s3cret", "")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<meta http-equiv="refresh" content="0;url=/">`) ||
		strings.Contains(body, "s3cret") {
		t.Fatalf("login: %d with\n%s\nwant 200 and a page that refreshes to / (no redirect: a cross-site link's redirects carry no SameSite=Strict cookie)", resp.StatusCode, body)
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 {
		t.Fatalf("login set %d cookies, want 1", len(cookies))
	}
	c := cookies[0]
	if c.Name != CookieName || c.Value != "cookie-of-s3cret" || !c.HttpOnly || !c.Secure || c.SameSite != http.SameSiteStrictMode || c.Path != "/" {
		t.Fatalf("cookie %+v: want HttpOnly, Secure, SameSite=Strict, Path=/", c)
	}
	if strings.Contains(resp.Header.Get("Location"), "s3cret") || resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Fatalf("the secret may leak: Location %q, Referrer-Policy %q", resp.Header.Get("Location"), resp.Header.Get("Referrer-Policy"))
	}
	resp, body = get(t, srv, "GET", "/jobs", c.Value)
	if resp.StatusCode != 200 || body != "the page /jobs" {
		t.Fatalf("the page with the cookie: %d %q", resp.StatusCode, body)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Cache-Control"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("the page has no %s header", h)
		}
	}
}

// TestViewerRefused: a wrong, empty or rotated-out secret, no cookie, a
// forged or rotated-out cookie, and a viewer that tries anything but
// looking are all refused, with nothing of the page in the answer.
func TestViewerRefused(t *testing.T) {
	v := &fakeViewers{secret: "s3cret"}
	srv := newTestServer(t, v)
	for _, q := range []string{"/login?v=wrong", "/login?v=", "/login"} {
		if resp, body := get(t, srv, "GET", q, ""); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 || strings.Contains(body, "page") {
			t.Errorf("%s: %d %q, cookies %v; want 403 and no cookie", q, resp.StatusCode, body, resp.Cookies())
		}
	}
	if resp, _ := get(t, srv, "POST", "/login?v=s3cret", ""); resp.StatusCode != http.StatusMethodNotAllowed || len(resp.Cookies()) != 0 {
		t.Errorf("POST /login: %d, want 405 and no cookie", resp.StatusCode)
	}
	for _, c := range []string{"", "forged", "cookie-of-wrong"} {
		if resp, body := get(t, srv, "GET", "/", c); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "page") || !resp.Close {
			t.Errorf("cookie %q: %d %q, want 401 and the connection closed", c, resp.StatusCode, body)
		}
	}
	good, _ := v.ViewerCookie()
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		if resp, body := get(t, srv, m, "/jobs", good); resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(body, "page") {
			t.Errorf("%s with the cookie: %d %q, want 405", m, resp.StatusCode, body)
		}
	}
	v.mu.Lock()
	v.secret = "rotated"
	v.mu.Unlock()
	if resp, _ := get(t, srv, "GET", "/", good); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("a cookie of the rotated-out secret: %d, want 401", resp.StatusCode)
	}
	if resp, _ := get(t, srv, "GET", "/login?v=s3cret", ""); resp.StatusCode != http.StatusForbidden {
		t.Errorf("the rotated-out secret: %d, want 403", resp.StatusCode)
	}
}

// TestCredentialsDoNotCross: a viewer's cookie opens no metrics, and the
// metrics token opens no page.
func TestCredentialsDoNotCross(t *testing.T) {
	v := &fakeViewers{secret: "s3cret"}
	srv := newTestServer(t, v)
	good, _ := v.ViewerCookie()
	if resp, body := get(t, srv, "GET", "/metrics", good); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "orrery_jobs") || !resp.Close {
		t.Errorf("/metrics with a viewer's cookie: %d %q, want 401", resp.StatusCode, body)
	}
	if resp, body := get(t, srv, "GET", "/metrics", "", "Authorization", "Bearer metrics-token"); resp.StatusCode != 200 || body != "orrery_jobs 1\n" {
		t.Errorf("/metrics with its token: %d %q", resp.StatusCode, body)
	}
	if resp, body := get(t, srv, "GET", "/", "", "Authorization", "Bearer metrics-token"); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "page") {
		t.Errorf("the page with the metrics token: %d %q, want 401", resp.StatusCode, body)
	}
}
