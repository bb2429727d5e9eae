package sandbox

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// crystalPayV3Ops are the CrystalPAY API v3 calls the sandbox answers, as
// "group/action"; they are also their op names in faults and the journal.
var crystalPayV3Ops = []string{
	"me/info", "balance/list", "balance/get",
	"invoice/create", "invoice/info",
	"payoff/create", "payoff/submit", "payoff/cancel", "payoff/info",
}

// opCallback is the op name of callback deliveries in faults and the
// journal.
const opCallback = "callback"

// crystalPayV3AccountID is the cash register's id in me/info and the prefix
// of every invoice and payoff id, as in the documentation's examples.
const crystalPayV3AccountID = 123456789

// crystalPayV3TimeLayout is how v3 writes times: no zone, Moscow time (the
// sandbox's own choice: the documentation names no zone).
const crystalPayV3TimeLayout = "2006-01-02 15:04:05"

// v3Time writes t the way v3 does.
func v3Time(t time.Time) string {
	return t.In(moscow).Format(crystalPayV3TimeLayout)
}

// v3OptionalTime is v3Time, or null for the zero time.
func v3OptionalTime(t time.Time) *string {
	if t.IsZero() {
		return nil
	}
	s := v3Time(t)
	return &s
}

// v3Status is the part every v3 reply has.
type v3Status struct {
	Error  bool     `json:"error"`
	Errors []string `json:"errors"`
}

// v3OK is the status of a successful reply.
var v3OK = v3Status{Errors: []string{}}

// writeV3Error answers a failed v3 call the documented way: HTTP 200 and
// the messages in errors.
func writeV3Error(w http.ResponseWriter, messages ...string) {
	writePHPJSON(w, http.StatusOK, v3Status{Error: true, Errors: messages})
}

// v3AuthError is the message for wrong credentials (the sandbox's own
// wording: the documentation gives none).
const v3AuthError = "Invalid auth_login or auth_secret"

// crystalPayV3Faults words faults the way CrystalPAY v3 would: the same
// nginx 500 page as v1, and error envelopes for auth and forbidden.
var crystalPayV3Faults = faultStyle{
	error500: crystalPayFaults.error500,
	auth: func(w http.ResponseWriter, message string) {
		writeV3Error(w, cmp.Or(message, v3AuthError))
	},
	forbidden: func(w http.ResponseWriter, message string) {
		writeV3Error(w, cmp.Or(message, "Access denied"))
	},
}

// serveCrystalPayV3 answers /crystalpay/v3/{group}/{action}/.
func (h *Handler) serveCrystalPayV3(w http.ResponseWriter, r *http.Request, rest string) {
	// The documented paths end in a slash; whether the provider also takes
	// them without it is not documented, so the sandbox does not.
	op, ok := strings.CutSuffix(rest, "/")
	group, action, two := strings.Cut(op, "/")
	if !ok || !two || group == "" || action == "" || strings.Contains(action, "/") {
		http.NotFound(w, r)
		return
	}
	body, _ := readBody(r)
	c := h.newCall(w, r, APICrystalPay, op, body)
	c.run(crystalPayV3Faults, func(w http.ResponseWriter) { h.crystalPayV3(w, r, op, body) })
}

// crystalPayV3 answers a v3 call once faults are out of the way.
func (h *Handler) crystalPayV3(w http.ResponseWriter, r *http.Request, op string, body []byte) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writePHPJSON(w, http.StatusMethodNotAllowed, v3Status{Error: true, Errors: []string{"Only POST requests are supported"}})
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeV3Error(w, "Content-Type must be application/json")
		return
	}
	q, err := decodeV3Request(body)
	if err != nil {
		writeV3Error(w, "The body must be a JSON object")
		return
	}
	login, secret := q.str("auth_login", true), q.str("auth_secret", true)
	if q.failed() {
		writeV3Error(w, q.errs...)
		return
	}
	if !secureEqual(*login, h.creds.crystalPayLogin) || !secureEqual(*secret, h.creds.crystalPaySecret) {
		writeV3Error(w, v3AuthError)
		return
	}
	if !slices.Contains(crystalPayV3Ops, op) {
		writeV3Error(w, "Unknown method "+op)
		return
	}
	h.st.processPayoffs()
	switch op {
	case "me/info":
		h.v3MeInfo(w)
	case "balance/list":
		h.v3BalanceList(w, q)
	case "balance/get":
		h.v3BalanceGet(w, q)
	case "invoice/create":
		h.v3InvoiceCreate(w, r, q)
	case "invoice/info":
		h.v3InvoiceInfo(w, q)
	case "payoff/create":
		h.v3PayoffCreate(w, q)
	case "payoff/submit", "payoff/cancel":
		h.v3PayoffDecide(w, q, op == "payoff/submit")
	case "payoff/info":
		h.v3PayoffInfo(w, q)
	}
}

// v3Request is the JSON body of a v3 call, read field by field; the
// errors found are gathered in errs, each naming its field in backquotes as
// the documentation's example "`amount` field is required" does.
type v3Request struct {
	fields map[string]json.RawMessage
	errs   []string
}

func decodeV3Request(body []byte) (*v3Request, error) {
	q := &v3Request{}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&q.fields); err != nil || q.fields == nil || dec.More() {
		return nil, fmt.Errorf("not a JSON object")
	}
	return q, nil
}

func (q *v3Request) failed() bool { return len(q.errs) > 0 }

func (q *v3Request) missing(name string) {
	q.errs = append(q.errs, "`"+name+"` field is required")
}

func (q *v3Request) invalid(name, why string) {
	q.errs = append(q.errs, "`"+name+"` field "+why)
}

// raw returns a field that is present and not null.
func (q *v3Request) raw(name string) (json.RawMessage, bool) {
	v, ok := q.fields[name]
	if !ok || string(v) == "null" {
		return nil, false
	}
	return v, true
}

// str reads a string field; a required one must not be empty. nil when
// absent or invalid.
func (q *v3Request) str(name string, required bool) *string {
	raw, ok := q.raw(name)
	if !ok {
		if required {
			q.missing(name)
		}
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		q.invalid(name, "must be a string")
		return nil
	}
	if required && s == "" {
		q.missing(name)
		return nil
	}
	return &s
}

// oneOf reads a string field that must be one of values; def when absent.
func (q *v3Request) oneOf(name string, required bool, def string, values ...string) string {
	s := q.str(name, required)
	switch {
	case s == nil:
		return def
	case !slices.Contains(values, *s):
		q.invalid(name, "must be one of "+strings.Join(values, ", "))
		return def
	}
	return *s
}

// numberText reads a number given as a JSON number or as a string, as
// pycrystalpay's live tests send it, and returns its text exactly as sent.
func (q *v3Request) numberText(name string) (string, bool) {
	raw, ok := q.raw(name)
	if !ok {
		q.missing(name)
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, true
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String(), true
	}
	q.invalid(name, "must be a number")
	return "", false
}

// rubles reads a positive amount in rubles: plain decimal notation, at most
// two decimals, at most maxAmount. It returns the amount and its text as
// sent.
func (q *v3Request) rubles(name string) (decimal.Decimal, string) {
	text, ok := q.numberText(name)
	if !ok {
		return decimal.Zero, ""
	}
	d, ok := parseMoney(text)
	if !ok || !d.IsPositive() || d.GreaterThan(maxAmount) {
		q.invalid(name, "must be a positive amount with at most 2 decimals, at most "+maxAmount.String())
		return decimal.Zero, text
	}
	return d, text
}

// webURL reads an optional absolute http(s) URL.
func (q *v3Request) webURL(name string) *string {
	s := q.str(name, false)
	if s != nil && !isWebURL(*s) {
		q.invalid(name, "must be an absolute http(s) URL")
		return nil
	}
	return s
}

// checkCurrency checks the currency of an amount, under its v3 name or the name
// it had before (open question 1: both are taken). The sandbox keeps its
// books in rubles only, so any other currency is refused: its exchange
// rates would be made up.
func (q *v3Request) checkCurrency(names ...string) {
	for _, name := range names {
		if s := q.str(name, false); s != nil && *s != "RUB" {
			q.invalid(name, "is not supported by the sandbox, which takes RUB only")
		}
	}
}

// crystalPayV3State is the simulated CrystalPAY v3 cash register; its
// balance is the v1 one.
type crystalPayV3State struct {
	since        time.Time // when the cash register was created (me/info)
	invoices     map[string]*v3Invoice
	invoiceOrder []string // oldest first
	payoffs      map[string]*v3Payoff
	payoffOrder  []string // oldest first
	outbox       []v3Callback
}

// crystalPayV3Since is when the cash register was created.
func (s *state) crystalPayV3Since() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crystalPayV3.since
}

// v3Me is the me/info reply.
type v3Me struct {
	v3Status
	ID          int    `json:"id"`
	Name        string `json:"name"`
	StatusLevel int    `json:"status_level"`
	CreatedAt   string `json:"created_at"`
}

func (h *Handler) v3MeInfo(w http.ResponseWriter) {
	writePHPJSON(w, http.StatusOK, v3Me{
		v3Status: v3OK, ID: crystalPayV3AccountID, Name: h.creds.crystalPayLogin,
		StatusLevel: 2, CreatedAt: v3Time(h.st.crystalPayV3Since()),
	})
}

// v3Balance is one balance of balance/list and balance/get.
type v3Balance struct {
	Method         string `json:"method,omitempty"`
	Name           string `json:"name"`
	Amount         string `json:"amount"`
	Currency       string `json:"currency"`
	AmountAccuracy int    `json:"amount_accuracy"`
}

// crystalPayV3RubMethod is the method whose balance is the sandbox's
// CrystalPAY balance in rubles: LZTMARKET, the RUB balance of the v2
// documentation's example.
const crystalPayV3RubMethod = "LZTMARKET"

// v3Balances are the balances by method: rubles, and an empty Bitcoin
// balance so that hide_empty has something to hide.
func (s *state) v3Balances() map[string]v3Balance {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]v3Balance{
		crystalPayV3RubMethod: {Name: "LZT Market", Amount: s.crystalPay.balance.String(), Currency: "RUB", AmountAccuracy: 2},
		"BITCOIN":             {Name: "Bitcoin", Amount: "0", Currency: "BTC", AmountAccuracy: 8},
	}
}

func (h *Handler) v3BalanceList(w http.ResponseWriter, q *v3Request) {
	hide := false
	if raw, ok := q.raw("hide_empty"); ok && json.Unmarshal(raw, &hide) != nil {
		writeV3Error(w, "`hide_empty` field must be a boolean")
		return
	}
	items := h.st.v3Balances()
	if hide {
		for method, b := range items {
			if decimal.RequireFromString(b.Amount).IsZero() {
				delete(items, method)
			}
		}
	}
	// An empty list comes back as [] (pycrystalpay and AsyncPayments handle
	// that), not as {}.
	var list any = items
	if len(items) == 0 {
		list = []any{}
	}
	writePHPJSON(w, http.StatusOK, struct {
		v3Status
		Items any `json:"items"`
	}{v3OK, list})
}

func (h *Handler) v3BalanceGet(w http.ResponseWriter, q *v3Request) {
	method := q.str("method", true)
	if q.failed() {
		writeV3Error(w, q.errs...)
		return
	}
	b, ok := h.st.v3Balances()[*method]
	if !ok {
		writeV3Error(w, "Balance not found")
		return
	}
	b.Method = *method
	writePHPJSON(w, http.StatusOK, struct {
		v3Status
		v3Balance
	}{v3OK, b})
}
