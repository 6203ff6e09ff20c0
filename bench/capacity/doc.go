// Package capacity holds the dispatcher's capacity benchmark: 1,000
// protocol-level agents in the test process, over real TLS connections to
// a real root port, that finish every job the moment they are given it,
// against a durable store. It measures what the root's side can carry
// (jobs per second and peak memory), not how fast processes start.
//
// Run it with
//
//	go test -run XXX -bench Dispatcher -benchtime 1x ./bench/capacity
//
// and tune it with CAPACITY_AGENTS (default 1000), CAPACITY_JOBS
// (default 100000) and CAPACITY_JOB_LIMIT (default 1). Targets: at least
// 10,000 jobs/s and a peak RSS of at most 200 MB; a target missed fails
// the benchmark with a "MISSED" line (go test exits 1), after the line
// that gives every figure. CAPACITY_CPUPROFILE=FILE profiles Run alone;
// CAPACITY_HEAPPROFILE=FILE writes a heap profile when half the jobs are
// done.
package capacity
