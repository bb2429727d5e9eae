package kassa

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestCheckoutAllowedOrigins: with allowed_origins, a checkout whose Origin
// (or, without one, Referer) is another site's is 403 cross_site and makes
// no order, form or JSON; the listed origins, the shop's own, and a request
// that names no origin at all (a backend, curl) check out. Without the
// option nothing changes. Before: any page anywhere could post the shop's
// checkout form and fill it with orders.
func TestCheckoutAllowedOrigins(t *testing.T) {
	form := func(headers ...string) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "https://shop.example.com/pay", strings.NewReader("item=tea-green&email=buyer@example.com"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for i := 0; i < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return req
	}
	jsonPost := func(headers ...string) *http.Request {
		req := httptest.NewRequest(http.MethodPost, "https://shop.example.com/pay", strings.NewReader(`{"items":[{"sku":"tea-green"}],"email":"buyer@example.com"}`))
		req.Header.Set("Content-Type", "application/json")
		for i := 0; i < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		return req
	}
	for _, tc := range []struct {
		name string
		req  *http.Request
		want int
	}{
		{"listed origin", form("Origin", "https://www.example.com"), http.StatusSeeOther},
		{"listed origin, other case", form("Origin", "HTTPS://WWW.EXAMPLE.COM"), http.StatusSeeOther},
		{"the shop's own origin", form("Origin", "https://shop.example.com"), http.StatusSeeOther},
		{"listed referer", form("Referer", "https://www.example.com/cart?x=1"), http.StatusSeeOther},
		{"no origin, no referer", form(), http.StatusSeeOther},
		{"foreign origin", form("Origin", "https://evil.example"), http.StatusForbidden},
		{"foreign origin, listed referer", form("Origin", "https://evil.example", "Referer", "https://www.example.com/"), http.StatusForbidden},
		{"listed host, other scheme", form("Origin", "http://www.example.com"), http.StatusForbidden},
		{"listed host, other port", form("Origin", "https://www.example.com:8443"), http.StatusForbidden},
		{"opaque origin", form("Origin", "null"), http.StatusForbidden},
		{"foreign referer", form("Referer", "https://evil.example/flood.html"), http.StatusForbidden},
		{"json, foreign origin", jsonPost("Origin", "https://evil.example"), http.StatusForbidden},
		{"json, listed origin", jsonPost("Origin", "https://www.example.com"), http.StatusCreated},
		{"json from a backend", jsonPost(), http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newLifeProvider("crystalpay")
			s := newLifeShop(t, p, nil, nil)
			s.checkout.AllowedOrigins = []string{"https://www.example.com"}
			if err := s.checkout.Validate(); err != nil {
				t.Fatal(err)
			}
			w := s.serve(tc.req)
			if w.Code != tc.want {
				t.Fatalf("%d %s; want %d", w.Code, w.Body, tc.want)
			}
			if tc.want == http.StatusForbidden {
				if !strings.Contains(w.Body.String(), "cross_site") && !strings.Contains(w.Body.String(), "another site") {
					t.Errorf("refusal %q does not say why", w.Body)
				}
				if p.created != 0 {
					t.Errorf("a refused checkout created %d payments", p.created)
				}
			}
		})
	}
	t.Run("without allowed_origins", func(t *testing.T) {
		s := newLifeShop(t, newLifeProvider("crystalpay"), nil, nil)
		if w := s.serve(form("Origin", "https://evil.example")); w.Code != http.StatusSeeOther {
			t.Errorf("a foreign form without allowed_origins: %d %s; want 303 as before", w.Code, w.Body)
		}
	})
}

// TestCheckoutAllowedOriginsCaddyfile: allowed_origins takes one or more
// origins (scheme://host[:port], nothing more); anything else is refused
// when the config is read.
func TestCheckoutAllowedOriginsCaddyfile(t *testing.T) {
	var h Checkout
	if err := h.UnmarshalCaddyfile(fuzzDispenser(t, "kassa_checkout main {\n\tallowed_origins https://shop.example.com https://www.shop.example.com:8443\n}")); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(h.AllowedOrigins, " "); got != "https://shop.example.com https://www.shop.example.com:8443" {
		t.Errorf("allowed_origins = %q", got)
	}
	for _, bad := range []string{
		"kassa_checkout {\n\tallowed_origins\n}",
		"kassa_checkout {\n\tallowed_origins https://shop.example.com/pay\n}",
		"kassa_checkout {\n\tallowed_origins shop.example.com\n}",
		"kassa_checkout {\n\tallowed_origins ftp://shop.example.com\n}",
		"kassa_checkout {\n\tallowed_origins https://shop.example.com?x\n}",
		"kassa_checkout {\n\tallowed_origins *\n}",
	} {
		var h Checkout
		if err := h.UnmarshalCaddyfile(fuzzDispenser(t, bad)); err == nil {
			t.Errorf("%q was accepted: %v", bad, h.AllowedOrigins)
		}
	}
}

// TestCheckoutAllowedOriginsNoReferrer: a page can make a browser send a
// request with neither Origin nor Referer (a GET, as a proxied storefront's
// checkout takes, from <img referrerpolicy="no-referrer">), but the browser
// still says Sec-Fetch-Site: cross-site. With allowed_origins such a request
// is 403 cross_site; one a buyer typed (Sec-Fetch-Site: none) or made on
// the shop's own page, and one from no browser at all, still check out.
// Before: naming no origin passed whatever Sec-Fetch-Site said.
func TestCheckoutAllowedOriginsNoReferrer(t *testing.T) {
	for _, tc := range []struct {
		site string
		want int
	}{
		{"cross-site", http.StatusForbidden},
		{"same-site", http.StatusForbidden},
		{"same-origin", http.StatusSeeOther},
		{"none", http.StatusSeeOther},
		{"", http.StatusSeeOther},
	} {
		t.Run("Sec-Fetch-Site "+tc.site, func(t *testing.T) {
			p := newLifeProvider("crystalpay")
			s := newLifeShop(t, p, nil, nil)
			s.checkout.AllowedOrigins = []string{"https://www.example.com"}
			req := httptest.NewRequest(http.MethodPost, "https://shop.example.com/pay", strings.NewReader("item=tea-green&email=buyer@example.com"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.site != "" {
				req.Header.Set("Sec-Fetch-Site", tc.site)
			}
			w := s.serve(req)
			if w.Code != tc.want {
				t.Fatalf("%d %s; want %d", w.Code, w.Body, tc.want)
			}
			if tc.want == http.StatusForbidden && p.created != 0 {
				t.Errorf("a refused checkout created %d payments", p.created)
			}
		})
	}
}

// TestCheckoutAllowedOriginsAsBrowsersSendThem: an allowed origin that no
// browser ever sends in Origin (an IDN host not in punycode, a scheme's
// default port written out) would refuse every checkout from that site
// without a word; it is refused when the config is read, saying what to
// write. Before: accepted, and never matched.
func TestCheckoutAllowedOriginsAsBrowsersSendThem(t *testing.T) {
	for _, tc := range []struct{ origin, hint string }{
		{"https://магазин.рф", "xn--"},
		{"https://shop.example.com:443", "write https://shop.example.com"},
		{"http://shop.example.com:80", "write http://shop.example.com"},
		{"https://[::1]:443", "write https://[::1]"},
	} {
		h := Checkout{Amount: "100", AllowedOrigins: []string{tc.origin}}
		err := h.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.hint) {
			t.Errorf("allowed_origins %s: %v; want refused, naming %s", tc.origin, err, tc.hint)
		}
	}
	for _, good := range []string{"https://xn--80aa0cbo65f.xn--p1ai", "https://shop.example.com:8443", "http://[::1]:8080", "http://localhost:8080"} {
		if err := (&Checkout{Amount: "100", AllowedOrigins: []string{good}}).Validate(); err != nil {
			t.Errorf("allowed_origins %s: %v", good, err)
		}
	}
}
