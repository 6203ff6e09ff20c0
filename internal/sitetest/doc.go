// Package sitetest is the SSH and site harness that tests of several
// packages share (remote, headctl, cmd/orrery):
//
//   - SSHD starts Debian's OpenSSH sshd on loopback for one test, with
//     its own host keys, a user key it accepts for the current user
//     (root) and a known_hosts file that holds its host key; commands
//     it runs skip the user's ~/.bashrc, and race-built binaries among
//     them do not sleep as they exit. StartAgent runs an ssh-agent
//     holding a key. NeedSSH keeps the developer's own agent out of
//     the test process; tests that use these may run in parallel.
//   - NewSite makes a site: a network namespace joined to this machine's
//     namespace by a veth pair, with its own sshd on the site's address,
//     an iptables firewall (Firewall, IPTables, Packets) and processes
//     run inside it (Run, Start, RunHelper).
//   - WAN puts an emulated wide-area link (package wan) on loopback in
//     front of an address, such as a site's sshd.
//   - NewCPUGroup makes a control group with a CPU quota (package
//     cgroup) for nodes of different speeds.
//
// It is a plain package under internal/ so that the tests of any
// package may import it; it does not import package remote (whose tests
// import it): Endpoint has remote.Endpoint's fields, so
// remote.Endpoint(s.Endpoint()) converts it.
//
// Everything a test makes here is removed when the test ends, also when
// it fails; namespaces and control groups left by a test process that
// was killed are removed by the next one. Tests that need what this
// machine lacks skip, except under CI (CI=true), where .ci/run installs
// it and its absence is a failure.
package sitetest
