package headcache

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"orrery/internal/atomicfile"
	"orrery/task"
)

// SpoolKey names the spool of one root attempt: the job and the
// attempt's number as the root gave them.
type SpoolKey struct {
	Job     int64
	Attempt int
}

// String returns "JOB.ATTEMPT", the name of the spool's directory.
func (k SpoolKey) String() string { return fmt.Sprintf("%d.%d", k.Job, k.Attempt) }

// parseSpoolKey reads a spool directory's name.
func parseSpoolKey(name string) (SpoolKey, bool) {
	j, a, ok := strings.Cut(name, ".")
	if !ok {
		return SpoolKey{}, false
	}
	job, err1 := strconv.ParseInt(j, 10, 64)
	att, err2 := strconv.Atoi(a)
	k := SpoolKey{Job: job, Attempt: att}
	return k, err1 == nil && err2 == nil && job >= 0 && att >= 0 && k.String() == name
}

// Spool holds the results of one root attempt on the head's disk until
// the root has them: files put through its Root are kept, in order, with
// their permission bits, each recorded in a manifest that is synced
// before the Put returns; Flush uploads them and records each one the
// root confirmed, so a flush cut off (link lost, head killed) goes on
// where it stopped, uploading again at most the one file whose
// confirmation was lost. It is safe for concurrent use.
type Spool struct {
	c   *Cache
	key SpoolKey
	dir string

	flushMu sync.Mutex // one Flush (or Remove) at a time

	mu      sync.Mutex
	files   []*spoolFile // in order of Put; files[i].seq == i+1
	next    int          // files before next are confirmed
	manSize int64        // bytes of the manifest's complete records
	broken  error        // a manifest that could not be repaired
	removed bool
}

// spoolFile is one file put.
type spoolFile struct {
	seq  int
	name string
	perm fs.FileMode
	size int64
}

// record is one line of a spool's manifest: a file put (Put is its
// sequence number, from 1) or confirmed by the root (Sent).
type record struct {
	Put  int    `json:"put,omitempty"`
	Name string `json:"name,omitempty"`
	Perm uint32 `json:"perm,omitempty"`
	Size int64  `json:"size,omitempty"`
	Sent int    `json:"sent,omitempty"`
}

const manifestName = "manifest"

// Spool returns the spool of a root attempt, creating it, or taking the
// one a head left on disk before a restart (with what it had put and
// confirmed). Calls for one attempt return the same *Spool until Remove.
func (c *Cache) Spool(job int64, attempt int) (*Spool, error) {
	key := SpoolKey{Job: job, Attempt: attempt}
	if _, ok := parseSpoolKey(key.String()); !ok {
		return nil, fmt.Errorf("spool %s: job and attempt must not be negative", key)
	}
	c.spoolMu.Lock()
	defer c.spoolMu.Unlock()
	if s := c.spools[key]; s != nil {
		return s, nil
	}
	s := &Spool{c: c, key: key, dir: filepath.Join(c.spoolDir(), key.String())}
	if err := s.load(); err != nil {
		return nil, err
	}
	c.spools[key] = s
	return s, nil
}

// Spools lists the spools on disk (those of an earlier run of the head
// included), by job and attempt.
func (c *Cache) Spools() ([]SpoolKey, error) {
	entries, err := os.ReadDir(c.spoolDir())
	if err != nil {
		return nil, fmt.Errorf("head cache %s: %w", c.dir, err)
	}
	var keys []SpoolKey
	for _, e := range entries {
		if k, ok := parseSpoolKey(e.Name()); ok && e.IsDir() {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b SpoolKey) int {
		return cmp.Or(cmp.Compare(a.Job, b.Job), cmp.Compare(a.Attempt, b.Attempt))
	})
	return keys, nil
}

func (s *Spool) manifest() string        { return filepath.Join(s.dir, manifestName) }
func (s *Spool) dataPath(seq int) string { return filepath.Join(s.dir, "f"+strconv.Itoa(seq)) }

// load creates the spool's directory or reads what it holds: the
// manifest (a record cut off by a crash is dropped), and the files not
// yet confirmed; files being written and confirmed files left behind are
// removed.
func (s *Spool) load() error {
	fail := func(err error) error { return fmt.Errorf("spool %s in %s: %w", s.key, s.c.dir, err) }
	if err := os.Mkdir(s.dir, 0o700); err == nil {
		if err := atomicfile.SyncDir(s.c.spoolDir()); err != nil {
			return s.c.diskErr("spool "+s.key.String(), err)
		}
	} else if !errors.Is(err, fs.ErrExist) {
		return s.c.diskErr("spool "+s.key.String(), err)
	}
	data, err := os.ReadFile(s.manifest())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(err)
	}
	if errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(s.manifest(), os.O_WRONLY|os.O_CREATE, 0o600)
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err == nil {
			err = atomicfile.SyncDir(s.dir)
		}
		if err != nil {
			return s.c.diskErr("spool "+s.key.String(), err)
		}
	}
	sent := map[int]bool{}
	for line := 1; len(data) > 0; line++ {
		i := bytes.IndexByte(data, '\n')
		if i < 0 { // cut off by a crash before its sync: never acknowledged
			if err := os.Truncate(s.manifest(), s.manSize); err != nil {
				return fail(err)
			}
			break
		}
		var r record
		if err := json.Unmarshal(data[:i], &r); err != nil {
			return fail(fmt.Errorf("manifest line %d: %v", line, err))
		}
		switch {
		case r.Put == len(s.files)+1 && r.Sent == 0:
			s.files = append(s.files, &spoolFile{seq: r.Put, name: r.Name, perm: fs.FileMode(r.Perm).Perm(), size: r.Size})
		case r.Sent > 0 && r.Sent <= len(s.files) && r.Put == 0:
			sent[r.Sent] = true
		default:
			return fail(fmt.Errorf("manifest line %d: %q is not the next record", line, data[:i]))
		}
		s.manSize += int64(i + 1)
		data = data[i+1:]
	}
	// Confirmations come in order of puts; the first file not confirmed
	// is where Flush goes on.
	for s.next < len(s.files) && sent[s.files[s.next].seq] {
		s.next++
	}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fail(err)
	}
	keep := map[string]bool{manifestName: true}
	for _, f := range s.files[s.next:] {
		keep[filepath.Base(s.dataPath(f.seq))] = true
	}
	for _, e := range entries {
		if !keep[e.Name()] {
			os.RemoveAll(filepath.Join(s.dir, e.Name()))
		}
	}
	for _, f := range s.files[s.next:] {
		if _, err := os.Stat(s.dataPath(f.seq)); err != nil {
			return fail(fmt.Errorf("the content of %s: %w", f.name, err))
		}
	}
	return nil
}

// appendRecord writes r at the end of the manifest and syncs it; on
// error the manifest is cut back to its complete records. s.mu is held.
func (s *Spool) appendRecord(r record) error {
	if s.broken != nil {
		return s.broken
	}
	line, _ := json.Marshal(r)
	line = append(line, '\n')
	f, err := os.OpenFile(s.manifest(), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.Write(line)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		if terr := os.Truncate(s.manifest(), s.manSize); terr != nil {
			s.broken = fmt.Errorf("spool %s: manifest cannot be repaired after %v: %w", s.key, err, terr)
		}
		return err
	}
	s.manSize += int64(len(line))
	return nil
}

// usable returns the error of a spool that can take no more.
func (s *Spool) usable() error {
	switch {
	case s.removed:
		return fmt.Errorf("spool %s was removed", s.key)
	case s.broken != nil:
		return s.broken
	}
	return nil
}

// Key returns the spool's job and attempt.
func (s *Spool) Key() SpoolKey { return s.key }

// Pending returns how many files were put and are not yet confirmed by
// the root.
func (s *Spool) Pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files) - s.next
}

// Root returns the Root of the attempt's tasks on the head's nodes: Open,
// Stat and Glob as the cache's Root over up; Put keeps the file in the
// spool (see Spool), for Flush to upload.
func (s *Spool) Root(up task.Root) task.Root {
	return spoolRoot{cacheRoot: cacheRoot{c: s.c, up: up}, s: s}
}

// spoolRoot is the Root of Spool.Root.
type spoolRoot struct {
	cacheRoot
	s *Spool
}

var _ task.Root = spoolRoot{}

// Put keeps the file in the spool.
func (r spoolRoot) Put(ctx context.Context, name string, perm fs.FileMode, rd io.Reader) error {
	return r.s.put(ctx, name, perm, rd)
}

// put writes rd to a new file of the spool, syncs it and records it in
// the manifest. On error nothing is kept.
func (s *Spool) put(ctx context.Context, name string, perm fs.FileMode, rd io.Reader) (err error) {
	op := "spool " + s.key.String() + " " + name
	s.mu.Lock()
	err = s.usable()
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	tmp, err := os.CreateTemp(s.dir, "tmp-*")
	if err != nil {
		return s.c.diskErr(op, err)
	}
	target := ""
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			if target != "" {
				os.Remove(target)
			}
		}
	}()
	var n atomic.Int64
	in := &countingReader{r: &ctxReader{ctx: ctx, r: rd}, n: &n}
	size, err := io.Copy(tmp, in)
	if err != nil {
		if in.err != nil {
			return fmt.Errorf("put %s: %w", name, err) // the node's side failed
		}
		return s.c.diskErr(op, err)
	}
	if err := tmp.Sync(); err != nil {
		return s.c.diskErr(op, err)
	}
	if err := tmp.Close(); err != nil {
		return s.c.diskErr(op, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usable(); err != nil {
		return fmt.Errorf("put %s: %w", name, err)
	}
	seq := len(s.files) + 1
	target = s.dataPath(seq)
	if err := os.Rename(tmp.Name(), target); err != nil {
		return s.c.diskErr(op, err)
	}
	if err := atomicfile.SyncDir(s.dir); err != nil {
		return s.c.diskErr(op, err)
	}
	if err := s.appendRecord(record{Put: seq, Name: name, Perm: uint32(perm.Perm()), Size: size}); err != nil {
		return s.c.diskErr(op, err)
	}
	s.files = append(s.files, &spoolFile{seq: seq, name: name, perm: perm.Perm(), size: size})
	return nil
}

// Flush uploads to up, in the order they were put, every file not yet
// confirmed, each with its permission bits, and records each one up
// confirmed (then removes its content from the head's disk). It stops at
// the first error; the next Flush goes on from there. Files put while it
// runs are uploaded too.
func (s *Spool) Flush(ctx context.Context, up task.Root) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	for {
		s.mu.Lock()
		if s.removed {
			s.mu.Unlock()
			return fmt.Errorf("flush spool %s: it was removed", s.key)
		}
		if s.next == len(s.files) {
			s.mu.Unlock()
			return nil
		}
		f := s.files[s.next]
		s.mu.Unlock()

		rc, err := os.Open(s.dataPath(f.seq))
		if err != nil {
			return fmt.Errorf("flush %s of spool %s: %w", f.name, s.key, err)
		}
		err = up.Put(ctx, f.name, f.perm, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("flush %s of spool %s to the root: %w", f.name, s.key, err)
		}
		s.mu.Lock()
		err = s.appendRecord(record{Sent: f.seq})
		if err == nil {
			s.next++
		}
		s.mu.Unlock()
		if err != nil {
			return s.c.diskErr("spool "+s.key.String()+" confirm "+f.name, err)
		}
		os.Remove(s.dataPath(f.seq)) // the root has it
	}
}

// Remove deletes the spool from the head's disk (the root has its
// results, or the attempt is given up). It waits for a Flush in
// progress.
func (s *Spool) Remove() error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed {
		return nil
	}
	if err := os.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("remove spool %s: %w", s.key, err)
	}
	atomicfile.SyncDir(s.c.spoolDir())
	s.removed = true
	s.c.spoolMu.Lock()
	if s.c.spools[s.key] == s {
		delete(s.c.spools, s.key)
	}
	s.c.spoolMu.Unlock()
	return nil
}
