package plan

import (
	"math"
	"sort"
	"strings"

	"orrery/suggest"
)

// Implicit names every job has besides its parameters.
const (
	NameJobIndex = "jobindex"
	NameJobName  = "jobname"
)

// check runs the checks that need the whole file and the dialect.
func (p *parser) check() {
	pl := p.plan
	names := map[string]*Param{}
	for _, q := range pl.Params {
		if o, dup := names[q.Name]; dup {
			p.errorf(q.Pos, "duplicate parameter %s (first declared at %s)", q.Name, o.Pos)
			continue
		}
		names[q.Name] = q
		p.checkDomain(q)
	}
	if len(pl.Params) > 0 && pl.IsRunFile() {
		p.errorf(pl.Params[0].Pos, "a file has either parameters (a plan) or variables and jobs (a run file), not both")
	}
	p.checkZips(names)
	for _, c := range pl.Constraints {
		p.typeConstraint(c, names)
	}
	p.checkTasks()
}

// checkTasks checks task names, commands and substitutions.
func (p *parser) checkTasks() {
	pl := p.plan
	known := map[string]bool{NameJobIndex: true, NameJobName: true}
	for _, n := range pl.Names() {
		known[n] = true
	}
	seen := map[string]*Task{}
	for _, t := range pl.Tasks {
		if o, dup := seen[t.Name]; dup && t.Name != "" {
			p.errorf(t.Pos, "duplicate task %s (first at %s)", t.Name, o.Pos)
		}
		seen[t.Name] = t
		for _, c := range t.Commands {
			p.checkCommand(t, c, known)
		}
	}
	if seen[TaskMain] == nil {
		p.errorf(p.lastPos, "missing task main")
	}
}

// checkCommand checks one command: where it may run, its paths and its
// substitutions.
func (p *parser) checkCommand(t *Task, c *Command, known map[string]bool) {
	switch {
	case c.Keyword == "root:execute" && !t.OnRoot():
		p.errorf(c.Pos, "root:execute in task %s: it runs only in rootstart and rootfinish", t.Name)
	case c.Keyword == "node:execute" && t.OnRoot():
		p.errorf(c.Pos, "node:execute in task %s, which runs on the root; use root:execute", t.Name)
	case (c.Op == OpCopy || c.Op == OpSubstitute) && t.OnRoot():
		p.errorf(c.Pos, "%s in task %s: %s needs a node (use it in nodestart or main)", c.Keyword, t.Name, c.Keyword)
	}
	switch c.Op {
	case OpCopy:
		p.resolveSide(c, &c.Src)
		p.resolveSide(c, &c.Dst)
		if c.Src.Side == Root && c.Dst.Side == Root {
			p.errorf(c.Pos, "copy from root to root: one side must be node:")
		}
	case OpSubstitute:
		for _, path := range []*Path{&c.Src, &c.Dst} {
			if path.Explicit && path.Side == Root {
				p.errorf(path.Pos, "substitute works on the node: %s cannot be root:", path.Path)
			}
			path.Side = Node
		}
	}
	shell := c.Op == OpShell
	for i := range c.Args {
		p.checkRefs(&c.Args[i], known, shell)
	}
	p.checkRefs(&c.Src.Path, known, false)
	p.checkRefs(&c.Dst.Path, known, false)
	p.checkRefs(&c.File, known, false)
}

// resolveSide gives a bare copy path the dialect's side, with a warning.
func (p *parser) resolveSide(c *Command, path *Path) {
	if path.Explicit {
		return
	}
	path.Side = Node
	if p.plan.Dialect == Classic {
		path.Side = Root
	}
	p.warnf(path.Pos, "bare copy path %q read as the %s side (%s dialect); prefix it with root: or node: to be explicit",
		path.Path.String(), path.Side, p.plan.Dialect)
}

// checkRefs reports references to unknown names. In classic shell text an
// unknown name is left for the shell: it becomes literal text.
func (p *parser) checkRefs(t *Template, known map[string]bool, shell bool) {
	for i := range t.Parts {
		part := &t.Parts[i]
		if !part.Var || known[part.Text] {
			continue
		}
		if shell && p.plan.Dialect == Classic {
			p.warnNearName(part, known)
			*part = Part{Pos: part.Pos, Text: part.Raw}
			continue
		}
		p.errorf(part.Pos, "unknown name %s in %s%s", part.Raw, "substitution", suggest.DidYouMean(part.Text, keys(known)))
	}
	t.Parts = appendParts(nil, t.Parts)
}

// warnNearName warns about a reference in classic shell text that is
// left for the shell but is probably a misspelt parameter: $alpah when
// alpha is a parameter. Shell variables ($HOME, $i) and the variables a
// job gets (ORRERY_JOBINDEX…) are not warned about unless a known name is
// that near: the same but for case, or (for names of four letters or
// more) at most two edits away.
func (p *parser) warnNearName(part *Part, known map[string]bool) {
	if strings.HasPrefix(part.Text, "ORRERY_") {
		return
	}
	if near := nearName(part.Text, keys(known)); near != "" {
		ref := "$" + near
		if strings.HasPrefix(part.Raw, "${") {
			ref = "${" + near + "}"
		}
		p.warnf(part.Pos, "%s is not a parameter; did you mean %s?", part.Raw, ref)
	}
}

// nearName returns the known name that name is probably a misspelling
// of, or "".
func nearName(name string, known []string) string {
	sort.Strings(known)
	for _, k := range known {
		if strings.EqualFold(k, name) {
			return k
		}
	}
	if len(name) < 4 {
		return ""
	}
	n := suggest.Nearest(name, known)
	if n == "" || abs(len(n)-len(name)) > 2 {
		return "" // suggest also offers long completions of a prefix
	}
	return n
}

func abs(n int) int {
	if n < 0 {
		return -n
	}
	return n
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// checkZips checks that zipped names are parameters, each in one group.
func (p *parser) checkZips(names map[string]*Param) {
	inZip := map[string]bool{}
	for _, z := range p.plan.Zips {
		for _, n := range z.Names {
			switch {
			case names[n.Text] == nil:
				p.errorf(n.Pos, "zip: unknown parameter %s", n.Text)
			case inZip[n.Text]:
				p.errorf(n.Pos, "zip: parameter %s is already zipped", n.Text)
			}
			inZip[n.Text] = true
		}
	}
}

// typeConstraint checks a constraint's names and types.
func (p *parser) typeConstraint(c *Constraint, names map[string]*Param) {
	t, ok := p.typeOf(c.Expr, func(name string) (ExprType, bool) {
		q := names[name]
		if q == nil {
			return NumberType, false
		}
		if q.Type.Numeric() {
			return NumberType, true
		}
		return StringType, true
	})
	if ok && t != BoolType {
		p.errorf(c.Expr.Start(), "constraint must be a comparison or a condition, not a %s", t)
	}
}

// checkDomain checks a parameter's domain against its type.
func (p *parser) checkDomain(q *Param) {
	d := &q.Domain
	if d.Kind == NoDomain {
		p.warnf(q.Pos, "parameter %s has no values, so the plan has no jobs", q.Name)
		return
	}
	switch d.Kind {
	case Range, Random:
		if !q.Type.Numeric() {
			p.errorf(d.Pos, "parameter %s: %s needs an integer or float parameter, not %s", q.Name, d.Kind, q.Type)
			return
		}
		p.checkRange(q)
	case Single, AnyOf, OneOf:
		if q.Type == Files && d.Kind != AnyOf {
			p.errorf(d.Pos, "parameter %s: files takes select anyof \"GLOB\"...", q.Name)
			return
		}
		for _, v := range append(append([]Value(nil), d.Values...), d.Defaults...) {
			p.checkValue(q, v)
		}
	case FromFile:
		if q.Type == Files {
			p.errorf(d.Pos, "parameter %s: files takes select anyof \"GLOB\"...", q.Name)
		}
	}
}

// checkValue checks that a listed value suits the parameter's type.
func (p *parser) checkValue(q *Param, v Value) {
	switch q.Type {
	case Integer:
		if n, ok := parseNumber(v.Text); !ok || !n.IsInt {
			p.errorf(v.Pos, "parameter %s: %q is not an integer", q.Name, shorten(v.Text))
		}
	case Float:
		if _, ok := parseNumber(v.Text); !ok {
			p.errorf(v.Pos, "parameter %s: %q is not a number", q.Name, shorten(v.Text))
		}
	}
}

// parseNumber reads a number literal.
func parseNumber(s string) (Number, bool) {
	if !isNumber(s) {
		return Number{}, false
	}
	return newNumber(s), true
}

// checkRange checks range and random bounds, step and points.
func (p *parser) checkRange(q *Param) {
	d := &q.Domain
	if q.Type == Integer {
		for _, n := range []*Number{&d.From, &d.To, d.Step} {
			if n != nil && !n.IsInt {
				p.errorf(n.Pos, "parameter %s: integer %s needs whole numbers, found %s", q.Name, d.Kind, n.Text)
				return
			}
		}
	}
	for _, n := range []*Number{&d.From, &d.To, d.Step} {
		if n != nil && (math.IsInf(n.F, 0) || math.IsNaN(n.F)) {
			p.errorf(n.Pos, "parameter %s: %s is out of range", q.Name, n.Text)
			return
		}
	}
	if d.Points != nil {
		if !d.Points.IsInt || d.Points.I < 1 {
			p.errorf(d.Points.Pos, "parameter %s: points must be a whole number of at least 1, found %s", q.Name, d.Points.Text)
			return
		}
		if d.Kind == Range && q.Type == Integer && d.Points.I > 1 {
			span := math.Abs(d.To.F - d.From.F)
			if float64(d.Points.I-1) > span {
				p.errorf(d.Points.Pos, "parameter %s: %d points from %s to %s round to repeated integers", q.Name, d.Points.I, d.From.Text, d.To.Text)
			}
		}
		return
	}
	if d.Kind == Random {
		if d.To.F < d.From.F {
			p.errorf(d.To.Pos, "parameter %s: random from %s to %s: the upper bound is below the lower", q.Name, d.From.Text, d.To.Text)
		}
		return
	}
	step := 1.0
	if d.Step != nil {
		step = d.Step.F
	}
	switch {
	case step == 0:
		p.errorf(d.Step.Pos, "parameter %s: step 0 never reaches %s", q.Name, d.To.Text)
	case d.To.F > d.From.F && step < 0, d.To.F < d.From.F && step > 0:
		at := d.To.Pos
		if d.Step != nil {
			at = d.Step.Pos
		}
		p.errorf(at, "parameter %s: range from %s to %s with step %g never reaches the end", q.Name, d.From.Text, d.To.Text, step)
	}
}
