package sim

// Scenario is a simulated experiment: the clusters, the workload, and the
// cases to compare under each policy. A scenario comes from a file (see
// docs/simulator.md) or is one of the built-ins (Builtin).
type Scenario struct {
	Name string
	// Doc is the scenario's description: the comment lines at the top of
	// its file, without the leading "# ".
	Doc      string
	Clusters []Cluster
	// Workloads are the job sets; a case names one (default the first).
	Workloads []Workload
	// Cases are the configurations compared; a scenario without a case
	// line has one case, "all", over every cluster.
	Cases []Case
	// Policies run when the command line names none.
	Policies []string
	// Runs is how many seeded runs each case and policy gets (default 5).
	Runs int
}

// Cluster is a group of nodes behind one dispatcher.
type Cluster struct {
	Name  string
	Nodes []Node
	// Link joins the cluster's dispatcher to each of its nodes: staging
	// and MOSIX moves inside the cluster go over it.
	Link Link
	// WAN joins the grid's root to the cluster: a job given to this
	// cluster stages its input and output over it as well.
	WAN Link
	// NoMigration says nothing migrates processes between its nodes (it
	// runs no MOSIX): a running job there moves only if it checkpoints.
	NoMigration bool
}

// Node is a simulated machine.
type Node struct {
	Name   string
	CPUs   int
	Speed  float64 // GHz per CPU: work in GHz·s ÷ Speed is the CPU time
	Memory int64   // RAM in bytes (0: unlimited)
	Swap   int64   // swap in bytes; resident memory above Memory+Swap does not fit
	// Thrash is how much slower a node's jobs run per unit of memory
	// overflow: with resident memory R above RAM M, jobs run
	// 1 + Thrash·(R−M)/M times slower. Default 100.
	Thrash float64
	// Limit is the node's job limit from a cluster file (0: none given).
	Limit int
}

// Link is a network path: a transfer of b bytes takes Latency + b/Bandwidth
// seconds, one transfer at a time per link end.
type Link struct {
	Bandwidth float64 // bytes per second (0: infinite)
	Latency   float64 // seconds, one way
}

// Workload is the jobs of the experiment.
type Workload struct {
	Name   string
	Groups []JobGroup
	// Order is "random" (a seeded shuffle, the paper's random arrival
	// order; the default) or "given" (groups in file order).
	Order string
}

// JobGroup is Count jobs drawn from the same distributions.
type JobGroup struct {
	Count    int
	Work     Dist  // GHz·s of CPU work
	Memory   Dist  // resident bytes
	StageIn  int64 // bytes copied to the node before the job runs
	StageOut int64 // bytes copied back after it ends
	// Predictable is the share (0 to 1) of the variance of a job's log
	// work that its parameter values explain: what a policy that learns
	// from finished jobs can know in advance. 0: work is unrelated to the
	// parameters.
	Predictable float64
}

// Dist is a distribution of a job quantity.
type Dist struct {
	// Kind is "fixed" (always A), "uniform" (between A and B) or
	// "lognormal" (mean A, coefficient of variation B).
	Kind string
	A, B float64
}

// Case is one configuration of a scenario.
type Case struct {
	Name string
	// Workload names the workload (empty: the first).
	Workload string
	// Clusters names the clusters used; empty means all.
	Clusters []string
	// PerCPU is the job limit as processes per CPU: empty means the
	// node's own limit (or one per CPU); one value applies to every
	// cluster; several give one per cluster, in Clusters order (the
	// paper's CPU-power-weighted split).
	PerCPU []float64
	// PerCPUFor is the same, for one policy only: it wins over PerCPU
	// under that policy (the paper ran the Multi EnFuzion Client at the
	// processes per CPU its Fig. 3 found best, where Orrery chooses).
	PerCPUFor map[string][]float64
	// Policies, when set, replaces the scenario's policies for this case.
	Policies []string
	// Checkpoint says the jobs can checkpoint: a running job may then
	// move to any node, in its cluster or another, whatever migrates
	// processes there.
	Checkpoint bool
	// NoMigration says no cluster of the case migrates processes (as if
	// each said no-migration): without checkpoints, running jobs stay
	// where they start.
	NoMigration bool
	// Paper is the paper's makespan in seconds for this case, by policy.
	Paper map[string]float64
}

// Result is the outcome of one case under one policy over several runs.
type Result struct {
	Case, Policy string
	// Makespans are the completion times of all jobs, one per run that
	// completed, in seconds.
	Makespans []float64
	Mean, SD  float64 // of Makespans
	// Bound is the lower bound on the makespan: the larger of total work
	// ÷ total capacity and the longest job on the fastest CPU (mean over
	// the runs' drawn workloads).
	Bound float64
	// Efficiency is Bound ÷ Mean.
	Efficiency float64
	// Paper is the paper's figure for this case and policy, 0 if none.
	Paper float64
	// Failed, when not empty, says why runs could not complete (MOSIX
	// exhausting a node's swap); Makespans then holds only the runs that
	// did.
	Failed string
	// Decisions counts the scheduling actions of all runs.
	Decisions int64
}
