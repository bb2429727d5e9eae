package kassa

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(busRecorder{})
}

// busRecorder is an event handler, events.handlers.kassatest, that hands
// each event it gets to busRecorded, waiting until the test takes it (a
// slow handler), and then aborts the event.
type busRecorder struct{}

// recordedEvent is what busRecorder got: the event and its placeholders
// as a handler would expand them.
type recordedEvent struct {
	name     string
	origin   string
	data     map[string]any
	expanded string
}

// busRecorded is unbuffered: a handler waits for the test.
var busRecorded = make(chan recordedEvent)

// busPlaceholders are the placeholders the README shows.
const busPlaceholders = "{event.name} {event.data.order_id} {event.data.shop_order_id} {event.data.amount} {event.data.paid_late} {event.data.email} {event.data.phone} {event.data.operation_id}"

func (busRecorder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "events.handlers.kassatest", New: func() caddy.Module { return new(busRecorder) }}
}

func (busRecorder) Handle(ctx context.Context, e caddy.Event) error {
	repl := ctx.Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	var origin string
	if e.Origin() != nil {
		origin = string(e.Origin().CaddyModule().ID)
	}
	busRecorded <- recordedEvent{name: e.Name(), origin: origin, data: e.Data, expanded: repl.ReplaceAll(busPlaceholders, "")}
	return caddy.ErrEventAborted
}

// loadBusConfig loads a Caddy config with the kassa app and, if events,
// the events app with events as its apps.events; it returns the kassa app.
func loadBusConfig(t *testing.T, events string) *App {
	t.Helper()
	apps := `"kassa":{"products":[{"sku":"tea","name":"Tea","price":"350"}]}`
	if events != "" {
		apps += `,"events":` + events
	}
	cfg := `{"admin":{"disabled":true,"config":{"persist":false}},
		"logging":{"logs":{"default":{"level":"ERROR"}}},
		"storage":{"module":"file_system","root":` + quoted(filepath.Join(t.TempDir(), "caddy")) + `},
		"apps":{` + apps + `}}`
	if err := caddy.Load([]byte(cfg), true); err != nil {
		t.Fatalf("load: %v", err)
	}
	t.Cleanup(func() { caddy.Stop() })
	mod, err := caddy.ActiveContext().App("kassa")
	if err != nil {
		t.Fatal(err)
	}
	return mod.(*App)
}

// busOrder checks out on s as a proxied storefront would, with a shop order
// id, an e-mail and a phone, and returns the order.
func busOrder(t *testing.T, s *lifeShop) *Order {
	t.Helper()
	proxied := &Checkout{app: s.app, acc: s.app.accounts["main"], logger: zap.NewNop(), MaxBody: defaultMaxBody,
		Amount: "500", OrderID: "BACKEND-42", Email: "buyer@example.com", Phone: "+79991234567"}
	req := httptest.NewRequest(http.MethodGet, "/pay", nil)
	req.Header.Set("Accept", "application/json")
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := httptest.NewRecorder()
	if err := proxied.ServeHTTP(w, req, nil); err != nil {
		t.Fatal(err)
	}
	var v struct {
		OrderID string `json:"order_id"`
	}
	if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &v) != nil {
		t.Fatalf("checkout: %d %s", w.Code, w.Body)
	}
	return s.load(v.OrderID)
}

// busEnd is the event the test queues after the order's: the handler has
// had them all when it gets this one.
const busEnd = "kassa.test_end"

// TestBusEvents: with an events app subscribed to every kassa event, an
// order paid and its receipt printed reach the handler as kassa.order_paid
// and kassa.receipt_done, once each, from the kassa module, with the
// order's data and its contacts masked; the handler is slow (it waits for
// the test) and aborts every event, and still the order is paid and its
// receipt done before the test takes the first event.
func TestBusEvents(t *testing.T) {
	names := []string{busEnd}
	for _, event := range []orderEvent{eventPaid, eventPaidLate, eventExpired, eventCancelled, eventFailed, eventReceiptDone, eventReceiptFailed} {
		names = append(names, busName(event))
	}
	subscribed, _ := json.Marshal(names)
	loaded := loadBusConfig(t, `{"subscriptions":[{"events":`+string(subscribed)+`,"handlers":[{"handler":"kassatest"}]}]}`)
	if loaded.bus == nil {
		t.Fatal("the kassa app has no bus with an events app configured")
	}
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	s.app.bus = loaded.bus
	o := busOrder(t, s)
	s.provider.pay(o.Payment.ID)
	s.pass()
	s.pass()
	paid := s.load(o.ID)
	if paid.State != OrderPaid || paid.Receipt == nil || paid.Receipt.State != ReceiptDone {
		t.Fatalf("order %s, receipt %+v: want paid, done", paid.State, paid.Receipt)
	}

	want := []struct {
		name string
		data map[string]any
	}{
		{"kassa.order_paid", map[string]any{"order_id": o.ID, "shop_order_id": "BACKEND-42", "state": "paid",
			"amount": "500.00", "account": "main", "provider": "pegas", "paid_late": false,
			"email": "b***r@example.com", "phone": "+7*******67", "error": ""}},
		{"kassa.receipt_done", map[string]any{"order_id": o.ID, "shop_order_id": "BACKEND-42", "state": "paid",
			"amount": "500.00", "account": "main", "provider": "pegas", "paid_late": false,
			"email": "b***r@example.com", "phone": "+7*******67", "error": "",
			"operation_id": paid.Receipt.OperationID, "receipt_type": "sale", "receipt_state": "done"}},
	}
	loaded.bus.queue <- busEvent{name: busEnd}
	var received []recordedEvent
	for got := <-busRecorded; got.name != busEnd; got = <-busRecorded {
		received = append(received, got)
	}
	if len(received) != len(want) {
		t.Fatalf("the handler got %d events, want %d: %v", len(received), len(want), received)
	}
	for i, w := range want {
		got := received[i]
		if got.name != w.name || got.origin != "kassa" {
			t.Fatalf("event %d: %s from %q, want %s from kassa", i, got.name, got.origin, w.name)
		}
		gotJSON, _ := json.Marshal(got.data)
		wantJSON, _ := json.Marshal(w.data)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("%s data:\n got %s\nwant %s", w.name, gotJSON, wantJSON)
		}
		for _, clear := range []string{"buyer@example.com", "79991234567"} {
			if strings.Contains(string(gotJSON), clear) || strings.Contains(got.expanded, clear) {
				t.Errorf("%s carries the contact %s in clear: %s %s", w.name, clear, gotJSON, got.expanded)
			}
		}
		wantExpanded := w.name + " " + o.ID + " BACKEND-42 500.00 false b***r@example.com +7*******67 " + paid.Receipt.OperationID
		if w.name == "kassa.order_paid" {
			wantExpanded = strings.TrimSuffix(wantExpanded, paid.Receipt.OperationID)
		}
		if got.expanded != wantExpanded {
			t.Errorf("%s placeholders: %q, want %q", w.name, got.expanded, wantExpanded)
		}
	}
	if got := s.load(o.ID); got.State != OrderPaid || got.Receipt.State != ReceiptDone {
		t.Errorf("after the handler aborted: order %s, receipt %s", got.State, got.Receipt.State)
	}
}

// TestBusWithoutEventsApp: a config without an events app loads, the kassa
// app does not instantiate one, it has no bus, and orders move as ever.
func TestBusWithoutEventsApp(t *testing.T) {
	loaded := loadBusConfig(t, "")
	if loaded.bus != nil {
		t.Error("the kassa app has a bus without an events app")
	}
	if _, err := caddy.ActiveContext().AppIfConfigured("events"); !errors.Is(err, caddy.ErrNotConfigured) {
		t.Errorf("the events app after loading kassa: %v, want not configured", err)
	}
	s := newLifeShop(t, newLifeProvider("pegas"), nil, nil)
	s.app.bus = loaded.bus
	o := busOrder(t, s)
	s.provider.pay(o.Payment.ID)
	s.pass()
	s.pass()
	if got := s.load(o.ID); got.State != OrderPaid || got.Receipt == nil || got.Receipt.State != ReceiptDone {
		t.Errorf("order %s, receipt %+v: want paid, done", got.State, got.Receipt)
	}
}
