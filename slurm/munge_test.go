package slurm

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"orrery/batch"
	"orrery/internal/slurmtest"
)

// munge makes a credential with the munge command, as user uid (-1: as
// this process).
func munge(t *testing.T, uid int, payload string) []byte {
	t.Helper()
	args := []string{"-s", payload}
	name := "munge"
	if uid >= 0 {
		name = "setpriv"
		args = append([]string{"--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(uid), "--clear-groups", "munge"}, args...)
	}
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		t.Fatalf("munge: %v", err)
	}
	return out
}

// TestVerify: a credential made by the credential command, inside a
// real batch job, names that job and the user who submitted it; it is
// refused when shown a second time, when it is not munge's, or when it
// names no job.
func TestVerify(t *testing.T) {
	ctx := ctxT(t)
	s := New(Local)
	out := filepath.Join(t.TempDir(), "cred")
	id, err := s.Submit(ctx, batch.Request{Name: "orrery-t9-cred", Partition: slurmtest.Partition,
		Script: []byte("#!/bin/sh\n" + s.CredentialCommand() + " > " + out + ".tmp && mv " + out + ".tmp " + out + "\n")})
	if err != nil {
		t.Fatal(err)
	}
	var cred []byte
	if !waitFor(60*time.Second, func() bool {
		cred, err = os.ReadFile(out)
		return err == nil && len(cred) > 0
	}) {
		t.Fatalf("job %s made no credential", id)
	}
	c, err := s.Verify(ctx, cred)
	if err != nil {
		t.Fatalf("a fresh credential of the job's: %v", err)
	}
	if c.Job != id || c.UID != os.Getuid() {
		t.Fatalf("the credential says job %q of user %d, want job %q of user %d", c.Job, c.UID, id, os.Getuid())
	}
	if _, err := s.Verify(ctx, cred); err == nil || !strings.Contains(err.Error(), "Replayed") {
		t.Fatalf("the same credential shown again: %v, want it refused as replayed", err)
	}
	for _, bad := range []struct {
		name string
		cred []byte
		want string
	}{
		{"empty", nil, "0 bytes"},
		{"too long", []byte(strings.Repeat("A", MaxCredential+1)), "bytes"},
		{"not munge's", []byte("MUNGE:AAAA:\n"), "munge: "},
		{"plain text", []byte("let me in\n"), "munge: "},
		{"names no job", munge(t, -1, "12; rm -rf /"), "names no job"},
		{"names nothing", munge(t, -1, ""), "names no job"},
	} {
		if _, err := s.Verify(ctx, bad.cred); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%s: %v, want an error with %q", bad.name, err, bad.want)
		}
	}
	if os.Getuid() == 0 {
		c, err := s.Verify(ctx, munge(t, 65534, "7"))
		if err != nil || c.UID != 65534 || c.Job != "7" {
			t.Fatalf("another user's credential: %+v %v, want user 65534's of job 7", c, err)
		}
	}
}
