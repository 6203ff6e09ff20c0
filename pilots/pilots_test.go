package pilots

import (
	"errors"
	"strings"
	"testing"
	"time"

	"orrery/batch"
)

var t0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// jobs makes a listing of pending and running pilots (and ended ones,
// which count for nothing).
func jobs(pending, running, ended int) []batch.Job {
	var js []batch.Job
	add := func(n int, s batch.State) {
		for range n {
			js = append(js, batch.Job{State: s})
		}
	}
	add(pending, batch.Pending)
	add(running, batch.Running)
	add(ended, batch.Ended)
	return js
}

// TestAsManyAsTheWorkNeeds: none while nothing waits; more as the queue
// grows, up to Max, with at most Backlog waiting in the batch queue.
func TestAsManyAsTheWorkNeeds(t *testing.T) {
	p := New(Config{Max: 8, Backlog: 2})
	for _, c := range []struct {
		name                    string
		pending, running, ended int
		want, submit            int
	}{
		{"nothing waits", 0, 0, 0, 0, 0},
		{"a little work", 0, 0, 0, 1, 1},
		{"much work: the backlog", 0, 0, 0, 20, 2},
		{"two wait already", 2, 0, 0, 20, 0},
		{"one started", 1, 1, 0, 20, 1},
		{"up to Max", 1, 6, 3, 20, 1},
		{"at Max", 2, 6, 0, 20, 0},
		{"fewer wanted than alive", 0, 5, 0, 3, 0},
		{"ended ones count for nothing", 0, 0, 9, 1, 1},
	} {
		if got := p.Decide(t0, jobs(c.pending, c.running, c.ended), c.want); got != c.submit {
			t.Errorf("%s: submit %d, want %d", c.name, got, c.submit)
		}
	}
}

// TestWant: pilots for the jobs waiting and running, none for none, and
// near the end none beyond those alive.
func TestWant(t *testing.T) {
	for _, c := range []struct {
		waiting, running, per, alive int
		ending                       bool
		want                         int
	}{
		{0, 0, 4, 0, false, 0},
		{1, 0, 4, 0, false, 1},
		{9, 0, 4, 0, false, 3},
		{5, 4, 4, 2, false, 3},
		{5, 4, 4, 2, true, 2},
		{3, 0, 4, 0, true, 1}, // near the end with none alive: one, not none
		{0, 0, 4, 0, true, 0},
		{3, 0, 0, 0, false, 3}, // perPilot 0 counts as 1
	} {
		if got := Want(c.waiting, c.running, c.per, c.alive, c.ending); got != c.want {
			t.Errorf("Want(%d, %d, %d, %d, %v) = %d, want %d", c.waiting, c.running, c.per, c.alive, c.ending, got, c.want)
		}
	}
}

// TestBackOffThenGiveUp: a refused submission waits RetryMin, doubling
// to RetryMax, one pilot at a time; a taken one resets it; GiveUpAfter
// refusals in a row stop the pool, in the batch system's words.
func TestBackOffThenGiveUp(t *testing.T) {
	p := New(Config{Max: 4, RetryMin: 10 * time.Second, RetryMax: 25 * time.Second, GiveUpAfter: 4})
	refused := errors.New("sbatch: error: invalid partition specified: nope")
	now := t0
	if n := p.Decide(now, nil, 4); n != 2 {
		t.Fatalf("first: %d, want the backlog of 2", n)
	}
	p.Submitted(now, refused)
	for _, c := range []struct {
		after time.Duration
		want  int
	}{{9 * time.Second, 0}, {10 * time.Second, 1}} {
		if n := p.Decide(now.Add(c.after), nil, 4); n != c.want {
			t.Fatalf("%v after one refusal: %d, want %d", c.after, n, c.want)
		}
	}
	now = now.Add(10 * time.Second)
	p.Submitted(now, refused) // second: 20 s
	if p.Decide(now.Add(19*time.Second), nil, 4) != 0 || p.Decide(now.Add(20*time.Second), nil, 4) != 1 {
		t.Fatal("the second refusal does not wait 20 s")
	}
	now = now.Add(20 * time.Second)
	p.Submitted(now, refused) // third: 40 s, cut to 25
	if p.Decide(now.Add(24*time.Second), nil, 4) != 0 || p.Decide(now.Add(25*time.Second), nil, 4) != 1 {
		t.Fatal("the back-off is not bounded by RetryMax")
	}
	if p.Err() != nil || p.LastRefusal() != refused {
		t.Fatalf("after 3 refusals: Err %v, LastRefusal %v", p.Err(), p.LastRefusal())
	}
	now = now.Add(25 * time.Second)
	p.Submitted(now, refused) // fourth: give up
	if p.Err() == nil || !strings.Contains(p.Err().Error(), "invalid partition specified: nope") || !errors.Is(p.Err(), refused) {
		t.Fatalf("after 4 refusals: %v, want it stopped in sbatch's words", p.Err())
	}
	if n := p.Decide(now.Add(time.Hour), nil, 4); n != 0 {
		t.Fatalf("a pool that gave up submits %d", n)
	}

	q := New(Config{Max: 4})
	q.Submitted(t0, refused)
	q.Submitted(t0.Add(10*time.Second), nil)
	if n := q.Decide(t0.Add(10*time.Second), nil, 4); n != 2 || q.LastRefusal() != nil {
		t.Fatalf("after a taken pilot: %d, last refusal %v; want the backlog again and none", n, q.LastRefusal())
	}
}

// TestNames: a pilot's name carries its experiment and cluster, and
// Mine tells its own from another experiment's or another cluster's,
// even one whose name starts with this one's.
func TestNames(t *testing.T) {
	b, err := Prefix("0123abcd", "b")
	if err != nil {
		t.Fatal(err)
	}
	bp1, _ := Prefix("0123abcd", "b-p1")
	other, _ := Prefix("ffff0000", "b")
	if !Mine(b, Name(b, 7)) || Mine(b, Name(bp1, 7)) || Mine(b, Name(other, 7)) || Mine(b, b) || Mine(b, Name(b, 7)+"x") {
		t.Fatalf("Mine: %q against %q, %q, %q", b, Name(b, 7), Name(bp1, 7), Name(other, 7))
	}
	for _, bad := range [][2]string{{"0123-abc", "b"}, {"xyz12345", "b"}, {"0123abcd", "a b"}, {"0123abcd", ""}, {"0123abcd", "a|b"}} {
		if _, err := Prefix(bad[0], bad[1]); err == nil {
			t.Errorf("Prefix(%q, %q) taken", bad[0], bad[1])
		}
	}
}

// permanent is a refusal that asking again will not change.
type permanent struct{ error }

func (permanent) Permanent() bool { return true }

// TestPermanentRefusal: a refusal that will not change stops the
// submitting at once, in the batch system's words; GiveUp stops it for
// the owner's reason, and the first reason stays.
func TestPermanentRefusal(t *testing.T) {
	t0 := time.Unix(1e9, 0)
	p := New(Config{Max: 4})
	refused := permanent{errors.New("sbatch: error: invalid partition specified: nope")}
	p.Submitted(t0, refused)
	if p.Err() == nil || !strings.Contains(p.Err().Error(), "invalid partition specified: nope") {
		t.Fatalf("after a permanent refusal: %v", p.Err())
	}
	if n := p.Decide(t0.Add(time.Hour), nil, 4); n != 0 {
		t.Fatalf("submits %d after a permanent refusal", n)
	}
	q := New(Config{Max: 4})
	q.GiveUp(errors.New("unreached"))
	q.GiveUp(errors.New("second"))
	if q.Err() == nil || q.Err().Error() != "unreached" || q.Decide(t0, nil, 4) != 0 {
		t.Fatalf("after GiveUp: %v", q.Err())
	}
}
