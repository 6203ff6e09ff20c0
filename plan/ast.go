package plan

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Pos is a position in a plan file: a 1-based line and a 1-based column
// counted in characters (a tab is one character).
type Pos struct {
	Line, Col int
}

// String returns "LINE:COL".
func (p Pos) String() string { return fmt.Sprintf("%d:%d", p.Line, p.Col) }

// Dialect is one of the two plan-file dialects.
type Dialect int

// The dialects. Classic is Nimrod/G 3–4 and EnFuzion; Modern is nimrodg.
const (
	Modern Dialect = iota
	Classic
)

// String returns "modern" or "classic".
func (d Dialect) String() string {
	if d == Classic {
		return "classic"
	}
	return "modern"
}

// ParseDialect reads "classic" or "modern".
func ParseDialect(s string) (Dialect, error) {
	switch s {
	case "classic":
		return Classic, nil
	case "modern":
		return Modern, nil
	}
	return Modern, fmt.Errorf("unknown dialect %q (want classic or modern)", s)
}

// Type is a parameter's type.
type Type int

// Parameter types. TypeNone is a parameter declared without a type.
const (
	TypeNone Type = iota
	Integer
	Float
	Text
	Files
)

var typeNames = [...]string{"none", "integer", "float", "text", "files"}

// String returns the type's keyword ("none" for TypeNone).
func (t Type) String() string { return typeNames[t] }

// Numeric reports whether values of the type are numbers.
func (t Type) Numeric() bool { return t == Integer || t == Float }

// DomainKind says which form a parameter's domain takes.
type DomainKind int

// Domain kinds.
const (
	NoDomain DomainKind = iota // no values at all
	Single                     // VALUE or default VALUE
	Range                      // range from A to B [step S | points N]
	Random                     // random from A to B [points N]
	AnyOf                      // select anyof V… [default V…]
	OneOf                      // select oneof V… [default V]
	FromFile                   // fromfile FILE
)

var domainNames = [...]string{"none", "single", "range", "random", "anyof", "oneof", "fromfile"}

// String returns a short name for the kind.
func (k DomainKind) String() string { return domainNames[k] }

// Value is a literal value as written: a quoted string (escapes decoded)
// or an unquoted word.
type Value struct {
	Pos    Pos
	Text   string
	Quoted bool
}

// Number is a numeric literal of a domain.
type Number struct {
	Pos   Pos
	Text  string
	F     float64
	I     int64
	IsInt bool // the literal is an integer that fits in int64
}

// Domain is the set of values a parameter takes, as written.
type Domain struct {
	Kind     DomainKind
	Pos      Pos
	From, To Number
	Step     *Number // range only
	Points   *Number // range and random
	Values   []Value // Single (one), AnyOf, OneOf
	Defaults []Value // the default list of a select (OneOf: at most one)
	File     Value   // FromFile
}

// Param is a `parameter` statement.
type Param struct {
	Pos     Pos
	Name    string
	Label   string
	Type    Type
	TypePos Pos
	Domain  Domain
}

// Variable is a run file's `variable NAME index I list V…` statement.
type Variable struct {
	Pos    Pos
	Name   string
	Index  int
	Values []Value
}

// JobsBlock is a run file's `jobs … endjobs` block: each job names one
// value index per variable, in variable-index order.
type JobsBlock struct {
	Pos   Pos
	N     int      // number of jobs
	NVars int      // values per job
	Index []uint32 // len(Index) == N*NVars, job-major
}

// Count returns the number of jobs in the block.
func (b *JobsBlock) Count() int { return b.N }

// Job returns the value indices of job i (0-based).
func (b *JobsBlock) Job(i int) []uint32 { return b.Index[i*b.NVars : (i+1)*b.NVars] }

// Constraint is an Orrery `constraint EXPR` statement.
type Constraint struct {
	Pos  Pos
	Expr Expr
}

// Zip is an Orrery `zip A B …` statement.
type Zip struct {
	Pos   Pos
	Names []Value
}

// Side is the side of a path: the root or the node.
type Side int

// Sides.
const (
	Node Side = iota
	Root
)

// String returns "node" or "root".
func (s Side) String() string {
	if s == Root {
		return "root"
	}
	return "node"
}

// Path is a copy or substitute operand: `[root:|node:]PATH`.
type Path struct {
	Pos      Pos
	Side     Side
	Explicit bool // the side was written; otherwise the dialect chose it
	Path     Template
}

// Op is a task command.
type Op int

// Task commands.
const (
	OpCopy       Op = iota // copy SRC DST
	OpShell                // execute / node:execute / root:execute / shexec
	OpExec                 // exec PROG ARG…
	OpLexec                // lexec PATH ARGV0 ARG…
	OpLpexec               // lpexec PROG ARGV0 ARG…
	OpSubstitute           // substitute SRC DST
	OpOnError              // onerror fail|ignore
	OpRedirect             // redirect stdout|stderr [append] to FILE | off
)

// Command is one command of a task.
type Command struct {
	Pos     Pos
	Op      Op
	Keyword string // as written: "node:execute", "shexec", …
	// Where is the side a shell command runs on: Root for root:execute
	// and for any shell command of rootstart/rootfinish.
	Where Side
	// Args: for OpShell one element, the shell text; for OpExec the
	// program and its arguments; for OpLexec/OpLpexec the program, argv[0]
	// and the arguments.
	Args     []Template
	Src, Dst Path   // OpCopy, OpSubstitute
	Ignore   bool   // OpOnError: true for "ignore"
	Stream   string // OpRedirect: "stdout" or "stderr"
	Append   bool   // OpRedirect
	Off      bool   // OpRedirect: "off"
	File     Template
}

// Task is a `task NAME … endtask` block.
type Task struct {
	Pos      Pos
	Name     string
	Commands []*Command
}

// Task names.
const (
	TaskRootStart  = "rootstart"
	TaskNodeStart  = "nodestart"
	TaskMain       = "main"
	TaskRootFinish = "rootfinish"
)

// OnRoot reports whether the task runs on the root.
func (t *Task) OnRoot() bool { return t.Name == TaskRootStart || t.Name == TaskRootFinish }

// Warning is a remark about a valid plan.
type Warning struct {
	File string
	Pos  Pos
	Msg  string
}

// String returns "FILE:LINE:COL: message".
func (w Warning) String() string {
	return fmt.Sprintf("%s:%d:%d: %s", w.File, w.Pos.Line, w.Pos.Col, w.Msg)
}

// Plan is a parsed and checked plan or run file.
type Plan struct {
	File    string // the name the plan was read under
	Source  string // the plan's text
	Dialect Dialect
	// DialectReason names the first classic-only construct and where it is;
	// empty when the dialect is modern or was forced.
	DialectReason string
	Params        []*Param    // plan files
	Vars          []*Variable // run files, in index order
	Jobs          *JobsBlock  // run files: explicit jobs, or nil for the cross product
	Constraints   []*Constraint
	Zips          []*Zip
	Tasks         []*Task
	Warnings      []Warning
}

// Task returns the named task, or nil.
func (p *Plan) Task(name string) *Task {
	for _, t := range p.Tasks {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// IsRunFile reports whether the plan declares run-file variables rather
// than parameters.
func (p *Plan) IsRunFile() bool { return len(p.Vars) > 0 || p.Jobs != nil }

// Names returns the names of the plan's parameters or run-file variables,
// in declaration (index) order.
func (p *Plan) Names() []string {
	var names []string
	for _, q := range p.Params {
		names = append(names, q.Name)
	}
	for _, v := range p.Vars {
		names = append(names, v.Name)
	}
	return names
}

// quote returns s as a plan-file string literal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i, r := range s {
		if r == utf8.RuneError {
			if _, w := utf8.DecodeRuneInString(s[i:]); w == 1 {
				fmt.Fprintf(&b, `\x%02x`, s[i])
				continue
			}
		}
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\t':
			b.WriteString(`\t`)
		case '\r':
			b.WriteString(`\r`)
		case '$':
			b.WriteString(`\$`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\x%02x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// Quote returns s as a plan-file string literal that reads back as s:
// C escapes, and `\$` for a dollar sign.
func Quote(s string) string { return quote(s) }
