package caddytest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cliAdmin is the test Caddy's admin endpoint, as the CLI is given it.
const cliAdmin = "localhost:2999"

// cliResult is one run of the caddy binary.
type cliResult struct {
	stdout, stderr string
	exit           int
}

// runKassaCLI runs `caddy kassa args... --address localhost:2999` with the
// development binary, against the in-process test Caddy.
func runKassaCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	return kassaCLI(t, append(args, "--address", cliAdmin)...)
}

// kassaCLI runs `caddy kassa args...` with the development binary, each
// argument as given, and returns its output and exit code.
func kassaCLI(t *testing.T, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, procBinary(t), append([]string{"kassa"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		r.exit = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("caddy kassa %v: %v", args, err)
	}
	return r
}

// TestCLIAgainstAdminAPI: `caddy kassa` reads balances and orders, sends a
// payout and records cash through the admin API of a running Caddy, and
// exits non-zero on an API error (1) or a usage error (2).
func TestCLIAgainstAdminAPI(t *testing.T) {
	procBinary(t) // build first: the build must not eat the shop's time
	edits := []string{
		"name checkout", "name checkout\n\t\tbalance crystalpay 1000",
		"poll_interval 100ms", "poll_interval 100ms\n\t\treceipts smartcashier {\n\t\t\ttoken sandbox-token\n" +
			"\t\t\tendpoint http://localhost:9181/smartcashier/v1.0\n\t\t\ttaxation usn_income\n\t\t\tvat none\n\t\t\ttimeout 1s\n\t\t}",
	}
	if !strings.Contains(shopConfig, "secret2 ") { // payouts need CrystalPAY's secret 2
		edits = append(edits, "secret sandbox-secret\n", "secret sandbox-secret\n\t\t\tsecret2 sandbox-secret2\n")
	}
	shopWith(t, storageDir(t), edits...)
	sandboxControl(t, http.MethodPost, "reset", nil, nil)

	created := postJSON(t, "/card", `{"items":[{"sku":"tea","qty":2}],"phone":"+79991234567"}`)
	id, _ := created.json(t)["order_id"].(string)
	if created.status != http.StatusCreated || id == "" {
		t.Fatalf("checkout: %d %s", created.status, created.body)
	}
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": id}, nil)
	waitFor(t, "the order paid", func() bool { return orderStatus(t, id)["state"] == "paid" })

	// balance: a table of every account, sorted.
	r := runKassaCLI(t, "balance")
	if r.exit != 0 {
		t.Fatalf("balance: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	balance := regexp.MustCompile(`^ACCOUNT +PROVIDER +BALANCE +WALLETS\n` +
		`card +pegas +\d+\.\d\d +-\n` +
		`main +crystalpay +1000\.00 +-\n` +
		`wallet +pegas +\d+\.\d\d +-\n$`)
	if !balance.MatchString(r.stdout) {
		t.Errorf("balance:\n%s%s", r.stdout, r.stderr)
	}

	// orders --json: the API's JSON, for scripts.
	r = runKassaCLI(t, "orders", "--json")
	var orders struct {
		Orders []struct {
			ID, State, Amount, Account string
		} `json:"orders"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &orders); r.exit != 0 || err != nil {
		t.Fatalf("orders --json: exit %d, %v\n%s%s", r.exit, err, r.stdout, r.stderr)
	}
	if len(orders.Orders) != 1 || orders.Orders[0].ID != id || orders.Orders[0].State != "paid" || orders.Orders[0].Amount != "700.00" {
		t.Errorf("orders --json: %+v", orders.Orders)
	}

	// orders and order: tables.
	r = runKassaCLI(t, "orders", "--state", "paid")
	if r.exit != 0 || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(id)+` +paid +700\.00 +card +\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ +(queued|done)$`).MatchString(r.stdout) {
		t.Errorf("orders: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	r = runKassaCLI(t, "order", id)
	for _, want := range []string{"id:", id, "state:", "paid", "account:", "card (pegas)", "amount:", "700.00", "phone:", "+79991234567",
		"items:", "Зелёный чай", "vat20", "350.00"} {
		if r.exit != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("order: exit %d, no %q in\n%s%s", r.exit, want, r.stdout, r.stderr)
			break
		}
	}

	// payout: one line naming its idempotency key, and the money leaves the
	// CrystalPAY account; run again under that key, it pays nothing more.
	payout := []string{"payout", "--payment", "main", "--amount", "100", "--to", "79990000000", "--method", "qw"}
	r = runKassaCLI(t, payout...)
	const paid = "payout of 100.00 from main to 79990000000 (qw) accepted: id none given, commission 0.00, idempotency key "
	key := strings.TrimSuffix(strings.TrimPrefix(r.stdout, paid), "\n")
	if r.exit != 0 || !strings.HasPrefix(r.stdout, paid) || len(key) != 32 {
		t.Errorf("payout: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	r = runKassaCLI(t, append(payout, "--idempotency-key", key)...)
	if r.exit != 0 || !strings.Contains(r.stdout, "already made under this key, not paid again") {
		t.Errorf("payout again under its key: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	var state struct {
		CrystalPay struct {
			Balance     string            `json:"balance"`
			Withdrawals []json.RawMessage `json:"withdrawals"`
		} `json:"crystalpay"`
	}
	sandboxControl(t, http.MethodGet, "state", nil, &state)
	if state.CrystalPay.Balance != "900" || len(state.CrystalPay.Withdrawals) != 1 {
		t.Errorf("after the payout the sandbox holds %+v", state.CrystalPay)
	}

	// cash and operation.
	r = runKassaCLI(t, "cash", "deposit", "--amount", "500.00", "--cashbox", "11111111-2222-3333-4444-555555555555", "--operation-id", "cli-cash-1")
	// The till works at once: the deposit may be done by the time its id,
	// which the operator gave, is looked up.
	if r.exit != 0 || r.stdout != "cash deposit of 500.00 queued: operation cli-cash-1 (see: caddy kassa operation cli-cash-1)\n" &&
		r.stdout != "cash deposit of 500.00 done: operation cli-cash-1 (see: caddy kassa operation cli-cash-1)\n" {
		t.Errorf("cash deposit: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	waitFor(t, "the cash operation done", func() bool {
		r = runKassaCLI(t, "operation", "cli-cash-1")
		return r.exit == 0 && strings.Contains(r.stdout, "state:      done")
	})

	// An API error: exit 1, its code and message on stderr.
	r = runKassaCLI(t, "order", "AAAAAAAAAAAAAAAAAAAAAA")
	if r.exit != 1 || r.stdout != "" || r.stderr != "kassa: unknown_order: no such order\n" {
		t.Errorf("unknown order: exit %d\nstdout %q\nstderr %q", r.exit, r.stdout, r.stderr)
	}
	r = runKassaCLI(t, "payout", "--payment", "main", "--amount", "5000", "--to", "79990000000", "--method", "qw")
	if r.exit != 1 || !strings.HasPrefix(r.stderr, "kassa: provider_error: ") {
		t.Errorf("payout above the balance: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}

	// A usage error: exit 2, and nothing is sent.
	before := len(providerCalls(t, "crystalpay", "withdraw"))
	r = runKassaCLI(t, "payout", "--payment", "main", "--amount", "1e3", "--to", "79990000000", "--method", "qw")
	if r.exit != 2 || !strings.Contains(r.stderr, `kassa: --amount "1e3" is not an amount`) {
		t.Errorf("bad amount: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	if after := len(providerCalls(t, "crystalpay", "withdraw")); after != before {
		t.Errorf("a refused payout reached CrystalPAY")
	}
}
