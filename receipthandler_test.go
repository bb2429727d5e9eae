package kassa

// Tests of kassa_receipt, the handler of receipthandler.go, in-process: the
// posted receipt's parser, and its answers through ServeHTTP.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

// checkParsedReceipt holds what parseReceiptRequest promises of a receipt
// it accepts: valid-UTF-8 names, contacts and ids; plain amounts with at
// most two decimals; known types; no id of the plugin's own namespace.
func checkParsedReceipt(t *testing.T, rc Receipt) {
	t.Helper()
	if strings.HasPrefix(rc.OperationID, "kassa-") {
		t.Fatalf("accepted operation id %q of the plugin's namespace", rc.OperationID)
	}
	for _, s := range []string{rc.OperationID, rc.Email, rc.Phone, rc.CashboxID} {
		if !utf8.ValidString(s) {
			t.Fatalf("accepted invalid UTF-8 %q", s)
		}
	}
	if !plainAmount(rc.Cash) || !plainAmount(rc.Cashless) {
		t.Fatalf("accepted cash %s, cashless %s", rc.Cash, rc.Cashless)
	}
	if rc.Type != 0 && (rc.Type < ReceiptSale || rc.Type > ReceiptPurchaseReturn) {
		t.Fatalf("accepted receipt type %d", rc.Type)
	}
	if rc.Taxation != 0 && (rc.Taxation < TaxationOSN || rc.Taxation > TaxationPatent) {
		t.Fatalf("accepted taxation %d", rc.Taxation)
	}
	for i, p := range rc.Positions {
		if !utf8.ValidString(p.Name) {
			t.Fatalf("accepted position %d name %q: not UTF-8", i, p.Name)
		}
		if !plainAmount(p.Price) {
			t.Fatalf("accepted position %d price %s", i, p.Price)
		}
		if p.VAT != 0 && !p.VAT.Valid() {
			t.Fatalf("accepted position %d VAT %d", i, p.VAT)
		}
	}
}

// FuzzReceiptRequest feeds arbitrary bodies to kassa_receipt's POST parser.
// A refusal is a 400 RequestError with a safe message; an accepted receipt
// has valid-UTF-8 names and amounts with at most two decimals, and if it
// also passes Receipt.Validate, its total is what cash and cashless pay.
func FuzzReceiptRequest(f *testing.F) {
	for _, s := range []string{
		`{"operation_id":"till-1","type":"sale","items":[{"name":"Чай","qty":2,"price":"135.00","vat":"vat20"}],"cash":"0","cashless":"270.00","email":"buyer@example.com","phone":"+79991234567"}`,
		`{"operation_id":"till-2","type":"sale_return","taxation":"usn_income","items":[{"name":"Cup","qty":1,"price":"120"}],"cash":"120","print":true,"cashbox_id":"da2bb850-63ef-47e4-8b45-7b5b841eaa9b"}`,
		`{"operation_id":"kassa-abc","items":[]}`,
		`{"operation_id":"x","items":[{"name":"a","qty":1e3,"price":"1"}]}`,
		`{"operation_id":"x","items":[{"name":"a","qty":-1,"price":"1"}]}`,
		`{"operation_id":"x","items":[{"name":"a","qty":1,"price":"1.005"}]}`,
		`{"operation_id":"x","items":[{"name":"a\u202e","qty":1,"price":"1"}]}`,
		`{"operation_id":"x","items":[{"name":"` + "\xff\xfe" + `","qty":1,"price":"1"}]}`,
		`{"operation_id":"x","cash":"-1"}`,
		`{"operation_id":"x","cash":1}`,
		`{"operation_id":"x","nope":1}`,
		`{"operation_id":"x"}}`,
		`{"operation_id":"x"} {}`,
		`null`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rc, err := parseReceiptRequest(body)
		if err != nil {
			checkRequestError(t, err, http.StatusBadRequest)
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted a body that is not one JSON value: %q", body)
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not UTF-8: %q", body)
		}
		checkParsedReceipt(t, rc)
		rc.Type, rc.Taxation = max(rc.Type, ReceiptSale), max(rc.Taxation, TaxationOSN)
		for i := range rc.Positions {
			rc.Positions[i].VAT = max(rc.Positions[i].VAT, VAT0)
		}
		if rc.Validate() != nil {
			return
		}
		if !rc.Cash.Add(rc.Cashless).Equal(rc.Total()) {
			t.Fatalf("valid receipt: cash %s + cashless %s ≠ total %s", rc.Cash, rc.Cashless, rc.Total())
		}
		for i, p := range rc.Positions {
			if p.Quantity < 1 || p.Quantity > maxQuantity || strings.TrimSpace(p.Name) == "" || strings.ContainsFunc(p.Name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
				t.Fatalf("valid receipt with position %d %+v", i, p)
			}
		}
	})
}

// FuzzReceiptPositions builds a receipt of one position from fuzzed fields,
// posts it through parseReceiptRequest and, when the receipt service's own
// checks accept it, encodes it as Smart Cashier's formReceipt body: that
// body must be JSON whose totalSum is cash + cashless, with the name as
// given.
func FuzzReceiptPositions(f *testing.F) {
	f.Add("Чай", int64(2), "135.00", "0", "270.00", "vat20")
	f.Add("Cup", int64(1), "120", "120", "0", "")
	f.Add("a\r\nX-Injected: 1", int64(1), "1", "1", "0", "none")
	f.Add("<script>alert(1)</script>", int64(1), "1", "0", "1", "vat0")
	f.Add("\u202etxt.exe", int64(1), "1", "0", "1", "vat0")
	f.Add("x", int64(-1), "1", "0", "-1", "vat10")
	f.Add("x", int64(1000001), "1e3", "0", "1000", "vat18")
	f.Add(strings.Repeat("я", 129), int64(1), "999999999.99", "0", "999999999.99", "VAT120 ")
	f.Fuzz(func(t *testing.T, name string, qty int64, price, cash, cashless, vat string) {
		body, err := json.Marshal(map[string]any{
			"operation_id": "till-1",
			"items":        []map[string]any{{"name": name, "qty": qty, "price": price, "vat": vat}},
			"cash":         cash, "cashless": cashless,
		})
		if err != nil {
			t.Skip()
		}
		rc, err := parseReceiptRequest(body)
		if err != nil {
			checkRequestError(t, err, http.StatusBadRequest)
			return
		}
		checkParsedReceipt(t, rc)
		if len(rc.Positions) != 1 || rc.Positions[0].Quantity != qty {
			t.Fatalf("positions %+v from qty %d", rc.Positions, qty)
		}
		sc := &SmartCashier{}
		rc = sc.withDefaults(rc)
		rc.Type, rc.Taxation, rc.Positions[0].VAT = max(rc.Type, ReceiptSale), max(rc.Taxation, TaxationOSN), max(rc.Positions[0].VAT, VAT0)
		if rc.Validate() != nil {
			return
		}
		wire, err := json.Marshal(newSmartCashierReceipt(rc, smartCashierTaxTypes))
		if err != nil {
			t.Fatalf("encoding a valid receipt: %v", err)
		}
		var sent struct {
			Cash      json.Number `json:"cashPaymentSum"`
			Cashless  json.Number `json:"cashlessPaymentSum"`
			Total     json.Number `json:"totalSum"`
			Positions []struct {
				Name string `json:"name"`
			} `json:"positions"`
		}
		if err := json.Unmarshal(wire, &sent); err != nil {
			t.Fatalf("formReceipt body %s: %v", wire, err)
		}
		c, _ := decimal.NewFromString(sent.Cash.String())
		cl, _ := decimal.NewFromString(sent.Cashless.String())
		tot, _ := decimal.NewFromString(sent.Total.String())
		if !c.Add(cl).Equal(tot) || !tot.Equal(rc.Total()) {
			t.Fatalf("formReceipt body %s: cash + cashless ≠ total %s", wire, rc.Total())
		}
		if len(sent.Positions) != 1 || sent.Positions[0].Name != rc.Positions[0].Name {
			t.Fatalf("formReceipt body %s: name changed from %q", wire, rc.Positions[0].Name)
		}
	})
}

// TestReceiptHandlerAnswers: kassa_receipt's answers through ServeHTTP: the
// receipt of a done order (its page for a browser, JSON otherwise), 404
// for an unknown order, and, with issue, a posted receipt queued or
// refused with a 400 and its error code.
func TestReceiptHandlerAnswers(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	paid := s.created("key-receipt-000001")
	p.pay(paid.Payment.ID)
	s.pass()
	if o := s.load(paid.ID); o.Receipt == nil || o.Receipt.State != ReceiptDone {
		t.Fatalf("setup: want a paid order with its receipt done, have %+v", o)
	}
	h := &ReceiptHandler{app: s.app, logger: zap.NewNop(), Issue: true}
	const good = `{"operation_id":"till-1","type":"sale","items":[{"name":"Tea","qty":1,"price":"100.00","vat":"vat20"}],` +
		`"cashless":"100.00","email":"buyer@example.com"}`
	for _, tc := range []struct {
		name, method, target, accept, body string
		status                             int
		want                               string // in the answer's body
	}{
		{"page of a done order", http.MethodGet, "/receipt?order=" + paid.ID, "text/html", "",
			http.StatusOK, "Green tea 100 g"},
		{"JSON of a done order", http.MethodGet, "/receipt?order=" + paid.ID, "application/json", "",
			http.StatusOK, `"order_id":"` + paid.ID + `"`},
		{"unknown order", http.MethodGet, "/receipt?order=AAAAAAAAAAAAAAAAAAAAAA", "application/json", "",
			http.StatusNotFound, `"code":"unknown_order"`},
		{"bad order id", http.MethodGet, "/receipt?order=../x", "application/json", "",
			http.StatusBadRequest, `"code":"bad_order_id"`},
		{"no order", http.MethodGet, "/receipt", "application/json", "",
			http.StatusBadRequest, `"code":"bad_request"`},
		{"bad document format", http.MethodGet, "/receipt?format=gif&order=" + paid.ID, "application/json", "",
			http.StatusBadRequest, `"code":"bad_format"`},
		{"issue", http.MethodPost, "/receipt", "application/json", good,
			http.StatusAccepted, `"state":"queued"`},
		{"issue: not JSON", http.MethodPost, "/receipt", "application/json", `{"operation_id":`,
			http.StatusBadRequest, `"code":"bad_request"`},
		{"issue: two values", http.MethodPost, "/receipt", "application/json", good + `{}`,
			http.StatusBadRequest, `"code":"bad_request"`},
		{"issue: the plugin's operation id", http.MethodPost, "/receipt", "application/json",
			strings.Replace(good, "till-1", "kassa-1", 1), http.StatusBadRequest, `"code":"bad_operation_id"`},
		{"issue: fractional quantity", http.MethodPost, "/receipt", "application/json",
			strings.Replace(good, `"qty":1`, `"qty":1.5`, 1), http.StatusBadRequest, `"code":"bad_quantity"`},
		{"issue: bidi in a name", http.MethodPost, "/receipt", "application/json",
			strings.Replace(good, "Tea", `\u202eaeT`, 1), http.StatusBadRequest, `"code":"bad_name"`},
		{"put", http.MethodPut, "/receipt", "application/json", "",
			http.StatusMethodNotAllowed, `"code":"method_not_allowed"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			req.Header.Set("Accept", tc.accept)
			req.Header.Set("Content-Type", "application/json")
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, req, nil); err != nil {
				t.Fatalf("ServeHTTP: %v", err)
			}
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("%d %.300s; want %d, a body with %s", w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
}

// TestReceiptIssueRefusesCrossSite: a receipt is issued only from a JSON
// body (415 otherwise, so that a browser must ask a CORS preflight first),
// and never from a foreign Origin or a cross-site fetch (403). Before: a
// hostile page's <form enctype="text/plain"> issued a real receipt.
func TestReceiptIssueRefusesCrossSite(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
	till := &instantReceipts{}
	s.app.receipts = till
	h := &ReceiptHandler{app: s.app, logger: zap.NewNop(), Issue: true}
	n := 0
	for _, tc := range []struct {
		name    string
		headers []string
		status  int
		code    string
	}{
		{"json", []string{"Content-Type", "application/json"}, http.StatusAccepted, ""},
		{"json with charset", []string{"Content-Type", "Application/JSON; charset=utf-8"}, http.StatusAccepted, ""},
		{"same origin", []string{"Content-Type", "application/json", "Origin", "http://till.example"}, http.StatusAccepted, ""},
		{"same origin fetch", []string{"Content-Type", "application/json", "Sec-Fetch-Site", "same-origin"}, http.StatusAccepted, ""},
		{"no content type", nil, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"text/plain form", []string{"Content-Type", "text/plain"}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"urlencoded form", []string{"Content-Type", "application/x-www-form-urlencoded"}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"json suffix", []string{"Content-Type", "application/json-seq"}, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"foreign origin", []string{"Content-Type", "application/json", "Origin", "https://evil.example"}, http.StatusForbidden, "cross_site"},
		{"sibling host", []string{"Content-Type", "application/json", "Origin", "http://till.example.evil.example"}, http.StatusForbidden, "cross_site"},
		{"other port", []string{"Content-Type", "application/json", "Origin", "http://till.example:8080"}, http.StatusForbidden, "cross_site"},
		{"opaque origin", []string{"Content-Type", "application/json", "Origin", "null"}, http.StatusForbidden, "cross_site"},
		{"cross-site fetch", []string{"Content-Type", "application/json", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "cross_site"},
		{"cross-site text form", []string{"Content-Type", "text/plain", "Origin", "https://evil.example", "Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "cross_site"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n++
			body := fmt.Sprintf(`{"operation_id":"till-x%d","type":"sale","items":[{"name":"Tea","qty":1,"price":"100.00","vat":"vat20"}],"cashless":"100.00"}`, n)
			req := httptest.NewRequest(http.MethodPost, "http://till.example/receipt", strings.NewReader(body))
			for i := 0; i+1 < len(tc.headers); i += 2 {
				req.Header.Set(tc.headers[i], tc.headers[i+1])
			}
			w := httptest.NewRecorder()
			if err := h.ServeHTTP(w, req, nil); err != nil {
				t.Fatalf("ServeHTTP: %v", err)
			}
			if w.Code != tc.status || (tc.code != "" && !strings.Contains(w.Body.String(), `"code":"`+tc.code+`"`)) {
				t.Errorf("%d %s; want %d %s", w.Code, w.Body, tc.status, tc.code)
			}
			till.mu.Lock()
			issued := till.printed[fmt.Sprintf("till-x%d", n)]
			till.mu.Unlock()
			if want := map[bool]int{true: 1}[tc.status == http.StatusAccepted]; issued != want {
				t.Errorf("receipt issued %d times, want %d", issued, want)
			}
		})
	}
}

// failingTill takes every receipt and fails it with the till's message.
type failingTill struct{ instantReceipts }

func (*failingTill) ReceiptStatus(_ context.Context, id string) (Operation, error) {
	return Operation{ID: id, Status: OperationFailed, Error: "ФН 9999078900004312: token tok-7f3a refused by ofd.example"}, nil
}

// TestBuyersSeeNoProviderError: a failed receipt tells the buyer (status
// JSON, the receipt's JSON and its page) a generic sentence, while the
// admin API keeps the till's message. Before: the buyer read the provider's
// text.
func TestBuyersSeeNoProviderError(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	s.app.receipts = &failingTill{}
	o := s.created("key-failing-receipt-1")
	p.pay(o.Payment.ID)
	s.pass()
	const detail = "tok-7f3a"
	if rec := s.load(o.ID).Receipt; rec == nil || rec.State != ReceiptFailed || !strings.Contains(rec.Error, detail) {
		t.Fatalf("setup: want a failed receipt with the till's message, have %+v", rec)
	}
	h := &ReceiptHandler{app: s.app, logger: zap.NewNop()}
	for _, tc := range []struct {
		name, accept, want string
		serve              func(*http.Request) *httptest.ResponseRecorder
		target             string
	}{
		{"status JSON", "application/json", `"error":"the receipt could not be issued yet; the shop has been told"`, s.serve, "/pay?order=" + o.ID},
		{"receipt JSON", "application/json", `"error":"the receipt could not be issued yet; the shop has been told"`, nil, "/receipt?order=" + o.ID},
		{"receipt page", "text/html", "Чек пока не сформирован; магазин уже знает об этом.", nil, "/receipt?order=" + o.ID},
	} {
		req := httptest.NewRequest(http.MethodGet, tc.target, nil)
		req.Header.Set("Accept", tc.accept)
		var w *httptest.ResponseRecorder
		if tc.serve != nil {
			w = tc.serve(req)
		} else {
			w = httptest.NewRecorder()
			if err := h.ServeHTTP(w, req, nil); err != nil {
				t.Fatalf("ServeHTTP: %v", err)
			}
		}
		if body := w.Body.String(); w.Code != http.StatusOK || strings.Contains(body, detail) || strings.Contains(body, "9999078900004312") ||
			!strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %.600s; want the generic message", tc.name, w.Code, body)
		}
	}
	if w := adminGet(t, s.app, "/kassa/orders/"+o.ID); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), detail) {
		t.Errorf("admin API: %d %s; want the till's message", w.Code, w.Body)
	}
}
