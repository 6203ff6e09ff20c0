package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSimMeter: on a terminal the meter rewrites one line with the runs
// done out of all and erases it at the end; otherwise it writes nothing.
func TestSimMeter(t *testing.T) {
	var quiet bytes.Buffer
	m := newSimMeter(&quiet, false, 10)
	m.show("a", "fcfs")
	m.add(5)
	m.show("b", "orrery")
	m.add(5)
	m.clear()
	if quiet.Len() != 0 {
		t.Errorf("not on a terminal, the meter wrote %q", quiet.String())
	}
	var tty bytes.Buffer
	m = newSimMeter(&tty, true, 10)
	m.show("a", "fcfs")
	m.add(5)
	m.show("b", "orrery")
	m.add(5)
	m.clear()
	want := "\rorrery sim: 0/10 runs done; running case a, policy fcfs\x1b[K" +
		"\rorrery sim: 5/10 runs done; running case b, policy orrery\x1b[K" +
		"\r\x1b[K"
	if tty.String() != want {
		t.Errorf("on a terminal the meter wrote %q, want %q", tty.String(), want)
	}
}

// TestSimProgressOnlyOnATerminal: `orrery sim` decides from its standard
// error: a pipe, a file or a buffer is not a terminal, so a script gets
// the results alone (and --json stays one JSON object).
func TestSimProgressOnlyOnATerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for name, v := range map[string]any{"pipe": w, "file": f, "buffer": &bytes.Buffer{}} {
		if isTerminal(v) {
			t.Errorf("a %s is taken for a terminal", name)
		}
	}
	code, stdout, stderr := cli(t, "sim", "--runs", "2", "--json", "paper-table1")
	if code != exitOK || stderr != "" {
		t.Fatalf("sim --json: exit %d, stderr %q; want 0 and nothing", code, stderr)
	}
	var rep simReport
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || len(rep.Results) == 0 {
		t.Errorf("sim --json printed %q: %v", stdout, err)
	}
	code, stdout, stderr = cli(t, "sim", "--runs", "2", "paper-table1")
	if code != exitOK || stderr != "" || strings.Contains(stdout, "\r") {
		t.Errorf("sim: exit %d, stderr %q, stdout %q; want the table alone", code, stderr, stdout)
	}
}
