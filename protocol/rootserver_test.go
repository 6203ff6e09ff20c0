package protocol_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/task"
)

// testRoot is a DirRoot that refuses "secret*" (as GuardedRoot does),
// fails "full*" as a full disk would, and holds an Open of "held*" until
// release is closed.
type testRoot struct {
	task.DirRoot
	opened  chan string
	release chan struct{}
}

func (r *testRoot) fault(name string) error {
	switch {
	case strings.HasPrefix(name, "secret"):
		return fmt.Errorf("%s: %w", name, task.ErrDenied)
	case strings.HasPrefix(name, "full"):
		return &fs.PathError{Op: "write", Path: name, Err: syscall.ENOSPC}
	}
	return nil
}

func (r *testRoot) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := r.fault(name); err != nil {
		return nil, err
	}
	if strings.HasPrefix(name, "held") {
		r.opened <- name
		<-r.release
	}
	return r.DirRoot.Open(ctx, name)
}

func (r *testRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	if err := r.fault(name); err != nil {
		return nil, err
	}
	return r.DirRoot.Stat(ctx, name)
}

func (r *testRoot) Put(ctx context.Context, name string, perm fs.FileMode, rd io.Reader) error {
	if err := r.fault(name); err != nil {
		io.Copy(io.Discard, rd)
		return err
	}
	return r.DirRoot.Put(ctx, name, perm, rd)
}

// served is a RootServer on one end of a net.Pipe. Either a Peer is on
// the other end, and the root's reader hands every message to Handle; or
// (raw) the test calls Handle and reads what the root sent from replies.
type served struct {
	root    *testRoot
	dir     string
	peer    *protocol.Peer     // the node's end, or nil
	replies chan *protocol.Msg // without a Peer: what the root sent
	conn    *protocol.Conn     // the root's end
	rs      *protocol.RootServer
}

func serveRoot(t *testing.T, max int, raw bool) *served {
	t.Helper()
	dir := t.TempDir()
	a, b := net.Pipe()
	s := &served{
		root:    &testRoot{DirRoot: task.DirRoot{Dir: dir}, opened: make(chan string, 8), release: make(chan struct{})},
		dir:     dir,
		conn:    protocol.NewConn(b),
		replies: make(chan *protocol.Msg, 64),
	}
	s.rs = protocol.NewRootServer(context.Background(), s.conn, s.root, max)
	if raw {
		node := protocol.NewConn(a)
		go func() {
			defer close(s.replies)
			for {
				m, err := node.Recv()
				if err != nil {
					return
				}
				s.replies <- m
			}
		}()
	} else {
		s.peer = protocol.NewPeer(protocol.NewConn(a))
		go s.peer.Run(func(*protocol.Msg) {})
		go func() {
			for {
				m, err := s.conn.Recv()
				if err != nil {
					return
				}
				if s.rs.Handle(m) != nil {
					return
				}
			}
		}()
	}
	t.Cleanup(func() {
		select {
		case <-s.root.release:
		default:
			close(s.root.release)
		}
		a.Close()
		b.Close()
		s.rs.Close()
	})
	return s
}

// TestRootServerStaging: a file put through a Peer lands on the root
// whole, and Stat, Glob, Open and OpenAt give it back, over several data
// frames.
func TestRootServerStaging(t *testing.T) {
	s := serveRoot(t, 2, false)
	ctx := context.Background()
	want := make([]byte, 2*protocol.ChunkSize+123)
	for i := range want {
		want[i] = byte(i % 251)
	}
	if err := s.peer.Put(ctx, "out/a.bin", 0o751, bytes.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(s.dir, "out", "a.bin")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the root holds %d bytes (%v), want the %d put", len(got), err, len(want))
	}
	fi, err := s.peer.Stat(ctx, "out/a.bin")
	if err != nil || fi.Size() != int64(len(want)) || fi.Mode().Perm() != 0o751 || fi.Name() != "a.bin" {
		t.Fatalf("Stat: %v %v", fi, err)
	}
	if paths, err := s.peer.Glob(ctx, "out/*.bin"); err != nil || len(paths) != 1 || paths[0] != "out/a.bin" {
		t.Errorf("Glob: %q, %v", paths, err)
	}
	for _, off := range []int64{0, protocol.ChunkSize + 7} {
		f, err := s.peer.OpenAt(ctx, "out/a.bin", off)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(f)
		f.Close()
		if err != nil || !bytes.Equal(got, want[off:]) {
			t.Errorf("OpenAt %d: %d bytes, %v; want the %d from there", off, len(got), err, len(want)-int(off))
		}
	}
}

// TestRootServerReplyErrors: each way a request fails on the root reaches
// the node as itself: a missing file as fs.ErrNotExist, a refused path
// as Denied, a full disk as System, and a Put whose source fails leaves
// no file.
func TestRootServerReplyErrors(t *testing.T) {
	s := serveRoot(t, 2, false)
	ctx := context.Background()
	if _, err := s.peer.Open(ctx, "missing.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open of a missing file: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.peer.Stat(ctx, "missing.txt"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing file: %v, want fs.ErrNotExist", err)
	}
	var re *protocol.ReplyError
	if _, err := s.peer.Open(ctx, "secret.txt"); !errors.As(err, &re) || !re.Denied || re.System || re.Path != "secret.txt" {
		t.Errorf("Open of a refused path: %#v, want a ReplyError, Denied", err)
	}
	err := s.peer.Put(ctx, "full.txt", 0o644, strings.NewReader("x"))
	if !errors.As(err, &re) || !re.System || re.Denied || !strings.Contains(re.Msg, "no space") {
		t.Errorf("Put on a full disk: %#v, want a ReplyError, System", err)
	}
	err = s.peer.Put(ctx, "half.txt", 0o644, io.MultiReader(strings.NewReader("part"), iotestErr{}))
	if err == nil {
		t.Errorf("Put from a failing reader: no error")
	}
	if _, err := os.Stat(filepath.Join(s.dir, "half.txt")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a Put that failed left %s (%v)", "half.txt", err)
	}
	// The connection still serves.
	if err := s.peer.Put(ctx, "ok.txt", 0o644, strings.NewReader("fine")); err != nil {
		t.Errorf("Put after the failures: %v", err)
	}
}

type iotestErr struct{}

func (iotestErr) Read([]byte) (int, error) { return 0, errors.New("the node's file broke") }

// TestRootServerBreaches: a request without an ID, a create whose ID is
// in use and a message that is no staging request break the protocol.
func TestRootServerBreaches(t *testing.T) {
	s := serveRoot(t, 1, true)
	for _, m := range []*protocol.Msg{
		{Type: protocol.TypeOpen, Path: "a"},
		{Type: protocol.TypeCreate, Path: "a"},
		{Type: protocol.TypeHeartbeat},
	} {
		if err := s.rs.Handle(m); err == nil {
			t.Errorf("Handle(%+v): no error", m)
		}
	}
	if err := s.rs.Handle(&protocol.Msg{Type: protocol.TypeCreate, ID: 5, Path: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := s.rs.Handle(&protocol.Msg{Type: protocol.TypeCreate, ID: 5, Path: "b"}); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("a second create with ID 5: %v, want the ID in use", err)
	}
	// Data and close for an ID with no create are dropped.
	if err := s.rs.Handle(&protocol.Msg{Type: protocol.TypeData, ID: 99, Data: []byte("x")}); err != nil {
		t.Errorf("data for no create: %v", err)
	}
}

// TestRootServerLimits: with max 1, a second read waits for the first
// (Handle holds the reader: back-pressure), and beyond 4 files being
// written a create is answered at once as the system's failure.
func TestRootServerLimits(t *testing.T) {
	s := serveRoot(t, 1, true)
	os.WriteFile(filepath.Join(s.dir, "held.txt"), []byte("h"), 0o644)
	if err := s.rs.Handle(&protocol.Msg{Type: protocol.TypeOpen, ID: 1, Path: "held.txt"}); err != nil {
		t.Fatal(err)
	}
	<-s.root.opened
	second := make(chan error, 1)
	go func() { second <- s.rs.Handle(&protocol.Msg{Type: protocol.TypeStat, ID: 2, Path: "held.txt"}) }()
	select {
	case err := <-second:
		t.Fatalf("a second read was taken while the one slot is busy (%v)", err)
	case <-time.After(200 * time.Millisecond):
	}
	// Writes have their own slots.
	for id := uint64(10); id < 14; id++ {
		if err := s.rs.Handle(&protocol.Msg{Type: protocol.TypeCreate, ID: id, Path: fmt.Sprintf("w%d", id), Mode: 0o644}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.rs.Handle(&protocol.Msg{Type: protocol.TypeCreate, ID: 14, Path: "w14"}); err != nil {
		t.Fatal(err)
	}
	close(s.root.release)
	if err := <-second; err != nil {
		t.Errorf("the second read: %v", err)
	}
	var refused *protocol.Msg
	for m := range s.replies {
		if m.Type == protocol.TypeReply && m.ID == 14 {
			refused = m
			break
		}
	}
	if refused == nil || !refused.System || !strings.Contains(refused.Error, "writing 4 files") {
		t.Errorf("the fifth create: %+v, want a system failure at once", refused)
	}
}
