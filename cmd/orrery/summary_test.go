package main

// What `orrery run` tells the user at the end and along the way (issue
// 13, point 13 a, b and g): where the results went, advice that works as
// written from where the user is, and a progress line every few seconds
// whenever standard error is not a terminal.

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// summaryPlan has one job that fails (i = 2) and copies results into
// results/ below the plan's directory.
const summaryPlan = `parameter i integer range from 1 to 3
task main
	shexec "test $i -ne 2 && echo $i > out.txt"
	copy node:out.txt root:results/sub/$i.txt
	copy node:out.txt root:results/again-$i.txt
endtask
`

// adviceCommands returns the orrery commands a summary advises, in order:
// each runs to the end of its line.
func adviceCommands(out string) [][]string {
	var cmds [][]string
	for _, m := range regexp.MustCompile(`(?m)\borrery ((?:jobs|log|rerun|run) .*)$`).FindAllStringSubmatch(out, -1) {
		cmds = append(cmds, strings.Fields(m[1]))
	}
	return cmds
}

// TestE2ESummaryPaths runs a plan in a subdirectory, from its parent,
// with the default state directory and with one of its own: the summary
// says where the results are, relative to where the user is, and every
// command it advises works as written from there.
func TestE2ESummaryPaths(t *testing.T) {
	for _, tt := range []struct {
		name  string
		args  []string
		state string // as the summary prints it
	}{
		{"default", nil, "exp/.orrery"},
		{"state-dir", []string{"--state-dir", "my-state"}, "my-state"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := e2eDir(t)
			e2eWrite(t, filepath.Join(dir, "exp", "s.pln"), summaryPlan)
			args := append(append([]string{"run"}, tt.args...), "exp/s.pln")
			code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, args...)
			if code != 1 {
				t.Fatalf("run: exit %d, want 1 (one job fails)\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
			}
			if !strings.Contains(stdout, "Results in exp/results/;") {
				t.Errorf("the summary does not say the results are in exp/results/:\n%s", stdout)
			}
			if !strings.Contains(stdout, "state in "+tt.state+".") {
				t.Errorf("the summary does not say the state is in %s:\n%s", tt.state, stdout)
			}
			cmds := adviceCommands(stdout)
			if len(cmds) < 3 {
				t.Fatalf("the summary advises %d commands, want jobs, log and rerun:\n%s", len(cmds), stdout)
			}
			var ran []string
			for _, c := range cmds {
				for i, a := range c {
					if a == "JOB" {
						c[i] = "2"
					}
				}
				code, out, errOut := e2eRun(t, dir, e2eCmdTimeout, c...)
				if code != 0 {
					t.Errorf("advice `orrery %s`: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(c, " "), code, out, errOut)
				}
				ran = append(ran, c[0])
				if c[0] == "rerun" {
					// It names the run that runs them again: that works too.
					again := adviceCommands(out)
					if len(again) != 1 || again[0][0] != "run" {
						t.Fatalf("rerun did not say how to run them again: %q", out)
					}
					code, out, errOut := e2eRun(t, dir, e2eRunTimeout, again[0]...)
					if code != 1 || !strings.Contains(errOut, "resuming experiment 1") || !strings.Contains(out, "2 done, 1 failed") {
						t.Errorf("`orrery %s`: exit %d, want 1 resuming experiment 1 with the failed job run again\nstdout:\n%s\nstderr:\n%s",
							strings.Join(again[0], " "), code, out, errOut)
					}
				}
			}
			if strings.Join(ran, " ") != "jobs log rerun" {
				t.Errorf("advised commands %q, want jobs log rerun", ran)
			}
		})
	}
}

// TestE2ESummaryNoCopies: with no copy to the root, the results are in
// the plan's directory.
func TestE2ESummaryNoCopies(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "exp", "n.pln"), "parameter i integer range from 1 to 2\ntask main\n\tshexec \"echo $i\"\nendtask\n")
	code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, "run", "exp/n.pln")
	if code != 0 {
		t.Fatalf("run: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Results in exp/;") {
		t.Errorf("the summary does not say the results are in exp/:\n%s", stdout)
	}
}

// openPTY opens a pseudo-terminal and returns its two ends.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		m.Close()
		t.Fatalf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		m.Close()
		t.Fatalf("pty number: %v", e)
	}
	s, err := os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Fatalf("open pty: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

// progressLine is the periodic line of a run without a terminal.
var progressLine = regexp.MustCompile(`(?m)^orrery: \d+/\d+ done, `)

// TestE2EProgressLineWithoutTerminal runs a sweep of at least six seconds
// with standard error not on a terminal: it gets the periodic progress
// line, whether standard output is on a terminal (where the bars go) or
// not.
func TestE2EProgressLineWithoutTerminal(t *testing.T) {
	for _, onTerminal := range []bool{true, false} {
		t.Run("stdout-terminal="+strconv.FormatBool(onTerminal), func(t *testing.T) {
			dir := e2eDir(t)
			e2eWrite(t, filepath.Join(dir, "p.pln"), "parameter i integer range from 1 to 12\ntask main\n\tshexec \"sleep 0.5\"\nendtask\n")
			var stdout e2eBuffer
			cmd := exec.Command(e2eBinary(t), "run", "--job-limit", "1", "p.pln")
			cmd.Dir = dir
			cmd.Stdout = &stdout
			if onTerminal {
				master, slave := openPTY(t)
				go func() { // drain the terminal, so the bars never block
					buf := make([]byte, 4096)
					for {
						n, err := master.Read(buf)
						stdout.Write(buf[:n])
						if err != nil {
							return
						}
					}
				}()
				cmd.Stdout = slave
			}
			var stderr e2eBuffer
			cmd.Stderr = &stderr
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
				}
			case <-time.After(e2eRunTimeout):
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				<-done
				t.Fatalf("run did not end within %s", e2eRunTimeout)
			}
			if !progressLine.MatchString(stderr.String()) {
				t.Errorf("no progress line on standard error (not a terminal) during a 6-second run:\n%s", stderr.String())
			}
			if !strings.Contains(stdout.String(), "12 done, 0 failed") {
				t.Errorf("no summary on standard output:\n%s", stdout.String())
			}
		})
	}
}
