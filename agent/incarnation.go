package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"orrery/reaper"
	"orrery/task"
)

// An incarnation is one life of an agent on its work directory. Its jobs
// do not outlive it: each job's process group is listed with this
// process's watchdog (package reaper), which kills the groups when the
// process ends, however it ends; and it is recorded in
// WORKDIR/agents/ID/pgid-N (with its leader's start time), so that the
// next agent on the work directory kills what is left should the watchdog
// have died too. Its job directories are WORKDIR/experiment-E/agent-ID/,
// so a later attempt never shares a directory with one of an earlier
// incarnation. ID is "PID-START-SEQ": the agent process, its start time
// (clock ticks after boot) and a count of the agents this process ran.
type incarnation struct {
	id       string
	workDir  string
	records  string           // WORKDIR/agents/ID; "" when it could not be made
	watchdog *reaper.Watchdog // nil when it could not start
	self     uint64           // this process's start time
	log      *slog.Logger
}

// recordsDir is the directory of the incarnations' records in a work
// directory.
const recordsDir = "agents"

// recordsFormat is the first line of an incarnation's "boot" file: the
// version of its records' format. Records of another version are left
// alone, never read as this one's.
const recordsFormat = "orrery-agent-records 1"

var (
	incarnations atomic.Int64
	liveMu       sync.Mutex
	live         = map[string]bool{} // incarnations of this process that have not ended
)

// reapWait bounds how long an agent waits for what an earlier incarnation
// left to end after SIGKILL.
const reapWait = 10 * time.Second

// claim starts an incarnation on workDir: it first kills the processes
// that ended incarnations recorded there and removes their job
// directories. What goes wrong is logged and said through status; the
// agent runs on (its jobs then fail on their job directories, or are
// only held by the watchdog).
func claim(workDir string, log *slog.Logger, status func(string)) *incarnation {
	self, _ := reaper.Self()
	inc := &incarnation{id: fmt.Sprintf("%d-%d-%d", os.Getpid(), self, incarnations.Add(1)),
		workDir: workDir, self: self, log: log}
	liveMu.Lock()
	live[inc.id] = true
	liveMu.Unlock()
	if wd, err := reaper.Shared(); err != nil {
		log.Error("no watchdog: jobs may outlive this agent", "err", err)
		status(fmt.Sprintf("%v: jobs may outlive this agent", err))
	} else {
		inc.watchdog = wd
	}
	if workDir == "" {
		return inc // nothing to record in, nothing to clean up
	}
	if killed, err := reapEarlier(workDir, log); err != nil {
		log.Error("cleaning up after an earlier agent", "err", err)
		status("cleaning up after an earlier agent: " + err.Error())
	} else if killed > 0 {
		status(fmt.Sprintf("killed %d processes that an earlier agent on %s left running", killed, workDir))
	}
	dir := filepath.Join(workDir, recordsDir, inc.id)
	err := os.MkdirAll(dir, 0o755)
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, "boot"), []byte(recordsFormat+"\n"+reaper.BootID()+"\n"), 0o644)
	}
	if err != nil {
		log.Error("cannot record this agent's jobs", "err", err)
	} else {
		inc.records = dir
	}
	return inc
}

// jobsDir is where the incarnation's job directories of an experiment
// are made.
func (inc *incarnation) jobsDir(experiment string) string {
	return filepath.Join(experiment, "agent-"+inc.id)
}

// end removes the incarnation's records and job directories (kept
// directories live beside them): its jobs have all ended.
func (inc *incarnation) end() {
	if inc.workDir != "" {
		removeIncarnation(inc.workDir, inc.id)
	}
	liveMu.Lock()
	delete(live, inc.id)
	liveMu.Unlock()
}

// guard returns exec with a Started hook that records each process group
// and lists it with the watchdog until it ends (and calls exec's own
// hook, if any).
func (inc *incarnation) guard(exec task.Options) task.Options {
	outer := exec.Started
	exec.Started = func(pgid int) func() {
		record := inc.record(pgid)
		if inc.watchdog != nil {
			if err := inc.watchdog.Add(pgid); err != nil {
				inc.log.Error("watchdog", "err", err)
			}
		}
		var ended func()
		if outer != nil {
			ended = outer(pgid)
		}
		return func() {
			if ended != nil {
				ended()
			}
			if inc.watchdog != nil {
				inc.watchdog.Remove(pgid)
			}
			if record != "" {
				os.Remove(record)
			}
		}
	}
	return exec
}

// record writes the file that names process group pgid and returns its
// path, or "".
func (inc *incarnation) record(pgid int) string {
	if inc.records == "" {
		return ""
	}
	g, ok := reaper.Lookup(pgid)
	if !ok {
		// The leader has ended already: its group's processes started
		// after this agent did.
		g = reaper.Group{ID: pgid, Start: inc.self}
	}
	path := filepath.Join(inc.records, "pgid-"+strconv.Itoa(pgid))
	if err := os.WriteFile(path, []byte(strconv.FormatUint(g.Start, 10)+"\n"), 0o644); err != nil {
		inc.log.Error("recording a job's process group", "err", err)
		return ""
	}
	return path
}

// reapEarlier kills the processes of the groups that ended incarnations
// recorded in workDir, and removes their records and job directories.
// Incarnations whose agent still runs (another agent on the same work
// directory) are left alone. It returns how many processes it killed.
func reapEarlier(workDir string, log *slog.Logger) (int, error) {
	entries, err := os.ReadDir(filepath.Join(workDir, recordsDir))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	boot := reaper.BootID()
	killed := 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || running(e.Name()) {
			continue
		}
		dir := filepath.Join(workDir, recordsDir, e.Name())
		groups, ok := recorded(dir, boot)
		if !ok {
			log.Warn("left alone: records of another format", "dir", dir)
			continue
		}
		n, err := reaper.Kill(groups, reapWait)
		killed += n
		if n > 0 {
			log.Warn("killed what an earlier agent left running", "agent", e.Name(), "groups", len(groups), "processes", n)
		}
		if err != nil {
			errs = append(errs, err)
			continue // keep the records: the next agent tries again
		}
		if err := removeIncarnation(workDir, e.Name()); err != nil {
			errs = append(errs, err)
		}
	}
	return killed, errors.Join(errs...)
}

// recorded returns the process groups recorded in an incarnation's
// records directory: none when they were recorded before the machine
// last booted. ok is false for records of another format (or a boot
// file that cannot be read yet), which are left alone.
func recorded(dir, boot string) (groups []reaper.Group, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "boot"))
	if err != nil {
		return nil, errors.Is(err, os.ErrNotExist)
	}
	format, bootID, _ := strings.Cut(string(b), "\n")
	if format != recordsFormat {
		return nil, false
	}
	if strings.TrimSpace(bootID) != boot {
		return nil, true
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), "pgid-")
		if !ok {
			continue
		}
		pgid, err := strconv.Atoi(id)
		b, err2 := os.ReadFile(filepath.Join(dir, e.Name()))
		start, err3 := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || err2 != nil || err3 != nil || pgid <= 1 {
			continue
		}
		groups = append(groups, reaper.Group{ID: pgid, Start: start})
	}
	return groups, true
}

// running reports whether incarnation id (PID-START-SEQ) has not ended:
// one of this process's that has not, or one of another agent process
// that still runs. A name it cannot read counts as running: it is left
// alone.
func running(id string) bool {
	f := strings.Split(id, "-")
	if len(f) != 3 {
		return true
	}
	pid, err1 := strconv.Atoi(f[0])
	start, err2 := strconv.ParseUint(f[1], 10, 64)
	if err1 != nil || err2 != nil {
		return true
	}
	if pid == os.Getpid() {
		if self, _ := reaper.Self(); self == start {
			liveMu.Lock()
			defer liveMu.Unlock()
			return live[id]
		}
	}
	s, ok := reaper.StartTime(pid)
	return ok && s == start
}

// removeIncarnation removes the job directories and the records of
// incarnation id; the records go last, so that a failure leaves them for
// the next agent.
func removeIncarnation(workDir, id string) error {
	dirs, _ := filepath.Glob(filepath.Join(workDir, "experiment-*", "agent-"+id))
	var errs []error
	for _, d := range dirs {
		if err := os.RemoveAll(d); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(filepath.Join(workDir, recordsDir, id)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
