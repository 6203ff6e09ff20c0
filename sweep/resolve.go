package sweep

import (
	"bufio"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"orrery/plan"
)

// resolver turns written domains into Domains, collecting errors.
type resolver struct {
	file     string
	root     string
	seed     uint64
	errs     plan.ErrorList
	warnings []plan.Warning
}

func (r *resolver) errorf(pos plan.Pos, format string, args ...any) {
	r.errs = append(r.errs, &plan.Error{File: r.file, Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// rootPath returns name relative to the root directory.
func (r *resolver) rootPath(name string) string {
	if filepath.IsAbs(name) || r.root == "" {
		return name
	}
	return filepath.Join(r.root, name)
}

// domain resolves one parameter's domain.
func (r *resolver) domain(q *plan.Param) Domain {
	d := &q.Domain
	numeric := q.Type.Numeric()
	switch d.Kind {
	case plan.NoDomain:
		return newList(nil, numeric)
	case plan.Single:
		return newList([]string{d.Values[0].Text}, numeric)
	case plan.AnyOf:
		if q.Type == plan.Files {
			return r.files(q)
		}
		return newList(texts(d.Values), numeric)
	case plan.OneOf:
		if len(d.Defaults) > 0 {
			return newList(texts(d.Defaults[:1]), numeric)
		}
		return newList(texts(d.Values[:1]), numeric)
	case plan.FromFile:
		return r.fromFile(q)
	case plan.Random:
		n := int64(1)
		if d.Points != nil {
			n = d.Points.I
		}
		return newRandom(r.seed, q.Name, d.From.F, d.To.F, d.From.I, d.To.I, n, q.Type == plan.Integer)
	}
	return r.rangeDomain(q)
}

// rangeDomain resolves `range from A to B [step S | points N]`.
func (r *resolver) rangeDomain(q *plan.Param) Domain {
	d := &q.Domain
	integer := q.Type == plan.Integer
	if d.Points != nil {
		if integer {
			return &intPoints{from: d.From.I, to: d.To.I, n: d.Points.I}
		}
		return &points{from: d.From.F, to: d.To.F, n: d.Points.I}
	}
	if integer {
		step := int64(1)
		if d.Step != nil {
			step = d.Step.I
		}
		n, ok := intSpan(d.From.I, d.To.I, step)
		if !ok {
			r.errorf(d.Pos, "parameter %s: range has more than %d values", q.Name, int64(math.MaxInt64))
			return newList(nil, true)
		}
		return &intRange{from: d.From.I, step: step, n: n}
	}
	step := 1.0
	if d.Step != nil {
		step = d.Step.F
	}
	n, onGrid, ok := floatSpan(d.From.F, d.To.F, step)
	if !ok {
		r.errorf(d.Pos, "parameter %s: range has too many values", q.Name)
		return newList(nil, true)
	}
	return &floatRange{from: d.From.F, step: step, to: d.To.F, n: n, onGrid: onGrid}
}

func texts(vs []plan.Value) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Text
	}
	return out
}

// files resolves `files select anyof "GLOB" …`: every regular file under
// the root matching any pattern, relative to the root, sorted, once each.
func (r *resolver) files(q *plan.Param) Domain {
	var all []string
	for _, v := range q.Domain.Values {
		pattern := r.rootPath(v.Text)
		matches, err := filepath.Glob(pattern)
		if err != nil {
			r.errorf(v.Pos, "parameter %s: bad pattern %q: %v", q.Name, v.Text, err)
			continue
		}
		n := 0
		hidden := strings.HasPrefix(filepath.Base(v.Text), ".")
		for _, m := range matches {
			if st, err := os.Stat(m); err != nil || !st.Mode().IsRegular() {
				continue
			}
			if !hidden && strings.HasPrefix(filepath.Base(m), ".") {
				continue // as in the shell, * does not match a leading dot
			}
			m = filepath.Clean(m)
			if !filepath.IsAbs(v.Text) && r.root != "" {
				if rel, err := filepath.Rel(r.root, m); err == nil {
					m = rel
				}
			}
			all = append(all, m)
			n++
		}
		if n == 0 {
			r.errorf(v.Pos, "parameter %s: no file matches %q in %s", q.Name, v.Text, r.rootDir())
		}
	}
	slices.Sort(all)
	return newList(slices.Compact(all), false)
}

func (r *resolver) rootDir() string {
	if r.root == "" {
		return "."
	}
	return r.root
}

// fromFile resolves `fromfile FILE`: one value per line, skipping blank
// lines and lines starting with '#'.
func (r *resolver) fromFile(q *plan.Param) Domain {
	d := &q.Domain
	f, err := os.Open(r.rootPath(d.File.Text))
	if err != nil {
		r.errorf(d.File.Pos, "parameter %s: fromfile: %v", q.Name, err)
		return newList(nil, false)
	}
	defer f.Close()
	var vals []string
	br := bufio.NewReader(f)
	for line := 1; ; line++ {
		text, err := br.ReadString('\n')
		if text == "" && err != nil {
			break
		}
		v := strings.TrimSpace(text)
		if v == "" || strings.HasPrefix(v, "#") {
			continue
		}
		if q.Type.Numeric() {
			if _, perr := strconv.ParseFloat(v, 64); perr != nil || q.Type == plan.Integer && !isInteger(v) {
				r.errorf(d.File.Pos, "parameter %s: %s:%d: %q is not %s", q.Name, d.File.Text, line, v, article(q.Type))
				return newList(nil, true)
			}
		}
		vals = append(vals, v)
	}
	if len(vals) == 0 {
		r.warnings = append(r.warnings, plan.Warning{File: r.file, Pos: d.File.Pos,
			Msg: fmt.Sprintf("parameter %s: %s has no values, so the plan has no jobs", q.Name, d.File.Text)})
	}
	return newList(vals, q.Type.Numeric())
}

func isInteger(s string) bool {
	_, err := strconv.ParseInt(s, 10, 64)
	return err == nil
}

func article(t plan.Type) string {
	if t == plan.Integer {
		return "an integer"
	}
	return "a number"
}
