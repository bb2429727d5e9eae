package caddytest

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// shopWith loads shopConfig with its orders in storage, after applying
// edits (old, new, old, new...) to the config.
func shopWith(t *testing.T, storage string, edits ...string) {
	t.Helper()
	config := strings.Replace(shopConfig, "poll_interval 100ms", "poll_interval 100ms\n\t\tstorage file_system "+storage, 1)
	for i := 0; i+1 < len(edits); i += 2 {
		if !strings.Contains(config, edits[i]) {
			t.Fatalf("config has no %q", edits[i])
		}
		config = strings.Replace(config, edits[i], edits[i+1], 1)
	}
	caddytest.NewTester(t).InitServer(config, "caddyfile")
	forgetConnections()
}

// forgetConnections drops the test clients' idle keep-alive connections:
// one accepted before a config load may still be served by the previous
// config's server, with another test's storage, for a moment.
func forgetConnections() {
	noRedirect.CloseIdleConnections()
	http.DefaultClient.CloseIdleConnections()
}

// TestCheckoutDonation: with amount_range the buyer chooses the amount.
func TestCheckoutDonation(t *testing.T) {
	startShop(t)
	r := postJSON(t, "/donate", `{"amount":"150.50","email":"giver@example.com"}`)
	if r.status != http.StatusCreated || r.json(t)["amount"] != "150.50" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	deposits := providerCalls(t, "pegas", "deposit")
	if len(deposits) != 1 || deposits[0].Query["amount"] != "150.50" {
		t.Errorf("deposits = %+v", deposits)
	}
	form := postForm(t, "/donate", mustQuery("amount=10"))
	if form.status != http.StatusSeeOther {
		t.Errorf("form donation: %d %s", form.status, form.body)
	}
}

// TestOrdersExpire: unpaid orders expire after order_ttl; a Pegas invoice
// is cancelled at the provider, a CrystalPAY one (no cancel call) is not.
func TestOrdersExpire(t *testing.T) {
	shopWith(t, storageDir(t), "poll_interval 100ms", "poll_interval 100ms\n\t\torder_ttl 1s")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	pegas := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)
	crystal := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)
	for _, v := range []map[string]any{pegas, crystal} {
		id := v["order_id"].(string)
		waitFor(t, "order "+id+" to expire", func() bool { return orderStatus(t, id)["state"] == "expired" })
	}
	cancels := providerCalls(t, "pegas", "deposit/cancel")
	if len(cancels) != 1 || cancels[0].Query["order_id"] != pegas["order_id"] || cancels[0].Status != 200 {
		t.Errorf("cancel calls = %+v", cancels)
	}
	var state struct {
		Pegas struct {
			Invoices []struct {
				OrderID string `json:"order_id"`
				State   string `json:"state"`
			} `json:"invoices"`
		} `json:"pegas"`
	}
	sandboxControl(t, http.MethodGet, "state", nil, &state)
	if len(state.Pegas.Invoices) != 1 || !strings.Contains(state.Pegas.Invoices[0].State, "cancel") {
		t.Errorf("sandbox invoices = %+v", state.Pegas.Invoices)
	}
}

// TestUnpaidOrdersCompacted: keep_unpaid after an order expired, the
// reconciler deletes it and the buyer's link says unknown_order; a paid
// order of the same age stays.
func TestUnpaidOrdersCompacted(t *testing.T) {
	storage := storageDir(t)
	shopWith(t, storage, "poll_interval 100ms", "poll_interval 100ms\n\t\torder_ttl 1s\n\t\tkeep_unpaid 1s")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	unpaid := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)["order_id"].(string)
	paid := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)
	paidID := paid["order_id"].(string)
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "crystalpay",
		"id": strings.TrimPrefix(paid["payment_url"].(string), "http://localhost:9181/pay/crystalpay/")}, nil)

	record := func(id string) string { return filepath.Join(storage, "kassa", "orders", id+".json") }
	waitFor(t, "the unpaid order to expire", func() bool { return orderStatus(t, unpaid)["state"] == "expired" })
	waitFor(t, "the expired order to be compacted", func() bool {
		_, err := os.Stat(record(unpaid))
		return os.IsNotExist(err)
	})
	if r := send(t, http.MethodGet, shopURL+"/card?order="+unpaid, "", ""); r.status != http.StatusNotFound || r.errorCode(t) != "unknown_order" {
		t.Errorf("status of the compacted order: %d %s, want 404 unknown_order", r.status, r.body)
	}
	if _, err := os.Stat(filepath.Join(storage, "kassa", "unpaid", unpaid)); !os.IsNotExist(err) {
		t.Errorf("the compacted order is still in the unpaid index: %v", err)
	}
	if st := orderStatus(t, paidID)["state"]; st != "paid" {
		t.Errorf("the paid order is %v, want paid", st)
	}
	if _, err := os.Stat(record(paidID)); err != nil {
		t.Errorf("the paid order's record: %v", err)
	}
}

// TestReconcilerSurvivesReload: an order made before a config reload is
// picked up by the new config's reconciler.
func TestReconcilerSurvivesReload(t *testing.T) {
	storage := storageDir(t)
	shopWith(t, storage)
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	v := postJSON(t, "/pay", `{"items":[{"sku":"cup"}],"email":"buyer@example.com"}`).json(t)
	id := v["order_id"].(string)
	payment := strings.TrimPrefix(v["payment_url"].(string), "http://localhost:9181/pay/crystalpay/")

	shopWith(t, storage, "poll_interval 100ms", "poll_interval 150ms")
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "crystalpay", "id": payment}, nil)
	// Read the stored state without polling the provider: only the
	// reconciler can have stored it.
	waitFor(t, "the new reconciler to store the payment", func() bool {
		data, err := os.ReadFile(filepath.Join(storage, "kassa", "orders", id+".json"))
		var o struct{ State string }
		return err == nil && json.Unmarshal(data, &o) == nil && o.State == "paid"
	})
}

// TestCheckoutPlaceholders: {kassa.order_id}, {kassa.amount} and
// {kassa.payment_url} reach later handlers and the access log.
func TestCheckoutPlaceholders(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	shopWith(t, storageDir(t), "http://localhost:9183 {", "http://localhost:9184 {\n\tlog {\n\t\toutput file "+logFile+
		"\n\t\tformat json\n\t}\n\tlog_append kassa_order {kassa.order_id}\n\tlog_append kassa_amount {kassa.amount}\n"+
		"\tlog_append kassa_url {kassa.payment_url}\n\tkassa_checkout main\n}\n\nhttp://localhost:9183 {")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	r := send(t, http.MethodPost, "http://localhost:9184/", "application/json", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	v := r.json(t)
	var entry map[string]any
	waitFor(t, "the access log entry", func() bool {
		f, err := os.Open(logFile)
		if err != nil {
			return false
		}
		defer f.Close()
		s := bufio.NewScanner(f)
		for s.Scan() {
			if json.Unmarshal(s.Bytes(), &entry) == nil && entry["kassa_order"] != nil {
				return true
			}
		}
		return false
	})
	if entry["kassa_order"] != v["order_id"] || entry["kassa_amount"] != "350.00" || entry["kassa_url"] != v["payment_url"] {
		t.Errorf("log entry %v, order %v", entry, v)
	}
}

// storageDir is a directory for a test's order storage. The in-process
// Caddy's reconciler may still write there after the test, until the next
// test loads its config, so it is removed on a best-effort basis rather
// than with t.TempDir, whose cleanup fails on a directory being written.
func storageDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kassa-caddytest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// TestOrdersPerClientBound: with max_orders_per_client, a client address
// that made its share of orders is refused more (429), before anything is
// stored or sent; a replay of an order it made is still answered.
func TestOrdersPerClientBound(t *testing.T) {
	shopWith(t, storageDir(t), "poll_interval 100ms", "poll_interval 100ms\n\t\tmax_orders_per_client 2")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	first := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`, "Idempotency-Key", "cart-bound-000001")
	second := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	if first.status != 201 || second.status != 201 {
		t.Fatalf("first %d, second %d", first.status, second.status)
	}
	third := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	if third.status != http.StatusTooManyRequests || third.errorCode(t) != "too_many_orders" || third.header.Get("Retry-After") == "" {
		t.Errorf("third: %d %v %s", third.status, third.header, third.body)
	}
	replay := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`, "Idempotency-Key", "cart-bound-000001")
	if replay.status != 201 || replay.json(t)["order_id"] != first.json(t)["order_id"] {
		t.Errorf("replay: %d %s", replay.status, replay.body)
	}
	if n := len(providerCalls(t, "", "")); n != 2 {
		t.Errorf("%d provider calls, want 2", n)
	}
}
