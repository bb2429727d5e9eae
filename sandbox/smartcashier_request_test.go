package sandbox

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// TestSmartCashierTaxTypes: Smart Cashier takes the document's taxType
// codes 1 to 6, and the codes smartcashier_tax_types adds.
func TestSmartCashierTaxTypes(t *testing.T) {
	edited := strings.Replace(seedReceipt, `"taxType": 3}`, `"taxType": 11}`, 1)
	if r := newTestSandbox(t, nil).cashier("formReceipt", edited); r.status != http.StatusBadRequest {
		t.Errorf("taxType 11 by default: %d %s, want 400", r.status, r.body)
	}
	s := newTestSandbox(t, func(h *Handler) { h.SmartCashierTaxTypes = []int{11} })
	if r := s.cashier("formReceipt", edited); r.status != http.StatusOK {
		t.Errorf("taxType 11 when configured: %d %s", r.status, r.body)
	}
	if r := s.cashier("formReceipt", strings.Replace(edited, `"12854F"`, `"12854G"`, 1)); r.status != http.StatusOK {
		t.Errorf("a second receipt: %d %s", r.status, r.body)
	}
}

func TestSmartCashierValidation(t *testing.T) {
	s := newTestSandbox(t, nil)
	edit := func(from, to string) string {
		if !strings.Contains(seedReceipt, from) {
			t.Fatalf("seed lacks %q", from)
		}
		return strings.Replace(seedReceipt, from, to, 1)
	}
	for _, tc := range []struct {
		name, op, body, key string
	}{
		{"fractional quantity", "formReceipt", edit(`"quantity": 3`, `"quantity": 2.5`), "$.positions.quantity"},
		{"price as string", "formReceipt", edit(`"price": 70`, `"price": "70"`), "$.positions.price"},
		{"total as string", "formReceipt", edit(`"totalSum": 270`, `"totalSum": "270"`), "$.totalSum"},
		{"operationId as number", "formReceipt", edit(`"operationId": "12854F"`, `"operationId": 12854`), "$.operationId"},
		{"unknown field", "formReceipt", edit(`"printReceipt": true`, `"printReceipt": true, "discount": 5`), "$"},
		{"trailing data", "formReceipt", seedReceipt + "{}", "$"},
		{"syntax", "formReceipt", `{"operationId":`, "$"},
		{"zero quantity", "formReceipt", edit(`"quantity": 3, "price": 70`, `"quantity": 0, "price": 70`), "positions[0].quantity"},
		{"negative price", "formReceipt", edit(`"price": 30`, `"price": -30`), "positions[1].price"},
		{"sub-kopeck price", "formReceipt", edit(`"price": 30`, `"price": 30.001`), "positions[1].price"},
		{"empty name", "formReceipt", edit(`"Хлеб ржаной"`, `""`), "positions[1].name"},
		{"long name", "formReceipt", edit(`"Хлеб ржаной"`, `"`+strings.Repeat("х", 129)+`"`), "positions[1].name"},
		{"bad tax type", "formReceipt", edit(`"taxType": 3}`, `"taxType": 7}`), "positions[0].taxType"},
		{"no positions", "formReceipt", `{"operationId":"x","receiptType":1,"printReceipt":false,"taxationSystem":1,` +
			`"cashPaymentSum":0,"cashlessPaymentSum":0,"totalSum":0}`, "positions"},
		{"empty positions", "formReceipt", regexp.MustCompile(`(?s)"positions": \[.*?\n  \],`).ReplaceAllString(seedReceipt, `"positions": [],`), "positions"},
		{"total mismatch", "formReceipt", edit(`"totalSum": 270`, `"totalSum": 270.01`), "totalSum"},
		{"payment mismatch", "formReceipt", edit(`"cashPaymentSum": 200`, `"cashPaymentSum": 199.99`), "totalSum"},
		{"receipt type", "formReceipt", edit(`"receiptType": 1`, `"receiptType": 5`), "receiptType"},
		{"taxation", "formReceipt", edit(`"taxationSystem": 2`, `"taxationSystem": 0`), "taxationSystem"},
		{"no print flag", "formReceipt", edit(`"printReceipt": true,`, ``), "printReceipt"},
		{"no operationId", "formReceipt", edit(`"operationId": "12854F"`, `"operationId": ""`), "operationId"},
		{"bad email", "formReceipt", edit(`customer@example.com`, `customer`), "buyerEmail"},
		{"bad cashbox", "formReceipt", edit(`da2bb850-63ef-47e4-8b45-7b5b841eaa9b`, `cashbox-1`), "cashboxId"},
		{"cash without cashbox", "depositCash", `{"amount":5,"operationId":"D"}`, "cashboxId"},
		{"cash bad cashbox", "depositCash", `{"cashboxId":"x","amount":5,"operationId":"D"}`, "cashboxId"},
		{"cash zero", "withdrawCash", `{"cashboxId":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad","amount":0,"operationId":"D"}`, "amount"},
		{"cash as string", "depositCash", `{"cashboxId":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad","amount":"50","operationId":"D"}`, "$.amount"},
		{"cash no id", "depositCash", `{"cashboxId":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad","amount":50}`, "operationId"},
		{"empty body", "depositCash", ``, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.cashier(tc.op, tc.body)
			m := r.object(t)
			errs, _ := m["errors"].(map[string]any)
			if r.status != http.StatusBadRequest || m["status"] != 400.0 ||
				m["title"] != "One or more validation errors occurred." ||
				m["type"] != "https://tools.ietf.org/html/rfc7231#section-6.5.1" || errs[tc.key] == nil {
				t.Errorf("%d %s, want 400 with errors[%q]", r.status, r.body, tc.key)
			}
		})
	}
	r := s.cashier("formReceipt", edit(`"quantity": 3, "price": 70`, `"quantity": 0, "price": 70`))
	if m := r.object(t)["errors"].(map[string]any); mustJSON(m["positions[0].quantity"]) != `["Quantity must be at least 1."]` {
		t.Errorf("quantity error %s", r.body)
	}
	r = s.do(http.MethodPost, "/smartcashier/v1.0/operations/formReceipt", seedReceipt, "Authorization", bearer, "Content-Type", "text/plain")
	if r.status != http.StatusUnsupportedMediaType {
		t.Errorf("text/plain body: %d, want 415", r.status)
	}
	if n := len(s.state().SmartCashier.Operations); n != 0 {
		t.Errorf("%d operations created by refused calls", n)
	}
}
