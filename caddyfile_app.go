package kassa

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/dustin/go-humanize"
)

// parseSize reads a subdirective's size argument (bytes, or with a unit
// such as 64KiB or 1MB) into dst.
func parseSize(d *caddyfile.Dispenser, dst *int64) error {
	name := d.Val()
	if *dst != 0 {
		return d.Errf("%s given twice", name)
	}
	var raw string
	if err := parseOneArg(d, &raw); err != nil {
		return err
	}
	size, err := humanize.ParseBytes(raw)
	if err != nil || size == 0 || size > 1<<30 {
		return d.Errf("%s: bad size %q: want 1 byte to 1 GiB", name, raw)
	}
	*dst = int64(size)
	return nil
}

// parsePositiveInt reads a subdirective's single whole-number argument.
func parsePositiveInt(d *caddyfile.Dispenser, dst *int) error {
	name := d.Val()
	if *dst != 0 {
		return d.Errf("%s given twice", name)
	}
	var raw string
	if err := parseOneArg(d, &raw); err != nil {
		return err
	}
	n, err := strconv.Atoi(raw)
	if err != nil || n < 1 || n > 1_000_000 {
		return d.Errf("%s: want a whole number from 1 to 1000000, got %q", name, raw)
	}
	*dst = n
	return nil
}

func init() {
	httpcaddyfile.RegisterGlobalOption("kassa", parseGlobalOption)
}

// parseGlobalOption sets up the kassa app from the Caddyfile's global
// options.
//
// Syntax:
//
//	kassa {
//		payment  <name> <provider> { <provider options> }
//		receipts <provider> { <provider options> }
//		catalog  <file.json>
//		product  <sku> <price> <name> [<vat>]
//		poll_interval <duration>        # default 10s
//		poll_concurrency <n>            # orders the reconciler checks at once; default 16
//		rate_limit <account> <n>/s      # repeatable: the reconciler's calls to an account, per second
//		buyer_rate_limit <account> <n>/s # repeatable: buyers' share of it; default half, or 5/s
//		order_ttl     <duration>        # default 30m
//		keep_unpaid   <duration>        # orders closed unpaid are deleted after; default 168h
//		erase_contacts_after <duration> # buyers' e-mail and phone erased this long after the receipt; default: kept
//		max_orders_per_client <n>|off   # per client (IPv4 address, IPv6 /64) per order_ttl, per instance; default: 50, public addresses only
//		max_open_orders <n>|off         # open orders across the cluster; default 10000
//		storage <module> [<args>] { ... } # default: Caddy's storage
//		time_zone <IANA zone>           # of operator dates and the export; default: the server's
//		notify <url> {                  # repeatable: a receiver of the shop's events
//			secret  <secret>            # required; use {env.*}
//			events  <event...>          # default: every event
//			timeout <duration>          # default 10s
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("the kassa global option is given twice")
	}
	app := &App{PaymentsRaw: map[string]json.RawMessage{}}
	d.Next()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "payment":
			err = parsePaymentAccount(d, app)
		case "receipts":
			if app.ReceiptsRaw != nil {
				return nil, d.Err("receipts given twice")
			}
			app.ReceiptsRaw, err = parseGuestModule(d, "kassa.receipts", "provider")
		case "catalog":
			err = parseOneArg(d, &app.CatalogFile)
		case "product":
			err = parseProduct(d, app)
		case "poll_interval":
			err = parseDuration(d, &app.PollInterval)
		case "poll_concurrency":
			err = parsePositiveInt(d, &app.PollConcurrency)
		case "rate_limit":
			err = parseRateLimit(d, &app.RateLimit)
		case "buyer_rate_limit":
			err = parseRateLimit(d, &app.BuyerRateLimit)
		case "order_ttl":
			err = parseDuration(d, &app.OrderTTL)
		case "keep_unpaid":
			err = parseDuration(d, &app.KeepUnpaid)
		case "erase_contacts_after":
			err = parseDuration(d, &app.EraseContactsAfter)
		case "max_orders_per_client":
			err = parseNumberOrOff(d, &app.MaxOrdersPerClient)
		case "max_open_orders":
			err = parseNumberOrOff(d, &app.MaxOpenOrders)
		case "notify":
			err = parseNotify(d, app)
		case "time_zone":
			err = parseOneArg(d, &app.TimeZone)
		case "storage":
			if app.StorageRaw != nil {
				return nil, d.Err("storage given twice")
			}
			app.StorageRaw, err = parseGuestModule(d, "caddy.storage", "module")
		default:
			err = d.Errf("unrecognized kassa option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if len(app.PaymentsRaw) == 0 {
		app.PaymentsRaw = nil
	}
	return httpcaddyfile.App{Name: "kassa", Value: caddyconfig.JSON(app, nil)}, nil
}

// parseNumberOrOff reads a bound given as `<option> <n>|off`, such as
// max_open_orders and max_orders_per_client; off, for a shop that bounds
// its checkouts in front of Caddy, is -1.
func parseNumberOrOff(d *caddyfile.Dispenser, dst *int) error {
	if *dst != 0 {
		return d.Errf("%s given twice", d.Val())
	}
	if !d.NextArg() {
		return d.ArgErr()
	}
	if d.Val() == "off" {
		*dst = -1
		if d.NextArg() {
			return d.ArgErr()
		}
		return nil
	}
	d.Prev()
	return parsePositiveInt(d, dst)
}

// parseRateLimit reads `rate_limit <account> <n>/s` (or buyer_rate_limit)
// into limits. Whether the account exists is checked when the app is
// provisioned.
func parseRateLimit(d *caddyfile.Dispenser, limits *map[string]float64) error {
	option := d.Val()
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Errf("%s: want <account> <n>/s, got %d arguments", option, len(args))
	}
	name, spec := args[0], args[1]
	if _, dup := (*limits)[name]; dup {
		return d.Errf("%s %s given twice", option, name)
	}
	n, ok := strings.CutSuffix(spec, "/s")
	perSecond, err := strconv.ParseFloat(n, 64)
	if !ok || err != nil || !(perSecond > 0) || math.IsInf(perSecond, 0) {
		return d.Errf("%s %s: want a positive number of requests a second such as 5/s, got %q", option, name, spec)
	}
	if *limits == nil {
		*limits = map[string]float64{}
	}
	(*limits)[name] = perSecond
	return nil
}

// parseNotify reads `notify <url> { secret ...; events ...; timeout ... }`.
// The secret stays as written (a placeholder) and is resolved at
// provision time.
func parseNotify(d *caddyfile.Dispenser, app *App) error {
	n := &Notify{}
	if err := parseOneArg(d, &n.URL); err != nil {
		return err
	}
	if slices.ContainsFunc(app.Notify, func(m *Notify) bool { return m.URL == n.URL }) {
		return d.Errf("notify %s given twice", n.URL)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "secret":
			err = parseOneArg(d, &n.Secret)
		case "events":
			if n.Events != nil {
				return d.Err("events given twice")
			}
			n.Events = d.RemainingArgs()
			if len(n.Events) == 0 {
				return d.ArgErr()
			}
			if err := checkEventNames(n.Events); err != nil {
				return d.Errf("notify %s: %v", n.URL, err)
			}
		case "timeout":
			err = parseDuration(d, &n.Timeout)
		default:
			err = d.Errf("unrecognized notify option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	if n.Secret == "" {
		return d.Errf("notify %s: secret is required (use {env.*})", n.URL)
	}
	app.Notify = append(app.Notify, n)
	return nil
}

// parsePaymentAccount reads `payment <name> <provider> { ... }`.
func parsePaymentAccount(d *caddyfile.Dispenser, app *App) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	name := d.Val()
	if err := validateAccountName(name); err != nil {
		return d.Err(err.Error())
	}
	if _, dup := app.PaymentsRaw[name]; dup {
		return d.Errf("payment account %q given twice", name)
	}
	raw, err := parseGuestModule(d, "kassa.payments", "provider")
	if err != nil {
		return err
	}
	app.PaymentsRaw[name] = raw
	return nil
}

// parseGuestModule reads `<module> [args] { ... }` at the dispenser's next
// argument as a module of the namespace, and returns its JSON with the
// module's name under inlineKey.
func parseGuestModule(d *caddyfile.Dispenser, namespace, inlineKey string) (json.RawMessage, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	name := d.Val()
	unm, err := caddyfile.UnmarshalModule(d, namespace+"."+name)
	if err != nil {
		return nil, err
	}
	return caddyconfig.JSONModuleObject(unm, inlineKey, name, nil), nil
}

// parseProduct reads `product <sku> <price> <name> [<vat>]`.
func parseProduct(d *caddyfile.Dispenser, app *App) error {
	args := d.RemainingArgs()
	if len(args) != 3 && len(args) != 4 {
		return d.Errf("product: want <sku> <price> <name> [<vat>], got %d arguments", len(args))
	}
	price, err := ParseAmount("price", args[1])
	if err != nil {
		return d.Errf("product %s: %v", args[0], err)
	}
	p := Product{SKU: args[0], Name: args[2], Price: price}
	if len(args) == 4 {
		if p.VAT, err = ParseVAT(args[3]); err != nil {
			return d.Errf("product %s: %v", args[0], err)
		}
	}
	if err := p.Validate(); err != nil {
		return d.Errf("product %s: %v", args[0], err)
	}
	if slices.ContainsFunc(app.Products, func(q Product) bool { return q.SKU == p.SKU }) {
		return d.Errf("product %s given twice", p.SKU)
	}
	app.Products = append(app.Products, p)
	return nil
}
