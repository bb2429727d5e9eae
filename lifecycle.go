package kassa

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"
)

// The order lifecycle: the one place that changes an order's state. The
// checkout, the status poll, the reconciler and the admin API learn things
// (the provider made an invoice, the buyer paid, the time ran out, an
// operator cancelled) and hand them to the App's methods below; each reads
// the order as stored now, moves it along the table, stores it and
// announces the change. docs/ORDERS.md tells the whole story.

// orderEvent is what a change announces: to the log, the metrics, and
// the shop's notifications.
type orderEvent string

// The events.
const (
	eventPaid          orderEvent = "order.paid"
	eventPaidLate      orderEvent = "order.paid_late"
	eventExpired       orderEvent = "order.expired"
	eventCancelled     orderEvent = "order.cancelled"
	eventFailed        orderEvent = "order.failed"
	eventReceiptDone   orderEvent = "receipt.done"
	eventReceiptFailed orderEvent = "receipt.failed"
)

// raisedEvent is an event a change raised, with the receipt attempt it
// is about (nil for an order's move).
type raisedEvent struct {
	event   orderEvent
	receipt *OrderReceipt
}

// changeEvents lists the events a stored change from prev to o raised:
// the order's move (moves), then its receipts' moves to done or failed.
// The shop's notifications and Caddy's event bus both announce these.
func changeEvents(prev, o *Order) []raisedEvent {
	var raised []raisedEvent
	if prev.State != o.State {
		if e := moves[prev.State][o.State]; e != "" {
			raised = append(raised, raisedEvent{event: e})
		}
	}
	for _, pair := range [][2]*OrderReceipt{{prev.Receipt, o.Receipt}, {prev.Refund, o.Refund}} {
		before, after := pair[0], pair[1]
		if after == nil || (before != nil && before.State == after.State && before.OperationID == after.OperationID) {
			continue
		}
		switch after.State {
		case ReceiptDone:
			raised = append(raised, raisedEvent{eventReceiptDone, after})
		case ReceiptFailed:
			raised = append(raised, raisedEvent{eventReceiptFailed, after})
		}
	}
	return raised
}

// moves is the transition table: for each state, the states an order may
// move to and the event each move raises. Nothing else moves an order. Every
// move goes forward (creating → pending → paid, expired, cancelled or
// failed; closed unpaid → paid late), so a step that learned something
// long ago can never undo what a newer step did.
var moves = map[OrderState]map[OrderState]orderEvent{
	OrderCreating:  {OrderPending: "", OrderFailed: eventFailed},
	OrderPending:   {OrderPaid: eventPaid, OrderExpired: eventExpired, OrderCancelled: eventCancelled},
	OrderExpired:   {OrderPaid: eventPaidLate},
	OrderCancelled: {OrderPaid: eventPaidLate},
	OrderFailed:    {OrderPaid: eventPaidLate},
}

// moveTo moves o to state at now if the table allows it, and reports
// whether it did. A payment of an order that had closed unpaid is late.
func (o *Order) moveTo(state OrderState, now time.Time) bool {
	if _, ok := moves[o.State][state]; !ok {
		return false
	}
	from := o.State
	o.State = state
	switch {
	case state == OrderPaid:
		o.PaidAt = now
		if from == OrderPending {
			o.ClosedAt = now
		} else {
			o.PaidLate = true
		}
	case !state.Open():
		o.ClosedAt = now
	}
	return true
}

// closedUnpaid reports whether the order closed without a payment.
func (s OrderState) closedUnpaid() bool {
	return s == OrderExpired || s == OrderCancelled || s == OrderFailed
}

// processLocks serialise, within this process and across every config's
// app, what must not happen twice at once: the changes of one order, the
// checkouts of one idempotency key, the payouts of one key. Across
// instances sharing a storage, storage locks of the same names do it
// (withStorageLock), as far as the storage keeps its locks; docs/ORDERS.md
// says what rests on them.
type processLocks struct {
	orders, checkouts, payouts keyLocks
}

// sharedLocks are this process's locks.
var sharedLocks processLocks

// keyLocks serialises, within this instance, what shares a key: the
// checkouts of one idempotency key (so a double-clicked button makes one
// order), the changes of one order, the payouts of one key.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

// keyLock is one key's lock, and how many hold or wait for it.
type keyLock struct {
	sync.Mutex
	refs int
}

// lock takes key's lock, waiting for it, and returns its release.
func (k *keyLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyLock)
	}
	l := k.locks[key]
	if l == nil {
		l = new(keyLock)
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// withStorageLock runs fn holding the storage lock name, which keeps the
// instances sharing a storage from doing the same thing at once.
func (a *App) withStorageLock(ctx context.Context, name string, fn func() error) error {
	if err := lockStorage(ctx, a.storage, name); err != nil {
		return err
	}
	defer func() {
		if err := a.storage.Unlock(context.WithoutCancel(ctx), name); err != nil {
			a.logger.Error("releasing a storage lock", zap.String("lock", name), zap.Error(err))
		}
	}()
	return fn()
}

// update changes one order: under the order's locks (this process's, and
// the storage's, so that another instance does not change it at once) it
// reads the order as stored now, lets change modify it, and stores it if
// change reports that it changed, keeping the indexes in step; then it
// announces what changed. change works on the record as stored, never on a
// copy read before a provider call, and moves states only through moveTo.
// A change that reports nothing stores nothing; the order is returned
// either way.
func (a *App) update(ctx context.Context, id string, change func(o *Order) bool) (*Order, error) {
	return a.updateOrder(ctx, id, true, change)
}

// updateOrder is update, taking the order's storage lock when shared. Only
// the checkout storing the invoice of the order it is creating goes
// without it (see checkoutCreated).
func (a *App) updateOrder(ctx context.Context, id string, shared bool, change func(o *Order) bool) (*Order, error) {
	unlock, err := a.orders.lockOrder(ctx, id, shared)
	if err != nil {
		return nil, err
	}
	defer unlock()
	o, err := a.orders.Load(ctx, id)
	if err != nil {
		return nil, err
	}
	prev := o.clone()
	if !change(o) {
		return o, nil
	}
	a.raiseEvents(prev, o)
	if err := a.orders.saveChange(ctx, prev, o); err != nil {
		if errors.As(err, new(recordStored)) {
			a.announce(prev, o) // the change happened: its log line, metrics and bus event
		}
		return nil, err
	}
	a.announce(prev, o)
	return o, nil
}

// clone copies an order deeply enough for update to compare it with its
// changed self: the receipts are copied, the rest never changes in place.
func (o *Order) clone() *Order {
	c := *o
	if o.Receipt != nil {
		r := *o.Receipt
		c.Receipt = &r
	}
	if o.Refund != nil {
		r := *o.Refund
		c.Refund = &r
	}
	return &c
}

// announce logs and counts what a change did to an order: its move, and
// its receipts' moves; and emits its events on Caddy's event bus.
func (a *App) announce(prev, o *Order) {
	fields := []zap.Field{zap.String("order_id", o.ID), zap.String("account", o.Account), zap.String("provider", o.Provider)}
	if prev.State != o.State {
		event := moves[prev.State][o.State]
		countTransition(o, prev.State)
		fields := append(fields, zap.String("from", string(prev.State)), zap.String("note", o.Error))
		if event != "" {
			fields = append(fields, zap.String("event", string(event)))
		}
		if event == eventPaidLate {
			metrics.ordersPaidLate.Inc()
			a.logger.Warn("order paid after it closed", fields...)
		} else {
			a.logger.Info("order "+string(o.State), fields...)
		}
	}
	for _, pair := range [][2]*OrderReceipt{{prev.Receipt, o.Receipt}, {prev.Refund, o.Refund}} {
		before, after := pair[0], pair[1]
		if after == nil || (before != nil && before.State == after.State && before.OperationID == after.OperationID) {
			continue
		}
		if after.State != ReceiptSending {
			countReceipt(after.Type, string(after.State))
		}
		fields := append(fields, zap.String("operation_id", after.OperationID), zap.String("type", after.Type.String()),
			zap.Int("attempt", after.attempt()))
		switch after.State {
		case ReceiptDone:
			fields = append(fields, zap.String("event", string(eventReceiptDone)))
		case ReceiptFailed:
			fields = append(fields, zap.String("event", string(eventReceiptFailed)), zap.String("error", after.Error))
		}
		a.logger.Info("receipt "+string(after.State), fields...)
	}
	a.bus.emit(prev, o)
}

// receiptMoves is a receipt attempt's transition table: sent, it is
// queued at the receipt service or refused; queued, it is done or failed,
// or, when the service no longer knows it (accepted, then lost), sent again
// under its operation id. Done and failed are final for the attempt: a
// failed receipt is retried as a new attempt, under a new operation id
// (receiptStarted).
var receiptMoves = map[ReceiptState][]ReceiptState{
	ReceiptSending: {ReceiptQueued, ReceiptFailed},
	ReceiptQueued:  {ReceiptDone, ReceiptFailed, ReceiptSending},
	// A refused attempt the service turns out to know: another send of it
	// was taken (receiptRevived).
	ReceiptFailed: {ReceiptQueued},
}

// moveTo moves a receipt attempt to state at now if the table allows it,
// and reports whether it did.
func (r *OrderReceipt) moveTo(state ReceiptState, now time.Time) bool {
	if !slices.Contains(receiptMoves[r.State], state) {
		return false
	}
	r.State = state
	if state == ReceiptDone || state == ReceiptFailed {
		r.DoneAt = now
	}
	return true
}

// openOrder stores a new order as being created: the first write of every
// checkout, before its provider is asked.
func (a *App) openOrder(ctx context.Context, o *Order) error {
	now := a.now()
	o.State, o.CreatedAt, o.UpdatedAt = OrderCreating, now, now
	o.ExpiresAt = now.Add(time.Duration(a.OrderTTL))
	return a.orders.Create(ctx, o)
}

// paymentCreated records the invoice a provider created for an order being
// created, which makes it pending: the buyer may be sent to pay it. It
// does not move an order whose time is up (its checkout took longer than
// the order lives, and the reconciler may be giving up on it), nor one that
// has moved on; either keeps the invoice, so that it is watched.
func (a *App) paymentCreated(ctx context.Context, id string, p Payment) (*Order, error) {
	return a.update(ctx, id, a.invoiceMade(p))
}

// checkoutCreated is paymentCreated for the checkout that created the
// order. In the first half of the order's life it takes no storage lock,
// so that a checkout takes none: until then nothing else decides an order
// being created. The reconciler gives an order up only after its expiry
// and the grace; it may re-send a Pegas-kassa deposit after the grace and
// record the invoice found (pending, recovered), the same state the
// checkout writes, so whichever writes last leaves the order pending with
// its invoice (the checkout's write adds the invoice's page). A checkout
// that took longer, or found the order moved on, records the invoice under
// the order's storage lock. That rests on one assumption: that no checkout
// stalls for longer than half an order's time to live between reading the
// order and writing it.
func (a *App) checkoutCreated(ctx context.Context, id string, p Payment) (*Order, error) {
	made, changed := a.invoiceMade(p), false
	o, err := a.updateOrder(ctx, id, false, func(o *Order) bool {
		changed = o.State == OrderCreating && a.now().Before(o.CreatedAt.Add(o.ExpiresAt.Sub(o.CreatedAt)/2)) && made(o)
		return changed
	})
	if err != nil || changed {
		return o, err
	}
	return a.paymentCreated(ctx, id, p)
}

// invoiceMade is the change of an order whose provider made invoice p.
func (a *App) invoiceMade(p Payment) func(o *Order) bool {
	return func(o *Order) bool {
		if o.State == OrderCreating && a.now().Before(o.ExpiresAt) {
			o.Payment = p
			return o.moveTo(OrderPending, a.now())
		}
		if o.Payment.ID == "" && p.ID != "" {
			o.Payment.ID, o.Payment.URL, o.Payment.Wallet, o.Payment.Card = p.ID, p.URL, p.Wallet, p.Card
			o.Payment.Commission = p.Commission
			return true
		}
		return false
	}
}

// paymentRecovered records that a provider already has an order's invoice
// (it refused a repeated order id after a lost reply): the order is
// pending, its invoice known by the order id alone.
func (a *App) paymentRecovered(ctx context.Context, id string) (*Order, error) {
	return a.update(ctx, id, func(o *Order) bool {
		if o.State != OrderCreating {
			return false
		}
		o.Payment.Recovered, o.Error = true, "recovered: the provider already had this order"
		return o.moveTo(OrderPending, a.now())
	})
}

// creationFailed fails an order being created: its payment was refused,
// or cannot have been made.
func (a *App) creationFailed(ctx context.Context, id, reason string) (*Order, error) {
	return a.update(ctx, id, func(o *Order) bool {
		if !o.moveTo(OrderFailed, a.now()) {
			return false
		}
		o.Error = reason
		return true
	})
}

// paid records a payment the provider reported (or an operator saw: by is
// "operator"): a pending order becomes paid, and one that closed unpaid
// becomes paid late; either gets its sale receipt, as sending, in the same
// write, so that no crash leaves a paid order without one. A reported
// amount below the order's only notes the shortfall, for an operator.
func (a *App) paid(ctx context.Context, id string, st PaymentStatus, by string) (*Order, error) {
	return a.update(ctx, id, func(o *Order) bool {
		if o.State == OrderPaid || o.State == OrderCreating {
			return false
		}
		if st.Amount.Valid {
			o.PaidAmount = st.Amount
			if st.Amount.Decimal.LessThan(o.Amount) {
				msg := "provider reports " + FormatAmount(st.Amount.Decimal) + " paid of " + FormatAmount(o.Amount)
				if o.Error == msg {
					return false
				}
				o.Error = msg
				metrics.paymentProblems.WithLabelValues(problemUnderpaid).Inc()
				a.logger.Warn("order underpaid", zap.String("order_id", o.ID), zap.String("provider", o.Provider))
				return true
			}
		}
		if !o.moveTo(OrderPaid, a.now()) {
			return false
		}
		o.Error = ""
		if by != "" {
			o.Error = "confirmed by an " + by
		}
		if a.receipts != nil && o.Receipt == nil {
			o.Receipt = newReceiptAttempt(o.ID, ReceiptSale, 1)
		}
		return true
	})
}

// problemNotePrefix starts the note paymentProblem leaves on an order.
const problemNotePrefix = "provider reports a problem: "

// paymentProblem notes on an unpaid order what its provider says is wrong
// with its payment (PaymentStatus.Problem, such as CrystalPAY's
// wrongamount), for an operator, without moving it: an open order still
// expires at its time if it is never paid. An amount the provider reports
// is kept with the note, so that compaction never deletes an order money
// came for. It writes, and warns, only when the note or amount changed.
func (a *App) paymentProblem(ctx context.Context, id string, st PaymentStatus) (*Order, error) {
	return a.update(ctx, id, func(o *Order) bool {
		if o.State == OrderPaid || o.State == OrderCreating || st.Problem == "" {
			return false
		}
		note := problemNotePrefix + st.Problem
		amountChanged := st.Amount.Valid && !(o.PaidAmount.Valid && o.PaidAmount.Decimal.Equal(st.Amount.Decimal))
		if o.Error == note && !amountChanged {
			return false
		}
		if o.Error != note {
			metrics.paymentProblems.WithLabelValues(problemReported).Inc()
		}
		o.Error = note
		if st.Amount.Valid {
			o.PaidAmount = st.Amount
		}
		a.logger.Warn("payment problem", zap.String("order_id", o.ID), zap.String("account", o.Account),
			zap.String("provider", o.Provider), zap.String("state", string(o.State)), zap.String("problem", st.Problem))
		return true
	})
}

// expired closes a pending order whose time is up and which the provider
// reported unpaid; a problem the provider reported stays noted. invoiceClosed says the provider took the cancel of its
// invoice; otherwise the invoice may still be paid, and the order is
// watched until it is compacted.
func (a *App) expired(ctx context.Context, id, note string, invoiceClosed bool) (*Order, error) {
	return a.update(ctx, id, func(o *Order) bool {
		if !o.moveTo(OrderExpired, a.now()) {
			return false
		}
		o.InvoiceClosed = invoiceClosed
		if !strings.HasPrefix(o.Error, problemNotePrefix) {
			o.Error = note // a problem's note stays, for the operator to settle
		}
		return true
	})
}

// cancelled closes a pending order whose invoice an operator had its
// provider cancel.
func (a *App) cancelled(ctx context.Context, id, note string) (*Order, error) {
	return a.update(ctx, id, func(o *Order) bool {
		if !o.moveTo(OrderCancelled, a.now()) {
			return false
		}
		o.Error, o.InvoiceClosed = note, true
		return true
	})
}

// mayStillCreate reports whether an order being created may still get its
// invoice: from a provider the reconciler can ask again (Pegas-kassa, by
// the order id), always; from another, while its checkout may be running.
func (a *App) mayStillCreate(o *Order) bool {
	acc, ok := a.accounts[o.Account]
	if !ok {
		return false
	}
	if _, resendable := acc.PaymentProvider.(OrderIDIdempotent); resendable {
		return true
	}
	return a.now().Sub(o.CreatedAt) < creatingGrace(acc)
}

// watched reports whether an order that closed unpaid may still be paid:
// its invoice exists, and its provider did not take a cancel of it. The
// reconciler keeps asking about such an order until it is compacted.
func (o *Order) watched() bool {
	return o.State.closedUnpaid() && !o.InvoiceClosed && (o.Payment.ID != "" || o.Payment.Recovered)
}

// unsavedPayments are invoices a provider created whose order could not
// be stored as pending (the storage failed): the buyer was answered 503,
// and their retry with the same Idempotency-Key, or the reconciler, stores
// the invoice from here, so that no second invoice is made. They live as
// long as this config: a reload or crash forgets them, and their orders
// are then given up as interrupted checkouts (their buyers never got the
// payment page).
type unsavedPayments struct {
	mu       sync.Mutex
	payments map[string]Payment
}

// maxUnsavedPayments bounds the invoices kept: past it, storage has been
// failing for long, and the oldest are not worth more memory.
const maxUnsavedPayments = 10000

func (u *unsavedPayments) put(id string, p Payment) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.payments == nil {
		u.payments = make(map[string]Payment)
	}
	if len(u.payments) < maxUnsavedPayments {
		u.payments[id] = p
	}
}

func (u *unsavedPayments) get(id string) (Payment, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	p, ok := u.payments[id]
	return p, ok
}

func (u *unsavedPayments) forget(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.payments, id)
}

// saveUnsaved stores an invoice kept in memory for an order being created,
// and reports whether there was one.
func (a *App) saveUnsaved(ctx context.Context, id string) (*Order, bool, error) {
	p, ok := a.unsaved.get(id)
	if !ok {
		return nil, false, nil
	}
	o, err := a.paymentCreated(ctx, id, p)
	if err == nil {
		a.unsaved.forget(id)
	}
	return o, true, err
}

// receiptStarted puts a paid order's receipt of a type on its way: the
// first attempt, or, after an attempt that failed (which proves nothing was
// printed), the next one under a new operation id. A receipt under way is
// left as it is. It is the operator's issue or retry, and a refund's start.
// A refund's attempt goes to the contacts given with it (to), which replace
// the order's, or to the order's own; with neither (erased, or never
// given) it is refused as contact_required (refundcontacts.go).
func (a *App) receiptStarted(ctx context.Context, id string, t ReceiptType, to *buyerContacts) (*Order, error) {
	var refused error
	o, err := a.update(ctx, id, func(o *Order) bool {
		if o.State != OrderPaid {
			refused = &RequestError{Status: http.StatusConflict, Code: "not_paid", Message: "the order is " + string(o.State) + ", not paid"}
			return false
		}
		if t == ReceiptSaleReturn && (o.Receipt == nil || o.Receipt.State != ReceiptDone) {
			refused = &RequestError{Status: http.StatusConflict, Code: "no_sale_receipt", Message: "a refund needs the order's sale receipt done first"}
			return false
		}
		rec := o.receipt(t)
		switch {
		case rec != nil && rec.State == ReceiptDone:
			refused = &RequestError{Status: http.StatusConflict, Code: "receipt_done", Message: "the receipt is already done"}
			return false
		case rec.underway():
			return false
		}
		if t == ReceiptSaleReturn {
			if refused = refundContacts(o, to); refused != nil {
				return false
			}
		}
		next := newReceiptAttempt(o.ID, t, 1)
		if rec != nil { // failed
			next = newReceiptAttempt(o.ID, t, rec.attempt()+1)
			next.History = append(rec.History, ReceiptAttempt{OperationID: rec.OperationID, Error: rec.Error, FailedAt: rec.DoneAt})
		}
		o.setReceipt(next)
		return true
	})
	if err == nil {
		err = refused
	}
	return o, err
}

// receiptRevived records that the receipt service knows an attempt that
// failed by a refusal: another send of the same id was taken, and the
// attempt is followed as queued.
func (a *App) receiptRevived(ctx context.Context, id string, t ReceiptType, operationID string) (*Order, error) {
	return a.update(ctx, id, func(o *Order) bool {
		rec := o.receipt(t)
		if rec == nil || rec.OperationID != operationID || rec.State != ReceiptFailed || !rec.Refused {
			return false
		}
		rec.Refused, rec.Error = false, ""
		return rec.moveTo(ReceiptQueued, a.now())
	})
}

// receiptSent records what sending a receipt attempt brought: accepted
// (queued), refused (failed: nothing was printed), or an unknown outcome
// (the network failed, or the reply was not the service's: it stays
// sending, to be sent again under the same operation id).
func (a *App) receiptSent(ctx context.Context, id string, t ReceiptType, operationID string, sendErr error) (*Order, error) {
	return a.update(ctx, id, func(o *Order) bool {
		rec := o.receipt(t)
		if rec == nil || rec.OperationID != operationID || rec.State != ReceiptSending {
			return false // another step moved it on
		}
		rec.Attempts++
		rec.SentAt = a.now()
		switch {
		case sendErr == nil:
			rec.moveTo(ReceiptQueued, a.now())
		case errors.Is(sendErr, ErrUnavailable), errors.Is(sendErr, ErrMalformedReply):
			countReceipt(t, receiptUnavailable)
		default:
			rec.moveTo(ReceiptFailed, a.now())
			rec.Error, rec.Refused = sendErr.Error(), true
		}
		return true
	})
}

// receiptChecked records what the receipt service said of a queued
// attempt: processed (done, with its fiscal data), not processed (failed),
// or unknown to it (accepted, then lost: it is sent again under its
// operation id, which is safe).
func (a *App) receiptChecked(ctx context.Context, id string, t ReceiptType, operationID string, op Operation, checkErr error) (*Order, error) {
	return a.update(ctx, id, func(o *Order) bool {
		rec := o.receipt(t)
		if rec == nil || rec.OperationID != operationID || rec.State != ReceiptQueued {
			return false
		}
		switch {
		case errors.Is(checkErr, ErrNotFound):
			return rec.moveTo(ReceiptSending, a.now())
		case checkErr != nil:
			return false
		case op.Status == OperationProcessed:
			rec.Fiscal, rec.Error = op.Fiscal, ""
			return rec.moveTo(ReceiptDone, a.now())
		case op.Status == OperationFailed:
			rec.Error = op.Error
			return rec.moveTo(ReceiptFailed, a.now())
		}
		return false
	})
}
