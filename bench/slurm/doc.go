// Package slurm holds the benchmark of issue 16, point 8: 200 jobs of
// 0.5 s (`sleep 0.5`) on this machine's Slurm (internal/slurmtest: one
// node with this machine's CPUs), configured as Slurm's High Throughput
// Computing Administration Guide suggests for one machine, run three
// ways in the same session:
//
//   - a Slurm job array of 200 tasks, each the same command, one CPU
//     each: wall time from sbatch to the last task's end (squeue polled
//     every 100 ms), after one warm-up job (a slurmctld that has just
//     started puts off its first scheduling by about 3 s);
//   - `orrery run --cluster FILE PLAN` on a cluster of Slurm pilots (one
//     per CPU, one CPU each): wall time of the whole command, the pilots'
//     submission and their leaving included;
//   - `orrery run --cluster FILE PLAN` on the embedded cluster with the
//     same CPUs (one node of one CPU per CPU): wall time of the command.
//
// It prints each wall time, the ratio array/pilots (target at least 3)
// and pilots/embedded (target at most 1.2), and the Slurm settings
// used, and fails when a target is missed. It needs root (Slurm's
// daemons run as root).
//
// The test is behind the build tag bench, so `go test ./...` never runs
// it; bench/slurm.sh runs it:
//
//	go test -tags bench -run Pilots -v -count=1 ./bench/slurm
package slurm
