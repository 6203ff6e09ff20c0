package main

// End-to-end tests of what the state directory records and how it is
// versioned (issue 13, points 5, 6 and 13's joblog): a state directory
// of an older build resumes, one of a newer build is refused and left
// alone, ignored errors are recorded and shown, and staged bytes reach
// the joblog.

import (
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"orrery/plan"
	"orrery/store"
)

// fmtSnapshot describes every file under dir: its mode, size and a hash
// of its contents.
func fmtSnapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		desc := fmt.Sprintf("%v %d", info.Mode(), info.Size())
		if info.Mode().IsRegular() {
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			desc += " " + hex.EncodeToString(sum[:])
		}
		snap[path] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// fmtSame fails the test when two snapshots differ.
func fmtSame(t *testing.T, what string, before, after map[string]string) {
	t.Helper()
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s changed %s: %q, was %q", what, p, after[p], d)
		}
	}
	for p, d := range after {
		if _, ok := before[p]; !ok {
			t.Errorf("%s made %s (%s)", what, p, d)
		}
	}
}

// fmtUserVersion reads the state database's schema version, or sets it
// when set is not negative.
func fmtUserVersion(t *testing.T, stateDir string, set int) int {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(stateDir, store.FileName))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if set >= 0 {
		if _, err := db.Exec(fmt.Sprintf("PRAGMA user_version = %d", set)); err != nil {
			t.Fatal(err)
		}
	}
	var v int
	if err := db.QueryRow("PRAGMA user_version").Scan(&v); err != nil {
		t.Fatal(err)
	}
	return v
}

// fmtPlan is a sweep of three jobs that copy a result back.
const fmtPlan = `parameter i integer range from 1 to 3
task main
	shexec "echo result $i > r.txt"
	copy node:r.txt root:results/r-$i.txt
endtask
`

// TestE2ETooNewStateDir: `orrery run`, `status`, `jobs`, `log`,
// `joblog` and `token` on a state directory a newer Orrery wrote exit
// with one line that says what to do, and leave the directory as it was.
func TestE2ETooNewStateDir(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "p.pln"), fmtPlan)
	e2eMust(t, dir, "run", "p.pln")
	e2eMust(t, dir, "token", "--state-dir", ".orrery")
	stateDir := filepath.Join(dir, ".orrery")
	fmtUserVersion(t, stateDir, store.SchemaVersion+1)
	before := fmtSnapshot(t, stateDir)
	results := fmtSnapshot(t, filepath.Join(dir, "results"))

	wantStore := fmt.Sprintf("store version %d; this build reads up to %d", store.SchemaVersion+1, store.SchemaVersion)
	for _, args := range [][]string{{"run", "p.pln"}, {"status"}, {"jobs"}, {"log", "1"}, {"joblog"}} {
		code, stdout, stderr := e2eRun(t, dir, e2eCmdTimeout, args...)
		if code == 0 {
			t.Errorf("orrery %s on a too-new state directory: exit 0\nstdout:\n%s", strings.Join(args, " "), stdout)
		}
		msg := strings.TrimSuffix(stderr, "\n")
		if strings.Contains(msg, "\n") || !strings.Contains(msg, "newer Orrery") || !strings.Contains(msg, wantStore) ||
			!strings.Contains(msg, "--state-dir") || !strings.Contains(msg, stateDir) {
			t.Errorf("orrery %s on a too-new state directory: stderr %q, want one line naming %s, %q and --state-dir",
				strings.Join(args, " "), stderr, stateDir, wantStore)
		}
		fmtSame(t, "orrery "+strings.Join(args, " "), before, fmtSnapshot(t, stateDir))
	}
	fmtSame(t, "orrery run", results, fmtSnapshot(t, filepath.Join(dir, "results")))

	// The key material carries its own version.
	fmtUserVersion(t, stateDir, store.SchemaVersion)
	e2eWrite(t, filepath.Join(stateDir, "pki", "version"), "9\n")
	before = fmtSnapshot(t, stateDir)
	code, _, stderr := e2eRun(t, dir, e2eCmdTimeout, "token", "--state-dir", ".orrery")
	if code == 0 || !strings.Contains(stderr, "newer Orrery") || !strings.Contains(stderr, "version 9") ||
		strings.Count(strings.TrimSuffix(stderr, "\n"), "\n") > 0 {
		t.Errorf("orrery token on too-new key material: exit %d, stderr %q; want one line saying a newer Orrery wrote it", code, stderr)
	}
	fmtSame(t, "orrery token", before, fmtSnapshot(t, stateDir))

	// A run that would listen refuses such key material before it opens
	// the store: a changed plan would otherwise have added an experiment.
	e2eWrite(t, filepath.Join(dir, "p2.pln"), strings.Replace(fmtPlan, "result", "outcome", 1))
	code, _, stderr = e2eRun(t, dir, e2eCmdTimeout, "run", "--listen", "127.0.0.1:0", "p2.pln")
	if code != exitSystem || !strings.Contains(stderr, "newer Orrery") || !strings.Contains(stderr, "version 9") {
		t.Errorf("orrery run --listen on too-new key material: exit %d, stderr %q; want %d and a newer Orrery named", code, stderr, exitSystem)
	}
	fmtSame(t, "orrery run --listen", before, fmtSnapshot(t, stateDir))
}

// TestE2EOldStateDirResumes: a state directory of the build before the
// store had a version (its exact schema, with a finished job and a job
// whose attempt was running when that build stopped) resumes: the
// finished job is not run again, the others are, and the store is
// migrated to this build's version.
func TestE2EOldStateDirResumes(t *testing.T) {
	dir := e2eDir(t)
	planPath := filepath.Join(dir, "p.pln")
	e2eWrite(t, planPath, fmtPlan)
	p, err := plan.Parse(planPath, []byte(fmtPlan), plan.Options{})
	if err != nil {
		t.Fatal(err)
	}
	schemaV0, err := os.ReadFile("../../store/schema_v0.sql")
	if err != nil {
		t.Fatal(err)
	}
	stateDir := filepath.Join(dir, ".orrery")
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(stateDir, store.FileName)+"?_pragma=journal_mode(WAL)")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		string(schemaV0),
		fmt.Sprintf(`INSERT INTO experiment (plan_path, plan_text, dialect, seed, names, created_at, cursor, last_index)
			VALUES (%s, %s, %s, 7, '["i"]', 1700000000000000000, 1, 2)`, fmtQuote(planPath), fmtQuote(fmtPlan), fmtQuote(p.Dialect.String())),
		`INSERT INTO job (experiment, idx, ordinal, vals, state, attempts, exit_code, updated_at) VALUES
			(1, 1, 0, '["1"]', 'done', 1, 0, 1700000000000000000),
			(1, 2, 1, '["2"]', 'running', 1, NULL, 1700000000000000000)`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at, ended_at, exit_code, wall_ns, cpu_ns, max_rss, stdout)
			VALUES (1, 1, 1, 'local1', 'ok', 1700000000000000000, 1700000001000000000, 0, 1000000000, 5000000, 1048576, X'6869')`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at) VALUES (1, 2, 1, 'local1', 'running', 1700000000000000000)`,
	} {
		if _, err := db.Exec(q); err != nil {
			db.Close()
			t.Fatalf("%v in\n%s", err, q)
		}
	}
	db.Close()

	code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, "run", "p.pln")
	if code != 0 || !strings.Contains(stderr, "resuming experiment 1") || !strings.Contains(stdout, "3 done, 0 failed") {
		t.Fatalf("run on an old state directory: exit %d, want 0, resuming experiment 1, 3 done\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dir, "results", "r-1.txt")); err == nil {
		t.Errorf("job 1, done in the old state directory, ran again")
	}
	e2eResults(t, filepath.Join(dir, "results"), map[string]string{"r-2.txt": "result 2\n", "r-3.txt": "result 3\n"})
	if v := fmtUserVersion(t, stateDir, -1); v != store.SchemaVersion {
		t.Errorf("store version after the run: %d, want %d", v, store.SchemaVersion)
	}
	_, atts := e2eLog(t, dir, 2)
	if len(atts) != 2 || atts[0].State != store.AttemptInterrupted || atts[1].State != store.AttemptOK {
		t.Errorf("job 2's attempts %+v: want the old one interrupted, a new one ok", atts)
	}
	out, atts := e2eLog(t, dir, 1)
	if len(atts) != 1 || atts[0].State != store.AttemptOK || !strings.Contains(out, "hi") {
		t.Errorf("job 1's log from the old state directory:\n%s", out)
	}
}

// fmtQuote quotes s as an SQL string literal.
func fmtQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// TestE2EIgnoredErrors: under onerror ignore, a command that exits 3
// and a copy of a missing file are recorded with the attempt, shown by
// `orrery log`, and counted by the summary and `orrery status`.
func TestE2EIgnoredErrors(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "ig.pln"), `parameter i integer range from 1 to 3
task main
	onerror ignore
	shexec "echo before; if [ $i -ne 3 ]; then exit 3; fi"
	copy node:missing-$i.txt root:results/missing-$i.txt
	onerror fail
	shexec "echo fine $i > ok.txt"
	copy node:ok.txt root:results/ok-$i.txt
endtask
`)
	code, stdout, stderr := e2eRun(t, dir, e2eRunTimeout, "run", "ig.pln")
	if code != 0 {
		t.Fatalf("run: exit %d, want 0\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "3 done, 0 failed, 3 with ignored errors") {
		t.Errorf("run: summary %q does not say 3 done, 0 failed, 3 with ignored errors", stdout)
	}
	e2eResults(t, filepath.Join(dir, "results"), map[string]string{"ok-1.txt": "fine 1\n", "ok-2.txt": "fine 2\n", "ok-3.txt": "fine 3\n"})

	out, atts := e2eLog(t, dir, 1)
	if len(atts) != 1 || atts[0].State != store.AttemptOK {
		t.Fatalf("log 1: attempts %+v, want one ok\n%s", atts, out)
	}
	for _, want := range []string{
		"ig.pln:4:", `fi": exit 3`, `echo before; if [ ${i} -ne 3 ]; then exit 3; fi`,
		"ig.pln:5:", "node:missing-1.txt", "does not exist",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log 1 does not show %q:\n%s", want, out)
		}
	}
	// Job 3's command succeeded; only its copy failed.
	out, _ = e2eLog(t, dir, 3)
	if strings.Contains(out, `": exit 3`) || !strings.Contains(out, "missing-3.txt") {
		t.Errorf("log 3: want the failed copy of missing-3.txt and no exit 3:\n%s", out)
	}
	st := e2eStatus(t, dir)
	if got := e2eNum(t, st, "ignored_errors"); got != 3 {
		t.Errorf("status --json: ignored_errors = %d, want 3", got)
	}
	text := e2eMust(t, dir, "status")
	if !strings.Contains(text, "3 with ignored errors") {
		t.Errorf("status does not count the jobs with ignored errors:\n%s", text)
	}
}

// TestE2EJoblogStagedBytes: joblog's Send and Receive are the bytes
// staged to the node and back, as GNU Parallel's are.
func TestE2EJoblogStagedBytes(t *testing.T) {
	dir := e2eDir(t)
	e2eWrite(t, filepath.Join(dir, "st.pln"), `parameter i integer range from 1 to 2
task main
	copy root:in.dat node:in.dat
	copy root:small.dat node:small.dat
	shexec "head -c 2345 /dev/zero > out.dat"
	copy node:out.dat root:results/out-$i.dat
endtask
`)
	e2eWrite(t, filepath.Join(dir, "in.dat"), strings.Repeat("x", 300<<10)) // more than one chunk
	e2eWrite(t, filepath.Join(dir, "small.dat"), "12345")
	e2eMust(t, dir, "run", "st.pln")
	lines := e2eJoblog(t, dir)
	if len(lines) != 2 {
		t.Fatalf("joblog: %d lines, want 2: %+v", len(lines), lines)
	}
	for _, l := range lines {
		if l.Send != 300<<10+5 || l.Receive != 2345 {
			t.Errorf("joblog of job %d: Send %d, Receive %d; want %d and 2345", l.Seq, l.Send, l.Receive, 300<<10+5)
		}
	}
}
