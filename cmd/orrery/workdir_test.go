package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// agentRefusal runs `orrery agent` (which must not get as far as
// connecting) and checks that it exits 2 with one line naming dir and
// saying why.
func agentRefusal(t *testing.T, dir, why string, args ...string) {
	t.Helper()
	args = append([]string{"agent", "--connect", "127.0.0.1:1", "--wait", "1s"}, args...)
	code, _, stderr := cli(t, args...)
	if code != exitInvalid || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, dir) || !strings.Contains(stderr, why) {
		t.Errorf("orrery %s: exit %d, stderr %q; want exit 2 and one line naming %s and saying %q",
			strings.Join(args, " "), code, stderr, dir, why)
	}
}

// TestAgentWorkDirRefused: `orrery agent` refuses a work directory that
// another user could have planted records in: one writable by group or
// others, one owned by another user, or a symbolic link.
func TestAgentWorkDirRefused(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(open, 0o777|os.ModeSticky)
	agentRefusal(t, open, "writable by", "--work-dir", open)

	group := filepath.Join(base, "group")
	os.Mkdir(group, 0o755)
	os.Chmod(group, 0o775)
	agentRefusal(t, group, "writable by", "--work-dir", group)

	link := filepath.Join(base, "link")
	good := filepath.Join(base, "good")
	os.Mkdir(good, 0o700)
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	agentRefusal(t, link, "symbolic link", "--work-dir", link)

	other := "/" // owned by root
	if os.Getuid() == 0 {
		other = filepath.Join(base, "other")
		os.Mkdir(other, 0o755)
		if err := os.Chown(other, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	}
	agentRefusal(t, other, "owned by", "--work-dir", other)
}

// TestAgentDefaultWorkDirPerUser: the default work directory is the
// user's own (TMPDIR/orrery-agent-UID), and one another user made first
// is refused.
func TestAgentDefaultWorkDirPerUser(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	want := filepath.Join(tmp, "orrery-agent-"+strconv.Itoa(os.Getuid()))
	if got := defaultAgentWorkDir(); got != want {
		t.Errorf("default work directory %q, want %q", got, want)
	}
	if err := os.Mkdir(want, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(want, 0o777|os.ModeSticky)
	agentRefusal(t, want, "writable by")
}
