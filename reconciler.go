package kassa

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

// reconcilerLock is the storage lock under which the reconciler's lease
// (lease.go) is read and written: held for a read and a write, never for
// a pass.
const reconcilerLock = "kassa/reconciler"

// defaultCreatingGrace is how long an order may stay in creating before the
// reconciler takes it for one whose checkout was interrupted, for a
// provider that does not say how long its calls can take.
const defaultCreatingGrace = time.Minute

// creatingGrace is how long a checkout through acc can take: twice the
// provider's call timeout and a second, or the default for a provider
// that does not say, or says a timeout of zero or less (such as an unset
// option whose real default it does not report).
func creatingGrace(acc *account) time.Duration {
	if t, ok := acc.PaymentProvider.(CallTimeoutReporter); ok && t.CallTimeout() > 0 {
		return 2*t.CallTimeout() + time.Second
	}
	return defaultCreatingGrace
}

// reconciler finishes orders in the background: it asks providers whether
// pending payments were paid, expires unpaid orders past their time to
// live, recovers orders a crash left half created, sends receipts, and
// watches orders that closed unpaid while their invoice may still be paid.
// It changes orders only through the lifecycle's methods (lifecycle.go).
//
// Each poll interval it renews or watches the lease (lease.go): of the
// instances sharing a storage, the lease's holder makes the passes and
// compacts; the others stand by, finishing only what their buyers' polls
// nudge them to. A pass hands the orders that are due (schedule.go) to a
// pool of poll_concurrency workers (pool.go), most overdue first; the
// jobs of a rate-limited account take only as many workers as its rate
// keeps busy.
type reconciler struct {
	app    *App
	poll   time.Duration
	nudges chan string
	cancel context.CancelFunc
	done   chan struct{}
	pool   *pool
	sched  *schedule
	lease  *lease

	// passedAt is when the last pass completed, in Unix nanoseconds by
	// the app's clock; the lease carries it to the morning check.
	passedAt atomic.Int64

	// mu guards failing.
	mu sync.Mutex
	// failing holds the last provider error (a status check's, or an
	// expired order's cancel) logged per order, so that a provider failing
	// pass after pass is logged when the failure changes, not every pass.
	// An order's entry goes when the provider answers again or the order
	// changes state.
	failing map[string]string
}

func newReconciler(app *App) *reconciler {
	poll := time.Duration(app.PollInterval)
	if poll <= 0 {
		poll = defaultPollInterval
	}
	concurrency := app.PollConcurrency
	if concurrency <= 0 {
		concurrency = defaultPollConcurrency
	}
	width := func(name string) int {
		if acc, ok := app.accounts[name]; ok {
			return acc.width(concurrency)
		}
		return 0
	}
	return &reconciler{app: app, poll: poll, nudges: make(chan string, 256), failing: make(map[string]string),
		pool: newPool(concurrency, width, app.logger), sched: newSchedule(poll), lease: newLease(app, poll)}
}

// start runs the reconciler until stop. Its first pass (once it holds the
// lease) resumes whatever open orders the storage holds.
func (r *reconciler) start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.run(ctx)
}

// stop ends the reconciler, waits for its work, and frees the lease if it
// held it.
func (r *reconciler) stop() {
	if r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
}

// nudge asks the reconciler to look at an order now, as when a buyer's poll
// learned it was paid: ahead of any other work, on a standby too. It never
// blocks: a full queue waits for the next pass.
func (r *reconciler) nudge(id string) {
	select {
	case r.nudges <- id:
	default:
	}
}

func (r *reconciler) run(ctx context.Context) {
	defer close(r.done)
	ticker := time.NewTicker(r.poll)
	defer ticker.Stop()
	compaction := time.NewTicker(compactEvery(time.Duration(r.app.KeepUnpaid), r.poll))
	defer compaction.Stop()
	var passing, compacting atomic.Bool
	var steps sync.WaitGroup
	// background runs step in a goroutine of its own unless one still runs
	// (busy), so that a long pass never delays the lease's renewal.
	background := func(busy *atomic.Bool, step func(context.Context)) {
		if !busy.CompareAndSwap(false, true) {
			return
		}
		steps.Add(1)
		go func() {
			defer steps.Done()
			defer busy.Store(false)
			r.safely(ctx, step)
		}()
	}
	defer func() {
		steps.Wait()
		r.pool.wait()
		r.lease.release(context.WithoutCancel(ctx))
	}()
	tick := func() {
		if !r.lead(ctx) {
			return
		}
		r.observeBacklog()
		if passing.Load() {
			// The last pass still runs: what fell due since joins it.
			r.safely(ctx, func(ctx context.Context) { r.sweep(ctx, nil) })
			return
		}
		background(&passing, r.pass)
	}
	tick()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			tick()
		case <-compaction.C:
			if r.lease.leading {
				background(&compacting, r.compact)
			}
		case id := <-r.nudges:
			r.pool.submit(nil, r.checkJob(ctx, id, priority{class: classNudge}))
		}
	}
}

// lead renews or watches the lease, and reports whether this instance
// makes the passes.
func (r *reconciler) lead(ctx context.Context) bool {
	leading := r.lease.hold(ctx)
	metrics.reconcilerLeader.Set(boolGauge(leading))
	if !leading {
		// The leader's figures: a standby's would be stale.
		for _, g := range []prometheus.Gauge{metrics.openOrders, metrics.oldestOpenOrderAge,
			metrics.reconcilerBacklog, metrics.reconcilerLateness} {
			g.Set(0)
		}
	}
	return leading
}

// safely runs step, logging a panic in it instead of taking the whole
// Caddy down.
func (r *reconciler) safely(ctx context.Context, step func(context.Context)) {
	defer func() {
		if v := recover(); v != nil {
			r.app.logger.Error("reconciler: a step panicked", zap.Any("panic", v), zap.Stack("stack"))
		}
	}()
	step(ctx)
}

// pass looks at every order that is due (schedule.go): open orders, and
// orders closed unpaid whose invoice may still be paid, through the pool,
// and waits for them.
func (r *reconciler) pass(ctx context.Context) {
	start := time.Now()
	var done sync.WaitGroup
	open, ok := r.sweep(ctx, &done)
	done.Wait()
	if !ok || ctx.Err() != nil {
		return
	}
	observePass(time.Since(start), r.sched.tally(open), r.app.now())
	r.passedAt.Store(r.app.now().UnixNano())
	r.observeBacklog()
	r.app.logger.Debug("reconciler pass", zap.Int("open_orders", len(open)), zap.Duration("duration", time.Since(start)))
}

// sweep lists the open orders and the orders closed unpaid, and hands
// those due to the pool; done, if not nil, is done once they have been
// looked at. It returns the open orders, and whether it could list them.
func (r *reconciler) sweep(ctx context.Context, done *sync.WaitGroup) ([]string, bool) {
	open, err := r.app.orders.OpenIDs(ctx)
	if err != nil {
		r.app.logger.Error("reconciler: listing open orders", zap.Error(err))
		return nil, false
	}
	closed, err := r.app.orders.UnpaidIDs(ctx)
	if err != nil {
		r.app.logger.Error("reconciler: listing orders closed unpaid", zap.Error(err))
		closed = nil
	} else {
		r.sched.keep(open, closed)
	}
	now := r.app.now()
	var jobs []*job
	for _, id := range open {
		if p, due := r.sched.dueOpen(id, now); due {
			jobs = append(jobs, r.checkJob(ctx, id, p))
		}
	}
	for _, id := range closed {
		if p, due := r.sched.dueClosed(id, now); due {
			j := &job{key: "unpaid/" + id, group: r.sched.account(id), prio: p}
			j.run = func() {
				if ctx.Err() == nil {
					r.watch(ctx, id, j)
				}
			}
			jobs = append(jobs, j)
		}
	}
	r.pool.submit(done, jobs...)
	return open, true
}

// checkJob is the job that moves open order id on and schedules its next
// check. A job still queued when the reconciler stops does nothing: the
// next start checks the order. Its group is the order's account, when the
// schedule knows it.
func (r *reconciler) checkJob(ctx context.Context, id string, p priority) *job {
	j := &job{key: "open/" + id, group: r.sched.account(id), prio: p}
	j.run = func() {
		if ctx.Err() != nil {
			return
		}
		if o := r.reconcile(ctx, id, j); !j.requeue {
			r.sched.checkedOpen(id, o, r.app.now())
		}
	}
	return j
}

// observeBacklog sets the backlog gauges: the work queued for the pool,
// and how late the most overdue check is.
func (r *reconciler) observeBacklog() {
	metrics.reconcilerBacklog.Set(float64(r.pool.pending()))
	metrics.reconcilerLateness.Set(r.sched.lateness(r.app.now()).Seconds())
}

// compactEvery is how often the reconciler compacts: twice per keep, at
// most hourly and at least a poll interval apart.
func compactEvery(keep, poll time.Duration) time.Duration {
	return max(min(keep/2, time.Hour), poll)
}

// compact deletes the orders that closed unpaid more than keep_unpaid ago,
// and erases the contacts due (erase_contacts_after).
func (r *reconciler) compact(ctx context.Context) {
	defer r.eraseContacts(ctx)
	start := time.Now()
	n, err := r.app.orders.Compact(ctx, time.Duration(r.app.KeepUnpaid), r.lastLook)
	metrics.ordersCompacted.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		r.app.logger.Error("reconciler: compacting unpaid orders", zap.Int("deleted", n), zap.Error(err))
	}
	if n > 0 {
		r.app.logger.Info("compacted unpaid orders", zap.Int("deleted", n),
			zap.Duration("kept", time.Duration(r.app.KeepUnpaid)), zap.Duration("duration", time.Since(start)))
	}
}

// eraseContacts erases the buyers' contacts that erase_contacts_after
// makes due, a bounded part of them per pass.
func (r *reconciler) eraseContacts(ctx context.Context) {
	n, err := r.app.eraseContacts(ctx)
	metrics.contactsErased.Add(float64(n))
	if err != nil && ctx.Err() == nil {
		r.app.logger.Error("reconciler: erasing buyers' contacts", zap.Int("erased", n), zap.Error(err))
	}
	if n > 0 {
		r.app.logger.Info("erased buyers' contacts", zap.Int("orders", n),
			zap.Duration("after", time.Duration(r.app.EraseContactsAfter)))
	}
}

// reconcile moves one open order as far as it can go, in job j, and
// returns it as it then stands (nil when its record is missing or
// unreadable). A job whose account's group is full goes back to the
// queue (pool.enter) before asking the provider anything.
func (r *reconciler) reconcile(ctx context.Context, id string, j *job) *Order {
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
	if err := a.ensureEvents(ctx, o); err != nil {
		// The order stays in its index until its events are written.
		a.logger.Error("reconciler: writing an order's events", zap.String("order_id", id), zap.Error(err))
		return o
	}
	if !o.Open() {
		if err := a.orders.settleIndexes(ctx, id); err != nil {
			a.logger.Error("reconciler: settling the indexes of a closed order", zap.String("order_id", id), zap.Error(err))
		}
		return o
	}
	if o.State.Open() {
		acc, ok := a.accounts[o.Account]
		if !ok {
			a.logger.Warn("reconciler: order's payment account is no longer configured; leaving it open",
				zap.String("order_id", o.ID), zap.String("account", o.Account))
			return o
		}
		if !r.pool.enter(j, acc.name) {
			return o
		}
		if o.State == OrderCreating {
			o = r.recoverCreating(ctx, acc, o)
		} else {
			o = r.checkPending(ctx, acc, o)
		}
		if !o.State.Open() {
			r.forget(o.ID)
		}
	}
	return r.receiptStep(ctx, o)
}

// receiptStep is the reconciler's receipt step: it moves an order's
// receipts under way on (orderreceipts.go), and returns the order as it then
// stands: a newly paid order's receipt is sent in the pass that noticed the
// payment.
func (r *reconciler) receiptStep(ctx context.Context, o *Order) *Order {
	for _, t := range []ReceiptType{ReceiptSale, ReceiptSaleReturn} {
		if o.receipt(t).underway() {
			o, _ = r.app.advanceReceipt(ctx, o, t)
		}
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
// writing it and storing the provider's reply. An invoice this instance
// holds in memory (its storing failed) is stored. A provider that refuses a
// repeated order id gets the same request again once the checkout's call
// is surely over, which recovers the invoice (or makes it). The others
// cannot be asked whether the first request went through. Either way an
// order is given up only once its checkout could not store it any more
// (past its expiry, when the checkout no longer makes an order pending),
// so a slow checkout and the reconciler never both decide it. Its buyer
// never got a payment link.
func (r *reconciler) recoverCreating(ctx context.Context, acc *account, o *Order) *Order {
	a := r.app
	next, held, err := a.saveUnsaved(ctx, o.ID)
	switch {
	case held && err == nil:
		return next
	case held:
		a.logger.Error("reconciler: storing a created payment", zap.String("order_id", o.ID), zap.Error(err))
		return o
	}
	// An order is given up only once its checkout could no longer store
	// it: past its expiry (when the checkout no longer makes it pending)
	// and the grace.
	mayFail := !a.now().Before(o.ExpiresAt.Add(creatingGrace(acc)))
	if _, ok := acc.PaymentProvider.(OrderIDIdempotent); !ok {
		if !mayFail {
			return o
		}
		next, err := a.creationFailed(ctx, o.ID, "checkout interrupted before the provider's reply; "+
			acc.provider+" cannot be asked whether the payment was created, so it is not created twice")
		return r.orPrev(o, next, err)
	}
	if a.now().Sub(o.CreatedAt) < creatingGrace(acc) {
		return o
	}
	if err := acc.wait(ctx); err != nil {
		return o
	}
	start := time.Now()
	payment, err := acc.CreatePayment(ctx, a.paymentRequest(o))
	failpoint("recovery-replied")
	switch {
	case err == nil:
		next, err := a.paymentCreated(ctx, o.ID, payment)
		return r.orPrev(o, next, err)
	case errors.Is(err, ErrDuplicate):
		// The first request went through; its reply was lost. The payment
		// is found by our order id from now on.
		next, err := a.paymentRecovered(ctx, o.ID)
		return r.orPrev(o, next, err)
	case errors.Is(err, ErrUnavailable):
		a.logger.Warn("reconciler: provider unavailable while recovering an order; will retry",
			zap.String("order_id", o.ID), zap.String("provider", acc.provider), zap.Duration("duration", time.Since(start)), zap.Error(err))
		return o
	case !mayFail:
		// Refused, but the checkout's own request may have made the
		// invoice: the order waits until its checkout is surely over.
		r.remember(o, "reconciler: the provider refused to recover an order; will retry", err)
		return o
	default:
		next, err := a.creationFailed(ctx, o.ID, err.Error())
		return r.orPrev(o, next, err)
	}
}

// orPrev is the order a change left, or, when storing it failed (logged),
// the order as it was.
func (r *reconciler) orPrev(o, next *Order, err error) *Order {
	if err != nil {
		r.app.logger.Error("reconciler: storing an order's change", zap.String("order_id", o.ID), zap.Error(err))
		return o
	}
	return next
}

// checkPending asks the provider about a pending payment and expires the
// order when its time is up and it is still unpaid. The check before
// expiring asks the provider itself, never a status another poll fetched a
// moment ago: a payment in the order's last second is a payment. A problem
// the provider reports is noted on the order, which then expires without
// its invoice cancelled, watched.
func (r *reconciler) checkPending(ctx context.Context, acc *account, o *Order) *Order {
	a := r.app
	expiring := !a.now().Before(o.ExpiresAt)
	ref := PaymentRef{ID: o.Payment.ID, OrderID: o.ID}
	var st PaymentStatus
	var err error
	if expiring {
		st, err = r.status(ctx, acc, ref)
	} else {
		st, err = r.gatedStatus(ctx, acc, o)
	}
	if err == nil && st.Paid {
		next, err := a.paid(ctx, o.ID, st, "")
		failpoint("paid-saved")
		if err != nil || next.State != OrderPending || !expiring {
			return r.orPrev(o, next, err)
		}
		// Underpaid, and its time is up: it closes with its note, still
		// watched, and is never compacted; the operator settles it.
		next, err = a.expired(ctx, o.ID, next.Error, false)
		return r.orPrev(o, next, err)
	}
	if err != nil && !errors.Is(err, ErrNotSupported) {
		r.remember(o, "reconciler: payment status", err)
		return o
	}
	if err == nil && st.Problem != "" {
		next, err := a.paymentProblem(ctx, o.ID, st)
		if err != nil || !expiring {
			r.forget(o.ID)
			return r.orPrev(o, next, err)
		}
		// Its time is up with a problem at the provider (money may have
		// come): it closes with its note, its invoice left as it is and
		// watched, for the operator to settle.
		next, err = a.expired(ctx, o.ID, next.Error, false)
		return r.orPrev(o, next, err)
	}
	if !expiring {
		r.forget(o.ID)
		return o
	}
	if err := acc.wait(ctx); err != nil {
		return o
	}
	err = acc.CancelPayment(ctx, ref)
	failpoint("expiry-cancelled")
	switch {
	case err == nil:
		next, err := a.expired(ctx, o.ID, "", true)
		return r.orPrev(o, next, err)
	case errors.Is(err, ErrNotSupported):
		// The link stays payable: the order is watched.
		next, err := a.expired(ctx, o.ID, "", false)
		return r.orPrev(o, next, err)
	case errors.Is(err, ErrInvalid):
		// A recovered invoice whose id the provider never told us cannot be
		// cancelled through the API: say so to the operator.
		next, err := a.expired(ctx, o.ID, "not cancelled at the provider ("+err.Error()+"); cancel it in the provider's dashboard", false)
		return r.orPrev(o, next, err)
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrMalformedReply), errors.Is(err, ErrAuth):
		// The invoice may still be payable: the order stays pending, its
		// payment watched, until the provider takes the cancel.
		r.remember(o, "reconciler: cancelling an expired order failed; will retry", err)
		return o
	default:
		// Refused: perhaps paid at the last moment. Look once more; a look
		// that fails leaves the order pending for the next pass.
		st, serr := r.status(ctx, acc, ref)
		switch {
		case serr != nil && !errors.Is(serr, ErrNotSupported):
			r.remember(o, "reconciler: payment status after a refused cancel", serr)
			return o
		case st.Paid:
			next, err := a.paid(ctx, o.ID, st, "")
			return r.orPrev(o, next, err)
		}
		next, err := a.expired(ctx, o.ID, "cancel refused: "+err.Error(), false)
		return r.orPrev(o, next, err)
	}
}

// forget drops the failure remembered for an order.
func (r *reconciler) forget(id string) {
	r.mu.Lock()
	delete(r.failing, id)
	r.mu.Unlock()
}

// status asks acc's provider itself about a payment, after a token of the
// account's rate limit.
func (r *reconciler) status(ctx context.Context, acc *account, ref PaymentRef) (PaymentStatus, error) {
	if err := acc.wait(ctx); err != nil {
		return PaymentStatus{}, err
	}
	return acc.PaymentStatus(ctx, ref)
}

// gatedStatus is the status of o's payment through the gate buyers' polls
// share (a check made a moment ago serves), after a token of the account's
// rate limit.
func (r *reconciler) gatedStatus(ctx context.Context, acc *account, o *Order) (PaymentStatus, error) {
	if err := acc.wait(ctx); err != nil {
		return PaymentStatus{}, err
	}
	ref := PaymentRef{ID: o.Payment.ID, OrderID: o.ID}
	return r.app.statuses.check(ctx, o.ID, func(ctx context.Context) (PaymentStatus, error) {
		return acc.PaymentStatus(ctx, ref)
	})
}

// remember logs a provider's failure on an order, once for as long as it
// fails the same way.
func (r *reconciler) remember(o *Order, what string, err error) {
	r.mu.Lock()
	same := r.failing[o.ID] == err.Error()
	r.failing[o.ID] = err.Error()
	r.mu.Unlock()
	if same {
		return
	}
	r.app.logger.Warn(what, zap.String("order_id", o.ID), zap.String("provider", o.Provider), zap.Error(err))
}

// watch asks once about an order that closed unpaid while its invoice may
// still be paid (a CrystalPAY link never expires; a Pegas-kassa invoice
// whose cancel did not go through), and schedules the next time: young
// ones every pass, older ones less often. A late payment makes the order
// paid late, with its receipt; a problem the provider reports is noted.
//
// It runs in job j: one whose account's group is full goes back to the
// queue (pool.enter) before asking the provider.
func (r *reconciler) watch(ctx context.Context, id string, j *job) {
	a := r.app
	o, err := a.orders.Load(ctx, id)
	switch {
	case errors.Is(err, ErrOrderNotFound):
		r.sched.forgetClosed(id)
		return
	case err != nil:
		a.logger.Error("reconciler: loading order", zap.String("order_id", id), zap.Error(err))
		return
	case !o.watched():
		// Paid since, or never payable: write its events and settle its
		// indexes, if a crash left them behind, and leave it alone.
		if err := a.ensureEvents(ctx, o); err != nil {
			a.logger.Error("reconciler: writing an order's events", zap.String("order_id", id), zap.Error(err))
			return
		}
		if err := a.orders.settleIndexes(ctx, id); err != nil {
			a.logger.Error("reconciler: settling the indexes of an order", zap.String("order_id", id), zap.Error(err))
			return
		}
		r.sched.watchedClosed(id, o, false, a.now())
		return
	}
	acc, ok := a.accounts[o.Account]
	if ok && !r.pool.enter(j, acc.name) {
		return
	}
	r.sched.watchedClosed(id, o, true, a.now())
	if !ok {
		return
	}
	st, err := r.gatedStatus(ctx, acc, o)
	if err != nil && !errors.Is(err, ErrNotSupported) {
		r.remember(o, "reconciler: payment status of an order that closed unpaid", err)
		return
	}
	switch {
	case st.Paid:
		next, err := a.paid(ctx, o.ID, st, "")
		if err != nil {
			a.logger.Error("reconciler: storing a late payment", zap.String("order_id", id), zap.Error(err))
			r.sched.forgetClosed(id)
			return
		}
		r.receiptStep(ctx, next)
	case st.Problem != "":
		if _, err := a.paymentProblem(ctx, o.ID, st); err != nil {
			a.logger.Error("reconciler: noting a payment problem", zap.String("order_id", id), zap.Error(err))
		}
	}
}

// lastLook is compaction's last question about an order that closed unpaid,
// before it is deleted: an order that may still be paid is asked about
// once more, through the pool, and one paid meanwhile is recorded paid late
// and kept. An order whose provider cannot answer, or reports a problem
// with its payment, is kept for the next compaction.
func (r *reconciler) lastLook(ctx context.Context, o *Order) (keep bool) {
	if _, ok := r.app.accounts[o.Account]; !o.watched() || !ok {
		return false
	}
	r.pool.do("last/"+o.ID, o.Account, priority{class: classDue, created: o.CreatedAt}, func() { keep = r.askLast(ctx, o) })
	return keep
}

// askLast is lastLook's question, in a worker of the pool.
func (r *reconciler) askLast(ctx context.Context, o *Order) (keep bool) {
	a := r.app
	acc := a.accounts[o.Account]
	st, err := r.status(ctx, acc, PaymentRef{ID: o.Payment.ID, OrderID: o.ID})
	switch {
	case err != nil && !errors.Is(err, ErrNotSupported):
		r.remember(o, "reconciler: payment status before compaction; keeping the order", err)
		return true
	case st.Paid:
		if _, err := a.paid(ctx, o.ID, st, ""); err != nil {
			a.logger.Error("reconciler: storing a late payment", zap.String("order_id", o.ID), zap.Error(err))
		}
		return true
	case st.Problem != "":
		// The provider still reports a problem: money may have come, and
		// the operator has not settled it.
		if _, err := a.paymentProblem(ctx, o.ID, st); err != nil {
			a.logger.Error("reconciler: noting a payment problem", zap.String("order_id", o.ID), zap.Error(err))
		}
		return true
	}
	return false
}
