package sandbox

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

const bearer = "Bearer " + DefaultSmartCashierToken

// seedReceipt is the request of the Smart Cashier document.
const seedReceipt = `{
  "operationId": "12854F",
  "receiptType": 1,
  "printReceipt": true,
  "taxationSystem": 2,
  "buyerEmail": "customer@example.com",
  "buyerPhoneNumber": "",
  "positions": [
    {"name": "Молоко коровье", "quantity": 3, "price": 70, "taxType": 3},
    {"name": "Хлеб ржаной", "quantity": 2, "price": 30, "taxType": 3}
  ],
  "cashPaymentSum": 200,
  "cashlessPaymentSum": 70,
  "totalSum": 270,
  "juridicalPersonId": "",
  "cashboxGroupId": "",
  "cashboxId": "da2bb850-63ef-47e4-8b45-7b5b841eaa9b"
}`

var cashTimePattern = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}\+03:00$`)

// receipt is a valid receipt body with one position.
func receipt(operationID string) string {
	return `{"operationId":"` + operationID + `","receiptType":1,"printReceipt":false,"taxationSystem":1,` +
		`"cashPaymentSum":0,"cashlessPaymentSum":99.9,"totalSum":99.9,` +
		`"positions":[{"name":"Чай","quantity":1,"price":99.9,"taxType":4}]}`
}

func (s *testSandbox) cashier(op, body string) reply {
	s.t.Helper()
	return s.postJSON("/smartcashier/v1.0/operations/"+op, body, "Authorization", bearer)
}

func (s *testSandbox) checkStatus(id string) (int, map[string]any) {
	s.t.Helper()
	r := s.get("/smartcashier/v1.0/operations/checkStatus?operationId="+id, "Authorization", bearer)
	if r.status != http.StatusOK {
		return r.status, nil
	}
	return r.status, r.object(s.t)
}

func TestSmartCashierAuth(t *testing.T) {
	s := newTestSandbox(t, nil)
	for name, auth := range map[string]string{
		"none": "", "wrong token": "Bearer nope", "basic": "Basic c2FuZGJveA==", "no scheme": DefaultSmartCashierToken,
	} {
		t.Run(name, func(t *testing.T) {
			r := s.postJSON("/smartcashier/v1.0/operations/formReceipt", seedReceipt, "Authorization", auth)
			if r.status != http.StatusUnauthorized || len(r.body) != 0 || r.header.Get("WWW-Authenticate") == "" {
				t.Errorf("%d %q, want 401 with an empty body", r.status, r.body)
			}
		})
	}
	r := s.get("/smartcashier/v1.0/operations/checkStatus?operationId=x", "Authorization", "bearer "+DefaultSmartCashierToken)
	if r.status != http.StatusNotFound {
		t.Errorf("lower-case bearer scheme: %d", r.status)
	}
	if n := len(s.state().SmartCashier.Operations); n != 0 {
		t.Errorf("%d operations created without auth", n)
	}
}

func TestSmartCashierReceiptLifecycle(t *testing.T) {
	s := newTestSandbox(t, nil)
	wantJSON(t, s.cashier("formReceipt", seedReceipt), http.StatusOK, `{"operationId":"12854F"}`)

	status, m := s.checkStatus("12854F")
	if status != http.StatusOK {
		t.Fatalf("checkStatus %d", status)
	}
	created, _ := m["creationDateTimeUtc"].(string)
	if !cashTimePattern.MatchString(created) {
		t.Errorf("creationDateTimeUtc %q is not like 2019-05-01T17:29:59.6282936+03:00", created)
	}
	m["creationDateTimeUtc"] = "T"
	want := map[string]any{"status": 1.0, "creationDateTimeUtc": "T", "handlerCashboxId": nil,
		"processingDateTimeUtc": nil, "fiscalParams": nil, "errorMessage": nil}
	if g, w := mustJSON(m), mustJSON(want); g != w {
		t.Errorf("queued: %s, want %s", g, w)
	}

	s.clock.Advance(999 * time.Millisecond)
	if _, m := s.checkStatus("12854F"); m["status"] != 1.0 {
		t.Fatalf("processed before receipt_delay: %v", m)
	}
	s.clock.Advance(time.Millisecond)
	_, m = s.checkStatus("12854F")
	if m["status"] != 2.0 || m["handlerCashboxId"] != "da2bb850-63ef-47e4-8b45-7b5b841eaa9b" || m["errorMessage"] != nil {
		t.Fatalf("after receipt_delay: %v", m)
	}
	if p, _ := m["processingDateTimeUtc"].(string); !cashTimePattern.MatchString(p) || p <= created {
		t.Errorf("processingDateTimeUtc %q", p)
	}
	f, _ := m["fiscalParams"].(map[string]any)
	checks := map[string]string{
		"fiscalDocumentSign": `^\d{10}$`, "fnNumber": `^\d{16}$`, "registrationNumber": `^\d{16}$`,
		"fnsUrl": `^www\.nalog\.gov\.ru$`, "fiscalDocumentDateTimeUtc": cashTimePattern.String(),
	}
	for k, re := range checks {
		if v, _ := f[k].(string); !regexp.MustCompile(re).MatchString(v) {
			t.Errorf("fiscalParams.%s = %v", k, f[k])
		}
	}
	if f["fiscalDocumentNumber"] != 1.0 || f["fiscalReceiptNumber"] != 1.0 || f["shiftNumber"] != 1.0 || f["notPrinted"] != false {
		t.Errorf("fiscalParams %v", f)
	}

	// The next receipt counts up; its cashbox is the sandbox's own.
	s.cashier("formReceipt", receipt("second"))
	s.clock.Advance(time.Second)
	_, m = s.checkStatus("second")
	f, _ = m["fiscalParams"].(map[string]any)
	if f["fiscalDocumentNumber"] != 2.0 || f["fiscalReceiptNumber"] != 2.0 || m["handlerCashboxId"] != sandboxCashboxID {
		t.Errorf("second receipt %v", m)
	}
	// A sale paid in cash put 200 in the till.
	if cash := s.state().SmartCashier.Cash["da2bb850-63ef-47e4-8b45-7b5b841eaa9b"]; cash != "200.00" {
		t.Errorf("cash %q, want 200.00", cash)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSmartCashierIdempotent(t *testing.T) {
	s := newTestSandbox(t, func(h *Handler) { h.ReceiptDelay = new(caddy.Duration) })
	for range 3 {
		wantJSON(t, s.cashier("formReceipt", seedReceipt), http.StatusOK, `{"operationId":"12854F"}`)
	}
	// The same id for a cash operation is the same operation too.
	wantJSON(t, s.cashier("depositCash", `{"cashboxId":"c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad","amount":5,"operationId":"12854F"}`),
		http.StatusOK, `{"operationId":"12854F"}`)
	st := s.state()
	if len(st.SmartCashier.Operations) != 1 || st.SmartCashier.Operations[0].Attempts != 1 {
		t.Fatalf("operations %+v, want one", st.SmartCashier.Operations)
	}
	if _, m := s.checkStatus("12854F"); m["fiscalParams"].(map[string]any)["fiscalDocumentNumber"] != 1.0 {
		t.Errorf("receipt printed more than once: %v", m)
	}
	var req map[string]any
	if err := json.Unmarshal(st.SmartCashier.Operations[0].Request, &req); err != nil || req["totalSum"] != 270.0 {
		t.Errorf("state does not carry the request as received: %s", st.SmartCashier.Operations[0].Request)
	}
	if n := len(s.calls("?api=smartcashier&op=formReceipt")); n != 3 {
		t.Errorf("journal has %d formReceipt calls, want 3", n)
	}
}

// TestSmartCashierFailedStaysFailed: as the seed says, a repeated
// operationId returns the first result and processes nothing: an
// operation the till failed (status 3) stays failed, however often it is
// sent again, and a new operationId prints. Before: the sandbox queued a
// failed operation again, which hid a client that could never re-print a
// receipt on the real service.
func TestSmartCashierFailedStaysFailed(t *testing.T) {
	s := newTestSandbox(t, nil)
	s.addFault(`{"api":"smartcashier","op":"formReceipt","mode":"notprocessed","count":1}`)
	wantJSON(t, s.cashier("formReceipt", receipt("R1")), http.StatusOK, `{"operationId":"R1"}`)
	s.clock.Advance(time.Second)
	_, m := s.checkStatus("R1")
	if m["status"] != 3.0 || m["errorMessage"] != "Открыта крышка." || m["handlerCashboxId"] != sandboxCashboxID ||
		m["processingDateTimeUtc"] != nil || m["fiscalParams"] != nil {
		t.Fatalf("failed operation %v", m)
	}
	for range 2 {
		wantJSON(t, s.cashier("formReceipt", receipt("R1")), http.StatusOK, `{"operationId":"R1"}`)
		s.clock.Advance(time.Second)
		if _, m := s.checkStatus("R1"); m["status"] != 3.0 || m["errorMessage"] != "Открыта крышка." {
			t.Fatalf("a failed operation sent again is %v, want still failed", m)
		}
	}
	wantJSON(t, s.cashier("formReceipt", receipt("R1-2")), http.StatusOK, `{"operationId":"R1-2"}`)
	s.clock.Advance(time.Second)
	if _, m := s.checkStatus("R1-2"); m["status"] != 2.0 || m["fiscalParams"] == nil {
		t.Fatalf("the operation under a new id %v, want processed", m)
	}
	if ops := s.state().SmartCashier.Operations; len(ops) != 2 || ops[0].Attempts != 1 || ops[1].Attempts != 1 {
		t.Errorf("operations %+v, want two, each queued once", ops)
	}
}

func TestSmartCashierCash(t *testing.T) {
	s := newTestSandbox(t, func(h *Handler) { h.ReceiptDelay = new(caddy.Duration) })
	const box = "c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad"
	cash := func(op, id, amount string) {
		t.Helper()
		wantJSON(t, s.cashier(op, `{"cashboxId":"`+box+`","amount":`+amount+`,"operationId":"`+id+`"}`),
			http.StatusOK, `{"operationId":"`+id+`"}`)
	}
	cash("depositCash", "D1", "500")
	cash("withdrawCash", "W1", "600.5")
	cash("withdrawCash", "W2", "200.25")
	if _, m := s.checkStatus("D1"); m["status"] != 2.0 || m["handlerCashboxId"] != box || m["processingDateTimeUtc"] == nil {
		t.Errorf("deposit %v", m)
	}
	if _, m := s.checkStatus("W1"); m["status"] != 3.0 || m["errorMessage"] != "Недостаточно наличных в кассе" {
		t.Errorf("withdrawal above the cash %v", m)
	}
	if _, m := s.checkStatus("W2"); m["status"] != 2.0 {
		t.Errorf("withdrawal %v", m)
	}
	if got := s.state().SmartCashier.Cash[box]; got != "299.75" {
		t.Errorf("cash %s, want 299.75", got)
	}
}

func TestSmartCashierRoutes(t *testing.T) {
	s := newTestSandbox(t, nil)
	wantJSON(t, s.get("/smartcashier/v1.0/operations/checkStatus?operationId=nope", "Authorization", bearer),
		http.StatusNotFound, `{"type":"https://tools.ietf.org/html/rfc7231#section-6.5.4","title":"Not Found","status":404}`)
	r := s.get("/smartcashier/v1.0/operations/checkStatus", "Authorization", bearer)
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `"operationId"`) {
		t.Errorf("checkStatus without operationId: %d %s", r.status, r.body)
	}
	r = s.get("/smartcashier/v1.0/operations/formReceipt", "Authorization", bearer)
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != http.MethodPost {
		t.Errorf("GET formReceipt: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	if r := s.get("/smartcashier/v1.0/operations/refund", "Authorization", bearer); r.status != http.StatusNotFound {
		t.Errorf("unknown operation: %d", r.status)
	}
	ops := []string{}
	for _, c := range s.calls("?api=smartcashier") {
		ops = append(ops, c.Op+" "+c.Method)
	}
	if want := []string{"checkStatus GET", "checkStatus GET", "formReceipt GET"}; !slices.Equal(ops, want) {
		t.Errorf("journal %v, want %v", ops, want)
	}
}
