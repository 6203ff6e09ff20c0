package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// repoRoot is the repository's top directory, seen from this package.
const repoRoot = "../.."

// mdBlock is a code block of a Markdown file: fenced (```lang) or
// indented by four spaces or a tab.
type mdBlock struct {
	file    string
	line    int    // the line of the block's first line of text
	lang    string // a fenced block's info string; "" for an indented block
	fenced  bool
	section string // the text of the last "## " heading above it
	comment string // an HTML comment on the line just before the block, without <!-- -->
	text    string
}

// where returns "FILE:LINE" of the block.
func (b mdBlock) where() string { return b.file + ":" + strconv.Itoa(b.line) }

// mdBlocks returns the code blocks of the Markdown file at path, named
// by name in messages.
func mdBlocks(t *testing.T, path, name string) []mdBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return parseMarkdownBlocks(name, string(data))
}

// parseMarkdownBlocks finds the code blocks of a Markdown text.
func parseMarkdownBlocks(name, src string) []mdBlock {
	lines := strings.Split(src, "\n")
	var blocks []mdBlock
	section := ""
	prevBlank := true
	prevComment := ""
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "```"):
			b := mdBlock{file: name, line: i + 2, lang: strings.TrimSpace(strings.TrimPrefix(l, "```")), fenced: true,
				section: section, comment: prevComment}
			var text []string
			for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
				text = append(text, lines[i])
			}
			b.text = strings.Join(text, "\n") + "\n"
			blocks = append(blocks, b)
			prevBlank, prevComment = false, ""
			continue
		case prevBlank && isIndented(l):
			b := mdBlock{file: name, line: i + 1, section: section, comment: prevComment}
			var text []string
			for ; i < len(lines) && (isIndented(lines[i]) || strings.TrimSpace(lines[i]) == ""); i++ {
				text = append(text, strings.TrimPrefix(strings.TrimPrefix(lines[i], "\t"), "    "))
			}
			i--
			for len(text) > 0 && strings.TrimSpace(text[len(text)-1]) == "" {
				text = text[:len(text)-1]
			}
			b.text = strings.Join(text, "\n") + "\n"
			blocks = append(blocks, b)
			prevBlank, prevComment = true, ""
			continue
		case strings.HasPrefix(l, "## "):
			section = strings.TrimSpace(strings.TrimPrefix(l, "## "))
		}
		trimmed := strings.TrimSpace(l)
		prevBlank = trimmed == ""
		if strings.HasPrefix(trimmed, "<!--") && strings.HasSuffix(trimmed, "-->") {
			prevComment = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(trimmed, "<!--"), "-->"))
			prevBlank = true // a comment line does not end a paragraph's claim on an indented block
		} else if !prevBlank {
			prevComment = ""
		}
	}
	return blocks
}

func isIndented(l string) bool {
	return strings.HasPrefix(l, "    ") || strings.HasPrefix(l, "\t")
}

// docFiles returns README.md and docs/*.md, as paths and names relative
// to the repository.
func docFiles(t *testing.T) map[string]string {
	t.Helper()
	files := map[string]string{"README.md": filepath.Join(repoRoot, "README.md")}
	docs, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil || len(docs) == 0 {
		t.Fatalf("no docs/*.md: %v", err)
	}
	for _, d := range docs {
		files["docs/"+filepath.Base(d)] = d
	}
	return files
}

// repoCopy copies the repository's files (tracked, and new ones not
// ignored: what the next commit holds) into a new temporary directory,
// as a fresh clone would have them, and returns it.
func repoCopy(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("git", "-C", repoRoot, "ls-files", "--cached", "--others", "--exclude-standard", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	dst := t.TempDir()
	for _, f := range strings.Split(string(out), "\x00") {
		if f == "" {
			continue
		}
		src := filepath.Join(repoRoot, f)
		st, err := os.Lstat(src)
		if err != nil || !st.Mode().IsRegular() {
			continue // deleted in the work tree, or not a file
		}
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		to := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, st.Mode().Perm()); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func TestParseMarkdownBlocks(t *testing.T) {
	src := "# T\n\n## One\n\ntext\n\n    indented 1\n    indented 2\n\n<!-- in examples/x -->\n```plan\ntask main\nendtask\n```\n\n- item\n  continued\n\n## Two\n```sh\nls\n```\n"
	got := parseMarkdownBlocks("f.md", src)
	if len(got) != 3 {
		t.Fatalf("blocks %+v, want 3", got)
	}
	want := []mdBlock{
		{file: "f.md", line: 7, section: "One", text: "indented 1\nindented 2\n"},
		{file: "f.md", line: 12, lang: "plan", fenced: true, section: "One", comment: "in examples/x", text: "task main\nendtask\n"},
		{file: "f.md", line: 21, lang: "sh", fenced: true, section: "Two", text: "ls\n"},
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("block %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
