package kassa

// Tests of the admin API's routes (admin.go), in-process: its body reader,
// and its handlers' answers.

import (
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
