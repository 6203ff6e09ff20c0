package sim

import (
	"bytes"
	"embed"
	"fmt"
	"io/fs"
	"orrery/suggest"
	"slices"
	"strings"
)

// builtins are the built-in scenarios: the paper's experiments, each
// with its modelling assumptions in its comments.
//
//go:embed scenarios/*.scn
var builtins embed.FS

// Builtins returns the names of the built-in scenarios, sorted.
func Builtins() []string {
	files, _ := fs.Glob(builtins, "scenarios/*.scn")
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = strings.TrimSuffix(strings.TrimPrefix(f, "scenarios/"), ".scn")
	}
	slices.Sort(names)
	return names
}

// BuiltinSource returns the text of a built-in scenario's file: a
// starting point for one's own.
func BuiltinSource(name string) ([]byte, error) {
	if !slices.Contains(Builtins(), name) {
		return nil, fmt.Errorf("unknown scenario %q%s (built-in: %s)", name,
			suggest.DidYouMean(name, Builtins()), strings.Join(Builtins(), ", "))
	}
	return builtins.ReadFile("scenarios/" + name + ".scn")
}

// Builtin returns the named built-in scenario.
func Builtin(name string) (*Scenario, error) {
	src, err := BuiltinSource(name)
	if err != nil {
		return nil, err
	}
	return Parse(name+".scn", bytes.NewReader(src))
}

// Summary returns the first line of the scenario's Doc.
func (sc *Scenario) Summary() string {
	line, _, _ := strings.Cut(sc.Doc, "\n")
	return line
}
