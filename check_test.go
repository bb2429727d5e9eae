package kassa

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// runCheck asks the admin API for the morning check, as an operator does.
func (s *lifeShop) runCheck(query string) *checkReport {
	s.t.Helper()
	return adminReport[checkReport](s, "/kassa/check"+query)
}

// adminReport GETs target from the admin API and decodes its answer,
// which must be 200, into a T.
func adminReport[T any](s *lifeShop, target string) *T {
	s.t.Helper()
	w := adminGet(s.t, s.app, target)
	var rep T
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &rep) != nil {
		s.t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
	}
	return &rep
}

// found lists the order (or event) ids of a kind's findings.
func (r *checkReport) found(kind string) []string {
	var ids []string
	for _, k := range r.NeedsAction {
		if k.Kind != kind {
			continue
		}
		if k.Hint == "" || k.Count != len(k.Items) {
			return []string{"malformed kind " + kind}
		}
		for _, it := range k.Items {
			id := it.OrderID
			if it.EventID != "" {
				id = it.EventID
			}
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// leadAndPass has the shop's reconciler take its lease, pass, and write
// the pass into the lease, as its ticks do.
func (s *lifeShop) leadAndPass() {
	ctx := context.Background()
	if !s.app.reconciler.lease.hold(ctx) {
		s.t.Fatal("the reconciler did not take the lease")
	}
	s.pass()
	s.app.reconciler.lease.hold(ctx)
}

// TestMorningCheckFindsWhatNeedsAction: each kind the check knows is
// found, with its orders or events and a hint, and nothing else: a paid
// order with its receipt done, and a pending one, are not findings.
func TestMorningCheckFindsWhatNeedsAction(t *testing.T) {
	ctx := context.Background()
	rcv := newTestReceiver(t, always(http.StatusInternalServerError))
	s := notifyShop(t, nil, nil, rcv.srv.URL+"/hook?token=check-url-secret-9f3", "order.paid")

	if rep := s.runCheck(""); rep.OK || !slices.Equal(rep.found(checkReconcilerStalled), []string{""}) {
		t.Fatalf("with no reconciler running: ok %v, stalled %v; want the stall found", rep.OK, rep.found(checkReconcilerStalled))
	}
	s.leadAndPass()
	if rep := s.runCheck(""); !rep.OK || rep.Reconciler.Holder == "" || rep.Reconciler.PassedAt.IsZero() {
		t.Fatalf("an empty shop whose reconciler passes: %+v; want ok", rep)
	}

	good := s.paidOrder()
	_ = s.created("") // pending: no finding
	failed := s.paidOrder()
	if _, err := s.app.update(ctx, failed.ID, func(o *Order) bool {
		o.Receipt.State, o.Receipt.Error, o.Receipt.DoneAt = ReceiptFailed, "Открыта крышка.", s.clock.Now()
		return true
	}); err != nil {
		t.Fatal(err)
	}
	under := s.created("")
	if _, err := s.app.paid(ctx, under.ID, PaymentStatus{Paid: true, Amount: decimal.NewNullDecimal(decimal.RequireFromString("100.00"))}, ""); err != nil {
		t.Fatal(err)
	}
	wrong := s.created("")
	if _, err := s.app.paymentProblem(ctx, wrong.ID, PaymentStatus{Problem: "wrongamount"}); err != nil {
		t.Fatal(err)
	}
	late := s.created("")
	stuck := &Order{ID: NewOrderID(), State: OrderCreating, Account: "gone", Provider: "pegas", Amount: decimal.NewFromInt(350),
		ExpiresAt: s.clock.Now().Add(30 * time.Minute)}
	if err := s.app.orders.Create(ctx, stuck); err != nil {
		t.Fatal(err)
	}
	s.clock.Add(31 * time.Minute)
	s.pass()                                                    // late, under and wrong expire unpaid
	if _, err := s.app.confirmOrder(ctx, late.ID); err != nil { // the operator saw the money arrive
		t.Fatal(err)
	}
	s.pass()
	if o := s.load(late.ID); !o.PaidLate {
		t.Fatalf("order %s is %s, not paid late", o.ID, o.State)
	}
	s.deliver() // the order.paid events fail once: retried
	paidEvents := func() []string {
		var ids []string
		for _, id := range []string{good.ID, failed.ID} {
			for _, ref := range s.load(id).Events {
				ids = append(ids, ref.ID)
			}
		}
		slices.Sort(ids)
		return ids
	}()
	if len(paidEvents) != 2 {
		t.Fatalf("events of the paid orders: %v", paidEvents)
	}
	s.app.reconciler.lease.hold(ctx)

	rep := s.runCheck("")
	sorted := func(ids ...string) []string { slices.Sort(ids); return ids }
	for kind, want := range map[string][]string{
		checkReconcilerStalled: nil,
		checkStuckCreating:     {stuck.ID},
		checkReceiptFailed:     {failed.ID},
		checkUnderpaid:         {under.ID},
		checkPaymentProblem:    {wrong.ID},
		checkPaidLate:          {late.ID},
		checkEventUndelivered:  paidEvents,
	} {
		if got := rep.found(kind); !slices.Equal(got, sorted(want...)) {
			t.Errorf("%s: found %v, want %v", kind, got, want)
		}
	}
	if rep.OK {
		t.Errorf("ok with findings")
	}
	w := httptest.NewRecorder()
	if err := s.app.serveAdmin(w, httptest.NewRequest(http.MethodGet, "/kassa/check", nil)); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{"check-url-secret-9f3", testNotifySecret, "buyer@example.com"} {
		if strings.Contains(w.Body.String(), secret) {
			t.Errorf("the check's answer carries %q: %s", secret, w.Body)
		}
	}

	// Given up after a day, the events stay found until redelivered.
	s.clock.Add(25 * time.Hour)
	s.deliver()
	s.deliver()
	s.leadAndPass()
	if got := s.runCheck("").found(checkEventUndelivered); !slices.Equal(got, paidEvents) {
		t.Errorf("events given up: found %v, want %v", got, paidEvents)
	}
	if _, err := s.app.redeliver(httptest.NewRequest(http.MethodPost, "/", nil), paidEvents[0]); err != nil {
		t.Fatal(err)
	}
	if got := s.runCheck("").found(checkEventUndelivered); !slices.Equal(got, paidEvents[1:]) {
		t.Errorf("after redelivering %s: found %v, want %v", paidEvents[0], got, paidEvents[1:])
	}

	// A week and more on, the failed receipt is still found with a longer
	// window, and the paid-late order no longer is.
	s.clock.Add(8 * 24 * time.Hour)
	s.leadAndPass()
	rep = s.runCheck("?since=30d")
	if got := rep.found(checkReceiptFailed); !slices.Equal(got, []string{failed.ID}) {
		t.Errorf("since=30d: failed receipts %v", got)
	}
	if got := s.runCheck("").found(checkPaidLate); got != nil {
		t.Errorf("a week on, paid late still found: %v", got)
	}
}

// TestMorningCheckFindsAStall: a lease holder whose pass never completes
// is a stall after five poll intervals (at least a minute).
func TestMorningCheckFindsAStall(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	s.leadAndPass()
	s.clock.Add(50 * time.Second)
	s.app.reconciler.lease.hold(context.Background()) // renewed, but no pass
	if rep := s.runCheck(""); !rep.OK {
		t.Fatalf("50s after a pass (poll 10s): %+v", rep.NeedsAction)
	}
	s.clock.Add(20 * time.Second)
	s.app.reconciler.lease.hold(context.Background())
	rep := s.runCheck("")
	if got := rep.found(checkReconcilerStalled); len(got) != 1 || rep.OK {
		t.Fatalf("70s after the last pass: %+v; want a stall", rep)
	}
	if d := rep.NeedsAction[0].Items[0].Detail; !strings.Contains(d, "completed no pass for 1m10s") {
		t.Errorf("the stall's detail: %q", d)
	}
}

// TestMorningCheckBadSince: a since that is neither a duration nor a time
// is a 400 naming it.
func TestMorningCheckBadSince(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	err := s.app.serveAdmin(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/kassa/check?since=yesterday", nil))
	if StatusCode(err) != http.StatusBadRequest || !strings.Contains(err.Error(), "since") {
		t.Errorf("since=yesterday: %v", err)
	}
}

// TestUndeliveredEventsIndexed: an event given up is indexed as
// undelivered, and the index entry goes with its order when compaction
// deletes the order.
func TestUndeliveredEventsIndexed(t *testing.T) {
	ctx := context.Background()
	rcv := newTestReceiver(t, always(http.StatusBadGateway))
	s := notifyShop(t, nil, nil, rcv.srv.URL, "order.expired")
	o := s.created("")
	s.clock.Add(31 * time.Minute)
	s.pass()
	refs := s.load(o.ID).Events
	if len(refs) != 1 || refs[0].Type != eventExpired {
		t.Fatalf("events of the expired order: %+v", refs)
	}
	s.deliver()
	s.clock.Add(25 * time.Hour)
	s.deliver()
	if _, err := s.storage.Load(ctx, undeliveredKey(refs[0].ID)); err != nil {
		t.Fatalf("the given-up event is not indexed as undelivered: %v", err)
	}
	if _, err := s.storage.Load(ctx, outboxKey(refs[0].ID)); err == nil {
		t.Errorf("the given-up event is still in the outbox")
	}
	s.clock.Add(7 * 24 * time.Hour)
	s.compact()
	if _, err := s.app.orders.Load(ctx, o.ID); err == nil {
		t.Fatalf("the expired order was not compacted")
	}
	if _, err := s.storage.Load(ctx, undeliveredKey(refs[0].ID)); err == nil {
		t.Errorf("the undelivered entry outlived its compacted order")
	}
}

// TestMorningCheckFindsALateFailure: a receipt that failed within the
// check's window is a finding however long before it its order was made:
// the refund of an order bought ten days ago that failed today, and the
// sale receipt of an order paid late today. Before: only the receipts of
// orders created in the window were looked at, so neither was found.
func TestMorningCheckFindsALateFailure(t *testing.T) {
	ctx := context.Background()
	day := 24 * time.Hour
	s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
	refunded := s.created("")
	s.provider.pay(refunded.Payment.ID)
	s.pass()
	s.clock.Add(5 * day)
	late := s.created("")
	s.clock.Add(time.Hour)
	s.pass() // late expires unpaid
	if got := s.load(late.ID); got.State.Open() {
		t.Fatalf("order %s is %s; want closed unpaid", late.ID, got.State)
	}
	s.clock.Add(5 * day)
	fail := func(id string, t ReceiptType) {
		if _, err := s.app.update(ctx, id, func(o *Order) bool {
			rec := newReceiptAttempt(o.ID, t, 1)
			rec.State, rec.Error, rec.DoneAt = ReceiptFailed, "Открыта крышка.", s.clock.Now()
			o.setReceipt(rec)
			return true
		}); err != nil {
			s.t.Fatal(err)
		}
	}
	fail(refunded.ID, ReceiptSaleReturn)
	if _, err := s.app.paid(ctx, late.ID, PaymentStatus{Paid: true}, ""); err != nil {
		t.Fatal(err)
	}
	fail(late.ID, ReceiptSale)
	s.leadAndPass()
	want := []string{late.ID, refunded.ID}
	slices.Sort(want)
	if got := s.runCheck("").found(checkReceiptFailed); !slices.Equal(got, want) {
		t.Errorf("receipt_failed %v; want %v", got, want)
	}
	if got := s.runCheck("?since=24h").found(checkReceiptFailed); !slices.Contains(got, late.ID) {
		t.Errorf("check?since=24h: receipt_failed %v; want the late payment's %s", got, late.ID)
	}
}
