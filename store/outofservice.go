package store

import (
	"context"
	"fmt"
	"time"
)

// NodeOut is a node the dispatcher took out of service (its attempts
// kept failing as system failures), from its node.out event.
type NodeOut struct {
	Node   string
	Since  time.Time
	Reason string // why, with the last failure's error
}

// NodesOutOfService returns the nodes out of service as of the
// experiment's last run: those whose last node.joined or node.out event
// is node.out (a node that joins a later run is in service again), in
// the order they were taken out.
func (s *Store) NodesOutOfService(ctx context.Context, exp int64) ([]NodeOut, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT e.node, e.at, e.detail FROM event e
		WHERE e.experiment=? AND e.kind='node.out' AND NOT EXISTS (SELECT 1 FROM event j
			WHERE j.experiment=e.experiment AND j.node=e.node AND j.kind IN ('node.joined', 'node.out') AND j.id>e.id)
		ORDER BY e.id`, exp)
	if err != nil {
		return nil, fmt.Errorf("read nodes out of service: %w", err)
	}
	defer rows.Close()
	var out []NodeOut
	for rows.Next() {
		var n NodeOut
		var at int64
		if err := rows.Scan(&n.Node, &at, &n.Reason); err != nil {
			return nil, fmt.Errorf("read nodes out of service: %w", err)
		}
		n.Since = time.Unix(0, at)
		out = append(out, n)
	}
	return out, rows.Err()
}
