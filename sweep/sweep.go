package sweep

import (
	"fmt"
	"math"
	"math/big"

	"orrery/plan"
)

// Options say where a plan's files are and which seed to draw from.
type Options struct {
	// Root is the root directory: `files` globs and `fromfile` names are
	// relative to it. Empty means the current directory.
	Root string
	// Seed is the experiment's seed for random domains.
	Seed uint64
}

// Sweep is the jobs of a plan: every combination of its parameters (or a
// run file's explicit job list), generated on demand.
type Sweep struct {
	Plan *plan.Plan
	// Names are the parameters (or run-file variables) in declaration order.
	Names []string
	// Domains holds each name's values, in the order of Names.
	Domains []Domain
	// Seed is the seed random domains were drawn from.
	Seed uint64
	// Warnings are remarks about a valid sweep (a fromfile with no lines).
	Warnings []plan.Warning

	axes       []axis
	size       int64 // combinations before constraints
	constraint func(idx []int64) bool
	explicit   *plan.JobsBlock
}

// axis is one digit of the cross product: a parameter, or a zip group
// whose members advance together.
type axis struct {
	members []int
	n       int64
}

// CountLimit is the largest cross product Count enumerates to count the
// jobs a constraint keeps; above it Count returns an upper bound.
const CountLimit = 10_000_000

// New resolves a checked plan's domains (globs, files, random draws) and
// returns its sweep. Errors are a plan.ErrorList with positions.
func New(p *plan.Plan, opts Options) (*Sweep, error) {
	s := &Sweep{Plan: p, Seed: opts.Seed}
	r := resolver{file: p.File, root: opts.Root, seed: opts.Seed}
	if p.IsRunFile() {
		for _, v := range p.Vars {
			vals := make([]string, len(v.Values))
			for i, x := range v.Values {
				vals[i] = x.Text
			}
			s.Names = append(s.Names, v.Name)
			s.Domains = append(s.Domains, newList(vals, true))
		}
		s.explicit = p.Jobs
	} else {
		for _, q := range p.Params {
			s.Names = append(s.Names, q.Name)
			s.Domains = append(s.Domains, materialize(r.domain(q)))
		}
	}
	s.Warnings = r.warnings
	r.buildAxes(s)
	if len(r.errs) == 0 {
		s.constraint = r.compileConstraints(s)
	}
	if len(r.errs) > 0 {
		return nil, r.errs
	}
	return s, nil
}

// buildAxes orders the axes: each parameter in declaration order, a zip
// group in the place of its first listed member.
func (r *resolver) buildAxes(s *Sweep) {
	index := map[string]int{}
	for i, n := range s.Names {
		index[n] = i
	}
	group := map[int]*plan.Zip{}
	for _, z := range s.Plan.Zips {
		for _, n := range z.Names {
			group[index[n.Text]] = z
		}
	}
	for i, name := range s.Names {
		z := group[i]
		if z == nil {
			s.axes = append(s.axes, axis{members: []int{i}, n: s.Domains[i].Len()})
			continue
		}
		if z.Names[0].Text != name {
			continue
		}
		a := axis{n: -1}
		for _, m := range z.Names {
			j := index[m.Text]
			a.members = append(a.members, j)
			if n := s.Domains[j].Len(); a.n < 0 {
				a.n = n
			} else if n != a.n {
				r.errorf(m.Pos, "zip: %s has %d values but %s has %d; zipped parameters need equally many",
					m.Text, n, z.Names[0].Text, a.n)
			}
		}
		s.axes = append(s.axes, a)
	}
	if s.explicit != nil {
		s.size = int64(s.explicit.Count())
		return
	}
	size := big.NewInt(1)
	for _, a := range s.axes {
		size.Mul(size, big.NewInt(a.n))
	}
	if !size.IsInt64() {
		pos := plan.Pos{Line: 1, Col: 1}
		if len(s.Plan.Params) > 0 {
			pos = s.Plan.Params[0].Pos
		}
		r.errorf(pos, "the plan has %s jobs, more than %d", size, int64(math.MaxInt64))
		return
	}
	s.size = size.Int64()
}

// Random reports whether any parameter draws random values from the seed.
func (s *Sweep) Random() bool {
	for _, q := range s.Plan.Params {
		if q.Domain.Kind == plan.Random {
			return true
		}
	}
	return false
}

// Size returns the number of combinations before constraints.
func (s *Sweep) Size() int64 { return s.size }

// Count returns the number of jobs. Without a constraint it is exact and
// found by arithmetic. With one, the combinations are enumerated when
// there are at most CountLimit of them; otherwise Count returns the number
// of combinations as an upper bound and exact is false.
func (s *Sweep) Count() (n int64, exact bool) {
	if s.constraint == nil {
		return s.size, true
	}
	if s.size > CountLimit {
		return s.size, false
	}
	it := s.Iter()
	for it.Next() {
	}
	return it.Index(), true
}

// Iterator walks the jobs of a sweep in order. It holds one job at a time.
type Iterator struct {
	s       *Sweep
	started bool
	done    bool
	ordinal int64   // position in the cross product (or explicit list)
	index   int64   // job number of the current job, from 1
	digits  []int64 // per axis
	idx     []int64 // value index per name
}

// Iter returns an iterator positioned before the first job.
func (s *Sweep) Iter() *Iterator {
	return &Iterator{s: s, digits: make([]int64, len(s.axes)), idx: make([]int64, len(s.Names))}
}

// Resume positions the iterator on the combination at ordinal, as the job
// numbered index, so that Next continues after it: resuming a sweep whose
// first jobs were handed out before. Resume(-1, 0) is the start.
func (it *Iterator) Resume(ordinal, index int64) {
	it.done = false
	it.index = index
	if ordinal < 0 {
		it.started, it.ordinal = false, 0
		clear(it.digits)
		clear(it.idx)
		return
	}
	it.started, it.ordinal = true, ordinal
	if ordinal >= it.s.size {
		it.done = true
		return
	}
	if it.s.explicit != nil {
		return // advance reads explicit jobs by ordinal
	}
	rest := ordinal
	for a := len(it.s.axes) - 1; a >= 0; a-- {
		ax := &it.s.axes[a]
		it.digits[a] = rest % ax.n
		rest /= ax.n
		for _, m := range ax.members {
			it.idx[m] = it.digits[a]
		}
	}
}

// Next moves to the next job and reports whether there is one.
func (it *Iterator) Next() bool {
	if it.done {
		return false
	}
	for {
		if !it.advance() {
			it.done = true
			return false
		}
		if it.s.constraint == nil || it.s.constraint(it.idx) {
			it.index++
			return true
		}
	}
}

// advance moves to the next combination.
func (it *Iterator) advance() bool {
	s := it.s
	if it.started {
		it.ordinal++
	}
	first := !it.started
	it.started = true
	if it.ordinal >= s.size {
		return false
	}
	if s.explicit != nil {
		for i, v := range s.explicit.Job(int(it.ordinal)) {
			it.idx[i] = int64(v)
		}
		return true
	}
	if first {
		return true // all digits are zero
	}
	for a := len(s.axes) - 1; a >= 0; a-- {
		ax := &s.axes[a]
		it.digits[a]++
		carry := it.digits[a] == ax.n
		if carry {
			it.digits[a] = 0
		}
		for _, m := range ax.members {
			it.idx[m] = it.digits[a]
		}
		if !carry {
			break
		}
	}
	return true
}

// Index returns the current job's number, from 1 (after the iteration,
// the number of jobs).
func (it *Iterator) Index() int64 { return it.index }

// Ordinal returns the current job's position among all combinations.
func (it *Iterator) Ordinal() int64 { return it.ordinal }

// ValueIndex returns the index of name i's value in its domain.
func (it *Iterator) ValueIndex(i int) int64 { return it.idx[i] }

// Value returns the current value of name i.
func (it *Iterator) Value(i int) string { return it.s.Domains[i].Value(it.idx[i]) }

// Job returns the current job.
func (it *Iterator) Job() Job {
	j := Job{Index: it.index, Values: make([]string, len(it.idx))}
	for i := range it.idx {
		j.Values[i] = it.Value(i)
	}
	return j
}

// Job is one parameter combination.
type Job struct {
	Index  int64    // job number, from 1
	Values []string // in the order of Sweep.Names
}

// Lookup returns a function that finds a job's value by name, including
// the implicit jobindex and jobname, for Template.Expand.
func (s *Sweep) Lookup(j Job) func(string) (string, bool) {
	return func(name string) (string, bool) {
		switch name {
		case plan.NameJobIndex:
			return fmt.Sprint(j.Index), true
		case plan.NameJobName:
			return JobName(j.Index), true
		}
		for i, n := range s.Names {
			if n == name {
				return j.Values[i], true
			}
		}
		return "", false
	}
}

// JobName returns the name of job number n: "j" and the number.
func JobName(n int64) string { return fmt.Sprintf("j%d", n) }
