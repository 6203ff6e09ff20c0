// Package bigstore makes the state directory of a big experiment
// straight in the store's database, for the tests and benchmarks that
// need a million jobs in seconds rather than a run of them.
package bigstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"time"

	"orrery/store"
)

// Created is when the experiment Make makes was created, and its first
// attempt started; attempt i starts i ms later.
var Created = time.UnixMilli(1_700_000_000_000)

// Wall is the wall time, in ms, of the attempt of job i (from 0).
func Wall(i int64) int64 { return (i*7919)%100_003 + 1 }

// Make makes, in the state directory dir, an experiment of n jobs over
// two parameters, x = i/1000 and y = i%1000 (i from 0): every tenth job
// pending (no attempt), every tenth but one running, the rest done on
// one of 50 nodes (node0 to node49) but those with x in 10..14 and y in
// 20..24, which failed with exit 3. Every job counts as generated. It
// returns the experiment and the number of failed jobs.
func Make(ctx context.Context, dir string, n int64) (*store.Experiment, int64, error) {
	st, err := store.Open(ctx, dir)
	if err != nil {
		return nil, 0, err
	}
	e := &store.Experiment{PlanPath: "big.pln", PlanText: "parameter x\nparameter y\n", Dialect: "modern",
		Names: []string{"x", "y"}, Created: Created}
	err = st.Create(ctx, e)
	st.Close()
	if err != nil {
		return nil, 0, err
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, store.FileName)+"?_pragma=busy_timeout(10000)&_pragma=synchronous(OFF)")
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// The indexes are made again after the rows: one sort each rather
	// than a million random inserts.
	indexes := map[string]string{
		"job_state":       "job(experiment, state)",
		"attempt_started": "attempt(experiment, started_at)",
		"attempt_node":    "attempt(experiment, node, job)",
		"attempt_wall":    "attempt(experiment, wall_ns)",
	}
	for name := range indexes {
		if _, err := db.ExecContext(ctx, "DROP INDEX "+name); err != nil {
			return nil, 0, fmt.Errorf("drop index %s: %w", name, err)
		}
	}
	failed := `(i/1000 BETWEEN 10 AND 14 AND i%1000 BETWEEN 20 AND 24)`
	state := `CASE WHEN i%10=0 THEN 'pending' WHEN i%10=1 THEN 'running' WHEN ` + failed + ` THEN 'failed' ELSE 'done' END`
	for _, q := range []string{
		`INSERT INTO job (experiment, idx, ordinal, vals, state, attempts, exit_code, updated_at)
		SELECT ?1, i+1, i, '["' || (i/1000) || '","' || (i%1000) || '"]', ` + state + `, i%10<>0,
			CASE WHEN i%10<2 THEN NULL WHEN ` + failed + ` THEN 3 ELSE 0 END, 0 FROM c`,
		`INSERT INTO attempt (experiment, job, n, node, state, started_at, ended_at, exit_code, wall_ns)
		SELECT ?1, i+1, 1, 'node' || (i%50), CASE WHEN i%10=1 THEN 'running' WHEN ` + failed + ` THEN 'failed' ELSE 'ok' END,
			?3 + i*1000000, CASE WHEN i%10=1 THEN NULL ELSE ?3 + i*1000000 + ((i*7919)%100003+1)*1000000 END,
			CASE WHEN i%10=1 THEN NULL WHEN ` + failed + ` THEN 3 ELSE 0 END,
			CASE WHEN i%10=1 THEN NULL ELSE ((i*7919)%100003+1)*1000000 END FROM c WHERE i%10<>0`,
	} {
		if _, err := db.ExecContext(ctx, `WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM c WHERE i < ?2-1) `+q,
			e.ID, n, e.Created.UnixNano()); err != nil {
			return nil, 0, fmt.Errorf("fill: %w", err)
		}
	}
	if _, err := db.ExecContext(ctx, `UPDATE experiment SET generated=1, last_index=?, cursor=? WHERE id=?`, n, n-1, e.ID); err != nil {
		return nil, 0, err
	}
	e.Generated, e.LastIndex, e.Cursor = true, n, n-1
	for name, on := range indexes {
		if _, err := db.ExecContext(ctx, "CREATE INDEX "+name+" ON "+on); err != nil {
			return nil, 0, fmt.Errorf("index %s: %w", name, err)
		}
	}
	var nf int64
	if err := db.QueryRowContext(ctx, `SELECT count(*) FROM job WHERE state='failed'`).Scan(&nf); err != nil {
		return nil, 0, err
	}
	return e, nf, nil
}
