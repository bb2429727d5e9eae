package caddytest

// The migration from one server's file storage to Redis, as the operations
// guide describes it (docs/operations.md, "Backups, restore and
// migration"): the shop stops cleanly, `caddy kassa migrate` copies its
// records, and a shop on Redis carries on with them. It reuses the proc,
// cluster and redis helpers; every helper here is prefixed migrate.

import (
	"bytes"
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-kassa/kassa"
)

// migrateIdempotencyKey is the pending order's Idempotency-Key.
const migrateIdempotencyKey = "migrate-test-key-0001"

// migrateCheckout buys qty tea on s under key, and returns the order's id.
func migrateCheckout(t *testing.T, s *clusterShop, qty int, key string) (int, string) {
	t.Helper()
	status, b, err := procDo("POST", s.url+"/pay", procCheckoutBody(qty), "Idempotency-Key", key)
	var st procStatus
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil || st.OrderID == "" {
		t.Fatalf("checkout on %s: status %d, %s, %v", s.name, status, b, err)
	}
	return status, st.OrderID
}

// migrateStop stops p cleanly through its admin API, as `caddy stop`
// does, and waits until it has exited.
func migrateStop(t *testing.T, s *clusterShop, p *procCaddy) {
	t.Helper()
	procCall(t, "POST", "http://"+s.admin+"/stop", nil, http.StatusOK, nil)
	procEventually(t, procReadyWait, s.name+" exits after a clean stop", func() (bool, string) {
		select {
		case <-p.done:
			return true, ""
		default:
			return false, "still running"
		}
	})
}

// migrateConfig writes the shop's config to dir/name for the migrate
// command, and returns its path.
func migrateConfig(t *testing.T, dir, name string, s *clusterShop) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(s.config), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// migrateFiles reads every kassa record of a file storage, by key.
func migrateFiles(t *testing.T, storage string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(filepath.Join(storage, "kassa"), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(storage, path)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(path)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestMigrateFileStorageToRedis proves the migration path: a shop on file
// storage takes a paid order (its receipt done) and a pending one, and
// stops cleanly (migrate refuses to copy while it runs); the command
// copies its records to Redis, each byte for byte, as the test checks on
// its own, key by key; a shop started on Redis reads the same orders
// through its admin API and the buyer's poll, replays the pending order's
// Idempotency-Key, and, once the buyer pays, makes the pending order paid
// with its receipt, while the paid one is not sent again.
func TestMigrateFileStorageToRedis(t *testing.T) {
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	srv := redisStartServer(t, dir)
	sb := procStartSandbox(t, dir)
	old := clusterNewShop(t, dir, storage, "old", sb)
	next := redisNewShop(t, dir, srv, "next", sb)
	from := migrateConfig(t, dir, "from.Caddyfile", old)
	to := migrateConfig(t, dir, "to.Caddyfile", next)
	procOld := old.start(t)

	paid := old.checkout(t)
	clusterPay(t, sb, paid)
	clusterWaitDone(t, old, paid, procRecoverWait)
	status, pending := migrateCheckout(t, old, 2, migrateIdempotencyKey)
	if status != http.StatusCreated {
		t.Fatalf("checkout under a new key: status %d", status)
	}
	ids := []string{paid, pending}
	before := map[string]*kassa.Order{}
	polls := map[string][]byte{}
	for _, id := range ids {
		before[id] = redisOrder(t, old, id)
		_, polls[id] = old.status(t, id)
	}

	// While the shop runs, it holds the reconciler's lease: refused.
	r := kassaCLI(t, "migrate", "--from", from, "--to", to, "--adapter", "caddyfile")
	if r.exit != 1 || !strings.Contains(r.stderr, "the source's reconciler lease is held by") {
		t.Fatalf("migrate while the shop runs: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	migrateStop(t, old, procOld)
	if b, err := os.ReadFile(filepath.Join(storage, "kassa", "reconciler-lease")); err != nil || !bytes.Contains(b, []byte(`"holder":""`)) {
		t.Fatalf("after a clean stop the lease reads %s, %v; want it free", b, err)
	}

	r = kassaCLI(t, "migrate", "--from", from, "--to", to, "--adapter", "caddyfile")
	if r.exit != 0 {
		t.Fatalf("migrate: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	for _, want := range []string{`(?m)^from: file_system ` + regexp.QuoteMeta(storage) + ` \(the kassa app's storage\)$`,
		`(?m)^to: +caddy\.storage\.redis \(the kassa app's storage\)$`, `(?m)^orders +2$`, `(?m)^open +1$`, `(?m)^created +2$`, `(?m)^idempotency +1$`,
		`(?m)^copied and verified \d+ records$`} {
		if !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Errorf("migrate's output has no %s:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout+r.stderr, "buyer@example.com") {
		t.Errorf("migrate printed a buyer's e-mail:\n%s%s", r.stdout, r.stderr)
	}

	// The test's own check, key by key: Redis holds every record of the
	// file storage, byte for byte, and no other.
	files := migrateFiles(t, storage)
	st := redisStorage(t, srv)
	ctx := context.Background()
	for key, want := range files {
		if got, err := st.Load(ctx, key); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s in Redis: %v, %d bytes; the file holds %d bytes", key, err, len(got), len(want))
		}
	}
	if keys, err := st.List(ctx, "kassa", true); err != nil || len(keys) != len(files) {
		t.Errorf("Redis holds %d kassa records (%v), the file storage %d", len(keys), err, len(files))
	}
	if !regexp.MustCompile(`(?m)^copied and verified ` + strconv.Itoa(len(files)) + ` records$`).MatchString(r.stdout) {
		t.Errorf("migrate copied other than the %d records on disk:\n%s", len(files), r.stdout)
	}

	// The shop on Redis reads the same orders.
	next.start(t)
	for _, id := range ids {
		o, was := redisOrder(t, next, id), before[id]
		if o.State != was.State || !o.Amount.Equal(was.Amount) || !o.UpdatedAt.Equal(was.UpdatedAt) ||
			o.Payment.ID != was.Payment.ID || (o.Receipt == nil) != (was.Receipt == nil) ||
			o.Receipt != nil && o.Receipt.State != was.Receipt.State {
			t.Errorf("order %s reads on Redis as %s %s (payment %+v, receipt %+v), before as %s %s (payment %+v, receipt %+v)",
				id, o.State, o.Amount, o.Payment, o.Receipt, was.State, was.Amount, was.Payment, was.Receipt)
		}
		if _, poll := next.status(t, id); !bytes.Equal(poll, polls[id]) {
			t.Errorf("the buyer's poll of %s reads differently:\nbefore %s\nafter  %s", id, polls[id], poll)
		}
	}
	if before[paid].State != kassa.OrderPaid || before[pending].State != kassa.OrderPending {
		t.Fatalf("before the migration: %s %s, want paid and pending", before[paid].State, before[pending].State)
	}
	if _, id := migrateCheckout(t, next, 2, migrateIdempotencyKey); id != pending {
		t.Errorf("the Idempotency-Key of order %s replayed on Redis gives order %s", pending, id)
	}

	// The buyer pays the pending order: the shop on Redis finishes it.
	clusterPay(t, sb, pending)
	procEventually(t, redisWait, "order "+pending+" paid with its receipt done on Redis", func() (bool, string) {
		return redisDone(t, next, pending)
	})
	clusterCheckOneReceiptEach(t, sb, ids)
	if o := redisOrder(t, next, pending); kassa.FormatAmount(o.Amount) != "700.00" {
		t.Errorf("the pending order paid on Redis is %s", o.Amount)
	}
}
