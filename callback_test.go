package kassa

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// callbackSalt is the fake provider's salt (CrystalPAY's Secret 2).
const callbackSalt = "salt-7Qm2vXc9"

// callbackProvider is a payment provider that posts callbacks signed
// CrystalPAY's way, sha1(id + ":" + salt), over the invoices of a
// lifeProvider; the test sets what its status reads answer and counts
// them. A callback is {"id","extra","signature"}; a payout's also has
// "kind":"payoff".
type callbackProvider struct {
	*lifeProvider
	salt  string
	asked atomic.Int64

	mu        sync.Mutex
	problems  map[string]string // payment id -> PaymentStatus.Problem
	amounts   map[string]string // payment id -> the amount a paid status reports
	statusErr error
}

func newCallbackProvider() *callbackProvider {
	return &callbackProvider{lifeProvider: newLifeProvider("crystalpay"), salt: callbackSalt, problems: map[string]string{},
		amounts: map[string]string{}}
}

func (p *callbackProvider) PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error) {
	p.asked.Add(1)
	p.mu.Lock()
	err, problem, amount := p.statusErr, p.problems[ref.ID], p.amounts[ref.ID]
	p.mu.Unlock()
	if err != nil {
		return PaymentStatus{}, err
	}
	st, err := p.lifeProvider.PaymentStatus(ctx, ref)
	if !st.Paid {
		st.Problem = problem
	}
	if st.Paid && amount != "" {
		st.Amount = decimal.NewNullDecimal(decimal.RequireFromString(amount))
	}
	return st, err
}

// fakeCallback is the fake's callback body.
type fakeCallback struct {
	ID        string `json:"id"`
	Extra     string `json:"extra"`
	Signature string `json:"signature"`
	Kind      string `json:"kind"`
}

func (p *callbackProvider) ParseCallback(body []byte) (Callback, error) {
	var v fakeCallback
	if err := json.Unmarshal(body, &v); err != nil || v.ID == "" {
		return Callback{}, invalid("callback", "not a callback")
	}
	sum := sha1.Sum([]byte(v.ID + ":" + p.salt))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(v.Signature)) != 1 {
		return Callback{}, ErrBadSignature
	}
	return Callback{PaymentID: v.ID, OrderID: v.Extra, Payout: v.Kind == "payoff"}, nil
}

func (p *callbackProvider) setProblem(id, problem string) {
	p.mu.Lock()
	p.problems[id] = problem
	p.mu.Unlock()
}

func (p *callbackProvider) fail(err error) {
	p.mu.Lock()
	p.statusErr = err
	p.mu.Unlock()
}

// callbackBody is an invoice callback as CrystalPAY posts it, for payment
// id and order id extra, with signature.
func callbackBody(id, extra, signature string) string {
	return fmt.Sprintf(`{"id":%q,"url":"https://pay.crystalpay.io/?i=%s","state":"payed","type":"purchase","rub_amount":"350",`+
		`"currency":"RUB","amount":"350","amount_currency":"RUB","extra":%q,"signature":%q}`, id, id, extra, signature)
}

// signedCallback is callbackBody signed with the fake's salt.
func signedCallback(id, extra string) string {
	return callbackBody(id, extra, sha1Hex(id+":"+callbackSalt))
}

// callbackShop is a lifeShop whose account "main" sends callbacks, and
// its kassa_callback handler; the app and the handler log to logs.
type callbackShop struct {
	*lifeShop
	provider *callbackProvider
	handler  *CallbackHandler
	logs     *observer.ObservedLogs
	answers  []string // every answer's body, to look for secrets in
}

func newCallbackShop(t *testing.T, storage certmagic.Storage) *callbackShop {
	t.Helper()
	p := newCallbackProvider()
	s := newLifeShop(t, p.lifeProvider, storage, nil)
	core, logs := observer.New(zapcore.DebugLevel)
	s.app.logger = zap.New(core)
	s.app.accounts["main"].PaymentProvider = p
	h := &CallbackHandler{Payment: "main"}
	if err := h.use(s.app, zap.New(core)); err != nil {
		t.Fatal(err)
	}
	return &callbackShop{lifeShop: s, provider: p, handler: h, logs: logs}
}

// call sends the handler a request.
func (s *callbackShop) call(method, body string) *httptest.ResponseRecorder {
	s.t.Helper()
	req := httptest.NewRequest(method, "/kassa/callback/main", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	if err := s.handler.ServeHTTP(w, req, nil); err != nil {
		s.t.Fatalf("ServeHTTP: %v", err)
	}
	s.answers = append(s.answers, w.Body.String())
	return w
}

func (s *callbackShop) post(body string) *httptest.ResponseRecorder {
	return s.call(http.MethodPost, body)
}

// expect checks an answer's status and, for an error, its code.
func expectAnswer(t *testing.T, w *httptest.ResponseRecorder, status int, code string) {
	t.Helper()
	if w.Code != status {
		t.Fatalf("answer %d %s, want %d", w.Code, w.Body, status)
	}
	if status == http.StatusOK {
		if w.Body.String() != "OK" {
			t.Errorf("answer body %q, want OK", w.Body)
		}
		return
	}
	var v struct {
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || v.Error.Code != code {
		t.Errorf("answer %s, want the error code %s", w.Body, code)
	}
}

// unchanged checks that order o is stored as it was.
func (s *callbackShop) unchanged(o *Order) {
	s.t.Helper()
	got := s.load(o.ID)
	if got.State != o.State || got.Error != o.Error || got.Receipt != nil != (o.Receipt != nil) || !got.UpdatedAt.Equal(o.UpdatedAt) {
		s.t.Errorf("the order changed: %s %q (receipt %v), was %s %q", got.State, got.Error, got.Receipt, o.State, o.Error)
	}
}

// asked checks that the provider was asked want times for a payment's
// status.
func (s *callbackShop) asked(want int64) {
	s.t.Helper()
	if n := s.provider.asked.Load(); n != want {
		s.t.Errorf("the provider was asked %d times, want %d", n, want)
	}
}

// noSecrets checks that no log line and no answer carries the salt or a
// signature.
func (s *callbackShop) noSecrets(signatures ...string) {
	s.t.Helper()
	secrets := append([]string{callbackSalt}, signatures...)
	var texts []string
	for _, e := range s.logs.All() {
		fields, _ := json.Marshal(e.ContextMap())
		texts = append(texts, e.Message+" "+string(fields))
	}
	texts = append(texts, s.answers...)
	for _, text := range texts {
		for _, secret := range secrets {
			if strings.Contains(text, secret) {
				s.t.Errorf("a secret (%.6s...) leaked: %s", secret, text)
			}
		}
	}
}

// TestCallbackPaysTheOrder: a valid callback for a paid payment records the
// order paid with its receipt attempt, within the request, with no
// reconciler pass, and nudges the reconciler to send the receipt.
func TestCallbackPaysTheOrder(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	s.provider.pay(o.Payment.ID)
	expectAnswer(t, s.post(signedCallback(o.Payment.ID, o.ID)), http.StatusOK, "")
	got := s.load(o.ID)
	if got.State != OrderPaid || got.PaidLate || got.Receipt == nil || got.Receipt.State != ReceiptSending || got.Receipt.attempt() != 1 {
		t.Fatalf("after the callback the order is %s (late %v, receipt %+v); want paid with its first receipt attempt", got.State, got.PaidLate, got.Receipt)
	}
	s.asked(1)
	select {
	case id := <-s.app.reconciler.nudges:
		if id != o.ID {
			t.Errorf("nudged %s, want %s", id, o.ID)
		}
	default:
		t.Error("the reconciler was not nudged to send the receipt")
	}
	// Sent again, as the provider does: answered, nothing asked or changed.
	expectAnswer(t, s.post(signedCallback(o.Payment.ID, o.ID)), http.StatusOK, "")
	s.unchanged(got)
	s.asked(1)
	s.noSecrets(sha1Hex(o.Payment.ID + ":" + callbackSalt))
}

// TestCallbackForgedSignature: a callback whose signature does not hold is
// 403; nothing changes and the provider is not asked, though the invoice
// is paid.
func TestCallbackForgedSignature(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	s.provider.pay(o.Payment.ID)
	forged := map[string]string{
		"another salt": sha1Hex(o.Payment.ID + ":not-the-salt"),
		"the secret":   sha1Hex(o.Payment.ID + ":" + "auth-secret"),
		"no salt":      sha1Hex(o.Payment.ID),
		"upper case":   strings.ToUpper(sha1Hex(o.Payment.ID + ":" + callbackSalt)),
		"empty":        "",
		"order id":     sha1Hex(o.ID + ":" + callbackSalt),
	}
	counted := valueOf(metrics.callbacks.WithLabelValues("main", callbackBadSignature))
	var signatures []string
	for name, sig := range forged {
		t.Run(name, func(t *testing.T) {
			expectAnswer(t, s.post(callbackBody(o.Payment.ID, o.ID, sig)), http.StatusForbidden, "bad_signature")
		})
		if sig != "" {
			signatures = append(signatures, sig)
		}
	}
	s.unchanged(o)
	s.asked(0)
	if n := valueOf(metrics.callbacks.WithLabelValues("main", callbackBadSignature)) - counted; n != float64(len(forged)) {
		t.Errorf("kassa_callbacks_total{result=bad_signature} moved by %v, want %d", n, len(forged))
	}
	s.noSecrets(signatures...)
}

// TestCallbackForgeriesLoggedOncePerMinute: a burst of forged callbacks
// is one warning, and the next, a minute on, carries the count since.
func TestCallbackForgeriesLoggedOncePerMinute(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	forged := callbackBody(o.Payment.ID, o.ID, sha1Hex(o.Payment.ID+":guess"))
	for range 50 {
		expectAnswer(t, s.post(forged), http.StatusForbidden, "bad_signature")
	}
	lines := s.logs.FilterMessageSnippet("signature does not hold").All()
	if len(lines) != 1 || lines[0].ContextMap()["count"] != int64(1) {
		t.Fatalf("after a burst of 50: %d lines %v, want one with count 1", len(lines), lines)
	}
	s.clock.Add(30 * time.Second)
	s.post(forged)
	s.clock.Add(31 * time.Second)
	s.post(forged)
	lines = s.logs.FilterMessageSnippet("signature does not hold").All()
	if len(lines) != 2 || lines[1].ContextMap()["count"] != int64(51) || lines[1].Level != zapcore.WarnLevel {
		t.Fatalf("a minute on: %d lines %v, want a second warning with count 51", len(lines), lines)
	}
	s.unchanged(o)
	s.noSecrets(sha1Hex(o.Payment.ID + ":guess"))
}

// TestCallbackNotPaid: a callback whose body says payed, for a payment its
// provider says is not paid, is answered 200 and changes nothing.
func TestCallbackNotPaid(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	expectAnswer(t, s.post(signedCallback(o.Payment.ID, o.ID)), http.StatusOK, "")
	s.unchanged(o)
	s.asked(1)
}

// TestCallbackUnknownPayment: a validly signed callback that names no
// order of this account holding that payment is 404 and changes nothing.
func TestCallbackUnknownPayment(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	s.provider.pay(o.Payment.ID)
	// Another account's order, whose payment is paid too.
	other := &Order{ID: NewOrderID(), State: OrderPending, Account: "card", Provider: "crystalpay", Amount: decimal.NewFromInt(350),
		Payment: Payment{ID: "inv-77"}, CreatedAt: s.clock.Now(), UpdatedAt: s.clock.Now(), ExpiresAt: s.clock.Now().Add(30 * time.Minute)}
	if err := s.app.orders.Create(context.Background(), other); err != nil {
		t.Fatal(err)
	}
	s.provider.pay("inv-77")
	for name, body := range map[string]string{
		"unknown order":        signedCallback(o.Payment.ID, NewOrderID()),
		"no order id":          signedCallback(o.Payment.ID, ""),
		"not an order id":      signedCallback(o.Payment.ID, "../"+o.ID),
		"another payment":      signedCallback("inv-2", o.ID),
		"another account's":    signedCallback("inv-77", other.ID),
		"a payment of another": signedCallback("inv-77", o.ID),
	} {
		t.Run(name, func(t *testing.T) {
			expectAnswer(t, s.post(body), http.StatusNotFound, "unknown_payment")
		})
	}
	s.unchanged(o)
	s.unchanged(other)
	s.asked(0)
}

// TestCallbackProviderDown: when the provider cannot say where the payment
// stands, the callback is 503, so that it is sent again, and nothing
// changes; once the provider answers, the next one pays the order.
func TestCallbackProviderDown(t *testing.T) {
	for name, err := range map[string]error{
		"unavailable": &ProviderError{Provider: "crystalpay", Op: "invoice/info", Kind: ErrUnavailable, Status: 502},
		"refused":     &ProviderError{Provider: "crystalpay", Op: "invoice/info", Kind: ErrRejected, Message: "invoice not found"},
		"malformed":   &ProviderError{Provider: "crystalpay", Op: "invoice/info", Kind: ErrMalformedReply},
	} {
		t.Run(name, func(t *testing.T) {
			s := newCallbackShop(t, nil)
			o := s.created("")
			s.provider.pay(o.Payment.ID)
			s.provider.fail(err)
			w := s.post(signedCallback(o.Payment.ID, o.ID))
			expectAnswer(t, w, http.StatusServiceUnavailable, "provider_unavailable")
			if w.Header().Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
			s.unchanged(o)
			s.provider.fail(nil)
			expectAnswer(t, s.post(signedCallback(o.Payment.ID, o.ID)), http.StatusOK, "")
			if got := s.load(o.ID); got.State != OrderPaid {
				t.Errorf("once the provider answered, the order is %s", got.State)
			}
		})
	}
}

// TestCallbackStorageFailure: when the payment cannot be stored, the
// callback is 503 and the order is as it was.
func TestCallbackStorageFailure(t *testing.T) {
	storage := &failingStorage{Storage: newBenchStorage()}
	s := newCallbackShop(t, storage)
	o := s.created("")
	s.provider.pay(o.Payment.ID)
	storage.failWhen(func(key string) bool { return strings.HasPrefix(key, ordersPrefix+"/") })
	expectAnswer(t, s.post(signedCallback(o.Payment.ID, o.ID)), http.StatusServiceUnavailable, "storage_unavailable")
	storage.failWhen(nil)
	s.unchanged(o)
}

// TestCallbackPaysAClosedOrderLate: a callback for an order that expired
// unpaid, whose link was paid after, makes it paid late with its receipt.
func TestCallbackPaysAClosedOrderLate(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	s.clock.Add(31 * time.Minute)
	s.pass()
	if got := s.load(o.ID); got.State != OrderExpired {
		t.Fatalf("past its time the order is %s", got.State)
	}
	s.provider.pay(o.Payment.ID)
	expectAnswer(t, s.post(signedCallback(o.Payment.ID, o.ID)), http.StatusOK, "")
	got := s.load(o.ID)
	if got.State != OrderPaid || !got.PaidLate || got.Receipt == nil {
		t.Fatalf("the order is %s (late %v, receipt %+v), want paid late with its receipt", got.State, got.PaidLate, got.Receipt)
	}
}

// TestCallbackNotesAProblem: a callback for a payment the provider reports
// a problem with (CrystalPAY wrongamount) notes it on the order, once,
// and does not pay it.
func TestCallbackNotesAProblem(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	s.provider.setProblem(o.Payment.ID, "wrongamount: the buyer sent another amount")
	for range 2 {
		expectAnswer(t, s.post(signedCallback(o.Payment.ID, o.ID)), http.StatusOK, "")
	}
	got := s.load(o.ID)
	if got.State != OrderPending || !strings.Contains(got.Error, "wrongamount") || got.Receipt != nil {
		t.Fatalf("the order is %s (%q, receipt %v), want pending with the problem noted", got.State, got.Error, got.Receipt)
	}
	if n := s.logs.FilterMessage("payment problem").Len(); n != 1 {
		t.Errorf("%d warnings of the problem, want one", n)
	}
}

// TestCallbackRequestLimits: only a POST of at most 64 KiB is read; a body
// that is not a callback is 400.
func TestCallbackRequestLimits(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	s.provider.pay(o.Payment.ID)
	w := s.call(http.MethodGet, "")
	expectAnswer(t, w, http.StatusMethodNotAllowed, "method_not_allowed")
	if allow := w.Header().Get("Allow"); allow != "POST" {
		t.Errorf("Allow %q", allow)
	}
	valid := signedCallback(o.Payment.ID, o.ID)
	huge := valid[:len(valid)-1] + `,"pad":"` + strings.Repeat("x", 64<<10) + `"}`
	expectAnswer(t, s.post(huge), http.StatusRequestEntityTooLarge, "body_too_large")
	for _, body := range []string{"", "OK", "[]", `{"id":""}`, "id=" + o.Payment.ID} {
		expectAnswer(t, s.post(body), http.StatusBadRequest, "bad_callback")
	}
	s.unchanged(o)
	s.asked(0)
}

// TestCallbackForAPayout: a payout's callback is answered 200 and logged,
// and no order is looked at.
func TestCallbackForAPayout(t *testing.T) {
	s := newCallbackShop(t, nil)
	id := "123456789_dpWminAiaqwTcBOJVlFk"
	body := fmt.Sprintf(`{"id":%q,"kind":"payoff","state":"payed","signature":%q}`, id, sha1Hex(id+":"+callbackSalt))
	expectAnswer(t, s.post(body), http.StatusOK, "")
	lines := s.logs.FilterMessage("payout callback").All()
	if len(lines) != 1 || lines[0].ContextMap()["payout_id"] != id || lines[0].Level != zapcore.InfoLevel {
		t.Errorf("logged %v, want one info line with the payout id", lines)
	}
	s.asked(0)
}

// TestConcurrentCallbacksPayOnce: the same callback many times at once is
// one paid transition and one receipt attempt.
func TestConcurrentCallbacksPayOnce(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	s.provider.pay(o.Payment.ID)
	body := signedCallback(o.Payment.ID, o.ID)
	var wg sync.WaitGroup
	codes := make([]int, 20)
	for i := range codes {
		wg.Go(func() {
			req := httptest.NewRequest(http.MethodPost, "/kassa/callback/main", strings.NewReader(body))
			w := httptest.NewRecorder()
			if err := s.handler.ServeHTTP(w, req, nil); err != nil {
				codes[i] = -1
				return
			}
			codes[i] = w.Code
		})
	}
	wg.Wait()
	for i, code := range codes {
		if code != http.StatusOK {
			t.Errorf("callback %d answered %d", i, code)
		}
	}
	got := s.load(o.ID)
	if got.State != OrderPaid || got.Receipt == nil || got.Receipt.attempt() != 1 || len(got.Receipt.History) != 0 {
		t.Fatalf("the order is %s, receipt %+v; want paid with one receipt attempt", got.State, got.Receipt)
	}
	if n := s.logs.FilterMessage("order paid").Len(); n != 1 {
		t.Errorf("%d paid transitions, want one", n)
	}
}

// FuzzCallbackHandler feeds arbitrary bodies to the handler of a shop with
// one pending order whose payment is paid. Nothing is a 5xx (the provider
// and the storage never fail here), and the order moves only for a body
// whose signature holds.
func FuzzCallbackHandler(f *testing.F) {
	const orderID = "fuzzORDERfuzzORDER0001"
	f.Add(signedCallback("inv-1", orderID))
	f.Add(callbackBody("inv-1", orderID, sha1Hex("inv-1:wrong")))
	f.Add(signedCallback("inv-2", orderID))
	f.Add(signedCallback("inv-1", "fuzzORDERfuzzORDER0002"))
	f.Add(fmt.Sprintf(`{"id":"inv-1","kind":"payoff","signature":%q}`, sha1Hex("inv-1:"+callbackSalt)))
	f.Add(`{"id":"inv-1","extra":"` + orderID + `","signature":null}`)
	f.Add(`{"ID":"inv-1","Extra":"` + orderID + `","Signature":"` + sha1Hex("inv-1:"+callbackSalt) + `","id":"x"}`)
	f.Add(`not json`)
	f.Add(``)
	f.Fuzz(func(t *testing.T, body string) {
		s := newCallbackShop(t, nil)
		s.app.newID = func() string { return orderID }
		o := s.created("")
		s.provider.pay(o.Payment.ID)
		w := s.post(body)
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("answered %d %s", w.Code, w.Body)
		}
		var v fakeCallback
		signed := json.Unmarshal([]byte(body), &v) == nil && v.ID != "" && v.Signature == sha1Hex(v.ID+":"+callbackSalt)
		if got := s.load(o.ID); got.State != o.State && !signed {
			t.Fatalf("an unsigned body moved the order to %s", got.State)
		}
		if w.Code == http.StatusForbidden && signed || w.Code == http.StatusOK && !signed {
			t.Fatalf("answered %d to a body whose signature holds: %v", w.Code, signed)
		}
	})
}

// TestCallbackCaddyfile: kassa_callback takes the account's name and
// nothing else.
func TestCallbackCaddyfile(t *testing.T) {
	var h CallbackHandler
	if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`kassa_callback main`)); err != nil || h.Payment != "main" {
		t.Fatalf("got %+v, %v", h, err)
	}
	checkCaddyfileErrors(t, func(d *caddyfile.Dispenser) error { return new(CallbackHandler).UnmarshalCaddyfile(d) }, map[string]string{
		"kassa_callback":                    "needs the payment account",
		"kassa_callback main card":          "wrong argument count",
		"kassa_callback main {\n salt x\n}": "takes no block",
	})
}

// TestCallbackNeedsACallbackAccount: the handler is refused for an account
// whose provider sends no callbacks, an unknown account, or none named.
func TestCallbackNeedsACallbackAccount(t *testing.T) {
	a := &App{accounts: map[string]*account{
		"card": {name: "card", provider: "pegas", PaymentProvider: newLifeProvider("pegas")},
		"main": {name: "main", provider: "crystalpay", PaymentProvider: newCallbackProvider()},
	}}
	for payment, want := range map[string]string{
		"card": `payment account "card" (pegas) sends no callbacks`,
		"v1":   `no payment account "v1"`,
		"":     "name the payment account",
	} {
		err := (&CallbackHandler{Payment: payment}).use(a, zap.NewNop())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", payment, err, want)
		}
		if payment == "card" && (err == nil || !strings.Contains(err.Error(), "api v3") || !strings.Contains(err.Error(), "main")) {
			t.Errorf("the refusal does not say which accounts send callbacks: %v", err)
		}
	}
	if err := (&CallbackHandler{Payment: "main"}).use(a, zap.NewNop()); err != nil {
		t.Errorf("main: %v", err)
	}
}

// TestCallbackRefusedAtLoad: a Caddyfile whose kassa_callback names an
// account that sends no callbacks adapts, and its config does not load.
func TestCallbackRefusedAtLoad(t *testing.T) {
	dir := t.TempDir()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(`{
	admin off
	storage file_system `+dir+`
	kassa {
		payment card pegas {
			token test-token
			endpoint https://pegas.example/api/v1
		}
		order_ttl 30m
	}
}
http://127.0.0.1:0 {
	kassa_callback /kassa/callback/card card
}
`), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	if !strings.Contains(string(cfg), `"handler":"kassa_callback","payment":"card"`) {
		t.Fatalf("adapted: %s", cfg)
	}
	err = caddy.Load(cfg, true)
	t.Cleanup(func() { caddy.Stop() })
	if err == nil || !strings.Contains(err.Error(), "sends no callbacks") {
		t.Fatalf("load: %v, want the account refused", err)
	}
}

// TestCallbackSlowBodyCutOff: a callback whose body trickles in is cut off
// at the handler's read deadline and answered 400, so that a slowloris on
// the public callback route holds no connection open. (Caddy sets no
// body read timeout by default.)
func TestCallbackSlowBodyCutOff(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	s.handler.readTimeout = 50 * time.Millisecond
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := s.handler.ServeHTTP(w, r, nil); err != nil {
			t.Errorf("ServeHTTP: %v", err)
		}
	}))
	defer srv.Close()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half of the body, then nothing more.
	body := signedCallback(o.Payment.ID, o.ID)
	fmt.Fprintf(conn, "POST /kassa/callback/main HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		len(body), body[:len(body)/2])
	// Only a guard against hanging forever: the answer must come at the
	// handler's deadline, long before this one.
	if err := conn.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to a trickling callback (the connection is held open): %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("answer %d, want 400", resp.StatusCode)
	}
	s.unchanged(o)
	s.asked(0)
}

// TestCallbackUnderpaidNotCountedPaid: a callback whose payment the
// provider reports paid for less than the order leaves the order unpaid
// with the shortfall noted, and is counted as a problem, never as paid.
func TestCallbackUnderpaidNotCountedPaid(t *testing.T) {
	s := newCallbackShop(t, nil)
	o := s.created("")
	s.provider.pay(o.Payment.ID)
	s.provider.mu.Lock()
	s.provider.amounts[o.Payment.ID] = o.Amount.Sub(decimal.NewFromInt(1)).String()
	s.provider.mu.Unlock()
	paid, problem := counted(metrics.callbacks, nameLabel("main"), callbackPaid), counted(metrics.callbacks, nameLabel("main"), callbackProblem)
	expectAnswer(t, s.post(signedCallback(o.Payment.ID, o.ID)), http.StatusOK, "")
	got := s.load(o.ID)
	if got.State != OrderPending || got.Receipt != nil || !strings.Contains(got.Error, "paid of") {
		t.Fatalf("the order is %s (%q, receipt %+v); want pending with the shortfall noted", got.State, got.Error, got.Receipt)
	}
	if n := counted(metrics.callbacks, nameLabel("main"), callbackPaid) - paid; n != 0 {
		t.Errorf("an underpaid callback was counted paid (%v)", n)
	}
	if n := counted(metrics.callbacks, nameLabel("main"), callbackProblem) - problem; n != 1 {
		t.Errorf("counted %v problems, want 1", n)
	}
	select {
	case id := <-s.app.reconciler.nudges:
		t.Errorf("the reconciler was nudged (%s) to send a receipt for an unpaid order", id)
	default:
	}
}
