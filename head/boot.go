package head

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"orrery/batch"
	"orrery/protocol"
)

// A pilot whose compute node does not see the head's file system (its
// script finds neither the head's executable nor its join token) fetches
// both from the head's port, over the port's TLS, which the script
// checks against the head's certificate authority (public; the script
// carries it). Each request carries a fresh credential of the batch
// system's (Slurm: munge) made in the pilot's own batch job: the head
// serves it only when the credential is valid, was made by the head's
// own user, names one of the head's pilots still pending or running, and
// was never shown before. Nothing secret passes through the batch
// system, and a peer without such a credential gets nothing but a
// refusal.

// Boot paths on a Slurm cluster head's port, each a POST whose body is
// the credential.
const (
	BootBinary = "/pilot/orrery" // the head's own executable
	BootToken  = "/pilot/token"  // the cluster's join token
)

// bootFetches bounds how many times one pilot is served each of the
// two: a script tries again after a failed transfer, never more.
const bootFetches = 4

// bootVerifying bounds the credentials being verified at once: each
// runs a command (unmunge).
const bootVerifying = 4

// bootWrite bounds the sending of the executable (tens of MB) to one
// pilot.
const bootWrite = 10 * time.Minute

// bootServer is a Slurm cluster head's web handler (port.Config.Web):
// the boot paths and nothing else.
type bootServer struct {
	h      *Head
	creds  batch.Credentials // nil: the batch system has none, and nothing is served
	uid    int               // the head's user
	verify chan struct{}     // bounds the credentials verified at once

	mu     sync.Mutex
	served map[bootKey]int // times served, by pilot and path
}

type bootKey struct {
	job  batch.JobID
	path string
}

// newBootServer returns the head's boot handler for its batch system.
func newBootServer(h *Head, sys batch.System) *bootServer {
	b := &bootServer{h: h, uid: os.Getuid(), verify: make(chan struct{}, bootVerifying), served: map[bootKey]int{}}
	b.creds, _ = sys.(batch.Credentials)
	return b
}

// ServeHTTP serves one boot request, or refuses it in one line.
func (b *bootServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != BootBinary && r.URL.Path != BootToken {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "orrery head: POST a credential", http.StatusMethodNotAllowed)
		return
	}
	if b.creds == nil {
		http.Error(w, "orrery head: this cluster's batch system has no credentials to check: its compute nodes must see the head's file system", http.StatusNotImplemented)
		return
	}
	cred, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil {
		b.refuse(w, r, http.StatusRequestEntityTooLarge, "a credential over 4 KiB")
		return
	}
	if len(cred) == 0 {
		b.refuse(w, r, http.StatusUnauthorized, "no credential")
		return
	}
	select {
	case b.verify <- struct{}{}:
	default:
		http.Error(w, "orrery head: busy: try again", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	claim, err := b.creds.Verify(ctx, cred)
	cancel()
	<-b.verify
	switch {
	case err != nil:
		b.refuse(w, r, http.StatusForbidden, fmt.Sprintf("credential refused: %v", err))
		return
	case claim.UID != b.uid:
		b.refuse(w, r, http.StatusForbidden, fmt.Sprintf("a credential of user %d, not of the head's (%d)", claim.UID, b.uid))
		return
	case !b.h.isPilot(claim.Job):
		b.refuse(w, r, http.StatusForbidden, fmt.Sprintf("job %s is none of this head's pilots", claim.Job))
		return
	}
	b.mu.Lock()
	k := bootKey{claim.Job, r.URL.Path}
	n := b.served[k]
	if n < bootFetches {
		b.served[k] = n + 1
	}
	b.mu.Unlock()
	if n >= bootFetches {
		b.refuse(w, r, http.StatusTooManyRequests, fmt.Sprintf("pilot %s was served %s %d times already", claim.Job, r.URL.Path, n))
		return
	}
	if r.URL.Path == BootToken {
		tok, err := os.ReadFile(filepath.Join(b.h.cfg.Dir, JoinTokenFile))
		if err != nil {
			b.h.log.Warn("a pilot's join token", "err", err)
			http.Error(w, "orrery head: its join token cannot be read", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(tok)
		b.h.log.Info("a pilot fetched the join token", "job", claim.Job, "peer", r.RemoteAddr)
		return
	}
	if err := b.sendBinary(w); err != nil {
		b.h.log.Warn("sending a pilot the executable", "job", claim.Job, "peer", r.RemoteAddr, "err", err)
		return
	}
	b.h.log.Info("a pilot fetched the executable", "job", claim.Job, "peer", r.RemoteAddr)
}

// sendBinary writes the head's executable, within bootWrite.
func (b *bootServer) sendBinary(w http.ResponseWriter) error {
	f, err := os.Open(b.h.executable())
	if err != nil {
		http.Error(w, "orrery head: its executable cannot be read", http.StatusInternalServerError)
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		http.Error(w, "orrery head: its executable cannot be read", http.StatusInternalServerError)
		return err
	}
	if err := http.NewResponseController(w).SetWriteDeadline(time.Now().Add(bootWrite)); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", fmt.Sprint(fi.Size()))
	_, err = io.Copy(w, f)
	return err
}

// refuse answers a request it will not serve, and logs it with its
// peer.
func (b *bootServer) refuse(w http.ResponseWriter, r *http.Request, code int, why string) {
	b.h.log.Warn("a pilot's fetch refused", "peer", r.RemoteAddr, "path", r.URL.Path, "why", why)
	http.Error(w, "orrery head: "+why, code)
}

// isPilot reports whether job is one of the head's pilots, pending or
// running, as its pilot loop last saw them.
func (h *Head) isPilot(job batch.JobID) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.pilots {
		if p.ID == string(job) && p.State != protocol.PilotEnded {
			return true
		}
	}
	return false
}

// executable is the orrery the head's nodes and pilots run.
func (h *Head) executable() string {
	self, err := os.Executable()
	if err != nil || h.cfg.Self != "" {
		self = h.cfg.Self
	}
	return self
}
