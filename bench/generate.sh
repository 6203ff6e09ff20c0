#!/usr/bin/env bash
# Benchmarks `orrery generate --format jsonl` on 5-parameter plans of 10^6
# and 10^7 jobs, and `orrery check` on a plan of 10^12 jobs.
#
# Prints, for each size, the wall time, jobs per second and peak RSS, with
# `seq` and an awk loop writing as many lines for comparison. Targets:
# at least 1,000,000 jobs/s and at most 50 MB peak RSS at both sizes, and
# check at once (under 0.5 s). Exits 1 when a target is missed.
#
# Usage: bench/generate.sh            (from anywhere in the repository)
set -euo pipefail

cd "$(dirname "$0")/.."
command -v /usr/bin/time >/dev/null || (apt-get update && apt-get install -y time)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

go build -o "$work/orrery" ./cmd/orrery
orrery=$work/orrery

# plan N LAST: five parameters, 10 x 10 x 10 x 10 x LAST jobs.
plan() {
	cat <<EOF
parameter solver text select anyof "cg" "gmres" "bicgstab" "minres" "qmr" "tfqmr" "lsqr" "cgs" "idr" "jacobi"
parameter tol float range from 0.1 to 1 step 0.1
parameter noise label "noise level" float random from 0 to 1 points 10
parameter weight float range from 1 to 2 points 10
parameter seed integer range from 1 to $1
task main
	exec ./solve --solver \${solver} --tol \${tol} --noise \${noise} --weight \${weight} --seed \${seed}
endtask
EOF
}
plan 100 >"$work/1e6.pln"
plan 1000 >"$work/1e7.pln"
cat >"$work/1e12.pln" <<'EOF'
parameter a integer range from 1 to 1000000
parameter b float range from 0 to 0.999999 step 0.000001
task main
	exec echo ${a} ${b}
endtask
EOF

# timed CMD...: runs CMD under /usr/bin/time -v (report in $work/time.txt)
# and sets s to its wall time in seconds, measured to the nanosecond
# (time -v itself rounds to 10 ms).
timed() {
	local start end
	start=$(now)
	/usr/bin/time -v -o "$work/time.txt" "$@"
	end=$(now)
	s=$(awk "BEGIN { printf \"%.6f\", $end - $start }")
}
# rss_mb FILE: the peak RSS /usr/bin/time -v reported, in MB.
rss_mb() { awk -F': ' '/Maximum resident set size/ { printf "%.1f", $2 / 1024 }' "$1"; }
now() { date +%s.%N; }

status=0
printf '%-28s %12s %9s %13s %12s\n' "command" "jobs" "wall s" "jobs/s" "peak RSS MB"
for size in 1e6 1e7; do
	jobs=$(awk "BEGIN { printf \"%d\", $size }")
	# The count first: the plan really has that many jobs, and generate
	# writes them all.
	lines=$("$orrery" generate --format jsonl --seed 1 "$work/$size.pln" | wc -l)
	if [ "$lines" -ne "$jobs" ]; then
		echo "generate wrote $lines jobs for the $size plan, want $jobs" >&2
		exit 1
	fi
	timed "$orrery" generate --format jsonl --seed 1 "$work/$size.pln" >/dev/null
	rate=$(awk "BEGIN { printf \"%.0f\", $jobs / $s }")
	rss=$(rss_mb "$work/time.txt")
	printf '%-28s %12d %9.3f %13s %12s\n' "orrery generate ($size)" "$jobs" "$s" "$rate" "$rss"
	if awk "BEGIN { exit !($rate < 1000000) }"; then
		echo "  MISSED: under 1,000,000 jobs/s" >&2
		status=1
	fi
	if awk "BEGIN { exit !($rss > 50) }"; then
		echo "  MISSED: peak RSS over 50 MB" >&2
		status=1
	fi

	# For context: seq writing as many short lines, and awk writing lines
	# of the same shape as orrery's.
	timed seq 1 "$jobs" >/dev/null
	printf '%-28s %12d %9.3f %13s %12s\n' "seq ($size)" "$jobs" "$s" \
		"$(awk "BEGIN { printf \"%.0f\", $jobs / $s }")" "$(rss_mb "$work/time.txt")"
	last=$((jobs / 10000))
	timed awk -v last="$last" 'BEGIN {
		split("cg gmres bicgstab minres qmr tfqmr lsqr cgs idr jacobi", sv, " ")
		n = 0
		for (a = 1; a <= 10; a++) for (b = 1; b <= 10; b++) for (c = 1; c <= 10; c++)
		for (d = 1; d <= 10; d++) for (e = 1; e <= last; e++)
			printf "{\"index\":%d,\"values\":{\"solver\":\"%s\",\"tol\":\"%g\",\"noise\":\"%.12g\",\"weight\":\"%.12g\",\"seed\":\"%d\"}}\n",
				++n, sv[a], b / 10, c / 11, 1 + (d - 1) / 9, e
	}' >/dev/null
	printf '%-28s %12d %9.3f %13s %12s\n' "awk JSON lines ($size)" "$jobs" "$s" \
		"$(awk "BEGIN { printf \"%.0f\", $jobs / $s }")" "$(rss_mb "$work/time.txt")"
done

# check on 10^12 jobs: counting is arithmetic, so it is at once.
out=$("$orrery" check "$work/1e12.pln")
if ! grep -q '^jobs: 1000000000000$' <<<"$out"; then
	echo "check on the 10^12 plan said:" >&2
	echo "$out" >&2
	exit 1
fi
timed "$orrery" check "$work/1e12.pln" >/dev/null
printf '%-28s %12s %9s %13s %12s\n' "orrery check (1e12)" 1000000000000 "$s" "-" "$(rss_mb "$work/time.txt")"
if awk "BEGIN { exit !($s > 0.5) }"; then
	echo "  MISSED: check took over 0.5 s" >&2
	status=1
fi
exit $status
