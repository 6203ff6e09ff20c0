package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// procSpec is a process to start for a command.
type procSpec struct {
	path string // the program: absolute, or relative to dir
	argv []string
	dir  string
	env  []string
	out  [2]*os.File // redirect files for stdout and stderr; nil keeps the stream
}

// runProcess starts the process in its own process group and waits for it.
// When the process exits, the rest of its group is killed. When ctx is
// done first, the group gets SIGTERM and, after the grace period, SIGKILL.
// The outcome is recorded in cr; the error says why the command failed.
// Options.Started hears of the group once the process runs, and of its end.
func (o *Options) runProcess(ctx context.Context, p procSpec, cr *CommandResult) error {
	var child, pipes [2]*os.File // the child's stdout/stderr; our read ends
	var tails [2]*tail
	defer func() {
		for _, f := range pipes {
			if f != nil {
				f.Close()
			}
		}
	}()
	for i := range 2 {
		if p.out[i] != nil {
			child[i] = p.out[i]
			continue
		}
		r, w, err := os.Pipe()
		if err != nil {
			closeFiles(child[:i], pipes[:i])
			return err
		}
		pipes[i], child[i], tails[i] = r, w, newTail(o.outputLimit())
	}
	cmd, err := startBusy(ctx, func() *exec.Cmd {
		return &exec.Cmd{
			Path: p.path, Args: p.argv, Dir: p.dir, Env: p.env,
			Stdout: child[0], Stderr: child[1],
			SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
		}
	})
	if err != nil {
		closeFiles(child[:], pipes[:])
		return startError(err)
	}
	// Started first: a node's limits take the process before its program
	// has loaded (see agent.Config.Confine).
	pgid := cmd.Process.Pid
	ended := o.started(pgid)
	closeFiles(child[:], pipes[:]) // the child has its copies now
	var readers sync.WaitGroup
	for i, r := range pipes {
		if r != nil {
			readers.Go(func() { io.Copy(tails[i], r) })
		}
	}
	stop := make(chan struct{})
	var watcher sync.WaitGroup
	watcher.Go(func() { killOnCancel(ctx, stop, pgid, o.killGrace()) })
	cmd.Wait() // the outcome is read from ProcessState below
	close(stop)
	watcher.Wait()
	syscall.Kill(-pgid, syscall.SIGKILL) // whatever the process left behind
	ended()
	drain(&readers, pipes, o.killGrace())
	for i, t := range tails {
		if t != nil {
			*cr.stream(i) = t.output()
		}
	}
	return o.recordExit(ctx, cmd.ProcessState, cr)
}

// startBusy starts the command mk makes, again while its program is
// "text file busy" (ETXTBSY), for up to about two seconds. A program the
// job's copy has just written can be busy for a moment through no fault
// of the job: another command forked meanwhile (another job's, on the
// same node) holds a copy of the written file's descriptor until it
// executes its own program (golang.org/issue/22315; cmd/go retries
// so too).
func startBusy(ctx context.Context, mk func() *exec.Cmd) (*exec.Cmd, error) {
	delay := 5 * time.Millisecond
	for waited := time.Duration(0); ; waited += delay {
		cmd := mk()
		err := cmd.Start()
		if err == nil || !errors.Is(err, syscall.ETXTBSY) || waited >= 2*time.Second {
			return cmd, err
		}
		select {
		case <-ctx.Done():
			return cmd, err
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

// started calls the Started hook, if any, and returns the function to
// call when the process has ended.
func (o *Options) started(pgid int) (ended func()) {
	if o.Started != nil {
		ended = o.Started(pgid)
	}
	if ended == nil {
		ended = func() {}
	}
	return ended
}

// closeFiles closes the child's ends of the pipes (those in child that
// have a read end in pipes); redirect files belong to the caller.
func closeFiles(child, pipes []*os.File) {
	for i, f := range child {
		if f != nil && pipes[i] != nil {
			f.Close()
		}
	}
}

// killOnCancel waits until stop is closed or ctx is done. When ctx is done
// it sends SIGTERM to the process group and, if stop is not closed within
// grace, SIGKILL.
func killOnCancel(ctx context.Context, stop <-chan struct{}, pgid int, grace time.Duration) {
	select {
	case <-stop:
		return
	case <-ctx.Done():
	}
	syscall.Kill(-pgid, syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-stop:
	case <-t.C:
		syscall.Kill(-pgid, syscall.SIGKILL)
	}
}

// drain waits for the output readers to reach the end of their pipes. A
// process that left the group (setsid) may still hold a pipe open; after
// wait the pipes are closed, which ends the readers.
func drain(readers *sync.WaitGroup, pipes [2]*os.File, wait time.Duration) {
	done := make(chan struct{})
	go func() { readers.Wait(); close(done) }()
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		for _, f := range pipes {
			if f != nil {
				f.Close()
			}
		}
		<-done
	}
}

// recordExit records the process's exit status and resource use in cr and
// returns the command's error: nil for exit status 0.
func (o *Options) recordExit(ctx context.Context, ps *os.ProcessState, cr *CommandResult) error {
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		cr.User = time.Duration(ru.Utime.Nano())
		cr.System = time.Duration(ru.Stime.Nano())
		cr.MaxRSS = ru.Maxrss * 1024 // Linux reports KiB
	}
	cr.Exit = ps.ExitCode()
	status := fmt.Sprintf("exit status %d", cr.Exit)
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		cr.Signal = ws.Signal()
		status = fmt.Sprintf("killed by signal %d (%v)", int(cr.Signal), cr.Signal)
	}
	switch {
	case cr.Exit == 0:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("stopped, %s: %w", status, context.Cause(ctx))
	}
	return errors.New(status)
}

// startError makes the error of a process that did not start readable:
// "no such file or directory" rather than "fork/exec ./x: no such …".
func startError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// lookPath finds a program the way a shell does, on the PATH of the job's
// environment (not the agent's). A name with a slash is not searched; a
// relative one is relative to dir. Relative PATH entries are relative to
// dir too.
func lookPath(file, pathEnv, dir string) (string, error) {
	if file == "" {
		return "", errors.New("empty program name")
	}
	if strings.Contains(file, "/") {
		return file, nil
	}
	for _, d := range filepath.SplitList(pathEnv) {
		if d == "" {
			d = "."
		}
		p := filepath.Join(d, file)
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", exec.ErrNotFound
}
