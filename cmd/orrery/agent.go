package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"orrery/agent"
	"orrery/cluster"
)

// runAgent implements `orrery agent --connect ADDR`: one node agent as
// its own process, over TCP.
func runAgent(e *env, args []string) int {
	fs := newFlags(e, "agent", "--connect ADDR [--name NAME] [--cpus N] [--job-limit K] [--speed S] [--memory SIZE] [--work-dir DIR]")
	addr := fs.String("connect", "", "dispatcher `address` (host:port) to connect to")
	host, _ := os.Hostname()
	name := fs.String("name", host, "node `name`")
	cpus := fs.Int("cpus", runtime.NumCPU(), "CPUs this node offers")
	limit := fs.Int("job-limit", 0, "jobs at once (default: its CPUs)")
	speed := fs.Float64("speed", 1, "relative CPU `speed` (1 = reference)")
	memory := fs.String("memory", "", "RAM this node offers, such as 4G (default: the machine's); orrery keeps its jobs' resident memory within it")
	work := fs.String("work-dir", filepath.Join(os.TempDir(), "orrery-agent"), "`directory` for job directories")
	keep := fs.Bool("keep", false, "keep the job directories of successful jobs")
	if status, ok := noArgs(fs, args); !ok {
		return status
	}
	if *addr == "" {
		fs.Usage()
		return exitInvalid
	}
	var mem int64
	if *memory != "" {
		var err error
		if mem, err = cluster.ParseSize(*memory); err != nil {
			fmt.Fprintf(e.stderr, "orrery: agent: --memory %q: %v\n", *memory, err)
			return exitInvalid
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	conn, err := dial(ctx, *addr)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: agent: %v\n", err)
		return exitFailed
	}
	err = agent.Run(ctx, conn, agent.Config{Name: *name, CPUs: *cpus, JobLimit: *limit, Speed: *speed,
		Memory: mem, WorkDir: *work, KeepJobDirs: *keep})
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: agent: %v\n", err)
		return exitFailed
	}
	return exitOK
}

// listenLoopback listens for agents on addr, which must be a loopback
// address until agents authenticate.
func listenLoopback(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--listen %q: only loopback addresses for now (agents do not authenticate yet)", addr)
	}
	return net.Listen("tcp", addr)
}

// dial connects to the dispatcher: host:port over TCP, or fd:N, a socket
// the parent process passed (the embedded cluster's limited nodes).
func dial(ctx context.Context, addr string) (net.Conn, error) {
	if fd, ok := strings.CutPrefix(addr, "fd:"); ok {
		n, err := strconv.Atoi(fd)
		if err != nil || n < 3 {
			return nil, fmt.Errorf("--connect %q: want fd:N with N >= 3", addr)
		}
		f := os.NewFile(uintptr(n), "dispatcher")
		defer f.Close()
		return net.FileConn(f)
	}
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return d.DialContext(dctx, "tcp", addr)
}
