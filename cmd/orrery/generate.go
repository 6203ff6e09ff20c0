package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// runGenerate implements `orrery generate`.
func runGenerate(e *env, args []string) int {
	fs := newFlags(e, "generate", "[--format run|jsonl] [-o FILE] [--seed N] [--limit N] [--dialect D] PLAN")
	format := fs.String("format", "run", "output `format`: run (a compiled run file) or jsonl (one JSON object per job)")
	out := fs.String("o", "", "write to `FILE` instead of standard output (replaced only when complete)")
	seed := fs.Uint64("seed", 0, "seed for random values (default: a new random seed, printed on stderr)")
	limit := fs.Int64("limit", -1, "write at most `N` jobs")
	dialect := fs.String("dialect", "", "read the plan as `classic` or modern, whatever it looks like")
	path, status, ok := oneArg(fs, args)
	if !ok {
		return status
	}
	if *format != "run" && *format != "jsonl" {
		fmt.Fprintf(e.stderr, "orrery: --format %q: want run or jsonl\n", *format)
		return exitInvalid
	}
	seedSet := flagGiven(fs, "seed")
	if !seedSet {
		*seed = newSeed()
	}
	l, ok := loadPlan(e, path, *dialect, seed)
	if !ok {
		return exitInvalid
	}
	if !seedSet && l.sweep.Random() {
		fmt.Fprintf(e.stderr, "orrery: random values drawn with seed %d (pass --seed %d to draw them again)\n", *seed, *seed)
	}
	write := l.sweep.WriteRunFile
	if *format == "jsonl" {
		write = l.sweep.WriteJSONL
	}
	if *out == "" {
		if _, err := write(e.stdout, *limit); err != nil {
			fmt.Fprintf(e.stderr, "orrery: write: %v\n", err)
			return exitSystem
		}
		return exitOK
	}
	if err := writeFileAtomic(*out, func(w io.Writer) error { _, err := write(w, *limit); return err }); err != nil {
		fmt.Fprintf(e.stderr, "orrery: -o: %v\n", err)
		if badPath(err) {
			return exitInvalid // a directory that is not there, or not the user's
		}
		return exitSystem
	}
	return exitOK
}

// badPath reports whether err says a path named on the command line
// cannot be used: missing, not a directory, or not permitted.
func badPath(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOTDIR) ||
		errors.Is(err, syscall.EISDIR)
}

// writeFileAtomic writes a file through a temporary file in the same
// directory, renamed into place only when complete, so a failed write
// never leaves a truncated file where a good one was.
func writeFileAtomic(path string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := write(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return os.Rename(f.Name(), path)
}
