package testprovider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-kassa/kassa"
)

// FiscalTime is the fiscal time of every receipt a Till prints.
var FiscalTime = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

// Till is the receipt service behind testtill: it prints every receipt at
// once, one per operation id, and keeps them in memory. Its JSON API:
//
//	POST /receipts       a kassa.Receipt → 200 {}; a repeated operation id
//	                     prints nothing more
//	GET  /receipts/{id}  → 200 a kassa.Operation, or 404
type Till struct {
	mu       sync.Mutex
	receipts map[string]kassa.Receipt
}

// NewTill makes a till that has printed nothing.
func NewTill() *Till {
	return &Till{receipts: make(map[string]kassa.Receipt)}
}

// Receipt returns the receipt printed under the operation id.
func (t *Till) Receipt(operationID string) (kassa.Receipt, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.receipts[operationID]
	return r, ok
}

// Receipts returns every printed receipt.
func (t *Till) Receipts() []kassa.Receipt {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []kassa.Receipt
	for _, r := range t.receipts {
		out = append(out, r)
	}
	return out
}

// ServeHTTP answers the till's API.
func (t *Till) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, found := strings.CutPrefix(r.URL.Path, "/receipts/")
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/receipts":
		var rc kassa.Receipt
		if err := json.NewDecoder(r.Body).Decode(&rc); err != nil || rc.OperationID == "" {
			reply(w, http.StatusBadRequest, map[string]string{"error": "want a receipt with an operation id"})
			return
		}
		t.mu.Lock()
		if _, ok := t.receipts[rc.OperationID]; !ok {
			t.receipts[rc.OperationID] = rc
		}
		t.mu.Unlock()
		reply(w, http.StatusOK, struct{}{})
	case r.Method == http.MethodGet && found:
		if _, ok := t.Receipt(id); !ok {
			reply(w, http.StatusNotFound, map[string]string{"error": "no such operation"})
			return
		}
		reply(w, http.StatusOK, kassa.Operation{ID: id, Status: kassa.OperationProcessed, Processed: FiscalTime,
			Fiscal: &kassa.FiscalParams{DocumentNumber: 1, DocumentSign: "1", DocumentTime: FiscalTime, FNNumber: "1"}})
	default:
		reply(w, http.StatusNotFound, map[string]string{"error": "no such call"})
	}
}

// TestTill is a receipt service at a Till: kassa.receipts.testtill.
type TestTill struct {
	// Endpoint is the Till's URL.
	Endpoint string `json:"endpoint"`
	// VAT is the rate of positions that carry none.
	VAT kassa.VAT `json:"vat,omitempty"`
	// UTCOffsetHours is the place of settlement's offset from UTC.
	UTCOffsetHours int `json:"utc_offset_hours,omitempty"`

	api *kassa.ProviderClient
}

// CaddyModule returns the Caddy module information.
func (TestTill) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "kassa.receipts.testtill",
		New: func() caddy.Module { return new(TestTill) },
	}
}

// Provision makes the service's HTTP client.
func (t *TestTill) Provision(caddy.Context) error {
	api, err := kassa.NewProviderClient("testtill", t.Endpoint, 0)
	if err != nil {
		return fmt.Errorf("testtill: %v", err)
	}
	t.api = api
	return nil
}

// Cleanup closes the client's connections.
func (t *TestTill) Cleanup() error {
	if t.api != nil {
		t.api.Close()
	}
	return nil
}

// FormReceipt prints r.
func (t *TestTill) FormReceipt(ctx context.Context, r kassa.Receipt) error {
	return t.api.PostJSON(ctx, "formReceipt", "receipts", nil, r, nil)
}

// ReceiptStatus reports a printed receipt.
func (t *TestTill) ReceiptStatus(ctx context.Context, operationID string) (kassa.Operation, error) {
	var op kassa.Operation
	err := t.api.GetJSON(ctx, "checkStatus", "receipts/"+url.PathEscape(operationID), nil, nil, &op)
	return op, err
}

// DepositCash is not supported.
func (t *TestTill) DepositCash(context.Context, kassa.CashOperation) error {
	return &kassa.ProviderError{Provider: "testtill", Op: "deposit", Kind: kassa.ErrNotSupported}
}

// WithdrawCash is not supported.
func (t *TestTill) WithdrawCash(context.Context, kassa.CashOperation) error {
	return &kassa.ProviderError{Provider: "testtill", Op: "withdraw", Kind: kassa.ErrNotSupported}
}

// DefaultVAT is the rate of positions that carry none.
func (t *TestTill) DefaultVAT() kassa.VAT { return t.VAT }

// Location is the time zone of the place of settlement.
func (t *TestTill) Location() *time.Location {
	return time.FixedZone(fmt.Sprintf("UTC%+d", t.UTCOffsetHours), t.UTCOffsetHours*3600)
}

// SendWindow is how long a send can take: one call, no retries.
func (t *TestTill) SendWindow() time.Duration { return t.api.CallTimeout() }

// Interface guards
var (
	_ caddy.Provisioner        = (*TestTill)(nil)
	_ caddy.CleanerUpper       = (*TestTill)(nil)
	_ kassa.ReceiptProvider    = (*TestTill)(nil)
	_ kassa.DefaultVATReporter = (*TestTill)(nil)
	_ kassa.LocationReporter   = (*TestTill)(nil)
	_ kassa.SendWindowReporter = (*TestTill)(nil)
)
