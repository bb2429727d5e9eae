package caddytest

// The fault matrix: every provider operation caddy-kassa calls, reached the
// way a buyer or an operator reaches it, under every fault a provider can
// throw at it, checked for the documented answer, no lost order, nothing
// done twice, and recovery once the provider is back. It runs the shop and
// the sandbox as processes with the proc helpers of crash_test.go, the
// shop's provider endpoints pointing at TCP forwarders in front of the
// sandbox that the test can close (a refused connection) and reopen on the
// same port (the provider is back). The observations are written to
// docs/RELIABILITY.md, and compared with it: run with -update to rewrite
// it. Every helper here is prefixed matrix or fault.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-kassa/kassa"
)

// The shop's provider timeout and the sandbox's slow reply: slow, but well
// within the timeout, so it must succeed.
const (
	matrixTimeout = "500ms"
	matrixSlow    = "200ms"
	// matrixTTL is the order_ttl of the shop whose orders expire in the
	// test.
	matrixTTL = "1s"
	// matrixCashbox is the sandbox's till.
	matrixCashbox = "c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad"
	// matrixDoc is the matrix's document, relative to this package.
	matrixDoc = "../docs/RELIABILITY.md"
	// matrixSalt is the CrystalPAY v3 salt (Secret 2) of the sandbox and
	// the shop: it signs payouts and callbacks.
	matrixSalt = "sandbox-salt"
)

// matrixV3Payout is the payout the operator makes from the CrystalPAY v3
// account: 10 rubles, to a wallet of the sandbox's ruble method.
var matrixV3Payout = map[string]any{"payment": "v3", "amount": "10", "to": "matrix-payee", "method": "LZTMARKET"}

// matrixFault is a column of the matrix: one way a provider fails.
type matrixFault struct {
	key   string // subtest name
	title string // column heading
	// mode is the sandbox's fault mode; "" closes the forwarder, so that
	// connections are refused.
	mode string
}

// matrixFaults are the columns, in the order the document shows them.
var matrixFaults = []matrixFault{
	{"refused", "connection refused", ""},
	{"timeout", "timeout", "timeout"},
	{"500", "HTTP 500", "error500"},
	{"html", "HTML error page", "html"},
	{"malformed", "malformed JSON", "malformed"},
	{"auth", "auth error", "auth"},
	{"slow", "slow reply", "latency"},
}

// slow reports whether the provider answers, only slowly: everything must
// work.
func (f matrixFault) slow() bool { return f.mode == "latency" }

// unavailable reports whether the fault is one docs/reference.md's Errors section
// calls unavailable (refused, timeout, 5xx, an HTML page from a proxy):
// worth trying again.
func (f matrixFault) unavailable() bool { return !f.slow() && !f.refusal() }

// refusal reports whether the provider answers, but with a refusal or
// nonsense (auth error, malformed reply): not worth trying again blindly.
func (f matrixFault) refusal() bool { return f.mode == "malformed" || f.mode == "auth" }

// want is the documented answer to the fault at a surface that reports
// provider failures: 503 provider_unavailable, or 502 provider_error.
func (f matrixFault) want() (int, string) {
	if f.refusal() {
		return http.StatusBadGateway, "provider_error"
	}
	return http.StatusServiceUnavailable, "provider_unavailable"
}

// matrixRow is a row of the matrix: a provider operation reached through
// one surface.
type matrixRow struct {
	key      string // subtest name
	provider string // section of the document
	op       string // the operation, as its API names it
	surface  string // who reaches it, and how
	detail   string // what the row does, for the document
	run      func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell
}

// matrixCell is what one run of a row under a fault observed.
type matrixCell struct {
	short     string // for the summary: the status, or the state shown
	seen      string // what the buyer or operator got
	outcome   string // what became of the order, payout or operation
	once      string // how it was checked that nothing was done twice
	recovered string // how it recovered once the fault cleared
	passed    bool
}

// matrixRows lists the rows, provider by provider.
func matrixRows() []matrixRow {
	return []matrixRow{
		{"crystalpayv3_me", "CrystalPAY (api v3)", "me/info", "operator: `GET /kassa/balance`",
			"The admin API reads the balance of every account; CrystalPAY `v3`'s is `me/info` (whose cash " +
				"register it is), then `balance/list`.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.balance(t, f, "crystalpay", "me/info", "v3", "card")
			}},
		{"crystalpayv3_balance", "CrystalPAY (api v3)", "balance/list", "operator: `GET /kassa/balance`",
			"The admin API reads the balance of every account; CrystalPAY `v3`'s is `me/info`, then " +
				"`balance/list`, which fails here.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.balance(t, f, "crystalpay", "balance/list", "v3", "card")
			}},
		{"crystalpayv3_create", "CrystalPAY (api v3)", "invoice/create", "buyer: checkout `POST /pay/v3`",
			"A JSON checkout with an `Idempotency-Key`. CrystalPAY has no idempotency key, so the shop never " +
				"sends `invoice/create` twice: after a failure the buyer retries with the same key, then starts a " +
				"new order; the new order is paid. An invoice whose reply was lost stays unpaid at CrystalPAY " +
				"until its `lifetime` (the shop's `order_ttl`) ends.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.checkout(t, f, "crystalpay", "invoice/create", "/pay/v3")
			}},
		{"crystalpayv3_info", "CrystalPAY (api v3)", "invoice/info", "buyer: status poll `GET /pay/v3?order=`; the reconciler",
			"A pending order is paid at the sandbox while `invoice/info` fails. The buyer polls its status; the " +
				"reconciler asks every pass (and the sandbox's callback cannot be checked: see the next row).",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.statusPoll(t, f, "crystalpay", "invoice/info", "/pay/v3")
			}},
		{"crystalpayv3_callback", "CrystalPAY (api v3)", "invoice/info", "CrystalPAY: callback `POST /kassa/callback/v3`",
			"A pending order is paid at the sandbox while `invoice/info` fails: the sandbox posts the invoice's " +
				"signed callback to kassa_callback, which reads the invoice back before it believes it. The " +
				"sandbox sends a callback not answered 200 again after 1s, 5s and 30s; the same callback, " +
				"signed by the test, is posted once more during the fault to read the answer.",
			(*matrixEnv).callback},
		{"crystalpayv3_payoff_create", "CrystalPAY (api v3)", "payoff/create", "operator: `POST /kassa/payouts`",
			"A payout of 10 rubles under an `Idempotency-Key`, made in two signed steps, `payoff/create` then " +
				"`payoff/submit`; only the submit pays. After a failure the operator sends it again under the " +
				"same key, which never creates it again, and then, if nothing was paid, under a new key.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.twoStepPayout(t, f, "payoff/create")
			}},
		{"crystalpayv3_payoff_submit", "CrystalPAY (api v3)", "payoff/submit", "operator: `POST /kassa/payouts`",
			"The same payout, whose `payoff/create` succeeds (except when connections are refused: the API is " +
				"down) and whose `payoff/submit` fails. A created payout's outcome is learnt by its id: the " +
				"operator's retry under the same key asks `payoff/info`, and submits it only if it is still " +
				"created. A refused submit cancels the payout, so that nobody submits it later.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.twoStepPayout(t, f, "payoff/submit")
			}},
		{"crystalpayv3_payoff_info", "CrystalPAY (api v3)", "payoff/info", "operator: `GET /kassa/payouts/{id}`",
			"The operator asks where a payout made earlier stands.",
			(*matrixEnv).payoutStatus},
		{"crystalpay_balance", "CrystalPAY (api v1)", "balance", "operator: `GET /kassa/balance`",
			"The admin API reads the balance of every account; CrystalPAY `main` answers `balance`.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.balance(t, f, "crystalpay", "balance", "main", "card")
			}},
		{"crystalpay_generate", "CrystalPAY (api v1)", "generate", "buyer: checkout `POST /pay/main`",
			"A JSON checkout with an `Idempotency-Key`. After a failure the buyer retries with the same key, " +
				"then starts a new order; the new order is paid.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.checkout(t, f, "crystalpay", "generate", "/pay/main")
			}},
		{"crystalpay_checkpay", "CrystalPAY (api v1)", "checkpay", "buyer: status poll `GET /pay/main?order=`; the reconciler",
			"A pending order is paid at the sandbox while `checkpay` fails. The buyer polls its status; the " +
				"reconciler asks every pass.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.statusPoll(t, f, "crystalpay", "checkpay", "/pay/main")
			}},
		{"crystalpay_withdraw", "CrystalPAY (api v1)", "withdraw", "operator: `POST /kassa/payouts`",
			"A payout of 10 rubles under an `Idempotency-Key`. After a failure the operator sends it again " +
				"under the same key; a refused payout is refused again, and one whose outcome is unknown is " +
				"never sent again (CrystalPAY cannot be asked), so the operator checks the provider (here, the " +
				"sandbox's state: no payout) and sends it under a new key.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.payout(t, f, "crystalpay", "withdraw", map[string]any{
					"payment": "main", "amount": "10", "to": "79990000000", "method": "qw"})
			}},
		{"pegas_deposit", "Pegas-kassa", "deposit", "buyer: checkout `POST /pay`; the reconciler",
			"A JSON checkout with an `Idempotency-Key`. After a failure the buyer retries with the same key " +
				"(and, for a failed order, starts a new one); the order is paid.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.checkout(t, f, "pegas", "deposit", "/pay")
			}},
		{"pegas_cancel", "Pegas-kassa", "deposit/cancel", "operator: `POST /kassa/orders/{id}/cancel`",
			"The operator cancels a pending order, and after a failure tries again.",
			(*matrixEnv).cancel},
		{"pegas_expiry", "Pegas-kassa", "deposit/cancel", "the reconciler, expiring an order",
			"A second shop, with `order_ttl " + matrixTTL + "`, lets an unpaid order expire: the reconciler " +
				"cancels its invoice.",
			(*matrixEnv).expiry},
		{"pegas_withdrawal", "Pegas-kassa", "withdrawal", "operator: `POST /kassa/payouts`",
			"A payout of 10.00 under an `Idempotency-Key`, sent with an `order_id` made from the key, which " +
				"Pegas-kassa refuses to repeat. After a failure the operator sends it again under the same key: " +
				"a refused payout is refused again; one whose outcome is unknown is sent again under its " +
				"`order_id`, which pays at most once.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.payout(t, f, "pegas", "withdrawal", map[string]any{
					"payment": "card", "amount": "10.00", "to": "4111111111111111", "method": "card",
					"comment": "Выплата поставщику"})
			}},
		{"pegas_document", "Pegas-kassa", "transaction/receipt/file", "buyer: `GET /receipt?order=&format=pdf`",
			"kassa_receipt streams the payment document of a paid order.",
			(*matrixEnv).document},
		{"pegas_probe", "Pegas-kassa", "transaction/receipt/file", "buyer: status poll `GET /pay?order=`; the reconciler",
			"Pegas-kassa has no status call: an order counts as paid when its receipt document can be " +
				"fetched. A pending order is paid at the sandbox while that probe fails. The buyer polls its " +
				"status; the reconciler probes every pass.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.statusPoll(t, f, "pegas", "transaction/receipt/file", "/pay")
			}},
		{"pegas_balance", "Pegas-kassa", "balance", "operator: `GET /kassa/balance`",
			"The admin API reads the balance of every account; Pegas-kassa `card` answers `balance`.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.balance(t, f, "pegas", "balance", "card", "main")
			}},
		{"smartcashier_receipt", "Smart Cashier", "formReceipt", "the reconciler; buyer: `GET /receipt?order=`",
			"An order is paid while `formReceipt` fails: the reconciler sends its sale receipt, and the buyer " +
				"reads the receipt through kassa_receipt.",
			(*matrixEnv).receipt},
		{"smartcashier_retry", "Smart Cashier", "formReceipt", "operator: `POST /kassa/orders/{id}/receipt`",
			"A receipt the till failed (`notprocessed`) is sent again by the operator while `formReceipt` fails.",
			(*matrixEnv).receiptRetry},
		{"smartcashier_deposit", "Smart Cashier", "depositCash", "operator: `POST /kassa/cash/deposit`",
			"Cash into the till, without an `operation_id`: the shop makes one and names it in its answer, " +
				"an error included. After a failure the operator sends it again under that id.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.cash(t, f, "deposit", "depositCash", "500.00")
			}},
		{"smartcashier_withdraw", "Smart Cashier", "withdrawCash", "operator: `POST /kassa/cash/withdraw`",
			"Cash out of the till, without an `operation_id`: the shop makes one and names it in its answer, " +
				"an error included. After a failure the operator sends it again under that id.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.cash(t, f, "withdraw", "withdrawCash", "100.00")
			}},
		{"smartcashier_operation", "Smart Cashier", "checkStatus", "operator: `GET /kassa/operations/{id}`",
			"The operator looks up a processed cash operation.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.operation(t, f, "http://"+e.shop.admin+"/kassa/operations/")
			}},
		{"smartcashier_issued", "Smart Cashier", "checkStatus", "trusted caller: `GET /receipt?operation=`",
			"kassa_receipt with `issue` reports a processed operation.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.operation(t, f, e.shop.url+"/receipt?operation=")
			}},
		{"smartcashier_status", "Smart Cashier", "checkStatus", "the reconciler; buyer: `GET /receipt?order=`",
			"An order is paid while `checkStatus` fails: its sale receipt is sent, and the reconciler follows " +
				"it until Smart Cashier reports it processed.",
			(*matrixEnv).receiptStatus},
	}
}

// TestFaultMatrix runs every row of the matrix under every fault, one cell
// after another on one sandbox and two shops (one whose orders expire
// quickly), checks that the shops logged no secret, and compares what it
// saw with docs/RELIABILITY.md (or, with -update, writes it there).
func TestFaultMatrix(t *testing.T) {
	start := time.Now()
	e := matrixStart(t)
	rows := matrixRows()
	cells := make([][]matrixCell, len(rows))
	for i, row := range rows {
		cells[i] = make([]matrixCell, len(matrixFaults))
		t.Run(row.key, func(t *testing.T) {
			for j, f := range matrixFaults {
				var cell matrixCell
				ok := t.Run(f.key, func(t *testing.T) {
					e.begin(t)
					cell = row.run(e, t, f)
					e.settle(t)
				})
				cell.passed = ok
				cells[i][j] = cell
			}
		})
	}
	e.checkNoSecretLogged(t)
	doc := matrixDocument(rows, cells)
	if *update {
		if err := os.WriteFile(matrixDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	} else if want, err := os.ReadFile(matrixDoc); err != nil || string(want) != doc {
		t.Errorf("%s is not what the matrix observed (%v); run go test -run TestFaultMatrix ./caddytest -update "+
			"to rewrite it, and review the change: %s", matrixDoc, err, matrixFirstDifference(string(want), doc))
	}
	t.Logf("%d cells in %v", len(rows)*len(matrixFaults), time.Since(start).Round(time.Second))
}

// balance reads the balances while op of api fails: the other account
// still answers, so the operator gets 200, with the error in place of the
// failing account's balance.
func (e *matrixEnv) balance(t *testing.T, f matrixFault, api, op, account, other string) matrixCell {
	e.inject(t, api, op, f)
	read := func() (int, map[string]matrixBalance) {
		status, body := e.admin(t, http.MethodGet, "/kassa/balance", nil)
		var out struct {
			Accounts map[string]matrixBalance `json:"accounts"`
		}
		if err := json.Unmarshal(body, &out); err != nil {
			t.Fatalf("balance: %d %s: %v", status, body, err)
		}
		return status, out.Accounts
	}
	status, got := read()
	cell := matrixCell{outcome: "—", once: "— (a read)", recovered: "✓"}
	if f.slow() {
		if status != http.StatusOK || got[account].Balance == "" {
			t.Errorf("a slow provider: balance %d %+v", status, got)
		}
		cell.seen, cell.short = "200, the balance", "200"
	} else {
		_, code := f.want()
		if status != http.StatusOK || got[account].Error.Code != code || got[account].Balance != "" || got[other].Balance == "" {
			t.Errorf("balance %d %+v, want 200 with %s's balance and error %q in place of %s's", status, got, other, code, account)
		}
		cell.seen = fmt.Sprintf("200; `%s` in place of `%s`'s balance", got[account].Error.Code, account)
		cell.short = "200*"
	}
	e.clear(t)
	if status, got = read(); status != http.StatusOK || got[account].Balance == "" {
		t.Errorf("after the fault: balance %d %+v", status, got)
	}
	return cell
}

// matrixBalance is an account in the balance reply.
type matrixBalance struct {
	Balance string `json:"balance"`
	Error   struct {
		Code string `json:"code"`
	} `json:"error"`
}

// checkout checks out at path (the account's provider api, op the call
// that creates the payment) with an Idempotency-Key while the call fails.
// The order is always recorded. CrystalPAY's is failed: it cannot be asked
// whether the link was made, so it is never made twice. Pegas's, after a
// network failure, stays creating until the reconciler re-sends the
// deposit under the same order_id; the buyer's retry with the same key
// then gets that order. A refusal fails the order; the buyer's retry with
// its key is told to start a new order (409 order_closed).
func (e *matrixEnv) checkout(t *testing.T, f matrixFault, api, op, path string) matrixCell {
	key := fmt.Sprintf("matrix-key-%06d", e.next())
	before := map[string]bool{}
	for _, id := range e.shop.orderIDs(t) {
		before[id] = true
	}
	invoicesBefore := e.crystalPayInvoices(t)
	e.inject(t, api, op, f)
	status, body := matrixCheckout(t, e.shop, path, key)
	var made []string
	for _, id := range e.shop.orderIDs(t) {
		if !before[id] {
			made = append(made, id)
		}
	}
	if len(made) != 1 {
		t.Fatalf("the checkout left %d new order records, want 1: %v", len(made), made)
	}
	id := made[0]
	var cell matrixCell
	cell.seen, cell.short = matrixExpect(t, f, status, body, http.StatusCreated)
	during := e.shop.record(t, id).State
	e.clear(t)

	paid := id
	switch {
	case f.slow():
		cell.outcome = "`pending` → `paid`"
	case api == "pegas" && f.unavailable():
		if during != kassa.OrderCreating {
			t.Errorf("after an unavailable deposit the order is %s, want creating", during)
		}
		// The buyer tries again with the same key: in progress until the
		// reconciler has recovered the order, then that order.
		var st procStatus
		procEventually(t, procRecoverWait, "the retried checkout gets the recovered order", func() (bool, string) {
			status, body := matrixCheckout(t, e.shop, path, key)
			if status == http.StatusConflict && matrixCode(body) == "order_in_progress" {
				return false, string(body)
			}
			if status != http.StatusCreated || json.Unmarshal(body, &st) != nil || st.OrderID != id {
				t.Fatalf("retrying the checkout: %d %s, want 409 order_in_progress or 201 with order %s", status, body, id)
			}
			return true, ""
		})
		cell.outcome = "`creating`; the reconciler re-sends the deposit under its `order_id` → `pending`; " +
			"the buyer's retry with the key gets it → `paid`"
	default:
		if during != kassa.OrderFailed {
			t.Errorf("after a failed %s the order is %s, want failed", op, during)
		}
		if status, body := matrixCheckout(t, e.shop, path, key); status != http.StatusConflict || matrixCode(body) != "order_closed" {
			t.Errorf("retrying a failed checkout with its key: %d %s, want 409 order_closed", status, body)
		}
		paid = e.buy(t, e.shop, path)
		cell.outcome = "`failed`; the retry with the key gets 409 `order_closed`; a new checkout → `paid`"
	}
	e.pay(t, e.shop, api, paid)
	e.waitDone(t, e.shop, paid)

	// One invoice per order: never a second for the same order.
	if api == "pegas" {
		for _, o := range []string{id, paid} {
			want := 1
			if o == id && id != paid {
				want = 0
			}
			if got := e.invoices(t, o); len(got) != want {
				t.Errorf("order %s has %d Pegas invoices, want %d", o, len(got), want)
			}
		}
		cell.once = "1 invoice per `order_id`"
	} else {
		if n := e.crystalPayInvoices(t) - invoicesBefore; n != 1 {
			t.Errorf("%d CrystalPAY invoices made in the cell, want 1 (the paid order's)", n)
		}
		if n := len(e.sb.calls(t, "crystalpay", op)); n > 2 {
			t.Errorf("%d %s calls for two checkouts: %s is never retried", n, op, op)
		}
		cell.once = "`" + op + "` never retried; 1 invoice, the paid one"
		if op == "invoice/create" {
			e.checkLifetime(t, e.shop, paid)
			cell.once += ", living as long as its order"
		}
	}
	cell.recovered = "✓"
	return cell
}

// matrixCheckout buys one tea at path on s as a JSON client with an
// Idempotency-Key.
func matrixCheckout(t *testing.T, s *procShop, path, key string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.url+path, strings.NewReader(`{"items":[{"sku":"tea","qty":1}],"email":"buyer@example.com"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := procHTTP.Do(req)
	if err != nil {
		t.Fatalf("checkout at %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// statusPoll pays a pending order while its status call (op on api)
// fails: the buyer's poll answers 200 with the order still pending, and
// the reconciler cannot learn it either, until the provider is back.
func (e *matrixEnv) statusPoll(t *testing.T, f matrixFault, api, op, path string) matrixCell {
	invoicesBefore := e.crystalPayInvoices(t)
	id := e.buy(t, e.shop, path)
	e.inject(t, api, op, f)
	e.pay(t, e.shop, api, id)
	var st procStatus
	if f.slow() {
		procEventually(t, procShortWait, "the poll sees the payment", func() (bool, string) {
			st, _ = e.shop.status(t, id)
			return st.State == "paid", st.State
		})
	} else {
		st, _ = e.shop.status(t, id)
		if st.State != "pending" {
			t.Errorf("the poll during the fault says %s, want pending", st.State)
		}
		if o := e.shop.record(t, id); o.State != kassa.OrderPending {
			t.Errorf("the order is stored %s during the fault, want pending", o.State)
		}
	}
	cell := matrixCell{seen: "200 `" + st.State + "`", short: "200 `" + st.State + "`"}
	e.clear(t)
	e.waitDone(t, e.shop, id)
	cell.outcome = "`pending` until the provider answers → `paid`"
	if f.slow() {
		cell.outcome = "`paid`"
	}
	if api == "pegas" {
		if got := e.invoices(t, id); len(got) != 1 || got[0] != "paid" {
			t.Errorf("the order's Pegas invoices: %v, want one, paid", got)
		}
	} else if n := e.crystalPayInvoices(t) - invoicesBefore; n != 1 {
		t.Errorf("%d CrystalPAY invoices made in the cell, want 1 (the order's)", n)
	}
	cell.once = "1 invoice; " + e.checkOneReceipt(t, id)
	cell.recovered = "✓"
	return cell
}

// payout sends a payout under an Idempotency-Key while its call (op on
// api) fails. It is sent once and never retried: the operator gets the
// documented error (an outcome unknown, or a refusal), the sandbox shows
// that no payout was made, and the operator sends it again under the same
// key: a refusal is answered again, an unknown Pegas-kassa payout is sent
// again under its order id, an unknown CrystalPAY payout is not, and the
// operator, having checked, sends it under a new key.
func (e *matrixEnv) payout(t *testing.T, f matrixFault, api, op string, req map[string]any) matrixCell {
	count := func() int {
		st := e.state(t)
		if api == "pegas" {
			return len(st.Pegas.Withdrawals)
		}
		return len(st.CrystalPay.Withdrawals)
	}
	post := func(key string) (int, []byte) {
		t.Helper()
		return e.postPayout(t, req, key)
	}
	before := count()
	key := fmt.Sprintf("matrix-payout-%d", e.next())
	e.inject(t, api, op, f)
	status, body := post(key)
	var cell matrixCell
	if f.slow() {
		cell.seen, cell.short = matrixExpect(t, f, status, body, http.StatusOK)
	} else {
		// Only a refusal proves that nothing was paid.
		wantStatus, wantCode := f.want()
		if f.mode != "auth" {
			wantCode = "payout_outcome_unknown"
		}
		if code := matrixCode(body); status != wantStatus || code != wantCode {
			t.Errorf("status %d %q, want %d %q: %s", status, code, wantStatus, wantCode, body)
		}
		cell.seen, cell.short = fmt.Sprintf("%d `%s`", status, matrixCode(body)), fmt.Sprint(status)
	}
	if n := len(e.sb.calls(t, api, op)); n > 1 {
		t.Errorf("the payout was sent %d times: a payout is never retried", n)
	}
	made := count() - before
	e.clear(t)
	cell.outcome = "paid out"
	if !f.slow() {
		if made != 0 {
			t.Errorf("%d payouts made by a failed call; the sandbox makes none under a fault", made)
		}
		// The operator sends it again under the same key.
		status, body = post(key)
		switch code := matrixCode(body); {
		case f.mode == "auth":
			if status != http.StatusBadGateway || code != "provider_error" {
				t.Errorf("a refused payout sent again: %d %s, want the refusal again", status, body)
			}
			if status, body := post(key + "-new"); status != http.StatusOK {
				t.Errorf("the payout under a new key: %d %s", status, body)
			}
			cell.outcome = "`failed`; the same key answers the refusal again; a new key → paid out"
		case api == "pegas":
			if status != http.StatusOK {
				t.Errorf("an unknown Pegas-kassa payout sent again under its order id: %d %s, want it paid out", status, body)
			}
			cell.outcome = "`unknown`; the same key sends it again under its `order_id` → paid out"
		default:
			if status != http.StatusConflict || code != "payout_outcome_unknown" {
				t.Errorf("an unknown CrystalPAY payout sent again: %d %s, want 409 payout_outcome_unknown", status, body)
			}
			// The operator checks the dashboard: no payout; sends it anew.
			if status, body := post(key + "-new"); status != http.StatusOK {
				t.Errorf("the payout under a new key: %d %s", status, body)
			}
			cell.outcome = "`unknown`; the same key: 409, never sent again; the operator checks, a new key → paid out"
		}
	}
	if made = count() - before; made != 1 {
		t.Errorf("%d payouts made, want 1", made)
	}
	cell.once = "1 payout; sent at most once per key"
	if api == "pegas" {
		cell.once += ", under one `order_id`"
	}
	cell.recovered = "✓"
	return cell
}

// twoStepPayout sends a CrystalPAY v3 payout under an Idempotency-Key
// while op, one of its two steps, fails; the operator then sends it again
// under the same key and, when nothing was paid, under a new one. Under
// one key the payout is created at most once and submitted at most once.
// Not created, or created without a usable reply (its id unknown), it is
// 502 payout_not_made: nothing was paid, and the key never creates it
// again. Created and not known to be submitted, it is 503
// payout_outcome_pending: the retry asks payoff/info by its id and
// submits it only if it is still created. Refused, it is 502
// provider_error, and a refused submit cancels the created payout.
func (e *matrixEnv) twoStepPayout(t *testing.T, f matrixFault, op string) matrixCell {
	key := fmt.Sprintf("matrix-payout-%d", e.next())
	before := len(e.state(t).CrystalPay.Payoffs)
	// sent counts the calls of each step in the cell, and those the API
	// took (no fault answered them).
	sent := func() (creates, submits, acceptedCreates, acceptedSubmits int) {
		return len(e.sb.calls(t, "crystalpay", "payoff/create")), len(e.sb.calls(t, "crystalpay", "payoff/submit")),
			e.accepted(t, "crystalpay", "payoff/create", ""), e.accepted(t, "crystalpay", "payoff/submit", "")
	}
	e.inject(t, "crystalpay", op, f)
	status, body := e.postPayout(t, matrixV3Payout, key)
	wantStatus, wantCode := http.StatusOK, ""
	switch {
	case f.slow():
	case f.mode == "auth":
		wantStatus, wantCode = http.StatusBadGateway, "provider_error"
	case op == "payoff/create" || f.mode == "":
		// Connections refused: payoff/create cannot be sent either.
		wantStatus, wantCode = http.StatusBadGateway, "payout_not_made"
	default:
		wantStatus, wantCode = http.StatusServiceUnavailable, "payout_outcome_pending"
	}
	code := matrixCode(body)
	if status != wantStatus || code != wantCode {
		t.Errorf("status %d %q, want %d %q: %s", status, code, wantStatus, wantCode, body)
	}
	matrixNoSecret(t, body)
	cell := matrixCell{seen: fmt.Sprintf("%d `%s`", status, code), short: fmt.Sprint(status)}
	if f.slow() {
		cell.seen = "200, `sent`"
	}
	creates, submits, _, _ := sent()
	if creates > 1 || submits > 1 {
		t.Errorf("the payout sent payoff/create %d times and payoff/submit %d times, want each at most once", creates, submits)
	}
	e.clear(t)

	// The operator sends it again under the same key.
	status, body = e.postPayout(t, matrixV3Payout, key)
	matrixNoSecret(t, body)
	againCreates, againSubmits, acceptedCreates, acceptedSubmits := sent()
	if againCreates != creates {
		t.Errorf("the payout sent again under its key sent payoff/create again")
	}
	if acceptedCreates > 1 || acceptedSubmits > 1 {
		t.Errorf("under one key CrystalPAY took payoff/create %d times and payoff/submit %d times, want at most once each", acceptedCreates, acceptedSubmits)
	}
	switch wantCode {
	case "payout_outcome_pending":
		if status != http.StatusOK || len(e.sb.calls(t, "crystalpay", "payoff/info")) == 0 {
			t.Errorf("a pending payout sent again under its key: %d %s, want it asked about and paid out", status, body)
		}
		cell.outcome = "`created`; the same key asks `payoff/info` (still `created`) and submits it → paid out"
	default:
		if code := matrixCode(body); status != wantStatus || code != wantCode || againSubmits != submits {
			t.Errorf("the payout sent again under its key: %d %s (payoff/submit sent %d more times), want the first answer again, nothing sent",
				status, body, againSubmits-submits)
		}
		switch {
		case f.slow():
			cell.outcome = "paid out; the same key answers it again"
		case wantCode == "payout_not_made":
			cell.outcome = "nothing created; the same key answers `payout_not_made` again, never creating it; a new key → paid out"
		case op == "payoff/create":
			cell.outcome = "refused; the same key answers the refusal again; a new key → paid out"
		default:
			cell.outcome = "refused, the created payout cancelled; the same key answers the refusal again; a new key → paid out"
		}
		if !f.slow() {
			if status, body := e.postPayout(t, matrixV3Payout, key+"-new"); status != http.StatusOK {
				t.Errorf("the payout under a new key: %d %s", status, body)
			}
		}
	}

	// One payout paid; every other one cancelled, none left created.
	paid := 0
	var states []string
	for _, p := range e.state(t).CrystalPay.Payoffs[before:] {
		states = append(states, p.State)
		switch p.State {
		case "processing", "payed":
			paid++
		case "canceled":
		default:
			t.Errorf("payout %s is %s, want it paid or cancelled", p.ID, p.State)
		}
	}
	if paid != 1 {
		t.Errorf("the sandbox's payouts of the cell are %v, want one paid", states)
	}
	cell.once = "1 payout paid; per key at most 1 `payoff/create` and 1 `payoff/submit` taken, `payoff/create` sent at most once"
	cell.recovered = "✓"
	return cell
}

// payoutStatus asks where a CrystalPAY v3 payout stands while payoff/info
// fails.
func (e *matrixEnv) payoutStatus(t *testing.T, f matrixFault) matrixCell {
	path := "/kassa/payouts/" + e.knownPayout
	e.inject(t, "crystalpay", "payoff/info", f)
	status, body := e.admin(t, http.MethodGet, path, nil)
	var cell matrixCell
	cell.seen, cell.short = matrixExpect(t, f, status, body, http.StatusOK)
	e.clear(t)
	var v struct {
		State string `json:"state"`
	}
	procCall(t, http.MethodGet, "http://"+e.shop.admin+path, nil, http.StatusOK, &v)
	if v.State != string(kassa.PayoutProcessing) && v.State != string(kassa.PayoutPaid) {
		t.Errorf("after the fault: payout %s is %q, want processing or paid", e.knownPayout, v.State)
	}
	cell.outcome, cell.once, cell.recovered = "—", "— (a read)", "✓"
	return cell
}

// callback pays a CrystalPAY v3 order while invoice/info fails. A
// callback only says where to look, and CrystalPAY cannot be asked:
// kassa_callback answers 503, the order stays pending and the sandbox
// sends the callback again. Once CrystalPAY is back, its next delivery or
// the reconciler records the order paid, once, and a delivery is answered
// 200.
func (e *matrixEnv) callback(t *testing.T, f matrixFault) matrixCell {
	invoicesBefore := e.crystalPayInvoices(t)
	id := e.buy(t, e.shop, "/pay/v3")
	invoice := e.shop.record(t, id).Payment.ID
	e.inject(t, "crystalpay", "invoice/info", f)
	e.pay(t, e.shop, "crystalpay", id)
	first := http.StatusServiceUnavailable
	if f.slow() {
		first = http.StatusOK
	}
	procEventually(t, procShortWait, "the sandbox's callback answered", func() (bool, string) {
		got := e.deliveries(t, invoice)
		return slices.Contains(got, first), fmt.Sprintf("deliveries answered %v", got)
	})

	// The callback once more, as the provider signs it: sha1(id:salt).
	signature := v3Sign(invoice, matrixSalt)
	status, body := matrixDo(t, http.MethodPost, e.shop.url+"/kassa/callback/v3",
		map[string]any{"id": invoice, "state": "payed", "extra": id, "signature": signature})
	matrixNoSecret(t, body, signature)
	var cell matrixCell
	if f.slow() {
		if status != http.StatusOK || string(body) != "OK" {
			t.Errorf("a slow provider: the callback answered %d %q, want 200 OK", status, body)
		}
		cell.seen, cell.short = "200 `OK`", "200"
		cell.outcome = "`paid`"
	} else {
		if code := matrixCode(body); status != http.StatusServiceUnavailable || code != "provider_unavailable" {
			t.Errorf("the callback answered %d %q, want 503 provider_unavailable: %s", status, code, body)
		}
		if o := e.shop.record(t, id); o.State != kassa.OrderPending {
			t.Errorf("the order is stored %s while CrystalPAY cannot be asked, want pending", o.State)
		}
		cell.seen, cell.short = "503 `provider_unavailable`; the sandbox sends it again", "503"
		cell.outcome = "`pending`; once CrystalPAY answers, the sandbox's next delivery or the reconciler → `paid`, " +
			"and the delivery is answered 200"
	}
	e.clear(t)
	e.waitDone(t, e.shop, id)
	procEventually(t, procRecoverWait, "a delivery of the callback answered 200", func() (bool, string) {
		got := e.deliveries(t, invoice)
		return slices.Contains(got, http.StatusOK), fmt.Sprintf("deliveries answered %v", got)
	})
	if n := e.crystalPayInvoices(t) - invoicesBefore; n != 1 {
		t.Errorf("%d CrystalPAY invoices made in the cell, want 1 (the order's)", n)
	}
	cell.once = "1 invoice, paid once; " + e.checkOneReceipt(t, id)
	cell.recovered = "✓"
	return cell
}

// matrixNoSecret checks that an answer of the shop holds none of the
// CrystalPAY v3 secrets (the auth secret, the salt) nor any of the
// signatures given.
func matrixNoSecret(t *testing.T, body []byte, signatures ...string) {
	t.Helper()
	for _, secret := range append([]string{"sandbox-secret", matrixSalt}, signatures...) {
		if bytes.Contains(body, []byte(secret)) {
			t.Errorf("the answer holds a secret: %s", body)
		}
	}
}

// cancel has the operator cancel a pending Pegas order while
// deposit/cancel fails: the order stays pending, and the second try
// cancels it.
func (e *matrixEnv) cancel(t *testing.T, f matrixFault) matrixCell {
	id := e.buy(t, e.shop, "/pay")
	e.inject(t, "pegas", "deposit/cancel", f)
	status, body := e.admin(t, http.MethodPost, "/kassa/orders/"+id+"/cancel", nil)
	var cell matrixCell
	cell.seen, cell.short = matrixExpect(t, f, status, body, http.StatusOK)
	during := e.shop.record(t, id).State
	e.clear(t)
	cell.outcome = "`cancelled`"
	if !f.slow() {
		if during != kassa.OrderPending {
			t.Errorf("after a failed cancel the order is %s, want pending", during)
		}
		procCall(t, http.MethodPost, "http://"+e.shop.admin+"/kassa/orders/"+id+"/cancel", nil, http.StatusOK, nil)
		cell.outcome = "`pending`; the operator's second try → `cancelled`"
	}
	if o := e.shop.record(t, id); o.State != kassa.OrderCancelled {
		t.Errorf("the order is %s, want cancelled", o.State)
	}
	if got := e.invoices(t, id); len(got) != 1 || got[0] != "cancelled" {
		t.Errorf("the order's Pegas invoices: %v, want one, cancelled", got)
	}
	cell.once, cell.recovered = "1 invoice, cancelled", "✓"
	return cell
}

// expiry lets an order of the short shop expire while deposit/cancel
// fails. Whatever the failure, the invoice may still be paid, so the order
// stays pending, its payment watched, and the cancel is tried each pass.
func (e *matrixEnv) expiry(t *testing.T, f matrixFault) matrixCell {
	id := e.buy(t, e.short, "/pay")
	e.inject(t, "pegas", "deposit/cancel", f)
	var cell matrixCell
	switch {
	case f.slow():
		e.short.waitRecord(t, id, kassa.OrderExpired, procShortWait)
		cell.seen, cell.short = "`expired`", "`expired`"
		cell.outcome = "`expired`, its invoice cancelled"
	default:
		// The invoice may still be paid while Pegas does not take the
		// cancel: the order stays pending, its payment watched.
		if f.mode == "" {
			// Nothing reaches Pegas, not even the paid probe, which comes
			// first: give the reconciler a few passes past the order's
			// ttl.
			expires := e.short.record(t, id).ExpiresAt
			time.Sleep(time.Until(expires) + time.Second)
		} else {
			procEventually(t, procShortWait, "the reconciler tries to cancel the expired order", func() (bool, string) {
				calls := e.sb.calls(t, "pegas", "deposit/cancel")
				return len(calls) > 0, "no deposit/cancel call"
			})
		}
		o := e.short.record(t, id)
		if o.State != kassa.OrderPending {
			t.Errorf("an order whose cancel failed is %s, want pending", o.State)
		}
		cell.seen, cell.short = "`pending`, past its ttl", "`pending`"
		e.clear(t)
		e.short.waitRecord(t, id, kassa.OrderExpired, procShortWait)
		cell.outcome = "`pending` until Pegas takes the cancel → `expired`, its invoice cancelled"
	}
	if got := e.invoices(t, id); len(got) != 1 || got[0] != "cancelled" {
		t.Errorf("the order's Pegas invoices: %v, want one, cancelled", got)
	}
	cell.once, cell.recovered = "1 invoice per order", "✓"
	return cell
}

// document streams a paid Pegas order's payment document while the call
// fails.
func (e *matrixEnv) document(t *testing.T, f matrixFault) matrixCell {
	// kassa_receipt keeps a document once it has fetched it: each cell
	// asks for a new paid order's, which meets the fault.
	id := e.buy(t, e.shop, "/pay")
	e.pay(t, e.shop, "pegas", id)
	e.waitDone(t, e.shop, id)
	url := e.shop.url + "/receipt?order=" + id + "&format=pdf"
	e.inject(t, "pegas", "transaction/receipt/file", f)
	status, body := matrixDo(t, http.MethodGet, url, nil)
	var cell matrixCell
	cell.seen, cell.short = matrixExpect(t, f, status, body, http.StatusOK)
	if f.slow() && !bytes.HasPrefix(body, []byte("%PDF")) {
		t.Errorf("a slow provider: the document is not a PDF: %.40q", body)
	}
	e.clear(t)
	if status, body := matrixDo(t, http.MethodGet, url, nil); status != http.StatusOK || !bytes.HasPrefix(body, []byte("%PDF")) {
		t.Errorf("after the fault: %d %.40q, want the PDF", status, body)
	}
	if o := e.shop.record(t, id); o.State != kassa.OrderPaid {
		t.Errorf("the order is %s, want paid", o.State)
	}
	cell.outcome, cell.once, cell.recovered = "`paid`, unchanged", "— (a read)", "✓"
	return cell
}

// matrixReceipt is kassa_receipt's JSON for an order.
type matrixReceipt struct {
	State string `json:"state"`
}

// receiptSeen is an order's receipt as its buyer sees it.
func (e *matrixEnv) receiptSeen(t *testing.T, id string) string {
	t.Helper()
	var v matrixReceipt
	procCall(t, http.MethodGet, e.shop.url+"/receipt?order="+id, nil, http.StatusOK, &v)
	return v.State
}

// receipt pays an order while formReceipt fails. A send whose outcome is
// unknown (a network failure, a malformed reply) leaves the receipt
// sending, sent again each pass under its operation id; an auth error of
// an operation Smart Cashier does not know fails it, and the operator's
// retry issues it under a new operation id.
func (e *matrixEnv) receipt(t *testing.T, f matrixFault) matrixCell {
	id := e.buy(t, e.shop, "/pay")
	e.inject(t, "smartcashier", "formReceipt", f)
	clusterPay(t, e.sb, id)
	var cell matrixCell
	if !f.slow() {
		want := kassa.ReceiptSending
		if f.mode == "auth" {
			want = kassa.ReceiptFailed
		}
		procEventually(t, procShortWait, "the receipt attempted", func() (bool, string) {
			o := e.shop.record(t, id)
			if o.Receipt == nil {
				return false, string(o.State)
			}
			return o.State == kassa.OrderPaid && o.Receipt.State == want && o.Receipt.Attempts > 0,
				fmt.Sprintf("%s, receipt %s after %d attempts", o.State, o.Receipt.State, o.Receipt.Attempts)
		})
	}
	seen := e.receiptSeen(t, id)
	e.clear(t)
	switch {
	case f.slow():
		cell.outcome = "`paid`, receipt `done`"
	case f.mode == "auth":
		e.retryReceipt(t, "/kassa/orders/"+id+"/receipt")
		cell.outcome = "`paid`, receipt `failed`; the operator's retry, once no send of it can still land → `done`"
	default:
		cell.outcome = "`paid`, receipt sent again each pass → `done`"
	}
	e.waitDone(t, e.shop, id)
	if f.slow() {
		seen = e.receiptSeen(t, id)
	}
	cell.seen, cell.short = "receipt `"+seen+"`", "`"+seen+"`"
	cell.once, cell.recovered = e.checkOneReceipt(t, id), "✓"
	return cell
}

// retryReceipt is the operator retrying a receipt whose send was refused:
// answered 409 receipt_in_progress while another send of it could still
// land, then done.
func (e *matrixEnv) retryReceipt(t *testing.T, path string) {
	t.Helper()
	procEventually(t, procRecoverWait, "the operator's retry of a refused receipt", func() (bool, string) {
		status, body := e.admin(t, http.MethodPost, path, nil)
		if status == http.StatusConflict && matrixCode(body) == "receipt_in_progress" {
			return false, string(body)
		}
		if status != http.StatusOK {
			t.Fatalf("POST %s: %d %s", path, status, body)
		}
		return true, ""
	})
}

// receiptRetry has the operator retry a receipt the till failed while
// formReceipt fails: the documented error; the retry is a new attempt under
// a new operation id (Smart Cashier answers a repeated one with its first
// result), and the receipt recovers.
func (e *matrixEnv) receiptRetry(t *testing.T, f matrixFault) matrixCell {
	id := e.buy(t, e.shop, "/pay")
	// The till fails the first receipt: the operator's retry is due.
	e.sb.fault(t, map[string]any{"api": "smartcashier", "op": "formReceipt", "mode": "notprocessed", "count": 1})
	clusterPay(t, e.sb, id)
	procEventually(t, procShortWait, "the receipt failed at the till", func() (bool, string) {
		o := e.shop.record(t, id)
		return o.Receipt != nil && o.Receipt.State == kassa.ReceiptFailed, fmt.Sprintf("%+v", o.Receipt)
	})

	e.inject(t, "smartcashier", "formReceipt", f)
	retry := "/kassa/orders/" + id + "/receipt"
	status, body := e.admin(t, http.MethodPost, retry, nil)
	var cell matrixCell
	cell.seen, cell.short = matrixExpect(t, f, status, body, http.StatusOK)
	e.clear(t)
	switch {
	case f.slow():
		cell.outcome = "`paid`, receipt `done`"
	case f.mode == "auth":
		e.retryReceipt(t, retry)
		cell.outcome = "`paid`, receipt `failed`; the operator's next retry, once no send of it can still land → `done`"
	default:
		cell.outcome = "`paid`, receipt sent again by the reconciler → `done`"
	}
	e.waitDone(t, e.shop, id)
	cell.once, cell.recovered = e.checkOneReceipt(t, id), "✓"
	return cell
}

// cash records cash into or out of the till (Smart Cashier op) while the
// call fails, leaving the operation id to the shop: the answer names it,
// an error included, and the operator sends the operation again under it.
func (e *matrixEnv) cash(t *testing.T, f matrixFault, direction, op, amount string) matrixCell {
	url := "http://" + e.shop.admin + "/kassa/cash/" + direction
	req := map[string]any{"amount": amount, "cashbox_id": matrixCashbox}
	e.inject(t, "smartcashier", op, f)
	status, body := matrixDo(t, http.MethodPost, url, req)
	var cell matrixCell
	cell.seen, cell.short = matrixExpect(t, f, status, body, http.StatusAccepted)
	var reply struct {
		OperationID string `json:"operation_id"`
		Error       struct {
			OperationID string `json:"operation_id"`
		} `json:"error"`
	}
	json.Unmarshal(body, &reply)
	opID := reply.OperationID
	if !f.slow() {
		opID = reply.Error.OperationID
		cell.seen += ", naming the `operation_id`"
	}
	if opID == "" {
		t.Fatalf("the answer names no operation id to send it again under: %s", body)
	}
	made := len(e.operations(t, opID))
	e.clear(t)
	cell.outcome = "recorded"
	if !f.slow() {
		if made != 0 {
			t.Errorf("%d operations made by a failed call; the sandbox makes none under a fault", made)
		}
		req["operation_id"] = opID
		procCall(t, http.MethodPost, url, req, http.StatusAccepted, nil)
		cell.outcome = "not recorded; the operator sends it again under that `operation_id` → recorded"
	}
	var v matrixReceipt
	procCall(t, http.MethodGet, "http://"+e.shop.admin+"/kassa/operations/"+opID, nil, http.StatusOK, &v)
	if ops := e.operations(t, opID); len(ops) != 1 || ops[0].Attempts != 1 || v.State != "done" {
		t.Errorf("operation %s: %+v, state %s; want one, queued once, done", opID, ops, v.State)
	}
	cell.once, cell.recovered = "1 operation, under one `operation_id`", "✓"
	return cell
}

// operation asks about a processed operation at url+id while checkStatus
// fails.
func (e *matrixEnv) operation(t *testing.T, f matrixFault, url string) matrixCell {
	url += e.knownOperation
	e.inject(t, "smartcashier", "checkStatus", f)
	status, body := matrixDo(t, http.MethodGet, url, nil)
	var cell matrixCell
	cell.seen, cell.short = matrixExpect(t, f, status, body, http.StatusOK)
	e.clear(t)
	var v matrixReceipt
	procCall(t, http.MethodGet, url, nil, http.StatusOK, &v)
	if v.State != "done" {
		t.Errorf("after the fault: operation %s is %q, want done", e.knownOperation, v.State)
	}
	cell.outcome, cell.once, cell.recovered = "—", "— (a read)", "✓"
	return cell
}

// receiptStatus pays an order while checkStatus fails: the receipt is sent
// but cannot be followed, and stays queued until Smart Cashier answers.
func (e *matrixEnv) receiptStatus(t *testing.T, f matrixFault) matrixCell {
	id := e.buy(t, e.shop, "/pay")
	opID := clusterSaleOperationID(id)
	e.inject(t, "smartcashier", "checkStatus", f)
	clusterPay(t, e.sb, id)
	var cell matrixCell
	if !f.slow() {
		procEventually(t, procShortWait, "the receipt sent, or tried", func() (bool, string) {
			o := e.shop.record(t, id)
			if o.Receipt == nil || o.Receipt.Attempts == 0 {
				return false, string(o.State)
			}
			// Connections refused: formReceipt cannot be sent either.
			return f.mode == "" || o.Receipt.State == kassa.ReceiptQueued, string(o.Receipt.State)
		})
		if f.mode != "" {
			procEventually(t, procShortWait, "the reconciler asks for the receipt's status", func() (bool, string) {
				for _, c := range e.sb.calls(t, "smartcashier", "checkStatus") {
					if c.Query["operationId"] == opID {
						return true, ""
					}
				}
				return false, "no checkStatus call"
			})
		}
		if o := e.shop.record(t, id); o.Receipt.State == kassa.ReceiptDone || o.Receipt.State == kassa.ReceiptFailed {
			t.Errorf("the receipt is %s while Smart Cashier cannot be asked", o.Receipt.State)
		}
	}
	seen := e.receiptSeen(t, id)
	e.clear(t)
	e.waitDone(t, e.shop, id)
	if f.slow() {
		seen = e.receiptSeen(t, id)
	}
	cell.seen, cell.short = "receipt `"+seen+"`", "`"+seen+"`"
	cell.outcome = "`paid`, receipt `queued` until Smart Cashier answers → `done`"
	if f.slow() {
		cell.outcome = "`paid`, receipt `done`"
	}
	cell.once, cell.recovered = e.checkOneReceipt(t, id), "✓"
	return cell
}
