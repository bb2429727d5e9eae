package kassa

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// TestMonthTotals: the month's totals count each order in the month it was
// paid in, in the app's time zone (a late payment too), and each refund in
// the month its receipt was done; VAT is computed per receipt, once per
// rate from the receipt's sum at that rate, exact to the kopeck.
func TestMonthTotals(t *testing.T) {
	ctx := context.Background()
	moscow, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	clock := &testClock{t: time.Date(2026, 10, 31, 19, 0, 0, 0, time.UTC)}
	s := newLifeShop(t, newLifeProvider("pegas"), nil, clock)
	s.app.zone = moscow
	item := func(price string, qty int64, vat VAT) OrderItem {
		return OrderItem{Name: "item " + price, Qty: qty, Price: decimal.RequireFromString(price), VAT: vat}
	}
	// order creates a pending order at the clock's time.
	order := func(amount string, items ...OrderItem) *Order {
		t.Helper()
		o := &Order{ID: NewOrderID(), State: OrderPending, Account: "main", Provider: "pegas", Amount: decimal.RequireFromString(amount),
			Items: items, Description: "Donation", Email: "buyer@example.com", Payment: Payment{ID: "inv-" + amount},
			ExpiresAt: s.clock.Now().Add(30 * time.Minute)}
		if err := s.app.orders.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		return o
	}
	// pay records order o paid at UTC time at, and sends its receipt.
	pay := func(o *Order, at time.Time) {
		t.Helper()
		s.clock.t = at
		if _, err := s.app.paid(ctx, o.ID, PaymentStatus{Paid: true}, ""); err != nil {
			t.Fatal(err)
		}
		s.pass()
		if got := s.load(o.ID); got.State != OrderPaid || got.Receipt.State != ReceiptDone {
			t.Fatalf("order %s: %s, receipt %+v", o.ID, got.State, got.Receipt)
		}
	}

	// Paid late on 5 November, created on 31 October at 23:00 in Moscow.
	s.clock.t = time.Date(2026, 10, 31, 20, 0, 0, 0, time.UTC)
	late := order("122.00", item("122.00", 1, VAT22))
	if _, err := s.app.expired(ctx, late.ID, "expired", true); err != nil {
		t.Fatal(err)
	}
	s.clock.t = time.Date(2026, 11, 5, 10, 0, 0, 0, time.UTC)
	if _, err := s.app.confirmOrder(ctx, late.ID); err != nil {
		t.Fatal(err)
	}
	s.pass()
	// Paid at 01:30 on 1 November in Moscow (22:30 on 31 October in UTC).
	s.clock.t = time.Date(2026, 10, 31, 22, 0, 0, 0, time.UTC)
	first := order("200.03", item("0.02", 1, VAT22), item("0.01", 1, VAT22), item("100.00", 2, VAT10))
	pay(first, time.Date(2026, 10, 31, 22, 30, 0, 0, time.UTC))
	for range 2 {
		pay(order("0.03", item("0.03", 1, VAT22)), time.Date(2026, 11, 7, 12, 0, 0, 0, time.UTC))
	}
	refunded := order("61.00", item("61.00", 1, VAT22))
	pay(refunded, time.Date(2026, 11, 10, 12, 0, 0, 0, time.UTC))
	s.clock.t = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	if o, err := s.app.reissueReceipt(ctx, refunded.ID, ReceiptSaleReturn, nil); err != nil || o.Refund.State != ReceiptDone {
		t.Fatalf("refund: %v, %+v", err, o)
	}
	pay(order("50.00"), time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)) // no items: the receipt's default rate
	// Paid at 00:30 on 1 December in Moscow (21:30 on 30 November in UTC).
	pay(order("500.00", item("500.00", 1, VAT22)), time.Date(2026, 11, 30, 21, 30, 0, 0, time.UTC))
	// Paid in October in Moscow too, refunded in November: only its refund counts.
	s.clock.t = time.Date(2026, 10, 20, 12, 0, 0, 0, time.UTC)
	october := order("244.00", item("244.00", 1, VAT22))
	pay(october, time.Date(2026, 10, 20, 12, 5, 0, 0, time.UTC))
	s.clock.t = time.Date(2026, 11, 2, 12, 0, 0, 0, time.UTC)
	if _, err := s.app.reissueReceipt(ctx, october.ID, ReceiptSaleReturn, nil); err != nil {
		t.Fatal(err)
	}
	// Unpaid: not counted.
	order("999.00", item("999.00", 1, VAT22))

	s.clock.t = time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	rep := s.monthTotals("2026-11")
	if !rep.From.Equal(time.Date(2026, 10, 31, 21, 0, 0, 0, time.UTC)) || !rep.To.Equal(time.Date(2026, 11, 30, 21, 0, 0, 0, time.UTC)) ||
		rep.TimeZone != "Europe/Moscow" {
		t.Errorf("period %v to %v in %s; want November in Moscow", rep.From, rep.To, rep.TimeZone)
	}
	// 200.03 + 0.03 + 0.03 + 61.00 + 50.00 + 122.00 = 433.09
	want := accountTotals{Account: "main", Provider: "pegas", Orders: 6, Amount: "433.09", PaidAmount: "433.09", Commission: "0.00",
		PaidLate: 1, Refunds: 2, Refunded: "305.00"}
	if len(rep.Accounts) != 1 || rep.Accounts[0] != want {
		t.Errorf("accounts = %+v\nwant %+v", rep.Accounts, want)
	}
	if rep.Orders != 6 || rep.Amount != "433.09" || rep.Refunded != "305.00" {
		t.Errorf("total: %d orders, %s, refunded %s", rep.Orders, rep.Amount, rep.Refunded)
	}
	// VAT 22%, per receipt: 0.03 → 0.01 (not 0.00 + 0.00 per position),
	// 0.03 → 0.01 twice (not 0.09 → 0.02 for the month), 61.00 → 11.00,
	// 122.00 → 22.00. Refunds: 61.00 → 11.00, 244.00 → 44.00.
	wantVAT := []vatTotals{
		{VAT: VAT10, Label: "НДС 10%", Sales: "200.00", SalesVAT: "18.18", Refunds: "0.00", RefundsVAT: "0.00"},
		{VAT: VAT22, Label: "НДС 22%", Sales: "183.09", SalesVAT: "33.03", Refunds: "305.00", RefundsVAT: "55.00"},
		{VAT: VATNone, Label: "Без НДС", Sales: "50.00", SalesVAT: "0.00", Refunds: "0.00", RefundsVAT: "0.00"},
	}
	if len(rep.VAT) != len(wantVAT) {
		t.Fatalf("vat = %+v\nwant %+v", rep.VAT, wantVAT)
	}
	for i := range wantVAT {
		if rep.VAT[i] != wantVAT[i] {
			t.Errorf("vat[%d] = %+v, want %+v", i, rep.VAT[i], wantVAT[i])
		}
	}
	if len(rep.ReceiptsNotDone) != 0 {
		t.Errorf("receipts not done: %v", rep.ReceiptsNotDone)
	}

	for query, code := range map[string]string{"month=2026-13": "bad_month", "month=2026-11&from=2026-11-01": "bad_query", "from=2026-11-01": "bad_range"} {
		err := s.app.serveAdmin(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/kassa/orders/totals?"+query, nil))
		if _, got, _ := publicError(err); StatusCode(err) != http.StatusBadRequest || got != code {
			t.Errorf("%s: %v, want 400 %s", query, err, code)
		}
	}
}
