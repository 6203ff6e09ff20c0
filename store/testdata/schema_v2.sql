-- The store's schema at version 2 (PRAGMA user_version 2), as the builds
-- of that version made a new database; the migration tests start from it.

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
	PRIMARY KEY (experiment, job, n)
) WITHOUT ROWID;
CREATE INDEX attempt_ignored ON attempt(experiment, job) WHERE ignored IS NOT NULL;
CREATE TABLE event (
	id         INTEGER PRIMARY KEY,
	experiment INTEGER NOT NULL,
	at         INTEGER NOT NULL,
	kind       TEXT    NOT NULL,
	job        INTEGER,
	node       TEXT,
	detail     TEXT
);
