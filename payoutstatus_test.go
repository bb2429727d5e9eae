package kassa

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// adminCall calls the app's admin API without a body, as the admin
// endpoint does.
func adminCall(a *App, method, path string) *httptest.ResponseRecorder {
	r := httptest.NewRequestWithContext(context.Background(), method, path, nil)
	w := httptest.NewRecorder()
	if err := a.serveAdmin(w, r); err != nil {
		writeAdminError(w, err)
	}
	return w
}

// TestAdminPayoutStatus: GET /kassa/payouts/{id} asks the account's
// provider where a payout stands; payment may be left out when one account
// tracks payouts. An account that cannot, an unknown id, a provider down
// and a malformed id each get their own answer, and a malformed id is
// refused before any call. Before: the route did not exist (404).
func TestAdminPayoutStatus(t *testing.T) {
	payer, storage := newStepPayer(), newPayoutStorage()
	a := stepApp(payer, storage, stepClock(), zap.NewNop())
	if w := attemptPayout(a, "key-1", stepPayoutBody); w.Code != http.StatusOK {
		t.Fatalf("payout: %d %s", w.Code, w.Body)
	}

	// The second time the fake is asked it reports the payout paid: the
	// answer is the provider's word now, not a record's.
	for _, tc := range []struct{ path, want string }{
		{"/kassa/payouts/777_po0001?payment=v3", `{"payment":"v3","id":"777_po0001","state":"processing","commission":"1.50"}` + "\n"},
		{"/kassa/payouts/777_po0001", `{"payment":"v3","id":"777_po0001","state":"paid","commission":"1.50"}` + "\n"},
	} {
		if w := adminGet(t, a, tc.path); w.Code != http.StatusOK || w.Body.String() != tc.want {
			t.Errorf("GET %s: %d %s, want %s", tc.path, w.Code, w.Body, tc.want)
		}
	}
	statusCalls := payer.count("status")

	for _, tc := range []struct {
		name, method, path, code string
		status                   int
	}{
		{"one-step account", "GET", "/kassa/payouts/777_po0001?payment=card", "payouts_not_tracked", http.StatusBadRequest},
		{"unknown account", "GET", "/kassa/payouts/777_po0001?payment=nope", "bad_payment", http.StatusBadRequest},
		{"empty account", "GET", "/kassa/payouts/777_po0001?payment=", "bad_payment", http.StatusBadRequest},
		{"two accounts", "GET", "/kassa/payouts/777_po0001?payment=v3&payment=card", "bad_payment", http.StatusBadRequest},
		{"id too long", "GET", "/kassa/payouts/" + strings.Repeat("7", maxPayoutToken+1), "bad_payout_id", http.StatusBadRequest},
		{"id with a quote", "GET", "/kassa/payouts/777%22po", "bad_payout_id", http.StatusBadRequest},
		{"id with a space", "GET", "/kassa/payouts/777%20po", "bad_payout_id", http.StatusBadRequest},
		{"post", "POST", "/kassa/payouts/777_po0001", "method_not_allowed", http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := adminCall(a, tc.method, tc.path)
			if w.Code != tc.status || errorCode(t, w) != tc.code {
				t.Errorf("%d %s, want %d %s", w.Code, w.Body, tc.status, tc.code)
			}
		})
	}
	if n := payer.count("status"); n != statusCalls {
		t.Errorf("%d status calls for refused requests", n-statusCalls)
	}

	if w := adminGet(t, a, "/kassa/payouts/777_po0404"); w.Code != http.StatusNotFound || errorCode(t, w) != "unknown_payout" {
		t.Errorf("unknown id: %d %s", w.Code, w.Body)
	}
	payer.queue("status", faultDown)
	w := adminGet(t, a, "/kassa/payouts/777_po0001")
	if w.Code != http.StatusServiceUnavailable || errorCode(t, w) != "provider_unavailable" || w.Header().Get("Retry-After") == "" ||
		strings.Contains(w.Body.String(), stepSecret) {
		t.Errorf("provider down: %d %s %v", w.Code, w.Body, w.Header())
	}

	// With two accounts that track payouts, payment must say which.
	a.accounts["v3b"] = &account{name: "v3b", provider: "crystalpay", PaymentProvider: newStepPayer()}
	if w := adminGet(t, a, "/kassa/payouts/777_po0001"); w.Code != http.StatusBadRequest || errorCode(t, w) != "bad_payment" ||
		!strings.Contains(w.Body.String(), "v3, v3b") {
		t.Errorf("two tracking accounts: %d %s", w.Code, w.Body)
	}
	// With none, the route says payouts are not tracked.
	delete(a.accounts, "v3")
	delete(a.accounts, "v3b")
	if w := adminGet(t, a, "/kassa/payouts/777_po0001"); w.Code != http.StatusBadRequest || errorCode(t, w) != "payouts_not_tracked" {
		t.Errorf("no tracking account: %d %s", w.Code, w.Body)
	}
}
