package sim

import (
	"math"
	"math/rand/v2"
)

// job is one simulated job, drawn from a workload.
type job struct {
	index  int64
	work   float64 // GHz·s
	memory int64
	in     int64 // bytes staged in
	out    int64 // bytes staged out
	params []float64
	done   bool
}

// draw draws the jobs of a workload with the given seed, in arrival order.
func draw(w *Workload, seed uint64) []job {
	rng := rand.New(rand.NewPCG(seed, 0x0441e5))
	var jobs []job
	for gi, g := range w.Groups {
		rho := math.Sqrt(min(max(g.Predictable, 0), 1))
		for range g.Count {
			za, eps := rng.NormFloat64(), rng.NormFloat64()
			z := rho*za + math.Sqrt(1-rho*rho)*eps
			jobs = append(jobs, job{
				work:   g.Work.sample(z),
				memory: int64(g.Memory.sample(rng.NormFloat64())),
				in:     g.StageIn,
				out:    g.StageOut,
				params: params(gi, len(w.Groups), za),
			})
		}
	}
	if w.Order != "given" {
		rng.Shuffle(len(jobs), func(i, j int) { jobs[i], jobs[j] = jobs[j], jobs[i] })
	}
	for i := range jobs {
		jobs[i].index = int64(i + 1)
	}
	return jobs
}

// params are a job's parameter values as a learning policy sees them:
// which group it belongs to (one-hot: jobs of a group share the values
// that set their size, like the CPU test's units), and one value that
// explains the job's Predictable share of its size within the group.
func params(group, groups int, z float64) []float64 {
	if groups == 1 {
		return []float64{z}
	}
	p := make([]float64, groups+1)
	p[group] = 1
	p[groups] = z
	return p
}

// sample maps a standard normal draw z to a value of the distribution.
func (d Dist) sample(z float64) float64 {
	switch d.Kind {
	case "uniform":
		return d.A + (d.B-d.A)*phi(z)
	case "lognormal":
		s2 := math.Log(1 + d.B*d.B)
		return math.Exp(math.Log(d.A) - s2/2 + math.Sqrt(s2)*z)
	default:
		return d.A
	}
}

// phi is the standard normal distribution function.
func phi(z float64) float64 { return 0.5 * math.Erfc(-z/math.Sqrt2) }

// bound is the lower bound on the makespan of jobs on nodes: the larger
// of total work ÷ total capacity and the longest job on the fastest CPU.
func bound(jobs []job, nodes []Node) float64 {
	var work, longest, capacity, fastest float64
	for _, j := range jobs {
		work += j.work
		longest = max(longest, j.work)
	}
	for _, n := range nodes {
		capacity += float64(n.CPUs) * n.Speed
		fastest = max(fastest, n.Speed)
	}
	if capacity == 0 {
		return math.Inf(1)
	}
	return max(work/capacity, longest/fastest)
}

// meanSD returns the mean and the sample standard deviation.
func meanSD(xs []float64) (mean, sd float64) {
	if len(xs) == 0 {
		return math.NaN(), math.NaN()
	}
	for _, x := range xs {
		mean += x
	}
	mean /= float64(len(xs))
	if len(xs) < 2 {
		return mean, 0
	}
	for _, x := range xs {
		sd += (x - mean) * (x - mean)
	}
	return mean, math.Sqrt(sd / float64(len(xs)-1))
}
