package caddytest

import (
	"bufio"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// logSecrets are the distinctive credentials of the log test, by the
// environment variable that carries them. Each has characters that URL
// escaping changes, so that an escaped leak differs from a plain one.
var logSecrets = map[string]string{
	"KASSA_LOGTEST_CP_LOGIN":   "cp-login+Qz7/Xw4=",
	"KASSA_LOGTEST_CP_SECRET":  "cp-secret+Vb2/Nk8=",
	"KASSA_LOGTEST_CP_SECRET2": "cp-secret2+Hj5/Rt3=",
	"KASSA_LOGTEST_PEGAS":      "pegas-token+Lm9/Cd6=",
	"KASSA_LOGTEST_CASHIER":    "cashier-token+Fg1/Sy0=",
}

// logsConfig is a shop whose every credential comes from the environment,
// logging everything at DEBUG as JSON to LOGFILE, with a CrystalPAY and a
// Pegas account whose endpoints are a closed port.
const logsConfig = `{
	admin localhost:2999
	skip_install_trust
	log {
		output file LOGFILE
		format json
		level DEBUG
	}
	kassa {
		payment main crystalpay {
			api v1
			login {env.KASSA_LOGTEST_CP_LOGIN}
			secret {env.KASSA_LOGTEST_CP_SECRET}
			secret2 {env.KASSA_LOGTEST_CP_SECRET2}
			endpoint http://localhost:9181/crystalpay/api.php
			timeout 1s
		}
		payment card pegas {
			token {env.KASSA_LOGTEST_PEGAS}
			endpoint http://localhost:9181/pegas/api/v1
			timeout 1s
		}
		payment deadcp crystalpay {
			api v1
			login {env.KASSA_LOGTEST_CP_LOGIN}
			secret {env.KASSA_LOGTEST_CP_SECRET}
			secret2 {env.KASSA_LOGTEST_CP_SECRET2}
			endpoint http://127.0.0.1:DEADPORT/crystalpay/api.php
			timeout 1s
		}
		payment deadpegas pegas {
			token {env.KASSA_LOGTEST_PEGAS}
			endpoint http://127.0.0.1:DEADPORT/pegas/api/v1
			timeout 1s
		}
		receipts smartcashier {
			token {env.KASSA_LOGTEST_CASHIER}
			endpoint http://localhost:9181/smartcashier/v1.0
			taxation usn_income
			vat none
			timeout 1s
		}
		product tea 350.00 "Зелёный чай" vat20
		poll_interval 100ms
		storage file_system STORAGE
	}
}

http://localhost:9180 {
	kassa_receipt /receipt
	route /pay {
		kassa_checkout main
	}
	route /card {
		kassa_checkout card
	}
	route /deadcp {
		kassa_checkout deadcp
	}
	route /deadpegas {
		kassa_checkout deadpegas
	}
}

http://localhost:9181 {
	kassa_sandbox {
		name logs
		receipt_delay 0s
		crystalpay_login {env.KASSA_LOGTEST_CP_LOGIN}
		crystalpay_secret {env.KASSA_LOGTEST_CP_SECRET}
		crystalpay_secret2 {env.KASSA_LOGTEST_CP_SECRET2}
		pegas_token {env.KASSA_LOGTEST_PEGAS}
		smartcashier_token {env.KASSA_LOGTEST_CASHIER}
		balance crystalpay 1000
		balance pegas 1000
	}
}`

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	return port
}

// secretForms are the ways a secret could show in a log line: plain,
// URL-escaped either way, and escaped as inside a JSON string.
func secretForms(secret string) []string {
	j, _ := json.Marshal(secret)
	return []string{secret, url.QueryEscape(secret), url.PathEscape(secret), strings.Trim(string(j), `"`)}
}

// leaks returns the lines that carry any form of any of secrets.
func leaks(lines, secrets []string) []string {
	var out []string
	for _, line := range lines {
		for _, s := range secrets {
			for _, form := range secretForms(s) {
				if strings.Contains(line, form) {
					out = append(out, line)
				}
			}
		}
	}
	return out
}

// readLines reads a file's lines.
func readLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

// crystalPaySignature is how CrystalPAY signs a payout: md5 of
// wallet-amount-secret2.
func crystalPaySignature(wallet, amount, secret2 string) string {
	sum := md5.Sum([]byte(wallet + "-" + amount + "-" + secret2))
	return hex.EncodeToString(sum[:])
}

// waitFaultsUsed waits until the sandbox has applied every fault it holds.
func waitFaultsUsed(t *testing.T) {
	t.Helper()
	waitFor(t, "the faults to be used", func() bool {
		var v struct {
			Faults []json.RawMessage `json:"faults"`
		}
		sandboxControl(t, http.MethodGet, "faults", nil, &v)
		return len(v.Faults) == 0
	})
}

// TestLogsCarryNoSecrets drives every flow — checkouts, payments, receipts,
// each provider's refusals and failures, refused connections and payouts —
// with distinctive credentials from the environment, then reads every line
// Caddy logged at DEBUG: none carries a credential, in any escaping, nor a
// payout's signature. The autosaved config keeps the placeholders.
func TestLogsCarryNoSecrets(t *testing.T) {
	dir := storageDir(t)
	for name, value := range logSecrets {
		t.Setenv(name, value)
	}
	// Caddy computes its autosave path from XDG_CONFIG_HOME once, when
	// the process starts, so setting the variable now changes nothing:
	// point the path itself at this test's directory.
	t.Setenv("XDG_CONFIG_HOME", dir)
	autosave := filepath.Join(dir, "caddy", "autosave.json")
	defaultAutosave := caddy.ConfigAutosavePath
	caddy.ConfigAutosavePath = autosave
	t.Cleanup(func() { caddy.ConfigAutosavePath = defaultAutosave })

	logFile := filepath.Join(dir, "caddy.log")
	config := strings.NewReplacer("LOGFILE", logFile, "STORAGE", filepath.Join(dir, "storage"), "DEADPORT", closedPort(t)).Replace(logsConfig)
	caddytest.NewTester(t).InitServer(config, "caddyfile")
	forgetConnections()
	sandboxControl(t, http.MethodPost, "reset", nil, nil)

	// The happy paths: a CrystalPAY and a Pegas order, paid, with receipts.
	v := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)
	crystalID, _ := v["order_id"].(string)
	payURL, _ := v["payment_url"].(string)
	if crystalID == "" {
		t.Fatalf("CrystalPAY checkout: %v", v)
	}
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "crystalpay",
		"id": strings.TrimPrefix(payURL, "http://localhost:9181/pay/crystalpay/")}, nil)
	pegasID := buyAndPay(t, "/card", `{"items":[{"sku":"tea"}],"phone":"+79991234567"}`)
	for _, id := range []string{crystalID, pegasID} {
		waitFor(t, "the receipt of "+id, func() bool { return receiptOf(t, id)["state"] == "done" })
	}

	// Orders left pending, so that the reconciler polls them through the
	// status faults below.
	postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)

	// Every refusal and failure of each API.
	for _, mode := range []string{"auth", "forbidden", "error500", "malformed", "html", "timeout"} {
		fault(t, "crystalpay", "generate", mode, 1)
		if r := postJSON(t, "/pay", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`); r.status < 500 {
			t.Errorf("CrystalPAY %s: %d %s", mode, r.status, r.body)
		}
		// The reconciler, recovering an earlier order, may take this one.
		fault(t, "pegas", "deposit", mode, 1)
		postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
		fault(t, "crystalpay", "checkpay", mode, 1)
		fault(t, "pegas", "transaction/receipt/file", mode, 1)
		fault(t, "smartcashier", "formReceipt", mode, 1)
		id := buyAndPay(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
		waitFor(t, "the receipt through "+mode, func() bool {
			st := receiptOf(t, id)["state"]
			return st == "done" || st == "failed"
		})
		waitFaultsUsed(t)
	}

	// Refused connections.
	for _, path := range []string{"/deadcp", "/deadpegas"} {
		if r := postJSON(t, path, `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`); r.status != http.StatusServiceUnavailable {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	adminCall(t, http.MethodGet, "balance", "")

	// Payouts, signed with secret2: made, refused, failed, unreachable.
	secret2 := logSecrets["KASSA_LOGTEST_CP_SECRET2"]
	signatures := []string{}
	for i, tc := range []struct {
		payment, amount, to string
		fault               string
		status              int
	}{
		{"main", "100", "wallet-7", "", http.StatusOK},
		{"main", "100000", "wallet-7", "", http.StatusBadGateway},
		{"main", "5", "wallet-8", "error500", http.StatusServiceUnavailable},
		{"main", "6", "wallet-9", "auth", http.StatusBadGateway},
		{"main", "7", "wallet-9", "timeout", http.StatusServiceUnavailable},
		{"deadcp", "8", "wallet-9", "", http.StatusServiceUnavailable},
	} {
		if tc.fault != "" {
			fault(t, "crystalpay", "withdraw", tc.fault, 1)
		}
		signatures = append(signatures, crystalPaySignature(tc.to, tc.amount, secret2))
		body := `{"payment":"` + tc.payment + `","amount":"` + tc.amount + `","to":"` + tc.to + `","method":"qw"}`
		if r := payoutCall(t, fmt.Sprintf("logs-payout-%d", i), body); r.status != tc.status {
			t.Errorf("payout %s: %d %s, want %d", body, r.status, r.body, tc.status)
		}
	}
	if r := payoutCall(t, "logs-payout-pegas", `{"payment":"card","amount":"10.00","to":"79990000000","method":"wallet"}`); r.status != 200 {
		t.Errorf("Pegas payout: %d %s", r.status, r.body)
	}

	// The Pegas order at the closed port stays creating; the reconciler
	// retries it once the checkout's time is up, and logs each failure.
	waitForLog := func(what, text string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			for _, line := range readLines(t, logFile) {
				if strings.Contains(line, text) {
					return
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s in the log", what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitForLog("the reconciler's retry at the closed port", "provider unavailable while recovering an order")

	lines := readLines(t, logFile)
	t.Logf("scanned %d log lines", len(lines))
	var secrets []string
	for _, s := range logSecrets {
		secrets = append(secrets, s)
	}
	secrets = append(secrets, signatures...)

	// The scan can see a leak: a line with an escaped secret is caught.
	if len(leaks([]string{`{"msg":"x","url":"/api.php?s=` + url.QueryEscape(secrets[0]) + `"}`}, secrets)) != 1 {
		t.Fatal("the scan misses an escaped secret")
	}
	for _, line := range leaks(lines, secrets) {
		t.Errorf("a log line carries a secret: %s", line)
	}

	// ...and it read the lines where a leak would be: the providers'
	// errors, refused connections, timeouts and payouts.
	if len(lines) < 100 {
		t.Errorf("only %d log lines: is the log captured?", len(lines))
	}
	for _, want := range []string{
		`"order created"`, `"receipt queued"`, `"receipt done"`, `"creating payment failed"`, `"checkout failed"`,
		"crystalpay generate: provider refused the credentials", "crystalpay generate: provider sent a malformed reply",
		"crystalpay generate: provider unavailable", "crystalpay checkpay: provider",
		"pegas deposit: provider refused the credentials", "pegas deposit: provider unavailable", "pegas deposit: provider sent a malformed reply",
		"pegas transaction/receipt/file: provider",
		"smartcashier formReceipt: provider refused the credentials", "smartcashier formReceipt: provider unavailable",
		"retrying Smart Cashier call", "context deadline exceeded", "connection refused",
		`"operator: payout sent"`, `"operator: payout failed"`, "crystalpay withdraw: provider rejected the request",
		"crystalpay withdraw: provider unavailable",
	} {
		n := 0
		for _, line := range lines {
			if strings.Contains(line, want) {
				n++
			}
		}
		if n == 0 {
			t.Errorf("no log line has %q", want)
		}
	}
	for i, line := range lines {
		if !json.Valid([]byte(line)) {
			t.Errorf("log line %d is not JSON: %s", i+1, line)
			break
		}
	}

	// The autosaved config keeps the placeholders, not what they hold.
	saved, err := os.ReadFile(autosave)
	if err != nil {
		t.Fatalf("autosave: %v", err)
	}
	for name := range logSecrets {
		if !strings.Contains(string(saved), "{env."+name+"}") {
			t.Errorf("the autosaved config lacks {env.%s}", name)
		}
	}
	for _, line := range leaks([]string{string(saved)}, secrets) {
		t.Errorf("the autosaved config carries a secret: %.200s", line)
	}
}
