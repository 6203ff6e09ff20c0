package link_test

import (
	"fmt"
	"testing"
	"time"

	"orrery/link"
	"orrery/protocol"
	"orrery/task"
)

// MaxRequests creates in progress and one more request: the reader waits
// for a slot that only the creates' data frames (behind it) can free.
func TestCreatesDoNotBlockTheReader(t *testing.T) {
	dir := rootDir(t)
	d := &recorder{start: access(t, 2)}
	l := serve(t, d, link.Config{Root: task.ConfinedRoot{Dir: dir}, MaxRequests: 2})
	l.read()
	l.register()
	l.expect(protocol.TypeWelcome)
	l.expect(protocol.TypeStart)
	// two creates of the granted result (as two attempts' copies would be), one open
	l.send(&protocol.Msg{Type: protocol.TypeCreate, ID: 1, Path: "results/out-2.txt", Mode: 0o644})
	l.send(&protocol.Msg{Type: protocol.TypeCreate, ID: 2, Path: "results/out-2.txt", Mode: 0o644})
	l.send(&protocol.Msg{Type: protocol.TypeOpen, ID: 3, Path: "in-2.txt"})
	go func() {
		for _, id := range []uint64{1, 2} {
			l.node.Send(&protocol.Msg{Type: protocol.TypeData, ID: id, Data: []byte("r\n")})
			l.node.Send(&protocol.Msg{Type: protocol.TypeClose, ID: id})
		}
		l.node.Send(&protocol.Msg{Type: protocol.TypeHeartbeat, Heartbeat: &protocol.Heartbeat{}})
	}()
	time.Sleep(3 * time.Second)
	_, _, beats, gone := d.counts()
	var got []string
	for {
		select {
		case m := <-l.msgs:
			got = append(got, fmt.Sprintf("%s#%d", m.Type, m.ID))
			continue
		default:
		}
		break
	}
	t.Logf("after 2 s: heartbeats forwarded %d, gone %d, node got %v", beats, gone, got)
	if beats == 0 {
		t.Errorf("DEADLOCK: the link's reader waits for a staging slot held by creates whose data is behind it; heartbeats stop, the node will be lost")
	}
}
