package kassa

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// problemDetails is an ASP.NET validation reply, as Smart Cashier sends it.
const problemDetails = `{"type":"https://tools.ietf.org/html/rfc7231#section-6.5.1",` +
	`"title":"One or more validation errors occurred.","status":400,"traceId":"|8e2c1a-4b",` +
	`"errors":{"positions[0].quantity":["The field quantity must be between 1 and 2147483647."],` +
	`"cashboxId":["The cashboxId is not a GUID."]}}`

// TestReadReplyError reads each error shape the providers send (Pegas-kassa's
// and Smart Cashier's), and bodies that say nothing.
func TestReadReplyError(t *testing.T) {
	for _, tc := range []struct {
		name, body          string
		found               bool
		code, path, message string
	}{
		// Pegas-kassa's shapes.
		{"errors strings", `{"errors":["amount is too small","try more"]}`, true, "", "", "amount is too small; try more"},
		{"errors field map", `{"errors":{"amount":["The amount must be at least 10."]}}`, true, "", "amount", "The amount must be at least 10."},
		{"error text", `{"error":"Bad request"}`, true, "", "", "Bad request"},
		{"validation_error array",
			`{"code":"invalid_parameters","message":"Invalid","validation_error":[{"path":"phone","message":"bad phone"},{"path":"ttl","message":"x"}]}`,
			false, "invalid_parameters", "phone", "Invalid; bad phone"},
		{"validation_error object", `{"error":{"code":"invalid_parameters","message":"Invalid","validation_error":{"path":"amount","message":"too small"}}}`,
			true, "invalid_parameters", "amount", "Invalid; too small"},
		{"numeric code", `{"error":{"code":17,"message":"m"}}`, true, "17", "", "m"},
		{"message list", `{"message":["a","b"],"code":"provider_error"}`, false, "provider_error", "", "a; b"},
		{"message list of anything", `{"message":["a",1,null,{"x":2}]}`, false, "", "", "a; 1"},
		{"laravel field map", `{"message":"The given data was invalid.","errors":{"type":["The selected type is invalid."]}}`,
			true, "", "type", "The selected type is invalid.; The given data was invalid."},
		{"nested field map", `{"errors":{"payment":{"order_id":["taken"]}}}`, true, "", "payment.order_id", "taken"},
		{"repeated messages once", `{"errors":["same","same"],"message":"same"}`, true, "", "", "same"},
		{"errors beside data on 200", `{"id":"1","url":"https://p.example/1","errors":["limit exceeded"]}`, true, "", "", "limit exceeded"},
		{"empty object", `{}`, false, "", "", ""},
		{"empty errors", `{"id":"1","errors":[],"error":null}`, false, "", "", ""},
		{"error false", `{"error":false,"errors":{}}`, false, "", "", ""},

		// Smart Cashier's shapes: problem details, message, error.
		{"problem details", problemDetails, true, "", "positions[0].quantity",
			"The field quantity must be between 1 and 2147483647.; The cashboxId is not a GUID.; One or more validation errors occurred."},
		{"JSON path prefix", `{"title":"Bad","errors":{"$.positions[1].price":["not a number"]}}`, true, "", "positions[1].price", "not a number; Bad"},
		{"field with no message", `{"title":"Bad","errors":{"a":[],"b":"second"}}`, true, "", "b", "second; Bad"},
		{"only a field with no message", `{"title":"Bad","errors":{"a":[]}}`, true, "", "", "Bad"},
		{"errors with field", `{"errors":[{"field":"amount","message":"too big"}]}`, true, "", "amount", "too big"},
		{"errors strings, all kept", `{"errors":["first","second"]}`, true, "", "", "first; second"},
		{"message and numeric code", `{"message":"m","code":17}`, false, "17", "", "m"},
		{"error object", `{"error":{"message":"inner","code":"x1"}}`, true, "x1", "", "inner"},
		{"error beside code", `{"error":"invalid cashbox","code":"E42"}`, true, "E42", "", "invalid cashbox"},
		{"title and detail", `{"title":"Conflict","detail":"operation under way"}`, false, "", "", "Conflict; operation under way"},
		{"message not text", `{"message":{"deep":true}}`, false, "", "", ""},

		// Bodies that are not a JSON object say nothing: the error's Body
		// excerpt keeps them.
		{"JSON string", `"quoted"`, false, "", "", ""},
		{"JSON array", `[1,2]`, false, "", "", ""},
		{"plain text", "Bad Request\r\n", false, "", "", ""},
		{"broken JSON", "{not json", false, "", "", ""},
		{"HTML page", "<html><body><h1>502 Bad Gateway</h1></body></html>", false, "", "", ""},
		{"empty body", "", false, "", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := readReplyError([]byte(tc.body))
			if f.Found != tc.found || f.Code != tc.code || f.Path != tc.path || f.Message != tc.message {
				t.Errorf("got Found %v, Code %q, Path %q, Message %q\nwant %v, %q, %q, %q",
					f.Found, f.Code, f.Path, f.Message, tc.found, tc.code, tc.path, tc.message)
			}
		})
	}
}

// TestReadReplyErrorRefusals: every refused field and every message with
// its field is kept, beyond the messages Message shows, in document order.
func TestReadReplyErrorRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		refused    []string
		said       []replyMessage
	}{
		{"field map", `{"errors":{"order_id":["taken"],"phone":["bad","worse"]}}`,
			[]string{"order_id", "phone", "phone"},
			[]replyMessage{{"order_id", "taken"}, {"phone", "bad"}, {"phone", "worse"}}},
		{"validation_error array", `{"message":"Invalid","validation_error":[{"path":"order_id","message":"taken"},{"path":"ttl"}]}`,
			[]string{"order_id", "order_id", "ttl"},
			[]replyMessage{{"", "Invalid"}, {"order_id", "taken"}}},
		{"object path", `{"errors":[{"path":"a.b","message":"x"}]}`,
			[]string{"a.b", "a.b"}, []replyMessage{{"a.b", "x"}}},
		{"no field", `{"error":"Order ID already exists"}`, nil, []replyMessage{{"", "Order ID already exists"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := readReplyError([]byte(tc.body))
			if !slices.Equal(f.Refused, tc.refused) || !slices.Equal(f.Said, tc.said) {
				t.Errorf("Refused %q, Said %q\nwant %q, %q", f.Refused, f.Said, tc.refused, tc.said)
			}
		})
	}
}

func TestCleanReplyText(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"lines", "line one\nline\ttwo", "line one line two"},
		{"runs of space", "  a \r\n\x00 b  ", "a b"},
		{"invalid UTF-8", "a\xffb", "a\uFFFDb"},
		{"empty", " \n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := noSecrets.Clean(tc.in); got != tc.want {
				t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
	t.Run("long", func(t *testing.T) {
		got := noSecrets.Clean(strings.Repeat("ошибка ", 200))
		if !strings.HasSuffix(got, "…") || len(got) > maxReplyText+len("…") || len(got) < maxReplyText-utf8.UTFMax || !utf8.ValidString(got) {
			t.Errorf("%d bytes: %q", len(got), got)
		}
	})
}

func TestReplyStatusKind(t *testing.T) {
	for status, want := range map[int]error{
		http.StatusBadRequest: ErrRejected, http.StatusUnprocessableEntity: ErrRejected, http.StatusTeapot: ErrRejected,
		http.StatusConflict: ErrUnavailable, http.StatusTooEarly: ErrUnavailable, http.StatusUnauthorized: ErrAuth, http.StatusForbidden: ErrAuth,
		http.StatusNotFound: ErrNotFound, http.StatusRequestTimeout: ErrUnavailable, http.StatusTooManyRequests: ErrUnavailable,
		http.StatusInternalServerError: ErrUnavailable, http.StatusBadGateway: ErrUnavailable, http.StatusServiceUnavailable: ErrUnavailable,
	} {
		t.Run(http.StatusText(status), func(t *testing.T) {
			if got := replyStatusKind(status); !errors.Is(got, want) || got != want {
				t.Errorf("replyStatusKind(%d) = %v, want %v", status, got, want)
			}
		})
	}
}

func FuzzReplyError(f *testing.F) {
	for _, seed := range []string{
		problemDetails, `{"message":"m"}`, `{"error":"e"}`, `{"error":{"message":"inner","error":{"code":1}}}`,
		`{"errors":[{"path":"a.b","message":"x"}]}`, "plain text", "<html></html>", "", `"s"`, "\xff\xfe",
		`{"title":"t","errors":{"k":["v"],"k2":"v2"}}`, `{"errors":[[["deep"]]]}`, `{"error":true}`,
		`{"code":"invalid_parameters","validation_error":[{"path":"order_id","message":"taken"}]}`,
		`{"message":["a",1,null,{"x":2}]}`, `{"errors":{"a":{"b":{"c":{"d":"too deep"}}}}}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fault := readReplyError(body)
		again := readReplyError(body)
		if fault.Code != again.Code || fault.Path != again.Path || fault.Message != again.Message ||
			!slices.Equal(fault.Refused, again.Refused) || !slices.Equal(fault.Said, again.Said) {
			t.Fatal("not deterministic")
		}
		if fault.Found && !json.Valid(body) {
			t.Errorf("error found in invalid JSON %q", body)
		}
		if fault.Path != "" && (len(fault.Refused) == 0 || fault.Refused[0] != fault.Path) {
			t.Errorf("Path %q is not the first of Refused %q", fault.Path, fault.Refused)
		}
		for _, s := range []string{fault.Code, fault.Path, fault.Message} {
			c := noSecrets.Clean(s)
			if !utf8.ValidString(c) || len(c) > maxReplyText+len("…") ||
				strings.ContainsFunc(c, unicode.IsControl) || c != strings.TrimSpace(c) {
				t.Fatalf("bad cleaned text %q", c)
			}
		}
	})
}

// noSecrets is a client with no secrets: its Clean only flattens and cuts.
var noSecrets = &ProviderClient{}
