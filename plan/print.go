package plan

import (
	"io"
	"strings"
)

// String returns the command in canonical form: every path with its side,
// every argument quoted, references as ${name}. The canonical form reads
// back as the same command in either dialect.
func (c *Command) String() string {
	var b strings.Builder
	switch c.Op {
	case OpCopy, OpSubstitute:
		kw := "copy"
		if c.Op == OpSubstitute {
			kw = "substitute"
		}
		b.WriteString(kw + " " + c.Src.String() + " " + c.Dst.String())
	case OpShell:
		if c.Where == Root {
			b.WriteString("root:execute ")
		} else {
			b.WriteString("shexec ")
		}
		b.WriteString(c.Args[0].Quoted())
	case OpExec, OpLexec, OpLpexec:
		b.WriteString(c.Keyword)
		for _, a := range c.Args {
			b.WriteString(" " + a.Quoted())
		}
	case OpOnError:
		b.WriteString("onerror fail")
		if c.Ignore {
			b.Reset()
			b.WriteString("onerror ignore")
		}
	case OpRedirect:
		b.WriteString("redirect " + c.Stream)
		switch {
		case c.Off:
			b.WriteString(" off")
		case c.Append:
			b.WriteString(" append to " + c.File.Quoted())
		default:
			b.WriteString(" to " + c.File.Quoted())
		}
	}
	return b.String()
}

// String returns the path with its side: node:"out.txt".
func (p Path) String() string { return p.Side.String() + ":" + p.Path.Quoted() }

// WriteTasks writes the plan's tasks in canonical form.
func (p *Plan) WriteTasks(w io.Writer) error {
	var b strings.Builder
	for i, t := range p.Tasks {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString("task " + t.Name + "\n")
		for _, c := range t.Commands {
			b.WriteString("\t" + c.String() + "\n")
		}
		b.WriteString("endtask\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
