package plan_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"orrery/plan"
)

const mainTask = "task main\nendtask\n"

// parseOK parses src, which must be valid.
func parseOK(t *testing.T, src string) *plan.Plan {
	t.Helper()
	return parseOKWith(t, src, plan.Options{})
}

func parseOKWith(t *testing.T, src string, opts plan.Options) *plan.Plan {
	t.Helper()
	p, err := plan.Parse("test.pln", []byte(src), opts)
	if err != nil {
		t.Fatalf("Parse(%q) failed:\n%v", src, err)
	}
	if p == nil {
		t.Fatalf("Parse(%q) returned neither a plan nor an error", src)
	}
	return p
}

// parseErrs parses src, which must be invalid, and returns its errors.
func parseErrs(t *testing.T, src string, opts plan.Options) plan.ErrorList {
	t.Helper()
	p, err := plan.Parse("test.pln", []byte(src), opts)
	if err == nil {
		t.Fatalf("Parse(%q) succeeded, want errors", src)
	}
	if p != nil {
		t.Errorf("Parse(%q) returned a plan along with errors", src)
	}
	var list plan.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Parse(%q) error is %T, want plan.ErrorList: %v", src, err, err)
	}
	if len(list) == 0 {
		t.Fatalf("Parse(%q) returned an empty ErrorList", src)
	}
	for _, e := range list {
		if e.File != "test.pln" {
			t.Errorf("error %v: File = %q, want test.pln", e, e.File)
		}
		if want := fmt.Sprintf("test.pln:%d:%d: %s", e.Pos.Line, e.Pos.Col, e.Msg); e.Error() != want {
			t.Errorf("Error() = %q, want %q", e.Error(), want)
		}
	}
	return list
}

// wantErrors checks that src yields exactly the errors want, in order.
// Each want is "LINE:COL: text", and the message must contain text.
func wantErrors(t *testing.T, src string, opts plan.Options, want ...string) {
	t.Helper()
	list := parseErrs(t, src, opts)
	ok := len(list) == len(want)
	for i := 0; ok && i < len(want); i++ {
		at, text, _ := strings.Cut(want[i], ": ")
		e := list[i]
		ok = e.Pos.String() == at && strings.Contains(e.Msg, text)
	}
	if !ok {
		var got strings.Builder
		for _, e := range list {
			fmt.Fprintf(&got, "\t%s: %s\n", e.Pos, e.Msg)
		}
		t.Errorf("Parse(%q):\ngot errors\n%swant\n\t%s", src, got.String(), strings.Join(want, "\n\t"))
	}
}

func forceClassic() *plan.Dialect { d := plan.Classic; return &d }
func forceModern() *plan.Dialect  { d := plan.Modern; return &d }

// describeParam summarises a parameter for comparison.
func describeParam(q *plan.Param) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", q.Name, q.Type, q.Domain.Kind)
	if q.Label != "" {
		fmt.Fprintf(&b, " label=%q", q.Label)
	}
	d := q.Domain
	if d.Kind == plan.Range || d.Kind == plan.Random {
		fmt.Fprintf(&b, " from=%s to=%s", d.From.Text, d.To.Text)
		if d.Step != nil {
			fmt.Fprintf(&b, " step=%s", d.Step.Text)
		}
		if d.Points != nil {
			fmt.Fprintf(&b, " points=%s", d.Points.Text)
		}
	}
	values := func(key string, vs []plan.Value) {
		if len(vs) == 0 {
			return
		}
		fmt.Fprintf(&b, " %s=[", key)
		for i, v := range vs {
			if i > 0 {
				b.WriteByte(' ')
			}
			if v.Quoted {
				fmt.Fprintf(&b, "%q", v.Text)
			} else {
				b.WriteString(v.Text)
			}
		}
		b.WriteByte(']')
	}
	values("values", d.Values)
	values("defaults", d.Defaults)
	if d.Kind == plan.FromFile {
		values("file", []plan.Value{d.File})
	}
	return b.String()
}

func TestParamTypesAndDomains(t *testing.T) {
	tests := []struct {
		decl string
		want string
	}{
		// No type, no domain; a label alone.
		{"parameter x", "x none none"},
		{`parameter x label "The X"`, `x none none label="The X"`},
		// A type without a domain.
		{"parameter x integer", "x integer none"},
		{"parameter x float", "x float none"},
		{"parameter x text", "x text none"},
		{"parameter x files", "x files none"},
		// VALUE and default VALUE.
		{"parameter x integer 7", "x integer single values=[7]"},
		{"parameter x integer -7", "x integer single values=[-7]"},
		{"parameter x float 2.5e-3", "x float single values=[2.5e-3]"},
		{`parameter x text "hello world"`, `x text single values=["hello world"]`},
		{"parameter x text hello", "x text single values=[hello]"},
		{`parameter x text default "hi"`, `x text single values=["hi"]`},
		{"parameter x integer default 3", "x integer single values=[3]"},
		{`parameter x label "L" float 2.5`, `x float single label="L" values=[2.5]`},
		// range.
		{"parameter x integer range from 1 to 5", "x integer range from=1 to=5"},
		{"parameter x integer range from -45 to 45 step 5", "x integer range from=-45 to=45 step=5"},
		{"parameter x integer range from 10 to 1 step -3", "x integer range from=10 to=1 step=-3"},
		{"parameter x float range from 0 to 1 step 0.25", "x float range from=0 to=1 step=0.25"},
		{"parameter x float range from 0 to 1 points 5", "x float range from=0 to=1 points=5"},
		{"parameter x integer range from 0 to 100 points 11", "x integer range from=0 to=100 points=11"},
		{"parameter x float range from 1 to 1 points 1", "x float range from=1 to=1 points=1"},
		{`parameter AoA label "Angle of attack" float range from -45 to 45 step 2.5`,
			`AoA float range label="Angle of attack" from=-45 to=45 step=2.5`},
		// random.
		{"parameter x float random from 0 to 1", "x float random from=0 to=1"},
		{"parameter x integer random from 1 to 10 points 3", "x integer random from=1 to=10 points=3"},
		// select anyof / oneof.
		{`parameter x text select anyof a "b c" 3`, `x text anyof values=[a "b c" 3]`},
		{`parameter x text select anyof a b default a`, `x text anyof values=[a b] defaults=[a]`},
		{`parameter x integer select anyof 1 2 3 default 1 2`, `x integer anyof values=[1 2 3] defaults=[1 2]`},
		{`parameter x text select oneof x y`, `x text oneof values=[x y]`},
		{`parameter x text select oneof x y default y`, `x text oneof values=[x y] defaults=[y]`},
		{`parameter x float select oneof 1.5 2.5 default 2.5`, `x float oneof values=[1.5 2.5] defaults=[2.5]`},
		// files.
		{`parameter x files select anyof "A3??.dat" "737-*.dat"`, `x files anyof values=["A3??.dat" "737-*.dat"]`},
		// fromfile, as a type and as a domain.
		{`parameter x fromfile "vals.txt"`, `x text fromfile file=["vals.txt"]`},
		{`parameter x text fromfile vals.txt`, `x text fromfile file=[vals.txt]`},
		{`parameter x label "X" fromfile "v w.txt"`, `x text fromfile label="X" file=["v w.txt"]`},
		// Escapes in values and labels.
		{`parameter x label "a\tb" text "\x41\102\"\\"`, `x text single label="a\tb" values=["AB\"\\"]`},
		{`parameter x text "price: \$5"`, `x text single values=["price: $5"]`},
		{`parameter x text "$x"`, `x text single values=["$x"]`},
	}
	for _, test := range tests {
		p := parseOK(t, test.decl+"\n"+mainTask)
		if len(p.Params) != 1 {
			t.Errorf("%s: %d parameters, want 1", test.decl, len(p.Params))
			continue
		}
		if got := describeParam(p.Params[0]); got != test.want {
			t.Errorf("%s:\n got %s\nwant %s", test.decl, got, test.want)
		}
	}
}

func TestParamPositionsAndNumbers(t *testing.T) {
	p := parseOK(t, "parameter  size label \"S\" float range from +3 to 1e3 step 0.5e1\n"+
		"parameter w integer random from -25 to 99999999999 points 4\n"+
		"\tparameter v text select anyof \"ü\" x\n"+mainTask)
	size, w, v := p.Params[0], p.Params[1], p.Params[2]
	if size.Pos != (plan.Pos{Line: 1, Col: 12}) || size.TypePos != (plan.Pos{Line: 1, Col: 27}) ||
		size.Domain.Pos != (plan.Pos{Line: 1, Col: 33}) {
		t.Errorf("size: Pos %s, TypePos %s, Domain.Pos %s; want 1:12, 1:27, 1:33", size.Pos, size.TypePos, size.Domain.Pos)
	}
	d := size.Domain
	if d.From.F != 3 || !d.From.IsInt || d.From.I != 3 || d.From.Pos != (plan.Pos{Line: 1, Col: 44}) {
		t.Errorf("size from = %+v, want 3 (an integer literal) at 1:44", d.From)
	}
	if d.To.F != 1000 || d.To.IsInt {
		t.Errorf("size to = %+v, want 1000, not an integer literal", d.To)
	}
	if d.Step == nil || d.Step.F != 5 || d.Step.IsInt {
		t.Errorf("size step = %+v, want 5, not an integer literal", d.Step)
	}
	wd := w.Domain
	if wd.From.I != -25 || !wd.From.IsInt || wd.To.I != 99999999999 || !wd.To.IsInt {
		t.Errorf("w from/to = %+v / %+v, want -25 and 99999999999", wd.From, wd.To)
	}
	if wd.Points == nil || wd.Points.I != 4 || wd.Points.Pos != (plan.Pos{Line: 2, Col: 59}) {
		t.Errorf("w points = %+v, want 4 at 2:59", wd.Points)
	}
	// A quoted value's position is that of its first character inside the
	// quotes; columns count characters, not bytes.
	if got := v.Domain.Values; len(got) != 2 || got[0].Pos != (plan.Pos{Line: 3, Col: 33}) || got[1].Pos != (plan.Pos{Line: 3, Col: 36}) {
		t.Errorf("v values = %+v, want ü at 3:33 and x at 3:36", got)
	}
}

func TestParamWithoutValuesWarns(t *testing.T) {
	p := parseOK(t, "parameter x\nparameter y integer\n"+mainTask)
	want := []string{
		"test.pln:1:11: parameter x has no values, so the plan has no jobs",
		"test.pln:2:11: parameter y has no values, so the plan has no jobs",
	}
	if len(p.Warnings) != len(want) {
		t.Fatalf("warnings = %v, want %v", p.Warnings, want)
	}
	for i, w := range p.Warnings {
		if w.String() != want[i] {
			t.Errorf("warning %d = %q, want %q", i, w.String(), want[i])
		}
	}
}

func TestParamErrors(t *testing.T) {
	tests := []struct {
		decl string
		want []string
	}{
		{"parameter", []string{"1:1: parameter needs a name"}},
		{"parameter 1x integer 1", []string{`1:11: parameter: expected a name, found "1x"`}},
		{"parameter größe integer 1", []string{`1:11: parameter: expected a name, found "größe"`}},
		{`parameter "x" integer 1`, []string{`1:12: parameter: expected a name, found "x"`}},
		{"parameter x label", []string{"1:13: parameter x: label needs a text"}},
		// Unknown types, with a suggestion.
		{"parameter x intger 1", []string{`1:13: parameter x: unknown type "intger" (did you mean integer?)`}},
		{"parameter x flaot 1", []string{`1:13: parameter x: unknown type "flaot" (did you mean float?)`}},
		{"parameter x string 1", []string{`1:13: parameter x: unknown type "string"`}},
		{"parameter x 5", []string{`1:13: parameter x: expected a type (integer, float, text or files), found "5"`}},
		{`parameter x "hello"`, []string{`1:14: parameter x: expected a type`}},
		{"parameter x range from 1 to 2", []string{"1:13: parameter x: missing type before range"}},
		{"parameter x select anyof 1 2", []string{"1:13: parameter x: missing type before select"}},
		// Type/domain mismatches.
		{"parameter x text range from 1 to 2", []string{"1:18: parameter x: range needs an integer or float parameter, not text"}},
		{"parameter x text random from 1 to 2", []string{"1:18: parameter x: random needs an integer or float parameter, not text"}},
		{"parameter x files range from 1 to 2", []string{"1:19: parameter x: range needs an integer or float parameter, not files"}},
		{`parameter x files "*.dat"`, []string{`1:20: parameter x: files takes select anyof "GLOB"`}},
		{`parameter x files select oneof "*.dat"`, []string{`1:19: parameter x: files takes select anyof "GLOB"`}},
		{`parameter x files fromfile "f"`, []string{`1:19: parameter x: files takes select anyof "GLOB"`}},
		{`parameter x integer "abc"`, []string{`1:22: parameter x: "abc" is not an integer`}},
		{"parameter x integer 1.5", []string{`1:21: parameter x: "1.5" is not an integer`}},
		{"parameter x float abc", []string{`1:19: parameter x: "abc" is not a number`}},
		{"parameter x integer select anyof 1 two 3", []string{`1:36: parameter x: "two" is not an integer`}},
		{"parameter x integer select anyof 1 2 default 2.5", []string{`1:46: parameter x: "2.5" is not an integer`}},
		{"parameter x float select oneof 1 x default y", []string{
			`1:34: parameter x: "x" is not a number`, `1:44: parameter x: "y" is not a number`}},
		// Malformed domains.
		{"parameter x integer 1 2", []string{`1:23: parameter x: unexpected "2" after the value (use select anyof for several values)`}},
		{"parameter x integer default", []string{"1:21: parameter x: default needs a value"}},
		{"parameter x integer range 1 to 2", []string{"1:21: parameter x: expected range from A to B"}},
		{"parameter x integer range from 1", []string{"1:21: parameter x: expected range from A to B"}},
		{"parameter x integer range from 1 until 2", []string{"1:21: parameter x: expected range from A to B"}},
		{"parameter x integer range from a to 2", []string{`1:32: parameter x: expected a number, found "a"`}},
		{"parameter x integer range from 1 to 2 by 1", []string{`1:39: parameter x: unexpected "by" in range`}},
		{"parameter x integer random from 1 to 2 step 1", []string{`1:40: parameter x: unexpected "step" in random`}},
		{"parameter x integer range from 1 to 2 step", []string{"1:39: parameter x: step needs a number"}},
		{"parameter x float range from 1 to 2 step 1 points 2", []string{"1:44: parameter x: give either step or points, once"}},
		{"parameter x float range from 1 to 2 step x", []string{`1:42: parameter x: expected a number, found "x"`}},
		{"parameter x text select", []string{"1:18: parameter x: expected select anyof or select oneof"}},
		{"parameter x text select allof a", []string{"1:25: parameter x: expected select anyof or select oneof"}},
		{"parameter x text select anyof", []string{"1:25: parameter x: select anyof needs at least one value"}},
		{"parameter x text select anyof default a", []string{"1:25: parameter x: select anyof needs at least one value"}},
		{"parameter x text select anyof a default", []string{"1:33: parameter x: default needs a value"}},
		{"parameter x text select oneof a b default a b", []string{"1:45: parameter x: select oneof takes one default"}},
		{"parameter x text fromfile", []string{"1:18: parameter x: fromfile needs a file name"}},
		{"parameter x fromfile a b", []string{`1:24: unexpected "b" after fromfile a`}},
		// Range and random values.
		{"parameter x integer range from 1 to 2.5", []string{"1:37: parameter x: integer range needs whole numbers, found 2.5"}},
		{"parameter x integer range from 1 to 9 step 0.5", []string{"1:44: parameter x: integer range needs whole numbers, found 0.5"}},
		{"parameter x integer random from 0.5 to 2", []string{"1:33: parameter x: integer random needs whole numbers, found 0.5"}},
		{"parameter x integer range from 1 to 10 step 0", []string{"1:45: parameter x: step 0 never reaches 10"}},
		{"parameter x float range from 1 to 10 step -1", []string{"1:43: parameter x: range from 1 to 10 with step -1 never reaches the end"}},
		{"parameter x float range from 10 to 1 step 2", []string{"1:43: parameter x: range from 10 to 1 with step 2 never reaches the end"}},
		{"parameter x integer range from 10 to 1", []string{"1:38: parameter x: range from 10 to 1 with step 1 never reaches the end"}},
		{"parameter x float range from 0 to 1e999", []string{"1:35: parameter x: 1e999 is out of range"}},
		{"parameter x integer range from 1 to 3 points 5", []string{"1:46: parameter x: 5 points from 1 to 3 round to repeated integers"}},
		{"parameter x float range from 1 to 3 points 0", []string{"1:44: parameter x: points must be a whole number of at least 1, found 0"}},
		{"parameter x float random from 1 to 3 points 1.5", []string{"1:45: parameter x: points must be a whole number of at least 1, found 1.5"}},
		{"parameter x float random from 3 to 1", []string{"1:36: parameter x: random from 3 to 1: the upper bound is below the lower"}},
	}
	for _, test := range tests {
		wantErrors(t, test.decl+"\n"+mainTask, plan.Options{}, test.want...)
	}
}

func TestDuplicateParameter(t *testing.T) {
	wantErrors(t, "parameter x integer 1\nparameter y text a\n  parameter x float 2\n"+mainTask, plan.Options{},
		"3:13: duplicate parameter x (first declared at 1:11)")
	// Names are case-sensitive.
	parseOK(t, "parameter x integer 1\nparameter X integer 2\n"+mainTask)
}

func TestDialectDetection(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		dialect plan.Dialect
		reason  string // the start of DialectReason
	}{
		{"plain plan", "parameter x integer 1\ntask main\n exec echo $x\nendtask\n", plan.Modern, ""},
		{"modern commands", "task nodestart\n shexec ls\nendtask\ntask main\n exec a\n lexec /bin/a a\n lpexec a a\n" +
			" redirect stdout to f\n onerror ignore\n copy a b\nendtask\n", plan.Modern, ""},
		{"semicolon in shell text is not classic", "task main\n shexec a; b\nendtask\n", plan.Modern, ""},
		{"semicolon in a string is not classic", "parameter x text \"a;b\"\n" + mainTask, plan.Modern, ""},
		{"semicolon after a parameter", "parameter x integer 1;\n" + mainTask, plan.Classic, "';' at 1:22"},
		{"semicolon after a command", "task main\n copy node:a root:b ;\nendtask\n", plan.Classic, "';' at 2:21"},
		{"semicolon after endtask", "task main\nendtask;\n", plan.Classic, "';' at 2:8"},
		{"execute", "task main\n execute ls\nendtask\n", plan.Classic, "execute at 2:2"},
		{"node:execute", "task main\n node:execute ls\nendtask\n", plan.Classic, "node:execute at 2:2"},
		{"root:execute", "task rootfinish\n root:execute ls\nendtask\n" + mainTask, plan.Classic, "task rootfinish at 1:6"},
		{"root:execute alone", "task main\nendtask\ntask rootstart\n\troot:execute ls\nendtask\n", plan.Classic, "task rootstart at 3:6"},
		{"substitute", "task main\n substitute a b\nendtask\n", plan.Classic, "substitute at 2:2"},
		{"node:substitute", "task main\n node:substitute a b\nendtask\n", plan.Classic, "node:substitute at 2:2"},
		{"rootstart", "task rootstart\n exec ls\nendtask\n" + mainTask, plan.Classic, "task rootstart at 1:6"},
		{"rootfinish", mainTask + "task rootfinish\nendtask\n", plan.Classic, "task rootfinish at 3:6"},
		{"select oneof", "parameter x text select oneof a b\n" + mainTask, plan.Classic, "select oneof at 1:25"},
		{"fromfile type", "parameter x fromfile f.txt\n" + mainTask, plan.Classic, "fromfile at 1:13"},
		{"fromfile domain", "parameter x text fromfile f.txt\n" + mainTask, plan.Classic, "fromfile at 1:18"},
		{"first construct wins", "parameter x text select oneof a\ntask main\n execute ls;\nendtask\n", plan.Classic, "select oneof at 1:25"},
		{"select anyof is not classic", "parameter x text select anyof a b\n" + mainTask, plan.Modern, ""},
		{"the word execute as an argument", "task main\n exec execute\nendtask\n", plan.Modern, ""},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			p := parseOK(t, test.src)
			if p.Dialect != test.dialect {
				t.Errorf("dialect = %s, want %s (reason %q)", p.Dialect, test.dialect, p.DialectReason)
			}
			if test.reason == "" && p.DialectReason != "" || !strings.HasPrefix(p.DialectReason, test.reason) {
				t.Errorf("DialectReason = %q, want %q", p.DialectReason, test.reason)
			}
		})
	}
}

// root:execute is allowed only in tasks that are classic themselves, so
// its own effect shows in a file that misuses it: the file is classic,
// and ${HOME} in shell text is left for the shell.
func TestDialectFromRootExecute(t *testing.T) {
	wantErrors(t, "task main\n shexec echo ${HOME}\n root:execute ls\nendtask\n", plan.Options{},
		"3:2: root:execute in task main")
	wantErrors(t, "task main\n shexec echo ${HOME}\n root:execute ls\nendtask\n", plan.Options{Dialect: forceModern()},
		"2:14: unknown name ${HOME}", "3:2: root:execute in task main")
}

func TestDialectNames(t *testing.T) {
	for _, d := range []plan.Dialect{plan.Classic, plan.Modern} {
		got, err := plan.ParseDialect(d.String())
		if err != nil || got != d {
			t.Errorf("ParseDialect(%q) = %v, %v; want %v", d.String(), got, err, d)
		}
	}
	if plan.Classic.String() != "classic" || plan.Modern.String() != "modern" {
		t.Errorf("dialect names: %q, %q", plan.Classic, plan.Modern)
	}
	if _, err := plan.ParseDialect("Classic"); err == nil || !strings.Contains(err.Error(), `unknown dialect "Classic"`) {
		t.Errorf("ParseDialect(Classic) error = %v, want unknown dialect", err)
	}
}

// A classic file and a modern file, each read in both dialects.
const (
	classicPlan = "parameter x integer range from 1 to 3;\n" +
		"task main\n" +
		"\tcopy in.$x node:in.dat\n" +
		"\tnode:execute ./run ${HOME} $x > out\n" +
		"\tcopy node:out out.$x\n" +
		"endtask\n"
	modernPlan = "parameter x integer range from 1 to 3\n" +
		"task main\n" +
		"\tcopy root:in.$x in.dat\n" +
		"\tshexec ./run $x > out\n" +
		"\tcopy out root:out.$x\n" +
		"endtask\n"
)

func TestBareCopySide(t *testing.T) {
	tests := []struct {
		name     string
		src      string
		opts     plan.Options
		dialect  plan.Dialect
		bare     plan.Side // the side of every bare path
		warnings []string
	}{
		{"classic reads bare paths as root", classicPlan, plan.Options{}, plan.Classic, plan.Root, []string{
			`test.pln:3:7: bare copy path "in.${x}" read as the root side (classic dialect); prefix it with root: or node: to be explicit`,
			`test.pln:5:16: bare copy path "out.${x}" read as the root side (classic dialect)`,
		}},
		{"modern reads bare paths as node", modernPlan, plan.Options{}, plan.Modern, plan.Node, []string{
			`test.pln:3:18: bare copy path "in.dat" read as the node side (modern dialect); prefix it with root: or node: to be explicit`,
			`test.pln:5:7: bare copy path "out" read as the node side (modern dialect)`,
		}},
		{"classic file read as modern", strings.ReplaceAll(classicPlan, "${HOME}", "HOME"), plan.Options{Dialect: forceModern()},
			plan.Modern, plan.Node, []string{
				`test.pln:3:7: bare copy path "in.${x}" read as the node side (modern dialect)`,
				`test.pln:5:16: bare copy path "out.${x}" read as the node side (modern dialect)`,
			}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			p := parseOKWith(t, test.src, test.opts)
			if p.Dialect != test.dialect {
				t.Errorf("dialect = %s, want %s", p.Dialect, test.dialect)
			}
			bare := 0
			for _, c := range p.Task("main").Commands {
				if c.Op != plan.OpCopy {
					continue
				}
				for _, path := range []plan.Path{c.Src, c.Dst} {
					if !path.Explicit {
						bare++
						if path.Side != test.bare {
							t.Errorf("bare path %s at %s is on the %s side, want %s", path.Path, path.Pos, path.Side, test.bare)
						}
					}
				}
			}
			if bare != 2 {
				t.Errorf("%d bare paths, want 2", bare)
			}
			if len(p.Warnings) != len(test.warnings) {
				t.Fatalf("warnings = %q, want %q", p.Warnings, test.warnings)
			}
			for i, w := range p.Warnings {
				if !strings.HasPrefix(w.String(), test.warnings[i]) {
					t.Errorf("warning %d = %q, want %q", i, w.String(), test.warnings[i])
				}
			}
		})
	}
	// Read as classic, the modern file copies root to root.
	wantErrors(t, modernPlan, plan.Options{Dialect: forceClassic()},
		"3:2: copy from root to root: one side must be node:", "5:2: copy from root to root: one side must be node:")
	// The side that was written is kept, and is not warned about.
	p := parseOK(t, "task main\n copy root:a node:b\n copy node:c root:d\n copy node:e node:f\nendtask\n")
	for i, want := range [][2]plan.Side{{plan.Root, plan.Node}, {plan.Node, plan.Root}, {plan.Node, plan.Node}} {
		c := p.Tasks[0].Commands[i]
		if c.Src.Side != want[0] || c.Dst.Side != want[1] || !c.Src.Explicit || !c.Dst.Explicit {
			t.Errorf("copy %d: %s→%s (explicit %v %v), want %s→%s", i, c.Src.Side, c.Dst.Side, c.Src.Explicit, c.Dst.Explicit, want[0], want[1])
		}
	}
	if len(p.Warnings) != 0 {
		t.Errorf("warnings for explicit sides: %v", p.Warnings)
	}
	// A classic copy of two bare paths is root to root.
	wantErrors(t, "task main\n copy a b;\nendtask\n", plan.Options{}, "2:2: copy from root to root: one side must be node:")
	wantErrors(t, "task main\n copy root:a root:b\nendtask\n", plan.Options{}, "2:2: copy from root to root")
}

func TestDialectOverride(t *testing.T) {
	// A classic file forced to modern: ${HOME} in shell text is an error,
	// and the reason is cleared.
	wantErrors(t, classicPlan, plan.Options{Dialect: forceModern()}, "4:21: unknown name ${HOME} in substitution")
	p := parseOKWith(t, classicPlan, plan.Options{Dialect: forceClassic()})
	if p.Dialect != plan.Classic || p.DialectReason != "" {
		t.Errorf("forced classic: dialect %s, reason %q; want classic and no reason", p.Dialect, p.DialectReason)
	}
	p = parseOKWith(t, modernPlan, plan.Options{Dialect: forceModern()})
	if p.Dialect != plan.Modern || p.DialectReason != "" {
		t.Errorf("forced modern: dialect %s, reason %q", p.Dialect, p.DialectReason)
	}
	// A classic file forced to modern, with nothing dialect-dependent
	// that fails: the bare paths go to the node.
	p = parseOKWith(t, "task main\n copy a b;\nendtask\n", plan.Options{Dialect: forceModern()})
	if c := p.Tasks[0].Commands[0]; p.Dialect != plan.Modern || c.Src.Side != plan.Node || c.Dst.Side != plan.Node {
		t.Errorf("forced modern: dialect %s, copy %s→%s; want modern, node→node", p.Dialect, c.Src.Side, c.Dst.Side)
	}
}

// expandWith expands a template with the job values given.
func expandWith(tp plan.Template, vals map[string]string) string {
	return tp.Expand(func(name string) (string, bool) {
		v, ok := vals[name]
		return v, ok
	})
}

func TestUnknownNames(t *testing.T) {
	vals := map[string]string{"x": "1", "jobindex": "7", "jobname": "j7"}
	// Classic shell text: unknown names are left for the shell.
	p := parseOK(t, "parameter x integer 1;\ntask main\n"+
		" execute echo ${HOME} $x $USER_1 ${jobindex} \\$x $ ${}\n"+
		" node:execute \"echo ${HOME}\"\n"+
		"endtask\n")
	cmds := p.Task("main").Commands
	if got, want := expandWith(cmds[0].Args[0], vals), "echo ${HOME} 1 $USER_1 7 $x $ ${}"; got != want {
		t.Errorf("classic shell text expands to %q, want %q", got, want)
	}
	if got, want := cmds[0].Args[0].Refs(), []string{"x", "jobindex"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("classic shell text refers to %q, want %q", got, want)
	}
	if got, want := expandWith(cmds[1].Args[0], vals), "echo ${HOME}"; got != want {
		t.Errorf("classic quoted shell text expands to %q, want %q", got, want)
	}

	tests := []struct {
		name string
		src  string
		opts plan.Options
		want []string
	}{
		{"modern shell text", "task main\n shexec echo ${HOME} $x\nendtask\n", plan.Options{},
			[]string{"2:14: unknown name ${HOME} in substitution", "2:22: unknown name $x"}},
		{"modern quoted shell text", "task main\n shexec \"echo $HOME\"\nendtask\n", plan.Options{},
			[]string{"2:15: unknown name $HOME in substitution"}},
		{"shexec forced modern", "task main\n execute echo $HOME\nendtask\n", plan.Options{Dialect: forceModern()},
			[]string{"2:15: unknown name $HOME"}},
		{"classic exec arguments", "parameter x integer 1;\ntask main\n exec echo ${HOME} \"a$y\"\nendtask\n", plan.Options{},
			[]string{"3:12: unknown name ${HOME} in substitution", "3:22: unknown name $y in substitution (did you mean x?)"}},
		{"classic copy paths", "task main\n copy $src node:${dst}/f\nendtask;\n", plan.Options{},
			[]string{"2:7: unknown name $src", "2:17: unknown name ${dst}"}},
		{"classic substitute paths", "task main\n substitute $a.in b\nendtask\n", plan.Options{},
			[]string{"2:13: unknown name $a"}},
		{"classic redirect file", "task main\n redirect stdout to $f.txt;\nendtask\n", plan.Options{},
			[]string{"2:21: unknown name $f"}},
		{"lexec and lpexec arguments", "task main\n lexec /bin/$p $a\n lpexec p p ${b}\nendtask\n", plan.Options{},
			[]string{"2:13: unknown name $p", "2:16: unknown name $a", "3:13: unknown name ${b}"}},
		{"did you mean", "parameter alpha integer 1\ntask main\n exec echo $alpah\nendtask\n", plan.Options{},
			[]string{"3:12: unknown name $alpah in substitution (did you mean alpha?)"}},
		{"names are case-sensitive", "parameter x integer 1\ntask main\n exec echo $X\nendtask\n", plan.Options{},
			[]string{"3:12: unknown name $X"}},
		{"position after UTF-8 and escapes", "task main\n exec \"ü\\t€$q\"\nendtask\n", plan.Options{},
			[]string{"2:12: unknown name $q"}},
		{"position after a continuation", "task main\n shexec \"a \\\n  b $q\"\nendtask\n", plan.Options{},
			[]string{"3:5: unknown name $q"}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			wantErrors(t, test.src, test.opts, test.want...)
		})
	}
}

func TestEscapedDollar(t *testing.T) {
	p := parseOK(t, "parameter x integer 1\ntask main\n"+
		" exec echo \\$x \"\\$x\" \"$x\\$\" a\\$ \"\\\\$x\"\n"+
		" shexec echo \\$HOME \\${HOME}\n"+
		" copy root:\\$x node:\\$y\n"+
		"endtask\n")
	vals := map[string]string{"x": "1"}
	cmds := p.Task("main").Commands
	var args []string
	for _, a := range cmds[0].Args {
		args = append(args, expandWith(a, vals))
	}
	if got, want := strings.Join(args, "|"), `echo|$x|$x|1$|a$|\1`; got != want {
		t.Errorf("exec arguments = %s, want %s", got, want)
	}
	if got, want := expandWith(cmds[1].Args[0], vals), "echo $HOME ${HOME}"; got != want {
		t.Errorf("shell text = %q, want %q", got, want)
	}
	if got := expandWith(cmds[2].Src.Path, vals) + " " + expandWith(cmds[2].Dst.Path, vals); got != "$x $y" {
		t.Errorf("copy paths = %q, want \"$x $y\"", got)
	}
	for _, c := range cmds {
		if c.Op == plan.OpExec && len(c.Args[1].Refs()) != 0 {
			t.Errorf("\\$x is a reference: %v", c.Args[1].Refs())
		}
	}
}

func TestImplicitNames(t *testing.T) {
	for i, src := range []string{
		"parameter x integer 1\ntask main\n exec echo $jobindex ${jobname}\n copy node:out root:out.${jobindex}\n shexec echo $jobname\nendtask\n",
		"variable v index 0 list a\njobs\n0001 0\nendjobs\ntask main\n exec echo $jobindex $jobname $v\nendtask\n",
	} {
		p := parseOK(t, src)
		want := []string{"jobindex jobname jobindex jobname", "jobindex jobname v"}
		var refs []string
		for _, c := range p.Task("main").Commands {
			for _, a := range c.Args {
				refs = append(refs, a.Refs()...)
			}
			refs = append(refs, c.Dst.Path.Refs()...)
		}
		if got := strings.Join(refs, " "); got != want[i] {
			t.Errorf("references = %q, want %q", got, want[i])
		}
	}
	// They are not parameters: a constraint cannot use them.
	wantErrors(t, "parameter x integer 1\nconstraint jobindex > 1\n"+mainTask, plan.Options{},
		"2:12: constraint: unknown parameter jobindex")
}

func TestTaskErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"unknown statement", "paramter x integer 1\n" + mainTask,
			[]string{`1:1: unknown statement "paramter" (did you mean parameter?)`}},
		{"unknown statement far from any", "frobnicate\n" + mainTask, []string{`1:1: unknown statement "frobnicate"`}},
		{"truncated statement", "param\n" + mainTask, []string{`1:1: unknown statement "param" (did you mean parameter?)`}},
		{"statement is a string", "\"parameter\" x\n" + mainTask, []string{`1:2: unknown statement "parameter"`}},
		{"unknown command", "task main\n  copyy a b\nendtask\n", []string{`2:3: unknown command "copyy" (did you mean copy?)`}},
		{"unknown command shexe", "task main\n shexe ls\nendtask\n", []string{`2:2: unknown command "shexe" (did you mean shexec?)`}},
		{"unknown command far from any", "task main\n run ls\nendtask\n", []string{`2:2: unknown command "run"`}},
		{"command is a string", "task main\n \"exec\" ls\nendtask\n", []string{`2:3: expected a command, found "exec"`}},
		{"unknown task", "task mai\nendtask\n", []string{`1:6: unknown task "mai" (did you mean main?)`, "3:1: missing task main"}},
		{"unknown task rootstrat", "task rootstrat\nendtask\n" + mainTask, []string{`1:6: unknown task "rootstrat" (did you mean rootstart?)`}},
		{"task without name", "task\nendtask\n" + mainTask, []string{"1:1: task needs a name: one of rootstart, nodestart, main, rootfinish"}},
		{"task with extra words", "task main now\nendtask\n", []string{`1:11: unexpected "now" after task main`}},
		{"duplicate task", mainTask + "task nodestart\nendtask\n  task main\nendtask\n", []string{"5:8: duplicate task main (first at 1:6)"}},
		{"duplicate nodestart", "task nodestart\nendtask\ntask nodestart\nendtask\n" + mainTask, []string{"3:6: duplicate task nodestart (first at 1:6)"}},
		{"missing main", "parameter x integer 1\ntask nodestart\nendtask\n", []string{"4:1: missing task main"}},
		{"missing main without newline", "task nodestart\nendtask", []string{"2:8: missing task main"}},
		{"missing endtask", "task main\n exec a\n", []string{"1:6: task main has no endtask"}},
		{"task inside a task", "task nodestart\n exec a\ntask main\nendtask\n", []string{"1:6: task nodestart has no endtask"}},
		{"endtask without task", mainTask + "endtask\n", []string{"3:1: endtask without task"}},
		{"endtask with extra words", "task main\nendtask main\n", []string{`2:9: unexpected "main" after endtask`}},
		{"root:execute in main", "task main\n root:execute ls\nendtask\n",
			[]string{"2:2: root:execute in task main: it runs only in rootstart and rootfinish"}},
		{"root:execute in nodestart", "task nodestart\n\troot:execute ls\nendtask\n" + mainTask,
			[]string{"2:2: root:execute in task nodestart: it runs only in rootstart and rootfinish"}},
		{"node:execute in rootstart", "task rootstart\n node:execute ls\nendtask\n" + mainTask,
			[]string{"2:2: node:execute in task rootstart, which runs on the root; use root:execute"}},
		{"copy in rootfinish", mainTask + "task rootfinish\n copy node:a root:b\nendtask\n",
			[]string{"4:2: copy in task rootfinish: copy needs a node (use it in nodestart or main)"}},
		{"substitute in rootstart", "task rootstart\n substitute a b\nendtask\n" + mainTask,
			[]string{"2:2: substitute in task rootstart: substitute needs a node"}},
		{"substitute to the root", "task main\n substitute a root:b\nendtask\n",
			[]string{"2:15: substitute works on the node: b cannot be root:"}},
		{"copy with one path", "task main\n copy a\nendtask\n", []string{"2:2: copy needs a source and a destination, found 1 arguments"}},
		{"copy with three paths", "task main\n copy a b c\nendtask\n", []string{"2:11: copy needs a source and a destination, found 3 arguments"}},
		{"copy with an empty path", "task main\n copy \"\" node:b\nendtask\n", []string{"2:2: copy: empty path"}},
		{"copy with a bare side", "task main\n copy root: node:b\nendtask\n", []string{"2:2: copy: empty path"}},
		{"exec without program", "task main\n exec\nendtask\n", []string{"2:2: exec needs a program"}},
		{"lexec without argv0", "task main\n lexec /bin/ls\nendtask\n", []string{"2:2: lexec needs a program and argv[0]"}},
		{"lpexec without argv0", "task main\n lpexec ls\nendtask\n", []string{"2:2: lpexec needs a program and argv[0]"}},
		{"execute without text", "task main\n execute\nendtask\n", []string{"2:2: execute needs a command line"}},
		{"shexec without text", "task main\n shexec # only a comment? no: shell text\n shexec\nendtask\n", []string{"3:2: shexec needs a command line"}},
		{"onerror without a word", "task main\n onerror\nendtask\n", []string{"2:2: expected onerror fail or onerror ignore"}},
		{"onerror maybe", "task main\n onerror maybe\nendtask\n", []string{"2:2: expected onerror fail or onerror ignore"}},
		{"onerror twice", "task main\n onerror fail ignore\nendtask\n", []string{"2:2: expected onerror fail or onerror ignore"}},
		{"redirect stdin", "task main\n redirect stdin to f\nendtask\n", []string{"2:2: expected redirect stdout|stderr [append] to FILE"}},
		{"redirect without file", "task main\n redirect stdout to\nendtask\n", []string{"2:2: expected redirect stdout|stderr"}},
		{"redirect without to", "task main\n redirect stderr append f\nendtask\n", []string{"2:2: expected redirect stdout|stderr"}},
		{"redirect two files", "task main\n redirect stdout to a b\nendtask\n", []string{`2:23: redirect: unexpected "b" after the file name`}},
		{"redirect off with more", "task main\n redirect stdout off now\nendtask\n", []string{`2:22: unexpected "now" after redirect stdout off`}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			wantErrors(t, test.src, plan.Options{}, test.want...)
		})
	}
}

func TestCommands(t *testing.T) {
	p := parseOK(t, "parameter x text select anyof a b\n"+
		"task rootstart\n"+
		" execute date\n"+
		" shexec date\n"+
		" exec date\n"+
		"endtask\n"+
		"task nodestart\n"+
		" copy root:\"in put\" node:.\n"+
		"endtask\n"+
		"task main\n"+
		" copy node:\"a b\"/c root:\"out $x\"/\n"+
		" substitute in.tmpl node:in.txt\n"+
		" node:execute ./run $x\n"+
		" execute ./run\n"+
		" shexec \"a \\\"b\\\"\"\n"+
		" exec prog -a \"b c\" node:\"d e\" x\"y\"z\n"+
		" lexec /bin/sh sh -c \"echo hi\"\n"+
		" lpexec sh sh\n"+
		" onerror ignore\n"+
		" redirect stdout to out.txt\n"+
		" redirect stderr append to \"err $x.txt\"\n"+
		" redirect stdout off\n"+
		" onerror fail\n"+
		"endtask\n"+
		"task rootfinish\n"+
		" root:execute tar cf r.tar .\n"+
		"endtask\n")
	if p.Dialect != plan.Classic {
		t.Errorf("dialect = %s, want classic", p.Dialect)
	}
	if len(p.Tasks) != 4 {
		t.Fatalf("%d tasks, want 4", len(p.Tasks))
	}
	for i, name := range []string{"rootstart", "nodestart", "main", "rootfinish"} {
		if p.Tasks[i].Name != name || p.Task(name) != p.Tasks[i] {
			t.Errorf("task %d is %q, want %q", i, p.Tasks[i].Name, name)
		}
	}
	if p.Task("nosuch") != nil {
		t.Errorf("Task(nosuch) is not nil")
	}
	if !p.Task("rootstart").OnRoot() || !p.Task("rootfinish").OnRoot() || p.Task("main").OnRoot() || p.Task("nodestart").OnRoot() {
		t.Errorf("OnRoot is wrong")
	}
	// Shell commands in root tasks run on the root.
	for _, c := range p.Task("rootstart").Commands[:2] {
		if c.Op != plan.OpShell || c.Where != plan.Root {
			t.Errorf("%s in rootstart: op %v, where %s; want a shell command on the root", c.Keyword, c.Op, c.Where)
		}
	}
	var lines []string
	for _, c := range p.Task("main").Commands {
		lines = append(lines, fmt.Sprintf("%d:%d %s", c.Pos.Line, c.Pos.Col, c))
	}
	want := []string{
		`11:2 copy node:"a b/c" root:"out ${x}/"`,
		`12:2 substitute node:"in.tmpl" node:"in.txt"`,
		`13:2 shexec "./run ${x}"`,
		`14:2 shexec "./run"`,
		`15:2 shexec "a \"b\""`,
		`16:2 exec "prog" "-a" "b c" "node:d e" "xyz"`,
		`17:2 lexec "/bin/sh" "sh" "-c" "echo hi"`,
		`18:2 lpexec "sh" "sh"`,
		`19:2 onerror ignore`,
		`20:2 redirect stdout to "out.txt"`,
		`21:2 redirect stderr append to "err ${x}.txt"`,
		`22:2 redirect stdout off`,
		`23:2 onerror fail`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("main commands:\ngot\n\t%s\nwant\n\t%s", strings.Join(lines, "\n\t"), strings.Join(want, "\n\t"))
	}
	m := p.Task("main").Commands
	if m[0].Op != plan.OpCopy || m[1].Op != plan.OpSubstitute || m[2].Op != plan.OpShell || m[5].Op != plan.OpExec ||
		m[6].Op != plan.OpLexec || m[7].Op != plan.OpLpexec || m[8].Op != plan.OpOnError || m[9].Op != plan.OpRedirect {
		t.Errorf("ops are wrong: %v", m)
	}
	if !m[8].Ignore || m[12].Ignore || !m[10].Append || m[9].Append || !m[11].Off || m[10].Stream != "stderr" {
		t.Errorf("onerror/redirect fields are wrong")
	}
	if m[2].Keyword != "node:execute" || m[3].Keyword != "execute" || m[2].Where != plan.Node || m[3].Where != plan.Node {
		t.Errorf("shell commands in main: %q %s, %q %s", m[2].Keyword, m[2].Where, m[3].Keyword, m[3].Where)
	}
	if m[1].Src.Side != plan.Node || m[1].Src.Explicit {
		t.Errorf("substitute source: side %s, explicit %v; want node, not explicit", m[1].Src.Side, m[1].Src.Explicit)
	}
	if got := m[0].Src.Pos; got != (plan.Pos{Line: 11, Col: 7}) {
		t.Errorf("copy source at %s, want 11:7", got)
	}
	if got := p.Task("rootfinish").Commands[0].String(); got != `root:execute "tar cf r.tar ."` {
		t.Errorf("rootfinish command = %s", got)
	}
}

func TestRunFiles(t *testing.T) {
	p := parseOK(t, "variable x index 0 list a \"b c\"\n"+
		"variable y index 1 list 1 2 3\n"+
		"jobs\n"+
		"\t0001 0 2\n"+
		"\t0002 1 0\n"+
		"\t0003 1 2\n"+
		"endjobs\n"+
		"task main\n exec echo $x $y\nendtask\n")
	if !p.IsRunFile() || len(p.Params) != 0 || len(p.Vars) != 2 || p.Jobs == nil {
		t.Fatalf("run file: IsRunFile %v, %d params, %d vars, jobs %v", p.IsRunFile(), len(p.Params), len(p.Vars), p.Jobs)
	}
	if got := strings.Join(p.Names(), " "); got != "x y" {
		t.Errorf("Names() = %q, want \"x y\"", got)
	}
	if v := p.Vars[0]; v.Name != "x" || v.Index != 0 || len(v.Values) != 2 || v.Values[1].Text != "b c" || !v.Values[1].Quoted || v.Values[0].Quoted {
		t.Errorf("x = %+v", v)
	}
	if p.Jobs.Count() != 3 || p.Jobs.NVars != 2 {
		t.Fatalf("jobs: %d of %d values, want 3 of 2", p.Jobs.Count(), p.Jobs.NVars)
	}
	if got := fmt.Sprint(p.Jobs.Job(0), p.Jobs.Job(1), p.Jobs.Job(2)); got != "[0 2] [1 0] [1 2]" {
		t.Errorf("jobs = %s", got)
	}
	// A run file without a jobs block, and one with an empty block.
	if p := parseOK(t, "variable x index 0 list a\n"+mainTask); p.Jobs != nil || !p.IsRunFile() {
		t.Errorf("no jobs block: Jobs = %v", p.Jobs)
	}
	if p := parseOK(t, "variable x index 0 list a\njobs\nendjobs\n"+mainTask); p.Jobs == nil || p.Jobs.Count() != 0 {
		t.Errorf("empty jobs block: Jobs = %v", p.Jobs)
	}
	// A plan is not a run file.
	if p := parseOK(t, "parameter x integer 1\n"+mainTask); p.IsRunFile() || p.Names()[0] != "x" {
		t.Errorf("plan: IsRunFile %v, names %q", p.IsRunFile(), p.Names())
	}
}

func TestRunFileErrors(t *testing.T) {
	vars := "variable x index 0 list a b\nvariable y index 1 list c\n"
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"first index not 0", "variable x index 1 list a\n" + mainTask, []string{"1:18: first variable index is 1, want 0"}},
		{"index not consecutive", "variable x index 0 list a\nvariable y index 2 list a\n" + mainTask,
			[]string{"2:18: variable index 2 is not consecutive: it follows index 0"}},
		{"duplicate index", "variable x index 0 list a\nvariable y index 0 list a\n" + mainTask,
			[]string{"2:18: duplicate variable index 0 (variable x already has it)"}},
		{"duplicate name", "variable x index 0 list a\nvariable x index 1 list a\n" + mainTask,
			[]string{"2:10: duplicate variable x (first declared at 1:1)"}},
		{"index not a number", "variable x index one list a\n" + mainTask, []string{`1:18: variable x: index must be a whole number, found "one"`}},
		{"negative index", "variable x index -1 list a\n" + mainTask, []string{`1:18: variable x: index must be a whole number, found "-1"`}},
		{"no list", "variable x index 0 values a\n" + mainTask, []string{`1:20: variable x: expected list, found "values"`}},
		{"malformed", "variable x\n" + mainTask, []string{"1:1: expected: variable NAME index N list VALUE..."}},
		{"first job not 1", vars + "jobs\n0002 0 0\nendjobs\n" + mainTask, []string{"4:1: first job is 0002, want 0001"}},
		{"first job 0", vars + "jobs\n0 0 0\nendjobs\n" + mainTask, []string{"4:1: first job is 0, want 0001"}},
		{"jobs not consecutive", vars + "jobs\n0001 0 0\n0002 1 0\n0004 0 0\nendjobs\n" + mainTask,
			[]string{"6:1: job 0004 is not consecutive: it follows job 0002"}},
		{"jobs repeated", vars + "jobs\n1 0 0\n1 1 0\nendjobs\n" + mainTask, []string{"5:1: job 1 is not consecutive: it follows job 1"}},
		{"too many values", vars + "jobs\n0001 0 0 0\nendjobs\n" + mainTask, []string{"4:1: job 0001 names 3 values, want 2 (one per variable)"}},
		{"too few values", vars + "jobs\n0001 0\nendjobs\n" + mainTask, []string{"4:1: job 0001 names 1 values, want 2 (one per variable)"}},
		{"value out of range", vars + "jobs\n\t0001 2 0\n\t0002 1 1\nendjobs\n" + mainTask, []string{
			"4:7: job 0001: value index 2 is out of range for x (it has 2 values)",
			"5:9: job 0002: value index 1 is out of range for y (it has 1 values)"}},
		{"value not a number", vars + "jobs\n0001 a 0\nendjobs\n" + mainTask, []string{`4:6: job 0001: value index for x must be a whole number, found "a"`}},
		{"job number not a number", vars + "jobs\nfirst 0 0\nendjobs\n" + mainTask, []string{`4:1: job number must be a whole number, found "first"`}},
		{"missing endjobs", vars + "jobs\n0001 0 0\n" + mainTask, []string{
			"3:1: jobs block has no endjobs", `5:1: expected a job line or endjobs, found "task"`,
			`6:1: job number must be a whole number, found "endtask"`, "7:1: missing task main"}},
		{"endjobs without jobs", vars + "endjobs\n" + mainTask, []string{"3:1: endjobs without jobs"}},
		{"second jobs block", vars + "jobs\nendjobs\njobs\nendjobs\n" + mainTask, []string{"5:1: a second jobs block"}},
		{"variable after jobs", vars + "jobs\nendjobs\nvariable z index 2 list a\n" + mainTask,
			[]string{"5:1: variable z is declared after the jobs block"}},
		{"parameters and variables", vars + "parameter p integer 1\n" + mainTask,
			[]string{"3:11: a file has either parameters (a plan) or variables and jobs (a run file), not both"}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			wantErrors(t, test.src, plan.Options{}, test.want...)
		})
	}
}

// TestAllErrorsInOnePass checks that every error of a file is reported,
// in position order, lexical, syntax and check errors together.
func TestAllErrorsInOnePass(t *testing.T) {
	src := "parameter x integer range from 1 to 10 step 0\n" + // 1
		"parameter y intger 3\n" + // 2
		"parameter z text \"open\n" + // 3
		"paramter w\n" + // 4
		"parameter x float 1\n" + // 5
		"constraint x + \"a\" > 1\n" + // 6
		"/* never closed\n" + // 7
		"task mian\n" + // 8
		" exec echo $q\n" + // 9
		"endtask\n" // 10
	list := parseErrs(t, src, plan.Options{})
	var got []string
	for _, e := range list {
		got = append(got, e.Error())
	}
	want := []string{
		"test.pln:1:45: parameter x: step 0 never reaches 10",
		`test.pln:2:13: parameter y: unknown type "intger" (did you mean integer?)`,
		"test.pln:3:18: unterminated string",
		`test.pln:4:1: unknown statement "paramter" (did you mean parameter?)`,
		"test.pln:5:11: duplicate parameter x (first declared at 1:11)",
		"test.pln:6:14: constraint: + needs numbers, not number and string",
		"test.pln:7:1: unterminated comment",
		"test.pln:11:1: missing task main",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\ngot\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if list.Error() != strings.Join(got, "\n") {
		t.Errorf("ErrorList.Error() = %q, want the errors one per line", list.Error())
	}

	// Errors in tasks, commands and substitutions, all in one pass.
	wantErrors(t, "task mian\n copyy a b\n exec $a\n root:execute ls\nendtask\ntask mian\nendtask\nendtask\n", plan.Options{},
		`1:6: unknown task "mian" (did you mean main?)`,
		`2:2: unknown command "copyy" (did you mean copy?)`,
		"3:7: unknown name $a",
		"4:2: root:execute in task mian",
		`6:6: unknown task "mian"`,
		"6:6: duplicate task mian (first at 1:6)",
		"8:1: endtask without task",
		"9:1: missing task main")
}

func TestTooManyErrors(t *testing.T) {
	src := strings.Repeat("bogus\n", 2*plan.MaxErrors) + mainTask
	list := parseErrs(t, src, plan.Options{})
	if len(list) != plan.MaxErrors+1 {
		t.Fatalf("%d errors, want %d and a last one saying there are too many", len(list), plan.MaxErrors+1)
	}
	for i, e := range list[:plan.MaxErrors] {
		if e.Pos.Line != i+1 || !strings.Contains(e.Msg, `unknown statement "bogus"`) {
			t.Errorf("error %d = %v", i, e)
		}
	}
	if last := list[plan.MaxErrors]; last.Msg != "too many errors" {
		t.Errorf("last error = %v, want too many errors", last)
	}
}

func TestBinaryData(t *testing.T) {
	wantErrors(t, "parameter x integer 1\nta\x00sk main\n", plan.Options{}, "2:3: binary data (a NUL byte): not a plan file")
}

func TestUnterminated(t *testing.T) {
	wantErrors(t, "parameter x text \"abc\n"+mainTask, plan.Options{}, "1:18: unterminated string")
	wantErrors(t, "parameter x text \"abc\\\"\n"+mainTask, plan.Options{}, "1:18: unterminated string")
	wantErrors(t, mainTask+"parameter x text \"abc", plan.Options{}, "3:18: unterminated string")
	wantErrors(t, "task main\n exec echo \"hi\nendtask\n", plan.Options{}, "2:12: unterminated string")
	// A comment left open swallows the rest of the file.
	wantErrors(t, "task main\n exec echo /* open\nendtask\n", plan.Options{},
		"1:6: task main has no endtask", "2:12: unterminated comment")
	wantErrors(t, "/*/\n"+mainTask, plan.Options{}, "1:1: unterminated comment", "4:1: missing task main")
}

func TestLineContinuations(t *testing.T) {
	p := parseOK(t, "parameter x \\\n  integer \\\n  range from 1 \\\n  to 3\n"+
		"parameter y text select anyof \"a \\\nb\" c\\\nd\n"+
		"task main\n"+
		"\tshexec ./run.sh $x \\\n\t\t$y >> out\n"+
		"\texec prog \\\n\t\t-a $x\n"+
		"\tcopy node:out\\\n.txt root:out.$x\n"+
		"endtask\n")
	if len(p.Params) != 2 {
		t.Fatalf("%d parameters, want 2", len(p.Params))
	}
	if got := describeParam(p.Params[0]); got != "x integer range from=1 to=3" {
		t.Errorf("x = %s", got)
	}
	if got := describeParam(p.Params[1]); got != `y text anyof values=["a b" cd]` {
		t.Errorf("y = %s", got)
	}
	m := p.Task("main").Commands
	if len(m) != 3 {
		t.Fatalf("%d commands in main, want 3", len(m))
	}
	want := []string{
		`shexec "./run.sh ${x} \t\t${y} >> out"`,
		`exec "prog" "-a" "${x}"`,
		`copy node:"out.txt" root:"out.${x}"`,
	}
	for i, c := range m {
		if c.String() != want[i] {
			t.Errorf("command %d = %s, want %s", i, c, want[i])
		}
	}
	if m[1].Args[2].Pos != (plan.Pos{Line: 12, Col: 6}) {
		t.Errorf("exec argument $x at %s, want 12:6", m[1].Args[2].Pos)
	}
	// Errors after continued lines have the right line.
	wantErrors(t, "parameter x \\\n integer \\\n range from 1 to 2.5\n"+mainTask, plan.Options{},
		"3:18: parameter x: integer range needs whole numbers, found 2.5")
}

func TestCommentsEverywhere(t *testing.T) {
	src := "# a plan\n" +
		"// with comments\n" +
		"/* everywhere,\n   over lines */\n" +
		"parameter /* name: */ x # the x\n" +
		"parameter y /* a block */ integer /* and */ range from 1 /* \n */ to 3 // y\n" +
		"parameter z text select anyof a /* b */ c # d\n" +
		"constraint y > 1 /* no */ && z == \"c\" # comment\n" +
		"\n" +
		"task main // the task\n" +
		"\t# a comment line\n" +
		"\t// another\n" +
		"\t/* a block */ exec echo $y /* gone */ # gone\n" +
		"\tcopy node:a /* between */ root:b // after\n" +
		"\tonerror ignore # trailing\n" +
		"/* before endtask */ endtask # after endtask\n" +
		"# the end\n"
	p := parseOK(t, src)
	var got []string
	for _, q := range p.Params {
		got = append(got, describeParam(q))
	}
	if want := "x none none|y integer range from=1 to=3|z text anyof values=[a c]"; strings.Join(got, "|") != want {
		t.Errorf("parameters = %q, want %q", strings.Join(got, "|"), want)
	}
	if len(p.Constraints) != 1 {
		t.Errorf("%d constraints, want 1", len(p.Constraints))
	}
	var cmds []string
	for _, c := range p.Task("main").Commands {
		cmds = append(cmds, c.String())
	}
	if want := `exec "echo" "${y}"|copy node:"a" root:"b"|onerror ignore`; strings.Join(cmds, "|") != want {
		t.Errorf("commands = %q, want %q", strings.Join(cmds, "|"), want)
	}
	// Comments in a run file, inside the jobs block too.
	p = parseOK(t, "variable x index 0 list a b # two\n"+
		"jobs // here\n# a job:\n0001 1 /* x=b */\n/* more */\n0002 0\nendjobs # done\n"+mainTask)
	if p.Jobs.Count() != 2 || fmt.Sprint(p.Jobs.Job(0), p.Jobs.Job(1)) != "[1] [0]" {
		t.Errorf("jobs with comments: %d jobs %v", p.Jobs.Count(), p.Jobs.Index)
	}
	// Comments are text in shell commands, and not inside strings.
	p = parseOK(t, "task main\n execute echo a # b\n exec echo \"# c\" \"// d\" \"/* e */\"\nendtask\n")
	if got := p.Tasks[0].Commands[0].String(); got != `shexec "echo a # b"` {
		t.Errorf("shell text = %s", got)
	}
	if got := p.Tasks[0].Commands[1].String(); got != `exec "echo" "# c" "// d" "/* e */"` {
		t.Errorf("exec = %s", got)
	}
}

func TestCRLF(t *testing.T) {
	lf := "parameter x integer range from 1 to 3;\n" +
		"parameter y text select anyof \"a b\" c // y\n" +
		"task main\n" +
		"\tcopy root:in.$x node:in\n" +
		"\texecute ./run $x \\\n\t\t$y > out\n" +
		"\tshexec \"echo $y\"\n" +
		"endtask\n"
	crlf := strings.ReplaceAll(lf, "\n", "\r\n")
	a, b := parseOK(t, lf), parseOK(t, crlf)
	var wa, wb bytes.Buffer
	a.WriteTasks(&wa)
	b.WriteTasks(&wb)
	if wa.String() != wb.String() {
		t.Errorf("CRLF tasks differ:\nLF\n%s\nCRLF\n%s", wa.String(), wb.String())
	}
	if strings.Contains(wb.String(), "\r") {
		t.Errorf("a carriage return got into the tasks:\n%q", wb.String())
	}
	for i := range a.Params {
		if describeParam(a.Params[i]) != describeParam(b.Params[i]) || a.Params[i].Pos != b.Params[i].Pos {
			t.Errorf("parameter %d: LF %s at %s, CRLF %s at %s", i, describeParam(a.Params[i]), a.Params[i].Pos,
				describeParam(b.Params[i]), b.Params[i].Pos)
		}
	}
	// Errors have the same positions.
	bad := "parameter x integer 1\r\nparameter y intger 2\r\ntask main\r\n  exec $z\r\nendtask\r\n"
	wantErrors(t, bad, plan.Options{}, `2:13: parameter y: unknown type "intger"`, "4:8: unknown name $z")
	wantErrors(t, "parameter x text \"a\r\n"+mainTask, plan.Options{}, "1:18: unterminated string")
}

func TestUTF8(t *testing.T) {
	p := parseOK(t, "parameter city label \"Städte\" text select anyof \"Zürich\" São_Paulo \"東京\"\n"+
		"task main\n exec echo \"ñandú $city\" ✓\n shexec echo ∑ $city\nendtask\n")
	if got := describeParam(p.Params[0]); got != `city text anyof label="Städte" values=["Zürich" São_Paulo "東京"]` {
		t.Errorf("city = %s", got)
	}
	vals := map[string]string{"city": "Zürich"}
	c := p.Task("main").Commands
	if got := expandWith(c[0].Args[1], vals) + "|" + expandWith(c[0].Args[2], vals) + "|" + expandWith(c[1].Args[0], vals); got != "ñandú Zürich|✓|echo ∑ Zürich" {
		t.Errorf("expanded = %q", got)
	}
	// Columns count characters.
	wantErrors(t, "parameter ü text 1\n"+mainTask, plan.Options{}, `1:11: parameter: expected a name, found "ü"`)
	wantErrors(t, "parameter x text \"日本語\" b\n"+mainTask, plan.Options{}, `1:24: parameter x: unexpected "b"`)
	wantErrors(t, "task main\n exec \"€€€\" $ü $q\nendtask\n", plan.Options{}, "2:16: unknown name $q")
}

func TestEmptyAndCommentOnly(t *testing.T) {
	wantErrors(t, "", plan.Options{}, "1:1: missing task main")
	wantErrors(t, "\n\n", plan.Options{}, "3:1: missing task main")
	wantErrors(t, "# only\n// comments\n/* and\n more */\n", plan.Options{}, "5:1: missing task main")
	wantErrors(t, "# no newline", plan.Options{}, "1:13: missing task main")
	// The smallest valid plan: an empty main task.
	p := parseOK(t, mainTask)
	if len(p.Tasks) != 1 || len(p.Tasks[0].Commands) != 0 || len(p.Params) != 0 || p.Dialect != plan.Modern {
		t.Errorf("minimal plan: %+v", p)
	}
	if p.File != "test.pln" || p.Source != mainTask {
		t.Errorf("File %q, Source %q", p.File, p.Source)
	}
}

func TestConstraints(t *testing.T) {
	head := "parameter x integer range from 1 to 3\nparameter f float 2.5\nparameter s text select anyof a b\n"
	valid := []string{
		"constraint x > 1",
		"constraint x + 1 <= f * 2 && s == \"a\"",
		"constraint !(x == 2) || s != \"b\"",
		"constraint x % 2 == 0",
		"constraint -x < -1 && +f > 0",
		"constraint (x > 1) == (f > 1)",
		"constraint ${x} >= $f",
		"constraint s < \"b\"",
		"constraint x == 1;",
		"constraint 1.5e0 < x",
	}
	for _, c := range valid {
		p := parseOK(t, head+c+"\n"+mainTask)
		if len(p.Constraints) != 1 || p.Constraints[0].Pos != (plan.Pos{Line: 4, Col: 1}) {
			t.Errorf("%s: constraints %v", c, p.Constraints)
		}
	}
	// Operator precedence and associativity.
	p := parseOK(t, head+"constraint x - 1 - 1 == 2 * 3 % 4 || !(x > 1) && f < 2\n"+mainTask)
	if got := exprString(p.Constraints[0].Expr); got != "((((x - 1) - 1) == ((2 * 3) % 4)) || ((!(x > 1)) && (f < 2)))" {
		t.Errorf("parsed as %s", got)
	}
	tests := []struct {
		c    string
		want []string
	}{
		{"constraint", []string{"4:1: constraint needs an expression"}},
		{"constraint x", []string{"4:12: constraint must be a comparison or a condition, not a number"}},
		{"constraint s", []string{"4:12: constraint must be a comparison or a condition, not a string"}},
		{"constraint x + s > 1", []string{"4:14: constraint: + needs numbers, not number and string"}},
		{"constraint s * 2 > 1", []string{"4:14: constraint: * needs numbers, not string and number"}},
		{"constraint x == \"a\"", []string{"4:14: constraint: cannot compare number == string"}},
		{"constraint (x > 1) < (x > 2)", []string{"4:20: constraint: cannot compare boolean < boolean"}},
		{"constraint x && s == \"a\"", []string{"4:14: constraint: && needs booleans, not number and boolean"}},
		{"constraint !x", []string{"4:12: constraint: ! needs a boolean, not a number"}},
		{"constraint -s > 1", []string{"4:12: constraint: - needs a number, not a string"}},
		{"constraint q > 1", []string{"4:12: constraint: unknown parameter q"}},
		{"constraint q > 1 && r < 2", []string{"4:12: constraint: unknown parameter q", "4:21: constraint: unknown parameter r"}},
		{"constraint (x > 1", []string{"4:12: constraint: unclosed ("}},
		{"constraint x > 1)", []string{`4:17: constraint: unexpected ")"`}},
		{"constraint x >", []string{"4:14: constraint: expression ends too soon"}},
		{"constraint x < 2 < 3", []string{"4:18: constraint: comparisons do not chain; use &&"}},
		{"constraint x > 1 y", []string{`4:18: constraint: unexpected "y"`}},
		{"constraint x > 3x", []string{`4:16: constraint: unexpected "3x"`}},
		{"constraint x === 1", []string{`4:16: unexpected "=" in constraint (did you mean "=="?)`}},
		{"constraint x & 1", []string{`4:14: unexpected "&" in constraint (did you mean "&&"?)`, `4:16: constraint: unexpected "1"`}},
		{"constraint x > 1 # ok\nconstraint s >", []string{"5:14: constraint: expression ends too soon"}},
	}
	for _, test := range tests {
		wantErrors(t, head+test.c+"\n"+mainTask, plan.Options{}, test.want...)
	}
}

// exprString prints an expression fully parenthesised.
func exprString(e plan.Expr) string {
	switch e := e.(type) {
	case *plan.Ident:
		return e.Name
	case *plan.NumberLit:
		return fmt.Sprint(e.Value)
	case *plan.StringLit:
		return fmt.Sprintf("%q", e.Value)
	case *plan.Unary:
		return "(" + e.Op + exprString(e.X) + ")"
	case *plan.Binary:
		return "(" + exprString(e.X) + " " + e.Op + " " + exprString(e.Y) + ")"
	}
	return fmt.Sprintf("?%T", e)
}

func TestDeepNesting(t *testing.T) {
	const n = 10000
	head := "parameter x integer range from 1 to 3\n"
	for _, test := range []struct {
		name, expr string
	}{
		{"parentheses", strings.Repeat("(", n) + "x" + strings.Repeat(")", n) + " > 0"},
		{"unclosed parentheses", strings.Repeat("(", n) + "x > 0"},
		{"not", strings.Repeat("!", n) + "(x > 0)"},
		{"minus", strings.Repeat("- ", n) + "x > 0"},
	} {
		t.Run(test.name, func(t *testing.T) {
			list := parseErrs(t, head+"constraint "+test.expr+"\n"+mainTask, plan.Options{})
			if len(list) != 1 || list[0].Pos.Line != 2 || !strings.Contains(list[0].Msg, "nested too deeply") {
				t.Errorf("errors = %v, want one saying the expression is nested too deeply", list)
			}
		})
	}
	// Nesting within the limit, and a long flat expression, are fine.
	parseOK(t, head+"constraint "+strings.Repeat("(", 100)+"x"+strings.Repeat(")", 100)+" > 0\n"+mainTask)
	parseOK(t, head+"constraint "+strings.Repeat("x + ", n)+"x > 0\n"+mainTask)
	parseOK(t, head+"constraint "+strings.Repeat("x > 0 && ", n)+"x > 0\n"+mainTask)
}

func TestZip(t *testing.T) {
	head := "parameter a integer range from 1 to 3\nparameter b text select anyof x y z\nparameter c float 1\nparameter d float 2\n"
	p := parseOK(t, head+"zip a b\nzip c d;\n"+mainTask)
	if len(p.Zips) != 2 {
		t.Fatalf("%d zips, want 2", len(p.Zips))
	}
	z := p.Zips[0]
	if z.Pos != (plan.Pos{Line: 5, Col: 1}) || len(z.Names) != 2 || z.Names[0].Text != "a" || z.Names[1].Text != "b" ||
		z.Names[1].Pos != (plan.Pos{Line: 5, Col: 7}) {
		t.Errorf("zip = %+v", z)
	}
	tests := []struct {
		zip  string
		want []string
	}{
		{"zip", []string{"5:1: zip needs at least two parameters"}},
		{"zip a", []string{"5:1: zip needs at least two parameters"}},
		{"zip a q", []string{"5:7: zip: unknown parameter q"}},
		{"zip a b\nzip b c", []string{"6:5: zip: parameter b is already zipped"}},
		{"zip a a", []string{"5:7: zip: parameter a is already zipped"}},
		{"zip a \"b\"", []string{`5:8: zip: expected a name, found "b"`}},
	}
	for _, test := range tests {
		wantErrors(t, head+test.zip+"\n"+mainTask, plan.Options{}, test.want...)
	}
}

// roundTrip parses head+tasks, prints the tasks, reparses head+printed,
// and checks the second printing is the same as the first. It returns
// the first printing.
func roundTrip(t *testing.T, head, tasks string) string {
	t.Helper()
	p := parseOK(t, head+tasks)
	var first bytes.Buffer
	if err := p.WriteTasks(&first); err != nil {
		t.Fatal(err)
	}
	q, err := plan.Parse("printed.pln", []byte(head+first.String()), plan.Options{})
	if err != nil {
		t.Fatalf("the printed tasks do not parse: %v\nprinted:\n%s", err, first.String())
	}
	var second bytes.Buffer
	if err := q.WriteTasks(&second); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Errorf("printing is not stable:\nfirst\n%s\nsecond\n%s", first.String(), second.String())
	}
	if len(q.Warnings) > len(p.Warnings) {
		t.Errorf("the printed form has warnings: %v", q.Warnings)
	}
	return first.String()
}

func TestRoundTrip(t *testing.T) {
	head := "parameter x text select anyof \"a b\" c\nparameter n integer range from 1 to 2\n"
	tasks := "task rootstart\n" +
		"  root:execute mkdir -p out; echo ${HOME} \"$x\" # shell comment\n" +
		"  execute date\n" +
		"endtask\n" +
		"task nodestart\n" +
		"  copy root:tools.tar node:\"t t.tar\"\n" +
		"endtask\n" +
		"task main\n" +
		"  copy in.$n node:.\n" +
		"  substitute in.tmpl in.$n.txt\n" +
		"  node:execute ./run \"$x\" $n \\$HOME ${jobindex} > out\n" +
		"  shexec \"printf '%s\\t\\\\n' \\\"$x\\\"\"\n" +
		"  exec prog -a \"b c\" \"\" node:\"d e\" \"\\x01\\377ü\"\n" +
		"  lexec /bin/sh sh -c \"echo $$ \\$x\"\n" +
		"  lpexec sh sh\n" +
		"  onerror ignore\n" +
		"  redirect stdout to out.$jobname\n" +
		"  redirect stderr append to \"err $x.txt\"\n" +
		"  redirect stdout off\n" +
		"  onerror fail\n" +
		"  copy node:out root:results/out.$n\n" +
		"endtask\n" +
		"task rootfinish\n" +
		"  root:execute tar cf r.tar .\n" +
		"endtask\n"
	got := roundTrip(t, head, tasks)
	want := "task rootstart\n" +
		"\troot:execute \"mkdir -p out; echo \\${HOME} \\\"${x}\\\" # shell comment\"\n" +
		"\troot:execute \"date\"\n" +
		"endtask\n" +
		"\n" +
		"task nodestart\n" +
		"\tcopy root:\"tools.tar\" node:\"t t.tar\"\n" +
		"endtask\n" +
		"\n" +
		"task main\n" +
		"\tcopy root:\"in.${n}\" node:\".\"\n" +
		"\tsubstitute node:\"in.tmpl\" node:\"in.${n}.txt\"\n" +
		"\tshexec \"./run \\\"${x}\\\" ${n} \\$HOME ${jobindex} > out\"\n" +
		"\tshexec \"printf '%s\\t\\\\n' \\\"${x}\\\"\"\n" +
		"\texec \"prog\" \"-a\" \"b c\" \"\" \"node:d e\" \"\\x01\\xffü\"\n" +
		"\tlexec \"/bin/sh\" \"sh\" \"-c\" \"echo \\$\\$ \\$x\"\n" +
		"\tlpexec \"sh\" \"sh\"\n" +
		"\tonerror ignore\n" +
		"\tredirect stdout to \"out.${jobname}\"\n" +
		"\tredirect stderr append to \"err ${x}.txt\"\n" +
		"\tredirect stdout off\n" +
		"\tonerror fail\n" +
		"\tcopy node:\"out\" root:\"results/out.${n}\"\n" +
		"endtask\n" +
		"\n" +
		"task rootfinish\n" +
		"\troot:execute \"tar cf r.tar .\"\n" +
		"endtask\n"
	if got != want {
		t.Errorf("canonical form:\ngot\n%s\nwant\n%s", got, want)
	}

	// Modern plans, classic plans, and the canonical form read in the
	// other dialect.
	roundTrip(t, "parameter x integer 1;\n", "task main\n execute echo $x ${HOME} $\nendtask\n")
	roundTrip(t, "parameter x integer 1\n", "task main\n copy x node:y\n shexec \"a\\$b $x\"\n copy node:a b\nendtask\n")
	roundTrip(t, "variable v index 0 list a\njobs\n0001 0\nendjobs\n", "task main\n exec echo $v\nendtask\n")
	roundTrip(t, "", "task main\nendtask\ntask nodestart\n shexec \"\\t\\a\\b\\f\\v\\r\\\"\\\\\\?\\'\"\nendtask\n")
	roundTrip(t, "", "task main\n exec \"\\q\\x\" a\\b \"$\" \"${\" \"${}\" \"$1\" \"${a b}\"\nendtask\n")

	// The canonical form is read the same in either dialect.
	p := parseOK(t, head+tasks)
	var printed bytes.Buffer
	p.WriteTasks(&printed)
	for _, d := range []*plan.Dialect{forceClassic(), forceModern()} {
		q := parseOKWith(t, head+printed.String(), plan.Options{Dialect: d})
		var again bytes.Buffer
		q.WriteTasks(&again)
		if again.String() != printed.String() {
			t.Errorf("canonical form read as %s prints differently:\n%s", *d, again.String())
		}
		if len(q.Warnings) != 0 {
			t.Errorf("canonical form read as %s has warnings: %v", *d, q.Warnings)
		}
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", `""`},
		{"a b", `"a b"`},
		{"a\"b\\c", `"a\"b\\c"`},
		{"$x", `"\$x"`},
		{"\n\t\r\x01\x7f", `"\n\t\r\x01\x7f"`},
		{"\xff", `"\xff"`},
		{"ü€", `"ü€"`},
	}
	for _, test := range tests {
		if got := plan.Quote(test.in); got != test.want {
			t.Errorf("Quote(%q) = %s, want %s", test.in, got, test.want)
		}
		// It reads back as the same value.
		p := parseOK(t, "parameter x text "+plan.Quote(test.in)+"\n"+mainTask)
		if got := p.Params[0].Domain.Values[0].Text; got != test.in {
			t.Errorf("Quote(%q) reads back as %q", test.in, got)
		}
	}
}

// Fixed bugs.

// A line continuation followed by text at the very start of the next line
// hid the keyword there: "range from 1 \<newline>to 3" was "expected range
// from A to B", and "x \<newline>> 1" in a constraint was unexpected.
func TestContinuationAtLineStart(t *testing.T) {
	p := parseOK(t, "parameter x integer range from 1 \\\nto 3\nconstraint x \\\n> 1\ntask main\n exec echo \\\n$x\nendtask\n")
	if got := describeParam(p.Params[0]); got != "x integer range from=1 to=3" {
		t.Errorf("x = %s", got)
	}
	if len(p.Constraints) != 1 {
		t.Errorf("%d constraints, want 1", len(p.Constraints))
	}
}

// A continuation inside a keyword joins it, as the contract says of any
// line ending in a backslash.
func TestContinuationInsideKeyword(t *testing.T) {
	p := parseOK(t, "param\\\neter x integer 1\ntask main\n ex\\\nec echo $x\n exe\\\ncute ls\nendt\\\nask\n")
	if len(p.Params) != 1 || p.Params[0].Name != "x" {
		t.Fatalf("parameters = %v", p.Params)
	}
	c := p.Task("main").Commands
	if len(c) != 2 || c[0].Op != plan.OpExec || c[1].Op != plan.OpShell {
		t.Errorf("commands = %v", c)
	}
}

// Invalid UTF-8 is an error wherever it is, reported once and at its
// position, and the text before it is not lost (which gave a second,
// wrong error "exec needs a program").
func TestInvalidUTF8(t *testing.T) {
	tests := []struct {
		name, src string
		want      string
	}{
		{"in a word", "task main\n exec foo\xff\nendtask\n", "2:10: invalid UTF-8 encoding"},
		{"in shell text", "task main\n shexec echo \xff\nendtask\n", "2:14: invalid UTF-8 encoding"},
		{"in a string", "parameter x text \"a\xffb\"\n" + mainTask, "1:20: invalid UTF-8 encoding"},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			wantErrors(t, test.src, plan.Options{}, test.want)
		})
	}
}

// A file with exactly MaxErrors errors had all of them reported and yet
// ended with "too many errors", as if some had been left out.
func TestExactlyMaxErrors(t *testing.T) {
	// MaxErrors-1 unknown statements and a missing main.
	src := strings.Repeat("bogus\n", plan.MaxErrors-1)
	list := parseErrs(t, src, plan.Options{})
	if len(list) != plan.MaxErrors {
		t.Fatalf("%d errors, want exactly %d", len(list), plan.MaxErrors)
	}
	if last := list[len(list)-1]; last.Msg != "missing task main" || last.Pos.Line != plan.MaxErrors {
		t.Errorf("last error = %v, want missing task main at line %d", last, plan.MaxErrors)
	}
	// One more error, and the list is cut with a note.
	list = parseErrs(t, "bogus\n"+src, plan.Options{})
	if len(list) != plan.MaxErrors+1 || list[plan.MaxErrors].Msg != "too many errors" {
		t.Errorf("%d errors ending %v, want %d and too many errors", len(list), list[len(list)-1], plan.MaxErrors+1)
	}
}
