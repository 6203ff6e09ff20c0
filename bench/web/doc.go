// Package web holds the benchmark of issue 15's "live and light": a run
// watched by 50 viewers, each with its event stream open
// (/api/events) before its one agent joins, against the same run
// watched by none, in the same session, the two taking turns. It reports each run's throughput (jobs
// a second, from the first attempt's start to the last one's end as the
// joblog records them), the mean of each, and their ratio; the target is
// a ratio of at least 0.95 (50 viewers cost less than 5%).
//
// The test is behind the build tag bench, so `go test ./...` never runs
// it; bench/web.sh runs it:
//
//	go test -tags bench -run Viewers -v -count=1 ./bench/web
package web
