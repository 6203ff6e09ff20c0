// Package sshkeep keeps a process on a machine reached over SSH (package
// remote) joined to a port on this one: the supervision that a grid's
// root does for a cluster's head and a head for its nodes over SSH.
//
// A Keeper serves one SSH connection at a time. On it, a hook readies the
// machine (Setup: the binary in place), the machine's sshd forwards a
// Unix socket there whose connections are relayed to Target (a TLS port
// on this machine: the process dials the socket as it would dial the
// port, and nothing on the machine's side needs to reach this one), and
// a hook makes sure the process runs (Check). Between keepalives, each
// answered within Timeout or the connection is closed, Check runs again
// every Probe. When the connection drops, the process goes on by itself
// (it was started detached), and the keeper redials with a doubling
// backoff, asks for the forward again and checks the process; after
// GiveUp without a connection it gives up (Link "lost"). Stop stops the
// process (the Stop hook) and ends the keeper; Close ends the keeper
// and leaves the process running.
//
// One goroutine owns the connection, the forward and its relay from
// Start on; Status lines come from it, one at a time.
package sshkeep
