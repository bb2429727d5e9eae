package kassa

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// The morning check (GET /kassa/check, caddy kassa check): what needs an
// operator's action, by kind, each with the orders or events concerned
// and the command that settles them. Its work is bounded at a shop's
// scale: it reads the open and unpaid indexes (open work, and a week of
// unpaid orders), the orders created in its window from the time index,
// the outbox and the index of undelivered events, and the reconciler's
// lease; never the whole history.

// The kinds of finding, in the order the check lists them.
const (
	checkReconcilerStalled = "reconciler_stalled"
	checkStuckCreating     = "stuck_creating"
	checkReceiptFailed     = "receipt_failed"
	checkUnderpaid         = "underpaid"
	checkPaymentProblem    = "payment_problem"
	checkPaidLate          = "paid_late"
	checkEventUndelivered  = "event_undelivered"
)

// checkHints say, for each kind, what settles it.
var checkHints = map[string]string{
	checkReconcilerStalled: "no reconciler pass lately: read the lease holder's log (\"reconciler:\" lines) and its storage; restarting it hands the lease to another instance",
	checkStuckCreating:     "the payment's creation was never confirmed: caddy kassa order <id> shows its error; the reconciler finishes it once the provider answers (an account removed from the config strands it)",
	checkReceiptFailed:     "caddy kassa receipt <id> sends it again under a new operation id (POST /kassa/orders/{id}/receipt); a failed refund: caddy kassa refund <id>",
	checkUnderpaid:         "the provider reports less than the amount: settle with the buyer at the provider's dashboard; caddy kassa confirm <id> records it paid, with its receipt",
	checkPaymentProblem:    "the provider reports a problem (CrystalPAY wrongamount: another amount was paid): settle it at the provider's dashboard; caddy kassa confirm <id> records it paid, with its receipt",
	checkPaidLate:          "paid after the order closed: deliver the goods, or return the money at the provider and issue caddy kassa refund <id>",
	checkEventUndelivered:  "a receiver did not get it: fix the receiver, then caddy kassa redeliver <event_id> (POST /kassa/events/{id}/redeliver)",
}

// Bounds of the check.
const (
	// defaultCheckSince is how far back the check looks for failed
	// receipts and late payments: a week, the default keep_unpaid.
	defaultCheckSince = 7 * 24 * time.Hour
	// maxCheckScan bounds the records of the window the check reads.
	maxCheckScan = 50000
	// maxCheckItems bounds the findings listed per kind; the count is
	// whole.
	maxCheckItems = 100
	// minStall is the shortest time without a pass that is a stall.
	minStall = time.Minute
)

// checkItem is one finding: an order or an event, and what is wrong.
type checkItem struct {
	OrderID string     `json:"order_id,omitempty"`
	EventID string     `json:"event_id,omitempty"`
	Account string     `json:"account,omitempty"`
	State   OrderState `json:"state,omitempty"`
	Amount  string     `json:"amount,omitempty"`
	// At is when it happened: the order's creation, payment or close, the
	// receipt's failure, the event's creation, the reconciler's last pass.
	At     time.Time `json:"at,omitzero"`
	Detail string    `json:"detail"`
}

// checkKind is the findings of one kind.
type checkKind struct {
	Kind  string      `json:"kind"`
	Count int         `json:"count"`
	Hint  string      `json:"hint"`
	Items []checkItem `json:"items"`
}

// checkReport is the check's answer.
type checkReport struct {
	// OK is true when nothing needs action.
	OK        bool      `json:"ok"`
	CheckedAt time.Time `json:"checked_at"`
	// Since is the start of the window searched for failed receipts and
	// late payments.
	Since      time.Time      `json:"since"`
	Reconciler reconcilerView `json:"reconciler"`
	// NeedsAction lists the kinds with findings, in a fixed order.
	NeedsAction []checkKind `json:"needs_action"`
	// Truncated: the window held more than maxCheckScan orders; the
	// oldest were not read.
	Truncated bool `json:"truncated,omitempty"`
}

// reconcilerView is the reconciler's lease as the check reads it.
type reconcilerView struct {
	Holder   string    `json:"holder,omitempty"`
	Since    time.Time `json:"since,omitzero"`
	PassedAt time.Time `json:"passed_at,omitzero"`
	// RenewedAt is when the lease was last written (the storage's time).
	RenewedAt time.Time `json:"renewed_at,omitzero"`
}

// checker gathers one check's findings.
type checker struct {
	app   *App
	now   time.Time
	found map[string]*checkKind
}

func (c *checker) add(kind string, it checkItem) {
	k := c.found[kind]
	if k == nil {
		k = &checkKind{Kind: kind, Hint: checkHints[kind], Items: []checkItem{}}
		c.found[kind] = k
	}
	k.Count++
	if len(k.Items) < maxCheckItems {
		k.Items = append(k.Items, it)
	}
}

// orderItem is a finding about order o.
func orderItem(o *Order, at time.Time, detail string) checkItem {
	return checkItem{OrderID: o.ID, Account: o.Account, State: o.State, Amount: FormatAmount(o.Amount), At: at, Detail: detail}
}

// check runs the morning check over the window from since.
func (a *App) check(ctx context.Context, since time.Time) (*checkReport, error) {
	c := &checker{app: a, now: a.now(), found: map[string]*checkKind{}}
	rep := &checkReport{CheckedAt: c.now, Since: since}
	var err error
	if rep.Reconciler, err = c.reconciler(ctx); err != nil {
		return nil, err
	}
	if err := c.indexed(ctx, a.orders.OpenIDs); err != nil {
		return nil, err
	}
	if err := c.indexed(ctx, a.orders.UnpaidIDs); err != nil {
		return nil, err
	}
	if rep.Truncated, err = c.window(ctx, since); err != nil {
		return nil, err
	}
	if err := c.events(ctx); err != nil {
		return nil, err
	}
	rep.NeedsAction = []checkKind{}
	for _, kind := range []string{checkReconcilerStalled, checkStuckCreating, checkReceiptFailed, checkUnderpaid,
		checkPaymentProblem, checkPaidLate, checkEventUndelivered} {
		if k := c.found[kind]; k != nil {
			rep.NeedsAction = append(rep.NeedsAction, *k)
		}
	}
	rep.OK = len(rep.NeedsAction) == 0
	return rep, nil
}

// stallAfter is how long without a pass the reconciler is stalled: five
// poll intervals, at least a minute (a pass may outlast a poll interval,
// and the lease carries its time a poll interval late).
func (a *App) stallAfter() time.Duration {
	return max(5*time.Duration(a.PollInterval), minStall)
}

// reconciler reads the lease and finds a stall: no holder, a lease not
// renewed for its term, or no pass completed for stallAfter.
func (c *checker) reconciler(ctx context.Context) (reconcilerView, error) {
	a := c.app
	rec, err := a.reconciler.lease.read(ctx)
	if err != nil {
		return reconcilerView{}, storageFailure{err}
	}
	v := reconcilerView{Holder: rec.Holder, Since: rec.Since, PassedAt: rec.PassedAt}
	info, err := a.storage.Stat(ctx, leaseKey)
	switch {
	case err == nil:
		v.RenewedAt = info.Modified
	case !errors.Is(err, fs.ErrNotExist):
		return v, storageFailure{err}
	}
	stall := a.stallAfter()
	last := rec.PassedAt
	if last.IsZero() {
		last = rec.Since // none yet since it took the lease
	}
	item := checkItem{At: rec.PassedAt}
	switch {
	case rec.Holder == "":
		item.Detail = "no instance holds the reconciler's lease: is the kassa app running?"
	case !v.RenewedAt.IsZero() && c.now.Sub(v.RenewedAt) > leaseTerm(time.Duration(a.PollInterval))+stall:
		item.Detail = "the lease of " + rec.Holder + " was last renewed " + ago(c.now, v.RenewedAt)
	case last.IsZero() || c.now.Sub(last) > stall:
		item.Detail = rec.Holder + " holds the lease but completed no pass for " + ago(c.now, last)
		if rec.PassedAt.IsZero() {
			item.Detail = rec.Holder + " holds the lease but completed no pass since it took it"
		}
	default:
		return v, nil
	}
	c.add(checkReconcilerStalled, item)
	return v, nil
}

// ago says how long before now t was.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return now.Sub(t).Round(time.Second).String() + " ago"
}

// indexed checks the orders of an index: open orders stuck being created,
// and unpaid orders the provider reported money or a problem for.
func (c *checker) indexed(ctx context.Context, list func(context.Context) ([]string, error)) error {
	ids, err := list(ctx)
	if err != nil {
		return err
	}
	return c.app.orders.each(ctx, ids, func(o *Order) error {
		c.unpaid(o)
		return nil
	})
}

// unpaid finds what is wrong with an order not paid: stuck in creating,
// underpaid, or a problem its provider reported.
func (c *checker) unpaid(o *Order) {
	switch {
	case o.State == OrderCreating:
		grace := defaultCreatingGrace
		if acc, ok := c.app.accounts[o.Account]; ok {
			grace = creatingGrace(acc)
		}
		if c.now.Sub(o.CreatedAt) > grace+leaseTerm(time.Duration(c.app.PollInterval)) {
			detail := "being created for " + ago(c.now, o.CreatedAt)
			if o.Error != "" {
				detail += ": " + o.Error
			}
			c.add(checkStuckCreating, orderItem(o, o.CreatedAt, detail))
		}
	case o.State == OrderPaid:
	case strings.HasPrefix(o.Error, problemNotePrefix):
		c.add(checkPaymentProblem, orderItem(o, o.UpdatedAt, o.Error+paidNote(o)))
	case o.PaidAmount.Valid && o.PaidAmount.Decimal.IsPositive():
		c.add(checkUnderpaid, orderItem(o, o.UpdatedAt, "the provider reports"+paidNote(o)))
	}
}

// paidNote says what the provider reported paid of an unpaid order.
func paidNote(o *Order) string {
	if !o.PaidAmount.Valid {
		return ""
	}
	return " (paid " + FormatAmount(o.PaidAmount.Decimal) + " of " + FormatAmount(o.Amount) + ")"
}

// window checks the orders created from since back by the time an unpaid
// order may still be paid, to now: failed receipts (of orders created
// since, or that failed since: a late payment's, a refund's), and orders
// paid late since; then the refunds of older orders that failed since,
// from the refund index (a refund started before the release that brought
// the index is found only among the orders of the window). It reports
// whether it stopped at maxCheckScan.
func (c *checker) window(ctx context.Context, since time.Time) (truncated bool, err error) {
	a := c.app
	from := since.Add(-time.Duration(a.KeepUnpaid) - time.Duration(a.OrderTTL))
	read, walked := 0, from
	err = a.orders.walkIndex(ctx, timeBound(from), "", true, func(name string) error {
		if read == maxCheckScan {
			truncated = true
			return errStopWalk
		}
		read++
		walked, _, _ = parseEntry(name)
		o, err := a.orders.entryOrder(ctx, name)
		if err != nil || o == nil || o.State != OrderPaid {
			return err
		}
		if o.PaidLate && !o.PaidAt.Before(since) {
			c.add(checkPaidLate, orderItem(o, o.PaidAt, "paid "+ago(c.now, o.PaidAt)+", after the order "+closedNote(o)))
		}
		for _, rec := range []*OrderReceipt{o.Receipt, o.Refund} {
			if rec != nil && rec.State == ReceiptFailed && (!o.CreatedAt.Before(since) || !rec.DoneAt.Before(since)) {
				c.failed(o, rec)
			}
		}
		return nil
	})
	if err != nil {
		return truncated, err
	}
	// The refunds of older orders that failed since, from the refund
	// index: an order created in the window as far as it was read (to its
	// oldest entry read, when it stopped at maxCheckScan) was read above.
	return truncated, a.orders.refunds(ctx, since.Add(-refundUnderway), c.now, func(o *Order) error {
		if !o.CreatedAt.Before(walked) || o.State != OrderPaid {
			return nil
		}
		if rec := o.Refund; rec != nil && rec.State == ReceiptFailed && !rec.DoneAt.Before(since) {
			c.failed(o, rec)
		}
		return nil
	})
}

// failed finds order o's receipt rec failed.
func (c *checker) failed(o *Order, rec *OrderReceipt) {
	c.add(checkReceiptFailed, orderItem(o, rec.DoneAt, rec.Type.String()+" receipt "+rec.OperationID+" failed: "+rec.Error))
}

// closedNote says how a paid-late order had closed, as far as its record
// tells.
func closedNote(o *Order) string {
	if o.ClosedAt.IsZero() {
		return "had closed"
	}
	return "had closed at " + o.ClosedAt.UTC().Format(time.RFC3339)
}

// events finds the events a receiver never got (the undelivered index),
// and those still retried after failing (the outbox, as the deliverer
// bounds it).
func (c *checker) events(ctx context.Context) error {
	a := c.app
	for _, prefix := range []string{undeliveredPrefix, outboxPrefix} {
		names, err := a.orders.listNames(ctx, prefix)
		if err != nil {
			return err
		}
		if len(names) > maxListedEvents {
			names = names[:maxListedEvents]
		}
		for _, id := range names {
			f, err := a.loadEvent(ctx, id)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return err
			}
			for _, t := range f.Targets {
				if t.State == deliveryFailed || t.State == deliveryPending && t.Attempts > 0 {
					c.add(checkEventUndelivered, checkItem{OrderID: f.OrderID, EventID: f.ID, At: f.CreatedAt,
						Detail: string(f.Type) + " to " + safeURL(t.URL) + ": " + t.State + " after " +
							pluralAttempts(t.Attempts) + lastErrorNote(t.LastError)})
					break
				}
			}
		}
	}
	return nil
}

func pluralAttempts(n int) string {
	if n == 1 {
		return "1 attempt"
	}
	return strconv.Itoa(n) + " attempts"
}

func lastErrorNote(e string) string {
	if e == "" {
		return ""
	}
	return " (" + e + ")"
}

// adminCheck answers GET /kassa/check?since=: the morning check. since is
// a duration back from now (168h, 7d) or a date or RFC 3339 time; default
// a week.
func (a *App) adminCheck(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	since := a.now().Add(-defaultCheckSince)
	if raw := q.Get("since"); raw != "" {
		if d, err := caddy.ParseDuration(raw); err == nil && d > 0 {
			since = a.now().Add(-d)
		} else if since, err = a.parseTimeParam(q, "since"); err != nil {
			return badRequest("bad_since", "since", "since is a duration back from now (168h, 7d), a date (2026-11-01) or an RFC 3339 time, got %s", quoteInput(raw))
		}
	}
	rep, err := a.check(r.Context(), since)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}
