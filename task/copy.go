package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"orrery/plan"
)

// srcFile is one file a copy reads.
type srcFile struct {
	name string
	mode fs.FileMode
}

// copy runs `copy SRC DST`: root→node, node→root or node→node. A glob in
// SRC may match several files; then DST must be a directory: written as
// one (".", or ending in "/"), or an existing one. Files are copied, not
// directories; a glob skips the directories it matches.
func (r *runner) copy(ctx context.Context, c *plan.Command) error {
	if r.node == nil {
		return errors.New("copy needs a node: it cannot run in a root task")
	}
	if c.Src.Side == plan.Root && c.Dst.Side == plan.Root {
		return errors.New("copy from root to root: one side must be node:")
	}
	src, dst := c.Src.Path.Expand(r.job.Lookup), c.Dst.Path.Expand(r.job.Lookup)
	files, err := r.sources(ctx, c.Src.Side, src)
	if err != nil {
		return err
	}
	intoDir, err := r.destIsDir(ctx, c.Dst.Side, dst)
	if err != nil {
		return err
	}
	if len(files) > 1 && !intoDir {
		return fmt.Errorf("%d files match %s:%s, so the destination %s:%s must be a directory (end it with /)",
			len(files), c.Src.Side, src, c.Dst.Side, dst)
	}
	for _, f := range files {
		to := dst
		if intoDir {
			to = path.Join(dst, path.Base(f.name))
		}
		if err := r.copyFile(ctx, c.Src.Side, f, c.Dst.Side, to); err != nil {
			return fmt.Errorf("%s:%s to %s:%s: %w", c.Src.Side, f.name, c.Dst.Side, to, err)
		}
	}
	return nil
}

// sources returns the files SRC names: the one file, or a glob's matches.
// A missing file, or a glob that matches no file, is an error.
func (r *runner) sources(ctx context.Context, side plan.Side, name string) ([]srcFile, error) {
	names := []string{name}
	if hasMeta(name) {
		var err error
		if side == plan.Node {
			names, err = r.node.glob(name)
		} else {
			names, err = r.root.Glob(ctx, name)
		}
		if err != nil {
			return nil, err
		}
		if len(names) == 0 {
			return nil, fmt.Errorf("no %s file matches %q", side, name)
		}
	}
	files := make([]srcFile, 0, len(names))
	for _, n := range names {
		fi, err := r.stat(ctx, side, n)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("%s file %q does not exist", side, n)
		case err != nil:
			return nil, err
		case fi.IsDir():
			return nil, fmt.Errorf("%s path %q is a directory: copy copies files", side, n)
		case !fi.Mode().IsRegular():
			return nil, fmt.Errorf("%s path %q is not a regular file", side, n)
		}
		files = append(files, srcFile{n, fi.Mode()})
	}
	return files, nil
}

// destIsDir reports whether DST names a directory: written as one, or
// existing as one.
func (r *runner) destIsDir(ctx context.Context, side plan.Side, name string) (bool, error) {
	if isDirSyntax(name) {
		return true, nil
	}
	fi, err := r.stat(ctx, side, name)
	switch {
	case err == nil:
		return fi.IsDir(), nil
	case errors.Is(err, fs.ErrNotExist):
		return false, nil
	}
	return false, err
}

// stat describes a file on either side.
func (r *runner) stat(ctx context.Context, side plan.Side, name string) (fs.FileInfo, error) {
	if side == plan.Node {
		return r.node.stat(name)
	}
	return r.root.Stat(ctx, name)
}

// copyFile copies one file's bytes, keeping its permission bits.
func (r *runner) copyFile(ctx context.Context, from plan.Side, f srcFile, to plan.Side, dst string) error {
	var rc io.ReadCloser
	var err error
	if from == plan.Node {
		rc, _, err = r.node.open(f.name)
	} else {
		rc, err = r.root.Open(ctx, f.name)
	}
	if err != nil {
		return err
	}
	defer rc.Close()
	in := ctxReader{ctx, rc}
	if to == plan.Node {
		return r.node.put(dst, f.mode, in)
	}
	return r.root.Put(ctx, dst, f.mode, in)
}

// hasMeta reports whether a path has glob metacharacters.
func hasMeta(name string) bool { return strings.ContainsAny(name, `*?[\`) }

// isDirSyntax reports whether a path is written as a directory.
func isDirSyntax(name string) bool {
	return name == "." || name == ".." || strings.HasSuffix(name, "/") ||
		strings.HasSuffix(name, "/.") || strings.HasSuffix(name, "/..")
}
