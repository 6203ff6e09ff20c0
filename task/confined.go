package task

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// ConfinedRoot is a Root over a local directory that no request can
// leave: the root's side of the copies of nodes it does not trust. Every
// access goes through an os.Root opened on Dir (the current directory
// when Dir is empty), so:
//
//   - an absolute name, and one that climbs out with "..", is refused
//     with an *AccessError (see CheckRootPath), as is a symlink anywhere
//     on the way that points out of Dir (or is absolute); a symlink that
//     stays inside Dir is followed;
//   - Open reads regular files only (never a directory, FIFO or device);
//   - Put writes a temporary file (named with a ".orrery-tmp-" prefix)
//     and renames it into place, so the file appears complete or not at
//     all and no partial file is left on error; missing parent
//     directories are created inside Dir; write permission for group and
//     others is dropped from the node's permission bits; a failure to
//     write the temporary file in TempDir is the root's own (it wraps
//     ErrRootSystem), whatever its cause (a full disk, permission);
//   - Glob lists regular files only, as names relative to Dir, sorted,
//     leaving out the symlinks that point out and files being written.
//
// Refused names give errors for which errors.Is(err, ErrDenied) holds;
// missing files, errors.Is(err, fs.ErrNotExist). Unlike DirRoot, it
// serves no absolute path, even one inside Dir. A ConfinedRoot may be
// used from many goroutines.
type ConfinedRoot struct {
	// Dir is the root directory; "" is the current directory.
	Dir string
	// TempDir, when set and inside Dir on the same file system as the
	// target's directory, holds files while Put writes them (as
	// DirRoot.TempDir); otherwise they are written next to their target.
	TempDir string
	// Hidden are directories inside Dir that no node may touch, whatever
	// a plan's copy commands say: the state directory, with the
	// experiment's keys and database.
	Hidden []string
}

var _ Root = ConfinedRoot{}

// openRoot opens the directory.
func (c ConfinedRoot) openRoot() (*os.Root, error) {
	dir := c.Dir
	if dir == "" {
		dir = "."
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("root directory: %w", err)
	}
	return r, nil
}

// begin checks the context and the name, and opens the directory.
func (c ConfinedRoot) begin(ctx context.Context, op, name string) (*os.Root, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	clean, err := CheckRootPath(name)
	if err != nil {
		e := err.(*AccessError)
		e.Op = op
		return nil, "", e
	}
	if op != "glob" && c.hidden(clean) {
		return nil, "", &AccessError{Op: op, Path: name, Reason: reasonHidden}
	}
	r, err := c.openRoot()
	if err != nil {
		return nil, "", err
	}
	return r, clean, nil
}

// reasonHidden is why a path in a hidden directory is refused.
const reasonHidden = "inside the state directory"

// hidden reports whether clean (a cleaned relative root path) is in one
// of the hidden directories, as written or once symlinks are followed.
func (c ConfinedRoot) hidden(clean string) bool {
	if len(c.Hidden) == 0 {
		return false
	}
	dir, _ := filepath.Abs(cmp.Or(c.Dir, "."))
	full := filepath.Join(dir, filepath.FromSlash(clean))
	// The deepest part of the path that exists, with symlinks followed.
	real, rest := full, ""
	for {
		if r, err := filepath.EvalSymlinks(real); err == nil {
			real = filepath.Join(r, rest)
			break
		}
		parent := filepath.Dir(real)
		if parent == real {
			real = full
			break
		}
		rest = filepath.Join(filepath.Base(real), rest)
		real = parent
	}
	for _, h := range c.Hidden {
		h, _ = filepath.Abs(h)
		hr, err := filepath.EvalSymlinks(h)
		if err != nil {
			hr = h
		}
		for _, p := range []string{full, real} {
			for _, base := range []string{h, hr} {
				if p == base || strings.HasPrefix(p, base+string(filepath.Separator)) {
					return true
				}
			}
		}
	}
	return false
}

// confinedErr turns os.Root's "path escapes from parent" into an
// *AccessError; other errors are returned as they are.
func confinedErr(op, name string, err error) error {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "path escapes from parent" {
			return &AccessError{Op: op, Path: name, Reason: reasonOutside + ": a symlink on the way points out of it"}
		}
	}
	return err
}

// Open opens a regular file for reading.
func (c ConfinedRoot) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	r, clean, err := c.begin(ctx, "open", name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	// O_NONBLOCK: opening a FIFO must not wait for a writer.
	f, err := r.OpenFile(clean, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, confinedErr("open", name, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("root path %q is not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// Stat describes a file or directory, following symlinks inside Dir.
func (c ConfinedRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	r, clean, err := c.begin(ctx, "stat", name)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	fi, err := r.Stat(clean)
	if err != nil {
		return nil, confinedErr("stat", name, err)
	}
	return fi, nil
}

// Put writes rd to a temporary file and renames it to name once all of
// rd was copied.
func (c ConfinedRoot) Put(ctx context.Context, name string, perm fs.FileMode, rd io.Reader) (err error) {
	r, clean, err := c.begin(ctx, "put", name)
	if err != nil {
		return err
	}
	defer r.Close()
	dir := path.Dir(clean)
	if dir != "." {
		if err := r.MkdirAll(dir, 0o755); err != nil {
			return confinedErr("put", name, err)
		}
	}
	tdir := c.tempDir(r, dir)
	// A file written in TempDir (the root's own, in its state directory)
	// that cannot be written is the root's failure, never the job's.
	own := func(err error) error {
		if tdir != dir && !errors.Is(err, ErrRootSystem) {
			return fmt.Errorf("%w: writing in %s: %w", ErrRootSystem, c.TempDir, err)
		}
		return err
	}
	tmp := path.Join(tdir, tempPrefix+rand.Text())
	f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return own(confinedErr("put", name, err))
	}
	defer func() {
		if err != nil {
			f.Close()
			r.Remove(tmp)
		}
	}()
	w := &writeErr{w: f}
	if _, err := io.Copy(w, ctxReader{ctx, rd}); err != nil {
		if w.err != nil {
			return own(err)
		}
		return err
	}
	if err := f.Chmod(perm.Perm() &^ 0o022); err != nil {
		return own(err)
	}
	if err := f.Close(); err != nil {
		return own(err)
	}
	if err := r.Rename(tmp, clean); err != nil {
		return confinedErr("put", name, err)
	}
	return nil
}

// writeErr is a writer that keeps its first error, to tell a failed
// write from a failed read.
type writeErr struct {
	w   io.Writer
	err error
}

func (w *writeErr) Write(p []byte) (int, error) {
	n, err := w.w.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

// tempDir returns where Put writes a file bound for the directory dir
// (both relative to Dir): TempDir when it lies inside Dir on the same
// file system as dir, else dir itself.
func (c ConfinedRoot) tempDir(r *os.Root, dir string) string {
	if c.TempDir == "" {
		return dir
	}
	base, err1 := filepath.Abs(filepath.Join(c.Dir, "."))
	tmp, err2 := filepath.Abs(c.TempDir)
	if err1 != nil || err2 != nil {
		return dir
	}
	rel, err := filepath.Rel(base, tmp)
	if err != nil {
		return dir
	}
	rel = filepath.ToSlash(rel)
	if rel == ".." || strings.HasPrefix(rel, "../") || filepath.IsAbs(rel) {
		return dir
	}
	st, err1 := r.Stat(rel)
	sd, err2 := r.Stat(dir)
	if err1 != nil || err2 != nil || !st.IsDir() {
		return dir
	}
	dt, ok1 := st.Sys().(*syscall.Stat_t)
	dd, ok2 := sd.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 || dt.Dev != dd.Dev {
		return dir
	}
	return rel
}

// Glob returns the regular files matching pattern (path.Match syntax),
// relative to Dir and sorted. Directories are listed inside Dir only; a
// match that is a symlink pointing out of Dir, or a file Put is still
// writing, is left out.
func (c ConfinedRoot) Glob(ctx context.Context, pattern string) ([]string, error) {
	r, clean, err := c.begin(ctx, "glob", pattern)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	matches, err := fs.Glob(globFS{r}, clean)
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", pattern, err)
	}
	var names []string
	for _, m := range matches {
		if strings.HasPrefix(path.Base(m), tempPrefix) || c.hidden(m) {
			continue
		}
		if fi, err := r.Stat(m); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		names = append(names, m)
	}
	slices.Sort(names)
	return names, nil
}

// globFS is the file system fs.Glob lists: the os.Root, opened so that
// no open waits (a FIFO matched by a pattern's directory part would block
// a plain open until a writer came).
type globFS struct{ r *os.Root }

// Open opens a file without waiting (fs.Glob does not call it).
func (g globFS) Open(name string) (fs.File, error) {
	return g.r.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
}

// Stat describes a file without opening it.
func (g globFS) Stat(name string) (fs.FileInfo, error) { return g.r.Stat(name) }

// ReadDir lists a directory, sorted by name; anything else is an error.
func (g globFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := g.r.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries, err := f.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

// ErrRootSystem is the error a node's Root wraps when the root's side
// failed for a reason that is not the job's (the root reported it as a
// system failure: out of file descriptors or disk space, say). It reaches
// the caller of RunTask through the *CommandError of the copy that met it,
// so errors.Is(err, ErrRootSystem) tells a system failure (run the job
// again) from a job failure.
var ErrRootSystem = errors.New("failure on the root's side")

// IsRootSystemError reports whether err, met by a Root on the root's
// side, is not the job's fault: the root ran out of a resource (file
// descriptors, memory, disk space or quota), its disk failed or is read
// only, or the root stopped serving (its context ended). A missing file,
// a refused path (ErrDenied), a permission error on the file, or a path
// that names a directory is the job's; so is any error not known to be
// the system's. The server of a Root flags the errors this accepts, and
// the node wraps them with ErrRootSystem.
func IsRootSystemError(err error) bool {
	switch {
	case err == nil, errors.Is(err, ErrRootSystem):
		return err != nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, ErrDenied), errors.Is(err, fs.ErrPermission):
		return false
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return false
	}
	switch errno {
	case syscall.EMFILE, syscall.ENFILE, syscall.ENOMEM, syscall.ENOBUFS, syscall.EAGAIN,
		syscall.ENOSPC, syscall.EDQUOT, syscall.EIO, syscall.EROFS, syscall.ESTALE,
		syscall.ENOLCK, syscall.ETIMEDOUT:
		return true
	}
	return false
}

// RootSystemError returns the first error of the task's commands that
// wraps ErrRootSystem, even one that onerror ignore let pass (a result
// file may then be missing through no fault of the job), or nil.
func (r *Result) RootSystemError() error {
	for i := range r.Commands {
		if err := r.Commands[i].Err; errors.Is(err, ErrRootSystem) {
			return err
		}
	}
	if errors.Is(r.Err, ErrRootSystem) {
		return r.Err
	}
	return nil
}
