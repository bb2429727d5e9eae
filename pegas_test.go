package kassa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

// pegasTestToken is a distinctive site token, searched for in every error.
// Its "/" and "+" make its URL-escaped form differ from the plain one.
const pegasTestToken = "TOKEN-pegas-7f3a9c/+x"

// pegasAPIPath is the base path of the stub's API.
const pegasAPIPath = "/api/v1"

// newTestPegas provisions and validates an account against base (a stub's
// URL), with the test token, and cleans it up when the test ends.
func newTestPegas(t *testing.T, base, depositType string, timeout time.Duration) *Pegas {
	t.Helper()
	p := &Pegas{Token: pegasTestToken, Endpoint: base + pegasAPIPath, Type: depositType, Timeout: caddy.Duration(timeout)}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := p.Provision(ctx); err != nil {
		t.Fatalf("Provision: %v", err)
	}
	if err := p.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	t.Cleanup(func() { p.Cleanup() })
	return p
}

// checkPegasRequest checks a request's method, path and query: every
// parameter in want with exactly that value, and no other parameter.
func checkPegasRequest(t *testing.T, got stubRequest, path string, want map[string]string) {
	t.Helper()
	if got.Method != http.MethodGet {
		t.Errorf("method %s, want GET", got.Method)
	}
	if got.Path != pegasAPIPath+path {
		t.Errorf("path %q, want %q", got.Path, pegasAPIPath+path)
	}
	for key, value := range want {
		if v := got.Query[key]; len(v) != 1 || v[0] != value {
			t.Errorf("query %s = %q, want [%q]", key, v, value)
		}
	}
	for key, v := range got.Query {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected query parameter %s = %q", key, v)
		}
	}
}

// pegasQuery is the expected query: the token plus the given pairs.
func pegasQuery(pairs ...string) map[string]string {
	q := map[string]string{"token": pegasTestToken}
	for i := 0; i+1 < len(pairs); i += 2 {
		q[pairs[i]] = pairs[i+1]
	}
	return q
}

// pegasKindOf names the kind of a provider error, for messages.
func pegasKindOf(err error) string {
	for _, k := range []struct {
		err  error
		name string
	}{{ErrDuplicate, "ErrDuplicate"}, {ErrNotFound, "ErrNotFound"}, {ErrAuth, "ErrAuth"},
		{ErrUnavailable, "ErrUnavailable"}, {ErrMalformedReply, "ErrMalformedReply"},
		{ErrInvalid, "ErrInvalid"}, {ErrRejected, "ErrRejected"}} {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return fmt.Sprintf("%v", err)
}

// asPegasError returns err's ProviderError, failing if it has none or it is
// not from pegas.
func asPegasError(t *testing.T, err error) *ProviderError {
	t.Helper()
	var pe *ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want a *ProviderError", err, err)
	}
	if pe.Provider != "pegas" {
		t.Errorf("Provider = %q, want pegas", pe.Provider)
	}
	return pe
}

func TestPegasModule(t *testing.T) {
	info := Pegas{}.CaddyModule()
	if info.ID != "kassa.payments.pegas" {
		t.Errorf("ID = %q", info.ID)
	}
	if _, ok := info.New().(*Pegas); !ok {
		t.Errorf("New() = %T, want *Pegas", info.New())
	}
	raw, err := json.Marshal(Pegas{Token: "{env.PEGAS_TOKEN}", Endpoint: "https://pegas.example/api/v1",
		Type: "yandex", Timeout: caddy.Duration(5 * time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"token":"{env.PEGAS_TOKEN}","endpoint":"https://pegas.example/api/v1","type":"yandex","timeout":5000000000}`
	if string(raw) != want {
		t.Errorf("JSON %s\nwant %s", raw, want)
	}
}

func TestPegasDepositEveryType(t *testing.T) {
	for _, tc := range []struct {
		depositType string
		reply       string
		want        Payment
	}{
		{"wallet", `{"id":101,"commission":"1.50","wallet":"+79990001122","errors":[]}`,
			Payment{ID: "101", Wallet: "+79990001122", Commission: decimal.RequireFromString("1.5")}},
		{"wallet-card", `{"id":"102","commission":0.5,"card":4111111111111111}`,
			Payment{ID: "102", Card: "4111111111111111", Commission: decimal.RequireFromString("0.5")}},
		{"invoice-qw", `{"id":"103","commission":"0","url":"https://pay.pegas.example/i/103"}`,
			Payment{ID: "103", URL: "https://pay.pegas.example/i/103", Commission: decimal.Zero}},
		{"invoice-card", `{"id":"104","url":"https:\/\/pay.pegas.example\/i\/104","errors":null}`,
			Payment{ID: "104", URL: "https://pay.pegas.example/i/104", Commission: decimal.Zero}},
		{"invoice-select", `{"id":105,"commission":12.25,"url":"http://pay.pegas.example/i/105"}`,
			Payment{ID: "105", URL: "http://pay.pegas.example/i/105", Commission: decimal.RequireFromString("12.25")}},
		{"yandex", `{"id":"106","commission":"3","url":"https://yoomoney.example/pay/106"}`,
			Payment{ID: "106", URL: "https://yoomoney.example/pay/106", Commission: decimal.RequireFromString("3")}},
	} {
		t.Run(tc.depositType, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusOK, tc.reply))
			p := newTestPegas(t, stub.URL, tc.depositType, 0)
			got, err := p.CreatePayment(context.Background(), PaymentRequest{
				OrderID: "order-42", Amount: decimal.RequireFromString("350"),
			})
			if err != nil {
				t.Fatal(err)
			}
			checkPegasRequest(t, stub.only(t), "/deposit",
				pegasQuery("amount", "350.00", "type", tc.depositType, "order_id", "order-42"))
			if got.ID != tc.want.ID || got.URL != tc.want.URL || got.Wallet != tc.want.Wallet ||
				got.Card != tc.want.Card || !got.Commission.Equal(tc.want.Commission) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestPegasDepositDefaultType(t *testing.T) {
	stub := newProviderStub(t, stubJSON(http.StatusOK, `{"id":"1","url":"https://pay.pegas.example/1"}`))
	p := newTestPegas(t, stub.URL, "", 0)
	if _, err := p.CreatePayment(context.Background(), PaymentRequest{OrderID: "o1", Amount: decimal.RequireFromString("0.5")}); err != nil {
		t.Fatal(err)
	}
	checkPegasRequest(t, stub.only(t), "/deposit", pegasQuery("amount", "0.50", "type", "invoice-select", "order_id", "o1"))
}

func TestPegasDepositOptionalParams(t *testing.T) {
	for _, tc := range []struct {
		ttl  time.Duration
		want string
	}{
		{time.Nanosecond, "1"},
		{time.Minute, "1"},
		{time.Minute + time.Second, "2"},
		{90 * time.Second, "2"},
		{30 * time.Minute, "30"},
		{24 * time.Hour, "1440"},
	} {
		t.Run(tc.ttl.String(), func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusOK, `{"id":"7","commission":"0.10","wallet":"79990001122"}`))
			p := newTestPegas(t, stub.URL, "wallet", 0)
			_, err := p.CreatePayment(context.Background(), PaymentRequest{
				OrderID:      "A-1_b.c:d",
				Amount:       decimal.RequireFromString("1000000000"),
				Phone:        "+79990001122",
				PayerAccount: "79991112233",
				TTL:          tc.ttl,
				ReturnURL:    "https://shop.example/thanks?order=A-1&x=y",
			})
			if err != nil {
				t.Fatalf("ttl %v: %v", tc.ttl, err)
			}
			checkPegasRequest(t, stub.only(t), "/deposit", pegasQuery(
				"amount", "1000000000.00", "type", "wallet", "order_id", "A-1_b.c:d",
				"phone", "+79990001122", "qiwi_account", "79991112233", "ttl", tc.want,
				"success_url", "https://shop.example/thanks?order=A-1&x=y"))
		})
	}
}

func TestPegasDepositMalformed(t *testing.T) {
	for _, tc := range []struct{ depositType, reply string }{
		{"invoice-select", `{"id":"1"}`},
		{"invoice-card", `{"id":"1","url":""}`},
		{"invoice-qw", `{"id":"1","url":"javascript:alert(1)"}`},
		{"yandex", `{"id":"1","url":"/relative/path"}`},
		{"yandex", `{"id":"1","url":42}`},
		{"wallet", `{"id":"1"}`},
		{"wallet-card", `{"id":"1","url":"https://pay.pegas.example/1"}`},
		{"wallet", `{"id":"1","wallet":"7999\n0001"}`},
		{"invoice-select", `{"url":"https://pay.pegas.example/1"}`},
		{"invoice-select", `{"id":"","url":"https://pay.pegas.example/1"}`},
		{"invoice-select", `{"id":"has space","url":"https://pay.pegas.example/1"}`},
		{"invoice-select", `{"id":{"x":1},"url":"https://pay.pegas.example/1"}`},
		{"invoice-select", `{"id":"1","commission":"abc","url":"https://pay.pegas.example/1"}`},
		{"invoice-select", `{"id":"1","commission":"1e999999999","url":"https://pay.pegas.example/1"}`},
		{"invoice-select", `{"id":"1","commission":"1e300","url":"https://pay.pegas.example/1"}`},
		{"invoice-select", `{"id":"1","commission":"1e-30","url":"https://pay.pegas.example/1"}`},
		{"invoice-select", `{"id":"1","commission":true,"url":"https://pay.pegas.example/1"}`},
		{"invoice-select", `not json`},
		{"invoice-select", `[{"id":"1"}]`},
		{"invoice-select", ``},
	} {
		t.Run(tc.depositType, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusOK, tc.reply))
			p := newTestPegas(t, stub.URL, tc.depositType, 0)
			_, err := p.CreatePayment(context.Background(), PaymentRequest{OrderID: "o1", Amount: decimal.NewFromInt(10)})
			if !errors.Is(err, ErrMalformedReply) {
				t.Errorf("%s %s: err = %v, want ErrMalformedReply", tc.depositType, tc.reply, err)
				return
			}
			if pe := asPegasError(t, err); pe.Status != http.StatusOK || pe.Op != "deposit" {
				t.Errorf("%s: status %d op %q", tc.reply, pe.Status, pe.Op)
			}
		})
	}
}

func TestPegasCancel(t *testing.T) {
	stub := newProviderStub(t, stubJSON(http.StatusOK, `{"id":555}`))
	p := newTestPegas(t, stub.URL, "", 0)
	if err := p.CancelPayment(context.Background(), PaymentRef{ID: "555", OrderID: "order-9"}); err != nil {
		t.Fatal(err)
	}
	checkPegasRequest(t, stub.only(t), "/deposit/cancel", pegasQuery("order_id", "order-9", "id", "555"))

	for _, reply := range []string{`{}`, `{"id":""}`, `<html></html>`} {
		t.Run(reply, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusOK, reply))
			p := newTestPegas(t, stub.URL, "", 0)
			err := p.CancelPayment(context.Background(), PaymentRef{ID: "555", OrderID: "order-9"})
			if !errors.Is(err, ErrMalformedReply) {
				t.Errorf("%s: err = %v, want ErrMalformedReply", reply, err)
			}
		})
	}
}

func TestPegasWithdrawal(t *testing.T) {
	for _, tc := range []struct {
		method, to string
	}{
		{"wallet", "79990001122"},
		{"yandex", "410011112222333"},
		{"card", "4111111111111111"},
		{"nickname", "buyer_nick"},
		{"phone", "+79990001122"},
	} {
		t.Run(tc.method, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusOK, `{"id":9001,"commission":"2.50","errors":[]}`))
			p := newTestPegas(t, stub.URL, "", 0)
			got, err := p.Payout(context.Background(), PayoutRequest{
				Amount: decimal.RequireFromString("100.5"), To: tc.to, Method: tc.method,
			})
			if err != nil {
				t.Fatal(err)
			}
			checkPegasRequest(t, stub.only(t), "/withdrawal",
				pegasQuery("amount", "100.50", "number", tc.to, "method", tc.method))
			if got.ID != "9001" || !got.Commission.Equal(decimal.RequireFromString("2.5")) {
				t.Errorf("got %+v", got)
			}
		})
	}

	// Every optional parameter, and the comment's bounds, counted in
	// characters: 100 Cyrillic letters are 200 bytes and still fit.
	for _, comment := range []string{"abc", "выплата", strings.Repeat("я", 100), strings.Repeat("x", 100)} {
		t.Run(comment, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusOK, `{"id":"w-1","commission":0}`))
			p := newTestPegas(t, stub.URL, "", 0)
			got, err := p.Payout(context.Background(), PayoutRequest{
				Amount: decimal.NewFromInt(5), To: "79990001122", Method: "wallet",
				Comment: comment, OrderID: "payout-1", TTL: 90 * time.Second,
			})
			if err != nil {
				t.Fatalf("comment of %d characters: %v", utf8.RuneCountInString(comment), err)
			}
			checkPegasRequest(t, stub.only(t), "/withdrawal", pegasQuery("amount", "5.00", "number", "79990001122",
				"method", "wallet", "comment", comment, "order_id", "payout-1", "ttl", "2"))
			if got.ID != "w-1" || !got.Commission.IsZero() {
				t.Errorf("got %+v", got)
			}
		})
	}

	for _, reply := range []string{`{"commission":"1"}`, `{"id":"1","commission":"x"}`, `null`} {
		t.Run(reply, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusOK, reply))
			p := newTestPegas(t, stub.URL, "", 0)
			_, err := p.Payout(context.Background(), PayoutRequest{Amount: decimal.NewFromInt(5), To: "79990001122", Method: "wallet"})
			if !errors.Is(err, ErrMalformedReply) {
				t.Errorf("%s: err = %v, want ErrMalformedReply", reply, err)
			}
		})
	}
}

func TestPegasBalance(t *testing.T) {
	for reply, want := range map[string]string{
		`{"balance":203}`:         "203",
		`{"balance":"1500.75"}`:   "1500.75",
		`{"balance":0}`:           "0",
		`{"balance":"-12.5"}`:     "-12.5",
		`{"balance":1.5,"x":"y"}`: "1.5",
	} {
		t.Run(reply, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusOK, reply))
			p := newTestPegas(t, stub.URL, "", 0)
			got, err := p.Balance(context.Background())
			if err != nil {
				t.Fatalf("%s: %v", reply, err)
			}
			checkPegasRequest(t, stub.only(t), "/balance", pegasQuery())
			if !got.Total.Equal(decimal.RequireFromString(want)) || got.Wallets != nil {
				t.Errorf("%s: got %+v, want %s", reply, got, want)
			}
		})
	}
	for _, reply := range []string{`{}`, `{"balance":null}`, `{"balance":""}`, `{"balance":"lots"}`, `{"balance":{"a":1}}`, `[]`, `{"balance":"1e16"}`, `{"balance":1e300}`} {
		t.Run(reply, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusOK, reply))
			p := newTestPegas(t, stub.URL, "", 0)
			if _, err := p.Balance(context.Background()); !errors.Is(err, ErrMalformedReply) {
				t.Errorf("%s: err = %v, want ErrMalformedReply", reply, err)
			}
		})
	}
}

// pegasDocumentBytes is a document body with every byte value, so that any
// transformation on the way shows.
func pegasDocumentBytes(magic string, n int) []byte {
	b := []byte(magic)
	for i := 0; len(b) < n; i++ {
		b = append(b, byte(i*7+i/256))
	}
	return b
}

func TestPegasPaymentDocument(t *testing.T) {
	for _, tc := range []struct {
		format, contentType, magic string
		ref                        PaymentRef
		wantQuery                  map[string]string
	}{
		{"pdf", "application/pdf", "%PDF-1.7\n", PaymentRef{OrderID: "order-1", ID: "77"},
			pegasQuery("order_id", "order-1", "format", "pdf")},
		{"jpeg", "image/jpeg", "\xFF\xD8\xFF\xE0", PaymentRef{ID: "77"},
			pegasQuery("id", "77", "format", "jpeg")},
		{"pdf", "application/pdf; charset=binary", "%PDF-1.4\n", PaymentRef{ID: "78"},
			pegasQuery("id", "78", "format", "pdf")},
		// Sent as anonymous bytes: recognised by how the format starts.
		{"pdf", "application/octet-stream", "%PDF-1.7\n", PaymentRef{OrderID: "order-2"},
			pegasQuery("order_id", "order-2", "format", "pdf")},
		{"jpeg", "application/octet-stream", "\xFF\xD8\xFF\xDB", PaymentRef{OrderID: "order-3"},
			pegasQuery("order_id", "order-3", "format", "jpeg")},
	} {
		t.Run(tc.format+" "+tc.contentType, func(t *testing.T) {
			doc := pegasDocumentBytes(tc.magic, 200_000)
			stub := newProviderStub(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
				w.Header().Set("Content-Type", tc.contentType)
				w.Header().Set("Content-Length", fmt.Sprint(len(doc)))
				w.Write(doc)
			})
			p := newTestPegas(t, stub.URL, "", 0)
			got, err := p.PaymentDocument(context.Background(), tc.ref, tc.format)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(got.Body)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.Body.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
			checkPegasRequest(t, stub.only(t), "/transaction/receipt/file", tc.wantQuery)
			if !bytes.Equal(body, doc) {
				t.Errorf("document changed on the way: got %d bytes, want %d", len(body), len(doc))
			}
			if want := pegasDocumentTypes[tc.format]; got.ContentType != want {
				t.Errorf("ContentType = %q, want %q", got.ContentType, want)
			}
			if got.Length != int64(len(doc)) {
				t.Errorf("Length = %d, want %d", got.Length, len(doc))
			}
		})
	}
}

func TestPegasPaymentDocumentUnknownLength(t *testing.T) {
	doc := pegasDocumentBytes("%PDF-", 100)
	stub := newProviderStub(t, func(w http.ResponseWriter, _ *http.Request, _ int) {
		w.Header().Set("Content-Type", "application/pdf")
		w.WriteHeader(http.StatusOK)
		w.Write(doc[:50])
		w.(http.Flusher).Flush() // chunked: no Content-Length
		w.Write(doc[50:])
	})
	p := newTestPegas(t, stub.URL, "", 0)
	got, err := p.PaymentDocument(context.Background(), PaymentRef{OrderID: "o"}, "pdf")
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	body, _ := io.ReadAll(got.Body)
	if got.Length != -1 || !bytes.Equal(body, doc) {
		t.Errorf("Length %d, %d bytes", got.Length, len(body))
	}
}

func TestPegasPaymentDocumentWrongReply(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler stubAnswer
		kind    error
		code    string
	}{
		{"html on 200", stubReply(http.StatusOK, "text/html", "<html>maintenance</html>"), ErrMalformedReply, ""},
		{"jpeg for pdf", stubReply(http.StatusOK, "image/jpeg", "\xFF\xD8\xFF"), ErrMalformedReply, ""},
		{"octet-stream not pdf", stubReply(http.StatusOK, "application/octet-stream", "GIF89a"), ErrMalformedReply, ""},
		{"no type, not pdf", stubReply(http.StatusOK, "", "garbage"), ErrMalformedReply, ""},
		{"json without error", stubJSON(http.StatusOK, `{"id":"1"}`), ErrMalformedReply, ""},
		{"json error on 200", stubJSON(http.StatusOK, `{"errors":[{"code":"provider_error","message":"no receipt"}]}`), ErrRejected, "provider_error"},
		{"json not found on 200", stubJSON(http.StatusOK, `{"code":"resource_not_found","message":"no such transaction"}`), ErrNotFound, "resource_not_found"},
		{"404", stubJSON(http.StatusNotFound, `{"code":"resource_not_found","message":"not found"}`), ErrNotFound, "resource_not_found"},
		{"401", stubJSON(http.StatusUnauthorized, `{"error":{"code":"authorization_error"}}`), ErrAuth, "authorization_error"},
		{"500", stubJSON(http.StatusInternalServerError, `{"code":"internal_error"}`), ErrUnavailable, "internal_error"},
		{"502 html", stubReply(http.StatusBadGateway, "text/html", "<html><h1>502 Bad Gateway</h1></html>"), ErrUnavailable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, tc.handler)
			p := newTestPegas(t, stub.URL, "", 0)
			doc, err := p.PaymentDocument(context.Background(), PaymentRef{OrderID: "o"}, "pdf")
			if doc != nil || !errors.Is(err, tc.kind) {
				t.Errorf("%s: doc %v, err = %v, want %s", tc.name, doc, err, pegasKindOf(tc.kind))
				return
			}
			if pe := asPegasError(t, err); pe.Code != tc.code || pe.Op != "transaction/receipt/file" || pe.Body == "" {
				t.Errorf("%s: %+v", tc.name, pe)
			}
		})
	}
}

func TestPegasPaymentStatus(t *testing.T) {
	stub := newProviderStub(t, stubReply(http.StatusOK, "application/pdf", "%PDF-1.7\n..."))
	p := newTestPegas(t, stub.URL, "", 0)
	st, err := p.PaymentStatus(context.Background(), PaymentRef{OrderID: "order-5", ID: "55"})
	if err != nil || !st.Paid || st.Amount.Valid {
		t.Fatalf("200: status %+v, err %v; want paid", st, err)
	}
	checkPegasRequest(t, stub.only(t), "/transaction/receipt/file", pegasQuery("order_id", "order-5", "format", "pdf"))

	stub = newProviderStub(t, stubJSON(http.StatusNotFound, `{"code":"resource_not_found","message":"Resource not found"}`))
	p = newTestPegas(t, stub.URL, "", 0)
	st, err = p.PaymentStatus(context.Background(), PaymentRef{ID: "56"})
	if err != nil || st.Paid {
		t.Fatalf("404: status %+v, err %v; want not paid, no error", st, err)
	}
	checkPegasRequest(t, stub.only(t), "/transaction/receipt/file", pegasQuery("id", "56", "format", "pdf"))

	for _, tc := range []struct {
		handler stubAnswer
		kind    error
	}{
		{stubJSON(http.StatusUnauthorized, `{"code":"authorization_error"}`), ErrAuth},
		{stubJSON(http.StatusForbidden, `{"code":"access_denied"}`), ErrAuth},
		{stubJSON(http.StatusInternalServerError, `{"code":"internal_error"}`), ErrUnavailable},
		{stubJSON(http.StatusBadRequest, `{"code":"invalid_parameters"}`), ErrRejected},
		{stubReply(http.StatusOK, "text/html", "<html></html>"), ErrMalformedReply},
	} {
		t.Run(pegasKindOf(tc.kind), func(t *testing.T) {
			stub := newProviderStub(t, tc.handler)
			p := newTestPegas(t, stub.URL, "", 0)
			st, err := p.PaymentStatus(context.Background(), PaymentRef{OrderID: "o"})
			if st.Paid || !errors.Is(err, tc.kind) {
				t.Errorf("want %s: status %+v, err %v", pegasKindOf(tc.kind), st, err)
			}
		})
	}
}

// pegasErrorShapes writes one error in each shape the API may use.
var pegasErrorShapes = map[string]func(code, message, path string) string{
	"errors array": func(code, message, path string) string {
		return `{"errors":[` + pegasErrorObjectJSON(code, message, path) + `]}`
	},
	"error object": func(code, message, path string) string {
		return `{"error":` + pegasErrorObjectJSON(code, message, path) + `}`
	},
	"top level": func(code, message, path string) string {
		return pegasErrorObjectJSON(code, message, path)
	},
}

// pegasErrorObjectJSON is one error object, with a validation_error when
// path is set.
func pegasErrorObjectJSON(code, message, path string) string {
	obj := map[string]any{"code": code, "message": message}
	if path != "" {
		obj["validation_error"] = map[string]string{"path": path, "message": "field refused"}
	}
	b, _ := json.Marshal(obj)
	return string(b)
}

func TestPegasErrorMapping(t *testing.T) {
	for _, tc := range []struct {
		status        int
		code, path    string
		kind          error
		notDuplicate  bool
		notRejectedOK bool
	}{
		{http.StatusBadRequest, "parsing_error", "", ErrRejected, true, false},
		{http.StatusBadRequest, "invalid_parameters", "amount", ErrRejected, true, false},
		{http.StatusBadRequest, "invalid_parameters", "payment.amount", ErrRejected, true, false},
		{http.StatusBadRequest, "provider_error", "", ErrRejected, true, false},
		{http.StatusUnauthorized, "authorization_error", "", ErrAuth, true, true},
		{http.StatusForbidden, "access_denied", "", ErrAuth, true, true},
		{http.StatusNotFound, "resource_not_found", "", ErrNotFound, true, false},
		{http.StatusInternalServerError, "internal_error", "", ErrUnavailable, true, true},
		// A refusal of order_id that does not say the id is taken ("field
		// refused") is no duplicate: see TestPegasDuplicateNeedsEvidence.
		{http.StatusBadRequest, "invalid_parameters", "order_id", ErrRejected, true, false},
	} {
		for shapeName, shape := range pegasErrorShapes {
			name := fmt.Sprintf("%d %s %s (%s)", tc.status, tc.code, tc.path, shapeName)
			body := shape(tc.code, "the message of "+tc.code, tc.path)
			stub := newProviderStub(t, stubJSON(tc.status, body))
			p := newTestPegas(t, stub.URL, "", 0)
			_, err := p.CreatePayment(context.Background(), PaymentRequest{OrderID: "o1", Amount: decimal.NewFromInt(10)})
			if !errors.Is(err, tc.kind) {
				t.Errorf("%s: err = %v, want %s", name, err, pegasKindOf(tc.kind))
				continue
			}
			if tc.notDuplicate && errors.Is(err, ErrDuplicate) {
				t.Errorf("%s: is ErrDuplicate", name)
			}
			if tc.notRejectedOK && errors.Is(err, ErrRejected) {
				t.Errorf("%s: is ErrRejected", name)
			}
			pe := asPegasError(t, err)
			if pe.Status != tc.status || pe.Code != tc.code || pe.Path != tc.path || pe.Op != "deposit" {
				t.Errorf("%s: status %d code %q path %q op %q", name, pe.Status, pe.Code, pe.Path, pe.Op)
			}
			if !strings.Contains(pe.Message, "the message of "+tc.code) {
				t.Errorf("%s: message %q", name, pe.Message)
			}
			if tc.path != "" && !strings.Contains(pe.Message, "field refused") {
				t.Errorf("%s: message %q lacks the validation message", name, pe.Message)
			}
			if pe.Body != body {
				t.Errorf("%s: body %q, want %q", name, pe.Body, body)
			}
			if stub.count() != 1 {
				t.Errorf("%s: %d requests: a deposit must never be retried", name, stub.count())
			}
		}
	}
}

func TestPegasErrorMoreShapes(t *testing.T) {
	for _, tc := range []struct {
		name                string
		status              int
		contentType, body   string
		kind                error
		code, path, message string
	}{
		{"html 502", 502, "text/html", "<html><body><h1>502 Bad Gateway</h1></body></html>", ErrUnavailable, "", "", ""},
		{"html 503", 503, "text/html", "<html>Service Unavailable</html>", ErrUnavailable, "", "", ""},
		{"plain 500", 500, "text/plain", "oops", ErrUnavailable, "", "", ""},
		{"429", 429, "application/json", `{"message":"Too Many Attempts."}`, ErrUnavailable, "", "", "Too Many Attempts."},
		{"418", 418, "text/plain", "teapot", ErrRejected, "", "", ""},
		{"422", 422, "application/json", `{"message":"The given data was invalid.","errors":{"type":["The selected type is invalid."]}}`,
			ErrRejected, "", "type", "The selected type is invalid.; The given data was invalid."},
		{"malformed 200", 200, "application/json", `{"id":`, ErrMalformedReply, "", "", ""},
		{"html 200", 200, "text/html", `<html>hello</html>`, ErrMalformedReply, "", "", ""},
		{"errors on 200", 200, "application/json", `{"id":"1","url":"https://p.example/1","errors":["limit exceeded"]}`,
			ErrRejected, "", "", "limit exceeded"},
		{"errors object on 200", 200, "application/json", `{"errors":[{"code":"provider_error","message":"no route"}]}`,
			ErrRejected, "provider_error", "", "no route"},
		{"auth code on 200", 200, "application/json", `{"error":{"code":"authorization_error","message":"bad token"}}`,
			ErrAuth, "authorization_error", "", "bad token"},
	} {
		stub := newProviderStub(t, stubReply(tc.status, tc.contentType, tc.body))
		p := newTestPegas(t, stub.URL, "", 0)
		_, err := p.CreatePayment(context.Background(), PaymentRequest{OrderID: "o1", Amount: decimal.NewFromInt(10)})
		if !errors.Is(err, tc.kind) {
			t.Errorf("%s: err = %v, want %s", tc.name, err, pegasKindOf(tc.kind))
			continue
		}
		if tc.kind != ErrDuplicate && errors.Is(err, ErrDuplicate) {
			t.Errorf("%s: is ErrDuplicate", tc.name)
		}
		pe := asPegasError(t, err)
		if pe.Status != tc.status || pe.Code != tc.code || pe.Path != tc.path || pe.Message != tc.message || pe.Body == "" {
			t.Errorf("%s: status %d code %q path %q message %q body %q\nwant %d %q %q %q",
				tc.name, pe.Status, pe.Code, pe.Path, pe.Message, pe.Body, tc.status, tc.code, tc.path, tc.message)
		}
		if stub.count() != 1 {
			t.Errorf("%s: %d requests: a deposit must never be retried", tc.name, stub.count())
		}
	}
}

func TestPegasDuplicateOrderID(t *testing.T) {
	deposit := func(p *Pegas) error {
		_, err := p.CreatePayment(context.Background(), PaymentRequest{OrderID: "order-7", Amount: decimal.NewFromInt(10)})
		return err
	}
	payout := func(p *Pegas) error {
		_, err := p.Payout(context.Background(), PayoutRequest{Amount: decimal.NewFromInt(10), To: "79990001122",
			Method: "wallet", OrderID: "order-7"})
		return err
	}
	cancel := func(p *Pegas) error {
		return p.CancelPayment(context.Background(), PaymentRef{OrderID: "order-7", ID: "1"})
	}
	for _, tc := range []struct {
		name      string
		call      func(*Pegas) error
		status    int
		body      string
		duplicate bool
	}{
		{"path", deposit, 400, `{"code":"invalid_parameters","message":"Validation failed","validation_error":{"path":"order_id","message":"must be unique"}}`, true},
		{"path in errors", deposit, 400, `{"errors":[{"code":"invalid_parameters","validation_error":{"path":"order_id","message":"already used"}}]}`, true},
		{"laravel field map", deposit, 422, `{"message":"The given data was invalid.","errors":{"order_id":["The order id has already been taken."]}}`, true},
		{"message", deposit, 400, `{"error":{"code":"provider_error","message":"Transaction with this order_id already exists"}}`, true},
		{"message ru", deposit, 400, `{"errors":["Транзакция с таким order_id уже создана"]}`, true},
		{"message duplicate", deposit, 400, `{"code":"invalid_parameters","message":"Duplicate order_id"}`, true},
		{"on 200", deposit, 200, `{"errors":{"order_id":"The order id has already been taken."}}`, true},
		{"payout path", payout, 400, `{"error":{"code":"invalid_parameters","validation_error":{"path":"order_id","message":"taken"}}}`, true},
		{"payout message", payout, 400, `{"code":"provider_error","message":"order_id is not unique"}`, true},

		{"other path", deposit, 400, `{"code":"invalid_parameters","message":"order_id already exists","validation_error":{"path":"amount","message":"too small"}}`, false},
		{"message without order id", deposit, 400, `{"code":"provider_error","message":"already processing"}`, false},
		{"order id unknown", deposit, 400, `{"code":"provider_error","message":"order_id does not exist"}`, false},
		{"order id unknown ru", deposit, 400, `{"code":"provider_error","message":"order_id не существует"}`, false},
		{"path without evidence", deposit, 400, `{"errors":[{"code":"invalid_parameters","validation_error":{"path":"order_id","message":"x"}}]}`, false},
		{"cancel path", cancel, 400, `{"code":"invalid_parameters","validation_error":{"path":"order_id","message":"already cancelled"}}`, false},
		{"auth", deposit, 401, `{"code":"authorization_error","message":"order_id already exists"}`, false},
	} {
		stub := newProviderStub(t, stubJSON(tc.status, tc.body))
		p := newTestPegas(t, stub.URL, "", 0)
		err := tc.call(p)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		if errors.Is(err, ErrDuplicate) != tc.duplicate {
			t.Errorf("%s: ErrDuplicate = %v, want %v (err %v)", tc.name, !tc.duplicate, tc.duplicate, err)
		}
		if tc.duplicate && !errors.Is(err, ErrRejected) {
			t.Errorf("%s: a duplicate must also be ErrRejected", tc.name)
		}
		if tc.duplicate {
			if pe := asPegasError(t, err); pe.Kind != ErrDuplicate || pe.Status != tc.status {
				t.Errorf("%s: kind %v status %d", tc.name, pe.Kind, pe.Status)
			}
		}
	}
}

func TestPegasRefusesBeforeSending(t *testing.T) {
	stub := newProviderStub(t, stubJSON(http.StatusOK, `{"id":"1","url":"https://p.example/1","balance":1,"commission":0}`))
	p := newTestPegas(t, stub.URL, "", 0)
	ctx := context.Background()
	dec := decimal.RequireFromString
	good := PaymentRequest{OrderID: "o1", Amount: dec("10")}
	withReq := func(f func(*PaymentRequest)) func() error {
		return func() error {
			r := good
			f(&r)
			_, err := p.CreatePayment(ctx, r)
			return err
		}
	}
	goodPayout := PayoutRequest{Amount: dec("10"), To: "79990001122", Method: "wallet"}
	withPayout := func(f func(*PayoutRequest)) func() error {
		return func() error {
			r := goodPayout
			f(&r)
			_, err := p.Payout(ctx, r)
			return err
		}
	}
	document := func(ref PaymentRef, format string) func() error {
		return func() error {
			doc, err := p.PaymentDocument(ctx, ref, format)
			if doc != nil {
				doc.Body.Close()
			}
			return err
		}
	}
	for name, call := range map[string]func() error{
		"zero amount":            withReq(func(r *PaymentRequest) { r.Amount = decimal.Zero }),
		"negative amount":        withReq(func(r *PaymentRequest) { r.Amount = dec("-1") }),
		"three decimals":         withReq(func(r *PaymentRequest) { r.Amount = dec("10.001") }),
		"above maxAmount":        withReq(func(r *PaymentRequest) { r.Amount = maxAmount.Add(dec("0.01")) }),
		"missing order_id":       withReq(func(r *PaymentRequest) { r.OrderID = "" }),
		"order_id with space":    withReq(func(r *PaymentRequest) { r.OrderID = "a b" }),
		"order_id non-ascii":     withReq(func(r *PaymentRequest) { r.OrderID = "заказ" }),
		"order_id too long":      withReq(func(r *PaymentRequest) { r.OrderID = strings.Repeat("a", 65) }),
		"phone short":            withReq(func(r *PaymentRequest) { r.Phone = "+7999000" }),
		"phone long":             withReq(func(r *PaymentRequest) { r.Phone = "+7999000112233445" }),
		"phone letters":          withReq(func(r *PaymentRequest) { r.Phone = "+7999ABC1122" }),
		"phone dashes":           withReq(func(r *PaymentRequest) { r.Phone = "+7-999-000-11-22" }),
		"payer account spaces":   withReq(func(r *PaymentRequest) { r.PayerAccount = "7999 000" }),
		"negative ttl":           withReq(func(r *PaymentRequest) { r.TTL = -time.Minute }),
		"bad success_url":        withReq(func(r *PaymentRequest) { r.ReturnURL = "javascript:alert(1)" }),
		"relative success_url":   withReq(func(r *PaymentRequest) { r.ReturnURL = "/thanks" }),
		"payout zero":            withPayout(func(r *PayoutRequest) { r.Amount = decimal.Zero }),
		"payout three decimals":  withPayout(func(r *PayoutRequest) { r.Amount = dec("1.005") }),
		"payout method":          withPayout(func(r *PayoutRequest) { r.Method = "qw" }),
		"payout no method":       withPayout(func(r *PayoutRequest) { r.Method = "" }),
		"payout no number":       withPayout(func(r *PayoutRequest) { r.To = "" }),
		"payout number spaces":   withPayout(func(r *PayoutRequest) { r.To = "7999 000" }),
		"payout card letters":    withPayout(func(r *PayoutRequest) { r.Method, r.To = "card", "4111x11111111111" }),
		"payout card short":      withPayout(func(r *PayoutRequest) { r.Method, r.To = "card", "41111111" }),
		"payout phone bad":       withPayout(func(r *PayoutRequest) { r.Method, r.To = "phone", "12345" }),
		"comment 2 chars":        withPayout(func(r *PayoutRequest) { r.Comment = "ab" }),
		"comment 2 runes":        withPayout(func(r *PayoutRequest) { r.Comment = "яя" }),
		"comment 101 chars":      withPayout(func(r *PayoutRequest) { r.Comment = strings.Repeat("x", 101) }),
		"comment 101 runes":      withPayout(func(r *PayoutRequest) { r.Comment = strings.Repeat("я", 101) }),
		"comment control":        withPayout(func(r *PayoutRequest) { r.Comment = "pay\nout" }),
		"comment bad utf8":       withPayout(func(r *PayoutRequest) { r.Comment = "abc\xff" }),
		"payout order_id":        withPayout(func(r *PayoutRequest) { r.OrderID = "a b" }),
		"payout ttl":             withPayout(func(r *PayoutRequest) { r.TTL = -1 }),
		"cancel without id":      func() error { return p.CancelPayment(ctx, PaymentRef{OrderID: "o1"}) },
		"cancel without order":   func() error { return p.CancelPayment(ctx, PaymentRef{ID: "1"}) },
		"cancel bad id":          func() error { return p.CancelPayment(ctx, PaymentRef{OrderID: "o1", ID: "1 2"}) },
		"document format":        document(PaymentRef{OrderID: "o1"}, "png"),
		"document format jpg":    document(PaymentRef{OrderID: "o1"}, "jpg"),
		"document format upper":  document(PaymentRef{OrderID: "o1"}, "PDF"),
		"document no ref":        document(PaymentRef{}, "pdf"),
		"document bad order_id":  document(PaymentRef{OrderID: "a b"}, "pdf"),
		"document bad id":        document(PaymentRef{ID: "a\x00b"}, "pdf"),
		"status no ref":          func() error { _, err := p.PaymentStatus(ctx, PaymentRef{}); return err },
		"status bad order_id":    func() error { _, err := p.PaymentStatus(ctx, PaymentRef{OrderID: strings.Repeat("x", 65)}); return err },
		"status id with newline": func() error { _, err := p.PaymentStatus(ctx, PaymentRef{ID: "1\n2"}); return err },
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("%s: err = %v, want ErrInvalid", name, err)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field == "" {
				t.Errorf("%s: err = %v, want a *ValidationError naming the field", name, err)
			}
		})
	}
	if n := stub.count(); n != 0 {
		t.Errorf("stub got %d requests; local validation must refuse before sending", n)
	}
}

// pegasClosedEndpoint returns the base URL of a port that refuses
// connections: a listener opened and closed.
func pegasClosedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// checkPegasNoToken fails if the token, plain or URL-escaped, is in the
// error's text or in any field of its ProviderError.
func checkPegasNoToken(t *testing.T, name string, err error) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", name)
		return
	}
	texts := map[string]string{"Error()": err.Error()}
	var pe *ProviderError
	if errors.As(err, &pe) {
		texts["Provider"], texts["Op"] = pe.Provider, pe.Op
		texts["Code"], texts["Path"], texts["Message"], texts["Body"] = pe.Code, pe.Path, pe.Message, pe.Body
		if pe.Err != nil {
			texts["Err"] = pe.Err.Error()
		}
		if pe.Kind != nil {
			texts["Kind"] = pe.Kind.Error()
		}
	}
	for _, form := range []string{pegasTestToken, url.QueryEscape(pegasTestToken), url.PathEscape(pegasTestToken)} {
		for field, text := range texts {
			if strings.Contains(text, form) {
				t.Errorf("%s: %s carries the token: %q", name, field, text)
			}
		}
	}
}

func TestPegasErrorsCarryNoToken(t *testing.T) {
	escaped := url.QueryEscape(pegasTestToken)
	// echoQuery answers with the request's own URL, token included, in the
	// body and in the message.
	echoQuery := func(status int, contentType string) stubAnswer {
		return func(w http.ResponseWriter, r *http.Request, _ int) {
			w.Header().Set("Content-Type", contentType)
			w.WriteHeader(status)
			msg, _ := json.Marshal("bad request " + r.URL.String() + " token " + r.URL.Query().Get("token"))
			fmt.Fprintf(w, `{"errors":[{"code":%s,"message":%s,"validation_error":{"path":%s,"message":%s}}]}`, msg, msg, msg, msg)
		}
	}
	blocked := func(w http.ResponseWriter, r *http.Request, _ int) { <-r.Context().Done() }
	tokenJSON, _ := json.Marshal(pegasTestToken)

	calls := map[string]func(*Pegas) error{
		"deposit": func(p *Pegas) error {
			_, err := p.CreatePayment(context.Background(), PaymentRequest{OrderID: "o1", Amount: decimal.NewFromInt(10)})
			return err
		},
		"withdrawal": func(p *Pegas) error {
			_, err := p.Payout(context.Background(), PayoutRequest{Amount: decimal.NewFromInt(10), To: "79990001122", Method: "wallet"})
			return err
		},
		"cancel": func(p *Pegas) error {
			return p.CancelPayment(context.Background(), PaymentRef{OrderID: "o1", ID: "1"})
		},
		"balance": func(p *Pegas) error {
			_, err := p.Balance(context.Background())
			return err
		},
		"status": func(p *Pegas) error {
			_, err := p.PaymentStatus(context.Background(), PaymentRef{OrderID: "o1"})
			return err
		},
		"document": func(p *Pegas) error {
			doc, err := p.PaymentDocument(context.Background(), PaymentRef{OrderID: "o1"}, "jpeg")
			if doc != nil {
				doc.Body.Close()
			}
			return err
		},
	}
	failures := map[string]struct {
		handler stubAnswer
		kind    error
	}{
		"500 echo":       {stubReply(500, "text/plain", "error at "+pegasTestToken+" / "+escaped), ErrUnavailable},
		"html 502 echo":  {stubReply(502, "text/html", "<html>upstream "+escaped+" "+pegasTestToken+"</html>"), ErrUnavailable},
		"malformed echo": {stubReply(200, "application/json", `{"id":`+string(tokenJSON)+`,"balance":`+string(tokenJSON)+`,`), ErrMalformedReply},
		"401 echo": {stubJSON(401, `{"code":"authorization_error","message":"bad token `+pegasTestToken+`","token":"`+escaped+`"}`),
			ErrAuth},
		"400 echo message": {echoQuery(400, "application/json"), ErrRejected},
		"200 errors echo":  {echoQuery(200, "application/json"), ErrRejected},
		"200 wrong values": {stubJSON(200, `{"id":`+string(tokenJSON)+`,"url":`+string(tokenJSON)+`,"wallet":`+string(tokenJSON)+`,"commission":`+string(tokenJSON)+`,"balance":`+string(tokenJSON)+`}`),
			nil},
		"timeout": {blocked, ErrUnavailable},
	}
	for failure, f := range failures {
		t.Run(failure, func(t *testing.T) {
			stub := newProviderStub(t, f.handler)
			timeout := time.Duration(0)
			if failure == "timeout" {
				timeout = 20 * time.Millisecond
			}
			p := newTestPegas(t, stub.URL, "", timeout)
			for callName, call := range calls {
				name := failure + " " + callName
				err := call(p)
				if err == nil && f.kind == nil {
					continue // a reply that happens to be acceptable to this call
				}
				checkPegasNoToken(t, name, err)
				if f.kind != nil && !errors.Is(err, f.kind) {
					t.Errorf("%s: err = %v, want %s", name, err, pegasKindOf(f.kind))
				}
				if failure == "timeout" && !errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("%s: err = %v, want a deadline", name, err)
				}
			}
		})
	}

	p := newTestPegas(t, pegasClosedEndpoint(t), "", 0)
	for callName, call := range calls {
		err := call(p)
		checkPegasNoToken(t, "refused "+callName, err)
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("refused %s: err = %v, want ErrUnavailable", callName, err)
		}
		if pe := asPegasError(t, err); pe.Status != 0 || pe.Err == nil {
			t.Errorf("refused %s: %+v", callName, pe)
		}
	}
}

func TestPegasCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`pegas {
		token    {env.PEGAS_TOKEN}
		endpoint https://pegas.example/api/v1
		type     invoice-card
		timeout  5s
	}`)
	var p Pegas
	if err := p.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if p.Token != "{env.PEGAS_TOKEN}" || p.Endpoint != "https://pegas.example/api/v1" || p.Type != "invoice-card" ||
		p.Timeout != caddy.Duration(5*time.Second) {
		t.Errorf("got %+v", p)
	}
	for _, typ := range pegasDepositTypes {
		t.Run(typ, func(t *testing.T) {
			var p Pegas
			if err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser("pegas {\n type " + typ + "\n}")); err != nil || p.Type != typ {
				t.Errorf("type %s: %v, got %q", typ, err, p.Type)
			}
		})
	}
	var empty Pegas
	if err := empty.UnmarshalCaddyfile(caddyfile.NewTestDispenser("pegas")); err != nil || empty != (Pegas{}) {
		t.Errorf("bare pegas: %v, %+v", err, empty)
	}

	checkCaddyfileErrors(t, func(d *caddyfile.Dispenser) error { return new(Pegas).UnmarshalCaddyfile(d) }, map[string]string{
		"pegas {\n token a\n tokn b\n}":               `unrecognized subdirective "tokn"`,
		"pegas {\n secret a\n}":                       `unrecognized subdirective "secret"`,
		"pegas {\n token\n}":                          "wrong argument count",
		"pegas {\n endpoint\n}":                       "wrong argument count",
		"pegas {\n type\n}":                           "wrong argument count",
		"pegas {\n timeout\n}":                        "wrong argument count",
		"pegas {\n token a b\n}":                      "wrong argument count",
		"pegas {\n token a\n token b\n}":              "token given twice",
		"pegas {\n endpoint http://a\n endpoint b\n}": "endpoint given twice",
		"pegas {\n type wallet\n type yandex\n}":      "type given twice",
		"pegas {\n timeout 1s\n timeout 2s\n}":        "timeout given twice",
		"pegas {\n timeout soon\n}":                   "bad duration",
		"pegas {\n timeout 0s\n}":                     "more than zero",
		"pegas {\n type qiwi\n}":                      `unknown deposit type "qiwi"`,
		"pegas {\n type Invoice-Card\n}":              "unknown deposit type",
		"pegas {\n token \"\"\n}":                     "must not be empty",
		"pegas main":                                  "options go in a block",
		"pegas main {\n token a\n}":                   "options go in a block",
	})
}

func TestPegasProvision(t *testing.T) {
	t.Setenv("PEGAS_TEST_TOKEN", "env-token-1")
	t.Setenv("PEGAS_TEST_ENDPOINT", "https://pegas.example/api/v1")
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()

	p := &Pegas{Token: "{env.PEGAS_TEST_TOKEN}", Endpoint: "{env.PEGAS_TEST_ENDPOINT}"}
	if err := p.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer p.Cleanup()
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if p.token != "env-token-1" || p.api.base.String() != "https://pegas.example/api/v1" || p.depositType != "invoice-select" {
		t.Errorf("resolved token %q endpoint %s type %q", p.token, p.api.base, p.depositType)
	}
	if p.Token != "{env.PEGAS_TEST_TOKEN}" || p.Type != "" {
		t.Errorf("config changed to %+v; placeholders and defaults must stay out of the config", p)
	}
	if len(p.api.secrets) != 1 || p.api.secrets[0] != "env-token-1" {
		t.Errorf("the token is not the client's secret: %q", p.api.secrets)
	}

	for name, tc := range map[string]struct {
		p       Pegas
		wantErr string
	}{
		"no endpoint":        {Pegas{Token: "t"}, "endpoint is required"},
		"unset endpoint env": {Pegas{Token: "t", Endpoint: "{env.PEGAS_TEST_UNSET}"}, "endpoint {env.PEGAS_TEST_UNSET} is empty (is its environment variable set?)"},
		"bad type":           {Pegas{Token: "t", Endpoint: "https://pegas.example/api/v1", Type: "qiwi"}, "unknown deposit type"},
		"ftp endpoint":       {Pegas{Token: "t", Endpoint: "ftp://pegas.example/api/v1"}, "endpoint"},
		"no scheme":          {Pegas{Token: "t", Endpoint: "pegas.example/api/v1"}, "endpoint"},
		"query endpoint":     {Pegas{Token: "t", Endpoint: "https://pegas.example/api/v1?token=x"}, "endpoint"},
	} {
		t.Run(name, func(t *testing.T) {
			err := tc.p.Provision(ctx)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: Provision = %v, want %q", name, err, tc.wantErr)
			}
		})
	}
	for name, bad := range map[string]*Pegas{
		"no token":        {Endpoint: "https://pegas.example/api/v1"},
		"unset token env": {Token: "{env.PEGAS_TEST_UNSET}", Endpoint: "https://pegas.example/api/v1"},
	} {
		t.Run(name, func(t *testing.T) {
			if err := bad.Provision(ctx); err != nil {
				t.Fatalf("%s: Provision: %v", name, err)
			}
			if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "token is empty") {
				t.Errorf("%s: Validate = %v", name, err)
			}
			bad.Cleanup()
		})
	}
	if err := (&Pegas{Token: "t"}).Validate(); err == nil {
		t.Error("Validate without an endpoint passed")
	}
	if err := (&Pegas{}).Cleanup(); err != nil {
		t.Errorf("Cleanup of an unprovisioned module: %v", err)
	}
}

func TestPegasTTL(t *testing.T) {
	for ttl, want := range map[time.Duration]string{
		time.Nanosecond: "1", time.Second: "1", 59 * time.Second: "1", time.Minute: "1",
		61 * time.Second: "2", time.Hour: "60", time.Hour + time.Millisecond: "61",
		time.Duration(1<<63 - 1): "153722868",
	} {
		t.Run(ttl.String(), func(t *testing.T) {
			if got, err := pegasTTL(ttl); err != nil || got != want {
				t.Errorf("pegasTTL(%v) = %q, %v; want %q", ttl, got, err, want)
			}
		})
	}
}

// The documented replies and error bodies, the fuzzers' seeds.
var (
	pegasDepositSeeds = []string{
		`{"id":101,"commission":"1.50","wallet":"+79990001122","errors":[]}`,
		`{"id":"102","commission":0.5,"card":4111111111111111}`,
		`{"id":"103","commission":"0","url":"https://pay.pegas.example/i/103"}`,
		`{"id":"1","commission":"1e999999999","url":"https://pay.pegas.example/1"}`,
		`{"id":"1","url":"javascript:alert(1)"}`,
		`{"id":{"x":1}}`, `null`, `[]`, ``,
	}
	pegasErrorSeeds = []string{
		`{"errors":[{"code":"parsing_error","message":"bad json"}]}`,
		`{"error":{"code":"invalid_parameters","message":"Invalid","validation_error":{"path":"amount","message":"too small"}}}`,
		`{"code":"provider_error","message":"provider down"}`,
		`{"code":"invalid_parameters","validation_error":[{"path":"order_id","message":"taken"}]}`,
		`{"message":"The given data was invalid.","errors":{"order_id":["The order id has already been taken."]}}`,
		`{"errors":["Транзакция с таким order_id уже создана"]}`,
		`{"error":"Bad request"}`, `{"errors":[[["deep"]]]}`, `{"error":true}`, `{"errors":{}}`,
		`<html><h1>502 Bad Gateway</h1></html>`, `{"id":`, `{"message":["a",1,null,{"x":2}]}`,
	}
)

func FuzzPegasError(f *testing.F) {
	for _, seed := range append(pegasErrorSeeds, pegasDepositSeeds...) {
		f.Add([]byte(seed))
	}
	api, err := NewProviderClient("pegas", "https://pegas.example/api/v1", 0, pegasTestToken)
	if err != nil {
		f.Fatal(err)
	}
	p := &Pegas{api: api}
	f.Fuzz(func(t *testing.T, body []byte) {
		info := parsePegasError(body)
		_ = info.duplicate() // must not panic
		if parts := strings.Split(info.Message, "; "); info.Message != "" && len(parts) > 2*maxReplyItems*maxReplyItems {
			t.Errorf("%d messages collected", len(parts))
		}
		if info.Found && !json.Valid(body) {
			t.Errorf("error found in invalid JSON %q", body)
		}
		e := p.replyError(pegasOpDeposit, http.StatusBadRequest, body)
		for _, s := range []string{e.Code, e.Path, e.Message} {
			if !utf8.ValidString(s) || len(s) > maxReplyText+len("…") || strings.Contains(s, pegasTestToken) {
				t.Errorf("unclean error text %q", s)
			}
		}
		if !errors.Is(e, ErrRejected) {
			t.Errorf("a 400 is %v", e.Kind)
		}
	})
}

func FuzzPegasDeposit(f *testing.F) {
	for i, seed := range pegasDepositSeeds {
		f.Add([]byte(seed), uint8(i))
	}
	f.Fuzz(func(t *testing.T, reply []byte, typeIndex uint8) {
		depositType := pegasDepositTypes[int(typeIndex)%len(pegasDepositTypes)]
		p, err := parsePegasDeposit(reply, depositType)
		if err != nil {
			return
		}
		if validatePegasID("id", p.ID) != nil {
			t.Errorf("accepted id %q", p.ID)
		}
		if pegasWalletType(depositType) {
			if p.Wallet == "" && p.Card == "" {
				t.Errorf("%s deposit with nothing to pay to: %+v", depositType, p)
			}
		} else if !isHTTPURL(p.URL) {
			t.Errorf("%s deposit with URL %q", depositType, p.URL)
		}
		if p.URL != "" && !isHTTPURL(p.URL) {
			t.Errorf("accepted URL %q", p.URL)
		}
		if p.Commission.Abs().GreaterThan(maxPegasReplyAmount) {
			t.Errorf("commission %s", p.Commission)
		}
		_ = p.Commission.StringFixed(2)
	})
}

func FuzzPegasCancel(f *testing.F) {
	for _, seed := range []string{`{"id":555}`, `{"id":"abc"}`, `{}`, `{"id":""}`, `{"id":1e400}`, `{"id":"a b"}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		id, err := parsePegasCancel(reply)
		if err == nil && validatePegasID("id", id) != nil {
			t.Errorf("accepted id %q", id)
		}
	})
}

func FuzzPegasWithdrawal(f *testing.F) {
	for _, seed := range []string{`{"id":9001,"commission":"2.50","errors":[]}`, `{"id":"w-1","commission":0}`,
		`{"commission":"1"}`, `{"id":"1","commission":"x"}`, `{"id":"1","commission":"-1e-19"}`, `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		p, err := parsePegasWithdrawal(reply)
		if err != nil {
			return
		}
		if validatePegasID("id", p.ID) != nil {
			t.Errorf("accepted id %q", p.ID)
		}
		if p.Commission.Abs().GreaterThan(maxPegasReplyAmount) || p.Commission.Exponent() < -18 {
			t.Errorf("commission %s", p.Commission)
		}
	})
}

func FuzzPegasBalance(f *testing.F) {
	for _, seed := range []string{`{"balance":203}`, `{"balance":"1500.75"}`, `{"balance":null}`, `{"balance":"1e18"}`,
		`{"balance":"1e-400"}`, `{"balance":{"a":1}}`, `{}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		b, err := parsePegasBalance(reply)
		if err != nil {
			return
		}
		if b.Total.Abs().GreaterThan(maxPegasReplyAmount) || b.Wallets != nil {
			t.Errorf("balance %+v", b)
		}
		_ = b.Total.StringFixed(2)
	})
}

// TestPegasDuplicateNeedsEvidence: a refusal is read as "this order_id is
// already taken" only when the refused field is order_id (or none is named)
// and a message says so. Any other refusal of order_id, such as a format or
// length rule, is ErrRejected and never ErrDuplicate, in every error shape
// parsePegasError accepts: else the reconciler would take a refused deposit
// for a created invoice and leave the order pending with nothing to pay.
func TestPegasDuplicateNeedsEvidence(t *testing.T) {
	deposit := func(p *Pegas) error {
		_, err := p.CreatePayment(context.Background(), PaymentRequest{OrderID: "order-8", Amount: decimal.NewFromInt(10)})
		return err
	}
	payout := func(p *Pegas) error {
		_, err := p.Payout(context.Background(), PayoutRequest{Amount: decimal.NewFromInt(10), To: "79990001122",
			Method: "wallet", OrderID: "order-8"})
		return err
	}
	const (
		formatEN  = "The order id format is invalid."
		formatRU  = "Поле order id имеет ошибочный формат."
		lengthEN  = "The order id may not be greater than 32 characters."
		lengthRU  = "Количество символов в поле order id не может превышать 32."
		required  = "The order id field is required."
		takenEN   = "The order id has already been taken."
		existsRU  = "Такое значение поля order id уже существует."
		takenRU   = "Значение поля order id уже занято."
		notUnique = "The order id is not unique."
	)
	// validation is a top-level error object refusing path with message.
	validation := func(path, message string) string {
		return `{"code":"invalid_parameters","message":"Validation failed","validation_error":{"path":"` + path + `","message":"` + message + `"}}`
	}
	for _, tc := range []struct {
		name      string
		call      func(*Pegas) error
		status    int
		body      string
		path      string
		duplicate bool
	}{
		// A format, length or presence rule on order_id: refused, not a duplicate.
		{"top level format", deposit, 400, validation("order_id", formatEN), "order_id", false},
		{"top level format ru", deposit, 400, validation("order_id", formatRU), "order_id", false},
		{"top level length", deposit, 400, validation("order_id", lengthEN), "order_id", false},
		{"top level length ru", deposit, 400, validation("order_id", lengthRU), "order_id", false},
		{"top level required", deposit, 400, validation("order_id", required), "order_id", false},
		{"dotted path format", deposit, 400, validation("payment.order_id", formatEN), "payment.order_id", false},
		{"validation_error array format", deposit, 400,
			`{"code":"invalid_parameters","validation_error":[{"path":"order_id","message":"` + lengthEN + `"}]}`, "order_id", false},
		{"errors array format", deposit, 400,
			`{"errors":[{"code":"invalid_parameters","message":"Invalid","validation_error":{"path":"order_id","message":"` + formatEN + `"}}]}`, "order_id", false},
		{"error object format", deposit, 400,
			`{"error":{"code":"invalid_parameters","message":"` + formatRU + `","validation_error":{"path":"order_id","message":"` + formatRU + `"}}}`, "order_id", false},
		{"error object with path", deposit, 400,
			`{"errors":[{"path":"order_id","message":"` + lengthEN + `"}]}`, "order_id", false},
		{"laravel field map format", deposit, 422,
			`{"message":"The given data was invalid.","errors":{"order_id":["` + formatEN + `"]}}`, "order_id", false},
		{"laravel field map length ru", deposit, 422,
			`{"message":"` + lengthRU + `","errors":{"order_id":["` + lengthRU + `"]}}`, "order_id", false},
		{"field map on 200", deposit, 200, `{"errors":{"order_id":"` + formatEN + `"}}`, "order_id", false},
		{"field map with error object", deposit, 400, `{"errors":{"order_id":{"message":"` + formatEN + `"}}}`, "order_id", false},
		{"no message at all", deposit, 400, `{"code":"invalid_parameters","validation_error":{"path":"order_id"}}`, "order_id", false},
		{"message without words", deposit, 400, `{"errors":[{"code":"invalid_parameters","validation_error":{"path":"order_id","message":"x"}}]}`, "order_id", false},
		{"payout format", payout, 400, validation("order_id", formatEN), "order_id", false},
		{"payout field map length", payout, 422, `{"errors":{"order_id":["` + lengthEN + `"]}}`, "order_id", false},
		// "taken" said of another field, beside a format refusal of order_id.
		{"another field's message", deposit, 422,
			`{"errors":{"order_id":["` + formatEN + `"],"phone":["The phone has already been taken."]}}`, "order_id", false},
		// order_id taken, but another field refused too: the first request,
		// the same as this one, was refused as well.
		{"another field refused", deposit, 422,
			`{"errors":{"order_id":["` + takenEN + `"],"type":["The selected type is invalid."]}}`, "order_id", false},
		{"unknown order id", deposit, 400, validation("order_id", "The selected order id does not exist."), "order_id", false},
		{"unknown order id ru", deposit, 400, validation("order_id", "Несуществующий order id."), "order_id", false},

		// The evidence of a duplicate, in each shape and both languages.
		{"top level taken", deposit, 400, validation("order_id", takenEN), "order_id", true},
		{"top level exists ru", deposit, 400, validation("order_id", existsRU), "order_id", true},
		{"top level taken ru", deposit, 400, validation("order_id", takenRU), "order_id", true},
		{"top level not unique", deposit, 400, validation("order_id", notUnique), "order_id", true},
		{"dotted path taken", deposit, 400, validation("payment.order_id", takenEN), "payment.order_id", true},
		{"validation_error array taken", deposit, 400,
			`{"code":"invalid_parameters","validation_error":[{"path":"order_id","message":"already used"}]}`, "order_id", true},
		{"errors array taken", deposit, 400,
			`{"errors":[{"code":"invalid_parameters","message":"Invalid","validation_error":{"path":"order_id","message":"` + takenEN + `"}}]}`, "order_id", true},
		{"error object with path taken", deposit, 400, `{"errors":[{"path":"order_id","message":"duplicate"}]}`, "order_id", true},
		{"laravel field map taken", deposit, 422,
			`{"message":"The given data was invalid.","errors":{"order_id":["` + takenEN + `"]}}`, "order_id", true},
		{"laravel field map exists ru", deposit, 422,
			`{"message":"Данные неверны.","errors":{"order_id":["` + existsRU + `"]}}`, "order_id", true},
		{"field map with error object taken", deposit, 400, `{"errors":{"order_id":{"message":"` + takenEN + `"}}}`, "order_id", true},
		{"no path, message", deposit, 400, `{"error":"Order ID already exists"}`, "", true},
		{"no path, message ru", deposit, 400, `{"errors":["Транзакция с таким order_id уже создана"]}`, "", true},
		{"payout taken", payout, 400, validation("order_id", takenEN), "order_id", true},
		{"payout field map exists ru", payout, 422, `{"errors":{"order_id":["` + existsRU + `"]}}`, "order_id", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(tc.status, tc.body))
			p := newTestPegas(t, stub.URL, "", 0)
			err := tc.call(p)
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("err = %v, want ErrRejected", err)
			}
			if got := errors.Is(err, ErrDuplicate); got != tc.duplicate {
				t.Errorf("ErrDuplicate = %v, want %v (err %v)", got, tc.duplicate, err)
			}
			pe := asPegasError(t, err)
			if pe.Path != tc.path || pe.Status != tc.status || pe.Body != tc.body {
				t.Errorf("path %q status %d body %q; want %q %d %q", pe.Path, pe.Status, pe.Body, tc.path, tc.status, tc.body)
			}
			if stub.count() != 1 {
				t.Errorf("%d requests: a deposit or payout must never be retried", stub.count())
			}
		})
	}
}

// pegasRecoveryApp is an app on a fresh file storage whose account "card"
// is a Pegas client of the stub at base, holding order o (stored as given).
func pegasRecoveryApp(t *testing.T, base string, o *Order) *App {
	t.Helper()
	a := &App{logger: zap.NewNop(), now: time.Now}
	a.accounts = map[string]*account{"card": {name: "card", provider: "pegas", PaymentProvider: newTestPegas(t, base, "", 0)}}
	a.useStorage(&certmagic.FileStorage{Path: t.TempDir()})
	a.statuses = newStatusGate(0)
	if err := a.orders.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestPegasRecoveryNeedsDuplicateEvidence: the reconciler re-sends an
// interrupted deposit; a refusal of its order_id's format fails the order
// for the operator to see, and only a refusal saying the order id is taken
// recovers it as pending.
func TestPegasRecoveryNeedsDuplicateEvidence(t *testing.T) {
	const formatRefusal = `{"error":{"code":"invalid_parameters","message":"Validation failed",` +
		`"validation_error":{"path":"order_id","message":"The order id format is invalid."}}}`
	for _, tc := range []struct {
		name    string
		body    string
		expires time.Duration // from now
		want    OrderState
	}{
		// A refusal is no invoice: the order never becomes pending. It is
		// given up once its checkout could no longer store it.
		{"format refusal fails the order after its checkout", formatRefusal, -time.Hour, OrderFailed},
		{"format refusal leaves the order while its checkout may run", formatRefusal, time.Hour, OrderCreating},
		{"duplicate recovers the order", `{"error":{"code":"invalid_parameters","message":"Transaction with this order_id already exists",` +
			`"validation_error":{"path":"order_id","message":"The order id has already been taken."}}}`, time.Hour, OrderPending},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(http.StatusBadRequest, tc.body))
			o := &Order{ID: NewOrderID(), State: OrderCreating, Account: "card", Provider: "pegas",
				Amount: decimal.NewFromInt(350), CreatedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(tc.expires)}
			a := pegasRecoveryApp(t, stub.URL, o)
			a.reconciler.pass(context.Background())
			stored, err := a.orders.Load(context.Background(), o.ID)
			if err != nil {
				t.Fatal(err)
			}
			if stored.State != tc.want {
				t.Errorf("order is %v (%q), want %v", stored.State, stored.Error, tc.want)
			}
			if stub.count() != 1 {
				t.Errorf("%d deposits sent, want 1", stub.count())
			}
		})
	}
}

// TestPegasReceiptNeedsDocumentBytes: a 200 from the receipt-file probe is
// the document only when its bytes start the way the format does, whatever
// its Content-Type claims. A page or JSON served as application/pdf (a
// proxy's error page, a "pending" reply) is ErrMalformedReply, so
// PaymentStatus never reports such a deposit paid and PaymentDocument never
// streams it to the buyer as a receipt.
func TestPegasReceiptNeedsDocumentBytes(t *testing.T) {
	for _, tc := range []struct {
		name, format, contentType, body string
		paid                            bool
	}{
		{"html as pdf", "pdf", "application/pdf", "<!DOCTYPE html><html><body>Receipt not ready</body></html>", false},
		{"json as pdf", "pdf", "application/pdf", `{"status":"pending"}`, false},
		{"empty pdf", "pdf", "application/pdf", "", false},
		{"truncated magic", "pdf", "application/pdf", "%PDF", false},
		{"pdf as jpeg", "jpeg", "image/jpeg", "%PDF-1.7\n" + strings.Repeat("x", 100), false},
		{"html as jpeg", "jpeg", "image/jpeg", "<html>maintenance</html>", false},
		{"jpeg with charset", "jpeg", "image/jpeg; charset=binary", `{"status":"pending"}`, false},
		{"real pdf", "pdf", "application/pdf", string(pegasDocumentBytes("%PDF-1.7\n", 5000)), true},
		{"real jpeg", "jpeg", "image/jpeg", string(pegasDocumentBytes("\xFF\xD8\xFF\xE0", 5000)), true},
		{"real pdf as octet-stream", "pdf", "application/octet-stream", string(pegasDocumentBytes("%PDF-1.4\n", 5000)), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, stubReply(http.StatusOK, tc.contentType, tc.body))
			p := newTestPegas(t, stub.URL, "", 0)
			ref := PaymentRef{OrderID: "order-9", ID: "99"}

			doc, err := p.PaymentDocument(context.Background(), ref, tc.format)
			if !tc.paid {
				if doc != nil || !errors.Is(err, ErrMalformedReply) {
					t.Errorf("PaymentDocument: doc %v, err %v; want ErrMalformedReply", doc, err)
					if doc != nil {
						doc.Body.Close()
					}
				} else if pe := asPegasError(t, err); pe.Op != pegasOpReceipt || pe.Body == "" && tc.body != "" {
					t.Errorf("PaymentDocument: %+v", pe)
				}
			} else {
				if err != nil {
					t.Fatalf("PaymentDocument: %v", err)
				}
				body, err := io.ReadAll(doc.Body)
				doc.Body.Close()
				if err != nil || string(body) != tc.body {
					t.Errorf("PaymentDocument streamed %d bytes (err %v), want all %d, the peeked ones included", len(body), err, len(tc.body))
				}
				if doc.ContentType != pegasDocumentTypes[tc.format] {
					t.Errorf("ContentType %q", doc.ContentType)
				}
			}

			if tc.format != "pdf" {
				return // PaymentStatus always asks for the PDF
			}
			st, err := p.PaymentStatus(context.Background(), ref)
			if st.Paid != tc.paid {
				t.Errorf("PaymentStatus: paid = %v, want %v (err %v)", st.Paid, tc.paid, err)
			}
			if !tc.paid && !errors.Is(err, ErrMalformedReply) {
				t.Errorf("PaymentStatus: err %v, want ErrMalformedReply", err)
			}
		})
	}
}

// TestPegasPendingNotPaidByFakeDocument: the reconciler keeps a Pegas order
// pending, unpaid, while the receipt probe answers 200 application/pdf with
// a page that is not a PDF.
func TestPegasPendingNotPaidByFakeDocument(t *testing.T) {
	stub := newProviderStub(t, stubReply(http.StatusOK, "application/pdf", "<html><body>Please wait</body></html>"))
	o := &Order{ID: NewOrderID(), State: OrderPending, Account: "card", Provider: "pegas", Amount: decimal.NewFromInt(350),
		Payment: Payment{ID: "100001"}, CreatedAt: time.Now(), ExpiresAt: time.Now().Add(time.Hour)}
	a := pegasRecoveryApp(t, stub.URL, o)
	a.reconciler.pass(context.Background())
	stored, err := a.orders.Load(context.Background(), o.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.State != OrderPending {
		t.Errorf("order is %v, want pending: an HTML page is no receipt document", stored.State)
	}
}
