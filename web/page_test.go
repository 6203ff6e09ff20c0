package web

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// newPageTestServer is New over cfg, on TLS (the cookie is Secure).
func newPageTestServer(t *testing.T, cfg Config) *httptest.Server {
	srv := httptest.NewTLSServer(New(cfg))
	t.Cleanup(srv.Close)
	return srv
}

// TestPageServed: with the viewer's cookie, / is the page, which loads
// its script, stylesheet and icon from /assets/, each served with its
// own type; an unknown asset or path is 404, and without the cookie
// nothing of the page is served.
func TestPageServed(t *testing.T) {
	v := &fakeViewers{secret: "s3cret"}
	srv := newPageTestServer(t, Config{Viewers: v})
	cookie := "cookie-of-s3cret"
	resp, body := get(t, srv, "GET", "/", cookie)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	for _, ref := range []string{`<script src="/assets/app.js"`, `<link rel="stylesheet" href="/assets/app.css">`, `href="/assets/favicon.svg"`} {
		if !strings.Contains(body, ref) {
			t.Errorf("index.html has no %s", ref)
		}
	}
	if resp.Header.Get("Content-Security-Policy") == "" {
		t.Error("the page has no Content-Security-Policy")
	}
	for path, want := range map[string]string{
		"/assets/app.js":      "text/javascript; charset=utf-8",
		"/assets/app.css":     "text/css; charset=utf-8",
		"/assets/favicon.svg": "image/svg+xml",
		"/assets/index.html":  "text/html; charset=utf-8",
	} {
		resp, body := get(t, srv, "GET", path, cookie)
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != want || len(body) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes; want 200 %q", path, resp.StatusCode, resp.Header.Get("Content-Type"), len(body), want)
		}
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", path)
		}
	}
	resp, body = get(t, srv, "HEAD", "/assets/app.js", cookie)
	if resp.StatusCode != 200 || body != "" || resp.ContentLength <= 0 {
		t.Errorf("HEAD /assets/app.js: %d, %d bytes of body, length %d", resp.StatusCode, len(body), resp.ContentLength)
	}
	for _, path := range []string{"/assets/nope.js", "/assets/", "/assets/x/app.js", "/assets/app.js/", "/assets/app.js.map", "/index.html", "/favicon.ico", "/jobs", "/api/nothing"} {
		if resp, _ := get(t, srv, "GET", path, cookie); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
	for _, path := range []string{"/", "/assets/app.js"} {
		if resp, body := get(t, srv, "GET", path, ""); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, "<script") || strings.Contains(body, "function") {
			t.Errorf("GET %s without the cookie: %d %.40q", path, resp.StatusCode, body)
		}
	}
}

// TestPageFetchesNothingElsewhere: the page names no other origin
// (every asset is embedded, and the policy would block it anyway), and
// it has no inline script or style, which the policy forbids.
func TestPageFetchesNothingElsewhere(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|https?://`)
	for _, name := range []string{"index.html", "app.js", "app.css", "favicon.svg"} {
		b, err := assets.ReadFile("assets/" + name)
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		if name == "favicon.svg" {
			// Its namespace is a name, not an address it fetches.
			s = strings.ReplaceAll(s, `xmlns="http://www.w3.org/2000/svg"`, "")
		}
		if m := url.FindString(s); m != "" {
			t.Errorf("%s names another origin: %q", name, m)
		}
		if strings.Contains(s, "@import") || strings.Contains(s, "url(") {
			t.Errorf("%s loads from a url()", name)
		}
	}
	html, _ := assets.ReadFile("assets/index.html")
	for _, m := range regexp.MustCompile(`(?s)<script[^>]*>.*?</script>`).FindAllString(string(html), -1) {
		if !regexp.MustCompile(`^<script src="/assets/[a-z]+\.js"[^>]*></script>$`).MatchString(m) {
			t.Errorf("index.html has an inline script: %.60q", m)
		}
	}
	if regexp.MustCompile(`(?i)\sstyle=|<style|\son[a-z]+=`).Match(html) {
		t.Error("index.html has an inline style or event handler, which the policy blocks")
	}
}
