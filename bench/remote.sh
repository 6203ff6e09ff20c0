#!/usr/bin/env bash
# Benchmarks the network path: the same 5,000 commands (`true`) run three
# ways in one run, best of 3 each (the three ways take turns, so a noisy
# machine weighs on all of them alike):
#
#   tls       `orrery run --nodes 0 --listen 127.0.0.1:0` and two
#             `orrery agent` processes (job limit 1 each) joined over TLS
#             on loopback with the join token;
#   embedded  `orrery run --job-limit 2` (one in-process node, as
#             bench/run.sh runs it);
#   xargs     `seq 5000 | xargs -P2 -n1 true`.
#
# Each orrery way gets a fresh state directory. For tls, the state
# directory's key material and the join token (`orrery token`, written to
# a 0600 file) are made before the clock starts; the clock runs from the
# start of `orrery run` to its exit, and the agents are started as soon as
# the root prints its listening line, so their start, enrolment and
# registration are measured.
#
# Prints seconds and jobs/s for each, and the throughput ratios tls/xargs
# and embedded/xargs. Targets: tls >= 0.8x xargs, embedded >= 0.85x
# xargs. Exits 1 when a target is missed (saying which).
#
# Usage: bench/remote.sh [JOBS]     (from anywhere in the repository)
#        REPEAT=N bench/remote.sh   (best of N, default 3)
set -euo pipefail

cd "$(dirname "$0")/.."
jobs=${1:-5000}
repeat=${REPEAT:-3}

work=$(mktemp -d)
# Every command measured runs in the background in a process group of
# its own (job control), and the script waits for it: a signal then
# interrupts the wait at once, and the trap ends each group this script
# started (xargs's children too) by its ID.
set -m
pids=() # the process groups started and not yet reaped
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -TERM -- "-$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
# reap PID: waits for a background process, forgets it (so the trap never
# signals a reused process ID) and sets rc to its exit status.
reap() {
	rc=0
	wait "$1" || rc=$?
	local p keep=()
	for p in "${pids[@]}"; do
		[ "$p" = "$1" ] || keep+=("$p")
	done
	pids=("${keep[@]}")
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$work/orrery" ./cmd/orrery
orrery=$work/orrery
printf 'parameter i integer range from 1 to %d\ntask main\n\texec true\nendtask\n' "$jobs" >"$work/true.pln"

# now: the time in seconds, without starting a process.
now() { s=$EPOCHREALTIME; }

fail_with() { # fail_with MESSAGE LOG...: says why and shows the logs
	echo "remote.sh: $1" >&2
	shift
	local f
	for f in "$@"; do
		[ -f "$f" ] && { echo "--- $f" >&2; tail -n 20 "$f" >&2; }
	done
	exit 2
}

# listening LOG: sets addr to the address in the root's listening line,
# when LOG has it (bash builtins only: no process per poll).
listening() {
	local line
	while IFS= read -r line; do
		case $line in
		*"listening for agents on "*)
			addr=${line##* }
			return 0
			;;
		esac
	done <"$1"
	return 1
}

# check_done OUT: the run's summary says every job is done.
check_done() {
	local line
	IFS= read -r line <"$1" || true
	case $line in
	"$jobs done, 0 failed in "*) ;;
	*) fail_with "orrery run said: $line" "$1" "${1%.out}.err" ;;
	esac
}

# tls_run N: one run with two agents over TLS; sets t to its seconds.
tls_run() {
	local dir=$work/tls$1 t0 t1 root a pid polls=0
	mkdir -p "$dir"
	(umask 077 && "$orrery" token --state-dir "$dir/state" >"$dir/token")
	: >"$dir/run.err" # there before the root opens it, for the first poll
	now
	t0=$s
	"$orrery" run --nodes 0 --state-dir "$dir/state" --listen 127.0.0.1:0 "$work/true.pln" \
		>"$dir/run.out" 2>"$dir/run.err" &
	root=$!
	pids+=("$root")
	addr=
	until listening "$dir/run.err"; do
		kill -0 "$root" 2>/dev/null || fail_with "orrery run exited before listening" "$dir/run.err"
		((++polls < 6000)) || fail_with "orrery run did not listen within 30 s" "$dir/run.err"
		sleep 0.005
	done
	local agents=()
	for a in 1 2; do
		"$orrery" agent --connect "$addr" --token-file "$dir/token" --name "a$a" --job-limit 1 \
			--work-dir "$dir/node$a" 2>"$dir/agent$a.err" &
		agents+=($!)
		pids+=($!)
	done
	reap "$root"
	now
	t1=$s
	[ "$rc" = 0 ] || fail_with "orrery run (tls) exited $rc" "$dir/run.out" "$dir/run.err" "$dir/agent1.err" "$dir/agent2.err"
	for pid in "${agents[@]}"; do
		reap "$pid"
		[ "$rc" = 0 ] || fail_with "an agent exited $rc" "$dir/agent1.err" "$dir/agent2.err"
	done
	check_done "$dir/run.out"
	t=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
	rm -rf "$dir"
}

# embedded_run N: one run of the embedded cluster; sets t.
embedded_run() {
	local dir=$work/emb$1 t0 t1
	mkdir -p "$dir"
	now
	t0=$s
	"$orrery" run --job-limit 2 --state-dir "$dir/state" "$work/true.pln" >"$dir/run.out" 2>"$dir/run.err" &
	pids+=($!)
	reap $!
	now
	t1=$s
	[ "$rc" = 0 ] || fail_with "orrery run (embedded) exited $rc" "$dir/run.out" "$dir/run.err"
	check_done "$dir/run.out"
	t=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
	rm -rf "$dir"
}

# xargs_run: sets t.
xargs_run() {
	local t0 t1
	now
	t0=$s
	{ seq "$jobs" | xargs -P2 -n1 true; } &
	pids+=($!)
	reap $!
	now
	t1=$s
	[ "$rc" = 0 ] || fail_with "xargs exited $rc"
	t=$(awk -v a="$t1" -v b="$t0" 'BEGIN { printf "%.3f", a - b }')
}

best() { # best CURRENT NEW: the smaller
	awk -v a="$1" -v b="$2" 'BEGIN { print (a == "" || b < a) ? b : a }'
}

echo "== $jobs jobs of 'true', 2 at a time (best of $repeat; $(nproc) CPUs; load $(cut -d' ' -f1-3 /proc/loadavg))"
b_tls= b_emb= b_xargs=
for r in $(seq "$repeat"); do
	tls_run "$r"
	printf '  round %d: tls %7.2f s' "$r" "$t"
	b_tls=$(best "$b_tls" "$t")
	embedded_run "$r"
	printf '   embedded %7.2f s' "$t"
	b_emb=$(best "$b_emb" "$t")
	xargs_run
	printf '   xargs %7.2f s\n' "$t"
	b_xargs=$(best "$b_xargs" "$t")
done

row() { awk -v n="$1" -v t="$2" -v j="$jobs" 'BEGIN { printf "%-34s %8.2f s %9.0f jobs/s\n", n, t, j / t }'; }
row "orrery, 2 agents over TLS" "$b_tls"
row "orrery, embedded (job limit 2)" "$b_emb"
row "xargs -P2" "$b_xargs"
r_tls=$(awk -v x="$b_xargs" -v t="$b_tls" 'BEGIN { printf "%.3f", x / t }')
r_emb=$(awk -v x="$b_xargs" -v t="$b_emb" 'BEGIN { printf "%.3f", x / t }')
printf 'tls / xargs throughput:      %.2fx (target >= 0.8)\n' "$r_tls"
printf 'embedded / xargs throughput: %.2fx (target >= 0.85)\n' "$r_emb"

status=0
awk -v r="$r_tls" 'BEGIN { exit !(r >= 0.8) }' || { echo "MISSED: tls agents vs xargs ($r_tls < 0.8)"; status=1; }
awk -v r="$r_emb" 'BEGIN { exit !(r >= 0.85) }' || { echo "MISSED: embedded vs xargs ($r_emb < 0.85)"; status=1; }
exit $status
