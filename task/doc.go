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
//     directory; the agent protocol implements it over the connection to
//     the root.
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
// Root files are the root's to give, and a node gets only what its work
// needs. TaskAccess computes, from a node task (main for one job, or
// nodestart) and the job's values, the Access that task needs: Stat and
// Open of each root source its copy commands name (for a glob, Glob of
// the pattern and Stat and Open of what it matches), and Stat and Put of
// each root destination (for a directory destination, Put of the names
// copy writes into it), all after substitution, exactly as copy expands
// them. Grants holds the union of the accesses of what one node runs now;
// GuardedRoot serves a Root to a node through them, refusing anything
// else with an *AccessError (errors.Is(err, ErrDenied)) before the Root
// is touched. Root paths served to a node are relative to the root
// directory and never leave it: CheckRootPath refuses absolute paths and
// ".." that climbs out, and ConfinedRoot, the Root the root serves nodes
// from, works through an os.Root, so a symlink that points out is
// refused too. (Absolute root paths, which the plan language allows, work
// only in root tasks and over DirRoot.)
//
// A copy that fails because the root's side failed (IsRootSystemError on
// the root; the node's Root wraps ErrRootSystem) is the system's failure,
// not the job's: the *CommandError of RunTask wraps ErrRootSystem, and
// Result.RootSystemError finds it even under onerror ignore.
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
