package task

import (
	"bufio"
	"errors"
	"io"

	"orrery/plan"
)

// substitute runs `substitute SRC DST`: it copies the node file SRC to the
// node file DST, replacing $name and ${name} of known names by the job's
// values. `\$` becomes `$`; any other `$` text (an unknown name, `$5`, a
// lone `$`) and any other backslash is left as it is.
func (r *runner) substitute(c *plan.Command) error {
	if r.node == nil {
		return errors.New("substitute needs a node: it cannot run in a root task")
	}
	src, dst := c.Src.Path.Expand(r.job.Lookup), c.Dst.Path.Expand(r.job.Lookup)
	f, fi, err := r.node.open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	return r.node.write(dst, fi.Mode(), func(w io.Writer) error {
		return expandStream(w, f, r.job.Lookup)
	})
}

// maxRef is the longest reference substituted ($ and braces included);
// the text of a longer one is copied as it is.
const maxRef = 4096

// expandStream copies r to w, substituting references, in bounded memory.
func expandStream(w io.Writer, r io.Reader, lookup func(string) (string, bool)) error {
	br := bufio.NewReaderSize(r, maxRef)
	bw := bufio.NewWriter(w)
	for {
		b, err := br.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		switch b {
		case '\\':
			if next, _ := br.Peek(1); len(next) == 1 && next[0] == '$' {
				br.ReadByte()
				bw.WriteByte('$')
				continue
			}
			bw.WriteByte('\\')
		case '$':
			if v, n := reference(br, lookup); n > 0 {
				br.Discard(n)
				bw.WriteString(v)
				continue
			}
			bw.WriteByte('$')
		default:
			bw.WriteByte(b)
		}
	}
	return bw.Flush()
}

// reference reads, without consuming, the reference after a `$`: `name` or
// `{name}`. For a known name it returns the value and the length of the
// reference; otherwise n is 0.
func reference(br *bufio.Reader, lookup func(string) (string, bool)) (v string, n int) {
	buf, _ := br.Peek(maxRef - 1)
	var name []byte
	if len(buf) > 0 && buf[0] == '{' {
		end := 1
		for end < len(buf) && buf[end] != '}' {
			end++
		}
		if end == len(buf) {
			return "", 0
		}
		name, n = buf[1:end], end+1
	} else {
		for n < len(buf) && isNameByte(buf[n], n == 0) {
			n++
		}
		name = buf[:n]
	}
	if !isName(name) {
		return "", 0
	}
	v, ok := lookup(string(name))
	if !ok {
		return "", 0
	}
	return v, n
}

// isNameByte reports whether b may be in an identifier ([A-Za-z_] first,
// then [A-Za-z0-9_]).
func isNameByte(b byte, first bool) bool {
	return b == '_' || b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || !first && b >= '0' && b <= '9'
}

// isName reports whether s is an identifier.
func isName(s []byte) bool {
	if len(s) == 0 {
		return false
	}
	for i, b := range s {
		if !isNameByte(b, i == 0) {
			return false
		}
	}
	return true
}
