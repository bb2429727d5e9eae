package caddytest

// Admin endpoint tests: the shop's admin API on a unix socket, as the
// docs/operations.md recommends, driven by `caddy kassa`; and a shop with `admin off`,
// which keeps selling while the CLI has nothing to talk to. They run Caddy
// as processes with the proc helpers of crash_test.go.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// adminSocketCashbox is the till the cash deposit below goes to.
const adminSocketCashbox = "11111111-2222-3333-4444-555555555555"

// adminSocketShop prepares a shop with receipts whose global admin option
// is admin instead of a TCP address.
func adminSocketShop(t *testing.T, dir, admin string, sb *procSandbox) *clusterShop {
	t.Helper()
	s := clusterNewShop(t, dir, filepath.Join(dir, "storage"), "shop", sb)
	tcp := "admin " + s.admin + "\n"
	if !strings.Contains(s.config, tcp) {
		t.Fatalf("the shop's config has no %q", tcp)
	}
	s.config = strings.Replace(s.config, tcp, "admin "+admin+"\n", 1)
	s.admin = ""
	return s
}

// TestAdminSocketCLI: with `admin unix/<path>|0660` Caddy makes the socket
// with that mode, and `caddy kassa` reaches the kassa admin API through
// it, named by --address or found in the shop's Caddyfile by --config: it
// lists a real order and records a cash deposit at the sandbox's till.
func TestAdminSocketCLI(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "admin.sock")
	sb := procStartSandbox(t, dir)
	s := adminSocketShop(t, dir, "unix/"+sock+"|0660", sb)
	p := s.start(t)

	info, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Type() != os.ModeSocket || info.Mode().Perm() != 0o660 {
		t.Errorf("admin socket mode %v, want a socket with mode 0660", info.Mode())
	}

	id := s.checkout(t)
	config := filepath.Join(dir, p.name+".Caddyfile")
	for _, where := range [][]string{
		{"--address", "unix/" + sock},
		{"--config", config, "--adapter", "caddyfile"},
	} {
		r := kassaCLI(t, append([]string{"orders"}, where...)...)
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(id) + ` +pending +350\.00 +card +`)
		if r.exit != 0 || !strings.HasPrefix(r.stdout, "ID ") || !row.MatchString(r.stdout) {
			t.Errorf("orders %v: exit %d\n%s%s", where, r.exit, r.stdout, r.stderr)
		}
	}

	r := kassaCLI(t, "cash", "deposit", "--amount", "500.00", "--cashbox", adminSocketCashbox,
		"--operation-id", "socket-cash-1", "--address", "unix/"+sock)
	if r.exit != 0 || !regexp.MustCompile(`^cash deposit of 500\.00 (queued|done): operation socket-cash-1 `).MatchString(r.stdout) {
		t.Fatalf("cash deposit: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
	procEventually(t, procShortWait, "the deposit in the sandbox's till", func() (bool, string) {
		var st struct {
			SmartCashier struct {
				Cash map[string]string `json:"cash"`
			} `json:"smartcashier"`
		}
		procCall(t, http.MethodGet, sb.url+"/control/state", nil, http.StatusOK, &st)
		return st.SmartCashier.Cash[adminSocketCashbox] == "500.00", fmt.Sprint(st.SmartCashier.Cash)
	})
	procEventually(t, procShortWait, "the operation done", func() (bool, string) {
		r := kassaCLI(t, "operation", "socket-cash-1", "--json", "--address", "unix/"+sock)
		var op struct{ State string }
		json.Unmarshal([]byte(r.stdout), &op)
		return r.exit == 0 && op.State == "done", r.stdout + r.stderr
	})
}

// TestAdminSocketOff: with `admin off` the shop still sells, and its
// reconciler still learns the payment and issues the receipt; only the
// admin API is gone, and `caddy kassa --config` says why it cannot work.
func TestAdminSocketOff(t *testing.T) {
	dir := t.TempDir()
	sb := procStartSandbox(t, dir)
	s := adminSocketShop(t, dir, "off", sb)
	p := s.start(t)

	id := s.checkout(t)
	clusterPay(t, sb, id)
	clusterWaitDone(t, s, id, procRecoverWait)

	config := filepath.Join(dir, p.name+".Caddyfile")
	r := kassaCLI(t, "orders", "--config", config, "--adapter", "caddyfile")
	if r.exit != 1 || r.stdout != "" || !strings.HasSuffix(r.stderr, "kassa: finding the admin address: "+config+
		" turns the admin endpoint off (admin off), and caddy kassa works only through it\n") {
		t.Errorf("orders with admin off: exit %d\n%s%s", r.exit, r.stdout, r.stderr)
	}
}
