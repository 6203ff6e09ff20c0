package plan_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"orrery/plan"
	"orrery/sweep"
)

// fuzzSeeds are small hand-written plans that reach constructs the shared
// corpus does not: constraints, zips, random and points domains, the
// classic commands, redirects, line splices and comments.
var fuzzSeeds = []string{
	"parameter x integer range from 1 to 10 step 3\nparameter y float range from 0 to 1 points 5\n" +
		"constraint x * 2 > y && !(x == 4) || y <= 0.5\ntask main\n\texec echo ${x} $y\nendtask\n",
	"parameter a text select anyof \"p\" \"q\" \"r\"\nparameter b integer select anyof 1 2 3\nzip a b\n" +
		"task main\n\tlexec /bin/echo echo ${a}\n\tlpexec echo echo \"$b\"\nendtask\n",
	"parameter r float random from 1 to 2 points 3;\nparameter s integer random from -5 to 5 points 4;\n" +
		"parameter m text select oneof \"fast\" \"slow\" default \"slow\";\n" +
		"task rootstart\n\troot:execute mkdir -p out ${HOME}\nendtask\n" +
		"task main\n\tnode:execute ./run $r $s $m # comment\n\tsubstitute in.tmpl in.txt\n\tcopy node:out root:out/$jobname\nendtask\n" +
		"task rootfinish\n\texecute echo done\nendtask\n",
	"parameter v label \"a value\" text fromfile values.txt\nparameter f files select anyof \"*.dat\" \"a.txt\"\n" +
		"task nodestart\n\tcopy root:tool node:tool\nendtask\ntask main\n\tonerror ignore\n" +
		"\tredirect stdout append to \"log.${jobindex}\"\n\tredirect stderr off\n\tshexec \"cat \\\"$f\\\" > out\"\n\tonerror fail\nendtask\n",
	"variable x index 0 list \"0\" \"1\" \"2\"\nvariable y index 1 list a b\njobs\n\t0001 0 1\n\t0002 2 0\nendjobs\n" +
		"task main\n\texec echo $x $y \\$z\nendtask\n",
	"/* block\n comment */ parameter x integer \\\n range from -3 to 3 // trailing\n" +
		"parameter y text default \"tab\\there\\x41\\101\"\ntask main\n\tshexec echo \\\n ${x} ${y}\nendtask\n",
	"parameter x float range from 0.1 to 0.3 step 0.1\nparameter n integer range from 1 to 9 points 3\n" +
		"constraint x + n % 2 != 1 && \"a\" < \"b\"\ntask main\n\tcopy node:\"out file\" \".\"\nendtask\n",
	"parameter big integer range from 1 to 1000000\nparameter big2 integer range from 1 to 1000000\n" +
		"task main\n\texec run ${big} ${big2}\nendtask\n",
	"parameter é text \"x\nparameter x text select anyof\ntask mai\n\tcopi a b\nendtask\nendtask\nendjobs\n",
	"parameter x integer range from 1 to 3\nconstraint ((x > 1)\ntask main\nexec \"unterminated\nendtask\n",
}

// fuzzRoot makes a root directory with a few files that `files` globs
// and `fromfile` names in fuzzed plans can find.
func fuzzRoot(f *testing.F) string {
	root := f.TempDir()
	for name, text := range map[string]string{
		"a.txt":      "a\n",
		"b.dat":      "b\n",
		"A300.dat":   "",
		"737-8.dat":  "",
		"values.txt": "# values\n1\n\n2\n3.5\nx\n",
		"nums.txt":   "1\n2\n3\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	return root
}

// addSeedFiles adds every file under the shared corpus, the project's
// testdata plans and run files, and the examples' plans.
func addSeedFiles(f *testing.F) int {
	n := 0
	add := func(path string) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatalf("seed %s: %v", path, err)
		}
		f.Add(data)
		n++
	}
	shared, err := os.ReadDir("../testdata/nimrodg")
	if err != nil {
		f.Fatalf("shared corpus: %v", err)
	}
	for _, e := range shared {
		if e.Type().IsRegular() {
			add(filepath.Join("../testdata/nimrodg", e.Name()))
		}
	}
	for _, pattern := range []string{"../testdata/*.pln", "../testdata/*.run", "../testdata/*/*.pln", "../testdata/*/*.run"} {
		matches, _ := filepath.Glob(pattern)
		for _, m := range matches {
			add(m)
		}
	}
	if _, err := os.Stat("../examples"); err == nil {
		err := filepath.WalkDir("../examples", func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && (strings.HasSuffix(path, ".pln") || strings.HasSuffix(path, ".run")) {
				add(path)
			}
			return nil
		})
		if err != nil {
			f.Fatalf("examples: %v", err)
		}
	}
	return n
}

// FuzzParse checks that Parse never panics, that every error it reports
// points into the file, and that a plan it accepts can be resolved,
// iterated and printed without panics, its canonical tasks reading back
// as the same tasks.
func FuzzParse(f *testing.F) {
	if n := addSeedFiles(f); n < 20 {
		f.Fatalf("only %d seed files found; the shared corpus alone has 20 plans", n)
	}
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	root := fuzzRoot(f)
	f.Fuzz(func(t *testing.T, src []byte) {
		defer watchdog(src)()
		p, err := plan.Parse("fuzz.pln", src, plan.Options{})
		checkParseResult(t, src, p, err)
		for _, d := range []plan.Dialect{plan.Classic, plan.Modern} {
			p2, err2 := plan.Parse("fuzz.pln", src, plan.Options{Dialect: &d})
			checkParseResult(t, src, p2, err2)
		}
		if err != nil {
			return
		}
		checkCanonicalTasks(t, p)
		checkSweep(t, p, root)
	})
}

// fuzzDeadline is how long one input may take: longer is a hang.
const fuzzDeadline = 10 * time.Second

// watchdog crashes the process, with every goroutine's stack, when the
// input takes longer than fuzzDeadline; the fuzzer then keeps the input as
// a failure. It returns the function that disarms it.
func watchdog(src []byte) func() {
	timer := time.AfterFunc(fuzzDeadline, func() {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		panic(fmt.Sprintf("input took more than %v (%d bytes): %q\n%s", fuzzDeadline, len(src), src, buf))
	})
	return func() { timer.Stop() }
}

// checkParseResult checks the errors of a failed parse, or the warnings
// of a successful one.
func checkParseResult(t *testing.T, src []byte, p *plan.Plan, err error) {
	t.Helper()
	lines := bytes.Split(src, []byte("\n"))
	if err != nil {
		if p != nil {
			t.Fatalf("Parse returned both a plan and an error: %v", err)
		}
		var list plan.ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("Parse error is %T, not a plan.ErrorList: %v", err, err)
		}
		if len(list) == 0 || len(list) > plan.MaxErrors+1 {
			t.Fatalf("Parse returned %d errors; want 1 to %d", len(list), plan.MaxErrors+1)
		}
		for _, e := range list {
			if e.Msg == "" {
				t.Errorf("error at %s has no message", e.Pos)
			}
			checkPos(t, lines, e.Pos, e.Error())
		}
		return
	}
	if p == nil {
		t.Fatal("Parse returned neither a plan nor an error")
	}
	for _, w := range p.Warnings {
		checkPos(t, lines, w.Pos, "warning "+w.String())
	}
}

// checkPos checks that pos is a character of the file, the end of a line,
// or the end of the file: columns count characters, from 1.
func checkPos(t *testing.T, lines [][]byte, pos plan.Pos, what string) {
	t.Helper()
	if pos.Line < 1 || pos.Line > len(lines) {
		t.Errorf("%s: line %d is outside the file (%d lines)", what, pos.Line, len(lines))
		return
	}
	if n := utf8.RuneCount(lines[pos.Line-1]); pos.Col < 1 || pos.Col > n+1 {
		t.Errorf("%s: column %d is outside line %d (%d characters)", what, pos.Col, pos.Line, n)
	}
}

// checkCanonicalTasks prints the tasks in canonical form and reads them
// back, after a declaration of each name they may use, in the same
// dialect: the result must be valid and print the same.
func checkCanonicalTasks(t *testing.T, p *plan.Plan) {
	t.Helper()
	var tasks bytes.Buffer
	if err := p.WriteTasks(&tasks); err != nil {
		t.Fatalf("WriteTasks: %v", err)
	}
	var src strings.Builder
	for _, n := range p.Names() {
		src.WriteString("parameter " + n + "\n")
	}
	src.Write(tasks.Bytes())
	d := p.Dialect
	q, err := plan.Parse("canonical.pln", []byte(src.String()), plan.Options{Dialect: &d})
	if err != nil {
		t.Fatalf("canonical tasks do not read back:\n%v\n--- canonical text:\n%s", err, src.String())
	}
	var again bytes.Buffer
	if err := q.WriteTasks(&again); err != nil {
		t.Fatalf("WriteTasks: %v", err)
	}
	if again.String() != tasks.String() {
		t.Fatalf("canonical tasks changed on reading back:\n--- first:\n%s--- second:\n%s", tasks.String(), again.String())
	}
}

// safeForSweep reports whether resolving the plan stays inside the test's
// root directory: absolute or climbing file names could read devices or
// walk the whole file system.
func safeForSweep(p *plan.Plan) bool {
	outside := func(name string) bool {
		return filepath.IsAbs(name) || strings.Contains(name, "..") || strings.HasPrefix(name, "~")
	}
	for _, q := range p.Params {
		switch q.Domain.Kind {
		case plan.FromFile:
			if outside(q.Domain.File.Text) {
				return false
			}
		case plan.AnyOf:
			if q.Type == plan.Files {
				for _, v := range q.Domain.Values {
					if outside(v.Text) {
						return false
					}
				}
			}
		}
	}
	return true
}

// checkSweep resolves the plan and walks the start of its jobs.
func checkSweep(t *testing.T, p *plan.Plan, root string) {
	t.Helper()
	if !safeForSweep(p) {
		return
	}
	s, err := sweep.New(p, sweep.Options{Root: root, Seed: 42})
	if err != nil {
		var list plan.ErrorList
		if !errors.As(err, &list) || len(list) == 0 {
			t.Fatalf("sweep.New error is %T, not a non-empty plan.ErrorList: %v", err, err)
		}
		checkParseResult(t, []byte(p.Source), nil, err)
		return
	}
	if len(s.Names) != len(s.Domains) {
		t.Fatalf("sweep has %d names but %d domains", len(s.Names), len(s.Domains))
	}
	size := s.Size()
	if size < 0 {
		t.Fatalf("Size() = %d", size)
	}
	// With a constraint, finding even one job may visit every combination.
	constrained := len(p.Constraints) > 0
	if constrained && size > 100_000 {
		return
	}
	n, exact := s.Count()
	if n < 0 || n > size || !exact && !constrained {
		t.Fatalf("Count() = %d, %v; size %d", n, exact, size)
	}
	it := s.Iter()
	var walked int64
	for walked < 1000 && it.Next() {
		walked++
		if it.Index() != walked {
			t.Fatalf("job %d has index %d", walked, it.Index())
		}
		j := it.Job()
		if len(j.Values) != len(s.Names) {
			t.Fatalf("job %d has %d values for %d names", walked, len(j.Values), len(s.Names))
		}
		for i := range s.Names {
			if v := it.ValueIndex(i); v < 0 || v >= s.Domains[i].Len() {
				t.Fatalf("job %d: value index %d of %s is outside its %d values", walked, v, s.Names[i], s.Domains[i].Len())
			}
		}
		for _, task := range p.Tasks {
			for _, c := range task.Commands {
				for _, a := range c.Args {
					a.Expand(s.Lookup(j))
				}
			}
		}
	}
	if walked < 1000 && exact && walked != n {
		t.Fatalf("iterated %d jobs, Count() = %d", walked, n)
	}
	var out bytes.Buffer
	written, err := s.WriteJSONL(&out, 1000)
	if err != nil {
		t.Fatalf("WriteJSONL: %v", err)
	}
	if written != walked {
		t.Fatalf("WriteJSONL wrote %d jobs, iteration found %d", written, walked)
	}
	for i, line := range bytes.SplitAfter(out.Bytes(), []byte("\n")) {
		if len(line) > 0 && !json.Valid(line) {
			t.Fatalf("WriteJSONL line %d is not JSON: %q", i+1, line)
		}
	}
}

// FuzzQuote checks that any text, written with plan.Quote, reads back as
// itself: as a parameter value, an exec argument, shell text and a copy
// path, with `$` never read as a substitution.
func FuzzQuote(f *testing.F) {
	for _, s := range []string{"", "plain", "a b", `"q"`, `back\slash`, "$x ${y} \\$z", "tab\tnl\ncr\r", "\x00\x01\x7f",
		"\xff\xfe invalid", "é ü 日本", "\u2028", "# not a comment", "/* nor this */", "line\\\nsplice", "\uFFFD"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q := plan.Quote(s)
		src := "parameter x text " + q + "\ntask main\n\texec echo " + q + "\n\tshexec " + q + "\n"
		if s != "" {
			src += "\tcopy node:" + q + " root:out\n"
		}
		src += "endtask\n"
		p, err := plan.Parse("quote.pln", []byte(src), plan.Options{})
		if err != nil {
			t.Fatalf("Quote(%q) = %s does not parse:\n%v", s, q, err)
		}
		if got := p.Params[0].Domain.Values[0].Text; got != s {
			t.Errorf("value %s reads back as %q, want %q", q, got, s)
		}
		none := func(string) (string, bool) { return "", false }
		cmds := p.Task(plan.TaskMain).Commands
		check := func(what string, tm plan.Template) {
			t.Helper()
			if refs := tm.Refs(); len(refs) > 0 {
				t.Errorf("%s %s has references %v", what, q, refs)
			}
			if got := tm.Expand(none); got != s {
				t.Errorf("%s %s reads back as %q, want %q", what, q, got, s)
			}
		}
		check("exec argument", cmds[0].Args[1])
		check("shell text", cmds[1].Args[0])
		if s != "" {
			check("copy path", cmds[2].Src.Path)
		}
	})
}
