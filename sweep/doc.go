// Package sweep generates the jobs of a checked plan lazily: each
// parameter's values are a Domain computed on demand, the jobs are the
// cross product of the parameters (last varying fastest, zip groups in
// lockstep, constraints skipping combinations), and an Iterator holds one
// job at a time. It also writes jobs as JSON Lines and as compiled run
// files.
package sweep
