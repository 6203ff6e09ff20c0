package clusterfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"orrery/pilots"
	"orrery/suggest"
)

// MaxErrors is how many errors one file reports before giving up.
const MaxErrors = 20

// Error is an error at a position in a cluster file.
type Error struct {
	File      string
	Line, Col int
	Msg       string
}

// Error returns "FILE:LINE:COL: message".
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// ErrorList is every error found in a cluster file (up to MaxErrors),
// in position order.
type ErrorList []*Error

// Error returns the errors, one per line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Attribute names, as the file spells them.
var (
	statements   = []string{"cluster", "node"}
	clusterAttrs = []string{"ssh", "identity", "known-hosts", "listen", "binary", "lease",
		"slurm", "partition", "account", "time", "pilots", "cpus-per-pilot", "memory-per-pilot", "idle", "join-wait", "sbatch"}
	// clusterFlags are the cluster attributes that are one word alone.
	clusterFlags = []string{"slurm"}
	// slurmAttrs need the word slurm on their line.
	slurmAttrs = []string{"partition", "account", "time", "pilots", "cpus-per-pilot", "memory-per-pilot", "idle", "join-wait", "sbatch"}
	// sbatchOptions are the sbatch options a cluster file may pass on to
	// its pilots, each spelt out whole (sbatch takes abbreviations, and
	// the last of an option wins): those that choose where and how a
	// pilot runs, none that names it, places its output, sends it to
	// another cluster or sets what Orrery sets.
	sbatchOptions = []string{"--qos", "--constraint", "--gres", "--gres-flags", "--reservation", "--exclusive",
		"--exclude", "--nodelist", "--licenses", "--tmp", "--hint", "--mail-type", "--mail-user", "--nice",
		"--wckey", "--gpus", "--gpus-per-node", "--gpus-per-task", "--cpus-per-gpu", "--mem-per-gpu",
		"--threads-per-core", "--cores-per-socket", "--sockets-per-node", "--switches", "--requeue",
		"--no-requeue", "--prefer", "--network", "--core-spec", "--thread-spec", "--priority", "--begin", "--deadline"}
	nodeAttrs      = []string{"ssh", "job-limit", "cpus", "cpu-share", "memory", "speed"}
	localOnlyAttrs = []string{"cpu-share"}
)

// Parse reads a cluster file from r. name is its path: it is used in
// messages and to resolve the relative paths the file names. Errors in
// the file are an ErrorList.
func Parse(name string, r io.Reader) (*Grid, error) {
	p := &parser{file: name, dir: filepath.Dir(name), g: &Grid{File: name},
		clusters: map[string]int{}, nodes: map[string]int{}}
	p.home, p.homeErr = os.UserHomeDir()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() && len(p.errs) < MaxErrors {
		line++
		if toks := p.fields(sc.Text(), line); len(toks) > 0 {
			p.statement(toks)
		}
	}
	if err := sc.Err(); err != nil {
		if !errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		p.errorf(token{line: line + 1, col: 1}, "line longer than 1 MiB")
	}
	p.finish(line)
	if len(p.errs) > 0 {
		sort.SliceStable(p.errs, func(i, j int) bool {
			a, b := p.errs[i], p.errs[j]
			return a.Line < b.Line || a.Line == b.Line && a.Col < b.Col
		})
		if len(p.errs) > MaxErrors {
			p.errs = p.errs[:MaxErrors]
		}
		return nil, p.errs
	}
	return p.g, nil
}

// token is one word of a line, its quotes removed.
type token struct {
	text      string
	line, col int
}

// parser holds the state of one file.
type parser struct {
	file, dir     string
	home          string
	homeErr       error
	g             *Grid
	errs          ErrorList
	explicit      bool           // a cluster line was seen
	firstLoose    *token         // the first node line before any cluster line
	clusters      map[string]int // line of each cluster name
	nodes         map[string]int // line of each node name: unique in the file
	clusterTokens []token        // the first word of each cluster's line
}

func (p *parser) errorf(t token, format string, args ...any) {
	p.errs = append(p.errs, &Error{p.file, t.line, t.col, fmt.Sprintf(format, args...)})
}

// fields splits a line into words: a word is bare, or quoted whole
// ("..." in which \" is a quote and \\ a backslash); '#' outside quotes
// starts a comment. A line with a quoting error gives no words.
func (p *parser) fields(s string, line int) []token {
	var toks []token
	col := func(i int) int { return utf8.RuneCountInString(s[:i]) + 1 }
	blank := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f' }
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case blank(c):
			i++
			continue
		case c == '#':
			return toks
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != '"'; j++ {
				if s[j] == '\\' && j+1 < len(s) && (s[j+1] == '"' || s[j+1] == '\\') {
					j++
				}
				b.WriteByte(s[j])
			}
			if j == len(s) {
				p.errorf(token{line: line, col: col(i)}, "this quote is not closed")
				return nil
			}
			j++
			if j < len(s) && !blank(s[j]) && s[j] != '#' {
				p.errorf(token{line: line, col: col(j)}, "a closing quote must end its word: put a space after it")
				return nil
			}
			toks = append(toks, token{b.String(), line, col(i)})
			i = j
		default:
			j := i
			for j < len(s) && !blank(s[j]) && s[j] != '#' {
				if s[j] == '"' {
					p.errorf(token{line: line, col: col(j)}, "a quote inside a word: quote the whole value")
					return nil
				}
				j++
			}
			toks = append(toks, token{s[i:j], line, col(i)})
			i = j
		}
	}
	return toks
}

// statement reads one line.
func (p *parser) statement(t []token) {
	switch kw := t[0]; kw.text {
	case "cluster":
		p.cluster(t)
	case "node":
		p.node(t)
	default:
		p.errorf(kw, "unknown statement %q%s", kw.text, suggest.OneOf(kw.text, statements))
	}
}

// validName checks a cluster or node name: letters, digits, '-', '_',
// '.' and '+', starting with a letter or digit (a node's name names its
// directory).
func (p *parser) validName(t token, what string) bool {
	ok := t.text != ""
	for i, r := range t.text {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && (i == 0 || !strings.ContainsRune("-_.+", r)) {
			ok = false
		}
	}
	if !ok {
		p.errorf(t, "bad %s name %q: use letters, digits, '-', '_', '.' and '+', starting with a letter or digit", what, t.text)
	}
	return ok
}

// attrs reads the ATTRIBUTE VALUE pairs after a line's name, and the
// attributes in flags, which are one word alone (their value is set's
// kw too); set reads one value. Each attribute may appear once.
func (p *parser) attrs(t []token, what string, names, flags []string, set func(kw, v token)) {
	given := map[string]token{}
	for i := 2; i < len(t); i += 2 {
		kw := t[i]
		if !slices.Contains(names, kw.text) {
			p.errorf(kw, "unknown %s attribute %q%s", what, kw.text, suggest.OneOf(kw.text, names))
			return
		}
		if first, dup := given[kw.text]; dup {
			p.errorf(kw, "%s is given twice (first at column %d)", kw.text, first.col)
			if slices.Contains(flags, kw.text) {
				i--
			}
			continue
		}
		given[kw.text] = kw
		if slices.Contains(flags, kw.text) {
			set(kw, kw)
			i--
			continue
		}
		if i+1 >= len(t) {
			p.errorf(kw, "%s needs a value", kw.text)
			return
		}
		set(kw, t[i+1])
	}
}

// cluster reads `cluster NAME [ATTRIBUTE VALUE]...`.
func (p *parser) cluster(t []token) {
	kw := t[0]
	if len(t) < 2 {
		p.errorf(kw, "cluster needs a name: cluster NAME [ssh USER@HOST[:PORT]] [identity FILE] [known-hosts FILE] [listen HOST:PORT] [binary FILE] [lease DURATION]")
		return
	}
	if !p.explicit && p.firstLoose != nil {
		p.errorf(*p.firstLoose, "node line before the first cluster line: in a file with cluster lines, each node belongs to the cluster line above it")
	}
	p.explicit = true
	c := Cluster{Name: t[1].text, Line: kw.line, Col: kw.col, Lease: DefaultLease}
	validName := p.validName(t[1], "cluster")
	if validName {
		if line, dup := p.clusters[c.Name]; dup {
			p.errorf(t[1], "cluster %s is already on line %d", c.Name, line)
		}
		p.clusters[c.Name] = kw.line
	}
	var needSSH []token   // attributes that only a head reached by SSH has
	var needSlurm []token // attributes that only a Slurm cluster has
	sl := &Slurm{Pilots: DefaultPilots, Idle: DefaultPilotIdle, JoinWait: DefaultPilotJoinWait}
	p.attrs(t, "cluster", clusterAttrs, clusterFlags, func(kw, v token) {
		if slices.Contains(slurmAttrs, kw.text) {
			needSlurm = append(needSlurm, kw)
			p.slurmAttr(sl, kw, v)
			return
		}
		switch kw.text {
		case "slurm":
			c.Slurm = sl
		case "ssh":
			e, err := parseEndpoint(v.text, true)
			if err != nil {
				p.errorf(v, "ssh %q: %v", v.text, err)
				return
			}
			c.SSH = e
		case "identity":
			c.Identity = p.path(kw, v)
			needSSH = append(needSSH, kw)
		case "known-hosts":
			c.KnownHosts = p.path(kw, v)
			needSSH = append(needSSH, kw)
		case "binary":
			c.Binary = p.path(kw, v)
			needSSH = append(needSSH, kw)
		case "listen":
			if err := checkListen(v.text); err != nil {
				p.errorf(v, "listen %q: %v", v.text, err)
				return
			}
			c.Listen = v.text
		case "lease":
			d, err := time.ParseDuration(v.text)
			switch {
			case err != nil:
				p.errorf(v, "lease %q: want a duration such as 90m or 2h", v.text)
			case d <= 0:
				p.errorf(v, "lease %q: must be above 0", v.text)
			default:
				c.Lease = d
			}
		}
	})
	if c.Slurm != nil {
		if _, err := pilots.Prefix("00000000", c.Name); err != nil && validName {
			p.errorf(t[1], "cluster %s: a Slurm cluster's name is in its pilots' names: letters, digits, '_', '.' and '-' only, at most 24", c.Name)
		}
	}
	if c.Slurm == nil {
		for _, a := range needSlurm {
			p.errorf(a, "%s is for a cluster whose nodes are Slurm's pilots: add the word slurm to cluster %s", a.text, c.Name)
		}
	}
	if c.SSH == nil {
		for _, a := range needSSH {
			p.errorf(a, "%s is for a cluster whose head is reached by ssh: add ssh USER@HOST to cluster %s", a.text, c.Name)
		}
	} else if c.KnownHosts == "" {
		c.KnownHosts = p.path(kw, token{DefaultKnownHosts, kw.line, kw.col})
	}
	p.g.Clusters = append(p.g.Clusters, c)
	p.clusterTokens = append(p.clusterTokens, kw)
}

// node reads `node NAME [ATTRIBUTE VALUE]...`.
func (p *parser) node(t []token) {
	kw := t[0]
	if len(t) < 2 {
		p.errorf(kw, "node needs a name: node NAME [job-limit N] [cpus N] [cpu-share F] [memory SIZE] [speed F], or node NAME ssh [USER@]HOST [job-limit N] [cpus N] [memory SIZE] [speed F]")
		return
	}
	if !p.explicit && p.firstLoose == nil {
		p.firstLoose = &kw
	}
	n := Node{Name: t[1].text, Line: kw.line, Col: kw.col}
	if p.validName(t[1], "node") {
		if line, dup := p.nodes[n.Name]; dup {
			p.errorf(t[1], "node %s is already on line %d", n.Name, line)
		}
		p.nodes[n.Name] = kw.line
	}
	var local []token // attributes only a node on the head's machine has
	p.attrs(t, "node", nodeAttrs, nil, func(kw, v token) {
		if slices.Contains(localOnlyAttrs, kw.text) {
			local = append(local, kw)
		}
		if kw.text == "ssh" {
			e, err := parseEndpoint(v.text, false)
			if err != nil {
				p.errorf(v, "ssh %q: %v", v.text, err)
				return
			}
			n.SSH = e
			return
		}
		if err := n.set(kw.text, v.text); err != nil {
			p.errorf(v, "%s %q: %v", kw.text, v.text, err)
		}
	})
	if n.SSH != nil {
		for _, a := range local {
			p.errorf(a, "%s is for a node on the head's machine (a control group); a node reached by ssh takes job-limit, cpus, memory and speed", a.text)
		}
	} else {
		n.fill()
	}
	if len(p.g.Clusters) == 0 {
		p.g.Clusters = append(p.g.Clusters, Cluster{Name: LocalName, Lease: DefaultLease})
		p.clusterTokens = append(p.clusterTokens, kw)
	}
	c := &p.g.Clusters[len(p.g.Clusters)-1]
	c.Nodes = append(c.Nodes, n)
}

// finish checks what needs the whole file.
func (p *parser) finish(lines int) {
	if len(p.g.Clusters) == 0 {
		p.errorf(token{line: max(lines, 1), col: 1}, "no nodes: want node lines, or cluster lines each with its nodes (docs/cluster-file.md)")
		return
	}
	for i, c := range p.g.Clusters {
		if p.explicit && len(c.Nodes) == 0 && c.Listen == "" && c.Slurm == nil {
			p.errorf(p.clusterTokens[i], "cluster %s has no nodes: give it node lines, listen HOST:PORT for nodes that join its head, or the word slurm for pilots", c.Name)
		}
	}
}

// slurmAttr reads one attribute of a Slurm cluster's pilots.
func (p *parser) slurmAttr(sl *Slurm, kw, v token) {
	var err error
	switch kw.text {
	case "partition", "account":
		if v.text == "" || strings.ContainsAny(v.text, " \t,|'\"\\$`") || strings.HasPrefix(v.text, "-") {
			err = fmt.Errorf("want a Slurm %s name", kw.text)
		} else if kw.text == "partition" {
			sl.Partition = v.text
		} else {
			sl.Account = v.text
		}
	case "time":
		sl.Time, err = ParseSlurmTime(v.text)
	case "pilots":
		sl.Pilots, err = positiveInt(v.text)
	case "cpus-per-pilot":
		sl.CPUs, err = positiveInt(v.text)
	case "memory-per-pilot":
		sl.Memory, err = ParseSize(v.text)
	case "idle", "join-wait":
		var d time.Duration
		if d, err = time.ParseDuration(v.text); err == nil && d <= 0 {
			err = fmt.Errorf("must be above 0")
		} else if err != nil {
			err = fmt.Errorf("want a duration such as 2m or 30s")
		}
		if kw.text == "idle" {
			sl.Idle = d
		} else {
			sl.JoinWait = d
		}
	case "sbatch":
		sl.Sbatch = strings.Fields(v.text)
		for _, a := range sl.Sbatch {
			name, _, _ := strings.Cut(a, "=")
			switch {
			case !strings.HasPrefix(a, "--"):
				err = fmt.Errorf("%q: give sbatch's options whole, as --name=value (such as --qos=low)", a)
			case !slices.Contains(sbatchOptions, name):
				err = fmt.Errorf("%s is not an option orrery passes on to its pilots (it names them, places their output and sets their size and time itself: use partition, account, time, cpus-per-pilot and memory-per-pilot); it passes on %s",
					name, strings.Join(sbatchOptions, ", "))
			}
			if err != nil {
				break
			}
		}
	}
	if err != nil {
		p.errorf(v, "%s %q: %v", kw.text, v.text, err)
	}
}

// ParseSlurmTime reads a time limit as Slurm writes it: MM, MM:SS,
// HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS; at least a minute, Slurm's
// least.
func ParseSlurmTime(s string) (time.Duration, error) {
	d, err := ParseSlurmDuration(s)
	if err == nil && d < time.Minute {
		return 0, fmt.Errorf("%s is less than a minute, Slurm's least time limit", s)
	}
	return d, err
}

// ParseSlurmDuration reads a time as Slurm writes it (see
// ParseSlurmTime), of any length: squeue's time left of a job near its
// end is "0:45".
func ParseSlurmDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("want a time limit such as 01:00:00 (HH:MM:SS) or 1-12:00:00 (D-HH:MM:SS)")
	days := 0
	rest := s
	if d, r, ok := strings.Cut(s, "-"); ok {
		v, err := strconv.Atoi(d)
		if err != nil || v < 0 || d[0] == '+' {
			return 0, bad
		}
		days, rest = v, r
	}
	parts := strings.Split(rest, ":")
	if len(parts) > 3 {
		return 0, bad
	}
	var f [3]int
	for i, part := range parts {
		v, err := strconv.Atoi(part)
		if err != nil || v < 0 || part == "" || part[0] == '+' || i > 0 && v > 59 {
			return 0, bad
		}
		f[i] = v
	}
	var h, m, sec int
	switch {
	case strings.Contains(s, "-"): // D-HH[:MM[:SS]]
		h, m, sec = f[0], f[1], f[2]
	case len(parts) == 3:
		h, m, sec = f[0], f[1], f[2]
	default: // MM[:SS]
		m, sec = f[0], f[1]
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(h)*time.Hour + time.Duration(m)*time.Minute + time.Duration(sec)*time.Second
	if days > 3650 {
		return 0, fmt.Errorf("%s is more than ten years", s)
	}
	return d, nil
}

// path reads a file name: ~/ is the home directory, and a relative path
// is taken from the cluster file's directory.
func (p *parser) path(kw, v token) string {
	s := v.text
	switch {
	case s == "":
		p.errorf(v, "%s: empty file name", kw.text)
		return ""
	case s == "~" || strings.HasPrefix(s, "~/"):
		if p.home == "" {
			p.errorf(v, "%s %q: cannot expand ~: %v", kw.text, s, p.homeErr)
			return ""
		}
		return filepath.Join(p.home, s[1:])
	case strings.HasPrefix(s, "~"):
		p.errorf(v, "%s %q: only ~/ is expanded (your own home): write the full path", kw.text, s)
		return ""
	case filepath.IsAbs(s):
		return filepath.Clean(s)
	}
	abs, err := filepath.Abs(filepath.Join(p.dir, s))
	if err != nil {
		p.errorf(v, "%s %q: %v", kw.text, s, err)
		return ""
	}
	return abs
}

// set sets one limit of a node.
func (n *Node) set(key, val string) error {
	var err error
	switch key {
	case "job-limit":
		n.JobLimit, err = positiveInt(val)
	case "cpus":
		n.CPUs, err = positiveInt(val)
	case "cpu-share":
		n.CPUShare, err = positiveFloat(val)
	case "memory":
		n.Memory, err = ParseSize(val)
	case "speed":
		n.Speed, err = positiveFloat(val)
	}
	return err
}

// fill derives what a node on the head's machine left out.
func (n *Node) fill() {
	if n.CPUs == 0 && n.CPUShare > 0 {
		n.CPUs = int(min(n.CPUShare+0.999, 1<<20))
	}
	if n.Speed == 0 && n.CPUShare > 0 {
		n.Speed = n.CPUShare / float64(max(n.CPUs, 1))
	}
}

func positiveInt(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("want a whole number")
	}
	if v < 1 {
		return 0, fmt.Errorf("must be at least 1")
	}
	return v, nil
}

func positiveFloat(s string) (float64, error) {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("want a number")
	}
	if !(v > 0) || v > 1e9 {
		return 0, fmt.Errorf("must be above 0")
	}
	return v, nil
}

// parseEndpoint reads USER@HOST[:PORT], an IPv6 host in brackets; the
// user is optional unless needUser.
func parseEndpoint(s string, needUser bool) (*Endpoint, error) {
	want := "want [USER@]HOST[:PORT]"
	if needUser {
		want = "want USER@HOST[:PORT]"
	}
	e := &Endpoint{Port: DefaultSSHPort}
	hostport := s
	if user, rest, ok := strings.Cut(s, "@"); ok {
		if !validUser(user) {
			return nil, fmt.Errorf("bad user %q: use letters, digits, '.', '_' and '-' (%s)", user, want)
		}
		e.User, hostport = user, rest
	} else if needUser {
		return nil, fmt.Errorf("no user: %s, such as alice@head.example", want)
	}
	var host, port string
	switch {
	case strings.HasPrefix(hostport, "["):
		end := strings.Index(hostport, "]")
		if end < 0 {
			return nil, fmt.Errorf("no ] after the IPv6 address (%s)", want)
		}
		host = hostport[1:end]
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() || a.Zone() != "" {
			return nil, fmt.Errorf("bad IPv6 address %q in brackets", host)
		}
		rest := hostport[end+1:]
		if rest != "" {
			var ok bool
			if port, ok = strings.CutPrefix(rest, ":"); !ok {
				return nil, fmt.Errorf("unexpected %q after ] (%s)", rest, want)
			}
		}
	case strings.Count(hostport, ":") > 1:
		return nil, fmt.Errorf("an IPv6 address goes in brackets, such as alice@[2001:db8::1]:22")
	default:
		host, port, _ = strings.Cut(hostport, ":")
		if strings.Contains(hostport, ":") && port == "" {
			return nil, fmt.Errorf("empty port (%s)", want)
		}
		if err := checkHostName(host); err != nil {
			return nil, fmt.Errorf("%v (%s)", err, want)
		}
	}
	e.Host = host
	if port != "" {
		v, err := strconv.Atoi(port)
		if err != nil || v < 1 || v > 65535 || port[0] == '+' {
			return nil, fmt.Errorf("bad port %q: want 1 to 65535", port)
		}
		e.Port = v
	}
	return e, nil
}

// validUser reports whether s is a plausible login name.
func validUser(s string) bool {
	if s == "" || s[0] == '-' || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-", r)) {
			return false
		}
	}
	return true
}

// checkHostName checks a host name or IPv4 address.
func checkHostName(s string) error {
	if s == "" {
		return errors.New("no host")
	}
	if len(s) > 253 {
		return fmt.Errorf("host name longer than 253 characters")
	}
	for _, label := range strings.Split(s, ".") {
		ok := label != "" && label[0] != '-' && label[len(label)-1] != '-'
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				ok = false
			}
		}
		if !ok {
			return fmt.Errorf("bad host %q", s)
		}
	}
	return nil
}

// checkListen checks a HOST:PORT address to listen on.
func checkListen(s string) error {
	host, port, ok := splitHostPort(s)
	if !ok {
		return fmt.Errorf("want HOST:PORT, such as 10.1.0.1:7443 or [fd00::1]:7443")
	}
	if host == "" {
		return fmt.Errorf("no host: want the head's address on the cluster's network, such as 10.1.0.1:7443")
	}
	if strings.Contains(host, ":") {
		if a, err := netip.ParseAddr(host); err != nil || !a.Is6() {
			return fmt.Errorf("bad IPv6 address %q", host)
		}
	} else if err := checkHostName(host); err != nil {
		return err
	}
	if v, err := strconv.Atoi(port); err != nil || v < 1 || v > 65535 || port[0] == '+' {
		return fmt.Errorf("bad port %q: want 1 to 65535", port)
	}
	return nil
}

// splitHostPort splits HOST:PORT or [IPV6]:PORT, as net.SplitHostPort
// does, without the network package.
func splitHostPort(s string) (host, port string, ok bool) {
	if rest, found := strings.CutPrefix(s, "["); found {
		host, port, ok = strings.Cut(rest, "]:")
		return host, port, ok && !strings.ContainsAny(host, "[]") && !strings.Contains(port, ":")
	}
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.Contains(s[:i], ":") || strings.ContainsAny(s, "[]") {
		return "", "", false
	}
	return s[:i], s[i+1:], true
}
