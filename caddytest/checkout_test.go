package caddytest

import (
	"bytes"
	"encoding/json"

	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// shopConfig is a shop with every kind of checkout, the sandbox as its
// providers, and a trusted upstream for the proxied storefront.
const shopConfig = `{
	admin localhost:2999
	skip_install_trust
	kassa {
		payment main crystalpay {
			api v1
			login sandbox
			secret sandbox-secret
			secret2 sandbox-secret2
			endpoint http://localhost:9181/crystalpay/api.php
			timeout 1s
		}
		payment card pegas {
			token sandbox-token
			endpoint http://localhost:9181/pegas/api/v1
			timeout 1s
		}
		payment wallet pegas {
			token sandbox-token
			endpoint http://localhost:9181/pegas/api/v1
			type wallet
			timeout 1s
		}
		product tea 350.00 "Зелёный чай" vat20
		product cup 1200.00 "Чашка"
		product candy 99.99 "Конфета"
		poll_interval 100ms
	}
}

http://localhost:9180 {
	route /pay {
		kassa_checkout main {
			redirect http://localhost:9180/thanks?order={kassa.order_id}
		}
	}
	route /card {
		kassa_checkout card
	}
	route /wallet {
		kassa_checkout wallet
	}
	route /donate {
		kassa_checkout card {
			amount_range 10 5000
			description "Пожертвование"
		}
	}
	route /small {
		kassa_checkout main {
			max_body 1KiB
		}
	}
	route /proxied {
		reverse_proxy localhost:9182 {
			@pay header X-Kassa-Amount *
			handle_response @pay {
				kassa_checkout card {
					amount {rp.header.X-Kassa-Amount}
					order_id {rp.header.X-Kassa-Order}
					items {rp.header.X-Kassa-Items}
					email {rp.header.X-Kassa-Email}
				}
			}
		}
	}
}

http://localhost:9181 {
	kassa_sandbox {
		name checkout
		receipt_delay 0s
	}
}

http://localhost:9182 {
	header X-Kassa-Amount 500.00
	header X-Kassa-Order shop-42
	header X-Kassa-Email buyer@example.com
	header X-Kassa-Items ` + "`" + `[{"name":"Заказ 42","qty":2,"price":"250.00","vat":"vat20"}]` + "`" + `
	respond "upstream"
}

http://localhost:9183 {
	kassa_checkout main
	handle_errors {
		respond "handled {err.status_code}" {err.status_code}
	}
}`

const shopURL = "http://localhost:9180"
const sandboxCtl = "http://localhost:9181/control/"

// noRedirect is a client that shows redirects instead of following them.
var noRedirect = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// startShop loads shopConfig with orders in a fresh storage, and clears
// the sandbox.
func startShop(t *testing.T) {
	t.Helper()
	config := strings.Replace(shopConfig, "poll_interval 100ms", "poll_interval 100ms\n\t\tstorage file_system "+storageDir(t), 1)
	caddytest.NewTester(t).InitServer(config, "caddyfile")
	forgetConnections()
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
}

// reply is a response with its body read.
type reply struct {
	status int
	header http.Header
	body   string
}

func (r reply) json(t *testing.T) map[string]any {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(r.body), &v); err != nil {
		t.Fatalf("not JSON (%d): %s", r.status, r.body)
	}
	return v
}

// errorCode is the code of a JSON error reply.
func (r reply) errorCode(t *testing.T) string {
	t.Helper()
	e, _ := r.json(t)["error"].(map[string]any)
	code, _ := e["code"].(string)
	return code
}

func send(t *testing.T, method, target, contentType, body string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, string(data)}
}

func postForm(t *testing.T, path string, form url.Values, header ...string) reply {
	t.Helper()
	return send(t, http.MethodPost, shopURL+path, "application/x-www-form-urlencoded", form.Encode(), header...)
}

func postJSON(t *testing.T, path, body string, header ...string) reply {
	t.Helper()
	return send(t, http.MethodPost, shopURL+path, "application/json", body, append(header, "Accept", "application/json")...)
}

func orderStatus(t *testing.T, id string) map[string]any {
	t.Helper()
	r := send(t, http.MethodGet, shopURL+"/pay?order="+id, "", "")
	if r.status != http.StatusOK {
		t.Fatalf("status of %s: %d %s", id, r.status, r.body)
	}
	return r.json(t)
}

// sandboxControl calls the sandbox's control endpoint.
func sandboxControl(t *testing.T, method, path string, body any, out any) {
	t.Helper()
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, sandboxCtl+path, in)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("sandbox %s: %d %s", path, resp.StatusCode, data)
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatal(err)
		}
	}
}

// journaled is one provider call the sandbox received.
type journaled struct {
	Op     string            `json:"op"`
	Query  map[string]string `json:"query"`
	Status int               `json:"status"`
}

// providerCalls lists the calls the sandbox received for api and op.
func providerCalls(t *testing.T, api, op string) []journaled {
	t.Helper()
	var j struct {
		Calls []journaled `json:"calls"`
	}
	sandboxControl(t, http.MethodGet, "calls?api="+api+"&op="+url.QueryEscape(op), nil, &j)
	return j.Calls
}

func fault(t *testing.T, api, op, mode string, count int) {
	t.Helper()
	sandboxControl(t, http.MethodPost, "faults", map[string]any{"api": api, "op": op, "mode": mode, "count": count}, nil)
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestCheckoutForm: a plain HTML form buys from the catalog and is sent to
// the payment page; a price field in the form changes nothing.
func TestCheckoutForm(t *testing.T) {
	startShop(t)
	r := postForm(t, "/pay", url.Values{"item": {"tea:2", "cup"}, "email": {"buyer@example.com"},
		"price": {"1"}, "amount": {"1"}})
	if r.status != http.StatusSeeOther || !strings.HasPrefix(r.header.Get("Location"), "http://localhost:9181/pay/crystalpay/1_") {
		t.Fatalf("form checkout: %d %s %s", r.status, r.header.Get("Location"), r.body)
	}
	calls := providerCalls(t, "crystalpay", "generate")
	if len(calls) != 1 || calls[0].Query["amount"] != "1900" {
		t.Fatalf("generate calls: %+v, want one for 2 × 350 + 1200 = 1900", calls)
	}
	redirect, _ := url.Parse(calls[0].Query["redirect"])
	id := redirect.Query().Get("order")
	if !strings.HasPrefix(calls[0].Query["redirect"], "http://localhost:9180/thanks?order=") || len(id) != 22 {
		t.Fatalf("redirect sent to CrystalPAY: %q", calls[0].Query["redirect"])
	}
	st := orderStatus(t, id)
	if st["state"] != "pending" || st["amount"] != "1900.00" || st["email"] != "b***r@example.com" {
		t.Errorf("status = %v", st)
	}
	if items, _ := st["items"].([]any); len(items) != 2 {
		t.Errorf("items = %v", st["items"])
	}
}

// TestCheckoutJSON: a JSON client gets 201 and the order; prices in the
// request are ignored.
func TestCheckoutJSON(t *testing.T) {
	startShop(t)
	r := postJSON(t, "/card", `{"items":[{"sku":"candy","qty":3,"price":"0.01"}],"phone":"8 (999) 123-45-67","amount":"1"}`)
	if r.status != http.StatusCreated {
		t.Fatalf("%d %s", r.status, r.body)
	}
	v := r.json(t)
	if v["state"] != "pending" || v["amount"] != "299.97" || !strings.HasPrefix(v["payment_url"].(string), "http://localhost:9181/pay/pegas/") || v["pay_to"] != nil {
		t.Errorf("created = %v", v)
	}
	deposits := providerCalls(t, "pegas", "deposit")
	if len(deposits) != 1 || deposits[0].Query["amount"] != "299.97" || deposits[0].Query["order_id"] != v["order_id"] {
		t.Errorf("deposits = %+v", deposits)
	}
	if st := orderStatus(t, v["order_id"].(string)); st["phone"] != "+7*******67" {
		t.Errorf("phone shown as %v", st["phone"])
	}
}

// TestCheckoutBadInput: every bad request is a 4xx with a stable code, and
// no provider hears of it.
func TestCheckoutBadInput(t *testing.T) {
	startShop(t)
	big := strings.Repeat("item=tea&", 200)
	for _, tc := range []struct {
		name   string
		r      func() reply
		status int
		code   string
	}{
		{"unknown sku (form)", func() reply { return postForm(t, "/pay", url.Values{"item": {"nope"}}, "Accept", "application/json") }, 400, "unknown_sku"},
		{"unknown sku (json)", func() reply { return postJSON(t, "/pay", `{"items":[{"sku":"nope"}],"email":"buyer@example.com"}`) }, 400, "unknown_sku"},
		{"zero quantity", func() reply {
			return postJSON(t, "/pay", `{"items":[{"sku":"tea","qty":0}],"email":"buyer@example.com"}`)
		}, 400, "bad_quantity"},
		{"negative quantity", func() reply { return postForm(t, "/pay", url.Values{"item": {"tea:-1"}}, "Accept", "application/json") }, 400, "bad_quantity"},
		{"huge quantity", func() reply {
			return postJSON(t, "/pay", `{"items":[{"sku":"tea","qty":99999999999}],"email":"buyer@example.com"}`)
		}, 400, "bad_quantity"},
		{"fractional quantity", func() reply {
			return postJSON(t, "/pay", `{"items":[{"sku":"tea","qty":1.5}],"email":"buyer@example.com"}`)
		}, 400, "bad_quantity"},
		{"string quantity", func() reply {
			return postJSON(t, "/pay", `{"items":[{"sku":"tea","qty":"2"}],"email":"buyer@example.com"}`)
		}, 400, "bad_quantity"},
		{"malformed json", func() reply { return postJSON(t, "/pay", `{"items":[`) }, 400, "bad_request"},
		{"empty cart", func() reply { return postJSON(t, "/pay", `{"items":[],"email":"buyer@example.com"}`) }, 400, "empty_cart"},
		{"bad email", func() reply { return postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"x\r\nBcc: y"}`) }, 400, "bad_email"},
		{"oversized body", func() reply { return postForm(t, "/small", mustQuery(big), "Accept", "application/json") }, 413, "body_too_large"},
		{"wrong method", func() reply { return send(t, http.MethodPut, shopURL+"/pay", "", "") }, 405, "method_not_allowed"},
		{"media type", func() reply {
			return send(t, http.MethodPost, shopURL+"/pay", "text/xml", "<a/>", "Accept", "application/json")
		}, 415, "unsupported_media_type"},
		{"kopecks to CrystalPAY", func() reply { return postJSON(t, "/pay", `{"items":[{"sku":"candy"}],"email":"buyer@example.com"}`) }, 400, "amount_not_accepted"},
		{"amount below range", func() reply { return postJSON(t, "/donate", `{"amount":"9.99","email":"buyer@example.com"}`) }, 400, "amount_out_of_range"},
		{"amount above range", func() reply { return postJSON(t, "/donate", `{"amount":"5000.01","email":"buyer@example.com"}`) }, 400, "amount_out_of_range"},
		{"exponent amount", func() reply { return postJSON(t, "/donate", `{"amount":"1e3","email":"buyer@example.com"}`) }, 400, "bad_amount"},
		{"signed amount", func() reply { return postJSON(t, "/donate", `{"amount":"-50","email":"buyer@example.com"}`) }, 400, "bad_amount"},
		{"spaced amount", func() reply { return postJSON(t, "/donate", `{"amount":" 50","email":"buyer@example.com"}`) }, 400, "bad_amount"},
		{"unknown order", func() reply { return send(t, http.MethodGet, shopURL+"/pay?order=AAAAAAAAAAAAAAAAAAAAAA", "", "") }, 404, "unknown_order"},
		{"malformed order", func() reply { return send(t, http.MethodGet, shopURL+"/pay?order=../../etc/passwd", "", "") }, 400, "bad_order_id"},
		{"bad idempotency key", func() reply {
			return postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`, "Idempotency-Key", strings.Repeat("k", 256))
		}, 400, "bad_idempotency_key"},
	} {
		r := tc.r()
		if r.status != tc.status || r.errorCode(t) != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.code)
		}
	}
	if n := len(providerCalls(t, "", "")); n != 0 {
		t.Errorf("bad input made %d provider calls, want 0", n)
	}
	if r := send(t, http.MethodPut, shopURL+"/pay", "", ""); r.header.Get("Allow") == "" {
		t.Error("405 without Allow")
	}
	if r := postForm(t, "/pay", url.Values{"item": {"<script>"}}); r.status != 400 || strings.Contains(r.body, "<script>") ||
		!strings.Contains(r.header.Get("Content-Type"), "text/html") {
		t.Errorf("form error page: %d %s", r.status, r.body)
	}
}

func mustQuery(s string) url.Values {
	v, _ := url.ParseQuery(s)
	return v
}

// TestCheckoutIdempotencyKey: the same key twice is one order and one
// invoice.
func TestCheckoutIdempotencyKey(t *testing.T) {
	startShop(t)
	first := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`, "Idempotency-Key", "cart-7f3a-00000001")
	second := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`, "Idempotency-Key", "cart-7f3a-00000001")
	if first.status != 201 || second.status != 201 || first.json(t)["order_id"] != second.json(t)["order_id"] {
		t.Fatalf("first %d %s, second %d %s", first.status, first.body, second.status, second.body)
	}
	if second.header.Get("Idempotent-Replayed") != "true" {
		t.Error("the replay is not marked")
	}
	// Concurrent double clicks.
	var wg sync.WaitGroup
	ids := make([]any, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = postJSON(t, "/pay", `{"items":[{"sku":"cup"}],"email":"buyer@example.com"}`, "Idempotency-Key", "cart-double-click").json(t)["order_id"]
		}()
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent checkouts with one key made several orders: %v", ids)
		}
	}
	if n := len(providerCalls(t, "crystalpay", "generate")); n != 2 {
		t.Errorf("%d invoices for two keys, want 2", n)
	}
}

// TestCheckoutProxied: a trusted upstream names the amount, its order id
// and the receipt's items; posting the same upstream order twice makes one
// order.
func TestCheckoutProxied(t *testing.T) {
	startShop(t)
	first := postJSON(t, "/proxied", `{"anything":"the upstream reads"}`)
	second := postJSON(t, "/proxied", `{}`)
	if first.status != 201 || second.status != 201 {
		t.Fatalf("%d %s / %d %s", first.status, first.body, second.status, second.body)
	}
	v := first.json(t)
	if v["amount"] != "500.00" || second.json(t)["order_id"] != v["order_id"] {
		t.Errorf("first %v, second %v", v, second.json(t))
	}
	st := orderStatus(t, v["order_id"].(string))
	items, _ := st["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["name"] != "Заказ 42" {
		t.Errorf("items = %v", st["items"])
	}
	if n := len(providerCalls(t, "pegas", "deposit")); n != 1 {
		t.Errorf("%d deposits, want 1", n)
	}
}

// TestCheckoutWalletType: a Pegas wallet type has no payment page: a form
// buyer is shown where to pay, a JSON client gets pay_to.
func TestCheckoutWalletType(t *testing.T) {
	startShop(t)
	r := postForm(t, "/wallet", url.Values{"item": {"tea"}})
	if r.status != 200 || !strings.Contains(r.body, "350.00") || !strings.Contains(r.body, "кошел") {
		t.Errorf("pay-to page: %d %s", r.status, r.body)
	}
	v := postJSON(t, "/wallet", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)
	payTo, _ := v["pay_to"].(map[string]any)
	if payTo["wallet"] == nil || v["payment_url"] != nil {
		t.Errorf("created = %v", v)
	}
}

// TestCheckoutProviderFailures: an unreachable provider is a 503 with
// Retry-After, a refusing one a 502; neither says more than it should.
func TestCheckoutProviderFailures(t *testing.T) {
	startShop(t)
	fault(t, "crystalpay", "generate", "error500", 1)
	r := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	if r.status != 503 || r.header.Get("Retry-After") == "" || r.errorCode(t) != "provider_unavailable" {
		t.Errorf("unavailable: %d %v %s", r.status, r.header, r.body)
	}
	fault(t, "crystalpay", "generate", "auth", 1)
	r = postForm(t, "/pay", url.Values{"item": {"tea"}})
	if r.status != 502 || strings.Contains(r.body, "sandbox-secret") || strings.Contains(r.body, "api.php") {
		t.Errorf("refused: %d %s", r.status, r.body)
	}
	fault(t, "pegas", "deposit", "timeout", 1)
	r = postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	if r.status != 503 {
		t.Errorf("timeout: %d %s", r.status, r.body)
	}
	// The shop works again once the provider does.
	if r := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`); r.status != 201 {
		t.Errorf("after the faults: %d %s", r.status, r.body)
	}
}

// TestCheckoutErrorRoutes: with handle_errors, the site renders the error.
func TestCheckoutErrorRoutes(t *testing.T) {
	startShop(t)
	r := send(t, http.MethodPost, "http://localhost:9183/", "application/x-www-form-urlencoded", "item=nope")
	if r.status != 400 || r.body != "handled 400" {
		t.Errorf("%d %q", r.status, r.body)
	}
}

// TestCheckoutPaidAndCoalesced: the buyer pays; however many poll, the
// provider is asked at most once a second; the reconciler stores the order
// paid.
func TestCheckoutPaidAndCoalesced(t *testing.T) {
	startShop(t)
	v := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)
	id := v["order_id"].(string)
	payment := strings.TrimPrefix(v["payment_url"].(string), "http://localhost:9181/pay/crystalpay/")
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "crystalpay", "id": payment}, nil)

	start := time.Now()
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if st := orderStatus(t, id); st["state"] != "paid" {
				t.Errorf("state %v", st["state"])
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	checkpays := func() (n int) {
		for _, c := range providerCalls(t, "crystalpay", "checkpay") {
			if c.Query["i"] == payment {
				n++
			}
		}
		return n
	}
	checks := checkpays()
	if limit := int(elapsed/time.Second) + 2; checks > limit {
		t.Errorf("50 polls in %v made %d checkpay calls, want at most %d", elapsed, checks, limit)
	}
	waitFor(t, "the reconciler to store the payment", func() bool {
		st := orderStatus(t, id)
		return st["state"] == "paid" && st["paid_at"] != nil
	})
	// Closed orders are not polled again.
	before := checkpays()
	time.Sleep(300 * time.Millisecond)
	orderStatus(t, id)
	if after := checkpays(); after != before {
		t.Errorf("a paid order was checked again: %d → %d", before, after)
	}
}
