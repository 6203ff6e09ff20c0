package task

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestCopyDirections(t *testing.T) {
	f := newFixture(t)
	f.write(f.root, "in/data-ex.txt", "input\n")
	f.write(f.root, "tool.sh", "#!/bin/sh\necho tool ran\n")
	os.Chmod(filepath.Join(f.root, "tool.sh"), 0o755)
	abs := filepath.Join(t.TempDir(), "abs-out.txt")
	res := f.mustRun("", `
	copy root:in/data-$x.txt node:input.txt
	copy root:tool.sh node:bin/tool.sh
	exec ./bin/tool.sh
	copy node:input.txt node:copy/of/input.txt
	copy node:copy/of/input.txt root:results/$jobname/out.txt
	copy node:input.txt root:`+abs+`
	copy node:input.txt root:results`)
	if got := res.Commands[2].Stdout.String(); got != "tool ran\n" {
		t.Errorf("staged program printed %q (its mode must be kept)", got)
	}
	for _, p := range []string{
		filepath.Join(f.job, "input.txt"),
		filepath.Join(f.job, "copy/of/input.txt"),
		filepath.Join(f.root, "results/j1/out.txt"),
		filepath.Join(f.root, "results/input.txt"), // into an existing directory
		abs,
	} {
		if b, err := os.ReadFile(p); err != nil || string(b) != "input\n" {
			t.Errorf("%s: %q, %v", p, b, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(f.job, "bin/tool.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("staged tool.sh: %v, %v", fi, err)
	}
}

// names lists the files under dir, relative and sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	var got []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestCopyGlobs(t *testing.T) {
	f := newFixture(t)
	for _, n := range []string{"data/a.txt", "data/b.txt", "data/c.dat", "data/sub/d.txt"} {
		f.write(f.root, n, n)
	}
	os.Mkdir(filepath.Join(f.root, "data/dir.txt"), 0o755) // a directory a glob skips
	f.mustRun("", `
	copy root:data/*.txt node:in/
	copy root:data/?.dat node:.
	copy root:data/[c]* node:single.dat
	shexec "mkdir out; echo 1 > out/r1.csv; echo 2 > out/r2.csv"
	copy node:out/*.csv root:results/$jobname/
	copy node:out/r1.* root:results/one.csv`)
	if got, want := names(t, f.job), []string{"c.dat", "in/a.txt", "in/b.txt", "out/r1.csv", "out/r2.csv", "single.dat"}; !slices.Equal(got, want) {
		t.Errorf("job directory has %q, want %q", got, want)
	}
	if got := f.read(f.job, "in/b.txt"); got != "data/b.txt" {
		t.Errorf("in/b.txt = %q", got)
	}
	for n, want := range map[string]string{"results/j1/r1.csv": "1\n", "results/j1/r2.csv": "2\n", "results/one.csv": "1\n"} {
		if got := f.read(f.root, n); got != want {
			t.Errorf("%s = %q, want %q", n, got, want)
		}
	}
}

func TestCopyFailures(t *testing.T) {
	f := newFixture(t)
	f.write(f.root, "a.txt", "a")
	f.write(f.root, "b.txt", "b")
	f.write(f.root, "dir/x", "x")
	for _, tc := range []struct{ body, want string }{
		{"copy root:missing.txt node:in.txt", `t.pln:3:1: task main: copy root:missing.txt node:in.txt: root file "missing.txt" does not exist`},
		{"copy node:missing.txt root:out.txt", `node file "missing.txt" does not exist`},
		{"copy root:*.none node:.", `no root file matches "*.none"`},
		{"copy node:*.none root:out/", `no node file matches "*.none"`},
		{"copy root:*.txt node:one.txt", `2 files match root:*.txt, so the destination node:one.txt must be a directory (end it with /)`},
		{"copy root:dir node:dir", `root path "dir" is a directory: copy copies files`},
		{"copy root:[ node:x", `syntax error in pattern`},
	} {
		_, err := f.run("", tc.body, Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s:\n got %v\nwant %s", tc.body, err, tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(f.job, "one.txt")); err == nil {
		t.Error("a failed glob copy left a file")
	}
}

func TestNodePathsStayInJobDir(t *testing.T) {
	f := newFixture(t)
	outside := t.TempDir()
	f.write(outside, "secret.txt", "secret")
	f.write(f.root, "in.txt", "in")
	f.write(f.job, "ok.txt", "ok")
	os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(f.job, "abs-link"))
	os.Symlink("../../../"+filepath.Base(outside)+"/secret.txt", filepath.Join(f.job, "rel-link"))
	os.Symlink(outside, filepath.Join(f.job, "dir-link"))
	os.Symlink("ok.txt", filepath.Join(f.job, "good-link"))
	for _, body := range []string{
		"copy node:../x root:x",
		"copy root:in.txt node:../x",
		"copy root:in.txt node:sub/../../x",
		"copy root:in.txt node:" + filepath.Join(outside, "abs.txt"),
		"copy node:" + filepath.Join(outside, "secret.txt") + " root:got.txt",
		"copy node:abs-link root:got.txt",
		"copy node:rel-link root:got.txt",
		"copy node:*-link root:got/",
		"copy node:dir-link/*.txt root:got/",
		"copy root:in.txt node:dir-link/planted.txt",
		"copy root:in.txt node:abs-link",
		"substitute node:abs-link node:out.txt",
		"substitute node:ok.txt node:dir-link/planted.txt",
		"redirect stdout to ../log.txt",
		"redirect stderr to dir-link/log.txt",
	} {
		_, err := f.run("", body, Options{})
		if !errors.Is(err, ErrEscape) {
			t.Errorf("%s: err = %v, want ErrEscape", body, err)
		}
	}
	if got := names(t, outside); !slices.Equal(got, []string{"secret.txt"}) {
		t.Errorf("files were written outside the job directory: %q", got)
	}
	if got := f.read(outside, "secret.txt"); got != "secret" {
		t.Errorf("secret.txt changed: %q", got)
	}
	if _, err := os.Stat(filepath.Join(f.root, "got.txt")); err == nil {
		t.Error("a file outside the job directory was collected")
	}
	_, err := f.run("", "copy node:good-link root:good.txt\ncopy node:sub/../ok.txt root:ok2.txt", Options{})
	if err != nil {
		t.Errorf("a symlink and a .. inside the job directory: %v", err)
	}
	_, err = f.run("", "copy node:../x root:x", Options{})
	if want := `node path "../x" climbs out with "..": refused: node paths stay inside the job directory`; err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("message: %v\nwant it to end %s", err, want)
	}
}

// failingReader returns some bytes, then an error.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		r.n = 0
		return copy(p, "partial"), nil
	}
	return 0, errors.New("connection lost")
}

func TestDirRoot(t *testing.T) {
	dir := t.TempDir()
	d := DirRoot{Dir: dir}
	ctx := context.Background()
	if err := d.Put(ctx, "a/b/c.txt", 0o640, strings.NewReader("hello")); err != nil {
		t.Fatal(err)
	}
	rc, err := d.Open(ctx, "a/b/c.txt")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	fi, err := d.Stat(ctx, filepath.Join(dir, "a/b/c.txt"))
	if string(b) != "hello" || err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("read back %q, stat %v %v", b, fi, err)
	}
	if err := d.Put(ctx, "a/b/c.txt", 0o644, &failingReader{1}); err == nil {
		t.Error("Put with a failing reader succeeded")
	}
	if got := names(t, dir); !slices.Equal(got, []string{"a/b/c.txt"}) {
		t.Errorf("after a failed Put the directory has %q", got)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a/b/c.txt")); string(b) != "hello" {
		t.Errorf("a failed Put changed the old file: %q", b)
	}
	os.WriteFile(filepath.Join(dir, "a/d.txt"), nil, 0o644)
	os.Mkdir(filepath.Join(dir, "a/e.txt"), 0o755)
	got, err := d.Glob(ctx, "a/*.txt")
	if err != nil || !slices.Equal(got, []string{"a/d.txt"}) {
		t.Errorf("Glob = %q, %v", got, err)
	}
	got, err = d.Glob(ctx, filepath.Join(dir, "a/*/*.txt"))
	if err != nil || !slices.Equal(got, []string{filepath.Join(dir, "a/b/c.txt")}) {
		t.Errorf("absolute Glob = %q, %v", got, err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Put(cctx, "x.txt", 0o644, strings.NewReader("x")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
}
