// Package netnstest holds what tests that make network namespaces share:
// removing a namespace with the processes left in it, removing those
// that test processes no longer running left behind, and skipping (or,
// in CI, failing) tests on a machine that cannot make them.
package netnstest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Delete kills the processes left in namespace name and deletes it; its
// veth pairs and firewall rules go with it.
func Delete(name string) error {
	if out, err := exec.Command("ip", "netns", "pids", name).Output(); err == nil {
		for _, f := range strings.Fields(string(out)) {
			if pid, err := strconv.Atoi(f); err == nil && pid > 1 && pid != os.Getpid() {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	var err error
	for range 100 { // a process just killed may hold the namespace for a moment
		var out []byte
		if out, err = exec.Command("ip", "netns", "del", name).CombinedOutput(); err == nil {
			return nil
		}
		err = fmt.Errorf("ip netns del %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		time.Sleep(20 * time.Millisecond)
	}
	return err
}

// RemoveStale deletes the namespaces whose names match pattern, whose
// first submatch is the PID of the test process that made them, when
// that process no longer exists.
func RemoveStale(pattern *regexp.Regexp) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		m := pattern.FindStringSubmatch(f[0])
		if len(m) < 2 {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || Alive(pid) {
			continue
		}
		Delete(f[0])
	}
}

// Alive reports whether process pid exists.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Gate decides once per test process whether its tests can run here.
type Gate struct {
	// What names the tests in messages ("the site tests").
	What string
	// Needs names what they need, for the message of a skip ("root,
	// `ip netns` and iptables" when empty).
	Needs string
	// Probe returns why the tests cannot run here, or nil.
	Probe func() error

	once sync.Once
	err  error
}

// Require returns when the tests can run here; otherwise it fails the
// test in CI (CI=true, where .ci/run installs what they need and they
// run as root) and skips it elsewhere.
func (g *Gate) Require(t testing.TB) {
	t.Helper()
	g.once.Do(func() {
		if os.Geteuid() != 0 {
			g.err = errors.New("not running as root")
			return
		}
		g.err = g.Probe()
	})
	if g.err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s cannot run here: %v (CI runs them as root, with iproute2, nftables and iptables installed by .ci/run)", g.What, g.err)
	}
	needs := g.Needs
	if needs == "" {
		needs = "root, `ip netns` and iptables"
	}
	t.Skipf("%s need %s: %v", g.What, needs, g.err)
}
