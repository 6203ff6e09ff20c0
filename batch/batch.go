// Package batch is what Orrery needs of a batch system (Slurm, and later
// PBS Pro or LSF) to turn its allocations into nodes: submit a job, see
// where its jobs stand, and cancel them. The pilots of a batch cluster
// speak to their batch system through System alone; each batch system
// is one small adapter (package slurm).
package batch

import (
	"context"
	"errors"
	"time"
)

// JobID is a batch system's name for a job.
type JobID string

// State is where a batch job stands.
type State string

// Batch job states, as a pilot needs them.
const (
	Pending State = "pending" // queued: waiting for an allocation
	Running State = "running" // allocated and running (or ending)
	Ended   State = "ended"   // no longer in the queue
)

// Job is one batch job of the user's, as the batch system sees it.
type Job struct {
	ID    JobID
	Name  string
	State State
	// Reason is the batch system's word on why a pending job waits
	// (Slurm's "Priority", "Resources", "PartitionTimeLimit"...), "" when
	// it says none.
	Reason string
}

// Request is a batch job to submit.
type Request struct {
	// Name is the job's name: it carries the experiment's identity, so
	// that one experiment finds its own jobs and never touches
	// another's. It must say nothing secret: every user of the cluster
	// can read it.
	Name string
	// Script is the batch script, given to the batch system on its
	// standard input: never on a command line, which every user sees.
	Script []byte
	// Partition and Account are the queue and the account to charge;
	// "" for the site's defaults.
	Partition, Account string
	// Time is the job's time limit (rounded up to whole minutes); 0 for
	// the partition's default.
	Time time.Duration
	// CPUs is how many CPUs the job asks for on its one node, Memory how
	// many bytes; 0 for the site's defaults.
	CPUs   int
	Memory int64
	// Output is where the batch system writes the job's own output; ""
	// for nowhere.
	Output string
	// Extra are arguments the site needs, passed as they are.
	Extra []string
}

// System is a batch system.
type System interface {
	// Submit submits a job and returns its ID. A refusal is an error in
	// the batch system's own words.
	Submit(ctx context.Context, r Request) (JobID, error)
	// Jobs lists the user's jobs whose names start with prefix. A job
	// that ended may be missing from the list.
	Jobs(ctx context.Context, prefix string) ([]Job, error)
	// Cancel cancels jobs; a job that already ended is no error.
	Cancel(ctx context.Context, ids ...JobID) error
}

// Permanent reports whether err is a refusal that asking again will not
// change (an unknown partition or account, a batch system that is not
// installed): an error of the chain says so with a Permanent() method
// that returns true.
func Permanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

// Credentials is how a batch job proves to the head that it is one of
// the head's own, with nothing secret passing through the batch system:
// the job makes a credential where it runs, the head checks it. A pilot
// that does not see the head's file system uses one to fetch what it
// needs from the head's port. Slurm's are munge's, which every Slurm
// cluster runs.
type Credentials interface {
	// CredentialCommand is a shell command, for a batch script, that
	// writes to its standard output a fresh credential naming the job
	// it runs in.
	CredentialCommand() string
	// Verify checks a credential made by CredentialCommand: who made it
	// and the job it names. It fails for a credential that is not
	// valid, has expired or was shown before.
	Verify(ctx context.Context, cred []byte) (Claim, error)
}

// Claim is what a verified credential says.
type Claim struct {
	UID int   // the user who made it
	Job JobID // the job it was made in
}
