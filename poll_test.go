package kassa

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestStatusAnswerFollowsRecord: polls of an unchanged record share one
// answer; a changed record is answered as it now stands, at once; a
// provider reporting the payment paid changes the answer, not the shared
// order.
func TestStatusAnswerFollowsRecord(t *testing.T) {
	h, _, provider := benchCheckout(t)
	id := benchOrder(t, h)
	poll := func() map[string]any {
		t.Helper()
		w := serveBench(t, h, httptest.NewRequest(http.MethodGet, "/pay?order="+id, nil))
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); w.Code != http.StatusOK || err != nil {
			t.Fatalf("status %d %s: %v", w.Code, w.Body, err)
		}
		return v
	}
	if st := poll()["state"]; st != "pending" {
		t.Fatalf("state %v, want pending", st)
	}
	first := h.app.statuses.answers[id]
	poll()
	if h.app.statuses.answers[id] != first {
		t.Error("an unchanged record was answered anew")
	}

	o, err := h.app.orders.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	o.State, o.ClosedAt = OrderCancelled, time.Now()
	if err := h.app.orders.Save(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if st := poll()["state"]; st != "cancelled" {
		t.Errorf("after the record changed: state %v, want cancelled", st)
	}

	id = benchOrder(t, h)
	provider.paid.Store(true)
	if v := poll(); v["state"] != "paid" || v["paid_at"] == nil {
		t.Errorf("paid at the provider: %v", v)
	}
	if a := h.app.statuses.answers[id]; a.order.State != OrderPending || !a.order.PaidAt.IsZero() || !strings.Contains(string(a.body), `"pending"`) {
		t.Errorf("the shared answer changed: %+v %s", a.order, a.body)
	}
}

// TestStatusAnswersBounded: past maxStatusAnswers orders the answers are
// forgotten, not kept for ever.
func TestStatusAnswersBounded(t *testing.T) {
	g := newStatusGate(time.Second)
	for range maxStatusAnswers + 10 {
		o := fullOrder()
		rec, err := encodeOrder(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.answer(o.ID, rec); err != nil {
			t.Fatal(err)
		}
		if len(g.answers) > maxStatusAnswers {
			t.Fatalf("%d answers kept", len(g.answers))
		}
	}
	if _, err := g.answer(NewOrderID(), []byte(`{"id":"x"`)); err == nil {
		t.Error("a broken record was answered")
	}
}
