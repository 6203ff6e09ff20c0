package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"orrery/internal/atomicfile"
)

// portAddrFile is the file in the state directory that holds the
// address on which the run's port listens (host:port, one line), for
// `orrery token --viewer` to print the page's URL.
const portAddrFile = "port.addr"

// recordPortAddr records addr, the address (host:port) on which browsers
// reach the run's port, in stateDir/port.addr. The file is written whole
// to a temporary file of mode 0600, synced and renamed into place, so a
// reader sees the old address or the new, never part of one.
func recordPortAddr(stateDir, addr string) error {
	if err := checkPortAddr(addr); err != nil {
		return fmt.Errorf("record the port's address %q: %w", addr, err)
	}
	err := atomicfile.Write(stateDir, portAddrFile, []byte(addr+"\n"), 0o600)
	if err != nil {
		return fmt.Errorf("record the port's address: %w", err)
	}
	return nil
}

// readPortAddr returns the address recorded by recordPortAddr in
// stateDir. When none was recorded the error wraps fs.ErrNotExist.
func readPortAddr(stateDir string) (string, error) {
	path := filepath.Join(stateDir, portAddrFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	addr := strings.TrimSpace(string(data))
	if err := checkPortAddr(addr); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return addr, nil
}

// checkPortAddr checks that addr is host:port with a host and a port a
// browser can use in a URL.
func checkPortAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return errors.New("not host:port")
	}
	if host == "" || strings.ContainsFunc(host, func(r rune) bool {
		return r <= ' ' || r == 0x7f || strings.ContainsRune("/?#@\\[]", r)
	}) {
		return errors.New("not a host name or address")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return errors.New("not a port from 1 to 65535")
	}
	return nil
}

// forgetPortAddr removes the recorded address when the run stops
// listening, so that `orrery token --viewer` never links to a port that
// is gone.
func forgetPortAddr(stateDir string) {
	os.Remove(filepath.Join(stateDir, portAddrFile))
}
