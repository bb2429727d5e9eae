package sandbox

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// callbackSink is a shop's callback endpoint: it keeps what it receives
// and answers the status statusFor gives the nth delivery (from 1).
type callbackSink struct {
	t         *testing.T
	srv       *httptest.Server
	arrived   chan receivedCallback
	mu        sync.Mutex
	n         int
	statusFor func(n int) int
}

type receivedCallback struct {
	path, query, contentType string
	body                     map[string]any
}

func newCallbackSink(t *testing.T, statusFor func(n int) int) *callbackSink {
	k := &callbackSink{t: t, arrived: make(chan receivedCallback, 100), statusFor: statusFor}
	k.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var m map[string]any
		if r.Method != http.MethodPost || json.Unmarshal(b, &m) != nil {
			t.Errorf("callback %s with body %s, want a POST of a JSON object", r.Method, b)
		}
		k.mu.Lock()
		k.n++
		status := k.statusFor(k.n)
		k.mu.Unlock()
		k.arrived <- receivedCallback{r.URL.Path, r.URL.RawQuery, r.Header.Get("Content-Type"), m}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("OK"))
	}))
	t.Cleanup(k.srv.Close)
	return k
}

func always(status int) func(int) int { return func(int) int { return status } }

// next waits for the next delivery.
func (k *callbackSink) next() receivedCallback {
	k.t.Helper()
	select {
	case c := <-k.arrived:
		return c
	case <-time.After(10 * time.Second):
		k.t.Fatal("no callback arrived")
		return receivedCallback{}
	}
}

func (k *callbackSink) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.n
}

// callbackCalls waits until the journal holds n callback deliveries and
// returns them.
func (s *testSandbox) callbackCalls(n int) []Call {
	s.t.Helper()
	for range 1000 {
		if calls := s.calls("?api=crystalpay&op=callback"); len(calls) >= n {
			return calls
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.t.Fatalf("the journal never held %d callback deliveries", n)
	return nil
}

func TestCrystalPayV3InvoiceCallback(t *testing.T) {
	sink := newCallbackSink(t, always(http.StatusOK))
	s := newTestSandbox(t, nil)
	cb := `"callback_url":"` + sink.srv.URL + `/kassa/cb?token=t0ken"`
	id := s.createV3Invoice(`"amount":100,"type":"purchase","lifetime":60,"extra":"order-9",` + cb)
	s.do(http.MethodPost, "/pay/crystalpay/"+id, "")

	got := sink.next()
	if got.path != "/kassa/cb" || got.query != "token=t0ken" || got.contentType != "application/json" {
		t.Errorf("delivered to %s?%s as %s", got.path, got.query, got.contentType)
	}
	if got.body["signature"] != sign(id+":sandbox-salt") {
		t.Errorf("signature %v, want sha1(id:salt)", got.body["signature"])
	}
	info := s.v3("invoice/info", `"id":"`+id+`"`)
	delete(info, "error")
	delete(info, "errors")
	delete(got.body, "signature")
	if g, w := mustMarshal(t, got.body), mustMarshal(t, info); string(g) != string(w) {
		t.Errorf("callback body\n%s\nwant the invoice/info object\n%s", g, w)
	}

	calls := s.callbackCalls(1)
	c := calls[0]
	if c.URL != sink.srv.URL+"/kassa/cb" || c.Path != "/kassa/cb" || c.Status != http.StatusOK || c.Attempt != 1 ||
		c.Method != http.MethodPost || len(c.Query) != 0 || c.Fault != "" {
		t.Errorf("journal entry %+v", c)
	}
	var body map[string]any
	if err := json.Unmarshal(c.Body, &body); err != nil || body["signature"] != "***" || body["id"] != id {
		t.Errorf("journaled body %s, want the signature masked", c.Body)
	}

	// wrongamount and failed call back too; processing does not.
	short := s.createV3Invoice(`"amount":100,"type":"purchase","lifetime":60,` + cb)
	s.control(http.MethodPost, "invoice", `{"id":"`+short+`","state":"processing"}`, http.StatusOK, nil)
	s.control(http.MethodPost, "invoice", `{"id":"`+short+`","state":"wrongamount","amount":"10"}`, http.StatusOK, nil)
	if got := sink.next(); got.body["id"] != short || got.body["state"] != "wrongamount" {
		t.Errorf("wrongamount callback %v", got.body)
	}
	failed := s.createV3Invoice(`"amount":100,"type":"purchase","lifetime":60,` + cb)
	s.control(http.MethodPost, "invoice", `{"id":"`+failed+`","state":"failed"}`, http.StatusOK, nil)
	if got := sink.next(); got.body["id"] != failed || got.body["state"] != "failed" || got.body["signature"] != sign(failed+":sandbox-salt") {
		t.Errorf("failed callback %v", got.body)
	}
	if n := sink.count(); n != 3 {
		t.Errorf("%d deliveries, want 3", n)
	}
}

func TestCrystalPayV3CallbackSalt(t *testing.T) {
	sink := newCallbackSink(t, always(http.StatusOK))
	s := newTestSandbox(t, func(h *Handler) { h.CrystalPaySalt = "my-salt" })
	id := s.createV3Invoice(`"amount":1,"type":"purchase","lifetime":5,"callback_url":"` + sink.srv.URL + `"`)
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+id+`"}`, http.StatusOK, nil)
	if got := sink.next(); got.body["signature"] != sign(id+":my-salt") {
		t.Errorf("signature %v, want sha1 over the configured salt", got.body["signature"])
	}
}

func TestCrystalPayV3CallbackRetries(t *testing.T) {
	sink := newCallbackSink(t, func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	s := newTestSandbox(t, func(h *Handler) { h.retryAfter = []time.Duration{time.Millisecond, time.Millisecond} })
	id := s.createV3Invoice(`"amount":1,"type":"purchase","lifetime":5,"callback_url":"` + sink.srv.URL + `/cb"`)
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+id+`"}`, http.StatusOK, nil)
	first, second := sink.next(), sink.next()
	if first.body["signature"] != sign(id+":sandbox-salt") || second.body["signature"] != first.body["signature"] {
		t.Errorf("signatures %v and %v", first.body["signature"], second.body["signature"])
	}
	calls := s.callbackCalls(2)
	if len(calls) != 2 || calls[0].Status != 500 || calls[0].Attempt != 1 || calls[1].Status != 200 || calls[1].Attempt != 2 {
		t.Errorf("journal %+v, want a 500 then a 200", calls)
	}
}

func TestCrystalPayV3CallbackStopsOnCleanup(t *testing.T) {
	sink := newCallbackSink(t, always(http.StatusServiceUnavailable))
	s := newTestSandbox(t, func(h *Handler) { h.retryAfter = []time.Duration{time.Hour} })
	id := s.createV3Invoice(`"amount":1,"type":"purchase","lifetime":5,"callback_url":"` + sink.srv.URL + `"`)
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+id+`"}`, http.StatusOK, nil)
	sink.next()
	s.callbackCalls(1) // the retry is now waiting its hour

	// Cleanup returns only once every delivery goroutine has ended: well
	// before the hour is up.
	done := make(chan error)
	go func() { done <- s.h.Cleanup() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Cleanup waits for the retry")
	}
	ran := false
	s.h.callbacks.start(func(context.Context) { ran = true })
	s.h.callbacks.stop() // waits for anything start began
	if ran || sink.count() != 1 {
		t.Errorf("after Cleanup: a new delivery ran (%v), %d deliveries", ran, sink.count())
	}
}

func TestCrystalPayV3ForgedCallback(t *testing.T) {
	sink := newCallbackSink(t, always(http.StatusOK))
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"crystalpay","op":"callback","mode":"forgedcallback","count":1}`)
	cb := `"callback_url":"` + sink.srv.URL + `"`
	forged, genuine := s.createV3Invoice(`"amount":1,"type":"purchase","lifetime":5,`+cb),
		s.createV3Invoice(`"amount":2,"type":"purchase","lifetime":5,`+cb)
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+forged+`"}`, http.StatusOK, nil)
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+genuine+`"}`, http.StatusOK, nil)
	got := map[string]string{}
	for range 2 {
		c := sink.next()
		got[c.body["id"].(string)], _ = c.body["signature"].(string)
	}
	if sig := got[forged]; sig == sign(forged+":sandbox-salt") || !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(sig) {
		t.Errorf("forged signature %q: want a well-formed but wrong sha1", sig)
	}
	if got[genuine] != sign(genuine+":sandbox-salt") {
		t.Errorf("the fault outlived its count: %q", got[genuine])
	}
	for _, c := range s.callbackCalls(2) {
		var body map[string]any
		_ = json.Unmarshal(c.Body, &body)
		if want := map[bool]string{true: FaultForgedCallback, false: ""}[body["id"] == forged]; c.Fault != want {
			t.Errorf("journal fault %q for %v", c.Fault, body["id"])
		}
	}
	wantJSON(t, s.get("/control/faults"), http.StatusOK, `{"faults":[]}`)

	for _, f := range []string{
		`{"api":"crystalpay","op":"invoice/create","mode":"forgedcallback"}`,
		`{"api":"crystalpay","op":"*","mode":"forgedcallback"}`,
		`{"api":"pegas","op":"callback","mode":"forgedcallback"}`,
		`{"api":"crystalpay","op":"callback","mode":"error500"}`,
	} {
		s.control(http.MethodPost, "faults", f, http.StatusBadRequest, nil)
	}
}

func TestCrystalPayV3ControlCallback(t *testing.T) {
	sink := newCallbackSink(t, always(http.StatusOK))
	s := newTestSandbox(t, withCrystalPayBalance(100))
	cb := `"callback_url":"` + sink.srv.URL + `/cb?secret=x"`
	id := s.createV3Invoice(`"amount":1,"type":"purchase","lifetime":5,` + cb)
	var sent struct{ Callback map[string]string }
	s.control(http.MethodPost, "callback", `{"id":"`+id+`"}`, http.StatusOK, &sent)
	if sent.Callback["id"] != id || sent.Callback["url"] != sink.srv.URL+"/cb" {
		t.Errorf("control callback answered %v, want the url without its query", sent.Callback)
	}
	if got := sink.next(); got.body["state"] != "notpayed" || got.body["signature"] != sign(id+":sandbox-salt") {
		t.Errorf("callback on demand %v", got.body)
	}

	payoff := s.createPayoff(`10`, "10", "amount", cb)["id"].(string)
	s.control(http.MethodPost, "callback", `{"id":"`+payoff+`"}`, http.StatusOK, nil)
	if got := sink.next(); got.body["id"] != payoff || got.body["state"] != "created" || got.body["signature"] != sign(payoff+":sandbox-salt") {
		t.Errorf("payoff callback on demand %v", got.body)
	}

	quiet := s.createV3Invoice(`"amount":1,"type":"purchase","lifetime":5`)
	s.control(http.MethodPost, "callback", `{"id":"`+quiet+`"}`, http.StatusConflict, nil)
	s.control(http.MethodPost, "callback", `{"id":"123456789_nope"}`, http.StatusNotFound, nil)
	s.control(http.MethodPost, "callback", `{"id":"x","url":"http://evil.example"}`, http.StatusBadRequest, nil)
}

func TestCrystalPayV3PayoffCallback(t *testing.T) {
	sink := newCallbackSink(t, always(http.StatusOK))
	s := newTestSandbox(t, withCrystalPayBalance(1000))
	cb := `"callback_url":"` + sink.srv.URL + `/payoffs"`
	paid := s.createPayoff(`100`, "100", "amount", cb)["id"].(string)
	wantV3OK(t, s.decidePayoff("submit", paid))
	s.clock.Advance(payoffDelay)
	s.v3("payoff/info", `"id":"`+paid+`"`)
	got := sink.next()
	if got.path != "/payoffs" || got.body["id"] != paid || got.body["state"] != "payed" ||
		got.body["signature"] != sign(paid+":sandbox-salt") || got.body["error"] != nil {
		t.Errorf("payoff callback %v", got.body)
	}

	canceled := s.createPayoff(`100`, "100", "amount", cb)["id"].(string)
	s.decidePayoff("cancel", canceled)
	if got := sink.next(); got.body["id"] != canceled || got.body["state"] != "canceled" {
		t.Errorf("cancel callback %v", got.body)
	}
}

func TestCrystalPayV3Faults(t *testing.T) {
	sink := newCallbackSink(t, always(http.StatusOK))
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"crystalpay","op":"invoice/create","mode":"error500","count":1}`)
	r := s.postJSON("/crystalpay/v3/invoice/create/", `{"auth_login":"sandbox","auth_secret":"sandbox-secret","amount":1,"type":"purchase","lifetime":5}`)
	if r.status != http.StatusInternalServerError || !strings.Contains(string(r.body), "500 Internal Server Error") {
		t.Fatalf("error500: %d %s", r.status, r.body)
	}
	if n := len(s.state().CrystalPay.V3Invoices); n != 0 {
		t.Errorf("a faulted create made %d invoices", n)
	}
	id := s.createV3Invoice(`"amount":1,"type":"purchase","lifetime":5,"callback_url":"` + sink.srv.URL + `"`)

	s.addFault(`{"api":"crystalpay","op":"me/info","mode":"auth","count":1}`)
	if m := s.v3("me/info", ""); m["error"] != true || len(m) != 2 {
		t.Errorf("auth fault %v, want an error envelope", m)
	}
	wantV3OK(t, s.v3("me/info", ""))

	s.addFault(`{"api":"crystalpay","op":"invoice/info","mode":"forbidden","count":1,"message":"Касса заблокирована"}`)
	wantV3Error(t, s.v3("invoice/info", `"id":"`+id+`"`), "Касса заблокирована")

	s.addFault(`{"api":"crystalpay","op":"payoff/submit","mode":"malformed","count":1}`)
	r = s.postJSON("/crystalpay/v3/payoff/submit/", `{}`)
	if r.status != http.StatusOK || json.Valid(r.body) {
		t.Errorf("malformed: %d %s", r.status, r.body)
	}

	// A fault on every op spares the callbacks, which are no API call.
	s.addFault(`{"api":"crystalpay","op":"*","mode":"error500"}`)
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+id+`"}`, http.StatusOK, nil)
	if got := sink.next(); got.body["signature"] != sign(id+":sandbox-salt") {
		t.Errorf("callback under a * fault %v", got.body)
	}
	calls := s.calls("?api=crystalpay&op=invoice/create")
	if len(calls) != 2 || calls[0].Fault != FaultError500 || calls[1].Fault != "" {
		t.Errorf("journal of invoice/create %+v", calls)
	}
}

func TestCrystalPayV3JournalMasksSecrets(t *testing.T) {
	s := newTestSandbox(t, withCrystalPayBalance(100))
	sig := sign("10:CARD:4111:sandbox-salt")
	s.v3("payoff/create", `"signature":"`+sig+`","amount":10,"method":"CARD","wallet":"4111","subtract_from":"amount"`)
	s.v3("payoff/create", `"signature":"bad","amount":10,"method":"CARD","wallet":"4111","subtract_from":"amount"`)

	calls := s.calls("?api=crystalpay&op=payoff/create")
	if len(calls) != 2 {
		t.Fatalf("%d calls", len(calls))
	}
	var body map[string]any
	if err := json.Unmarshal(calls[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if body["auth_secret"] != "***" || body["signature"] != "***" || body["auth_login"] != "sandbox" || body["amount"] != 10.0 {
		t.Errorf("journaled body %s", calls[0].Body)
	}
	for _, route := range []string{"/control/calls", "/control/state"} {
		r := s.get(route)
		for _, secret := range []string{"sandbox-secret", sig, "sandbox-salt"} {
			if strings.Contains(string(r.body), secret) {
				t.Errorf("%s shows a secret", route)
			}
		}
	}
}
