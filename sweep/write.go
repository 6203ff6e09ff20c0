package sweep

import (
	"bufio"
	"fmt"
	"io"
	"slices"
	"strconv"
	"unicode/utf8"

	"orrery/plan"
)

// WriteJSONL writes up to limit jobs (all when limit < 0) as JSON Lines,
// one object per job: {"index":1,"values":{"x":"1","mode":"fast"}}.
// Values are exactly what is substituted into commands, keyed in
// declaration order. It returns the number of jobs written.
func (s *Sweep) WriteJSONL(w io.Writer, limit int64) (int64, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	keys := make([][]byte, len(s.Names))
	for i, n := range s.Names {
		sep := ","
		if i == 0 {
			sep = ""
		}
		keys[i] = append(appendJSONString([]byte(sep), n), ':')
	}
	caches := make([]valueCache, len(s.Names))
	var line []byte
	it := s.Iter()
	for limit < 0 || it.Index() < limit {
		if !it.Next() {
			break
		}
		line = append(line[:0], `{"index":`...)
		line = strconv.AppendInt(line, it.Index(), 10)
		line = append(line, `,"values":{`...)
		for i := range s.Names {
			line = append(line, keys[i]...)
			line = append(line, caches[i].json(s.Domains[i], it.idx[i])...)
		}
		line = append(line, "}}\n"...)
		if _, err := bw.Write(line); err != nil {
			return it.Index(), err
		}
	}
	return it.Index(), bw.Flush()
}

// valueCache keeps the JSON form of a domain's values: all of them for a
// listed domain, the last one for a computed domain.
type valueCache struct {
	all  [][]byte
	last int64
	buf  []byte
}

func (c *valueCache) json(d Domain, i int64) []byte {
	if l, ok := d.(*list); ok {
		if c.all == nil {
			c.all = make([][]byte, len(l.vals))
		}
		if c.all[i] == nil {
			c.all[i] = appendJSONString(nil, l.vals[i])
		}
		return c.all[i]
	}
	if c.buf == nil || c.last != i {
		c.buf = appendJSONString(c.buf[:0], d.Value(i))
		c.last = i
	}
	return c.buf
}

// appendJSONString appends s as a JSON string, as encoding/json writes it
// without HTML escaping.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			if r == utf8.RuneError {
				b = append(b, `\ufffd`...)
			} else {
				b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// WriteRunFile writes up to limit jobs (all when limit < 0) as a compiled
// run file, the form nimrodg reads: each name's values as a `variable`
// list, the jobs as value indices, then the tasks. Reading the run file
// back yields the same jobs. It returns the number of jobs written.
func (s *Sweep) WriteRunFile(w io.Writer, limit int64) (int64, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	fmt.Fprintf(bw, "# Run file compiled by orrery from %s (%s dialect", s.Plan.File, s.Plan.Dialect)
	if s.Random() {
		fmt.Fprintf(bw, ", random values drawn with seed %d", s.Seed)
	}
	bw.WriteString(").\n")
	remap := s.usedValues(limit)
	for i, name := range s.Names {
		fmt.Fprintf(bw, "variable %s index %d list", name, i)
		d := s.Domains[i]
		if remap[i] != nil {
			for _, v := range sortedKeys(remap[i]) {
				bw.WriteByte(' ')
				bw.WriteString(plan.Quote(d.Value(v)))
			}
		} else {
			for v := range d.Len() {
				bw.WriteByte(' ')
				bw.WriteString(plan.Quote(d.Value(v)))
			}
		}
		bw.WriteByte('\n')
	}
	most := s.size
	if limit >= 0 {
		most = min(most, limit)
	}
	width := len(strconv.FormatInt(most, 10))
	width = max(width, 4)
	bw.WriteString("\njobs\n")
	var line []byte
	it := s.Iter()
	for limit < 0 || it.Index() < limit {
		if !it.Next() {
			break
		}
		line = append(line[:0], '\t')
		num := strconv.AppendInt(nil, it.Index(), 10)
		for range width - len(num) {
			line = append(line, '0')
		}
		line = append(line, num...)
		for i := range s.Names {
			line = append(line, ' ')
			v := it.idx[i]
			if remap[i] != nil {
				v = remap[i][v]
			}
			line = strconv.AppendInt(line, v, 10)
		}
		line = append(line, '\n')
		if _, err := bw.Write(line); err != nil {
			return it.Index(), err
		}
	}
	bw.WriteString("endjobs\n\n")
	if err := s.Plan.WriteTasks(bw); err != nil {
		return it.Index(), err
	}
	return it.Index(), bw.Flush()
}

// usedValues finds, for each name whose domain has more values than the
// limit on jobs written, the values those jobs use, and numbers them in
// order: a run file of the first jobs of a huge sweep lists only what it
// needs. Other names get nil (their whole list is written).
func (s *Sweep) usedValues(limit int64) []map[int64]int64 {
	remap := make([]map[int64]int64, len(s.Names))
	if limit < 0 {
		return remap
	}
	some := false
	for i, d := range s.Domains {
		if d.Len() > limit {
			remap[i], some = map[int64]int64{}, true
		}
	}
	if !some {
		return remap
	}
	it := s.Iter()
	for it.Index() < limit && it.Next() {
		for i, m := range remap {
			if m != nil {
				m[it.idx[i]] = 0
			}
		}
	}
	for _, m := range remap {
		for n, v := range sortedKeys(m) {
			m[v] = int64(n)
		}
	}
	return remap
}

func sortedKeys(m map[int64]int64) []int64 {
	keys := make([]int64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
