package plan

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestReferenceNamesEveryKeyword: docs/plan-language.md, the language's
// reference, names (as `code`) every statement, command, task, type and
// domain keyword the parser knows, so a keyword added here without its
// documentation fails.
func TestReferenceNamesEveryKeyword(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "docs", "plan-language.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	lists := map[string][]string{"statement": statementWords, "command": commandWords, "task": taskNames,
		"type": typeWords, "domain": domainWords,
		"other": {"label", "anyof", "oneof", "from", "to", "step", "points", "list", "index", "ignore", "fail",
			"stdout", "stderr", "append", "off", NameJobIndex, NameJobName}}
	for what, words := range lists {
		for _, w := range words {
			named := strings.Contains(doc, "`"+w+"`") || strings.Contains(doc, "`"+w+" ")
			if what == "other" { // a word of a statement: in a code span
				named = regexp.MustCompile("`[^`\n]*\\b" + regexp.QuoteMeta(w) + "\\b[^`\n]*`").MatchString(doc)
			}
			if !named {
				t.Errorf("docs/plan-language.md does not name the %s keyword `%s`", what, w)
			}
		}
	}
	for _, section := range []string{"## onerror", "## Substitution", "## Two dialects", "## What Orrery adds", "## Run files", "## Orrery's choices"} {
		if !strings.Contains(doc, "\n"+section) {
			t.Errorf("docs/plan-language.md has no section %q", section)
		}
	}
}
