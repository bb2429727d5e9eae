package sandbox

import (
	"strconv"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/shopspring/decimal"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("kassa_sandbox", parseCaddyfile)
	httpcaddyfile.RegisterDirectiveOrder("kassa_sandbox", httpcaddyfile.Before, "file_server")
}

// parseCaddyfile sets up the handler from Caddyfile tokens.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(Handler)
	err := s.UnmarshalCaddyfile(h.Dispenser)
	return s, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Every
// subdirective is optional and, except balance (once per api) and fault,
// may appear once.
//
// Syntax:
//
//	kassa_sandbox [<matcher>] {
//		name               <name>          # shared state; default "default"
//		public_url         <url>           # base of payment-page links
//		crystalpay_login   <login>         # default sandbox
//		crystalpay_secret  <secret>        # default sandbox-secret
//		crystalpay_secret2 <secret>        # default sandbox-secret2
//		crystalpay_salt    <salt>          # API v3 salt; default sandbox-salt
//		pegas_token        <token>         # default sandbox-token
//		smartcashier_token <token>         # default sandbox-token
//		latency            <duration>      # added to every API call; default 0s
//		receipt_delay      <duration>      # Smart Cashier queue time; default 1s
//		pegas_commission   <percent>       # default 2.5
//		balance            crystalpay|pegas <rubles>
//		crystalpay_wallets                 # balance as an object per wallet
//		smartcashier_tax_types <code>...   # taxType codes taken beyond 1 to 6
//		fault <api> <op> <mode> [<count>] [<arg>]
//	}
//
// A fault's arg is the duration of a latency fault, or the message of an
// error500, auth, forbidden or notprocessed fault. Secrets accept {env.*}
// placeholders, resolved when the config is loaded.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // the directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		option := d.Val()
		if option != "fault" && option != "balance" {
			if seen[option] {
				return d.Errf("duplicate %s", option)
			}
			seen[option] = true
		}
		var err error
		switch option {
		case "name":
			err = oneArg(d, &h.Name)
		case "public_url":
			err = oneArg(d, &h.PublicURL)
		case "crystalpay_login":
			err = oneArg(d, &h.CrystalPayLogin)
		case "crystalpay_secret":
			err = oneArg(d, &h.CrystalPaySecret)
		case "crystalpay_secret2":
			err = oneArg(d, &h.CrystalPaySecret2)
		case "crystalpay_salt":
			err = oneArg(d, &h.CrystalPaySalt)
		case "pegas_token":
			err = oneArg(d, &h.PegasToken)
		case "smartcashier_token":
			err = oneArg(d, &h.SmartCashierToken)
		case "latency":
			var v time.Duration
			if v, err = durationArg(d); err == nil {
				h.Latency = caddy.Duration(v)
			}
		case "receipt_delay":
			var v time.Duration
			if v, err = durationArg(d); err == nil {
				cd := caddy.Duration(v)
				h.ReceiptDelay = &cd
			}
		case "pegas_commission":
			var s string
			if err = oneArg(d, &s); err != nil {
				break
			}
			v, ok := parseMoney(s)
			if !ok || v.GreaterThanOrEqual(decimal.NewFromInt(100)) {
				return d.Errf("pegas_commission: want a percentage below 100 with at most 2 decimals, got %q", s)
			}
			h.PegasCommission = &v
		case "balance":
			err = h.unmarshalBalance(d)
		case "crystalpay_wallets":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.CrystalPayWallets = true
		case "smartcashier_tax_types":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, a := range args {
				code, convErr := strconv.Atoi(a)
				if convErr != nil || code < 1 || code > 99 {
					return d.Errf("smartcashier_tax_types: %q is not a code from 1 to 99", a)
				}
				h.SmartCashierTaxTypes = append(h.SmartCashierTaxTypes, code)
			}
		case "fault":
			err = h.unmarshalFault(d)
		default:
			return d.Errf("unrecognized subdirective %q", option)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// oneArg reads the single argument of an option.
func oneArg(d *caddyfile.Dispenser, dst *string) error {
	if !d.AllArgs(dst) {
		return d.ArgErr()
	}
	return nil
}

// durationArg reads the single, non-negative duration argument of an
// option.
func durationArg(d *caddyfile.Dispenser) (time.Duration, error) {
	option := d.Val()
	var s string
	if err := oneArg(d, &s); err != nil {
		return 0, err
	}
	v, err := caddy.ParseDuration(s)
	if err != nil || v < 0 {
		return 0, d.Errf("%s: bad duration %q", option, s)
	}
	return v, nil
}

// unmarshalBalance reads: balance crystalpay|pegas <rubles>.
func (h *Handler) unmarshalBalance(d *caddyfile.Dispenser) error {
	var api, amount string
	if !d.AllArgs(&api, &amount) {
		return d.ArgErr()
	}
	v, ok := parseMoney(amount)
	if !ok {
		return d.Errf("balance: %q is not an amount in rubles (digits, at most 2 decimals)", amount)
	}
	if _, dup := h.Balances[api]; dup {
		return d.Errf("duplicate balance %s", api)
	}
	if err := checkBalance(api, v); err != nil {
		return d.Err(err.Error())
	}
	if h.Balances == nil {
		h.Balances = map[string]decimal.Decimal{}
	}
	h.Balances[api] = v
	return nil
}

// unmarshalFault reads: fault <api> <op> <mode> [<count>] [<arg>].
func (h *Handler) unmarshalFault(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) < 3 || len(args) > 5 {
		return d.ArgErr()
	}
	f := Fault{API: args[0], Op: args[1], Mode: args[2]}
	if len(args) > 3 {
		n, err := strconv.Atoi(args[3])
		if err != nil || n < 0 {
			return d.Errf("fault: count must be a non-negative integer, got %q", args[3])
		}
		f.Count = n
	}
	if len(args) > 4 {
		switch f.Mode {
		case FaultLatency:
			v, err := caddy.ParseDuration(args[4])
			if err != nil || v <= 0 {
				return d.Errf("fault: bad latency %q", args[4])
			}
			f.Latency = caddy.Duration(v)
		case FaultError500, FaultAuth, FaultForbidden, FaultNotProcessed:
			f.Message = args[4]
		default:
			return d.Errf("fault: mode %s takes no argument", f.Mode)
		}
	}
	if err := f.normalize(); err != nil {
		return d.Errf("fault: %v", err)
	}
	h.Faults = append(h.Faults, f)
	return nil
}
