package main

import (
	"strings"
	"testing"
)

// TestHelpCommand: `orrery help COMMAND` prints that command's help, the
// same text as `orrery COMMAND -h`, and exits 0.
func TestHelpCommand(t *testing.T) {
	_, general, _ := cli(t, "help")
	for _, c := range commands {
		code, stdout, stderr := cli(t, "help", c.name)
		if code != exitOK {
			t.Errorf("orrery help %s: exit %d, want 0\n%s", c.name, code, stderr)
		}
		if !strings.HasPrefix(stdout, "Usage: orrery "+c.name+" ") || stdout == general {
			t.Errorf("orrery help %s printed:\n%s\nwant the command's usage", c.name, stdout)
		}
		hcode, _, hstderr := cli(t, c.name, "-h")
		if hcode != exitOK || hstderr != stdout {
			t.Errorf("orrery %s -h (exit %d) printed:\n%s\nbut orrery help %s printed:\n%s", c.name, hcode, hstderr, c.name, stdout)
		}
	}
	code, stdout, stderr := cli(t, "help", "rnu")
	if code != exitInvalid || stdout != "" || !strings.Contains(stderr, `unknown command "rnu"`) {
		t.Errorf("orrery help rnu: exit %d, stdout %q, stderr %q; want 2 and the unknown command", code, stdout, stderr)
	}
	if code, stdout, _ := cli(t, "help", "help"); code != exitOK || stdout != general {
		t.Errorf("orrery help help: exit %d, printed %q; want the general help", code, stdout)
	}
	if !strings.Contains(general, "orrery help COMMAND") {
		t.Errorf("the general help does not say how to get a command's:\n%s", general)
	}
}
