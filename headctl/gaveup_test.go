package headctl

import "testing"

// TestDecideKeepsGaveUp: a head that stopped for good (its Slurm
// cluster got no node: gave-up) must not be started again by setup on a
// connection made again (setup -> decide -> check starts it when
// decide says actStart); ensure alone honours GaveUp.
func TestDecideKeepsGaveUp(t *testing.T) {
	if got := decide(ProbeReport{Running: false, GaveUp: "cluster hpc: no pilots: sbatch: error: invalid partition specified: nope"}, "b"); got == actStart {
		t.Errorf("decide on a head that gave up: actStart; the supervisor starts it again on every reconnect")
	}
}
