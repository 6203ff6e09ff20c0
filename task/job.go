package task

import (
	"strconv"
	"strings"

	"orrery/plan"
	"orrery/sweep"
)

// Environment variables every job sees besides its values.
const (
	EnvJobIndex = "ORRERY_JOBINDEX" // the job number
	EnvJobName  = "ORRERY_JOBNAME"  // the job name, as sweep.JobName
)

// Job is what a task knows about the job it runs for: its number and its
// values. The zero Job is "no job": the value of nodestart, rootstart and
// rootfinish, which run outside any job; then $jobindex and $jobname are
// unknown names (left as written) and the environment gets no
// ORRERY_JOBINDEX or ORRERY_JOBNAME.
type Job struct {
	Index  int64    // job number, from 1; 0 for no job
	Names  []string // parameter or run-file variable names
	Values []string // the job's value of each name, in the order of Names
}

// NewJob returns the Job of a sweep's job.
func NewJob(s *sweep.Sweep, j sweep.Job) Job {
	return Job{Index: j.Index, Names: s.Names, Values: j.Values}
}

// Lookup finds a value by name for plan.Template.Expand: the implicit
// jobindex and jobname first (when the job has a number), then the job's
// names. It agrees with sweep.Sweep.Lookup.
func (j Job) Lookup(name string) (string, bool) {
	if j.Index > 0 {
		switch name {
		case plan.NameJobIndex:
			return strconv.FormatInt(j.Index, 10), true
		case plan.NameJobName:
			return sweep.JobName(j.Index), true
		}
	}
	for i, n := range j.Names {
		if n == name && i < len(j.Values) {
			return j.Values[i], true
		}
	}
	return "", false
}

// Environ returns base with the job's variables set: NAME=value for each
// name, and ORRERY_JOBINDEX and ORRERY_JOBNAME when the job has a number.
// A job variable replaces an inherited one of the same name.
func (j Job) Environ(base []string) []string {
	var set []string
	for i, n := range j.Names {
		if i < len(j.Values) {
			set = append(set, n+"="+j.Values[i])
		}
	}
	if j.Index > 0 {
		set = append(set,
			EnvJobIndex+"="+strconv.FormatInt(j.Index, 10),
			EnvJobName+"="+sweep.JobName(j.Index))
	}
	replaced := map[string]bool{}
	for _, kv := range set {
		replaced[envKey(kv)] = true
	}
	env := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		if !replaced[envKey(kv)] {
			env = append(env, kv)
		}
	}
	return append(env, set...)
}

// envKey returns the name of a NAME=value entry.
func envKey(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// getenv returns the last value of name in env.
func getenv(env []string, name string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(env[i], "="); ok && k == name {
			return v
		}
	}
	return ""
}
