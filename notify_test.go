package kassa

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-kassa/kassa/example/receiver"
	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// delivered is one POST a receiver got.
type delivered struct {
	id, signature string
	body          []byte
	status        int // what it answered; 0: it dropped the connection
}

// testReceiver is a shop's receiver: it records every POST and answers
// with the status answer gives for the nth (0 drops the connection).
type testReceiver struct {
	mu     sync.Mutex
	got    []delivered
	answer func(n int) int
	srv    *httptest.Server
}

func newTestReceiver(t *testing.T, answer func(n int) int) *testReceiver {
	r := &testReceiver{answer: answer}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		status := r.answer(len(r.got))
		r.got = append(r.got, delivered{id: req.Header.Get("Kassa-Event-Id"), signature: req.Header.Get("Kassa-Signature"), body: body, status: status})
		r.mu.Unlock()
		if req.Header.Get("Content-Type") != "application/json" || req.Method != http.MethodPost {
			t.Errorf("delivery: %s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
		}
		if status == 0 {
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		w.WriteHeader(status)
		fmt.Fprint(w, "garbage that is no reply at all")
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *testReceiver) deliveries() []delivered {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivered(nil), r.got...)
}

// successes counts the deliveries of each event the receiver took.
func (r *testReceiver) successes() map[string]int {
	n := map[string]int{}
	for _, d := range r.deliveries() {
		if d.status >= 200 && d.status < 300 {
			n[d.id]++
		}
	}
	return n
}

func always(status int) func(int) int { return func(int) int { return status } }

const testNotifySecret = "whsec-test-3f9a1c"

// notifyShop is a life shop whose app notifies url of events (all when
// none are named).
func notifyShop(t *testing.T, storage certmagic.Storage, clock *testClock, url string, events ...string) *lifeShop {
	t.Helper()
	s := newLifeShop(t, newLifeProvider("pegas"), storage, clock)
	s.app.Notify = []*Notify{{URL: url, Secret: testNotifySecret, Events: events}}
	if err := s.app.provisionNotify(); err != nil {
		t.Fatal(err)
	}
	return s
}

// paidOrder checks out and pays an order, and has the reconciler notice.
func (s *lifeShop) paidOrder() *Order {
	s.t.Helper()
	o := s.created("")
	s.provider.pay(o.Payment.ID)
	s.pass()
	if o = s.load(o.ID); o.State != OrderPaid {
		s.t.Fatalf("order %s is %s, want paid", o.ID, o.State)
	}
	return o
}

// deliver runs one pass of the deliverer and waits for its deliveries.
func (s *lifeShop) deliver() {
	s.app.deliverer.pass(context.Background())
	s.app.deliverer.wg.Wait()
}

// event reads an event's file.
func (s *lifeShop) event(id string) *eventFile {
	s.t.Helper()
	f, err := s.app.loadEvent(context.Background(), id)
	if err != nil {
		s.t.Fatalf("loading event %s: %v", id, err)
	}
	return f
}

// admin asks the admin API.
func (s *lifeShop) admin(method, target string) (int, string) {
	r := httptest.NewRequest(method, target, nil)
	w := httptest.NewRecorder()
	if err := s.app.serveAdmin(w, r); err != nil {
		writeAdminError(w, err)
	}
	return w.Code, w.Body.String()
}

func TestNotifySignature(t *testing.T) {
	rcv := newTestReceiver(t, always(http.StatusNoContent))
	s := notifyShop(t, nil, nil, rcv.srv.URL, "order.paid")
	o := s.paidOrder()
	s.clock.Add(3 * time.Second)
	s.deliver()
	got := rcv.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries, want 1", len(got))
	}
	d := got[0]
	want := eventIDOf(t, s, o.ID, 1)
	if d.id != want {
		t.Errorf("Kassa-Event-Id = %q, want %q", d.id, want)
	}
	ts, sig, ok := strings.Cut(strings.TrimPrefix(d.signature, "t="), ",v1=")
	if !ok || ts != strconv.FormatInt(s.clock.Now().Unix(), 10) {
		t.Fatalf("Kassa-Signature = %q, want t=%d,v1=...", d.signature, s.clock.Now().Unix())
	}
	mac := hmac.New(sha256.New, []byte(testNotifySecret))
	mac.Write([]byte(ts + "."))
	mac.Write(d.body)
	if !hmac.Equal([]byte(sig), []byte(hex.EncodeToString(mac.Sum(nil)))) {
		t.Errorf("signature %s does not verify", sig)
	}
	var body struct {
		ID, Type  string
		CreatedAt time.Time `json:"created_at"`
		Order     struct {
			ID          string `json:"order_id"`
			State       string `json:"state"`
			ShopOrderID string `json:"shop_order_id"`
			Amount      string `json:"amount"`
		} `json:"order"`
	}
	if err := json.Unmarshal(d.body, &body); err != nil {
		t.Fatal(err)
	}
	if body.ID != want || body.Type != "order.paid" || body.Order.ID != o.ID || body.Order.State != "paid" || body.Order.Amount != "350.00" {
		t.Errorf("body = %s", d.body)
	}
	if bytes.Contains(d.body, []byte(`"events"`)) {
		t.Errorf("body carries the order's event references: %s", d.body)
	}
}

func TestNotifyRetriesKeepIDAndBody(t *testing.T) {
	rcv := newTestReceiver(t, func(n int) int { return []int{500, 0, 204}[min(n, 2)] })
	s := notifyShop(t, nil, nil, rcv.srv.URL, "order.paid")
	o := s.paidOrder()
	step := func(d time.Duration, want int) {
		t.Helper()
		s.clock.Add(d)
		s.deliver()
		if n := len(rcv.deliveries()); n != want {
			t.Fatalf("after %v more: %d deliveries, want %d", d, n, want)
		}
	}
	step(0, 1)              // 500
	step(9*time.Second, 1)  // the first retry waits 10 s
	step(time.Second, 2)    // the connection drops
	step(19*time.Second, 2) // the second waits 20 s
	step(time.Second, 3)    // 204
	step(2*time.Hour, 3)    // delivered: never again
	got := rcv.deliveries()
	for _, d := range got[1:] {
		if d.id != got[0].id || !bytes.Equal(d.body, got[0].body) {
			t.Errorf("a retry differs: %s %s, first %s %s", d.id, d.body, got[0].id, got[0].body)
		}
	}
	f := s.event(eventIDOf(t, s, o.ID, 1))
	if tg := f.Targets[0]; tg.State != deliveryDelivered || tg.Attempts != 3 || tg.LastStatus != 204 {
		t.Errorf("delivery = %+v", tg)
	}
	if s.storage.Exists(context.Background(), outboxKey(f.ID)) {
		t.Error("the outbox entry of a delivered event stays")
	}
}

func TestNotifyReceiverDownForAnHour(t *testing.T) {
	var mu sync.Mutex
	up := false
	rcv := newTestReceiver(t, func(int) int {
		mu.Lock()
		defer mu.Unlock()
		if up {
			return http.StatusOK
		}
		return http.StatusServiceUnavailable
	})
	s := notifyShop(t, nil, nil, rcv.srv.URL)
	var orders []*Order
	for range 3 {
		orders = append(orders, s.paidOrder())
		s.deliver()
	}
	for range 60 {
		s.clock.Add(time.Minute)
		s.deliver()
	}
	mu.Lock()
	up = true
	mu.Unlock()
	for range 120 {
		s.clock.Add(time.Minute)
		s.deliver()
	}
	ok := rcv.successes()
	for _, o := range orders {
		o = s.load(o.ID)
		if len(o.Events) != 2 { // order.paid, receipt.done
			t.Errorf("order %s recorded events %v, want order.paid and receipt.done", o.ID, o.Events)
		}
		for _, ref := range o.Events {
			if ok[ref.ID] != 1 {
				t.Errorf("event %s (%s) delivered %d times, want once", ref.ID, ref.Type, ok[ref.ID])
			}
			if f := s.event(ref.ID); f.state() != deliveryDelivered {
				t.Errorf("event %s is %s", ref.ID, f.state())
			}
		}
	}
	if keys, _ := s.storage.List(context.Background(), outboxPrefix, false); len(keys) != 0 {
		t.Errorf("outbox holds %v", keys)
	}
}

func TestNotifyFailedThenRedelivered(t *testing.T) {
	var mu sync.Mutex
	status := http.StatusInternalServerError
	rcv := newTestReceiver(t, func(int) int { mu.Lock(); defer mu.Unlock(); return status })
	s := notifyShop(t, nil, nil, rcv.srv.URL, "order.paid")
	o := s.paidOrder()
	id := eventIDOf(t, s, o.ID, 1)
	for range 25 * 6 {
		s.deliver()
		s.clock.Add(10 * time.Minute)
	}
	s.deliver()
	f := s.event(id)
	if f.state() != deliveryFailed || f.Targets[0].Attempts < 24 {
		t.Fatalf("after 25 h: event %s, %+v", f.state(), f.Targets[0])
	}
	n := len(rcv.deliveries())
	s.clock.Add(24 * time.Hour)
	s.deliver()
	if len(rcv.deliveries()) != n {
		t.Error("a failed event was delivered again")
	}
	code, body := s.admin(http.MethodGet, "/kassa/events?state=failed")
	if code != http.StatusOK || !strings.Contains(body, `"id":"`+id+`"`) {
		t.Fatalf("GET /kassa/events?state=failed: %d %s", code, body)
	}
	if code, body := s.admin(http.MethodGet, "/kassa/events?state=pending"); code != http.StatusOK || strings.Contains(body, id) {
		t.Errorf("GET /kassa/events?state=pending: %d %s", code, body)
	}
	if code, _ := s.admin(http.MethodPost, "/kassa/events/"+NewOrderID()+"-1-0123abcd/redeliver"); code != http.StatusNotFound {
		t.Errorf("redeliver of an unknown event: %d, want 404", code)
	}
	mu.Lock()
	status = http.StatusAccepted
	mu.Unlock()
	if code, body := s.admin(http.MethodPost, "/kassa/events/"+id+"/redeliver"); code != http.StatusOK || !strings.Contains(body, `"state":"pending"`) {
		t.Fatalf("redeliver: %d %s", code, body)
	}
	s.deliver()
	if code, body := s.admin(http.MethodGet, "/kassa/events/"+id); code != http.StatusOK || !strings.Contains(body, `"state":"delivered"`) || !strings.Contains(body, `"body":{`) {
		t.Errorf("GET the event: %d %s", code, body)
	}
	if got := rcv.deliveries(); !bytes.Equal(got[len(got)-1].body, got[0].body) || rcv.successes()[id] != 1 {
		t.Errorf("the redelivery: %d successes, same body %v", rcv.successes()[id], bytes.Equal(got[len(got)-1].body, got[0].body))
	}
}

// TestNotifyCrashBeforeTheEvent: a crash after the record that names an
// event, before its file (write 2) or before its outbox entry (write 3),
// loses nothing: after a restart the reconciler writes what is missing,
// and the event is delivered once.
func TestNotifyCrashBeforeTheEvent(t *testing.T) {
	for _, crashAt := range []int{2, 3} {
		t.Run(fmt.Sprint("write ", crashAt), func(t *testing.T) {
			rcv := newTestReceiver(t, always(http.StatusOK))
			clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
			storage := newCrashStorage(t, clock.Now)
			s := notifyShop(t, lockableCrashStorage{storage}, clock, rcv.srv.URL, "order.paid")
			o := s.created("")
			storage.crashAtWrite(crashAt)
			if _, err := s.app.paid(context.Background(), o.ID, PaymentStatus{Paid: true}, ""); err == nil {
				t.Fatal("paid: no error from the crashed storage")
			}
			ref := s.load(o.ID).Events
			if len(ref) != 1 || storage.has(outboxKey(ref[0].ID)) || storage.has(eventKey(ref[0].ID)) != (crashAt == 3) || !storage.has(openKey(o.ID)) {
				t.Fatalf("after the crash: events %v, file %v, outbox %v, open %v", ref, storage.has(eventKey(ref[0].ID)),
					storage.has(outboxKey(ref[0].ID)), storage.has(openKey(o.ID)))
			}
			storage.restart()
			s = notifyShop(t, lockableCrashStorage{storage}, clock, rcv.srv.URL, "order.paid")
			s.pass()
			s.deliver()
			s.clock.Add(time.Hour)
			s.pass()
			s.deliver()
			if n := rcv.successes()[ref[0].ID]; n != 1 || len(rcv.deliveries()) != 1 {
				t.Errorf("event delivered %d times (of %d posts), want once", n, len(rcv.deliveries()))
			}
			if storage.has(openKey(o.ID)) || storage.has(outboxKey(ref[0].ID)) {
				t.Error("the order stays in the open index, or the event in the outbox")
			}
		})
	}
}

// lockingStorage is storage whose locks exclude each other, as a shared
// storage's do between instances.
type lockingStorage struct {
	certmagic.Storage
	mu   sync.Mutex
	held map[string]chan struct{}
}

func (s *lockingStorage) lock(name string) chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.held == nil {
		s.held = map[string]chan struct{}{}
	}
	if s.held[name] == nil {
		s.held[name] = make(chan struct{}, 1)
	}
	return s.held[name]
}

func (s *lockingStorage) Lock(ctx context.Context, name string) error {
	select {
	case s.lock(name) <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *lockingStorage) Unlock(_ context.Context, name string) error {
	<-s.lock(name)
	return nil
}

func TestNotifyTwoInstances(t *testing.T) {
	rcv := newTestReceiver(t, always(http.StatusOK))
	clock := &testClock{t: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)}
	storage := &lockingStorage{Storage: newBenchStorage()}
	one := notifyShop(t, storage, clock, rcv.srv.URL)
	two := notifyShop(t, storage, clock, rcv.srv.URL)
	var ids []string
	for i := range 6 {
		s := []*lifeShop{one, two}[i%2]
		for _, ref := range s.paidOrder().Events {
			ids = append(ids, ref.ID)
		}
	}
	for range 3 {
		var wg sync.WaitGroup
		for _, s := range []*lifeShop{one, two} {
			wg.Add(1)
			go func() { defer wg.Done(); s.deliver() }()
		}
		wg.Wait()
		clock.Add(time.Minute)
	}
	got := rcv.successes()
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times, want once", id, got[id])
		}
	}
	if len(ids) != 12 || len(rcv.deliveries()) != len(ids) {
		t.Errorf("%d events, %d posts; want 12 and 12", len(ids), len(rcv.deliveries()))
	}
}

func TestNotifySecretStaysSecret(t *testing.T) {
	const secret = "env-secret-7d2e19b0"
	t.Setenv("KASSA_TEST_NOTIFY_SECRET", secret)
	rcv := newTestReceiver(t, func(n int) int { return []int{500, 0, 200}[min(n, 2)] })
	core, logs := observer.New(zap.DebugLevel)
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	s.app.logger = zap.New(core)
	s.app.Notify = []*Notify{{URL: rcv.srv.URL, Secret: "{env.KASSA_TEST_NOTIFY_SECRET}"}}
	if err := s.app.provisionNotify(); err != nil {
		t.Fatal(err)
	}
	registry := prometheus.NewRegistry()
	if err := registerMetrics(registry); err != nil {
		t.Fatal(err)
	}
	o := s.paidOrder()
	for range 4 {
		s.deliver()
		s.clock.Add(time.Minute)
	}
	if len(rcv.successes()) != 2 {
		t.Fatalf("deliveries: %v", rcv.successes())
	}
	var seen strings.Builder
	for _, e := range logs.All() {
		seen.WriteString(e.Message)
		b, _ := json.Marshal(e.ContextMap())
		seen.Write(b)
	}
	for _, target := range []string{"/kassa/events", "/kassa/events/" + eventIDOf(t, s, o.ID, 1), "/kassa/orders/" + o.ID} {
		_, body := s.admin(http.MethodGet, target)
		seen.WriteString(body)
	}
	_, body := s.admin(http.MethodPost, "/kassa/events/"+eventIDOf(t, s, o.ID, 1)+"/redeliver")
	seen.WriteString(body)
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		_, _ = expfmt.MetricFamilyToText(&seen, mf)
	}
	for _, key := range []string{eventKey(eventIDOf(t, s, o.ID, 1)), eventKey(eventIDOf(t, s, o.ID, 2)), orderKey(o.ID)} {
		b, _ := s.storage.Load(context.Background(), key)
		seen.Write(b)
	}
	bad := &Notify{URL: "https://user:" + secret + "@shop.example/hook", Secret: secret}
	if err := bad.provision(); err == nil {
		t.Error("a URL with credentials was taken")
	} else {
		seen.WriteString(err.Error())
	}
	if !strings.Contains(seen.String(), "kassa_events_delivered_total") || !strings.Contains(seen.String(), "will retry") {
		t.Fatal("the test saw no metrics or no retry log: it checks nothing")
	}
	if strings.Contains(seen.String(), secret) {
		t.Error("the secret leaked into a log line, an answer, a metric or storage")
	}
}

func TestNoNotifyWritesNothing(t *testing.T) {
	storage := newBenchStorage()
	s := newLifeShop(t, newLifeProvider("pegas"), storage, nil)
	before := storage.writes.Load()
	o := s.paidOrder()
	if len(o.Events) != 0 {
		t.Errorf("order recorded events %v with no receiver", o.Events)
	}
	for _, prefix := range []string{eventsPrefix, outboxPrefix} {
		if keys, _ := storage.List(context.Background(), prefix, false); len(keys) != 0 {
			t.Errorf("%s holds %v with no receiver", prefix, keys)
		}
	}
	// The same flow with a receiver writes exactly one file and one outbox
	// entry per event more.
	rcv := newTestReceiver(t, always(http.StatusOK))
	storage2 := newBenchStorage()
	s2 := notifyShop(t, storage2, nil, rcv.srv.URL)
	before2 := storage2.writes.Load()
	o2 := s2.paidOrder()
	if extra := (storage2.writes.Load() - before2) - (storage.writes.Load() - before); extra != int64(2*len(o2.Events)) || len(o2.Events) != 2 {
		t.Errorf("notifications cost %d writes for %d events, want 2 each", extra, len(o2.Events))
	}
}

func TestNotifyConfig(t *testing.T) {
	for _, tc := range []struct {
		n    Notify
		want string
	}{
		{Notify{URL: "ftp://shop.example/x", Secret: "s"}, "http or https"},
		{Notify{URL: "https://shop.example/x"}, "secret is empty"},
		{Notify{URL: "https://shop.example/x", Secret: "{env.KASSA_TEST_UNSET_SECRET}"}, "secret is empty"},
		{Notify{URL: "https://shop.example/x", Secret: "s", Events: []string{"order.payed"}}, "order.paid, order.paid_late"},
	} {
		if err := tc.n.provision(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: err = %v, want one containing %q", tc.n, err, tc.want)
		}
	}
	n := Notify{URL: "https://shop.example/x", Secret: "s", Events: []string{"receipt.done"}}
	if err := n.provision(); err != nil || time.Duration(n.Timeout) != defaultNotifyTimeout || !n.wants[eventReceiptDone] || n.wants[eventPaid] {
		t.Errorf("provisioned %+v, %v", n, err)
	}
	for n, want := range map[int]time.Duration{1: 10 * time.Second, 2: 20 * time.Second, 3: 40 * time.Second, 9: 2560 * time.Second, 10: time.Hour, 100: time.Hour} {
		if got := retryWait(n); got != want {
			t.Errorf("retryWait(%d) = %v, want %v", n, got, want)
		}
	}
}

// eventIDOf is the id of order id's nth event, as its record names it.
func eventIDOf(t *testing.T, s *lifeShop, id string, n int) string {
	t.Helper()
	events := s.load(id).Events
	if len(events) < n {
		t.Fatalf("order %s has %d events, want at least %d", id, len(events), n)
	}
	return events[n-1].ID
}

// TestReferenceReceiverTakesARealEvent: the event body caddy-kassa posts is
// the one example/receiver reads (DESIGN.md's contract): the receiver
// marks the order paid with the shop's id, the order id and the amount as
// a string with two decimals.
func TestReferenceReceiverTakesARealEvent(t *testing.T) {
	var marked []string
	h := &receiver.Handler{Secret: []byte(testNotifySecret), Dedup: new(receiver.MemoryDedup),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		MarkPaid: func(_ context.Context, shopOrderID, orderID, amount string) error {
			marked = append(marked, shopOrderID+" "+orderID+" "+amount)
			return nil
		}}
	srv := httptest.NewServer(h)
	defer srv.Close()
	s := notifyShop(t, nil, nil, srv.URL, "order.paid")
	h.Now = s.clock.Now
	o := s.paidOrder()
	s.deliver()
	if want := []string{" " + o.ID + " 350.00"}; !slices.Equal(marked, want) {
		t.Errorf("the reference receiver marked %q, want %q", marked, want)
	}
	if f := s.event(eventIDOf(t, s, o.ID, 1)); f.state() != deliveryDelivered {
		t.Errorf("the event is %s, want delivered (the receiver answered %d)", f.state(), f.Targets[0].LastStatus)
	}
}

// TestDelivererWindowRotates: with more events waiting than a pass looks
// at, successive passes look at all of them in turn, so events that wait
// long (a receiver down for a day) never keep newer ones from delivery.
func TestDelivererWindowRotates(t *testing.T) {
	ids := make([]string, 2*maxListedEvents+maxListedEvents/2)
	for i := range ids {
		ids[i] = fmt.Sprintf("%06d", i)
	}
	d := &deliverer{}
	seen := map[string]int{}
	for range 3 {
		w := d.window(ids)
		if len(w) != maxListedEvents {
			t.Fatalf("a window of %d ids, want %d", len(w), maxListedEvents)
		}
		for _, id := range w {
			seen[id]++
		}
	}
	for _, id := range ids {
		if seen[id] == 0 {
			t.Fatalf("event %s never looked at in three passes over %d events", id, len(ids))
		}
	}
	if w := d.window(ids[:10]); len(w) != 10 {
		t.Errorf("a short outbox gives a window of %d, want all 10", len(w))
	}
}

// TestRemovedReceiverFailsItsDeliveries: an event for a receiver the
// config no longer has fails its delivery at once, with a reason, and
// leaves the outbox, instead of waiting there for ever.
func TestRemovedReceiverFailsItsDeliveries(t *testing.T) {
	rcv := newTestReceiver(t, always(http.StatusInternalServerError))
	s := notifyShop(t, nil, nil, rcv.srv.URL, "order.paid")
	o := s.paidOrder()
	id := eventIDOf(t, s, o.ID, 1)
	other := newTestReceiver(t, always(http.StatusNoContent))
	s.app.Notify = []*Notify{{URL: other.srv.URL, Secret: testNotifySecret}}
	if err := s.app.provisionNotify(); err != nil {
		t.Fatal(err)
	}
	s.deliver()
	f := s.event(id)
	inOutbox := s.storage.Exists(context.Background(), outboxKey(id))
	if f.state() != deliveryFailed || f.Targets[0].LastError == "" || inOutbox {
		t.Errorf("event %s, delivery %+v, in the outbox %v; want failed with a reason, out of the outbox", f.state(), f.Targets[0], inOutbox)
	}
	if n := len(rcv.deliveries()) + len(other.deliveries()); n != 0 {
		t.Errorf("%d posts, want none", n)
	}
}

// TestLeaseCoversEveryPost: an event's posts to its receivers are made
// one after another, so the lease taken for them covers all their
// timeouts: another instance never posts it while this one still does.
func TestLeaseCoversEveryPost(t *testing.T) {
	var s *lifeShop
	var orderID string
	var leases []time.Time
	answer := func(int) int {
		for _, ref := range s.load(orderID).Events {
			for _, tg := range s.event(ref.ID).Targets {
				leases = append(leases, tg.LeaseUntil)
			}
		}
		return http.StatusNoContent
	}
	a, b := newTestReceiver(t, answer), newTestReceiver(t, answer)
	s = notifyShop(t, nil, nil, a.srv.URL, "order.paid")
	s.app.Notify = append(s.app.Notify, &Notify{URL: b.srv.URL, Secret: testNotifySecret, Events: []string{"order.paid"}})
	if err := s.app.provisionNotify(); err != nil {
		t.Fatal(err)
	}
	start := s.clock.Now()
	orderID = s.paidOrder().ID
	s.deliver()
	want := start.Add(2*time.Duration(s.app.Notify[0].Timeout) + leaseMargin)
	if len(leases) == 0 {
		t.Fatal("no post reached a receiver")
	}
	for _, l := range leases {
		if l.Before(want) {
			t.Errorf("a lease until %v, want at least %v (two receivers' timeouts and the margin)", l, want)
		}
	}
}

// TestCompactionDeletesAnOrdersEvents: an unpaid order compacted after
// keep_unpaid takes its events' files with it: their bodies hold the
// buyer's contacts, kept no longer than the order.
func TestCompactionDeletesAnOrdersEvents(t *testing.T) {
	rcv := newTestReceiver(t, always(http.StatusNoContent))
	s := notifyShop(t, nil, nil, rcv.srv.URL, "order.expired")
	o := s.created("")
	s.clock.Add(time.Duration(s.app.OrderTTL) + time.Minute)
	s.pass()
	if o = s.load(o.ID); o.State != OrderExpired || len(o.Events) != 1 {
		t.Fatalf("order %s with events %v, want expired with its order.expired", o.State, o.Events)
	}
	s.deliver()
	id := o.Events[0].ID
	ctx := context.Background()
	if !s.storage.Exists(ctx, eventKey(id)) {
		t.Fatal("no event file before the compaction")
	}
	s.clock.Add(time.Duration(s.app.KeepUnpaid) + time.Hour)
	if n, err := s.app.orders.Compact(ctx, time.Duration(s.app.KeepUnpaid), nil); err != nil || n != 1 {
		t.Fatalf("compacted %d orders: %v, want 1", n, err)
	}
	if s.storage.Exists(ctx, eventKey(id)) || s.storage.Exists(ctx, outboxKey(id)) {
		t.Error("the compacted order's event file or outbox entry is still stored")
	}
}
