package plan

import (
	"fmt"
	"strings"
	"testing"
)

// lexTest is one named lexer case: the input and every item it yields,
// up to and including the end of file.
type lexTest struct {
	name  string
	input string
	items []item
}

// Constructors for expected items, so the table reads like the input.

func mk(typ itemType, line, col int, val string) item {
	return item{typ: typ, pos: Pos{line, col}, val: val}
}

func tWord(line, col int, val string) item  { return mk(itemWord, line, col, val) }
func tStr(line, col int, val string) item   { return mk(itemString, line, col, val) }
func tShell(line, col int, val string) item { return mk(itemShell, line, col, val) }
func tOp(line, col int, val string) item    { return mk(itemOp, line, col, val) }
func tErr(line, col int, msg string) item   { return mk(itemError, line, col, msg) }
func tEOF(line, col int) item               { return mk(itemEOF, line, col, "") }
func tSemi(line, col int) item              { return mk(itemSemi, line, col, ";") }

// tNL is the newline ending a statement; val is the line ending as
// written ("\n" or "\r\n"), or "" at the end of the file.
func tNL(line, col int, val string) item { return mk(itemNewline, line, col, val) }

// tJoin marks an item as touching the item before it (no blank between).
func tJoin(it item) item { it.joined = true; return it }

const errUTF8 = "invalid UTF-8 encoding"

var lexTests = []lexTest{
	{"empty", "", []item{tEOF(1, 1)}},
	{"blank lines", "\n \n\t\n", []item{tNL(1, 1, "\n"), tNL(2, 2, "\n"), tNL(3, 2, "\n"), tEOF(4, 1)}},

	// Words.
	{"words", "parameter x integer range from 0 to 10 step 1\n", []item{
		tWord(1, 1, "parameter"), tWord(1, 11, "x"), tWord(1, 13, "integer"), tWord(1, 21, "range"),
		tWord(1, 27, "from"), tWord(1, 32, "0"), tWord(1, 34, "to"), tWord(1, 37, "10"),
		tWord(1, 40, "step"), tWord(1, 45, "1"), tNL(1, 46, "\n"), tEOF(2, 1),
	}},
	{"tabs and spaces", "\t a \t\fb\v c\n", []item{
		tWord(1, 3, "a"), tWord(1, 7, "b"), tWord(1, 10, "c"), tNL(1, 11, "\n"), tEOF(2, 1),
	}},
	{"no final newline", "a b", []item{tWord(1, 1, "a"), tWord(1, 3, "b"), tNL(1, 4, ""), tEOF(1, 4)}},
	{"punctuation inside words", "copy root:a/b-c.d node:x*.dat -45 2.5e-3 $x ${y}\n", []item{
		tWord(1, 1, "copy"), tWord(1, 6, "root:a/b-c.d"), tWord(1, 19, "node:x*.dat"), tWord(1, 31, "-45"),
		tWord(1, 35, "2.5e-3"), tWord(1, 42, "$x"), tWord(1, 45, "${y}"), tNL(1, 49, "\n"), tEOF(2, 1),
	}},
	{"comment markers inside a word", "a#b c//d e/*f*/ g\n", []item{
		tWord(1, 1, "a#b"), tWord(1, 5, "c//d"), tWord(1, 10, "e/*f*/"), tWord(1, 17, "g"),
		tNL(1, 18, "\n"), tEOF(2, 1),
	}},
	{"backslash not at end of line", "a \\ \nb\\", []item{
		tWord(1, 1, "a"), tWord(1, 3, "\\"), tNL(1, 5, "\n"), tWord(2, 1, "b\\"), tNL(2, 3, ""), tEOF(2, 3),
	}},

	// Strings.
	{"string", `x "hello world"` + "\n", []item{
		tWord(1, 1, "x"), tStr(1, 4, "hello world"), tNL(1, 16, "\n"), tEOF(2, 1),
	}},
	{"empty string", "a \"\" b\n", []item{
		tWord(1, 1, "a"), tStr(1, 4, ""), tWord(1, 6, "b"), tNL(1, 7, "\n"), tEOF(2, 1),
	}},
	{"C escapes kept raw", `"a\"b\n\t\x41\101\\" x` + "\n", []item{
		tStr(1, 2, `a\"b\n\t\x41\101\\`), tWord(1, 22, "x"), tNL(1, 23, "\n"), tEOF(2, 1),
	}},
	{"escaped quote at the end", `"\\" "\""` + "\n", []item{
		tStr(1, 2, `\\`), tStr(1, 7, `\"`), tNL(1, 10, "\n"), tEOF(2, 1),
	}},
	{"comment markers inside a string", `x "a#b//c/*d*/"` + "\n", []item{
		tWord(1, 1, "x"), tStr(1, 4, "a#b//c/*d*/"), tNL(1, 16, "\n"), tEOF(2, 1),
	}},
	{"semicolon inside a string", `x "a;b"` + "\n", []item{
		tWord(1, 1, "x"), tStr(1, 4, "a;b"), tNL(1, 8, "\n"), tEOF(2, 1),
	}},
	{"string ends a word", `a"b"c d` + "\n", []item{
		tWord(1, 1, "a"), tJoin(tStr(1, 3, "b")), tJoin(tWord(1, 5, "c")), tWord(1, 7, "d"), tNL(1, 8, "\n"), tEOF(2, 1),
	}},

	// node:"x" and root:"x" are joined items.
	{"node side joined to a string", `copy node:"a b" root:"c"d x` + "\n", []item{
		tWord(1, 1, "copy"), tWord(1, 6, "node:"), tJoin(tStr(1, 12, "a b")),
		tWord(1, 17, "root:"), tJoin(tStr(1, 23, "c")), tJoin(tWord(1, 25, "d")), tWord(1, 27, "x"),
		tNL(1, 28, "\n"), tEOF(2, 1),
	}},
	{"blank separates", `copy node: "a"` + "\n", []item{
		tWord(1, 1, "copy"), tWord(1, 6, "node:"), tStr(1, 13, "a"), tNL(1, 15, "\n"), tEOF(2, 1),
	}},

	// Statement ends.
	{"semicolon", "parameter x integer 1;\n", []item{
		tWord(1, 1, "parameter"), tWord(1, 11, "x"), tWord(1, 13, "integer"), tWord(1, 21, "1"),
		tSemi(1, 22), tNL(1, 23, "\n"), tEOF(2, 1),
	}},
	{"semicolon splits statements", "a;b ;\n", []item{
		tWord(1, 1, "a"), tSemi(1, 2), tWord(1, 3, "b"), tSemi(1, 5), tNL(1, 6, "\n"), tEOF(2, 1),
	}},

	// Comments.
	{"hash comment", "a # b c\n# whole line\nd\n", []item{
		tWord(1, 1, "a"), tNL(1, 8, "\n"), tNL(2, 13, "\n"), tWord(3, 1, "d"), tNL(3, 2, "\n"), tEOF(4, 1),
	}},
	{"slash comment", "a // b\n//\nd//e\n", []item{
		tWord(1, 1, "a"), tNL(1, 7, "\n"), tNL(2, 3, "\n"), tWord(3, 1, "d//e"), tNL(3, 5, "\n"), tEOF(4, 1),
	}},
	{"block comment", "a /* b */ c/**/\n", []item{
		tWord(1, 1, "a"), tWord(1, 11, "c/**/"), tNL(1, 16, "\n"), tEOF(2, 1),
	}},
	{"block comment between items", "a /* b */c /**/ \"d\"\n", []item{
		tWord(1, 1, "a"), tWord(1, 10, "c"), tStr(1, 18, "d"), tNL(1, 20, "\n"), tEOF(2, 1),
	}},
	{"block comment spanning lines", "a /* b\nc\n*/ d\ne\n", []item{
		// The comment is a blank: a and d are one statement.
		tWord(1, 1, "a"), tWord(3, 4, "d"), tNL(3, 5, "\n"), tWord(4, 1, "e"), tNL(4, 2, "\n"), tEOF(5, 1),
	}},
	{"block comment with stars", "/** a * b **/x\n", []item{
		tWord(1, 14, "x"), tNL(1, 15, "\n"), tEOF(2, 1),
	}},
	{"hash inside block comment", "/* # */ a\n", []item{
		tWord(1, 9, "a"), tNL(1, 10, "\n"), tEOF(2, 1),
	}},
	{"comment at end of file", "a # c", []item{tWord(1, 1, "a"), tNL(1, 6, ""), tEOF(1, 6)}},

	// Shell text after execute, node:execute, root:execute and shexec.
	{"execute", "execute echo $x > out # not a comment; still\n", []item{
		tWord(1, 1, "execute"), tShell(1, 9, "echo $x > out # not a comment; still"), tNL(1, 45, "\n"), tEOF(2, 1),
	}},
	{"node:execute", "\tnode:execute   cd /tmp && ls // x /* y\n", []item{
		tWord(1, 2, "node:execute"), tShell(1, 17, "cd /tmp && ls // x /* y"), tNL(1, 40, "\n"), tEOF(2, 1),
	}},
	{"root:execute", "root:execute tar cf r.tar .\n", []item{
		tWord(1, 1, "root:execute"), tShell(1, 14, "tar cf r.tar ."), tNL(1, 28, "\n"), tEOF(2, 1),
	}},
	{"shexec", "shexec ./run.sh \"${a}\" ${b} >> out.${jobindex}\n", []item{
		tWord(1, 1, "shexec"), tShell(1, 8, `./run.sh "${a}" ${b} >> out.${jobindex}`), tNL(1, 47, "\n"), tEOF(2, 1),
	}},
	{"shell text trailing blanks dropped", "shexec a b \t \n", []item{
		tWord(1, 1, "shexec"), tShell(1, 8, "a b"), tNL(1, 14, "\n"), tEOF(2, 1),
	}},
	{"lone quoted string is a string", "shexec   \"echo \\\"hi\\\" # x\"   \n", []item{
		tWord(1, 1, "shexec"), tStr(1, 11, `echo \"hi\" # x`), tNL(1, 30, "\n"), tEOF(2, 1),
	}},
	{"lone quoted string after execute", "root:execute \"a b\"\n", []item{
		tWord(1, 1, "root:execute"), tStr(1, 15, "a b"), tNL(1, 19, "\n"), tEOF(2, 1),
	}},
	{"two quoted strings are shell text", "execute \"a\" \"b\"\n", []item{
		tWord(1, 1, "execute"), tShell(1, 9, `"a" "b"`), tNL(1, 16, "\n"), tEOF(2, 1),
	}},
	{"quoted string then text is shell text", "shexec \"a\" b\n", []item{
		tWord(1, 1, "shexec"), tShell(1, 8, `"a" b`), tNL(1, 13, "\n"), tEOF(2, 1),
	}},
	{"quoted string then comment is shell text", "shexec \"a\" # c\n", []item{
		tWord(1, 1, "shexec"), tShell(1, 8, `"a" # c`), tNL(1, 15, "\n"), tEOF(2, 1),
	}},
	{"unclosed quote in shell text is verbatim", "shexec \"open\n", []item{
		tWord(1, 1, "shexec"), tShell(1, 8, `"open`), tNL(1, 13, "\n"), tEOF(2, 1),
	}},
	{"execute without text", "execute\nshexec   \n", []item{
		tWord(1, 1, "execute"), tNL(1, 8, "\n"), tWord(2, 1, "shexec"), tNL(2, 10, "\n"), tEOF(3, 1),
	}},
	{"shell keyword only first in a statement", "copy execute ls # c\n", []item{
		tWord(1, 1, "copy"), tWord(1, 6, "execute"), tWord(1, 14, "ls"), tNL(1, 20, "\n"), tEOF(2, 1),
	}},
	{"shell text after a block comment", "/* c */ execute ls /* x */\n", []item{
		tWord(1, 9, "execute"), tShell(1, 17, "ls /* x */"), tNL(1, 27, "\n"), tEOF(2, 1),
	}},
	{"shell keyword joined to a quote", "node:execute\"ls\"\n", []item{
		tWord(1, 1, "node:execute"), tStr(1, 14, "ls"), tNL(1, 17, "\n"), tEOF(2, 1),
	}},
	{"shell text at end of file", "shexec ls -l", []item{
		tWord(1, 1, "shexec"), tShell(1, 8, "ls -l"), tNL(1, 13, ""), tEOF(1, 13),
	}},
	{"exec is not shell text", "exec echo a#b # c\n", []item{
		tWord(1, 1, "exec"), tWord(1, 6, "echo"), tWord(1, 11, "a#b"), tNL(1, 18, "\n"), tEOF(2, 1),
	}},

	// Constraint expressions.
	{"constraint operators", "constraint (x+1)*2 <= y && !(z != \"a\") || w%3==0\n", []item{
		tWord(1, 1, "constraint"), tOp(1, 12, "("), tJoin(tWord(1, 13, "x")), tOp(1, 14, "+"), tWord(1, 15, "1"),
		tOp(1, 16, ")"), tOp(1, 17, "*"), tWord(1, 18, "2"), tOp(1, 20, "<="), tWord(1, 23, "y"),
		tOp(1, 25, "&&"), tOp(1, 28, "!"), tOp(1, 29, "("), tWord(1, 30, "z"), tOp(1, 32, "!="),
		tStr(1, 36, "a"), tOp(1, 38, ")"), tOp(1, 40, "||"), tWord(1, 43, "w"), tOp(1, 44, "%"),
		tWord(1, 45, "3"), tOp(1, 46, "=="), tWord(1, 48, "0"), tNL(1, 49, "\n"), tEOF(2, 1),
	}},
	{"constraint all comparisons", "constraint a<b>c<=d>=e==f!=g-h/i\n", []item{
		tWord(1, 1, "constraint"), tWord(1, 12, "a"), tOp(1, 13, "<"), tWord(1, 14, "b"), tOp(1, 15, ">"),
		tWord(1, 16, "c"), tOp(1, 17, "<="), tWord(1, 19, "d"), tOp(1, 20, ">="), tWord(1, 22, "e"),
		tOp(1, 23, "=="), tWord(1, 25, "f"), tOp(1, 26, "!="), tWord(1, 28, "g"), tOp(1, 29, "-"),
		tWord(1, 30, "h"), tOp(1, 31, "/"), tWord(1, 32, "i"), tNL(1, 33, "\n"), tEOF(2, 1),
	}},
	{"constraint numbers and references", "constraint 1.5e+3>-2 && ${x} > $y_1 && .5<x\n", []item{
		tWord(1, 1, "constraint"), tWord(1, 12, "1.5e+3"), tOp(1, 18, ">"), tOp(1, 19, "-"), tWord(1, 20, "2"),
		tOp(1, 22, "&&"), tWord(1, 25, "${x}"), tOp(1, 30, ">"), tWord(1, 32, "$y_1"), tOp(1, 37, "&&"),
		tWord(1, 40, ".5"), tOp(1, 42, "<"), tWord(1, 43, "x"), tNL(1, 44, "\n"), tEOF(2, 1),
	}},
	{"constraint with comment and semicolon", "constraint x > 1 /* c */ ; # d\n", []item{
		tWord(1, 1, "constraint"), tWord(1, 12, "x"), tOp(1, 14, ">"), tWord(1, 16, "1"), tSemi(1, 26),
		tNL(1, 31, "\n"), tEOF(2, 1),
	}},
	{"operators only in constraints", "exec a<b && c\n", []item{
		tWord(1, 1, "exec"), tWord(1, 6, "a<b"), tWord(1, 10, "&&"), tWord(1, 13, "c"), tNL(1, 14, "\n"), tEOF(2, 1),
	}},
	{"expression mode ends with the statement", "constraint a\nb<c\n", []item{
		tWord(1, 1, "constraint"), tWord(1, 12, "a"), tNL(1, 13, "\n"), tWord(2, 1, "b<c"), tNL(2, 4, "\n"), tEOF(3, 1),
	}},
	{"single equals", "constraint a = b\n", []item{
		tWord(1, 1, "constraint"), tWord(1, 12, "a"), tErr(1, 14, `unexpected "=" in constraint (did you mean "=="?)`),
		tWord(1, 16, "b"), tNL(1, 17, "\n"), tEOF(2, 1),
	}},
	{"single ampersand and bar", "constraint a & b | c\n", []item{
		tWord(1, 1, "constraint"), tWord(1, 12, "a"), tErr(1, 14, `unexpected "&" in constraint (did you mean "&&"?)`),
		tWord(1, 16, "b"), tErr(1, 18, `unexpected "|" in constraint (did you mean "||"?)`), tWord(1, 20, "c"),
		tNL(1, 21, "\n"), tEOF(2, 1),
	}},
	{"unexpected character in constraint", "constraint é > 1\n", []item{
		tWord(1, 1, "constraint"), tErr(1, 12, `unexpected "é" in constraint`), tOp(1, 14, ">"), tWord(1, 16, "1"),
		tNL(1, 17, "\n"), tEOF(2, 1),
	}},

	// Line continuation: a backslash at the very end of a line.
	{"continuation between words", "parameter x integer range from 1 \\\n to 3\n", []item{
		tWord(1, 1, "parameter"), tWord(1, 11, "x"), tWord(1, 13, "integer"), tWord(1, 21, "range"),
		tWord(1, 27, "from"), tWord(1, 32, "1"), tWord(2, 2, "to"), tWord(2, 5, "3"), tNL(2, 6, "\n"), tEOF(3, 1),
	}},
	{"continuation inside a word", "ab\\\ncd e\n", []item{
		// The raw text keeps the splice; values are decoded later.
		tWord(1, 1, "ab\\\ncd"), tWord(2, 4, "e"), tNL(2, 5, "\n"), tEOF(3, 1),
	}},
	{"continuation inside a string", "\"ab\\\ncd\" e\n", []item{
		tStr(1, 2, "ab\\\ncd"), tWord(2, 5, "e"), tNL(2, 6, "\n"), tEOF(3, 1),
	}},
	{"continuation in shell text", "shexec ./s.sh \\\n\t${a} \\\n\t>> out\nx\n", []item{
		tWord(1, 1, "shexec"), tShell(1, 8, "./s.sh \\\n\t${a} \\\n\t>> out"), tNL(3, 8, "\n"), tWord(4, 1, "x"),
		tNL(4, 2, "\n"), tEOF(5, 1),
	}},
	{"continuation in a lone shell string", "shexec \"a \\\nb\"\n", []item{
		tWord(1, 1, "shexec"), tStr(1, 9, "a \\\nb"), tNL(2, 3, "\n"), tEOF(3, 1),
	}},
	{"continuation before the shell keyword's text", "shexec \\\n  ls\n", []item{
		tWord(1, 1, "shexec"), tShell(2, 3, "ls"), tNL(2, 5, "\n"), tEOF(3, 1),
	}},
	{"continuation before a string at the start of a line", "a \\\n\"b\"\n", []item{
		tWord(1, 1, "a"), tStr(2, 2, "b"), tNL(2, 4, "\n"), tEOF(3, 1),
	}},
	{"continuation ends a comment line too", "a # c \\\nb\nd\n", []item{
		// The contract joins every line ending in a backslash, so the
		// comment runs on to the next line.
		tWord(1, 1, "a"), tNL(2, 2, "\n"), tWord(3, 1, "d"), tNL(3, 2, "\n"), tEOF(4, 1),
	}},
	{"several continuations", "a\\\n\\\n\\\nb\n", []item{
		tWord(1, 1, "a\\\n\\\n\\\nb"), tNL(4, 2, "\n"), tEOF(5, 1),
	}},
	{"CRLF continuation inside a string", "\"a\\\r\nb\"\r\n", []item{
		tStr(1, 2, "a\\\r\nb"), tNL(2, 3, "\r\n"), tEOF(3, 1),
	}},
	{"CRLF shell text", "shexec echo hi \r\nexecute\tls\t\r\n", []item{
		tWord(1, 1, "shexec"), tShell(1, 8, "echo hi"), tNL(1, 16, "\r\n"),
		tWord(2, 1, "execute"), tShell(2, 9, "ls"), tNL(2, 12, "\r\n"), tEOF(3, 1),
	}},
	{"CRLF comment", "a # c\r\nb // d\r\n", []item{
		tWord(1, 1, "a"), tNL(1, 6, "\r\n"), tWord(2, 1, "b"), tNL(2, 7, "\r\n"), tEOF(3, 1),
	}},
	{"lone CR is a blank", "a\rb\n", []item{tWord(1, 1, "a"), tWord(1, 3, "b"), tNL(1, 4, "\n"), tEOF(2, 1)}},

	// UTF-8: columns count characters.
	{"UTF-8", "größe \"ñandú\" x\n\té y\n", []item{
		tWord(1, 1, "größe"), tStr(1, 8, "ñandú"), tWord(1, 15, "x"), tNL(1, 16, "\n"),
		tWord(2, 2, "é"), tWord(2, 4, "y"), tNL(2, 5, "\n"), tEOF(3, 1),
	}},
	{"UTF-8 in shell text", "shexec echo 日本 $x\n", []item{
		tWord(1, 1, "shexec"), tShell(1, 8, "echo 日本 $x"), tNL(1, 18, "\n"), tEOF(2, 1),
	}},
	{"UTF-8 in comments", "/* ü */ a # ß\nb\n", []item{
		tWord(1, 9, "a"), tNL(1, 14, "\n"), tWord(2, 1, "b"), tNL(2, 2, "\n"), tEOF(3, 1),
	}},

	// Errors.
	{"unterminated string", "x \"abc\ny\n", []item{
		tWord(1, 1, "x"), tErr(1, 3, "unterminated string"), tNL(2, 1, ""), tWord(2, 1, "y"), tNL(2, 2, "\n"), tEOF(3, 1),
	}},
	{"unterminated string at end of file", "x \"abc", []item{
		tWord(1, 1, "x"), tErr(1, 3, "unterminated string"), tNL(1, 7, ""), tEOF(1, 7),
	}},
	{"unterminated string with escaped quote", `"a\"` + "\n", []item{
		tErr(1, 1, "unterminated string"), tNL(2, 1, ""), tEOF(2, 1),
	}},
	{"unterminated string after UTF-8", "ü \"a\r\nb", []item{
		tWord(1, 1, "ü"), tErr(1, 3, "unterminated string"), tNL(2, 1, ""), tWord(2, 1, "b"), tNL(2, 2, ""), tEOF(2, 2),
	}},
	{"unterminated comment", "a\n/* b\nc", []item{
		tWord(1, 1, "a"), tNL(1, 2, "\n"), tErr(2, 1, "unterminated comment"), tEOF(3, 2),
	}},
	{"unterminated comment mid-statement", "a b /* c *\n", []item{
		tWord(1, 1, "a"), tWord(1, 3, "b"), tErr(1, 5, "unterminated comment"), tNL(2, 1, ""), tEOF(2, 1),
	}},
	{"invalid UTF-8 alone", "\xff a\n", []item{
		tErr(1, 1, errUTF8), tWord(1, 3, "a"), tNL(1, 4, "\n"), tEOF(2, 1),
	}},
	{"invalid UTF-8 in a constraint", "constraint \xff > 1\n", []item{
		tWord(1, 1, "constraint"), tErr(1, 12, errUTF8), tOp(1, 14, ">"), tWord(1, 16, "1"), tNL(1, 17, "\n"), tEOF(2, 1),
	}},

	// Fixed bugs.

	// A line continuation followed at once by text (no blank at the start
	// of the next line) left the item starting at the backslash, with the
	// splice in its raw text: in "range from 1 \<newline>to 3" the parser
	// did not see the keyword "to", and in a constraint the operator ">"
	// became the unknown operator "\<newline>>".
	{"continuation before a word at the start of a line", "a \\\nb c\n", []item{
		tWord(1, 1, "a"), tWord(2, 1, "b"), tWord(2, 3, "c"), tNL(2, 4, "\n"), tEOF(3, 1),
	}},
	{"CRLF continuation", "a \\\r\nb\r\n", []item{
		tWord(1, 1, "a"), tWord(2, 1, "b"), tNL(2, 2, "\r\n"), tEOF(3, 1),
	}},
	{"continuation in a constraint", "constraint x \\\n> 1\n", []item{
		tWord(1, 1, "constraint"), tWord(1, 12, "x"), tOp(2, 1, ">"), tWord(2, 3, "1"), tNL(2, 4, "\n"), tEOF(3, 1),
	}},
	{"continuation at end of file", "a \\\n", []item{tWord(1, 1, "a"), tNL(2, 1, ""), tEOF(2, 1)}},

	// Text before an invalid byte in a word was dropped: "a b\xffc" lost
	// the word "b".
	{"invalid UTF-8 inside a word keeps the text before it", "a b\xffc\n", []item{
		tWord(1, 1, "a"), tWord(1, 3, "b"), tErr(1, 4, errUTF8), tWord(1, 5, "c"), tNL(1, 6, "\n"), tEOF(2, 1),
	}},
	// Shell text before an invalid byte was dropped: only " z" was left.
	{"invalid UTF-8 in shell text keeps the text", "shexec echo \xff z\n", []item{
		tWord(1, 1, "shexec"), tErr(1, 13, errUTF8), tShell(1, 8, "echo \xff z"), tNL(1, 16, "\n"), tEOF(2, 1),
	}},
	// An invalid byte in a quoted string was accepted silently, although
	// the same byte in a word is an error.
	{"invalid UTF-8 in a string", "x \"d\xfe\"\n", []item{
		tWord(1, 1, "x"), tErr(1, 5, errUTF8), tStr(1, 4, "d\xfe"), tNL(1, 7, "\n"), tEOF(2, 1),
	}},
}

// collect runs the lexer over input and returns every item through EOF.
func collect(t *testing.T, input string) []item {
	t.Helper()
	l := newLexer(input)
	var items []item
	for range len(input) + 100 {
		it := l.nextItem()
		items = append(items, it)
		if it.typ == itemEOF {
			return items
		}
	}
	t.Fatalf("lexer did not reach the end of %q; items so far:\n%s", input, dumpItems(items))
	return nil
}

// sameItems compares type, position and value. joined is compared where
// the parser uses it: between two words or strings of one statement.
func sameItems(got, want []item) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.typ != w.typ || g.pos != w.pos || source(g) != w.val {
			return false
		}
		if i > 0 && isValueItem(got[i-1]) && isValueItem(g) && g.joined != w.joined {
			return false
		}
	}
	return true
}

// source is an item's text as the tests write it: the raw source text,
// line splices included (an error's message for an error item).
func source(it item) string {
	if it.typ == itemError || it.raw == "" {
		return it.val
	}
	return it.raw
}

func isValueItem(it item) bool { return it.typ == itemWord || it.typ == itemString }

func dumpItems(items []item) string {
	var b strings.Builder
	for _, it := range items {
		j := ""
		if it.joined {
			j = " joined"
		}
		fmt.Fprintf(&b, "\t%s %s %q%s\n", itemNames[it.typ], it.pos, source(it), j)
	}
	return b.String()
}

func TestLex(t *testing.T) {
	seen := map[string]bool{}
	for _, test := range lexTests {
		if seen[test.name] {
			t.Fatalf("two lex tests are named %q", test.name)
		}
		seen[test.name] = true
		t.Run(test.name, func(t *testing.T) {
			got := collect(t, test.input)
			if !sameItems(got, test.items) {
				t.Errorf("lex %q:\ngot\n%swant\n%s", test.input, dumpItems(got), dumpItems(test.items))
			}
		})
	}
}

// TestLexItemString checks how items print in error messages.
func TestLexItemString(t *testing.T) {
	tests := []struct {
		it   item
		want string
	}{
		{tWord(1, 1, "param"), `"param"`},
		{tStr(1, 1, `a\tb\"`), `"a\tb\""`},
		{tStr(1, 1, `\$x`), `"$x"`},
		{tNL(1, 1, "\n"), "newline"},
		{tNL(1, 1, ""), "newline"},
		{tSemi(1, 1), "';'"},
		{tEOF(1, 1), "end of file"},
		{tOp(1, 1, "&&"), `"&&"`},
		{tWord(1, 1, strings.Repeat("x", 50)), `"` + strings.Repeat("x", 37) + `..."`},
		{tWord(1, 1, strings.Repeat("é", 40)), `"` + strings.Repeat("é", 40) + `"`},
	}
	for _, test := range tests {
		if got := test.it.String(); got != test.want {
			t.Errorf("%s %q: String() = %s, want %s", itemNames[test.it.typ], test.it.val, got, test.want)
		}
	}
}

// TestLexPositionsAgreeWithSource checks, over a larger input, that every
// word's position points at its text in the source.
func TestLexPositionsAgreeWithSource(t *testing.T) {
	src := "parameter größe label \"Größe\" integer range from 1 to 3\r\n" +
		"/* a\n b */ task main # c\n" +
		"\tcopy root:in.${x} node:\"in put\"\n" +
		"\texec prog \\\n\t\targ1 arg2\n" +
		"endtask\n"
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	for _, it := range collect(t, src) {
		if it.typ != itemWord {
			continue
		}
		first, _, _ := strings.Cut(it.val, "\\\n")
		line := []rune(lines[it.pos.Line-1])
		if it.pos.Col-1+len([]rune(first)) > len(line) {
			t.Errorf("word %q at %s is past the end of its line %q", it.val, it.pos, string(line))
			continue
		}
		if at := string(line[it.pos.Col-1 : it.pos.Col-1+len([]rune(first))]); at != first {
			t.Errorf("word %q at %s: the source there reads %q", it.val, it.pos, at)
		}
	}
}
