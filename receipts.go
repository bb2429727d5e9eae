package kassa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"
)

// receiptOperationID is the operation id of an order's receipt of a type.
// Derived from the order id, it makes the receipt service print one receipt
// per order and type, however often, from however many instances, it is
// sent.
func receiptOperationID(orderID string, t ReceiptType) string {
	return "kassa-" + orderID + "-" + t.String()
}

// fiscalReceipt is the receipt of an order: its items (or one position
// named by its description), paid cashless, to the buyer's contacts.
// Taxation and unset VAT rates take the receipt service's configuration.
func fiscalReceipt(o *Order, rec *OrderReceipt) Receipt {
	r := Receipt{OperationID: rec.OperationID, Type: rec.Type, Email: o.Email, Phone: o.Phone, Cashless: o.Amount}
	for _, it := range o.Items {
		r.Positions = append(r.Positions, Position{Name: it.Name, Quantity: it.Qty, Price: it.Price, VAT: it.VAT})
	}
	if len(r.Positions) == 0 {
		name := o.Description
		if name == "" {
			name = "Оплата заказа " + o.ID
		}
		r.Positions = []Position{{Name: name, Quantity: 1, Price: o.Amount}}
	}
	return r
}

// newReceipt attaches an order's receipt of a type, as sending: the
// order's next save stores it, and the reconciler sends it from then on.
// Without a receipt service it attaches nothing and returns nil.
func (r *reconciler) newReceipt(o *Order, t ReceiptType) *OrderReceipt {
	if r.app.receipts == nil {
		return nil
	}
	rec := &OrderReceipt{OperationID: receiptOperationID(o.ID, t), Type: t, State: ReceiptSending}
	if t == ReceiptSaleReturn {
		o.Refund = rec
	} else {
		o.Receipt = rec
	}
	return rec
}

// errReceiptNotStored: a receipt could not be stored as sending, so it was
// not sent.
var errReceiptNotStored = fmt.Errorf("kassa: the receipt could not be stored, so it was not sent: %w", ErrStorage)

// queueReceipt starts an order's receipt of a type: it is written as
// sending first, then sent; it returns the send's error, as advanceReceipt
// does, or errReceiptNotStored. Without a receipt service it does nothing.
func (r *reconciler) queueReceipt(ctx context.Context, o *Order, t ReceiptType) error {
	rec := r.newReceipt(o, t)
	switch {
	case rec == nil:
		return nil
	case !r.save(ctx, o):
		return errReceiptNotStored
	}
	return r.advanceReceipt(ctx, o, rec)
}

// advanceReceipts moves an order's receipts on.
func (r *reconciler) advanceReceipts(ctx context.Context, o *Order) {
	for _, rec := range []*OrderReceipt{o.Receipt, o.Refund} {
		if rec.underway() {
			r.advanceReceipt(ctx, o, rec)
		}
	}
}

// advanceReceipt sends a receipt that is sending, and asks about one that
// is queued, storing what it learns. A send whose outcome is unknown (the
// network failed, or the reply was not the service's format: it may have
// taken the receipt) leaves it sending, to be sent again under its
// operation id next pass; a receipt the service refuses or fails stays
// failed until an operator retries it. It returns the send's error, for
// the operator who asked for it.
func (r *reconciler) advanceReceipt(ctx context.Context, o *Order, rec *OrderReceipt) error {
	a := r.app
	if a.receipts == nil {
		a.logger.Warn("reconciler: an order's receipt is under way but no receipt service is configured",
			zap.String("order_id", o.ID), zap.String("operation_id", rec.OperationID))
		return nil
	}
	if rec.State == ReceiptSending {
		rec.Attempts++
		rec.SentAt = a.now()
		start := time.Now()
		err := a.receipts.FormReceipt(ctx, fiscalReceipt(o, rec))
		switch {
		case err == nil:
			failpoint("receipt-sent")
			rec.State = ReceiptQueued
		case errors.Is(err, ErrUnavailable), errors.Is(err, ErrMalformedReply):
			r.save(ctx, o)
			countReceipt(rec.Type, receiptUnavailable)
			a.logger.Warn("receipt send's outcome unknown; will send again", zap.String("order_id", o.ID),
				zap.String("operation_id", rec.OperationID), zap.Int("attempts", rec.Attempts), zap.Error(err))
			return err
		default:
			rec.State, rec.Error = ReceiptFailed, err.Error()
		}
		if r.save(ctx, o) {
			countReceipt(rec.Type, string(rec.State))
			a.logger.Info("receipt "+string(rec.State), zap.String("order_id", o.ID), zap.String("operation_id", rec.OperationID),
				zap.String("type", rec.Type.String()), zap.Duration("duration", time.Since(start)), zap.String("error", rec.Error))
		}
		if rec.State != ReceiptQueued {
			return err
		}
		failpoint("receipt-queued")
	}
	op, err := a.receipts.ReceiptStatus(ctx, rec.OperationID)
	switch {
	case errors.Is(err, ErrNotFound):
		// Accepted, then lost: sending it again under its operation id is safe.
		rec.State = ReceiptSending
		r.save(ctx, o)
		return nil
	case err != nil:
		a.logger.Warn("receipt status", zap.String("order_id", o.ID), zap.String("operation_id", rec.OperationID), zap.Error(err))
		return nil
	}
	switch op.Status {
	case OperationProcessed:
		rec.State, rec.Fiscal, rec.Error, rec.DoneAt = ReceiptDone, op.Fiscal, "", a.now()
	case OperationFailed:
		rec.State, rec.Error = ReceiptFailed, op.Error
	default:
		return nil
	}
	if r.save(ctx, o) {
		countReceipt(rec.Type, string(rec.State))
		a.logger.Info("receipt "+string(rec.State), zap.String("order_id", o.ID), zap.String("operation_id", rec.OperationID),
			zap.String("type", rec.Type.String()), zap.String("error", rec.Error))
	}
	return nil
}

// reissueReceipt issues an order's receipt of a type, or sends a failed one
// again under its operation id: the operator's retry, and the return
// receipt of a refund. It runs under the reconciler's lock and returns the
// order as it then stands.
func (a *App) reissueReceipt(ctx context.Context, id string, t ReceiptType) (*Order, error) {
	if a.receipts == nil {
		return nil, &RequestError{Status: http.StatusConflict, Code: "no_receipt_service", Message: "no receipt service is configured"}
	}
	var o *Order
	var err error
	a.reconciler.locked(ctx, func(ctx context.Context) {
		if o, err = a.orders.Load(ctx, id); err != nil {
			return
		}
		if o.State != OrderPaid {
			err = &RequestError{Status: http.StatusConflict, Code: "not_paid", Message: "the order is " + string(o.State) + ", not paid"}
			return
		}
		rec := o.Receipt
		if t == ReceiptSaleReturn {
			if o.Receipt == nil || o.Receipt.State != ReceiptDone {
				err = &RequestError{Status: http.StatusConflict, Code: "no_sale_receipt", Message: "a refund needs the order's sale receipt done first"}
				return
			}
			rec = o.Refund
		}
		switch {
		case rec == nil:
			err = a.reconciler.queueReceipt(ctx, o, t)
		case rec.State == ReceiptFailed:
			rec.State, rec.Error = ReceiptSending, ""
			if !a.reconciler.save(ctx, o) {
				err = errReceiptNotStored
				return
			}
			err = a.reconciler.advanceReceipt(ctx, o, rec)
		case rec.underway():
			err = a.reconciler.advanceReceipt(ctx, o, rec)
		default:
			err = &RequestError{Status: http.StatusConflict, Code: "receipt_done", Message: "the receipt is already done"}
		}
	})
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	return o, err
}
