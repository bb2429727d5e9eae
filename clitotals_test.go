package kassa

import (
	"strings"
	"testing"
)

// TestCLITotals: caddy kassa export --month M --totals asks for the
// month's totals and prints them per account and per VAT rate; --month
// alone exports the month's orders.
func TestCLITotals(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{
		"GET /kassa/orders/totals": {200, `{"from":"2026-11-01T00:00:00+03:00","to":"2026-12-01T00:00:00+03:00","time_zone":"Europe/Moscow",
"accounts":[{"account":"main","provider":"crystalpay","orders":6,"amount":"433.09","paid_amount":"433.09","commission":"0.00","paid_late":1,"refunds":2,"refunded":"305.00"}],
"vat":[{"vat":"vat22","label":"НДС 22%","sales":"183.09","sales_vat":"33.03","refunds":"305.00","refunds_vat":"55.00"}],
"orders":6,"amount":"433.09","refunded":"305.00","receipts_not_done":["LBqAlBc-Oq4U1YQ0vl6RBw"]}`},
		"GET /kassa/orders/export": {200, strings.Join(exportColumns, ",") + "\r\n"},
	})
	stdout, stderr, err := runCLI(t, "export", "--address", admin.addr(), "--month", "2026-11", "--totals")
	if err != nil {
		t.Fatalf("export --totals: %v, %s", err, stderr)
	}
	for _, want := range []string{"Paid from 2026-11-01 00:00 to 2026-12-01 00:00 (Europe/Moscow)",
		"main     crystalpay  6       433.09  433.09  0.00        1          2        305.00",
		"НДС 22%  183.09  33.03      305.00   55.00"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the tables lack %q:\n%s", want, stdout)
		}
	}
	if !strings.Contains(stderr, "1 orders paid in the period have no receipt done") || !strings.Contains(stderr, "LBqAlBc-Oq4U1YQ0vl6RBw") {
		t.Errorf("stderr %q", stderr)
	}
	if _, _, err := runCLI(t, "export", "--address", admin.addr(), "--month", "2026-11"); err != nil {
		t.Fatal(err)
	}
	got := admin.requests()
	if got[0].Path != "/kassa/orders/totals" || got[0].Query != "from=2026-11-01&to=2026-12-01" ||
		got[1].Path != "/kassa/orders/export" || got[1].Query != "format=csv&from=2026-11-01&to=2026-12-01" {
		t.Errorf("requests: %+v", got)
	}
	for _, args := range [][]string{{"--month", "2026-11", "--from", "2026-11-01"}, {"--month", "11.2026"}, {"--totals"},
		{"--totals", "--month", "2026-11", "--format", "jsonl"}} {
		if _, _, err := runCLI(t, append([]string{"export", "--address", admin.addr()}, args...)...); exitStatus(err) != exitUsage {
			t.Errorf("export %v: exit %d, want %d", args, exitStatus(err), exitUsage)
		}
	}
}
