package sim

// The values of a scenario file: numbers, sizes, speeds, bandwidths,
// durations.

import (
	"math"
	"strconv"
	"strings"
)

// integer reads a whole number of at least min.
func (p *parser) integer(v token, what string, min int) (int, bool) {
	n, err := strconv.Atoi(v.text)
	switch {
	case err != nil:
		p.errorf(v, "%s %q: want a whole number such as 4", what, v.text)
	case n < min:
		p.errorf(v, "%s %q: must be at least %d", what, v.text, min)
	default:
		return n, true
	}
	return 0, false
}

// float reads a finite, non-negative decimal number.
func float(s string) (float64, bool) {
	f, err := strconv.ParseFloat(s, 64)
	return f, err == nil && f >= 0 && !math.IsInf(f, 0) && !math.IsNaN(f) && s != "" && s[0] != '+'
}

// number reads a non-negative number.
func (p *parser) number(v token, what string) (float64, bool) {
	f, ok := float(v.text)
	if !ok {
		p.errorf(v, "%s %q: want a number such as 0.5", what, v.text)
	}
	return f, ok
}

// positive checks that a number is above 0.
func (p *parser) positive(v token, what string, f float64) bool {
	if f <= 0 {
		p.errorf(v, "%s %q: must be above 0", what, v.text)
		return false
	}
	return true
}

// withSuffix splits s into a number and one of the suffixes (matched
// without regard to case when fold is set), returning the suffix's
// multiplier; a bare number has multiplier bare (0: not allowed).
func withSuffix(s string, suffixes map[string]float64, bare float64, fold bool) (float64, bool) {
	for suf, mult := range suffixes {
		match := strings.HasSuffix(s, suf) || fold && strings.HasSuffix(strings.ToLower(s), strings.ToLower(suf))
		if match && len(s) > len(suf) {
			f, ok := float(s[:len(s)-len(suf)])
			if ok {
				return f * mult, true
			}
		}
	}
	f, ok := float(s)
	return f * bare, ok && (bare != 0 || f == 0)
}

var (
	sizeSuffixes = map[string]float64{"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40,
		"KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}
	speedSuffixes = map[string]float64{"MHz": 1e-3, "GHz": 1}
	// Bandwidths use the network's decimal prefixes: 100Mb/s is 10^8 bits
	// a second, 12.5 MB/s.
	bandwidthSuffixes = map[string]float64{"b/s": 1. / 8, "Kb/s": 1e3 / 8, "Mb/s": 1e6 / 8, "Gb/s": 1e9 / 8,
		"B/s": 1, "KB/s": 1e3, "MB/s": 1e6, "GB/s": 1e9}
	timeSuffixes = map[string]float64{"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "min": 60, "h": 3600}
)

// size reads bytes: 512M, 1.5G, 4096 (K, M, G, T are powers of 1024).
func (p *parser) size(v token, what string) (int64, bool) {
	f, ok := withSuffix(v.text, sizeSuffixes, 1, false)
	if ok = ok && f < 1<<62; !ok {
		p.errorf(v, "%s %q: want a size such as 256M or 1.5G", what, v.text)
	}
	return int64(math.Round(f)), ok
}

// speed reads a CPU speed in GHz: 500MHz, 0.8GHz or 0.8.
func (p *parser) speed(v token, what string) (float64, bool) {
	f, ok := withSuffix(v.text, speedSuffixes, 1, true)
	if !ok || f <= 0 {
		p.errorf(v, "speed %q: want a speed above 0 such as 500MHz, 1.2GHz or 1.2 (GHz)", what)
		return 0, false
	}
	return f, true
}

// bandwidth reads a link's bandwidth in bytes a second.
func (p *parser) bandwidth(v token, what string) (float64, bool) {
	f, ok := withSuffix(v.text, bandwidthSuffixes, 0, false)
	if !ok || f <= 0 {
		p.errorf(v, "%s bandwidth %q: want a bandwidth such as 100Mb/s, 1Gb/s or 12.5MB/s", what, v.text)
		return 0, false
	}
	return f, true
}

// duration reads seconds: 0.1ms, 150ms, 2s, 14.2h; a bare number is
// seconds only when bareOK (0 is always allowed).
func (p *parser) duration(v token, what string, bareOK bool) (float64, bool) {
	bare := 0.0
	if bareOK {
		bare = 1
	}
	f, ok := withSuffix(v.text, timeSuffixes, bare, false)
	if !ok {
		p.errorf(v, "%s %q: want a time such as 0.1ms, 150ms, 2s or 1.5h", what, v.text)
	}
	return f, ok
}

// work reads CPU work: GHz·s as a bare number, or work units with a "u"
// suffix (see the unit statement); isUnit says which.
func (p *parser) work(v token) (f float64, isUnit, ok bool) {
	s, isUnit := strings.CutSuffix(v.text, "u")
	if f, ok = float(s); !ok {
		p.errorf(v, "work %q: want GHz·s such as 120, or work units such as 1000u", v.text)
	}
	return f, isUnit, ok
}
