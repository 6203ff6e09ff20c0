#!/usr/bin/env bash
# Benchmarks issue 15's "the page stays responsive on an experiment of
# 10^6 jobs": makes a store of WEBBIG_JOBS jobs (default 1000000)
# straight in SQLite, serves it with `orrery web`, opens the page in
# Debian's Chromium (chromedp) and prints how long each step a viewer
# takes needs: the first overview, the jobs table (a page, a state
# filter, a sort by wall time, a parameter filter, a node filter), a
# job, the whole timeline, the parameter space (and the page's slowest
# answer to a script while it is aggregated: whether the page stays
# responsive). Needs chromium (apt-get install chromium).
#
# Usage: bench/webbig.sh
set -euo pipefail
cd "$(dirname "$0")/.."
command -v chromium >/dev/null || { echo "bench/webbig.sh: needs chromium (apt-get install chromium)" >&2; exit 2; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
go test -tags bench -run 'BigPage$' -v -count=1 -timeout 20m ./bench/webbig >"$log" 2>&1
rc=$?
set -e
grep -Ev '^(=== RUN|PASS$|ok )' "$log" || true
exit "$rc"
