#!/usr/bin/env bash
# Benchmarks the live grid against the paper's Table 4 (issue 14, point
# 9), scaled to this machine: `orrery run --cluster grid.cluster` over
# four sites, each its own network namespace with its own sshd and a
# firewall that lets in only SSH (internal/sitetest), the root reaching
# each site's sshd through an emulated wide-area link: 5 ms one way and
# 50 Mb/s to the three Melbourne sites (Monash 1, Monash 2, VPAC), 150 ms
# and 10 Mb/s to the Hebrew University in Jerusalem, as the built-in
# scenario paper-table4 has them. Each site's nodes are control groups
# whose CPU quotas keep the paper's 10.4 : 21.8 : 6.3 : 40.0 GHz
# (GRID_CPUS, default 1.6 CPUs in all, leaving the rest of 2 CPUs to the
# root and the heads), a few nodes per site of at least 0.1 CPU, their
# speeds spread around the site's mean as the built-in spreads them.
#
# The jobs are the CPU burner of examples/cputest, staged to the nodes
# through the heads; their work is drawn by `orrery sim` itself from the
# built-in's distribution (lognormal, CV 0.1), scaled so that the bound
# is about GRID_MAKESPAN seconds. Each run (run k uses seed S+k-1, the
# same jobs for every policy, the policies taking turns) runs under
# --policy mec (2 processes per CPU, as the built-in) and --policy
# orrery, and is set against
#   - the lower bound: total work (each job's CPU time) / the total CPU
#     quota, or the longest job on the largest node;
#   - `orrery sim` on a scenario of the same sites, links and jobs with
#     each node's speed as the run measured it (its jobs' CPU over the
#     time it had one running).
# The live makespan runs from the first attempt's start on a node to the
# last one's end, as the heads record them.
#
# Prints every run, then per policy the makespan's mean ± S.D., the
# bound, the efficiency, the simulated makespan, live/sim, the share of
# their quotas the nodes got, and the efficiency against the capacity
# they got. Other work on the machine takes CPU from the nodes, which no
# scenario can know: run it on an idle machine (the table says when the
# nodes got less than 90% of their quotas).
#
# Targets: orrery >= 95% of the bound live; live within 10% of simulated
# for each policy. Exits 1 when a target is missed (the lines say
# MISSED), 2 when the machine cannot run it or the run itself failed.
#
# Usage: bench/grid.sh [--runs N] [--jobs N] [--cpus F] [--makespan S]
#                      [--policies mec,orrery] [--seed N] [--out DIR]
#   --runs N       runs per policy (GRID_RUNS, default 3)
#   --jobs N       jobs per run (GRID_JOBS, default 300)
#   --cpus F       the sites' CPU quotas in all (GRID_CPUS, default 1.6)
#   --makespan S   the bound aimed at, seconds (GRID_MAKESPAN, default 180)
#   --policies P   GRID_POLICIES, default mec,orrery
#   --seed N       seed of the first run (GRID_SEED, default 1)
#   --out DIR      keep every run's directory there: plan, cluster file,
#                  state, heads' directories, scenario (GRID_OUT)
# More knobs, as variables: GRID_MEC_PER_CPU (2), GRID_MAX_NODES (6 per
# site), GRID_MIN_SHARE (0.1), GRID_SPREAD (0.3), GRID_CV (0.1),
# GRID_NEAR_DELAY (5ms), GRID_FAR_DELAY (150ms), GRID_RUN_TIMEOUT (5 x
# makespan + 3 min). A quick check: bench/grid.sh --runs 1 --jobs 40 --makespan 30
set -euo pipefail

cd "$(dirname "$0")/.."

usage() { sed -n '/^# Usage:/,/^set -euo/{/^set/d; s/^# \{0,1\}//; p}' "$0" >&2; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
	case $1 in
	--runs) export GRID_RUNS=$2; shift 2 ;;
	--jobs) export GRID_JOBS=$2; shift 2 ;;
	--cpus) export GRID_CPUS=$2; shift 2 ;;
	--makespan) export GRID_MAKESPAN=$2; shift 2 ;;
	--policies) export GRID_POLICIES=$2; shift 2 ;;
	--seed) export GRID_SEED=$2; shift 2 ;;
	--out) mkdir -p "$2"; GRID_OUT=$(cd "$2" && pwd); export GRID_OUT; shift 2 ;;
	-h | --help) usage 0 ;;
	*) echo "grid.sh: unknown argument $1" >&2; usage ;;
	esac
done

unsupported() { echo "grid.sh: $*" >&2; exit 2; }
[ "$(id -u)" = 0 ] || unsupported "needs root: sites are network namespaces, nodes control groups"
for c in cc ip iptables nsenter /usr/sbin/sshd; do
	command -v "$c" >/dev/null || unsupported "needs $c"
done
[ "$(nproc)" -ge 2 ] || unsupported "needs 2 CPUs for nodes of ${GRID_CPUS:-1.6} CPUs and orrery itself; have $(nproc)"

# go test's own limit: every run at its longest, and 10 minutes more.
npol=$(echo "${GRID_POLICIES:-mec,orrery}" | tr ',' '\n' | grep -c .)
limit=$(awk -v r="${GRID_RUNS:-3}" -v p="$npol" -v m="${GRID_MAKESPAN:-180}" \
	'BEGIN { s = r * p * (5 * m + 180) + 600; printf "%ds", (s < 3600 ? 3600 : s) }')

log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "== go test -tags bench -run Table4 ./bench/grid ($(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg))"
set +e
go test -tags bench -run 'Table4$' -v -count=1 -timeout "$limit" ./bench/grid 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
if grep -q -- '--- SKIP' "$log"; then
	unsupported "the machine cannot run it (the test skipped; see above)"
fi
[ "$rc" = 0 ] && exit 0
grep -q '^MISSED' "$log" && exit 1
echo "grid.sh: the benchmark failed (go test exited $rc); see above" >&2
exit 2
