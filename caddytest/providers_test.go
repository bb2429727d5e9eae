package caddytest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/shopspring/decimal"

	"github.com/caddy-kassa/kassa"
)

// sandboxConfig serves the sandbox alone, as a site admin would run it
// beside a shop.
const sandboxConfig = `{
	admin localhost:2999
	skip_install_trust
	http_port 9180
}

http://localhost:9180 {
	kassa_sandbox {
		name providers
		receipt_delay 0s
		balance crystalpay 1000
		balance pegas 1000
	}
}`

const sandboxURL = "http://localhost:9180"

// provision provisions a provider module outside any app, as the kassa app
// does, and cleans it up when the test ends.
func provision[T interface {
	caddy.Provisioner
	caddy.CleanerUpper
}](t *testing.T, m T) T {
	t.Helper()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	t.Cleanup(cancel)
	if err := m.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Cleanup() })
	return m
}

// pay presses the sandbox payment page's Pay button and returns where the
// buyer is sent: the invoice's return URL, or "" when it has none and the
// sandbox shows its own "paid" page.
func pay(t *testing.T, pageURL string) string {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.PostForm(pageURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusOK {
		t.Fatalf("pay %s: status %d", pageURL, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

// TestProvidersAgainstSandboxInCaddy runs a payment through each payment
// provider and a receipt through Smart Cashier, with the sandbox served by
// a real Caddy from a Caddyfile.
func TestProvidersAgainstSandboxInCaddy(t *testing.T) {
	tester := caddytest.NewTester(t)
	tester.InitServer(sandboxConfig, "caddyfile")
	ctx := context.Background()

	crystal := provision(t, &kassa.CrystalPay{API: "v1", Login: "sandbox", Secret: "sandbox-secret", Secret2: "sandbox-secret2",
		Endpoint: sandboxURL + "/crystalpay/api.php"}).Provider()
	p, err := crystal.CreatePayment(ctx, kassa.PaymentRequest{Amount: decimal.NewFromInt(700),
		ReturnURL: "http://shop.example/thanks"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(p.URL, sandboxURL+"/pay/crystalpay/") {
		t.Errorf("payment URL %q does not point at the sandbox", p.URL)
	}
	if loc := pay(t, p.URL); loc != "http://shop.example/thanks" {
		t.Errorf("redirected to %q", loc)
	}
	if st, err := crystal.PaymentStatus(ctx, kassa.PaymentRef{ID: p.ID}); err != nil || !st.Paid {
		t.Errorf("checkpay: %+v, %v", st, err)
	}
	if b, err := crystal.Balance(ctx); err != nil || !b.Total.Equal(decimal.NewFromInt(1700)) {
		t.Errorf("balance: %v, %v", b.Total, err)
	}

	pegas := provision(t, &kassa.Pegas{Token: "sandbox-token", Endpoint: sandboxURL + "/pegas/api/v1"})
	dep, err := pegas.CreatePayment(ctx, kassa.PaymentRequest{OrderID: "caddytest-1", Amount: decimal.RequireFromString("99.90")})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := pegas.PaymentStatus(ctx, kassa.PaymentRef{OrderID: "caddytest-1"}); st.Paid {
		t.Error("an unpaid deposit reads as paid")
	}
	if loc := pay(t, dep.URL); loc != "" {
		t.Errorf("a deposit without success_url redirected to %q", loc)
	}
	if st, err := pegas.PaymentStatus(ctx, kassa.PaymentRef{OrderID: "caddytest-1"}); err != nil || !st.Paid {
		t.Errorf("receipt-file probe: %+v, %v", st, err)
	}
	if _, err := pegas.CreatePayment(ctx, kassa.PaymentRequest{OrderID: "caddytest-1", Amount: decimal.NewFromInt(1)}); !errors.Is(err, kassa.ErrDuplicate) {
		t.Errorf("repeated order_id: %v", err)
	}

	sc := provision(t, &kassa.SmartCashier{Token: "sandbox-token", Endpoint: sandboxURL + "/smartcashier/v1.0",
		Taxation: kassa.TaxationUSNIncome})
	receipt := kassa.Receipt{OperationID: "caddytest-receipt-1", Cashless: decimal.RequireFromString("99.90"),
		Email:     "buyer@example.com",
		Positions: []kassa.Position{{Name: "Чай зелёный", Quantity: 1, Price: decimal.RequireFromString("99.90")}}}
	if err := sc.FormReceipt(ctx, receipt); err != nil {
		t.Fatal(err)
	}
	op, err := sc.ReceiptStatus(ctx, receipt.OperationID)
	if err != nil || op.Status != kassa.OperationProcessed || op.Fiscal == nil || op.Fiscal.DocumentSign == "" {
		t.Errorf("checkStatus: %+v, %v", op, err)
	}
}
