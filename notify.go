package kassa

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

// The shop's notifications: every change of an order that raises an event
// (lifecycle.go's orderEvent) records a reference to it in the order's own
// record; the event's file, with the exact body every delivery posts and
// each receiver's delivery state, and its outbox entry are written right
// after that record, before the order's indexes are settled, so a crash in
// between leaves the order in an index the reconciler visits, and it writes
// what is missing (ensureEvents). The deliverer (deliver.go) posts them.

// The storage keys of the notifications.
const (
	eventsPrefix = "kassa/events"
	outboxPrefix = "kassa/outbox"
	// undeliveredPrefix indexes the events a receiver never got (given
	// up), for the morning check (check.go) until they are redelivered.
	undeliveredPrefix = "kassa/undelivered"
)

func eventKey(id string) string       { return eventsPrefix + "/" + id + ".json" }
func outboxKey(id string) string      { return outboxPrefix + "/" + id }
func undeliveredKey(id string) string { return undeliveredPrefix + "/" + id }

// defaultNotifyTimeout is how long a receiver has to answer a delivery.
const defaultNotifyTimeout = 10 * time.Second

// allEvents are the events a receiver may ask for, in the order they are
// documented.
var allEvents = []orderEvent{eventPaid, eventPaidLate, eventExpired, eventCancelled, eventFailed, eventReceiptDone, eventReceiptFailed}

// Notify is a receiver of the shop's notifications: a URL that gets a
// signed POST for each event it asks for.
type Notify struct {
	// URL is where the events are posted: http or https, without
	// credentials.
	URL string `json:"url"`
	// Secret signs every delivery (Kassa-Signature). Required; use {env.*},
	// which is resolved at provision time and never stored resolved.
	Secret string `json:"secret,omitempty"`
	// Events are the events the receiver gets; empty: all of them.
	Events []string `json:"events,omitempty"`
	// Timeout bounds one delivery, from connecting to the reply's status;
	// default 10s.
	Timeout caddy.Duration `json:"timeout,omitempty"`

	secret string
	wants  map[orderEvent]bool
}

// provision checks a receiver's options and resolves its secret.
func (n *Notify) provision() error {
	u, err := url.Parse(n.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("notify %q: want an http or https URL", n.URL)
	}
	if u.User != nil {
		return fmt.Errorf("notify: the URL must not carry credentials: sign with secret instead")
	}
	n.secret = resolvePlaceholders(n.Secret)
	if n.secret == "" {
		return fmt.Errorf("notify %s: secret is empty (is its environment variable set?)", n.URL)
	}
	if err := checkEventNames(n.Events); err != nil {
		return fmt.Errorf("notify %s: %v", n.URL, err)
	}
	n.wants = make(map[orderEvent]bool, len(allEvents))
	for _, e := range allEvents {
		n.wants[e] = len(n.Events) == 0 || slices.Contains(n.Events, string(e))
	}
	if n.Timeout <= 0 {
		n.Timeout = caddy.Duration(defaultNotifyTimeout)
	}
	return nil
}

// checkEventNames refuses an event name that is not one of allEvents.
func checkEventNames(names []string) error {
	for _, name := range names {
		if !slices.Contains(allEvents, orderEvent(name)) {
			valid := make([]string, len(allEvents))
			for i, e := range allEvents {
				valid[i] = string(e)
			}
			return fmt.Errorf("unknown event %q (the events: %s)", name, strings.Join(valid, ", "))
		}
	}
	return nil
}

// provisionNotify provisions the receivers; two with one URL are refused,
// since a receiver's delivery state is kept by its URL.
func (a *App) provisionNotify() error {
	seen := make(map[string]bool, len(a.Notify))
	for _, n := range a.Notify {
		if err := n.provision(); err != nil {
			return err
		}
		if seen[n.URL] {
			return fmt.Errorf("notify %s given twice", n.URL)
		}
		seen[n.URL] = true
	}
	return nil
}

// notifyTarget is the configured receiver of url, if any.
func (a *App) notifyTarget(url string) *Notify {
	for _, n := range a.Notify {
		if n.URL == url {
			return n
		}
	}
	return nil
}

// wanted reports whether a receiver asks for event e.
func (a *App) wanted(e orderEvent) bool {
	return slices.ContainsFunc(a.Notify, func(n *Notify) bool { return n.wants[e] })
}

// EventRef is an event an order's change raised, as the order's record
// keeps it: the record write that makes the change also records the
// event, so that no crash loses it.
type EventRef struct {
	// ID is the order's id and the event's number on the order: the same
	// whoever writes the event's file.
	ID   string     `json:"id"`
	Type orderEvent `json:"type"`
	At   time.Time  `json:"at"`
}

// raiseEvents appends to o's record the events its change from prev raises
// and some receiver asks for: its move, and its receipts' moves to done or
// failed. With no receiver, nothing is recorded.
func (a *App) raiseEvents(prev, o *Order) {
	if len(a.Notify) == 0 {
		return
	}
	for _, r := range changeEvents(prev, o) {
		if a.wanted(r.event) {
			o.Events = append(o.Events, EventRef{ID: newEventID(o.ID, len(o.Events)+1), Type: r.event, At: a.now().UTC()})
		}
	}
}

// eventIDSuffix is the length of an event id's random part.
const eventIDSuffix = 8

// newEventID is the id of an order's nth event: the order id, n, and a
// random part, so that two instances that both raised an nth event of the
// order (having lost its storage lock) never give two events one id, which
// a receiver's de-duplication would take for one.
func newEventID(orderID string, n int) string {
	b := make([]byte, eventIDSuffix/2)
	rand.Read(b)
	return orderID + "-" + strconv.Itoa(n) + "-" + hex.EncodeToString(b)
}

// eventOrderID is the order of event id, or "" for a malformed id.
func eventOrderID(id string) string {
	if len(id) < orderIDLen+2 || id[orderIDLen] != '-' || !ValidOrderID(id[:orderIDLen]) {
		return ""
	}
	num, suffix, ok := strings.Cut(id[orderIDLen+1:], "-")
	if n, err := strconv.Atoi(num); !ok || err != nil || n < 1 || strconv.Itoa(n) != num || len(suffix) != eventIDSuffix {
		return ""
	}
	if _, err := hex.DecodeString(suffix); err != nil || strings.ToLower(suffix) != suffix {
		return ""
	}
	return id[:orderIDLen]
}

// The states of an event's delivery to one receiver.
const (
	deliveryPending   = "pending"
	deliveryDelivered = "delivered"
	deliveryFailed    = "failed"
)

// eventFile is an event as stored: the body every delivery posts, byte for
// byte, and where its delivery to each receiver stands.
type eventFile struct {
	ID        string          `json:"id"`
	Type      orderEvent      `json:"type"`
	OrderID   string          `json:"order_id"`
	CreatedAt time.Time       `json:"created_at"`
	Body      json.RawMessage `json:"body"`
	Targets   []*delivery     `json:"targets"`
}

// delivery is where an event's delivery to one receiver stands.
type delivery struct {
	URL   string `json:"url"`
	State string `json:"state"`
	// Since is when the delivery began: the event's creation, or the
	// operator's redelivery. It is retried for retryFor from then.
	Since       time.Time `json:"since"`
	Attempts    int       `json:"attempts"`
	NextAt      time.Time `json:"next_at,omitzero"`
	LastStatus  int       `json:"last_status,omitempty"`
	LastError   string    `json:"last_error,omitempty"`
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	LeaseUntil  time.Time `json:"lease_until,omitzero"`
}

// state is the event's state: pending while a receiver waits for it,
// else failed if one never got it, else delivered.
func (f *eventFile) state() string {
	state := deliveryDelivered
	for _, t := range f.Targets {
		switch t.State {
		case deliveryPending:
			return deliveryPending
		case deliveryFailed:
			state = deliveryFailed
		}
	}
	return state
}

// eventBody is what a receiver gets: the event and the order (DESIGN.md,
// "Shop notifications").
type eventBody struct {
	ID        string     `json:"id"`
	Type      orderEvent `json:"type"`
	CreatedAt time.Time  `json:"created_at"`
	Order     eventOrder `json:"order"`
}

// eventOrder is the order as a shop's backend needs it: its ids, state and
// amount (a string with two decimals), lines, the buyer's contacts in full
// (the backend is the shop's own), and its receipts.
type eventOrder struct {
	OrderID     string       `json:"order_id"`
	ShopOrderID string       `json:"shop_order_id,omitempty"`
	State       OrderState   `json:"state"`
	Amount      string       `json:"amount"`
	Account     string       `json:"account"`
	Provider    string       `json:"provider"`
	Items       []itemView   `json:"items"`
	Email       string       `json:"email,omitempty"`
	Phone       string       `json:"phone,omitempty"`
	CreatedAt   time.Time    `json:"created_at"`
	PaidAt      time.Time    `json:"paid_at,omitzero"`
	PaidLate    bool         `json:"paid_late,omitempty"`
	Error       string       `json:"error,omitempty"`
	Receipt     receiptView  `json:"receipt"`
	Refund      *receiptView `json:"refund,omitempty"`
}

// newEventOrder is o as an event's body carries it.
func newEventOrder(o *Order) eventOrder {
	v := eventOrder{OrderID: o.ID, ShopOrderID: o.ShopOrderID, State: o.State, Amount: FormatAmount(o.Amount),
		Account: o.Account, Provider: o.Provider, Items: make([]itemView, len(o.Items)), Email: o.Email, Phone: o.Phone,
		CreatedAt: o.CreatedAt, PaidAt: o.PaidAt, PaidLate: o.PaidLate, Error: o.Error, Receipt: newReceiptView(o)}
	for i, it := range o.Items {
		v.Items[i] = itemView{SKU: it.SKU, Name: it.Name, Qty: it.Qty, Price: FormatAmount(it.Price), VAT: it.VAT}
	}
	if r := o.Refund; r != nil {
		v.Refund = &receiptView{OperationID: r.OperationID, State: r.State.Public(), Fiscal: r.Fiscal, Error: r.Error}
	}
	return v
}

// newEventFile builds the file of event ref of order o, for the receivers
// that ask for it.
func (a *App) newEventFile(o *Order, ref EventRef) (*eventFile, error) {
	body, err := json.Marshal(eventBody{ID: ref.ID, Type: ref.Type, CreatedAt: ref.At, Order: newEventOrder(o)})
	if err != nil {
		return nil, fmt.Errorf("kassa: encoding event %s: %v", ref.ID, err)
	}
	f := &eventFile{ID: ref.ID, Type: ref.Type, OrderID: o.ID, CreatedAt: ref.At, Body: body}
	for _, n := range a.Notify {
		if n.wants[ref.Type] {
			f.Targets = append(f.Targets, &delivery{URL: n.URL, State: deliveryPending, Since: ref.At, NextAt: ref.At})
		}
	}
	return f, nil
}

// writeEvents writes the files and outbox entries of the events refs of
// order o, whose record names them, and wakes the deliverer. The order
// store calls it between the record and the indexes (saveChange).
func (a *App) writeEvents(ctx context.Context, o *Order, refs []EventRef) error {
	for _, ref := range refs {
		f, err := a.newEventFile(o, ref)
		if err != nil {
			return err
		}
		if err := a.storeEvent(ctx, f); err != nil {
			return err
		}
		if err := a.orders.storeKey(ctx, outboxKey(ref.ID), []byte(ref.ID)); err != nil {
			return err
		}
		a.written.add(ref.ID)
		metrics.eventsRaised.WithLabelValues(string(ref.Type)).Inc()
	}
	a.deliverer.wake()
	return nil
}

// ensureEvents writes what a crash between o's record and its events'
// files and outbox entries left unwritten. The reconciler calls it on each
// order it visits in an index, before it settles the indexes. An event's
// file is written before its outbox entry, so an entry means both are
// there; without one, the file says whether the event is still due. Each
// event costs these reads once per process.
func (a *App) ensureEvents(ctx context.Context, o *Order) error {
	var missing []EventRef
	for _, ref := range o.Events {
		if a.written.has(ref.ID) {
			continue
		}
		_, err := a.storage.Stat(ctx, outboxKey(ref.ID))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("kassa: checking event %s: %w", ref.ID, storageFailure{err})
		}
		if err == nil {
			a.written.add(ref.ID)
			continue
		}
		f, err := a.loadEvent(ctx, ref.ID)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, ref)
		case errors.Is(err, ErrStorage), errors.As(err, new(*RecordTooNewError)):
			return err
		case err != nil:
			// A file that does not decode is written again, so that it
			// never holds the order (and its receipt) back.
			a.logger.Error("rewriting an event file that does not decode", zap.String("event_id", ref.ID), zap.Error(err))
			missing = append(missing, ref)
		case f.state() == deliveryPending:
			if err := a.orders.storeKey(ctx, outboxKey(ref.ID), []byte(ref.ID)); err != nil {
				return err
			}
			a.written.add(ref.ID)
			a.deliverer.wake()
		default:
			a.written.add(ref.ID)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	a.logger.Warn("writing events a crash left unwritten", zap.String("order_id", o.ID), zap.Int("events", len(missing)))
	return a.writeEvents(ctx, o, missing)
}

// storeEvent writes an event's file, with "v" (records.go).
func (a *App) storeEvent(ctx context.Context, f *eventFile) error {
	b, err := json.Marshal(storedEvent{V: recordVersion, eventFile: f})
	if err != nil {
		return fmt.Errorf("kassa: encoding event %s: %v", f.ID, err)
	}
	return a.orders.storeKey(ctx, eventKey(f.ID), b)
}

// loadEvent reads an event's file; an unknown or malformed id is
// fs.ErrNotExist.
func (a *App) loadEvent(ctx context.Context, id string) (*eventFile, error) {
	if eventOrderID(id) == "" {
		return nil, fs.ErrNotExist
	}
	b, err := a.storage.Load(ctx, eventKey(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("kassa: loading %s: %w", eventKey(id), storageFailure{err})
	}
	stored := storedEvent{eventFile: new(eventFile)}
	if err := json.Unmarshal(b, &stored); err != nil || stored.ID != id {
		return nil, fmt.Errorf("kassa: decoding %s: not event %s", eventKey(id), id)
	}
	if err := checkRecordVersion(stored.V); err != nil {
		return nil, fmt.Errorf("kassa: event %s: %w", eventKey(id), err)
	}
	return stored.eventFile, nil
}

// maxWrittenEvents bounds the ids writtenEvents remembers.
const maxWrittenEvents = 10000

// writtenEvents are ids of events whose files this process knows are
// written, so that ensureEvents asks the storage about each once. Past
// its bound it forgets them all, which costs a Stat each again.
type writtenEvents struct {
	mu  sync.Mutex
	ids map[string]bool
}

func (w *writtenEvents) add(id string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.ids == nil || len(w.ids) >= maxWrittenEvents {
		w.ids = make(map[string]bool)
	}
	w.ids[id] = true
}

func (w *writtenEvents) has(id string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ids[id]
}
