package kassa

import (
	"context"
	"fmt"
	"html/template"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

// TestReceiptPageDrawsItsQROnce: the receipt page of a done receipt draws
// its QR code once, however often it is opened, and shows the same code
// each time. Before, every view drew it again (about 2 ms of CPU each).
func TestReceiptPageDrawsItsQROnce(t *testing.T) {
	s := contactShop(t, map[string]int{"vat22": 11})
	o := &Order{ID: NewOrderID(), State: OrderPaid, Account: "main", Provider: "pegas", Amount: rub("305.00"),
		Items: []OrderItem{{Name: "Чашка", Qty: 1, Price: rub("305.00"), VAT: VAT22}},
		Email: "buyer@example.com", CreatedAt: s.clock.Now(), ExpiresAt: s.clock.Now().Add(time.Hour),
		Receipt: &OrderReceipt{OperationID: "kassa-x-sale", Type: ReceiptSale, State: ReceiptDone,
			Fiscal: &FiscalParams{DocumentNumber: 24, DocumentSign: "0637894524", FNNumber: "9999451122",
				DocumentTime: time.Date(2026, 12, 5, 19, 30, 0, 0, time.UTC)}}}
	if err := s.app.orders.Create(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	draws := 0
	h := &ReceiptHandler{app: s.app, logger: zap.NewNop(), qr: &qrCache{draw: func(content string) (template.HTML, error) {
		draws++
		return qrSVG(content)
	}}}
	var pages []string
	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/receipt?order="+o.ID, nil)
		req.Header.Set("Accept", "text/html")
		w := httptest.NewRecorder()
		if err := h.ServeHTTP(w, req, nil); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(w.Body.String(), `<svg class="qr"`) {
			t.Fatalf("no QR code on the page: %.300s", w.Body.String())
		}
		pages = append(pages, w.Body.String())
	}
	if draws != 1 {
		t.Errorf("the QR code was drawn %d times for 3 views, want 1", draws)
	}
	if pages[0] != pages[1] || pages[1] != pages[2] {
		t.Error("the views differ")
	}
}

// TestQRCacheIsBounded: the cache keeps at most qrCacheSize codes, drops
// the oldest first, and draws a dropped code again when asked.
func TestQRCacheIsBounded(t *testing.T) {
	draws := map[string]int{}
	c := qrCache{draw: func(content string) (template.HTML, error) {
		draws[content]++
		return template.HTML("<svg>" + content + "</svg>"), nil
	}}
	for i := range qrCacheSize + 10 {
		code, err := c.get(fmt.Sprint(i))
		if err != nil || code != template.HTML(fmt.Sprintf("<svg>%d</svg>", i)) {
			t.Fatalf("get(%d) = %q, %v", i, code, err)
		}
	}
	if len(c.codes) != qrCacheSize || len(c.order) != qrCacheSize {
		t.Fatalf("the cache holds %d codes (%d in order), want %d", len(c.codes), len(c.order), qrCacheSize)
	}
	c.get("0")                     // dropped: drawn again
	c.get(fmt.Sprint(qrCacheSize)) // kept
	if draws["0"] != 2 || draws[fmt.Sprint(qrCacheSize)] != 1 {
		t.Errorf("draws: oldest %d (want 2), a kept one %d (want 1)", draws["0"], draws[fmt.Sprint(qrCacheSize)])
	}
}
