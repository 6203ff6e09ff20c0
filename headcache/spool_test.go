package headcache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"orrery/headcache"
	"orrery/protocol"
	"orrery/task"
)

// cutAfter is an upstream whose link is cut once n Puts went through.
type cutAfter struct {
	task.Root
	n   int
	cut func()
}

func (c *cutAfter) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error {
	if c.n == 0 {
		c.cut()
	}
	c.n--
	return c.Root.Put(ctx, name, perm, r)
}

// TestSpoolFlushResumes: a flush cut off by a lost link, then by the
// head's restart, goes on where it stopped over a new connection: every
// result reaches the root once, in order, with its mode, and nothing
// confirmed is uploaded again.
func TestSpoolFlushResumes(t *testing.T) {
	rootDir, dir := t.TempDir(), t.TempDir()
	onRoot := newCounting(task.ConfinedRoot{Dir: rootDir})
	ctx := context.Background()
	c := openCache(t, dir, 1<<20)
	s, err := c.Spool(5, 2)
	if err != nil {
		t.Fatal(err)
	}
	node := s.Root(newHashRoot(t.TempDir()))
	var names []string
	want := map[string][]byte{}
	perms := []fs.FileMode{0o600, 0o640, 0o644, 0o755, 0o700} // the root drops write for group and others
	for i := range 5 {
		name := fmt.Sprintf("out/r%d.txt", i)
		data := content(uint64(20+i), 1000+i*protocol.ChunkSize/2)
		if err := node.Put(ctx, name, perms[i], bytes.NewReader(data)); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
		want[name] = data
	}
	if _, err := os.Stat(filepath.Join(rootDir, "out")); err == nil {
		t.Fatal("results reached the root before a flush")
	}

	l1 := connect(t, onRoot)
	err = s.Flush(ctx, &cutAfter{Root: l1.peer, n: 2, cut: l1.cut})
	if err == nil || !errors.Is(err, protocol.ErrLost) && !strings.Contains(err.Error(), "closed") {
		t.Fatalf("flush over a cut link: %v", err)
	}
	if got := onRoot.put(); !slices.Equal(got, names[:2]) || s.Pending() != 3 {
		t.Fatalf("after the cut the root has %q, %d pending; want the first 2, 3 pending", got, s.Pending())
	}

	// The head is killed and starts again on its directory.
	c2 := openCache(t, dir, 1<<20)
	keys, err := c2.Spools()
	if err != nil || !slices.Equal(keys, []headcache.SpoolKey{{Job: 5, Attempt: 2}}) {
		t.Fatalf("spools after the restart: %v, %v", keys, err)
	}
	s2, err := c2.Spool(5, 2)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Pending() != 3 {
		t.Fatalf("the restarted spool has %d pending, want 3", s2.Pending())
	}
	l2 := connect(t, onRoot)
	if err := s2.Flush(ctx, l2.peer); err != nil {
		t.Fatal(err)
	}
	if got := onRoot.put(); !slices.Equal(got, names) {
		t.Errorf("the root was given %q, want each result once, in order: %q", got, names)
	}
	for i, name := range names {
		p := filepath.Join(rootDir, name)
		got, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(got, want[name]) {
			t.Errorf("%s on the root: %d bytes, %v", name, len(got), err)
		}
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != perms[i] {
			t.Errorf("%s: mode %v, want %v", name, fi.Mode().Perm(), perms[i])
		}
	}
	if err := s2.Flush(ctx, l2.peer); err != nil || len(onRoot.put()) != 5 {
		t.Errorf("a second flush: %v, %d puts in all", err, len(onRoot.put()))
	}
	// The confirmed files' content left the head's disk.
	if _, names := dirBytes(t, filepath.Join(dir, "spool", "5.2")); !slices.Equal(names, []string{"manifest"}) {
		t.Errorf("the flushed spool holds %q", names)
	}
	if err := s2.Remove(); err != nil {
		t.Fatal(err)
	}
	if keys, err := c2.Spools(); err != nil || len(keys) != 0 {
		t.Errorf("spools after Remove: %v, %v", keys, err)
	}
	if err := s2.Root(l2.peer).Put(ctx, "late", 0o644, strings.NewReader("x")); err == nil {
		t.Error("a removed spool took a file")
	}
}

// TestSpoolRestart: a spool's record cut off by a crash is dropped with
// the content it would have named; what was recorded is kept, and the
// spool takes new files after it.
func TestSpoolRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	c := openCache(t, dir, 1<<20)
	s, err := c.Spool(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := s.Root(nil).Put(ctx, n, 0o644, strings.NewReader("content of "+n)); err != nil {
			t.Fatal(err)
		}
	}
	// A crash while "c" was recorded: its content renamed into place,
	// its manifest line half written; and a file being written.
	sd := filepath.Join(dir, "spool", "1.0")
	writeFile(t, sd, "f3", []byte("content of c"))
	writeFile(t, sd, "tmp-99", []byte("partial"))
	f, err := os.OpenFile(filepath.Join(sd, "manifest"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"put":3,"na`)
	f.Close()

	c2 := openCache(t, dir, 1<<20)
	if _, err := c2.Spool(-1, 0); err == nil {
		t.Error("a spool of job -1 was made")
	}
	s2, err := c2.Spool(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if s2.Pending() != 2 {
		t.Fatalf("pending %d after the crash, want 2", s2.Pending())
	}
	if _, names := dirBytes(t, sd); !slices.Equal(names, []string{"f1", "f2", "manifest"}) {
		t.Errorf("the spool holds %q after the restart", names)
	}
	if err := s2.Root(nil).Put(ctx, "d", 0o644, strings.NewReader("content of d")); err != nil {
		t.Fatal(err)
	}
	c3 := openCache(t, dir, 1<<20)
	s3, err := c3.Spool(1, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := newCounting(task.DirRoot{Dir: t.TempDir()})
	if err := s3.Flush(ctx, got); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.put(), []string{"a", "b", "d"}) {
		t.Errorf("flushed %q, want a, b, d", got.put())
	}
}
