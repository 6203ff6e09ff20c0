package task

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"orrery/plan"
)

// DefaultKillGrace is how long a cancelled command's process group has
// between SIGTERM and SIGKILL.
const DefaultKillGrace = 5 * time.Second

// Options tune how a task runs. The zero Options are ready to use.
type Options struct {
	// File is the plan file's name, used in error messages.
	File string
	// Env is the environment jobs inherit; nil means os.Environ(). The
	// job's values are added to it (see Job.Environ).
	Env []string
	// KillGrace is the time between SIGTERM and SIGKILL when a command is
	// cancelled; 0 means DefaultKillGrace. It also bounds how long output
	// is read after a command ends, should a process that left the group
	// keep its output open.
	KillGrace time.Duration
	// OutputLimit is how many bytes of each of a command's stdout and
	// stderr are kept (the last ones); 0 means DefaultOutputLimit.
	OutputLimit int
	// Shell runs shell commands as Shell -c TEXT; "" means /bin/sh.
	Shell string
	// Started, when set, is called right after each process a command
	// starts, with the id of its process group: the process runs in a
	// group of its own, which its children share unless they leave it.
	// The function it returns, unless nil, is called once the process has
	// ended and the rest of its group has been sent SIGKILL. Both are
	// called from the goroutine running the task and should return soon.
	Started func(pgid int) (ended func())
}

func (o *Options) killGrace() time.Duration {
	if o.KillGrace > 0 {
		return o.KillGrace
	}
	return DefaultKillGrace
}

func (o *Options) outputLimit() int {
	if o.OutputLimit > 0 {
		return o.OutputLimit
	}
	return DefaultOutputLimit
}

func (o *Options) shell() string {
	if o.Shell != "" {
		return o.Shell
	}
	return "/bin/sh"
}

// Result is what running a task did: one CommandResult per command run,
// in order, and the task's totals.
type Result struct {
	Task     string
	Commands []CommandResult // Commands[i] is the task's command i
	// Failed is the index of the command that failed the task, or -1.
	Failed int
	// Err is why the task failed (a *CommandError when a command failed),
	// or nil.
	Err error
	// Wall is the task's elapsed time; User and System its processes'
	// CPU time; MaxRSS the largest peak resident set size of any of its
	// processes, in bytes.
	Wall, User, System time.Duration
	MaxRSS             int64
}

// CPU returns the task's CPU time, user plus system.
func (r *Result) CPU() time.Duration { return r.User + r.System }

// CommandResult is what one command did.
type CommandResult struct {
	Pos     plan.Pos
	Command string   // the command in canonical form (plan.Command.String)
	Argv    []string // a process's argv after substitution; nil for other commands
	Start   time.Time
	Wall    time.Duration
	// User and System are the CPU time of the process and the children it
	// waited for; MaxRSS the largest peak resident set size among them,
	// in bytes (from the kernel's rusage).
	User, System time.Duration
	MaxRSS       int64
	// Exit is the process's exit status: -1 when a signal killed it or
	// it did not start. Commands that start no process have 0 on success
	// and -1 on failure.
	Exit   int
	Signal syscall.Signal // the signal that killed the process, or 0
	// Stdout and Stderr hold the end of the process's output, unless the
	// stream was redirected to a file.
	Stdout, Stderr Output
	Err            error // why the command failed, or nil
	Ignored        bool  // it failed under onerror ignore
}

// CPU returns the command's CPU time, user plus system.
func (c *CommandResult) CPU() time.Duration { return c.User + c.System }

func (c *CommandResult) stream(i int) *Output {
	if i == 0 {
		return &c.Stdout
	}
	return &c.Stderr
}

// CommandError is the error of a task that a command failed.
type CommandError struct {
	File  string   // plan file name, from Options.File
	Task  string   // task name
	Pos   plan.Pos // the command's position in the plan
	Index int      // the command's index in the task
	Err   error    // what went wrong, starting with the command
}

// Error returns "FILE:LINE:COL: task NAME: COMMAND: what went wrong".
func (e *CommandError) Error() string {
	at := e.Pos.String()
	if e.File != "" {
		at = e.File + ":" + at
	}
	return fmt.Sprintf("%s: task %s: %v", at, e.Task, e.Err)
}

// Unwrap returns the command's error.
func (e *CommandError) Unwrap() error { return e.Err }

// RunTask runs a node task (main, or nodestart) for job in jobDir, which is
// created when missing. Root files are reached only through root. It
// returns the result and, when the task failed, the same error as
// Result.Err. Cancelling ctx stops the running command's processes and
// fails the task.
func RunTask(ctx context.Context, task *plan.Task, job Job, jobDir string, root Root, opts Options) (*Result, error) {
	res := &Result{Task: task.Name, Failed: -1}
	if task.OnRoot() {
		res.Err = fmt.Errorf("task %s runs on the root, not on a node", task.Name)
		return res, res.Err
	}
	dir, err := filepath.Abs(jobDir)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	var jr *os.Root
	if err == nil {
		jr, err = os.OpenRoot(dir)
	}
	if err != nil {
		res.Err = fmt.Errorf("job directory %q: %w", jobDir, err)
		return res, res.Err
	}
	defer jr.Close()
	r := newRunner(task, job, dir, &opts)
	r.node, r.root = &nodeDir{jr}, root
	return r.run(ctx, res)
}

// RunRootTask runs a root task (rootstart or rootfinish) in rootDir: its
// processes run there and redirect files are relative to it (absolute
// ones allowed). copy and substitute, which need a node, fail.
func RunRootTask(ctx context.Context, task *plan.Task, job Job, rootDir string, opts Options) (*Result, error) {
	res := &Result{Task: task.Name, Failed: -1}
	dir, err := filepath.Abs(rootDir)
	if err == nil {
		_, err = os.Stat(dir)
	}
	if err != nil {
		res.Err = fmt.Errorf("root directory: %w", err)
		return res, res.Err
	}
	return newRunner(task, job, dir, &opts).run(ctx, res)
}

// runner is the state of one task run.
type runner struct {
	opts   *Options
	task   *plan.Task
	job    Job
	env    []string
	dir    string      // absolute working directory of the processes
	node   *nodeDir    // the job directory; nil in a root task
	root   Root        // nil in a root task
	ignore bool        // onerror ignore is in effect
	out    [2]*os.File // stdout and stderr redirect files, or nil
	outKey [2]string   // their names (see outputKey)
}

func newRunner(task *plan.Task, job Job, dir string, opts *Options) *runner {
	base := opts.Env
	if base == nil {
		base = os.Environ()
	}
	return &runner{opts: opts, task: task, job: job, env: job.Environ(base), dir: dir}
}

// run runs the commands in order until one fails (unless ignored) or ctx
// is done.
func (r *runner) run(ctx context.Context, res *Result) (*Result, error) {
	start := time.Now()
	defer r.closeOutput(0)
	defer r.closeOutput(1)
	for i, c := range r.task.Commands {
		cr := r.command(ctx, c)
		res.User += cr.User
		res.System += cr.System
		res.MaxRSS = max(res.MaxRSS, cr.MaxRSS)
		if cr.Err != nil && r.ignore && ctx.Err() == nil {
			cr.Ignored = true
		}
		res.Commands = append(res.Commands, cr)
		if cr.Err != nil && !cr.Ignored {
			res.Failed = i
			res.Err = &CommandError{File: r.opts.File, Task: r.task.Name, Pos: c.Pos, Index: i, Err: cr.Err}
			break
		}
	}
	res.Wall = time.Since(start)
	return res, res.Err
}

// command runs one command and returns its result.
func (r *runner) command(ctx context.Context, c *plan.Command) CommandResult {
	cr := CommandResult{Pos: c.Pos, Command: c.String(), Start: time.Now()}
	var err error
	if err = ctx.Err(); err != nil {
		err = fmt.Errorf("not started: %w", context.Cause(ctx))
	} else {
		err = r.dispatch(ctx, c, &cr)
	}
	cr.Wall = time.Since(cr.Start)
	if err != nil {
		cr.Err = fmt.Errorf("%s: %w", r.label(c), err)
		if cr.Exit == 0 {
			cr.Exit = -1
		}
	}
	return cr
}

// dispatch runs one command by its kind.
func (r *runner) dispatch(ctx context.Context, c *plan.Command, cr *CommandResult) error {
	switch c.Op {
	case plan.OpOnError:
		r.ignore = c.Ignore
		return nil
	case plan.OpRedirect:
		return r.redirect(c)
	case plan.OpCopy:
		return r.copy(ctx, c)
	case plan.OpSubstitute:
		return r.substitute(c)
	case plan.OpShell, plan.OpExec, plan.OpLexec, plan.OpLpexec:
		return r.process(ctx, c, cr)
	}
	return fmt.Errorf("unknown command (op %d)", c.Op)
}

// process runs a command that starts a process: exec, lexec, lpexec, or
// a shell command.
func (r *runner) process(ctx context.Context, c *plan.Command, cr *CommandResult) error {
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		args[i] = a.Expand(r.job.Lookup)
	}
	spec := procSpec{dir: r.dir, env: r.env, out: r.out}
	var err error
	switch c.Op {
	case plan.OpShell:
		if c.Where == plan.Root && r.node != nil {
			return errors.New("a root shell command cannot run in a node task")
		}
		spec.path, spec.argv = r.opts.shell(), []string{filepath.Base(r.opts.shell()), "-c", args[0]}
	case plan.OpExec:
		spec.path, err = lookPath(args[0], getenv(r.env, "PATH"), r.dir)
		spec.argv = args
	case plan.OpLexec:
		spec.path, spec.argv = args[0], args[1:]
	case plan.OpLpexec:
		spec.path, err = lookPath(args[0], getenv(r.env, "PATH"), r.dir)
		spec.argv = args[1:]
	}
	cr.Argv = spec.argv
	if err != nil {
		return err
	}
	return r.opts.runProcess(ctx, spec, cr)
}
