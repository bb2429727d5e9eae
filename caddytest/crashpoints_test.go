package caddytest

// Crash points: the shop runs as a process built with the kassa_failpoints
// tag and kills itself with SIGKILL at one named step of checkout or of the
// receipt flow (KASSA_FAILPOINTS); the test then starts it again on the same
// storage, beside a sandbox process that kept the providers' state, and
// checks that the order reaches its right final state exactly once: one
// invoice, one printed receipt, one logged transition. No sleep decides
// where the crash happens. They reuse the proc and cluster helpers;
// every helper here is prefixed crashPoint.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/caddy-kassa/kassa"
)

// crashPointShop is a shop with Pegas ("card" at /pay), CrystalPAY ("main"
// at /pay/main) and Smart Cashier receipts on its own sandbox; extra goes
// into its kassa block.
func crashPointShop(t *testing.T, extra string) (*clusterShop, *procSandbox) {
	t.Helper()
	dir := t.TempDir()
	sb := procStartSandbox(t, dir)
	return &clusterShop{procShop: procShopWith(t, dir, filepath.Join(dir, "storage"), "shop", sb, clusterReceipts(sb)+"\n"+extra)}, sb
}

// crashAt starts the shop with the failpoint armed, runs trigger (whose
// requests may die with the process), and waits until the process has
// killed itself at the failpoint. The failpoint is disarmed for the next
// start.
func crashAt(t *testing.T, s *clusterShop, point string, trigger func()) {
	t.Helper()
	s.failpoints = point
	p := s.start(t)
	s.failpoints = ""
	trigger()
	procEventually(t, procRecoverWait, "the shop killed at failpoint "+point, func() (bool, string) {
		select {
		case <-p.done:
			return true, ""
		default:
			return false, "still running"
		}
	})
	if want := "kassa: failpoint " + point + ": killing the process"; !strings.Contains(p.logTail(), want) {
		t.Fatalf("the shop exited (%v) without %q in its log", p.cmd.ProcessState, want)
	}
}

// crashPointPost posts a checkout of one tea to path with an
// Idempotency-Key and returns the status, the reply and the
// Idempotent-Replayed header; err is set when the shop died under it.
func crashPointPost(s *clusterShop, path, key string) (status int, st procStatus, replayed string, err error) {
	req, err := http.NewRequest("POST", s.url+path, strings.NewReader(`{"items":[{"sku":"tea","qty":1}],"email":"buyer@example.com"}`))
	if err != nil {
		return 0, st, "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := procHTTP.Do(req)
	if err != nil {
		return 0, st, "", err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&st)
	return resp.StatusCode, st, resp.Header.Get("Idempotent-Replayed"), err
}

// crashPointCheckout posts a checkout to path that the shop dies under at
// point, and returns the id of the one order it left on disk.
func crashPointCheckout(t *testing.T, s *clusterShop, point, path string) string {
	t.Helper()
	crashAt(t, s, point, func() {
		if status, st, _, err := crashPointPost(s, path, "crash-"+t.Name()); err == nil {
			t.Fatalf("the checkout answered %d %+v before the failpoint", status, st)
		}
	})
	ids := s.orderIDs(t)
	if len(ids) != 1 {
		t.Fatalf("after the crash: %d order records on disk, want 1: %v", len(ids), ids)
	}
	id := ids[0]
	if !s.isOpen(id) {
		t.Fatal("the interrupted order is not in the open index: no reconciler would find it")
	}
	return id
}

// crashPointTransitions counts the lines, in the logs of every process of
// the shop, that log the order's move to state.
func crashPointTransitions(t *testing.T, s *clusterShop, id string, state kassa.OrderState) int {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(s.dir, s.name+"-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range bytes.Split(b, []byte("\n")) {
			if bytes.Contains(line, []byte(`"msg":"order `+string(state)+`"`)) && bytes.Contains(line, []byte(id)) {
				n++
			}
		}
	}
	return n
}

// crashPointLoggedOnce checks that the order's move to state was logged
// exactly once. The line is written just after the record, so it is
// waited for rather than read once.
func crashPointLoggedOnce(t *testing.T, s *clusterShop, id string, state kassa.OrderState) {
	t.Helper()
	n := 0
	procEventually(t, procRecoverWait, "the order's move to "+string(state)+" in the log", func() (bool, string) {
		n = crashPointTransitions(t, s, id, state)
		return n > 0, "not logged"
	})
	if n != 1 {
		t.Errorf("the order's move to %s was logged %d times, want 1", state, n)
	}
}

// crashPointPegasInvoices counts the sandbox's Pegas invoices of an order.
func crashPointPegasInvoices(t *testing.T, sb *procSandbox, id string) (n int, state string) {
	t.Helper()
	for _, inv := range sb.state(t).Pegas.Invoices {
		if inv.OrderID == id {
			n, state = n+1, inv.State
		}
	}
	return n, state
}

// crashPointDepositStatuses lists the statuses of the Pegas deposit calls
// for an order, in order.
func crashPointDepositStatuses(t *testing.T, sb *procSandbox, id string) []int {
	t.Helper()
	var out []int
	for _, c := range sb.depositsOf(t, id) {
		out = append(out, c.Status)
	}
	return out
}

// crashPointRecovers restarts the shop after a crash in a Pegas checkout
// and checks that the reconciler recovers the order to pending with the
// deposit calls whose statuses are want (what names them), and that the
// order is then paid once.
func crashPointRecovers(t *testing.T, s *clusterShop, sb *procSandbox, id, what string, want ...int) {
	t.Helper()
	s.start(t)
	s.waitRecord(t, id, kassa.OrderPending, procRecoverWait)
	if got := crashPointDepositStatuses(t, sb, id); !slices.Equal(got, want) {
		t.Errorf("deposit calls: %v, want %s %v", got, what, want)
	}
	crashPointPaidOnce(t, s, sb, id)
}

// crashPointPaidOnce pays a Pegas order at the sandbox and checks that it
// ends paid with one receipt printed, one paid transition logged and one
// invoice.
func crashPointPaidOnce(t *testing.T, s *clusterShop, sb *procSandbox, id string) {
	t.Helper()
	clusterPay(t, sb, id)
	clusterWaitDone(t, s, id, procRecoverWait)
	crashPointDoneOnce(t, s, sb, id)
}

// crashPointDoneOnce checks that a paid order has exactly one receipt
// printed, one paid transition logged and one Pegas invoice, and has left
// the open index.
func crashPointDoneOnce(t *testing.T, s *clusterShop, sb *procSandbox, id string) {
	t.Helper()
	crashPointOneReceipt(t, sb, id)
	crashPointLoggedOnce(t, s, id, kassa.OrderPaid)
	if n, state := crashPointPegasInvoices(t, sb, id); n != 1 || state != "paid" {
		t.Errorf("the sandbox holds %d Pegas invoices for the order (last %s), want 1 paid", n, state)
	}
	if s.isOpen(id) {
		t.Error("the finished order is still in the open index")
	}
	if st, _ := s.status(t, id); st.State != "paid" || st.Amount != "350.00" {
		t.Errorf("the buyer sees %+v, want paid 350.00", st)
	}
}

// crashPointOneReceipt checks that the sandbox printed exactly one
// receipt, for the order, however often it was sent, and that every send
// was under the order's sale operation id.
func crashPointOneReceipt(t *testing.T, sb *procSandbox, id string) {
	t.Helper()
	opID := clusterSaleOperationID(id)
	for op := range clusterOneOperationEach(t, sb, []string{id}) {
		if op != opID {
			t.Errorf("formReceipt sent under operation id %q, want %q", op, opID)
		}
	}
}

// TestCrashPointsCheckout kills the shop at each step of a Pegas checkout
// and checks what the restarted shop makes of the order.
func TestCrashPointsCheckout(t *testing.T) {
	t.Run("checkout-created", func(t *testing.T) {
		// The order is stored in creating; the deposit was never sent. The
		// reconciler sends it (the first deposit for this order_id).
		t.Parallel()
		s, sb := crashPointShop(t, "")
		id := crashPointCheckout(t, s, "checkout-created", "/pay")
		if got := crashPointDepositStatuses(t, sb, id); len(got) != 0 {
			t.Fatalf("deposit calls before the restart: %v, want none", got)
		}
		crashPointRecovers(t, s, sb, id, "the reconciler's one", http.StatusOK)
	})
	t.Run("checkout-replied", func(t *testing.T) {
		// The invoice exists at Pegas, the shop never stored its reply. The
		// reconciler re-sends the deposit under the same order_id; Pegas
		// answers it is a duplicate, which recovers the order.
		t.Parallel()
		s, sb := crashPointShop(t, "")
		id := crashPointCheckout(t, s, "checkout-replied", "/pay")
		if o := s.record(t, id); o.State != kassa.OrderCreating {
			t.Fatalf("after the crash the order is %s, want creating", o.State)
		}
		crashPointRecovers(t, s, sb, id, "the checkout's and the recovery's duplicate", http.StatusOK, http.StatusBadRequest)
	})
	t.Run("checkout-saved", func(t *testing.T) {
		// The order is stored pending, the buyer got no answer. Their retry
		// with the same Idempotency-Key gets the same order, no new invoice.
		t.Parallel()
		s, sb := crashPointShop(t, "")
		id := crashPointCheckout(t, s, "checkout-saved", "/pay")
		s.start(t)
		status, st, replayed, err := crashPointPost(s, "/pay", "crash-"+t.Name())
		if err != nil || status != http.StatusCreated || st.OrderID != id || st.State != "pending" || replayed != "true" {
			t.Fatalf("the buyer's retry: %d %+v replayed=%q %v; want 201, order %s pending, replayed", status, st, replayed, err, id)
		}
		if got := crashPointDepositStatuses(t, sb, id); len(got) != 1 {
			t.Errorf("deposit calls: %v, want 1", got)
		}
		if ids := s.orderIDs(t); len(ids) != 1 {
			t.Errorf("%d order records, want 1", len(ids))
		}
		crashPointPaidOnce(t, s, sb, id)
	})
	t.Run("recovery-replied", func(t *testing.T) {
		// A crash in the checkout, then another in the reconciler that
		// recovers it: the third process still makes one invoice of it.
		t.Parallel()
		s, sb := crashPointShop(t, "")
		id := crashPointCheckout(t, s, "checkout-replied", "/pay")
		crashAt(t, s, "recovery-replied", func() {})
		if o := s.record(t, id); o.State != kassa.OrderCreating {
			t.Fatalf("after the second crash the order is %s, want creating", o.State)
		}
		crashPointRecovers(t, s, sb, id, "the checkout's and two duplicates",
			http.StatusOK, http.StatusBadRequest, http.StatusBadRequest)
	})
}

// TestCrashPointsCrystalPayCheckout kills the shop in a CrystalPAY
// checkout, which CrystalPAY cannot be asked about afterwards: the order
// fails once its checkout could no longer have stored it (past its
// order_ttl and the grace), and no second generate is ever sent.
func TestCrashPointsCrystalPayCheckout(t *testing.T) {
	for _, c := range []struct {
		point     string
		generates int
	}{
		{"checkout-created", 0},
		{"checkout-replied", 1},
	} {
		t.Run(c.point, func(t *testing.T) {
			t.Parallel()
			s, sb := crashPointShop(t, "order_ttl 1s")
			id := crashPointCheckout(t, s, c.point, "/pay/main")
			s.start(t)
			if o := s.waitRecord(t, id, kassa.OrderFailed, procRecoverWait); o.Error == "" {
				t.Error("the failed order does not say why")
			}
			if st, _ := s.status(t, id); st.State != "failed" {
				t.Errorf("the buyer sees %+v, want failed", st)
			}
			if n := len(sb.calls(t, "crystalpay", "generate")); n != c.generates {
				t.Errorf("%d generate calls, want %d", n, c.generates)
			}
			crashPointLoggedOnce(t, s, id, kassa.OrderFailed)
			if s.isOpen(id) {
				t.Error("the failed order is still in the open index")
			}
		})
	}
}

// TestCrashPointsReceipt kills the shop at each step between a payment and
// its printed receipt: the restarted shop prints exactly one receipt.
func TestCrashPointsReceipt(t *testing.T) {
	for _, c := range []struct {
		point string
		sends int // formReceipt calls by the end
	}{
		{"paid-saved", 1},     // paid and receipt sending stored; nothing sent
		{"receipt-sent", 2},   // sent and accepted, not recorded: sent again under its operation id
		{"receipt-queued", 1}, // recorded as queued: the next shop asks its status
	} {
		t.Run(c.point, func(t *testing.T) {
			t.Parallel()
			s, sb := crashPointShop(t, "")
			var id string
			crashAt(t, s, c.point, func() {
				id = s.checkout(t)
				clusterPay(t, sb, id)
			})
			o := s.record(t, id)
			if o.State != kassa.OrderPaid || o.Receipt == nil || !s.isOpen(id) {
				t.Fatalf("after the crash: order %s, receipt %+v, open %v; want paid, a receipt under way, open",
					o.State, o.Receipt, s.isOpen(id))
			}
			s.start(t)
			clusterWaitDone(t, s, id, procRecoverWait)
			crashPointDoneOnce(t, s, sb, id)
			if n := len(clusterFormReceipts(t, sb)); n != c.sends {
				t.Errorf("%d formReceipt calls, want %d", n, c.sends)
			}
		})
	}
}

// TestCrashPointExpiry kills the shop after it cancelled an expired
// order's invoice but before it stored the order expired: the restarted
// shop cancels again (Pegas takes that as done) and expires the order once.
func TestCrashPointExpiry(t *testing.T) {
	s, sb := crashPointShop(t, "order_ttl 1s")
	var id string
	crashAt(t, s, "expiry-cancelled", func() { id = s.checkout(t) })
	if o := s.record(t, id); o.State != kassa.OrderPending {
		t.Fatalf("after the crash the order is %s, want pending", o.State)
	}
	if n, state := crashPointPegasInvoices(t, sb, id); n != 1 || state != "cancelled" {
		t.Fatalf("the sandbox holds %d invoices (last %s), want 1 cancelled", n, state)
	}
	s.start(t)
	s.waitRecord(t, id, kassa.OrderExpired, procRecoverWait)
	crashPointLoggedOnce(t, s, id, kassa.OrderExpired)
	if n, state := crashPointPegasInvoices(t, sb, id); n != 1 || state != "cancelled" {
		t.Errorf("the sandbox holds %d invoices (last %s), want 1 cancelled", n, state)
	}
	if st, _ := s.status(t, id); st.State != "expired" {
		t.Errorf("the buyer sees %+v, want expired", st)
	}
	if s.isOpen(id) {
		t.Error("the expired order is still in the open index")
	}
}
