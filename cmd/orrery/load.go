package main

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"orrery/plan"
	"orrery/sweep"
)

// loaded is a plan read from a file and its sweep.
type loaded struct {
	plan  *plan.Plan
	sweep *sweep.Sweep
}

// loadPlan reads, checks and resolves the plan at path. It prints every
// error to stderr and returns false when the plan is invalid.
func loadPlan(e *env, path string, dialect string, seed *uint64) (*loaded, bool) {
	p, ok := parsePlan(e, path, dialect)
	if !ok {
		return nil, false
	}
	s, err := sweep.New(p, sweep.Options{Root: filepath.Dir(path), Seed: *seed})
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return nil, false
	}
	return &loaded{plan: p, sweep: s}, true
}

// parsePlan reads and checks the plan at path, printing every error.
func parsePlan(e *env, path string, dialect string) (*plan.Plan, bool) {
	var opts plan.Options
	if dialect != "" {
		d, err := plan.ParseDialect(dialect)
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: --dialect: %v\n", err)
			return nil, false
		}
		opts.Dialect = &d
	}
	src, err := readPlanFile(path)
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: %v\n", err)
		return nil, false
	}
	p, err := plan.Parse(path, src, opts)
	if err != nil {
		fmt.Fprintln(e.stderr, err)
		return nil, false
	}
	return p, true
}

// maxPlanSize bounds what is read as a plan: a run file of ten million
// jobs is well under it.
const maxPlanSize = 1 << 30

// readPlanFile reads a plan file, refusing directories and huge files.
func readPlanFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fmt.Errorf("%s is a directory, not a plan file", path)
	}
	if st.Size() > maxPlanSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; not a plan file", path, maxPlanSize)
	}
	// Read into a buffer of the file's size (plus one byte to see the
	// end), not a growing one: a big run file costs its size once.
	buf := bytes.NewBuffer(make([]byte, 0, st.Size()+1))
	_, err = buf.ReadFrom(io.LimitReader(f, maxPlanSize+1))
	src := buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if len(src) > maxPlanSize {
		return nil, fmt.Errorf("%s: larger than %d bytes; not a plan file", path, maxPlanSize)
	}
	return src, nil
}

// newSeed returns a random seed for an experiment that was given none.
func newSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:]) >> 1 // positive as an int64, for stores and JSON
}
