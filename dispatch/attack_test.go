package dispatch

// Attacks by an enrolled node on what it reports of its attempts: the
// optional fields of protocol.Result (Ignored, StagedIn/StagedOut, Side)
// sent as a hostile agent would, and reports on attempts it was not
// given. Every node here is one the root did not start (untrusted).

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
)

// countProbes replaces the probe of the state directory by one that
// succeeds and counts its calls.
func countProbes(t *testing.T) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	real := probeDir
	probeDir = func(string) error {
		n.Add(1)
		return nil
	}
	t.Cleanup(func() { probeDir = real })
	return &n
}

// ignoredBytes returns the size in bytes of the ignored column of every
// attempt that has one, as "job.n" -> bytes, read from the database file.
func (h *harness) ignoredBytes() map[string]int64 {
	h.t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(h.st.Dir(), store.FileName)+"?_pragma=busy_timeout(10000)")
	if err != nil {
		h.t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT job, n, length(CAST(ignored AS BLOB)) FROM attempt WHERE experiment=? AND ignored IS NOT NULL`, h.exp.ID)
	if err != nil {
		h.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int64{}
	for rows.Next() {
		var job, n, size int64
		if err := rows.Scan(&job, &n, &size); err != nil {
			h.t.Fatal(err)
		}
		out[fmt.Sprintf("%d.%d", job, n)] = size
	}
	if err := rows.Err(); err != nil {
		h.t.Fatal(err)
	}
	return out
}

// floodIgnored is an Ignored list far over the bound: n entries, each of
// whose strings is size bytes: ASCII, two-byte characters (so a cut
// must fall on a character boundary), characters that JSON escapes to
// six bytes each, and invalid UTF-8 (which JSON replaces by three bytes).
func floodIgnored(n, size int) []protocol.Ignored {
	ascii := strings.Repeat("x", size)
	multi := strings.Repeat("é", size/2)
	esc := strings.Repeat("<\x01", size/2)
	invalid := strings.Repeat("\xffa", size/2)
	exit := 1
	out := make([]protocol.Ignored, n)
	for i := range out {
		out[i] = protocol.Ignored{Pos: ascii, Command: multi, Exit: &exit, Signal: esc, Error: invalid}
	}
	return out
}

// maxIgnoredJSON bounds the stored JSON of an attempt's ignored errors:
// MaxIgnored entries of four strings of at most MaxIgnoredText bytes
// each, every byte escaped at worst to six ("\u0001"), and the field
// names and exit status.
const maxIgnoredJSON = protocol.MaxIgnored*(4*6*protocol.MaxIgnoredText+128) + 2

// TestAttackIgnoredFlood: a node reports thousands of ignored errors of
// 64 KiB strings each, on a success and on a job's failure. The store
// keeps at most protocol.MaxIgnored entries of strings of at most
// protocol.MaxIgnoredText bytes (still valid UTF-8), so the stored JSON
// is bounded whatever the node sends, and the run goes on.
func TestAttackIgnoredFlood(t *testing.T) {
	h := newHarness(t, 2, sched.FCFS, nil)
	a := h.node("a")
	a.join("a", 2, true)
	starts := a.takeStarts()
	if len(starts) != 2 {
		t.Fatalf("%d starts, want 2", len(starts))
	}
	flood := floodIgnored(5000, 64<<10)
	res := ok(time.Second)
	res.Ignored = flood
	exit := 1
	fail := protocol.Result{Exit: &exit, Error: "exit status 1", Ignored: flood}
	a.end(starts[0].Job, starts[0].Attempt, res)
	a.end(starts[1].Job, starts[1].Attempt, fail)
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	for _, s := range starts {
		at, found := h.attempt(s.Job, s.Attempt)
		if !found {
			t.Fatalf("attempt %d.%d not in the store", s.Job, s.Attempt)
		}
		if len(at.Ignored) == 0 || len(at.Ignored) > protocol.MaxIgnored {
			t.Errorf("attempt %d.%d: %d ignored errors stored, want 1 to %d", s.Job, s.Attempt, len(at.Ignored), protocol.MaxIgnored)
		}
		for i, ig := range at.Ignored {
			for _, f := range []struct{ name, v string }{{"pos", ig.Pos}, {"command", ig.Command}, {"signal", ig.Signal}, {"error", ig.Error}} {
				if len(f.v) > protocol.MaxIgnoredText || !utf8.ValidString(f.v) {
					t.Fatalf("attempt %d.%d: ignored[%d].%s is %d bytes (valid UTF-8: %v), want at most %d, valid",
						s.Job, s.Attempt, i, f.name, len(f.v), utf8.ValidString(f.v), protocol.MaxIgnoredText)
				}
			}
		}
	}
	sizes := h.ignoredBytes()
	if len(sizes) != 2 {
		t.Errorf("ignored errors stored for %v, want both attempts", sizes)
	}
	for k, n := range sizes {
		if n > maxIgnoredJSON {
			t.Errorf("attempt %s: the stored ignored errors take %d bytes, want at most %d", k, n, maxIgnoredJSON)
		}
	}
}

// TestAttackStagedCounts: negative and enormous byte counts are stored
// sane: a negative count as 0, an enormous one as it is (never wrapped
// negative), and they read back; a system failure's counts too. The run
// goes on.
func TestAttackStagedCounts(t *testing.T) {
	h := newHarness(t, 3, sched.FCFS, nil)
	a := h.node("a")
	a.join("a", 3, true)
	starts := a.takeStarts()
	if len(starts) != 3 {
		t.Fatalf("%d starts, want 3", len(starts))
	}
	type counts struct{ in, out int64 }
	sent := []counts{{-1, math.MinInt64}, {math.MaxInt64, math.MaxInt64}, {-5, math.MaxInt64}}
	want := []counts{{0, 0}, {math.MaxInt64, math.MaxInt64}, {0, math.MaxInt64}}
	for i, s := range starts[:2] {
		res := ok(time.Second)
		res.StagedIn, res.StagedOut = sent[i].in, sent[i].out
		a.end(s.Job, s.Attempt, res)
	}
	sys := protocol.Result{System: true, Error: "staging failed", StagedIn: sent[2].in, StagedOut: sent[2].out}
	a.end(starts[2].Job, starts[2].Attempt, sys)
	for h.endAll(a, time.Second) > 0 {
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	for i, s := range starts {
		at, found := h.attempt(s.Job, s.Attempt)
		if !found {
			t.Fatalf("attempt %d.%d not in the store", s.Job, s.Attempt)
		}
		if at.StagedIn != want[i].in || at.StagedOut != want[i].out {
			t.Errorf("attempt %d.%d sent staged %d/%d: stored %d/%d, want %d/%d", s.Job, s.Attempt,
				sent[i].in, sent[i].out, at.StagedIn, at.StagedOut, want[i].in, want[i].out)
		}
	}
	err := h.st.Attempts(context.Background(), h.exp.ID, 0, func(a store.Attempt) error {
		if a.StagedIn < 0 || a.StagedOut < 0 {
			t.Errorf("attempt %d.%d: staged %d/%d stored negative", a.Job, a.N, a.StagedIn, a.StagedOut)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// bogusSides are Side values that are neither protocol.SideNode nor
// protocol.SideRoot nor "".
var bogusSides = []string{"ROOT", "Node", "root ", " node", "nodes", "both", "\x00root", "root\x00", strings.Repeat("r", 64<<10), "👾"}

// TestAttackBogusSide: a node that reports system failures with Side
// values that are not "node", "root" or "" is taken as reporting ""
// (the failure may be the job's): the state directory is never probed
// (as it is for "root"), nothing panics, the node's failures count
// against it like any system failure, so it is taken out of service,
// and the other node runs every job.
func TestAttackBogusSide(t *testing.T) {
	probes := countProbes(t)
	h := newHarness(t, 12, sched.FCFS, nil)
	m, b := h.node("m"), h.node("b")
	m.join("m", 1, true)
	b.join("b", 1, true)
	k := 0
	for {
		starts := m.takeStarts()
		for _, s := range starts {
			m.end(s.Job, s.Attempt, protocol.Result{System: true, Side: bogusSides[k%len(bogusSides)], Error: "broken"})
			k++
		}
		if len(starts)+h.endAll(b, time.Second) == 0 {
			break
		}
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	if n := probes.Load(); n != 0 {
		t.Errorf("the state directory was probed %d times, want never (no report said the root's side)", n)
	}
	outs := h.outOfService()
	if len(outs) != 1 || !strings.HasPrefix(outs[0], "m: ") {
		t.Errorf("out of service: %q, want m alone", outs)
	}
	counts, _ := h.st.Counts(context.Background(), h.exp.ID)
	if counts[store.Done] != 12 {
		t.Errorf("counts %v, want 12 done", counts)
	}
}

// TestAttackSideOnNonSystemResults: Side means something only on a
// system failure. A success or a job's own failure that names a side is
// taken as it is: no probe of the state directory, nobody out of
// service, the job done or failed.
func TestAttackSideOnNonSystemResults(t *testing.T) {
	probes := countProbes(t)
	h := newHarness(t, 4, sched.FCFS, nil)
	a := h.node("a")
	a.join("a", 4, true)
	starts := a.takeStarts()
	if len(starts) != 4 {
		t.Fatalf("%d starts, want 4", len(starts))
	}
	exit := 1
	results := []protocol.Result{ok(time.Second), ok(time.Second),
		{Exit: &exit, Error: "exit status 1", Side: protocol.SideRoot},
		{Exit: &exit, Error: "exit status 1", Side: protocol.SideNode}}
	results[0].Side, results[1].Side = protocol.SideRoot, protocol.SideNode
	want := []string{store.AttemptOK, store.AttemptOK, store.AttemptFailed, store.AttemptFailed}
	for i, s := range starts {
		a.end(s.Job, s.Attempt, results[i])
	}
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	for i, s := range starts {
		if at, _ := h.attempt(s.Job, s.Attempt); at.State != want[i] {
			t.Errorf("attempt %d.%d (side %q): %s, want %s", s.Job, s.Attempt, results[i].Side, at.State, want[i])
		}
	}
	if n := probes.Load(); n != 0 {
		t.Errorf("the state directory was probed %d times, want never", n)
	}
	if outs := h.outOfService(); len(outs) != 0 {
		t.Errorf("out of service: %q, want none", outs)
	}
}

// TestAttackFailureClaimsAffectOnlyTheClaimant: node m reports every
// attempt it is given as a system failure on one side, and also forges
// the same report for each attempt of the honest node b (its job numbers
// are easy to guess). Whatever the side, the forged reports change
// nothing: b's attempts run on and end ok, b is never taken out of
// service, and no job that b ran pays for m's failures.
//
//   - "node" or "" (or a bogus side): m is taken out of service, and the
//     jobs it failed get their retries back: every job ends done.
//   - "root": the root cannot tell m's claim from the truth, so m stays
//     in service (as TestRootSideFailuresNotTheNodes wants) and the jobs
//     it was given pay a retry each time; a job may thus fail, but only
//     one whose every attempt ran on m — which m could have had by
//     reporting the job's own failure.
func TestAttackFailureClaimsAffectOnlyTheClaimant(t *testing.T) {
	for _, side := range []string{protocol.SideNode, "", "bogus", protocol.SideRoot} {
		t.Run(fmt.Sprintf("side %q", side), func(t *testing.T) {
			probes := countProbes(t)
			h := newHarness(t, 12, sched.FCFS, nil)
			m, b := h.node("m"), h.node("b")
			m.join("m", 1, true)
			b.join("b", 1, true)
			claim := protocol.Result{System: true, Side: side, Error: "job directory on node m: gone",
				Ignored: floodIgnored(20, 1024), StagedIn: -1, StagedOut: math.MaxInt64}
			reports := 0
			for {
				sm, sb := m.takeStarts(), b.takeStarts()
				if len(sm)+len(sb) == 0 {
					break
				}
				for _, s := range sb {
					m.end(s.Job, s.Attempt, claim)
					if at, _ := h.attempt(s.Job, s.Attempt); at.State != store.AttemptRunning || at.Node != "b" || at.Ignored != nil {
						t.Fatalf("after m forged the end of b's attempt %d.%d: %s on %s (ignored %d), want still running on b",
							s.Job, s.Attempt, at.State, at.Node, len(at.Ignored))
					}
				}
				for _, s := range sm {
					m.end(s.Job, s.Attempt, claim)
					reports++
				}
				h.clock.advance(time.Second)
				for _, s := range sb {
					b.end(s.Job, s.Attempt, ok(time.Second))
				}
			}
			if err := h.wait(); err != nil {
				t.Fatal(err)
			}
			outs := h.outOfService()
			if slices.ContainsFunc(outs, func(o string) bool { return strings.HasPrefix(o, "b: ") }) {
				t.Errorf("out of service: %q; b, the honest node, must not be", outs)
			}
			byJob := map[int64][]store.Attempt{}
			err := h.st.Attempts(context.Background(), h.exp.ID, 0, func(a store.Attempt) error {
				byJob[a.Job] = append(byJob[a.Job], a)
				if a.Node == "b" && a.State != store.AttemptOK {
					t.Errorf("b's attempt %d.%d: %s (%s), want ok", a.Job, a.N, a.State, a.Error)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			failed := 0
			err = h.st.Jobs(context.Background(), h.exp.ID, "", 0, 0, func(j store.Job) error {
				if j.State != store.Failed {
					return nil
				}
				failed++
				for _, a := range byJob[j.Index] {
					if a.Node != "m" {
						t.Errorf("job %d failed though attempt %d ran on %s: m's claims cost a job it was not the only one to run", j.Index, a.N, a.Node)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			counts, _ := h.st.Counts(context.Background(), h.exp.ID)
			switch side {
			case protocol.SideRoot:
				if n := probes.Load(); n != int64(reports) {
					t.Errorf("%d probes of the state directory for %d root-side reports of m's own attempts; forged reports must not probe", n, reports)
				}
				t.Logf("root side: m out of service: %v; counts %v; %d root-side reports", len(outs) > 0, counts, reports)
			default:
				if len(outs) != 1 || !strings.HasPrefix(outs[0], "m: ") {
					t.Errorf("out of service: %q, want m alone", outs)
				}
				if counts[store.Done] != 12 || failed != 0 {
					t.Errorf("counts %v, want 12 done: m's failures are forgiven once it is out of service", counts)
				}
				if n := probes.Load(); n != 0 {
					t.Errorf("%d probes of the state directory, want none", n)
				}
			}
		})
	}
}

// TestAttackReportOfAnotherNodesAttemptNewFields extends
// TestReportOfAnotherNodesAttempt to the new fields: b reports a's
// attempt as every kind of end, with an ignored-error flood, staged
// counts and each side. None is taken: a's attempt stays running with
// nothing of b's report stored, the state directory is never probed,
// nobody is taken out of service, and a's own report is what the store
// keeps.
func TestAttackReportOfAnotherNodesAttemptNewFields(t *testing.T) {
	probes := countProbes(t)
	h := newHarness(t, 2, sched.FCFS, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, true)
	b.join("b", 1, true)
	sa, sb := a.takeStarts(), b.takeStarts()
	if len(sa) != 1 || len(sb) != 1 {
		t.Fatalf("starts: a %v, b %v; want one each", sa, sb)
	}
	exit := 1
	flood := floodIgnored(100, 4096)
	var forged []protocol.Result
	for _, side := range []string{protocol.SideRoot, protocol.SideNode, "", "bogus"} {
		forged = append(forged, protocol.Result{System: true, Side: side, Error: "forged", Ignored: flood, StagedIn: 1 << 40, StagedOut: -1})
	}
	good := ok(time.Second)
	good.Ignored, good.StagedIn, good.StagedOut = flood, 1<<40, 1<<40
	forged = append(forged, good, protocol.Result{Exit: &exit, Error: "forged", Ignored: flood, StagedIn: 1, StagedOut: 1})
	for range 3 { // more than BlackHoleJobs and BlackHole would need, were they counted
		for _, res := range forged {
			b.end(sa[0].Job, sa[0].Attempt, res)
			at, _ := h.attempt(sa[0].Job, sa[0].Attempt)
			if at.State != store.AttemptRunning || at.Node != "a" || at.Ignored != nil || at.StagedIn != 0 || at.StagedOut != 0 {
				t.Fatalf("after b reported a's attempt (side %q, ok %v): %s on %s, ignored %d, staged %d/%d; want running on a, nothing stored",
					res.Side, res.OK, at.State, at.Node, len(at.Ignored), at.StagedIn, at.StagedOut)
			}
		}
	}
	if n := probes.Load(); n != 0 {
		t.Errorf("b's forged root-side reports probed the state directory %d times, want never", n)
	}
	if outs := h.outOfService(); len(outs) != 0 {
		t.Errorf("out of service: %q, want none", outs)
	}
	mine := ok(time.Second)
	mine.StagedIn, mine.StagedOut = 10, 20
	mine.Ignored = []protocol.Ignored{{Pos: "4:2", Command: "exec false", Exit: &exit, Error: "exit status 1"}}
	a.end(sa[0].Job, sa[0].Attempt, mine)
	b.end(sb[0].Job, sb[0].Attempt, ok(time.Second))
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	at, _ := h.attempt(sa[0].Job, sa[0].Attempt)
	if at.State != store.AttemptOK || at.Node != "a" || at.StagedIn != 10 || at.StagedOut != 20 ||
		len(at.Ignored) != 1 || at.Ignored[0].Command != "exec false" {
		t.Errorf("a's attempt: %s on %s, staged %d/%d, ignored %+v; want a's own report", at.State, at.Node, at.StagedIn, at.StagedOut, at.Ignored)
	}
}

// TestAttackReportOfAnotherNodesCancelledAttempt: an attempt the
// dispatcher cancelled (its duplicate won) waits for its own node's
// report of what it used. Another node's report of it, with new fields
// and a root side, is refused: the record stays cancelled on its node,
// with nothing of the forged report, and no probe; the node's own
// report is recorded.
func TestAttackReportOfAnotherNodesCancelledAttempt(t *testing.T) {
	probes := countProbes(t)
	h := newHarness(t, 8, sched.Orrery, nil)
	a, b := h.node("a"), h.node("b")
	a.join("a", 1, true)
	b.join("b", 1, true)
	hung := a.takeStarts()
	var dup []protocol.Start
	for i := 0; i < 60 && len(dup) == 0; i++ {
		h.beats(time.Second, a, b)
		for _, s := range b.takeStarts() {
			if s.Job == hung[0].Job {
				dup = append(dup, s)
				continue
			}
			b.end(s.Job, s.Attempt, ok(time.Second))
		}
	}
	if len(dup) != 1 {
		t.Fatalf("no duplicate of the hung job %d after 60 s (got %v)", hung[0].Job, dup)
	}
	b.end(dup[0].Job, dup[0].Attempt, ok(time.Second))
	forged := protocol.Result{System: true, Side: protocol.SideRoot, Error: "forged",
		Ignored: floodIgnored(100, 4096), StagedIn: 1 << 40, StagedOut: 1 << 40}
	b.end(hung[0].Job, hung[0].Attempt, forged)
	at, _ := h.attempt(hung[0].Job, hung[0].Attempt)
	if at.State != store.AttemptCancelled || at.Node != "a" || at.Ignored != nil || at.StagedIn != 0 || at.StagedOut != 0 {
		t.Fatalf("after b reported a's cancelled attempt: %s on %s, ignored %d, staged %d/%d; want cancelled on a, nothing of b's",
			at.State, at.Node, len(at.Ignored), at.StagedIn, at.StagedOut)
	}
	if n := probes.Load(); n != 0 {
		t.Errorf("b's forged report probed the state directory %d times, want never", n)
	}
	mine := protocol.Result{Signal: "killed", Error: "cancelled", StagedIn: 7}
	a.end(hung[0].Job, hung[0].Attempt, mine)
	if err := h.wait(); err != nil {
		t.Fatal(err)
	}
	at, _ = h.attempt(hung[0].Job, hung[0].Attempt)
	if at.State != store.AttemptCancelled || at.StagedIn != 7 {
		t.Errorf("a's cancelled attempt after its own report: %s, staged in %d; want cancelled, 7", at.State, at.StagedIn)
	}
	if outs := h.outOfService(); len(outs) != 0 {
		t.Errorf("out of service: %q, want none", outs)
	}
}
