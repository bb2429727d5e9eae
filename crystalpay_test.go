package kassa

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/shopspring/decimal"
)

// The vendor document's example replies.
const (
	crystalBalanceSeed  = `{"balance":"203","auth":"ok"}`
	crystalWalletsSeed  = `{"balance":{"QIWI":100,"VISAMASTER.RUR":947},"auth":"ok"}`
	crystalGenerateSeed = `{"id":"1_gdTSSewzsE","url":"https:\/\/pay.crystalpay.ru\/?i=1_gdTSSewzsE","error":false,"auth":"ok"}`
	crystalNotPayedSeed = `{"state":"notpayed","error":false,"auth":"ok"}`
	crystalPayedSeed    = `{"state":"payed","error":false,"auth":"ok"}`
	crystalAuthSeed     = `{"auth":"error"}`
	crystalErrorSeed    = `{"error":true,"auth":"ok"}`
)

// Distinctive secrets, searched for in every error.
const (
	crystalTestSecret  = "S1-crystal-9b2e71"
	crystalTestSecret2 = "S2-crystal-4c8d05"
)

// crystalQuery returns the query of the latest request a stub received,
// after checking that every request was a GET of /api.php, the API's one
// address.
func crystalQuery(t *testing.T, stub *providerStub) url.Values {
	t.Helper()
	for _, r := range stub.requests() {
		if r.Method != http.MethodGet || r.Path != "/api.php" {
			t.Errorf("got %s %s, want GET /api.php", r.Method, r.Path)
		}
	}
	return stub.last(t).Query
}

// provisionCrystal provisions a CrystalPay of api v1 against endpoint and
// returns its implementation.
func provisionCrystal(t *testing.T, endpoint string, timeout time.Duration) *crystalPayV1 {
	t.Helper()
	c := &CrystalPay{API: crystalPayAPIv1, Login: "testkassa", Secret: crystalTestSecret, Secret2: crystalTestSecret2,
		Endpoint: endpoint, Timeout: caddy.Duration(timeout)}
	provisionModule(t, c)
	return c.Provider().(*crystalPayV1)
}

// provisionModule runs a module's Provision and Validate, and its Cleanup
// when the test ends.
func provisionModule(t *testing.T, m caddy.Module) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if p, ok := m.(caddy.Provisioner); ok {
		if err := p.Provision(ctx); err != nil {
			t.Fatalf("Provision: %v", err)
		}
	}
	if v, ok := m.(caddy.Validator); ok {
		if err := v.Validate(); err != nil {
			t.Fatalf("Validate: %v", err)
		}
	}
	if c, ok := m.(caddy.CleanerUpper); ok {
		t.Cleanup(func() { c.Cleanup() })
	}
}

func TestCrystalPayGenerate(t *testing.T) {
	stub := newProviderStub(t, stubJSON(200, crystalGenerateSeed))
	c := provisionCrystal(t, stub.URL+"/api.php", 0)

	p, err := c.CreatePayment(context.Background(), PaymentRequest{
		OrderID: "ignored", Amount: decimal.RequireFromString("100.00"),
		ReturnURL: "https://shop.example/thanks?order=a&b=1",
	})
	if err != nil {
		t.Fatal(err)
	}
	if p.ID != "1_gdTSSewzsE" || p.URL != "https://pay.crystalpay.ru/?i=1_gdTSSewzsE" {
		t.Errorf("payment = %+v", p)
	}
	q := crystalQuery(t, stub)
	want := url.Values{"s": {crystalTestSecret}, "n": {"testkassa"}, "o": {"generate"},
		"amount": {"100"}, "redirect": {"https://shop.example/thanks?order=a&b=1"}}
	if q.Encode() != want.Encode() {
		t.Errorf("query = %v\nwant    %v", q, want)
	}
}

func TestCrystalPayGenerateWithoutRedirect(t *testing.T) {
	stub := newProviderStub(t, stubJSON(200, crystalGenerateSeed))
	c := provisionCrystal(t, stub.URL+"/api.php", 0)
	if _, err := c.CreatePayment(context.Background(), PaymentRequest{Amount: decimal.NewFromInt(350)}); err != nil {
		t.Fatal(err)
	}
	q := crystalQuery(t, stub)
	if q.Has("redirect") || q.Get("amount") != "350" {
		t.Errorf("query = %v, want amount 350 and no redirect", q)
	}
}

func TestCrystalPayRefusesBeforeSending(t *testing.T) {
	stub := newProviderStub(t, stubJSON(200, crystalGenerateSeed))
	c := provisionCrystal(t, stub.URL+"/api.php", 0)
	ctx := context.Background()
	for _, amount := range []string{"100.50", "0.01", "0", "-100", "1000000001", "100.001"} {
		t.Run(amount, func(t *testing.T) {
			_, err := c.CreatePayment(ctx, PaymentRequest{Amount: decimal.RequireFromString(amount)})
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != "amount" || !errors.Is(err, ErrInvalid) {
				t.Errorf("generate %s: err = %v, want a ValidationError on amount", amount, err)
			}
			_, err = c.Payout(ctx, PayoutRequest{Amount: decimal.RequireFromString(amount), To: "79990000000", Method: "qw"})
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("withdraw %s: err = %v, want ErrInvalid", amount, err)
			}
		})
	}
	for _, bad := range []PaymentRequest{
		{Amount: decimal.NewFromInt(100), ReturnURL: "javascript:alert(1)"},
		{Amount: decimal.NewFromInt(100), ReturnURL: "/relative"},
	} {
		t.Run(bad.ReturnURL, func(t *testing.T) {
			if _, err := c.CreatePayment(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("generate with redirect %q: err = %v, want ErrInvalid", bad.ReturnURL, err)
			}
		})
	}
	for _, bad := range []PayoutRequest{
		{Amount: decimal.NewFromInt(100), To: "", Method: "qw"},
		{Amount: decimal.NewFromInt(100), To: "7999 000", Method: "qw"},
		{Amount: decimal.NewFromInt(100), To: "79990000000", Method: ""},
		{Amount: decimal.NewFromInt(100), To: "79990000000", Method: "qw\r\nx"},
	} {
		t.Run(bad.To+" "+bad.Method, func(t *testing.T) {
			if _, err := c.Payout(ctx, bad); !errors.Is(err, ErrInvalid) {
				t.Errorf("withdraw %+v: err = %v, want ErrInvalid", bad, err)
			}
		})
	}
	if _, err := c.PaymentStatus(ctx, PaymentRef{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("checkpay without id: err = %v, want ErrInvalid", err)
	}
	if n := stub.count(); n != 0 {
		t.Errorf("%d requests reached the provider, want 0", n)
	}
}

func TestCrystalPayCheckpay(t *testing.T) {
	for _, tc := range []struct {
		reply  string
		paid   bool
		amount string
	}{
		{crystalNotPayedSeed, false, ""},
		{crystalPayedSeed, true, ""},
		{`{"state":"payed","amount":"100","error":false,"auth":"ok"}`, true, "100"},
		{`{"state":"payed","amount":250.5,"error":false,"auth":"ok"}`, true, "250.5"},
	} {
		t.Run(tc.reply, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(200, tc.reply))
			c := provisionCrystal(t, stub.URL+"/api.php", 0)
			st, err := c.PaymentStatus(context.Background(), PaymentRef{ID: "1_gdTSSewzsE"})
			if err != nil {
				t.Fatalf("%s: %v", tc.reply, err)
			}
			if st.Paid != tc.paid || st.Amount.Valid != (tc.amount != "") ||
				(tc.amount != "" && !st.Amount.Decimal.Equal(decimal.RequireFromString(tc.amount))) {
				t.Errorf("%s: status = %+v", tc.reply, st)
			}
			q := crystalQuery(t, stub)
			if q.Get("o") != "checkpay" || q.Get("i") != "1_gdTSSewzsE" {
				t.Errorf("query = %v", q)
			}
		})
	}
}

func TestCrystalPayBalance(t *testing.T) {
	for reply, want := range map[string]string{crystalBalanceSeed: "203", crystalWalletsSeed: "1047"} {
		t.Run(want, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(200, reply))
			c := provisionCrystal(t, stub.URL+"/api.php", 0)
			b, err := c.Balance(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if !b.Total.Equal(decimal.RequireFromString(want)) {
				t.Errorf("%s: total = %s, want %s", reply, b.Total, want)
			}
			if reply == crystalWalletsSeed && (len(b.Wallets) != 2 || !b.Wallets["VISAMASTER.RUR"].Equal(decimal.NewFromInt(947))) {
				t.Errorf("wallets = %v", b.Wallets)
			}
			if q := crystalQuery(t, stub); q.Get("o") != "balance" || q.Get("n") != "testkassa" || q.Get("s") != crystalTestSecret {
				t.Errorf("query = %v", q)
			}
		})
	}
}

func TestCrystalPayWithdrawSignature(t *testing.T) {
	stub := newProviderStub(t, stubJSON(200, `{"error":false,"auth":"ok"}`))
	c := &CrystalPay{API: crystalPayAPIv1, Login: "testkassa", Secret: "S1", Secret2: "S2-secret", Endpoint: stub.URL + "/api.php"}
	provisionModule(t, c)
	if _, err := c.Provider().Payout(context.Background(), PayoutRequest{
		Amount: decimal.RequireFromString("100.00"), To: "79990000000", Method: "qw",
	}); err != nil {
		t.Fatal(err)
	}
	q := crystalQuery(t, stub)
	// md5("79990000000-100-S2-secret"), computed outside Go.
	want := url.Values{"s": {"S1"}, "n": {"testkassa"}, "o": {"withdraw"}, "amount": {"100"},
		"wallet": {"79990000000"}, "service": {"qw"}, "secret": {"584753788308bff28477a98df6ced2c6"}}
	if q.Encode() != want.Encode() {
		t.Errorf("query = %v\nwant    %v", q, want)
	}
}

func TestCrystalPayWithdrawNeedsSecret2(t *testing.T) {
	stub := newProviderStub(t, stubJSON(200, `{"error":false,"auth":"ok"}`))
	c := &CrystalPay{API: crystalPayAPIv1, Login: "testkassa", Secret: "S1", Endpoint: stub.URL + "/api.php"}
	provisionModule(t, c)
	_, err := c.Provider().Payout(context.Background(), PayoutRequest{Amount: decimal.NewFromInt(100), To: "7999", Method: "qw"})
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.Field != "secret2" || stub.count() != 0 {
		t.Errorf("err = %v, calls = %d; want a ValidationError on secret2 and no call", err, stub.count())
	}
}

func TestCrystalPayErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		status  int
		reply   string
		kind    error
		message string
	}{
		{"auth", 200, crystalAuthSeed, ErrAuth, ""},
		{"auth with message", 200, `{"auth":"error","error_message":"Bad key"}`, ErrAuth, "Bad key"},
		{"error", 200, crystalErrorSeed, ErrRejected, ""},
		{"error with message", 200, `{"error":true,"error_message":"Amount too small","auth":"ok"}`, ErrRejected, "Amount too small"},
		{"error as text", 200, `{"error":"Amount too small","auth":"ok"}`, ErrRejected, "Amount too small"},
		{"server error", 500, "<html>500</html>", ErrUnavailable, ""},
		{"proxy error", 502, "<html><h1>502 Bad Gateway</h1></html>", ErrUnavailable, ""},
		{"html page", 200, "<html>maintenance</html>", ErrMalformedReply, ""},
		{"truncated", 200, `{"id":"1_ab`, ErrMalformedReply, ""},
		{"no auth", 200, `{"id":"1_gdTSSewzsE","url":"https://pay.example/?i=1"}`, ErrMalformedReply, ""},
		{"odd auth", 200, `{"auth":"maybe"}`, ErrMalformedReply, ""},
		{"not found status", 404, `not found`, ErrMalformedReply, ""},
		{"no id", 200, `{"url":"https://pay.example/?i=1","error":false,"auth":"ok"}`, ErrMalformedReply, ""},
		{"bad url", 200, `{"id":"1_x","url":"javascript:alert(1)","error":false,"auth":"ok"}`, ErrMalformedReply, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(tc.status, tc.reply))
			c := provisionCrystal(t, stub.URL+"/api.php", 0)
			_, err := c.CreatePayment(context.Background(), PaymentRequest{Amount: decimal.NewFromInt(100)})
			var pe *ProviderError
			if !errors.Is(err, tc.kind) || !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a ProviderError of kind %v", err, tc.kind)
			}
			if pe.Provider != "crystalpay" || pe.Op != "generate" || pe.Message != tc.message {
				t.Errorf("error = %+v", pe)
			}
			if tc.status != 200 && pe.Status != tc.status {
				t.Errorf("status = %d, want %d", pe.Status, tc.status)
			}
		})
	}
}

func TestCrystalPayCheckpayMalformed(t *testing.T) {
	for _, reply := range []string{
		`{"state":"pending","error":false,"auth":"ok"}`,
		`{"error":false,"auth":"ok"}`,
		`{"state":"payed","amount":"-5","error":false,"auth":"ok"}`,
		`{"state":"payed","amount":"lots","error":false,"auth":"ok"}`,
	} {
		t.Run(reply, func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(200, reply))
			c := provisionCrystal(t, stub.URL+"/api.php", 0)
			if _, err := c.PaymentStatus(context.Background(), PaymentRef{ID: "1_x"}); !errors.Is(err, ErrMalformedReply) {
				t.Errorf("%s: err = %v, want ErrMalformedReply", reply, err)
			}
		})
	}
}

func TestCrystalPayNeverRetriesGenerateOrWithdraw(t *testing.T) {
	for _, status := range []int{500, 502, 503} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			stub := newProviderStub(t, stubJSON(status, "busy"))
			c := provisionCrystal(t, stub.URL+"/api.php", 0)
			ctx := context.Background()
			if _, err := c.CreatePayment(ctx, PaymentRequest{Amount: decimal.NewFromInt(100)}); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("generate: err = %v", err)
			}
			if _, err := c.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(100), To: "7999", Method: "qw"}); !errors.Is(err, ErrUnavailable) {
				t.Fatalf("withdraw: err = %v", err)
			}
			if n := stub.count(); n != 2 {
				t.Errorf("HTTP %d: %d requests for one generate and one withdraw, want 2", status, n)
			}
		})
	}
}

func TestCrystalPayCancelNotSupported(t *testing.T) {
	c := provisionCrystal(t, "http://127.0.0.1:1/api.php", 0)
	if err := c.CancelPayment(context.Background(), PaymentRef{ID: "1_x"}); !errors.Is(err, ErrNotSupported) {
		t.Errorf("err = %v, want ErrNotSupported", err)
	}
}

// TestCrystalPayErrorsCarryNoSecret drives every kind of failure with
// distinctive secrets and looks for them, plain and URL-escaped, in every
// field of the error.
func TestCrystalPayErrorsCarryNoSecret(t *testing.T) {
	echo := func(q url.Values) string { return q.Get("s") + " " + q.Get("secret") + " " + q.Encode() }
	replies := map[string]stubAnswer{
		"500": func(w http.ResponseWriter, r *http.Request, _ int) {
			w.WriteHeader(500)
			w.Write([]byte(echo(r.URL.Query())))
		},
		"html": func(w http.ResponseWriter, r *http.Request, _ int) { w.Write([]byte("<html>" + echo(r.URL.Query()))) },
		"auth echo": func(w http.ResponseWriter, r *http.Request, _ int) {
			w.Write([]byte(`{"auth":"error","error_message":"bad ` + echo(r.URL.Query()) + `"}`))
		},
		"error echo": func(w http.ResponseWriter, r *http.Request, _ int) {
			w.Write([]byte(`{"error":true,"error_message":"bad ` + echo(r.URL.Query()) + `","auth":"ok"}`))
		},
		"malformed": func(w http.ResponseWriter, r *http.Request, _ int) { w.Write([]byte(`{"id":"` + echo(r.URL.Query()))) },
		"timeout":   func(w http.ResponseWriter, r *http.Request, _ int) { <-r.Context().Done() },
		"drop":      stubHangUp(t),
		"redirect": func(w http.ResponseWriter, r *http.Request, _ int) {
			http.Redirect(w, r, "/elsewhere?"+r.URL.RawQuery, http.StatusFound)
		},
	}
	endpoints := map[string]string{"refused": closedEndpoint(t) + "/api.php"}
	for name, h := range replies {
		endpoints[name] = newProviderStub(t, h).URL + "/api.php"
	}
	for name, endpoint := range endpoints {
		t.Run(name, func(t *testing.T) {
			c := provisionCrystal(t, endpoint, 200*time.Millisecond)
			ctx := context.Background()
			var errs []error
			_, err := c.CreatePayment(ctx, PaymentRequest{Amount: decimal.NewFromInt(100), ReturnURL: "https://shop.example/"})
			errs = append(errs, err)
			_, err = c.PaymentStatus(ctx, PaymentRef{ID: "1_x"})
			errs = append(errs, err)
			_, err = c.Balance(ctx)
			errs = append(errs, err)
			_, err = c.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(100), To: "7999", Method: "qw"})
			errs = append(errs, err)
			for _, err := range errs {
				if err == nil {
					t.Errorf("%s: no error", name)
					continue
				}
				assertNoSecret(t, name, err, crystalTestSecret, crystalTestSecret2,
					crystalPaySignature("7999", "100", crystalTestSecret2))
			}
		})
	}
}

// closedEndpoint returns the base URL of a port that refuses connections.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL
	srv.Close()
	return u
}

// assertNoSecret fails if any secret, plain or URL-escaped, is in the
// error's text or in any field of a ProviderError in its chain.
func assertNoSecret(t *testing.T, name string, err error, secrets ...string) {
	t.Helper()
	texts := []string{err.Error()}
	var pe *ProviderError
	if errors.As(err, &pe) {
		texts = append(texts, pe.Code, pe.Path, pe.Message, pe.Body)
		if pe.Err != nil {
			texts = append(texts, pe.Err.Error())
		}
	}
	for _, secret := range secrets {
		for _, form := range []string{secret, url.QueryEscape(secret)} {
			for _, text := range texts {
				if strings.Contains(text, form) {
					t.Errorf("%s: error carries a secret: %q", name, text)
				}
			}
		}
	}
}

func TestCrystalPayCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`crystalpay {
		api     v1
		login   {env.CRYSTALPAY_LOGIN}
		secret  {env.CRYSTALPAY_SECRET}
		secret2 {env.CRYSTALPAY_SECRET2}
		endpoint https://api.crystalpay.ru/api.php
		timeout 5s
	}`)
	var c CrystalPay
	if err := c.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	want := CrystalPay{API: "v1", Login: "{env.CRYSTALPAY_LOGIN}", Secret: "{env.CRYSTALPAY_SECRET}",
		Secret2: "{env.CRYSTALPAY_SECRET2}", Endpoint: "https://api.crystalpay.ru/api.php",
		Timeout: caddy.Duration(5 * time.Second)}
	if c.API != want.API || c.Login != want.Login || c.Secret != want.Secret || c.Secret2 != want.Secret2 ||
		c.Endpoint != want.Endpoint || c.Timeout != want.Timeout {
		t.Errorf("got %+v\nwant %+v", c, want)
	}

	checkCaddyfileErrors(t, func(d *caddyfile.Dispenser) error { return new(CrystalPay).UnmarshalCaddyfile(d) }, map[string]string{
		"crystalpay {\n login a\n sekret b\n}":      `unrecognized subdirective "sekret"`,
		"crystalpay {\n login\n}":                   "wrong argument count",
		"crystalpay {\n login a b\n}":               "wrong argument count",
		"crystalpay {\n login a\n login b\n}":       "login given twice",
		"crystalpay {\n timeout soon\n}":            "bad duration",
		"crystalpay {\n timeout -1s\n}":             "more than zero",
		"crystalpay main":                           "options go in a block",
		"crystalpay {\n secret \"\"\n}":             "must not be empty",
		"crystalpay {\n timeout 1s\n timeout 2s\n}": "given twice",
	})
}

func TestCrystalPayProvision(t *testing.T) {
	t.Setenv("KASSA_TEST_LOGIN", "envkassa")
	t.Setenv("KASSA_TEST_SECRET", "envsecret")
	c := &CrystalPay{API: crystalPayAPIv1, Login: "{env.KASSA_TEST_LOGIN}", Secret: "{env.KASSA_TEST_SECRET}"}
	provisionModule(t, c)
	if c.login != "envkassa" || c.secret != "envsecret" || c.api.base.String() != crystalPayEndpoint {
		t.Errorf("resolved login %q secret %q endpoint %s", c.login, c.secret, c.api.base)
	}
	if c.Secret != "{env.KASSA_TEST_SECRET}" {
		t.Errorf("config field changed to %q; placeholders must stay in the config", c.Secret)
	}

	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	for _, bad := range []*CrystalPay{
		{API: crystalPayAPIv1, Login: "{env.KASSA_TEST_UNSET}", Secret: "x"},
		{Login: "x", Secret: "{env.KASSA_TEST_UNSET}"},
	} {
		if err := bad.Provision(ctx); err != nil {
			t.Fatal(err)
		}
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "environment variable") {
			t.Errorf("%+v: Validate = %v", bad, err)
		}
	}
	for _, endpoint := range []string{"ftp://x/api.php", "api.crystalpay.ru", "https://u:p@host/api.php", "https://host/api.php?s=x"} {
		bad := &CrystalPay{API: crystalPayAPIv1, Login: "x", Secret: "y", Endpoint: endpoint}
		if err := bad.Provision(ctx); err == nil {
			t.Errorf("endpoint %q accepted", endpoint)
		}
	}
}

// FuzzCrystalPayReply feeds arbitrary replies to every CrystalPAY parser:
// none may panic, and what they accept must make sense.
func FuzzCrystalPayReply(f *testing.F) {
	for _, seed := range []string{crystalBalanceSeed, crystalWalletsSeed, crystalGenerateSeed,
		crystalNotPayedSeed, crystalPayedSeed, crystalAuthSeed, crystalErrorSeed,
		`{"state":"payed","amount":"100","error":false,"auth":"ok"}`, `{"error":false,"auth":"ok"}`,
		`{"error":"x","auth":"ok"}`, `{"balance":{"QIWI":"1e3"},"auth":"ok"}`, `[]`, `null`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, reply []byte) {
		env, err := parseCrystalPayEnvelope(reply)
		if err == nil && env.Auth != "ok" && env.Auth != "error" {
			t.Errorf("envelope accepted auth %q", env.Auth)
		}
		if p, err := parseCrystalPayLink(reply); err == nil && (p.ID == "" || !isHTTPURL(p.URL)) {
			t.Errorf("generate accepted %+v", p)
		}
		if st, err := parseCrystalPayCheckpay(reply); err == nil && st.Amount.Valid && st.Amount.Decimal.IsNegative() {
			t.Errorf("checkpay accepted %+v", st)
		}
		if b, err := parseCrystalPayBalance(reply); err == nil && b.Wallets != nil {
			sum := decimal.Zero
			for _, v := range b.Wallets {
				sum = sum.Add(v)
			}
			if !sum.Equal(b.Total) {
				t.Errorf("balance total %s, wallets sum %s", b.Total, sum)
			}
		}
		parseCrystalPayWithdraw(reply)
	})
}

// TestCrystalPayMessageIsCleaned: CrystalPAY's error_message reaches the
// operator's log and a payout's stored error as any provider's text does:
// flat, capped, without control characters.
func TestCrystalPayMessageIsCleaned(t *testing.T) {
	msg := "Недостаточно средств\n\x1b[2J" + strings.Repeat("y", 5000)
	quoted, _ := json.Marshal(msg)
	stub := newProviderStub(t, stubJSON(http.StatusOK, `{"auth":"ok","error":true,"error_message":`+string(quoted)+`}`))
	c := provisionCrystal(t, stub.URL+"/api.php", time.Second)
	_, err := c.Balance(context.Background())
	var pe *ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v", err)
	}
	if !strings.HasPrefix(pe.Message, "Недостаточно средств [2J") || strings.ContainsFunc(pe.Message, unicode.IsControl) ||
		len(pe.Message) > maxReplyText+len("…") {
		t.Errorf("message (%d bytes) not cleaned: %.60q", len(pe.Message), pe.Message)
	}
}
