package task

// DefaultOutputLimit is how many bytes of each stream a command keeps.
const DefaultOutputLimit = 64 << 10

// Output is what a command wrote to one stream, when the stream was not
// redirected: the last bytes of it, and how much it wrote in all.
type Output struct {
	Tail  []byte // the last Options.OutputLimit bytes (all of them if fewer)
	Total int64  // bytes written
}

// Truncated reports whether the output was longer than what was kept.
func (o Output) Truncated() bool { return o.Total > int64(len(o.Tail)) }

// String returns the kept text.
func (o Output) String() string { return string(o.Tail) }

// tail is an io.Writer that keeps the last limit bytes written to it, in a
// ring that grows to at most limit bytes.
type tail struct {
	limit int
	buf   []byte // len(buf) < limit: not yet full, oldest byte first
	head  int    // once full: where the oldest byte is (and the next write goes)
	total int64
}

func newTail(limit int) *tail { return &tail{limit: limit} }

// Write keeps the last limit bytes of everything written; it never fails.
func (t *tail) Write(p []byte) (int, error) {
	n := len(p)
	t.total += int64(n)
	if n >= t.limit {
		t.buf = append(t.buf[:0], p[n-t.limit:]...)
		t.head = 0
		return n, nil
	}
	if room := t.limit - len(t.buf); room > 0 {
		if n <= room {
			t.buf = append(t.buf, p...)
			return n, nil
		}
		t.buf = append(t.buf, p[:room]...)
		p = p[room:]
	}
	for len(p) > 0 {
		c := copy(t.buf[t.head:], p)
		p = p[c:]
		t.head = (t.head + c) % t.limit
	}
	return n, nil
}

// output returns the kept bytes, oldest first.
func (t *tail) output() Output {
	b := make([]byte, 0, len(t.buf))
	b = append(b, t.buf[t.head:]...)
	b = append(b, t.buf[:t.head]...)
	return Output{Tail: b, Total: t.total}
}
