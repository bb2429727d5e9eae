package kassa

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

// cartErrCode is the code of a 400 RequestError, "" for no error, and a
// description of anything else so that a test fails on it.
func cartErrCode(err error) string {
	if err == nil {
		return ""
	}
	var re *RequestError
	if !errors.As(err, &re) {
		return fmt.Sprintf("not a RequestError: %T %v", err, err)
	}
	if re.Status != http.StatusBadRequest {
		return fmt.Sprintf("status %d", re.Status)
	}
	return re.Code
}

// unsafeInMessage reports whether a message repeats markup or control
// characters.
func unsafeInMessage(msg string) bool {
	return strings.ContainsAny(msg, "<>&\x00\n\r\x1b") || strings.ContainsRune(msg, '\u2028')
}

func testCatalog(t testing.TB) *Catalog {
	t.Helper()
	c, err := NewCatalog([]Product{
		{SKU: "tea-green", Name: "Green tea 100 g", Price: rub("350.00"), VAT: VAT20},
		{SKU: "cookie", Name: "Cookie", Price: rub("99.99"), VAT: VAT10},
		{SKU: "cup", Name: "Cup", Price: rub("120")},
		{SKU: "sample", Name: "Free sample", Price: rub("0")},
		{SKU: "yacht", Name: "Yacht", Price: rub("600000000")},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseCheckoutForm(t *testing.T) {
	for _, tc := range []struct {
		query string
		items []CartLine
		email string
		phone string
		amt   string
		code  string
	}{
		{query: "item=tea-green", items: []CartLine{{"tea-green", 1}}},
		{query: "item=tea-green:2", items: []CartLine{{"tea-green", 2}}},
		{query: "item=tea-green:2&item=cup&item=tea-green:3", items: []CartLine{{"tea-green", 2}, {"cup", 1}, {"tea-green", 3}}},
		{query: "item=tea-green:0000001", items: []CartLine{{"tea-green", 1}}},
		{query: "item=tea-green:1000000", items: []CartLine{{"tea-green", 1000000}}},
		{query: "", items: nil},
		{query: "amount=500", amt: "500"},
		{query: "amount=5e2", amt: "5e2"}, // raw: the handler parses it only with amount_range
		{query: "item=cup&email=+buyer@example.com+&phone=8+(999)+123-45-67", items: []CartLine{{"cup", 1}}, email: "buyer@example.com", phone: "+79991234567"},
		{query: "item=cup&submit=Pay&price=0.01&item.price=0&total=1", items: []CartLine{{"cup", 1}}},

		{query: "item=tea-green:0", code: "bad_quantity"},
		{query: "item=tea-green:-1", code: "bad_quantity"},
		{query: "item=tea-green:+1", code: "bad_quantity"},
		{query: "item=tea-green:1.5", code: "bad_quantity"},
		{query: "item=tea-green:1e3", code: "bad_quantity"},
		{query: "item=tea-green:", code: "bad_quantity"},
		{query: "item=tea-green:+2", code: "bad_quantity"},
		{query: "item=tea-green:2+", code: "bad_quantity"},
		{query: "item=tea-green:1000001", code: "bad_quantity"},
		{query: "item=tea-green:99999999", code: "bad_quantity"},
		{query: "item=tea-green:99999999999999999999999", code: "bad_quantity"},
		{query: "item=tea-green:2:3", code: "bad_quantity"},
		{query: "item=tea-green:%EF%BC%92", code: "bad_quantity"}, // full-width 2
		{query: "item=", code: "unknown_sku"},
		{query: "item=:2", code: "unknown_sku"},
		{query: "item=+tea-green", code: "unknown_sku"},
		{query: "item=tea-green+", code: "unknown_sku"},
		{query: "item=tea%00green", code: "unknown_sku"},
		{query: "item=%3Cscript%3E", code: "unknown_sku"},
		{query: "item=" + strings.Repeat("a", 65), code: "unknown_sku"},
		{query: "item=cup&email=a@b.c&email=d@e.f", code: "bad_email"},
		{query: "item=cup&phone=1&phone=2", code: "bad_phone"},
		{query: "amount=1&amount=1000", code: "bad_amount"},
		{query: "item=cup&email=not-an-email", code: "bad_email"},
		{query: "item=cup&phone=12345", code: "bad_phone"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			form, err := url.ParseQuery(tc.query)
			if err != nil {
				t.Fatal(err)
			}
			req, err := ParseCheckoutForm(form)
			checkParsedCart(t, req, err, tc.code, CheckoutRequest{Items: tc.items, Email: tc.email, Phone: tc.phone, Amount: tc.amt})
		})
	}
}

// checkParsedCart checks what a checkout parser made of a request: the
// error code wanted, with a message safe to show, or else the cart and
// contacts wanted.
func checkParsedCart(t *testing.T, req CheckoutRequest, err error, code string, want CheckoutRequest) {
	t.Helper()
	if got := cartErrCode(err); got != code {
		t.Fatalf("error %q (%v), want %q", got, err, code)
	}
	if err != nil {
		if unsafeInMessage(err.Error()) {
			t.Errorf("unsafe message %q", err)
		}
		return
	}
	if !reflect.DeepEqual(req.Items, want.Items) || req.Email != want.Email || req.Phone != want.Phone || req.Amount != want.Amount {
		t.Errorf("got %+v", req)
	}
}

func TestParseCheckoutFormLimits(t *testing.T) {
	form := url.Values{"item": make([]string, maxRequestLines)}
	for i := range form["item"] {
		form["item"][i] = "tea-green"
	}
	req, err := ParseCheckoutForm(form)
	if err != nil || len(req.Items) != maxRequestLines {
		t.Fatalf("%d lines: %v", maxRequestLines, err)
	}
	form["item"] = make([]string, 10000)
	for i := range form["item"] {
		form["item"][i] = fmt.Sprintf("p%d", i)
	}
	if _, err := ParseCheckoutForm(form); cartErrCode(err) != "too_many_items" {
		t.Errorf("10000 lines: %v", err)
	}
}

func TestParseCheckoutJSON(t *testing.T) {
	for _, tc := range []struct {
		body  string
		items []CartLine
		email string
		phone string
		amt   string
		code  string
	}{
		{body: `{"items":[{"sku":"tea-green","qty":2}]}`, items: []CartLine{{"tea-green", 2}}},
		{body: ` {"items":[{"sku":"tea-green"},{"sku":"cup","qty":3},{"sku":"tea-green","qty":1}]} ` + "\n", items: []CartLine{{"tea-green", 1}, {"cup", 3}, {"tea-green", 1}}},
		{body: `{"items":[{"qty":2,"sku":"cup","price":"0.01","name":"Free"}],"price":"1","total":0}`, items: []CartLine{{"cup", 2}}},
		{body: `{"items":[],"amount":"500.00"}`, items: nil, amt: "500.00"},
		{body: `{"amount":"5e2"}`, amt: "5e2"},
		{body: `{"items":[{"sku":"cup"}],"email":"buyer@example.com","phone":"+7 (999) 123-45-67"}`, items: []CartLine{{"cup", 1}}, email: "buyer@example.com", phone: "+79991234567"},
		{body: `{"email":null,"phone":null,"amount":null}`},
		{body: `{}`},
		{body: `{"items":[{"sku":"cup","qty":1000000}]}`, items: []CartLine{{"cup", 1000000}}},
		{body: `{"extra":{"deep":[1,2,{"x":null}]},"items":[{"sku":"cup","meta":{"a":[1]}}]}`, items: []CartLine{{"cup", 1}}},

		{body: ``, code: "bad_request"},
		{body: "  \n", code: "bad_request"},
		{body: `null`, code: "bad_request"},
		{body: `[]`, code: "bad_request"},
		{body: `"items"`, code: "bad_request"},
		{body: `{`, code: "bad_request"},
		{body: `{"items":[{"sku":"cup"}]`, code: "bad_request"},
		{body: `{"items":[{"sku":"cup"}]}}`, code: "bad_request"},
		{body: `{"items":[{"sku":"cup"}]} {}`, code: "bad_request"},
		{body: `{"items":[{"sku":"cup"}]}garbage`, code: "bad_request"},
		{body: `{"items":[{"sku":"cup",}]}`, code: "bad_request"},
		{body: `{'items':[]}`, code: "bad_request"},
		{body: "{\"items\":[{\"sku\":\"\xff\"}]}", code: "bad_request"},
		{body: `{"items":{"sku":"cup"}}`, code: "bad_request"},
		{body: `{"items":"cup"}`, code: "bad_request"},
		{body: `{"items":null}`, code: "bad_request"},
		{body: `{"items":[null]}`, code: "bad_request"},
		{body: `{"items":["cup"]}`, code: "bad_request"},
		{body: `{"items":[{"qty":1}]}`, code: "bad_request"},
		{body: `{"items":[{"sku":1}]}`, code: "bad_request"},
		{body: `{"items":[{"sku":"cup","sku":"tea-green"}]}`, code: "bad_request"},
		{body: `{"items":[],"items":[{"sku":"cup"}]}`, code: "bad_request"},
		{body: `{"items":[{"sku":"cup","qty":"2"}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":"cup","qty":2.5}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":"cup","qty":2.0}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":"cup","qty":1e3}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":"cup","qty":-1}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":"cup","qty":0}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":"cup","qty":1000001}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":"cup","qty":99999999999999999999}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":"cup","qty":null}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":"cup","qty":true}]}`, code: "bad_quantity"},
		{body: `{"items":[{"sku":""}]}`, code: "unknown_sku"},
		{body: `{"items":[{"sku":" cup"}]}`, code: "unknown_sku"},
		{body: `{"items":[{"sku":"<img src=x onerror=alert(1)>"}]}`, code: "unknown_sku"},
		{body: `{"items":[{"sku":"cup\u0000"}]}`, code: "unknown_sku"},
		{body: `{"email":42}`, code: "bad_email"},
		{body: `{"email":"a b@c.d"}`, code: "bad_email"},
		{body: `{"phone":79991234567}`, code: "bad_phone"},
		{body: `{"amount":500}`, code: "bad_amount"},
		{body: `{"amount":["500"]}`, code: "bad_amount"},
	} {
		t.Run(tc.body, func(t *testing.T) {
			req, err := ParseCheckoutJSON([]byte(tc.body))
			checkParsedCart(t, req, err, tc.code, CheckoutRequest{Items: tc.items, Email: tc.email, Phone: tc.phone, Amount: tc.amt})
		})
	}
}

func TestParseCheckoutJSONLimits(t *testing.T) {
	body := func(n int) []byte {
		var b strings.Builder
		b.WriteString(`{"items":[`)
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"sku":"p%d","qty":1}`, i)
		}
		b.WriteString("]}")
		return []byte(b.String())
	}
	if req, err := ParseCheckoutJSON(body(maxRequestLines)); err != nil || len(req.Items) != maxRequestLines {
		t.Errorf("%d lines: %v", maxRequestLines, err)
	}
	if _, err := ParseCheckoutJSON(body(10000)); cartErrCode(err) != "too_many_items" {
		t.Errorf("10000 lines: %v", err)
	}
	deep := []byte(`{"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `,"items":[{"sku":"cup"}]}`)
	if _, err := ParseCheckoutJSON(deep); cartErrCode(err) != "bad_request" { // encoding/json bounds nesting
		t.Errorf("deeply nested unknown field: %v", err)
	}
}

func TestPrice(t *testing.T) {
	c := testCatalog(t)
	items, total, err := c.Price([]CartLine{{"cookie", 3}})
	if err != nil {
		t.Fatal(err)
	}
	if !total.Equal(rub("299.97")) || FormatAmount(total) != "299.97" {
		t.Errorf("3 × 99.99 = %s", total)
	}
	if want := []OrderItem{{SKU: "cookie", Name: "Cookie", Qty: 3, Price: rub("99.99"), VAT: VAT10}}; !sameItems(items, want) {
		t.Errorf("items %+v", items)
	}

	items, total, err = c.Price([]CartLine{{"tea-green", 1}, {"cookie", 1}, {"tea-green", 2}, {"sample", 1}, {"cookie", 2}})
	if err != nil {
		t.Fatal(err)
	}
	want := []OrderItem{
		{SKU: "tea-green", Name: "Green tea 100 g", Qty: 3, Price: rub("350"), VAT: VAT20},
		{SKU: "cookie", Name: "Cookie", Qty: 3, Price: rub("99.99"), VAT: VAT10},
		{SKU: "sample", Name: "Free sample", Qty: 1, Price: rub("0")},
	}
	if !sameItems(items, want) || !total.Equal(rub("1349.97")) {
		t.Errorf("merged: %+v = %s", items, total)
	}

	// Every kopeck adds up exactly, however many.
	_, total, err = c.Price([]CartLine{{"cookie", maxQuantity}})
	if err != nil || !total.Equal(rub("99990000")) {
		t.Errorf("a million cookies: %s, %v", total, err)
	}
	_, total, err = c.Price([]CartLine{{"sample", 5}})
	if err != nil || !total.IsZero() {
		t.Errorf("free samples: %s, %v", total, err)
	}

	var none *Catalog
	if _, _, err := none.Price([]CartLine{{"cup", 1}}); cartErrCode(err) != "unknown_sku" {
		t.Errorf("nil catalog: %v", err)
	}

	many := make([]CartLine, 0, maxCartLines+1)
	products := make([]Product, 0, maxCartLines+1)
	for i := range maxCartLines + 1 {
		sku := fmt.Sprintf("p%03d", i)
		products = append(products, Product{SKU: sku, Name: sku, Price: rub("1")})
		many = append(many, CartLine{sku, 1})
	}
	big, err := NewCatalog(products)
	if err != nil {
		t.Fatal(err)
	}
	if _, total, err := big.Price(many[:maxCartLines]); err != nil || !total.Equal(rub("100")) {
		t.Errorf("%d products: %s, %v", maxCartLines, total, err)
	}
	if _, _, err := big.Price(many); cartErrCode(err) != "too_many_items" {
		t.Errorf("%d products: %v", maxCartLines+1, err)
	}
	repeated := make([]CartLine, maxRequestLines+1)
	for i := range repeated {
		repeated[i] = CartLine{"cup", 1}
	}
	if _, _, err := c.Price(repeated[:maxRequestLines]); err != nil {
		t.Errorf("%d lines of one product: %v", maxRequestLines, err)
	}
	if _, _, err := c.Price(repeated); cartErrCode(err) != "too_many_items" {
		t.Errorf("%d lines: %v", maxRequestLines+1, err)
	}

	for name, tc := range map[string]struct {
		lines []CartLine
		code  string
		says  string
	}{
		"empty":             {nil, "empty_cart", "empty"},
		"empty slice":       {[]CartLine{}, "empty_cart", "empty"},
		"unknown":           {[]CartLine{{"cup", 1}, {"teapot", 1}}, "unknown_sku", `"teapot"`},
		"case":              {[]CartLine{{"CUP", 1}}, "unknown_sku", `"CUP"`},
		"html":              {[]CartLine{{"<script>alert(1)</script>", 1}}, "unknown_sku", `\u003cscript\u003e`},
		"control":           {[]CartLine{{"cup\r\nX-Evil: 1", 1}}, "unknown_sku", `\r\n`},
		"long":              {[]CartLine{{strings.Repeat("x", 1000), 1}}, "unknown_sku", `"...`},
		"zero":              {[]CartLine{{"cup", 0}}, "bad_quantity", "quantity 0"},
		"negative":          {[]CartLine{{"cup", -5}}, "bad_quantity", "quantity -5"},
		"huge":              {[]CartLine{{"cup", 1 << 62}}, "bad_quantity", "1000000"},
		"merged too many":   {[]CartLine{{"cup", maxQuantity}, {"cup", 1}}, "bad_quantity", "adds up"},
		"merged overflow":   {[]CartLine{{"cup", maxQuantity}, {"cup", maxQuantity}}, "bad_quantity", ""},
		"total too large":   {[]CartLine{{"yacht", 1}, {"yacht", 1}}, "amount_too_large", "1200000000.00"},
		"total above max":   {[]CartLine{{"tea-green", maxQuantity}, {"yacht", 2}}, "amount_too_large", ""},
		"bad after good":    {[]CartLine{{"cup", 1}, {"cup", 0}}, "bad_quantity", ""},
		"unknown then zero": {[]CartLine{{"nope", 0}}, "bad_quantity", ""},
	} {
		t.Run(name, func(t *testing.T) {
			items, total, err := c.Price(tc.lines)
			if got := cartErrCode(err); got != tc.code {
				t.Errorf("%s: %q (%v), want %q", name, got, err, tc.code)
				return
			}
			var re *RequestError
			errors.As(err, &re)
			if re.Field != "items" || !strings.Contains(re.Message, tc.says) || unsafeInMessage(re.Message) || len(re.Message) > 200 {
				t.Errorf("%s: %+v, want Field items and a safe message saying %q", name, re, tc.says)
			}
			if items != nil || !total.IsZero() {
				t.Errorf("%s: returned %v, %s with the error", name, items, total)
			}
		})
	}
}

func sameItems(got, want []OrderItem) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.SKU != w.SKU || g.Name != w.Name || g.Qty != w.Qty || !g.Price.Equal(w.Price) || g.VAT != w.VAT {
			return false
		}
	}
	return true
}

// TestPriceIgnoresTampering: whatever price, amount, name or total a form
// or a JSON body carries, the priced order is the catalog's.
func TestPriceIgnoresTampering(t *testing.T) {
	c := testCatalog(t)
	wantItems, wantTotal, err := c.Price([]CartLine{{"tea-green", 2}, {"cookie", 1}})
	if err != nil {
		t.Fatal(err)
	}
	forms := []string{
		"item=tea-green:2&item=cookie",
		"item=tea-green:2&item=cookie&price=0.01&amount=0.01&total=0.01&name=Free&vat=vat0",
		"item=tea-green:2&item=cookie&price[tea-green]=0&item.price=0&items[0][price]=0",
	}
	bodies := []string{
		`{"items":[{"sku":"tea-green","qty":2},{"sku":"cookie"}]}`,
		`{"items":[{"sku":"tea-green","qty":2,"price":"0.01","name":"Free","vat":"vat0"},{"sku":"cookie","price":0}],"amount":"0.01","total":"0.01","price":"0"}`,
	}
	check := func(what string, req CheckoutRequest, err error) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		items, total, err := c.Price(req.Items)
		if err != nil || !sameItems(items, wantItems) || !total.Equal(wantTotal) {
			t.Errorf("%s: priced %+v = %s, %v; want %+v = %s", what, items, total, err, wantItems, wantTotal)
		}
	}
	for _, q := range forms {
		form, err := url.ParseQuery(q)
		if err != nil {
			t.Fatal(err)
		}
		req, err := ParseCheckoutForm(form)
		check(q, req, err)
	}
	for _, b := range bodies {
		req, err := ParseCheckoutJSON([]byte(b))
		check(b, req, err)
	}
	if !wantTotal.Equal(rub("799.99")) {
		t.Errorf("total %s", wantTotal)
	}
}

func TestParseItems(t *testing.T) {
	for _, tc := range []struct {
		raw   string
		items []OrderItem
		total string
		code  string
	}{
		{raw: `[{"name":"Green tea","qty":2,"price":"350.00","vat":"vat20"}]`,
			items: []OrderItem{{Name: "Green tea", Qty: 2, Price: rub("350"), VAT: VAT20}}, total: "700"},
		{raw: `[{"name":"Cookie","qty":3,"price":99.99},{"name":"Delivery","qty":1,"price":"0","vat":null},{"name":"Cookie","qty":1,"price":"99.99","vat":"none"}]`,
			items: []OrderItem{{Name: "Cookie", Qty: 3, Price: rub("99.99")}, {Name: "Delivery", Qty: 1, Price: rub("0")}, {Name: "Cookie", Qty: 1, Price: rub("99.99"), VAT: VATNone}}, total: "399.96"},
		{raw: ` [{"price":350.5,"qty":1,"name":"Чай"}] `, items: []OrderItem{{Name: "Чай", Qty: 1, Price: rub("350.5")}}, total: "350.5"},
		{raw: `[{"name":"x","qty":1000000,"price":"1000"}]`, items: []OrderItem{{Name: "x", Qty: 1000000, Price: rub("1000")}}, total: "1000000000"},

		{raw: ``, code: "bad_items"},
		{raw: ` `, code: "bad_items"},
		{raw: `[]`, code: "bad_items"},
		{raw: `null`, code: "bad_items"},
		{raw: `{"name":"Tea","qty":1,"price":"1"}`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"1"}`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"1"}]x`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"1"}][]`, code: "bad_items"},
		{raw: `[null]`, code: "bad_items"},
		{raw: `[{"qty":1,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1}]`, code: "bad_items"},
		{raw: `[{"name":"","qty":1,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"  ","qty":1,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"` + strings.Repeat("я", 129) + `","qty":1,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea\u0000","qty":1,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":7,"qty":1,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":0,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":-1,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1.5,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":"1","price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1e2,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1000001,"price":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":1.001}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":1e3}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":-1}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"-1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"1,00"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":null}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"1000000000.01"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"1","vat":"vat21"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"1","vat":3}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"prise":"1"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"1","vta":"vat0"}]`, code: "bad_items"},
		{raw: `[{"name":"Tea","qty":1,"price":"1","price":"0"}]`, code: "bad_items"},
		{raw: "[{\"name\":\"\xff\",\"qty\":1,\"price\":\"1\"}]", code: "bad_items"},
		{raw: `[{"name":"<b>","qty":1,"price":"1","<script>":1}]`, code: "bad_items"},
		{raw: `[{"name":"Yacht","qty":2,"price":"600000000"}]`, code: "amount_too_large"},
		{raw: `[{"name":"x","qty":1000000,"price":"1000.01"}]`, code: "amount_too_large"},
	} {
		t.Run(tc.raw, func(t *testing.T) {
			items, total, err := ParseItems(tc.raw)
			if got := cartErrCode(err); got != tc.code {
				t.Errorf("%s: %q (%v), want %q", tc.raw, got, err, tc.code)
				return
			}
			if err != nil {
				var re *RequestError
				errors.As(err, &re)
				if re.Field != "items" || unsafeInMessage(re.Message) {
					t.Errorf("%s: %+v", tc.raw, re)
				}
				if items != nil || !total.IsZero() {
					t.Errorf("%s: returned %v, %s with the error", tc.raw, items, total)
				}
				return
			}
			if !sameItems(items, tc.items) || !total.Equal(rub(tc.total)) {
				t.Errorf("%s: %+v = %s", tc.raw, items, total)
			}
		})
	}

	var b strings.Builder
	b.WriteByte('[')
	for i := range maxCartLines + 1 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"name":"x","qty":1,"price":"1"}`)
	}
	b.WriteByte(']')
	if _, _, err := ParseItems(b.String()); cartErrCode(err) != "bad_items" {
		t.Errorf("%d items: %v", maxCartLines+1, err)
	}
	if items, _, err := ParseItems(strings.Replace(b.String(), `{"name":"x","qty":1,"price":"1"},`, "", 1)); err != nil || len(items) != maxCartLines {
		t.Errorf("%d items: %v", maxCartLines, err)
	}
	// What ParseItems accepts is a valid receipt.
	items, total, err := ParseItems(`[{"name":"Tea","qty":3,"price":"99.99","vat":"vat10"}]`)
	if err != nil {
		t.Fatal(err)
	}
	r := Receipt{OperationID: "op", Type: ReceiptSale, Taxation: TaxationOSN, Cashless: total}
	for _, it := range items {
		r.Positions = append(r.Positions, Position{Name: it.Name, Quantity: it.Qty, Price: it.Price, VAT: it.VAT})
	}
	if err := r.Validate(); err != nil || !r.Total().Equal(rub("299.97")) {
		t.Errorf("receipt of parsed items: %v", err)
	}
}

func TestValidateContacts(t *testing.T) {
	for _, tc := range []struct {
		email, phone         string
		wantEmail, wantPhone string
		code                 string
	}{
		{"", "", "", "", ""},
		{"buyer@example.com", "", "buyer@example.com", "", ""},
		{" Buyer.Name+tag@mail.example.ru ", "", "Buyer.Name+tag@mail.example.ru", "", ""},
		{"o'brien@example.ie", "", "o'brien@example.ie", "", ""},
		{"покупатель@пример.рф", "", "покупатель@пример.рф", "", ""},
		{"", "+79991234567", "", "+79991234567", ""},
		{"", "+7 (999) 123-45-67", "", "+79991234567", ""},
		{"", "8 (999) 123-45-67", "", "+79991234567", ""},
		{"", "89991234567", "", "+79991234567", ""},
		{"", "79991234567", "", "+79991234567", ""},
		{"", "9991234567", "", "+79991234567", ""},
		{"", "(999)1234567", "", "+79991234567", ""},
		{"", "+44 20 7946 0958", "", "+442079460958", ""},
		{"", "+1-212-555-0100", "", "+12125550100", ""},
		{"", "+123456789012345", "", "+123456789012345", ""},
		{"", " 8-999-123-45-67 ", "", "+79991234567", ""},
		{"a@b.co", "+7 999 1234567", "a@b.co", "+79991234567", ""},

		{"buyer", "", "", "", "bad_email"},
		{"@example.com", "", "", "", "bad_email"},
		{"buyer@", "", "", "", "bad_email"},
		{"a@@example.com", "", "", "", "bad_email"},
		{"a@b@example.com", "", "", "", "bad_email"},
		{"a b@example.com", "", "", "", "bad_email"},
		{"a@exam ple.com", "", "", "", "bad_email"},
		{"a\t@example.com", "", "", "", "bad_email"},
		{"a@example.com\r\nBcc: x@y.z", "", "", "", "bad_email"},
		{"a\x00@example.com", "", "", "", "bad_email"},
		{"a@localhost", "", "", "", "bad_email"},
		{"a@.com", "", "", "", "bad_email"},
		{"a@example.", "", "", "", "bad_email"},
		{"<script>@example.com", "", "", "", "bad_email"},
		{`"a"@example.com`, "", "", "", "bad_email"},
		{"a@[127.0.0.1]", "", "", "", "bad_email"},
		{"a\xff@example.com", "", "", "", "bad_email"},
		{"a\u00a0b@example.com", "", "", "", "bad_email"},
		{strings.Repeat("a", 243) + "@example.com", "", "", "", "bad_email"},
		{"", "123", "", "", "bad_phone"},
		{"", "999123456", "", "", "bad_phone"},
		{"", "+1234567890123456", "", "", "bad_phone"},
		{"", "1234567890123456", "", "", "bad_phone"},
		{"", "+7 999 123 45 67 ext 1", "", "", "bad_phone"},
		{"", "++79991234567", "", "", "bad_phone"},
		{"", "7+9991234567", "", "", "bad_phone"},
		{"", "+7.999.123.45.67", "", "", "bad_phone"},
		{"", "+7\t9991234567", "", "", "bad_phone"},
		{"", "+７９９９１２３４５６７", "", "", "bad_phone"},
		{"", "-", "", "", "bad_phone"},
		{"", "+", "", "", "bad_phone"},
		{"good@example.com", "bad", "", "", "bad_phone"},
		{"bad", "+79991234567", "", "", "bad_email"},
	} {
		t.Run(fmt.Sprintf("%q %q", tc.email, tc.phone), func(t *testing.T) {
			email, phone, err := ValidateContacts(tc.email, tc.phone)
			if got := cartErrCode(err); got != tc.code {
				t.Errorf("(%q, %q): %q (%v), want %q", tc.email, tc.phone, got, err, tc.code)
				return
			}
			if err != nil {
				var re *RequestError
				errors.As(err, &re)
				if unsafeInMessage(re.Message) || (tc.email != "" && len(tc.email) > 3 && strings.Contains(re.Message, tc.email)) ||
					(len(tc.phone) > 3 && strings.Contains(re.Message, tc.phone)) {
					t.Errorf("(%q, %q): message %q repeats the contact or unsafe input", tc.email, tc.phone, re.Message)
				}
				if wantField := strings.TrimPrefix(tc.code, "bad_"); re.Field != wantField {
					t.Errorf("(%q, %q): Field %q, want %q", tc.email, tc.phone, re.Field, wantField)
				}
				return
			}
			if email != tc.wantEmail || phone != tc.wantPhone {
				t.Errorf("(%q, %q) = (%q, %q), want (%q, %q)", tc.email, tc.phone, email, phone, tc.wantEmail, tc.wantPhone)
			}
			// Cleaning is idempotent: the handler may validate what a parser
			// already cleaned.
			if e2, p2, err := ValidateContacts(email, phone); err != nil || e2 != email || p2 != phone {
				t.Errorf("(%q, %q) cleaned again = (%q, %q), %v", email, phone, e2, p2, err)
			}
		})
	}
	// The longest allowed email.
	long := strings.Repeat("a", 254-len("@example.com")) + "@example.com"
	if e, _, err := ValidateContacts(long, ""); err != nil || e != long {
		t.Errorf("a 254-byte email: %v", err)
	}
}

func FuzzParseCheckoutJSON(f *testing.F) {
	for _, s := range []string{
		`{"items":[{"sku":"tea-green","qty":2}],"email":"a@b.c","phone":"+79991234567","amount":"1.00"}`,
		`{"items":[{"sku":"cup"},{"sku":"cup","qty":1000000}]}`,
		`{"items":[{"sku":"cup","qty":2.5}]}`, `{"items":{}}`, `{}`, `[]`, `{"a":1} x`, ``,
		`{"items":[{"sku":"<b>","price":"0"}],"amount":5}`,
	} {
		f.Add([]byte(s))
	}
	c := testCatalog(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseCheckoutJSON(body)
		checkFuzzedCart(t, c, req, err)
	})
}

func FuzzParseCheckoutForm(f *testing.F) {
	for _, s := range []string{
		"item=tea-green:2&item=cup&email=a@b.c&phone=89991234567",
		"item=cup:0", "item=%3Cb%3E", "amount=1&amount=2", "item=cup:1000000&item=cup:1", "",
	} {
		f.Add(s)
	}
	c := testCatalog(f)
	f.Fuzz(func(t *testing.T, query string) {
		form, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		req, err := ParseCheckoutForm(form)
		checkFuzzedCart(t, c, req, err)
	})
}

// checkFuzzedCart checks what a parser made of fuzzed input: a refusal
// with a one-word code and a safe message, or a request checkCartRequest
// accepts.
func checkFuzzedCart(t *testing.T, c *Catalog, req CheckoutRequest, err error) {
	t.Helper()
	if err != nil {
		if code := cartErrCode(err); code == "" || strings.Contains(code, " ") {
			t.Fatalf("error %v: %s", err, code)
		}
		if unsafeInMessage(err.Error()) {
			t.Fatalf("unsafe message %q", err)
		}
		return
	}
	checkCartRequest(t, c, req)
}

// checkCartRequest checks what a parser accepted: valid lines, clean
// contacts, and a price that is the catalog's or a clean error.
func checkCartRequest(t *testing.T, c *Catalog, req CheckoutRequest) {
	t.Helper()
	if len(req.Items) > maxRequestLines {
		t.Fatalf("%d lines accepted", len(req.Items))
	}
	for _, l := range req.Items {
		if !validSKU(l.SKU) || l.Qty < 1 || l.Qty > maxQuantity {
			t.Fatalf("accepted line %+v", l)
		}
	}
	if e, p, err := ValidateContacts(req.Email, req.Phone); err != nil || e != req.Email || p != req.Phone {
		t.Fatalf("contacts (%q, %q) not clean: %v", req.Email, req.Phone, err)
	}
	items, total, err := c.Price(req.Items)
	if err != nil {
		if cartErrCode(err) == "" || unsafeInMessage(err.Error()) {
			t.Fatalf("Price: %v", err)
		}
		return
	}
	sum := decimal.Zero
	for _, it := range items {
		p, ok := c.Product(it.SKU)
		if !ok || !p.Price.Equal(it.Price) || p.Name != it.Name || p.VAT != it.VAT {
			t.Fatalf("item %+v is not the catalog's %+v", it, p)
		}
		sum = sum.Add(it.Price.Mul(decimal.NewFromInt(it.Qty)))
	}
	if !sum.Equal(total) || total.GreaterThan(maxAmount) {
		t.Fatalf("total %s, items sum to %s", total, sum)
	}
}

func FuzzParseItems(f *testing.F) {
	for _, s := range []string{
		`[{"name":"Green tea","qty":2,"price":"350.00","vat":"vat20"}]`,
		`[{"name":"Cookie","qty":3,"price":99.99},{"name":"x","qty":1,"price":"0","vat":null}]`,
		`[{"name":"Tea","qty":1,"price":1e3}]`, `[]`, `{}`, ``, `[{"name":"Tea","qty":1,"price":"1"}] x`,
		// Raw values an upstream's X-Kassa-Items header cannot carry.
		"a\r\nX-Injected: 1", "a\x00b", "a\x01\x1b[31mb",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		items, total, err := ParseItems(raw)
		if err != nil {
			if code := cartErrCode(err); code != "bad_items" && code != "amount_too_large" {
				t.Fatalf("error %v: %s", err, code)
			}
			if unsafeInMessage(err.Error()) {
				t.Fatalf("unsafe message %q", err)
			}
			return
		}
		if len(items) == 0 || len(items) > maxCartLines || total.IsNegative() || total.GreaterThan(maxAmount) {
			t.Fatalf("accepted %d items totalling %s", len(items), total)
		}
		r := Receipt{OperationID: "op", Type: ReceiptSale, Taxation: TaxationOSN, Cashless: total}
		for _, it := range items {
			r.Positions = append(r.Positions, Position{Name: it.Name, Quantity: it.Qty, Price: it.Price, VAT: it.VAT})
		}
		for i := range r.Positions {
			if r.Positions[i].VAT == 0 {
				r.Positions[i].VAT = VATNone // as the receipt provider fills in its default
			}
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted items make an invalid receipt: %v", err)
		}
	})
}

func BenchmarkParseCheckoutForm(b *testing.B) {
	form, err := url.ParseQuery("item=tea-green:2&item=cookie&item=cup:3&item=tea-green&email=buyer@example.com&phone=%2B7+999+123-45-67&submit=Pay")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCheckoutForm(form); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseCheckoutJSON(b *testing.B) {
	body := []byte(`{"items":[{"sku":"tea-green","qty":2},{"sku":"cookie"},{"sku":"cup","qty":3},{"sku":"tea-green","qty":1}],"email":"buyer@example.com","phone":"+7 999 123-45-67"}`)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if _, err := ParseCheckoutJSON(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPrice(b *testing.B) {
	c := testCatalog(b)
	lines := []CartLine{{"tea-green", 2}, {"cookie", 1}, {"cup", 3}, {"tea-green", 1}}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := c.Price(lines); err != nil {
			b.Fatal(err)
		}
	}
}
