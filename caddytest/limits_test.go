package caddytest

import (
	"net/http"
	"strings"
	"testing"
)

// TestMaxOpenOrders: a real Caddy with max_open_orders 3 takes three
// orders and refuses the fourth checkout with 503 shop_busy and
// Retry-After (a page for a form), without calling the provider; a replay
// of an order made is still answered. An order cancelled through the admin
// API, or paid, frees its place within about a second.
func TestMaxOpenOrders(t *testing.T) {
	shopWith(t, storageDir(t), "poll_interval 100ms", "poll_interval 100ms\n\t\tmax_open_orders 3")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	const cart = `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`
	var ids []string
	for _, key := range []string{"busy-key-00000001", "busy-key-00000002", "busy-key-00000003"} {
		r := postJSON(t, "/card", cart, "Idempotency-Key", key)
		if r.status != http.StatusCreated {
			t.Fatalf("checkout %s: %d %s", key, r.status, r.body)
		}
		ids = append(ids, r.json(t)["order_id"].(string))
	}
	busy := postJSON(t, "/card", cart, "Idempotency-Key", "busy-key-00000004")
	if busy.status != http.StatusServiceUnavailable || busy.errorCode(t) != "shop_busy" || busy.header.Get("Retry-After") != "60" {
		t.Errorf("the fourth checkout: %d, Retry-After %q, %s", busy.status, busy.header.Get("Retry-After"), busy.body)
	}
	form := postForm(t, "/card", mustQuery("item=tea&email=buyer@example.com"))
	if form.status != http.StatusServiceUnavailable || !strings.HasPrefix(form.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(form.body, "try again in a minute") {
		t.Errorf("a form past the cap: %d %s %s", form.status, form.header.Get("Content-Type"), form.body)
	}
	if r := postJSON(t, "/card", cart, "Idempotency-Key", "busy-key-00000001"); r.status != http.StatusCreated || r.json(t)["order_id"] != ids[0] {
		t.Errorf("a replay past the cap: %d %s", r.status, r.body)
	}
	if n := len(providerCalls(t, "pegas", "deposit")); n != 3 {
		t.Errorf("%d deposits, want 3", n)
	}

	if r := adminCall(t, http.MethodPost, "orders/"+ids[0]+"/cancel", ""); r.status != http.StatusOK {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	waitFor(t, "a checkout once an order is cancelled", func() bool {
		return postJSON(t, "/card", cart, "Idempotency-Key", "busy-key-00000004").status == http.StatusCreated
	})
	if r := postJSON(t, "/card", cart); r.status != http.StatusServiceUnavailable {
		t.Fatalf("at the cap again: %d %s", r.status, r.body)
	}
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": ids[1]}, nil)
	waitFor(t, "a checkout once an order is paid", func() bool {
		return postJSON(t, "/card", cart, "Idempotency-Key", "busy-key-00000005").status == http.StatusCreated
	})
}

// TestOrdersPerClientDefault: a real Caddy with the default
// max_orders_per_client takes 50 orders from a public client (here through
// a trusted proxy's X-Forwarded-For) within order_ttl and answers the 51st
// with 429 too_many_orders, without calling the provider; another buyer
// still checks out, and the proxy's own loopback address is not bounded by
// the default. Before: the default bounded nothing, so one address could
// fill max_open_orders for everyone.
func TestOrdersPerClientDefault(t *testing.T) {
	shopWith(t, storageDir(t), "skip_install_trust", "skip_install_trust\n\tservers {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	const cart = `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`
	for i := range 50 {
		if r := postJSON(t, "/card", cart, "X-Forwarded-For", "203.0.113.9"); r.status != http.StatusCreated {
			t.Fatalf("order %d of a public client: %d %s", i+1, r.status, r.body)
		}
	}
	r := postJSON(t, "/card", cart, "X-Forwarded-For", "203.0.113.9")
	if r.status != http.StatusTooManyRequests || r.errorCode(t) != "too_many_orders" || r.header.Get("Retry-After") != "60" {
		t.Errorf("the 51st order of a public client: %d %v %s", r.status, r.header, r.body)
	}
	if r := postJSON(t, "/card", cart, "X-Forwarded-For", "198.51.100.7"); r.status != http.StatusCreated {
		t.Errorf("another buyer: %d %s", r.status, r.body)
	}
	for i := range 55 {
		if r := postJSON(t, "/card", cart); r.status != http.StatusCreated {
			t.Fatalf("order %d from loopback: %d %s", i+1, r.status, r.body)
		}
	}
	if n := len(providerCalls(t, "pegas", "deposit")); n != 106 {
		t.Errorf("%d deposits, want 106", n)
	}
}
