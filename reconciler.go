package kassa

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"
)

// reconcilerLock is the storage lock a reconciler pass holds, so that of
// several Caddy instances sharing storage (or the old and new config during
// a reload) one works on the open orders at a time.
const reconcilerLock = "kassa/reconciler"

// defaultCreatingGrace is how long an order may stay in creating before the
// reconciler takes it for one whose checkout was interrupted, for a
// provider that does not say how long its calls can take.
const defaultCreatingGrace = time.Minute

// creatingGrace is how long a checkout through acc can take: twice the
// provider's call timeout and a second, or the default.
func creatingGrace(acc *account) time.Duration {
	if t, ok := acc.PaymentProvider.(interface{ callTimeout() time.Duration }); ok {
		return 2*t.callTimeout() + time.Second
	}
	return defaultCreatingGrace
}

// reconciler finishes open orders in the background: it asks providers
// whether pending payments were paid, expires unpaid orders past their time
// to live, and recovers orders a crash left half created. It is the only
// writer of an order's later states, so every step happens once.
type reconciler struct {
	app    *App
	nudges chan string
	cancel context.CancelFunc
	done   chan struct{}
	// failing holds the last provider error (a status check's, or an
	// expired order's cancel) logged per order, so that a provider failing
	// pass after pass is logged when the failure changes, not every pass.
	// An order's entry goes when the provider answers again or the order
	// changes state. Only the reconciler's goroutine (or a step under its
	// lock) touches it.
	failing map[string]string
}

func newReconciler(app *App) *reconciler {
	return &reconciler{app: app, nudges: make(chan string, 256), failing: make(map[string]string)}
}

// start runs the reconciler until stop. Its first pass resumes whatever
// open orders the storage holds.
func (r *reconciler) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(ctx)
}

// stop ends the reconciler and waits for it.
func (r *reconciler) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
}

// nudge asks the reconciler to look at an order now, as when a buyer's poll
// learned it was paid. It never blocks: a full queue waits for the next pass.
func (r *reconciler) nudge(id string) {
	select {
	case r.nudges <- id:
	default:
	}
}

func (r *reconciler) run(ctx context.Context) {
	defer close(r.done)
	ticker := time.NewTicker(time.Duration(r.app.PollInterval))
	defer ticker.Stop()
	compaction := time.NewTicker(compactEvery(time.Duration(r.app.KeepUnpaid), time.Duration(r.app.PollInterval)))
	defer compaction.Stop()
	r.locked(ctx, r.pass)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			r.locked(ctx, r.pass)
		case <-compaction.C:
			r.locked(ctx, r.compact)
		case id := <-r.nudges:
			r.locked(ctx, func(ctx context.Context) { r.reconcile(ctx, id) })
		}
	}
}

// locked runs step under the reconciler's storage lock.
func (r *reconciler) locked(ctx context.Context, step func(context.Context)) {
	if err := r.app.storage.Lock(ctx, reconcilerLock); err != nil {
		if ctx.Err() == nil {
			r.app.logger.Error("reconciler: taking the storage lock", zap.Error(err))
		}
		return
	}
	defer func() {
		if err := r.app.storage.Unlock(context.WithoutCancel(ctx), reconcilerLock); err != nil {
			r.app.logger.Error("reconciler: releasing the storage lock", zap.Error(err))
		}
	}()
	step(ctx)
}

// pass looks at every open order once.
func (r *reconciler) pass(ctx context.Context) {
	start := time.Now()
	ids, err := r.app.orders.OpenIDs(ctx)
	if err != nil {
		r.app.logger.Error("reconciler: listing open orders", zap.Error(err))
		return
	}
	var open openTally
	for _, id := range ids {
		if ctx.Err() != nil {
			return
		}
		open.add(r.reconcile(ctx, id))
	}
	observePass(time.Since(start), open, r.app.now())
	r.app.logger.Debug("reconciler pass", zap.Int("open_orders", len(ids)), zap.Duration("duration", time.Since(start)))
}

// compactEvery is how often the reconciler compacts: twice per keep, at
// most hourly and at least a poll interval apart.
func compactEvery(keep, poll time.Duration) time.Duration {
	return max(min(keep/2, time.Hour), poll)
}

// compact deletes the orders that closed unpaid more than keep_unpaid ago.
func (r *reconciler) compact(ctx context.Context) {
	start := time.Now()
	n, err := r.app.orders.Compact(ctx, time.Duration(r.app.KeepUnpaid))
	metrics.ordersCompacted.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		r.app.logger.Error("reconciler: compacting unpaid orders", zap.Int("deleted", n), zap.Error(err))
	}
	if n > 0 {
		r.app.logger.Info("compacted unpaid orders", zap.Int("deleted", n),
			zap.Duration("kept", time.Duration(r.app.KeepUnpaid)), zap.Duration("duration", time.Since(start)))
	}
}

// reconcile moves one open order as far as it can go, and returns it as it
// then stands (nil when its record is missing or unreadable).
func (r *reconciler) reconcile(ctx context.Context, id string) *Order {
	a := r.app
	o, err := a.orders.Load(ctx, id)
	if errors.Is(err, ErrOrderNotFound) {
		r.dropOrphanIndex(ctx, id)
		return nil
	}
	if err != nil {
		a.logger.Error("reconciler: loading order", zap.String("order_id", id), zap.Error(err))
		return nil
	}
	if !o.Open() {
		if err := a.orders.Closed(ctx, o); err != nil {
			a.logger.Error("reconciler: closing index entry", zap.String("order_id", id), zap.Error(err))
		}
		return o
	}
	r.advanceReceipts(ctx, o)
	if !o.State.Open() {
		return o
	}
	acc, ok := a.accounts[o.Account]
	if !ok {
		a.logger.Warn("reconciler: order's payment account is no longer configured; leaving it open",
			zap.String("order_id", o.ID), zap.String("account", o.Account))
		return o
	}
	switch o.State {
	case OrderCreating:
		if a.now().Sub(o.CreatedAt) >= creatingGrace(acc) {
			r.recoverCreating(ctx, acc, o)
		}
	case OrderPending:
		r.checkPending(ctx, acc, o)
	}
	return o
}

// dropOrphanIndex removes an open-index entry whose record was never
// written (a crash inside Create, before any provider call), once it is
// older than a checkout can take.
func (r *reconciler) dropOrphanIndex(ctx context.Context, id string) {
	since, err := r.app.orders.OpenSince(ctx, id)
	if err != nil || r.app.now().Sub(since) < defaultCreatingGrace {
		return
	}
	if err := r.app.orders.CloseIndex(ctx, id); err != nil {
		r.app.logger.Error("reconciler: dropping orphan index entry", zap.String("order_id", id), zap.Error(err))
	}
}

// recoverCreating finishes an order whose checkout was interrupted between
// writing it and storing the provider's reply. A provider that refuses a
// repeated order id gets the same request again; the others cannot be
// asked whether the first one went through, so the order fails rather than
// risk a second invoice. The buyer never got a payment link for it.
func (r *reconciler) recoverCreating(ctx context.Context, acc *account, o *Order) {
	a := r.app
	if _, ok := acc.PaymentProvider.(OrderIDIdempotent); !ok {
		r.transition(ctx, o, OrderFailed, "checkout interrupted before the provider's reply; "+
			acc.provider+" cannot be asked whether the payment was created, so it is not created twice")
		return
	}
	start := time.Now()
	payment, err := acc.CreatePayment(ctx, a.paymentRequest(o))
	failpoint("recovery-replied")
	switch {
	case err == nil:
		o.Payment = payment
		r.transition(ctx, o, OrderPending, "")
	case errors.Is(err, ErrDuplicate):
		// The first request went through; its reply was lost. The payment
		// is found by our order id from now on.
		r.transition(ctx, o, OrderPending, "recovered: the provider already had this order")
	case errors.Is(err, ErrUnavailable):
		a.logger.Warn("reconciler: provider unavailable while recovering an order; will retry",
			zap.String("order_id", o.ID), zap.String("provider", acc.provider), zap.Duration("duration", time.Since(start)), zap.Error(err))
	default:
		r.transition(ctx, o, OrderFailed, err.Error())
	}
}

// checkPending asks the provider about a pending payment and expires the
// order when its time is up and it is still unpaid.
func (r *reconciler) checkPending(ctx context.Context, acc *account, o *Order) {
	a := r.app
	st, err := a.paymentStatus(ctx, acc, o)
	if err == nil && st.Paid {
		r.markPaid(ctx, o, st)
		return
	}
	if err != nil && !errors.Is(err, ErrNotSupported) {
		if r.failing[o.ID] != err.Error() {
			r.failing[o.ID] = err.Error()
			a.logger.Warn("reconciler: payment status", zap.String("order_id", o.ID), zap.String("provider", acc.provider), zap.Error(err))
		}
		return
	}
	if a.now().Before(o.ExpiresAt) {
		delete(r.failing, o.ID)
		return
	}
	err = acc.CancelPayment(ctx, PaymentRef{ID: o.Payment.ID, OrderID: o.ID})
	failpoint("expiry-cancelled")
	switch {
	case err == nil, errors.Is(err, ErrNotSupported):
		r.transition(ctx, o, OrderExpired, "")
	case errors.Is(err, ErrInvalid):
		// A recovered invoice whose id the provider never told us cannot be
		// cancelled through the API: say so to the operator.
		r.transition(ctx, o, OrderExpired, "not cancelled at the provider ("+err.Error()+"); cancel it in the provider's dashboard")
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrMalformedReply), errors.Is(err, ErrAuth):
		// The invoice may still be payable: the order stays pending, its
		// payment watched, until the provider takes the cancel.
		if r.failing[o.ID] != err.Error() {
			r.failing[o.ID] = err.Error()
			a.logger.Warn("reconciler: cancelling an expired order failed; will retry",
				zap.String("order_id", o.ID), zap.String("provider", acc.provider), zap.Error(err))
		}
	default:
		// Refused: perhaps paid at the last moment. Look once more.
		if st, err := a.paymentStatus(ctx, acc, o); err == nil && st.Paid {
			r.markPaid(ctx, o, st)
			return
		}
		r.transition(ctx, o, OrderExpired, "cancel refused: "+err.Error())
	}
}

// markPaid records a payment. A reported amount below the order's keeps
// the order pending for an operator to look at.
func (r *reconciler) markPaid(ctx context.Context, o *Order, st PaymentStatus) {
	if st.Amount.Valid {
		o.PaidAmount = st.Amount
		if st.Amount.Decimal.LessThan(o.Amount) {
			msg := "provider reports " + FormatAmount(st.Amount.Decimal) + " paid of " + FormatAmount(o.Amount)
			if o.Error != msg {
				o.Error = msg
				r.save(ctx, o)
				r.app.logger.Warn("order underpaid", zap.String("order_id", o.ID), zap.String("provider", o.Provider))
			}
			return
		}
	}
	// The paid state and its receipt, as sending, are stored in one write:
	// a crash right after it leaves the order open for the receipt, never
	// paid and closed without one.
	o.PaidAt = r.app.now()
	rec := r.newReceipt(o, ReceiptSale)
	if r.transition(ctx, o, OrderPaid, "") && rec != nil {
		failpoint("paid-saved")
		r.advanceReceipt(ctx, o, rec)
	}
}

// transition moves an order to a new state, stores it and logs the change.
func (r *reconciler) transition(ctx context.Context, o *Order, state OrderState, note string) bool {
	from := o.State
	o.State, o.Error = state, note
	if !state.Open() {
		o.ClosedAt = r.app.now()
	}
	if !r.save(ctx, o) {
		return false
	}
	delete(r.failing, o.ID)
	r.app.logger.Info("order "+string(state), zap.String("order_id", o.ID), zap.String("from", string(from)),
		zap.String("account", o.Account), zap.String("provider", o.Provider), zap.String("note", note))
	countTransition(o, from)
	return true
}

func (r *reconciler) save(ctx context.Context, o *Order) bool {
	o.UpdatedAt = r.app.now()
	if err := r.app.orders.Save(ctx, o); err != nil {
		r.app.logger.Error("reconciler: saving order", zap.String("order_id", o.ID), zap.Error(err))
		return false
	}
	return true
}
