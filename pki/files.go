package pki

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"orrery/internal/atomicfile"
)

// Modes of the key material.
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// Files in the pki directory.
const (
	caKeyFile      = "ca.key"
	caCertFile     = "ca.crt"
	secretFile     = "join.secret"
	serverKeyFile  = "server.key"
	serverCertFile = "server.crt"
	nodesFile      = "nodes"
	revokedFile    = "revoked"
	lockFile       = "lock"
)

// preparePKIDir creates dir (mode 0700) when missing, refuses it when it
// is a symbolic link, not a directory or not owned by this user, and
// sets the modes of the directory and its regular files to 0700 and
// 0600.
func preparePKIDir(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		fi, err = os.Lstat(dir)
	}
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return fmt.Errorf("%s is a symbolic link; refusing to keep keys behind it", dir)
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s is owned by user %d, not by this user (%d); refusing to use its keys", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode().Perm() != dirMode {
		if err := os.Chmod(dir, dirMode); err != nil {
			return err
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		path := filepath.Join(dir, e.Name())
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			return fmt.Errorf("%s is a symbolic link; refusing it", path)
		case !e.Type().IsRegular():
			return fmt.Errorf("%s is not a regular file", path)
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue // a temporary file renamed away meanwhile
		}
		if err != nil {
			return err
		}
		if info.Mode().Perm() != fileMode {
			if err := os.Chmod(path, fileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

// writeFileAtomic replaces dir/name with data, mode 0600 (see
// atomicfile.Write).
func writeFileAtomic(dir, name string, data []byte) error {
	return atomicfile.Write(dir, name, data, fileMode)
}

// readFile reads dir/name, refusing a symbolic link.
func readFile(dir, name string) ([]byte, error) {
	f, err := os.OpenFile(filepath.Join(dir, name), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", f.Name())
	}
	return io.ReadAll(f)
}

// exists reports whether dir/name exists.
func exists(dir, name string) (bool, error) {
	_, err := os.Lstat(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// lockDir takes the exclusive lock of the pki directory (flock on its
// lock file), which serialises every change to the key material between
// processes and between Authorities of one process. The returned func
// releases it.
func lockDir(dir string) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return nil, fmt.Errorf("lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// stamp identifies one version of a file, so a file another process
// replaced or appended to is read again. Files are replaced by rename,
// which gives them a new inode; size, modification and change times
// catch the rest.
type stamp struct {
	exists       bool
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds since 1970
}

// stampOf returns the stamp of dir/name (exists false when missing).
func stampOf(dir, name string) (stamp, error) {
	fi, err := os.Lstat(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return stamp{}, nil
	}
	if err != nil {
		return stamp{}, err
	}
	s := stamp{exists: true, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.dev, s.ino = uint64(st.Dev), st.Ino
		s.ctime = st.Ctim.Nano()
	}
	return s, nil
}
