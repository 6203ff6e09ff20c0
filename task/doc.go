// Package task runs the commands of one task on a node: the part of a
// node agent that turns a plan's task into processes and file copies.
//
// RunTask runs a node task (main once per job, nodestart once per node)
// in the job's private directory; RunRootTask runs rootstart and
// rootfinish in the root directory. Each command runs in order, exactly as
// the plan language says:
//
//   - copy stages input from the root, collects output to it, or copies
//     inside the job directory. The node shares no file system with the
//     root: every root-side access goes through the Root interface, so a
//     copy is always a real byte copy. DirRoot implements Root over a local
//     directory; the dispatcher will implement it over the agent protocol.
//   - exec, lexec, lpexec and shell commands (execute, shexec) start a
//     process in its own process group, with the job's values in its
//     environment. When the process exits, whatever is left of its group
//     (a background child it forked) is killed, so no stray process
//     outlives its command. Cancelling the context stops the group:
//     SIGTERM, then SIGKILL after Options.KillGrace.
//   - substitute copies a node file replacing $name and ${name}.
//   - onerror and redirect change how following commands are run.
//
// Node paths never leave the job directory: all node-side file access goes
// through an os.Root, and a path that climbs out with "..", is absolute, or
// passes through a symlink pointing out is refused with ErrEscape. The
// processes themselves are not confined; only the paths the plan names are.
//
// Every command's result (exit status or signal, wall and CPU time, peak
// memory, and the last Options.OutputLimit bytes of its stdout and stderr)
// is kept in a Result, so a user can read why a job failed. Memory stays
// bounded whatever a job writes.
//
// Choices the plan language leaves open, made here:
//
//   - A copy DST is a directory when written as one ("." or a trailing
//     "/"; created when missing) or when it exists as one. Only regular
//     files are copied; a glob skips the directories it matches. A copied
//     file keeps its permission bits, so a staged program can run. Files
//     appear at their destination only when complete (written to a
//     temporary name, then renamed).
//   - redirect opens its file when it runs (truncating it unless append)
//     and the following commands write to it in turn; a redirect to the
//     file the other stream already goes to joins it without truncating.
//   - In substitute, `\$` is `$`; every other backslash, and every `$` not
//     starting a known $name or ${name}, is copied as it is.
//   - exec and lpexec search the PATH of the job's environment; a program
//     name with a slash, and lexec's, is relative to the job directory.
//   - The zero Job (nodestart, rootstart, rootfinish) has no values:
//     $jobindex and $jobname are left as written.
//   - Cancellation stops the task even under onerror ignore.
package task
