package headcache_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"orrery/headcache"
	"orrery/task"
)

// TestDiskFull: a head whose disk fills while it caches or spools gets an
// error wrapping ErrDiskFull that names its directory, a system failure;
// nothing partial is left, and the space is free again afterwards.
func TestDiskFull(t *testing.T) {
	dir := mountTmpfs(t, "1m")
	rootDir := t.TempDir()
	big, small := content(30, 2<<20), content(31, 10_000)
	writeFile(t, rootDir, "big", big)
	writeFile(t, rootDir, "small", small)
	c := openCache(t, dir, 64<<20) // the limit is not what stops it
	root := c.Root(newHashRoot(rootDir))
	ctx := context.Background()
	checkFull := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, headcache.ErrDiskFull) {
			t.Fatalf("%s on a full disk: %v; want ErrDiskFull", what, err)
		}
		if !strings.Contains(err.Error(), dir) {
			t.Errorf("%s: the error does not name the head's directory %s: %v", what, dir, err)
		}
		if !task.IsRootSystemError(err) {
			t.Errorf("%s: %v is not a system failure", what, err)
		}
	}
	_, err := root.Open(ctx, "big")
	checkFull("caching", err)
	if s := c.Stats(); s.Size != 0 {
		t.Errorf("size %d after a failed fetch", s.Size)
	}
	s, err := c.Spool(3, 1)
	if err != nil {
		t.Fatal(err)
	}
	checkFull("spooling", s.Root(nil).Put(ctx, "out/big", 0o644, bytes.NewReader(big)))
	if s.Pending() != 0 {
		t.Errorf("pending %d after a failed put", s.Pending())
	}
	for _, sub := range []string{"objects", "tmp"} {
		if _, names := dirBytes(t, filepath.Join(dir, sub)); len(names) != 0 {
			t.Errorf("%s holds %q after the disk filled", sub, names)
		}
	}
	if _, names := dirBytes(t, filepath.Join(dir, "spool", "3.1")); !slices.Equal(names, []string{"manifest"}) {
		t.Errorf("the spool holds %q after the disk filled", names)
	}
	// The space is free again: small files fit.
	readVia(t, root, "small", small)
	if err := s.Root(nil).Put(ctx, "out/small", 0o644, bytes.NewReader(small)); err != nil {
		t.Fatal(err)
	}
	got := newCounting(task.DirRoot{Dir: t.TempDir()})
	if err := s.Flush(ctx, got); err != nil || !slices.Equal(got.put(), []string{"out/small"}) {
		t.Errorf("flush after the full disk: %v, put %q", err, got.put())
	}
}

// mountTmpfs mounts a tmpfs of the given size (as mount's size option)
// on a new directory, unmounted when the test ends. It skips the test
// only when this machine does not permit the mount.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size+",mode=0700"); err != nil {
		if errors.Is(err, syscall.EPERM) || errors.Is(err, syscall.EACCES) {
			t.Skipf("mounting a tmpfs is not permitted here: %v", err)
		}
		t.Fatalf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			syscall.Unmount(dir, syscall.MNT_DETACH)
		}
	})
	return dir
}
