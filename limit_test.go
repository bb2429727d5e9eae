package kassa

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestClientLimit(t *testing.T) {
	l := &clientLimit{max: 2, window: time.Minute}
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	if !l.allow("198.51.100.7", start) || !l.allow("198.51.100.7", start.Add(time.Second)) {
		t.Fatal("the first two orders were refused")
	}
	if l.allow("198.51.100.7", start.Add(2*time.Second)) {
		t.Error("a third order within the window was allowed")
	}
	if !l.allow("203.0.113.9", start.Add(2*time.Second)) {
		t.Error("another client was refused")
	}
	if !l.allow("198.51.100.7", start.Add(time.Minute)) {
		t.Error("an order after the first left the window was refused")
	}
	if l.allow("198.51.100.7", start.Add(time.Minute+500*time.Millisecond)) {
		t.Error("the window slid too far")
	}
}

func TestClientLimitForgetsIdleClients(t *testing.T) {
	l := &clientLimit{max: 1, window: time.Second}
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for i := range maxLimitedClients * 2 {
		l.allow(fmt.Sprint("client-", i), start.Add(time.Duration(i)*time.Millisecond))
	}
	if n := len(l.made); n > maxLimitedClients+1000 {
		t.Errorf("%d clients remembered", n)
	}
}

// TestClientLimitSweepsOncePerWindow: past maxLimitedClients buyers who
// all ordered within the window, a checkout does not scan them all again
// until the window has passed.
func TestClientLimitSweepsOncePerWindow(t *testing.T) {
	l := &clientLimit{max: 1, window: time.Minute}
	start := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for i := range maxLimitedClients + 1 {
		l.allow(fmt.Sprint("client-", i), start)
	}
	swept := l.swept
	if !swept.Equal(start) {
		t.Fatalf("no sweep at %d clients: last sweep %v", len(l.made), swept)
	}
	l.allow("late", start.Add(30*time.Second))
	if !l.swept.Equal(swept) {
		t.Errorf("swept again %v after the last sweep, within the window", l.swept.Sub(swept))
	}
	l.allow("later", start.Add(time.Minute))
	if !l.swept.Equal(start.Add(time.Minute)) || len(l.made) != 2 {
		t.Errorf("a window later: last sweep %v, %d clients; want a sweep leaving 2", l.swept, len(l.made))
	}
}

func TestClientBucket(t *testing.T) {
	for addr, want := range map[string]string{
		"198.51.100.7":             "198.51.100.7",
		"::ffff:198.51.100.7":      "198.51.100.7",
		"::ffff:c633:6407":         "198.51.100.7",
		"2001:db8:1:2:3:4:5:6":     "2001:db8:1:2::/64",
		"2001:DB8:1:2::1":          "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:ffff::": "2001:db8:1:2::/64",
		"2001:db8:1:3::1":          "2001:db8:1:3::/64",
		"fe80::1%eth0":             "fe80::/64",
		"fe80::2%eth1":             "fe80::/64",
		"::1":                      "::/64",
		"[2001:db8::1]":            "[2001:db8::1]",
		"unix/@kassa":              "unix/@kassa",
		"":                         "",
	} {
		if got := clientBucket(addr); got != want {
			t.Errorf("clientBucket(%q) = %q, want %q", addr, got, want)
		}
	}
}

// TestClientLimitBuckets: addresses of one IPv6 /64 share a client's
// limit, another /64 has its own, and an IPv4 address counts the same
// written IPv4-mapped. Before: each address had its own limit.
func TestClientLimitBuckets(t *testing.T) {
	l := &clientLimit{max: 1, window: time.Minute}
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		addr    string
		allowed bool
	}{
		{"2001:db8:1:2::1", true},
		{"2001:db8:1:2:a:b:c:d", false},
		{"2001:db8:1:3::1", true},
		{"fe80::1%eth0", true},
		{"fe80::1%eth1", false},
		{"198.51.100.7", true},
		{"::ffff:198.51.100.7", false},
		{"198.51.100.8", true},
	} {
		if got := l.allow(tc.addr, now); got != tc.allowed {
			t.Errorf("allow(%s) = %v, want %v", tc.addr, got, tc.allowed)
		}
	}
}

// listCountingStorage counts the listings of the open index; with gate
// set, each listing waits for it to close.
type listCountingStorage struct {
	certmagic.Storage
	lists atomic.Int64
	gate  chan struct{}
}

func (s *listCountingStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	if prefix == openPrefix {
		s.lists.Add(1)
		if s.gate != nil {
			<-s.gate
		}
	}
	return s.Storage.List(ctx, prefix, recursive)
}

// openLimitApp is an app on a listCountingStorage with open orders in its
// open index, and its clock.
func openLimitApp(t *testing.T, open int) (*App, *listCountingStorage, *testClock) {
	t.Helper()
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	storage := &listCountingStorage{Storage: newBenchStorage()}
	a := &App{logger: zap.NewNop(), now: clock.Now}
	a.useStorage(storage)
	for range open {
		if err := storage.Store(context.Background(), openKey(NewOrderID()), []byte("{}")); err != nil {
			t.Fatal(err)
		}
	}
	return a, storage, clock
}

// settle waits for the listing under way, if any.
func settle(l *openLimit) {
	l.mu.Lock()
	done := l.listing
	l.mu.Unlock()
	if done != nil {
		<-done
	}
}

// TestOpenLimitCount: the cap counts the open index, listed at most once
// per second, plus the orders admitted since that listing; the next
// listing counts what was stored. A count a second old is used while the
// next is listed; one after a quiet spell is waited for.
func TestOpenLimitCount(t *testing.T) {
	a, storage, clock := openLimitApp(t, 2)
	l := newOpenLimit(a, 4)
	ctx := context.Background()
	for range 2 {
		if !l.admit(ctx) {
			t.Fatal("refused under the cap of 4: 2 open, at most 1 admitted")
		}
	}
	for range 10 {
		if l.admit(ctx) {
			t.Fatal("admitted past the cap: 2 open, 2 admitted")
		}
	}
	clock.Add(999 * time.Millisecond)
	if l.admit(ctx) {
		t.Error("admitted past the cap within the second")
	}
	settle(l)
	if n := storage.lists.Load(); n != 1 {
		t.Errorf("%d listings within a second, want 1", n)
	}
	// One admitted order was stored, the other not (its checkout failed).
	if err := storage.Store(ctx, openKey(NewOrderID()), []byte("{}")); err != nil {
		t.Fatal(err)
	}
	clock.Add(time.Millisecond)
	if l.admit(ctx) {
		t.Error("admitted past the cap on the count being replaced")
	}
	settle(l)
	if !l.admit(ctx) {
		t.Error("refused with 3 open after a new listing")
	}
	if l.admit(ctx) {
		t.Error("admitted past the cap: 3 open, 1 admitted")
	}
	if n := storage.lists.Load(); n != 2 {
		t.Errorf("%d listings after a second, want 2", n)
	}
	// An order admitted and then refused for its client frees its place.
	l.withdraw()
	if !l.admit(ctx) {
		t.Error("a withdrawn order still took its place")
	}
	// After a quiet spell the count is listed before it is used.
	keys, _ := storage.List(ctx, openPrefix, false)
	for _, key := range keys[:2] {
		if err := storage.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	clock.Add(openCountStale)
	if !l.admit(ctx) {
		t.Error("refused on a count 10 s old: 1 open, 0 admitted")
	}
}

// TestOpenLimitSharesOneListing: checkouts that come together share one
// listing: the first count is waited for, later ones are listed in the
// background while checkouts go on with the count it replaces.
func TestOpenLimitSharesOneListing(t *testing.T) {
	a, storage, clock := openLimitApp(t, 10)
	l := newOpenLimit(a, 1000)
	const checkouts = 50
	var admitted atomic.Int64
	together := func() (done chan struct{}) {
		done = make(chan struct{})
		var wg sync.WaitGroup
		for range checkouts {
			wg.Go(func() {
				if l.admit(context.Background()) {
					admitted.Add(1)
				}
			})
		}
		go func() { wg.Wait(); close(done) }()
		return done
	}
	waitLists := func(n int64) {
		for deadline := time.Now().Add(10 * time.Second); storage.lists.Load() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("listing %d did not begin", n)
			}
		}
	}

	storage.gate = make(chan struct{})
	done := together()
	waitLists(1)
	close(storage.gate)
	<-done
	if n := storage.lists.Load(); n != 1 {
		t.Errorf("%d checkouts made %d listings, want 1", checkouts, n)
	}

	storage.gate = make(chan struct{})
	clock.Add(openCountEvery)
	select {
	case <-together():
	case <-time.After(10 * time.Second):
		t.Fatal("checkouts waited for a listing of a count a second old")
	}
	waitLists(2)
	close(storage.gate)
	settle(l)
	if n := storage.lists.Load(); n != 2 {
		t.Errorf("%d checkouts a second later made %d listings, want 1", checkouts, n-1)
	}
	if n := admitted.Load(); n != 2*checkouts {
		t.Errorf("%d of %d admitted under the cap", n, 2*checkouts)
	}
}

// TestOpenLimitWarnsOncePerMinute: a shop at its cap logs a warning at
// most once a minute, however many checkouts it refuses.
func TestOpenLimitWarnsOncePerMinute(t *testing.T) {
	a, _, clock := openLimitApp(t, 1)
	core, logs := observer.New(zap.WarnLevel)
	a.logger = zap.New(core)
	l := newOpenLimit(a, 1)
	for range 100 {
		l.admit(context.Background())
		clock.Add(100 * time.Millisecond)
	}
	// 100 refusals over 10 s, then 100 over the next 10 s a minute on.
	clock.Add(time.Minute)
	for range 100 {
		l.admit(context.Background())
		clock.Add(100 * time.Millisecond)
	}
	warnings := logs.FilterMessageSnippet("max_open_orders").All()
	if len(warnings) != 2 {
		t.Fatalf("%d warnings, want 2: %v", len(warnings), warnings)
	}
	if refused := warnings[1].ContextMap()["refused"]; refused != int64(100) {
		t.Errorf("the second warning counts %v refusals, want the 100 since the first", refused)
	}
}

// BenchmarkOpenLimitAdmit: what the cap adds to a checkout with 10 000
// open orders, the listing amortised over a second of checkouts.
func BenchmarkOpenLimitAdmit(b *testing.B) {
	storage := newBenchStorage()
	for range defaultMaxOpenOrders {
		storage.values[openKey(NewOrderID())] = []byte("{}")
	}
	a := &App{logger: zap.NewNop(), now: time.Now}
	a.useStorage(storage)
	l := newOpenLimit(a, 1<<30)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.admit(context.Background())
		}
	})
}

// TestClientLimitDefault: without max_orders_per_client a public client
// may make 50 orders per window and no more, while a loopback, private,
// link-local or shared address (a load balancer's or the shop's backend,
// every buyer at once) is not bounded; a number bounds every address, and
// off (-1) none. Before: the default bounded nothing.
func TestClientLimitDefault(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	l := newClientLimit(0, 30*time.Minute)
	for i := range 50 {
		if !l.allow("203.0.113.9", now.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("order %d of a public client refused", i+1)
		}
	}
	if l.allow("203.0.113.9", now.Add(time.Minute)) {
		t.Error("the 51st order of a public client within order_ttl allowed")
	}
	if !l.allow("203.0.113.9", now.Add(30*time.Minute)) {
		t.Error("an order after the first left the window refused")
	}
	for _, addr := range []string{"127.0.0.1", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "::ffff:10.1.2.3",
		"fd12:3456::1", "fe80::1%eth0", "169.254.1.1", "100.64.0.1", "100.127.255.254", "unix/@kassa", ""} {
		for i := range 200 {
			if !l.allow(addr, now) {
				t.Errorf("order %d from %q refused by the default", i+1, addr)
				break
			}
		}
	}
	explicit := newClientLimit(2, 30*time.Minute)
	for i, want := range []bool{true, true, false} {
		if got := explicit.allow("127.0.0.1", now); got != want {
			t.Errorf("max_orders_per_client 2: order %d from loopback allowed %v, want %v", i+1, got, want)
		}
	}
	if off := newClientLimit(-1, 30*time.Minute); off != nil {
		t.Errorf("max_orders_per_client off: %+v, want no bound", off)
	}
}

func TestIsPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"203.0.113.9":         true,
		"198.51.100.7":        true,
		"::ffff:198.51.100.7": true,
		"2001:db8:1:2::1":     true,
		"100.63.255.255":      true,
		"100.128.0.1":         true,
		"172.32.0.1":          true,
		"127.0.0.1":           false,
		"::1":                 false,
		"10.0.0.1":            false,
		"172.31.255.255":      false,
		"192.168.0.1":         false,
		"::ffff:192.168.0.1":  false,
		"fc00::1":             false,
		"fe80::1%eth0":        false,
		"169.254.169.254":     false,
		"100.64.0.1":          false,
		"0.0.0.0":             false,
		"::":                  false,
		"224.0.0.1":           false,
		"unix/@kassa":         false,
		"":                    false,
	} {
		if got := isPublic(addr); got != want {
			t.Errorf("isPublic(%q) = %v, want %v", addr, got, want)
		}
	}
}
