package kassa

// Hostile input: fuzz targets for the parsers that had none (the kassa
// global option, kassa_checkout's Caddyfile, a posted receipt, the admin
// API's bodies) and a table of hostile values against every parser a
// request reaches. Every helper here is prefixed hostile.

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/shopspring/decimal"
)

// hostileDispenser tokenizes input as caddyfile.NewTestDispenser does, but
// reports a lexing error (an unterminated quote) instead of exiting the
// process, as NewTestDispenser does. Inputs with {$ENV} placeholders are
// skipped: NewTestDispenser would substitute them before lexing.
func hostileDispenser(t *testing.T, input string) *caddyfile.Dispenser {
	t.Helper()
	if strings.Contains(input, "{$") {
		t.Skip("environment placeholders are substituted before lexing")
	}
	if _, err := caddyfile.Tokenize([]byte(input), "Testfile"); err != nil {
		t.Skip("not lexable")
	}
	return caddyfile.NewTestDispenser(input)
}

// hostilePlainAmount reports whether d has at most two decimals, is not
// negative and is at most maxAmount: what ParseAmount promises.
func hostilePlainAmount(d decimal.Decimal) bool {
	return !d.IsNegative() && d.Equal(d.Round(2)) && !d.GreaterThan(maxAmount)
}

// hostileRequestError checks that err is a RequestError with one of the
// statuses and a code, whose message is valid UTF-8 with no control
// character, and returns it.
func hostileRequestError(t *testing.T, err error, statuses ...int) *RequestError {
	t.Helper()
	var re *RequestError
	if !errors.As(err, &re) {
		t.Fatalf("error %v (%T) is not a *RequestError", err, err)
	}
	found := false
	for _, s := range statuses {
		found = found || re.Status == s
	}
	if !found {
		t.Fatalf("error %v: status %d, want one of %v", err, re.Status, statuses)
	}
	if re.Code == "" || strings.ContainsAny(re.Code, " \t\r\n") {
		t.Fatalf("error %v: code %q", err, re.Code)
	}
	if !utf8.ValidString(re.Message) || strings.ContainsFunc(re.Message, hostileUnsafeRune) {
		t.Fatalf("error message %q carries an unsafe character", re.Message)
	}
	return re
}

// hostileUnsafeRune is a character no message may repeat raw: C0 and C1
// controls, DEL, the line and paragraph separators, and the bidi controls
// that reorder text (Trojan Source).
func hostileUnsafeRune(r rune) bool {
	return r < 0x20 || r >= 0x7f && r < 0xa0 || r == '\u2028' || r == '\u2029' || hostileBidi(r)
}

// hostileBidi reports whether r is a bidi embedding, override or isolate.
func hostileBidi(r rune) bool {
	return r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
}

// FuzzGlobalOption feeds arbitrary Caddyfile text to the kassa global
// option's parser. It must not panic, and what it accepts must be an app
// config that decodes again with the app's own strict JSON rules: every
// inline product valid and unique (a catalog can be built of them), the
// durations positive, the payment accounts validly named.
func FuzzGlobalOption(f *testing.F) {
	for _, s := range []string{
		"kassa",
		"kassa {\n}",
		`kassa {
	payment main crystalpay {
		login   {env.CRYSTALPAY_LOGIN}
		secret  {env.CRYSTALPAY_SECRET}
		secret2 {env.CRYSTALPAY_SECRET2}
	}
	payment card pegas {
		token    {env.PEGAS_TOKEN}
		endpoint https://pegas.example/api/v1
		type     invoice-card
	}
	receipts smartcashier {
		token      {env.SMARTCASHIER_TOKEN}
		cashbox_id da2bb850-63ef-47e4-8b45-7b5b841eaa9b
		taxation   usn_income
		vat        none
		print      false
	}
	catalog /srv/shop/catalog.json
	product tea-green 350.00 "Green tea 100 g" vat20
	product cup 1200 "Чашка"
	poll_interval 10s
	order_ttl 30m
}`,
		"kassa {\n\tproduct tea 350.00 \"Tea\" vat20\n\tproduct tea 1 \"Twice\"\n}",
		"kassa {\n\tproduct tea 3.5e2 \"Tea\"\n}",
		"kassa {\n\tproduct tea -1 \"Tea\"\n}",
		"kassa {\n\tproduct ../../etc/passwd 1 \"x\"\n}",
		"kassa {\n\tproduct tea 1 \"<script>alert(1)</script>\"\n}",
		"kassa {\n\tproduct tea 1 \"a\x00b\"\n}",
		"kassa {\n\tproduct tea ３５０ \"Tea\"\n}",
		"kassa {\n\tpoll_interval 0s\n\torder_ttl -1m\n}",
		"kassa {\n\tpoll_interval 1s\n\tpoll_interval 2s\n}",
		"kassa {\n\tpayment ../x crystalpay {\n\t}\n}",
		"kassa {\n\tpayment main nope {\n\t}\n}",
		"kassa {\n\treceipts smartcashier {\n\t\ttoken x\n\t}\n\treceipts smartcashier\n}",
		"kassa {\n\tstorage nope\n}",
		"kassa extra {\n}",
		"kassa {\n\tunknown thing\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d := hostileDispenser(t, input)
		v, err := parseGlobalOption(d, nil)
		if err != nil {
			return
		}
		app, ok := v.(httpcaddyfile.App)
		if !ok || app.Name != "kassa" {
			t.Fatalf("accepted as %#v, want the kassa app", v)
		}
		var got App
		if err := json.Unmarshal(app.Value, &got); err != nil {
			t.Fatalf("the app's JSON does not decode again: %v\n%s", err, app.Value)
		}
		if _, err := NewCatalog(got.Products); err != nil {
			t.Fatalf("accepted products that make no catalog: %v\n%s", err, app.Value)
		}
		for _, p := range got.Products {
			if !hostilePlainAmount(p.Price) || checkItemName(p.Name) != nil || !validSKU(p.SKU) {
				t.Fatalf("accepted product %+v", p)
			}
		}
		if got.PollInterval < 0 || got.OrderTTL < 0 {
			t.Fatalf("accepted durations %v %v", got.PollInterval, got.OrderTTL)
		}
		for name := range got.PaymentsRaw {
			if err := validateAccountName(name); err != nil {
				t.Fatalf("accepted account name %q: %v", name, err)
			}
		}
	})
}

// FuzzCheckoutCaddyfile feeds arbitrary text to kassa_checkout's Caddyfile
// parser. It must not panic; an accepted amount_range is 0 < min ≤ max in
// plain amounts, an accepted max_body is 1 byte to 1 GiB, and the handler's
// JSON config reads back the same.
func FuzzCheckoutCaddyfile(f *testing.F) {
	for _, s := range []string{
		"kassa_checkout",
		"kassa_checkout main",
		"kassa_checkout main extra",
		"kassa_checkout main {\n\tredirect https://shop.example.com/thanks.html?order={kassa.order_id}\n}",
		"kassa_checkout main {\n\tamount {rp.header.X-Kassa-Amount}\n\torder_id {rp.header.X-Kassa-Order}\n\titems {rp.header.X-Kassa-Items}\n\temail {rp.header.X-Kassa-Email}\n\tphone {rp.header.X-Kassa-Phone}\n\tdescription \"Заказ\"\n}",
		"kassa_checkout card {\n\tamount_range 10 5000\n\tdescription \"Пожертвование\"\n}",
		"kassa_checkout card {\n\tamount_range 5000 10\n}",
		"kassa_checkout card {\n\tamount_range 0 10\n}",
		"kassa_checkout card {\n\tamount_range 1e1 -5\n}",
		"kassa_checkout card {\n\tamount_range 10 20\n\tamount_range 10 20\n}",
		"kassa_checkout {\n\tmax_body 1KiB\n}",
		"kassa_checkout {\n\tmax_body 0\n}",
		"kassa_checkout {\n\tmax_body 99EiB\n}",
		"kassa_checkout {\n\tpayment a\n\tpayment b\n}",
		"kassa_checkout {\n\tamount \"\"\n}",
		"kassa_checkout {\n\tnope\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d := hostileDispenser(t, input)
		var h Checkout
		if err := h.UnmarshalCaddyfile(d); err != nil {
			return
		}
		if r := h.AmountRange; r != nil {
			if !r.Min.IsPositive() || r.Max.LessThan(r.Min) || !hostilePlainAmount(r.Min) || !hostilePlainAmount(r.Max) {
				t.Fatalf("accepted amount_range %s %s", r.Min, r.Max)
			}
		}
		if h.MaxBody < 0 || h.MaxBody > 1<<30 {
			t.Fatalf("accepted max_body %d", h.MaxBody)
		}
		b, err := json.Marshal(&h)
		if err != nil {
			t.Fatalf("encoding the handler: %v", err)
		}
		var back Checkout
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatalf("the handler's JSON does not decode again: %v\n%s", err, b)
		}
		if back.Payment != h.Payment || back.Amount != h.Amount || back.OrderID != h.OrderID || back.Items != h.Items ||
			back.Description != h.Description || back.Email != h.Email || back.Phone != h.Phone ||
			back.Redirect != h.Redirect || back.MaxBody != h.MaxBody || (back.AmountRange == nil) != (h.AmountRange == nil) {
			t.Fatalf("the handler's JSON reads back differently:\n%+v\n%+v", h, back)
		}
		if r := h.AmountRange; r != nil && (!back.AmountRange.Min.Equal(r.Min) || !back.AmountRange.Max.Equal(r.Max)) {
			t.Fatalf("amount_range reads back as %s %s, want %s %s", back.AmountRange.Min, back.AmountRange.Max, r.Min, r.Max)
		}
	})
}

// hostileCheckReceipt holds what parseReceiptRequest promises of a receipt
// it accepts: valid-UTF-8 names, contacts and ids; plain amounts with at
// most two decimals; known types; no id of the plugin's own namespace.
func hostileCheckReceipt(t *testing.T, rc Receipt) {
	t.Helper()
	if strings.HasPrefix(rc.OperationID, "kassa-") {
		t.Fatalf("accepted operation id %q of the plugin's namespace", rc.OperationID)
	}
	for _, s := range []string{rc.OperationID, rc.Email, rc.Phone, rc.CashboxID} {
		if !utf8.ValidString(s) {
			t.Fatalf("accepted invalid UTF-8 %q", s)
		}
	}
	if !hostilePlainAmount(rc.Cash) || !hostilePlainAmount(rc.Cashless) {
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
		if !hostilePlainAmount(p.Price) {
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
			hostileRequestError(t, err, http.StatusBadRequest)
			return
		}
		if !json.Valid(body) {
			t.Fatalf("accepted a body that is not one JSON value: %q", body)
		}
		if !utf8.Valid(body) {
			t.Fatalf("accepted a body that is not UTF-8: %q", body)
		}
		hostileCheckReceipt(t, rc)
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
			hostileRequestError(t, err, http.StatusBadRequest)
			return
		}
		hostileCheckReceipt(t, rc)
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

// FuzzAdminBody feeds arbitrary bodies to the admin API's strict JSON
// reader, as a payout and as a cash operation. A refusal is a 400 (413 for
// a body over 64 KiB) RequestError with a safe message; an accepted body is
// one valid-UTF-8 JSON value whose fields read back the same.
func FuzzAdminBody(f *testing.F) {
	for _, s := range []string{
		`{"payment":"main","amount":"100","to":"79990000000","method":"qw","comment":"Зарплата"}`,
		`{"payment":"card","amount":"100.50","to":"4111111111111111","method":"card","order_id":"payout-1"}`,
		`{"amount":"500.00","cashbox_id":"da2bb850-63ef-47e4-8b45-7b5b841eaa9b"}`,
		`{"amount":"500.00","operation_id":"cash-1"}`,
		`{"amount":500}`,
		`{"amount":"1","nope":1}`,
		`{"amount":"1"}}`,
		`{"amount":"1"}]`,
		`{"amount":"1"} {"amount":"2"}`,
		`{"to":"` + "\xff\xfe" + `"}`,
		`{"comment":"a\r\nX-Injected: 1"}`,
		`{"payment":"\u202emain"}`,
		`null`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{new(payoutRequest), new(cashRequest)} {
			r := httptest.NewRequest(http.MethodPost, "/kassa/payouts", strings.NewReader(string(body)))
			err := decodeAdminBody(r, v)
			if err != nil {
				re := hostileRequestError(t, err, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
				if (re.Status == http.StatusRequestEntityTooLarge) != (len(body) > maxAdminBody) {
					t.Fatalf("%d-byte body: status %d", len(body), re.Status)
				}
				continue
			}
			if len(body) > maxAdminBody {
				t.Fatalf("accepted a %d-byte body", len(body))
			}
			if !json.Valid(body) || !utf8.Valid(body) {
				t.Fatalf("accepted a body that is not one valid-UTF-8 JSON value: %q", body)
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := decodeAdminBody(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(again))), back); err != nil {
				t.Fatalf("its own encoding %s is refused: %v", again, err)
			}
			if !reflect.DeepEqual(v, back) {
				t.Fatalf("reads back as %+v, want %+v", back, v)
			}
		}
	})
}

// hostileValue is a value an attacker sends, by name.
type hostileValue struct{ name, value string }

// hostileValues are the values every input surface is tried with.
var hostileValues = []hostileValue{
	{"crlf", "a\r\nX-Injected: 1"},
	{"nul", "a\x00b"},
	{"c0", "a\x01\x1b[31mb"},
	{"long", strings.Repeat("9", 100<<10)},
	{"invalid utf-8", "\xff\xfe"},
	{"html", "<script>alert(1)</script>"},
	{"sql", "1' OR '1'='1"},
	{"sql drop", "'; DROP TABLE orders; --"},
	{"traversal", "../../etc/passwd"},
	{"bidi", "\u202egnp.exe"},
	{"full-width digits", "３５０"},
	{"exponent", "3.5e2"},
	{"signed", "-350"},
	{"plus", "+350"},
}

// TestHostileValuesAtTheParsers tries every hostile value in every field the
// request parsers read, and requires a clean 400 RequestError (never a
// panic) whose message is safe to show and does not repeat the value raw.
func TestHostileValuesAtTheParsers(t *testing.T) {
	c := testCatalog(t)
	fields := []struct {
		name string
		// parse parses one request carrying v in the field; it returns the
		// error, or nil if the request was accepted.
		parse func(v string) error
	}{
		{"amount", func(v string) error { _, err := ParseAmount("amount", v); return err }},
		{"form item", func(v string) error {
			req, err := ParseCheckoutForm(url.Values{"item": {v}})
			if err == nil {
				_, _, err = c.Price(req.Items)
			}
			return err
		}},
		{"form item qty", func(v string) error { _, err := ParseCheckoutForm(url.Values{"item": {"cup:" + v}}); return err }},
		{"form email", func(v string) error {
			_, err := ParseCheckoutForm(url.Values{"item": {"cup"}, "email": {v}})
			return err
		}},
		{"form email local part", func(v string) error {
			_, err := ParseCheckoutForm(url.Values{"item": {"cup"}, "email": {v + "@example.com"}})
			return err
		}},
		{"form phone", func(v string) error {
			_, err := ParseCheckoutForm(url.Values{"item": {"cup"}, "phone": {v}})
			return err
		}},
		{"json sku", func(v string) error {
			body, _ := json.Marshal(map[string]any{"items": []any{map[string]any{"sku": v}}})
			req, err := ParseCheckoutJSON(body)
			if err == nil {
				_, _, err = c.Price(req.Items)
			}
			return err
		}},
		{"json email", func(v string) error {
			_, err := ParseCheckoutJSON(hostileJSON(`{"items":[{"sku":"cup"}],"email":`, v, `}`))
			return err
		}},
		{"json email local part", func(v string) error {
			_, err := ParseCheckoutJSON(hostileJSON(`{"items":[{"sku":"cup"}],"email":`, v+"@example.com", `}`))
			return err
		}},
		{"json phone", func(v string) error {
			_, err := ParseCheckoutJSON(hostileJSON(`{"items":[{"sku":"cup"}],"phone":`, v, `}`))
			return err
		}},
		{"upstream item name", func(v string) error {
			_, _, err := ParseItems(string(hostileJSON(`[{"name":`, v, `,"qty":1,"price":"1.00"}]`)))
			return err
		}},
		{"upstream item price", func(v string) error {
			_, _, err := ParseItems(string(hostileJSON(`[{"name":"Tea","qty":1,"price":`, v, `}]`)))
			return err
		}},
		{"upstream items", func(v string) error { _, _, err := ParseItems(v); return err }},
		{"idempotency key", func(v string) error { return ValidIdempotencyKey(v) }},
		{"receipt amount", func(v string) error {
			_, err := parseReceiptRequest(hostileJSON(`{"operation_id":"till-1","cashless":`, v, `}`))
			return err
		}},
		{"receipt item price", func(v string) error {
			_, err := parseReceiptRequest(hostileJSON(`{"operation_id":"till-1","items":[{"name":"Tea","qty":1,"price":`, v, `}]}`))
			return err
		}},
		{"receipt vat", func(v string) error {
			_, err := parseReceiptRequest(hostileJSON(`{"operation_id":"till-1","items":[{"name":"Tea","qty":1,"price":"1","vat":`, v, `}]}`))
			return err
		}},
		{"receipt type", func(v string) error {
			_, err := parseReceiptRequest(hostileJSON(`{"operation_id":"till-1","type":`, v, `}`))
			return err
		}},
		{"admin payout amount", func(v string) error {
			var req payoutRequest
			err := decodeAdminBody(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(hostileJSON(`{"amount":`, v, `}`)))), &req)
			if err == nil {
				_, err = ParseAmount("amount", req.Amount)
			}
			return err
		}},
	}
	// Values a field rightly accepts: an apostrophe is legal in an
	// address's local part, and a JSON array of items may well be named
	// with quotes or markup (a name is text; it is escaped where shown).
	accepted := map[string]bool{
		"upstream item name/html":              true,
		"upstream item name/sql":               true,
		"upstream item name/sql drop":          true,
		"upstream item name/traversal":         true,
		"upstream item name/full-width digits": true,
		"upstream item name/exponent":          true,
		"upstream item name/signed":            true,
		"upstream item name/plus":              true,
		"idempotency key/html":                 true, // printable ASCII: a legal key
		"idempotency key/sql":                  true,
		"idempotency key/sql drop":             true,
		"idempotency key/traversal":            true,
		"idempotency key/exponent":             true,
		"idempotency key/signed":               true,
		"idempotency key/plus":                 true,
		// 3.5e2@example.com is an address, and so, by its characters, is
		// ../../etc/passwd@example.com (it is only ever stored and sent as
		// JSON); a non-ASCII local part is an internationalised address.
		"form email local part/exponent":          true,
		"form email local part/traversal":         true,
		"form email local part/full-width digits": true,
		"json email local part/traversal":         true,
		"json email local part/full-width digits": true,
		"form email local part/signed":            true,
		"form email local part/plus":              true,
		"json email local part/exponent":          true,
		"json email local part/signed":            true,
		"json email local part/plus":              true,
	}
	for _, field := range fields {
		for _, hv := range hostileValues {
			name := field.name + "/" + hv.name
			t.Run(name, func(t *testing.T) {
				var err error
				func() {
					defer func() {
						if p := recover(); p != nil {
							t.Fatalf("panic: %v", p)
						}
					}()
					err = field.parse(hv.value)
				}()
				if accepted[name] {
					if err != nil {
						t.Fatalf("refused a legitimate value: %v", err)
					}
					return
				}
				if err == nil {
					t.Fatalf("accepted %q", hostileShort(hv.value))
				}
				statuses := []int{http.StatusBadRequest}
				if hv.name == "long" && strings.HasPrefix(field.name, "admin") {
					statuses = append(statuses, http.StatusRequestEntityTooLarge) // a body over 64 KiB
				}
				re := hostileRequestError(t, err, statuses...)
				if len(hv.value) > 8 && strings.Contains(re.Message, hv.value) && strings.ContainsAny(hv.value, "<>&\r\n\x00") {
					t.Fatalf("message repeats the value raw: %q", re.Message)
				}
				if len(re.Message) > 1024 {
					t.Fatalf("message of %d bytes", len(re.Message))
				}
			})
		}
	}
}

// hostileJSON is prefix, v as a JSON string (invalid UTF-8 kept as the raw
// bytes an attacker would send, not replaced), and suffix.
func hostileJSON(prefix, v, suffix string) []byte {
	var b strings.Builder
	b.WriteString(prefix)
	b.WriteByte('"')
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteByte(v[i])
		default:
			enc, _ := json.Marshal(string(r))
			b.Write(enc[1 : len(enc)-1])
		}
		i += size
	}
	b.WriteByte('"')
	b.WriteString(suffix)
	return []byte(b.String())
}

// hostileShort cuts a value for a test message.
func hostileShort(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// TestHostileProxiedValue: a proxied field that is one placeholder the
// request does not know (an optional header the upstream left out) is
// empty, never the placeholder's text, which would otherwise become every
// such order's order id, items or email. Everything else is replaced as
// before: literal JSON items stay as written.
func TestHostileProxiedValue(t *testing.T) {
	repl := caddy.NewReplacer()
	repl.Set("http.reverse_proxy.header.X-Kassa-Amount", "500.00")
	for _, tc := range []struct{ field, want string }{
		{"{http.reverse_proxy.header.X-Kassa-Amount}", "500.00"},
		{"{http.reverse_proxy.header.X-Kassa-Order}", ""},
		{"{http.reverse_proxy.header.X-Kassa-Items}", ""},
		{"order-{http.reverse_proxy.header.X-Kassa-Amount}", "order-500.00"},
		{`[{"name":"Tea","qty":1,"price":"500.00"}]`, `[{"name":"Tea","qty":1,"price":"500.00"}]`},
		{"shop-42", "shop-42"},
		{"", ""},
	} {
		if got := proxiedValue(repl, tc.field); got != tc.want {
			t.Errorf("proxiedValue(%q) = %q, want %q", tc.field, got, tc.want)
		}
	}
}
