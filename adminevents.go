package kassa

import (
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// The admin API's view of the shop's notifications: the events, where
// their deliveries stand, and an operator's redelivery.

// eventView is an event as the admin API shows it; the body only when one
// event is asked for.
type eventView struct {
	ID        string          `json:"id"`
	Type      orderEvent      `json:"type"`
	OrderID   string          `json:"order_id"`
	CreatedAt time.Time       `json:"created_at"`
	State     string          `json:"state"`
	Targets   []*delivery     `json:"targets"`
	Body      json.RawMessage `json:"body,omitempty"`
}

// newEventView is f as the admin API shows it. A receiver's URL is shown
// without its query, which may carry a token of the receiver's.
func newEventView(f *eventFile, withBody bool) eventView {
	v := eventView{ID: f.ID, Type: f.Type, OrderID: f.OrderID, CreatedAt: f.CreatedAt, State: f.state()}
	for _, t := range f.Targets {
		shown := *t
		shown.URL = safeURL(t.URL)
		v.Targets = append(v.Targets, &shown)
	}
	if withBody {
		v.Body = f.Body
	}
	return v
}

// unknownEvent is the answer about an event that does not exist.
var unknownEvent = &RequestError{Status: http.StatusNotFound, Code: "unknown_event", Message: "no such event"}

// adminEvents lists events newest first, by state, at most limit. It reads
// every event file: the list is for an operator, never a hot path.
func (a *App) adminEvents(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	state := q.Get("state")
	if state != "" && state != deliveryPending && state != deliveryDelivered && state != deliveryFailed {
		return badRequest("bad_state", "state", "state is pending, delivered or failed")
	}
	limit := 50
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > 1000 {
			return badRequest("bad_limit", "limit", "limit is a whole number from 1 to 1000")
		}
		limit = n
	}
	keys, err := a.storage.List(r.Context(), eventsPrefix, false)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return storageFailure{err}
	}
	out := []eventView{}
	for _, k := range keys {
		id, ok := strings.CutSuffix(path.Base(k), ".json")
		if !ok || eventOrderID(id) == "" {
			continue
		}
		f, err := a.loadEvent(r.Context(), id)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		if state == "" || f.state() == state {
			out = append(out, newEventView(f, false))
		}
	}
	slices.SortFunc(out, func(x, y eventView) int {
		if c := y.CreatedAt.Compare(x.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(y.ID, x.ID)
	})
	if len(out) > limit {
		out = out[:limit]
	}
	return writeJSON(w, http.StatusOK, map[string]any{"events": out})
}

// adminEvent shows one event, with its body.
func (a *App) adminEvent(w http.ResponseWriter, r *http.Request, id string) error {
	f, err := a.loadEvent(r.Context(), id)
	if errors.Is(err, fs.ErrNotExist) {
		return unknownEvent
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newEventView(f, true))
}

// adminRedeliver puts an event's delivered and failed deliveries back to
// pending, due now and retried for another day, with the same id and body.
func (a *App) adminRedeliver(w http.ResponseWriter, r *http.Request, id string) error {
	f, err := a.redeliver(r, id)
	if errors.Is(err, fs.ErrNotExist) {
		return unknownEvent
	}
	if err != nil {
		return err
	}
	a.logger.Info("operator: event redeliver", zap.String("event_id", id), zap.String("type", string(f.Type)))
	return writeJSON(w, http.StatusOK, newEventView(f, false))
}

func (a *App) redeliver(r *http.Request, id string) (*eventFile, error) {
	ctx := r.Context()
	if eventOrderID(id) == "" {
		return nil, fs.ErrNotExist // and no lock named after it
	}
	var f *eventFile
	err := a.withStorageLock(ctx, "kassa/event/"+id, func() error {
		var err error
		if f, err = a.loadEvent(ctx, id); err != nil {
			return err
		}
		now := a.now().UTC()
		for _, t := range f.Targets {
			if t.State != deliveryPending {
				t.State, t.Since, t.NextAt, t.Attempts = deliveryPending, now, now, 0
				t.LeaseUntil, t.DeliveredAt = time.Time{}, time.Time{}
			}
		}
		if err := a.storeEvent(ctx, f); err != nil {
			return err
		}
		if err := a.orders.storeKey(ctx, outboxKey(id), []byte(id)); err != nil {
			return err
		}
		return a.orders.deleteKey(ctx, undeliveredKey(id))
	})
	if err == nil {
		a.deliverer.forget(id)
	}
	return f, err
}
