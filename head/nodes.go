package head

import (
	"cmp"
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"orrery/clusterfile"
	"orrery/dispatch"
	"orrery/internal/atomicfile"
	"orrery/link"
	"orrery/pki"
	"orrery/port"
	"orrery/sshnode"
)

// A cluster's nodes on other machines join its head through the head's
// own TLS port (package port), with the head's own key material in
// DIR/pki (made on its first start, kept across restarts): the nodes the
// head starts over SSH (`node NAME ssh HOST`, package sshnode), whose
// agents dial it through a socket their SSH connection forwards, and,
// with `listen ADDR`, nodes that join by themselves with `orrery agent
// --connect ADDR --token-file F`. The port serves the head's dispatcher
// and the staging root its local nodes get; it serves nothing before a
// node is authenticated. Its join token is in DIR/join.token (0600),
// which `orrery head token --dir DIR` prints.

// JoinTokenFile is the file in a head's directory that holds the join
// token of its port.
const JoinTokenFile = "join.token"

// NodeLauncher starts a node of the cluster on another machine and
// keeps its agent joined to the head's port.
type NodeLauncher interface {
	// Launch starts the node's agent (or finds it running) and returns
	// once it runs; ctx bounds the launch only. Its error is one line
	// that names the cluster and the node.
	Launch(ctx context.Context, spec sshnode.Spec) (RemoteNode, error)
}

// RemoteNode is a node a NodeLauncher started.
type RemoteNode interface {
	// Stop stops the node's agent and lets its machine go; ctx bounds
	// it.
	Stop(ctx context.Context) error
}

// SSHNodes is the NodeLauncher of package sshnode, which a head uses
// when its Config has none.
func SSHNodes(opts sshnode.Options) NodeLauncher { return sshLauncher{sshnode.New(opts)} }

type sshLauncher struct{ l *sshnode.Launcher }

func (s sshLauncher) Launch(ctx context.Context, spec sshnode.Spec) (RemoteNode, error) {
	n, err := s.l.Launch(ctx, spec)
	if err != nil {
		return nil, err
	}
	return n, nil
}

// Token returns the join token of the port of the head whose directory
// is dir: what its nodes join it with.
func Token(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "pki")); errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("%s: no head there has had a port yet (a cluster's head has one once it runs, with `listen` or nodes over SSH)", dir)
	}
	auth, err := pki.Open(dir)
	if err != nil {
		return "", err
	}
	return auth.Token()
}

// size is what a node or nodes offer.
type size struct{ cpus, slots int }

// nodeSize is what a node line offers: its CPUs (1 if it does not say)
// and its job limit (its CPUs if it does not say).
func nodeSize(n clusterfile.Node) size {
	cpus := max(n.CPUs, 1)
	return size{cpus: cpus, slots: cmp.Or(n.JobLimit, cpus)}
}

// expectFar notes the nodes over SSH: the cluster's expected size
// (cpus, slots) counts them as their lines say, until they join.
func (h *Head) expectFar(overSSH []clusterfile.Node) {
	h.far, h.local = overSSH, size{h.cpus, h.slots}
	h.joined = map[dispatch.Node]size{}
	for _, n := range overSSH {
		s := nodeSize(n)
		h.cpus += s.cpus
		h.slots += s.slots
	}
}

// sizeLocked is the cluster's CPUs and slots: its local nodes and the
// nodes that joined its port as they registered, or what its node lines
// say when that is more (nodes over SSH not joined yet).
func (h *Head) sizeLocked() (cpus, slots int) {
	live := h.local
	for _, s := range h.joined {
		live.cpus += s.cpus
		live.slots += s.slots
	}
	return max(live.cpus, h.cpus), max(live.slots, h.slots)
}

// sizer passes a port's news to the dispatcher, noting the size of each
// node that joins and leaves.
type sizer struct {
	h *Head
	link.Dispatcher
}

func (s sizer) Joined(n dispatch.Node, j dispatch.Joining) {
	cpus := max(j.Register.CPUs, 1)
	s.h.mu.Lock()
	s.h.joined[n] = size{cpus: cpus, slots: cmp.Or(max(j.Register.JobLimit, 0), cpus)}
	s.h.joinedNames[j.Register.Name] = true
	s.h.mu.Unlock()
	s.Dispatcher.Joined(n, j)
}

func (s sizer) Gone(n dispatch.Node, err error) {
	s.h.mu.Lock()
	delete(s.h.joined, n)
	s.h.mu.Unlock()
	s.Dispatcher.Gone(n, err)
}

// stopTimeout bounds stopping the nodes over SSH when the head's
// dispatcher ends.
const stopTimeout = 2 * time.Minute

// farNodes is the head's port and the nodes it started over SSH.
type farNodes struct {
	stopLaunch context.CancelFunc
	launching  sync.WaitGroup
	stopPort   context.CancelFunc
	serving    sync.WaitGroup

	mu    sync.Mutex
	nodes []RemoteNode
}

// startFar opens the head's port for disp and launches the nodes over
// SSH, each on its own; nil when the cluster has neither a listen nor
// nodes over SSH. What fails is said in one line that names the cluster
// (and the node), and the rest of the cluster carries on.
func (h *Head) startFar(disp link.Dispatcher) *farNodes {
	c := h.cfg.Cluster
	if c.Listen == "" && len(h.far) == 0 && c.Slurm == nil {
		return nil
	}
	fail := func(format string, args ...any) *farNodes {
		msg := fmt.Sprintf("cluster %s: ", c.Name) + fmt.Sprintf(format, args...)
		h.log.Warn(msg)
		h.cfg.Status(msg)
		return nil
	}
	auth, err := pki.Open(h.cfg.Dir)
	if err != nil {
		return fail("the key material of its port: %v; no node on another machine can join", err)
	}
	tok, err := auth.Token()
	if err == nil {
		err = atomicfile.Write(h.cfg.Dir, JoinTokenFile, []byte(tok+"\n"), 0o600)
	}
	if err != nil {
		return fail("its port's join token: %v; no node on another machine can join", err)
	}
	cfg := port.Config{Addr: cmp.Or(c.Listen, "127.0.0.1:0"), Authority: auth, Dispatcher: sizer{h, disp},
		Root: stagingRoot{h}, Log: h.log}
	if c.Slurm != nil && c.Listen == "" {
		// Pilots run on the cluster's compute nodes: they reach the head
		// by its machine's host name, on the port it had before if it is
		// free (pilots still queued then find it), else a free one.
		cfg.Addr = pilotListen(h)
	}
	if c.Slurm != nil {
		// Pilots that do not see the head's file system fetch orrery and
		// the join token from the port, each for a batch credential.
		cfg.Web = newBootServer(h, h.batchSystem())
	}
	pt, err := port.Listen(cfg)
	if err != nil && c.Slurm != nil && c.Listen == "" {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		cfg.Addr = net.JoinHostPort(host, "0")
		pt, err = port.Listen(cfg)
	}
	if err != nil && (c.Listen != "" || c.Slurm != nil) {
		what := "no node can join there"
		if c.Slurm != nil {
			what = "no pilot can join there, so none is submitted"
			h.setBatch(fmt.Sprintf("cluster %s: listen %s: %v", c.Name, cfg.Addr, err))
		}
		fail("listen %s: %v; %s", cfg.Addr, err, what)
		if len(h.far) == 0 {
			if c.Slurm != nil {
				h.noNodesLeft(fmt.Sprintf("cluster %s: listen %s: %v: no pilot could join there", c.Name, cfg.Addr, err))
			}
			return nil
		}
		cfg.Addr, c.Listen = "127.0.0.1:0", ""
		pt, err = port.Listen(cfg)
	}
	if err != nil {
		return fail("its port: %v; its nodes over SSH cannot join", err)
	}
	f := &farNodes{}
	pctx, stopPort := context.WithCancel(context.Background())
	f.stopPort = stopPort
	f.serving.Add(1)
	go func() {
		defer f.serving.Done()
		pt.Run(pctx)
	}()
	addr := pt.Addr().String()
	tokFile := filepath.Join(h.cfg.Dir, JoinTokenFile)
	if c.Listen != "" {
		h.cfg.Status(fmt.Sprintf("nodes join the cluster at %s with: orrery agent --connect %s --token-file FILE, where FILE holds the join token in %s (`orrery head token --dir %s` prints it)",
			addr, addr, tokFile, h.cfg.Dir))
	}
	launcher := h.cfg.NodeLauncher
	if launcher == nil {
		launcher = SSHNodes(sshnode.Options{})
	}
	lctx, stopLaunch := context.WithCancel(context.Background())
	f.stopLaunch = stopLaunch
	id := sshnode.HeadID(auth.CACert().Raw)
	if c.Slurm != nil && (c.Listen != "" || cfg.Addr != "127.0.0.1:0") {
		// Pilots dial the address as the cluster file or the host name
		// says it, not as this machine resolved it.
		host, _, _ := net.SplitHostPort(cmp.Or(c.Listen, cfg.Addr))
		_, p, _ := net.SplitHostPort(addr)
		if pl := h.startPilots(net.JoinHostPort(host, p), id,
			string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: auth.CACert().Raw}))); pl != nil {
			f.launching.Add(1)
			go func() {
				defer f.launching.Done()
				pl.run(lctx)
			}()
		}
	}
	for _, n := range h.far {
		f.launching.Add(1)
		go func() {
			defer f.launching.Done()
			spec := sshnode.Spec{Cluster: c.Name, Node: n, HeadAddr: addr, Token: tok, ID: id,
				Wait: h.cfg.Lease, Status: h.cfg.Status, Log: h.log}
			rn := launchRetrying(lctx, h, launcher, spec)
			if rn == nil {
				return
			}
			f.mu.Lock()
			f.nodes = append(f.nodes, rn)
			f.mu.Unlock()
		}()
	}
	return f
}

// launchRetrying launches a node over SSH, and again after a failure
// (its machine down, sshd not up yet, a key not yet in known_hosts),
// from launchRetryFirst to launchRetryMost apart, until it starts or ctx
// ends (the head stops); it returns nil then. Each failure is logged;
// one is said (Status) when its message differs from the last one said.
func launchRetrying(ctx context.Context, h *Head, launcher NodeLauncher, spec sshnode.Spec) RemoteNode {
	delay, said := launchRetryFirst, ""
	for {
		rn, err := launcher.Launch(ctx, spec)
		if err == nil {
			if said != "" {
				h.cfg.Status(fmt.Sprintf("cluster %s: node %s started", spec.Cluster, spec.Node.Name))
			}
			return rn
		}
		if ctx.Err() != nil {
			return nil
		}
		h.log.Warn("a node over SSH did not start; trying again", "node", spec.Node.Name, "err", err, "in", delay)
		if msg := oneLine(err.Error()); msg != said {
			h.cfg.Status(fmt.Sprintf("%s (trying again every %s at most)", msg, launchRetryMost))
			said = msg
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, launchRetryMost)
	}
}

// The waits between launches of a node that did not start.
var (
	launchRetryFirst = 5 * time.Second
	launchRetryMost  = 2 * time.Minute
)

// stop stops the nodes over SSH (each agent, and its supervisor), then
// the port.
func (f *farNodes) stop(h *Head) {
	if f == nil {
		return
	}
	f.stopLaunch()
	f.launching.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, n := range f.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.Stop(ctx); err != nil {
				h.log.Warn("stopping a node over SSH", "err", err)
				h.cfg.Status(oneLine(err.Error()))
			}
		}()
	}
	wg.Wait()
	f.stopPort()
	f.serving.Wait()
}

// pilotListen is where a Slurm cluster's head listens for its pilots
// when its cluster file says no listen: its machine's host name, and
// the port of its last run (in pilots/addr) or a free one.
func pilotListen(h *Head) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "localhost"
	}
	port := "0"
	if b, err := os.ReadFile(filepath.Join(h.cfg.Dir, pilotDir, "addr")); err == nil {
		if hh, p, err := net.SplitHostPort(strings.TrimSpace(string(b))); err == nil && hh == host {
			port = p
		}
	}
	return net.JoinHostPort(host, port)
}

// oneLine folds every run of white space into a space.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
