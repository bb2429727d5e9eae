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
		app.reconciler.lease.id = holderID() // as if in a process of its own
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

// TestLeaseAcrossAReload: the next config of the process that holds the
// lease leads at its first tick, and the old config's release on stop
// leaves it to the new one.
func TestLeaseAcrossAReload(t *testing.T) {
	ctx := context.Background()
	old, _, _, _ := leaseApps(t)
	if !old.reconciler.lease.hold(ctx) {
		t.Fatal("the first config did not take the free lease")
	}
	next := &App{logger: zap.NewNop(), now: old.now, PollInterval: old.PollInterval}
	next.useStorage(old.storage)
	next.reconciler.lease.id = old.reconciler.lease.id // the same process
	if !next.reconciler.lease.hold(ctx) {
		t.Fatal("the next config does not lead at its first tick")
	}
	old.reconciler.lease.release(ctx)
	if rec, err := next.reconciler.lease.read(ctx); err != nil || rec.Holder != next.reconciler.lease.id {
		t.Fatalf("after the old config stopped the lease is %+v, %v; want the next config's", rec, err)
	}
	if !next.reconciler.lease.hold(ctx) {
		t.Error("the next config lost the lease when the old one stopped")
	}
}

// TestStandbyFinishesNudges: an instance that stands by makes no passes,
// but finishes an order its buyer's poll nudged it to: paid, with its
// receipt. kassa_reconciler_leader says which instance leads.
func TestStandbyFinishesNudges(t *testing.T) {
	ctx := context.Background()
	a, b, _, _ := leaseApps(t)
	if !a.reconciler.lead(ctx) || valueOf(metrics.reconcilerLeader) != 1 {
		t.Fatalf("A did not take the free lease, or kassa_reconciler_leader is %v", valueOf(metrics.reconcilerLeader))
	}
	p := &askedProvider{}
	p.paid.Store(true)
	b.accounts = map[string]*account{"main": {name: "main", provider: "pegas", PaymentProvider: p}}
	b.receipts = &instantReceipts{}
	b.OrderTTL = caddy.Duration(time.Hour)
	nudged, other := openPending(t, b), openPending(t, b)
	b.reconciler.start()
	defer b.reconciler.stop()
	b.reconciler.nudge(nudged)
	deadline := time.Now().Add(10 * time.Second)
	for {
		o, err := b.orders.Load(ctx, nudged)
		if err == nil && o.State == OrderPaid && o.Receipt != nil && o.Receipt.State == ReceiptDone {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the nudged order is %v (receipt %+v), %v; want paid with its receipt done", o.State, o.Receipt, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.reconciler.stop()
	if v := valueOf(metrics.reconcilerLeader); v != 0 {
		t.Errorf("kassa_reconciler_leader is %v after the standby's ticks, want 0", v)
	}
	if asked := p.takeAsked(); len(asked) != 1 || asked[0] != nudged {
		t.Errorf("the standby asked about %v, want only the nudged order (not %s)", asked, other)
	}
}
