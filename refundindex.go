package kassa

import (
	"context"
	"time"
)

// The refund index: one key per order per UTC month a refund (return)
// receipt of it was started in,
//
//	kassa/refunds/2026/05/<order id>  (the order id)
//
// so that the month's totals and the morning check find the refunds of a
// period by listing a few month directories, however long before it the
// orders were created (a warranty return comes months after the sale). A
// refund's first attempt writes an entry in its month; an attempt after a
// failed one (caddy kassa refund again) writes one in its own month. An
// entry is written before the order's record that starts the attempt
// (saveChange), so a crash leaves at worst an entry for a refund that
// never started, which readers skip (they read the record). Entries are
// never deleted: a paid order is never compacted.
//
// A store from a release before the index has no entries for the refunds
// started then: those are found only by the walks of the time index,
// among the orders created in their windows.
const refundsPrefix = "kassa/refunds"

// refundUnderway is how long before its end (done, or failed) a refund
// attempt is taken to have started at most: its send, the receipt
// service's queue, and the resends of an outcome that stayed unknown. The
// readers list the index months from this long before their period. It is
// the two months the totals look back for a late payment's order.
const refundUnderway = totalsLookback

// refundMonthLayout names a month's directory below refundsPrefix.
const refundMonthLayout = "2006/01"

// refundKey is the index entry of order id's refund started at at.
func refundKey(at time.Time, id string) string {
	return refundsPrefix + "/" + at.UTC().Format(refundMonthLayout) + "/" + id
}

// refundStarted reports whether a change from prev to o starts a refund
// attempt: the first, or one after a failed attempt (a new operation id).
func refundStarted(prev, o *Order) bool {
	return o.Refund != nil && (prev.Refund == nil || prev.Refund.OperationID != o.Refund.OperationID)
}

// indexRefund writes the index entry of order o's refund started at at.
func (s *OrderStore) indexRefund(ctx context.Context, o *Order, at time.Time) error {
	return s.storeKey(ctx, refundKey(at, o.ID), []byte(o.ID))
}

// refunds calls fn with each order the refund index holds in the UTC
// months from from's to to's, both included, once (an order with entries
// in several months is met in the first), reading one record at a time,
// until fn returns an error, which it returns. An entry whose record is
// missing is skipped.
func (s *OrderStore) refunds(ctx context.Context, from, to time.Time, fn func(*Order) error) error {
	from, to = from.UTC(), to.UTC()
	seen := map[string]bool{}
	for m := time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, time.UTC); !m.After(to); m = m.AddDate(0, 1, 0) {
		names, err := s.listNames(ctx, refundsPrefix+"/"+m.Format(refundMonthLayout))
		if err != nil {
			return err
		}
		var ids []string
		for _, id := range names {
			if ValidOrderID(id) && !seen[id] { // not a storage's temporary file, nor met already
				seen[id] = true
				ids = append(ids, id)
			}
		}
		if err := s.each(ctx, ids, fn); err != nil {
			return err
		}
	}
	return nil
}
