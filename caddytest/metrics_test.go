package caddytest

import (
	"bufio"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// metricsURL is where Caddy serves the config's metrics registry: on the
// admin endpoint, without any metrics option.
const metricsURL = "http://localhost:2999/metrics"

// scrape is one read of /metrics: each sample's value by its name and
// labels as exposed.
type scrape map[string]float64

// scrapeMetrics reads the kassa metrics from the admin endpoint.
func scrapeMetrics(t *testing.T) scrape {
	t.Helper()
	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("/metrics: %d %s", resp.StatusCode, body)
	}
	out := scrape{}
	lines := bufio.NewScanner(resp.Body)
	lines.Buffer(make([]byte, 64<<10), 1<<20)
	for lines.Scan() {
		line := lines.Text()
		if !strings.HasPrefix(line, "kassa_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("/metrics line %q: %v", line, err)
		}
		out[line[:i]] = v
	}
	return out
}

// sum adds up the samples of name whose labels include every label=value
// pair given.
func (s scrape) sum(name string, labels ...string) float64 {
	total := 0.0
	for series, v := range s {
		metric, rest, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		matches := true
		for i := 0; i+1 < len(labels); i += 2 {
			if !strings.Contains(","+strings.TrimSuffix(rest, "}")+",", ","+labels[i]+`="`+labels[i+1]+`",`) {
				matches = false
			}
		}
		if matches {
			total += v
		}
	}
	return total
}

// has reports whether name is exposed at all.
func (s scrape) has(name string) bool {
	for series := range s {
		if metric, _, _ := strings.Cut(series, "{"); metric == name {
			return true
		}
	}
	return false
}

// moved checks that each counter of want moved by at least its value from
// before to after.
func moved(t *testing.T, what string, before, after scrape, want []metricMove) {
	t.Helper()
	for _, w := range want {
		if d := after.sum(w.name, w.labels...) - before.sum(w.name, w.labels...); d < w.by {
			t.Errorf("%s: %s%v moved by %v, want at least %v", what, w.name, w.labels, d, w.by)
		}
	}
}

type metricMove struct {
	name   string
	labels []string
	by     float64
}

// TestMetricsEndpoint: a checkout, its payment and its receipt move the
// kassa counters on Caddy's /metrics; after a reload, whose config has a
// registry of its own, they keep counting.
func TestMetricsEndpoint(t *testing.T) {
	storage := storageDir(t)
	shopWith(t, storage, "poll_interval 100ms", "poll_interval 100ms\n\t\treceipts smartcashier {\n\t\t\ttoken sandbox-token\n"+
		"\t\t\tendpoint http://localhost:9181/smartcashier/v1.0\n\t\t\ttaxation usn_income\n\t\t\tvat none\n\t\t\ttimeout 1s\n\t\t}",
		"\troute /card {", "\tkassa_receipt /receipt\n\troute /card {")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)

	before := scrapeMetrics(t)
	for _, name := range []string{"kassa_open_orders", "kassa_oldest_open_order_age_seconds", "kassa_reconciler_passes_total"} {
		if !before.has(name) {
			t.Errorf("/metrics lacks %s", name)
		}
	}
	paid := func(t *testing.T) {
		t.Helper()
		id := buyAndPay(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
		waitFor(t, "the receipt", func() bool { return receiptOf(t, id)["state"] == "done" })
	}
	paid(t)
	fault(t, "pegas", "deposit", "auth", 1)
	if r := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`); r.status != http.StatusBadGateway {
		t.Errorf("refused checkout: %d %s", r.status, r.body)
	}
	after := scrapeMetrics(t)
	checkout := []metricMove{
		{"kassa_order_transitions_total", []string{"account", "card", "provider", "pegas", "from", "creating", "to", "pending"}, 1},
		{"kassa_order_transitions_total", []string{"account", "card", "provider", "pegas", "from", "pending", "to", "paid"}, 1},
		{"kassa_order_transitions_total", []string{"account", "card", "provider", "pegas", "from", "creating", "to", "failed"}, 1},
		{"kassa_provider_calls_total", []string{"provider", "pegas", "operation", "deposit", "outcome", "ok"}, 1},
		{"kassa_provider_calls_total", []string{"provider", "pegas", "operation", "deposit", "outcome", "auth"}, 1},
		{"kassa_provider_calls_total", []string{"provider", "smartcashier", "operation", "formReceipt", "outcome", "ok"}, 1},
		{"kassa_provider_call_duration_seconds_count", []string{"provider", "pegas", "operation", "deposit"}, 2},
		{"kassa_receipts_total", []string{"type", "sale", "outcome", "queued"}, 1},
		{"kassa_receipts_total", []string{"type", "sale", "outcome", "done"}, 1},
		{"kassa_reconciler_passes_total", nil, 1},
		{"kassa_reconciler_pass_duration_seconds_count", nil, 1},
	}
	moved(t, "first config", before, after, checkout)
	for series := range after {
		for _, bad := range []string{"order_id", "amount", "sandbox-token", "http://", "https://"} {
			if strings.Contains(series, bad) {
				t.Errorf("series %s carries %q", series, bad)
			}
		}
	}

	// Reload with another poll interval: a new config, a new registry.
	shopWith(t, storage, "poll_interval 100ms", "poll_interval 150ms\n\t\treceipts smartcashier {\n\t\t\ttoken sandbox-token\n"+
		"\t\t\tendpoint http://localhost:9181/smartcashier/v1.0\n\t\t\ttaxation usn_income\n\t\t\tvat none\n\t\t\ttimeout 1s\n\t\t}",
		"\troute /card {", "\tkassa_receipt /receipt\n\troute /card {")
	reloaded := scrapeMetrics(t)
	if got, was := reloaded.sum("kassa_order_transitions_total"), after.sum("kassa_order_transitions_total"); got < was {
		t.Errorf("the reload lost counts: %v transitions, %v before", got, was)
	}
	paid(t)
	fault(t, "pegas", "deposit", "auth", 1)
	postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	moved(t, "after the reload", reloaded, scrapeMetrics(t), checkout)
}
