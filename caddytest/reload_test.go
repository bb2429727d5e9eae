package caddytest

// Config reloads under load: buyers check out, poll and pay while the shop
// process is reloaded again and again with `caddy reload`; nothing fails,
// nothing is doubled, the reconciler goes on, and the process holds no
// more goroutines or sockets after the reloads than before. Helpers here
// are prefixed reload.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-kassa/kassa"
)

// Shape of the load: reloadWorkers buyers, each checking out, polling
// the order's status reloadPolls times and paying every other order.
const (
	reloadCount   = 20
	reloadWorkers = 4
	reloadPolls   = 3
)

// reloadLoad is the buyers' side: what they did and what they saw.
type reloadLoad struct {
	s  *clusterShop
	sb *procSandbox

	round int // numbers the runs, so each run's Idempotency-Keys are new

	mu       sync.Mutex
	orders   []string // every order made, once
	paid     []string // those paid at the sandbox
	requests int      // checkouts and polls answered
	resent   int      // checkouts sent again after a network error, as docs/reference.md tells clients to
	repolled int      // status polls sent again after a network error, as the status page does
	failures []string // any answer other than the documented one
}

// reloadClient is the buyers' HTTP client. It keeps connections alive, as
// browsers do, so reloads find connections open.
var reloadClient = &http.Client{Timeout: 10 * time.Second}

// buyer runs one buyer until ctx ends.
func (l *reloadLoad) buyer(ctx context.Context, w int) {
	for i := 0; ctx.Err() == nil; i++ {
		id, ok := l.checkout(fmt.Sprintf("reload-key-%d-%d-%04d", l.round, w, i))
		if !ok {
			continue
		}
		for range reloadPolls {
			l.poll(id)
		}
		if i%2 == 0 {
			status, body, err := procDo("POST", l.sb.url+"/control/pay", map[string]any{"api": "pegas", "order_id": id})
			l.mu.Lock()
			if err != nil || status != http.StatusOK {
				l.failures = append(l.failures, fmt.Sprintf("paying %s at the sandbox: %d %s %v", id, status, body, err))
			} else {
				l.paid = append(l.paid, id)
			}
			l.mu.Unlock()
		}
	}
}

// checkout buys one tea under an Idempotency-Key. A network error is
// answered by sending the same request again (net/http already does so on
// a reused connection, since the key makes the POST replayable); any
// answer but 201 is a failure.
func (l *reloadLoad) checkout(key string) (string, bool) {
	for attempt := 0; attempt < 5; attempt++ {
		req, err := http.NewRequest("POST", l.s.url+"/pay", strings.NewReader(`{"items":[{"sku":"tea","qty":1}],"email":"buyer@example.com"}`))
		if err != nil {
			panic(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.Header.Set("Idempotency-Key", key)
		status, st, err := reloadDo(req)
		l.mu.Lock()
		switch {
		case err != nil:
			l.resent++
			l.mu.Unlock()
			continue
		case status != http.StatusCreated || st.State != "pending" || st.OrderID == "":
			l.failures = append(l.failures, fmt.Sprintf("checkout %s: %d %+v", key, status, st))
			l.mu.Unlock()
			return "", false
		}
		l.requests++
		if attempt == 0 || !slices.Contains(l.orders, st.OrderID) {
			l.orders = append(l.orders, st.OrderID)
		}
		l.mu.Unlock()
		return st.OrderID, true
	}
	l.mu.Lock()
	l.failures = append(l.failures, "checkout "+key+": network errors on 5 attempts")
	l.mu.Unlock()
	return "", false
}

// poll reads an order's status as its buyer's page does: a network error
// (a keep-alive connection the old config closed as the request went out)
// is answered by polling again, as the page does on its next tick; any
// answer but 200 with the order is a failure.
func (l *reloadLoad) poll(id string) {
	for attempt := 0; attempt < 5; attempt++ {
		req, err := http.NewRequest("GET", l.s.url+"/pay?order="+id, nil)
		if err != nil {
			panic(err)
		}
		req.Header.Set("Accept", "application/json")
		status, st, err := reloadDo(req)
		l.mu.Lock()
		switch {
		case err != nil:
			l.repolled++
			l.mu.Unlock()
			continue
		case status != http.StatusOK || st.OrderID != id || (st.State != "pending" && st.State != "paid"):
			l.failures = append(l.failures, fmt.Sprintf("status of %s: %d %+v", id, status, st))
		default:
			l.requests++
		}
		l.mu.Unlock()
		return
	}
	l.mu.Lock()
	l.failures = append(l.failures, "status of "+id+": network errors on 5 attempts")
	l.mu.Unlock()
}

// reloadDo sends req with the buyers' client and decodes the JSON reply.
func reloadDo(req *http.Request) (int, procStatus, error) {
	var st procStatus
	resp, err := reloadClient.Do(req)
	if err != nil {
		return 0, st, err
	}
	defer resp.Body.Close()
	// A reply that is not the JSON expected leaves st empty, which the
	// caller reports with the status.
	_ = json.NewDecoder(resp.Body).Decode(&st)
	return resp.StatusCode, st, nil
}

// reloadUsage is what the shop process holds when idle.
type reloadUsage struct {
	goroutines, sockets int
}

// usage counts the process's goroutines (from the admin endpoint's pprof)
// and open sockets (from /proc).
func (l *reloadLoad) usage(t *testing.T, p *procCaddy) reloadUsage {
	t.Helper()
	status, body, err := procDo("GET", "http://"+l.s.admin+"/debug/pprof/goroutine?debug=1", nil)
	if err != nil || status != http.StatusOK {
		t.Fatalf("goroutine profile: %d %v", status, err)
	}
	line, _, _ := strings.Cut(string(body), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(line, "goroutine profile: total "))
	if err != nil {
		t.Fatalf("goroutine profile starts %q", line)
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	sockets := 0
	for _, fd := range fds {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", p.cmd.Process.Pid, fd.Name())); err == nil && strings.HasPrefix(target, "socket:") {
			sockets++
		}
	}
	return reloadUsage{goroutines: n, sockets: sockets}
}

// settled reloads the shop with the quiet config, whose reconciler makes
// one pass and then sleeps, and waits until the idle process's usage has
// held still for two seconds, and returns it. Connections the buyers
// dropped take a moment to be noticed, and the file storage keeps a
// goroutine for up to 5s after each lock.
func (l *reloadLoad) settled(t *testing.T, p *procCaddy, quiet string) reloadUsage {
	t.Helper()
	l.reload(t, quiet)
	reloadClient.CloseIdleConnections()
	last, still := l.usage(t, p), 0
	for range 80 {
		time.Sleep(250 * time.Millisecond)
		u := l.usage(t, p)
		if u != last {
			last, still = u, 0
			continue
		}
		if still++; still == 8 {
			break
		}
	}
	return last
}

// reload runs `caddy reload` with config against the shop's admin endpoint.
func (l *reloadLoad) reload(t *testing.T, config string) {
	t.Helper()
	file := filepath.Join(l.s.dir, "reload.Caddyfile")
	if err := os.WriteFile(file, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(procBinary(t), "reload", "--config", file, "--adapter", "caddyfile", "--address", l.s.admin).CombinedOutput()
	if err != nil {
		t.Fatalf("caddy reload: %v\n%s", err, out)
	}
}

// run runs the buyers while during runs, and waits for them.
func (l *reloadLoad) run(during func()) {
	l.round++
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range reloadWorkers {
		wg.Go(func() { l.buyer(ctx, w) })
	}
	during()
	cancel()
	wg.Wait()
}

// TestReloadUnderLoad reloads the shop 20 times while buyers check out,
// poll and pay, then checks every answer, every order, every invoice and
// receipt, that the reconciler still runs, and that goroutines and
// sockets did not grow with the reloads.
func TestReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	sb := procStartSandbox(t, dir)
	s := clusterNewShop(t, dir, filepath.Join(dir, "storage"), "shop", sb)
	p := s.start(t)
	slow := strings.Replace(s.config, "poll_interval 200ms", "poll_interval 250ms", 1)
	quiet := strings.Replace(s.config, "poll_interval 200ms", "poll_interval 1h", 1)
	if slow == s.config {
		t.Fatal("the shop's config has no poll_interval 200ms to change")
	}
	l := &reloadLoad{s: s, sb: sb}

	// Warm up every path (checkout, poll, payment, receipt) and one reload.
	l.run(func() {
		procEventually(t, procShortWait, "the warm-up's orders", func() (bool, string) {
			l.mu.Lock()
			defer l.mu.Unlock()
			return len(l.paid) >= 2*reloadWorkers, fmt.Sprintf("%d orders", len(l.orders))
		})
		l.reload(t, slow)
	})
	before := l.settled(t, p, quiet)
	l.reload(t, s.config)

	l.run(func() {
		for i := range reloadCount {
			if i%2 == 0 {
				l.reload(t, s.config)
			} else {
				l.reload(t, slow)
			}
			time.Sleep(100 * time.Millisecond) // let the buyers meet the new config
		}
	})
	// The reconciler of the last config finishes every paid order.
	for _, id := range l.paid {
		clusterWaitDone(t, s, id, procRecoverWait)
	}
	after := l.settled(t, p, quiet)
	t.Logf("%d reloads under %d buyers: %d answers, %d orders (%d paid), %d checkouts and %d polls sent again after a network error; "+
		"idle before: %d goroutines, %d sockets; after: %d goroutines, %d sockets",
		reloadCount, reloadWorkers, l.requests, len(l.orders), len(l.paid), l.resent, l.repolled,
		before.goroutines, before.sockets, after.goroutines, after.sockets)

	for _, f := range l.failures {
		t.Error(f)
	}
	// A leak grows with the reloads: one goroutine or socket per reload
	// would show as 20.
	if after.goroutines > before.goroutines+reloadCount/2 || after.sockets > before.sockets+reloadCount/2 {
		_, profile, _ := procDo("GET", "http://"+s.admin+"/debug/pprof/goroutine?debug=1", nil)
		t.Errorf("leak across %d reloads: goroutines %d -> %d, sockets %d -> %d\n%s", reloadCount,
			before.goroutines, after.goroutines, before.sockets, after.sockets, profile)
	}

	// Every order made is stored once, pending or paid, with one invoice;
	// every paid one ends with exactly one receipt.
	if got, want := len(s.orderIDs(t)), len(l.orders); got != want {
		t.Errorf("%d order records, %d orders made", got, want)
	}
	invoices := map[string]int{}
	for _, inv := range sb.state(t).Pegas.Invoices {
		invoices[inv.OrderID]++
	}
	for _, id := range l.orders {
		if invoices[id] != 1 {
			t.Errorf("order %s has %d invoices, want 1", id, invoices[id])
		}
		if o := s.record(t, id); o.State != kassa.OrderPending && o.State != kassa.OrderPaid {
			t.Errorf("order %s is %s (error %q)", id, o.State, o.Error)
		}
	}
	clusterOneOperationEach(t, sb, l.paid)
}
