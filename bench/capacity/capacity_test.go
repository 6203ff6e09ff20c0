package capacity

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"orrery/dispatch"
	"orrery/pki"
	"orrery/plan"
	"orrery/port"
	"orrery/protocol"
	"orrery/sched"
	"orrery/store"
	"orrery/sweep"
	"orrery/task"
)

// Targets from the issue.
const (
	targetRate = 10_000 // jobs/s
	targetRSS  = 200    // MB
)

// BenchmarkDispatcher runs CAPACITY_JOBS (10^5) jobs of `exec true` on
// CAPACITY_AGENTS (1,000) fake agents, each dialling the root's TLS port
// from this process and answering every start at once with a successful
// end. Every iteration is a new state directory, port and set of agents.
//
// Measured (the benchmark's time and jobs/s): from the start of
// Dispatcher.Run, when every agent has enrolled and sent its register
// (the dispatcher has not handled those yet: admitting the 1,000 nodes is
// measured), to Run's return, after the last job was recorded in the
// store. Enrolment and the TLS handshakes are setup, reported apart as
// setup-s. Memory: peak-RSS-MB is the whole test process's VmHWM (root
// and agents, and the setup), run-RSS-MB the peak during Run alone
// (VmHWM reset through /proc/self/clear_refs before Run), heap-peak-MB
// the most heap held by objects (live, or dead and not yet swept),
// sampled every 100 ms during Run; go-sys-MB is MemStats.Sys at the end.
func BenchmarkDispatcher(b *testing.B) {
	agents := envInt(b, "CAPACITY_AGENTS", 1000)
	jobs := envInt(b, "CAPACITY_JOBS", 100_000)
	limit := envInt(b, "CAPACITY_JOB_LIMIT", 1)
	policy := os.Getenv("CAPACITY_POLICY")
	if policy == "" {
		policy = "orrery"
	}
	pol, err := sched.PolicyByName(policy)
	if err != nil {
		b.Fatal(err)
	}
	raiseFileLimit(b, 2*agents+256)
	b.ReportAllocs()
	for range b.N {
		b.StopTimer()
		r := setup(b, agents, jobs, limit, pol)
		b.StartTimer()
		r.run(b)
		b.StopTimer()
		r.close(b)
	}
}

// rig is one benchmark iteration's root, port and agents.
type rig struct {
	jobs, agents int
	limit        int
	dir          string
	st           *store.Store
	exp          *store.Experiment
	d            *dispatch.Dispatcher
	pt           *port.Port
	stopPort     context.CancelFunc
	portDone     chan struct{}
	fakes        []*fakeAgent
	agentsDone   sync.WaitGroup
	welcomed     atomic.Int64
	allWelcomed  atomic.Int64 // UnixNano when the last agent was welcomed
	setup        time.Duration
	heapWritten  bool
}

func setup(b *testing.B, agents, jobs, limit int, pol sched.Policy) *rig {
	ctx := context.Background()
	start := time.Now()
	r := &rig{jobs: jobs, agents: agents, limit: limit, dir: b.TempDir()}
	root := filepath.Join(r.dir, "root")
	stateDir := filepath.Join(root, ".orrery")
	if err := os.MkdirAll(root, 0o755); err != nil {
		b.Fatal(err)
	}
	src := fmt.Sprintf("parameter i integer range from 1 to %d\ntask main\n\texec true\nendtask\n", jobs)
	planPath := filepath.Join(root, "capacity.pln")
	if err := os.WriteFile(planPath, []byte(src), 0o644); err != nil {
		b.Fatal(err)
	}
	p, err := plan.Parse(planPath, []byte(src), plan.Options{})
	if err != nil {
		b.Fatal(err)
	}
	sw, err := sweep.New(p, sweep.Options{Root: root, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	if r.st, err = store.Open(ctx, stateDir); err != nil {
		b.Fatal(err)
	}
	r.exp = &store.Experiment{PlanPath: planPath, PlanText: p.Source, Dialect: p.Dialect.String(), Seed: 1, Names: sw.Names}
	if err := r.st.Create(ctx, r.exp); err != nil {
		b.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	r.d = dispatch.New(dispatch.Config{Plan: p, Sweep: sw, Store: r.st, Experiment: r.exp, Root: root,
		Policy: pol, Heartbeat: time.Second, Log: log, Progress: r.progress})
	auth, err := pki.Open(stateDir)
	if err != nil {
		b.Fatal(err)
	}
	r.pt, err = port.Listen(port.Config{Addr: "127.0.0.1:0", Authority: auth, Dispatcher: r.d,
		Root: task.ConfinedRoot{Dir: root, TempDir: r.d.IncomingDir()}, Log: log,
		MaxConns: agents + 100, MaxPending: agents + 100, MaxPendingPerHost: agents + 100, // every agent is on 127.0.0.1
		HelloTimeout: time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	portCtx, stopPort := context.WithCancel(ctx)
	r.stopPort, r.portDone = stopPort, make(chan struct{})
	go func() {
		defer close(r.portDone)
		r.pt.Run(portCtx)
	}()
	text, err := auth.Token()
	if err != nil {
		b.Fatal(err)
	}
	tok, err := pki.ParseToken(text)
	if err != nil {
		b.Fatal(err)
	}

	// Enrol and register every agent, 32 at a time (enrolment writes
	// the nodes file, so it goes one by one on the root anyway).
	r.fakes = make([]*fakeAgent, agents)
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	for i := range agents {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c := &port.Client{Addr: r.pt.Addr().String(), Token: tok, Name: fmt.Sprintf("a%d", i), Timeout: time.Minute}
			conn, err := c.Dial(ctx)
			if err != nil {
				errs <- fmt.Errorf("agent a%d: %w", i, err)
				return
			}
			conn.SetSendTimeout(10 * time.Second)
			a := &fakeAgent{r: r, conn: conn}
			if err := conn.Send(&protocol.Msg{Type: protocol.TypeRegister, Register: &protocol.Register{
				Version: protocol.Version, Name: c.Name, CPUs: 1, Memory: 1 << 30, Speed: 1, JobLimit: limit}}); err != nil {
				errs <- fmt.Errorf("agent a%d: register: %w", i, err)
				return
			}
			r.fakes[i] = a
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	for _, a := range r.fakes {
		r.agentsDone.Add(1)
		go func() {
			defer r.agentsDone.Done()
			a.serve()
		}()
	}
	r.setup = time.Since(start)
	return r
}

// run runs the experiment and reports the figures.
func (r *rig) run(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	runtime.GC()
	clearPeakRSS()
	stopSampling := sampleHeap()
	if f := os.Getenv("CAPACITY_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			b.Fatal(err)
		}
	}
	cpu0 := cpuTime()
	start := time.Now()
	sum, err := r.d.Run(ctx)
	wall := time.Since(start)
	cpu := cpuTime() - cpu0
	if os.Getenv("CAPACITY_CPUPROFILE") != "" {
		pprof.StopCPUProfile()
	}
	runRSS := procStatusKB("VmHWM")
	peakHeap := stopSampling()
	if err != nil {
		b.Fatalf("run: %v", err)
	}
	b.StopTimer()
	counts, err := r.st.Counts(context.Background(), r.exp.ID)
	if err != nil {
		b.Fatal(err)
	}
	if counts[store.Done] != int64(r.jobs) || len(counts) != 1 {
		b.Fatalf("the store counts %v, want %d done and nothing else", counts, r.jobs)
	}
	if sum.Done != int64(r.jobs) {
		b.Fatalf("Run's summary: %d done, want %d", sum.Done, r.jobs)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rate := float64(r.jobs) / wall.Seconds()
	joined := time.Unix(0, r.allWelcomed.Load()).Sub(start)
	hwm := procStatusKB("VmHWM")
	b.ReportMetric(rate, "jobs/s")
	b.ReportMetric(wall.Seconds(), "run-s")
	b.ReportMetric(joined.Seconds(), "join-s")
	b.ReportMetric(r.setup.Seconds(), "setup-s")
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpus-used")
	b.ReportMetric(float64(cpu.Microseconds())/float64(r.jobs), "cpu-µs/job")
	b.ReportMetric(float64(runRSS)/1024, "run-RSS-MB")
	b.ReportMetric(float64(hwm)/1024, "peak-RSS-MB")
	b.ReportMetric(float64(peakHeap)/(1<<20), "heap-peak-MB")
	b.ReportMetric(float64(ms.Sys)/(1<<20), "go-sys-MB")
	b.Logf("%d agents (job limit %d), %d jobs, GOMAXPROCS %d: setup (enrol + register) %.2f s; "+
		"Run %.2f s = %.0f jobs/s (all nodes welcomed %.2f s after Run began; %.0f jobs/s after that); "+
		"process CPU during Run %.2f s (%.2f CPUs busy, %.1f µs per job: %.0f jobs/s if %d CPUs were all ours); "+
		"peak RSS %.1f MB for the whole process, root and agents (%.1f MB during Run); heap objects peak %.1f MB; "+
		"MemStats: Sys %.1f MB, HeapSys %.1f MB, StackSys %.1f MB, %d goroutines, NumGC %d",
		r.agents, r.limit, r.jobs, runtime.GOMAXPROCS(0), r.setup.Seconds(),
		wall.Seconds(), rate, joined.Seconds(), float64(r.jobs)/(wall-joined).Seconds(),
		cpu.Seconds(), cpu.Seconds()/wall.Seconds(), float64(cpu.Microseconds())/float64(r.jobs),
		float64(runtime.NumCPU())*float64(r.jobs)/cpu.Seconds(), runtime.NumCPU(),
		float64(hwm)/1024, float64(runRSS)/1024, float64(peakHeap)/(1<<20),
		float64(ms.Sys)/(1<<20), float64(ms.HeapSys)/(1<<20), float64(ms.StackSys)/(1<<20),
		runtime.NumGoroutine(), ms.NumGC)
	if rate < targetRate {
		b.Errorf("MISSED: %.0f jobs/s < %d", rate, targetRate)
	}
	if hwm > targetRSS*1024 {
		b.Errorf("MISSED: peak RSS %.1f MB > %d MB", float64(hwm)/1024, targetRSS)
	}
}

// progress writes a heap profile to $CAPACITY_HEAPPROFILE once half the
// jobs are done, when memory is at its working level.
func (r *rig) progress(p dispatch.Progress) {
	f := os.Getenv("CAPACITY_HEAPPROFILE")
	if f == "" || r.heapWritten || p.Done < int64(r.jobs/2) {
		return
	}
	r.heapWritten = true
	if out, err := os.Create(f); err == nil {
		runtime.GC()
		pprof.Lookup("heap").WriteTo(out, 0)
		out.Close()
	}
}

func (r *rig) close(b *testing.B) {
	r.d.Close()
	r.agentsDone.Wait()
	r.stopPort()
	<-r.portDone
	if err := r.st.Close(); err != nil {
		b.Error(err)
	}
}

// fakeAgent is a node agent reduced to the protocol: it finishes every
// attempt the moment it is given it, and sends a heartbeat every
// heartbeat interval.
type fakeAgent struct {
	r    *rig
	conn *protocol.Conn
}

// serve answers the root until it says shutdown or the connection ends.
func (a *fakeAgent) serve() {
	defer a.conn.Close()
	done := make(chan struct{})
	defer close(done)
	zero := 0
	for {
		m, err := a.conn.Recv()
		if err != nil {
			return
		}
		switch m.Type {
		case protocol.TypeWelcome:
			if a.r.welcomed.Add(1) == int64(a.r.agents) {
				a.r.allWelcomed.Store(time.Now().UnixNano())
			}
			go a.beat(m.Welcome.Heartbeat, done)
		case protocol.TypeStart:
			err := a.conn.Send(&protocol.Msg{Type: protocol.TypeEvent, Event: &protocol.Event{
				Kind: protocol.EventEnded, Job: m.Start.Job, Attempt: m.Start.Attempt,
				Result: &protocol.Result{OK: true, Exit: &zero}}})
			if err != nil {
				return
			}
		case protocol.TypeShutdown:
			return
		}
	}
}

// beat sends heartbeats until done.
func (a *fakeAgent) beat(every time.Duration, done <-chan struct{}) {
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if a.conn.Send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: &protocol.Heartbeat{}}) != nil {
				return
			}
		}
	}
}

// sampleHeap samples the heap's objects every 100 ms until the returned stop
// function is called, which returns the largest sample.
func sampleHeap() (stop func() uint64) {
	samples := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	var peak uint64
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(samples)
			peak = max(peak, samples[0].Value.Uint64())
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() uint64 {
		close(quit)
		<-done
		return peak
	}
}

// clearPeakRSS resets the process's VmHWM to its current RSS (Linux:
// writing 5 to /proc/self/clear_refs), so the next reading is the peak
// since now.
func clearPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// procStatusKB returns a "NAME: N kB" field of /proc/self/status.
func procStatusKB(name string) int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// raiseFileLimit raises RLIMIT_NOFILE's soft limit to at least n.
func raiseFileLimit(b *testing.B, n int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
	if lim.Cur >= uint64(n) {
		return
	}
	if lim.Max < uint64(n) {
		b.Fatalf("RLIMIT_NOFILE hard limit %d < %d descriptors needed", lim.Max, n)
	}
	lim.Cur = uint64(n)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		b.Fatal(err)
	}
}

func envInt(b *testing.B, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return n
}
