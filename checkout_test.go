package kassa

// Tests of kassa_checkout, the handler of checkout.go, in-process: its
// Caddyfile, and its answers through ServeHTTP.

import (
	"encoding/json"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

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
		d := fuzzDispenser(t, input)
		var h Checkout
		if err := h.UnmarshalCaddyfile(d); err != nil {
			return
		}
		if r := h.AmountRange; r != nil {
			if !r.Min.IsPositive() || r.Max.LessThan(r.Min) || !plainAmount(r.Min) || !plainAmount(r.Max) {
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

// TestProxiedValue: a proxied field that is one placeholder the
// request does not know (an optional header the upstream left out) is
// empty, never the placeholder's text, which would otherwise become every
// such order's order id, items or email. Everything else is replaced as
// before: literal JSON items stay as written.
func TestProxiedValue(t *testing.T) {
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
