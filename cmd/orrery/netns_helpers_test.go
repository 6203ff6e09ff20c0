package main

// Helpers for the tests with real network boundaries (netns_test.go): a
// lab of network namespaces on this machine — one for the root, one per
// node, each node's namespace joined to the root's by its own veth pair
// with a /30 — and orrery processes, shell clients and firewall rules
// inside them (`ip netns exec`). Addresses are 10.213.X.Y and exist only
// inside a lab's namespaces; nothing is routed out of them. Everything a
// lab makes is removed when its test ends, also when it fails, and a lab
// left by a test process that was killed is removed by the next one.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"orrery/internal/netnstest"
)

const (
	// nsService is the root's address in a lab: on the loopback device
	// of the root's namespace, routed to from every node's namespace
	// over its veth pair.
	nsService = "10.213.0.1"
	// nsPort is the port the root listens on in its namespace.
	nsPort = "7443"
	// nsAddr is where agents connect.
	nsAddr = nsService + ":" + nsPort
)

var (
	nsSeq atomic.Int64
	// nsName matches the namespaces these tests make: orr-PID-…, PID
	// being the test process that made them.
	nsName = regexp.MustCompile(`^orr-(\d+)-\S+$`)
	nsGate = netnstest.Gate{What: "the network namespace tests", Probe: nsProbe}
)

// nsRequire fails the test (in CI, CI=true) or skips it (elsewhere) when
// this machine cannot host a lab: not root, no `ip netns`, no iptables.
func nsRequire(t *testing.T) {
	t.Helper()
	nsGate.Require(t)
}

// nsProbe removes stale labs and checks that a namespace can be made,
// with iptables working inside it.
func nsProbe() error {
	for _, c := range []string{"ip", "iptables", "bash", "timeout"} {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
	}
	netnstest.RemoveStale(nsName)
	name := fmt.Sprintf("orr-%d-probe", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns add: %v: %s", err, bytesTrim(out))
	}
	defer netnstest.Delete(name)
	if out, err := exec.Command("ip", "netns", "exec", name, "iptables", "-w", "-L", "INPUT", "-n").CombinedOutput(); err != nil {
		return fmt.Errorf("iptables in a namespace: %v: %s", err, bytesTrim(out))
	}
	return nil
}

func bytesTrim(b []byte) string { return strings.TrimSpace(string(b)) }

// nsLab is a root's namespace and one namespace per node.
type nsLab struct {
	t      *testing.T
	prefix string
	root   string              // the root's namespace
	nodes  map[string]nsNodeNS // by node name
}

// nsNodeNS is a node's namespace.
type nsNodeNS struct {
	ns   string // the namespace
	addr string // its address (10.213.K.2)
	dev  string // its veth's end in the root's namespace
}

// newNSLab makes a lab with a namespace for each of nodes (short names:
// a veth in the root's namespace is named v+name). It is removed when
// the test ends.
func newNSLab(t *testing.T, nodes ...string) *nsLab {
	t.Helper()
	nsRequire(t)
	l := &nsLab{t: t, prefix: fmt.Sprintf("orr-%d-%d", os.Getpid(), nsSeq.Add(1)), nodes: map[string]nsNodeNS{}}
	var made []string
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if err := netnstest.Delete(made[i]); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	add := func(ns string) {
		l.ip("netns", "add", ns)
		made = append(made, ns)
		l.ip("-n", ns, "link", "set", "lo", "up")
	}
	l.root = l.prefix + "-root"
	add(l.root)
	l.ip("-n", l.root, "addr", "add", nsService+"/32", "dev", "lo")
	for k, name := range nodes {
		n := nsNodeNS{ns: l.prefix + "-" + name, addr: fmt.Sprintf("10.213.%d.2", k+1), dev: "v" + name}
		near := fmt.Sprintf("10.213.%d.1", k+1)
		add(n.ns)
		// Both ends are made in their namespaces: no name is ever used
		// in this machine's own namespace.
		l.ip("link", "add", n.dev, "netns", l.root, "type", "veth", "peer", "name", "eth0", "netns", n.ns)
		l.ip("-n", l.root, "addr", "add", near+"/30", "dev", n.dev)
		l.ip("-n", n.ns, "addr", "add", n.addr+"/30", "dev", "eth0")
		l.ip("-n", l.root, "link", "set", n.dev, "up")
		l.ip("-n", n.ns, "link", "set", "eth0", "up")
		l.ip("-n", n.ns, "route", "add", nsService+"/32", "via", near)
		l.nodes[name] = n
	}
	return l
}

// ip runs `ip ARGS` and fails the test when it fails.
func (l *nsLab) ip(args ...string) {
	l.t.Helper()
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		l.t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, bytesTrim(out))
	}
}

// node returns a node's namespace.
func (l *nsLab) node(name string) nsNodeNS {
	l.t.Helper()
	n, ok := l.nodes[name]
	if !ok {
		l.t.Fatalf("no node %q in the lab", name)
	}
	return n
}

// nsEnv is the environment of the processes a lab starts: this one's,
// without a join token.
func nsEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ORRERY_TOKEN=") {
			env = append(env, kv)
		}
	}
	return env
}

// start runs argv in namespace ns, in dir, as e2eStart does: in its own
// process group, killed when ctx or the test ends.
func (l *nsLab) start(t *testing.T, ctx context.Context, ns, dir string, argv ...string) *e2eProc {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns}, argv...)...)
	cmd.Dir = dir
	cmd.Env = nsEnv()
	return e2eStartCmd(t, ctx, "["+strings.TrimPrefix(ns, l.prefix+"-")+"] "+strings.Join(argv, " "), cmd)
}

// orrery runs `orrery ARGS` in namespace ns.
func (l *nsLab) orrery(t *testing.T, ctx context.Context, ns, dir string, args ...string) *e2eProc {
	t.Helper()
	return l.start(t, ctx, ns, dir, append([]string{e2eBinary(t)}, args...)...)
}

// runRoot starts `orrery run --nodes 0 --listen 10.213.0.1:7443 PLAN`
// in the root's namespace and waits until it listens.
func (l *nsLab) runRoot(t *testing.T, ctx context.Context, dir, plan string, args ...string) *e2eProc {
	t.Helper()
	argv := append([]string{"run", "--nodes", "0", "--listen", nsAddr}, args...)
	p := l.orrery(t, ctx, l.root, dir, append(argv, plan)...)
	if !e2eWaitFor(20*time.Second, func() bool {
		return e2eListening.MatchString(p.stderr.String()) || p.exited()
	}) || p.exited() {
		t.Fatalf("run --listen %s did not say it listens\nstderr:\n%s", nsAddr, p.stderr.String())
	}
	if m := e2eListening.FindStringSubmatch(p.stderr.String()); m[1] != nsAddr {
		t.Fatalf("run listens on %s, want %s", m[1], nsAddr)
	}
	return p
}

// agent starts `orrery agent` in node name's namespace, connecting to
// the root's address, working in DIR/work-NAME.
func (l *nsLab) agent(t *testing.T, ctx context.Context, dir, name, tokenFile string, limit int, args ...string) *e2eProc {
	t.Helper()
	argv := []string{"agent", "--connect", nsAddr, "--name", name, "--job-limit", strconv.Itoa(limit),
		"--work-dir", filepath.Join(dir, "work-"+name)}
	if tokenFile != "" {
		argv = append(argv, "--token-file", tokenFile)
	}
	return l.orrery(t, ctx, l.node(name).ns, dir, append(argv, args...)...)
}

// nsToken runs `orrery token --state-dir STATE` (which makes the key
// material when there is none) and writes the token to a 0600 file in
// dir, whose path it returns.
func nsToken(t *testing.T, dir, stateDir, file string) (path, token string) {
	t.Helper()
	token = strings.TrimSpace(e2eMust(t, dir, "token", "--state-dir", stateDir))
	path = filepath.Join(dir, file)
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, token
}

// nsRule is a firewall rule in a namespace.
type nsRule struct {
	l      *nsLab
	ns     string
	chain  string
	spec   []string
	remove sync.Once
}

// rule appends an iptables rule to chain in namespace ns; it is removed
// by Remove or when the test ends.
func (l *nsLab) rule(ns, chain string, spec ...string) *nsRule {
	l.t.Helper()
	r := &nsRule{l: l, ns: ns, chain: chain, spec: spec}
	if out, err := r.iptables("-A"); err != nil {
		l.t.Fatalf("iptables -A %s %s: %v: %s", chain, strings.Join(spec, " "), err, out)
	}
	l.t.Cleanup(func() { r.Remove() })
	return r
}

func (r *nsRule) iptables(op string, args ...string) (string, error) {
	argv := append([]string{"netns", "exec", r.ns, "iptables", "-w", op, r.chain}, args...)
	if op != "-L" {
		argv = append(argv, r.spec...)
	}
	out, err := exec.Command("ip", argv...).CombinedOutput()
	return bytesTrim(out), err
}

// Remove deletes the rule (once).
func (r *nsRule) Remove() {
	r.remove.Do(func() {
		if out, err := r.iptables("-D"); err != nil {
			r.l.t.Errorf("iptables -D %s %s: %v: %s", r.chain, strings.Join(r.spec, " "), err, out)
		}
	})
}

// Packets returns how many packets the first rule of the chain matched.
func (r *nsRule) Packets() int64 {
	out, err := r.iptables("-L", "-v", "-n", "-x")
	if err != nil {
		r.l.t.Errorf("iptables -L %s: %v: %s", r.chain, err, out)
		return 0
	}
	lines := strings.Split(out, "\n")
	if len(lines) < 3 {
		return 0
	}
	n, _ := strconv.ParseInt(strings.Fields(lines[2])[0], 10, 64)
	return n
}

// nsTCP is what a raw TCP client saw.
type nsTCP struct {
	received []byte        // every byte the root sent
	elapsed  time.Duration // from start to the connection's end
	code     int           // bash's exit status: 0 or 1 when the root closed or reset; 124/137 timed out; 9 no connection
	stderr   string
}

// tcp connects from namespace ns to the root's port with bash's
// /dev/tcp, sends send (bytes, as they are), then reads until the root
// closes the connection, for at most limit.
func (l *nsLab) tcp(t *testing.T, ns string, send []byte, limit time.Duration) nsTCP {
	t.Helper()
	var esc strings.Builder
	for _, b := range send {
		fmt.Fprintf(&esc, `\x%02x`, b)
	}
	script := `exec 3<>/dev/tcp/$0/$1 || exit 9; if [ -n "$2" ]; then printf "$2" >&3; fi; cat <&3`
	cmd := exec.Command("ip", "netns", "exec", ns, "timeout", "-s", "KILL", strconv.Itoa(int(limit.Seconds())),
		"bash", "-c", script, nsService, nsPort, esc.String())
	var stdout, stderr e2eBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	r := nsTCP{received: []byte(stdout.String()), elapsed: time.Since(began), stderr: stderr.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			r.code = 128 + int(ws.Signal())
		}
	case err != nil:
		t.Fatalf("raw TCP client: %v", err)
	}
	return r
}

// nsLines returns the lines of text that contain every one of words.
func nsLines(text string, words ...string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		ok := true
		for _, w := range words {
			ok = ok && strings.Contains(l, w)
		}
		if ok && l != "" {
			out = append(out, l)
		}
	}
	return out
}

// nsWaitLines waits up to d for a line of p's stderr containing every
// one of words.
func nsWaitLines(p *e2eProc, d time.Duration, words ...string) bool {
	return e2eWaitFor(d, func() bool { return len(nsLines(p.stderr.String(), words...)) > 0 })
}

// nsWaitExit waits up to d for p to end and returns its exit status; ok
// is false (and p still runs) when it did not end in time.
func nsWaitExit(p *e2eProc, d time.Duration) (code int, ok bool) {
	select {
	case <-p.done:
		return p.state.ExitCode(), true
	case <-time.After(d):
		return 0, false
	}
}

// nsSleeps counts the `sleep` processes of jobs under dir.
func nsSleeps(dir string) int {
	n := 0
	for _, p := range e2eProcsUnder(dir) {
		if strings.HasPrefix(p.Cmdline, "sleep ") {
			n++
		}
	}
	return n
}

// nsResultNode reads results/N.txt, written by a job as "N … WORKDIR",
// and returns the node whose work directory (DIR/work-NODE) wrote it.
func nsResultNode(t *testing.T, dir string, job int64) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "results", fmt.Sprintf("%d.txt", job)))
	if err != nil {
		t.Errorf("result of job %d: %v", job, err)
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) == 0 || f[0] != strconv.FormatInt(job, 10) {
		t.Errorf("results/%d.txt = %q, want it to start with %d", job, b, job)
		return ""
	}
	rel, err := filepath.Rel(dir, f[len(f)-1])
	node, _, _ := strings.Cut(rel, string(filepath.Separator))
	name, ok := strings.CutPrefix(node, "work-")
	if err != nil || !ok {
		t.Errorf("results/%d.txt = %q: the last word is not a job directory under %s/work-NODE", job, b, dir)
		return ""
	}
	return name
}

// nsOneOK checks that every job of the run is done with exactly one ok
// attempt, whose node wrote its result, and returns each job's attempts.
func nsOneOK(t *testing.T, dir string, jobs int) map[int64][]e2eAttempt {
	t.Helper()
	all := map[int64][]e2eAttempt{}
	js := e2eJobs(t, dir)
	if len(js) != jobs {
		t.Errorf("orrery jobs lists %d jobs, want %d", len(js), jobs)
	}
	for _, j := range js {
		if j.State != "done" {
			t.Errorf("job %d: %s, want done", j.Index, j.State)
		}
		out, atts := e2eLog(t, dir, j.Index)
		all[j.Index] = atts
		var ok []e2eAttempt
		for _, a := range atts {
			if a.State == "ok" {
				ok = append(ok, a)
			}
		}
		if len(ok) != 1 {
			t.Errorf("job %d: %d ok attempts, want exactly 1:\n%s", j.Index, len(ok), out)
			continue
		}
		if by := nsResultNode(t, dir, j.Index); by != "" && by != ok[0].Node {
			t.Errorf("job %d: its result was written on node %s, but its ok attempt ran on %s (a late result overwrote it?)\n%s",
				j.Index, by, ok[0].Node, out)
		}
	}
	return all
}
