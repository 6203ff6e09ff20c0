package protocol

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"orrery/task"
)

// RootServer answers an agent's staging requests on the root's side of
// one connection, over a Root (the root directory as that node may see
// it). At most max reads (open, stat, glob) are in progress at once: a
// further one waits, so the reader applies back-pressure instead of
// holding memory (a read ends on its own, within the send deadline). At
// most 4×max files are being written at once; a further create is
// answered at once with a system failure, since the reader must stay
// free to take the data of those being written. It owns the goroutines
// it starts; Close waits for them.
type RootServer struct {
	conn   *Conn
	root   task.Root
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	reads  chan struct{}
	writes chan struct{}

	mu      sync.Mutex
	creates map[uint64]*io.PipeWriter
}

// NewRootServer returns a server answering on conn from root, with at
// most max requests in progress (max ≤ 0: 64).
func NewRootServer(ctx context.Context, conn *Conn, root task.Root, max int) *RootServer {
	if max <= 0 {
		max = 64
	}
	ctx, stop := context.WithCancel(ctx)
	return &RootServer{conn: conn, root: root, ctx: ctx, stop: stop, creates: map[uint64]*io.PipeWriter{},
		reads: make(chan struct{}, max), writes: make(chan struct{}, 4*max)}
}

// Handle serves m, a staging request. It returns an error only when m
// breaks the protocol (a request without an ID, a create whose ID is in
// use) or the server is closing.
func (s *RootServer) Handle(m *Msg) error {
	switch m.Type {
	case TypeOpen, TypeStat, TypeGlob, TypeCreate:
		if m.ID == 0 {
			return fmt.Errorf("%s request without an ID", m.Type)
		}
	}
	switch m.Type {
	case TypeOpen, TypeStat, TypeGlob:
		select {
		case s.reads <- struct{}{}:
		case <-s.ctx.Done():
			return s.ctx.Err()
		}
	}
	switch m.Type {
	case TypeOpen:
		s.goServe(s.reads, func() { s.open(m) })
	case TypeStat:
		s.goServe(s.reads, func() { s.stat(m) })
	case TypeGlob:
		s.goServe(s.reads, func() { s.glob(m) })
	case TypeCreate:
		select {
		case s.writes <- struct{}{}:
		default:
			s.reply(m, &Msg{}, fmt.Errorf("%w: the root is writing %d files for this node already", task.ErrRootSystem, cap(s.writes)))
			return nil
		}
		return s.create(m)
	case TypeData:
		s.mu.Lock()
		w := s.creates[m.ID]
		s.mu.Unlock()
		if w != nil {
			w.Write(m.Data) // an error here is the Put's error, answered at close
		}
	case TypeClose:
		s.mu.Lock()
		w := s.creates[m.ID]
		delete(s.creates, m.ID)
		s.mu.Unlock()
		if w != nil {
			if m.Error != "" {
				w.CloseWithError(errors.New(m.Error))
			} else {
				w.Close()
			}
		}
	default:
		return fmt.Errorf("%q is not a staging request", m.Type)
	}
	return nil
}

// goServe runs a request that holds one of the slots of sem.
func (s *RootServer) goServe(sem chan struct{}, f func()) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() { <-sem }()
		f()
	}()
}

// reply answers request m, with err when it failed.
func (s *RootServer) reply(m *Msg, r *Msg, err error) {
	r.Type, r.ID, r.Path = TypeReply, m.ID, m.Path
	if err != nil {
		r.Error = err.Error()
		r.NotExist = errors.Is(err, fs.ErrNotExist)
		r.Denied = errors.Is(err, task.ErrDenied)
		r.System = !r.NotExist && !r.Denied && task.IsRootSystemError(err)
	}
	if s.conn.Send(r) != nil {
		s.conn.Close() // it can send nothing more: the node is dropped
	}
}

func (s *RootServer) open(m *Msg) {
	f, err := s.root.Open(s.ctx, m.Path)
	if err != nil {
		s.reply(m, &Msg{}, err)
		return
	}
	defer f.Close()
	if m.Offset > 0 {
		var err error
		if sk, ok := f.(io.Seeker); ok {
			_, err = sk.Seek(m.Offset, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, f, m.Offset)
		}
		if err != nil {
			s.reply(m, &Msg{}, err)
			return
		}
	}
	buf := make([]byte, ChunkSize)
	for {
		n, err := io.ReadFull(f, buf)
		eof := err == io.EOF || err == io.ErrUnexpectedEOF
		if err != nil && !eof {
			s.reply(m, &Msg{}, err)
			return
		}
		if s.conn.Send(&Msg{Type: TypeData, ID: m.ID, Data: buf[:n], EOF: eof}) != nil {
			s.conn.Close() // it can send nothing more: the node is dropped
			return
		}
		if eof {
			return
		}
	}
}

func (s *RootServer) stat(m *Msg) {
	fi, err := s.root.Stat(s.ctx, m.Path)
	r := &Msg{}
	if err == nil {
		r.Info = &FileInfo{FName: fi.Name(), FSize: fi.Size(), FMode: uint32(fi.Mode()), FModTime: fi.ModTime()}
	}
	s.reply(m, r, err)
}

func (s *RootServer) glob(m *Msg) {
	paths, err := s.root.Glob(s.ctx, m.Path)
	s.reply(m, &Msg{Paths: paths}, err)
}

// create starts writing a root file whose data frames follow.
func (s *RootServer) create(m *Msg) error {
	pr, pw := io.Pipe()
	s.mu.Lock()
	if s.creates[m.ID] != nil {
		s.mu.Unlock()
		<-s.writes
		return fmt.Errorf("create %d: the ID is in use", m.ID)
	}
	s.creates[m.ID] = pw
	s.mu.Unlock()
	s.goServe(s.writes, func() {
		err := s.root.Put(s.ctx, m.Path, fs.FileMode(m.Mode), pr)
		pr.CloseWithError(errors.New("the root stopped writing " + m.Path))
		s.mu.Lock()
		if s.creates[m.ID] == pw {
			delete(s.creates, m.ID) // it failed before the node closed it
		}
		s.mu.Unlock()
		s.reply(m, &Msg{}, err)
	})
	return nil
}

// Close stops serving and waits for requests in progress.
func (s *RootServer) Close() {
	s.stop()
	s.mu.Lock()
	for id, w := range s.creates {
		w.CloseWithError(errors.New("connection closed"))
		delete(s.creates, id)
	}
	s.mu.Unlock()
	s.wg.Wait()
}
