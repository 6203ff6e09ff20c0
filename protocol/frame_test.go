package protocol

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// byteConn is a connection that reads from a fixed stream and swallows
// writes.
type byteConn struct{ io.Reader }

func (byteConn) Write(p []byte) (int, error) { return len(p), nil }
func (byteConn) Close() error                { return nil }

// bufConn is a connection that writes to, and reads from, one buffer.
type bufConn struct{ bytes.Buffer }

func (*bufConn) Close() error { return nil }

// lens returns a frame's two lengths.
func lens(hl, dl uint32) []byte {
	var b [8]byte
	binary.BigEndian.PutUint32(b[:4], hl)
	binary.BigEndian.PutUint32(b[4:], dl)
	return b[:]
}

// frame returns a frame of head and data, with the lengths they have.
func frame(head string, data []byte) []byte {
	b := lens(uint32(len(head)), uint32(len(data)))
	b = append(b, head...)
	return append(b, data...)
}

// encode returns the frames Send writes for ms.
func encode(t testing.TB, ms ...*Msg) []byte {
	t.Helper()
	var b bufConn
	c := NewConn(&b)
	for _, m := range ms {
		if err := c.Send(m); err != nil {
			t.Fatalf("send %s: %v", m.Type, err)
		}
	}
	return b.Bytes()
}

func TestRoundTrip(t *testing.T) {
	exit := 3
	msgs := []*Msg{
		{Type: TypeHeartbeat, Heartbeat: &Heartbeat{Running: 2, Load: 1.5, Resident: []Resident{{Job: 4, Attempt: 1, Bytes: 1 << 30, Group: 77}}}},
		{Type: TypeData, ID: 9, Data: []byte("hello, root")},
		{Type: TypeData, ID: 9, Data: bytes.Repeat([]byte{0xA5}, ChunkSize), EOF: true},
		{Type: TypeData, ID: 9, EOF: true}, // the end of a file: no data
		{Type: TypeEvent, Event: &Event{Kind: EventEnded, Job: 4, Attempt: 1, Result: &Result{Exit: &exit, Stdout: []byte("out\n"), Wall: time.Second}}},
		{Type: TypeReply, ID: 10, Error: "no such file", NotExist: true, Path: "a/b"},
	}
	var b bufConn
	c := NewConn(&b)
	for _, m := range msgs {
		if err := c.Send(m); err != nil {
			t.Fatalf("send %s: %v", m.Type, err)
		}
	}
	for i, want := range msgs {
		got, err := c.Recv()
		if err != nil {
			t.Fatalf("recv %d: %v", i, err)
		}
		if g, w := encode(t, got), encode(t, want); !bytes.Equal(g, w) {
			t.Errorf("message %d: got %q, want %q", i, g[:min(len(g), 200)], w[:min(len(w), 200)])
		}
		if want.Data == nil && got.Data != nil {
			t.Errorf("message %d: data %q, want none", i, got.Data)
		}
	}
	if _, err := c.Recv(); err != io.EOF {
		t.Errorf("after the last frame: %v, want io.EOF", err)
	}
}

func TestRecvFrames(t *testing.T) {
	truncated := frame(`{"t":"data","id":1}`, []byte("0123456789"))
	tests := []struct {
		name   string
		limits Limits
		in     []byte
		typ    string // the message's type, when it is read
		data   int    // its data length
		err    string // otherwise: the error
		frame  bool   // whether the error wraps ErrFrame
	}{
		{name: "message", in: frame(`{"t":"heartbeat","heartbeat":{"running":1,"load":0.5}}`, nil), typ: TypeHeartbeat},
		{name: "unknown field", in: frame(`{"t":"heartbeat","later":[1,2]}`, nil), typ: TypeHeartbeat},
		{name: "data", in: frame(`{"t":"data","id":3}`, make([]byte, 100)), typ: TypeData, data: 100},
		{name: "data at the limit", in: frame(`{"t":"data","id":3}`, make([]byte, ChunkSize)), typ: TypeData, data: ChunkSize},
		{name: "empty stream", in: nil, err: "EOF"},

		{name: "oversized header", in: lens(64<<20, 0), err: "protocol: bad frame: header of 67108864 bytes exceeds 1048576", frame: true},
		{name: "oversized header and data", in: lens(64<<20, 64<<20), err: "header of 67108864 bytes exceeds 1048576", frame: true},
		{name: "header over the node limits", limits: NodeLimits, in: lens(MaxHeader+1, 0), err: "header of 16777217 bytes exceeds 16777216", frame: true},
		{name: "oversized data", in: lens(20, ChunkSize+1), err: "protocol: bad frame: data of 262145 bytes exceeds 262144", frame: true},
		{name: "largest lengths", in: lens(^uint32(0), ^uint32(0)), err: "header of 4294967295 bytes exceeds", frame: true},
		{name: "data on a non-data message", in: frame(`{"t":"heartbeat"}`, []byte("x")), err: `protocol: bad frame: 1 bytes of data on a "heartbeat" message`, frame: true},
		{name: "data on a reply", in: frame(`{"t":"reply","id":2}`, []byte("x")), err: `data on a "reply" message`, frame: true},

		{name: "truncated lengths", in: lens(10, 0)[:5], err: "protocol: bad frame: truncated frame: unexpected EOF", frame: true},
		{name: "truncated header", in: truncated[:12], err: "truncated frame", frame: true},
		{name: "truncated data", in: truncated[:len(truncated)-1], err: "truncated frame", frame: true},

		{name: "bad JSON", in: frame(`{"t":}`, nil), err: "protocol: bad frame: header: invalid character '}' looking for beginning of value", frame: true},
		{name: "unfinished JSON", in: frame(`{"t":`, nil), err: "protocol: bad frame: header is not a JSON object", frame: true},
		{name: "bad JSON object", in: frame(`{"t" "x"}`, nil), err: "header: invalid character", frame: true},
		{name: "wrong field type", in: frame(`{"t":7}`, nil), err: "header: json: cannot unmarshal", frame: true},
		{name: "empty header", in: frame(``, nil), err: "header is not a JSON object", frame: true},
		{name: "array header", in: frame(`["t"]`, nil), err: "header is not a JSON object", frame: true},
		{name: "null header", in: frame(`null`, nil), err: "header is not a JSON object", frame: true},
		{name: "string header", in: frame(`"t"`, nil), err: "header is not a JSON object", frame: true},
		{name: "trailing object", in: frame(`{"t":"x"}{"t":"y"}`, nil), err: "header: invalid character '{' after top-level value", frame: true},
		{name: "trailing newline", in: frame("{\"t\":\"x\"}\n", nil), err: "header is not a JSON object", frame: true},
		{name: "leading space", in: frame(` {"t":"x"}`, nil), err: "header is not a JSON object", frame: true},

		{name: "hello", limits: HelloLimits, in: frame(`{"t":"hello","hello":{"version":3,"name":"n1","secret":"s"}}`, nil), typ: TypeHello},
		{name: "hello with data", limits: HelloLimits, in: frame(`{"t":"data"}`, []byte("x")), err: "data of 1 bytes exceeds 0", frame: true},
		{name: "hello too large", limits: HelloLimits, in: frame(`{"t":"hello","pad":"`+strings.Repeat("x", 16<<10)+`"}`, nil), err: "header of 16406 bytes exceeds 16384", frame: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			limits := tt.limits
			if limits == (Limits{}) {
				limits = RootLimits
			}
			c := NewConnLimits(byteConn{bytes.NewReader(tt.in)}, limits)
			m, err := c.Recv()
			if tt.err == "" {
				if err != nil {
					t.Fatalf("recv: %v", err)
				}
				if m.Type != tt.typ || len(m.Data) != tt.data {
					t.Fatalf("got a %q message with %d bytes of data, want %q with %d", m.Type, len(m.Data), tt.typ, tt.data)
				}
				if _, err := c.Recv(); err != io.EOF {
					t.Errorf("after the frame: %v, want io.EOF", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("got a %q message, want error %q", m.Type, tt.err)
			}
			if !strings.Contains(err.Error(), tt.err) {
				t.Errorf("error %q, want %q", err, tt.err)
			}
			if errors.Is(err, ErrFrame) != tt.frame {
				t.Errorf("errors.Is(%q, ErrFrame) = %v, want %v", err, !tt.frame, tt.frame)
			}
		})
	}
}

// TestRecvStaysBroken: after a bad frame the stream is out of step, so
// what follows is never read as a frame.
func TestRecvStaysBroken(t *testing.T) {
	in := append(frame(`{"t":"heartbeat"}`, []byte("xy")), frame(`{"t":"heartbeat"}`, nil)...)
	c := NewConn(byteConn{bytes.NewReader(in)})
	_, err := c.Recv()
	if !errors.Is(err, ErrFrame) {
		t.Fatalf("first recv: %v, want ErrFrame", err)
	}
	if _, err2 := c.Recv(); err2 != err {
		t.Errorf("second recv: %v, want %v", err2, err)
	}
}

// TestSetLimits: the root reads the hello under HelloLimits, then
// switches to RootLimits.
func TestSetLimits(t *testing.T) {
	in := append(frame(`{"t":"hello","hello":{"version":3,"name":"n"}}`, nil), frame(`{"t":"data","id":1}`, make([]byte, 1000))...)
	c := NewConnLimits(byteConn{bytes.NewReader(in)}, HelloLimits)
	if m, err := c.Recv(); err != nil || m.Type != TypeHello {
		t.Fatalf("hello: %v, %v", m, err)
	}
	c.SetLimits(RootLimits)
	if m, err := c.Recv(); err != nil || len(m.Data) != 1000 {
		t.Fatalf("data after the hello: %v, %v", m, err)
	}

	c = NewConnLimits(byteConn{bytes.NewReader(in)}, HelloLimits)
	c.Recv()
	if _, err := c.Recv(); !errors.Is(err, ErrFrame) {
		t.Fatalf("data under HelloLimits: %v, want ErrFrame", err)
	}
}

// TestHeaderBuffer: the header buffer is reused between frames, and a
// large header's buffer is not kept.
func TestHeaderBuffer(t *testing.T) {
	small := &Msg{Type: TypeHeartbeat, Heartbeat: &Heartbeat{Running: 1}}
	big := &Msg{Type: TypeWelcome, Welcome: &Welcome{PlanText: strings.Repeat("parameter x integer range from 1 to 9;\n", 10000)}}
	c := NewConnLimits(byteConn{bytes.NewReader(encode(t, small, small, big, small))}, NodeLimits)
	c.Recv()
	first := &c.head[:1][0]
	c.Recv()
	if &c.head[:1][0] != first {
		t.Errorf("the header buffer was not reused")
	}
	m, err := c.Recv()
	if err != nil || len(m.Welcome.PlanText) != 390000 {
		t.Fatalf("welcome: %v", err)
	}
	if c.head != nil {
		t.Errorf("kept a header buffer of %d bytes after a large header", cap(c.head))
	}
	if _, err := c.Recv(); err != nil {
		t.Fatalf("after the welcome: %v", err)
	}
	if cap(c.head) > keepHeader {
		t.Errorf("header buffer of %d bytes", cap(c.head))
	}
}

// TestRecvDoesNotAllocateBeforeData: a peer that claims a large frame
// costs nothing until the bytes arrive.
func TestRecvDoesNotAllocateBeforeData(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		in     []byte
		max    uint64 // bytes allocated at most
	}{
		{"64 MiB + 64 MiB", RootLimits, append(lens(64<<20, 64<<20), make([]byte, 1000)...), 2 << 20},
		{"64 MiB + 64 MiB from the root", NodeLimits, append(lens(64<<20, 64<<20), make([]byte, 1000)...), 2 << 20},
		{"64 MiB of data", RootLimits, append(lens(12, 64<<20), `{"t":"data"}`...), 2 << 20},
		// Within the limits, a claimed header is allocated as it arrives.
		{"claimed 1 MiB header", RootLimits, append(lens(1<<20, 0), `{"t":"heartbeat",`...), 256 << 10},
		{"claimed 16 MiB header", NodeLimits, append(lens(16<<20, 0), `{"t":"welcome",`...), 256 << 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConnLimits(byteConn{bytes.NewReader(tt.in)}, tt.limits)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := c.Recv()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrFrame) {
				t.Errorf("recv: %v, want ErrFrame", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > tt.max {
				t.Errorf("allocated %d bytes, want at most %d", n, tt.max)
			}
		})
	}
}

func TestSendRefuses(t *testing.T) {
	tests := []struct {
		name string
		m    *Msg
		err  string
	}{
		{"data over a chunk", &Msg{Type: TypeData, Data: make([]byte, ChunkSize+1)}, "send data: data of 262145 bytes exceeds 262144"},
		{"data on a non-data message", &Msg{Type: TypeReply, Data: []byte("x")}, "send reply: data on a message that is not data"},
		{"header too large", &Msg{Type: TypeWelcome, Welcome: &Welcome{PlanText: strings.Repeat("x", MaxHeader)}}, "send welcome: header of 16777338 bytes exceeds 16777216"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bufConn
			c := NewConn(&b)
			err := c.Send(tt.m)
			if err == nil || !errors.Is(err, ErrFrame) || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("send: %v, want ErrFrame with %q", err, tt.err)
			}
			if b.Len() != 0 {
				t.Errorf("wrote %d bytes", b.Len())
			}
			// A refused message does not break the connection.
			if err := c.Send(&Msg{Type: TypeHeartbeat}); err != nil {
				t.Errorf("send after a refusal: %v", err)
			}
		})
	}
}

// TestSendTimeout: a Send to a peer that never reads ends at the
// deadline, and every later Send fails at once.
func TestSendTimeout(t *testing.T) {
	a, b := net.Pipe()
	defer b.Close()
	c := NewConn(a)
	c.SetSendTimeout(100 * time.Millisecond)
	start := time.Now()
	err := c.Send(&Msg{Type: TypeHeartbeat})
	if err == nil {
		t.Fatal("send to a peer that never reads succeeded")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("send took %v with a timeout of 100 ms", d)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("send: %v, want a deadline error", err)
	}
	// Later sends fail at once: with an hour's timeout, one that tried
	// to write would still be waiting for the peer.
	c.SetSendTimeout(time.Hour)
	later := make(chan error, 1)
	go func() {
		for range 3 {
			if err2 := c.Send(&Msg{Type: TypeHeartbeat}); err2 != err {
				later <- fmt.Errorf("later send: %v, want %v", err2, err)
				return
			}
		}
		later <- nil
	}()
	select {
	case err2 := <-later:
		if err2 != nil {
			t.Error(err2)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a send after the failure is waiting to write")
	}
	if err := c.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
}

// TestSendTimeoutCleared: the deadline covers one Send only, so a
// connection idle for longer than the timeout still sends.
func TestSendTimeoutCleared(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c, peer := NewConn(a), NewConn(b)
	c.SetSendTimeout(50 * time.Millisecond)
	got := make(chan error, 1)
	go func() {
		for range 2 {
			if _, err := peer.Recv(); err != nil {
				got <- err
				return
			}
		}
		got <- nil
	}()
	if err := c.Send(&Msg{Type: TypeHeartbeat}); err != nil {
		t.Fatalf("first send: %v", err)
	}
	time.Sleep(150 * time.Millisecond)
	if err := c.Send(&Msg{Type: TypeHeartbeat}); err != nil {
		t.Fatalf("send after an idle spell: %v", err)
	}
	if err := <-got; err != nil {
		t.Fatalf("recv: %v", err)
	}
}

// TestSetReadDeadline: a Recv waiting for a hello that never comes ends
// at the deadline; on a connection without deadlines it is a no-op.
func TestSetReadDeadline(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := NewConnLimits(a, HelloLimits)
	if err := c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("recv: %v, want a deadline error", err)
	}
	if err := NewConn(&bufConn{}).SetReadDeadline(time.Now()); err != nil {
		t.Errorf("without deadlines: %v", err)
	}
}
