package headcache_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"orrery/headcache"
	"orrery/protocol"
	"orrery/task"
)

// TestConcurrentOpensFetchOnce: 50 nodes opening one root file at once,
// over a real connection to the root, fetch it once; all read it whole.
func TestConcurrentOpensFetchOnce(t *testing.T) {
	rootDir := t.TempDir()
	data := content(1, 3*protocol.ChunkSize+1000)
	writeFile(t, rootDir, "in/common.dat", data)
	l := connect(t, task.ConfinedRoot{Dir: rootDir})
	up := newCounting(l.peer)
	// The one fetch waits until all 50 opens have asked upstream for the
	// file's description, so all 50 are under way while it runs.
	up.gate = make(chan struct{})
	var once sync.Once
	up.onStat = func(n int) {
		if n >= 50 {
			once.Do(func() { close(up.gate) })
		}
	}
	c := openCache(t, t.TempDir(), 64<<20)
	root := c.Root(up)

	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range errs {
		wg.Go(func() {
			rc, err := root.Open(context.Background(), "in/common.dat")
			if err != nil {
				errs[i] = err
				return
			}
			defer rc.Close()
			got, err := io.ReadAll(rc)
			if err == nil && !bytes.Equal(got, data) {
				err = fmt.Errorf("read %d bytes that are not the file's", len(got))
			}
			errs[i] = err
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
	}
	if n := up.opened("in/common.dat"); n != 1 {
		t.Errorf("50 concurrent opens fetched the file %d times, want 1", n)
	}
	s := c.Stats()
	want := headcache.Stats{Hits: 49, Misses: 1, BytesFetched: int64(len(data)), BytesServed: 50 * int64(len(data)), Size: int64(len(data))}
	if s != want {
		t.Errorf("stats %+v, want %+v", s, want)
	}
}

// TestChangedUpstreamRefetched: a cached file changed on the root has a
// new hash and is fetched again; the unchanged version is served again
// without a fetch.
func TestChangedUpstreamRefetched(t *testing.T) {
	rootDir := t.TempDir()
	v1, v2 := content(2, 100_000), content(3, 100_000)
	writeFile(t, rootDir, "in.dat", v1)
	up := newCounting(connect(t, task.ConfinedRoot{Dir: rootDir}).peer)
	c := openCache(t, t.TempDir(), 1<<20)
	root := c.Root(up)
	readVia(t, root, "in.dat", v1)
	readVia(t, root, "in.dat", v1)
	if n := up.opened("in.dat"); n != 1 {
		t.Fatalf("two opens of an unchanged file fetched it %d times", n)
	}
	writeFile(t, rootDir, "in.dat", v2) // same size
	readVia(t, root, "in.dat", v2)
	readVia(t, root, "in.dat", v2)
	if n := up.opened("in.dat"); n != 2 {
		t.Errorf("after a change the file was fetched %d times in all, want 2", n)
	}
	if s := c.Stats(); s.Misses != 2 || s.Hits != 2 || s.Size != 200_000 {
		t.Errorf("stats %+v, want 2 misses, 2 hits, both versions cached", s)
	}
}

// TestEviction: cached files never take more than the limit; the least
// recently used goes first; a file being read is never evicted (a file
// for which there is no room then passes through uncached).
func TestEviction(t *testing.T) {
	rootDir, dir := t.TempDir(), t.TempDir()
	const size, limit = 100_000, 350_000
	files := make([][]byte, 10)
	for i := range files {
		files[i] = content(uint64(10+i), size)
		writeFile(t, rootDir, fmt.Sprintf("f%d", i), files[i])
	}
	up := newCounting(newHashRoot(rootDir))
	c := openCache(t, dir, limit)
	root := c.Root(up)
	check := func(when string) {
		t.Helper()
		s := c.Stats()
		onDisk, _ := dirBytes(t, filepath.Join(dir, "objects"))
		if s.Size > limit || onDisk > limit || onDisk != s.Size {
			t.Fatalf("%s: size %d, %d bytes on disk; limit %d", when, s.Size, onDisk, limit)
		}
	}
	for i := range 3 {
		readVia(t, root, fmt.Sprintf("f%d", i), files[i])
	}
	readVia(t, root, "f0", files[0]) // f0 used last: f1 is the least recently used
	readVia(t, root, "f3", files[3])
	check("after f3")
	readVia(t, root, "f0", files[0])
	if n := up.opened("f0"); n != 1 {
		t.Errorf("f0, recently used, was evicted (fetched %d times)", n)
	}
	readVia(t, root, "f1", files[1])
	if n := up.opened("f1"); n != 2 {
		t.Errorf("f1, least recently used, was not evicted (fetched %d times)", n)
	}
	for i := 4; i < 10; i++ {
		readVia(t, root, fmt.Sprintf("f%d", i), files[i])
		check(fmt.Sprintf("after f%d", i))
	}
	// f7, f8, f9 are cached; hold them open: nothing can be evicted.
	var held []io.ReadCloser
	for i := 7; i < 10; i++ {
		rc, err := root.Open(context.Background(), fmt.Sprintf("f%d", i))
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, rc)
	}
	before := c.Stats()
	readVia(t, root, "f0", files[0]) // no room: passed through
	check("with every cached file open")
	if s := c.Stats(); s.Uncached != before.Uncached+1 || s.Evictions != before.Evictions {
		t.Errorf("an open with every cached file held: %+v, before %+v; want it passed through, nothing evicted", s, before)
	}
	for i, rc := range held {
		got, err := io.ReadAll(rc)
		if err != nil || !bytes.Equal(got, files[7+i]) {
			t.Errorf("held f%d: %d bytes, %v", 7+i, len(got), err)
		}
		rc.Close()
	}
	readVia(t, root, "f0", files[0]) // room again
	check("at the end")
	if s := c.Stats(); s.Evictions == 0 || s.Uncached != before.Uncached+1 {
		t.Errorf("stats %+v", s)
	}
}

// TestCorruptUpstream: bytes that do not match the hash the root gave
// are an error (a system failure, not the job's) and nothing is cached.
func TestCorruptUpstream(t *testing.T) {
	rootDir, dir := t.TempDir(), t.TempDir()
	data := content(4, 50_000)
	writeFile(t, rootDir, "in.dat", data)
	up := newHashRoot(rootDir)
	c := openCache(t, dir, 1<<20)
	root := c.Root(up)
	up.lie["in.dat"] = sumHex([]byte("other content"))
	_, err := root.Open(context.Background(), "in.dat")
	if !errors.Is(err, headcache.ErrCorrupt) || !errors.Is(err, task.ErrRootSystem) || !task.IsRootSystemError(err) {
		t.Fatalf("open with a wrong hash: %v; want ErrCorrupt, a system failure", err)
	}
	if !strings.Contains(err.Error(), "in.dat") {
		t.Errorf("the error does not name the file: %v", err)
	}
	delete(up.lie, "in.dat")
	up.short["in.dat"] = 1000 // the link cut the file short
	if _, err := root.Open(context.Background(), "in.dat"); !errors.Is(err, headcache.ErrCorrupt) {
		t.Fatalf("open of a truncated file: %v; want ErrCorrupt", err)
	}
	for _, sub := range []string{"objects", "tmp"} {
		if n, names := dirBytes(t, filepath.Join(dir, sub)); len(names) != 0 {
			t.Errorf("%s holds %q (%d bytes) after corrupt fetches", sub, names, n)
		}
	}
	if s := c.Stats(); s.Size != 0 {
		t.Errorf("size %d after corrupt fetches", s.Size)
	}
	delete(up.short, "in.dat")
	readVia(t, root, "in.dat", data)
}

// TestPassThrough: a file whose description has no hash is read from
// upstream uncached; Put on the cache's Root is refused.
func TestPassThrough(t *testing.T) {
	rootDir, dir := t.TempDir(), t.TempDir()
	data := content(5, 10_000)
	writeFile(t, rootDir, "in.dat", data)
	up := newCounting(task.DirRoot{Dir: rootDir}) // os.FileInfo: no hash
	c := openCache(t, dir, 1<<20)
	root := c.Root(up)
	readVia(t, root, "in.dat", data)
	readVia(t, root, "in.dat", data)
	if n := up.opened("in.dat"); n != 2 {
		t.Errorf("a file without a hash was opened upstream %d times for 2 opens", n)
	}
	if s := c.Stats(); s.Uncached != 2 || s.Size != 0 || s.BytesFetched != 20_000 || s.BytesServed != 20_000 {
		t.Errorf("stats %+v", s)
	}
	if err := root.Put(context.Background(), "out.txt", 0o644, strings.NewReader("x")); err == nil {
		t.Error("Put on the cache's Root was accepted")
	}
	if _, err := os.Stat(filepath.Join(rootDir, "out.txt")); err == nil {
		t.Error("Put on the cache's Root wrote the root")
	}
}

// TestRestartRescans: a new Cache on the directory of an old one serves
// its files without fetching them, fetches again one damaged meanwhile,
// and drops files that were being fetched.
func TestRestartRescans(t *testing.T) {
	rootDir, dir := t.TempDir(), t.TempDir()
	a, b := content(6, 30_000), content(7, 40_000)
	writeFile(t, rootDir, "a", a)
	writeFile(t, rootDir, "b", b)
	up := newCounting(newHashRoot(rootDir))
	c1 := openCache(t, dir, 1<<20)
	readVia(t, c1.Root(up), "a", a)
	readVia(t, c1.Root(up), "b", b)

	// While the head is down: a fetch left half done, b damaged on disk.
	writeFile(t, filepath.Join(dir, "tmp"), "fetch-123", []byte("partial"))
	damaged := bytes.Clone(b)
	damaged[0] ^= 0xff
	writeFile(t, filepath.Join(dir, "objects"), sumHex(b), damaged)

	c2 := openCache(t, dir, 1<<20)
	if s := c2.Stats(); s.Size != 70_000 {
		t.Errorf("the restarted cache counts %d bytes, want 70000", s.Size)
	}
	if _, names := dirBytes(t, filepath.Join(dir, "tmp")); len(names) != 0 {
		t.Errorf("tmp holds %q after the restart", names)
	}
	readVia(t, c2.Root(up), "a", a)
	readVia(t, c2.Root(up), "b", b)
	if na, nb := up.opened("a"), up.opened("b"); na != 1 || nb != 2 {
		t.Errorf("after the restart a was fetched %d times (want 1), the damaged b %d (want 2)", na, nb)
	}
	if s := c2.Stats(); s.Hits != 1 || s.Misses != 1 || s.Size != 70_000 {
		t.Errorf("stats %+v", s)
	}
}

// TestThroughHead: root → head → node and back over two real
// connections: the node's stat carries the root's hash through the head,
// its reads come from the head's cache, its results wait in the spool
// until a flush puts them on the root.
func TestThroughHead(t *testing.T) {
	rootDir := t.TempDir()
	data := content(8, 2*protocol.ChunkSize+5)
	writeFile(t, rootDir, "in/data.bin", data)
	toRoot := connect(t, task.ConfinedRoot{Dir: rootDir})
	up := newCounting(toRoot.peer)
	c := openCache(t, t.TempDir(), 1<<20)
	s, err := c.Spool(7, 1)
	if err != nil {
		t.Fatal(err)
	}
	node := connect(t, s.Root(up)).peer // the head's RootServer serves its node
	ctx := context.Background()

	fi, err := node.Stat(ctx, "in/data.bin")
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.(*protocol.FileInfo).SHA256; got != sumHex(data) {
		t.Errorf("the node's stat through the head: SHA256 %q, want %q", got, sumHex(data))
	}
	readVia(t, node, "in/data.bin", data)
	rc, err := node.OpenAt(ctx, "in/data.bin", protocol.ChunkSize+3)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(rest, data[protocol.ChunkSize+3:]) {
		t.Errorf("OpenAt through the head: %d bytes, %v", len(rest), err)
	}
	if n := up.opened("in/data.bin"); n != 1 {
		t.Errorf("two node reads fetched the file %d times from the root", n)
	}

	result := []byte("result of job 7\n")
	if err := node.Put(ctx, "out/r7.txt", 0o640, bytes.NewReader(result)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(rootDir, "out/r7.txt")); err == nil {
		t.Fatal("the result reached the root before the flush")
	}
	if s.Pending() != 1 {
		t.Errorf("pending %d, want 1", s.Pending())
	}
	if err := s.Flush(ctx, toRoot.peer); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(rootDir, "out/r7.txt"))
	if err != nil || !bytes.Equal(got, result) {
		t.Fatalf("the root holds %q, %v", got, err)
	}
	if fi, _ := os.Stat(filepath.Join(rootDir, "out/r7.txt")); fi.Mode().Perm() != 0o640 {
		t.Errorf("the result's mode on the root is %v, want 0640", fi.Mode().Perm())
	}
	if s.Pending() != 0 {
		t.Errorf("pending %d after the flush", s.Pending())
	}
}
