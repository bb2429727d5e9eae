package sandbox

import (
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/shopspring/decimal"
)

func TestCrystalPayAuth(t *testing.T) {
	s := newTestSandbox(t, nil)
	for name, path := range map[string]string{
		"no secret":    "/crystalpay/api.php?n=sandbox&o=balance",
		"no login":     "/crystalpay/api.php?s=sandbox-secret&o=balance",
		"wrong secret": "/crystalpay/api.php?s=nope&n=sandbox&o=balance",
		"wrong login":  "/crystalpay/api.php?s=sandbox-secret&n=nope&o=balance",
		"two secrets":  "/crystalpay/api.php?s=sandbox-secret&s=sandbox-secret&n=sandbox&o=balance",
	} {
		t.Run(name, func(t *testing.T) {
			wantJSON(t, s.get(path), http.StatusOK, `{"auth":"error"}`)
		})
	}
}

func TestCrystalPayBalance(t *testing.T) {
	s := newTestSandbox(t, func(h *Handler) {
		h.Balances = map[string]decimal.Decimal{APICrystalPay: decimal.NewFromInt(1000)}
	})
	wantJSON(t, s.get(crystalPayURL("o", "balance")), http.StatusOK, `{"balance":"1000","auth":"ok"}`)

	s.control(http.MethodPost, "settings", `{"crystalpay_wallets":true}`, http.StatusOK, nil)
	var reply struct {
		Balance map[string]decimal.Decimal
		Auth    string
	}
	r := s.get(crystalPayURL("o", "balance"))
	if err := json.Unmarshal(r.body, &reply); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(r.body), `"QIWI":100,`) {
		t.Errorf("wallet balances are not JSON numbers: %s", r.body)
	}
	sum := decimal.Zero
	for _, v := range reply.Balance {
		sum = sum.Add(v)
	}
	if len(reply.Balance) != 2 || !sum.Equal(decimal.NewFromInt(1000)) || reply.Auth != "ok" {
		t.Errorf("wallet balance %s: want QIWI and VISAMASTER.RUR summing to 1000", r.body)
	}
}

func TestCrystalPayGenerateAndCheckpay(t *testing.T) {
	s := newTestSandbox(t, nil)
	r := s.get(crystalPayURL("o", "generate", "amount", "100", "redirect", "https://shop.example/thanks?order=1"))
	if !strings.Contains(string(r.body), `:\/\/`) {
		t.Errorf("reply does not escape slashes the way PHP does: %s", r.body)
	}
	gen := r.object(t)
	id, _ := gen["id"].(string)
	if !regexp.MustCompile(`^1_[A-Za-z0-9]{10}$`).MatchString(id) {
		t.Fatalf("id %q is not 1_ and 10 alphanumerics", id)
	}
	if gen["url"] != s.srv.URL+"/pay/crystalpay/"+id || gen["error"] != false || gen["auth"] != "ok" {
		t.Fatalf("generate reply %s", r.body)
	}

	wantJSON(t, s.get(crystalPayURL("o", "checkpay", "i", id)), http.StatusOK,
		`{"state":"notpayed","error":false,"auth":"ok"}`)
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+id+`"}`, http.StatusOK, nil)
	wantJSON(t, s.get(crystalPayURL("o", "checkpay", "i", id)), http.StatusOK,
		`{"state":"payed","amount":"100","error":false,"auth":"ok"}`)
	if b := s.state().CrystalPay.Balance; b != "100" {
		t.Errorf("balance after payment %s, want 100", b)
	}
}

func TestCrystalPayPublicURL(t *testing.T) {
	s := newTestSandbox(t, func(h *Handler) { h.PublicURL = "https://pay.example:9443/" })
	gen := s.get(crystalPayURL("o", "generate", "amount", "5")).object(t)
	if url, _ := gen["url"].(string); !strings.HasPrefix(url, "https://pay.example:9443/pay/crystalpay/1_") {
		t.Errorf("url %q does not start with public_url", url)
	}
}

func TestCrystalPayErrors(t *testing.T) {
	s := newTestSandbox(t, nil)
	for name, path := range map[string]string{
		"no operation":      crystalPayURL(),
		"unknown operation": crystalPayURL("o", "refund"),
		"unknown parameter": crystalPayURL("o", "balance", "currency", "RUB"),
		"repeated":          crystalPayURL("o", "generate", "amount", "1", "amount", "2"),
		"no amount":         crystalPayURL("o", "generate"),
		"kopecks":           crystalPayURL("o", "generate", "amount", "100.50"),
		"negative":          crystalPayURL("o", "generate", "amount", "-5"),
		"exponent":          crystalPayURL("o", "generate", "amount", "1e3"),
		"space":             crystalPayURL("o", "generate", "amount", " 100"),
		"zero":              crystalPayURL("o", "generate", "amount", "0"),
		"leading zero":      crystalPayURL("o", "generate", "amount", "0100"),
		"too large":         crystalPayURL("o", "generate", "amount", "1000001"),
		"relative redirect": crystalPayURL("o", "generate", "amount", "1", "redirect", "/thanks"),
		"ftp redirect":      crystalPayURL("o", "generate", "amount", "1", "redirect", "ftp://x.example/"),
		"no payment id":     crystalPayURL("o", "checkpay"),
		"unknown payment":   crystalPayURL("o", "checkpay", "i", "1_0000000000"),
		"withdraw no sig":   crystalPayURL("o", "withdraw", "amount", "1", "wallet", "7900", "service", "qw"),
	} {
		t.Run(name, func(t *testing.T) {
			m := s.get(path).object(t)
			if m["error"] != true || m["auth"] != "ok" || m["error_message"] == "" {
				t.Errorf("reply %v, want error:true with a message", m)
			}
		})
	}
	t.Run("POST", func(t *testing.T) {
		m := s.do(http.MethodPost, crystalPayURL("o", "balance"), "").object(t)
		if m["error"] != true {
			t.Errorf("POST answered %v, want error:true", m)
		}
	})
	t.Run("no invoice created", func(t *testing.T) {
		if n := len(s.state().CrystalPay.Invoices); n != 0 {
			t.Errorf("%d invoices created by refused calls", n)
		}
	})
}

func signWithdraw(wallet, amount, secret2 string) string {
	sum := md5.Sum([]byte(wallet + "-" + amount + "-" + secret2))
	return hex.EncodeToString(sum[:])
}

func TestCrystalPayWithdraw(t *testing.T) {
	s := newTestSandbox(t, func(h *Handler) {
		h.Balances = map[string]decimal.Decimal{APICrystalPay: decimal.NewFromInt(300)}
	})
	withdraw := func(amount, secret string) map[string]any {
		return s.get(crystalPayURL("o", "withdraw", "amount", amount, "wallet", "79001234567",
			"service", "qw", "secret", secret)).object(t)
	}
	good := signWithdraw("79001234567", "200", DefaultCrystalPaySecret2)

	if m := withdraw("200", strings.ToUpper(good)); m["error_message"] != "Invalid signature" {
		t.Errorf("upper-case signature: %v, want Invalid signature", m)
	}
	if m := withdraw("200", signWithdraw("79001234567", "200", "wrong")); m["error_message"] != "Invalid signature" {
		t.Errorf("wrong secret2: %v, want Invalid signature", m)
	}
	if m := withdraw("200", good); m["error"] != false || m["auth"] != "ok" || len(m) != 2 {
		t.Fatalf("withdraw: %v, want {error:false, auth:ok}", m)
	}
	if b := s.state().CrystalPay.Balance; b != "100" {
		t.Errorf("balance after withdraw %s, want 100", b)
	}
	m := withdraw("200", good)
	if msg, _ := m["error_message"].(string); m["error"] != true || !strings.Contains(msg, "Insufficient funds") {
		t.Errorf("second withdraw: %v, want insufficient funds", m)
	}
	if b := s.state().CrystalPay.Balance; b != "100" {
		t.Errorf("balance after refused withdraw %s, want 100", b)
	}
}
