package kassa

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/shopspring/decimal"
)

// TestPaymentRequestFromOrder: an order's invoice carries its id, amount,
// return URL, the buyer's e-mail, what it is for, and lives as long as
// the order.
func TestPaymentRequestFromOrder(t *testing.T) {
	a := &App{OrderTTL: caddy.Duration(45 * time.Minute)}
	o := &Order{ID: "o-1", Amount: decimal.RequireFromString("700.50"), ReturnURL: "https://shop.example/thanks",
		Email: "buyer@example.com", Phone: "+79990000000",
		Items: []OrderItem{{Name: "Green tea", Qty: 2, Price: decimal.NewFromInt(300)}, {Name: "Cup", Qty: 1, Price: decimal.RequireFromString("100.50")}}}
	req := a.paymentRequest(o)
	if req.OrderID != "o-1" || !req.Amount.Equal(o.Amount) || req.ReturnURL != o.ReturnURL || req.TTL != 45*time.Minute ||
		req.Email != "buyer@example.com" || req.Description != "Green tea, Cup" || req.Phone != "" {
		t.Errorf("request = %+v", req)
	}

	o.Description = "Donation"
	if got := a.paymentRequest(o).Description; got != "Donation" {
		t.Errorf("with a description: %q", got)
	}
	o.Description = strings.Repeat("я", 300)
	got := a.paymentRequest(o).Description
	if utf8.RuneCountInString(got) != maxInvoiceDescription || !strings.HasSuffix(got, "…") || !utf8.ValidString(got) {
		t.Errorf("long description cut to %d runes: %q", utf8.RuneCountInString(got), got)
	}
	if got := a.paymentRequest(&Order{ID: "o-2"}).Description; got != "" {
		t.Errorf("an order with neither: %q", got)
	}
}
