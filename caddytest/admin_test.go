package caddytest

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddytest"
)

const adminURL = "http://localhost:2999/kassa/"

// adminCall calls the kassa admin API.
func adminCall(t *testing.T, method, path, body string) reply {
	t.Helper()
	ct := ""
	if body != "" {
		ct = "application/json"
	}
	return send(t, method, adminURL+path, ct, body)
}

// paidOrder checks out tea through /card, pays it and waits until the
// reconciler stored it paid with its receipt done.
func paidOrder(t *testing.T) string {
	t.Helper()
	id := buyAndPay(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	waitFor(t, "the receipt", func() bool {
		r := adminCall(t, http.MethodGet, "orders/"+id, "")
		rec, _ := r.json(t)["receipt"].(map[string]any)
		return r.json(t)["state"] == "paid" && rec["state"] == "done"
	})
	return id
}

func TestAdminBalanceAndOrders(t *testing.T) {
	receiptsShop(t, "")
	r := adminCall(t, http.MethodGet, "balance", "")
	accounts, _ := r.json(t)["accounts"].(map[string]any)
	main, _ := accounts["main"].(map[string]any)
	if r.status != 200 || main["provider"] != "crystalpay" || main["balance"] != "0.00" || len(accounts) != 3 {
		t.Fatalf("balance: %d %s", r.status, r.body)
	}
	id := paidOrder(t)
	pending := postJSON(t, "/pay", `{"items":[{"sku":"cup"}],"email":"buyer@example.com"}`).json(t)["order_id"]
	card, _ := adminCall(t, http.MethodGet, "balance", "").json(t)["accounts"].(map[string]any)["card"].(map[string]any)
	if card["balance"] != "341.25" {
		t.Errorf("card balance after a 350.00 payment less 2.5%%: %v", card)
	}

	list := adminCall(t, http.MethodGet, "orders", "").json(t)["orders"].([]any)
	if len(list) != 2 || list[0].(map[string]any)["id"] != pending || list[1].(map[string]any)["id"] != id {
		t.Errorf("orders, newest first: %v", list)
	}
	paid := adminCall(t, http.MethodGet, "orders?state=paid&limit=10", "").json(t)["orders"].([]any)
	if len(paid) != 1 || paid[0].(map[string]any)["receipt_state"] != "done" || paid[0].(map[string]any)["email"] != "buyer@example.com" {
		t.Errorf("paid orders: %v", paid)
	}
	whole := adminCall(t, http.MethodGet, "orders/"+id, "").json(t)
	if whole["email"] != "buyer@example.com" || whole["payment"] == nil {
		t.Errorf("an order, whole and unmasked: %v", whole)
	}
	for path, want := range map[string]int{
		"orders/AAAAAAAAAAAAAAAAAAAAAA": 404, "orders/not-an-id": 404, "orders?state=bogus": 400,
		"orders?limit=0": 400, "nothing": 404,
	} {
		if r := adminCall(t, http.MethodGet, path, ""); r.status != want {
			t.Errorf("GET %s: %d %s, want %d", path, r.status, r.body, want)
		}
	}
	if r := adminCall(t, http.MethodDelete, "orders", ""); r.status != 405 {
		t.Errorf("DELETE orders: %d", r.status)
	}
}

func TestAdminCancelAndConfirm(t *testing.T) {
	receiptsShop(t, "")
	pegas := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)["order_id"].(string)
	r := adminCall(t, http.MethodPost, "orders/"+pegas+"/cancel", "")
	if r.status != 200 || r.json(t)["state"] != "cancelled" {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if calls := providerCalls(t, "pegas", "deposit/cancel"); len(calls) != 1 || calls[0].Query["order_id"] != pegas {
		t.Errorf("cancel calls: %+v", calls)
	}
	if r := adminCall(t, http.MethodPost, "orders/"+pegas+"/cancel", ""); r.status != 409 || r.errorCode(t) != "not_pending" {
		t.Errorf("cancelling twice: %d %s", r.status, r.body)
	}
	crystal := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)["order_id"].(string)
	if r := adminCall(t, http.MethodPost, "orders/"+crystal+"/cancel", ""); r.status != 409 || r.errorCode(t) != "cannot_cancel" {
		t.Errorf("cancelling a CrystalPAY order: %d %s", r.status, r.body)
	}
	r = adminCall(t, http.MethodPost, "orders/"+crystal+"/confirm", "")
	if r.status != 200 || r.json(t)["state"] != "paid" {
		t.Fatalf("confirm: %d %s", r.status, r.body)
	}
	waitFor(t, "the confirmed order's receipt", func() bool {
		rec, _ := adminCall(t, http.MethodGet, "orders/"+crystal, "").json(t)["receipt"].(map[string]any)
		return rec["state"] == "done"
	})
	if r := adminCall(t, http.MethodPost, "orders/"+crystal+"/cancel", ""); r.status != 409 {
		t.Errorf("cancelling a paid order: %d %s", r.status, r.body)
	}
	if r := adminCall(t, http.MethodPost, "orders/AAAAAAAAAAAAAAAAAAAAAA/confirm", ""); r.status != 404 {
		t.Errorf("confirming an unknown order: %d", r.status)
	}
	// A buyer who paid just before the cancel: the order is paid, not cancelled.
	late := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)["order_id"].(string)
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": late}, nil)
	if r := adminCall(t, http.MethodPost, "orders/"+late+"/cancel", ""); r.status != 409 || r.errorCode(t) != "already_paid" {
		t.Errorf("cancelling a just-paid order: %d %s", r.status, r.body)
	}
}

func TestAdminReceiptAndRefund(t *testing.T) {
	receiptsShop(t, "")
	sandboxControl(t, http.MethodPost, "faults", map[string]any{"api": "smartcashier", "op": "formReceipt",
		"mode": "notprocessed", "count": 1, "message": "Открыта крышка."}, nil)
	id := buyAndPay(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	waitFor(t, "the receipt to fail", func() bool {
		rec, _ := adminCall(t, http.MethodGet, "orders/"+id, "").json(t)["receipt"].(map[string]any)
		return rec["state"] == "failed"
	})
	if r := adminCall(t, http.MethodPost, "orders/"+id+"/refund", ""); r.status != 409 {
		t.Errorf("refund before the receipt: %d %s", r.status, r.body)
	}
	// The retry is a new attempt under a new operation id: Smart Cashier
	// answers a repeated id with its first result.
	r := adminCall(t, http.MethodPost, "orders/"+id+"/receipt", "")
	rec, _ := r.json(t)["receipt"].(map[string]any)
	history, _ := rec["history"].([]any)
	if r.status != 200 || rec["state"] != "done" || rec["operation_id"] != "kassa-"+id+"-sale-2" || len(history) != 1 {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	r = adminCall(t, http.MethodPost, "orders/"+id+"/refund", "")
	refund, _ := r.json(t)["refund"].(map[string]any)
	if r.status != 200 || refund["state"] != "done" || refund["type"] != "sale_return" {
		t.Fatalf("refund: %d %s", r.status, r.body)
	}
	if r := adminCall(t, http.MethodPost, "orders/"+id+"/refund", ""); r.status != 409 || r.errorCode(t) != "receipt_done" {
		t.Errorf("a second refund: %d %s", r.status, r.body)
	}
	if n := operationCount(t); n != 3 {
		t.Errorf("%d operations, want the failed sale, its second attempt and a return", n)
	}
}

// payoutCall posts a payout to the admin API under an Idempotency-Key.
func payoutCall(t *testing.T, key, body string) reply {
	t.Helper()
	return send(t, http.MethodPost, adminURL+"payouts", "application/json", body, "Idempotency-Key", key)
}

func TestAdminPayouts(t *testing.T) {
	receiptsShop(t, "")
	paidOrder(t)
	r := payoutCall(t, "admin-payout-1", `{"payment":"card","amount":"100.00","to":"79990000000","method":"wallet","comment":"Возврат"}`)
	if r.status != 200 || r.json(t)["id"] == "" || r.json(t)["commission"] != "2.50" || r.json(t)["state"] != "sent" {
		t.Fatalf("pegas payout: %d %s", r.status, r.body)
	}
	if r := adminCall(t, http.MethodPost, "payouts", `{"payment":"card","amount":"1.00","to":"79990000000","method":"wallet"}`); r.status != 400 ||
		r.errorCode(t) != "idempotency_key_required" {
		t.Errorf("a payout without an Idempotency-Key: %d %s", r.status, r.body)
	}
	for i, tc := range []struct {
		body   string
		status int
		field  string
	}{
		{`{"payment":"nope","amount":"1","to":"7999","method":"qw"}`, 400, "payment"},
		{`{"payment":"card","amount":"1e3","to":"7999","method":"wallet"}`, 400, "amount"},
		{`{"payment":"card","amount":"10","to":"7999","method":"pigeon"}`, 400, "method"},
		{`{"payment":"card","amount":"10","to":"79990000000","method":"wallet","comment":"no"}`, 400, "comment"},
		{`{"payment":"main","amount":"10.50","to":"7999","method":"qw"}`, 400, "amount"},
		{`{"payment":"card","amount":"10","to":"7999","method":"wallet","tip":"1"}`, 400, ""},
		{`{"payment":"card","amount":"100000","to":"79990000000","method":"wallet"}`, 502, ""},
	} {
		r := payoutCall(t, fmt.Sprintf("admin-refused-%d", i), tc.body)
		e, _ := r.json(t)["error"].(map[string]any)
		if r.status != tc.status || (tc.field != "" && e["field"] != tc.field) {
			t.Errorf("%s: %d %s, want %d on %q", tc.body, r.status, r.body, tc.status, tc.field)
		}
	}
	// A payout is sent once, even when the provider fails: its outcome is
	// unknown, and CrystalPAY, which cannot be asked, never gets it again.
	fault(t, "crystalpay", "withdraw", "error500", 1)
	body := `{"payment":"main","amount":"1","to":"7999","method":"qw"}`
	if r := payoutCall(t, "admin-fails-1", body); r.status != 503 || r.errorCode(t) != "payout_outcome_unknown" {
		t.Errorf("payout on a failing provider: %d %s", r.status, r.body)
	}
	if r := payoutCall(t, "admin-fails-1", body); r.status != 409 || r.errorCode(t) != "payout_outcome_unknown" {
		t.Errorf("its retry: %d %s", r.status, r.body)
	}
	if n := len(providerCalls(t, "crystalpay", "withdraw")); n != 1 {
		t.Errorf("%d withdraw calls, want 1: payouts are never retried", n)
	}
}

// TestAdminPayoutOnce: a payout posted twice under one Idempotency-Key
// pays once, and a refused one is refused again without a second call.
func TestAdminPayoutOnce(t *testing.T) {
	receiptsShop(t, "")
	paidOrder(t)
	body := `{"payment":"card","amount":"100.00","to":"79990000000","method":"wallet"}`
	first := payoutCall(t, "admin-once-1", body)
	second := payoutCall(t, "admin-once-1", body)
	if first.status != 200 || first.json(t)["state"] != "sent" || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("payout: %d %s", first.status, first.body)
	}
	if second.status != 200 || second.body != first.body || second.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("the same key again: %d %v %s; want the first answer, replayed", second.status, second.header, second.body)
	}
	calls := providerCalls(t, "pegas", "withdrawal")
	if len(calls) != 1 || !strings.HasPrefix(calls[0].Query["order_id"], "payout-") || calls[0].Query["order_id"] != first.json(t)["order_id"] {
		t.Errorf("withdrawal calls: %+v; want one, with the order id made from the key (%v)", calls, first.json(t)["order_id"])
	}
	card, _ := adminCall(t, http.MethodGet, "balance", "").json(t)["accounts"].(map[string]any)["card"].(map[string]any)
	if card["balance"] != "238.75" {
		t.Errorf("card balance after one payout of 100.00 and 2.50 commission from 341.25: %v", card)
	}
	if r := payoutCall(t, "admin-once-1", `{"payment":"card","amount":"200.00","to":"79990000000","method":"wallet"}`); r.status != 422 ||
		r.errorCode(t) != "idempotency_key_reused" {
		t.Errorf("another payout under the key: %d %s", r.status, r.body)
	}

	// CrystalPAY's balance is empty: refused, and refused again.
	body = `{"payment":"main","amount":"100","to":"79990000000","method":"qw"}`
	refused := payoutCall(t, "admin-once-2", body)
	again := payoutCall(t, "admin-once-2", body)
	if refused.status != 502 || again.status != 502 || again.body != refused.body || again.header.Get("Idempotent-Replayed") != "true" {
		t.Errorf("a refused payout and its repeat: %d %s, %d %s", refused.status, refused.body, again.status, again.body)
	}
	if n := len(providerCalls(t, "crystalpay", "withdraw")); n != 1 {
		t.Errorf("%d withdraw calls, want 1", n)
	}
}

// TestAdminPayoutStatusUntracked: GET /kassa/payouts/{id} through Caddy's
// admin endpoint. Neither Pegas-kassa nor CrystalPAY's api v1 gives a
// payout a status to ask for, so the route says so, and checks the id
// first; no provider is called.
func TestAdminPayoutStatusUntracked(t *testing.T) {
	receiptsShop(t, "")
	for _, tc := range []struct{ path, code string }{
		{"payouts/777_po0001?payment=card", "payouts_not_tracked"},
		{"payouts/777_po0001", "payouts_not_tracked"},
		{"payouts/777_po0001?payment=nope", "bad_payment"},
		{"payouts/777%20po0001", "bad_payout_id"},
	} {
		if r := adminCall(t, http.MethodGet, tc.path, ""); r.status != 400 || r.errorCode(t) != tc.code {
			t.Errorf("GET %s: %d %s, want 400 %s", tc.path, r.status, r.body, tc.code)
		}
	}
	if r := adminCall(t, http.MethodDelete, "payouts/777_po0001", ""); r.status != 405 {
		t.Errorf("DELETE: %d %s", r.status, r.body)
	}
}

func TestAdminCashAndOperations(t *testing.T) {
	receiptsShop(t, "\t\t\tcashbox_id c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad\n")
	r := adminCall(t, http.MethodPost, "cash/deposit", `{"amount":"500.00","operation_id":"cash-in-1"}`)
	if r.status != 202 || r.json(t)["operation_id"] != "cash-in-1" {
		t.Fatalf("deposit: %d %s", r.status, r.body)
	}
	r = adminCall(t, http.MethodPost, "cash/withdraw", `{"amount":"200.00"}`)
	opID, _ := r.json(t)["operation_id"].(string)
	if r.status != 202 || !strings.HasPrefix(opID, "cash-") {
		t.Fatalf("withdraw: %d %s", r.status, r.body)
	}
	for _, id := range []string{"cash-in-1", opID} {
		if r := adminCall(t, http.MethodGet, "operations/"+id, ""); r.status != 200 || r.json(t)["state"] != "done" {
			t.Errorf("operation %s: %d %s", id, r.status, r.body)
		}
	}
	if r := adminCall(t, http.MethodGet, "operations/nope", ""); r.status != 404 {
		t.Errorf("unknown operation: %d", r.status)
	}
	if r := adminCall(t, http.MethodPost, "cash/deposit", `{"amount":"-5"}`); r.status != 400 {
		t.Errorf("negative cash: %d %s", r.status, r.body)
	}
	fault(t, "smartcashier", "*", "timeout", 4)
	if r := adminCall(t, http.MethodGet, "operations/cash-in-1", ""); r.status != 503 {
		t.Errorf("receipt service down: %d %s", r.status, r.body)
	}
}

// TestAdminWithoutApp: with no kassa app configured the admin API says so.
func TestAdminWithoutApp(t *testing.T) {
	caddytest.NewTester(t).InitServer(sandboxConfig, "caddyfile")
	forgetConnections()
	r := adminCall(t, http.MethodGet, "balance", "")
	if r.status != 503 || r.errorCode(t) != "no_kassa_app" {
		t.Errorf("%d %s", r.status, r.body)
	}
}

// TestAdminShopOrderLookup: the backend behind a proxied checkout finds
// its order by its own order id (X-Kassa-Order) once the buyer paid,
// through the admin API and through `caddy kassa orders --shop-order-id`.
func TestAdminShopOrderLookup(t *testing.T) {
	procBinary(t) // build first: the build must not eat the shop's time
	startShop(t)
	created := postJSON(t, "/proxied", `{}`)
	id, _ := created.json(t)["order_id"].(string)
	if created.status != http.StatusCreated || id == "" {
		t.Fatalf("checkout: %d %s", created.status, created.body)
	}
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": id}, nil)
	waitFor(t, "the order paid", func() bool { return orderStatus(t, id)["state"] == "paid" })

	r := adminCall(t, http.MethodGet, "orders?shop_order_id=shop-42", "")
	if v := r.json(t); r.status != http.StatusOK || v["id"] != id || v["shop_order_id"] != "shop-42" || v["state"] != "paid" || v["amount"] != "500" {
		t.Errorf("lookup: %d %s", r.status, r.body)
	}
	if r := adminCall(t, http.MethodGet, "orders?shop_order_id=shop-43", ""); r.status != http.StatusNotFound || r.errorCode(t) != "unknown_order" {
		t.Errorf("an unknown shop order id: %d %s", r.status, r.body)
	}
	if r := adminCall(t, http.MethodGet, "orders?shop_order_id=shop-42&state=paid", ""); r.status != http.StatusBadRequest || r.errorCode(t) != "bad_query" {
		t.Errorf("with state: %d %s", r.status, r.body)
	}

	cli := runKassaCLI(t, "orders", "--shop-order-id", "shop-42")
	for _, want := range []string{"id: +" + regexp.QuoteMeta(id), "state: +paid", "shop order id: +shop-42", "amount: +500.00"} {
		if cli.exit != 0 || !regexp.MustCompile("(?m)^"+want+"$").MatchString(cli.stdout) {
			t.Errorf("orders --shop-order-id: exit %d, no %q in\n%s%s", cli.exit, want, cli.stdout, cli.stderr)
			break
		}
	}
	if cli := runKassaCLI(t, "orders", "--shop-order-id", "shop-43"); cli.exit != 1 || !strings.Contains(cli.stderr, "kassa: unknown_order:") {
		t.Errorf("orders --shop-order-id shop-43: exit %d\n%s%s", cli.exit, cli.stdout, cli.stderr)
	}
}
