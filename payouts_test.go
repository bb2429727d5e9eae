package kassa

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

// payoutProvider is a payment provider that counts its Payout calls and
// the payouts they made. A call may be held until release is closed, and
// the next call may pay and then lose its reply.
type payoutProvider struct {
	benchProvider
	mu    sync.Mutex
	calls int
	paid  []PayoutRequest
	// lose, when set, is what the next call answers after it paid: a
	// lost reply.
	lose error
	// refuse, when set, is what every call answers without paying.
	refuse error
	// entered gets a value when a call starts, and release, when set,
	// holds the call until it is closed. A call whose ctx ends first pays
	// and answers ErrUnavailable, as a provider that got a request whose
	// client gave up does.
	entered chan struct{}
	release chan struct{}
	// refuseRepeats makes it refuse a repeated order id with ErrDuplicate,
	// as Pegas-kassa does.
	refuseRepeats bool
}

func (p *payoutProvider) Payout(ctx context.Context, req PayoutRequest) (Payout, error) {
	p.mu.Lock()
	p.calls++
	lose, refuse := p.lose, p.refuse
	p.lose = nil
	var repeated bool
	for _, prior := range p.paid {
		repeated = repeated || p.refuseRepeats && req.OrderID != "" && prior.OrderID == req.OrderID
	}
	p.mu.Unlock()
	if p.entered != nil {
		p.entered <- struct{}{}
	}
	if p.release != nil {
		select {
		case <-p.release:
		case <-ctx.Done():
			lose = &ProviderError{Provider: "fake", Op: "withdraw", Kind: ErrUnavailable, Err: ctx.Err()}
		}
	}
	switch {
	case repeated:
		return Payout{}, &ProviderError{Provider: "fake", Op: "withdraw", Kind: ErrDuplicate, Message: "order_id already exists"}
	case refuse != nil:
		return Payout{}, refuse
	}
	p.mu.Lock()
	p.paid = append(p.paid, req)
	n := len(p.paid)
	p.mu.Unlock()
	if lose != nil {
		return Payout{}, lose
	}
	return Payout{ID: "wd-" + decimal.NewFromInt(int64(n)).String(), Commission: decimal.RequireFromString("1.5")}, nil
}

// counts reports the Payout calls and the payouts made.
func (p *payoutProvider) counts() (calls, paid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls, len(p.paid)
}

// refusingPayoutProvider is a payoutProvider that refuses repeated order
// ids and says so, as Pegas-kassa does.
type refusingPayoutProvider struct{ *payoutProvider }

func (refusingPayoutProvider) RefusesRepeatedOrderID() {}

// payoutApp is an app on a fresh file storage with the CrystalPAY-like
// account "main" paying through crystal and the Pegas-like "card" paying
// through pegas.
func payoutApp(t *testing.T, crystal, pegas *payoutProvider) *App {
	t.Helper()
	a := &App{logger: zap.NewNop(), now: time.Now}
	pegas.refuseRepeats = true
	a.accounts = map[string]*account{
		"main": {name: "main", provider: "crystalpay", PaymentProvider: crystal},
		"card": {name: "card", provider: "pegas", PaymentProvider: refusingPayoutProvider{pegas}},
	}
	a.useStorage(&certmagic.FileStorage{Path: t.TempDir()})
	return a
}

// postPayout posts body to the app's POST /kassa/payouts under key (none
// when key is empty) with ctx, and answers as the admin endpoint does.
func postPayout(ctx context.Context, a *App, key, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequestWithContext(ctx, http.MethodPost, "/kassa/payouts", strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	if key != "" {
		r.Header.Set("Idempotency-Key", key)
	}
	w := httptest.NewRecorder()
	if err := a.serveAdmin(w, r); err != nil {
		writeAdminError(w, err)
	}
	return w
}

// errorCode is the code of an admin error answer, or "".
func errorCode(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var reply struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(w.Body.Bytes(), &reply)
	return reply.Error.Code
}

const (
	crystalPayout = `{"payment":"main","amount":"100","to":"79990000000","method":"qw"}`
	pegasPayout   = `{"payment":"card","amount":"100.00","to":"79990000000","method":"wallet","comment":"Возврат"}`
)

// lostReply is a provider call that timed out after the provider acted.
var lostReply = &ProviderError{Provider: "fake", Op: "withdraw", Kind: ErrUnavailable, Message: "timeout"}

// TestPayoutIdempotency: under one Idempotency-Key a payout pays at most
// once, whatever retries, double clicks, lost replies, hang-ups or storage
// failures happen.
func TestPayoutIdempotency(t *testing.T) {
	ctx := context.Background()

	t.Run("same key twice", func(t *testing.T) {
		crystal := new(payoutProvider)
		a := payoutApp(t, crystal, new(payoutProvider))
		first := postPayout(ctx, a, "k1", crystalPayout)
		second := postPayout(ctx, a, "k1", crystalPayout)
		if first.Code != http.StatusOK || !strings.Contains(first.Body.String(), `"state":"sent"`) ||
			!strings.Contains(first.Body.String(), `"id":"wd-1"`) || first.Header().Get("Idempotent-Replayed") != "" {
			t.Fatalf("first: %d %s", first.Code, first.Body)
		}
		if second.Code != http.StatusOK || second.Body.String() != first.Body.String() || second.Header().Get("Idempotent-Replayed") != "true" {
			t.Errorf("repeat: %d %s %v; want the first answer again, replayed", second.Code, second.Body, second.Header())
		}
		// The same payout written another way is the same payout.
		if w := postPayout(ctx, a, "k1", `{"payment":"main","amount":"100.00","to":"79990000000","method":"qw"}`); w.Code != http.StatusOK {
			t.Errorf("repeat with 100.00 for 100: %d %s", w.Code, w.Body)
		}
		if calls, _ := crystal.counts(); calls != 1 {
			t.Errorf("%d provider calls, want 1", calls)
		}
		// Another key is another payout.
		if w := postPayout(ctx, a, "k2", crystalPayout); w.Code != http.StatusOK || w.Header().Get("Idempotent-Replayed") != "" {
			t.Errorf("a new key: %d %s", w.Code, w.Body)
		}
		if calls, _ := crystal.counts(); calls != 2 {
			t.Errorf("%d provider calls after a second key, want 2", calls)
		}
	})

	t.Run("double click", func(t *testing.T) {
		crystal := new(payoutProvider)
		a := payoutApp(t, crystal, new(payoutProvider))
		var wg sync.WaitGroup
		start := make(chan struct{})
		answers := make([]*httptest.ResponseRecorder, 2)
		for i := range answers {
			wg.Go(func() {
				<-start
				answers[i] = postPayout(ctx, a, "click", crystalPayout)
			})
		}
		close(start)
		wg.Wait()
		replayed := 0
		for _, w := range answers {
			if w.Code != http.StatusOK || w.Body.String() != answers[0].Body.String() {
				t.Errorf("answer: %d %s", w.Code, w.Body)
			}
			if w.Header().Get("Idempotent-Replayed") == "true" {
				replayed++
			}
		}
		if calls, _ := crystal.counts(); calls != 1 || replayed != 1 {
			t.Errorf("%d provider calls, %d replayed answers; want 1 and 1", calls, replayed)
		}
	})

	t.Run("different body same key", func(t *testing.T) {
		crystal := new(payoutProvider)
		a := payoutApp(t, crystal, new(payoutProvider))
		postPayout(ctx, a, "k1", crystalPayout)
		w := postPayout(ctx, a, "k1", `{"payment":"main","amount":"200","to":"79990000000","method":"qw"}`)
		if w.Code != http.StatusUnprocessableEntity || errorCode(t, w) != "idempotency_key_reused" {
			t.Errorf("another payout under a used key: %d %s", w.Code, w.Body)
		}
		if calls, _ := crystal.counts(); calls != 1 {
			t.Errorf("%d provider calls, want 1", calls)
		}
		// Keys are the account's own: another account's key is apart.
		pegasAnswer := postPayout(ctx, a, "k1", pegasPayout)
		if pegasAnswer.Code != http.StatusOK {
			t.Errorf("the same key on another account: %d %s", pegasAnswer.Code, pegasAnswer.Body)
		}
	})

	t.Run("refusal is final", func(t *testing.T) {
		crystal := &payoutProvider{refuse: &ProviderError{Provider: "fake", Op: "withdraw", Kind: ErrRejected, Message: "insufficient funds"}}
		a := payoutApp(t, crystal, new(payoutProvider))
		first := postPayout(ctx, a, "k1", crystalPayout)
		crystal.mu.Lock()
		crystal.refuse = nil
		crystal.mu.Unlock()
		second := postPayout(ctx, a, "k1", crystalPayout)
		if first.Code != http.StatusBadGateway || errorCode(t, first) != "provider_error" ||
			second.Code != first.Code || second.Body.String() != first.Body.String() || second.Header().Get("Idempotent-Replayed") != "true" {
			t.Errorf("a refused payout and its repeat: %d %s, %d %s", first.Code, first.Body, second.Code, second.Body)
		}
		if calls, paid := crystal.counts(); calls != 1 || paid != 0 {
			t.Errorf("%d calls, %d paid; want 1 and 0", calls, paid)
		}
	})

	t.Run("lost reply crystalpay", func(t *testing.T) {
		crystal := &payoutProvider{lose: lostReply}
		a := payoutApp(t, crystal, new(payoutProvider))
		first := postPayout(ctx, a, "k1", crystalPayout)
		if first.Code != http.StatusServiceUnavailable || errorCode(t, first) != "payout_outcome_unknown" ||
			!strings.Contains(first.Body.String(), "dashboard") {
			t.Errorf("lost reply: %d %s", first.Code, first.Body)
		}
		retry := postPayout(ctx, a, "k1", crystalPayout)
		if retry.Code != http.StatusConflict || errorCode(t, retry) != "payout_outcome_unknown" {
			t.Errorf("retry after a lost reply: %d %s", retry.Code, retry.Body)
		}
		if calls, paid := crystal.counts(); calls != 1 || paid != 1 {
			t.Errorf("%d calls, %d paid; want 1 and 1: CrystalPAY cannot be asked, so it is never sent again", calls, paid)
		}
	})

	t.Run("lost reply pegas", func(t *testing.T) {
		pegas := &payoutProvider{lose: lostReply}
		a := payoutApp(t, new(payoutProvider), pegas)
		first := postPayout(ctx, a, "k1", pegasPayout)
		if first.Code != http.StatusServiceUnavailable || errorCode(t, first) != "payout_outcome_unknown" {
			t.Errorf("lost reply: %d %s", first.Code, first.Body)
		}
		retry := postPayout(ctx, a, "k1", pegasPayout)
		var sent payoutAnswer
		json.Unmarshal(retry.Body.Bytes(), &sent)
		if retry.Code != http.StatusOK || sent.State != payoutSent || sent.ID != "" || sent.Message == "" || sent.OrderID == "" {
			t.Errorf("retry after a lost reply: %d %s; want sent, its id unknown and said so", retry.Code, retry.Body)
		}
		if again := postPayout(ctx, a, "k1", pegasPayout); again.Code != http.StatusOK || again.Body.String() != retry.Body.String() {
			t.Errorf("a third try: %d %s", again.Code, again.Body)
		}
		calls, paid := pegas.counts()
		if calls != 2 || paid != 1 {
			t.Errorf("%d calls, %d paid; want the payout sent again once under its order id, and paid once", calls, paid)
		}
	})

	t.Run("client hangs up", func(t *testing.T) {
		crystal := &payoutProvider{entered: make(chan struct{}, 1), release: make(chan struct{})}
		a := payoutApp(t, crystal, new(payoutProvider))
		reqCtx, hangUp := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			postPayout(reqCtx, a, "k1", crystalPayout)
		}()
		<-crystal.entered
		hangUp()
		close(crystal.release)
		<-done
		w := postPayout(ctx, a, "k1", crystalPayout)
		if w.Code != http.StatusOK || w.Header().Get("Idempotent-Replayed") != "true" {
			t.Errorf("repeat after a hang-up: %d %s; want the recorded payout", w.Code, w.Body)
		}
		if calls, paid := crystal.counts(); calls != 1 || paid != 1 {
			t.Errorf("%d calls, %d paid; want 1 and 1", calls, paid)
		}
	})

	t.Run("storage down", func(t *testing.T) {
		crystal := new(payoutProvider)
		a := payoutApp(t, crystal, new(payoutProvider))
		a.useStorage(downStorage{})
		w := postPayout(ctx, a, "k1", crystalPayout)
		if w.Code != http.StatusServiceUnavailable || errorCode(t, w) != "storage_unavailable" || strings.Contains(w.Body.String(), "10.0.0.5") {
			t.Errorf("storage down: %d %s", w.Code, w.Body)
		}
		if calls, _ := crystal.counts(); calls != 0 {
			t.Errorf("%d payouts sent with the storage down, want 0", calls)
		}
	})

	t.Run("derived order id", func(t *testing.T) {
		pegas := new(payoutProvider)
		a := payoutApp(t, new(payoutProvider), pegas)
		id := payoutOrderID(payoutScope("card", "k1"))
		if id != payoutOrderID(payoutScope("card", "k1")) || id == payoutOrderID(payoutScope("card", "k2")) ||
			id == payoutOrderID(payoutScope("main", "k1")) {
			t.Errorf("the order id of a key is not stable, or not the key's own: %s", id)
		}
		if err := validatePegasOrderID("order_id", id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
		postPayout(ctx, a, "k1", pegasPayout)
		postPayout(ctx, a, "k2", `{"payment":"card","amount":"5","to":"79990000000","method":"wallet","order_id":"mine-1"}`)
		pegas.mu.Lock()
		defer pegas.mu.Unlock()
		if len(pegas.paid) != 2 || pegas.paid[0].OrderID != id || pegas.paid[1].OrderID != "mine-1" {
			t.Errorf("payouts sent: %+v; want order ids %s and mine-1", pegas.paid, id)
		}
	})

	t.Run("crash mid-send", func(t *testing.T) {
		crystal, pegas := new(payoutProvider), new(payoutProvider)
		a := payoutApp(t, crystal, pegas)
		// Records left in sending by a shop that stopped mid-call.
		for _, tc := range []struct{ account, body string }{{"main", crystalPayout}, {"card", pegasPayout}} {
			t.Run(tc.account, func(t *testing.T) {
				var req payoutRequest
				json.Unmarshal([]byte(tc.body), &req)
				amount, _ := ParseAmount("amount", req.Amount)
				scope := payoutScope(tc.account, "k1")
				rec := &payoutRecord{Account: tc.account, Fingerprint: payoutFingerprint(req, amount), State: payoutSending,
					Attempts: 1, CreatedAt: time.Now(), UpdatedAt: time.Now()}
				if tc.account == "card" {
					rec.OrderID = payoutOrderID(scope)
				}
				if err := a.storePayout(ctx, payoutStorageKey(scope), rec); err != nil {
					t.Fatal(err)
				}
			})
		}
		w := postPayout(ctx, a, "k1", crystalPayout)
		if w.Code != http.StatusConflict || errorCode(t, w) != "payout_in_progress" || w.Header().Get("Retry-After") == "" {
			t.Errorf("a young payout in sending: %d %s %v", w.Code, w.Body, w.Header())
		}
		a.now = func() time.Time { return time.Now().Add(10 * time.Minute) }
		if w := postPayout(ctx, a, "k1", crystalPayout); w.Code != http.StatusConflict || errorCode(t, w) != "payout_outcome_unknown" {
			t.Errorf("an old CrystalPAY payout in sending: %d %s", w.Code, w.Body)
		}
		if w := postPayout(ctx, a, "k1", pegasPayout); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), `"id":"wd-1"`) {
			t.Errorf("an old Pegas payout in sending, which never reached Pegas: %d %s; want it sent now", w.Code, w.Body)
		}
		if calls, _ := crystal.counts(); calls != 0 {
			t.Errorf("%d CrystalPAY payouts sent again, want 0", calls)
		}
		if _, paid := pegas.counts(); paid != 1 {
			t.Errorf("%d Pegas payouts, want 1", paid)
		}
	})
}

// TestPayoutOneKeyTwoInstances: one Idempotency-Key posted at the same
// moment to two instances on one storage (a load balancer's retry, or the
// old and new config across a reload) pays once: the second waits for the
// key's storage lock and answers the first's outcome. Before: both read
// "no record" and CrystalPAY, which has no order id to refuse a repeat,
// paid twice.
func TestPayoutOneKeyTwoInstances(t *testing.T) {
	crystal := new(payoutProvider)
	shared := &certmagic.FileStorage{Path: t.TempDir()}
	hooked := &storeHook{Storage: shared, prefix: payoutsPrefix + "/"}
	instance := func(s certmagic.Storage) *App {
		a := &App{logger: zap.NewNop(), now: time.Now}
		a.accounts = map[string]*account{"main": {name: "main", provider: "crystalpay", PaymentProvider: crystal}}
		a.useStorage(s)
		a.useLocks(new(processLocks)) // each its own process
		return a
	}
	a, b := instance(hooked), instance(shared)
	var bw *httptest.ResponseRecorder
	hooked.before = func() { bw = postPayout(context.Background(), b, "k-two-instances-1", crystalPayout) }
	aw := postPayout(context.Background(), a, "k-two-instances-1", crystalPayout)
	hooked.done.Wait()
	if _, paid := crystal.counts(); paid != 1 || aw.Code != http.StatusOK || bw.Code != http.StatusOK {
		t.Fatalf("one key paid out %d times: A %d %s, B %d %s", paid, aw.Code, aw.Body, bw.Code, bw.Body)
	}
}
