package main

import (
	"fmt"
	"io"
	"time"

	"orrery/store"
)

// nodesOutJSON is the nodes out of service as `status --json` shows them.
func nodesOutJSON(nodes []store.NodeOut) []map[string]any {
	out := []map[string]any{}
	for _, n := range nodes {
		out = append(out, map[string]any{"node": n.Node, "since": n.Since.Format(time.RFC3339), "reason": n.Reason})
	}
	return out
}

// printNodesOut prints one line per node out of service, with why.
func printNodesOut(w io.Writer, nodes []store.NodeOut) {
	for _, n := range nodes {
		fmt.Fprintf(w, "node %s out of service since %s: %s\n", n.Node, n.Since.Format(time.TimeOnly), n.Reason)
	}
}
