package caddytest

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// operationsShop is the shop with Smart Cashier receipts, orders that
// expire after a second, and the operator's time zone.
func operationsShop(t *testing.T) {
	t.Helper()
	shopWith(t, storageDir(t),
		"poll_interval 100ms", "poll_interval 100ms\n\t\torder_ttl 1s\n\t\ttime_zone Europe/Moscow\n"+
			"\t\treceipts smartcashier {\n\t\t\ttoken sandbox-token\n"+
			"\t\t\tendpoint http://localhost:9181/smartcashier/v1.0\n\t\t\ttaxation usn_income\n\t\t\tvat none\n\t\t\ttimeout 1s\n\t\t}")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
}

// receiptSentFor reports whether the sandbox's Smart Cashier received the
// sale receipt of order id, with the buyer's e-mail.
func receiptSentFor(t *testing.T, id string) bool {
	t.Helper()
	bodies, statuses := sentReceipts(t)
	for i, b := range bodies {
		if strings.Contains(b.OperationID, id) && b.ReceiptType == 1 && b.Email == "buyer@example.com" && statuses[i] == http.StatusOK {
			return true
		}
	}
	return false
}

// cardStatus is the buyer's status of an order made through /card.
func cardStatus(t *testing.T, id string) map[string]any {
	t.Helper()
	r := send(t, http.MethodGet, shopURL+"/card?order="+id, "", "")
	if r.status != http.StatusOK {
		t.Fatalf("status of %s: %d %s", id, r.status, r.body)
	}
	return r.json(t)
}

// TestConfirmOrderClosedUnpaid: an operator who saw the money arrive for
// an order that expired, or that they cancelled, confirms it: it becomes
// paid late, and its receipt is issued at the receipt service.
func TestConfirmOrderClosedUnpaid(t *testing.T) {
	operationsShop(t)
	expired := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)["order_id"].(string)
	cancelled := postJSON(t, "/card", `{"items":[{"sku":"cup"}],"email":"buyer@example.com"}`).json(t)["order_id"].(string)
	if r := adminCall(t, http.MethodPost, "orders/"+cancelled+"/cancel", ""); r.status != http.StatusOK || r.json(t)["state"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	waitFor(t, "the order to expire unpaid", func() bool { return cardStatus(t, expired)["state"] == "expired" })

	for _, id := range []string{expired, cancelled} {
		r := adminCall(t, http.MethodPost, "orders/"+id+"/confirm", "")
		o := r.json(t)
		if r.status != http.StatusOK || o["state"] != "paid" || o["paid_late"] != true || o["error"] != "confirmed by an operator" {
			t.Fatalf("confirm %s: %d %s; want paid late", id, r.status, r.body)
		}
		waitFor(t, "the confirmed order's receipt", func() bool {
			rec, _ := adminCall(t, http.MethodGet, "orders/"+id, "").json(t)["receipt"].(map[string]any)
			return rec["state"] == "done"
		})
		if !receiptSentFor(t, id) {
			t.Errorf("the sandbox's Smart Cashier got no sale receipt for order %s", id)
		}
		if r := adminCall(t, http.MethodPost, "orders/"+id+"/confirm", ""); r.status != http.StatusConflict || r.errorCode(t) != "cannot_confirm" {
			t.Errorf("confirming twice: %d %s", r.status, r.body)
		}
	}
	if st := cardStatus(t, expired); st["state"] != "paid" {
		t.Errorf("the buyer's status of the confirmed order: %v", st)
	}
}

// TestMorningCheckCommand: caddy kassa check exits 0 on a shop with
// nothing to do, and 3 naming the late payments once an operator confirmed
// orders that closed unpaid, with their ids in its table and its JSON.
func TestMorningCheckCommand(t *testing.T) {
	procBinary(t) // build first: the build must not eat the shop's time
	operationsShop(t)
	paid := buyAndPay(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	waitFor(t, "the paid order's receipt", func() bool {
		rec, _ := adminCall(t, http.MethodGet, "orders/"+paid, "").json(t)["receipt"].(map[string]any)
		return rec["state"] == "done"
	})
	waitFor(t, "the reconciler's pass in its lease", func() bool {
		r := adminCall(t, http.MethodGet, "check", "")
		rec, _ := r.json(t)["reconciler"].(map[string]any)
		return rec["passed_at"] != nil
	})
	if r := runKassaCLI(t, "check"); r.exit != 0 || !strings.Contains(r.stdout, "nothing needs action") {
		t.Fatalf("check on a shop with nothing to do: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}

	late := postJSON(t, "/card", `{"items":[{"sku":"cup"}],"email":"buyer@example.com"}`).json(t)["order_id"].(string)
	waitFor(t, "the order to expire unpaid", func() bool { return cardStatus(t, late)["state"] == "expired" })
	if r := adminCall(t, http.MethodPost, "orders/"+late+"/confirm", ""); r.status != http.StatusOK {
		t.Fatalf("confirm: %d %s", r.status, r.body)
	}
	r := runKassaCLI(t, "check")
	if r.exit != 3 || r.stderr != "kassa: needs action: paid_late (1)\n" || !strings.Contains(r.stdout, "PAID_LATE: 1") ||
		!strings.Contains(r.stdout, late) || !strings.Contains(r.stdout, "caddy kassa refund <id>") {
		t.Errorf("check after a late payment: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	r = runKassaCLI(t, "check", "--json")
	var rep struct {
		OK          bool `json:"ok"`
		NeedsAction []struct {
			Kind  string `json:"kind"`
			Items []struct {
				OrderID string `json:"order_id"`
			} `json:"items"`
		} `json:"needs_action"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.exit != 3 || rep.OK || len(rep.NeedsAction) != 1 ||
		rep.NeedsAction[0].Kind != "paid_late" || len(rep.NeedsAction[0].Items) != 1 || rep.NeedsAction[0].Items[0].OrderID != late {
		t.Errorf("check --json: exit %d, %v\n%s", r.exit, err, r.stdout)
	}
}

// TestMonthTotalsCommand: caddy kassa export --month M --totals counts
// the month's paid orders per account and per VAT rate, in the app's time
// zone, to the kopeck.
func TestMonthTotalsCommand(t *testing.T) {
	procBinary(t)
	operationsShop(t)
	var ids []string
	for _, body := range []string{`{"items":[{"sku":"tea","qty":2}],"email":"buyer@example.com"}`,
		`{"items":[{"sku":"tea"},{"sku":"candy","qty":3}],"email":"buyer@example.com"}`} {
		ids = append(ids, buyAndPay(t, "/card", body))
	}
	var months []string
	moscow, err := time.LoadLocation("Europe/Moscow")
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		waitFor(t, "the receipt", func() bool {
			rec, _ := adminCall(t, http.MethodGet, "orders/"+id, "").json(t)["receipt"].(map[string]any)
			return rec["state"] == "done"
		})
		paidAt, err := time.Parse(time.RFC3339Nano, adminCall(t, http.MethodGet, "orders/"+id, "").json(t)["paid_at"].(string))
		if err != nil {
			t.Fatal(err)
		}
		months = append(months, paidAt.In(moscow).Format("2006-01"))
	}
	period := []string{"--month", months[0]}
	if months[0] != months[1] { // paid across a month's end in Moscow
		first, _ := time.Parse("2006-01", months[0])
		period = []string{"--from", first.Format(time.DateOnly), "--to", first.AddDate(0, 2, 0).Format(time.DateOnly)}
	}
	r := runKassaCLI(t, append([]string{"export", "--totals", "--json"}, period...)...)
	var rep struct {
		TimeZone string `json:"time_zone"`
		Accounts []struct {
			Account string `json:"account"`
			Orders  int    `json:"orders"`
			Amount  string `json:"amount"`
		} `json:"accounts"`
		VAT []struct {
			VAT      string `json:"vat"`
			Sales    string `json:"sales"`
			SalesVAT string `json:"sales_vat"`
		} `json:"vat"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || r.exit != 0 {
		t.Fatalf("export %v --totals --json: exit %d, %v\n%s%s", period, r.exit, err, r.stdout, r.stderr)
	}
	// 2 × 350.00 + 350.00 + 3 × 99.99 = 1349.97: tea at 20/120 (three
	// teas, 1050.00 over two receipts: 700.00 → 116.67 and 350.00 → 58.33),
	// candy without VAT (Smart Cashier's vat none).
	if rep.TimeZone != "Europe/Moscow" || len(rep.Accounts) != 1 || rep.Accounts[0].Account != "card" ||
		rep.Accounts[0].Orders != 2 || rep.Accounts[0].Amount != "1349.97" {
		t.Errorf("accounts: %+v in %s", rep.Accounts, rep.TimeZone)
	}
	vat := map[string][2]string{}
	for _, v := range rep.VAT {
		vat[v.VAT] = [2]string{v.Sales, v.SalesVAT}
	}
	if want := map[string][2]string{"vat20": {"1050.00", "175.00"}, "none": {"299.97", "0.00"}}; !mapsEqual(vat, want) {
		t.Errorf("vat: %v, want %v", vat, want)
	}
	r = runKassaCLI(t, append([]string{"export", "--totals"}, period...)...)
	if r.exit != 0 || !strings.Contains(r.stdout, "card") || !strings.Contains(r.stdout, "1349.97") || !strings.Contains(r.stdout, "НДС 20%") {
		t.Errorf("export --totals: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	r = runKassaCLI(t, append([]string{"export"}, period...)...)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\r\n")
	if r.exit != 0 || len(lines) != 3 || !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, ids[0]+",") }) {
		t.Errorf("export --month: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
}

func mapsEqual(a, b map[string][2]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
