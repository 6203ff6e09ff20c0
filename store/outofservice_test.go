package store

import (
	"context"
	"fmt"
	"testing"
)

// TestNodesOutOfService: a node is out of service when its last
// node.joined or node.out event is node.out; joining a later run puts it
// back in service. Other experiments' events do not count.
func TestNodesOutOfService(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	e := &Experiment{PlanPath: "p.pln", PlanText: "task main\nendtask\n", Dialect: "modern", Seed: 1}
	other := &Experiment{PlanPath: "q.pln", PlanText: "task main\nendtask\n", Dialect: "modern", Seed: 2}
	for _, x := range []*Experiment{e, other} {
		if err := s.Create(ctx, x); err != nil {
			t.Fatal(err)
		}
	}
	var b Batch
	b.Event(e.ID, "node.joined", 0, "a", "")
	b.Event(e.ID, "node.joined", 0, "b", "")
	b.Event(e.ID, "node.out", 0, "a", "5 system failures in a row; the last: disk")
	b.Event(e.ID, "node.out", 0, "b", "5 system failures in a row; the last: gone")
	b.Event(e.ID, "node.lost", 0, "b", "missed its heartbeats")
	b.Event(e.ID, "node.joined", 0, "a", "") // a later run
	b.Event(other.ID, "node.out", 0, "c", "elsewhere")
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	got, err := s.NodesOutOfService(ctx, e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Node != "b" || got[0].Reason != "5 system failures in a row; the last: gone" || got[0].Since.IsZero() {
		t.Fatalf("out of service: %s, want b only, with its reason", fmt.Sprint(got))
	}
}
