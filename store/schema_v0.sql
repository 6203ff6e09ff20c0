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
