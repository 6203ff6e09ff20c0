package sweep_test

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"testing"

	"orrery/sweep"
)

func TestRanges(t *testing.T) {
	tests := []struct {
		name, decl string
		want       string // values separated by blanks
	}{
		// Float steps: computed as A + i·S, printed in the shortest form.
		{"tenths", "float range from 0 to 1 step 0.1", "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1"},
		{"end on the grid after rounding", "float range from 0.1 to 0.3 step 0.1", "0.1 0.2 0.3"},
		{"end on the grid, 0.7/0.1", "float range from 0 to 0.7 step 0.1", "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7"},
		{"end off the grid", "float range from 0 to 1 step 0.3", "0 0.3 0.6 0.9"},
		{"end just past the grid", "float range from 0 to 1.05 step 0.1", "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1"},
		{"float without step", "float range from 0.5 to 2.5", "0.5 1.5 2.5"},
		{"float without step, end off the grid", "float range from 0.5 to 3", "0.5 1.5 2.5"},
		{"float single point", "float range from 2.5 to 2.5", "2.5"},
		{"float negative step", "float range from 1 to 0 step -0.25", "1 0.75 0.5 0.25 0"},
		{"float negative step off the grid", "float range from 1 to -0.2 step -0.5", "1 0.5 0"},
		{"float negative values", "float range from -1 to -0.5 step 0.25", "-1 -0.75 -0.5"},
		{"float crossing zero", "float range from -0.3 to 0.3 step 0.1", "-0.3 -0.2 -0.1 0 0.1 0.2 0.3"},
		{"float big step", "float range from 0 to 1e6 step 2.5e5", "0 250000 500000 750000 1000000"},
		{"exponent literals", "float range from 1e-3 to 3e-3 step 1e-3", "0.001 0.002 0.003"},

		// Integers.
		{"integer without step", "integer range from -2 to 2", "-2 -1 0 1 2"},
		{"integer step off the grid", "integer range from 1 to 10 step 4", "1 5 9"},
		{"integer step on the grid", "integer range from 0 to 10 step 5", "0 5 10"},
		{"integer negative step", "integer range from 10 to 1 step -4", "10 6 2"},
		{"integer negative step on the grid", "integer range from 10 to 0 step -5", "10 5 0"},
		{"integer single", "integer range from 4 to 4", "4"},

		// Points: N values evenly spaced, both ends included.
		{"float points", "float range from 0 to 1 points 5", "0 0.25 0.5 0.75 1"},
		{"float points thirds", "float range from 0 to 1 points 4", "0 0.333333333333 0.666666666667 1"},
		{"float points tenths", "float range from 0 to 1 points 11", "0 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9 1"},
		{"float points descending", "float range from 1 to 0 points 3", "1 0.5 0"},
		{"float one point is A", "float range from 0.5 to 9 points 1", "0.5"},
		{"integer points rounded", "integer range from 0 to 10 points 4", "0 3 7 10"},
		{"integer points exact", "integer range from 0 to 3 points 4", "0 1 2 3"},
		{"integer points descending", "integer range from 10 to 0 points 3", "10 5 0"},
		{"integer points negative", "integer range from -10 to 10 points 3", "-10 0 10"},
		{"integer one point is A", "integer range from 7 to 9 points 1", "7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := paramValues(t, tt.decl)
			if want := strings.Fields(tt.want); !slices.Equal(got, want) {
				t.Errorf("%s:\n got %q\nwant %q", tt.decl, got, want)
			}
		})
	}
}

// TestIntegerPointsExact: integer points are computed without losing
// digits: the first value is A and the last is B even where a float64
// cannot hold them.
func TestIntegerPointsExact(t *testing.T) {
	for _, tt := range []struct{ decl, want string }{
		{"integer range from 9007199254740993 to 9007199254740995 points 3", "9007199254740993 9007199254740994 9007199254740995"},
		{"integer range from 9007199254740993 to 9007199254740995 points 1", "9007199254740993"},
		{"integer range from -9007199254740995 to -9007199254740993 points 3", "-9007199254740995 -9007199254740994 -9007199254740993"},
	} {
		if got, want := paramValues(t, tt.decl), strings.Fields(tt.want); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", tt.decl, got, want)
		}
	}
}

// TestFloatStepsMatchDecimals checks long float ranges value by value
// against the decimal each should print as: value i of 0 to 10 step 0.01
// is i/100. The second range is too long to be kept as a list, so both
// ways of producing values are covered.
func TestFloatStepsMatchDecimals(t *testing.T) {
	for _, tt := range []struct {
		decl string
		n    int
		div  float64
	}{
		{"float range from 0 to 10 step 0.01", 1001, 100},
		{"float range from 0 to 100 step 0.001", 100001, 1000},
	} {
		s := build(t, withMain("parameter x "+tt.decl), sweep.Options{})
		d := s.Domains[0]
		if d.Len() != int64(tt.n) {
			t.Fatalf("%s: %d values, want %d", tt.decl, d.Len(), tt.n)
		}
		bad := 0
		for i := range d.Len() {
			want := strconv.FormatFloat(float64(i)/tt.div, 'f', -1, 64)
			if got := d.Value(i); got != want && bad < 5 {
				t.Errorf("%s: value %d is %q, want %q", tt.decl, i, got, want)
				bad++
			}
			if got := d.Number(i); math.Abs(got-float64(i)/tt.div) > 1e-9 {
				t.Fatalf("%s: Number(%d) = %v", tt.decl, i, got)
			}
		}
	}
}

func TestFormatFloat(t *testing.T) {
	for _, tt := range []struct {
		v    float64
		want string
	}{
		{0.1 + 0.2, "0.3"},
		{0.30000000000000004, "0.3"},
		{2.5, "2.5"},
		{1, "1"},
		{-1, "-1"},
		{0, "0"},
		{100, "100"},
		{1.0 / 3, "0.333333333333"},
		{-45 + 3*2.5, "-37.5"},
		{123456.789, "123456.789"},
	} {
		if got := sweep.FormatFloat(tt.v); got != tt.want {
			t.Errorf("FormatFloat(%v) = %q, want %q", tt.v, got, tt.want)
		}
		// It reads back to the value rounded to 12 significant digits.
		r, _ := strconv.ParseFloat(strconv.FormatFloat(tt.v, 'g', 12, 64), 64)
		if back, err := strconv.ParseFloat(sweep.FormatFloat(tt.v), 64); err != nil || back != r {
			t.Errorf("FormatFloat(%v) reads back as %v, %v", tt.v, back, err)
		}
	}
}

func TestRangeErrors(t *testing.T) {
	for _, decl := range []string{
		"float range from 0 to 1 step 0",
		"float range from 0 to 1 step -0.1",
		"float range from 1 to 0 step 0.1",
		"integer range from 1 to 10 step -1",
		"integer range from 10 to 1 step 2",
		// Integer points that rounding would repeat.
		"integer range from 0 to 2 points 4",
		"integer range from 5 to 0 points 7",
		"integer range from 0 to 1 points 3",
	} {
		errs := buildErr(t, withMain("parameter speed "+decl), sweep.Options{})
		if !strings.Contains(errs[0].Msg, "speed") {
			t.Errorf("%s: error %q does not name the parameter", decl, errs[0].Error())
		}
		if errs[0].Pos.Line != 1 {
			t.Errorf("%s: error %q not on line 1", decl, errs[0].Error())
		}
	}
}

func TestRandomReproducible(t *testing.T) {
	src := withMain(`
parameter f float random from 0 to 1 points 5
parameter i integer random from 1 to 1000000 points 3
parameter k text select anyof a b`)
	draw := func(seed uint64) [][]string {
		s := build(t, src, sweep.Options{Seed: seed})
		if s.Seed != seed {
			t.Errorf("Seed = %d, want %d recorded", s.Seed, seed)
		}
		return valuesOf(allJobs(t, s))
	}
	a, b := draw(1), draw(1)
	if !slices.EqualFunc(a, b, slices.Equal) {
		t.Errorf("seed 1 twice gives different jobs:\n%q\n%q", a, b)
	}
	if len(a) != 5*3*2 {
		t.Fatalf("%d jobs, want 30", len(a))
	}
	for _, seed := range []uint64{0, 2, 1 << 40} {
		c := draw(seed)
		for col, name := range []string{"f", "i"} {
			same := true
			for j := range a {
				same = same && a[j][col] == c[j][col]
			}
			if same {
				t.Errorf("seed 1 and seed %d draw the same values of %s", seed, name)
			}
		}
	}
	// Points draws distinct values, each job keeps its draw: the first
	// parameter's 5 values are not all one.
	vals := map[string]bool{}
	for _, j := range a {
		vals[j[0]] = true
	}
	if len(vals) != 5 {
		t.Errorf("5 random points gave %d distinct values", len(vals))
	}
}

func TestRandomFloatsInHalfOpenRange(t *testing.T) {
	for _, seed := range []uint64{0, 1, 99} {
		s := build(t, withMain("parameter x float random from -2 to 3 points 5000"), sweep.Options{Seed: seed})
		d := s.Domains[0]
		if d.Len() != 5000 {
			t.Fatalf("%d values, want 5000", d.Len())
		}
		var bins [5]int
		for i := range d.Len() {
			v, err := strconv.ParseFloat(d.Value(i), 64)
			if err != nil || v < -2 || v >= 3 {
				t.Fatalf("seed %d: value %q is not in [-2, 3)", seed, d.Value(i))
			}
			if n := d.Number(i); n < -2 || n >= 3 {
				t.Fatalf("seed %d: Number(%d) = %v is not in [-2, 3)", seed, i, n)
			}
			bins[int(v+2)]++
		}
		for b, n := range bins {
			if n < 850 || n > 1150 { // 1000 expected; 1150 is over 5 standard deviations
				t.Errorf("seed %d: %d of 5000 values in [%d, %d): not uniform", seed, n, b-2, b-1)
			}
		}
	}
}

func TestRandomIntegersInclusive(t *testing.T) {
	for _, seed := range []uint64{0, 1, 99} {
		s := build(t, withMain("parameter x integer random from -1 to 2 points 800"), sweep.Options{Seed: seed})
		count := map[string]int{}
		for _, v := range domainValues(s.Domains[0]) {
			count[v]++
		}
		for v, n := range count {
			if v != "-1" && v != "0" && v != "1" && v != "2" {
				t.Errorf("seed %d: value %q (%d times) is not in [-1, 2]", seed, v, n)
			}
		}
		for _, v := range []string{"-1", "0", "1", "2"} {
			if count[v] < 140 { // 200 expected
				t.Errorf("seed %d: %q drawn %d times of 800: both ends are included", seed, v, count[v])
			}
		}
	}
	s := build(t, withMain("parameter x integer random from 5 to 5 points 3"), sweep.Options{Seed: 7})
	if got := domainValues(s.Domains[0]); !slices.Equal(got, []string{"5", "5", "5"}) {
		t.Errorf("random from 5 to 5: %q", got)
	}
}

func TestRandomWithoutPointsIsOneValue(t *testing.T) {
	s := build(t, withMain("parameter x float random from 1 to 2\nparameter y integer random from 1 to 6"), sweep.Options{Seed: 5})
	for i, d := range s.Domains {
		if d.Len() != 1 {
			t.Errorf("%s: %d values, want 1", s.Names[i], d.Len())
		}
	}
	if n, _ := s.Count(); n != 1 {
		t.Errorf("Count() = %d, want 1", n)
	}
}

// TestRandomRecordedInRunFile: a run file keeps the values drawn, and says
// which seed drew them.
func TestRandomRecordedInRunFile(t *testing.T) {
	s := build(t, withMain("parameter x float random from 0 to 1 points 4\nparameter y integer range from 1 to 2"), sweep.Options{Seed: 123456789})
	var buf strings.Builder
	if _, err := s.WriteRunFile(&buf, -1); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "123456789") {
		t.Errorf("the run file does not record the seed:\n%s", buf.String())
	}
	roundTrip(t, s) // read back with another seed: same values
}
