package kassa

import (
	"context"
	"errors"
	"strings"
	"time"
)

// paymentRequest is the provider request for an order; the same for the
// first try and for a recovery. The invoice lives as long as the order.
func (a *App) paymentRequest(o *Order) PaymentRequest {
	return PaymentRequest{OrderID: o.ID, Amount: o.Amount, ReturnURL: o.ReturnURL, TTL: time.Duration(a.OrderTTL),
		Email: o.Email, Description: invoiceDescription(o)}
}

// maxInvoiceDescription bounds, in runes, what an invoice says it is for.
const maxInvoiceDescription = 250

// invoiceDescription names what an order's invoice is for: the order's
// description, or else its items' names, cut to maxInvoiceDescription
// runes.
func invoiceDescription(o *Order) string {
	text := o.Description
	if text == "" {
		names := make([]string, len(o.Items))
		for i, it := range o.Items {
			names[i] = it.Name
		}
		text = strings.Join(names, ", ")
	}
	if runes := []rune(text); len(runes) > maxInvoiceDescription {
		text = string(runes[:maxInvoiceDescription-1]) + "…"
	}
	return text
}

// paymentStatus asks an order's provider whether it was paid, for a
// buyer's poll, through the gate that coalesces polls. The call takes a
// token of the buyers' budget and of the account's rate limit, and never
// waits for one: when the buyers' budget is spent it is errBuyerBudget, and
// the poll answers from the stored order.
func (a *App) paymentStatus(ctx context.Context, acc *account, o *Order) (PaymentStatus, error) {
	ref := PaymentRef{ID: o.Payment.ID, OrderID: o.ID}
	return a.statuses.check(ctx, o.ID, func(ctx context.Context) (PaymentStatus, error) {
		if !acc.buyerCall() {
			return PaymentStatus{}, errBuyerBudget
		}
		return acc.PaymentStatus(ctx, ref)
	})
}

// errBuyerBudget is a buyer's call not made: the account's budget for
// buyers' calls is spent for now.
var errBuyerBudget = errors.New("the account's budget for buyers' provider calls is spent")
