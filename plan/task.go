package plan

import (
	"orrery/suggest"
	"strings"
)

// command parses one command inside a task, or `endtask`.
func (p *parser) command() {
	s := p.stmt
	t := p.task
	head := s[0]
	if head.typ != itemWord {
		p.errorf(head.pos, "expected a command, found %s", head)
		return
	}
	c := &Command{Pos: head.pos, Keyword: head.val}
	args := s[1:]
	switch head.val {
	case "endtask":
		p.expectEnd(args, "endtask")
		p.plan.Tasks = append(p.plan.Tasks, t)
		p.task = nil
		return
	case "task":
		p.errorf(t.Pos, "task %s has no endtask", t.Name)
		p.plan.Tasks = append(p.plan.Tasks, t)
		p.task = nil
		p.startTask()
		return
	case "copy":
		c.Op = OpCopy
		if !p.twoPaths(c, args) {
			return
		}
	case "substitute", "node:substitute":
		p.markClassic(head.pos, head.val)
		c.Op = OpSubstitute
		if !p.twoPaths(c, args) {
			return
		}
	case "execute", "node:execute", "root:execute", "shexec":
		if head.val != "shexec" {
			p.markClassic(head.pos, head.val)
		}
		c.Op = OpShell
		if !p.shellText(c, args) {
			return
		}
	case "exec", "lexec", "lpexec":
		c.Op = map[string]Op{"exec": OpExec, "lexec": OpLexec, "lpexec": OpLpexec}[head.val]
		groups := joinArgs(args)
		need := 1
		if c.Op != OpExec {
			need = 2
		}
		if len(groups) < need {
			what := "a program"
			if need == 2 {
				what = "a program and argv[0]"
			}
			p.errorf(head.pos, "%s needs %s", head.val, what)
			return
		}
		for _, g := range groups {
			c.Args = append(c.Args, argTemplate(g))
		}
	case "onerror":
		c.Op = OpOnError
		if len(args) != 1 || !isWord(args[0], "fail") && !isWord(args[0], "ignore") {
			p.errorf(head.pos, "expected onerror fail or onerror ignore")
			return
		}
		c.Ignore = args[0].val == "ignore"
	case "redirect":
		c.Op = OpRedirect
		if !p.redirect(c, args) {
			return
		}
	default:
		p.errorf(head.pos, "unknown command %s%s", head, suggest.DidYouMean(head.val, commandWords))
		return
	}
	t.Commands = append(t.Commands, c)
}

// joinArgs groups items that touch (no blank between them) into one
// argument each, so node:"a b" is one argument.
func joinArgs(items []item) [][]item {
	var groups [][]item
	for i, it := range items {
		if i > 0 && it.joined {
			groups[len(groups)-1] = append(groups[len(groups)-1], it)
			continue
		}
		groups = append(groups, []item{it})
	}
	return groups
}

// argTemplate makes the template of one argument.
func argTemplate(g []item) Template {
	var t Template
	for i, it := range g {
		part := decodeText(it.raw, it.pos, it.typ == itemString, true)
		if i == 0 {
			t.Pos = it.pos
		}
		t.Parts = appendParts(t.Parts, part.Parts)
	}
	return t
}

// appendParts appends parts, merging adjacent literal text.
func appendParts(dst, src []Part) []Part {
	for _, p := range src {
		if p.Text == "" && !p.Var {
			continue
		}
		if n := len(dst); n > 0 && !p.Var && !dst[n-1].Var {
			dst[n-1].Text += p.Text
			continue
		}
		dst = append(dst, p)
	}
	if len(dst) == 0 {
		dst = []Part{{}}
	}
	return dst
}

// twoPaths parses the SRC and DST of copy and substitute.
func (p *parser) twoPaths(c *Command, args []item) bool {
	groups := joinArgs(args)
	if len(groups) != 2 {
		at := c.Pos
		if len(groups) > 2 {
			at = groups[2][0].pos
		}
		p.errorf(at, "%s needs a source and a destination, found %d arguments", c.Keyword, len(groups))
		return false
	}
	c.Src = pathArg(groups[0])
	c.Dst = pathArg(groups[1])
	if c.Src.Path.String() == "" || c.Dst.Path.String() == "" {
		p.errorf(c.Pos, "%s: empty path", c.Keyword)
		return false
	}
	return true
}

// pathArg reads `[root:|node:]PATH`.
func pathArg(g []item) Path {
	first := g[0]
	path := Path{Pos: first.pos}
	if first.typ == itemWord {
		for _, side := range []Side{Root, Node} {
			prefix := side.String() + ":"
			if strings.HasPrefix(first.val, prefix) {
				path.Side, path.Explicit = side, true
				rest := first
				rest.val = first.val[len(prefix):]
				if rest.raw == first.val {
					rest.raw = rest.val
					rest.pos.Col += len(prefix)
				} else {
					rest.raw = rest.val // a splice inside: positions of the rest are approximate
				}
				g = append([]item{rest}, g[1:]...)
				break
			}
		}
	}
	path.Path = argTemplate(g)
	path.Path.Pos = path.Pos
	return path
}

// shellText parses the text of execute and shexec.
func (p *parser) shellText(c *Command, args []item) bool {
	if len(args) == 0 {
		p.errorf(c.Pos, "%s needs a command line", c.Keyword)
		return false
	}
	it := args[0]
	c.Args = []Template{decodeText(it.raw, it.pos, it.typ == itemString, true)}
	switch c.Keyword {
	case "root:execute":
		c.Where = Root
	case "node:execute":
		c.Where = Node
	default:
		c.Where = Node
		if p.task.OnRoot() {
			c.Where = Root
		}
	}
	return true
}

// redirect parses `redirect stdout|stderr [append] to FILE` and
// `redirect stdout|stderr off`.
func (p *parser) redirect(c *Command, args []item) bool {
	bad := func() bool {
		p.errorf(c.Pos, "expected redirect stdout|stderr [append] to FILE, or redirect stdout|stderr off")
		return false
	}
	if len(args) < 2 || !isWord(args[0], "stdout") && !isWord(args[0], "stderr") {
		return bad()
	}
	c.Stream = args[0].val
	rest := args[1:]
	if isWord(rest[0], "off") {
		c.Off = true
		p.expectEnd(rest[1:], "redirect "+c.Stream+" off")
		return true
	}
	if isWord(rest[0], "append") {
		c.Append = true
		rest = rest[1:]
	}
	if len(rest) < 2 || !isWord(rest[0], "to") {
		return bad()
	}
	groups := joinArgs(rest[1:])
	if len(groups) != 1 {
		p.errorf(groups[1][0].pos, "redirect: unexpected %s after the file name", groups[1][0])
		return false
	}
	c.File = argTemplate(groups[0])
	return true
}
