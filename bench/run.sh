#!/usr/bin/env bash
# Benchmarks `orrery run` against xargs -P2 and GNU parallel -j2 on the
# same 5,000 commands (`true`), job limit 2, in one run, and reports the
# throughput ratios; then the peak RSS of `orrery run` on a 10^6-job plan
# of short jobs, stopped after RSS_SECONDS (default 120) seconds.
#
# Targets: Orrery's throughput >= 0.8x xargs's and >= 3x GNU parallel's;
# peak RSS <= 150 MB. Exits 1 when a target is missed.
#
# Usage: bench/run.sh [JOBS]        (from anywhere in the repository)
set -euo pipefail

cd "$(dirname "$0")/.."
jobs=${1:-5000}
rss_seconds=${RSS_SECONDS:-120}
need=()
command -v parallel >/dev/null || need+=(parallel)
command -v bc >/dev/null || need+=(bc)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/orrery" ./cmd/orrery
orrery=$work/orrery

printf 'parameter i integer range from 1 to %d\ntask main\n\texec true\nendtask\n' "$jobs" >"$work/true.pln"

seconds() { # seconds CMD...: wall seconds of a command, output discarded
	local t0 t1
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>&1
	t1=$(date +%s.%N)
	echo "$t1 - $t0" | bc -l
}

best() { # best N CMD...: the fastest of N runs
	local n=$1 b="" s
	shift
	for _ in $(seq "$n"); do
		s=$(seconds "$@")
		if [ -z "$b" ] || [ "$(echo "$s < $b" | bc -l)" = 1 ]; then b=$s; fi
	done
	echo "$b"
}

orrery_run() {
	rm -rf "$work/.orrery"
	"$orrery" run --job-limit 2 "$work/true.pln"
}
xargs_run() { seq "$jobs" | xargs -P2 -n1 true; }
parallel_run() { seq "$jobs" | parallel -j2 --will-cite true; }
export -f xargs_run parallel_run orrery_run
export jobs work orrery

echo "== $jobs jobs of 'true', job limit 2 (best of 3)"
t_orrery=$(best 3 bash -c orrery_run)
t_xargs=$(best 3 bash -c xargs_run)
t_parallel=$(best 1 bash -c parallel_run)
rate() { echo "$jobs / $1" | bc -l; }
printf '%-10s %8.2f s %9.0f jobs/s\n' orrery "$t_orrery" "$(rate "$t_orrery")" xargs "$t_xargs" "$(rate "$t_xargs")" parallel "$t_parallel" "$(rate "$t_parallel")"
vs_xargs=$(echo "$t_xargs / $t_orrery" | bc -l)
vs_parallel=$(echo "$t_parallel / $t_orrery" | bc -l)
printf 'orrery / xargs throughput:    %.2fx (target >= 0.8)\n' "$vs_xargs"
printf 'orrery / parallel throughput: %.2fx (target >= 3)\n' "$vs_parallel"

echo "== peak RSS of orrery run on a 10^6-job plan, stopped after ${rss_seconds}s"
printf 'parameter i integer range from 1 to 1000000\ntask main\n\texec true\nendtask\n' >"$work/million.pln"
rm -rf "$work/.orrery"
/usr/bin/time -v -o "$work/time.txt" timeout -s INT "$rss_seconds" "$orrery" run --job-limit 2 "$work/million.pln" >/dev/null 2>&1 || true
rss_kb=$(awk -F: '/Maximum resident set size/ {gsub(/ /, "", $2); print $2}' "$work/time.txt")
done_jobs=$("$orrery" status --json --state-dir "$work/.orrery" | awk -F': ' '/"done"/ {gsub(/,/, "", $2); print $2}')
printf 'peak RSS %.1f MB after %s jobs (target <= 150 MB)\n' "$(echo "$rss_kb / 1024" | bc -l)" "$done_jobs"

fail=0
[ "$(echo "$vs_xargs >= 0.8" | bc -l)" = 1 ] || { echo "MISSED: throughput vs xargs"; fail=1; }
[ "$(echo "$vs_parallel >= 3" | bc -l)" = 1 ] || { echo "MISSED: throughput vs parallel"; fail=1; }
[ "$rss_kb" -le $((150 * 1024)) ] || { echo "MISSED: peak RSS"; fail=1; }
exit $fail
