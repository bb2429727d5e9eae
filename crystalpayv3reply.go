package kassa

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/shopspring/decimal"
)

// crystalPayV3Envelope is what every v3 reply says of itself: whether the
// call failed, and the error texts it gives.
type crystalPayV3Envelope struct {
	failed   bool
	messages []string
}

// parseCrystalPayV3Envelope reads a reply's "error" (a boolean it must
// carry) and "errors" (a list of texts).
func parseCrystalPayV3Envelope(reply []byte) (crystalPayV3Envelope, error) {
	var raw struct {
		Error *bool `json:"error"`
	}
	if err := json.Unmarshal(reply, &raw); err != nil {
		return crystalPayV3Envelope{}, fmt.Errorf("not a JSON object with a boolean \"error\": %v", err)
	}
	if raw.Error == nil {
		return crystalPayV3Envelope{}, errors.New(`no "error" field`)
	}
	env := crystalPayV3Envelope{failed: *raw.Error}
	if env.failed {
		for _, m := range readReplyError(reply).Said {
			env.messages = append(env.messages, m.Text)
		}
	}
	return env, nil
}

// crystalPayV3Failure is the ProviderError of a reply whose envelope says
// the call failed. CrystalPAY sends no error codes, only texts, so the
// kind is read from them: one about the credentials (auth, login, secret,
// the cash register) is ErrAuth, one saying something was not found
// ErrNotFound, any other ErrRejected; a field named in backquotes, as in
// "`amount` field is required", is the error's Path. The texts are kept,
// cleaned of secrets, as the Message.
func crystalPayV3Failure(api *ProviderClient, op string, status int, reply []byte, messages []string) *ProviderError {
	kind := ErrRejected
	var field string
	for _, m := range messages {
		lower := strings.ToLower(m)
		switch {
		case containsAny(lower, crystalPayV3AuthWords),
			containsAny(lower, crystalPayV3RegisterWords) && containsAny(lower, crystalPayV3NotFoundWords):
			kind = ErrAuth
		case kind == ErrRejected && containsAny(lower, crystalPayV3NotFoundWords):
			kind = ErrNotFound
		}
		if field == "" {
			field = backquotedField(m)
		}
	}
	e := api.Failure(op, kind, status, reply, nil)
	e.Path = api.Clean(field)
	e.Message = api.Clean(strings.Join(messages, "; "))
	return e
}

// Words of a v3 error text that say the credentials were refused, that
// something asked for does not exist, and that name the cash register:
// the cash register not being found is how a wrong login may show.
var (
	crystalPayV3AuthWords     = []string{"auth", "login", "secret", "credential", "авториз", "логин", "ключ", "секрет"}
	crystalPayV3NotFoundWords = []string{"not found", "not exist", "unknown id", "не найден", "не существ"}
	crystalPayV3RegisterWords = []string{"cassa", "cash register", "касс"}
)

// containsAny reports whether s contains any of words.
func containsAny(s string, words []string) bool {
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// backquotedField is the first field name in backquotes in an error text
// ("`amount` field is required"), or "".
func backquotedField(text string) string {
	_, rest, ok := strings.Cut(text, "`")
	if !ok {
		return ""
	}
	name, _, ok := strings.Cut(rest, "`")
	if !ok || name == "" || len(name) > 64 || strings.ContainsFunc(name, func(r rune) bool {
		return !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	}) {
		return ""
	}
	return name
}

// crystalPayAmount is an amount as CrystalPAY sends it: a decimal string
// (v3), a number (v2), or null or "" for none.
type crystalPayAmount struct {
	decimal.NullDecimal
}

// UnmarshalJSON accepts a decimal string, a number, null or "".
func (a *crystalPayAmount) UnmarshalJSON(data []byte) error {
	switch string(bytes.TrimSpace(data)) {
	case "null", `""`:
		a.NullDecimal = decimal.NullDecimal{}
		return nil
	}
	return a.NullDecimal.UnmarshalJSON(data)
}

// parseCrystalPayV3InvoiceState reads an invoice/info reply. Only payed is
// paid; its amount, for a ruble invoice, is amount less remaining_amount
// (what the buyer paid of it; balance_amount would be less CrystalPAY's
// commission). notpayed, processing, failed and unavailable are not paid;
// wrongamount is not paid and needs an operator.
func parseCrystalPayV3InvoiceState(reply []byte) (PaymentStatus, error) {
	var r struct {
		State           string           `json:"state"`
		Currency        flexString       `json:"currency"`
		AmountCurrency  flexString       `json:"amount_currency"`
		Amount          crystalPayAmount `json:"amount"`
		InitialAmount   crystalPayAmount `json:"initial_amount"`
		RemainingAmount crystalPayAmount `json:"remaining_amount"`
		RubAmount       crystalPayAmount `json:"rub_amount"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return PaymentStatus{}, err
	}
	for name, a := range map[string]crystalPayAmount{"amount": r.Amount, "initial_amount": r.InitialAmount,
		"remaining_amount": r.RemainingAmount, "rub_amount": r.RubAmount} {
		if a.Valid && a.Decimal.IsNegative() {
			return PaymentStatus{}, fmt.Errorf("negative %q", name)
		}
	}
	currency := string(r.Currency)
	if currency == "" {
		currency = string(r.AmountCurrency)
	}
	rubles := currency == "" || strings.EqualFold(currency, "RUB")
	asked := r.Amount.NullDecimal
	if !asked.Valid {
		asked = r.InitialAmount.NullDecimal
	}
	if !asked.Valid && rubles {
		asked = r.RubAmount.NullDecimal
	}
	var paid decimal.NullDecimal
	if asked.Valid {
		paid = asked
		if r.RemainingAmount.Valid {
			paid.Decimal = asked.Decimal.Sub(r.RemainingAmount.Decimal)
		}
	}
	var st PaymentStatus
	switch r.State {
	case "payed":
		st.Paid = true
		if rubles && paid.Valid {
			if paid.Decimal.IsNegative() {
				return PaymentStatus{}, errors.New(`"remaining_amount" is more than "amount"`)
			}
			st.Amount = paid
		}
	case "notpayed", "processing", "failed", "unavailable":
	case "wrongamount":
		st.Problem = "CrystalPAY: wrong amount paid"
		if paid.Valid && isCurrencyCode(currency) {
			st.Problem += fmt.Sprintf(" (%s %s of %s)", strings.ToUpper(currency), paid.Decimal.String(), asked.Decimal.String())
		} else if paid.Valid {
			st.Problem += fmt.Sprintf(" (%s of %s)", paid.Decimal.String(), asked.Decimal.String())
		}
	default:
		return PaymentStatus{}, fmt.Errorf(`unknown invoice "state" %s`, quoteState(r.State))
	}
	return st, nil
}

// quoteState quotes a state a reply gave for an error, whole, so that a
// secret echoed in it is redacted whole; a long one is only measured.
func quoteState(s string) string {
	if len(s) > 32 {
		return fmt.Sprintf("of %d bytes", len(s))
	}
	return fmt.Sprintf("%q", s)
}

// isCurrencyCode reports whether s looks like a currency code (RUB, USDT),
// fit to quote in an operator's text.
func isCurrencyCode(s string) bool {
	return s != "" && len(s) <= 10 && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9')
	})
}

// parseCrystalPayV3Me reads a me/info reply: the cash register's name (its
// id when it has none).
func parseCrystalPayV3Me(reply []byte) (string, error) {
	var r struct {
		ID   flexString `json:"id"`
		Name flexString `json:"name"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return "", err
	}
	if r.Name != "" {
		return string(r.Name), nil
	}
	return string(r.ID), nil
}

// parseCrystalPayV3Balances reads a balance/list reply: "items", an object
// of each method's balance ([] when there is none). Wallets holds every
// method's amount in its own currency; Total sums the ruble ones. An item
// without an amount is left out.
func parseCrystalPayV3Balances(reply []byte) (Balance, error) {
	var r struct {
		Items json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return Balance{}, err
	}
	b := Balance{Total: decimal.Zero}
	raw := bytes.TrimSpace(r.Items)
	switch {
	case len(raw) == 0 || bytes.Equal(raw, []byte("null")):
		return Balance{}, errors.New(`no "items"`)
	case raw[0] == '[':
		var list []json.RawMessage
		if err := json.Unmarshal(raw, &list); err != nil || len(list) != 0 {
			return Balance{}, errors.New(`"items" is a non-empty list; want an object of methods`)
		}
		return b, nil
	}
	var items map[string]struct {
		Amount   crystalPayAmount `json:"amount"`
		Currency flexString       `json:"currency"`
	}
	if err := json.Unmarshal(raw, &items); err != nil {
		return Balance{}, fmt.Errorf(`"items": %v`, err)
	}
	for method, it := range items {
		if !it.Amount.Valid {
			continue
		}
		if b.Wallets == nil {
			b.Wallets = make(map[string]decimal.Decimal, len(items))
		}
		b.Wallets[method] = it.Amount.Decimal
		if strings.EqualFold(string(it.Currency), "RUB") {
			b.Total = b.Total.Add(it.Amount.Decimal)
		}
	}
	return b, nil
}

// parseCrystalPayV3Payoff reads a payout reply (payoff/create, submit,
// cancel or info): its id, state and commission (commission_amount, v2
// commission). A reply without a state is in the state implied by the
// call; where none is implied, it is malformed.
func parseCrystalPayV3Payoff(reply []byte, implied PayoutState) (Payout, error) {
	var r struct {
		ID               flexString       `json:"id"`
		State            string           `json:"state"`
		CommissionAmount crystalPayAmount `json:"commission_amount"`
		Commission       crystalPayAmount `json:"commission"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return Payout{}, err
	}
	if r.ID == "" {
		return Payout{}, errors.New(`no payout "id"`)
	}
	p := Payout{ID: string(r.ID), Commission: decimal.Zero}
	switch r.State {
	case "":
		if implied == "" {
			return Payout{}, errors.New(`no payout "state"`)
		}
		p.State = implied
	case "created":
		p.State = PayoutCreated
	case "processing":
		p.State = PayoutProcessing
	case "payed":
		p.State = PayoutPaid
	case "failed":
		p.State = PayoutFailed
	case "canceled", "cancelled":
		p.State = PayoutCanceled
	default:
		return Payout{}, fmt.Errorf(`unknown payout "state" %s`, quoteState(r.State))
	}
	commission := r.CommissionAmount
	if !commission.Valid {
		commission = r.Commission
	}
	if commission.Valid {
		if commission.Decimal.IsNegative() {
			return Payout{}, errors.New(`negative "commission_amount"`)
		}
		p.Commission = commission.Decimal
	}
	return p, nil
}

// parseCrystalPayV3Callback reads a callback's body, a JSON object with
// "id" and "signature", and checks the signature, sha1(id:salt) in lowercase
// hex, in constant time. The order id is "extra" when it is a string. A
// callback about a payout is told from an invoice's by the fields only a
// payout has (wallet, receive_amount, deduction_amount). Without a salt,
// no signature holds.
func parseCrystalPayV3Callback(body []byte, salt string) (Callback, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return Callback{}, invalid("body", "a callback is a JSON object")
	}
	var id flexString
	if json.Unmarshal(fields["id"], &id) != nil || id == "" {
		return Callback{}, invalid("id", "a callback names its payment by a string or number id")
	}
	if err := validateToken("id", string(id), 128); err != nil {
		return Callback{}, err
	}
	var signature string
	if json.Unmarshal(fields["signature"], &signature) != nil || signature == "" {
		return Callback{}, invalid("signature", "a callback carries its signature as a string")
	}
	if salt == "" || subtle.ConstantTimeCompare([]byte(strings.ToLower(signature)), []byte(crystalPayV3Signature(salt, string(id)))) != 1 {
		return Callback{}, &ProviderError{Provider: "crystalpay", Op: "callback", Kind: ErrBadSignature}
	}
	cb := Callback{PaymentID: string(id)}
	var extra string
	if json.Unmarshal(fields["extra"], &extra) == nil {
		cb.OrderID = extra
	}
	for _, key := range []string{"wallet", "receive_amount", "deduction_amount"} {
		if _, ok := fields[key]; ok {
			cb.Payout = true
		}
	}
	return cb, nil
}
