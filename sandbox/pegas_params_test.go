package sandbox

import (
	"net/http"
	"strings"
	"testing"
)

func TestPegasAuthAndParsing(t *testing.T) {
	s := newTestSandbox(t, nil)
	wantPegasError(t, s.get("/pegas/api/v1/balance"), http.StatusUnauthorized, "authorization_error", "")
	wantPegasError(t, s.get("/pegas/api/v1/balance?token=nope"), http.StatusUnauthorized, "authorization_error", "")
	wantPegasError(t, s.postJSON("/pegas/api/v1/balance", `{"token":"nope"}`), http.StatusUnauthorized, "authorization_error", "")
	wantPegasError(t, s.postJSON("/pegas/api/v1/balance", `[1,2]`), http.StatusBadRequest, "parsing_error", "")
	wantPegasError(t, s.postJSON("/pegas/api/v1/balance", `{"token":`), http.StatusBadRequest, "parsing_error", "")
	wantPegasError(t, s.postJSON("/pegas/api/v1/balance", `{"token":"sandbox-token"} {}`), http.StatusBadRequest, "parsing_error", "")
	wantPegasError(t, s.do(http.MethodPost, "/pegas/api/v1/balance", "token=sandbox-token",
		"Content-Type", "application/x-www-form-urlencoded"), http.StatusBadRequest, "parsing_error", "")
	wantPegasError(t, s.pegasGet("refund"), http.StatusNotFound, "resource_not_found", "")
	wantPegasError(t, s.get("/pegas/api/v2/balance"), http.StatusNotFound, "resource_not_found", "")
	wantJSON(t, s.postJSON("/pegas/api/v1/balance", `{"token":"sandbox-token"}`), http.StatusOK, `{"balance":0}`)
}

func TestPegasValidation(t *testing.T) {
	s := newTestSandbox(t, nil)
	deposit := []string{"amount", "100", "type", "invoice-qw", "order_id", "B-1"}
	with := func(base []string, kv ...string) []string {
		out := append([]string(nil), base...)
		for i := 0; i+1 < len(kv); i += 2 {
			found := false
			for j := 0; j+1 < len(out); j += 2 {
				if out[j] == kv[i] {
					out[j+1], found = kv[i+1], true
				}
			}
			if !found {
				out = append(out, kv[i], kv[i+1])
			}
		}
		return out
	}
	for _, tc := range []struct {
		name, route, path string
		params            []string
	}{
		{"unknown parameter", "deposit", "currency", with(deposit, "currency", "RUB")},
		{"missing amount", "deposit", "amount", with(deposit, "amount", "")},
		{"three decimals", "deposit", "amount", with(deposit, "amount", "1.005")},
		{"exponent", "deposit", "amount", with(deposit, "amount", "1e3")},
		{"zero", "deposit", "amount", with(deposit, "amount", "0")},
		{"negative", "deposit", "amount", with(deposit, "amount", "-1")},
		{"too large", "deposit", "amount", with(deposit, "amount", "1000000.01")},
		{"bad type", "deposit", "type", with(deposit, "type", "card")},
		{"missing order_id", "deposit", "order_id", with(deposit, "order_id", "")},
		{"long order_id", "deposit", "order_id", with(deposit, "order_id", strings.Repeat("x", 65))},
		{"bad phone", "deposit", "phone", with(deposit, "phone", "8-900-123")},
		{"bad ttl", "deposit", "ttl", with(deposit, "ttl", "1.5")},
		{"zero ttl", "deposit", "ttl", with(deposit, "ttl", "0")},
		{"bad success_url", "deposit", "success_url", with(deposit, "success_url", "shop.example")},
		{"repeated", "deposit", "amount", append(with(deposit), "amount", "200")},
		{"cancel without id", "deposit/cancel", "id", []string{"order_id", "B-1"}},
		{"cancel bad id", "deposit/cancel", "id", []string{"order_id", "B-1", "id", "x1"}},
		{"withdrawal bad method", "withdrawal", "method", []string{"amount", "1", "number", "7900", "method", "qw"}},
		{"withdrawal no number", "withdrawal", "number", []string{"amount", "1", "method", "card"}},
		{"short comment", "withdrawal", "comment", []string{"amount", "1", "number", "7900", "method", "card", "comment", "hi"}},
		{"long comment", "withdrawal", "comment", []string{"amount", "1", "number", "7900", "method", "card", "comment", strings.Repeat("я", 101)}},
		{"receipt no format", "transaction/receipt/file", "format", []string{"id", "100001"}},
		{"receipt bad format", "transaction/receipt/file", "format", []string{"id", "100001", "format", "png"}},
		{"receipt no id", "transaction/receipt/file", "id", []string{"format", "pdf"}},
		{"balance extra", "balance", "amount", []string{"amount", "1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantPegasError(t, s.pegasGet(tc.route, tc.params...), http.StatusBadRequest, "invalid_parameters", tc.path)
		})
	}
	t.Run("ill-typed JSON value", func(t *testing.T) {
		r := s.postJSON("/pegas/api/v1/deposit", `{"token":"sandbox-token","amount":true,"type":"wallet","order_id":"B-2"}`)
		wantPegasError(t, r, http.StatusBadRequest, "invalid_parameters", "amount")
	})
	t.Run("nothing created", func(t *testing.T) {
		if n := len(s.state().Pegas.Invoices); n != 0 {
			t.Errorf("%d invoices created by refused calls", n)
		}
	})
}
