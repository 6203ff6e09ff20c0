package protocol

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"testing"
)

// FuzzRecv reads arbitrary bytes as frames under RootLimits. Recv must
// not panic; each message it returns must come from a frame within the
// limits, whose header is one JSON object and whose data (only on a data
// message) is all of the frame's; the stream must end in io.EOF exactly
// when it ends between frames, and in ErrFrame otherwise.
func FuzzRecv(f *testing.F) {
	exit := 1
	for _, ms := range [][]*Msg{
		{{Type: TypeHello, Hello: &Hello{Version: Version, Name: "n1", Secret: "s", PublicKey: []byte{1, 2, 3}}}},
		{{Type: TypeRegister, Register: &Register{Version: Version, Name: "n1", CPUs: 2, Running: []AttemptRef{{Job: 1, Attempt: 2}}}}},
		{{Type: TypeOpen, ID: 1, Path: "in/a.dat"}, {Type: TypeData, ID: 1, Data: []byte("abc")}, {Type: TypeData, ID: 1, EOF: true}},
		{{Type: TypeEvent, Event: &Event{Kind: EventEnded, Job: 3, Result: &Result{Exit: &exit, Stderr: []byte("oops")}}}},
		{{Type: TypeHeartbeat, Heartbeat: &Heartbeat{Running: 1, Resident: []Resident{{Job: 3, Bytes: 100}}}}},
	} {
		f.Add(encode(f, ms...))
	}
	f.Add(lens(64<<20, 64<<20))
	f.Add(frame(`{"t":"heartbeat"}`, []byte("data on a heartbeat")))
	f.Add(frame(`null`, nil))
	f.Add([]byte{})

	limits := RootLimits
	f.Fuzz(func(t *testing.T, in []byte) {
		c := NewConnLimits(byteConn{bytes.NewReader(in)}, limits)
		off := 0
		for {
			m, err := c.Recv()
			if err != nil {
				if off == len(in) {
					if err != io.EOF {
						t.Fatalf("at the end of the stream: %v, want io.EOF", err)
					}
				} else if !errors.Is(err, ErrFrame) {
					t.Fatalf("at %d of %d bytes: %v, want ErrFrame", off, len(in), err)
				}
				if cap(c.head) > keepHeader {
					t.Fatalf("kept a header buffer of %d bytes", cap(c.head))
				}
				return
			}
			if len(in)-off < 8 {
				t.Fatalf("a message from %d bytes", len(in)-off)
			}
			hl := int(binary.BigEndian.Uint32(in[off:]))
			dl := int(binary.BigEndian.Uint32(in[off+4:]))
			if hl > limits.MaxHeader || dl > limits.MaxData {
				t.Fatalf("a message from a frame of %d+%d bytes", hl, dl)
			}
			if len(in)-off-8 < hl+dl {
				t.Fatalf("a message from a truncated frame")
			}
			head := in[off+8 : off+8+hl]
			if !json.Valid(head) || head[0] != '{' || head[len(head)-1] != '}' {
				t.Fatalf("a message from header %q", head)
			}
			if len(m.Data) != dl || !bytes.Equal(m.Data, in[off+8+hl:off+8+hl+dl]) {
				t.Fatalf("data of %d bytes, want %d", len(m.Data), dl)
			}
			if dl > 0 && m.Type != TypeData {
				t.Fatalf("data on a %q message", m.Type)
			}
			if cap(c.head) > keepHeader {
				t.Fatalf("kept a header buffer of %d bytes", cap(c.head))
			}
			off += 8 + hl + dl
		}
	})
}
