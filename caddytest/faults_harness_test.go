package caddytest

// The fault matrix's harness: the sandbox and shops every cell shares, the
// helpers the cells drive them with, and the TCP forwarders whose closing
// makes a provider refuse connections.

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

// matrixEnv is what the cells share: the sandbox, the forwarders in front
// of it, and the shops.
type matrixEnv struct {
	sb *procSandbox
	// fwd is the forwarder of each API, by its sandbox name.
	fwd map[string]*faultForwarder
	// shop is the shop of every row; short's orders expire after
	// matrixTTL, for the reconciler's expiry.
	shop, short *procShop
	// shops are their processes, whose logs must hold no secret.
	shops []*procCaddy
	// knownOperation is a processed Smart Cashier operation.
	knownOperation string
	// knownPayout is the id of a CrystalPAY v3 payout the operator made.
	knownPayout string
	// seq numbers the keys and ids the cells make.
	seq int
}

// matrixV3 names the forwarder of CrystalPAY's API v3, a host of its own
// (api.crystalpay.io, v1's being api.crystalpay.ru); in the sandbox it is
// the crystalpay API, whose v3 operations are named group/action.
const matrixV3 = "crystalpay v3"

// matrixStart runs the sandbox, a forwarder per API and the two shops, and
// funds the accounts for payouts and the till for cash withdrawals.
func matrixStart(t *testing.T) *matrixEnv {
	t.Helper()
	dir := t.TempDir()
	e := &matrixEnv{sb: procStartSandbox(t, dir), fwd: map[string]*faultForwarder{}}
	target := strings.TrimPrefix(e.sb.url, "http://")
	for _, api := range []string{"crystalpay", matrixV3, "pegas", "smartcashier"} {
		e.fwd[api] = faultNewForwarder(t, target)
	}
	e.shop = e.newShop(t, dir, "matrix", "")
	e.short = e.newShop(t, dir, "matrix-short", "\t\torder_ttl "+matrixTTL)
	e.shops = []*procCaddy{e.shop.start(t), e.short.start(t)}

	e.begin(t)
	for _, acc := range []struct{ api, path string }{{"crystalpay", "/pay/main"}, {"crystalpay", "/pay/v3"}, {"pegas", "/pay"}} {
		id := e.buy(t, e.shop, acc.path)
		e.pay(t, e.shop, acc.api, id)
		e.waitDone(t, e.shop, id)
	}
	e.knownOperation = "matrix-setup-cash"
	procCall(t, http.MethodPost, "http://"+e.shop.admin+"/kassa/cash/deposit", map[string]any{
		"amount": "5000.00", "cashbox_id": matrixCashbox, "operation_id": e.knownOperation}, http.StatusAccepted, nil)
	var payout struct {
		ID string `json:"id"`
	}
	if status, body := e.postPayout(t, matrixV3Payout, "matrix-setup-payout"); status != http.StatusOK || json.Unmarshal(body, &payout) != nil || payout.ID == "" {
		t.Fatalf("a CrystalPAY v3 payout: %d %s", status, body)
	}
	e.knownPayout = payout.ID
	e.settle(t)
	return e
}

// newShop prepares a shop named name whose CrystalPAY accounts "main" (api
// v1, at /pay/main, with secret2 for payouts) and "v3" (api v3, at
// /pay/v3, with its salt, and its callbacks to kassa_callback at
// /kassa/callback/v3), Pegas account "card" (at /pay) and Smart Cashier
// receipts (one retry) reach the sandbox through the forwarders, with
// kassa_receipt (with issue) at /receipt, a provider timeout of
// matrixTimeout and extra in its kassa block.
func (e *matrixEnv) newShop(t *testing.T, dir, name, extra string) *procShop {
	t.Helper()
	front := &procSandbox{procCaddy: e.sb.procCaddy, url: e.fwd["pegas"].url()}
	receipts := matrixEdit(t, clusterReceipts(&procSandbox{url: e.fwd["smartcashier"].url()}),
		"taxation usn_income", "taxation usn_income\n\t\t\tretries 1", 1)
	// The matrix meets the providers' faults, not the buyers' budget of
	// calls (buyer_rate_limit), which its quick cells would spend.
	s := procShopWith(t, dir, filepath.Join(dir, name+"-storage"), name, front, receipts+"\n\t\tbuyer_rate_limit card 1000/s\n"+extra)
	s.config = matrixEdit(t, s.config, front.url+"/crystalpay/", e.fwd["crystalpay"].url()+"/crystalpay/", 1)
	s.config = matrixEdit(t, s.config, "timeout 1s", "timeout "+matrixTimeout, 3)
	s.config = matrixEdit(t, s.config, "\t\t\tsecret sandbox-secret\n", "\t\t\tsecret sandbox-secret\n\t\t\tsecret2 sandbox-secret2\n", 1)
	s.config = matrixEdit(t, s.config, "\troute /pay {\n", "\troute /receipt {\n\t\tkassa_receipt {\n\t\t\tissue\n\t\t}\n\t}\n"+
		"\troute /pay/v3 {\n\t\tkassa_checkout v3\n\t}\n\troute /kassa/callback/v3 {\n\t\tkassa_callback v3\n\t}\n\troute /pay {\n", 1)
	v3 := fmt.Sprintf(`		payment v3 crystalpay {
			login sandbox
			secret sandbox-secret
			salt %s
			endpoint %s/crystalpay/v3/
			callback %s/kassa/callback/v3
			timeout %s
		}
`, matrixSalt, e.fwd[matrixV3].url(), s.url, matrixTimeout)
	s.config = matrixEdit(t, s.config, "\t\tproduct tea ", v3+"\t\tproduct tea ", 1)
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
// not just the next. Refused connections refuse every call of the API.
func (e *matrixEnv) inject(t *testing.T, api, op string, f matrixFault) {
	t.Helper()
	switch {
	case f.mode == "":
		e.forwarder(api, op).refuse()
	case f.slow():
		e.sb.fault(t, map[string]any{"api": api, "op": op, "mode": f.mode, "latency": matrixSlow})
	default:
		e.sb.fault(t, map[string]any{"api": api, "op": op, "mode": f.mode})
	}
}

// checkNoSecretLogged checks that the shops logged no CrystalPAY secret:
// neither an auth secret nor the salt, nor a signature of the v3 payouts
// (computed here, with v3Sign).
func (e *matrixEnv) checkNoSecretLogged(t *testing.T) {
	t.Helper()
	secrets := []string{"sandbox-secret", matrixSalt,
		v3Sign("10", "LZTMARKET", "matrix-payee", matrixSalt), v3Sign(e.knownPayout, matrixSalt)}
	for _, p := range e.shops {
		b, err := os.ReadFile(p.log)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range secrets {
			if i := bytes.Index(b, []byte(secret)); i >= 0 {
				t.Errorf("%s logged a secret: %.200q", p.name, b[max(0, i-100):])
			}
		}
	}
}

// forwarder is the forwarder that op of api goes through: CrystalPAY's
// group/action operations are API v3's.
func (e *matrixEnv) forwarder(api, op string) *faultForwarder {
	if api == "crystalpay" && strings.Contains(op, "/") {
		return e.fwd[matrixV3]
	}
	return e.fwd[api]
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

// postPayout asks the shop's admin API for a payout under an
// Idempotency-Key.
func (e *matrixEnv) postPayout(t *testing.T, req map[string]any, key string) (int, []byte) {
	t.Helper()
	status, b, err := procDo(http.MethodPost, "http://"+e.shop.admin+"/kassa/payouts", req, "Idempotency-Key", key)
	if err != nil {
		t.Fatalf("payout: %v", err)
	}
	return status, b
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
		V3Invoices []struct {
			ID        string `json:"id"`
			CreatedAt string `json:"created_at"`
			ExpiredAt string `json:"expired_at"`
		} `json:"v3_invoices"`
		Payoffs []matrixPayoff `json:"payoffs"`
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

// matrixPayoff is a CrystalPAY v3 payout in the sandbox's state.
type matrixPayoff struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

func (e *matrixEnv) state(t *testing.T) matrixState {
	t.Helper()
	var st matrixState
	procCall(t, http.MethodGet, e.sb.url+"/control/state", nil, http.StatusOK, &st)
	return st
}

// crystalPayInvoices counts the sandbox's CrystalPAY invoices, of both
// APIs.
func (e *matrixEnv) crystalPayInvoices(t *testing.T) int {
	t.Helper()
	st := e.state(t).CrystalPay
	return len(st.Invoices) + len(st.V3Invoices)
}

// checkLifetime checks that an order's CrystalPAY v3 invoice lives as long
// as the order: an invoice whose reply was lost, and whose order failed,
// stays payable no longer than the order would have.
func (e *matrixEnv) checkLifetime(t *testing.T, s *procShop, id string) {
	t.Helper()
	o := s.record(t, id)
	for _, inv := range e.state(t).CrystalPay.V3Invoices {
		if inv.ID != o.Payment.ID {
			continue
		}
		// v3 writes times without a zone, all in the same one.
		created, err1 := time.Parse(time.DateTime, inv.CreatedAt)
		expires, err2 := time.Parse(time.DateTime, inv.ExpiredAt)
		if ttl := o.ExpiresAt.Sub(o.CreatedAt); err1 != nil || err2 != nil || expires.Sub(created) != ttl.Round(time.Minute) {
			t.Errorf("invoice %s lives from %s to %s, want the order's %v", inv.ID, inv.CreatedAt, inv.ExpiredAt, ttl)
		}
		return
	}
	t.Errorf("order %s: no CrystalPAY v3 invoice %s", id, o.Payment.ID)
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

// deliveries returns how the shop answered each of the sandbox's
// deliveries, in this cell, of the callback of a CrystalPAY v3 invoice: its
// HTTP statuses, oldest first (0 when none came back).
func (e *matrixEnv) deliveries(t *testing.T, invoice string) []int {
	t.Helper()
	var statuses []int
	for _, c := range e.sb.calls(t, "crystalpay", "callback") {
		if bytes.Contains(c.Body, []byte(`"`+invoice+`"`)) {
			statuses = append(statuses, c.Status)
		}
	}
	return statuses
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
