//go:build bench

package web

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestViewers runs the same sweep watched by no viewer and by 50, taking
// turns, and compares their throughput.
func TestViewers(t *testing.T) {
	jobs := envInt(t, "WEB_JOBS", 3000)
	runs := envInt(t, "WEB_RUNS", 3)
	viewers := envInt(t, "WEB_VIEWERS", 50)
	base := t.TempDir()
	bin := filepath.Join(base, "orrery")
	root, _ := filepath.Abs("../..")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/orrery")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	rates := map[int][]float64{}
	for r := 0; r < runs; r++ {
		for _, n := range []int{0, viewers} {
			rate, got := runOnce(t, bin, filepath.Join(base, fmt.Sprintf("run%d-%d", r, n)), jobs, n)
			rates[n] = append(rates[n], rate)
			fmt.Printf("run %d, %2d viewers: %d jobs at %.1f jobs/s; the viewers got %d events\n", r+1, n, jobs, rate, got)
		}
	}
	m0, sd0 := meanSD(rates[0])
	m1, sd1 := meanSD(rates[viewers])
	ratio := m1 / m0
	fmt.Printf("\nno viewer: %.1f ± %.1f jobs/s; %d viewers: %.1f ± %.1f jobs/s; ratio %.3f (target >= 0.95)\n", m0, sd0, viewers, m1, sd1, ratio)
	if ratio < 0.95 {
		fmt.Printf("MISSED: %d viewers cost %.1f%% of the throughput\n", viewers, 100*(1-ratio))
		t.Errorf("MISSED: ratio %.3f", ratio)
	}
}

// runOnce runs jobs `true` jobs on one agent that joins the port once n
// viewers watch the run's event stream, and returns its throughput and
// how many events the viewers got in all.
func runOnce(t *testing.T, bin, dir string, jobs, n int) (float64, int64) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	plan := fmt.Sprintf("parameter x integer range from 1 to %d\ntask main\n\texec true\nendtask\n", jobs)
	if err := os.WriteFile(filepath.Join(dir, "p.pln"), []byte(plan), 0o644); err != nil {
		t.Fatal(err)
	}
	orrery := func(args ...string) string {
		c := exec.Command(bin, args...)
		c.Dir = dir
		out, err := c.Output()
		if err != nil {
			t.Fatalf("orrery %v: %v", args, err)
		}
		return strings.TrimSpace(string(out))
	}
	// The secrets first, so the viewers can start at once.
	link := ""
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// No node at first (--nodes 0): the run waits while the viewers
	// connect, so that they watch all of it; then one agent joins over
	// the port and runs every job.
	run := exec.CommandContext(ctx, bin, "run", "--nodes", "0", "--listen", "127.0.0.1:0", "p.pln")
	run.Dir = dir
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(dir, ".orrery", "port.addr")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run recorded no port address")
		}
		time.Sleep(5 * time.Millisecond)
	}
	var events atomic.Int64
	var wg sync.WaitGroup
	var connected sync.WaitGroup
	if n > 0 {
		link = orrery("token", "--viewer")
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM([]byte(orrery("token", "--ca")))
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, NextProtos: []string{"http/1.1"}}, MaxConnsPerHost: 0}
		client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := client.Get(link)
		if err != nil || len(resp.Cookies()) != 1 {
			t.Fatalf("sign in: %v", err)
		}
		resp.Body.Close()
		cookie := resp.Cookies()[0]
		host := strings.TrimPrefix(link, "https://")
		host = host[:strings.Index(host, "/")]
		connected.Add(n)
		for range n {
			wg.Go(func() {
				// As a browser's EventSource does, it tries again when a
				// connection is refused (the port lets few connections of
				// one host shake hands at once).
				var resp *http.Response
				for try := 0; ; try++ {
					req, _ := http.NewRequestWithContext(ctx, "GET", "https://"+host+"/api/events", nil)
					req.AddCookie(cookie)
					var err error
					if resp, err = client.Do(req); err == nil && resp.StatusCode == 200 {
						break
					}
					if resp != nil {
						resp.Body.Close()
					}
					if try == 100 || ctx.Err() != nil {
						connected.Done()
						t.Errorf("a viewer could not open its event stream: %v", err)
						return
					}
					time.Sleep(time.Duration(10+try*5) * time.Millisecond)
				}
				connected.Done()
				defer resp.Body.Close()
				sc := bufio.NewScanner(resp.Body)
				sc.Buffer(make([]byte, 64<<10), 1<<20)
				for sc.Scan() {
					if strings.HasPrefix(sc.Text(), "data: ") {
						events.Add(1)
					}
				}
			})
		}
	}
	connected.Wait()
	tokenFile := filepath.Join(dir, "join.token")
	if err := os.WriteFile(tokenFile, []byte(orrery("token")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr, err := os.ReadFile(filepath.Join(dir, ".orrery", "port.addr"))
	if err != nil {
		t.Fatal(err)
	}
	agent := exec.CommandContext(ctx, bin, "agent", "--connect", strings.TrimSpace(string(addr)), "--token-file", tokenFile,
		"--name", "a1", "--cpus", "2", "--work-dir", filepath.Join(dir, "work"))
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	if err := run.Wait(); err != nil {
		t.Fatalf("run: %v", err)
	}
	agent.Wait()
	cancel()
	wg.Wait()
	// Throughput from the joblog: first start to last end.
	first, last := math.Inf(1), math.Inf(-1)
	for _, l := range strings.Split(orrery("joblog"), "\n")[1:] {
		f := strings.Split(l, "\t")
		if len(f) < 4 {
			continue
		}
		s, _ := strconv.ParseFloat(f[2], 64)
		d, _ := strconv.ParseFloat(f[3], 64)
		first, last = math.Min(first, s), math.Max(last, s+d)
	}
	return float64(jobs) / (last - first), events.Load()
}

func envInt(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive integer", name, v)
		}
		return n
	}
	return def
}

func meanSD(xs []float64) (float64, float64) {
	sort.Float64s(xs)
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	var v float64
	for _, x := range xs {
		v += (x - m) * (x - m)
	}
	if len(xs) > 1 {
		v /= float64(len(xs) - 1)
	}
	return m, math.Sqrt(v)
}
