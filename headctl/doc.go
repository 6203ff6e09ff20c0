// Package headctl is the root's side of a cluster's head reached by SSH:
// it starts the head and keeps it, over one SSH connection (package
// remote).
//
// Launch connects to the cluster's head machine (its host key checked
// against known_hosts), picks the orrery binary for the machine's
// platform (the root's own, or the cluster's `binary`, checked from its
// ELF header), copies it to $HOME/.orrery/bin/orrery-<16 hex of its
// SHA-256> unless that exact build is there, makes the experiment's
// head directory $HOME/.orrery/h/<ID> (mode 0700) and probes it with
// `orrery head probe`. A head already running there of the same build
// is kept; one of another build is replaced (`orrery head stop`, then a
// start) only when it holds no job, and otherwise kept, which Status
// says. Then Launch asks the machine's sshd for the forwarded Unix
// socket DIR/root.sock, whose connections it relays to the root's TLS
// port, and only then starts the head (`orrery head start`), which
// finds the socket when it dials `unix:DIR/root.sock`. The join token
// goes on the start command's standard input, never on a command line.
//
// Why a forwarded Unix socket: nothing on the cluster's side needs to
// reach the root, so a site that lets in only SSH and lets nothing out
// works; Debian's default sshd allows it (AllowStreamLocalForwarding
// yes), the socket is made mode 0600 (StreamLocalBindMask 0177), so
// only the head's user can use it, and its path is per experiment.
//
// A Head owns one supervisor goroutine (a package sshkeep Keeper),
// which owns the SSH connection, the forward and its relay. Between the commands it runs it sends
// keepalives, each answered within the SSH step timeout or the
// connection is closed (a link that froze during a command is noticed
// within the command timeout), and it probes the head; a head that
// died is started again in the same directory, where it resumes from
// its journal. When
// the connection drops it redials with a doubling backoff (saying so
// through Status at most every StatusEvery), asks for the forward
// again, probes and restarts the head if it died meanwhile; a head that
// still runs is kept. After GiveUp (default: the lease) without a
// connection it gives up: Link reports "lost".
//
// Head.Stop stops the head (`orrery head stop`: its nodes and jobs
// stopped, results kept on its disk) and then closes the forward and
// the connection: what Ctrl-C on the root does to every head.
// Head.Close drops the connection only, leaving the head working
// within its lease, which is what a root killed with -9 amounts to.
//
// Every error is one line that starts with "cluster NAME: " (*Error).
package headctl
