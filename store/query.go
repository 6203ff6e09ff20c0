package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Counts returns the number of jobs in each state.
func (s *Store) Counts(ctx context.Context, exp int64) (map[JobState]int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT state, count(*) FROM job WHERE experiment=? GROUP BY state`, exp)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	out := map[JobState]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[JobState(st)] = n
	}
	return out, rows.Err()
}

// Jobs calls fn for each job in index order whose index is above after,
// up to limit jobs (all when limit <= 0), restricted to state when it is
// not empty. Paging with after keeps memory bounded.
func (s *Store) Jobs(ctx context.Context, exp int64, state JobState, after int64, limit int, fn func(Job) error) error {
	q := `SELECT idx, ordinal, vals, state, attempts, exit_code, updated_at FROM job
		WHERE experiment=? AND idx>? AND (?='' OR state=?) ORDER BY idx`
	args := []any{exp, after, string(state), string(state)}
	if limit > 0 {
		q += " LIMIT ?"
		args = append(args, limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("read jobs: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var j Job
		var vals, st string
		var exit sql.NullInt64
		var updated int64
		if err := rows.Scan(&j.Index, &j.Ordinal, &vals, &st, &j.Attempts, &exit, &updated); err != nil {
			return fmt.Errorf("read jobs: %w", err)
		}
		if err := json.Unmarshal([]byte(vals), &j.Values); err != nil {
			return fmt.Errorf("read job %d: %w", j.Index, err)
		}
		j.State, j.Updated = JobState(st), time.Unix(0, updated)
		if exit.Valid {
			e := int(exit.Int64)
			j.Exit = &e
		}
		if err := fn(j); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Attempts calls fn for the attempts of one job (job > 0) or of every job
// (job == 0), in order of job and attempt.
func (s *Store) Attempts(ctx context.Context, exp, job int64, fn func(Attempt) error) error {
	if job > 0 {
		return s.AttemptsOf(ctx, exp, job, job, fn)
	}
	return s.AttemptsOf(ctx, exp, 0, math.MaxInt64, fn)
}

// AttemptsOf calls fn for the attempts of the jobs first to last (their
// indexes, both included), in order of job and attempt: a page of jobs'
// attempts in one query.
func (s *Store) AttemptsOf(ctx context.Context, exp, first, last int64, fn func(Attempt) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT job, n, node, state, started_at, ended_at, exit_code, signal,
		wall_ns, cpu_ns, max_rss, error, stdout, stderr, ignored, staged_in, staged_out, cluster, cluster_node,
		staging_in_ns, staging_out_ns FROM attempt
		WHERE experiment=? AND job BETWEEN ? AND ? ORDER BY job, n`, exp, first, last)
	if err != nil {
		return fmt.Errorf("read attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var a Attempt
		var started int64
		var ended, exit, wall, cpu, rss, in, out, stagingIn, stagingOut sql.NullInt64
		var sig, msg, ignored, cluster, clusterNode sql.NullString
		if err := rows.Scan(&a.Job, &a.N, &a.Node, &a.State, &started, &ended, &exit, &sig,
			&wall, &cpu, &rss, &msg, &a.Stdout, &a.Stderr, &ignored, &in, &out, &cluster, &clusterNode,
			&stagingIn, &stagingOut); err != nil {
			return fmt.Errorf("read attempts: %w", err)
		}
		if ignored.Valid {
			if err := json.Unmarshal([]byte(ignored.String), &a.Ignored); err != nil {
				return fmt.Errorf("read attempt %d of job %d: ignored errors: %w", a.N, a.Job, err)
			}
		}
		a.StagedIn, a.StagedOut = in.Int64, out.Int64
		a.StagingIn, a.StagingOut = time.Duration(stagingIn.Int64), time.Duration(stagingOut.Int64)
		a.Cluster, a.ClusterNode = cluster.String, clusterNode.String
		a.Started = time.Unix(0, started)
		if ended.Valid {
			a.Ended = time.Unix(0, ended.Int64)
		}
		if exit.Valid {
			e := int(exit.Int64)
			a.Exit = &e
		}
		a.Signal, a.Error = sig.String, msg.String
		a.Wall, a.CPU, a.MaxRSS = time.Duration(wall.Int64), time.Duration(cpu.Int64), rss.Int64
		if err := fn(a); err != nil {
			return err
		}
	}
	return rows.Err()
}

// HasEvent reports whether an event of kind was recorded.
func (s *Store) HasEvent(ctx context.Context, exp int64, kind string) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM event WHERE experiment=? AND kind=?`, exp, kind).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("read events: %w", err)
	}
	return n > 0, nil
}

// IgnoredJobs returns how many done jobs ended with errors that onerror
// ignore let pass (their successful attempt has ignored errors), and the
// first limit of them by index.
func (s *Store) IgnoredJobs(ctx context.Context, exp int64, limit int) (int64, []int64, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT a.job FROM attempt a
		JOIN job j ON j.experiment=a.experiment AND j.idx=a.job
		WHERE a.experiment=? AND a.ignored IS NOT NULL AND a.state=? AND j.state=? ORDER BY a.job`,
		exp, AttemptOK, Done)
	if err != nil {
		return 0, nil, fmt.Errorf("read jobs with ignored errors: %w", err)
	}
	defer rows.Close()
	var n int64
	var first []int64
	for rows.Next() {
		var job int64
		if err := rows.Scan(&job); err != nil {
			return 0, nil, fmt.Errorf("read jobs with ignored errors: %w", err)
		}
		if n++; len(first) < limit {
			first = append(first, job)
		}
	}
	return n, first, rows.Err()
}

// AttemptCounts counts an experiment's ended attempts by state. It reads
// no attempt's output (the columns it needs come before it), so it is
// cheap enough to call every few seconds.
func (s *Store) AttemptCounts(ctx context.Context, exp int64) (map[string]int64, error) {
	out := map[string]int64{}
	rows, err := s.db.QueryContext(ctx, `SELECT state, count(*) FROM attempt
		WHERE experiment=? AND ended_at IS NOT NULL GROUP BY state`, exp)
	if err != nil {
		return nil, fmt.Errorf("count attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// Staged sums the bytes an experiment's attempts' copies moved each way.
// It reads every attempt whole, output included: call it once (a run's
// start), and count what follows as it happens.
func (s *Store) Staged(ctx context.Context, exp int64) (in, out int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT coalesce(sum(staged_in), 0), coalesce(sum(staged_out), 0)
		FROM attempt WHERE experiment=?`, exp).Scan(&in, &out)
	if err != nil {
		return 0, 0, fmt.Errorf("staged bytes: %w", err)
	}
	return in, out, nil
}
