package sandbox

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"net/http"
	"time"

	"github.com/shopspring/decimal"
)

// The states of a payoff: created → (submit) processing → payed or failed;
// a created payoff may be canceled instead.
const (
	payoffCreated    = "created"
	payoffProcessing = "processing"
	payoffPayed      = "payed"
	payoffFailed     = "failed"
	payoffCanceled   = "canceled"
)

// payoffDelay is how long a submitted payoff stays processing.
const payoffDelay = time.Second

// payoffCommission is the commission on payoffs in percent: the sandbox's
// own figure, as the provider's depends on the method.
var payoffCommission = decimal.NewFromInt(1)

var (
	// errUnknownPayoff is returned for a payoff id that does not exist.
	errUnknownPayoff = errors.New("unknown payoff")

	// errPayoffState is returned for a step the payoff's state does not
	// allow.
	errPayoffState = errors.New("the payoff's state does not allow this")
)

// v3Payoff is a withdrawal made by payoff/create.
type v3Payoff struct {
	id, state, subtractFrom, method, wallet string
	amount, commission                      decimal.Decimal
	extra, callback                         *string
	created, due, final                     time.Time
}

// receive is what the recipient gets: with subtract_from amount the
// commission comes out of the amount.
func (p *v3Payoff) receive() decimal.Decimal {
	if p.subtractFrom == "amount" {
		return p.amount.Sub(p.commission)
	}
	return p.amount
}

// deduction is what leaves the balance: with subtract_from balance the
// commission comes on top of the amount.
func (p *v3Payoff) deduction() decimal.Decimal {
	if p.subtractFrom == "balance" {
		return p.amount.Add(p.commission)
	}
	return p.amount
}

// v3PayoffInfo is a payoff as payoff/info, submit, cancel and its callback
// give it. Amounts are rubles.
type v3PayoffInfo struct {
	ID               string  `json:"id"`
	State            string  `json:"state"`
	SubtractFrom     string  `json:"subtract_from"`
	Method           string  `json:"method"`
	AmountCurrency   string  `json:"amount_currency"`
	Amount           string  `json:"amount"`
	RubAmount        string  `json:"rub_amount"`
	ReceiveAmount    string  `json:"receive_amount"`
	DeductionAmount  string  `json:"deduction_amount"`
	CommissionAmount string  `json:"commission_amount"`
	Wallet           string  `json:"wallet"`
	Message          *string `json:"message"`
	CallbackURL      *string `json:"callback_url"`
	Extra            *string `json:"extra"`
	CreatedAt        string  `json:"created_at"`
	FinalAt          *string `json:"final_at"`
}

func (p *v3Payoff) info() v3PayoffInfo {
	return v3PayoffInfo{
		ID: p.id, State: p.state, SubtractFrom: p.subtractFrom, Method: p.method,
		AmountCurrency: "RUB", Amount: p.amount.String(), RubAmount: p.amount.String(),
		ReceiveAmount: p.receive().String(), DeductionAmount: p.deduction().String(),
		CommissionAmount: p.commission.String(), Wallet: p.wallet,
		CallbackURL: p.callback, Extra: p.extra,
		CreatedAt: v3Time(p.created), FinalAt: v3OptionalTime(p.final),
	}
}

// sha1Hex is the lowercase hex SHA-1 that v3 signatures are.
func sha1Hex(s string) string {
	sum := sha1.Sum([]byte(s))
	return hex.EncodeToString(sum[:])
}

func (h *Handler) v3PayoffCreate(w http.ResponseWriter, q *v3Request) {
	signature := q.str("signature", true)
	amount, amountText := q.rubles("amount")
	p := &v3Payoff{amount: amount, commission: percentOf(amount, payoffCommission)}
	method, wallet := q.str("method", true), q.str("wallet", true)
	p.subtractFrom = q.oneOf("subtract_from", true, "", "amount", "balance")
	q.checkCurrency("amount_currency", "currency")
	q.str("wallet_extra", false)
	p.extra, p.callback = q.str("extra", false), q.webURL("callback_url")
	if q.failed() {
		writeV3Error(w, q.errs...)
		return
	}
	p.method, p.wallet = *method, *wallet
	// Signed over the amount exactly as the client wrote it.
	if !secureEqual(*signature, sha1Hex(amountText+":"+p.method+":"+p.wallet+":"+h.creds.crystalPaySalt)) {
		writeV3Error(w, "Invalid signature")
		return
	}
	info, err := h.st.newV3Payoff(p)
	if err != nil {
		writeV3Error(w, "Insufficient funds")
		return
	}
	writePHPJSON(w, http.StatusOK, struct {
		v3Status
		ID               string `json:"id"`
		SubtractFrom     string `json:"subtract_from"`
		Method           string `json:"method"`
		AmountCurrency   string `json:"amount_currency"`
		Amount           string `json:"amount"`
		RubAmount        string `json:"rub_amount"`
		ReceiveAmount    string `json:"receive_amount"`
		DeductionAmount  string `json:"deduction_amount"`
		CommissionAmount string `json:"commission_amount"`
		Wallet           string `json:"wallet"`
	}{v3OK, info.ID, info.SubtractFrom, info.Method, info.AmountCurrency, info.Amount, info.RubAmount,
		info.ReceiveAmount, info.DeductionAmount, info.CommissionAmount, info.Wallet})
}

// v3PayoffDecide answers payoff/submit (submit true) and payoff/cancel.
func (h *Handler) v3PayoffDecide(w http.ResponseWriter, q *v3Request, submit bool) {
	id, signature := q.str("id", true), q.str("signature", true)
	if q.failed() {
		writeV3Error(w, q.errs...)
		return
	}
	if !secureEqual(*signature, sha1Hex(*id+":"+h.creds.crystalPaySalt)) {
		writeV3Error(w, "Invalid signature")
		return
	}
	var info v3PayoffInfo
	var err error
	if submit {
		info, err = h.st.submitV3Payoff(*id)
	} else {
		info, err = h.st.cancelV3Payoff(*id)
	}
	switch {
	case errors.Is(err, errUnknownPayoff):
		writeV3Error(w, "Payoff not found")
		return
	case errors.Is(err, errPayoffState):
		writeV3Error(w, "Payoff is "+info.State+", not created")
		return
	case errors.Is(err, errInsufficientFunds):
		writeV3Error(w, "Insufficient funds")
		return
	}
	if submit {
		h.callbacks.start(func(ctx context.Context) {
			t := time.NewTimer(payoffDelay)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
				h.st.processPayoffs()
				h.flushCallbacks()
			}
		})
	}
	writePHPJSON(w, http.StatusOK, struct {
		v3Status
		v3PayoffInfo
	}{v3OK, info})
}

func (h *Handler) v3PayoffInfo(w http.ResponseWriter, q *v3Request) {
	id := q.str("id", true)
	if q.failed() {
		writeV3Error(w, q.errs...)
		return
	}
	info, ok := h.st.v3PayoffInfo(*id)
	if !ok {
		writeV3Error(w, "Payoff not found")
		return
	}
	writePHPJSON(w, http.StatusOK, struct {
		v3Status
		v3PayoffInfo
	}{v3OK, info})
}

// newV3Payoff stores a new payoff if the balance covers it; the balance is
// debited only at submit.
func (s *state) newV3Payoff(p *v3Payoff) (v3PayoffInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.deduction().GreaterThan(s.crystalPay.balance) {
		return v3PayoffInfo{}, errInsufficientFunds
	}
	v3 := &s.crystalPayV3
	p.id = newV3ID(v3.payoffs, 20)
	p.state = payoffCreated
	p.created = s.now()
	v3.payoffs[p.id] = p
	v3.payoffOrder = append(v3.payoffOrder, p.id)
	return p.info(), nil
}

// submitV3Payoff debits the balance and starts processing a created
// payoff.
func (s *state) submitV3Payoff(id string) (v3PayoffInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.crystalPayV3.payoffs[id]
	switch {
	case !ok:
		return v3PayoffInfo{}, errUnknownPayoff
	case p.state != payoffCreated:
		return p.info(), errPayoffState
	case p.deduction().GreaterThan(s.crystalPay.balance):
		return p.info(), errInsufficientFunds
	}
	s.crystalPay.balance = s.crystalPay.balance.Sub(p.deduction())
	p.state = payoffProcessing
	p.due = s.now().Add(payoffDelay)
	return p.info(), nil
}

// cancelV3Payoff cancels a created payoff.
func (s *state) cancelV3Payoff(id string) (v3PayoffInfo, error) {
	return s.endV3Payoff(id, payoffCreated, payoffCanceled)
}

// v3PayoffInfo returns a payoff as payoff/info gives it.
func (s *state) v3PayoffInfo(id string) (v3PayoffInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.crystalPayV3.payoffs[id]
	if !ok {
		return v3PayoffInfo{}, false
	}
	return p.info(), true
}

// finishV3Payoff ends a processing payoff now as payed or failed, for
// tests.
func (s *state) finishV3Payoff(id, state string) (v3PayoffInfo, error) {
	return s.endV3Payoff(id, payoffProcessing, state)
}

// endV3Payoff puts a payoff that is in state from into the final state to.
func (s *state) endV3Payoff(id, from, to string) (v3PayoffInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.crystalPayV3.payoffs[id]
	switch {
	case !ok:
		return v3PayoffInfo{}, errUnknownPayoff
	case p.state != from:
		return p.info(), errPayoffState
	}
	s.finishPayoffLocked(p, to)
	return p.info(), nil
}

// processPayoffs ends, as payed, every processing payoff whose time has
// come.
func (s *state) processPayoffs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.processPayoffsLocked()
}

func (s *state) processPayoffsLocked() {
	now := s.now()
	for _, id := range s.crystalPayV3.payoffOrder {
		if p := s.crystalPayV3.payoffs[id]; p.state == payoffProcessing && !now.Before(p.due) {
			s.finishPayoffLocked(p, payoffPayed)
		}
	}
}

// finishPayoffLocked puts a payoff in a final state and queues its
// callback. A failed payoff gives its deduction back (the sandbox's own
// choice: the documentation does not say).
func (s *state) finishPayoffLocked(p *v3Payoff, state string) {
	p.state = state
	p.final = s.now()
	if state == payoffFailed {
		s.crystalPay.balance = s.crystalPay.balance.Add(p.deduction())
	}
	if p.callback != nil {
		s.queueCallbackLocked(p.id, *p.callback, p.info())
	}
}
