package caddytest

// Redis cluster tests: two shop processes keep their orders in one Redis
// server through the ecosystem's Redis storage module
// (github.com/pberkel/caddy-storage-redis, caddy.storage.redis), as two
// instances of a cluster behind a load balancer do, beside a sandbox
// process that issues the receipts; and the module's lock contract that
// the reconciler and the order locks rely on. They reuse the proc helpers
// of crash_test.go and the cluster helpers of cluster_test.go; every
// helper here is prefixed redis. A test starts its own redis-server
// (redis_server_test.go).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	_ "github.com/pberkel/caddy-storage-redis"

	"github.com/caddy-kassa/kassa"
)

// redisWait bounds the waits for orders to finish: the reconciler's
// grace, a killed instance's Redis lock running out and its lease taken
// over (5s each), and the receipts, with room for a loaded machine.
const redisWait = 60 * time.Second

// redisKeyPrefix is the key prefix the shops share.
const redisKeyPrefix = "kassa-test"

// redisStorageConfig is the kassa block's storage option for srv.
func redisStorageConfig(srv *redisServer) string {
	return fmt.Sprintf("redis {\n\t\t\taddress %s\n\t\t\tkey_prefix %s\n\t\t}", srv.addr, redisKeyPrefix)
}

// redisNewShop prepares shop instance name on srv, with its Pegas account
// "card" (at /pay) and Smart Cashier receipts served by sb.
func redisNewShop(t *testing.T, dir string, srv *redisServer, name string, sb *procSandbox) *clusterShop {
	return &clusterShop{procShop: procShopOn(t, dir, redisStorageConfig(srv), name, sb, clusterReceipts(sb))}
}

// redisOpen provisions the Redis storage module on srv, as one instance
// of the cluster sees it; stop cleans it up (closing its client), as the
// instance's end would. The test cleans it up if stop was not called.
func redisOpen(t *testing.T, srv *redisServer) (st certmagic.Storage, stop func()) {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	raw, err := json.Marshal(map[string]any{"address": []string{srv.addr}, "key_prefix": redisKeyPrefix})
	if err != nil {
		t.Fatal(err)
	}
	mod, err := ctx.LoadModuleByID("caddy.storage.redis", raw)
	if err != nil {
		t.Fatal(err)
	}
	st, err = mod.(caddy.StorageConverter).CertMagicStorage()
	if err != nil {
		t.Fatal(err)
	}
	return st, cancel
}

// redisStorage opens the shops' storage on srv, as the test's own view of
// what they share.
func redisStorage(t *testing.T, srv *redisServer) certmagic.Storage {
	t.Helper()
	st, _ := redisOpen(t, srv)
	return st
}

// redisOrder reads an order, whole, through the instance's admin API.
func redisOrder(t *testing.T, s *clusterShop, id string) *kassa.Order {
	t.Helper()
	var o kassa.Order
	procCall(t, "GET", "http://"+s.admin+"/kassa/orders/"+id, nil, http.StatusOK, &o)
	return &o
}

// redisDone reports whether an order read through s's admin API is paid
// with its sale receipt done, saying where it stands if not. A closed
// order in another state, or a failed receipt, fails the test at once.
func redisDone(t *testing.T, s *clusterShop, id string) (bool, string) {
	t.Helper()
	o := redisOrder(t, s, id)
	if o.State != kassa.OrderPaid && !o.State.Open() {
		t.Fatalf("order %s is %s (error %q), want paid", id, o.State, o.Error)
	}
	if o.Receipt == nil {
		return false, fmt.Sprintf("%s: state %s, no receipt", id, o.State)
	}
	if o.Receipt.State == kassa.ReceiptFailed {
		t.Fatalf("order %s: receipt failed: %s", id, o.Receipt.Error)
	}
	return o.State == kassa.OrderPaid && o.Receipt.State == kassa.ReceiptDone,
		fmt.Sprintf("%s: state %s, receipt %s", id, o.State, o.Receipt.State)
}

// redisWaitAllDone waits until every order reads as paid with its receipt
// done on s.
func redisWaitAllDone(t *testing.T, s *clusterShop, ids []string) {
	t.Helper()
	procEventually(t, redisWait, fmt.Sprintf("%d orders paid with their receipts done, read on %s", len(ids), s.name),
		func() (bool, string) {
			for _, id := range ids {
				if done, state := redisDone(t, s, id); !done {
					return false, state
				}
			}
			return true, ""
		})
}

// redisCountDone counts the orders that read as paid with their receipt
// done on s.
func redisCountDone(t *testing.T, s *clusterShop, ids []string) int {
	t.Helper()
	n := 0
	for _, id := range ids {
		if done, _ := redisDone(t, s, id); done {
			n++
		}
	}
	return n
}

// redisCheckClosed checks that the shared storage holds every order paid,
// done and out of the open index, and the same record on each instance.
func redisCheckClosed(t *testing.T, st certmagic.Storage, ids []string, shops ...*clusterShop) {
	t.Helper()
	ctx := context.Background()
	for _, id := range ids {
		b, err := st.Load(ctx, "kassa/orders/"+id+".json")
		if err != nil {
			t.Errorf("order %s in Redis: %v", id, err)
			continue
		}
		var stored kassa.Order
		if err := json.Unmarshal(b, &stored); err != nil {
			t.Fatalf("order %s in Redis: %v: %s", id, err, b)
		}
		if stored.State != kassa.OrderPaid || stored.Receipt == nil || stored.Receipt.State != kassa.ReceiptDone ||
			stored.Receipt.Fiscal == nil {
			t.Errorf("order %s in Redis is %s with receipt %+v, want paid with a done receipt", id, stored.State, stored.Receipt)
		}
		if st.Exists(ctx, "kassa/open/"+id) {
			t.Errorf("order %s is done but still in the open index", id)
		}
		for _, s := range shops {
			if o := redisOrder(t, s, id); !o.UpdatedAt.Equal(stored.UpdatedAt) || o.State != stored.State {
				t.Errorf("order %s reads on %s as %s updated %v, but Redis holds %s updated %v", id, s.name,
					o.State, o.UpdatedAt, stored.State, stored.UpdatedAt)
			}
		}
	}
	if open, err := st.List(ctx, "kassa/open", false); err != nil && !errors.Is(err, fs.ErrNotExist) || len(open) > 0 {
		t.Errorf("open index after every order closed: %q, %v", open, err)
	}
}

// TestRedisOrderMovesBetweenInstances proves that an order made on one
// instance is read on the other and, once the first is gone, reconciled by
// the other: paid at the sandbox, it ends paid with one done receipt.
func TestRedisOrderMovesBetweenInstances(t *testing.T) {
	dir := t.TempDir()
	srv := redisStartServer(t, dir)
	sb := procStartSandbox(t, dir)
	a := redisNewShop(t, dir, srv, "shopA", sb)
	b := redisNewShop(t, dir, srv, "shopB", sb)
	procA := a.start(t)
	id := a.checkout(t)
	procB := b.start(t)

	// B serves A's order to the buyer and to the operator.
	if st, _ := b.status(t, id); st.OrderID != id || st.State != "pending" || st.Amount != "350.00" {
		t.Fatalf("order %s made on A reads on B as %+v, want pending 350.00", id, st)
	}
	if o := redisOrder(t, b, id); o.State != kassa.OrderPending || o.Account != "card" || kassa.FormatAmount(o.Amount) != "350.00" {
		t.Fatalf("order %s made on A reads on B's admin API as %s %s %s", id, o.State, o.Account, o.Amount)
	}

	// A goes away (with the reconciler's lease, if it held it then), and
	// only B can finish the order, once it holds the lease.
	procA.kill(t)
	clusterPay(t, sb, id)
	procEventually(t, redisWait, "order "+id+" paid with its receipt done, read on B", func() (bool, string) {
		return redisDone(t, b, id)
	})
	// The line is logged just after the write the poll above saw.
	procEventually(t, redisWait, "B's log line of the receipt", func() (bool, string) {
		n := clusterLogCount(procB, `"receipt done"`)
		return n == 1, fmt.Sprintf("B logged %d \"receipt done\" lines, want 1", n)
	})
	clusterCheckOneReceiptEach(t, sb, []string{id})
	redisCheckClosed(t, redisStorage(t, srv), []string{id}, b)
	if st, _ := b.status(t, id); st.State != "paid" {
		t.Errorf("the buyer's poll on B says %s, want paid", st.State)
	}
}

// TestRedisTwoInstancesOneReceiptEach proves that two running instances
// on one Redis, polling every 200ms, issue exactly one Smart Cashier
// operation per paid order and send each receipt once: the lease holder
// makes the passes, and every step re-reads the order under its lock.
func TestRedisTwoInstancesOneReceiptEach(t *testing.T) {
	dir := t.TempDir()
	srv := redisStartServer(t, dir)
	sb := procStartSandbox(t, dir)
	a := redisNewShop(t, dir, srv, "shopA", sb)
	b := redisNewShop(t, dir, srv, "shopB", sb)
	procA, procB := a.start(t), b.start(t)

	const orders = 10
	var ids []string
	for i := range orders {
		on, other := a, b
		if i%2 == 1 {
			on, other = b, a
		}
		id := on.checkout(t)
		ids = append(ids, id)
		if st, _ := other.status(t, id); st.OrderID != id || st.State != "pending" || st.Amount != "350.00" {
			t.Errorf("order %s made on %s reads on %s as %+v, want pending 350.00", id, on.name, other.name, st)
		}
	}
	for _, id := range ids {
		clusterPay(t, sb, id)
	}
	redisWaitAllDone(t, a, ids)
	// Let both reconcilers make a few more passes over the closed orders.
	time.Sleep(time.Second)

	clusterCheckOneReceiptEach(t, sb, ids)
	redisCheckClosed(t, redisStorage(t, srv), ids, a, b)
	doneA, doneB := clusterLogCount(procA, `"receipt done"`), clusterLogCount(procB, `"receipt done"`)
	if doneA+doneB != orders {
		t.Errorf("the instances logged %d and %d \"receipt done\" lines, want %d in all", doneA, doneB, orders)
	}
	t.Logf("receipts done by instance: %s %d, %s %d", a.name, doneA, b.name, doneB)
}

// TestRedisKillMidFlow proves that killing an instance in the middle of
// its work loses nothing: a batch of orders is paid, receipts are slow,
// and the instance working on them is killed (SIGKILL) while it holds the
// reconciler's lease. The survivor takes the lease over once it has seen
// it unrenewed for the term (5s) and finishes every order, with one Smart
// Cashier operation each.
func TestRedisKillMidFlow(t *testing.T) {
	dir := t.TempDir()
	srv := redisStartServer(t, dir)
	sb := procStartSandbox(t, dir)
	a := redisNewShop(t, dir, srv, "shopA", sb)
	b := redisNewShop(t, dir, srv, "shopB", sb)
	procs := map[*clusterShop]*procCaddy{a: a.start(t), b: b.start(t)}

	const orders = 10
	var ids []string
	for i := range orders {
		on := a
		if i%2 == 1 {
			on = b
		}
		ids = append(ids, on.checkout(t))
	}
	// Each receipt takes 300ms to send (the shops' Smart Cashier timeout
	// is 1s), so the batch's receipts take the lease holder's workers a
	// while.
	sb.fault(t, map[string]any{"api": "smartcashier", "op": "formReceipt", "mode": "latency", "latency": "300ms"})
	for _, id := range ids {
		clusterPay(t, sb, id)
	}

	// The instance that marks the first order paid (nobody polls) holds
	// the lease and is at work on the batch: kill it.
	var victim, survivor *clusterShop
	procEventually(t, redisWait, "an instance marks an order paid", func() (bool, string) {
		switch {
		case clusterLogCount(procs[a], `"order paid"`) > 0:
			victim, survivor = a, b
		case clusterLogCount(procs[b], `"order paid"`) > 0:
			victim, survivor = b, a
		}
		return victim != nil, "no \"order paid\" in either log"
	})
	procs[victim].kill(t)
	killed := time.Now()
	doneAtKill := redisCountDone(t, survivor, ids)
	if doneAtKill == orders {
		t.Fatalf("every receipt was done before %s was killed: the test did not kill mid-flow", victim.name)
	}

	redisWaitAllDone(t, survivor, ids)
	t.Logf("%s killed with %d of %d receipts done; %s finished the rest %v later", victim.name, doneAtKill, orders,
		survivor.name, time.Since(killed).Round(100*time.Millisecond))

	sends := clusterOneOperationEach(t, sb, ids)
	// A receipt whose send the kill interrupted is sent again under the
	// same operation id (the sandbox keeps one operation). The victim's
	// workers had up to poll_concurrency (16) sends in flight, one per
	// receipt: each is sent at most twice, and only one not done at the
	// kill.
	var resent []string
	for _, id := range ids {
		if n := sends[clusterSaleOperationID(id)]; n > 2 {
			t.Errorf("receipt of order %s sent %d times: more than the send in flight at the kill and the survivor's", id, n)
		} else if n == 2 {
			resent = append(resent, id)
		}
	}
	if len(resent) > orders-doneAtKill {
		t.Errorf("%d receipts sent again after the kill, but only %d were not done then", len(resent), orders-doneAtKill)
	}
	t.Logf("%d receipts sent again after the kill (in flight then)", len(resent))
	redisCheckClosed(t, redisStorage(t, srv), ids, survivor)
}

// redisLockName is the lock the contract tests take: the one the
// reconciler's lease is read and written under.
const redisLockName = "kassa/reconciler"

// redisLockWithin tries to take the lock for d, reporting whether it got
// it. The module reports a context that ends as its own error.
func redisLockWithin(t *testing.T, st certmagic.Storage, d time.Duration) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	err := st.Lock(ctx, redisLockName)
	if err != nil && ctx.Err() == nil {
		t.Fatalf("Lock(%s): %v", redisLockName, err)
	}
	return err == nil
}

// TestRedisLockContract checks what caddy-kassa relies on in the Redis
// module's locks (a key set only if absent, with a random token and a 5s
// time to live that the holder renews every 3s; another try every 1s):
// a held lock excludes other instances and other goroutines of its own
// (not reentrant), stays held past its time to live, cannot be released
// by an instance that does not hold it, and a lost lock (a holder that
// died, or stalled past the time to live) is free again, while its old
// holder's late Unlock or renewal leaves the next holder's alone.
func TestRedisLockContract(t *testing.T) {
	ctx := context.Background()
	t.Run("held", func(t *testing.T) {
		srv := redisStartServer(t, t.TempDir())
		a, b := redisStorage(t, srv), redisStorage(t, srv)
		if err := a.Lock(ctx, redisLockName); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second) // past the time to live: the holder renews it
		if redisLockWithin(t, b, 1500*time.Millisecond) {
			t.Fatal("another instance took a held lock")
		}
		if redisLockWithin(t, a, 1500*time.Millisecond) {
			t.Fatal("the holder took its own lock again: it is reentrant")
		}
		if err := b.Unlock(ctx, redisLockName); err != nil {
			t.Logf("Unlock by an instance that does not hold the lock: %v", err)
		}
		if redisLockWithin(t, b, 1500*time.Millisecond) {
			t.Fatal("an instance that did not hold the lock released it")
		}
		if err := a.Unlock(ctx, redisLockName); err != nil {
			t.Fatal(err)
		}
		if !redisLockWithin(t, b, 5*time.Second) {
			t.Fatal("the lock is not free after its holder's Unlock")
		}
		if err := b.Unlock(ctx, redisLockName); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("lost", func(t *testing.T) {
		srv := redisStartServer(t, t.TempDir())
		a, b, c := redisStorage(t, srv), redisStorage(t, srv), redisStorage(t, srv)
		if err := a.Lock(ctx, redisLockName); err != nil {
			t.Fatal(err)
		}
		// A's lock runs out, as it does when A stalls past the time to live.
		key := redisKeyPrefix + "/locks/" + redisLockName
		if reply, err := srv.do("DEL", key); err != nil || reply != ":1" {
			t.Fatalf("DEL %s = %q, %v: the module's lock key is not where the test looks", key, reply, err)
		}
		if !redisLockWithin(t, b, 5*time.Second) {
			t.Fatal("a lost lock is not free")
		}
		time.Sleep(4 * time.Second) // A's renewal runs, and must find the lock another's
		if err := a.Unlock(ctx, redisLockName); err == nil {
			t.Error("the old holder's Unlock of a lost lock reports no error")
		}
		if redisLockWithin(t, c, 1500*time.Millisecond) {
			t.Fatal("the old holder's renewal or Unlock released the new holder's lock")
		}
		if err := b.Unlock(ctx, redisLockName); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("holder dies", func(t *testing.T) {
		srv := redisStartServer(t, t.TempDir())
		dead, stop := redisOpen(t, srv)
		b := redisStorage(t, srv)
		if err := dead.Lock(ctx, redisLockName); err != nil {
			t.Fatal(err)
		}
		stop() // its client closed: it can no longer renew, as a killed instance
		died := time.Now()
		if !redisLockWithin(t, b, 15*time.Second) {
			t.Fatal("a dead holder's lock never ran out")
		}
		t.Logf("a dead holder's lock was taken %v after it died", time.Since(died).Round(100*time.Millisecond))
		if err := b.Unlock(ctx, redisLockName); err != nil {
			t.Fatal(err)
		}
	})
}
