package headctl

// A stand-in for `orrery head` (the real command is written elsewhere):
// the test binary itself, copied to the head machine as the orrery
// binary, implements probe, start and stop of the CLI contract
// (docs in /tmp/grid-design.md, package comment):
//
//	head probe --dir DIR   one line of JSON: running, pid, build, jobs
//	head start --dir DIR   reads the start input on stdin into
//	                       DIR/spec.json, detaches `head run` (setsid,
//	                       output to DIR/head.log), prints "started PID",
//	                       or "running PID" when one runs
//	head stop --dir DIR    SIGTERM, waits; "stopped" or "not running"
//	head run --dir DIR     the detached head: writes DIR/build (its
//	                       binary's SHA-256) and DIR/pid, then sleeps
//	                       until SIGTERM
//
// Files a test puts in DIR steer it: jobs (the number probe reports),
// hold (start waits, having written holding, until hold is removed),
// fail-start (start writes a line to head.log and fails). Each start
// appends a line to DIR/starts, and records in DIR/sock-at-start
// whether DIR/root.sock was a socket when it ran; each probe appends a
// line to DIR/probes.

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == "head" {
		os.Exit(standInMain(os.Args[2:]))
	}
	flag.Parse()
	parallelSSHTests()
	os.Exit(m.Run())
}

func standInMain(args []string) int {
	if len(args) != 3 || args[1] != "--dir" {
		fmt.Fprintf(os.Stderr, "stand-in head: usage: head probe|start|stop|run --dir DIR (got %q)\n", args)
		return 2
	}
	dir := args[2]
	switch args[0] {
	case "probe":
		return standInProbe(dir)
	case "start":
		return standInStart(dir)
	case "stop":
		return standInStop(dir)
	case "run":
		return standInRun(dir)
	}
	fmt.Fprintf(os.Stderr, "stand-in head: unknown command %q\n", args[0])
	return 2
}

// headPID is the pid in DIR/pid if that process is alive and is the
// head of DIR, else 0.
func headPID(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !isHead(pid, dir) {
		return 0
	}
	return pid
}

// isHead reports whether pid is a live (not zombie) `head run --dir DIR`.
func isHead(pid int, dir string) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || i+2 >= len(stat) || stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && bytes.HasSuffix(cmdline, []byte("\x00head\x00run\x00--dir\x00"+dir+"\x00"))
}

// exited reports whether the head pid of DIR has ended: no such
// process, a zombie, or another program (its pid used again). A head
// that is exiting is not yet: its command line reads empty once its
// memory is released, before it is a zombie.
func exited(pid int, dir string) bool {
	if !alive(pid) {
		return true
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && len(cmdline) > 0 && !isHead(pid, dir)
}

func standInProbe(dir string) int {
	appendFile(filepath.Join(dir, "probes"), "probe\n")
	p := ProbeReport{}
	if pid := headPID(dir); pid != 0 {
		p.Running, p.PID = true, pid
		b, _ := os.ReadFile(filepath.Join(dir, "build"))
		p.Build = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile(filepath.Join(dir, "jobs")); err == nil {
		p.Jobs, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	b, _ := json.Marshal(p)
	fmt.Printf("%s\n", b)
	return 0
}

func standInStart(dir string) int {
	in, err := io.ReadAll(os.Stdin)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stand-in head: stdin: %v\n", err)
		return 1
	}
	appendFile(filepath.Join(dir, "starts"), "start\n")
	if err := os.WriteFile(filepath.Join(dir, "spec.json"), in, 0o600); err != nil {
		fmt.Fprintf(os.Stderr, "stand-in head: %v\n", err)
		return 1
	}
	if _, err := os.Stat(filepath.Join(dir, "hold")); err == nil {
		appendFile(filepath.Join(dir, "holding"), "")
		for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			if _, err := os.Stat(filepath.Join(dir, "hold")); err != nil {
				break
			}
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "fail-start")); err == nil {
		appendFile(filepath.Join(dir, "head.log"), "stand-in head: opening the journal\nstand-in head: cannot open the journal: no space left on device\n")
		fmt.Fprintln(os.Stderr, "the head exited before it held its lock: see head.log")
		return 1
	}
	if pid := headPID(dir); pid != 0 {
		fmt.Printf("running %d\n", pid)
		return 0
	}
	sock := "no"
	if st, err := os.Stat(filepath.Join(dir, "root.sock")); err == nil && st.Mode().Type() == os.ModeSocket {
		sock = "yes"
	}
	os.WriteFile(filepath.Join(dir, "sock-at-start"), []byte(sock), 0o600)
	os.Remove(filepath.Join(dir, "pid"))
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintf(os.Stderr, "stand-in head: %v\n", err)
		return 1
	}
	log, err := os.OpenFile(filepath.Join(dir, "head.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		fmt.Fprintf(os.Stderr, "stand-in head: %v\n", err)
		return 1
	}
	cmd := exec.Command(exe, "head", "run", "--dir", dir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(os.Stderr, "stand-in head: %v\n", err)
		return 1
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if pid := headPID(dir); pid == cmd.Process.Pid {
			fmt.Printf("started %d\n", pid)
			cmd.Process.Release()
			return 0
		}
	}
	cmd.Process.Kill()
	fmt.Fprintln(os.Stderr, "stand-in head: the head wrote no pid")
	return 1
}

func standInRun(dir string) int {
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	exe, _ := os.Executable()
	f, err := os.Open(exe)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	h := sha256.New()
	io.Copy(h, f)
	f.Close()
	if err := os.WriteFile(filepath.Join(dir, "build"), []byte(hex.EncodeToString(h.Sum(nil))+"\n"), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	tmp := filepath.Join(dir, "pid.tmp")
	os.WriteFile(tmp, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600)
	if err := os.Rename(tmp, filepath.Join(dir, "pid")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("stand-in head %d running\n", os.Getpid())
	<-term
	fmt.Printf("stand-in head %d stopped\n", os.Getpid())
	return 0
}

func standInStop(dir string) int {
	pid := headPID(dir)
	if pid == 0 {
		fmt.Println("not running")
		return 0
	}
	syscall.Kill(pid, syscall.SIGTERM)
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if exited(pid, dir) {
			fmt.Println("stopped")
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "stand-in head: %d did not exit\n", pid)
	return 1
}

func appendFile(name, s string) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	f.WriteString(s)
	f.Close()
}
