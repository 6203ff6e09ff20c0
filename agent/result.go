package agent

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"orrery/protocol"
	"orrery/task"
)

// maxOutput bounds the output an attempt sends back, per stream.
const maxOutput = 256 << 10

// convert turns a task's result into the attempt result sent to the
// dispatcher: the outcome, the failing command's status, the totals, and
// each command's kept output under a header naming the command.
func convert(res *task.Result, err error) *protocol.Result {
	out := &protocol.Result{OK: err == nil}
	if err == nil && res != nil && res.RootSystemError() != nil {
		// Even under onerror ignore: a copy the root could not serve
		// is no result of the job's.
		err = res.RootSystemError()
		out.OK = false
	}
	if res == nil {
		out.System, out.Error = true, fmt.Sprint(err)
		if errors.Is(err, task.ErrRootSystem) {
			out.Side = protocol.SideRoot
		}
		return out
	}
	out.Wall, out.CPU, out.MaxRSS = res.Wall, res.CPU(), res.MaxRSS
	if err != nil {
		out.Error = err.Error()
		var ce *task.CommandError
		// A failure outside any command (the job directory), a lost
		// connection to the root, or a failure on the root's side (out of
		// file descriptors, its disk) is the system's, not the job's.
		out.System = !errors.As(err, &ce) || errors.Is(err, protocol.ErrLost) || errors.Is(err, task.ErrRootSystem)
		if errors.Is(err, task.ErrRootSystem) {
			out.Side = protocol.SideRoot
		}
	}
	if res.Failed >= 0 && res.Failed < len(res.Commands) {
		c := res.Commands[res.Failed]
		if c.Exit >= 0 {
			exit := c.Exit
			out.Exit = &exit
		}
		if c.Signal != 0 {
			out.Signal = c.Signal.String()
		}
	} else if err == nil {
		zero := 0
		out.Exit = &zero
	}
	var stdout, stderr strings.Builder
	for _, c := range res.Commands {
		for _, s := range []struct {
			b *strings.Builder
			o task.Output
		}{{&stdout, c.Stdout}, {&stderr, c.Stderr}} {
			if s.o.Total == 0 {
				continue
			}
			fmt.Fprintf(s.b, "--- %s (%s)", c.Command, c.Pos)
			if s.o.Truncated() {
				fmt.Fprintf(s.b, ", last %d of %d bytes", len(s.o.Tail), s.o.Total)
			}
			s.b.WriteString(" ---\n")
			s.b.Write(s.o.Tail)
			if len(s.o.Tail) > 0 && s.o.Tail[len(s.o.Tail)-1] != '\n' {
				s.b.WriteByte('\n')
			}
		}
	}
	out.Stdout, out.Stderr = lastBytes(stdout.String()), lastBytes(stderr.String())
	out.Ignored = ignored(res.Commands)
	out.StagingIn, out.StagingOut = staging(res.Commands)
	return out
}

// staging is how long the copies took that ran before the first other
// command (in) and after the last (out). Commands that only set how the
// next ones run (onerror, redirect) are neither. When the task ran no
// other command, each copy counts by its direction: from the root, in;
// otherwise out.
func staging(cmds []task.CommandResult) (in, out time.Duration) {
	first, last := -1, -1
	for i := range cmds {
		if kind := commandKind(cmds[i].Command); kind == otherCommand {
			if first < 0 {
				first = i
			}
			last = i
		}
	}
	for i := range cmds {
		c := &cmds[i]
		if commandKind(c.Command) != copyCommand {
			continue
		}
		wall := max(c.Wall, 0)
		switch {
		case first < 0 && strings.HasPrefix(c.Command, "copy root:"):
			in += wall
		case first < 0:
			out += wall
		case i < first:
			in += wall
		case i > last:
			out += wall
		}
	}
	return in, out
}

// The kinds of command staging tells apart.
const (
	copyCommand    = iota // copy: moves a file
	settingCommand        // onerror, redirect: take no time
	otherCommand          // a process, substitute
)

// commandKind tells a command's kind from its canonical text
// (plan.Command.String), which starts with its keyword.
func commandKind(text string) int {
	switch kw, _, _ := strings.Cut(text, " "); kw {
	case "copy":
		return copyCommand
	case "onerror", "redirect":
		return settingCommand
	}
	return otherCommand
}

// ignored lists the commands whose failure onerror ignore let pass:
// where each is in the plan, its text, its exit status or signal, and
// its error. Past protocol.MaxIgnored, the last entry says how many more
// there were.
func ignored(cmds []task.CommandResult) []protocol.Ignored {
	var failed []*task.CommandResult
	for i := range cmds {
		if cmds[i].Ignored {
			failed = append(failed, &cmds[i])
		}
	}
	more := 0
	if len(failed) > protocol.MaxIgnored {
		more = len(failed) - (protocol.MaxIgnored - 1)
		failed = failed[:protocol.MaxIgnored-1]
	}
	var out []protocol.Ignored
	for _, c := range failed {
		ig := protocol.Ignored{Pos: c.Pos.String(), Command: protocol.CutIgnoredText(c.Command), Error: protocol.CutIgnoredText(fmt.Sprint(c.Err))}
		if c.Exit >= 0 && c.Argv != nil {
			exit := c.Exit
			ig.Exit = &exit
		}
		if c.Signal != 0 {
			ig.Signal = c.Signal.String()
		}
		out = append(out, ig)
	}
	if more > 0 {
		out = append(out, protocol.Ignored{Error: fmt.Sprintf("and %d more commands failed under onerror ignore", more)})
	}
	return out
}

func lastBytes(s string) []byte {
	if len(s) > maxOutput {
		s = s[len(s)-maxOutput:]
	}
	if s == "" {
		return nil
	}
	return []byte(s)
}
