package kassa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// indexedStore is a file-system order store whose time index is complete
// (a fresh store, as Backfill leaves it).
func indexedStore(t testing.TB) (*OrderStore, *testClock) {
	t.Helper()
	s, clock := fileOrderStore(t)
	if _, err := s.Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, clock
}

// createAt creates an order in state, created at at.
func createAt(t testing.TB, s *OrderStore, at time.Time, state OrderState) *Order {
	t.Helper()
	o := &Order{ID: NewOrderID(), State: state, CreatedAt: at}
	if err := s.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return o
}

func ids(orders []*Order) []string {
	out := make([]string, len(orders))
	for i, o := range orders {
		out[i] = o.ID
	}
	return out
}

// newestFirst is the ids of orders in Page's order.
func newestFirst(orders []*Order) []string {
	sorted := slices.Clone(orders)
	slices.SortFunc(sorted, func(a, b *Order) int { return strings.Compare(orderEntry(b), orderEntry(a)) })
	return ids(sorted)
}

// pageAll reads every page of q, checking that none holds more than its
// limit, and returns the ids in order and how many pages it took.
func pageAll(t *testing.T, s *OrderStore, q PageQuery) (all []string, pages int) {
	t.Helper()
	for {
		orders, next, err := s.Page(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if q.Limit > 0 && len(orders) > q.Limit {
			t.Fatalf("page %d holds %d orders, over its limit %d", pages, len(orders), q.Limit)
		}
		all = append(all, ids(orders)...)
		if next == "" {
			return all, pages
		}
		if pages > 10000 {
			t.Fatal("paging does not end")
		}
		q.Before = next
	}
}

func TestOrderIndexKeys(t *testing.T) {
	at := time.Date(2026, 12, 6, 0, 12, 34, 123456789, time.FixedZone("MSK", 3*3600))
	id := strings.Repeat("A", 22)
	name := entryName(at, id)
	if want := "20261205T211234.123456789Z_" + id; name != want {
		t.Errorf("entryName = %s, want %s", name, want)
	}
	if key, want := createdKey(name), "kassa/created/2026/12/05/21/"+name; key != want {
		t.Errorf("createdKey = %s, want %s", key, want)
	}
	if got, gotID, ok := parseEntry(name); !ok || !got.Equal(at) || gotID != id {
		t.Errorf("parseEntry(%s) = %v, %s, %v", name, got, gotID, ok)
	}
	for _, bad := range []string{"", name + "x", strings.Replace(name, "_", "-", 1), "20261305T211234.123456789Z_" + id,
		"20261205T211234.123456789Z_" + strings.Repeat("A", 21) + ".", ".tmp-" + name[5:]} {
		if _, _, ok := parseEntry(bad); ok {
			t.Errorf("parseEntry(%q) took it for an entry", bad)
		}
	}
}

// TestOrderIndexPage: pages newest first, across hours, days and years,
// from a cursor, within from/to, by state; the state filter's scan bound.
func TestOrderIndexPage(t *testing.T) {
	ctx := context.Background()
	s, _ := indexedStore(t)
	base := time.Date(2025, 12, 31, 22, 0, 0, 0, time.UTC)
	var all []*Order
	states := []OrderState{OrderPaid, OrderPending, OrderExpired, OrderCreating, OrderPaid}
	for i := range 60 {
		// Every 17 minutes: the orders cross hours, a day and a year.
		all = append(all, createAt(t, s, base.Add(time.Duration(i)*17*time.Minute), states[i%len(states)]))
	}
	// Two orders of one instant are ordered by id, descending.
	tie := base.Add(5 * time.Hour)
	all = append(all, createAt(t, s, tie, OrderPaid), createAt(t, s, tie, OrderPaid))
	want := newestFirst(all)

	got, pages := pageAll(t, s, PageQuery{Limit: 7})
	if !slices.Equal(got, want) {
		t.Errorf("paging by 7:\n got %v\nwant %v", got, want)
	}
	if pages != (len(want)+6)/7 {
		t.Errorf("%d orders took %d pages of 7", len(want), pages)
	}
	if got, _ := pageAll(t, s, PageQuery{}); !slices.Equal(got, want) {
		t.Errorf("one page of the default limit:\n got %v\nwant %v", got, want)
	}

	// from is inclusive and to exclusive, to the nanosecond.
	from, to := all[10].CreatedAt, all[20].CreatedAt
	var inRange []*Order
	for _, o := range all {
		if !o.CreatedAt.Before(from) && o.CreatedAt.Before(to) {
			inRange = append(inRange, o)
		}
	}
	if got, _ := pageAll(t, s, PageQuery{From: from, To: to, Limit: 3}); !slices.Equal(got, newestFirst(inRange)) {
		t.Errorf("from %v to %v:\n got %v\nwant %v", from, to, got, newestFirst(inRange))
	}
	if got, _ := pageAll(t, s, PageQuery{From: from.Add(time.Nanosecond), To: to.Add(time.Nanosecond), Limit: 100}); slices.Contains(got, all[10].ID) || !slices.Contains(got, all[20].ID) {
		t.Errorf("a nanosecond later, the range still holds order 10 or misses order 20: %v", got)
	}

	var paid []*Order
	for _, o := range all {
		if o.State == OrderPaid {
			paid = append(paid, o)
		}
	}
	if got, _ := pageAll(t, s, PageQuery{State: OrderPaid, Limit: 4}); !slices.Equal(got, newestFirst(paid)) {
		t.Errorf("paid orders:\n got %v\nwant %v", got, newestFirst(paid))
	}

	for _, tc := range []struct {
		q    PageQuery
		code string
	}{
		{PageQuery{Before: "garbage!"}, "bad_cursor"},
		{PageQuery{Before: newCursor("20261205T211234.123456789Z_short")}, "bad_cursor"},
		{PageQuery{State: "bogus"}, "bad_state"},
		{PageQuery{Limit: maxPageLimit + 1}, "bad_limit"},
		{PageQuery{Limit: -1}, "bad_limit"},
	} {
		_, _, err := s.Page(ctx, tc.q)
		var re *RequestError
		if !errors.As(err, &re) || re.Status != http.StatusBadRequest || re.Code != tc.code {
			t.Errorf("Page(%+v) = %v, want a 400 %s", tc.q, err, tc.code)
		}
	}
}

// TestOrderIndexPageScanBound: a page filtered by state reads at most ten
// times its limit (at least 1000) records, and says where to go on.
func TestOrderIndexPageScanBound(t *testing.T) {
	s, _ := indexedStore(t)
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var cancelled []*Order
	for i := range 1205 {
		state := OrderPaid
		if i%600 == 0 {
			state = OrderCancelled // 0, 600, 1200
		}
		o := createAt(t, s, base.Add(time.Duration(i)*time.Second), state)
		if state == OrderCancelled {
			cancelled = append(cancelled, o)
		}
	}
	ctx := context.Background()
	// Newest first: 1200 is the 5th, 600 the 605th, 0 the 1205th.
	orders, next, err := s.Page(ctx, PageQuery{State: OrderCancelled, Limit: 5})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{cancelled[2].ID, cancelled[1].ID}; !slices.Equal(ids(orders), want) || next == "" {
		t.Fatalf("the first page = %v, next %q; want %v and a next cursor after 1000 records read", ids(orders), next, want)
	}
	orders, next, err = s.Page(ctx, PageQuery{State: OrderCancelled, Limit: 5, Before: next})
	if err != nil || !slices.Equal(ids(orders), []string{cancelled[0].ID}) || next != "" {
		t.Fatalf("the second page = %v, %q, %v; want the oldest order and no next", ids(orders), next, err)
	}
}

// TestOrderIndexPageAcrossInserts: orders created after a page was read
// shift nothing after its cursor: no order of the next pages is repeated
// or skipped.
func TestOrderIndexPageAcrossInserts(t *testing.T) {
	ctx := context.Background()
	s, clock := indexedStore(t)
	var before []*Order
	for range 25 {
		clock.Add(time.Minute)
		before = append(before, createAt(t, s, time.Time{}, OrderPaid))
	}
	page1, next, err := s.Page(ctx, PageQuery{Limit: 10})
	if err != nil || next == "" {
		t.Fatal(next, err)
	}
	for range 12 {
		clock.Add(time.Minute)
		createAt(t, s, time.Time{}, OrderPending)
	}
	rest, _ := pageAll(t, s, PageQuery{Limit: 10, Before: next})
	if got, want := append(ids(page1), rest...), newestFirst(before); !slices.Equal(got, want) {
		t.Errorf("pages around inserts:\n got %v\nwant %v", got, want)
	}
}

// TestOrderIndexCrashes: a crash between the index entry and the record
// leaves an entry readers skip; an id created again at another time
// (a buyer's retry after such a crash) is listed once; compaction deletes
// the entry after the record, and a crash in between leaves one readers
// skip.
func TestOrderIndexCrashes(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{t: time.Date(2026, 12, 6, 0, 30, 0, 0, time.UTC)}
	m, s := newCrashStore(t, clock)
	if _, err := s.Backfill(ctx); err != nil {
		t.Fatal(err)
	}
	kept := createAt(t, s, time.Time{}, OrderPaid)

	// Write 1 is the mapping, 2 the time-index entry, 3 the open entry.
	clock.Add(time.Second)
	o := &Order{ID: NewOrderID(), State: OrderCreating, IdempotencyKey: "k"}
	m.crashAtWrite(3)
	if err := s.Create(ctx, o); !errors.Is(err, errCrash) {
		t.Fatalf("Create = %v, want the crash", err)
	}
	m.restart()
	if !m.has(createdKey(orderEntry(o))) {
		t.Fatal("the crash did not leave the time-index entry")
	}
	if got, _ := pageAll(t, s, PageQuery{}); !slices.Equal(got, []string{kept.ID}) {
		t.Errorf("after a crash before the record, pages list %v, want only %s", got, kept.ID)
	}
	// The retry makes the order under the same id, later.
	clock.Add(time.Second)
	retry := &Order{ID: o.ID, State: OrderCreating, IdempotencyKey: "k"}
	if err := s.Create(ctx, retry); err != nil {
		t.Fatal(err)
	}
	if got, _ := pageAll(t, s, PageQuery{Limit: 1}); !slices.Equal(got, []string{retry.ID, kept.ID}) {
		t.Errorf("after the retry, pages list %v, want %s once, then %s", got, retry.ID, kept.ID)
	}

	// Compaction deletes the entry, after the record.
	retry.State = OrderExpired
	if err := s.Save(ctx, retry); err != nil {
		t.Fatal(err)
	}
	clock.Add(48 * time.Hour)
	if n, err := s.Compact(ctx, 24*time.Hour, nil); n != 1 || err != nil {
		t.Fatalf("Compact = %d, %v", n, err)
	}
	if m.has(createdKey(orderEntry(retry))) {
		t.Error("Compact left the deleted order's index entry")
	}
	// A crash at any write of a compaction leaves the record with its
	// entry, or an entry readers skip.
	doomed := createAt(t, s, time.Time{}, OrderCancelled)
	if err := s.Save(ctx, doomed); err != nil { // its unpaid-index entry
		t.Fatal(err)
	}
	clock.Add(48 * time.Hour)
	for crashAt := 1; ; crashAt++ {
		m.crashAtWrite(crashAt)
		_, err := s.Compact(ctx, 24*time.Hour, nil)
		m.restart()
		if err == nil {
			break
		}
		if _, err := s.Load(ctx, doomed.ID); err == nil && !m.has(createdKey(orderEntry(doomed))) {
			t.Errorf("a crash at write %d of Compact left the record without its index entry", crashAt)
		}
		if got, _ := pageAll(t, s, PageQuery{}); got[len(got)-1] != kept.ID {
			t.Errorf("after a crash at write %d of Compact, pages list %v", crashAt, got)
		}
	}
	if got, _ := pageAll(t, s, PageQuery{}); !slices.Equal(got, []string{kept.ID}) {
		t.Errorf("after Compact, pages list %v, want only %s", got, kept.ID)
	}
}

// TestOrderIndexBackfill: the orders a store holds without entries (the
// previous release's) are listed by a full scan until Backfill indexes
// them; then by the index alone. Two backfills at once, and a second one,
// change nothing.
func TestOrderIndexBackfill(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	storage := &readCountingStorage{Storage: &certmagic.FileStorage{Path: dir}}
	s := NewOrderStore(storage)
	base := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	var old []*Order
	for i := range 30 {
		o := &Order{ID: NewOrderID(), State: OrderPaid, CreatedAt: base.Add(time.Duration(i) * time.Hour)}
		if i == 29 {
			o.State = OrderCreating // its record in its open-index entry
		}
		if err := s.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
		old = append(old, o)
	}
	// The previous release wrote no entries.
	if err := storage.Delete(ctx, createdPrefix); err != nil {
		t.Fatal(err)
	}
	want := newestFirst(old)
	if got, _ := pageAll(t, s, PageQuery{Limit: 4}); !slices.Equal(got, want) {
		t.Errorf("before the backfill:\n got %v\nwant %v", got, want)
	}

	other := NewOrderStore(&certmagic.FileStorage{Path: dir})
	counts := make(chan int, 2)
	errs := make(chan error, 2)
	for _, st := range []*OrderStore{s, other} {
		go func() {
			n, err := st.Backfill(ctx)
			counts <- n
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.Backfill(ctx); n != 0 || err != nil {
		t.Errorf("Backfill once done = %d, %v; want nothing", n, err)
	}

	storage.mu.Lock()
	storage.record = true
	storage.mu.Unlock()
	got, _ := pageAll(t, s, PageQuery{Limit: 4})
	storage.mu.Lock()
	storage.record = false
	lists, reads := storage.lists, len(storage.reads)
	storage.mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("after the backfill:\n got %v\nwant %v", got, want)
	}
	for _, l := range lists {
		if !strings.HasPrefix(l, createdPrefix) {
			t.Errorf("paging after the backfill listed %s", l)
		}
	}
	// Each order is read once or, being created, three times (kassa/orders,
	// its open entry, kassa/orders again); and the marker once per page.
	if reads > len(want)+2+(len(want)+3)/4 {
		t.Errorf("paging after the backfill made %d reads for %d orders", reads, len(want))
	}
}

// TestOrderIndexRange: Range walks a range oldest first, exact to the
// nanosecond at both ends, and stops at fn's error.
func TestOrderIndexRange(t *testing.T) {
	ctx := context.Background()
	s, _ := indexedStore(t)
	from := time.Date(2026, 11, 1, 0, 0, 0, 0, time.FixedZone("MSK", 3*3600))
	to := time.Date(2026, 12, 1, 0, 0, 0, 0, time.FixedZone("MSK", 3*3600))
	var want []string
	for _, at := range []time.Time{from.Add(-time.Nanosecond), from, from.Add(time.Hour), from.Add(24 * time.Hour),
		to.Add(-time.Nanosecond), to, to.Add(time.Hour)} {
		o := createAt(t, s, at, OrderPaid)
		if !at.Before(from) && at.Before(to) {
			want = append(want, o.ID)
		}
	}
	var got []string
	if err := s.Range(ctx, from, to, func(o *Order) error { got = append(got, o.ID); return nil }); err != nil || !slices.Equal(got, want) {
		t.Errorf("Range = %v, %v; want %v", got, err, want)
	}
	stop := errors.New("enough")
	n := 0
	if err := s.Range(ctx, time.Time{}, time.Time{}, func(*Order) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Range stopped by fn = %v after %d orders", err, n)
	}
}

// BenchmarkOrderIndexPage measures Page(limit 20) on file-system storage
// holding 10 000 and 100 000 orders, one every 30 seconds: its cost should
// not follow the history's size. (Filling the larger store takes minutes.)
func BenchmarkOrderIndexPage(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			s, _ := indexedStore(b)
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			for i := range n {
				createAt(b, s, base.Add(time.Duration(i)*30*time.Second), OrderPaid)
			}
			ctx := context.Background()
			b.ResetTimer()
			for b.Loop() {
				if orders, _, err := s.Page(ctx, PageQuery{Limit: 20}); err != nil || len(orders) != 20 {
					b.Fatal(len(orders), err)
				}
			}
		})
	}
}

// TestOrderIndexLatePaymentRacingCompaction: another instance records a
// late payment of an order that Compact deletes meanwhile (its storage lock
// lost): the record it writes brings the order back (orderstore.go), and
// with it its time-index entry, so that the paid order is in the
// operator's pages and the accountant's export.
func TestOrderIndexLatePaymentRacingCompaction(t *testing.T) {
	ctx := context.Background()
	s, clock := indexedStore(t)
	o := createAt(t, s, clock.Now(), OrderPending)
	o.State = OrderExpired
	if err := s.Save(ctx, o); err != nil {
		t.Fatal(err)
	}
	prev, err := s.Load(ctx, o.ID) // the other instance's read, before the deletion
	if err != nil {
		t.Fatal(err)
	}
	if gone, err := s.compactOne(ctx, o.ID); err != nil || !gone {
		t.Fatalf("compactOne: %v, %v; want the order deleted", gone, err)
	}
	paid := *prev
	paid.State, paid.PaidAt, paid.PaidLate = OrderPaid, clock.Now(), true
	if err := s.saveChange(ctx, prev, &paid); err != nil {
		t.Fatal(err)
	}
	orders, _, err := s.Page(ctx, PageQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(orders); !slices.Equal(got, []string{o.ID}) {
		t.Errorf("the page holds %v, want the order paid late %s", got, o.ID)
	}
	var exported []string
	if err := s.Range(ctx, time.Time{}, time.Time{}, func(o *Order) error {
		exported = append(exported, o.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(exported, []string{o.ID}) {
		t.Errorf("the export holds %v, want the order paid late %s", exported, o.ID)
	}
}

// TestOrderIndexFarBounds: a bound past year 9999 in UTC (the last hours
// of 9999 at a western offset, as an RFC 3339 time or a date in the app's
// time zone) bounds the range as a time, not as the first digits of a
// longer name: a to that far ends nothing, a from that far starts nothing.
func TestOrderIndexFarBounds(t *testing.T) {
	s, clock := indexedStore(t)
	o := createAt(t, s, clock.Now(), OrderPending)
	far := time.Date(9999, 12, 31, 23, 0, 0, 0, time.FixedZone("UTC-5", -5*3600))
	for _, c := range []struct {
		name     string
		from, to time.Time
		want     []string
	}{
		{"to past 9999", time.Time{}, far, []string{o.ID}},
		{"from past 9999", far, time.Time{}, nil},
	} {
		var got []string
		if err := s.Range(context.Background(), c.from, c.to, func(o *Order) error {
			got = append(got, o.ID)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: the export holds %v, want %v", c.name, got, c.want)
		}
		orders, _, err := s.Page(context.Background(), PageQuery{From: c.from, To: c.to})
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(orders); !slices.Equal(got, c.want) {
			t.Errorf("%s: the page holds %v, want %v", c.name, got, c.want)
		}
	}
}
