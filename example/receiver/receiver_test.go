package receiver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

const testSecret = "whsec-reference-receiver-test"

// testNow is the receiver's clock in the tests.
var testNow = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

// paidEvent is an order.paid body as caddy-kassa sends it.
func paidEvent(id string) []byte {
	return []byte(`{"id":"` + id + `","type":"order.paid","created_at":"2026-12-05T11:59:58Z","order":{` +
		`"order_id":"LBqAlBc-Oq4U1YQ0vl6RBw","shop_order_id":"BACKEND-42","state":"paid","amount":"350.00",` +
		`"items":[{"name":"Зелёный чай","qty":2,"price":"175.00","vat":"vat22"}],"email":"buyer@example.com",` +
		`"paid_at":"2026-12-05T11:59:57Z","receipt":{"state":"queued"}}}`)
}

// sign is the Kassa-Signature of body at t under secret, made here with
// crypto/hmac, apart from the receiver's code.
func sign(secret string, t time.Time, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	fmt.Fprintf(mac, "%d.%s", t.Unix(), body)
	return fmt.Sprintf("t=%d,v1=%s", t.Unix(), hex.EncodeToString(mac.Sum(nil)))
}

// backend counts the orders it marked paid and fails while fail is set.
type backend struct {
	mu    sync.Mutex
	paid  []string // "shopOrderID orderID amount"
	calls int
	fail  bool
}

func (b *backend) markPaid(_ context.Context, shopOrderID, orderID, amount string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.calls++
	if b.fail {
		return errors.New("database is down")
	}
	b.paid = append(b.paid, shopOrderID+" "+orderID+" "+amount)
	return nil
}

func (b *backend) marked() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.paid...)
}

// newReceiver is a Handler over b, logging to log.
func newReceiver(b *backend, log *bytes.Buffer) *Handler {
	return &Handler{Secret: []byte(testSecret), Dedup: new(MemoryDedup), MarkPaid: b.markPaid,
		Logger: slog.New(slog.NewTextHandler(log, nil)), Now: func() time.Time { return testNow }}
}

// deliver posts body with id and signature as caddy-kassa does.
func deliver(h http.Handler, id, signature string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/kassa-events", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Kassa-Event-Id", id)
	if signature != "" {
		r.Header.Set("Kassa-Signature", signature)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func is2xx(code int) bool { return code >= 200 && code < 300 }

// TestPaidEvent: a correctly signed order.paid marks the backend's order
// paid, with its amount, and is answered 2xx; another event type is
// answered 2xx and marks nothing.
func TestPaidEvent(t *testing.T) {
	var b backend
	var log bytes.Buffer
	h := newReceiver(&b, &log)
	body := paidEvent("ev_1")
	if w := deliver(h, "ev_1", sign(testSecret, testNow.Add(-30*time.Second), body), body); !is2xx(w.Code) {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got := b.marked(); len(got) != 1 || got[0] != "BACKEND-42 LBqAlBc-Oq4U1YQ0vl6RBw 350.00" {
		t.Errorf("marked paid: %q", got)
	}
	late := bytes.Replace(paidEvent("ev_2"), []byte(`"order.paid"`), []byte(`"order.paid_late"`), 1)
	if w := deliver(h, "ev_2", sign(testSecret, testNow, late), late); !is2xx(w.Code) || len(b.marked()) != 2 {
		t.Errorf("order.paid_late: %d %s, marked %q", w.Code, w.Body, b.marked())
	}
	expired := bytes.Replace(paidEvent("ev_3"), []byte(`"order.paid"`), []byte(`"order.expired"`), 1)
	if w := deliver(h, "ev_3", sign(testSecret, testNow, expired), expired); !is2xx(w.Code) || len(b.marked()) != 2 {
		t.Errorf("order.expired: %d %s, marked %q", w.Code, w.Body, b.marked())
	}
}

// TestRefusals: a delivery whose signature, time, header or body is wrong
// is 400 (413 over MaxBody), marks nothing, and neither the answer nor
// the log holds the secret.
func TestRefusals(t *testing.T) {
	body := paidEvent("ev_1")
	good := sign(testSecret, testNow, body)
	mac := good[strings.Index(good, "v1=")+3:]
	tooBig := append(paidEvent("ev_1"), bytes.Repeat([]byte(" "), MaxBody)...)
	for _, tc := range []struct {
		name, id, signature string
		body                []byte
		status              int
	}{
		{"wrong secret", "ev_1", sign("another-secret", testNow, body), body, http.StatusBadRequest},
		{"tampered body", "ev_1", good, bytes.Replace(body, []byte("350.00"), []byte("3.50"), 1), http.StatusBadRequest},
		{"stale", "ev_1", sign(testSecret, testNow.Add(-DefaultTolerance-time.Second), body), body, http.StatusBadRequest},
		{"future", "ev_1", sign(testSecret, testNow.Add(DefaultTolerance+time.Second), body), body, http.StatusBadRequest},
		{"another time, same MAC", "ev_1", fmt.Sprintf("t=%d,v1=%s", testNow.Unix()+1, mac), body, http.StatusBadRequest},
		{"no header", "ev_1", "", body, http.StatusBadRequest},
		{"no time", "ev_1", "v1=" + mac, body, http.StatusBadRequest},
		{"no MAC", "ev_1", fmt.Sprintf("t=%d", testNow.Unix()), body, http.StatusBadRequest},
		{"garbled time", "ev_1", "t=noon,v1=" + mac, body, http.StatusBadRequest},
		{"garbled MAC", "ev_1", fmt.Sprintf("t=%d,v1=zz%s", testNow.Unix(), mac[2:]), body, http.StatusBadRequest},
		{"garbage", "ev_1", "garbage", body, http.StatusBadRequest},
		{"another id in the header", "ev_2", good, body, http.StatusBadRequest},
		{"signed, not JSON", "ev_1", sign(testSecret, testNow, []byte("{nope")), []byte("{nope"), http.StatusBadRequest},
		{"over MaxBody", "ev_1", sign(testSecret, testNow, tooBig), tooBig, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b backend
			var log bytes.Buffer
			w := deliver(newReceiver(&b, &log), tc.id, tc.signature, tc.body)
			if w.Code != tc.status || b.calls != 0 {
				t.Errorf("%d %s, %d MarkPaid calls; want %d and none", w.Code, w.Body, b.calls, tc.status)
			}
			if strings.Contains(w.Body.String()+log.String(), testSecret) {
				t.Errorf("the secret is in the answer or the log:\n%s%s", w.Body, &log)
			}
		})
	}
}

// TestDuplicate: an event delivered again is answered 2xx and handled
// once.
func TestDuplicate(t *testing.T) {
	var b backend
	var log bytes.Buffer
	h := newReceiver(&b, &log)
	body := paidEvent("ev_1")
	for i := range 3 {
		if w := deliver(h, "ev_1", sign(testSecret, testNow.Add(time.Duration(i)*time.Second), body), body); !is2xx(w.Code) {
			t.Fatalf("delivery %d: %d %s", i+1, w.Code, w.Body)
		}
	}
	if b.calls != 1 {
		t.Errorf("MarkPaid called %d times, want once", b.calls)
	}
}

// TestMarkPaidFails: a MarkPaid failure is 5xx, so caddy-kassa retries;
// the retry with the same id marks the order paid, and the log names the
// event but never the secret.
func TestMarkPaidFails(t *testing.T) {
	b := backend{fail: true}
	var log bytes.Buffer
	h := newReceiver(&b, &log)
	body := paidEvent("ev_1")
	if w := deliver(h, "ev_1", sign(testSecret, testNow, body), body); w.Code < 500 {
		t.Fatalf("MarkPaid failed: %d %s, want 5xx", w.Code, w.Body)
	}
	b.mu.Lock()
	b.fail = false
	b.mu.Unlock()
	if w := deliver(h, "ev_1", sign(testSecret, testNow, body), body); !is2xx(w.Code) {
		t.Fatalf("the retry: %d %s", w.Code, w.Body)
	}
	if got := b.marked(); b.calls != 2 || len(got) != 1 {
		t.Errorf("%d MarkPaid calls, marked %q; want 2 calls, one order marked", b.calls, got)
	}
	if !strings.Contains(log.String(), "event_id=ev_1") || strings.Contains(log.String(), testSecret) {
		t.Errorf("log:\n%s", &log)
	}
}

// TestConcurrentDeliveries: deliveries of one event at once (two Caddy
// instances, or a retry racing a slow first try) handle it once; each is
// answered 2xx or 409 (retry later), and a later delivery is 2xx.
func TestConcurrentDeliveries(t *testing.T) {
	var b backend
	var log bytes.Buffer
	h := newReceiver(&b, &log)
	body := paidEvent("ev_1")
	signature := sign(testSecret, testNow, body)
	start := make(chan struct{})
	codes := make([]int, 20)
	var wg sync.WaitGroup
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			codes[i] = deliver(h, "ev_1", signature, body).Code
		}()
	}
	close(start)
	wg.Wait()
	ok := 0
	for _, code := range codes {
		switch {
		case is2xx(code):
			ok++
		case code != http.StatusConflict:
			t.Errorf("a delivery got %d", code)
		}
	}
	if ok == 0 || b.calls != 1 {
		t.Errorf("%d deliveries answered 2xx, MarkPaid called %d times; want at least one, and once", ok, b.calls)
	}
	if w := deliver(h, "ev_1", signature, body); !is2xx(w.Code) || b.calls != 1 {
		t.Errorf("a later delivery: %d, %d MarkPaid calls", w.Code, b.calls)
	}
}

// TestEmptySecretRefusesEverything: a handler whose secret is unset (its
// environment variable missing) refuses every event, even one signed
// with the empty key, and marks nothing paid.
func TestEmptySecretRefusesEverything(t *testing.T) {
	b := &backend{}
	h := &Handler{Dedup: new(MemoryDedup), MarkPaid: b.markPaid, Now: func() time.Time { return testNow },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	body := paidEvent("LBqAlBc-Oq4U1YQ0vl6RBw-1-0123abcd")
	req := httptest.NewRequest(http.MethodPost, "/kassa-events", bytes.NewReader(body))
	req.Header.Set("Kassa-Event-Id", "LBqAlBc-Oq4U1YQ0vl6RBw-1-0123abcd")
	req.Header.Set("Kassa-Signature", sign("", testNow, body))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code < 500 || len(b.marked()) != 0 {
		t.Errorf("an event signed with the empty key: %d, marked %v; want 5xx and nothing marked", w.Code, b.marked())
	}
}
