package sweep

import (
	"hash/fnv"
	"math"
	"math/bits"
	"strconv"
)

// Domain is the values of one parameter, computed on demand: a range of a
// billion values costs no more memory than a range of three.
type Domain interface {
	// Len is the number of values.
	Len() int64
	// Value returns value i (0-based) as it is substituted into commands.
	Value(i int64) string
	// Number returns value i as a number, or NaN for text.
	Number(i int64) float64
}

// cacheLimit is the largest domain whose values are kept as strings.
const cacheLimit = 1 << 16

// list is a domain of listed values.
type list struct {
	vals []string
	nums []float64 // nil for text
}

func (d *list) Len() int64             { return int64(len(d.vals)) }
func (d *list) Value(i int64) string   { return d.vals[i] }
func (d *list) Number(i int64) float64 { return listNumber(d.nums, i) }

func listNumber(nums []float64, i int64) float64 {
	if nums == nil {
		return math.NaN()
	}
	return nums[i]
}

// newList makes a list domain; numeric says whether values are numbers.
func newList(vals []string, numeric bool) *list {
	d := &list{vals: vals}
	if numeric {
		d.nums = make([]float64, len(vals))
		for i, v := range vals {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				f = math.NaN()
			}
			d.nums[i] = f
		}
	}
	return d
}

// materialize turns a small computed domain into a list, so each value is
// formatted once.
func materialize(d Domain) Domain {
	if _, ok := d.(*list); ok || d.Len() > cacheLimit {
		return d
	}
	n := d.Len()
	l := &list{vals: make([]string, n), nums: make([]float64, n)}
	for i := range n {
		l.vals[i] = d.Value(i)
		l.nums[i] = d.Number(i)
	}
	return l
}

// intRange is from, from+step, … (n values).
type intRange struct {
	from, step int64
	n          int64
}

func (d *intRange) Len() int64 { return d.n }
func (d *intRange) int(i int64) int64 {
	return int64(uint64(d.from) + uint64(i)*uint64(d.step))
}
func (d *intRange) Value(i int64) string   { return strconv.FormatInt(d.int(i), 10) }
func (d *intRange) Number(i int64) float64 { return float64(d.int(i)) }

// intSpan returns the number of values of the integer range from..to by
// step, and false when it exceeds an int64.
func intSpan(from, to, step int64) (int64, bool) {
	var diff, st uint64
	if step > 0 {
		diff, st = uint64(to)-uint64(from), uint64(step)
	} else {
		diff, st = uint64(from)-uint64(to), -uint64(step)
	}
	n := diff/st + 1
	if n > math.MaxInt64 || n == 0 {
		return 0, false
	}
	return int64(n), true
}

// floatRange is from + i·step for i < n; the last value is exactly to when
// to lies on the grid.
type floatRange struct {
	from, step, to float64
	n              int64
	onGrid         bool
}

func (d *floatRange) Len() int64 { return d.n }
func (d *floatRange) Number(i int64) float64 {
	if d.onGrid && i == d.n-1 {
		return d.to
	}
	return snapZero(d.from+float64(i)*d.step, d.step)
}
func (d *floatRange) Value(i int64) string { return FormatFloat(d.Number(i)) }

// floatSpan returns the number of values of from..to by step and whether
// to lies on the grid (within 1e-9 relative).
func floatSpan(from, to, step float64) (int64, bool, bool) {
	n := (to - from) / step
	k := math.Round(n)
	onGrid := math.Abs(n-k) <= 1e-9*math.Max(1, math.Abs(n))
	if !onGrid {
		k = math.Floor(n)
	}
	if k+1 >= math.MaxInt64 || math.IsNaN(k) {
		return 0, false, false
	}
	return int64(k) + 1, onGrid, true
}

// points is n float values evenly spaced from from to to inclusive.
type points struct {
	from, to float64
	n        int64
}

func (d *points) Len() int64 { return d.n }
func (d *points) Number(i int64) float64 {
	switch {
	case i == 0:
		return d.from
	case i == d.n-1:
		return d.to
	}
	step := (d.to - d.from) / float64(d.n-1)
	return snapZero(d.from+float64(i)*step, step)
}
func (d *points) Value(i int64) string { return FormatFloat(d.Number(i)) }

// intPoints is n integers evenly spaced from from to to inclusive, each
// rounded to the nearest (halves away from from), in exact arithmetic.
type intPoints struct {
	from, to int64
	n        int64
}

func (d *intPoints) Len() int64 { return d.n }
func (d *intPoints) int(i int64) int64 {
	if d.n == 1 {
		return d.from
	}
	var diff uint64
	down := d.to < d.from
	if down {
		diff = uint64(d.from) - uint64(d.to)
	} else {
		diff = uint64(d.to) - uint64(d.from)
	}
	// off = round(i·diff / (n-1)); the quotient fits 64 bits since i < n.
	den := uint64(d.n - 1)
	hi, lo := bits.Mul64(uint64(i), diff)
	q, r := bits.Div64(hi, lo, den)
	if r >= den-r {
		q++
	}
	if down {
		return int64(uint64(d.from) - q)
	}
	return int64(uint64(d.from) + q)
}
func (d *intPoints) Value(i int64) string   { return strconv.FormatInt(d.int(i), 10) }
func (d *intPoints) Number(i int64) float64 { return float64(d.int(i)) }

// snapZero returns 0 for a value that is only rounding noise around zero
// on a grid of the given step (as -0.3 + 3·0.1 is).
func snapZero(v, step float64) float64 {
	if math.Abs(v) < 1e-9*math.Abs(step) {
		return 0
	}
	return v
}

// random is n values drawn uniformly from [from, to) (floats) or
// [from, to] (integers). Value i is a hash of the seed, the parameter's
// name and i, so any value is found without drawing the ones before it.
type random struct {
	key      uint64
	from, to float64
	ifrom    int64
	ispan    uint64 // to-from+1 for integers; 0 means all 2^64
	n        int64
	integer  bool
}

// newRandom makes a random domain for parameter name.
func newRandom(seed uint64, name string, from, to float64, ifrom, ito int64, n int64, integer bool) *random {
	h := fnv.New64a()
	h.Write([]byte(name))
	return &random{key: seed ^ h.Sum64(), from: from, to: to, ifrom: ifrom,
		ispan: uint64(ito) - uint64(ifrom) + 1, n: n, integer: integer}
}

// splitmix64 is a strong 64-bit mixing function (Steele et al.).
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

func (d *random) bits(i int64) uint64 { return splitmix64(splitmix64(d.key) ^ uint64(i)) }

func (d *random) Len() int64 { return d.n }
func (d *random) int(i int64) int64 {
	h := d.bits(i)
	if d.ispan == 0 {
		return int64(h)
	}
	hi, _ := bits.Mul64(h, d.ispan)
	return int64(uint64(d.ifrom) + hi)
}
func (d *random) Number(i int64) float64 {
	if d.integer {
		return float64(d.int(i))
	}
	u := float64(d.bits(i)>>11) / (1 << 53)
	v := d.from + u*(d.to-d.from)
	if v >= d.to && d.to > d.from {
		v = math.Nextafter(d.to, d.from)
	}
	return v
}
func (d *random) Value(i int64) string {
	if d.integer {
		return strconv.FormatInt(d.int(i), 10)
	}
	return FormatFloat(d.Number(i))
}

// FormatFloat prints v in the shortest form that reads back to the same
// value after rounding to 12 significant digits: 0.3, 2.5, 1.
func FormatFloat(v float64) string {
	if v == 0 {
		return "0"
	}
	r, err := strconv.ParseFloat(strconv.FormatFloat(v, 'g', 12, 64), 64)
	if err != nil {
		r = v
	}
	if a := math.Abs(r); a >= 1e-6 && a < 1e21 {
		return strconv.FormatFloat(r, 'f', -1, 64)
	}
	return strconv.FormatFloat(r, 'g', -1, 64)
}
