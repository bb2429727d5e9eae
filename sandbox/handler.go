package sandbox

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Default credentials the simulated providers accept when none are
// configured.
const (
	DefaultCrystalPayLogin   = "sandbox"
	DefaultCrystalPaySecret  = "sandbox-secret"
	DefaultCrystalPaySecret2 = "sandbox-secret2"
	DefaultCrystalPaySalt    = "sandbox-salt"
	DefaultPegasToken        = "sandbox-token"
	DefaultSmartCashierToken = "sandbox-token"
)

// Defaults of the other options.
const (
	DefaultName            = "default"
	DefaultReceiptDelay    = time.Second
	DefaultPegasCommission = "2.5"
)

// The APIs the sandbox simulates, as named in faults, the journal and the
// control endpoint.
const (
	APICrystalPay   = "crystalpay"
	APIPegas        = "pegas"
	APISmartCashier = "smartcashier"
)

// states holds the simulator state of every sandbox by name, so that it
// survives a config reload.
var states = caddy.NewUsagePool()

// Handler simulates the CrystalPAY, Pegas-kassa and Smart Cashier APIs
// offline, with a payment page and a control endpoint for tests. It answers
// every request it gets. For development and tests only.
type Handler struct {
	// Name of the shared state: handlers with the same name (in one config or
	// across reloads) see the same invoices, balances and journal. Default
	// "default".
	Name string `json:"name,omitempty"`

	// PublicURL is the base of payment-page links handed out by the APIs,
	// e.g. http://localhost:9080. Default: scheme and Host of the API
	// request.
	PublicURL string `json:"public_url,omitempty"`

	// CrystalPAY cash-register login, secret key 1 and secret key 2.
	// Accept {env.*} placeholders.
	CrystalPayLogin   string `json:"crystalpay_login,omitempty"`
	CrystalPaySecret  string `json:"crystalpay_secret,omitempty"`
	CrystalPaySecret2 string `json:"crystalpay_secret2,omitempty"`

	// CrystalPaySalt is the API v3 salt (secret 2): it signs payoffs and
	// callbacks. Accepts {env.*}.
	CrystalPaySalt string `json:"crystalpay_salt,omitempty"`

	// PegasToken is the Pegas-kassa site token. Accepts {env.*}.
	PegasToken string `json:"pegas_token,omitempty"`

	// SmartCashierToken is the bearer token Smart Cashier accepts.
	// Accepts {env.*}.
	SmartCashierToken string `json:"smartcashier_token,omitempty"`

	// Latency is added to every API call.
	Latency caddy.Duration `json:"latency,omitempty"`

	// ReceiptDelay is how long a Smart Cashier operation stays queued
	// (status 1) before it is processed. Default 1s.
	ReceiptDelay *caddy.Duration `json:"receipt_delay,omitempty"`

	// PegasCommission is the Pegas commission in percent, applied to
	// deposits and withdrawals. Default 2.5.
	PegasCommission *decimal.Decimal `json:"pegas_commission,omitempty"`

	// Balances are the initial balances in rubles, keyed "crystalpay" and
	// "pegas". Default 0.
	Balances map[string]decimal.Decimal `json:"balances,omitempty"`

	// CrystalPayWallets makes CrystalPAY answer balance in the per-wallet
	// object form.
	CrystalPayWallets bool `json:"crystalpay_wallets,omitempty"`

	// SmartCashierTaxTypes are taxType codes Smart Cashier takes beyond the
	// 1 to 6 of its API v1.0.1 (which predates the rates of 2026), as an
	// account that has codes for 22% or 5% would.
	SmartCashierTaxTypes []int `json:"smartcashier_tax_types,omitempty"`

	// Faults are injected from the start (and again after a reset).
	Faults []Fault `json:"faults,omitempty"`

	creds      credentials
	public     *url.URL
	holdFor    time.Duration   // how long a timeout fault holds a request (tests); default 60s
	retryAfter []time.Duration // callback retry waits (tests); default defaultCallbackRetries
	callbacks  *callbackSender
	st         *state
	released   bool
	logger     *zap.Logger
}

// credentials are the secrets with placeholders resolved.
type credentials struct {
	crystalPayLogin, crystalPaySecret, crystalPaySecret2 string
	crystalPaySalt                                       string
	pegasToken, smartCashierToken                        string
	pegasCommission                                      decimal.Decimal
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kassa_sandbox",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision applies defaults, resolves secrets, checks the configuration and
// attaches the handler to its named state.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Name == "" {
		h.Name = DefaultName
	}
	repl := caddy.NewReplacer()
	resolve := func(option, value, def string) (string, error) {
		if value == "" {
			return def, nil
		}
		v := repl.ReplaceKnown(value, "")
		if v == "" {
			return "", fmt.Errorf("%s is empty after resolving placeholders", option)
		}
		return v, nil
	}
	var err error
	c := &h.creds
	for _, s := range []struct {
		dst           *string
		option, value string
		def           string
	}{
		{&c.crystalPayLogin, "crystalpay_login", h.CrystalPayLogin, DefaultCrystalPayLogin},
		{&c.crystalPaySecret, "crystalpay_secret", h.CrystalPaySecret, DefaultCrystalPaySecret},
		{&c.crystalPaySecret2, "crystalpay_secret2", h.CrystalPaySecret2, DefaultCrystalPaySecret2},
		{&c.crystalPaySalt, "crystalpay_salt", h.CrystalPaySalt, DefaultCrystalPaySalt},
		{&c.pegasToken, "pegas_token", h.PegasToken, DefaultPegasToken},
		{&c.smartCashierToken, "smartcashier_token", h.SmartCashierToken, DefaultSmartCashierToken},
	} {
		if *s.dst, err = resolve(s.option, s.value, s.def); err != nil {
			return err
		}
	}
	c.pegasCommission = decimal.RequireFromString(DefaultPegasCommission)
	if h.PegasCommission != nil {
		c.pegasCommission = *h.PegasCommission
	}
	if c.pegasCommission.IsNegative() || c.pegasCommission.GreaterThanOrEqual(decimal.NewFromInt(100)) {
		return fmt.Errorf("pegas_commission must be at least 0 and below 100, got %s", c.pegasCommission)
	}
	if h.PublicURL != "" {
		u, err := url.Parse(strings.TrimRight(h.PublicURL, "/"))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("public_url must be an absolute http(s) URL, got %q", h.PublicURL)
		}
		h.public = u
	}
	cfg, err := h.stateConfig()
	if err != nil {
		return err
	}
	val, loaded, err := states.LoadOrNew(h.Name, func() (caddy.Destructor, error) {
		return newState(cfg), nil
	})
	if err != nil {
		return err
	}
	h.st = val.(*state)
	if loaded {
		h.st.reconfigure(cfg)
	}
	retries := defaultCallbackRetries
	if h.retryAfter != nil {
		retries = h.retryAfter
	}
	h.callbacks = newCallbackSender(retries)
	return nil
}

// stateConfig checks and collects the parts of the configuration that the
// shared state keeps (and restores on reset).
func (h *Handler) stateConfig() (config, error) {
	cfg := config{
		balances: map[string]decimal.Decimal{APICrystalPay: decimal.Zero, APIPegas: decimal.Zero},
		settings: settings{
			Latency:           time.Duration(h.Latency),
			ReceiptDelay:      DefaultReceiptDelay,
			CrystalPayWallets: h.CrystalPayWallets,
		},
	}
	if h.ReceiptDelay != nil {
		cfg.settings.ReceiptDelay = time.Duration(*h.ReceiptDelay)
	}
	if cfg.settings.Latency < 0 || cfg.settings.ReceiptDelay < 0 {
		return cfg, fmt.Errorf("latency and receipt_delay must not be negative")
	}
	for api, amount := range h.Balances {
		if err := checkBalance(api, amount); err != nil {
			return cfg, err
		}
		cfg.balances[api] = amount
	}
	for i, f := range h.Faults {
		if err := f.normalize(); err != nil {
			return cfg, fmt.Errorf("fault %d: %w", i, err)
		}
		f.configured = true
		cfg.faults = append(cfg.faults, f)
	}
	return cfg, nil
}

// checkBalance refuses an initial balance the provider could not hold.
func checkBalance(api string, amount decimal.Decimal) error {
	switch api {
	case APICrystalPay:
		if !amount.IsInteger() {
			return fmt.Errorf("crystalpay balance must be whole rubles, got %s", amount)
		}
	case APIPegas:
		if !amount.Equal(amount.Round(2)) {
			return fmt.Errorf("pegas balance must have at most 2 decimals, got %s", amount)
		}
	default:
		return fmt.Errorf("balance: unknown api %q (want crystalpay or pegas)", api)
	}
	if amount.IsNegative() {
		return fmt.Errorf("%s balance must not be negative", api)
	}
	return nil
}

// Cleanup stops the handler's callback deliveries and releases its
// reference to its named state.
func (h *Handler) Cleanup() error {
	if h.callbacks != nil {
		h.callbacks.stop()
	}
	// h.st stays set: requests still in flight during a reload keep using
	// the state, which lives on for the handlers of the new config.
	if h.st == nil || h.released {
		return nil
	}
	h.released = true
	_, err := states.Delete(h.Name)
	return err
}

// ServeHTTP answers every request: it never calls next. The callbacks the
// request gave rise to are sent once it is answered.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	defer h.flushCallbacks()
	p := r.URL.Path
	switch {
	case p == "/crystalpay/api.php":
		h.serveCrystalPay(w, r)
	case strings.HasPrefix(p, "/crystalpay/v3/"):
		h.serveCrystalPayV3(w, r, strings.TrimPrefix(p, "/crystalpay/v3/"))
	case p == "/pegas/api/v1" || strings.HasPrefix(p, "/pegas/api/v1/"):
		h.servePegas(w, r, strings.TrimPrefix(strings.TrimPrefix(p, "/pegas/api/v1"), "/"))
	case strings.HasPrefix(p, "/pegas/"):
		writePegasError(w, http.StatusNotFound, "resource_not_found", "Resource not found", nil)
	case strings.HasPrefix(p, "/smartcashier/v1.0/"):
		h.serveSmartCashier(w, r, strings.TrimPrefix(p, "/smartcashier/v1.0/"))
	case strings.HasPrefix(p, "/pay/"):
		h.servePage(w, r, strings.TrimPrefix(p, "/pay/"))
	case p == "/control" || strings.HasPrefix(p, "/control/"):
		h.serveControl(w, r, strings.TrimPrefix(strings.TrimPrefix(p, "/control"), "/"))
	default:
		http.NotFound(w, r)
	}
	return nil
}

// publicBase is the base URL of payment-page links for a reply to r.
func (h *Handler) publicBase(r *http.Request) string {
	if h.public != nil {
		return h.public.String()
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
	_ caddyfile.Unmarshaler       = (*Handler)(nil)
)
