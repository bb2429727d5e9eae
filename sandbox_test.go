package kassa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/jpeg"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/shopspring/decimal"

	"github.com/caddy-kassa/kassa/sandbox"
)

// These tests run every client operation against the sandbox over real HTTP:
// the clients and the simulator were written from the provider documents
// independently, so each checks the other's reading of the wire format.

// sandboxServer is a provisioned sandbox behind an httptest server.
type sandboxServer struct {
	*httptest.Server
	t *testing.T
}

func startSandbox(t *testing.T, configure func(h *sandbox.Handler)) *sandboxServer {
	t.Helper()
	zero := caddy.Duration(0)
	h := &sandbox.Handler{Name: t.Name(), ReceiptDelay: &zero,
		Balances: map[string]decimal.Decimal{"crystalpay": decimal.NewFromInt(1000), "pegas": decimal.NewFromInt(1000)}}
	if configure != nil {
		configure(h)
	}
	provisionModule(t, h)
	next := caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		t.Errorf("sandbox passed %s on", r.URL.Path)
		return nil
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.ServeHTTP(w, r, next); err != nil {
			t.Errorf("sandbox: %v", err)
		}
	}))
	t.Cleanup(srv.Close)
	return &sandboxServer{Server: srv, t: t}
}

// control calls the sandbox's control endpoint and decodes its JSON reply.
func (s *sandboxServer) control(method, path string, body any, reply any) {
	s.t.Helper()
	var in io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		in = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, s.URL+"/control/"+path, in)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		s.t.Fatalf("control %s %s: %d %s", method, path, resp.StatusCode, data)
	}
	if reply != nil {
		if err := json.Unmarshal(data, reply); err != nil {
			s.t.Fatalf("control %s: %v in %s", path, err, data)
		}
	}
}

func (s *sandboxServer) fault(api, op, mode string, count int) {
	s.t.Helper()
	s.control(http.MethodPost, "faults", map[string]any{"api": api, "op": op, "mode": mode, "count": count}, nil)
}

// sandboxCall is one journaled API call.
type sandboxCall struct {
	API    string          `json:"api"`
	Op     string          `json:"op"`
	Query  map[string]any  `json:"query"`
	Body   json.RawMessage `json:"body"`
	Status int             `json:"status"`
}

func (s *sandboxServer) calls(api, op string) []sandboxCall {
	s.t.Helper()
	var journal struct {
		Calls []sandboxCall `json:"calls"`
	}
	s.control(http.MethodGet, "calls?api="+api+"&op="+url.QueryEscape(op), nil, &journal)
	return journal.Calls
}

func (s *sandboxServer) crystal(t *testing.T) *crystalPayV1 {
	c := &CrystalPay{API: crystalPayAPIv1, Login: sandbox.DefaultCrystalPayLogin, Secret: sandbox.DefaultCrystalPaySecret,
		Secret2: sandbox.DefaultCrystalPaySecret2, Endpoint: s.URL + "/crystalpay/api.php", Timeout: caddy.Duration(time.Second)}
	provisionModule(t, c)
	return c.Provider().(*crystalPayV1)
}

func (s *sandboxServer) pegas(t *testing.T, depositType string) *Pegas {
	p := &Pegas{Token: sandbox.DefaultPegasToken, Endpoint: s.URL + "/pegas/api/v1", Type: depositType,
		Timeout: caddy.Duration(time.Second)}
	provisionModule(t, p)
	return p
}

func (s *sandboxServer) smartCashier(t *testing.T) *SmartCashier {
	sc := &SmartCashier{Token: sandbox.DefaultSmartCashierToken, Endpoint: s.URL + "/smartcashier/v1.0",
		Taxation: TaxationUSNIncome, CashboxID: "c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad", Timeout: caddy.Duration(time.Second)}
	provisionModule(t, sc)
	sc.backoff = time.Millisecond
	return sc
}

// payOnPage presses the Pay button of a payment page as a browser would
// and returns where the sandbox sent the buyer.
func payOnPage(t *testing.T, pageURL string) string {
	t.Helper()
	resp, err := http.Get(pageURL)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `id="pay"`) {
		t.Fatalf("payment page: %d %s", resp.StatusCode, page)
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err = noFollow.PostForm(pageURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("Location")
}

func TestSandboxCrystalPay(t *testing.T) {
	sb := startSandbox(t, nil)
	c := sb.crystal(t)
	ctx := context.Background()

	b, err := c.Balance(ctx)
	if err != nil || !b.Total.Equal(decimal.NewFromInt(1000)) {
		t.Fatalf("balance = %v, %v", b.Total, err)
	}
	p, err := c.CreatePayment(ctx, PaymentRequest{Amount: decimal.RequireFromString("350.00"),
		ReturnURL: "http://shop.example/thanks?order=abc"})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := c.PaymentStatus(ctx, PaymentRef{ID: p.ID}); err != nil || st.Paid {
		t.Fatalf("new payment: %+v, %v", st, err)
	}
	if loc := payOnPage(t, p.URL); loc != "http://shop.example/thanks?order=abc" {
		t.Errorf("after paying the buyer went to %q", loc)
	}
	st, err := c.PaymentStatus(ctx, PaymentRef{ID: p.ID})
	if err != nil || !st.Paid || (st.Amount.Valid && !st.Amount.Decimal.Equal(decimal.NewFromInt(350))) {
		t.Fatalf("paid payment: %+v, %v", st, err)
	}
	if b, _ := c.Balance(ctx); !b.Total.Equal(decimal.NewFromInt(1350)) {
		t.Errorf("balance after payment = %s, want 1350", b.Total)
	}
	if _, err := c.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(300), To: "79990000000", Method: "qw"}); err != nil {
		t.Fatalf("payout: %v", err)
	}
	if b, _ := c.Balance(ctx); !b.Total.Equal(decimal.NewFromInt(1050)) {
		t.Errorf("balance after payout = %s, want 1050", b.Total)
	}
	_, err = c.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(5000), To: "79990000000", Method: "qw"})
	if !errors.Is(err, ErrRejected) {
		t.Errorf("payout above the balance: %v, want ErrRejected", err)
	}
	if _, err := c.PaymentStatus(ctx, PaymentRef{ID: "1_unknown"}); !errors.Is(err, ErrRejected) {
		t.Errorf("unknown payment: %v, want ErrRejected", err)
	}

	sb.control(http.MethodPost, "settings", map[string]any{"crystalpay_wallets": true}, nil)
	if b, err := c.Balance(ctx); err != nil || !b.Total.Equal(decimal.NewFromInt(1050)) || len(b.Wallets) == 0 {
		t.Errorf("per-wallet balance = %+v, %v", b, err)
	}

	wrong := &CrystalPay{API: crystalPayAPIv1, Login: "sandbox", Secret: "wrong", Endpoint: sb.URL + "/crystalpay/api.php"}
	provisionModule(t, wrong)
	if _, err := wrong.Provider().Balance(ctx); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong secret: %v, want ErrAuth", err)
	}
	badSig := &CrystalPay{API: crystalPayAPIv1, Login: "sandbox", Secret: sandbox.DefaultCrystalPaySecret, Secret2: "wrong",
		Endpoint: sb.URL + "/crystalpay/api.php"}
	provisionModule(t, badSig)
	if _, err := badSig.Provider().Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(1), To: "7999", Method: "qw"}); !errors.Is(err, ErrRejected) {
		t.Errorf("payout signed with the wrong secret2: %v, want ErrRejected", err)
	}
}

func TestSandboxPegasDeposits(t *testing.T) {
	sb := startSandbox(t, nil)
	ctx := context.Background()
	for i, typ := range []string{"wallet", "wallet-card", "invoice-qw", "invoice-card", "invoice-select", "yandex"} {
		t.Run(typ, func(t *testing.T) {
			p := sb.pegas(t, typ)
			orderID := fmt.Sprintf("order-%d", i)
			pay, err := p.CreatePayment(ctx, PaymentRequest{OrderID: orderID, Amount: decimal.RequireFromString("700.00"),
				Phone: "+79990000000", PayerAccount: "79991112233", TTL: 30 * time.Minute, ReturnURL: "http://shop.example/thanks"})
			if err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			switch typ {
			case "wallet":
				if pay.Wallet == "" {
					t.Errorf("%s: no wallet in %+v", typ, pay)
				}
			case "wallet-card":
				if pay.Card == "" {
					t.Errorf("%s: no card in %+v", typ, pay)
				}
			default:
				if !isHTTPURL(pay.URL) {
					t.Errorf("%s: no url in %+v", typ, pay)
				}
			}
			if !pay.Commission.Equal(decimal.RequireFromString("17.5")) {
				t.Errorf("%s: commission %s, want 2.5%% of 700", typ, pay.Commission)
			}
			// The same order id again is the duplicate a lost reply leads to.
			_, err = p.CreatePayment(ctx, PaymentRequest{OrderID: orderID, Amount: decimal.RequireFromString("700.00")})
			if !errors.Is(err, ErrDuplicate) || !errors.Is(err, ErrRejected) {
				t.Errorf("%s: repeated order_id: %v, want ErrDuplicate", typ, err)
			}
		})
	}
	if n := len(sb.calls("pegas", "deposit")); n != 12 {
		t.Errorf("%d deposit calls journaled, want 12", n)
	}
}

func TestSandboxPegasLifecycle(t *testing.T) {
	sb := startSandbox(t, nil)
	p := sb.pegas(t, "")
	ctx := context.Background()

	pay, err := p.CreatePayment(ctx, PaymentRequest{OrderID: "o-1", Amount: decimal.NewFromInt(1000),
		ReturnURL: "http://shop.example/thanks?order=o-1"})
	if err != nil {
		t.Fatal(err)
	}
	ref := PaymentRef{ID: pay.ID, OrderID: "o-1"}
	if st, err := p.PaymentStatus(ctx, ref); err != nil || st.Paid {
		t.Fatalf("unpaid deposit: %+v, %v", st, err)
	}
	if _, err := p.PaymentDocument(ctx, ref, "pdf"); !errors.Is(err, ErrNotFound) {
		t.Errorf("document of an unpaid deposit: %v, want ErrNotFound", err)
	}
	if loc := payOnPage(t, pay.URL); loc != "http://shop.example/thanks?order=o-1" {
		t.Errorf("after paying the buyer went to %q", loc)
	}
	if st, err := p.PaymentStatus(ctx, PaymentRef{OrderID: "o-1"}); err != nil || !st.Paid {
		t.Fatalf("paid deposit: %+v, %v", st, err)
	}
	doc, err := p.PaymentDocument(ctx, PaymentRef{OrderID: "o-1"}, "pdf")
	if err != nil {
		t.Fatal(err)
	}
	pdf, _ := io.ReadAll(doc.Body)
	doc.Body.Close()
	if doc.ContentType != "application/pdf" || !bytes.HasPrefix(pdf, []byte("%PDF-")) {
		t.Errorf("pdf: %s, %.20q", doc.ContentType, pdf)
	}
	doc, err = p.PaymentDocument(ctx, PaymentRef{ID: pay.ID}, "jpeg")
	if err != nil {
		t.Fatal(err)
	}
	_, err = jpeg.Decode(doc.Body)
	doc.Body.Close()
	if doc.ContentType != "image/jpeg" || err != nil {
		t.Errorf("jpeg: %s, %v", doc.ContentType, err)
	}
	if err := p.CancelPayment(ctx, ref); !errors.Is(err, ErrRejected) {
		t.Errorf("cancelling a paid deposit: %v, want ErrRejected", err)
	}
	b, err := p.Balance(ctx)
	if err != nil || !b.Total.Equal(decimal.RequireFromString("1975")) {
		t.Errorf("balance = %s, %v; want 1000 + 1000 - 2.5%%", b.Total, err)
	}

	unpaid, err := p.CreatePayment(ctx, PaymentRequest{OrderID: "o-2", Amount: decimal.NewFromInt(50)})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CancelPayment(ctx, PaymentRef{ID: unpaid.ID, OrderID: "o-2"}); err != nil {
		t.Errorf("cancel: %v", err)
	}
	if err := p.CancelPayment(ctx, PaymentRef{ID: unpaid.ID, OrderID: "o-1"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("cancel with a mismatched order id: %v, want ErrNotFound", err)
	}

	out, err := p.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(100), To: "4111111111111111", Method: "card",
		Comment: "Возврат за заказ o-1", OrderID: "payout-1"})
	if err != nil || out.ID == "" {
		t.Fatalf("payout: %+v, %v", out, err)
	}
	_, err = p.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(100), To: "4111111111111111", Method: "card", OrderID: "payout-1"})
	if !errors.Is(err, ErrDuplicate) {
		t.Errorf("repeated payout order_id: %v, want ErrDuplicate", err)
	}
	_, err = p.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(100000), To: "79990000000", Method: "wallet"})
	var pe *ProviderError
	if !errors.As(err, &pe) || pe.Code != "provider_error" {
		t.Errorf("payout above the balance: %v, want provider_error", err)
	}

	wrong := &Pegas{Token: "wrong", Endpoint: sb.URL + "/pegas/api/v1"}
	provisionModule(t, wrong)
	if _, err := wrong.Balance(ctx); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong token: %v, want ErrAuth", err)
	}
}

func TestSandboxSmartCashier(t *testing.T) {
	sb := startSandbox(t, nil)
	sc := sb.smartCashier(t)
	ctx := context.Background()

	r := seedReceipt()
	r.CashboxID = "da2bb850-63ef-47e4-8b45-7b5b841eaa9b"
	if err := sc.FormReceipt(ctx, r); err != nil {
		t.Fatal(err)
	}
	op, err := sc.ReceiptStatus(ctx, r.OperationID)
	if err != nil {
		t.Fatal(err)
	}
	if op.Status != OperationProcessed || op.Fiscal == nil || op.Fiscal.DocumentSign == "" || op.Fiscal.FNNumber == "" ||
		op.CashboxID != r.CashboxID {
		t.Fatalf("status = %+v", op)
	}
	// The same operation again prints nothing new.
	if err := sc.FormReceipt(ctx, r); err != nil {
		t.Fatal(err)
	}
	again, _ := sc.ReceiptStatus(ctx, r.OperationID)
	if again.Fiscal == nil || again.Fiscal.DocumentNumber != op.Fiscal.DocumentNumber {
		t.Errorf("a repeated operationId changed the receipt: %+v", again.Fiscal)
	}
	var state struct {
		SmartCashier struct {
			Operations []json.RawMessage `json:"operations"`
		} `json:"smartcashier"`
	}
	sb.control(http.MethodGet, "state", nil, &state)
	if n := len(state.SmartCashier.Operations); n != 1 {
		t.Errorf("%d operations in the sandbox, want 1", n)
	}

	// What the sandbox received, field by field.
	calls := sb.calls("smartcashier", "formReceipt")
	var sent map[string]any
	if err := json.Unmarshal(calls[0].Body, &sent); err != nil {
		t.Fatal(err)
	}
	for field, want := range map[string]any{"operationId": "12854F", "receiptType": 1.0, "taxationSystem": 2.0,
		"totalSum": 270.0, "cashPaymentSum": 200.0, "cashlessPaymentSum": 70.0, "buyerEmail": "customer@example.com",
		"printReceipt": false, "cashboxId": "da2bb850-63ef-47e4-8b45-7b5b841eaa9b"} {
		if sent[field] != want {
			t.Errorf("sent %s = %v, want %v", field, sent[field], want)
		}
	}

	if _, err := sc.ReceiptStatus(ctx, "no-such-op"); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown operation: %v, want ErrNotFound", err)
	}

	if err := sc.DepositCash(ctx, CashOperation{OperationID: "cash-in-1", Amount: decimal.NewFromInt(500)}); err != nil {
		t.Fatal(err)
	}
	if op, err := sc.ReceiptStatus(ctx, "cash-in-1"); err != nil || op.Status != OperationProcessed {
		t.Errorf("deposit: %+v, %v", op, err)
	}
	if err := sc.WithdrawCash(ctx, CashOperation{OperationID: "cash-out-1", Amount: decimal.RequireFromString("200.50")}); err != nil {
		t.Fatal(err)
	}
	if op, _ := sc.ReceiptStatus(ctx, "cash-out-1"); op.Status != OperationProcessed {
		t.Errorf("withdrawal within the till: %+v", op)
	}
	if err := sc.WithdrawCash(ctx, CashOperation{OperationID: "cash-out-2", Amount: decimal.NewFromInt(10000)}); err != nil {
		t.Fatal(err)
	}
	if op, _ := sc.ReceiptStatus(ctx, "cash-out-2"); op.Status != OperationFailed || op.Error == "" {
		t.Errorf("withdrawal above the till: %+v", op)
	}

	wrong := &SmartCashier{Token: "wrong", Endpoint: sb.URL + "/smartcashier/v1.0", Taxation: TaxationOSN}
	provisionModule(t, wrong)
	if _, err := wrong.ReceiptStatus(ctx, "12854F"); !errors.Is(err, ErrAuth) {
		t.Errorf("wrong token: %v, want ErrAuth", err)
	}
}

// TestSandboxSmartCashierRetries: two 500s, then success; one receipt, one
// operationId on every try.
func TestSandboxSmartCashierRetries(t *testing.T) {
	sb := startSandbox(t, nil)
	sc := sb.smartCashier(t)
	sb.fault("smartcashier", "formReceipt", "error500", 2)
	r := seedReceipt()
	r.OperationID = "order-abc-sale"
	if err := sc.FormReceipt(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	calls := sb.calls("smartcashier", "formReceipt")
	if len(calls) != 3 {
		t.Fatalf("%d formReceipt calls, want 3", len(calls))
	}
	for i, c := range calls {
		var body struct {
			OperationID string `json:"operationId"`
		}
		json.Unmarshal(c.Body, &body)
		wantStatus := map[bool]int{true: 500, false: 200}[i < 2]
		if body.OperationID != r.OperationID || c.Status != wantStatus {
			t.Errorf("call %d: operationId %q status %d", i, body.OperationID, c.Status)
		}
	}
	var state struct {
		SmartCashier struct {
			Operations []json.RawMessage `json:"operations"`
		} `json:"smartcashier"`
	}
	sb.control(http.MethodGet, "state", nil, &state)
	if n := len(state.SmartCashier.Operations); n != 1 {
		t.Errorf("%d operations, want 1", n)
	}
}

// TestSandboxReceiptNotProcessed: a receipt that fails at the till shows its
// error, and sending it again under the same operationId prints it.
func TestSandboxReceiptNotProcessed(t *testing.T) {
	sb := startSandbox(t, nil)
	sc := sb.smartCashier(t)
	ctx := context.Background()
	sb.control(http.MethodPost, "faults", map[string]any{"api": "smartcashier", "op": "formReceipt",
		"mode": "notprocessed", "count": 1, "message": "Открыта крышка."}, nil)
	r := seedReceipt()
	if err := sc.FormReceipt(ctx, r); err != nil {
		t.Fatal(err)
	}
	op, err := sc.ReceiptStatus(ctx, r.OperationID)
	if err != nil || op.Status != OperationFailed || op.Error != "Открыта крышка." || op.Fiscal != nil {
		t.Fatalf("failed receipt: %+v, %v", op, err)
	}
	// As the seed says: the same operation id again answers its first
	// result and processes nothing; a new one prints.
	if err := sc.FormReceipt(ctx, r); err != nil {
		t.Fatal(err)
	}
	op, err = sc.ReceiptStatus(ctx, r.OperationID)
	if err != nil || op.Status != OperationFailed {
		t.Errorf("the receipt sent again under its id: %+v, %v; want still failed", op, err)
	}
	r.OperationID += "-2"
	if err := sc.FormReceipt(ctx, r); err != nil {
		t.Fatal(err)
	}
	op, err = sc.ReceiptStatus(ctx, r.OperationID)
	if err != nil || op.Status != OperationProcessed || op.Fiscal == nil {
		t.Errorf("the receipt under a new id: %+v, %v", op, err)
	}
}

// TestSandboxFaults maps every fault the sandbox injects, for every
// provider, to the error kind a caller decides on.
func TestSandboxFaults(t *testing.T) {
	sb := startSandbox(t, nil)
	crystal := sb.crystal(t)
	pegas := sb.pegas(t, "")
	sc := sb.smartCashier(t)
	sc.Retries = new(int) // no retries: each fault is seen once
	provisionModule(t, sc)
	sc.backoff = time.Millisecond
	ctx := context.Background()
	ops := map[string]func() error{
		"crystalpay": func() error { _, err := crystal.Balance(ctx); return err },
		"pegas":      func() error { _, err := pegas.Balance(ctx); return err },
		"smartcashier": func() error {
			_, err := sc.ReceiptStatus(ctx, "any")
			return err
		},
	}
	for _, tc := range []struct {
		mode  string
		kinds map[string]error
	}{
		{"error500", map[string]error{"crystalpay": ErrUnavailable, "pegas": ErrUnavailable, "smartcashier": ErrUnavailable}},
		{"timeout", map[string]error{"crystalpay": ErrUnavailable, "pegas": ErrUnavailable, "smartcashier": ErrUnavailable}},
		{"html", map[string]error{"crystalpay": ErrUnavailable, "pegas": ErrUnavailable, "smartcashier": ErrUnavailable}},
		{"malformed", map[string]error{"crystalpay": ErrMalformedReply, "pegas": ErrMalformedReply, "smartcashier": ErrMalformedReply}},
		{"auth", map[string]error{"crystalpay": ErrAuth, "pegas": ErrAuth, "smartcashier": ErrAuth}},
		{"forbidden", map[string]error{"crystalpay": ErrRejected, "pegas": ErrAuth, "smartcashier": ErrAuth}},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			for api, op := range ops {
				sb.fault(api, "*", tc.mode, 1)
				err := op()
				if !errors.Is(err, tc.kinds[api]) {
					t.Errorf("%s %s: %v, want %v", api, tc.mode, err, tc.kinds[api])
				}
				if err := op(); err != nil && !errors.Is(err, ErrNotFound) {
					t.Errorf("%s after %s: %v, want recovery", api, tc.mode, err)
				}
			}
		})
	}
}

// TestSandboxDroppedConnectionCreatesOneInvoice: the connection dies after
// the provider received generate or deposit; the call fails, and the
// provider saw it once, so there is one invoice at most.
func TestSandboxDroppedConnectionCreatesOneInvoice(t *testing.T) {
	sb := startSandbox(t, nil)
	crystal := sb.crystal(t)
	pegas := sb.pegas(t, "")
	ctx := context.Background()
	// Warm the keep-alive connections: net/http replays only on reused ones.
	crystal.Balance(ctx)
	pegas.Balance(ctx)
	sb.fault("crystalpay", "generate", "drop", 1)
	sb.fault("crystalpay", "withdraw", "drop", 1)
	sb.fault("pegas", "deposit", "drop", 1)
	sb.fault("pegas", "withdrawal", "drop", 1)
	for name, call := range map[string]func() error{
		"generate": func() error {
			_, err := crystal.CreatePayment(ctx, PaymentRequest{Amount: decimal.NewFromInt(100)})
			return err
		},
		"withdraw": func() error {
			_, err := crystal.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(1), To: "7999", Method: "qw"})
			return err
		},
		"deposit": func() error {
			_, err := pegas.CreatePayment(ctx, PaymentRequest{OrderID: "drop-1", Amount: decimal.NewFromInt(100)})
			return err
		},
		"withdrawal": func() error {
			_, err := pegas.Payout(ctx, PayoutRequest{Amount: decimal.NewFromInt(1), To: "79990000000", Method: "wallet"})
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			if err := call(); !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s over a dropped connection: %v, want ErrUnavailable", name, err)
			}
		})
	}
	for api, ops := range map[string][]string{"crystalpay": {"generate", "withdraw"}, "pegas": {"deposit", "withdrawal"}} {
		for _, op := range ops {
			if n := len(sb.calls(api, op)); n != 1 {
				t.Errorf("%s %s reached the provider %d times, want 1", api, op, n)
			}
		}
	}
}
