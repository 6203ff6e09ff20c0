package sim

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"orrery/clusterfile"
	"orrery/sched"
	"orrery/suggest"
)

// policyNames are the policies a scenario may name, the default first;
// a scenario without a policies line runs them all.
var policyNames = sched.PolicyNames()

// CheckPolicy returns an error unless the simulator knows the policy.
func CheckPolicy(name string) error {
	if slices.Contains(policyNames, name) {
		return nil
	}
	return fmt.Errorf("unknown policy %q%s", name, suggest.OneOf(name, policyNames))
}

// Defaults of a scenario file.
const (
	DefaultRuns   = 5
	DefaultThrash = 100.0
)

// maxErrors is how many errors one file reports before giving up.
const maxErrors = 20

// Error is an error at a position in a scenario file: the same kind as
// a cluster file's, which a scenario may read.
type Error = clusterfile.Error

// ErrorList is every error found in a scenario file, in position order.
type ErrorList = clusterfile.ErrorList

// Load reads a scenario file (see docs/simulator.md).
func Load(path string) (*Scenario, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Parse(path, f)
}

// Parse reads a scenario file from r. name is its path: it is used in
// messages, as the scenario's name when the file has no scenario line
// (without its extension), and to find the cluster files that `cluster
// NAME from FILE` and `clusters from FILE` name, relative to the
// scenario file. Errors are an
// ErrorList.
func Parse(name string, r io.Reader) (*Scenario, error) {
	p := &parser{file: name, sc: &Scenario{}, unit: 1, seen: map[string]int{},
		names: map[string]map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	inDoc := true
	for line := 1; sc.Scan() && len(p.errs) < maxErrors; line++ {
		text := sc.Text()
		if inDoc {
			inDoc = p.doc(text)
		}
		if toks := fields(text, line); len(toks) > 0 {
			p.statement(toks)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p.finish()
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool {
			a, b := p.errs[i], p.errs[j]
			return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
		})
		if len(p.errs) > maxErrors {
			p.errs = p.errs[:maxErrors]
		}
		return nil, p.errs
	}
	return p.sc, nil
}

// token is one word of a line.
type token struct {
	text      string
	line, col int
}

// fields splits a line into words, dropping a '#' comment.
func fields(s string, line int) []token {
	s, _, _ = strings.Cut(s, "#")
	var toks []token
	start := -1
	for i := 0; i <= len(s); i++ {
		blank := i == len(s) || s[i] == ' ' || s[i] == '\t' || s[i] == '\r'
		switch {
		case blank && start >= 0:
			toks = append(toks, token{s[start:i], line, utf8.RuneCountInString(s[:start]) + 1})
			start = -1
		case !blank && start < 0:
			start = i
		}
	}
	return toks
}

// parser holds the state of one file.
type parser struct {
	file string
	sc   *Scenario
	errs ErrorList
	unit float64
	// seen is the line of each statement that may appear once.
	seen map[string]int
	// names is the line of each cluster, workload and case name.
	names map[string]map[string]int
	open  *block
	// nodes says where each node name is: node names are unique in a
	// scenario, as the simulator knows nodes by name.
	nodes map[string]string
	// gridLine says a `clusters from` line was read: when its file
	// gives no cluster, that line has said why.
	gridLine bool
	// later are checks and fix-ups that need the whole file: names used
	// before they are defined, the work unit.
	later []func()
}

// block is an open cluster or workload block.
type block struct {
	kw    token // "cluster" or "workload"
	name  string
	index int // in Scenario.Clusters or Scenario.Workloads
	next  int // number of the next node a nodes line names
}

func (p *parser) errorf(t token, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: t.line, Col: t.col, Msg: fmt.Sprintf(format, args...)})
}

// doc adds a comment line at the top of the file to the scenario's Doc
// and reports whether the doc goes on.
func (p *parser) doc(text string) bool {
	text = strings.TrimSpace(text)
	if !strings.HasPrefix(text, "#") {
		return false
	}
	text = strings.TrimPrefix(strings.TrimPrefix(text, "#"), " ")
	if p.sc.Doc != "" || text != "" {
		p.sc.Doc = strings.TrimLeft(p.sc.Doc+"\n"+strings.TrimRight(text, " \t"), "\n")
	}
	return true
}

// topKeywords are the statements outside blocks.
var topKeywords = []string{"scenario", "runs", "policies", "unit", "cluster", "clusters", "workload", "case"}

// statement reads one line.
func (p *parser) statement(t []token) {
	if p.open != nil && p.inBlock(t) {
		return
	}
	switch kw := t[0]; kw.text {
	case "scenario":
		if p.once(kw) && p.count(t, 2) && p.validName(t[1]) {
			p.sc.Name = t[1].text
		}
	case "runs":
		if p.once(kw) && p.count(t, 2) {
			p.sc.Runs, _ = p.integer(t[1], kw.text, 1)
		}
	case "policies":
		if p.once(kw) && p.count(t, -2) {
			p.sc.Policies = p.policies(t[1:])
		}
	case "unit":
		if p.once(kw) && p.count(t, 2) {
			if v, ok := p.number(t[1], kw.text); ok && p.positive(t[1], kw.text, v) {
				p.unit = v
			}
		}
	case "cluster":
		p.cluster(t)
	case "clusters":
		p.clusters(t)
	case "workload":
		p.workload(t)
	case "case":
		p.caseLine(t)
	case "end":
		p.errorf(kw, "end without a cluster or workload block")
	case "node", "nodes", "jobs":
		p.errorf(kw, "%s outside a %s block", kw.text, map[bool]string{true: "workload", false: "cluster"}[kw.text == "jobs"])
	default:
		p.errorf(kw, "unknown statement %q%s", kw.text, suggest.OneOf(kw.text, topKeywords))
	}
}

// inBlock reads a line inside an open block and reports whether it
// belonged there. A top-level statement closes the block with an error.
func (p *parser) inBlock(t []token) bool {
	b, kw := p.open, t[0]
	want := map[string][]string{"cluster": {"node", "nodes", "end"}, "workload": {"jobs", "end"}}[b.kw.text]
	switch {
	case kw.text == "end":
		p.count(t, 1)
		p.open = nil
	case kw.text == "jobs" && b.kw.text == "workload":
		p.jobs(t)
	case (kw.text == "node" || kw.text == "nodes") && b.kw.text == "cluster":
		p.node(t)
	case slices.Contains(topKeywords, kw.text):
		p.errorf(b.kw, "%s %s has no end", b.kw.text, b.name)
		p.open = nil
		return false
	default:
		p.errorf(kw, "unknown %s line %q%s", b.kw.text, kw.text, suggest.OneOf(kw.text, want))
	}
	return true
}

// once reports whether a statement that may appear once appears for the
// first time.
func (p *parser) once(kw token) bool {
	if line, dup := p.seen[kw.text]; dup {
		p.errorf(kw, "%s is already on line %d", kw.text, line)
		return false
	}
	p.seen[kw.text] = kw.line
	return true
}

// count checks that a line has n words, or at least -n when n < 0.
func (p *parser) count(t []token, n int) bool {
	switch {
	case n > 0 && len(t) > n:
		p.errorf(t[n], "unexpected %q after %s", t[n].text, strings.Join(texts(t[:n]), " "))
		return false
	case len(t) < n || len(t) < -n:
		p.errorf(t[0], "%s needs a value", t[0].text)
		return false
	}
	return true
}

func texts(t []token) []string {
	s := make([]string, len(t))
	for i, x := range t {
		s[i] = x.text
	}
	return s
}

// define records a new cluster, workload or case name.
func (p *parser) define(kind string, t token) bool {
	if !p.validName(t) {
		return false
	}
	if p.names[kind] == nil {
		p.names[kind] = map[string]int{}
	}
	if line, dup := p.names[kind][t.text]; dup {
		p.errorf(t, "%s %s is already on line %d", kind, t.text, line)
		return false
	}
	p.names[kind][t.text] = t.line
	return true
}

// validName checks a name: letters, digits, '-', '_', '.' and '+'.
func (p *parser) validName(t token) bool {
	for _, r := range t.text {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.+", r)) {
			p.errorf(t, "bad name %q: use letters, digits, '-', '_', '.' and '+'", t.text)
			return false
		}
	}
	return true
}

// policies reads a list of policies, separated by spaces or commas.
func (p *parser) policies(t []token) []string {
	var out []string
	for _, x := range t {
		for _, name := range strings.Split(x.text, ",") {
			switch err := CheckPolicy(name); {
			case err != nil:
				p.errorf(x, "%v", err)
			case slices.Contains(out, name):
				p.errorf(x, "policy %s is listed twice", name)
			default:
				out = append(out, name)
			}
		}
	}
	return out
}

// cursor walks the attributes of a line.
type cursor struct {
	p    *parser
	toks []token
	i    int
}

func (c *cursor) more() bool   { return c.i < len(c.toks) }
func (c *cursor) peek() string { return c.toks[c.i].text }
func (c *cursor) take() token {
	c.i++
	return c.toks[c.i-1]
}

// arg returns the value that follows attribute kw.
func (c *cursor) arg(kw token) (token, bool) {
	if !c.more() {
		c.p.errorf(kw, "%s needs a value", kw.text)
		return token{}, false
	}
	return c.take(), true
}

// attrs reads the attributes left on a line; set reads one attribute's
// values. Each attribute may appear once.
func (p *parser) attrs(c *cursor, what string, names []string, set func(kw token)) {
	given := map[string]bool{}
	for c.more() {
		kw := c.take()
		if !slices.Contains(names, kw.text) {
			p.errorf(kw, "unknown %s attribute %q%s", what, kw.text, suggest.OneOf(kw.text, names))
			return
		}
		if given[kw.text] {
			p.errorf(kw, "%s is given twice", kw.text)
		}
		given[kw.text] = true
		set(kw)
	}
}

// cluster reads `cluster NAME [link BW LAT] [wan BW LAT] [no-migration]
// [from FILE]`.
func (p *parser) cluster(t []token) {
	if !p.count(t, -2) {
		return
	}
	cl := Cluster{Name: t[1].text}
	ok := p.define("cluster", t[1])
	var from *token
	c := &cursor{p: p, toks: t, i: 2}
	p.attrs(c, "cluster", []string{"link", "wan", "no-migration", "from"}, func(kw token) {
		switch kw.text {
		case "no-migration":
			cl.NoMigration = true
		case "link":
			cl.Link = p.link(c, kw)
		case "wan":
			cl.WAN = p.link(c, kw)
		case "from":
			if f, ok := c.arg(kw); ok {
				from = &f
			}
		}
	})
	if from != nil {
		cl.Nodes = p.clusterFile(*from, cl.Name)
	}
	p.sc.Clusters = append(p.sc.Clusters, cl)
	if from == nil {
		p.open = &block{kw: t[0], name: cl.Name, index: len(p.sc.Clusters) - 1, next: 1}
	}
	if ok {
		i, kw := len(p.sc.Clusters)-1, t[0]
		p.later = append(p.later, func() {
			if len(p.sc.Clusters[i].Nodes) == 0 && from == nil {
				p.errorf(kw, "cluster %s has no nodes", p.sc.Clusters[i].Name)
			}
		})
	}
}

// link reads BANDWIDTH LATENCY.
func (p *parser) link(c *cursor, kw token) Link {
	var l Link
	if bw, ok := c.arg(kw); ok {
		l.Bandwidth, _ = p.bandwidth(bw, kw.text)
	}
	if lat, ok := c.arg(kw); ok {
		l.Latency, _ = p.duration(lat, kw.text+" latency", false)
	}
	return l
}

// clusterFile reads the nodes of a cluster file of one cluster
// (docs/cluster-file.md) for scenario cluster cl.
func (p *parser) clusterFile(f token, cl string) []Node {
	g := p.gridFile(f)
	if g == nil {
		return nil
	}
	if n := len(g.Clusters); n > 1 {
		names := make([]string, n)
		for i, c := range g.Clusters {
			names[i] = c.Name
		}
		p.errorf(f, "cluster file %s has %d clusters (%s): name each with `clusters from %s`", f.text, n, strings.Join(names, ", "), f.text)
		return nil
	}
	return p.fileNodes(f, g.Clusters[0], cl)
}

// clusters reads `clusters from FILE [link BW LAT] [wan BW LAT]
// [no-migration]`: every cluster of a cluster file, each a scenario
// cluster of the same name with the line's links.
func (p *parser) clusters(t []token) {
	if len(t) < 2 || t[1].text != "from" {
		p.errorf(t[min(1, len(t)-1)], "want clusters from FILE [link BANDWIDTH LATENCY] [wan BANDWIDTH LATENCY] [no-migration]")
		return
	}
	if len(t) < 3 {
		p.errorf(t[1], "from needs a value")
		return
	}
	f := t[2]
	p.gridLine = true
	var tmpl Cluster
	c := &cursor{p: p, toks: t, i: 3}
	p.attrs(c, "clusters", []string{"link", "wan", "no-migration"}, func(kw token) {
		switch kw.text {
		case "no-migration":
			tmpl.NoMigration = true
		case "link":
			tmpl.Link = p.link(c, kw)
		case "wan":
			tmpl.WAN = p.link(c, kw)
		}
	})
	g := p.gridFile(f)
	if g == nil {
		return
	}
	for _, fc := range g.Clusters {
		cl := tmpl
		cl.Name = fc.Name
		if !p.define("cluster", token{fc.Name, f.line, f.col}) {
			continue
		}
		cl.Nodes = p.fileNodes(f, fc, cl.Name)
		p.sc.Clusters = append(p.sc.Clusters, cl)
	}
}

// gridFile reads the cluster file that f names, relative to the
// scenario file, reporting each of its errors at f.
func (p *parser) gridFile(f token) *clusterfile.Grid {
	path := f.text
	if !filepath.IsAbs(path) {
		path = filepath.Join(filepath.Dir(p.file), path)
	}
	g, err := clusterfile.Load(path)
	var list clusterfile.ErrorList
	switch {
	case errors.As(err, &list):
		for _, e := range list {
			p.errorf(f, "cluster file: %v", e)
		}
	case err != nil:
		p.errorf(f, "cluster file: %v", err)
	}
	return g
}

// fileNodes turns the nodes of a cluster file's cluster into the nodes
// of scenario cluster cl: each with its cpus (1 if none), its speed
// taken as GHz (1 if none), its memory and its job limit; no swap. Where
// a node runs (SSH or not) does not change what the simulator models.
func (p *parser) fileNodes(f token, fc clusterfile.Cluster, cl string) []Node {
	if len(fc.Nodes) == 0 {
		how := "its nodes join its head"
		if fc.Slurm != nil {
			how = "its nodes are Slurm's pilots"
		}
		p.errorf(f, "cluster %s of %s has no node lines (%s): the simulator needs its nodes", fc.Name, f.text, how)
		return nil
	}
	var nodes []Node
	for _, n := range fc.Nodes {
		node := Node{Name: n.Name, CPUs: max(n.CPUs, 1), Speed: n.Speed, Memory: n.Memory,
			Thrash: DefaultThrash, Limit: n.JobLimit}
		if node.Speed == 0 {
			node.Speed = 1
		}
		if p.nodeName(f, node.Name, fmt.Sprintf("cluster %s (%s)", cl, f.text)) {
			nodes = append(nodes, node)
		}
	}
	return nodes
}

// node reads `node NAME ATTRS` or `nodes N ATTRS` inside a cluster block.
func (p *parser) node(t []token) {
	b, kw := p.open, t[0]
	if !p.count(t, -2) {
		return
	}
	n := Node{CPUs: 1, Speed: 1, Thrash: DefaultThrash}
	count := 1
	if kw.text == "nodes" {
		var ok bool
		if count, ok = p.integer(t[1], "nodes", 1); !ok {
			return
		}
	} else if !p.validName(t[1]) {
		return
	}
	lo, hi := 0.0, 0.0
	c := &cursor{p: p, toks: t, i: 2}
	p.attrs(c, "node", []string{"cpus", "speed", "memory", "swap", "thrash", "job-limit"}, func(a token) {
		v, ok := c.arg(a)
		if !ok {
			return
		}
		switch a.text {
		case "cpus":
			n.CPUs, _ = p.integer(v, a.text, 1)
		case "speed":
			lo, hi = p.speedRange(v, kw.text == "nodes")
		case "memory":
			n.Memory, _ = p.size(v, a.text)
		case "swap":
			n.Swap, _ = p.size(v, a.text)
		case "thrash":
			n.Thrash, _ = p.number(v, a.text)
		case "job-limit":
			n.Limit, _ = p.integer(v, a.text, 1)
		}
	})
	cl := &p.sc.Clusters[b.index]
	for i := range count {
		n.Name = t[1].text
		if kw.text == "nodes" {
			n.Name = fmt.Sprintf("%s-%d", b.name, b.next)
			b.next++
		}
		if lo > 0 {
			n.Speed = spread(lo, hi, i, count)
		}
		if !p.nodeName(t[1], n.Name, fmt.Sprintf("line %d", kw.line)) {
			return
		}
		cl.Nodes = append(cl.Nodes, n)
	}
}

// nodeName records a node's name, which where describes, unless another
// node has it.
func (p *parser) nodeName(t token, name, where string) bool {
	if p.nodes == nil {
		p.nodes = map[string]string{}
	}
	if prev, dup := p.nodes[name]; dup {
		p.errorf(t, "node %s is already on %s (node names are unique in a scenario)", name, prev)
		return false
	}
	p.nodes[name] = where
	return true
}

// spread returns the i-th of n values spread evenly from lo to hi.
func spread(lo, hi float64, i, n int) float64 {
	if n == 1 {
		return (lo + hi) / 2
	}
	return lo + (hi-lo)*float64(i)/float64(n-1)
}

// speedRange reads SPEED, or LO..HI when a range is allowed.
func (p *parser) speedRange(v token, rangeOK bool) (lo, hi float64) {
	a, b, isRange := strings.Cut(v.text, "..")
	if !isRange {
		lo, _ = p.speed(v, v.text)
		return lo, lo
	}
	if !rangeOK {
		p.errorf(v, "speed %q: a range of speeds needs `nodes N`", v.text)
		return 0, 0
	}
	lo, ok1 := p.speed(token{a, v.line, v.col}, v.text)
	hi, ok2 := p.speed(token{b, v.line, v.col + utf8.RuneCountInString(a) + 2}, v.text)
	if !ok1 || !ok2 {
		return 0, 0
	}
	return lo, hi
}

// caseLine reads `case NAME [workload W] [clusters A,B] [per-cpu
// [P=]F[,F]]... [policies P,Q] [checkpoint] [no-migration] [paper
// P=TIME ...]`.
func (p *parser) caseLine(t []token) {
	if !p.count(t, -2) {
		return
	}
	cs := Case{Name: t[1].text}
	p.define("case", t[1])
	refs := map[string]token{}
	c := &cursor{p: p, toks: t, i: 2}
	p.attrs(c, "case", []string{"workload", "clusters", "per-cpu", "policies", "checkpoint", "no-migration", "paper"}, func(kw token) {
		switch kw.text {
		case "checkpoint":
			cs.Checkpoint = true
			return
		case "no-migration":
			cs.NoMigration = true
			return
		}
		if kw.text == "paper" {
			cs.Paper = p.paper(c, kw)
			return
		}
		v, ok := c.arg(kw)
		if !ok {
			return
		}
		refs[kw.text] = v
		switch kw.text {
		case "workload":
			cs.Workload = v.text
		case "clusters":
			cs.Clusters = strings.Split(v.text, ",")
		case "per-cpu":
			pol, val, ok := strings.Cut(v.text, "=")
			if !ok {
				cs.PerCPU = p.perCPU(v)
				break
			}
			if err := CheckPolicy(pol); err != nil {
				p.errorf(v, "per-cpu: %v", err)
				break
			}
			if cs.PerCPUFor == nil {
				cs.PerCPUFor = map[string][]float64{}
			}
			cs.PerCPUFor[pol] = p.perCPU(token{val, v.line, v.col + utf8.RuneCountInString(pol) + 1})
		case "policies":
			cs.Policies = p.policies([]token{v})
		}
	})
	p.sc.Cases = append(p.sc.Cases, cs)
	p.later = append(p.later, func() { p.checkCase(cs, refs) })
}

// paper reads POLICY=TIME pairs (spaces or commas between them).
func (p *parser) paper(c *cursor, kw token) map[string]float64 {
	m := map[string]float64{}
	for c.more() && strings.Contains(c.peek(), "=") {
		v := c.take()
		for _, pair := range strings.Split(v.text, ",") {
			pol, val, _ := strings.Cut(pair, "=")
			if err := CheckPolicy(pol); err != nil {
				p.errorf(v, "paper: %v", err)
				continue
			}
			if s, ok := p.duration(token{val, v.line, v.col}, "paper "+pol, true); ok {
				m[pol] = s
			}
		}
	}
	if len(m) == 0 && !p.erred(kw.line) {
		p.errorf(kw, "paper needs POLICY=SECONDS values, such as paper fcfs=1300 mosix=921")
	}
	return m
}

// erred reports whether line already has an error.
func (p *parser) erred(line int) bool {
	return slices.ContainsFunc(p.errs, func(e *Error) bool { return e.Line == line })
}

// perCPU reads F[,F...].
func (p *parser) perCPU(v token) []float64 {
	var out []float64
	for _, s := range strings.Split(v.text, ",") {
		f, ok := p.number(token{s, v.line, v.col}, "per-cpu")
		if ok && p.positive(v, "per-cpu", f) {
			out = append(out, f)
		}
	}
	return out
}

// checkCase checks the names a case uses, once the whole file is read.
func (p *parser) checkCase(cs Case, refs map[string]token) {
	if w, ok := refs["workload"]; ok && !slices.ContainsFunc(p.sc.Workloads, func(x Workload) bool { return x.Name == w.text }) {
		names := mapNames(p.sc.Workloads, func(x Workload) string { return x.Name })
		p.errorf(w, "case %s: no workload %q%s", cs.Name, w.text, suggest.DidYouMean(w.text, names))
	}
	all := mapNames(p.sc.Clusters, func(x Cluster) string { return x.Name })
	for i, name := range cs.Clusters {
		v := refs["clusters"]
		switch {
		case !slices.Contains(all, name):
			p.errorf(v, "case %s: no cluster %q%s", cs.Name, name, suggest.DidYouMean(name, all))
		case slices.Contains(cs.Clusters[:i], name):
			p.errorf(v, "case %s: cluster %s is listed twice", cs.Name, name)
		}
	}
	n := len(cs.Clusters)
	if n == 0 {
		n = len(all)
	}
	if v, ok := refs["per-cpu"]; ok {
		for _, per := range append([][]float64{cs.PerCPU}, mapValues(cs.PerCPUFor)...) {
			if len(per) > 1 && len(per) != n {
				p.errorf(v, "case %s: per-cpu has %d values for %d clusters (give one value, or one per cluster)", cs.Name, len(per), n)
			}
		}
	}
}

// mapValues returns m's values, in the order of their keys.
func mapValues[V any](m map[string]V) []V {
	var out []V
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, m[k])
	}
	return out
}

func mapNames[T any](xs []T, name func(T) string) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = name(x)
	}
	return out
}

// finish runs the checks that need the whole file and fills in defaults.
func (p *parser) finish() {
	if p.open != nil {
		p.errorf(p.open.kw, "%s %s has no end", p.open.kw.text, p.open.name)
	}
	for _, f := range p.later {
		f()
	}
	top := token{line: 1, col: 1}
	if len(p.sc.Clusters) == 0 && !p.gridLine {
		p.errorf(top, "no cluster: a scenario needs at least one cluster block")
	}
	if len(p.sc.Workloads) == 0 {
		p.errorf(top, "no workload: a scenario needs at least one workload block")
	}
	if p.sc.Name == "" {
		p.sc.Name = strings.TrimSuffix(filepath.Base(p.file), filepath.Ext(p.file))
	}
	if p.sc.Runs == 0 {
		p.sc.Runs = DefaultRuns
	}
	if len(p.sc.Policies) == 0 {
		p.sc.Policies = slices.Clone(policyNames)
	}
	if len(p.sc.Cases) == 0 {
		p.sc.Cases = []Case{{Name: "all"}}
	}
	p.sc.Doc = strings.TrimRight(p.sc.Doc, "\n")
}
