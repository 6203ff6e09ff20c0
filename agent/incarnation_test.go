package agent

import (
	"bytes"
	"context"
	"fmt"
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
	"orrery/reaper"
	"orrery/task"
)

// startGroup starts a shell and two grandchildren, all ignoring SIGTERM,
// in a process group of their own (as a job's command runs) with env
// added to their environment, and waits until all three run. The group
// is killed when the test ends.
func startGroup(t *testing.T, env ...string) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; sleep 300 & sleep 300 & wait")
	cmd.Env = append(os.Environ(), env...)
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
	pgid := startGroup(t, lifeMark(old))
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
	pgid := startGroup(t, lifeMark(other))
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
	env, err := os.ReadFile("/proc/" + strconv.Itoa(group) + "/environ")
	id := filepath.Base(filepath.Dir(records[0]))
	if err != nil || !bytes.Contains(append([]byte{0}, env...), []byte("\x00ORRERY_AGENT_LIFE="+id+"\x00")) {
		t.Errorf("the job's environment (%v) does not hold ORRERY_AGENT_LIFE=%s", err, id)
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
	pgid := startGroup(t, lifeMark(old))
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

// lifeMark is the environment entry every process of inc's jobs holds.
func lifeMark(inc *incarnation) string { return "ORRERY_AGENT_LIFE=" + inc.id }

// deadRecords makes the records of an ended incarnation in work with
// process group pgid, and a job directory; it returns the incarnation.
func deadRecords(t *testing.T, work string, env ...string) (inc *incarnation, pgid int, slot string) {
	t.Helper()
	inc = claim(work, slog.New(slog.DiscardHandler), func(string) {})
	pgid = startGroup(t, append([]string{lifeMark(inc)}, env...)...)
	if inc.record(pgid) == "" {
		t.Fatal("the group was not recorded")
	}
	slot = filepath.Join(inc.jobsDir(filepath.Join(work, "experiment-1")), "slot1")
	if err := os.MkdirAll(slot, 0o755); err != nil {
		t.Fatal(err)
	}
	died(inc)
	return inc, pgid, slot
}

// rewriteBoot replaces value old with new in the lines after the first
// of an incarnation's boot file (a line that is old, or ends in " "+old).
func rewriteBoot(t *testing.T, work string, inc *incarnation, old, new string) {
	t.Helper()
	path := filepath.Join(work, recordsDir, inc.id, "boot")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	changed := false
	for i := 1; i < len(lines); i++ {
		if lines[i] == old || strings.HasSuffix(lines[i], " "+old) {
			lines[i] = strings.TrimSuffix(lines[i], old) + new
			changed = true
		}
	}
	if !changed {
		t.Logf("boot file %q names no %q", b, old)
	}
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pidNamespace returns the inode of this process's PID namespace.
func pidNamespace(t *testing.T) string {
	fi, err := os.Stat("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(fi.Sys().(*syscall.Stat_t).Ino, 10)
}

// spared checks that the group (unless 0) still has its 3 processes and
// that the paths are still there.
func spared(t *testing.T, pgid int, paths ...string) {
	t.Helper()
	if left := groupMembers(pgid); pgid != 0 && len(left) != 3 {
		t.Errorf("group %d: %v, want its 3 processes spared", pgid, left)
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
}

// TestOtherHostRecordsLeftAlone: on a work directory shared between
// machines (NFS), the records of an agent of another machine (another
// host name, another boot) name processes of that machine: an agent
// here neither kills anything nor removes that agent's job directories.
func TestOtherHostRecordsLeftAlone(t *testing.T) {
	work := t.TempDir()
	old, pgid, slot := deadRecords(t, work)
	host, _ := os.Hostname()
	rewriteBoot(t, work, old, reaper.BootID(), "d7c2c3d6-0000-4000-8000-000000000000")
	rewriteBoot(t, work, old, host, "elsewhere.example.org")
	n := newAgentNode(Config{Name: "n1", CPUs: 1, WorkDir: work})
	defer n.inc.end()
	spared(t, pgid, slot, filepath.Join(work, recordsDir, old.id, "boot"))
}

// TestOtherPIDNamespaceLeftAlone: records made in another PID namespace
// (a container on the same machine: same boot, same host name) name PIDs
// of that namespace: they are left alone.
func TestOtherPIDNamespaceLeftAlone(t *testing.T) {
	work := t.TempDir()
	old, pgid, slot := deadRecords(t, work)
	ns := pidNamespace(t)
	other, _ := strconv.ParseUint(ns, 10, 64)
	rewriteBoot(t, work, old, ns, strconv.FormatUint(other+1, 10))
	n := newAgentNode(Config{Name: "n1", CPUs: 1, WorkDir: work})
	defer n.inc.end()
	spared(t, pgid, slot, filepath.Join(work, recordsDir, old.id, "boot"))
}

// TestReusedGroupSpared: the process group an ended agent recorded has
// ended, and its number now names an unrelated group (one without that
// agent's mark in its environment): it is not killed, and the records
// are removed.
func TestReusedGroupSpared(t *testing.T) {
	work := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	old := claim(work, log, func(string) {})
	pgid := startGroup(t, "ORRERY_AGENT_LIFE=1-2-3") // another agent life's
	if old.record(pgid) == "" {
		t.Fatal("the group was not recorded")
	}
	died(old)
	n := newAgentNode(Config{Name: "n1", CPUs: 1, WorkDir: work})
	defer n.inc.end()
	spared(t, pgid)
	if _, err := os.Stat(filepath.Join(work, recordsDir, old.id)); !os.IsNotExist(err) {
		t.Errorf("the ended agent's records are still there (%v)", err)
	}
}

// TestNewLeaderSpared: a recorded group whose leader (the process whose
// PID is the group's ID) runs with another start time than recorded is
// another group: it is not killed.
func TestNewLeaderSpared(t *testing.T) {
	work := t.TempDir()
	old, pgid, _ := deadRecords(t, work)
	g, ok := reaper.Lookup(pgid)
	if !ok {
		t.Fatalf("group %d has no leader", pgid)
	}
	rec := filepath.Join(work, recordsDir, old.id, "pgid-"+strconv.Itoa(pgid))
	if err := os.WriteFile(rec, []byte(strconv.FormatUint(g.Start-1, 10)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	n := newAgentNode(Config{Name: "n1", CPUs: 1, WorkDir: work})
	defer n.inc.end()
	spared(t, pgid)
}

// TestWildcardIDLeftAlone: a records directory whose name is not
// PID-START-SEQ in digits (here one whose last part is a glob pattern)
// is left alone, and never reaches the job directories of other agents.
func TestWildcardIDLeftAlone(t *testing.T) {
	work := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	live := claim(work, log, func(string) {})
	defer live.end()
	slot := filepath.Join(live.jobsDir(filepath.Join(work, "experiment-1")), "slot1")
	if err := os.MkdirAll(slot, 0o755); err != nil {
		t.Fatal(err)
	}
	self, _ := reaper.Self()
	planted := filepath.Join(work, recordsDir, fmt.Sprintf("%d-%d-*", os.Getpid(), self))
	if err := os.Mkdir(planted, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(work, recordsDir, live.id, "boot"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(planted, "boot"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	n := newAgentNode(Config{Name: "n1", CPUs: 1, WorkDir: work})
	defer n.inc.end()
	spared(t, 0, slot, planted)
}

// TestSymlinkedExperimentSpared: an experiment-E entry of the work
// directory that is a symbolic link is not followed when an ended
// agent's job directories are removed.
func TestSymlinkedExperimentSpared(t *testing.T) {
	work, outside := t.TempDir(), t.TempDir()
	old, pgid, _ := deadRecords(t, work)
	victim := filepath.Join(outside, "agent-"+old.id, "precious")
	if err := os.MkdirAll(victim, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(work, "experiment-7")); err != nil {
		t.Fatal(err)
	}
	n := newAgentNode(Config{Name: "n1", CPUs: 1, WorkDir: work})
	defer n.inc.end()
	if left := groupMembers(pgid); len(left) > 0 {
		t.Errorf("processes %v of the ended agent's group still run", left)
	}
	if _, err := os.Stat(victim); err != nil {
		t.Errorf("a directory outside the work directory, reached through a symbolic link, was removed: %v", err)
	}
}

// logSpy is a slog handler that calls fn with each record's message.
type logSpy struct{ fn func(msg string) }

func (h logSpy) Enabled(context.Context, slog.Level) bool      { return true }
func (h logSpy) Handle(_ context.Context, r slog.Record) error { h.fn(r.Message); return nil }
func (h logSpy) WithAttrs([]slog.Attr) slog.Handler            { return h }
func (h logSpy) WithGroup(string) slog.Handler                 { return h }

// TestWatchdogToldFirst: a job's group is listed with the watchdog
// before it is recorded in the work directory, so that a SIGKILL in
// between never leaves it unlisted. (The watchdog here is closed: the
// moment it is told shows in the log.)
func TestWatchdogToldFirst(t *testing.T) {
	work := t.TempDir()
	told, recordedFirst := false, false
	var inc *incarnation
	log := slog.New(logSpy{func(msg string) {
		if msg == "watchdog" {
			told = true
			recs, _ := filepath.Glob(filepath.Join(inc.records, "pgid-*"))
			recordedFirst = len(recs) > 0
		}
	}})
	inc = claim(work, log, func(string) {})
	defer inc.end()
	wd, err := reaper.Start()
	if err != nil {
		t.Fatal(err)
	}
	wd.Close()
	inc.watchdog = wd
	pgid := startGroup(t)
	// The node's limits (a control group) come after the watchdog: an
	// agent killed while it moves the group still has it killed.
	confinedAfter := false
	ended := inc.guard(task.Options{}, func(int) { confinedAfter = told }).Started(pgid)
	if !confinedAfter {
		t.Error("the group was put under the node's limits before the watchdog was told of it")
	}
	if !told {
		t.Fatal("the watchdog was not told of the group")
	}
	if recordedFirst {
		t.Error("the group was recorded before the watchdog was told of it")
	}
	if recs, _ := filepath.Glob(filepath.Join(inc.records, "pgid-*")); len(recs) != 1 {
		t.Errorf("records %v, want the group's", recs)
	}
	ended()
}

// epermHelperEnv runs TestEPERMHelper as the helper: it reaps the work
// directory named by the variable and prints what reapEarlier returned.
const epermHelperEnv = "ORRERY_AGENT_EPERM_HELPER"

func TestEPERMHelper(t *testing.T) {
	work := os.Getenv(epermHelperEnv)
	if work == "" {
		return // not the helper
	}
	n, err := reapEarlier(work, slog.New(slog.DiscardHandler))
	fmt.Printf("killed %d; error %v\n", n, err)
}

// TestOthersProcessesNotOurs: records name a group whose processes belong
// to another user (who cannot be signalled): the agent (run as a third
// user) takes them as not its own, at once, and removes the records.
func TestOthersProcessesNotOurs(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root: runs processes as two other users")
	}
	const owner, reaperUID = 65534, 65533
	dead := exec.Command("/bin/true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	id := fmt.Sprintf("%d-1-1", dead.Process.Pid)
	base, err := os.MkdirTemp("", "orrery-eperm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(base)
	os.Chmod(base, 0o755)
	work := filepath.Join(base, "work")
	inc := claim(work, slog.New(slog.DiscardHandler), func(string) {})
	died(inc)
	records := filepath.Join(work, recordsDir, id)
	if err := os.Rename(filepath.Join(work, recordsDir, inc.id), records); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command("/bin/sh", "-c", "trap '' TERM; sleep 300 & sleep 300 & wait")
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "ORRERY_AGENT_LIFE="+id)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: &syscall.Credential{Uid: owner, Gid: owner}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go cmd.Wait()
	pgid := cmd.Process.Pid
	t.Cleanup(func() { syscall.Kill(-pgid, syscall.SIGKILL) })
	if !waitFor(10*time.Second, func() bool { return len(groupMembers(pgid)) == 3 }) {
		t.Fatalf("group %d: %v, want 3 processes", pgid, groupMembers(pgid))
	}
	g, _ := reaper.Lookup(pgid)
	if err := os.WriteFile(filepath.Join(records, "pgid-"+strconv.Itoa(pgid)), []byte(strconv.FormatUint(g.Start, 10)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(work, func(p string, _ os.DirEntry, _ error) error { return os.Lchown(p, reaperUID, reaperUID) })

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "agent.test")
	b, err := os.ReadFile(self)
	if err == nil {
		err = os.WriteFile(bin, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(bin, "-test.run=^TestEPERMHelper$")
	helper.Dir = "/"
	helper.Env = append(os.Environ(), epermHelperEnv+"="+work)
	helper.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: reaperUID, Gid: reaperUID}}
	out, err := helper.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "killed 0; error <nil>") {
		t.Errorf("reaping as another user: %v\n%s\nwant it to kill nothing and fail on nothing", err, out)
	}
	spared(t, pgid)
	if _, err := os.Stat(records); !os.IsNotExist(err) {
		t.Errorf("the records of another user's processes are still there (%v)", err)
	}
}
