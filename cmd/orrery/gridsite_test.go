package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"orrery/headctl"
	"orrery/internal/sitetest"
	"orrery/pki"
	"orrery/wan"
)

// gridSite is a cluster's site for the grid's tests: its own network
// namespace and sshd, a firewall that lets in only SSH to its head and
// lets nothing out to the root, and a wide-area link (package wan) on
// the root's way to its sshd.
type gridSite struct {
	name string
	site *sitetest.Site
	ssh  *sitetest.Server // the site's sshd as the root reaches it: through the link
	link *wan.Link
}

// newGridSites makes one site per name, each behind a link with delay one
// way and rate bytes a second.
func newGridSites(t *testing.T, delay time.Duration, rate int64, names ...string) []gridSite {
	t.Helper()
	var out []gridSite
	for _, name := range names {
		s := sitetest.NewSite(t, sitetest.SiteOptions{Firewall: true})
		addr, link := sitetest.WAN(t, fmt.Sprintf("%s:%d", s.Addr, s.SSHD.Port), delay, rate)
		out = append(out, gridSite{name: name, site: s, ssh: s.SSHD.Via(t, addr), link: link})
	}
	return out
}

// clusterLine is the site's cluster line of a cluster file.
func (g gridSite) clusterLine() string {
	return fmt.Sprintf("cluster %s ssh %s@%s:%d identity %s known-hosts %s", g.name, g.ssh.User, g.ssh.Host, g.ssh.Port,
		g.ssh.Identity, g.ssh.KnownHosts)
}

// gridCleanHeads removes, when the test ends, what the grid's heads left
// in the user's ~/.orrery on the sites' machines (this machine): each
// head's directory and the copied binary.
func gridCleanHeads(t *testing.T, dir string, names ...string) {
	t.Cleanup(func() {
		home, err := os.UserHomeDir()
		if err != nil {
			return
		}
		if id := gridID(t, dir); id != "" {
			for _, n := range names {
				os.RemoveAll(filepath.Join(home, ".orrery", "h", id+"-"+n))
			}
		}
		if f, err := os.Open(e2eBinary(t)); err == nil {
			h := sha256.New()
			io.Copy(h, f)
			f.Close()
			os.Remove(filepath.Join(home, ".orrery", "bin", "orrery-"+hex.EncodeToString(h.Sum(nil))[:16]))
		}
	})
}

// gridID is the experiment's identity in its heads' directory names.
func gridID(t *testing.T, dir string) string {
	a, err := pki.Open(filepath.Join(dir, ".orrery"))
	if err != nil {
		return ""
	}
	return headctl.ExperimentID(a.CACert().Raw, 1)
}

// TestGridThreeSites runs a sweep over three sites whose firewalls let
// in only SSH to their heads and let nothing out to the root: the root
// starts each head over SSH (through a wide-area link), each head
// reaches the root's port only through its SSH connection's forwarded
// socket, and inputs and results cross both ways through the heads.
func TestGridThreeSites(t *testing.T) {
	start := time.Now()
	sites := newGridSites(t, 20*time.Millisecond, 4<<20, "north", "south", "east")
	made := time.Now()
	t.Logf("sites: %s", made.Sub(start))
	const n = 30
	var cf strings.Builder
	for i, s := range sites {
		fmt.Fprintf(&cf, "%s\n    node %s1 job-limit %d\n", s.clusterLine(), s.name, 1+i%2)
	}
	dir := gridDir(t, n, cf.String())
	gridCleanHeads(t, dir, "north", "south", "east")
	began := time.Now()
	code, stdout, stderr := e2eRun(t, dir, 3*time.Minute, "run", "--cluster", "grid.cluster", "p.pln")
	t.Logf("the run took %s (sites made in %s)", time.Since(began), began.Sub(made))
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	t.Logf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	e2eResults(t, filepath.Join(dir, "results"), gridWant(n))
	per := map[string]int{}
	for _, j := range e2eJobs(t, dir) {
		if j.State != "done" {
			t.Errorf("job %d is %s", j.Index, j.State)
		}
	}
	for _, line := range strings.Split(e2eMust(t, dir, "joblog"), "\n") {
		for _, s := range sites {
			if strings.Contains(line, "\t"+s.name+"/") {
				per[s.name]++
			}
		}
	}
	for _, s := range sites {
		if per[s.name] == 0 {
			t.Errorf("site %s ran no job (joblog hosts %v)", s.name, per)
		}
		if in, out := s.site.Dropped(t); out != 0 {
			t.Logf("site %s: its firewall dropped %d packets in, %d out", s.name, in, out)
		}
	}
}
