package caddytest

// Notification process tests: the shop runs as real processes (the
// kassa_failpoints build) beside a sandbox process and posts its events to
// a receiver in the test process, which checks every signature on its own
// (crypto/hmac over the raw body) and records every delivery. They prove
// that a kill -9 between a payment and its delivery loses no event, that
// two instances on one storage deliver each event without losing any,
// that a receiver answering 500 for a while gets the same event later,
// and that the secret is in no file the processes write. They reuse the
// proc, cluster and crashPoint helpers; every helper here is prefixed
// notify.

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-kassa/kassa"
)

// notifySecretEnv is the environment variable the shop reads its
// receiver's secret from.
const notifySecretEnv = "KASSA_NOTIFY_SECRET"

// notifyTolerance is how far a signature's t may be from the receiver's
// clock, as the reference receiver allows.
const notifyTolerance = 5 * time.Minute

// notifyDelivery is one post the receiver got.
type notifyDelivery struct {
	id     string // Kassa-Event-Id
	body   []byte
	at     time.Time
	status int    // what the receiver answered
	bad    string // why its signature or body is wrong; "" when right
}

// notifyReceiver is a shop's receiver: it verifies each post's signature
// with its own HMAC, records it, and answers what answer says for the
// post's nth attempt (1 for the first) of its event id, delay after the
// post arrived.
type notifyReceiver struct {
	*httptest.Server
	secret string
	answer func(n int) int
	delay  time.Duration

	mu         sync.Mutex
	deliveries []notifyDelivery
}

// notifyNewReceiver starts a receiver that signs with a fresh secret and
// answers 204 unless answer says otherwise.
func notifyNewReceiver(t *testing.T, answer func(n int) int) *notifyReceiver {
	t.Helper()
	key := make([]byte, 16)
	if _, err := rand.Read(key); err != nil {
		t.Fatal(err)
	}
	if answer == nil {
		answer = func(int) int { return http.StatusNoContent }
	}
	r := &notifyReceiver{secret: "whsec-" + hex.EncodeToString(key), answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *notifyReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	d := notifyDelivery{id: req.Header.Get("Kassa-Event-Id"), body: body, at: time.Now()}
	switch {
	case err != nil:
		d.bad = "reading the body: " + err.Error()
	case req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json":
		d.bad = fmt.Sprintf("%s with Content-Type %q", req.Method, req.Header.Get("Content-Type"))
	default:
		d.bad = notifyVerify(r.secret, req.Header.Get("Kassa-Signature"), body, d.at)
	}
	if d.bad == "" {
		var ev struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &ev); err != nil || ev.ID != d.id {
			d.bad = fmt.Sprintf("body's id %q (%v), Kassa-Event-Id %q", ev.ID, err, d.id)
		}
	}
	r.mu.Lock()
	n := 1
	for _, prev := range r.deliveries {
		if prev.id == d.id {
			n++
		}
	}
	d.status = r.answer(n)
	if d.bad != "" {
		d.status = http.StatusBadRequest
	}
	r.deliveries = append(r.deliveries, d)
	r.mu.Unlock()
	time.Sleep(r.delay)
	w.WriteHeader(d.status)
}

// notifyVerify checks a Kassa-Signature as a receiver does, independently
// of the shop's code: t within notifyTolerance of now, and v1 the hex
// HMAC-SHA256 with the secret of "<t>." and the raw body, compared in
// constant time. It returns why the signature is wrong, or "".
func notifyVerify(secret, header string, body []byte, now time.Time) string {
	var ts, v1 string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			v1 = v
		}
	}
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Sprintf("Kassa-Signature %q: no t", header)
	}
	if d := now.Sub(time.Unix(unix, 0)); d > notifyTolerance || d < -notifyTolerance {
		return fmt.Sprintf("Kassa-Signature %q: t is %v from now", header, d)
	}
	got, err := hex.DecodeString(v1)
	if err != nil {
		return fmt.Sprintf("Kassa-Signature %q: v1 is not hex", header)
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(ts + "."))
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return fmt.Sprintf("Kassa-Signature %q does not verify", header)
	}
	return ""
}

// all returns the deliveries so far, oldest first.
func (r *notifyReceiver) all() []notifyDelivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notifyDelivery(nil), r.deliveries...)
}

// of returns the deliveries of event id so far, oldest first.
func (r *notifyReceiver) of(id string) []notifyDelivery {
	var out []notifyDelivery
	for _, d := range r.all() {
		if d.id == id {
			out = append(out, d)
		}
	}
	return out
}

// delivered reports whether event id got a 2xx answer.
func (r *notifyReceiver) delivered(id string) bool {
	for _, d := range r.of(id) {
		if d.status >= 200 && d.status < 300 {
			return true
		}
	}
	return false
}

// notifyBlock is the kassa block's notify option for r, with more options
// (events, timeout) in its block.
func notifyBlock(r *notifyReceiver, more string) string {
	return fmt.Sprintf(`		notify %s/hook {
			secret {env.%s}
			%s
		}`, r.URL, notifySecretEnv, more)
}

// notifyShop prepares a shop on its own sandbox whose events go to r: with
// Smart Cashier receipts when receipts is set. It runs at debug level, so
// that the secret check reads every line the shop can write.
func notifyShop(t *testing.T, dir, storage, name string, sb *procSandbox, r *notifyReceiver, receipts bool, more string) *clusterShop {
	t.Helper()
	extra := notifyBlock(r, more)
	if receipts {
		extra = clusterReceipts(sb) + "\n" + extra
	}
	s := &clusterShop{procShop: procShopWith(t, dir, storage, name, sb, extra)}
	s.config = strings.Replace(s.config, "\tauto_https off", "\tdebug\n\tauto_https off", 1)
	s.env = []string{notifySecretEnv + "=" + r.secret}
	return s
}

// notifyEvent is an event's file on disk, as far as these tests read it.
type notifyEvent struct {
	ID      string          `json:"id"`
	Body    json.RawMessage `json:"body"`
	Targets []struct {
		State      string `json:"state"`
		Attempts   int    `json:"attempts"`
		LastStatus int    `json:"last_status"`
	} `json:"targets"`
}

// notifyEventFile reads event id's file from the shop's storage; ok is
// false when there is none.
func notifyEventFile(t *testing.T, s *clusterShop, id string) (f notifyEvent, ok bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.storage, "kassa", "events", id+".json"))
	if os.IsNotExist(err) {
		return f, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("event file %s: %v: %s", id, err, b)
	}
	return f, true
}

// notifyOutbox lists the outbox entries in the shop's storage.
func notifyOutbox(t *testing.T, s *clusterShop) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s.storage, "kassa", "outbox", "*"))
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// notifyWaitDelivered waits until the receiver has a 2xx delivery of each
// event of the orders ids, as their records name them, and the shop has
// recorded them delivered (its outbox is empty); it returns the events'
// ids and types.
func notifyWaitDelivered(t *testing.T, s *clusterShop, r *notifyReceiver, limit time.Duration, ids ...string) map[string]string {
	t.Helper()
	events := map[string]string{}
	for _, id := range ids {
		for _, ref := range s.record(t, id).Events {
			events[ref.ID] = string(ref.Type)
		}
	}
	procEventually(t, limit, "every event delivered and its delivery recorded", func() (bool, string) {
		var missing []string
		for id := range events {
			if !r.delivered(id) {
				missing = append(missing, id)
			}
		}
		outbox := notifyOutbox(t, s)
		return len(missing) == 0 && len(outbox) == 0,
			fmt.Sprintf("not delivered: %v; %d outbox entries", missing, len(outbox))
	})
	return events
}

// notifyCheckDeliveries checks every delivery the receiver got: a valid
// signature, the body of each event id the same on every delivery and the
// one its file holds, and the event's type and order in the body. It
// returns how many deliveries each event had.
func notifyCheckDeliveries(t *testing.T, s *clusterShop, r *notifyReceiver, events map[string]string) map[string]int {
	t.Helper()
	count := map[string]int{}
	for _, d := range r.all() {
		count[d.id]++
		if d.bad != "" {
			t.Errorf("delivery of %s: %s", d.id, d.bad)
			continue
		}
		typ, ok := events[d.id]
		if !ok {
			t.Errorf("delivery of %s, which no order of the test names", d.id)
			continue
		}
		f, ok := notifyEventFile(t, s, d.id)
		if !ok {
			t.Errorf("event %s was delivered but has no file", d.id)
			continue
		}
		if !bytes.Equal(d.body, f.Body) {
			t.Errorf("event %s: a delivery's body differs from the stored one:\ngot    %s\nstored %s", d.id, d.body, f.Body)
		}
		var body struct {
			Type  string `json:"type"`
			Order struct {
				OrderID string `json:"order_id"`
				Amount  string `json:"amount"`
			} `json:"order"`
		}
		if err := json.Unmarshal(d.body, &body); err != nil || body.Type != typ || body.Order.Amount != "350.00" ||
			!strings.HasPrefix(d.id, body.Order.OrderID+"-") {
			t.Errorf("event %s (%s): body %s (%v)", d.id, typ, d.body, err)
		}
	}
	return count
}

// notifyNoSecret checks that the secret is in no file under dir: the
// processes' logs (at debug level), their Caddyfiles and homes, and the
// storage with its event files.
func notifyNoSecret(t *testing.T, dir, secret string) {
	t.Helper()
	logs := 0
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".log") {
			logs++
		}
		if bytes.Contains(b, []byte(secret)) {
			t.Errorf("the notify secret is in %s", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if logs == 0 {
		t.Fatal("no process log to check for the secret")
	}
}

// TestNotifyCrash kills the shop with SIGKILL after a payment is stored
// and before its event reaches the receiver, with the receiver up: at
// event-recorded the order's record names the event but its file is not
// written; at paid-saved the file is written and the deliverer was only
// just woken. The restarted shop delivers order.paid and receipt.done,
// each under one id and one body, signed.
func TestNotifyCrash(t *testing.T) {
	for _, point := range []string{"event-recorded", "paid-saved"} {
		t.Run(point, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			sb := procStartSandbox(t, dir)
			r := notifyNewReceiver(t, nil)
			s := notifyShop(t, dir, filepath.Join(dir, "storage"), "shop", sb, r, true, "")
			var id string
			crashAt(t, s, point, func() {
				id = s.checkout(t)
				clusterPay(t, sb, id)
			})
			o := s.record(t, id)
			if o.State != kassa.OrderPaid || len(o.Events) != 1 || o.Events[0].Type != "order.paid" {
				t.Fatalf("after the crash: order %s with events %+v; want paid with its order.paid", o.State, o.Events)
			}
			paid := o.Events[0].ID
			_, written := notifyEventFile(t, s, paid)
			if point == "event-recorded" && written {
				t.Fatal("the event's file was written before the failpoint that precedes it")
			}
			if point == "paid-saved" && !written {
				t.Fatal("the event's file was not written with the paid order")
			}
			t.Logf("before the restart the receiver had %d deliveries of %s", len(r.of(paid)), paid)

			s.start(t)
			clusterWaitDone(t, s, id, procRecoverWait)
			events := notifyWaitDelivered(t, s, r, procRecoverWait, id)
			done := s.record(t, id).Events
			if len(done) != 2 || done[0].ID != paid || done[1].Type != "receipt.done" ||
				len(events) != 2 || events[paid] != "order.paid" || events[done[1].ID] != "receipt.done" {
				t.Errorf("the order's events: %v (record %+v), want its order.paid %s and a receipt.done", events, done, paid)
			}
			for ev, n := range notifyCheckDeliveries(t, s, r, events) {
				t.Logf("%s delivered %d times", ev, n)
			}
			notifyNoSecret(t, dir, r.secret)
		})
	}
}

// TestNotifyTwoInstances runs two shop instances on one file storage, both
// delivering to one receiver: every event of every order is delivered, and
// none twice, since a lease (the receiver's timeout and 5s) keeps the
// other instance off an event while one posts it, and this receiver
// answers at once, so no lease ever runs out.
func TestNotifyTwoInstances(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	storage := filepath.Join(dir, "storage")
	sb := procStartSandbox(t, dir)
	r := notifyNewReceiver(t, nil)
	// Each post takes a while, so that the other instance's passes (every
	// second) come upon events under a lease.
	r.delay = 300 * time.Millisecond
	a := notifyShop(t, dir, storage, "shopA", sb, r, true, "")
	b := notifyShop(t, dir, storage, "shopB", sb, r, true, "")
	procA, procB := a.start(t), b.start(t)

	const orders = 6
	var ids []string
	made := map[string]*clusterShop{}
	for i := 0; i < orders; i++ {
		on := a
		if i%2 == 1 {
			on = b
		}
		id := on.checkout(t)
		ids = append(ids, id)
		made[id] = on
	}
	for _, id := range ids {
		clusterPay(t, sb, id)
	}
	// Each buyer's page polls the instance that made the order, so both
	// instances notice payments (and write events), beside the
	// reconcilers.
	procEventually(t, procRecoverWait, "the buyers see their orders paid", func() (bool, string) {
		for _, id := range ids {
			if st, _ := made[id].status(t, id); st.State != "paid" {
				return false, fmt.Sprintf("order %s on %s: %s", id, made[id].name, st.State)
			}
		}
		return true, ""
	})
	for _, id := range ids {
		clusterWaitDone(t, a, id, procRecoverWait)
	}
	events := notifyWaitDelivered(t, a, r, procRecoverWait, ids...)
	if len(events) != 2*orders {
		t.Errorf("%d events for %d paid orders with receipts, want %d: %v", len(events), orders, 2*orders, events)
	}
	count := notifyCheckDeliveries(t, a, r, events)
	dups := 0
	for id, n := range count {
		if n > 1 {
			dups += n - 1
			t.Errorf("event %s delivered %d times, though no lease ran out", id, n)
		}
	}
	t.Logf("%d events, %d deliveries, %d duplicates; delivered by %s %d, %s %d", len(events), len(r.all()), dups,
		a.name, clusterLogCount(procA, `"notify: event delivered"`), b.name, clusterLogCount(procB, `"notify: event delivered"`))
	notifyNoSecret(t, dir, r.secret)
}

// TestNotifyReceiverRecovers gives the shop a receiver that answers 500 to
// an event's first two posts and 204 to the third: the event is retried
// (10s, then 20s later) with the same id and body, and is delivered once
// the receiver answers 2xx. The receiver asks for order.paid only, so it
// gets nothing else.
func TestNotifyReceiverRecovers(t *testing.T) {
	t.Parallel()
	const failures = 2
	dir := t.TempDir()
	sb := procStartSandbox(t, dir)
	r := notifyNewReceiver(t, func(n int) int {
		if n <= failures {
			return http.StatusInternalServerError
		}
		return http.StatusNoContent
	})
	s := notifyShop(t, dir, filepath.Join(dir, "storage"), "shop", sb, r, false, "events order.paid")
	p := s.start(t)
	id := s.checkout(t)
	clusterPay(t, sb, id)
	s.waitRecord(t, id, kassa.OrderPaid, procShortWait)
	// 10s and 20s of retries, and the 1s of the deliverer's ticks.
	events := notifyWaitDelivered(t, s, r, 50*time.Second, id)
	var ev string
	for k := range events {
		ev = k
	}
	if len(events) != 1 || events[ev] != "order.paid" {
		t.Fatalf("the order's events: %v, want only its order.paid", events)
	}
	got := r.of(ev)
	var statuses []int
	for _, d := range got {
		statuses = append(statuses, d.status)
	}
	if fmt.Sprint(statuses) != fmt.Sprint([]int{500, 500, 204}) {
		t.Errorf("the receiver answered %v to %s, want [500 500 204]", statuses, ev)
	}
	notifyCheckDeliveries(t, s, r, events)
	if n := len(r.all()); n != len(got) {
		t.Errorf("the receiver got %d posts, %d of them %s: it asked for order.paid only", n, len(got), ev)
	}
	if f, _ := notifyEventFile(t, s, ev); len(f.Targets) != 1 || f.Targets[0].State != "delivered" ||
		f.Targets[0].Attempts != failures+1 || f.Targets[0].LastStatus != http.StatusNoContent {
		t.Errorf("event file of %s: %+v, want delivered after %d attempts, last 204", ev, f.Targets, failures+1)
	}
	if n := clusterLogCount(p, `"notify: event not delivered; will retry"`); n != failures {
		t.Errorf("%d retry warnings in the log, want %d", n, failures)
	}
	for i := 1; i < len(got); i++ {
		t.Logf("attempt %d came %v after the one before", i+1, got[i].at.Sub(got[i-1].at).Round(100*time.Millisecond))
	}
	notifyNoSecret(t, dir, r.secret)
}
