package head

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// StartSpec is what the root hands a head it starts, on the head's
// standard input (never on a command line: it holds the join token).
type StartSpec struct {
	Token string `json:"token"`
	// Root is HOST:PORT, or unix:PATH (the socket the root's SSH
	// connection forwards to its port).
	Root string `json:"root"`
	// Cluster is the cluster's block of the cluster file, as text.
	Cluster string `json:"cluster"`
	// Name is the cluster's name.
	Name   string `json:"name"`
	Lease  string `json:"lease,omitempty"`  // a duration; "" for the default
	Policy string `json:"policy,omitempty"` // "" for orrery
}

// ReadSpec reads a StartSpec (one JSON object, at most 1 MiB).
func ReadSpec(r io.Reader) (StartSpec, error) {
	var s StartSpec
	dec := json.NewDecoder(io.LimitReader(r, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("the head's start spec on standard input: %w", err)
	}
	if s.Token == "" || s.Root == "" || s.Cluster == "" || s.Name == "" {
		return s, errors.New("the head's start spec on standard input: token, root, cluster and name are all needed")
	}
	return s, nil
}

// SetRootAddr records where the root's port is now, for a head that
// already runs in dir (a root started again listens on another port):
// the head reads it before it dials.
func SetRootAddr(dir, addr string) error {
	if err := prepareDir(dir); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "root.tmp")
	if err := os.WriteFile(tmp, []byte(addr+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, "root"))
}

// RootAddr is where the root's port is, as SetRootAddr last recorded it
// in dir, else def.
func RootAddr(dir, def string) string {
	if b, err := os.ReadFile(filepath.Join(dir, "root")); err == nil {
		if a := strings.TrimSpace(string(b)); a != "" {
			return a
		}
	}
	return def
}

// Lock is a head's hold on its directory: one head per directory (per
// experiment and cluster). It is a lock on DIR/lock that the head's
// process holds while it lives, so a head killed with -9 leaves nothing
// that keeps the next one out.
type Lock struct{ f *os.File }

// ErrRunning is TakeLock's error when a head already runs in the
// directory.
var ErrRunning = errors.New("a head already runs in this directory")

// TakeLock takes dir's lock and writes this process's ID and build to
// DIR/pid, or fails with ErrRunning.
func TakeLock(dir string) (*Lock, error) {
	if err := prepareDir(dir); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrRunning
		}
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	if err := checkVersion(dir); err != nil {
		f.Close()
		return nil, err
	}
	build, _ := Build()
	pid := fmt.Sprintf("%d %s\n", os.Getpid(), build)
	if err := os.WriteFile(filepath.Join(dir, "pid"), []byte(pid), 0o600); err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{f: f}, nil
}

// DirVersion is the version of a head directory's formats as a whole:
// the journal, the cache's objects and spool manifests, the files
// beside them. DIR/version holds "orrery-head-dir N"; a head refuses a
// directory of another version before it changes anything there.
const DirVersion = 1

// checkVersion checks dir's version, writing it for a new directory.
func checkVersion(dir string) error {
	path := filepath.Join(dir, "version")
	want := fmt.Sprintf("orrery-head-dir %d", DirVersion)
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return os.WriteFile(path, []byte(want+"\n"), 0o600)
	case err != nil:
		return err
	case strings.TrimSpace(string(b)) != want:
		return fmt.Errorf("head directory %s was written by another Orrery (%q; this build writes %q): stop that head and remove the directory, or use that build", dir, strings.TrimSpace(string(b)), want)
	}
	return nil
}

// Release lets the directory go.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
	}
}

// Build is the SHA-256 of this executable: a head's build.
func Build() (string, error) {
	exe, err := os.Executable()
	if err != nil {
		return "", err
	}
	f, err := os.Open(exe)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Probe is what `orrery head probe` says of a directory.
type Probe struct {
	Running bool   `json:"running"`
	PID     int    `json:"pid"`
	Build   string `json:"build"`
	// Jobs are the root's attempts the head holds whose end the root
	// has not taken yet.
	Jobs int `json:"jobs"`
	// GaveUp is why the head stopped for good (its cluster can have no
	// node: see GaveUpFile), "" when it did not.
	GaveUp string `json:"gave_up,omitempty"`
}

// ProbeDir tells whether a head runs in dir, its process and build, and
// how many of the root's attempts its journal holds.
func ProbeDir(dir string) (Probe, error) {
	var p Probe
	if err := checkDir(dir); err != nil {
		return p, err // its pid file may name any process of ours
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR, 0)
	if err == nil {
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			p.Running = true
		}
		f.Close()
	} else if !errors.Is(err, fs.ErrNotExist) {
		return p, err
	}
	if b, err := os.ReadFile(filepath.Join(dir, "pid")); err == nil && p.Running {
		fields := strings.Fields(string(b))
		if len(fields) >= 1 {
			p.PID, _ = strconv.Atoi(fields[0])
		}
		if len(fields) >= 2 {
			p.Build = fields[1]
		}
	}
	n, err := journalHeld(filepath.Join(dir, "journal"))
	if err != nil {
		return p, err
	}
	p.Jobs = n
	if !p.Running {
		if b, err := os.ReadFile(filepath.Join(dir, GaveUpFile)); err == nil {
			p.GaveUp = strings.TrimSpace(string(b))
		}
	}
	return p, nil
}

// journalHeld counts the attempts a journal holds, without changing it.
func journalHeld(path string) (int, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	j := &journal{path: path, entries: map[int64]*entry{}}
	if err := j.read(f); err != nil {
		return 0, err
	}
	return len(j.entries), nil
}

// Stop sends SIGTERM to the head running in dir and waits up to wait
// for it to let the directory go. It reports whether one was running.
func Stop(dir string, wait time.Duration) (bool, error) {
	p, err := ProbeDir(dir)
	if err != nil || !p.Running {
		return false, err
	}
	if p.PID <= 0 {
		return true, fmt.Errorf("head in %s: no process ID in its pid file", dir)
	}
	if err := syscall.Kill(p.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return true, fmt.Errorf("head in %s (process %d): %w", dir, p.PID, err)
	}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if p, err := ProbeDir(dir); err == nil && !p.Running {
			return true, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true, fmt.Errorf("head in %s (process %d) did not stop within %s", dir, p.PID, wait)
}

// LogTail returns the last lines of the head's log, for an error.
func LogTail(dir string, lines int) string {
	b, err := os.ReadFile(filepath.Join(dir, "head.log"))
	if err != nil {
		return ""
	}
	var all []string
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	for sc.Scan() {
		all = append(all, sc.Text())
	}
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
