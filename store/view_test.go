package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"
)

var viewT0 = time.Unix(1_700_000_000, 0)

// viewStore holds an experiment of 13 jobs over x (i%3) and y (a or b):
//   - 1..10 done, job i's attempt on n1 (odd) or n2 (even), started at
//     t0+10i s and taking i s; job 5 first tried on n3 and cancelled to
//     free memory, job 7 duplicated on n2, the duplicate losing;
//   - 11 failed with exit 3 after 20 s on n1, its stdout 100 bytes;
//   - 12 running on n2 since t0+120 s; 13 pending.
func viewStore(t *testing.T) (*Store, int64) {
	t.Helper()
	ctx := context.Background()
	s := openTemp(t)
	e := &Experiment{PlanPath: "p", PlanText: "t", Dialect: "modern", Names: []string{"x", "y"}}
	if err := s.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	var b Batch
	at := func(sec float64) time.Time { return viewT0.Add(time.Duration(sec * float64(time.Second))) }
	zero, three := 0, 3
	for i := int64(1); i <= 13; i++ {
		b.AddJob(e.ID, Job{Index: i, Ordinal: i - 1, Values: []string{strconv.Itoa(int(i % 3)), string(rune('a' + i%2))}})
	}
	for i := int64(1); i <= 10; i++ {
		node, n := "n"+strconv.Itoa(int(2-i%2)), 1
		start := at(float64(10 * i))
		if i == 5 {
			b.Start(e.ID, i, 1, "n3", at(45))
			b.EndAttempt(e.ID, Attempt{Job: i, N: 1, State: AttemptCancelled, Ended: at(48), Wall: 3 * time.Second,
				Error: "stopped: node n3 had more resident memory than RAM; the job starts again where it fits"})
			n = 2
		}
		b.Start(e.ID, i, n, node, start)
		if i == 7 {
			b.Start(e.ID, i, 2, "n2", at(72))
		}
		b.Finish(e.ID, Attempt{Job: i, N: n, State: AttemptOK, Ended: start.Add(time.Duration(i) * time.Second),
			Wall: time.Duration(i) * time.Second, Exit: &zero}, Done)
		if i == 7 {
			b.EndAttempt(e.ID, Attempt{Job: i, N: 2, State: AttemptCancelled, Ended: at(77), Wall: 5 * time.Second,
				Error: "another attempt of the job ended first"})
		}
	}
	b.Start(e.ID, 11, 1, "n1", at(110))
	b.Finish(e.ID, Attempt{Job: 11, N: 1, State: AttemptFailed, Ended: at(130), Wall: 20 * time.Second, Exit: &three,
		Stdout: bytes.Repeat([]byte("0123456789"), 10), Stderr: []byte("short")}, Failed)
	b.Start(e.ID, 12, 1, "n2", at(120))
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	return s, e.ID
}

func indexes(js []ViewJob) []int64 {
	var out []int64
	for _, j := range js {
		out = append(out, j.Index)
	}
	return out
}

func TestViewJobsPage(t *testing.T) {
	ctx := context.Background()
	s, exp := viewStore(t)
	for _, c := range []struct {
		name   string
		q      ViewJobQuery
		want   []int64
		total  int64
		capped bool
	}{
		{"all", ViewJobQuery{Limit: 100, CountCap: 100}, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13}, 13, false},
		{"page", ViewJobQuery{Offset: 3, Limit: 4, CountCap: 100}, []int64{4, 5, 6, 7}, 13, false},
		{"desc", ViewJobQuery{Desc: true, Limit: 3, CountCap: 100}, []int64{13, 12, 11}, 13, false},
		{"capped", ViewJobQuery{Limit: 2, CountCap: 5}, []int64{1, 2}, 5, true},
		{"failed", ViewJobQuery{State: Failed, Limit: 100, CountCap: 100}, []int64{11}, 1, false},
		{"x=1", ViewJobQuery{Params: []ViewParam{{0, "1"}}, Limit: 100, CountCap: 100}, []int64{1, 4, 7, 10, 13}, 5, false},
		{"x=1,y=a", ViewJobQuery{Params: []ViewParam{{0, "1"}, {1, "a"}}, Limit: 100, CountCap: 100}, []int64{4, 10}, 2, false},
		{"x=9", ViewJobQuery{Params: []ViewParam{{0, "9"}}, Limit: 100, CountCap: 100}, nil, 0, false},
		{"n3", ViewJobQuery{Node: "n3", Limit: 100, CountCap: 100}, []int64{5}, 1, false},
		{"n2 (any attempt)", ViewJobQuery{Node: "n2", Limit: 100, CountCap: 100}, []int64{2, 4, 6, 7, 8, 10, 12}, 7, false},
		{"wall desc", ViewJobQuery{ByWall: true, Desc: true, Limit: 4, CountCap: 100}, []int64{11, 10, 9, 8}, 13, false},
		// Job 7's last attempt is its losing duplicate (5 s).
		{"wall asc", ViewJobQuery{ByWall: true, Limit: 5, CountCap: 100}, []int64{1, 2, 3, 4, 5}, 13, false},
		{"wall asc, untimed after", ViewJobQuery{ByWall: true, Offset: 9, Limit: 10, CountCap: 100}, []int64{10, 11, 12, 13}, 13, false},
		{"wall, past the timed", ViewJobQuery{ByWall: true, Offset: 12, Limit: 10, CountCap: 100}, []int64{13}, 13, false},
		{"wall, beyond", ViewJobQuery{ByWall: true, Offset: 50, Limit: 10, CountCap: 100}, nil, 13, false},
		{"wall desc n1", ViewJobQuery{ByWall: true, Desc: true, Node: "n1", Limit: 3, CountCap: 100}, []int64{11, 9, 7}, 6, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, total, capped, err := s.JobsPage(ctx, exp, c.q)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(indexes(got), c.want) || total != c.total || capped != c.capped {
				t.Fatalf("got %v total %d capped %v; want %v, %d, %v", indexes(got), total, capped, c.want, c.total, c.capped)
			}
		})
	}
	got, _, _, err := s.JobsPage(ctx, exp, ViewJobQuery{Offset: 10, Limit: 3, CountCap: 10})
	if err != nil {
		t.Fatal(err)
	}
	f, r, p := got[0], got[1], got[2]
	if f.State != Failed || *f.Exit != 3 || f.Node != "n1" || *f.Wall != 20*time.Second || f.Values[0] != "2" || f.Values[1] != "b" || f.Attempts != 1 {
		t.Errorf("failed job read as %+v", f)
	}
	if r.State != Running || r.Wall != nil || r.Node != "n2" || r.Exit != nil {
		t.Errorf("running job read as %+v", r)
	}
	if p.State != Pending || p.Wall != nil || p.Node != "" || p.Attempts != 0 {
		t.Errorf("pending job read as %+v", p)
	}
}

func TestViewJobAndLog(t *testing.T) {
	ctx := context.Background()
	s, exp := viewStore(t)
	if _, err := s.Job(ctx, exp, 99); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Job 99: %v, want ErrNotFound", err)
	}
	j, err := s.Job(ctx, exp, 5)
	if err != nil || j.State != Done || j.Attempts != 2 {
		t.Fatalf("Job 5 = %+v, %v", j, err)
	}
	as, err := s.JobAttempts(ctx, exp, 5)
	if err != nil || len(as) != 2 || as[0].Node != "n3" || as[0].State != AttemptCancelled || as[1].Node != "n1" || as[1].Wall != 5*time.Second {
		t.Fatalf("attempts of job 5 = %+v, %v", as, err)
	}
	as, err = s.JobAttempts(ctx, exp, 11)
	if err != nil || len(as) != 1 || as[0].OutBytes != 100 || as[0].ErrBytes != 5 || as[0].Stdout != nil || *as[0].Exit != 3 {
		t.Fatalf("attempts of job 11 = %+v, %v", as, err)
	}
	lg, err := s.Log(ctx, exp, 11, 1, 15)
	if err != nil {
		t.Fatal(err)
	}
	if string(lg.Stdout) != "567890123456789" || string(lg.Stderr) != "short" || lg.OutBytes != 100 || lg.ErrBytes != 5 {
		t.Fatalf("log tail = %q %q %d %d", lg.Stdout, lg.Stderr, lg.OutBytes, lg.ErrBytes)
	}
	if _, err := s.Log(ctx, exp, 11, 2, 15); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Log of a missing attempt: %v, want ErrNotFound", err)
	}
	lg, err = s.Log(ctx, exp, 12, 1, 15)
	if err != nil || len(lg.Stdout) != 0 || lg.OutBytes != 0 {
		t.Fatalf("log of a running attempt = %+v, %v", lg, err)
	}
}

func TestViewTimeline(t *testing.T) {
	ctx := context.Background()
	s, exp := viewStore(t)
	at := func(sec int) time.Time { return viewT0.Add(time.Duration(sec) * time.Second) }
	tl, err := s.Timeline(ctx, exp, at(44), at(75), 100, 100)
	if err != nil {
		t.Fatal(err)
	}
	type key struct {
		job int64
		n   int
	}
	var got []key
	for _, iv := range tl.Attempts {
		got = append(got, key{iv.Job, iv.N})
	}
	// Started before 75 s and not ended by 44 s: job 4 ends at 44 (out),
	// 5/1 (45–48), 5/2 (50–55), 6, 7/1 (70–77), 7/2 (72–77); newest first.
	want := []key{{7, 2}, {7, 1}, {6, 1}, {5, 2}, {5, 1}}
	if !slices.Equal(got, want) || tl.Total != 5 || tl.Capped || !slices.Equal(tl.Nodes, []string{"n1", "n2", "n3"}) {
		t.Fatalf("window: %v total %d capped %v nodes %v; want %v", got, tl.Total, tl.Capped, tl.Nodes, want)
	}
	for _, iv := range tl.Attempts {
		dup := iv.Job == 7
		if iv.Duplicate != dup {
			t.Errorf("job %d attempt %d: duplicate %v", iv.Job, iv.N, iv.Duplicate)
		}
		kind := map[key]string{{7, 2}: KindLostRace, {5, 1}: KindMoved}[key{iv.Job, iv.N}]
		if iv.Kind != kind {
			t.Errorf("job %d attempt %d: kind %q, want %q", iv.Job, iv.N, iv.Kind, kind)
		}
	}
	// A running attempt is in every later window; the limit keeps the
	// latest started.
	tl, err = s.Timeline(ctx, exp, at(500), at(600), 10, 100)
	if err != nil || len(tl.Attempts) != 1 || tl.Attempts[0].Job != 12 || !tl.Attempts[0].Ended.IsZero() {
		t.Fatalf("late window: %+v, %v", tl, err)
	}
	tl, err = s.Timeline(ctx, exp, at(0), at(1000), 2, 3)
	if err != nil || len(tl.Attempts) != 2 || tl.Attempts[0].Job != 12 || tl.Attempts[1].Job != 11 || tl.Total != 3 || !tl.Capped {
		t.Fatalf("limited window: %+v, %v", tl, err)
	}
}

func TestViewSpace(t *testing.T) {
	ctx := context.Background()
	s, exp := viewStore(t)
	sp, err := s.Space(ctx, exp, 0, 1, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(sp.X.Labels, []string{"0", "1", "2"}) || !sp.X.Numeric || sp.X.Binned ||
		!slices.Equal(sp.Y.Labels, []string{"a", "b"}) || sp.Y.Numeric || sp.Jobs != 13 || len(sp.Cells) != 6 {
		t.Fatalf("space: %+v", sp)
	}
	// x=2, y=b: jobs 5 (done, last attempt 5 s), 11 (failed, exit 3, 20 s).
	c := sp.Cells[5]
	if c.I != 2 || c.J != 1 || c.N != 2 || c.Done != 1 || c.Failed != 1 || c.Walls != 2 || c.WallSum != 25*time.Second ||
		c.WallMax != 20*time.Second || c.NonZero != 1 || c.TopExit == nil || *c.TopExit != 3 {
		t.Fatalf("cell x=2 y=b: %+v", c)
	}
	// x=0, y=a: jobs 6 (done, 6 s), 12 (running).
	c = sp.Cells[0]
	if c.I != 0 || c.J != 0 || c.N != 2 || c.Running != 1 || c.Walls != 1 || c.WallMax != 6*time.Second || c.TopExit != nil {
		t.Fatalf("cell x=0 y=a: %+v", c)
	}
}

func TestViewSpaceBinned(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	e := &Experiment{PlanPath: "p", PlanText: "t", Dialect: "modern", Names: []string{"n", "f", "w"}}
	if err := s.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	var b Batch
	for i := int64(0); i < 100; i++ {
		b.AddJob(e.ID, Job{Index: i + 1, Ordinal: i, Values: []string{
			strconv.Itoa(int(i)), strconv.FormatFloat(float64(i)/8, 'g', -1, 64), "w" + strconv.Itoa(int(i))}})
	}
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	sp, err := s.Space(ctx, e.ID, 0, 2, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !sp.X.Binned || !sp.X.Numeric || len(sp.X.Labels) != 10 || sp.X.Labels[0] != "0–9" || sp.X.Labels[9] != "90–99" {
		t.Fatalf("integer axis: %+v", sp.X)
	}
	// w0, w1, w10..w17 | w18, w19, w2, w20..w26 | ...: byte order.
	if !sp.Y.Binned || sp.Y.Numeric || len(sp.Y.Labels) != 10 || sp.Y.Labels[0] != "w0–w17" || sp.Y.Labels[1] != "w18–w26" {
		t.Fatalf("text axis: %+v", sp.Y)
	}
	var n int64
	for _, c := range sp.Cells {
		n += c.N
		if c.I < 0 || c.I >= 10 || c.J < 0 || c.J >= 10 {
			t.Fatalf("cell out of the grid: %+v", c)
		}
	}
	if n != 100 || sp.Jobs != 100 {
		t.Fatalf("cells hold %d jobs, want 100", n)
	}
	// Jobs 0..9 (x bin 0) are w0, w1, .., w9: w0, w1 in y bin 0, w2..w9
	// in later bins.
	if sp.Cells[0].I != 0 || sp.Cells[0].J != 0 || sp.Cells[0].N != 2 {
		t.Fatalf("first cell: %+v", sp.Cells[0])
	}
	sp, err = s.Space(ctx, e.ID, 1, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if !sp.X.Binned || len(sp.X.Labels) != 10 || sp.X.Labels[0] != "0–1.238" || sp.X.Labels[9] != "11.14–12.38" {
		t.Fatalf("real axis: %+v", sp.X)
	}
}

// TestViewTimelineGrid: in a grid, an attempt is placed on the node of
// its cluster that ran it once the head said which, and on the head
// while it waits or runs there.
func TestViewTimelineGrid(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := &Experiment{PlanPath: "p", PlanText: "x", Dialect: "modern", Names: []string{"x"}, Created: viewT0}
	if err := s.Create(ctx, e); err != nil {
		t.Fatal(err)
	}
	var b Batch
	zero := 0
	for i := int64(1); i <= 2; i++ {
		b.AddJob(e.ID, Job{Index: i, Ordinal: i - 1, Values: []string{"v"}})
		b.Start(e.ID, i, 1, "head-east", viewT0.Add(time.Duration(i)*time.Second))
		b.InCluster(e.ID, i, 1, "east")
	}
	b.Finish(e.ID, Attempt{Job: 1, N: 1, Node: "head-east", State: AttemptOK, Ended: viewT0.Add(5 * time.Second), Exit: &zero,
		Cluster: "east", ClusterNode: "e1"}, Done)
	if err := s.Apply(ctx, &b); err != nil {
		t.Fatal(err)
	}
	tl, err := s.Timeline(ctx, e.ID, viewT0, viewT0.Add(time.Minute), 10, 10)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, iv := range tl.Attempts {
		got = append(got, fmt.Sprintf("%d:%s", iv.Job, iv.Node))
	}
	if !slices.Equal(got, []string{"2:head-east", "1:east/e1"}) || !slices.Equal(tl.Nodes, []string{"east/e1", "head-east"}) {
		t.Fatalf("grid timeline %v, nodes %v; want job 2 on its head (running there), job 1 on east/e1", got, tl.Nodes)
	}
}
