package sandbox

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func TestControlStateEmpty(t *testing.T) {
	s := newTestSandbox(t, nil)
	r := s.get("/control/state")
	wantJSON(t, r, http.StatusOK, `{
		"crystalpay":{"balance":"0","invoices":[],"withdrawals":[],"v3_invoices":[],"payoffs":[]},
		"pegas":{"balance":"0.00","invoices":[],"withdrawals":[]},
		"smartcashier":{"operations":[],"cash":{}},
		"settings":{"latency":"0s","receipt_delay":"1s","crystalpay_wallets":false}}`)
}

func TestControlState(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.get(crystalPayURL("o", "generate", "amount", "100"))
	s.pegasGet("deposit", "amount", "10.5", "type", "invoice-qw", "order_id", "S-1", "phone", "+79001234567")
	s.cashier("formReceipt", seedReceipt)
	st := s.state()
	if inv := st.CrystalPay.Invoices; len(inv) != 1 || inv[0].Amount != "100" || inv[0].State != "notpayed" {
		t.Errorf("crystalpay invoices %+v", inv)
	}
	if inv := st.Pegas.Invoices; len(inv) != 1 || inv[0].ID != 100001 || inv[0].OrderID != "S-1" ||
		inv[0].Amount != "10.50" || inv[0].Commission != "0.26" || inv[0].State != "pending" || inv[0].Type != "invoice-qw" {
		t.Errorf("pegas invoices %+v", inv)
	}
	ops := st.SmartCashier.Operations
	if len(ops) != 1 || ops[0].OperationID != "12854F" || ops[0].Kind != "formReceipt" || ops[0].Result["status"] != 1.0 {
		t.Fatalf("operations %+v", ops)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, []byte(seedReceipt)); err != nil {
		t.Fatal(err)
	}
	if string(ops[0].Request) != compact.String() {
		t.Errorf("request not kept as received:\n%s", ops[0].Request)
	}
}

func TestControlCalls(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.get(crystalPayURL("o", "balance"))
	s.postJSON("/pegas/api/v1/balance", `{"token":"sandbox-token"}`)
	s.do(http.MethodPost, "/pegas/api/v1/balance", "token=x", "Content-Type", "text/plain")
	s.get("/control/state") // not an API call

	calls := s.calls("")
	if len(calls) != 3 {
		t.Fatalf("%d calls, want 3: %+v", len(calls), calls)
	}
	c := calls[0]
	if c.API != "crystalpay" || c.Op != "balance" || c.Method != "GET" || c.Path != "/crystalpay/api.php" ||
		c.Query["o"] != "balance" || string(c.Body) != "null" || c.Status != 200 || !c.Time.Equal(s.clock.Now()) {
		t.Errorf("crystalpay call %+v", c)
	}
	if c := calls[1]; c.API != "pegas" || c.Op != "balance" || string(c.Body) != `{"token":"***"}` || c.Status != 200 {
		t.Errorf("pegas call %+v", c)
	}
	if c := calls[2]; string(c.Body) != `"token=%2A%2A%2A"` || c.Status != http.StatusBadRequest {
		t.Errorf("non-JSON body %s, status %d", c.Body, c.Status)
	}
	if n := len(s.calls("?api=pegas")); n != 2 {
		t.Errorf("api=pegas: %d calls", n)
	}
	if n := len(s.calls("?api=pegas&op=deposit")); n != 0 {
		t.Errorf("op=deposit: %d calls", n)
	}
	s.control(http.MethodGet, "calls?api=yookassa", "", http.StatusBadRequest, nil)
	s.control(http.MethodGet, "calls?limit=1", "", http.StatusBadRequest, nil)
	var cleared struct{ Cleared int }
	s.control(http.MethodDelete, "calls", "", http.StatusOK, &cleared)
	if cleared.Cleared != 3 || len(s.calls("")) != 0 {
		t.Errorf("DELETE cleared %d", cleared.Cleared)
	}
}

func TestControlFaults(t *testing.T) {
	s := newTestSandbox(t, nil)
	var added struct{ Fault faultView }
	s.control(http.MethodPost, "faults",
		`{"api":"smartcashier","op":"formReceipt","mode":"error500","count":2,"latency":"2s","message":"Открыта крышка."}`,
		http.StatusOK, &added)
	s.addFault(`{"api":"smartcashier","op":"*","mode":"notprocessed"}`)
	r := s.get("/control/faults")
	wantJSON(t, r, http.StatusOK, `{"faults":[
		{"api":"smartcashier","op":"formReceipt","mode":"error500","count":2,"latency":"2s","message":"Открыта крышка."},
		{"api":"smartcashier","op":"*","mode":"notprocessed","count":0,"message":"Открыта крышка."}]}`)
	var cleared struct{ Cleared int }
	s.control(http.MethodDelete, "faults", "", http.StatusOK, &cleared)
	if cleared.Cleared != 2 {
		t.Errorf("cleared %d", cleared.Cleared)
	}
	wantJSON(t, s.get("/control/faults"), http.StatusOK, `{"faults":[]}`)
}

func TestControlPay(t *testing.T) {
	s := newTestSandbox(t, nil)
	id := s.get(crystalPayURL("o", "generate", "amount", "7")).object(t)["id"].(string)
	s.pegasGet("deposit", "amount", "100", "type", "invoice-card", "order_id", "O-1")

	var paid struct{ Invoice map[string]any }
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+id+`"}`, http.StatusOK, &paid)
	if paid.Invoice["state"] != "payed" || paid.Invoice["id"] != id {
		t.Errorf("paid %v", paid.Invoice)
	}
	s.control(http.MethodPost, "pay", `{"api":"pegas","order_id":"O-1"}`, http.StatusOK, &paid)
	s.control(http.MethodPost, "pay", `{"api":"pegas","id":100001}`, http.StatusOK, &paid)
	if paid.Invoice["state"] != "paid" {
		t.Errorf("paid %v", paid.Invoice)
	}
	st := s.state()
	if st.CrystalPay.Balance != "7" || st.Pegas.Balance != "97.50" {
		t.Errorf("balances %s and %s, want 7 and 97.50", st.CrystalPay.Balance, st.Pegas.Balance)
	}
	for body, status := range map[string]int{
		`{"api":"crystalpay","id":"1_nope"}`:            http.StatusNotFound,
		`{"api":"pegas","id":"999"}`:                    http.StatusNotFound,
		`{"api":"pegas","order_id":"nope"}`:             http.StatusNotFound,
		`{"api":"pegas","id":1,"order_id":"O-1"}`:       http.StatusBadRequest,
		`{"api":"pegas"}`:                               http.StatusBadRequest,
		`{"api":"pegas","id":"abc"}`:                    http.StatusBadRequest,
		`{"api":"pegas","id":true}`:                     http.StatusBadRequest,
		`{"api":"crystalpay"}`:                          http.StatusBadRequest,
		`{"api":"smartcashier","id":"x"}`:               http.StatusBadRequest,
		`{"api":"crystalpay","id":"x","amount":"1"}`:    http.StatusBadRequest,
		`["crystalpay"]`:                                http.StatusBadRequest,
		`{"api":"crystalpay","id":"x"} {"api":"pegas"}`: http.StatusBadRequest,
	} {
		var e struct{ Error string }
		s.control(http.MethodPost, "pay", body, status, &e)
		if e.Error == "" {
			t.Errorf("%s: no error message", body)
		}
	}
}

func TestControlSettings(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.cashier("formReceipt", receipt("Q1"))
	var got settingsView
	s.control(http.MethodPost, "settings", `{"receipt_delay":"0s"}`, http.StatusOK, &got)
	if got != (settingsView{Latency: "0s", ReceiptDelay: "0s"}) {
		t.Errorf("settings %+v", got)
	}
	if _, m := s.checkStatus("Q1"); m["status"] != 2.0 {
		t.Errorf("with receipt_delay 0s: %v", m)
	}
	s.control(http.MethodPost, "settings", `{"crystalpay_wallets":true,"latency":"1ms"}`, http.StatusOK, &got)
	s.control(http.MethodGet, "settings", "", http.StatusOK, &got)
	if got != (settingsView{Latency: "1ms", ReceiptDelay: "0s", CrystalPayWallets: true}) {
		t.Errorf("settings %+v", got)
	}
	for _, body := range []string{`{"latency":"soon"}`, `{"receipt_delay":"-1s"}`, `{"wallets":true}`, `{"crystalpay_wallets":"yes"}`} {
		s.control(http.MethodPost, "settings", body, http.StatusBadRequest, nil)
	}
}

func TestControlReset(t *testing.T) {
	s := newTestSandbox(t, func(h *Handler) {
		h.Balances = map[string]decimal.Decimal{APICrystalPay: decimal.NewFromInt(50), APIPegas: decimal.RequireFromString("10.5")}
		h.Faults = []Fault{{API: APIPegas, Op: "balance", Mode: FaultForbidden, Count: 1}}
	})
	wantPegasError(t, s.pegasGet("balance"), http.StatusForbidden, "access_denied", "")
	s.addFault(`{"api":"crystalpay","op":"*","mode":"error500"}`)
	s.pegasGet("deposit", "amount", "100", "type", "invoice-card", "order_id", "Z-1")
	s.control(http.MethodPost, "pay", `{"api":"pegas","id":100001}`, http.StatusOK, nil)
	s.cashier("formReceipt", seedReceipt)
	s.control(http.MethodPost, "settings", `{"receipt_delay":"0s","crystalpay_wallets":true}`, http.StatusOK, nil)

	var reset map[string]bool
	s.control(http.MethodPost, "reset", "", http.StatusOK, &reset)
	if !reset["reset"] {
		t.Errorf("reset answered %v", reset)
	}
	wantJSON(t, s.get("/control/state"), http.StatusOK, `{
		"crystalpay":{"balance":"50","invoices":[],"withdrawals":[],"v3_invoices":[],"payoffs":[]},
		"pegas":{"balance":"10.50","invoices":[],"withdrawals":[]},
		"smartcashier":{"operations":[],"cash":{}},
		"settings":{"latency":"0s","receipt_delay":"1s","crystalpay_wallets":false}}`)
	if n := len(s.calls("")); n != 0 {
		t.Errorf("journal has %d calls after reset", n)
	}
	wantJSON(t, s.get("/control/faults"), http.StatusOK,
		`{"faults":[{"api":"pegas","op":"balance","mode":"forbidden","count":1}]}`)
	wantJSON(t, s.pegasGet("deposit", "amount", "1", "type", "invoice-card", "order_id", "Z-1"), http.StatusOK,
		`{"id":100001,"commission":0.03,"url":"`+s.srv.URL+`/pay/pegas/100001"}`)
}

func TestControlRoutes(t *testing.T) {
	s := newTestSandbox(t, nil)
	r := s.get("/control/nope")
	if r.status != http.StatusNotFound || !strings.Contains(string(r.body), `"error"`) {
		t.Errorf("unknown route: %d %s", r.status, r.body)
	}
	r = s.do(http.MethodPut, "/control/faults", "{}")
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "GET, POST, DELETE" {
		t.Errorf("PUT faults: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	var e map[string]string
	if err := json.Unmarshal(r.body, &e); err != nil || e["error"] == "" {
		t.Errorf("405 body %s", r.body)
	}
	if r := s.get("/control/reset"); r.status != http.StatusMethodNotAllowed {
		t.Errorf("GET reset: %d", r.status)
	}
}

// TestControlRefusesCrossSite: the control endpoint changes state only for
// a JSON body (415 otherwise, so that a browser must ask a CORS preflight
// first) from no other site's page (403). Before: a hostile page's form
// paid invoices and reset the sandbox.
func TestControlRefusesCrossSite(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"crystalpay","op":"balance","mode":"error500","count":5}`)
	for _, tc := range []struct {
		name, method, route, body string
		headers                   []string
		status                    int
	}{
		{"reset as a text form", http.MethodPost, "reset", "", []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType},
		{"reset without a type", http.MethodPost, "reset", "", nil, http.StatusUnsupportedMediaType},
		{"settings as a urlencoded form", http.MethodPost, "settings", `{"latency":"5s"}`, []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType},
		{"reset from a foreign origin", http.MethodPost, "reset", "", []string{"Content-Type", "application/json", "Origin", "https://evil.example"}, http.StatusForbidden},
		{"reset from an opaque origin", http.MethodPost, "reset", "", []string{"Content-Type", "application/json", "Origin", "null"}, http.StatusForbidden},
		{"reset by a cross-site fetch", http.MethodPost, "reset", "", []string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden},
		{"faults cleared from a foreign origin", http.MethodDelete, "faults", "", []string{"Origin", "https://evil.example"}, http.StatusForbidden},
	} {
		r := s.do(tc.method, "/control/"+tc.route, tc.body, tc.headers...)
		if r.status != tc.status || !strings.Contains(string(r.body), `"error"`) {
			t.Errorf("%s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
		}
	}
	var faults struct{ Faults []faultView }
	s.control(http.MethodGet, "faults", "", http.StatusOK, &faults)
	var settings settingsView
	s.control(http.MethodGet, "settings", "", http.StatusOK, &settings)
	if len(faults.Faults) != 1 || settings.Latency != "0s" {
		t.Fatalf("refused requests changed the sandbox: faults %+v, settings %+v", faults.Faults, settings)
	}
	// Its own page, or a tool that sends JSON, is served.
	s.control(http.MethodPost, "reset", "", http.StatusOK, nil)
	r := s.do(http.MethodPost, "/control/settings", `{"latency":"0s"}`, "Content-Type", "application/json; charset=utf-8", "Origin", s.srv.URL)
	if r.status != http.StatusOK {
		t.Errorf("same-origin JSON: %d %s", r.status, r.body)
	}
}
