package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// JobState is where a job stands.
type JobState string

// Job states. A job is pending until an attempt starts, running while one
// runs, and done or failed when its last attempt ended. On a cluster
// head, a job the root took back is withdrawn until the root hands it
// out again.
const (
	Pending   JobState = "pending"
	Running   JobState = "running"
	Done      JobState = "done"
	Failed    JobState = "failed"
	Withdrawn JobState = "withdrawn"
)

// Attempt states.
const (
	AttemptRunning     = "running"
	AttemptOK          = "ok"
	AttemptFailed      = "failed"      // the job's own failure
	AttemptLost        = "lost"        // a system failure: node lost, staging failed
	AttemptInterrupted = "interrupted" // the run stopped (crash, Ctrl-C) while it ran
	AttemptCancelled   = "cancelled"   // stopped by the dispatcher: a duplicate won, or to free memory
)

// Job is a job the store knows: one that has been handed out.
type Job struct {
	Index    int64
	Ordinal  int64
	Values   []string
	State    JobState
	Attempts int
	Exit     *int
	Updated  time.Time
}

// Attempt is one try of a job on a node.
type Attempt struct {
	Job     int64
	N       int // 1 for the first attempt
	Node    string
	State   string
	Started time.Time
	Ended   time.Time
	Exit    *int
	Signal  string
	Wall    time.Duration
	CPU     time.Duration
	MaxRSS  int64 // bytes
	Error   string
	Stdout  []byte
	Stderr  []byte
	// Ignored lists the commands whose failure onerror ignore let pass,
	// in the order they ran.
	Ignored []Ignored
	// StagedIn and StagedOut are the bytes the attempt's copies staged
	// from the root to the node and back (GNU Parallel's Send and
	// Receive).
	StagedIn, StagedOut int64
	// StagingIn and StagingOut are how long the attempt's copies took:
	// those before its first other command (staging in) and those after
	// its last (staging out).
	StagingIn, StagingOut time.Duration
	// Cluster is, in a grid, the cluster whose head ran the attempt
	// (Node is then that head as the root knows it), and ClusterNode
	// the node of that cluster that ran it, once the head reported its
	// end; both are empty outside a grid.
	Cluster, ClusterNode string
}

// Ignored is a command that failed under onerror ignore.
type Ignored struct {
	Pos     string `json:"pos"`              // LINE:COL in the plan
	Command string `json:"command"`          // the command in canonical form
	Exit    *int   `json:"exit,omitempty"`   // a process's exit status
	Signal  string `json:"signal,omitempty"` // the signal that killed it
	Error   string `json:"error"`            // what went wrong
}

// ignoredJSON encodes an attempt's ignored errors for the store: NULL
// when there are none.
func ignoredJSON(ig []Ignored) any {
	if len(ig) == 0 {
		return nil
	}
	b, err := json.Marshal(ig)
	if err != nil {
		return nil
	}
	return string(b)
}

// Create records a new experiment and sets e.ID.
func (s *Store) Create(ctx context.Context, e *Experiment) error {
	names, _ := json.Marshal(e.Names)
	if e.Settings == "" {
		e.Settings = "{}"
	}
	if e.Created.IsZero() {
		e.Created = time.Now()
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO experiment
		(plan_path, plan_text, dialect, seed, settings, names, created_at) VALUES (?,?,?,?,?,?,?)`,
		e.PlanPath, e.PlanText, e.Dialect, int64(e.Seed), e.Settings, string(names), nanos(e.Created))
	if err != nil {
		return fmt.Errorf("record experiment: %w", err)
	}
	e.ID, err = res.LastInsertId()
	e.Cursor = -1
	return err
}

// Latest returns the most recent experiment, or ErrNoExperiment.
func (s *Store) Latest(ctx context.Context) (*Experiment, error) {
	var e Experiment
	var seed, created int64
	var names string
	err := s.db.QueryRowContext(ctx, `SELECT id, plan_path, plan_text, dialect, seed, settings, names,
		created_at, cursor, last_index, generated FROM experiment ORDER BY id DESC LIMIT 1`).Scan(
		&e.ID, &e.PlanPath, &e.PlanText, &e.Dialect, &seed, &e.Settings, &names,
		&created, &e.Cursor, &e.LastIndex, &e.Generated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoExperiment
	}
	if err != nil {
		return nil, fmt.Errorf("read experiment: %w", err)
	}
	e.Seed = uint64(seed)
	e.Created = time.Unix(0, created)
	if err := json.Unmarshal([]byte(names), &e.Names); err != nil {
		return nil, fmt.Errorf("read experiment names: %w", err)
	}
	return &e, nil
}

// Recover prepares an experiment to resume after a crash or a stop:
// attempts still marked running become interrupted and their jobs pending.
// It returns how many jobs it put back.
func (s *Store) Recover(ctx context.Context, exp int64) (int, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	now := nanos(time.Now())
	if _, err := tx.ExecContext(ctx, `UPDATE attempt SET state=?, ended_at=?, error=?
		WHERE experiment=? AND state=?`, AttemptInterrupted, now, "the run stopped while this attempt ran",
		exp, AttemptRunning); err != nil {
		return 0, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE job SET state=?, updated_at=? WHERE experiment=? AND state=?`,
		Pending, now, exp, Running)
	if err != nil {
		return 0, err
	}
	n, _ := res.RowsAffected()
	return int(n), tx.Commit()
}

// RerunFailed puts every failed job back to pending and returns how many.
func (s *Store) RerunFailed(ctx context.Context, exp int64) (int, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE job SET state=?, updated_at=? WHERE experiment=? AND state=?`,
		Pending, nanos(time.Now()), exp, Failed)
	if err != nil {
		return 0, fmt.Errorf("rerun failed jobs: %w", err)
	}
	n, _ := res.RowsAffected()
	return int(n), nil
}

// Batch is a set of writes applied in one transaction.
type Batch struct {
	ops []op
}

// op is one statement of a batch.
type op struct {
	query string
	args  []any
}

// Len returns the number of writes in the batch.
func (b *Batch) Len() int { return len(b.ops) }

func (b *Batch) add(query string, args ...any) { b.ops = append(b.ops, op{query, args}) }

// AddJob records a job handed out by the sweep, as pending.
func (b *Batch) AddJob(exp int64, j Job) {
	vals, _ := json.Marshal(j.Values)
	b.add(`INSERT INTO job (experiment, idx, ordinal, vals, state, updated_at) VALUES (?,?,?,?,?,?)`,
		exp, j.Index, j.Ordinal, string(vals), Pending, nanos(time.Now()))
}

// FeedJob records a job a cluster head was handed by its root: a new
// job, or one handed out again (withdrawn, or done here before the root
// learned of it), which is pending again with its values.
func (b *Batch) FeedJob(exp int64, j Job) {
	vals, _ := json.Marshal(j.Values)
	b.add(`INSERT INTO job (experiment, idx, ordinal, vals, state, updated_at) VALUES (?,?,?,?,?,?)
		ON CONFLICT (experiment, idx) DO UPDATE SET vals=excluded.vals, state=excluded.state, updated_at=excluded.updated_at`,
		exp, j.Index, j.Ordinal, string(vals), Pending, nanos(time.Now()))
}

// WithdrawJob records that a cluster head's root took a job back.
func (b *Batch) WithdrawJob(exp, job int64) {
	b.add(`UPDATE job SET state=?, updated_at=? WHERE experiment=? AND idx=?`, Withdrawn, nanos(time.Now()), exp, job)
	b.Event(exp, "job.withdrawn", job, "", "the root took the job back")
}

// Cursor records how far the sweep has been handed out.
func (b *Batch) Cursor(exp, ordinal, lastIndex int64, generated bool) {
	b.add(`UPDATE experiment SET cursor=?, last_index=?, generated=? WHERE id=?`, ordinal, lastIndex, generated, exp)
}

// Start records that attempt n of a job started on node.
func (b *Batch) Start(exp, job int64, n int, node string, at time.Time) {
	b.add(`INSERT OR REPLACE INTO attempt (experiment, job, n, node, state, started_at) VALUES (?,?,?,?,?,?)`,
		exp, job, n, node, AttemptRunning, nanos(at))
	b.add(`UPDATE job SET state=?, attempts=?, updated_at=? WHERE experiment=? AND idx=?`,
		Running, n, nanos(at), exp, job)
}

// InCluster records that attempt n of a job, just started, was handed
// to the head of cluster: one node of the root that stands for its
// cluster.
func (b *Batch) InCluster(exp, job int64, n int, cluster string) {
	b.add(`UPDATE attempt SET cluster=? WHERE experiment=? AND job=? AND n=?`, cluster, exp, job, n)
}

// Finish records how an attempt ended and the job's resulting state
// (Pending when it will be tried again).
func (b *Batch) Finish(exp int64, a Attempt, state JobState) {
	b.EndAttempt(exp, a)
	b.add(`UPDATE job SET state=?, exit_code=?, updated_at=? WHERE experiment=? AND idx=?`,
		state, a.Exit, nanos(a.Ended), exp, a.Job)
}

// EndAttempt records how an attempt ended and leaves its job's state
// alone: another attempt of the job (a duplicate) runs on, or has
// already settled it. An empty Cluster or ClusterNode keeps what the
// attempt has (InCluster's).
func (b *Batch) EndAttempt(exp int64, a Attempt) {
	b.add(`UPDATE attempt SET state=?, ended_at=?, exit_code=?, signal=?, wall_ns=?, cpu_ns=?, max_rss=?,
		error=?, stdout=?, stderr=?, ignored=?, staged_in=?, staged_out=?, staging_in_ns=?, staging_out_ns=?,
		cluster=coalesce(?, cluster), cluster_node=coalesce(?, cluster_node) WHERE experiment=? AND job=? AND n=?`,
		a.State, nanos(a.Ended), a.Exit, a.Signal, int64(a.Wall), int64(a.CPU), a.MaxRSS,
		a.Error, a.Stdout, a.Stderr, ignoredJSON(a.Ignored), max(a.StagedIn, 0), max(a.StagedOut, 0),
		int64(max(a.StagingIn, 0)), int64(max(a.StagingOut, 0)),
		nullIfEmpty(a.Cluster), nullIfEmpty(a.ClusterNode), exp, a.Job, a.N)
}

// nullIfEmpty is s for the store, NULL when it is empty.
func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// FailJob records that a job failed for good without a final attempt of
// its own (its system failures ran out).
func (b *Batch) FailJob(exp, job int64, reason string) {
	b.add(`UPDATE job SET state=?, updated_at=? WHERE experiment=? AND idx=?`, Failed, nanos(time.Now()), exp, job)
	b.Event(exp, "job.failed", job, "", reason)
}

// Event records something that happened, for the log.
func (b *Batch) Event(exp int64, kind string, job int64, node, detail string) {
	b.add(`INSERT INTO event (experiment, at, kind, job, node, detail) VALUES (?,?,?,?,?,?)`,
		exp, nanos(time.Now()), kind, job, node, detail)
}

// prepared returns the statement for query, preparing it once.
func (s *Store) prepared(ctx context.Context, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.stmts[query]; st != nil {
		return st, nil
	}
	st, err := s.db.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmts[query] = st
	return st, nil
}

// Apply writes the batch in one transaction and empties it.
func (s *Store) Apply(ctx context.Context, b *Batch) error {
	if len(b.ops) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	defer tx.Rollback()
	// The transaction carries ctx; its statements run without a context
	// of their own, so the driver starts no watcher goroutine for each,
	// and each prepared statement is bound to the transaction once.
	sctx := context.WithoutCancel(ctx)
	bound := map[string]*sql.Stmt{}
	for _, o := range b.ops {
		stmt := bound[o.query]
		if stmt == nil {
			ps, err := s.prepared(ctx, o.query)
			if err != nil {
				return fmt.Errorf("write state: %w", err)
			}
			stmt = tx.StmtContext(sctx, ps)
			bound[o.query] = stmt
		}
		if _, err := stmt.ExecContext(sctx, o.args...); err != nil {
			return fmt.Errorf("write state: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	b.ops = b.ops[:0]
	return nil
}
