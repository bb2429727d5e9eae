package caddytest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// The receipts of 2026 in a running Caddy: a 22% product under the code
// tax_type gives it, its receipt page at the place of settlement, a
// checkout without a contact refused, a rate without a code refused at
// start.

// receipts2026Shop is the receipts shop with the cup at 22%, Smart Cashier
// told code 11 for it and the shop's time zone, and the sandbox taking 11.
func receipts2026Shop(t *testing.T) {
	t.Helper()
	shopWith(t, storageDir(t),
		"poll_interval 100ms", "poll_interval 100ms\n\t\treceipts smartcashier {\n\t\t\ttoken sandbox-token\n"+
			"\t\t\tendpoint http://localhost:9181/smartcashier/v1.0\n\t\t\ttaxation osn\n\t\t\tvat none\n"+
			"\t\t\ttax_type vat22 11\n\t\t\ttimezone Asia/Yekaterinburg\n\t\t\ttimeout 1s\n\t\t}",
		`product cup 1200.00 "Чашка"`, `product cup 1220.00 "Чашка" vat22`,
		"\troute /card {", "\tkassa_receipt /receipt {\n\t\tshop \"Чайная лавка\"\n\t}\n\troute /card {",
		"receipt_delay 0s", "receipt_delay 0s\n\t\tsmartcashier_tax_types 11")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
}

// TestReceipt22Percent: a product at 22% goes to Smart Cashier as the code
// tax_type gives (11), and the receipt page shows НДС 22% of the total
// (220.00 of 1220.00) at the fiscal document's time in the shop's zone.
func TestReceipt22Percent(t *testing.T) {
	receipts2026Shop(t)
	id := buyAndPay(t, "/card", `{"items":[{"sku":"cup"}],"email":"buyer@example.com"}`)
	waitFor(t, "the receipt", func() bool { return receiptOf(t, id)["state"] == "done" })
	bodies, _ := sentReceipts(t)
	if len(bodies) != 1 || len(bodies[0].Positions) != 1 || bodies[0].Positions[0].TaxType != 11 || bodies[0].Taxation != 1 {
		t.Fatalf("receipts sent: %+v, want one position with taxType 11 under taxation 1 (osn)", bodies)
	}
	fiscal, _ := receiptOf(t, id)["fiscal"].(map[string]any)
	at, err := time.Parse(time.RFC3339Nano, fiscal["fiscalDocumentDateTimeUtc"].(string))
	if err != nil {
		t.Fatalf("fiscal data %v: %v", fiscal, err)
	}
	zone, err := time.LoadLocation("Asia/Yekaterinburg")
	if err != nil {
		t.Fatal(err)
	}
	page := send(t, http.MethodGet, shopURL+"/receipt?order="+id, "", "", "Accept", "text/html")
	for _, want := range []string{`НДС 22%</td><td class="num">220.00`, at.In(zone).Format("02.01.2006 15:04")} {
		if !strings.Contains(page.body, want) {
			t.Errorf("the receipt page lacks %q", want)
		}
	}
	if strings.Contains(page.body, "НДС 20%") {
		t.Error("the receipt page shows the 20% rate")
	}
}

// TestCheckoutNeedsAContact: with receipts on, a checkout without an
// e-mail or phone is 400 contact_required, and no invoice is made.
func TestCheckoutNeedsAContact(t *testing.T) {
	receipts2026Shop(t)
	before := len(providerCalls(t, "pegas", "deposit"))
	for _, body := range []string{`{"items":[{"sku":"tea"}]}`, `{"items":[{"sku":"tea"}],"email":"","phone":""}`} {
		r := postJSON(t, "/card", body)
		var v struct {
			Error struct{ Code, Field string }
		}
		json.Unmarshal([]byte(r.body), &v)
		if r.status != http.StatusBadRequest || v.Error.Code != "contact_required" {
			t.Errorf("%s: %d %s", body, r.status, r.body)
		}
	}
	if r := send(t, http.MethodPost, shopURL+"/card", "application/x-www-form-urlencoded", "item=tea"); r.status != http.StatusBadRequest {
		t.Errorf("a form without a contact: %d", r.status)
	}
	if n := len(providerCalls(t, "pegas", "deposit")) - before; n != 0 {
		t.Errorf("%d deposits for checkouts without a contact", n)
	}
	if r := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"phone":"+79991234567"}`); r.status != http.StatusCreated {
		t.Errorf("a checkout with a phone: %d %s", r.status, r.body)
	}
}

// TestRateWithoutCodeStopsTheStart: a catalog product at 22% without a
// tax_type for it is a configuration error that names the line to add.
func TestRateWithoutCodeStopsTheStart(t *testing.T) {
	config := strings.Replace(shopConfig, `product cup 1200.00 "Чашка"`, `product cup 1220.00 "Чашка" vat22`, 1)
	config = strings.Replace(config, "poll_interval 100ms", "poll_interval 100ms\n\t\treceipts smartcashier {\n\t\t\ttoken sandbox-token\n"+
		"\t\t\tendpoint http://localhost:9181/smartcashier/v1.0\n\t\t\ttaxation osn\n\t\t}", 1)
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(config), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg caddy.Config
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	err = caddy.Validate(&cfg)
	if err == nil || !strings.Contains(err.Error(), `product "cup" (vat22)`) || !strings.Contains(err.Error(), "tax_type vat22 <code>") {
		t.Errorf("a vat22 product without its code: %v", err)
	}
}
