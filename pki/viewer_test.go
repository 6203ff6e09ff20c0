package pki

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// wantCookie computes the viewer cookie of a secret independently of
// the code under test: hex HMAC-SHA256(secret, "orrery viewer cookie v1").
func wantCookie(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("orrery viewer cookie v1"))
	return hex.EncodeToString(m.Sum(nil))
}

// must returns a func that returns a string, failing the test on an
// error: must(t)(a.ViewerSecret()).
func must(t *testing.T) func(string, error) string {
	return func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// secretOnDisk returns the content of pki/name, trimmed.
func secretOnDisk(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "pki", name))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(data))
}

func TestViewerSecretCreatedOnFirstUseAndKept(t *testing.T) {
	a, dir := open(t)
	path := filepath.Join(dir, "pki", viewerSecretFile)
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("%s exists before first use (%v)", viewerSecretFile, err)
	}
	// Checking makes nothing.
	if a.CheckViewer("anything-at-all-long-enough-0123") || a.CheckViewerCookie(wantCookie("x")) || a.CheckViewer("") {
		t.Error("a check passed with no viewer secret")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("a check made %s (%v)", viewerSecretFile, err)
	}

	s := must(t)(a.ViewerSecret())
	raw, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(raw) != 32 {
		t.Fatalf("viewer secret %d characters, %d bytes, %v; want 32 random bytes in base64url", len(s), len(raw), err)
	}
	data, err := os.ReadFile(path)
	if err != nil || string(data) != s+"\n" {
		t.Fatalf("%s does not hold the secret as one line (%v)", viewerSecretFile, err)
	}
	if again := must(t)(a.ViewerSecret()); again != s {
		t.Error("ViewerSecret changed between two calls")
	}
	c := must(t)(a.ViewerCookie())
	if c != wantCookie(s) {
		t.Errorf("ViewerCookie is not hex HMAC-SHA256(secret, %q)", viewerCookieLabel)
	}
	if !a.CheckViewer(s) || !a.CheckViewerCookie(c) {
		t.Error("the viewer secret or its cookie refused")
	}

	// It persists across Open, in this process and as another would.
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := must(t)(b.ViewerSecret()); got != s {
		t.Error("reopening changed the viewer secret")
	}
	if got := must(t)(b.ViewerCookie()); got != c {
		t.Error("reopening changed the viewer cookie")
	}
	if !b.CheckViewer(s) || !b.CheckViewerCookie(c) {
		t.Error("a second Authority refuses the viewer secret or cookie")
	}
}

func TestViewerRotate(t *testing.T) {
	a, dir := open(t)
	old := must(t)(a.ViewerSecret())
	oldCookie := must(t)(a.ViewerCookie())
	join := token(t, a).Secret

	// Another process rotates it.
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := must(t)(b.RotateViewer())
	if s == old {
		t.Fatal("RotateViewer kept the secret")
	}
	if s != secretOnDisk(t, dir, viewerSecretFile) {
		t.Error("RotateViewer returned a secret other than the one it wrote")
	}
	c := must(t)(b.ViewerCookie())
	if c == oldCookie || c != wantCookie(s) {
		t.Error("the cookie did not follow the rotation")
	}
	for name, x := range map[string]*Authority{"rotating": b, "running": a} {
		if x.CheckViewer(old) {
			t.Errorf("%s Authority: old viewer secret accepted after rotation", name)
		}
		if x.CheckViewerCookie(oldCookie) {
			t.Errorf("%s Authority: old viewer cookie accepted after rotation", name)
		}
		if !x.CheckViewer(s) || !x.CheckViewerCookie(c) {
			t.Errorf("%s Authority: new viewer secret or cookie refused", name)
		}
		if got := must(t)(x.ViewerSecret()); got != s {
			t.Errorf("%s Authority: ViewerSecret still gives the old secret", name)
		}
		if got := must(t)(x.ViewerCookie()); got != c {
			t.Errorf("%s Authority: ViewerCookie still gives the old cookie", name)
		}
	}
	// The join secret is untouched, and rotating it leaves the viewer's.
	if token(t, a).Secret != join {
		t.Error("rotating the viewer secret changed the join secret")
	}
	if err := a.Rotate(); err != nil {
		t.Fatal(err)
	}
	if !a.CheckViewer(s) || !b.CheckViewerCookie(c) {
		t.Error("rotating the join secret changed the viewer secret")
	}
	// Rotating in the same Authority takes effect too.
	s2 := must(t)(a.RotateViewer())
	if a.CheckViewer(s) || b.CheckViewer(s) || b.CheckViewerCookie(c) || !b.CheckViewer(s2) {
		t.Error("second rotation: the previous secret still works, or the new one does not")
	}
}

func TestWebSecretsRefuseWrongValues(t *testing.T) {
	a, _ := open(t)
	v := must(t)(a.ViewerSecret())
	c := must(t)(a.ViewerCookie())
	m := must(t)(a.MetricsToken())
	join := token(t, a).Secret
	headTok, err := ParseToken(must(t)(a.HeadToken()))
	if err != nil {
		t.Fatal(err)
	}
	head := headTok.Secret

	flip := func(s string) string {
		b := []byte(s)
		b[len(b)-1] ^= 1
		return string(b)
	}
	wrongViewer := []string{"", flip(v), v + "x", v[:len(v)-1], " " + v, c, m, join, head, strings.ToUpper(c)}
	for _, s := range wrongViewer {
		if a.CheckViewer(s) {
			t.Errorf("CheckViewer accepted a wrong value (%d characters)", len(s))
		}
	}
	for _, s := range []string{"", flip(c), c[:len(c)-1], c + "0", v, m, join, strings.ToUpper(c)} {
		if a.CheckViewerCookie(s) {
			t.Errorf("CheckViewerCookie accepted a wrong value (%d characters)", len(s))
		}
	}
	for _, s := range []string{"", flip(m), m + "x", "Bearer " + m, v, c, join, head} {
		if a.CheckMetrics(s) {
			t.Errorf("CheckMetrics accepted a wrong value (%d characters)", len(s))
		}
	}
	if !a.CheckViewer(v) || !a.CheckViewerCookie(c) || !a.CheckMetrics(m) {
		t.Fatal("a right value refused")
	}
	// Every secret is distinct from every other, and the cookie reveals
	// none of them.
	all := map[string]string{"viewer": v, "cookie": c, "metrics": m, "join": join, "head": head}
	for n1, s1 := range all {
		for n2, s2 := range all {
			if n1 != n2 && (s1 == s2 || strings.Contains(s1, s2)) {
				t.Errorf("%s and %s overlap", n1, n2)
			}
		}
	}
}

func TestMetricsToken(t *testing.T) {
	a, dir := open(t)
	if a.CheckMetrics("") {
		t.Error("empty metrics token accepted with none made")
	}
	m := must(t)(a.MetricsToken())
	if raw, err := base64.RawURLEncoding.DecodeString(m); err != nil || len(raw) != 32 {
		t.Fatalf("metrics token: %d bytes, %v; want 32 random bytes in base64url", len(raw), err)
	}
	if m != secretOnDisk(t, dir, metricsSecretFile) {
		t.Error("metrics.secret does not hold the token")
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := must(t)(b.MetricsToken()); got != m || !b.CheckMetrics(m) {
		t.Error("reopening changed or refused the metrics token")
	}
	v := must(t)(b.ViewerSecret())
	m2 := must(t)(b.RotateMetrics())
	if m2 == m {
		t.Fatal("RotateMetrics kept the token")
	}
	if a.CheckMetrics(m) || !a.CheckMetrics(m2) {
		t.Error("the running Authority did not take the rotated metrics token only")
	}
	if got := must(t)(a.MetricsToken()); got != m2 {
		t.Error("MetricsToken still gives the old token")
	}
	if !a.CheckViewer(v) {
		t.Error("rotating the metrics token changed the viewer secret")
	}
}

func TestWebSecretFirstUseRace(t *testing.T) {
	_, dir := open(t)
	const n = 8
	got := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		a, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			got[i], _ = a.ViewerSecret()
		})
	}
	wg.Wait()
	for i := range got {
		if got[i] == "" || got[i] != got[0] {
			t.Fatalf("Authorities making the viewer secret at once got different secrets (%d)", i)
		}
	}
}

// TestWebSecretSameAsJoinRefused: a viewer or metrics file that holds the
// join secret (copied by hand) is refused, not handed out in a URL, and
// the error does not quote it; rotating mends it.
func TestWebSecretSameAsJoinRefused(t *testing.T) {
	a, dir := open(t)
	join := token(t, a).Secret
	for _, name := range []string{viewerSecretFile, metricsSecretFile} {
		if err := os.WriteFile(filepath.Join(dir, "pki", name), []byte(join+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if s, err := a.ViewerSecret(); err == nil || s != "" || strings.Contains(err.Error(), join) || !strings.Contains(err.Error(), "join.secret") {
		t.Errorf("ViewerSecret with the join secret in viewer.secret: %d characters, %v", len(s), err)
	}
	if _, err := a.ViewerCookie(); err == nil {
		t.Error("ViewerCookie with the join secret in viewer.secret: no error")
	}
	if s, err := a.MetricsToken(); err == nil || s != "" || strings.Contains(err.Error(), join) {
		t.Errorf("MetricsToken with the join secret in metrics.secret: %d characters, %v", len(s), err)
	}
	if a.CheckViewer(join) || a.CheckViewerCookie(wantCookie(join)) || a.CheckMetrics(join) {
		t.Error("the join secret accepted as a viewer or metrics secret")
	}
	v := must(t)(a.RotateViewer())
	m := must(t)(a.RotateMetrics())
	if v == join || m == join || !a.CheckViewer(v) || !a.CheckMetrics(m) || !a.CheckSecret(join) {
		t.Error("rotating did not mend the files, or changed the join secret")
	}
}

func TestWebSecretFileModes(t *testing.T) {
	a, dir := open(t)
	must(t)(a.ViewerSecret())
	must(t)(a.MetricsToken())
	must(t)(a.RotateViewer())
	must(t)(a.RotateMetrics())
	pki := filepath.Join(dir, "pki")
	checkModes(t, pki, []string{caKeyFile, caCertFile, secretFile, viewerSecretFile, metricsSecretFile, lockFile})

	// Open fixes loosened modes.
	os.Chmod(filepath.Join(pki, viewerSecretFile), 0o644)
	os.Chmod(filepath.Join(pki, metricsSecretFile), 0o666)
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	checkModes(t, pki, nil)
}

func TestCAPEM(t *testing.T) {
	a, dir := open(t)
	p := a.CAPEM()
	block, rest := pem.Decode(p)
	if block == nil || block.Type != "CERTIFICATE" || len(bytes.TrimSpace(rest)) != 0 {
		t.Fatalf("CAPEM is not one PEM certificate:\n%s", p)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || sha256.Sum256(cert.RawSubjectPublicKeyInfo) != a.CAHash() {
		t.Error("CAPEM is not the authority's CA")
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, "pki", caCertFile))
	if err != nil || !bytes.Equal(onDisk, p) {
		t.Errorf("CAPEM differs from ca.crt (%v)", err)
	}
	if bytes.Contains(p, []byte("PRIVATE")) {
		t.Error("CAPEM holds a private key")
	}
}

// TestLoginCookie: the viewer secret gives its cookie in one reading; a
// wrong, empty or rotated-out secret gives none, and the new secret
// gives the new cookie.
func TestLoginCookie(t *testing.T) {
	a, dir := open(t)
	secret := must(t)(a.ViewerSecret())
	if c, ok := a.LoginCookie(secret); !ok || c != must(t)(a.ViewerCookie()) {
		t.Fatalf("LoginCookie(secret) = %q, %v; want the viewer cookie", c, ok)
	}
	for _, s := range []string{"", "wrong", secret + "x"} {
		if c, ok := a.LoginCookie(s); ok || c != "" {
			t.Errorf("LoginCookie(%q) = %q, %v; want nothing", s, c, ok)
		}
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	rotated := must(t)(b.RotateViewer())
	if c, ok := a.LoginCookie(secret); ok || c != "" {
		t.Errorf("the rotated-out secret still gave %q", c)
	}
	if c, ok := a.LoginCookie(rotated); !ok || !a.CheckViewerCookie(c) {
		t.Errorf("the new secret gave %q, %v", c, ok)
	}
}
