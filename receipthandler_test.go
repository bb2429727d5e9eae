package kassa

// Tests of kassa_receipt, the handler of receipthandler.go, in-process: the
// posted receipt's parser, and its answers through ServeHTTP.

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/shopspring/decimal"
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
