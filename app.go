package kassa

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

func init() {
	caddy.RegisterModule(App{})
}

// Defaults of the app's options.
const (
	defaultPollInterval = 10 * time.Second
	defaultOrderTTL     = 30 * time.Minute
	defaultKeepUnpaid   = 7 * 24 * time.Hour
	// defaultPollConcurrency: 16 calls at once check 80 orders a second
	// from a provider that answers in 200 ms.
	defaultPollConcurrency = 16
)

// App is the kassa app: the shop's payment accounts, its receipt service,
// its catalog, the order store and the reconciler that finishes orders in
// the background. The handlers find it at provision time.
type App struct {
	// Payments are the payment accounts by name; each is a module in the
	// kassa.payments namespace.
	PaymentsRaw map[string]json.RawMessage `json:"payments,omitempty" caddy:"namespace=kassa.payments inline_key=provider"`
	// Receipts is the fiscal-receipt service, a module in kassa.receipts.
	// Optional: without it no receipts are issued.
	ReceiptsRaw json.RawMessage `json:"receipts,omitempty" caddy:"namespace=kassa.receipts inline_key=provider"`
	// CatalogFile is a JSON catalog: {"products":[{"sku","name","price","vat"}]}.
	CatalogFile string `json:"catalog,omitempty"`
	// Products are catalog products given inline; with CatalogFile, the two
	// are merged and a SKU may appear once across both (MergeCatalog).
	Products []Product `json:"products,omitempty"`
	// PollInterval is how often the reconciler looks at open orders;
	// default 10s.
	PollInterval caddy.Duration `json:"poll_interval,omitempty"`
	// PollConcurrency is how many orders the reconciler checks at once,
	// and so the most provider calls it has in flight; default 16.
	PollConcurrency int `json:"poll_concurrency,omitempty"`
	// RateLimit bounds the reconciler's calls to a payment account, in
	// requests a second, by account name; an account not named keeps its
	// provider's published limit (RateLimitReporter), if any. Buyers'
	// calls are never delayed by it, but take from it (ratelimit.go).
	RateLimit map[string]float64 `json:"rate_limit,omitempty"`
	// BuyerRateLimit bounds, in requests a second by account name, the
	// provider calls buyers' requests make (status polls, payment
	// documents), so that no client can spend the account's quota: past it
	// a poll answers from the stored order and a document is 429. An
	// account not named gets half its rate limit, or 5 a second without
	// one; it must stay below the rate limit, whose rest the reconciler
	// keeps.
	BuyerRateLimit map[string]float64 `json:"buyer_rate_limit,omitempty"`
	// OrderTTL is how long an order waits for its payment before it
	// expires; default 30m.
	OrderTTL caddy.Duration `json:"order_ttl,omitempty"`
	// KeepUnpaid is how long an order that closed unpaid (expired,
	// cancelled, failed) is kept before the reconciler deletes it; default
	// 168h (7 days). Paid orders are never deleted.
	KeepUnpaid caddy.Duration `json:"keep_unpaid,omitempty"`
	// EraseContactsAfter, when set, erases the buyer's e-mail and phone
	// from an order this long after its receipt was done (or, without a
	// receipt service, after it was paid), for the personal-data law
	// (152-FZ): the receipt has reached the buyer and the fiscal data
	// operator keeps it. Off by default; at least 24h (erasecontacts.go).
	EraseContactsAfter caddy.Duration `json:"erase_contacts_after,omitempty"`
	// MaxOrdersPerClient bounds the orders one client (an IPv4 address, an
	// IPv6 /64) may create per OrderTTL on this instance, so that one
	// client cannot fill MaxOpenOrders. 0 is the default, 50 from a public
	// address and no bound on a loopback, private, link-local or shared
	// (100.64.0.0/10) one, which is a proxy's more often than a buyer's; a
	// number bounds every address; -1 sets no bound.
	MaxOrdersPerClient int `json:"max_orders_per_client,omitempty"`
	// MaxOpenOrders caps the orders open at once across the cluster, so
	// that a flood of checkouts cannot drown the reconciler and the
	// storage: past it a checkout is refused with 503 shop_busy. 0 is the
	// default, 10 000; -1 sets no cap.
	MaxOpenOrders int `json:"max_open_orders,omitempty"`
	// StorageRaw keeps orders in this storage instead of Caddy's own.
	StorageRaw json.RawMessage `json:"storage,omitempty" caddy:"namespace=caddy.storage inline_key=module"`
	// Notify are the receivers of the shop's notifications (notify.go):
	// each gets a signed POST of the events it asks for.
	Notify []*Notify `json:"notify,omitempty"`
	// TimeZone is the IANA name of the zone of the operator's dates (a
	// bare date in from or to is midnight there) and of the export's
	// times; default the server's local zone.
	TimeZone string `json:"time_zone,omitempty"`

	accounts   map[string]*account
	receipts   ReceiptProvider
	catalog    *Catalog
	orders     *OrderStore
	storage    certmagic.Storage
	logger     *zap.Logger
	statuses   *statusGate
	reconciler *reconciler
	unsaved    *unsavedPayments
	deliverer  *deliverer
	written    *writtenEvents
	// locks are this process's locks (sharedLocks); the lifecycle
	// simulation gives each simulated instance its own.
	locks     *processLocks
	perClient *clientLimit
	// openLimit is nil when MaxOpenOrders is -1.
	openLimit *openLimit
	now       func() time.Time
	// newID draws a new order's id; NewOrderID, swapped by the lifecycle
	// simulation so that a history replays from its seed.
	newID func() string
	// bus emits the order events on Caddy's event bus; nil without an
	// events app.
	bus *orderBus
	// zone is TimeZone loaded; nil is the local zone.
	zone *time.Location
	// backfill indexes the orders of the previous release by time.
	backfill *backfill
}

// account is a named payment account and its provider.
type account struct {
	name     string
	provider string // the module's name: crystalpay, pegas
	PaymentProvider
	// limiter is the account's rate limit (ratelimit.go); nil for none.
	limiter *rate.Limiter
	// buyers is the part of it that buyers' requests may spend
	// (ratelimit.go).
	buyers *rate.Limiter
	// where is the provider module, when it says where it points
	// (sandboxmix.go).
	where EndpointReporter
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "kassa",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision loads the providers, the catalog and the storage.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	if err := registerMetrics(ctx.GetMetricsRegistry()); err != nil {
		return err
	}
	a.now = time.Now
	a.newID = NewOrderID
	if a.PollInterval <= 0 {
		a.PollInterval = caddy.Duration(defaultPollInterval)
	}
	if a.OrderTTL <= 0 {
		a.OrderTTL = caddy.Duration(defaultOrderTTL)
	}
	if a.KeepUnpaid <= 0 {
		a.KeepUnpaid = caddy.Duration(defaultKeepUnpaid)
	}
	if a.TimeZone != "" {
		zone, err := time.LoadLocation(a.TimeZone)
		if err != nil {
			return fmt.Errorf("time_zone %q: want an IANA zone name such as Europe/Moscow: %v", a.TimeZone, err)
		}
		a.zone = zone
	}
	if a.MaxOpenOrders == 0 {
		a.MaxOpenOrders = defaultMaxOpenOrders
	}
	if a.PollConcurrency <= 0 {
		a.PollConcurrency = defaultPollConcurrency
	}

	a.accounts = make(map[string]*account, len(a.PaymentsRaw))
	if a.PaymentsRaw != nil {
		mods, err := ctx.LoadModule(a, "PaymentsRaw")
		if err != nil {
			return fmt.Errorf("loading payment accounts: %v", err)
		}
		for name, mod := range mods.(map[string]any) {
			where, _ := mod.(EndpointReporter)
			if s, ok := mod.(ProviderSwitch); ok {
				mod = s.Provider()
			}
			provider, ok := mod.(PaymentProvider)
			if !ok {
				return fmt.Errorf("payment account %q: module %T is not a payment provider", name, mod)
			}
			a.accounts[name] = &account{name: name, provider: caddy.GetModuleName(mods.(map[string]any)[name]), PaymentProvider: provider, where: where}
		}
	}
	if err := a.useRateLimits(); err != nil {
		return err
	}
	if a.ReceiptsRaw != nil {
		mod, err := ctx.LoadModule(a, "ReceiptsRaw")
		if err != nil {
			return fmt.Errorf("loading the receipt service: %v", err)
		}
		receipts, ok := mod.(ReceiptProvider)
		if !ok {
			return fmt.Errorf("receipts: module %T is not a receipt provider", mod)
		}
		a.receipts = receipts
		a.warnMixedSandbox()
	}

	products, err := MergeCatalog(a.CatalogFile, a.Products)
	if err != nil {
		return err
	}
	catalog, err := NewCatalog(products)
	if err != nil {
		return fmt.Errorf("catalog: %v", err)
	}
	a.catalog = catalog
	a.warnKopecks()
	if err := a.checkRates(); err != nil {
		return err
	}
	if err := a.provisionNotify(); err != nil {
		return err
	}
	a.perClient = newClientLimit(a.MaxOrdersPerClient, time.Duration(a.OrderTTL))

	storage := ctx.Storage()
	if a.StorageRaw != nil {
		mod, err := ctx.LoadModule(a, "StorageRaw")
		if err != nil {
			return fmt.Errorf("loading storage: %v", err)
		}
		conv, ok := mod.(caddy.StorageConverter)
		if !ok {
			return fmt.Errorf("storage module %T is not a caddy.StorageConverter", mod)
		}
		if storage, err = conv.CertMagicStorage(); err != nil {
			return fmt.Errorf("creating storage: %v", err)
		}
	}
	a.useStorage(storage)
	if err := a.checkStranded(ctx); err != nil {
		return err
	}
	if a.MaxOpenOrders > 0 {
		a.openLimit = newOpenLimit(a, a.MaxOpenOrders)
	}
	return a.provisionBus(ctx)
}

// useStorage sets up the order store on storage, and what works on it.
func (a *App) useStorage(storage certmagic.Storage) {
	a.storage = storage
	a.orders = NewOrderStore(storage)
	if a.logger != nil {
		a.orders.logger = a.logger
	}
	a.orders.Now = func() time.Time { return a.now() }
	a.orders.recorded = a.writeEvents
	a.statuses = newStatusGate(time.Second)
	a.unsaved = new(unsavedPayments)
	a.useLocks(&sharedLocks)
	a.reconciler = newReconciler(a)
	a.deliverer = newDeliverer(a)
	a.written = new(writtenEvents)
	a.backfill = &backfill{app: a}
}

// checkRates refuses a catalog product whose VAT rate the receipt service
// cannot put on a receipt, and warns of products (and a default rate) at
// the general rate before 2026.
func (a *App) checkRates() error {
	var legacy []string
	for _, p := range a.catalog.Products() {
		if p.VAT.Legacy() {
			legacy = append(legacy, p.SKU)
		}
		if checker, ok := a.receipts.(VATChecker); ok && p.VAT != 0 {
			if err := checker.CheckVAT(p.VAT); err != nil {
				return fmt.Errorf("catalog: product %q (%s): %v", p.SKU, p.VAT, err)
			}
		}
	}
	if dv, ok := a.receipts.(DefaultVATReporter); ok && dv.DefaultVAT().Legacy() {
		legacy = append(legacy, "(the receipt service's default vat)")
	}
	if len(legacy) > 0 {
		a.logger.Warn("VAT rate vat20/vat120 is the general rate before 2026: since 1 January 2026 it is 22% (vat22, vat122); "+
			"keep vat20 only for the transitional cases the law allows", zap.Strings("skus", legacy))
	}
	return nil
}

// useLocks makes the app serialise its work with the locks l.
func (a *App) useLocks(l *processLocks) {
	a.locks = l
	a.orders.locks = &l.orders
}

// warnKopecks warns when a catalog price has kopecks and an account's
// provider refuses such an amount (an AmountChecker, such as CrystalPAY,
// which takes whole rubles): a cart with such a total is refused for that
// account.
func (a *App) warnKopecks() {
	skus := a.catalog.WithKopecks()
	if len(skus) == 0 {
		return
	}
	for _, acc := range a.sortedAccounts() {
		checker, ok := acc.PaymentProvider.(AmountChecker)
		if !ok {
			continue
		}
		var refused []string
		var reason error
		for _, sku := range skus {
			p, _ := a.catalog.Product(sku)
			if err := checker.CheckAmount(p.Price); err != nil {
				refused, reason = append(refused, sku), err
			}
		}
		if len(refused) > 0 {
			a.logger.Warn("catalog prices have kopecks, but this account's provider refuses such amounts: carts whose total has kopecks will be refused for this account",
				zap.String("account", acc.name), zap.String("provider", acc.provider), zap.Strings("skus", refused), zap.Error(reason))
		}
	}
}

// Validate checks the options.
func (a *App) Validate() error {
	if a.MaxOpenOrders < -1 {
		return fmt.Errorf("max_open_orders %d: want a positive number, or -1 for no cap", a.MaxOpenOrders)
	}
	if a.EraseContactsAfter != 0 && time.Duration(a.EraseContactsAfter) < minEraseContactsAfter {
		return fmt.Errorf("erase_contacts_after %v: want at least %v, so that a receipt can still be sent again to the buyer for a day",
			time.Duration(a.EraseContactsAfter), minEraseContactsAfter)
	}
	if a.MaxOrdersPerClient < -1 {
		return fmt.Errorf("max_orders_per_client %d: want a positive number, or -1 for no bound", a.MaxOrdersPerClient)
	}
	for name := range a.accounts {
		if err := validateAccountName(name); err != nil {
			return err
		}
	}
	return nil
}

// Start starts the reconciler, the deliverer of notifications and the
// backfill of the time index.
func (a *App) Start() error {
	a.reconciler.start()
	a.deliverer.start()
	a.backfill.start()
	a.logger.Info("kassa started", zap.Int("payment_accounts", len(a.accounts)),
		zap.Bool("receipts", a.receipts != nil), zap.Int("products", a.catalog.Len()),
		zap.Duration("poll_interval", time.Duration(a.PollInterval)), zap.Int("poll_concurrency", a.PollConcurrency),
		zap.Duration("order_ttl", time.Duration(a.OrderTTL)),
		zap.Duration("keep_unpaid", time.Duration(a.KeepUnpaid)), zap.Duration("erase_contacts_after", time.Duration(a.EraseContactsAfter)),
		zap.Int("max_open_orders", a.MaxOpenOrders),
		zap.String("max_orders_per_client", a.perClient.describe()))
	return nil
}

// Stop stops the reconciler and the deliverer and waits for them; the next
// config's app resumes the open orders and the outbox from storage.
func (a *App) Stop() error {
	a.reconciler.stop()
	a.deliverer.stop()
	a.backfill.stop()
	return nil
}

// location is the app's time zone.
func (a *App) location() *time.Location {
	if a.zone == nil {
		return time.Local
	}
	return a.zone
}

// orderID draws a new order's id.
func (a *App) orderID() string {
	if a.newID == nil {
		return NewOrderID()
	}
	return a.newID()
}

// account returns the named payment account, or the only one when name is
// empty.
func (a *App) account(name string) (*account, error) {
	if name == "" {
		if len(a.accounts) == 1 {
			for _, acc := range a.accounts {
				return acc, nil
			}
		}
		return nil, fmt.Errorf("name the payment account: the kassa app has %d (%s)", len(a.accounts), a.accountNames())
	}
	acc, ok := a.accounts[name]
	if !ok {
		return nil, fmt.Errorf("no payment account %q in the kassa app (it has: %s)", name, a.accountNames())
	}
	return acc, nil
}

func (a *App) sortedAccounts() []*account {
	out := make([]*account, 0, len(a.accounts))
	for _, acc := range a.accounts {
		out = append(out, acc)
	}
	slices.SortFunc(out, func(x, y *account) int { return strings.Compare(x.name, y.name) })
	return out
}

func (a *App) accountNames() string {
	var names []string
	for _, acc := range a.sortedAccounts() {
		names = append(names, acc.name)
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// validateAccountName accepts 1 to 32 lowercase letters, digits, '-' and '_'.
func validateAccountName(name string) error {
	if name == "" || len(name) > 32 || strings.TrimLeft(name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
		return fmt.Errorf("payment account name %q: want 1 to 32 of a-z, 0-9, '-' and '_'", name)
	}
	return nil
}

// findApp returns the config's kassa app, or an error saying how to add one.
func findApp(ctx caddy.Context, who string) (*App, error) {
	mod, err := ctx.AppIfConfigured("kassa")
	if errors.Is(err, caddy.ErrNotConfigured) {
		return nil, fmt.Errorf("%s needs the kassa global option: add a `kassa { payment ... }` block to the Caddyfile's global options", who)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: loading the kassa app: %v", who, err)
	}
	app, ok := mod.(*App)
	if !ok {
		return nil, fmt.Errorf("%s: the kassa app is a %T", who, mod)
	}
	return app, nil
}

// Interface guards
var (
	_ caddy.App         = (*App)(nil)
	_ caddy.Provisioner = (*App)(nil)
	_ caddy.Validator   = (*App)(nil)
)
