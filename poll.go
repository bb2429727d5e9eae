package kassa

import (
	"context"
	"sync"
	"time"
)

// statusGate coalesces payment-status checks. However many buyers poll one
// order, its provider is asked at most once per window, and concurrent
// polls share the one call in flight.
type statusGate struct {
	window time.Duration
	now    func() time.Time

	mu     sync.Mutex
	checks map[string]*statusCheck
}

// statusCheck is one provider call and its result.
type statusCheck struct {
	started time.Time
	done    chan struct{}
	status  PaymentStatus
	err     error
}

// maxStatusChecks is the size past which old checks are swept.
const maxStatusChecks = 4096

func newStatusGate(window time.Duration) *statusGate {
	return &statusGate{window: window, now: time.Now, checks: make(map[string]*statusCheck)}
}

// check returns the status of order id: from a call in flight or one made
// within the window, or else from ask, called now. ask runs detached from
// ctx, so that a buyer who leaves does not fail the others waiting on it.
func (g *statusGate) check(ctx context.Context, id string, ask func(context.Context) (PaymentStatus, error)) (PaymentStatus, error) {
	g.mu.Lock()
	c := g.checks[id]
	if c == nil || (c.finished() && g.now().Sub(c.started) >= g.window) {
		c = &statusCheck{started: g.now(), done: make(chan struct{})}
		if len(g.checks) >= maxStatusChecks {
			g.sweep()
		}
		g.checks[id] = c
		g.mu.Unlock()
		c.status, c.err = ask(context.WithoutCancel(ctx))
		close(c.done)
		return c.status, c.err
	}
	g.mu.Unlock()
	select {
	case <-c.done:
		return c.status, c.err
	case <-ctx.Done():
		return PaymentStatus{}, ctx.Err()
	}
}

// sweep forgets finished checks older than the window. g.mu is held.
func (g *statusGate) sweep() {
	now := g.now()
	for id, c := range g.checks {
		if c.finished() && now.Sub(c.started) >= g.window {
			delete(g.checks, id)
		}
	}
}

func (c *statusCheck) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
