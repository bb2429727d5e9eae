package kassa

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// stepFault is what a stepPayer call does instead of just answering.
type stepFault int

const (
	faultNone stepFault = iota
	// faultRefuse: the provider refuses the call and does nothing.
	faultRefuse
	// faultDown: the call never reaches the provider (ErrUnavailable).
	faultDown
	// faultLose: the provider acts and its reply is lost (ErrUnavailable).
	faultLose
	// faultCrash: the provider acts and the shop dies before it reads
	// the reply: the request's goroutine ends, as a killed process's would.
	faultCrash
)

// stepSecret is what a real client would hold (an auth_secret, a salt):
// the fake puts it in the raw reply of its errors, which no answer or log
// may show.
const stepSecret = "salt-9f2c1e77d04b"

// stepPayer is a TwoStepPayer in memory: it keeps its payouts and their
// states, counts every call, and does the faults fault picks. It records a
// submit of a payout that is not created as a violation: a provider's own
// refusal of it must not be what keeps a payout from being paid twice.
type stepPayer struct {
	benchProvider
	mu      sync.Mutex
	payouts map[string]*stepPayout
	ids     []string
	calls   map[string]int
	// oneStep counts the Payout calls, which a two-step provider never gets.
	oneStep int
	// badSubmits are the ids submitted when they were not created.
	badSubmits []string
	// queued faults come first, one a call of their operation; then pick,
	// when set.
	queued map[string][]stepFault
	pick   func(op string) stepFault
}

// stepPayout is a payout the stepPayer holds.
type stepPayout struct {
	req   PayoutRequest
	state PayoutState
	// asked counts the status calls since it was submitted: the second
	// one finds it paid.
	asked int
}

func newStepPayer() *stepPayer {
	return &stepPayer{payouts: map[string]*stepPayout{}, calls: map[string]int{}, queued: map[string][]stepFault{}}
}

// queue makes the next calls of op do faults, in order.
func (s *stepPayer) queue(op string, faults ...stepFault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queued[op] = append(s.queued[op], faults...)
}

// begin counts a call of op and picks its fault; s.mu is held.
func (s *stepPayer) begin(op string) stepFault {
	s.calls[op]++
	if q := s.queued[op]; len(q) > 0 {
		s.queued[op] = q[1:]
		return q[0]
	}
	if s.pick != nil {
		return s.pick(op)
	}
	return faultNone
}

// end answers a call that did fault f, s.mu released: out, or the error
// or crash f stands for.
func (s *stepPayer) end(op string, f stepFault, out Payout, err error) (Payout, error) {
	switch f {
	case faultRefuse:
		return Payout{}, &ProviderError{Provider: "fake", Op: op, Kind: ErrRejected, Code: "refused", Message: "insufficient funds",
			Body: `{"auth_secret":"` + stepSecret + `"}`}
	case faultDown, faultLose:
		return Payout{}, &ProviderError{Provider: "fake", Op: op, Kind: ErrUnavailable, Message: "timeout",
			Body: `{"auth_secret":"` + stepSecret + `"}`}
	case faultCrash:
		runtime.Goexit()
	}
	return out, err
}

func (s *stepPayer) Payout(context.Context, PayoutRequest) (Payout, error) {
	s.mu.Lock()
	s.oneStep++
	s.mu.Unlock()
	return Payout{}, ErrNotSupported
}

func (s *stepPayer) CreatePayout(_ context.Context, req PayoutRequest) (Payout, error) {
	s.mu.Lock()
	f := s.begin("create")
	var out Payout
	if f != faultRefuse && f != faultDown {
		id := fmt.Sprintf("777_po%04d", len(s.ids)+1)
		s.payouts[id] = &stepPayout{req: req, state: PayoutCreated}
		s.ids = append(s.ids, id)
		out = Payout{ID: id, Commission: decimal.RequireFromString("1.5"), State: PayoutCreated}
	}
	s.mu.Unlock()
	return s.end("create", f, out, nil)
}

func (s *stepPayer) SubmitPayout(_ context.Context, id string) (Payout, error) {
	s.mu.Lock()
	f := s.begin("submit")
	out, err := s.act(id, f, func(p *stepPayout) error {
		if p.state != PayoutCreated {
			s.badSubmits = append(s.badSubmits, id)
			return &ProviderError{Provider: "fake", Op: "submit", Kind: ErrRejected, Message: "payout is " + string(p.state)}
		}
		p.state = PayoutProcessing
		return nil
	})
	s.mu.Unlock()
	return s.end("submit", f, out, err)
}

func (s *stepPayer) CancelPayout(_ context.Context, id string) (Payout, error) {
	s.mu.Lock()
	f := s.begin("cancel")
	out, err := s.act(id, f, func(p *stepPayout) error {
		if p.state != PayoutCreated {
			return &ProviderError{Provider: "fake", Op: "cancel", Kind: ErrRejected, Message: "payout is " + string(p.state)}
		}
		p.state = PayoutCanceled
		return nil
	})
	s.mu.Unlock()
	return s.end("cancel", f, out, err)
}

func (s *stepPayer) PayoutStatus(_ context.Context, id string) (Payout, error) {
	s.mu.Lock()
	f := s.begin("status")
	out, err := s.act(id, f, func(p *stepPayout) error {
		if p.state == PayoutProcessing {
			if p.asked++; p.asked > 1 {
				p.state = PayoutPaid
			}
		}
		return nil
	})
	s.mu.Unlock()
	return s.end("status", f, out, err)
}

// act does change to payout id unless fault f keeps the call from the
// provider, and answers with the payout as it then stands; s.mu is held.
func (s *stepPayer) act(id string, f stepFault, change func(*stepPayout) error) (Payout, error) {
	p := s.payouts[id]
	switch {
	case p == nil:
		return Payout{}, &ProviderError{Provider: "fake", Op: "payout", Kind: ErrNotFound, Message: "no such payout"}
	case f == faultRefuse || f == faultDown:
		return Payout{}, nil
	}
	if err := change(p); err != nil {
		return Payout{}, err
	}
	return Payout{ID: id, Commission: decimal.RequireFromString("1.5"), State: p.state}, nil
}

// count reports the calls of op.
func (s *stepPayer) count(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// paying lists the payouts that pay or paid: those submitted.
func (s *stepPayer) paying() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ids []string
	for _, id := range s.ids {
		if st := s.payouts[id].state; st == PayoutProcessing || st == PayoutPaid {
			ids = append(ids, id)
		}
	}
	return ids
}

// state is where payout id stands.
func (s *stepPayer) state(id string) PayoutState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.payouts[id]; p != nil {
		return p.state
	}
	return ""
}

// payoutStorage is a storage in memory whose locks hold across instances
// (lockingStorage). It records the state of each payout record it stores,
// and can fail a write or crash the shop right after one: the request's
// goroutine ends, its deferred unlocks running as a dead process's locks
// lapse.
type payoutStorage struct {
	*lockingStorage
	mu     sync.Mutex
	states []payoutState
	// crashAfter and failWrite are asked about the nth payout write
	// (from 1); nil is never.
	crashAfter func(n int) bool
	failWrite  func(n int) bool
}

func newPayoutStorage() *payoutStorage {
	return &payoutStorage{lockingStorage: &lockingStorage{Storage: newBenchStorage()}}
}

func (s *payoutStorage) Store(ctx context.Context, key string, value []byte) error {
	if !strings.HasPrefix(key, payoutsPrefix+"/") {
		return s.Storage.Store(ctx, key, value)
	}
	s.mu.Lock()
	n := len(s.states) + 1
	fail := s.failWrite != nil && s.failWrite(n)
	s.mu.Unlock()
	if fail {
		return errDown
	}
	if err := s.Storage.Store(ctx, key, value); err != nil {
		return err
	}
	var rec payoutRecord
	if err := json.Unmarshal(value, &rec); err != nil {
		panic(err)
	}
	s.mu.Lock()
	s.states = append(s.states, rec.State)
	crash := s.crashAfter != nil && s.crashAfter(len(s.states))
	s.mu.Unlock()
	if crash {
		runtime.Goexit()
	}
	return nil
}

// stored lists the states the payout records were stored in, in order.
func (s *payoutStorage) stored() []payoutState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]payoutState(nil), s.states...)
}

// stepClock is a clock that moves two minutes on at each reading, so that
// a record a crash left in sending is old by the next request.
func stepClock() func() time.Time {
	var ticks atomic.Int64
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	return func() time.Time { return start.Add(time.Duration(ticks.Add(1)) * 2 * time.Minute) }
}

// stepApp is an instance (with its own process locks) on storage, whose
// account "v3" pays out through payer in two steps and "card" through a
// Pegas-like provider in one.
func stepApp(payer *stepPayer, storage *payoutStorage, clock func() time.Time, logger *zap.Logger) *App {
	a := &App{logger: logger, now: clock}
	a.accounts = map[string]*account{
		"v3":   {name: "v3", provider: "crystalpay", PaymentProvider: payer},
		"card": {name: "card", provider: "pegas", PaymentProvider: refusingPayoutProvider{new(payoutProvider)}},
	}
	a.useStorage(storage)
	a.useLocks(new(processLocks))
	return a
}

// attemptPayout posts a payout in a goroutine of its own, as a request is
// served; nil when the shop crashed mid-request.
func attemptPayout(a *App, key, body string) *httptest.ResponseRecorder {
	done := make(chan *httptest.ResponseRecorder, 1)
	go func() {
		var w *httptest.ResponseRecorder
		defer func() { done <- w }()
		w = postPayout(context.Background(), a, key, body)
	}()
	return <-done
}

const stepPayoutBody = `{"payment":"v3","amount":"100","to":"79990000000","method":"CARD"}`

// stepAnswer is an answer to POST /kassa/payouts, read for a test.
type stepAnswer struct {
	status  int
	code    string
	answer  payoutAnswer
	message string
}

func readStepAnswer(w *httptest.ResponseRecorder) stepAnswer {
	var reply struct {
		payoutAnswer
		Error struct{ Code, Message string } `json:"error"`
	}
	json.Unmarshal(w.Body.Bytes(), &reply)
	return stepAnswer{status: w.Code, code: reply.Error.Code, answer: reply.payoutAnswer, message: reply.Error.Message}
}

// logText is every log line with its fields, for a test to search.
func logText(logs *observer.ObservedLogs) string {
	var b strings.Builder
	for _, e := range logs.All() {
		fmt.Fprintln(&b, e.Message, e.ContextMap())
	}
	return b.String()
}

// TestTwoStepPayout: a payout through a provider that makes payouts in two
// steps is created once, its id stored, then submitted once; a lost reply
// or a stop between the steps is settled by asking the provider about the
// stored id, never by creating or submitting again. Before: the admin API
// called the one-step Payout, which such a provider does not do (501).
func TestTwoStepPayout(t *testing.T) {
	type setup struct {
		payer   *stepPayer
		storage *payoutStorage
		app     *App
		logs    *observer.ObservedLogs
	}
	newSetup := func() *setup {
		core, logs := observer.New(zapcore.DebugLevel)
		payer, storage := newStepPayer(), newPayoutStorage()
		return &setup{payer: payer, storage: storage, app: stepApp(payer, storage, stepClock(), zap.New(core)), logs: logs}
	}
	// check asserts the calls the provider got and the states the record
	// was stored in, and that no answer or log shows a secret or the key.
	check := func(t *testing.T, s *setup, creates, submits int, states string, answers ...*httptest.ResponseRecorder) {
		t.Helper()
		if got := s.payer.count("create"); got != creates {
			t.Errorf("%d creates, want %d", got, creates)
		}
		if got := s.payer.count("submit"); got != submits {
			t.Errorf("%d submits, want %d", got, submits)
		}
		if s.payer.oneStep != 0 || len(s.payer.badSubmits) != 0 {
			t.Errorf("%d one-step payouts, submits of payouts not created: %v", s.payer.oneStep, s.payer.badSubmits)
		}
		var got []string
		for _, st := range s.storage.stored() {
			got = append(got, string(st))
		}
		if strings.Join(got, " ") != states {
			t.Errorf("the record was stored as %v, want %s", got, states)
		}
		text := logText(s.logs)
		for _, w := range answers {
			if w != nil {
				text += w.Body.String()
			}
		}
		if strings.Contains(text, stepSecret) || strings.Contains(text, "key-1") {
			t.Errorf("a secret or the Idempotency-Key is shown:\n%s", text)
		}
	}

	t.Run("paid", func(t *testing.T) {
		s := newSetup()
		first := attemptPayout(s.app, "key-1", stepPayoutBody)
		got := readStepAnswer(first)
		if got.status != http.StatusOK || got.answer.State != payoutSent || got.answer.ID != "777_po0001" ||
			got.answer.PayoutState != PayoutProcessing || got.answer.Commission != "1.50" || got.answer.OrderID == "" {
			t.Fatalf("first: %d %s", first.Code, first.Body)
		}
		again := attemptPayout(s.app, "key-1", stepPayoutBody)
		if again.Code != http.StatusOK || again.Body.String() != first.Body.String() || again.Header().Get("Idempotent-Replayed") != "true" {
			t.Errorf("repeat: %d %s %v", again.Code, again.Body, again.Header())
		}
		s.payer.mu.Lock()
		req := s.payer.payouts["777_po0001"].req
		s.payer.mu.Unlock()
		if !req.Amount.Equal(decimal.NewFromInt(100)) || req.To != "79990000000" || req.Method != "CARD" || req.OrderID != got.answer.OrderID {
			t.Errorf("created %+v", req)
		}
		check(t, s, 1, 1, "sending created sent", first, again)
	})

	t.Run("lost submit reply", func(t *testing.T) {
		s := newSetup()
		s.payer.queue("submit", faultLose)
		first := attemptPayout(s.app, "key-1", stepPayoutBody)
		if got := readStepAnswer(first); got.status != http.StatusServiceUnavailable || got.code != "payout_outcome_pending" ||
			!strings.Contains(got.message, "777_po0001") || first.Header().Get("Retry-After") == "" {
			t.Errorf("lost submit reply: %d %s %v", first.Code, first.Body, first.Header())
		}
		retry := attemptPayout(s.app, "key-1", stepPayoutBody)
		if got := readStepAnswer(retry); got.status != http.StatusOK || got.answer.State != payoutSent || got.answer.ID != "777_po0001" ||
			got.answer.PayoutState != PayoutProcessing || retry.Header().Get("Idempotent-Replayed") != "true" {
			t.Errorf("retry: %d %s", retry.Code, retry.Body)
		}
		if s.payer.count("status") != 1 {
			t.Errorf("%d status calls, want 1", s.payer.count("status"))
		}
		check(t, s, 1, 1, "sending created sent", first, retry)
	})

	t.Run("lost create reply", func(t *testing.T) {
		s := newSetup()
		s.payer.queue("create", faultLose)
		first := attemptPayout(s.app, "key-1", stepPayoutBody)
		got := readStepAnswer(first)
		if got.status != http.StatusBadGateway || got.code != "payout_not_made" || !strings.Contains(got.message, "cancel it in the dashboard") {
			t.Errorf("lost create reply: %d %s", first.Code, first.Body)
		}
		retry := attemptPayout(s.app, "key-1", stepPayoutBody)
		if retry.Code != first.Code || retry.Body.String() != first.Body.String() {
			t.Errorf("retry: %d %s", retry.Code, retry.Body)
		}
		if st := s.payer.state("777_po0001"); st != PayoutCreated {
			t.Errorf("the orphan is %s, want it left created (unsubmitted)", st)
		}
		check(t, s, 1, 0, "sending failed", first, retry)
	})

	t.Run("create refused", func(t *testing.T) {
		s := newSetup()
		s.payer.queue("create", faultRefuse)
		first := attemptPayout(s.app, "key-1", stepPayoutBody)
		if got := readStepAnswer(first); got.status != http.StatusBadGateway || got.code != "provider_error" || !strings.Contains(got.message, "insufficient funds") {
			t.Errorf("refused: %d %s", first.Code, first.Body)
		}
		attemptPayout(s.app, "key-1", stepPayoutBody)
		check(t, s, 1, 0, "sending failed", first)
	})

	t.Run("submit refused", func(t *testing.T) {
		s := newSetup()
		s.payer.queue("submit", faultRefuse)
		first := attemptPayout(s.app, "key-1", stepPayoutBody)
		if got := readStepAnswer(first); got.status != http.StatusBadGateway || !strings.Contains(got.message, "777_po0001") ||
			!strings.Contains(got.message, "it was cancelled") {
			t.Errorf("submit refused: %d %s", first.Code, first.Body)
		}
		if st := s.payer.state("777_po0001"); st != PayoutCanceled || s.payer.count("cancel") != 1 {
			t.Errorf("the refused payout is %s after %d cancels, want it cancelled", st, s.payer.count("cancel"))
		}
		again := attemptPayout(s.app, "key-1", stepPayoutBody)
		if again.Code != first.Code || again.Body.String() != first.Body.String() {
			t.Errorf("repeat: %d %s", again.Code, again.Body)
		}
		check(t, s, 1, 1, "sending created failed", first, again)
	})

	t.Run("submit and cancel refused", func(t *testing.T) {
		s := newSetup()
		s.payer.queue("submit", faultRefuse)
		s.payer.queue("cancel", faultDown)
		first := attemptPayout(s.app, "key-1", stepPayoutBody)
		if got := readStepAnswer(first); got.status != http.StatusBadGateway ||
			!strings.Contains(got.message, "cancelling it failed too") || !strings.Contains(got.message, "never submit it") {
			t.Errorf("submit and cancel refused: %d %s", first.Code, first.Body)
		}
		check(t, s, 1, 1, "sending created failed", first)
	})

	t.Run("status down", func(t *testing.T) {
		s := newSetup()
		s.payer.queue("submit", faultLose)
		s.payer.queue("status", faultDown, faultDown)
		answers := []*httptest.ResponseRecorder{attemptPayout(s.app, "key-1", stepPayoutBody)}
		for range 2 {
			w := attemptPayout(s.app, "key-1", stepPayoutBody)
			answers = append(answers, w)
			if got := readStepAnswer(w); got.status != http.StatusServiceUnavailable || got.code != "payout_outcome_pending" || w.Header().Get("Retry-After") == "" {
				t.Errorf("status down: %d %s", w.Code, w.Body)
			}
		}
		w := attemptPayout(s.app, "key-1", stepPayoutBody)
		if got := readStepAnswer(w); got.status != http.StatusOK || got.answer.State != payoutSent {
			t.Errorf("status back: %d %s", w.Code, w.Body)
		}
		check(t, s, 1, 1, "sending created sent", append(answers, w)...)
	})

	// A stop at each point between the steps: the next request finishes
	// the payout, or says it was not made, and pays at most once.
	for _, tc := range []struct {
		name          string
		crash         func(s *setup)
		code          int
		state         payoutState
		submits       int
		states        string
		payerOutcome  PayoutState
		statusAsked   bool
		creates       int
		notMadeAnswer bool
	}{
		{name: "after storing sending", crash: func(s *setup) { s.storage.crashAfter = func(n int) bool { return n == 1 } },
			code: http.StatusBadGateway, state: payoutFailed, states: "sending failed", notMadeAnswer: true},
		{name: "after create", crash: func(s *setup) { s.payer.queue("create", faultCrash) },
			code: http.StatusBadGateway, state: payoutFailed, states: "sending failed", creates: 1, payerOutcome: PayoutCreated, notMadeAnswer: true},
		{name: "after storing created", crash: func(s *setup) { s.storage.crashAfter = func(n int) bool { return n == 2 } },
			code: http.StatusOK, state: payoutSent, submits: 1, states: "sending created sent", creates: 1, payerOutcome: PayoutProcessing, statusAsked: true},
		{name: "after submit", crash: func(s *setup) { s.payer.queue("submit", faultCrash) },
			code: http.StatusOK, state: payoutSent, submits: 1, states: "sending created sent", creates: 1, payerOutcome: PayoutProcessing, statusAsked: true},
	} {
		t.Run("crash "+tc.name, func(t *testing.T) {
			s := newSetup()
			tc.crash(s)
			if w := attemptPayout(s.app, "key-1", stepPayoutBody); w != nil {
				t.Fatalf("the shop did not crash: %d %s", w.Code, w.Body)
			}
			s.storage.crashAfter = nil
			w := attemptPayout(s.app, "key-1", stepPayoutBody)
			got := readStepAnswer(w)
			if w.Code != tc.code || got.answer.State != "" && got.answer.State != tc.state || tc.notMadeAnswer != (got.code == "payout_not_made") {
				t.Errorf("after the crash: %d %s", w.Code, w.Body)
			}
			if tc.creates == 1 && s.payer.state("777_po0001") != tc.payerOutcome {
				t.Errorf("the payout is %s, want %s", s.payer.state("777_po0001"), tc.payerOutcome)
			}
			if asked := s.payer.count("status") > 0; asked != tc.statusAsked {
				t.Errorf("status asked: %v, want %v", asked, tc.statusAsked)
			}
			check(t, s, tc.creates, tc.submits, tc.states, w)
		})
	}

	t.Run("storing the id fails", func(t *testing.T) {
		s := newSetup()
		s.storage.failWrite = func(n int) bool { return n == 2 }
		first := attemptPayout(s.app, "key-1", stepPayoutBody)
		if got := readStepAnswer(first); got.status != http.StatusServiceUnavailable || got.code != "storage_unavailable" {
			t.Errorf("storing the id fails: %d %s", first.Code, first.Body)
		}
		if st := s.payer.state("777_po0001"); st != PayoutCanceled {
			t.Errorf("the payout whose id was not stored is %s, want it cancelled", st)
		}
		s.storage.failWrite = nil
		retry := attemptPayout(s.app, "key-1", stepPayoutBody)
		if got := readStepAnswer(retry); got.code != "payout_not_made" {
			t.Errorf("retry: %d %s", retry.Code, retry.Body)
		}
		check(t, s, 1, 0, "sending failed", first, retry)
	})

	t.Run("one-step record after a switch to two steps", func(t *testing.T) {
		// A record a one-step provider left in sending may have been
		// paid: it is never asked about or sent again.
		s := newSetup()
		var req payoutRequest
		json.Unmarshal([]byte(stepPayoutBody), &req)
		amount, _ := ParseAmount("amount", req.Amount)
		scope := payoutScope("v3", "key-1")
		old := &payoutRecord{Account: "v3", Provider: "crystalpay", Fingerprint: payoutFingerprint(req, amount), State: payoutSending, Attempts: 1}
		if err := s.app.storePayout(context.Background(), payoutStorageKey(scope), old); err != nil {
			t.Fatal(err)
		}
		w := attemptPayout(s.app, "key-1", stepPayoutBody)
		if got := readStepAnswer(w); w.Code != http.StatusConflict || got.code != "payout_outcome_unknown" {
			t.Errorf("a one-step record: %d %s", w.Code, w.Body)
		}
		check(t, s, 0, 0, "sending unknown", w)
	})
}

// TestTwoStepPayoutFaults: under one Idempotency-Key, rounds of three
// concurrent identical requests to two instances on one storage, with
// random lost replies, refusals, outages, status failures and crashes at
// every step and after every write, never pay more than once: the payout
// is created at most once, submitted only while created, the record never
// goes back, and once the faults stop it settles on an outcome that
// matches the provider's. Before: the one-step Payout was called (501).
func TestTwoStepPayoutFaults(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		var mu sync.Mutex
		rng := rand.New(rand.NewPCG(seed, 0x6b61737361))
		faulty := true
		roll := func() float64 {
			mu.Lock()
			defer mu.Unlock()
			if !faulty {
				return 1
			}
			return rng.Float64()
		}
		payer, storage := newStepPayer(), newPayoutStorage()
		payer.pick = func(string) stepFault {
			switch r := roll(); {
			case r < 0.08:
				return faultRefuse
			case r < 0.2:
				return faultDown
			case r < 0.32:
				return faultLose
			case r < 0.42:
				return faultCrash
			}
			return faultNone
		}
		storage.crashAfter = func(int) bool { return roll() < 0.15 }
		clock := stepClock()
		instances := []*App{stepApp(payer, storage, clock, zap.NewNop()), stepApp(payer, storage, clock, zap.NewNop())}

		var answers []*httptest.ResponseRecorder
		for round := range 12 {
			if round == 6 {
				mu.Lock()
				faulty = false
				mu.Unlock()
			}
			var wg sync.WaitGroup
			got := make([]*httptest.ResponseRecorder, 3)
			for i := range got {
				wg.Go(func() { got[i] = attemptPayout(instances[(round+i)%2], "key-1", stepPayoutBody) })
			}
			wg.Wait()
			answers = append(answers, got...)
		}

		fail := func(format string, args ...any) {
			t.Helper()
			t.Errorf("seed %d: "+format+"\nstored %v, calls %v", append([]any{seed}, append(args, storage.stored(), payer.calls)...)...)
		}
		if n := payer.count("create"); n > 1 {
			fail("%d creates under one key", n)
		}
		if paying := payer.paying(); len(paying) > 1 || len(payer.badSubmits) > 0 || payer.oneStep > 0 {
			fail("paying %v, submitted when not created %v, one-step payouts %d", paying, payer.badSubmits, payer.oneStep)
		}
		rank := map[payoutState]int{payoutSending: 0, payoutCreated: 1, payoutSent: 2, payoutFailed: 2}
		states := storage.stored()
		for i := 1; i < len(states); i++ {
			prev, next := states[i-1], states[i]
			if _, ok := rank[next]; !ok || rank[next] < rank[prev] || rank[prev] == 2 && next != prev {
				fail("the record went from %s to %s", prev, next)
			}
		}
		final := states[len(states)-1]
		paying := payer.paying()
		switch {
		case final == payoutSent && len(paying) != 1, final == payoutFailed && len(paying) != 0, final != payoutSent && final != payoutFailed:
			fail("the record ends %s with %v paying", final, paying)
		}
		for _, w := range answers {
			if w == nil {
				continue
			}
			got := readStepAnswer(w)
			switch {
			case w.Code == http.StatusOK && (got.answer.State != payoutSent || len(paying) != 1 || got.answer.ID != paying[0]):
				fail("answered %d %s with %v paying", w.Code, w.Body, paying)
			case w.Code != http.StatusOK && got.code == "":
				fail("answered %d %s", w.Code, w.Body)
			case got.code == "payout_not_made" && len(paying) != 0:
				fail("answered not made with %v paying", paying)
			}
		}
	}
}
