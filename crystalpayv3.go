package kassa

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/shopspring/decimal"
)

// crystalPayV3Endpoint is CrystalPAY's API v3 base URL.
const crystalPayV3Endpoint = "https://api.crystalpay.io/v3/"

// crystalPayV3RateLimit is the request rate CrystalPAY's v3 API asks for.
const crystalPayV3RateLimit = 5

// provisionV3 builds the v3 implementation.
func (c *CrystalPay) provisionV3() error {
	salt := resolvePlaceholders(c.Salt)
	endpoint := c.endpoint
	if endpoint == "" {
		endpoint = crystalPayV3Endpoint
	}
	api, err := NewProviderClient("crystalpay", endpoint, time.Duration(c.Timeout), c.secret, salt)
	if err != nil {
		return fmt.Errorf("crystalpay: %w", err)
	}
	// payoff/submit pays: like the two creates, net/http must never send
	// it twice.
	c.api = api.SendOnce("invoice/create", "payoff/create", "payoff/submit")
	c.provider = &crystalPayV3{login: c.login, secret: c.secret, salt: salt, callback: c.callback,
		method: c.Method, subtractFrom: c.SubtractFrom, api: c.api}
	return nil
}

// crystalPayV3 is a payment account at CrystalPAY's API v3: every call a
// JSON POST to <endpoint><group>/<action>/ carrying the credentials.
//
// Invoices may carry kopecks and carry the order id in extra; they cannot
// be cancelled. Payouts are made in two signed steps (payoff/create, then
// payoff/submit) and have ids, so a lost reply is resolved by asking
// payoff/info, never by paying again. Callbacks are signed with the salt
// over the id only, so they say where to look, not what happened.
// Neither create is ever retried: CrystalPAY has no idempotency key.
type crystalPayV3 struct {
	login, secret, salt            string
	callback, method, subtractFrom string
	api                            *ProviderClient
}

// CreatePayment creates an invoice (invoice/create) that lives as long as
// the order.
func (c *crystalPayV3) CreatePayment(ctx context.Context, req PaymentRequest) (Payment, error) {
	if err := c.CheckAmount(req.Amount); err != nil {
		return Payment{}, err
	}
	fields := map[string]any{
		"amount":   json.Number(req.Amount.String()),
		"type":     "purchase",
		"lifetime": crystalPayLifetime(req.TTL),
	}
	if req.ReturnURL != "" {
		if err := validateReturnURL(req.ReturnURL); err != nil {
			return Payment{}, err
		}
		fields["redirect_url"] = req.ReturnURL
	}
	for name, value := range map[string]string{
		"description":     req.Description,
		"extra":           req.OrderID,
		"callback_url":    c.callback,
		"required_method": c.method,
		"subtract_from":   c.subtractFrom,
	} {
		if value != "" {
			fields[name] = value
		}
	}
	if req.Email != "" {
		fields["payer_details"] = map[string]string{"email": req.Email}
	}
	const op = "invoice/create"
	reply, err := c.call(ctx, c.api, op, fields)
	if err != nil {
		return Payment{}, err
	}
	p, err := parseCrystalPayLink(reply)
	if err != nil {
		return Payment{}, c.api.Malformed(op, http.StatusOK, reply, "%v", err)
	}
	return p, nil
}

// PaymentStatus reads an invoice (invoice/info): only payed is paid, and
// wrongamount is a problem for an operator.
func (c *crystalPayV3) PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error) {
	if ref.ID == "" {
		return PaymentStatus{}, invalid("id", "invoice/info needs the invoice id")
	}
	const op = "invoice/info"
	reply, err := c.call(ctx, c.api, op, map[string]any{"id": ref.ID})
	if err != nil {
		return PaymentStatus{}, err
	}
	st, err := parseCrystalPayV3InvoiceState(reply)
	if err != nil {
		return PaymentStatus{}, c.api.Malformed(op, http.StatusOK, reply, "%v", err)
	}
	return st, nil
}

// CancelPayment is not offered by CrystalPAY v3: an unpaid invoice stays
// payable until its lifetime ends.
func (c *crystalPayV3) CancelPayment(context.Context, PaymentRef) error {
	return &ProviderError{Provider: "crystalpay", Op: "cancel", Kind: ErrNotSupported}
}

// Balance reports whose cash register this is (me/info) and its balance of
// each method (balance/list); the total is the sum of the ruble ones. A
// wrong login fails here, as an ErrAuth.
func (c *crystalPayV3) Balance(ctx context.Context) (Balance, error) {
	reply, err := c.call(ctx, c.api, "me/info", nil)
	if err != nil {
		return Balance{}, err
	}
	account, err := parseCrystalPayV3Me(reply)
	if err != nil {
		return Balance{}, c.api.Malformed("me/info", http.StatusOK, reply, "%v", err)
	}
	reply, err = c.call(ctx, c.api, "balance/list", nil)
	if err != nil {
		return Balance{}, err
	}
	b, err := parseCrystalPayV3Balances(reply)
	if err != nil {
		return Balance{}, c.api.Malformed("balance/list", http.StatusOK, reply, "%v", err)
	}
	b.Account = account
	return b, nil
}

// Payout pays in one go: create, then submit. It is for callers that do
// not keep the payout's id between the steps; the admin API uses the two
// steps of TwoStepPayer, which survive a lost reply. When the submit
// fails, the created payout is returned with the error: it pays nothing
// unless submitted.
func (c *crystalPayV3) Payout(ctx context.Context, req PayoutRequest) (Payout, error) {
	created, err := c.CreatePayout(ctx, req)
	if err != nil {
		return Payout{}, err
	}
	p, err := c.SubmitPayout(ctx, created.ID)
	if err != nil {
		return created, err
	}
	return p, nil
}

// CreatePayout creates a payout (payoff/create) that pays nothing until it
// is submitted, signed with the salt over the exact amount text sent. The
// amount is in rubles (amount_currency RUB); the payee gets it whole
// unless subtract_from is amount.
func (c *crystalPayV3) CreatePayout(ctx context.Context, req PayoutRequest) (Payout, error) {
	if c.salt == "" {
		return Payout{}, invalid("salt", "payouts need salt (Secret 2) in the account's configuration")
	}
	if err := c.CheckAmount(req.Amount); err != nil {
		return Payout{}, err
	}
	if err := validateToken("to", req.To, 128); err != nil {
		return Payout{}, err
	}
	if err := validateToken("method", req.Method, 32); err != nil {
		return Payout{}, err
	}
	amount := req.Amount.String()
	signature := crystalPayV3Signature(c.salt, amount, req.Method, req.To)
	subtractFrom := c.subtractFrom
	if subtractFrom == "" {
		subtractFrom = "balance"
	}
	fields := map[string]any{
		"signature":       signature,
		"amount":          json.Number(amount),
		"amount_currency": "RUB",
		"method":          req.Method,
		"wallet":          req.To,
		"subtract_from":   subtractFrom,
	}
	if req.OrderID != "" {
		fields["extra"] = req.OrderID
	}
	return c.payoff(ctx, "payoff/create", fields, signature, PayoutCreated)
}

// SubmitPayout pays a created payout (payoff/submit).
func (c *crystalPayV3) SubmitPayout(ctx context.Context, id string) (Payout, error) {
	return c.signedPayoff(ctx, "payoff/submit", id, PayoutProcessing)
}

// CancelPayout withdraws a created payout (payoff/cancel).
func (c *crystalPayV3) CancelPayout(ctx context.Context, id string) (Payout, error) {
	return c.signedPayoff(ctx, "payoff/cancel", id, PayoutCanceled)
}

// PayoutStatus reads a payout (payoff/info).
func (c *crystalPayV3) PayoutStatus(ctx context.Context, id string) (Payout, error) {
	if err := validateToken("id", id, 128); err != nil {
		return Payout{}, err
	}
	return c.payoff(ctx, "payoff/info", map[string]any{"id": id}, "", "")
}

// signedPayoff makes a call on a payout signed over its id.
func (c *crystalPayV3) signedPayoff(ctx context.Context, op, id string, implied PayoutState) (Payout, error) {
	if c.salt == "" {
		return Payout{}, invalid("salt", "payouts need salt (Secret 2) in the account's configuration")
	}
	if err := validateToken("id", id, 128); err != nil {
		return Payout{}, err
	}
	signature := crystalPayV3Signature(c.salt, id)
	return c.payoff(ctx, op, map[string]any{"id": id, "signature": signature}, signature, implied)
}

// payoff makes a payout call and reads the payout it returns; a reply
// without a state is taken to be in the state the call implies (none for
// payoff/info, where it is malformed). The signature is kept out of every
// error.
func (c *crystalPayV3) payoff(ctx context.Context, op string, fields map[string]any, signature string, implied PayoutState) (Payout, error) {
	api := c.api
	if signature != "" {
		api = api.WithSecrets(signature)
	}
	reply, err := c.call(ctx, api, op, fields)
	if err != nil {
		return Payout{}, err
	}
	p, err := parseCrystalPayV3Payoff(reply, implied)
	if err != nil {
		return Payout{}, api.Malformed(op, http.StatusOK, reply, "%v", err)
	}
	return p, nil
}

// ParseCallback checks a callback's signature, sha1(id:salt) in constant
// time, and reads the id, the order id (extra) and whether it is about a
// payout. Without a salt no callback holds.
func (c *crystalPayV3) ParseCallback(body []byte) (Callback, error) {
	return parseCrystalPayV3Callback(body, c.salt)
}

// CheckAmount refuses an amount CrystalPAY would not take in rubles: not
// positive, or with more than two decimals.
func (c *crystalPayV3) CheckAmount(amount decimal.Decimal) error {
	return validateMoney("amount", amount, false)
}

// RateLimit is the request rate CrystalPAY v3 asks for: 5 a second.
func (c *crystalPayV3) RateLimit() float64 { return crystalPayV3RateLimit }

// CallTimeout is how long one call may take.
func (c *crystalPayV3) CallTimeout() time.Duration { return c.api.CallTimeout() }

// call makes one v3 call through api: a JSON POST of fields and the
// credentials to <endpoint><op>/. It returns the reply once its envelope
// says it succeeded; failures are ProviderErrors (see crystalPayV3Failure).
func (c *crystalPayV3) call(ctx context.Context, api *ProviderClient, op string, fields map[string]any) (reply []byte, err error) {
	defer api.Observe(op, time.Now(), &err)
	body := make(map[string]any, len(fields)+2)
	for k, v := range fields {
		body[k] = v
	}
	body["auth_login"], body["auth_secret"] = c.login, c.secret
	data, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("crystalpay %s: encoding the request: %w", op, err)
	}
	header := http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}}
	status, reply, err := api.Call(ctx, op, http.MethodPost, api.URL(op+"/", nil), header, data)
	if err != nil {
		return nil, err
	}
	if status == http.StatusTooManyRequests || status >= 500 {
		return nil, api.Failure(op, ErrUnavailable, status, reply, nil)
	}
	env, err := parseCrystalPayV3Envelope(reply)
	switch {
	case err != nil:
		return nil, api.Malformed(op, status, reply, "%v", err)
	case env.failed:
		return nil, crystalPayV3Failure(api, op, status, reply, env.messages)
	case status < 200 || status > 299:
		return nil, api.Malformed(op, status, reply, "unexpected HTTP status")
	}
	return reply, nil
}

// crystalPayV3Signature is the lowercase hex SHA-1 of the values and the
// salt joined by colons: sha1(amount:method:wallet:salt) for
// payoff/create, sha1(id:salt) for payoff/submit, payoff/cancel and
// callbacks.
func crystalPayV3Signature(salt string, values ...string) string {
	h := sha1.New()
	for _, v := range values {
		h.Write([]byte(v + ":"))
	}
	h.Write([]byte(salt))
	return hex.EncodeToString(h.Sum(nil))
}

// crystalPayLifetime is an invoice's lifetime in whole minutes, rounded up
// and at least one; an unset TTL takes the app's default order TTL.
func crystalPayLifetime(ttl time.Duration) int64 {
	if ttl <= 0 {
		ttl = defaultOrderTTL
	}
	return max(1, int64((ttl+time.Minute-1)/time.Minute))
}

// Interface guards
var (
	_ PaymentProvider     = (*crystalPayV3)(nil)
	_ TwoStepPayer        = (*crystalPayV3)(nil)
	_ CallbackReceiver    = (*crystalPayV3)(nil)
	_ RateLimitReporter   = (*crystalPayV3)(nil)
	_ AmountChecker       = (*crystalPayV3)(nil)
	_ CallTimeoutReporter = (*crystalPayV3)(nil)
)
