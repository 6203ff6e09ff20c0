package sshnode

import (
	"context"
	"fmt"
	"strings"

	"orrery/remote"
	"orrery/sshkeep"
)

// The node's directory on its machine holds, beside the socket:
//
//	agent.pid   the agent's process ID
//	agent.exit  its exit status, written by the shell that waits for it
//	            (setsid, so the agent outlives the SSH session) when it
//	            ended; "stopped" after Stop
//	agent.log   the agent's output
//	work/       the agent's work directory

// aliveFunc is a shell function: is process $1 the agent of directory
// $d? (Its command line has $d/work, so that a process ID used again
// after a reboot is not taken for it.)
const aliveFunc = `alive() {
	kill -0 "$1" 2>/dev/null || return 1
	[ ! -r "/proc/$1/cmdline" ] || tr '\0' '\n' < "/proc/$1/cmdline" | grep -qxF -- "$d/work"
}
`

// startScript starts the agent unless it runs, reading the join token
// on its standard input. It prints "running PID", "started PID
// [STATUS]" (STATUS: how the agent before it ended, if it did) or
// "ended STATUS" when the agent ended in a way that starting it again
// would not mend (0: the head ended the experiment or told it to stop;
// 3: the head refused its credentials; stopped: Stop stopped it) and
// force is 0. An agent that has just died may not have its status
// written yet (the check runs as soon as its link ends): the script
// waits up to a second for it. The token reaches the agent through a pipe from printf, a
// shell builtin: it is on no command line.
const startScript = `umask 077
d=%s force=%d
mkdir -p -- "$d/work" && chmod 700 -- "$d" "$d/work" || exit 1
IFS= read -r tok || { echo "no join token on standard input" >&2; exit 1; }
` + aliveFunc + `pid=$(cat -- "$d/agent.pid" 2>/dev/null)
if [ -n "$pid" ] && alive "$pid"; then echo "running $pid"; exit 0; fi
j=0
while [ -n "$pid" ] && [ ! -f "$d/agent.exit" ] && [ $j -lt 10 ]; do j=$((j+1)); sleep 0.1; done
prev=$(cat -- "$d/agent.exit" 2>/dev/null)
if [ "$force" != 1 ]; then
	case $prev in 0|3|stopped) echo "ended $prev"; exit 0;; esac
fi
rm -f -- "$d/agent.pid" "$d/agent.exit"
printf '%%s\n' "$tok" | setsid sh -c 'exec 3<&0
"$@" <&3 3<&- &
echo $! > "$0/agent.pid.new" && mv -f -- "$0/agent.pid.new" "$0/agent.pid"
wait $!
echo $? > "$0/agent.exit.new" && mv -f -- "$0/agent.exit.new" "$0/agent.exit"' "$d" %s >> "$d/agent.log" 2>&1 &
i=0
while [ ! -s "$d/agent.pid" ]; do
	i=$((i+1))
	if [ $i -gt 200 ]; then echo "the agent did not start within 10 s" >&2; exit 1; fi
	sleep 0.05
done
sleep 0.2
if [ -f "$d/agent.exit" ]; then
	echo "the agent exited at once with status $(cat -- "$d/agent.exit"); agent.log: $(tail -n 3 -- "$d/agent.log" | tr '\n' '|')" >&2
	exit 1
fi
echo "started $(cat -- "$d/agent.pid") $prev"
`

// stopScript sends the agent SIGTERM, waits up to n tenths of a second
// for it to end, then sends SIGKILL; it prints "stopped", "killed" or
// "not running", and leaves "stopped" in agent.exit so that no check
// starts the agent again.
const stopScript = `d=%s n=%d
` + aliveFunc + `stopped() {
	j=0
	while [ ! -f "$d/agent.exit" ] && [ $j -lt 10 ]; do j=$((j+1)); sleep 0.1; done
	echo stopped > "$d/agent.exit"
	echo "$1"
	exit 0
}
pid=$(cat -- "$d/agent.pid" 2>/dev/null)
if [ -z "$pid" ] || ! alive "$pid"; then
	[ ! -d "$d" ] || echo stopped > "$d/agent.exit"
	echo "not running"; exit 0
fi
kill -TERM "$pid" 2>/dev/null
i=0
while alive "$pid"; do
	i=$((i+1))
	if [ $i -gt $n ]; then kill -KILL "$pid" 2>/dev/null; stopped killed; fi
	sleep 0.1
done
stopped stopped
`

// check starts the agent when it is not running (see startScript); at
// launch, it starts one that ended by itself too.
func (n *Node) check(ctx context.Context, c *remote.Client, launch bool) error {
	force := 0
	if launch {
		force = 1
	}
	words := make([]string, 0, 16)
	for _, a := range n.agentArgs() {
		words = append(words, sshkeep.ShellQuote(a))
	}
	script := fmt.Sprintf(startScript, sshkeep.ShellQuote(n.dir), force, strings.Join(words, " "))
	sctx, cancel := step(ctx, n.tune.command)
	defer cancel()
	out, errOut, exit, err := c.Run(sctx, script, []byte(n.spec.Token+"\n"))
	if err != nil {
		return err
	}
	if exit != 0 {
		return fmt.Errorf("its agent failed to start in %s: %s", n.dir, sshkeep.Failure(errOut, exit))
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return fmt.Errorf("its agent's start in %s printed %q", n.dir, strings.TrimSpace(string(out)))
	}
	switch {
	case f[0] == "running" && launch:
		n.say(fmt.Sprintf("its agent already runs on %s (pid %s): kept", n.ep, f[1]))
	case f[0] == "started" && launch:
		n.say(fmt.Sprintf("agent started on %s (pid %s)", n.ep, f[1]))
	case f[0] == "started":
		prev := "it was killed"
		if len(f) > 2 {
			prev = "status " + f[2]
		}
		n.say(fmt.Sprintf("its agent had stopped (%s%s); started it again (pid %s)", prev, n.logTail(ctx, c), f[1]))
	case f[0] == "ended" && !n.saidEnd:
		n.say(fmt.Sprintf("its agent ended (%s): not started again", endedWhy(f[1])))
	}
	n.saidEnd = f[0] == "ended"
	return nil
}

// endedWhy says why an agent ended, from its exit status.
func endedWhy(status string) string {
	switch status {
	case "0":
		return "the head ended the experiment, or told it to stop"
	case "3":
		return "the head refused its credentials"
	case "stopped":
		return "stopped"
	}
	return "status " + status
}

// logTail is "; agent.log: LINE | LINE" of the agent's log, or "".
func (n *Node) logTail(ctx context.Context, c *remote.Client) string {
	sctx, cancel := step(ctx, n.tune.command)
	defer cancel()
	return sshkeep.LogTail(sctx, c, n.dir, logName, 3)
}

// stopAgent stops the agent (see stopScript).
func (n *Node) stopAgent(ctx context.Context, c *remote.Client) error {
	tenths := int(n.tune.stopWait.Milliseconds() / 100)
	sctx, cancel := step(ctx, n.tune.stopWait+n.tune.command)
	defer cancel()
	out, errOut, exit, err := c.Run(sctx, fmt.Sprintf(stopScript, sshkeep.ShellQuote(n.dir), tenths), nil)
	if err != nil {
		return err
	}
	if exit != 0 {
		return fmt.Errorf("in %s: %s", n.dir, sshkeep.Failure(errOut, exit))
	}
	said := strings.TrimSpace(string(out))
	n.log.Info("agent stop", "said", said)
	if said == "killed" {
		n.say("its agent did not stop within " + n.tune.stopWait.String() + ": killed")
	}
	return nil
}
