package main

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"orrery/pki"
)

// tokenLine runs `orrery token ARGS...`, checks that it printed one line
// and nothing on stderr, and returns the line.
func tokenLine(t *testing.T, args ...string) string {
	t.Helper()
	code, stdout, stderr := cli(t, append([]string{"token"}, args...)...)
	if code != exitOK || stderr != "" {
		t.Fatalf("orrery token %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	if strings.Count(stdout, "\n") != 1 || !strings.HasSuffix(stdout, "\n") || strings.ContainsAny(strings.TrimSuffix(stdout, "\n"), " \t") {
		t.Fatalf("orrery token printed %q, want the token alone on one line", stdout)
	}
	return strings.TrimSuffix(stdout, "\n")
}

// caHash returns the SHA-256 hash of the public key of the CA in
// stateDir/pki/ca.crt, read independently of package pki.
func caHash(t *testing.T, stateDir string) [32]byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(stateDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		t.Fatal("ca.crt: no PEM block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(cert.RawSubjectPublicKeyInfo)
}

func TestTokenStableAndRotate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state") // created by the command
	first := tokenLine(t, "--state-dir", dir)
	if again := tokenLine(t, "--state-dir", dir); again != first {
		t.Error("token changed between two calls")
	}
	tok, err := pki.ParseToken(first)
	if err != nil {
		t.Fatal(err)
	}
	if tok.CAHash != caHash(t, dir) {
		t.Error("the token's CA hash is not the hash of the state directory's CA")
	}
	a, err := pki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !a.CheckSecret(tok.Secret) {
		t.Error("the token's secret is not the state directory's")
	}

	rotated := tokenLine(t, "--rotate", "--state-dir", dir)
	if rotated == first {
		t.Fatal("--rotate printed the same token")
	}
	if now := tokenLine(t, "--state-dir", dir); now != rotated {
		t.Error("the token after --rotate is not the one --rotate printed")
	}
	newTok, err := pki.ParseToken(rotated)
	if err != nil {
		t.Fatal(err)
	}
	if newTok.CAHash != tok.CAHash {
		t.Error("--rotate changed the CA")
	}
	if a.CheckSecret(tok.Secret) || !a.CheckSecret(newTok.Secret) {
		t.Error("after --rotate the running authority does not take the new secret only")
	}
}

func TestTokenFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	tokenLine(t, "--state-dir", dir)
	for path, want := range map[string]os.FileMode{
		dir:                                      0o700,
		filepath.Join(dir, "pki"):                0o700,
		filepath.Join(dir, "pki", "ca.key"):      0o600,
		filepath.Join(dir, "pki", "ca.crt"):      0o600,
		filepath.Join(dir, "pki", "join.secret"): 0o600,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, fi.Mode().Perm(), want)
		}
	}
}

func TestTokenStateDirOfPlan(t *testing.T) {
	plan := writePlan(t, "sweep.pln", "parameter x integer range from 1 to 2;\ntask main\n\texecute echo $x\nendtask\n")
	tok := tokenLine(t, plan)
	state := filepath.Join(filepath.Dir(plan), ".orrery")
	parsed, err := pki.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.CAHash != caHash(t, state) {
		t.Error("with PLAN the key material is not in .orrery beside it")
	}
	if code, _, stderr := cli(t, "token", "--state-dir", state, plan); code != exitInvalid || !strings.HasPrefix(stderr, "orrery: token: ") {
		t.Errorf("--state-dir and PLAN: exit %d, %q", code, stderr)
	}
	if code, _, stderr := cli(t, "token", filepath.Join(filepath.Dir(plan), "missing.pln")); code != exitInvalid || !strings.HasPrefix(stderr, "orrery: token: ") {
		t.Errorf("missing plan: exit %d, %q", code, stderr)
	}
}

func TestTokenDefaultStateDir(t *testing.T) {
	wd := t.TempDir()
	t.Chdir(wd)
	tok := tokenLine(t)
	parsed, err := pki.ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.CAHash != caHash(t, filepath.Join(wd, ".orrery")) {
		t.Error("without PLAN or --state-dir the key material is not in ./.orrery")
	}
}

func TestTokenRevokeAndList(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := cli(t, "token", "--state-dir", dir, "--revoke", "ghost")
	if code != exitInvalid || !strings.HasPrefix(stderr, "orrery: token: ") || !strings.Contains(stderr, "no node has enrolled") || stdout != "" {
		t.Errorf("--revoke of an unknown node with none enrolled: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	a, err := pki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, pub, err := pki.NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"alpha", "beta"} {
		if _, _, err := a.Enrol(name, pub); err != nil {
			t.Fatal(err)
		}
	}
	code, _, stderr = cli(t, "token", "--state-dir", dir, "--revoke", "ghost")
	if code != exitInvalid || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "alpha, beta") {
		t.Errorf("--revoke ghost: exit %d, stderr %q; want 2 and the enrolled IDs", code, stderr)
	}
	code, stdout, stderr = cli(t, "token", "--state-dir", dir, "--revoke", "beta")
	if code != exitOK || strings.Count(stdout, "\n") != 1 || !strings.Contains(stdout, "beta") {
		t.Errorf("--revoke beta: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if !a.Revoked("beta") || a.Revoked("alpha") {
		t.Error("--revoke beta not seen by the open authority, or revoked alpha")
	}
	stdout = mustRun(t, "token", "--state-dir", dir, "--list")
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[1], "alpha ") || !strings.HasSuffix(lines[1], " enrolled") ||
		!strings.HasPrefix(lines[2], "beta ") || !strings.HasSuffix(lines[2], " revoked") {
		t.Errorf("--list printed:\n%s", stdout)
	}
}

func TestTokenBadUsage(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--rotate", "--list"},
		{"--revoke", "x", "--rotate"},
		{"--revoke", ""},
		{"a.pln", "b.pln"},
		{"--no-such-flag"},
	} {
		code, stdout, stderr := cli(t, append([]string{"token", "--state-dir", dir}, args...)...)
		if code != exitInvalid || stdout != "" || stderr == "" {
			t.Errorf("token %q: exit %d, stdout %q, stderr %q; want exit 2 and a message", args, code, stdout, stderr)
		}
		if args[0] != "--no-such-flag" && (!strings.HasPrefix(stderr, "orrery: token: ") || strings.Count(stderr, "\n") != 1) {
			t.Errorf("token %q: stderr %q, want one line starting \"orrery: token: \"", args, stderr)
		}
	}
}
