// Package store keeps an experiment's state in SQLite: the experiment
// (plan text, dialect, seed, settings), its jobs (written as they are
// dispatched, never all up front), every attempt of every job, and an
// event log. The database is in WAL mode; the dispatcher writes through
// batches, one transaction each, and readers (status, jobs, log) read
// alongside it.
//
// A crash loses nothing a user would miss: a job is recorded as running
// before it starts, and a finished attempt is recorded before its job is
// counted done. Reopening the store after a crash marks the attempts
// that were running as interrupted so their jobs run again.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "modernc.org/sqlite" // the SQLite driver
)

// FileName is the database's name inside a state directory.
const FileName = "state.db"

// Store is an open state directory.
type Store struct {
	db  *sql.DB
	dir string

	mu    sync.Mutex
	stmts map[string]*sql.Stmt // prepared once, used by every batch
}

const schema = `
CREATE TABLE IF NOT EXISTS experiment (
	id         INTEGER PRIMARY KEY,
	plan_path  TEXT    NOT NULL,
	plan_text  TEXT    NOT NULL,
	dialect    TEXT    NOT NULL,
	seed       INTEGER NOT NULL,
	settings   TEXT    NOT NULL DEFAULT '{}',
	names      TEXT    NOT NULL DEFAULT '[]',
	created_at INTEGER NOT NULL,
	cursor     INTEGER NOT NULL DEFAULT -1,
	last_index INTEGER NOT NULL DEFAULT 0,
	generated  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS job (
	experiment INTEGER NOT NULL REFERENCES experiment(id),
	idx        INTEGER NOT NULL,
	ordinal    INTEGER NOT NULL,
	vals       TEXT    NOT NULL,
	state      TEXT    NOT NULL,
	attempts   INTEGER NOT NULL DEFAULT 0,
	exit_code  INTEGER,
	updated_at INTEGER NOT NULL,
	PRIMARY KEY (experiment, idx)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_state ON job(experiment, state);
CREATE TABLE IF NOT EXISTS attempt (
	experiment INTEGER NOT NULL,
	job        INTEGER NOT NULL,
	n          INTEGER NOT NULL,
	node       TEXT    NOT NULL,
	state      TEXT    NOT NULL,
	started_at INTEGER NOT NULL,
	ended_at   INTEGER,
	exit_code  INTEGER,
	signal     TEXT,
	wall_ns    INTEGER,
	cpu_ns     INTEGER,
	max_rss    INTEGER,
	error      TEXT,
	stdout     BLOB,
	stderr     BLOB,
	PRIMARY KEY (experiment, job, n)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS event (
	id         INTEGER PRIMARY KEY,
	experiment INTEGER NOT NULL,
	at         INTEGER NOT NULL,
	kind       TEXT    NOT NULL,
	job        INTEGER,
	node       TEXT,
	detail     TEXT
);
`

// Open opens (creating when missing) the state directory dir.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	dsn := filepath.Join(dir, FileName) +
		"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	if _, err := db.ExecContext(ctx, schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("open state in %s: %w", dir, err)
	}
	return &Store{db: db, dir: dir, stmts: map[string]*sql.Stmt{}}, nil
}

// Close closes the store.
func (s *Store) Close() error {
	s.mu.Lock()
	for _, st := range s.stmts {
		st.Close()
	}
	s.mu.Unlock()
	return s.db.Close()
}

// Dir returns the state directory.
func (s *Store) Dir() string { return s.dir }

// ErrNoExperiment is returned when the store holds no experiment yet.
var ErrNoExperiment = errors.New("no experiment in this state directory")

// Experiment is one run of a plan.
type Experiment struct {
	ID       int64
	PlanPath string
	PlanText string
	Dialect  string
	Seed     uint64
	Settings string   // JSON
	Names    []string // parameter names, the order of job values
	Created  time.Time
	// Cursor is the ordinal of the last combination handed out, -1 before
	// the first; LastIndex is the number of the last job handed out.
	Cursor    int64
	LastIndex int64
	// Generated is set once every job of the sweep has been handed out.
	Generated bool
}

func nanos(t time.Time) int64 { return t.UnixNano() }
