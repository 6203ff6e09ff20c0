package protocol

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"orrery/plan"
	"orrery/task"
)

// hashPeer is a node's Peer connected over a net.Pipe to a RootServer
// that serves root and keeps its sums in sums.
func hashPeer(t *testing.T, root task.Root, sums *sumCache) *Peer {
	t.Helper()
	a, b := net.Pipe()
	conn := NewConn(b)
	rs := NewRootServer(context.Background(), conn, root, 4)
	rs.sums = sums
	peer := NewPeer(NewConn(a))
	go peer.Run(func(*Msg) {})
	go func() {
		for {
			m, err := conn.Recv()
			if err != nil || rs.Handle(m) != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		a.Close()
		b.Close()
		rs.Close()
	})
	return peer
}

// statSum stats name through p and returns the SHA256 of its answer.
func statSum(t *testing.T, p *Peer, name string) string {
	t.Helper()
	fi, err := p.Stat(context.Background(), name)
	if err != nil {
		t.Fatalf("stat %s: %v", name, err)
	}
	return fi.(*FileInfo).SHA256
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func (c *sumCache) counts() (computed, kept int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.computed, c.lru.Len()
}

// countingRoot counts the Opens that reach a Root.
type countingRoot struct {
	task.Root
	opens atomic.Int64
}

func (r *countingRoot) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	r.opens.Add(1)
	return r.Root.Open(ctx, name)
}

// TestStatSHA256: a stat reply carries the SHA-256 of a regular file
// (none for a directory), computed once however many nodes ask.
func TestStatSHA256(t *testing.T) {
	dir := t.TempDir()
	data := make([]byte, 3*ChunkSize+17)
	for i := range data {
		data[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, "in.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	sums := newSumCache(16)
	root := task.ConfinedRoot{Dir: dir}
	var peers []*Peer
	for range 4 {
		peers = append(peers, hashPeer(t, root, sums))
	}
	if got := statSum(t, peers[0], "sub"); got != "" {
		t.Errorf("a directory has SHA256 %q", got)
	}
	var wg sync.WaitGroup
	got := make([]string, 40)
	for i := range got {
		wg.Go(func() {
			fi, err := peers[i%len(peers)].Stat(context.Background(), "./in.bin")
			if err != nil {
				got[i] = err.Error()
				return
			}
			got[i] = fi.(*FileInfo).SHA256
		})
	}
	wg.Wait()
	for i, g := range got {
		if g != hexSum(data) {
			t.Fatalf("stat %d: SHA256 %q, want %q", i, g, hexSum(data))
		}
	}
	if computed, _ := sums.counts(); computed != 1 {
		t.Errorf("40 stats of one file over 4 connections computed its sum %d times, want 1", computed)
	}
}

// TestStatSHA256Changes: a file whose content changes gets a new sum,
// even when its size and modification time are put back, and so does a
// file replaced by another (rename).
func TestStatSHA256Changes(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "in.txt")
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(name, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	sums := newSumCache(16)
	p := hashPeer(t, task.ConfinedRoot{Dir: dir}, sums)
	write("version one")
	if got := statSum(t, p, "in.txt"); got != hexSum([]byte("version one")) {
		t.Fatalf("first version: %q", got)
	}
	write("version two") // same size, same mtime
	if got := statSum(t, p, "in.txt"); got != hexSum([]byte("version two")) {
		t.Fatalf("after a change of content: %q, want the sum of the new content", got)
	}
	tmp := filepath.Join(dir, "new")
	os.WriteFile(tmp, []byte("version three"), 0o644)
	if err := os.Rename(tmp, name); err != nil {
		t.Fatal(err)
	}
	if got := statSum(t, p, "in.txt"); got != hexSum([]byte("version three")) {
		t.Fatalf("after a rename over it: %q", got)
	}
	statSum(t, p, "in.txt")
	if computed, _ := sums.counts(); computed != 3 {
		t.Errorf("computed %d sums for 3 versions, want 3", computed)
	}
}

// TestStatSHA256Denied: no sum is computed for a path the node may not
// read: one outside its grants (the stat itself is refused), one it may
// only stat (a copy destination), one outside the root directory.
func TestStatSHA256Denied(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"input.txt", "secret.txt", "results/out.txt"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, n)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, n), []byte("content of "+n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, err := plan.Parse("t.pln", []byte(`parameter x integer range from 1 to 1;
task main
    copy input.txt node:input.txt
    node:execute cp input.txt out.txt
    copy node:out.txt results/out.txt
endtask
`), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	grants := task.TaskAccess(p.Task(plan.TaskMain), task.Job{Index: 1, Names: []string{"x"}, Values: []string{"1"}})
	inner := &countingRoot{Root: task.ConfinedRoot{Dir: dir}}
	sums := newSumCache(16)
	peer := hashPeer(t, task.GuardedRoot{Root: inner, Allowed: func() *task.Access { return grants }}, sums)
	ctx := context.Background()

	for _, n := range []string{"secret.txt", "../x", "/etc/passwd"} {
		_, err := peer.Stat(ctx, n)
		var re *ReplyError
		if !errors.As(err, &re) || !re.Denied {
			t.Errorf("stat %s: %v, want a refusal", n, err)
		}
	}
	if got := statSum(t, peer, "results/out.txt"); got != "" {
		t.Errorf("a copy destination the node may only stat has SHA256 %q", got)
	}
	if n := inner.opens.Load(); n != 0 {
		t.Errorf("the root opened %d files for stats of paths the node may not read", n)
	}
	if computed, kept := sums.counts(); kept != 0 {
		t.Errorf("%d sums kept (%d computed) for paths the node may not read", kept, computed)
	}
	if got := statSum(t, peer, "input.txt"); got != hexSum([]byte("content of input.txt")) {
		t.Errorf("a granted source: SHA256 %q", got)
	}
}

// TestSumCacheBounded: the cache keeps at most its bound of sums,
// forgetting the least recently used.
func TestSumCacheBounded(t *testing.T) {
	dir := t.TempDir()
	for i := range 10 {
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", i)), []byte(fmt.Sprint("file ", i)), 0o644)
	}
	sums := newSumCache(3)
	p := hashPeer(t, task.ConfinedRoot{Dir: dir}, sums)
	for i := range 10 {
		if got := statSum(t, p, fmt.Sprintf("f%d", i)); got != hexSum(fmt.Append(nil, "file ", i)) {
			t.Fatalf("f%d: %q", i, got)
		}
		if _, kept := sums.counts(); kept > 3 {
			t.Fatalf("after %d files the cache holds %d sums, bound 3", i+1, kept)
		}
	}
	statSum(t, p, "f9") // kept: no new computation
	if computed, _ := sums.counts(); computed != 10 {
		t.Errorf("computed %d, want 10 (f9 is still kept)", computed)
	}
	statSum(t, p, "f0") // forgotten: computed again
	if computed, kept := sums.counts(); computed != 11 || kept != 3 {
		t.Errorf("computed %d, kept %d; want 11 and 3 (f0 was forgotten)", computed, kept)
	}
	if len(sums.byKey) != 3 {
		t.Errorf("index holds %d keys, list 3", len(sums.byKey))
	}
}

var _ fs.FileInfo = (*FileInfo)(nil)

// askingRoot is a Root that says which files it would let a node open.
type askingRoot struct {
	*countingRoot
	readable string
}

func (r askingRoot) CanOpen(name string) bool { return name == r.readable }

// TestStatSHA256Asks: a root that tells what it would open is asked
// before a file is opened for its sum.
func TestStatSHA256Asks(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in"), []byte("in"), 0o644)
	os.WriteFile(filepath.Join(dir, "out"), []byte("out"), 0o644)
	inner := &countingRoot{Root: task.ConfinedRoot{Dir: dir}}
	p := hashPeer(t, askingRoot{countingRoot: inner, readable: "in"}, newSumCache(4))
	if got := statSum(t, p, "out"); got != "" || inner.opens.Load() != 0 {
		t.Errorf("a file the root would not open: SHA256 %q, %d opens", got, inner.opens.Load())
	}
	if got := statSum(t, p, "in"); got != hexSum([]byte("in")) {
		t.Errorf("a file the root would open: SHA256 %q", got)
	}
}
