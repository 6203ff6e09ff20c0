package task

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"orrery/plan"
)

// redirect runs `redirect stdout|stderr [append] to FILE` and
// `redirect stdout|stderr off`. The file is opened here, truncated unless
// appending, and the following commands of the task write to it in turn,
// until the next redirect of the stream, its off, or the task's end. When
// the other stream already goes to the same file, this one joins it
// without truncating, so both streams can share one log. A redirect that
// fails leaves the stream kept with the result.
func (r *runner) redirect(c *plan.Command) error {
	i := 0
	if c.Stream == "stderr" {
		i = 1
	}
	r.closeOutput(i)
	if c.Off {
		return nil
	}
	name := c.File.Expand(r.job.Lookup)
	key, err := r.outputKey(name)
	if err != nil {
		return err
	}
	appendTo := c.Append || r.out[1-i] != nil && r.outKey[1-i] == key
	var f *os.File
	if r.node != nil {
		f, err = r.node.openOutput(name, appendTo)
	} else {
		f, err = openRootOutput(r.dir, name, appendTo)
	}
	if err != nil {
		return err
	}
	r.out[i], r.outKey[i] = f, key
	return nil
}

// outputKey returns a redirect file's name in a form that two names of
// the same file share (unless they reach it through different symlinks).
func (r *runner) outputKey(name string) (string, error) {
	if r.node != nil {
		return cleanNode(name)
	}
	if filepath.IsAbs(name) {
		return filepath.Clean(name), nil
	}
	return filepath.Join(r.dir, name), nil
}

// closeOutput closes the file stream i (0 stdout, 1 stderr) is redirected
// to, if any.
func (r *runner) closeOutput(i int) {
	if r.out[i] != nil {
		r.out[i].Close()
		r.out[i] = nil
	}
}

// openRootOutput opens a redirect file of a root task: relative to the
// root directory, or absolute.
func openRootOutput(dir, name string, appendTo bool) (*os.File, error) {
	if !filepath.IsAbs(name) {
		name = filepath.Join(dir, name)
	}
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, err
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if !appendTo {
		flag |= os.O_TRUNC
	}
	return os.OpenFile(name, flag, 0o644)
}

// label names a command in its error, after substitution:
// `exec "nosuch"`, `shexec "make all"`, `copy root:in.dat node:.`.
func (r *runner) label(c *plan.Command) string {
	x := func(t plan.Template) string { return t.Expand(r.job.Lookup) }
	switch c.Op {
	case plan.OpCopy:
		return fmt.Sprintf("copy %s:%s %s:%s", c.Src.Side, x(c.Src.Path), c.Dst.Side, x(c.Dst.Path))
	case plan.OpSubstitute:
		return fmt.Sprintf("substitute %s %s", x(c.Src.Path), x(c.Dst.Path))
	case plan.OpRedirect:
		if c.Off {
			return "redirect " + c.Stream + " off"
		}
		return fmt.Sprintf("redirect %s to %q", c.Stream, x(c.File))
	case plan.OpShell:
		return fmt.Sprintf("%s %q", c.Keyword, shorten(x(c.Args[0]), 60))
	case plan.OpExec, plan.OpLexec, plan.OpLpexec:
		return fmt.Sprintf("%s %q", c.Keyword, x(c.Args[0]))
	}
	return c.Keyword
}

// shorten cuts s to at most n runes, marking the cut with "…".
func shorten(s string, n int) string {
	s = strings.TrimSpace(s)
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
