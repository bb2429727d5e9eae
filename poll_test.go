package kassa

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestStatusGateCoalesces: 200 concurrent polls of one order make one
// provider call; after the window, the next poll makes one more.
func TestStatusGateCoalesces(t *testing.T) {
	g := newStatusGate(time.Second)
	clock := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	g.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	var calls atomic.Int32
	release := make(chan struct{})
	ask := func(context.Context) (PaymentStatus, error) {
		calls.Add(1)
		<-release
		return PaymentStatus{Paid: true}, nil
	}
	var wg sync.WaitGroup
	for range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := g.check(context.Background(), "order-1", ask)
			if err != nil || !st.Paid {
				t.Errorf("poll: %+v, %v", st, err)
			}
		}()
	}
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := calls.Load(); n != 1 {
		t.Fatalf("200 concurrent polls made %d provider calls, want 1", n)
	}
	g.check(context.Background(), "order-1", ask)
	if n := calls.Load(); n != 1 {
		t.Errorf("a poll within the window made a call")
	}
	g.check(context.Background(), "order-2", ask)
	if n := calls.Load(); n != 2 {
		t.Errorf("another order's poll made %d calls in all, want 2", n)
	}
	mu.Lock()
	clock = clock.Add(time.Second)
	mu.Unlock()
	g.check(context.Background(), "order-1", ask)
	if n := calls.Load(); n != 3 {
		t.Errorf("a poll after the window made %d calls in all, want 3", n)
	}
}

// TestStatusGateWaitsForSlowCall: a call slower than the window is still
// the only one; a poller whose request ends stops waiting.
func TestStatusGateWaitsForSlowCall(t *testing.T) {
	g := newStatusGate(time.Nanosecond)
	var calls atomic.Int32
	release := make(chan struct{})
	go g.check(context.Background(), "o", func(context.Context) (PaymentStatus, error) {
		calls.Add(1)
		<-release
		return PaymentStatus{}, nil
	})
	for calls.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := g.check(ctx, "o", nil); err != context.Canceled {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	close(release)
	if calls.Load() != 1 {
		t.Errorf("%d calls", calls.Load())
	}
}

func TestStatusGateSweeps(t *testing.T) {
	g := newStatusGate(time.Nanosecond)
	ask := func(context.Context) (PaymentStatus, error) { return PaymentStatus{}, nil }
	for i := range maxStatusChecks * 3 {
		g.check(context.Background(), NewOrderID()+string(rune('a'+i%26)), ask)
	}
	if n := len(g.checks); n > maxStatusChecks {
		t.Errorf("%d checks kept, want at most %d", n, maxStatusChecks)
	}
}
