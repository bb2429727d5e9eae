package kassa

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// limitedProvider publishes a rate limit.
type limitedProvider struct{ benchProvider }

func (*limitedProvider) RateLimit() float64 { return 5 }

// rateLimitAccounts are two accounts: main, whose provider publishes 5/s,
// and card, whose provider publishes none.
func rateLimitAccounts() map[string]*account {
	return map[string]*account{
		"main": {name: "main", provider: "crystalpay", PaymentProvider: &limitedProvider{}},
		"card": {name: "card", provider: "pegas", PaymentProvider: &benchProvider{}},
	}
}

// TestRateLimitConfig: an account takes the app's rate_limit for it, or
// its provider's published one; naming an account the app does not have,
// or a limit that is no positive number, is a config error.
func TestRateLimitConfig(t *testing.T) {
	a := &App{logger: zap.NewNop(), accounts: rateLimitAccounts()}
	if err := a.useRateLimits(); err != nil {
		t.Fatal(err)
	}
	if l := a.accounts["main"].limiter; l == nil || l.Limit() != 5 || l.Burst() != 5 {
		t.Errorf("main's limiter = %v, want the provider's 5/s", l)
	}
	if a.accounts["card"].limiter != nil {
		t.Error("card got a limiter without a rate_limit or a published one")
	}

	a = &App{logger: zap.NewNop(), accounts: rateLimitAccounts(), RateLimit: map[string]float64{"main": 2.5, "card": 0.5}}
	if err := a.useRateLimits(); err != nil {
		t.Fatal(err)
	}
	if l := a.accounts["main"].limiter; l.Limit() != 2.5 || l.Burst() != 3 {
		t.Errorf("main's limiter = %v/s burst %d, want rate_limit's 2.5/s, burst 3", l.Limit(), l.Burst())
	}
	if l := a.accounts["card"].limiter; l.Limit() != 0.5 || l.Burst() != 1 {
		t.Errorf("card's limiter = %v/s burst %d, want 0.5/s, burst 1", l.Limit(), l.Burst())
	}

	for limits, want := range map[*map[string]float64]string{
		{"cash": 5}: `no payment account "cash"`,
		{"main": 0}: "want a positive number",
	} {
		a := &App{logger: zap.NewNop(), accounts: rateLimitAccounts(), RateLimit: *limits}
		if err := a.useRateLimits(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("rate_limit %v: err = %v, want one containing %q", *limits, err, want)
		}
	}
}

// TestReconcilerWaitsForTokens: the reconciler's calls to a limited
// account wait for a token; a buyer's poll never waits, but takes a token
// when there is one, so the reconciler yields to it. Counted, not timed:
// the bucket refills once an hour, and a pass whose context ends in a
// minute gets no token it would have to wait for.
func TestReconcilerWaitsForTokens(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &askedProvider{}
	a := scheduleApp(t, p, 4, clock, time.Hour)
	acc := a.accounts["main"]
	var ids []string
	for range 3 {
		ids = append(ids, openPending(t, a))
	}
	pass := func() int {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		a.reconciler.pass(ctx)
		return len(p.takeAsked())
	}

	acc.limiter = rate.NewLimiter(rate.Every(time.Hour), 1)
	if n := pass(); n != 1 {
		t.Errorf("a pass over 3 orders with one token asked %d times, want 1", n)
	}
	o, err := a.orders.Load(context.Background(), ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.paymentStatus(context.Background(), acc, o); err != nil {
		t.Fatal(err)
	}
	if n := len(p.takeAsked()); n != 1 {
		t.Errorf("a buyer's poll with no token left asked %d times, want 1: buyers never wait", n)
	}

	acc.limiter = rate.NewLimiter(rate.Every(time.Hour), 1)
	if _, err := a.paymentStatus(context.Background(), acc, o); err != nil {
		t.Fatal(err)
	}
	p.takeAsked()
	if n := pass(); n != 0 {
		t.Errorf("after a buyer's poll took the only token, a pass asked %d times, want 0", n)
	}
}

// TestRateLimitDoesNotStarveOtherAccounts: the orders of an account at
// its rate limit wait for their tokens without holding up the orders of
// the other accounts: an unlimited account's orders are checked at once
// while a limited account's queue of due orders waits.
func TestRateLimitDoesNotStarveOtherAccounts(t *testing.T) {
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	p := &askedProvider{}
	a := scheduleApp(t, p, 4, clock, time.Hour)
	a.accounts["slow"] = &account{name: "slow", provider: "pegas", PaymentProvider: p,
		limiter: rate.NewLimiter(rate.Every(time.Hour), 1)}
	open := func(account string) string {
		now := a.now()
		o := &Order{ID: NewOrderID(), State: OrderPending, Account: account, Provider: "pegas", Amount: decimal.NewFromInt(350),
			Payment: Payment{ID: "100001"}, CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)}
		if err := a.orders.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		return o.ID
	}
	// The unlimited account's orders are the older: youngest first, the
	// limited account's come first in the queue.
	fast := []string{open("main"), open("main")}
	clock.Add(time.Second)
	for range 10 {
		open("slow")
	}
	ctx, cancel := context.WithCancel(context.Background())
	passed := make(chan struct{})
	go func() {
		a.reconciler.pass(ctx)
		close(passed)
	}()
	defer func() {
		cancel()
		<-passed
	}()
	var asked []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		asked = append(asked, p.takeAsked()...)
		if slices.Contains(asked, fast[0]) && slices.Contains(asked, fast[1]) {
			return
		}
	}
	t.Errorf("the unlimited account's orders %v were not checked while the limited account's waited for tokens; asked: %v", fast, asked)
}

// TestWidth: a rate-limited account gets the workers its rate keeps busy
// for a second, at least one and at most the pool's.
func TestWidth(t *testing.T) {
	for perSecond, want := range map[float64]int{0: 0, 0.001: 1, 1: 1, 2.5: 3, 8: 8, 100: 16, 1e300: 16} {
		acc := &account{limiter: newLimiter(perSecond)}
		if got := acc.width(16); got != want {
			t.Errorf("the width of %v/s in 16 workers = %d, want %d", perSecond, got, want)
		}
	}
}
