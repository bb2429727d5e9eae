package kassa

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"go.uber.org/zap"
)

// Caddy's event bus: every order event (order.paid, receipt.done, ...) is
// also emitted through Caddy's events app as kassa.order_paid,
// kassa.receipt_done, ..., so that a site admin can react to it in the
// config (events { on kassa.order_paid exec ... }). Unlike the shop's
// webhooks this is best-effort and in-process: an event is emitted after
// its change is stored, from a bounded queue, and is lost if the queue is
// full or Caddy stops first.

// busQueueSize bounds the events waiting for the bus's handlers: a slow
// handler makes later events wait, and past this many it makes them dropped,
// never an order change wait.
const busQueueSize = 256

// orderBus emits the app's order events on Caddy's event bus. One goroutine
// emits them in the order they were raised; the events app runs its
// handlers synchronously, so that goroutine is what waits for a slow one.
type orderBus struct {
	events *caddyevents.App
	// ctx is the kassa app's: the events' origin module is kassa, and it
	// ends when the config is unloaded, and with it the goroutine.
	ctx    caddy.Context
	queue  chan busEvent
	logger *zap.Logger
}

// busEvent is one event waiting for the bus.
type busEvent struct {
	name string
	data map[string]any
}

// provisionBus sets up the emission of order events if the config has an
// events app (or another app, such as http, has loaded it): the kassa app
// never instantiates one itself, so a config without one costs nothing.
// Emission waits for Caddy's started event, which comes once every app has
// started: the events app binds its subscriptions in its Start, and an
// order event raised before then (by the reconciler's first pass) must not
// reach it while it does.
func (a *App) provisionBus(ctx caddy.Context) error {
	mod, err := ctx.AppIfConfigured("events")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil
	}
	if err != nil {
		return err // Caddy's error names the events app
	}
	events, ok := mod.(*caddyevents.App)
	if !ok {
		return fmt.Errorf("the events app is %T, not Caddy's", mod)
	}
	gate := &startGate{open: make(chan struct{})}
	if err := events.On("started", gate); err != nil {
		return fmt.Errorf("subscribing to Caddy's started event: %v", err)
	}
	b := &orderBus{events: events, ctx: ctx, queue: make(chan busEvent, busQueueSize), logger: a.logger}
	go b.run(gate.open)
	a.bus = b
	return nil
}

// startGate is an event handler that opens on Caddy's started event.
type startGate struct {
	once sync.Once
	open chan struct{}
}

// Handle opens the gate.
func (g *startGate) Handle(context.Context, caddy.Event) error {
	g.once.Do(func() { close(g.open) })
	return nil
}

// run emits the queued events, once Caddy has started, until the config is
// unloaded. A handler's error, an abort included, is logged by the events
// app and changes nothing here: the order change was stored before.
func (b *orderBus) run(started <-chan struct{}) {
	select {
	case <-started:
	case <-b.ctx.Done():
		return
	}
	for {
		select {
		case ev := <-b.queue:
			b.events.Emit(b.ctx, ev.name, ev.data)
		case <-b.ctx.Done():
			return
		}
	}
}

// emit queues the events of a stored change of an order, from prev to o:
// its move and its receipts' ends (done, failed), as announce logs them.
// It never blocks: a full queue drops the event, with a warning. A nil bus
// (no events app) emits nothing.
func (b *orderBus) emit(prev, o *Order) {
	if b == nil {
		return
	}
	for _, r := range changeEvents(prev, o) {
		b.queue1(r.event, o, r.receipt)
	}
}

// queue1 queues one event, or drops it when the queue is full.
func (b *orderBus) queue1(event orderEvent, o *Order, r *OrderReceipt) {
	ev := busEvent{name: busName(event), data: busData(o, r)}
	select {
	case b.queue <- ev:
	default:
		b.logger.Warn("Caddy's event bus is behind: event dropped", zap.String("event", ev.name), zap.String("order_id", o.ID))
	}
}

// busName is an order event's name on Caddy's bus: order.paid becomes
// kassa.order_paid. The events app matches a subscription by the exact
// name, so this is what an `on` in the config names.
func busName(event orderEvent) string {
	return "kassa." + strings.ReplaceAll(string(event), ".", "_")
}

// busData is an event's data, the placeholders {event.data.*} of its
// handlers: the order as the operator sees it in the log, the buyer's
// contacts masked, no secret. A receipt event adds its receipt.
func busData(o *Order, r *OrderReceipt) map[string]any {
	data := map[string]any{
		"order_id":      o.ID,
		"shop_order_id": o.ShopOrderID,
		"state":         string(o.State),
		"amount":        FormatAmount(o.Amount),
		"account":       o.Account,
		"provider":      o.Provider,
		"paid_late":     o.PaidLate,
		"email":         MaskEmail(o.Email),
		"phone":         MaskPhone(o.Phone),
		"error":         o.Error,
	}
	if r != nil {
		data["operation_id"] = r.OperationID
		data["receipt_type"] = r.Type.String()
		data["receipt_state"] = string(r.State)
		data["error"] = r.Error
	}
	return data
}
