package kassa

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The time-ordered index of orders: one key per order, named for its
// creation time and id, in a directory per UTC hour,
//
//	kassa/created/2026/12/06/00/20261206T001234.123456789Z_<id>  (the order id)
//
// so that entry names sort as the orders were created, and a page or an
// export lists only the hours it needs: on the file system each hour is a
// directory, and the Redis storage keeps each directory as its own sorted
// set. Empty hour directories may stay behind compaction; they cost one
// listing when a walk passes them.
//
// An entry is written before the order's record (Create, Save), and
// deleted after it (deleteOrder), so a crash leaves at worst an entry
// whose record is missing, which readers skip, and never a record the
// index misses. An entry counts only while the record it names exists and
// was created at the entry's time: an id created again after a crash (a
// buyer's retry with the same key, at a new time) leaves its first entry
// behind, skipped the same way.
const (
	createdPrefix = "kassa/created"
	// createdIndexed marks the index complete: Backfill wrote an entry for
	// every order the previous release stored without one. Until it
	// exists, readers scan every record instead.
	createdIndexed = "kassa/created.indexed"
)

// entryTimeLayout is an entry's creation time: fixed width, in UTC, to the
// nanosecond, so that names sort as times do.
const entryTimeLayout = "20060102T150405.000000000Z"

// entryNameLen is the length of an entry's name: its time, _, its id.
const entryNameLen = len(entryTimeLayout) + 1 + orderIDLen

// entryName is the index entry name of an order created at at.
func entryName(at time.Time, id string) string {
	return at.UTC().Format(entryTimeLayout) + "_" + id
}

// timeBound is the lowest entry name of an order created at t or later.
// A time outside years 0 to 9999 in UTC (which an offset can reach from
// an RFC 3339 time) is taken at the nearer end, where names still sort as
// times do.
func timeBound(t time.Time) string {
	if first := time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC); t.Before(first) {
		t = first
	}
	if last := time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC); t.After(last) {
		t = last
	}
	return t.UTC().Format(entryTimeLayout)
}

// createdKey is the storage key of an index entry: the name in its hour's
// directory, kassa/created/YYYY/MM/DD/HH.
func createdKey(name string) string {
	return createdPrefix + "/" + name[0:4] + "/" + name[4:6] + "/" + name[6:8] + "/" + name[9:11] + "/" + name
}

// orderEntry is the index entry name of order o.
func orderEntry(o *Order) string { return entryName(o.CreatedAt, o.ID) }

// parseEntry reads an entry name: its creation time and order id. Any
// other name (a storage's temporary file) is not an entry.
func parseEntry(name string) (at time.Time, id string, ok bool) {
	if len(name) != entryNameLen || name[len(entryTimeLayout)] != '_' {
		return time.Time{}, "", false
	}
	stamp, id := name[:len(entryTimeLayout)], name[len(entryTimeLayout)+1:]
	at, err := time.Parse(entryTimeLayout, stamp)
	if err != nil || at.Format(entryTimeLayout) != stamp || !ValidOrderID(id) {
		return time.Time{}, "", false
	}
	return at, id, true
}

// The index's directory levels below kassa/created, and how much of an
// entry name each one's directories fix: a year's directory 2026 holds the
// names starting 2026, its month 12 those starting 202612, and so on to an
// hour, 20261206T00.
var createdLevels = []struct {
	digits int    // the directory name's length
	sep    string // what comes before it in an entry name
}{{4, ""}, {2, ""}, {2, ""}, {2, "T"}}

// indexComplete reports whether the marker of a complete index exists.
func (s *OrderStore) indexComplete(ctx context.Context) (bool, error) {
	_, err := s.storage.Stat(ctx, createdIndexed)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kassa: checking %s: %w", createdIndexed, storageFailure{err})
	}
	return true, nil
}

// errStopWalk ends a walk early; walkIndex returns nil for it.
var errStopWalk = errors.New("stop the walk")

// walkIndex calls visit with every entry name in [lo, hi) (an empty bound
// is open), newest first when desc, oldest first otherwise, until visit
// returns an error (errStopWalk to stop quietly). With a complete index
// it lists only the hours the range needs, and holds one hour's names at a
// time; without (an upgrade whose Backfill has not finished) it reads
// every record, the cost of the previous release's listing.
func (s *OrderStore) walkIndex(ctx context.Context, lo, hi string, desc bool, visit func(name string) error) error {
	complete, err := s.indexComplete(ctx)
	if err != nil {
		return err
	}
	if !complete {
		err = s.walkScan(ctx, lo, hi, desc, visit)
	} else {
		err = s.walkDir(ctx, createdPrefix, "", 0, lo, hi, desc, visit)
	}
	if errors.Is(err, errStopWalk) {
		return nil
	}
	return err
}

// walkDir walks the index directory dir, whose entries' names start with
// prefix, at level (0: the years; len(createdLevels): an hour's entries).
func (s *OrderStore) walkDir(ctx context.Context, dir, prefix string, level int, lo, hi string, desc bool, visit func(string) error) error {
	names, err := s.listNames(ctx, dir)
	if err != nil {
		return err
	}
	if desc {
		slices.Reverse(names)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		if level == len(createdLevels) {
			if _, _, ok := parseEntry(name); ok && strings.HasPrefix(name, prefix) && inRange(name, lo, hi) {
				if err := visit(name); err != nil {
					return err
				}
			}
			continue
		}
		l := createdLevels[level]
		if len(name) != l.digits || strings.Trim(name, "0123456789") != "" {
			continue // not an index directory
		}
		sub := prefix + l.sep + name
		if lo != "" && sub < lo[:min(len(sub), len(lo))] || hi != "" && sub > hi[:min(len(sub), len(hi))] {
			continue // every name under it is out of range
		}
		if err := s.walkDir(ctx, dir+"/"+name, sub, level+1, lo, hi, desc, visit); err != nil {
			return err
		}
	}
	return nil
}

// listNames lists the last components of the keys in dir (storage
// backends differ in how they spell listed keys), sorted; a missing dir
// has none.
func (s *OrderStore) listNames(ctx context.Context, dir string) ([]string, error) {
	keys, err := s.storage.List(ctx, dir, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("kassa: listing %s: %w", dir, storageFailure{err})
	}
	names := make([]string, 0, len(keys))
	for _, k := range keys {
		names = append(names, path.Base(k))
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

func inRange(name, lo, hi string) bool {
	return (lo == "" || name >= lo) && (hi == "" || name < hi)
}

// walkScan is walkIndex without the index: it reads every record to learn
// each order's entry name, keeps the names (not the orders) and walks them.
func (s *OrderStore) walkScan(ctx context.Context, lo, hi string, desc bool, visit func(string) error) error {
	var names []string
	err := s.scan(ctx, func(o *Order) error {
		if name := orderEntry(o); inRange(name, lo, hi) {
			names = append(names, name)
		}
		return nil
	})
	if err != nil {
		return err
	}
	slices.Sort(names)
	if desc {
		slices.Reverse(names)
	}
	for _, name := range names {
		if err := visit(name); err != nil {
			return err
		}
	}
	return nil
}

// scan calls fn with every stored order, reading every record: those
// under kassa/orders and those being created (in the open index). An order
// deleted meanwhile is skipped.
func (s *OrderStore) scan(ctx context.Context, fn func(*Order) error) error {
	keys, err := s.storage.List(ctx, ordersPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("kassa: listing %s: %w", ordersPrefix, storageFailure{err})
	}
	var ids []string
	for _, k := range keys {
		if id, ok := strings.CutSuffix(path.Base(k), ".json"); ok && ValidOrderID(id) {
			ids = append(ids, id)
		}
	}
	open, err := s.OpenIDs(ctx)
	if err != nil {
		return err
	}
	ids = append(ids, open...)
	slices.Sort(ids)
	return s.each(ctx, slices.Compact(ids), fn)
}

// each calls fn with each of the orders ids names, in their order, leaving
// out those whose record is gone (compacted meanwhile).
func (s *OrderStore) each(ctx context.Context, ids []string, fn func(*Order) error) error {
	for _, id := range ids {
		o, err := s.Load(ctx, id)
		if errors.Is(err, ErrOrderNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}

// entryOrder reads the order an entry names, or nil when the entry does
// not count: its record is missing, or was created at another time.
func (s *OrderStore) entryOrder(ctx context.Context, name string) (*Order, error) {
	at, id, _ := parseEntry(name)
	o, err := s.Load(ctx, id)
	if errors.Is(err, ErrOrderNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !o.CreatedAt.Equal(at) {
		return nil, nil
	}
	return o, nil
}

// PageQuery asks OrderStore.Page for one page of orders.
type PageQuery struct {
	// Before is the cursor the previous page returned (Page's next); empty
	// for the first page.
	Before string
	// From and To bound the orders' creation time: From inclusive, To
	// exclusive; a zero time sets no bound.
	From, To time.Time
	// State, when set, keeps only the orders in this state.
	State OrderState
	// Limit is the most orders the page holds: 1 to 1000, default 50.
	Limit int
}

// Page limits.
const (
	defaultPageLimit = 50
	maxPageLimit     = 1000
	// pageScanFactor bounds the records a filtered page reads: this many
	// times its limit, and at least minPageScan.
	pageScanFactor = 10
	minPageScan    = 1000
)

// Page returns one page of orders, newest first (by creation time, then
// by id, both descending), and the cursor of the next page, empty when
// there is none. It walks the time index from Before (or To) back to
// From, and reads only the records of the orders it returns and of those
// it skips for State; its cost grows with the page, not with the history.
// A filtered page reads at most ten times its limit (at least 1000)
// records: it may then hold fewer than Limit orders, or none, while next
// is set, and the caller goes on from next. A cursor stays right across
// inserts: an order created after it never shifts the pages that follow.
//
// A malformed cursor is a 400 *RequestError (bad_cursor), an unknown state
// bad_state, a limit out of range bad_limit.
func (s *OrderStore) Page(ctx context.Context, q PageQuery) (orders []*Order, next string, err error) {
	if q.State != "" && !q.State.Valid() {
		return nil, "", badRequest("bad_state", "state", "unknown order state %q", q.State)
	}
	limit := q.Limit
	if limit == 0 {
		limit = defaultPageLimit
	}
	if limit < 1 || limit > maxPageLimit {
		return nil, "", badRequest("bad_limit", "limit", "limit is a whole number from 1 to %d", maxPageLimit)
	}
	lo, hi := "", ""
	if !q.From.IsZero() {
		lo = timeBound(q.From)
	}
	if !q.To.IsZero() {
		hi = timeBound(q.To)
	}
	if q.Before != "" {
		before, err := parseCursor(q.Before)
		if err != nil {
			return nil, "", err
		}
		if hi == "" || before < hi {
			hi = before
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	budget := max(pageScanFactor*limit, minPageScan)
	scanned, last := 0, ""
	err = s.walkIndex(ctx, lo, hi, true, func(name string) error {
		if len(orders) == limit || scanned == budget {
			next = newCursor(last) // there is more, from here on
			return errStopWalk
		}
		scanned++
		last = name
		o, err := s.entryOrder(ctx, name)
		if err != nil || o == nil {
			return err
		}
		if q.State == "" || o.State == q.State {
			orders = append(orders, o)
		}
		return nil
	})
	if err != nil {
		return nil, "", err
	}
	return orders, next, nil
}

// Range calls fn with every order created in [from, to) (a zero time is
// no bound), oldest first, reading one record at a time, until fn returns
// an error, which Range returns. It is the accountant's export: its memory
// stays flat however many orders the range holds.
func (s *OrderStore) Range(ctx context.Context, from, to time.Time, fn func(*Order) error) error {
	lo, hi := "", ""
	if !from.IsZero() {
		lo = timeBound(from)
	}
	if !to.IsZero() {
		hi = timeBound(to)
	}
	return s.walkIndex(ctx, lo, hi, false, func(name string) error {
		o, err := s.entryOrder(ctx, name)
		if err != nil || o == nil {
			return err
		}
		return fn(o)
	})
}

// newCursor is the opaque cursor of a page that ends at entry name.
func newCursor(name string) string { return base64.RawURLEncoding.EncodeToString([]byte(name)) }

// parseCursor reads a cursor newCursor made, back into its entry name.
func parseCursor(cursor string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(cursor)
	if _, _, ok := parseEntry(string(b)); err != nil || !ok {
		return "", badRequest("bad_cursor", "before", "before is not a cursor a page of orders returned")
	}
	return string(b), nil
}

// indexCreated writes order o's index entry.
func (s *OrderStore) indexCreated(ctx context.Context, o *Order) error {
	return s.storeKey(ctx, createdKey(orderEntry(o)), []byte(o.ID))
}

// Backfill gives every stored order its index entry, once: the orders the
// previous release stored have none. It reads every record, writes each
// entry (a write that is there already is written again, the same), and
// then the marker that makes readers use the index; with the marker there
// it does nothing. Two instances may run it at once: they write the same
// entries. The app runs it in the background at start; it returns how
// many orders it indexed.
//
// An instance of the previous release still creating orders after the
// marker was written (a rolling upgrade) leaves them out of the index:
// delete kassa/created.indexed once every instance runs this release, and
// the next start indexes them.
func (s *OrderStore) Backfill(ctx context.Context) (int, error) {
	switch complete, err := s.indexComplete(ctx); {
	case err != nil:
		return 0, err
	case complete:
		return 0, nil
	}
	n := 0
	err := s.scan(ctx, func(o *Order) error {
		n++
		return s.indexCreated(ctx, o)
	})
	if err != nil {
		return n, err
	}
	return n, s.storeKey(ctx, createdIndexed, []byte(s.now().Format(time.RFC3339Nano)))
}

// backfill runs OrderStore.Backfill once in the background of a started
// app, and stops with it; the next config's app runs it again if it did
// not finish.
type backfill struct {
	app    *App
	cancel context.CancelFunc
	done   chan struct{}
}

func (b *backfill) start() {
	ctx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan struct{})
	go func() {
		defer close(b.done)
		began := time.Now()
		n, err := b.app.orders.Backfill(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			b.app.logger.Error("indexing orders by time: operator lists read every order until the next start finishes it", zap.Int("indexed", n), zap.Error(err))
		case err == nil && n > 0:
			b.app.logger.Info("indexed the stored orders by time", zap.Int("orders", n), zap.Duration("took", time.Since(began)))
		}
	}()
}

// stop cancels the backfill and waits for it.
func (b *backfill) stop() {
	if b.cancel == nil {
		return
	}
	b.cancel()
	<-b.done
}
