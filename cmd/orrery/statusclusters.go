package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"orrery/dispatch"
	"orrery/protocol"
	"orrery/store"
)

// clusterRow is one cluster of a grid in `orrery status`: done and
// failed from the store, the rest from the running root's view
// (dispatch.ClustersFile).
type clusterRow struct {
	Name string `json:"name"`
	// Link is connected, cut or lost; lost whenever the view is stale
	// (the root is not running: nothing is linked to it), and SeenLink
	// is then the link as the root last saw it.
	Link      string  `json:"link"`
	SeenLink  string  `json:"seen_link,omitempty"`
	LinkSince *string `json:"link_since"`
	Stale     bool    `json:"stale"`
	Head      string  `json:"head,omitempty"`
	Nodes     int     `json:"nodes"`
	CPUs      int     `json:"cpus"`
	Running   int     `json:"running"`
	Queued    int     `json:"queued"`
	Held      int     `json:"held"`
	Done      int64   `json:"done"`
	Failed    int64   `json:"failed"`
	Rate      float64 `json:"rate"` // jobs per minute
	// Pilots are a Slurm cluster's pilots (each with its Slurm job ID,
	// its state: pending, running, draining or ended, and Slurm's reason
	// for a pending one); an empty list for other clusters. Batch says
	// why it submits no more.
	Pilots []protocol.Pilot `json:"pilots"`
	Batch  string           `json:"batch,omitempty"`
	seen   bool             // the root's view has it
}

// gridStatus is a grid's clusters as `orrery status` shows them.
type gridStatus struct {
	rows []clusterRow
	view *dispatch.ClustersView // the root's view of this experiment; nil when none
	live bool                   // view is the running root's
	now  time.Time
}

// clusterStatus reads the clusters of the experiment: the jobs each
// ended from the store, and what the root sees of them from its view in
// the state directory, when there is one. A view that cannot be read is
// said on warn, and left out.
func clusterStatus(st *store.Store, exp *store.Experiment, now time.Time, warn io.Writer) (gridStatus, error) {
	g := gridStatus{now: now}
	counts, err := st.ClusterCounts(context.Background(), exp.ID)
	if err != nil {
		return g, err
	}
	view, err := dispatch.ReadClustersView(st.Dir())
	switch {
	case errors.Is(err, dispatch.ErrNoClustersView):
	case err != nil:
		fmt.Fprintf(warn, "orrery: warning: %v\n", err)
	case view.Experiment == exp.ID:
		g.view, g.live = view, view.Live(now)
	}
	by := map[string]*clusterRow{}
	row := func(name string) *clusterRow {
		if by[name] == nil {
			by[name] = &clusterRow{Name: name, Link: dispatch.LinkLost, Stale: !g.live}
		}
		return by[name]
	}
	if g.view != nil {
		for _, c := range g.view.Clusters {
			r := row(c.Name)
			r.seen, r.Head, r.Link = true, c.Head, c.Link
			r.Nodes, r.CPUs, r.Running, r.Queued, r.Held = c.Nodes, c.CPUs, c.Running, c.Queued, c.Held
			r.Rate = math.Round(c.Rate*100) / 100
			r.Pilots, r.Batch = c.Pilots, c.Batch
			if !c.LinkSince.IsZero() {
				s := c.LinkSince.Format(time.RFC3339)
				r.LinkSince = &s
			}
			if !g.live {
				r.SeenLink, r.Link = c.Link, dispatch.LinkLost
			}
		}
	}
	for _, c := range counts {
		r := row(c.Cluster)
		r.Done, r.Failed = c.Done, c.Failed
	}
	for _, name := range slices.Sorted(maps.Keys(by)) {
		r := by[name]
		if r.Pilots == nil {
			r.Pilots = []protocol.Pilot{}
		}
		g.rows = append(g.rows, *r)
	}
	return g, nil
}

// addJSON adds the clusters to `status --json`'s object: clusters (an
// empty list outside a grid), clusters_live (whether the running
// root's view is in them) and clusters_seen (when the root wrote that
// view; null when there is none).
func (g gridStatus) addJSON(out map[string]any) {
	out["clusters"] = g.rows
	if g.rows == nil {
		out["clusters"] = []clusterRow{}
	}
	out["clusters_live"] = g.live
	out["clusters_seen"] = nil
	if g.view != nil {
		out["clusters_seen"] = g.view.Written.Format(time.RFC3339Nano)
	}
}

// print writes the clusters' table, nothing outside a grid.
func (g gridStatus) print(w io.Writer) {
	if len(g.rows) == 0 {
		return
	}
	switch {
	case g.view == nil:
		fmt.Fprintln(w, "clusters (no view of the root's: links and nodes unknown):")
	case g.live:
		fmt.Fprintf(w, "clusters (live, as the root saw them %s ago):\n", ago(g.now, g.view.Written))
	case g.view.Finished:
		fmt.Fprintf(w, "clusters (the run has ended; as the root last saw them, %s ago):\n", ago(g.now, g.view.Written))
	default:
		fmt.Fprintf(w, "clusters (stale: the root is not running; as it last saw them, %s ago):\n", ago(g.now, g.view.Written))
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  CLUSTER\tLINK\tNODES\tCPUS\tRUNNING\tQUEUED\tDONE\tFAILED\tJOBS/MIN")
	for _, r := range g.rows {
		link := r.Link
		if r.SeenLink != "" {
			link = r.SeenLink
		}
		live := []string{"-", "-", "-", "-", "-"}
		if r.seen {
			live = []string{strconv.Itoa(r.Nodes), strconv.Itoa(r.CPUs), strconv.Itoa(r.Running), strconv.Itoa(r.Queued),
				strconv.FormatFloat(r.Rate, 'f', 1, 64)}
		} else {
			link = "-"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", r.Name, link, live[0], live[1], live[2], live[3], r.Done, r.Failed, live[4])
	}
	tw.Flush()
	for _, r := range g.rows {
		if len(r.Pilots) == 0 && r.Batch == "" {
			continue
		}
		fmt.Fprintf(w, "pilots of %s:\n", r.Name)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		if len(r.Pilots) > 0 {
			fmt.Fprintln(tw, "  JOBID\tNAME\tSTATE\tREASON")
		}
		for _, p := range r.Pilots {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", p.ID, p.Name, p.State, p.Reason)
		}
		tw.Flush()
		if r.Batch != "" {
			fmt.Fprintf(w, "  %s\n", r.Batch)
		}
	}
}

// ago says how long before now t was, rounded for the eye.
func ago(now, t time.Time) string {
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	default:
		return d.Round(time.Minute).String()
	}
}
