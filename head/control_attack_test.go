package head

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"orrery/internal/netnstest"
)

// A head directory another local user controls (a shared, /tmp-like
// home) would let that user plant DIR/root (a fake root), DIR/pid (a
// process of ours to signal), the journal, the key file, or symbolic
// links the head writes through. Every entry point refuses it: TakeLock
// (serve), SetRootAddr (start) and ProbeDir (probe, stop).

// dirEntries are the entry points that take a head directory.
var dirEntries = map[string]func(dir string) error{
	"TakeLock": func(dir string) error {
		l, err := TakeLock(dir)
		l.Release()
		return err
	},
	"SetRootAddr": func(dir string) error { return SetRootAddr(dir, "unix:/tmp/fake.sock") },
	"ProbeDir": func(dir string) error {
		_, err := ProbeDir(dir)
		return err
	},
}

// mkdirMode makes base/name with mode.
func mkdirMode(t *testing.T, base, name string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(base, name)
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// refusedEverywhere checks that every entry point refuses dir, naming
// it, and that nothing was written there.
func refusedEverywhere(t *testing.T, what, dir string) {
	t.Helper()
	for ep, f := range dirEntries {
		if err := f(dir); err == nil {
			t.Errorf("%s: a head directory that is %s was taken", ep, what)
		} else if !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: %s: %v; want an error naming %s", ep, what, err, dir)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "root")); err == nil {
		t.Errorf("%s: DIR/root was written", what)
	}
}

// TestAttackUnsafeDir: a directory that is a symbolic link, or below a
// directory others may write to without its sticky bit (they can rename
// DIR away and put theirs in its place), is refused. One of our own that
// others may write to is made 0700; one below a sticky, world-writable
// directory (as /tmp) is taken.
func TestAttackUnsafeDir(t *testing.T) {
	base := t.TempDir()
	mine := mkdirMode(t, base, "mine", 0o700)
	link := filepath.Join(base, "link")
	if err := os.Symlink(mine, link); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere(t, "a symbolic link", link)
	open := mkdirMode(t, base, "open", 0o777)
	refusedEverywhere(t, "below a world-writable directory", mkdirMode(t, open, "h", 0o700))

	sticky := mkdirMode(t, base, "tmp", 0o777|os.ModeSticky)
	wide := mkdirMode(t, sticky, "wide", 0o777)
	for ep, f := range dirEntries {
		if err := f(filepath.Join(sticky, "fresh-"+ep)); err != nil {
			t.Errorf("%s: a new directory below a sticky /tmp-like one: %v", ep, err)
		}
		if err := f(wide); err != nil {
			t.Errorf("%s: our own directory, writable by others: %v", ep, err)
		}
		if fi, err := os.Stat(wide); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: our own directory writable by others is left %v, want 0700", ep, fi.Mode().Perm())
		}
		os.Chmod(wide, 0o777)
	}
}

// rootGate lets the tests that make files of another user run.
var rootGate = netnstest.Gate{What: "the foreign head directory tests", Needs: "root (to give a directory to another user)",
	Probe: func() error { return nil }}

// TestAttackForeignDir: a directory another user owns, or one of ours
// below a directory another user owns, is refused.
func TestAttackForeignDir(t *testing.T) {
	rootGate.Require(t)
	const nobody = 65534
	base := t.TempDir()
	theirs := mkdirMode(t, base, "theirs", 0o755)
	if err := os.Chown(theirs, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere(t, "another user's", theirs)
	parent := mkdirMode(t, base, "theirparent", 0o755)
	below := mkdirMode(t, parent, "h", 0o700)
	if err := os.Chown(parent, nobody, nobody); err != nil {
		t.Fatal(err)
	}
	refusedEverywhere(t, "below another user's directory", below)
}
