package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// onlyScale is the -only value that measures the scale figures, and
// nothing else.
const onlyScale = "scale"

// The scale figures' shop: the reconciler's period of the issue's
// measurement, and the kassa app's default poll_concurrency, with which
// the expected sweep time is worked out.
const (
	scalePollInterval  = 2 * time.Second
	defaultPollWorkers = 16
)

// The notice figures: orders live long enough that none expires during a
// figure; the young-first figure's old orders are made youngAge old, and
// live youngOrderTTL from then.
const (
	noticeOrderTTL = 24 * time.Hour
	youngOrderTTL  = 3 * time.Hour
	youngAge       = time.Hour + 10*time.Minute
)

// A notice figure pays noticePaid of its open orders, reads each paid
// order every noticeReadEvery, and waits for them noticeWaitPerSweeps
// expected sweeps, at least minNoticeWait.
const (
	noticePaid          = 10
	noticeReadEvery     = 100 * time.Millisecond
	noticeWaitPerSweeps = 4
	minNoticeWait       = 2 * time.Minute
)

// scaleFigures are the figures of a sale's scale, measured against a
// sandbox whose every API call takes latency.
type scaleFigures struct {
	latency time.Duration
	// notice is one figure per -notice-orders count; young is the
	// young-first figure.
	notice []noticeFigure
	young  noticeFigure
	// pages is one figure per -page-orders count; export is measured on
	// the largest.
	pages  []pageFigure
	export exportFigure
}

// noticeFigure is the time from payments to paid orders with their sale
// receipts done, nobody polling their status.
type noticeFigure struct {
	// open is the open orders the shop held as the payments were made,
	// the paid ones among them; for the young-first figure, those made
	// older than an hour, and fresh the new ones beside them, all paid.
	open, fresh int
	paid        int
	// noticed is, for each paid order noticed within wait, payment → the
	// order read paid with its receipt done, sorted.
	noticed []time.Duration
	wait    time.Duration
	// setup is the time the open orders took to make.
	setup time.Duration
}

// missed is how many paid orders were not noticed within the wait.
func (n noticeFigure) missed() int { return n.paid - len(n.noticed) }

// expectedSweep is the time a reconciler checking n orders at once with
// the default poll_concurrency takes to ask the provider about each.
func expectedSweep(n int, latency time.Duration) time.Duration {
	return time.Duration(n) * latency / defaultPollWorkers
}

// noticeWait is how long a notice figure waits for its payments to be
// noticed: several expected sweeps over its open orders, at least
// minNoticeWait. A reconciler that checks orders one after another on a
// large shop takes longer, and the figure says how many it missed.
func noticeWait(open int, latency time.Duration) time.Duration {
	return max(minNoticeWait, noticeWaitPerSweeps*expectedSweep(open, latency))
}

// scaleRun is what the scale figures share: the dev Caddy, the temporary
// directory, the sandbox and the progress writer.
type scaleRun struct {
	opts         options
	bin, dir     string
	provider     *caddyProcess
	providerPort int
	w            io.Writer
	client       *http.Client
}

// sandbox is the sandbox's base URL.
func (r *scaleRun) sandbox() string { return fmt.Sprintf("http://127.0.0.1:%d", r.providerPort) }

// measureScale measures the scale figures on the sandbox provider.
func (f *figures) measureScale(ctx context.Context, bin, dir string, provider *caddyProcess, providerPort int, w io.Writer) error {
	r := &scaleRun{opts: f.opts, bin: bin, dir: dir, provider: provider, providerPort: providerPort, w: w,
		client: newClient(f.opts.concurrency)}
	s := &f.scale
	s.latency = f.opts.latency
	defer func() { _ = r.setLatency(context.WithoutCancel(ctx), 0) }()
	for _, n := range f.opts.noticeOrders {
		fmt.Fprintf(w, "notice: %d open orders, %d paid, %s per provider call, nobody polling\n", n, noticePaid, s.latency)
		nf, err := r.measureNotice(ctx, n)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  p50 %s, max %s; %d of %d noticed within %s\n", roundDuration(percentile(nf.noticed, 0.5)),
			roundDuration(percentile(nf.noticed, 1)), len(nf.noticed), nf.paid, nf.wait)
		s.notice = append(s.notice, nf)
	}
	if f.opts.youngOld > 0 && f.opts.youngNew > 0 {
		fmt.Fprintf(w, "young first: %d open orders made %s old, %d new ones paid\n", f.opts.youngOld, youngAge, f.opts.youngNew)
		var err error
		if s.young, err = r.measureYoung(ctx, f.opts.youngOld, f.opts.youngNew); err != nil {
			return err
		}
		fmt.Fprintf(w, "  p50 %s, max %s; %d of %d noticed within %s\n", roundDuration(percentile(s.young.noticed, 0.5)),
			roundDuration(percentile(s.young.noticed, 1)), len(s.young.noticed), s.young.paid, s.young.wait)
	}
	if len(f.opts.pageOrders) > 0 {
		if err := r.setLatency(ctx, 0); err != nil {
			return err
		}
		if err := f.measureOperator(ctx, r); err != nil {
			return err
		}
	}
	return nil
}

// setLatency sets the latency the sandbox adds to every API call, through
// its control endpoint.
func (r *scaleRun) setLatency(ctx context.Context, d time.Duration) error {
	body := fmt.Sprintf(`{"latency":%q}`, d.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.sandbox()+"/control/settings", strings.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := exchange(r.client, req, http.StatusOK); err != nil {
		return fmt.Errorf("setting the sandbox's latency: %v", err)
	}
	return nil
}

// scaleShop starts a shop for the scale figures on the storage directory
// storage: the reconciler's period scalePollInterval, orders living ttl,
// and receipts on the sandbox's Smart Cashier.
func (r *scaleRun) scaleShop(ctx context.Context, name, storage string, ttl time.Duration) (*shop, error) {
	return r.startShop(ctx, name, func(admin, port int) string {
		return scaleCaddyfile(admin, port, r.providerPort, storage, ttl)
	})
}

// startShop starts a shop named name on two free ports, its admin API's
// and its site's, with the Caddyfile that caddyfile writes for them.
func (r *scaleRun) startShop(ctx context.Context, name string, caddyfile func(adminPort, port int) string) (*shop, error) {
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	p, err := startCaddy(ctx, r.bin, r.dir, name, caddyfile(admin, port), admin, base+respondPath)
	if err != nil {
		return nil, err
	}
	return &shop{caddyProcess: p, provider: r.provider, base: base, client: newClient(r.opts.concurrency)}, nil
}

// invoice is an order the harness made through the checkout, with its
// CrystalPAY invoice at the sandbox.
type invoice struct{ order, id string }

// placeOrders makes n pending orders through s's checkout, as JSON
// clients, with the harness's workers; they are returned in the order
// they were asked for, oldest first.
func placeOrders(ctx context.Context, s *shop, n, workers int) ([]invoice, error) {
	out := make([]invoice, n)
	err := forEach(ctx, 0, n, workers, func(i int) error {
		inv, err := placeOrder(ctx, s)
		out[i] = inv
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// placeOrder makes one order through s's checkout.
func placeOrder(ctx context.Context, s *shop) (invoice, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.base+checkoutPath, strings.NewReader(checkoutForm))
	if err != nil {
		return invoice{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var created struct {
		OrderID    string `json:"order_id"`
		PaymentURL string `json:"payment_url"`
	}
	if err := exchangeJSON(s.client, req, http.StatusCreated, &created); err != nil {
		return invoice{}, fmt.Errorf("creating an order: %v (a shop_busy answer: raise max_open_orders in the harness's shop)", err)
	}
	return invoice{order: created.OrderID, id: path.Base(created.PaymentURL)}, nil
}

// pay pays inv's invoice through the sandbox's control endpoint, as its
// payment page's button does, and returns when the sandbox answered.
func (r *scaleRun) pay(ctx context.Context, inv invoice) (time.Time, error) {
	body, _ := json.Marshal(map[string]string{"api": "crystalpay", "id": inv.id})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.sandbox()+"/control/pay", bytes.NewReader(body))
	if err != nil {
		return time.Time{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	if err := exchange(r.client, req, http.StatusOK); err != nil {
		return time.Time{}, fmt.Errorf("paying order %s: %v", inv.order, err)
	}
	return time.Now(), nil
}

// spread picks k of n indexes evenly, the first and the last among them:
// the oldest, the newest and those between.
func spread(n, k int) []int {
	if k >= n {
		k = n
	}
	out := make([]int, 0, k)
	for j := range k {
		i := 0
		if k > 1 {
			i = j * (n - 1) / (k - 1)
		}
		out = append(out, i)
	}
	return out
}

// measureNotice makes n open orders on a fresh shop (the sandbox at zero
// latency meanwhile), sets the sandbox's latency, pays noticePaid of them
// spread from the oldest to the newest, and reads them from storage
// (the admin API) until each is paid with its receipt done.
func (r *scaleRun) measureNotice(ctx context.Context, n int) (noticeFigure, error) {
	nf := noticeFigure{open: n}
	storage := filepath.Join(r.dir, fmt.Sprintf("orders-notice-%d", n))
	defer os.RemoveAll(storage)
	if err := r.setLatency(ctx, 0); err != nil {
		return nf, err
	}
	s, err := r.scaleShop(ctx, fmt.Sprintf("shop-notice-%d", n), storage, noticeOrderTTL)
	if err != nil {
		return nf, err
	}
	defer s.stop()
	start := time.Now()
	orders, err := placeOrders(ctx, s, n, r.opts.concurrency)
	if err != nil {
		return nf, err
	}
	nf.setup = time.Since(start)
	fmt.Fprintf(r.w, "  %d orders made in %s\n", n, nf.setup.Round(time.Millisecond))
	if err := r.setLatency(ctx, r.opts.latency); err != nil {
		return nf, err
	}
	if err := sleep(ctx, scalePollInterval); err != nil { // a pass at the new latency is under way
		return nf, err
	}
	var paying []invoice
	for _, i := range spread(n, noticePaid) {
		paying = append(paying, orders[i])
	}
	nf.wait = noticeWait(n, r.opts.latency)
	nf.paid = len(paying)
	nf.noticed, err = r.payAndWatch(ctx, s, paying, nf.wait)
	return nf, err
}

// payAndWatch pays orders, then reads each from the shop's storage every
// noticeReadEvery until it is paid with its sale receipt done, or wait
// is up. It returns payment → noticed for those noticed, sorted.
func (r *scaleRun) payAndWatch(ctx context.Context, s *shop, orders []invoice, wait time.Duration) ([]time.Duration, error) {
	paidAt := make(map[string]time.Time, len(orders))
	for _, inv := range orders {
		at, err := r.pay(ctx, inv)
		if err != nil {
			return nil, err
		}
		paidAt[inv.order] = at
	}
	var noticed []time.Duration
	deadline := time.Now().Add(wait)
	for len(paidAt) > 0 && time.Now().Before(deadline) {
		round := time.Now()
		for id, at := range paidAt {
			done, err := s.settled(ctx, id)
			if err != nil {
				return nil, err
			}
			if done {
				noticed = append(noticed, time.Since(at))
				delete(paidAt, id)
			}
		}
		if err := sleep(ctx, noticeReadEvery-time.Since(round)); err != nil {
			return nil, err
		}
	}
	slices.Sort(noticed)
	return noticed, nil
}

// settled reads order id through the admin API, which reads storage only
// (it asks no provider), and reports whether it is paid with its sale
// receipt done.
func (s *shop) settled(ctx context.Context, id string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.admin+"/kassa/orders/"+id, nil)
	if err != nil {
		return false, err
	}
	var o struct {
		State   string `json:"state"`
		Receipt *struct {
			State string `json:"state"`
		} `json:"receipt"`
	}
	if err := exchangeJSON(s.client, req, http.StatusOK, &o); err != nil {
		return false, fmt.Errorf("reading order %s: %v", id, err)
	}
	return o.State == "paid" && o.Receipt != nil && o.Receipt.State == "done", nil
}

// sleep waits d, or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// scaleCaddyfile is the scale figures' shop: shopCaddyfile's, with
// receipts on the sandbox's Smart Cashier, the reconciler's period
// scalePollInterval and orders living ttl; every other kassa option at
// its default, but for max_open_orders (off, as shopCaddyfile sets it).
func scaleCaddyfile(adminPort, port, providerPort int, storageDir string, ttl time.Duration) string {
	receipts := fmt.Sprintf(`receipts smartcashier {
			token sandbox-token
			endpoint http://127.0.0.1:%d/smartcashier/v1.0
			taxation usn_income
		}`, providerPort)
	c := shopCaddyfile(adminPort, port, providerPort, storageDir, scalePollInterval, receipts)
	return strings.Replace(c, "order_ttl 24h", "order_ttl "+ttl.String(), 1)
}
