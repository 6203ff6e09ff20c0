package head

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"orrery/batch"
	"orrery/clusterfile"
	"orrery/dispatch"
	"orrery/internal/slurmtest"
	"orrery/pki"
	"orrery/port"
	"orrery/protocol"
	"orrery/slurm"
)

// The boot server attacked: every test below is a request that would be
// served, or a peer that would get through, were the defence missing.

// fakeCreds is a batch system's credentials in memory: a credential is
// the bytes minted for a claim, and verifying it removes it, as
// munged's replay cache refuses one shown twice.
type fakeCreds struct {
	mu      sync.Mutex
	claims  map[string]batch.Claim
	calls   int
	block   chan struct{} // when set, Verify waits for it to close (or ctx)
	entered chan struct{} // when set, Verify says here that it started
}

func newFakeCreds() *fakeCreds { return &fakeCreds{claims: map[string]batch.Claim{}} }

func (c *fakeCreds) CredentialCommand() string { return "fake-munge" }

func (c *fakeCreds) Verify(ctx context.Context, cred []byte) (batch.Claim, error) {
	c.mu.Lock()
	c.calls++
	block, entered := c.block, c.entered
	c.mu.Unlock()
	if entered != nil {
		entered <- struct{}{}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return batch.Claim{}, ctx.Err()
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	cl, ok := c.claims[string(cred)]
	if !ok {
		return batch.Claim{}, errors.New("munge: Invalid or replayed credential")
	}
	delete(c.claims, string(cred))
	return cl, nil
}

// mint makes a fresh valid credential for the claim, of at least pad
// bytes.
func (c *fakeCreds) mint(uid int, job string, pad int) []byte {
	b := make([]byte, 16)
	rand.Read(b)
	cred := "FAKEMUNGE:" + hex.EncodeToString(b) + ":"
	if len(cred) < pad {
		cred += strings.Repeat("A", pad-len(cred))
	}
	c.mu.Lock()
	c.claims[cred] = batch.Claim{UID: uid, Job: batch.JobID(job)}
	c.mu.Unlock()
	return []byte(cred)
}

func (c *fakeCreds) verified() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

// credBatch is the fake batch system with credentials.
type credBatch struct {
	*fakeBatch
	*fakeCreds
}

// recDisp records the nodes that joined the head's port.
type recDisp struct {
	mu     sync.Mutex
	joined []string
}

func (d *recDisp) Joined(n dispatch.Node, j dispatch.Joining) {
	d.mu.Lock()
	d.joined = append(d.joined, j.Register.Name)
	d.mu.Unlock()
}
func (d *recDisp) Ended(dispatch.Node, protocol.Event)         {}
func (d *recDisp) Heartbeat(dispatch.Node, protocol.Heartbeat) {}
func (d *recDisp) Gone(dispatch.Node, error)                   {}

func (d *recDisp) names() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]string(nil), d.joined...)
}

// bootFix is a Slurm cluster head with its real port (startFar: TLS,
// ALPN, the boot server wired in) and its real pilot loop over the fake
// batch system.
type bootFix struct {
	t     *testing.T
	h     *Head
	fb    *fakeBatch
	creds *fakeCreds // nil: the batch system has none
	disp  *recDisp
	addr  string
	pool  *x509.CertPool
	token []byte // the join token file
	self  []byte // the head's executable
	uid   int
}

func newBootFix(t *testing.T, withCreds bool) *bootFix {
	t.Helper()
	f := &bootFix{t: t, fb: &fakeBatch{}, disp: &recDisp{}, uid: os.Getuid()}
	var sys batch.System = f.fb
	if withCreds {
		f.creds = newFakeCreds()
		sys = credBatch{f.fb, f.creds}
	}
	dir := t.TempDir()
	f.self = make([]byte, 300<<10)
	rand.Read(f.self)
	self := filepath.Join(t.TempDir(), "orrery")
	if err := os.WriteFile(self, f.self, 0o755); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var said []string
	h, err := New(Config{Dir: dir, Self: self,
		Cluster: clusterfile.Cluster{Name: "hpc", Listen: "127.0.0.1:0", Slurm: &clusterfile.Slurm{Pilots: 2, CPUs: 1, Time: time.Hour}},
		Pilots:  PilotOptions{System: sys, Poll: 20 * time.Millisecond, JoinWait: time.Hour},
		Status:  func(s string) { mu.Lock(); said = append(said, s); mu.Unlock() }})
	if err != nil {
		t.Fatal(err)
	}
	h.stop = func(error) {}
	if h.j, err = openJournal(filepath.Join(dir, "journal")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.j.close() })
	f.h = h
	far := h.startFar(f.disp)
	if far == nil {
		t.Fatalf("no port: %q", said)
	}
	t.Cleanup(func() { far.stop(h) })
	mu.Lock()
	for _, s := range said {
		if a, ok := strings.CutPrefix(s, "nodes join the cluster at "); ok {
			f.addr, _, _ = strings.Cut(a, " ")
		}
	}
	mu.Unlock()
	if f.addr == "" {
		t.Fatalf("the port's address is not said: %q", said)
	}
	auth, err := pki.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	f.pool = x509.NewCertPool()
	f.pool.AddCert(auth.CACert())
	if f.token, err = os.ReadFile(filepath.Join(dir, JoinTokenFile)); err != nil || len(bytes.TrimSpace(f.token)) == 0 {
		t.Fatalf("join token file: %q, %v", f.token, err)
	}
	// Work comes: the pilot loop submits two pilots (101, 102), pending.
	hand(h, 1, 4)
	f.waitPilots("pilots 101 and 102 pending", func(st map[string]string) bool {
		return st["101"] == protocol.PilotPending && st["102"] == protocol.PilotPending
	})
	return f
}

// waitPilots waits until the head's published pilots, by ID, satisfy ok.
func (f *bootFix) waitPilots(what string, ok func(map[string]string) bool) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := map[string]string{}
		f.h.mu.Lock()
		for _, p := range f.h.pilots {
			st[p.ID] = p.State
		}
		f.h.mu.Unlock()
		if ok(st) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%s: the head's pilots are %v", what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dial opens a TLS connection to the head's port as a pilot's script
// does: the head's CA, and the given ALPN.
func (f *bootFix) dial(alpn ...string) (*tls.Conn, error) {
	raw, err := net.DialTimeout("tcp", f.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	tc := tls.Client(raw, &tls.Config{RootCAs: f.pool, ServerName: "127.0.0.1", NextProtos: alpn, MinVersion: tls.VersionTLS13})
	if err := tc.Handshake(); err != nil {
		raw.Close()
		return nil, fmt.Errorf("TLS handshake: %w", err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; len(alpn) > 0 && got != alpn[0] {
		raw.Close()
		return nil, fmt.Errorf("ALPN %q negotiated, want %q", got, alpn[0])
	}
	return tc, nil
}

// mustDial is dial, on the test's goroutine.
func (f *bootFix) mustDial(alpn ...string) *tls.Conn {
	f.t.Helper()
	tc, err := f.dial(alpn...)
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { tc.Close() })
	return tc
}

// reply is the head's answer to one request.
type reply struct {
	code int
	hdr  http.Header
	body []byte
}

// send sends one raw HTTP/1.1 request (its target as written) over a
// new connection with ALPN http/1.1, and reads the answer.
func (f *bootFix) send(method, target string, body []byte) (reply, error) {
	tc, err := f.dial(port.ALPNHTTP)
	if err != nil {
		return reply{}, err
	}
	defer tc.Close()
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: orrery\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", method, target, len(body))
	if _, err := tc.Write(append([]byte(req), body...)); err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, target, err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: %w", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return reply{}, fmt.Errorf("%s %s: reading the answer: %w", method, target, err)
	}
	return reply{resp.StatusCode, resp.Header, b}, nil
}

// do is send, on the test's goroutine.
func (f *bootFix) do(method, target string, body []byte) reply {
	f.t.Helper()
	r, err := f.send(method, target, body)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

// refused checks that r is a refusal with code, and carries neither the
// join token nor its secret nor the executable.
func (f *bootFix) refused(what string, r reply, codes ...int) {
	f.t.Helper()
	if !slices.Contains(codes, r.code) {
		f.t.Errorf("%s: %d %q, want %v", what, r.code, truncate(string(r.body), 200), codes)
	}
	noSecret(f.t, what, r.body, f.token)
	if len(r.body) > 64 && bytes.Contains(f.self, r.body[:64]) {
		f.t.Errorf("%s: the refusal holds the executable", what)
	}
}

// noSecret fails when body holds the join token or its secret.
func noSecret(t *testing.T, what string, body, token []byte) {
	t.Helper()
	tok := strings.TrimSpace(string(token))
	secret := tok[strings.LastIndex(tok, ".")+1:]
	if strings.Contains(string(body), tok) || len(secret) >= 16 && strings.Contains(string(body), secret) {
		t.Errorf("%s: the answer holds the join secret: %q", what, body)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// otherUID is a user that is not the head's.
func otherUID() int {
	if os.Getuid() == 1000 {
		return 1001
	}
	return 1000
}

// TestBootAttackRefusals: every way in without a valid, fresh
// credential of the head's user naming one of its live pilots, on one
// of the two boot paths exactly, is refused, before anything is served
// and without the join secret in the answer.
func TestBootAttackRefusals(t *testing.T) {
	f := newBootFix(t, true)
	uid := f.uid

	t.Run("no body", func(t *testing.T) {
		f.refused("POST without a credential", f.do("POST", BootToken, nil), http.StatusUnauthorized)
		if n := f.creds.verified(); n != 0 {
			t.Errorf("%d verifications for an empty body", n)
		}
	})
	t.Run("GET", func(t *testing.T) {
		before := f.creds.verified()
		for _, m := range []string{"GET", "PUT", "DELETE", "OPTIONS"} {
			for _, p := range []string{BootToken, BootBinary} {
				f.refused(m+" "+p+" with a valid credential", f.do(m, p, f.creds.mint(uid, "101", 0)), http.StatusMethodNotAllowed)
			}
		}
		if n := f.creds.verified() - before; n != 0 {
			t.Errorf("%d credentials verified for requests that are not POSTs", n)
		}
	})
	t.Run("unknown path", func(t *testing.T) {
		before := f.creds.verified()
		for _, p := range []string{"/", "/pilot", "/pilot/", "/pilot/token/", "/pilot/TOKEN", "/pilot/join.token",
			"/pilot/orrery.sig", "/metrics", "/pilot/token%00", "/pilot/token;x", "/pilot/token%20", "*"} {
			f.refused("POST "+p+" with a valid credential", f.do("POST", p, f.creds.mint(uid, "101", 0)), http.StatusNotFound, http.StatusBadRequest)
		}
		if n := f.creds.verified() - before; n != 0 {
			t.Errorf("%d credentials verified for unknown paths", n)
		}
	})
	t.Run("traversal and encoding", func(t *testing.T) {
		for _, p := range []string{"/pilot/../pilot/token", "//pilot/token", "/pilot/./token", "/x/../pilot/token",
			"/pilot/%2e%2e/pilot/token", "/%70ilot/../pilot/token", "/pilot//token", "/pilot/token/..", "/pilot/token/."} {
			f.refused("POST "+p+" with a valid credential", f.do("POST", p, f.creds.mint(uid, "101", 0)), http.StatusNotFound)
		}
		// An encoded boot path is that path (Go decodes it): it gets its
		// checks.
		f.refused("POST /pilot/%74oken without a credential", f.do("POST", "/pilot/%74oken", nil), http.StatusUnauthorized)
		f.refused("POST /pilot/%74oken for a job not a pilot", f.do("POST", "/pilot/%74oken", f.creds.mint(uid, "999", 0)), http.StatusForbidden)
		f.refused("POST /pilot%2ftoken for a replayed credential", f.do("POST", "/pilot%2ftoken", []byte("MUNGE:seen:")), http.StatusForbidden)
		f.refused("POST /pilot/%6frrery of another user", f.do("POST", "/pilot/%6frrery", f.creds.mint(otherUID(), "101", 0)), http.StatusForbidden)
	})
	t.Run("oversized body", func(t *testing.T) {
		before := f.creds.verified()
		cred := f.creds.mint(uid, "101", 4<<10+1)
		f.refused("a credential of 4 KiB + 1", f.do("POST", BootToken, cred), http.StatusRequestEntityTooLarge)
		f.refused("a credential of 64 KiB", f.do("POST", BootBinary, f.creds.mint(uid, "101", 64<<10)), http.StatusRequestEntityTooLarge)
		if n := f.creds.verified() - before; n != 0 {
			t.Errorf("%d oversized credentials verified", n)
		}
	})
	t.Run("garbage credential", func(t *testing.T) {
		f.refused("a credential never minted", f.do("POST", BootToken, []byte("MUNGE:forged:")), http.StatusForbidden)
	})
	t.Run("another user", func(t *testing.T) {
		f.refused("token for another user's credential", f.do("POST", BootToken, f.creds.mint(otherUID(), "101", 0)), http.StatusForbidden)
		f.refused("binary for another user's credential", f.do("POST", BootBinary, f.creds.mint(otherUID(), "102", 0)), http.StatusForbidden)
	})
	t.Run("not a pilot", func(t *testing.T) {
		for _, job := range []string{"999", "10", "1010", "101 ", " 101", "0101", ""} {
			f.refused(fmt.Sprintf("a credential naming job %q", job), f.do("POST", BootToken, f.creds.mint(uid, job, 0)), http.StatusForbidden)
		}
	})
	t.Run("ended pilot", func(t *testing.T) {
		f.fb.mu.Lock()
		f.fb.set("102", batch.Ended)
		f.fb.mu.Unlock()
		f.waitPilots("pilot 102 ended", func(st map[string]string) bool {
			s, ok := st["102"]
			return !ok || s == protocol.PilotEnded
		})
		f.refused("token for an ended pilot", f.do("POST", BootToken, f.creds.mint(uid, "102", 0)), http.StatusForbidden)
		f.refused("binary for an ended pilot", f.do("POST", BootBinary, f.creds.mint(uid, "102", 0)), http.StatusForbidden)
	})
	t.Run("replay", func(t *testing.T) {
		f.fb.runAll()
		f.waitPilots("pilot 101 running", func(st map[string]string) bool { return st["101"] == protocol.PilotRunning })
		cred := f.creds.mint(uid, "101", 0)
		r := f.do("POST", BootToken, cred)
		if r.code != http.StatusOK || !bytes.Equal(r.body, f.token) {
			t.Fatalf("a fresh credential of running pilot 101: %d %q, want 200 and the token", r.code, truncate(string(r.body), 200))
		}
		f.refused("the same credential again", f.do("POST", BootToken, cred), http.StatusForbidden)
		f.refused("the same credential for the binary", f.do("POST", BootBinary, cred), http.StatusForbidden)
	})
}

// TestBootAttackServesExactly: a pilot's fresh credential gets the join
// token file and the head's executable, byte for byte, not cached.
func TestBootAttackServesExactly(t *testing.T) {
	f := newBootFix(t, true)
	r := f.do("POST", BootToken, f.creds.mint(f.uid, "101", 0))
	if r.code != http.StatusOK || !bytes.Equal(r.body, f.token) {
		t.Errorf("token: %d %q, want 200 and the join token file %q", r.code, truncate(string(r.body), 200), f.token)
	}
	if cc := r.hdr.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("token's Cache-Control %q, want no-store", cc)
	}
	r = f.do("POST", BootBinary, f.creds.mint(f.uid, "102", 0))
	if r.code != http.StatusOK || !bytes.Equal(r.body, f.self) {
		t.Errorf("binary: %d, %d bytes, want 200 and the %d bytes of cfg.Self", r.code, len(r.body), len(f.self))
	}
	if r.hdr.Get("Content-Length") != fmt.Sprint(len(f.self)) {
		t.Errorf("binary's Content-Length %q, want %d", r.hdr.Get("Content-Length"), len(f.self))
	}
}

// TestBootAttackFetchBound: a pilot gets each path bootFetches times at
// most, whatever spelling of the path it uses; another pilot and the
// other path keep their own counts.
func TestBootAttackFetchBound(t *testing.T) {
	f := newBootFix(t, true)
	for i := range bootFetches {
		p := BootToken
		if i%2 == 1 {
			p = "/pilot/%74oken"
		}
		if r := f.do("POST", p, f.creds.mint(f.uid, "101", 0)); r.code != http.StatusOK || !bytes.Equal(r.body, f.token) {
			t.Fatalf("fetch %d of the token by %s: %d %q", i+1, p, r.code, truncate(string(r.body), 200))
		}
	}
	for _, p := range []string{BootToken, "/pilot/%74oken", "/pilot/%74%6f%6b%65%6e", "https://orrery/pilot/token"} {
		f.refused("a fetch beyond the bound by "+p, f.do("POST", p, f.creds.mint(f.uid, "101", 0)), http.StatusTooManyRequests)
	}
	for i := range bootFetches {
		if r := f.do("POST", BootBinary, f.creds.mint(f.uid, "101", 0)); r.code != http.StatusOK || !bytes.Equal(r.body, f.self) {
			t.Fatalf("fetch %d of the binary: %d", i+1, r.code)
		}
	}
	f.refused("a binary fetch beyond the bound", f.do("POST", BootBinary, f.creds.mint(f.uid, "101", 0)), http.StatusTooManyRequests)
	if r := f.do("POST", BootToken, f.creds.mint(f.uid, "102", 0)); r.code != http.StatusOK {
		t.Errorf("another pilot's first token fetch: %d, want 200", r.code)
	}
}

// TestBootAttackConcurrency: with bootVerifying credentials being
// verified, one more request is told 503 at once, its credential
// untouched; once those finish, it is served.
func TestBootAttackConcurrency(t *testing.T) {
	f := newBootFix(t, true)
	block := make(chan struct{})
	entered := make(chan struct{}, 16)
	var once sync.Once
	release := func() { once.Do(func() { close(block) }) }
	t.Cleanup(release)
	f.creds.mu.Lock()
	f.creds.block, f.creds.entered = block, entered
	f.creds.mu.Unlock()
	type res struct {
		i   int
		r   reply
		err error
	}
	done := make(chan res, bootVerifying)
	for i := range bootVerifying {
		job := []string{"101", "102"}[i%2]
		cred := f.creds.mint(f.uid, job, 0)
		go func() {
			r, err := f.send("POST", BootToken, cred)
			done <- res{i, r, err}
		}()
	}
	for i := range bootVerifying {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d verifications started", i, bootVerifying)
		}
	}
	cred := f.creds.mint(f.uid, "101", 0)
	start := time.Now()
	r := f.do("POST", BootBinary, cred)
	if took := time.Since(start); r.code != http.StatusServiceUnavailable || took > 3*time.Second {
		t.Errorf("request %d while %d verify: %d after %s, want 503 at once", bootVerifying+1, bootVerifying, r.code, took)
	}
	f.refused("the busy answer", r, http.StatusServiceUnavailable)
	if n := f.creds.verified(); n != bootVerifying {
		t.Errorf("%d verifications started, want %d (the bound)", n, bootVerifying)
	}
	f.creds.mu.Lock()
	f.creds.entered = nil
	f.creds.mu.Unlock()
	release()
	for range bootVerifying {
		d := <-done
		if d.err != nil {
			t.Errorf("blocked request %d: %v", d.i, d.err)
		} else if d.r.code != http.StatusOK || !bytes.Equal(d.r.body, f.token) {
			t.Errorf("blocked request %d, released: %d %q, want 200 and the token", d.i, d.r.code, truncate(string(d.r.body), 200))
		}
	}
	if r := f.do("POST", BootBinary, cred); r.code != http.StatusOK || !bytes.Equal(r.body, f.self) {
		t.Errorf("the busy request again, once released: %d, want 200 and the executable", r.code)
	}
}

// TestBootAttackNoCredentials: a batch system without credentials:
// every boot request is told 501, and nothing is served.
func TestBootAttackNoCredentials(t *testing.T) {
	f := newBootFix(t, false)
	for _, p := range []string{BootToken, BootBinary} {
		for _, body := range [][]byte{nil, []byte("MUNGE:anything:"), []byte("101")} {
			f.refused(fmt.Sprintf("POST %s %q without credentials", p, body), f.do("POST", p, body), http.StatusNotImplemented)
		}
	}
}

// TestBootAttackALPN: a peer that asks for the node protocol (ALPN) and
// speaks HTTP never reaches the boot handler, and one that asks for
// HTTP and speaks the node protocol never reaches a node's link, though
// the same credential and hello get through on their own protocols.
func TestBootAttackALPN(t *testing.T) {
	f := newBootFix(t, true)
	t.Run("HTTP under the node protocol", func(t *testing.T) {
		cred := f.creds.mint(f.uid, "101", 0)
		tc := f.mustDial(protocol.ALPN)
		req := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: orrery\r\nContent-Length: %d\r\n\r\n%s", BootToken, len(cred), cred)
		tc.Write([]byte(req))
		got, _ := io.ReadAll(tc) // the port drops it (deadline: dial's)
		if bytes.Contains(got, []byte("HTTP/1.1")) || f.creds.verified() != 0 {
			t.Errorf("an HTTP request under ALPN %q was answered %q, %d credentials verified", protocol.ALPN, got, f.creds.verified())
		}
		noSecret(t, "the node protocol's answer to HTTP", got, f.token)
		if r := f.do("POST", BootToken, cred); r.code != http.StatusOK || !bytes.Equal(r.body, f.token) {
			t.Errorf("the same credential over HTTP: %d %q, want the token (it was valid)", r.code, truncate(string(r.body), 200))
		}
	})
	t.Run("the node protocol under HTTP", func(t *testing.T) {
		tok, err := pki.ParseToken(strings.TrimSpace(string(f.token)))
		if err != nil {
			t.Fatal(err)
		}
		_, pub, err := pki.NewNodeKey()
		if err != nil {
			t.Fatal(err)
		}
		tc := f.mustDial(port.ALPNHTTP)
		pc := protocol.NewConnLimits(tc, protocol.NodeLimits)
		pc.SetSendTimeout(5 * time.Second)
		if err := pc.Send(&protocol.Msg{Type: protocol.TypeHello, Hello: &protocol.Hello{Version: protocol.Version,
			Name: "intruder", Secret: tok.Secret, PublicKey: pub}}); err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(tc)
		if !bytes.HasPrefix(got, []byte("HTTP/1.1 400")) || bytes.Contains(got, []byte("enrolled")) {
			t.Errorf("a node's hello over HTTP was answered %q, want HTTP's 400", truncate(string(got), 300))
		}
		noSecret(t, "HTTP's answer to a hello", got, f.token)
		if n := f.disp.names(); len(n) != 0 {
			t.Fatalf("nodes %q joined over HTTP", n)
		}
		// The same join, on the node protocol, gets through.
		c := &port.Client{Addr: f.addr, Token: tok, Name: "honest", Timeout: 10 * time.Second}
		conn, err := c.Dial(context.Background())
		if err != nil {
			t.Fatalf("a node's join on its protocol: %v", err)
		}
		defer conn.Close()
		conn.SetSendTimeout(5 * time.Second)
		if err := conn.Send(&protocol.Msg{Type: protocol.TypeRegister, Register: &protocol.Register{
			Version: protocol.Version, Name: "honest", CPUs: 1, Memory: 1 << 30, Speed: 1, JobLimit: 1}}); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for len(f.disp.names()) == 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if n := f.disp.names(); len(n) != 1 || n[0] != "honest" {
			t.Errorf("nodes joined: %q, want the honest one only", n)
		}
	})
}

// TestBootAttackMungeReplay: with Slurm's own credentials (munge), a
// real credential of a pilot is served once; shown again, or made by
// another user, or naming no pilot, it is refused.
func TestBootAttackMungeReplay(t *testing.T) {
	// munged is started here when no other test has started it (the
	// head's tests may run before the Slurm ones).
	if err := slurmtest.StartMunge(); err != nil {
		t.Fatalf("munge does not work here (.ci/run installs it): %v", err)
	}
	dir := t.TempDir()
	h, err := New(Config{Dir: dir, Cluster: clusterfile.Cluster{Name: "hpc", Slurm: &clusterfile.Slurm{Pilots: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	token := []byte("orrery1.c2hhMjU2LW9mLXRoZS1jYS1ub3QtcmVhbA.c2VjcmV0LW9mLXRoZS1tdW5nZS10ZXN0LWpvaW4\n")
	if err := os.WriteFile(filepath.Join(dir, JoinTokenFile), token, 0o600); err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.pilots = []protocol.Pilot{{ID: "4242", Name: "orrery-x-hpc-p1", State: protocol.PilotRunning}}
	h.mu.Unlock()
	b := newBootServer(h, slurm.New(slurm.Local))
	if b.creds == nil {
		t.Fatal("slurm.System has no credentials")
	}
	munge := func(name string, args ...string) []byte {
		t.Helper()
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s %q: %v", name, args, err)
		}
		return out
	}
	post := func(cred []byte) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		b.ServeHTTP(w, httptest.NewRequest("POST", BootToken, bytes.NewReader(cred)))
		return w
	}
	cred := munge("munge", "-s", "4242")
	if w := post(cred); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), token) {
		t.Fatalf("a fresh munge credential of pilot 4242: %d %q, want the token", w.Code, w.Body)
	}
	w := post(cred)
	if w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "Replayed") {
		t.Errorf("the same munge credential again: %d %q, want 403 (replayed)", w.Code, w.Body)
	}
	noSecret(t, "the replay's refusal", w.Body.Bytes(), token)
	if w := post(munge("munge", "-s", "4243")); w.Code != http.StatusForbidden {
		t.Errorf("a munge credential naming no pilot: %d %q, want 403", w.Code, w.Body)
	}
	t.Run("another user", func(t *testing.T) {
		setpriv, err := exec.LookPath("setpriv")
		if os.Getuid() != 0 || err != nil {
			t.Skip("making another user's munge credential needs root and setpriv")
		}
		other := munge(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "munge", "-s", "4242")
		if w := post(other); w.Code != http.StatusForbidden || !strings.Contains(w.Body.String(), "65534") {
			t.Errorf("a munge credential of user 65534 naming pilot 4242: %d %q, want 403", w.Code, w.Body)
		}
	})
}
