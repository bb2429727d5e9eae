package kassa

import (
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestProviderClientEndpoint: a provider says where it points through its
// ProviderClient: the endpoint's host, and whether it is a sandbox, which
// is a loopback endpoint or one under a path of the kassa sandbox.
func TestProviderClientEndpoint(t *testing.T) {
	for endpoint, want := range map[string]bool{
		"http://localhost:9080/crystalpay/v3/":          true,
		"http://127.0.0.1:41234":                        true,
		"http://[::1]:9080/smartcashier/v1.0":           true,
		"https://sandbox.shop.example/pegas/api/v1":     true,
		"https://staging.example/crystalpay/api.php":    true,
		"https://staging.example/smartcashier/v1.0":     true,
		"https://api.crystalpay.io/v3/":                 false,
		"https://api.crystalpay.ru/api.php":             false,
		"https://api.smart-cashier.ru/v1.0":             false,
		"https://pegas.example/api/v1":                  false,
		"https://pegas.example/pegasus/api/v1":          false,
		"https://shop-sandbox-looking.example/api/v1.0": false,
	} {
		c, err := NewProviderClient("test", endpoint, 0, "a-secret-token")
		if err != nil {
			t.Fatalf("%s: %v", endpoint, err)
		}
		host, sandbox := c.APIEndpoint()
		if sandbox != want || host != c.URL("", nil).Host {
			t.Errorf("%s: APIEndpoint() = %q, %v; want %q, %v", endpoint, host, sandbox, c.URL("", nil).Host, want)
		}
	}
}

// TestMixedSandboxWarns: when payments go to a sandbox while receipts go
// to a real Smart Cashier (real receipts for fake payments), or the
// reverse, the app logs one error-level line per mismatched account,
// naming the account and both hosts and no secret; a shop all in the
// sandbox, or all real, logs none. Before: nothing was said.
func TestMixedSandboxWarns(t *testing.T) {
	client := func(provider, endpoint, secret string) *ProviderClient {
		c, err := NewProviderClient(provider, endpoint, 0, secret)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	crystal := func(endpoint string) *CrystalPay {
		return &CrystalPay{api: client("crystalpay", endpoint, "crystal-secret"), secret: "crystal-secret"}
	}
	pegas := func(endpoint string) *Pegas {
		return &Pegas{api: client("pegas", endpoint, "pegas-token"), token: "pegas-token"}
	}
	cashier := func(endpoint string) *SmartCashier {
		return &SmartCashier{api: client("smartcashier", endpoint, "cashier-token"), token: "cashier-token"}
	}
	for _, tc := range []struct {
		name     string
		main     *CrystalPay
		card     *Pegas
		receipts *SmartCashier
		warned   []string // accounts
	}{
		{"sandbox payments, real receipts", crystal("http://localhost:9080/crystalpay/v3/"), pegas("http://localhost:9080/pegas/api/v1"),
			cashier("https://api.smart-cashier.ru/v1.0"), []string{"card", "main"}},
		{"real payments, sandbox receipts", crystal("https://api.crystalpay.io/v3/"), pegas("https://pegas.example/api/v1"),
			cashier("http://localhost:9080/smartcashier/v1.0"), []string{"card", "main"}},
		{"one account in the sandbox", crystal("https://api.crystalpay.io/v3/"), pegas("https://staging.example/pegas/api/v1"),
			cashier("https://api.smart-cashier.ru/v1.0"), []string{"card"}},
		{"all in the sandbox", crystal("http://localhost:9080/crystalpay/v3/"), pegas("http://localhost:9080/pegas/api/v1"),
			cashier("http://localhost:9080/smartcashier/v1.0"), nil},
		{"all real", crystal("https://api.crystalpay.io/v3/"), pegas("https://pegas.example/api/v1"),
			cashier("https://api.smart-cashier.ru/v1.0"), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			core, logs := observer.New(zapcore.DebugLevel)
			a := &App{logger: zap.New(core), receipts: tc.receipts}
			a.accounts = map[string]*account{
				"main": {name: "main", provider: "crystalpay", PaymentProvider: &crystalPayV3{}, where: tc.main},
				"card": {name: "card", provider: "pegas", PaymentProvider: tc.card, where: tc.card},
			}
			a.warnMixedSandbox()
			var warned []string
			for _, e := range logs.All() {
				for _, secret := range []string{"crystal-secret", "pegas-token", "cashier-token"} {
					if strings.Contains(fmt.Sprint(e.Message, e.ContextMap()), secret) {
						t.Errorf("a log line carries a secret: %s %v", e.Message, e.ContextMap())
					}
				}
				if e.Level != zapcore.ErrorLevel {
					t.Errorf("%s line %q; want error level", e.Level, e.Message)
				}
				m := e.ContextMap()
				acc := m["account"].(string)
				warned = append(warned, acc)
				want := map[string]string{"main": tc.main.api.URL("", nil).Host, "card": tc.card.api.URL("", nil).Host}[acc]
				if m["payment_host"] != want || m["receipts_host"] != tc.receipts.api.URL("", nil).Host {
					t.Errorf("line %q %v: want payment_host %s, receipts_host %s", e.Message, m, want, tc.receipts.api.URL("", nil).Host)
				}
			}
			if strings.Join(warned, " ") != strings.Join(tc.warned, " ") {
				t.Errorf("warned of %v; want %v", warned, tc.warned)
			}
		})
	}
}
