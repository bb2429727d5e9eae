package sandbox

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// tryGet sends a GET that may fail (timeout, drop) and returns the error.
func (s *testSandbox) tryGet(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.srv.URL+path, nil)
	if err != nil {
		return err
	}
	// A fresh connection: net/http silently retries a GET whose reused
	// keep-alive connection is closed before an answer.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	return errors.Join(err, errors.New("answered "+resp.Status))
}

func TestFaultError500(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"crystalpay","op":"balance","mode":"error500","count":2}`)
	s.addFault(`{"api":"pegas","op":"*","mode":"error500","count":1,"message":"Сбой"}`)
	s.addFault(`{"api":"smartcashier","op":"formReceipt","mode":"error500","count":1}`)

	for range 2 {
		r := s.get(crystalPayURL("o", "balance"))
		if r.status != http.StatusInternalServerError || !strings.Contains(string(r.body), "<h1>500 Internal Server Error</h1>") {
			t.Fatalf("crystalpay: %d %s", r.status, r.body)
		}
	}
	wantJSON(t, s.get(crystalPayURL("o", "balance")), http.StatusOK, `{"balance":"0","auth":"ok"}`)

	// Faults come before auth.
	r := s.get("/pegas/api/v1/balance?token=wrong")
	e := wantPegasError(t, r, http.StatusInternalServerError, "internal_error", "")
	if e["message"] != "Сбой" || !strings.Contains(string(r.body), `\u0421`) {
		t.Errorf("pegas 500 %s: want the fault's message, PHP-escaped", r.body)
	}

	r = s.cashier("formReceipt", receipt("X1"))
	if m := r.object(t); r.status != http.StatusInternalServerError || m["status"] != 500.0 || m["title"] == nil {
		t.Fatalf("smartcashier: %d %s", r.status, r.body)
	}
	// The 500 created nothing: checkStatus does not know the operation, and
	// the retry is the first attempt.
	if status, _ := s.checkStatus("X1"); status != http.StatusNotFound {
		t.Errorf("checkStatus after a 500: %d, want 404", status)
	}
	wantJSON(t, s.cashier("formReceipt", receipt("X1")), http.StatusOK, `{"operationId":"X1"}`)
	if ops := s.state().SmartCashier.Operations; len(ops) != 1 || ops[0].Attempts != 1 {
		t.Errorf("operations %+v", ops)
	}
	statuses := []int{}
	for _, c := range s.calls("?api=smartcashier&op=formReceipt") {
		statuses = append(statuses, c.Status)
	}
	if len(statuses) != 2 || statuses[0] != 500 || statuses[1] != 200 {
		t.Errorf("journal statuses %v, want [500 200]", statuses)
	}
	var faults struct{ Faults []faultView }
	s.control(http.MethodGet, "faults", "", http.StatusOK, &faults)
	if len(faults.Faults) != 0 {
		t.Errorf("used-up faults still listed: %+v", faults.Faults)
	}
}

func TestFaultCountAndScope(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"pegas","op":"balance","mode":"forbidden"}`)
	for range 3 {
		wantPegasError(t, s.pegasGet("balance"), http.StatusForbidden, "access_denied", "")
	}
	// Other ops and other APIs are not affected.
	wantPegasError(t, s.pegasGet("deposit"), http.StatusBadRequest, "invalid_parameters", "amount")
	wantJSON(t, s.get(crystalPayURL("o", "balance")), http.StatusOK, `{"balance":"0","auth":"ok"}`)
	var cleared struct{ Cleared int }
	s.control(http.MethodDelete, "faults", "", http.StatusOK, &cleared)
	if cleared.Cleared != 1 {
		t.Errorf("cleared %d faults, want 1", cleared.Cleared)
	}
	wantJSON(t, s.pegasGet("balance"), http.StatusOK, `{"balance":0}`)
}

func TestFaultAuthForbiddenMalformedHTML(t *testing.T) {
	s := newTestSandbox(t, nil)
	for _, f := range []string{
		`{"api":"crystalpay","op":"*","mode":"auth","count":1}`,
		`{"api":"crystalpay","op":"*","mode":"forbidden","count":1}`,
		`{"api":"crystalpay","op":"*","mode":"malformed","count":1}`,
		`{"api":"crystalpay","op":"*","mode":"html","count":1}`,
		`{"api":"pegas","op":"*","mode":"auth","count":1}`,
		`{"api":"pegas","op":"*","mode":"forbidden","count":1}`,
		`{"api":"smartcashier","op":"*","mode":"auth","count":1}`,
		`{"api":"smartcashier","op":"*","mode":"forbidden","count":1}`,
		`{"api":"smartcashier","op":"*","mode":"malformed","count":1}`,
	} {
		s.addFault(f)
	}
	// The faults apply in the order they were added.
	wantJSON(t, s.get(crystalPayURL("o", "balance")), http.StatusOK, `{"auth":"error"}`)
	wantJSON(t, s.get(crystalPayURL("o", "balance")), http.StatusOK, `{"error":true,"error_message":"Access denied","auth":"ok"}`)
	r := s.get(crystalPayURL("o", "balance"))
	if r.status != http.StatusOK || r.header.Get("Content-Type") != "application/json" || string(r.body) != `{"id":"1_ab` {
		t.Errorf("malformed: %d %q %s", r.status, r.header.Get("Content-Type"), r.body)
	}
	r = s.get(crystalPayURL("o", "balance"))
	if r.status != http.StatusBadGateway || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") ||
		!strings.Contains(string(r.body), "<h1>502 Bad Gateway</h1>") {
		t.Errorf("html: %d %s", r.status, r.body)
	}
	wantPegasError(t, s.pegasGet("balance"), http.StatusUnauthorized, "authorization_error", "")
	wantPegasError(t, s.pegasGet("balance"), http.StatusForbidden, "access_denied", "")
	for _, want := range []int{http.StatusUnauthorized, http.StatusForbidden} {
		if r := s.cashier("formReceipt", receipt("F")); r.status != want || len(r.body) != 0 {
			t.Errorf("smartcashier: %d %q, want %d with an empty body", r.status, r.body, want)
		}
	}
	if r := s.cashier("formReceipt", receipt("F")); r.status != http.StatusOK || string(r.body) != `{"id":"1_ab` {
		t.Errorf("smartcashier malformed: %d %s", r.status, r.body)
	}
	if n := len(s.state().SmartCashier.Operations); n != 0 {
		t.Errorf("faulted calls created %d operations", n)
	}
	// The journal names the fault that answered each call, even a 200.
	var faults []string
	for _, c := range s.calls("?api=crystalpay") {
		faults = append(faults, c.Fault)
	}
	if strings.Join(faults, " ") != "auth forbidden malformed html" {
		t.Errorf("journal faults %q, want auth forbidden malformed html", faults)
	}
	wantJSON(t, s.get(crystalPayURL("o", "balance")), http.StatusOK, `{"balance":"0","auth":"ok"}`)
	if calls := s.calls("?api=crystalpay"); calls[len(calls)-1].Fault != "" {
		t.Errorf("a call the API answered is journaled with fault %q", calls[len(calls)-1].Fault)
	}
}

func TestFaultLatency(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"pegas","op":"*","mode":"latency","count":1,"latency":"150ms"}`)
	start := time.Now()
	wantJSON(t, s.pegasGet("balance"), http.StatusOK, `{"balance":0}`)
	if d := time.Since(start); d < 150*time.Millisecond {
		t.Errorf("answered after %v, want at least 150ms", d)
	}
	s.control(http.MethodPost, "settings", `{"latency":"100ms"}`, http.StatusOK, nil)
	start = time.Now()
	s.get(crystalPayURL("o", "balance"))
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("with latency 100ms answered after %v", d)
	}
}

func TestFaultTimeout(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"crystalpay","op":"generate","mode":"timeout","count":1}`)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := s.tryGet(ctx, crystalPayURL("o", "generate", "amount", "1")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout fault: %v, want the client's deadline", err)
	}
	calls := s.calls("?api=crystalpay")
	if len(calls) != 1 || calls[0].Status != 0 || calls[0].Query["amount"] != "1" {
		t.Errorf("journal %+v, want one call without a status", calls)
	}
	if n := len(s.state().CrystalPay.Invoices); n != 0 {
		t.Errorf("timed-out generate created %d invoices", n)
	}
}

func TestFaultTimeoutGivesUp(t *testing.T) {
	s := newTestSandbox(t, func(h *Handler) { h.holdFor = 20 * time.Millisecond })
	s.addFault(`{"api":"smartcashier","op":"checkStatus","mode":"timeout","count":1}`)
	err := s.tryGet(context.Background(), "/smartcashier/v1.0/operations/checkStatus?operationId=x")
	if err == nil || strings.Contains(err.Error(), "answered") {
		t.Fatalf("after the hold: %v, want the connection closed", err)
	}
}

func TestFaultDrop(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"pegas","op":"deposit","mode":"drop","count":1}`)
	err := s.tryGet(context.Background(), "/pegas/api/v1/deposit?token=sandbox-token")
	if err == nil || strings.Contains(err.Error(), "answered") {
		t.Fatalf("drop: %v, want the connection closed", err)
	}
	if calls := s.calls("?api=pegas&op=deposit"); len(calls) != 1 || calls[0].Status != 0 {
		t.Errorf("journal %+v", calls)
	}
	wantPegasError(t, s.pegasGet("deposit"), http.StatusBadRequest, "invalid_parameters", "amount")
}

func TestFaultNotProcessedMessage(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"smartcashier","op":"depositCash","mode":"notprocessed","count":1,"message":"Нет бумаги."}`)
	// A refused call does not use the fault up.
	if r := s.cashier("depositCash", `{"cashboxId":"bad","amount":1,"operationId":"N1"}`); r.status != http.StatusBadRequest {
		t.Fatalf("bad deposit: %d", r.status)
	}
	s.cashier("depositCash", `{"cashboxId":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad","amount":1,"operationId":"N1"}`)
	s.cashier("depositCash", `{"cashboxId":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad","amount":1,"operationId":"N2"}`)
	s.clock.Advance(time.Second)
	if _, m := s.checkStatus("N1"); m["status"] != 3.0 || m["errorMessage"] != "Нет бумаги." {
		t.Errorf("N1 %v", m)
	}
	if _, m := s.checkStatus("N2"); m["status"] != 2.0 {
		t.Errorf("N2 %v", m)
	}
}

func TestFaultValidation(t *testing.T) {
	s := newTestSandbox(t, nil)
	for _, body := range []string{
		`{"api":"yookassa","op":"*","mode":"error500"}`,
		`{"api":"pegas","op":"refund","mode":"error500"}`,
		`{"api":"pegas","op":"*","mode":"explode"}`,
		`{"api":"pegas","op":"deposit","mode":"notprocessed"}`,
		`{"api":"smartcashier","op":"checkStatus","mode":"notprocessed"}`,
		`{"api":"pegas","op":"*","mode":"error500","count":-1}`,
		`{"api":"pegas","op":"*","mode":"latency"}`,
		`{"api":"pegas","op":"*","mode":"latency","latency":"soon"}`,
		`{"api":"pegas","op":"*","mode":"error500","colour":"red"}`,
		`not json`,
		``,
	} {
		var e struct{ Error string }
		s.control(http.MethodPost, "faults", body, http.StatusBadRequest, &e)
		if e.Error == "" {
			t.Errorf("%s: no error message", body)
		}
	}
}
