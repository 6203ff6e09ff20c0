package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"orrery/head"
	"orrery/pki"
)

// TestAttackHeadTokenNotShown: the root's token reaches a head on its
// standard input only. Another local user sees a process's command line
// (ps) and may read what the head leaves on its disk; neither the
// command line nor the environment of `orrery head start` and of the
// head it detaches, nor head.log (its status lines while it cannot reach
// the root) nor any file of its directory holds the secret.
func TestAttackHeadTokenNotShown(t *testing.T) {
	base := t.TempDir()
	auth, err := pki.Open(filepath.Join(base, "state"))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.HeadToken()
	if err != nil {
		t.Fatal(err)
	}
	parsed, _ := pki.ParseToken(tok)
	secret := parsed.Secret
	dir := filepath.Join(base, "h")
	spec, _ := json.Marshal(head.StartSpec{Token: tok, Root: "unix:" + filepath.Join(base, "no-root.sock"),
		Cluster: "cluster c1\n    node n1\n", Name: "c1", Lease: "1m"})
	cmd := exec.Command(e2eBinary(t), "head", "start", "--dir", dir)
	cmd.Stdin = bytes.NewReader(spec)
	out, err := cmd.CombinedOutput()
	t.Cleanup(func() { head.Stop(dir, 10*time.Second) })
	f := strings.Fields(string(out))
	if err != nil || len(f) != 2 || f[0] != "started" {
		t.Fatalf("head start: %v: %s", err, out)
	}
	pid, _ := strconv.Atoi(f[1])
	for _, what := range []string{"cmdline", "environ"} {
		b, err := os.ReadFile(filepath.Join("/proc", f[1], what))
		if err != nil {
			t.Fatalf("the head's %s: %v", what, err)
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the head's %s holds the secret: %q", what, b)
		}
	}
	if strings.Contains(strings.Join(cmd.Args, " "), secret) || strings.Contains(string(out), secret) {
		t.Error("`orrery head start` had or printed the secret")
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(head.LogTail(dir, 20), "cannot reach the root") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(head.LogTail(dir, 20), "cannot reach the root") {
		t.Fatalf("no status line in head.log within 10 s: %q", head.LogTail(dir, 20))
	}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the secret", p)
		}
		return nil
	})
	if was, err := head.Stop(dir, 10*time.Second); !was || err != nil {
		t.Errorf("head stop (pid %d): %v, %v", pid, was, err)
	}
}
