package kassa

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/shopspring/decimal"
)

func init() {
	caddy.RegisterModule(CrystalPay{})
}

// crystalPayEndpoint is CrystalPAY's API v1 URL.
const crystalPayEndpoint = "https://api.crystalpay.ru/api.php"

// The CrystalPAY APIs the module speaks (its api option).
const (
	crystalPayAPIv1 = "v1"
	crystalPayAPIv3 = "v3"
)

// CrystalPay is a payment account at CrystalPAY. Its api option picks the
// API: v3 (the default, JSON over POST, see crystalpayv3.go) or v1 (the
// old api.php, for accounts that still use it). The module keeps the
// configuration; the app uses the implementation Provider returns, so that
// each API offers only what it has: v3 signed callbacks and tracked
// two-step payouts, v1 neither.
type CrystalPay struct {
	// API is the CrystalPAY API: "v3" (default) or "v1".
	API string `json:"api,omitempty"`
	// Login is the cash register's login.
	Login string `json:"login,omitempty"`
	// Secret is secret key 1 (v3 auth_secret), sent with every call. Use
	// {env.*}.
	Secret string `json:"secret,omitempty"`
	// Secret2 is v1's secret key 2, which signs payouts. Optional. Use
	// {env.*}.
	Secret2 string `json:"secret2,omitempty"`
	// Salt is v3's Secret 2: it signs payouts and checks callbacks, and is
	// never sent. Optional; without it the account makes no payouts and
	// refuses every callback. Use {env.*}.
	Salt string `json:"salt,omitempty"`
	// Endpoint is the API's URL; default https://api.crystalpay.io/v3/ (v3)
	// or https://api.crystalpay.ru/api.php (v1).
	Endpoint string `json:"endpoint,omitempty"`
	// Callback (v3) is the absolute URL where CrystalPAY posts an invoice's
	// callbacks (a kassa_callback handler). Optional.
	Callback string `json:"callback,omitempty"`
	// Method (v3) fixes the payment method of every invoice (its
	// required_method, such as BITCOIN). Optional: the buyer chooses.
	Method string `json:"method,omitempty"`
	// SubtractFrom (v3) is where CrystalPAY takes its commission: "amount"
	// (the merchant gets less) or "balance". Optional: invoices take
	// CrystalPAY's default (amount), payouts "balance", so that the payee
	// gets the exact amount.
	SubtractFrom string `json:"subtract_from,omitempty"`
	// Timeout bounds each call; default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	login, secret string
	// endpoint and callback are Endpoint and Callback with their
	// {env.*} placeholders resolved, as every provider's endpoint is.
	endpoint, callback string
	api                *ProviderClient
	provider           PaymentProvider
}

// CaddyModule returns the Caddy module information.
func (CrystalPay) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "kassa.payments.crystalpay",
		New: func() caddy.Module { return new(CrystalPay) },
	}
}

// Provision resolves the credentials and builds the HTTP client and the
// implementation of the configured API. It calls nothing: a start does not
// fail because CrystalPAY is down.
func (c *CrystalPay) Provision(caddy.Context) error {
	c.login, c.secret = resolvePlaceholders(c.Login), resolvePlaceholders(c.Secret)
	c.endpoint, c.callback = resolvePlaceholders(c.Endpoint), resolvePlaceholders(c.Callback)
	// Set but resolved empty: never the default host (real payments), nor
	// silently no callback.
	if c.endpoint == "" && c.Endpoint != "" {
		return fmt.Errorf("crystalpay: endpoint %s is empty (is its environment variable set?)", c.Endpoint)
	}
	if c.callback == "" && c.Callback != "" {
		return fmt.Errorf("crystalpay: callback %s is empty (is its environment variable set?)", c.Callback)
	}
	if c.API == crystalPayAPIv1 {
		return c.provisionV1()
	}
	return c.provisionV3()
}

// provisionV1 builds the api.php implementation.
func (c *CrystalPay) provisionV1() error {
	secret2 := resolvePlaceholders(c.Secret2)
	endpoint := c.endpoint
	if endpoint == "" {
		endpoint = crystalPayEndpoint
	}
	api, err := NewProviderClient("crystalpay", endpoint, time.Duration(c.Timeout), c.secret, secret2)
	if err != nil {
		return fmt.Errorf("crystalpay: %w", err)
	}
	c.api = api.SendOnce("generate", "withdraw")
	c.provider = &crystalPayV1{login: c.login, secret: c.secret, secret2: secret2, api: c.api}
	return nil
}

// Provider returns the implementation of the configured API.
func (c *CrystalPay) Provider() PaymentProvider { return c.provider }

// Validate checks the options against the configured API and that the
// credentials are set, the salt too when invoices name a callback URL.
func (c *CrystalPay) Validate() error {
	if err := c.checkOptions(); err != nil {
		return err
	}
	if c.login == "" {
		return errors.New("crystalpay: login is empty (is its environment variable set?)")
	}
	if c.secret == "" {
		return errors.New("crystalpay: secret is empty (is its environment variable set?)")
	}
	if err := checkCallbackURL(c.callback); err != nil {
		return err
	}
	if v3, ok := c.provider.(*crystalPayV3); ok && c.callback != "" && v3.salt == "" {
		return errors.New("crystalpay: callback is set but salt is empty (is its environment variable set?): " +
			"without it every callback would be refused as forged")
	}
	return nil
}

// checkOptions refuses an unknown api, an option of the other API (one
// that would be silently ignored) and bad v3 values. It reads only the
// configuration, so the Caddyfile reports it with the file and line.
func (c *CrystalPay) checkOptions() error {
	switch c.API {
	case "", crystalPayAPIv3:
		if c.Secret2 != "" {
			return errors.New("crystalpay: secret2 is an api v1 option; api v3 signs with salt (or set api v1)")
		}
	case crystalPayAPIv1:
		for _, o := range []struct{ name, value, why string }{
			{"salt", c.Salt, "api v1 signs payouts with secret2"},
			{"callback", c.Callback, "api v1 sends no callbacks"},
			{"method", c.Method, "api v1 invoices let the buyer choose"},
			{"subtract_from", c.SubtractFrom, "api v1 takes its commission as it does"},
		} {
			if o.value != "" {
				return fmt.Errorf("crystalpay: %s is an api v3 option; %s (or remove api v1)", o.name, o.why)
			}
		}
		return nil
	default:
		return fmt.Errorf("crystalpay: api %q: want v3 (the default) or v1", c.API)
	}
	switch c.SubtractFrom {
	case "", "amount", "balance":
	default:
		return fmt.Errorf("crystalpay: subtract_from %q: want amount or balance", c.SubtractFrom)
	}
	if !strings.Contains(c.Callback, "{") {
		// Without placeholders it is checked here, so the Caddyfile
		// reports it with its line; with them, once resolved (Validate).
		if err := checkCallbackURL(c.Callback); err != nil {
			return err
		}
	}
	if c.Method != "" {
		if err := validateToken("method", c.Method, 32); err != nil {
			return fmt.Errorf("crystalpay: %v", err)
		}
	}
	return nil
}

// checkCallbackURL refuses a callback URL that is not an absolute http or
// https URL, or is plain http:// to anything but a loopback address.
func checkCallbackURL(callback string) error {
	if callback == "" {
		return nil
	}
	if !isHTTPURL(callback) || len(callback) > maxURL {
		return fmt.Errorf("crystalpay: callback %q: want an absolute http:// or https:// URL", callback)
	}
	if u, err := url.Parse(callback); err == nil && u.Scheme == "http" && !isLoopback(u.Hostname()) {
		return fmt.Errorf("crystalpay: callback %q: use https://: a callback's signature covers only the invoice id "+
			"and never expires, so one read on the way could be replayed; plain http:// is allowed only to a loopback address", callback)
	}
	return nil
}

// Cleanup closes the client's idle connections.
func (c *CrystalPay) Cleanup() error {
	if c.api != nil {
		c.api.Close()
	}
	return nil
}

// UnmarshalCaddyfile sets up the account from Caddyfile tokens.
//
// Syntax:
//
//	crystalpay {
//		api      v3|v1               # default v3
//		login    <login>
//		secret   <secret key 1>      # v3 auth_secret
//		salt     <secret 2>          # v3: payouts and callbacks
//		callback <url>               # v3: where invoices' callbacks go
//		method   <method code>       # v3: every invoice's required_method
//		subtract_from amount|balance # v3: who pays the commission
//		secret2  <secret key 2>      # v1: payouts only
//		endpoint <url>               # default https://api.crystalpay.io/v3/ (v1: https://api.crystalpay.ru/api.php)
//		timeout  <duration>          # default 10s
//	}
func (c *CrystalPay) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if err := parseNoInlineArgs(d); err != nil {
		return err
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "api":
			err = parseOneArg(d, &c.API)
		case "login":
			err = parseOneArg(d, &c.Login)
		case "secret":
			err = parseOneArg(d, &c.Secret)
		case "secret2":
			err = parseOneArg(d, &c.Secret2)
		case "salt":
			err = parseOneArg(d, &c.Salt)
		case "callback":
			err = parseOneArg(d, &c.Callback)
		case "method":
			err = parseOneArg(d, &c.Method)
		case "subtract_from":
			err = parseOneArg(d, &c.SubtractFrom)
		case "endpoint":
			err = parseOneArg(d, &c.Endpoint)
		case "timeout":
			err = parseDuration(d, &c.Timeout)
		default:
			err = d.Errf("unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if err := c.checkOptions(); err != nil {
		return d.Err(err.Error())
	}
	return nil
}

// crystalPayV1 is a payment account at CrystalPAY's API v1 (api.php).
//
// CrystalPAY v1 takes whole rubles only: an amount with kopecks is refused
// before any request. Its secret travels in the query string, so no URL of a
// call is ever logged or put in an error. It has no cancel call, no webhook
// and no idempotency key: payment status is learned by polling checkpay, and
// generate and withdraw are never retried, since a retry after a lost reply
// would create a second invoice or pay out twice.
type crystalPayV1 struct {
	login, secret, secret2 string
	api                    *ProviderClient
}

// CreatePayment generates a payment link (operation generate).
func (c *crystalPayV1) CreatePayment(ctx context.Context, req PaymentRequest) (Payment, error) {
	amount, err := wholeRubles("amount", req.Amount)
	if err != nil {
		return Payment{}, err
	}
	q := c.query("generate")
	q.Set("amount", amount)
	if req.ReturnURL != "" {
		if err := validateReturnURL(req.ReturnURL); err != nil {
			return Payment{}, err
		}
		q.Set("redirect", req.ReturnURL)
	}
	reply, err := c.get(ctx, c.api, "generate", q)
	if err != nil {
		return Payment{}, err
	}
	p, err := parseCrystalPayLink(reply)
	if err != nil {
		return Payment{}, c.api.Malformed("generate", http.StatusOK, reply, "%v", err)
	}
	return p, nil
}

// PaymentStatus asks whether a payment link was paid (operation checkpay).
func (c *crystalPayV1) PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error) {
	if ref.ID == "" {
		return PaymentStatus{}, invalid("id", "checkpay needs the payment id")
	}
	q := c.query("checkpay")
	q.Set("i", ref.ID)
	reply, err := c.get(ctx, c.api, "checkpay", q)
	if err != nil {
		return PaymentStatus{}, err
	}
	st, err := parseCrystalPayCheckpay(reply)
	if err != nil {
		return PaymentStatus{}, c.api.Malformed("checkpay", http.StatusOK, reply, "%v", err)
	}
	return st, nil
}

// CancelPayment is not offered by CrystalPAY: an unpaid link simply stays
// unpaid.
func (c *crystalPayV1) CancelPayment(context.Context, PaymentRef) error {
	return &ProviderError{Provider: "crystalpay", Op: "cancel", Kind: ErrNotSupported}
}

// Balance reports the cash register's balance (operation balance), in either
// of its reply forms.
func (c *crystalPayV1) Balance(ctx context.Context) (Balance, error) {
	reply, err := c.get(ctx, c.api, "balance", c.query("balance"))
	if err != nil {
		return Balance{}, err
	}
	b, err := parseCrystalPayBalance(reply)
	if err != nil {
		return Balance{}, c.api.Malformed("balance", http.StatusOK, reply, "%v", err)
	}
	return b, nil
}

// Payout withdraws money to a payee (operation withdraw), signed with secret
// key 2. It is sent once and never retried: CrystalPAY returns no id, so a
// payout whose reply was lost cannot be checked, and a retry could pay twice.
func (c *crystalPayV1) Payout(ctx context.Context, req PayoutRequest) (Payout, error) {
	if c.secret2 == "" {
		return Payout{}, invalid("secret2", "payouts need secret2 in the account's configuration")
	}
	amount, err := wholeRubles("amount", req.Amount)
	if err != nil {
		return Payout{}, err
	}
	if err := validateToken("to", req.To, 64); err != nil {
		return Payout{}, err
	}
	if err := validateToken("method", req.Method, 32); err != nil {
		return Payout{}, err
	}
	q := c.query("withdraw")
	q.Set("amount", amount)
	q.Set("wallet", req.To)
	q.Set("service", req.Method)
	signature := crystalPaySignature(req.To, amount, c.secret2)
	q.Set("secret", signature)
	// The signature is as good as secret 2 for this payout: keep it out of
	// errors too.
	api := c.api.WithSecrets(signature)
	reply, err := c.get(ctx, api, "withdraw", q)
	if err != nil {
		return Payout{}, err
	}
	if err := parseCrystalPayWithdraw(reply); err != nil {
		return Payout{}, api.Malformed("withdraw", http.StatusOK, reply, "%v", err)
	}
	return Payout{}, nil
}

// CheckAmount refuses an amount CrystalPAY would not take: not positive,
// or with kopecks.
func (c *crystalPayV1) CheckAmount(amount decimal.Decimal) error {
	_, err := wholeRubles("amount", amount)
	return err
}

// crystalPaySignature signs a payout: lowercase hex md5 of
// wallet-amount-secret2, over the exact strings sent.
func crystalPaySignature(wallet, amount, secret2 string) string {
	sum := md5.Sum([]byte(wallet + "-" + amount + "-" + secret2))
	return hex.EncodeToString(sum[:])
}

// query starts a call's query string with the credentials and operation.
func (c *crystalPayV1) query(op string) url.Values {
	return url.Values{"s": {c.secret}, "n": {c.login}, "o": {op}}
}

// get makes one call through api and returns its reply once the envelope
// says it succeeded; auth, error and transport failures become
// ProviderErrors.
func (c *crystalPayV1) get(ctx context.Context, api *ProviderClient, op string, q url.Values) (reply []byte, err error) {
	defer api.Observe(op, time.Now(), &err)
	status, reply, err := api.Call(ctx, op, http.MethodGet, api.URL("", q), nil, nil)
	if err != nil {
		return nil, err
	}
	if status >= 500 {
		return nil, api.Failure(op, ErrUnavailable, status, reply, nil)
	}
	env, err := parseCrystalPayEnvelope(reply)
	if err != nil {
		return nil, api.Malformed(op, status, reply, "%v", err)
	}
	switch {
	case env.Auth == "error":
		e := api.Failure(op, ErrAuth, status, reply, nil)
		e.Message = api.Clean(env.ErrorMessage)
		return nil, e
	case env.Error:
		e := api.Failure(op, ErrRejected, status, reply, nil)
		e.Message = api.Clean(env.ErrorMessage)
		return nil, e
	case status != http.StatusOK:
		return nil, api.Malformed(op, status, reply, "unexpected HTTP status")
	}
	return reply, nil
}

// crystalPayEnvelope is the part every CrystalPAY reply shares.
type crystalPayEnvelope struct {
	Auth         string `json:"auth"`
	Error        bool   `json:"-"`
	ErrorMessage string `json:"error_message"`
}

// parseCrystalPayEnvelope reads auth, error and error_message. A reply
// without "auth" is malformed; "error" may be absent (balance) or a bool.
func parseCrystalPayEnvelope(reply []byte) (crystalPayEnvelope, error) {
	var raw struct {
		Auth         *string         `json:"auth"`
		Error        json.RawMessage `json:"error"`
		ErrorMessage json.RawMessage `json:"error_message"`
	}
	if err := json.Unmarshal(reply, &raw); err != nil {
		return crystalPayEnvelope{}, fmt.Errorf("not a JSON object: %v", err)
	}
	if raw.Auth == nil {
		return crystalPayEnvelope{}, errors.New(`no "auth" field`)
	}
	env := crystalPayEnvelope{Auth: *raw.Auth}
	if env.Auth != "ok" && env.Auth != "error" {
		return env, fmt.Errorf(`"auth" is %q`, env.Auth)
	}
	switch e := string(bytes.TrimSpace(raw.Error)); e {
	case "", "null", "false":
	case "true":
		env.Error = true
	default:
		// Some replies carry the message in "error" itself.
		var msg string
		if json.Unmarshal(raw.Error, &msg) != nil {
			return env, fmt.Errorf(`"error" is %.40s`, e)
		}
		env.Error, env.ErrorMessage = true, msg
	}
	if len(raw.ErrorMessage) > 0 {
		var msg flexString
		if err := json.Unmarshal(raw.ErrorMessage, &msg); err == nil && msg != "" {
			env.ErrorMessage = string(msg)
		}
	}
	return env, nil
}

// parseCrystalPayLink reads a reply that made a payment link: v1's
// generate and v3's invoice/create, both an "id" and a "url" (v3's
// rub_amount, a string or a number, is not needed).
func parseCrystalPayLink(reply []byte) (Payment, error) {
	var r struct {
		ID  flexString `json:"id"`
		URL string     `json:"url"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return Payment{}, err
	}
	if r.ID == "" {
		return Payment{}, errors.New(`no payment "id"`)
	}
	if !isHTTPURL(r.URL) {
		return Payment{}, errors.New(`payment "url" is not an absolute http(s) URL`)
	}
	return Payment{ID: string(r.ID), URL: r.URL}, nil
}

// parseCrystalPayCheckpay reads a checkpay reply: payed or notpayed, and the
// amount when it is given.
func parseCrystalPayCheckpay(reply []byte) (PaymentStatus, error) {
	var r struct {
		State  string              `json:"state"`
		Amount decimal.NullDecimal `json:"amount"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return PaymentStatus{}, err
	}
	var st PaymentStatus
	switch r.State {
	case "payed":
		st.Paid = true
	case "notpayed":
	default:
		return st, fmt.Errorf(`unknown "state" %q`, r.State)
	}
	if r.Amount.Valid && r.Amount.Decimal.IsNegative() {
		return st, errors.New(`negative "amount"`)
	}
	st.Amount = r.Amount
	return st, nil
}

// parseCrystalPayBalance reads a balance reply in either form: a single
// amount, or an object of wallets whose sum is the total.
func parseCrystalPayBalance(reply []byte) (Balance, error) {
	var r struct {
		Balance json.RawMessage `json:"balance"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return Balance{}, err
	}
	raw := bytes.TrimSpace(r.Balance)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return Balance{}, errors.New(`no "balance"`)
	}
	if raw[0] == '{' {
		var wallets map[string]decimal.Decimal
		if err := json.Unmarshal(raw, &wallets); err != nil {
			return Balance{}, fmt.Errorf(`"balance" wallets: %v`, err)
		}
		b := Balance{Total: decimal.Zero, Wallets: wallets}
		for _, amount := range wallets {
			b.Total = b.Total.Add(amount)
		}
		return b, nil
	}
	var total decimal.Decimal
	if err := json.Unmarshal(raw, &total); err != nil {
		return Balance{}, fmt.Errorf(`"balance": %v`, err)
	}
	return Balance{Total: total}, nil
}

// parseCrystalPayWithdraw checks a withdraw reply, which says only that it
// did not fail: "error" must be present and false.
func parseCrystalPayWithdraw(reply []byte) error {
	var r struct {
		Error *bool `json:"error"`
	}
	if err := json.Unmarshal(reply, &r); err != nil {
		return err
	}
	if r.Error == nil {
		return errors.New(`no "error" field`)
	}
	return nil
}

// wholeRubles formats an amount for CrystalPAY, which takes whole rubles
// only: an amount with kopecks is refused, never rounded.
func wholeRubles(field string, amount decimal.Decimal) (string, error) {
	if err := validateMoney(field, amount, false); err != nil {
		return "", err
	}
	if !amount.Equal(amount.Truncate(0)) {
		return "", invalid(field, "%s has kopecks; CrystalPAY takes whole rubles only", amount.StringFixed(2))
	}
	return amount.StringFixed(0), nil
}

// validateReturnURL accepts an absolute http(s) URL.
func validateReturnURL(raw string) error {
	if !isHTTPURL(raw) || len(raw) > maxURL {
		return invalid("return_url", "want an absolute http:// or https:// URL of at most %d bytes", maxURL)
	}
	return nil
}

// maxURL bounds a URL sent to a provider.
const maxURL = 2048

// isHTTPURL reports whether raw is an absolute http(s) URL.
func isHTTPURL(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// validateToken accepts a non-empty value of at most max characters with
// no spaces or control characters: an account number, a method code.
func validateToken(field, value string, max int) error {
	switch {
	case value == "":
		return invalid(field, "must not be empty")
	case len(value) > max:
		return invalid(field, "longer than %d characters", max)
	case strings.ContainsFunc(value, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return invalid(field, "must not contain spaces or control characters")
	}
	return nil
}

// CallTimeout is how long one call may take; the reconciler waits longer
// than a checkout can take before it recovers one.
func (c *crystalPayV1) CallTimeout() time.Duration { return c.api.CallTimeout() }

// APIEndpoint reports where the CrystalPay calls go (EndpointReporter).
func (c *CrystalPay) APIEndpoint() (host string, sandbox bool) { return c.api.APIEndpoint() }

// Interface guards
var (
	_ EndpointReporter      = (*CrystalPay)(nil)
	_ caddy.Provisioner     = (*CrystalPay)(nil)
	_ caddy.Validator       = (*CrystalPay)(nil)
	_ caddy.CleanerUpper    = (*CrystalPay)(nil)
	_ caddyfile.Unmarshaler = (*CrystalPay)(nil)
	_ ProviderSwitch        = (*CrystalPay)(nil)
	_ PaymentProvider       = (*crystalPayV1)(nil)
	_ AmountChecker         = (*crystalPayV1)(nil)
	_ CallTimeoutReporter   = (*crystalPayV1)(nil)
)
