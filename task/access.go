package task

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"orrery/plan"
)

// ErrDenied is the error (wrapped in an *AccessError) of a root path a
// node may not use: outside the root directory, or not named by the copy
// commands of the tasks the node runs.
var ErrDenied = errors.New("access denied")

// Reasons an AccessError gives.
const (
	reasonOutside  = "outside the root directory"
	reasonNotNamed = "no copy command of this node's attempts names it"
)

// AccessError is a root path refused to a node.
type AccessError struct {
	Op     string // "open", "stat", "glob" or "put"; "" from CheckRootPath
	Path   string // the path as the node sent it
	Reason string // why it was refused
}

// Error returns `root path "NAME" refused: REASON`.
func (e *AccessError) Error() string {
	return fmt.Sprintf("root path %q refused: %s", e.Path, e.Reason)
}

// Is reports whether target is ErrDenied, so errors.Is(err, ErrDenied)
// holds for every AccessError.
func (e *AccessError) Is(target error) bool { return target == ErrDenied }

// CheckRootPath checks a root path as a node names it and returns it
// cleaned (path.Clean, slash-separated). The path must be relative and
// stay inside the root directory: an absolute path, or one that climbs
// out with "..", is refused with an *AccessError. So are "" and a path
// that cleans to "." (the root directory itself is not a file). The
// check is lexical; symlinks are the business of the Root that serves
// the path (ConfinedRoot refuses those that point out).
func CheckRootPath(name string) (clean string, err error) {
	switch {
	case name == "":
		return "", &AccessError{Path: name, Reason: "empty path"}
	case strings.HasPrefix(name, "/"):
		return "", &AccessError{Path: name, Reason: reasonOutside}
	}
	c := path.Clean(name)
	switch {
	case c == ".." || strings.HasPrefix(c, "../"):
		return "", &AccessError{Path: name, Reason: reasonOutside}
	case c == ".":
		return "", &AccessError{Path: name, Reason: "the root directory itself is not a file"}
	}
	return c, nil
}

// Access is a set of root operations a node may perform: what the copy
// commands of the tasks it runs name, after substitution. Its methods
// take names as a node sends them (relative root paths, possibly not
// clean) and clean them before matching, so "./a//b" is "a/b"; a name
// outside the root directory is never allowed. A nil *Access allows
// nothing. An Access is not changed by its Can methods, so one that is no
// longer being built (see Grants) may be read from many goroutines.
type Access struct {
	reads    map[string]struct{}            // exact names: Stat and Open
	stats    map[string]struct{}            // exact names: Stat only (copy destinations)
	puts     map[string]struct{}            // exact names: Put
	globs    map[string]struct{}            // patterns: Glob, and Stat and Open of their matches
	children map[string]map[string]struct{} // directory → base-name patterns: Put of a direct child
}

// Reads returns, sorted, the root files (without glob metacharacters)
// the access lets a node read: what a job's copies from the root name.
// A cluster's head fetches them ahead of the job, so that its queue
// runs on while its link to the root is cut.
func (a *Access) Reads() []string {
	if a == nil {
		return nil
	}
	out := make([]string, 0, len(a.reads))
	for name := range a.reads {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// TaskAccess returns what a node may do on the root while it runs task t
// (main, or nodestart) for job: for each copy command, with its paths
// expanded exactly as copy expands them (Template.Expand with
// job.Lookup) and cleaned:
//
//   - root source S without glob metacharacters: Stat(S) and Open(S);
//   - root source S with metacharacters: Glob(S), and Stat and Open of
//     every path that path.Match(S, path) accepts (what the root's Glob
//     can return: "*" never crosses a "/");
//   - root destination D: when D is written as a directory ("." or a
//     trailing "/"), Put of D/NAME; otherwise Stat(D) (copy asks whether
//     D is a directory), Put(D), and Put of D/NAME (D may exist as a
//     directory). NAME is one path element that matches the base name of
//     the node source (the same name for a plain source, the base-name
//     pattern for a glob): the only names copy writes into a directory.
//
// A root path that is absolute or climbs out of the root directory gets
// no grant. Other commands (execute, substitute, redirect…) reach no
// root file. A root task (rootstart, rootfinish) never runs on a node and
// gets no grant, nor does a nil task.
func TaskAccess(t *plan.Task, job Job) *Access {
	a := &Access{}
	if t == nil || t.OnRoot() {
		return a
	}
	for _, c := range t.Commands {
		if c.Op != plan.OpCopy || c.Src.Side == c.Dst.Side {
			continue // not a copy, or one that never reaches the root (or is refused)
		}
		src, dst := c.Src.Path.Expand(job.Lookup), c.Dst.Path.Expand(job.Lookup)
		if c.Src.Side == plan.Root {
			a.grantSource(src)
		} else {
			a.grantDest(dst, src)
		}
	}
	return a
}

// grantSource allows what copy does with the root source src.
func (a *Access) grantSource(src string) {
	c, err := CheckRootPath(src)
	if err != nil {
		return
	}
	if hasMeta(src) {
		add(&a.globs, c)
	} else {
		add(&a.reads, c)
	}
}

// grantDest allows what copy does with the root destination dst of the
// node source src.
func (a *Access) grantDest(dst, src string) {
	base := path.Base(path.Clean(src))
	if base == "." || base == ".." || base == "/" {
		base = "" // copy cannot write a file of that name into a directory
	}
	// A glob's base is a pattern its matches' base names match; a plain
	// name has no metacharacters, so it is a pattern matching itself.
	if isDirSyntax(dst) {
		// "." and "./" clean to ".": its children are the root's top level.
		c := path.Clean(dst)
		if _, err := CheckRootPath(path.Join(c, "x")); err == nil && base != "" {
			a.addChild(c, base)
		}
		return
	}
	c, err := CheckRootPath(dst)
	if err != nil {
		return
	}
	add(&a.stats, c)
	add(&a.puts, c)
	if base != "" {
		a.addChild(c, base)
	}
}

func (a *Access) addChild(dir, pattern string) {
	if a.children == nil {
		a.children = map[string]map[string]struct{}{}
	}
	add2(a.children, dir, pattern)
}

func add(m *map[string]struct{}, k string) {
	if *m == nil {
		*m = map[string]struct{}{}
	}
	(*m)[k] = struct{}{}
}

func add2(m map[string]map[string]struct{}, dir, pattern string) {
	s := m[dir]
	if s == nil {
		s = map[string]struct{}{}
		m[dir] = s
	}
	s[pattern] = struct{}{}
}

func has(m map[string]struct{}, k string) bool {
	_, ok := m[k]
	return ok
}

// Add merges other's grants into a (a node runs several attempts, and
// nodestart). A nil other adds nothing.
func (a *Access) Add(other *Access) {
	if other == nil || other == a {
		return
	}
	for k := range other.reads {
		add(&a.reads, k)
	}
	for k := range other.stats {
		add(&a.stats, k)
	}
	for k := range other.puts {
		add(&a.puts, k)
	}
	for k := range other.globs {
		add(&a.globs, k)
	}
	for dir, ps := range other.children {
		for p := range ps {
			a.addChild(dir, p)
		}
	}
}

// clean returns the cleaned name, or false when it is refused.
func (a *Access) clean(name string) (string, bool) {
	if a == nil {
		return "", false
	}
	c, err := CheckRootPath(name)
	return c, err == nil
}

// CanOpen reports whether a node may read the root file name.
func (a *Access) CanOpen(name string) bool {
	c, ok := a.clean(name)
	return ok && a.canRead(c)
}

func (a *Access) canRead(c string) bool {
	if has(a.reads, c) {
		return true
	}
	for p := range a.globs {
		if ok, _ := path.Match(p, c); ok {
			return true
		}
	}
	return false
}

// CanStat reports whether a node may describe the root file name: a file
// it may read, or a copy destination.
func (a *Access) CanStat(name string) bool {
	c, ok := a.clean(name)
	return ok && (has(a.stats, c) || a.canRead(c))
}

// CanGlob reports whether a node may list the root files matching
// pattern: a root source pattern of its copy commands (compared cleaned).
func (a *Access) CanGlob(pattern string) bool {
	c, ok := a.clean(pattern)
	return ok && has(a.globs, c)
}

// CanPut reports whether a node may write the root file name: a copy
// destination, or a file copy may write into a destination directory.
func (a *Access) CanPut(name string) bool {
	c, ok := a.clean(name)
	if !ok {
		return false
	}
	if has(a.puts, c) {
		return true
	}
	dir, base := path.Split(c)
	dir = path.Clean(dir) // "" (top level) becomes "."
	for p := range a.children[dir] {
		if ok, _ := path.Match(p, base); ok {
			return true
		}
	}
	return false
}

// Grants is the access of one node: the union of the grants of the tasks
// it runs now, each under a key the caller chooses (an attempt, say, or
// "nodestart"). It is safe for concurrent use; Access returns the merged
// grants, which are never modified afterwards.
type Grants struct {
	mu     sync.Mutex
	byKey  map[any]*Access
	merged *Access
}

// Grant adds (or replaces) the grants held under key.
func (g *Grants) Grant(key any, a *Access) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.byKey == nil {
		g.byKey = map[any]*Access{}
	}
	g.byKey[key] = a
	g.merged = nil
}

// Revoke drops the grants held under key (the attempt ended).
func (g *Grants) Revoke(key any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.byKey[key]; ok {
		delete(g.byKey, key)
		g.merged = nil
	}
}

// Access returns the union of the grants held now. The result must not
// be modified; it is a function for GuardedRoot.Allowed.
func (g *Grants) Access() *Access {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.merged == nil {
		m := &Access{}
		for _, a := range g.byKey {
			m.Add(a)
		}
		g.merged = m
	}
	return g.merged
}

// GuardedRoot is a Root that serves a node only what its grants allow:
// each request is checked against Allowed() (called once per request, so
// grants may change while the node is connected) and refused with an
// *AccessError before Root is touched. Names reach Root cleaned, so what
// was checked is what is used; Glob returns only the matches the grants
// let the node Stat and Open. A nil Allowed allows nothing.
type GuardedRoot struct {
	Root Root // what is served: a ConfinedRoot over the root directory
	// Allowed returns the node's grants now (Grants.Access, say).
	Allowed func() *Access
}

var _ Root = GuardedRoot{}

func (g GuardedRoot) access() *Access {
	if g.Allowed == nil {
		return nil
	}
	return g.Allowed()
}

// check cleans name and asks can whether it is allowed.
func (g GuardedRoot) check(op, name string, can func(*Access, string) bool) (string, *Access, error) {
	c, err := CheckRootPath(name)
	if err != nil {
		e := err.(*AccessError)
		e.Op = op
		return "", nil, e
	}
	a := g.access()
	if !can(a, c) {
		return "", nil, &AccessError{Op: op, Path: name, Reason: reasonNotNamed}
	}
	return c, a, nil
}

// Open opens a root file the grants let the node read.
func (g GuardedRoot) Open(ctx context.Context, name string) (io.ReadCloser, error) {
	c, _, err := g.check("open", name, (*Access).CanOpen)
	if err != nil {
		return nil, err
	}
	return g.Root.Open(ctx, c)
}

// Stat describes a root file the grants let the node read or write.
func (g GuardedRoot) Stat(ctx context.Context, name string) (fs.FileInfo, error) {
	c, _, err := g.check("stat", name, (*Access).CanStat)
	if err != nil {
		return nil, err
	}
	return g.Root.Stat(ctx, c)
}

// Put writes a root file the grants let the node write. A refused Put
// reads nothing of r.
func (g GuardedRoot) Put(ctx context.Context, name string, perm fs.FileMode, r io.Reader) error {
	c, _, err := g.check("put", name, (*Access).CanPut)
	if err != nil {
		return err
	}
	return g.Root.Put(ctx, c, perm, r)
}

// Glob lists the root files matching a pattern the grants name, keeping
// only those the node may Stat and Open.
func (g GuardedRoot) Glob(ctx context.Context, pattern string) ([]string, error) {
	c, a, err := g.check("glob", pattern, (*Access).CanGlob)
	if err != nil {
		return nil, err
	}
	names, err := g.Root.Glob(ctx, c)
	if err != nil {
		return nil, err
	}
	var kept []string
	for _, n := range names {
		if a.CanOpen(n) { // and so CanStat
			kept = append(kept, n)
		}
	}
	return kept, nil
}
