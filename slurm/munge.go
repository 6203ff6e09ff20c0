package slurm

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"

	"orrery/batch"
)

// Slurm's credentials are munge's: every Slurm cluster runs munged on its
// login and compute nodes with one shared key, so a credential made by
// `munge` in a batch job is checked by `unmunge` on the login node, where
// the head runs. munged gives each credential a lifetime (five minutes
// by default) and decodes it once: a credential shown a second time is
// refused as replayed.

var _ batch.Credentials = (*System)(nil)

// MaxCredential bounds a credential's length; munge's with a job ID as
// payload are under 200 bytes.
const MaxCredential = 4 << 10

// CredentialCommand makes a munge credential whose payload is the job's
// ID.
func (s *System) CredentialCommand() string { return `munge -s "$SLURM_JOB_ID"` }

// Verify decodes cred with unmunge: the user who made it and the job ID
// it carries.
func (s *System) Verify(ctx context.Context, cred []byte) (batch.Claim, error) {
	if len(cred) == 0 || len(cred) > MaxCredential {
		return batch.Claim{}, fmt.Errorf("a credential of %d bytes: want a munge credential", len(cred))
	}
	out, err := s.run(ctx, cred, "unmunge", "--numeric", "--keys=UID")
	if err != nil {
		var ce *CommandError
		var ee *exec.ExitError
		if errors.As(err, &ce) && errors.As(err, &ee) {
			// unmunge's status is munge's error code; it says some of
			// them on its standard error ("Failed to match armor
			// prefix"), and others (a replayed credential) only so.
			if why, ok := mungeErrors[ee.ExitCode()]; ok {
				return batch.Claim{}, fmt.Errorf("munge: %s", why)
			}
			if msg := strings.TrimSpace(strings.SplitN(strings.TrimSpace(ce.Stderr), "\n", 2)[0]); msg != "" {
				return batch.Claim{}, fmt.Errorf("munge: %s", strings.TrimPrefix(strings.TrimPrefix(msg, "unmunge: "), "Error: "))
			}
		}
		return batch.Claim{}, err
	}
	meta, payload, ok := strings.Cut(string(out), "\n\n")
	if !ok {
		return batch.Claim{}, fmt.Errorf("unmunge: an answer without a payload")
	}
	uid := -1
	for _, l := range strings.Split(meta, "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "UID" {
			if n, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && n >= 0 {
				uid = n
			}
		}
	}
	if uid < 0 {
		return batch.Claim{}, fmt.Errorf("unmunge: an answer without a user ID")
	}
	job := strings.TrimSpace(payload)
	if _, err := strconv.ParseUint(job, 10, 64); err != nil {
		return batch.Claim{}, fmt.Errorf("a credential that names no job (%q)", truncate(job, 40))
	}
	return batch.Claim{UID: uid, Job: batch.JobID(job)}, nil
}

// mungeErrors are munge's error codes (munge.h) that say what is wrong
// with a credential, as unmunge's exit status gives them.
var mungeErrors = map[int]string{
	8:  "Bad credential format",
	9:  "Unsupported credential version",
	10: "Invalid cipher type",
	11: "Invalid MAC type",
	12: "Invalid compression type",
	13: "Unrecognized security realm",
	14: "Invalid credential",
	15: "Expired credential",
	16: "Rewound credential (its clock is ahead of this one's)",
	17: "Replayed credential",
	18: "Unauthorized credential decode",
}

// truncate cuts s to at most n bytes.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
