package sched

import (
	"math"
	"slices"
)

// Model learns what jobs need from the ones that finished: the logarithm
// of a job's work as a linear function of its parameter values (least
// squares, refitted as observations arrive), its memory, and how much of
// its time goes to staging. It is what the paper left as future work:
// "learning jobs' CPU and memory needs".
type Model struct {
	d        int // parameter count, fixed by the first observation
	n        int
	xtx, xty []float64 // normal equations for log work on (1, params)
	coef     []float64
	sumLog   float64
	sumWork  float64
	mem      float64 // sum of memory over observations that report it
	nmem     int
	stage    float64   // seconds
	wall     float64   // seconds
	next     int       // observation count at the next refit
	version  int       // bumped at each refit
	yy       float64   // sum of squared log work, beside xty
	spread   float64   // the standard deviation of log work about the fit, as of the last refit
	lo, hi   []float64 // each parameter's least and greatest value among the observations
	maxWork  float64   // the most work observed
	stamp    int       // bumped whenever what expect says may change
}

// NewModel returns a model that knows nothing yet.
func NewModel() *Model { return &Model{d: -1} }

// Observe learns from a finished attempt of a job with the given
// parameters on a node of the given speed.
func (m *Model) Observe(params []float64, u Usage, speed float64) {
	work := u.Work
	if work <= 0 && u.Wall > 0 {
		work = (u.Wall - u.Stage).Seconds() * speed
	}
	if u.Memory > 0 {
		m.mem += float64(u.Memory)
		m.nmem++
	}
	m.stage += u.Stage.Seconds()
	m.wall += u.Wall.Seconds()
	if work <= 0 {
		return
	}
	if m.d < 0 {
		m.d = len(params)
		k := m.d + 1
		m.xtx, m.xty = make([]float64, k*k), make([]float64, k)
		m.next = k + 2
	}
	if len(params) != m.d {
		params = nil // a job of another shape: learn the mean only
	}
	y := math.Log(work)
	m.n++
	m.sumLog += y
	m.sumWork += work
	if work > m.maxWork {
		m.maxWork = work
		m.stamp++
	}
	if params == nil && m.d > 0 {
		return
	}
	if m.lo == nil {
		m.lo, m.hi = slices.Clone(params), slices.Clone(params)
	}
	for i, p := range params {
		if p < m.lo[i] || p > m.hi[i] {
			m.lo[i], m.hi[i] = min(m.lo[i], p), max(m.hi[i], p)
			m.stamp++
		}
	}
	k := m.d + 1
	x := func(i int) float64 {
		if i == 0 {
			return 1
		}
		return params[i-1]
	}
	m.yy += y * y
	for i := range k {
		xi := x(i)
		m.xty[i] += xi * y
		for j := range k {
			m.xtx[i*k+j] += xi * x(j)
		}
	}
	if m.n >= m.next {
		m.fit()
		m.next = m.n + max(8, m.n/4)
	}
}

// Ready reports whether the model predicts anything yet.
func (m *Model) Ready() bool { return m != nil && m.version > 0 }

// Observations returns how many finished jobs the model learned from.
func (m *Model) Observations() int { return m.n }

// fit solves the normal equations (with a touch of ridge for parameters
// that never vary).
func (m *Model) fit() {
	k := m.d + 1
	a := make([]float64, k*(k+1))
	trace := 0.0
	for i := range k {
		trace += m.xtx[i*k+i]
	}
	for i := range k {
		for j := range k {
			a[i*(k+1)+j] = m.xtx[i*k+j]
		}
		a[i*(k+1)+i] += 1e-9*trace + 1e-12
		a[i*(k+1)+k] = m.xty[i]
	}
	if coef, ok := solve(a, k); ok {
		m.coef = coef
	}
	m.spread = m.residual()
	m.version++
	m.stamp++
}

// residual is the standard deviation of log work about the fit (about
// its mean without one), from the normal equations' sums: the sum of
// squared residuals of coefficients b is yy - 2·b·xty + b·xtx·b.
func (m *Model) residual() float64 {
	k := m.d + 1
	count := m.xtx[0] // the observations in the sums
	if count < 2 {
		return 0
	}
	var ssr float64
	if m.coef == nil {
		ssr = m.yy - m.xty[0]*m.xty[0]/count
	} else {
		ssr = m.yy
		for i := range k {
			ssr -= 2 * m.coef[i] * m.xty[i]
			for j := range k {
				ssr += m.coef[i] * m.xtx[i*k+j] * m.coef[j]
			}
		}
	}
	dof := max(count-float64(k), 1)
	s := math.Sqrt(max(ssr, 0) / dof)
	if math.IsNaN(s) || math.IsInf(s, 0) {
		return 0
	}
	return s
}

// solve does Gaussian elimination with partial pivoting on the k×(k+1)
// augmented matrix a.
func solve(a []float64, k int) ([]float64, bool) {
	w := k + 1
	for c := range k {
		p := c
		for r := c + 1; r < k; r++ {
			if math.Abs(a[r*w+c]) > math.Abs(a[p*w+c]) {
				p = r
			}
		}
		if a[p*w+c] == 0 {
			return nil, false
		}
		for j := range w {
			a[c*w+j], a[p*w+j] = a[p*w+j], a[c*w+j]
		}
		for r := range k {
			if r == c {
				continue
			}
			f := a[r*w+c] / a[c*w+c]
			for j := c; j < w; j++ {
				a[r*w+j] -= f * a[c*w+j]
			}
		}
	}
	x := make([]float64, k)
	for i := range k {
		x[i] = a[i*w+k] / a[i*w+i]
	}
	return x, true
}

// Work predicts a job's work (seconds on a speed-1 CPU) from its
// parameters; ok is false while the model knows nothing.
func (m *Model) Work(params []float64) (work float64, ok bool) {
	if !m.Ready() {
		return 0, false
	}
	return m.expect(params), true
}

// Spread is how far the model's predictions of work may be off: the
// standard deviation of the logarithm of the finished jobs' work about
// its prediction, as of the last refit (0 while it predicts nothing).
func (m *Model) Spread() float64 {
	if !m.Ready() {
		return 0
	}
	return m.spread
}

// WorkBound predicts a job's work scaled up for the model's
// uncertainty: the prediction times e^(2·Spread), which about 98% of
// jobs stay within when their log work is normal about the fit, and at
// least minBound times the prediction. ok is false while the model
// knows nothing.
func (m *Model) WorkBound(params []float64) (work float64, ok bool) {
	w, ok := m.Work(params)
	if !ok {
		return 0, false
	}
	return w * max(math.Exp(2*m.spread), minBound), true
}

// minBound is the least factor WorkBound scales a prediction by.
const minBound = 1.1

// expect predicts a job's work. A parameter that no two finished jobs
// had at different values says nothing to the fit about its effect (its
// coefficient is whatever the ridge leaves, about 0): a job of a group
// no finished job belonged to would be predicted as short as the groups
// seen, or shorter. Such a job is expected to take twice the most work
// seen, or more if the fit says so: longest-first starts it early, as it
// would start a job it knew to be long, since a long job started last
// costs a sweep far more than a short job started early.
func (m *Model) expect(params []float64) float64 {
	if m.coef == nil || len(params) != m.d {
		return m.sumWork / float64(m.n)
	}
	y := m.coef[0]
	for i, p := range params {
		y += m.coef[i+1] * p
	}
	w := math.Exp(min(y, 700))
	if m.unseen(params) {
		w = max(w, 2*m.maxWork)
	}
	return w
}

// expectJob is expect(j.Params), kept on j until the model changes
// what it would say: the grid and the end game ask it of the same jobs
// at every tick.
func (m *Model) expectJob(j *jobState) float64 {
	if m.coef == nil || len(j.Params) != m.d {
		return m.expect(j.Params) // the mean, which every observation moves
	}
	if j.seenAt != m.stamp+1 {
		j.seen, j.seenAt = m.expect(j.Params), m.stamp+1
	}
	return j.seen
}

// unseen reports whether the job has a value of a parameter that every
// observation had at one other value.
func (m *Model) unseen(params []float64) bool {
	if len(m.lo) != len(params) {
		return false
	}
	for i, p := range params {
		if m.lo[i] == m.hi[i] && p != m.lo[i] {
			return true
		}
	}
	return false
}

// Memory predicts a job's resident memory in bytes (0: unknown).
func (m *Model) Memory() int64 {
	if m == nil || m.nmem == 0 {
		return 0
	}
	return int64(m.mem / float64(m.nmem))
}

// StageShare is the share of a job's wall time spent staging.
func (m *Model) StageShare() float64 {
	if m.wall <= 0 {
		return 0
	}
	return m.stage / m.wall
}

// perCPU chooses a node's job limit: one job per CPU while CPU-bound
// jobs keep it busy, more while staging leaves a CPU idle (enough to
// cover the idle share, at most 4 per CPU), never more than 80% of its
// RAM holds.
func (m *Model) perCPU(n *nodeState) int {
	k := 1
	if s := m.StageShare(); s > 0.02 {
		k = min(4, 1+int(math.Ceil(s/(1-s))))
	}
	limit := k * n.CPUs
	if mem := m.Memory(); mem > 0 && n.Memory > 0 {
		limit = min(limit, int(0.8*float64(n.Memory)/float64(mem)))
	}
	return max(limit, 1)
}
