package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// notifySecretEnv is the environment variable the shop with notifications
// reads its receiver's secret from, as a shop keeps it out of its config.
const notifySecretEnv = "KASSA_BENCH_NOTIFY_SECRET"

// notifyFigures are the checkout with notifications off and on, and the
// delivery of the order.paid events of the orders the harness paid.
type notifyFigures struct {
	// off and on are the checkout's form posts on a shop without and
	// with a notify receiver, each the sum of its rounds.
	off, on loadResult
	rounds  []notifyRound
	// paid are the orders the payer paid on the shop with notifications,
	// each with the time the sandbox answered that it was paid.
	paid map[string]time.Time
	// noticed is, for each paid order, paid → the first status poll that
	// answered paid.
	noticed []time.Duration
	// delivered is, for each paid order whose order.paid event arrived,
	// paid → its arrival.
	delivered []time.Duration
	// received counts the events that arrived, by type; duplicates are
	// arrivals of an event id already received; badSignatures those whose
	// signature did not verify.
	received                  map[string]int
	duplicates, badSignatures int
	// retried and failedEvents are the shop's kassa_events_retried_total
	// and kassa_events_failed_total at the end.
	retried, failedEvents float64
	// drain is how long after the last round the last event took.
	drain time.Duration
}

// notifyRound is one round of the checkout without and with notifications.
type notifyRound struct{ off, on loadResult }

// ratio is the checkout's rate with notifications over that without.
func (n *notifyFigures) ratio() float64 { return ratio(n.on.rate(), n.off.rate()) }

// complete reports whether every paid order's order.paid event arrived,
// signed, and none twice without a retry to explain it.
func (n *notifyFigures) complete() bool {
	return len(n.paid) > 0 && len(n.delivered) == len(n.paid) && n.received["order.paid"] == len(n.paid) &&
		n.badSignatures == 0 && float64(n.duplicates) <= n.retried
}

// receiver is the shop's notify receiver: it answers 204 at once, checks
// every signature and records when each event arrived.
type receiver struct {
	secret []byte
	srv    *http.Server
	url    string

	mu            sync.Mutex
	arrived       map[string]time.Time // by event id
	paidAt        map[string]time.Time // order.paid arrivals, by order id
	byType        map[string]int
	duplicates    int
	badSignatures int
}

// startReceiver serves a receiver on a loopback port.
func startReceiver(secret []byte) (*receiver, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	r := &receiver{secret: secret, url: "http://" + l.Addr().String() + "/events",
		arrived: map[string]time.Time{}, paidAt: map[string]time.Time{}, byType: map[string]int{}}
	r.srv = &http.Server{Handler: r, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = r.srv.Serve(l) }()
	return r, nil
}

// ServeHTTP answers 204 and records the event; a bad signature is counted
// and answered 400.
func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	now := time.Now()
	body, err := io.ReadAll(req.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var event struct {
		ID    string `json:"id"`
		Type  string `json:"type"`
		Order struct {
			ID string `json:"order_id"`
		} `json:"order"`
	}
	ok := r.verify(req.Header.Get("Kassa-Signature"), body) && json.Unmarshal(body, &event) == nil &&
		event.ID != "" && event.ID == req.Header.Get("Kassa-Event-Id")
	r.mu.Lock()
	defer r.mu.Unlock()
	if !ok {
		r.badSignatures++
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusNoContent)
	if _, seen := r.arrived[event.ID]; seen {
		r.duplicates++
		return
	}
	r.arrived[event.ID] = now
	r.byType[event.Type]++
	if event.Type == "order.paid" {
		r.paidAt[event.Order.ID] = now
	}
}

// verify checks a Kassa-Signature header, t=<unix>,v1=<hex>, over body.
func (r *receiver) verify(header string, body []byte) bool {
	var t, v1 string
	for part := range strings.SplitSeq(header, ",") {
		k, v, _ := strings.Cut(part, "=")
		switch k {
		case "t":
			t = v
		case "v1":
			v1 = v
		}
	}
	got, err := hex.DecodeString(v1)
	if t == "" || err != nil {
		return false
	}
	mac := hmac.New(sha256.New, r.secret)
	mac.Write([]byte(t + "."))
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// stop closes the receiver.
func (r *receiver) stop() { _ = r.srv.Close() }

// notifyBlock is the kassa option's notify block for the receiver at url:
// every event, the secret from notifySecretEnv.
func notifyBlock(url string) string {
	return fmt.Sprintf("notify %s {\n\t\t\tsecret {env.%s}\n\t\t}", url, notifySecretEnv)
}

// measureNotify measures the checkout's form posts on a shop without
// notifications and on one with them, in alternate rounds that together
// last a figure's duration each, while a payer pays orders on the shop
// being measured; then it waits for the order.paid events of the orders
// paid on the shop with notifications.
func (f *figures) measureNotify(ctx context.Context, bin, dir string, provider *caddyProcess, providerPort int, w io.Writer) error {
	n := &f.notify
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	secret := hex.EncodeToString(key)
	rcv, err := startReceiver([]byte(secret))
	if err != nil {
		return err
	}
	defer rcv.stop()

	var ports [4]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return err
		}
	}
	start := func(name string, admin, port int, notify string, env ...string) (*shop, error) {
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		caddyfile := shopCaddyfile(admin, port, providerPort, filepath.Join(dir, name), loadPollInterval, notify)
		p, err := startCaddy(ctx, bin, dir, name, caddyfile, admin, base+respondPath, env...)
		if err != nil {
			return nil, err
		}
		return &shop{caddyProcess: p, provider: provider, base: base, client: newClient(f.opts.concurrency)}, nil
	}
	off, err := start("shop-notify-off", ports[0], ports[1], "")
	if err != nil {
		return err
	}
	defer off.stop()
	on, err := start("shop-notify-on", ports[2], ports[3], notifyBlock(rcv.url),
		notifySecretEnv+"="+secret)
	if err != nil {
		return err
	}
	defer on.stop()
	sandbox := fmt.Sprintf("http://127.0.0.1:%d", providerPort)

	fmt.Fprintf(w, "checkout without and with notifications, in %d rounds of %s each, a buyer paying orders meanwhile\n",
		interleavedRounds, f.opts.duration/interleavedRounds)
	n.paid = map[string]time.Time{}
	for range interleavedRounds {
		var r notifyRound
		if r.off, err = f.checkoutWhilePaying(ctx, off, sandbox, nil); err != nil {
			return err
		}
		if r.on, err = f.checkoutWhilePaying(ctx, on, sandbox, n); err != nil {
			return err
		}
		fmt.Fprintf(w, "  round: %.0f orders/s off, %.0f orders/s on\n", r.off.rate(), r.on.rate())
		n.rounds = append(n.rounds, r)
		n.off, n.on = n.off.plus(r.off), n.on.plus(r.on)
	}
	end := time.Now()

	// Every order.paid should arrive within a second or so of its order's
	// payment; wait for the last, or for a minute.
	for deadline := end.Add(time.Minute); ; {
		rcv.mu.Lock()
		got := rcv.byType["order.paid"]
		rcv.mu.Unlock()
		if got >= len(n.paid) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	m, err := on.metrics(ctx)
	if err != nil {
		return err
	}
	n.retried, n.failedEvents = m.sum("kassa_events_retried_total"), m.sum("kassa_events_failed_total")

	rcv.mu.Lock()
	defer rcv.mu.Unlock()
	n.received, n.duplicates, n.badSignatures = rcv.byType, rcv.duplicates, rcv.badSignatures
	var last time.Time
	for id, paid := range n.paid {
		if at, ok := rcv.paidAt[id]; ok {
			n.delivered = append(n.delivered, at.Sub(paid))
			if at.After(last) {
				last = at
			}
		}
	}
	n.drain = max(last.Sub(end), 0)
	slices.Sort(n.delivered)
	slices.Sort(n.noticed)
	fmt.Fprintf(w, "  %.2f × (%.0f orders/s on, %.0f off); %d of %d order.paid events, paid → delivered p50 %s, p99 %s\n",
		n.ratio(), n.on.rate(), n.off.rate(), len(n.delivered), len(n.paid),
		roundDuration(percentile(n.delivered, 0.5)), roundDuration(percentile(n.delivered, 0.99)))
	return nil
}

// checkoutWhilePaying measures one round of the checkout's form posts on s
// while one buyer, beside the load, pays orders on it one after another:
// creates one (as a JSON client), pays its invoice through the sandbox's
// control endpoint (as its payment page's button does) and polls its
// status until the shop answers paid, as the buyer's page would. With
// record, the payments are recorded in it.
func (f *figures) checkoutWhilePaying(ctx context.Context, s *shop, sandbox string, record *notifyFigures) (loadResult, error) {
	var res loadResult
	var payErr error
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		client := newClient(1)
		for ctx.Err() == nil {
			id, paid, noticed, err := payOrder(ctx, client, s.base, sandbox)
			if err != nil {
				if ctx.Err() == nil {
					payErr = err
				}
				return
			}
			if record != nil {
				record.paid[id] = paid
				record.noticed = append(record.noticed, noticed)
			}
		}
	}()
	res, err := s.load(func() loadResult {
		return drive(ctx, f.opts.concurrency, f.opts.duration/interleavedRounds, func(int, int) error {
			return postForm(s.client, s.base+checkoutPath, checkoutForm, http.StatusSeeOther)
		})
	})
	cancel()
	<-done
	if err == nil {
		err = payErr
	}
	return res, err
}

// statusPollEvery is how often the paying buyer's page polls its order's
// status once it is back from the payment page.
const statusPollEvery = 50 * time.Millisecond

// payOrder creates an order on the shop at base, pays it in the sandbox and
// polls its status until it is paid. It returns the order's id, the time
// the sandbox answered that it was paid, and how long after that the shop
// first answered paid.
func payOrder(ctx context.Context, c *http.Client, base, sandbox string) (string, time.Time, time.Duration, error) {
	var created struct {
		OrderID    string `json:"order_id"`
		PaymentURL string `json:"payment_url"`
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+checkoutPath, strings.NewReader(checkoutForm))
	if err != nil {
		return "", time.Time{}, 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if err := exchangeJSON(c, req, http.StatusCreated, &created); err != nil {
		return "", time.Time{}, 0, fmt.Errorf("creating an order to pay: %v", err)
	}
	pay, _ := json.Marshal(map[string]string{"api": "crystalpay", "id": path.Base(created.PaymentURL)})
	// Not cut short by the round's end: a payment sent is recorded.
	req, err = http.NewRequest(http.MethodPost, sandbox+"/control/pay", bytes.NewReader(pay))
	if err != nil {
		return "", time.Time{}, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := exchange(c, req, http.StatusOK); err != nil {
		return "", time.Time{}, 0, fmt.Errorf("paying order %s: %v", created.OrderID, err)
	}
	paid := time.Now()
	// The buyer's page stays until the order is paid: this poll loop is
	// not cut short by the round's end, so that every paid order is
	// noticed by the shop and raises its event.
	for {
		req, err := http.NewRequest(http.MethodGet, base+checkoutPath+"?order="+created.OrderID, nil)
		if err != nil {
			return "", time.Time{}, 0, err
		}
		req.Header.Set("Accept", "application/json")
		var status struct {
			State string `json:"state"`
		}
		if err := exchangeJSON(c, req, http.StatusOK, &status); err != nil {
			return "", time.Time{}, 0, fmt.Errorf("polling paid order %s: %v", created.OrderID, err)
		}
		if status.State == "paid" {
			return created.OrderID, paid, time.Since(paid), nil
		}
		if time.Since(paid) > time.Minute {
			return "", time.Time{}, 0, fmt.Errorf("order %s still %s a minute after it was paid", created.OrderID, status.State)
		}
		time.Sleep(statusPollEvery)
	}
}

// exchangeJSON sends req and decodes its answer, which must have status
// want, into v.
func exchangeJSON(c *http.Client, req *http.Request, want int, v any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		_, _ = io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("%s %s: %s, want %d", req.Method, req.URL.Path, resp.Status, want)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// percentile is the q-quantile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
