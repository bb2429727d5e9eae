package kassa

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/filestorage"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestGlobalOption(t *testing.T) {
	d := caddyfile.NewTestDispenser(`kassa {
		payment main crystalpay {
			login {env.CRYSTALPAY_LOGIN}
			secret {env.CRYSTALPAY_SECRET}
		}
		payment card pegas {
			token {env.PEGAS_TOKEN}
			endpoint https://pegas.example/api/v1
			type wallet
		}
		receipts smartcashier {
			token {env.SMARTCASHIER_TOKEN}
			taxation usn_income
		}
		catalog /srv/shop/catalog.json
		product tea-green 350.00 "Green tea 100 g" vat20
		product cup 1200 Cup
		poll_interval 5s
		poll_concurrency 8
		rate_limit main 5/s
		rate_limit card 0.5/s
		order_ttl 1h
		keep_unpaid 72h
		erase_contacts_after 1095d
		time_zone Europe/Moscow
		storage file_system /var/lib/kassa
	}`)
	out, err := parseGlobalOption(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	var app map[string]any
	if err := json.Unmarshal(out.(httpcaddyfile.App).Value, &app); err != nil {
		t.Fatal(err)
	}
	payments := app["payments"].(map[string]any)
	main := payments["main"].(map[string]any)
	card := payments["card"].(map[string]any)
	if main["provider"] != "crystalpay" || main["secret"] != "{env.CRYSTALPAY_SECRET}" ||
		card["provider"] != "pegas" || card["type"] != "wallet" {
		t.Errorf("payments = %v", payments)
	}
	if r := app["receipts"].(map[string]any); r["provider"] != "smartcashier" || r["taxation"] != "usn_income" {
		t.Errorf("receipts = %v", r)
	}
	if s := app["storage"].(map[string]any); s["module"] != "file_system" || s["root"] != "/var/lib/kassa" {
		t.Errorf("storage = %v", s)
	}
	products := app["products"].([]any)
	if len(products) != 2 || products[0].(map[string]any)["vat"] != "vat20" || products[1].(map[string]any)["price"] != "1200.00" {
		t.Errorf("products = %v", products)
	}
	if app["catalog"] != "/srv/shop/catalog.json" || app["poll_interval"] != 5e9 || app["order_ttl"] != 3600e9 || app["keep_unpaid"] != 72*3600e9 ||
		app["time_zone"] != "Europe/Moscow" || app["erase_contacts_after"] != 1095*24*3600e9 {
		t.Errorf("app = %v", app)
	}
	if limits, _ := app["rate_limit"].(map[string]any); app["poll_concurrency"] != 8.0 || limits["main"] != 5.0 || limits["card"] != 0.5 {
		t.Errorf("poll_concurrency = %v, rate_limit = %v", app["poll_concurrency"], app["rate_limit"])
	}
}

// checkCaddyfileErrors parses each input with parse and wants an error
// that contains the input's text and names the file and line.
func checkCaddyfileErrors(t *testing.T, parse func(d *caddyfile.Dispenser) error, cases map[string]string) {
	t.Helper()
	for input, want := range cases {
		t.Run(input, func(t *testing.T) {
			err := parse(caddyfile.NewTestDispenser(input))
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want one containing %q", err, want)
			}
			if !strings.Contains(err.Error(), "Testfile:") {
				t.Errorf("error does not name the file and line: %v", err)
			}
		})
	}
}

func TestGlobalOptionErrors(t *testing.T) {
	checkCaddyfileErrors(t, func(d *caddyfile.Dispenser) error { _, err := parseGlobalOption(d, nil); return err }, map[string]string{
		"kassa {\n payment main crystalpay {\n login a\n }\n payment main pegas\n}": `payment account "main" given twice`,
		"kassa {\n payment Main crystalpay\n}":                                      "want 1 to 32",
		"kassa {\n payment main\n}":                                                 "wrong argument count",
		"kassa {\n payment main paypal\n}":                                          "kassa.payments.paypal",
		"kassa {\n payment main crystalpay {\n sekret x\n }\n}":                     `unrecognized subdirective "sekret"`,
		"kassa {\n receipts smartcashier {\n vat vat21\n }\n}":                      "vat21",
		"kassa {\n receipts smartcashier\n receipts smartcashier\n}":                "receipts given twice",
		"kassa {\n product tea\n}":                                                  "want <sku> <price> <name>",
		"kassa {\n product tea 1e3 Tea\n}":                                          "product tea",
		"kassa {\n product tea 350 Tea vat21\n}":                                    "vat21",
		"kassa {\n product tea 350 Tea\n product tea 1 Tea\n}":                      "product tea given twice",
		"kassa {\n poll_interval soon\n}":                                           "bad duration",
		"kassa {\n poll_concurrency 0\n}":                                           "whole number from 1",
		"kassa {\n rate_limit main\n}":                                              "want <account> <n>/s",
		"kassa {\n rate_limit main 5\n}":                                            "such as 5/s",
		"kassa {\n rate_limit main -1/s\n}":                                         "such as 5/s",
		"kassa {\n rate_limit main 5/s\n rate_limit main 6/s\n}":                    "rate_limit main given twice",
		"kassa {\n order_ttl\n}":                                                    "wrong argument count",
		"kassa {\n keep_unpaid forever\n}":                                          "forever",
		"kassa {\n erase_contacts_after 0s\n}":                                      "erase_contacts_after must be more than zero",
		"kassa {\n erase_contacts_after 30d\n erase_contacts_after 30d\n}":          "erase_contacts_after given twice",
		"kassa {\n catalog a.json\n catalog b.json\n}":                              "catalog given twice",
		"kassa {\n webhook /x\n}":                                                   `unrecognized kassa option "webhook"`,
		"kassa {\n max_orders_per_client 0\n}":                                      "whole number from 1",
		"kassa {\n max_orders_per_client many\n}":                                   "whole number from 1",
		"kassa {\n time_zone Europe/Moscow UTC\n}":                                  "wrong argument count",
		"kassa {\n time_zone UTC\n time_zone UTC\n}":                                "time_zone given twice",
		"kassa extra": "wrong argument count",
		"kassa {\n notify https://shop.example/hook {\n events order.paid\n }\n}":                            "secret is required",
		"kassa {\n notify https://shop.example/hook {\n secret s\n events order.payed\n }\n}":                `unknown event "order.payed" (the events: order.paid, order.paid_late`,
		"kassa {\n notify https://shop.example/hook {\n secret s\n events\n }\n}":                            "wrong argument count",
		"kassa {\n notify https://shop.example/hook {\n secret s\n retries 3\n }\n}":                         `unrecognized notify option "retries"`,
		"kassa {\n notify https://shop.example/hook {\n secret s\n timeout soon\n }\n}":                      "bad duration",
		"kassa {\n notify https://a.example {\n secret s\n }\n notify https://a.example {\n secret t\n }\n}": "notify https://a.example given twice",
		"kassa {\n notify\n}": "wrong argument count",
	})
	if _, err := parseGlobalOption(caddyfile.NewTestDispenser("kassa"), &App{}); err == nil {
		t.Error("a second kassa option was accepted")
	}
}

func TestNotifyCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`kassa {
		notify https://backend.example/kassa-events {
			secret {env.KASSA_NOTIFY_SECRET}
			events order.paid receipt.done
			timeout 5s
		}
		notify http://127.0.0.1:9000/hook {
			secret {env.OTHER}
		}
	}`)
	out, err := parseGlobalOption(d, nil)
	if err != nil {
		t.Fatal(err)
	}
	var app struct {
		Notify []map[string]any `json:"notify"`
	}
	if err := json.Unmarshal(out.(httpcaddyfile.App).Value, &app); err != nil {
		t.Fatal(err)
	}
	if len(app.Notify) != 2 {
		t.Fatalf("notify = %v", app.Notify)
	}
	first, second := app.Notify[0], app.Notify[1]
	if first["url"] != "https://backend.example/kassa-events" || first["secret"] != "{env.KASSA_NOTIFY_SECRET}" ||
		first["timeout"] != 5e9 || fmt.Sprint(first["events"]) != "[order.paid receipt.done]" {
		t.Errorf("first notify = %v", first)
	}
	if second["url"] != "http://127.0.0.1:9000/hook" || second["events"] != nil || second["timeout"] != nil {
		t.Errorf("second notify = %v", second)
	}
}

func TestCheckoutCaddyfile(t *testing.T) {
	var h Checkout
	err := h.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`kassa_checkout main {
		redirect https://shop.example/thanks?order={kassa.order_id}
		amount_range 10 5000.50
		description "Donation"
		max_body 16KiB
	}`))
	if err != nil {
		t.Fatal(err)
	}
	if h.Payment != "main" || h.Redirect != "https://shop.example/thanks?order={kassa.order_id}" ||
		!h.AmountRange.Min.Equal(decimal.NewFromInt(10)) || !h.AmountRange.Max.Equal(decimal.RequireFromString("5000.5")) ||
		h.Description != "Donation" || h.MaxBody != 16<<10 {
		t.Errorf("got %+v", h)
	}
	var proxied Checkout
	err = proxied.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`kassa_checkout {
		payment card
		amount {rp.header.X-Kassa-Amount}
		order_id {rp.header.X-Kassa-Order}
		items {rp.header.X-Kassa-Items}
		email {rp.header.X-Kassa-Email}
		phone {rp.header.X-Kassa-Phone}
	}`))
	if err != nil || proxied.Payment != "card" || proxied.Amount != "{rp.header.X-Kassa-Amount}" ||
		proxied.Items != "{rp.header.X-Kassa-Items}" || proxied.Phone != "{rp.header.X-Kassa-Phone}" {
		t.Errorf("proxied: %+v, %v", proxied, err)
	}

	checkCaddyfileErrors(t, func(d *caddyfile.Dispenser) error { return new(Checkout).UnmarshalCaddyfile(d) }, map[string]string{
		"kassa_checkout main extra":                                       "wrong argument count",
		"kassa_checkout {\n amount_range 10\n}":                           "wrong argument count",
		"kassa_checkout {\n amount_range 100 10\n}":                       "want 0 < min",
		"kassa_checkout {\n amount_range 0 10\n}":                         "want 0 < min",
		"kassa_checkout {\n amount_range -1 10\n}":                        "amount_range",
		"kassa_checkout {\n amount_range 1 10\n amount_range 1 10\n}":     "given twice",
		"kassa_checkout {\n max_body lots\n}":                             "bad size",
		"kassa_checkout {\n redirect\n}":                                  "wrong argument count",
		"kassa_checkout {\n price 1\n}":                                   `unrecognized subdirective "price"`,
		"kassa_checkout main {\n payment card\n}":                         "payment given twice",
		"kassa_checkout {\n description a\n description b\n}":             "given twice",
		"kassa_checkout {\n amount {rp.header.A}\n amount {rp.header.B}}": "given twice",
	})
}

// TestProvisionWarnsOfKopecks: a catalog price with kopecks and a
// CrystalPAY account give a warning at start.
func TestProvisionWarnsOfKopecks(t *testing.T) {
	core, logs := observer.New(zap.WarnLevel)
	app := &App{
		Products: []Product{{SKU: "candy", Name: "Candy", Price: decimal.RequireFromString("99.99")},
			{SKU: "tea", Name: "Tea", Price: decimal.NewFromInt(350)}},
	}
	app.accounts = map[string]*account{"main": {name: "main", provider: "crystalpay", PaymentProvider: &crystalPayV1{}}}
	app.logger = zap.New(core)
	catalog, err := NewCatalog(app.Products)
	if err != nil {
		t.Fatal(err)
	}
	app.catalog = catalog
	app.warnKopecks()
	entries := logs.FilterMessageSnippet("kopecks").All()
	if len(entries) != 1 || entries[0].ContextMap()["account"] != "main" {
		t.Fatalf("warnings = %v", logs.All())
	}
	if skus := entries[0].ContextMap()["skus"]; len(skus.([]any)) != 1 {
		t.Errorf("skus = %v", skus)
	}
}

// fuzzDispenser tokenizes input as caddyfile.NewTestDispenser does, but
// reports a lexing error (an unterminated quote) instead of exiting the
// process, as NewTestDispenser does. Inputs with {$ENV} placeholders are
// skipped: NewTestDispenser would substitute them before lexing.
func fuzzDispenser(t *testing.T, input string) *caddyfile.Dispenser {
	t.Helper()
	if strings.Contains(input, "{$") {
		t.Skip("environment placeholders are substituted before lexing")
	}
	if _, err := caddyfile.Tokenize([]byte(input), "Testfile"); err != nil {
		t.Skip("not lexable")
	}
	return caddyfile.NewTestDispenser(input)
}

// FuzzGlobalOption feeds arbitrary Caddyfile text to the kassa global
// option's parser. It must not panic, and what it accepts must be an app
// config that decodes again with the app's own strict JSON rules: every
// inline product valid and unique (a catalog can be built of them), the
// durations positive, the payment accounts validly named.
func FuzzGlobalOption(f *testing.F) {
	for _, s := range []string{
		"kassa",
		"kassa {\n}",
		`kassa {
	payment main crystalpay {
		api     v1
		login   {env.CRYSTALPAY_LOGIN}
		secret  {env.CRYSTALPAY_SECRET}
		secret2 {env.CRYSTALPAY_SECRET2}
	}
	payment card pegas {
		token    {env.PEGAS_TOKEN}
		endpoint https://pegas.example/api/v1
		type     invoice-card
	}
	receipts smartcashier {
		token      {env.SMARTCASHIER_TOKEN}
		cashbox_id da2bb850-63ef-47e4-8b45-7b5b841eaa9b
		taxation   usn_income
		vat        none
		print      false
	}
	catalog /srv/shop/catalog.json
	product tea-green 350.00 "Green tea 100 g" vat20
	product cup 1200 "Чашка"
	poll_interval 10s
	order_ttl 30m
}`,
		"kassa {\n\tproduct tea 350.00 \"Tea\" vat20\n\tproduct tea 1 \"Twice\"\n}",
		"kassa {\n\tproduct tea 3.5e2 \"Tea\"\n}",
		"kassa {\n\tproduct tea -1 \"Tea\"\n}",
		"kassa {\n\tproduct ../../etc/passwd 1 \"x\"\n}",
		"kassa {\n\tproduct tea 1 \"<script>alert(1)</script>\"\n}",
		"kassa {\n\tproduct tea 1 \"a\x00b\"\n}",
		"kassa {\n\tproduct tea ３５０ \"Tea\"\n}",
		"kassa {\n\tpoll_interval 0s\n\torder_ttl -1m\n}",
		"kassa {\n\tpoll_interval 1s\n\tpoll_interval 2s\n}",
		"kassa {\n\tpayment ../x crystalpay {\n\t}\n}",
		"kassa {\n\tpayment main nope {\n\t}\n}",
		"kassa {\n\treceipts smartcashier {\n\t\ttoken x\n\t}\n\treceipts smartcashier\n}",
		"kassa {\n\tstorage nope\n}",
		"kassa extra {\n}",
		"kassa {\n\tunknown thing\n}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, input string) {
		d := fuzzDispenser(t, input)
		v, err := parseGlobalOption(d, nil)
		if err != nil {
			return
		}
		app, ok := v.(httpcaddyfile.App)
		if !ok || app.Name != "kassa" {
			t.Fatalf("accepted as %#v, want the kassa app", v)
		}
		var got App
		if err := json.Unmarshal(app.Value, &got); err != nil {
			t.Fatalf("the app's JSON does not decode again: %v\n%s", err, app.Value)
		}
		if _, err := NewCatalog(got.Products); err != nil {
			t.Fatalf("accepted products that make no catalog: %v\n%s", err, app.Value)
		}
		for _, p := range got.Products {
			if !plainAmount(p.Price) || checkItemName(p.Name) != nil || !validSKU(p.SKU) {
				t.Fatalf("accepted product %+v", p)
			}
		}
		if got.PollInterval < 0 || got.OrderTTL < 0 {
			t.Fatalf("accepted durations %v %v", got.PollInterval, got.OrderTTL)
		}
		for name := range got.PaymentsRaw {
			if err := validateAccountName(name); err != nil {
				t.Fatalf("accepted account name %q: %v", name, err)
			}
		}
	})
}

// TestTimeZoneIsChecked: an unknown time_zone stops the config at
// provision time, naming the option.
func TestTimeZoneIsChecked(t *testing.T) {
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	err := (&App{TimeZone: "Europe/Atlantis"}).Provision(ctx)
	if err == nil || !strings.Contains(err.Error(), `time_zone "Europe/Atlantis"`) {
		t.Errorf("Provision = %v, want the time_zone refused", err)
	}
}

// TestMaxOpenOrdersCaddyfile: max_open_orders takes a whole number or off
// (-1, no cap); omitted, the JSON leaves it out for the default.
func TestMaxOpenOrdersCaddyfile(t *testing.T) {
	for input, want := range map[string]any{
		"kassa {\n max_open_orders 500\n}": float64(500),
		"kassa {\n max_open_orders off\n}": float64(-1),
		"kassa {\n order_ttl 1h\n}":        nil,
	} {
		out, err := parseGlobalOption(caddyfile.NewTestDispenser(input), nil)
		if err != nil {
			t.Fatalf("%q: %v", input, err)
		}
		var app map[string]any
		if err := json.Unmarshal(out.(httpcaddyfile.App).Value, &app); err != nil {
			t.Fatal(err)
		}
		if got := app["max_open_orders"]; got != want {
			t.Errorf("%q: max_open_orders %v, want %v", input, got, want)
		}
	}
	checkCaddyfileErrors(t, func(d *caddyfile.Dispenser) error { _, err := parseGlobalOption(d, nil); return err }, map[string]string{
		"kassa {\n max_open_orders\n}":                         "wrong argument count",
		"kassa {\n max_open_orders 0\n}":                       "whole number from 1",
		"kassa {\n max_open_orders lots\n}":                    "whole number from 1",
		"kassa {\n max_open_orders off 5\n}":                   "wrong argument count",
		"kassa {\n max_open_orders 5 6\n}":                     "wrong argument count",
		"kassa {\n max_open_orders 5\n max_open_orders off\n}": "max_open_orders given twice",
	})
	for _, bad := range []*App{{MaxOpenOrders: -2}, {MaxOrdersPerClient: -2}} {
		if err := bad.Validate(); err == nil {
			t.Errorf("%+v validated", bad)
		}
	}
}

// TestMaxOrdersPerClientCaddyfile: max_orders_per_client takes a whole
// number or off; in JSON off is -1 and omitted is the default, 50 from a
// public address; -1 validates. Before: off was refused, and omitted
// bounded nothing.
func TestMaxOrdersPerClientCaddyfile(t *testing.T) {
	for input, want := range map[string]string{
		"kassa {\n max_orders_per_client 5\n}":   "5 from any address",
		"kassa {\n max_orders_per_client off\n}": "off",
		"kassa {\n order_ttl 1h\n}":              "50 from public addresses (default)",
	} {
		out, err := parseGlobalOption(caddyfile.NewTestDispenser(input), nil)
		if err != nil {
			t.Fatalf("%q: %v", input, err)
		}
		var app App
		if err := json.Unmarshal(out.(httpcaddyfile.App).Value, &app); err != nil {
			t.Fatal(err)
		}
		if err := app.Validate(); err != nil {
			t.Errorf("%q: %v", input, err)
		}
		if got := newClientLimit(app.MaxOrdersPerClient, time.Hour).describe(); got != want {
			t.Errorf("%q: max_orders_per_client %s, want %s", input, got, want)
		}
	}
	checkCaddyfileErrors(t, func(d *caddyfile.Dispenser) error { _, err := parseGlobalOption(d, nil); return err }, map[string]string{
		"kassa {\n max_orders_per_client\n}":                               "wrong argument count",
		"kassa {\n max_orders_per_client off 5\n}":                         "wrong argument count",
		"kassa {\n max_orders_per_client 5\n max_orders_per_client off\n}": "max_orders_per_client given twice",
	})
}
