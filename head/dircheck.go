package head

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// prepareDir makes a head's directory (mode 0700), after checkDir.
func prepareDir(dir string) error {
	if err := checkDir(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return checkDir(dir)
}

// checkDir refuses a head directory another local user could change (to
// plant DIR/root, DIR/pid, the journal, the key file, or links the head
// writes through): one that is a symbolic link, not a directory or not
// this user's, or below a directory that is neither this user's nor
// root's, or that others may write to without its sticky bit (who can
// rename DIR away and put theirs in its place), as OpenSSH's StrictModes
// does. A directory of this user's that others may use is made 0700. A
// directory that does not exist yet is checked only for what is above
// it.
func checkDir(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("head directory %s: %w", dir, err)
	}
	uid := os.Geteuid()
	fi, err := os.Lstat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("head directory %s: %w", dir, err)
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("head directory %s is a symbolic link; refusing it", dir)
	case !fi.IsDir():
		return fmt.Errorf("head directory %s is not a directory", dir)
	case ownerOf(fi) != uid:
		return fmt.Errorf("head directory %s belongs to user %d, not to this user (%d); refusing it", dir, ownerOf(fi), uid)
	case fi.Mode().Perm()&0o077 != 0:
		if err := os.Chmod(abs, 0o700); err != nil {
			return fmt.Errorf("head directory %s: %w", dir, err)
		}
	}
	// What is above it, as it is (symbolic links resolved), from the
	// deepest directory that exists.
	up := filepath.Dir(abs)
	for {
		real, err := filepath.EvalSymlinks(up)
		if err == nil {
			up = real
			break
		}
		if !errors.Is(err, fs.ErrNotExist) || up == filepath.Dir(up) {
			return fmt.Errorf("head directory %s: %w", dir, err)
		}
		up = filepath.Dir(up)
	}
	for p := up; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("head directory %s: %w", dir, err)
		}
		if o := ownerOf(fi); o != uid && o != 0 {
			return fmt.Errorf("head directory %s is below %s, which belongs to user %d; refusing it", dir, p, o)
		}
		if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			return fmt.Errorf("head directory %s is below %s, which others may write to (mode %v); refusing it", dir, p, fi.Mode().Perm())
		}
		if p == filepath.Dir(p) {
			return nil
		}
	}
}

// ownerOf is the user ID that owns a file (-1 when unknown).
func ownerOf(fi fs.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
