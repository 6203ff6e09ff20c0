package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"orrery/pki"
)

// listened makes a state directory in which a run recorded that its port
// listens on addr, and returns it.
func listened(t *testing.T, addr string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := recordPortAddr(dir, addr); err != nil {
		t.Fatal(err)
	}
	return dir
}

// viewerSecretOf parses a URL `orrery token --viewer` printed, checks its
// form and host, and returns the viewer secret it carries.
func viewerSecretOf(t *testing.T, line, wantHost string) string {
	t.Helper()
	u, err := url.Parse(line)
	if err != nil {
		t.Fatalf("--viewer printed %q: %v", line, err)
	}
	q := u.Query()
	if u.Scheme != "https" || u.Host != wantHost || u.Path != "/login" || len(q) != 1 || len(q["v"]) != 1 ||
		u.User != nil || u.Fragment != "" || line != "https://"+wantHost+"/login?v="+q.Get("v") {
		t.Fatalf("--viewer printed %q, want https://%s/login?v=SECRET", line, wantHost)
	}
	return q.Get("v")
}

// openAuthority opens the key material of a state directory as a running
// root would.
func openAuthority(t *testing.T, dir string) *pki.Authority {
	t.Helper()
	a, err := pki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// cookieOfSecret is the viewer cookie of a secret, computed here.
func cookieOfSecret(secret string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte("orrery viewer cookie v1"))
	return hex.EncodeToString(m.Sum(nil))
}

func TestTokenWebViewer(t *testing.T) {
	dir := listened(t, "127.0.0.1:7443")
	running := openAuthority(t, dir) // the root, already running
	join := tokenLine(t, "--state-dir", dir)

	first := viewerSecretOf(t, tokenLine(t, "--viewer", "--state-dir", dir), "127.0.0.1:7443")
	if !running.CheckViewer(first) {
		t.Error("the running root refuses the secret of the printed URL")
	}
	if !running.CheckViewerCookie(cookieOfSecret(first)) {
		t.Error("the running root refuses the cookie of the printed secret")
	}
	if strings.Contains(join, first) || running.CheckSecret(first) || running.CheckMetrics(first) {
		t.Error("the viewer secret is, or is part of, the join token or the metrics token")
	}
	if again := viewerSecretOf(t, tokenLine(t, "--viewer", "--state-dir", dir), "127.0.0.1:7443"); again != first {
		t.Error("--viewer printed another secret the second time")
	}

	rotated := viewerSecretOf(t, tokenLine(t, "--viewer", "--rotate", "--state-dir", dir), "127.0.0.1:7443")
	if rotated == first {
		t.Fatal("--viewer --rotate printed the same secret")
	}
	if running.CheckViewer(first) || running.CheckViewerCookie(cookieOfSecret(first)) {
		t.Error("after --viewer --rotate the running root still takes the old secret or cookie")
	}
	if !running.CheckViewer(rotated) || !running.CheckViewerCookie(cookieOfSecret(rotated)) {
		t.Error("after --viewer --rotate the running root refuses the new secret or cookie")
	}
	if now := viewerSecretOf(t, tokenLine(t, "--viewer", "--state-dir", dir), "127.0.0.1:7443"); now != rotated {
		t.Error("--viewer after --rotate does not print the rotated secret")
	}
	if now := tokenLine(t, "--state-dir", dir); now != join {
		t.Error("--viewer --rotate changed the join token")
	}

	// A later run on another address: the URL follows it.
	if err := recordPortAddr(dir, "[::1]:9443"); err != nil {
		t.Fatal(err)
	}
	if s := viewerSecretOf(t, tokenLine(t, "--viewer", "--state-dir", dir), "[::1]:9443"); s != rotated {
		t.Error("a new address changed the secret")
	}
}

func TestTokenWebViewerAddress(t *testing.T) {
	// An address for every interface becomes this machine's name.
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	dir := listened(t, "0.0.0.0:8443")
	viewerSecretOf(t, tokenLine(t, "--viewer", "--state-dir", dir), net.JoinHostPort(host, "8443"))

	// port.addr is one line, mode 0600, written whole: no temporary file
	// is left, and a second record replaces the first.
	if err := recordPortAddr(dir, "orrery.example:443"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "port.addr")
	data, err := os.ReadFile(path)
	if err != nil || string(data) != "orrery.example:443\n" {
		t.Errorf("port.addr holds %q (%v), want the address on one line", data, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("port.addr: %v (%v), want mode 0600", fi.Mode(), err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") {
			t.Errorf("temporary file %s left in the state directory", e.Name())
		}
	}
	if got, err := readPortAddr(dir); err != nil || got != "orrery.example:443" {
		t.Errorf("readPortAddr = %q, %v", got, err)
	}
	for _, bad := range []string{"", "host", "host:0", "host:70000", "host:http", ":8443", "a b:80", "a/b:80", "x@y:80", "a\nb:80"} {
		if err := recordPortAddr(dir, bad); err == nil {
			t.Errorf("recordPortAddr(%q) accepted", bad)
		}
	}
	if got, _ := readPortAddr(dir); got != "orrery.example:443" {
		t.Errorf("a refused address replaced the recorded one: %q", got)
	}
}

func TestTokenWebViewerWithoutAddress(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	for _, args := range [][]string{{"--viewer"}, {"--viewer", "--rotate"}} {
		code, stdout, stderr := cli(t, append([]string{"token", "--state-dir", dir}, args...)...)
		if code != exitFailed || stdout != "" || !strings.HasPrefix(stderr, "orrery: token: --viewer: ") ||
			strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--listen") {
			t.Errorf("token %q with no recorded address: exit %d, stdout %q, stderr %q; want 1 and one line saying to start the run with --listen",
				args, code, stdout, stderr)
		}
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("--viewer with no address made the state directory (%v)", err)
	}

	// A recorded address that is not one: a one-line error, status 4.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "port.addr"), []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := cli(t, "token", "--state-dir", dir, "--viewer")
	if code != exitSystem || stdout != "" || !strings.HasPrefix(stderr, "orrery: token: --viewer: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("--viewer with a corrupt port.addr: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

func TestTokenWebMetrics(t *testing.T) {
	dir := listened(t, "127.0.0.1:7443")
	running := openAuthority(t, dir)
	join := tokenLine(t, "--state-dir", dir)
	viewer := viewerSecretOf(t, tokenLine(t, "--viewer", "--state-dir", dir), "127.0.0.1:7443")

	m := tokenLine(t, "--metrics", "--state-dir", dir)
	if !running.CheckMetrics(m) {
		t.Error("the running root refuses the printed metrics token")
	}
	if m == viewer || strings.Contains(join, m) || running.CheckSecret(m) || running.CheckViewer(m) {
		t.Error("the metrics token is the viewer secret or the join secret")
	}
	if again := tokenLine(t, "--metrics", "--state-dir", dir); again != m {
		t.Error("--metrics printed another token the second time")
	}
	rotated := tokenLine(t, "--rotate", "--metrics", "--state-dir", dir)
	if rotated == m {
		t.Fatal("--metrics --rotate printed the same token")
	}
	if running.CheckMetrics(m) || !running.CheckMetrics(rotated) {
		t.Error("after --metrics --rotate the running root does not take the new token only")
	}
	if tokenLine(t, "--metrics", "--state-dir", dir) != rotated {
		t.Error("--metrics after --rotate does not print the rotated token")
	}
	if tokenLine(t, "--state-dir", dir) != join || !running.CheckViewer(viewer) {
		t.Error("--metrics --rotate changed the join token or the viewer secret")
	}
	// Rotating the join secret leaves both.
	tokenLine(t, "--rotate", "--state-dir", dir)
	if !running.CheckMetrics(rotated) || !running.CheckViewer(viewer) {
		t.Error("--rotate (the join secret) changed the metrics token or the viewer secret")
	}
	for path, want := range map[string]os.FileMode{
		filepath.Join(dir, "pki", "viewer.secret"):  0o600,
		filepath.Join(dir, "pki", "metrics.secret"): 0o600,
		filepath.Join(dir, "port.addr"):             0o600,
	} {
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v (%v), want mode %v", path, fi.Mode(), err, want)
		}
	}
}

func TestTokenWebCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	code, stdout, stderr := cli(t, "token", "--ca", "--state-dir", dir)
	if code != exitOK || stderr != "" {
		t.Fatalf("token --ca: exit %d\n%s", code, stderr)
	}
	block, rest := pem.Decode([]byte(stdout))
	if block == nil || block.Type != "CERTIFICATE" || strings.TrimSpace(string(rest)) != "" {
		t.Fatalf("token --ca printed:\n%s\nwant one PEM certificate", stdout)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || sha256.Sum256(cert.RawSubjectPublicKeyInfo) != caHash(t, dir) {
		t.Error("token --ca did not print the state directory's CA")
	}
	tok, err := pki.ParseToken(tokenLine(t, "--state-dir", dir))
	if err != nil {
		t.Fatal(err)
	}
	if tok.CAHash != caHash(t, dir) {
		t.Error("the join token's CA is not the printed one")
	}
	if strings.Contains(stdout, tok.Secret) || strings.Contains(stdout, "PRIVATE") {
		t.Error("token --ca printed a secret")
	}
}

// TestTokenWebBadUsageAndNoLeaks: bad combinations are refused with one
// line and status 2, and no secret appears in help or in an error.
func TestTokenWebBadUsageAndNoLeaks(t *testing.T) {
	dir := listened(t, "127.0.0.1:7443")
	a := openAuthority(t, dir)
	tok, err := pki.ParseToken(tokenLine(t, "--state-dir", dir))
	if err != nil {
		t.Fatal(err)
	}
	join := tok.Secret
	viewer := viewerSecretOf(t, tokenLine(t, "--viewer", "--state-dir", dir), "127.0.0.1:7443")
	metrics := tokenLine(t, "--metrics", "--state-dir", dir)
	secrets := map[string]string{"join": join, "viewer": viewer, "metrics": metrics, "cookie": cookieOfSecret(viewer)}
	noSecret := func(what, text string) {
		t.Helper()
		for name, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s shows the %s secret:\n%s", what, name, text)
			}
		}
	}

	for _, args := range [][]string{
		{"--viewer", "--metrics"},
		{"--viewer", "--ca"},
		{"--metrics", "--ca"},
		{"--viewer", "--list"},
		{"--metrics", "--revoke", "n"},
		{"--ca", "--list"},
		{"--ca", "--rotate"},
		{"--rotate", "--list"},
		{"--rotate", "--revoke", "n"},
		{"--viewer", "--metrics", "--rotate"},
		{"--viewer=false", "--metrics", "--ca"},
	} {
		code, stdout, stderr := cli(t, append([]string{"token", "--state-dir", dir}, args...)...)
		if code != exitInvalid || stdout != "" || !strings.HasPrefix(stderr, "orrery: token: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("token %q: exit %d, stdout %q, stderr %q; want 2 and one line starting \"orrery: token: \"", args, code, stdout, stderr)
		}
		noSecret("the error of token "+strings.Join(args, " "), stderr)
	}
	// Refused combinations changed nothing.
	if !a.CheckSecret(join) || !a.CheckViewer(viewer) || !a.CheckMetrics(metrics) {
		t.Error("a refused command line rotated a secret")
	}

	code, stdout, stderr := cli(t, "token", "--state-dir", dir, "--help")
	if code != exitOK || stdout != "" {
		t.Errorf("token --help: exit %d, stdout %q", code, stdout)
	}
	if !strings.HasPrefix(stderr, "Usage: orrery token "+tokenUsage+"\n") {
		t.Errorf("token --help does not start with the usage line:\n%s", stderr)
	}
	for _, flag := range []string{"-viewer", "-metrics", "-ca", "-rotate"} {
		if !strings.Contains(stderr, "\n  "+flag) {
			t.Errorf("token --help does not list %s:\n%s", flag, stderr)
		}
	}
	noSecret("token --help", stderr)
	_, help, _ := cli(t, "help", "token")
	noSecret("orrery help token", help)

	// A viewer.secret that holds the join secret (copied by hand) is
	// refused without quoting it, and --viewer --rotate mends it.
	if err := os.WriteFile(filepath.Join(dir, "pki", "viewer.secret"), []byte(join+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = cli(t, "token", "--state-dir", dir, "--viewer")
	if code != exitSystem || stdout != "" || !strings.HasPrefix(stderr, "orrery: token: ") || strings.Count(stderr, "\n") != 1 {
		t.Errorf("--viewer with the join secret in viewer.secret: exit %d, stdout %q, stderr %q; want 4 and one line", code, stdout, stderr)
	}
	noSecret("the error of --viewer with a bad viewer.secret", stderr)
	if a.CheckViewer(join) {
		t.Error("the join secret accepted as the viewer secret")
	}
	mended := viewerSecretOf(t, tokenLine(t, "--viewer", "--rotate", "--state-dir", dir), "127.0.0.1:7443")
	if mended == join || !a.CheckViewer(mended) || !a.CheckSecret(join) {
		t.Error("--viewer --rotate did not mend viewer.secret, or changed the join secret")
	}
}
