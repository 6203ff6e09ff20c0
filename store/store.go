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
//
// The schema has a version (SchemaVersion): Open migrates a database of
// an older build in place and refuses, untouched, one of a newer build.
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

	_ "embed" // the version-0 schema

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

// SchemaVersion is the version of the store's schema that this build
// writes, kept in the database's header (PRAGMA user_version). A
// database of an older version is migrated when it is opened; one of a
// newer version is refused. Every change to the schema adds a step to
// migrations and raises SchemaVersion by one.
const SchemaVersion = 3

// schemaV0 is the schema of the builds before the store had a version
// (user_version 0), exactly as they made it.
//
//go:embed schema_v0.sql
var schemaV0 string

// schema is the current schema, for a new database: the version-0
// schema with every migration applied (TestMigratedIsFresh holds the
// two the same).
const schema = `
CREATE TABLE experiment (
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
CREATE TABLE job (
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
CREATE INDEX job_state ON job(experiment, state);
CREATE TABLE attempt (
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
	ignored    TEXT,
	staged_in  INTEGER,
	staged_out INTEGER,
	cluster    TEXT,
	cluster_node TEXT,
	staging_in_ns  INTEGER,
	staging_out_ns INTEGER,
	PRIMARY KEY (experiment, job, n)
) WITHOUT ROWID;
CREATE INDEX attempt_ignored ON attempt(experiment, job) WHERE ignored IS NOT NULL;
CREATE INDEX attempt_started ON attempt(experiment, started_at);
CREATE INDEX attempt_node ON attempt(experiment, node, job);
CREATE INDEX attempt_wall ON attempt(experiment, wall_ns);
CREATE TABLE event (
	id         INTEGER PRIMARY KEY,
	experiment INTEGER NOT NULL,
	at         INTEGER NOT NULL,
	kind       TEXT    NOT NULL,
	job        INTEGER,
	node       TEXT,
	detail     TEXT
);
`

// migrations[v] takes a database of version v to version v+1. Each runs
// in the one transaction that migrates the database (and sets its
// version), so a crash leaves the database as it was.
var migrations = []string{
	// 0 → 1: the commands whose failure onerror ignore let pass (JSON),
	// and the bytes staged to the node and back, per attempt.
	0: `ALTER TABLE attempt ADD COLUMN ignored TEXT;
ALTER TABLE attempt ADD COLUMN staged_in INTEGER;
ALTER TABLE attempt ADD COLUMN staged_out INTEGER;
CREATE INDEX attempt_ignored ON attempt(experiment, job) WHERE ignored IS NOT NULL;`,
	// 1 → 2: in a grid, the cluster whose head ran an attempt, and the
	// node of that cluster that ran it (NULL outside a grid).
	1: `ALTER TABLE attempt ADD COLUMN cluster TEXT;
ALTER TABLE attempt ADD COLUMN cluster_node TEXT;`,
	// 2 → 3: how long an attempt's copies in (before its first other
	// command) and back (after its last) took, and the indexes a
	// viewer's page reads by: attempts by start (the timeline), by node
	// and by wall time (the jobs table's filter and sort).
	2: `ALTER TABLE attempt ADD COLUMN staging_in_ns INTEGER;
ALTER TABLE attempt ADD COLUMN staging_out_ns INTEGER;
CREATE INDEX attempt_started ON attempt(experiment, started_at);
CREATE INDEX attempt_node ON attempt(experiment, node, job);
CREATE INDEX attempt_wall ON attempt(experiment, wall_ns);`,
}

// ErrNewer is the error of Open for a database written by a newer build.
var ErrNewer = errors.New("written by a newer Orrery")

// Open opens (creating when missing) the state directory dir. A
// database of an older version is migrated in place, in one
// transaction; one of a newer version is refused with an error (wrapping
// ErrNewer) that says what to do, and left as it is.
func Open(ctx context.Context, dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	// No journal_mode here: setting it writes to the database, which
	// must wait until its version is known to be one this build reads.
	dsn := filepath.Join(dir, FileName) +
		"?_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open state: %w", err)
	}
	if err := prepare(ctx, db, dir); err != nil {
		db.Close()
		return nil, err
	}
	return &Store{db: db, dir: dir, stmts: map[string]*sql.Stmt{}}, nil
}

// prepare checks the database's version and, unless it is this build's,
// creates or migrates the schema, in one transaction that holds the
// database's write lock, so two processes opening it at once migrate it
// once. A database in WAL mode stays so; a new or migrated one is put
// in WAL mode.
func prepare(ctx context.Context, db *sql.DB, dir string) error {
	fail := func(err error) error { return fmt.Errorf("open state in %s: %w", dir, err) }
	conn, err := db.Conn(ctx)
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	v, fresh, err := version(ctx, conn)
	if err != nil {
		return fail(err)
	}
	if err := newer(dir, v); err != nil {
		return err
	}
	if v == SchemaVersion && !fresh {
		return nil
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA journal_mode=WAL"); err != nil {
		return fail(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fail(err)
	}
	done := false
	defer func() {
		if !done {
			conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
		}
	}()
	// Again under the lock: another process may have got there first.
	if v, fresh, err = version(ctx, conn); err != nil {
		return fail(err)
	}
	if err := newer(dir, v); err != nil {
		return err
	}
	var steps []string
	switch {
	case fresh:
		steps = []string{schema}
	case v < SchemaVersion:
		steps = append([]string{schemaV0}, migrations[v:]...) // v0's tables exist in any older database
	}
	for i, q := range steps {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			return fail(fmt.Errorf("migrate the store from version %d (step %d): %w", v, i, err))
		}
	}
	if _, err := conn.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", SchemaVersion)); err != nil {
		return fail(err)
	}
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fail(err)
	}
	done = true
	return nil
}

// version reads the database's version and whether it is new (no table
// yet).
func version(ctx context.Context, conn *sql.Conn) (v int, fresh bool, err error) {
	if err := conn.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, false, err
	}
	var tables int
	if err := conn.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type='table'").Scan(&tables); err != nil {
		return 0, false, err
	}
	return v, v == 0 && tables == 0, nil
}

// newer refuses a database of a version this build does not know.
func newer(dir string, v int) error {
	if v >= 0 && v <= SchemaVersion {
		return nil
	}
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if v < 0 {
		return fmt.Errorf("state directory %s: its store has version %d, which no Orrery writes: give a new --state-dir", dir, v)
	}
	return fmt.Errorf("state directory %s was %w (store version %d; this build reads up to %d): use that version, or give a new --state-dir",
		dir, ErrNewer, v, SchemaVersion)
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
