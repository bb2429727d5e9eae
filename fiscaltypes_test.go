package kassa

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// seedReceipt is the vendor document's example: 3 × 70 + 2 × 30 = 270, paid
// 200 in cash and 70 cashless.
func seedReceipt() Receipt {
	return Receipt{
		OperationID: "12854F", Type: ReceiptSale, Taxation: TaxationUSNIncome,
		Email: "customer@example.com",
		Cash:  decimal.NewFromInt(200), Cashless: decimal.NewFromInt(70),
		Positions: []Position{
			{Name: "Молоко коровье", Quantity: 3, Price: decimal.NewFromInt(70), VAT: VAT20},
			{Name: "Хлеб ржаной", Quantity: 2, Price: decimal.NewFromInt(30), VAT: VAT20},
		},
	}
}

func TestReceiptValidate(t *testing.T) {
	if err := seedReceipt().Validate(); err != nil {
		t.Fatalf("the vendor's example receipt: %v", err)
	}
	if got := seedReceipt().Total(); !got.Equal(decimal.NewFromInt(270)) {
		t.Errorf("total = %s", got)
	}
	kopecks := Receipt{OperationID: "k", Type: ReceiptSale, Taxation: TaxationOSN,
		Cashless:  decimal.RequireFromString("299.97"),
		Positions: []Position{{Name: "x", Quantity: 3, Price: decimal.RequireFromString("99.99"), VAT: VATNone}}}
	if err := kopecks.Validate(); err != nil {
		t.Errorf("3 × 99.99 = 299.97: %v", err)
	}

	for _, tc := range []struct {
		field string
		edit  func(r *Receipt)
	}{
		{"cashless", func(r *Receipt) { r.Cashless = decimal.RequireFromString("70.01") }},
		{"cashless", func(r *Receipt) { r.Cash = decimal.RequireFromString("199.99") }},
		{"operation_id", func(r *Receipt) { r.OperationID = "" }},
		{"operation_id", func(r *Receipt) { r.OperationID = "a b" }},
		{"operation_id", func(r *Receipt) { r.OperationID = strings.Repeat("x", 129) }},
		{"type", func(r *Receipt) { r.Type = 0 }},
		{"taxation", func(r *Receipt) { r.Taxation = 7 }},
		{"items", func(r *Receipt) { r.Positions = nil }},
		{"items[0].name", func(r *Receipt) { r.Positions[0].Name = "  " }},
		{"items[0].name", func(r *Receipt) { r.Positions[0].Name = strings.Repeat("я", 129) }},
		{"items[1].name", func(r *Receipt) { r.Positions[1].Name = "Хлеб\nржаной" }},
		{"items[1].name", func(r *Receipt) { r.Positions[1].Name = "\xff" }},
		{"items[0].qty", func(r *Receipt) { r.Positions[0].Quantity = 0 }},
		{"items[0].qty", func(r *Receipt) { r.Positions[0].Quantity = -3 }},
		{"items[0].price", func(r *Receipt) { r.Positions[0].Price = decimal.NewFromInt(-70) }},
		{"items[0].price", func(r *Receipt) { r.Positions[0].Price = decimal.RequireFromString("70.001") }},
		{"items[0].vat", func(r *Receipt) { r.Positions[0].VAT = 0 }},
		{"cash", func(r *Receipt) { r.Cash = decimal.NewFromInt(-1); r.Cashless = decimal.NewFromInt(271) }},
		{"email", func(r *Receipt) { r.Email = "not-an-email" }},
		{"phone", func(r *Receipt) { r.Phone = "+7999\r\nX-Injected: 1" }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			r := seedReceipt()
			tc.edit(&r)
			err := r.Validate()
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field {
				t.Errorf("want an error on %s, got %v", tc.field, err)
			}
		})
	}
	r := seedReceipt()
	r.Positions[0].Name = strings.Repeat("я", 128)
	if err := r.Validate(); err != nil {
		t.Errorf("128 Cyrillic characters must pass: %v", err)
	}
}

func TestDirectories(t *testing.T) {
	for name, want := range map[string]VAT{"vat0": VAT0, "vat10": VAT10, "vat18": VAT20, "vat20": VAT20,
		"none": VATNone, "vat110": VAT110, "vat118": VAT120, "vat120": VAT120, " VAT20 ": VAT20} {
		if got, err := ParseVAT(name); err != nil || got != want {
			t.Errorf("ParseVAT(%q) = %v, %v", name, got, err)
		}
	}
	for name, want := range map[string]TaxationSystem{"osn": 1, "usn_income": 2, "usn_income_outcome": 3,
		"envd": 4, "esn": 5, "patent": 6} {
		if got, err := ParseTaxationSystem(name); err != nil || got != want || got.String() != name {
			t.Errorf("ParseTaxationSystem(%q) = %v, %v", name, got, err)
		}
	}
	for name, want := range map[string]ReceiptType{"sale": 1, "sale_return": 2, "purchase": 3, "purchase_return": 4} {
		t.Run(name, func(t *testing.T) {
			if got, err := ParseReceiptType(name); err != nil || got != want || got.String() != name {
				t.Errorf("ParseReceiptType(%q) = %v, %v", name, got, err)
			}
		})
	}
	if _, err := ParseVAT("vat21"); err == nil || !strings.Contains(err.Error(), "vat20") {
		t.Errorf("unknown VAT: %v (should list the known names)", err)
	}
	if _, err := ParseTaxationSystem("usn"); err == nil {
		t.Error("usn accepted")
	}
}

func TestReceiptJSON(t *testing.T) {
	in := `{"operation_id":"op-1","type":"sale","cash":"0","cashless":"270.00",` +
		`"items":[{"name":"Чай","qty":2,"price":"135.00","vat":"vat18"}]}`
	var r Receipt
	if err := json.Unmarshal([]byte(in), &r); err != nil {
		t.Fatal(err)
	}
	if r.Type != ReceiptSale || r.Positions[0].VAT != VAT20 || !r.Cashless.Equal(decimal.NewFromInt(270)) {
		t.Errorf("decoded %+v", r)
	}
	out, _ := json.Marshal(r.Positions[0])
	if string(out) != `{"name":"Чай","qty":2,"price":"135","vat":"vat20"}` {
		t.Errorf("encoded %s", out)
	}
	if err := json.Unmarshal([]byte(`{"type":"gift"}`), &r); err == nil {
		t.Error("unknown receipt type accepted")
	}
}
