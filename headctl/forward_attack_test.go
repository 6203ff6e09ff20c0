package headctl

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestAttackForwardedSocket: the socket the root's SSH connection
// forwards into the head's directory is its user's alone (sshd's
// StreamLocalBindMask, 0177 by default, in a 0700 directory), and a
// socket left there (a stale one, or one a process planted to catch the
// head's connection and its secret) is replaced: the head's connections
// reach the root's port, not the planted listener.
func TestAttackForwardedSocket(t *testing.T) {
	r := newRig(t)
	if err := os.MkdirAll(r.dir(), 0o700); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(r.dir(), sockName)
	planted, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	planted.(*net.UnixListener).SetUnlinkOnClose(false)
	defer planted.Close()
	caught := make(chan string, 1)
	go func() {
		c, err := planted.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		caught <- line
	}()
	r.launch(r.spec(standIn(t, "socket")))
	fi, err := os.Lstat(sock)
	if err != nil || fi.Mode().Type() != os.ModeSocket {
		t.Fatalf("%s: %v, %v; want the forwarded socket", sock, fi, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		t.Errorf("the forwarded socket has mode %04o: other users may connect", perm)
	}
	if d, err := os.Stat(r.dir()); err != nil || d.Mode().Perm() != 0o700 {
		t.Errorf("the head's directory: %v, %v; want mode 0700", d.Mode().Perm(), err)
	}
	if err := r.talk(); err != nil {
		t.Fatalf("through the forwarded socket: %v", err)
	}
	select {
	case line := <-caught:
		t.Errorf("the planted socket caught %q", line)
	default:
	}
}
