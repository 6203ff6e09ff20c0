package main

// Bad and extreme input: every case must end within badDeadline with a
// clear answer (status 2 and a few FILE:LINE:COL lines, or a correct
// count), never a panic or a hang. Times and memory are logged; run with
// -v to see them.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"orrery/plan"
	"orrery/sweep"
)

// badDeadline bounds every command in this file.
const badDeadline = 20 * time.Second

// badChildEnv makes the test binary act as the orrery command, so a case
// that might run away can be killed: see badRunChild. badHWMEnv names a
// file where the child writes its peak RSS (VmHWM) when it ends: the
// rusage of a child started by fork and exec counts the parent's RSS too.
const (
	badChildEnv = "ORRERY_BADINPUT_CHILD"
	badHWMEnv   = "ORRERY_BADINPUT_HWM"
)

func init() {
	if os.Getenv(badChildEnv) != "1" {
		return
	}
	code := run(&env{stdout: os.Stdout, stderr: os.Stderr}, os.Args[1:])
	if status, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, l := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
				os.WriteFile(os.Getenv(badHWMEnv), []byte(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))), 0o644)
			}
		}
	}
	os.Exit(code)
}

// badResult is what one in-process run of orrery did.
type badResult struct {
	code           int
	stdout, stderr string
	took           time.Duration
	peakHeap       uint64 // largest live heap seen while it ran (sampled)
	allocated      uint64 // bytes allocated while it ran
}

// heapBytes reads the bytes of live and not yet swept heap objects.
func heapBytes() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// badRun runs `orrery ARGS` in-process and fails the test when it takes
// longer than badDeadline or panics. It samples the heap while it runs.
func badRun(t *testing.T, args ...string) badResult {
	t.Helper()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	base := heapBytes()

	var stdout, stderr bytes.Buffer
	type outcome struct {
		code  int
		panic string
	}
	done := make(chan outcome, 1)
	start := time.Now()
	go func() {
		defer func() {
			if r := recover(); r != nil {
				done <- outcome{panic: fmt.Sprintf("%v\n%s", r, debug.Stack())}
			}
		}()
		done <- outcome{code: run(&env{stdout: &stdout, stderr: &stderr}, args)}
	}()
	var peak uint64
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.NewTimer(badDeadline)
	defer deadline.Stop()
	for {
		select {
		case o := <-done:
			took := time.Since(start)
			if o.panic != "" {
				t.Fatalf("orrery %s panicked: %s", badArgs(args), o.panic)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			peak = max(peak, heapBytes())
			r := badResult{code: o.code, stdout: stdout.String(), stderr: stderr.String(), took: took,
				allocated: after.TotalAlloc - before.TotalAlloc}
			if peak > base {
				r.peakHeap = peak - base
			}
			return r
		case <-tick.C:
			peak = max(peak, heapBytes())
		case <-deadline.C:
			t.Fatalf("orrery %s did not finish within %v", badArgs(args), badDeadline)
		}
	}
}

func badArgs(args []string) string {
	var short []string
	for _, a := range args {
		short = append(short, filepath.Base(a))
	}
	return strings.Join(short, " ")
}

func mb(n uint64) float64 { return float64(n) / (1 << 20) }

// logRun reports the time and memory of a run.
func logRun(t *testing.T, what string, r badResult) {
	t.Helper()
	t.Logf("%s: exit %d in %v; heap peak ≈ %.1f MB above the start, %.1f MB allocated",
		what, r.code, r.took.Round(time.Millisecond), mb(r.peakHeap), mb(r.allocated))
}

// badErrLine is one error line: FILE:LINE:COL: message.
var badErrLine = regexp.MustCompile(`^(.+):(\d+):(\d+): (\S.*)$`)

// badErrors checks that a run failed as a bad plan: status 2, between 1
// and maxLines lines on stderr, each "PATH:LINE:COL: message" with the
// position inside the file, and nothing that looks like a crash. It
// returns the messages.
func badErrors(t *testing.T, r badResult, path string, maxLines int) []string {
	t.Helper()
	if r.code != exitInvalid {
		t.Fatalf("exit status %d, want %d; stderr:\n%s", r.code, exitInvalid, badHead(r.stderr))
	}
	if strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine ") {
		t.Fatalf("stderr looks like a crash:\n%s", badHead(r.stderr))
	}
	lines := strings.Split(strings.TrimSuffix(r.stderr, "\n"), "\n")
	if r.stderr == "" || len(lines) > maxLines {
		t.Fatalf("%d lines on stderr, want 1 to %d:\n%s", len(lines), maxLines, badHead(r.stderr))
	}
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lengths := badLineLengths(src)
	var msgs []string
	for _, l := range lines {
		m := badErrLine.FindStringSubmatch(l)
		if m == nil || m[1] != path {
			t.Fatalf("stderr line is not %s:LINE:COL: message: %q", path, badShort(l))
		}
		if len(l) > 500 {
			t.Errorf("error line of %d bytes; a message should quote at most a short excerpt: %q", len(l), badShort(l))
		}
		line, _ := strconv.Atoi(m[2])
		col, _ := strconv.Atoi(m[3])
		if line < 1 || line > len(lengths) || col < 1 || col > lengths[line-1]+1 {
			t.Errorf("position %d:%d is outside the file (%d lines): %q", line, col, len(lengths), badShort(l))
		}
		msgs = append(msgs, m[4])
	}
	return msgs
}

// badLineLengths returns the length in characters of each line of src;
// the line after a final newline counts, empty.
func badLineLengths(src []byte) []int {
	var n []int
	for {
		i := bytes.IndexByte(src, '\n')
		if i < 0 {
			return append(n, utf8.RuneCount(src))
		}
		n = append(n, utf8.RuneCount(src[:i]))
		src = src[i+1:]
	}
}

func badShort(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func badHead(s string) string {
	lines := strings.SplitN(s, "\n", 6)
	if len(lines) > 5 {
		lines[5] = "..."
	}
	for i := range lines {
		lines[i] = badShort(lines[i])
	}
	return strings.Join(lines, "\n")
}

// badWrite writes a file in a fresh temporary directory.
func badWrite(t *testing.T, name string, data []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// badMain is a task that makes a plan valid.
const badMain = "task main\n\texec echo $x\nendtask\n"

func TestBadInputBinary(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	t.Run("nul", func(t *testing.T) {
		data := make([]byte, 64<<10)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		data[5000] = 0
		path := badWrite(t, "random.bin", data)
		r := badRun(t, "check", path)
		logRun(t, "64 KiB of random bytes", r)
		msgs := badErrors(t, r, path, 1)
		if !strings.Contains(msgs[0], "binary") {
			t.Errorf("message %q does not say the file is binary", msgs[0])
		}
		// The position is that of the first NUL.
		nul := bytes.IndexByte(data, 0)
		line := 1 + bytes.Count(data[:nul], []byte("\n"))
		col := 1 + utf8.RuneCount(data[bytes.LastIndexByte(data[:nul], '\n')+1:nul])
		if want := fmt.Sprintf("%s:%d:%d: ", path, line, col); !strings.HasPrefix(r.stderr, want) {
			t.Errorf("stderr %q does not start with %q, the first NUL", badShort(r.stderr), want)
		}
	})
	t.Run("no-nul", func(t *testing.T) {
		// Random bytes without a NUL are mostly invalid UTF-8: the parser
		// must stop after plan.MaxErrors messages.
		data := make([]byte, 1<<20)
		for i := range data {
			data[i] = byte(rng.Uint32())
			if data[i] == 0 {
				data[i] = 1
			}
		}
		path := badWrite(t, "random.bin", data)
		r := badRun(t, "check", path)
		logRun(t, "1 MiB of random bytes without NUL", r)
		msgs := badErrors(t, r, path, plan.MaxErrors+1)
		if len(msgs) != plan.MaxErrors+1 || !strings.Contains(msgs[len(msgs)-1], "too many errors") {
			t.Errorf("%d messages ending %q; want %d ending with too many errors", len(msgs), msgs[len(msgs)-1], plan.MaxErrors+1)
		}
	})
}

// badGarbageBlock is 1 MiB of random printable ASCII in lines of 0 to 120
// characters.
func badGarbageBlock(rng *rand.Rand) []byte {
	var b bytes.Buffer
	for b.Len() < 1<<20 {
		for range rng.IntN(121) {
			b.WriteByte(byte(' ' + rng.IntN(95)))
		}
		b.WriteByte('\n')
	}
	return b.Bytes()[:1<<20]
}

// badWriteRepeated writes block n times to a file in a temporary directory.
func badWriteRepeated(t *testing.T, name string, block []byte, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	for range n {
		w.Write(block)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBadInputHugeGarbage(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	t.Run("garbage", func(t *testing.T) {
		path := badWriteRepeated(t, "garbage.pln", badGarbageBlock(rng), 100)
		r := badRun(t, "check", path)
		logRun(t, "100 MiB of garbage text", r)
		msgs := badErrors(t, r, path, plan.MaxErrors+1)
		if last := msgs[len(msgs)-1]; len(msgs) != plan.MaxErrors+1 || last != "too many errors" {
			t.Errorf("%d messages ending %q; want %d ending with too many errors", len(msgs), last, plan.MaxErrors+1)
		}
		badChildRSS(t, "100 MiB of garbage text", "check", path)
	})
	t.Run("comments", func(t *testing.T) {
		// No error until the end: the whole file is lexed.
		line := "# " + strings.Repeat("x", 77) + "\n"
		path := badWriteRepeated(t, "comments.pln", []byte(strings.Repeat(line, 1<<20/len(line))), 100)
		st, _ := os.Stat(path)
		r := badRun(t, "check", path)
		logRun(t, fmt.Sprintf("%.0f MiB of comment lines", mb(uint64(st.Size()))), r)
		t.Logf("lexed at %.0f MB/s", float64(st.Size())/1e6/r.took.Seconds())
		msgs := badErrors(t, r, path, 1)
		if msgs[0] != "missing task main" {
			t.Errorf("message %q, want missing task main", msgs[0])
		}
	})
}

func TestBadInputLongLine(t *testing.T) {
	const size = 1 << 20
	letters := bytes.Repeat([]byte("abcdefghij"), size/10)
	t.Run("word", func(t *testing.T) {
		path := badWrite(t, "word.pln", letters)
		r := badRun(t, "check", path)
		logRun(t, "one 1 MiB word", r)
		msgs := badErrors(t, r, path, 3)
		if !strings.HasPrefix(msgs[0], "unknown statement") {
			t.Errorf("first message %q, want unknown statement", msgs[0])
		}
	})
	t.Run("string", func(t *testing.T) {
		path := badWrite(t, "string.pln", append([]byte(`parameter x text "`), letters...))
		r := badRun(t, "check", path)
		logRun(t, "a 1 MiB unterminated string", r)
		badErrors(t, r, path, 3)
		if !strings.HasPrefix(r.stderr, path+":1:18: unterminated string") {
			t.Errorf("stderr %q, want unterminated string at 1:18", badHead(r.stderr))
		}
	})
	t.Run("values", func(t *testing.T) {
		// A valid plan whose first line is 1 MiB of values.
		var b strings.Builder
		b.WriteString("parameter x text select anyof")
		n := 0
		for b.Len() < size {
			fmt.Fprintf(&b, " v%d", n)
			n++
		}
		b.WriteString("\n" + badMain)
		path := badWrite(t, "values.pln", []byte(b.String()))
		r := badRun(t, "check", path)
		logRun(t, fmt.Sprintf("a 1 MiB line of %d values", n), r)
		if r.code != exitOK || !strings.Contains(r.stdout, fmt.Sprintf("jobs: %d\n", n)) {
			t.Errorf("exit %d, stdout %q; want 0 and jobs: %d", r.code, badHead(r.stdout), n)
		}
	})
	t.Run("shell", func(t *testing.T) {
		// 1 MiB of shell text naming an unknown variable 100,000 times:
		// only plan.MaxErrors are reported.
		src := "task main\n\tshexec echo" + strings.Repeat(" $y_unknown", size/11) + "\nendtask\n"
		path := badWrite(t, "shell.pln", []byte(src))
		r := badRun(t, "check", path)
		logRun(t, "a 1 MiB shexec line of unknown names", r)
		msgs := badErrors(t, r, path, plan.MaxErrors+1)
		if len(msgs) != plan.MaxErrors+1 || !strings.HasPrefix(msgs[0], "unknown name $y_unknown") {
			t.Errorf("%d messages starting %q; want %d about the unknown name", len(msgs), msgs[0], plan.MaxErrors+1)
		}
	})
}

func TestBadInputDeepNesting(t *testing.T) {
	const depth = 10_000
	head := "parameter x integer range from 1 to 3\nconstraint "
	for _, c := range []struct {
		name, expr, want string
	}{
		{"parens", strings.Repeat("(", depth) + "x > 1" + strings.Repeat(")", depth), "nested too deeply"},
		{"unclosed", strings.Repeat("(", depth) + "x > 1", "nested too deeply"},
		{"not", strings.Repeat("!", depth) + "(x > 1)", "nested too deeply"},
		{"minus", strings.Repeat("-", depth) + "x > 1", "nested too deeply"},
		{"closing", "x > 1" + strings.Repeat(")", depth), "unexpected"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := badWrite(t, c.name+".pln", []byte(head+c.expr+"\n"+badMain))
			r := badRun(t, "check", path)
			logRun(t, fmt.Sprintf("constraint of %d %s", depth, c.name), r)
			msgs := badErrors(t, r, path, 2)
			if !strings.Contains(msgs[0], c.want) || !strings.HasPrefix(r.stderr, path+":2:") {
				t.Errorf("stderr %q; want an error on line 2 containing %q", badHead(r.stderr), c.want)
			}
		})
	}
	t.Run("chain", func(t *testing.T) {
		// A long flat expression is not nesting: it is valid.
		expr := "x" + strings.Repeat(" + x", depth-1) + " > 0 && x" + strings.Repeat(" * 1", depth) + " < 4"
		path := badWrite(t, "chain.pln", []byte(head+expr+"\n"+badMain))
		r := badRun(t, "check", path)
		logRun(t, fmt.Sprintf("constraint of %d terms", 2*depth), r)
		if r.code != exitOK || !strings.Contains(r.stdout, "jobs: 3\n") {
			t.Errorf("exit %d, stdout %q, stderr %q; want 0 and jobs: 3", r.code, badHead(r.stdout), badHead(r.stderr))
		}
	})
}

func TestBadInputManyFiles(t *testing.T) {
	const n = 100_000
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := range n {
		fd, err := syscall.Open(filepath.Join(data, fmt.Sprintf("f%06d.dat", i)), syscall.O_CREAT|syscall.O_WRONLY|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		syscall.Close(fd)
	}
	t.Logf("created %d empty files in %v", n, time.Since(start).Round(time.Millisecond))
	// A directory among the matches is not a file.
	if err := os.Mkdir(filepath.Join(data, "subdir.dat"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Two overlapping patterns: every file once, sorted.
	path := filepath.Join(dir, "many.pln")
	src := "parameter f files select anyof \"data/*.dat\" \"data/f00*\"\ntask main\n\texec cat $f\nendtask\n"
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	r := badRun(t, "check", "--json", path)
	logRun(t, fmt.Sprintf("check, a glob of %d files", n), r)
	if r.code != exitOK {
		t.Fatalf("exit %d; stderr %s", r.code, badHead(r.stderr))
	}
	var rep struct {
		Jobs       int64 `json:"jobs"`
		JobsExact  bool  `json:"jobs_exact"`
		Parameters []struct {
			Count int64 `json:"count"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil {
		t.Fatalf("check --json: %v\n%s", err, badHead(r.stdout))
	}
	if rep.Jobs != n || !rep.JobsExact || len(rep.Parameters) != 1 || rep.Parameters[0].Count != n {
		t.Errorf("check --json says %d jobs (exact %v), parameters %+v; want %d", rep.Jobs, rep.JobsExact, rep.Parameters, n)
	}

	r = badRun(t, "generate", "--format", "jsonl", "--limit", "2", path)
	logRun(t, "generate --limit 2, a glob of 100000 files", r)
	want := `{"index":1,"values":{"f":"data/f000000.dat"}}` + "\n" + `{"index":2,"values":{"f":"data/f000001.dat"}}` + "\n"
	if r.code != exitOK || r.stdout != want {
		t.Errorf("generate: exit %d, stdout %q; want %q", r.code, badHead(r.stdout), want)
	}
}

// badHugePlan is a plan of 10^12 jobs.
const badHugePlan = "parameter a integer range from 1 to 1000000\n" +
	"parameter b float range from 0 to 0.999999 step 0.000001\n" +
	"task main\n\texec echo $a $b\nendtask\n"

func TestBadInputHugePlan(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      string // in the text output
		jobs      int64
		exact     bool
	}{
		{"1e12", badHugePlan, "jobs: 1000000000000\n", 1e12, true},
		{"constrained", badHugePlan + "constraint a % 2 == 0 && b < 0.5\n",
			"jobs: at most 1000000000000 ", 1e12, false},
		{"1e18", "parameter c text select anyof x y z w v u t s r q\nparameter d integer range from 0 to 99999999999999999\n" +
			"task main\n\texec echo $c $d\nendtask\n", "jobs: 1000000000000000000\n", 1e18, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := badWrite(t, c.name+".pln", []byte(c.src))
			r := badRun(t, "check", path)
			logRun(t, "check, "+c.name+" jobs", r)
			if r.code != exitOK || !strings.Contains(r.stdout, c.want) {
				t.Fatalf("exit %d, stdout %q, stderr %q; want %q", r.code, r.stdout, r.stderr, c.want)
			}
			// A count is arithmetic: it holds no job (the time it takes
			// depends on the machine; what it allocates does not).
			if r.allocated > 1<<20 {
				t.Errorf("check allocated %.1f MB; a count is arithmetic and should hold no job", mb(r.allocated))
			}
			r = badRun(t, "check", "--json", path)
			var rep struct {
				Jobs      int64 `json:"jobs"`
				JobsExact bool  `json:"jobs_exact"`
			}
			if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.Jobs != c.jobs || rep.JobsExact != c.exact {
				t.Errorf("check --json: %+v (%v); want %d jobs, exact %v", rep, err, c.jobs, c.exact)
			}
			if r.allocated > 1<<20 {
				t.Errorf("check --json allocated %.1f MB", mb(r.allocated))
			}
		})
	}
	t.Run("overflow", func(t *testing.T) {
		src := "parameter a integer range from 1 to 1000000\nparameter b integer range from 1 to 1000000\n" +
			"parameter c integer range from 1 to 1000000\nparameter d integer range from 1 to 1000000\n" +
			"task main\n\texec echo $a $b $c $d\nendtask\n"
		path := badWrite(t, "overflow.pln", []byte(src))
		r := badRun(t, "check", path)
		logRun(t, "check, 10^24 jobs", r)
		msgs := badErrors(t, r, path, 1)
		if !strings.Contains(msgs[0], "1000000000000000000000000 jobs") {
			t.Errorf("message %q does not give the count", msgs[0])
		}
	})
}

// badLimitedWriter keeps the first 64 KiB written and counts the rest.
type badLimitedWriter struct {
	mu   sync.Mutex
	head []byte
	n    int64
}

func (w *badLimitedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := 64<<10 - len(w.head); room > 0 {
		w.head = append(w.head, p[:min(room, len(p))]...)
	}
	w.n += int64(len(p))
	return len(p), nil
}

// badRunChild runs `orrery ARGS` as a child process (this test binary),
// killed after badDeadline. It returns the exit status (-1 when killed),
// its output, how long it took and its peak RSS (0 when it was killed).
func badRunChild(t *testing.T, args ...string) (code int, stdout, stderr *badLimitedWriter, took time.Duration, rss uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), badDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	hwm := filepath.Join(t.TempDir(), "hwm")
	cmd.Env = append(os.Environ(), badChildEnv+"=1", badHWMEnv+"="+hwm)
	stdout, stderr = &badLimitedWriter{}, &badLimitedWriter{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	start := time.Now()
	err := cmd.Run()
	took = time.Since(start)
	code = cmd.ProcessState.ExitCode()
	if kb, err := os.ReadFile(hwm); err == nil {
		n, _ := strconv.ParseUint(string(kb), 10, 64)
		rss = n << 10
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("orrery %s: %v", badArgs(args), err)
	}
	return code, stdout, stderr, took, rss
}

// badChildRSS logs the peak RSS of a command run in a child process.
func badChildRSS(t *testing.T, what string, args ...string) {
	t.Helper()
	code, _, _, took, rss := badRunChild(t, args...)
	t.Logf("%s, as a process: exit %d in %v, peak RSS %.1f MB", what, code, took.Round(time.Millisecond), mb(rss))
}

func TestBadInputHugePlanGenerateLimit(t *testing.T) {
	// Generating the first jobs of a 10^12-job plan must not depend on the
	// size of the plan: in either format, --limit 3 is three jobs.
	src := "parameter a integer range from 1 to 1000000000000\ntask main\n\texec echo $a\nendtask\n"
	path := badWrite(t, "huge.pln", []byte(src))
	for _, format := range []string{"jsonl", "run"} {
		t.Run(format, func(t *testing.T) {
			code, stdout, stderr, took, rss := badRunChild(t, "generate", "--format", format, "--limit", "3", "--seed", "1", path)
			t.Logf("generate --format %s --limit 3 of 10^12 jobs: exit %d in %v, %d bytes out, peak RSS %.1f MB",
				format, code, took.Round(time.Millisecond), stdout.n, mb(rss))
			if code != exitOK {
				t.Fatalf("exit %d (-1: killed after %v); %d bytes written; stderr %q", code, badDeadline, stdout.n, badHead(string(stderr.head)))
			}
			if stdout.n > 4<<10 {
				t.Fatalf("%d bytes written for 3 jobs; starts %q", stdout.n, badShort(string(stdout.head)))
			}
			// The output is the first three jobs, a = 1, 2, 3.
			out := string(stdout.head)
			if format == "jsonl" {
				want := `{"index":1,"values":{"a":"1"}}` + "\n" + `{"index":2,"values":{"a":"2"}}` + "\n" + `{"index":3,"values":{"a":"3"}}` + "\n"
				if out != want {
					t.Errorf("output %q, want %q", out, want)
				}
				return
			}
			p, err := plan.Parse("out.run", []byte(out), plan.Options{})
			if err != nil {
				t.Fatalf("the run file does not read back: %v\n%s", err, out)
			}
			s, err := sweep.New(p, sweep.Options{Root: t.TempDir()})
			if err != nil {
				t.Fatalf("the run file does not resolve: %v\n%s", err, out)
			}
			var got []string
			for it := s.Iter(); it.Next(); {
				got = append(got, it.Value(0))
			}
			if strings.Join(got, " ") != "1 2 3" {
				t.Errorf("the run file's jobs have a = %q, want 1 2 3:\n%s", got, out)
			}
		})
	}
}
