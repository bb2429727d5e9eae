package kassa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// The order lifecycle's defects, each reproduced by hand: what the
// simulation (simulation_test.go) finds by itself, written down.

// lifeProvider is a payment provider whose invoices the test controls: it
// makes one invoice per call, pays them when told, and runs a hook inside
// its calls (a slow provider, during which other things happen).
type lifeProvider struct {
	mu        sync.Mutex
	provider  string          // crystalpay: no cancel; pegas: cancel works unless cancelErr
	invoices  map[string]bool // payment id -> paid
	created   int
	cancelErr error
	// during runs inside CreatePayment and PaymentStatus, once, then is
	// cleared.
	during func()
}

func newLifeProvider(provider string) *lifeProvider {
	return &lifeProvider{provider: provider, invoices: map[string]bool{}}
}

func (p *lifeProvider) hook() {
	p.mu.Lock()
	f := p.during
	p.during = nil
	p.mu.Unlock()
	if f != nil {
		f()
	}
}

// CreatePayment makes the invoice, then runs the hook: the reply is slow.
func (p *lifeProvider) CreatePayment(_ context.Context, req PaymentRequest) (Payment, error) {
	p.mu.Lock()
	p.created++
	id := fmt.Sprintf("inv-%d", p.created)
	p.invoices[id] = false
	p.mu.Unlock()
	p.hook()
	return Payment{ID: id, URL: "https://pay.example/" + id}, nil
}

// PaymentStatus answers what was true when it was asked, after the hook:
// the reply is slow, and what happens meanwhile is not in it.
func (p *lifeProvider) PaymentStatus(_ context.Context, ref PaymentRef) (PaymentStatus, error) {
	p.mu.Lock()
	paid := p.invoices[ref.ID]
	p.mu.Unlock()
	p.hook()
	return PaymentStatus{Paid: paid}, nil
}

func (p *lifeProvider) CancelPayment(context.Context, PaymentRef) error {
	if p.provider == "crystalpay" {
		return &ProviderError{Provider: "crystalpay", Op: "cancel", Kind: ErrNotSupported}
	}
	return p.cancelErr
}

func (p *lifeProvider) Balance(context.Context) (Balance, error) { return Balance{}, nil }
func (p *lifeProvider) Payout(context.Context, PayoutRequest) (Payout, error) {
	return Payout{}, ErrNotSupported
}

// pay is the buyer paying invoice id.
func (p *lifeProvider) pay(id string) {
	p.mu.Lock()
	p.invoices[id] = true
	p.mu.Unlock()
}

func (p *lifeProvider) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.created
}

// instantReceipts is a receipt service that prints every receipt at once
// and counts the operations it printed.
type instantReceipts struct {
	mu      sync.Mutex
	printed map[string]int
}

func (r *instantReceipts) FormReceipt(_ context.Context, rc Receipt) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.printed == nil {
		r.printed = map[string]int{}
	}
	r.printed[rc.OperationID]++
	return nil
}

func (r *instantReceipts) ReceiptStatus(_ context.Context, id string) (Operation, error) {
	return Operation{ID: id, Status: OperationProcessed, Fiscal: &FiscalParams{DocumentNumber: 1}}, nil
}
func (r *instantReceipts) DepositCash(context.Context, CashOperation) error  { return nil }
func (r *instantReceipts) WithdrawCash(context.Context, CashOperation) error { return nil }

// lifeShop is an app with one account on p, instant receipts, in-memory
// storage and a clock the test moves, and its checkout.
type lifeShop struct {
	t        *testing.T
	app      *App
	checkout *Checkout
	clock    *testClock
	provider *lifeProvider
	storage  certmagic.Storage
}

func newLifeShop(t *testing.T, p *lifeProvider, storage certmagic.Storage, clock *testClock) *lifeShop {
	t.Helper()
	if clock == nil {
		clock = &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	}
	if storage == nil {
		storage = newBenchStorage()
	}
	a := &App{logger: zap.NewNop(), now: clock.Now, PollInterval: caddy.Duration(10 * time.Second),
		OrderTTL: caddy.Duration(30 * time.Minute), KeepUnpaid: caddy.Duration(7 * 24 * time.Hour), catalog: testCatalog(t)}
	a.accounts = map[string]*account{"main": {name: "main", provider: p.provider, PaymentProvider: p}}
	a.receipts = &instantReceipts{}
	a.useStorage(storage)
	a.statuses.now = clock.Now
	h := &Checkout{app: a, acc: a.accounts["main"], logger: zap.NewNop(), MaxBody: defaultMaxBody,
		Redirect: "https://shop.example.com/thanks?order={kassa.order_id}"}
	return &lifeShop{t: t, app: a, checkout: h, clock: clock, provider: p, storage: storage}
}

// post checks out: JSON unless form, with key as the Idempotency-Key.
func (s *lifeShop) post(key string, form bool) *httptest.ResponseRecorder {
	var req *http.Request
	if form {
		req = httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader("item=tea-green&email=buyer@example.com"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	} else {
		req = httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(`{"items":[{"sku":"tea-green"}],"email":"buyer@example.com"}`))
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	return s.serve(req)
}

func (s *lifeShop) serve(req *http.Request) *httptest.ResponseRecorder {
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := httptest.NewRecorder()
	if err := s.checkout.ServeHTTP(w, req, nil); err != nil {
		s.t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

// created checks out with JSON and returns the pending order.
func (s *lifeShop) created(key string) *Order {
	s.t.Helper()
	w := s.post(key, false)
	var v struct {
		OrderID string `json:"order_id"`
	}
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &v) != nil {
		s.t.Fatalf("checkout: %d %s", w.Code, w.Body)
	}
	return s.load(v.OrderID)
}

func (s *lifeShop) load(id string) *Order {
	s.t.Helper()
	o, err := s.app.orders.Load(context.Background(), id)
	if err != nil {
		s.t.Fatalf("loading order %s: %v", id, err)
	}
	return o
}

func (s *lifeShop) pass() { s.app.reconciler.pass(context.Background()) }

func (s *lifeShop) compact() { s.app.reconciler.compact(context.Background()) }

// TestLatePaymentIsNotLost: a CrystalPAY link stays payable after its order
// expired; paid then, the order becomes paid late with its receipt, and
// compaction never deletes it. Before: the order stayed expired, with no
// receipt, and was deleted a week later.
func TestLatePaymentIsNotLost(t *testing.T) {
	for _, provider := range []string{"crystalpay", "pegas"} {
		t.Run(provider, func(t *testing.T) {
			p := newLifeProvider(provider)
			// Pegas: an expired order whose cancel was refused stays
			// payable too.
			p.cancelErr = &ProviderError{Provider: "pegas", Op: "deposit/cancel", Kind: ErrRejected, Status: 400}
			s := newLifeShop(t, p, nil, nil)
			o := s.created("")
			s.clock.Add(31 * time.Minute)
			s.pass()
			if got := s.load(o.ID); got.State != OrderExpired {
				t.Fatalf("past its time the order is %s, want expired", got.State)
			}
			s.clock.Add(40 * time.Minute)
			p.pay(o.Payment.ID)
			before := valueOf(metrics.ordersPaidLate)
			for range 3 {
				s.clock.Add(10 * time.Minute)
				s.pass()
			}
			got := s.load(o.ID)
			if got.State != OrderPaid || !got.PaidLate || got.Receipt == nil || got.Receipt.State != ReceiptDone {
				t.Fatalf("paid after it expired, the order is %s (paid late %v, receipt %+v); want paid late with its receipt done",
					got.State, got.PaidLate, got.Receipt)
			}
			if n := valueOf(metrics.ordersPaidLate) - before; n != 1 {
				t.Errorf("kassa_orders_paid_late_total moved by %v, want 1", n)
			}
			s.clock.Add(8 * 24 * time.Hour)
			s.compact()
			if got := s.load(o.ID); got.State != OrderPaid {
				t.Errorf("after compaction the order is %s", got.State)
			}
		})
	}
}

// TestCompactionLooksOnceMore: an expired order paid just before compaction
// is kept, paid late, not deleted.
func TestCompactionLooksOnceMore(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	o := s.created("")
	s.clock.Add(31 * time.Minute)
	s.pass()
	s.clock.Add(8 * 24 * time.Hour)
	p.pay(o.Payment.ID)
	s.compact()
	if got, err := s.app.orders.Load(context.Background(), o.ID); err != nil || got.State != OrderPaid || !got.PaidLate {
		t.Fatalf("after compaction: %+v, %v; want the order kept, paid late", got, err)
	}
}

// TestReplayOfAClosedOrder: a replayed checkout never sends the buyer to
// the payment page of an order that closed: paid answers as paid (JSON
// 200, a form to its redirect), closed unpaid 409 order_closed. Before: 201
// and 303 to the old payment page.
func TestReplayOfAClosedOrder(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	expired := s.created("key-expired-0000001")
	paid := s.created("key-paid-000000001")
	p.pay(paid.Payment.ID)
	s.pass()
	s.clock.Add(31 * time.Minute)
	s.pass()
	if s.load(expired.ID).State != OrderExpired || s.load(paid.ID).State != OrderPaid {
		t.Fatal("setup: want one order expired and one paid")
	}
	for _, tc := range []struct {
		name, key string
		form      bool
		status    int
		location  string
		code      string
	}{
		{"expired JSON", "key-expired-0000001", false, http.StatusConflict, "", "order_closed"},
		{"expired form", "key-expired-0000001", true, http.StatusConflict, "", ""},
		{"paid JSON", "key-paid-000000001", false, http.StatusOK, "", ""},
		{"paid form", "key-paid-000000001", true, http.StatusSeeOther, "https://shop.example.com/thanks?order=" + paid.ID, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := s.post(tc.key, tc.form)
			if w.Code != tc.status || w.Header().Get("Location") != tc.location {
				t.Fatalf("replay: %d %q %s; want %d %q", w.Code, w.Header().Get("Location"), w.Body, tc.status, tc.location)
			}
			if strings.Contains(w.Body.String(), "pay.example") {
				t.Errorf("the answer carries the payment page: %s", w.Body)
			}
			if tc.code != "" && !strings.Contains(w.Body.String(), `"code":"`+tc.code+`"`) {
				t.Errorf("answer %s, want code %s", w.Body, tc.code)
			}
			if tc.status == http.StatusOK && !strings.Contains(w.Body.String(), `"state":"paid"`) {
				t.Errorf("answer %s, want the paid order", w.Body)
			}
		})
	}
	// The buyer's status page shows no payment page for a closed order.
	req := httptest.NewRequest(http.MethodGet, "/pay?order="+expired.ID, nil)
	if w := s.serve(req); strings.Contains(w.Body.String(), "payment_url") {
		t.Errorf("status of an expired order: %s", w.Body)
	}
	if n := p.count(); n != 2 {
		t.Errorf("%d invoices, want 2", n)
	}
}

// failingStorage fails the writes fail says to fail.
type failingStorage struct {
	certmagic.Storage
	mu   sync.Mutex
	fail func(key string) bool
}

func (f *failingStorage) Store(ctx context.Context, key string, value []byte) error {
	f.mu.Lock()
	fail := f.fail != nil && f.fail(key)
	f.mu.Unlock()
	if fail {
		return errors.New("disk full")
	}
	return f.Storage.Store(ctx, key, value)
}

func (f *failingStorage) failWhen(fail func(key string) bool) {
	f.mu.Lock()
	f.fail = fail
	f.mu.Unlock()
}

// TestNoLinkWithoutAPendingOrder: when the order cannot be stored as
// pending after its provider made the invoice, the buyer gets 503 and no
// payment page; their retry with the same key gets the same invoice. Before:
// a 201 with the link, and the reconciler later failed the order the buyer
// could pay.
func TestNoLinkWithoutAPendingOrder(t *testing.T) {
	p := newLifeProvider("crystalpay")
	storage := &failingStorage{Storage: newBenchStorage()}
	s := newLifeShop(t, p, storage, nil)
	storage.failWhen(func(key string) bool { return strings.HasPrefix(key, ordersPrefix+"/") })
	w := s.post("key-storage-00000001", false)
	if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "pay.example") {
		t.Fatalf("checkout with the record unwritable: %d %s; want 503 without the payment page", w.Code, w.Body)
	}
	storage.failWhen(nil)
	w = s.post("key-storage-00000001", false)
	if w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), "https://pay.example/inv-1") {
		t.Fatalf("the retry: %d %s; want 201 with the first invoice", w.Code, w.Body)
	}
	if n := p.count(); n != 1 {
		t.Errorf("%d invoices, want 1", n)
	}
}

// TestExpiryAsksTheProviderItself: the check before expiring an order does
// not reuse a status a buyer's poll fetched a moment before. Before: the
// order, paid in its last second, expired.
func TestExpiryAsksTheProviderItself(t *testing.T) {
	p := newLifeProvider("pegas")
	s := newLifeShop(t, p, nil, nil)
	o := s.created("")
	s.clock.Add(30*time.Minute - 500*time.Millisecond)
	if w := s.serve(httptest.NewRequest(http.MethodGet, "/pay?order="+o.ID, nil)); !strings.Contains(w.Body.String(), `"state":"pending"`) {
		t.Fatalf("poll: %s", w.Body)
	}
	p.pay(o.Payment.ID)
	s.clock.Add(600 * time.Millisecond) // past expiry, within the poll's second
	s.pass()
	if got := s.load(o.ID); got.State != OrderPaid || got.PaidLate {
		t.Fatalf("paid in its last second, the order is %s (paid late %v); want paid", got.State, got.PaidLate)
	}
}

// TestSlowCheckoutDoesNotUndoTheReconciler: a checkout whose provider call
// outlasts the order (a stalled instance) finds, when it comes back, that
// the reconciler gave the order up: it neither writes the order back
// pending nor hands out its payment page. Before: it wrote the failed order
// back pending, out of the open index, and sent the buyer to pay it.
func TestSlowCheckoutDoesNotUndoTheReconciler(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	p.during = func() {
		s.clock.Add(40 * time.Minute)
		s.pass()
	}
	w := s.post("key-slow-000000001", false)
	if w.Code == http.StatusCreated || strings.Contains(w.Body.String(), "pay.example") {
		t.Fatalf("the slow checkout answered %d %s; want no payment page", w.Code, w.Body)
	}
	id, _, _ := s.app.orders.ByIdempotencyKey(context.Background(), "key:main:key-slow-000000001")
	got := s.load(id)
	if got.State != OrderFailed {
		t.Fatalf("the order is %s, want failed (given up by the reconciler)", got.State)
	}
	if got.Payment.ID != "inv-1" {
		t.Errorf("the given-up order does not know its invoice (%+v): a payment of it could not be noticed", got.Payment)
	}
}

// TestStaleStepCannotUndoAPayment: a reconciler that read an order before
// its provider call, while another instance (the lock lost) recorded the
// payment, does not store its old view: the order stays paid. Before: the
// expiry overwrote the paid order.
func TestStaleStepCannotUndoAPayment(t *testing.T) {
	p := newLifeProvider("pegas")
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	storage := newBenchStorage()
	a := newLifeShop(t, p, storage, clock)
	b := newLifeShop(t, p, storage, clock)
	o := a.created("")
	clock.Add(31 * time.Minute)
	// A asks the provider about the order, which it read pending; while
	// its question is on its way, the buyer pays and B records it.
	p.during = func() {
		p.pay(o.Payment.ID)
		b.pass()
		if got := b.load(o.ID); got.State != OrderPaid {
			t.Fatalf("setup: B did not record the payment during A's call: %s", got.State)
		}
	}
	a.pass()
	if got := a.load(o.ID); got.State != OrderPaid {
		t.Fatalf("the paid order is now %s", got.State)
	}
}
