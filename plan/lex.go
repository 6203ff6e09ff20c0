package plan

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// itemType identifies the kind of a lexical item.
type itemType int

const (
	itemError   itemType = iota // val is the message
	itemEOF                     // end of input
	itemNewline                 // end of a statement at a newline
	itemSemi                    // ';' ending a statement
	itemWord                    // unquoted text; val is raw source
	itemString                  // quoted text; val is the raw source between the quotes
	itemShell                   // shell text to the end of the line; val is raw source
	itemOp                      // an operator or parenthesis in a constraint expression
)

var itemNames = map[itemType]string{
	itemError: "error", itemEOF: "end of file", itemNewline: "newline", itemSemi: "';'",
	itemWord: "word", itemString: "string", itemShell: "shell text", itemOp: "operator",
}

// item is a token: its type, position and text.
type item struct {
	typ itemType
	pos Pos
	val string // the text with line splices removed
	raw string // the source text, splices included (for positions)
	// joined is set when no space separates the item from the one before,
	// as in node:"file name".
	joined bool
}

func (i item) String() string {
	switch i.typ {
	case itemEOF, itemNewline, itemSemi:
		return itemNames[i.typ]
	case itemString:
		return fmt.Sprintf("%q", shorten(decodeValue(i.val, true)))
	}
	return fmt.Sprintf("%q", shorten(i.val))
}

// shorten cuts long text for error messages.
func shorten(s string) string {
	if utf8.RuneCountInString(s) <= 40 {
		return s
	}
	r := []rune(s)
	return string(r[:37]) + "..."
}

const eof = -1

// stateFn is a state of the lexer: it lexes some input and returns the
// next state, or nil at the end.
type stateFn func(*lexer) stateFn

// cursor is a place in the input.
type cursor struct {
	off int
	pos Pos
}

// lexer turns plan text into items. Like text/template/parse's lexer it
// runs state functions, without a goroutine: nextItem runs states until
// one emits an item.
//
// The lexer knows three contexts, all chosen by the first word of a
// statement: ordinary words and strings; shell text (after execute,
// node:execute, root:execute and shexec), taken verbatim to the end of
// the line; and constraint expressions, which have operators.
type lexer struct {
	src      string
	cur      cursor // the next character to read
	start    cursor // start of the item being lexed
	lastEnd  int    // offset just after the previous item
	state    stateFn
	items    []item // emitted items not yet returned
	inStmt   bool   // past the first word of a statement
	exprMode bool   // lexing a constraint expression
}

func newLexer(src string) *lexer {
	l := &lexer{src: src, cur: cursor{pos: Pos{1, 1}}}
	l.start = l.cur
	l.state = lexLineStart
	return l
}

// nextItem returns the next item.
func (l *lexer) nextItem() item {
	for len(l.items) == 0 {
		if l.state == nil {
			return item{typ: itemEOF, pos: l.cur.pos}
		}
		l.state = l.state(l)
	}
	it := l.items[0]
	l.items = l.items[1:]
	return it
}

// splice skips backslash-newline pairs at the cursor.
func (l *lexer) splice() {
	for {
		s := l.src[l.cur.off:]
		switch {
		case strings.HasPrefix(s, "\\\n"):
			l.cur.off += 2
		case strings.HasPrefix(s, "\\\r\n"):
			l.cur.off += 3
		default:
			return
		}
		l.cur.pos.Line++
		l.cur.pos.Col = 1
	}
}

// next consumes and returns the next character; "\r\n" reads as '\n'.
func (l *lexer) next() rune {
	l.splice()
	if l.cur.off >= len(l.src) {
		return eof
	}
	c := l.src[l.cur.off]
	if c < utf8.RuneSelf {
		l.cur.off++
		if c == '\r' && l.cur.off < len(l.src) && l.src[l.cur.off] == '\n' {
			l.cur.off++
			c = '\n'
		}
		if c == '\n' {
			l.cur.pos.Line++
			l.cur.pos.Col = 1
		} else {
			l.cur.pos.Col++
		}
		return rune(c)
	}
	r, w := utf8.DecodeRuneInString(l.src[l.cur.off:])
	l.cur.off += w
	l.cur.pos.Col++
	return r
}

// peek returns the next character without consuming it.
func (l *lexer) peek() rune {
	save := l.cur
	r := l.next()
	l.cur = save
	return r
}

// peekString reports whether the input at the cursor starts with s
// (splices are not skipped: comment markers are never split).
func (l *lexer) peekString(s string) bool {
	save := l.cur
	l.splice()
	ok := strings.HasPrefix(l.src[l.cur.off:], s)
	l.cur = save
	return ok
}

// emit sends an item of the text from start to the cursor.
func (l *lexer) emit(t itemType) {
	l.emitVal(t, l.src[l.start.off:l.cur.off])
}

func (l *lexer) emitVal(t itemType, raw string) {
	l.items = append(l.items, item{typ: t, pos: l.start.pos, val: unsplice(raw), raw: raw,
		joined: l.start.off == l.lastEnd && l.start.off > 0})
	l.lastEnd = l.cur.off
	l.start = l.cur
}

// unsplice removes line splices (a backslash ending a line) from text.
func unsplice(raw string) string {
	if !strings.Contains(raw, "\\\n") && !strings.Contains(raw, "\\\r\n") {
		return raw
	}
	return strings.ReplaceAll(strings.ReplaceAll(raw, "\\\r\n", ""), "\\\n", "")
}

// errorf emits an error item at pos; the item being lexed goes on.
func (l *lexer) errorf(pos Pos, format string, args ...any) {
	l.items = append(l.items, item{typ: itemError, pos: pos, val: fmt.Sprintf(format, args...)})
}

// ignore drops the text from start to the cursor.
func (l *lexer) ignore() { l.start = l.cur }

// endStatement emits the end of a statement and returns to lexLineStart.
func (l *lexer) endStatement(t itemType) stateFn {
	l.emit(t)
	l.inStmt, l.exprMode = false, false
	return lexLineStart
}

func isSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\f' || r == '\v' || r == '\r' }

// skipSpaceAndComments skips blanks and comments; it reports an
// unterminated block comment. Newlines are not skipped.
func (l *lexer) skipSpaceAndComments() {
	for {
		switch r := l.peek(); {
		case isSpace(r):
			l.next()
		case r == '#' || l.peekString("//"):
			for r := l.peek(); r != '\n' && r != eof; r = l.peek() {
				l.next()
			}
		case l.peekString("/*"):
			open := l.cur.pos
			l.next()
			l.next()
			for !l.peekString("*/") {
				if l.next() == eof {
					l.errorf(open, "unterminated comment")
					l.ignore()
					return
				}
			}
			l.next()
			l.next()
		default:
			l.splice()
			l.ignore()
			return
		}
	}
}

// lexLineStart is the state at the start of a statement.
func lexLineStart(l *lexer) stateFn {
	l.inStmt, l.exprMode = false, false
	return lexInside
}

// lexInside lexes the items of a statement.
func lexInside(l *lexer) stateFn {
	l.skipSpaceAndComments()
	switch r := l.peek(); {
	case r == eof:
		if l.inStmt {
			l.emitVal(itemNewline, "")
		}
		return nil
	case r == '\n':
		l.next()
		return l.endStatement(itemNewline)
	case r == ';':
		l.next()
		return l.endStatement(itemSemi)
	case r == '"':
		return lexString
	case l.exprMode && strings.ContainsRune("()+-*/%<>=!&|", r):
		return lexOp
	case r == utf8.RuneError && l.invalidUTF8():
		l.ignore()
		return lexInside
	}
	return lexWord
}

// lexString lexes a double-quoted string.
func lexString(l *lexer) stateFn {
	open := l.cur.pos
	joined := l.cur.off == l.lastEnd && l.cur.off > 0
	l.next()
	l.ignore()
	for {
		switch l.next() {
		case '\\':
			if r := l.peek(); r != eof && r != '\n' {
				l.next()
			}
		case '"':
			end := l.cur
			l.cur.off--
			l.emitVal(itemString, l.src[l.start.off:l.cur.off])
			l.items[len(l.items)-1].joined = joined
			l.cur = end
			l.start, l.lastEnd = end, end.off
			l.inStmt = true
			return lexInside
		case utf8.RuneError:
			if !strings.HasSuffix(l.src[:l.cur.off], "\uFFFD") {
				l.errorf(Pos{l.cur.pos.Line, l.cur.pos.Col - 1}, "invalid UTF-8 encoding")
			}
		case '\n', eof:
			l.errorf(open, "unterminated string")
			l.ignore()
			// Resume at the end of the line, which ends the statement.
			return lexRecoverLine
		}
	}
}

// lexRecoverLine ends a statement after a lexical error at end of line.
func lexRecoverLine(l *lexer) stateFn {
	l.emitVal(itemNewline, "")
	l.inStmt, l.exprMode = false, false
	return lexLineStart
}

// lexWord lexes an unquoted word: text up to a blank, a quote, a ';' or a
// comment. In an expression a word is a name or a number.
func lexWord(l *lexer) stateFn {
	if l.exprMode {
		return lexExprWord
	}
	for {
		r := l.peek()
		if r == eof || r == '\n' || isSpace(r) || r == '"' || r == ';' || r == utf8.RuneError && l.isInvalidUTF8() {
			break
		}
		l.next()
	}
	word := unsplice(l.src[l.start.off:l.cur.off])
	first := !l.inStmt
	l.emit(itemWord)
	l.inStmt = true
	if first {
		switch word {
		case "execute", "node:execute", "root:execute", "shexec":
			return lexShell
		case "constraint":
			l.exprMode = true
		}
	}
	return lexInside
}

// isInvalidUTF8 reports whether the next byte is not UTF-8.
func (l *lexer) isInvalidUTF8() bool {
	save := l.cur
	l.splice()
	_, w := utf8.DecodeRuneInString(l.src[l.cur.off:])
	l.cur = save
	return w == 1
}

// invalidUTF8 reports, and skips, a byte that is not UTF-8.
func (l *lexer) invalidUTF8() bool {
	if !l.isInvalidUTF8() {
		return false
	}
	l.splice()
	pos := l.cur.pos
	l.next()
	l.errorf(pos, "invalid UTF-8 encoding")
	return true
}

// lexShell lexes shell text: one quoted string alone on the rest of the
// line, or else the rest of the line verbatim.
func lexShell(l *lexer) stateFn {
	for isSpace(l.peek()) {
		l.next()
	}
	l.ignore()
	if l.peek() == '"' {
		save := l.cur
		l.next()
		closed := false
		for r := l.next(); r != eof && r != '\n'; r = l.next() {
			if r == '\\' {
				if p := l.peek(); p != eof && p != '\n' {
					l.next()
				}
				continue
			}
			if r == '"' {
				closed = true
				break
			}
		}
		end := l.cur
		rest := true
		for r := l.peek(); r != '\n' && r != eof; r = l.peek() {
			if !isSpace(r) {
				rest = false
				break
			}
			l.next()
		}
		if closed && rest {
			l.cur = save
			return lexStringAt(l, end)
		}
		l.cur = save
	}
	for r := l.peek(); r != '\n' && r != eof; r = l.peek() {
		if r == utf8.RuneError && l.invalidUTF8() {
			continue
		}
		l.next()
	}
	text := strings.TrimRight(l.src[l.start.off:l.cur.off], " \t\r\f\v")
	if text != "" {
		l.emitVal(itemShell, text)
	}
	return lexInside
}

// lexStringAt emits the quoted string at the cursor, which ends at end.
func lexStringAt(l *lexer, end cursor) stateFn {
	l.next()
	l.ignore()
	close := end
	close.off--
	l.cur = close
	l.emitVal(itemString, l.src[l.start.off:close.off])
	l.cur = end
	l.start, l.lastEnd = end, end.off
	return lexInside
}

// lexOp lexes an expression operator.
func lexOp(l *lexer) stateFn {
	r := l.next()
	two := string(r) + string(l.peek())
	switch two {
	case "<=", ">=", "==", "!=", "&&", "||":
		l.next()
	default:
		if r == '=' || r == '&' || r == '|' {
			l.errorf(l.start.pos, "unexpected %q in constraint (did you mean %q?)", string(r), string(r)+string(r))
			l.ignore()
			return lexInside
		}
	}
	l.emit(itemOp)
	return lexInside
}

// lexExprWord lexes a name or a number in an expression.
func lexExprWord(l *lexer) stateFn {
	r := l.next()
	switch {
	case r == '$' && l.peek() == '{':
		l.next()
		for r := l.peek(); isIdentChar(r); r = l.peek() {
			l.next()
		}
		if l.peek() == '}' {
			l.next()
		}
	case isIdentStart(r) || r == '$':
		for r := l.peek(); isIdentChar(r); r = l.peek() {
			l.next()
		}
	case r >= '0' && r <= '9' || r == '.':
		for {
			r := l.peek()
			if r >= '0' && r <= '9' || r == '.' || isIdentStart(r) {
				l.next()
				if r == 'e' || r == 'E' {
					if p := l.peek(); p == '+' || p == '-' {
						l.next()
					}
				}
				continue
			}
			break
		}
	default:
		if r == utf8.RuneError && l.cur.off-l.start.off == 1 {
			l.errorf(l.start.pos, "invalid UTF-8 encoding")
			l.ignore()
			return lexInside
		}
		l.errorf(l.start.pos, "unexpected %q in constraint", string(r))
		l.ignore()
		return lexInside
	}
	l.emit(itemWord)
	return lexInside
}
