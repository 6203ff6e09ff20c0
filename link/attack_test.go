package link_test

// Attacks by an enrolled node on the new optional fields of an attempt's
// end (protocol.Result's Ignored, StagedIn/StagedOut, Side), over a real
// protocol connection.

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"orrery/link"
	"orrery/protocol"
)

// endedWith is the end of job 2's attempt 1 with res.
func endedWith(res *protocol.Result) *protocol.Msg {
	return &protocol.Msg{Type: protocol.TypeEvent, Event: &protocol.Event{Kind: protocol.EventEnded, Job: 2, Attempt: 1, Result: res}}
}

// ignoredList is n ignored errors whose four strings are size bytes each.
func ignoredList(n, size int) []protocol.Ignored {
	s := strings.Repeat("x", size)
	out := make([]protocol.Ignored, n)
	for i := range out {
		out[i] = protocol.Ignored{Pos: s, Command: s, Signal: s, Error: s}
	}
	return out
}

// headerLen is the size of m's frame header.
func headerLen(t *testing.T, m *protocol.Msg) int {
	t.Helper()
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// An end whose ignored-error list is thousands of entries but whose
// header fits in RootLimits reaches the dispatcher once, and the node
// stays connected (the dispatcher bounds what it keeps: see
// dispatch.TestAttackIgnoredFlood). One just over RootLimits closes the
// connection as a protocol violation before it is read whole: the
// dispatcher never hears the end, and hears the node gone.
func TestAttackEndedIgnoredFlood(t *testing.T) {
	t.Run("within the header limit", func(t *testing.T) {
		d := &recorder{start: access(t, 2)}
		l := serve(t, d, link.Config{})
		l.read()
		l.register()
		l.expect(protocol.TypeWelcome)
		l.expect(protocol.TypeStart)
		m := endedWith(&protocol.Result{OK: true, Ignored: ignoredList(4000, 48), StagedIn: -1, StagedOut: 1 << 62, Side: "bogus"})
		if n := headerLen(t, m); n > protocol.RootLimits.MaxHeader {
			t.Fatalf("test bug: header of %d bytes is over the limit", n)
		}
		l.send(m)
		l.beat()
		if _, ended, _, gone := d.counts(); ended != 1 || gone != 0 {
			t.Fatalf("ended %d, gone %d; want the end forwarded once and the node still connected", ended, gone)
		}
	})
	t.Run("over the header limit", func(t *testing.T) {
		d := &recorder{start: access(t, 2)}
		l := serve(t, d, link.Config{})
		l.read()
		l.register()
		l.expect(protocol.TypeWelcome)
		l.expect(protocol.TypeStart)
		m := endedWith(&protocol.Result{OK: true, Ignored: ignoredList(16, protocol.RootLimits.MaxHeader/64+1)})
		head, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if len(head) <= protocol.RootLimits.MaxHeader {
			t.Fatalf("test bug: header of %d bytes is within the limit", len(head))
		}
		// The link stops reading at the length, so the write may never
		// finish: it ends when the connection closes.
		go l.raw.Write(rawFrame(string(head), nil))
		err = l.ended(5 * time.Second)
		if !errors.Is(err, protocol.ErrFrame) {
			t.Errorf("Serve returned %v; want an error wrapping protocol.ErrFrame", err)
		}
		if _, ended, _, gone := d.counts(); ended != 0 || gone != 1 {
			t.Errorf("ended %d, gone %d; want no end forwarded and the node gone", ended, gone)
		}
	})
}

// An end whose new fields have the wrong JSON type, or a byte count
// beyond int64, is a malformed header: the connection closes as a
// protocol violation with one log line, and the dispatcher never hears
// the end.
func TestAttackEndedFieldsMalformed(t *testing.T) {
	for _, tc := range []struct{ name, result string }{
		{"staged_in beyond int64", `{"ok":true,"staged_in":99999999999999999999}`},
		{"staged_out a float", `{"ok":true,"staged_out":1.5}`},
		{"staged_in a string", `{"ok":true,"staged_in":"1"}`},
		{"side a number", `{"ok":false,"system":true,"side":1}`},
		{"side an object", `{"ok":false,"system":true,"side":{"root":true}}`},
		{"ignored an object", `{"ok":true,"ignored":{"pos":"1:1"}}`},
		{"ignored entries not objects", `{"ok":true,"ignored":["x","y"]}`},
		{"ignored exit a string", `{"ok":true,"ignored":[{"pos":"1:1","exit":"1","error":"e"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := &recorder{start: access(t, 2)}
			l := serve(t, d, link.Config{})
			l.read()
			l.register()
			l.expect(protocol.TypeWelcome)
			l.expect(protocol.TypeStart)
			head := `{"t":"event","event":{"kind":"ended","job":2,"attempt":1,"Result":` + tc.result + `}}`
			var probe protocol.Msg
			if err := json.Unmarshal([]byte(head), &probe); err == nil {
				t.Fatalf("test bug: %s decodes", head)
			}
			if _, err := l.raw.Write(rawFrame(head, nil)); err != nil {
				t.Fatal(err)
			}
			err := l.ended(5 * time.Second)
			if !errors.Is(err, protocol.ErrFrame) {
				t.Errorf("Serve returned %v; want an error wrapping protocol.ErrFrame", err)
			}
			if _, ended, _, gone := d.counts(); ended != 0 || gone != 1 {
				t.Errorf("ended %d, gone %d; want no end forwarded and the node gone", ended, gone)
			}
			if got := l.log.lines("protocol violation"); len(got) != 1 {
				t.Errorf("want one line saying the connection closed for a protocol violation; got %q", got)
			}
		})
	}
}
