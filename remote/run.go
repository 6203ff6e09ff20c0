package remote

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"golang.org/x/crypto/ssh"
)

// MaxOutput bounds what Run keeps of each of a command's streams; more
// is an error (commands run by the launcher print little).
const MaxOutput = 4 << 20

// stderrTail is how much of a started process's standard error is kept.
const stderrTail = 64 << 10

// Run runs command (through the remote user's shell) with stdin as its
// standard input and returns its standard output, standard error and
// exit status. Secrets belong in stdin: a command line is visible to
// every user of the remote machine (ps, /proc/PID/cmdline). A non-zero
// exit status is not an error; a command killed by a signal returns
// exit -1 and an error naming the signal. When ctx ends first the
// command is sent SIGKILL and its session closed.
func (c *Client) Run(ctx context.Context, command string, stdin []byte) (stdout, stderr []byte, exit int, err error) {
	return c.run(ctx, command, bytes.NewReader(stdin))
}

func (c *Client) run(ctx context.Context, command string, stdin io.Reader) (stdout, stderr []byte, exit int, err error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, nil, -1, err
	}
	defer s.Close()
	var out, errOut capped
	s.Stdin = stdin
	s.Stdout = &out
	s.Stderr = &errOut
	if err := c.request(ctx, "start command", func() error { return s.Start(command) }); err != nil {
		return nil, nil, -1, err
	}
	done := make(chan error, 1)
	go func() { done <- s.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		s.Signal(ssh.SIGKILL)
		s.Close()
		<-done
		return out.Bytes(), errOut.Bytes(), -1, fmt.Errorf("ssh %s: %s: %w", c.endpoint, command, ctx.Err())
	}
	exit, err = c.exitStatus(command, err)
	if err == nil && (out.over || errOut.over) {
		err = fmt.Errorf("ssh %s: %s: output longer than %d bytes", c.endpoint, command, MaxOutput)
	}
	return out.Bytes(), errOut.Bytes(), exit, err
}

func (c *Client) exitStatus(command string, err error) (int, error) {
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return 0, nil
	case errors.As(err, &ee) && ee.Signal() != "":
		return -1, fmt.Errorf("ssh %s: %s: killed by signal %s", c.endpoint, command, ee.Signal())
	case errors.As(err, &ee):
		return ee.ExitStatus(), nil
	}
	return -1, fmt.Errorf("ssh %s: %s: %v", c.endpoint, command, err)
}

// session opens a session channel within the client's timeout.
func (c *Client) session(ctx context.Context) (*ssh.Session, error) {
	var s *ssh.Session
	err := c.request(ctx, "open session", func() error {
		var err error
		s, err = c.ssh.NewSession()
		return err
	})
	return s, err
}

// Process is a long-running remote command whose standard input and
// output stay open: one of the ways a head's traffic can travel, and
// how a caller hands a started process its credentials.
type Process interface {
	// Stdin is the process's standard input; closing it sends EOF.
	Stdin() io.WriteCloser
	// Stdout is the process's standard output. Read it: a process
	// whose output is not read stops when the channel's window fills.
	Stdout() io.Reader
	// Stderr is the last 64 KiB of the process's standard error.
	Stderr() []byte
	// Wait waits for the process to end and returns its exit status,
	// as Run does.
	Wait() (exit int, err error)
	// Close sends the process SIGKILL and closes its session.
	Close() error
}

// Start starts command on the remote machine and returns at once; ctx
// bounds the start only. The process lives until it ends, Close, or the
// connection ends.
func (c *Client) Start(ctx context.Context, command string) (Process, error) {
	s, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	p := &process{c: c, s: s, command: command}
	if p.stdin, err = s.StdinPipe(); err == nil {
		p.stdout, err = s.StdoutPipe()
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("ssh %s: %v", c.endpoint, err)
	}
	s.Stderr = &p.stderr
	if err := c.request(ctx, "start command", func() error { return s.Start(command) }); err != nil {
		s.Close()
		return nil, err
	}
	return p, nil
}

type process struct {
	c       *Client
	s       *ssh.Session
	command string
	stdin   io.WriteCloser
	stdout  io.Reader
	stderr  tail
}

func (p *process) Stdin() io.WriteCloser { return p.stdin }
func (p *process) Stdout() io.Reader     { return p.stdout }
func (p *process) Stderr() []byte        { return p.stderr.Bytes() }
func (p *process) Wait() (int, error)    { return p.c.exitStatus(p.command, p.s.Wait()) }
func (p *process) Close() error {
	p.s.Signal(ssh.SIGKILL)
	err := p.s.Close()
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return err
}

// capped keeps up to MaxOutput bytes and notes whether there was more.
type capped struct {
	bytes.Buffer
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := MaxOutput - c.Len(); len(p) > room {
		c.over = true
		c.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.Buffer.Write(p)
}

// tail keeps the last stderrTail bytes written to it; it is written by
// the session's copying goroutine and read by the caller.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > stderrTail {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-stderrTail:]...)
	}
	return len(p), nil
}

func (t *tail) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]byte(nil), t.buf...)
}
