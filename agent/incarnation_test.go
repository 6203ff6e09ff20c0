package agent

import (
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"orrery/protocol"
)

// startGroup starts a shell and two grandchildren, all ignoring SIGTERM,
// in a process group of their own (as a job's command runs), and waits
// until all three run. The group is killed when the test ends.
func startGroup(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; sleep 300 & sleep 300 & wait")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	deadline := time.Now().Add(10 * time.Second)
	for len(groupMembers(pgid)) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("group %d: %v, want 3 processes", pgid, groupMembers(pgid))
		}
		time.Sleep(10 * time.Millisecond)
	}
	return pgid
}

// groupMembers returns the live (not zombie) processes of group pgid.
func groupMembers(pgid int) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
		if len(f) > 3 && f[0] != "Z" && f[2] == strconv.Itoa(pgid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// died makes inc look like the incarnation of an agent that was killed:
// its records and directories stay, and it no longer runs.
func died(inc *incarnation) {
	liveMu.Lock()
	delete(live, inc.id)
	liveMu.Unlock()
}

// TestEarlierIncarnationReaped: an agent starting on a work directory
// kills the processes an ended agent recorded there (when the watchdog
// could not: here it never heard of them), and removes that agent's job
// directories and records; failed jobs' kept directories stay.
func TestEarlierIncarnationReaped(t *testing.T) {
	work := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	old := claim(work, log, func(string) {})
	pgid := startGroup(t)
	if old.record(pgid) == "" {
		t.Fatal("the group was not recorded")
	}
	slot := filepath.Join(old.jobsDir(filepath.Join(work, "experiment-1")), "slot1")
	kept := filepath.Join(work, "experiment-1", "j3.1")
	for _, d := range []string{slot, kept} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	died(old)

	var said []string
	n := newAgentNode(Config{Name: "n1", CPUs: 1, WorkDir: work, Status: func(s string) { said = append(said, s) }})
	defer n.inc.end()
	if left := groupMembers(pgid); len(left) > 0 {
		t.Fatalf("processes %v of the earlier agent's group %d still run", left, pgid)
	}
	if len(said) != 1 || !strings.Contains(said[0], "killed 3 processes") {
		t.Errorf("status: %q, want it to say that 3 processes were killed", said)
	}
	for _, gone := range []string{filepath.Dir(slot), filepath.Join(work, recordsDir, old.id)} {
		if _, err := os.Stat(gone); !os.IsNotExist(err) {
			t.Errorf("%s is still there (%v)", gone, err)
		}
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("a failed job's kept directory was removed: %v", err)
	}
}

// TestLiveIncarnationSpared: an agent leaves alone what another agent on
// the same work directory, still running, recorded.
func TestLiveIncarnationSpared(t *testing.T) {
	work := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	other := claim(work, log, func(string) {})
	defer other.end()
	pgid := startGroup(t)
	other.record(pgid)
	slot := filepath.Join(other.jobsDir(filepath.Join(work, "experiment-1")), "slot1")
	if err := os.MkdirAll(slot, 0o755); err != nil {
		t.Fatal(err)
	}
	n := newAgentNode(Config{Name: "n2", CPUs: 1, WorkDir: work})
	defer n.inc.end()
	if left := groupMembers(pgid); len(left) != 3 {
		t.Errorf("group %d of a running agent: %v, want its 3 processes spared", pgid, left)
	}
	if _, err := os.Stat(slot); err != nil {
		t.Errorf("a running agent's job directory was removed: %v", err)
	}
}

// TestJobGroupRecorded: while an attempt runs, its process group is
// recorded in the work directory; once it has ended, the record is gone,
// and when the agent ends, so are its job directories.
func TestJobGroupRecorded(t *testing.T) {
	f := startNode(t, t.TempDir(), "parameter x integer range from 1 to 3\ntask main\n\texec sleep 60\nendtask\n")
	f.send(t, &protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 1, Values: []string{"1"}}})
	hb := f.heartbeat(t, func(hb *protocol.Heartbeat) bool { return len(hb.Resident) == 1 })
	group := hb.Resident[0].Group
	records, _ := filepath.Glob(filepath.Join(f.workDir, recordsDir, "*", "pgid-*"))
	if len(records) != 1 || filepath.Base(records[0]) != "pgid-"+strconv.Itoa(group) {
		t.Fatalf("records %v, want one for process group %d", records, group)
	}
	slots, _ := filepath.Glob(filepath.Join(f.workDir, "experiment-1", "agent-*", "slot*"))
	if len(slots) != 1 {
		t.Fatalf("job directories %v, want one under the agent's own directory", slots)
	}
	f.send(t, &protocol.Msg{Type: protocol.TypeCancel, Job: 1, Attempt: 1})
	f.next(t, protocol.TypeEvent)
	if _, err := os.Stat(records[0]); !os.IsNotExist(err) {
		t.Errorf("the record of an ended group is still there (%v)", err)
	}
	f.send(t, &protocol.Msg{Type: protocol.TypeShutdown})
	if !waitFor(10*time.Second, func() bool {
		left, _ := filepath.Glob(filepath.Join(f.workDir, "experiment-1", "agent-*"))
		recs, _ := filepath.Glob(filepath.Join(f.workDir, recordsDir, "*"))
		return len(left) == 0 && len(recs) == 0
	}) {
		t.Error("the agent's job directories or records are still there after it ended")
	}
}

func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestRecordsOfAnotherFormatLeftAlone: records whose boot file names
// another format version are never read as this version's: their groups
// are not killed and the records stay.
func TestRecordsOfAnotherFormatLeftAlone(t *testing.T) {
	work := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	old := claim(work, log, func(string) {})
	pgid := startGroup(t)
	if old.record(pgid) == "" {
		t.Fatal("the group was not recorded")
	}
	boot := filepath.Join(work, recordsDir, old.id, "boot")
	b, err := os.ReadFile(boot)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), recordsFormat+"\n") {
		t.Fatalf("boot file %q does not start with the format line %q", b, recordsFormat)
	}
	future := strings.Replace(string(b), recordsFormat, "orrery-agent-records 99", 1)
	if err := os.WriteFile(boot, []byte(future), 0o644); err != nil {
		t.Fatal(err)
	}
	died(old)

	n := newAgentNode(Config{Name: "n1", CPUs: 1, WorkDir: work})
	defer n.inc.end()
	if left := groupMembers(pgid); len(left) == 0 {
		t.Fatalf("the group %d recorded in another format was killed", pgid)
	}
	if _, err := os.Stat(boot); err != nil {
		t.Errorf("records of another format were removed: %v", err)
	}
	syscall.Kill(-pgid, syscall.SIGKILL)
}
