package main

import (
	"context"
	"encoding/json"

	"orrery/store"
)

// attemptJSON is where one attempt of a job ran, in `orrery jobs --json`.
type attemptJSON struct {
	Attempt int    `json:"attempt"`
	State   string `json:"state"`
	// Node is the node that ran it: in a grid, the node of its cluster
	// (empty until the cluster's head reported the attempt's end).
	Node string `json:"node"`
	// Cluster is, in a grid, the cluster that ran it, and Head that
	// cluster's head as the root knows it (a node of the root's).
	Cluster string `json:"cluster,omitempty"`
	Head    string `json:"head,omitempty"`
}

// placementJSON is an attempt's place as `jobs --json` says it.
func placementJSON(p store.Placement) attemptJSON {
	if p.Cluster == "" {
		return attemptJSON{Attempt: p.N, State: p.State, Node: p.Node}
	}
	return attemptJSON{Attempt: p.N, State: p.State, Node: p.ClusterNode, Cluster: p.Cluster, Head: p.Node}
}

// host is an attempt's node as joblog and log name it: "CLUSTER/NODE"
// for an attempt that ran in a grid's cluster (only "CLUSTER" while the
// node is not known), else the node.
func host(a store.Attempt) string {
	switch {
	case a.Cluster == "":
		return a.Node
	case a.ClusterNode == "":
		return a.Cluster
	}
	return a.Cluster + "/" + a.ClusterNode
}

// jobsPage is how many jobs `jobs --json` reads at once.
const jobsPage = 256

// writeJobsJSON writes one JSON object per job in state ("": all), with
// where each of its attempts ran, a page of jobs at a time.
func writeJobsJSON(e *env, st *store.Store, exp *store.Experiment, state store.JobState) error {
	ctx := context.Background()
	enc := json.NewEncoder(e.stdout)
	for after := int64(0); ; {
		var page []store.Job
		if err := st.Jobs(ctx, exp.ID, state, after, jobsPage, func(j store.Job) error {
			page = append(page, j)
			return nil
		}); err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		runs := make(map[int64][]attemptJSON, len(page))
		for _, j := range page {
			runs[j.Index] = []attemptJSON{}
		}
		first, last := page[0].Index, page[len(page)-1].Index
		if err := st.Placements(ctx, exp.ID, first, last, func(p store.Placement) error {
			if r, ok := runs[p.Job]; ok {
				runs[p.Job] = append(r, placementJSON(p))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, j := range page {
			vals := map[string]string{}
			for i, n := range exp.Names {
				if i < len(j.Values) {
					vals[n] = j.Values[i]
				}
			}
			out := jobJSON{Index: j.Index, State: string(j.State), Values: vals, Attempts: j.Attempts, Exit: j.Exit, Runs: runs[j.Index]}
			if r := out.Runs; len(r) > 0 {
				out.Cluster, out.Node = r[len(r)-1].Cluster, r[len(r)-1].Node
			}
			if err := enc.Encode(out); err != nil {
				return err
			}
		}
		after = last
	}
}
