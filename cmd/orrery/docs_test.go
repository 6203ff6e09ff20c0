package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// outsideDocs matches a pointer to documents that are not in the
// repository: the plan-language contract and the design plan the project
// started from. (Spelt in pieces, so this file does not match itself.)
var outsideDocs = regexp.MustCompile(`PLAN-` + `LANGUAGE|\bDES` + `IGN\b`)

// TestDocsStandAlone: no file of the repository (docs, comments, scenario
// files) points at a document the repository does not have.
func TestDocsStandAlone(t *testing.T) {
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "--cached", "--others", "--exclude-standard", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	n := 0
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil || bytes.IndexByte(data, 0) >= 0 {
			continue // deleted in the work tree, or binary
		}
		n++
		for i, line := range strings.Split(string(data), "\n") {
			if m := outsideDocs.FindString(line); m != "" {
				t.Errorf("%s:%d: points at %s, which is not in the repository: %s", f, i+1, m, strings.TrimSpace(line))
			}
		}
	}
	if n < 100 {
		t.Errorf("read %d files; want the repository's", n)
	}
}
