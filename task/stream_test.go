package task

import (
	"bytes"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

func TestTailKeepsLastBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, limit := range []int{1, 7, 64} {
		for trial := range 200 {
			tl := newTail(limit)
			var all []byte
			for range rng.IntN(20) {
				p := make([]byte, rng.IntN(3*limit))
				for i := range p {
					p[i] = byte(rng.IntN(256))
				}
				if n, err := tl.Write(p); n != len(p) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
				all = append(all, p...)
			}
			want := all[max(0, len(all)-limit):]
			out := tl.output()
			if !bytes.Equal(out.Tail, want) || out.Total != int64(len(all)) {
				t.Fatalf("limit %d trial %d: kept %v (total %d), want %v (total %d)",
					limit, trial, out.Tail, out.Total, want, len(all))
			}
			if out.Truncated() != (len(all) > limit) {
				t.Fatalf("Truncated() = %v with %d of %d bytes", out.Truncated(), len(all), limit)
			}
		}
	}
}

func TestExpandStream(t *testing.T) {
	vals := map[string]string{"x": "ex", "long_name1": "L", "jobindex": "4", "empty": ""}
	lookup := func(n string) (string, bool) { v, ok := vals[n]; return v, ok }
	for _, tc := range []struct{ in, want string }{
		{"$x", "ex"},
		{"${x}y", "exy"},
		{"$xy", "$xy"}, // the name is xy, which is unknown
		{"$x.y", "ex.y"},
		{"a$long_name1-$jobindex", "aL-4"},
		{"[$empty]", "[]"},
		{`\$x`, "$x"},
		{`\\$x`, `\$x`}, // no escape for a backslash: the second one escapes the $
		{`a\b \n`, `a\b \n`},
		{"$ $5 $$x $", "$ $5 $ex $"},
		{"${nope} $nope ${x", "${nope} $nope ${x"},
		{"${ x}", "${ x}"},
		{"${}", "${}"},
		{"end\\", "end\\"},
		{"\xff$x\x00", "\xffex\x00"},
		{strings.Repeat("$x", 5000), strings.Repeat("ex", 5000)},
	} {
		var out bytes.Buffer
		// One byte at a time, so references cross every read boundary.
		if err := expandStream(&out, iotest.OneByteReader(strings.NewReader(tc.in)), lookup); err != nil {
			t.Fatal(err)
		}
		if out.String() != tc.want {
			t.Errorf("expand %q = %q, want %q", trunc(tc.in), trunc(out.String()), trunc(tc.want))
		}
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}
