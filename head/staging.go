package head

import (
	"context"
	"fmt"
	"io"
	"io/fs"

	"orrery/task"
)

// upstream is the root's directory as the head reaches it: through the
// connection now, waiting for one while the link is down.
type upstream struct{ h *Head }

func (u upstream) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	p, _, err := u.h.current(ctx)
	if err != nil {
		return nil, err
	}
	return p.Open(ctx, name)
}

func (u upstream) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	p, _, err := u.h.current(ctx)
	if err != nil {
		return nil, err
	}
	return p.Stat(ctx, name)
}

func (u upstream) Glob(ctx context.Context, pattern string) ([]string, error) {
	p, _, err := u.h.current(ctx)
	if err != nil {
		return nil, err
	}
	return p.Glob(ctx, pattern)
}

func (u upstream) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error {
	p, _, err := u.h.current(ctx)
	if err != nil {
		return err
	}
	return p.Put(ctx, name, perm, r)
}

// stagingRoot is the root directory as the head's nodes see it: inputs
// through the head's cache, results into the spool of the root attempt
// whose job may write them.
type stagingRoot struct{ h *Head }

var _ task.Root = stagingRoot{}

func (s stagingRoot) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	return s.h.cache.Root(upstream{s.h}).Open(ctx, name)
}

func (s stagingRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	return s.h.cache.Root(upstream{s.h}).Stat(ctx, name)
}

func (s stagingRoot) Glob(ctx context.Context, pattern string) ([]string, error) {
	return s.h.cache.Root(upstream{s.h}).Glob(ctx, pattern)
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
	return sp.Root(upstream{s.h}).Put(ctx, name, perm, r)
}
