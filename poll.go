package kassa

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"time"
)

// statusGate coalesces what buyers' status polls cost. However many buyers
// poll one order, its provider is asked at most once per window, and
// concurrent polls share the one call in flight; and an order's record is
// decoded and its answer encoded once per version of the record, not once
// per poll.
type statusGate struct {
	window time.Duration
	now    func() time.Time

	mu      sync.Mutex
	checks  map[string]*statusCheck
	answers map[string]*statusAnswer
}

// statusAnswer is a status poll's answer made from one version of an
// order's record. It is shared by the polls that read that version, so
// nothing in it is ever modified.
type statusAnswer struct {
	record []byte // as stored
	order  *Order // decoded from record
	body   []byte // the JSON answer, newline included
}

// maxStatusAnswers bounds the answers kept: about 3 KB each. Past it they
// are all forgotten, and made again from the next poll of each order.
const maxStatusAnswers = 1024

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
	return &statusGate{window: window, now: time.Now, checks: make(map[string]*statusCheck),
		answers: make(map[string]*statusAnswer)}
}

// answer returns the status answer for record, the record of order id as
// just read from storage: the one made before if the record is byte for
// byte the one it was made from, else a new one. The record is read on
// every poll, so an answer is never older than the stored order.
func (g *statusGate) answer(id string, record []byte) (*statusAnswer, error) {
	g.mu.Lock()
	a := g.answers[id]
	g.mu.Unlock()
	if a != nil && bytes.Equal(a.record, record) {
		return a, nil
	}
	o, err := decodeRecord(id, record)
	if err != nil {
		return nil, err
	}
	body, err := json.Marshal(newStatusView(o))
	if err != nil {
		return nil, err
	}
	a = &statusAnswer{record: record, order: o, body: append(body, '\n')}
	g.mu.Lock()
	if _, known := g.answers[id]; !known && len(g.answers) >= maxStatusAnswers {
		clear(g.answers)
	}
	g.answers[id] = a
	g.mu.Unlock()
	return a, nil
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
