package kassa

import (
	"strings"
	"testing"
)

const cliCheckFound = `{"ok":false,"checked_at":"2026-12-06T09:00:00Z","since":"2026-11-29T09:00:00Z",
"reconciler":{"holder":"shop-1-a1b2c3","passed_at":"2026-12-06T08:59:50Z"},
"needs_action":[
{"kind":"receipt_failed","count":1,"hint":"caddy kassa receipt <id> sends it again","items":[
 {"order_id":"LBqAlBc-Oq4U1YQ0vl6RBw","account":"card","state":"paid","amount":"350.00","at":"2026-12-05T20:00:00Z","detail":"sale receipt kassa-x failed: Открыта крышка."}]},
{"kind":"event_undelivered","count":2,"hint":"caddy kassa redeliver <event_id>","items":[
 {"order_id":"LBqAlBc-Oq4U1YQ0vl6RBw","event_id":"LBqAlBc-Oq4U1YQ0vl6RBw-1-0a1b2c3d","at":"2026-12-05T20:00:00Z","detail":"order.paid to https://shop.example/hook: failed after 12 attempts"}]}]}`

// TestCLICheck: caddy kassa check prints a table per kind with its fix and
// exits 3 naming the kinds when something needs action, 0 when nothing
// does; --json prints the API's JSON and exits the same way.
func TestCLICheck(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{"GET /kassa/check": {200, cliCheckFound}})
	stdout, stderr, err := runCLI(t, "check", "--address", admin.addr(), "--since", "30d")
	if exitStatus(err) != exitNeedsAction || stderr != "kassa: needs action: receipt_failed (1), event_undelivered (2)\n" {
		t.Errorf("check with findings: exit %d, stderr %q", exitStatus(err), stderr)
	}
	for _, want := range []string{"reconciler: shop-1-a1b2c3, last pass 10s ago", "RECEIPT_FAILED: 1", "fix: caddy kassa receipt <id> sends it again",
		"LBqAlBc-Oq4U1YQ0vl6RBw  paid", "Открыта крышка.", "EVENT_UNDELIVERED: 2", "LBqAlBc-Oq4U1YQ0vl6RBw-1-0a1b2c3d", "... and 1 more"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("the tables lack %q:\n%s", want, stdout)
		}
	}
	if got := admin.requests(); got[0].Query != "since=30d" {
		t.Errorf("query = %q", got[0].Query)
	}

	stdout, _, err = runCLI(t, "check", "--address", admin.addr(), "--json")
	if exitStatus(err) != exitNeedsAction || stdout != cliCheckFound+"\n" {
		t.Errorf("check --json: exit %d, stdout %q", exitStatus(err), stdout)
	}

	admin.replies["GET /kassa/check"] = cliReply{200, `{"ok":true,"checked_at":"2026-12-06T09:00:00Z","since":"2026-11-29T09:00:00Z",
"reconciler":{"holder":"shop-1-a1b2c3","passed_at":"2026-12-06T08:59:55Z"},"needs_action":[]}`}
	stdout, stderr, err = runCLI(t, "check", "--address", admin.addr())
	if err != nil || stderr != "" || !strings.Contains(stdout, "nothing needs action") {
		t.Errorf("a clear check: %v, stdout %q, stderr %q", err, stdout, stderr)
	}

	admin.replies["GET /kassa/check"] = cliReply{503, `{"error":{"code":"storage_unavailable","message":"the disk is gone"}}`}
	if _, stderr, err := runCLI(t, "check", "--address", admin.addr()); exitStatus(err) != 1 || !strings.Contains(stderr, "storage_unavailable") {
		t.Errorf("a failed check: exit %d, %q", exitStatus(err), stderr)
	}
	if _, _, err := runCLI(t, "check", "--address", admin.addr(), "--since", ""); exitStatus(err) != exitUsage {
		t.Errorf("--since empty: exit %d", exitStatus(err))
	}
}
