package remote

import (
	"context"
	"testing"
	"time"

	"orrery/internal/sitetest"
)

// testSSHD is Debian's OpenSSH sshd, started by a test on 127.0.0.1
// (sitetest.SSHD), with what remote's tests dial it with.
type testSSHD struct {
	*sitetest.Server
}

// startSSHD starts sshd and stops it when the test ends.
func startSSHD(t *testing.T) *testSSHD {
	t.Helper()
	return &testSSHD{sitetest.SSHD(t)}
}

func (s *testSSHD) endpoint() Endpoint { return Endpoint(s.Endpoint()) }

func (s *testSSHD) options() Options {
	return Options{Identity: s.Identity, KnownHosts: s.KnownHosts, Timeout: 20 * time.Second}
}

// dial connects with the test's key and closes the client when the
// test ends (before sshd stops).
func (s *testSSHD) dial(t *testing.T) *Client {
	t.Helper()
	c, err := Dial(context.Background(), s.endpoint(), s.options())
	if err != nil {
		t.Fatalf("Dial: %v\nsshd:\n%s", err, s.Log())
	}
	t.Cleanup(func() { c.Close() })
	return c
}
