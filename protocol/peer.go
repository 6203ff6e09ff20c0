package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"
)

// ErrLost is the error of a staging request whose connection ended.
var ErrLost = errors.New("connection to the root lost")

// Peer is the agent's end of a connection: it reads every message, hands
// answers to the staging request that waits for them, and passes all other
// messages to a handler. It implements agent.Root over the connection, so
// a node's copies go to and from the root as real bytes on the wire.
type Peer struct {
	conn *Conn

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *Msg
	closed  error
}

// NewPeer returns a peer over conn.
func NewPeer(conn *Conn) *Peer {
	return &Peer{conn: conn, pending: map[uint64]chan *Msg{}}
}

// Send sends a message.
func (p *Peer) Send(m *Msg) error { return p.conn.Send(m) }

// Run reads messages until the connection ends, calling handle for each
// one that is not the answer to a staging request. handle must not block
// for long: it runs on the reading goroutine.
func (p *Peer) Run(handle func(*Msg)) error {
	for {
		m, err := p.conn.Recv()
		if err != nil {
			p.fail(err)
			return err
		}
		if m.ID != 0 && (m.Type == TypeData || m.Type == TypeReply) {
			p.mu.Lock()
			ch := p.pending[m.ID]
			p.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		handle(m)
	}
}

// fail ends every waiting request with err.
func (p *Peer) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = fmt.Errorf("%w: %v", ErrLost, err)
	for id, ch := range p.pending {
		close(ch)
		delete(p.pending, id)
	}
}

// begin registers a new request and returns its ID and answer channel.
func (p *Peer) begin() (uint64, chan *Msg, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed != nil {
		return 0, nil, p.closed
	}
	p.nextID++
	ch := make(chan *Msg, 64)
	p.pending[p.nextID] = ch
	return p.nextID, ch, nil
}

func (p *Peer) end(id uint64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.pending, id)
}

// wait returns the next answer to request id.
func (p *Peer) wait(ctx context.Context, ch chan *Msg) (*Msg, error) {
	select {
	case m, ok := <-ch:
		if !ok {
			p.mu.Lock()
			defer p.mu.Unlock()
			return nil, p.closed
		}
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// call sends a request and waits for its reply.
func (p *Peer) call(ctx context.Context, m *Msg) (*Msg, error) {
	id, ch, err := p.begin()
	if err != nil {
		return nil, err
	}
	defer p.end(id)
	m.ID = id
	if err := p.conn.Send(m); err != nil {
		return nil, err
	}
	r, err := p.wait(ctx, ch)
	if err != nil {
		return nil, err
	}
	return r, replyError(r)
}

// replyError turns an error carried by a reply into an error value.
func replyError(m *Msg) error {
	if m.Error == "" {
		return nil
	}
	if m.NotExist {
		return &fs.PathError{Op: "open", Path: "root:" + m.Path, Err: fs.ErrNotExist}
	}
	return errors.New(m.Error)
}

// Open implements agent.Root: the root streams the file in data frames.
func (p *Peer) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	id, ch, err := p.begin()
	if err != nil {
		return nil, err
	}
	if err := p.conn.Send(&Msg{Type: TypeOpen, ID: id, Path: name}); err != nil {
		p.end(id)
		return nil, err
	}
	first, err := p.wait(ctx, ch)
	if err == nil {
		err = replyError(first)
	}
	if err != nil {
		p.end(id)
		return nil, err
	}
	return &remoteFile{p: p, id: id, ch: ch, ctx: ctx, buf: first.Data, eof: first.EOF}, nil
}

// remoteFile reads a root file arriving in data frames.
type remoteFile struct {
	p   *Peer
	id  uint64
	ch  chan *Msg
	ctx context.Context
	buf []byte
	eof bool
}

func (f *remoteFile) Read(b []byte) (int, error) {
	for len(f.buf) == 0 {
		if f.eof {
			return 0, io.EOF
		}
		m, err := f.p.wait(f.ctx, f.ch)
		if err != nil {
			return 0, err
		}
		if err := replyError(m); err != nil {
			return 0, err
		}
		f.buf, f.eof = m.Data, m.EOF
	}
	n := copy(b, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

// Close stops reading; frames still arriving are dropped.
func (f *remoteFile) Close() error {
	f.p.end(f.id)
	return nil
}

// Stat implements agent.Root.
func (p *Peer) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	r, err := p.call(ctx, &Msg{Type: TypeStat, Path: name})
	if err != nil {
		return nil, err
	}
	if r.Info == nil {
		return nil, fmt.Errorf("stat %s: the root sent no answer", name)
	}
	return r.Info, nil
}

// Glob implements agent.Root.
func (p *Peer) Glob(ctx context.Context, pattern string) ([]string, error) {
	r, err := p.call(ctx, &Msg{Type: TypeGlob, Path: pattern})
	if err != nil {
		return nil, err
	}
	return r.Paths, nil
}

// Put implements agent.Root: the file goes in data frames and appears on
// the root only when complete.
func (p *Peer) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error {
	id, ch, err := p.begin()
	if err != nil {
		return err
	}
	defer p.end(id)
	if err := p.conn.Send(&Msg{Type: TypeCreate, ID: id, Path: name, Mode: uint32(perm.Perm())}); err != nil {
		return err
	}
	buf := make([]byte, ChunkSize)
	for {
		select {
		case m := <-ch: // the root gave up early (it could not create the file)
			if m != nil {
				return replyError(m)
			}
		default:
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := p.conn.Send(&Msg{Type: TypeData, ID: id, Data: buf[:n]}); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			p.conn.Send(&Msg{Type: TypeClose, ID: id, Error: rerr.Error()})
			return rerr
		}
	}
	if err := p.conn.Send(&Msg{Type: TypeClose, ID: id}); err != nil {
		return err
	}
	m, err := p.wait(ctx, ch)
	if err != nil {
		return err
	}
	return replyError(m)
}

// FileInfo is a root file's description, as sent over the wire. It
// implements fs.FileInfo.
type FileInfo struct {
	FName    string    `json:"name"`
	FSize    int64     `json:"size"`
	FMode    uint32    `json:"mode"`
	FModTime time.Time `json:"mtime"`
}

// Name implements fs.FileInfo.
func (i *FileInfo) Name() string { return i.FName }

// Size implements fs.FileInfo.
func (i *FileInfo) Size() int64 { return i.FSize }

// Mode implements fs.FileInfo.
func (i *FileInfo) Mode() fs.FileMode { return fs.FileMode(i.FMode) }

// ModTime implements fs.FileInfo.
func (i *FileInfo) ModTime() time.Time { return i.FModTime }

// IsDir implements fs.FileInfo.
func (i *FileInfo) IsDir() bool { return i.Mode().IsDir() }

// Sys implements fs.FileInfo.
func (i *FileInfo) Sys() any { return nil }
