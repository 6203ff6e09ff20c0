//go:build race

package sim

// raceEnabled says the tests run under the race detector. The simulator
// runs in one goroutine, so the detector has nothing to find in it and
// only makes it about ten times slower: the heaviest tests skip
// themselves under it, and .ci/run runs this package without -race.
const raceEnabled = true
