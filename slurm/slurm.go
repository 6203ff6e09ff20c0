// Package slurm is Slurm's adapter to batch.System: sbatch submits, squeue
// lists, scancel cancels. It runs them through a Runner: on this machine
// (Local), or, for a cluster reached through its login node, over SSH.
package slurm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"orrery/batch"
)

// Runner runs a Slurm command with stdin as its standard input and
// returns its standard output; a failure's error carries its standard
// error.
type Runner func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

// CommandTimeout bounds each Slurm command: one whose controller does
// not answer retries for minutes.
const CommandTimeout = 30 * time.Second

// Local runs Slurm's commands on this machine, each within
// CommandTimeout.
func Local(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s: no answer within %v", name, CommandTimeout)
		}
		return nil, &CommandError{Name: name, Err: err, Stderr: errb.String()}
	}
	return out.Bytes(), nil
}

// CommandError is a Slurm command that failed, with what it said.
type CommandError struct {
	Name   string
	Err    error
	Stderr string
}

// Error is the command's own words: its first error line ("sbatch:
// error: invalid partition specified: nope"), or its error.
func (e *CommandError) Error() string {
	for _, l := range strings.Split(e.Stderr, "\n") {
		if l = strings.TrimSpace(l); strings.Contains(l, "error:") {
			return l
		}
	}
	if l := strings.TrimSpace(e.Stderr); l != "" {
		return e.Name + ": " + strings.SplitN(l, "\n", 2)[0]
	}
	if errors.Is(e.Err, exec.ErrNotFound) {
		return e.Name + ": not found: is Slurm installed where it runs?"
	}
	return e.Name + ": " + e.Err.Error()
}

func (e *CommandError) Unwrap() error { return e.Err }

// permanentWords are what Slurm says when asking again will not help.
var permanentWords = []string{
	"invalid partition", "invalid account", "invalid qos", "invalid user id",
	"invalid generic resource", "node count specification invalid",
	"requested node configuration is not available", "memory specification can not be satisfied",
	"requested time limit is invalid", "invalid feature specification", "unrecognized option",
	"invalid option", "batch job submission failed: access",
}

// Permanent reports whether asking again will not change the answer: a
// command that is not installed, or Slurm's refusal of the request
// itself (an unknown partition or account, a size no node has) rather
// than of the moment (a busy controller).
func (e *CommandError) Permanent() bool {
	if errors.Is(e.Err, exec.ErrNotFound) || errors.Is(e.Err, fs.ErrNotExist) {
		return true
	}
	low := strings.ToLower(e.Stderr)
	for _, w := range permanentWords {
		if strings.Contains(low, w) {
			return true
		}
	}
	return false
}

// System is a Slurm cluster.
type System struct{ run Runner }

// New returns the Slurm whose commands run goes through (Local for this
// machine's).
func New(run Runner) *System { return &System{run: run} }

var _ batch.System = (*System)(nil)

// Submit submits r with sbatch, its script on sbatch's standard input.
func (s *System) Submit(ctx context.Context, r batch.Request) (batch.JobID, error) {
	if r.Name == "" || strings.ContainsAny(r.Name, "|\n") {
		return "", fmt.Errorf("sbatch: a job name must be given, without | or newlines: %q", r.Name)
	}
	args := []string{"--parsable", "--job-name=" + r.Name, "--nodes=1", "--ntasks=1"}
	if r.Partition != "" {
		args = append(args, "--partition="+r.Partition)
	}
	if r.Account != "" {
		args = append(args, "--account="+r.Account)
	}
	if r.Time > 0 {
		args = append(args, "--time="+strconv.FormatInt(int64((r.Time+time.Minute-1)/time.Minute), 10))
	}
	if r.CPUs > 0 {
		args = append(args, "--cpus-per-task="+strconv.Itoa(r.CPUs))
	}
	if r.Memory > 0 {
		args = append(args, "--mem="+strconv.FormatInt((r.Memory+(1<<20)-1)>>20, 10)+"M")
	}
	output := r.Output
	if output == "" {
		output = "/dev/null"
	}
	args = append(args, "--output="+output)
	args = append(args, r.Extra...)
	out, err := s.run(ctx, r.Script, "sbatch", args...)
	if err != nil {
		return "", err
	}
	// --parsable: "ID" or "ID;CLUSTER".
	id := strings.TrimSpace(strings.SplitN(string(out), ";", 2)[0])
	if _, err := strconv.ParseUint(id, 10, 64); err != nil {
		return "", fmt.Errorf("sbatch: an answer that is no job ID: %q", strings.TrimSpace(string(out)))
	}
	return batch.JobID(id), nil
}

// Jobs lists the user's jobs whose names start with prefix, from squeue.
func (s *System) Jobs(ctx context.Context, prefix string) ([]batch.Job, error) {
	out, err := s.run(ctx, nil, "squeue", "--me", "--noheader", "--format=%i|%j|%T|%r")
	if err != nil {
		return nil, err
	}
	var jobs []batch.Job
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.SplitN(strings.TrimSpace(l), "|", 4)
		if len(f) != 4 || !strings.HasPrefix(f[1], prefix) {
			continue
		}
		j := batch.Job{ID: batch.JobID(f[0]), Name: f[1], State: stateOf(f[2]), Reason: f[3]}
		if j.Reason == "None" {
			j.Reason = ""
		}
		if j.State == batch.Pending && j.Reason == "" && f[2] != "PENDING" {
			j.Reason = f[2]
		}
		jobs = append(jobs, j)
	}
	return jobs, nil
}

// stateOf reads squeue's long state. A state it does not know counts as
// pending: a job the pilots would otherwise take for gone, and replace.
func stateOf(s string) batch.State {
	switch s {
	case "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED", "SIGNALING", "RESIZING", "STAGE_OUT":
		return batch.Running
	case "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY",
		"BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT":
		return batch.Ended
	default: // PENDING, CONFIGURING, REQUEUED, REQUEUE_HOLD, RESV_DEL_HOLD...
		return batch.Pending
	}
}

// Cancel cancels jobs with scancel; one that already ended is no error.
func (s *System) Cancel(ctx context.Context, ids ...batch.JobID) error {
	if len(ids) == 0 {
		return nil
	}
	args := make([]string, len(ids))
	for i, id := range ids {
		if _, err := strconv.ParseUint(string(id), 10, 64); err != nil {
			return fmt.Errorf("scancel: %q is no job ID", id)
		}
		args[i] = string(id)
	}
	_, err := s.run(ctx, nil, "scancel", args...)
	var ce *CommandError
	if errors.As(err, &ce) && strings.Contains(ce.Stderr, "Invalid job id specified") {
		return nil
	}
	return err
}
