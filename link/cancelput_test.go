package link_test

import (
	"os"
	"path/filepath"
	"testing"

	"orrery/link"
	"orrery/protocol"
	"orrery/task"
)

// A create begun before the cancel goes on after it: the cancelled
// attempt's file replaces the root's result once the node closes it.
func TestPutInFlightDiscardedOnCancel(t *testing.T) {
	dir := rootDir(t)
	d := &recorder{start: access(t, 2)}
	l := serve(t, d, link.Config{Root: task.ConfinedRoot{Dir: dir}})
	l.read()
	l.register()
	l.expect(protocol.TypeWelcome)
	l.expect(protocol.TypeStart)
	// Pretend the winner's result is already on the root.
	os.MkdirAll(filepath.Join(dir, "results"), 0o755)
	write(t, filepath.Join(dir, "results", "out-2.txt"), "the winner's result\n")

	l.send(&protocol.Msg{Type: protocol.TypeCreate, ID: 7, Path: "results/out-2.txt", Mode: 0o644})
	l.send(&protocol.Msg{Type: protocol.TypeData, ID: 7, Data: []byte("loser ")})
	l.beat() // the create is in progress on the root
	d.theNode().Cancel(2, 1)
	l.expect(protocol.TypeCancel)
	// still allowed to stream and close after the cancel
	l.send(&protocol.Msg{Type: protocol.TypeData, ID: 7, Data: []byte("written after the cancel\n")})
	l.send(&protocol.Msg{Type: protocol.TypeClose, ID: 7})
	s := l.answer(7)
	b, _ := os.ReadFile(filepath.Join(dir, "results", "out-2.txt"))
	t.Logf("reply %+v; file now %q", s.reply, b)
	if string(b) != "the winner's result\n" {
		t.Errorf("a cancelled attempt's create, begun before the cancel, replaced the result: %q", b)
	}
}
