package caddytest

// The proxied demo as a process test: example/backend and the development
// Caddy with example/proxied.Caddyfile (its ports rewritten to free ones)
// run as real processes, and a buyer checks out through Caddy, pays at the
// sandbox, and the backend learns of it through the reference receiver.
// It reuses the proc helpers of crash_test.go.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// proxiedDemoConfig reads example/proxied.Caddyfile and moves it to free
// ports: the shop's, the sandbox's, the backend's and an admin endpoint of
// its own.
func proxiedDemoConfig(t *testing.T, shop, sandbox, backend, admin string) string {
	t.Helper()
	b, err := os.ReadFile("../example/proxied.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	config := string(b)
	for _, r := range [][2]string{
		{"localhost:8080", shop},
		{"localhost:9080", sandbox},
		{"127.0.0.1:8081", backend},
		{"{\n\tkassa {", "{\n\tadmin " + admin + "\n\tpersist_config off\n\tkassa {"},
	} {
		if !strings.Contains(config, r[0]) {
			t.Fatalf("example/proxied.Caddyfile has no %q to rewrite", r[0])
		}
		config = strings.ReplaceAll(config, r[0], r[1])
	}
	return config
}

// proxiedDemoBackend builds example/backend and runs it on addr, killed
// when the test ends.
func proxiedDemoBackend(t *testing.T, dir, addr, secret string) {
	t.Helper()
	bin := filepath.Join(dir, "backend")
	build := exec.Command("go", "build", "-o", bin, "./example/backend")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./example/backend: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "backend.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-listen", addr)
	cmd.Env = append(os.Environ(), notifySecretEnv+"="+secret)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("----- log of the backend -----\n%s", b)
		}
	})
	procEventually(t, procReadyWait, "the backend answers", func() (bool, string) {
		status, b, err := procDo("GET", "http://"+addr+"/orders", nil)
		return err == nil && status == http.StatusOK, fmt.Sprintf("%d %s %v", status, b, err)
	})
}

// proxiedDemoOrder is the backend's JSON of one of its orders.
type proxiedDemoOrder struct {
	ID         string `json:"id"`
	Total      string `json:"total"`
	Paid       bool   `json:"paid"`
	KassaOrder string `json:"kassa_order"`
}

// TestProxiedDemo runs the proxied demo as a buyer uses it: the backend's
// checkout, through Caddy, answers with the payment link; paying it at the
// sandbox makes the backend's BACKEND-1 paid through a signed
// notification, and the admin API finds the order by that id.
func TestProxiedDemo(t *testing.T) {
	dir := t.TempDir()
	secret := "proxied-demo-" + fmt.Sprint(time.Now().UnixNano())
	shop, sandbox, backend := procFreePort(t), procFreePort(t), procFreePort(t)
	shopAddr, backendAddr := fmt.Sprintf("127.0.0.1:%d", shop), fmt.Sprintf("127.0.0.1:%d", backend)
	admin := fmt.Sprintf("127.0.0.1:%d", procFreePort(t))
	proxiedDemoBackend(t, dir, backendAddr, secret)
	config := proxiedDemoConfig(t, shopAddr, fmt.Sprintf("127.0.0.1:%d", sandbox), backendAddr, admin)
	procStart(t, dir, "caddy", config, "http://"+shopAddr+"/orders",
		func(status int, _ []byte) bool { return status == http.StatusOK }, notifySecretEnv+"="+secret)

	// The buyer's cart goes to the backend; Caddy answers with the payment.
	form := url.Values{"item": {"tea-green:2", "tea-black"}, "email": {"buyer@example.com"}}
	req, err := http.NewRequest("POST", "http://"+shopAddr+"/checkout", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var created procStatus
	procCallRequest(t, req, http.StatusCreated, &created)
	if created.OrderID == "" || created.State != "pending" || created.Amount != "990.00" || created.PaymentURL == "" {
		t.Fatalf("checkout through Caddy: %+v, want a pending order of 990.00 with a payment link", created)
	}
	var before proxiedDemoOrder
	procCall(t, "GET", "http://"+backendAddr+"/orders/BACKEND-1", nil, http.StatusOK, &before)
	if before.Total != "990.00" || before.Paid {
		t.Fatalf("the backend's order before payment: %+v, want 990.00 unpaid", before)
	}

	// The buyer pays on the sandbox's page and lands on the backend's
	// order page, through Caddy.
	req, err = http.NewRequest("POST", created.PaymentURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	var landed proxiedDemoOrder
	procCallRequest(t, req, http.StatusOK, &landed)
	if landed.ID != "BACKEND-1" {
		t.Fatalf("after paying the buyer landed on %+v, want BACKEND-1's page", landed)
	}

	// A browser's form post is sent on to the payment page.
	req, err = http.NewRequest("POST", "http://"+shopAddr+"/checkout", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if where := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(where, fmt.Sprintf("http://127.0.0.1:%d/pay/crystalpay/", sandbox)) {
		t.Errorf("a browser's checkout: status %d to %q, want 303 to the sandbox's payment page", resp.StatusCode, where)
	}

	procEventually(t, procRecoverWait, "the backend marks BACKEND-1 paid", func() (bool, string) {
		var o proxiedDemoOrder
		procCall(t, "GET", "http://"+backendAddr+"/orders/BACKEND-1", nil, http.StatusOK, &o)
		return o.Paid, fmt.Sprintf("%+v", o)
	})
	// CrystalPAY called Caddy back about the paid invoice, and Caddy, not
	// the backend behind it, took the callback.
	var callbacks struct {
		Calls []struct {
			URL    string `json:"url"`
			Status int    `json:"status"`
		} `json:"calls"`
	}
	procCall(t, "GET", fmt.Sprintf("http://127.0.0.1:%d/control/calls?api=crystalpay&op=callback", sandbox), nil, http.StatusOK, &callbacks)
	if c := callbacks.Calls; len(c) != 1 || c[0].Status != http.StatusOK || c[0].URL != "http://"+shopAddr+"/kassa/callback/main" {
		t.Errorf("callback deliveries: %+v, want one to http://%s/kassa/callback/main answered 200", c, shopAddr)
	}
	var after proxiedDemoOrder
	procCall(t, "GET", "http://"+backendAddr+"/orders/BACKEND-1", nil, http.StatusOK, &after)
	if after.KassaOrder != created.OrderID {
		t.Errorf("the backend's BACKEND-1 was paid as kassa order %q, want %q", after.KassaOrder, created.OrderID)
	}

	var found struct {
		ID          string `json:"id"`
		ShopOrderID string `json:"shop_order_id"`
		State       string `json:"state"`
	}
	procCall(t, "GET", "http://"+admin+"/kassa/orders?shop_order_id=BACKEND-1", nil, http.StatusOK, &found)
	if found.ID != created.OrderID || found.ShopOrderID != "BACKEND-1" || found.State != "paid" {
		t.Errorf("GET /kassa/orders?shop_order_id=BACKEND-1: %+v, want order %s paid", found, created.OrderID)
	}
}

// procCallRequest sends req, which must answer wantStatus with JSON, and
// decodes the reply into out.
func procCallRequest(t *testing.T, req *http.Request, wantStatus int, out any) {
	t.Helper()
	resp, err := procHTTP.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != wantStatus {
		t.Fatalf("%s %s: status %d, want %d: %s", req.Method, req.URL, resp.StatusCode, wantStatus, b.String())
	}
	if err := json.Unmarshal([]byte(b.String()), out); err != nil {
		t.Fatalf("%s %s: decoding %s: %v", req.Method, req.URL, b.String(), err)
	}
}
