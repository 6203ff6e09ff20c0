package dispatch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"orrery/store"
)

// StateProblem is what happened to a state directory under a run.
type StateProblem int

// What can happen to a state directory under a run.
const (
	// StateRemoved: the directory, or its database, is no longer there
	// (removed, or the directory replaced by a file).
	StateRemoved StateProblem = iota + 1
	// StateReplaced: the database is another file than the one opened.
	StateReplaced
	// StateFull: the disk that holds it is full.
	StateFull
	// StateUnwritable: a write to it failed otherwise.
	StateUnwritable
)

// StateError is Run's error when the state directory failed under the
// run. Run stopped at once: its running attempts were cancelled and
// nothing more was recorded, so no job was marked failed because of it.
type StateError struct {
	Dir     string
	Problem StateProblem
	Err     error // the error that revealed it, if any
}

func (e *StateError) Error() string {
	switch e.Problem {
	case StateRemoved:
		return fmt.Sprintf("the state directory %s was removed during the run", e.Dir)
	case StateReplaced:
		return fmt.Sprintf("the state database %s was replaced during the run", filepath.Join(e.Dir, store.FileName))
	case StateFull:
		return fmt.Sprintf("the disk that holds the state directory %s is full", e.Dir)
	}
	return fmt.Sprintf("cannot write the state directory %s: %v", e.Dir, e.Err)
}

func (e *StateError) Unwrap() error { return e.Err }

// RootTaskError is Run's error when rootstart or rootfinish failed: the
// plan's own command, like a job's.
type RootTaskError struct {
	Task   string // rootstart or rootfinish
	Detail string // the error, and the failed command's output
}

func (e *RootTaskError) Error() string { return e.Task + " failed: " + e.Detail }

// ErrNoNodes is Run's error when work was left and no node was
// connected for Config.NoNodes.
var ErrNoNodes = errors.New("no node is connected; the jobs left are saved")

// stateWatch is what Run opened of the state directory, to tell when it
// is removed or replaced under it: SQLite would go on writing to a file
// that is no longer there.
type stateWatch struct {
	dir      string
	db       os.FileInfo // the database file
	incoming os.FileInfo // the directory for files arriving on the root
	// doubtSince is when a stat of the state directory first failed
	// with an error other than "not there"; zero while they succeed.
	doubtSince time.Time
}

// stateDoubt is how long the state directory's files may fail to stat,
// other than by being gone, before the run takes them for lost. Gone
// (ENOENT, ENOTDIR) or another file is trusted at once: SQLite would
// write on to a file no one can read.
const stateDoubt = 3 * time.Second

// watchState records the state directory as Run starts using it.
func (r *runState) watchState() error {
	dir := r.d.cfg.Store.Dir()
	db, err := os.Stat(filepath.Join(dir, store.FileName))
	if err != nil {
		return err
	}
	in, err := os.Stat(r.d.IncomingDir())
	if err != nil {
		return err
	}
	r.state = &stateWatch{dir: dir, db: db, incoming: in}
	return nil
}

// checkState returns a *StateError when the state directory is no longer
// the one Run opened, or when cause, a store error, shows it failed (any
// store error does: the state cannot be kept); else nil.
func (r *runState) checkState(cause error) error {
	w := r.state
	if w == nil {
		return cause
	}
	for _, f := range []struct {
		path string
		was  os.FileInfo
	}{{filepath.Join(w.dir, store.FileName), w.db}, {r.d.IncomingDir(), w.incoming}} {
		fi, err := os.Stat(f.path)
		switch {
		case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return &StateError{Dir: w.dir, Problem: StateRemoved, Err: err}
		case err != nil && cause == nil:
			// Another error (EIO, a network file system's time-out)
			// may pass: trusted once it has lasted stateDoubt.
			if w.doubtSince.IsZero() {
				w.doubtSince = r.now()
			}
			if r.now().Sub(w.doubtSince) < stateDoubt {
				return nil
			}
			return &StateError{Dir: w.dir, Problem: StateUnwritable, Err: err}
		case err != nil:
			return &StateError{Dir: w.dir, Problem: StateUnwritable, Err: err}
		case !os.SameFile(fi, f.was):
			if f.was == w.db {
				return &StateError{Dir: w.dir, Problem: StateReplaced}
			}
			return &StateError{Dir: w.dir, Problem: StateRemoved}
		}
	}
	w.doubtSince = time.Time{}
	switch {
	case cause == nil:
		return nil
	case diskFull(cause):
		return &StateError{Dir: w.dir, Problem: StateFull, Err: cause}
	}
	return &StateError{Dir: w.dir, Problem: StateUnwritable, Err: cause}
}

// diskFull reports whether err says the disk is full: SQLITE_FULL, or
// ENOSPC from the file system.
func diskFull(err error) bool {
	var coded interface{ Code() int }
	if errors.As(err, &coded) && coded.Code()&0xff == 13 { // SQLITE_FULL
		return true
	}
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(err.Error(), "database or disk is full")
}

// abandon ends a run whose state directory failed: the nodes are told
// to stop their attempts, and nothing is written to the store.
func (r *runState) abandon(err error) error {
	r.stateErr = err
	for _, nc := range r.nodes {
		r.tell(nc, func(l Node) { l.Shutdown("the root's state directory failed: " + err.Error()) })
	}
	return err
}
