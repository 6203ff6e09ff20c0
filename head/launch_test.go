package head

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/sshnode"
)

// flakyLauncher fails its first fails launches, then starts the node.
type flakyLauncher struct {
	mu    sync.Mutex
	fails int
	tries int
}

func (l *flakyLauncher) Launch(ctx context.Context, spec sshnode.Spec) (RemoteNode, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.tries++
	if l.tries <= l.fails {
		return nil, errors.New("cluster c: node " + spec.Node.Name + ": dial tcp: connection refused")
	}
	return fakeRemote{}, nil
}

type fakeRemote struct{}

func (fakeRemote) Stop(context.Context) error { return nil }

// TestLaunchRetried checks that a node over SSH that did not start is
// launched again until it does, its failure said once, and that the
// head stopping ends the tries.
func TestLaunchRetried(t *testing.T) {
	defer func(a, b time.Duration) { launchRetryFirst, launchRetryMost = a, b }(launchRetryFirst, launchRetryMost)
	launchRetryFirst, launchRetryMost = time.Millisecond, 4*time.Millisecond
	var said []string
	h := &Head{cfg: Config{Status: func(s string) { said = append(said, s) }}, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	spec := sshnode.Spec{Cluster: "c"}
	spec.Node.Name = "n1"
	l := &flakyLauncher{fails: 5}
	if rn := launchRetrying(context.Background(), h, l, spec); rn == nil || l.tries != 6 {
		t.Fatalf("node %v after %d launches, want it started at the 6th", rn, l.tries)
	}
	if len(said) != 2 || !strings.Contains(said[0], "connection refused (trying again") || !strings.Contains(said[1], "node n1 started") {
		t.Errorf("said %q, want the failure once and the start", said)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l = &flakyLauncher{fails: 1 << 30}
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	if rn := launchRetrying(ctx, h, l, spec); rn != nil {
		t.Fatalf("a launch that never succeeds returned %v", rn)
	}
}
