package caddytest

// Crash and restart tests: unlike the rest of this package they run Caddy as
// real processes (the cmd/caddy development build), kill the shop with
// SIGKILL in the middle of a checkout and start it again on the same
// storage, while a separate sandbox process keeps the providers' state
// across the crash. Every helper here is prefixed proc.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-kassa/kassa"
)

// Bounds of the waits below. procRecoverWait covers the reconciler's grace
// for an interrupted checkout (2 × the 1s provider timeout + 1s) plus the
// reconciler's lease a killed process leaves (taken over after 5s), or up
// to 10s for a file-storage lock it may have left (certmagic takes a lock
// for stale after 10s without a refresh).
const (
	procReadyWait   = 20 * time.Second
	procShortWait   = 5 * time.Second
	procRecoverWait = 25 * time.Second
	procPollEvery   = 50 * time.Millisecond
)

// procHTTP is the client of every request the tests make; none may hang.
var procHTTP = &http.Client{Timeout: 10 * time.Second}

var (
	procBuildOnce sync.Once
	procBin       string
	procBuildErr  error
)

// procBinary builds cmd/caddy once per test binary, with the
// kassa_failpoints tag so that a test can have it kill itself at a step
// (KASSA_FAILPOINTS), and returns its path.
// The binary is named after this process, and binaries left by test
// processes that have ended are removed first, so at most one per running
// test binary stays on disk.
func procBinary(t *testing.T) string {
	t.Helper()
	procBuildOnce.Do(func() {
		dir := filepath.Join(os.TempDir(), "caddy-kassa-proctest")
		if procBuildErr = os.MkdirAll(dir, 0o755); procBuildErr != nil {
			return
		}
		procRemoveStaleBinaries(dir)
		bin := filepath.Join(dir, "caddy-"+strconv.Itoa(os.Getpid()))
		cmd := exec.Command("go", "build", "-tags", "kassa_failpoints", "-o", bin, "./cmd/caddy")
		cmd.Dir = ".."
		out, err := cmd.CombinedOutput()
		if err != nil {
			procBuildErr = fmt.Errorf("go build ./cmd/caddy: %v\n%s", err, out)
			return
		}
		procBin = bin
	})
	if procBuildErr != nil {
		t.Fatal(procBuildErr)
	}
	return procBin
}

// procRemoveStaleBinaries deletes caddy-<pid> binaries whose test process
// no longer runs.
func procRemoveStaleBinaries(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		pid, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "caddy-"))
		if err != nil || pid == os.Getpid() {
			continue
		}
		if p, err := os.FindProcess(pid); err == nil && p.Signal(syscall.Signal(0)) == nil {
			continue // still running
		}
		os.Remove(filepath.Join(dir, e.Name()))
	}
}

// procFreePort returns a loopback port that was free a moment ago.
func procFreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// procCaddy is one Caddy process.
type procCaddy struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{} // closed when the process has exited and been reaped
}

// procStart runs `caddy run` on config in its own home under dir, with env
// added to its environment, logging to dir/<name>.log, and waits until
// readyURL answers as ready says. The process is killed when the test ends;
// its log is printed if the test failed.
func procStart(t *testing.T, dir, name, config, readyURL string, ready func(status int, body []byte) bool, env ...string) *procCaddy {
	t.Helper()
	bin := procBinary(t)
	home := filepath.Join(dir, name+"-home")
	for _, d := range []string{home, filepath.Join(home, "data"), filepath.Join(home, "config")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, name+".Caddyfile")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "run", "--config", file, "--adapter", "caddyfile")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "HOME="+home,
		"XDG_DATA_HOME="+filepath.Join(home, "data"), "XDG_CONFIG_HOME="+filepath.Join(home, "config"))
	cmd.Env = append(cmd.Env, env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	p := &procCaddy{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(t)
		if t.Failed() {
			t.Logf("----- log of %s -----\n%s", p.name, p.logTail())
		}
	})

	deadline := time.Now().Add(procReadyWait)
	var last string
	for {
		select {
		case <-p.done:
			t.Fatalf("%s exited before it was ready (%v)", name, cmd.ProcessState)
		default:
		}
		status, body, err := procDo("GET", readyURL, nil)
		if err == nil && ready(status, body) {
			return p
		}
		last = fmt.Sprintf("status %d, %q, %v", status, body, err)
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready after %v: GET %s: %s", name, procReadyWait, readyURL, last)
		}
		time.Sleep(procPollEvery)
	}
}

// kill sends SIGKILL (if the process still runs) and waits until it has
// exited.
func (p *procCaddy) kill(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Errorf("killing %s: %v", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(procShortWait):
		t.Errorf("%s did not exit within %v of SIGKILL", p.name, procShortWait)
	}
}

// logTail returns the end of the process's log.
func (p *procCaddy) logTail() string {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return err.Error()
	}
	const limit = 32 << 10
	if len(b) > limit {
		b = append([]byte("...\n"), b[len(b)-limit:]...)
	}
	return string(b)
}

// procDo makes one request; body, if not nil, is sent as JSON, and header
// holds extra header names and values, in pairs.
func procDo(method, url string, body any, header ...string) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := procHTTP.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// procCall makes a request that must answer wantStatus, and decodes its
// JSON reply into out (unless out is nil).
func procCall(t *testing.T, method, url string, body any, wantStatus int, out any) {
	t.Helper()
	status, b, err := procDo(method, url, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	if status != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", method, url, status, wantStatus, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: decoding %s: %v", method, url, b, err)
		}
	}
}

// procEventually polls check until it reports done, or fails the test
// after limit with check's last word.
func procEventually(t *testing.T, limit time.Duration, what string, check func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		done, state := check()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, limit, state)
		}
		time.Sleep(procPollEvery)
	}
}

// procSandbox is the sandbox process and its URL.
type procSandbox struct {
	*procCaddy
	url string
}

// procStartSandbox runs the provider sandbox alone in its own process; it
// outlives the shop's crashes and so holds the providers' state.
func procStartSandbox(t *testing.T, dir string) *procSandbox {
	t.Helper()
	port := procFreePort(t)
	config := fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
}

http://127.0.0.1:%d {
	bind 127.0.0.1
	kassa_sandbox {
		name crash
		receipt_delay 0s
	}
}
`, procFreePort(t), port)
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	p := procStart(t, dir, "sandbox", config, url+"/control/settings",
		func(status int, _ []byte) bool { return status == http.StatusOK })
	return &procSandbox{procCaddy: p, url: url}
}

// procShop is how to run the shop: the same ports and storage on every
// start, so a restart serves the orders of the process before it.
type procShop struct {
	dir, storage, url, config string
	// admin is the address of the admin endpoint, as host:port.
	admin string
	// name names the shop's processes, and its instance in a cluster.
	name   string
	starts int
	// failpoints is KASSA_FAILPOINTS for the next start: the steps at which
	// the process kills itself.
	failpoints string
	// env is added to the environment of every start, as NAME=value.
	env []string
}

// procNewShop prepares a shop whose Pegas account "card" (at /pay) and
// CrystalPAY account "main" (at /pay/main) are served by sb.
func procNewShop(t *testing.T, dir string, sb *procSandbox) *procShop {
	return procShopWith(t, dir, filepath.Join(dir, "storage"), "shop", sb, "")
}

// procShopWith prepares such a shop named name on file storage in the
// folder storage, with extra options in its kassa block.
func procShopWith(t *testing.T, dir, storage, name string, sb *procSandbox, extra string) *procShop {
	s := procShopOn(t, dir, "file_system "+storage, name, sb, extra)
	s.storage = storage
	return s
}

// procShopOn prepares such a shop named name whose kassa block keeps orders
// in storageConfig (the storage option's arguments and block, as
// "file_system /path" or "redis { ... }"), with extra options in its kassa
// block. Its storage field is empty: only a file storage can be read from
// disk.
func procShopOn(t *testing.T, dir, storageConfig, name string, sb *procSandbox, extra string) *procShop {
	t.Helper()
	port, admin := procFreePort(t), fmt.Sprintf("127.0.0.1:%d", procFreePort(t))
	config := fmt.Sprintf(`{
	admin %s
	auto_https off
	persist_config off
	kassa {
		payment card pegas {
			token sandbox-token
			endpoint %[2]s/pegas/api/v1
			timeout 1s
		}
		payment main crystalpay {
			api v1
			login sandbox
			secret sandbox-secret
			endpoint %[2]s/crystalpay/api.php
			timeout 1s
		}
%[5]s
		product tea 350.00 "Tea"
		poll_interval 200ms
		storage %[3]s
	}
}

http://127.0.0.1:%[4]d {
	bind 127.0.0.1
	route /pay {
		kassa_checkout card
	}
	route /pay/main {
		kassa_checkout main
	}
}
`, admin, sb.url, storageConfig, port, extra)
	return &procShop{dir: dir, admin: admin, url: fmt.Sprintf("http://127.0.0.1:%d", port), config: config, name: name}
}

// start runs the shop (again) and waits until it answers a status poll.
func (s *procShop) start(t *testing.T) *procCaddy {
	t.Helper()
	s.starts++
	if s.starts > 1 {
		if b, err := os.ReadFile(filepath.Join(s.storage, "kassa", "reconciler-lease")); err == nil && !bytes.Contains(b, []byte(`"holder":""`)) {
			t.Logf("%s restarts while another instance, or a killed one, holds the reconciler's lease: it takes it over after the term", s.name)
		}
	}
	// A well-formed id that no order has: the checkout handler answers 404.
	ready := s.url + "/pay?order=AAAAAAAAAAAAAAAAAAAAAA"
	return procStart(t, s.dir, fmt.Sprintf("%s-%d", s.name, s.starts), s.config, ready, func(status int, body []byte) bool {
		return status == http.StatusNotFound && bytes.Contains(body, []byte("unknown_order"))
	}, append([]string{"KASSA_FAILPOINTS=" + s.failpoints}, s.env...)...)
}

// procStatus is the checkout's JSON for a created order and a status poll.
type procStatus struct {
	OrderID    string `json:"order_id"`
	State      string `json:"state"`
	Amount     string `json:"amount"`
	PaymentURL string `json:"payment_url"`
}

// status polls an order's status as a buyer does, returning the reply as
// decoded and as sent.
func (s *procShop) status(t *testing.T, id string) (procStatus, []byte) {
	t.Helper()
	url := s.url + "/pay?order=" + id
	status, b, err := procDo("GET", url, nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("GET %s: status %d, %s, %v", url, status, b, err)
	}
	var st procStatus
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("GET %s: %s: %v", url, b, err)
	}
	return st, b
}

// procCheckoutBody buys qty tea.
func procCheckoutBody(qty int) any {
	return map[string]any{"items": []map[string]any{{"sku": "tea", "qty": qty}}, "email": "buyer@example.com"}
}

// orderIDs lists the order records on disk: under kassa/orders, and those
// of orders being created, whose record is their open-index entry.
func (s *procShop) orderIDs(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s.storage, "kassa", "orders", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range files {
		ids = append(ids, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	open, err := filepath.Glob(filepath.Join(s.storage, "kassa", "open", "*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range open {
		if b, err := os.ReadFile(f); err == nil && bytes.HasPrefix(b, []byte("{")) {
			ids = append(ids, filepath.Base(f))
		}
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// record reads an order's record from disk: the one under kassa/orders,
// or else the one an order being created has in its open-index entry.
func (s *procShop) record(t *testing.T, id string) *kassa.Order {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.storage, "kassa", "orders", id+".json"))
	if os.IsNotExist(err) {
		b, err = os.ReadFile(filepath.Join(s.storage, "kassa", "open", id))
	}
	if err != nil {
		t.Fatal(err)
	}
	var o kassa.Order
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatalf("order record %s: %v: %s", id, err, b)
	}
	return &o
}

// isOpen reports whether the order has an entry in the open index.
func (s *procShop) isOpen(id string) bool {
	_, err := os.Stat(filepath.Join(s.storage, "kassa", "open", id))
	return err == nil
}

// waitRecord waits until the order's record on disk is in state, which
// only the checkout and the reconciler write.
func (s *procShop) waitRecord(t *testing.T, id string, state kassa.OrderState, limit time.Duration) *kassa.Order {
	t.Helper()
	var o *kassa.Order
	procEventually(t, limit, fmt.Sprintf("order %s stored as %s", id, state), func() (bool, string) {
		o = s.record(t, id)
		if o.State != state && !o.State.Open() {
			t.Fatalf("order %s stored as %s (error %q), want %s", id, o.State, o.Error, state)
		}
		return o.State == state, fmt.Sprintf("state %s, error %q", o.State, o.Error)
	})
	return o
}

// procJournalCall is a call in the sandbox's journal.
type procJournalCall struct {
	API    string            `json:"api"`
	Op     string            `json:"op"`
	Query  map[string]string `json:"query"`
	Body   json.RawMessage   `json:"body"`
	Status int               `json:"status"`
}

// calls returns the sandbox's journal of api's op calls.
func (sb *procSandbox) calls(t *testing.T, api, op string) []procJournalCall {
	t.Helper()
	var out struct {
		Calls []procJournalCall `json:"calls"`
	}
	procCall(t, "GET", sb.url+"/control/calls?api="+api+"&op="+op, nil, http.StatusOK, &out)
	return out.Calls
}

// depositsOf returns the Pegas deposit calls for one order id.
func (sb *procSandbox) depositsOf(t *testing.T, orderID string) []procJournalCall {
	t.Helper()
	var out []procJournalCall
	for _, c := range sb.calls(t, "pegas", "deposit") {
		if c.Query["order_id"] == orderID {
			out = append(out, c)
		}
	}
	return out
}

// procSandboxState is the part of /control/state these tests read.
type procSandboxState struct {
	CrystalPay struct {
		Invoices []struct {
			ID     string `json:"id"`
			Amount string `json:"amount"`
			State  string `json:"state"`
		} `json:"invoices"`
	} `json:"crystalpay"`
	Pegas struct {
		Invoices []struct {
			ID      int64  `json:"id"`
			OrderID string `json:"order_id"`
			Amount  string `json:"amount"`
			State   string `json:"state"`
		} `json:"invoices"`
	} `json:"pegas"`
}

func (sb *procSandbox) state(t *testing.T) procSandboxState {
	t.Helper()
	var st procSandboxState
	procCall(t, "GET", sb.url+"/control/state", nil, http.StatusOK, &st)
	return st
}

// fault adds a sandbox fault.
func (sb *procSandbox) fault(t *testing.T, f map[string]any) {
	t.Helper()
	procCall(t, "POST", sb.url+"/control/faults", f, http.StatusOK, nil)
}

// TestRestartKeepsOrders proves that orders survive a SIGKILL and restart
// unchanged: a paid, a pending and a failed order read the same (state,
// amount, items, times, payment link) through the buyer's status poll
// before and after, and the restarted reconciler still finishes the
// pending one when it is paid.
func TestRestartKeepsOrders(t *testing.T) {
	dir := t.TempDir()
	sb := procStartSandbox(t, dir)
	s := procNewShop(t, dir, sb)
	shop := s.start(t)

	// Paid: a CrystalPAY order for 350.00, paid at the sandbox.
	var paid procStatus
	procCall(t, "POST", s.url+"/pay/main", procCheckoutBody(1), http.StatusCreated, &paid)
	invoice := s.record(t, paid.OrderID).Payment.ID
	procCall(t, "POST", sb.url+"/control/pay", map[string]any{"api": "crystalpay", "id": invoice}, http.StatusOK, nil)
	s.waitRecord(t, paid.OrderID, kassa.OrderPaid, procShortWait)

	// Pending: a Pegas order for 700.00.
	var pending procStatus
	procCall(t, "POST", s.url+"/pay", procCheckoutBody(2), http.StatusCreated, &pending)

	// Failed: a CrystalPAY order for 1050.00 whose generate is refused.
	before := s.orderIDs(t)
	sb.fault(t, map[string]any{"api": "crystalpay", "op": "generate", "mode": "auth", "count": 1})
	procCall(t, "POST", s.url+"/pay/main", procCheckoutBody(3), http.StatusBadGateway, nil)
	var failed string
	for _, id := range s.orderIDs(t) {
		if id != paid.OrderID && id != pending.OrderID {
			failed = id
		}
	}
	if got := len(s.orderIDs(t)); got != len(before)+1 || failed == "" {
		t.Fatalf("the refused checkout left %d order records (before %d)", got, len(before))
	}

	want := []struct {
		id, state, amount string
	}{
		{paid.OrderID, "paid", "350.00"},
		{pending.OrderID, "pending", "700.00"},
		{failed, "failed", "1050.00"},
	}
	replies := map[string][]byte{}
	for _, w := range want {
		st, body := s.status(t, w.id)
		if st.State != w.state || st.Amount != w.amount {
			t.Fatalf("before the restart order %s is %s %s, want %s %s", w.id, st.State, st.Amount, w.state, w.amount)
		}
		replies[w.id] = body
	}

	shop.kill(t)
	s.start(t)

	for _, w := range want {
		st, body := s.status(t, w.id)
		if st.State != w.state || st.Amount != w.amount {
			t.Errorf("after the restart order %s is %s %s, want %s %s", w.id, st.State, st.Amount, w.state, w.amount)
		}
		if !bytes.Equal(body, replies[w.id]) {
			t.Errorf("order %s reads differently after the restart:\nbefore %s\nafter  %s", w.id, replies[w.id], body)
		}
		if o := s.record(t, w.id); string(o.State) != w.state || o.Amount.StringFixed(2) != w.amount {
			t.Errorf("order %s is stored as %s %s, want %s %s", w.id, o.State, o.Amount.StringFixed(2), w.state, w.amount)
		}
	}
	if !s.isOpen(pending.OrderID) || s.isOpen(paid.OrderID) || s.isOpen(failed) {
		t.Errorf("open index: pending %v (want true), paid %v, failed %v (want false)",
			s.isOpen(pending.OrderID), s.isOpen(paid.OrderID), s.isOpen(failed))
	}

	// The restarted reconciler finishes the pending order: nobody polls
	// its status until the record says paid.
	procCall(t, "POST", sb.url+"/control/pay", map[string]any{"api": "pegas", "order_id": pending.OrderID}, http.StatusOK, nil)
	s.waitRecord(t, pending.OrderID, kassa.OrderPaid, procRecoverWait)
	if st, _ := s.status(t, pending.OrderID); st.State != "paid" || st.Amount != "700.00" {
		t.Errorf("after paying, the pending order reads %+v", st)
	}
	if s.isOpen(pending.OrderID) {
		t.Error("the paid order is still in the open index")
	}
	if n := len(sb.calls(t, "pegas", "deposit")); n != 1 {
		t.Errorf("%d Pegas deposits, want 1", n)
	}
	if n := len(sb.calls(t, "crystalpay", "generate")); n != 2 {
		t.Errorf("%d CrystalPAY generates, want 2 (the paid order and the refused one)", n)
	}
}
