package kassa

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The outcomes of a provider call, by the kind of its ProviderError.
const (
	outcomeOK          = "ok"
	outcomeAuth        = "auth"
	outcomeRejected    = "rejected"
	outcomeDuplicate   = "duplicate"
	outcomeNotFound    = "not_found"
	outcomeUnavailable = "unavailable"
	outcomeMalformed   = "malformed"
)

// The reasons a checkout is refused before its order is made: the shop's
// max_open_orders, or the client's max_orders_per_client. They are also
// the refusals' error codes.
const (
	refusedShopBusy = "shop_busy"
	refusedTooMany  = "too_many_orders"
)

// The kinds of payment problems an operator settles (payment_problems_total).
const (
	problemUnderpaid = "underpaid"
	problemReported  = "problem"
)

// receiptUnavailable is the receipt outcome of a send whose outcome is
// unknown (the network failed, or the reply was unreadable): it is sent
// again. The others are the receipt's states queued, done and failed.
const receiptUnavailable = "unavailable"

// unknownLabel stands for a label value read from storage that is not one
// kassa writes, so that a damaged record cannot put free text in a label.
const unknownLabel = "unknown"

// callBuckets are the buckets, in seconds, of call and pass durations: from
// a local sandbox's milliseconds to a provider's 10s default timeout and
// beyond.
var callBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// metrics are kassa's Prometheus collectors. They are created once per
// process and registered with each config's registry in App.Provision, so
// that their counts survive config reloads. No label carries an order id,
// an amount, a secret, a URL or free text: only the fixed sets documented
// on each, and configured account names.
var metrics = struct {
	providerCalls        *prometheus.CounterVec
	providerCallDuration *prometheus.HistogramVec
	orderTransitions     *prometheus.CounterVec
	receipts             *prometheus.CounterVec
	openOrders           prometheus.Gauge
	oldestOpenOrderAge   prometheus.Gauge
	reconcilerPasses     prometheus.Counter
	reconcilerPassTime   prometheus.Histogram
	reconcilerLeader     prometheus.Gauge
	reconcilerBacklog    prometheus.Gauge
	reconcilerLateness   prometheus.Gauge
	ordersCompacted      prometheus.Counter
	ordersPaidLate       prometheus.Counter
	contactsErased       prometheus.Counter
	paymentProblems      *prometheus.CounterVec
	eventsRaised         *prometheus.CounterVec
	eventsDelivered      prometheus.Counter
	eventsRetried        prometheus.Counter
	eventsFailed         prometheus.Counter
	eventLatency         prometheus.Histogram
	checkoutsRefused     *prometheus.CounterVec
	callbacks            *prometheus.CounterVec
}{
	providerCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "provider_calls_total",
		Help: "Provider API calls by provider, operation and outcome (ok, auth, rejected, duplicate, " +
			"not_found, unavailable, malformed).",
	}, []string{"provider", "operation", "outcome"}),
	providerCallDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "kassa",
		Name:      "provider_call_duration_seconds",
		Help:      "How long provider API calls took, by provider and operation.",
		Buckets:   callBuckets,
	}, []string{"provider", "operation"}),
	orderTransitions: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "order_transitions_total",
		Help:      "Order state changes by payment account, provider, and the states from and to.",
	}, []string{"account", "provider", "from", "to"}),
	receipts: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "receipts_total",
		Help: "Fiscal receipt outcomes by receipt type: queued (accepted by the receipt service), done, " +
			"failed, unavailable (a send whose outcome is unknown: the network failed or the reply was unreadable; sent again).",
	}, []string{"type", "outcome"}),
	openOrders: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kassa",
		Name:      "open_orders",
		Help:      "Orders still open (being created, waiting for payment, or with a receipt under way) after the last reconciler pass.",
	}),
	oldestOpenOrderAge: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kassa",
		Name:      "oldest_open_order_age_seconds",
		Help:      "Age of the oldest open order after the last reconciler pass; 0 when none is open.",
	}),
	reconcilerPasses: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "reconciler_passes_total",
		Help:      "Completed reconciler passes over the orders due; only the instance holding the reconciler's lease makes them.",
	}),
	reconcilerPassTime: prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "kassa",
		Name:      "reconciler_pass_duration_seconds",
		Help:      "How long reconciler passes took.",
		Buckets:   callBuckets,
	}),
	reconcilerLeader: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kassa",
		Name:      "reconciler_leader",
		Help:      "1 while this instance holds the reconciler's lease and makes the passes, 0 while it stands by.",
	}),
	reconcilerBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kassa",
		Name:      "reconciler_due_orders",
		Help:      "Orders due for a check (open, or closed unpaid and watched) waiting for one of the reconciler's workers, at its last tick.",
	}),
	reconcilerLateness: prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "kassa",
		Name:      "reconciler_lateness_seconds",
		Help:      "How long past its due time the most overdue order's check is, at the reconciler's last tick; 0 when none is overdue.",
	}),
	ordersCompacted: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "orders_compacted_total",
		Help:      "Orders deleted by the reconciler after they closed unpaid more than keep_unpaid ago.",
	}),
	ordersPaidLate: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "orders_paid_late_total",
		Help:      "Orders paid after they had closed unpaid (expired, cancelled or failed): each needs a look from the shop.",
	}),
	contactsErased: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "contacts_erased_total",
		Help:      "Orders whose buyer's e-mail and phone the reconciler erased, erase_contacts_after their receipt was done.",
	}),
	paymentProblems: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "payment_problems_total",
		Help: "Payments an operator must settle, by kind: underpaid (the provider reports less than the order's amount), " +
			"problem (the provider reports a problem with the payment, such as CrystalPAY's wrongamount).",
	}, []string{"kind"}),
	eventsRaised: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "events_raised_total",
		Help:      "Events written for the shop's notification receivers, by type (order.paid, receipt.done, ...).",
	}, []string{"type"}),
	eventsDelivered: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "events_delivered_total",
		Help:      "Event deliveries a receiver answered with a 2xx status.",
	}),
	eventsRetried: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "events_retried_total",
		Help:      "Event deliveries that failed (a status other than 2xx, a timeout, a refused connection) and will be retried.",
	}),
	eventsFailed: prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "events_failed_total",
		Help:      "Event deliveries given up after failing for 24 hours; the event stays listable and can be redelivered.",
	}),
	eventLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "kassa",
		Name:      "event_delivery_latency_seconds",
		Help:      "From an event's creation to its receiver's 2xx answer.",
		Buckets:   []float64{.01, .05, .1, .5, 1, 5, 10, 60, 300, 1800, 3600, 6 * 3600, 24 * 3600},
	}),
	checkoutsRefused: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "checkouts_refused_total",
		Help: "Checkouts refused before any order was made, by reason: shop_busy (max_open_orders open orders), " +
			"too_many_orders (the client's max_orders_per_client).",
	}, []string{"reason"}),
	callbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "kassa",
		Name:      "callbacks_total",
		Help: "Payment callbacks received (kassa_callback), by payment account and result: paid, not_paid, problem " +
			"(the provider reports a problem with the payment), payout, bad_signature (forged, or signed with another salt), " +
			"invalid, unknown_payment, failed (the provider or the order storage failed; the provider sends it again).",
	}, []string{"account", "result"}),
}

// registerMetrics registers the collectors with a config's registry. A
// collector already there (the same config provisioning a second kassa
// app, which Caddy does not do, or a test) is fine; a nil registry, as in
// a context made without a config, registers nothing.
func registerMetrics(registry *prometheus.Registry) error {
	if registry == nil {
		return nil
	}
	for _, reason := range []string{refusedShopBusy, refusedTooMany} {
		// At 0 before the first refusal, so that an alert on its increase
		// sees the first one.
		metrics.checkoutsRefused.WithLabelValues(reason)
	}
	for _, kind := range []string{problemUnderpaid, problemReported} {
		metrics.paymentProblems.WithLabelValues(kind)
	}
	for _, c := range []prometheus.Collector{
		metrics.providerCalls, metrics.providerCallDuration, metrics.orderTransitions, metrics.receipts,
		metrics.openOrders, metrics.oldestOpenOrderAge, metrics.reconcilerPasses, metrics.reconcilerPassTime,
		metrics.reconcilerLeader, metrics.reconcilerBacklog, metrics.reconcilerLateness, metrics.ordersCompacted, metrics.ordersPaidLate,
		metrics.contactsErased, metrics.paymentProblems, metrics.eventsRaised, metrics.eventsDelivered,
		metrics.eventsRetried, metrics.eventsFailed, metrics.eventLatency, metrics.checkoutsRefused, metrics.callbacks,
	} {
		var already prometheus.AlreadyRegisteredError
		if err := registry.Register(c); err != nil && !errors.As(err, &already) {
			return fmt.Errorf("registering kassa metrics: %v", err)
		}
	}
	return nil
}

// callOutcome is the outcome label of a provider call that ended in err.
// An error that is not a provider's reply (a local failure) counts as
// unavailable, so the label keeps to its fixed set.
func callOutcome(err error) string {
	switch {
	case err == nil:
		return outcomeOK
	case errors.Is(err, ErrAuth):
		return outcomeAuth
	case errors.Is(err, ErrDuplicate):
		return outcomeDuplicate
	case errors.Is(err, ErrNotFound):
		return outcomeNotFound
	case errors.Is(err, ErrRejected):
		return outcomeRejected
	case errors.Is(err, ErrMalformedReply):
		return outcomeMalformed
	default:
		return outcomeUnavailable
	}
}

// Observe counts one call of op that started at start and ended in *err
// (nil, or the call's *ProviderError) in the provider call metrics. It
// takes a pointer so that a provider can defer it over its named error
// result. GetJSON and PostJSON count their calls themselves; a provider
// that uses Call or Do counts its own, once its reply is read.
func (c *ProviderClient) Observe(op string, start time.Time, err *error) {
	metrics.providerCalls.WithLabelValues(c.provider, op, callOutcome(*err)).Inc()
	metrics.providerCallDuration.WithLabelValues(c.provider, op).Observe(time.Since(start).Seconds())
}

// countTransition counts an order's change from a state to the one it is
// now in.
func countTransition(o *Order, from OrderState) {
	metrics.orderTransitions.WithLabelValues(nameLabel(o.Account), nameLabel(o.Provider),
		stateLabel(from), stateLabel(o.State)).Inc()
}

// countCallback counts a callback to account's handler with its result,
// one of the callback results of callback.go.
func countCallback(account, result string) {
	metrics.callbacks.WithLabelValues(nameLabel(account), result).Inc()
}

// countReceipt counts a receipt's outcome: its state (queued, done,
// failed) or receiptUnavailable.
func countReceipt(t ReceiptType, outcome string) {
	typ := unknownLabel
	if _, err := ParseReceiptType(t.String()); err == nil {
		typ = t.String()
	}
	switch outcome {
	case string(ReceiptQueued), string(ReceiptDone), string(ReceiptFailed), receiptUnavailable:
	default:
		outcome = unknownLabel
	}
	metrics.receipts.WithLabelValues(typ, outcome).Inc()
}

// openTally tallies the orders a reconciler pass leaves open: how many,
// and when the oldest was made (schedule.tally).
type openTally struct {
	count  int
	oldest time.Time
}

// observePass records a completed reconciler pass that took took and left
// open the orders in open, aged as of now.
func observePass(took time.Duration, open openTally, now time.Time) {
	metrics.reconcilerPasses.Inc()
	metrics.reconcilerPassTime.Observe(took.Seconds())
	metrics.openOrders.Set(float64(open.count))
	age := 0.0
	if open.count > 0 {
		age = max(now.Sub(open.oldest).Seconds(), 0)
	}
	metrics.oldestOpenOrderAge.Set(age)
}

// boolGauge is a gauge's value for a yes or no.
func boolGauge(yes bool) float64 {
	if yes {
		return 1
	}
	return 0
}

// stateLabel is an order state as a label: one of the states, or unknown.
func stateLabel(s OrderState) string {
	if !s.Valid() {
		return unknownLabel
	}
	return string(s)
}

// nameLabel is an account or provider name as a label: it has the shape
// of a configured name, or is unknown.
func nameLabel(name string) string {
	if validateAccountName(name) != nil {
		return unknownLabel
	}
	return name
}
