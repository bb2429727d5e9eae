package sandbox

import (
	"net/http"
	"strings"
	"testing"
)

func TestPaymentPageCrystalPay(t *testing.T) {
	s := newTestSandbox(t, nil)
	gen := s.get(crystalPayURL("o", "generate", "amount", "100", "redirect", "https://shop.example/thanks?a=1&b=2")).object(t)
	page := strings.TrimPrefix(gen["url"].(string), s.srv.URL)

	r := s.get(page)
	body := string(r.body)
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET page: %d %s", r.status, r.header.Get("Content-Type"))
	}
	for _, want := range []string{`<form method="post">`, `<button type="submit" id="pay">Оплатить</button>`,
		"100.00", "CrystalPAY", "caddy-kassa", "no money moves", gen["id"].(string)} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if ru, en := strings.Index(body, "Оплата заказа"), strings.Index(body, "Sandbox payment"); ru < 0 || en < ru {
		t.Error("page is not Russian first, English second")
	}
	if strings.Contains(body, "<script") {
		t.Error("page needs JavaScript")
	}

	for range 2 {
		r = s.do(http.MethodPost, page, "")
		if r.status != http.StatusSeeOther || r.header.Get("Location") != "https://shop.example/thanks?a=1&b=2" {
			t.Fatalf("POST page: %d to %q", r.status, r.header.Get("Location"))
		}
	}
	if b := s.state().CrystalPay.Balance; b != "100" {
		t.Errorf("balance after paying twice %s, want 100", b)
	}
	r = s.get(page)
	if !strings.Contains(string(r.body), "Оплачено") || strings.Contains(string(r.body), `id="pay"`) {
		t.Errorf("a paid invoice's page still offers to pay")
	}
}

func TestPaymentPagePegas(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.pegasGet("deposit", "amount", "200", "type", "invoice-select", "order_id", "P-1")
	s.pegasGet("deposit", "amount", "50", "type", "wallet", "order_id", "P-2")
	s.pegasGet("deposit", "amount", "50", "type", "invoice-card", "order_id", "P-3")
	s.pegasGet("deposit/cancel", "order_id", "P-3", "id", "100003")

	r := s.do(http.MethodPost, "/pay/pegas/100001", "")
	if r.status != http.StatusOK || !strings.Contains(string(r.body), "Оплачено") || !strings.Contains(string(r.body), "/ Paid") {
		t.Fatalf("POST without success_url: %d %s", r.status, r.body)
	}
	if b := s.state().Pegas.Balance; b != "195.00" {
		t.Errorf("balance %s, want 195.00", b)
	}
	if r := s.get("/pay/pegas/100002"); !strings.Contains(string(r.body), pegasWalletNumber) {
		t.Error("wallet deposit page does not show the wallet to pay to")
	}
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		if r := s.do(method, "/pay/pegas/100003", ""); r.status != http.StatusConflict || !strings.Contains(string(r.body), "отменён") {
			t.Errorf("%s cancelled invoice: %d", method, r.status)
		}
		if r := s.do(method, "/pay/pegas/999", ""); r.status != http.StatusNotFound {
			t.Errorf("%s unknown invoice: %d", method, r.status)
		}
	}
	if b := s.state().Pegas.Balance; b != "195.00" {
		t.Errorf("balance %s after paying a cancelled invoice", b)
	}
}

func TestPaymentPageEdges(t *testing.T) {
	s := newTestSandbox(t, nil)
	r := s.get("/pay/crystalpay/%3Cscript%3Ealert(1)")
	if r.status != http.StatusNotFound || strings.Contains(string(r.body), "<script>") ||
		!strings.Contains(string(r.body), "&lt;script&gt;") {
		t.Errorf("unknown id not escaped: %d %s", r.status, r.body)
	}
	for _, path := range []string{"/pay/yookassa/1", "/pay/pegas/", "/pay/pegas/1/2", "/pay"} {
		if r := s.get(path); r.status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.status)
		}
	}
	if r := s.do(http.MethodPut, "/pay/pegas/100001", ""); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d, want 405", r.status)
	}
}
