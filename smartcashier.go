package kassa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // the place of settlement's time zone, also where the system has no zone database

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(SmartCashier{})
}

// smartCashierEndpoint is Smart Cashier's API v1.0 base URL.
const smartCashierEndpoint = "https://api.smart-cashier.ru/v1.0"

// Retry policy of Smart Cashier calls.
const (
	// smartCashierRetries is how often a failed call is re-sent by default.
	smartCashierRetries = 3
	// smartCashierMaxRetries bounds the retries option: beyond it a call
	// would outlive any request that waits for it.
	smartCashierMaxRetries = 10
	// smartCashierBackoff is the first wait before a retry; it doubles
	// with each retry up to smartCashierMaxBackoff.
	smartCashierBackoff = 200 * time.Millisecond
	// smartCashierMaxBackoff caps the wait before a retry.
	smartCashierMaxBackoff = 5 * time.Second
)

// SmartCashier is a fiscal-receipt service account at Smart Cashier
// («Смарт кассир», API v1.0): it forms 54-FZ receipts, records cash put into
// and taken out of a till, and reports on those operations.
//
// Every operation is idempotent by its operation id, so a call that failed
// on the network, timed out or met a server error (HTTP 5xx) is re-sent with
// the same body, up to Retries times, with exponential backoff and jitter.
// A refusal (HTTP 4xx) or a malformed reply is never retried. Receipts and
// cash operations are checked before sending: one the service would refuse
// is refused locally with a *ValidationError and nothing is sent.
type SmartCashier struct {
	// Token is the JWT from the Smart Cashier account, sent as a Bearer
	// token. Use {env.*}.
	Token string `json:"token,omitempty"`
	// Endpoint is the API's base URL; default
	// https://api.smart-cashier.ru/v1.0.
	Endpoint string `json:"endpoint,omitempty"`
	// CashboxID is the GUID of the till that prints receipts sent without
	// one, and the till of cash operations that name none. Optional: without
	// it the service picks a till for receipts, and cash operations must
	// name theirs.
	CashboxID string `json:"cashbox_id,omitempty"`
	// Taxation is the shop's taxation system, stated on every receipt that
	// does not state its own. Required.
	Taxation TaxationSystem `json:"taxation,omitempty"`
	// VAT is the VAT rate of positions that have none; default none
	// (not subject to VAT).
	VAT VAT `json:"vat,omitempty"`
	// TaxTypes maps VAT rates (by config name) to the taxType codes the
	// account's Smart Cashier takes for them, over the defaults of API
	// v1.0.1: vat0 1, vat10 2, vat20 3, none 4, vat110 5, vat120 6. That
	// API version predates the rates of 2025 and 2026 (22%, 22/122, 5%,
	// 7%, 5/105, 7/107), which have no code until one is given here: a
	// rate without a code is refused, never put on a receipt as another.
	TaxTypes map[string]int `json:"tax_types,omitempty"`
	// Timezone is the IANA time zone of the place of settlement, in which
	// a receipt's time is shown and put in its QR code; default
	// Europe/Moscow.
	Timezone string `json:"timezone,omitempty"`
	// Print asks for paper receipts on receipts that do not say; default
	// false.
	Print bool `json:"print,omitempty"`
	// Timeout bounds each attempt of a call; default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// Retries is how many times a call that failed on the network or with
	// a server error is re-sent; default 3, at most 10. 0 sends once.
	Retries *int `json:"retries,omitempty"`

	token, cashboxID string
	vat              VAT
	taxTypes         map[VAT]int
	location         *time.Location
	retries          int
	backoff          time.Duration // the first wait before a retry
	api              *ProviderClient
	logger           *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (SmartCashier) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "kassa.receipts.smartcashier",
		New: func() caddy.Module { return new(SmartCashier) },
	}
}

// Provision resolves the token and cashbox, applies the defaults and builds
// the HTTP client.
func (s *SmartCashier) Provision(ctx caddy.Context) error {
	s.logger = ctx.Logger()
	s.token = resolvePlaceholders(s.Token)
	s.cashboxID = strings.TrimSpace(resolvePlaceholders(s.CashboxID))
	s.vat = s.VAT
	if s.vat == 0 {
		s.vat = VATNone
	}
	s.taxTypes = maps.Clone(smartCashierTaxTypes)
	given := make(map[VAT]string, len(s.TaxTypes))
	for _, name := range slices.Sorted(maps.Keys(s.TaxTypes)) {
		code := s.TaxTypes[name]
		v, err := ParseVAT(name)
		if err != nil {
			return fmt.Errorf("smartcashier: tax_type: %v", err)
		}
		if other, dup := given[v]; dup {
			return fmt.Errorf("smartcashier: tax_type: %s and %s name one rate", other, name)
		}
		given[v] = name
		if code < 1 || code > maxTaxTypeCode {
			return fmt.Errorf("smartcashier: tax_type %s %d: the code must be from 1 to %d", name, code, maxTaxTypeCode)
		}
		s.taxTypes[v] = code
	}
	byCode := map[int][]string{}
	for v, code := range s.taxTypes {
		byCode[code] = append(byCode[code], v.String())
	}
	for code, rates := range byCode {
		if len(rates) > 1 {
			slices.Sort(rates)
			s.logger.Warn("several VAT rates go to Smart Cashier as one taxType code: receipts will not tell them apart",
				zap.Int("tax_type", code), zap.Strings("rates", rates))
		}
	}
	zone := s.Timezone
	if zone == "" {
		zone = smartCashierTimezone
	}
	location, err := time.LoadLocation(zone)
	if err != nil || zone == "Local" {
		return fmt.Errorf("smartcashier: timezone %q: want an IANA time zone such as Europe/Moscow or Asia/Yekaterinburg", zone)
	}
	s.location = location
	s.retries = smartCashierRetries
	if s.Retries != nil {
		s.retries = *s.Retries
	}
	s.backoff = smartCashierBackoff
	endpoint := resolvePlaceholders(s.Endpoint)
	if endpoint == "" && s.Endpoint != "" {
		return fmt.Errorf("smartcashier: endpoint %s is empty (is its environment variable set?)", s.Endpoint)
	}
	if endpoint == "" {
		endpoint = smartCashierEndpoint
	}
	api, err := NewProviderClient("smartcashier", endpoint, time.Duration(s.Timeout), s.token)
	if err != nil {
		return fmt.Errorf("smartcashier: %w", err)
	}
	s.api = api
	return nil
}

// Validate checks that the token and taxation system are set and that the
// other options are in range.
func (s *SmartCashier) Validate() error {
	switch {
	case s.token == "":
		return errors.New("smartcashier: token is empty (is its environment variable set?)")
	case strings.ContainsFunc(s.token, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return errors.New("smartcashier: token contains spaces or control characters")
	case s.Taxation == 0:
		return fmt.Errorf("smartcashier: taxation is required (one of %s)", strings.Join(smartCashierTaxationNames(), ", "))
	case s.Taxation < TaxationOSN || s.Taxation > TaxationPatent:
		return fmt.Errorf("smartcashier: unknown taxation system %d", int(s.Taxation))
	case s.Taxation == TaxationENVD:
		return errors.New("smartcashier: taxation envd: " + envdAbolished)
	case !s.vat.Valid():
		return fmt.Errorf("smartcashier: unknown VAT rate %d", int(s.vat))
	case s.Retries != nil && (*s.Retries < 0 || *s.Retries > smartCashierMaxRetries):
		return fmt.Errorf("smartcashier: retries must be from 0 to %d", smartCashierMaxRetries)
	case s.Timeout < 0:
		return errors.New("smartcashier: timeout must not be negative")
	}
	if s.cashboxID != "" {
		if err := validateSmartCashierGUID("cashbox_id", s.cashboxID); err != nil {
			return fmt.Errorf("smartcashier: %w", err)
		}
	}
	if err := s.CheckVAT(s.vat); err != nil {
		return fmt.Errorf("smartcashier: vat %s: %v", s.vat, err)
	}
	return nil
}

// smartCashierTaxTypes are the taxType codes of Smart Cashier API v1.0.1
// (the seed's directory): the only rates that API version names.
var smartCashierTaxTypes = map[VAT]int{VAT0: 1, VAT10: 2, VAT20: 3, VATNone: 4, VAT110: 5, VAT120: 6}

// maxTaxTypeCode bounds a tax_type code.
const maxTaxTypeCode = 99

// smartCashierTimezone is the default place of settlement's time zone.
const smartCashierTimezone = "Europe/Moscow"

// envdAbolished says why envd is refused.
const envdAbolished = "ЕНВД (envd) was abolished on 1 January 2021; shops that used it moved to the patent " +
	"system (patent) or the simplified one (usn_income, usn_income_outcome): state the one you are on"

// CheckVAT reports whether a receipt may carry rate v: whether the
// account has a taxType code for it. The error names the tax_type line
// that gives it one.
func (s *SmartCashier) CheckVAT(v VAT) error {
	if _, ok := s.taxTypes[v]; ok {
		return nil
	}
	return fmt.Errorf("no taxType code for %s in Smart Cashier's API v1.0.1: add `tax_type %s <code>` to the receipts smartcashier block, "+
		"with the code your Smart Cashier account takes for it", v, v)
}

// SendWindow is the longest a call can take, its retries and their waits
// included: a send of an operation may land at Smart Cashier until then.
func (s *SmartCashier) SendWindow() time.Duration {
	timeout := time.Duration(s.Timeout)
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	return time.Duration(s.retries+1)*timeout + time.Duration(s.retries)*smartCashierMaxBackoff
}

// DefaultVAT is the VAT rate of positions that have none, for showing a
// receipt as it was printed.
func (s *SmartCashier) DefaultVAT() VAT { return s.vat }

// Location is the time zone of the place of settlement, for showing a
// receipt's time as the law wants it.
func (s *SmartCashier) Location() *time.Location { return s.location }

// smartCashierTaxationNames lists the taxation systems' config names in
// code order, for error messages.
func smartCashierTaxationNames() []string {
	names := make([]string, 0, int(TaxationPatent))
	for t := TaxationOSN; t <= TaxationPatent; t++ {
		names = append(names, t.String())
	}
	return names
}

// Cleanup closes the client's idle connections.
func (s *SmartCashier) Cleanup() error {
	if s.api != nil {
		s.api.Close()
	}
	return nil
}

// UnmarshalCaddyfile sets up the account from Caddyfile tokens.
//
// Syntax:
//
//	smartcashier {
//		token      <jwt>
//		endpoint   <url>         # default https://api.smart-cashier.ru/v1.0
//		cashbox_id <guid>        # default till; required for cash operations that name none
//		taxation   osn|usn_income|usn_income_outcome|esn|patent
//		vat        <rate>        # vat0 vat5 vat7 vat10 vat22 vat105 vat107 vat110 vat122 none; default none
//		tax_type   <rate> <code> # the account's taxType code of a rate; repeatable
//		timezone   <zone>        # IANA time zone of the place of settlement; default Europe/Moscow
//		print      [true|false]  # paper receipts; bare print = true; default false
//		timeout    <duration>    # per attempt; default 10s
//		retries    <n>           # re-sends after a network or server error; default 3
//	}
func (s *SmartCashier) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	if err := parseNoInlineArgs(d); err != nil {
		return err
	}
	seen := make(map[string]bool)
	for d.NextBlock(0) {
		name := d.Val()
		if seen[name] && name != "tax_type" {
			return d.Errf("%s given twice", name)
		}
		seen[name] = true
		var err error
		switch name {
		case "tax_type":
			err = s.parseTaxType(d)
		case "timezone":
			err = parseOneArg(d, &s.Timezone)
		case "token":
			err = parseOneArg(d, &s.Token)
		case "endpoint":
			err = parseOneArg(d, &s.Endpoint)
		case "cashbox_id":
			err = parseOneArg(d, &s.CashboxID)
		case "taxation":
			var raw string
			if err = parseOneArg(d, &raw); err == nil {
				if s.Taxation, err = ParseTaxationSystem(raw); err != nil {
					err = d.Errf("taxation: %v", err)
				}
			}
		case "vat":
			var raw string
			if err = parseOneArg(d, &raw); err == nil {
				if s.VAT, err = ParseVAT(raw); err != nil {
					err = d.Errf("vat: %v", err)
				}
			}
		case "print":
			err = parseSmartCashierPrint(d, &s.Print)
		case "timeout":
			err = parseDuration(d, &s.Timeout)
		case "retries":
			var raw string
			if err = parseOneArg(d, &raw); err == nil {
				n, convErr := strconv.Atoi(raw)
				switch {
				case convErr != nil:
					err = d.Errf("retries: %q is not a whole number", raw)
				case n < 0 || n > smartCashierMaxRetries:
					err = d.Errf("retries must be from 0 to %d", smartCashierMaxRetries)
				default:
					s.Retries = &n
				}
			}
		default:
			err = d.Errf("unrecognized subdirective %q", name)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// parseTaxType reads tax_type <rate> <code>.
func (s *SmartCashier) parseTaxType(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.ArgErr()
	}
	v, err := ParseVAT(args[0])
	if err != nil {
		return d.Errf("tax_type: %v", err)
	}
	code, err := strconv.Atoi(args[1])
	if err != nil || code < 1 || code > maxTaxTypeCode {
		return d.Errf("tax_type %s: the code must be a whole number from 1 to %d", args[0], maxTaxTypeCode)
	}
	if s.TaxTypes == nil {
		s.TaxTypes = make(map[string]int)
	}
	if _, dup := s.TaxTypes[v.String()]; dup {
		return d.Errf("tax_type %s given twice", v)
	}
	s.TaxTypes[v.String()] = code
	return nil
}

// parseSmartCashierPrint reads print's optional argument: bare print means
// true.
func parseSmartCashierPrint(d *caddyfile.Dispenser, dst *bool) error {
	if !d.NextArg() {
		*dst = true
		return nil
	}
	switch strings.ToLower(d.Val()) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return d.Errf("print: %q is not true or false", d.Val())
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	return nil
}

// FormReceipt queues a fiscal receipt (POST /operations/formReceipt). The
// receipt's zero fields take the account's defaults: type sale, the
// configured taxation system, VAT rate, print setting and cashbox. A receipt
// that fails Receipt.Validate, or names a malformed GUID, is refused with
// its *ValidationError and nothing is sent.
func (s *SmartCashier) FormReceipt(ctx context.Context, r Receipt) error {
	r = s.withDefaults(r)
	if err := r.Validate(); err != nil {
		return err
	}
	if r.Taxation == TaxationENVD {
		return invalid("taxation", "%s", envdAbolished)
	}
	for i, p := range r.Positions {
		if err := s.CheckVAT(p.VAT); err != nil {
			return invalid(fmt.Sprintf("items[%d].vat", i), "%v", err)
		}
	}
	for _, id := range []struct{ field, value string }{
		{"juridical_person_id", r.JuridicalPersonID},
		{"cashbox_group_id", r.CashboxGroupID},
		{"cashbox_id", r.CashboxID},
	} {
		if id.value != "" {
			if err := validateSmartCashierGUID(id.field, id.value); err != nil {
				return err
			}
		}
	}
	body, err := json.Marshal(newSmartCashierReceipt(r, s.taxTypes))
	if err != nil {
		return fmt.Errorf("smartcashier formReceipt: encoding the receipt: %w", err)
	}
	_, err = s.post(ctx, "formReceipt", body)
	return err
}

// withDefaults returns the receipt with the account's defaults in its zero
// fields. The caller's positions are copied, never changed.
func (s *SmartCashier) withDefaults(r Receipt) Receipt {
	if r.Type == 0 {
		r.Type = ReceiptSale
	}
	if r.Taxation == 0 {
		r.Taxation = s.Taxation
	}
	if r.Print == nil {
		p := s.Print
		r.Print = &p
	}
	if r.CashboxID == "" {
		r.CashboxID = s.cashboxID
	}
	positions := make([]Position, len(r.Positions))
	copy(positions, r.Positions)
	for i := range positions {
		if positions[i].VAT == 0 {
			positions[i].VAT = s.vat
		}
	}
	r.Positions = positions
	return r
}

// DepositCash records cash put into a till (POST /operations/depositCash).
func (s *SmartCashier) DepositCash(ctx context.Context, op CashOperation) error {
	return s.cashOperation(ctx, "depositCash", op)
}

// WithdrawCash records cash taken out of a till (POST
// /operations/withdrawCash).
func (s *SmartCashier) WithdrawCash(ctx context.Context, op CashOperation) error {
	return s.cashOperation(ctx, "withdrawCash", op)
}

// cashOperation checks and sends a deposit or withdrawal: a till (the
// operation's or the configured one), an amount above zero with at most two
// decimals, and an operation id.
func (s *SmartCashier) cashOperation(ctx context.Context, op string, cash CashOperation) error {
	if err := validateOperationID(cash.OperationID); err != nil {
		return err
	}
	cashbox := cash.CashboxID
	if cashbox == "" {
		cashbox = s.cashboxID
	}
	if cashbox == "" {
		return invalid("cashbox_id", "a cash operation needs a cashbox: name one or configure cashbox_id")
	}
	if err := validateSmartCashierGUID("cashbox_id", cashbox); err != nil {
		return err
	}
	if err := validateMoney("amount", cash.Amount, false); err != nil {
		return err
	}
	body, err := json.Marshal(smartCashierCash{
		CashboxID:   cashbox,
		Amount:      smartCashierMoney(cash.Amount),
		OperationID: cash.OperationID,
	})
	if err != nil {
		return fmt.Errorf("smartcashier %s: encoding the operation: %w", op, err)
	}
	_, err = s.post(ctx, op, body)
	return err
}

// ReceiptStatus reports the state of an operation (GET
// /operations/checkStatus). An operation the service does not know is
// ErrNotFound.
func (s *SmartCashier) ReceiptStatus(ctx context.Context, operationID string) (Operation, error) {
	if err := validateOperationID(operationID); err != nil {
		return Operation{}, err
	}
	const op = "checkStatus"
	u := s.api.URL("operations/"+op, url.Values{"operationId": {operationID}})
	status, reply, err := s.send(ctx, op, http.MethodGet, u, nil)
	if err != nil {
		return Operation{}, err
	}
	o, err := parseSmartCashierStatus(reply)
	if err != nil {
		return Operation{}, s.api.Malformed(op, status, reply, "%v", err)
	}
	o.ID = operationID
	// The till's reason for a failed operation reaches the operator and
	// the buyer's receipt page: made fit like any text of a reply.
	o.Error = s.api.Clean(o.Error)
	return o, nil
}

// post sends an operation's JSON body. Any 2xx reply that is empty or JSON
// is success: the service documents no reply body.
func (s *SmartCashier) post(ctx context.Context, op string, body []byte) ([]byte, error) {
	status, reply, err := s.send(ctx, op, http.MethodPost, s.api.URL("operations/"+op, nil), body)
	if err != nil {
		return nil, err
	}
	if trimmed := bytes.TrimSpace(reply); len(trimmed) > 0 && !json.Valid(trimmed) {
		return nil, s.api.Malformed(op, status, reply, "reply is not JSON")
	}
	return reply, nil
}

// send makes a call and returns a 2xx reply. A failure that is
// ErrUnavailable (network error, timeout, HTTP 5xx) is retried with the same
// body, up to s.retries times, waiting with exponential backoff and jitter;
// anything else, or the caller's context ending, stops at once. The error is
// the last attempt's *ProviderError.
func (s *SmartCashier) send(ctx context.Context, op, method string, u *url.URL, body []byte) (int, []byte, error) {
	header := http.Header{
		"Authorization": {"Bearer " + s.token},
		"Accept":        {"application/json"},
	}
	if body != nil {
		header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for attempt := 0; ; attempt++ {
		start := time.Now()
		status, reply, err := s.api.Call(ctx, op, method, u, header, body)
		if err == nil && (status < 200 || status > 299) {
			err = s.replyError(op, status, reply)
		}
		s.api.Observe(op, start, &err)
		if err == nil {
			return status, reply, nil
		}
		var failure *ProviderError
		if !errors.As(err, &failure) || !errors.Is(failure, ErrUnavailable) || attempt >= s.retries {
			return status, nil, err
		}
		if ctx.Err() != nil {
			return status, nil, smartCashierWithCause(failure, ctx.Err())
		}
		delay := smartCashierDelay(s.backoff, attempt)
		if s.logger != nil {
			s.logger.Warn("retrying Smart Cashier call",
				zap.String("op", op), zap.Int("attempt", attempt+1),
				zap.Duration("delay", delay), zap.Error(failure))
		}
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return status, nil, smartCashierWithCause(failure, ctx.Err())
		case <-timer.C:
		}
	}
}

// smartCashierWithCause is a copy of failure that also says why retrying
// stopped, so that errors.Is finds context.Canceled or DeadlineExceeded.
func smartCashierWithCause(failure *ProviderError, cause error) *ProviderError {
	e := *failure
	if !errors.Is(failure, cause) {
		e.Err = errors.Join(failure.Err, cause)
	}
	return &e
}

// smartCashierDelay is the wait before retry number attempt+1: base doubled
// per attempt, capped at smartCashierMaxBackoff, with the upper half
// randomised so that many clients do not retry in step.
func smartCashierDelay(base time.Duration, attempt int) time.Duration {
	if base <= 0 {
		return 0
	}
	delay := base
	for i := 0; i < attempt && delay < smartCashierMaxBackoff; i++ {
		delay *= 2
	}
	delay = min(delay, smartCashierMaxBackoff)
	half := delay / 2
	return half + rand.N(delay-half+1)
}

// replyError maps a non-2xx reply to its ProviderError: 400 and other
// refusals are ErrRejected, 401 and 403 ErrAuth, 404 ErrNotFound, 408, 409,
// 425, 429 and 5xx ErrUnavailable. Code, path and message come from the
// reply (see readReplyError), with secrets removed.
func (s *SmartCashier) replyError(op string, status int, reply []byte) *ProviderError {
	kind := replyStatusKind(status)
	fault := readReplyError(reply)
	if fault.Message == "" {
		fault.Message = plainReplyText(reply)
	}
	switch status {
	case http.StatusUnauthorized:
		fault.Code = "unauthorized"
	case http.StatusForbidden:
		fault.Code = "forbidden"
	case http.StatusNotFound:
		fault.Code = "not_found"
	}
	e := s.api.Failure(op, kind, status, reply, nil)
	e.Code = s.api.Clean(fault.Code)
	e.Path = s.api.Clean(fault.Path)
	e.Message = s.api.Clean(fault.Message)
	return e
}

// parseSmartCashierStatus reads a checkStatus reply: status 1, 2 or 3, the
// times (RFC 3339 with any fraction, or with no offset meaning UTC; null
// allowed), the handling cashbox, the fiscal data (null allowed) and the
// error message. The operation's ID is left for the caller.
func parseSmartCashierStatus(body []byte) (Operation, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return Operation{}, errors.New("reply is not a JSON object")
	}
	var r struct {
		Status       *int              `json:"status"`
		Created      smartCashierTime  `json:"creationDateTimeUtc"`
		Cashbox      flexString        `json:"handlerCashboxId"`
		Processed    smartCashierTime  `json:"processingDateTimeUtc"`
		Fiscal       *smartCashierFisc `json:"fiscalParams"`
		ErrorMessage flexString        `json:"errorMessage"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return Operation{}, err
	}
	if r.Status == nil {
		return Operation{}, errors.New(`no "status"`)
	}
	status := OperationStatus(*r.Status)
	if status < OperationQueued || status > OperationFailed {
		return Operation{}, fmt.Errorf(`unknown "status" %d`, *r.Status)
	}
	o := Operation{
		Status:    status,
		Created:   time.Time(r.Created),
		Processed: time.Time(r.Processed),
		CashboxID: string(r.Cashbox),
		Error:     string(r.ErrorMessage),
	}
	if r.Fiscal != nil {
		fp, err := r.Fiscal.params()
		if err != nil {
			return Operation{}, fmt.Errorf(`"fiscalParams": %v`, err)
		}
		o.Fiscal = &fp
	}
	return o, nil
}

// smartCashierFisc is checkStatus's fiscalParams as sent: numbers may come
// as strings and strings as numbers.
type smartCashierFisc struct {
	DocumentNumber     flexString       `json:"fiscalDocumentNumber"`
	DocumentSign       flexString       `json:"fiscalDocumentSign"`
	DocumentTime       smartCashierTime `json:"fiscalDocumentDateTimeUtc"`
	ReceiptNumber      flexString       `json:"fiscalReceiptNumber"`
	ShiftNumber        flexString       `json:"shiftNumber"`
	FNNumber           flexString       `json:"fnNumber"`
	RegistrationNumber flexString       `json:"registrationNumber"`
	FNSURL             flexString       `json:"fnsUrl"`
	NotPrinted         *bool            `json:"notPrinted"`
}

// params converts the wire form, refusing numbers that are not whole.
func (w smartCashierFisc) params() (FiscalParams, error) {
	fp := FiscalParams{
		DocumentSign:       string(w.DocumentSign),
		DocumentTime:       time.Time(w.DocumentTime),
		FNNumber:           string(w.FNNumber),
		RegistrationNumber: string(w.RegistrationNumber),
		FNSURL:             string(w.FNSURL),
		NotPrinted:         w.NotPrinted != nil && *w.NotPrinted,
	}
	for _, n := range []struct {
		name string
		raw  flexString
		dst  *int64
	}{
		{"fiscalDocumentNumber", w.DocumentNumber, &fp.DocumentNumber},
		{"fiscalReceiptNumber", w.ReceiptNumber, &fp.ReceiptNumber},
		{"shiftNumber", w.ShiftNumber, &fp.ShiftNumber},
	} {
		if n.raw == "" {
			continue
		}
		v, err := strconv.ParseInt(string(n.raw), 10, 64)
		if err != nil || v < 0 {
			return fp, fmt.Errorf("%q is not a whole number: %.20q", n.name, string(n.raw))
		}
		*n.dst = v
	}
	return fp, nil
}

// smartCashierTime is a time as Smart Cashier sends it: RFC 3339 with any
// number of fractional digits, or without an offset, meaning UTC; null or
// "" is the zero time.
type smartCashierTime time.Time

// UnmarshalJSON reads the time tolerantly; the result is in UTC.
func (t *smartCashierTime) UnmarshalJSON(data []byte) error {
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		*t = smartCashierTime{}
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("time: want a string, got %.30s", data)
	}
	parsed, err := parseSmartCashierTime(s)
	if err != nil {
		return err
	}
	*t = smartCashierTime(parsed)
	return nil
}

// parseSmartCashierTime reads an RFC 3339 time, or one without an offset as
// UTC; "" is the zero time.
func parseSmartCashierTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.ParseInLocation("2006-01-02T15:04:05.999999999", s, time.UTC); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("time %.40q is not RFC 3339", s)
}

// smartCashierMoney is an amount sent as a JSON number with at most two
// decimals (270, 99.5), as the API wants, instead of decimal.Decimal's
// quoted string.
type smartCashierMoney decimal.Decimal

// MarshalJSON writes the amount as a JSON number, never through a float.
func (m smartCashierMoney) MarshalJSON() ([]byte, error) {
	return []byte(decimal.Decimal(m).Round(2).String()), nil
}

// smartCashierReceipt is formReceipt's body, fields in the vendor's order.
type smartCashierReceipt struct {
	OperationID        string                 `json:"operationId"`
	ReceiptType        int                    `json:"receiptType"`
	PrintReceipt       bool                   `json:"printReceipt"`
	TaxationSystem     int                    `json:"taxationSystem"`
	BuyerEmail         string                 `json:"buyerEmail,omitempty"`
	BuyerPhoneNumber   string                 `json:"buyerPhoneNumber,omitempty"`
	Positions          []smartCashierPosition `json:"positions"`
	CashPaymentSum     smartCashierMoney      `json:"cashPaymentSum"`
	CashlessPaymentSum smartCashierMoney      `json:"cashlessPaymentSum"`
	TotalSum           smartCashierMoney      `json:"totalSum"`
	JuridicalPersonID  string                 `json:"juridicalPersonId,omitempty"`
	CashboxGroupID     string                 `json:"cashboxGroupId,omitempty"`
	CashboxID          string                 `json:"cashboxId,omitempty"`
}

// smartCashierPosition is one position of formReceipt's body.
type smartCashierPosition struct {
	Name     string            `json:"name"`
	Quantity int64             `json:"quantity"`
	Price    smartCashierMoney `json:"price"`
	TaxType  int               `json:"taxType"`
}

// smartCashierCash is depositCash's and withdrawCash's body.
type smartCashierCash struct {
	CashboxID   string            `json:"cashboxId"`
	Amount      smartCashierMoney `json:"amount"`
	OperationID string            `json:"operationId"`
}

// newSmartCashierReceipt builds formReceipt's body from a receipt with its
// defaults applied, each rate as its code in taxTypes.
func newSmartCashierReceipt(r Receipt, taxTypes map[VAT]int) smartCashierReceipt {
	w := smartCashierReceipt{
		OperationID:        r.OperationID,
		ReceiptType:        int(r.Type),
		PrintReceipt:       r.Print != nil && *r.Print,
		TaxationSystem:     int(r.Taxation),
		BuyerEmail:         r.Email,
		BuyerPhoneNumber:   r.Phone,
		Positions:          make([]smartCashierPosition, len(r.Positions)),
		CashPaymentSum:     smartCashierMoney(r.Cash),
		CashlessPaymentSum: smartCashierMoney(r.Cashless),
		TotalSum:           smartCashierMoney(r.Total()),
		JuridicalPersonID:  r.JuridicalPersonID,
		CashboxGroupID:     r.CashboxGroupID,
		CashboxID:          r.CashboxID,
	}
	for i, p := range r.Positions {
		w.Positions[i] = smartCashierPosition{
			Name:     p.Name,
			Quantity: p.Quantity,
			Price:    smartCashierMoney(p.Price),
			TaxType:  taxTypes[p.VAT],
		}
	}
	return w
}

// validateSmartCashierGUID accepts a GUID in its canonical form,
// 8-4-4-4-12 hexadecimal digits. The error names the field, never quotes
// the value: it may be anything a caller sent.
func validateSmartCashierGUID(field, value string) error {
	if len(value) != 36 {
		return invalid(field, "not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return invalid(field, "not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return invalid(field, "not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
			}
		}
	}
	return nil
}

// APIEndpoint reports where the SmartCashier calls go (EndpointReporter).
func (s *SmartCashier) APIEndpoint() (host string, sandbox bool) { return s.api.APIEndpoint() }

// Interface guards
var (
	_ EndpointReporter      = (*SmartCashier)(nil)
	_ caddy.Provisioner     = (*SmartCashier)(nil)
	_ caddy.Validator       = (*SmartCashier)(nil)
	_ caddy.CleanerUpper    = (*SmartCashier)(nil)
	_ caddyfile.Unmarshaler = (*SmartCashier)(nil)
	_ ReceiptProvider       = (*SmartCashier)(nil)
	_ VATChecker            = (*SmartCashier)(nil)
	_ DefaultVATReporter    = (*SmartCashier)(nil)
	_ LocationReporter      = (*SmartCashier)(nil)
	_ SendWindowReporter    = (*SmartCashier)(nil)
)
