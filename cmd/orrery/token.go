package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"orrery/pki"
)

// tokenUsage is the usage line of `orrery token`.
const tokenUsage = "[--state-dir DIR | PLAN] [--rotate] [--viewer | --metrics | --ca | --revoke NODE | --list]"

// runToken implements `orrery token`: the join token with which nodes
// enrol, the enrolled nodes, and the credentials of the live page and
// /metrics.
func runToken(e *env, args []string) int {
	fs := newFlags(e, "token", tokenUsage)
	stateDir := fs.String("state-dir", "", "state `directory` (default: .orrery beside PLAN, or ./.orrery)")
	rotate := fs.Bool("rotate", false, "replace the join secret and print the new token (enrolled nodes keep working); with --viewer or --metrics, replace that secret instead")
	viewer := fs.Bool("viewer", false, "print the URL of the live page, which carries the viewer secret (the run must have listened: orrery run --listen)")
	metrics := fs.Bool("metrics", false, "print the bearer token with which Prometheus scrapes /metrics")
	ca := fs.Bool("ca", false, "print the certificate authority's certificate (PEM), for a browser or Prometheus to trust")
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
		return fail(exitInvalid, "want at most one plan, got %d arguments (usage: orrery token %s)", len(pos), tokenUsage)
	}
	revoking := flagGiven(fs, "revoke")
	if msg := tokenConflict(*rotate, *viewer, *metrics, *ca, revoking, *list); msg != "" {
		return fail(exitInvalid, "%s", msg)
	}
	switch {
	case revoking && *revoke == "":
		return fail(exitInvalid, "--revoke needs a node ID (see orrery token --list)")
	case len(pos) == 1 && *stateDir != "":
		return fail(exitInvalid, "give --state-dir or a plan, not both")
	}
	dir, status := tokenStateDir(e, *stateDir, pos)
	if status != exitOK {
		return status
	}
	var addr string
	if *viewer {
		// Before anything is made or rotated: without an address there
		// is no URL to print.
		if addr, status = viewerAddr(e, dir); status != exitOK {
			return status
		}
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
	case *viewer:
		return printViewer(e, a, addr, *rotate)
	case *metrics:
		return printMetrics(e, a, *rotate)
	case *ca:
		e.stdout.Write(a.CAPEM())
		return exitOK
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

// tokenConflict says why the actions asked of `orrery token` cannot go
// together, or returns "" when they can: one of --viewer, --metrics,
// --ca, --revoke and --list at most, and --rotate alone or with
// --viewer or --metrics.
func tokenConflict(rotate, viewer, metrics, ca, revoke, list bool) string {
	actions := 0
	for _, on := range []bool{viewer, metrics, ca, revoke, list} {
		if on {
			actions++
		}
	}
	switch {
	case actions > 1:
		return "give one of --viewer, --metrics, --ca, --revoke and --list"
	case rotate && ca:
		return "--rotate replaces the join, viewer or metrics secret, not the CA (a new CA means enrolling every node again)"
	case rotate && (revoke || list):
		return "--rotate goes alone (the join secret) or with --viewer or --metrics, not with --revoke or --list"
	}
	return ""
}

// viewerAddr returns the address the run's port listens on, as the run
// recorded it in the state directory. None recorded (no run has
// listened): exit status 1, what was asked for is not there.
func viewerAddr(e *env, stateDir string) (string, int) {
	addr, err := readPortAddr(stateDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(e.stderr, "orrery: token: --viewer: no run has listened with state in %s; start it with orrery run --listen HOST:PORT, then ask again\n", stateDir)
		return "", exitFailed
	case err != nil:
		fmt.Fprintf(e.stderr, "orrery: token: --viewer: %v\n", err)
		return "", exitSystem
	}
	return addr, exitOK
}

// printViewer prints the URL of the live page, with the viewer secret,
// replaced first when rotate is set.
func printViewer(e *env, a *pki.Authority, addr string, rotate bool) int {
	get := a.ViewerSecret
	if rotate {
		get = a.RotateViewer
	}
	secret, err := get()
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: token: %v\n", err)
		return exitSystem
	}
	fmt.Fprintln(e.stdout, viewerURL(addr, secret))
	return exitOK
}

// viewerURL returns the URL of the live page on the port at addr,
// https://ADDR/login?v=SECRET. An address for every interface (0.0.0.0,
// [::]) becomes this machine's name, as for the join command the run
// prints.
func viewerURL(addr, secret string) string {
	host, port, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err == nil && ip != nil && ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			addr = net.JoinHostPort(name, port)
		}
	}
	u := url.URL{Scheme: "https", Host: addr, Path: "/login", RawQuery: "v=" + url.QueryEscape(secret)}
	return u.String()
}

// printMetrics prints the metrics bearer token, replaced first when
// rotate is set.
func printMetrics(e *env, a *pki.Authority, rotate bool) int {
	get := a.MetricsToken
	if rotate {
		get = a.RotateMetrics
	}
	tok, err := get()
	if err != nil {
		fmt.Fprintf(e.stderr, "orrery: token: %v\n", err)
		return exitSystem
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
