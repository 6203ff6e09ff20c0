package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"orrery/clusterfile"
	"orrery/dispatch"
	"orrery/head"
	"orrery/headctl"
	"orrery/pki"
	"orrery/sched"
)

// A grid: a cluster file with several clusters, or whose cluster's head
// is reached by SSH. The root is then the coordinator: its dispatcher
// runs no node of its own; every cluster's head (`orrery head`) joins its
// port as one node that stands for the cluster, on this machine for a
// cluster without ssh, else over SSH (package headctl), which forwards a
// socket on the head's machine to the port.

// isGrid reports whether the cluster file at path describes a grid.
func isGrid(path string) (*clusterfile.Grid, bool, error) {
	g, err := clusterfile.Load(path)
	if err != nil {
		return nil, false, err
	}
	if len(g.Clusters) > 1 {
		return g, true, nil
	}
	for _, c := range g.Clusters {
		if c.Remote() {
			return g, true, nil
		}
	}
	return g, false, nil
}

// gridHead is one cluster's head as the root keeps it.
type gridHead struct {
	name  string
	dir   string        // a local head's directory
	ssh   *headctl.Head // a head reached by SSH
	local bool
	spec  []byte // a local head's start spec, to start it again
}

// grid is the heads the root started.
type grid struct {
	e     *env
	heads []*gridHead
	log   *slog.Logger
}

// blocks returns each cluster's block of the file's text, by name.
func blocks(path string, g *clusterfile.Grid) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	lines := strings.SplitAfter(string(b), "\n")
	out := map[string]string{}
	for i, c := range g.Clusters {
		end := len(lines)
		if i+1 < len(g.Clusters) {
			end = g.Clusters[i+1].Line - 1
		}
		out[c.Name] = strings.Join(lines[c.Line-1:end], "")
	}
	return out, nil
}

// startGrid starts (or finds running) every cluster's head. A cluster
// whose head cannot be started is said in one line with its name, and
// the rest of the grid carries on; it fails only when no head started.
func startGrid(ctx context.Context, e *env, path string, g *clusterfile.Grid, auth *pki.Authority, rootAddr, stateDir string,
	exp int64, pol sched.Policy, log *slog.Logger) (*grid, error) {
	text, err := blocks(path, g)
	if err != nil {
		return nil, err
	}
	tok, err := auth.HeadToken() // a head's certificate says it is one (pki.IsHead)
	if err != nil {
		return nil, err
	}
	id := headctl.ExperimentID(auth.CACert().Raw, exp)
	gr := &grid{e: e, log: log}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range g.Clusters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := startHead(ctx, e, c, text[c.Name], tok, rootAddr, stateDir, id, pol, log)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fmt.Fprintf(e.stderr, "orrery: %v\n", err)
				return
			}
			gr.heads = append(gr.heads, h)
		}()
	}
	wg.Wait()
	if len(gr.heads) == 0 {
		return nil, fmt.Errorf("no cluster's head could be started")
	}
	return gr, nil
}

// startHead starts one cluster's head.
func startHead(ctx context.Context, e *env, c clusterfile.Cluster, block, tok, rootAddr, stateDir, id string,
	pol sched.Policy, log *slog.Logger) (*gridHead, error) {
	if c.SSH != nil {
		h, err := headctl.Launch(ctx, headctl.Spec{Cluster: c, Block: block, Token: tok, RootAddr: rootAddr,
			ID: id + "-" + c.Name, Lease: c.Lease, Policy: pol.Name, Log: log,
			Status: func(cluster, line string) { fmt.Fprintf(e.stderr, "orrery: cluster %s: %s\n", cluster, line) }})
		if err != nil {
			return nil, err
		}
		return &gridHead{name: c.Name, ssh: h}, nil
	}
	dir, err := filepath.Abs(filepath.Join(stateDir, "heads", c.Name))
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %v", c.Name, err)
	}
	spec := head.StartSpec{Token: tok, Root: rootAddr, Cluster: block, Name: c.Name, Lease: c.Lease.String(), Policy: pol.Name}
	b, _ := json.Marshal(spec)
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("cluster %s: %v", c.Name, err)
	}
	cmd := exec.CommandContext(ctx, exe, "head", "start", "--dir", dir)
	cmd.Stdin = bytes.NewReader(b)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("cluster %s: its head did not start: %s", c.Name, oneLine(strings.TrimPrefix(errb.String(), "orrery: ")))
	}
	return &gridHead{name: c.Name, dir: dir, local: true, spec: b}, nil
}

// watch keeps the heads while the run goes on: a local head that died is
// started again in its directory (it resumes from its journal), and a
// cluster whose SSH head its supervisor gave up on is lost, so that the
// attempts its head held run elsewhere. It returns when ctx ends.
func (g *grid) watch(ctx context.Context, lose func(cluster, reason string)) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	lost := map[string]bool{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for _, h := range g.heads {
			switch {
			case h.local && lost[h.name]:
			case h.local:
				if p, err := head.ProbeDir(h.dir); err == nil && !p.Running && p.GaveUp != "" && ctx.Err() == nil {
					// Its cluster can have no node (a Slurm cluster
					// that gets no pilots): starting it again would
					// not change that.
					why := dispatch.Printable(p.GaveUp, 1024)
					fmt.Fprintf(g.e.stderr, "orrery: %s; its jobs run elsewhere\n", why)
					lost[h.name] = true
					lose(h.name, why)
				} else if err == nil && !p.Running && ctx.Err() == nil {
					fmt.Fprintf(g.e.stderr, "orrery: cluster %s: its head stopped; starting it again\n", h.name)
					if err := restartLocal(ctx, h); err != nil {
						fmt.Fprintf(g.e.stderr, "orrery: %v\n", err)
					}
				}
			case !lost[h.name] && h.ssh.GaveUp() != "":
				why := dispatch.Printable(h.ssh.GaveUp(), 1024)
				fmt.Fprintf(g.e.stderr, "orrery: %s; its jobs run elsewhere\n", why)
				lost[h.name] = true
				lose(h.name, why)
			case !lost[h.name] && h.ssh.Link() == headctl.LinkLost:
				select {
				case <-h.ssh.Done():
					lost[h.name] = true
					lose(h.name, "its head's machine could not be reached for its lease")
				default:
				}
			}
		}
	}
}

// restartLocal starts a local head again from its spec.
func restartLocal(ctx context.Context, h *gridHead) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cluster %s: %v", h.name, err)
	}
	cmd := exec.CommandContext(ctx, exe, "head", "start", "--dir", h.dir)
	cmd.Stdin = bytes.NewReader(h.spec)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Run(); err != nil && ctx.Err() == nil {
		return fmt.Errorf("cluster %s: its head did not start again: %s", h.name, oneLine(strings.TrimPrefix(errb.String(), "orrery: ")))
	}
	return nil
}

// maxLease is the longest lease of a grid's clusters: how long the root
// keeps the attempts of a head whose link is cut (0 outside a grid).
func maxLease(g *clusterfile.Grid) time.Duration {
	var l time.Duration
	if g != nil {
		for _, c := range g.Clusters {
			l = max(l, c.Lease)
		}
	}
	return l
}

// headsAwait is how long a root waits for its heads to join before it
// hands out jobs.
const headsAwait = 20 * time.Second

// names are the clusters whose heads started.
func (g *grid) names() []string {
	var out []string
	for _, h := range g.heads {
		out = append(out, h.name)
	}
	return out
}

// finish ends the grid with the run: after a run that completed, the
// heads end by themselves once the root has every result (they are
// waited for); after an interrupted or failed one, each head is stopped,
// keeping what it holds on its disk.
func (g *grid) finish(completed bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, h := range g.heads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			switch {
			case h.local && completed:
				waitHead(ctx, h.dir)
			case h.local:
				if _, err := head.Stop(h.dir, 30*time.Second); err != nil {
					fmt.Fprintf(g.e.stderr, "orrery: cluster %s: %v\n", h.name, err)
				}
			case completed:
				// Its head ends by itself once the root has everything
				// it held (or, cut off, at the end of its lease).
				h.ssh.Close()
			default:
				if err := h.ssh.Stop(ctx); err != nil {
					fmt.Fprintf(g.e.stderr, "orrery: %v\n", err)
				}
			}
		}()
	}
	wg.Wait()
}

// waitHead waits until the head in dir has exited.
func waitHead(ctx context.Context, dir string) {
	for ctx.Err() == nil {
		if p, err := head.ProbeDir(dir); err != nil || !p.Running {
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
	head.Stop(dir, 10*time.Second)
}
