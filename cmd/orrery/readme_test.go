package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readmeCommand is one shell command line of the README.
type readmeCommand struct {
	where string // README.md:LINE
	line  string
	want  int // the exit status the README shows (# exits N), else 0
}

// wantExit reads an "# exits N" remark at the end of a command line.
var wantExit = regexp.MustCompile(`#\s*exits\s+(\d+)\b`)

// readmeCommands returns the command lines of the README's code blocks
// in the named sections, in order: fenced ```sh blocks and indented
// blocks (how the README showed commands before), one command a line,
// with `\` continuations joined.
func readmeCommands(t *testing.T, sections ...string) []readmeCommand {
	t.Helper()
	var cmds []readmeCommand
	for _, b := range mdBlocks(t, filepath.Join(repoRoot, "README.md"), "README.md") {
		if !containsString(sections, b.section) || b.fenced && b.lang != "sh" {
			continue
		}
		lines := strings.Split(strings.TrimRight(b.text, "\n"), "\n")
		for i := 0; i < len(lines); i++ {
			l, at := lines[i], b.line+i
			for strings.HasSuffix(l, "\\") && i+1 < len(lines) {
				i++
				l = strings.TrimSuffix(l, "\\") + "\n" + lines[i]
			}
			if s := strings.TrimSpace(l); s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			c := readmeCommand{where: "README.md:" + strconv.Itoa(at), line: l}
			if m := wantExit.FindStringSubmatch(l); m != nil {
				c.want, _ = strconv.Atoi(m[1])
			}
			cmds = append(cmds, c)
		}
	}
	return cmds
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// freshMachineEnv is the environment of a new user's shell: this
// process's, but with a PATH that has go and the system's commands and
// nothing else (no orrery, no $(go env GOPATH)/bin).
func freshMachineEnv(t *testing.T) []string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("no go on PATH: %v", err)
	}
	goBin, _ = filepath.EvalSymlinks(goBin)
	path := filepath.Dir(goBin) + ":/usr/sbin:/usr/bin:/sbin:/bin"
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+path)
	probe := exec.Command("/bin/sh", "-c", "command -v orrery")
	probe.Env = env
	if out, err := probe.Output(); err == nil {
		t.Fatalf("orrery is on the fresh PATH %s (%s): the test cannot tell", path, strings.TrimSpace(string(out)))
	}
	return env
}

// TestReadmeTryIt runs the commands of the README's "Install" and "Try
// it" sections as written, in order, in a fresh copy of the repository,
// with a PATH that has go but not orrery: each must exit as the README
// says (0 unless it shows "# exits N").
func TestReadmeTryIt(t *testing.T) {
	cmds := readmeCommands(t, "Install", "Try it")
	if len(cmds) < 3 {
		t.Fatalf("the README's Install and Try it sections show %d commands; want the build, the run and what comes next", len(cmds))
	}
	dir := repoCopy(t)
	env := freshMachineEnv(t)
	for _, c := range cmds {
		cmd := exec.Command("/bin/sh", "-c", c.line)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		code := 0
		if err != nil {
			ee, ok := err.(*exec.ExitError)
			if !ok {
				t.Fatalf("%s: %s: %v", c.where, c.line, err)
			}
			code = ee.ExitCode()
		}
		if code != c.want {
			t.Errorf("%s: %s\nexit %d, want %d; it printed:\n%s", c.where, c.line, code, c.want, out)
		}
	}
}
