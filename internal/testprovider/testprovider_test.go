package testprovider_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"github.com/shopspring/decimal"

	"github.com/caddy-kassa/kassa"
	"github.com/caddy-kassa/kassa/internal/testprovider"
)

// shop is a Caddy running the kassa app on testpay and testtill, with the
// services behind them.
type shop struct {
	url  string
	book *testprovider.Book
	till *testprovider.Till
}

// startShop loads a Caddy config, as JSON, whose kassa app takes payments
// through testpay and receipts through testtill, and serves a checkout at
// /pay and receipts at /receipt.
func startShop(t *testing.T) *shop {
	t.Helper()
	s := &shop{book: testprovider.NewBook("book-token"), till: testprovider.NewTill()}
	bookSrv, tillSrv := httptest.NewServer(s.book), httptest.NewServer(s.till)
	t.Cleanup(bookSrv.Close)
	t.Cleanup(tillSrv.Close)
	addr := freeAddr(t)
	s.url = "http://" + addr
	config := map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"storage": map[string]any{"module": "file_system", "root": t.TempDir()},
		"apps": map[string]any{
			"kassa": map[string]any{
				"payments": map[string]any{"main": map[string]any{
					"provider": "testpay", "endpoint": bookSrv.URL, "token": "book-token",
					"timeout": "2s", "max_amount": "5000"}},
				"receipts": map[string]any{"provider": "testtill", "endpoint": tillSrv.URL,
					"vat": "vat22", "utc_offset_hours": 5},
				"products": []map[string]any{
					{"sku": "tea", "name": "Tea", "price": "350.00"},
					{"sku": "cup", "name": "Cup", "price": "1200.00", "vat": "vat10"},
				},
				"poll_interval": "50ms",
			},
			"http": map[string]any{"servers": map[string]any{"shop": map[string]any{
				"listen":          []string{addr},
				"automatic_https": map[string]any{"disable": true},
				"routes": []map[string]any{
					{"match": []map[string]any{{"path": []string{"/pay"}}},
						"handle": []map[string]any{{"handler": "kassa_checkout", "payment": "main"}}},
					{"match": []map[string]any{{"path": []string{"/receipt"}}},
						"handle": []map[string]any{{"handler": "kassa_receipt"}}},
				},
			}}},
		},
	}
	cfg, err := json.Marshal(config)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading the config: %v", err)
	}
	t.Cleanup(func() { caddy.Stop() })
	return s
}

// freeAddr is a loopback address with a port nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// do sends a request to the shop and returns the status and body.
func (s *shop) do(t *testing.T, method, path, accept, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, s.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", accept)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(data)
}

// orderView is the part of a checkout's JSON answer the test reads.
type orderView struct {
	OrderID    string `json:"order_id"`
	State      string `json:"state"`
	Amount     string `json:"amount"`
	PaymentURL string `json:"payment_url"`
	Receipt    struct {
		State       string `json:"state"`
		OperationID string `json:"operation_id"`
	} `json:"receipt"`
	Error struct {
		Code string `json:"code"`
	} `json:"error"`
}

// checkout posts a cart and returns the answer.
func (s *shop) checkout(t *testing.T, cart string) (int, orderView) {
	t.Helper()
	status, body := s.do(t, http.MethodPost, "/pay", "application/json", `{"items":`+cart+`,"email":"buyer@example.com"}`)
	var v orderView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("checkout answered %d %s", status, body)
	}
	return status, v
}

// order returns an order's status as the buyer's client polls it.
func (s *shop) order(t *testing.T, id string) orderView {
	t.Helper()
	status, body := s.do(t, http.MethodGet, "/pay?order="+id, "application/json", "")
	var v orderView
	if err := json.Unmarshal([]byte(body), &v); status != http.StatusOK || err != nil {
		t.Fatalf("status of %s: %d %s", id, status, body)
	}
	return v
}

// receiptFor waits for the till to print a receipt of amount, which the
// reconciler sends once it has seen the order paid.
func (s *shop) receiptFor(t *testing.T, amount string) kassa.Receipt {
	t.Helper()
	want := decimal.RequireFromString(amount)
	deadline := time.Now().Add(30 * time.Second)
	for {
		for _, r := range s.till.Receipts() {
			if r.Cashless.Equal(want) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no receipt of %s after 30s; the till has %d", amount, len(s.till.Receipts()))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestShopOnProvidersOfAnotherPackage runs a shop whose payment and receipt
// providers live outside package kassa, which knows neither name: a
// checkout over HTTP, the payment seen by the reconciler, the receipt
// printed with the receipt service's default VAT and shown in its time
// zone, a lost reply recovered after the grace the payment provider's own
// timeout sets, and an amount the provider refuses.
func TestShopOnProvidersOfAnotherPackage(t *testing.T) {
	s := startShop(t)

	t.Run("paid", func(t *testing.T) {
		status, created := s.checkout(t, `[{"sku":"tea","qty":2}]`)
		if status != http.StatusCreated || created.State != "pending" || created.Amount != "700.00" {
			t.Fatalf("checkout: %d %+v", status, created)
		}
		inv, ok := s.book.Invoice(created.OrderID)
		if !ok || !inv.Amount.Equal(decimal.NewFromInt(700)) || created.PaymentURL != "https://pay.example/"+inv.ID {
			t.Fatalf("the book has %+v (%v) for %+v", inv, ok, created)
		}
		if v := s.order(t, created.OrderID); v.State != "pending" {
			t.Fatalf("before payment: %+v", v)
		}

		// Nobody polls the order now: only the reconciler can see it paid
		// and send its receipt.
		s.book.MarkPaid(created.OrderID)
		r := s.receiptFor(t, "700.00")
		if len(r.Positions) != 1 || r.Positions[0].Name != "Tea" || r.Positions[0].VAT != kassa.VAT22 || r.Email != "buyer@example.com" {
			t.Errorf("receipt %+v: want Tea at the till's default vat22, to buyer@example.com", r)
		}
		deadline := time.Now().Add(30 * time.Second)
		v := s.order(t, created.OrderID)
		for v.Receipt.State != "done" && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			v = s.order(t, created.OrderID)
		}
		if v.State != "paid" || v.Receipt.State != "done" || v.Receipt.OperationID != r.OperationID {
			t.Fatalf("after payment: %+v", v)
		}

		status, page := s.do(t, http.MethodGet, "/receipt?order="+created.OrderID, "text/html", "")
		wantTime := testprovider.FiscalTime.In(time.FixedZone("", 5*3600)).Format("02.01.2006 15:04")
		if status != http.StatusOK || !strings.Contains(page, "НДС 22%") || !strings.Contains(page, wantTime) {
			t.Errorf("receipt page (%d) lacks the default VAT or the time %s in the till's zone:\n%s", status, wantTime, page)
		}
	})

	t.Run("lost reply", func(t *testing.T) {
		asked := testprovider.TimeoutAsks()
		s.book.LoseNextReply()
		if status, v := s.checkout(t, `[{"sku":"cup"}]`); status == http.StatusCreated {
			t.Fatalf("a lost reply answered %d %+v", status, v)
		}
		lost := s.book.Lost()
		if len(lost) != 1 {
			t.Fatalf("lost replies: %v", lost)
		}
		// The invoice exists but the order has none: the reconciler
		// re-sends the creation once twice the provider's 2s timeout and a
		// second have passed (5s, against a minute for a provider that
		// does not say), the book refuses the repeat, and the order is
		// recovered by its id. Marked paid now, its receipt is printed
		// only after that.
		s.book.MarkPaid(lost[0])
		r := s.receiptFor(t, "1200.00")
		if len(r.Positions) != 1 || r.Positions[0].VAT != kassa.VAT10 {
			t.Errorf("receipt %+v: want the cup at its own vat10", r)
		}
		if v := s.order(t, lost[0]); v.State != "paid" {
			t.Errorf("recovered order: %+v", v)
		}
		if testprovider.TimeoutAsks() == asked {
			t.Error("the app never asked testpay for its call timeout")
		}
	})

	t.Run("amount refused", func(t *testing.T) {
		before := s.book.Len()
		status, v := s.checkout(t, `[{"sku":"cup","qty":5}]`)
		if status != http.StatusBadRequest || v.Error.Code != "amount_not_accepted" {
			t.Errorf("6000.00 over testpay's 5000.00: %d %+v", status, v)
		}
		if s.book.Len() != before {
			t.Error("a refused amount reached the book")
		}
	})
}

// TestRootPackageDoesNotKnowTestpay: no code of package kassa names the
// test provider, so the test above proves the extension points alone.
func TestRootPackageDoesNotKnowTestpay(t *testing.T) {
	files, err := filepath.Glob("../../*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("root package files: %v %v", files, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{"testpay", "testtill", "testprovider"} {
			if strings.Contains(string(data), name) {
				t.Errorf("%s names %s", f, name)
			}
		}
	}
}
