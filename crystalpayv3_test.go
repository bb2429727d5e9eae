package kassa

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/shopspring/decimal"
)

// Distinctive v3 secrets, searched for in every error.
const (
	crystalV3Secret = "S1-crystal-v3-7f3a9d"
	crystalV3Salt   = "SALT-crystal-v3-91c2e4"
)

// The documentation's example replies (CRYSTALPAY-V3.md).
const (
	crystalV3MeSeed       = `{"error":false,"errors":[],"id":123456789,"name":"examplename","status_level":2,"created_at":"2023-07-19 12:34:56"}`
	crystalV3BalancesSeed = `{"error":false,"errors":[],"items":{"BITCOIN":{"name":"Bitcoin","amount":"0.0005","currency":"BTC","amount_accuracy":8},"USDTTRC":{"name":"USDT TRC-20","amount":"100.1","currency":"USDT","amount_accuracy":6}}}`
	crystalV3CreateSeed   = `{"error":false,"errors":[],"id":"123456789_abcdefghij","url":"https://pay.crystalpay.io/?i=123456789_abcdefghij","type":"purchase","rub_amount":"100"}`
	crystalV3InfoSeed     = `{"error":false,"errors":[],"id":"123456789_abcdefghij","url":"https://pay.crystalpay.io/?i=123456789_abcdefghij","state":"notpayed","type":"topup","subtract_from":"amount","method":null,"required_method":null,"rub_amount":"8146","currency":"USD","amount":"100","amount_currency":"USD","initial_amount":"100","remaining_amount":"100","balance_amount":"100","commission_amount":"0","description":null,"redirect_url":"https://crystalpay.io","callback_url":null,"extra":null,"created_at":"2024-01-10 11:08:11","expired_at":"2024-01-11 11:08:11","final_at":null}`
	crystalV3PayoffSeed   = `{"error":false,"errors":[],"id":"123456789_dpWminAiaqwTcBOJVlFk","state":"payed","subtract_from":"balance","method":"ETHEREUM","amount_currency":"ETH","amount":"0.0005","rub_amount":"151","receive_amount":"0.0005","deduction_amount":"0.002","commission_amount":"0.0015","wallet":"examplewallet","message":"https://etherscan.io/tx/exampletx","callback_url":null,"extra":null,"created_at":"2024-01-01 11:11:11","final_at":"2024-01-01 11:12:11"}`
)

// sha1Hex is the lowercase hex SHA-1 of s: the tests' own signatures.
func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

// provisionCrystalV3 provisions a CrystalPay of api v3 (the default)
// against endpoint, changed by edit first, and returns its implementation.
func provisionCrystalV3(t *testing.T, endpoint string, edit func(*CrystalPay)) *crystalPayV3 {
	t.Helper()
	c := &CrystalPay{Login: "testkassa", Secret: crystalV3Secret, Salt: crystalV3Salt, Endpoint: endpoint,
		Timeout: caddy.Duration(time.Second)}
	if edit != nil {
		edit(c)
	}
	provisionModule(t, c)
	v3, ok := c.Provider().(*crystalPayV3)
	if !ok {
		t.Fatalf("api v3 gives %T", c.Provider())
	}
	return v3
}

// assertV3Request checks that r is a JSON POST to /v3/<op>/ whose body is
// exactly want (JSON types included: numbers stay numbers).
func assertV3Request(t *testing.T, r stubRequest, op, want string) {
	t.Helper()
	if r.Method != http.MethodPost || r.Path != "/v3/"+op+"/" || r.RawQuery != "" {
		t.Errorf("got %s %s?%s, want POST /v3/%s/", r.Method, r.Path, r.RawQuery, op)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", op, ct)
	}
	got, wantV := scDecode(t, r.Body), scDecode(t, []byte(want))
	if !reflect.DeepEqual(got, wantV) {
		t.Errorf("%s body:\n got %s\nwant %s", op, r.Body, want)
	}
}

func TestCrystalPayV3CreatePayment(t *testing.T) {
	for name, reply := range map[string]string{
		"rub_amount string": crystalV3CreateSeed,
		"rub_amount number": `{"error":false,"errors":[],"id":"123456789_abcdefghij","url":"https://pay.crystalpay.io/?i=123456789_abcdefghij","type":"purchase","rub_amount":100.0}`,
	} {
		t.Run(name, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(200, reply))
			c := provisionCrystalV3(t, stub.URL+"/v3/", func(c *CrystalPay) {
				c.Callback, c.Method, c.SubtractFrom = "https://shop.example/kassa/callback/main", "BITCOIN", "balance"
			})
			p, err := c.CreatePayment(context.Background(), PaymentRequest{
				OrderID: "order-1", Amount: decimal.RequireFromString("350.50"), ReturnURL: "https://shop.example/thanks?order=a&b=1",
				TTL: 29*time.Minute + 30*time.Second, Email: "buyer@example.com", Description: "Green tea",
			})
			if err != nil {
				t.Fatal(err)
			}
			if p.ID != "123456789_abcdefghij" || p.URL != "https://pay.crystalpay.io/?i=123456789_abcdefghij" {
				t.Errorf("payment = %+v", p)
			}
			assertV3Request(t, stub.only(t), "invoice/create", `{"auth_login":"testkassa","auth_secret":"`+crystalV3Secret+`",
				"amount":350.5,"type":"purchase","lifetime":30,"description":"Green tea","extra":"order-1",
				"redirect_url":"https://shop.example/thanks?order=a&b=1","callback_url":"https://shop.example/kassa/callback/main",
				"payer_details":{"email":"buyer@example.com"},"required_method":"BITCOIN","subtract_from":"balance"}`)
		})
	}
}

func TestCrystalPayV3CreatePaymentMinimal(t *testing.T) {
	for ttl, lifetime := range map[time.Duration]string{0: "30", 90 * time.Second: "2", time.Second: "1", 72 * time.Hour: "4320"} {
		t.Run(ttl.String(), func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(200, crystalV3CreateSeed))
			c := provisionCrystalV3(t, stub.URL+"/v3", nil)
			if _, err := c.CreatePayment(context.Background(), PaymentRequest{Amount: decimal.NewFromInt(100), TTL: ttl}); err != nil {
				t.Fatal(err)
			}
			assertV3Request(t, stub.only(t), "invoice/create", `{"auth_login":"testkassa","auth_secret":"`+crystalV3Secret+`",
				"amount":100,"type":"purchase","lifetime":`+lifetime+`}`)
		})
	}
}

func TestCrystalPayV3RefusesBeforeSending(t *testing.T) {
	stub := newProviderStub(t, stubJSON(200, crystalV3CreateSeed))
	c := provisionCrystalV3(t, stub.URL+"/v3/", nil)
	ctx := context.Background()
	for _, amount := range []string{"0", "-100", "100.001", "1000000001"} {
		_, err := c.CreatePayment(ctx, PaymentRequest{Amount: decimal.RequireFromString(amount)})
		var ve *ValidationError
		if !errors.As(err, &ve) || ve.Field != "amount" {
			t.Errorf("invoice of %s: err = %v, want a ValidationError on amount", amount, err)
		}
		if _, err := c.CreatePayout(ctx, PayoutRequest{Amount: decimal.RequireFromString(amount), To: "w", Method: "LZTMARKET"}); !errors.Is(err, ErrInvalid) {
			t.Errorf("payout of %s: err = %v, want ErrInvalid", amount, err)
		}
	}
	if _, err := c.CreatePayment(ctx, PaymentRequest{Amount: decimal.NewFromInt(1), ReturnURL: "javascript:alert(1)"}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad redirect: err = %v", err)
	}
	for _, bad := range []PayoutRequest{
		{Amount: decimal.NewFromInt(1), To: "", Method: "LZTMARKET"},
		{Amount: decimal.NewFromInt(1), To: "a b", Method: "LZTMARKET"},
		{Amount: decimal.NewFromInt(1), To: "w", Method: ""},
	} {
		if _, err := c.CreatePayout(ctx, bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("payout %+v: err = %v, want ErrInvalid", bad, err)
		}
	}
	for _, id := range []string{"", "a b"} {
		if _, err := c.SubmitPayout(ctx, id); !errors.Is(err, ErrInvalid) {
			t.Errorf("submit %q: err = %v", id, err)
		}
		if _, err := c.PayoutStatus(ctx, id); !errors.Is(err, ErrInvalid) {
			t.Errorf("payoff/info %q: err = %v", id, err)
		}
	}
	if _, err := c.PaymentStatus(ctx, PaymentRef{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("invoice/info without id: err = %v", err)
	}

	unsalted := provisionCrystalV3(t, stub.URL+"/v3/", func(c *CrystalPay) { c.Salt = "" })
	for name, call := range map[string]func() error{
		"create": func() error {
			_, err := unsalted.CreatePayout(ctx, PayoutRequest{Amount: decimal.NewFromInt(1), To: "w", Method: "LZTMARKET"})
			return err
		},
		"submit": func() error { _, err := unsalted.SubmitPayout(ctx, "1_x"); return err },
		"cancel": func() error { _, err := unsalted.CancelPayout(ctx, "1_x"); return err },
		"payout": func() error {
			_, err := unsalted.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(1), To: "w", Method: "LZTMARKET"})
			return err
		},
	} {
		var ve *ValidationError
		if err := call(); !errors.As(err, &ve) || ve.Field != "salt" {
			t.Errorf("%s without salt: err = %v, want a ValidationError on salt", name, err)
		}
	}
	if n := stub.count(); n != 0 {
		t.Errorf("%d requests reached the provider, want 0", n)
	}
}

func TestCrystalPayV3PaymentStatus(t *testing.T) {
	rub := func(state, amount, remaining string) string {
		return `{"error":false,"errors":[],"id":"1_x","state":"` + state + `","currency":"RUB","amount_currency":"RUB",` +
			`"amount":` + amount + `,"initial_amount":` + amount + `,"remaining_amount":` + remaining + `,"balance_amount":"340","commission_amount":"10.5","extra":"o-1"}`
	}
	for _, tc := range []struct {
		name, reply     string
		paid            bool
		amount, problem string
	}{
		{"docs example", crystalV3InfoSeed, false, "", ""},
		{"payed", rub("payed", `"350.5"`, `"0"`), true, "350.5", ""},
		{"payed v2 numbers", rub("payed", `350.5`, `0`), true, "350.5", ""},
		{"payed partly remaining", rub("payed", `"350"`, `"50"`), true, "300", ""},
		{"payed without remaining", rub("payed", `"350"`, `null`), true, "350", ""},
		{"payed v2 empty remaining", rub("payed", `"350"`, `""`), true, "350", ""},
		{"payed without amounts", `{"error":false,"errors":[],"state":"payed","amount":null,"remaining_amount":null}`, true, "", ""},
		{"payed in dollars", strings.Replace(crystalV3InfoSeed, `"notpayed"`, `"payed"`, 1), true, "", ""},
		{"payed old example, rub_amount only", `{"error":false,"errors":[],"state":"payed","rub_amount":"700","remaining_amount":"0"}`, true, "700", ""},
		{"processing", rub("processing", `"350"`, `"350"`), false, "", ""},
		{"failed", rub("failed", `"350"`, `"350"`), false, "", ""},
		{"unavailable", rub("unavailable", `"350"`, `"350"`), false, "", ""},
		{"wrongamount", rub("wrongamount", `"350"`, `"50"`), false, "", "CrystalPAY: wrong amount paid (RUB 300 of 350)"},
		{"wrongamount bare", `{"error":false,"errors":[],"state":"wrongamount"}`, false, "", "CrystalPAY: wrong amount paid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(200, tc.reply))
			c := provisionCrystalV3(t, stub.URL+"/v3/", nil)
			st, err := c.PaymentStatus(context.Background(), PaymentRef{ID: "123456789_abcdefghij", OrderID: "o-1"})
			if err != nil {
				t.Fatal(err)
			}
			if st.Paid != tc.paid || st.Problem != tc.problem || st.Amount.Valid != (tc.amount != "") ||
				(tc.amount != "" && !st.Amount.Decimal.Equal(decimal.RequireFromString(tc.amount))) {
				t.Errorf("status = %+v, want paid %v amount %q problem %q", st, tc.paid, tc.amount, tc.problem)
			}
			assertV3Request(t, stub.only(t), "invoice/info",
				`{"auth_login":"testkassa","auth_secret":"`+crystalV3Secret+`","id":"123456789_abcdefghij"}`)
		})
	}
	for _, reply := range []string{
		`{"error":false,"errors":[],"state":"expired"}`,
		`{"error":false,"errors":[]}`,
		`{"error":false,"errors":[],"state":"payed","amount":"-5"}`,
		`{"error":false,"errors":[],"state":"payed","amount":"lots"}`,
		`{"error":false,"errors":[],"state":"payed","amount":"100","remaining_amount":"150"}`,
	} {
		t.Run(reply, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(200, reply))
			c := provisionCrystalV3(t, stub.URL+"/v3/", nil)
			if _, err := c.PaymentStatus(context.Background(), PaymentRef{ID: "1_x"}); !errors.Is(err, ErrMalformedReply) {
				t.Errorf("err = %v, want ErrMalformedReply", err)
			}
		})
	}
}

func TestCrystalPayV3Balance(t *testing.T) {
	for _, tc := range []struct {
		name, list string
		total      string
		wallets    map[string]string
	}{
		{"docs example", crystalV3BalancesSeed, "0", map[string]string{"BITCOIN": "0.0005", "USDTTRC": "100.1"}},
		{"rubles", `{"error":false,"errors":[],"items":{"LZTMARKET":{"name":"LZT","amount":"100.50","currency":"RUB","amount_accuracy":2},` +
			`"CARDRUBP2P":{"amount":200,"currency":"RUB"},"BITCOIN":{"amount":"0.0005","currency":"BTC"},"SBP":{"amount":null,"currency":"RUB"}}}`,
			"300.5", map[string]string{"LZTMARKET": "100.5", "CARDRUBP2P": "200", "BITCOIN": "0.0005"}},
		{"empty", `{"error":false,"errors":[],"items":[]}`, "0", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, func(w http.ResponseWriter, r *http.Request, n int) {
				reply := crystalV3MeSeed
				if r.URL.Path == "/v3/balance/list/" {
					reply = tc.list
				}
				stubJSON(200, reply)(w, r, n)
			})
			c := provisionCrystalV3(t, stub.URL+"/v3/", nil)
			b, err := c.Balance(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if b.Account != "examplename" || !b.Total.Equal(decimal.RequireFromString(tc.total)) || len(b.Wallets) != len(tc.wallets) {
				t.Errorf("balance = %+v", b)
			}
			for method, amount := range tc.wallets {
				if !b.Wallets[method].Equal(decimal.RequireFromString(amount)) {
					t.Errorf("wallet %s = %s, want %s", method, b.Wallets[method], amount)
				}
			}
			reqs := stub.requests()
			if len(reqs) != 2 {
				t.Fatalf("%d requests, want me/info and balance/list", len(reqs))
			}
			auth := `{"auth_login":"testkassa","auth_secret":"` + crystalV3Secret + `"}`
			assertV3Request(t, reqs[0], "me/info", auth)
			assertV3Request(t, reqs[1], "balance/list", auth)
		})
	}

	// A wrong login fails at me/info, as a refusal of the credentials.
	stub := newProviderStub(t, stubJSON(200, `{"error":true,"errors":["Касса не найдена"]}`))
	c := provisionCrystalV3(t, stub.URL+"/v3/", nil)
	var pe *ProviderError
	if _, err := c.Balance(context.Background()); !errors.Is(err, ErrAuth) || !errors.As(err, &pe) || pe.Op != "me/info" ||
		pe.Message != "Касса не найдена" || stub.count() != 1 {
		t.Errorf("wrong login: err = %v after %d calls, want ErrAuth from me/info only", err, stub.count())
	}
}

func TestCrystalPayV3Errors(t *testing.T) {
	for _, tc := range []struct {
		name          string
		status        int
		reply         string
		kind          error
		path, message string
	}{
		{"field required", 200, "{\"error\":true,\"errors\":[\"`amount` field is required\"]}", ErrRejected, "amount", "`amount` field is required"},
		{"two errors", 200, "{\"error\":true,\"errors\":[\"`lifetime` is too long\",\"`amount` is too small\"]}", ErrRejected, "lifetime", "`lifetime` is too long; `amount` is too small"},
		{"no text", 200, `{"error":true,"errors":[]}`, ErrRejected, "", ""},
		{"bad secret", 200, `{"error":true,"errors":["Invalid auth_secret"]}`, ErrAuth, "", "Invalid auth_secret"},
		{"bad login field", 200, "{\"error\":true,\"errors\":[\"`auth_login` is invalid\"]}", ErrAuth, "auth_login", "`auth_login` is invalid"},
		{"russian auth", 200, `{"error":true,"errors":["Неверный логин или секретный ключ"]}`, ErrAuth, "", "Неверный логин или секретный ключ"},
		{"cash register not found", 200, `{"error":true,"errors":["Cassa not found"]}`, ErrAuth, "", "Cassa not found"},
		{"invoice not found", 200, `{"error":true,"errors":["Invoice not found"]}`, ErrNotFound, "", "Invoice not found"},
		{"russian not found", 200, `{"error":true,"errors":["Инвойс не найден"]}`, ErrNotFound, "", "Инвойс не найден"},
		{"no money is no auth error", 200, `{"error":true,"errors":["Недостаточно средств на балансе кассы"]}`, ErrRejected, "", "Недостаточно средств на балансе кассы"},
		{"envelope on 400", 400, "{\"error\":true,\"errors\":[\"`type` is invalid\"]}", ErrRejected, "type", "`type` is invalid"},
		{"envelope on 401", 401, `{"error":true,"errors":["Authorization failed"]}`, ErrAuth, "", "Authorization failed"},
		{"envelope on 503", 503, `{"error":true,"errors":["maintenance"]}`, ErrUnavailable, "", ""},
		{"server error", 500, "<html>500</html>", ErrUnavailable, "", ""},
		{"rate limited", 429, "Too Many Requests", ErrUnavailable, "", ""},
		{"html page", 200, "<html>maintenance</html>", ErrMalformedReply, "", ""},
		{"not found page", 404, "404 page not found", ErrMalformedReply, "", ""},
		{"no error field", 200, `{"id":"1_x","url":"https://pay.example/?i=1"}`, ErrMalformedReply, "", ""},
		{"error not a boolean", 200, `{"error":"yes","errors":[]}`, ErrMalformedReply, "", ""},
		{"a list", 200, `[]`, ErrMalformedReply, "", ""},
		{"no id", 200, `{"error":false,"errors":[],"url":"https://pay.example/?i=1"}`, ErrMalformedReply, "", ""},
		{"bad url", 200, `{"error":false,"errors":[],"id":"1_x","url":"javascript:alert(1)"}`, ErrMalformedReply, "", ""},
		{"success on a redirect", 302, crystalV3CreateSeed, ErrMalformedReply, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(tc.status, tc.reply))
			c := provisionCrystalV3(t, stub.URL+"/v3/", nil)
			_, err := c.CreatePayment(context.Background(), PaymentRequest{Amount: decimal.NewFromInt(100)})
			var pe *ProviderError
			if !errors.Is(err, tc.kind) || !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a ProviderError of kind %v", err, tc.kind)
			}
			if pe.Provider != "crystalpay" || pe.Op != "invoice/create" || pe.Path != tc.path || pe.Message != tc.message {
				t.Errorf("error = %+v\nwant path %q message %q", pe, tc.path, tc.message)
			}
			if tc.status != 200 && pe.Status != tc.status {
				t.Errorf("status = %d, want %d", pe.Status, tc.status)
			}
			if stub.count() != 1 {
				t.Errorf("%d requests for one invoice/create", stub.count())
			}
		})
	}
}

func TestCrystalPayV3Payouts(t *testing.T) {
	stub := newProviderStub(t, func(w http.ResponseWriter, r *http.Request, n int) {
		switch r.URL.Path {
		case "/v3/payoff/create/":
			stubJSON(200, `{"error":false,"errors":[],"id":"1_payoff","subtract_from":"balance","method":"LZTMARKET","amount_currency":"RUB",`+
				`"amount":"100.5","rub_amount":"100.5","receive_amount":"100.5","deduction_amount":"101.5","commission_amount":"1","wallet":"wallet-1"}`)(w, r, n)
		case "/v3/payoff/submit/":
			stubJSON(200, `{"error":false,"errors":[],"id":"1_payoff","state":"processing","commission_amount":"1"}`)(w, r, n)
		case "/v3/payoff/cancel/":
			stubJSON(200, `{"error":false,"errors":[],"id":"1_payoff","state":"cancelled","commission":0}`)(w, r, n)
		default:
			stubJSON(200, crystalV3PayoffSeed)(w, r, n)
		}
	})
	c := provisionCrystalV3(t, stub.URL+"/v3/", nil)
	ctx := context.Background()
	auth := `"auth_login":"testkassa","auth_secret":"` + crystalV3Secret + `"`

	p, err := c.CreatePayout(ctx, PayoutRequest{Amount: decimal.RequireFromString("100.50"), To: "wallet-1", Method: "LZTMARKET", OrderID: "payout-7"})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "1_payoff" || p.State != PayoutCreated || !p.Commission.Equal(decimal.NewFromInt(1)) {
		t.Errorf("created = %+v", p)
	}
	createSig := sha1Hex("100.5:LZTMARKET:wallet-1:" + crystalV3Salt)
	assertV3Request(t, stub.last(t), "payoff/create", `{`+auth+`,"signature":"`+createSig+`","amount":100.5,"amount_currency":"RUB",`+
		`"method":"LZTMARKET","wallet":"wallet-1","subtract_from":"balance","extra":"payout-7"}`)

	idSig := sha1Hex("1_payoff:" + crystalV3Salt)
	if p, err = c.SubmitPayout(ctx, "1_payoff"); err != nil || p.State != PayoutProcessing {
		t.Errorf("submit = %+v, %v", p, err)
	}
	assertV3Request(t, stub.last(t), "payoff/submit", `{`+auth+`,"id":"1_payoff","signature":"`+idSig+`"}`)
	if p, err = c.CancelPayout(ctx, "1_payoff"); err != nil || p.State != PayoutCanceled || !p.Commission.IsZero() {
		t.Errorf("cancel = %+v, %v", p, err)
	}
	assertV3Request(t, stub.last(t), "payoff/cancel", `{`+auth+`,"id":"1_payoff","signature":"`+idSig+`"}`)
	if p, err = c.PayoutStatus(ctx, "123456789_dpWminAiaqwTcBOJVlFk"); err != nil || p.State != PayoutPaid ||
		!p.Commission.Equal(decimal.RequireFromString("0.0015")) || p.ID != "123456789_dpWminAiaqwTcBOJVlFk" {
		t.Errorf("info = %+v, %v", p, err)
	}
	assertV3Request(t, stub.last(t), "payoff/info", `{`+auth+`,"id":"123456789_dpWminAiaqwTcBOJVlFk"}`)

	// One step: create, then submit; a configured subtract_from goes with it.
	amountFirst := provisionCrystalV3(t, stub.URL+"/v3/", func(c *CrystalPay) { c.SubtractFrom = "amount" })
	before := stub.count()
	if p, err = amountFirst.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(7), To: "79990000000", Method: "SBP"}); err != nil ||
		p.State != PayoutProcessing || p.ID != "1_payoff" {
		t.Errorf("payout = %+v, %v", p, err)
	}
	reqs := stub.requests()[before:]
	if len(reqs) != 2 {
		t.Fatalf("one-step payout made %d calls, want create and submit", len(reqs))
	}
	assertV3Request(t, reqs[0], "payoff/create", `{`+auth+`,"signature":"`+sha1Hex("7:SBP:79990000000:"+crystalV3Salt)+
		`","amount":7,"amount_currency":"RUB","method":"SBP","wallet":"79990000000","subtract_from":"amount"}`)
	assertV3Request(t, reqs[1], "payoff/submit", `{`+auth+`,"id":"1_payoff","signature":"`+idSig+`"}`)
}

func TestCrystalPayV3PayoutStates(t *testing.T) {
	for state, want := range map[string]PayoutState{"created": PayoutCreated, "processing": PayoutProcessing, "payed": PayoutPaid,
		"failed": PayoutFailed, "canceled": PayoutCanceled, "cancelled": PayoutCanceled} {
		p, err := parseCrystalPayV3Payoff([]byte(`{"error":false,"id":"1_p","state":"`+state+`"}`), "")
		if err != nil || p.State != want {
			t.Errorf("%s: %+v, %v; want %s", state, p, err, want)
		}
	}
	for _, reply := range []string{`{"error":false,"id":"1_p"}`, `{"error":false,"id":"1_p","state":"lost"}`,
		`{"error":false,"state":"payed"}`, `{"error":false,"id":"1_p","state":"payed","commission_amount":"-1"}`} {
		if p, err := parseCrystalPayV3Payoff([]byte(reply), ""); err == nil {
			t.Errorf("%s accepted as %+v", reply, p)
		}
	}
}

func TestCrystalPayV3NeverRetriesMoneyCalls(t *testing.T) {
	for _, status := range []int{500, 502, 503} {
		stub := newProviderStub(t, stubJSON(status, "busy"))
		c := provisionCrystalV3(t, stub.URL+"/v3/", nil)
		ctx := context.Background()
		if _, err := c.CreatePayment(ctx, PaymentRequest{Amount: decimal.NewFromInt(100)}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("invoice/create: err = %v", err)
		}
		if _, err := c.CreatePayout(ctx, PayoutRequest{Amount: decimal.NewFromInt(100), To: "w", Method: "SBP"}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("payoff/create: err = %v", err)
		}
		if _, err := c.SubmitPayout(ctx, "1_p"); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("payoff/submit: err = %v", err)
		}
		if n := stub.count(); n != 3 {
			t.Errorf("HTTP %d: %d requests for three calls, want 3", status, n)
		}
	}
}

func TestCrystalPayV3CancelNotSupported(t *testing.T) {
	c := provisionCrystalV3(t, "http://127.0.0.1:1/v3/", nil)
	if err := c.CancelPayment(context.Background(), PaymentRef{ID: "1_x"}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("err = %v, want ErrNotSupported", err)
	}
	if c.RateLimit() != 5 || c.CallTimeout() != time.Second {
		t.Errorf("rate limit %v, call timeout %v", c.RateLimit(), c.CallTimeout())
	}
	if c.CheckAmount(decimal.RequireFromString("0.01")) != nil || c.CheckAmount(decimal.RequireFromString("1.005")) == nil {
		t.Error("CheckAmount: want kopecks taken, a third decimal refused")
	}
}

// TestCrystalPayV3ErrorsCarryNoSecret drives every call through every kind
// of failure, with replies that echo the request (credentials and
// signatures), and looks for the secret, the salt and every signature in
// every field of the errors.
func TestCrystalPayV3ErrorsCarryNoSecret(t *testing.T) {
	var echo = func(r *http.Request) string {
		body := make([]byte, 4096)
		n, _ := r.Body.Read(body)
		return strings.NewReplacer(`"`, `'`, "\n", " ").Replace(string(body[:n]))
	}
	replies := map[string]stubAnswer{
		"500": func(w http.ResponseWriter, r *http.Request, _ int) {
			w.WriteHeader(500)
			w.Write([]byte(echo(r)))
		},
		"html": func(w http.ResponseWriter, r *http.Request, _ int) { w.Write([]byte("<html>" + echo(r))) },
		"error 200": func(w http.ResponseWriter, r *http.Request, _ int) {
			w.Write([]byte(`{"error":true,"errors":["bad ` + echo(r) + `"]}`))
		},
		"error 403": func(w http.ResponseWriter, r *http.Request, _ int) {
			w.WriteHeader(403)
			w.Write([]byte(`{"error":true,"errors":["auth ` + echo(r) + `"]}`))
		},
		"malformed": func(w http.ResponseWriter, r *http.Request, _ int) {
			w.Write([]byte(`{"error":false,"id":"1_x","state":"` + echo(r) + `"}`))
		},
		"timeout": func(w http.ResponseWriter, r *http.Request, _ int) { <-r.Context().Done() },
		"drop":    stubHangUp(t),
	}
	endpoints := map[string]string{"refused": closedEndpoint(t) + "/v3/"}
	for name, h := range replies {
		endpoints[name] = newProviderStub(t, h).URL + "/v3/"
	}
	secrets := []string{crystalV3Secret, crystalV3Salt, sha1Hex("100:SBP:w:" + crystalV3Salt), sha1Hex("1_x:" + crystalV3Salt)}
	for name, endpoint := range endpoints {
		t.Run(name, func(t *testing.T) {
			c := provisionCrystalV3(t, endpoint, func(c *CrystalPay) { c.Timeout = caddy.Duration(200 * time.Millisecond) })
			ctx := context.Background()
			payout := PayoutRequest{Amount: decimal.NewFromInt(100), To: "w", Method: "SBP"}
			var errs []error
			collect := func(_ any, err error) { errs = append(errs, err) }
			collect(c.CreatePayment(ctx, PaymentRequest{Amount: decimal.NewFromInt(100)}))
			collect(c.PaymentStatus(ctx, PaymentRef{ID: "1_x"}))
			collect(c.Balance(ctx))
			collect(c.CreatePayout(ctx, payout))
			collect(c.SubmitPayout(ctx, "1_x"))
			collect(c.CancelPayout(ctx, "1_x"))
			collect(c.PayoutStatus(ctx, "1_x"))
			collect(c.Payout(ctx, payout))
			for i, err := range errs {
				if err == nil {
					t.Errorf("call %d: no error", i)
					continue
				}
				assertNoSecret(t, name, err, secrets...)
			}
		})
	}
}

func TestCrystalPayV3Callback(t *testing.T) {
	invoice := strings.Replace(crystalV3InfoSeed, `"extra":null`, `"extra":"order-1"`, 1)
	signed := func(obj, id string) []byte {
		return []byte(strings.Replace(obj, `{"error":false,"errors":[],`, `{"signature":"`+sha1Hex(id+":"+crystalV3Salt)+`",`, 1))
	}
	c := provisionCrystalV3(t, "http://127.0.0.1:1/v3/", nil)

	cb, err := c.ParseCallback(signed(invoice, "123456789_abcdefghij"))
	if err != nil || cb != (Callback{PaymentID: "123456789_abcdefghij", OrderID: "order-1"}) {
		t.Errorf("invoice callback = %+v, %v", cb, err)
	}
	cb, err = c.ParseCallback(signed(crystalV3PayoffSeed, "123456789_dpWminAiaqwTcBOJVlFk"))
	if err != nil || cb != (Callback{PaymentID: "123456789_dpWminAiaqwTcBOJVlFk", Payout: true}) {
		t.Errorf("payoff callback = %+v, %v", cb, err)
	}
	numeric := []byte(`{"id":42,"signature":"` + strings.ToUpper(sha1Hex("42:"+crystalV3Salt)) + `","extra":7}`)
	if cb, err = c.ParseCallback(numeric); err != nil || cb != (Callback{PaymentID: "42"}) {
		t.Errorf("numeric id, upper-case signature = %+v, %v", cb, err)
	}

	forged := []string{
		`{"id":"123456789_abcdefghij","signature":"` + sha1Hex("123456789_abcdefghij:other-salt") + `"}`,
		`{"id":"123456789_abcdefghij","signature":"` + sha1Hex("123456789_abcdefghi:"+crystalV3Salt) + `"}`,
		`{"id":"123456789_abcdefghij","signature":"` + sha1Hex("123456789_abcdefghij"+crystalV3Salt) + `"}`,
		`{"id":"123456789_abcdefghij","signature":"x"}`,
	}
	for _, body := range forged {
		if _, err := c.ParseCallback([]byte(body)); !errors.Is(err, ErrBadSignature) || errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrBadSignature", body, err)
		} else {
			assertNoSecret(t, body, err, crystalV3Salt, sha1Hex("123456789_abcdefghij:"+crystalV3Salt))
		}
	}
	unsalted := provisionCrystalV3(t, "http://127.0.0.1:1/v3/", func(c *CrystalPay) { c.Salt = "" })
	for _, body := range [][]byte{signed(invoice, "123456789_abcdefghij"), []byte(`{"id":"1_x","signature":"` + sha1Hex("1_x:") + `"}`)} {
		if _, err := unsalted.ParseCallback(body); !errors.Is(err, ErrBadSignature) {
			t.Errorf("without salt: err = %v, want ErrBadSignature", err)
		}
	}
	for _, body := range []string{``, `null`, `[]`, `"x"`, `{}`, `{"id":"1_x"}`, `{"signature":"abc"}`, `{"id":"","signature":"abc"}`,
		`{"id":{"a":1},"signature":"abc"}`, `{"id":"1_x","signature":5}`, `{"id":"a b","signature":"abc"}`, `id=1_x&signature=abc`} {
		if _, err := c.ParseCallback([]byte(body)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", body, err)
		}
	}
}

// FuzzCrystalPayV3Callback: no body makes the callback parser panic, and a
// body it accepts carries an id and a signature that holds for it.
func FuzzCrystalPayV3Callback(f *testing.F) {
	f.Add([]byte(`{"id":"1_x","signature":"` + sha1Hex("1_x:"+crystalV3Salt) + `","extra":"o-1"}`))
	f.Add([]byte(`{"id":42,"signature":"` + sha1Hex("42:"+crystalV3Salt) + `","wallet":"w"}`))
	f.Add([]byte(crystalV3InfoSeed))
	f.Add([]byte(`{"id":"1_x","signature":null}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		cb, err := parseCrystalPayV3Callback(body, crystalV3Salt)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrBadSignature) {
				t.Errorf("error %v is neither ErrInvalid nor ErrBadSignature", err)
			}
			return
		}
		var fields struct {
			Signature string `json:"signature"`
		}
		if json.Unmarshal(body, &fields) != nil || cb.PaymentID == "" ||
			strings.ToLower(fields.Signature) != sha1Hex(cb.PaymentID+":"+crystalV3Salt) {
			t.Errorf("accepted %q as %+v", body, cb)
		}
		if _, err := parseCrystalPayV3Callback(body, ""); !errors.Is(err, ErrBadSignature) {
			t.Errorf("accepted %q without a salt", body)
		}
	})
}

// FuzzCrystalPayV3Reply feeds arbitrary replies to every v3 parser: none
// may panic, and what they accept must make sense.
func FuzzCrystalPayV3Reply(f *testing.F) {
	for _, seed := range []string{crystalV3MeSeed, crystalV3BalancesSeed, crystalV3CreateSeed, crystalV3InfoSeed, crystalV3PayoffSeed,
		`{"error":true,"errors":["` + "`amount`" + ` field is required"]}`, `{"error":false,"items":[]}`,
		`{"error":false,"state":"wrongamount","amount":"350","remaining_amount":"50","currency":"RUB"}`,
		`{"error":false,"state":"payed","amount":350,"remaining_amount":""}`, `[]`, `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		if env, err := parseCrystalPayV3Envelope(reply); err == nil && !env.failed && len(env.messages) != 0 {
			t.Errorf("a successful envelope with messages %q", env.messages)
		}
		if p, err := parseCrystalPayLink(reply); err == nil && (p.ID == "" || !isHTTPURL(p.URL)) {
			t.Errorf("invoice accepted %+v", p)
		}
		if st, err := parseCrystalPayV3InvoiceState(reply); err == nil &&
			((st.Amount.Valid && (!st.Paid || st.Amount.Decimal.IsNegative())) || (st.Paid && st.Problem != "")) {
			t.Errorf("invoice state accepted %+v", st)
		}
		if b, err := parseCrystalPayV3Balances(reply); err == nil && b.Total.IsNegative() && len(b.Wallets) == 0 {
			t.Errorf("balance total %s without wallets", b.Total)
		}
		if p, err := parseCrystalPayV3Payoff(reply, ""); err == nil && (p.ID == "" || p.State == "" || p.Commission.IsNegative()) {
			t.Errorf("payoff accepted %+v", p)
		}
		parseCrystalPayV3Me(reply)
	})
}

func TestCrystalPayV3Caddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`crystalpay {
		login    {env.CRYSTALPAY_LOGIN}
		secret   {env.CRYSTALPAY_SECRET}
		salt     {env.CRYSTALPAY_SALT}
		callback https://shop.example/kassa/callback/main
		method   BITCOIN
		subtract_from balance
		endpoint https://api.crystalpay.io/v3/
		timeout  5s
	}`)
	var c CrystalPay
	if err := c.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(c)
	want := `{"login":"{env.CRYSTALPAY_LOGIN}","secret":"{env.CRYSTALPAY_SECRET}","salt":"{env.CRYSTALPAY_SALT}",` +
		`"endpoint":"https://api.crystalpay.io/v3/","callback":"https://shop.example/kassa/callback/main","method":"BITCOIN",` +
		`"subtract_from":"balance","timeout":5000000000}`
	if string(data) != want {
		t.Errorf("JSON:\n got %s\nwant %s", data, want)
	}

	checkCaddyfileErrors(t, func(d *caddyfile.Dispenser) error { return new(CrystalPay).UnmarshalCaddyfile(d) }, map[string]string{
		"crystalpay {\n login a\n secret2 b\n}":               "crystalpay: secret2 is an api v1 option; api v3 signs with salt (or set api v1)",
		"crystalpay {\n api v3\n secret2 b\n}":                "secret2 is an api v1 option",
		"crystalpay {\n api v1\n salt b\n}":                   "salt is an api v3 option",
		"crystalpay {\n callback https://x/cb\n api v1\n}":    "callback is an api v3 option",
		"crystalpay {\n api v1\n method BITCOIN\n}":           "method is an api v3 option",
		"crystalpay {\n api v1\n subtract_from amount\n}":     "subtract_from is an api v3 option",
		"crystalpay {\n api v2\n}":                            `api "v2": want v3 (the default) or v1`,
		"crystalpay {\n api v3\n api v1\n}":                   "api given twice",
		"crystalpay {\n subtract_from commission\n}":          `subtract_from "commission": want amount or balance`,
		"crystalpay {\n callback /kassa/callback\n}":          "want an absolute http:// or https:// URL",
		"crystalpay {\n callback ftp://shop.example/cb\n}":    "want an absolute http:// or https:// URL",
		"crystalpay {\n callback http://shop.example/cb\n}":   "use https://",
		"crystalpay {\n method \"BIT COIN\"\n}":               "must not contain spaces",
		"crystalpay {\n salt a\n salt b\n}":                   "salt given twice",
		"crystalpay {\n subtract_from a\n subtract_from b\n}": "given twice",
	})
}

// TestCrystalPayV3Provision: api v3 is the default, with its own endpoint;
// the JSON config is checked as the Caddyfile is; secrets resolved in
// Provision stay placeholders in the config Caddy saves.
func TestCrystalPayV3Provision(t *testing.T) {
	t.Setenv("KASSA_TEST_LOGIN", "envkassa")
	t.Setenv("KASSA_TEST_SECRET", crystalV3Secret)
	t.Setenv("KASSA_TEST_SALT", crystalV3Salt)
	c := &CrystalPay{Login: "{env.KASSA_TEST_LOGIN}", Secret: "{env.KASSA_TEST_SECRET}", Salt: "{env.KASSA_TEST_SALT}"}
	provisionModule(t, c)
	v3, ok := c.Provider().(*crystalPayV3)
	if !ok || v3.login != "envkassa" || v3.secret != crystalV3Secret || v3.salt != crystalV3Salt ||
		c.api.base.String() != "https://api.crystalpay.io/v3/" {
		t.Fatalf("provider %T, endpoint %s", c.Provider(), c.api.base)
	}
	saved, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(saved, []byte(crystalV3Secret)) || bytes.Contains(saved, []byte(crystalV3Salt)) ||
		!bytes.Contains(saved, []byte(`"salt":"{env.KASSA_TEST_SALT}"`)) {
		t.Errorf("saved config %s", saved)
	}
	if c.api.Redact("x "+crystalV3Salt) != "x [redacted]" {
		t.Error("the salt is not one of the client's secrets")
	}
	if _, ok := any(c.Provider()).(TwoStepPayer); !ok {
		t.Error("v3 offers no two-step payouts")
	}
	v1 := &CrystalPay{API: "v1", Login: "a", Secret: "b"}
	provisionModule(t, v1)
	for name, ok := range map[string]bool{
		"TwoStepPayer":      implements[TwoStepPayer](v1.Provider()),
		"CallbackReceiver":  implements[CallbackReceiver](v1.Provider()),
		"RateLimitReporter": implements[RateLimitReporter](v1.Provider()),
	} {
		if ok {
			t.Errorf("api v1 offers %s", name)
		}
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, bad := range []*CrystalPay{
		{API: "v2", Login: "a", Secret: "b"},
		{Login: "a", Secret: "b", Secret2: "c"},
		{API: "v1", Login: "a", Secret: "b", Salt: "c"},
		{Login: "a", Secret: "b", SubtractFrom: "all"},
		{Login: "a", Secret: "b", Callback: "shop.example/cb"},
		{Login: "a", Secret: "{env.KASSA_TEST_UNSET}"},
	} {
		if err := bad.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
		bad.Cleanup()
	}
	for _, endpoint := range []string{"api.crystalpay.io/v3/", "https://u:p@api.crystalpay.io/v3/", "https://api.crystalpay.io/v3/?auth_secret=x"} {
		if err := (&CrystalPay{Login: "a", Secret: "b", Endpoint: endpoint}).Provision(ctx); err == nil {
			t.Errorf("endpoint %q accepted", endpoint)
		}
	}
}

// TestCrystalPayPlaceholders: endpoint and callback take {env.*} as the
// other providers' endpoints do (a shop pointed at a test host by its
// environment), in both APIs, and a callback resolved to plain http to a
// host that is not loopback is refused once resolved.
func TestCrystalPayPlaceholders(t *testing.T) {
	t.Setenv("KASSA_TEST_ENDPOINT", "http://127.0.0.1:9080/crystalpay/v3/")
	t.Setenv("KASSA_TEST_V1_ENDPOINT", "http://127.0.0.1:9080/crystalpay/api.php")
	t.Setenv("KASSA_TEST_CALLBACK", "https://shop.example/kassa/callback/main")
	t.Setenv("KASSA_TEST_PLAIN_CALLBACK", "http://shop.example/kassa/callback/main")
	c := &CrystalPay{Login: "a", Secret: "b", Salt: "c", Endpoint: "{env.KASSA_TEST_ENDPOINT}", Callback: "{env.KASSA_TEST_CALLBACK}"}
	if err := c.checkOptions(); err != nil {
		t.Fatalf("placeholders refused before they are resolved: %v", err)
	}
	provisionModule(t, c)
	if got := c.api.base.String(); got != "http://127.0.0.1:9080/crystalpay/v3/" {
		t.Errorf("endpoint %s", got)
	}
	if v3 := c.Provider().(*crystalPayV3); v3.callback != "https://shop.example/kassa/callback/main" {
		t.Errorf("callback %q", v3.callback)
	}
	v1 := &CrystalPay{API: "v1", Login: "a", Secret: "b", Endpoint: "{env.KASSA_TEST_V1_ENDPOINT}"}
	provisionModule(t, v1)
	if got := v1.api.base.String(); got != "http://127.0.0.1:9080/crystalpay/api.php" {
		t.Errorf("v1 endpoint %s", got)
	}
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	plain := &CrystalPay{Login: "a", Secret: "b", Salt: "c", Callback: "{env.KASSA_TEST_PLAIN_CALLBACK}"}
	if err := plain.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	defer plain.Cleanup()
	if err := plain.Validate(); err == nil || !strings.Contains(err.Error(), "use https://") {
		t.Errorf("a callback resolved to plain http: %v", err)
	}
}

// implements reports whether v implements T.
func implements[T any](v any) bool {
	_, ok := v.(T)
	return ok
}

// TestCrystalPayV3CallbackNeedsSalt: an account whose invoices name a
// callback URL but that has no salt would refuse every callback CrystalPAY
// sends it (403, logged as forgeries): that is a config error, also when
// the salt's environment variable is unset.
func TestCrystalPayV3CallbackNeedsSalt(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, salt := range []string{"", "{env.KASSA_TEST_UNSET_SALT}"} {
		c := &CrystalPay{Login: "a", Secret: "b", Salt: salt, Callback: "https://shop.example/kassa/callback/main"}
		if err := c.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), "salt") {
			t.Errorf("salt %q: Validate() = %v, want an error naming salt", salt, err)
		}
		c.Cleanup()
	}
	c := &CrystalPay{Login: "a", Secret: "b", Salt: "s", Callback: "https://shop.example/kassa/callback/main"}
	provisionModule(t, c)
}

// TestCrystalPayPlaceholderUnset: an endpoint or callback whose {env.*}
// variable is unset is refused at start, as Pegas's endpoint is: an unset
// endpoint would silently send the shop's credentials (and its buyers'
// payments) to CrystalPAY's real host, and an unset callback would
// silently drop the callbacks the config asked for.
func TestCrystalPayPlaceholderUnset(t *testing.T) {
	for _, c := range []*CrystalPay{
		{Login: "a", Secret: "b", Salt: "c", Endpoint: "{env.KASSA_TEST_UNSET_ENDPOINT}"},
		{API: "v1", Login: "a", Secret: "b", Endpoint: "{env.KASSA_TEST_UNSET_ENDPOINT}"},
		{Login: "a", Secret: "b", Salt: "c", Callback: "{env.KASSA_TEST_UNSET_CALLBACK}"},
	} {
		ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
		err := c.Provision(ctx)
		if err == nil {
			err = c.Validate()
			_ = c.Cleanup()
		}
		cancel()
		if err == nil || !strings.Contains(err.Error(), "is its environment variable set?") {
			t.Errorf("endpoint %q callback %q with the variable unset: %v", c.Endpoint, c.Callback, err)
		}
	}
}
