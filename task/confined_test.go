package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// confinedFixture is a root directory with symlinks in and out, and a
// directory beside it that no request may reach.
type confinedFixture struct {
	base, dir, outside string
	root               ConfinedRoot
}

func newConfined(t *testing.T) *confinedFixture {
	t.Helper()
	base := t.TempDir()
	c := &confinedFixture{base: base, dir: filepath.Join(base, "root"), outside: filepath.Join(base, "outside")}
	c.root = ConfinedRoot{Dir: c.dir}
	for name, content := range map[string]string{
		"root/data/a.csv":     "a",
		"root/data/b.csv":     "b",
		"root/data/sub/c.csv": "c",
		"root/top.txt":        "top",
		"outside/secret.txt":  "secret",
	} {
		p := filepath.Join(base, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for link, target := range map[string]string{
		"abs-link":         filepath.Join(c.outside, "secret.txt"),
		"rel-link":         "../outside/secret.txt",
		"passwd":           "/etc/passwd",
		"data/evil.csv":    "../../outside/secret.txt",
		"out-dir":          c.outside,
		"out-dir-rel":      "../outside",
		"good-link":        "data/a.csv",
		"data/up.csv":      "../top.txt",
		"good-dir":         "data",
		"dangling":         "nowhere.txt",
		"data/loop.csv":    "loop.csv",
		"data/dirlink.csv": "sub",
	} {
		if err := os.Symlink(target, filepath.Join(c.dir, link)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(c.dir, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// untouched fails the test when anything outside the root changed.
func (c *confinedFixture) untouched(t *testing.T) {
	t.Helper()
	if got := names(t, c.outside); !slices.Equal(got, []string{"secret.txt"}) {
		t.Errorf("files were written outside the root: %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(c.outside, "secret.txt")); string(b) != "secret" {
		t.Errorf("secret.txt changed: %q", b)
	}
	entries, _ := os.ReadDir(c.base)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, []string{"outside", "root"}) {
		t.Errorf("the root's parent holds %q", got)
	}
}

// outcome classifies an error: "ok", "denied", "notexist" or "error".
func outcome(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrDenied):
		if errors.Is(err, fs.ErrNotExist) {
			return "denied and notexist"
		}
		return "denied"
	case errors.Is(err, fs.ErrNotExist):
		return "notexist"
	}
	return "error"
}

// noHang fails the test at once when f does not return within 5 seconds
// (a FIFO opened for reading waits for a writer).
func noHang(t *testing.T, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s blocks", what)
	}
}

func TestConfinedRootRead(t *testing.T) {
	c := newConfined(t)
	ctx := context.Background()
	noHang(t, "Open of a FIFO", func() {
		if rc, err := c.root.Open(ctx, "fifo"); err == nil {
			rc.Close()
		}
	})
	for _, tc := range []struct {
		name, open, stat string
		content          string
	}{
		{"data/a.csv", "ok", "ok", "a"},
		{"./data//a.csv", "ok", "ok", "a"},
		{"data/sub/../a.csv", "ok", "ok", "a"},
		{"good-link", "ok", "ok", "a"},       // a symlink inside
		{"good-dir/b.csv", "ok", "ok", "b"},  // through a directory symlink inside
		{"data/up.csv", "ok", "ok", "top"},   // a relative symlink that stays inside
		{"abs-link", "denied", "denied", ""}, // absolute symlink out
		{"rel-link", "denied", "denied", ""}, // relative symlink out
		{"passwd", "denied", "denied", ""},   // to /etc/passwd
		{"data/evil.csv", "denied", "denied", ""},
		{"out-dir/secret.txt", "denied", "denied", ""},
		{"out-dir-rel/secret.txt", "denied", "denied", ""},
		{"/etc/passwd", "denied", "denied", ""},
		{filepath.Join(c.dir, "top.txt"), "denied", "denied", ""}, // absolute, even inside
		{"../outside/secret.txt", "denied", "denied", ""},
		{"data/../../outside/secret.txt", "denied", "denied", ""},
		{"missing.txt", "notexist", "notexist", ""},
		{"data/missing/x", "notexist", "notexist", ""},
		{"dangling", "notexist", "notexist", ""},
		{"data", "error", "ok", ""}, // a directory: Stat yes, Open no
		{"fifo", "error", "ok", ""}, // not a regular file (and no wait for a writer)
		{"data/loop.csv", "error", "error", ""},
		{"", "denied", "denied", ""},
		{".", "denied", "denied", ""},
	} {
		rc, err := c.root.Open(ctx, tc.name)
		if got := outcome(err); got != tc.open {
			t.Errorf("Open(%q): %s (%v), want %s", tc.name, got, err, tc.open)
		}
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			if string(b) != tc.content {
				t.Errorf("Open(%q) read %q, want %q", tc.name, b, tc.content)
			}
		}
		fi, err := c.root.Stat(ctx, tc.name)
		if got := outcome(err); got != tc.stat {
			t.Errorf("Stat(%q): %s (%v), want %s", tc.name, got, err, tc.stat)
		}
		if err == nil && tc.content != "" && fi.Size() != int64(len(tc.content)) {
			t.Errorf("Stat(%q).Size() = %d", tc.name, fi.Size())
		}
	}
	_, err := c.root.Open(ctx, "abs-link")
	if want := `root path "abs-link" refused: outside the root directory: a symlink on the way points out of it`; err == nil || err.Error() != want {
		t.Errorf("message:\n got %v\nwant %s", err, want)
	}
	c.untouched(t)
}

func TestConfinedRootPut(t *testing.T) {
	c := newConfined(t)
	ctx := context.Background()
	for _, tc := range []struct{ name, want string }{
		{"results/../../x", "denied"},
		{"../x", "denied"},
		{"/tmp/orrery-confined-test-x", "denied"},
		{filepath.Join(c.outside, "x"), "denied"},
		{"out-dir/x", "denied"},
		{"out-dir-rel/x", "denied"},
		{"out-dir/sub/x", "denied"}, // MkdirAll through a symlink out
		{"data/evil.csv/x", "denied"},
		{".", "denied"},
		{"data", "error"}, // an existing directory
		{"top.txt/x", "error"},
	} {
		err := c.root.Put(ctx, tc.name, 0o644, strings.NewReader("planted"))
		if got := outcome(err); got != tc.want {
			t.Errorf("Put(%q): %s (%v), want %s", tc.name, got, err, tc.want)
		}
	}
	if _, err := os.Stat("/tmp/orrery-confined-test-x"); err == nil {
		t.Error("Put wrote an absolute path")
		os.Remove("/tmp/orrery-confined-test-x")
	}
	c.untouched(t)

	// Writing through symlinks inside, or replacing a symlink: the link
	// itself is replaced, its target outside is not written.
	for name, path := range map[string]string{
		"results/a/b.txt":  "results/a/b.txt",
		"good-dir/new.csv": "data/new.csv",
		"./results//c.txt": "results/c.txt",
		"abs-link":         "abs-link",
		"data/evil.csv":    "data/evil.csv",
	} {
		if err := c.root.Put(ctx, name, 0o777, strings.NewReader("new "+name)); err != nil {
			t.Errorf("Put(%q): %v", name, err)
			continue
		}
		fi, err := os.Lstat(filepath.Join(c.dir, path))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm() != 0o755 {
			t.Errorf("Put(%q): %s is %v, %v; want a regular file of mode 0755", name, path, fi, err)
		}
		if b, _ := os.ReadFile(filepath.Join(c.dir, path)); string(b) != "new "+name {
			t.Errorf("Put(%q): %s holds %q", name, path, b)
		}
	}
	c.untouched(t)

	// A failed Put keeps the old file and leaves no temporary file.
	if err := c.root.Put(ctx, "results/a/b.txt", 0o644, &failingReader{1}); err == nil || outcome(err) != "error" {
		t.Errorf("Put with a failing reader: %v", err)
	}
	if err := c.root.Put(ctx, "results/new/d.txt", 0o644, &failingReader{1}); err == nil {
		t.Error("Put with a failing reader succeeded")
	}
	if b, _ := os.ReadFile(filepath.Join(c.dir, "results/a/b.txt")); string(b) != "new results/a/b.txt" {
		t.Errorf("a failed Put changed the old file: %q", b)
	}
	if got := names(t, filepath.Join(c.dir, "results")); !slices.Equal(got, []string{"a/b.txt", "c.txt"}) {
		t.Errorf("after failed Puts results/ holds %q", got)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := c.root.Put(cctx, "results/e.txt", 0o644, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
}

// peekReader reports, at its first read, the files in a directory.
type peekReader struct {
	dir  string
	seen []string
	r    io.Reader
}

func (p *peekReader) Read(b []byte) (int, error) {
	if p.seen == nil {
		p.seen = []string{}
		filepath.WalkDir(p.dir, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasPrefix(d.Name(), tempPrefix) {
				rel, _ := filepath.Rel(p.dir, path)
				p.seen = append(p.seen, filepath.Dir(rel))
			}
			return nil
		})
	}
	return p.r.Read(b)
}

func TestConfinedRootTempDir(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		tempDir string // relative to the test's base directory
		want    string // where the temporary file is, relative to the root
	}{
		{"", "results"},
		{"root/.incoming", ".incoming"},
		{"outside-tmp", "results"},  // not inside the root: next to the target
		{"root/missing", "results"}, // missing
	} {
		base := t.TempDir()
		dir := filepath.Join(base, "root")
		os.MkdirAll(filepath.Join(dir, ".incoming"), 0o755)
		os.MkdirAll(filepath.Join(base, "outside-tmp"), 0o755)
		r := ConfinedRoot{Dir: dir}
		if tc.tempDir != "" {
			r.TempDir = filepath.Join(base, tc.tempDir)
		}
		p := &peekReader{dir: base, r: strings.NewReader("data")}
		if err := r.Put(ctx, "results/out.txt", 0o644, p); err != nil {
			t.Fatal(err)
		}
		if want := []string{filepath.Join("root", tc.want)}; !slices.Equal(p.seen, want) {
			t.Errorf("TempDir %q: the file was written in %q, want %q", tc.tempDir, p.seen, want)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, "results/out.txt")); string(b) != "data" {
			t.Errorf("TempDir %q: out.txt = %q", tc.tempDir, b)
		}
		if got := names(t, base); !slices.Equal(got, []string{"root/results/out.txt"}) {
			t.Errorf("TempDir %q: files %q", tc.tempDir, got)
		}
	}
}

func TestConfinedRootGlob(t *testing.T) {
	c := newConfined(t)
	ctx := context.Background()
	os.WriteFile(filepath.Join(c.dir, "data", tempPrefix+"x.csv"), []byte("partial"), 0o644)
	noHang(t, "Glob through a FIFO", func() { c.root.Glob(ctx, "fifo/*") })
	for _, tc := range []struct {
		pattern string
		want    []string
		err     string // "denied", or a part of the message
	}{
		{"data/*.csv", []string{"data/a.csv", "data/b.csv", "data/up.csv"}, ""},
		{"./data//*.csv", []string{"data/a.csv", "data/b.csv", "data/up.csv"}, ""},
		{"*", []string{"good-link", "top.txt"}, ""},
		{"*/*.csv", []string{"data/a.csv", "data/b.csv", "data/up.csv", "good-dir/a.csv", "good-dir/b.csv", "good-dir/up.csv"}, ""},
		{"data/*/*.csv", []string{"data/dirlink.csv/c.csv", "data/sub/c.csv"}, ""}, // dirlink.csv is sub
		{"out-dir/*", nil, ""},
		{"out-dir-rel/*", nil, ""},
		{"*/secret.txt", nil, ""},
		{"data/[b]*", []string{"data/b.csv"}, ""},
		{"data/none*", nil, ""},
		{"../outside/*", nil, "denied"},
		{"/etc/*", nil, "denied"},
		{"data/../../*/*", nil, "denied"},
		{"data/[", nil, "syntax error in pattern"},
	} {
		got, err := c.root.Glob(ctx, tc.pattern)
		switch {
		case tc.err == "denied":
			if !errors.Is(err, ErrDenied) {
				t.Errorf("Glob(%q) = %q, %v; want ErrDenied", tc.pattern, got, err)
			}
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Glob(%q) = %q, %v; want an error with %q", tc.pattern, got, err, tc.err)
			}
		case err != nil || !slices.Equal(got, tc.want):
			t.Errorf("Glob(%q) = %q, %v; want %q", tc.pattern, got, err, tc.want)
		}
	}
}

func TestIsRootSystemError(t *testing.T) {
	pathErr := func(errno syscall.Errno) error { return &fs.PathError{Op: "openat", Path: "x", Err: errno} }
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{pathErr(syscall.EMFILE), true},
		{fmt.Errorf("put x: %w", pathErr(syscall.ENFILE)), true},
		{pathErr(syscall.ENOSPC), true},
		{pathErr(syscall.EDQUOT), true},
		{pathErr(syscall.EIO), true},
		{pathErr(syscall.ENOMEM), true},
		{pathErr(syscall.EROFS), true},
		{&os.LinkError{Op: "renameat", Old: "a", New: "b", Err: syscall.ENOSPC}, true},
		{context.Canceled, true},
		{fmt.Errorf("%w: too many open files", ErrRootSystem), true},
		{nil, false},
		{pathErr(syscall.ENOENT), false},
		{fs.ErrNotExist, false},
		{pathErr(syscall.EACCES), false},
		{pathErr(syscall.EPERM), false},
		{pathErr(syscall.EISDIR), false},
		{pathErr(syscall.ENOTDIR), false},
		{pathErr(syscall.ELOOP), false},
		{&AccessError{Op: "open", Path: "/etc/passwd", Reason: reasonOutside}, false},
		{fmt.Errorf("x: %w", ErrDenied), false},
		{errors.New("the node's data stopped"), false},
	} {
		if got := IsRootSystemError(tc.err); got != tc.want {
			t.Errorf("IsRootSystemError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	// A real missing file and a real escape are not system failures.
	c := newConfined(t)
	for _, name := range []string{"missing.txt", "abs-link", "/etc/passwd"} {
		_, err := c.root.Open(context.Background(), name)
		if err == nil || IsRootSystemError(err) {
			t.Errorf("Open(%q): %v counts as a system failure", name, err)
		}
	}
}

// TestConfinedRootHidesTheStateDirectory: whatever a plan's copies say,
// no node reads or writes the state directory (keys, database), by name,
// by glob or through a symlink.
func TestConfinedRootHidesTheStateDirectory(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, ".orrery")
	os.MkdirAll(filepath.Join(state, "pki"), 0o700)
	os.WriteFile(filepath.Join(state, "pki", "ca.key"), []byte("CA PRIVATE KEY"), 0o600)
	os.WriteFile(filepath.Join(dir, "ok.txt"), []byte("ok"), 0o644)
	os.Symlink(".orrery", filepath.Join(dir, "st"))
	c := ConfinedRoot{Dir: dir, Hidden: []string{state}}
	ctx := context.Background()
	for _, name := range []string{".orrery/pki/ca.key", "./.orrery/pki/ca.key", "st/pki/ca.key", ".orrery"} {
		if _, err := c.Open(ctx, name); !errors.Is(err, ErrDenied) {
			t.Errorf("Open(%q) = %v, want denied", name, err)
		}
		if _, err := c.Stat(ctx, name); !errors.Is(err, ErrDenied) {
			t.Errorf("Stat(%q) = %v, want denied", name, err)
		}
	}
	if err := c.Put(ctx, ".orrery/pki/ca.key", 0o644, strings.NewReader("x")); !errors.Is(err, ErrDenied) {
		t.Errorf("Put into the state directory = %v, want denied", err)
	}
	for _, pat := range []string{"*/*/*", "*/pki/*", "st/*/*"} {
		names, err := c.Glob(ctx, pat)
		if err != nil || len(names) != 0 {
			t.Errorf("Glob(%q) = %v, %v; want nothing", pat, names, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(state, "pki", "ca.key")); err != nil || string(b) != "CA PRIVATE KEY" {
		t.Fatalf("the key changed: %q, %v", b, err)
	}
	if rc, err := c.Open(ctx, "ok.txt"); err != nil {
		t.Fatalf("Open(ok.txt) = %v", err)
	} else {
		rc.Close()
	}
}

// TestConfinedRootTempDirWriteFails: a file that cannot be written in
// TempDir (the root's own directory) fails as the root's failure
// (ErrRootSystem), not as the job's, whatever the cause. The cause here
// is a file size limit (EFBIG), set in a child process of the test so
// that it binds nothing else; Go ignores SIGXFSZ.
func TestConfinedRootTempDirWriteFails(t *testing.T) {
	if base := os.Getenv("ORRERY_TEST_FSIZE_BASE"); base != "" {
		lim := syscall.Rlimit{Cur: 1024, Max: 1024}
		if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
			fmt.Println("setrlimit:", err)
			os.Exit(0)
		}
		r := ConfinedRoot{Dir: filepath.Join(base, "root"), TempDir: filepath.Join(base, "root", ".incoming")}
		err := r.Put(context.Background(), "results/out.txt", 0o644, strings.NewReader(strings.Repeat("x", 8192)))
		fmt.Printf("root-side=%v efbig=%v err=%v\n", IsRootSystemError(err), errors.Is(err, syscall.EFBIG), err)
		os.Exit(0)
	}
	base := t.TempDir()
	if err := os.MkdirAll(filepath.Join(base, "root", ".incoming"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestConfinedRootTempDirWriteFails$")
	cmd.Env = append(os.Environ(), "ORRERY_TEST_FSIZE_BASE="+base)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "root-side=true efbig=true") {
		t.Errorf("a write that failed in TempDir: %s; want a root-side failure wrapping EFBIG", out)
	}
	if got := names(t, filepath.Join(base, "root")); len(got) != 0 {
		t.Errorf("files left behind: %q", got)
	}
}
