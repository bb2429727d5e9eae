package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// onlyCallback is the -only value that measures how fast a paid CrystalPAY
// v3 invoice is seen, with callbacks and by polling alone, and nothing
// else.
const onlyCallback = "callback"

// The callback figures' provider: every API call waits a time drawn
// uniformly from [callbackLatencyMin, callbackLatencyMax], as a real
// provider's answers spread; their mean sets the expected sweep.
const (
	callbackLatencyMin  = 100 * time.Millisecond
	callbackLatencyMax  = 500 * time.Millisecond
	callbackLatencyMean = (callbackLatencyMin + callbackLatencyMax) / 2
)

// crystalPayV3Rate is the request rate kassa holds a CrystalPAY v3
// account to unless rate_limit says otherwise: the 5 a second the API asks
// for. The reconciler's sweep cannot go faster.
const crystalPayV3Rate = 5

// A callback run waits for its paid orders callbackWaitSweeps expected
// sweeps after the last payment, at least minCallbackWait.
const (
	callbackWaitSweeps = 2
	minCallbackWait    = time.Minute
)

// callbackSweep is the time a reconciler checking n orders takes to ask
// the provider about each: poll_concurrency's default workers at latency
// each, held to perSecond calls a second.
func callbackSweep(n int, latency time.Duration, perSecond float64) time.Duration {
	return max(expectedSweep(n, latency), time.Duration(float64(n)/perSecond*float64(time.Second)))
}

// callbackPayEvery is the steady rate at which the callback figures pay
// their orders: one every 200 ms, five a second.
const callbackPayEvery = 200 * time.Millisecond

// callbackPaidReadEvery is how often the harness lists the paid orders
// through the admin API while it waits for the last ones.
const callbackPaidReadEvery = time.Second

// The callback route and the sandbox's public v3 credentials.
const (
	callbackPath = "/kassa/callback/main"
	sandboxSalt  = "sandbox-salt"
)

// callbackFigures are the two runs of the callback figures: the shop told
// of each payment by the provider's callback, and the shop polling alone.
type callbackFigures struct {
	open            int
	callback, polls callbackRun
}

// callbackRun is one shop's run: open orders in the background, paid
// orders paid one by one at a steady rate.
type callbackRun struct {
	// callbacks is whether the shop had a callback URL and its route.
	callbacks bool
	// paid is how many orders were paid; noticed is, for each the shop
	// recorded paid within wait, payment → its paid_at, sorted.
	paid    int
	noticed []time.Duration
	wait    time.Duration
	// window is from the first payment to the read that found the last
	// order paid (or the wait's end); statusCalls are the shop's
	// invoice/info calls in it, and calls all its CrystalPAY calls.
	window             time.Duration
	statusCalls, calls float64
	// results are the shop's kassa_callbacks_total in the window, by
	// result; deliveries are the sandbox's callback posts.
	results    map[string]float64
	deliveries deliveryCount
	// setup is the time the orders took to make.
	setup time.Duration
}

// missed is how many paid orders the shop had not recorded paid within
// the wait.
func (r callbackRun) missed() int { return r.paid - len(r.noticed) }

// perPaidOrder is x per paid order.
func (r callbackRun) perPaidOrder(x float64) float64 { return ratio(x, float64(r.paid)) }

// latencyProxy stands between the shop and the sandbox and holds every
// request for a time drawn uniformly from [min, max] before it forwards
// it, while on: a provider whose answers take a realistic, uneven time,
// which the sandbox's own latency (one fixed duration) is not.
type latencyProxy struct {
	min, max time.Duration
	on       atomic.Bool
	proxy    *httputil.ReverseProxy
	srv      *http.Server
	url      string
}

// startLatencyProxy serves a proxy to target on a loopback port, off.
func startLatencyProxy(target string, lo, hi time.Duration) (*latencyProxy, error) {
	to, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &latencyProxy{min: lo, max: hi, url: "http://" + l.Addr().String()}
	p.proxy = &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(to) },
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// ServeHTTP holds the request, if on, and forwards it.
func (p *latencyProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if p.on.Load() {
		t := time.NewTimer(drawLatency(p.min, p.max, rand.Float64()))
		select {
		case <-r.Context().Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	p.proxy.ServeHTTP(w, r)
}

// stop closes the proxy.
func (p *latencyProxy) stop() { _ = p.srv.Close() }

// drawLatency is the latency at u, a uniform draw from [0, 1), between lo
// and hi.
func drawLatency(lo, hi time.Duration, u float64) time.Duration {
	return lo + time.Duration(u*float64(hi-lo))
}

// measureCallback measures the callback figures: the same run on a shop
// with a callback URL and its kassa_callback route, and on one without,
// both against the sandbox behind a latencyProxy.
func (f *figures) measureCallback(ctx context.Context, bin, dir string, provider *caddyProcess, providerPort int, w io.Writer) error {
	r := &scaleRun{opts: f.opts, bin: bin, dir: dir, provider: provider, providerPort: providerPort, w: w,
		client: newClient(f.opts.concurrency)}
	if err := r.setLatency(ctx, 0); err != nil {
		return err
	}
	p, err := startLatencyProxy(r.sandbox(), callbackLatencyMin, callbackLatencyMax)
	if err != nil {
		return err
	}
	defer p.stop()
	c := &f.callback
	c.open = f.opts.callbackOpen
	for _, callbacks := range []bool{true, false} {
		how := "polling alone"
		if callbacks {
			how = "with callbacks"
		}
		fmt.Fprintf(w, "callback: %d open orders, %d paid one every %s, provider calls %s–%s, %s\n",
			c.open, f.opts.callbackOrders, callbackPayEvery, callbackLatencyMin, callbackLatencyMax, how)
		run, err := r.measureCallbackRun(ctx, p, callbacks)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "  payment → paid p50 %s, p99 %s, max %s; %d of %d noticed; %.1f invoice/info calls per paid order\n",
			roundDuration(percentile(run.noticed, 0.5)), roundDuration(percentile(run.noticed, 0.99)),
			roundDuration(percentile(run.noticed, 1)), len(run.noticed), run.paid, run.perPaidOrder(run.statusCalls))
		if callbacks {
			c.callback = run
		} else {
			c.polls = run
		}
	}
	return nil
}

// measureCallbackRun makes the open orders and the orders to pay on a
// fresh shop (the provider at zero latency meanwhile), turns the latency
// on, and after a poll interval pays the latter one every
// callbackPayEvery; then it lists the paid orders through the admin API
// until each paid one is there, and takes its paid_at.
func (r *scaleRun) measureCallbackRun(ctx context.Context, p *latencyProxy, callbacks bool) (callbackRun, error) {
	run := callbackRun{callbacks: callbacks, paid: r.opts.callbackOrders}
	name := "shop-callback-polls"
	if callbacks {
		name = "shop-callback"
	}
	storage := filepath.Join(r.dir, name)
	defer os.RemoveAll(storage)
	p.on.Store(false)
	s, err := r.callbackShop(ctx, name, storage, p.url, callbacks)
	if err != nil {
		return run, err
	}
	defer s.stop()

	start := time.Now()
	orders, err := placeOrders(ctx, s, r.opts.callbackOpen+run.paid, r.opts.concurrency)
	if err != nil {
		return run, err
	}
	run.setup = time.Since(start)
	fmt.Fprintf(r.w, "  %d orders made in %s\n", len(orders), run.setup.Round(time.Millisecond))
	paying := make([]invoice, 0, run.paid)
	for _, i := range spread(len(orders), run.paid) {
		paying = append(paying, orders[i])
	}
	p.on.Store(true)
	if err := sleep(ctx, scalePollInterval); err != nil { // a pass at the new latency is under way
		return run, err
	}
	if err := r.clearCalls(ctx); err != nil {
		return run, err
	}
	before, err := s.metrics(ctx)
	if err != nil {
		return run, err
	}

	paidAt := make(map[string]time.Time, len(paying))
	first := time.Now()
	tick := time.NewTicker(callbackPayEvery)
	for i, inv := range paying {
		if i > 0 {
			select {
			case <-ctx.Done():
				tick.Stop()
				return run, ctx.Err()
			case <-tick.C:
			}
		}
		if paidAt[inv.order], err = r.pay(ctx, inv); err != nil {
			tick.Stop()
			return run, err
		}
	}
	tick.Stop()

	run.wait = max(minCallbackWait, callbackWaitSweeps*callbackSweep(r.opts.callbackOpen+run.paid, callbackLatencyMean, crystalPayV3Rate))
	var recorded map[string]time.Time
	for deadline := time.Now().Add(run.wait); ; {
		if recorded, err = s.paidOrders(ctx); err != nil {
			return run, err
		}
		if run.noticed = noticedTimes(paidAt, recorded); len(run.noticed) == len(paidAt) || time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, callbackPaidReadEvery); err != nil {
			return run, err
		}
	}
	run.window = time.Since(first)
	after, err := s.metrics(ctx)
	if err != nil {
		return run, err
	}
	run.statusCalls = after.providerCalls("invoice/info") - before.providerCalls("invoice/info")
	run.calls = after.sum("kassa_provider_calls_total", "provider", "crystalpay") -
		before.sum("kassa_provider_calls_total", "provider", "crystalpay")
	run.results = map[string]float64{}
	for _, m := range after {
		if m.name == "kassa_callbacks_total" {
			if n := m.value - before.sum("kassa_callbacks_total", "result", m.labels["result"]); n > 0 {
				run.results[m.labels["result"]] += n
			}
		}
	}
	calls, err := r.callbackCalls(ctx)
	if err != nil {
		return run, err
	}
	run.deliveries = countDeliveries(calls)
	p.on.Store(false)
	return run, nil
}

// callbackShop starts a shop for the callback figures on the storage
// directory storage, its CrystalPAY v3 account at endpoint; with
// callbacks, the account has a callback URL and the site its route.
func (r *scaleRun) callbackShop(ctx context.Context, name, storage, endpoint string, callbacks bool) (*shop, error) {
	return r.startShop(ctx, name, func(admin, port int) string {
		return callbackCaddyfile(admin, port, endpoint, storage, callbacks)
	})
}

// callbackCaddyfile is the callback figures' shop: kassa_checkout on a
// CrystalPAY v3 account at endpoint (the latencyProxy), poll_interval
// scalePollInterval, orders living a day and no cap on open ones; with
// callbacks, the account's callback URL and its kassa_callback route.
func callbackCaddyfile(adminPort, port int, endpoint, storageDir string, callbacks bool) string {
	account, route := "", ""
	if callbacks {
		account = fmt.Sprintf("callback http://127.0.0.1:%d%s", port, callbackPath)
		route = fmt.Sprintf("handle %s {\n\t\tkassa_callback main\n\t}", callbackPath)
	}
	return fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	persist_config off
	kassa {
		payment main crystalpay {
			api v3
			login sandbox
			secret sandbox-secret
			salt %[3]s
			endpoint %[4]s/crystalpay/v3/
			%[5]s
		}
		product tea-green 350.00 "Green tea 100 g" vat20
		product cup 120.00 "Cup"
		poll_interval %[6]s
		order_ttl 24h
		max_open_orders off
		storage file_system %[7]s
	}
}

http://:%[2]d {
	bind 127.0.0.1
	handle %[8]s {
		respond "ok"
	}
	handle %[9]s {
		kassa_checkout main
	}
	%[10]s
}
`, adminPort, port, sandboxSalt, endpoint, account, scalePollInterval, strconv.Quote(storageDir), respondPath, checkoutPath, route)
}

// paidOrders lists the shop's paid orders through the admin API, which
// reads storage only (it asks no provider): each order's paid_at, the
// shop's clock as it recorded the order paid.
func (s *shop) paidOrders(ctx context.Context) (map[string]time.Time, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/kassa/orders?state=paid&limit=%d", s.admin, maxAdminPage), nil)
	if err != nil {
		return nil, err
	}
	var page struct {
		Orders []struct {
			ID     string     `json:"id"`
			PaidAt *time.Time `json:"paid_at"`
		} `json:"orders"`
		Next string `json:"next"`
	}
	if err := exchangeJSON(s.client, req, http.StatusOK, &page); err != nil {
		return nil, fmt.Errorf("listing paid orders: %v", err)
	}
	if page.Next != "" {
		return nil, fmt.Errorf("more than %d paid orders: the callback figures pay fewer", maxAdminPage)
	}
	out := make(map[string]time.Time, len(page.Orders))
	for _, o := range page.Orders {
		if o.PaidAt != nil {
			out[o.ID] = *o.PaidAt
		}
	}
	return out, nil
}

// maxAdminPage is the admin API's largest page of orders.
const maxAdminPage = 1000

// noticedTimes is, for each order paid at paidAt[id] that the shop
// recorded paid at recorded[id], the time between, sorted. Orders not
// recorded are left out; so is any order the harness did not pay.
func noticedTimes(paidAt, recorded map[string]time.Time) []time.Duration {
	var out []time.Duration
	for id, paid := range paidAt {
		if at, ok := recorded[id]; ok {
			out = append(out, at.Sub(paid))
		}
	}
	slices.Sort(out)
	return out
}

// sandboxCall is a call of the sandbox's journal (GET /control/calls), as
// far as the callback figures read it.
type sandboxCall struct {
	Op      string `json:"op"`
	Status  int    `json:"status"`
	Attempt int    `json:"attempt"`
}

// deliveryCount sums up the sandbox's callback posts.
type deliveryCount struct {
	// posts are every attempt; retries those after the first of their
	// callback; byStatus the posts by the HTTP status the shop answered
	// (0: none).
	posts, retries int
	byStatus       map[int]int
}

// countDeliveries counts the callback posts among calls.
func countDeliveries(calls []sandboxCall) deliveryCount {
	d := deliveryCount{byStatus: map[int]int{}}
	for _, c := range calls {
		if c.Op != opCallbackName {
			continue
		}
		d.posts++
		if c.Attempt > 1 {
			d.retries++
		}
		d.byStatus[c.Status]++
	}
	return d
}

// opCallbackName is the op of a callback post in the sandbox's journal.
const opCallbackName = "callback"

// clearCalls empties the sandbox's journal, so that it holds the run's
// calls only.
func (r *scaleRun) clearCalls(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodDelete, r.sandbox()+"/control/calls", nil)
	if err != nil {
		return err
	}
	if err := exchange(r.client, req, http.StatusOK); err != nil {
		return fmt.Errorf("clearing the sandbox's journal: %v", err)
	}
	return nil
}

// callbackCalls reads the callback posts from the sandbox's journal.
func (r *scaleRun) callbackCalls(ctx context.Context) ([]sandboxCall, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.sandbox()+"/control/calls?api=crystalpay&op="+opCallbackName, nil)
	if err != nil {
		return nil, err
	}
	var j struct {
		Calls []sandboxCall `json:"calls"`
	}
	if err := exchangeJSON(r.client, req, http.StatusOK, &j); err != nil {
		return nil, fmt.Errorf("reading the sandbox's callbacks: %v", err)
	}
	return j.Calls, nil
}
