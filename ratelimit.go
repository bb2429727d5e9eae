package kassa

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"

	"golang.org/x/time/rate"
)

// useRateLimits gives each account its rate limit: the app's rate_limit
// for it, or its provider's, or none. An account named in rate_limit
// that the app does not have is a config error.
func (a *App) useRateLimits() error {
	if err := a.checkRateLimits("rate_limit", a.RateLimit); err != nil {
		return err
	}
	if err := a.checkRateLimits("buyer_rate_limit", a.BuyerRateLimit); err != nil {
		return err
	}
	for _, acc := range a.sortedAccounts() {
		perSecond, ok := a.RateLimit[acc.name]
		if r, reports := acc.PaymentProvider.(RateLimitReporter); !ok && reports {
			perSecond = r.RateLimit()
		}
		acc.limiter = newLimiter(perSecond)
		buyers, ok := a.BuyerRateLimit[acc.name]
		switch {
		case !ok && acc.limiter != nil:
			buyers = perSecond / 2
		case !ok:
			buyers = defaultBuyerRate
		case acc.limiter != nil && buyers >= perSecond:
			return fmt.Errorf("buyer_rate_limit %s: %v/s would leave the reconciler nothing of the account's rate limit of %v/s: set it lower",
				acc.name, buyers, perSecond)
		}
		acc.buyers = newLimiter(buyers)
	}
	return nil
}

// checkRateLimits refuses, in the option named, a limit for an account the
// app does not have, or one that is no positive number.
func (a *App) checkRateLimits(option string, limits map[string]float64) error {
	for _, name := range slices.Sorted(maps.Keys(limits)) {
		if _, ok := a.accounts[name]; !ok {
			return fmt.Errorf("%s: no payment account %q in the kassa app (it has: %s)", option, name, a.accountNames())
		}
		if perSecond := limits[name]; !(perSecond > 0) || math.IsInf(perSecond, 0) {
			return fmt.Errorf("%s %s: want a positive number of requests a second, got %v", option, name, perSecond)
		}
	}
	return nil
}

// defaultBuyerRate is the buyers' calls a second to an account that has no
// rate limit, unless buyer_rate_limit says otherwise.
const defaultBuyerRate = 5

// newLimiter is a limiter of perSecond requests a second, whose bucket
// holds a second's worth (at least one); nil for no limit.
func newLimiter(perSecond float64) *rate.Limiter {
	if !(perSecond > 0) {
		return nil
	}
	return rate.NewLimiter(rate.Limit(perSecond), max(int(math.Ceil(perSecond)), 1))
}

// wait waits for a token of the account's rate limit before a call of the
// reconciler's; it fails when ctx ends first (or would end before the
// token comes).
func (acc *account) wait(ctx context.Context) error {
	if acc.limiter == nil {
		return nil
	}
	return acc.limiter.Wait(ctx)
}

// width is how many of the reconciler's limit workers may work on acc's
// orders at once: ⌈rate × 1 s⌉, enough to keep to its rate while its calls
// take under a second, at least 1 and at most limit; 0, no bound, for an
// account without a rate limit. The pool (pool.go) holds the other jobs
// of a rate-limited account back, so that workers waiting for its tokens
// never stop the other accounts' checks.
func (acc *account) width(limit int) int {
	if acc.limiter == nil {
		return 0
	}
	return int(max(min(math.Ceil(float64(acc.limiter.Limit())), float64(limit)), 1))
}

// spend takes a token, if there is one, for a buyer's call: a buyer never
// waits for the limit, and the reconciler, which does, yields to them.
func (acc *account) spend() {
	if acc.limiter != nil {
		acc.limiter.Allow()
	}
}

// buyerCall takes a token of the buyers' budget for a provider call a
// buyer's request makes, and spends it from the account's limit; false,
// and no call, when the budget is spent. The budget is a part of the
// account's limit, so the reconciler keeps the rest however many requests
// buyers send.
func (acc *account) buyerCall() bool {
	if acc.buyers != nil && !acc.buyers.Allow() {
		return false
	}
	acc.spend()
	return true
}

// buyerRetryAfter is the Retry-After, in seconds, for a buyer refused a
// call: the time the budget takes to earn a token, at least 1.
func (acc *account) buyerRetryAfter() string {
	wait := 1.0
	if acc.buyers != nil {
		wait = max(math.Ceil(1/float64(acc.buyers.Limit())), 1)
	}
	return strconv.FormatFloat(wait, 'f', 0, 64)
}
