package head

import (
	"context"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"orrery/headcache"
	"orrery/protocol"
	"orrery/task"
)

// countingRoot is a root directory that counts the descriptions asked
// of it.
type countingRoot struct {
	task.DirRoot
	stats *atomic.Int64
}

func (r countingRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	r.stats.Add(1)
	return r.DirRoot.Stat(ctx, name)
}

// TestStagingFromWhatWasSeen checks that once the prefetcher has fetched
// a job's input (asking the root), a node's copy of it is served from
// the head's disk with no round trip to the root, and that the
// prefetcher asks the root again for a job handed over later.
func TestStagingFromWhatWasSeen(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var stats atomic.Int64
	a, b := net.Pipe()
	conn := protocol.NewConn(b)
	rs := protocol.NewRootServer(context.Background(), conn, countingRoot{task.DirRoot{Dir: dir}, &stats}, 4)
	peer := protocol.NewPeer(protocol.NewConn(a))
	go peer.Run(func(*protocol.Msg) {})
	go func() {
		for {
			m, err := conn.Recv()
			if err != nil || rs.Handle(m) != nil {
				return
			}
		}
	}()
	t.Cleanup(func() { a.Close(); b.Close(); rs.Close() })
	cache, err := headcache.Open(filepath.Join(t.TempDir(), "cache"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	h := &Head{peer: peer, up: make(chan struct{}), seen: map[string]fs.FileInfo{}, cache: cache}
	read := func(r task.Root) string {
		t.Helper()
		rc, err := r.Open(context.Background(), "in.txt")
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		b, _ := io.ReadAll(rc)
		return string(b)
	}
	// The prefetcher, as a job is handed over: the root describes it.
	if got := read(h.cache.Root(upstream{h: h, fresh: true})); got != "input\n" || stats.Load() != 1 {
		t.Fatalf("prefetch read %q with %d descriptions from the root, want 1", got, stats.Load())
	}
	// A node's copy, with the link up: from what the head saw.
	node := stagingRoot{h}
	if got := read(node); got != "input\n" || stats.Load() != 1 {
		t.Fatalf("a node's copy read %q, and the root was asked %d times, want once in all", got, stats.Load())
	}
	if _, err := node.Stat(context.Background(), "in.txt"); err != nil || stats.Load() != 1 {
		t.Fatalf("a node's stat: %v, the root asked %d times, want once in all", err, stats.Load())
	}
	// A file not seen yet is the root's to describe.
	if _, err := node.Stat(context.Background(), "other.txt"); err == nil || stats.Load() != 2 {
		t.Fatalf("a file not seen: %v, the root asked %d times, want twice in all", err, stats.Load())
	}
	// The next job handed over: the prefetcher asks the root again.
	read(h.cache.Root(upstream{h: h, fresh: true}))
	if stats.Load() != 3 {
		t.Fatalf("the root was asked %d times, want 3: the prefetcher asks it for every job", stats.Load())
	}
	// The input changes on the root, and its old bytes are gone from the
	// head's disk (evicted; here a new cache): a node's copy fetches it
	// by name, finds bytes other than those the head saw described, and
	// asks the root again instead of failing.
	if err := os.WriteFile(filepath.Join(dir, "in.txt"), []byte("changed input\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if h.cache, err = headcache.Open(filepath.Join(t.TempDir(), "cache"), 1<<20); err != nil {
		t.Fatal(err)
	}
	if got := read(node); got != "changed input\n" {
		t.Fatalf("after the input changed, a node's copy read %q", got)
	}
}
