package sim

// The workload block of a scenario file: job groups and their
// distributions.

// workload reads `workload NAME [order random|given]`.
func (p *parser) workload(t []token) {
	if !p.count(t, -2) {
		return
	}
	w := Workload{Name: t[1].text, Order: "random"}
	ok := p.define("workload", t[1])
	c := &cursor{p: p, toks: t, i: 2}
	p.attrs(c, "workload", []string{"order"}, func(kw token) {
		if v, ok := c.arg(kw); ok {
			if v.text != "random" && v.text != "given" {
				p.errorf(v, "order %q: want random or given", v.text)
			}
			w.Order = v.text
		}
	})
	p.sc.Workloads = append(p.sc.Workloads, w)
	i := len(p.sc.Workloads) - 1
	p.open = &block{kw: t[0], name: w.Name, index: i}
	if ok {
		p.later = append(p.later, func() {
			if len(p.sc.Workloads[i].Groups) == 0 {
				p.errorf(t[0], "workload %s has no jobs", w.Name)
			}
		})
	}
}

// jobs reads `jobs N work DIST [memory DIST] [stage-in SIZE]
// [stage-out SIZE] [predictable F]` inside a workload block.
func (p *parser) jobs(t []token) {
	if !p.count(t, -2) {
		return
	}
	var g JobGroup
	g.Count, _ = p.integer(t[1], "jobs", 1)
	var units []bool // which of Work.A and Work.B are in units
	hasWork := false
	c := &cursor{p: p, toks: t, i: 2}
	p.attrs(c, "jobs", []string{"work", "memory", "stage-in", "stage-out", "predictable"}, func(kw token) {
		switch kw.text {
		case "work":
			hasWork = true
			g.Work = p.dist(c, kw, true, func(v token) (float64, bool) {
				w, u, ok := p.work(v)
				units = append(units, u)
				return w, ok
			})
		case "memory":
			g.Memory = p.dist(c, kw, false, func(v token) (float64, bool) {
				s, ok := p.size(v, "memory")
				return float64(s), ok
			})
		case "stage-in", "stage-out", "predictable":
			p.jobAttr(c, kw, &g)
		}
	})
	if !hasWork {
		p.errorf(t[0], "jobs needs work: work GHZ-SECONDS, or work Nu in work units")
	}
	w := &p.sc.Workloads[p.open.index]
	w.Groups = append(w.Groups, g)
	wi, gi := p.open.index, len(w.Groups)-1
	p.later = append(p.later, func() { // the unit may come later in the file
		d := &p.sc.Workloads[wi].Groups[gi].Work
		for i, u := range units {
			if u && i == 0 {
				d.A *= p.unit
			} else if u {
				d.B *= p.unit
			}
		}
	})
}

// jobAttr reads stage-in, stage-out or predictable.
func (p *parser) jobAttr(c *cursor, kw token, g *JobGroup) {
	v, ok := c.arg(kw)
	if !ok {
		return
	}
	switch kw.text {
	case "stage-in":
		g.StageIn, _ = p.size(v, kw.text)
	case "stage-out":
		g.StageOut, _ = p.size(v, kw.text)
	case "predictable":
		if f, ok := p.number(v, kw.text); ok {
			if f > 1 {
				p.errorf(v, "predictable %q: want a share from 0 to 1", v.text)
			}
			g.Predictable = f
		}
	}
}

// dist reads a distribution: VALUE, fixed VALUE, uniform A B or lognormal
// MEAN CV. value reads A and B; positive says they must be above 0.
func (p *parser) dist(c *cursor, kw token, positive bool, value func(token) (float64, bool)) Dist {
	first, ok := c.arg(kw)
	if !ok {
		return Dist{}
	}
	d := Dist{Kind: first.text}
	var okA, okB bool
	switch first.text {
	case "uniform":
		if a, ok := c.arg(kw); ok {
			d.A, okA = value(a)
		}
		if b, ok := c.arg(kw); ok {
			d.B, okB = value(b)
			if okA && okB && d.B < d.A {
				p.errorf(b, "%s uniform %s %s: the upper end is below the lower", kw.text, c.toks[c.i-2].text, b.text)
			}
		}
	case "lognormal":
		if a, ok := c.arg(kw); ok {
			d.A, okA = value(a)
			okA = okA && p.positive(a, kw.text+" mean", d.A)
		}
		if b, ok := c.arg(kw); ok {
			d.B, _ = p.number(b, kw.text+" CV")
		}
	case "fixed":
		first, ok = c.arg(kw)
		if !ok {
			return d
		}
		fallthrough
	default:
		d.Kind = "fixed"
		d.A, okA = value(first)
	}
	if positive && okA && d.A <= 0 {
		p.errorf(c.toks[c.i-1], "%s must be above 0", kw.text)
	}
	return d
}
