package kassa

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

// refundShop is a lifeShop whose clock starts on 2026-01-10.
func refundShop(t *testing.T) *lifeShop {
	return newLifeShop(t, newLifeProvider("pegas"), nil, &testClock{t: time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)})
}

// paidAt stores an order of amount created at the clock's time, pays it,
// and sends its receipt.
func (s *lifeShop) paidAt(amount string) *Order {
	s.t.Helper()
	ctx := context.Background()
	o := &Order{ID: NewOrderID(), State: OrderPending, Account: "main", Provider: "pegas", Amount: decimal.RequireFromString(amount),
		Description: "Warranty", Email: "buyer@example.com", Payment: Payment{ID: "inv-" + amount},
		ExpiresAt: s.clock.Now().Add(30 * time.Minute)}
	if err := s.app.orders.Create(ctx, o); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.app.paid(ctx, o.ID, PaymentStatus{Paid: true}, ""); err != nil {
		s.t.Fatal(err)
	}
	s.pass()
	if o = s.load(o.ID); o.Receipt == nil || o.Receipt.State != ReceiptDone {
		s.t.Fatalf("order %s: receipt %+v", o.ID, o.Receipt)
	}
	return o
}

// refundNow refunds order id at the clock's time, its receipt done.
func (s *lifeShop) refundNow(id string) {
	s.t.Helper()
	if o, err := s.app.reissueReceipt(context.Background(), id, ReceiptSaleReturn, nil); err != nil || o.Refund.State != ReceiptDone {
		s.t.Fatalf("refund of %s: %v, %+v", id, err, o)
	}
}

// failRefund starts order id's refund at the clock's time, and records
// its receipt failed.
func (s *lifeShop) failRefund(id string) {
	s.t.Helper()
	ctx := context.Background()
	if _, err := s.app.receiptStarted(ctx, id, ReceiptSaleReturn, nil); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.app.update(ctx, id, func(o *Order) bool {
		o.Refund.State, o.Refund.Error, o.Refund.DoneAt = ReceiptFailed, "Открыта крышка.", s.clock.Now()
		return true
	}); err != nil {
		s.t.Fatal(err)
	}
}

// monthTotals asks the admin API for a month's totals.
func (s *lifeShop) monthTotals(month string) *totalsReport {
	s.t.Helper()
	return adminReport[totalsReport](s, "/kassa/orders/totals?month="+month)
}

// refundsOf is a report's refunds: their count and amount.
func refundsOf(rep *totalsReport) (int, string) {
	n := 0
	for _, a := range rep.Accounts {
		n += a.Refunds
	}
	return n, rep.Refunded
}

// TestMonthTotalsLateRefund: a refund done months after its order was
// created and paid (a warranty return) counts in the month it was done.
// Before: the totals walked only the orders created from two months
// before the month, and gave refunded 0.00.
func TestMonthTotalsLateRefund(t *testing.T) {
	s := refundShop(t)
	o := s.paidAt("350.00")
	s.clock.t = time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	s.refundNow(o.ID)
	s.clock.t = time.Date(2026, 6, 2, 9, 0, 0, 0, time.UTC)
	rep := s.monthTotals("2026-05")
	if n, sum := refundsOf(rep); n != 1 || sum != "350.00" {
		t.Errorf("May: %d refunds, refunded %s; want 1, 350.00", n, sum)
	}
	if rep.Orders != 0 {
		t.Errorf("May: %d orders paid; want 0 (it was paid in January)", rep.Orders)
	}
	if len(rep.VAT) != 1 || rep.VAT[0].Refunds != "350.00" {
		t.Errorf("May's VAT: %+v; want the refund's 350.00", rep.VAT)
	}
	if n, sum := refundsOf(s.monthTotals("2026-01")); n != 0 || sum != "0.00" {
		t.Errorf("January: %d refunds, refunded %s; want none", n, sum)
	}
}

// TestMonthTotalsCountsARefundOnce: an order that the creation walk and
// the refund index both find (created, paid and refunded in the month),
// and one refunded again in a later month after its first refund failed
// (an entry in each month), each count once, in the month their refund
// was done.
func TestMonthTotalsCountsARefundOnce(t *testing.T) {
	s := refundShop(t)
	old := s.paidAt("100.00")
	s.clock.t = time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)
	both := s.paidAt("20.00")
	s.clock.t = time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	s.refundNow(both.ID)
	s.clock.t = time.Date(2026, 5, 28, 12, 0, 0, 0, time.UTC)
	s.failRefund(old.ID)
	s.clock.t = time.Date(2026, 6, 2, 12, 0, 0, 0, time.UTC)
	s.refundNow(old.ID)
	if got := s.load(old.ID).Refund; got.attempt() != 2 {
		t.Fatalf("the refund is at attempt %d; want 2", got.attempt())
	}
	s.clock.t = time.Date(2026, 7, 2, 9, 0, 0, 0, time.UTC)
	may := s.monthTotals("2026-05")
	if n, sum := refundsOf(may); n != 1 || sum != "20.00" {
		t.Errorf("May: %d refunds, refunded %s; want 1, 20.00 (the failed one does not count)", n, sum)
	}
	if may.Orders != 1 || may.Amount != "20.00" {
		t.Errorf("May: %d orders paid, %s; want 1, 20.00", may.Orders, may.Amount)
	}
	if n, sum := refundsOf(s.monthTotals("2026-06")); n != 1 || sum != "100.00" {
		t.Errorf("June: %d refunds, refunded %s; want 1, 100.00", n, sum)
	}
	for _, month := range []string{"2026/05", "2026/06"} {
		names, err := s.app.orders.listNames(context.Background(), refundsPrefix+"/"+month)
		if err != nil || !slices.Contains(names, old.ID) {
			t.Errorf("refund index %s: %v, %v; want %s", month, names, err, old.ID)
		}
	}
}

// TestMorningCheckFindsAnOldOrdersFailedRefund: a refund that failed
// today, of an order created six months ago, needs action. Before: the
// check read only the orders created in its window.
func TestMorningCheckFindsAnOldOrdersFailedRefund(t *testing.T) {
	s := refundShop(t)
	o := s.paidAt("350.00")
	s.clock.t = time.Date(2026, 7, 10, 12, 0, 0, 0, time.UTC)
	s.failRefund(o.ID)
	s.leadAndPass()
	if got := s.runCheck("").found(checkReceiptFailed); !slices.Equal(got, []string{o.ID}) {
		t.Errorf("receipt_failed %v; want the refund of %s", got, o.ID)
	}
	s.refundNow(o.ID)
	s.leadAndPass()
	if rep := s.runCheck(""); !rep.OK {
		t.Errorf("the refund was sent again and done, but the check finds %+v", rep.NeedsAction)
	}
}
