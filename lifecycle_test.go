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
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
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

// tokenExpiringReceipts prints the first receipt it is sent but loses the
// reply; its next send meets an expired token (401); after that it is
// Smart Cashier again: a repeated operation id answers its first result, a
// new one prints.
type tokenExpiringReceipts struct {
	mu      sync.Mutex
	printed map[string]bool
	sends   int
}

func (r *tokenExpiringReceipts) FormReceipt(_ context.Context, rc Receipt) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.printed == nil {
		r.printed = map[string]bool{}
	}
	r.sends++
	switch r.sends {
	case 1:
		r.printed[rc.OperationID] = true
		return &ProviderError{Provider: "smartcashier", Op: "formReceipt", Kind: ErrUnavailable}
	case 2:
		return &ProviderError{Provider: "smartcashier", Op: "formReceipt", Kind: ErrAuth, Status: http.StatusUnauthorized}
	}
	r.printed[rc.OperationID] = true
	return nil
}

func (r *tokenExpiringReceipts) ReceiptStatus(_ context.Context, id string) (Operation, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.printed[id] {
		return Operation{ID: id, Status: OperationProcessed, Fiscal: &FiscalParams{DocumentNumber: 1}}, nil
	}
	return Operation{}, &ProviderError{Provider: "smartcashier", Op: "checkStatus", Kind: ErrNotFound, Status: 404}
}
func (r *tokenExpiringReceipts) DepositCash(context.Context, CashOperation) error  { return nil }
func (r *tokenExpiringReceipts) WithdrawCash(context.Context, CashOperation) error { return nil }

// TestReceiptRefusedOnResendIsNoProof: a receipt whose first send was taken
// (the reply lost) and whose re-send is refused (the token expired) is
// known to the service: it is followed, not failed, and the operator's
// retry prints nothing twice. Before: it was recorded failed, and the
// retry printed a second sale receipt for one payment.
func TestReceiptRefusedOnResendIsNoProof(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	rc := &tokenExpiringReceipts{}
	s.app.receipts = rc
	o := s.created("")
	p.pay(o.Payment.ID)
	s.pass() // paid; its receipt is printed, the reply lost
	s.pass() // sent again: 401
	s.app.reissueReceipt(context.Background(), o.ID, ReceiptSale, nil)
	s.pass()
	if n := len(rc.printed); n != 1 {
		t.Fatalf("%d sale receipts printed for one payment (%v); want 1", n, rc.printed)
	}
	if got := s.load(o.ID); got.Receipt.State != ReceiptDone {
		t.Errorf("the receipt is %s, want done", got.Receipt.State)
	}
}

// underpaidProvider reports every invoice paid, with 1 ruble.
type underpaidProvider struct{ *lifeProvider }

func (p underpaidProvider) PaymentStatus(context.Context, PaymentRef) (PaymentStatus, error) {
	return PaymentStatus{Paid: true, Amount: decimal.NewNullDecimal(decimal.NewFromInt(1))}, nil
}

// TestUnderpaidOrderCloses: an order its provider reports paid with less
// than its amount expires at its time with the shortfall noted, leaves the
// open index, shows no payment page, and is never compacted: money came
// for it. Before: it stayed pending, polled every pass, forever.
func TestUnderpaidOrderCloses(t *testing.T) {
	lp := newLifeProvider("crystalpay")
	s := newLifeShop(t, lp, nil, nil)
	s.app.accounts["main"].PaymentProvider = underpaidProvider{lp}
	o := s.created("")
	s.clock.Add(31 * time.Minute)
	s.pass()
	got := s.load(o.ID)
	if got.State != OrderExpired || !strings.Contains(got.Error, "1.00 paid of 350.00") {
		t.Fatalf("past its time the underpaid order is %s (%q), want expired with the shortfall", got.State, got.Error)
	}
	if ids, _ := s.app.orders.OpenIDs(context.Background()); len(ids) != 0 {
		t.Errorf("open index: %v", ids)
	}
	if w := s.serve(httptest.NewRequest(http.MethodGet, "/pay?order="+o.ID, nil)); strings.Contains(w.Body.String(), "payment_url") {
		t.Errorf("status: %s", w.Body)
	}
	s.clock.Add(30 * 24 * time.Hour)
	s.compact()
	if _, err := s.app.orders.Load(context.Background(), o.ID); err != nil {
		t.Errorf("compaction deleted an order money came for: %v", err)
	}
}

// TestRestartsDoNotPostponeCompaction: each new reconciler's first look at
// an order closed unpaid keeps the age compaction reads. Before: it wrote
// the order's unpaid entry again, so with daily reloads the order was
// never compacted.
func TestRestartsDoNotPostponeCompaction(t *testing.T) {
	p := newLifeProvider("pegas") // its cancel goes through: not watched
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	s := newLifeShop(t, p, newCrashStorage(t, clock.Now), clock) // entries age by the clock
	o := s.created("")
	s.clock.Add(31 * time.Minute)
	s.pass()
	for range 10 {
		s.clock.Add(24 * time.Hour)
		s.app.reconciler = newReconciler(s.app) // a daily reload
		s.pass()
		s.compact()
	}
	if _, err := s.app.orders.Load(context.Background(), o.ID); !errors.Is(err, ErrOrderNotFound) {
		t.Fatalf("10 days after it closed (keep_unpaid 7 days) the order is still stored: %v", err)
	}
}

// TestStatusPastExpiryShowsNoPaymentPage: an order past its time, not yet
// expired by the reconciler, no longer offers its payment page.
func TestStatusPastExpiryShowsNoPaymentPage(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
	o := s.created("")
	s.clock.Add(31 * time.Minute)
	w := s.serve(httptest.NewRequest(http.MethodGet, "/pay?order="+o.ID, nil))
	if !strings.Contains(w.Body.String(), `"state":"pending"`) || strings.Contains(w.Body.String(), "payment_url") {
		t.Errorf("status past expiry: %s", w.Body)
	}
}

// TestRecoveredOrderIsNotAnEmptyPaymentPage: a replay of an order whose
// invoice was recovered from a lost reply (its page unknown) is told to
// start anew, not sent to an empty payment page.
func TestRecoveredOrderIsNotAnEmptyPaymentPage(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	o := s.created("key-recovered-0001")
	// As recovered after a lost reply: pending, only the order id known.
	s.app.update(context.Background(), o.ID, func(o *Order) bool { o.Payment = Payment{Recovered: true}; return true })
	w := s.post("key-recovered-0001", false)
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "order_closed") {
		t.Errorf("replay of a recovered order: %d %s", w.Code, w.Body)
	}
}

// storeHook runs before once, in a goroutine of its own, just before the
// first Store of a key with prefix: another instance acting at that
// moment, which the storage's locks may make wait.
type storeHook struct {
	certmagic.Storage
	prefix string
	once   sync.Once
	before func()
	done   sync.WaitGroup
}

func (h *storeHook) Store(ctx context.Context, key string, value []byte) error {
	if strings.HasPrefix(key, h.prefix) && h.before != nil {
		h.once.Do(func() {
			h.done.Add(1)
			go func() { defer h.done.Done(); h.before() }()
			time.Sleep(50 * time.Millisecond) // the other instance reaches its storage lock
		})
	}
	return h.Storage.Store(ctx, key, value)
}

// TestDoubleClickAcrossInstances: a double click whose two requests a load
// balancer sends to two instances on one storage makes one order: the
// second waits for the key's storage lock and gets the first's order.
// Before: two orders and two payment pages for one Idempotency-Key.
func TestDoubleClickAcrossInstances(t *testing.T) {
	shared := &certmagic.FileStorage{Path: t.TempDir()}
	p := newLifeProvider("crystalpay")
	hooked := &storeHook{Storage: shared, prefix: idempotencyPrefix + "/"}
	a := newLifeShop(t, p, hooked, nil)
	b := newLifeShop(t, p, shared, a.clock)
	b.app.useLocks(new(processLocks)) // another process
	var bw *httptest.ResponseRecorder
	hooked.before = func() { bw = b.post("dbl-click-0000001", false) }
	aw := a.post("dbl-click-0000001", false)
	hooked.done.Wait()
	var va, vb struct {
		OrderID string `json:"order_id"`
	}
	json.Unmarshal(aw.Body.Bytes(), &va)
	json.Unmarshal(bw.Body.Bytes(), &vb)
	if va.OrderID == "" || va.OrderID != vb.OrderID || p.count() != 1 {
		t.Fatalf("one Idempotency-Key: A %d %s, B %d %s, %d invoices", aw.Code, aw.Body, bw.Code, bw.Body, p.count())
	}
}

// TestCompactionAndAConfirmAcrossInstances: an operator confirms, on
// instance B, an order that A's compaction is deleting at that moment:
// either the order is deleted and the confirm says it does not exist, or
// the order is kept, paid. Before: B's confirm answered paid, and A then
// deleted the paid order.
func TestCompactionAndAConfirmAcrossInstances(t *testing.T) {
	shared := &certmagic.FileStorage{Path: t.TempDir()}
	p := newLifeProvider("pegas") // its cancel goes through: compaction asks nothing
	a := newLifeShop(t, p, shared, nil)
	o := a.created("")
	a.clock.Add(31 * time.Minute)
	a.pass()
	a.clock.Add(8 * 24 * time.Hour)
	hooked := &deleteHook{Storage: shared, key: openKey(o.ID)}
	compacting := newLifeShop(t, p, hooked, a.clock)
	b := newLifeShop(t, p, shared, a.clock)
	b.app.useLocks(new(processLocks))
	var confirmErr error
	hooked.before = func() { _, confirmErr = b.app.confirmOrder(context.Background(), o.ID) }
	compacting.compact()
	hooked.done.Wait()
	got, err := b.app.orders.Load(context.Background(), o.ID)
	switch {
	case confirmErr == nil && (err != nil || got.State != OrderPaid):
		t.Fatalf("the operator was told the order is paid, and it is now %v, %v", got, err)
	case confirmErr != nil && err == nil:
		t.Fatalf("the confirm failed (%v), and the order is still stored: %s", confirmErr, got.State)
	}
}

// deleteHook is storeHook for the first Delete of key.
type deleteHook struct {
	certmagic.Storage
	key    string
	once   sync.Once
	before func()
	done   sync.WaitGroup
}

func (h *deleteHook) Delete(ctx context.Context, key string) error {
	if key == h.key && h.before != nil {
		h.once.Do(func() {
			h.done.Add(1)
			go func() { defer h.done.Done(); h.before() }()
			time.Sleep(50 * time.Millisecond)
		})
	}
	return h.Storage.Delete(ctx, key)
}

// sharedTill is one Smart Cashier account seen by two instances. It
// follows the simulation's documented reading of the seed: a repeated id
// answers its first result; a refused request is not recorded.
type sharedTill struct {
	mu      sync.Mutex
	printed map[string]int
}

func (s *sharedTill) print(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.printed == nil {
		s.printed = map[string]int{}
	}
	if s.printed[id] == 0 {
		s.printed[id] = 1
	}
}

func (s *sharedTill) status(id string) (Operation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.printed[id] > 0 {
		return Operation{ID: id, Status: OperationProcessed, Fiscal: &FiscalParams{DocumentNumber: 1}}, nil
	}
	return Operation{}, &ProviderError{Provider: "smartcashier", Op: "checkStatus", Kind: ErrNotFound, Status: 404}
}

// tillView is one instance's SmartCashier: before runs as its send is on
// its way (a slow network); refuse makes it refuse locally, as
// SmartCashier.FormReceipt does for a rate its config has no tax_type for
// (an instance whose config differs during a rolling reload).
type tillView struct {
	till   *sharedTill
	refuse bool
	before func()
}

func (v *tillView) FormReceipt(_ context.Context, rc Receipt) error {
	if v.refuse {
		return invalid("items[0].vat", "Smart Cashier API v1.0.1 has no taxType code for vat22")
	}
	if f := v.before; f != nil {
		v.before = nil
		f()
	}
	v.till.print(rc.OperationID)
	return nil
}
func (v *tillView) ReceiptStatus(_ context.Context, id string) (Operation, error) {
	return v.till.status(id)
}
func (v *tillView) DepositCash(context.Context, CashOperation) error  { return nil }
func (v *tillView) WithdrawCash(context.Context, CashOperation) error { return nil }

// TestRefusalWhileAnotherSendIsOnItsWay: A's reconciler is sending the sale
// receipt (in flight) when the operator, on B, asks for the receipt: B's
// send of the same operation id is refused, and the status lookup does not
// know the id yet (A's request has not landed), so B records the attempt
// failed by a refusal. A's request then prints it. The operator's retry
// finds the service knows the attempt and follows it: one receipt. Before:
// the retry issued -sale-2, and two sale receipts were printed for one
// payment.
func TestRefusalWhileAnotherSendIsOnItsWay(t *testing.T) {
	shared := &certmagic.FileStorage{Path: t.TempDir()}
	p := newLifeProvider("crystalpay")
	a := newLifeShop(t, p, shared, nil)
	b := newLifeShop(t, p, shared, a.clock)
	b.app.useLocks(new(processLocks))
	till := &sharedTill{}
	viewA, viewB := &tillView{till: till}, &tillView{till: till, refuse: true}
	a.app.receipts, b.app.receipts = viewA, viewB

	o := a.created("")
	p.pay(o.Payment.ID)
	if _, err := a.app.paid(context.Background(), o.ID, PaymentStatus{Paid: true}, ""); err != nil {
		t.Fatal(err)
	}
	viewA.before = func() {
		// The operator on B, while A's send is on its way.
		_, err := b.app.reissueReceipt(context.Background(), o.ID, ReceiptSale, nil)
		t.Logf("B's operator retry: %v", err)
	}
	a.pass() // A sends kassa-<id>-sale; it lands after B recorded it failed
	if got := a.load(o.ID); got.Receipt.State == ReceiptFailed {
		t.Logf("order's sale receipt is recorded failed although %s was printed: %v", got.Receipt.OperationID, till.printed)
	}
	viewB.refuse = false
	a.app.reissueReceipt(context.Background(), o.ID, ReceiptSale, nil) // the operator retries the failed receipt
	a.pass()
	if n := len(till.printed); n != 1 {
		t.Fatalf("%d sale receipts printed for one payment: %v", n, till.printed)
	}
}

type cashRecorder struct {
	instantReceipts
	deposits []string
}

func (r *cashRecorder) DepositCash(_ context.Context, op CashOperation) error {
	r.deposits = append(r.deposits, op.OperationID)
	return nil
}

// TestCashOperationInTheOrdersNamespace: a cash deposit under
// kassa-<order>-sale is sent (kassa_receipt's issue refuses that namespace;
// the admin API does not). At Smart Cashier, whose operation ids are one
// namespace for formReceipt/depositCash/withdrawCash, the order's sale
// receipt would then be answered with the deposit's first result and never
// printed.
func TestCashOperationInTheOrdersNamespace(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	rec := &cashRecorder{}
	s.app.receipts = rec
	o := s.created("")
	id := receiptOperationID(o.ID, ReceiptSale, 1)
	req := httptest.NewRequest(http.MethodPost, "/kassa/cash/deposit",
		strings.NewReader(`{"amount":"500.00","cashbox_id":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad","operation_id":"`+id+`"}`))
	w := httptest.NewRecorder()
	if err := s.app.serveAdmin(w, req); err != nil {
		writeAdminError(w, err)
	}
	if len(rec.deposits) > 0 || w.Code != http.StatusBadRequest {
		t.Fatalf("a cash deposit under the order receipt's operation id %s: %d %s, sent %v", id, w.Code, strings.TrimSpace(w.Body.String()), rec.deposits)
	}
}

// TestTaxTypesAliasesAreRefused: JSON config may name one rate
// twice (vat18 and vat20; VAT22 and vat22): which code wins depends on map
// order, so the same config sends different codes on different starts.
func TestTaxTypesAliasesAreRefused(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		s := &SmartCashier{Token: "t", Taxation: TaxationOSN, TaxTypes: map[string]int{"vat18": 3, "vat20": 7}}
		err := s.Provision(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "name one rate") {
			seen[s.taxTypes[VAT20]] = true
		}
	}
	if len(seen) > 0 {
		t.Fatalf("tax_types {vat18: 3, vat20: 7} is accepted, and vat20 goes out as %v depending on map order", seen)
	}
}

// TestReturnReceiptKeepsTheSalesDefaultRate: a cup (no rate in the
// catalog: the `vat` default) sold in December 2025 under `vat vat20` is
// refunded in January 2026, after the config moved to `vat vat22`
// (tax_type vat22 11): the sale went out as taxType 3 (20%), the return as
// 11 (22%). A return must carry the sale's rate.
func TestReturnReceiptKeepsTheSalesDefaultRate(t *testing.T) {
	stub := newProviderStub(t, stubPick(func(_ int, r *http.Request) stubAnswer {
		if strings.HasSuffix(r.URL.Path, "checkStatus") {
			return scReply(http.StatusOK, `{"status":2,"creationDateTimeUtc":"2025-12-30T10:00:00Z","fiscalParams":{"fiscalDocumentNumber":1,"fiscalDocumentSign":"1","fiscalDocumentDateTimeUtc":"2025-12-30T10:00:00Z","fnNumber":"1"}}`)
		}
		return scReply(http.StatusOK, "")
	}))
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	s.app.receipts = provisionSC(t, stub.URL, func(sc *SmartCashier) { sc.VAT = VAT20 })
	req := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(`{"items":[{"sku":"cup"}],"email":"buyer@example.com"}`))
	req.Header.Set("Content-Type", "application/json")
	w := s.serve(req)
	if w.Code != http.StatusCreated {
		t.Fatalf("checkout: %d %s", w.Code, w.Body)
	}
	var o *Order
	for _, id := range mustOpenIDs(t, s) {
		o = s.load(id)
	}
	p.pay(o.Payment.ID)
	s.pass()
	s.pass()
	if got := s.load(o.ID); got.Receipt == nil || got.Receipt.State != ReceiptDone {
		t.Fatalf("sale receipt: %+v", got.Receipt)
	}
	// The new year's config.
	s.app.receipts = provisionSC(t, stub.URL, func(sc *SmartCashier) { sc.VAT = VAT22; sc.TaxTypes = map[string]int{"vat22": 11} })
	if _, err := s.app.reissueReceipt(context.Background(), o.ID, ReceiptSaleReturn, nil); err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, r := range stub.requests() {
		if strings.HasSuffix(r.Path, "formReceipt") {
			body := string(r.Body)
			i := strings.Index(body, `"taxType":`)
			types = append(types, body[i:i+12])
		}
	}
	if len(types) != 2 || types[0] != types[1] {
		t.Fatalf("the sale and its return carry different rates: %v", types)
	}
}

func mustOpenIDs(t *testing.T, s *lifeShop) []string {
	ids, err := s.app.orders.OpenIDs(context.Background())
	if err != nil || len(ids) == 0 {
		t.Fatalf("open ids: %v %v", ids, err)
	}
	return ids
}

// staleWriteReceipts prints at once, but first runs before: another
// instance's stale copy of the order lands while the send is on its way.
type staleWriteReceipts struct {
	instantReceipts
	before func()
}

func (r *staleWriteReceipts) FormReceipt(ctx context.Context, rc Receipt) error {
	if f := r.before; f != nil {
		r.before = nil
		f()
	}
	return r.instantReceipts.FormReceipt(ctx, rc)
}

// TestStaleWriteWithoutReceiptDoesNotPanic: A records the order paid with
// its receipt sending and sends it; meanwhile B, whose order lock was lost,
// writes the copy it read before the payment (expired, no receipt). A's
// receiptSent finds no receipt and changes nothing, and advanceReceipt
// then reads rec.State of a nil receipt: a panic in the reconciler's
// goroutine, which takes the whole Caddy process down.
func TestStaleWriteWithoutReceiptDoesNotPanic(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	rc := &staleWriteReceipts{}
	s.app.receipts = rc
	o := s.created("")
	stale := s.load(o.ID) // B's copy, read before the payment
	p.pay(o.Payment.ID)
	rc.before = func() {
		prev := stale.clone()
		stale.moveTo(OrderExpired, s.clock.Now())
		if err := s.app.orders.saveChange(context.Background(), prev, stale); err != nil {
			t.Error(err)
		}
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("reconciler pass panicked: %v", r)
		}
	}()
	s.pass()
}

// refusingReceipts refuses every send while refuse is set (a token that
// expired), and prints otherwise; it knows only what it printed.
type refusingReceipts struct {
	instantReceipts
	refuse bool
}

func (r *refusingReceipts) FormReceipt(ctx context.Context, rc Receipt) error {
	if r.refuse {
		return &ProviderError{Provider: "smartcashier", Op: "formReceipt", Kind: ErrAuth, Status: http.StatusUnauthorized}
	}
	return r.instantReceipts.FormReceipt(ctx, rc)
}

func (r *refusingReceipts) ReceiptStatus(ctx context.Context, id string) (Operation, error) {
	r.mu.Lock()
	printed := r.printed[id] > 0
	r.mu.Unlock()
	if !printed {
		return Operation{}, &ProviderError{Provider: "smartcashier", Op: "checkStatus", Kind: ErrNotFound, Status: 404}
	}
	return r.instantReceipts.ReceiptStatus(ctx, id)
}

// TestRetryAfterARefusalWaitsOutTheSend: a receipt whose send was refused,
// and which Smart Cashier does not know, is issued again under a new
// operation id only once any other send of it has had its longest time to
// land; before that the operator hears 409 receipt_in_progress.
func TestRetryAfterARefusalWaitsOutTheSend(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	rc := &refusingReceipts{refuse: true}
	s.app.receipts = rc
	o := s.created("")
	p.pay(o.Payment.ID)
	s.pass()
	if got := s.load(o.ID).Receipt; got.State != ReceiptFailed || !got.Refused {
		t.Fatalf("after the refusal: %+v", got)
	}
	rc.refuse = false
	var re *RequestError
	if _, err := s.app.reissueReceipt(context.Background(), o.ID, ReceiptSale, nil); !errors.As(err, &re) || re.Code != "receipt_in_progress" {
		t.Fatalf("a retry at once: %v, want 409 receipt_in_progress", err)
	}
	s.clock.Add(2 * time.Minute)
	got, err := s.app.reissueReceipt(context.Background(), o.ID, ReceiptSale, nil)
	if err != nil || got.Receipt.State != ReceiptDone || got.Receipt.OperationID != "kassa-"+o.ID+"-sale-2" {
		t.Fatalf("a retry after the send's window: %+v, %v", got.Receipt, err)
	}
	if n := len(rc.printed); n != 1 {
		t.Errorf("%d receipts printed", n)
	}
}

// problemProvider reports a problem with every unpaid invoice, as
// CrystalPAY v3 does for wrongamount, and amount, when set, as the amount
// that came.
type problemProvider struct {
	*lifeProvider
	amount decimal.NullDecimal
}

func (p problemProvider) PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error) {
	st, err := p.lifeProvider.PaymentStatus(ctx, ref)
	if err == nil && !st.Paid {
		st.Problem, st.Amount = "wrongamount: the buyer sent another amount", p.amount
	}
	return st, err
}

// problemShop is a lifeShop whose provider reports a problem with every
// unpaid invoice, logging warnings to logs.
func problemShop(t *testing.T, amount decimal.NullDecimal) (*lifeShop, *observer.ObservedLogs) {
	lp := newLifeProvider("crystalpay")
	s := newLifeShop(t, lp, nil, nil)
	core, logs := observer.New(zapcore.WarnLevel)
	s.app.logger = zap.New(core)
	s.app.accounts["main"].PaymentProvider = problemProvider{lp, amount}
	return s, logs
}

// TestPaymentProblemIsNotedAndExpires: a problem the provider reports is
// noted on the pending order once, however often it is read, without
// paying it; at its time the order expires with the note, its invoice
// left watched, and compaction keeps it while the provider still reports
// the problem; paid after, it is paid late.
func TestPaymentProblemIsNotedAndExpires(t *testing.T) {
	s, logs := problemShop(t, decimal.NullDecimal{})
	o := s.created("")
	for range 3 {
		s.clock.Add(time.Minute)
		s.pass()
	}
	got := s.load(o.ID)
	if got.State != OrderPending || !strings.Contains(got.Error, "wrongamount") || got.Receipt != nil || got.PaidAmount.Valid {
		t.Fatalf("the order is %s (%q, receipt %v, paid %v), want pending with the problem noted", got.State, got.Error, got.Receipt, got.PaidAmount)
	}
	if n := logs.FilterMessage("payment problem").Len(); n != 1 {
		t.Errorf("%d warnings of the problem after 3 passes, want one", n)
	}
	s.clock.Add(30 * time.Minute)
	s.pass()
	got = s.load(o.ID)
	if got.State != OrderExpired || !strings.Contains(got.Error, "wrongamount") || got.InvoiceClosed || !got.watched() {
		t.Fatalf("past its time the order is %s (%q, invoice closed %v), want expired with its note, watched", got.State, got.Error, got.InvoiceClosed)
	}
	s.clock.Add(30 * 24 * time.Hour)
	s.compact()
	if _, err := s.app.orders.Load(context.Background(), o.ID); err != nil {
		t.Fatalf("compaction deleted an order the provider reports a problem with: %v", err)
	}
	s.provider.pay(o.Payment.ID)
	s.compact()
	if got := s.load(o.ID); got.State != OrderPaid || !got.PaidLate || got.Error != "" {
		t.Errorf("paid after, the order is %s (late %v, %q), want paid late", got.State, got.PaidLate, got.Error)
	}
}

// TestStatusPollNotesAPaymentProblem: a buyer's poll that reads a problem
// notes it, with the amount the provider reports, and answers pending.
func TestStatusPollNotesAPaymentProblem(t *testing.T) {
	s, _ := problemShop(t, decimal.NewNullDecimal(decimal.NewFromInt(300)))
	o := s.created("")
	w := s.serve(httptest.NewRequest(http.MethodGet, "/pay?order="+o.ID, nil))
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"state":"pending"`) {
		t.Fatalf("status: %d %s", w.Code, w.Body)
	}
	got := s.load(o.ID)
	if got.State != OrderPending || !strings.Contains(got.Error, "wrongamount") || !got.PaidAmount.Valid || !got.PaidAmount.Decimal.Equal(decimal.NewFromInt(300)) {
		t.Errorf("after the poll the order is %s (%q, paid %v), want pending with the problem and 300 noted", got.State, got.Error, got.PaidAmount)
	}
}
