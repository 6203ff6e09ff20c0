//go:build bench

// Package webbig measures the page of a million-job experiment in a
// real browser (bench/webbig.sh).
package webbig

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"orrery/internal/bigstore"
)

// TestBigPage serves a store of WEBBIG_JOBS jobs (default a million)
// with `orrery web`, opens its page in Debian's Chromium, and times what
// a viewer does: the first overview, each view's first data, a filter, a
// sort, a job, the parameter space; and, while the parameter space is
// aggregated, how long the page takes to answer a script (whether it
// stays responsive). It prints the times; it checks only that each
// view's data came.
func TestBigPage(t *testing.T) {
	n := int64(1_000_000)
	if s := os.Getenv("WEBBIG_JOBS"); s != "" {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v < 1000 {
			t.Fatalf("WEBBIG_JOBS=%q: a number of at least 1000", s)
		}
		n = v
	}
	base := t.TempDir()
	bin := filepath.Join(base, "orrery")
	root, _ := filepath.Abs("../..")
	build := exec.Command("go", "build", "-o", bin, "./cmd/orrery")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	state := filepath.Join(base, ".orrery")
	start := time.Now()
	_, failed, err := bigstore.Make(context.Background(), state, n)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("store of %d jobs (%d failed) made in %v\n", n, failed, time.Since(start).Round(time.Millisecond))

	web := exec.Command(bin, "web", "--state-dir", state, "--listen", "127.0.0.1:0")
	out, err := web.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	web.Stderr = os.Stderr
	if err := web.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { web.Process.Kill(); web.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("orrery web said nothing: %v", err)
	}
	link := regexp.MustCompile(`https://\S+`).FindString(line)
	if link == "" {
		t.Fatalf("no link in %q", line)
	}
	host := strings.TrimPrefix(link, "https://")
	host = host[:strings.Index(host, "/")]

	// Chromium trusts exactly the page's key (its SPKI hash), nothing
	// wider: a benchmark need not import the CA as the tests do.
	conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(conn.ConnectionState().PeerCertificates[0].RawSubjectPublicKeyInfo)
	conn.Close()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath("/usr/bin/chromium"), chromedp.NoSandbox,
		chromedp.Flag("ignore-certificate-errors-spki-list", base64.StdEncoding.EncodeToString(spki[:])),
		chromedp.WindowSize(1400, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancel()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancel = context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()

	// wait waits for an expression to be true, prints how long that
	// took and returns it.
	wait := func(what, cond string) time.Duration {
		t.Helper()
		start := time.Now()
		for {
			if ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](cond)); err == nil && ok {
				d := time.Since(start)
				fmt.Printf("%-46s %8.0f ms\n", what, float64(d)/float64(time.Millisecond))
				return d
			}
			if ctx.Err() != nil {
				t.Fatalf("%s: never (%s)", what, cond)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	loads := func(view string) int {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('view-`+view+`').dataset.loaded || '0'`))
		k, _ := strconv.Atoi(v)
		return k
	}
	show := func(what, hash, view string) {
		t.Helper()
		before := loads(view)
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = `+strconv.Quote(hash))); err != nil {
			t.Fatal(err)
		}
		wait(what, fmt.Sprintf(`(+(document.getElementById('view-%s').dataset.loaded || 0)) > %d`, view, before))
	}

	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	if err := chromedp.Do(ctx, chromedp.Navigate(link)); err != nil {
		t.Fatal(err)
	}
	wait("sign in to the first overview", `document.body && document.body.dataset.ready === '1'`)
	show("jobs: the first page", "#jobs", "jobs")
	show("jobs: failed only", "#jobs?state=failed", "jobs")
	show("jobs: by wall time, longest first", "#jobs?sort=wall&order=desc", "jobs")
	show("jobs: x = 12 (a parameter's value)", "#jobs?p.x=12", "jobs")
	show("jobs: on node7, by wall time", "#jobs?node=node7&sort=wall", "jobs")
	before := func() string {
		v, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById('job-panel').dataset.loaded || '0'`))
		return v
	}()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = '#jobs?job=123457'`)); err != nil {
		t.Fatal(err)
	}
	wait("a job opened", `(document.getElementById('job-panel').dataset.loaded || '0') !== `+strconv.Quote(before))
	show("timeline: the whole experiment", "#timeline", "timeline")

	// The parameter space: while it is aggregated, time a script's
	// answer (the page's own thread) every 100 ms.
	spaceBefore := loads("space")
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](`location.hash = '#space?x=x&y=y'`)); err != nil {
		t.Fatal(err)
	}
	spaceStart := time.Now()
	var worst time.Duration
	for loads("space") <= spaceBefore {
		s := time.Now()
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[int](`1+1`)); err != nil {
			t.Fatal(err)
		}
		worst = max(worst, time.Since(s))
		if ctx.Err() != nil {
			t.Fatal("the parameter space never came")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("%-46s %8.0f ms\n", "parameter space x by y (aggregated)", float64(time.Since(spaceStart))/float64(time.Millisecond))
	fmt.Printf("%-46s %8.0f ms\n", "  the page's slowest answer to a script meanwhile", float64(worst)/float64(time.Millisecond))
	show("parameter space y by x (aggregated)", "#space?x=y&y=x", "space")
	show("parameter space x by y again (cached)", "#space?x=x&y=y", "space")
	fmt.Printf("%-46s %8.0f ms\n", "all of it", float64(time.Since(start))/float64(time.Millisecond))
}
