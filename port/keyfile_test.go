package port_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"orrery/agent"
	"orrery/pki"
	"orrery/port"
)

// TestKeyFileKeepsIdentity checks that a client with a KeyFile (a
// cluster head) that starts again shows the certificate it was enrolled
// with: it keeps its node ID, and needs no join secret, even one rotated
// out; the file is its user's alone. A damaged file is refused in one
// line that says what to do.
func TestKeyFileKeepsIdentity(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})
	keys := filepath.Join(t.TempDir(), "node.pem")
	first := f.client("head")
	first.KeyFile = keys
	f.join(first).Close()
	id := first.Node()
	fi, err := os.Stat(keys)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
	}
	cli, err := pki.Open(f.stateDir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Rotate(); err != nil {
		t.Fatal(err)
	}
	again := f.client("head") // a new process: nothing in memory
	again.KeyFile = keys
	f.join(again).Close()
	if again.Node() != id {
		t.Fatalf("came back as %q, want %q", again.Node(), id)
	}
	if err := os.WriteFile(keys, []byte("not a key\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := f.client("head")
	broken.KeyFile = keys
	_, err = broken.Dial(context.Background())
	if err == nil || errors.Is(err, agent.ErrRefused) || !containsAll(err.Error(), keys, "remove the file") {
		t.Fatalf("Dial with a damaged key file: %v", err)
	}
}

// TestDialUnixSocket checks that a client reaches the root's port
// through a Unix socket that leads to it (as an SSH-forwarded socket
// does on a cluster's head).
func TestDialUnixSocket(t *testing.T) {
	f := newFixture(t, port.Config{HelloTimeout: 5 * time.Second})
	sock := filepath.Join(t.TempDir(), "root.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r, err := net.Dial("tcp", f.addr)
				if err != nil {
					return
				}
				defer r.Close()
				go func() { copyAll(r, c); r.(*net.TCPConn).CloseWrite() }()
				copyAll(c, r)
			}()
		}
	}()
	c := f.client("via-socket")
	c.Addr = "unix:" + sock
	f.join(c).Close()
	if c.Node() == "" {
		t.Fatal("no node ID after enrolling through the socket")
	}
}

func copyAll(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
