package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"orrery/protocol"
)

const reviewPlan = "parameter x integer range from 1 to 2\ntask main\n\texec sleep 30\nendtask\n"

func welcomeMsg() *protocol.Msg {
	return &protocol.Msg{Type: protocol.TypeWelcome, Welcome: &protocol.Welcome{Node: "n1", Experiment: 1,
		PlanName: "p.pln", PlanText: reviewPlan, Dialect: "modern", Names: []string{"x"}, Heartbeat: 50 * time.Millisecond}}
}

// The root closes the connection (it dropped the node) while the parent
// context lives: Run should return (and stop its attempts).
func TestRunReturnsWhenConnectionEnds(t *testing.T) {
	a, b := net.Pipe()
	done := make(chan error, 1)
	go func() { done <- Run(context.Background(), b, Config{Name: "n1", CPUs: 1, WorkDir: t.TempDir()}) }()
	root := protocol.NewConn(a)
	go func() {
		root.Recv() // register
		root.Send(welcomeMsg())
		root.Send(&protocol.Msg{Type: protocol.TypeStart, Start: &protocol.Start{Job: 1, Attempt: 1, Values: []string{"1"}}})
		time.Sleep(300 * time.Millisecond)
		root.Close()
	}()
	select {
	case err := <-done:
		t.Logf("Run returned %v", err)
	case <-time.After(5 * time.Second):
		t.Errorf("HANG: agent.Run has not returned 5 s after the root closed the connection (n.wg.Wait runs before cancel)")
	}
}

// A revoked node: Serve should exit with ErrRefused.
func TestServeReturnsOnRefusal(t *testing.T) {
	calls := 0
	dial := func(ctx context.Context) (*protocol.Conn, error) {
		calls++
		if calls > 1 {
			return nil, fmt.Errorf("%w: revoked", ErrRefused)
		}
		a, b := net.Pipe()
		root := protocol.NewConn(a)
		go func() {
			root.Recv()
			root.Send(welcomeMsg())
			time.Sleep(300 * time.Millisecond)
			root.Close()
		}()
		return protocol.NewConnLimits(b, protocol.NodeLimits), nil
	}
	done := make(chan error, 1)
	go func() { done <- Serve(context.Background(), dial, Config{Name: "n1", CPUs: 1, WorkDir: t.TempDir()}) }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrRefused) {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Errorf("HANG: agent.Serve has not returned 5 s after the root refused it (exit status 3 never happens)")
	}
}
