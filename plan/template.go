package plan

import (
	"strings"
	"unicode/utf8"
)

// Template is text in which `$name` and `${name}` are replaced by values:
// a command argument, shell text, or a copy path.
type Template struct {
	Pos   Pos
	Parts []Part
}

// Part is a piece of a Template: literal text, or a reference to a name.
type Part struct {
	Pos  Pos
	Text string // the literal text, or the referenced name when Var is set
	Var  bool
	Raw  string // a reference as written: "$x" or "${x}"
}

// Literal returns a template of literal text only.
func Literal(s string) Template { return Template{Parts: []Part{{Text: s}}} }

// Expand returns the text with each reference replaced by lookup's value.
// A name lookup does not know is left as written.
func (t Template) Expand(lookup func(name string) (string, bool)) string {
	if len(t.Parts) == 1 && !t.Parts[0].Var {
		return t.Parts[0].Text
	}
	var b strings.Builder
	for _, p := range t.Parts {
		if !p.Var {
			b.WriteString(p.Text)
			continue
		}
		if v, ok := lookup(p.Text); ok {
			b.WriteString(v)
		} else {
			b.WriteString(p.Raw)
		}
	}
	return b.String()
}

// Refs returns the names the template refers to, in order.
func (t Template) Refs() []string {
	var names []string
	for _, p := range t.Parts {
		if p.Var {
			names = append(names, p.Text)
		}
	}
	return names
}

// Quoted returns the template as a plan-file string literal that reads
// back as the same template: references as `${name}`, a literal `$` as `\$`.
func (t Template) Quoted() string {
	var b strings.Builder
	b.WriteByte('"')
	for _, p := range t.Parts {
		if p.Var {
			b.WriteString("${" + p.Text + "}")
			continue
		}
		q := quote(p.Text)
		b.WriteString(q[1 : len(q)-1])
	}
	b.WriteByte('"')
	return b.String()
}

// String returns the template's text with references as `${name}`.
func (t Template) String() string {
	return t.Expand(func(name string) (string, bool) { return "${" + name + "}", true })
}

// scanner walks raw source text of one token, keeping track of positions
// across line splices (a backslash ending a line).
type scanner struct {
	s   string
	i   int
	pos Pos
}

// splice skips a backslash-newline at the current offset, if there is one.
func (sc *scanner) splice() bool {
	s := sc.s[sc.i:]
	switch {
	case strings.HasPrefix(s, "\\\n"):
		sc.i += 2
	case strings.HasPrefix(s, "\\\r\n"):
		sc.i += 3
	default:
		return false
	}
	sc.pos.Line++
	sc.pos.Col = 1
	return true
}

// next returns the next rune, skipping splices; utf8.RuneError at the end.
func (sc *scanner) next() (rune, Pos, bool) {
	for sc.splice() {
	}
	if sc.i >= len(sc.s) {
		return utf8.RuneError, sc.pos, false
	}
	r, w := utf8.DecodeRuneInString(sc.s[sc.i:])
	p := sc.pos
	sc.i += w
	sc.pos.Col++
	return r, p, true
}

// peek returns the next rune without consuming it.
func (sc *scanner) peek() rune {
	save := *sc
	r, _, _ := sc.next()
	*sc = save
	return r
}

// decodeText turns the raw text of a token into a Template. Quoted text
// has C escapes; in any text `\$` is a literal dollar sign. When subst is
// false, `$` is never a reference.
func decodeText(raw string, start Pos, quoted, subst bool) Template {
	t := Template{Pos: start}
	sc := scanner{s: raw, pos: start}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.Parts = append(t.Parts, Part{Text: lit.String()})
			lit.Reset()
		}
	}
	for {
		r, p, ok := sc.next()
		if !ok {
			break
		}
		switch {
		case r == '\\' && sc.peek() == '$':
			sc.next()
			lit.WriteByte('$')
		case r == '\\' && quoted:
			decodeEscape(&sc, &lit)
		case r == '$' && subst:
			name, rawRef, ok := scanRef(&sc)
			if !ok {
				lit.WriteByte('$')
				continue
			}
			flush()
			t.Parts = append(t.Parts, Part{Pos: p, Text: name, Var: true, Raw: rawRef})
		default:
			lit.WriteRune(r)
		}
	}
	flush()
	if len(t.Parts) == 0 {
		t.Parts = []Part{{}}
	}
	return t
}

// decodeValue returns the text of a value token: escapes decoded, `$` literal.
func decodeValue(raw string, quoted bool) string {
	t := decodeText(raw, Pos{}, quoted, false)
	return t.Parts[0].Text
}

// scanRef reads a reference after `$`: a name, or `{name}`. When no
// reference follows, the scanner is left where it was.
func scanRef(sc *scanner) (name, raw string, ok bool) {
	save := *sc
	r, _, _ := sc.next()
	if r == '{' {
		var b strings.Builder
		for {
			r, _, more := sc.next()
			if !more {
				*sc = save
				return "", "", false
			}
			if r == '}' {
				break
			}
			b.WriteRune(r)
		}
		if !isIdent(b.String()) {
			*sc = save
			return "", "", false
		}
		return b.String(), "${" + b.String() + "}", true
	}
	if !isIdentStart(r) {
		*sc = save
		return "", "", false
	}
	var b strings.Builder
	b.WriteRune(r)
	for {
		before := *sc
		r, _, more := sc.next()
		if !more || !isIdentChar(r) {
			*sc = before
			break
		}
		b.WriteRune(r)
	}
	return b.String(), "$" + b.String(), true
}

// decodeEscape decodes one C escape after a backslash.
func decodeEscape(sc *scanner, b *strings.Builder) {
	r, _, ok := sc.next()
	if !ok {
		b.WriteByte('\\')
		return
	}
	switch r {
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case 'r':
		b.WriteByte('\r')
	case 'a':
		b.WriteByte('\a')
	case 'b':
		b.WriteByte('\b')
	case 'f':
		b.WriteByte('\f')
	case 'v':
		b.WriteByte('\v')
	case '\\', '"', '\'', '?':
		b.WriteRune(r)
	case 'x':
		v, n := 0, 0
		for n < 2 && isHex(sc.peek()) {
			d, _, _ := sc.next()
			v = v*16 + hexVal(d)
			n++
		}
		if n == 0 {
			b.WriteString(`\x`)
			return
		}
		writeByteValue(b, v)
	case '0', '1', '2', '3', '4', '5', '6', '7':
		v, n := int(r-'0'), 1
		for n < 3 && sc.peek() >= '0' && sc.peek() <= '7' {
			d, _, _ := sc.next()
			v = v*8 + int(d-'0')
			n++
		}
		writeByteValue(b, v&0xff)
	default:
		// Not a C escape: keep it as written.
		b.WriteByte('\\')
		b.WriteRune(r)
	}
}

// writeByteValue writes the byte given by \x or \ooo, as C does.
func writeByteValue(b *strings.Builder, v int) { b.WriteByte(byte(v)) }

func isHex(r rune) bool {
	return r >= '0' && r <= '9' || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F'
}

func hexVal(r rune) int {
	switch {
	case r >= '0' && r <= '9':
		return int(r - '0')
	case r >= 'a' && r <= 'f':
		return int(r-'a') + 10
	}
	return int(r-'A') + 10
}

func isIdentStart(r rune) bool { return r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

func isIdentChar(r rune) bool { return isIdentStart(r) || r >= '0' && r <= '9' }

// isIdent reports whether s is an identifier: [A-Za-z_][A-Za-z0-9_]*.
func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		if i == 0 && !isIdentStart(r) || !isIdentChar(r) {
			return false
		}
	}
	return true
}
