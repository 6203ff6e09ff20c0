package agent

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/protocol"
	"orrery/task"
)

// drainNode runs a node with cfg's drain settings over a pipe, plays the
// dispatcher (register, welcome, heartbeats) and returns the dispatcher's
// end, the register, when the welcome was sent, and Run's result.
func drainNode(t *testing.T, mod func(*Config)) (*protocol.Conn, *protocol.Register, time.Time, <-chan error, *statusLog) {
	t.Helper()
	a, b := net.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	st := &statusLog{}
	cfg := Config{Name: "p1", CPUs: 1, WorkDir: t.TempDir(), Exec: task.Options{KillGrace: 200 * time.Millisecond},
		Status: st.add}
	mod(&cfg)
	go func() { done <- Run(ctx, b, cfg) }()
	t.Cleanup(func() {
		cancel()
		a.Close()
	})
	conn := protocol.NewConn(a)
	conn.SetSendTimeout(5 * time.Second)
	m, err := conn.Recv()
	if err != nil || m.Type != protocol.TypeRegister {
		t.Fatalf("first message: %+v, %v; want a register", m, err)
	}
	err = conn.Send(&protocol.Msg{Type: protocol.TypeWelcome, Welcome: &protocol.Welcome{Node: "p1", Experiment: 1,
		PlanName: "t.pln", PlanText: "parameter x integer range from 1 to 2\ntask main\n\texec true\nendtask\n",
		Dialect: "modern", Names: []string{"x"}, Heartbeat: 50 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return conn, m.Register, time.Now(), done, st
}

// statusLog keeps the node's status lines.
type statusLog struct {
	mu    sync.Mutex
	lines []string
}

func (s *statusLog) add(line string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
}

func (s *statusLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.lines, "\n")
}

// untilDraining reads heartbeats until one says the node drains, and
// returns when it came; it fails on anything else, or after 10 s.
func untilDraining(t *testing.T, conn *protocol.Conn) time.Time {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer conn.SetReadDeadline(time.Time{})
	for {
		m, err := conn.Recv()
		if err != nil {
			t.Fatalf("waiting for a heartbeat that says draining: %v", err)
		}
		if m.Type != protocol.TypeHeartbeat {
			t.Fatalf("got %s while waiting for a heartbeat that says draining", m.Type)
		}
		if m.Heartbeat.Draining {
			return time.Now()
		}
	}
}

// shutDown sends the node a shutdown, as the dispatcher does once a
// node that drains has nothing left, and checks that Run returns nil
// at once, having said it drained.
func shutDown(t *testing.T, conn *protocol.Conn, done <-chan error, drained *bool, st *statusLog) {
	t.Helper()
	if err := conn.Send(&protocol.Msg{Type: protocol.TypeShutdown, Error: "node p1 drained"}); err != nil {
		t.Fatal(err)
	}
	go func() { // take what it still sends, until it closes the connection
		for {
			if _, err := conn.Recv(); err != nil {
				return
			}
		}
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after the shutdown: %v, want nil (a clean shutdown)", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after the shutdown")
	}
	if !*drained {
		t.Error("Config.Drained was not called")
	}
	if s := st.String(); !strings.Contains(s, "drained") || strings.Contains(s, "ended the experiment") {
		t.Errorf("status lines:\n%s\nwant one that says it drained, none that the experiment ended", s)
	}
}

// TestIdleExitDrains: a node with IdleExit 1 s that is given no work
// drains about 1 s after it registered (its heartbeats say so), takes
// the dispatcher's shutdown, and Run returns nil.
func TestIdleExitDrains(t *testing.T) {
	drained := false
	conn, reg, welcomed, done, st := drainNode(t, func(c *Config) {
		c.IdleExit = time.Second
		c.Drained = func() { drained = true }
	})
	if reg.EndsIn != 0 {
		t.Errorf("register says the node ends in %v; it has no end", reg.EndsIn)
	}
	at := untilDraining(t, conn)
	if idle := at.Sub(welcomed); idle < 900*time.Millisecond {
		t.Fatalf("it drained after %v idle, want about 1 s", idle)
	}
	shutDown(t, conn, done, &drained, st)
}

// TestEndsInDrains: a node whose batch system ends it 2 s after it
// started says so in its register (less what has passed), drains once
// the end less its margin (half of so short a limit: 1 s) has come,
// and leaves on the shutdown.
func TestEndsInDrains(t *testing.T) {
	drained := false
	conn, reg, welcomed, done, st := drainNode(t, func(c *Config) {
		c.EndsIn = 2 * time.Second
		c.Drained = func() { drained = true }
	})
	if reg.EndsIn <= 1500*time.Millisecond || reg.EndsIn > 2*time.Second {
		t.Errorf("register says the node ends in %v, want just under 2 s", reg.EndsIn)
	}
	at := untilDraining(t, conn)
	if early := at.Sub(welcomed); early < 800*time.Millisecond {
		t.Fatalf("it drained %v after it started, want about 1 s (2 s less its margin of 1 s)", early)
	}
	shutDown(t, conn, done, &drained, st)
}

func TestDrainMargin(t *testing.T) {
	for _, c := range []struct{ limit, want time.Duration }{
		{2 * time.Second, time.Second},       // at most half the limit
		{10 * time.Minute, time.Minute},      // at least a minute
		{4 * time.Hour, 12 * time.Minute},    // 5%
		{90 * time.Second, 45 * time.Second}, // half, below a minute
	} {
		if got := drainMargin(c.limit); got != c.want {
			t.Errorf("drainMargin(%v) = %v, want %v", c.limit, got, c.want)
		}
	}
}
