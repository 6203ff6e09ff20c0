package protocol

import (
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"reflect"
	"sync"
	"syscall"

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
//
// A stat reply of a regular file carries the SHA-256 of its content
// (FileInfo.SHA256), read through the same Root as an Open of it would
// be, so only for a file the node may read; sums are kept in a cache
// shared by every RootServer of the process (see fileSums).
type RootServer struct {
	conn   *Conn
	root   task.Root
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup
	reads  chan struct{}
	writes chan struct{}
	sums   *sumCache

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
	return &RootServer{conn: conn, root: root, ctx: ctx, stop: stop, creates: map[uint64]*io.PipeWriter{}, sums: fileSums,
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
		r.Info.SHA256 = s.sums.sum(s.ctx, s.root, m.Path, fi)
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

// fileSums is the content hash cache of every RootServer of the process:
// a file common to the jobs of many nodes is hashed once per change.
var fileSums = newSumCache(4096)

// sumKey names one version of a local file: a change of its content
// changes its size, modification time or change time (which no user can
// set back), and a file replaced by rename has another inode.
type sumKey struct {
	name         string // the path as the node names it, cleaned
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
}

// sumCache keeps the SHA-256 of up to max file versions, the least
// recently used forgotten first. Concurrent requests for one version
// wait for a single computation. It is safe for concurrent use.
type sumCache struct {
	max int

	mu       sync.Mutex
	byKey    map[sumKey]*list.Element // of *sumEntry
	lru      list.List                // front: most recently used
	flights  map[sumKey]*sumFlight
	computed int // sums computed (read by tests)
}

type sumEntry struct {
	key sumKey
	sum string
}

// sumFlight is a computation in progress; done is closed when sum is set.
type sumFlight struct {
	done chan struct{}
	sum  string
}

func newSumCache(max int) *sumCache {
	return &sumCache{max: max, byKey: map[sumKey]*list.Element{}, flights: map[sumKey]*sumFlight{}}
}

// keyOf returns the key of a local regular file's description, or false
// when fi is not one (a directory, or a file not on a local disk).
func keyOf(name string, fi fs.FileInfo) (sumKey, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() {
		return sumKey{}, false
	}
	return sumKey{name: path.Clean(name), dev: uint64(st.Dev), ino: uint64(st.Ino), size: fi.Size(),
		mtime: fi.ModTime().UnixNano(), ctime: changeTime(st)}, true
}

// changeTime returns a file's status change time in nanoseconds (0 when
// unknown). Its field is Ctim on Linux and Ctimespec on the BSDs, hence
// the reflection.
func changeTime(st *syscall.Stat_t) int64 {
	v := reflect.ValueOf(st).Elem()
	for _, name := range []string{"Ctim", "Ctimespec"} {
		if f := v.FieldByName(name); f.IsValid() {
			if ts, ok := f.Interface().(syscall.Timespec); ok {
				return ts.Nano()
			}
		}
	}
	return 0
}

// sum returns the hex SHA-256 of the regular file name that root
// described as fi, or "" when it has none: not a local regular file,
// root refuses to open it (a copy destination the node may only stat),
// it changed while it was read, or reading it failed. A description that
// carries a sum already (a head's root that is itself a connection to
// the root) keeps it, for a node that may read the file. A root with a
// method CanOpen(name string) bool is asked first, so a path it would
// refuse is not opened (nor its refusal logged, nor a relayed sum given)
// for a sum.
func (c *sumCache) sum(ctx context.Context, root task.Root, name string, fi fs.FileInfo) string {
	if co, ok := root.(interface{ CanOpen(string) bool }); ok && !co.CanOpen(name) {
		return "" // also a sum relayed from the root: it was the head's to know
	}
	if pi, ok := fi.(*FileInfo); ok {
		return pi.SHA256
	}
	key, ok := keyOf(name, fi)
	if !ok {
		return ""
	}
	c.mu.Lock()
	if e := c.byKey[key]; e != nil {
		c.lru.MoveToFront(e)
		c.mu.Unlock()
		return e.Value.(*sumEntry).sum
	}
	if f := c.flights[key]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.sum
		case <-ctx.Done():
			return ""
		}
	}
	f := &sumFlight{done: make(chan struct{})}
	c.flights[key] = f
	c.mu.Unlock()

	f.sum = hashFile(ctx, root, name, key)
	c.mu.Lock()
	delete(c.flights, key)
	c.computed++
	if f.sum != "" {
		c.byKey[key] = c.lru.PushFront(&sumEntry{key: key, sum: f.sum})
		for c.lru.Len() > c.max {
			e := c.lru.Back()
			c.lru.Remove(e)
			delete(c.byKey, e.Value.(*sumEntry).key)
		}
	}
	c.mu.Unlock()
	close(f.done)
	return f.sum
}

// hashFile reads name through root and returns its hex SHA-256, or ""
// when root refuses it or the file read is not the version key names,
// before and after reading.
func hashFile(ctx context.Context, root task.Root, name string, key sumKey) string {
	rc, err := root.Open(ctx, name)
	if err != nil {
		return ""
	}
	defer rc.Close()
	st, ok := rc.(interface{ Stat() (fs.FileInfo, error) })
	if !ok {
		return ""
	}
	same := func() bool {
		fi, err := st.Stat()
		if err != nil {
			return false
		}
		k, ok := keyOf(name, fi)
		return ok && k == key
	}
	if !same() {
		return ""
	}
	h := sha256.New()
	buf := make([]byte, ChunkSize)
	for {
		if ctx.Err() != nil {
			return ""
		}
		n, err := rc.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return ""
		}
	}
	if !same() {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}
