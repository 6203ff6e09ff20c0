package sweep

import (
	"math"

	"orrery/plan"
)

// compileConstraints turns the plan's constraints into one function of
// the value indices; nil when there are none. The plan checker has
// already checked names and types.
func (r *resolver) compileConstraints(s *Sweep) func(idx []int64) bool {
	var fns []func([]int64) bool
	for _, c := range s.Plan.Constraints {
		fns = append(fns, compile(s, c.Expr).(func([]int64) bool))
	}
	switch len(fns) {
	case 0:
		return nil
	case 1:
		return fns[0]
	}
	return func(idx []int64) bool {
		for _, f := range fns {
			if !f(idx) {
				return false
			}
		}
		return true
	}
}

type (
	numFn  = func([]int64) float64
	strFn  = func([]int64) string
	boolFn = func([]int64) bool
)

// compile returns a numFn, strFn or boolFn for an expression.
func compile(s *Sweep, e plan.Expr) any {
	switch e := e.(type) {
	case *plan.NumberLit:
		v := e.Value
		return numFn(func([]int64) float64 { return v })
	case *plan.StringLit:
		v := e.Value
		return strFn(func([]int64) string { return v })
	case *plan.Ident:
		i := indexOf(s.Names, e.Name)
		d := s.Domains[i]
		if s.Plan.Params[i].Type.Numeric() {
			return numFn(func(idx []int64) float64 { return d.Number(idx[i]) })
		}
		return strFn(func(idx []int64) string { return d.Value(idx[i]) })
	case *plan.Unary:
		x := compile(s, e.X)
		switch e.Op {
		case "!":
			f := x.(boolFn)
			return boolFn(func(idx []int64) bool { return !f(idx) })
		case "-":
			f := x.(numFn)
			return numFn(func(idx []int64) float64 { return -f(idx) })
		}
		return x
	case *plan.Binary:
		return compileBinary(e.Op, compile(s, e.X), compile(s, e.Y))
	}
	panic("sweep: unknown expression")
}

func indexOf(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// compileBinary combines two compiled operands.
func compileBinary(op string, x, y any) any {
	switch op {
	case "&&":
		f, g := x.(boolFn), y.(boolFn)
		return boolFn(func(idx []int64) bool { return f(idx) && g(idx) })
	case "||":
		f, g := x.(boolFn), y.(boolFn)
		return boolFn(func(idx []int64) bool { return f(idx) || g(idx) })
	}
	if f, ok := x.(strFn); ok {
		g := y.(strFn)
		return boolFn(func(idx []int64) bool { return cmp(op, compareStrings(f(idx), g(idx))) })
	}
	if f, ok := x.(boolFn); ok {
		g := y.(boolFn)
		eq := op == "=="
		return boolFn(func(idx []int64) bool { return (f(idx) == g(idx)) == eq })
	}
	f, g := x.(numFn), y.(numFn)
	switch op {
	case "+":
		return numFn(func(idx []int64) float64 { return f(idx) + g(idx) })
	case "-":
		return numFn(func(idx []int64) float64 { return f(idx) - g(idx) })
	case "*":
		return numFn(func(idx []int64) float64 { return f(idx) * g(idx) })
	case "/":
		return numFn(func(idx []int64) float64 { return f(idx) / g(idx) })
	case "%":
		return numFn(func(idx []int64) float64 { return math.Mod(f(idx), g(idx)) })
	}
	return boolFn(func(idx []int64) bool {
		a, b := f(idx), g(idx)
		if a != a || b != b { // NaN (division by zero) compares false
			return op == "!="
		}
		c := 0
		if a < b {
			c = -1
		} else if a > b {
			c = 1
		}
		return cmp(op, c)
	})
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// cmp applies a comparison operator to a three-way comparison result.
func cmp(op string, c int) bool {
	switch op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}
