package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/shopspring/decimal"
)

func TestCaddyModule(t *testing.T) {
	info := Handler{}.CaddyModule()
	if info.ID != "http.handlers.kassa_sandbox" {
		t.Errorf("ID %q", info.ID)
	}
	if _, ok := info.New().(*Handler); !ok {
		t.Errorf("New returns %T", info.New())
	}
}

func TestProvisionDefaults(t *testing.T) {
	h := &Handler{}
	provision(t, h)
	want := credentials{
		crystalPayLogin: "sandbox", crystalPaySecret: "sandbox-secret", crystalPaySecret2: "sandbox-secret2",
		pegasToken: "sandbox-token", smartCashierToken: "sandbox-token", pegasCommission: decimal.RequireFromString("2.5"),
	}
	if h.Name != "default" || h.creds.crystalPayLogin != want.crystalPayLogin || h.creds.crystalPaySecret != want.crystalPaySecret ||
		h.creds.crystalPaySecret2 != want.crystalPaySecret2 || h.creds.pegasToken != want.pegasToken ||
		h.creds.crystalPaySalt != "sandbox-salt" || h.creds.smartCashierToken != want.smartCashierToken || !h.creds.pegasCommission.Equal(want.pegasCommission) {
		t.Errorf("defaults: name %q, %+v", h.Name, h.creds)
	}
	if got := h.st.currentSettings(); got != (settingsView{Latency: "0s", ReceiptDelay: "1s"}) {
		t.Errorf("settings %+v", got)
	}
}

func TestProvisionResolvesPlaceholders(t *testing.T) {
	t.Setenv("KASSA_SANDBOX_TEST_TOKEN", "from-env")
	t.Setenv("KASSA_SANDBOX_TEST_SALT", "salt-from-env")
	s := newTestSandbox(t, func(h *Handler) {
		h.PegasToken = "{env.KASSA_SANDBOX_TEST_TOKEN}"
		h.CrystalPaySalt = "{env.KASSA_SANDBOX_TEST_SALT}"
	})
	if s.h.PegasToken != "{env.KASSA_SANDBOX_TEST_TOKEN}" || s.h.CrystalPaySalt != "{env.KASSA_SANDBOX_TEST_SALT}" {
		t.Error("the configured value must stay a placeholder")
	}
	if s.h.creds.crystalPaySalt != "salt-from-env" {
		t.Errorf("crystalpay_salt resolved to %q", s.h.creds.crystalPaySalt)
	}
	wantJSON(t, s.get("/pegas/api/v1/balance?token=from-env"), http.StatusOK, `{"balance":0}`)
	wantPegasError(t, s.pegasGet("balance"), http.StatusUnauthorized, "authorization_error", "")
}

func TestProvisionErrors(t *testing.T) {
	neg := caddy.Duration(-1)
	for name, h := range map[string]*Handler{
		"unset env":         {SmartCashierToken: "{env.KASSA_SANDBOX_SURELY_UNSET}"},
		"public_url path":   {PublicURL: "localhost:9080"},
		"public_url scheme": {PublicURL: "ftp://localhost"},
		"commission 100":    {PegasCommission: ptr(decimal.NewFromInt(100))},
		"negative fee":      {PegasCommission: ptr(decimal.NewFromInt(-1))},
		"unknown balance":   {Balances: map[string]decimal.Decimal{"smartcashier": decimal.NewFromInt(1)}},
		"kopeck crystalpay": {Balances: map[string]decimal.Decimal{APICrystalPay: decimal.RequireFromString("1.5")}},
		"negative balance":  {Balances: map[string]decimal.Decimal{APIPegas: decimal.NewFromInt(-1)}},
		"sub-kopeck pegas":  {Balances: map[string]decimal.Decimal{APIPegas: decimal.RequireFromString("1.005")}},
		"bad fault":         {Faults: []Fault{{API: APIPegas, Op: "*", Mode: "explode"}}},
		"negative latency":  {Latency: -1},
		"negative delay":    {ReceiptDelay: &neg},
	} {
		t.Run(name, func(t *testing.T) {
			h.Name = t.Name()
			ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
			defer cancel()
			if err := h.Provision(ctx); err == nil {
				_ = h.Cleanup()
				t.Fatal("Provision accepted a bad config")
			}
			if _, used := states.References(t.Name()); used {
				t.Error("a failed Provision left its state in the pool")
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

// serve starts a server for an already provisioned handler.
func serve(t *testing.T, h *Handler) *testSandbox {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = h.ServeHTTP(w, r, nil)
	}))
	t.Cleanup(srv.Close)
	return &testSandbox{t: t, h: h, srv: srv}
}

func TestStateSurvivesReload(t *testing.T) {
	name := t.Name()
	ctx, cancel := caddy.NewContext(caddy.Context{Context: context.Background()})
	defer cancel()
	balance := map[string]decimal.Decimal{APICrystalPay: decimal.NewFromInt(10)}

	old := &Handler{Name: name, Balances: balance}
	if err := old.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	s := serve(t, old)
	id := s.get(crystalPayURL("o", "generate", "amount", "5")).object(t)["id"].(string)
	s.control(http.MethodPost, "settings", `{"receipt_delay":"0s"}`, http.StatusOK, nil)

	// A reload: the new config is provisioned before the old one is cleaned up.
	reloaded := &Handler{Name: name, Balances: balance}
	if err := reloaded.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := old.Cleanup(); err != nil {
		t.Fatal(err)
	}
	s = serve(t, reloaded)
	wantJSON(t, s.get(crystalPayURL("o", "checkpay", "i", id)), http.StatusOK, `{"state":"notpayed","error":false,"auth":"ok"}`)
	if got := s.state(); got.CrystalPay.Balance != "10" || got.Settings["receipt_delay"] != "0s" {
		t.Errorf("after an unchanged reload: balance %s, settings %v", got.CrystalPay.Balance, got.Settings)
	}

	// A reload that changes the configured balance and delay applies them.
	changed := &Handler{Name: name, Balances: map[string]decimal.Decimal{APICrystalPay: decimal.NewFromInt(70)}, ReceiptDelay: ptr(caddy.Duration(5e9))}
	if err := changed.Provision(ctx); err != nil {
		t.Fatal(err)
	}
	if err := reloaded.Cleanup(); err != nil {
		t.Fatal(err)
	}
	s = serve(t, changed)
	got := s.state()
	if got.CrystalPay.Balance != "70" || got.Settings["receipt_delay"] != "5s" || len(got.CrystalPay.Invoices) != 1 {
		t.Errorf("after a changed reload: %+v", got)
	}

	// Once nothing uses the name, its state is gone.
	if err := changed.Cleanup(); err != nil {
		t.Fatal(err)
	}
	fresh := &Handler{Name: name}
	provision(t, fresh)
	if n := len(serve(t, fresh).state().CrystalPay.Invoices); n != 0 {
		t.Errorf("a new sandbox inherited %d invoices", n)
	}
}

func TestNamesAreSeparate(t *testing.T) {
	a := newTestSandbox(t, func(h *Handler) { h.Name = t.Name() + "-a" })
	b := newTestSandbox(t, func(h *Handler) { h.Name = t.Name() + "-b" })
	a.get(crystalPayURL("o", "generate", "amount", "5"))
	if n := len(b.state().CrystalPay.Invoices); n != 0 {
		t.Errorf("sandbox b sees %d invoices of sandbox a", n)
	}
}

func TestUnknownPaths(t *testing.T) {
	s := newTestSandbox(t, nil)
	for path, want := range map[string]string{
		"/":                       "404 page not found",
		"/crystalpay/api":         "404 page not found",
		"/smartcashier/v2.0/x":    "404 page not found",
		"/pegas/":                 `"resource_not_found"`,
		"/pegas/api/v1/":          `"resource_not_found"`,
		"/smartcashier/v1.0/x":    `"Not Found"`,
		"/crystalpay/api.php/x":   "404 page not found",
		"/control/state/extra":    `"error"`,
		"/pay/crystalpay/1_x/foo": "404 page not found",
	} {
		r := s.get(path)
		if r.status != http.StatusNotFound || !strings.Contains(string(r.body), want) {
			t.Errorf("%s: %d %s, want 404 with %s", path, r.status, r.body, want)
		}
	}
}

func TestConcurrentPayments(t *testing.T) {
	s := newTestSandbox(t, nil)
	const n = 20
	var wg sync.WaitGroup
	ids := make(chan string, n)
	for i := range n {
		wg.Go(func() {
			r, err := http.Get(s.srv.URL + crystalPayURL("o", "generate", "amount", "10"))
			if err != nil {
				t.Error(err)
				return
			}
			defer r.Body.Close()
			var reply struct{ ID string }
			if err := decodeJSON(r, &reply); err != nil {
				t.Error(err)
				return
			}
			ids <- reply.ID
			for range 2 { // every invoice paid twice, concurrently
				resp, err := http.Post(s.srv.URL+"/pay/crystalpay/"+reply.ID, "", nil)
				if err == nil {
					resp.Body.Close()
				}
			}
			resp, err := http.Get(s.srv.URL + fmt.Sprintf("/pegas/api/v1/deposit?token=sandbox-token&amount=1&type=wallet&order_id=%d", i))
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	close(ids)
	if got := s.state(); got.CrystalPay.Balance != "200" || len(got.CrystalPay.Invoices) != n || len(got.Pegas.Invoices) != n {
		t.Errorf("balance %s with %d invoices, want 200 and %d", got.CrystalPay.Balance, len(got.CrystalPay.Invoices), n)
	}
}
