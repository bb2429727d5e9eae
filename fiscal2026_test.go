package kassa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The receipts of 2026: VAT 22% and the simplified system's rates, each
// mapped to its Smart Cashier code or refused; a buyer's contact on every
// receipt; the time at the place of settlement; no ENVD.

// TestVATNames2026: the rates of 2026 have names, and the legacy ones
// still parse.
func TestVATNames2026(t *testing.T) {
	for name, want := range map[string]VAT{"vat22": VAT22, "vat122": VAT122, "vat5": VAT5, "vat7": VAT7,
		"vat105": VAT105, "vat107": VAT107, "vat0": VAT0, "vat10": VAT10, "vat110": VAT110, "none": VATNone,
		"vat20": VAT20, "vat18": VAT20, "vat120": VAT120, "vat118": VAT120} {
		t.Run(name, func(t *testing.T) {
			got, err := ParseVAT(name)
			if err != nil || got != want {
				t.Fatalf("ParseVAT(%q) = %v, %v", name, got, err)
			}
			if again, err := ParseVAT(got.String()); err != nil || again != got {
				t.Errorf("%v does not round-trip: %v, %v", got, again, err)
			}
			if got.Legacy() != (want == VAT20 || want == VAT120) {
				t.Errorf("%v: Legacy() = %v", got, got.Legacy())
			}
		})
	}
}

// TestSmartCashierTaxTypes: a rate goes to Smart Cashier as its code: the
// seed's six by default, others as tax_type says; a rate without a code is
// refused locally, naming the field and the line to add. Before: vat22 was
// an unknown name.
func TestSmartCashierTaxTypes(t *testing.T) {
	stub := newProviderStub(t, scOK)
	s := provisionSC(t, stub.URL, func(s *SmartCashier) { s.TaxTypes = map[string]int{"vat22": 11, "vat122": 12} })
	r := Receipt{OperationID: "op-22", Cashless: scMoney("1220"), Email: "buyer@example.com", Positions: []Position{
		{Name: "Чашка", Quantity: 1, Price: scMoney("1000"), VAT: VAT22},
		{Name: "Мёд", Quantity: 1, Price: scMoney("110"), VAT: VAT10},
		{Name: "Доставка", Quantity: 1, Price: scMoney("110")},
	}}
	if err := s.FormReceipt(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	var sent struct {
		Positions []struct {
			TaxType int `json:"taxType"`
		} `json:"positions"`
	}
	if err := json.Unmarshal(scOnly(t, stub).Body, &sent); err != nil {
		t.Fatal(err)
	}
	if got := []int{sent.Positions[0].TaxType, sent.Positions[1].TaxType, sent.Positions[2].TaxType}; got[0] != 11 || got[1] != 2 || got[2] != 4 {
		t.Errorf("taxType codes %v, want [11 2 4]: vat22 as tax_type says, vat10 and the default none as the seed's", got)
	}

	r.OperationID, r.Positions[0].VAT = "op-5", VAT5
	err := s.FormReceipt(context.Background(), r)
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "items[0].vat" || !strings.Contains(err.Error(), "tax_type vat5 <code>") {
		t.Fatalf("a rate without a code: %v, want a refusal of items[0].vat naming the tax_type line", err)
	}
	if n := len(stub.requests()); n != 1 {
		t.Errorf("%d requests: the refused receipt was sent", n)
	}
}

// TestSmartCashierCaddyfile2026: tax_type is repeatable, one line per rate;
// timezone is an IANA zone; envd is refused, saying why.
func TestSmartCashierCaddyfile2026(t *testing.T) {
	var s SmartCashier
	d := caddyfile.NewTestDispenser("smartcashier {\n token t\n taxation osn\n tax_type vat22 11\n tax_type vat122 12\n timezone Asia/Yekaterinburg\n}")
	if err := s.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if s.TaxTypes["vat22"] != 11 || s.TaxTypes["vat122"] != 12 || s.Timezone != "Asia/Yekaterinburg" {
		t.Fatalf("parsed %+v", s)
	}
	for input, want := range map[string]string{
		"tax_type vat22 11\n tax_type vat22 12": "tax_type vat22 given twice",
		"tax_type vat22":                        "wrong argument count",
		"tax_type vat23 11":                     `unknown VAT "vat23"`,
		"tax_type vat22 0":                      "from 1 to 99",
		"tax_type vat22 x":                      "from 1 to 99",
		"timezone":                              "wrong argument count",
	} {
		t.Run(input, func(t *testing.T) {
			var s SmartCashier
			err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser("smartcashier {\n " + input + "\n}"))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("err = %v, want one containing %q", err, want)
			}
		})
	}
	for name, tc := range map[string]struct {
		s    SmartCashier
		want string
	}{
		"envd":             {SmartCashier{Token: "t", Taxation: TaxationENVD}, "abolished on 1 January 2021"},
		"bad zone":         {SmartCashier{Token: "t", Taxation: TaxationOSN, Timezone: "Mars/Olympus"}, "IANA time zone"},
		"default vat22":    {SmartCashier{Token: "t", Taxation: TaxationOSN, VAT: VAT22}, "tax_type vat22 <code>"},
		"default mapped":   {SmartCashier{Token: "t", Taxation: TaxationOSN, VAT: VAT22, TaxTypes: map[string]int{"vat22": 11}}, ""},
		"unknown rate map": {SmartCashier{Token: "t", Taxation: TaxationOSN, TaxTypes: map[string]int{"vat99": 11}}, `unknown VAT "vat99"`},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			s := tc.s
			err := s.Provision(ctx)
			if err == nil {
				err = s.Validate()
				s.Cleanup()
			}
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// receiptsApp is an app whose catalog is products, with Smart Cashier at
// tax types, logging warnings to the observer it returns.
func receiptsApp(t *testing.T, products []Product, taxTypes map[string]int) (*App, *observer.ObservedLogs, error) {
	t.Helper()
	core, logs := observer.New(zapcore.WarnLevel)
	stub := newProviderStub(t, scOK)
	sc := provisionSC(t, stub.URL, func(s *SmartCashier) { s.TaxTypes = taxTypes })
	a := &App{logger: zap.New(core), receipts: sc}
	catalog, err := NewCatalog(products)
	if err != nil {
		t.Fatal(err)
	}
	a.catalog = catalog
	return a, logs, a.checkRates()
}

// TestCatalogRateWithoutCode: a catalog product at a rate the receipt
// service has no code for stops the start, naming the product, the rate
// and the line to add; a product at the pre-2026 rate starts with a
// warning naming it.
func TestCatalogRateWithoutCode(t *testing.T) {
	cup := Product{SKU: "cup", Name: "Чашка", Price: rub("1200.00"), VAT: VAT22}
	if _, _, err := receiptsApp(t, []Product{cup}, nil); err == nil ||
		!strings.Contains(err.Error(), `product "cup" (vat22)`) || !strings.Contains(err.Error(), "tax_type vat22 <code>") {
		t.Errorf("vat22 without a code: %v", err)
	}
	if _, logs, err := receiptsApp(t, []Product{cup}, map[string]int{"vat22": 11}); err != nil || logs.Len() != 0 {
		t.Errorf("vat22 with a code: %v, %d warnings", err, logs.Len())
	}
	old := Product{SKU: "old-cup", Name: "Чашка", Price: rub("1200.00"), VAT: VAT20}
	_, logs, err := receiptsApp(t, []Product{cup, old}, map[string]int{"vat22": 11})
	if err != nil || logs.Len() != 1 || !strings.Contains(logs.All()[0].Message, "22%") || !containsSKU(logs.All()[0].ContextMap()["skus"], "old-cup") {
		t.Errorf("a vat20 product: %v, %v", err, logs.All())
	}
}

func containsSKU(v any, sku string) bool {
	list, _ := v.([]any)
	for _, s := range list {
		if s == sku {
			return true
		}
	}
	return false
}

// contactShop is a shop with receipts on, its catalog the test catalog
// (whose products' rates have codes), its one account the life provider.
func contactShop(t *testing.T, taxTypes map[string]int) *lifeShop {
	t.Helper()
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	stub := newProviderStub(t, scOK)
	s.app.receipts = provisionSC(t, stub.URL, func(sc *SmartCashier) { sc.TaxTypes = taxTypes })
	return s
}

// TestContactRequired: with receipts on, a checkout without an e-mail or
// a phone is 400 contact_required, before any provider call: the form,
// JSON, a donation and a proxied storefront alike. Before: it was accepted
// and its receipt went to nobody.
func TestContactRequired(t *testing.T) {
	s := contactShop(t, nil)
	donate := &Checkout{app: s.app, acc: s.app.accounts["main"], logger: zap.NewNop(), MaxBody: defaultMaxBody,
		AmountRange: &AmountRange{Min: rub("100"), Max: rub("5000")}}
	proxied := &Checkout{app: s.app, acc: s.app.accounts["main"], logger: zap.NewNop(), MaxBody: defaultMaxBody,
		Amount: "{test.amount}", OrderID: "{test.order}", Email: "{test.email}", Phone: "{test.phone}"}
	for _, tc := range []struct {
		name    string
		handler *Checkout
		req     func() *http.Request
		vars    map[string]string
	}{
		{"form", s.checkout, func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader("item=tea-green"))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return r
		}, nil},
		{"JSON", s.checkout, func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(`{"items":[{"sku":"tea-green"}]}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, nil},
		{"donation", donate, func() *http.Request {
			r := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(`{"amount":"500"}`))
			r.Header.Set("Content-Type", "application/json")
			return r
		}, nil},
		{"proxied", proxied, func() *http.Request {
			return httptest.NewRequest(http.MethodGet, "/pay", nil)
		}, map[string]string{"test.amount": "500", "test.order": "BACKEND-1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.req()
			req.Header.Set("Accept", "application/json")
			repl := caddy.NewReplacer()
			for k, v := range tc.vars {
				repl.Set(k, v)
			}
			req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
			w := httptest.NewRecorder()
			if err := tc.handler.ServeHTTP(w, req, nil); err != nil {
				t.Fatal(err)
			}
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"code":"contact_required"`) {
				t.Errorf("checkout without a contact: %d %s", w.Code, w.Body)
			}
		})
	}
	if n := s.provider.count(); n != 0 {
		t.Errorf("%d invoices made for checkouts without a contact", n)
	}
	if w := s.post("", true); w.Code != http.StatusSeeOther {
		t.Errorf("a checkout with an e-mail: %d %s", w.Code, w.Body)
	}
}

// TestUpstreamItemRateWithoutCode: an upstream's item at a rate Smart
// Cashier has no code for is 400 vat_not_accepted, naming the item, before
// any provider call.
func TestUpstreamItemRateWithoutCode(t *testing.T) {
	s := contactShop(t, map[string]int{"vat22": 11})
	proxied := &Checkout{app: s.app, acc: s.app.accounts["main"], logger: zap.NewNop(), MaxBody: defaultMaxBody,
		Amount: "{test.amount}", OrderID: "{test.order}", Email: "{test.email}", Items: "{test.items}"}
	n := 0
	serve := func(items string) *httptest.ResponseRecorder {
		n++
		req := httptest.NewRequest(http.MethodGet, "/pay", nil)
		req.Header.Set("Accept", "application/json")
		repl := caddy.NewReplacer()
		repl.Set("test.amount", "1220.00")
		repl.Set("test.order", fmt.Sprintf("BACKEND-%d", n))
		repl.Set("test.email", "buyer@example.com")
		repl.Set("test.items", items)
		req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
		w := httptest.NewRecorder()
		if err := proxied.ServeHTTP(w, req, nil); err != nil {
			t.Fatal(err)
		}
		return w
	}
	w := serve(`[{"name":"Чашка","qty":1,"price":"1220.00","vat":"vat5"}]`)
	if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"code":"vat_not_accepted"`) || !strings.Contains(w.Body.String(), "vat5") {
		t.Errorf("an item at vat5 without a code: %d %s", w.Code, w.Body)
	}
	if n := s.provider.count(); n != 0 {
		t.Errorf("%d invoices made", n)
	}
	if w := serve(`[{"name":"Чашка","qty":1,"price":"1220.00","vat":"vat22"}]`); w.Code != http.StatusCreated {
		t.Errorf("an item at vat22 with a code: %d %s", w.Code, w.Body)
	}
}

// TestReceiptPage2026: the receipt page labels each rate and computes its
// VAT once from the rate's total (1220.00 at 22% has 220.00 of VAT), and
// shows the fiscal document's time at the place of settlement.
func TestReceiptPage2026(t *testing.T) {
	s := contactShop(t, map[string]int{"vat22": 11})
	sc := s.app.receipts.(*SmartCashier)
	zone, err := time.LoadLocation("Asia/Yekaterinburg")
	if err != nil {
		t.Fatal(err)
	}
	sc.location = zone
	o := &Order{ID: NewOrderID(), State: OrderPaid, Account: "main", Provider: "pegas", Amount: rub("1220.00"),
		Items: []OrderItem{
			{Name: "Чашка", Qty: 2, Price: rub("305.00"), VAT: VAT22},
			{Name: "Чайник", Qty: 1, Price: rub("610.00"), VAT: VAT22},
		},
		Email: "buyer@example.com", CreatedAt: s.clock.Now(), ExpiresAt: s.clock.Now().Add(time.Hour),
		Receipt: &OrderReceipt{OperationID: "kassa-x-sale", Type: ReceiptSale, State: ReceiptDone,
			Fiscal: &FiscalParams{DocumentNumber: 24, DocumentSign: "0637894524", FNNumber: "9999451122",
				DocumentTime: time.Date(2026, 12, 5, 19, 30, 0, 0, time.UTC)}}}
	if err := s.app.orders.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	h := &ReceiptHandler{app: s.app, logger: zap.NewNop()}
	req := httptest.NewRequest(http.MethodGet, "/receipt?order="+o.ID, nil)
	req.Header.Set("Accept", "text/html")
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, req, nil); err != nil {
		t.Fatal(err)
	}
	page := w.Body.String()
	for _, want := range []string{"НДС 22%</td><td class=\"num\">220.00", "06.12.2026 00:30"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "НДС 20%") {
		t.Error("the page shows the 20% rate")
	}
	if strings.Contains(page, "05.12.2026 22:30") {
		t.Error("the page shows Moscow time for a shop in Yekaterinburg")
	}
}

// TestCashOperationFailedAtTheTill: a cash operation the till did not
// process is not done again by sending its id: the operator hears 409
// operation_failed, to send it under a new id. Before: the repeat was
// answered 202 queued, and nothing happened.
func TestCashOperationFailedAtTheTill(t *testing.T) {
	stub := newProviderStub(t, stubPick(func(_ int, r *http.Request) stubAnswer {
		if strings.HasSuffix(r.URL.Path, "checkStatus") {
			return scReply(http.StatusOK, `{"status":3,"creationDateTimeUtc":"2026-12-05T10:00:00+03:00","errorMessage":"Открыта крышка."}`)
		}
		return scReply(http.StatusOK, "")
	}))
	a := &App{logger: zap.NewNop(), now: time.Now}
	a.receipts = provisionSC(t, stub.URL, nil)
	a.useStorage(newBenchStorage())
	req := httptest.NewRequest(http.MethodPost, "/kassa/cash/deposit",
		strings.NewReader(`{"amount":"500.00","cashbox_id":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad","operation_id":"evening-1"}`))
	w := httptest.NewRecorder()
	if err := a.serveAdmin(w, req); err != nil {
		writeAdminError(w, err)
	}
	// Sending it again does nothing at Smart Cashier (a repeated id answers
	// its first result); the operator is told so.
	if w.Code != http.StatusConflict || !strings.Contains(w.Body.String(), "operation_failed") {
		t.Fatalf("a failed cash operation sent again: %d %s", w.Code, w.Body)
	}
}
