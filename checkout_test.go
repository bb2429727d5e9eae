package kassa

// Tests of kassa_checkout, the handler of checkout.go, in-process: its
// Caddyfile, and its answers through ServeHTTP.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
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
		"kassa_checkout {\n\tallowed_origins https://shop.example.com http://localhost:8080\n}",
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
			back.Redirect != h.Redirect || back.MaxBody != h.MaxBody || !slices.Equal(back.AllowedOrigins, h.AllowedOrigins) || (back.AmountRange == nil) != (h.AmountRange == nil) {
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
		t.Run(tc.field, func(t *testing.T) {
			if got := proxiedValue(repl, tc.field); got != tc.want {
				t.Errorf("proxiedValue(%q) = %q, want %q", tc.field, got, tc.want)
			}
		})
	}
}

// TestCheckoutAnswers: kassa_checkout's answers to a buyer, through
// ServeHTTP: a good cart makes an order (201 for JSON, 303 to the payment
// page for a form), a bad one is a 400 with its error code, and GET
// ?order= answers the order's status.
func TestCheckoutAnswers(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
	order := s.created("key-status-00000001")
	const jsonType, formType = "application/json", "application/x-www-form-urlencoded"
	for _, tc := range []struct {
		name, method, target, contentType, body string
		status                                  int
		want                                    string // in the answer's body
		location                                string // its Location's prefix
	}{
		{"json cart", http.MethodPost, "/pay", jsonType, `{"items":[{"sku":"tea-green","qty":2}],"email":"buyer@example.com"}`,
			http.StatusCreated, `"payment_url":"https://pay.example/`, ""},
		{"form cart", http.MethodPost, "/pay", formType, "item=cookie:2&email=buyer@example.com",
			http.StatusSeeOther, "", "https://pay.example/"},
		{"unknown sku", http.MethodPost, "/pay", jsonType, `{"items":[{"sku":"nope"}],"email":"buyer@example.com"}`,
			http.StatusBadRequest, `"code":"unknown_sku"`, ""},
		{"no items", http.MethodPost, "/pay", jsonType, `{"email":"buyer@example.com"}`,
			http.StatusBadRequest, `"code":"empty_cart"`, ""},
		{"truncated json", http.MethodPost, "/pay", jsonType, `{"items":`,
			http.StatusBadRequest, `"code":"bad_request"`, ""},
		{"no contact", http.MethodPost, "/pay", jsonType, `{"items":[{"sku":"tea-green"}]}`,
			http.StatusBadRequest, `"code":"contact_required"`, ""},
		{"xml", http.MethodPost, "/pay", "application/xml", "<cart/>",
			http.StatusUnsupportedMediaType, `"code":"unsupported_media_type"`, ""},
		{"put", http.MethodPut, "/pay", jsonType, "",
			http.StatusMethodNotAllowed, `"code":"method_not_allowed"`, ""},
		{"status", http.MethodGet, "/pay?order=" + order.ID, "", "",
			http.StatusOK, `"state":"pending"`, ""},
		{"status of an unknown order", http.MethodGet, "/pay?order=AAAAAAAAAAAAAAAAAAAAAA", "", "",
			http.StatusNotFound, `"code":"unknown_order"`, ""},
		{"status of a bad id", http.MethodGet, "/pay?order=../x", "", "",
			http.StatusBadRequest, `"code":"bad_order_id"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			if tc.contentType != "" {
				req.Header.Set("Content-Type", tc.contentType)
			}
			if tc.contentType != formType {
				req.Header.Set("Accept", "application/json") // a form is a browser's
			}
			w := s.serve(req)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) ||
				!strings.HasPrefix(w.Header().Get("Location"), tc.location) {
				t.Errorf("%d %q %s; want %d, Location %q…, a body with %s",
					w.Code, w.Header().Get("Location"), w.Body, tc.status, tc.location, tc.want)
			}
		})
	}
}

// TestReplayOfAClosedOrder: a replayed checkout never sends the buyer to
// the payment page of an order that closed: paid answers as paid (JSON
// 200, a form to its redirect), closed unpaid 409 order_closed. Before: 201
// and 303 to the old payment page.
func TestReplayOfAClosedOrder(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	expired := s.created("key-expired-0000001")
	paid := s.created("key-paid-000000001")
	p.pay(paid.Payment.ID)
	s.pass()
	s.clock.Add(31 * time.Minute)
	s.pass()
	if s.load(expired.ID).State != OrderExpired || s.load(paid.ID).State != OrderPaid {
		t.Fatal("setup: want one order expired and one paid")
	}
	for _, tc := range []struct {
		name, key string
		form      bool
		status    int
		location  string
		code      string
	}{
		{"expired JSON", "key-expired-0000001", false, http.StatusConflict, "", "order_closed"},
		{"expired form", "key-expired-0000001", true, http.StatusConflict, "", ""},
		{"paid JSON", "key-paid-000000001", false, http.StatusOK, "", ""},
		{"paid form", "key-paid-000000001", true, http.StatusSeeOther, "https://shop.example.com/thanks?order=" + paid.ID, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := s.post(tc.key, tc.form)
			if w.Code != tc.status || w.Header().Get("Location") != tc.location {
				t.Fatalf("replay: %d %q %s; want %d %q", w.Code, w.Header().Get("Location"), w.Body, tc.status, tc.location)
			}
			if strings.Contains(w.Body.String(), "pay.example") {
				t.Errorf("the answer carries the payment page: %s", w.Body)
			}
			if tc.code != "" && !strings.Contains(w.Body.String(), `"code":"`+tc.code+`"`) {
				t.Errorf("answer %s, want code %s", w.Body, tc.code)
			}
			if tc.status == http.StatusOK && !strings.Contains(w.Body.String(), `"state":"paid"`) {
				t.Errorf("answer %s, want the paid order", w.Body)
			}
		})
	}
	// The buyer's status page shows no payment page for a closed order.
	req := httptest.NewRequest(http.MethodGet, "/pay?order="+expired.ID, nil)
	if w := s.serve(req); strings.Contains(w.Body.String(), "payment_url") {
		t.Errorf("status of an expired order: %s", w.Body)
	}
	if n := p.count(); n != 2 {
		t.Errorf("%d invoices, want 2", n)
	}
}

// TestIdempotencyKeyForAnotherCart: the same Idempotency-Key with another
// cart or email is refused (422), never answered with the first buyer's
// order. Before: the second buyer got the first one's order and payment
// page.
func TestIdempotencyKeyForAnotherCart(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
	first := s.created("cart-1001-abcdefgh")
	req := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(`{"items":[{"sku":"tea-green","qty":3}],"email":"other@example.org"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", "cart-1001-abcdefgh")
	w := s.serve(req)
	if w.Code != http.StatusUnprocessableEntity || !strings.Contains(w.Body.String(), "idempotency_key_reused") ||
		strings.Contains(w.Body.String(), first.ID) {
		t.Fatalf("another cart under the same key: %d %s", w.Code, w.Body)
	}
	if w := s.post("cart-1001-abcdefgh", false); w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), first.ID) {
		t.Errorf("the same cart again: %d %s", w.Code, w.Body)
	}
}

// TestShopBusy: past max_open_orders a new checkout is refused with 503
// shop_busy and Retry-After (JSON, or a page for a form) before anything
// is stored or sent to the provider, and counted; a replay of an order
// made before is still answered; once orders close, checkouts are taken
// again. The log has one warning, not a line per refusal.
func TestShopBusy(t *testing.T) {
	p := newLifeProvider("crystalpay")
	storage := newBenchStorage()
	s := newLifeShop(t, p, storage, nil)
	core, logs := observer.New(zap.WarnLevel)
	s.app.logger, s.checkout.logger = zap.New(core), zap.New(core)
	s.app.openLimit = newOpenLimit(s.app, 2)
	first := s.created("busy-key-00000001")
	s.created("busy-key-00000002")
	s.clock.Add(time.Second) // the next checkout lists the open index
	stored := len(storage.values)
	refused := delta(func() float64 { return counted(metrics.checkoutsRefused, refusedShopBusy) }, func() {
		for _, tc := range []struct {
			name, key string
			form      bool
		}{
			{"JSON", "busy-key-00000003", false},
			{"JSON without a key", "", false},
			{"form", "", true},
		} {
			w := s.post(tc.key, tc.form)
			if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") != "60" {
				t.Errorf("%s: %d, Retry-After %q; want 503, 60", tc.name, w.Code, w.Header().Get("Retry-After"))
			}
			switch body, typ := w.Body.String(), w.Header().Get("Content-Type"); {
			case tc.form && (!strings.HasPrefix(typ, "text/html") || !strings.Contains(body, "please try again in a minute")):
				t.Errorf("%s: %s %s; want a page", tc.name, typ, body)
			case !tc.form && !strings.Contains(body, `"code":"shop_busy"`):
				t.Errorf("%s: %s; want shop_busy", tc.name, body)
			}
		}
	})
	if refused != 3 {
		t.Errorf("kassa_checkouts_refused_total{reason=shop_busy} rose by %v, want 3", refused)
	}
	if n := len(storage.values); n != stored || p.count() != 2 {
		t.Errorf("refusals stored %d keys and made %d invoices; want none", n-stored, p.count()-2)
	}
	if entries := logs.TakeAll(); len(entries) != 1 || entries[0].Level != zap.WarnLevel {
		t.Errorf("logged %v; want one warning", entries)
	}
	if w := s.post("busy-key-00000001", false); w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), first.ID) {
		t.Errorf("a replay past the cap: %d %s; want its order", w.Code, w.Body)
	}
	settle(s.app.openLimit) // the listing the refusals began, before the orders expire
	s.clock.Add(31 * time.Minute)
	s.pass()
	if o := s.load(first.ID); o.State != OrderExpired {
		t.Fatalf("setup: the first order is %s, want expired", o.State)
	}
	if w := s.post("busy-key-00000004", false); w.Code != http.StatusCreated {
		t.Errorf("a checkout once the open orders expired: %d %s", w.Code, w.Body)
	}
}

// TestOneClientCannotFillTheShop: with the default max_orders_per_client, a
// public address that floods checkouts is refused with 429 too_many_orders
// after 50 orders, long before the shop reaches max_open_orders, so other
// buyers still check out; a private address (a load balancer without
// trusted_proxies, a storefront's backend) is not bounded by the default.
// Before: the flood filled max_open_orders and every buyer got 503.
func TestOneClientCannotFillTheShop(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
	s.app.openLimit = newOpenLimit(s.app, 120)
	s.app.perClient = newClientLimit(s.app.MaxOrdersPerClient, time.Duration(s.app.OrderTTL))
	from := func(addr string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(`{"items":[{"sku":"tea-green"}],"email":"buyer@example.com"}`))
		req.Header.Set("Content-Type", "application/json")
		req.RemoteAddr = net.JoinHostPort(addr, "40000")
		return s.serve(req)
	}
	created := 0
	refused := delta(func() float64 { return counted(metrics.checkoutsRefused, refusedTooMany) }, func() {
		for range 100 {
			switch w := from("203.0.113.9"); {
			case w.Code == http.StatusCreated:
				created++
			case w.Code != http.StatusTooManyRequests || !strings.Contains(w.Body.String(), `"code":"too_many_orders"`) ||
				w.Header().Get("Retry-After") == "":
				t.Fatalf("a flood's checkout: %d %v %s; want 201 or 429 too_many_orders", w.Code, w.Header(), w.Body)
			}
		}
	})
	if created != 50 || refused != 50 {
		t.Errorf("a public client made %d orders and was refused %v times; want 50 and 50", created, refused)
	}
	if w := from("198.51.100.7"); w.Code != http.StatusCreated {
		t.Errorf("another buyer during the flood: %d %s", w.Code, w.Body)
	}
	for i := range 60 {
		if w := from("10.0.0.5"); w.Code != http.StatusCreated {
			t.Fatalf("order %d from a private address: %d %s", i+1, w.Code, w.Body)
		}
	}
}

// serveWithPlaceholders is s.serve with the request's http.* placeholders,
// as Caddy's server gives them to a handler.
func serveWithPlaceholders(t *testing.T, s *lifeShop, req *http.Request) *httptest.ResponseRecorder {
	t.Helper()
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddyhttp.NewTestReplacer(req)))
	w := httptest.NewRecorder()
	if err := s.checkout.ServeHTTP(w, req, nil); err != nil {
		t.Fatalf("ServeHTTP: %v", err)
	}
	return w
}

// keyedPost is a JSON checkout of one green tea to target under key.
func keyedPost(target, key string) *http.Request {
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(`{"items":[{"sku":"tea-green"}],"email":"buyer@example.com"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	return req
}

// TestIdempotencyKeyLength: an Idempotency-Key is 16 to 255 printable
// ASCII characters; a shorter one, which another buyer could guess, is 400
// idempotency_key_too_short and makes no order. Before: one character was
// a key.
func TestIdempotencyKeyLength(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	for _, tc := range []struct {
		key    string
		status int
		code   string
	}{
		{"k", http.StatusBadRequest, "idempotency_key_too_short"},
		{"cart-7f3a", http.StatusBadRequest, "idempotency_key_too_short"},
		{"0123456789abcde", http.StatusBadRequest, "idempotency_key_too_short"},
		{"0123456789abcdef", http.StatusCreated, ""},
		{"cart 7f3a-Zz~!@#$%", http.StatusCreated, ""},
		{strings.Repeat("k", 255), http.StatusCreated, ""},
		{strings.Repeat("k", 256), http.StatusBadRequest, "bad_idempotency_key"},
		{"0123456789abcdef\x7f", http.StatusBadRequest, "bad_idempotency_key"},
		{"0123456789abcdefЖ", http.StatusBadRequest, "bad_idempotency_key"},
	} {
		before := p.count()
		w := s.serve(keyedPost("/pay", tc.key))
		if w.Code != tc.status || (tc.code != "" && !strings.Contains(w.Body.String(), `"code":"`+tc.code+`"`)) {
			t.Errorf("key %q: %d %s; want %d %s", tc.key, w.Code, w.Body, tc.status, tc.code)
		}
		if made := p.count() - before; made != map[bool]int{true: 1}[tc.status == http.StatusCreated] {
			t.Errorf("key %q: %d invoices made", tc.key, made)
		}
	}
}

// TestIdempotencyKeyForAnotherReturn: the return URL a buyer's placeholders
// fill is part of what a key promises: the same cart under the same key
// but with another return page is 422 idempotency_key_reused. Before: it
// got the first order, with the first request's return page.
func TestIdempotencyKeyForAnotherReturn(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
	s.checkout.Redirect = "https://shop.example.com/thanks?order={kassa.order_id}&back={http.request.uri.query.back}"
	const key = "return-bound-0000001"
	first := serveWithPlaceholders(t, s, keyedPost("/pay?back=tea", key))
	if first.Code != http.StatusCreated {
		t.Fatalf("first checkout: %d %s", first.Code, first.Body)
	}
	var v struct {
		OrderID string `json:"order_id"`
	}
	_ = json.Unmarshal(first.Body.Bytes(), &v)
	if w := serveWithPlaceholders(t, s, keyedPost("/pay?back=cups", key)); w.Code != http.StatusUnprocessableEntity ||
		!strings.Contains(w.Body.String(), `"code":"idempotency_key_reused"`) || strings.Contains(w.Body.String(), v.OrderID) {
		t.Errorf("another return page under the key: %d %s", w.Code, w.Body)
	}
	if w := serveWithPlaceholders(t, s, keyedPost("/pay?back=tea", key)); w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), v.OrderID) {
		t.Errorf("the same request again: %d %s", w.Code, w.Body)
	}
}

// TestReplayOfAnOrderStoredBefore: an order stored before fingerprints
// (none) is answered to a repeat of its key, as it was when it was made;
// and without a redirect the fingerprint is the earlier releases' hash,
// computed here over its canonical lines, so their orders replay too.
func TestReplayOfAnOrderStoredBefore(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
	o := s.created("stored-before-fingerprints")
	if _, err := s.app.update(context.Background(), o.ID, func(o *Order) bool { o.Fingerprint = ""; return true }); err != nil {
		t.Fatal(err)
	}
	if w := s.post("stored-before-fingerprints", false); w.Code != http.StatusCreated || !strings.Contains(w.Body.String(), o.ID) ||
		w.Header().Get("Idempotent-Replayed") != "true" {
		t.Errorf("no fingerprint: %d %s", w.Code, w.Body)
	}

	s.checkout.Redirect = ""
	o = s.created("stored-by-an-earlier-release")
	earlier := sha256.Sum256([]byte(`["main","350.00","","","buyer@example.com",""]` + "\n" +
		`["tea-green","Green tea 100 g",1,"350.00","vat20"]` + "\n"))
	if got := s.load(o.ID).Fingerprint; got != hex.EncodeToString(earlier[:]) {
		t.Errorf("fingerprint %s, want the earlier form %x", got, earlier)
	}
}

// TestRedirectKeepsItsHost: a redirect whose placeholders a buyer fills
// keeps the template's scheme, host and port, and has no userinfo and no
// control character; anything else is 400 bad_redirect before an order is
// made, with nothing logged as an error. Before: ?back=.evil.example/ sent
// the paid buyer to another site, and a CR/LF was a 500 with an error
// line.
func TestRedirectKeepsItsHost(t *testing.T) {
	p := newLifeProvider("crystalpay")
	s := newLifeShop(t, p, nil, nil)
	core, logs := observer.New(zap.WarnLevel)
	s.checkout.logger = zap.New(core)
	s.checkout.Redirect = "https://shop.example.com{http.request.uri.query.back}"
	for i, tc := range []struct {
		back string // the query's value, before encoding
		want string // the order's return URL; "" for a 400
	}{
		{"/thanks", "https://shop.example.com/thanks"},
		{"", "https://shop.example.com"},
		{"//evil.example/x", "https://shop.example.com//evil.example/x"},
		{"/a?next=https://evil.example", "https://shop.example.com/a?next=https://evil.example"},
		{"/#@evil.example", "https://shop.example.com/#@evil.example"},
		{".evil.example/", ""},
		{"@evil.example/", ""},
		{":x@evil.example/", ""},
		{"@", ""},
		{":8443/", ""},
		{".", ""},
		{`\evil.example`, ""},
		{"%2F@evil.example", ""},
		{"/\r\nSet-Cookie: a=b", ""},
		{"/\x00", ""},
		{"/\t", ""},
	} {
		before := p.count()
		w := serveWithPlaceholders(t, s, keyedPost("/pay?back="+url.QueryEscape(tc.back), fmt.Sprintf("redirect-case-%04d", i)))
		if tc.want == "" {
			if w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), `"code":"bad_redirect"`) || p.count() != before {
				t.Errorf("back %q: %d %s, %d invoices; want 400 bad_redirect and none", tc.back, w.Code, w.Body, p.count()-before)
			}
			continue
		}
		var v struct {
			OrderID string `json:"order_id"`
		}
		if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &v) != nil {
			t.Errorf("back %q: %d %s", tc.back, w.Code, w.Body)
			continue
		}
		if got := s.load(v.OrderID).ReturnURL; got != tc.want {
			t.Errorf("back %q: return URL %q, want %q", tc.back, got, tc.want)
		}
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("%d warnings or errors logged: %v", n, logs.All())
	}
	if ids := mustOpenIDs(t, s); len(ids) != 5 {
		t.Errorf("%d open orders, want the 5 accepted", len(ids))
	}
}

// TestRedirectTemplateFixesItsHost: a redirect whose scheme, host or port
// a placeholder could fill, or that has userinfo, is refused at start.
func TestRedirectTemplateFixesItsHost(t *testing.T) {
	s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
	for _, tc := range []struct {
		redirect string
		ok       bool
	}{
		{"https://shop.example.com/thanks?order={kassa.order_id}", true},
		{"https://shop.example.com:8443{http.request.uri.query.back}", true},
		{"http://localhost:8080/orders/{rp.header.X-Kassa-Order}", true},
		{"https://{http.request.host}/thanks", false},
		{"{http.request.uri.query.to}", false},
		{"https://sho{http.request.uri.query.d}.example.com/", false},
		{"{http.request.scheme}://shop.example.com/", false},
		{"https://{http.request.uri.query.u}@shop.example.com/", false},
		{"https://user@shop.example.com/", false},
		{"ftp://shop.example.com/", false},
		{"/thanks", false},
	} {
		s.checkout.Redirect = tc.redirect
		err := s.checkout.Validate()
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "redirect")) {
			t.Errorf("redirect %s: %v", tc.redirect, err)
		}
	}
}
