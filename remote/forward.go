package remote

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path"
	"sync"
)

// MaxSocketPath is the longest remote socket path ListenUnix accepts:
// sun_path holds 108 bytes on Linux, 104 on the BSDs, with its NUL.
const MaxSocketPath = 100

// MaxRelayed bounds the connections Relay carries at once; more are
// closed as they arrive.
const MaxRelayed = 64

// ListenUnix asks the server to listen on a Unix socket at path (an
// absolute path) on the remote machine and returns a listener whose
// connections come through the SSH connection: the way a head behind a
// firewall reaches its root. OpenSSH creates the socket with its
// StreamLocalBindMask (0177 by default: only the remote user may
// connect) and, with Debian's default StreamLocalBindUnlink no, does
// not replace an existing file, so a socket left by an earlier
// connection is removed first; a path that exists and is not a socket
// is refused. The parent directory is created (mode 0700) when missing.
// Closing the listener cancels the forward.
func (c *Client) ListenUnix(ctx context.Context, socket string) (net.Listener, error) {
	if !path.IsAbs(socket) || len(socket) > MaxSocketPath {
		return nil, fmt.Errorf("ssh %s: remote socket %q: must be an absolute path of at most %d bytes", c.endpoint, socket, MaxSocketPath)
	}
	q := shellQuote(socket)
	script := fmt.Sprintf(`p=%s
mkdir -p -m 700 -- "$(dirname -- "$p")" || exit 1
if [ -S "$p" ]; then rm -f -- "$p" || exit 1
elif [ -e "$p" ] || [ -L "$p" ]; then echo "$p exists and is not a socket" >&2; exit 1; fi`, q)
	_, stderr, exit, err := c.Run(ctx, script, nil)
	if err != nil {
		return nil, err
	}
	if exit != 0 {
		return nil, fmt.Errorf("ssh %s: remote socket %s: %s", c.endpoint, socket, oneLine(stderr, exit))
	}
	var ln net.Listener
	err = c.request(ctx, "forward "+socket, func() error {
		var err error
		ln, err = c.ssh.ListenUnix(socket)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w (refused by the server: see AllowStreamLocalForwarding and DisableForwarding in its sshd_config)", err)
	}
	return ln, nil
}

// Relay carries each connection accepted on ln to a new connection from
// dial (the root's own TLS port, for a head's forwarded socket), both
// ways, until ctx ends or ln fails; then it closes ln and every
// connection it carries, and returns. At most MaxRelayed connections
// are carried at once. A connection whose dial fails is closed.
func Relay(ctx context.Context, ln net.Listener, dial func(context.Context) (net.Conn, error)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	slots := make(chan struct{}, MaxRelayed)
	for {
		in, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("relay: listener closed: %w", err)
			}
			return fmt.Errorf("relay: %w", err)
		}
		select {
		case slots <- struct{}{}:
		default:
			in.Close()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			pipe(ctx, in, dial)
		}()
	}
}

// pipe copies between in and a connection from dial until either side
// ends its stream in both directions, or ctx ends.
func pipe(ctx context.Context, in net.Conn, dial func(context.Context) (net.Conn, error)) {
	defer in.Close()
	out, err := dial(ctx)
	if err != nil {
		return
	}
	defer out.Close()
	stop := context.AfterFunc(ctx, func() { in.Close(); out.Close() })
	defer stop()
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		io.Copy(dst, src)
		if cw, ok := dst.(interface{ CloseWrite() error }); ok {
			cw.CloseWrite()
		} else {
			dst.Close()
		}
		done <- struct{}{}
	}
	go cp(out, in)
	go cp(in, out)
	<-done
	<-done
}
