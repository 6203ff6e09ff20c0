package headcache

import (
	"cmp"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"

	"orrery/internal/atomicfile"
	"orrery/protocol"
	"orrery/task"
)

// ErrDiskFull is the error (wrapped in a *DiskFullError) of a write to
// the head's disk that failed for want of space or quota.
var ErrDiskFull = errors.New("the head's disk is full")

// DiskFullError is a write to the head's directory that failed because
// its disk (or the user's quota there) is full: a system failure of the
// cluster. errors.Is(err, ErrDiskFull) holds for it, and it unwraps to
// the system call's error (so task.IsRootSystemError accepts it).
type DiskFullError struct {
	Dir string // the head's directory (given to Open)
	Op  string // what was being written
	Err error  // the error of the write
}

// Error returns "head disk full in DIR: OP: ERR".
func (e *DiskFullError) Error() string {
	return fmt.Sprintf("head disk full in %s: %s: %v", e.Dir, e.Op, e.Err)
}

// Is reports whether target is ErrDiskFull.
func (e *DiskFullError) Is(target error) bool { return target == ErrDiskFull }

// Unwrap returns the error of the write.
func (e *DiskFullError) Unwrap() error { return e.Err }

// ErrCorrupt is the error (wrapped) of a fetched file whose bytes do not
// match the size and SHA-256 the root described: nothing is cached. The
// error also wraps task.ErrRootSystem, so the node's attempt fails as a
// system failure and the job runs again (the root's file changed while
// it was read, or the link mangled it): not the job's fault.
var ErrCorrupt = errors.New("content does not match its SHA-256")

// Stats counts the cache's work since Open.
type Stats struct {
	Hits         int64 // opens served from the disk without a fetch
	Misses       int64 // fetches from upstream
	BytesFetched int64 // bytes read from upstream (fetches and passed-through opens)
	BytesServed  int64 // bytes read by the head's nodes (cached and passed-through opens)
	Evictions    int64 // cached files removed to make room
	Size         int64 // bytes of cached files on disk now
	Uncached     int64 // opens passed through: no hash, or no room
}

// Cache is a head's content-addressed file cache and result spools in one
// directory. Cached files take at most limit bytes, the least recently
// used removed first (never one being read); spools do not count against
// the limit (results are never evicted). It is safe for concurrent use.
type Cache struct {
	dir   string
	limit int64

	mu       sync.Mutex
	objects  map[string]*object // by hex SHA-256
	lru      list.List          // of *object; front: most recently used
	size     int64              // bytes of objects on disk
	reserved int64              // bytes of fetches in progress
	flights  map[string]*flight // fetches (or checks) in progress, by hash
	stats    Stats              // Hits, Misses, Evictions, Uncached

	fetched, served atomic.Int64

	spoolMu sync.Mutex
	spools  map[SpoolKey]*Spool
}

// object is a cached file.
type object struct {
	sum     string
	size    int64
	readers int  // opens not closed: never evicted while > 0
	checked bool // its content was verified since Open (or written since)
	elem    *list.Element
}

// flight is the one fetch (or check) of a hash in progress: other opens
// of the hash wait for done, then look again.
type flight struct {
	done chan struct{}
	err  error
}

// errNoRoom says a file cannot be cached: it is larger than the limit,
// or the cache is full of files being read. It is passed through.
var errNoRoom = errors.New("no room in the cache")

// Open opens (creating it) the cache in dir, whose cached files take at
// most limit bytes. It takes the files a head left there before: cached
// files (each verified again before it is first served) and spools
// (see Spools); files that were being fetched are removed.
func Open(dir string, limit int64) (*Cache, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("head cache %s: size limit %d is not positive", dir, limit)
	}
	c := &Cache{dir: dir, limit: limit, objects: map[string]*object{}, flights: map[string]*flight{},
		spools: map[SpoolKey]*Spool{}}
	for _, d := range []string{c.objectsDir(), c.tmpDir(), c.spoolDir()} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, c.diskErr("head cache "+d, err)
		}
	}
	if err := clearDir(c.tmpDir()); err != nil {
		return nil, fmt.Errorf("head cache %s: %w", dir, err)
	}
	entries, err := os.ReadDir(c.objectsDir())
	if err != nil {
		return nil, fmt.Errorf("head cache %s: %w", dir, err)
	}
	type found struct {
		sum  string
		size int64
		mod  int64
	}
	var objs []found
	for _, e := range entries {
		p := filepath.Join(c.objectsDir(), e.Name())
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if !validSum(e.Name()) || !fi.Mode().IsRegular() {
			os.RemoveAll(p) // not the cache's: it would take room unaccounted
			continue
		}
		objs = append(objs, found{e.Name(), fi.Size(), fi.ModTime().UnixNano()})
	}
	// The most recently stored first: the order of use is not kept
	// across a restart, the order of storing is.
	slices.SortFunc(objs, func(a, b found) int { return cmp.Compare(b.mod, a.mod) })
	for _, f := range objs {
		o := &object{sum: f.sum, size: f.size}
		o.elem = c.lru.PushBack(o)
		c.objects[f.sum] = o
		c.size += f.size
	}
	c.mu.Lock()
	c.evictLocked(0)
	c.mu.Unlock()
	return c, nil
}

// Dir returns the cache's directory.
func (c *Cache) Dir() string { return c.dir }

// Stats returns the counts of the cache's work.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	s := c.stats
	s.Size = c.size
	c.mu.Unlock()
	s.BytesFetched = c.fetched.Load()
	s.BytesServed = c.served.Load()
	return s
}

func (c *Cache) objectsDir() string           { return filepath.Join(c.dir, "objects") }
func (c *Cache) tmpDir() string               { return filepath.Join(c.dir, "tmp") }
func (c *Cache) spoolDir() string             { return filepath.Join(c.dir, "spool") }
func (c *Cache) objectPath(sum string) string { return filepath.Join(c.objectsDir(), sum) }

// diskErr turns err into a *DiskFullError when the disk is full; other
// errors are returned as they are.
func (c *Cache) diskErr(op string, err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return &DiskFullError{Dir: c.dir, Op: op, Err: err}
	}
	return err
}

// Root returns the Root the head's nodes read through: Open of a file
// whose upstream stat carries a SHA-256 (a *protocol.FileInfo with
// SHA256 set) is served from the cache, fetched from up once when it is
// not there (concurrent opens of one hash wait for the one fetch), its
// bytes checked against the hash; Open of any other file, Stat and Glob
// go to up. Put is refused: a node's results go through a Spool.
func (c *Cache) Root(up task.Root) task.Root { return cacheRoot{c: c, up: up} }

// cacheRoot is the Root of Cache.Root.
type cacheRoot struct {
	c  *Cache
	up task.Root
}

var _ task.Root = cacheRoot{}

// Open serves name from the cache when upstream gives its hash.
func (r cacheRoot) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	fi, err := r.up.Stat(ctx, name)
	if err != nil {
		return nil, err
	}
	sum := sumOf(fi)
	if sum == "" || !fi.Mode().IsRegular() {
		return r.c.passThrough(ctx, r.up, name)
	}
	return r.c.open(ctx, r.up, name, sum, fi.Size())
}

// Stat asks upstream.
func (r cacheRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	return r.up.Stat(ctx, name)
}

// Glob asks upstream.
func (r cacheRoot) Glob(ctx context.Context, pattern string) ([]string, error) {
	return r.up.Glob(ctx, pattern)
}

// Put is refused: results go through a Spool's Root. It reads nothing
// of rd.
func (r cacheRoot) Put(ctx context.Context, name string, perm fs.FileMode, rd io.Reader) error {
	return fmt.Errorf("put %s: the head's cache takes no results (they go through a spool)", name)
}

// sumOf returns the hex SHA-256 the root gave in fi, or "".
func sumOf(fi fs.FileInfo) string {
	if pi, ok := fi.(*protocol.FileInfo); ok && validSum(pi.SHA256) {
		return pi.SHA256
	}
	return ""
}

// validSum reports whether s is a hex SHA-256 as the root writes it
// (64 lowercase hex digits): the only names of cached files.
func validSum(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !('0' <= s[i] && s[i] <= '9' || 'a' <= s[i] && s[i] <= 'f') {
			return false
		}
	}
	return true
}

// open serves the file of hash sum (size bytes, upstream name).
func (c *Cache) open(ctx context.Context, up task.Root, name, sum string, size int64) (io.ReadCloser, error) {
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		c.mu.Lock()
		if o := c.objects[sum]; o != nil && o.checked {
			o.readers++
			c.lru.MoveToFront(o.elem)
			c.stats.Hits++
			c.mu.Unlock()
			f, err := c.openObject(o)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed behind the cache's back: fetch it again
			}
			return f, err
		}
		if fl := c.flights[sum]; fl != nil {
			c.mu.Unlock()
			select {
			case <-fl.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			switch {
			case errors.Is(fl.err, errNoRoom):
				return c.passThrough(ctx, up, name)
			case errors.Is(fl.err, context.Canceled), errors.Is(fl.err, context.DeadlineExceeded):
				continue // the fetching open gave up, not this one: try again
			case fl.err != nil:
				return nil, fl.err
			}
			continue
		}
		fl := &flight{done: make(chan struct{})}
		c.flights[sum] = fl
		c.mu.Unlock()

		o, err := c.fill(ctx, up, name, sum, size)
		c.mu.Lock()
		delete(c.flights, sum)
		c.mu.Unlock()
		fl.err = err
		close(fl.done)
		if errors.Is(err, errNoRoom) {
			return c.passThrough(ctx, up, name)
		}
		if err != nil {
			return nil, err
		}
		f, err := c.openObject(o)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		return f, err
	}
}

// openObject opens o, which the caller pinned (readers++) for it; the
// pin is the returned file's until Close, or is dropped on error (and o
// forgotten when its file is gone).
func (c *Cache) openObject(o *object) (io.ReadCloser, error) {
	f, err := os.Open(c.objectPath(o.sum))
	if err != nil {
		c.mu.Lock()
		o.readers--
		if errors.Is(err, fs.ErrNotExist) {
			c.forgetLocked(o)
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("head cache %s: %w", c.dir, err)
	}
	return &cachedFile{f: f, c: c, o: o}, nil
}

// fill makes the object of hash sum present, checked and pinned for the
// caller: a file found at Open is verified; a missing one is fetched.
// Only the caller that holds the hash's flight calls it.
func (c *Cache) fill(ctx context.Context, up task.Root, name, sum string, size int64) (*object, error) {
	c.mu.Lock()
	o := c.objects[sum]
	if o != nil {
		o.readers++ // not evicted while it is checked
	}
	c.mu.Unlock()
	if o != nil {
		ok := o.checked || fileSum(c.objectPath(sum)) == sum
		c.mu.Lock()
		if ok {
			o.checked = true
			c.lru.MoveToFront(o.elem)
			c.stats.Hits++
			c.mu.Unlock()
			return o, nil
		}
		o.readers--
		c.removeLocked(o) // damaged while the head was down
		c.mu.Unlock()
	}
	c.mu.Lock()
	c.stats.Misses++
	c.mu.Unlock()
	return c.fetch(ctx, up, name, sum, size)
}

// fileSum returns the hex SHA-256 of a local file, or "" when it cannot
// be read.
func fileSum(p string) string {
	f, err := os.Open(p)
	if err != nil {
		return ""
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return ""
	}
	return hex.EncodeToString(h.Sum(nil))
}

// corruptError is a fetched file whose bytes are not the ones described.
type corruptError struct {
	name              string
	gotSize, wantSize int64
	gotSum, wantSum   string
}

func (e *corruptError) Error() string {
	return fmt.Sprintf("fetch %s into the head cache: %v: got %d bytes with SHA-256 %s, want %d bytes with %s",
		e.name, ErrCorrupt, e.gotSize, e.gotSum, e.wantSize, e.wantSum)
}

// Is reports whether target is ErrCorrupt or task.ErrRootSystem.
func (e *corruptError) Is(target error) bool {
	return target == ErrCorrupt || target == task.ErrRootSystem
}

// fetch copies name from up into the cache as the object of hash sum,
// pinned for the caller. Nothing is cached unless all its bytes arrived
// and match size and sum.
func (c *Cache) fetch(ctx context.Context, up task.Root, name, sum string, size int64) (o *object, err error) {
	if !c.reserve(size) {
		return nil, errNoRoom
	}
	defer c.unreserve(size)
	rc, err := up.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	tmp, err := os.CreateTemp(c.tmpDir(), "fetch-*")
	if err != nil {
		return nil, c.diskErr("cache "+name, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	in := &countingReader{r: &ctxReader{ctx: ctx, r: rc}, n: &c.fetched}
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(in, size+1))
	if err != nil {
		if in.err != nil { // reading from upstream failed
			return nil, fmt.Errorf("fetch %s into the head cache: %w", name, err)
		}
		return nil, c.diskErr("cache "+name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sum {
		return nil, &corruptError{name: name, gotSize: n, wantSize: size, gotSum: got, wantSum: sum}
	}
	if err := tmp.Sync(); err != nil {
		return nil, c.diskErr("cache "+name, err)
	}
	if err := tmp.Close(); err != nil {
		return nil, c.diskErr("cache "+name, err)
	}
	if err := os.Rename(tmp.Name(), c.objectPath(sum)); err != nil {
		return nil, c.diskErr("cache "+name, err)
	}
	if err := atomicfile.SyncDir(c.objectsDir()); err != nil {
		os.Remove(c.objectPath(sum))
		return nil, c.diskErr("cache "+name, err)
	}
	o = &object{sum: sum, size: size, readers: 1, checked: true}
	c.mu.Lock()
	if old := c.objects[sum]; old != nil { // cannot be: the flight is ours
		c.forgetLocked(old)
	}
	o.elem = c.lru.PushFront(o)
	c.objects[sum] = o
	c.size += size
	c.mu.Unlock()
	return o, nil
}

// reserve makes room for size more bytes, evicting the least recently
// used files not being read, and counts them as reserved; it reports
// false, reserving nothing, when there is no room.
func (c *Cache) reserve(size int64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if size > c.limit || !c.evictLocked(c.reserved+size) {
		return false
	}
	c.reserved += size
	return true
}

func (c *Cache) unreserve(size int64) {
	c.mu.Lock()
	c.reserved -= size
	c.mu.Unlock()
}

// evictLocked removes the least recently used files not being read
// until extra more bytes fit under the limit; it reports whether they do.
func (c *Cache) evictLocked(extra int64) bool {
	e := c.lru.Back()
	for c.size+extra > c.limit && e != nil {
		o := e.Value.(*object)
		e = e.Prev()
		if o.readers == 0 {
			c.removeLocked(o)
			c.stats.Evictions++
		}
	}
	return c.size+extra <= c.limit
}

// removeLocked removes o's file and forgets it.
func (c *Cache) removeLocked(o *object) {
	os.Remove(c.objectPath(o.sum))
	c.forgetLocked(o)
}

// forgetLocked forgets o, whose file is gone.
func (c *Cache) forgetLocked(o *object) {
	if c.objects[o.sum] != o {
		return
	}
	delete(c.objects, o.sum)
	c.lru.Remove(o.elem)
	c.size -= o.size
}

// passThrough opens name upstream, uncached.
func (c *Cache) passThrough(ctx context.Context, up task.Root, name string) (io.ReadCloser, error) {
	c.mu.Lock()
	c.stats.Uncached++
	c.mu.Unlock()
	rc, err := up.Open(ctx, name)
	if err != nil {
		return nil, err
	}
	return &passedFile{rc: rc, c: c}, nil
}

// cachedFile is an open cached file; it holds its object's pin until
// Close.
type cachedFile struct {
	f    *os.File
	c    *Cache
	o    *object
	once sync.Once
}

// Read reads the cached file.
func (f *cachedFile) Read(p []byte) (int, error) {
	n, err := f.f.Read(p)
	f.c.served.Add(int64(n))
	return n, err
}

// Seek lets a read resume from an offset.
func (f *cachedFile) Seek(off int64, whence int) (int64, error) { return f.f.Seek(off, whence) }

// Close closes the file and unpins its object.
func (f *cachedFile) Close() error {
	var err error
	f.once.Do(func() {
		err = f.f.Close()
		f.c.mu.Lock()
		f.o.readers--
		f.c.mu.Unlock()
	})
	return err
}

// passedFile is an upstream file read through, uncached.
type passedFile struct {
	rc io.ReadCloser
	c  *Cache
}

func (f *passedFile) Read(p []byte) (int, error) {
	n, err := f.rc.Read(p)
	f.c.fetched.Add(int64(n))
	f.c.served.Add(int64(n))
	return n, err
}

func (f *passedFile) Close() error { return f.rc.Close() }

// countingReader adds what it reads to n and keeps its reader's error.
type countingReader struct {
	r   io.Reader
	n   *atomic.Int64
	err error
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n.Add(int64(n))
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// ctxReader stops with the context's error once it is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r *ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// clearDir removes everything in dir.
func clearDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}
