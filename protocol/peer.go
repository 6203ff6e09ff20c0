package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"sync/atomic"
	"time"
)

// ErrLost is the error of a staging request whose connection ended.
var ErrLost = errors.New("connection to the root lost")

// answerQueue is how many answers to one request wait for their reader
// before the Peer's reader waits too (back-pressure from a slow reader).
const answerQueue = 64

// Peer is the agent's end of a connection: it reads every message, hands
// answers to the staging request that waits for them, and passes all other
// messages to a handler. It implements agent.Root over the connection, so
// a node's copies go to and from the root as real bytes on the wire.
//
// A request ends when its caller is done with it (a remote file is closed,
// a call returns) or its context ends; answers that arrive for it after
// that are dropped, so a reader that went away never stalls the
// connection. A slow reader that is still there holds the connection back
// once answerQueue answers wait for it.
type Peer struct {
	conn *Conn

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]*request
	closed  error
}

// request is one staging exchange in progress.
type request struct {
	id   uint64
	ch   chan *Msg     // answers, in order; closed when the connection is lost
	done chan struct{} // closed when the request ends: nothing more is delivered
	stop func() bool   // stops watching the request's context
	once sync.Once
}

// NewPeer returns a peer over conn.
func NewPeer(conn *Conn) *Peer {
	return &Peer{conn: conn, pending: map[uint64]*request{}}
}

// Send sends a message.
func (p *Peer) Send(m *Msg) error { return p.conn.Send(m) }

// Run reads messages until the connection ends, calling handle for each
// one that is not the answer to a staging request. handle must not block
// for long: it runs on the reading goroutine. Run is called once.
func (p *Peer) Run(handle func(*Msg)) error {
	for {
		m, err := p.conn.Recv()
		if err != nil {
			p.fail(err)
			return err
		}
		if m.ID != 0 && (m.Type == TypeData || m.Type == TypeReply) {
			p.deliver(m)
			continue
		}
		handle(m)
	}
}

// deliver hands m to the request it answers, waiting while the request's
// queue is full, and drops it when the request has ended (or ends while
// Run waits).
func (p *Peer) deliver(m *Msg) {
	p.mu.Lock()
	r := p.pending[m.ID]
	p.mu.Unlock()
	if r == nil {
		return
	}
	select {
	case r.ch <- m:
	case <-r.done:
	}
}

// fail ends every waiting request with err. Only Run calls it, so no
// answer is being delivered while it closes the answer channels.
func (p *Peer) fail(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = fmt.Errorf("%w: %v", ErrLost, err)
	for id, r := range p.pending {
		close(r.ch)
		delete(p.pending, id)
	}
}

// lost returns the error that ended the connection.
func (p *Peer) lost() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// begin registers a new request, which ends when ctx does unless end
// ends it first.
func (p *Peer) begin(ctx context.Context) (*request, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed != nil {
		return nil, p.closed
	}
	p.nextID++
	r := &request{id: p.nextID, ch: make(chan *Msg, answerQueue), done: make(chan struct{})}
	p.pending[r.id] = r
	r.stop = context.AfterFunc(ctx, func() { p.drop(r) })
	return r, nil
}

// end ends request r. It may be called more than once.
func (p *Peer) end(r *request) {
	r.stop()
	p.drop(r)
}

// drop forgets request r and drops its answers from now on.
func (p *Peer) drop(r *request) {
	p.mu.Lock()
	if p.pending[r.id] == r {
		delete(p.pending, r.id)
	}
	p.mu.Unlock()
	r.once.Do(func() { close(r.done) })
}

// wait returns the next answer to request r. When ctx ends first, the
// request ends with it.
func (p *Peer) wait(ctx context.Context, r *request) (*Msg, error) {
	if err := ctx.Err(); err != nil {
		p.end(r)
		return nil, err
	}
	select {
	case m, ok := <-r.ch:
		if !ok {
			return nil, p.lost()
		}
		return m, nil
	case <-ctx.Done():
		p.end(r)
		return nil, ctx.Err()
	case <-r.done:
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		return nil, fs.ErrClosed
	}
}

// call sends a request and waits for its reply.
func (p *Peer) call(ctx context.Context, m *Msg) (*Msg, error) {
	r, err := p.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer p.end(r)
	m.ID = r.id
	if err := p.conn.Send(m); err != nil {
		return nil, err
	}
	a, err := p.wait(ctx, r)
	if err != nil {
		return nil, err
	}
	return a, replyError(a)
}

// replyError turns an error carried by a reply into an error value.
func replyError(m *Msg) error {
	if m.Error == "" {
		return nil
	}
	if m.NotExist {
		return &fs.PathError{Op: "open", Path: "root:" + m.Path, Err: fs.ErrNotExist}
	}
	return &ReplyError{Path: m.Path, Msg: m.Error, Denied: m.Denied, System: m.System}
}

// Open implements agent.Root: the root streams the file in data frames.
// The file must be closed; frames arriving after Close, or after ctx
// ends, are dropped.
func (p *Peer) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	return p.OpenAt(ctx, name, 0)
}

// OpenAt is Open from byte offset of the file on: how a read cut off by
// a lost connection goes on over the next one.
func (p *Peer) OpenAt(ctx context.Context, name string, offset int64) (io.ReadCloser, error) {
	r, err := p.begin(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.conn.Send(&Msg{Type: TypeOpen, ID: r.id, Path: name, Offset: offset}); err != nil {
		p.end(r)
		return nil, err
	}
	first, err := p.wait(ctx, r)
	if err == nil {
		err = replyError(first)
	}
	if err != nil {
		p.end(r)
		return nil, err
	}
	f := &remoteFile{p: p, r: r, ctx: ctx, buf: first.Data, eof: first.EOF}
	if f.eof {
		p.end(r) // nothing more comes
	}
	return f, nil
}

// remoteFile reads a root file arriving in data frames. Read is called
// from one goroutine; Close may be called from another, and stops a Read
// that waits.
type remoteFile struct {
	p      *Peer
	r      *request
	ctx    context.Context
	buf    []byte
	eof    bool
	err    error // the error every later Read returns
	closed atomic.Bool
}

func (f *remoteFile) Read(b []byte) (int, error) {
	if f.closed.Load() {
		return 0, fs.ErrClosed
	}
	if f.err != nil {
		return 0, f.err
	}
	for len(f.buf) == 0 {
		if f.eof {
			return 0, io.EOF
		}
		m, err := f.p.wait(f.ctx, f.r)
		if err == nil {
			err = replyError(m)
		}
		if err != nil {
			f.err = err
			f.p.end(f.r)
			return 0, err
		}
		f.buf, f.eof = m.Data, m.EOF
		if f.eof {
			f.p.end(f.r)
		}
	}
	n := copy(b, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

// Close stops reading; frames still arriving are dropped.
func (f *remoteFile) Close() error {
	f.closed.Store(true)
	f.p.end(f.r)
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
// the root only when complete. When ctx ends or reading r fails, the root
// is told to discard what it has.
func (p *Peer) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error {
	req, err := p.begin(ctx)
	if err != nil {
		return err
	}
	defer p.end(req)
	if err := p.conn.Send(&Msg{Type: TypeCreate, ID: req.id, Path: name, Mode: uint32(perm.Perm())}); err != nil {
		return err
	}
	buf := make([]byte, ChunkSize)
	for {
		select {
		case m, ok := <-req.ch: // the root gave up early (it could not create the file)
			if !ok {
				return p.lost()
			}
			if err := replyError(m); err != nil {
				return err
			}
			return fmt.Errorf("put %s: the root answered before the file was sent", name)
		default:
		}
		if err := ctx.Err(); err != nil {
			p.conn.Send(&Msg{Type: TypeClose, ID: req.id, Error: err.Error()})
			return err
		}
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if err := p.conn.Send(&Msg{Type: TypeData, ID: req.id, Data: buf[:n]}); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			p.conn.Send(&Msg{Type: TypeClose, ID: req.id, Error: rerr.Error()})
			return rerr
		}
	}
	if err := p.conn.Send(&Msg{Type: TypeClose, ID: req.id}); err != nil {
		return err
	}
	m, err := p.wait(ctx, req)
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
	// SHA256 is the hex SHA-256 of a regular file's content, when the
	// root could compute it (a file the node may read, unchanged while
	// it was read); "" otherwise. A head's cache keys files by it.
	SHA256 string `json:"sha256,omitempty"`
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
