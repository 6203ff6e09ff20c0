package suggest

import "testing"

func TestNearest(t *testing.T) {
	words := []string{"fcfs", "mosix", "fcfs+mosix", "mec", "orrery"}
	for _, c := range []struct{ in, want string }{
		{"fcsf", "fcfs"},    // two edits
		{"orery", "orrery"}, // one edit
		{"mc", "mec"},       // short word, one edit
		{"mx", ""},          // short word, two edits: too far
		{"mosi", "mosix"},   // truncation
		{"slurm", ""},       // nothing near
		{"fcfs+mos", "fcfs+mosix"},
	} {
		if got := Nearest(c.in, words); got != c.want {
			t.Errorf("Nearest(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if got := Nearest("x", nil); got != "" {
		t.Errorf("Nearest with no candidates = %q", got)
	}
}

func TestHints(t *testing.T) {
	if got := DidYouMean("orery", []string{"orrery"}); got != " (did you mean orrery?)" {
		t.Errorf("DidYouMean = %q", got)
	}
	if got := OneOf("zzz", []string{"a", "b", "c"}); got != " (want a, b or c)" {
		t.Errorf("OneOf = %q", got)
	}
	if got := OneOf("zzz", []string{"a"}); got != " (want a)" {
		t.Errorf("OneOf one = %q", got)
	}
	if got := OneOf("zzz", nil); got != "" {
		t.Errorf("OneOf none = %q", got)
	}
}
