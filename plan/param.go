package plan

import "orrery/suggest"

// param parses `parameter NAME [label TEXT] [TYPE [DOMAIN]]`.
func (p *parser) param() {
	s := p.stmt
	if len(s) < 2 {
		p.errorf(s[0].pos, "parameter needs a name")
		return
	}
	name, ok := p.name(s[1], "parameter")
	if !ok {
		return
	}
	q := &Param{Pos: s[1].pos, Name: name}
	rest := s[2:]
	if len(rest) > 0 && isWord(rest[0], "label") {
		if len(rest) < 2 {
			p.errorf(rest[0].pos, "parameter %s: label needs a text", name)
			return
		}
		q.Label = itemText(rest[1])
		rest = rest[2:]
	}
	if len(rest) > 0 {
		rest = p.paramType(q, rest)
	}
	if rest == nil {
		return
	}
	if len(rest) > 0 {
		q.Domain.Pos = rest[0].pos
		if !p.domain(q, rest) {
			return
		}
	}
	p.plan.Params = append(p.plan.Params, q)
}

func isWord(it item, w string) bool { return it.typ == itemWord && it.val == w }

// paramType reads the type keyword; it returns the items after it, or nil
// after an error.
func (p *parser) paramType(q *Param, rest []item) []item {
	t := rest[0]
	q.TypePos = t.pos
	switch {
	case isWord(t, "integer"):
		q.Type = Integer
	case isWord(t, "float"):
		q.Type = Float
	case isWord(t, "text"):
		q.Type = Text
	case isWord(t, "files"):
		q.Type = Files
	case isWord(t, "fromfile"):
		// classic: `parameter NAME fromfile FILE` is a text parameter.
		q.Type = Text
		return rest
	case t.typ == itemWord && (t.val == "range" || t.val == "random" || t.val == "select" || t.val == "default"):
		p.errorf(t.pos, "parameter %s: missing type before %s (integer, float, text or files)", q.Name, t.val)
		return nil
	default:
		if t.typ == itemWord && t.val != "" && !isNumber(t.val) {
			p.errorf(t.pos, "parameter %s: unknown type %s%s", q.Name, t, suggest.DidYouMean(t.val, typeWords))
		} else {
			p.errorf(t.pos, "parameter %s: expected a type (integer, float, text or files), found %s", q.Name, t)
		}
		return nil
	}
	return rest[1:]
}

// domain parses a parameter's domain.
func (p *parser) domain(q *Param, s []item) bool {
	d := &q.Domain
	head := s[0]
	switch {
	case isWord(head, "range"), isWord(head, "random"):
		d.Kind = Range
		if head.val == "random" {
			d.Kind = Random
		}
		return p.rangeDomain(q, s)
	case isWord(head, "select"):
		return p.selectDomain(q, s)
	case isWord(head, "fromfile"):
		p.markClassic(head.pos, "fromfile")
		d.Kind = FromFile
		if len(s) < 2 {
			p.errorf(head.pos, "parameter %s: fromfile needs a file name", q.Name)
			return false
		}
		v, ok := p.value(s[1])
		d.File = v
		p.expectEnd(s[2:], "fromfile "+v.Text)
		return ok
	case isWord(head, "default"):
		if len(s) < 2 {
			p.errorf(head.pos, "parameter %s: default needs a value", q.Name)
			return false
		}
		s = s[1:]
	}
	if len(s) > 1 && head.typ == itemWord {
		if near := suggest.Nearest(head.val, domainWords); near != "" {
			p.errorf(head.pos, "parameter %s: unknown domain %s (did you mean %s?)", q.Name, head, near)
			return false
		}
	}
	d.Kind = Single
	v, ok := p.value(s[0])
	if !ok {
		return false
	}
	if len(s) > 1 {
		p.errorf(s[1].pos, "parameter %s: unexpected %s after the value (use select anyof for several values)", q.Name, s[1])
		return false
	}
	d.Values = []Value{v}
	return true
}

// rangeDomain parses `range|random from A to B [step S] [points N]`.
func (p *parser) rangeDomain(q *Param, s []item) bool {
	d := &q.Domain
	kw := s[0].val
	if len(s) < 5 || !isWord(s[1], "from") || !isWord(s[3], "to") {
		p.errorf(s[0].pos, "parameter %s: expected %s from A to B", q.Name, kw)
		return false
	}
	var ok1, ok2 bool
	d.From, ok1 = p.number(s[2], "parameter "+q.Name)
	d.To, ok2 = p.number(s[4], "parameter "+q.Name)
	s = s[5:]
	for len(s) > 0 {
		w := s[0]
		if !(isWord(w, "step") && kw == "range") && !isWord(w, "points") {
			p.errorf(w.pos, "parameter %s: unexpected %s in %s", q.Name, w, kw)
			return false
		}
		if len(s) < 2 {
			p.errorf(w.pos, "parameter %s: %s needs a number", q.Name, w.val)
			return false
		}
		if d.Step != nil || d.Points != nil {
			p.errorf(w.pos, "parameter %s: give either step or points, once", q.Name)
			return false
		}
		n, ok := p.number(s[1], "parameter "+q.Name)
		if !ok {
			return false
		}
		if w.val == "step" {
			d.Step = &n
		} else {
			d.Points = &n
		}
		s = s[2:]
	}
	return ok1 && ok2
}

// selectDomain parses `select anyof|oneof V… [default V…]`.
func (p *parser) selectDomain(q *Param, s []item) bool {
	d := &q.Domain
	if len(s) < 2 || !isWord(s[1], "anyof") && !isWord(s[1], "oneof") {
		at, hint := s[0].pos, ""
		if len(s) > 1 {
			at, hint = s[1].pos, suggest.DidYouMean(s[1].val, []string{"anyof", "oneof"})
		}
		p.errorf(at, "parameter %s: expected select anyof or select oneof%s", q.Name, hint)
		return false
	}
	d.Kind = AnyOf
	if s[1].val == "oneof" {
		d.Kind = OneOf
		p.markClassic(s[1].pos, "select oneof")
	}
	list := &d.Values
	inDefault := false
	for _, it := range s[2:] {
		if isWord(it, "default") && !inDefault {
			inDefault = true
			list = &d.Defaults
			continue
		}
		v, ok := p.value(it)
		if !ok {
			return false
		}
		*list = append(*list, v)
	}
	switch {
	case len(d.Values) == 0:
		p.errorf(s[1].pos, "parameter %s: select %s needs at least one value", q.Name, s[1].val)
		return false
	case inDefault && len(d.Defaults) == 0:
		p.errorf(s[len(s)-1].pos, "parameter %s: default needs a value", q.Name)
		return false
	case d.Kind == OneOf && len(d.Defaults) > 1:
		p.errorf(d.Defaults[1].Pos, "parameter %s: select oneof takes one default", q.Name)
		return false
	}
	return true
}
