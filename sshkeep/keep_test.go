package sshkeep

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	for n, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 10 * time.Second, 10 * time.Second} {
		if got := Backoff(n, time.Second, 10*time.Second); got != want {
			t.Errorf("Backoff(%d) = %v, want %v", n, got, want)
		}
	}
	if got := Backoff(1000, time.Second, 30*time.Second); got != 30*time.Second {
		t.Errorf("Backoff(1000) = %v", got)
	}
	if got := Backoff(3, time.Second, 500*time.Millisecond); got != 500*time.Millisecond {
		t.Errorf("Backoff with max below base = %v", got)
	}
}

func TestOneLineFailureQuote(t *testing.T) {
	if got := Failure([]byte("  no such\nfile \t here\n"), 1); got != "no such file here" {
		t.Errorf("Failure = %q", got)
	}
	if got := Failure(nil, 7); got != "exit status 7" {
		t.Errorf("Failure = %q", got)
	}
	if got := Cut("abcdef", 3); got != "abc…" {
		t.Errorf("Cut = %q", got)
	}
	if got := ShellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("ShellQuote = %s", got)
	}
}
