// Command backend is the storefront of the proxied demo
// (example/proxied.Caddyfile): it owns the catalog, the prices and its
// orders, hands each checkout to Caddy with X-Kassa-* headers, and learns
// that an order was paid from Caddy's notifications, through the
// reference receiver. It never talks to a payment provider and holds no
// secret but the notify one. Run it from the repository's root:
//
//	KASSA_NOTIFY_SECRET=demo-secret go run ./example/backend
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/caddy-kassa/kassa/example/receiver"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "the address to serve on; Caddy proxies to it")
	flag.Parse()
	secret := os.Getenv("KASSA_NOTIFY_SECRET")
	if secret == "" {
		log.Fatal("set KASSA_NOTIFY_SECRET to the notify block's secret")
	}
	s := &shop{orders: map[string]*order{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.home)
	mux.HandleFunc("POST /checkout", s.checkout)
	mux.HandleFunc("GET /orders", s.list)
	mux.HandleFunc("GET /orders/{id}", s.show)
	mux.Handle("POST /kassa-events", &receiver.Handler{
		Secret:   []byte(secret),
		Dedup:    &receiver.MemoryDedup{},
		MarkPaid: s.markPaid,
	})
	log.Printf("backend on http://%s", *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}

// product is a catalog entry; prices are in kopecks.
type product struct {
	Name  string
	Price int64
}

// catalog is what the shop sells, by SKU: the backend, not the buyer,
// sets the prices.
var catalog = map[string]product{
	"tea-green": {"Green tea", 35000},
	"tea-black": {"Black tea", 29000},
}

// line is one position of an order, in X-Kassa-Items' form.
type line struct {
	Name  string `json:"name"`
	Qty   int    `json:"qty"`
	Price string `json:"price"`
	VAT   string `json:"vat"`
}

// order is one of the backend's orders.
type order struct {
	ID         string `json:"id"`
	Items      []line `json:"items"`
	Total      string `json:"total"`
	Email      string `json:"email"`
	Paid       bool   `json:"paid"`
	KassaOrder string `json:"kassa_order,omitempty"` // caddy-kassa's id, once paid
}

// shop holds the orders, in memory: a real backend keeps them in its
// database.
type shop struct {
	mu     sync.Mutex
	next   int
	ids    []string // in the order they were made
	orders map[string]*order
}

// checkout turns the buyer's form (item=SKU or item=SKU:QTY, repeatable;
// email) into an order, and answers with the X-Kassa-* headers that make
// Caddy's kassa_checkout take the payment.
func (s *shop) checkout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	o := &order{Email: r.PostForm.Get("email")}
	var total int64
	for _, item := range r.PostForm["item"] {
		sku, qtyText, found := strings.Cut(item, ":")
		qty := 1
		if found {
			var err error
			if qty, err = strconv.Atoi(qtyText); err != nil || qty < 1 || qty > 100 {
				http.Error(w, "bad quantity: "+item, http.StatusBadRequest)
				return
			}
		}
		p, ok := catalog[sku]
		if !ok {
			http.Error(w, "unknown product: "+sku, http.StatusBadRequest)
			return
		}
		o.Items = append(o.Items, line{Name: p.Name, Qty: qty, Price: rubles(p.Price), VAT: "none"})
		total += p.Price * int64(qty)
	}
	if len(o.Items) == 0 || o.Email == "" {
		http.Error(w, "choose a product and give an e-mail for the receipt", http.StatusBadRequest)
		return
	}
	o.Total = rubles(total)
	items, err := json.Marshal(o.Items)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.mu.Lock()
	s.next++
	o.ID = fmt.Sprintf("BACKEND-%d", s.next)
	s.ids = append(s.ids, o.ID)
	s.orders[o.ID] = o
	s.mu.Unlock()

	w.Header().Set("X-Kassa-Amount", o.Total)
	w.Header().Set("X-Kassa-Order", o.ID)
	w.Header().Set("X-Kassa-Items", string(items))
	w.Header().Set("X-Kassa-Email", o.Email)
	w.WriteHeader(http.StatusOK) // Caddy answers the buyer instead
}

// markPaid is the receiver's MarkPaid: it marks the order paid once the
// amount paid is its total.
func (s *shop) markPaid(_ context.Context, shopOrderID, orderID, amount string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.orders[shopOrderID]
	if !ok {
		return fmt.Errorf("no order %q", shopOrderID)
	}
	paid, err := kopecks(amount)
	if err != nil {
		return err
	}
	if want, _ := kopecks(o.Total); paid != want {
		return fmt.Errorf("order %s: paid %s, want %s", o.ID, amount, o.Total)
	}
	o.Paid, o.KassaOrder = true, orderID
	return nil
}

// list answers the orders as JSON, oldest first.
func (s *shop) list(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, s.all())
}

// show answers one order as JSON; the buyer lands here after paying.
func (s *shop) show(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	o, ok := s.orders[r.PathValue("id")]
	var copied order
	if ok {
		copied = *o
	}
	s.mu.Unlock()
	if !ok {
		http.NotFound(w, r)
		return
	}
	writeJSON(w, copied)
}

// all copies the orders, oldest first.
func (s *shop) all() []order {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]order, 0, len(s.ids))
	for _, id := range s.ids {
		out = append(out, *s.orders[id])
	}
	return out
}

// homePage is the storefront: a form to buy, and the orders so far.
var homePage = template.Must(template.New("home").Parse(`<!doctype html>
<meta charset="utf-8">
<title>Proxied demo shop</title>
<h1>Proxied demo shop</h1>
<form method="post" action="/checkout">
{{range $sku, $p := .Catalog}}<label><input type="checkbox" name="item" value="{{$sku}}"> {{$p.Name}}</label><br>
{{end}}<label>E-mail for the receipt <input type="email" name="email" required></label>
<button>Pay</button>
</form>
<h2>Orders</h2>
<ul>{{range .Orders}}<li><a href="/orders/{{.ID}}">{{.ID}}</a> {{.Total}} ₽: {{if .Paid}}paid{{else}}not paid{{end}}{{end}}</ul>
`))

// home shows the storefront.
func (s *shop) home(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	homePage.Execute(w, map[string]any{"Catalog": catalog, "Orders": s.all()})
}

// writeJSON answers v as JSON.
func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// rubles formats kopecks as a plain decimal, 350.00.
func rubles(kopecks int64) string {
	return fmt.Sprintf("%d.%02d", kopecks/100, kopecks%100)
}

// kopecks parses a plain decimal amount ("350", "350.5", "350.00").
func kopecks(amount string) (int64, error) {
	whole, frac, _ := strings.Cut(amount, ".")
	if len(frac) > 2 {
		return 0, errors.New("bad amount " + amount)
	}
	r, err := strconv.ParseUint(whole, 10, 63)
	if err != nil {
		return 0, errors.New("bad amount " + amount)
	}
	k := uint64(0)
	if frac != "" {
		if k, err = strconv.ParseUint((frac + "0")[:2], 10, 8); err != nil {
			return 0, errors.New("bad amount " + amount)
		}
	}
	return int64(r*100 + k), nil
}
