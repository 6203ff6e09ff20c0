package store

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"
)

// TestAttemptCluster: an attempt handed to a cluster's head keeps its
// cluster through every way it may end, and takes the node that ran it
// from its end; an attempt outside a grid has neither.
func TestAttemptCluster(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	e := &Experiment{PlanPath: "p", PlanText: "t", Dialect: "modern"}
	if err := s.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var b Batch
	for i := int64(1); i <= 4; i++ {
		b.AddJob(e.ID, Job{Index: i, Values: []string{}})
		b.Start(e.ID, i, 1, "h-east", now)
		b.InCluster(e.ID, i, 1, "east")
	}
	b.AddJob(e.ID, Job{Index: 5, Values: []string{}})
	b.Start(e.ID, 5, 1, "local1", now)
	b.Finish(e.ID, Attempt{Job: 1, N: 1, Node: "h-east", State: AttemptOK, Ended: now, Cluster: "east", ClusterNode: "e2"}, Done)
	b.Finish(e.ID, Attempt{Job: 2, N: 1, Node: "h-east", State: AttemptLost, Ended: now, Error: "head lost"}, Pending)
	b.EndAttempt(e.ID, Attempt{Job: 3, N: 1, Node: "h-east", State: AttemptCancelled, Ended: now})
	b.Finish(e.ID, Attempt{Job: 5, N: 1, Node: "local1", State: AttemptOK, Ended: now}, Done)
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.AttemptsOf(ctx, e.ID, 2, 5, func(a Attempt) error {
		got = append(got, fmt.Sprintf("%d %s %s %q %q", a.Job, a.Node, a.State, a.Cluster, a.ClusterNode))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []string{`2 h-east lost "east" ""`, `3 h-east cancelled "east" ""`, `4 h-east running "east" ""`, `5 local1 ok "" ""`}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("AttemptsOf(2, 5):\n%q\nwant\n%q", got, want)
	}
	var places []string
	if err := s.Placements(ctx, e.ID, 1, 3, func(p Placement) error {
		places = append(places, fmt.Sprintf("%d.%d %s %s %s/%s", p.Job, p.N, p.State, p.Node, p.Cluster, p.ClusterNode))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"1.1 ok h-east east/e2", "2.1 lost h-east east/", "3.1 cancelled h-east east/"}; !reflect.DeepEqual(places, want) {
		t.Errorf("Placements(1, 3):\n%q\nwant\n%q", places, want)
	}
	var one []string
	s.Attempts(ctx, e.ID, 1, func(a Attempt) error {
		one = append(one, a.Cluster+"/"+a.ClusterNode)
		return nil
	})
	if !reflect.DeepEqual(one, []string{"east/e2"}) {
		t.Errorf("job 1's attempts: %q, want east/e2", one)
	}
}

// TestClusterCounts counts, per cluster, the done jobs whose success
// ran there (not a duplicate that lost there), the failed jobs whose
// last failure ran there, and the attempts running there; attempts
// outside a grid and lost ones count nowhere.
func TestClusterCounts(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	e := &Experiment{PlanPath: "p", PlanText: "t", Dialect: "modern"}
	if err := s.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var b Batch
	start := func(job int64, n int, cluster string) {
		b.Start(e.ID, job, n, "h-"+cluster, now)
		if cluster != "" {
			b.InCluster(e.ID, job, n, cluster)
		}
	}
	end := func(job int64, n int, cluster, state string, js JobState) {
		a := Attempt{Job: job, N: n, Node: "h-" + cluster, State: state, Ended: now, Cluster: cluster, ClusterNode: "x"}
		if js == "" {
			b.EndAttempt(e.ID, a)
		} else {
			b.Finish(e.ID, a, js)
		}
	}
	for i := int64(1); i <= 8; i++ {
		b.AddJob(e.ID, Job{Index: i, Values: []string{}})
	}
	start(1, 1, "east")
	end(1, 1, "east", AttemptOK, Done)
	start(2, 1, "east") // a straggler duplicated on west, which wins
	start(2, 2, "west")
	end(2, 2, "west", AttemptOK, Done)
	end(2, 1, "east", AttemptCancelled, "")
	start(3, 1, "east") // lost with east, then failed on west
	end(3, 1, "east", AttemptLost, Pending)
	start(3, 2, "west")
	end(3, 2, "west", AttemptFailed, Failed)
	start(4, 1, "west") // running
	start(5, 1, "north")
	start(6, 1, "") // outside a grid
	end(6, 1, "", AttemptOK, Done)
	start(7, 1, "north") // failed on north, then on east
	start(7, 2, "east")
	end(7, 1, "north", AttemptFailed, "")
	end(7, 2, "east", AttemptFailed, Failed)
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	got, err := s.ClusterCounts(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []ClusterCount{{Cluster: "east", Done: 1, Failed: 1}, {Cluster: "north", Running: 1}, {Cluster: "west", Done: 1, Failed: 1, Running: 1}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ClusterCounts:\n%+v\nwant\n%+v", got, want)
	}
	// Another experiment sees none of them.
	e2 := &Experiment{PlanPath: "q", PlanText: "t", Dialect: "modern"}
	if err := s.Create(ctx, e2); err != nil {
		t.Fatal(err)
	}
	if got, err := s.ClusterCounts(ctx, e2.ID); err != nil || len(got) != 0 {
		t.Errorf("ClusterCounts of a new experiment: %+v, %v; want none", got, err)
	}
}
