package kassa

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// benchStorage is a certmagic.Storage in memory that counts its writes, so
// that the checkout benchmarks measure the handler, not a disk, and tell
// how many writes an order costs.
type benchStorage struct {
	mu     sync.RWMutex
	values map[string][]byte
	writes atomic.Int64 // Store and Delete calls
}

func newBenchStorage() *benchStorage { return &benchStorage{values: map[string][]byte{}} }

func (s *benchStorage) Store(_ context.Context, key string, value []byte) error {
	s.writes.Add(1)
	s.mu.Lock()
	s.values[key] = append([]byte(nil), value...)
	s.mu.Unlock()
	return nil
}

func (s *benchStorage) Load(_ context.Context, key string) ([]byte, error) {
	s.mu.RLock()
	v, ok := s.values[key]
	s.mu.RUnlock()
	if !ok {
		return nil, fs.ErrNotExist
	}
	return v, nil
}

func (s *benchStorage) Delete(_ context.Context, key string) error {
	s.writes.Add(1)
	s.mu.Lock()
	delete(s.values, key)
	s.mu.Unlock()
	return nil
}

func (s *benchStorage) Exists(_ context.Context, key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.values[key]
	return ok
}

func (s *benchStorage) List(_ context.Context, prefix string, _ bool) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var keys []string
	for k := range s.values {
		if path.Dir(k) == prefix {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

func (s *benchStorage) Stat(_ context.Context, key string) (certmagic.KeyInfo, error) {
	s.mu.RLock()
	v, ok := s.values[key]
	s.mu.RUnlock()
	if !ok {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, Size: int64(len(v)), IsTerminal: true}, nil
}

func (s *benchStorage) Lock(context.Context, string) error   { return nil }
func (s *benchStorage) Unlock(context.Context, string) error { return nil }

// benchProvider is a payment provider that answers at once and counts the
// calls it gets. Its payments are unpaid until paid is set.
type benchProvider struct {
	calls atomic.Int64
	paid  atomic.Bool
}

func (p *benchProvider) CreatePayment(_ context.Context, req PaymentRequest) (Payment, error) {
	p.calls.Add(1)
	return Payment{ID: "1_" + req.OrderID, URL: "https://pay.example/" + req.OrderID}, nil
}

func (p *benchProvider) PaymentStatus(context.Context, PaymentRef) (PaymentStatus, error) {
	p.calls.Add(1)
	return PaymentStatus{Paid: p.paid.Load()}, nil
}

func (p *benchProvider) CancelPayment(context.Context, PaymentRef) error { return nil }
func (p *benchProvider) Balance(context.Context) (Balance, error)        { return Balance{}, nil }
func (p *benchProvider) Payout(context.Context, PayoutRequest) (Payout, error) {
	return Payout{}, ErrNotSupported
}

// benchCheckout is a checkout handler on benchStorage and benchProvider,
// selling the test catalog.
func benchCheckout(tb testing.TB) (*Checkout, *benchStorage, *benchProvider) {
	tb.Helper()
	storage, provider := newBenchStorage(), new(benchProvider)
	a := &App{logger: zap.NewNop(), now: time.Now, OrderTTL: caddy.Duration(time.Hour), catalog: testCatalog(tb)}
	a.accounts = map[string]*account{"main": {name: "main", provider: "crystalpay", PaymentProvider: provider}}
	a.useStorage(storage)
	h := &Checkout{app: a, acc: a.accounts["main"], logger: zap.NewNop(), MaxBody: defaultMaxBody}
	return h, storage, provider
}

// serveBench serves req with h, as Caddy would, into a fresh recorder.
func serveBench(tb testing.TB, h *Checkout, req *http.Request) *httptest.ResponseRecorder {
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, req, nil); err != nil {
		tb.Fatal(err)
	}
	return w
}

// benchOrder makes a pending order through h's JSON checkout and returns
// its id.
func benchOrder(tb testing.TB, h *Checkout) string {
	tb.Helper()
	req := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(`{"items":[{"sku":"tea-green","qty":2},{"sku":"cup"}],"email":"buyer@example.com"}`))
	req.Header.Set("Content-Type", "application/json")
	var created struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal(serveBench(tb, h, req).Body.Bytes(), &created); err != nil || !ValidOrderID(created.OrderID) {
		tb.Fatalf("checkout: %+v, %v", created, err)
	}
	return created.OrderID
}

// BenchmarkCheckoutForm is a plain HTML form's checkout through ServeHTTP:
// parsing, pricing, storing the order and its payment, the redirect. It
// reports the storage writes (Store and Delete) and provider calls per
// order; the load harness (bench/) reads writes/op.
func BenchmarkCheckoutForm(b *testing.B) {
	h, storage, provider := benchCheckout(b)
	const form = "item=tea-green:2&item=cup&email=buyer@example.com"
	writes, calls := storage.writes.Load(), provider.calls.Load()
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(form))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if w := serveBench(b, h, req); w.Code != http.StatusSeeOther {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(storage.writes.Load()-writes)/float64(b.N), "writes/op")
	b.ReportMetric(float64(provider.calls.Load()-calls)/float64(b.N), "provider-calls/op")
}

// BenchmarkCheckoutStatus is a buyer's GET ?order= of a pending order
// through ServeHTTP: loading and decoding the record, the coalesced
// provider poll, the masked JSON answer.
func BenchmarkCheckoutStatus(b *testing.B) {
	h, _, provider := benchCheckout(b)
	url := "/pay?order=" + benchOrder(b, h)
	calls := provider.calls.Load()
	b.ReportAllocs()
	for b.Loop() {
		if w := serveBench(b, h, httptest.NewRequest(http.MethodGet, url, nil)); w.Code != http.StatusOK {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
	b.ReportMetric(float64(provider.calls.Load()-calls)/float64(b.N), "provider-calls/op")
}

// Interface guards
var (
	_ certmagic.Storage = (*benchStorage)(nil)
	_ PaymentProvider   = (*benchProvider)(nil)
)
