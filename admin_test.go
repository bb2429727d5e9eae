package kassa

// Tests of the admin API's routes (admin.go), in-process: its body reader,
// and its handlers' answers.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// FuzzAdminBody feeds arbitrary bodies to the admin API's strict JSON
// reader, as a payout and as a cash operation. A refusal is a 400 (413 for
// a body over 64 KiB) RequestError with a safe message; an accepted body is
// one valid-UTF-8 JSON value whose fields read back the same.
func FuzzAdminBody(f *testing.F) {
	for _, s := range []string{
		`{"payment":"main","amount":"100","to":"79990000000","method":"qw","comment":"Зарплата"}`,
		`{"payment":"card","amount":"100.50","to":"4111111111111111","method":"card","order_id":"payout-1"}`,
		`{"amount":"500.00","cashbox_id":"da2bb850-63ef-47e4-8b45-7b5b841eaa9b"}`,
		`{"amount":"500.00","operation_id":"cash-1"}`,
		`{"amount":500}`,
		`{"amount":"1","nope":1}`,
		`{"amount":"1"}}`,
		`{"amount":"1"}]`,
		`{"amount":"1"} {"amount":"2"}`,
		`{"to":"` + "\xff\xfe" + `"}`,
		`{"comment":"a\r\nX-Injected: 1"}`,
		`{"payment":"\u202emain"}`,
		`null`, `[]`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{new(payoutRequest), new(cashRequest)} {
			r := httptest.NewRequest(http.MethodPost, "/kassa/payouts", strings.NewReader(string(body)))
			err := decodeAdminBody(r, v)
			if err != nil {
				re := checkRequestError(t, err, http.StatusBadRequest, http.StatusRequestEntityTooLarge)
				if (re.Status == http.StatusRequestEntityTooLarge) != (len(body) > maxAdminBody) {
					t.Fatalf("%d-byte body: status %d", len(body), re.Status)
				}
				continue
			}
			if len(body) > maxAdminBody {
				t.Fatalf("accepted a %d-byte body", len(body))
			}
			if !json.Valid(body) || !utf8.Valid(body) {
				t.Fatalf("accepted a body that is not one valid-UTF-8 JSON value: %q", body)
			}
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			back := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := decodeAdminBody(httptest.NewRequest(http.MethodPost, "/", strings.NewReader(string(again))), back); err != nil {
				t.Fatalf("its own encoding %s is refused: %v", again, err)
			}
			if !reflect.DeepEqual(v, back) {
				t.Fatalf("reads back as %+v, want %+v", back, v)
			}
		}
	})
}

// TestAdminPayoutWithoutKey: POST /kassa/payouts without a usable
// Idempotency-Key is a 400 that names the header, and sends nothing.
func TestAdminPayoutWithoutKey(t *testing.T) {
	ctx := context.Background()
	crystal := new(payoutProvider)
	a := payoutApp(t, crystal, new(payoutProvider))
	w := postPayout(ctx, a, "", crystalPayout)
	if w.Code != http.StatusBadRequest || errorCode(t, w) != "idempotency_key_required" ||
		!strings.Contains(w.Body.String(), "Idempotency-Key") {
		t.Errorf("no key: %d %s", w.Code, w.Body)
	}
	if w := postPayout(ctx, a, "bad\x01key", crystalPayout); w.Code != http.StatusBadRequest || errorCode(t, w) != "bad_idempotency_key" {
		t.Errorf("a bad key: %d %s", w.Code, w.Body)
	}
	if calls, _ := crystal.counts(); calls != 0 {
		t.Errorf("%d payouts sent without a usable key", calls)
	}
}

// TestAdminAnswers: the admin API's order routes through serveAdmin, as
// Caddy's admin endpoint calls them: the list, one order, cancel and
// confirm, and the errors of each.
func TestAdminAnswers(t *testing.T) {
	p := newLifeProvider("pegas")
	s := newLifeShop(t, p, nil, nil)
	toCancel, toConfirm := s.created("key-admin-cancel-01"), s.created("key-admin-confirm-1")
	paid := s.created("key-admin-paid-0001")
	p.pay(paid.Payment.ID)
	s.pass()
	const unknown = "AAAAAAAAAAAAAAAAAAAAAA"
	for _, tc := range []struct {
		name, method, target string
		status               int
		want                 string // in the answer's body
	}{
		{"orders", http.MethodGet, "/kassa/orders", http.StatusOK, `"id":"` + paid.ID + `"`},
		{"paid orders", http.MethodGet, "/kassa/orders?state=paid&limit=1", http.StatusOK, `"state":"paid"`},
		{"orders, bad limit", http.MethodGet, "/kassa/orders?limit=0", http.StatusBadRequest, `"code":"bad_limit"`},
		{"one order", http.MethodGet, "/kassa/orders/" + paid.ID, http.StatusOK, `"id":"` + paid.ID + `"`},
		{"unknown order", http.MethodGet, "/kassa/orders/" + unknown, http.StatusNotFound, `"code":"unknown_order"`},
		{"cancel", http.MethodPost, "/kassa/orders/" + toCancel.ID + "/cancel", http.StatusOK, `"state":"cancelled"`},
		{"cancel a paid order", http.MethodPost, "/kassa/orders/" + paid.ID + "/cancel", http.StatusConflict, `"code":"not_pending"`},
		{"cancel an unknown order", http.MethodPost, "/kassa/orders/" + unknown + "/cancel", http.StatusNotFound, `"code":"unknown_order"`},
		{"confirm", http.MethodPost, "/kassa/orders/" + toConfirm.ID + "/confirm", http.StatusOK, `"state":"paid"`},
		{"no such action", http.MethodPost, "/kassa/orders/" + paid.ID + "/nope", http.StatusNotFound, `"code":"not_found"`},
		{"wrong method", http.MethodDelete, "/kassa/orders", http.StatusMethodNotAllowed, `"code":"method_not_allowed"`},
		{"no such route", http.MethodGet, "/kassa/nowhere", http.StatusNotFound, `"code":"not_found"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if err := s.app.serveAdmin(w, httptest.NewRequest(tc.method, tc.target, nil)); err != nil {
				writeAdminError(w, err)
			}
			if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.want) {
				t.Errorf("%d %.300s; want %d, a body with %s", w.Code, w.Body, tc.status, tc.want)
			}
		})
	}
}

// readCountingStorage records the keys read from a storage (Load, Stat)
// and the prefixes listed, once record is on.
type readCountingStorage struct {
	certmagic.Storage
	mu     sync.Mutex
	record bool
	reads  []string
	lists  []string
}

func (s *readCountingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	s.note(&s.reads, key)
	return s.Storage.Load(ctx, key)
}

func (s *readCountingStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	s.note(&s.reads, key)
	return s.Storage.Stat(ctx, key)
}

func (s *readCountingStorage) List(ctx context.Context, prefix string, recursive bool) ([]string, error) {
	s.note(&s.lists, prefix)
	return s.Storage.List(ctx, prefix, recursive)
}

func (s *readCountingStorage) note(to *[]string, key string) {
	s.mu.Lock()
	if s.record {
		*to = append(*to, key)
	}
	s.mu.Unlock()
}

// TestAdminShopOrder: GET /kassa/orders?shop_order_id= answers the order a
// proxied checkout made for the upstream's order id, as GET
// /kassa/orders/{id} does, by reading its idempotency mapping and that one
// order: among 200 other orders it lists nothing and reads no other order.
// A buyer's Idempotency-Key is never taken for a shop's id, and the
// parameter is checked as the checkout checks the upstream's id.
func TestAdminShopOrder(t *testing.T) {
	storage := &readCountingStorage{Storage: newBenchStorage()}
	s := newLifeShop(t, newLifeProvider("pegas"), storage, nil)
	proxied := &Checkout{app: s.app, acc: s.app.accounts["main"], logger: zap.NewNop(), MaxBody: defaultMaxBody,
		Amount: "{test.amount}", OrderID: "{test.order}", Email: "{test.email}"}
	checkout := func(shopID, key string) string {
		t.Helper()
		req := httptest.NewRequest(http.MethodPost, "/pay", nil)
		req.Header.Set("Accept", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key) // a proxied checkout goes by the shop's id
		}
		repl := caddy.NewReplacer()
		repl.Set("test.amount", "500.00")
		repl.Set("test.order", shopID)
		repl.Set("test.email", "buyer@example.com")
		w := httptest.NewRecorder()
		if err := proxied.ServeHTTP(w, req.WithContext(context.WithValue(req.Context(), caddy.ReplacerCtxKey, repl)), nil); err != nil {
			t.Fatal(err)
		}
		var v struct {
			OrderID string `json:"order_id"`
		}
		if w.Code != http.StatusCreated || json.Unmarshal(w.Body.Bytes(), &v) != nil {
			t.Fatalf("checkout %s: %d %s", shopID, w.Code, w.Body)
		}
		return v.OrderID
	}
	for i := range 100 {
		checkout(fmt.Sprintf("BACKEND-%d", 1000+i), "")
		s.created(fmt.Sprintf("buyer-key-0000%04d", i))
	}
	target := checkout("BACKEND-42", "buyer-key-00000042")
	if again := checkout("BACKEND-42", ""); again != target {
		t.Fatalf("BACKEND-42 posted again made order %s, want %s", again, target)
	}

	storage.mu.Lock()
	storage.record = true
	storage.mu.Unlock()
	w := httptest.NewRecorder()
	if err := s.app.serveAdmin(w, httptest.NewRequest(http.MethodGet, "/kassa/orders?shop_order_id=BACKEND-42", nil)); err != nil {
		t.Fatal(err)
	}
	storage.mu.Lock()
	storage.record = false
	reads, lists := storage.reads, storage.lists
	storage.mu.Unlock()
	var got Order
	if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &got) != nil || got.ID != target || got.ShopOrderID != "BACKEND-42" {
		t.Fatalf("lookup: %d %.300s; want order %s", w.Code, w.Body, target)
	}
	one := httptest.NewRecorder()
	if err := s.app.serveAdmin(one, httptest.NewRequest(http.MethodGet, "/kassa/orders/"+target, nil)); err != nil || one.Body.String() != w.Body.String() {
		t.Errorf("the lookup answers\n%s\nGET /kassa/orders/%s answers\n%s", w.Body, target, one.Body)
	}
	if len(lists) != 0 {
		t.Errorf("the lookup listed %q", lists)
	}
	mapping := idempotencyStorageKey(shopIdempotencyKey("BACKEND-42"))
	if len(reads) == 0 || reads[0] != mapping {
		t.Errorf("reads %q, want the mapping %s first", reads, mapping)
	}
	for _, key := range reads[1:] {
		if !strings.Contains(key, target) {
			t.Errorf("the lookup read %s, which is not order %s", key, target)
		}
	}

	for _, tc := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"unknown", "shop_order_id=BACKEND-43", http.StatusNotFound, "unknown_order"},
		{"a buyer's key", "shop_order_id=buyer-key-00000007", http.StatusNotFound, "unknown_order"},
		{"empty", "shop_order_id=", http.StatusBadRequest, "bad_shop_order_id"},
		{"a space", "shop_order_id=BACKEND+42", http.StatusBadRequest, "bad_shop_order_id"},
		{"a slash", "shop_order_id=BACKEND%2F42", http.StatusBadRequest, "bad_shop_order_id"},
		{"too long", "shop_order_id=" + strings.Repeat("4", maxShopOrderID+1), http.StatusBadRequest, "bad_shop_order_id"},
		{"twice", "shop_order_id=BACKEND-42&shop_order_id=BACKEND-1000", http.StatusBadRequest, "bad_shop_order_id"},
		{"with state", "shop_order_id=BACKEND-42&state=pending", http.StatusBadRequest, "bad_query"},
		{"with limit", "shop_order_id=BACKEND-42&limit=1", http.StatusBadRequest, "bad_query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := httptest.NewRecorder()
			if err := s.app.serveAdmin(w, httptest.NewRequest(http.MethodGet, "/kassa/orders?"+tc.query, nil)); err != nil {
				writeAdminError(w, err)
			}
			if w.Code != tc.status || errorCode(t, w) != tc.code {
				t.Errorf("%d %s; want %d %s", w.Code, w.Body, tc.status, tc.code)
			}
		})
	}
}

// adminGet serves a GET of the admin API, errors answered as the API
// answers them.
func adminGet(t *testing.T, a *App, target string) *httptest.ResponseRecorder {
	t.Helper()
	w := httptest.NewRecorder()
	if err := a.serveAdmin(w, httptest.NewRequest(http.MethodGet, target, nil)); err != nil {
		writeAdminError(w, err)
	}
	return w
}

// indexedApp is an app on a fresh file storage with a complete time
// index, in Moscow time.
func indexedApp(t *testing.T) *App {
	t.Helper()
	a := &App{logger: zap.NewNop(), now: time.Now, TimeZone: "Europe/Moscow"}
	a.useStorage(&certmagic.FileStorage{Path: t.TempDir()})
	zone, err := time.LoadLocation(a.TimeZone)
	if err != nil {
		t.Fatal(err)
	}
	a.zone = zone
	if _, err := a.orders.Backfill(context.Background()); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestAdminOrdersPages: GET /kassa/orders pages by its next cursor to the
// end, takes dates in the app's time zone, and refuses bad queries with a
// 400 and a code.
func TestAdminOrdersPages(t *testing.T) {
	a := indexedApp(t)
	msk := a.location()
	// One order every 5 hours from 30 October, Moscow time.
	base := time.Date(2026, 10, 30, 0, 0, 0, 0, msk)
	var all []*Order
	for i := range 20 {
		all = append(all, createAt(t, a.orders, base.Add(time.Duration(i)*5*time.Hour), OrderPaid))
	}
	page := func(query string) (ids []string, next string) {
		t.Helper()
		w := adminGet(t, a, "/kassa/orders?"+query)
		var reply struct {
			Orders []orderSummary `json:"orders"`
			Next   *string        `json:"next"`
		}
		if w.Code != http.StatusOK || json.Unmarshal(w.Body.Bytes(), &reply) != nil {
			t.Fatalf("%s: %d %s", query, w.Code, w.Body)
		}
		for _, o := range reply.Orders {
			ids = append(ids, o.ID)
		}
		if reply.Next != nil {
			if *reply.Next == "" {
				t.Errorf("%s: next is empty rather than absent", query)
			}
			next = *reply.Next
		}
		return ids, next
	}
	var got []string
	for q := "limit=6"; ; {
		ids, next := page(q)
		got = append(got, ids...)
		if next == "" {
			break
		}
		q = "limit=6&before=" + url.QueryEscape(next)
	}
	if want := newestFirst(all); !slices.Equal(got, want) {
		t.Errorf("paging by 6:\n got %v\nwant %v", got, want)
	}
	// 1 November in Moscow begins 31 October 21:00 UTC; to is exclusive.
	var november []*Order
	for _, o := range all {
		if !o.CreatedAt.Before(time.Date(2026, 11, 1, 0, 0, 0, 0, msk)) && o.CreatedAt.Before(time.Date(2026, 11, 3, 0, 0, 0, 0, msk)) {
			november = append(november, o)
		}
	}
	if ids, next := page("from=2026-11-01&to=2026-11-03"); !slices.Equal(ids, newestFirst(november)) || next != "" {
		t.Errorf("1 to 3 November: %v (next %q), want %v", ids, next, newestFirst(november))
	}
	for _, q := range []string{"from=2026-10-31T21:00:00Z&to=2026-11-03T00:00:00%2B03:00", "from=2026-11-01T00:00:00+03:00&to=2026-11-02T21:00:00.000Z"} {
		if ids, _ := page(q); !slices.Equal(ids, newestFirst(november)) {
			t.Errorf("the same range in RFC 3339 (%s): %v", q, ids)
		}
	}

	for _, tc := range []struct{ query, code string }{
		{"limit=0", "bad_limit"},
		{"limit=1001", "bad_limit"},
		{"limit=x", "bad_limit"},
		{"before=", "bad_cursor"},
		{"before=not-a-cursor", "bad_cursor"},
		{"state=bogus", "bad_state"},
		{"from=yesterday", "bad_from"},
		{"from=2026-13-01", "bad_from"},
		{"to=2026-11-01T00:00:00", "bad_to"},
		{"from=2026-11-02&to=2026-11-01", "bad_range"},
		{"from=2026-11-01&to=2026-11-01", "bad_range"},
		{"shop_order_id=X-1&before=" + newCursor(orderEntry(all[0])), "bad_query"},
		{"shop_order_id=X-1&from=2026-11-01", "bad_query"},
	} {
		w := adminGet(t, a, "/kassa/orders?"+tc.query)
		if w.Code != http.StatusBadRequest || errorCode(t, w) != tc.code {
			t.Errorf("%s: %d %s; want 400 %s", tc.query, w.Code, w.Body, tc.code)
		}
	}
}
