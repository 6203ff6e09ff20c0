package pki

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestVersionOfOldDirectory: a new pki directory records its format
// version; one a build before the formats had a version left (no
// version file) is read as version 1, keeps its nodes, revocations and
// secret, and gets the file.
func TestVersionOfOldDirectory(t *testing.T) {
	dir := t.TempDir()
	a, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	versionPath := filepath.Join(dir, "pki", "version")
	if data, err := os.ReadFile(versionPath); err != nil || string(data) != "1\n" {
		t.Fatalf("pki/version of a new directory: %q, %v; want \"1\\n\"", data, err)
	}
	_, pub, err := NewNodeKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"keep", "gone"} {
		if _, _, err := a.Enrol(name, pub); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Revoke("gone"); err != nil {
		t.Fatal(err)
	}
	tok, _ := a.Token()
	nodes, _ := a.Nodes()

	if err := os.Remove(versionPath); err != nil { // as the build before left it
		t.Fatal(err)
	}
	b, err := Open(dir)
	if err != nil {
		t.Fatalf("open a pki directory without a version: %v", err)
	}
	if data, err := os.ReadFile(versionPath); err != nil || string(data) != "1\n" {
		t.Errorf("pki/version after opening an old directory: %q, %v; want \"1\\n\"", data, err)
	}
	if fi, err := os.Stat(versionPath); err != nil || fi.Mode().Perm() != fileMode {
		t.Errorf("pki/version: %v, %v; want mode %v", fi.Mode(), err, fileMode)
	}
	got, _ := b.Nodes()
	if tok2, _ := b.Token(); tok2 != tok || !reflect.DeepEqual(got, nodes) || !b.Revoked("gone") || b.Revoked("keep") {
		t.Errorf("the old directory read back as token %q, nodes %+v; want %q, %+v with gone revoked", tok2, got, tok, nodes)
	}
}

// pkiHash describes every file of a pki directory: name, mode and
// contents.
func pkiHash(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %v %x\n", e.Name(), fi.Mode(), sha256.Sum256(data))
	}
	return b.String()
}

// TestNewerVersionRefused: key material of a newer (or an unknown)
// format version is refused with one line that says what to do, and
// nothing in the directory changes.
func TestNewerVersionRefused(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(dir); err != nil {
		t.Fatal(err)
	}
	pkiDir := filepath.Join(dir, "pki")
	for _, v := range []string{"2", "17\n", "one", ""} {
		// A mode Open would change, to see that it does not.
		if err := os.WriteFile(filepath.Join(pkiDir, "version"), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(pkiDir, "version"), 0o644)
		before := pkiHash(t, pkiDir)
		_, err := Open(dir)
		if err == nil {
			t.Fatalf("key material of version %q opened", v)
		}
		msg := err.Error()
		if strings.Contains(msg, "\n") || !strings.Contains(msg, dir) || !strings.Contains(msg, "--state-dir") {
			t.Errorf("version %q: %q; want one line naming %s and --state-dir", v, msg, dir)
		}
		if n := strings.TrimSpace(v); n == "2" || n == "17" {
			want := fmt.Sprintf("state directory %s was written by a newer Orrery (key material version %s; this build reads up to %d): use that version, or give a new --state-dir",
				dir, n, FormatVersion)
			if msg != want || !errors.Is(err, ErrNewer) {
				t.Errorf("version %q:\n%q\nwant\n%q", v, msg, want)
			}
		}
		if after := pkiHash(t, pkiDir); after != before {
			t.Errorf("refusing version %q changed the pki directory:\n%s\nwas\n%s", v, after, before)
		}
	}
}
