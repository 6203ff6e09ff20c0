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
// alone, never read as this one's. The lines after it are "boot ID",
// "host NAME" and "pidns INODE": where the records' PIDs mean something.
const recordsFormat = "orrery-agent-records 2"

// lifeEnv is the environment variable that marks every process of an
// incarnation's jobs with its ID.
const lifeEnv = "ORRERY_AGENT_LIFE"

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
	dir, err := makeRecords(workDir, inc.id)
	if err != nil {
		log.Error("cannot record this agent's jobs", "err", err)
	} else {
		inc.records = dir
	}
	return inc
}

// origin is where an incarnation's records were made: the PIDs they hold
// name processes of this machine, boot and PID namespace only.
type origin struct{ boot, host, pidns string }

// here returns this process's origin; ok is false when a part of it
// cannot be told (then no records are acted on).
func here() (o origin, ok bool) {
	o.boot = reaper.BootID()
	o.host, _ = os.Hostname()
	o.pidns = reaper.PIDNamespace()
	return o, o.boot != "" && o.host != "" && o.pidns != ""
}

// String returns the boot file's lines after the format line.
func (o origin) String() string {
	return "boot " + o.boot + "\nhost " + o.host + "\npidns " + o.pidns + "\n"
}

// makeRecords makes the records directory of incarnation id, its boot
// file in place before it appears under its name: a records directory
// without one is never an incarnation's that just started.
func makeRecords(workDir, id string) (string, error) {
	agents := filepath.Join(workDir, recordsDir)
	if err := os.MkdirAll(agents, 0o755); err != nil {
		return "", err
	}
	if fi, err := os.Lstat(agents); err != nil || !fi.IsDir() {
		return "", fmt.Errorf("%s is not a directory", agents)
	}
	o, _ := here()
	tmp, err := os.MkdirTemp(agents, ".new-")
	if err != nil {
		return "", err
	}
	dir := filepath.Join(agents, id)
	err = os.WriteFile(filepath.Join(tmp, "boot"), []byte(recordsFormat+"\n"+o.String()), 0o644)
	if err == nil {
		err = os.Rename(tmp, dir)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return "", err
	}
	return dir, nil
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

// guard returns exec with the incarnation's mark (ORRERY_AGENT_LIFE=ID)
// in the jobs' environment and a Started hook that lists each process
// group with the watchdog, calls watched (unless nil) with it, and then
// records it, until it ends (and calls exec's own hook, if any). The
// watchdog comes first, a pipe write: should the agent be killed at any
// later point, its jobs die with it.
func (inc *incarnation) guard(exec task.Options, watched func(pgid int)) task.Options {
	base := exec.Env
	if base == nil {
		base = os.Environ()
	}
	env := make([]string, 0, len(base)+1)
	for _, kv := range base {
		if !strings.HasPrefix(kv, lifeEnv+"=") {
			env = append(env, kv)
		}
	}
	exec.Env = append(env, inc.mark())
	outer := exec.Started
	exec.Started = func(pgid int) func() {
		// The watchdog first: should this process be killed between the
		// two, the watchdog still kills the group at once (the other
		// way round, only a later agent on this work directory would).
		if inc.watchdog != nil {
			if err := inc.watchdog.Add(pgid); err != nil {
				inc.log.Error("watchdog", "err", err)
			}
		}
		if watched != nil {
			watched(pgid) // the node's limits: at once, the group watched
		}
		record := inc.record(pgid)
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

// mark returns the environment entry that marks the incarnation's jobs.
func (inc *incarnation) mark() string { return lifeEnv + "=" + inc.id }

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
// directory), records of another format, and records made on another
// machine, boot or PID namespace are left alone. It returns how many
// processes it killed.
func reapEarlier(workDir string, log *slog.Logger) (int, error) {
	agents := filepath.Join(workDir, recordsDir)
	fi, err := os.Lstat(agents)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if !fi.IsDir() {
		return 0, fmt.Errorf("%s is not a directory: records left alone", agents)
	}
	entries, err := os.ReadDir(agents)
	if err != nil {
		return 0, err
	}
	me, ok := here()
	if !ok {
		return 0, errors.New("cannot tell this machine's boot ID, host name or PID namespace: earlier agents' records left alone")
	}
	killed, elsewhere := 0, 0
	var errs []error
	for _, e := range entries {
		if !e.IsDir() || !validID(e.Name()) {
			continue // not an incarnation's (a symbolic link, a name of another form, one being made)
		}
		dir := filepath.Join(agents, e.Name())
		o, ok := recordsOrigin(dir)
		switch {
		case !ok:
			log.Warn("left alone: records of another format", "dir", dir)
			continue
		case o != me:
			elsewhere++
			continue
		case running(e.Name()):
			continue
		}
		groups := recorded(dir, lifeEnv+"="+e.Name())
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
	if elsewhere > 0 {
		log.Info("left alone: records of agents on another machine, boot or PID namespace", "dir", agents, "agents", elsewhere)
	}
	return killed, errors.Join(errs...)
}

// recordsOrigin reads an incarnation's boot file; ok is false when it
// cannot be read or is of another format.
func recordsOrigin(dir string) (o origin, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, "boot"))
	if err != nil {
		return origin{}, false
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != recordsFormat {
		return origin{}, false
	}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		switch k {
		case "boot":
			o.boot = v
		case "host":
			o.host = v
		case "pidns":
			o.pidns = v
		}
	}
	return o, o.boot != "" && o.host != "" && o.pidns != ""
}

// recorded returns the process groups recorded in an incarnation's
// records directory, each with the incarnation's mark.
func recorded(dir, mark string) []reaper.Group {
	var groups []reaper.Group
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		id, ok := strings.CutPrefix(e.Name(), "pgid-")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		pgid, err := strconv.Atoi(id)
		b, err2 := os.ReadFile(filepath.Join(dir, e.Name()))
		start, err3 := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil || err2 != nil || err3 != nil || pgid <= 1 {
			continue
		}
		groups = append(groups, reaper.Group{ID: pgid, Start: start, Mark: mark})
	}
	return groups
}

// validID reports whether id has the form of an incarnation's ID:
// PID-START-SEQ, three numbers in decimal digits.
func validID(id string) bool {
	f := strings.Split(id, "-")
	if len(f) != 3 {
		return false
	}
	for _, p := range f {
		if p == "" || len(p) > 20 || strings.Trim(p, "0123456789") != "" {
			return false
		}
		if _, err := strconv.ParseUint(p, 10, 64); err != nil {
			return false
		}
	}
	return true
}

// running reports whether incarnation id (PID-START-SEQ) of this
// machine, boot and PID namespace has not ended: one of this process's
// that has not, or one of another agent process that still runs. An ID
// of another form counts as running: it is left alone.
func running(id string) bool {
	if !validID(id) {
		return true
	}
	f := strings.Split(id, "-")
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
// the next agent. Symbolic links are never followed: an experiment-E
// entry that is one is passed over, and a job or records directory that
// is one is removed as a link.
func removeIncarnation(workDir, id string) error {
	if !validID(id) {
		return fmt.Errorf("agent records %q: not an agent's ID", id)
	}
	entries, err := os.ReadDir(workDir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "experiment-") || !e.IsDir() {
			continue
		}
		if err := removeReal(filepath.Join(workDir, e.Name(), "agent-"+id)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) == 0 {
		if err := removeReal(filepath.Join(workDir, recordsDir, id)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeReal removes path: a directory with what it holds, a symbolic
// link as a link (never what it points to). Its parent is a real
// directory.
func removeReal(path string) error {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil
	case err != nil:
		return err
	case fi.IsDir():
		return os.RemoveAll(path)
	default:
		return os.Remove(path)
	}
}
