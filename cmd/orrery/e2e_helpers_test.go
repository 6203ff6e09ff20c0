package main

// Helpers for the end-to-end tests in run_test.go: they build the real
// orrery binary once and run it as separate processes, each in its own
// process group that is killed when the test ends.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// e2eCmdTimeout bounds every short command (status, jobs, log, …).
const e2eCmdTimeout = 30 * time.Second

var (
	e2eBinOnce sync.Once
	e2eBinDir  string
	e2eBinPath string
	e2eBinErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	stopTestSlurm()
	if e2eBinDir != "" {
		os.RemoveAll(e2eBinDir)
	}
	os.Exit(code)
}

// e2eBinary builds the orrery command once per test run and returns its path.
func e2eBinary(t *testing.T) string {
	t.Helper()
	e2eBinOnce.Do(func() {
		wd, err := os.Getwd()
		if err != nil {
			e2eBinErr = err
			return
		}
		e2eBinDir, err = os.MkdirTemp("", "orrery-e2e-bin-")
		if err != nil {
			e2eBinErr = err
			return
		}
		e2eBinPath = filepath.Join(e2eBinDir, "orrery")
		cmd := exec.Command("go", "build", "-o", e2eBinPath, ".")
		cmd.Dir = wd
		if out, err := cmd.CombinedOutput(); err != nil {
			e2eBinErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if e2eBinErr != nil {
		t.Fatalf("building orrery: %v", e2eBinErr)
	}
	return e2eBinPath
}

// e2eBuffer is a bytes.Buffer safe for a process writing and a test reading.
type e2eBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *e2eBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *e2eBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// e2eProc is an orrery process running in its own process group.
type e2eProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdout e2eBuffer
	stderr e2eBuffer
	done   chan struct{}
	state  *os.ProcessState
}

// e2eStart starts `orrery ARGS` in dir. The process (its whole group) is
// killed when ctx ends or the test ends.
func e2eStart(t *testing.T, ctx context.Context, dir string, args ...string) *e2eProc {
	t.Helper()
	cmd := exec.Command(e2eBinary(t), args...)
	cmd.Dir = dir
	return e2eStartCmd(t, ctx, "orrery "+strings.Join(args, " "), cmd)
}

// e2eStartCmd starts cmd in its own process group, killed when ctx ends or
// the test ends.
func e2eStartCmd(t *testing.T, ctx context.Context, name string, cmd *exec.Cmd) *e2eProc {
	t.Helper()
	p := &e2eProc{t: t, name: name, cmd: cmd, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	go func() {
		p.cmd.Wait()
		p.state = p.cmd.ProcessState
		close(p.done)
	}()
	go func() {
		select {
		case <-ctx.Done():
			p.killGroup(syscall.SIGKILL)
		case <-p.done:
		}
	}()
	t.Cleanup(func() {
		p.killGroup(syscall.SIGKILL)
		<-p.done
	})
	return p
}

// killGroup sends sig to the process's group.
func (p *e2eProc) killGroup(sig syscall.Signal) {
	syscall.Kill(-p.cmd.Process.Pid, sig)
}

func (p *e2eProc) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has ended.
func (p *e2eProc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits at most d for the process to end and returns its exit status
// (-1 when a signal killed it). It fails the test when the process does not
// end in time.
func (p *e2eProc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		p.killGroup(syscall.SIGKILL)
		<-p.done
		p.t.Fatalf("%s did not end within %s\nstdout:\n%s\nstderr:\n%s", p.name, d, p.stdout.String(), p.stderr.String())
	}
	return p.state.ExitCode()
}

// signaled reports the signal that ended the process, or 0.
func (p *e2eProc) signaled() syscall.Signal {
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return ws.Signal()
	}
	return 0
}

// e2eRun runs `orrery ARGS` in dir to its end and returns its status and output.
func e2eRun(t *testing.T, dir string, timeout time.Duration, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	p := e2eStart(t, ctx, dir, args...)
	code = p.wait(timeout + 5*time.Second)
	if ctx.Err() != nil {
		t.Fatalf("%s did not end within %s\nstdout:\n%s\nstderr:\n%s", p.name, timeout, p.stdout.String(), p.stderr.String())
	}
	stdout, stderr = p.stdout.String(), p.stderr.String()
	e2eNoPanic(t, p.name, stderr)
	return code, stdout, stderr
}

// e2eMust runs `orrery ARGS` in dir and fails the test unless it exits 0.
func e2eMust(t *testing.T, dir string, args ...string) string {
	t.Helper()
	code, stdout, stderr := e2eRun(t, dir, e2eCmdTimeout, args...)
	if code != 0 {
		t.Fatalf("orrery %s: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, stdout, stderr)
	}
	return stdout
}

// e2eNoPanic fails the test when stderr shows a Go panic or fatal error.
func e2eNoPanic(t *testing.T, what, stderr string) {
	t.Helper()
	for _, bad := range []string{"panic:", "fatal error:", "goroutine 1 [", "SIGSEGV"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("%s: stderr shows a crash (%q):\n%s", what, bad, stderr)
			return
		}
	}
}

// e2eJob is one line of `orrery jobs --json`.
type e2eJob struct {
	Index    int64             `json:"index"`
	State    string            `json:"state"`
	Values   map[string]string `json:"values"`
	Attempts int               `json:"attempts"`
	Exit     *int              `json:"exit"`
	Cluster  string            `json:"cluster"`
	Node     string            `json:"node"`
}

// e2eJobs runs `orrery jobs --json ARGS` in dir and decodes every job.
func e2eJobs(t *testing.T, dir string, args ...string) []e2eJob {
	t.Helper()
	out := e2eMust(t, dir, append([]string{"jobs", "--json"}, args...)...)
	return e2eDecodeJobs(t, out)
}

func e2eDecodeJobs(t *testing.T, out string) []e2eJob {
	t.Helper()
	var jobs []e2eJob
	dec := json.NewDecoder(strings.NewReader(out))
	for {
		var j e2eJob
		err := dec.Decode(&j)
		if errors.Is(err, io.EOF) {
			return jobs
		}
		if err != nil {
			t.Fatalf("jobs --json: %v in\n%s", err, out)
		}
		jobs = append(jobs, j)
	}
}

// e2eStatus runs `orrery status --json ARGS` in dir and decodes it.
func e2eStatus(t *testing.T, dir string, args ...string) map[string]any {
	t.Helper()
	out := e2eMust(t, dir, append([]string{"status", "--json"}, args...)...)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("status --json: %v in\n%s", err, out)
	}
	return m
}

// e2eNum reads a number from a decoded JSON object.
func e2eNum(t *testing.T, m map[string]any, key string) int64 {
	t.Helper()
	v, ok := m[key].(float64)
	if !ok {
		t.Fatalf("status --json: %q is %v (%T), want a number", key, m[key], m[key])
	}
	return int64(v)
}

// e2eAttempt is one attempt header of `orrery log JOB`.
type e2eAttempt struct {
	N     int
	Node  string
	State string // ok, failed, lost, interrupted, running
	Rest  string // the rest of the header line (exit, signal, wall …)
}

var e2eLogHeader = regexp.MustCompile(`^=== job (\d+) attempt (\d+) on (\S+): (\w+)(.*)$`)

// e2eLog runs `orrery log JOB` and returns its output and attempt headers.
func e2eLog(t *testing.T, dir string, job int64, args ...string) (string, []e2eAttempt) {
	t.Helper()
	out := e2eMust(t, dir, append([]string{"log", strconv.FormatInt(job, 10)}, args...)...)
	var atts []e2eAttempt
	for _, l := range strings.Split(out, "\n") {
		m := e2eLogHeader.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if m[1] != strconv.FormatInt(job, 10) {
			t.Errorf("log %d: header names job %s: %q", job, m[1], l)
		}
		n, _ := strconv.Atoi(m[2])
		atts = append(atts, e2eAttempt{N: n, Node: m[3], State: m[4], Rest: m[5]})
	}
	if len(atts) == 0 {
		t.Fatalf("log %d: no attempt headers in\n%s", job, out)
	}
	return out, atts
}

// e2eJoblogLine is one data line of `orrery joblog`.
type e2eJoblogLine struct {
	Seq     int64
	Host    string
	Start   float64
	Runtime float64
	Send    int64 // bytes staged to the node
	Receive int64 // bytes staged back to the root
	Exit    int
	Signal  int
	Command string
}

const e2eJoblogHeader = "Seq\tHost\tStarttime\tJobRuntime\tSend\tReceive\tExitval\tSignal\tCommand"

// e2eJoblog runs `orrery joblog` and parses it, checking the header and
// the columns.
func e2eJoblog(t *testing.T, dir string, args ...string) []e2eJoblogLine {
	t.Helper()
	out := e2eMust(t, dir, append([]string{"joblog"}, args...)...)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if lines[0] != e2eJoblogHeader {
		t.Fatalf("joblog header = %q, want %q", lines[0], e2eJoblogHeader)
	}
	var res []e2eJoblogLine
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) != 9 {
			t.Fatalf("joblog line %q: %d tab-separated fields, want 9", l, len(f))
		}
		var j e2eJoblogLine
		var err error
		errs := []error{}
		j.Seq, err = strconv.ParseInt(f[0], 10, 64)
		errs = append(errs, err)
		j.Host = f[1]
		j.Start, err = strconv.ParseFloat(f[2], 64)
		errs = append(errs, err)
		j.Runtime, err = strconv.ParseFloat(f[3], 64)
		errs = append(errs, err)
		j.Send, err = strconv.ParseInt(f[4], 10, 64)
		errs = append(errs, err)
		j.Receive, err = strconv.ParseInt(f[5], 10, 64)
		errs = append(errs, err)
		j.Exit, err = strconv.Atoi(f[6])
		errs = append(errs, err)
		j.Signal, err = strconv.Atoi(f[7])
		errs = append(errs, err)
		j.Command = f[8]
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("joblog line %q: %v", l, err)
		}
		if j.Start < 1e9 || j.Runtime < 0 || j.Send < 0 || j.Receive < 0 {
			t.Errorf("joblog line %q: implausible Starttime %v, JobRuntime %v, Send %d or Receive %d", l, j.Start, j.Runtime, j.Send, j.Receive)
		}
		res = append(res, j)
	}
	return res
}

// e2eWrite writes a file, creating its directory.
func e2eWrite(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// e2eDir returns a fresh temporary directory with symlinks resolved, so
// that it compares equal to what /proc/PID/cwd shows.
func e2eDir(t *testing.T) string {
	t.Helper()
	d, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// e2eProcess is a live process found in /proc.
type e2eProcess struct {
	PID     int
	Cwd     string
	Cmdline string
	State   string
}

// e2eProcsUnder returns the live (not zombie) processes whose working
// directory is under dir: job processes have their job directory as theirs.
func e2eProcsUnder(dir string) []e2eProcess {
	ents, _ := os.ReadDir("/proc")
	var out []e2eProcess
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cwd, err := os.Readlink(filepath.Join("/proc", e.Name(), "cwd"))
		if err != nil {
			continue
		}
		if cwd != dir && !strings.HasPrefix(cwd, dir+"/") {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		state := e2eProcState(pid)
		if state == "Z" || state == "" {
			continue
		}
		out = append(out, e2eProcess{PID: pid, Cwd: cwd, State: state,
			Cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmdline), "\x00", " "))})
	}
	return out
}

// e2eProcState returns a process's state letter (R, S, Z …), or "".
func e2eProcState(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "State:"); ok {
			return strings.Fields(v + " ?")[0]
		}
	}
	return ""
}

// e2eWaitNoProcs waits up to d for every process under dir to end and
// returns the ones left.
func e2eWaitNoProcs(dir string, d time.Duration) []e2eProcess {
	deadline := time.Now().Add(d)
	for {
		left := e2eProcsUnder(dir)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// e2eKillUnder kills the processes under dir (cleanup of orphans that a
// killed orrery left).
func e2eKillUnder(dir string) {
	for _, p := range e2eProcsUnder(dir) {
		syscall.Kill(p.PID, syscall.SIGKILL)
	}
}

// e2eLines counts the lines of a file equal to each value.
func e2eLines(t *testing.T, path string) map[string]int {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" {
			n[l]++
		}
	}
	return n
}

// e2eCountLines counts the lines of a file (0 if it is missing).
func e2eCountLines(path string) int {
	b, _ := os.ReadFile(path)
	return bytes.Count(b, []byte("\n"))
}

// e2eWaitFor polls cond every 5 ms until it holds or d passes.
func e2eWaitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// e2eResults checks that dir holds exactly the files in want, with that content.
func e2eResults(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("results: %v", err)
	}
	got := map[string]bool{}
	for _, e := range ents {
		got[e.Name()] = true
		w, ok := want[e.Name()]
		if !ok {
			hint := ""
			if strings.HasPrefix(e.Name(), ".orrery-tmp-") {
				hint = " (a copy to the root that was never finished or removed)"
			}
			t.Errorf("results: unexpected file %s%s", e.Name(), hint)
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Errorf("results: %v", err)
		} else if string(b) != w {
			t.Errorf("results/%s = %q, want %q", e.Name(), b, w)
		}
	}
	for name := range want {
		if !got[name] {
			t.Errorf("results: %s is missing", name)
		}
	}
}
