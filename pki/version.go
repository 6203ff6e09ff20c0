package pki

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
)

// FormatVersion is the version of the formats of the pki directory's
// files (join.secret, viewer.secret, metrics.secret, nodes, revoked;
// the PEM files are standard), kept in pki/version as one line. A
// directory without that file was made before the formats had a
// version: it is version 1, and Open writes the file. A directory of a
// newer version is refused. A change to the format of any of these
// files raises FormatVersion, and Open converts older files (or refuses
// them with a message that says what to do).
const FormatVersion = 1

// versionFile holds the pki directory's format version.
const versionFile = "version"

// ErrNewer is the error of Open for key material written by a newer
// build.
var ErrNewer = errors.New("written by a newer Orrery")

// Check refuses, without changing anything, key material in stateDir
// that this build does not read (as Open would). A state directory with
// no key material yet passes.
func Check(stateDir string) error {
	return checkVersion(stateDir, filepath.Join(stateDir, "pki"))
}

// checkVersion refuses a pki directory whose version this build does
// not read. A missing directory or version file is no error.
func checkVersion(stateDir, dir string) error {
	data, err := readFile(dir, versionFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if abs, e := filepath.Abs(stateDir); e == nil {
		stateDir = abs
	}
	if err != nil {
		return fmt.Errorf("state directory %s: key material version: %w", stateDir, err)
	}
	v, err := strconv.Atoi(strings.TrimSpace(string(data)))
	switch {
	case err != nil || v < 1:
		return fmt.Errorf("state directory %s: pki/%s holds %q, not a version of the key material: give a new --state-dir",
			stateDir, versionFile, strings.TrimSpace(string(data)))
	case v > FormatVersion:
		return fmt.Errorf("state directory %s was %w (key material version %d; this build reads up to %d): use that version, or give a new --state-dir",
			stateDir, ErrNewer, v, FormatVersion)
	}
	return nil
}

// writeVersion records the format version in a pki directory that has
// none (a new one, or one of a build before the formats had a version,
// whose files are version 1). The caller holds the directory's lock.
func writeVersion(dir string) error {
	ok, err := exists(dir, versionFile)
	if err != nil || ok {
		return err
	}
	return writeFileAtomic(dir, versionFile, []byte(strconv.Itoa(FormatVersion)+"\n"))
}
