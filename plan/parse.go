package plan

import (
	"bytes"
	"fmt"
	"orrery/suggest"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Options control how a plan is read.
type Options struct {
	// Dialect, when set, overrides the dialect detected from the text.
	Dialect *Dialect
}

// Statement and command keywords, for suggestions.
var (
	statementWords = []string{"parameter", "variable", "jobs", "endjobs", "task", "endtask", "constraint", "zip"}
	commandWords   = []string{"copy", "execute", "node:execute", "root:execute", "exec", "lexec", "lpexec",
		"shexec", "substitute", "node:substitute", "onerror", "redirect", "endtask"}
	taskNames   = []string{TaskRootStart, TaskNodeStart, TaskMain, TaskRootFinish}
	typeWords   = []string{"integer", "float", "text", "files", "fromfile"}
	domainWords = []string{"range", "random", "select", "default", "fromfile"}
)

// errTooMany stops parsing once MaxErrors errors are known.
type errTooMany struct{}

// parser reads statements from the lexer and builds a Plan.
type parser struct {
	file     string
	lex      *lexer
	errs     ErrorList
	plan     *Plan
	classic  string // the first classic-only construct seen, with position
	task     *Task  // the task being read, or nil
	jobs     *JobsBlock
	jobsDone bool
	stmt     []item // the statement being read
	term     item   // what ended it
	lastPos  Pos
	lastJob  uint64 // the number of the previous job line
	varIndex map[int]*Variable
}

// Parse reads and checks a plan or run file. name is used in messages.
// On failure the error is an ErrorList with every error found (up to
// MaxErrors), each "FILE:LINE:COL: message".
func Parse(name string, src []byte, opts Options) (*Plan, error) {
	p := &parser{file: name, plan: &Plan{File: name}, varIndex: map[int]*Variable{}}
	if i := bytes.IndexByte(src, 0); i >= 0 {
		return nil, ErrorList{{File: name, Pos: posAt(src, i), Msg: "binary data (a NUL byte): not a plan file"}}
	}
	p.plan.Source = string(src)
	p.lex = newLexer(p.plan.Source)
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(errTooMany); !ok {
					panic(r)
				}
			}
		}()
		p.parse()
		p.plan.Dialect = Modern
		if p.classic != "" {
			p.plan.Dialect = Classic
			p.plan.DialectReason = p.classic
		}
		if opts.Dialect != nil {
			p.plan.Dialect = *opts.Dialect
			p.plan.DialectReason = ""
		}
		p.check()
	}()
	if len(p.errs) > 0 {
		errs := p.errs.sort()
		if len(errs) > MaxErrors {
			errs = append(errs[:MaxErrors:MaxErrors], &Error{File: name, Pos: errs[MaxErrors-1].Pos, Msg: "too many errors"})
		}
		return nil, errs
	}
	return p.plan, nil
}

// posAt returns the position of byte offset off in src.
func posAt(src []byte, off int) Pos {
	line := 1 + bytes.Count(src[:off], []byte("\n"))
	start := bytes.LastIndexByte(src[:off], '\n') + 1
	return Pos{line, 1 + utf8.RuneCount(src[start:off])}
}

// errorf records an error; after MaxErrors it stops the parse.
func (p *parser) errorf(pos Pos, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Pos: pos, Msg: fmt.Sprintf(format, args...)})
	if len(p.errs) > MaxErrors {
		panic(errTooMany{})
	}
}

// warnf records a warning.
func (p *parser) warnf(pos Pos, format string, args ...any) {
	p.plan.Warnings = append(p.plan.Warnings, Warning{File: p.file, Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// markClassic notes a classic-only construct.
func (p *parser) markClassic(pos Pos, what string) {
	if p.classic == "" {
		p.classic = fmt.Sprintf("%s at %d:%d", what, pos.Line, pos.Col)
	}
}

// readStatement collects the items of the next statement into p.stmt.
// It reports false at the end of the file.
func (p *parser) readStatement() bool {
	p.stmt = p.stmt[:0]
	for {
		it := p.lex.nextItem()
		switch it.typ {
		case itemError:
			p.errorf(it.pos, "%s", it.val)
		case itemEOF:
			p.term = it
			p.lastPos = it.pos
			return len(p.stmt) > 0
		case itemNewline, itemSemi:
			if it.typ == itemSemi {
				p.markClassic(it.pos, "';'")
			}
			if len(p.stmt) > 0 {
				p.term = it
				return true
			}
		default:
			p.stmt = append(p.stmt, it)
		}
	}
}

// parse reads every statement.
func (p *parser) parse() {
	for p.readStatement() {
		first := p.stmt[0]
		word := first.val
		if first.typ != itemWord {
			word = ""
		}
		switch {
		case p.jobs != nil && !p.jobsDone:
			p.jobLine()
		case p.task != nil:
			p.command()
		case word == "parameter":
			p.param()
		case word == "variable":
			p.variable()
		case word == "jobs":
			p.startJobs()
		case word == "task":
			p.startTask()
		case word == "constraint":
			p.constraint()
		case word == "zip":
			p.zip()
		case word == "endtask":
			p.errorf(first.pos, "endtask without task")
		case word == "endjobs":
			p.errorf(first.pos, "endjobs without jobs")
		default:
			p.errorf(first.pos, "unknown statement %s%s", first, suggest.DidYouMean(word, statementWords))
		}
	}
	if p.task != nil {
		p.errorf(p.task.Pos, "task %s has no endtask", p.task.Name)
		p.plan.Tasks = append(p.plan.Tasks, p.task)
		p.task = nil
	}
	if p.jobs != nil && !p.jobsDone {
		p.errorf(p.jobs.Pos, "jobs block has no endjobs")
	}
}

// expectEnd reports items after the end of a statement's grammar.
func (p *parser) expectEnd(rest []item, what string) {
	if len(rest) > 0 {
		p.errorf(rest[0].pos, "unexpected %s after %s", rest[0], what)
	}
}

// word returns the text of an item that may be a word or a string.
func itemText(it item) string {
	if it.typ == itemString {
		return decodeValue(it.val, true)
	}
	return decodeValue(it.val, false)
}

// value makes a Value of a word or string item.
func (p *parser) value(it item) (Value, bool) {
	if it.typ != itemWord && it.typ != itemString {
		p.errorf(it.pos, "expected a value, found %s", it)
		return Value{}, false
	}
	return Value{Pos: it.pos, Text: itemText(it), Quoted: it.typ == itemString}, true
}

// number reads a numeric literal.
func (p *parser) number(it item, what string) (Number, bool) {
	text := itemText(it)
	if it.typ != itemWord && it.typ != itemString || !isNumber(text) {
		p.errorf(it.pos, "%s: expected a number, found %s", what, it)
		return Number{}, false
	}
	n := newNumber(text)
	n.Pos = it.pos
	return n, true
}

// newNumber makes a Number of a literal that isNumber accepts.
func newNumber(text string) Number {
	n := Number{Text: text}
	n.F, _ = strconv.ParseFloat(text, 64)
	if i, err := strconv.ParseInt(strings.TrimPrefix(text, "+"), 10, 64); err == nil {
		n.I, n.IsInt = i, true
	}
	return n
}

// isNumber reports whether s is a decimal number: [+-]digits[.digits][e[+-]digits].
func isNumber(s string) bool {
	i := 0
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		i++
	}
	digits := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
		digits++
	}
	if i < len(s) && s[i] == '.' {
		i++
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			digits++
		}
	}
	if digits == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		exp := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
			exp++
		}
		if exp == 0 {
			return false
		}
	}
	return i == len(s)
}

// name reads an identifier.
func (p *parser) name(it item, what string) (string, bool) {
	if it.typ != itemWord || !isIdent(it.val) {
		p.errorf(it.pos, "%s: expected a name, found %s", what, it)
		return "", false
	}
	return it.val, true
}

// variable parses `variable NAME index I list V…`.
func (p *parser) variable() {
	s := p.stmt
	v := &Variable{Pos: s[0].pos}
	if len(s) < 4 || s[2].val != "index" || s[2].typ != itemWord {
		p.errorf(s[0].pos, "expected: variable NAME index N list VALUE...")
		return
	}
	var ok bool
	if v.Name, ok = p.name(s[1], "variable"); !ok {
		return
	}
	idx, err := strconv.Atoi(s[3].val)
	if s[3].typ != itemWord || err != nil || idx < 0 {
		p.errorf(s[3].pos, "variable %s: index must be a whole number, found %s", v.Name, s[3])
		return
	}
	v.Index = idx
	rest := s[4:]
	if len(rest) > 0 {
		if rest[0].typ != itemWord || rest[0].val != "list" {
			p.errorf(rest[0].pos, "variable %s: expected list, found %s", v.Name, rest[0])
			return
		}
		for _, it := range rest[1:] {
			if val, ok := p.value(it); ok {
				v.Values = append(v.Values, val)
			}
		}
	}
	if p.jobs != nil {
		p.errorf(v.Pos, "variable %s is declared after the jobs block", v.Name)
		return
	}
	for _, o := range p.plan.Vars {
		if o.Name == v.Name {
			p.errorf(s[1].pos, "duplicate variable %s (first declared at %s)", v.Name, o.Pos)
			return
		}
	}
	if o, dup := p.varIndex[idx]; dup {
		p.errorf(s[3].pos, "duplicate variable index %d (variable %s already has it)", idx, o.Name)
		return
	}
	switch n := len(p.plan.Vars); {
	case n == 0 && idx != 0:
		p.errorf(s[3].pos, "first variable index is %d, want 0", idx)
	case n > 0 && idx != p.plan.Vars[n-1].Index+1:
		p.errorf(s[3].pos, "variable index %d is not consecutive: it follows index %d", idx, p.plan.Vars[n-1].Index)
	}
	p.varIndex[idx] = v
	p.plan.Vars = append(p.plan.Vars, v)
}

// startJobs begins a `jobs` block.
func (p *parser) startJobs() {
	if p.jobs != nil {
		p.errorf(p.stmt[0].pos, "a second jobs block")
	}
	p.expectEnd(p.stmt[1:], "jobs")
	p.jobs = &JobsBlock{Pos: p.stmt[0].pos, NVars: len(p.plan.Vars)}
	p.jobsDone = false
	if p.plan.Jobs == nil {
		p.plan.Jobs = p.jobs
	}
}

// jobLine parses one line of a jobs block, or `endjobs`.
func (p *parser) jobLine() {
	s := p.stmt
	b := p.jobs
	if s[0].typ == itemWord && s[0].val == "endjobs" {
		p.expectEnd(s[1:], "endjobs")
		p.jobsDone = true
		return
	}
	num, err := strconv.ParseUint(s[0].val, 10, 63)
	if s[0].typ != itemWord || err != nil {
		if suggest.Nearest(s[0].val, []string{"endjobs"}) != "" || s[0].val == "task" {
			p.errorf(s[0].pos, "expected a job line or endjobs, found %s", s[0])
		} else {
			p.errorf(s[0].pos, "job number must be a whole number, found %s", s[0])
		}
		return
	}
	switch {
	case b.N == 0 && num != 1:
		p.errorf(s[0].pos, "first job is %s, want 0001", s[0].val)
	case b.N > 0 && num != p.lastJob+1:
		p.errorf(s[0].pos, "job %s is not consecutive: it follows job %0*d", s[0].val, len(s[0].val), p.lastJob)
	}
	p.lastJob = num
	vals := s[1:]
	if len(vals) != b.NVars {
		p.errorf(s[0].pos, "job %s names %d values, want %d (one per variable)", s[0].val, len(vals), b.NVars)
		b.N++
		b.Index = append(b.Index, make([]uint32, b.NVars)...)
		return
	}
	for i, it := range vals {
		v := p.plan.Vars[i]
		idx, err := strconv.ParseUint(it.val, 10, 32)
		switch {
		case it.typ != itemWord || err != nil:
			p.errorf(it.pos, "job %s: value index for %s must be a whole number, found %s", s[0].val, v.Name, it)
		case idx >= uint64(len(v.Values)):
			p.errorf(it.pos, "job %s: value index %d is out of range for %s (it has %d values)", s[0].val, idx, v.Name, len(v.Values))
		}
		b.Index = append(b.Index, uint32(idx))
	}
	b.N++
}

// startTask begins a `task NAME` block.
func (p *parser) startTask() {
	s := p.stmt
	if len(s) < 2 {
		p.errorf(s[0].pos, "task needs a name: one of %s", strings.Join(taskNames, ", "))
		p.task = &Task{Pos: s[0].pos}
		return
	}
	name := s[1].val
	t := &Task{Pos: s[1].pos, Name: name}
	p.expectEnd(s[2:], "task "+name)
	known := false
	for _, n := range taskNames {
		known = known || n == name
	}
	if !known {
		p.errorf(s[1].pos, "unknown task %s%s", s[1], suggest.DidYouMean(name, taskNames))
	}
	if name == TaskRootStart || name == TaskRootFinish {
		p.markClassic(s[1].pos, "task "+name)
	}
	p.task = t
}

// constraint parses `constraint EXPR`.
func (p *parser) constraint() {
	s := p.stmt
	if len(s) < 2 {
		p.errorf(s[0].pos, "constraint needs an expression")
		return
	}
	ep := exprParser{p: p, items: s[1:]}
	e := ep.parse()
	if e == nil {
		return
	}
	p.plan.Constraints = append(p.plan.Constraints, &Constraint{Pos: s[0].pos, Expr: e})
}

// zip parses `zip A B …`.
func (p *parser) zip() {
	s := p.stmt
	z := &Zip{Pos: s[0].pos}
	for _, it := range s[1:] {
		if name, ok := p.name(it, "zip"); ok {
			z.Names = append(z.Names, Value{Pos: it.pos, Text: name})
		}
	}
	if len(s) < 3 {
		p.errorf(s[0].pos, "zip needs at least two parameters")
		return
	}
	p.plan.Zips = append(p.plan.Zips, z)
}
