#!/usr/bin/env bash
# Benchmarks issue 15's "live and light": `orrery run --nodes 0 --listen`
# of WEB_JOBS `true` jobs (default 3000) on one `orrery agent` that joins
# over TLS once the viewers watch, watched by no viewer and by
# WEB_VIEWERS (default 50) event streams
# (/api/events), WEB_RUNS times each (default 3), the two taking turns;
# prints each run's throughput, the means and their ratio. Target: the
# ratio at least 0.95. Exits 1 when it is missed. Run it on an idle
# machine: other work changes both sides, but not always alike.
#
# Usage: bench/web.sh
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
go test -tags bench -run 'Viewers$' -v -count=1 -timeout 30m ./bench/web >"$log" 2>&1
rc=$?
set -e
grep -Ev '^(=== RUN|PASS$|ok )' "$log" || true
exit "$rc"
