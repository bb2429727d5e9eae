package sandbox

import (
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/shopspring/decimal"
)

// The states of a v3 invoice. Only payed means paid. unavailable, which
// some clients list, is undocumented and never given by the sandbox.
const (
	v3NotPayed    = "notpayed"
	v3Processing  = "processing"
	v3Payed       = "payed"
	v3WrongAmount = "wrongamount"
	v3Failed      = "failed"
)

// maxLifetime is the largest invoice lifetime in minutes: 4320 (three
// days) is the v2-era limit (open question 3); the v3 one is unverified.
const maxLifetime = 4320

var (
	// errInvoiceExpired is returned when paying a v3 invoice past its
	// expired_at.
	errInvoiceExpired = errors.New("the invoice expired")

	// errInvoiceClosed is returned when paying or changing a v3 invoice
	// that has reached a final state.
	errInvoiceClosed = errors.New("the invoice is in a final state")
)

// v3Invoice is an invoice made by invoice/create.
type v3Invoice struct {
	id, url, state, kind, subtractFrom string
	amount                             decimal.Decimal
	received                           decimal.Decimal // what the payer paid, for a wrongamount invoice
	method, requiredMethod             *string
	description, redirect, callback    *string
	extra                              *string
	payerDetails                       json.RawMessage
	created, expires, final            time.Time
}

// v3InvoiceInfo is an invoice as invoice/info and its callback give it:
// both the current currency and the older amount_currency, as the
// documentation's two examples differ there.
type v3InvoiceInfo struct {
	ID               string  `json:"id"`
	URL              string  `json:"url"`
	State            string  `json:"state"`
	Type             string  `json:"type"`
	SubtractFrom     string  `json:"subtract_from"`
	Method           *string `json:"method"`
	RequiredMethod   *string `json:"required_method"`
	RubAmount        string  `json:"rub_amount"`
	Currency         string  `json:"currency"`
	Amount           string  `json:"amount"`
	AmountCurrency   string  `json:"amount_currency"`
	InitialAmount    string  `json:"initial_amount"`
	RemainingAmount  string  `json:"remaining_amount"`
	BalanceAmount    string  `json:"balance_amount"`
	CommissionAmount string  `json:"commission_amount"`
	Description      *string `json:"description"`
	RedirectURL      *string `json:"redirect_url"`
	CallbackURL      *string `json:"callback_url"`
	Extra            *string `json:"extra"`
	CreatedAt        string  `json:"created_at"`
	ExpiredAt        string  `json:"expired_at"`
	FinalAt          *string `json:"final_at"`
}

// v3InvoiceView is a v3 invoice on GET /control/state: its info object and
// the payer_details it was created with.
type v3InvoiceView struct {
	v3InvoiceInfo
	PayerDetails json.RawMessage `json:"payer_details,omitempty"`
}

// info is the invoice as invoice/info gives it. The sandbox takes no
// commission on invoices, so subtract_from changes nothing and
// balance_amount is the amount; remaining_amount is what is still unpaid.
func (inv *v3Invoice) info() v3InvoiceInfo {
	remaining := inv.amount
	switch inv.state {
	case v3Payed:
		remaining = decimal.Zero
	case v3WrongAmount:
		remaining = decimal.Max(inv.amount.Sub(inv.received), decimal.Zero)
	}
	return v3InvoiceInfo{
		ID: inv.id, URL: inv.url, State: inv.state, Type: inv.kind, SubtractFrom: inv.subtractFrom,
		Method: inv.method, RequiredMethod: inv.requiredMethod,
		RubAmount: inv.amount.String(), Currency: "RUB", Amount: inv.amount.String(), AmountCurrency: "RUB",
		InitialAmount: inv.amount.String(), RemainingAmount: remaining.String(),
		BalanceAmount: inv.amount.String(), CommissionAmount: "0",
		Description: inv.description, RedirectURL: inv.redirect, CallbackURL: inv.callback, Extra: inv.extra,
		CreatedAt: v3Time(inv.created), ExpiredAt: v3Time(inv.expires), FinalAt: v3OptionalTime(inv.final),
	}
}

// expiredAt reports whether the invoice, not yet in a final state, is past
// its expired_at at now.
func (inv *v3Invoice) expiredAt(now time.Time) bool {
	return (inv.state == v3NotPayed || inv.state == v3Processing) && !now.Before(inv.expires)
}

var digits = regexp.MustCompile(`^[0-9]+$`)

func (h *Handler) v3InvoiceCreate(w http.ResponseWriter, r *http.Request, q *v3Request) {
	amount, _ := q.rubles("amount")
	inv := &v3Invoice{
		amount:         amount,
		kind:           q.oneOf("type", true, "", "purchase", "topup"),
		subtractFrom:   q.oneOf("subtract_from", false, "amount", "amount", "balance"),
		requiredMethod: q.str("required_method", false),
		description:    q.str("description", false),
		extra:          q.str("extra", false),
		redirect:       q.webURL("redirect_url"),
		callback:       q.webURL("callback_url"),
	}
	lifetime := 0
	if text, ok := q.numberText("lifetime"); ok {
		n, err := strconv.Atoi(text)
		if !digits.MatchString(text) || err != nil || n < 1 || n > maxLifetime {
			q.invalid("lifetime", "must be a whole number of minutes from 1 to "+strconv.Itoa(maxLifetime))
		}
		lifetime = n
	}
	q.checkCurrency("currency", "amount_currency")
	// payer_details is an "array" in the docs, an object in one v3 client
	// and a plain e-mail string in v2 clients (open question 2): all are
	// taken.
	if raw, ok := q.raw("payer_details"); ok {
		switch raw[0] {
		case '{', '[', '"':
			inv.payerDetails = raw
		default:
			q.invalid("payer_details", "must be an object, an array or a string")
		}
	}
	if q.failed() {
		writeV3Error(w, q.errs...)
		return
	}
	info := h.st.newV3Invoice(inv, time.Duration(lifetime)*time.Minute, h.publicBase(r)+"/pay/crystalpay/")
	writePHPJSON(w, http.StatusOK, struct {
		v3Status
		ID        string `json:"id"`
		URL       string `json:"url"`
		Type      string `json:"type"`
		RubAmount string `json:"rub_amount"`
	}{v3OK, info.ID, info.URL, info.Type, info.RubAmount})
}

func (h *Handler) v3InvoiceInfo(w http.ResponseWriter, q *v3Request) {
	id := q.str("id", true)
	if q.failed() {
		writeV3Error(w, q.errs...)
		return
	}
	info, ok := h.st.v3InvoiceInfo(*id)
	if !ok {
		writeV3Error(w, "Invoice not found")
		return
	}
	writePHPJSON(w, http.StatusOK, struct {
		v3Status
		v3InvoiceInfo
	}{v3OK, info})
}

// newV3ID returns an id of the account id and n random letters and digits
// that taken does not hold.
func newV3ID[T any](taken map[string]T, n int) string {
	for {
		id := strconv.Itoa(crystalPayV3AccountID) + "_" + randomAlphanumeric(n)
		if _, dup := taken[id]; !dup {
			return id
		}
	}
}

// newV3Invoice stores a new invoice, whose payment page starts with
// pageBase.
func (s *state) newV3Invoice(inv *v3Invoice, lifetime time.Duration, pageBase string) v3InvoiceInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	v3 := &s.crystalPayV3
	inv.id = newV3ID(v3.invoices, 10)
	inv.url = pageBase + inv.id
	inv.state = v3NotPayed
	inv.created = s.now()
	inv.expires = inv.created.Add(lifetime)
	v3.invoices[inv.id] = inv
	v3.invoiceOrder = append(v3.invoiceOrder, inv.id)
	return inv.info()
}

// v3InvoiceInfo returns an invoice as invoice/info gives it.
func (s *state) v3InvoiceInfo(id string) (v3InvoiceInfo, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.crystalPayV3.invoices[id]
	if !ok {
		return v3InvoiceInfo{}, false
	}
	return inv.info(), true
}

// v3Invoice returns a copy of an invoice and whether it is past its
// expired_at.
func (s *state) v3Invoice(id string) (v3Invoice, bool, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.crystalPayV3.invoices[id]
	if !ok {
		return v3Invoice{}, false, false
	}
	return *inv, inv.expiredAt(s.now()), true
}

// payV3 pays an invoice in full, as the payment page's button does, once;
// it reports whether this call paid it. An invoice past its expired_at is
// refused: whether the provider still takes payment then is not
// documented, and refusing is the sandbox's own, conservative choice.
func (s *state) payV3(id string) (v3Invoice, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.crystalPayV3.invoices[id]
	switch {
	case !ok:
		return v3Invoice{}, false, errUnknownInvoice
	case inv.state == v3Payed:
		return *inv, false, nil
	case inv.state != v3NotPayed && inv.state != v3Processing:
		return *inv, false, errInvoiceClosed
	case inv.expiredAt(s.now()):
		return *inv, false, errInvoiceExpired
	}
	s.crystalPay.balance = s.crystalPay.balance.Add(inv.amount)
	s.moveV3InvoiceLocked(inv, v3Payed)
	return *inv, true, nil
}

// setV3InvoiceState puts an invoice into processing, wrongamount (with
// received, the amount the payer paid) or failed, for tests. Only payed
// credits the balance; a wrongamount payment credits nothing (the
// sandbox's own choice).
func (s *state) setV3InvoiceState(id, state string, received decimal.Decimal) (v3InvoiceInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	inv, ok := s.crystalPayV3.invoices[id]
	if !ok {
		return v3InvoiceInfo{}, errUnknownInvoice
	}
	if inv.state != v3NotPayed && (inv.state != v3Processing || state == v3Processing) {
		return inv.info(), errInvoiceClosed
	}
	inv.received = received
	s.moveV3InvoiceLocked(inv, state)
	return inv.info(), nil
}

// moveV3InvoiceLocked changes the state of an invoice: the payer's method
// is known from processing on, and a final state is dated and queues the
// invoice's callback.
func (s *state) moveV3InvoiceLocked(inv *v3Invoice, state string) {
	inv.state = state
	if inv.method == nil && state != v3Failed {
		// The payer "picks" the required method, or rubles.
		method := crystalPayV3RubMethod
		if inv.requiredMethod != nil {
			method = *inv.requiredMethod
		}
		inv.method = &method
	}
	if state == v3Processing {
		return
	}
	inv.final = s.now()
	if inv.callback != nil {
		s.queueCallbackLocked(inv.id, *inv.callback, inv.info())
	}
}
