// Package sshnode is a cluster head's side of a node on another machine
// (`node NAME ssh [USER@]HOST[:PORT]` in the cluster file): it starts
// `orrery agent` there over SSH (package remote) and keeps it joined to
// the head's own TLS port.
//
// Launch connects with the head user's own keys (ssh-agent through
// SSH_AUTH_SOCK, else those of ~/.ssh/id_ed25519, id_ecdsa and id_rsa
// that exist) and checks the machine's host key against the head user's
// ~/.ssh/known_hosts: an unknown or changed key is refused with package
// remote's message, which says how to add it. It copies the head's own
// orrery binary to $HOME/.orrery/bin/orrery-<16 hex of its SHA-256>
// unless that exact build is there (the machine must be of the head's
// platform), and asks the machine's sshd for a forwarded Unix socket,
// $HOME/.orrery/n/<ID>-<NODE>/head.sock, whose connections it relays to
// the head's port. Then it starts the agent detached (setsid, its output
// in agent.log beside the socket) with
//
//	orrery agent --connect unix:DIR/head.sock --token-file /dev/stdin --name NODE --work-dir DIR/work --wait LEASE ...
//
// The join token reaches the agent through a pipe from the remote
// shell, which reads it from the SSH command's standard input: never on
// a command line, where every user of the machine could read it. So the
// node needs nothing but SSH: it dials the head through the SSH
// connection, the way a head behind a firewall dials its root.
//
// A Node's supervisor (package sshkeep) owns the SSH connection, the
// forward and its relay. Between keepalives it checks the agent: one
// that died is started again in the same directory (one that ended
// because the head ended the experiment, or refused it, is left ended).
// When the connection drops, the agent goes on (it runs its jobs and
// redials the socket), and the supervisor redials with a doubling
// backoff, asks for the forward again and checks the agent; after
// GiveUp without a connection it gives up. Node.Stop stops the agent
// (SIGTERM, then SIGKILL after StopWait) and drops the connection;
// Node.Close drops the connection only, leaving the agent to the next
// head of the same identity, which finds it running (a head killed with
// -9 and started again).
//
// Every error is one line that starts with "cluster NAME: node NODE: "
// (a *headctl.Error whose cluster is the cluster's name).
package sshnode
