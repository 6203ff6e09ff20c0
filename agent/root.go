package agent

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"sync/atomic"
	"syscall"

	"orrery/protocol"
	"orrery/task"
)

// root is the root's side of a copy as an attempt sees it: requests go
// over the connection there is now; while there is none they wait for
// the next one (until the attempt's context ends), and a request cut off
// by a lost connection is made again on the next one when that is safe
// (nothing of it was consumed yet). When moved is set, it counts the
// bytes the attempt's copies move each way.
type root struct {
	now   func(context.Context) (*protocol.Peer, error) // the connection now, waiting for one
	lost  func(*protocol.Peer)                          // told that a request lost its connection
	moved *staged
}

// ReconnectingRoot is the root directory over whatever connection there
// is now, as a node agent's attempts see it: now returns the connection
// now, waiting for one (until its context ends); lost is told of a
// connection lost under a request, which is then made again over the
// next one when that is safe (a read goes on from where it stopped).
// Errors the root flags as its own system failures wrap
// task.ErrRootSystem. A cluster's head reaches its root this way.
func ReconnectingRoot(now func(context.Context) (*protocol.Peer, error), lost func(*protocol.Peer)) task.Root {
	return root{now: now, lost: lost}
}

// staged counts the bytes an attempt's copies move: in, from the root
// to the node; out, from the node to the root.
type staged struct{ in, out atomic.Int64 }

// fill records the counts in an attempt's result.
func (s *staged) fill(res *protocol.Result) {
	res.StagedIn, res.StagedOut = s.in.Load(), s.out.Load()
}

var _ task.Root = root{}

// retry runs f on the connection there is now, and again on the next
// one when the connection was lost under it.
func (r root) retry(ctx context.Context, f func(*protocol.Peer) error) error {
	for {
		p, err := r.now(ctx)
		if err != nil {
			return err
		}
		err = f(p)
		if err == nil || !lostConnection(err) || errors.Is(err, task.ErrRootSystem) || ctx.Err() != nil {
			return replyErr(err)
		}
		r.lost(p)
	}
}

// lostConnection reports whether err is the connection's, not the
// request's.
func lostConnection(err error) bool {
	var op *net.OpError
	return errors.Is(err, protocol.ErrLost) || errors.As(err, &op) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, io.ErrClosedPipe) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// replyErr marks an error the root flagged as its own system failure,
// so the attempt fails as the system's and the job runs again.
func replyErr(err error) error {
	var re *protocol.ReplyError
	if errors.As(err, &re) && re.System {
		return errors.Join(task.ErrRootSystem, err)
	}
	return err
}

// Stat implements task.Root.
func (r root) Stat(ctx context.Context, name string) (fi fs.FileInfo, err error) {
	err = r.retry(ctx, func(p *protocol.Peer) (e error) {
		fi, e = p.Stat(ctx, name)
		return e
	})
	return fi, err
}

// Glob implements task.Root.
func (r root) Glob(ctx context.Context, pattern string) (names []string, err error) {
	err = r.retry(ctx, func(p *protocol.Peer) (e error) {
		names, e = p.Glob(ctx, pattern)
		return e
	})
	return names, err
}

// Open implements task.Root. A read cut off by a lost connection goes on
// over the next one from where it stopped.
func (r root) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	f := &resumingFile{r: r, ctx: ctx, name: name}
	if err := f.open(); err != nil {
		return nil, err
	}
	return f, nil
}

// resumingFile is a root file read over whatever connection there is.
type resumingFile struct {
	r    root
	ctx  context.Context
	name string
	rc   io.ReadCloser
	off  int64
}

func (f *resumingFile) open() error {
	return f.r.retry(f.ctx, func(p *protocol.Peer) (e error) {
		f.rc, e = p.OpenAt(f.ctx, f.name, f.off)
		return e
	})
}

func (f *resumingFile) Read(b []byte) (int, error) {
	for {
		n, err := f.rc.Read(b)
		f.off += int64(n)
		if f.r.moved != nil {
			f.r.moved.in.Add(int64(n))
		}
		if n > 0 || err == nil || err == io.EOF || !lostConnection(err) || f.ctx.Err() != nil {
			return n, err
		}
		f.rc.Close()
		if err := f.open(); err != nil {
			return 0, err
		}
	}
}

func (f *resumingFile) Close() error { return f.rc.Close() }

// Put implements task.Root: made again on the next connection when the
// connection was lost before any of r was read.
func (r root) Put(ctx context.Context, name string, perm fs.FileMode, in io.Reader) error {
	cr := &countingReader{r: in}
	err := r.retry(ctx, func(p *protocol.Peer) error {
		err := p.Put(ctx, name, perm, cr)
		if err != nil && cr.n > 0 && lostConnection(err) {
			return errors.Join(task.ErrRootSystem, err) // not safe to send again
		}
		return err
	})
	if r.moved != nil {
		r.moved.out.Add(cr.n)
	}
	return err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.n += int64(n)
	return n, err
}
