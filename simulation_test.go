package kassa

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
)

// The lifecycle simulation: many random histories of a shop with two Caddy
// instances on one storage, buyers, an operator, the three providers
// (simWorld, written from the seed documents) and faults: failing, slow
// and crashing storage, lost locks, lost replies, crashes and reloads. Each
// history runs on a simulated clock, single-threaded, from one seed, so a
// failing history replays exactly:
//
//	go test -run Simulation -seed N -v
//
// After every history the contract of DESIGN.md's "What a paid order is
// owed" is checked; some of it is also checked as the history runs.

var (
	simSeed      = flag.Uint64("seed", 0, "replay the lifecycle simulation's history with this seed, traced")
	simHistories = flag.Int("histories", simDefaultHistories, "how many histories the lifecycle simulation runs")
)

// Knobs of a simulated shop.
const (
	simPollInterval = 10 * time.Second
	simOrderTTL     = 30 * time.Minute
	simKeepUnpaid   = 6 * time.Hour
	simSteps        = 120 // actions in a history, before it settles
)

// simAccounts are the shop's payment accounts: CrystalPAY (no cancel, no
// order id) and Pegas-kassa (refuses a repeated order id).
var simAccounts = []string{"main", "card"}

func TestSimulation(t *testing.T) {
	first, n := uint64(1), *simHistories
	if *simSeed != 0 {
		first, n = *simSeed, 1
	}
	var (
		mu         sync.Mutex
		steps      atomic.Int64
		violations []string
		failed     []uint64
		kinds      = map[string][]uint64{} // what went wrong -> the seeds it went wrong in
	)
	seeds := make(chan uint64)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range seeds {
				h := newSimHistory(t, seed, *simSeed != 0)
				h.run()
				steps.Add(int64(h.steps))
				if len(h.violations) > 0 {
					mu.Lock()
					failed = append(failed, seed)
					for _, v := range h.violations {
						violations = append(violations, fmt.Sprintf("seed %d: %s", seed, v))
					}
					for _, k := range h.kinds {
						kinds[k] = append(kinds[k], seed)
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		seeds <- first + uint64(i)
	}
	close(seeds)
	wg.Wait()
	slices.Sort(failed)
	sort.Strings(violations)
	for i, v := range violations {
		if i == 50 {
			t.Errorf("... and %d more", len(violations)-50)
			break
		}
		t.Error(v)
	}
	if len(failed) > 0 {
		t.Errorf("failing seeds (replay one with -seed N -v): %v", failed[:min(len(failed), 20)])
		names := make([]string, 0, len(kinds))
		for k := range kinds {
			names = append(names, k)
		}
		sort.Strings(names)
		for _, k := range names {
			seeds := kinds[k]
			slices.Sort(seeds)
			t.Errorf("%5d histories: %s (seeds %v)", len(seeds), k, seeds[:min(len(seeds), 5)])
		}
	}
	fmt.Printf("simulation: %d histories, %d steps, %d violations\n", n, steps.Load(), len(violations))
}

// simHistory is one simulated history: its world, its storage, its two
// instances and what the buyers and the operator have been told.
type simHistory struct {
	t     *testing.T
	seed  uint64
	trace bool
	rng   *rand.Rand
	now   time.Time
	world *simWorld
	store *simStorage
	// ctx is the Caddy context the instances' modules are provisioned in.
	ctx    caddy.Context
	cancel context.CancelFunc
	insts  [2]*simInstance
	steps  int
	// nesting is how deep in a provider call's "during" actions the
	// history is: actions run during a call never run more of their own.
	nesting int
	// settling: the history's faults are over and it runs to rest.
	settling bool
	// current is the instance whose step runs; what happens during its
	// provider calls happens on the other one.
	current *simInstance
	// focus is the order the provider call under way is about, if it names
	// one: what happens during the call often concerns it.
	focus string

	links    []simLink        // payment pages handed to buyers
	keys     []simKey         // Idempotency-Keys and upstream order ids used
	payouts  []simPayoutKey   // payout keys used
	orderIDs []string         // every order id a checkout answered with
	asOf     map[string]order // the last record of each order the storage saw written
	deleted  map[string]bool  // orders compacted
	confirm  map[string]bool  // orders an operator confirmed
	toldPaid map[string]bool  // orders whose provider told an instance they were paid
	idNum    int

	violations []string
	// kinds are the formats of the violations: what went wrong, whatever
	// the order.
	kinds []string
}

// order is a stored order as the storage monitor saw it.
type order = Order

type simLink struct {
	url     string
	orderID string
}

type simKey struct {
	account string
	kind    string // "key" (Idempotency-Key, JSON or form) or "shop" (upstream order id)
	value   string
	body    string
	form    bool
}

type simPayoutKey struct {
	account, key, body string
}

// simInstance is one Caddy instance: an app over the shared storage and
// the world; a crash or reload replaces its app.
type simInstance struct {
	h       *simHistory
	name    string
	app     *App
	crashed bool
	// locks are the process's locks: a restart makes new ones.
	locks *processLocks
	// starts counts the instance's starts, which name its lease holder.
	starts int
	// checkouts per account: the storefront's, and a proxied one.
	checkout, proxied map[string]*Checkout
}

func newSimHistory(t *testing.T, seed uint64, trace bool) *simHistory {
	h := &simHistory{t: t, seed: seed, trace: trace, rng: rand.New(rand.NewPCG(seed, 0x6b61737361)),
		now: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC), asOf: map[string]order{}, deleted: map[string]bool{},
		confirm: map[string]bool{}, toldPaid: map[string]bool{}}
	h.world = newSimWorld(h.clock, rand.New(rand.NewPCG(seed, 0x776f726c64)))
	h.world.Before = h.during
	h.world.ExtraTaxTypes = []int{11}
	h.world.CrystalBalance = decimal.NewFromInt(10_000_000)
	h.world.PegasBalance = decimal.NewFromInt(10_000_000)
	h.store = &simStorage{h: h, data: map[string]simValue{}, locks: map[string]string{}}
	h.ctx, h.cancel = caddy.NewContext(caddy.Context{Context: context.Background()})
	h.faults(true)
	for i := range h.insts {
		h.insts[i] = &simInstance{h: h, name: string(rune('A' + i))}
		h.insts[i].start()
	}
	return h
}

func (h *simHistory) clock() time.Time { return h.now }

func (h *simHistory) tracef(format string, args ...any) {
	if h.trace {
		h.t.Logf("[%s] "+format, append([]any{h.now.Format("15:04:05")}, args...)...)
	}
}

func (h *simHistory) violation(format string, args ...any) {
	v := fmt.Sprintf(format, args...)
	h.tracef("VIOLATION: %s", v)
	if !slices.Contains(h.violations, v) {
		h.violations = append(h.violations, v)
	}
	if kind := strings.NewReplacer("%s", "…", "%v", "…", "%d", "…").Replace(format); !slices.Contains(h.kinds, kind) {
		h.kinds = append(h.kinds, kind)
	}
}

// faults turns the history's faults on (with this history's rates) or off.
func (h *simHistory) faults(on bool) {
	if !on {
		h.world.Faults = simFaults{}
		h.store.faults = simStorageFaults{}
		return
	}
	// Each history draws its own fault rates, so some are calm and some
	// are stormy.
	p := func(max float64) float64 {
		if h.rng.IntN(3) == 0 {
			return 0
		}
		return h.rng.Float64() * max
	}
	h.world.Faults = simFaults{Refused: p(0.05), LostReply: p(0.05), ServerError: p(0.05), Garbage: p(0.03),
		PegasOrderIDInvalid: p(0.05), PegasReceiptNotDocument: p(0.1), TillFailure: p(0.2)}
	h.store.faults = simStorageFaults{fail: p(0.03), slow: p(0.05), crash: p(0.01), lostLock: p(0.3)}
}

// start gives the instance a fresh app: at the history's start, and after a
// crash or a reload.
func (in *simInstance) start() {
	h := in.h
	in.crashed = false
	// A dead process's storage locks expire.
	for name, holder := range h.store.locks {
		if holder == in.name {
			delete(h.store.locks, name)
		}
	}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), zapcore.ErrorLevel))
	if h.trace {
		logger = zaptest.NewLogger(h.t).Named(in.name)
	}
	// A step that panicked is logged, not fatal, in a running Caddy: here
	// it is a violation.
	logger = logger.WithOptions(zap.Hooks(func(e zapcore.Entry) error {
		if e.Level >= zapcore.ErrorLevel && strings.Contains(e.Message, "panicked") {
			h.violation("%s: "+e.Message, in.name)
		}
		return nil
	}))
	// One worker: the history runs single-threaded, so that it replays
	// from its seed; the two instances' interleaving stands for concurrency.
	a := &App{logger: logger, now: h.clock, PollInterval: caddy.Duration(simPollInterval), PollConcurrency: 1,
		OrderTTL: caddy.Duration(simOrderTTL), KeepUnpaid: caddy.Duration(simKeepUnpaid)}
	a.newID = h.newOrderID
	// Tea takes the receipt service's default rate, which each start of
	// an instance draws anew (a config changed across reloads); the cup
	// is at 22%, which Smart Cashier knows as code 11.
	catalog, err := NewCatalog([]Product{
		{SKU: "tea", Name: "Green tea 100 g", Price: decimal.RequireFromString("350.00")},
		{SKU: "cup", Name: "Cup", Price: decimal.RequireFromString("120.00"), VAT: VAT22},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	a.catalog = catalog
	transport := simTransport{in}
	crystal := &CrystalPay{API: crystalPayAPIv1, Login: simCrystalLogin, Secret: simCrystalSecret, Secret2: simCrystalSecret2, Endpoint: simCrystalEndpoint}
	pegas := &Pegas{Token: simPegasToken, Endpoint: simPegasEndpoint}
	retries := 1
	cashier := &SmartCashier{Token: simCashierToken, Endpoint: simCashierEndpoint, Taxation: TaxationUSNIncome, Retries: &retries,
		VAT: []VAT{VATNone, VAT22, VAT10}[h.rng.IntN(3)], TaxTypes: map[string]int{"vat22": 11}}
	if !h.settling && h.rng.IntN(10) == 0 {
		// A config in the middle of a rolling change: this instance does
		// not know 22%, and refuses to send a receipt at it.
		cashier.VAT, cashier.TaxTypes = VATNone, nil
	}
	for _, m := range []caddy.Provisioner{crystal, pegas, cashier} {
		if err := m.Provision(h.ctx); err != nil {
			h.t.Fatal(err)
		}
	}
	crystal.api.http.Transport, pegas.api.http.Transport, cashier.api.http.Transport = transport, transport, transport
	cashier.backoff, cashier.logger = 0, logger
	a.accounts = map[string]*account{
		"main": {name: "main", provider: "crystalpay", PaymentProvider: crystal.Provider()},
		"card": {name: "card", provider: "pegas", PaymentProvider: pegas},
	}
	a.receipts = cashier
	a.useStorage(&simStorageView{s: h.store, in: in})
	// Every start is a process of its own, with a holder name of its own.
	in.starts++
	a.reconciler.lease.id = fmt.Sprintf("%s-%d", in.name, in.starts)
	in.locks = new(processLocks)
	a.useLocks(in.locks)
	a.statuses.now = h.clock
	// A receiver no deliverer posts to: the events' records, files and
	// outbox entries are checked at the end (checkEvents).
	a.Notify = []*Notify{{URL: "http://receiver.sim/hook", Secret: "sim-notify-secret"}}
	if err := a.provisionNotify(); err != nil {
		h.t.Fatal(err)
	}
	in.app = a
	in.checkout, in.proxied = map[string]*Checkout{}, map[string]*Checkout{}
	for _, name := range simAccounts {
		in.checkout[name] = &Checkout{Payment: name, Redirect: "https://shop.sim/thanks?order={kassa.order_id}",
			app: a, acc: a.accounts[name], logger: logger, MaxBody: defaultMaxBody}
		in.proxied[name] = &Checkout{Payment: name, Amount: "{sim.amount}", OrderID: "{sim.shop_order}", Email: "{sim.email}",
			Redirect: "https://shop.sim/thanks?order={kassa.order_id}", app: a, acc: a.accounts[name], logger: logger, MaxBody: defaultMaxBody}
	}
}

// newOrderID draws an order id from the history's random source.
func (h *simHistory) newOrderID() string {
	var b [16]byte
	for {
		for i := range b {
			b[i] = byte(h.rng.UintN(256))
		}
		if b[0]>>2 < 62 {
			return base64.RawURLEncoding.EncodeToString(b[:])
		}
	}
}

// crash kills the instance where it stands: its storage and provider calls
// fail from now on, the step it is in unwinds, and it restarts afterwards
// with nothing of its memory.
func (in *simInstance) crash(where string) {
	if !in.crashed {
		in.h.tracef("%s crashes %s", in.name, where)
		in.crashed = true
	}
}

// simTransport carries an instance's provider calls to the world, unless
// the instance has crashed; it may crash the instance as a reply comes back.
type simTransport struct{ in *simInstance }

var errSimCrashed = errors.New("simulation: this instance has crashed")

func (t simTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if t.in.crashed {
		return nil, errSimCrashed
	}
	h := t.in.h
	h.focus = ""
	q := req.URL.Query()
	switch {
	case q.Get("order_id") != "":
		h.focus = q.Get("order_id")
	case q.Get("i") != "":
		for _, inv := range h.world.Invoices() {
			if inv.ID == q.Get("i") {
				h.focus = inv.OrderID
			}
		}
	}
	focus := h.focus // what happens during the call may ask about other orders
	resp, err := h.world.RoundTrip(req)
	if !t.in.h.settling && t.in.h.rng.Float64() < t.in.h.store.faults.crash {
		t.in.crash("as a provider's reply arrives")
	}
	if t.in.crashed {
		return nil, errSimCrashed
	}
	if err == nil && resp.StatusCode == http.StatusOK && focus != "" {
		// Remember which orders an instance was told were paid.
		body, readErr := io.ReadAll(resp.Body)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		if readErr == nil && (bytes.Contains(body, []byte(`"payed"`)) || bytes.HasPrefix(body, []byte("%PDF-"))) {
			h.toldPaid[focus] = true
		}
	}
	return resp, err
}

// run plays the history: random steps, then a calm stretch in which the
// shop settles, then the checks.
func (h *simHistory) run() {
	for range simSteps {
		h.step()
	}
	h.settle()
	h.checkEnd()
	h.cancel()
}

// step runs one random action. A panic in it is a violation (a running
// Caddy would be down), and the history goes on.
func (h *simHistory) step() {
	h.steps++
	defer func() {
		if v := recover(); v != nil {
			h.violation("a step panicked: %v", v)
			for _, in := range h.insts {
				in.crash("in a panic")
				in.start()
			}
		}
	}()
	in := h.insts[h.rng.IntN(2)]
	h.current = in
	switch r := h.rng.IntN(100); {
	case r < 25:
		h.checkout(in)
	case r < 32:
		h.replay(in)
	case r < 40:
		h.poll(in)
	case r < 50:
		h.pay()
	case r < 55:
		h.world.Process()
	case r < 70:
		h.reconcile(in)
	case r < 72:
		h.compact(in)
	case r < 75:
		h.operator(in)
	case r < 78:
		h.payout(in)
	case r < 91:
		h.advance()
	case r < 92:
		h.world.CashierTokenExpired = !h.world.CashierTokenExpired
		h.tracef("Smart Cashier's token expired: %v", h.world.CashierTokenExpired)
	case r < 95:
		h.tracef("%s reloads", in.name)
		in.start()
	default:
		in.crash("between steps")
	}
	for _, in := range h.insts {
		if in.crashed {
			in.start()
		}
	}
}

// during runs at the start of every provider call: now and then, other
// things happen while the call is on its way.
func (h *simHistory) during(op string) {
	if h.settling || h.nesting > 0 || h.rng.IntN(6) != 0 {
		return
	}
	h.nesting++
	defer func() { h.nesting-- }()
	focus := h.focus
	for range 1 + h.rng.IntN(2) {
		switch h.rng.IntN(5) {
		case 0:
			if !h.payOrder(focus) {
				h.pay()
			}
		case 1:
			h.advance()
		case 2:
			// The other instance works meanwhile.
			other := h.insts[0]
			if other == h.current {
				other = h.insts[1]
			}
			h.reconcile(other)
		case 3:
			h.now = h.now.Add(time.Duration(1+h.rng.IntN(120)) * time.Second)
		case 4:
			h.world.Process()
		}
	}
}

// interleave runs an action of the instance other than in, as if it ran
// between two of in's storage operations.
func (h *simHistory) interleave(in *simInstance) {
	other := h.insts[0]
	if other == in {
		other = h.insts[1]
	}
	if other.crashed {
		return
	}
	h.nesting++
	defer func() { h.nesting-- }()
	switch h.rng.IntN(6) {
	case 0:
		h.reconcile(other)
	case 1:
		h.poll(other)
	case 2:
		h.operator(other)
	case 3:
		h.replay(other)
	case 4:
		h.pay()
	default:
		h.payout(other)
	}
}

// advance moves the clock: mostly seconds, sometimes minutes, now and then
// past an order's time to live.
func (h *simHistory) advance() {
	var d time.Duration
	switch r := h.rng.IntN(20); {
	case r < 12:
		d = time.Duration(1+h.rng.IntN(20)) * time.Second
	case r < 18:
		d = time.Duration(1+h.rng.IntN(10)) * time.Minute
	default:
		d = time.Duration(20+h.rng.IntN(60)) * time.Minute
	}
	h.now = h.now.Add(d)
}

// request serves one request with handler and returns the answer and the
// replacer it ran with.
func (h *simHistory) serve(handler *Checkout, req *http.Request, vars map[string]string) (*httptest.ResponseRecorder, *caddy.Replacer) {
	repl := caddy.NewReplacer()
	for k, v := range vars {
		repl.Set(k, v)
	}
	req = req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl))
	w := httptest.NewRecorder()
	if err := handler.ServeHTTP(w, req, nil); err != nil {
		h.violation("checkout returned an error instead of answering: %v", err)
	}
	return w, repl
}

// checkout is a buyer (or an upstream) checking out: a form, JSON or a
// proxied storefront, with or without an Idempotency-Key.
func (h *simHistory) checkout(in *simInstance) {
	account := simAccounts[h.rng.IntN(2)]
	cart := [][2]string{{"tea", "1"}, {"cup", "2"}, {"tea", "2"}}[h.rng.IntN(3)]
	email := fmt.Sprintf("buyer%d@example.com", h.rng.IntN(50))
	switch h.rng.IntN(3) {
	case 0: // a plain form
		body := "item=" + cart[0] + ":" + cart[1] + "&email=" + url.QueryEscape(email)
		k := simKey{account: account, kind: "key", body: body, form: true}
		if h.rng.IntN(2) == 0 {
			k.value = h.newKey()
		}
		h.postCheckout(in, k)
	case 1: // JSON
		body := fmt.Sprintf(`{"items":[{"sku":%q,"qty":%s}],"email":%q}`, cart[0], cart[1], email)
		k := simKey{account: account, kind: "key", body: body}
		if h.rng.IntN(3) > 0 {
			k.value = h.newKey()
		}
		h.postCheckout(in, k)
	default: // proxied: the upstream's order id makes it idempotent
		h.idNum++
		k := simKey{account: account, kind: "shop", value: fmt.Sprintf("BACKEND-%d", h.idNum),
			body: fmt.Sprintf("%d00", 1+h.rng.IntN(9)), form: h.rng.IntN(2) == 0}
		h.postCheckout(in, k)
	}
}

func (h *simHistory) newKey() string {
	h.idNum++
	return fmt.Sprintf("sim-key-%d-%08d", h.seed, h.idNum)
}

// replay sends a checkout made before once more: a retry, a double click,
// a back button.
func (h *simHistory) replay(in *simInstance) {
	if len(h.keys) == 0 {
		return
	}
	h.postCheckout(in, h.keys[h.rng.IntN(len(h.keys))])
}

// postCheckout sends one checkout and checks its answer: a payment page
// only for an order stored pending with that page.
func (h *simHistory) postCheckout(in *simInstance, k simKey) {
	var (
		req     *http.Request
		vars    map[string]string
		handler = in.checkout[k.account]
	)
	switch {
	case k.kind == "shop":
		handler = in.proxied[k.account]
		req = httptest.NewRequest(http.MethodGet, "/pay", nil)
		vars = map[string]string{"sim.amount": k.body, "sim.shop_order": k.value, "sim.email": "upstream@example.com"}
	case k.form:
		req = httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(k.body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	default:
		req = httptest.NewRequest(http.MethodPost, "/pay", strings.NewReader(k.body))
		req.Header.Set("Content-Type", "application/json")
	}
	if k.form {
		req.Header.Set("Accept", "text/html")
	} else {
		req.Header.Set("Accept", "application/json")
	}
	if k.kind == "key" && k.value != "" {
		req.Header.Set("Idempotency-Key", k.value)
	}
	if k.value != "" && !slices.Contains(h.keys, k) {
		h.keys = append(h.keys, k)
	}
	w, repl := h.serve(handler, req, vars)
	id, _ := repl.GetString("kassa.order_id")
	if id != "" && !slices.Contains(h.orderIDs, id) {
		h.orderIDs = append(h.orderIDs, id)
	}
	link := ""
	switch {
	case w.Code == http.StatusSeeOther:
		link = w.Header().Get("Location")
		if strings.HasPrefix(link, "https://shop.sim/thanks") {
			link = "" // the redirect of a paid order
		}
	case w.Code == http.StatusCreated:
		var v struct {
			OrderID    string `json:"order_id"`
			PaymentURL string `json:"payment_url"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
			h.violation("checkout answered 201 with %q", w.Body.String())
		}
		link, id = v.PaymentURL, v.OrderID
	}
	h.tracef("%s checkout %s %s %q -> %d %s (order %s)", in.name, k.account, k.kind, k.value, w.Code, link, id)
	if link == "" {
		return
	}
	// A payment page goes only to an order stored pending with it.
	o, ok := h.stored(id)
	switch {
	case !ok:
		h.violation("checkout handed out %s for order %s, which is not stored", link, id)
	case o.State != OrderPending:
		h.violation("checkout handed out the payment page of order %s, stored "+string(o.State), id)
	case o.Payment.URL != link:
		h.violation("checkout handed out %s for order %s, stored with %q", link, id, o.Payment.URL)
	}
	h.links = append(h.links, simLink{url: link, orderID: id})
}

// poll is a buyer's status page asking about an order.
func (h *simHistory) poll(in *simInstance) {
	if len(h.orderIDs) == 0 {
		return
	}
	id := h.orderIDs[h.rng.IntN(len(h.orderIDs))]
	req := httptest.NewRequest(http.MethodGet, "/pay?order="+id, nil)
	req.Header.Set("Accept", "application/json")
	w, _ := h.serve(in.checkout[simAccounts[0]], req, nil)
	if w.Code != http.StatusOK {
		return
	}
	var v struct {
		State      OrderState `json:"state"`
		PaymentURL string     `json:"payment_url"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil {
		h.violation("status poll answered %q", w.Body.String())
		return
	}
	h.tracef("%s poll %s -> %s", in.name, id, v.State)
	if v.PaymentURL != "" && v.State != OrderPending {
		h.violation("the status of order %s, "+string(v.State)+", carries its payment page", id)
	}
}

// pay is a buyer paying at a payment page they were given: any time, also
// after the order expired, as long as the shop keeps the order.
func (h *simHistory) pay() {
	if len(h.links) == 0 {
		return
	}
	l := h.links[h.rng.IntN(len(h.links))]
	if h.deleted[l.orderID] {
		return
	}
	if h.world.Pay(l.url) {
		h.tracef("buyer pays %s (order %s)", l.url, l.orderID)
	}
}

// payOrder is the buyer of order id paying it, if they were given its
// payment page; it reports whether they were.
func (h *simHistory) payOrder(id string) bool {
	if id == "" || h.deleted[id] {
		return false
	}
	for _, l := range h.links {
		if l.orderID == id {
			if h.world.Pay(l.url) {
				h.tracef("buyer pays %s (order %s) during a call about it", l.url, l.orderID)
			}
			return true
		}
	}
	return false
}

// reconcile runs one tick of the instance's reconciler, as its ticker
// would: the lease renewed or watched, and a pass if it leads. Now and then
// the instance passes though it lost the lease without knowing yet (a
// leader stalled past the lease's term, in the middle of a pass): two
// leaders at once.
func (h *simHistory) reconcile(in *simInstance) {
	r := in.app.reconciler
	ctx := context.Background()
	if h.leaseLost() {
		h.tracef("%s reconciler pass, its lease lost", in.name)
		r.pass(ctx)
		return
	}
	if !r.lead(ctx) {
		h.tracef("%s reconciler stands by", in.name)
		return
	}
	h.tracef("%s reconciler pass", in.name)
	r.pass(ctx)
}

// compact runs the instance's compaction, as its leader's ticker would.
func (h *simHistory) compact(in *simInstance) {
	r := in.app.reconciler
	if !r.lease.leading && !h.leaseLost() {
		return
	}
	h.tracef("%s compacts", in.name)
	r.compact(context.Background())
}

// leaseLost draws whether an instance acts as the reconciler's leader
// though another holds the lease.
func (h *simHistory) leaseLost() bool {
	return !h.settling && h.rng.Float64() < h.store.faults.lostLock/4
}

// admin sends one admin API request to the instance.
func (h *simHistory) admin(in *simInstance, method, target, body string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	if err := in.app.serveAdmin(w, req); err != nil {
		writeAdminError(w, err)
	}
	return w
}

// operator acts on an order: cancels it, confirms a payment they saw in the
// provider's dashboard, or retries its receipt.
func (h *simHistory) operator(in *simInstance) {
	if len(h.orderIDs) == 0 {
		return
	}
	id := h.orderIDs[h.rng.IntN(len(h.orderIDs))]
	switch h.rng.IntN(4) {
	case 0:
		w := h.admin(in, http.MethodPost, "/kassa/orders/"+id+"/cancel", "", nil)
		h.tracef("%s operator cancels %s -> %d", in.name, id, w.Code)
	case 1:
		if inv, ok := h.invoiceOf(id); ok && inv.Paid {
			w := h.admin(in, http.MethodPost, "/kassa/orders/"+id+"/confirm", "", nil)
			h.tracef("%s operator confirms %s -> %d", in.name, id, w.Code)
			if w.Code == http.StatusOK {
				h.confirm[id] = true
			}
		}
	case 2:
		w := h.admin(in, http.MethodPost, "/kassa/orders/"+id+"/receipt", "", nil)
		h.tracef("%s operator retries the receipt of %s -> %d", in.name, id, w.Code)
	default:
		w := h.admin(in, http.MethodPost, "/kassa/orders/"+id+"/refund", "", nil)
		h.tracef("%s operator refunds %s -> %d", in.name, id, w.Code)
	}
}

// payout is the operator paying money out, under a key: a new payout, or a
// retry or double click of one made before.
func (h *simHistory) payout(in *simInstance) {
	var p simPayoutKey
	if len(h.payouts) > 0 && h.rng.IntN(2) == 0 {
		p = h.payouts[h.rng.IntN(len(h.payouts))]
	} else {
		h.idNum++
		p.account, p.key = simAccounts[h.rng.IntN(2)], h.newKey()
		// Each payout goes to a payee of its own, so the world's payouts
		// tell which key paid.
		if p.account == "main" {
			p.body = fmt.Sprintf(`{"payment":"main","amount":"100","to":"W%d","method":"qw"}`, h.idNum)
		} else {
			p.body = fmt.Sprintf(`{"payment":"card","amount":"100.00","to":"7999%07d","method":"wallet","comment":"payout"}`, h.idNum)
		}
		h.payouts = append(h.payouts, p)
	}
	w := h.admin(in, http.MethodPost, "/kassa/payouts", p.body, map[string]string{"Idempotency-Key": p.key})
	h.tracef("%s payout %s -> %d %s", in.name, p.key, w.Code, strings.TrimSpace(w.Body.String()))
}

// settle ends the history's faults and lets the shop come to rest: the
// reconciler's passes, the till, time past every order's life, an operator
// retrying failed receipts.
func (h *simHistory) settle() {
	h.settling = true
	h.faults(false)
	h.store.lostLock = false
	h.world.CashierTokenExpired = false
	for _, in := range h.insts {
		in.start() // every instance on the final config
	}
	in := h.insts[0]
	for i := range 60 {
		h.world.Process()
		h.reconcile(in)
		h.retryFailedReceipts(in)
		if h.atRest() {
			return
		}
		h.now = h.now.Add(time.Duration(1+i) * time.Minute)
	}
}

// retryFailedReceipts is the operator retrying every failed receipt and
// refund of a paid order.
func (h *simHistory) retryFailedReceipts(in *simInstance) {
	for _, id := range h.knownOrders() {
		o, ok := h.stored(id)
		if !ok || o.State != OrderPaid {
			continue
		}
		if o.Receipt == nil || o.Receipt.State == ReceiptFailed {
			h.admin(in, http.MethodPost, "/kassa/orders/"+id+"/receipt", "", nil)
		}
		if o.Refund != nil && o.Refund.State == ReceiptFailed {
			h.admin(in, http.MethodPost, "/kassa/orders/"+id+"/refund", "", nil)
		}
	}
}

// atRest reports whether the shop has nothing left to do: no open order,
// every paid invoice's order paid, every paid order's receipts done.
func (h *simHistory) atRest() bool {
	for k := range h.store.data {
		if strings.HasPrefix(k, openPrefix+"/") {
			return false
		}
	}
	for _, inv := range h.world.Invoices() {
		if inv.Paid && inv.OrderID != "" && !h.deleted[inv.OrderID] {
			if o, ok := h.stored(inv.OrderID); !ok || o.State != OrderPaid {
				return false
			}
		}
	}
	for _, id := range h.knownOrders() {
		if o, ok := h.stored(id); ok && o.State == OrderPaid &&
			(o.Receipt == nil || o.Receipt.State != ReceiptDone || (o.Refund != nil && o.Refund.State != ReceiptDone)) {
			return false
		}
	}
	return true
}

// invoiceOf is the world's invoice of an order.
func (h *simHistory) invoiceOf(id string) (simInvoice, bool) {
	return h.world.InvoiceOf(id)
}

// stored is an order as the storage holds it, faults aside: its last
// record written, while a record of it is stored.
func (h *simHistory) stored(id string) (*Order, bool) {
	for _, key := range []string{orderKey(id), openKey(id)} {
		if v, ok := h.store.data[key]; ok && len(v.value) > 0 && v.value[0] == '{' {
			o := h.asOf[id]
			return &o, true
		}
	}
	return nil, false
}

// checkEnd checks the contract once the history has come to rest.
func (h *simHistory) checkEnd() {
	invoices := h.world.Invoices()
	perOrder := map[string]int{}
	for _, inv := range invoices {
		if inv.OrderID != "" {
			perOrder[inv.OrderID]++
			if perOrder[inv.OrderID] == 2 {
				h.violation("order %s has two invoices at %s", inv.OrderID, inv.Provider)
			}
		}
		if !inv.Paid {
			continue
		}
		if h.deleted[inv.OrderID] {
			continue
		}
		o, ok := h.stored(inv.OrderID)
		switch {
		case inv.OrderID == "":
			h.violation("invoice %s was paid and belongs to no order", inv.ID)
		case !ok:
			h.violation("invoice %s of order %s was paid, and the order is lost", inv.ID, inv.OrderID)
		case o.State != OrderPaid:
			h.violation("invoice %s of order %s was paid, and the order is "+string(o.State), inv.ID, inv.OrderID)
		}
	}
	sales, returns := map[string]int{}, map[string]int{}
	saleOps, returnOps := map[string]simOperation{}, map[string]simOperation{}
	for _, op := range h.world.Operations() {
		if op.Mismatched > 0 {
			h.violation("operation %s was sent again with another body", op.OperationID)
		}
		if op.Kind == "formReceipt" && op.Email == "" && op.Phone == "" {
			h.violation("receipt %s goes to no buyer contact", op.OperationID)
		}
		if op.Kind != "formReceipt" || op.Status != 2 {
			continue
		}
		id, ok := strings.CutPrefix(op.OperationID, "kassa-")
		if !ok || len(id) < orderIDLen {
			continue
		}
		id = id[:orderIDLen]
		switch op.ReceiptType {
		case int(ReceiptSale):
			sales[id]++
			saleOps[id] = op
		case int(ReceiptSaleReturn):
			returns[id]++
			returnOps[id] = op
		}
		if o, ok := h.stored(id); !ok || o.State != OrderPaid {
			h.violation("receipt %s was printed for order %s, which is not paid", op.OperationID, id)
		}
	}
	for _, id := range h.knownOrders() {
		o, ok := h.stored(id)
		if !ok {
			if !h.deleted[id] {
				h.violation("order %s is lost", id)
			}
			continue
		}
		inv, hasInvoice := h.invoiceOf(id)
		switch o.State {
		case OrderPaid:
			if n := sales[id]; n != 1 {
				h.violation("paid order %s has "+strconv.Itoa(n)+" processed sale receipts", id)
			}
			if !h.confirm[id] && !(hasInvoice && inv.Paid) {
				h.violation("order %s is paid, but its invoice is not", id)
			}
		case OrderPending:
			if !hasInvoice {
				h.violation("order %s is pending without an invoice at %s", id, o.Provider)
			}
		}
		h.checkEvents(o)
		if _, ok := h.store.data[createdKey(orderEntry(o))]; !ok {
			h.violation("order %s is stored without its time-index entry", id)
		}
		if o.State != OrderPaid && sales[id] > 0 {
			h.violation("order %s is "+string(o.State)+" and has a sale receipt", id)
		}
		switch n := returns[id]; {
		case n > 1:
			h.violation("order %s has "+strconv.Itoa(n)+" processed return receipts", id)
		case n == 1 && (o.Refund == nil || o.Refund.State != ReceiptDone):
			h.violation("order %s has a processed return receipt, and its refund is not done", id)
		case n == 0 && o.Refund != nil:
			h.violation("order %s has a refund and no processed return receipt", id)
		}
	}
	for id, ret := range returnOps {
		sale, ok := saleOps[id]
		if ok && (!slices.Equal(sale.TaxTypes, ret.TaxTypes) || !sale.Total.Equal(ret.Total)) {
			h.violation("the return receipt of order %s (%v, %s) does not match its sale (%v, %s)", id, ret.TaxTypes, ret.Total, sale.TaxTypes, sale.Total)
		}
	}
	h.checkPayouts()
}

// knownOrders are the ids of every order the storage ever held, sorted.
func (h *simHistory) knownOrders() []string {
	ids := make([]string, 0, len(h.asOf))
	for id := range h.asOf {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// checkPayouts: no payout key pays twice.
func (h *simHistory) checkPayouts() {
	paid := map[string]int{}
	for _, p := range h.world.Payouts() {
		paid[p.To]++
	}
	for to, n := range paid {
		if n > 1 {
			h.violation("payout to %s (one key) paid more than once", to)
		}
	}
}

// rank orders the states: an order only moves to a higher rank.
func rank(s OrderState) int {
	switch s {
	case OrderCreating:
		return 0
	case OrderPending:
		return 1
	case OrderPaid:
		return 3
	default:
		return 2
	}
}

// written watches every write of an order's record: nothing moves
// backwards, and nothing closes unpaid what its provider had been paid.
func (h *simHistory) written(key string, value []byte) {
	if len(value) == 0 || value[0] != '{' {
		return
	}
	if !strings.HasPrefix(key, ordersPrefix+"/") && !strings.HasPrefix(key, openPrefix+"/") {
		return
	}
	o, err := decodeOrder(value)
	if err != nil {
		h.violation("%s holds a record that does not decode: %v", key, err)
		return
	}
	prev, seen := h.asOf[o.ID]
	h.asOf[o.ID] = *o
	if o.State == OrderPending && (!seen || prev.State != OrderPending) {
		if _, ok := h.invoiceOf(o.ID); !ok {
			h.violation("order %s became pending without an invoice at "+o.Provider, o.ID)
		}
	}
	if !seen {
		return
	}
	switch {
	case rank(o.State) < rank(prev.State):
		h.violation("order %s moved backwards: "+string(prev.State)+" -> "+string(o.State), o.ID)
	case rank(o.State) == 2 && rank(prev.State) == 2 && o.State != prev.State:
		h.violation("order %s moved from "+string(prev.State)+" to "+string(o.State), o.ID)
	}
	// An order is closed unpaid on its provider's word that it is not
	// paid. A payment between that word and the close is a race no shop
	// can close (it ends paid late); closing an order its provider had
	// said was paid is a stale decision.
	if (o.State == OrderExpired || o.State == OrderCancelled) && prev.State != o.State && h.toldPaid[o.ID] {
		if inv, ok := h.invoiceOf(o.ID); ok && inv.Paid && inv.PaidAt.Before(h.now) {
			h.violation("order %s was "+string(o.State)+" at %s though its invoice was paid at %s", o.ID,
				h.now.Format("15:04:05"), inv.PaidAt.Format("15:04:05"))
		}
	}
	if prev.Receipt != nil && o.Receipt != nil && prev.Receipt.OperationID == o.Receipt.OperationID &&
		receiptRank(o.Receipt.State) < receiptRank(prev.Receipt.State) &&
		!(prev.Receipt.State == ReceiptFailed && prev.Receipt.Refused && o.Receipt.State == ReceiptQueued) {
		h.violation("receipt %s moved backwards: "+string(prev.Receipt.State)+" -> "+string(o.Receipt.State), o.Receipt.OperationID)
	}
}

func receiptRank(s ReceiptState) int {
	switch s {
	case ReceiptSending:
		return 0
	case ReceiptQueued:
		return 1
	default:
		return 2
	}
}

// simStorage is the shared storage: a map with a clock, watched writes,
// and faults per instance.
type simStorage struct {
	h        *simHistory
	data     map[string]simValue
	locks    map[string]string // lock name -> holder
	faults   simStorageFaults
	lostLock bool
}

type simValue struct {
	value    []byte
	modified time.Time
}

// simStorageFaults are per-operation probabilities.
type simStorageFaults struct {
	fail     float64 // the operation fails; a failed write writes nothing
	slow     float64 // the operation takes long: the clock moves on
	crash    float64 // the instance crashes as it starts the operation
	lostLock float64 // per lock taken: the lock is lost, another may take it too
}

var errSimStorage = errors.New("simulation: storage failed")

// simStorageView is an instance's handle on the shared storage.
type simStorageView struct {
	s  *simStorage
	in *simInstance
}

// op decides the faults of one storage operation.
func (v *simStorageView) op(write bool) error {
	s, h := v.s, v.s.h
	if v.in.crashed {
		return errSimCrashed
	}
	if h.settling {
		return nil
	}
	if h.rng.Float64() < s.faults.crash {
		v.in.crash("at a storage operation")
		return errSimCrashed
	}
	if h.rng.Float64() < s.faults.slow {
		h.now = h.now.Add(time.Duration(1+h.rng.IntN(90)) * time.Second)
	}
	if h.nesting == 0 && h.rng.IntN(40) == 0 {
		// The other instance works between this one's storage operations.
		h.interleave(v.in)
		if v.in.crashed {
			return errSimCrashed
		}
	}
	if h.rng.Float64() < s.faults.fail {
		return errSimStorage
	}
	return nil
}

func (v *simStorageView) Store(_ context.Context, key string, value []byte) error {
	if err := v.op(true); err != nil {
		return err
	}
	v.s.data[key] = simValue{value: bytes.Clone(value), modified: v.s.h.now}
	v.s.h.written(key, value)
	return nil
}

func (v *simStorageView) Load(_ context.Context, key string) ([]byte, error) {
	if err := v.op(false); err != nil {
		return nil, err
	}
	val, ok := v.s.data[key]
	if !ok {
		return nil, fs.ErrNotExist
	}
	return bytes.Clone(val.value), nil
}

func (v *simStorageView) Delete(_ context.Context, key string) error {
	if err := v.op(true); err != nil {
		return err
	}
	if id, ok := strings.CutSuffix(strings.TrimPrefix(key, ordersPrefix+"/"), ".json"); ok && strings.HasPrefix(key, ordersPrefix+"/") {
		if o, ok := v.s.h.stored(id); ok {
			if o.State == OrderPaid || o.State.Open() {
				v.s.h.violation("order %s was deleted while "+string(o.State), id)
			}
			v.s.h.deleted[id] = true
		}
	}
	prefix := key + "/"
	for k := range v.s.data {
		if k == key || strings.HasPrefix(k, prefix) {
			delete(v.s.data, k)
		}
	}
	return nil
}

func (v *simStorageView) Exists(_ context.Context, key string) bool {
	_, ok := v.s.data[key]
	return ok
}

func (v *simStorageView) List(_ context.Context, prefix string, recursive bool) ([]string, error) {
	if err := v.op(false); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for k := range v.s.data {
		rest, ok := strings.CutPrefix(k, prefix+"/")
		if !ok {
			continue
		}
		if !recursive {
			if i := strings.IndexByte(rest, '/'); i >= 0 {
				rest = rest[:i]
			}
		}
		seen[path.Join(prefix, rest)] = true
	}
	if len(seen) == 0 {
		return nil, fs.ErrNotExist
	}
	keys := make([]string, 0, len(seen))
	for k := range seen {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys, nil
}

func (v *simStorageView) Stat(_ context.Context, key string) (certmagic.KeyInfo, error) {
	if err := v.op(false); err != nil {
		return certmagic.KeyInfo{}, err
	}
	val, ok := v.s.data[key]
	if !ok {
		return certmagic.KeyInfo{}, fs.ErrNotExist
	}
	return certmagic.KeyInfo{Key: key, Modified: val.modified, Size: int64(len(val.value)), IsTerminal: true}, nil
}

// Lock takes a lock at once or fails: the simulation cannot wait. The
// reconciler's lock, held while the lease is read and written, can be
// lost: then the storage also gives it to whoever asks next, and two
// instances may both take the lease. An instance asking for a
// lock it holds would wait for itself forever.
func (v *simStorageView) Lock(_ context.Context, name string) error {
	s, h := v.s, v.s.h
	if v.in.crashed {
		return errSimCrashed
	}
	holder, held := s.locks[name]
	switch {
	case held && holder == v.in.name:
		h.violation("instance took the storage lock %s it holds: it would wait for itself", name)
		return fmt.Errorf("simulation: lock %s is held by this instance", name)
	case held && !(s.lostLock && name == reconcilerLock):
		return fmt.Errorf("simulation: lock %s is held by %s", name, holder)
	}
	s.locks[name] = v.in.name
	if name == reconcilerLock {
		if !h.settling && h.rng.Float64() < s.faults.lostLock {
			h.tracef("%s's lock %s is lost", v.in.name, name)
			s.lostLock = true
		} else if !held {
			s.lostLock = false
		}
	}
	return nil
}

func (v *simStorageView) Unlock(_ context.Context, name string) error {
	if v.s.locks[name] == v.in.name {
		delete(v.s.locks, name)
	}
	return nil
}

var _ certmagic.Storage = (*simStorageView)(nil)

// checkEvents: every event an order's record names has its
// file, of the same type, and an outbox entry (no deliverer runs in the
// simulation); ids are distinct; a paid order has a paid event; a receipt
// done has receipt.done.
func (h *simHistory) checkEvents(o *Order) {
	seen := map[string]bool{}
	paid := false
	// Compaction deletes an unpaid order's events before its record: one
	// it may have begun on can miss them (the next compaction finishes).
	compacting := o.State.closedUnpaid() && !h.clock().Before(o.ClosedAt.Add(simKeepUnpaid))
	for _, ref := range o.Events {
		if seen[ref.ID] {
			h.violation("order %s names event %s twice", o.ID, ref.ID)
		}
		seen[ref.ID] = true
		if ref.Type == eventPaid || ref.Type == eventPaidLate {
			paid = true
		}
		if compacting {
			continue
		}
		v, ok := h.store.data[eventKey(ref.ID)]
		if !ok || len(v.value) == 0 {
			h.violation("order %s: event %s (%s) has no file", o.ID, ref.ID, ref.Type)
			continue
		}
		var f eventFile
		if err := json.Unmarshal(v.value, &f); err != nil || f.Type != ref.Type {
			h.violation("order %s: event %s is %s in the record, %s in its file", o.ID, ref.ID, ref.Type, f.Type)
		}
		if _, ok := h.store.data[outboxKey(ref.ID)]; !ok {
			h.violation("order %s: event %s has no outbox entry", o.ID, ref.ID)
		}
	}
	if o.State == OrderPaid && !paid {
		h.violation("order %s is paid and names no paid event", o.ID)
	}
}
