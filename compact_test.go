package kassa

import (
	"context"
	"errors"
	"testing"
	"time"
)

// compactFixture is a store on crash storage with orders closed at the
// clock's start: expired (with an idempotency key), failed, cancelled and
// paid, and one pending order.
type compactFixture struct {
	store                                  *OrderStore
	storage                                *crashStorage
	clock                                  *testClock
	expired, failed, cancelled, paid, open *Order
}

func newCompactFixture(t *testing.T) *compactFixture {
	t.Helper()
	ctx := context.Background()
	clock := &testClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	m, s := newCrashStore(t, clock)
	f := &compactFixture{store: s, storage: m, clock: clock}
	for _, o := range []**Order{&f.expired, &f.failed, &f.cancelled, &f.paid, &f.open} {
		*o = &Order{ID: NewOrderID(), State: OrderPending}
	}
	f.expired.IdempotencyKey = "card:key-1"
	for _, o := range []*Order{f.expired, f.failed, f.cancelled, f.paid, f.open} {
		if err := s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	for o, state := range map[*Order]OrderState{f.expired: OrderExpired, f.failed: OrderFailed, f.cancelled: OrderCancelled, f.paid: OrderPaid} {
		o.State = state
		if err := s.Save(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// exists reports whether an order's record is stored.
func (f *compactFixture) exists(o *Order) bool {
	return f.storage.has(orderKey(o.ID))
}

// TestCompactDeletesOnlyOldUnpaidOrders: Compact deletes the records (and
// idempotency mappings) of orders that closed unpaid at least keep ago,
// and keeps paid and open orders whatever their age.
func TestCompactDeletesOnlyOldUnpaidOrders(t *testing.T) {
	ctx := context.Background()
	f := newCompactFixture(t)
	keep := 24 * time.Hour

	f.clock.Add(keep - time.Second)
	if n, err := f.store.Compact(ctx, keep, nil); err != nil || n != 0 {
		t.Fatalf("Compact before keep = %d, %v; want 0", n, err)
	}
	f.clock.Add(time.Second)
	// The cancelled order closed later than the others: its unpaid entry
	// is written again then, as when its record was closed anew. (Saving
	// a closed record again keeps the entry it has, and so its age.)
	f.cancelled.Error = "cancelled by the operator"
	if err := f.storage.Delete(ctx, unpaidKey(f.cancelled.ID)); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Save(ctx, f.cancelled); err != nil {
		t.Fatal(err)
	}
	if n, err := f.store.Compact(ctx, keep, nil); err != nil || n != 2 {
		t.Fatalf("Compact = %d, %v; want 2 (the expired and the failed order)", n, err)
	}
	for o, want := range map[*Order]bool{f.expired: false, f.failed: false, f.cancelled: true, f.paid: true, f.open: true} {
		if got := f.exists(o); got != want {
			t.Errorf("order %s (%s) stored: %v, want %v", o.ID, o.State, got, want)
		}
	}
	if _, ok, err := f.store.ByIdempotencyKey(ctx, "card:key-1"); ok || err != nil {
		t.Errorf("the compacted order's idempotency key still maps: %v, %v", ok, err)
	}
	if f.storage.has(unpaidKey(f.expired.ID)) || !f.storage.has(unpaidKey(f.cancelled.ID)) || f.storage.has(unpaidKey(f.paid.ID)) {
		t.Error("the unpaid index holds the wrong orders")
	}
	wantIDs(t, f.store, f.open.ID)

	f.clock.Add(keep)
	if n, err := f.store.Compact(ctx, keep, nil); err != nil || n != 1 || f.exists(f.cancelled) {
		t.Fatalf("Compact a day later = %d, %v (cancelled stored: %v); want 1", n, err, f.exists(f.cancelled))
	}
	if !f.exists(f.paid) || !f.exists(f.open) {
		t.Error("Compact deleted a paid or an open order")
	}
}

// TestCompactKeepsATakenOverKey: an idempotency key that a later order
// took over (the compacted order's Create crashed before its record, say)
// is left to that order.
func TestCompactKeepsATakenOverKey(t *testing.T) {
	ctx := context.Background()
	f := newCompactFixture(t)
	if err := f.storage.Store(ctx, idempotencyStorageKey("card:key-1"), []byte(f.open.ID)); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Hour)
	if n, err := f.store.Compact(ctx, time.Hour, nil); err != nil || n != 3 {
		t.Fatalf("Compact = %d, %v; want 3", n, err)
	}
	if id, ok, err := f.store.ByIdempotencyKey(ctx, "card:key-1"); !ok || err != nil || id != f.open.ID {
		t.Errorf("the key maps to %q, %v, %v; want the later order %s", id, ok, err, f.open.ID)
	}
}

// TestCompactCrash: a Compact cut short after any of its writes leaves
// nothing the next Compact cannot finish, and never an unpaid order the
// index forgot.
func TestCompactCrash(t *testing.T) {
	ctx := context.Background()
	// Compacting three orders takes seven writes: the expired order's
	// mapping, record and entry, and the record and entry of the others.
	for crashAt := 1; crashAt <= 7; crashAt++ {
		f := newCompactFixture(t)
		f.clock.Add(time.Hour)
		f.storage.crashAtWrite(crashAt)
		if _, err := f.store.Compact(ctx, time.Hour, nil); !errors.Is(err, errCrash) {
			t.Fatalf("crash at write %d: Compact = %v, want the crash", crashAt, err)
		}
		f.storage.restart()
		for _, o := range []*Order{f.expired, f.failed, f.cancelled} {
			if f.exists(o) && !f.storage.has(unpaidKey(o.ID)) {
				t.Errorf("crash at write %d: order %s is stored but no longer in the unpaid index", crashAt, o.ID)
			}
		}
		if _, err := f.store.Compact(ctx, time.Hour, nil); err != nil {
			t.Fatalf("crash at write %d: the next Compact: %v", crashAt, err)
		}
		for _, o := range []*Order{f.expired, f.failed, f.cancelled} {
			if f.exists(o) || f.storage.has(unpaidKey(o.ID)) {
				t.Errorf("crash at write %d: order %s left after the next Compact", crashAt, o.ID)
			}
		}
		if !f.exists(f.paid) || !f.exists(f.open) {
			t.Errorf("crash at write %d: a paid or open order was deleted", crashAt)
		}
	}
}

// TestCompactLeavesNoCreatingRecord: an order that closed while a crash
// kept its open-index entry, which still holds its record from when it was
// being created, is not brought back by that entry once Compact deleted
// its record.
func TestCompactLeavesNoCreatingRecord(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)}
	m, s := newCrashStore(t, clock)
	o := &Order{ID: NewOrderID(), State: OrderCreating}
	if err := s.Create(ctx, o); err != nil {
		t.Fatal(err)
	}
	o.State = OrderExpired
	m.crashAtWrite(4) // the time-index entry, the record, the unpaid entry; not the open entry's removal
	if err := s.Save(ctx, o); !errors.Is(err, errCrash) {
		t.Fatalf("Save = %v, want the crash", err)
	}
	m.restart()
	if !m.has(openKey(o.ID)) {
		t.Fatal("the crash did not leave the open entry")
	}
	clock.Add(48 * time.Hour)
	if n, err := s.Compact(ctx, 24*time.Hour, nil); err != nil || n != 1 {
		t.Fatalf("Compact = %d, %v; want 1", n, err)
	}
	if _, err := s.Load(ctx, o.ID); !errors.Is(err, ErrOrderNotFound) {
		t.Errorf("Load of the compacted order = %v, want ErrOrderNotFound", err)
	}
	wantIDs(t, s)
}
