// Package pilots decides a batch cluster's pilots: the batch jobs whose
// script starts `orrery agent`, which joins the cluster's head and takes
// many jobs (HyperQueue's automatic allocation, HTCondor's glideins).
// Pool says how many to submit now, from the pilots the batch system
// lists and how many the work wants: none while nothing waits, more as
// the queue grows, up to Max at once with at most Backlog waiting in
// the batch queue, none near the end; after a refused submission it
// backs off, and after GiveUpAfter refusals in a row it stops, keeping
// the batch system's own words.
//
// Pool holds no goroutine and reads no clock: its owner (the head's one
// goroutine) gives it the time and what the batch system says.
package pilots

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"orrery/batch"
)

// Config is a Pool's bounds.
type Config struct {
	// Max is how many pilots may be pending or running at once.
	Max int
	// Backlog is how many may wait in the batch queue at once (default
	// 2): more would only wait behind them.
	Backlog int
	// RetryMin and RetryMax bound the back-off after a refused
	// submission: it doubles from RetryMin up to RetryMax (defaults 10 s
	// and 5 minutes).
	RetryMin, RetryMax time.Duration
	// GiveUpAfter is how many refusals in a row stop the submitting
	// (default 5).
	GiveUpAfter int
}

// Pool decides the pilots of one cluster.
type Pool struct {
	cfg      Config
	refusals int       // submissions refused in a row
	retryAt  time.Time // no submission before
	gaveUp   error     // set once it stopped submitting
	last     error     // the last refusal
}

// New returns a pool with cfg's bounds (its zero fields the defaults).
func New(cfg Config) *Pool {
	cfg.Max = max(cfg.Max, 0)
	if cfg.Backlog <= 0 {
		cfg.Backlog = 2
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 10 * time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Minute, cfg.RetryMin)
	}
	if cfg.GiveUpAfter <= 0 {
		cfg.GiveUpAfter = 5
	}
	return &Pool{cfg: cfg}
}

// Want is how many pilots the work wants: enough for the jobs waiting
// and running at perPilot jobs a pilot, none when no job waits or runs.
// ending says no more jobs will come and the ones left are already out:
// then no pilot beyond those alive (alive) is wanted, since a new one
// would start after the work it was for; but one is, while work is left
// and none is alive.
func Want(waiting, running, perPilot, alive int, ending bool) int {
	if waiting+running <= 0 {
		return 0
	}
	w := (waiting + running + max(perPilot, 1) - 1) / max(perPilot, 1)
	if ending {
		// Only replace pilots gone, and keep one while work is left.
		w = min(w, max(alive, 1))
	}
	return w
}

// Decide is how many pilots to submit now, given the pool's pilots as
// the batch system lists them (see Mine; ended ones count for nothing)
// and how many the work wants.
func (p *Pool) Decide(now time.Time, jobs []batch.Job, want int) int {
	if p.gaveUp != nil || now.Before(p.retryAt) {
		return 0
	}
	var pending, running int
	for _, j := range jobs {
		switch j.State {
		case batch.Pending:
			pending++
		case batch.Running:
			running++
		}
	}
	n := min(want, p.cfg.Max) - pending - running
	n = min(n, p.cfg.Backlog-pending)
	if p.refusals > 0 {
		n = min(n, 1) // one at a time until one is taken again
	}
	return max(n, 0)
}

// Submitted records how a submission went: err is the batch system's
// refusal, nil when it took the pilot.
func (p *Pool) Submitted(now time.Time, err error) {
	if err == nil {
		p.refusals, p.retryAt, p.last = 0, time.Time{}, nil
		return
	}
	p.refusals++
	p.last = err
	if batch.Permanent(err) {
		p.gaveUp = fmt.Errorf("no pilots: %w", err)
		return
	}
	if p.refusals >= p.cfg.GiveUpAfter {
		p.gaveUp = fmt.Errorf("no more pilots: %d submissions in a row refused, the last: %w", p.refusals, err)
		return
	}
	wait := p.cfg.RetryMin << (p.refusals - 1)
	if wait > p.cfg.RetryMax || wait <= 0 {
		wait = p.cfg.RetryMax
	}
	p.retryAt = now.Add(wait)
}

// GiveUp stops the submitting for a reason the pool's owner found (its
// pilots cannot reach the head); the first reason stays.
func (p *Pool) GiveUp(err error) {
	if p.gaveUp == nil {
		p.gaveUp = err
	}
}

// Err is why the pool stopped submitting, nil while it goes on.
func (p *Pool) Err() error { return p.gaveUp }

// LastRefusal is the last submission refused since one was taken, nil
// when none was.
func (p *Pool) LastRefusal() error { return p.last }

// validCluster is what a cluster's name may hold in a pilot's name:
// what every batch system takes in a job name, short enough for the
// whole name to be a node's name (64 bytes); validIdentity an
// experiment's identity (hexadecimal: no separator).
var (
	validCluster  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,24}$`)
	validIdentity = regexp.MustCompile(`^[0-9a-f]{8,32}$`)
)

// Prefix is what the name of every pilot of one experiment's cluster
// starts with, orrery-IDENTITY-CLUSTER-p, before its serial number (see
// Name and Mine).
func Prefix(identity, cluster string) (string, error) {
	if !validIdentity.MatchString(identity) {
		return "", fmt.Errorf("an experiment's identity in a pilot's name: %q is not 8 to 32 hexadecimal digits", identity)
	}
	if !validCluster.MatchString(cluster) {
		return "", fmt.Errorf("cluster %q in a pilot's name: letters, digits, _ . and - only, at most 24 (a node's name is at most 64)", cluster)
	}
	return "orrery-" + identity + "-" + cluster + "-p", nil
}

// Name is the name of pilot n of a prefix.
func Name(prefix string, n int) string { return prefix + strconv.Itoa(n) }

// Mine reports whether name is a pilot's of prefix: the prefix and then
// its serial number alone. Another experiment's pilot, or another
// cluster's whose name starts with this one's (b and b-p1), is not.
func Mine(prefix, name string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
