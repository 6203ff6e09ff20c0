package protocol_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"testing"
	"time"

	"orrery/protocol"
)

// fakeRoot is the root's end of a connection to a Peer.
type fakeRoot struct {
	conn    *protocol.Conn
	peer    *protocol.Peer
	handled chan *protocol.Msg // messages the Peer's handler got
	runErr  chan error
}

// newFakeRoot connects a Peer to a fake root over net.Pipe and runs the
// Peer. The test's cleanup closes both ends and waits (a little) for Run.
func newFakeRoot(t *testing.T) *fakeRoot {
	t.Helper()
	a, b := net.Pipe()
	r := &fakeRoot{
		conn:    protocol.NewConn(b),
		peer:    protocol.NewPeer(protocol.NewConn(a)),
		handled: make(chan *protocol.Msg, 16),
		runErr:  make(chan error, 1),
	}
	go func() {
		r.runErr <- r.peer.Run(func(m *protocol.Msg) {
			select {
			case r.handled <- m:
			default:
			}
		})
	}()
	t.Cleanup(func() {
		a.Close()
		b.Close()
		select {
		case <-r.runErr:
		case <-time.After(2 * time.Second):
			t.Errorf("Peer.Run did not return after the connection closed")
		}
	})
	return r
}

// recv reads the next message from the Peer.
func (r *fakeRoot) recv(t *testing.T) *protocol.Msg {
	t.Helper()
	m, err := r.conn.Recv()
	if err != nil {
		t.Errorf("root recv: %v", err)
		return nil
	}
	return m
}

// stream answers the next open with n data frames of size bytes each
// (byte i of the file is byte(i%251)), closing flooded once more frames
// have crossed the wire than the Peer can queue for one request, and then
// sends a cancel. It returns when done or when the connection ends.
func (r *fakeRoot) stream(t *testing.T, n, size int, flooded chan<- struct{}) {
	m := r.recv(t)
	if m == nil {
		return
	}
	if m.Type != protocol.TypeOpen {
		t.Errorf("root got %q, want open", m.Type)
		return
	}
	for i := range n {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte((i*size + j) % 251)
		}
		if r.conn.Send(&protocol.Msg{Type: protocol.TypeData, ID: m.ID, Data: data, EOF: i == n-1}) != nil {
			return
		}
		// Frame 0 answers Open, frames 1..64 fill the request's queue:
		// once frame 65 has crossed, the Peer's reader is handing it over.
		if i == 65 && flooded != nil {
			close(flooded)
		}
	}
	r.conn.Send(&protocol.Msg{Type: protocol.TypeCancel, Job: 7, Attempt: 1})
}

// handledCancel waits up to 2 s for the Peer's handler to get the cancel.
func (r *fakeRoot) handledCancel(t *testing.T) {
	t.Helper()
	select {
	case m := <-r.handled:
		if m.Type != protocol.TypeCancel || m.Job != 7 {
			t.Fatalf("handler got %+v, want the cancel", m)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the cancel sent after the file did not reach the handler within 2 s: the reader is stuck")
	}
}

// TestAbandonedOpen: a 10 MiB file streams to an Open whose reader takes
// one chunk and goes away; the connection must go on carrying messages.
func TestAbandonedOpen(t *testing.T) {
	const frames, size = 80, 128 << 10 // 10 MiB
	tests := []struct {
		name    string
		abandon func(f io.ReadCloser, cancel context.CancelFunc) error // returns Read's error, if it reads
		readErr error
	}{
		{"closed", func(f io.ReadCloser, _ context.CancelFunc) error { return f.Close() }, nil},
		{"cancelled", func(_ io.ReadCloser, cancel context.CancelFunc) error { cancel(); return nil }, nil},
		{"cancelled while reading", func(f io.ReadCloser, cancel context.CancelFunc) error {
			cancel()
			_, err := f.Read(make([]byte, 10))
			return err
		}, context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := newFakeRoot(t)
			flooded := make(chan struct{})
			go root.stream(t, frames, size, flooded)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			f, err := root.peer.Open(ctx, "big.dat")
			if err != nil {
				t.Fatalf("open: %v", err)
			}
			buf := make([]byte, size)
			if n, err := io.ReadFull(f, buf); err != nil || n != size {
				t.Fatalf("read one chunk: %d bytes, %v", n, err)
			}
			select {
			case <-flooded:
			case <-time.After(5 * time.Second):
				t.Fatal("the root could not send 66 frames")
			}
			time.Sleep(50 * time.Millisecond) // let the reader reach the full queue
			if err := tt.abandon(f, cancel); !errors.Is(err, tt.readErr) {
				t.Errorf("read after abandoning: %v, want %v", err, tt.readErr)
			}
			root.handledCancel(t)
			f.Close()
			if _, err := f.Read(buf); err == nil {
				t.Errorf("read after close succeeded")
			}
		})
	}
}

// TestOpenReadsWholeFile: a reader that keeps reading gets every byte of
// a file of many frames, and messages after it still arrive.
func TestOpenReadsWholeFile(t *testing.T) {
	const frames, size = 80, 128 << 10
	root := newFakeRoot(t)
	go root.stream(t, frames, size, nil)
	f, err := root.peer.Open(context.Background(), "big.dat")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer f.Close()
	got, err := io.ReadAll(iotest{f, time.Millisecond}) // a slow reader
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if len(got) != frames*size {
		t.Fatalf("read %d bytes, want %d", len(got), frames*size)
	}
	for i, b := range got {
		if b != byte(i%251) {
			t.Fatalf("byte %d is %d, want %d", i, b, byte(i%251))
		}
	}
	root.handledCancel(t)
}

// iotest is a reader that sleeps before each read.
type iotest struct {
	r io.Reader
	d time.Duration
}

func (r iotest) Read(b []byte) (int, error) {
	time.Sleep(r.d)
	return r.r.Read(b)
}

func TestReadAfterClose(t *testing.T) {
	root := newFakeRoot(t)
	go func() {
		m := root.recv(t)
		if m != nil {
			root.conn.Send(&protocol.Msg{Type: protocol.TypeData, ID: m.ID, Data: []byte("abc")})
		}
	}()
	f, err := root.peer.Open(context.Background(), "a")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := f.Read(make([]byte, 10)); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("read after close: %v, want fs.ErrClosed", err)
	}
}

// TestCloseStopsRead: Close from another goroutine ends a Read that waits
// for the next frame.
func TestCloseStopsRead(t *testing.T) {
	root := newFakeRoot(t)
	go func() {
		m := root.recv(t)
		if m != nil {
			root.conn.Send(&protocol.Msg{Type: protocol.TypeData, ID: m.ID, Data: []byte("abc")})
		}
	}()
	f, err := root.peer.Open(context.Background(), "a")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	f.Read(make([]byte, 3))
	done := make(chan error, 1)
	go func() {
		_, err := f.Read(make([]byte, 3))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	f.Close()
	select {
	case err := <-done:
		if !errors.Is(err, fs.ErrClosed) {
			t.Errorf("read during close: %v, want fs.ErrClosed", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("close did not end a waiting read")
	}
}

// TestOpenLost: a read in progress when the connection ends fails with
// ErrLost, and later requests fail at once.
func TestOpenLost(t *testing.T) {
	root := newFakeRoot(t)
	go func() {
		m := root.recv(t)
		if m != nil {
			root.conn.Send(&protocol.Msg{Type: protocol.TypeData, ID: m.ID, Data: []byte("abc")})
			root.conn.Close()
		}
	}()
	f, err := root.peer.Open(context.Background(), "a")
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	defer f.Close()
	if _, err := io.ReadAll(f); !errors.Is(err, protocol.ErrLost) {
		t.Errorf("read: %v, want ErrLost", err)
	}
	if _, err := root.peer.Stat(context.Background(), "a"); !errors.Is(err, protocol.ErrLost) {
		t.Errorf("stat after the loss: %v, want ErrLost", err)
	}
}

func TestOpenNotExist(t *testing.T) {
	root := newFakeRoot(t)
	go func() {
		if m := root.recv(t); m != nil {
			root.conn.Send(&protocol.Msg{Type: protocol.TypeReply, ID: m.ID, Path: m.Path, Error: "no such file", NotExist: true})
		}
	}()
	if _, err := root.peer.Open(context.Background(), "a"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("open: %v, want fs.ErrNotExist", err)
	}
}

// TestCallCancelled: a Stat whose context ends returns at once, and its
// reply, arriving later, is dropped without holding up the reader.
func TestCallCancelled(t *testing.T) {
	root := newFakeRoot(t)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan *protocol.Msg, 1)
	go func() { got <- root.recv(t) }()
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := root.peer.Stat(ctx, "a"); !errors.Is(err, context.Canceled) {
		t.Errorf("stat: %v, want context.Canceled", err)
	}
	m := <-got
	if m == nil {
		return
	}
	root.conn.Send(&protocol.Msg{Type: protocol.TypeReply, ID: m.ID, Info: &protocol.FileInfo{FName: "a"}})
	root.conn.Send(&protocol.Msg{Type: protocol.TypeCancel, Job: 7})
	root.handledCancel(t)
}

func TestPut(t *testing.T) {
	root := newFakeRoot(t)
	content := bytes.Repeat([]byte("0123456789abcdef"), protocol.ChunkSize/8) // two chunks
	got := make(chan []byte, 1)
	go func() {
		var b []byte
		for {
			m := root.recv(t)
			if m == nil {
				got <- nil
				return
			}
			switch m.Type {
			case protocol.TypeCreate:
				if m.Path != "out/r.dat" || m.Mode != 0o640 {
					t.Errorf("create %q %o", m.Path, m.Mode)
				}
			case protocol.TypeData:
				b = append(b, m.Data...)
			case protocol.TypeClose:
				root.conn.Send(&protocol.Msg{Type: protocol.TypeReply, ID: m.ID})
				got <- b
				return
			}
		}
	}()
	if err := root.peer.Put(context.Background(), "out/r.dat", 0o640, bytes.NewReader(content)); err != nil {
		t.Fatalf("put: %v", err)
	}
	if b := <-got; !bytes.Equal(b, content) {
		t.Errorf("the root got %d bytes, want %d", len(b), len(content))
	}
}
