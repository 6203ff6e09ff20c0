package pki

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"strings"
)

// The web side of the port: who may watch the page and who may scrape
// /metrics. Each has a secret of its own, made on first use, 256 random
// bits like the join secret and never derived from it or from the head
// secret: handing out a viewer URL or a Prometheus configuration gives
// nothing that enrols a node or stands for a cluster.

// Files of the web secrets.
const (
	viewerSecretFile  = "viewer.secret"
	metricsSecretFile = "metrics.secret"
)

// viewerCookieLabel is the message whose HMAC under the viewer secret
// is the viewer cookie.
const viewerCookieLabel = "orrery viewer cookie v1"

// webKind names one of the web secrets.
type webKind int

const (
	viewerKind webKind = iota
	metricsKind
)

// file returns the kind's file in the pki directory.
func (k webKind) file() string {
	if k == viewerKind {
		return viewerSecretFile
	}
	return metricsSecretFile
}

// what returns the kind's name in messages.
func (k webKind) what() string {
	if k == viewerKind {
		return "viewer secret"
	}
	return "metrics token"
}

// flag returns the `orrery token` flag that prints the kind.
func (k webKind) flag() string {
	if k == viewerKind {
		return "--viewer"
	}
	return "--metrics"
}

// webSecret is a web secret as read from its file, with the viewer
// cookie derived from it (empty for the metrics token).
type webSecret struct {
	secret string
	cookie string
}

// cache returns the cached content of the kind's file. The caller holds
// a.mu.
func (a *Authority) cache(k webKind) *cached[webSecret] {
	if k == viewerKind {
		return &a.viewer
	}
	return &a.metrics
}

// currentWeb returns the kind's secret as on disk now, reading the file
// again when it changed; ok is false when there is none yet. The caller
// holds a.mu.
func (a *Authority) currentWeb(k webKind) (v webSecret, ok bool, err error) {
	v, err = reread(a.cache(k), a.dir, k.file(), func(data []byte, exists bool) (webSecret, error) {
		if !exists {
			return webSecret{}, nil
		}
		s := strings.TrimSpace(string(data))
		if err := checkSecret(s); err != nil {
			return webSecret{}, fmt.Errorf("%s: %w (run `orrery token %s --rotate` to make a new one)", k.file(), err, k.flag())
		}
		if other := a.sameAs(s, k); other != "" {
			return webSecret{}, fmt.Errorf("%s holds the same secret as %s (run `orrery token %s --rotate` to make a new one)", k.file(), other, k.flag())
		}
		w := webSecret{secret: s}
		if k == viewerKind {
			w.cookie = cookieOf(s)
		}
		return w, nil
	})
	if err != nil {
		return webSecret{}, false, fmt.Errorf("%s: %w", k.what(), err)
	}
	return v, v.secret != "", nil
}

// sameAs returns the name of the file among the other secrets (join,
// head and the other web secret) that holds s, or "" when none does.
// Files that are missing or unreadable hold nothing.
func (a *Authority) sameAs(s string, k webKind) string {
	others := []string{secretFile, headSecretFile, viewerSecretFile, metricsSecretFile}
	for _, name := range others {
		if name == k.file() {
			continue
		}
		data, err := readFile(a.dir, name)
		if err == nil && equalSecret(s, strings.TrimSpace(string(data))) {
			return name
		}
	}
	return ""
}

// cookieOf returns the viewer cookie of a viewer secret: the hex
// HMAC-SHA256, keyed with the secret's text, of viewerCookieLabel.
func cookieOf(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(viewerCookieLabel))
	return hex.EncodeToString(m.Sum(nil))
}

// equalSecret reports whether s is want, in the same time whatever s is:
// both are hashed first, so not even the length leaks. An empty s or
// want is never equal.
func equalSecret(s, want string) bool {
	x, y := sha256.Sum256([]byte(s)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(x[:], y[:]) == 1 && s != "" && want != ""
}

// webSecretOf returns the kind's secret, making it when there is none.
func (a *Authority) webSecretOf(k webKind) (webSecret, error) {
	a.mu.Lock()
	v, ok, err := a.currentWeb(k)
	a.mu.Unlock()
	if err != nil || ok {
		return v, err
	}
	unlock, err := lockDir(a.dir)
	if err != nil {
		return webSecret{}, fmt.Errorf("%s: %w", k.what(), err)
	}
	defer unlock()
	a.mu.Lock()
	v, ok, err = a.currentWeb(k) // another process may have made it meanwhile
	a.mu.Unlock()
	if err != nil || ok {
		return v, err
	}
	return a.writeWeb(k)
}

// rotateWeb replaces the kind's secret.
func (a *Authority) rotateWeb(k webKind) (webSecret, error) {
	unlock, err := lockDir(a.dir)
	if err != nil {
		return webSecret{}, fmt.Errorf("rotate %s: %w", k.what(), err)
	}
	defer unlock()
	return a.writeWeb(k)
}

// writeWeb writes a new secret of the kind, one that no other secret
// file holds, and returns it as read back. The caller holds the
// directory's lock.
func (a *Authority) writeWeb(k webKind) (webSecret, error) {
	var s string
	for {
		var err error
		if s, err = newSecret(); err != nil {
			return webSecret{}, fmt.Errorf("make %s: %w", k.what(), err)
		}
		if a.sameAs(s, k) == "" {
			break // 256 random bits: once, in practice
		}
	}
	if err := writeFileAtomic(a.dir, k.file(), []byte(s+"\n")); err != nil {
		return webSecret{}, fmt.Errorf("write %s: %w", k.what(), err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	v, ok, err := a.currentWeb(k)
	if err == nil && !ok {
		err = fmt.Errorf("%s: %s vanished as it was written", k.what(), k.file())
	}
	return v, err
}

// checkWeb reports whether s is the kind's secret (cookie false) or the
// viewer cookie (cookie true), as on disk now.
func (a *Authority) checkWeb(k webKind, s string, cookie bool) bool {
	a.mu.Lock()
	v, ok, err := a.currentWeb(k)
	a.mu.Unlock()
	if err != nil || !ok {
		return false
	}
	want := v.secret
	if cookie {
		want = v.cookie
	}
	return equalSecret(s, want)
}

// ViewerSecret returns the viewer secret, which `orrery token --viewer`
// prints in the page's URL, making it (pki/viewer.secret) on first use.
func (a *Authority) ViewerSecret() (string, error) {
	v, err := a.webSecretOf(viewerKind)
	return v.secret, err
}

// RotateViewer replaces the viewer secret and returns the new one:
// URLs and cookies given out before stop working at once, here and in
// a root running from the same state directory.
func (a *Authority) RotateViewer() (string, error) {
	v, err := a.rotateWeb(viewerKind)
	return v.secret, err
}

// CheckViewer reports whether s is the current viewer secret (as on disk
// now), in the same time whatever s is. No viewer secret yet, or an
// empty s: false.
func (a *Authority) CheckViewer(s string) bool {
	return a.checkWeb(viewerKind, s, false)
}

// LoginCookie checks s against the viewer secret and, when it is the
// secret, returns the cookie that secret gives, both from one reading of
// the secret: a rotation between the two can never hand a cookie of the
// new secret to a holder of the old one.
func (a *Authority) LoginCookie(s string) (cookie string, ok bool) {
	a.mu.Lock()
	v, ok, err := a.currentWeb(viewerKind)
	a.mu.Unlock()
	if err != nil || !ok || !equalSecret(s, v.secret) {
		return "", false
	}
	return v.cookie, true
}

// ViewerCookie returns the value of the cookie the page gives a browser
// that showed the viewer secret: the hex HMAC-SHA256 of "orrery viewer
// cookie v1" keyed with the secret, so that it changes when the secret
// is rotated and does not reveal it. It makes the secret on first use.
func (a *Authority) ViewerCookie() (string, error) {
	v, err := a.webSecretOf(viewerKind)
	return v.cookie, err
}

// CheckViewerCookie reports whether c is the cookie of the current
// viewer secret (ViewerCookie), in the same time whatever c is. No
// viewer secret yet, or an empty c: false.
func (a *Authority) CheckViewerCookie(c string) bool {
	return a.checkWeb(viewerKind, c, true)
}

// MetricsToken returns the bearer token with which Prometheus scrapes
// /metrics (its authorization credentials), making it
// (pki/metrics.secret) on first use.
func (a *Authority) MetricsToken() (string, error) {
	v, err := a.webSecretOf(metricsKind)
	return v.secret, err
}

// RotateMetrics replaces the metrics token and returns the new one; the
// old one stops working at once.
func (a *Authority) RotateMetrics() (string, error) {
	v, err := a.rotateWeb(metricsKind)
	return v.secret, err
}

// CheckMetrics reports whether s is the current metrics token (as on
// disk now), in the same time whatever s is. No token yet, or an empty
// s: false.
func (a *Authority) CheckMetrics(s string) bool {
	return a.checkWeb(metricsKind, s, false)
}

// CAPEM returns the certificate authority's certificate in PEM, for a
// browser or Prometheus to trust the root's port.
func (a *Authority) CAPEM() []byte { return certPEM(a.ca.Raw) }
