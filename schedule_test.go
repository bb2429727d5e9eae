package kassa

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

// askedProvider is a payment provider that records the orders it is asked
// about, in order, and how many calls it had in flight at most. With wave
// set, the first wave calls wait for each other, so that the pool's
// workers are all seen in flight at once; with delay, each call takes that
// long (for the benchmark).
type askedProvider struct {
	benchProvider
	wave  int
	delay time.Duration

	mu       sync.Mutex
	asked    []string
	inFlight int
	most     int
	started  int
	full     chan struct{}
}

func (p *askedProvider) PaymentStatus(ctx context.Context, ref PaymentRef) (PaymentStatus, error) {
	p.mu.Lock()
	p.asked = append(p.asked, ref.OrderID)
	p.inFlight++
	p.most = max(p.most, p.inFlight)
	p.started++
	waits := p.started <= p.wave
	if p.full == nil {
		p.full = make(chan struct{})
	}
	if p.started == p.wave {
		close(p.full)
	}
	full := p.full
	p.mu.Unlock()
	if waits {
		select {
		case <-full:
		case <-time.After(10 * time.Second):
			// Fewer workers than the wave ever ran at once: the test's
			// assertion on most says so.
		}
	}
	if p.delay > 0 {
		time.Sleep(p.delay)
	}
	p.mu.Lock()
	p.inFlight--
	p.mu.Unlock()
	return p.benchProvider.PaymentStatus(ctx, ref)
}

// takeAsked returns the orders asked about since the last call.
func (p *askedProvider) takeAsked() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	asked := p.asked
	p.asked = nil
	return asked
}

// scheduleApp is an app on memory storage with one account on p, the
// reconciler checking concurrency orders at once, on a clock the test
// moves.
func scheduleApp(t testing.TB, p PaymentProvider, concurrency int, clock *testClock, ttl time.Duration) *App {
	t.Helper()
	a := &App{logger: zap.NewNop(), now: clock.Now, PollInterval: caddy.Duration(10 * time.Second),
		PollConcurrency: concurrency, OrderTTL: caddy.Duration(ttl), KeepUnpaid: caddy.Duration(7 * 24 * time.Hour)}
	a.accounts = map[string]*account{"main": {name: "main", provider: "pegas", PaymentProvider: p}}
	a.useStorage(newBenchStorage())
	a.statuses = newStatusGate(0) // every check asks the provider
	a.statuses.now = clock.Now
	return a
}

// openPending stores a pending order made now on a's clock, expiring after
// the app's order_ttl, and returns its id.
func openPending(t testing.TB, a *App) string {
	t.Helper()
	now := a.now()
	o := &Order{ID: NewOrderID(), State: OrderPending, Account: "main", Provider: "pegas", Amount: decimal.NewFromInt(350),
		Payment: Payment{ID: "100001"}, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Duration(a.OrderTTL))}
	if err := a.orders.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	return o.ID
}

// TestYoungestFirst: with one worker, the orders due are checked youngest
// first once the schedule knows their ages, and every young order is
// checked every pass.
func TestYoungestFirst(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &askedProvider{}
	a := scheduleApp(t, p, 1, clock, time.Hour)
	var made []string
	for range 5 {
		made = append(made, openPending(t, a))
		clock.Add(30 * time.Second)
	}
	a.reconciler.pass(context.Background()) // learns their ages
	if asked := p.takeAsked(); len(asked) != len(made) {
		t.Fatalf("the first pass asked about %v, want each of %v once", asked, made)
	}
	clock.Add(10 * time.Second)
	a.reconciler.pass(context.Background())
	want := slices.Clone(made)
	slices.Reverse(want)
	if asked := p.takeAsked(); !slices.Equal(asked, want) {
		t.Errorf("the second pass asked %v, want youngest first: %v", asked, want)
	}
}

// TestOldOrdersWaitTheirTurn: an order older than 30 poll intervals is not
// checked every pass, but once its interval (a thirtieth of its age) is
// over; a young one is checked every pass.
func TestOldOrdersWaitTheirTurn(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &askedProvider{}
	a := scheduleApp(t, p, 4, clock, 24*time.Hour)
	old := openPending(t, a)
	clock.Add(2 * time.Hour)
	young := openPending(t, a)
	a.reconciler.pass(context.Background())
	if asked := p.takeAsked(); len(asked) != 2 {
		t.Fatalf("the first pass asked %v, want both orders", asked)
	}
	clock.Add(10 * time.Second)
	a.reconciler.pass(context.Background())
	if asked := p.takeAsked(); !slices.Equal(asked, []string{young}) {
		t.Errorf("a pass 10s later asked %v, want only the young order", asked)
	}
	clock.Add(4 * time.Minute) // the old order's interval: 2h/30
	a.reconciler.pass(context.Background())
	if asked := p.takeAsked(); !slices.Contains(asked, old) {
		t.Errorf("a pass 4 minutes later asked %v, want the old order again", asked)
	}
}

// TestCheckedJustBeforeExpiry: an old order is checked once more in its
// last poll interval and at its expiry, whatever its interval, and expired
// then.
func TestCheckedJustBeforeExpiry(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &askedProvider{}
	a := scheduleApp(t, p, 4, clock, 2*time.Hour)
	id := openPending(t, a)
	expires := clock.Now().Add(2 * time.Hour)
	clock.Add(117 * time.Minute) // its interval is now 3.9 minutes
	a.reconciler.pass(context.Background())
	if asked := p.takeAsked(); len(asked) != 1 {
		t.Fatalf("asked %v, want the order", asked)
	}
	clock.Add(2 * time.Minute)
	a.reconciler.pass(context.Background())
	if asked := p.takeAsked(); len(asked) != 0 {
		t.Fatalf("asked %v 2 minutes later, before its last poll interval; want nothing", asked)
	}
	clock.t = expires.Add(-10 * time.Second)
	a.reconciler.pass(context.Background())
	if asked := p.takeAsked(); !slices.Equal(asked, []string{id}) {
		t.Errorf("asked %v in its last poll interval, want the order", asked)
	}
	clock.t = expires
	a.reconciler.pass(context.Background())
	if asked := p.takeAsked(); !slices.Equal(asked, []string{id}) {
		t.Errorf("asked %v at its expiry, want the order", asked)
	}
	if o, err := a.orders.Load(context.Background(), id); err != nil || o.State != OrderExpired {
		t.Errorf("at its expiry the order is %v, %v; want expired", o.State, err)
	}
}

// TestLateness: the lateness gauge's figure is about 0 while every due
// check is made, and grows with the time the most overdue one waits.
func TestLateness(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	a := scheduleApp(t, &askedProvider{}, 4, clock, time.Hour)
	openPending(t, a)
	a.reconciler.pass(context.Background())
	if late := a.reconciler.sched.lateness(clock.Now()); late > 0 {
		t.Errorf("lateness right after a pass is %v, want none", late)
	}
	clock.Add(25 * time.Second) // due 10s after the pass
	if late := a.reconciler.sched.lateness(clock.Now()); late != 15*time.Second {
		t.Errorf("lateness is %v, want 15s", late)
	}
}

// TestPoolBound: a pass over many open orders has more than one provider
// call in flight, and never more than poll_concurrency.
func TestPoolBound(t *testing.T) {
	const concurrency = 4
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &askedProvider{wave: concurrency}
	a := scheduleApp(t, p, concurrency, clock, time.Hour)
	for range 60 {
		openPending(t, a)
	}
	a.reconciler.pass(context.Background())
	if n := len(p.takeAsked()); n != 60 {
		t.Errorf("the pass asked about %d orders, want 60", n)
	}
	if p.most > concurrency || p.most < 2 {
		t.Errorf("at most %d provider calls were in flight, want 2 to %d", p.most, concurrency)
	}
}

// TestNudgeFirst: a buyer's nudge goes ahead of the work queued.
func TestNudgeFirst(t *testing.T) {
	pl := newPool(1, nil, zap.NewNop())
	var (
		mu    sync.Mutex
		order []string
	)
	recorded := func(key string, prio priority) *job {
		return &job{key: key, prio: prio, run: func() {
			mu.Lock()
			order = append(order, key)
			mu.Unlock()
		}}
	}
	var done sync.WaitGroup
	block := make(chan struct{})
	pl.submit(&done, &job{key: "blocker", run: func() { <-block }})
	pl.submit(&done, recorded("old", priority{class: classDue, late: 1}), recorded("late", priority{class: classDue, late: 3}),
		recorded("expiring", priority{class: classExpiring}), recorded("nudge", priority{class: classNudge}),
		recorded("late", priority{class: classDue, late: 0.5})) // joins the queued one
	close(block)
	done.Wait()
	if want := []string{"nudge", "expiring", "late", "old"}; !slices.Equal(order, want) {
		t.Errorf("jobs ran as %v, want %v", order, want)
	}
}

// BenchmarkPassOf500 measures a pass over 500 open orders, known to the
// schedule and young, against a provider that answers in 200 ms, at the
// default poll_concurrency: about 500 × 200 ms / 16 = 6.3 s.
func BenchmarkPassOf500(b *testing.B) {
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &askedProvider{delay: 200 * time.Millisecond}
	a := scheduleApp(b, p, defaultPollConcurrency, clock, time.Hour)
	for range 500 {
		openPending(b, a)
	}
	for b.Loop() {
		a.reconciler.pass(context.Background())
	}
	b.ReportMetric(float64(p.most), "max-in-flight")
}

// TestScheduleRemembersAccount: the schedule gives the pool the account
// whose provider an order's next check calls: an open order's and a
// watched one's; none for an order it has not seen, nor for a paid order
// whose receipt is under way (its check does not call the account).
func TestScheduleRemembersAccount(t *testing.T) {
	s := newSchedule(10 * time.Second)
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	order := func(state OrderState) *Order {
		return &Order{ID: NewOrderID(), State: state, Account: "card", CreatedAt: now, ExpiresAt: now.Add(time.Hour),
			Receipt: &OrderReceipt{Type: ReceiptSale, State: ReceiptSending}}
	}
	pending, creating, paid, closed := order(OrderPending), order(OrderCreating), order(OrderPaid), order(OrderExpired)
	for _, o := range []*Order{pending, creating, paid} {
		s.checkedOpen(o.ID, o, now)
	}
	s.watchedClosed(closed.ID, closed, true, now)
	for id, want := range map[string]string{pending.ID: "card", creating.ID: "card", closed.ID: "card", paid.ID: "", NewOrderID(): ""} {
		if got := s.account(id); got != want {
			t.Errorf("account(%s) = %q, want %q", id, got, want)
		}
	}
}

// TestOpenOrdersBeforeWatched: with one worker, an open order goes before
// an order that closed unpaid and is still watched, however young that
// one: the watch of closed orders (which a flood can make large) never
// delays the check of an order a buyer may be paying now.
func TestOpenOrdersBeforeWatched(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &askedProvider{}
	a := scheduleApp(t, p, 1, clock, time.Hour)
	open := openPending(t, a)
	a.reconciler.pass(context.Background()) // learns its age
	p.takeAsked()
	clock.Add(10 * time.Second)
	now := a.now()
	closed := &Order{ID: NewOrderID(), State: OrderExpired, Account: "main", Provider: "pegas", Amount: decimal.NewFromInt(350),
		Payment: Payment{ID: "100002"}, CreatedAt: now, UpdatedAt: now, ExpiresAt: now, ClosedAt: now}
	if err := a.orders.Create(context.Background(), closed); err != nil {
		t.Fatal(err)
	}
	if err := a.orders.Save(context.Background(), closed); err != nil { // its unpaid-index entry
		t.Fatal(err)
	}
	a.reconciler.pass(context.Background())
	if asked, want := p.takeAsked(), []string{open, closed.ID}; !slices.Equal(asked, want) {
		t.Errorf("the pass asked %v, want the open order first: %v", asked, want)
	}
}
