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

// paymentStatus asks an order's provider whether it was paid, through the
// gate that coalesces polls.
func (a *App) paymentStatus(ctx context.Context, acc *account, o *Order) (PaymentStatus, error) {
	ref := PaymentRef{ID: o.Payment.ID, OrderID: o.ID}
	return a.statuses.check(ctx, o.ID, func(ctx context.Context) (PaymentStatus, error) {
		return acc.PaymentStatus(ctx, ref)
	})
}
