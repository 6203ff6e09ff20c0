package dispatch

import (
	"errors"
	"os"
	"syscall"
)

// probeState tells whether the state directory can still be written,
// after a node reported that the root's side failed one of its copies
// (files arriving on the root are written under incoming/, in the state
// directory first). It returns a *StateError when the directory is gone
// or replaced, or when a small file cannot be written there for want of
// room (ENOSPC, EDQUOT), permission (EACCES, EPERM), a read-only file
// system (EROFS) or the disk (EIO), or the file system has no block left;
// nil when it can be written (the failure was passing: out of
// descriptors, say).
func (r *runState) probeState() error {
	if err := r.checkState(nil); err != nil {
		return err
	}
	err := probeDir(r.d.IncomingDir())
	switch {
	case err == nil:
		return nil
	case diskFull(err):
		return &StateError{Dir: r.state.dir, Problem: StateFull, Err: err}
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EROFS), errors.Is(err, syscall.EIO):
		return &StateError{Dir: r.state.dir, Problem: StateUnwritable, Err: err}
	}
	return nil
}

// probeDir writes, syncs and removes a small file in dir, and checks
// that its file system has room left. Tests replace it.
var probeDir = func(dir string) error {
	var fs syscall.Statfs_t
	if syscall.Statfs(dir, &fs) == nil && fs.Bavail == 0 && fs.Blocks > 0 {
		return &os.PathError{Op: "statfs", Path: dir, Err: syscall.ENOSPC}
	}
	f, err := os.CreateTemp(dir, ".probe-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, 4096))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
