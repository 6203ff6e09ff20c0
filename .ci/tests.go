//go:build ignore

// Tests reads `go test -json` for .ci/run, prints what `go test` would
// (the failures' output and a line per package) and keeps a ledger of
// every top-level test's outcome, so that .ci/run can check that its
// several `go test` commands ran every test exactly once.
//
//	go test -json PKG... | go run .ci/tests.go report LEDGER
//	go run .ci/tests.go check LEDGER PKG...
//
// report appends to LEDGER and exits 1 when a test or a build failed.
// check exits 1 when a test ran (passed or failed) more than once, when a
// test skipped itself because of the race detector ("without -race" in
// its skip message) and did not run in another command, or when one of
// the packages named never reported; it prints the skipped tests.
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Action     string
	Package    string
	ImportPath string // build events
	Test       string
	Output     string
	Elapsed    float64
}

func main() {
	if len(os.Args) < 3 || (os.Args[1] != "report" && os.Args[1] != "check") {
		fmt.Fprintln(os.Stderr, "usage: go run .ci/tests.go report LEDGER < go-test-json | check LEDGER PKG...")
		os.Exit(2)
	}
	var err error
	ok := true
	if os.Args[1] == "report" {
		ok, err = report(os.Stdin, os.Stdout, os.Args[2])
	} else {
		ok, err = check(os.Stdout, os.Args[2], os.Args[3:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tests:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// report prints the events of r as `go test` would without -v and
// appends one ledger line per top-level test: package, test, outcome
// (pass, fail, skip or race-skip) and the skip message.
func report(r io.Reader, w io.Writer, ledger string) (bool, error) {
	f, err := os.OpenFile(ledger, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return false, err
	}
	defer f.Close()
	ok := true
	output := map[[2]string][]string{} // package, test: its output lines
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			// Not an event (go test prints some errors as text).
			fmt.Fprintln(w, sc.Text())
			continue
		}
		key := [2]string{e.Package, e.Test}
		switch e.Action {
		case "build-output":
			fmt.Fprint(w, e.Output)
		case "build-fail":
			ok = false
		case "output":
			if e.Test == "" {
				// The package's own lines: ok/FAIL with its time, panics.
				if o := strings.TrimSpace(e.Output); o != "PASS" && o != "FAIL" && !strings.HasPrefix(o, "=== ") {
					fmt.Fprint(w, e.Output)
				}
				continue
			}
			output[key] = append(output[key], e.Output)
		case "pass", "fail", "skip":
			if e.Action == "fail" {
				ok = false
				if e.Test != "" {
					fmt.Fprint(w, strings.Join(output[key], ""))
				}
			}
			if e.Test == "" {
				if e.Action == "skip" { // no test files
					fmt.Fprintf(f, "%s\t-\tnone\t\n", e.Package)
				} else {
					fmt.Fprintf(f, "%s\t-\tpackage\t\n", e.Package)
				}
				continue
			}
			if !strings.Contains(e.Test, "/") {
				outcome, why := e.Action, ""
				if e.Action == "skip" {
					why = skipMessage(output[key])
					if strings.Contains(why, "without -race") {
						outcome = "race-skip"
					}
				}
				fmt.Fprintf(f, "%s\t%s\t%s\t%s\n", e.Package, e.Test, outcome, why)
			}
			delete(output, key)
		}
	}
	return ok, sc.Err()
}

// skipMessage is the message of a skipped test: the last line of its
// output before the "--- SKIP" line, without the file:line prefix.
func skipMessage(lines []string) string {
	var msg string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- ") {
			continue
		}
		if _, after, found := strings.Cut(l, ": "); found && strings.Contains(l[:len(l)-len(after)], ".go:") {
			l = after
		}
		msg = l
	}
	return msg
}

// check reads the ledger and says whether every test ran exactly once.
func check(w io.Writer, ledger string, packages []string) (bool, error) {
	b, err := os.ReadFile(ledger)
	if err != nil {
		return false, err
	}
	type test struct{ pkg, name string }
	runs := map[test]int{}
	raceSkipped := map[test]bool{}
	skipped := map[test]string{}
	seen := map[string]bool{}
	passed, failed := 0, 0
	var order []test
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSuffix(line, "\n"), "\t", 4)
		if len(f) != 4 {
			return false, fmt.Errorf("%s: bad line %q", ledger, line)
		}
		seen[f[0]] = true
		if f[1] == "-" {
			continue
		}
		k := test{f[0], f[1]}
		if _, ok := runs[k]; !ok {
			order = append(order, k)
			runs[k] = 0
		}
		switch f[2] {
		case "pass", "fail":
			runs[k]++
			if f[2] == "pass" {
				passed++
			} else {
				failed++
			}
		case "race-skip":
			raceSkipped[k] = true
		case "skip":
			skipped[k] = f[3]
		}
	}
	ok := true
	for _, p := range packages {
		if !seen[p] {
			fmt.Fprintf(w, "tests: package %s did not run\n", p)
			ok = false
		}
	}
	total, ran := 0, 0
	for _, k := range order {
		total++
		switch n := runs[k]; {
		case n > 1:
			fmt.Fprintf(w, "tests: %s %s ran %d times\n", k.pkg, k.name, n)
			ok = false
		case n == 1:
			ran++
		case raceSkipped[k]:
			fmt.Fprintf(w, "tests: %s %s skipped itself under -race and ran nowhere else\n", k.pkg, k.name)
			ok = false
		}
	}
	var skips []string
	for _, k := range order {
		if runs[k] == 0 && !raceSkipped[k] {
			skips = append(skips, fmt.Sprintf("  %s %s: %s", k.pkg, k.name, skipped[k]))
		}
	}
	slices.Sort(skips)
	fmt.Fprintf(w, "tests: %d tests in %d packages; %d ran once each, %d skipped:\n", total, len(packages), ran, len(skips))
	for _, s := range skips {
		fmt.Fprintln(w, s)
	}
	// The plain closing line that any reader of test output knows.
	fmt.Fprintf(w, "tests: %d passed, %d failed, %d skipped\n", passed, failed, len(skips))
	return ok, nil
}
