package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// Root is the root side of a copy, as a node sees it. The node shares no
// file system with the root, so every root file is read and written through
// this interface; the agent protocol implements it with file-transfer
// messages, DirRoot over a local directory.
//
// Names are root paths as the plan writes them: relative to the root
// directory, or absolute (the user's own choice; a Root served to a node,
// GuardedRoot over ConfinedRoot, refuses them). A missing file is an
// error for which errors.Is(err, fs.ErrNotExist) holds; a path the root
// refuses to a node, one for which errors.Is(err, ErrDenied) holds. A
// task calls its Root from one goroutine at a time.
type Root interface {
	// Open opens a root file for reading.
	Open(ctx context.Context, name string) (io.ReadCloser, error)
	// Stat describes a root file or directory, following symlinks.
	Stat(ctx context.Context, name string) (fs.FileInfo, error)
	// Put writes the bytes of r to the root file name with permission
	// bits perm, creating missing parent directories. The file appears
	// (replacing an old one) only when all of r was read without error;
	// on any error no partial file is left behind.
	Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error
	// Glob returns the names of the regular files (after following
	// symlinks) matching pattern, in the syntax of path/filepath.Match,
	// sorted. Relative patterns give relative names.
	Glob(ctx context.Context, pattern string) ([]string, error)
}

// DirRoot is a Root over a local directory: relative names are relative
// to Dir (the current directory when Dir is empty), absolute names are
// used as they are.
type DirRoot struct {
	Dir string
	// TempDir, when set, holds files while Put writes them, so a crash
	// leaves no partial file among the user's results (the owner clears
	// TempDir when it starts). A file goes next to its target when a
	// rename from TempDir is not possible (another file system).
	TempDir string
}

var _ Root = DirRoot{}

// path returns the local path of a root name.
func (d DirRoot) path(name string) string {
	if filepath.IsAbs(name) {
		return filepath.Clean(name)
	}
	return filepath.Join(d.Dir, name)
}

// Open opens the named file for reading.
func (d DirRoot) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return os.Open(d.path(name))
}

// Stat describes the named file, following symlinks.
func (d DirRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return os.Stat(d.path(name))
}

// Put writes r to a temporary file next to name and renames it into place
// when all of r was copied.
func (d DirRoot) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) (err error) {
	full := d.path(name)
	dir := filepath.Dir(full)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmpDir := dir
	if d.TempDir != "" && sameDevice(d.TempDir, dir) {
		tmpDir = d.TempDir
	}
	f, err := os.CreateTemp(tmpDir, tempPrefix+"*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		return err
	}
	if err := f.Chmod(perm.Perm()); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), full); err != nil {
		return fmt.Errorf("put %s: %w", name, errors.Unwrap(err))
	}
	return nil
}

// Glob returns the regular files matching pattern, sorted.
func (d DirRoot) Glob(ctx context.Context, pattern string) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	matches, err := filepath.Glob(d.path(pattern))
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", pattern, err)
	}
	var names []string
	for _, m := range matches {
		if fi, err := os.Stat(m); err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if !filepath.IsAbs(pattern) {
			rel, err := filepath.Rel(filepath.Clean(d.path(".")), m)
			if err != nil {
				return nil, err
			}
			m = rel
		}
		names = append(names, m)
	}
	slices.Sort(names)
	return names, nil
}

// tempPrefix starts the name of a file being written, before its rename.
const tempPrefix = ".orrery-tmp-"

// ctxReader is a reader that stops with the context's error once the
// context is done, so a long copy can be cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// sameDevice reports whether two existing directories are on one file
// system, so a rename between them works.
func sameDevice(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	if err1 != nil || err2 != nil {
		return false
	}
	da, ok1 := sa.Sys().(*syscall.Stat_t)
	db, ok2 := sb.Sys().(*syscall.Stat_t)
	return ok1 && ok2 && da.Dev == db.Dev
}
