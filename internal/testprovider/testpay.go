// Package testprovider holds a payment provider and a receipt provider
// written as a provider in another Go module would be: against the
// exported API of package kassa only (its provider interfaces, its
// optional extension interfaces and ProviderClient), registered as Caddy
// modules, with no code in package kassa that knows their names. Its test
// runs a shop on them in Caddy, end to end.
//
// They are test fixtures: their services (Book, Till) live in memory in the
// test process.
package testprovider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/shopspring/decimal"

	"github.com/caddy-kassa/kassa"
)

func init() {
	caddy.RegisterModule(TestPay{})
	caddy.RegisterModule(TestTill{})
}

// timeoutAsks counts how often the app asked a testpay account for its
// call timeout (CallTimeoutReporter).
var timeoutAsks atomic.Int64

// TimeoutAsks reports how often the app has asked a testpay account for
// its call timeout, so that a test can tell the app used it.
func TimeoutAsks() int64 { return timeoutAsks.Load() }

// TestPay is a payment account at a Book: kassa.payments.testpay.
type TestPay struct {
	// Endpoint is the Book's URL.
	Endpoint string `json:"endpoint"`
	// Token is the Book's bearer token.
	Token string `json:"token"`
	// Timeout bounds each call; default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
	// MaxAmount, when positive, is the largest amount the account takes.
	MaxAmount decimal.Decimal `json:"max_amount"`

	api *kassa.ProviderClient
}

// CaddyModule returns the Caddy module information.
func (TestPay) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "kassa.payments.testpay",
		New: func() caddy.Module { return new(TestPay) },
	}
}

// Provision makes the account's HTTP client. Creating an invoice is sent
// at most once: a lost reply is not answered by a second invoice.
func (p *TestPay) Provision(caddy.Context) error {
	api, err := kassa.NewProviderClient("testpay", p.Endpoint, time.Duration(p.Timeout), p.Token)
	if err != nil {
		return fmt.Errorf("testpay: %v", err)
	}
	p.api = api.SendOnce("create")
	return nil
}

// Cleanup closes the client's connections.
func (p *TestPay) Cleanup() error {
	if p.api != nil {
		p.api.Close()
	}
	return nil
}

// header authenticates a call.
func (p *TestPay) header() http.Header {
	return http.Header{"Authorization": {"Bearer " + p.Token}}
}

// CreatePayment creates an invoice in the Book. The Book refuses a
// repeated order id with 409 and the code order_exists, which is
// ErrDuplicate; a 409 without that evidence stays what PostJSON made of it
// (ErrUnavailable: the outcome is unknown), never a duplicate.
func (p *TestPay) CreatePayment(ctx context.Context, req kassa.PaymentRequest) (kassa.Payment, error) {
	in := map[string]any{"order_id": req.OrderID, "amount": req.Amount}
	var out struct{ ID, URL string }
	if err := p.api.PostJSON(ctx, "create", "invoices", p.header(), in, &out); err != nil {
		var pe *kassa.ProviderError
		if errors.As(err, &pe) && pe.Status == http.StatusConflict && pe.Code == "order_exists" {
			pe.Kind = kassa.ErrDuplicate
		}
		return kassa.Payment{}, err
	}
	if out.ID == "" {
		return kassa.Payment{}, p.api.Malformed("create", http.StatusCreated, nil, "no invoice id")
	}
	return kassa.Payment{ID: out.ID, URL: out.URL}, nil
}

// PaymentStatus asks the Book whether the invoice is paid, by its id or,
// for one whose creation reply was lost, by the shop's order id.
func (p *TestPay) PaymentStatus(ctx context.Context, ref kassa.PaymentRef) (kassa.PaymentStatus, error) {
	path, q := "invoices/"+url.PathEscape(ref.ID), url.Values(nil)
	if ref.ID == "" {
		path, q = "invoices", url.Values{"order_id": {ref.OrderID}}
	}
	var inv Invoice
	if err := p.api.GetJSON(ctx, "status", path, q, p.header(), &inv); err != nil {
		return kassa.PaymentStatus{}, err
	}
	return kassa.PaymentStatus{Paid: inv.Paid, Amount: decimal.NewNullDecimal(inv.Amount)}, nil
}

// CancelPayment is not supported: an unpaid invoice simply expires.
func (p *TestPay) CancelPayment(context.Context, kassa.PaymentRef) error {
	return p.notSupported("cancel")
}

// Balance is not supported.
func (p *TestPay) Balance(context.Context) (kassa.Balance, error) {
	return kassa.Balance{}, p.notSupported("balance")
}

// Payout is not supported.
func (p *TestPay) Payout(context.Context, kassa.PayoutRequest) (kassa.Payout, error) {
	return kassa.Payout{}, p.notSupported("payout")
}

func (p *TestPay) notSupported(op string) error {
	return &kassa.ProviderError{Provider: "testpay", Op: op, Kind: kassa.ErrNotSupported}
}

// CallTimeout is how long one call may take, for the reconciler's grace.
func (p *TestPay) CallTimeout() time.Duration {
	timeoutAsks.Add(1)
	return p.api.CallTimeout()
}

// RefusesRepeatedOrderID marks the Book as refusing a repeated order id,
// which makes re-sending a creation safe.
func (p *TestPay) RefusesRepeatedOrderID() {}

// CheckAmount refuses an amount above MaxAmount.
func (p *TestPay) CheckAmount(amount decimal.Decimal) error {
	if p.MaxAmount.IsPositive() && amount.GreaterThan(p.MaxAmount) {
		return &kassa.ValidationError{Field: "amount", Reason: "testpay takes at most " + p.MaxAmount.StringFixed(2)}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner         = (*TestPay)(nil)
	_ caddy.CleanerUpper        = (*TestPay)(nil)
	_ kassa.PaymentProvider     = (*TestPay)(nil)
	_ kassa.CallTimeoutReporter = (*TestPay)(nil)
	_ kassa.AmountChecker       = (*TestPay)(nil)
	_ kassa.OrderIDIdempotent   = (*TestPay)(nil)
)
