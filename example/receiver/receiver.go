// Package receiver is a reference receiver of caddy-kassa's shop
// notifications, for a shop backend to copy: it checks an event's
// signature, handles each event once and marks the backend's order paid.
// It uses the standard library only.
package receiver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultTolerance is how far an event's signed time may be from the
// receiver's clock, either way, when Handler.Tolerance is zero: an older
// signature is a replay, a newer one a clock to fix.
const DefaultTolerance = 5 * time.Minute

// MaxBody caps an event's body; caddy-kassa's are a few kilobytes.
const MaxBody = 1 << 20

// Event is a notification's body.
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"` // order.paid, order.paid_late, order.expired, ...
	CreatedAt time.Time `json:"created_at"`
	Order     Order     `json:"order"`
}

// Order is the order an event is about, as the shop's operator sees it.
type Order struct {
	OrderID     string          `json:"order_id"`
	ShopOrderID string          `json:"shop_order_id"` // the backend's X-Kassa-Order
	State       string          `json:"state"`
	Amount      string          `json:"amount"` // a decimal string, "350.00"
	Items       json.RawMessage `json:"items,omitempty"`
	Email       string          `json:"email,omitempty"`
	Phone       string          `json:"phone,omitempty"`
	PaidAt      *time.Time      `json:"paid_at"`
	Receipt     json.RawMessage `json:"receipt,omitempty"`
}

// ErrBusy is Dedup.Claim's answer for an event that another delivery is
// handling right now: the sender is told to retry later.
var ErrBusy = errors.New("the event is being handled")

// Dedup remembers which events were handled, by their id, so that a
// redelivery (caddy-kassa delivers at least once) is not handled twice.
// A backend keeps it in its own database (a table with the event id as
// its primary key), ideally written in the transaction that marks the
// order paid.
type Dedup interface {
	// Claim takes event id for this delivery: false if it was handled
	// already, ErrBusy if another delivery holds it.
	Claim(ctx context.Context, id string) (bool, error)
	// Done records the claimed event handled.
	Done(ctx context.Context, id string) error
	// Release gives a claim up after a failure, so a retry handles it.
	Release(ctx context.Context, id string)
}

// Handler receives caddy-kassa's events at the URL of a notify block.
// It answers 2xx only once an event is handled (or was before), so that
// caddy-kassa retries anything else: 400 for a bad signature or body,
// 409 while another delivery of the event is handled, 5xx on a failure.
type Handler struct {
	// Secret is the notify block's secret.
	Secret []byte
	// Tolerance bounds the signature's age, either way; zero is
	// DefaultTolerance.
	Tolerance time.Duration
	// Dedup remembers handled events.
	Dedup Dedup
	// MarkPaid marks the backend's order paid, for order.paid and
	// order.paid_late. It should compare amount with the order's total,
	// and be idempotent: after a failure between it and Dedup.Done, the
	// retry calls it again.
	MarkPaid func(ctx context.Context, shopOrderID, orderID, amount string) error
	// Logger logs refusals and failures, never the secret; nil is
	// slog.Default().
	Logger *slog.Logger
	// Now is the clock; nil is time.Now.
	Now func() time.Time
}

// ServeHTTP checks, de-duplicates and handles one event.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if len(h.Secret) == 0 {
		// An unset secret (an environment variable missing) would make
		// anyone's signature, made with the empty key, pass.
		h.refuse(w, http.StatusInternalServerError, "", errors.New("no secret configured: refusing every event"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		status := http.StatusBadRequest
		if tooBig := new(http.MaxBytesError); errors.As(err, &tooBig) {
			status = http.StatusRequestEntityTooLarge
		}
		h.refuse(w, status, "", err)
		return
	}
	if err := h.verify(r.Header.Get("Kassa-Signature"), body); err != nil {
		h.refuse(w, http.StatusBadRequest, r.Header.Get("Kassa-Event-Id"), err)
		return
	}
	var ev Event
	if err := json.Unmarshal(body, &ev); err != nil || ev.ID == "" || ev.ID != r.Header.Get("Kassa-Event-Id") {
		// The id in the signed body is the one to trust; the header must agree.
		h.refuse(w, http.StatusBadRequest, ev.ID, errors.New("the body is not an event of the header's id"))
		return
	}
	ctx := r.Context()
	fresh, err := h.Dedup.Claim(ctx, ev.ID)
	switch {
	case errors.Is(err, ErrBusy):
		h.refuse(w, http.StatusConflict, ev.ID, err)
		return
	case err != nil:
		h.refuse(w, http.StatusInternalServerError, ev.ID, err)
		return
	case !fresh:
		w.WriteHeader(http.StatusNoContent) // handled before: a redelivery
		return
	}
	done := false
	defer func() {
		if !done { // a failure or a panic: the retry handles it
			h.Dedup.Release(context.WithoutCancel(ctx), ev.ID)
		}
	}()
	if err := h.handle(ctx, &ev); err != nil {
		h.refuse(w, http.StatusInternalServerError, ev.ID, err)
		return
	}
	if err := h.Dedup.Done(ctx, ev.ID); err != nil {
		h.refuse(w, http.StatusInternalServerError, ev.ID, err)
		return
	}
	done = true
	w.WriteHeader(http.StatusNoContent)
}

// handle acts on an event; the backend adds the types it cares about.
func (h *Handler) handle(ctx context.Context, ev *Event) error {
	switch ev.Type {
	case "order.paid", "order.paid_late":
		return h.MarkPaid(ctx, ev.Order.ShopOrderID, ev.Order.OrderID, ev.Order.Amount)
	}
	return nil
}

// verify checks "t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>." + body)>":
// the time within the tolerance and one v1 (a secret being rotated may
// send two) equal to the MAC, compared in constant time.
func (h *Handler) verify(header string, body []byte) error {
	var t string
	var sigs [][]byte
	for _, part := range strings.Split(header, ",") {
		key, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch key {
		case "t":
			t = value
		case "v1":
			if sig, err := hex.DecodeString(value); err == nil {
				sigs = append(sigs, sig)
			}
		}
	}
	unix, err := strconv.ParseInt(t, 10, 64)
	if err != nil || len(sigs) == 0 {
		return errors.New("no usable Kassa-Signature header")
	}
	now := time.Now
	if h.Now != nil {
		now = h.Now
	}
	tolerance := h.Tolerance
	if tolerance == 0 {
		tolerance = DefaultTolerance
	}
	if age := now().Sub(time.Unix(unix, 0)); age > tolerance || age < -tolerance {
		return errors.New("the signature's time is out of tolerance")
	}
	mac := hmac.New(sha256.New, h.Secret)
	io.WriteString(mac, t+".")
	mac.Write(body)
	want := mac.Sum(nil)
	for _, sig := range sigs {
		if hmac.Equal(sig, want) {
			return nil
		}
	}
	return errors.New("no signature matches")
}

// refuse answers a delivery that is not handled, and logs why: the event
// id and the error, which never holds the secret.
func (h *Handler) refuse(w http.ResponseWriter, status int, id string, err error) {
	logger := h.Logger
	if logger == nil {
		logger = slog.Default()
	}
	logger.Warn("kassa event not handled", "event_id", id, "status", status, "error", err)
	http.Error(w, http.StatusText(status), status)
}

// MemoryDedup is a Dedup in memory, for the example and tests: a
// backend that restarts, or runs more than one instance, needs one in
// its database.
type MemoryDedup struct {
	mu   sync.Mutex
	done map[string]bool // false: being handled
}

// Claim implements Dedup.
func (m *MemoryDedup) Claim(_ context.Context, id string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	done, ok := m.done[id]
	switch {
	case ok && done:
		return false, nil
	case ok:
		return false, ErrBusy
	}
	if m.done == nil {
		m.done = map[string]bool{}
	}
	m.done[id] = false
	return true, nil
}

// Done implements Dedup.
func (m *MemoryDedup) Done(_ context.Context, id string) error {
	m.mu.Lock()
	m.done[id] = true
	m.mu.Unlock()
	return nil
}

// Release implements Dedup.
func (m *MemoryDedup) Release(_ context.Context, id string) {
	m.mu.Lock()
	delete(m.done, id)
	m.mu.Unlock()
}
