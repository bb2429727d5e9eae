package caddytest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// receiptsConfig adds Smart Cashier, kassa_receipt and a till route to the
// shop.
func receiptsShop(t *testing.T, smartCashierOptions string) {
	t.Helper()
	shopWith(t, storageDir(t),
		"poll_interval 100ms", "poll_interval 100ms\n\t\treceipts smartcashier {\n\t\t\ttoken sandbox-token\n"+
			"\t\t\tendpoint http://localhost:9181/smartcashier/v1.0\n\t\t\ttaxation usn_income\n\t\t\tvat none\n"+
			"\t\t\ttimeout 1s\n"+smartCashierOptions+"\t\t}",
		"\troute /card {", "\tkassa_receipt /receipt {\n\t\tshop \"Чайная лавка\"\n\t}\n\troute /till {\n\t\tkassa_receipt {\n\t\t\tissue\n\t\t}\n\t}\n\troute /card {")
	sandboxControl(t, http.MethodPost, "reset", nil, nil)
}

// sentReceipt is a formReceipt body as the sandbox received it.
type sentReceipt struct {
	OperationID string `json:"operationId"`
	ReceiptType int    `json:"receiptType"`
	Taxation    int    `json:"taxationSystem"`
	Email       string `json:"buyerEmail"`
	Phone       string `json:"buyerPhoneNumber"`
	Cash        json.Number
	Cashless    json.Number `json:"cashlessPaymentSum"`
	Total       json.Number `json:"totalSum"`
	Positions   []struct {
		Name     string      `json:"name"`
		Quantity int         `json:"quantity"`
		Price    json.Number `json:"price"`
		TaxType  int         `json:"taxType"`
	} `json:"positions"`
}

// sentReceipts lists the formReceipt calls the sandbox received.
func sentReceipts(t *testing.T) (bodies []sentReceipt, statuses []int) {
	t.Helper()
	var j struct {
		Calls []struct {
			Body   json.RawMessage `json:"body"`
			Status int             `json:"status"`
		} `json:"calls"`
	}
	sandboxControl(t, http.MethodGet, "calls?api=smartcashier&op=formReceipt", nil, &j)
	for _, c := range j.Calls {
		var r sentReceipt
		json.Unmarshal(c.Body, &r)
		bodies, statuses = append(bodies, r), append(statuses, c.Status)
	}
	return bodies, statuses
}

// operationCount is how many operations the sandbox's Smart Cashier holds.
func operationCount(t *testing.T) int {
	t.Helper()
	var state struct {
		SmartCashier struct {
			Operations []json.RawMessage `json:"operations"`
		} `json:"smartcashier"`
	}
	sandboxControl(t, http.MethodGet, "state", nil, &state)
	return len(state.SmartCashier.Operations)
}

// buyAndPay checks out body at path, pays it in the sandbox, and returns
// the order id.
func buyAndPay(t *testing.T, path, body string) string {
	t.Helper()
	v := postJSON(t, path, body).json(t)
	id, _ := v["order_id"].(string)
	if id == "" {
		t.Fatalf("checkout: %v", v)
	}
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": id}, nil)
	return id
}

func receiptOf(t *testing.T, id string) map[string]any {
	t.Helper()
	r := send(t, http.MethodGet, shopURL+"/receipt?order="+id, "", "", "Accept", "application/json")
	if r.status != 200 {
		t.Fatalf("receipt of %s: %d %s", id, r.status, r.body)
	}
	return r.json(t)
}

// TestPaidOrderGetsOneReceipt: a paid order gets exactly one receipt with
// its lines, sums, VAT codes, taxation and contacts, checked field by field
// against what Smart Cashier received.
func TestPaidOrderGetsOneReceipt(t *testing.T) {
	receiptsShop(t, "")
	id := buyAndPay(t, "/card", `{"items":[{"sku":"tea","qty":2},{"sku":"candy","qty":3}],"email":"buyer@example.com","phone":"+79991234567"}`)
	waitFor(t, "the receipt", func() bool { return receiptOf(t, id)["state"] == "done" })

	bodies, _ := sentReceipts(t)
	if len(bodies) != 1 {
		t.Fatalf("%d formReceipt calls, want 1", len(bodies))
	}
	got := bodies[0]
	if got.OperationID != "kassa-"+id+"-sale" || got.ReceiptType != 1 || got.Taxation != 2 || got.Email != "buyer@example.com" ||
		got.Phone != "+79991234567" || got.Cashless.String() != "999.97" || got.Total.String() != "999.97" {
		t.Errorf("receipt sent = %+v", got)
	}
	want := []struct {
		name    string
		qty     int
		price   string
		taxType int
	}{{"Зелёный чай", 2, "350", 3}, {"Конфета", 3, "99.99", 4}}
	if len(got.Positions) != 2 {
		t.Fatalf("positions = %+v", got.Positions)
	}
	for i, w := range want {
		p := got.Positions[i]
		if p.Name != w.name || p.Quantity != w.qty || p.Price.String() != w.price || p.TaxType != w.taxType {
			t.Errorf("position %d = %+v, want %+v", i, p, w)
		}
	}
	r := receiptOf(t, id)
	fiscal, _ := r["fiscal"].(map[string]any)
	if fiscal["fiscalDocumentSign"] == nil || fiscal["fnNumber"] == nil {
		t.Errorf("receipt = %v", r)
	}
	if st := orderStatus(t, id)["receipt"].(map[string]any); st["state"] != "done" {
		t.Errorf("status shows the receipt as %v", st)
	}
	// Later passes print nothing more.
	for range 3 {
		orderStatus(t, id)
	}
	if bodies, _ := sentReceipts(t); len(bodies) != 1 || operationCount(t) != 1 {
		t.Errorf("%d formReceipt calls and %d operations after more passes, want 1 and 1", len(bodies), operationCount(t))
	}

	// The printable page.
	page := send(t, http.MethodGet, shopURL+"/receipt?order="+id, "", "", "Accept", "text/html")
	for _, want := range []string{"Чайная лавка", "999.97", fiscal["fiscalDocumentSign"].(string), "<svg", "НДС 20%", "116.67", "Без НДС"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("receipt page lacks %q", want)
		}
	}
}

// TestReceiptSurvivesFailures: Smart Cashier answers 500 twice and times
// out once, then succeeds: one receipt, one operationId on every try.
func TestReceiptSurvivesFailures(t *testing.T) {
	receiptsShop(t, "")
	fault(t, "smartcashier", "formReceipt", "error500", 2)
	fault(t, "smartcashier", "formReceipt", "timeout", 1)
	id := buyAndPay(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	waitFor(t, "the receipt", func() bool { return receiptOf(t, id)["state"] == "done" })
	bodies, statuses := sentReceipts(t)
	if len(bodies) != 4 || statuses[0] != 500 || statuses[1] != 500 || statuses[2] != 0 || statuses[3] != 200 {
		t.Fatalf("formReceipt calls: %d with statuses %v, want 500 500 (timeout) 200", len(bodies), statuses)
	}
	for _, b := range bodies {
		if b.OperationID != "kassa-"+id+"-sale" {
			t.Errorf("operationId %q", b.OperationID)
		}
	}
	if n := operationCount(t); n != 1 {
		t.Errorf("%d receipts printed, want 1", n)
	}
}

// TestReceiptNotProcessed: the till fails the receipt; the buyer reads a
// generic sentence, the admin API the till's error.
func TestReceiptNotProcessed(t *testing.T) {
	receiptsShop(t, "")
	sandboxControl(t, http.MethodPost, "faults", map[string]any{"api": "smartcashier", "op": "formReceipt",
		"mode": "notprocessed", "count": 1, "message": "Открыта крышка."}, nil)
	id := buyAndPay(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)
	waitFor(t, "the receipt to fail", func() bool { return receiptOf(t, id)["state"] == "failed" })
	if r := receiptOf(t, id); r["error"] != "the receipt could not be issued yet; the shop has been told" {
		t.Errorf("receipt = %v", r)
	}
	if r := adminCall(t, http.MethodGet, "orders/"+id, ""); r.status != http.StatusOK || !strings.Contains(r.body, "Открыта крышка.") {
		t.Errorf("admin API: %d %s", r.status, r.body)
	}
}

// TestTill: a trusted caller issues the vendor document's example receipt;
// one off by a kopeck is refused before anything is sent.
func TestTill(t *testing.T) {
	receiptsShop(t, "")
	seed := `{"operation_id":"till-12854F","type":"sale","items":[{"name":"Молоко коровье","qty":3,"price":"70","vat":"vat20"},` +
		`{"name":"Хлеб ржаной","qty":2,"price":"30","vat":"vat20"}],"cash":"200","cashless":"70","email":"customer@example.com"}`
	r := send(t, http.MethodPost, shopURL+"/till", "application/json", seed)
	if r.status != http.StatusAccepted || r.json(t)["operation_id"] != "till-12854F" || r.json(t)["state"] != "queued" {
		t.Fatalf("%d %s", r.status, r.body)
	}
	op := send(t, http.MethodGet, shopURL+"/till?operation=till-12854F", "", "")
	if op.status != 200 || op.json(t)["state"] != "done" {
		t.Errorf("operation: %d %s", op.status, op.body)
	}
	before := len(providerCalls(t, "smartcashier", "formReceipt"))
	for name, body := range map[string]string{
		"a kopeck off":     strings.Replace(seed, `"cashless":"70"`, `"cashless":"70.01"`, 1),
		"no positions":     `{"operation_id":"till-x","items":[],"cashless":"0"}`,
		"quantity 0":       strings.Replace(seed, `"qty":3`, `"qty":0`, 1),
		"negative price":   strings.Replace(seed, `"price":"70"`, `"price":"-70"`, 1),
		"129-char name":    strings.Replace(seed, "Молоко коровье", strings.Repeat("я", 129), 1),
		"unknown VAT":      strings.Replace(seed, `"vat":"vat20"`, `"vat":"vat21"`, 1),
		"unknown taxation": strings.Replace(seed, `"type":"sale"`, `"type":"sale","taxation":"usn"`, 1),
		"exponent price":   strings.Replace(seed, `"price":"70"`, `"price":"7e1"`, 1),
		"unknown field":    strings.Replace(seed, `"type":"sale"`, `"type":"sale","discount":"10"`, 1),
		"order namespace":  strings.Replace(seed, "till-12854F", "kassa-abc-sale", 1),
	} {
		r := send(t, http.MethodPost, shopURL+"/till", "application/json", body)
		if r.status != 400 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if after := len(providerCalls(t, "smartcashier", "formReceipt")); after != before {
		t.Errorf("refused receipts made %d provider calls", after-before)
	}
	if r := send(t, http.MethodPost, shopURL+"/receipt", "application/json", seed); r.status != http.StatusMethodNotAllowed {
		t.Errorf("POST without issue: %d", r.status)
	}
	if r := send(t, http.MethodGet, shopURL+"/till?operation=nope", "", ""); r.status != 404 {
		t.Errorf("unknown operation: %d %s", r.status, r.body)
	}
}

// TestReceiptOfUnpaidOrder: an unpaid order has no receipt yet, and no
// payment document (409 order_not_paid).
func TestReceiptOfUnpaidOrder(t *testing.T) {
	receiptsShop(t, "")
	v := postJSON(t, "/card", `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`).json(t)
	id := v["order_id"].(string)
	if r := receiptOf(t, id); r["state"] != "none" {
		t.Errorf("receipt = %v", r)
	}
	if r := send(t, http.MethodGet, shopURL+"/receipt?order="+id+"&format=pdf", "", ""); r.status != http.StatusConflict || r.errorCode(t) != "order_not_paid" {
		t.Errorf("document of an unpaid order: %d %s; want 409 order_not_paid", r.status, r.body)
	}
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": id}, nil)
	waitFor(t, "the order to be paid", func() bool { return orderStatus(t, id)["state"] == "paid" })
	for format, contentType := range map[string]string{"pdf": "application/pdf", "jpeg": "image/jpeg"} {
		r := send(t, http.MethodGet, shopURL+"/receipt?order="+id+"&format="+format, "", "")
		if r.status != 200 || r.header.Get("Content-Type") != contentType || len(r.body) < 100 {
			t.Errorf("%s: %d %s, %d bytes", format, r.status, r.header.Get("Content-Type"), len(r.body))
		}
	}
}

// TestProxiedOrderReceipt: a proxied order's receipt has the items the
// trusted upstream supplied.
func TestProxiedOrderReceipt(t *testing.T) {
	receiptsShop(t, "")
	v := postJSON(t, "/proxied", `{}`).json(t)
	id := v["order_id"].(string)
	sandboxControl(t, http.MethodPost, "pay", map[string]string{"api": "pegas", "order_id": id}, nil)
	waitFor(t, "the receipt", func() bool { return receiptOf(t, id)["state"] == "done" })
	bodies, _ := sentReceipts(t)
	if len(bodies) != 1 || len(bodies[0].Positions) != 1 {
		t.Fatalf("receipts = %+v", bodies)
	}
	p := bodies[0].Positions[0]
	if p.Name != "Заказ 42" || p.Quantity != 2 || p.Price.String() != "250" || p.TaxType != 3 || bodies[0].Total.String() != "500" {
		t.Errorf("receipt = %+v", bodies[0])
	}
}
