package dispatch

import (
	"log/slog"

	"orrery/reaper"
	"orrery/task"
)

// guardRoot returns exec with a Started hook that lists each process
// group a root task (rootstart, rootfinish) starts with this process's
// watchdog until it ends, so that it does not outlive the root, even
// killed by SIGKILL (see package reaper); exec's own hook, if any, is
// called too. Without a watchdog, exec is returned as it is and the
// failure is logged.
func guardRoot(exec task.Options, log *slog.Logger) task.Options {
	wd, err := reaper.Shared()
	if err != nil {
		log.Error("no watchdog: root tasks may outlive this process", "err", err)
		return exec
	}
	outer := exec.Started
	exec.Started = func(pgid int) func() {
		if err := wd.Add(pgid); err != nil {
			log.Error("watchdog", "err", err)
		}
		var ended func()
		if outer != nil {
			ended = outer(pgid)
		}
		return func() {
			if ended != nil {
				ended()
			}
			wd.Remove(pgid)
		}
	}
	return exec
}
