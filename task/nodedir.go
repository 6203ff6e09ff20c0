package task

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ErrEscape is the error (wrapped with the path and the reason) of a node
// path that would leave the job directory.
var ErrEscape = errors.New("refused: node paths stay inside the job directory")

// nodeDir is the job directory, seen through an os.Root so that no node
// path leaves it.
type nodeDir struct {
	root *os.Root
}

// cleanNode checks a node path lexically and returns it cleaned: relative,
// slash-separated, without "..". Symlinks are checked by os.Root on use.
func cleanNode(name string) (string, error) {
	if name == "" {
		return "", errors.New("empty node path")
	}
	if filepath.IsAbs(name) {
		return "", fmt.Errorf("node path %q is absolute: %w", name, ErrEscape)
	}
	c := path.Clean(filepath.ToSlash(name))
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", fmt.Errorf("node path %q climbs out with \"..\": %w", name, ErrEscape)
	}
	return c, nil
}

// nodeErr turns os.Root's "path escapes from parent" into ErrEscape, and
// drops the system call names from other errors: `node path "x": no such
// file or directory`.
func nodeErr(name string, err error) error {
	inner := err
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e.Error() == "path escapes from parent" {
			return fmt.Errorf("node path %q goes through a symlink that points out of the job directory (or is absolute): %w", name, ErrEscape)
		}
		inner = e
	}
	return fmt.Errorf("node path %q: %w", name, inner)
}

// stat describes a node file, following symlinks inside the job directory.
func (n *nodeDir) stat(name string) (fs.FileInfo, error) {
	c, err := cleanNode(name)
	if err != nil {
		return nil, err
	}
	fi, err := n.root.Stat(c)
	if err != nil {
		return nil, nodeErr(name, err)
	}
	return fi, nil
}

// open opens a regular node file for reading.
func (n *nodeDir) open(name string) (*os.File, fs.FileInfo, error) {
	c, err := cleanNode(name)
	if err != nil {
		return nil, nil, err
	}
	f, err := n.root.Open(c)
	if err != nil {
		return nil, nil, nodeErr(name, err)
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("node path %q is not a regular file", name)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// put writes r to the node file name; see write.
func (n *nodeDir) put(name string, perm fs.FileMode, r io.Reader) error {
	return n.write(name, perm, func(w io.Writer) error {
		_, err := io.Copy(w, r)
		return err
	})
}

// write creates the node file name (and its parent directories) with the
// bytes fill writes, through a temporary file renamed into place, so a
// failed write leaves no partial file and the source may be the same file.
func (n *nodeDir) write(name string, perm fs.FileMode, fill func(io.Writer) error) (err error) {
	c, err := cleanNode(name)
	if err != nil {
		return err
	}
	if err := n.mkdirAll(path.Dir(c)); err != nil {
		return err
	}
	tmp := path.Join(path.Dir(c), tempPrefix+rand.Text())
	f, err := n.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm.Perm())
	if err != nil {
		return nodeErr(name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			n.root.Remove(tmp)
		}
	}()
	if err := fill(f); err != nil {
		return err
	}
	if err := f.Chmod(perm.Perm()); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := n.root.Rename(tmp, c); err != nil {
		return nodeErr(name, err)
	}
	return nil
}

// mkdirAll creates a node directory and its parents.
func (n *nodeDir) mkdirAll(name string) error {
	c, err := cleanNode(name)
	if err != nil {
		return err
	}
	if err := n.root.MkdirAll(c, 0o755); err != nil {
		return nodeErr(name, err)
	}
	return nil
}

// openOutput opens a node file for a redirect: created when missing,
// truncated unless appending, always written at its end so that stdout
// and stderr sent to the same file interleave rather than overwrite.
func (n *nodeDir) openOutput(name string, appendTo bool) (*os.File, error) {
	c, err := cleanNode(name)
	if err != nil {
		return nil, err
	}
	if err := n.mkdirAll(path.Dir(c)); err != nil {
		return nil, err
	}
	flag := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	if !appendTo {
		flag |= os.O_TRUNC
	}
	f, err := n.root.OpenFile(c, flag, 0o644)
	if err != nil {
		return nil, nodeErr(name, err)
	}
	return f, nil
}

// glob returns the regular node files matching pattern, sorted. A match
// that is a symlink pointing out of the job directory is an error, not
// silently skipped.
func (n *nodeDir) glob(pattern string) ([]string, error) {
	c, err := cleanNode(pattern)
	if err != nil {
		return nil, err
	}
	if dir := path.Dir(c); !hasMeta(dir) {
		if _, err := n.root.Stat(dir); err != nil {
			return nil, nodeErr(dir, err) // fs.Glob would hide a symlink that points out
		}
	}
	matches, err := fs.Glob(n.root.FS(), c)
	if err != nil {
		return nil, fmt.Errorf("glob %q: %w", pattern, err)
	}
	var files []string
	for _, m := range matches {
		fi, err := n.root.Stat(m)
		if err != nil {
			return nil, nodeErr(m, err)
		}
		if fi.Mode().IsRegular() {
			files = append(files, m)
		}
	}
	return files, nil
}
