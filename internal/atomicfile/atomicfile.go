// Package atomicfile replaces files so that a reader, or a crash, sees
// the old content or the new, never part of one, and syncs the
// directories whose names must last.
package atomicfile

import (
	"io/fs"
	"os"
	"path/filepath"
)

// Write replaces dir/name with data: a temporary file in dir, created
// with mode 0600 and then given perm, written and synced, renamed into
// place; then dir is synced, so the new name lasts a crash.
func Write(dir, name string, data []byte, perm fs.FileMode) error {
	f, err := os.CreateTemp(dir, ".tmp-"+name+"-*") // mode 0600 from creation
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // fails harmlessly after the rename
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	return SyncDir(dir)
}

// SyncDir syncs a directory, so that the names created, renamed or
// removed in it last.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
