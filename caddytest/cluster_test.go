package caddytest

// Cluster and receipt-crash tests: like crash_test.go they run Caddy as real
// processes beside a sandbox process, but the shops here issue fiscal
// receipts through the sandbox's Smart Cashier, and two shops may share one
// file storage, as two instances of a cluster do. They reuse the proc
// helpers of crash_test.go; every helper here is prefixed cluster.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/caddy-kassa/kassa"
)

// clusterShop is one shop instance: its own ports, admin endpoint, home and
// log, on a storage directory other instances may share.
type clusterShop struct {
	*procShop
}

// clusterNewShop prepares shop instance name, whose Pegas account "card"
// (at /pay) and Smart Cashier receipts are served by sb, keeping its orders
// in storage.
func clusterNewShop(t *testing.T, dir, storage, name string, sb *procSandbox) *clusterShop {
	return &clusterShop{procShop: procShopWith(t, dir, storage, name, sb, clusterReceipts(sb))}
}

// clusterReceipts is the kassa block's receipts option for Smart Cashier
// on sb.
func clusterReceipts(sb *procSandbox) string {
	return fmt.Sprintf(`		receipts smartcashier {
			token sandbox-token
			endpoint %s/smartcashier/v1.0
			taxation usn_income
			timeout 1s
		}`, sb.url)
}

// checkout buys one tea as a JSON client and returns the order's id.
func (s *clusterShop) checkout(t *testing.T) string {
	t.Helper()
	var st procStatus
	procCall(t, "POST", s.url+"/pay", procCheckoutBody(1), http.StatusCreated, &st)
	if st.OrderID == "" || st.State != "pending" || st.Amount != "350.00" {
		t.Fatalf("checkout on %s: %+v, want a pending order of 350.00", s.name, st)
	}
	return st.OrderID
}

// clusterPay pays an order's Pegas invoice at the sandbox, as the buyer's
// click on the payment page does.
func clusterPay(t *testing.T, sb *procSandbox, id string) {
	t.Helper()
	procCall(t, "POST", sb.url+"/control/pay", map[string]any{"api": "pegas", "order_id": id}, http.StatusOK, nil)
}

// clusterWaitDone waits until the order's record on disk is paid with its
// sale receipt done. A closed order in another state, or a failed receipt,
// fails the test at once.
func clusterWaitDone(t *testing.T, s *clusterShop, id string, limit time.Duration) *kassa.Order {
	t.Helper()
	var o *kassa.Order
	procEventually(t, limit, fmt.Sprintf("order %s paid with its receipt done", id), func() (bool, string) {
		o = s.record(t, id)
		if o.State != kassa.OrderPaid && !o.State.Open() {
			t.Fatalf("order %s stored as %s (error %q), want paid", id, o.State, o.Error)
		}
		if o.Receipt == nil {
			return false, fmt.Sprintf("state %s, no receipt", o.State)
		}
		if o.Receipt.State == kassa.ReceiptFailed {
			t.Fatalf("order %s: receipt failed: %s", id, o.Receipt.Error)
		}
		return o.State == kassa.OrderPaid && o.Receipt.State == kassa.ReceiptDone,
			fmt.Sprintf("state %s, receipt %s", o.State, o.Receipt.State)
	})
	return o
}

// clusterSentReceipt is a formReceipt call in the sandbox's journal.
type clusterSentReceipt struct {
	OperationID string
	Status      int
}

// clusterFormReceipts lists the formReceipt calls the sandbox received,
// oldest first.
func clusterFormReceipts(t *testing.T, sb *procSandbox) []clusterSentReceipt {
	t.Helper()
	var out struct {
		Calls []struct {
			Body   json.RawMessage `json:"body"`
			Status int             `json:"status"`
		} `json:"calls"`
	}
	procCall(t, "GET", sb.url+"/control/calls?api=smartcashier&op=formReceipt", nil, http.StatusOK, &out)
	var sent []clusterSentReceipt
	for _, c := range out.Calls {
		var body struct {
			OperationID string `json:"operationId"`
		}
		if err := json.Unmarshal(c.Body, &body); err != nil {
			t.Fatalf("formReceipt body in the journal: %v: %s", err, c.Body)
		}
		sent = append(sent, clusterSentReceipt{OperationID: body.OperationID, Status: c.Status})
	}
	return sent
}

// clusterOperation is a Smart Cashier operation in the sandbox's state.
type clusterOperation struct {
	OperationID string `json:"operationId"`
	Kind        string `json:"kind"`
	Attempts    int    `json:"attempts"`
}

// clusterOperations lists the sandbox's Smart Cashier operations.
func clusterOperations(t *testing.T, sb *procSandbox) []clusterOperation {
	t.Helper()
	var st struct {
		SmartCashier struct {
			Operations []clusterOperation `json:"operations"`
		} `json:"smartcashier"`
	}
	procCall(t, "GET", sb.url+"/control/state", nil, http.StatusOK, &st)
	return st.SmartCashier.Operations
}

// clusterSaleOperationID is the operation id the shop derives for an
// order's sale receipt.
func clusterSaleOperationID(id string) string { return "kassa-" + id + "-sale" }

// clusterOneOperationEach checks the 54-FZ guarantee in the sandbox:
// exactly one Smart Cashier operation per order, a formReceipt, a send for
// each, and no operation that belongs to no order. It returns how often
// each operation id was sent (formReceipt calls).
func clusterOneOperationEach(t *testing.T, sb *procSandbox, ids []string) map[string]int {
	t.Helper()
	ops := map[string]int{}
	for _, op := range clusterOperations(t, sb) {
		ops[op.OperationID]++
		if op.Kind != "formReceipt" {
			t.Errorf("operation %s is a %s, want formReceipt", op.OperationID, op.Kind)
		}
	}
	sends := map[string]int{}
	for _, c := range clusterFormReceipts(t, sb) {
		sends[c.OperationID]++
	}
	// The sandbox's journal keeps its last 10 000 calls: past that, the
	// first sends are gone from it, and the operation's existence is what
	// proves its send (the reconciler checks young orders every pass, so a
	// long load makes that many calls).
	full := len(sb.calls(t, "", "")) >= 10000
	want := map[string]bool{}
	for _, id := range ids {
		op := clusterSaleOperationID(id)
		want[op] = true
		if ops[op] != 1 {
			t.Errorf("order %s has %d Smart Cashier operations, want exactly 1", id, ops[op])
		}
		if sends[op] == 0 && !full {
			t.Errorf("no formReceipt was sent for order %s", id)
		}
	}
	for op := range ops {
		if !want[op] {
			t.Errorf("the sandbox holds an operation %q that belongs to no order", op)
		}
	}
	return sends
}

// clusterCheckOneReceiptEach checks clusterOneOperationEach, and that each
// operation id was sent exactly once: a send under an id of no order, or
// an id sent more often, is reported.
func clusterCheckOneReceiptEach(t *testing.T, sb *procSandbox, ids []string) {
	t.Helper()
	want := map[string]bool{}
	for _, id := range ids {
		want[clusterSaleOperationID(id)] = true
	}
	var doubles []string
	for op, n := range clusterOneOperationEach(t, sb, ids) {
		if !want[op] {
			t.Errorf("formReceipt sent under operation id %q, which belongs to no order", op)
		}
		if n != 1 {
			doubles = append(doubles, fmt.Sprintf("%s sent %d times", op, n))
		}
	}
	sort.Strings(doubles)
	if len(doubles) > 0 {
		t.Errorf("receipts sent more than once (harmless for printing thanks to operationId, but one instance "+
			"makes the passes and every step re-reads the order, so no instance should send a done receipt again): %s",
			strings.Join(doubles, "; "))
	}
}

// clusterLogCount counts the log lines of p that contain s.
func clusterLogCount(p *procCaddy, s string) int {
	b, err := os.ReadFile(p.log)
	if err != nil {
		return -1
	}
	return strings.Count(string(b), s)
}

// TestTwoInstancesOneReceiptEach proves that two shop instances sharing one
// storage, polling every 200ms, issue exactly one Smart Cashier operation
// per paid order (the 54-FZ guarantee) and send each receipt once: the
// lease holder makes the passes, and a step of the other (a nudge) re-reads
// the order under its lock, so it sees the receipt already done. It also
// proves that an order made on one instance is served by the other.
func TestTwoInstancesOneReceiptEach(t *testing.T) {
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	sb := procStartSandbox(t, dir)
	a := clusterNewShop(t, dir, storage, "shopA", sb)
	b := clusterNewShop(t, dir, storage, "shopB", sb)
	procA, procB := a.start(t), b.start(t)

	const orders = 10
	var ids []string
	made := map[string]*clusterShop{}
	for i := 0; i < orders; i++ {
		on, other := a, b
		if i%2 == 1 {
			on, other = b, a
		}
		id := on.checkout(t)
		ids = append(ids, id)
		made[id] = on
		// The other instance reads it from the shared storage.
		if st, _ := other.status(t, id); st.OrderID != id || st.State != "pending" || st.Amount != "350.00" {
			t.Errorf("order %s made on %s reads on %s as %+v, want pending 350.00", id, on.name, other.name, st)
		}
	}
	for _, id := range ids {
		clusterPay(t, sb, id)
	}
	for _, id := range ids {
		clusterWaitDone(t, a, id, procRecoverWait)
	}
	// Let both reconcilers make a few more passes over the closed orders.
	time.Sleep(time.Second)

	clusterCheckOneReceiptEach(t, sb, ids)
	for _, id := range ids {
		o := a.record(t, id)
		if o.Receipt.Fiscal == nil {
			t.Errorf("order %s: done receipt without fiscal data", id)
		}
		if a.isOpen(id) {
			t.Errorf("order %s is done but still in the open index", id)
		}
		for _, s := range []*clusterShop{a, b} {
			var st struct {
				procStatus
				Receipt struct {
					OperationID string `json:"operation_id"`
					State       string `json:"state"`
				} `json:"receipt"`
			}
			procCall(t, "GET", s.url+"/pay?order="+id, nil, http.StatusOK, &st)
			if st.State != "paid" || st.Receipt.State != "done" || st.Receipt.OperationID != clusterSaleOperationID(id) {
				t.Errorf("order %s (made on %s) reads on %s as %s, receipt %s %q", id, made[id].name, s.name,
					st.State, st.Receipt.State, st.Receipt.OperationID)
			}
		}
	}
	t.Logf("receipts done by instance: %s %d, %s %d", a.name, clusterLogCount(procA, `receipt done`),
		b.name, clusterLogCount(procB, `receipt done`))
}

// TestStoppingOneInstanceLosesNothing proves that orders made on an
// instance that is then killed are finished by the other instance on the
// same storage: paid after the killed one is gone, they move to paid with
// one done receipt each. The kill comes in the middle of A's pass (held in
// a slow Pegas status probe), while A holds the reconciler's lease, so it
// also proves that the survivor, standing by until then, takes the lease
// over instead of waiting on it for ever.
func TestStoppingOneInstanceLosesNothing(t *testing.T) {
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	sb := procStartSandbox(t, dir)
	a := clusterNewShop(t, dir, storage, "shopA", sb)
	b := clusterNewShop(t, dir, storage, "shopB", sb)
	procA := a.start(t)

	const orders = 4
	var ids []string
	for i := 0; i < orders; i++ {
		ids = append(ids, a.checkout(t))
	}
	// A's passes now take seconds: each probe of an open order waits out
	// the 1s Pegas timeout. B starts while A holds the lease, and stands
	// by, so the lease is A's when A is killed.
	sb.fault(t, map[string]any{"api": "pegas", "op": "transaction/receipt/file", "mode": "latency", "latency": "5s"})
	time.Sleep(500 * time.Millisecond)
	procB := b.start(t)
	if leader := clusterLeader(t, storage, map[*clusterShop]*procCaddy{a: procA, b: procB}); leader != a {
		t.Fatalf("the lease is %s's, want A's: A started first", leader.name)
	}
	procA.kill(t)
	killed := time.Now()
	procCall(t, "DELETE", sb.url+"/control/faults", nil, http.StatusOK, nil)

	for _, id := range ids {
		clusterPay(t, sb, id)
	}
	for _, id := range ids {
		o := clusterWaitDone(t, b, id, procRecoverWait)
		if o.Receipt.Fiscal == nil {
			t.Errorf("order %s: done receipt without fiscal data", id)
		}
	}
	t.Logf("B finished A's orders %v after A was killed holding the lease", time.Since(killed).Round(100*time.Millisecond))
	clusterCheckOneReceiptEach(t, sb, ids)
	for _, id := range ids {
		if st, _ := b.status(t, id); st.State != "paid" || st.Amount != "350.00" {
			t.Errorf("order %s made on the killed instance reads on B as %+v, want paid 350.00", id, st)
		}
		if b.isOpen(id) {
			t.Errorf("order %s is done but still in the open index", id)
		}
	}
	// The log line follows the record's write: wait for it, then count.
	n := 0
	procEventually(t, procRecoverWait, "B's \"receipt done\" lines", func() (bool, string) {
		n = clusterLogCount(procB, `receipt done`)
		return n >= orders, fmt.Sprintf("%d of %d", n, orders)
	})
	if n != orders {
		t.Errorf("instance B logged %d \"receipt done\" lines, want %d", n, orders)
	}
}

// clusterLeader returns the shop whose instance holds the reconciler's
// lease on the file storage, waiting until one does: the one whose log
// says it took the lease under the holder name the lease record bears.
func clusterLeader(t *testing.T, storage string, procs map[*clusterShop]*procCaddy) *clusterShop {
	t.Helper()
	var leader *clusterShop
	procEventually(t, procRecoverWait, "an instance holding the reconciler's lease", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(storage, "kassa", "reconciler-lease"))
		if err != nil {
			return false, err.Error()
		}
		var lease struct {
			Holder string `json:"holder"`
		}
		if err := json.Unmarshal(b, &lease); err != nil || lease.Holder == "" {
			return false, fmt.Sprintf("lease %s (%v)", b, err)
		}
		for s, p := range procs {
			log, _ := os.ReadFile(p.log)
			for _, line := range strings.Split(string(log), "\n") {
				if strings.Contains(line, "lease taken") && strings.Contains(line, `"holder":"`+lease.Holder+`"`) {
					leader = s
				}
			}
		}
		return leader != nil, fmt.Sprintf("no log says it took the lease as %s", lease.Holder)
	})
	return leader
}

// TestLeaderTakeover proves that a standby takes over the reconciler's
// passes after the lease holder dies: two instances share one file
// storage, the lease holder is killed (SIGKILL), an order made before is
// paid at the sandbox with nobody polling, and the standby makes it paid
// with its receipt. How long the takeover took is logged, not asserted
// (the lease term is 5 s at these poll intervals).
func TestLeaderTakeover(t *testing.T) {
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	sb := procStartSandbox(t, dir)
	a := clusterNewShop(t, dir, storage, "shopA", sb)
	b := clusterNewShop(t, dir, storage, "shopB", sb)
	procs := map[*clusterShop]*procCaddy{a: a.start(t), b: b.start(t)}
	id := a.checkout(t)

	leader := clusterLeader(t, storage, procs)
	standby := a
	if leader == a {
		standby = b
	}
	procs[leader].kill(t)
	killed := time.Now()
	clusterPay(t, sb, id)
	o := clusterWaitDone(t, standby, id, procRecoverWait)
	t.Logf("%s killed holding the lease; %s made the order paid with its receipt %v later", leader.name, standby.name,
		time.Since(killed).Round(100*time.Millisecond))
	if o.Receipt.Fiscal == nil {
		t.Errorf("order %s: done receipt without fiscal data", id)
	}
	if clusterLeader(t, storage, map[*clusterShop]*procCaddy{standby: procs[standby]}) != standby {
		t.Errorf("%s finished the order without the lease", standby.name)
	}
	clusterCheckOneReceiptEach(t, sb, []string{id})
}
