package kassa

import (
	"math"
	"sync"
	"time"
)

// The reconciler's schedule: when each order is next due. A buyer pays
// within minutes of opening the payment page, so an order is checked every
// pass while it is young, and less often as it ages; an order is always
// checked in its last poll interval and at its expiry. The schedule lives
// in memory: an order it does not know (new, or after a restart) is due at
// once, and what it learns from that check sets the next.

// youngPolls is how many poll intervals an order counts as young: until
// then it is checked every pass.
const youngPolls = 30

// maxOpenInterval is the longest an open order waits between checks. An old
// invoice is rarely paid, but may be, and its buyer may not come back to
// poll: 5 minutes keeps such a payment's notice within minutes, while 5 000
// old orders cost about 17 status calls a second, a fifth of what 16
// workers make of a provider that answers in 200 ms.
const maxOpenInterval = 5 * time.Minute

// checkInterval is how long an order of an age waits between checks: a
// poll interval while it is young, then a thirtieth of its age, at most
// most (and never less than a poll interval).
func checkInterval(age, poll, most time.Duration) time.Duration {
	return min(max(age/youngPolls, poll), max(most, poll))
}

// watchInterval is how long an order that closed unpaid, of an age, waits
// between the reconciler's questions about it: as an open order's, at
// most an hour.
func watchInterval(age, poll time.Duration) time.Duration {
	return checkInterval(age, poll, time.Hour)
}

// slot is what the schedule knows of one order: when it was last checked
// and is next due, and the times that say how young it is.
type slot struct {
	checked, due time.Time
	// since is when the order's clock started: its creation, or, for a
	// paid order with a receipt under way, the receipt's last send.
	since   time.Time
	created time.Time
	// expires is a pending order's expiry (zero for others).
	expires time.Time
	// account is the payment account whose provider the order's next
	// check calls: the pool's group for its jobs (pool.go); "" for a paid
	// order, whose receipt is not held back by its account's rate limit.
	account string
	// always: due every pass whatever its age (an order being created, or
	// a receipt not yet sent).
	always bool
	// never: an order that closed unpaid and can no longer be paid.
	never bool
}

// young reports whether the order is due every pass at now: young, being
// created, or in its last poll interval or past its expiry.
func (s slot) young(now time.Time, poll time.Duration) bool {
	return s.always || now.Sub(s.since) < youngPolls*poll ||
		(!s.expires.IsZero() && !now.Before(s.expires.Add(-poll)))
}

// priority orders due work: lower class first (a buyer's nudge, then an
// order at its expiry, then the other open orders, then the watch of
// orders closed unpaid); within a class the most overdue,
// counted in missed checks (its time since the last check over its
// interval, so that a young order one pass late goes before an old one a
// minute late), then the youngest.
type priority struct {
	class   int
	late    float64
	created time.Time
}

// The classes of priority.
const (
	classNudge = iota
	classExpiring
	classDue
	// classWatch is the watch of orders that closed unpaid: a late payment
	// is rarer than a payment on an open order, and a flood of unpaid
	// orders (each watched for keep_unpaid when its invoice cannot be
	// cancelled) must not delay the open orders' checks.
	classWatch
)

// before reports whether p goes before q.
func (p priority) before(q priority) bool {
	if p.class != q.class {
		return p.class < q.class
	}
	if p.late != q.late {
		return p.late > q.late
	}
	return p.created.After(q.created)
}

// schedule holds the slots of the open orders and of the orders that
// closed unpaid. It is shared by the pass and the pool's workers.
type schedule struct {
	poll time.Duration

	mu     sync.Mutex
	open   map[string]slot
	closed map[string]slot
}

func newSchedule(poll time.Duration) *schedule {
	return &schedule{poll: poll, open: make(map[string]slot), closed: make(map[string]slot)}
}

// dueOpen reports whether open order id is due at now, and its priority.
func (s *schedule) dueOpen(id string, now time.Time) (priority, bool) {
	s.mu.Lock()
	sl, known := s.open[id]
	s.mu.Unlock()
	if !known {
		return priority{class: classDue, late: math.Inf(1)}, true
	}
	return s.due(sl, now)
}

// dueClosed reports whether order id, closed unpaid, is due at now for a
// look at its payment, and its priority.
func (s *schedule) dueClosed(id string, now time.Time) (priority, bool) {
	s.mu.Lock()
	sl, known := s.closed[id]
	s.mu.Unlock()
	switch {
	case !known:
		return priority{class: classWatch, late: math.Inf(1)}, true
	case sl.never:
		return priority{}, false
	}
	p, due := s.due(sl, now)
	p.class = classWatch
	return p, due
}

// due reports whether the order of slot sl is due at now (young, or its
// time has come), and its priority.
func (s *schedule) due(sl slot, now time.Time) (priority, bool) {
	if !sl.young(now, s.poll) && now.Before(sl.due) {
		return priority{}, false
	}
	p := priority{class: classDue, created: sl.created}
	if !sl.expires.IsZero() && !now.Before(sl.expires.Add(-s.poll)) {
		p.class = classExpiring
	}
	if every := sl.due.Sub(sl.checked); every > 0 {
		p.late = float64(now.Sub(sl.checked)) / float64(every)
	}
	return p, true
}

// checkedOpen records that open order id was checked at now and is as o
// (nil: gone or unreadable), and schedules its next check.
func (s *schedule) checkedOpen(id string, o *Order, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if o == nil || !o.Open() {
		delete(s.open, id)
		return
	}
	sl := slot{checked: now, since: o.CreatedAt, created: o.CreatedAt}
	switch o.State {
	case OrderCreating:
		sl.always, sl.account = true, o.Account
	case OrderPending:
		sl.expires, sl.account = o.ExpiresAt, o.Account
	default:
		// Paid (or closed) with a receipt under way: young from its last
		// send; never sent, due every pass.
		sl.since = time.Time{}
		for _, rec := range []*OrderReceipt{o.Receipt, o.Refund} {
			switch {
			case rec == nil || !rec.underway():
			case rec.SentAt.IsZero():
				sl.always = true
			case rec.SentAt.After(sl.since):
				sl.since = rec.SentAt
			}
		}
	}
	sl.due = now.Add(checkInterval(now.Sub(sl.since), s.poll, maxOpenInterval))
	if !sl.expires.IsZero() {
		// Checked once more just before expiry, and at expiry.
		last := sl.expires.Add(-s.poll)
		switch {
		case now.Before(last) && sl.due.After(last):
			sl.due = last
		case !now.Before(last) && sl.due.After(sl.expires):
			sl.due = sl.expires
		}
	}
	s.open[id] = sl
}

// watchedClosed records that order id, closed unpaid and as o, was looked
// at now: watch says whether it may still be paid.
func (s *schedule) watchedClosed(id string, o *Order, watch bool, now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !watch {
		s.closed[id] = slot{never: true}
		return
	}
	s.closed[id] = slot{checked: now, since: o.CreatedAt, created: o.CreatedAt, account: o.Account,
		due: now.Add(watchInterval(now.Sub(o.CreatedAt), s.poll))}
}

// account is the payment account of order id as its last check saw it, or
// "" for an order the schedule does not know.
func (s *schedule) account(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sl, ok := s.open[id]; ok {
		return sl.account
	}
	return s.closed[id].account
}

// forgetClosed drops what the schedule knows of closed order id (gone,
// or its payment could not be stored: it is looked at again next pass).
func (s *schedule) forgetClosed(id string) {
	s.mu.Lock()
	delete(s.closed, id)
	s.mu.Unlock()
}

// keep drops the slots of orders no longer in the indexes: closed, or
// compacted.
func (s *schedule) keep(open, closed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range []struct {
		slots map[string]slot
		ids   []string
	}{{s.open, open}, {s.closed, closed}} {
		listed := make(map[string]bool, len(m.ids))
		for _, id := range m.ids {
			listed[id] = true
		}
		for id := range m.slots {
			if !listed[id] {
				delete(m.slots, id)
			}
		}
	}
}

// lateness is how long past its due time at now the most overdue check of
// an open order or an order closed unpaid is: about 0 while the reconciler
// keeps up.
func (s *schedule) lateness(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var late time.Duration
	for _, slots := range []map[string]slot{s.open, s.closed} {
		for _, sl := range slots {
			if !sl.never {
				late = max(late, now.Sub(sl.due))
			}
		}
	}
	return late
}

// tally counts the listed open orders the schedule knows as open, and the
// oldest of them.
func (s *schedule) tally(open []string) openTally {
	s.mu.Lock()
	defer s.mu.Unlock()
	var t openTally
	for _, id := range open {
		sl, ok := s.open[id]
		if !ok {
			continue
		}
		t.count++
		if t.oldest.IsZero() || sl.created.Before(t.oldest) {
			t.oldest = sl.created
		}
	}
	return t
}
