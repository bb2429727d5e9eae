package sandbox

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// v3 calls a v3 operation with the default credentials and the JSON
// fields given as a literal fragment, and returns the decoded reply.
func (s *testSandbox) v3(op, fields string) map[string]any {
	s.t.Helper()
	body := `{"auth_login":"sandbox","auth_secret":"sandbox-secret"`
	if fields != "" {
		body += "," + fields
	}
	r := s.postJSON("/crystalpay/v3/"+op+"/", body+"}")
	if r.status != http.StatusOK {
		s.t.Fatalf("%s: status %d: %s", op, r.status, r.body)
	}
	return r.object(s.t)
}

// wantV3OK fails unless m is a successful v3 reply.
func wantV3OK(t *testing.T, m map[string]any) {
	t.Helper()
	if errs, ok := m["errors"].([]any); m["error"] != false || !ok || len(errs) != 0 {
		t.Fatalf("reply %v, want error:false, errors:[]", m)
	}
}

// wantV3Error fails unless m is a v3 error envelope with a message that
// contains want.
func wantV3Error(t *testing.T, m map[string]any, want string) {
	t.Helper()
	errs, _ := m["errors"].([]any)
	if m["error"] != true || len(errs) == 0 {
		t.Fatalf("reply %v, want an error envelope", m)
	}
	for _, e := range errs {
		if s, _ := e.(string); strings.Contains(s, want) {
			return
		}
	}
	t.Fatalf("errors %v: none contains %q", errs, want)
}

// createV3Invoice creates an invoice from the literal fields and returns
// its id.
func (s *testSandbox) createV3Invoice(fields string) string {
	s.t.Helper()
	m := s.v3("invoice/create", fields)
	wantV3OK(s.t, m)
	return m["id"].(string)
}

func TestCrystalPayV3Routes(t *testing.T) {
	s := newTestSandbox(t, nil)
	auth := `{"auth_login":"sandbox","auth_secret":"sandbox-secret"}`

	if r := s.do(http.MethodGet, "/crystalpay/v3/me/info/", ""); r.status != http.StatusMethodNotAllowed ||
		r.header.Get("Allow") != "POST" {
		t.Errorf("GET: %d, Allow %q", r.status, r.header.Get("Allow"))
	}
	for _, path := range []string{"/crystalpay/v3/me/info", "/crystalpay/v3/me/", "/crystalpay/v3/me/info/x/", "/crystalpay/v3//info/"} {
		if r := s.postJSON(path, auth); r.status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.status)
		}
	}
	r := s.postJSON("/crystalpay/v3/invoice/refund/", auth)
	wantV3Error(t, r.object(t), "Unknown method")
	if r.status != http.StatusOK {
		t.Errorf("unknown action answered %d, want 200", r.status)
	}
	wantV3Error(t, s.do(http.MethodPost, "/crystalpay/v3/me/info/", auth, "Content-Type", "text/plain").object(t), "Content-Type")
	for _, body := range []string{`[]`, `"x"`, `{"auth_login":"sandbox"} {}`, `{`} {
		wantV3Error(t, s.postJSON("/crystalpay/v3/me/info/", body).object(t), "JSON object")
	}
	for name, body := range map[string]string{
		"no secret":    `{"auth_login":"sandbox"}`,
		"no login":     `{"auth_secret":"sandbox-secret"}`,
		"null secret":  `{"auth_login":"sandbox","auth_secret":null}`,
		"wrong secret": `{"auth_login":"sandbox","auth_secret":"nope"}`,
		"wrong login":  `{"auth_login":"nope","auth_secret":"sandbox-secret"}`,
		"number login": `{"auth_login":1,"auth_secret":"sandbox-secret"}`,
	} {
		r := s.postJSON("/crystalpay/v3/me/info/", body)
		m := r.object(t)
		if r.status != http.StatusOK || m["error"] != true || len(m) != 2 {
			t.Errorf("%s: %d %s, want only an error envelope", name, r.status, r.body)
		}
	}
	wantV3Error(t, s.postJSON("/crystalpay/v3/me/info/", `{"auth_login":"sandbox"}`).object(t), "`auth_secret` field is required")
	if r := s.postJSON("/crystalpay/v3/me/info/", `{"auth_login":"sandbox","auth_secret":"sandbox-secreT"}`); strings.Contains(string(r.body), "secreT") ||
		strings.Contains(string(r.body), "sandbox-secret") {
		t.Errorf("an auth error names a secret: %s", r.body)
	}
}

func TestCrystalPayV3MeAndBalances(t *testing.T) {
	s := newTestSandbox(t, withCrystalPayBalance(1000))
	me := s.v3("me/info", "")
	wantV3OK(t, me)
	if me["id"] != 123456789.0 || me["name"] != "sandbox" || me["status_level"] != 2.0 ||
		!regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`).MatchString(me["created_at"].(string)) {
		t.Errorf("me/info %v", me)
	}

	list := s.v3("balance/list", "")
	wantV3OK(t, list)
	items, _ := list["items"].(map[string]any)
	rub, _ := items["LZTMARKET"].(map[string]any)
	if len(items) != 2 || rub["amount"] != "1000" || rub["currency"] != "RUB" || rub["amount_accuracy"] != 2.0 || rub["name"] == "" {
		t.Errorf("balance/list %v", list)
	}
	items = s.v3("balance/list", `"hide_empty":true`)["items"].(map[string]any)
	if _, ok := items["LZTMARKET"]; len(items) != 1 || !ok {
		t.Errorf("hide_empty: %v", items)
	}
	wantV3Error(t, s.v3("balance/list", `"hide_empty":"yes"`), "`hide_empty`")

	get := s.v3("balance/get", `"method":"LZTMARKET"`)
	wantV3OK(t, get)
	if get["method"] != "LZTMARKET" || get["amount"] != "1000" || get["currency"] != "RUB" {
		t.Errorf("balance/get %v", get)
	}
	wantV3Error(t, s.v3("balance/get", ""), "`method` field is required")
	wantV3Error(t, s.v3("balance/get", `"method":"QIWI"`), "not found")

	empty := newTestSandbox(t, func(h *Handler) { h.Name = t.Name() + "-empty" })
	r := empty.postJSON("/crystalpay/v3/balance/list/", `{"auth_login":"sandbox","auth_secret":"sandbox-secret","hide_empty":true}`)
	if m := r.object(t); !strings.Contains(string(r.body), `"items":[]`) || m["error"] != false {
		t.Errorf("nothing to show: %s, want items []", r.body)
	}
}

func TestCrystalPayV3InvoiceCreate(t *testing.T) {
	s := newTestSandbox(t, nil)
	r := s.postJSON("/crystalpay/v3/invoice/create/", `{"auth_login":"sandbox","auth_secret":"sandbox-secret",
		"amount":100.50,"type":"purchase","lifetime":60}`)
	if !strings.Contains(string(r.body), `:\/\/`) {
		t.Errorf("reply does not escape slashes the way PHP does: %s", r.body)
	}
	m := r.object(t)
	wantV3OK(t, m)
	id, _ := m["id"].(string)
	if !regexp.MustCompile(`^123456789_[A-Za-z0-9]{10}$`).MatchString(id) {
		t.Errorf("id %q is not like 123456789_abcdefghij", id)
	}
	if m["url"] != s.srv.URL+"/pay/crystalpay/"+id || m["type"] != "purchase" || m["rub_amount"] != "100.5" || len(m) != 6 {
		t.Errorf("invoice/create reply %v", m)
	}

	for name, fields := range map[string]string{
		"string numbers":  `"amount":"100","type":"topup","lifetime":"10"`,
		"amount_currency": `"amount":5,"type":"topup","lifetime":1,"amount_currency":"RUB"`,
		"currency":        `"amount":5,"type":"topup","lifetime":4320,"currency":"RUB","subtract_from":"balance"`,
		"payer object":    `"amount":5,"type":"purchase","lifetime":5,"payer_details":{"email":"a@b.example"}`,
		"payer string":    `"amount":5,"type":"purchase","lifetime":5,"payer_details":"a@b.example"`,
		"nulls":           `"amount":5,"type":"purchase","lifetime":5,"extra":null,"callback_url":null,"description":null`,
		"everything": `"amount":5,"type":"purchase","lifetime":5,"extra":"order-1","description":"Заказ",
			"redirect_url":"https://shop.example/ok","callback_url":"http://shop.example/cb?x=1","required_method":"BITCOIN"`,
	} {
		t.Run(name, func(t *testing.T) { wantV3OK(t, s.v3("invoice/create", fields)) })
	}
	before := len(s.state().CrystalPay.V3Invoices)

	for name, c := range map[string]struct{ fields, want string }{
		"no amount":         {`"type":"purchase","lifetime":5`, "`amount` field is required"},
		"null amount":       {`"amount":null,"type":"purchase","lifetime":5`, "`amount` field is required"},
		"zero":              {`"amount":0,"type":"purchase","lifetime":5`, "`amount`"},
		"negative":          {`"amount":-1,"type":"purchase","lifetime":5`, "`amount`"},
		"three decimals":    {`"amount":1.005,"type":"purchase","lifetime":5`, "`amount`"},
		"exponent":          {`"amount":1e3,"type":"purchase","lifetime":5`, "`amount`"},
		"text":              {`"amount":"ten","type":"purchase","lifetime":5`, "`amount`"},
		"bool amount":       {`"amount":true,"type":"purchase","lifetime":5`, "`amount`"},
		"no type":           {`"amount":1,"lifetime":5`, "`type` field is required"},
		"bad type":          {`"amount":1,"type":"gift","lifetime":5`, "`type`"},
		"no lifetime":       {`"amount":1,"type":"purchase"`, "`lifetime` field is required"},
		"lifetime 0":        {`"amount":1,"type":"purchase","lifetime":0`, "`lifetime`"},
		"lifetime 4321":     {`"amount":1,"type":"purchase","lifetime":4321`, "`lifetime`"},
		"lifetime 1.5":      {`"amount":1,"type":"purchase","lifetime":1.5`, "`lifetime`"},
		"dollars":           {`"amount":1,"type":"purchase","lifetime":5,"currency":"USD"`, "`currency`"},
		"old dollars":       {`"amount":1,"type":"purchase","lifetime":5,"amount_currency":"USD"`, "`amount_currency`"},
		"subtract_from":     {`"amount":1,"type":"purchase","lifetime":5,"subtract_from":"both"`, "`subtract_from`"},
		"relative callback": {`"amount":1,"type":"purchase","lifetime":5,"callback_url":"/cb"`, "`callback_url`"},
		"ftp redirect":      {`"amount":1,"type":"purchase","lifetime":5,"redirect_url":"ftp://x.example/"`, "`redirect_url`"},
		"payer number":      {`"amount":1,"type":"purchase","lifetime":5,"payer_details":5`, "`payer_details`"},
		"extra number":      {`"amount":1,"type":"purchase","lifetime":5,"extra":5`, "`extra`"},
	} {
		t.Run(name, func(t *testing.T) { wantV3Error(t, s.v3("invoice/create", c.fields), c.want) })
	}
	t.Run("every error at once", func(t *testing.T) {
		if errs := s.v3("invoice/create", "")["errors"].([]any); len(errs) != 3 {
			t.Errorf("errors %v, want amount, type and lifetime", errs)
		}
	})
	if n := len(s.state().CrystalPay.V3Invoices); n != before {
		t.Errorf("refused calls created %d invoices", n-before)
	}
}

func TestCrystalPayV3InvoiceInfo(t *testing.T) {
	s := newTestSandbox(t, nil)
	id := s.createV3Invoice(`"amount":"100.50","type":"purchase","lifetime":60,"extra":"order-7",
		"redirect_url":"https://shop.example/ok","callback_url":"http://127.0.0.1:1/cb"`)
	url := s.srv.URL + "/pay/crystalpay/" + id
	// The fake clock reads 2026-05-01 14:29:59 UTC: 17:29:59 in Moscow.
	wantJSON(t, s.postJSON("/crystalpay/v3/invoice/info/", `{"auth_login":"sandbox","auth_secret":"sandbox-secret","id":"`+id+`"}`),
		http.StatusOK, `{"error":false,"errors":[],"id":"`+id+`","url":"`+url+`","state":"notpayed","type":"purchase",
		"subtract_from":"amount","method":null,"required_method":null,"rub_amount":"100.5","currency":"RUB","amount":"100.5",
		"amount_currency":"RUB","initial_amount":"100.5","remaining_amount":"100.5","balance_amount":"100.5",
		"commission_amount":"0","description":null,"redirect_url":"https://shop.example/ok","callback_url":"http://127.0.0.1:1/cb",
		"extra":"order-7","created_at":"2026-05-01 17:29:59","expired_at":"2026-05-01 18:29:59","final_at":null}`)

	s.clock.Advance(time.Minute)
	var paid struct{ Invoice map[string]any }
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+id+`"}`, http.StatusOK, &paid)
	info := s.v3("invoice/info", `"id":"`+id+`"`)
	if info["state"] != "payed" || info["remaining_amount"] != "0" || info["final_at"] != "2026-05-01 17:30:59" ||
		info["method"] != "LZTMARKET" || paid.Invoice["state"] != "payed" {
		t.Errorf("paid invoice %v", info)
	}
	if b := s.state().CrystalPay.Balance; b != "100.5" {
		t.Errorf("balance %s, want 100.5", b)
	}

	wantV3Error(t, s.v3("invoice/info", ""), "`id` field is required")
	wantV3Error(t, s.v3("invoice/info", `"id":"123456789_nope"`), "not found")
	wantV3Error(t, s.v3("invoice/info", `"id":7`), "`id`")
}

func TestCrystalPayV3InvoiceStates(t *testing.T) {
	s := newTestSandbox(t, nil)
	fields := `"amount":100,"type":"purchase","lifetime":60`
	processing, short, failed := s.createV3Invoice(fields), s.createV3Invoice(fields), s.createV3Invoice(fields)

	var got struct{ Invoice map[string]any }
	s.control(http.MethodPost, "invoice", `{"id":"`+processing+`","state":"processing"}`, http.StatusOK, &got)
	if got.Invoice["state"] != "processing" || got.Invoice["final_at"] != nil {
		t.Errorf("processing %v", got.Invoice)
	}
	if info := s.v3("invoice/info", `"id":"`+processing+`"`); info["state"] != "processing" || info["method"] != "LZTMARKET" {
		t.Errorf("info of a processing invoice %v", info)
	}
	if r := s.do(http.MethodPost, "/pay/crystalpay/"+processing, ""); r.status != http.StatusOK || !strings.Contains(string(r.body), "Оплачено") {
		t.Errorf("paying a processing invoice: %d", r.status)
	}

	s.control(http.MethodPost, "invoice", `{"id":"`+short+`","state":"wrongamount","amount":"60.5"}`, http.StatusOK, &got)
	if got.Invoice["state"] != "wrongamount" || got.Invoice["remaining_amount"] != "39.5" || got.Invoice["final_at"] == nil {
		t.Errorf("wrongamount %v", got.Invoice)
	}
	s.control(http.MethodPost, "invoice", `{"id":"`+failed+`","state":"failed"}`, http.StatusOK, &got)
	if got.Invoice["state"] != "failed" || got.Invoice["method"] != nil {
		t.Errorf("failed %v", got.Invoice)
	}
	if b := s.state().CrystalPay.Balance; b != "100" {
		t.Errorf("balance %s: only the payed invoice is credited", b)
	}

	for _, id := range []string{short, failed} {
		if r := s.do(http.MethodPost, "/pay/crystalpay/"+id, ""); r.status != http.StatusConflict || !strings.Contains(string(r.body), "Invoice closed") {
			t.Errorf("page of a closed invoice: %d", r.status)
		}
		s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+id+`"}`, http.StatusConflict, nil)
		s.control(http.MethodPost, "invoice", `{"id":"`+id+`","state":"failed"}`, http.StatusConflict, nil)
	}
	s.control(http.MethodPost, "invoice", `{"id":"`+processing+`","state":"failed"}`, http.StatusConflict, nil)
	for body, status := range map[string]int{
		`{"id":"123456789_nope","state":"failed"}`:           http.StatusNotFound,
		`{"id":"x","state":"payed"}`:                         http.StatusBadRequest,
		`{"state":"failed"}`:                                 http.StatusBadRequest,
		`{"id":"x","state":"wrongamount"}`:                   http.StatusBadRequest,
		`{"id":"x","state":"wrongamount","amount":"1.001"}`:  http.StatusBadRequest,
		`{"id":"x","state":"failed","amount":"1"}`:           http.StatusBadRequest,
		`{"id":"x","state":"wrongamount","amount":"0"}`:      http.StatusBadRequest,
		`{"id":"x","state":"failed","paid":"1"}`:             http.StatusBadRequest,
		`{"id":"x","state":"wrongamount","amount":"-1"}`:     http.StatusBadRequest,
		`{"id":"x","state":"wrongamount","amount":"1e2"}`:    http.StatusBadRequest,
		`{"id":"x","state":"wrongamount","amount":"1.5 "}`:   http.StatusBadRequest,
		`{"id":"x","state":"processing","amount":"1","x":1}`: http.StatusBadRequest,
	} {
		s.control(http.MethodPost, "invoice", body, status, nil)
	}
}

func TestCrystalPayV3PaymentPage(t *testing.T) {
	s := newTestSandbox(t, nil)
	withRedirect := s.createV3Invoice(`"amount":250,"type":"purchase","lifetime":5,"redirect_url":"https://shop.example/ok?o=1"`)
	plain := s.createV3Invoice(`"amount":1.5,"type":"topup","lifetime":5`)

	page := "/pay/crystalpay/" + withRedirect
	if r := s.get(page); r.status != http.StatusOK || !strings.Contains(string(r.body), `id="pay"`) || !strings.Contains(string(r.body), "250.00") {
		t.Fatalf("GET page: %d %s", r.status, r.body)
	}
	for range 2 {
		if r := s.do(http.MethodPost, page, ""); r.status != http.StatusSeeOther || r.header.Get("Location") != "https://shop.example/ok?o=1" {
			t.Fatalf("POST page: %d to %q", r.status, r.header.Get("Location"))
		}
	}
	if r := s.do(http.MethodPost, "/pay/crystalpay/"+plain, ""); r.status != http.StatusOK || !strings.Contains(string(r.body), "Оплачено") {
		t.Errorf("POST without redirect_url: %d", r.status)
	}
	if b := s.state().CrystalPay.Balance; b != "251.5" {
		t.Errorf("balance %s after paying twice and once, want 251.5", b)
	}
	if r := s.get(page); strings.Contains(string(r.body), `id="pay"`) {
		t.Error("a paid invoice's page still offers to pay")
	}
}

func TestCrystalPayV3ExpiredInvoice(t *testing.T) {
	s := newTestSandbox(t, nil)
	id := s.createV3Invoice(`"amount":10,"type":"purchase","lifetime":1`)
	s.clock.Advance(time.Minute - time.Nanosecond)
	if r := s.get("/pay/crystalpay/" + id); !strings.Contains(string(r.body), `id="pay"`) {
		t.Fatalf("page before expired_at: %d", r.status)
	}
	s.clock.Advance(time.Nanosecond)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		r := s.do(method, "/pay/crystalpay/"+id, "")
		if body := string(r.body); r.status != http.StatusConflict || !strings.Contains(body, "Invoice expired") || strings.Contains(body, `id="pay"`) {
			t.Errorf("%s expired page: %d", method, r.status)
		}
	}
	s.control(http.MethodPost, "pay", `{"api":"crystalpay","id":"`+id+`"}`, http.StatusConflict, nil)
	if info := s.v3("invoice/info", `"id":"`+id+`"`); info["state"] != "notpayed" || info["final_at"] != nil {
		t.Errorf("an expired invoice's info %v, want its last state, notpayed", info)
	}
	if b := s.state().CrystalPay.Balance; b != "0" {
		t.Errorf("balance %s after refused payments", b)
	}
}
