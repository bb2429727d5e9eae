package caddytest

// Tests of the web-security hardening (issue 19) in a real Caddy: what a
// hostile page or a single buyer could make the shop do.

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestCrossSiteReceiptIssue: kassa_receipt's issue route takes only a JSON
// body from no other site's page, and so does the sandbox's control
// endpoint; nothing reaches Smart Cashier or the sandbox's state
// otherwise. Before: a hostile page's <form enctype="text/plain"> issued
// a real receipt.
func TestCrossSiteReceiptIssue(t *testing.T) {
	receiptsShop(t, "")
	receipt := `{"operation_id":"till-cross-%s","type":"sale","items":[{"name":"Чай","qty":1,"price":"100.00","vat":"vat20"}],"cashless":"100.00"}`
	for _, tc := range []struct {
		name, contentType string
		header            []string
		status            int
		code              string
	}{
		{"text-form", "text/plain", nil, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"url-form", "application/x-www-form-urlencoded", nil, http.StatusUnsupportedMediaType, "unsupported_media_type"},
		{"foreign-origin", "application/json", []string{"Origin", "http://evil.example"}, http.StatusForbidden, "cross_site"},
		{"cross-site-fetch", "application/json", []string{"Sec-Fetch-Site", "cross-site"}, http.StatusForbidden, "cross_site"},
	} {
		r := send(t, http.MethodPost, shopURL+"/till", tc.contentType, strings.Replace(receipt, "%s", tc.name, 1), tc.header...)
		if r.status != tc.status || r.errorCode(t) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}
	if n := operationCount(t); n != 0 {
		t.Fatalf("refused posts made %d receipts", n)
	}
	r := send(t, http.MethodPost, shopURL+"/till", "application/json; charset=utf-8", strings.Replace(receipt, "%s", "same-site", 1),
		"Origin", shopURL, "Sec-Fetch-Site", "same-origin")
	if r.status != http.StatusAccepted {
		t.Fatalf("the till's own page: %d %s", r.status, r.body)
	}

	fault(t, "crystalpay", "generate", "error500", 3)
	for _, tc := range []struct {
		name, contentType string
		header            []string
		status            int
	}{
		{"text-form reset", "text/plain", nil, http.StatusUnsupportedMediaType},
		{"foreign-origin reset", "application/json", []string{"Origin", "http://evil.example"}, http.StatusForbidden},
	} {
		if r := send(t, http.MethodPost, sandboxCtl+"reset", tc.contentType, "", tc.header...); r.status != tc.status {
			t.Errorf("sandbox %s: %d %s, want %d", tc.name, r.status, r.body, tc.status)
		}
	}
	var faults struct{ Faults []any }
	sandboxControl(t, http.MethodGet, "faults", nil, &faults)
	if len(faults.Faults) != 1 {
		t.Errorf("the sandbox was reset by a refused post: %d faults", len(faults.Faults))
	}
}

// TestIdempotencyKeySquatting: a buyer's key must be at least 16
// characters, and a key another request claimed first with another cart
// or contact is 422 idempotency_key_reused, never that order. Before: a
// victim posting a guessed key got the attacker's order to pay.
func TestIdempotencyKeySquatting(t *testing.T) {
	startShop(t)
	if r := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`, "Idempotency-Key", "cart-1"); r.status != http.StatusBadRequest ||
		r.errorCode(t) != "idempotency_key_too_short" {
		t.Errorf("a short key: %d %s", r.status, r.body)
	}
	const key = "guessable-key-0000000042"
	squat := postJSON(t, "/pay", `{"items":[{"sku":"cup","qty":3}],"email":"attacker@example.org"}`, "Idempotency-Key", key)
	if squat.status != http.StatusCreated {
		t.Fatalf("the first claim: %d %s", squat.status, squat.body)
	}
	id, _ := squat.json(t)["order_id"].(string)
	victim := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"victim@example.com"}`, "Idempotency-Key", key)
	if victim.status != http.StatusUnprocessableEntity || victim.errorCode(t) != "idempotency_key_reused" || strings.Contains(victim.body, id) {
		t.Errorf("the victim's checkout: %d %s", victim.status, victim.body)
	}
	if n := len(providerCalls(t, "crystalpay", "generate")); n != 1 {
		t.Errorf("%d invoices, want the first claim's only", n)
	}
}

// TestRedirectStaysOnTheShop: a redirect whose query placeholder a buyer
// fills keeps the template's scheme and host: the provider is told only a
// return URL on the shop, and one that would leave it, or that has a
// control character, is 400 bad_redirect before any provider call.
// Before: ?back=.evil.example/ sent the paid buyer to another host, and a
// CR/LF was a 500.
func TestRedirectStaysOnTheShop(t *testing.T) {
	shopWith(t, storageDir(t), "\troute /card {",
		"\troute /back {\n\t\tkassa_checkout main {\n\t\t\tredirect http://localhost:9180{http.request.uri.query.back}\n\t\t}\n\t}\n\troute /card {")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	cart := `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`
	for _, back := range []string{".evil.example/", "@evil.example/", ":8443/", `\evil.example`, "/\r\nSet-Cookie: a=b"} {
		if r := postJSON(t, "/back?back="+url.QueryEscape(back), cart); r.status != http.StatusBadRequest || r.errorCode(t) != "bad_redirect" {
			t.Errorf("back %q: %d %s", back, r.status, r.body)
		}
	}
	if n := len(providerCalls(t, "", "")); n != 0 {
		t.Fatalf("refused redirects made %d provider calls", n)
	}
	if r := postJSON(t, "/back?back="+url.QueryEscape("/thanks?from=tea"), cart); r.status != http.StatusCreated {
		t.Fatalf("a return page on the shop: %d %s", r.status, r.body)
	}
	calls := providerCalls(t, "crystalpay", "generate")
	if len(calls) != 1 || calls[0].Query["redirect"] != "http://localhost:9180/thanks?from=tea" {
		t.Errorf("redirect sent to CrystalPAY: %+v", calls)
	}
}
