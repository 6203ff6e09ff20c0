package head

import (
	"context"
	"errors"
	"fmt"
	"time"

	"orrery/agent"
	"orrery/dispatch"
	"orrery/port"
	"orrery/protocol"
)

// sendTimeout bounds each message the head sends its root.
const sendTimeout = 10 * time.Second

// serve keeps a connection to the root: it dials, registers as the
// cluster's head, and serves what the root sends until the connection
// drops, then dials again with backoff, for as long as the lease lasts.
func (h *Head) serve(ctx context.Context) {
	client := &port.Client{Addr: h.cfg.Root, Token: h.cfg.Token, Name: h.cfg.Cluster.Name,
		KeyFile: h.cfg.Dir + "/node.pem", Timeout: 30 * time.Second}
	wait := h.cfg.Retry
	said := time.Time{}
	for ctx.Err() == nil {
		client.Addr = RootAddr(h.cfg.Dir, h.cfg.Root)
		conn, err := client.Dial(ctx)
		if err == nil {
			wait = h.cfg.Retry
			err = h.session(ctx, conn)
			h.mu.Lock()
			h.lastUp = time.Now()
			h.mu.Unlock()
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, agent.ErrRefused) {
			h.fail(fmt.Errorf("the root refused the head's credentials: %w", err))
			return
		}
		h.mu.Lock()
		away := time.Since(h.lastUp)
		h.mu.Unlock()
		if away > h.cfg.Lease {
			h.fail(ErrLeaseExpired)
			return
		}
		if time.Since(said) >= 10*time.Second {
			said = time.Now()
			h.cfg.Status(fmt.Sprintf("cannot reach the root (%v); trying again (lease ends in %s)", err, (h.cfg.Lease - away).Round(time.Second)))
		}
		select {
		case <-ctx.Done():
			return
		case <-h.cfg.Redial:
			wait = h.cfg.Retry
			continue
		case <-time.After(min(wait, h.cfg.Lease-away)):
		}
		wait = min(2*wait, 30*time.Second)
	}
}

// session serves one connection to the root.
func (h *Head) session(ctx context.Context, conn *protocol.Conn) error {
	defer conn.Close()
	sctx, end := context.WithCancel(ctx)
	defer end()
	go func() {
		<-sctx.Done()
		conn.Close()
	}()
	conn.SetSendTimeout(sendTimeout)
	peer := protocol.NewPeer(conn)
	st := h.status()
	err := peer.Send(&protocol.Msg{Type: protocol.TypeRegister, Register: &protocol.Register{
		Version: protocol.Version, Name: h.cfg.Cluster.Name, CPUs: st.CPUs, Speed: 1,
		JobLimit: st.Depth, Head: true, Cluster: h.cfg.Cluster.Name, Running: h.held()}})
	if err != nil {
		return fmt.Errorf("register: %w", err)
	}
	var beats chan struct{}
	err = peer.Run(func(m *protocol.Msg) {
		switch m.Type {
		case protocol.TypeWelcome:
			if m.Welcome == nil {
				return
			}
			select {
			case h.welcomed <- m.Welcome:
			default: // a reconnect: the plan is known
			}
			h.connected(peer)
			if beats == nil {
				beats = make(chan struct{})
				go h.heartbeats(sctx, peer, m.Welcome.Heartbeat, beats)
			}
			h.cfg.Status(fmt.Sprintf("connected to the root as head %s", m.Welcome.Node))
		default:
			h.take(m)
		}
	})
	h.disconnected(peer)
	end()
	if beats != nil {
		<-beats
	}
	return err
}

// take carries out what the root asks of the head's attempts.
func (h *Head) take(m *protocol.Msg) {
	switch m.Type {
	case protocol.TypeStart:
		h.started(m.Start)
	case protocol.TypeCancel:
		if m.Withdraw {
			h.withdrawing(m.Job, m.Attempt)
		} else {
			h.cancelled(m.Job, m.Attempt)
		}
	case protocol.TypeRecorded:
		h.recorded(m.Job, m.Attempt)
	case protocol.TypeShutdown:
		h.shutdown(m.Error)
	}
}

// heartbeats tells the root the head is alive, with its cluster's view.
func (h *Head) heartbeats(ctx context.Context, p *protocol.Peer, every time.Duration, done chan struct{}) {
	defer close(done)
	if every <= 0 {
		every = time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			st := h.status()
			if p.Send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: &protocol.Heartbeat{
				Running: st.Running, Cluster: st}}) != nil {
				return
			}
		}
	}
}

// connected makes p the connection the head uses, and has the reporter
// send the ends the root does not have.
func (h *Head) connected(p *protocol.Peer) {
	h.mu.Lock()
	if h.peer == nil {
		close(h.up)
	}
	h.peer = p
	h.gen++
	h.lastUp = time.Now()
	h.mu.Unlock()
	h.poke(h.report)
}

func (h *Head) disconnected(p *protocol.Peer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.peer == p {
		h.peer = nil
		h.up = make(chan struct{})
		h.lastUp = time.Now()
	}
}

// current returns the connection now, waiting for one.
func (h *Head) current(ctx context.Context) (*protocol.Peer, int, error) {
	for {
		h.mu.Lock()
		p, gen, up := h.peer, h.gen, h.up
		h.mu.Unlock()
		if p != nil {
			return p, gen, nil
		}
		select {
		case <-up:
		case <-ctx.Done():
			return nil, 0, ctx.Err()
		}
	}
}

// reporter sends the root each end it does not have yet: first the
// attempt's results (from its spool), then the end, once per
// connection, until the root says it recorded it.
func (h *Head) reporter(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-h.report:
		}
		for {
			p, gen, err := h.current(ctx)
			if err != nil {
				return
			}
			if s, ok := h.nextStart(gen); ok {
				err := p.Send(&protocol.Msg{Type: protocol.TypeEvent, Event: &protocol.Event{
					Kind: protocol.EventStarted, Job: s.Job, Attempt: s.Attempt}})
				if err == nil {
					h.mu.Lock()
					h.startSent[s.Job] = gen
					h.mu.Unlock()
				}
				continue
			}
			e, ok := h.nextEnd(gen)
			if !ok {
				break
			}
			if err := h.send(ctx, p, e); err != nil {
				h.log.Warn("sending an end to the root", "job", e.Job, "attempt", e.Attempt, "err", err)
				if ctx.Err() != nil {
					return
				}
				p.Send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: &protocol.Heartbeat{}}) // probe
				select {
				case <-ctx.Done():
					return
				case <-time.After(h.cfg.Retry):
				}
				continue
			}
			h.mu.Lock()
			if cur := h.j.entries[e.Job]; cur != nil && cur.Attempt == e.Attempt {
				h.sent[e.Job] = gen
			}
			h.mu.Unlock()
		}
	}
}

// nextStart is an attempt that started on a node, whose start was not
// yet said on connection gen.
func (h *Head) nextStart(gen int) (entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.j.entries {
		if e.started && e.Result == nil && h.startSent[e.Job] != gen {
			return *e, true
		}
	}
	return entry{}, false
}

// nextEnd is an end not yet sent on connection gen.
func (h *Head) nextEnd(gen int) (entry, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var best *entry
	for _, e := range h.j.entries {
		if e.Result != nil && h.sent[e.Job] != gen && (best == nil || e.Job < best.Job) {
			best = e
		}
	}
	if best == nil {
		return entry{}, false
	}
	return *best, true
}

// send uploads an attempt's results, then reports its end.
func (h *Head) send(ctx context.Context, p *protocol.Peer, e entry) error {
	res := *e.Result
	if res.OK {
		sp, err := h.cache.Spool(e.Job, e.Attempt)
		if err != nil {
			return err
		}
		if err := sp.Flush(ctx, p); err != nil {
			if ctx.Err() == nil && !errors.Is(err, protocol.ErrLost) {
				// The root refused a result: the attempt fails as the
				// root's side, and runs again.
				res = protocol.Result{System: true, Side: protocol.SideRoot,
					Error: fmt.Sprintf("copying results from head %s to the root: %v", h.cfg.Cluster.Name, err)}
			} else {
				return err
			}
		}
	}
	return p.Send(&protocol.Msg{Type: protocol.TypeEvent, Event: &protocol.Event{
		Kind: protocol.EventEnded, Job: e.Job, Attempt: e.Attempt, Result: &res}})
}

var _ dispatch.Feed = (*Head)(nil)
