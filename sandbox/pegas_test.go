package sandbox

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// pegasGet calls a Pegas route by GET with the default token and params.
func (s *testSandbox) pegasGet(route string, params ...string) reply {
	s.t.Helper()
	q := url.Values{"token": {DefaultPegasToken}}
	for i := 0; i+1 < len(params); i += 2 {
		q.Add(params[i], params[i+1])
	}
	return s.get("/pegas/api/v1/" + route + "?" + q.Encode())
}

// wantPegasError fails unless r is the Pegas error with that status and
// code and, if path is not empty, a validation_error on path.
func wantPegasError(t *testing.T, r reply, status int, code, path string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	e, _ := r.object(t)["error"].(map[string]any)
	if e == nil || e["code"] != code || e["message"] == "" {
		t.Fatalf("error %s, want code %s with a message", r.body, code)
	}
	v, _ := e["validation_error"].(map[string]any)
	switch {
	case path == "" && v != nil:
		t.Fatalf("unexpected validation_error in %s", r.body)
	case path != "" && (v == nil || v["path"] != path || v["message"] == ""):
		t.Fatalf("validation_error in %s, want path %q", r.body, path)
	}
	return e
}

func TestPegasDeposit(t *testing.T) {
	s := newTestSandbox(t, nil)
	r := s.pegasGet("deposit", "amount", "350", "type", "invoice-card", "order_id", "A-1",
		"success_url", "https://shop.example/thanks")
	if !strings.Contains(string(r.body), `"commission":8.75,`) {
		t.Errorf("commission is not the JSON number 8.75: %s", r.body)
	}
	wantJSON(t, r, http.StatusOK, `{"id":100001,"commission":8.75,"url":"`+s.srv.URL+`/pay/pegas/100001"}`)

	// POST with a JSON body, numbers as numbers.
	r = s.postJSON("/pegas/api/v1/deposit", `{"token":"sandbox-token","amount":100.5,"type":"wallet","order_id":"A-2","ttl":30}`)
	wantJSON(t, r, http.StatusOK, `{"id":100002,"commission":2.51,"wallet":"79001234567"}`)
	r = s.pegasGet("deposit", "amount", "10", "type", "wallet-card", "order_id", "A-3")
	wantJSON(t, r, http.StatusOK, `{"id":100003,"commission":0.25,"card":"4111111111111111"}`)
	r = s.pegasGet("deposit", "amount", "10", "type", "yandex", "order_id", "A-4")
	wantJSON(t, r, http.StatusOK, `{"id":100004,"commission":0.25,"url":"`+s.srv.URL+`/pay/pegas/100004"}`)

	// A repeated order_id.
	r = s.pegasGet("deposit", "amount", "350", "type", "invoice-card", "order_id", "A-1")
	e := wantPegasError(t, r, http.StatusBadRequest, "invalid_parameters", "order_id")
	if e["message"] != "Transaction with this order_id already exists" ||
		e["validation_error"].(map[string]any)["message"] != "The order id has already been taken." {
		t.Errorf("duplicate order_id error %s", r.body)
	}
	if n := len(s.state().Pegas.Invoices); n != 4 {
		t.Errorf("%d invoices, want 4", n)
	}
}

func TestPegasCancel(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.pegasGet("deposit", "amount", "100", "type", "invoice-select", "order_id", "C-1")
	s.pegasGet("deposit", "amount", "100", "type", "invoice-select", "order_id", "C-2")

	wantPegasError(t, s.pegasGet("deposit/cancel", "order_id", "C-2", "id", "100001"), http.StatusNotFound, "resource_not_found", "")
	wantPegasError(t, s.pegasGet("deposit/cancel", "order_id", "C-1", "id", "100009"), http.StatusNotFound, "resource_not_found", "")
	wantJSON(t, s.pegasGet("deposit/cancel", "order_id", "C-1", "id", "100001"), http.StatusOK, `{"id":100001}`)
	wantJSON(t, s.pegasGet("deposit/cancel", "order_id", "C-1", "id", "100001"), http.StatusOK, `{"id":100001}`)

	s.control(http.MethodPost, "pay", `{"api":"pegas","id":100002}`, http.StatusOK, nil)
	wantPegasError(t, s.pegasGet("deposit/cancel", "order_id", "C-2", "id", "100002"), http.StatusBadRequest, "provider_error", "")
	s.control(http.MethodPost, "pay", `{"api":"pegas","id":"100001"}`, http.StatusConflict, nil)

	st := s.state()
	if st.Pegas.Invoices[0].State != "cancelled" || st.Pegas.Invoices[1].State != "paid" {
		t.Errorf("invoice states %+v", st.Pegas.Invoices)
	}
	if st.Pegas.Balance != "97.50" {
		t.Errorf("balance %s, want 97.50 (100 less 2.5%% commission)", st.Pegas.Balance)
	}
}

func TestPegasWithdrawal(t *testing.T) {
	s := newTestSandbox(t, func(h *Handler) {
		h.Balances = map[string]decimal.Decimal{APIPegas: decimal.RequireFromString("205")}
	})
	r := s.pegasGet("withdrawal", "amount", "100", "number", "4111111111111111", "method", "card",
		"comment", "payout", "order_id", "W-1")
	wantJSON(t, r, http.StatusOK, `{"id":500001,"commission":2.5}`)
	wantJSON(t, s.pegasGet("balance"), http.StatusOK, `{"balance":102.5}`)

	// The same order_id again, then too much.
	r = s.pegasGet("withdrawal", "amount", "1", "number", "79001234567", "method", "wallet", "order_id", "W-1")
	wantPegasError(t, r, http.StatusBadRequest, "invalid_parameters", "order_id")
	r = s.pegasGet("withdrawal", "amount", "100.01", "number", "79001234567", "method", "wallet")
	if e := wantPegasError(t, r, http.StatusBadRequest, "provider_error", ""); e["message"] != "Insufficient funds" {
		t.Errorf("message %v, want Insufficient funds", e["message"])
	}
	// Deposits and withdrawals keep separate order_id namespaces.
	r = s.pegasGet("deposit", "amount", "1", "type", "invoice-card", "order_id", "W-1")
	if r.status != http.StatusOK {
		t.Errorf("deposit with a withdrawal's order_id: %d %s", r.status, r.body)
	}
	wantJSON(t, s.pegasGet("withdrawal", "amount", "100", "number", "79001234567", "method", "phone"),
		http.StatusOK, `{"id":500002,"commission":2.5}`)
	wantJSON(t, s.pegasGet("balance"), http.StatusOK, `{"balance":0}`)
	if n := len(s.state().Pegas.Withdrawals); n != 2 {
		t.Errorf("%d withdrawals, want 2", n)
	}
}

func TestPegasCommissionConfigured(t *testing.T) {
	s := newTestSandbox(t, func(h *Handler) {
		c := decimal.RequireFromString("3.3")
		h.PegasCommission = &c
	})
	wantJSON(t, s.pegasGet("deposit", "amount", "99.99", "type", "invoice-card", "order_id", "K"),
		http.StatusOK, `{"id":100001,"commission":3.3,"url":"`+s.srv.URL+`/pay/pegas/100001"}`)
}

func TestPegasReceiptFile(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.pegasGet("deposit", "amount", "100", "type", "invoice-card", "order_id", "R-1")
	s.pegasGet("deposit", "amount", "100", "type", "invoice-card", "order_id", "R-2")
	s.pegasGet("deposit/cancel", "order_id", "R-2", "id", "100002")

	wantPegasError(t, s.pegasGet("transaction/receipt/file", "id", "100001", "format", "pdf"), http.StatusNotFound, "resource_not_found", "")
	wantPegasError(t, s.pegasGet("transaction/receipt/file", "id", "100002", "format", "pdf"), http.StatusNotFound, "resource_not_found", "")
	wantPegasError(t, s.pegasGet("transaction/receipt/file", "order_id", "nope", "format", "pdf"), http.StatusNotFound, "resource_not_found", "")

	s.control(http.MethodPost, "pay", `{"api":"pegas","order_id":"R-1"}`, http.StatusOK, nil)
	wantPegasError(t, s.pegasGet("transaction/receipt/file", "id", "100001", "order_id", "R-2", "format", "pdf"),
		http.StatusNotFound, "resource_not_found", "")
	for _, tc := range []struct{ format, contentType, by, value string }{
		{"pdf", "application/pdf", "id", "100001"},
		{"jpeg", "image/jpeg", "order_id", "R-1"},
	} {
		r := s.pegasGet("transaction/receipt/file", tc.by, tc.value, "format", tc.format)
		if r.status != http.StatusOK || r.header.Get("Content-Type") != tc.contentType {
			t.Fatalf("%s: %d %s", tc.format, r.status, r.header.Get("Content-Type"))
		}
		switch tc.format {
		case "pdf":
			checkPDF(t, r.body, "100001")
		case "jpeg":
			checkJPEG(t, r.body)
		}
	}
}
