package clusterfile

import (
	"strings"
	"testing"
)

// TestSbatchCannotUndoPilots: sbatch takes unambiguous prefixes of
// its long options (getopt_long) and clustered short options; extra
// arguments come after Orrery's own on sbatch's command line, so the
// last wins. Each of these would rename the pilots (squeue no longer
// finds them: the head submits without bound and never cancels them),
// send them to another cluster (squeue --me and scancel, without -M,
// never see them), or move their output out of the head's 0700
// directory. The file must refuse them.
func TestSbatchCannotUndoPilots(t *testing.T) {
	for _, args := range []string{
		"--job=other", "--job-n=other", "--out=/tmp/pilot.out", "--outp=/tmp/pilot.out", "--err=/tmp/e",
		"--clusters=other", "-Mother", "-vJother", "-vo/tmp/x",
	} {
		in := "cluster x slurm sbatch \"" + args + "\"\n"
		if _, err := Parse("c", strings.NewReader(in)); err == nil {
			t.Errorf("sbatch %q is accepted", args)
		}
	}
}
