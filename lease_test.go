package kassa

import (
	"context"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// leaseApps are two instances on one storage, each on a clock of its own
// (their servers' clocks need not agree).
func leaseApps(t *testing.T) (a, b *App, clockA, clockB *testClock) {
	t.Helper()
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	clockA = &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	clockB = &testClock{t: time.Date(2031, 1, 1, 0, 0, 0, 0, time.UTC)}
	for _, in := range []struct {
		app   **App
		clock *testClock
	}{{&a, clockA}, {&b, clockB}} {
		app := &App{logger: zap.NewNop(), now: in.clock.Now, PollInterval: caddy.Duration(time.Second)}
		app.useStorage(storage)
		*in.app = app
	}
	return a, b, clockA, clockB
}

// TestLeaseTakeover: the first instance takes a free lease; the other
// stands by while the holder renews it, takes it over once it has seen it
// unrenewed for the term by its own clock, and the old holder then stands
// by; a released lease is taken at once.
func TestLeaseTakeover(t *testing.T) {
	ctx := context.Background()
	a, b, clockA, clockB := leaseApps(t)
	la, lb := a.reconciler.lease, b.reconciler.lease
	term := leaseTerm(time.Second)
	if !la.hold(ctx) {
		t.Fatal("A did not take the free lease")
	}
	for range 3 {
		if lb.hold(ctx) {
			t.Fatal("B took the lease A renews")
		}
		clockB.Add(term / 2)
		clockA.Add(term / 2)
		if !la.hold(ctx) {
			t.Fatal("A lost the lease it renews")
		}
	}
	// A stops renewing (it died, or stalled).
	if lb.hold(ctx) {
		t.Fatal("B took the lease as soon as A stopped renewing")
	}
	clockB.Add(term - time.Millisecond)
	if lb.hold(ctx) {
		t.Fatal("B took the lease before the term was over")
	}
	clockB.Add(time.Millisecond)
	if !lb.hold(ctx) {
		t.Fatal("B did not take over a lease unrenewed for the term")
	}
	if la.hold(ctx) {
		t.Fatal("A still leads after B took the lease over")
	}
	lb.release(ctx)
	if !la.hold(ctx) {
		t.Fatal("A did not take the lease B released")
	}
}
