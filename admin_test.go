package kassa

// Tests of the admin API's routes (admin.go), in-process: its body reader,
// and its handlers' answers.

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzAdminBody feeds arbitrary bodies to the admin API's strict JSON
// reader, as a payout and as a cash operation. A refusal is a 400 (413 for
// a body over 64 KiB) RequestError with a safe message; an accepted body is
// one valid-UTF-8 JSON value whose fields read back the same.
func FuzzAdminBody(f *testing.F) {
	for _, s := range []string{
		`{"payment":"main","amount":"100","to":"79990000000","method":"qw","comment":"Зарплата"}`,
		`{"payment":"card","amount":"100.50","to":"4111111111111111","method":"card","order_id":"payout-1"}`,
		`{"amount":"500.00","cashbox_id":"da2bb850-63ef-47e4-8b45-7b5b841eaa9b"}`,
		`{"amount":"500.00","operation_id":"cash-1"}`,
		`{"amount":500}`,
		`{"amount":"1","nope":1}`,
		`{"amount":"1"}}`,
		`{"amount":"1"}]`,
		`{"amount":"1"} {"amount":"2"}`,
		`{"to":"` + "\xff\xfe" + `"}`,
		`{"comment":"a\r\nX-Injected: 1"}`,
		`{"payment":"\u202emain"}`,
		`null`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{new(payoutRequest), new(cashRequest)} {
			r := httptest.NewRequest(http.MethodPost, "/kassa/payouts", strings.NewReader(string(body)))
			err := decodeAdminBody(r, v)
			if err != nil {
				re := checkRequestError(t, err, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
				if (re.Status == http.StatusRequestEntityTooLarge) != (len(body) > maxAdminBody) {
					t.Fatalf("%d-byte body: status %d", len(body), re.Status)
				}
				continue
			}
			if len(body) > maxAdminBody {
				t.Fatalf("accepted a %d-byte body", len(body))
			}
			if !json.Valid(body) || !utf8.Valid(body) {
				t.Fatalf("accepted a body that is not one valid-UTF-8 JSON value: %q", body)
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := decodeAdminBody(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(again))), back); err != nil {
				t.Fatalf("its own encoding %s is refused: %v", again, err)
			}
			if !reflect.DeepEqual(v, back) {
				t.Fatalf("reads back as %+v, want %+v", back, v)
			}
		}
	})
}

// TestAdminPayoutWithoutKey: POST /kassa/payouts without a usable
// Idempotency-Key is a 400 that names the header, and sends nothing.
func TestAdminPayoutWithoutKey(t *testing.T) {
	ctx := context.Background()
	crystal := new(payoutProvider)
	a := payoutApp(t, crystal, new(payoutProvider))
	w := postPayout(ctx, a, "", crystalPayout)
	if w.Code != http.StatusBadRequest || errorCode(t, w) != "idempotency_key_required" ||
		!strings.Contains(w.Body.String(), "Idempotency-Key") {
		t.Errorf("no key: %d %s", w.Code, w.Body)
	}
	if w := postPayout(ctx, a, "bad\x01key", crystalPayout); w.Code != http.StatusBadRequest || errorCode(t, w) != "bad_idempotency_key" {
		t.Errorf("a bad key: %d %s", w.Code, w.Body)
	}
	if calls, _ := crystal.counts(); calls != 0 {
		t.Errorf("%d payouts sent without a usable key", calls)
	}
}

// TestAdminAnswers: the admin API's order routes through serveAdmin, as
// Caddy's admin endpoint calls them: the list, one order, cancel and
// confirm, and the errors of each.
func TestAdminAnswers(t *testing.T) {
	p := newLifeProvider("pegas")
	s := newLifeShop(t, p, nil, nil)
	toCancel, toConfirm := s.created("key-admin-cancel-01"), s.created("key-admin-confirm-1")
	paid := s.created("key-admin-paid-0001")
	p.pay(paid.Payment.ID)
	s.pass()
	const unknown = "AAAAAAAAAAAAAAAAAAAAAA"
	for _, tc := range []struct {
		name, method, target string
		status               int
		want                 string // in the answer's body
	}{
		{"orders", http.MethodGet, "/kassa/orders", http.StatusOK, `"id":"` + paid.ID + `"`},
		{"paid orders", http.MethodGet, "/kassa/orders?state=paid&limit=1", http.StatusOK, `"state":"paid"`},
		{"orders, bad limit", http.MethodGet, "/kassa/orders?limit=0", http.StatusBadRequest, `"code":"bad_limit"`},
		{"one order", http.MethodGet, "/kassa/orders/" + paid.ID, http.StatusOK, `"id":"` + paid.ID + `"`},
		{"unknown order", http.MethodGet, "/kassa/orders/" + unknown, http.StatusNotFound, `"code":"unknown_order"`},
		{"cancel", http.MethodPost, "/kassa/orders/" + toCancel.ID + "/cancel", http.StatusOK, `"state":"cancelled"`},
		{"cancel a paid order", http.MethodPost, "/kassa/orders/" + paid.ID + "/cancel", http.StatusConflict, `"code":"not_pending"`},
		{"cancel an unknown order", http.MethodPost, "/kassa/orders/" + unknown + "/cancel", http.StatusNotFound, `"code":"unknown_order"`},
		{"confirm", http.MethodPost, "/kassa/orders/" + toConfirm.ID + "/confirm", http.StatusOK, `"state":"paid"`},
		{"no such action", http.MethodPost, "/kassa/orders/" + paid.ID + "/nope", http.StatusNotFound, `"code":"not_found"`},
		{"wrong method", http.MethodDelete, "/kassa/orders", http.StatusMethodNotAllowed, `"code":"method_not_allowed"`},
		{"no such route", http.MethodGet, "/kassa/nowhere", http.StatusNotFound, `"code":"not_found"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if err := s.app.serveAdmin(w, httptest.NewRequest(tc.method, tc.target, nil)); err != nil {
				writeAdminError(w, err)
			}
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("%d %.300s; want %d, a body with %s", w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
}
