package sandbox

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/caddyhttp/fileserver"
	"github.com/shopspring/decimal"
)

func TestUnmarshalCaddyfileEveryOption(t *testing.T) {
	d := caddyfile.NewTestDispenser(`kassa_sandbox {
		name               dev
		public_url         http://localhost:9080
		crystalpay_login   shop
		crystalpay_secret  {env.CP_SECRET}
		crystalpay_secret2 s2
		crystalpay_salt    {env.CP_SALT}
		pegas_token        pt
		smartcashier_token st
		latency            250ms
		receipt_delay      0s
		pegas_commission   3.5
		balance            crystalpay 1000
		balance            pegas 12.50
		crystalpay_wallets
		smartcashier_tax_types 11 12
		fault smartcashier formReceipt error500 2
		fault pegas * latency 0 300ms
		fault smartcashier formReceipt notprocessed 1 "Открыта крышка."
		fault crystalpay generate drop
		fault crystalpay callback forgedcallback 1
	}`)
	var h Handler
	if err := h.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	zero := caddy.Duration(0)
	want := Handler{
		Name: "dev", PublicURL: "http://localhost:9080",
		CrystalPayLogin: "shop", CrystalPaySecret: "{env.CP_SECRET}", CrystalPaySecret2: "s2", CrystalPaySalt: "{env.CP_SALT}",
		PegasToken: "pt", SmartCashierToken: "st",
		Latency: caddy.Duration(250 * time.Millisecond), ReceiptDelay: &zero,
		PegasCommission: ptr(decimal.RequireFromString("3.5")),
		Balances: map[string]decimal.Decimal{
			APICrystalPay: decimal.NewFromInt(1000), APIPegas: decimal.RequireFromString("12.50"),
		},
		CrystalPayWallets:    true,
		SmartCashierTaxTypes: []int{11, 12},
		Faults: []Fault{
			{API: "smartcashier", Op: "formReceipt", Mode: "error500", Count: 2},
			{API: "pegas", Op: "*", Mode: "latency", Latency: caddy.Duration(300 * time.Millisecond)},
			{API: "smartcashier", Op: "formReceipt", Mode: "notprocessed", Count: 1, Message: "Открыта крышка."},
			{API: "crystalpay", Op: "generate", Mode: "drop"},
			{API: "crystalpay", Op: "callback", Mode: "forgedcallback", Count: 1},
		},
	}
	got, _ := json.Marshal(h)
	exp, _ := json.Marshal(want)
	if string(got) != string(exp) {
		t.Errorf("got\n%s\nwant\n%s", got, exp)
	}
}

func TestUnmarshalCaddyfileEmpty(t *testing.T) {
	for _, input := range []string{"kassa_sandbox", "kassa_sandbox {\n}"} {
		t.Run(input, func(t *testing.T) {
			var h Handler
			if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input)); err != nil {
				t.Errorf("%q: %v", input, err)
			}
			if b, _ := json.Marshal(h); string(b) != "{}" {
				t.Errorf("%q gave %s", input, b)
			}
		})
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct{ name, block, want string }{
		{"unknown subdirective", "colour blue", `unrecognized subdirective "colour"`},
		{"missing value", "name", "wrong argument count"},
		{"two values", "pegas_token a b", "wrong argument count"},
		{"duplicate", "name a\nname b", "duplicate name"},
		{"bad duration", "latency soon", "bad duration"},
		{"negative duration", "receipt_delay -1s", "bad duration"},
		{"missing duration", "receipt_delay", "wrong argument count"},
		{"bad commission", "pegas_commission 2,5", "pegas_commission"},
		{"commission 100", "pegas_commission 100", "pegas_commission"},
		{"balance unknown api", "balance smartcashier 1", "unknown api"},
		{"balance one arg", "balance pegas", "wrong argument count"},
		{"balance bad amount", "balance pegas 1e3", "not an amount"},
		{"balance kopecks", "balance crystalpay 10.50", "whole rubles"},
		{"balance duplicate", "balance pegas 1\nbalance pegas 2", "duplicate balance pegas"},
		{"wallets argument", "crystalpay_wallets yes", "wrong argument count"},
		{"tax types none", "smartcashier_tax_types", "wrong argument count"},
		{"tax type zero", "smartcashier_tax_types 0", "not a code from 1 to 99"},
		{"fault too short", "fault pegas *", "wrong argument count"},
		{"fault too long", "fault pegas * latency 0 1s extra", "wrong argument count"},
		{"bad fault mode", "fault pegas * explode", "unknown fault mode"},
		{"bad fault api", "fault yookassa * error500", "unknown api"},
		{"bad fault op", "fault pegas refund error500", "unknown pegas op"},
		{"bad fault count", "fault pegas * error500 many", "count"},
		{"negative fault count", "fault pegas * error500 -1", "count"},
		{"latency fault without duration", "fault pegas * latency 1", "positive latency"},
		{"latency fault bad duration", "fault pegas * latency 1 soon", "bad latency"},
		{"argument to drop", "fault pegas * drop 1 now", "takes no argument"},
		{"notprocessed elsewhere", "fault pegas deposit notprocessed", "notprocessed"},
		{"salt twice", "crystalpay_salt a\ncrystalpay_salt b", "duplicate crystalpay_salt"},
		{"salt missing", "crystalpay_salt", "wrong argument count"},
		{"forged elsewhere", "fault crystalpay invoice/create forgedcallback", "callback only"},
		{"argument to forged", "fault crystalpay callback forgedcallback 1 x", "takes no argument"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var h Handler
			err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("kassa_sandbox {\n" + tc.block + "\n}"))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("argument after the directive", func(t *testing.T) {
		var h Handler
		if err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser("kassa_sandbox dev")); err == nil {
			t.Error("accepted an argument")
		}
	})
}

// TestCaddyfileAdapt adapts a whole site: the directive needs no order
// line, and secrets stay placeholders in the JSON.
func TestCaddyfileAdapt(t *testing.T) {
	input := `:9080 {
	kassa_sandbox {
		pegas_token {env.PEGAS_TOKEN}
		fault pegas balance forbidden 1
	}
	file_server
}
`
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("no caddyfile adapter")
	}
	out, warnings, err := adapter.Adapt([]byte(input), nil)
	if err != nil {
		t.Fatalf("adapt: %v", err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %v", warnings)
	}
	js := string(out)
	sandbox := strings.Index(js, `"handler":"kassa_sandbox"`)
	files := strings.Index(js, `"handler":"file_server"`)
	if sandbox < 0 || files < 0 || files < sandbox {
		t.Errorf("kassa_sandbox must come before file_server:\n%s", js)
	}
	for _, want := range []string{`"pegas_token":"{env.PEGAS_TOKEN}"`, `"faults":[{"api":"pegas","count":1,"mode":"forbidden","op":"balance"}]`} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON lacks %s:\n%s", want, js)
		}
	}
}
