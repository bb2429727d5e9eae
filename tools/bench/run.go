package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/caddy-kassa/kassa"
)

// options are the harness's flags.
type options struct {
	concurrency int
	duration    time.Duration
	orders      int
	out         string
	benchtime   string
	pprof       string
	// only, if not empty, names the one part to measure: "notify",
	// "scale" or "callback".
	only string
	// The scale figures' (scale.go): the latency the sandbox adds to
	// every provider call; the open orders of each notice figure; the old
	// and new orders of the young-first figure; the stored orders of each
	// operator page figure (the export is of the first half of the
	// largest's year).
	latency            time.Duration
	noticeOrders       intList
	youngOld, youngNew int
	pageOrders         intList
	// The callback figures' (callback.go): the open orders in the
	// background, and the orders paid in each run (0: no such figures).
	callbackOpen, callbackOrders int
}

// command is the command line that runs the harness with these options,
// from the repository's root (the harness is in the tools module).
func (o options) command() string {
	cmd := fmt.Sprintf("cd tools && go run ./bench -concurrency %d -duration %s -orders %d -benchtime %s",
		o.concurrency, o.duration, o.orders, o.benchtime)
	if o.only == "" || o.only == onlyScale {
		cmd += fmt.Sprintf(" -latency %s -notice-orders=%s -young-orders %d -young-new %d -page-orders=%s",
			o.latency, o.noticeOrders, o.youngOld, o.youngNew, o.pageOrders)
	}
	if o.only == "" || o.only == onlyCallback {
		cmd += fmt.Sprintf(" -callback-open %d -callback-orders %d", o.callbackOpen, o.callbackOrders)
	}
	if o.only != "" {
		cmd += " -only " + o.only
	}
	if o.out != "" {
		cmd += " -out " + o.out
	}
	return cmd
}

// onlyNotify is the -only value that measures the checkout with and without
// notifications and their delivery, and nothing else.
const onlyNotify = "notify"

// pendingOrders is how many pending orders the status figure polls, and
// how many open orders the memory figure keeps beside the closed ones.
const pendingOrders = 100

// Reconciler periods: the load figures keep the reconciler out of the
// way (it is timed on its own); the memory figure makes it pass often, but
// not so often that a pass finds the statuses the last one asked for
// still fresh in the poll coalescer (a second).
const (
	loadPollInterval   = time.Hour
	memoryPollInterval = 2 * time.Second
)

// figures is everything one run measured.
type figures struct {
	opts    options
	machine machine

	respond, proxy, status loadResult
	// The checkout figure and the two storage figures beside it are
	// measured in interleaved rounds (rounds), so that a disk whose speed
	// drifts (a shared machine's) is measured as the checkout met it.
	// checkout is the kassa_checkout form posts; writes are durable
	// FileStorage writes, one per request; stored are orders written as
	// the checkout writes them, with OrderStore alone: no HTTP, no
	// provider. Each merges its rounds.
	checkout, writes, stored loadResult
	rounds                   []round
	// writesPerOrder is the storage writes of one checkout, counted by
	// the Go benchmark BenchmarkCheckoutForm.
	writesPerOrder float64
	// generateCalls are the provider's generate calls during the checkout
	// figure.
	generateCalls float64
	// statusPolls are the provider's checkpay calls during statusWindow,
	// the time between the metric scrapes around the status figure.
	statusPolls  float64
	statusWindow time.Duration

	memory   memoryFigures
	bench    benchRun
	notify   notifyFigures
	scale    scaleFigures
	callback callbackFigures
	// previous is the report -out held before this run.
	previous previousRun
}

// memoryFigures are the shop's memory and reconciler with and without
// the closed orders in its storage.
type memoryFigures struct {
	before, after, restarted memory
	// passBefore, passAfter and passRestarted are mean reconciler pass
	// times over the open orders, with and without the closed ones.
	passBefore, passAfter, passRestarted time.Duration
	seeded                               int
	seedTime                             time.Duration
	// scan is the time to read every stored order once.
	scan time.Duration
}

// run measures every figure; progress goes to w.
func run(ctx context.Context, opts options, w io.Writer) (*figures, error) {
	f := &figures{opts: opts, machine: thisMachine()}
	if opts.out != "" {
		old, err := os.ReadFile(opts.out)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		f.previous = parsePrevious(string(old))
	}
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "kassa-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	f.machine.storageDir, f.machine.storageFS = dir, fileSystem(dir)

	fmt.Fprintln(w, "building ./cmd/caddy")
	bin, err := buildCaddy(ctx, root, dir)
	if err != nil {
		return nil, err
	}
	var ports [4]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			return nil, err
		}
	}
	providerAdmin, providerPort, shopAdmin, shopPort := ports[0], ports[1], ports[2], ports[3]
	provider, err := startCaddy(ctx, bin, dir, "sandbox", providerCaddyfile(providerAdmin, providerPort), providerAdmin,
		fmt.Sprintf("http://127.0.0.1:%d/control/settings", providerPort))
	if err != nil {
		return nil, err
	}
	defer provider.stop()

	startShop := func(name, storage string, poll time.Duration) (*shop, error) {
		base := fmt.Sprintf("http://127.0.0.1:%d", shopPort)
		p, err := startCaddy(ctx, bin, dir, name, shopCaddyfile(shopAdmin, shopPort, providerPort, filepath.Join(dir, storage), poll, ""),
			shopAdmin, base+respondPath)
		if err != nil {
			return nil, err
		}
		return &shop{caddyProcess: p, provider: provider, base: base, client: newClient(opts.concurrency)}, nil
	}

	switch opts.only {
	case onlyNotify:
		if err := f.measureNotify(ctx, bin, dir, provider, providerPort, w); err != nil {
			return nil, err
		}
		f.machine.loadAfter = loadAverage()
		return f, nil
	case onlyScale:
		if err := f.measureScale(ctx, bin, dir, provider, providerPort, w); err != nil {
			return nil, err
		}
		f.machine.loadAfter = loadAverage()
		return f, nil
	case onlyCallback:
		if err := f.measureCallback(ctx, bin, dir, provider, providerPort, w); err != nil {
			return nil, err
		}
		f.machine.loadAfter = loadAverage()
		return f, nil
	}

	s, err := startShop("shop-load", "orders-load", loadPollInterval)
	if err != nil {
		return nil, err
	}
	err = f.measureLoad(ctx, s, filepath.Join(dir, "writes"), w)
	s.stop()
	if err != nil {
		return nil, err
	}

	if err := f.measureNotify(ctx, bin, dir, provider, providerPort, w); err != nil {
		return nil, err
	}
	if err := f.measureMemory(ctx, startShop, filepath.Join(dir, "orders-memory"), w); err != nil {
		return nil, err
	}
	if err := f.measureScale(ctx, bin, dir, provider, providerPort, w); err != nil {
		return nil, err
	}
	if opts.callbackOrders > 0 {
		if err := f.measureCallback(ctx, bin, dir, provider, providerPort, w); err != nil {
			return nil, err
		}
	}
	provider.stop()

	fmt.Fprintf(w, "Go benchmarks (-benchtime %s)\n", opts.benchtime)
	if f.bench, err = goBenchmarks(ctx, root, opts.benchtime); err != nil {
		return nil, err
	}
	if f.writesPerOrder, err = f.bench.metric("BenchmarkCheckoutForm", "writes/op"); err != nil {
		return nil, err
	}
	fmt.Fprintf(w, "  %d benchmarks; %.0f storage writes per order\n", len(f.bench.results), f.writesPerOrder)
	f.machine.loadAfter = loadAverage()
	return f, nil
}

// measureLoad measures respond, reverse_proxy, status and checkout on s,
// and the durable writes in writesDir around checkout.
func (f *figures) measureLoad(ctx context.Context, s *shop, writesDir string, w io.Writer) error {
	n, d := f.opts.concurrency, f.opts.duration
	var err error
	fmt.Fprintln(w, "respond")
	if f.respond, err = s.load(func() loadResult {
		return drive(ctx, n, d, func(int, int) error { return get(s.client, s.base+respondPath, http.StatusOK) })
	}); err != nil {
		return err
	}
	fmt.Fprintf(w, "  %.0f req/s\n", f.respond.rate())

	fmt.Fprintln(w, "reverse_proxy to the sandbox's generate")
	if f.proxy, err = s.load(func() loadResult {
		return drive(ctx, n, d, func(int, int) error { return get(s.client, s.base+proxyPath, http.StatusOK) })
	}); err != nil {
		return err
	}
	fmt.Fprintf(w, "  %.0f req/s\n", f.proxy.rate())

	fmt.Fprintf(w, "status of %d pending orders\n", pendingOrders)
	ids, err := s.createOrders(pendingOrders)
	if err != nil {
		return err
	}
	// One poll of each starts its coalescing window before the count does.
	for _, id := range ids {
		if err := get(s.client, s.base+checkoutPath+"?order="+id, http.StatusOK); err != nil {
			return err
		}
	}
	err = f.profiled(ctx, s, "status", d, func() error {
		before, err := s.metrics(ctx)
		if err != nil {
			return err
		}
		if f.status, err = s.load(func() loadResult { return s.pollStatuses(ctx, ids, n, d) }); err != nil {
			return err
		}
		f.statusWindow = f.status.elapsed
		after, err := s.metrics(ctx)
		f.statusPolls = after.providerCalls("checkpay") - before.providerCalls("checkpay")
		return err
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  %.0f req/s, %.2f provider polls/s per order\n", f.status.rate(), f.pollsPerSecond())

	fmt.Fprintf(w, "checkout form posts, durable writes and the checkout's writes alone, in %d rounds of %s each\n",
		interleavedRounds, d/interleavedRounds)
	err = f.profiled(ctx, s, "checkout", 3*d, func() error {
		before, err := s.metrics(ctx)
		if err != nil {
			return err
		}
		if err := f.measureCheckout(ctx, s, writesDir, w); err != nil {
			return err
		}
		after, err := s.metrics(ctx)
		f.generateCalls = after.providerCalls("generate") - before.providerCalls("generate")
		fmt.Fprintf(w, "  %.0f orders/s, %.3f provider calls per order; %.0f writes/s; %.0f orders/s of writes alone\n",
			f.checkout.rate(), f.callsPerOrder(), f.writes.rate(), f.stored.rate())
		return err
	})
	return err
}

// interleavedRounds is how many rounds the checkout figure is measured in,
// each beside a round of durable writes and one of the checkout's writes
// alone.
const interleavedRounds = 5

// round is one round of the checkout figure and the storage figures
// beside it.
type round struct{ checkout, writes, stored loadResult }

// measureCheckout measures, in interleavedRounds rounds that together
// last three figures' time, the checkout's form posts on s, the durable
// write rate in writesDir, and the checkout's own writes alone there.
func (f *figures) measureCheckout(ctx context.Context, s *shop, writesDir string, w io.Writer) error {
	n, d := f.opts.concurrency, f.opts.duration/interleavedRounds
	record, err := json.Marshal(sampleOrder(0, kassa.OrderPending)) // an order's size
	if err != nil {
		return err
	}
	for range interleavedRounds {
		var r round
		if r.writes, err = s.harnessLoad(func() loadResult { return durableWrites(ctx, writesDir, record, n, d) }); err != nil {
			return err
		}
		if r.checkout, err = s.load(func() loadResult {
			return drive(ctx, n, d, func(int, int) error {
				return postForm(s.client, s.base+checkoutPath, checkoutForm, http.StatusSeeOther)
			})
		}); err != nil {
			return err
		}
		if r.stored, err = s.harnessLoad(func() loadResult {
			return storeOrders(ctx, filepath.Join(writesDir, "orders"), n, d)
		}); err != nil {
			return err
		}
		fmt.Fprintf(w, "  round: %.0f writes/s, %.0f orders/s, %.0f orders/s of writes alone\n",
			r.writes.rate(), r.checkout.rate(), r.stored.rate())
		f.rounds = append(f.rounds, r)
		f.writes, f.checkout, f.stored = f.writes.plus(r.writes), f.checkout.plus(r.checkout), f.stored.plus(r.stored)
	}
	return nil
}

// profiled runs measure, and with -pprof CPU profiles of s and of its
// sandbox over the first d of it.
func (f *figures) profiled(ctx context.Context, s *shop, name string, d time.Duration, measure func() error) error {
	if f.opts.pprof == "" {
		return measure()
	}
	if err := os.MkdirAll(f.opts.pprof, 0o755); err != nil {
		return err
	}
	profiles := make(chan error, 2)
	for prefix, p := range map[string]*caddyProcess{"": s.caddyProcess, "sandbox-": s.provider} {
		file := filepath.Join(f.opts.pprof, prefix+name+".cpu.pprof")
		go func() { profiles <- p.cpuProfile(ctx, d, file) }()
	}
	err := measure()
	for range 2 {
		if perr := <-profiles; err == nil && perr != nil {
			err = perr
		}
	}
	return err
}

// shopStarter starts a shop Caddy named name on the storage directory
// storage, with the reconciler's period poll.
type shopStarter func(name, storage string, poll time.Duration) (*shop, error)

// measureMemory measures the shop's memory and reconciler pass on a
// storage with the open orders only, then with the closed ones too, in the
// same process and in a fresh one.
func (f *figures) measureMemory(ctx context.Context, startShop shopStarter, storage string, w io.Writer) error {
	m := &f.memory
	fmt.Fprintf(w, "memory with %d open orders\n", pendingOrders)
	s, err := startShop("shop-memory", filepath.Base(storage), memoryPollInterval)
	if err != nil {
		return err
	}
	defer s.stop()
	ids, err := s.createOrders(pendingOrders)
	if err != nil {
		return err
	}
	if m.before, m.passBefore, err = f.serve(ctx, s, ids); err != nil {
		return err
	}
	fmt.Fprintf(w, "  peak RSS %s, reconciler pass %s\n", megabytes(m.before.peak), roundDuration(m.passBefore))

	fmt.Fprintf(w, "storing %d closed orders\n", f.opts.orders)
	start := time.Now()
	if err := seedClosedOrders(ctx, storage, f.opts.orders, f.opts.concurrency); err != nil {
		return err
	}
	m.seeded, m.seedTime = f.opts.orders, time.Since(start)
	fmt.Fprintf(w, "  in %s\n", m.seedTime.Round(time.Millisecond))
	if m.after, m.passAfter, err = f.serve(ctx, s, ids); err != nil {
		return err
	}
	fmt.Fprintf(w, "  same process: peak RSS %s, reconciler pass %s\n", megabytes(m.after.peak), roundDuration(m.passAfter))

	s.stop()
	restarted, err := startShop("shop-restarted", filepath.Base(storage), memoryPollInterval)
	if err != nil {
		return err
	}
	m.restarted, m.passRestarted, err = f.serve(ctx, restarted, ids)
	restarted.stop()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "  fresh process: peak RSS %s, reconciler pass %s\n", megabytes(m.restarted.peak), roundDuration(m.passRestarted))

	if m.scan, err = scanOrders(ctx, storage); err != nil {
		return err
	}
	fmt.Fprintf(w, "  reading every order once: %s\n", m.scan.Round(time.Millisecond))
	return nil
}

// serve is the memory figure's workload: buyers poll the open orders for
// the figure's duration; then, once their polls no longer spare the
// reconciler its provider calls, it passes twice. It returns the shop's
// memory after that and the mean time of those passes.
func (f *figures) serve(ctx context.Context, s *shop, ids []string) (memory, time.Duration, error) {
	if res := s.pollStatuses(ctx, ids, f.opts.concurrency, f.opts.duration); res.failures > 0 {
		return memory{}, 0, fmt.Errorf("status: %d failures, the first: %s", res.failures, res.firstFailure)
	}
	select {
	case <-ctx.Done():
		return memory{}, 0, ctx.Err()
	case <-time.After(time.Second): // the poll coalescer's window
	}
	since, err := s.metrics(ctx)
	if err != nil {
		return memory{}, 0, err
	}
	pass, err := s.passTime(ctx, since, 2)
	if err != nil {
		return memory{}, 0, err
	}
	mem, err := s.memory()
	return mem, pass, err
}
