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
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
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
)

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

// unavailable reports whether the fault is one the README's Errors section
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
		{"crystalpay_balance", "CrystalPAY", "balance", "operator: `GET /kassa/balance`",
			"The admin API reads the balance of both accounts, CrystalPAY `main` and Pegas-kassa `card`.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.balance(t, f, "crystalpay", "main", "card")
			}},
		{"crystalpay_generate", "CrystalPAY", "generate", "buyer: checkout `POST /pay/main`",
			"A JSON checkout with an `Idempotency-Key`. After a failure the buyer retries with the same key, " +
				"then starts a new order; the new order is paid.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.checkout(t, f, "crystalpay", "generate", "/pay/main")
			}},
		{"crystalpay_checkpay", "CrystalPAY", "checkpay", "buyer: status poll `GET /pay/main?order=`; the reconciler",
			"A pending order is paid at the sandbox while `checkpay` fails. The buyer polls its status; the " +
				"reconciler asks every pass.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.statusPoll(t, f, "crystalpay", "checkpay", "/pay/main")
			}},
		{"crystalpay_withdraw", "CrystalPAY", "withdraw", "operator: `POST /kassa/payouts`",
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
			"The admin API reads the balance of both accounts, CrystalPAY `main` and Pegas-kassa `card`.",
			func(e *matrixEnv, t *testing.T, f matrixFault) matrixCell {
				return e.balance(t, f, "pegas", "card", "main")
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
// quickly), and compares what it saw with docs/RELIABILITY.md (or, with
// -update, writes it there).
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

// matrixEnv is what the cells share: the sandbox, the forwarders in front
// of it, and the shops.
type matrixEnv struct {
	sb *procSandbox
	// fwd is the forwarder of each API, by its sandbox name.
	fwd map[string]*faultForwarder
	// shop is the shop of every row; short's orders expire after
	// matrixTTL, for the reconciler's expiry.
	shop, short *procShop
	// paidPegas is a paid Pegas order with its receipt done.
	paidPegas string
	// knownOperation is a processed Smart Cashier operation.
	knownOperation string
	// seq numbers the keys and ids the cells make.
	seq int
}

// matrixStart runs the sandbox, a forwarder per API and the two shops, and
// funds the accounts for payouts and the till for cash withdrawals.
func matrixStart(t *testing.T) *matrixEnv {
	t.Helper()
	dir := t.TempDir()
	e := &matrixEnv{sb: procStartSandbox(t, dir), fwd: map[string]*faultForwarder{}}
	target := strings.TrimPrefix(e.sb.url, "http://")
	for _, api := range []string{"crystalpay", "pegas", "smartcashier"} {
		e.fwd[api] = faultNewForwarder(t, target)
	}
	e.shop = e.newShop(t, dir, "matrix", "")
	e.short = e.newShop(t, dir, "matrix-short", "\t\torder_ttl "+matrixTTL)
	e.shop.start(t)
	e.short.start(t)

	e.begin(t)
	for _, acc := range []struct{ api, path string }{{"crystalpay", "/pay/main"}, {"pegas", "/pay"}} {
		id := e.buy(t, e.shop, acc.path)
		e.pay(t, e.shop, acc.api, id)
		e.waitDone(t, e.shop, id)
		if acc.api == "pegas" {
			e.paidPegas = id
		}
	}
	e.knownOperation = "matrix-setup-cash"
	procCall(t, http.MethodPost, "http://"+e.shop.admin+"/kassa/cash/deposit", map[string]any{
		"amount": "5000.00", "cashbox_id": matrixCashbox, "operation_id": e.knownOperation}, http.StatusAccepted, nil)
	e.settle(t)
	return e
}

// newShop prepares a shop named name whose CrystalPAY account "main" (at
// /pay/main, with secret2 for payouts), Pegas account "card" (at /pay) and
// Smart Cashier receipts (one retry) reach the sandbox through the
// forwarders, with kassa_receipt (with issue) at /receipt, a provider
// timeout of matrixTimeout and extra in its kassa block.
func (e *matrixEnv) newShop(t *testing.T, dir, name, extra string) *procShop {
	t.Helper()
	front := &procSandbox{procCaddy: e.sb.procCaddy, url: e.fwd["pegas"].url()}
	receipts := matrixEdit(t, clusterReceipts(&procSandbox{url: e.fwd["smartcashier"].url()}),
		"taxation usn_income", "taxation usn_income\n\t\t\tretries 1", 1)
	s := procShopWith(t, dir, filepath.Join(dir, name+"-storage"), name, front, receipts+"\n"+extra)
	s.config = matrixEdit(t, s.config, front.url+"/crystalpay/", e.fwd["crystalpay"].url()+"/crystalpay/", 1)
	s.config = matrixEdit(t, s.config, "timeout 1s", "timeout "+matrixTimeout, 3)
	s.config = matrixEdit(t, s.config, "\t\t\tsecret sandbox-secret\n", "\t\t\tsecret sandbox-secret\n\t\t\tsecret2 sandbox-secret2\n", 1)
	s.config = matrixEdit(t, s.config, "\troute /pay {\n", "\troute /receipt {\n\t\tkassa_receipt {\n\t\t\tissue\n\t\t}\n\t}\n\troute /pay {\n", 1)
	return s
}

// matrixEdit replaces old, which must occur n times in config, with new.
func matrixEdit(t *testing.T, config, old, new string, n int) string {
	t.Helper()
	if got := strings.Count(config, old); got != n {
		t.Fatalf("the shop's config has %q %d times, want %d:\n%s", old, got, n, config)
	}
	return strings.ReplaceAll(config, old, new)
}

// next returns a number no cell has used.
func (e *matrixEnv) next() int {
	e.seq++
	return e.seq
}

// begin starts a cell: no faults, every forwarder open, an empty journal.
// Whatever the cell does, its faults are cleared when it ends.
func (e *matrixEnv) begin(t *testing.T) {
	t.Helper()
	e.clear(t)
	procCall(t, http.MethodDelete, e.sb.url+"/control/calls", nil, http.StatusOK, nil)
	t.Cleanup(func() { e.clear(t) })
}

// inject makes op of api fail as f says from now until clear: every call,
// not just the next.
func (e *matrixEnv) inject(t *testing.T, api, op string, f matrixFault) {
	t.Helper()
	switch {
	case f.mode == "":
		e.fwd[api].refuse()
	case f.slow():
		e.sb.fault(t, map[string]any{"api": api, "op": op, "mode": f.mode, "latency": matrixSlow})
	default:
		e.sb.fault(t, map[string]any{"api": api, "op": op, "mode": f.mode})
	}
}

// clear ends every fault: the provider is back.
func (e *matrixEnv) clear(t *testing.T) {
	t.Helper()
	procCall(t, http.MethodDelete, e.sb.url+"/control/faults", nil, http.StatusOK, nil)
	for _, f := range e.fwd {
		if err := f.open(); err != nil {
			t.Fatal(err)
		}
	}
}

// settle checks that a cell left no order open in either shop: every order
// it made reached a final state.
func (e *matrixEnv) settle(t *testing.T) {
	t.Helper()
	for _, s := range []*procShop{e.shop, e.short} {
		procEventually(t, procShortWait, "no open orders in "+s.name, func() (bool, string) {
			open, _ := filepath.Glob(filepath.Join(s.storage, "kassa", "open", "*"))
			return len(open) == 0, fmt.Sprintf("open: %v", open)
		})
	}
}

// admin calls the shop's admin API.
func (e *matrixEnv) admin(t *testing.T, method, path string, body any) (int, []byte) {
	t.Helper()
	return matrixDo(t, method, "http://"+e.shop.admin+path, body)
}

// matrixDo makes a request whose transport must not fail.
func matrixDo(t *testing.T, method, url string, body any) (int, []byte) {
	t.Helper()
	status, b, err := procDo(method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return status, b
}

// matrixCode is the error code of an error reply, or "".
func matrixCode(body []byte) string {
	var reply struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	json.Unmarshal(body, &reply)
	return reply.Error.Code
}

// matrixExpect checks a surface's answer to fault f: okStatus if the provider
// was only slow, else f's documented status and code. It returns what was
// seen, and its status for the summary.
func matrixExpect(t *testing.T, f matrixFault, status int, body []byte, okStatus int) (seen, short string) {
	t.Helper()
	if f.slow() {
		if status != okStatus {
			t.Errorf("a slow provider: status %d, want %d: %s", status, okStatus, body)
		}
		return fmt.Sprint(status), fmt.Sprint(status)
	}
	wantStatus, wantCode := f.want()
	if code := matrixCode(body); status != wantStatus || code != wantCode {
		t.Errorf("status %d %q, want %d %q: %s", status, code, wantStatus, wantCode, body)
	}
	return fmt.Sprintf("%d `%s`", status, matrixCode(body)), fmt.Sprint(status)
}

// buy checks out one tea at path on s, as a JSON client, and returns the
// pending order's id.
func (e *matrixEnv) buy(t *testing.T, s *procShop, path string) string {
	t.Helper()
	var st procStatus
	procCall(t, http.MethodPost, s.url+path, procCheckoutBody(1), http.StatusCreated, &st)
	if st.State != "pending" || st.OrderID == "" {
		t.Fatalf("checkout at %s: %+v, want a pending order", path, st)
	}
	return st.OrderID
}

// pay pays an order's invoice at the sandbox, as the buyer does on the
// payment page.
func (e *matrixEnv) pay(t *testing.T, s *procShop, api, id string) {
	t.Helper()
	if api == "pegas" {
		clusterPay(t, e.sb, id)
		return
	}
	invoice := s.record(t, id).Payment.ID
	procCall(t, http.MethodPost, e.sb.url+"/control/pay", map[string]any{"api": api, "id": invoice}, http.StatusOK, nil)
}

// waitDone waits until an order is paid with its receipt done.
func (e *matrixEnv) waitDone(t *testing.T, s *procShop, id string) *kassa.Order {
	t.Helper()
	return clusterWaitDone(t, &clusterShop{procShop: s}, id, procRecoverWait)
}

// matrixState is the part of the sandbox's state the matrix counts.
type matrixState struct {
	CrystalPay struct {
		Invoices []struct {
			ID string `json:"id"`
		} `json:"invoices"`
		Withdrawals []struct {
			Wallet string `json:"wallet"`
		} `json:"withdrawals"`
	} `json:"crystalpay"`
	Pegas struct {
		Invoices []struct {
			OrderID string `json:"order_id"`
			State   string `json:"state"`
		} `json:"invoices"`
		Withdrawals []struct {
			OrderID string `json:"order_id"`
		} `json:"withdrawals"`
	} `json:"pegas"`
	SmartCashier struct {
		Operations []clusterOperation `json:"operations"`
	} `json:"smartcashier"`
}

func (e *matrixEnv) state(t *testing.T) matrixState {
	t.Helper()
	var st matrixState
	procCall(t, http.MethodGet, e.sb.url+"/control/state", nil, http.StatusOK, &st)
	return st
}

// invoices returns the states of the Pegas invoices of an order.
func (e *matrixEnv) invoices(t *testing.T, id string) []string {
	t.Helper()
	var states []string
	for _, inv := range e.state(t).Pegas.Invoices {
		if inv.OrderID == id {
			states = append(states, inv.State)
		}
	}
	return states
}

// operations returns the sandbox's Smart Cashier operations under id.
func (e *matrixEnv) operations(t *testing.T, id string) []clusterOperation {
	t.Helper()
	var ops []clusterOperation
	for _, op := range e.state(t).SmartCashier.Operations {
		if op.OperationID == id {
			ops = append(ops, op)
		}
	}
	return ops
}

// accepted counts the calls of op on api in this cell's journal that the
// API itself answered with HTTP 200 (no fault did), whose query or body
// has the value want (any, if "").
func (e *matrixEnv) accepted(t *testing.T, api, op, want string) int {
	t.Helper()
	var out struct {
		Calls []struct {
			Query  map[string]string `json:"query"`
			Body   json.RawMessage   `json:"body"`
			Status int               `json:"status"`
			Fault  string            `json:"fault"`
		} `json:"calls"`
	}
	procCall(t, http.MethodGet, e.sb.url+"/control/calls?api="+api+"&op="+op, nil, http.StatusOK, &out)
	n := 0
	for _, c := range out.Calls {
		matches := want == "" || bytes.Contains(c.Body, []byte(`"`+want+`"`))
		for _, v := range c.Query {
			matches = matches || v == want
		}
		if c.Status == http.StatusOK && c.Fault == "" && matches {
			n++
		}
	}
	return n
}

// checkOneReceipt checks the 54-FZ guarantee for an order: its receipt is
// done; each attempt had an operation id of its own and reached the till at
// most once; only the last was processed, accepted once. One receipt is
// printed.
func (e *matrixEnv) checkOneReceipt(t *testing.T, id string) string {
	t.Helper()
	rec := e.shop.record(t, id).Receipt
	if rec == nil || rec.State != kassa.ReceiptDone {
		t.Errorf("order %s: receipt %+v, want done", id, rec)
		return ""
	}
	for _, h := range rec.History {
		if ops := e.operations(t, h.OperationID); len(ops) > 1 || len(ops) == 1 && ops[0].Attempts != 1 {
			t.Errorf("order %s: failed attempt %s: Smart Cashier operations %+v, want at most one, queued once", id, h.OperationID, ops)
		}
	}
	if ops := e.operations(t, rec.OperationID); len(ops) != 1 || ops[0].Attempts != 1 {
		t.Errorf("order %s: Smart Cashier operations %+v, want one, queued once", id, ops)
	}
	if n := e.accepted(t, "smartcashier", "formReceipt", rec.OperationID); n != 1 {
		t.Errorf("order %s: %d formReceipt calls of %s accepted, want 1", id, n, rec.OperationID)
	}
	if len(rec.History) == 0 {
		return "1 receipt operation, accepted once"
	}
	return fmt.Sprintf("%d attempts, each its own operation id; 1 printed", len(rec.History)+1)
}

// balance reads the balances while api fails: the other account still
// answers, so the operator gets 200, with the error in place of the
// failing account's balance.
func (e *matrixEnv) balance(t *testing.T, f matrixFault, api, account, other string) matrixCell {
	e.inject(t, api, "balance", f)
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
	key := fmt.Sprintf("matrix-key-%d", e.next())
	before := map[string]bool{}
	for _, id := range e.shop.orderIDs(t) {
		before[id] = true
	}
	invoicesBefore := len(e.state(t).CrystalPay.Invoices)
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
		if n := len(e.state(t).CrystalPay.Invoices) - invoicesBefore; n != 1 {
			t.Errorf("%d CrystalPAY invoices made in the cell, want 1 (the paid order's)", n)
		}
		if n := len(e.sb.calls(t, "crystalpay", "generate")); n > 2 {
			t.Errorf("%d generate calls for two checkouts: generate is never retried", n)
		}
		cell.once = "`generate` never retried; 1 invoice, the paid one"
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
	} else if n := e.accepted(t, "crystalpay", "generate", ""); n != 1 {
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
		status, b, err := procDo(http.MethodPost, "http://"+e.shop.admin+"/kassa/payouts", req, "Idempotency-Key", key)
		if err != nil {
			t.Fatalf("payout: %v", err)
		}
		return status, b
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
	url := e.shop.url + "/receipt?order=" + e.paidPegas + "&format=pdf"
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
	if o := e.shop.record(t, e.paidPegas); o.State != kassa.OrderPaid {
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

// matrixDocument renders the matrix as docs/RELIABILITY.md.
func matrixDocument(rows []matrixRow, cells [][]matrixCell) string {
	var b strings.Builder
	b.WriteString(`# Reliability: the fault matrix

<!-- Written by TestFaultMatrix (caddytest/faults_test.go): do not edit by hand. -->

What a buyer and an operator see when a provider fails, for every provider operation caddy-kassa
calls and every way a provider fails. ` + "`TestFaultMatrix`" + ` runs each cell against the sandbox
and writes what it observed here; the test fails when this file says anything else, so it cannot
go stale. To regenerate it after a change in behaviour (and review the diff):

` + "```sh" + `
go test -race -count=1 -run TestFaultMatrix ./caddytest -update
` + "```" + `

How it runs: the shop and the sandbox are separate Caddy processes (the development build). The
shop's provider endpoints point at TCP forwarders in front of the sandbox, one per API, with a
provider ` + "`timeout`" + ` of ` + matrixTimeout + `, one Smart Cashier retry and a 200ms
` + "`poll_interval`" + `. For each cell the fault is injected (every call of the operation fails,
not only the next), the surface is used as a buyer or operator uses it, the fault is cleared,
and the flow is finished. The faults:

| fault | what the shop gets |
|---|---|
| connection refused | the forwarder is closed: nothing listens on the port |
| timeout | no reply (the sandbox holds the request until the shop gives up) |
| HTTP 500 | the API's own 500 |
| HTML error page | 502 with an HTML page, as from a broken proxy in front of the API |
| malformed JSON | 200 with truncated JSON |
| auth error | the API's own authentication error |
| slow reply | the reply after ` + matrixSlow + `, within the timeout: everything must work |

A cell passes (✓) when:

- **the answer is the documented one** ([README, Errors](../README.md#errors)): 503
  ` + "`provider_unavailable`" + ` when the provider could not be reached, timed out, or answered 5xx or
  an HTML page; 502 ` + "`provider_error`" + ` when it refused or answered nonsense; success when it
  was only slow. A payout answers the same statuses with ` + "`payout_outcome_unknown`" + ` unless
  the provider refused it: only a refusal proves that nothing was paid. Surfaces that do not
  report provider failures (a buyer's status poll, the reconciler) show the order as it stands;
- **no order is lost**: every checkout leaves an order record, and every order reaches the
  right final state once the fault clears;
- **nothing is done twice**: one invoice per order, one Smart Cashier operation per operation id
  (accepted once), at most one payout per ` + "`Idempotency-Key`" + `, and ` + "`generate`" + `, ` + "`withdraw`" + `
  and ` + "`withdrawal`" + ` never retried by the shop on its own;
- **it recovers**: once the provider is back, the same flow succeeds; the reconciler finishes
  what it can by itself, and the operator's retry (which the README asks for) the rest.

## Summary

`)
	b.WriteString("| operation | surface |")
	for _, f := range matrixFaults {
		b.WriteString(" " + f.title + " |")
	}
	b.WriteString("\n|---|---|" + strings.Repeat("---|", len(matrixFaults)) + "\n")
	for i, row := range rows {
		fmt.Fprintf(&b, "| %s `%s` | %s |", row.provider, row.op, row.surface)
		for _, c := range cells[i] {
			b.WriteString(" " + matrixMark(c, c.short) + " |")
		}
		b.WriteString("\n")
	}
	b.WriteString("\n\\* `GET /kassa/balance` answers 200 while any account answers; a failing account carries its " +
		"error (`provider_unavailable` or `provider_error`) in place of its balance.\n")

	provider := ""
	for i, row := range rows {
		if row.provider != provider {
			provider = row.provider
			fmt.Fprintf(&b, "\n## %s\n", provider)
		}
		fmt.Fprintf(&b, "\n### `%s` — %s\n\n%s\n\n", row.op, row.surface, row.detail)
		b.WriteString("| fault | seen | outcome | nothing twice | recovered |\n|---|---|---|---|---|\n")
		for j, f := range matrixFaults {
			c := cells[i][j]
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s |\n", f.title, c.seen, c.outcome, c.once, matrixMark(c, c.recovered))
		}
	}
	return b.String()
}

// matrixMark is a cell's text, marked ✓ if the cell passed and ✗ if not.
func matrixMark(c matrixCell, text string) string {
	if !c.passed {
		return "✗ failed"
	}
	if text == "✓" {
		return text
	}
	return text + " ✓"
}

// matrixFirstDifference shows where two texts first differ.
func matrixFirstDifference(have, want string) string {
	h, w := strings.Split(have, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(h) || i < len(w); i++ {
		var hl, wl string
		if i < len(h) {
			hl = h[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if hl != wl {
			return fmt.Sprintf("line %d is\n\t%s\nbut the matrix observed\n\t%s", i+1, hl, wl)
		}
	}
	return "no difference"
}

// faultForwarder forwards TCP connections from its port to the sandbox.
// Closed, it refuses connections, as a provider host whose service is down
// does; reopened, it listens on the same port again.
type faultForwarder struct {
	target string // host:port of the sandbox
	addr   string // host:port it listens on, kept across refuse and open

	mu    sync.Mutex
	ln    net.Listener // nil while refusing
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// faultNewForwarder starts a forwarder to target on a free loopback port;
// it stops when the test ends.
func faultNewForwarder(t *testing.T, target string) *faultForwarder {
	t.Helper()
	f := &faultForwarder{target: target, addr: "127.0.0.1:0", conns: map[net.Conn]bool{}}
	if err := f.open(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.refuse)
	return f
}

// url is the forwarder's base URL.
func (f *faultForwarder) url() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "http://" + f.addr
}

// open listens again (a no-op while listening).
func (f *faultForwarder) open() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ln != nil {
		return nil
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("forwarder: listening on %s again: %v", f.addr, err)
	}
	f.ln, f.addr = ln, ln.Addr().String()
	f.wg.Add(1)
	go f.accept(ln)
	return nil
}

// refuse stops listening and closes every forwarded connection, so that
// no keep-alive connection outlives the provider; it returns once nothing
// is forwarded any more.
func (f *faultForwarder) refuse() {
	f.mu.Lock()
	ln := f.ln
	f.ln = nil
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	f.wg.Wait()
}

func (f *faultForwarder) accept(ln net.Listener) {
	defer f.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		f.wg.Add(1)
		go f.forward(ln, c)
	}
}

// forward copies between a client's connection and a new one to the
// target until either side ends, then closes both.
func (f *faultForwarder) forward(ln net.Listener, client net.Conn) {
	defer f.wg.Done()
	server, err := net.Dial("tcp", f.target)
	if err != nil {
		client.Close()
		return
	}
	f.mu.Lock()
	if f.ln != ln { // refused meanwhile
		f.mu.Unlock()
		client.Close()
		server.Close()
		return
	}
	f.conns[client], f.conns[server] = true, true
	f.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { io.Copy(server, client); done <- struct{}{} }()
	go func() { io.Copy(client, server); done <- struct{}{} }()
	<-done
	client.Close()
	server.Close()
	<-done
	f.mu.Lock()
	delete(f.conns, client)
	delete(f.conns, server)
	f.mu.Unlock()
}

// TestFaultForwarder proves the forwarder the matrix builds refused
// connections with: it forwards, refuses connections once closed (cutting
// the ones it carried), and forwards again on the same port once reopened.
func TestFaultForwarder(t *testing.T) {
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }() // echo
		}
	}()
	f := faultNewForwarder(t, backend.Addr().String())
	addr := strings.TrimPrefix(f.url(), "http://")
	echo := func() (net.Conn, error) {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return nil, err
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte("ping")); err != nil {
			return c, err
		}
		buf := make([]byte, 4)
		_, err = io.ReadFull(c, buf)
		if err == nil && string(buf) != "ping" {
			err = fmt.Errorf("echoed %q", buf)
		}
		return c, err
	}

	kept, err := echo()
	if err != nil {
		t.Fatalf("forwarding: %v", err)
	}
	defer kept.Close()
	f.refuse()
	if _, err := kept.Read(make([]byte, 1)); err == nil {
		t.Error("a connection forwarded before the refusal still reads")
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dialing a refusing forwarder: %v, want connection refused", err)
	}
	if err := f.open(); err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimPrefix(f.url(), "http://"); got != addr {
		t.Errorf("reopened on %s, want %s", got, addr)
	}
	c, err := echo()
	if err != nil {
		t.Fatalf("forwarding after reopening: %v", err)
	}
	c.Close()
}
