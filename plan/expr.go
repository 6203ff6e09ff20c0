package plan

import (
	"strconv"
	"strings"
)

// Expr is a constraint expression.
type Expr interface {
	// Start is the position of the expression's first character.
	Start() Pos
}

// Ident is a parameter name in an expression.
type Ident struct {
	Pos  Pos
	Name string
}

// NumberLit is a number in an expression.
type NumberLit struct {
	Pos   Pos
	Value float64
}

// StringLit is a string in an expression.
type StringLit struct {
	Pos   Pos
	Value string
}

// Unary is `!X`, `-X` or `+X`.
type Unary struct {
	Pos Pos
	Op  string
	X   Expr
}

// Binary is `X op Y`.
type Binary struct {
	Op   string
	OpAt Pos
	X, Y Expr
}

// Start implements Expr.
func (e *Ident) Start() Pos { return e.Pos }

// Start implements Expr.
func (e *NumberLit) Start() Pos { return e.Pos }

// Start implements Expr.
func (e *StringLit) Start() Pos { return e.Pos }

// Start implements Expr.
func (e *Unary) Start() Pos { return e.Pos }

// Start implements Expr.
func (e *Binary) Start() Pos { return e.X.Start() }

// maxExprDepth bounds nesting, so deep input is an error, not a stack overflow.
const maxExprDepth = 200

// exprParser is a recursive-descent parser over one statement's items.
type exprParser struct {
	p     *parser
	items []item
	i     int
	depth int
	bad   bool
}

func (ep *exprParser) peek() (item, bool) {
	if ep.i < len(ep.items) {
		return ep.items[ep.i], true
	}
	return item{}, false
}

func (ep *exprParser) fail(pos Pos, format string, args ...any) Expr {
	if !ep.bad {
		ep.p.errorf(pos, format, args...)
	}
	ep.bad = true
	return nil
}

// parse parses the whole expression; nil after an error.
func (ep *exprParser) parse() Expr {
	e := ep.binary(0)
	if ep.bad {
		return nil
	}
	if it, ok := ep.peek(); ok {
		return ep.fail(it.pos, "constraint: unexpected %s", it)
	}
	return e
}

// precedence levels, lowest first.
var precedence = map[string]int{
	"||": 1, "&&": 2,
	"==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
	"+": 4, "-": 4,
	"*": 5, "/": 5, "%": 5,
}

// binary parses operators of at least precedence min, left-associative.
func (ep *exprParser) binary(min int) Expr {
	x := ep.unary()
	for !ep.bad {
		it, ok := ep.peek()
		if !ok || it.typ != itemOp {
			return x
		}
		prec, isBin := precedence[it.val]
		if !isBin || prec <= min {
			return x
		}
		ep.i++
		y := ep.binary(prec)
		if ep.bad {
			return nil
		}
		if prec == 3 {
			// comparisons do not chain: a < b < c is an error.
			if nx, ok := ep.peek(); ok && nx.typ == itemOp && precedence[nx.val] == 3 {
				return ep.fail(nx.pos, "constraint: comparisons do not chain; use &&")
			}
		}
		x = &Binary{Op: it.val, OpAt: it.pos, X: x, Y: y}
	}
	return nil
}

// unary parses a prefix operator or a primary expression.
func (ep *exprParser) unary() Expr {
	it, ok := ep.peek()
	if !ok {
		last := ep.items[len(ep.items)-1]
		return ep.fail(last.pos, "constraint: expression ends too soon")
	}
	ep.depth++
	defer func() { ep.depth-- }()
	if ep.depth > maxExprDepth {
		return ep.fail(it.pos, "constraint: expression nested too deeply (over %d levels)", maxExprDepth)
	}
	if it.typ == itemOp && (it.val == "!" || it.val == "-" || it.val == "+") {
		ep.i++
		x := ep.unary()
		if x == nil {
			return nil
		}
		return &Unary{Pos: it.pos, Op: it.val, X: x}
	}
	return ep.primary()
}

// primary parses a name, number, string or parenthesised expression.
func (ep *exprParser) primary() Expr {
	it, _ := ep.peek()
	ep.i++
	switch it.typ {
	case itemString:
		return &StringLit{Pos: it.pos, Value: decodeValue(it.val, true)}
	case itemOp:
		if it.val != "(" {
			return ep.fail(it.pos, "constraint: unexpected %s", it)
		}
		x := ep.binary(0)
		if ep.bad {
			return nil
		}
		cl, ok := ep.peek()
		if !ok || cl.typ != itemOp || cl.val != ")" {
			return ep.fail(it.pos, "constraint: unclosed (")
		}
		ep.i++
		return x
	case itemWord:
		if isNumber(it.val) {
			f, _ := strconv.ParseFloat(it.val, 64)
			return &NumberLit{Pos: it.pos, Value: f}
		}
		name := strings.TrimPrefix(it.val, "$")
		if strings.HasPrefix(name, "{") && strings.HasSuffix(name, "}") {
			name = name[1 : len(name)-1]
		}
		if !isIdent(name) {
			return ep.fail(it.pos, "constraint: unexpected %s", it)
		}
		return &Ident{Pos: it.pos, Name: name}
	}
	return ep.fail(it.pos, "constraint: unexpected %s", it)
}

// ExprType is the type of an expression's value.
type ExprType int

// Expression types.
const (
	NumberType ExprType = iota
	StringType
	BoolType
)

var exprTypeNames = [...]string{"number", "string", "boolean"}

func (t ExprType) String() string { return exprTypeNames[t] }

// typeOf checks an expression and returns its type. nameType gives the
// type of each name, and false for an unknown one.
func (p *parser) typeOf(e Expr, nameType func(string) (ExprType, bool)) (ExprType, bool) {
	switch e := e.(type) {
	case *NumberLit:
		return NumberType, true
	case *StringLit:
		return StringType, true
	case *Ident:
		t, ok := nameType(e.Name)
		if !ok {
			p.errorf(e.Pos, "constraint: unknown parameter %s", e.Name)
		}
		return t, ok
	case *Unary:
		t, ok := p.typeOf(e.X, nameType)
		want := NumberType
		if e.Op == "!" {
			want = BoolType
		}
		if ok && t != want {
			p.errorf(e.Pos, "constraint: %s needs a %s, not a %s", e.Op, want, t)
			return want, false
		}
		return want, ok
	case *Binary:
		x, okx := p.typeOf(e.X, nameType)
		y, oky := p.typeOf(e.Y, nameType)
		if !okx || !oky {
			return BoolType, false
		}
		switch e.Op {
		case "&&", "||":
			if x != BoolType || y != BoolType {
				p.errorf(e.OpAt, "constraint: %s needs booleans, not %s and %s", e.Op, x, y)
				return BoolType, false
			}
			return BoolType, true
		case "==", "!=", "<", "<=", ">", ">=":
			if x != y || x == BoolType && e.Op != "==" && e.Op != "!=" {
				p.errorf(e.OpAt, "constraint: cannot compare %s %s %s", x, e.Op, y)
				return BoolType, false
			}
			return BoolType, true
		default:
			if x != NumberType || y != NumberType {
				p.errorf(e.OpAt, "constraint: %s needs numbers, not %s and %s", e.Op, x, y)
				return NumberType, false
			}
			return NumberType, true
		}
	}
	return NumberType, false
}
