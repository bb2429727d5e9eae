package kassa

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"time"

	"go.uber.org/zap"
)

// Erasing buyers' contacts (erase_contacts_after): the personal-data law
// (152-FZ) keeps personal data no longer than its purpose needs, and a
// buyer's e-mail or phone serves the receipt, which the receipt service
// sent to them and the fiscal data operator keeps. The reconciler's
// compaction walks the time index from where its last walk stopped (the
// cursor) up to the orders created erase_contacts_after ago, and erases
// the contacts of each order whose receipt was done that long ago, through
// App.update, leaving ContactsErasedAt. An order not yet settled (open, a
// receipt under way or done too recently, an unpaid invoice still watched)
// stops the walk there, to be taken up again by a later pass; an order
// whose receipt (or refund's receipt) failed keeps its contacts, for the
// receipt to be sent again. A refund done counts from its done time.
//
// The walk never comes back to an order it went past; but a refund may
// bring contacts back to one whose contacts it erased (refundcontacts.go).
// So a second walk goes through the refund index (refundindex.go), month
// by month from where it last stopped (its own cursor) up to the month of
// the cutoff, and erases by the same rule the contacts of the orders
// refunded there; an order not settled yet stops it there too.
const (
	// contactsCursorKey holds the entry name of the last order the walk
	// went past: every order created up to it is erased or keeps its
	// contacts for good.
	contactsCursorKey = "kassa/contacts-erased-until"
	// refundContactsCursorKey holds the last refund-index entry
	// (YYYY/MM/<id>) the second walk went past: its order, and those of the
	// entries before it, are erased or keep their contacts for good.
	refundContactsCursorKey = "kassa/contacts-erased-refunds-until"
	// maxErasePerPass bounds the records one compaction reads for each walk.
	maxErasePerPass = 1000
	// minEraseContactsAfter is the shortest erase_contacts_after: a
	// receipt can be sent again to its buyer for a day at least.
	minEraseContactsAfter = 24 * time.Hour
)

// contactsVerdict is what the walk does with an order.
type contactsVerdict int

const (
	contactsPass  contactsVerdict = iota // nothing to erase, ever: go past it
	contactsErase                        // erase its contacts, and go past it
	contactsWait                         // not settled yet: stop the walk before it
)

// contactsVerdictOf judges order o for erasure at now: the contacts of an
// order settled before cutoff are erasable; one closed unpaid is watched
// for a late payment for keepUnpaid.
func contactsVerdictOf(o *Order, now, cutoff time.Time, keepUnpaid time.Duration) contactsVerdict {
	switch {
	case o.Email == "" && o.Phone == "":
		return contactsPass
	case o.Open():
		return contactsWait
	case o.State.closedUnpaid():
		// Paid late, it gets a receipt, which needs the contacts: wait while
		// its invoice may still be paid and the order is not compacted.
		if o.watched() && now.Sub(o.ClosedAt) < keepUnpaid {
			return contactsWait
		}
		return contactsPass
	case o.State != OrderPaid:
		return contactsPass
	}
	if o.Refund != nil && o.Refund.State == ReceiptFailed {
		return contactsPass // as a failed sale receipt: kept to be sent again
	}
	settled := o.PaidAt
	if rec := o.Receipt; rec != nil {
		if rec.State != ReceiptDone {
			return contactsPass // failed: kept to be sent again
		}
		settled = rec.DoneAt
	}
	if rec := o.Refund; rec != nil && rec.DoneAt.After(settled) {
		settled = rec.DoneAt // done: its receipt went to them too
	}
	if settled.After(cutoff) {
		return contactsWait
	}
	return contactsErase
}

// eraseContacts erases the contacts of the orders due, at most
// maxErasePerPass records read, and returns how many it erased.
func (a *App) eraseContacts(ctx context.Context) (int, error) {
	after := time.Duration(a.EraseContactsAfter)
	if after <= 0 {
		return 0, nil
	}
	now := a.now()
	cutoff := now.Add(-after)
	cursor, err := a.storage.Load(ctx, contactsCursorKey)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, storageFailure{err}
	}
	lo := ""
	if _, _, ok := parseEntry(string(cursor)); ok {
		lo = string(cursor) + "\x00" // just past it
	}
	erased, read, last := 0, 0, ""
	err = a.orders.walkIndex(ctx, lo, timeBound(cutoff), false, func(name string) error {
		if read == maxErasePerPass {
			return errStopWalk
		}
		read++
		o, err := a.orders.entryOrder(ctx, name)
		if err != nil {
			return err
		}
		if o != nil {
			switch contactsVerdictOf(o, now, cutoff, time.Duration(a.KeepUnpaid)) {
			case contactsWait:
				return errStopWalk
			case contactsErase:
				if err := a.eraseOrderContacts(ctx, o.ID, cutoff); err != nil {
					return err
				}
				erased++
			}
		}
		last = name
		return nil
	})
	if last != "" {
		if serr := a.orders.storeKey(ctx, contactsCursorKey, []byte(last)); err == nil {
			err = serr
		}
	}
	if err != nil {
		return erased, err
	}
	n, err := a.eraseRefundContacts(ctx, now, cutoff)
	return erased + n, err
}

// eraseRefundContacts is the second walk: through the refund index's
// entries after its cursor, month by month up to cutoff's (UTC), at most
// maxErasePerPass records read. The cursor (YYYY/MM/<id>, the last entry
// passed) moves only through months that ended before cutoff (no refund
// can be started in them any more), past entries whose orders were erased
// or let pass.
func (a *App) eraseRefundContacts(ctx context.Context, now, cutoff time.Time) (erased int, err error) {
	cursor, err := a.storage.Load(ctx, refundContactsCursorKey)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, storageFailure{err}
	}
	after := string(cursor)
	if len(after) < len(refundMonthLayout) {
		after = "" // none yet: from the first month
	}
	months, err := a.refundMonths(ctx, after[:min(len(after), len(refundMonthLayout))], cutoff)
	if err != nil {
		return 0, err
	}
	read, passed := 0, ""
	defer func() {
		if passed != "" {
			if serr := a.orders.storeKey(ctx, refundContactsCursorKey, []byte(passed)); err == nil {
				err = serr
			}
		}
	}()
	for _, month := range months {
		start, _ := time.Parse(refundMonthLayout, month)
		closed := !start.AddDate(0, 1, 0).After(cutoff)
		ids, err := a.orders.listNames(ctx, refundsPrefix+"/"+month)
		if err != nil {
			return erased, err
		}
		for _, id := range ids {
			name := month + "/" + id
			if !ValidOrderID(id) || name <= after {
				continue
			}
			if read == maxErasePerPass {
				return erased, nil
			}
			read++
			o, err := a.orders.Load(ctx, id)
			switch {
			case errors.Is(err, ErrOrderNotFound):
			case err != nil:
				return erased, err
			default:
				switch contactsVerdictOf(o, now, cutoff, time.Duration(a.KeepUnpaid)) {
				case contactsWait:
					return erased, nil
				case contactsErase:
					if err := a.eraseOrderContacts(ctx, o.ID, cutoff); err != nil {
						return erased, err
					}
					erased++
				}
			}
			if closed {
				passed = name
			}
		}
		if !closed {
			break // the cutoff's month: refunds may still start in it
		}
	}
	return erased, nil
}

// refundMonths lists the refund index's months (YYYY/MM) from from (all,
// when empty) up to cutoff's, oldest first.
func (a *App) refundMonths(ctx context.Context, from string, cutoff time.Time) ([]string, error) {
	last := cutoff.UTC().Format(refundMonthLayout)
	years, err := a.orders.listNames(ctx, refundsPrefix)
	if err != nil {
		return nil, err
	}
	var months []string
	for _, year := range years {
		if len(year) != 4 || year > last[:4] || year < from[:min(len(from), 4)] {
			continue // not a year's directory, or one wholly after cutoff or before from
		}
		names, err := a.orders.listNames(ctx, refundsPrefix+"/"+year)
		if err != nil {
			return nil, err
		}
		for _, m := range names {
			month := year + "/" + m
			if _, err := time.Parse(refundMonthLayout, month); err == nil && month >= from && month <= last {
				months = append(months, month)
			}
		}
	}
	return months, nil
}

// eraseOrderContacts erases order id's e-mail and phone, if it is still
// erasable, with the fingerprint of its request, which hashes them, and
// then from the bodies of its events. A repeat of its key then answers
// with the order, as for an order made before fingerprints.
func (a *App) eraseOrderContacts(ctx context.Context, id string, cutoff time.Time) error {
	o, err := a.update(ctx, id, func(o *Order) bool {
		if contactsVerdictOf(o, a.now(), cutoff, time.Duration(a.KeepUnpaid)) != contactsErase {
			return false
		}
		o.Email, o.Phone, o.Fingerprint, o.ContactsErasedAt = "", "", "", a.now()
		return true
	})
	if err != nil || o.ContactsErasedAt.IsZero() {
		return err
	}
	for _, ref := range o.Events {
		if err := a.eraseEventContacts(ctx, ref.ID); err != nil {
			return err
		}
	}
	return nil
}

// eraseEventContacts erases the buyer's contacts from an event's body, as
// a later redelivery then posts it.
func (a *App) eraseEventContacts(ctx context.Context, id string) error {
	return a.withStorageLock(ctx, "kassa/event/"+id, func() error {
		f, err := a.loadEvent(ctx, id)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var body eventBody
		if err := json.Unmarshal(f.Body, &body); err != nil {
			a.logger.Warn("erasing contacts: an event's body does not decode; left as it is", zap.String("event_id", id), zap.Error(err))
			return nil
		}
		if body.Order.Email == "" && body.Order.Phone == "" {
			return nil
		}
		body.Order.Email, body.Order.Phone = "", ""
		if f.Body, err = json.Marshal(body); err != nil {
			return err
		}
		return a.storeEvent(ctx, f)
	})
}
