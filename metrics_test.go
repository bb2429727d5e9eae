package kassa

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

// These tests read the collectors directly rather than through
// prometheus/testutil, whose diff dependency is not in go.mod.

// valueOf is the value of a counter or gauge, or the sample count of a
// histogram.
func valueOf(m prometheus.Metric) float64 {
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		panic(err)
	}
	switch {
	case out.Counter != nil:
		return out.Counter.GetValue()
	case out.Gauge != nil:
		return out.Gauge.GetValue()
	case out.Histogram != nil:
		return float64(out.Histogram.GetSampleCount())
	}
	panic(fmt.Sprintf("metric %v is not a counter, gauge or histogram", m.Desc()))
}

// counted is a counter's value now.
func counted(vec *prometheus.CounterVec, labels ...string) float64 {
	return valueOf(vec.WithLabelValues(labels...))
}

// observations is how many samples a histogram holds now.
func observations(vec *prometheus.HistogramVec, labels ...string) float64 {
	return valueOf(vec.WithLabelValues(labels...).(prometheus.Metric))
}

// gathered counts the metrics of the named families a registry gathers.
func gathered(t *testing.T, r *prometheus.Registry, names ...string) int {
	t.Helper()
	families, err := r.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	n := 0
	for _, f := range families {
		if slices.Contains(names, f.GetName()) {
			n += len(f.GetMetric())
		}
	}
	return n
}

// delta runs step and returns how much value moved.
func delta(value func() float64, step func()) float64 {
	before := value()
	step()
	return value() - before
}

func TestCallOutcome(t *testing.T) {
	pe := func(kind error) error {
		return fmt.Errorf("wrapped: %w", &ProviderError{Provider: "pegas", Op: "deposit", Kind: kind})
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{pe(ErrAuth), "auth"},
		{pe(ErrRejected), "rejected"},
		{pe(ErrDuplicate), "duplicate"},
		{pe(ErrNotFound), "not_found"},
		{pe(ErrUnavailable), "unavailable"},
		{pe(ErrMalformedReply), "malformed"},
		{errors.New("something local"), "unavailable"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			if got := callOutcome(tc.err); got != tc.want {
				t.Errorf("callOutcome(%v) = %q, want %q", tc.err, got, tc.want)
			}
		})
	}
}

// TestProviderCallMetrics: every call of each client is counted once, by
// the kind of its outcome, and timed.
func TestProviderCallMetrics(t *testing.T) {
	sb := startSandbox(t, nil)
	ctx := context.Background()
	crystal, pegas, cashier := sb.crystal(t), sb.pegas(t, ""), sb.smartCashier(t)
	cashier.retries = 0

	calls := func(provider, op, outcome string) func() float64 {
		return func() float64 { return counted(metrics.providerCalls, provider, op, outcome) }
	}
	timed := func(provider, op string) func() float64 {
		return func() float64 { return observations(metrics.providerCallDuration, provider, op) }
	}
	for _, tc := range []struct {
		name                  string
		fault                 string // sandbox fault mode on the call, if any
		provider, op, outcome string
		call                  func() error
		wantErr               error
	}{
		{"crystalpay balance", "", "crystalpay", "balance", "ok", func() error { _, err := crystal.Balance(ctx); return err }, nil},
		{"crystalpay refused credentials", "auth", "crystalpay", "balance", "auth", func() error { _, err := crystal.Balance(ctx); return err }, ErrAuth},
		{"crystalpay 500", "error500", "crystalpay", "balance", "unavailable", func() error { _, err := crystal.Balance(ctx); return err }, ErrUnavailable},
		{"crystalpay truncated reply", "malformed", "crystalpay", "balance", "malformed", func() error { _, err := crystal.Balance(ctx); return err }, ErrMalformedReply},
		{"crystalpay unknown invoice", "", "crystalpay", "checkpay", "rejected", func() error {
			_, err := crystal.PaymentStatus(ctx, PaymentRef{ID: "1_nope"})
			return err
		}, ErrRejected},
		{"pegas deposit", "", "pegas", "deposit", "ok", func() error {
			_, err := pegas.CreatePayment(ctx, PaymentRequest{OrderID: "metrics-dup", Amount: decimal.NewFromInt(100)})
			return err
		}, nil},
		{"pegas repeated order id", "", "pegas", "deposit", "duplicate", func() error {
			_, err := pegas.CreatePayment(ctx, PaymentRequest{OrderID: "metrics-dup", Amount: decimal.NewFromInt(100)})
			return err
		}, ErrDuplicate},
		{"pegas unpaid deposit has no document", "", "pegas", "transaction/receipt/file", "not_found", func() error {
			_, err := pegas.PaymentDocument(ctx, PaymentRef{OrderID: "metrics-dup"}, "pdf")
			return err
		}, ErrNotFound},
		{"pegas HTML from a proxy", "html", "pegas", "balance", "unavailable", func() error { _, err := pegas.Balance(ctx); return err }, ErrUnavailable},
		{"smartcashier refused token", "auth", "smartcashier", "checkStatus", "auth", func() error {
			_, err := cashier.ReceiptStatus(ctx, "metrics-op")
			return err
		}, ErrAuth},
		{"smartcashier unknown operation", "", "smartcashier", "checkStatus", "not_found", func() error {
			_, err := cashier.ReceiptStatus(ctx, "metrics-op")
			return err
		}, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.fault != "" {
				sb.fault(tc.provider, tc.op, tc.fault, 1)
			}
			var err error
			n := delta(calls(tc.provider, tc.op, tc.outcome), func() {
				if d := delta(timed(tc.provider, tc.op), func() { err = tc.call() }); d != 1 {
					t.Errorf("%v durations observed, want 1", d)
				}
			})
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("call: %v, want %v", err, tc.wantErr)
			}
			if n != 1 {
				t.Errorf("kassa_provider_calls_total{%s,%s,%s} moved by %v, want 1", tc.provider, tc.op, tc.outcome, n)
			}
		})
	}

	// A closed port: one call, unavailable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/pegas/api/v1"
	ln.Close()
	dead := &Pegas{Token: "t", Endpoint: closed, Timeout: caddy.Duration(time.Second)}
	provisionModule(t, dead)
	if n := delta(calls("pegas", "balance", "unavailable"), func() { _, err = dead.Balance(ctx) }); n != 1 || !errors.Is(err, ErrUnavailable) {
		t.Errorf("refused connection: %v, counted %v", err, n)
	}

	// Smart Cashier's retries are calls of their own.
	cashier.retries = 2
	sb.fault("smartcashier", "checkStatus", "error500", 3)
	if n := delta(calls("smartcashier", "checkStatus", "unavailable"), func() { _, err = cashier.ReceiptStatus(ctx, "metrics-op") }); n != 3 {
		t.Errorf("3 failed attempts counted %v times (%v)", n, err)
	}
}

// metricsApp is an app with a Pegas account and Smart Cashier on the
// sandbox, its clock at now.
func metricsApp(t *testing.T, sb *sandboxServer, now time.Time) *App {
	t.Helper()
	a := &App{logger: zap.NewNop(), now: func() time.Time { return now }, OrderTTL: caddy.Duration(time.Hour)}
	a.accounts = map[string]*account{"metrics-card": {name: "metrics-card", provider: "pegas", PaymentProvider: sb.pegas(t, "")}}
	a.receipts = sb.smartCashier(t)
	a.receipts.(*SmartCashier).retries = 0
	a.useStorage(&certmagic.FileStorage{Path: t.TempDir()})
	return a
}

// checkout posts a JSON checkout of amount to a's only account and returns
// the status and the order id.
func checkout(t *testing.T, a *App, amount string) (int, string) {
	t.Helper()
	h := &Checkout{app: a, acc: a.accounts["metrics-card"], logger: zap.NewNop(), MaxBody: defaultMaxBody,
		AmountRange: &AmountRange{Min: decimal.NewFromInt(1), Max: decimal.NewFromInt(10000)}}
	req := httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(`{"amount":"`+amount+`","email":"buyer@example.com"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, caddy.NewReplacer()))
	w := httptest.NewRecorder()
	if err := h.ServeHTTP(w, req, nil); err != nil {
		t.Fatalf("checkout: %v", err)
	}
	var v struct {
		OrderID string `json:"order_id"`
	}
	json.Unmarshal(w.Body.Bytes(), &v)
	return w.Code, v.OrderID
}

// TestOrderAndReceiptMetrics: a checkout, a failed checkout, a payment and
// its receipt move the transition and receipt counters; a pass is counted.
func TestOrderAndReceiptMetrics(t *testing.T) {
	sb := startSandbox(t, nil)
	a := metricsApp(t, sb, time.Now())
	ctx := context.Background()
	transitions := func(from, to string) func() float64 {
		return func() float64 { return counted(metrics.orderTransitions, "metrics-card", "pegas", from, to) }
	}
	receipts := func(outcome string) func() float64 {
		return func() float64 { return counted(metrics.receipts, "sale", outcome) }
	}

	var id string
	if n := delta(transitions("creating", "pending"), func() {
		var status int
		if status, id = checkout(t, a, "350"); status != http.StatusCreated {
			t.Fatalf("checkout: %d", status)
		}
	}); n != 1 {
		t.Errorf("creating→pending moved by %v, want 1", n)
	}

	sb.fault("pegas", "deposit", "auth", 1)
	if n := delta(transitions("creating", "failed"), func() {
		if status, _ := checkout(t, a, "100"); status != http.StatusBadGateway {
			t.Errorf("refused checkout: %d", status)
		}
	}); n != 1 {
		t.Errorf("creating→failed moved by %v, want 1", n)
	}

	sb.control(http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": id}, nil)
	passes := func() float64 { return valueOf(metrics.reconcilerPasses) }
	passTimes := func() float64 { return valueOf(metrics.reconcilerPassTime) }
	var paid, queued, done, passed, timedPasses float64
	timedPasses = delta(passTimes, func() {
		passed = delta(passes, func() {
			done = delta(receipts("done"), func() {
				queued = delta(receipts("queued"), func() {
					paid = delta(transitions("pending", "paid"), func() { a.reconciler.pass(ctx) })
				})
			})
		})
	})
	if paid != 1 || queued != 1 || done != 1 || passed != 1 || timedPasses != 1 {
		t.Errorf("after a pass over a paid order: paid %v, receipt queued %v, done %v, passes %v, timed %v; want 1 each",
			paid, queued, done, passed, timedPasses)
	}
	if o, err := a.orders.Load(ctx, id); err != nil || o.State != OrderPaid || o.Receipt.State != ReceiptDone {
		t.Fatalf("order: %+v, %v", o, err)
	}

	// A receipt service that does not answer, then one that fails it.
	sb.fault("smartcashier", "formReceipt", "error500", 1)
	returns := func() float64 { return counted(metrics.receipts, "sale_return", "unavailable") }
	if n := delta(returns, func() { a.reissueReceipt(ctx, id, ReceiptSaleReturn, nil) }); n != 1 {
		t.Errorf("a return receipt the service did not take moved unavailable by %v, want 1", n)
	}
	a.reconciler.pass(ctx) // sends the return receipt again, so that the next fault is the next order's
	if o, _ := a.orders.Load(ctx, id); o.Refund == nil || o.Refund.State != ReceiptDone {
		t.Fatalf("return receipt: %+v", o.Refund)
	}
	sb.control(http.MethodPost, "faults", map[string]any{"api": "smartcashier", "op": "formReceipt",
		"mode": "notprocessed", "count": 1, "message": "Открыта крышка."}, nil)
	_, id2 := checkout(t, a, "200")
	sb.control(http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": id2}, nil)
	if n := delta(receipts("failed"), func() { a.reconciler.pass(ctx) }); n != 1 {
		t.Errorf("a receipt the till failed moved failed by %v, want 1", n)
	}

	// The operator cancels through the lifecycle: counted too.
	_, id3 := checkout(t, a, "300")
	if n := delta(transitions("pending", "cancelled"), func() { a.cancelled(ctx, id3, "test") }); n != 1 {
		t.Errorf("pending→cancelled moved by %v", n)
	}
}

// TestOpenOrderGauges: a pass sets how many orders stay open and how old
// the oldest is.
func TestOpenOrderGauges(t *testing.T) {
	sb := startSandbox(t, nil)
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	a := metricsApp(t, sb, now)
	ctx := context.Background()
	for i, age := range []time.Duration{time.Minute, 90 * time.Minute, 5 * time.Minute} {
		o := &Order{ID: NewOrderID(), State: OrderPending, Account: "metrics-card", Provider: "pegas", Amount: decimal.NewFromInt(100),
			CreatedAt: now.Add(-age), ExpiresAt: now.Add(time.Hour), Payment: Payment{ID: fmt.Sprint(900000 + i)}}
		if err := a.orders.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	a.reconciler.pass(ctx)
	if n := valueOf(metrics.openOrders); n != 3 {
		t.Errorf("open orders = %v, want 3", n)
	}
	if age := valueOf(metrics.oldestOpenOrderAge); age != 90*60 {
		t.Errorf("oldest open order age = %v s, want 5400", age)
	}

	// Once they are gone, nothing is open and nothing is old.
	empty := metricsApp(t, sb, now)
	empty.reconciler.pass(ctx)
	if n, age := valueOf(metrics.openOrders), valueOf(metrics.oldestOpenOrderAge); n != 0 || age != 0 {
		t.Errorf("with no orders: open %v, oldest %v s", n, age)
	}
}

// TestMetricLabelsStayInFixedSets: whatever the hooks were given, every
// label value is one of its fixed set, or a configured account name.
func TestMetricLabelsStayInFixedSets(t *testing.T) {
	// Hooks given what a damaged record or an odd error could hold.
	countTransition(&Order{ID: NewOrderID(), Account: "../secret?s=hunter2", Provider: "Pegas Kassa", State: "weird"}, "creating")
	countReceipt(ReceiptType(42), "sending")
	(&ProviderClient{provider: "pegas"}).Observe("deposit", time.Now(), new(error))
	other := errors.New("https://example.com/api.php?s=secret")
	(&ProviderClient{provider: "crystalpay"}).Observe("generate", time.Now(), &other)

	registry := prometheus.NewPedanticRegistry()
	if err := registerMetrics(registry); err != nil {
		t.Fatal(err)
	}
	families, err := registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	states := []string{"creating", "pending", "paid", "expired", "cancelled", "failed", "unknown"}
	allowed := map[string][]string{
		"provider": {"crystalpay", "pegas", "smartcashier", "unknown"},
		"operation": {"generate", "checkpay", "balance", "withdraw", "deposit", "deposit/cancel", "withdrawal", "transaction/receipt/file", "formReceipt", "depositCash", "withdrawCash", "checkStatus",
			"me/info", "balance/list", "invoice/create", "invoice/info", "payoff/create", "payoff/submit", "payoff/cancel", "payoff/info"},
		"outcome": {"ok", "auth", "rejected", "duplicate", "not_found", "unavailable", "malformed"},
		"from":    states,
		"to":      states,
		"type":    {"sale", "sale_return", "purchase", "purchase_return", "unknown"},
		"account": {"card", "main", "metrics-card", "unknown"},
		"reason":  {refusedShopBusy, refusedTooMany},
		"kind":    {problemUnderpaid, problemReported},
		"result": {callbackPaid, callbackNotPaid, callbackProblem, callbackPayout, callbackBadSignature, callbackInvalid,
			callbackUnknownPayment, callbackFailed},
	}
	receiptOutcomes := []string{"queued", "done", "failed", "unavailable", "unknown"}
	var eventTypes []string
	for _, e := range allEvents {
		eventTypes = append(eventTypes, string(e))
	}
	seen := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "kassa_") {
			t.Errorf("unexpected family %s", f.GetName())
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				seen++
				set := allowed[l.GetName()]
				if f.GetName() == "kassa_receipts_total" && l.GetName() == "outcome" {
					set = receiptOutcomes
				}
				if f.GetName() == "kassa_events_raised_total" && l.GetName() == "type" {
					set = eventTypes // raised by the tests that ran before
				}
				if !slices.Contains(set, l.GetValue()) {
					t.Errorf("%s{%s=%q}: not in the fixed set %v", f.GetName(), l.GetName(), l.GetValue(), set)
				}
			}
		}
	}
	if seen == 0 {
		t.Error("no labels gathered")
	}
	for _, want := range []string{"kassa_provider_calls_total", "kassa_provider_call_duration_seconds", "kassa_order_transitions_total",
		"kassa_receipts_total", "kassa_open_orders", "kassa_oldest_open_order_age_seconds", "kassa_reconciler_passes_total",
		"kassa_reconciler_pass_duration_seconds", "kassa_reconciler_leader", "kassa_reconciler_due_orders",
		"kassa_reconciler_lateness_seconds", "kassa_orders_compacted_total"} {
		if !slices.ContainsFunc(families, func(f *dto.MetricFamily) bool { return f.GetName() == want }) {
			t.Errorf("%s not gathered", want)
		}
	}
}

// TestRegisterMetricsTwice: registering again in one registry is fine, a
// second registry gets the same collectors, and no registry is no error.
func TestRegisterMetricsTwice(t *testing.T) {
	first, second := prometheus.NewPedanticRegistry(), prometheus.NewPedanticRegistry()
	for _, r := range []*prometheus.Registry{first, first, second, nil} {
		if err := registerMetrics(r); err != nil {
			t.Fatalf("registerMetrics: %v", err)
		}
	}
	metrics.reconcilerPasses.Inc()
	for _, r := range []*prometheus.Registry{first, second} {
		if n := gathered(t, r, "kassa_reconciler_passes_total"); n != 1 {
			t.Errorf("gathered %d kassa_reconciler_passes_total", n)
		}
	}
}

// TestAppRegistersMetricsOnEveryLoad: each config load has a new registry,
// and the kassa app registers its collectors in it, counts carried over.
func TestAppRegistersMetricsOnEveryLoad(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "catalog.json"), []byte(`{"products":[{"sku":"tea","name":"Tea","price":"350"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	load := func(poll string) *prometheus.Registry {
		t.Helper()
		cfg := `{"admin":{"disabled":true,"config":{"persist":false}},
			"logging":{"logs":{"default":{"level":"ERROR"}}},
			"storage":{"module":"file_system","root":` + quoted(dir) + `},
			"apps":{"kassa":{"poll_interval":"` + poll + `","catalog":` + quoted(filepath.Join(dir, "catalog.json")) + `}}}`
		if err := caddy.Load([]byte(cfg), true); err != nil {
			t.Fatalf("load: %v", err)
		}
		ctx := caddy.ActiveContext()
		return ctx.GetMetricsRegistry()
	}
	t.Cleanup(func() { caddy.Stop() })
	first := load("1h")
	passes := valueOf(metrics.reconcilerPasses)
	second := load("2h")
	if first == second {
		t.Fatal("the reload kept the registry")
	}
	for i, r := range []*prometheus.Registry{first, second} {
		if n := gathered(t, r, "kassa_reconciler_passes_total", "kassa_open_orders"); n != 2 {
			t.Errorf("registry %d: gathered %d kassa metrics, want 2", i+1, n)
		}
	}
	// The second config's first pass counts on from the first's.
	deadline := time.Now().Add(5 * time.Second)
	for valueOf(metrics.reconcilerPasses) <= passes && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if after := valueOf(metrics.reconcilerPasses); after <= passes {
		t.Errorf("passes %v after the reload, %v before", after, passes)
	}
}

// quoted is s as a JSON string.
func quoted(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
