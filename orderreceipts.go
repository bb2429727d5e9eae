package kassa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"go.uber.org/zap"
)

// receiptOperationID is the operation id of an order's receipt of a type,
// at an attempt. Derived from the order id, it makes the receipt service
// print one receipt per attempt however often, from however many instances,
// it is sent. The first attempt is kassa-<order>-sale; an attempt after one
// the service reported not processed is kassa-<order>-sale-2, -3, ...: the
// service answers a repeated id with its first result, so a receipt the till
// failed is printed only under a new id.
func receiptOperationID(orderID string, t ReceiptType, attempt int) string {
	id := "kassa-" + orderID + "-" + t.String()
	if attempt > 1 {
		id += "-" + strconv.Itoa(attempt)
	}
	return id
}

// newReceiptAttempt is an order's receipt of a type at an attempt, to be
// sent.
func newReceiptAttempt(orderID string, t ReceiptType, attempt int) *OrderReceipt {
	return &OrderReceipt{OperationID: receiptOperationID(orderID, t, attempt), Type: t, State: ReceiptSending}
}

// attempt is the number of the receipt's current attempt.
func (r *OrderReceipt) attempt() int { return len(r.History) + 1 }

// receipt is the order's receipt of a type: the sale receipt, or the
// return receipt of a refund.
func (o *Order) receipt(t ReceiptType) *OrderReceipt {
	if t == ReceiptSaleReturn {
		return o.Refund
	}
	return o.Receipt
}

func (o *Order) setReceipt(rec *OrderReceipt) {
	if rec.Type == ReceiptSaleReturn {
		o.Refund = rec
	} else {
		o.Receipt = rec
	}
}

// fiscalReceipt is the receipt of an order: its items (or one position
// named by its description), paid cashless, to the buyer's contacts. A
// position without a rate carries the default the order was made under;
// taxation (and the rate of an order made before orders kept their
// default) takes the receipt service's configuration.
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
	for i := range r.Positions {
		if r.Positions[i].VAT == 0 {
			r.Positions[i].VAT = o.DefaultVAT
		}
	}
	return r
}

// advanceReceipt moves an order's receipt of a type on by one step: a
// receipt sending is sent, and one queued (also one just accepted) is
// asked about. It returns the order as it then stands, and the send's
// error, for the operator who asked for it.
func (a *App) advanceReceipt(ctx context.Context, o *Order, t ReceiptType) (*Order, error) {
	rec := o.receipt(t)
	if a.receipts == nil {
		a.logger.Warn("an order's receipt is under way but no receipt service is configured",
			zap.String("order_id", o.ID), zap.String("operation_id", rec.OperationID))
		return o, nil
	}
	if rec.State == ReceiptSending {
		sendErr := a.refusalChecked(ctx, rec, a.receipts.FormReceipt(ctx, fiscalReceipt(o, rec)))
		if sendErr == nil {
			failpoint("receipt-sent")
		}
		next, err := a.receiptSent(ctx, o.ID, t, rec.OperationID, sendErr)
		if err != nil {
			a.logger.Error("storing a receipt's send", zap.String("order_id", o.ID), zap.String("operation_id", rec.OperationID), zap.Error(err))
			return o, errReceiptNotStored
		}
		sent := rec.OperationID
		o, rec = next, next.receipt(t)
		if rec == nil || rec.OperationID != sent {
			return o, sendErr // another step moved the receipt on meanwhile
		}
		if sendErr != nil {
			if rec.State == ReceiptSending {
				a.logger.Warn("receipt send's outcome unknown; will send again", zap.String("order_id", o.ID),
					zap.String("operation_id", rec.OperationID), zap.Int("attempts", rec.Attempts), zap.Error(sendErr))
			}
			return o, sendErr
		}
		failpoint("receipt-queued")
	}
	if rec.State != ReceiptQueued {
		return o, nil
	}
	op, checkErr := a.receipts.ReceiptStatus(ctx, rec.OperationID)
	if checkErr != nil && !errors.Is(checkErr, ErrNotFound) {
		a.logger.Warn("receipt status", zap.String("order_id", o.ID), zap.String("operation_id", rec.OperationID), zap.Error(checkErr))
		return o, nil
	}
	next, err := a.receiptChecked(ctx, o.ID, t, rec.OperationID, op, checkErr)
	if err != nil {
		a.logger.Error("storing a receipt's status", zap.String("order_id", o.ID), zap.String("operation_id", rec.OperationID), zap.Error(err))
		return o, nil
	}
	return next, nil
}

// refusalChecked is what a refused send of a receipt means: a refusal
// proves nothing was printed only if the receipt service does not know the
// operation, for an earlier send of the same id (its reply lost, or cut by
// a crash) may have been accepted before the refusal (a token that expired
// since, a configuration changed by a reload). A known operation is taken
// as accepted (its status is then followed), an unknown one as refused;
// when the service cannot say, the outcome stays unknown.
func (a *App) refusalChecked(ctx context.Context, rec *OrderReceipt, sendErr error) error {
	if sendErr == nil || errors.Is(sendErr, ErrUnavailable) || errors.Is(sendErr, ErrMalformedReply) {
		return sendErr
	}
	switch _, err := a.receipts.ReceiptStatus(ctx, rec.OperationID); {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return sendErr
	default:
		return fmt.Errorf("%w (the send was refused: %v; whether an earlier send was taken could not be checked: %v)", ErrUnavailable, sendErr, err)
	}
}

// afterRefusal decides what an attempt that failed by a refusal means
// before a new attempt is issued: another send of the same id (the
// reconciler's, another instance's) may have been taken after the refusal,
// or may still be on its way. One the service knows is followed again;
// one it does not know is failed for good only once the last send has had
// its longest time to land.
func (a *App) afterRefusal(ctx context.Context, o *Order, rec *OrderReceipt) (*Order, error) {
	_, err := a.receipts.ReceiptStatus(ctx, rec.OperationID)
	switch {
	case err == nil:
		return a.receiptRevived(ctx, o.ID, rec.Type, rec.OperationID)
	case !errors.Is(err, ErrNotFound):
		return o, err
	}
	if wait := rec.SentAt.Add(a.receiptSendWindow()).Sub(a.now()); wait > 0 {
		return o, &RequestError{Status: http.StatusConflict, Code: "receipt_in_progress",
			Message: fmt.Sprintf("receipt %s was refused, but another send of it may still be on its way: try again in %s", rec.OperationID, wait.Round(time.Second))}
	}
	return o, nil
}

// receiptSendWindow is the longest a send of a receipt can take, retries
// included (a minute when the receipt service does not say).
func (a *App) receiptSendWindow() time.Duration {
	if w, ok := a.receipts.(SendWindowReporter); ok {
		return w.SendWindow()
	}
	return time.Minute
}

// errReceiptNotStored: what a receipt's send brought could not be stored;
// the reconciler sends it again under its operation id.
var errReceiptNotStored = fmt.Errorf("kassa: the receipt's progress could not be stored: %w", ErrStorage)

// reissueReceipt issues an order's receipt of a type, or retries a failed
// one under a new operation id, and sends it at once: the operator's
// retry, and the return receipt of a refund (to the contacts to, when
// given: receiptStarted). It returns the order as it then stands.
func (a *App) reissueReceipt(ctx context.Context, id string, t ReceiptType, to *buyerContacts) (*Order, error) {
	if a.receipts == nil {
		return nil, &RequestError{Status: http.StatusConflict, Code: "no_receipt_service", Message: "no receipt service is configured"}
	}
	o, err := a.orders.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	if rec := o.receipt(t); rec != nil && rec.State == ReceiptFailed && rec.Refused {
		if o, err = a.afterRefusal(ctx, o, rec); err != nil || o.receipt(t).State != ReceiptFailed {
			if err == nil {
				o, err = a.advanceReceipt(ctx, o, t)
			}
			return o, err
		}
	}
	o, err = a.receiptStarted(ctx, id, t, to)
	if err != nil {
		return o, err
	}
	return a.advanceReceipt(ctx, o, t)
}
