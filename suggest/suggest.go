// Package suggest finds the word a user probably meant, for error
// messages such as `unknown policy "fcsf" (did you mean fcfs?)`.
package suggest

import (
	"fmt"
	"strings"
)

// Nearest returns the candidate closest to s by edit distance when it is
// close enough to be a likely misspelling (at most two edits, one for
// words of three letters or fewer) or s is a truncation of it of at
// least three letters; otherwise "".
func Nearest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := distance(s, c); d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(s) <= 3 {
		limit = 1
	}
	if best != "" && (bestD <= limit || len(s) >= 3 && strings.HasPrefix(best, s)) {
		return best
	}
	return ""
}

// DidYouMean returns " (did you mean X?)" for the nearest candidate, or "".
func DidYouMean(s string, candidates []string) string {
	if n := Nearest(s, candidates); n != "" {
		return fmt.Sprintf(" (did you mean %s?)", n)
	}
	return ""
}

// OneOf returns DidYouMean's hint, or else the whole choice: " (want A,
// B or C)".
func OneOf(s string, candidates []string) string {
	if d := DidYouMean(s, candidates); d != "" {
		return d
	}
	switch n := len(candidates); n {
	case 0:
		return ""
	case 1:
		return fmt.Sprintf(" (want %s)", candidates[0])
	default:
		return fmt.Sprintf(" (want %s or %s)", strings.Join(candidates[:n-1], ", "), candidates[n-1])
	}
}

// distance is the Levenshtein distance between a and b; words longer
// than 64 bytes are simply far from everything (bounded work).
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	prev, cur := make([]int, len(b)+1), make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
