package caddytest

// Hostile input against a running shop. Like the crash tests, and unlike
// the rest of this package, the shop runs as its own Caddy process on free
// ports (procStart, procStartSandbox), so this test never competes for the
// in-process harness's fixed ports. Every input surface (checkout form and
// JSON fields, the proxied storefront's X-Kassa-* headers, Idempotency-Key,
// ?order=, kassa_receipt's posted fields and ?operation=, the admin API's
// bodies and path ids) is tried with every hostile value; each answer must
// be a clear 4xx (or, for the few values a field rightly takes, the
// ordinary success), with no injected header, no hostile value repeated
// raw, no script in an HTML page, and nothing stored or sent to a provider
// for a refusal; an error's message is safe to show. This is the one
// hostile-input suite: the parsers' own fuzz targets sit beside them in the
// root package. Every helper here is prefixed hostile.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// hostileInput is a value an attacker sends.
type hostileInput struct{ name, value string }

// hostileInputs are the values every surface is tried with.
var hostileInputs = []hostileInput{
	{"crlf", "a\r\nX-Injected: 1"},
	{"nul", "a\x00b"},
	{"c0", "a\x01\x1b[31mb"},
	{"long", strings.Repeat("9", 100<<10)},
	{"invalid-utf8", "\xff\xfe"},
	{"html", "<script>alert(1)</script>"},
	{"sql", "1' OR '1'='1"},
	{"sql-drop", "'; DROP TABLE orders; --"},
	{"traversal", "../../etc/passwd"},
	{"bidi", "\u202egnp.exe"},
	{"fullwidth", "３５０"},
	{"exponent", "3.5e2"},
	{"signed", "-350"},
	{"plus", "+350"},
}

// hostileSent is the shop's reply to one hostile request.
type hostileSent struct {
	status int
	header http.Header
	body   []byte
}

// hostileOutcome is what a value a surface rightly accepts must lead to.
type hostileOutcome struct {
	statuses []int // any of these
	orders   int   // order records added
	calls    int   // provider calls added
}

// hostileSurface is one input surface: how to send a value through it,
// which values it cannot carry (Go's HTTP stack refuses to send CR, LF and
// other controls in a header), which it rightly accepts, and the statuses
// of a refusal.
type hostileSurface struct {
	name   string
	send   func(t *testing.T, caseID, v string) hostileSent
	skip   []string                  // values this surface cannot carry
	accept map[string]hostileOutcome // values it rightly accepts
	// refused are the statuses of a refusal: 400 unless given.
	refused []int
	// long are the statuses of the 100 KB value, when not refused's: 413
	// for a body, 431 or 414 for a URL or a request header.
	long []int
}

// hostileShop is the shop process, its sandbox and its upstream.
type hostileShop struct {
	url, admin, storage string
	sb                  *procSandbox
	proc                *procCaddy

	mu        sync.Mutex
	upstreams map[string]http.Header // the upstream's reply headers by X-Hostile-Case
}

// hostileStart runs the sandbox, a trusted upstream in this process and the
// shop: a storefront (/pay, /donate), a proxied route (/proxied), receipts
// with issue (/receipt) and the admin API.
func hostileStart(t *testing.T) *hostileShop {
	t.Helper()
	dir := t.TempDir()
	s := &hostileShop{storage: filepath.Join(dir, "storage"), upstreams: map[string]http.Header{}}
	s.sb = procStartSandbox(t, dir)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		h := s.upstreams[r.Header.Get("X-Hostile-Case")]
		s.mu.Unlock()
		for k, vs := range h {
			w.Header()[k] = vs
		}
		io.WriteString(w, "upstream")
	}))
	t.Cleanup(upstream.Close)

	port, adminPort := procFreePort(t), procFreePort(t)
	config := fmt.Sprintf(`{
	admin 127.0.0.1:%[1]d
	auto_https off
	persist_config off
	kassa {
		payment card pegas {
			token sandbox-token
			endpoint %[2]s/pegas/api/v1
			timeout 2s
		}
		payment main crystalpay {
			api v1
			login sandbox
			secret sandbox-secret
			secret2 sandbox-secret2
			endpoint %[2]s/crystalpay/api.php
			timeout 2s
		}
		receipts smartcashier {
			token sandbox-token
			endpoint %[2]s/smartcashier/v1.0
			cashbox_id c0264f46-4bfd-4953-bfbe-2e3cd1e0a4ad
			taxation usn_income
			vat none
			timeout 2s
		}
		product tea 350.00 "Tea" vat20
		poll_interval 1h
		storage file_system %[3]s
	}
}

http://127.0.0.1:%[4]d {
	bind 127.0.0.1
	route /pay {
		kassa_checkout card
	}
	route /donate {
		kassa_checkout card {
			amount_range 10 5000
			description "Donation: {http.request.uri.query.note}"
		}
	}
	route /proxied {
		reverse_proxy %[5]s {
			@pay header X-Kassa-Amount *
			handle_response @pay {
				kassa_checkout card {
					amount {rp.header.X-Kassa-Amount}
					order_id {rp.header.X-Kassa-Order}
					items {rp.header.X-Kassa-Items}
					email {rp.header.X-Kassa-Email}
					phone {rp.header.X-Kassa-Phone}
					description {rp.header.X-Kassa-Description}
				}
			}
		}
	}
	route /receipt {
		kassa_receipt {
			issue
		}
	}
}
`, adminPort, s.sb.url, s.storage, port, strings.TrimPrefix(upstream.URL, "http://"))
	s.url = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.admin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	s.proc = procStart(t, dir, "hostile-shop", config, s.url+"/pay?order=AAAAAAAAAAAAAAAAAAAAAA",
		func(status int, body []byte) bool {
			return status == http.StatusNotFound && bytes.Contains(body, []byte("unknown_order"))
		})
	return s
}

// hostileClient follows no redirect: a 303 to the payment page is an answer.
var hostileClient = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// do sends one request; header holds name, value pairs.
func (s *hostileShop) do(t *testing.T, method, target, contentType string, body []byte, header ...string) hostileSent {
	t.Helper()
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("%s %.200s: %v", method, target, err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := hostileClient.Do(req)
	if err != nil {
		t.Fatalf("%s %.200s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %.200s: reading the reply: %v", method, target, err)
	}
	return hostileSent{status: resp.StatusCode, header: resp.Header, body: b}
}

// postForm posts a form as a browser does (no Accept: the buyer gets HTML).
func (s *hostileShop) postForm(t *testing.T, path string, form url.Values) hostileSent {
	t.Helper()
	return s.do(t, http.MethodPost, s.url+path, "application/x-www-form-urlencoded", []byte(form.Encode()))
}

// postJSON posts a JSON body as a script does.
func (s *hostileShop) postJSON(t *testing.T, target string, body []byte, header ...string) hostileSent {
	t.Helper()
	return s.do(t, http.MethodPost, target, "application/json", body, append(header, "Accept", "application/json")...)
}

// proxied posts to the proxied route, whose upstream answers with h (and a
// valid amount, order id, items and contacts where h has none).
func (s *hostileShop) proxied(t *testing.T, caseID string, h map[string]string) hostileSent {
	t.Helper()
	reply := http.Header{
		"X-Kassa-Amount": {"500.00"},
		"X-Kassa-Order":  {"hostile-" + caseID},
		"X-Kassa-Items":  {`[{"name":"Заказ","qty":2,"price":"250.00","vat":"vat20"}]`},
		"X-Kassa-Email":  {"buyer@example.com"},
		"X-Kassa-Phone":  {"+79991234567"},
	}
	for k, v := range h {
		reply[http.CanonicalHeaderKey(k)] = []string{v}
	}
	s.mu.Lock()
	s.upstreams[caseID] = reply
	s.mu.Unlock()
	return s.do(t, http.MethodPost, s.url+"/proxied", "", nil, "X-Hostile-Case", caseID)
}

// raw sends a request as bytes over TCP, for what Go's client refuses to
// send (a control character in a header), and reads the status.
func (s *hostileShop) raw(t *testing.T, request string) hostileSent {
	t.Helper()
	conn, err := net.DialTimeout("tcp", strings.TrimPrefix(s.url, "http://"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the reply to a raw request: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return hostileSent{status: resp.StatusCode, header: resp.Header, body: b}
}

// files counts the files under the storage's kassa/ prefix, and those
// under kassa/orders.
func (s *hostileShop) files(t *testing.T) (all, orders int) {
	t.Helper()
	root := filepath.Join(s.storage, "kassa")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			all++
			if filepath.Base(filepath.Dir(path)) == "orders" {
				orders++
			}
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return all, orders
}

// calls counts every call in the sandbox's journal.
func (s *hostileShop) calls(t *testing.T) int {
	t.Helper()
	var out struct {
		Calls []json.RawMessage `json:"calls"`
	}
	procCall(t, http.MethodGet, s.sb.url+"/control/calls", nil, http.StatusOK, &out)
	return len(out.Calls)
}

// hostileJSONString writes v as a JSON string, but keeps invalid UTF-8 as
// the raw bytes an attacker would send instead of replacing it.
func hostileJSONString(v string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			b.WriteByte(v[i])
		} else {
			enc, _ := json.Marshal(string(r))
			b.Write(enc[1 : len(enc)-1])
		}
		i += size
	}
	b.WriteByte('"')
	return b.String()
}

// hostileBody is a JSON object template with %s where the hostile string
// goes.
func hostileBody(template, v string) []byte {
	return []byte(strings.Replace(template, "%s", hostileJSONString(v), 1))
}

// hostileDangerous reports whether v must never appear raw in a reply:
// it carries markup, a control character, invalid UTF-8 or a bidi control,
// or is too long to repeat.
func hostileDangerous(v string) bool {
	return len(v) > 1024 || !utf8.ValidString(v) || strings.ContainsAny(v, "<>\r\n\x00\x01\x1b\u202e")
}

// hostileCheckReply checks what every reply must hold, whatever its status.
func hostileCheckReply(t *testing.T, got hostileSent, v string) {
	t.Helper()
	for name, values := range got.header {
		if strings.EqualFold(name, "X-Injected") {
			t.Errorf("header injection: the reply has %s: %q", name, values)
		}
		for _, hv := range values {
			if strings.ContainsAny(hv, "\r\n\x00") || strings.Contains(hv, "X-Injected") {
				t.Errorf("header injection: %s: %q", name, hv)
			}
		}
	}
	if strings.Contains(strings.ToLower(got.header.Get("Content-Type")), "html") &&
		bytes.Contains(bytes.ToLower(got.body), []byte("<script")) {
		t.Errorf("an HTML reply carries a script: %.400s", got.body)
	}
	if hostileDangerous(v) && bytes.Contains(got.body, []byte(v)) {
		t.Errorf("the reply repeats the hostile value raw: %.400q", got.body)
	}
	if len(got.body) > 8<<10 {
		t.Errorf("a %d-byte reply", len(got.body))
	}
	if code, msg, ok := hostileError(got); ok {
		if !utf8.ValidString(msg) || strings.ContainsFunc(msg, hostileUnsafeRune) || len(msg) > 1024 {
			t.Errorf("the error message is not safe to show: %.400q", msg)
		}
		if code == "" || strings.ContainsAny(code, " \t\r\n") {
			t.Errorf("error code %q", code)
		}
	}
}

// hostileError is the code and message of a JSON error reply.
func hostileError(got hostileSent) (code, message string, ok bool) {
	var answer struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(got.body, &answer) != nil || answer.Error.Message == "" {
		return "", "", false
	}
	return answer.Error.Code, answer.Error.Message, true
}

// hostileCheckNoEcho checks that an error message does not quote a
// dangerous value, even where the reply's JSON escapes it: a client may
// show the message as it is.
func hostileCheckNoEcho(t *testing.T, got hostileSent, v string) {
	t.Helper()
	if _, msg, ok := hostileError(got); ok && hostileDangerous(v) && strings.Contains(msg, v) {
		t.Errorf("the error message quotes the hostile value: %.400q", msg)
	}
}

// hostileUnsafeRune is a character no error message may carry: C0 and C1
// controls, DEL, the line and paragraph separators, and the bidi controls
// that reorder text (Trojan Source).
func hostileUnsafeRune(r rune) bool {
	return r < 0x20 || r >= 0x7f && r < 0xa0 || r == '\u2028' || r == '\u2029' ||
		r >= '\u202a' && r <= '\u202e' || r >= '\u2066' && r <= '\u2069'
}

// hostileAcceptAll is an outcome for each named value.
func hostileAcceptAll(o hostileOutcome, names ...string) map[string]hostileOutcome {
	m := make(map[string]hostileOutcome, len(names))
	for _, n := range names {
		m[n] = o
	}
	return m
}

// hostileHeaderUnsendable are the values Go's HTTP stack will not put in a
// header: the proxied surfaces are tried with the rest, and the form and
// JSON surfaces carry these.
var hostileHeaderUnsendable = []string{"crlf", "nul", "c0"}

// TestHostileInput tries every hostile value on every input surface of a
// running shop; see the top of this file.
func TestHostileInput(t *testing.T) {
	s := hostileStart(t)

	// The counting sees what it must: a checkout stores an order and calls
	// the provider once.
	orders0, calls0 := 0, s.calls(t)
	if got := s.postJSON(t, s.url+"/pay", []byte(`{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`)); got.status != http.StatusCreated {
		t.Fatalf("a plain checkout: %d %s", got.status, got.body)
	}
	if _, orders := s.files(t); orders != orders0+1 || s.calls(t) != calls0+1 {
		t.Fatalf("a plain checkout left %d order records and %d provider calls, want 1 and 1", orders, s.calls(t)-calls0)
	}

	created := hostileOutcome{statuses: []int{http.StatusCreated}, orders: 1, calls: 1}
	redirected := hostileOutcome{statuses: []int{http.StatusSeeOther}, orders: 1, calls: 1}
	queued := hostileOutcome{statuses: []int{http.StatusAccepted}, calls: 1}
	// A payout the validation lets through reaches the provider, which may
	// refuse it (the Pegas sandbox account starts empty).
	paidOut := hostileOutcome{statuses: []int{http.StatusOK, http.StatusBadGateway}, calls: 1}
	// An operation id of a legal shape is looked up at the receipt service,
	// which does not know it, or knows it from a case above that issued it.
	lookedUp := hostileOutcome{statuses: []int{http.StatusNotFound, http.StatusOK}, calls: 1}
	// The 100 KB value: too large for a body (64 KiB at most), and for a
	// URL or a request header Caddy's server refuses before any handler.
	tooLarge := []int{http.StatusRequestEntityTooLarge}
	tooLong := []int{http.StatusRequestHeaderFieldsTooLarge, http.StatusRequestURITooLong}
	// Text a name or a comment may hold: it is escaped where shown.
	text := []string{"html", "sql", "sql-drop", "traversal", "fullwidth", "exponent", "signed", "plus"}
	// Printable ASCII without spaces: a legal operation id or Idempotency-Key.
	token := []string{"html", "traversal", "exponent", "signed", "plus"}
	// Before @example.com, what makes an address by its characters
	// (../../etc/passwd@example.com is only ever stored and sent as JSON),
	// and a non-ASCII local part: an internationalised address.
	localPart := []string{"traversal", "fullwidth", "exponent", "signed", "plus"}
	// Letters, digits and + - . _ @: a legal payee, method or payout order id.
	payee := []string{"exponent", "signed", "plus"}

	receipt := `{"operation_id":"hostile-%d","type":"sale","items":[{"name":"Tea","qty":1,"price":"100.00","vat":"vat20"}],` +
		`"cash":"0","cashless":"100.00","email":"buyer@example.com","phone":"+79991234567"}`
	receiptWith := func(field string) func(t *testing.T, caseID, v string) hostileSent {
		return func(t *testing.T, caseID, v string) hostileSent {
			body := strings.Replace(receipt, "%d", caseID, 1)
			switch field {
			case "operation_id":
				body = strings.Replace(body, `"hostile-`+caseID+`"`, "%s", 1)
			case "name":
				body = strings.Replace(body, `"name":"Tea"`, `"name":%s`, 1)
			case "qty":
				body = strings.Replace(body, `"qty":1`, `"qty":%s`, 1)
			case "price":
				body = strings.Replace(body, `"price":"100.00"`, `"price":%s`, 1)
			case "vat":
				body = strings.Replace(body, `"vat":"vat20"`, `"vat":%s`, 1)
			case "cashless":
				body = strings.Replace(body, `"cashless":"100.00"`, `"cashless":%s`, 1)
			case "email":
				body = strings.Replace(body, `"email":"buyer@example.com"`, `"email":%s`, 1)
			case "phone":
				body = strings.Replace(body, `"phone":"+79991234567"`, `"phone":%s`, 1)
			case "type":
				body = strings.Replace(body, `"type":"sale"`, `"type":%s`, 1)
			default: // taxation, cashbox_id: added
				body = strings.Replace(body, `{`, `{"`+field+`":%s,`, 1)
			}
			return s.postJSON(t, s.url+"/receipt", hostileBody(body, v))
		}
	}
	payout := func(template string) func(t *testing.T, caseID, v string) hostileSent {
		return func(t *testing.T, caseID, v string) hostileSent {
			return s.postJSON(t, s.admin+"/kassa/payouts", hostileBody(template, v), "Idempotency-Key", "hostile-payout-"+caseID)
		}
	}
	cash := func(template string) func(t *testing.T, caseID, v string) hostileSent {
		return func(t *testing.T, caseID, v string) hostileSent {
			return s.postJSON(t, s.admin+"/kassa/cash/deposit", hostileBody(strings.Replace(template, "%d", caseID, 1), v))
		}
	}
	proxied := func(header string) func(t *testing.T, caseID, v string) hostileSent {
		return func(t *testing.T, caseID, v string) hostileSent {
			return s.proxied(t, caseID, map[string]string{header: v})
		}
	}
	get := func(base string) func(t *testing.T, caseID, v string) hostileSent {
		return func(t *testing.T, caseID, v string) hostileSent {
			return s.do(t, http.MethodGet, base+url.QueryEscape(v), "", nil, "Accept", "application/json")
		}
	}
	adminPath := func(method, prefix, suffix string) func(t *testing.T, caseID, v string) hostileSent {
		return func(t *testing.T, caseID, v string) hostileSent {
			return s.do(t, method, s.admin+prefix+url.PathEscape(v)+suffix, "", nil)
		}
	}

	surfaces := []hostileSurface{
		// The storefront's form: a browser, answered with HTML.
		{name: "form item", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postForm(t, "/pay", url.Values{"item": {v}})
		}},
		{name: "form item qty", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postForm(t, "/pay", url.Values{"item": {"tea:" + v}})
		}},
		{name: "form email", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postForm(t, "/pay", url.Values{"item": {"tea"}, "email": {v}})
		}},
		{name: "form email local part", long: tooLarge, accept: hostileAcceptAll(redirected, localPart...),
			send: func(t *testing.T, _, v string) hostileSent {
				return s.postForm(t, "/pay", url.Values{"item": {"tea"}, "email": {v + "@example.com"}})
			}},
		{name: "form phone", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postForm(t, "/pay", url.Values{"item": {"tea"}, "phone": {v}})
		}},
		{name: "form amount", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postForm(t, "/donate", url.Values{"amount": {v}})
		}},
		// The buyer's ?note= goes into the donation's description, which
		// names the receipt's position.
		{name: "donation ?note=", long: tooLong, accept: hostileAcceptAll(redirected, text...),
			send: func(t *testing.T, _, v string) hostileSent {
				return s.postForm(t, "/donate?note="+url.QueryEscape(v), url.Values{"amount": {"100"}, "email": {"buyer@example.com"}})
			}},
		// The storefront's JSON.
		{name: "json sku", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postJSON(t, s.url+"/pay", hostileBody(`{"items":[{"sku":%s}],"email":"buyer@example.com"}`, v))
		}},
		{name: "json qty", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postJSON(t, s.url+"/pay", hostileBody(`{"items":[{"sku":"tea","qty":%s}],"email":"buyer@example.com"}`, v))
		}},
		{name: "json email", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postJSON(t, s.url+"/pay", hostileBody(`{"items":[{"sku":"tea"}],"email":%s}`, v))
		}},
		{name: "json email local part", long: tooLarge, accept: hostileAcceptAll(created, localPart...),
			send: func(t *testing.T, _, v string) hostileSent {
				return s.postJSON(t, s.url+"/pay", hostileBody(`{"items":[{"sku":"tea"}],"email":%s}`, v+"@example.com"))
			}},
		{name: "json phone", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postJSON(t, s.url+"/pay", hostileBody(`{"items":[{"sku":"tea"}],"phone":%s}`, v))
		}},
		{name: "json amount", long: tooLarge, send: func(t *testing.T, _, v string) hostileSent {
			return s.postJSON(t, s.url+"/donate", hostileBody(`{"amount":%s,"email":"buyer@example.com"}`, v))
		}},
		// The shorter values are below the 16 characters a key needs.
		{name: "idempotency key", long: tooLong, skip: hostileHeaderUnsendable, accept: hostileAcceptAll(created, "html", "traversal", "sql-drop"),
			send: func(t *testing.T, _, v string) hostileSent {
				return s.postJSON(t, s.url+"/pay", []byte(`{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`), "Idempotency-Key", v)
			}},
		{name: "checkout ?order=", long: tooLong, send: get(s.url + "/pay?order=")},
		{name: "receipt ?order=", long: tooLong, send: get(s.url + "/receipt?order=")},
		{name: "receipt ?operation=", long: tooLong, accept: hostileAcceptAll(lookedUp, token...), send: get(s.url + "/receipt?operation=")},
		// The proxied storefront: the trusted upstream's headers.
		{name: "X-Kassa-Amount", skip: hostileHeaderUnsendable, send: proxied("X-Kassa-Amount")},
		{name: "X-Kassa-Order", skip: hostileHeaderUnsendable, accept: hostileAcceptAll(redirected, "exponent", "signed"),
			send: proxied("X-Kassa-Order")},
		{name: "X-Kassa-Items", skip: hostileHeaderUnsendable, send: proxied("X-Kassa-Items")},
		// Inside the items' JSON, a control character travels escaped.
		{name: "X-Kassa-Items name", accept: hostileAcceptAll(redirected, text...),
			send: func(t *testing.T, caseID, v string) hostileSent {
				items := `[{"name":` + hostileJSONString(v) + `,"qty":2,"price":"250.00"}]`
				return s.proxied(t, caseID, map[string]string{"X-Kassa-Items": items})
			}},
		{name: "X-Kassa-Items price",
			send: func(t *testing.T, caseID, v string) hostileSent {
				items := `[{"name":"Tea","qty":2,"price":` + hostileJSONString(v) + `}]`
				return s.proxied(t, caseID, map[string]string{"X-Kassa-Items": items})
			}},
		{name: "X-Kassa-Description", skip: hostileHeaderUnsendable, accept: hostileAcceptAll(redirected, text...),
			send: proxied("X-Kassa-Description")},
		{name: "X-Kassa-Email", skip: hostileHeaderUnsendable, send: proxied("X-Kassa-Email")},
		{name: "X-Kassa-Phone", skip: hostileHeaderUnsendable, send: proxied("X-Kassa-Phone")},
		// kassa_receipt with issue: a trusted caller's receipt.
		{name: "receipt operation_id", long: tooLarge, accept: hostileAcceptAll(queued, token...), send: receiptWith("operation_id")},
		{name: "receipt item name", long: tooLarge, accept: hostileAcceptAll(queued, text...), send: receiptWith("name")},
		{name: "receipt item qty", long: tooLarge, send: receiptWith("qty")},
		{name: "receipt item price", long: tooLarge, send: receiptWith("price")},
		{name: "receipt item vat", long: tooLarge, send: receiptWith("vat")},
		{name: "receipt cashless", long: tooLarge, send: receiptWith("cashless")},
		{name: "receipt email", long: tooLarge, send: receiptWith("email")},
		{name: "receipt phone", long: tooLarge, send: receiptWith("phone")},
		{name: "receipt type", long: tooLarge, send: receiptWith("type")},
		{name: "receipt taxation", long: tooLarge, send: receiptWith("taxation")},
		{name: "receipt cashbox_id", long: tooLarge, send: receiptWith("cashbox_id")},
		// The admin API.
		{name: "payout payment", long: tooLarge, send: payout(`{"payment":%s,"amount":"100","to":"79990000000","method":"qw"}`)},
		{name: "payout amount", long: tooLarge, send: payout(`{"payment":"main","amount":%s,"to":"79990000000","method":"qw"}`)},
		{name: "payout to", long: tooLarge, accept: hostileAcceptAll(paidOut, payee...),
			send: payout(`{"payment":"main","amount":"100","to":%s,"method":"qw"}`)},
		{name: "payout method", long: tooLarge, accept: hostileAcceptAll(paidOut, payee...),
			send: payout(`{"payment":"main","amount":"100","to":"79990000000","method":%s}`)},
		{name: "payout comment", long: tooLarge, accept: hostileAcceptAll(paidOut, text...),
			send: payout(`{"payment":"card","amount":"100","to":"79990000000","method":"wallet","comment":%s}`)},
		{name: "payout order_id", long: tooLarge, accept: hostileAcceptAll(paidOut, payee...),
			send: payout(`{"payment":"card","amount":"100","to":"79990000000","method":"wallet","order_id":%s}`)},
		{name: "payout idempotency key", long: tooLong, skip: hostileHeaderUnsendable, accept: hostileAcceptAll(paidOut, append(token, "sql", "sql-drop")...),
			send: func(t *testing.T, _, v string) hostileSent {
				return s.postJSON(t, s.admin+"/kassa/payouts", []byte(`{"payment":"main","amount":"100","to":"79990000000","method":"qw"}`), "Idempotency-Key", v)
			}},
		{name: "cash amount", long: tooLarge, send: cash(`{"amount":%s,"operation_id":"hostile-cash-%d"}`)},
		{name: "cash cashbox_id", long: tooLarge, send: cash(`{"amount":"500.00","cashbox_id":%s,"operation_id":"hostile-cash-%d"}`)},
		// An operation id the operator gives is sent, then its state asked
		// (it may have been sent before): two calls.
		{name: "cash operation_id", long: tooLarge,
			accept: hostileAcceptAll(hostileOutcome{statuses: []int{http.StatusAccepted, http.StatusBadGateway}, calls: 2}, token...),
			send:   cash(`{"amount":"500.00","operation_id":%s}`)},
		// Path ids. The admin API routes on the unescaped path, so an id
		// with a slash in it ("</script>", "../") names another route: 404,
		// or 405 where that route exists for another method.
		{name: "admin order id", long: tooLong, refused: []int{http.StatusNotFound, http.StatusMethodNotAllowed},
			send: adminPath(http.MethodGet, "/kassa/orders/", "")},
		{name: "admin cancel id", long: tooLong, refused: []int{http.StatusNotFound}, send: adminPath(http.MethodPost, "/kassa/orders/", "/cancel")},
		{name: "admin order action", long: tooLong, refused: []int{http.StatusNotFound},
			send: adminPath(http.MethodPost, "/kassa/orders/AAAAAAAAAAAAAAAAAAAAAA/", "")},
		{name: "admin operation id", long: tooLong, refused: []int{http.StatusBadRequest, http.StatusNotFound},
			accept: hostileAcceptAll(lookedUp, "exponent", "signed", "plus"),
			send:   adminPath(http.MethodGet, "/kassa/operations/", "")},
	}

	caseNo := 0
	for _, surface := range surfaces {
		for _, in := range hostileInputs {
			if slices.Contains(surface.skip, in.name) {
				continue // the surface cannot carry the value (see skip)
			}
			t.Run(surface.name+"/"+in.name, func(t *testing.T) {
				caseNo++
				caseID := fmt.Sprint(caseNo)
				allBefore, ordersBefore := s.files(t)
				callsBefore := s.calls(t)

				got := surface.send(t, caseID, in.value)

				hostileCheckReply(t, got, in.value)
				hostileCheckNoEcho(t, got, in.value)
				allAfter, ordersAfter := s.files(t)
				callsAfter := s.calls(t)
				want, accepted := surface.accept[in.name]
				if !accepted {
					want = hostileOutcome{statuses: surface.refused}
					switch {
					case in.name == "long" && surface.long != nil:
						want.statuses = surface.long
					case len(want.statuses) == 0:
						want.statuses = []int{http.StatusBadRequest}
					}
				}
				ok := false
				for _, st := range want.statuses {
					ok = ok || got.status == st
				}
				if !ok {
					t.Errorf("status %d, want one of %v: %.400s", got.status, want.statuses, got.body)
				}
				if ordersAfter-ordersBefore != want.orders {
					t.Errorf("%d order records added, want %d", ordersAfter-ordersBefore, want.orders)
				}
				if !accepted && allAfter != allBefore {
					t.Errorf("the storage's kassa/ went from %d to %d files", allBefore, allAfter)
				}
				if callsAfter-callsBefore != want.calls {
					t.Errorf("%d provider calls, want %d", callsAfter-callsBefore, want.calls)
				}
			})
		}
	}

	// What Go's client will not send, over a raw connection: Go's server
	// refuses a control character in a header before Caddy sees it.
	for _, in := range []hostileInput{{"nul", "a\x00b"}, {"c0", "a\x01b"}, {"del", "a\x7fb"}} {
		t.Run("raw idempotency key/"+in.name, func(t *testing.T) {
			_, ordersBefore := s.files(t)
			callsBefore := s.calls(t)
			body := `{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`
			got := s.raw(t, "POST /pay HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json\r\n"+
				"Idempotency-Key: "+in.value+"\r\nContent-Length: "+fmt.Sprint(len(body))+"\r\nConnection: close\r\n\r\n"+body)
			hostileCheckReply(t, got, in.value)
			if got.status != http.StatusBadRequest {
				t.Errorf("status %d, want 400: %.400s", got.status, got.body)
			}
			if _, orders := s.files(t); orders != ordersBefore || s.calls(t) != callsBefore {
				t.Errorf("stored %d orders, %d provider calls", orders-ordersBefore, s.calls(t)-callsBefore)
			}
		})
	}

	// A buyer's Idempotency-Key lives apart from the upstream's order ids:
	// "shop:<id>" names no proxied order.
	t.Run("idempotency key names no proxied order", func(t *testing.T) {
		s.proxied(t, "collide", nil) // the upstream's order hostile-collide
		var shop struct {
			OrderID string `json:"order_id"`
		}
		s.mu.Lock()
		s.upstreams["collide-json"] = s.upstreams["collide"]
		s.mu.Unlock()
		again := s.do(t, http.MethodPost, s.url+"/proxied", "", nil, "X-Hostile-Case", "collide-json", "Accept", "application/json")
		if err := json.Unmarshal(again.body, &shop); err != nil || shop.OrderID == "" {
			t.Fatalf("the proxied order: %d %s", again.status, again.body)
		}
		got := s.postJSON(t, s.url+"/pay", []byte(`{"items":[{"sku":"tea"}],"email":"buyer@example.com"}`), "Idempotency-Key", "shop:hostile-collide")
		if got.status != http.StatusCreated || bytes.Contains(got.body, []byte(shop.OrderID)) {
			t.Errorf("a buyer's key shop:hostile-collide answered %d %s: the proxied order is %s", got.status, got.body, shop.OrderID)
		}
	})

	// An upstream may leave out the optional headers: the order then has
	// no upstream order id, items or description, rather than the text of
	// their placeholders, and two such checkouts are two orders. (A
	// contact it must send: receipts are on.)
	t.Run("optional upstream headers may be absent", func(t *testing.T) {
		var ids []string
		for i := range 2 {
			caseID := fmt.Sprint("bare-", i)
			s.mu.Lock()
			s.upstreams[caseID] = http.Header{"X-Kassa-Amount": {"500.00"}, "X-Kassa-Email": {"buyer@example.com"}}
			s.mu.Unlock()
			got := s.do(t, http.MethodPost, s.url+"/proxied", "", nil, "X-Hostile-Case", caseID, "Accept", "application/json")
			var order struct {
				OrderID string `json:"order_id"`
			}
			if err := json.Unmarshal(got.body, &order); err != nil || got.status != http.StatusCreated || order.OrderID == "" {
				t.Fatalf("checkout %d with only X-Kassa-Amount: %d %s", i, got.status, got.body)
			}
			ids = append(ids, order.OrderID)
		}
		if ids[0] == ids[1] {
			t.Fatalf("two checkouts without X-Kassa-Order are one order %s", ids[0])
		}
		got := s.do(t, http.MethodGet, s.admin+"/kassa/orders/"+ids[0], "", nil)
		if bytes.Contains(got.body, []byte("reverse_proxy")) || bytes.Contains(got.body, []byte("{")) && bytes.Contains(got.body, []byte("X-Kassa")) {
			t.Errorf("the order holds a placeholder's text: %s", got.body)
		}
	})

	// Markup a name or a description rightly holds is escaped wherever it
	// is shown: the receipt page, the status and the admin API.
	t.Run("markup is escaped where shown", func(t *testing.T) {
		const script = "<script>alert(1)</script>"
		s.mu.Lock()
		s.upstreams["markup"] = http.Header{
			"X-Kassa-Amount":      {"500.00"},
			"X-Kassa-Order":       {"hostile-markup"},
			"X-Kassa-Email":       {"buyer@example.com"},
			"X-Kassa-Items":       {`[{"name":"` + script + `","qty":2,"price":"250.00"}]`},
			"X-Kassa-Description": {script},
		}
		s.mu.Unlock()
		created := s.do(t, http.MethodPost, s.url+"/proxied", "", nil, "X-Hostile-Case", "markup", "Accept", "application/json")
		var order struct {
			OrderID string `json:"order_id"`
		}
		if err := json.Unmarshal(created.body, &order); err != nil || order.OrderID == "" {
			t.Fatalf("the proxied order: %d %s", created.status, created.body)
		}
		for _, r := range []struct{ target, accept string }{
			{s.url + "/receipt?order=" + order.OrderID, "text/html"},
			{s.url + "/receipt?order=" + order.OrderID, "application/json"},
			{s.url + "/pay?order=" + order.OrderID, "application/json"},
			{s.admin + "/kassa/orders/" + order.OrderID, "application/json"},
		} {
			got := s.do(t, http.MethodGet, r.target, "", nil, "Accept", r.accept)
			if got.status != http.StatusOK {
				t.Errorf("GET %s (%s): %d %.300s", r.target, r.accept, got.status, got.body)
			}
			hostileCheckReply(t, got, script)
			if bytes.Contains(bytes.ToLower(got.body), []byte("<script")) {
				t.Errorf("GET %s (%s) carries the name unescaped: %.400s", r.target, r.accept, got.body)
			}
		}
	})

	if b, err := os.ReadFile(s.proc.log); err == nil && bytes.Contains(b, []byte("panic")) {
		t.Errorf("the shop's log mentions a panic:\n%s", s.proc.logTail())
	}
	select {
	case <-s.proc.done:
		t.Errorf("the shop exited during the test")
	default:
	}
}
