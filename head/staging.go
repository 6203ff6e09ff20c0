package head

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"

	"orrery/agent"
	"orrery/headcache"
	"orrery/protocol"
	"orrery/task"
)

// upstream is the root's directory as the head reaches it: through the
// connection now, waiting for one while the link is down; a request cut
// off by a lost connection is made again over the next one, as a node
// agent's are (agent.ReconnectingRoot).
type upstream struct {
	h *Head
	// fresh asks the root for every description (the prefetcher, as the
	// root hands a job over); else a file the head has seen is described
	// as it was then (a node's copy, which so costs no round trip over
	// the wide-area link: on a link of 150 ms each way, 0.3 s of every
	// job's time on its node).
	fresh bool
}

func (u upstream) root() task.Root {
	return agent.ReconnectingRoot(func(ctx context.Context) (*protocol.Peer, error) {
		p, _, err := u.h.current(ctx)
		return p, err
	}, u.h.disconnected)
}

func (u upstream) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	return u.root().Open(ctx, name)
}

func (u upstream) Glob(ctx context.Context, pattern string) ([]string, error) {
	return u.root().Glob(ctx, pattern)
}

func (u upstream) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error {
	return u.root().Put(ctx, name, perm, r)
}

// Stat describes a file the head has seen as it was when the root last
// described it (to the prefetcher, when it fetched the inputs of a job
// handed over), so that the cache serves it from the head's disk with
// no round trip to the root, and the queue runs on through a cut: inputs
// are taken not to change during a run. A file not seen, or any file
// when fresh is set and the link is up, the root describes.
func (u upstream) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	u.h.mu.Lock()
	p, fi := u.h.peer, u.h.seen[name]
	u.h.mu.Unlock()
	if fi != nil && (p == nil || !u.fresh) {
		return fi, nil
	}
	fi, err := u.root().Stat(ctx, name)
	if err == nil {
		u.h.mu.Lock()
		if len(u.h.seen) >= maxSeen {
			clear(u.h.seen)
		}
		u.h.seen[name] = fi
		u.h.mu.Unlock()
	}
	return fi, err
}

// maxSeen bounds the root files a head remembers the description of.
const maxSeen = 1 << 16

// stagingRoot is the root directory as the head's nodes see it: inputs
// through the head's cache, results into the spool of the root attempt
// whose job may write them.
type stagingRoot struct{ h *Head }

var _ task.Root = stagingRoot{}

func (s stagingRoot) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	rc, err := s.h.cache.Root(upstream{h: s.h}).Open(ctx, name)
	if errors.Is(err, headcache.ErrCorrupt) {
		// The file changed on the root since the head last saw it, and
		// its old bytes are no longer on the head's disk: ask the root
		// again (when the link is up), rather than fail every job that
		// reads it.
		s.h.mu.Lock()
		delete(s.h.seen, name)
		s.h.mu.Unlock()
		rc, err = s.h.cache.Root(upstream{h: s.h, fresh: true}).Open(ctx, name)
	}
	return rc, err
}

// Stat describes a root file. A copy asks it of its destination (is it
// a directory?); while the link is down, a destination a job may write
// that the head has not seen is taken not to exist, so that results go
// to the spool through a cut instead of waiting for the root.
func (s stagingRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	s.h.mu.Lock()
	down, seen := s.h.peer == nil, s.h.seen[name] != nil
	s.h.mu.Unlock()
	if down && !seen {
		if _, _, ok := s.h.putTarget(name); ok {
			return nil, &fs.PathError{Op: "stat", Path: "root:" + name, Err: fs.ErrNotExist}
		}
	}
	return s.h.cache.Root(upstream{h: s.h}).Stat(ctx, name)
}

func (s stagingRoot) Glob(ctx context.Context, pattern string) ([]string, error) {
	return s.h.cache.Root(upstream{h: s.h}).Glob(ctx, pattern)
}

func (s stagingRoot) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error {
	job, attempt, ok := s.h.putTarget(name)
	if !ok {
		return fmt.Errorf("put %s: %w", name, task.ErrDenied)
	}
	sp, err := s.h.cache.Spool(job, attempt)
	if err != nil {
		return err
	}
	return sp.Root(upstream{h: s.h}).Put(ctx, name, perm, r)
}
