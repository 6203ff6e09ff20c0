package head

import (
	"path/filepath"
	"testing"

	"orrery/protocol"
	"orrery/task"
)

// TestJournalKeepsStarted checks that the journal keeps, across a head
// started again (and its compaction), which of the root's attempts left
// the queue for a node, so that the head's registration tells the root
// not to take them back; an attempt handed over again is not started.
func TestJournalKeepsStarted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "journal")
	j, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []record{
		{Op: "start", entry: entry{Job: 1, Attempt: 1, Values: []string{"1"}}},
		{Op: "start", entry: entry{Job: 2, Attempt: 1, Values: []string{"2"}}},
		{Op: "start", entry: entry{Job: 3, Attempt: 1, Values: []string{"3"}}},
		{Op: "started", entry: entry{Job: 1, Attempt: 1}},
		{Op: "started", entry: entry{Job: 3, Attempt: 1}},
		{Op: "end", entry: entry{Job: 3, Attempt: 1, Result: &protocol.Result{OK: true}}},
		{Op: "start", entry: entry{Job: 3, Attempt: 2, Values: []string{"3"}}}, // the root gave it again
		{Op: "started", entry: entry{Job: 2, Attempt: 7}},                      // not the attempt held
	} {
		if err := j.add(r); err != nil {
			t.Fatal(err)
		}
	}
	j.close()
	for round := range 2 { // read as written, then as compacted
		j, err = openJournal(path)
		if err != nil {
			t.Fatal(err)
		}
		for job, want := range map[int64]bool{1: true, 2: false, 3: false} {
			if e := j.entries[job]; e == nil || e.started != want {
				t.Errorf("round %d: job %d: entry %+v, want started %v", round, job, e, want)
			}
		}
		j.close()
	}
}

// TestNodeCannotSayCancelled checks that an end a node of the cluster
// reports cannot pass itself off as the root's cancel (Result.Cancelled,
// which the root never charges to the job): only the head says that.
func TestNodeCannotSayCancelled(t *testing.T) {
	j, err := openJournal(filepath.Join(t.TempDir(), "journal"))
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	h := &Head{j: j, access: map[int64]*task.Access{}}
	if err := j.add(record{Op: "start", entry: entry{Job: 1, Attempt: 1, Values: []string{"1"}}}); err != nil {
		t.Fatal(err)
	}
	h.Ended(1, &protocol.Result{Error: "exit status 1", Cancelled: true})
	if e := j.entries[1]; e == nil || e.Result == nil || e.Result.Cancelled || e.Result.Error != "exit status 1" {
		t.Fatalf("the head journalled %+v", e)
	}
}
