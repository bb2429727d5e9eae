package kassa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

// A distinctive token, searched for in every error, and the vendor
// document's cashboxes.
const (
	scTestToken    = "JWT-smartcashier-5e1d0b"
	scTestCashbox  = "da2bb850-63ef-47e4-8b45-7b5b841eaa9b"
	scTestCashbox2 = "c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad"
)

// The vendor document's example request and checkStatus replies; the
// processed one made valid JSON (the seed has a trailing comma and is split
// in two).
const (
	scSeedReceipt = `{
  "operationId": "12854F",
  "receiptType": 1,
  "printReceipt": true,
  "taxationSystem": 2,
  "buyerEmail": "customer@example.com",
  "buyerPhoneNumber": "",
  "positions": [
    {"name": "Молоко коровье", "quantity": 3, "price": 70, "taxType": 3},
    {"name": "Хлеб ржаной", "quantity": 2, "price": 30, "taxType": 3}
  ],
  "cashPaymentSum": 200,
  "cashlessPaymentSum": 70,
  "totalSum": 270,
  "juridicalPersonId": "",
  "cashboxGroupId": "",
  "cashboxId": "da2bb850-63ef-47e4-8b45-7b5b841eaa9b"
}`
	scSeedQueued = `{
  "status": 1,
  "creationDateTimeUtc": "2019-05-01T17:29:59.6282936+03:00",
  "handlerCashboxId": null,
  "processingDateTimeUtc": null,
  "fiscalParams": null,
  "errorMessage": null
}`
	scSeedProcessed = `{
  "status": 2,
  "creationDateTimeUtc": "2019-05-01T17:29:59.6282936+03:00",
  "handlerCashboxId": "c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad",
  "processingDateTimeUtc": "2019-05-01T17:34:59.6282936+03:00",
  "fiscalParams": {
    "fiscalDocumentNumber": 24,
    "fiscalDocumentSign": "0637894524",
    "fiscalDocumentDateTimeUtc": "2019-05-01T17:33:11.6287936+03:00",
    "fiscalReceiptNumber": 5,
    "shiftNumber": 3,
    "fnNumber": "9999451122",
    "registrationNumber": "00244",
    "fnsUrl": "www.nalog.ru",
    "notPrinted": false
  },
  "errorMessage": null
}`
	scSeedFailed = `{
  "status": 3,
  "creationDateTimeUtc": "2019-05-01T17:29:59.6282936+03:00",
  "handlerCashboxId": "c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad",
  "processingDateTimeUtc": null,
  "fiscalParams": null,
  "errorMessage": "Открыта крышка."
}`
	scProblemDetails = `{"type":"https://tools.ietf.org/html/rfc7231#section-6.5.1",` +
		`"title":"One or more validation errors occurred.","status":400,"traceId":"|8e2c1a-4b",` +
		`"errors":{"positions[0].quantity":["The field quantity must be between 1 and 2147483647."],` +
		`"cashboxId":["The cashboxId is not a GUID."]}}`
)

// scReply answers as Smart Cashier does: with JSON, or with an HTML page
// when the body starts with "<" (a proxy's error page).
func scReply(status int, body string) stubAnswer {
	contentType := "application/json; charset=utf-8"
	if strings.HasPrefix(strings.TrimSpace(body), "<") {
		contentType = "text/html"
	}
	return stubReply(status, contentType, body)
}

// scOK answers every request with an empty 200.
var scOK = scReply(http.StatusOK, "")

// scOnly returns the one request the stub saw, checking its auth header.
func scOnly(t *testing.T, stub *providerStub) stubRequest {
	t.Helper()
	req := stub.only(t)
	if want := "Bearer " + scTestToken; req.Header.Get("Authorization") != want {
		t.Errorf("Authorization = %q, want %q", req.Header.Get("Authorization"), want)
	}
	return req
}

// provisionSC provisions a SmartCashier against endpoint (taxation
// usn_income unless edit changes it), with a 1 ms retry backoff.
func provisionSC(t *testing.T, endpoint string, edit func(*SmartCashier)) *SmartCashier {
	t.Helper()
	s := &SmartCashier{Token: scTestToken, Endpoint: endpoint, Taxation: TaxationUSNIncome}
	if edit != nil {
		edit(s)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := s.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	s.backoff = time.Millisecond
	s.logger = zap.NewNop()
	t.Cleanup(func() { s.Cleanup() })
	return s
}

func scRetries(n int) func(*SmartCashier) {
	return func(s *SmartCashier) { s.Retries = &n }
}

func scBool(b bool) *bool { return &b }

func scMoney(s string) decimal.Decimal { return decimal.RequireFromString(s) }

// scSeedReceiptValue is the vendor document's example receipt.
func scSeedReceiptValue() Receipt {
	return Receipt{
		OperationID: "12854F",
		Type:        ReceiptSale,
		Taxation:    TaxationUSNIncome,
		Email:       "customer@example.com",
		Print:       scBool(true),
		Cash:        scMoney("200"),
		Cashless:    scMoney("70"),
		Positions: []Position{
			{Name: "Молоко коровье", Quantity: 3, Price: scMoney("70"), VAT: VAT20},
			{Name: "Хлеб ржаной", Quantity: 2, Price: scMoney("30"), VAT: VAT20},
		},
		CashboxID: scTestCashbox,
	}
}

// scDecode decodes a JSON object keeping numbers as json.Number, so that a
// number and a string of the same digits differ (Smart Cashier and CrystalPAY
// v3 bodies alike).
func scDecode(t *testing.T, data []byte) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		t.Fatalf("body is not a JSON object: %v\n%s", err, data)
	}
	return m
}

func TestSmartCashierFormReceiptVendorExample(t *testing.T) {
	stub := newProviderStub(t, scOK)
	s := provisionSC(t, stub.URL+"/v1.0", nil)
	if err := s.FormReceipt(context.Background(), scSeedReceiptValue()); err != nil {
		t.Fatalf("FormReceipt: %v", err)
	}
	req := scOnly(t, stub)
	if req.Method != http.MethodPost || req.Path != "/v1.0/operations/formReceipt" {
		t.Errorf("got %s %s, want POST /v1.0/operations/formReceipt", req.Method, req.Path)
	}
	if !strings.HasPrefix(req.Header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type = %q", req.Header.Get("Content-Type"))
	}
	want := `{"operationId":"12854F","receiptType":1,"printReceipt":true,"taxationSystem":2,` +
		`"buyerEmail":"customer@example.com","positions":[` +
		`{"name":"Молоко коровье","quantity":3,"price":70,"taxType":3},` +
		`{"name":"Хлеб ржаной","quantity":2,"price":30,"taxType":3}],` +
		`"cashPaymentSum":200,"cashlessPaymentSum":70,"totalSum":270,` +
		`"cashboxId":"da2bb850-63ef-47e4-8b45-7b5b841eaa9b"}`
	if string(req.Body) != want {
		t.Errorf("body:\n got %s\nwant %s", req.Body, want)
	}
	// The same as the vendor's example, but for the empty optional fields
	// it sends and we omit.
	seed := scDecode(t, []byte(scSeedReceipt))
	for k, v := range seed {
		if v == "" {
			delete(seed, k)
		}
	}
	if got := scDecode(t, req.Body); !reflect.DeepEqual(got, seed) {
		t.Errorf("body differs from the vendor example:\n got %v\nwant %v", got, seed)
	}
}

func TestSmartCashierFormReceiptKopecks(t *testing.T) {
	stub := newProviderStub(t, scOK)
	s := provisionSC(t, stub.URL, nil)
	r := Receipt{
		OperationID: "order-kopecks",
		Cash:        scMoney("0.47"),
		Cashless:    scMoney("299.00"),
		Phone:       "+79990000000",
		Positions: []Position{
			{Name: "Чай", Quantity: 3, Price: scMoney("99.50")},
			{Name: "Пакет", Quantity: 1, Price: scMoney("0.97")},
		},
	}
	if err := s.FormReceipt(context.Background(), r); err != nil {
		t.Fatalf("FormReceipt: %v", err)
	}
	body := string(scOnly(t, stub).Body)
	for _, want := range []string{`"price":99.5,`, `"price":0.97,`, `"cashPaymentSum":0.47,`,
		`"cashlessPaymentSum":299,`, `"totalSum":299.47}`, `"quantity":3,`, `"buyerPhoneNumber":"+79990000000"`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s:\n%s", want, body)
		}
	}

	stub2 := newProviderStub(t, scOK)
	s2 := provisionSC(t, stub2.URL, nil)
	r = Receipt{OperationID: "order-9999", Cash: scMoney("0"), Cashless: scMoney("299.97"),
		Positions: []Position{{Name: "Товар", Quantity: 3, Price: scMoney("99.99")}}}
	if err := s2.FormReceipt(context.Background(), r); err != nil {
		t.Fatalf("FormReceipt: %v", err)
	}
	body = string(scOnly(t, stub2).Body)
	for _, want := range []string{`"price":99.99,`, `"totalSum":299.97}`, `"cashlessPaymentSum":299.97,`, `"cashPaymentSum":0,`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, `"99.99"`) || strings.Contains(body, "e+") || strings.Contains(body, "buyerEmail") {
		t.Errorf("amounts must be plain JSON numbers and empty contacts omitted:\n%s", body)
	}
}

func TestSmartCashierFormReceiptRefusedLocally(t *testing.T) {
	stub := newProviderStub(t, scOK)
	s := provisionSC(t, stub.URL, nil)
	pos := func(name string, qty int64, price string) Position {
		return Position{Name: name, Quantity: qty, Price: scMoney(price)}
	}
	receipt := func(cash, cashless string, ps ...Position) Receipt {
		return Receipt{OperationID: "op-1", Cash: scMoney(cash), Cashless: scMoney(cashless), Positions: ps}
	}
	cases := []struct {
		name  string
		r     Receipt
		field string
	}{
		{"one kopeck short", receipt("200", "69.99", pos("Молоко", 3, "70"), pos("Хлеб", 2, "30")), "cashless"},
		{"one kopeck over", receipt("200", "70.01", pos("Молоко", 3, "70"), pos("Хлеб", 2, "30")), "cashless"},
		{"no positions", receipt("0", "0"), "items"},
		{"quantity 0", receipt("0", "0", pos("Молоко", 0, "70")), "items[0].qty"},
		{"negative price", receipt("0", "0", pos("Молоко", 1, "-1")), "items[0].price"},
		{"price with three decimals", receipt("0", "1.005", pos("Молоко", 1, "1.005")), "items[0].price"},
		{"empty name", receipt("70", "0", pos("  ", 1, "70")), "items[0].name"},
		{"129-character name", receipt("70", "0", pos(strings.Repeat("Я", 129), 1, "70")), "items[0].name"},
		{"unknown VAT", func() Receipt {
			r := receipt("70", "0", pos("Молоко", 1, "70"))
			r.Positions[0].VAT = 13
			return r
		}(), "items[0].vat"},
		{"a rate without a tax_type code", func() Receipt {
			r := receipt("70", "0", pos("Молоко", 1, "70"))
			r.Positions[0].VAT = VAT22
			return r
		}(), "items[0].vat"},
		{"no operation id", func() Receipt { r := receipt("70", "0", pos("Молоко", 1, "70")); r.OperationID = ""; return r }(), "operation_id"},
		{"unknown type", func() Receipt { r := receipt("70", "0", pos("Молоко", 1, "70")); r.Type = 5; return r }(), "type"},
		{"bad cashbox", func() Receipt {
			r := receipt("70", "0", pos("Молоко", 1, "70"))
			r.CashboxID = "da2bb850"
			return r
		}(), "cashbox_id"},
		{"bad cashbox group", func() Receipt {
			r := receipt("70", "0", pos("Молоко", 1, "70"))
			r.CashboxGroupID = "zz2bb850-63ef-47e4-8b45-7b5b841eaa9b"
			return r
		}(), "cashbox_group_id"},
		{"bad juridical person", func() Receipt {
			r := receipt("70", "0", pos("Молоко", 1, "70"))
			r.JuridicalPersonID = "da2bb850_63ef_47e4_8b45_7b5b841eaa9b"
			return r
		}(), "juridical_person_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := s.FormReceipt(context.Background(), tc.r)
			var ve *ValidationError
			if !errors.As(err, &ve) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a *ValidationError", err)
			}
			if ve.Field != tc.field {
				t.Errorf("Field = %q, want %q (%v)", ve.Field, tc.field, err)
			}
		})
	}
	if n := stub.count(); n != 0 {
		t.Errorf("stub saw %d requests, want 0", n)
	}

	// The limit itself is fine: 128 characters, counted as runes.
	ok := receipt("70", "0", pos(strings.Repeat("Я", 128), 1, "70"))
	if err := s.FormReceipt(context.Background(), ok); err != nil {
		t.Fatalf("128-character name refused: %v", err)
	}
	if n := stub.count(); n != 1 {
		t.Errorf("stub saw %d requests, want 1", n)
	}
}

func TestSmartCashierFormReceiptDefaults(t *testing.T) {
	stub := newProviderStub(t, scOK)
	s := provisionSC(t, stub.URL, func(s *SmartCashier) {
		s.Taxation = TaxationOSN
		s.VAT = VAT10
		s.Print = true
		s.CashboxID = scTestCashbox
	})
	positions := []Position{{Name: "Молоко", Quantity: 1, Price: scMoney("70")}, {Name: "Хлеб", Quantity: 1, Price: scMoney("30"), VAT: VAT0}}
	r := Receipt{OperationID: "op-defaults", Cashless: scMoney("100"), Positions: positions}
	if err := s.FormReceipt(context.Background(), r); err != nil {
		t.Fatalf("FormReceipt: %v", err)
	}
	got := scDecode(t, scOnly(t, stub).Body)
	want := map[string]any{"receiptType": json.Number("1"), "taxationSystem": json.Number("1"),
		"printReceipt": true, "cashboxId": scTestCashbox}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	ps := got["positions"].([]any)
	if tt := ps[0].(map[string]any)["taxType"]; tt != json.Number("2") {
		t.Errorf("default taxType = %v, want 2 (vat10)", tt)
	}
	if tt := ps[1].(map[string]any)["taxType"]; tt != json.Number("1") {
		t.Errorf("given taxType = %v, want 1 (vat0)", tt)
	}
	if positions[0].VAT != 0 {
		t.Error("FormReceipt changed the caller's positions")
	}

	// The receipt's own values win over the defaults.
	stub2 := newProviderStub(t, scOK)
	s.api.base, _ = parseEndpoint(stub2.URL)
	r = Receipt{OperationID: "op-own", Type: ReceiptSaleReturn, Taxation: TaxationPatent, Print: scBool(false),
		CashboxID: scTestCashbox2, Cashless: scMoney("70"), Positions: positions[:1]}
	if err := s.FormReceipt(context.Background(), r); err != nil {
		t.Fatalf("FormReceipt: %v", err)
	}
	got = scDecode(t, scOnly(t, stub2).Body)
	want = map[string]any{"receiptType": json.Number("2"), "taxationSystem": json.Number("6"),
		"printReceipt": false, "cashboxId": scTestCashbox2}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}

	// Unconfigured: VAT none, no paper, no cashbox.
	stub3 := newProviderStub(t, scOK)
	s3 := provisionSC(t, stub3.URL, nil)
	if err := s3.FormReceipt(context.Background(), Receipt{OperationID: "op-3", Cashless: scMoney("70"), Positions: positions[:1]}); err != nil {
		t.Fatalf("FormReceipt: %v", err)
	}
	body := string(scOnly(t, stub3).Body)
	for _, want := range []string{`"taxType":4`, `"printReceipt":false`, `"taxationSystem":2`, `"receiptType":1`} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %s:\n%s", want, body)
		}
	}
	if strings.Contains(body, "cashboxId") {
		t.Errorf("body names a cashbox though none is configured:\n%s", body)
	}
}

func TestSmartCashierCashOperations(t *testing.T) {
	stub := newProviderStub(t, scOK)
	s := provisionSC(t, stub.URL+"/v1.0/", func(s *SmartCashier) { s.CashboxID = scTestCashbox })
	ctx := context.Background()
	if err := s.DepositCash(ctx, CashOperation{OperationID: "12855F", CashboxID: scTestCashbox2, Amount: scMoney("50000")}); err != nil {
		t.Fatalf("DepositCash: %v", err)
	}
	if err := s.WithdrawCash(ctx, CashOperation{OperationID: "12856F", Amount: scMoney("1500.50")}); err != nil {
		t.Fatalf("WithdrawCash: %v", err)
	}
	reqs := stub.requests()
	if len(reqs) != 2 {
		t.Fatalf("stub saw %d requests, want 2", len(reqs))
	}
	want := []stubRequest{
		{Method: "POST", Path: "/v1.0/operations/depositCash",
			Body: []byte(`{"cashboxId":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad","amount":50000,"operationId":"12855F"}`)},
		{Method: "POST", Path: "/v1.0/operations/withdrawCash",
			Body: []byte(`{"cashboxId":"da2bb850-63ef-47e4-8b45-7b5b841eaa9b","amount":1500.5,"operationId":"12856F"}`)},
	}
	for i, w := range want {
		got := reqs[i]
		if got.Method != w.Method || got.Path != w.Path || string(got.Body) != string(w.Body) {
			t.Errorf("request %d:\n got %s %s %s\nwant %s %s %s", i, got.Method, got.Path, got.Body, w.Method, w.Path, w.Body)
		}
		if got.Header.Get("Authorization") != "Bearer "+scTestToken {
			t.Errorf("request %d: Authorization = %q", i, got.Header.Get("Authorization"))
		}
	}
}

func TestSmartCashierCashOperationsRefusedLocally(t *testing.T) {
	stub := newProviderStub(t, scOK)
	noCashbox := provisionSC(t, stub.URL, nil)
	withCashbox := provisionSC(t, stub.URL, func(s *SmartCashier) { s.CashboxID = scTestCashbox })
	cases := []struct {
		name  string
		s     *SmartCashier
		op    CashOperation
		field string
	}{
		{"no cashbox", noCashbox, CashOperation{OperationID: "op", Amount: scMoney("10")}, "cashbox_id"},
		{"bad GUID", withCashbox, CashOperation{OperationID: "op", CashboxID: "cashbox-1", Amount: scMoney("10")}, "cashbox_id"},
		{"GUID with a non-hex digit", withCashbox, CashOperation{OperationID: "op", CashboxID: "da2bb850-63ef-47e4-8b45-7b5b841eaa9g", Amount: scMoney("10")}, "cashbox_id"},
		{"zero amount", withCashbox, CashOperation{OperationID: "op", Amount: decimal.Zero}, "amount"},
		{"negative amount", withCashbox, CashOperation{OperationID: "op", Amount: scMoney("-5")}, "amount"},
		{"three decimals", withCashbox, CashOperation{OperationID: "op", Amount: scMoney("5.001")}, "amount"},
		{"no operation id", withCashbox, CashOperation{Amount: scMoney("5")}, "operation_id"},
		{"operation id with a space", withCashbox, CashOperation{OperationID: "op 1", Amount: scMoney("5")}, "operation_id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for name, call := range map[string]func(context.Context, CashOperation) error{
				"deposit": tc.s.DepositCash, "withdraw": tc.s.WithdrawCash,
			} {
				err := call(context.Background(), tc.op)
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field {
					t.Errorf("%s %s: err = %v, want a ValidationError of %s", name, tc.name, err, tc.field)
				}
			}
		})
	}
	if _, err := withCashbox.ReceiptStatus(context.Background(), ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("ReceiptStatus(\"\"): err = %v, want ErrInvalid", err)
	}
	if n := stub.count(); n != 0 {
		t.Errorf("stub saw %d requests, want 0", n)
	}
}

func TestSmartCashierRetriesServerErrors(t *testing.T) {
	stub := newProviderStub(t, stubPick(func(n int, _ *http.Request) stubAnswer {
		if n <= 2 {
			return scReply(http.StatusInternalServerError, `{"message":"temporary"}`)
		}
		return scReply(http.StatusOK, `{}`)
	}))
	s := provisionSC(t, stub.URL, nil)
	if err := s.FormReceipt(context.Background(), scSeedReceiptValue()); err != nil {
		t.Fatalf("FormReceipt: %v", err)
	}
	reqs := stub.requests()
	if len(reqs) != 3 {
		t.Fatalf("stub saw %d requests, want 3", len(reqs))
	}
	for i, r := range reqs {
		if !bytes.Equal(r.Body, reqs[0].Body) {
			t.Errorf("request %d body differs:\n%s\n%s", i, r.Body, reqs[0].Body)
		}
		if id := scDecode(t, r.Body)["operationId"]; id != "12854F" {
			t.Errorf("request %d operationId = %v", i, id)
		}
		if r.Header.Get("Authorization") != "Bearer "+scTestToken {
			t.Errorf("request %d Authorization = %q", i, r.Header.Get("Authorization"))
		}
	}
}

func TestSmartCashierRetriesNetworkFailure(t *testing.T) {
	stub := newProviderStub(t, stubPick(func(n int, _ *http.Request) stubAnswer {
		if n == 1 {
			return stubHangUp(t)
		}
		return scReply(http.StatusOK, "")
	}))
	s := provisionSC(t, stub.URL, nil)
	err := s.DepositCash(context.Background(), CashOperation{OperationID: "dep-1", CashboxID: scTestCashbox, Amount: scMoney("100")})
	if err != nil {
		t.Fatalf("DepositCash: %v", err)
	}
	reqs := stub.requests()
	if len(reqs) != 2 || !bytes.Equal(reqs[0].Body, reqs[1].Body) {
		t.Fatalf("want 2 identical requests, got %d", len(reqs))
	}
}

func TestSmartCashierRetriesCheckStatus(t *testing.T) {
	stub := newProviderStub(t, stubPick(func(n int, _ *http.Request) stubAnswer {
		if n == 1 {
			return scReply(http.StatusServiceUnavailable, "busy")
		}
		return scReply(http.StatusOK, scSeedQueued)
	}))
	s := provisionSC(t, stub.URL, nil)
	op, err := s.ReceiptStatus(context.Background(), "12857F")
	if err != nil || op.Status != OperationQueued {
		t.Fatalf("ReceiptStatus = %+v, %v", op, err)
	}
	if n := stub.count(); n != 2 {
		t.Errorf("stub saw %d requests, want 2", n)
	}
}

func TestSmartCashierDoesNotRetryRefusals(t *testing.T) {
	cases := []struct {
		status int
		body   string
		kind   error
	}{
		{http.StatusBadRequest, scProblemDetails, ErrRejected},
		{http.StatusUnauthorized, "", ErrAuth},
		{http.StatusForbidden, "", ErrAuth},
		{http.StatusNotFound, "", ErrNotFound},
		{http.StatusOK, "<html>maintenance</html>", ErrMalformedReply},
	}
	for _, tc := range cases {
		t.Run(strconv.Itoa(tc.status), func(t *testing.T) {
			stub := newProviderStub(t, scReply(tc.status, tc.body))
			s := provisionSC(t, stub.URL, nil)
			err := s.FormReceipt(context.Background(), scSeedReceiptValue())
			if !errors.Is(err, tc.kind) {
				t.Errorf("HTTP %d: err = %v, want %v", tc.status, err, tc.kind)
			}
			if n := stub.count(); n != 1 {
				t.Errorf("HTTP %d: stub saw %d requests, want 1", tc.status, n)
			}
		})
	}
}

func TestSmartCashierRetriesExhausted(t *testing.T) {
	for _, tc := range []struct {
		retries  *int
		requests int
	}{{nil, 4}, {new(0), 1}, {new(2), 3}} {
		t.Run(strconv.Itoa(tc.requests)+" requests", func(t *testing.T) {
			stub := newProviderStub(t, stubPick(func(n int, _ *http.Request) stubAnswer {
				return scReply(http.StatusInternalServerError, fmt.Sprintf(`{"message":"attempt %d"}`, n))
			}))
			s := provisionSC(t, stub.URL, func(s *SmartCashier) { s.Retries = tc.retries })
			err := s.WithdrawCash(context.Background(), CashOperation{OperationID: "wd-1", CashboxID: scTestCashbox, Amount: scMoney("1")})
			var pe *ProviderError
			if !errors.As(err, &pe) || !errors.Is(err, ErrUnavailable) {
				t.Fatalf("err = %v, want an ErrUnavailable ProviderError", err)
			}
			if n := stub.count(); n != tc.requests {
				t.Errorf("stub saw %d requests, want %d", n, tc.requests)
			}
			if want := fmt.Sprintf("attempt %d", tc.requests); pe.Message != want || pe.Status != 500 || pe.Op != "withdrawCash" {
				t.Errorf("error is not the last attempt's: %+v", pe)
			}
		})
	}
}

func TestSmartCashierRetryStopsWhenContextEnds(t *testing.T) {
	stub := newProviderStub(t, scReply(http.StatusBadGateway, ""))
	s := provisionSC(t, stub.URL, scRetries(5))
	s.backoff = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.ReceiptStatus(ctx, "12857F")
	// The backoff is capped at 5s; the context ends after 250ms.
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("ReceiptStatus took %v after its context ended", elapsed)
	}
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want ErrUnavailable and context.DeadlineExceeded", err)
	}
	if n := stub.count(); n != 1 {
		t.Errorf("stub saw %d requests, want 1", n)
	}

	// A context already cancelled sends at most once and does not wait.
	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	err = s.DepositCash(cancelled, CashOperation{OperationID: "dep", CashboxID: scTestCashbox, Amount: scMoney("1")})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want ErrUnavailable and context.Canceled", err)
	}
	if n := stub.count(); n != 1 {
		t.Errorf("stub saw %d requests, want still 1", n)
	}
}

func TestSmartCashierBackoff(t *testing.T) {
	base := 200 * time.Millisecond
	for attempt, bounds := range [][2]time.Duration{
		{100 * time.Millisecond, 200 * time.Millisecond},
		{200 * time.Millisecond, 400 * time.Millisecond},
		{400 * time.Millisecond, 800 * time.Millisecond},
		{800 * time.Millisecond, 1600 * time.Millisecond},
		{1600 * time.Millisecond, 3200 * time.Millisecond},
		{2500 * time.Millisecond, 5 * time.Second},
		{2500 * time.Millisecond, 5 * time.Second},
	} {
		t.Run(fmt.Sprint("attempt ", attempt), func(t *testing.T) {
			seen := map[time.Duration]bool{}
			for range 200 {
				d := smartCashierDelay(base, attempt)
				if d < bounds[0] || d > bounds[1] {
					t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, d, bounds[0], bounds[1])
				}
				seen[d] = true
			}
			if len(seen) < 2 {
				t.Errorf("attempt %d: no jitter", attempt)
			}
		})
	}
	if d := smartCashierDelay(base, 1000); d > smartCashierMaxBackoff {
		t.Errorf("delay after many attempts = %v, above the cap", d)
	}
	if d := smartCashierDelay(0, 3); d != 0 {
		t.Errorf("zero base: delay %v", d)
	}
}

func TestSmartCashierCheckStatus(t *testing.T) {
	moscow := time.FixedZone("MSK", 3*3600)
	created := time.Date(2019, 5, 1, 17, 29, 59, 628293600, moscow)
	cases := []struct {
		name  string
		reply string
		want  Operation
	}{
		{"queued", scSeedQueued, Operation{ID: "12857F", Status: OperationQueued, Created: created}},
		{"processed", scSeedProcessed, Operation{
			ID: "12857F", Status: OperationProcessed, Created: created,
			Processed: time.Date(2019, 5, 1, 17, 34, 59, 628293600, moscow),
			CashboxID: scTestCashbox2,
			Fiscal: &FiscalParams{
				DocumentNumber: 24, DocumentSign: "0637894524",
				DocumentTime:  time.Date(2019, 5, 1, 17, 33, 11, 628793600, moscow),
				ReceiptNumber: 5, ShiftNumber: 3, FNNumber: "9999451122",
				RegistrationNumber: "00244", FNSURL: "www.nalog.ru",
			},
		}},
		{"failed", scSeedFailed, Operation{ID: "12857F", Status: OperationFailed, Created: created,
			CashboxID: scTestCashbox2, Error: "Открыта крышка."}},
		{"no offset", `{"status":2,"creationDateTimeUtc":"2019-05-01T14:29:59.6282936",` +
			`"processingDateTimeUtc":"2019-05-01T14:34:59","handlerCashboxId":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad",` +
			`"fiscalParams":{"fiscalDocumentNumber":"24","fiscalDocumentSign":637894524,` +
			`"fiscalDocumentDateTimeUtc":"2019-05-01T14:33:11.6287936Z","notPrinted":true}}`,
			Operation{ID: "12857F", Status: OperationProcessed, Created: created,
				Processed: time.Date(2019, 5, 1, 14, 34, 59, 0, time.UTC), CashboxID: scTestCashbox2,
				Fiscal: &FiscalParams{DocumentNumber: 24, DocumentSign: "637894524",
					DocumentTime: time.Date(2019, 5, 1, 14, 33, 11, 628793600, time.UTC), NotPrinted: true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, scReply(http.StatusOK, tc.reply))
			s := provisionSC(t, stub.URL+"/v1.0", nil)
			got, err := s.ReceiptStatus(context.Background(), "12857F")
			if err != nil {
				t.Fatalf("ReceiptStatus: %v", err)
			}
			req := scOnly(t, stub)
			if req.Method != http.MethodGet || req.Path != "/v1.0/operations/checkStatus" || req.RawQuery != "operationId=12857F" {
				t.Errorf("got %s %s?%s", req.Method, req.Path, req.RawQuery)
			}
			if got.ID != tc.want.ID || got.Status != tc.want.Status || got.CashboxID != tc.want.CashboxID || got.Error != tc.want.Error {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
			if got.Created.Location() != time.UTC || (got.Fiscal != nil && got.Fiscal.DocumentTime.Location() != time.UTC) {
				t.Errorf("times not in UTC: %v, %+v", got.Created, got.Fiscal)
			}
			if !got.Created.Equal(tc.want.Created) || !got.Processed.Equal(tc.want.Processed) {
				t.Errorf("times: got %v, %v; want %v, %v", got.Created, got.Processed, tc.want.Created, tc.want.Processed)
			}
			if (got.Fiscal == nil) != (tc.want.Fiscal == nil) {
				t.Fatalf("Fiscal = %+v, want %+v", got.Fiscal, tc.want.Fiscal)
			}
			if got.Fiscal != nil {
				g, w := *got.Fiscal, *tc.want.Fiscal
				if !g.DocumentTime.Equal(w.DocumentTime) {
					t.Errorf("DocumentTime = %v, want %v", g.DocumentTime, w.DocumentTime)
				}
				g.DocumentTime, w.DocumentTime = time.Time{}, time.Time{}
				if g != w {
					t.Errorf("Fiscal:\n got %+v\nwant %+v", g, w)
				}
			}
		})
	}
}

func TestSmartCashierCheckStatusFailures(t *testing.T) {
	cases := []struct {
		name   string
		status int
		reply  string
		kind   error
	}{
		{"unknown operation", http.StatusNotFound, `{"title":"Not Found","status":404}`, ErrNotFound},
		{"garbage", http.StatusOK, `garbage`, ErrMalformedReply},
		{"empty", http.StatusOK, ``, ErrMalformedReply},
		{"null", http.StatusOK, `null`, ErrMalformedReply},
		{"unknown status", http.StatusOK, `{"status":4}`, ErrMalformedReply},
		{"no status", http.StatusOK, `{"creationDateTimeUtc":null}`, ErrMalformedReply},
		{"status as text", http.StatusOK, `{"status":"2"}`, ErrMalformedReply},
		{"bad time", http.StatusOK, `{"status":1,"creationDateTimeUtc":"01.05.2019 17:29"}`, ErrMalformedReply},
		{"bad fiscal number", http.StatusOK, `{"status":2,"fiscalParams":{"fiscalDocumentNumber":"x"}}`, ErrMalformedReply},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, scReply(tc.status, tc.reply))
			s := provisionSC(t, stub.URL, nil)
			_, err := s.ReceiptStatus(context.Background(), "12857F")
			var pe *ProviderError
			if !errors.Is(err, tc.kind) || !errors.As(err, &pe) || pe.Op != "checkStatus" || pe.Status != tc.status {
				t.Errorf("err = %v, want %v with HTTP %d", err, tc.kind, tc.status)
			}
			if n := stub.count(); n != 1 {
				t.Errorf("stub saw %d requests, want 1", n)
			}
		})
	}
}

func TestSmartCashierStatusMapping(t *testing.T) {
	cases := []struct {
		name    string
		status  int
		reply   string
		kind    error
		code    string
		path    string
		message string
		httpOut int
	}{
		{"message", 400, `{"message":"Сумма чека не совпадает"}`, ErrRejected, "", "", "Сумма чека не совпадает", 502},
		{"error", 400, `{"error":"invalid cashbox","code":"E42"}`, ErrRejected, "E42", "", "invalid cashbox", 502},
		{"unauthorized", 401, "", ErrAuth, "unauthorized", "", "", 502},
		{"forbidden", 403, `{"message":"Операция запрещена"}`, ErrAuth, "forbidden", "", "Операция запрещена", 502},
		{"not found", 404, "", ErrNotFound, "not_found", "", "", 502},
		{"conflict", 409, `{"title":"Conflict"}`, ErrUnavailable, "", "", "Conflict", 503},
		{"too many requests", 429, `{"title":"Too Many Requests"}`, ErrUnavailable, "", "", "Too Many Requests", 503},
		{"server error", 500, `{"message":"internal"}`, ErrUnavailable, "", "", "internal", 503},
		{"HTML gateway", 502, "<html><body><h1>502 Bad Gateway</h1></body></html>", ErrUnavailable, "", "", "", 503},
		{"malformed 200", 200, "<!DOCTYPE html><html>login</html>", ErrMalformedReply, "", "", "", 502},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, scReply(tc.status, tc.reply))
			s := provisionSC(t, stub.URL, scRetries(0))
			err := s.FormReceipt(context.Background(), scSeedReceiptValue())
			var pe *ProviderError
			if !errors.As(err, &pe) || !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want a %v ProviderError", err, tc.kind)
			}
			if pe.Provider != "smartcashier" || pe.Op != "formReceipt" || pe.Status != tc.status {
				t.Errorf("Provider, Op, Status = %q, %q, %d", pe.Provider, pe.Op, pe.Status)
			}
			if pe.Code != tc.code || pe.Path != tc.path || pe.Message != tc.message {
				t.Errorf("Code, Path, Message = %q, %q, %q\nwant %q, %q, %q", pe.Code, pe.Path, pe.Message, tc.code, tc.path, tc.message)
			}
			if tc.reply != "" && pe.Body == "" {
				t.Error("Body excerpt missing")
			}
			if got := StatusCode(err); got != tc.httpOut {
				t.Errorf("StatusCode = %d, want %d", got, tc.httpOut)
			}
		})
	}

	// Success: an empty 200 or any JSON.
	for _, reply := range []string{"", "{}", `{"operationId":"12854F"}`, " \n", "true"} {
		stub := newProviderStub(t, scReply(http.StatusOK, reply))
		s := provisionSC(t, stub.URL, nil)
		if err := s.FormReceipt(context.Background(), scSeedReceiptValue()); err != nil {
			t.Errorf("reply %q: %v", reply, err)
		}
	}
}

func TestSmartCashierErrorsCarryNoToken(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + closed.Addr().String()
	closed.Close()

	release := make(chan struct{})
	hang := newProviderStub(t, func(w http.ResponseWriter, r *http.Request, _ int) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	})
	t.Cleanup(func() { close(release) })

	echo := func(status int, format string) string {
		stub := newProviderStub(t, stubPick(func(_ int, r *http.Request) stubAnswer {
			return scReply(status, strings.ReplaceAll(format, "TOKEN", strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")))
		}))
		return stub.URL
	}
	cases := []struct {
		name     string
		endpoint string
		timeout  time.Duration
		status   bool // whether to call checkStatus instead of formReceipt
		kind     error
	}{
		{"refused connection", closedURL, 0, false, ErrUnavailable},
		{"timeout", hang.URL, 50 * time.Millisecond, false, ErrUnavailable},
		{"500", echo(500, `{"message":"token TOKEN failed"}`), 0, false, ErrUnavailable},
		{"HTML 502", echo(502, `<html>Bearer TOKEN</html>`), 0, false, ErrUnavailable},
		{"malformed 200", echo(200, `<html>TOKEN</html>`), 0, false, ErrMalformedReply},
		{"malformed status", echo(200, `{"status":9,"handlerCashboxId":"TOKEN"}`), 0, true, ErrMalformedReply},
		{"400", echo(400, `{"title":"bad token TOKEN","errors":{"TOKEN":["TOKEN is wrong"]},"code":"TOKEN"}`), 0, false, ErrRejected},
		{"400 text", echo(400, `your token TOKEN`), 0, false, ErrRejected},
		{"401", echo(401, `{"message":"Bearer TOKEN is invalid"}`), 0, false, ErrAuth},
		{"403", echo(403, `{"error":{"message":"TOKEN forbidden","code":"TOKEN"}}`), 0, true, ErrAuth},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := provisionSC(t, tc.endpoint, func(s *SmartCashier) {
				s.Timeout = caddy.Duration(tc.timeout)
				s.Retries = new(0)
			})
			var err error
			if tc.status {
				_, err = s.ReceiptStatus(context.Background(), "12857F")
			} else {
				err = s.FormReceipt(context.Background(), scSeedReceiptValue())
			}
			if !errors.Is(err, tc.kind) {
				t.Fatalf("err = %v, want %v", err, tc.kind)
			}
			texts := []string{err.Error(), fmt.Sprintf("%+v", err)}
			var pe *ProviderError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %T, want a *ProviderError", err)
			}
			texts = append(texts, pe.Code, pe.Path, pe.Message, pe.Body)
			if pe.Err != nil {
				texts = append(texts, pe.Err.Error())
			}
			for _, text := range texts {
				if strings.Contains(text, scTestToken) {
					t.Errorf("error text carries the token: %s", text)
				}
			}
		})
	}
}

func TestSmartCashierCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`smartcashier {
		token      {env.SC_TOKEN}
		endpoint   https://sandbox.example/v1.0
		cashbox_id da2bb850-63ef-47e4-8b45-7b5b841eaa9b
		taxation   usn_income
		vat        vat18
		print
		timeout    3s
		retries    0
	}`)
	var s SmartCashier
	if err := s.UnmarshalCaddyfile(d); err != nil {
		t.Fatalf("UnmarshalCaddyfile: %v", err)
	}
	want := SmartCashier{Token: "{env.SC_TOKEN}", Endpoint: "https://sandbox.example/v1.0",
		CashboxID: scTestCashbox, Taxation: TaxationUSNIncome, VAT: VAT20, Print: true,
		Timeout: caddy.Duration(3 * time.Second), Retries: new(0)}
	if !reflect.DeepEqual(s, want) {
		t.Errorf("got %+v\nwant %+v", s, want)
	}
	out, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"token":"{env.SC_TOKEN}","endpoint":"https://sandbox.example/v1.0",` +
		`"cashbox_id":"da2bb850-63ef-47e4-8b45-7b5b841eaa9b","taxation":"usn_income","vat":"vat20",` +
		`"print":true,"timeout":3000000000,"retries":0}`
	if string(out) != wantJSON {
		t.Errorf("JSON:\n got %s\nwant %s", out, wantJSON)
	}
	var back SmartCashier
	if err := json.Unmarshal(out, &back); err != nil || !reflect.DeepEqual(back, want) {
		t.Errorf("JSON round trip: %+v, %v", back, err)
	}

	for input, check := range map[string]func(SmartCashier) bool{
		"smartcashier {\n print true\n}":         func(s SmartCashier) bool { return s.Print },
		"smartcashier {\n print false\n}":        func(s SmartCashier) bool { return !s.Print },
		"smartcashier {\n vat vat118\n}":         func(s SmartCashier) bool { return s.VAT == VAT120 },
		"smartcashier {\n vat none\n}":           func(s SmartCashier) bool { return s.VAT == VATNone },
		"smartcashier {\n taxation patent\n}":    func(s SmartCashier) bool { return s.Taxation == TaxationPatent },
		"smartcashier {\n retries 10\n}":         func(s SmartCashier) bool { return s.Retries != nil && *s.Retries == 10 },
		"smartcashier {\n}":                      func(s SmartCashier) bool { return s.Retries == nil && !s.Print },
		"smartcashier {\n taxation esn\n}":       func(s SmartCashier) bool { return s.Taxation == TaxationESN },
		"smartcashier {\n taxation OSN\n}":       func(s SmartCashier) bool { return s.Taxation == TaxationOSN },
		"smartcashier {\n vat vat110\n}":         func(s SmartCashier) bool { return s.VAT == VAT110 },
		"smartcashier {\n timeout 500ms\n}":      func(s SmartCashier) bool { return s.Timeout == caddy.Duration(500*time.Millisecond) },
		"smartcashier {\n cashbox_id {env.X}\n}": func(s SmartCashier) bool { return s.CashboxID == "{env.X}" },
	} {
		t.Run(input, func(t *testing.T) {
			var s SmartCashier
			if err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil || !check(s) {
				t.Errorf("%q: got %+v, %v", input, s, err)
			}
		})
	}
}

func TestSmartCashierCaddyfileErrors(t *testing.T) {
	checkCaddyfileErrors(t, func(d *caddyfile.Dispenser) error { return new(SmartCashier).UnmarshalCaddyfile(d) }, map[string]string{
		"smartcashier main {\n}":                           "unexpected argument",
		"smartcashier {\n tokn x\n}":                       `unrecognized subdirective "tokn"`,
		"smartcashier {\n token a\n token b\n}":            "token given twice",
		"smartcashier {\n print\n print false\n}":          "print given twice",
		"smartcashier {\n retries 1\n retries 2\n}":        "retries given twice",
		"smartcashier {\n vat none\n vat vat0\n}":          "vat given twice",
		"smartcashier {\n taxation osn\n taxation esn\n}":  "taxation given twice",
		"smartcashier {\n timeout 1s\n timeout 2s\n}":      "timeout given twice",
		"smartcashier {\n token\n}":                        "wrong argument count",
		"smartcashier {\n endpoint\n}":                     "wrong argument count",
		"smartcashier {\n cashbox_id\n}":                   "wrong argument count",
		"smartcashier {\n taxation\n}":                     "wrong argument count",
		"smartcashier {\n vat\n}":                          "wrong argument count",
		"smartcashier {\n timeout\n}":                      "wrong argument count",
		"smartcashier {\n retries\n}":                      "wrong argument count",
		"smartcashier {\n token a b\n}":                    "wrong argument count",
		"smartcashier {\n print true false\n}":             "wrong argument count",
		`smartcashier {` + "\n token \"\"\n}":              "must not be empty",
		"smartcashier {\n vat vat8\n}":                     `unknown VAT "vat8"`,
		"smartcashier {\n taxation simplified\n}":          `unknown taxation system "simplified"`,
		"smartcashier {\n print yes\n}":                    `"yes" is not true or false`,
		"smartcashier {\n retries -1\n}":                   "retries must be from 0 to 10",
		"smartcashier {\n retries 11\n}":                   "retries must be from 0 to 10",
		"smartcashier {\n retries three\n}":                `"three" is not a whole number`,
		"smartcashier {\n timeout forever\n}":              "bad duration",
		"smartcashier {\n timeout 0s\n}":                   "must be more than zero",
		"smartcashier {\n taxation usn_income extra\n}":    "wrong argument count",
		"smartcashier {\n cashbox_id a b\n}":               "wrong argument count",
		"smartcashier {\n retries 1 2\n}":                  "wrong argument count",
		"smartcashier {\n endpoint https://a https://b\n}": "wrong argument count",
	})
}

func TestSmartCashierProvision(t *testing.T) {
	newCtx := func() caddy.Context {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		t.Cleanup(cancel)
		return ctx
	}

	// {env.*} placeholders are resolved, and the resolved token is sent;
	// the config keeps the placeholder.
	t.Setenv("SC_TEST_TOKEN", scTestToken)
	t.Setenv("SC_TEST_CASHBOX", scTestCashbox)
	stub := newProviderStub(t, scOK)
	t.Setenv("SC_TEST_ENDPOINT", stub.URL+"/v1.0")
	s := &SmartCashier{Token: "{env.SC_TEST_TOKEN}", CashboxID: "{env.SC_TEST_CASHBOX}",
		Endpoint: "{env.SC_TEST_ENDPOINT}", Taxation: TaxationOSN}
	if err := s.Provision(newCtx()); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := s.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	defer s.Cleanup()
	if s.token != scTestToken || s.cashboxID != scTestCashbox || s.Token != "{env.SC_TEST_TOKEN}" {
		t.Errorf("token, cashbox = %q, %q; Token = %q", s.token, s.cashboxID, s.Token)
	}
	if s.retries != 3 || s.vat != VATNone || s.backoff != 200*time.Millisecond {
		t.Errorf("defaults: retries %d, vat %v, backoff %v", s.retries, s.vat, s.backoff)
	}
	if err := s.DepositCash(context.Background(), CashOperation{OperationID: "d", Amount: scMoney("1")}); err != nil {
		t.Fatalf("DepositCash: %v", err)
	}
	if req := scOnly(t, stub); !strings.Contains(string(req.Body), scTestCashbox) || req.Path != "/v1.0/operations/depositCash" {
		t.Errorf("request: %s %s", req.Path, req.Body)
	}

	// The default endpoint.
	d := &SmartCashier{Token: "t", Taxation: TaxationOSN}
	if err := d.Provision(newCtx()); err != nil {
		t.Fatal(err)
	}
	if got := d.api.URL("operations/formReceipt", nil).String(); got != "https://api.smart-cashier.ru/v1.0/operations/formReceipt" {
		t.Errorf("default endpoint: %s", got)
	}

	for name, tc := range map[string]struct {
		s    SmartCashier
		want string
	}{
		"missing token":     {SmartCashier{Token: "{env.SC_TEST_UNSET}", Taxation: TaxationOSN}, "token is empty"},
		"token with space":  {SmartCashier{Token: "a b", Taxation: TaxationOSN}, "token contains spaces"},
		"missing taxation":  {SmartCashier{Token: "t"}, "taxation is required"},
		"unknown taxation":  {SmartCashier{Token: "t", Taxation: 7}, "unknown taxation system"},
		"unknown VAT":       {SmartCashier{Token: "t", Taxation: TaxationOSN, VAT: 13}, "unknown VAT"},
		"bad cashbox_id":    {SmartCashier{Token: "t", Taxation: TaxationOSN, CashboxID: "cashbox-1"}, "cashbox_id"},
		"negative retries":  {SmartCashier{Token: "t", Taxation: TaxationOSN, Retries: new(-1)}, "retries"},
		"too many retries":  {SmartCashier{Token: "t", Taxation: TaxationOSN, Retries: new(11)}, "retries"},
		"negative timeout":  {SmartCashier{Token: "t", Taxation: TaxationOSN, Timeout: -1}, "timeout"},
		"bad endpoint":      {SmartCashier{Token: "t", Taxation: TaxationOSN, Endpoint: "api.smart-cashier.ru"}, "endpoint"},
		"endpoint query":    {SmartCashier{Token: "t", Taxation: TaxationOSN, Endpoint: "https://a.example/v1.0?token=x"}, "query"},
		"unresolved env ok": {SmartCashier{Token: "{env.SC_TEST_TOKEN}", Taxation: TaxationOSN, CashboxID: "{env.SC_TEST_UNSET}"}, ""},
	} {
		t.Run(name, func(t *testing.T) {
			s := tc.s
			err := s.Provision(newCtx())
			if err == nil {
				err = s.Validate()
				s.Cleanup()
			}
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("%s: %v", name, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("%s: err = %v, want one containing %q", name, err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), scTestToken) {
				t.Errorf("%s: error carries the token: %v", name, err)
			}
		})
	}

	// JSON config: names, not codes; an unknown name is refused.
	var j SmartCashier
	if err := json.Unmarshal([]byte(`{"token":"t","taxation":"usn_income_outcome","vat":"vat10","print":true,"retries":0}`), &j); err != nil {
		t.Fatal(err)
	}
	if j.Taxation != TaxationUSNIncomeOutcome || j.VAT != VAT10 || !j.Print || j.Retries == nil || *j.Retries != 0 {
		t.Errorf("JSON config: %+v", j)
	}
	if err := json.Unmarshal([]byte(`{"taxation":"simplified"}`), &j); err == nil {
		t.Error("unknown taxation name accepted")
	}

	// Module registration.
	info, err := caddy.GetModule("kassa.receipts.smartcashier")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := info.New().(*SmartCashier); !ok {
		t.Errorf("New() = %T", info.New())
	}
}

// scFaultOK checks the invariants of an error's texts taken from a reply.
func scFaultOK(t *testing.T, e *ProviderError) {
	t.Helper()
	for _, s := range []string{e.Code, e.Path, e.Message} {
		if !utf8.ValidString(s) || len(s) > maxReplyText+len("…") || strings.Contains(s, scTestToken) ||
			strings.ContainsFunc(s, unicode.IsControl) || s != strings.TrimSpace(s) {
			t.Fatalf("bad fault text %q", s)
		}
	}
}

func FuzzSmartCashierError(f *testing.F) {
	for _, seed := range []string{
		scProblemDetails, `{"message":"m"}`, `{"error":"e"}`, `{"error":{"message":"inner","error":{"code":1}}}`,
		`{"errors":[{"path":"a.b","message":"x"}]}`, "plain text", "<html></html>", "", `"s"`, "\xff\xfe",
		`{"title":"t","errors":{"k":["v"],"k2":"v2"}}`, `{"title":"bad token ` + scTestToken + `","code":"` + scTestToken + `"}`,
	} {
		f.Add([]byte(seed))
	}
	api, err := NewProviderClient("smartcashier", smartCashierEndpoint, 0, scTestToken)
	if err != nil {
		f.Fatal(err)
	}
	s := &SmartCashier{api: api}
	f.Fuzz(func(t *testing.T, body []byte) {
		e := s.replyError("formReceipt", http.StatusBadRequest, body)
		scFaultOK(t, e)
		if !errors.Is(e, ErrRejected) {
			t.Errorf("a 400 is %v", e.Kind)
		}
	})
}

func FuzzSmartCashierStatus(f *testing.F) {
	for _, seed := range []string{
		scSeedQueued, scSeedProcessed, scSeedFailed, `{"status":2,"creationDateTimeUtc":"2019-05-01T14:29:59"}`,
		`{"status":2,"fiscalParams":{"fiscalDocumentNumber":"24"}}`, `null`, `garbage`, `{"status":0}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		op, err := parseSmartCashierStatus(body)
		if err != nil {
			return
		}
		if op.Status < OperationQueued || op.Status > OperationFailed {
			t.Fatalf("status %d accepted", op.Status)
		}
		if fp := op.Fiscal; fp != nil && (fp.DocumentNumber < 0 || fp.ReceiptNumber < 0 || fp.ShiftNumber < 0) {
			t.Fatalf("negative fiscal number accepted: %+v", fp)
		}
		if _, err := json.Marshal(op); err != nil {
			t.Fatalf("accepted operation does not marshal: %v", err)
		}
	})
}

// TestSmartCashierPlainTextRefusal: a refusal sent as plain text (a
// gateway's or a middleware's reason) or as a JSON string keeps its reason
// in the error the operator reads; an HTML page says nothing.
func TestSmartCashierPlainTextRefusal(t *testing.T) {
	const reason = "Cashbox 7 is switched off"
	for _, tc := range []struct{ name, contentType, body, want string }{
		{"plain text", "text/plain", reason + "\r\n", reason},
		{"JSON string", "application/json", `"` + reason + `"`, reason},
		{"HTML page", "text/html", "<html><body>" + reason + "</body></html>", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, stubReply(http.StatusBadRequest, tc.contentType, tc.body))
			s := provisionSC(t, stub.URL, scRetries(0))
			err := s.FormReceipt(context.Background(), scSeedReceiptValue())
			var pe *ProviderError
			if !errors.Is(err, ErrRejected) || !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a rejection", err)
			}
			if pe.Message != tc.want {
				t.Errorf("message %q, want %q", pe.Message, tc.want)
			}
		})
	}
}

// TestSmartCashierStatusErrorIsCleaned: checkStatus's errorMessage becomes
// the receipt's error, which the buyer's receipt page shows and the order
// keeps: it loses secrets, control characters and its excess length.
func TestSmartCashierStatusErrorIsCleaned(t *testing.T) {
	msg := "Открыта крышка.\n\x1b[31mtoken " + scTestToken + " " + strings.Repeat("x", 5000)
	quoted, _ := json.Marshal(msg)
	stub := newProviderStub(t, scReply(http.StatusOK, `{"status":3,"creationDateTimeUtc":"2019-05-01T17:29:59.6282936+03:00",`+
		`"handlerCashboxId":null,"processingDateTimeUtc":null,"fiscalParams":null,"errorMessage":`+string(quoted)+`}`))
	s := provisionSC(t, stub.URL, nil)
	op, err := s.ReceiptStatus(context.Background(), "kassa-1-sale")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(op.Error, "Открыта крышка. [31mtoken [redacted]") || strings.ContainsFunc(op.Error, unicode.IsControl) ||
		len(op.Error) > maxReplyText+len("…") {
		t.Errorf("operation error (%d bytes) not cleaned: %.80q", len(op.Error), op.Error)
	}
}

// TestSmartCashierEndpointUnset: an endpoint whose {env.*} variable is
// unset is refused at start, as Pegas's is, rather than sending real
// fiscal receipts to Smart Cashier's default host.
func TestSmartCashierEndpointUnset(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	s := &SmartCashier{Token: "t", CashboxID: "1", Endpoint: "{env.SC_TEST_UNSET_ENDPOINT}", Taxation: TaxationOSN}
	err := s.Provision(ctx)
	if err == nil {
		defer s.Cleanup()
	}
	if err == nil || !strings.Contains(err.Error(), "is its environment variable set?") {
		t.Errorf("endpoint with the variable unset: %v", err)
	}
}
