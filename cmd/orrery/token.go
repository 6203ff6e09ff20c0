package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"orrery/pki"
)

// runToken implements `orrery token`: the join token with which nodes
// enrol, and the enrolled nodes.
func runToken(e *env, args []string) int {
	fs := newFlags(e, "token", "[--state-dir DIR | PLAN] [--rotate] [--revoke NODE] [--list]")
	stateDir := fs.String("state-dir", "", "state `directory` (default: .orrery beside PLAN, or ./.orrery)")
	rotate := fs.Bool("rotate", false, "replace the join secret and print the new token (enrolled nodes keep working)")
	revoke := fs.String("revoke", "", "revoke the enrolled `node` with this ID: the root refuses it from then on")
	list := fs.Bool("list", false, "list the enrolled nodes")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	fail := func(status int, format string, a ...any) int {
		fmt.Fprintf(e.stderr, "orrery: token: "+format+"\n", a...)
		return status
	}
	if len(pos) > 1 {
		return fail(exitInvalid, "want at most one plan, got %d arguments (usage: orrery token [--state-dir DIR | PLAN] [--rotate] [--revoke NODE] [--list])", len(pos))
	}
	revoking := flagGiven(fs, "revoke")
	actions := 0
	for _, on := range []bool{*rotate, revoking, *list} {
		if on {
			actions++
		}
	}
	switch {
	case actions > 1:
		return fail(exitInvalid, "give one of --rotate, --revoke and --list")
	case revoking && *revoke == "":
		return fail(exitInvalid, "--revoke needs a node ID (see orrery token --list)")
	case len(pos) == 1 && *stateDir != "":
		return fail(exitInvalid, "give --state-dir or a plan, not both")
	}
	dir, status := tokenStateDir(e, *stateDir, pos)
	if status != exitOK {
		return status
	}
	a, err := pki.Open(dir)
	if err != nil {
		return fail(exitSystem, "%v", err)
	}
	switch {
	case revoking:
		return revokeNode(e, a, *revoke)
	case *list:
		return listNodes(e, a)
	case *rotate:
		if err := a.Rotate(); err != nil {
			return fail(exitSystem, "%v", err)
		}
	}
	tok, err := a.Token()
	if err != nil {
		return fail(exitSystem, "%v", err)
	}
	fmt.Fprintln(e.stdout, tok)
	return exitOK
}

// tokenStateDir returns the state directory: --state-dir; else, with a
// plan, the one `orrery run PLAN` uses (.orrery beside the plan); else
// ./.orrery.
func tokenStateDir(e *env, stateDir string, pos []string) (string, int) {
	switch {
	case stateDir != "":
		return stateDir, exitOK
	case len(pos) == 1:
		fi, err := os.Stat(pos[0])
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(e.stderr, "orrery: token: no plan %s (for a state directory, use --state-dir)\n", pos[0])
			return "", exitInvalid
		}
		if err != nil {
			fmt.Fprintf(e.stderr, "orrery: token: plan: %v\n", err)
			return "", exitInvalid
		}
		if fi.IsDir() {
			fmt.Fprintf(e.stderr, "orrery: token: %s is a directory, not a plan (for a state directory, use --state-dir)\n", pos[0])
			return "", exitInvalid
		}
		return filepath.Join(filepath.Dir(pos[0]), ".orrery"), exitOK
	}
	return ".orrery", exitOK
}

// revokeNode revokes an enrolled node.
func revokeNode(e *env, a *pki.Authority, id string) int {
	err := a.Revoke(id)
	if errors.Is(err, pki.ErrUnknownNode) {
		nodes, lerr := a.Nodes()
		var ids []string
		for _, n := range nodes {
			ids = append(ids, n.ID)
		}
		switch {
		case lerr != nil:
			fmt.Fprintf(e.stderr, "orrery: token: --revoke: no node enrolled as %q\n", id)
		case len(ids) == 0:
			fmt.Fprintf(e.stderr, "orrery: token: --revoke: no node enrolled as %q (no node has enrolled yet)\n", id)
		default:
			fmt.Fprintf(e.stderr, "orrery: token: --revoke: no node enrolled as %q (enrolled: %s)\n", id, strings.Join(ids, ", "))
		}
		return exitInvalid
	}
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: token: %v\n", err)
		return exitSystem
	}
	fmt.Fprintf(e.stdout, "revoked node %s: the root refuses its next connection\n", id)
	return exitOK
}

// listNodes prints the enrolled nodes.
func listNodes(e *env, a *pki.Authority) int {
	nodes, err := a.Nodes()
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: token: %v\n", err)
		return exitSystem
	}
	if len(nodes) == 0 {
		fmt.Fprintln(e.stdout, "no node has enrolled yet")
		return exitOK
	}
	w := tabwriter.NewWriter(e.stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "NODE\tENROLLED\tSTATE")
	for _, n := range nodes {
		state := "enrolled"
		if n.Revoked {
			state = "revoked"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\n", n.ID, n.Enrolled.Local().Format(time.DateTime), state)
	}
	w.Flush()
	return exitOK
}
