// Package web is the root's web side, served on its one TLS port to
// peers whose handshake asks for HTTP (port.Config.Web): the live page
// for viewers and /metrics for Prometheus. Nothing is served before a
// request authenticates, and each kind of peer has a credential of its
// own that opens nothing else:
//
//   - A viewer opens the link `orrery token --viewer` prints,
//     https://ADDR/login?v=SECRET. Its secret is checked and exchanged
//     for a cookie (HttpOnly, Secure, SameSite=Strict), and the browser
//     moves on to / at once (a page that refreshes to it), so the secret stays out of the page's
//     address and every Referer. Every other request
//     of a viewer must carry that cookie, which rotating the secret
//     (`orrery token --viewer --rotate`) invalidates.
//   - Prometheus sends the metrics token (`orrery token --metrics`) as
//     a bearer token to /metrics, which the metrics handler checks.
//
// A viewer can only look: the page answers GET and HEAD alone, and a
// viewer's cookie is no credential on a node's endpoints (the agent
// protocol, another application protocol on the same port) nor on
// /metrics.
package web

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"
)

// Viewers checks viewers' credentials (pki.Authority does).
type Viewers interface {
	// LoginCookie reports whether s is the viewer secret now and, if it
	// is, the cookie value it gives, both from one reading of the secret.
	LoginCookie(s string) (cookie string, ok bool)
	// CheckViewerCookie reports whether c is the cookie value the viewer
	// secret now gives.
	CheckViewerCookie(c string) bool
}

// Config is what New serves.
type Config struct {
	// Viewers checks the viewer secret and cookies.
	Viewers Viewers
	// Page serves a viewer's every request but /login and /metrics,
	// once its cookie checks out; it is given GET and HEAD requests
	// only. Nil serves the embedded page (web/assets).
	Page http.Handler
	// Metrics serves /metrics and authenticates its requests itself (a
	// bearer token); nil answers 404.
	Metrics http.Handler
	// News, when set, serves a viewer the run's latest news as JSON
	// (/api/overview) and as server-sent events (/api/events).
	News *Hub
	// Source, when set, answers a viewer's questions about the
	// experiment: /api/info, /api/jobs, /api/jobs/INDEX,
	// /api/jobs/INDEX/attempts/N/log, /api/timeline and /api/space.
	Source Source
	Log    *slog.Logger
}

// CookieName is the viewer's cookie.
const CookieName = "orrery_viewer"

// cookieAge is how long a viewer's cookie lasts (a week; rotating the
// secret ends it sooner).
const cookieAge = 7 * 24 * time.Hour

// New returns the handler for port.Config.Web.
func New(cfg Config) http.Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Page == nil {
		cfg.Page = pageHandler()
	}
	s := &server{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", s.login)
	mux.HandleFunc("/metrics", s.metrics)
	mux.HandleFunc("/", s.page)
	return headers(mux)
}

type server struct{ cfg Config }

// headers sets what every answer carries: nothing cached, no Referer
// sent from the page, no framing, no content sniffing, and only the
// page's own origin for its scripts, styles and requests (every asset is
// embedded: the page fetches nothing from elsewhere).
func headers(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
		h.ServeHTTP(w, r)
	})
}

// login exchanges the viewer secret for the cookie.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		refuse(w, http.StatusMethodNotAllowed, "only GET")
		return
	}
	c, ok := s.cfg.Viewers.LoginCookie(r.URL.Query().Get("v"))
	if !ok {
		s.cfg.Log.Warn("viewer refused: a wrong or rotated viewer secret", "peer", r.RemoteAddr)
		refuse(w, http.StatusForbidden, "this viewer link is wrong or was rotated out: ask for the one `orrery token --viewer` prints")
		return
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: c, Path: "/", MaxAge: int(cookieAge / time.Second),
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	s.cfg.Log.Info("viewer signed in", "peer", r.RemoteAddr)
	// The page moves the browser on to / itself, rather than a redirect:
	// a link opened from another site (a chat, a mail) starts a
	// cross-site navigation, and a browser sends no SameSite=Strict
	// cookie anywhere along its redirects, so / would refuse the cookie
	// just set. A refresh by this page is a navigation of its own site.
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, signedIn)
}

// signedIn is the answer to a viewer's sign-in: a page that opens / at
// once (a meta refresh: no script, which the page's policy forbids
// inline).
const signedIn = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/">
<link rel="icon" href="/assets/favicon.svg" type="image/svg+xml">
<title>Orrery: signed in</title></head>
<body><p>Signed in. <a href="/">Open the experiment's page</a>.</p></body></html>
`

// metrics hands /metrics to its handler, which checks its bearer token.
func (s *server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Metrics == nil {
		refuse(w, http.StatusNotFound, "no metrics here")
		return
	}
	s.cfg.Metrics.ServeHTTP(closeOnRefusal{w}, r)
}

// closeOnRefusal closes the connection after an answer that refuses (a
// status of 400 or more): a peer that has not authenticated keeps no
// connection open, and the server does not wait for a body it sent
// half of.
type closeOnRefusal struct{ http.ResponseWriter }

func (c closeOnRefusal) WriteHeader(code int) {
	if code >= 400 {
		c.Header().Set("Connection", "close")
	}
	c.ResponseWriter.WriteHeader(code)
}

// Unwrap gives http.ResponseController the writer underneath.
func (c closeOnRefusal) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// page serves a viewer whose cookie checks out.
func (s *server) page(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(CookieName)
	if err != nil || !s.cfg.Viewers.CheckViewerCookie(c.Value) {
		refuse(w, http.StatusUnauthorized, "sign in with the link `orrery token --viewer` prints")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		refuse(w, http.StatusMethodNotAllowed, "a viewer can only look (GET)")
		return
	}
	switch {
	case s.cfg.News != nil && r.URL.Path == "/api/overview":
		s.cfg.News.serveOverview(w, r)
	case s.cfg.News != nil && r.URL.Path == "/api/events":
		s.cfg.News.serveEvents(w, r)
	case s.cfg.Source != nil && isSourcePath(r.URL.Path):
		s.serveSource(w, r)
	case s.cfg.Page == nil:
		refuse(w, http.StatusNotFound, "no page here")
	default:
		s.cfg.Page.ServeHTTP(w, r)
	}
}

// refuse answers with code and a one-line reason that reveals nothing
// of the experiment, and closes the connection (a peer that has not
// authenticated keeps none open).
func refuse(w http.ResponseWriter, code int, why string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Connection", "close")
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Cookie realm="orrery viewer"`)
	}
	w.WriteHeader(code)
	io.WriteString(w, strings.TrimSpace(why)+"\n")
}
