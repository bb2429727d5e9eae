package kassa

import (
	"context"
	"time"
)

// paymentRequest is the provider request for an order; the same for the
// first try and for a recovery.
func (a *App) paymentRequest(o *Order) PaymentRequest {
	return PaymentRequest{OrderID: o.ID, Amount: o.Amount, ReturnURL: o.ReturnURL, TTL: time.Duration(a.OrderTTL)}
}

// paymentStatus asks an order's provider whether it was paid, for a
// buyer's poll, through the gate that coalesces polls. The call takes a
// token of the account's rate limit if one is there, and never waits for
// one: the reconciler yields to buyers.
func (a *App) paymentStatus(ctx context.Context, acc *account, o *Order) (PaymentStatus, error) {
	ref := PaymentRef{ID: o.Payment.ID, OrderID: o.ID}
	return a.statuses.check(ctx, o.ID, func(ctx context.Context) (PaymentStatus, error) {
		acc.spend()
		return acc.PaymentStatus(ctx, ref)
	})
}
