package clusterfile

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

// diff returns "" when got equals want, else both as indented JSON.
func diff(got, want any) string {
	if reflect.DeepEqual(got, want) {
		return ""
	}
	g, _ := json.MarshalIndent(got, "", "  ")
	w, _ := json.MarshalIndent(want, "", "  ")
	return "got:\n" + string(g) + "\nwant:\n" + string(w)
}

// issueExample is the file of issue 14, verbatim.
const issueExample = `# grid.cluster
cluster monash ssh alice@head.monash.example identity ~/.ssh/id_ed25519
    node n1 ssh n1
    node n2 ssh n2
cluster jerusalem ssh bob@gw.huji.example:2222 known-hosts ~/.ssh/known_hosts listen 10.1.0.1:7443
cluster here
    node fast job-limit 2 cpu-share 1.5
`

func TestParseIssueExample(t *testing.T) {
	t.Setenv("HOME", "/home/alice")
	g, err := Parse("/grids/grid.cluster", strings.NewReader(issueExample))
	if err != nil {
		t.Fatal(err)
	}
	want := &Grid{File: "/grids/grid.cluster", Clusters: []Cluster{
		{Name: "monash", Line: 2, Col: 1, SSH: &Endpoint{"alice", "head.monash.example", 22},
			Identity: "/home/alice/.ssh/id_ed25519", KnownHosts: "/home/alice/.ssh/known_hosts", Lease: time.Hour,
			Nodes: []Node{
				{Name: "n1", Line: 3, Col: 5, SSH: &Endpoint{"", "n1", 22}},
				{Name: "n2", Line: 4, Col: 5, SSH: &Endpoint{"", "n2", 22}},
			}},
		{Name: "jerusalem", Line: 5, Col: 1, SSH: &Endpoint{"bob", "gw.huji.example", 2222},
			KnownHosts: "/home/alice/.ssh/known_hosts", Listen: "10.1.0.1:7443", Lease: time.Hour},
		{Name: "here", Line: 6, Col: 1, Lease: time.Hour, Nodes: []Node{
			{Name: "fast", Line: 7, Col: 5, JobLimit: 2, CPUs: 2, CPUShare: 1.5, Speed: 0.75},
		}},
	}}
	if d := diff(g, want); d != "" {
		t.Error(d)
	}
	for i, remote := range []bool{true, true, false} {
		if g.Clusters[i].Remote() != remote {
			t.Errorf("cluster %s: Remote() = %v, want %v", g.Clusters[i].Name, !remote, remote)
		}
	}
}

func TestParseOneLocalCluster(t *testing.T) {
	src := "# two nodes\nnode fast job-limit 2 cpu-share 1.5 memory 1G\n\nnode slow cpu-share 0.25 # quarter\nnode far ssh carol@far.example job-limit 3 cpus 8\n"
	g, err := Parse("c", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := &Grid{File: "c", Clusters: []Cluster{{Name: "local", Lease: DefaultLease, Nodes: []Node{
		{Name: "fast", Line: 2, Col: 1, JobLimit: 2, CPUs: 2, CPUShare: 1.5, Memory: 1 << 30, Speed: 0.75},
		{Name: "slow", Line: 4, Col: 1, CPUs: 1, CPUShare: 0.25, Speed: 0.25},
		{Name: "far", Line: 5, Col: 1, SSH: &Endpoint{"carol", "far.example", 22}, JobLimit: 3, CPUs: 8},
	}}}}
	if d := diff(g, want); d != "" {
		t.Error(d)
	}
	if !g.Clusters[0].Nodes[1].Limited() || g.Clusters[0].Nodes[2].Limited() {
		t.Error("Limited: want a node with a CPU share limited, a node over ssh not")
	}
}

func TestParseAttributes(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	src := `cluster "big one" ssh alice@[2001:db8::1]:2222 identity "keys/my key" binary /opt/orrery-arm64 lease 90m listen [fd00::1]:7443 # comment "not a quote
    node "n 1" ssh 192.0.2.7 memory 2G speed 1.5   # a node reached by ssh
cluster small known-hosts ~ ssh a.b-c_d@h:1
    node x
`
	_, err := Parse("/etc/orrery/g.cluster", strings.NewReader(src))
	// "big one" and "n 1" are not names: quoting gives a value with a
	// space, and names have none.
	if err == nil || !strings.Contains(err.Error(), `g.cluster:1:9: bad cluster name "big one"`) ||
		!strings.Contains(err.Error(), `g.cluster:2:10: bad node name "n 1"`) {
		t.Fatalf("err = %v, want bad names at 1:9 and 2:10", err)
	}
	src = strings.NewReplacer(`"big one"`, "big", `"n 1"`, "n1").Replace(src)
	g, err := Parse("/etc/orrery/g.cluster", strings.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []Cluster{
		{Name: "big", Line: 1, Col: 1, SSH: &Endpoint{"alice", "2001:db8::1", 2222}, Identity: "/etc/orrery/keys/my key",
			KnownHosts: "/home/u/.ssh/known_hosts", Binary: "/opt/orrery-arm64", Listen: "[fd00::1]:7443", Lease: 90 * time.Minute,
			Nodes: []Node{{Name: "n1", Line: 2, Col: 5, SSH: &Endpoint{"", "192.0.2.7", 22}, Memory: 2 << 30, Speed: 1.5}}},
		{Name: "small", Line: 3, Col: 1, SSH: &Endpoint{"a.b-c_d", "h", 1}, KnownHosts: "/home/u", Lease: time.Hour,
			Nodes: []Node{{Name: "x", Line: 4, Col: 5}}},
	}
	if d := diff(g.Clusters, want); d != "" {
		t.Error(d)
	}
	if s := g.Clusters[0].SSH.String(); s != "alice@[2001:db8::1]:2222" {
		t.Errorf("Endpoint.String() = %q", s)
	}
	// A relative path is taken from the file's directory, made absolute.
	g, err = Parse(filepath.Join("rel", "g.cluster"), strings.NewReader("cluster c ssh u@h identity k\n node n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if id := g.Clusters[0].Identity; !filepath.IsAbs(id) || !strings.HasSuffix(id, filepath.Join("rel", "k")) {
		t.Errorf("identity %q, want an absolute path ending rel/k", id)
	}
	// Escapes in quotes.
	g, err = Parse("g", strings.NewReader(`cluster c ssh u@h binary "a \"b\" \\ c\d"`+"\n node n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b := g.Clusters[0].Binary; b != `/a "b" \ c\d` && !strings.HasSuffix(b, `/a "b" \ c\d`) {
		t.Errorf("binary %q, want …/a \"b\" \\ c\\d", b)
	}
}

func TestParseSlurm(t *testing.T) {
	in := "cluster hpc ssh alice@login.example slurm partition short account proj time 1-01:00:00 pilots 8 cpus-per-pilot 4 memory-per-pilot 8G idle 90s join-wait 5m sbatch \"--qos=low --constraint=avx\"\n" +
		"cluster here slurm time 00:30:00 pilots 2\n" +
		"cluster both listen 10.0.0.1:7443 slurm\n node a\n"
	g, err := Parse("c", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []*Slurm{
		{Partition: "short", Account: "proj", Time: 25 * time.Hour, Pilots: 8, CPUs: 4, Memory: 8 << 30, Idle: 90 * time.Second, JoinWait: 5 * time.Minute, Sbatch: []string{"--qos=low", "--constraint=avx"}},
		{Time: 30 * time.Minute, Pilots: 2, Idle: DefaultPilotIdle, JoinWait: DefaultPilotJoinWait},
		{Pilots: DefaultPilots, Idle: DefaultPilotIdle, JoinWait: DefaultPilotJoinWait},
	}
	for i, c := range g.Clusters {
		if !reflect.DeepEqual(c.Slurm, want[i]) {
			t.Errorf("cluster %s: %+v, want %+v", c.Name, c.Slurm, want[i])
		}
		if !c.Remote() {
			t.Errorf("cluster %s: a Slurm cluster runs as a grid", c.Name)
		}
	}
	if g.Clusters[0].SSH == nil || g.Clusters[2].Listen != "10.0.0.1:7443" || len(g.Clusters[2].Nodes) != 1 {
		t.Errorf("other attributes lost: %+v", g.Clusters)
	}
}

func TestParseSlurmTime(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"5": 5 * time.Minute, "5:30": 5*time.Minute + 30*time.Second, "01:00:00": time.Hour,
		"2-0": 48 * time.Hour, "1-02:03": 26*time.Hour + 3*time.Minute, "1-00:00:01": 24*time.Hour + time.Second,
	} {
		if got, err := ParseSlurmTime(in); err != nil || got != want {
			t.Errorf("ParseSlurmTime(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "1:2:3:4", "a", "-1", "1--2", "+5", "1:+5", "00:00:59", "99999-0"} {
		if got, err := ParseSlurmTime(in); err == nil {
			t.Errorf("ParseSlurmTime(%q) = %v, want an error", in, got)
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	for _, tc := range []struct{ name, in, want string }{
		{"unknown statement", "nod a\n", `c:1:1: unknown statement "nod" (did you mean node?)`},
		{"duplicate node", "node a\nnode a\n", "c:2:6: node a is already on line 1"},
		{"duplicate node across clusters", "cluster x\n node a\ncluster y\n node a\n", "c:4:7: node a is already on line 2"},
		{"duplicate cluster", "cluster x\n node a\ncluster x\n node b\n", "c:3:9: cluster x is already on line 1"},
		{"needs a value", "node a cpu-share\n", "c:1:8: cpu-share needs a value"},
		{"negative share", "node a cpu-share -1\n", `c:1:18: cpu-share "-1": must be above 0`},
		{"bad size", "node a memory 12X\n", `c:1:15: memory "12X": want a size such as 512M`},
		{"unknown node attribute", "node a speedy 2\n", `c:1:8: unknown node attribute "speedy" (did you mean speed?)`},
		{"unknown cluster attribute", "cluster x identiy k\n node a\n", `c:1:11: unknown cluster attribute "identiy" (did you mean identity?)`},
		{"unknown cluster attribute far", "cluster x frob k\n node a\n", `c:1:11: unknown cluster attribute "frob" (want ssh, identity, known-hosts, listen, binary, lease, slurm, partition, account, time, pilots, cpus-per-pilot, memory-per-pilot, idle, join-wait or sbatch)`},
		{"slurm attribute without slurm", "cluster x partition short\n node a\n", "c:1:11: partition is for a cluster whose nodes are Slurm's pilots: add the word slurm to cluster x"},
		{"slurm twice", "cluster x slurm slurm\n", "c:1:17: slurm is given twice"},
		{"slurm bad time", "cluster x slurm time 1h\n", `c:1:22: time "1h": want a time limit such as 01:00:00`},
		{"slurm time under a minute", "cluster x slurm time 00:00:30\n", `c:1:22: time "00:00:30": 00:00:30 is less than a minute`},
		{"slurm time bad minutes", "cluster x slurm time 01:75:00\n", `c:1:22: time "01:75:00": want a time limit`},
		{"slurm pilots zero", "cluster x slurm pilots 0\n", `c:1:24: pilots "0": must be at least 1`},
		{"slurm bad partition", "cluster x slurm partition -x\n", `c:1:27: partition "-x": want a Slurm partition name`},
		{"slurm sbatch job name", "cluster x slurm sbatch \"--qos=low --job-name=y\"\n", `c:1:24: sbatch "--qos=low --job-name=y": --job-name is not an option orrery passes on`},
		{"slurm sbatch short time", "cluster x slurm sbatch \"-t5\"\n", `"-t5": give sbatch's options whole`},
		{"slurm sbatch no option", "cluster x slurm sbatch \"--qos low\"\n", `"low": give sbatch's options whole`},
		{"slurm cluster name with +", "cluster a+b slurm\n", "c:1:9: cluster a+b: a Slurm cluster's name is in its pilots' names"},
		{"slurm cluster name too long", "cluster " + strings.Repeat("c", 25) + " slurm\n", "a Slurm cluster's name is in its pilots' names"},
		{"slurm attribute value missing", "cluster x slurm pilots\n", "c:1:17: pilots needs a value"},
		{"attribute twice", "cluster x ssh a@h lease 1h lease 2h\n node a\n", "c:1:28: lease is given twice (first at column 19)"},
		{"node attribute twice", "node a cpus 1 cpus 2\n", "c:1:15: cpus is given twice (first at column 8)"},
		{"no nodes", "# nothing\n", "c:1:1: no nodes"},
		{"empty file", "", "c:1:1: no nodes"},
		{"cluster without nodes", "cluster x\ncluster y listen h:1\n", "c:1:1: cluster x has no nodes"},
		{"cluster without a name", "cluster\n", "c:1:1: cluster needs a name"},
		{"node without a name", "node\n", "c:1:1: node needs a name"},
		{"node before the first cluster", "node a\ncluster x\n node b\n", "c:1:1: node line before the first cluster line"},
		{"bad cluster name", "cluster a/b\n node n\n", `c:1:9: bad cluster name "a/b"`},
		{"dot node name", "node ..\n", `c:1:6: bad node name ".."`},
		{"listen without port", "cluster x listen 10.0.0.1\n", `c:1:18: listen "10.0.0.1": want HOST:PORT`},
		{"listen bad port", "cluster x listen h:99999\n", `c:1:18: listen "h:99999": bad port "99999"`},
		{"listen no host", "cluster x listen :7443\n", `c:1:18: listen ":7443": no host`},
		{"listen bare IPv6", "cluster x listen fd00::1:7443\n", `c:1:18: listen "fd00::1:7443": want HOST:PORT`},
		{"ssh without user", "cluster x ssh head.example\n node a\n", `c:1:15: ssh "head.example": no user: want USER@HOST[:PORT]`},
		{"ssh bad user", "cluster x ssh al ice@h\n node a\n", `c:1:18: unknown cluster attribute "ice@h"`},
		{"ssh bad user chars", "cluster x ssh a;b@h\n node a\n", `c:1:15: ssh "a;b@h": bad user "a;b"`},
		{"ssh empty user", "cluster x ssh @h\n node a\n", `c:1:15: ssh "@h": bad user ""`},
		{"ssh two @", "cluster x ssh a@b@c\n node a\n", `c:1:15: ssh "a@b@c": bad host "b@c"`},
		{"ssh bare IPv6", "cluster x ssh alice@2001:db8::1\n node a\n", `c:1:15: ssh "alice@2001:db8::1": an IPv6 address goes in brackets`},
		{"ssh bad IPv6", "cluster x ssh alice@[2001:zz::1]:22\n node a\n", `bad IPv6 address "2001:zz::1"`},
		{"ssh IPv6 unclosed", "cluster x ssh alice@[2001:db8::1\n node a\n", `no ] after the IPv6 address`},
		{"ssh bad port", "cluster x ssh a@h:0\n node a\n", `c:1:15: ssh "a@h:0": bad port "0"`},
		{"ssh empty port", "cluster x ssh a@h:\n node a\n", `c:1:15: ssh "a@h:": empty port`},
		{"ssh no host", "cluster x ssh a@\n node a\n", `c:1:15: ssh "a@": no host`},
		{"node ssh bad host", "node a ssh -oProxyCommand=x\n", `c:1:12: ssh "-oProxyCommand=x": bad host`},
		{"cpu-share over ssh", "node a ssh h cpu-share 0.5\n", "c:1:14: cpu-share is for a node on the head's machine"},
		{"identity without ssh", "cluster x identity k\n node a\n", "c:1:11: identity is for a cluster whose head is reached by ssh"},
		{"binary without ssh", "cluster x binary b\n node a\n", "c:1:11: binary is for a cluster whose head is reached by ssh"},
		{"lease bad", "cluster x lease 1hour\n node a\n", `c:1:17: lease "1hour": want a duration`},
		{"lease zero", "cluster x lease 0s\n node a\n", `c:1:17: lease "0s": must be above 0`},
		{"other user's home", "cluster x ssh a@h identity ~bob/k\n node a\n", `c:1:28: identity "~bob/k": only ~/ is expanded`},
		{"empty path", "cluster x ssh a@h identity \"\"\n node a\n", "c:1:28: identity: empty file name"},
		{"unclosed quote", "cluster x ssh a@h identity \"my key\n node a\n", "c:1:28: this quote is not closed"},
		{"quote inside a word", "node a\"b\n", "c:1:7: a quote inside a word"},
		{"text after a quote", "node \"a\"b\n", "c:1:9: a closing quote must end its word"},
		{"cpus not a number", "node a cpus two\n", `c:1:13: cpus "two": want a whole number`},
		{"speed NaN", "node a speed NaN\n", `c:1:14: speed "NaN": must be above 0`},
		{"errors in order", "node a cpus 0\nnode b speed x\nnodee c\n",
			"c:1:13: cpus \"0\": must be at least 1\nc:2:14: speed \"x\": want a number\nc:3:1: unknown statement \"nodee\" (did you mean node?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := Parse("c", strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("no error; got %+v", g)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
			var list ErrorList
			if !errors.As(err, &list) {
				t.Errorf("error is a %T, not an ErrorList", err)
			}
		})
	}
}

func TestParseReportsEveryErrorUpToTheCap(t *testing.T) {
	var b strings.Builder
	for range 2 * MaxErrors {
		b.WriteString("node a cpus 0\n")
	}
	_, err := Parse("c", strings.NewReader(b.String()))
	var list ErrorList
	if !errors.As(err, &list) || len(list) != MaxErrors {
		t.Fatalf("got %d errors (%v), want %d", len(list), err, MaxErrors)
	}
	_, err = Parse("c", strings.NewReader("node a cpus 0 speed 0\nnode b memory 1Q\n"))
	if !errors.As(err, &list) || len(list) != 3 {
		t.Errorf("got %v, want all three errors", err)
	}
}

func TestParseLongLine(t *testing.T) {
	_, err := Parse("c", strings.NewReader("node a\nnode "+strings.Repeat("x", 2<<20)+"\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "c:2:1: line longer than 1 MiB") {
		t.Errorf("err = %v, want c:2:1: line longer than 1 MiB", err)
	}
}

// TestExamples parses every cluster file of examples/cluster, which
// docs/cluster-file.md shows.
func TestExamples(t *testing.T) {
	t.Setenv("HOME", "/home/u")
	paths, _ := filepath.Glob("../examples/cluster/*.cluster")
	clusters := map[string]int{"two-speeds.cluster": 1, "grid.cluster": 3, "slurm.cluster": 2}
	for _, path := range paths {
		g, err := Load(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		want, ok := clusters[filepath.Base(path)]
		if !ok {
			t.Errorf("%s: not known to this test: add it", path)
		}
		if len(g.Clusters) != want {
			t.Errorf("%s: %d clusters, want %d", path, len(g.Clusters), want)
		}
		delete(clusters, filepath.Base(path))
	}
	for name := range clusters {
		t.Errorf("examples/cluster/%s is missing", name)
	}
}

var position = regexp.MustCompile(`^c:[0-9]+:[0-9]+: `)

func FuzzParse(f *testing.F) {
	f.Add(issueExample)
	f.Add("node fast job-limit 2 cpu-share 1.5 memory 1G\nnode slow cpu-share 0.25\n")
	f.Add("cluster a ssh u@[::1]:22 identity \"x y\" listen [::1]:1 lease 1h\n node n ssh h cpus 2\n")
	f.Add("node \"a\\\"b\" # c\n")
	f.Add("cluster\nnode\n\"\n")
	f.Fuzz(func(t *testing.T, src string) {
		g, err := Parse("c", strings.NewReader(src))
		if err != nil {
			var list ErrorList
			if !errors.As(err, &list) || len(list) == 0 || len(list) > MaxErrors {
				t.Fatalf("error %v is not an ErrorList of 1 to %d errors", err, MaxErrors)
			}
			for _, e := range list {
				if e.Line < 1 || e.Col < 1 || !position.MatchString(e.Error()) || strings.Contains(e.Msg, "\n") {
					t.Fatalf("error without a position or on two lines: %q", e.Error())
				}
			}
			return
		}
		if len(g.Clusters) == 0 {
			t.Fatal("no error and no cluster")
		}
		for _, c := range g.Clusters {
			if len(c.Nodes) == 0 && c.Listen == "" || c.Lease <= 0 {
				t.Fatalf("cluster %+v: no nodes and no listen, or no lease", c)
			}
		}
	})
}

// TestDocExamples: docs/cluster-file.md shows every example file and
// the errors of testdata/bad.cluster as they are.
func TestDocExamples(t *testing.T) {
	doc, err := os.ReadFile("../docs/cluster-file.md")
	if err != nil {
		t.Fatal(err)
	}
	indent := func(s string) string {
		return regexp.MustCompile(`(?m)^(.)`).ReplaceAllString(s, "    $1")
	}
	paths, _ := filepath.Glob("../examples/cluster/*.cluster")
	for _, path := range append(paths, "testdata/bad.cluster") {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(doc), indent(string(src))) {
			t.Errorf("docs/cluster-file.md does not show %s as it is", path)
		}
	}
	src, _ := os.ReadFile("testdata/bad.cluster")
	_, err = Parse("grid.cluster", strings.NewReader(string(src)))
	if err == nil || !strings.Contains(string(doc), indent(err.Error()+"\n")) {
		t.Errorf("docs/cluster-file.md does not show the errors of testdata/bad.cluster:\n%v", err)
	}
}
