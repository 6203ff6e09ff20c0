package cluster

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	s, err := Parse("c", strings.NewReader("# two nodes\nnode fast job-limit 2 cpu-share 1.5 memory 1G\n\nnode slow cpu-share 0.25 # quarter\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []NodeSpec{
		{Name: "fast", JobLimit: 2, CPUs: 2, CPUShare: 1.5, Memory: 1 << 30, Speed: 0.75},
		{Name: "slow", CPUs: 1, CPUShare: 0.25, Speed: 0.25},
	}
	if len(s.Nodes) != 2 || s.Nodes[0] != want[0] || s.Nodes[1] != want[1] {
		t.Fatalf("got %+v, want %+v", s.Nodes, want)
	}
	if !s.Nodes[1].Limited() {
		t.Error("a node with a CPU share is not Limited")
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"nod a\n", "c:1:1: expected: node NAME"},
		{"node a\nnode a\n", "c:2:6: node a is already on line 1"},
		{"node a cpu-share\n", "c:1:8: cpu-share needs a value"},
		{"node a cpu-share -1\n", `c:1:18: cpu-share "-1": must be above 0`},
		{"node a memory 12X\n", `c:1:15: memory "12X": want a size such as 512M`},
		{"node a speedy 2\n", `c:1:8: unknown attribute "speedy"`},
		{"# nothing\n", "c: no nodes"},
	} {
		_, err := Parse("c", strings.NewReader(tc.in))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want %q…", tc.in, err, tc.want)
		}
	}
}
