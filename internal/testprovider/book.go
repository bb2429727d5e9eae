package testprovider

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/shopspring/decimal"
)

// Book is the payment service behind testpay: an in-memory invoice book
// with a small JSON API, served by the test (httptest) so that the
// provider's calls cross a real HTTP connection. Every call must carry
// the bearer token the book was made with.
//
//	POST /invoices                 {"order_id","amount"} → 201 {"id","url"};
//	                               a repeated order id is 409 {"error":{"code":"order_exists"}}
//	GET  /invoices/{id}            → 200 {"id","order_id","amount","paid"}, or 404
//	GET  /invoices?order_id={id}   the same, by the shop's order id
type Book struct {
	token string

	mu       sync.Mutex
	invoices map[string]*Invoice
	byOrder  map[string]string
	loseNext bool     // the next create's reply is lost
	lost     []string // order ids whose create reply was lost
}

// Invoice is an invoice in a Book.
type Invoice struct {
	ID      string          `json:"id"`
	OrderID string          `json:"order_id"`
	Amount  decimal.Decimal `json:"amount"`
	Paid    bool            `json:"paid"`
}

// NewBook makes an empty book that takes calls with the bearer token.
func NewBook(token string) *Book {
	return &Book{token: token, invoices: make(map[string]*Invoice), byOrder: make(map[string]string)}
}

// MarkPaid marks the invoice of the shop's order id paid, as a buyer paying
// it would. It reports whether the book has that invoice.
func (b *Book) MarkPaid(orderID string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	inv, ok := b.invoices[b.byOrder[orderID]]
	if ok {
		inv.Paid = true
	}
	return ok
}

// Invoice returns the invoice of the shop's order id.
func (b *Book) Invoice(orderID string) (Invoice, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	inv, ok := b.invoices[b.byOrder[orderID]]
	if !ok {
		return Invoice{}, false
	}
	return *inv, true
}

// Len reports how many invoices the book holds.
func (b *Book) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.invoices)
}

// LoseNextReply makes the next invoice creation lose its reply: the book
// creates the invoice, then drops the connection unanswered.
func (b *Book) LoseNextReply() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.loseNext = true
}

// Lost returns the order ids whose invoice was created but whose reply was
// lost, oldest first.
func (b *Book) Lost() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lost...)
}

// ServeHTTP answers the book's API.
func (b *Book) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+b.token {
		reply(w, http.StatusUnauthorized, map[string]string{"error": "bad token"})
		return
	}
	switch id, found := strings.CutPrefix(r.URL.Path, "/invoices/"); {
	case r.Method == http.MethodPost && r.URL.Path == "/invoices":
		b.create(w, r)
	case r.Method == http.MethodGet && (found || r.URL.Path == "/invoices"):
		b.mu.Lock()
		if !found {
			id = b.byOrder[r.URL.Query().Get("order_id")]
		}
		inv, ok := b.invoices[id]
		var copied Invoice
		if ok {
			copied = *inv
		}
		b.mu.Unlock()
		if !ok {
			reply(w, http.StatusNotFound, map[string]string{"error": "no such invoice"})
			return
		}
		reply(w, http.StatusOK, copied)
	default:
		reply(w, http.StatusNotFound, map[string]string{"error": "no such call"})
	}
}

// create adds an invoice.
func (b *Book) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		OrderID string          `json:"order_id"`
		Amount  decimal.Decimal `json:"amount"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.OrderID == "" || !req.Amount.IsPositive() {
		reply(w, http.StatusBadRequest, map[string]string{"error": "want order_id and a positive amount"})
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.byOrder[req.OrderID]; ok {
		reply(w, http.StatusConflict, map[string]any{"error": map[string]string{"code": "order_exists", "message": "order id already used"}})
		return
	}
	inv := &Invoice{ID: "inv-" + strconv.Itoa(len(b.invoices)+1), OrderID: req.OrderID, Amount: req.Amount}
	b.invoices[inv.ID], b.byOrder[req.OrderID] = inv, inv.ID
	if b.loseNext {
		b.loseNext, b.lost = false, append(b.lost, req.OrderID)
		if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
			conn.Close()
		}
		return
	}
	reply(w, http.StatusCreated, map[string]string{"id": inv.ID, "url": "https://pay.example/" + inv.ID})
}

// reply writes v as a JSON reply.
func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
