package kassa

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

// receiptApp is an app on a fresh file storage with a Pegas account and
// Smart Cashier on the sandbox.
func receiptApp(t *testing.T, sb *sandboxServer) *App {
	t.Helper()
	a := &App{logger: zap.NewNop(), now: time.Now}
	a.accounts = map[string]*account{"card": {name: "card", provider: "pegas", PaymentProvider: sb.pegas(t, "")}}
	a.receipts = sb.smartCashier(t)
	a.useStorage(&certmagic.FileStorage{Path: t.TempDir()})
	return a
}

func paidOrder(t *testing.T, a *App) *Order {
	t.Helper()
	o := &Order{ID: NewOrderID(), State: OrderPaid, Account: "card", Provider: "pegas", Amount: decimal.NewFromInt(700),
		Items: []OrderItem{{SKU: "tea", Name: "Чай", Qty: 2, Price: decimal.NewFromInt(350), VAT: VAT20}},
		Email: "buyer@example.com", CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := a.orders.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return o
}

// TestReceiptRetryAfterNotProcessed: a receipt the till could not print
// shows its error; the operator's retry issues it again under a new
// operation id (Smart Cashier answers a repeated id with its first result),
// keeps the failed attempt in the receipt's history, and one receipt is
// printed.
func TestReceiptRetryAfterNotProcessed(t *testing.T) {
	sb := startSandbox(t, nil)
	a := receiptApp(t, sb)
	ctx := context.Background()
	o := paidOrder(t, a)
	sb.control(http.MethodPost, "faults", map[string]any{"api": "smartcashier", "op": "formReceipt",
		"mode": "notprocessed", "count": 1, "message": "Открыта крышка."}, nil)

	a.reissueReceipt(ctx, o.ID, ReceiptSale, nil)
	stored, err := a.orders.Load(ctx, o.ID)
	if err != nil || stored.Receipt == nil || stored.Receipt.State != ReceiptFailed || stored.Receipt.Error != "Открыта крышка." {
		t.Fatalf("after the failure: %+v, %v", stored.Receipt, err)
	}
	if stored.Open() {
		t.Error("a failed receipt keeps the order open: the reconciler would retry it without an operator")
	}

	retried, err := a.reissueReceipt(ctx, o.ID, ReceiptSale, nil)
	if err != nil || retried.Receipt.State != ReceiptDone || retried.Receipt.Fiscal == nil ||
		retried.Receipt.OperationID != "kassa-"+o.ID+"-sale-2" || len(retried.Receipt.History) != 1 ||
		retried.Receipt.History[0].OperationID != "kassa-"+o.ID+"-sale" || retried.Receipt.History[0].Error != "Открыта крышка." {
		t.Fatalf("retry: %+v, %v", retried.Receipt, err)
	}
	calls := sb.calls("smartcashier", "formReceipt")
	if len(calls) != 2 {
		t.Fatalf("%d formReceipt calls, want 2", len(calls))
	}
	for i, suffix := range []string{"-sale", "-sale-2"} {
		if want := `"operationId":"kassa-` + o.ID + suffix + `"`; !bytes.Contains(calls[i].Body, []byte(want)) {
			t.Errorf("call %d body %s lacks %s", i+1, calls[i].Body, want)
		}
	}
	var re *RequestError
	if _, err := a.reissueReceipt(ctx, o.ID, ReceiptSale, nil); !errors.As(err, &re) || re.Code != "receipt_done" {
		t.Errorf("retrying a done receipt: %v", err)
	}
}

// TestRefundReceipt: a refund issues a return receipt (type 2) under its
// own operation id, once.
func TestRefundReceipt(t *testing.T) {
	sb := startSandbox(t, nil)
	a := receiptApp(t, sb)
	ctx := context.Background()
	o := paidOrder(t, a)
	var re *RequestError
	if _, err := a.reissueReceipt(ctx, o.ID, ReceiptSaleReturn, nil); !errors.As(err, &re) || re.Code != "no_sale_receipt" {
		t.Errorf("refund before the sale receipt: %v", err)
	}
	if _, err := a.reissueReceipt(ctx, o.ID, ReceiptSale, nil); err != nil {
		t.Fatal(err)
	}
	refunded, err := a.reissueReceipt(ctx, o.ID, ReceiptSaleReturn, nil)
	if err != nil || refunded.Refund == nil || refunded.Refund.State != ReceiptDone || refunded.Refund.Type != ReceiptSaleReturn {
		t.Fatalf("refund: %+v, %v", refunded.Refund, err)
	}
	calls := sb.calls("smartcashier", "formReceipt")
	if len(calls) != 2 || !bytes.Contains(calls[1].Body, []byte(`"receiptType":2`)) || !bytes.Contains(calls[1].Body, []byte(`-sale_return"`)) {
		t.Errorf("calls = %+v", calls)
	}
	if _, err := a.reissueReceipt(ctx, o.ID, ReceiptSaleReturn, nil); !errors.As(err, &re) || re.Code != "receipt_done" {
		t.Errorf("a second refund: %v", err)
	}

	unpaid := paidOrder(t, a)
	unpaid.State = OrderPending
	a.orders.Save(ctx, unpaid)
	if _, err := a.reissueReceipt(ctx, unpaid.ID, ReceiptSale, nil); !errors.As(err, &re) || re.Status != http.StatusConflict {
		t.Errorf("receipt of an unpaid order: %v", err)
	}
	if _, err := a.reissueReceipt(ctx, NewOrderID(), ReceiptSale, nil); !errors.Is(err, ErrOrderNotFound) {
		t.Errorf("unknown order: %v", err)
	}
}

// TestPaidIsStoredWithItsReceipt: the write that makes an order paid also
// stores its receipt as sending, so a crash right after it (every later
// write fails) leaves the order in the open index with the receipt to
// send, and the next reconciler sends it once.
func TestPaidIsStoredWithItsReceipt(t *testing.T) {
	sb := startSandbox(t, nil)
	a := receiptApp(t, sb)
	storage := newCrashStorage(t, time.Now)
	a.useStorage(storage)
	ctx := context.Background()
	o := &Order{ID: NewOrderID(), State: OrderPending, Account: "card", Provider: "pegas", Amount: decimal.NewFromInt(350),
		Items:     []OrderItem{{SKU: "tea", Name: "Чай", Qty: 1, Price: decimal.NewFromInt(350), VAT: VAT20}},
		CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	if err := a.orders.Create(ctx, o); err != nil {
		t.Fatal(err)
	}

	// The paid record, with its receipt as sending, is write 1 (the open
	// index entry is there since the order was created); the process dies
	// before any write after it.
	storage.crashAtWrite(2)
	a.paid(ctx, o.ID, PaymentStatus{Paid: true}, "")
	storage.restart()
	stored, err := a.orders.Load(ctx, o.ID)
	if err != nil || stored.State != OrderPaid || stored.Receipt == nil || stored.Receipt.State != ReceiptSending {
		t.Fatalf("after the crash the order is stored as %+v, %v; want paid with its receipt sending", stored, err)
	}
	if ids, err := a.orders.OpenIDs(ctx); err != nil || len(ids) != 1 || ids[0] != o.ID {
		t.Fatalf("open index after the crash: %v, %v; want the paid order, whose receipt is under way", ids, err)
	}

	next := newReconciler(a)
	next.pass(ctx)
	stored, err = a.orders.Load(ctx, o.ID)
	if err != nil || stored.Receipt.State != ReceiptDone {
		t.Fatalf("after the next pass: %+v, %v; want the receipt done", stored.Receipt, err)
	}
	// The crashed process's send may have reached the till too: every send
	// carries the one operation id, which the till prints once.
	calls := sb.calls("smartcashier", "formReceipt")
	if len(calls) == 0 {
		t.Error("no formReceipt call")
	}
	for _, c := range calls {
		if want := `"operationId":"kassa-` + o.ID + `-sale"`; !bytes.Contains(c.Body, []byte(want)) {
			t.Errorf("call body %s lacks %s", c.Body, want)
		}
	}
	if ids, _ := a.orders.OpenIDs(ctx); len(ids) != 0 {
		t.Errorf("open index after the receipt: %v, want empty", ids)
	}
}

// TestReceiptMalformedReplyIsSentAgain: a formReceipt reply that is not the
// service's JSON may hide an accepted receipt: the receipt stays sending,
// the operator who asked hears the error, and the next pass sends it again
// under its operation id, which prints one receipt.
func TestReceiptMalformedReplyIsSentAgain(t *testing.T) {
	sb := startSandbox(t, nil)
	a := receiptApp(t, sb)
	ctx := context.Background()
	o := paidOrder(t, a)
	sb.control(http.MethodPost, "faults", map[string]any{"api": "smartcashier", "op": "formReceipt", "mode": "malformed", "count": 1}, nil)

	if _, err := a.reissueReceipt(ctx, o.ID, ReceiptSale, nil); !errors.Is(err, ErrMalformedReply) {
		t.Fatalf("reissueReceipt = %v, want the malformed reply", err)
	}
	stored, err := a.orders.Load(ctx, o.ID)
	if err != nil || stored.Receipt.State != ReceiptSending || !stored.Open() {
		t.Fatalf("after the malformed reply: %+v, %v; want sending, the order open", stored.Receipt, err)
	}
	a.reconciler.pass(ctx)
	stored, err = a.orders.Load(ctx, o.ID)
	if err != nil || stored.Receipt.State != ReceiptDone {
		t.Fatalf("after the next pass: %+v, %v; want done", stored.Receipt, err)
	}
	if n := len(sb.calls("smartcashier", "formReceipt")); n != 2 {
		t.Errorf("%d formReceipt calls, want 2", n)
	}
}

// TestReceiptNotStoredIsNotSent: a receipt that cannot be stored as
// sending is not sent (a crash would forget it was), and the operator who
// asked for it hears a storage error (503).
func TestReceiptNotStoredIsNotSent(t *testing.T) {
	sb := startSandbox(t, nil)
	a := receiptApp(t, sb)
	storage := newCrashStorage(t, time.Now)
	a.useStorage(lockableCrashStorage{storage})
	o := paidOrder(t, a)
	storage.crashAtWrite(1)
	if _, err := a.reissueReceipt(context.Background(), o.ID, ReceiptSale, nil); !errors.Is(err, ErrStorage) || StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("reissueReceipt with the storage failing = %v (status %d), want a 503 storage error", err, StatusCode(err))
	}
	if n := len(sb.calls("smartcashier", "formReceipt")); n != 0 {
		t.Errorf("%d formReceipt calls, want none", n)
	}
}

// lockableCrashStorage is crash storage whose locks the reconciler may
// take, as an operator's receipt retry does.
type lockableCrashStorage struct{ *crashStorage }

func (lockableCrashStorage) Lock(context.Context, string) error   { return nil }
func (lockableCrashStorage) Unlock(context.Context, string) error { return nil }
