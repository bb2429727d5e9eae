package caddytest

import (
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/caddytest"
)

// v3Secrets are the CrystalPAY v3 tests' credentials, by the environment
// variable that carries them. Each is distinctive and has characters that
// URL escaping changes, so that a leak in any escaping can be found.
var v3Secrets = map[string]string{
	"KASSA_V3TEST_LOGIN":  "v3-login+Pq4/Tz1=",
	"KASSA_V3TEST_SECRET": "v3-secret+Wd8/Ke5=",
	"KASSA_V3TEST_SALT":   "v3-salt+Yc3/Mb7=",
}

// v3Config is a shop whose one payment account is CrystalPAY with api v3
// (the default) at the sandbox, credentials from the environment, callbacks
// to /kassa/callback/main, Smart Cashier receipts, and a poll interval so
// long that only a callback can notice a payment. Caddy logs everything at
// DEBUG as JSON to LOGFILE.
const v3Config = `{
	admin localhost:2999
	skip_install_trust
	log {
		output file LOGFILE
		format json
		level DEBUG
	}
	kassa {
		payment main crystalpay {
			login {env.KASSA_V3TEST_LOGIN}
			secret {env.KASSA_V3TEST_SECRET}
			salt {env.KASSA_V3TEST_SALT}
			endpoint http://localhost:9181/crystalpay/v3/
			callback http://localhost:9180/kassa/callback/main
			timeout 1s
		}
		receipts smartcashier {
			token sandbox-token
			endpoint http://localhost:9181/smartcashier/v1.0
			taxation usn_income
			vat none
			timeout 1s
		}
		product tea 350.00 "Зелёный чай" vat20
		poll_interval 1h
		storage file_system STORAGE
	}
}

http://localhost:9180 {
	kassa_receipt /receipt
	kassa_callback /kassa/callback/main main
	route /pay {
		kassa_checkout main {
			redirect http://localhost:9180/thanks?order={kassa.order_id}
		}
	}
}

http://localhost:9181 {
	kassa_sandbox {
		name v3
		receipt_delay 0s
		crystalpay_login {env.KASSA_V3TEST_LOGIN}
		crystalpay_secret {env.KASSA_V3TEST_SECRET}
		crystalpay_salt {env.KASSA_V3TEST_SALT}
		balance crystalpay 1000
	}
}`

// v3CallbackURL is where the shop of v3Config receives CrystalPAY's
// callbacks.
const v3CallbackURL = shopURL + "/kassa/callback/main"

// startV3Shop loads v3Config with fresh storage and log, clears the
// sandbox, and returns the path of Caddy's log.
func startV3Shop(t *testing.T) string {
	t.Helper()
	for name, value := range v3Secrets {
		t.Setenv(name, value)
	}
	dir := storageDir(t)
	logFile := filepath.Join(dir, "caddy.log")
	config := strings.NewReplacer("LOGFILE", logFile, "STORAGE", filepath.Join(dir, "storage")).Replace(v3Config)
	caddytest.NewTester(t).InitServer(config, "caddyfile")
	forgetConnections()
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
	return logFile
}

// v3Sign is a CrystalPAY v3 signature, computed here from its definition:
// the lowercase hex SHA-1 of the values and the salt joined by colons.
func v3Sign(values ...string) string {
	sum := sha1.Sum([]byte(strings.Join(values, ":")))
	return hex.EncodeToString(sum[:])
}

// v3Call is a CrystalPAY call or callback delivery as the sandbox
// journaled it.
type v3Call struct {
	Op      string          `json:"op"`
	Body    json.RawMessage `json:"body"`
	Status  int             `json:"status"`
	Fault   string          `json:"fault"`
	URL     string          `json:"url"`
	Attempt int             `json:"attempt"`
	Time    time.Time       `json:"time"`
}

// String shows the call in a test's failure.
func (c v3Call) String() string {
	return fmt.Sprintf("%s answered %d (fault %q, attempt %d, url %q): %s", c.Op, c.Status, c.Fault, c.Attempt, c.URL, c.Body)
}

// field is a string field of the call's JSON body.
func (c v3Call) field(name string) string {
	var body map[string]any
	json.Unmarshal(c.Body, &body)
	s, _ := body[name].(string)
	return s
}

// v3Calls lists the CrystalPAY calls (or, for op "callback", the callback
// deliveries) the sandbox journaled.
func v3Calls(t *testing.T, op string) []v3Call {
	t.Helper()
	var j struct {
		Calls []v3Call `json:"calls"`
	}
	sandboxControl(t, http.MethodGet, "calls?api=crystalpay&op="+url.QueryEscape(op), nil, &j)
	return j.Calls
}

// adminOrder is an order as the admin API shows it, read from storage
// only.
func adminOrder(t *testing.T, id string) map[string]any {
	t.Helper()
	r := adminCall(t, http.MethodGet, "orders/"+id, "")
	if r.status != http.StatusOK {
		t.Fatalf("admin order %s: %d %s", id, r.status, r.body)
	}
	return r.json(t)
}

// v3Checkout buys a tea through the v3 account and returns the order's id
// and its invoice's.
func v3Checkout(t *testing.T) (orderID, invoiceID string) {
	t.Helper()
	r := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	orderID, _ = r.json(t)["order_id"].(string)
	if r.status != http.StatusCreated || orderID == "" {
		t.Fatalf("checkout: %d %s", r.status, r.body)
	}
	payment, _ := adminOrder(t, orderID)["payment"].(map[string]any)
	invoiceID, _ = payment["id"].(string)
	if invoiceID == "" {
		t.Fatalf("order %s holds no invoice: %v", orderID, payment)
	}
	return orderID, invoiceID
}

// receiptState is the state of an admin order's receipt, "" if it has none.
func receiptState(o map[string]any) any {
	rec, _ := o["receipt"].(map[string]any)
	return rec["state"]
}

// logLinesWith lists the lines of the log that contain text.
func logLinesWith(t *testing.T, logFile, text string) []string {
	t.Helper()
	var out []string
	for _, line := range readLines(t, logFile) {
		if strings.Contains(line, text) {
			out = append(out, line)
		}
	}
	return out
}

// TestCrystalPayV3CallbackPays: a buyer pays a v3 invoice; CrystalPAY's
// signed callback, not polling, makes the order paid with its receipt
// sent. The admin API, which the test watches the order through, never
// asks the provider, and the only invoice/info call is the one the
// callback handler made while the callback was being delivered.
func TestCrystalPayV3CallbackPays(t *testing.T) {
	startV3Shop(t)
	before := scrapeMetrics(t).sum("kassa_callbacks_total", "account", "main", "result", "paid")
	id, invoice := v3Checkout(t)

	creates := v3Calls(t, "invoice/create")
	if len(creates) != 1 || creates[0].field("callback_url") != v3CallbackURL || creates[0].field("extra") != id ||
		creates[0].field("type") != "purchase" {
		t.Fatalf("invoice/create calls: %+v", creates)
	}
	for range 3 {
		if o := adminOrder(t, id); o["state"] != "pending" {
			t.Fatalf("before paying: %v", o)
		}
	}
	if infos := v3Calls(t, "invoice/info"); len(infos) != 0 {
		t.Fatalf("%d invoice/info calls before any payment: the admin API or the reconciler asked the provider", len(infos))
	}

	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "crystalpay", "id": invoice}, nil)
	waitFor(t, "the callback to make the order paid with its receipt", func() bool {
		o := adminOrder(t, id)
		return o["state"] == "paid" && receiptState(o) == "done"
	})
	o := adminOrder(t, id)
	if o["paid_at"] == nil || o["error"] != nil {
		t.Errorf("paid order: %v", o)
	}

	callbacks := v3Calls(t, "callback")
	if len(callbacks) != 1 || callbacks[0].Status != http.StatusOK || callbacks[0].Attempt != 1 || callbacks[0].URL != v3CallbackURL ||
		callbacks[0].field("id") != invoice || callbacks[0].field("state") != "payed" {
		t.Fatalf("callback deliveries: %+v", callbacks)
	}
	infos := v3Calls(t, "invoice/info")
	if len(infos) != 1 || infos[0].field("id") != invoice || infos[0].Time.Before(callbacks[0].Time) {
		t.Errorf("invoice/info calls %+v, want only the callback handler's, made after the callback (sent %v)", infos, callbacks[0].Time)
	}
	if n := scrapeMetrics(t).sum("kassa_callbacks_total", "account", "main", "result", "paid") - before; n != 1 {
		t.Errorf("kassa_callbacks_total{result=paid} grew by %v, want 1", n)
	}
}

// TestCrystalPayV3ForgedCallback: a callback signed with another salt is
// answered 403, however often it comes; it changes nothing, asks the
// provider nothing, and makes one warning line that carries neither the
// signature nor the salt. The same callback, rightly signed, is taken.
func TestCrystalPayV3ForgedCallback(t *testing.T) {
	logFile := startV3Shop(t)
	before := scrapeMetrics(t).sum("kassa_callbacks_total", "account", "main", "result", "bad_signature")
	id, invoice := v3Checkout(t)
	fault(t, "crystalpay", "callback", "forgedcallback", 1)
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "crystalpay", "id": invoice}, nil)

	waitFor(t, "the forged callback", func() bool { return len(v3Calls(t, "callback")) >= 1 })
	if c := v3Calls(t, "callback")[0]; c.Status != http.StatusForbidden || c.Fault != "forgedcallback" {
		t.Fatalf("the forged callback: %v, want 403", c)
	}
	// The sandbox sends a refused callback again a second later.
	waitFor(t, "the forged callback's retry", func() bool { return len(v3Calls(t, "callback")) >= 2 })
	for _, c := range v3Calls(t, "callback") {
		if c.Status != http.StatusForbidden || c.Fault != "forgedcallback" {
			t.Errorf("forged callback delivery: %+v, want 403", c)
		}
	}
	if o := adminOrder(t, id); o["state"] != "pending" || o["paid_at"] != nil || o["error"] != nil {
		t.Errorf("after the forged callbacks the order is %v", o)
	}
	if infos := v3Calls(t, "invoice/info"); len(infos) != 0 {
		t.Errorf("the forged callbacks made %d invoice/info calls", len(infos))
	}
	refused := logLinesWith(t, logFile, "callbacks refused")
	if len(refused) != 1 || !strings.Contains(refused[0], `"level":"warn"`) {
		t.Errorf("log lines about the forged callbacks: %q, want one warning", refused)
	}
	salt := v3Secrets["KASSA_V3TEST_SALT"]
	for _, line := range leaks(refused, []string{salt, v3Sign(invoice, salt), v3Sign(invoice, "forged-"+salt)}) {
		t.Errorf("the warning carries a secret: %s", line)
	}
	if n := scrapeMetrics(t).sum("kassa_callbacks_total", "account", "main", "result", "bad_signature") - before; n < 2 {
		t.Errorf("kassa_callbacks_total{result=bad_signature} grew by %v, want at least 2", n)
	}

	// The fault is spent: the callback sent again now holds, and is taken.
	sandboxControl(t, http.MethodPost, "callback", map[string]string{"id": invoice}, nil)
	waitFor(t, "the rightly signed callback to make the order paid", func() bool { return adminOrder(t, id)["state"] == "paid" })
}

// TestCrystalPayV3CallbackBodyNotTrusted: a rightly signed callback that
// says payed for an invoice CrystalPAY says is notpayed is answered 200
// and changes nothing: the handler believes invoice/info, not the body.
// Signed for an invoice no order holds, it is 404; with a wrong
// signature, 403; neither asks the provider.
func TestCrystalPayV3CallbackBodyNotTrusted(t *testing.T) {
	startV3Shop(t)
	id, invoice := v3Checkout(t)
	salt := v3Secrets["KASSA_V3TEST_SALT"]
	callback := func(invoice, signature string) reply {
		body := fmt.Sprintf(`{"id":%q,"state":"payed","type":"purchase","amount":"350","rub_amount":"350","remaining_amount":"0",`+
			`"balance_amount":"350","currency":"RUB","amount_currency":"RUB","extra":%q,"callback_url":%q,"signature":%q}`,
			invoice, id, v3CallbackURL, signature)
		return send(t, http.MethodPost, v3CallbackURL, "application/json", body)
	}

	if r := callback(invoice, v3Sign(invoice, salt)); r.status != http.StatusOK || r.body != "OK" {
		t.Fatalf("a signed callback: %d %s", r.status, r.body)
	}
	if o := adminOrder(t, id); o["state"] != "pending" || o["paid_at"] != nil || o["error"] != nil {
		t.Errorf("after a callback saying payed for an unpaid invoice the order is %v", o)
	}
	infos := v3Calls(t, "invoice/info")
	if len(infos) != 1 || infos[0].field("id") != invoice {
		t.Errorf("invoice/info calls: %+v, want the handler's one re-read", infos)
	}

	if r := callback("999999999_NoSuchInvoice", v3Sign("999999999_NoSuchInvoice", salt)); r.status != http.StatusNotFound ||
		r.errorCode(t) != "unknown_payment" {
		t.Errorf("a signed callback for an unknown invoice: %d %s", r.status, r.body)
	}
	if r := callback(invoice, v3Sign(invoice, "another-salt")); r.status != http.StatusForbidden || r.errorCode(t) != "bad_signature" {
		t.Errorf("a callback with a wrong signature: %d %s", r.status, r.body)
	}
	if n := len(v3Calls(t, "invoice/info")); n != 1 {
		t.Errorf("%d invoice/info calls, want still 1", n)
	}
	if o := adminOrder(t, id); o["state"] != "pending" {
		t.Errorf("the order is %v", o["state"])
	}
}

// TestCrystalPayV3WrongAmount: an invoice paid with the wrong amount is
// called back; the order stays unpaid, with the problem noted for the
// operator and no receipt.
func TestCrystalPayV3WrongAmount(t *testing.T) {
	startV3Shop(t)
	before := scrapeMetrics(t).sum("kassa_callbacks_total", "account", "main", "result", "problem")
	id, invoice := v3Checkout(t)
	sandboxControl(t, http.MethodPost, "invoice", map[string]string{"id": invoice, "state": "wrongamount", "amount": "50.00"}, nil)
	// The order is written before the callback is answered.
	waitFor(t, "the callback answered", func() bool { return len(v3Calls(t, "callback")) > 0 })
	o := adminOrder(t, id)
	if o["state"] != "pending" || o["paid_at"] != nil || o["receipt"] != nil {
		t.Errorf("an order paid with the wrong amount: %v", o)
	}
	if msg, _ := o["error"].(string); !strings.Contains(msg, "wrong amount") || !strings.Contains(msg, "50") {
		t.Errorf("the order's problem: %q", msg)
	}
	if callbacks := v3Calls(t, "callback"); len(callbacks) != 1 || callbacks[0].Status != http.StatusOK || callbacks[0].field("state") != "wrongamount" {
		t.Errorf("callback deliveries: %+v", callbacks)
	}
	if n := scrapeMetrics(t).sum("kassa_callbacks_total", "account", "main", "result", "problem") - before; n != 1 {
		t.Errorf("kassa_callbacks_total{result=problem} grew by %v, want 1", n)
	}
}

// TestCrystalPayV3PayoutOnce: a payout sent again and again under one
// Idempotency-Key, in turn and at once, is one payoff/create and one
// payoff/submit, and every answer names its payoff; the admin API and
// `caddy kassa payout-status` ask CrystalPAY where it stands, until paid.
func TestCrystalPayV3PayoutOnce(t *testing.T) {
	procBinary(t) // build first: the build must not eat the shop's time
	startV3Shop(t)
	const body = `{"payment":"main","amount":"100","to":"wallet-v3-7","method":"LZTMARKET"}`
	first := payoutCall(t, "v3-payout-once", body)
	payoff, _ := first.json(t)["id"].(string)
	if first.status != http.StatusOK || payoff == "" || first.json(t)["state"] != "sent" {
		t.Fatalf("payout: %d %s", first.status, first.body)
	}
	var wg sync.WaitGroup
	replies := make([]reply, 8)
	for i := range replies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			replies[i] = payoutCall(t, "v3-payout-once", body)
		}()
	}
	wg.Wait()
	replies = append(replies, payoutCall(t, "v3-payout-once", body))
	for _, r := range replies {
		if r.status != http.StatusOK || r.json(t)["id"] != payoff {
			t.Errorf("the payout again under its key: %d %s, want 200 with id %s", r.status, r.body, payoff)
		}
	}
	creates, submits := v3Calls(t, "payoff/create"), v3Calls(t, "payoff/submit")
	if len(creates) != 1 || len(submits) != 1 || submits[0].field("id") != payoff {
		t.Fatalf("payoff/create calls %+v, payoff/submit calls %+v, want one each", creates, submits)
	}
	// The sandbox checks the signatures, over the strings sent.
	if c := creates[0]; c.Status != http.StatusOK || c.field("wallet") != "wallet-v3-7" || c.field("method") != "LZTMARKET" || submits[0].Status != http.StatusOK {
		t.Errorf("payoff/create %+v, payoff/submit %+v", c, submits[0])
	}

	status := func() reply { return adminCall(t, http.MethodGet, "payouts/"+payoff, "") }
	if r := status(); r.status != http.StatusOK || r.json(t)["id"] != payoff || r.json(t)["payment"] != "main" {
		t.Fatalf("payout status: %d %s", r.status, r.body)
	}
	waitFor(t, "the payout paid", func() bool { return status().json(t)["state"] == "paid" })
	r := runKassaCLI(t, "payout-status", payoff)
	for _, want := range []string{"payment:", "main", "payout:", payoff, "state:", "paid"} {
		if r.exit != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("payout-status: exit %d, no %q in\n%s%s", r.exit, want, r.stdout, r.stderr)
			break
		}
	}
	if n := len(v3Calls(t, "payoff/submit")); n != 1 {
		t.Errorf("%d payoff/submit calls after the status reads, want 1", n)
	}
	var state struct {
		CrystalPay struct {
			Balance string            `json:"balance"`
			Payoffs []json.RawMessage `json:"payoffs"`
		} `json:"crystalpay"`
	}
	sandboxControl(t, http.MethodGet, "state", nil, &state)
	if len(state.CrystalPay.Payoffs) != 1 || state.CrystalPay.Balance != "899" {
		t.Errorf("the sandbox holds %d payoffs and a balance of %s, want 1 and 1000 - 100 - 1%% commission = 899",
			len(state.CrystalPay.Payoffs), state.CrystalPay.Balance)
	}
}

// TestCrystalPayV3NoSecrets drives the v3 flows — a checkout paid by
// callback, forged and test-made callbacks, every failure of invoice/create,
// a callback whose invoice/info fails, payouts made, refused and left
// pending, balances and payout status — then finds neither the login, the
// secret, the salt nor any signature in any log line, any answer of the
// shop or its admin API, or the metrics.
func TestCrystalPayV3NoSecrets(t *testing.T) {
	logFile := startV3Shop(t)
	salt := v3Secrets["KASSA_V3TEST_SALT"]
	var answers []string
	keep := func(r reply) reply {
		var h strings.Builder
		r.header.Write(&h)
		answers = append(answers, h.String()+r.body)
		return r
	}
	signatures := []string{}

	// Paid by callback.
	id, invoice := v3Checkout(t)
	signatures = append(signatures, v3Sign(invoice, salt), v3Sign(invoice, "forged-"+salt))
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "crystalpay", "id": invoice}, nil)
	waitFor(t, "the order paid", func() bool { return receiptState(adminOrder(t, id)) == "done" })
	keep(adminCall(t, http.MethodGet, "orders/"+id, ""))
	keep(send(t, http.MethodGet, shopURL+"/pay?order="+id, "", ""))

	// Forged, then made by hand with the salt.
	other, otherInvoice := v3Checkout(t)
	signatures = append(signatures, v3Sign(otherInvoice, salt), v3Sign(otherInvoice, "forged-"+salt))
	fault(t, "crystalpay", "callback", "forgedcallback", 1)
	sandboxControl(t, http.MethodPost, "invoice", map[string]string{"id": otherInvoice, "state": "processing"}, nil)
	sandboxControl(t, http.MethodPost, "callback", map[string]string{"id": otherInvoice}, nil)
	waitFor(t, "the forged callback refused", func() bool { return len(v3Calls(t, "callback")) >= 2 })
	keep(send(t, http.MethodPost, v3CallbackURL, "application/json",
		fmt.Sprintf(`{"id":%q,"state":"payed","extra":%q,"signature":%q}`, otherInvoice, other, v3Sign(otherInvoice, salt))))
	keep(send(t, http.MethodPost, v3CallbackURL, "application/json",
		fmt.Sprintf(`{"id":%q,"state":"payed","extra":%q,"signature":%q}`, otherInvoice, other, v3Sign(otherInvoice, "forged-"+salt))))
	// The provider failing under a callback: 503, for CrystalPAY to send it again.
	fault(t, "crystalpay", "invoice/info", "error500", 1)
	if r := keep(send(t, http.MethodPost, v3CallbackURL, "application/json",
		fmt.Sprintf(`{"id":%q,"extra":%q,"signature":%q}`, otherInvoice, other, v3Sign(otherInvoice, salt)))); r.status != http.StatusServiceUnavailable {
		t.Errorf("a callback while invoice/info fails: %d %s", r.status, r.body)
	}

	// Every failure of invoice/create.
	for _, mode := range []string{"auth", "forbidden", "error500", "malformed", "html", "timeout"} {
		fault(t, "crystalpay", "invoice/create", mode, 1)
		if r := keep(postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)); r.status < 500 {
			t.Errorf("invoice/create %s: %d %s", mode, r.status, r.body)
		}
	}
	waitFaultsUsed(t)

	// Payouts: made, refused (more than the balance), left pending by a
	// lost submit, then learnt by payoff/info.
	for i, tc := range []struct {
		amount, to, op, mode string
		status               int
	}{
		{"100", "wallet-1", "", "", http.StatusOK},
		{"5000", "wallet-2", "", "", http.StatusBadGateway},
		{"7", "wallet-3", "payoff/create", "auth", http.StatusBadGateway},
		{"8", "wallet-4", "payoff/submit", "error500", http.StatusServiceUnavailable},
	} {
		if tc.op != "" {
			fault(t, "crystalpay", tc.op, tc.mode, 1)
		}
		signatures = append(signatures, v3Sign(tc.amount, "LZTMARKET", tc.to, salt))
		key := fmt.Sprintf("v3-secrets-%d", i)
		body := `{"payment":"main","amount":"` + tc.amount + `","to":"` + tc.to + `","method":"LZTMARKET"}`
		if r := keep(payoutCall(t, key, body)); r.status != tc.status {
			t.Errorf("payout %s: %d %s, want %d", body, r.status, r.body, tc.status)
		}
		if tc.status == http.StatusServiceUnavailable {
			keep(payoutCall(t, key, body))
		}
	}
	for _, c := range append(v3Calls(t, "payoff/submit"), v3Calls(t, "payoff/info")...) {
		if id := c.field("id"); id != "" {
			signatures = append(signatures, v3Sign(id, salt))
			keep(adminCall(t, http.MethodGet, "payouts/"+id, ""))
		}
	}
	keep(adminCall(t, http.MethodGet, "balance", ""))
	fault(t, "crystalpay", "me/info", "auth", 1)
	keep(adminCall(t, http.MethodGet, "balance", ""))
	keep(adminCall(t, http.MethodGet, "orders", ""))

	resp, err := http.Get(metricsURL)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	var secrets []string
	for _, s := range v3Secrets {
		secrets = append(secrets, s)
	}
	secrets = append(secrets, signatures...)
	lines := readLines(t, logFile)
	t.Logf("scanned %d log lines, %d answers, %d bytes of metrics for %d secrets", len(lines), len(answers), len(metrics), len(secrets))
	for _, line := range leaks(lines, secrets) {
		t.Errorf("a log line carries a secret: %s", line)
	}
	for _, answer := range leaks(answers, secrets) {
		t.Errorf("an answer carries a secret: %s", answer)
	}
	for _, line := range leaks(strings.Split(string(metrics), "\n"), secrets) {
		t.Errorf("a metric carries a secret: %s", line)
	}

	// ...and it read the lines where a leak would be.
	for _, want := range []string{
		"callbacks refused", "payment status for a callback failed", "crystalpay invoice/create: provider refused the credentials",
		"crystalpay invoice/create: provider unavailable", "crystalpay invoice/create: provider sent a malformed reply",
		"crystalpay payoff/create: provider", "crystalpay payoff/submit: provider unavailable", `"receipt done"`,
	} {
		if len(logLinesWith(t, logFile, want)) == 0 {
			t.Errorf("no log line has %q", want)
		}
	}
}
