package headcache_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"

	"orrery/headcache"
	"orrery/protocol"
	"orrery/task"
)

// link is a real protocol connection over a net.Pipe: a RootServer on
// one end serving a root, a Peer (the head's upstream) on the other.
type link struct {
	peer *protocol.Peer
	cut  func() // closes both ends: the link is lost
}

func connect(t *testing.T, root task.Root) *link {
	t.Helper()
	a, b := net.Pipe()
	conn := protocol.NewConn(b)
	rs := protocol.NewRootServer(context.Background(), conn, root, 64)
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
	cut := func() {
		a.Close()
		b.Close()
	}
	t.Cleanup(func() {
		cut()
		rs.Close()
	})
	return &link{peer: peer, cut: cut}
}

// counting wraps a Root and counts what reaches it: Stats, Opens by
// name, and successful Puts by name in order. When gate is set, every
// Open waits for it to be closed.
type counting struct {
	task.Root
	gate chan struct{}

	mu     sync.Mutex
	stats  int
	opens  map[string]int
	puts   []string
	onStat func(n int) // called with the count after each Stat
}

func newCounting(r task.Root) *counting { return &counting{Root: r, opens: map[string]int{}} }

func (c *counting) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	fi, err := c.Root.Stat(ctx, name)
	c.mu.Lock()
	c.stats++
	n, f := c.stats, c.onStat
	c.mu.Unlock()
	if f != nil {
		f(n)
	}
	return fi, err
}

func (c *counting) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	c.mu.Lock()
	c.opens[name]++
	c.mu.Unlock()
	if c.gate != nil {
		select {
		case <-c.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return c.Root.Open(ctx, name)
}

func (c *counting) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error {
	err := c.Root.Put(ctx, name, perm, r)
	if err == nil {
		c.mu.Lock()
		c.puts = append(c.puts, name)
		c.mu.Unlock()
	}
	return err
}

func (c *counting) opened(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.opens[name]
}

func (c *counting) put() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.puts)
}

// hashRoot is an upstream without a connection: a DirRoot whose Stat
// answers as a protocol.Peer does, with the SHA-256 of the file (or the
// one in lie, when set for the name); Open of a name in short gives only
// that many bytes.
type hashRoot struct {
	task.DirRoot
	mu    sync.Mutex
	lie   map[string]string
	short map[string]int64
}

func newHashRoot(dir string) *hashRoot {
	return &hashRoot{DirRoot: task.DirRoot{Dir: dir}, lie: map[string]string{}, short: map[string]int64{}}
}

func (r *hashRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	fi, err := r.DirRoot.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	info := &protocol.FileInfo{FName: fi.Name(), FSize: fi.Size(), FMode: uint32(fi.Mode()), FModTime: fi.ModTime()}
	if fi.Mode().IsRegular() {
		data, err := os.ReadFile(filepath.Join(r.Dir, name))
		if err != nil {
			return nil, err
		}
		info.SHA256 = sumHex(data)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if s, ok := r.lie[name]; ok {
		info.SHA256 = s
	}
	return info, nil
}

func (r *hashRoot) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := r.DirRoot.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	n, ok := r.short[name]
	r.mu.Unlock()
	if ok {
		return struct {
			io.Reader
			io.Closer
		}{io.LimitReader(rc, n), rc}, nil
	}
	return rc, nil
}

func sumHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// content returns n bytes of seeded noise.
func content(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func writeFile(t *testing.T, dir, name string, data []byte) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func openCache(t *testing.T, dir string, limit int64) *headcache.Cache {
	t.Helper()
	c, err := headcache.Open(dir, limit)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// readVia opens name through r and checks it holds want.
func readVia(t *testing.T, r task.Root, name string, want []byte) {
	t.Helper()
	rc, err := r.Open(context.Background(), name)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	defer rc.Close()
	got, err := io.ReadAll(rc)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %s: %d bytes (%v), want %d bytes of its content", name, len(got), err, len(want))
	}
}

// dirBytes returns the bytes of the regular files in dir, and their names.
func dirBytes(t *testing.T, dir string) (int64, []string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	var names []string
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		n += fi.Size()
		names = append(names, e.Name())
	}
	return n, names
}
