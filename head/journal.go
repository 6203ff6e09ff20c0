package head

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"orrery/internal/atomicfile"
	"orrery/protocol"
)

// journalVersion is the first line of a journal file.
const journalVersion = "orrery-head-journal 1"

// journal is the head's record of the root's attempts it holds: each
// start the root sent (with the job's values), that it left the head's
// queue for a node (so that a head started again still tells the root
// not to take it back), each end it reached, and
// each attempt the root has taken back or whose end it has recorded. It
// is an append-only file of JSON lines, each synced before the head acts
// on it, compacted when opened. The jobs' own states (queued, running,
// attempts on the cluster's nodes) are in the head's store; the journal
// maps them to the root's attempts.
type journal struct {
	path    string
	f       *os.File
	entries map[int64]*entry // by job
}

// entry is one attempt of the root's that the head holds.
type entry struct {
	Job     int64            `json:"job"`
	Attempt int              `json:"attempt"`
	Values  []string         `json:"values,omitempty"`
	Result  *protocol.Result `json:"result,omitempty"` // set once it ended
	started bool             // it left the queue for a node ("started")
}

// record is one line of the journal.
type record struct {
	Op string `json:"op"` // start, started, end, drop
	entry
}

// openJournal reads the journal at path (made when missing) and
// rewrites it with the entries it holds.
func openJournal(path string) (*journal, error) {
	j := &journal{path: path, entries: map[int64]*entry{}}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("journal: %w", err)
	default:
		err := j.read(f)
		f.Close()
		if err != nil {
			return nil, err
		}
	}
	if err := j.compact(); err != nil {
		return nil, err
	}
	return j, nil
}

func (j *journal) read(f *os.File) error {
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			if sc.Text() != journalVersion {
				return fmt.Errorf("journal %s: written by another Orrery (%q); stop that head, or remove its directory", j.path, sc.Text())
			}
			continue
		}
		var r record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			// A line cut short by a crash is the last one: what it
			// said was not acted on.
			break
		}
		j.apply(r)
	}
	return sc.Err()
}

func (j *journal) apply(r record) {
	switch r.Op {
	case "start":
		e := r.entry
		j.entries[r.Job] = &e
	case "started":
		if e := j.entries[r.Job]; e != nil && e.Attempt == r.Attempt {
			e.started = true
		}
	case "end":
		if e := j.entries[r.Job]; e != nil && e.Attempt == r.Attempt {
			e.Result = r.Result
		}
	case "drop":
		if e := j.entries[r.Job]; e != nil && e.Attempt == r.Attempt {
			delete(j.entries, r.Job)
		}
	}
}

// compact rewrites the journal with its entries, atomically.
func (j *journal) compact() error {
	tmp := j.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, journalVersion)
	for _, job := range slices.Sorted(maps.Keys(j.entries)) {
		e := j.entries[job]
		line, _ := json.Marshal(record{Op: "start", entry: entry{Job: e.Job, Attempt: e.Attempt, Values: e.Values}})
		w.Write(append(line, '\n'))
		if e.started {
			line, _ := json.Marshal(record{Op: "started", entry: entry{Job: e.Job, Attempt: e.Attempt}})
			w.Write(append(line, '\n'))
		}
		if e.Result != nil {
			line, _ := json.Marshal(record{Op: "end", entry: entry{Job: e.Job, Attempt: e.Attempt, Result: e.Result}})
			w.Write(append(line, '\n'))
		}
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path)
	}
	if err == nil {
		err = atomicfile.SyncDir(filepath.Dir(j.path))
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("journal: %w", err)
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, err = os.OpenFile(j.path, os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// add appends a record, synced, and applies it.
func (j *journal) add(r record) error {
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if _, err := j.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal %s: %w", j.path, err)
	}
	j.apply(r)
	return nil
}

func (j *journal) close() error {
	if j.f == nil {
		return nil
	}
	return j.f.Close()
}
