// Package reaper makes sure that the process groups a process starts do
// not outlive it, however it ends: a watchdog, a small /bin/sh child
// process in a process group of its own, holds the list of the groups and
// kills them when the process that started it is gone, even by SIGKILL.
//
// The process tells the watchdog of each group as it starts and ends
// ("+PGID", "-PGID" lines on a pipe whose write end only this process
// holds: close-on-exec, so the jobs it starts do not inherit it). When the
// pipe reaches its end, the watchdog sends SIGTERM to every group still
// listed, SIGKILL half a second later, and exits. It ignores SIGHUP and
// SIGINT, so a closed terminal or a Ctrl-C does not end it first.
//
// Processes that leave their group (setsid) escape it; a control group
// holds those.
package reaper

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// script is the watchdog. Its list is a string of " PGID " words; dash's
// kill takes a process group as "-s SIG -- -PGID".
const script = `trap '' HUP INT
groups=' '
while read -r line; do
	case $line in
	+*) groups="$groups${line#+} " ;;
	-*) g=${line#-}
		case $groups in *" $g "*) groups="${groups%% $g *} ${groups#* $g }" ;; esac ;;
	esac
done
[ "$groups" = ' ' ] && exit 0
for g in $groups; do kill -s TERM -- "-$g" 2>/dev/null; done
sleep 0.5
for g in $groups; do kill -s KILL -- "-$g" 2>/dev/null; done
exit 0
`

// Grace is how long the watchdog waits between SIGTERM and SIGKILL.
const Grace = 500 * time.Millisecond

// writeTimeout bounds each line sent to the watchdog.
const writeTimeout = 2 * time.Second

// Watchdog is a running watchdog. Its methods may be called from any
// goroutine.
type Watchdog struct {
	mu   sync.Mutex // serializes lines on the pipe
	w    *os.File   // the pipe's write end; nil once closed
	cmd  *exec.Cmd
	done chan struct{} // closed when the watchdog has exited
}

var (
	sharedOnce sync.Once
	shared     *Watchdog
	sharedErr  error
)

// Shared returns this process's watchdog, starting it on first use. Every
// node agent of the process shares it.
func Shared() (*Watchdog, error) {
	sharedOnce.Do(func() { shared, sharedErr = Start() })
	return shared, sharedErr
}

// Start starts a new watchdog.
func Start() (*Watchdog, error) {
	r, w, err := os.Pipe() // both ends close-on-exec
	if err != nil {
		return nil, fmt.Errorf("reaper: %w", err)
	}
	defer r.Close()
	// The script comes in the environment, so that a process list shows
	// one short line.
	cmd := exec.Command("/bin/sh", "-c", `eval "$ORRERY_REAPER"`, "orrery-reaper")
	cmd.Stdin = r // the child's fd 0, not close-on-exec there
	cmd.Dir = "/"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C", "ORRERY_REAPER=" + script}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("reaper: starting the watchdog: %w", err)
	}
	wd := &Watchdog{w: w, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		close(wd.done)
	}()
	return wd, nil
}

// Add lists process group pgid: it is killed when this process ends,
// unless it is removed first.
func (wd *Watchdog) Add(pgid int) error { return wd.line('+', pgid) }

// Remove takes process group pgid off the list (it has ended).
func (wd *Watchdog) Remove(pgid int) error { return wd.line('-', pgid) }

// PID returns the watchdog's process ID.
func (wd *Watchdog) PID() int { return wd.cmd.Process.Pid }

func (wd *Watchdog) line(op byte, pgid int) error {
	if pgid <= 1 {
		return fmt.Errorf("reaper: process group %d", pgid)
	}
	b := append([]byte{op}, strconv.Itoa(pgid)...)
	b = append(b, '\n')
	wd.mu.Lock()
	defer wd.mu.Unlock()
	if wd.w == nil {
		return errors.New("reaper: the watchdog is closed")
	}
	wd.w.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := wd.w.Write(b); err != nil {
		return fmt.Errorf("reaper: telling the watchdog: %w", err)
	}
	return nil
}

// Close ends the watchdog as this process's end would: the groups still
// listed are killed. It returns once the watchdog has exited.
func (wd *Watchdog) Close() error {
	wd.mu.Lock()
	w := wd.w
	wd.w = nil
	wd.mu.Unlock()
	if w == nil {
		return nil
	}
	err := w.Close()
	<-wd.done
	return err
}
