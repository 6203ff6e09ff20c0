// Package grid holds the paper's Table 4 run live on this machine: four
// sites, each its own network namespace with its own sshd and firewall
// (package internal/sitetest), reached by `orrery run --cluster` over
// SSH through emulated wide-area links, their nodes control groups whose
// CPU quotas keep the paper's proportions (Monash 1, Monash 2, VPAC and
// the Hebrew University: 10.4 : 21.8 : 6.3 : 40.0 GHz), a few hundred
// CPU-burning jobs drawn as the built-in scenario paper-table4 draws its
// work (lognormal, CV 0.1), under `--policy mec` and `--policy orrery`.
// Each run is set against the lower bound and against `orrery sim` fed
// the node speeds the run measured.
//
// The test is behind the build tag bench, so `go test ./...` never runs
// it; bench/grid.sh runs it:
//
//	go test -tags bench -run Table4 -v -count=1 -timeout 60m ./bench/grid
//
// and tunes it with GRID_* variables (see bench/grid.sh). Targets:
// orrery at least 95% of the bound live, and each policy's live makespan
// within 10% of the simulated one; a target missed fails the test with a
// "MISSED" line, after the table that gives every figure.
package grid
