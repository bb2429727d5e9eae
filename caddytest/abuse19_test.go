package caddytest

// Tests, in a real Caddy, of what one client or another site's page could
// make the shop spend (issue 19, items 2 and 10).

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// abuseShop is shopConfig with a receipt route, a buyers' budget of one
// Pegas call per 100 s (so that a test never sees it refilled), and
// allowed_origins on /pay.
func abuseShop(t *testing.T) {
	t.Helper()
	shopWith(t, storageDir(t),
		"poll_interval 100ms", "poll_interval 100ms\n\t\tbuyer_rate_limit card 0.01/s",
		"\troute /card {", "\tkassa_receipt /receipt\n\troute /card {",
		"\t\t\tredirect http://localhost:9180/thanks?order={kassa.order_id}\n",
		"\t\t\tredirect http://localhost:9180/thanks?order={kassa.order_id}\n\t\t\tallowed_origins https://www.example.com\n")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
}

// TestBuyerDocumentsNotAmplified: a payment document is only for a paid
// order (409 order_not_paid, no Pegas call, otherwise); a paid order's
// document is fetched from Pegas once however often it is viewed; and
// past the account's buyers' budget, a document not yet kept is 429
// rate_limited with Retry-After, without a call. Before: every view of
// any order's document was a Pegas call with the shop's token.
func TestBuyerDocumentsNotAmplified(t *testing.T) {
	abuseShop(t)
	// Documents are asked as JPEG: the reconciler's status checks of
	// Pegas deposits call the same operation, but always for a PDF.
	docCalls := func() int {
		n := 0
		for _, c := range providerCalls(t, "pegas", "transaction/receipt/file") {
			if c.Query["format"] == "jpeg" {
				n++
			}
		}
		return n
	}
	pending := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)["order_id"].(string)
	for range 3 {
		if r := send(t, http.MethodGet, shopURL+"/receipt?format=jpeg&order="+pending, "", ""); r.status != http.StatusConflict ||
			r.errorCode(t) != "order_not_paid" {
			t.Fatalf("a pending order's document: %d %s; want 409 order_not_paid", r.status, r.body)
		}
	}
	if n := docCalls(); n != 0 {
		t.Fatalf("documents of a pending order made %d Pegas calls", n)
	}

	first := buyAndPay(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	second := buyAndPay(t, "/card", `{"items":[{"sku":"cup"}],"email":"buyer@example.com"}`)
	for _, id := range []string{first, second} {
		waitFor(t, "order "+id+" paid", func() bool {
			r := adminCall(t, http.MethodGet, "orders/"+id, "")
			return r.status == http.StatusOK && r.json(t)["state"] == "paid"
		})
	}
	var body string
	for i := range 5 {
		r := send(t, http.MethodGet, shopURL+"/receipt?format=jpeg&order="+first, "", "")
		if r.status != http.StatusOK || r.header.Get("Content-Type") != "image/jpeg" || r.body == "" || (body != "" && r.body != body) {
			t.Fatalf("view %d of a paid order's document: %d %v %.80q", i, r.status, r.header, r.body)
		}
		body = r.body
	}
	if r := send(t, http.MethodHead, shopURL+"/receipt?format=jpeg&order="+first, "", ""); r.status != http.StatusOK {
		t.Errorf("HEAD of a kept document: %d", r.status)
	}
	if n := docCalls(); n != 1 {
		t.Errorf("6 views of one document made %d Pegas calls; want 1", n)
	}

	r := send(t, http.MethodGet, shopURL+"/receipt?format=jpeg&order="+second, "", "")
	if r.status != http.StatusTooManyRequests || r.errorCode(t) != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("a document past the buyers' budget: %d %v %s; want 429 rate_limited with Retry-After", r.status, r.header, r.body)
	}
	if n := docCalls(); n != 1 {
		t.Errorf("a refused document made a Pegas call: %d in all", n)
	}
	// A status poll past the budget still answers, from the stored order.
	if v := orderStatus(t, second); v["state"] != "paid" {
		t.Errorf("a poll past the budget: %v", v)
	}
}

// TestCheckoutAllowedOriginsInCaddy: with allowed_origins, a checkout
// posted from another site's page (its Origin, or its Referer) is 403
// cross_site and reaches no provider; the listed site, the shop's own
// pages and a route without the option check out. Before: any page could
// make its visitors' browsers post the shop's checkout.
func TestCheckoutAllowedOriginsInCaddy(t *testing.T) {
	abuseShop(t)
	tea := url.Values{"item": {"tea"}, "email": {"buyer@example.com"}}
	for _, tc := range []struct {
		name   string
		header []string
	}{
		{"foreign origin", []string{"Origin", "https://evil.example"}},
		{"opaque origin", []string{"Origin", "null"}},
		{"foreign referer", []string{"Referer", "https://evil.example/flood.html"}},
	} {
		if r := postForm(t, "/pay", tea, tc.header...); r.status != http.StatusForbidden {
			t.Errorf("form, %s: %d %s; want 403", tc.name, r.status, r.body)
		}
	}
	if r := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`, "Origin", "https://evil.example"); r.status != http.StatusForbidden ||
		r.errorCode(t) != "cross_site" {
		t.Errorf("JSON from a foreign origin: %d %s; want 403 cross_site", r.status, r.body)
	}
	if n := len(providerCalls(t, "crystalpay", "generate")); n != 0 {
		t.Fatalf("refused checkouts made %d invoices", n)
	}
	for _, origin := range []string{"https://www.example.com", shopURL} {
		if r := postForm(t, "/pay", tea, "Origin", origin); r.status != http.StatusSeeOther {
			t.Errorf("form from %s: %d %s; want 303", origin, r.status, r.body)
		}
	}
	if r := postForm(t, "/pay", tea); r.status != http.StatusSeeOther {
		t.Errorf("form naming no origin: %d %s; want 303", r.status, r.body)
	}
	if r := postForm(t, "/card", tea, "Origin", "https://evil.example"); r.status != http.StatusSeeOther || !strings.Contains(r.header.Get("Location"), "/pay/pegas/") {
		t.Errorf("a route without allowed_origins: %d %s; want 303 to the payment page", r.status, r.body)
	}
}
