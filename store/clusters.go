package store

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"slices"
)

// ClusterCount is what the store knows of one cluster of a grid: the
// jobs it ended and the attempts it holds.
type ClusterCount struct {
	Cluster string
	// Done is how many done jobs succeeded there (their successful
	// attempt ran there); Failed how many failed jobs failed there
	// (their last failed attempt ran there).
	Done, Failed int64
	// Running is how many attempts recorded as running were handed to
	// its head (running on its nodes or waiting in its queue).
	Running int64
}

// ClusterCounts returns the counts of every cluster that ran an
// attempt of the experiment, by cluster name; none outside a grid.
func (s *Store) ClusterCounts(ctx context.Context, exp int64) ([]ClusterCount, error) {
	by := map[string]*ClusterCount{}
	add := func(query string, field func(*ClusterCount) *int64, args ...any) error {
		rows, err := s.db.QueryContext(ctx, query, args...)
		if err != nil {
			return fmt.Errorf("count jobs by cluster: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var name string
			var n int64
			if err := rows.Scan(&name, &n); err != nil {
				return fmt.Errorf("count jobs by cluster: %w", err)
			}
			c := by[name]
			if c == nil {
				c = &ClusterCount{Cluster: name}
				by[name] = c
			}
			*field(c) = n
		}
		return rows.Err()
	}
	err := add(`SELECT a.cluster, count(DISTINCT a.job) FROM attempt a
		JOIN job j ON j.experiment=a.experiment AND j.idx=a.job
		WHERE a.experiment=? AND a.cluster IS NOT NULL AND a.state=? AND j.state=? GROUP BY a.cluster`,
		func(c *ClusterCount) *int64 { return &c.Done }, exp, AttemptOK, Done)
	if err == nil {
		err = add(`SELECT c, count(*) FROM (SELECT (SELECT a.cluster FROM attempt a
			WHERE a.experiment=j.experiment AND a.job=j.idx AND a.state=? ORDER BY a.n DESC LIMIT 1) AS c
			FROM job j WHERE j.experiment=? AND j.state=?) WHERE c IS NOT NULL GROUP BY c`,
			func(c *ClusterCount) *int64 { return &c.Failed }, AttemptFailed, exp, Failed)
	}
	if err == nil {
		err = add(`SELECT cluster, count(*) FROM attempt WHERE experiment=? AND state=? AND cluster IS NOT NULL GROUP BY cluster`,
			func(c *ClusterCount) *int64 { return &c.Running }, exp, AttemptRunning)
	}
	if err != nil {
		return nil, err
	}
	out := make([]ClusterCount, 0, len(by))
	for _, name := range slices.Sorted(maps.Keys(by)) {
		out = append(out, *by[name])
	}
	return out, nil
}

// Placement is where an attempt ran: its node (in a grid, the cluster's
// head as the root knows it), and in a grid its cluster and the node of
// that cluster that ran it (empty until the head reported its end).
type Placement struct {
	Job                  int64
	N                    int
	State                string
	Node                 string
	Cluster, ClusterNode string
}

// Placements calls fn with where each attempt of the jobs first to last
// (their indexes, both included) ran, in order of job and attempt,
// without the attempts' output.
func (s *Store) Placements(ctx context.Context, exp, first, last int64, fn func(Placement) error) error {
	rows, err := s.db.QueryContext(ctx, `SELECT job, n, state, node, cluster, cluster_node FROM attempt
		WHERE experiment=? AND job BETWEEN ? AND ? ORDER BY job, n`, exp, first, last)
	if err != nil {
		return fmt.Errorf("read attempts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p Placement
		var cluster, node sql.NullString
		if err := rows.Scan(&p.Job, &p.N, &p.State, &p.Node, &cluster, &node); err != nil {
			return fmt.Errorf("read attempts: %w", err)
		}
		p.Cluster, p.ClusterNode = cluster.String, node.String
		if err := fn(p); err != nil {
			return err
		}
	}
	return rows.Err()
}
