package kassa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"testing/iotest"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// docProvider is a lifeProvider with payment documents, counting the calls
// a buyer's request makes.
type docProvider struct {
	*lifeProvider
	doc                   []byte
	broken                bool // the document's body breaks off halfway
	statusCalls, docCalls atomic.Int32
}

func (p *docProvider) PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error) {
	p.statusCalls.Add(1)
	return p.lifeProvider.PaymentStatus(ctx, ref)
}

func (p *docProvider) PaymentDocument(_ context.Context, _ PaymentRef, format string) (*Document, error) {
	p.docCalls.Add(1)
	var body io.Reader = bytes.NewReader(p.doc)
	if p.broken {
		body = io.MultiReader(bytes.NewReader(p.doc[:len(p.doc)/2]), iotest.ErrReader(errors.New("connection reset")))
	}
	return &Document{ContentType: "application/" + format, Length: int64(len(p.doc)), Body: io.NopCloser(body)}, nil
}

// newDocShop is a shop whose account has payment documents of doc, and a
// receipt handler.
func newDocShop(t *testing.T, doc []byte) (*lifeShop, *docProvider, *ReceiptHandler) {
	t.Helper()
	p := &docProvider{lifeProvider: newLifeProvider("pegas"), doc: doc}
	s := newLifeShop(t, p.lifeProvider, nil, nil)
	s.app.accounts["main"].PaymentProvider = p
	h := &ReceiptHandler{app: s.app, logger: zap.NewNop()}
	h.docs = newDocCache(maxCachedDocument, maxCachedDocuments)
	return s, p, h
}

// getDocument asks h for order id's document in format.
func getDocument(t *testing.T, h *ReceiptHandler, method, id, format string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, httptest.NewRequest(method, "/receipt?order="+id+"&format="+format, nil), nil); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

// TestDocumentOnlyForPaidOrders: the payment document of an order that is
// not paid is 409 order_not_paid, and the provider is not asked. Before:
// every request for any order made a Pegas call with the shop's token.
func TestDocumentOnlyForPaidOrders(t *testing.T) {
	s, p, h := newDocShop(t, []byte("%PDF-1.4 receipt"))
	pending := s.created("key-doc-pending-0001")
	for range 5 {
		w := getDocument(t, h, http.MethodGet, pending.ID, "pdf")
		if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), `"code":"order_not_paid"`) {
			t.Fatalf("a pending order's document: %d %s; want 409 order_not_paid", w.Code, w.Body)
		}
	}
	if n := p.docCalls.Load(); n != 0 {
		t.Errorf("documents of a pending order made %d provider calls; want 0", n)
	}
}

// TestDocumentIsCached: a paid order's document is fetched from the
// provider once per format, then served from memory (GET and HEAD alike);
// a document over the per-document cap is streamed and not kept. Before:
// every view was a provider call.
func TestDocumentIsCached(t *testing.T) {
	doc := []byte("%PDF-1.4 the receipt of a paid order")
	s, p, h := newDocShop(t, doc)
	o := s.paidOrder()
	for i := range 10 {
		method := http.MethodGet
		if i%2 == 1 {
			method = http.MethodHead
		}
		w := getDocument(t, h, method, o.ID, "pdf")
		if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/pdf" ||
			w.Header().Get("Content-Length") != "36" || (method == http.MethodGet && w.Body.String() != string(doc)) {
			t.Fatalf("view %d (%s): %d %v %q", i, method, w.Code, w.Header(), w.Body)
		}
	}
	if n := p.docCalls.Load(); n != 1 {
		t.Errorf("10 views of one document made %d provider calls; want 1", n)
	}
	if w := getDocument(t, h, http.MethodGet, o.ID, "jpeg"); w.Code != http.StatusOK || p.docCalls.Load() != 2 {
		t.Errorf("the other format: %d, %d calls in all; want 200 and a second call", w.Code, p.docCalls.Load())
	}

	big := bytes.Repeat([]byte("x"), 3000)
	s2, p2, h2 := newDocShop(t, big)
	h2.docs = newDocCache(1000, 10000)
	o2 := s2.paidOrder()
	for range 3 {
		if w := getDocument(t, h2, http.MethodGet, o2.ID, "pdf"); w.Code != http.StatusOK || !bytes.Equal(w.Body.Bytes(), big) {
			t.Fatalf("a big document: %d, %d bytes; want 200 and all %d", w.Code, w.Body.Len(), len(big))
		}
	}
	if n := p2.docCalls.Load(); n != 3 {
		t.Errorf("a document over the cap was fetched %d times for 3 views; want 3 (not kept)", n)
	}
}

// TestDocumentBrokenOff: a document whose body breaks off is 503
// provider_unavailable, not a truncated 200, and is not kept: the next
// view asks the provider again.
func TestDocumentBrokenOff(t *testing.T) {
	s, p, h := newDocShop(t, []byte("%PDF-1.4 a document that breaks off"))
	o := s.paidOrder()
	p.broken = true
	w := getDocument(t, h, http.MethodGet, o.ID, "pdf")
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(w.Body.String(), `"code":"provider_unavailable"`) {
		t.Fatalf("a broken-off document: %d %s; want 503 provider_unavailable", w.Code, w.Body)
	}
	p.broken = false
	if w := getDocument(t, h, http.MethodGet, o.ID, "pdf"); w.Code != http.StatusOK || w.Body.String() != string(p.doc) || p.docCalls.Load() != 2 {
		t.Errorf("the next view: %d %q after %d calls; want the whole document from a second call", w.Code, w.Body, p.docCalls.Load())
	}
}

// TestDocCacheBounded: the cache keeps at most its total of bytes, the
// oldest documents going first, and never one over its per-document cap.
func TestDocCacheBounded(t *testing.T) {
	c := newDocCache(100, 250)
	for _, key := range []string{"a", "b", "c"} {
		c.put(key, "application/pdf", bytes.Repeat([]byte(key), 100))
	}
	if _, ok := c.get("a"); ok {
		t.Error("the oldest document is still kept past the total")
	}
	for _, key := range []string{"b", "c"} {
		if d, ok := c.get(key); !ok || len(d.body) != 100 {
			t.Errorf("document %s: %v %d", key, ok, len(d.body))
		}
	}
	c.put("d", "application/pdf", make([]byte, 101))
	if _, ok := c.get("d"); ok {
		t.Error("a document over the per-document cap was kept")
	}
	if c.size > 250 {
		t.Errorf("the cache holds %d bytes; want at most 250", c.size)
	}
}

// TestBuyerCallsHaveABudget: buyer-triggered provider calls (documents,
// status polls) draw on a budget of their own per account: when it is
// spent, a document is 429 rate_limited with Retry-After and no call, and
// a status poll answers from the stored order without a call; the
// account's own limit keeps the rest of its tokens for the reconciler.
// Before: every buyer request was a provider call, and each took one of
// the reconciler's tokens.
func TestBuyerCallsHaveABudget(t *testing.T) {
	s, p, h := newDocShop(t, []byte("%PDF-1.4"))
	var paid []*Order
	for range 3 {
		paid = append(paid, s.paidOrder())
	}
	pending := s.created("key-doc-budget-poll")
	acc := s.app.accounts["main"]
	acc.limiter = rate.NewLimiter(rate.Limit(0.001), 10)
	acc.buyers = rate.NewLimiter(rate.Limit(0.001), 2) // two calls, then (nearly) none
	for i, o := range paid[:2] {
		if w := getDocument(t, h, http.MethodGet, o.ID, "pdf"); w.Code != http.StatusOK {
			t.Fatalf("document %d within the budget: %d %s", i, w.Code, w.Body)
		}
	}
	w := getDocument(t, h, http.MethodGet, paid[2].ID, "pdf")
	if w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), `"code":"rate_limited"`) || w.Header().Get("Retry-After") == "" {
		t.Fatalf("a document past the budget: %d %v %s; want 429 rate_limited with Retry-After", w.Code, w.Header(), w.Body)
	}
	if n := p.docCalls.Load(); n != 2 {
		t.Errorf("%d document calls; want 2", n)
	}
	// A cached document needs no budget.
	if w := getDocument(t, h, http.MethodGet, paid[0].ID, "pdf"); w.Code != http.StatusOK {
		t.Errorf("a kept document past the budget: %d %s", w.Code, w.Body)
	}

	p.statusCalls.Store(0)
	req := httptest.NewRequest(http.MethodGet, "/pay?order="+pending.ID, nil)
	req.Header.Set("Accept", "application/json")
	if w := s.serve(req); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"state":"pending"`) {
		t.Fatalf("a poll past the budget: %d %s; want 200 with the stored order", w.Code, w.Body)
	}
	if n := p.statusCalls.Load(); n != 0 {
		t.Errorf("a poll past the budget made %d provider calls; want 0", n)
	}
	if tokens := acc.limiter.Tokens(); tokens < 7.9 {
		t.Errorf("buyers left the reconciler %.1f of the account's 10 tokens; want 8", tokens)
	}
}

// TestBuyerRateLimitConfig: an account's buyers get buyer_rate_limit, or
// half its rate limit, or 5/s without one; a buyer_rate_limit at or over
// the account's rate limit (nothing left for the reconciler), for an
// account the app does not have, or not positive, is a config error.
func TestBuyerRateLimitConfig(t *testing.T) {
	a := &App{logger: zap.NewNop(), accounts: rateLimitAccounts()}
	if err := a.useRateLimits(); err != nil {
		t.Fatal(err)
	}
	if l := a.accounts["main"].buyers; l == nil || l.Limit() != 2.5 || l.Burst() != 3 {
		t.Errorf("main's buyers = %v; want half the provider's 5/s, burst 3", l)
	}
	if l := a.accounts["card"].buyers; l == nil || l.Limit() != 5 {
		t.Errorf("card's buyers = %v; want 5/s", l)
	}
	a = &App{logger: zap.NewNop(), accounts: rateLimitAccounts(), BuyerRateLimit: map[string]float64{"main": 1, "card": 20}}
	if err := a.useRateLimits(); err != nil {
		t.Fatal(err)
	}
	if a.accounts["main"].buyers.Limit() != 1 || a.accounts["card"].buyers.Limit() != 20 {
		t.Errorf("buyers = %v, %v; want buyer_rate_limit's 1 and 20", a.accounts["main"].buyers.Limit(), a.accounts["card"].buyers.Limit())
	}
	for limits, want := range map[*map[string]float64]string{
		{"main": 5}:  "would leave the reconciler nothing",
		{"cash": 1}:  `no payment account "cash"`,
		{"card": -1}: "want a positive number",
	} {
		a := &App{logger: zap.NewNop(), accounts: rateLimitAccounts(), BuyerRateLimit: *limits}
		if err := a.useRateLimits(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("buyer_rate_limit %v: err = %v; want one containing %q", *limits, err, want)
		}
	}

	parsed, err := parseGlobalOption(caddyfile.NewTestDispenser("kassa {\n\tbuyer_rate_limit main 1.5/s\n\trate_limit main 4/s\n}"), nil)
	if err != nil {
		t.Fatal(err)
	}
	var app App
	if err := json.Unmarshal(parsed.(httpcaddyfile.App).Value, &app); err != nil {
		t.Fatal(err)
	}
	if app.BuyerRateLimit["main"] != 1.5 || app.RateLimit["main"] != 4 {
		t.Errorf("buyer_rate_limit %v, rate_limit %v", app.BuyerRateLimit, app.RateLimit)
	}
	for _, bad := range []string{"buyer_rate_limit main", "buyer_rate_limit main 0/s", "buyer_rate_limit main 2", "buyer_rate_limit main 1/s\n\tbuyer_rate_limit main 2/s"} {
		if _, err := parseGlobalOption(caddyfile.NewTestDispenser("kassa {\n\t"+bad+"\n}"), nil); err == nil || !strings.Contains(err.Error(), "buyer_rate_limit") {
			t.Errorf("%q: err = %v; want one naming buyer_rate_limit", bad, err)
		}
	}
}
