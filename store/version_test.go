package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// rawDB opens the state database of dir without the store.
func rawDB(t *testing.T, dir string) *sql.DB {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, FileName)+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	return db
}

// exec runs statements on db, failing the test on an error.
func exec(t *testing.T, db *sql.DB, qs ...string) {
	t.Helper()
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%v in\n%s", err, q)
		}
	}
}

// describe lists a database's schema as SQLite sees it: every table's
// columns (name, type, not null, default, key) and every index's
// columns and condition, and the version.
func describe(t *testing.T, db *sql.DB) string {
	t.Helper()
	var b strings.Builder
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(&b, "version %d\n", v)
	rows, err := db.Query(`SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name`)
	if err != nil {
		t.Fatal(err)
	}
	type obj struct{ typ, name, tbl, sql string }
	var objs []obj
	for rows.Next() {
		var o obj
		var q sql.NullString
		if err := rows.Scan(&o.typ, &o.name, &o.tbl, &q); err != nil {
			t.Fatal(err)
		}
		o.sql = q.String
		objs = append(objs, o)
	}
	rows.Close()
	for _, o := range objs {
		fmt.Fprintf(&b, "%s %s on %s\n", o.typ, o.name, o.tbl)
		switch o.typ {
		case "table":
			fmt.Fprintf(&b, "  without rowid: %v\n", strings.Contains(o.sql, "WITHOUT ROWID"))
			cols, err := db.Query(fmt.Sprintf("PRAGMA table_info(%q)", o.name))
			if err != nil {
				t.Fatal(err)
			}
			for cols.Next() {
				var cid, notnull, pk int
				var name, typ string
				var dflt sql.NullString
				if err := cols.Scan(&cid, &name, &typ, &notnull, &dflt, &pk); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "  %d %s %s notnull=%d default=%v pk=%d\n", cid, name, typ, notnull, dflt, pk)
			}
			cols.Close()
		case "index":
			where := ""
			if i := strings.Index(o.sql, " WHERE "); i >= 0 {
				where = o.sql[i:]
			}
			fmt.Fprintf(&b, "  %s\n", where)
			cols, err := db.Query(fmt.Sprintf("PRAGMA index_info(%q)", o.name))
			if err != nil {
				t.Fatal(err)
			}
			for cols.Next() {
				var seq, cid int
				var name sql.NullString
				if err := cols.Scan(&seq, &cid, &name); err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "  %d %s\n", seq, name.String)
			}
			cols.Close()
		}
	}
	return b.String()
}

// storeSchema opens dir with the store, closes it, and describes the
// database it left.
func storeSchema(t *testing.T, dir string) string {
	t.Helper()
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	db := rawDB(t, dir)
	defer db.Close()
	return describe(t, db)
}

// TestMigratedIsFresh: a database of every older version (version 0,
// as the builds before the store had a version made it, and version 1,
// testdata/schema_v1.sql) migrated by Open has the same schema, index
// for index and column for column, as a new one.
func TestMigratedIsFresh(t *testing.T) {
	fresh := storeSchema(t, filepath.Join(t.TempDir(), "fresh"))
	for v, old := range oldSchemas(t) {
		dir := filepath.Join(t.TempDir(), "old")
		db := rawDB(t, dir)
		exec(t, db, old, fmt.Sprintf("PRAGMA user_version = %d", v))
		db.Close()
		if migrated := storeSchema(t, dir); migrated != fresh {
			t.Errorf("version %d migrated:\n%s\nnew schema:\n%s", v, migrated, fresh)
		}
	}
	for _, want := range []string{fmt.Sprintf("version %d\n", SchemaVersion), " ignored TEXT ", " cluster TEXT ", " cluster_node TEXT ",
		" staging_in_ns INTEGER ", "attempt_started", "attempt_node", "attempt_wall"} {
		if !strings.Contains(fresh, want) {
			t.Errorf("new schema lacks %q:\n%s", want, fresh)
		}
	}
}

// oldSchemas are the schemas of the older versions, by version.
func oldSchemas(t *testing.T) []string {
	t.Helper()
	old := []string{0: schemaV0}
	for v := 1; v < SchemaVersion; v++ {
		b, err := os.ReadFile(filepath.Join("testdata", fmt.Sprintf("schema_v%d.sql", v)))
		if err != nil {
			t.Fatal(err)
		}
		old = append(old, string(b))
	}
	if len(old) != SchemaVersion {
		t.Fatalf("%d old schemas for store version %d: keep each older version's schema in testdata", len(old), SchemaVersion)
	}
	return old
}

// TestOpenMigratesVersion0: a database of the build before the store
// had a version, with a finished job and a job whose attempt was
// running, opens, resumes (the running attempt is interrupted, its job
// pending) and records what this build records.
func TestOpenMigratesVersion0(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".orrery")
	db := rawDB(t, dir)
	exec(t, db, schemaV0,
		`INSERT INTO experiment (plan_path, plan_text, dialect, seed, names, created_at, cursor, last_index)
			VALUES ('/p.pln', 'task main
endtask
', 'modern', 9, '["x"]', 1700000000000000000, 1, 2)`,
		`INSERT INTO job (experiment, idx, ordinal, vals, state, attempts, exit_code, updated_at) VALUES
			(1, 1, 0, '["a"]', 'done', 1, 0, 1700000000000000000),
			(1, 2, 1, '["b"]', 'running', 1, NULL, 1700000000000000000)`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at, ended_at, exit_code, wall_ns, cpu_ns, max_rss, stdout)
			VALUES (1, 1, 1, 'n1', 'ok', 1700000000000000000, 1700000001000000000, 0, 1000000000, 5000000, 1048576, X'6869')`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at) VALUES (1, 2, 1, 'n1', 'running', 1700000000000000000)`,
		`INSERT INTO event (experiment, at, kind, job, node, detail) VALUES (1, 1700000000000000000, 'node.joined', 0, 'n1', '')`)
	db.Close()

	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatalf("open a version-0 store: %v", err)
	}
	defer s.Close()
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("version after open: %d (%v), want %d", v, err, SchemaVersion)
	}
	e, err := s.Latest(ctx)
	if err != nil || e.ID != 1 || e.Seed != 9 || e.Cursor != 1 || e.LastIndex != 2 || e.Names[0] != "x" {
		t.Fatalf("experiment of the old store: %+v, %v", e, err)
	}
	if n, err := s.Recover(ctx, e.ID); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want the running job put back", n, err)
	}
	zero := 0
	var b Batch
	b.Start(e.ID, 2, 2, "n2", time.Now())
	b.Finish(e.ID, Attempt{Job: 2, N: 2, Node: "n2", State: AttemptOK, Ended: time.Now(), Exit: &zero,
		StagedIn: 10, StagedOut: 20, Ignored: []Ignored{{Pos: "3:2", Command: "copy node:x root:x", Error: "no x"}}}, Done)
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.Attempts(ctx, e.ID, 0, func(a Attempt) error {
		got = append(got, fmt.Sprintf("%d.%d %s %s %d/%d %v", a.Job, a.N, a.State, a.Stdout, a.StagedIn, a.StagedOut, a.Ignored))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"1.1 ok hi 0/0 []", "2.1 interrupted  0/0 []", "2.2 ok  10/20 [{3:2 copy node:x root:x <nil>  no x}]"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attempts after the migration:\n%q\nwant\n%q", got, want)
	}
	if counts, _ := s.Counts(ctx, e.ID); counts[Done] != 2 {
		t.Errorf("counts %v, want 2 done", counts)
	}
}

// TestMigrationIsOneTransaction: a migration that fails part way leaves
// the database as it was, at its old version.
func TestMigrationIsOneTransaction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".orrery")
	db := rawDB(t, dir)
	// The migration's third step adds staged_out: make it fail there.
	exec(t, db, schemaV0, `ALTER TABLE attempt ADD COLUMN staged_out INTEGER`)
	before := describe(t, db)
	db.Close()
	if s, err := Open(context.Background(), dir); err == nil {
		s.Close()
		t.Fatal("a migration that cannot apply succeeded")
	}
	db = rawDB(t, dir)
	defer db.Close()
	if after := describe(t, db); after != before {
		t.Errorf("a failed migration changed the database:\n%s\nwas\n%s", after, before)
	}
}

// dirHash describes every file in dir by name and contents.
func dirHash(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "%s %x\n", e.Name(), sha256.Sum256(data))
	}
	return b.String()
}

// TestOpenRefusesNewer: a database of a newer version is refused with
// one line that says what to do, and left as it was.
func TestOpenRefusesNewer(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".orrery")
	s, err := Open(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, v := range []int{SchemaVersion + 1, SchemaVersion + 40, -1} {
		db := rawDB(t, dir)
		exec(t, db, fmt.Sprintf("PRAGMA user_version = %d", v))
		db.Close()
		before := dirHash(t, dir)
		s, err := Open(context.Background(), dir)
		if err == nil {
			s.Close()
			t.Fatalf("a store of version %d opened", v)
		}
		msg := err.Error()
		want := fmt.Sprintf("state directory %s was written by a newer Orrery (store version %d; this build reads up to %d): use that version, or give a new --state-dir",
			dir, v, SchemaVersion)
		if v < 0 {
			if !strings.Contains(msg, "give a new --state-dir") || errors.Is(err, ErrNewer) {
				t.Errorf("open a store of version %d: %q", v, msg)
			}
		} else if msg != want || !errors.Is(err, ErrNewer) {
			t.Errorf("open a store of version %d:\n%q\nwant\n%q", v, msg, want)
		}
		if after := dirHash(t, dir); after != before {
			t.Errorf("refusing version %d changed the state directory:\n%s\nwas\n%s", v, after, before)
		}
	}
}

// TestIgnoredJobs counts the done jobs whose successful attempt had
// ignored errors, not failed jobs nor other attempts.
func TestIgnoredJobs(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	e := &Experiment{PlanPath: "p", PlanText: "t", Dialect: "modern"}
	if err := s.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	ig := []Ignored{{Pos: "1:1", Command: "c", Error: "e"}}
	var b Batch
	for i := int64(1); i <= 5; i++ {
		b.AddJob(e.ID, Job{Index: i, Values: []string{}})
		b.Start(e.ID, i, 1, "n", time.Now())
	}
	b.Finish(e.ID, Attempt{Job: 1, N: 1, State: AttemptOK, Ended: time.Now(), Ignored: ig}, Done)
	b.Finish(e.ID, Attempt{Job: 2, N: 1, State: AttemptOK, Ended: time.Now()}, Done)
	b.Finish(e.ID, Attempt{Job: 3, N: 1, State: AttemptFailed, Ended: time.Now(), Ignored: ig}, Failed)
	b.Finish(e.ID, Attempt{Job: 4, N: 1, State: AttemptOK, Ended: time.Now(), Ignored: ig}, Done)
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	n, first, err := s.IgnoredJobs(ctx, e.ID, 1)
	if err != nil || n != 2 || !reflect.DeepEqual(first, []int64{1}) {
		t.Errorf("IgnoredJobs = %d, %v, %v; want 2, [1]", n, first, err)
	}
}

// TestOpenMigratesVersion1: a database of version 1, with an attempt
// that ended and one that was running, opens at this version: its
// attempts read back with no cluster, and a grid's attempts record
// their cluster and node.
func TestOpenMigratesVersion1(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".orrery")
	db := rawDB(t, dir)
	exec(t, db, oldSchemas(t)[1], "PRAGMA user_version = 1",
		`INSERT INTO experiment (plan_path, plan_text, dialect, seed, names, created_at) VALUES ('/p.pln', 'task main
endtask
', 'modern', 9, '["x"]', 1700000000000000000)`,
		`INSERT INTO job (experiment, idx, ordinal, vals, state, attempts, exit_code, updated_at) VALUES
			(1, 1, 0, '["a"]', 'done', 1, 0, 1700000000000000000),
			(1, 2, 1, '["b"]', 'running', 1, NULL, 1700000000000000000)`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at, ended_at, exit_code, staged_in, staged_out)
			VALUES (1, 1, 1, 'n1', 'ok', 1700000000000000000, 1700000001000000000, 0, 5, 6)`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at) VALUES (1, 2, 1, 'n1', 'running', 1700000000000000000)`)
	db.Close()

	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatalf("open a version-1 store: %v", err)
	}
	defer s.Close()
	var v int
	if err := s.db.QueryRow("PRAGMA user_version").Scan(&v); err != nil || v != SchemaVersion {
		t.Fatalf("version after open: %d (%v), want %d", v, err, SchemaVersion)
	}
	if n, err := s.Recover(ctx, 1); err != nil || n != 1 {
		t.Fatalf("Recover = %d, %v; want the running job put back", n, err)
	}
	zero := 0
	var b Batch
	b.Start(1, 2, 2, "head-east", time.Now())
	b.InCluster(1, 2, 2, "east")
	b.Finish(1, Attempt{Job: 2, N: 2, Node: "head-east", State: AttemptOK, Ended: time.Now(), Exit: &zero,
		Cluster: "east", ClusterNode: "e1"}, Done)
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.Attempts(ctx, 1, 0, func(a Attempt) error {
		got = append(got, fmt.Sprintf("%d.%d %s %s %q %q %d/%d", a.Job, a.N, a.Node, a.State, a.Cluster, a.ClusterNode, a.StagedIn, a.StagedOut))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{`1.1 n1 ok "" "" 5/6`, `2.1 n1 interrupted "" "" 0/0`, `2.2 head-east ok "east" "e1" 0/0`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attempts after the migration:\n%q\nwant\n%q", got, want)
	}
	cc, err := s.ClusterCounts(ctx, 1)
	if err != nil || !reflect.DeepEqual(cc, []ClusterCount{{Cluster: "east", Done: 1}}) {
		t.Errorf("ClusterCounts = %+v, %v; want east with 1 done", cc, err)
	}
}

// TestMigrationFromVersion1IsOneTransaction: a migration from version 1
// that fails part way leaves the database as it was, at version 1.
func TestMigrationFromVersion1IsOneTransaction(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".orrery")
	db := rawDB(t, dir)
	// The migration's second step adds cluster_node: make it fail there.
	exec(t, db, oldSchemas(t)[1], "PRAGMA user_version = 1", `ALTER TABLE attempt ADD COLUMN cluster_node TEXT`)
	before := describe(t, db)
	db.Close()
	if s, err := Open(context.Background(), dir); err == nil {
		s.Close()
		t.Fatal("a migration that cannot apply succeeded")
	}
	db = rawDB(t, dir)
	defer db.Close()
	if after := describe(t, db); after != before || !strings.Contains(after, "version 1\n") {
		t.Errorf("a failed migration changed the database:\n%s\nwas\n%s", after, before)
	}
}

// TestOpenMigratesVersion2: a version-2 store's attempts open with no
// staging times, and an attempt ended after the migration keeps its own.
func TestOpenMigratesVersion2(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), ".orrery")
	db := rawDB(t, dir)
	exec(t, db, oldSchemas(t)[2], "PRAGMA user_version = 2",
		`INSERT INTO experiment (plan_path, plan_text, dialect, seed, names, created_at) VALUES ('/p.pln', 'task main
endtask
', 'modern', 9, '["x"]', 1700000000000000000)`,
		`INSERT INTO job (experiment, idx, ordinal, vals, state, attempts, exit_code, updated_at) VALUES
			(1, 1, 0, '["a"]', 'done', 1, 0, 1700000000000000000),
			(1, 2, 1, '["b"]', 'running', 1, NULL, 1700000000000000000)`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at, ended_at, exit_code, wall_ns)
			VALUES (1, 1, 1, 'n1', 'ok', 1700000000000000000, 1700000001000000000, 0, 1000000000)`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at) VALUES (1, 2, 1, 'n1', 'running', 1700000000000000000)`)
	db.Close()
	s, err := Open(ctx, dir)
	if err != nil {
		t.Fatalf("open a version-2 store: %v", err)
	}
	defer s.Close()
	zero := 0
	var b Batch
	b.Finish(1, Attempt{Job: 2, N: 1, Node: "n1", State: AttemptOK, Ended: time.Now(), Exit: &zero,
		StagingIn: 3 * time.Millisecond, StagingOut: 4 * time.Millisecond}, Done)
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.Attempts(ctx, 1, 0, func(a Attempt) error {
		got = append(got, fmt.Sprintf("%d.%d %s %v/%v", a.Job, a.N, a.State, a.StagingIn, a.StagingOut))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{"1.1 ok 0s/0s", "2.1 ok 3ms/4ms"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("attempts after the migration:\n%q\nwant\n%q", got, want)
	}
}
