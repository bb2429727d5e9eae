package kassa

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/shopspring/decimal"
)

// exportOrders stores, in app a, orders around November 2026 in Moscow
// time, and returns those created in November, oldest first.
func exportOrders(t *testing.T, a *App) []*Order {
	t.Helper()
	msk := a.location()
	from, to := time.Date(2026, 11, 1, 0, 0, 0, 0, msk), time.Date(2026, 12, 1, 0, 0, 0, 0, msk)
	var in []*Order
	for i, at := range []time.Time{from.Add(-time.Nanosecond), from, from.Add(36 * time.Hour), to.Add(-time.Nanosecond), to} {
		o := fullOrder()
		o.ID, o.CreatedAt = NewOrderID(), at
		o.IdempotencyKey = ""
		o.State, o.PaidAt = OrderPaid, at.Add(time.Minute)
		switch i {
		case 1:
			// Text a spreadsheet would run as a formula, and CSV's own
			// specials.
			o.Payment.ID = `=HYPERLINK("http://evil.example","x")`
			o.ShopOrderID = "-5"
			o.Receipt.Fiscal.DocumentSign = "a,b \"c\"\nd"
		case 2:
			o.Receipt, o.Refund, o.PaidAmount, o.PaidLate = nil, nil, decimal.NullDecimal{}, false
			o.State, o.PaidAt = OrderExpired, time.Time{}
		}
		if err := a.orders.Create(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		if !at.Before(from) && at.Before(to) {
			in = append(in, o)
		}
	}
	return in
}

// TestAdminExportCSV: the export of a range is RFC 4180 CSV with a header,
// every order of the range oldest first (exact to the nanosecond at both
// ends), times in the app's zone, formulas defused, no contacts.
func TestAdminExportCSV(t *testing.T) {
	a := indexedApp(t)
	want := exportOrders(t, a)
	w := adminGet(t, a, "/kassa/orders/export?from=2026-11-01&to=2026-12-01")
	if w.Code != http.StatusOK || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/csv") {
		t.Fatalf("%d %s %s", w.Code, w.Header(), w.Body)
	}
	body := w.Body.String()
	if strings.Contains(body, "buyer@example.com") || strings.Contains(body, "79991234567") {
		t.Error("the export holds the buyer's contacts")
	}
	if !strings.HasSuffix(body, "\r\n") || strings.Contains(strings.ReplaceAll(body, "\r\n", ""), "\n") {
		t.Error("the export's lines are not CRLF-ended one-line records")
	}
	records, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(records[0], exportColumns) {
		t.Errorf("header = %v", records[0])
	}
	var got []string
	rows := map[string]map[string]string{}
	for _, rec := range records[1:] {
		row := map[string]string{}
		for i, c := range exportColumns {
			row[c] = rec[i]
		}
		got = append(got, row["order_id"])
		rows[row["order_id"]] = row
	}
	if !slices.Equal(got, ids(want)) {
		t.Fatalf("rows %v, want %v (oldest first)", got, ids(want))
	}
	first, expired := rows[want[0].ID], rows[want[1].ID]
	for col, v := range map[string]string{
		"created_at": "2026-11-01T00:00:00+03:00", "account": "main", "provider": "crystalpay", "amount": "700.50",
		"state": "paid", "paid_at": "2026-11-01T00:01:00+03:00", "paid_amount": "700.49", "paid_late": "true",
		"payment_id": `'=HYPERLINK("http://evil.example","x")`, "commission": "12.34", "shop_order_id": "'-5",
		"receipt_state": "done", "receipt_operation_id": "kassa-x-sale", "receipt_fiscal_document_number": "24",
		"receipt_fiscal_sign": `a,b "c" d`, "receipt_fn_number": "9999451122", "receipt_fiscal_time": "2026-11-23T17:33:11+03:00",
		"refund_state": "failed", "refund_operation_id": "kassa-x-sale_return",
	} {
		if first[col] != v {
			t.Errorf("%s = %q, want %q", col, first[col], v)
		}
	}
	if expired["state"] != "expired" || expired["receipt_state"] != "none" || expired["paid_at"] != "" || expired["paid_amount"] != "" {
		t.Errorf("the expired order's row: %v", expired)
	}
	if last := rows[want[len(want)-1].ID]["created_at"]; last != "2026-11-30T23:59:59.999999999+03:00" {
		t.Errorf("the last order's created_at = %s", last)
	}
}

// TestAdminExportJSONL: the JSON Lines export holds the same fields, one
// order a line.
func TestAdminExportJSONL(t *testing.T) {
	a := indexedApp(t)
	want := exportOrders(t, a)
	w := adminGet(t, a, "/kassa/orders/export?format=jsonl&from=2026-10-31T21:00:00Z&to=2026-12-01")
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	var got []string
	sc := bufio.NewScanner(w.Body)
	for sc.Scan() {
		var row map[string]any
		if err := json.Unmarshal(sc.Bytes(), &row); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if len(row) != len(exportColumns) {
			t.Errorf("a line has %d fields, want %d", len(row), len(exportColumns))
		}
		if _, ok := row["email"]; ok {
			t.Error("the export holds the buyer's contacts")
		}
		got = append(got, row["order_id"].(string))
	}
	if !slices.Equal(got, ids(want)) {
		t.Errorf("lines %v, want %v", got, ids(want))
	}
	for _, tc := range []struct{ query, code string }{
		{"format=xlsx", "bad_format"},
		{"from=2026-11-31", "bad_from"},
		{"from=2026-12-01&to=2026-11-01", "bad_range"},
	} {
		w := adminGet(t, a, "/kassa/orders/export?"+tc.query)
		if w.Code != http.StatusBadRequest || errorCode(t, w) != tc.code {
			t.Errorf("%s: %d %s; want 400 %s", tc.query, w.Code, w.Body, tc.code)
		}
	}
}

// failingReads fails every record read after the first after of them.
type failingReads struct {
	certmagic.Storage
	after atomic.Int64
}

func (s *failingReads) Load(ctx context.Context, key string) ([]byte, error) {
	if strings.HasPrefix(key, ordersPrefix+"/") && s.after.Add(-1) < 0 {
		return nil, errors.New("disk on fire at /secret/path")
	}
	return s.Storage.Load(ctx, key)
}

// TestAdminExportFailsMidway: a storage failure after the export began
// ends it with the error line the CLI knows, and no internal detail.
func TestAdminExportFailsMidway(t *testing.T) {
	for _, format := range []string{"csv", "jsonl"} {
		t.Run(format, func(t *testing.T) {
			a := indexedApp(t)
			storage := &failingReads{Storage: a.storage}
			storage.after.Store(1 << 30)
			a.useStorage(storage)
			exportOrders(t, a)
			storage.after.Store(2)
			w := adminGet(t, a, "/kassa/orders/export?format="+format)
			lines := strings.Split(strings.TrimRight(w.Body.String(), "\r\n"), "\n")
			last := strings.TrimSpace(lines[len(lines)-1])
			wantLines := 3 // the two orders, the error (and the CSV header)
			ok := strings.HasPrefix(last, `{"error":{"code":"storage_unavailable"`)
			if format == "csv" {
				wantLines++
				ok = strings.HasPrefix(last, exportErrorPrefix+"storage_unavailable: ")
			}
			if w.Code != http.StatusOK || len(lines) != wantLines || !ok || strings.Contains(w.Body.String(), "secret") {
				t.Errorf("%d:\n%s", w.Code, w.Body)
			}
		})
	}
}
