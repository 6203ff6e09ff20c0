package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"orrery/pki"
)

// TestAgentFlagErrors: a wrong --ends-in or --idle-exit, or both
// --connect and --connect-file, end `orrery agent` at once with status 2
// and one clear line, before it touches anything.
func TestAgentFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--connect", "h:1", "--ends-in", "soon"}, `orrery: agent: --ends-in "soon": want a duration such as 90m`},
		{[]string{"--connect", "h:1", "--ends-in", "-5m"}, `orrery: agent: --ends-in "-5m": must be above 0`},
		{[]string{"--connect", "h:1", "--ends-in", "1:99:00"}, `orrery: agent: --ends-in "1:99:00": want a time limit such as`},
		{[]string{"--connect", "h:1", "--idle-exit", "-1s"}, "orrery: agent: --idle-exit must not be negative"},
		{[]string{"--connect", "h:1", "--connect-file", "/x/addr"}, "orrery: agent: --connect and --connect-file name the root's address twice: give one of them"},
	} {
		var out, errb bytes.Buffer
		work := filepath.Join(t.TempDir(), "work")
		args := append([]string{"agent", "--work-dir", work}, c.args...)
		if code := run(&env{stdout: &out, stderr: &errb}, args); code != exitInvalid {
			t.Errorf("%v: status %d, want %d", c.args, code, exitInvalid)
		}
		lines := strings.Split(strings.TrimSpace(errb.String()), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], c.want) {
			t.Errorf("%v: stderr\n%s\nwant one line starting %q", c.args, errb.String(), c.want)
		}
		if _, err := os.Stat(work); err == nil {
			t.Errorf("%v: the work directory was made before the flags were checked", c.args)
		}
	}
}

func TestParseEndsIn(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
	}{
		{"90m", 90 * time.Minute},
		{"3600s", time.Hour},
		{"90", 90 * time.Minute},
		{"59:30", 59*time.Minute + 30*time.Second},
		{"0:45", 45 * time.Second}, // squeue's time left near the end
		{"0:00", time.Nanosecond},  // its end has come
		{"01:30:00", 90 * time.Minute},
		{"1-12:00:00", 36 * time.Hour},
		{" 2-00:00:00\n", 48 * time.Hour},
		{"UNLIMITED", 0},
		{"NOT_SET", 0},
		{"INVALID", 0},
		{"", 0},
	} {
		got, err := parseEndsIn(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseEndsIn(%q) = %v, %v; want %v", c.in, got, err, c.want)
		}
	}
}

func TestReadConnectFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "addr")
	if _, err := readConnectFile(file); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v, want an error that says so", err)
	}
	os.WriteFile(file, []byte(" \n"), 0o644)
	if _, err := readConnectFile(file); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v, want an error that says so", err)
	}
	os.WriteFile(file, []byte(" head.example:7041 \nignored\n"), 0o644)
	if a, err := readConnectFile(file); err != nil || a != "head.example:7041" {
		t.Errorf("readConnectFile = %q, %v; want head.example:7041", a, err)
	}
}

// TestAgentConnectFileMissing: with --connect-file naming a file that
// never appears, the agent keeps trying for --wait (it is a root not
// reachable yet, not a bad flag), then gives up with status 4, naming
// the file.
func TestAgentConnectFileMissing(t *testing.T) {
	dir := t.TempDir()
	tok := filepath.Join(dir, "token")
	os.WriteFile(tok, []byte(pki.Token{Secret: strings.Repeat("s", 43)}.Encode()+"\n"), 0o600)
	var out, errb bytes.Buffer
	file := filepath.Join(dir, "addr")
	code := run(&env{stdout: &out, stderr: &errb}, []string{"agent", "--connect-file", file, "--token-file", tok,
		"--wait", "1s", "--work-dir", filepath.Join(dir, "work")})
	if code != exitSystem {
		t.Fatalf("status %d, want %d; stderr:\n%s", code, exitSystem, errb.String())
	}
	if s := errb.String(); !strings.Contains(s, "no address in --connect-file "+file+" yet") || !strings.Contains(s, "gave up") {
		t.Errorf("stderr:\n%s\nwant it to say the file has no address yet, and that it gave up", s)
	}
}
