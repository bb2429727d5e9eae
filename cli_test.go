package kassa

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

// cliRequest is a request the fake admin API received.
type cliRequest struct {
	Method, Path, Query, Body, Origin, ContentType string
	// Key is the request's Idempotency-Key.
	Key string
}

// cliReply is the fake admin API's answer to "METHOD /path".
type cliReply struct {
	status int
	body   string
}

// fakeAdmin plays the kassa admin API: it answers each "METHOD /path"
// with a canned reply and records what it received. A reply to an
// Idempotency-Key it has seen before says it is replayed.
type fakeAdmin struct {
	srv     *httptest.Server
	mu      sync.Mutex
	replies map[string]cliReply
	got     []cliRequest
	keys    map[string]bool
}

func newFakeAdmin(t *testing.T, replies map[string]cliReply) *fakeAdmin {
	t.Helper()
	f := &fakeAdmin{replies: replies, keys: map[string]bool{}}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		f.mu.Lock()
		key := r.Header.Get("Idempotency-Key")
		f.got = append(f.got, cliRequest{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, string(body), r.Header.Get("Origin"), r.Header.Get("Content-Type"), key})
		reply, ok := f.replies[r.Method+" "+r.URL.EscapedPath()]
		replayed := key != "" && f.keys[key]
		f.keys[key] = key != ""
		f.mu.Unlock()
		if replayed {
			w.Header().Set("Idempotent-Replayed", "true")
		}
		if !ok {
			reply = cliReply{404, `{"error":{"code":"not_found","message":"no such kassa admin route"}}`}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(reply.status)
		io.WriteString(w, reply.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeAdmin) addr() string { return f.srv.Listener.Addr().String() }

func (f *fakeAdmin) requests() []cliRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]cliRequest(nil), f.got...)
}

// runCLI runs `caddy kassa args...` as caddycmd would build it from the
// registered command, and returns its output and the error
// caddycmd.Main would see.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	registered, ok := caddycmd.Commands()["kassa"]
	if !ok {
		t.Fatal("no kassa command registered")
	}
	root := &cobra.Command{Use: "caddy", SilenceUsage: true}
	cmd := &cobra.Command{Use: registered.Name + " " + registered.Usage, Short: registered.Short, Long: registered.Long}
	registered.CobraFunc(cmd)
	root.AddCommand(cmd)
	var out, errOut bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errOut)
	root.SetArgs(append([]string{"kassa"}, args...))
	err = root.Execute()
	return out.String(), errOut.String(), err
}

// exitStatus is the status caddycmd.Main exits with for err: the
// ExitCode of its exitError, else 1.
func exitStatus(err error) int {
	if err == nil {
		return 0
	}
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Pointer && v.Elem().Kind() == reflect.Struct {
		if code := v.Elem().FieldByName("ExitCode"); code.IsValid() {
			return int(code.Int())
		}
	}
	return 1
}

const cliOrderRecord = `{"id":"LBqAlBc-Oq4U1YQ0vl6RBw","state":"paid","account":"card","provider":"pegas","amount":"350",
"items":[{"sku":"tea","name":"Зелёный чай","qty":2,"price":"175","vat":"vat20"},{"name":"Доставка","qty":1,"price":"0"}],
"email":"buyer@example.com","phone":"+79991234567",
"payment":{"id":"100001","url":"http://localhost:9181/pay/pegas/100001","commission":"8.75"},"paid_amount":"350",
"created_at":"2026-03-01T12:00:00.123Z","updated_at":"2026-03-01T12:01:00Z","expires_at":"2026-03-01T12:30:00Z","paid_at":"2026-03-01T12:01:00Z",
"receipt":{"operation_id":"kassa-LBqAlBc-Oq4U1YQ0vl6RBw-sale","type":"sale","state":"done","attempts":1,
"fiscal":{"fiscalDocumentNumber":12,"fiscalDocumentSign":"9530508423","fiscalDocumentDateTimeUtc":"2026-03-01T12:01:30Z","fiscalReceiptNumber":7,"shiftNumber":3,"fnNumber":"9999078900012345","registrationNumber":"0000000001012345","fnsUrl":"www.nalog.gov.ru","notPrinted":false}},
"refund":{"operation_id":"kassa-LBqAlBc-Oq4U1YQ0vl6RBw-sale_return","type":"sale_return","state":"sending","attempts":0}}`

func TestCLIBalance(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{
		"GET /kassa/balance": {200, `{"accounts":{"main":{"provider":"crystalpay","balance":"203.00","wallets":{"QIWI":"100.00","LZTMARKET":"103.00"}},` +
			`"card":{"provider":"pegas","error":{"code":"provider_unavailable","message":"pegas balance: provider unavailable (HTTP 500)"}},` +
			`"wallet":{"provider":"pegas","balance":"0.00"}}}`},
	})
	stdout, stderr, err := runCLI(t, "balance", "--address", admin.addr())
	if err != nil {
		t.Fatalf("err = %v, stderr %s", err, stderr)
	}
	want := "" +
		"ACCOUNT  PROVIDER    BALANCE  WALLETS\n" +
		"card     pegas       error    -\n" +
		"main     crystalpay  203.00   LZTMARKET 103.00, QIWI 100.00\n" +
		"wallet   pegas       0.00     -\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if stderr != "kassa: card: provider_unavailable: pegas balance: provider unavailable (HTTP 500)\n" {
		t.Errorf("stderr = %q", stderr)
	}
	got := admin.requests()
	want0 := cliRequest{Method: "GET", Path: "/kassa/balance", Origin: "http://" + admin.addr()}
	if len(got) != 1 || got[0] != want0 {
		t.Errorf("requests = %+v, want %+v", got, want0)
	}
}

// TestCLIBalanceAllFailed: when no account answers the API says 503 with
// the accounts; the table still shows them, and the command fails.
func TestCLIBalanceAllFailed(t *testing.T) {
	body := `{"accounts":{"main":{"provider":"crystalpay","error":{"code":"provider_unavailable","message":"down"}}}}`
	admin := newFakeAdmin(t, map[string]cliReply{"GET /kassa/balance": {503, body}})
	stdout, stderr, err := runCLI(t, "balance", "--address", admin.addr())
	if exitStatus(err) != 1 || stdout != "ACCOUNT  PROVIDER    BALANCE  WALLETS\nmain     crystalpay  error    -\n" ||
		stderr != "kassa: no payment account answered: main: provider_unavailable: down\n" {
		t.Errorf("err %v (exit %d)\nstdout:\n%s\nstderr:\n%s", err, exitStatus(err), stdout, stderr)
	}
	stdout, _, err = runCLI(t, "balance", "--json", "--address", admin.addr())
	if exitStatus(err) != 1 || stdout != body+"\n" {
		t.Errorf("--json: err %v, stdout %q", err, stdout)
	}
}

func TestCLIOrders(t *testing.T) {
	body := `{"orders":[` +
		`{"id":"LBqAlBc-Oq4U1YQ0vl6RBw","state":"paid","account":"card","provider":"pegas","amount":"350.00","created_at":"2026-03-01T12:00:00.5Z","paid_at":"2026-03-01T12:01:00Z","receipt_state":"done","phone":"+79991234567"},` +
		`{"id":"VywynAE6ycjlPcAzZJLb5Q","state":"pending","account":"main","provider":"crystalpay","amount":"1900.00","created_at":"2026-03-01T11:00:00+03:00","paid_at":null,"receipt_state":"none"}]}` + "\n"
	admin := newFakeAdmin(t, map[string]cliReply{"GET /kassa/orders": {200, body}})

	stdout, stderr, err := runCLI(t, "orders", "--address", admin.addr(), "--state", "paid", "--limit", "2")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	want := "" +
		"ID                      STATE    AMOUNT   ACCOUNT  CREATED                    RECEIPT\n" +
		"LBqAlBc-Oq4U1YQ0vl6RBw  paid     350.00   card     2026-03-01 12:00:00Z       done\n" +
		"VywynAE6ycjlPcAzZJLb5Q  pending  1900.00  main     2026-03-01 11:00:00+03:00  none\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if got := admin.requests(); len(got) != 1 || got[0].Method != "GET" || got[0].Path != "/kassa/orders" || got[0].Query != "limit=2&state=paid" {
		t.Errorf("requests = %+v", got)
	}

	// Without flags the API's defaults apply; --json prints the reply as is.
	stdout, _, err = runCLI(t, "orders", "--json", "--address", admin.addr())
	if err != nil || stdout != body {
		t.Errorf("--json: err %v\n%s", err, stdout)
	}
	if got := admin.requests(); len(got) != 2 || got[1].Query != "" {
		t.Errorf("requests = %+v", got)
	}

	admin.replies["GET /kassa/orders"] = cliReply{200, `{"orders":[]}`}
	if stdout, stderr, err := runCLI(t, "orders", "--address", admin.addr()); err != nil || stdout != "no orders\n" || stderr != "" {
		t.Errorf("no orders: %v %q %q", err, stdout, stderr)
	}

	// A page with more after it names the next page's cursor on stderr;
	// --from, --to and --before go to the API as they are.
	admin.replies["GET /kassa/orders"] = cliReply{200, strings.Replace(body, `]}`, `],"next":"MjAyNl9jdXJzb3I"}`, 1)}
	stdout, stderr, err = runCLI(t, "orders", "--address", admin.addr(), "--limit", "2", "--from", "2026-11-01", "--to", "2026-12-01T00:00:00+03:00", "--before", "abc")
	if err != nil || !strings.HasPrefix(stdout, "ID ") || stderr != "kassa: more orders follow: the next page is --before MjAyNl9jdXJzb3I\n" {
		t.Errorf("a page with a next: %v\n%s\n%s", err, stdout, stderr)
	}
	if got := admin.requests(); got[len(got)-1].Query != "before=abc&from=2026-11-01&limit=2&to=2026-12-01T00%3A00%3A00%2B03%3A00" {
		t.Errorf("query = %s", got[len(got)-1].Query)
	}
	if _, _, err := runCLI(t, "orders", "--address", admin.addr(), "--shop-order-id", "X-1", "--from", "2026-11-01"); exitStatus(err) != exitUsage {
		t.Errorf("--shop-order-id with --from: exit %d", exitStatus(err))
	}
}

// TestCLIExport: caddy kassa export copies the stream to stdout and counts
// its orders on stderr; the stream's error line makes it fail.
func TestCLIExport(t *testing.T) {
	csvBody := strings.Join(exportColumns, ",") + "\r\n" + "id1,2026-11-01T00:00:00+03:00\r\n" + "id2,2026-11-02T00:00:00+03:00\r\n"
	admin := newFakeAdmin(t, map[string]cliReply{"GET /kassa/orders/export": {200, csvBody}})
	stdout, stderr, err := runCLI(t, "export", "--address", admin.addr(), "--from", "2026-11-01", "--to", "2026-12-01")
	if err != nil || stdout != csvBody || !strings.HasPrefix(stderr, "kassa: exported 2 orders in ") {
		t.Errorf("export: %v\nstdout:\n%s\nstderr:\n%s", err, stdout, stderr)
	}
	if got := admin.requests(); got[0].Query != "format=csv&from=2026-11-01&to=2026-12-01" {
		t.Errorf("query = %s", got[0].Query)
	}

	admin.replies["GET /kassa/orders/export"] = cliReply{200, csvBody + exportErrorPrefix + "storage_unavailable: the disk is gone\r\n"}
	stdout, stderr, err = runCLI(t, "export", "--address", admin.addr())
	if exitStatus(err) != 1 || stdout != csvBody || !strings.Contains(stderr, "kassa: storage_unavailable: the export failed midway: the disk is gone\n") {
		t.Errorf("a failed CSV export: exit %d\nstdout:\n%s\nstderr:\n%s", exitStatus(err), stdout, stderr)
	}
	jsonl := `{"order_id":"id1"}` + "\n"
	admin.replies["GET /kassa/orders/export"] = cliReply{200, jsonl + `{"error":{"code":"storage_unavailable","message":"the disk is gone"}}` + "\n"}
	stdout, stderr, err = runCLI(t, "export", "--address", admin.addr(), "--format", "jsonl")
	if exitStatus(err) != 1 || stdout != jsonl || !strings.Contains(stderr, "kassa: exported 1 orders") || !strings.Contains(stderr, "storage_unavailable") {
		t.Errorf("a failed JSON Lines export: exit %d\nstdout:\n%s\nstderr:\n%s", exitStatus(err), stdout, stderr)
	}

	admin.replies["GET /kassa/orders/export"] = cliReply{400, `{"error":{"code":"bad_from","message":"from is a date"}}`}
	if _, stderr, err := runCLI(t, "export", "--address", admin.addr(), "--from", "x"); exitStatus(err) != 1 || stderr != "kassa: bad_from: from is a date\n" {
		t.Errorf("a refused export: exit %d, %q", exitStatus(err), stderr)
	}
	if _, _, err := runCLI(t, "export", "--address", admin.addr(), "--format", "xlsx"); exitStatus(err) != exitUsage {
		t.Errorf("--format xlsx: exit %d", exitStatus(err))
	}
}

func TestCLIEvents(t *testing.T) {
	const id = "LBqAlBc-Oq4U1YQ0vl6RBw-1"
	body := `{"events":[` +
		`{"id":"` + id + `","type":"order.paid","order_id":"LBqAlBc-Oq4U1YQ0vl6RBw","created_at":"2026-03-01T12:01:00Z","state":"failed",` +
		`"targets":[{"url":"https://backend.example/hook","state":"failed","since":"2026-03-01T12:01:00Z","attempts":31,"last_status":503,"last_error":"status 503"}]}]}` + "\n"
	admin := newFakeAdmin(t, map[string]cliReply{
		"GET /kassa/events": {200, body},
		"POST /kassa/events/" + id + "/redeliver": {200, `{"id":"` + id + `","type":"order.paid","order_id":"LBqAlBc-Oq4U1YQ0vl6RBw",` +
			`"created_at":"2026-03-01T12:01:00Z","state":"pending","targets":[]}`},
	})
	stdout, stderr, err := runCLI(t, "events", "--address", admin.addr(), "--state", "failed")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	want := "" +
		"ID                        TYPE        STATE   CREATED               ATTEMPTS  LAST ERROR\n" +
		"LBqAlBc-Oq4U1YQ0vl6RBw-1  order.paid  failed  2026-03-01 12:01:00Z  31        status 503\n"
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if got := admin.requests(); len(got) != 1 || got[0].Path != "/kassa/events" || got[0].Query != "state=failed" {
		t.Errorf("requests = %+v", got)
	}
	stdout, stderr, err = runCLI(t, "redeliver", id, "--address", admin.addr())
	if err != nil || stdout != "event "+id+" (order.paid) is pending again\n" {
		t.Errorf("redeliver: %v %q %q", err, stdout, stderr)
	}
	if got := admin.requests(); len(got) != 2 || got[1].Method != "POST" || got[1].Path != "/kassa/events/"+id+"/redeliver" {
		t.Errorf("requests = %+v", got)
	}
	if _, stderr, err := runCLI(t, "redeliver", "nope-1", "--address", admin.addr()); exitStatus(err) != 1 || !strings.Contains(stderr, "not_found") {
		t.Errorf("redeliver of an unknown event: exit %d, %q", exitStatus(err), stderr)
	}
}

func TestCLIOrder(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{"GET /kassa/orders/LBqAlBc-Oq4U1YQ0vl6RBw": {200, cliOrderRecord}})
	stdout, stderr, err := runCLI(t, "order", "LBqAlBc-Oq4U1YQ0vl6RBw", "--address", admin.addr())
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	want := `id:              LBqAlBc-Oq4U1YQ0vl6RBw
state:           paid
account:         card (pegas)
amount:          350.00
paid amount:     350.00
email:           buyer@example.com
phone:           +79991234567
payment id:      100001
payment url:     http://localhost:9181/pay/pegas/100001
commission:      8.75
created:         2026-03-01 12:00:00Z
updated:         2026-03-01 12:01:00Z
expires:         2026-03-01 12:30:00Z
paid:            2026-03-01 12:01:00Z
receipt:         done, sale, operation kassa-LBqAlBc-Oq4U1YQ0vl6RBw-sale, 1 attempt(s)
receipt fiscal:  FN 9999078900012345, FD 12, FP 9530508423, shift 3, receipt 7, 2026-03-01 12:01:30Z, RN 0000000001012345, www.nalog.gov.ru
refund:          sending, sale_return, operation kassa-LBqAlBc-Oq4U1YQ0vl6RBw-sale_return, 0 attempt(s)
items:
  SKU  NAME         QTY  PRICE   VAT    SUM
  tea  Зелёный чай  2    175.00  vat20  350.00
  -    Доставка     1    0.00    -      0.00
`
	if stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", stdout, want)
	}
	if got := admin.requests(); len(got) != 1 || got[0].Method != "GET" || got[0].Body != "" {
		t.Errorf("requests = %+v", got)
	}
	stdout, _, err = runCLI(t, "order", "LBqAlBc-Oq4U1YQ0vl6RBw", "--json", "--address", admin.addr())
	if err != nil || stdout != cliOrderRecord+"\n" {
		t.Errorf("--json: %v\n%s", err, stdout)
	}
	// An id that starts with - (new ids never do) comes after --.
	const dashed = "-aVA9Ptwe6NG04jWcGSvrQ"
	admin.replies["GET /kassa/orders/"+dashed] = cliReply{200, strings.ReplaceAll(cliOrderRecord, "LBqAlBc-Oq4U1YQ0vl6RBw", dashed)}
	stdout, stderr, err = runCLI(t, "order", "--address", admin.addr(), "--", dashed)
	if err != nil || !strings.HasPrefix(stdout, "id:              "+dashed+"\n") {
		t.Errorf("order -- %s: %v\n%s%s", dashed, err, stdout, stderr)
	}
}

// TestCLIShopOrder: orders --shop-order-id asks GET
// /kassa/orders?shop_order_id= and shows the order as order does; an id no
// order has is the API's unknown_order, exit status 1.
func TestCLIShopOrder(t *testing.T) {
	record := strings.Replace(cliOrderRecord, `"amount":"350",`, `"amount":"350","shop_order_id":"BACKEND-42",`, 1)
	admin := newFakeAdmin(t, map[string]cliReply{"GET /kassa/orders": {200, record}})
	stdout, stderr, err := runCLI(t, "orders", "--shop-order-id", "BACKEND-42", "--address", admin.addr())
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	if !strings.HasPrefix(stdout, "id:              LBqAlBc-Oq4U1YQ0vl6RBw\nstate:           paid\n") ||
		!strings.Contains(stdout, "\nshop order id:   BACKEND-42\n") || !strings.Contains(stdout, "\nitems:\n") {
		t.Errorf("stdout:\n%s", stdout)
	}
	if got := admin.requests(); len(got) != 1 || got[0].Method != "GET" || got[0].Path != "/kassa/orders" || got[0].Query != "shop_order_id=BACKEND-42" {
		t.Errorf("requests = %+v", got)
	}
	if stdout, _, err := runCLI(t, "orders", "--shop-order-id", "BACKEND-42", "--json", "--address", admin.addr()); err != nil || stdout != record+"\n" {
		t.Errorf("--json: %v\n%s", err, stdout)
	}

	admin.replies["GET /kassa/orders"] = cliReply{404, `{"error":{"code":"unknown_order","message":"no order has this shop_order_id"}}`}
	stdout, stderr, err = runCLI(t, "orders", "--shop-order-id", "BACKEND-43", "--address", admin.addr())
	if exitStatus(err) != 1 || stdout != "" || stderr != "kassa: unknown_order: no order has this shop_order_id\n" {
		t.Errorf("unknown: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
}

func TestCLIOrderActions(t *testing.T) {
	const id = "LBqAlBc-Oq4U1YQ0vl6RBw"
	record := func(edit func(map[string]any)) cliReply {
		var o map[string]any
		if err := json.Unmarshal([]byte(cliOrderRecord), &o); err != nil {
			t.Fatal(err)
		}
		edit(o)
		b, _ := json.Marshal(o)
		return cliReply{200, string(b)}
	}
	admin := newFakeAdmin(t, map[string]cliReply{
		"POST /kassa/orders/" + id + "/cancel":  record(func(o map[string]any) { o["state"] = "cancelled"; delete(o, "receipt"); delete(o, "refund") }),
		"POST /kassa/orders/" + id + "/confirm": record(func(o map[string]any) { delete(o, "receipt"); delete(o, "refund") }),
		"POST /kassa/orders/" + id + "/receipt": record(func(o map[string]any) {
			o["receipt"] = map[string]any{"operation_id": "kassa-" + id + "-sale", "type": "sale", "state": "sending"}
			delete(o, "refund")
		}),
		"POST /kassa/orders/" + id + "/refund": record(func(map[string]any) {}),
	})
	for action, want := range map[string]string{
		"cancel":  "order " + id + " is now cancelled\n",
		"confirm": "order " + id + " is now paid\n",
		"receipt": "order " + id + ": receipt queued (operation kassa-" + id + "-sale)\n",
		"refund":  "order " + id + ": refund receipt queued (operation kassa-" + id + "-sale_return)\n",
	} {
		t.Run(action, func(t *testing.T) {
			before := len(admin.requests())
			stdout, stderr, err := runCLI(t, action, id, "--address", admin.addr())
			if err != nil || stdout != want {
				t.Errorf("%s: err %v, stdout %q, stderr %q, want %q", action, err, stdout, stderr, want)
			}
			got := admin.requests()[before:]
			if len(got) != 1 || got[0].Method != "POST" || got[0].Path != "/kassa/orders/"+id+"/"+action || got[0].Body != "" {
				t.Errorf("%s: requests = %+v", action, got)
			}
		})
	}
}

// TestCLIPayout: a payout is sent under a new idempotency key each run,
// which the output names; --idempotency-key repeats one.
func TestCLIPayout(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{
		"POST /kassa/payouts": {200, `{"payment":"card","id":"555","commission":"1.50","state":"sent","order_id":"payout-1"}`},
	})
	stdout, stderr, err := runCLI(t, "payout", "--address", admin.addr(), "--payment", "card", "--amount", "100.5",
		"--to", "79990000000", "--method", "phone", "--comment", "Возврат", "--order-id", "payout-1")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	got := admin.requests()
	if len(got) != 1 || got[0].Method != "POST" || got[0].ContentType != "application/json" ||
		got[0].Body != `{"payment":"card","amount":"100.5","to":"79990000000","method":"phone","comment":"Возврат","order_id":"payout-1"}` {
		t.Errorf("requests = %+v", got)
	}
	key := got[0].Key
	if len(key) != 32 || strings.Trim(key, "0123456789abcdef") != "" {
		t.Errorf("Idempotency-Key %q, want 32 random hex characters", key)
	}
	if want := "payout of 100.50 from card to 79990000000 (phone) accepted: id 555, commission 1.50, idempotency key " + key + "\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}

	// The optional fields are left out; CrystalPAY gives no id. Each run
	// has a key of its own.
	admin.replies["POST /kassa/payouts"] = cliReply{200, `{"payment":"main","id":"","commission":"0.00","state":"sent"}`}
	stdout, _, err = runCLI(t, "payout", "--address", admin.addr(), "--payment", "main", "--amount", "100", "--to", "79990000000", "--method", "qw")
	got = admin.requests()
	if err != nil || stdout != "payout of 100.00 from main to 79990000000 (qw) accepted: id none given, commission 0.00, idempotency key "+got[1].Key+"\n" {
		t.Errorf("err %v, stdout %q", err, stdout)
	}
	if got[1].Body != `{"payment":"main","amount":"100","to":"79990000000","method":"qw"}` {
		t.Errorf("body = %s", got[1].Body)
	}
	if got[1].Key == key || len(got[1].Key) != 32 {
		t.Errorf("the second run's key %q, the first's %q: want a new one", got[1].Key, key)
	}

	// --idempotency-key repeats a payout: the API answers it replayed.
	stdout, _, err = runCLI(t, "payout", "--address", admin.addr(), "--payment", "main", "--amount", "100", "--to", "79990000000",
		"--method", "qw", "--idempotency-key", got[1].Key)
	if got := admin.requests(); len(got) != 3 || got[2].Key != got[1].Key {
		t.Errorf("--idempotency-key %s sent %q", got[1].Key, got[2].Key)
	}
	if err != nil || !strings.Contains(stdout, "already made under this key, not paid again") {
		t.Errorf("a repeat: err %v, stdout %q", err, stdout)
	}
	if _, stderr, err := runCLI(t, "payout", "--address", admin.addr(), "--payment", "main", "--amount", "100", "--to", "1",
		"--method", "qw", "--idempotency-key", ""); exitStatus(err) != 2 || !strings.Contains(stderr, "--idempotency-key") {
		t.Errorf("an empty --idempotency-key: exit %d, stderr %q", exitStatus(err), stderr)
	}

	// A payout whose id is not known says so.
	admin.replies["POST /kassa/payouts"] = cliReply{200, `{"payment":"card","id":"","commission":"","state":"sent","order_id":"payout-x","message":"an earlier send of it went through"}`}
	stdout, _, _ = runCLI(t, "payout", "--address", admin.addr(), "--payment", "card", "--amount", "1", "--to", "1", "--method", "card")
	if !strings.Contains(stdout, "id none given, commission unknown") || !strings.Contains(stdout, "\nnote: an earlier send of it went through\n") {
		t.Errorf("a payout with no id: %q", stdout)
	}
}

// TestCLIPayoutUnknown: when a payout's outcome is unknown, the error
// names its key and how to repeat it; a plain refusal does not.
func TestCLIPayoutUnknown(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{
		"POST /kassa/payouts": {503, `{"error":{"code":"payout_outcome_unknown","message":"the payout may have been made"}}`},
	})
	args := []string{"payout", "--address", admin.addr(), "--payment", "main", "--amount", "1", "--to", "1", "--method", "qw"}
	_, stderr, err := runCLI(t, args...)
	key := admin.requests()[0].Key
	if exitStatus(err) != 1 || !strings.HasPrefix(stderr, "kassa: payout_outcome_unknown: the payout may have been made") ||
		!strings.Contains(stderr, "--idempotency-key "+key) {
		t.Errorf("unknown outcome: exit %d, stderr %q", exitStatus(err), stderr)
	}
	admin.replies["POST /kassa/payouts"] = cliReply{502, `{"error":{"code":"provider_error","message":"insufficient funds"}}`}
	if _, stderr, _ := runCLI(t, args...); stderr != "kassa: provider_error: insufficient funds\n" {
		t.Errorf("a refusal: stderr %q", stderr)
	}
}

// TestCLIPayoutTwoSteps: a payout of a provider that tracks payouts shows
// where it stands; one whose outcome is pending names the key to repeat it
// with.
func TestCLIPayoutTwoSteps(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{
		"POST /kassa/payouts": {200, `{"payment":"v3","id":"777_po0001","commission":"1.50","state":"sent","payout_state":"processing","order_id":"payout-1"}`},
	})
	args := []string{"payout", "--address", admin.addr(), "--payment", "v3", "--amount", "100", "--to", "79990000000", "--method", "CARD"}
	stdout, stderr, err := runCLI(t, args...)
	key := admin.requests()[0].Key
	if want := "payout of 100.00 from v3 to 79990000000 (CARD) accepted: id 777_po0001 (processing), commission 1.50, idempotency key " + key + "\n"; err != nil || stdout != want {
		t.Errorf("err %v, stderr %q\nstdout %q\nwant   %q", err, stderr, stdout, want)
	}
	admin.replies["POST /kassa/payouts"] = cliReply{503, `{"error":{"code":"payout_outcome_pending","message":"payout 777_po0001 was created at crystalpay and its outcome is not known yet"}}`}
	_, stderr, err = runCLI(t, args...)
	key = admin.requests()[1].Key
	if exitStatus(err) != 1 || !strings.HasPrefix(stderr, "kassa: payout_outcome_pending: payout 777_po0001") || !strings.Contains(stderr, "--idempotency-key "+key) {
		t.Errorf("pending: exit %d, stderr %q", exitStatus(err), stderr)
	}
}

// TestCLIPayoutStatus: caddy kassa payout-status asks GET
// /kassa/payouts/{id}, with --payment when given, and shows the answer;
// --json prints it as it is. Before: there was no such command.
func TestCLIPayoutStatus(t *testing.T) {
	body := `{"payment":"v3","id":"777_po0001","state":"paid","commission":"1.50"}`
	admin := newFakeAdmin(t, map[string]cliReply{
		"GET /kassa/payouts/777_po0001": {200, body},
		"GET /kassa/payouts/777_po0404": {404, `{"error":{"code":"unknown_payout","message":"crystalpay has no payout 777_po0404 on account v3"}}`},
	})
	stdout, stderr, err := runCLI(t, "payout-status", "777_po0001", "--address", admin.addr())
	want := "payment:     v3\npayout:      777_po0001\nstate:       paid\ncommission:  1.50\n"
	if err != nil || stdout != want {
		t.Errorf("err %v, stderr %q, stdout:\n%s\nwant:\n%s", err, stderr, stdout, want)
	}
	stdout, _, err = runCLI(t, "payout-status", "777_po0001", "--payment", "v3", "--json", "--address", admin.addr())
	if err != nil || stdout != body+"\n" {
		t.Errorf("--json: err %v, stdout %q", err, stdout)
	}
	_, stderr, err = runCLI(t, "payout-status", "777_po0404", "--address", admin.addr())
	if exitStatus(err) != 1 || stderr != "kassa: unknown_payout: crystalpay has no payout 777_po0404 on account v3\n" {
		t.Errorf("unknown payout: exit %d, stderr %q", exitStatus(err), stderr)
	}
	got := admin.requests()
	if len(got) != 3 || got[0].Method != "GET" || got[0].Path != "/kassa/payouts/777_po0001" || got[0].Query != "" ||
		got[1].Query != "payment=v3" || got[2].Path != "/kassa/payouts/777_po0404" {
		t.Errorf("requests = %+v", got)
	}
}

func TestCLICash(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{
		"POST /kassa/cash/deposit":  {202, `{"operation_id":"cash-abc","state":"queued"}`},
		"POST /kassa/cash/withdraw": {202, `{"operation_id":"till-out-1","state":"queued"}`},
		"GET /kassa/operations/till-out-1": {200, `{"operation_id":"till-out-1","state":"done",` +
			`"fiscal":{"fiscalDocumentNumber":4,"fiscalDocumentSign":"123","fiscalReceiptNumber":0,"shiftNumber":1,"fnNumber":"99990789","registrationNumber":"","fnsUrl":"","notPrinted":true}}`},
	})
	stdout, stderr, err := runCLI(t, "cash", "deposit", "--amount", "500", "--address", admin.addr())
	if err != nil || stdout != "cash deposit of 500.00 queued: operation cash-abc (see: caddy kassa operation cash-abc)\n" {
		t.Errorf("deposit: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	stdout, stderr, err = runCLI(t, "cash", "withdraw", "--amount", "100.00", "--cashbox", "11111111-2222-3333-4444-555555555555",
		"--operation-id", "till-out-1", "--address", admin.addr())
	if err != nil || stdout != "cash withdraw of 100.00 queued: operation till-out-1 (see: caddy kassa operation till-out-1)\n" {
		t.Errorf("withdraw: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	stdout, stderr, err = runCLI(t, "operation", "till-out-1", "--address", admin.addr())
	want := "operation:  till-out-1\nstate:      done\nfiscal:     FN 99990789, FD 4, FP 123, shift 1, receipt 0, not printed\n"
	if err != nil || stdout != want {
		t.Errorf("operation: err %v, stderr %q, stdout:\n%s\nwant:\n%s", err, stderr, stdout, want)
	}
	got := admin.requests()
	if len(got) != 3 || got[0].Path != "/kassa/cash/deposit" || got[0].Body != `{"amount":"500"}` ||
		got[1].Path != "/kassa/cash/withdraw" || got[1].Body != `{"amount":"100.00","cashbox_id":"11111111-2222-3333-4444-555555555555","operation_id":"till-out-1"}` ||
		got[2].Method != "GET" || got[2].Path != "/kassa/operations/till-out-1" {
		t.Errorf("requests = %+v", got)
	}
}

// TestCLIAPIError: an error reply is "kassa: code: message" on stderr and
// exit status 1; with --json its JSON is printed too.
func TestCLIAPIError(t *testing.T) {
	notFound := `{"error":{"code":"unknown_order","message":"no such order"}}`
	admin := newFakeAdmin(t, map[string]cliReply{
		"GET /kassa/orders/AAAAAAAAAAAAAAAAAAAAAA": {404, notFound},
		"POST /kassa/payouts":                      {400, `{"error":{"code":"bad_payment","message":"no payment account \"nope\" (there are: card, main)","field":"payment"}}`},
		"GET /kassa/balance":                       {503, `{"error":{"code":"no_kassa_app","message":"the running config has no kassa app: add the kassa global option"}}`},
		"GET /kassa/orders":                        {403, `{"error":"host not allowed: example.com"}`},
		"POST /kassa/cash/deposit":                 {502, "<html>bad gateway</html>"},
	})
	for _, tc := range []struct {
		args   []string
		code   string
		stderr string
	}{
		{[]string{"order", "AAAAAAAAAAAAAAAAAAAAAA"}, "unknown_order", "kassa: unknown_order: no such order\n"},
		{[]string{"payout", "--payment", "nope", "--amount", "5", "--to", "1", "--method", "qw"}, "bad_payment",
			"kassa: bad_payment: no payment account \"nope\" (there are: card, main)\n"},
		{[]string{"balance"}, "no_kassa_app", "kassa: no_kassa_app: the running config has no kassa app: add the kassa global option\n"},
		{[]string{"orders"}, "", "kassa: HTTP 403: host not allowed: example.com\n"},
		{[]string{"cash", "deposit", "--amount", "1"}, "", "kassa: HTTP 502: Bad Gateway\n"},
		{[]string{"cancel", "x"}, "not_found", "kassa: not_found: no such kassa admin route\n"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			stdout, stderr, err := runCLI(t, append(tc.args, "--address", admin.addr())...)
			var ae *apiError
			if exitStatus(err) != 1 || !errors.As(err, &ae) || ae.Code != tc.code || stderr != tc.stderr || stdout != "" {
				t.Errorf("%v: err %v (exit %d), stderr %q, stdout %q; want code %q, stderr %q", tc.args, err, exitStatus(err), stderr, stdout, tc.code, tc.stderr)
			}
		})
	}
	stdout, stderr, err := runCLI(t, "order", "AAAAAAAAAAAAAAAAAAAAAA", "--json", "--address", admin.addr())
	if exitStatus(err) != 1 || stdout != notFound+"\n" || stderr != "kassa: unknown_order: no such order\n" {
		t.Errorf("--json: err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
}

// TestCLIUsageErrors: a mistake on the command line is exit status 2, with
// a message naming what is wrong, and nothing is sent.
func TestCLIUsageErrors(t *testing.T) {
	admin := newFakeAdmin(t, nil)
	payout := func(drop string, edits ...string) []string {
		flags := map[string]string{"--payment": "main", "--amount": "100", "--to": "7999", "--method": "qw"}
		for i := 0; i+1 < len(edits); i += 2 {
			flags[edits[i]] = edits[i+1]
		}
		args := []string{"payout"}
		for _, f := range []string{"--payment", "--amount", "--to", "--method"} {
			if f != drop {
				args = append(args, f, flags[f])
			}
		}
		return args
	}
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{nil, "caddy kassa needs a command: balance, cancel, cash, check, confirm, events, export, migrate, operation, order, orders, payout, payout-status, receipt, redeliver, refund"},
		{[]string{"frobnicate"}, `unknown command "frobnicate" for caddy kassa`},
		{[]string{"order"}, "caddy kassa order needs the order id"},
		{[]string{"order", ""}, "caddy kassa order: the order id is empty"},
		{[]string{"order", "a", "b"}, "caddy kassa order takes one order id, got 2 arguments"},
		{[]string{"cancel"}, "caddy kassa cancel needs the order id"},
		{[]string{"confirm"}, "caddy kassa confirm needs the order id"},
		{[]string{"receipt"}, "caddy kassa receipt needs the order id"},
		{[]string{"refund"}, "caddy kassa refund needs the order id"},
		{[]string{"operation"}, "caddy kassa operation needs the operation id"},
		{[]string{"balance", "main"}, `caddy kassa balance takes no arguments, got ["main"]`},
		{[]string{"orders", "--limit", "0"}, "--limit 0: want a whole number from 1 to 1000"},
		{[]string{"orders", "--limit", "many"}, `invalid argument "many" for "--limit" flag`},
		{[]string{"orders", "--state", "lost"}, `--state "lost" is not an order state`},
		{[]string{"orders", "--colour"}, "unknown flag: --colour"},
		{[]string{"orders", "--shop-order-id", ""}, `--shop-order-id "": want 1 to 64 ASCII letters`},
		{[]string{"orders", "--shop-order-id", "BACKEND 42"}, `--shop-order-id "BACKEND 42": want 1 to 64 ASCII letters`},
		{[]string{"orders", "--shop-order-id", "BACKEND-42", "--state", "paid"}, "--shop-order-id names one order: it takes no --state, --limit, --from, --to or --before"},
		{[]string{"orders", "--shop-order-id", "BACKEND-42", "--limit", "5"}, "--shop-order-id names one order: it takes no --state, --limit, --from, --to or --before"},
		{[]string{"events", "--state", "lost"}, `--state "lost" is not an event state`},
		{[]string{"events", "--limit", "1001"}, "--limit 1001: want a whole number from 1 to 1000"},
		{[]string{"redeliver"}, "caddy kassa redeliver needs the event id"},
		{[]string{"payout-status"}, "caddy kassa payout-status needs the payout id"},
		{[]string{"payout-status", "a", "b"}, "caddy kassa payout-status takes one payout id, got 2 arguments"},
		{[]string{"payout-status", "777 po"}, `payout id "777 po": want 1 to 64 ASCII letters`},
		{[]string{"payout-status", "777_po0001", "--payment", ""}, "caddy kassa payout-status needs --payment"},
		{payout("--payment"), "caddy kassa payout needs --payment"},
		{payout("--amount"), "caddy kassa payout needs --amount"},
		{payout("--to"), "caddy kassa payout needs --to"},
		{payout("--method"), "caddy kassa payout needs --method"},
		{payout("", "--amount", "1e3"), `--amount "1e3" is not an amount`},
		{payout("", "--amount", "-5"), `--amount "-5" is not an amount`},
		{payout("", "--amount", "1,50"), `--amount "1,50" is not an amount`},
		{payout("", "--amount", "0.00"), "--amount must be more than 0"},
		{[]string{"cash"}, "caddy kassa cash needs a command: deposit, withdraw"},
		{[]string{"cash", "refill"}, `unknown command "refill" for caddy kassa cash`},
		{[]string{"cash", "deposit"}, "caddy kassa cash deposit needs --amount"},
		{[]string{"cash", "withdraw", "--amount", "10.001"}, `--amount "10.001" is not an amount`},
		{[]string{"balance", "--address", "https://localhost:2019"}, "the CLI talks to the local admin endpoint over plain HTTP"},
		{[]string{"balance", "--address", "ftp://localhost:2019"}, "want host:port or http://host:port"},
		{[]string{"balance", "--address", "localhost:2019-2020"}, "admin address"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			args := tc.args
			if len(args) > 0 && !strings.HasPrefix(strings.Join(args, " "), "balance --address") {
				args = append(args, "--address", admin.addr())
			}
			stdout, stderr, err := runCLI(t, args...)
			if exitStatus(err) != 2 || !strings.HasPrefix(stderr, "kassa: ") || !strings.Contains(stderr, tc.msg) ||
				!strings.Contains(stderr, "--help' for usage.") || stdout != "" {
				t.Errorf("%q: exit %d (%v)\nstderr %q\nwant it to hold %q", tc.args, exitStatus(err), err, stderr, tc.msg)
			}
		})
	}
	if got := admin.requests(); len(got) != 0 {
		t.Errorf("usage errors sent %+v", got)
	}
}

// TestCLIAddress: the admin endpoint as host:port, as a URL, or from the
// admin listen address of --config; an endpoint that does not answer is
// exit status 1.
func TestCLIAddress(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{"GET /kassa/orders": {200, `{"orders":[]}`}})
	config := filepath.Join(t.TempDir(), "caddy.json")
	if err := os.WriteFile(config, []byte(`{"admin":{"listen":"`+admin.addr()+`"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, flags := range [][]string{
		{"--address", admin.addr()},
		{"--address", "http://" + admin.addr()},
		{"--address", "http://" + admin.addr() + "/"},
		{"--config", config},
	} {
		t.Run(strings.Join(flags, " "), func(t *testing.T) {
			stdout, stderr, err := runCLI(t, append([]string{"orders"}, flags...)...)
			if err != nil || stdout != "no orders\n" {
				t.Errorf("%v: err %v, stdout %q, stderr %q", flags, err, stdout, stderr)
			}
		})
	}
	for _, r := range admin.requests() {
		if r.Origin != "http://"+admin.addr() {
			t.Errorf("Origin = %q", r.Origin)
		}
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	addr := closed.Listener.Addr().String()
	closed.Close()
	_, stderr, err := runCLI(t, "balance", "--address", addr)
	if exitStatus(err) != 1 || !strings.HasPrefix(stderr, "kassa: cannot reach the admin API at "+addr+": ") {
		t.Errorf("closed endpoint: exit %d, stderr %q", exitStatus(err), stderr)
	}
}

// TestCLIUnixSocket: the admin endpoint on a unix socket, named with or
// without the |mode suffix Caddy accepts there, by --address or by the
// admin address of --config; no Origin is sent, as caddycmd sends none.
func TestCLIUnixSocket(t *testing.T) {
	admin := newFakeAdmin(t, map[string]cliReply{"GET /kassa/orders": {200, `{"orders":[]}`}})
	sock := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: admin.srv.Config.Handler}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	config := filepath.Join(t.TempDir(), "caddy.json")
	if err := os.WriteFile(config, []byte(`{"admin":{"listen":"unix/`+sock+`|0660"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := [][]string{
		{"--address", "unix/" + sock},
		{"--address", "unix/" + sock + "|0660"},
		{"--config", config},
	}
	for _, flags := range cases {
		t.Run(strings.Join(flags, " "), func(t *testing.T) {
			stdout, stderr, err := runCLI(t, append([]string{"orders"}, flags...)...)
			if err != nil || stdout != "no orders\n" {
				t.Errorf("err %v, stdout %q, stderr %q", err, stdout, stderr)
			}
		})
	}
	got := admin.requests()
	if len(got) != len(cases) {
		t.Fatalf("the socket got %d requests, want %d", len(got), len(cases))
	}
	for _, r := range got {
		if r.Origin != "" || r.Path != "/kassa/orders" {
			t.Errorf("request %+v, want GET /kassa/orders without an Origin", r)
		}
	}
}

// TestCLIAdminOff: a --config whose admin endpoint is off is an error that
// says so; the CLI does not fall back to localhost:2019, where another
// Caddy may listen.
func TestCLIAdminOff(t *testing.T) {
	config := filepath.Join(t.TempDir(), "caddy.json")
	if err := os.WriteFile(config, []byte(`{"admin":{"disabled":true}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, err := runCLI(t, "orders", "--config", config)
	want := "kassa: finding the admin address: " + config + " turns the admin endpoint off (admin off), and caddy kassa works only through it\n"
	if exitStatus(err) != 1 || stdout != "" || stderr != want {
		t.Errorf("exit %d, stdout %q, stderr %q", exitStatus(err), stdout, stderr)
	}
}

// TestCLITimeout: a reply slower than --timeout is an error; for a POST
// the operator is told it may have been done.
func TestCLITimeout(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer slow.Close()
	defer close(release)
	_, stderr, err := runCLI(t, "balance", "--timeout", "50ms", "--address", slow.Listener.Addr().String())
	if exitStatus(err) != 1 || !strings.Contains(stderr, "did not answer within 50ms (see --timeout)") {
		t.Errorf("balance: exit %d, stderr %q", exitStatus(err), stderr)
	}
	_, stderr, err = runCLI(t, "payout", "--payment", "main", "--amount", "1", "--to", "1", "--method", "qw",
		"--timeout", "50ms", "--address", slow.Listener.Addr().String())
	if exitStatus(err) != 1 || !strings.Contains(stderr, "it may still have done what was asked") || !strings.Contains(stderr, "re-run this command with --idempotency-key ") {
		t.Errorf("payout: exit %d, stderr %q", exitStatus(err), stderr)
	}
	_, stderr, err = runCLI(t, "balance", "--timeout", "0s", "--address", slow.Listener.Addr().String())
	if exitStatus(err) != 2 || !strings.Contains(stderr, "--timeout must be a positive duration") {
		t.Errorf("--timeout 0s: exit %d, stderr %q", exitStatus(err), stderr)
	}
}

// TestCLIRegistered: `caddy kassa` is registered with its help.
func TestCLIRegistered(t *testing.T) {
	c, ok := caddycmd.Commands()["kassa"]
	if !ok || c.Short == "" || c.Long == "" || c.Usage == "" || c.CobraFunc == nil {
		t.Fatalf("kassa command = %+v", c)
	}
	stdout, _, err := runCLI(t, "--help")
	for _, sub := range []string{"balance", "orders", "order", "cancel", "confirm", "receipt", "refund", "payout", "payout-status", "cash", "operation", "--address", "--json"} {
		if !strings.Contains(stdout, "  "+sub+" ") {
			t.Errorf("help does not list %s", sub)
		}
	}
	if err != nil {
		t.Errorf("help: %v", err)
	}
}

// TestCLIRefundContacts: caddy kassa refund --email --phone sends the
// contacts, cleaned, as the refund's body; a malformed one is a usage
// error, and nothing is sent.
func TestCLIRefundContacts(t *testing.T) {
	const id = "LBqAlBc-Oq4U1YQ0vl6RBw"
	admin := newFakeAdmin(t, map[string]cliReply{"POST /kassa/orders/" + id + "/refund": {200, cliOrderRecord}})
	stdout, stderr, err := runCLI(t, "refund", id, "--email", " buyer@example.com ", "--phone", "8 999 123-45-67", "--address", admin.addr())
	if err != nil || stdout != "order "+id+": refund receipt queued (operation kassa-"+id+"-sale_return)\n" {
		t.Errorf("err %v, stdout %q, stderr %q", err, stdout, stderr)
	}
	if got := admin.requests(); len(got) != 1 || got[0].ContentType != "application/json" ||
		got[0].Body != `{"email":"buyer@example.com","phone":"+79991234567"}` {
		t.Errorf("requests = %+v", got)
	}
	for flag, want := range map[string]string{"--email=no-at-sign": "--email: the email is not an email address",
		"--phone=+7 999": "--phone: the phone is not a phone number"} {
		stdout, stderr, err = runCLI(t, "refund", id, flag, "--address", admin.addr())
		if exitStatus(err) != 2 || stdout != "" || !strings.Contains(stderr, want) {
			t.Errorf("%s: err %v, stdout %q, stderr %q; want a usage error", flag, err, stdout, stderr)
		}
	}
	if got := admin.requests(); len(got) != 1 {
		t.Errorf("a malformed contact was sent, or none before: %+v", got)
	}
	admin.replies["POST /kassa/orders/"+id+"/refund"] = cliReply{409, `{"error":{"code":"contact_required","message":"the buyer's contacts were erased (erase_contacts_after): give the e-mail or phone the buyer wants the refund receipt at (email, phone)"}}`}
	_, stderr, err = runCLI(t, "refund", id, "--address", admin.addr())
	if exitStatus(err) != 1 || !strings.HasPrefix(stderr, "kassa: contact_required: the buyer's contacts were erased") {
		t.Errorf("contact_required: err %v, stderr %q", err, stderr)
	}
	if got := admin.requests(); len(got) != 2 || got[1].Body != "" {
		t.Errorf("a refund without flags sends no body: %+v", got)
	}
}
