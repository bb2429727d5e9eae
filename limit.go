package kassa

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// defaultMaxOrdersPerClient is max_orders_per_client when it is not set:
// the orders a public client may make per order_ttl, so that one address
// cannot fill max_open_orders and lock every buyer out. A buyer rarely
// opens more than a few payment pages in half an hour, and of the many
// people behind one carrier-grade NAT address few buy at one shop in the
// same half hour. docs/reference.md, "Limits on checkouts", has the reckoning.
const defaultMaxOrdersPerClient = 50

// clientLimit bounds how many orders one client may create per window, so
// that a script cannot fill the storage with unpaid orders, nor the shop's
// max_open_orders. It counts by clientBucket, and per instance: in a
// cluster each instance counts its own.
type clientLimit struct {
	max    int
	window time.Duration
	// publicOnly leaves addresses that are not public (isPublic) unbounded:
	// the default's, since such an address is almost always a load
	// balancer or the shop's own backend, that is every buyer at once.
	publicOnly bool

	mu   sync.Mutex
	made map[string][]time.Time
	// swept is when clients were last forgotten.
	swept time.Time
}

// newClientLimit is the bound that max_orders_per_client sets on the
// orders per window: option orders from any address, or with 0, the
// default, defaultMaxOrdersPerClient from a public address; nil with -1,
// no bound.
func newClientLimit(option int, window time.Duration) *clientLimit {
	switch {
	case option < 0:
		return nil
	case option == 0:
		return &clientLimit{max: defaultMaxOrdersPerClient, window: window, publicOnly: true}
	}
	return &clientLimit{max: option, window: window}
}

// describe says in the start-up log which bound applies.
func (l *clientLimit) describe() string {
	switch {
	case l == nil:
		return "off"
	case l.publicOnly:
		return fmt.Sprintf("%d from public addresses (default)", l.max)
	}
	return fmt.Sprintf("%d from any address", l.max)
}

// maxLimitedClients is the size past which clients with no order left in
// the window are forgotten: at most once per window, so that a shop with
// more buyers than that in one window does not scan them all on every
// checkout.
const maxLimitedClients = 10000

// allow records an order by the client at addr at now, unless its bucket
// already made max orders within the window.
func (l *clientLimit) allow(addr string, now time.Time) bool {
	if l.publicOnly && !isPublic(addr) {
		return true
	}
	client := clientBucket(addr)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.made == nil {
		l.made = make(map[string][]time.Time)
	}
	if len(l.made) >= maxLimitedClients && now.Sub(l.swept) >= l.window {
		l.swept = now
		for c, times := range l.made {
			if len(recent(times, now, l.window)) == 0 {
				delete(l.made, c)
			}
		}
	}
	times := recent(l.made[client], now, l.window)
	if len(times) >= l.max {
		l.made[client] = times
		return false
	}
	l.made[client] = append(times, now)
	return true
}

// recent is the times within the window before now (times are in order).
func recent(times []time.Time, now time.Time, window time.Duration) []time.Time {
	for i, t := range times {
		if now.Sub(t) < window {
			return times[i:]
		}
	}
	return times[:0]
}

// clientBucket is what a client address counts as: an IPv4 address itself
// (also when written IPv4-mapped, ::ffff:a.b.c.d), an IPv6 address its /64
// without a zone (a subscriber's network, in which one host picks any of
// 2^64 addresses at will), and an address that does not parse itself.
func clientBucket(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	if ip = ip.Unmap(); ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip.WithZone(""), 64).Masked().String()
}

// sharedAddresses is the shared address space of RFC 6598, which carriers
// number their subscribers from behind carrier-grade NAT. It is not routed
// on the internet: a buyer behind such a NAT reaches the shop from the
// carrier's public address, and a server sees an address of this range only
// from its own operator's network (a cloud load balancer, a VPN such as
// Tailscale, a cluster's overlay), as it sees a private one.
var sharedAddresses = netip.MustParsePrefix("100.64.0.0/10")

// isPublic reports whether addr is a public unicast address: not loopback,
// private (RFC 1918, fc00::/7), link-local, shared (RFC 6598),
// unspecified or multicast, and not an address that does not parse (a
// Unix socket's peer).
func isPublic(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	return ip.IsGlobalUnicast() && !ip.IsPrivate() && !sharedAddresses.Contains(ip)
}

// clientAddress is the request's client IP as Caddy determined it, which
// respects the server's trusted_proxies.
func clientAddress(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// defaultMaxOpenOrders is max_open_orders when it is not set; docs/reference.md's
// "Limits on checkouts" has the reckoning. With the default
// poll_concurrency of 16 and providers at 100–500 ms a call (160 to 32
// calls a second), one look at each of 10 000 open orders takes 62–312 s:
// even a burst of fresh orders, all due every pass, has each looked at five
// times or more within the default order_ttl of 30 minutes. With orders of
// spread ages, the young sixth (under 30 poll intervals old, due every
// pass) is looked at within 10–52 s, so a payment is noticed within the 6
// poll intervals the reconciler aims at. The storage keeps about 1 KB per
// open order: 10 MB.
const defaultMaxOpenOrders = 10000

// openCountEvery is how old the count of open orders may grow before a
// checkout has the open index listed again, in the background: checkouts
// go on with the count it replaces.
const openCountEvery = time.Second

// openCountStale is how old a count may be and still be used while a new
// one is listed; an older one (the first, or one after a quiet spell) is
// waited for.
const openCountStale = 10 * time.Second

// busyWarnEvery is how often a shop at its max_open_orders says so in the
// log.
const busyWarnEvery = time.Minute

// openLimit caps the orders open across the cluster (max_open_orders), so
// that a flood of checkouts cannot outgrow what the reconciler can look at
// and the storage can hold. It counts the open index, which every instance
// shares, and adds the orders this instance admitted since. The index is
// listed at most once per openCountEvery however many checkouts come, one
// listing at a time, and in the background: a checkout waits for a listing
// only when the count is older than openCountStale. Other instances'
// orders of the last second or so are missed, and orders closed since the
// listing still count: the cap is a bound, not a ledger.
type openLimit struct {
	max    int
	count  func(context.Context) (int, error)
	now    func() time.Time
	logger *zap.Logger

	mu sync.Mutex
	// listed is the open orders the last listing found; listedAt, when it
	// began (zero before the first); admitted, the orders admitted since.
	listed   int
	listedAt time.Time
	admitted int
	// listing is closed when the listing under way ends; nil when none is.
	listing chan struct{}
	// warned is when the cap was last logged; refused, the checkouts
	// refused since.
	warned  time.Time
	refused int
}

// newOpenLimit caps the app's open orders at limit.
func newOpenLimit(a *App, limit int) *openLimit {
	return &openLimit{
		max: limit,
		count: func(ctx context.Context) (int, error) {
			ids, err := a.orders.OpenIDs(ctx)
			return len(ids), err
		},
		now:    func() time.Time { return a.now() },
		logger: a.logger,
	}
}

// admit counts a new order in, unless the shop has max open orders.
func (l *openLimit) admit(ctx context.Context) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refresh(ctx)
	if l.listed+l.admitted < l.max {
		l.admitted++
		return true
	}
	l.refused++
	if now := l.now(); now.Sub(l.warned) >= busyWarnEvery {
		l.logger.Warn("refusing new checkouts: the shop has max_open_orders open orders; they leave when paid, cancelled or expired",
			zap.Int("max_open_orders", l.max), zap.Int("open_orders", l.listed+l.admitted), zap.Int("refused", l.refused))
		l.warned, l.refused = now, 0
	}
	return false
}

// withdraw counts out an order admitted but then refused for another
// reason, so that it takes no place until the next listing.
func (l *openLimit) withdraw() {
	l.mu.Lock()
	l.admitted--
	l.mu.Unlock()
}

// refresh has the open index listed when the count is openCountEvery old
// and no listing is under way, and waits for the listing when the count is
// openCountStale old. It is called with l.mu held, and lets go of it while
// it waits.
func (l *openLimit) refresh(ctx context.Context) {
	age := l.now().Sub(l.listedAt)
	if l.listing == nil && (l.listedAt.IsZero() || age >= openCountEvery) {
		l.listing = make(chan struct{})
		go l.list(context.WithoutCancel(ctx), l.listing, l.admitted, l.now())
	}
	if l.listing != nil && (l.listedAt.IsZero() || age >= openCountStale) {
		done := l.listing
		l.mu.Unlock()
		<-done
		l.mu.Lock()
	}
}

// list counts the open index and records the count as of began, when the
// listing began and before orders had been admitted; then it closes done.
// A failed listing keeps the last count: a storage that cannot list cannot
// store the order either, and its checkout says so.
func (l *openLimit) list(ctx context.Context, done chan struct{}, before int, began time.Time) {
	n, err := l.count(ctx)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.listing, l.listedAt = nil, began
	close(done)
	if err != nil {
		l.logger.Warn("counting the open orders for max_open_orders", zap.Error(err))
		return
	}
	l.listed, l.admitted = n, l.admitted-before
}
