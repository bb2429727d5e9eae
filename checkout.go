package kassa

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/shopspring/decimal"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Checkout{})
	httpcaddyfile.RegisterHandlerDirective("kassa_checkout", parseCheckout)
	httpcaddyfile.RegisterDirectiveOrder("kassa_checkout", httpcaddyfile.Before, "respond")
}

// defaultMaxBody caps a checkout request's body.
const defaultMaxBody = 64 << 10

// Checkout creates orders and their payment links, and reports an order's
// status. A plain HTML form posts to it and is sent to the payment page; a
// JavaScript or API client gets JSON. Prices come from the catalog, a
// buyer-chosen amount within amount_range, or, for a proxied storefront, a
// trusted upstream's placeholders: never from the buyer's request.
type Checkout struct {
	// Payment names the payment account; optional when there is one.
	Payment string `json:"payment,omitempty"`
	// Amount, OrderID, Description, Items, Email and Phone take
	// placeholders, for a proxied storefront whose trusted upstream answered
	// with X-Kassa-* headers. With Amount set, the request body is not read.
	Amount      string `json:"amount,omitempty"`
	OrderID     string `json:"order_id,omitempty"`
	Description string `json:"description,omitempty"`
	// Items is a JSON array of {"name","qty","price","vat"} for the receipt.
	Items string `json:"items,omitempty"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
	// AmountRange lets the buyer choose the amount, within bounds.
	AmountRange *AmountRange `json:"amount_range,omitempty"`
	// Redirect is where the provider sends the buyer after paying;
	// {kassa.order_id} is the order's id.
	Redirect string `json:"redirect,omitempty"`
	// MaxBody caps the request body in bytes; default 64 KiB.
	MaxBody int64 `json:"max_body,omitempty"`
	// AllowedOrigins, when set, are the sites (scheme://host[:port]) whose
	// pages may check out, besides the shop's own: a checkout whose Origin
	// (or Referer) names another site is 403 cross_site, so that no other
	// page can make its visitors' browsers flood the shop with orders.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`

	app    *App
	acc    *account
	logger *zap.Logger
}

// AmountRange bounds an amount the buyer chooses.
type AmountRange struct {
	Min decimal.Decimal `json:"min"`
	Max decimal.Decimal `json:"max"`
}

// CaddyModule returns the Caddy module information.
func (Checkout) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kassa_checkout",
		New: func() caddy.Module { return new(Checkout) },
	}
}

// Provision finds the kassa app and the payment account.
func (h *Checkout) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := findApp(ctx, "kassa_checkout")
	if err != nil {
		return err
	}
	h.app = app
	if h.acc, err = app.account(h.Payment); err != nil {
		return fmt.Errorf("kassa_checkout: %v", err)
	}
	if h.MaxBody <= 0 {
		h.MaxBody = defaultMaxBody
	}
	return nil
}

// Validate checks that the handler can price an order.
func (h *Checkout) Validate() error {
	proxied := h.Amount != ""
	switch {
	case !proxied && (h.Items != "" || h.OrderID != ""):
		return errors.New("kassa_checkout: items and order_id come from a trusted upstream and need amount")
	case proxied && h.AmountRange != nil:
		return errors.New("kassa_checkout: amount and amount_range exclude each other")
	case !proxied && h.AmountRange == nil && h.app.catalog.Len() == 0:
		return errors.New("kassa_checkout: nothing to sell: add products to the kassa catalog, or use amount_range or amount")
	}
	if r := h.AmountRange; r != nil {
		if !r.Min.IsPositive() || r.Max.LessThan(r.Min) {
			return fmt.Errorf("kassa_checkout: amount_range %s %s: want 0 < min ≤ max", FormatAmount(r.Min), FormatAmount(r.Max))
		}
	}
	if h.Redirect != "" {
		if _, err := redirectOrigin(h.Redirect); err != nil {
			return err
		}
	}
	for _, origin := range h.AllowedOrigins {
		if err := checkOrigin(origin); err != nil {
			return fmt.Errorf("kassa_checkout: allowed_origins: %v", err)
		}
	}
	return nil
}

// ServeHTTP creates an order (POST) or reports one (GET ?order=).
func (h *Checkout) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	w.Header().Set("Cache-Control", "no-store")
	var err error
	query := r.URL.Query()
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && query.Has("order"):
		err = h.status(w, r, query.Get("order"))
	case r.Method == http.MethodPost, r.Method == http.MethodGet && h.Amount != "":
		err = h.create(w, r)
	default:
		w.Header().Set("Allow", "GET, HEAD, POST")
		err = &RequestError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed",
			Message: "POST to check out; GET with ?order=<id> for an order's status"}
	}
	if err != nil {
		return h.fail(w, r, err)
	}
	return nil
}

// create prices the request, stores the order, creates its payment and
// answers with where to pay. A payment page goes to the buyer only once its
// order is stored pending with the provider's invoice.
func (h *Checkout) create(w http.ResponseWriter, r *http.Request) error {
	if len(h.AllowedOrigins) > 0 && !fromAllowedOrigin(r, h.AllowedOrigins) {
		return &RequestError{Status: http.StatusForbidden, Code: "cross_site",
			Message: "this shop takes no checkouts from another site's pages"}
	}
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	o, err := h.newOrder(r, repl)
	if err != nil {
		return err
	}
	if checker, ok := h.acc.PaymentProvider.(AmountChecker); ok {
		if err := checker.CheckAmount(o.Amount); err != nil {
			return badRequest("amount_not_accepted", "amount", "%s", strings.TrimPrefix(err.Error(), "invalid amount: "))
		}
	}

	if o.IdempotencyKey != "" {
		unlock := h.app.locks.checkouts.lock(o.IdempotencyKey)
		defer unlock()
	}
	// From here on a buyer who leaves does not cut the checkout short: the
	// provider's timeout bounds it, and its outcome is recorded either way.
	ctx := context.WithoutCancel(r.Context())
	prior, err := h.open(ctx, w, r, repl, o)
	if err != nil {
		return err
	}
	if prior != nil {
		return h.replayed(w, r, repl, prior)
	}
	failpoint("checkout-created")

	start := time.Now()
	payment, err := h.acc.CreatePayment(ctx, h.app.paymentRequest(o))
	if err != nil {
		h.createFailed(o, err, time.Since(start))
		return err
	}
	failpoint("checkout-replied")
	stored, err := h.app.checkoutCreated(ctx, o.ID, payment)
	if err != nil {
		// The invoice exists but its order is not stored pending: the buyer
		// gets no payment page, but a 503; their retry with the same key,
		// or the reconciler, stores the invoice kept here.
		h.app.unsaved.put(o.ID, payment)
		h.logger.Error("storing a created payment", zap.String("order_id", o.ID), zap.Error(err))
		return err
	}
	failpoint("checkout-saved")
	h.logger.Info("order created", zap.String("order_id", o.ID), zap.String("account", o.Account),
		zap.String("provider", o.Provider), zap.Duration("duration", time.Since(start)))
	return h.answer(w, r, repl, stored)
}

// open stores a new order, or finds the one its idempotency key made
// before (prior). With a key, it holds the key's storage lock while it
// looks and stores, so that a double click split between two instances
// makes one order.
func (h *Checkout) open(ctx context.Context, w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, o *Order) (prior *Order, err error) {
	if o.IdempotencyKey == "" {
		return nil, h.openNew(w, r, repl, o)
	}
	lock := "kassa/checkout/" + strings.TrimPrefix(idempotencyStorageKey(o.IdempotencyKey), idempotencyPrefix+"/")
	err = h.app.withStorageLock(ctx, lock, func() error {
		id, ok, err := h.app.orders.ByIdempotencyKey(ctx, o.IdempotencyKey)
		if err != nil {
			return err
		}
		if ok {
			prior, err = h.app.orders.Load(ctx, id)
			if err == nil {
				return nil
			}
			if !errors.Is(err, ErrOrderNotFound) {
				return err
			}
			// The key was written but its order was not (a crash inside
			// Create): make the order under the same id.
			o.ID = id
		}
		err = h.openNew(w, r, repl, o)
		if errors.Is(err, ErrIdempotencyKeyUsed) {
			// Another instance made this key's order a moment ago (the
			// storage's lock did not keep it out): answer with it.
			id, _, err := h.app.orders.ByIdempotencyKey(ctx, o.IdempotencyKey)
			if err != nil {
				return err
			}
			prior, err = h.app.orders.Load(ctx, id)
			return err
		}
		return err
	})
	if prior != nil && prior.Fingerprint != "" && prior.Fingerprint != o.Fingerprint {
		return nil, &RequestError{Status: http.StatusUnprocessableEntity, Code: "idempotency_key_reused", Field: "Idempotency-Key",
			Message: "this Idempotency-Key was used for another order; send a new key with a new cart"}
	}
	return prior, err
}

// openNew stores a new order as being created, within the shop's cap on
// open orders and the client's limit.
func (h *Checkout) openNew(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, o *Order) error {
	ctx := context.WithoutCancel(r.Context())
	if limit := h.app.openLimit; limit != nil && !limit.admit(ctx) {
		metrics.checkoutsRefused.WithLabelValues(refusedShopBusy).Inc()
		w.Header().Set("Retry-After", "60")
		return &RequestError{Status: http.StatusServiceUnavailable, Code: refusedShopBusy,
			Message: "the shop is taking too many orders right now; please try again in a minute"}
	}
	if h.app.perClient != nil && !h.app.perClient.allow(clientAddress(r), h.app.now()) {
		if h.app.openLimit != nil {
			h.app.openLimit.withdraw()
		}
		metrics.checkoutsRefused.WithLabelValues(refusedTooMany).Inc()
		w.Header().Set("Retry-After", "60")
		return &RequestError{Status: http.StatusTooManyRequests, Code: refusedTooMany,
			Message: "too many orders from your address; pay or wait for the ones you made"}
	}
	if o.ID == "" {
		o.ID = h.app.orderID()
	}
	repl.Set("kassa.order_id", o.ID)
	if h.Redirect != "" {
		// newOrder checked it; the order id cannot move it.
		o.ReturnURL = repl.ReplaceKnown(h.Redirect, "")
	}
	return h.app.openOrder(ctx, o)
}

// replayed answers a repeated checkout with the order it made before, as
// that order stands now.
func (h *Checkout) replayed(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, prior *Order) error {
	w.Header().Set("Idempotent-Replayed", "true")
	if prior.State == OrderCreating {
		// This instance may hold its invoice, whose storing failed.
		if stored, held, err := h.app.saveUnsaved(context.WithoutCancel(r.Context()), prior.ID); held {
			if err != nil {
				return err
			}
			prior = stored
		}
	}
	return h.answer(w, r, repl, prior)
}

// createFailed records a failed payment creation. An order whose provider
// refuses repeated order ids and could not be reached stays in creating for
// the reconciler to finish; every other failure fails the order.
func (h *Checkout) createFailed(o *Order, err error, took time.Duration) {
	ctx := context.Background()
	_, resendable := h.acc.PaymentProvider.(OrderIDIdempotent)
	state := OrderCreating
	if !(resendable && errors.Is(err, ErrUnavailable)) {
		if stored, serr := h.app.creationFailed(ctx, o.ID, err.Error()); serr != nil {
			h.logger.Error("storing a failed order", zap.String("order_id", o.ID), zap.Error(serr))
		} else {
			state = stored.State
		}
	}
	h.logger.Warn("creating payment failed", zap.String("order_id", o.ID), zap.String("account", o.Account),
		zap.String("provider", o.Provider), zap.String("state", string(state)), zap.Duration("duration", took), zap.Error(err))
}

// newOrder builds an order from the request: what is bought, for how much,
// and by whom. Nothing is stored.
func (h *Checkout) newOrder(r *http.Request, repl *caddy.Replacer) (*Order, error) {
	o := &Order{Account: h.acc.name, Provider: h.acc.provider}
	var email, phone string
	if h.Amount != "" {
		amount, err := ParseAmount("amount", proxiedValue(repl, h.Amount))
		if err != nil {
			return nil, err
		}
		o.Amount = amount
		o.ShopOrderID = proxiedValue(repl, h.OrderID)
		o.Description = proxiedValue(repl, h.Description)
		if raw := proxiedValue(repl, h.Items); raw != "" {
			items, total, err := ParseItems(raw)
			if err != nil {
				return nil, err
			}
			if !total.Equal(amount) {
				return nil, badRequest("bad_items", "items", "items total %s, but the amount is %s", FormatAmount(total), FormatAmount(amount))
			}
			o.Items = items
		}
		email, phone = proxiedValue(repl, h.Email), proxiedValue(repl, h.Phone)
		if o.ShopOrderID != "" {
			if !validShopOrderID(o.ShopOrderID) {
				return nil, badRequest("bad_order_id", "order_id",
					"the upstream's order id must be 1 to %d ASCII letters, digits, dots, underscores, dashes or colons", maxShopOrderID)
			}
			// One upstream order is one order here, however often it is posted.
			o.IdempotencyKey = shopIdempotencyKey(o.ShopOrderID)
		}
	} else {
		req, err := h.readRequest(r)
		if err != nil {
			return nil, err
		}
		if h.AmountRange != nil && len(req.Items) == 0 {
			amount, err := ParseAmount("amount", req.Amount)
			if err != nil {
				return nil, err
			}
			if amount.LessThan(h.AmountRange.Min) || amount.GreaterThan(h.AmountRange.Max) {
				return nil, badRequest("amount_out_of_range", "amount", "the amount must be from %s to %s",
					FormatAmount(h.AmountRange.Min), FormatAmount(h.AmountRange.Max))
			}
			o.Amount = amount
			o.Description = proxiedValue(repl, h.Description)
		} else {
			items, total, err := h.app.catalog.Price(req.Items)
			if err != nil {
				return nil, err
			}
			o.Items, o.Amount = items, total
		}
		email, phone = req.Email, req.Phone
	}
	// A description may come from placeholders (an upstream's header, the
	// buyer's query) and names the receipt's position: refuse here what the
	// receipt service would refuse only after the buyer paid.
	if o.Description != "" && (checkItemName(o.Description) != nil || hasBidiControl(o.Description)) {
		return nil, badRequest("bad_description", "description",
			"the description must be 1 to %d characters of text without control characters or bidi controls", maxPositionName)
	}
	if !o.Amount.IsPositive() {
		return nil, badRequest("bad_amount", "amount", "the amount must be more than zero")
	}
	var err error
	if o.Email, o.Phone, err = ValidateContacts(email, phone); err != nil {
		return nil, err
	}
	if dv, ok := h.app.receipts.(DefaultVATReporter); ok {
		o.DefaultVAT = dv.DefaultVAT()
	}
	if h.app.receipts != nil {
		// 54-FZ: an internet sale's receipt goes to the contact the buyer
		// gave before paying.
		if o.Email == "" && o.Phone == "" {
			return nil, badRequest("contact_required", "email",
				"give an e-mail address or a phone number: the fiscal receipt is sent there")
		}
		if checker, ok := h.app.receipts.(VATChecker); ok {
			for i, it := range o.Items {
				if it.VAT == 0 {
					continue // the receipt service's default, checked at start
				}
				if err := checker.CheckVAT(it.VAT); err != nil {
					return nil, badRequest("vat_not_accepted", fmt.Sprintf("items[%d].vat", i), "%v", err)
				}
			}
		}
	}
	if key := r.Header.Get("Idempotency-Key"); key != "" && o.IdempotencyKey == "" {
		if err := ValidIdempotencyKey(key); err != nil {
			return nil, err
		}
		if len(key) < minCheckoutKey {
			return nil, badRequest("idempotency_key_too_short", "Idempotency-Key",
				"Idempotency-Key must be at least %d characters: make it random, such as a UUID", minCheckoutKey)
		}
		// Scoped to the account, and apart from the upstream's "shop:"
		// keys, so that a buyer's key can never name another flow's order.
		o.IdempotencyKey = "key:" + h.acc.name + ":" + key
	}
	var returnURL string
	if h.Redirect != "" {
		if returnURL, err = h.returnURL(repl); err != nil {
			return nil, err
		}
	}
	if o.IdempotencyKey != "" {
		o.Fingerprint = o.requestFingerprint(returnURL)
	}
	return o, nil
}

// minCheckoutKey is the shortest Idempotency-Key a checkout takes: a
// shorter one another buyer could guess, and claim first with their own
// cart and contacts.
const minCheckoutKey = 16

// proxiedValue is a handler field with its placeholders replaced. A field
// that is one placeholder the request does not know, such as the header of
// an upstream that did not send it, is empty: left as it is, the
// placeholder's own text would become, say, every order's order id.
func proxiedValue(repl *caddy.Replacer, field string) string {
	if key, ok := strings.CutPrefix(field, "{"); ok {
		if key, ok = strings.CutSuffix(key, "}"); ok && !strings.ContainsAny(key, "{}") {
			if _, known := repl.Get(key); !known {
				return ""
			}
		}
	}
	return repl.ReplaceKnown(field, "")
}

// shopIdempotencyKey is the idempotency scope of a trusted upstream's
// order id: its mapping (kassa/idempotency/<sha256>) names the one order
// that id made, which is also how the admin API finds it. No other scope
// starts with "shop:" (a buyer's Idempotency-Key is "key:<account>:...").
func shopIdempotencyKey(shopOrderID string) string { return "shop:" + shopOrderID }

// maxShopOrderID bounds an upstream's order id.
const maxShopOrderID = 64

// validShopOrderID reports whether a trusted upstream's order id is 1 to
// 64 ASCII letters, digits, dots, underscores, dashes or colons: an
// identifier that a redirect URL, a log line or the admin API may carry as
// it is.
func validShopOrderID(s string) bool { return validIdent(s, maxShopOrderID, ":") }

// readRequest reads a checkout's body, form-encoded or JSON, up to MaxBody.
func (h *Checkout) readRequest(r *http.Request) (CheckoutRequest, error) {
	body, err := readBody(r, h.MaxBody)
	if err != nil {
		return CheckoutRequest{}, err
	}
	mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch mediaType {
	case "application/json":
		return ParseCheckoutJSON(body)
	case "application/x-www-form-urlencoded", "":
		form, err := parseFormBody(body)
		if err != nil {
			return CheckoutRequest{}, err
		}
		return ParseCheckoutForm(form)
	default:
		return CheckoutRequest{}, &RequestError{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: "send application/x-www-form-urlencoded or application/json"}
	}
}

// answer tells a buyer where their order stands, after a checkout or its
// replay. Only a pending order within its time sends the buyer to pay: a
// form to the payment page (or a page with where to pay), a JSON client a
// 201 with the order. A paid order answers as paid (JSON 200, a form to
// the redirect); an order closed unpaid, or past its time, 409
// order_closed; one still being created, 409 order_in_progress, until its
// checkout can no longer finish it.
func (h *Checkout) answer(w http.ResponseWriter, r *http.Request, repl *caddy.Replacer, o *Order) error {
	repl.Set("kassa.order_id", o.ID)
	repl.Set("kassa.amount", FormatAmount(o.Amount))
	now := h.app.now()
	switch {
	case o.State == OrderPaid:
		if wantsJSON(r) {
			return writeJSON(w, http.StatusOK, newStatusView(o))
		}
		if o.ReturnURL != "" {
			http.Redirect(w, r, o.ReturnURL, http.StatusSeeOther)
			return nil
		}
		return writeMessagePage(w, http.StatusOK, "Заказ оплачен", "This order has been paid. Thank you!")
	case o.State == OrderCreating && h.app.mayStillCreate(o):
		w.Header().Set("Retry-After", "2")
		return &RequestError{Status: http.StatusConflict, Code: "order_in_progress",
			Message: "this order's payment is still being created; try again in a moment"}
	case o.State != OrderPending || !now.Before(o.ExpiresAt):
		return &RequestError{Status: http.StatusConflict, Code: "order_closed",
			Message: "this order is closed and can no longer be paid; please start a new order"}
	case o.Payment.URL == "" && o.Payment.Wallet == "" && o.Payment.Card == "":
		// Recovered from a lost reply: the invoice exists, but not where
		// to pay it.
		return &RequestError{Status: http.StatusConflict, Code: "order_closed",
			Message: "this order's payment page is not available; please start a new order"}
	}
	repl.Set("kassa.payment_url", o.Payment.URL)
	if wantsJSON(r) {
		return writeJSON(w, http.StatusCreated, newCreatedView(o))
	}
	if o.Payment.URL != "" {
		http.Redirect(w, r, o.Payment.URL, http.StatusSeeOther)
		return nil
	}
	return writePayToPage(w, o)
}

// status reports an order. A pending order is refreshed from its provider,
// at most once a second however many buyers poll it; the answer is made
// once per version of the order's record.
func (h *Checkout) status(w http.ResponseWriter, r *http.Request, id string) error {
	if !ValidOrderID(id) {
		return badRequest("bad_order_id", "order", "that is not an order id")
	}
	rec, err := h.app.orders.loadRecord(r.Context(), id)
	if errors.Is(err, ErrOrderNotFound) {
		return &RequestError{Status: http.StatusNotFound, Code: "unknown_order", Message: "no such order"}
	}
	if err != nil {
		return err
	}
	answer, err := h.app.statuses.answer(id, rec)
	if err != nil {
		return err
	}
	o := answer.order
	if o.State == OrderPending && !h.app.now().Before(o.ExpiresAt) {
		// Its time is up: it is expiring, and nobody is sent to pay it.
		v := newStatusView(o)
		v.PaymentURL, v.PayTo = "", nil
		return writeJSON(w, http.StatusOK, v)
	}
	if acc, ok := h.app.accounts[o.Account]; ok && o.State == OrderPending {
		st, err := h.app.paymentStatus(r.Context(), acc, o)
		switch {
		case err == nil && st.Paid:
			// The buyer need not wait for the reconciler: the payment is
			// recorded now, and the reconciler sends its receipt.
			paid, err := h.app.paid(context.WithoutCancel(r.Context()), o.ID, st, "")
			if err != nil {
				return err
			}
			h.app.reconciler.nudge(o.ID)
			return writeJSON(w, http.StatusOK, newStatusView(paid))
		case err == nil && st.Problem != "":
			// Noted for the operator; the buyer's answer is the same, and
			// the reconciler notes it if this write fails.
			if _, err := h.app.paymentProblem(context.WithoutCancel(r.Context()), o.ID, st); err != nil {
				h.logger.Error("noting a payment problem", zap.String("order_id", o.ID), zap.Error(err))
			}
		}
	}
	return writeJSONBody(w, http.StatusOK, answer.body)
}

// fail answers an error, as a short page to a form's buyer.
func (h *Checkout) fail(w http.ResponseWriter, r *http.Request, err error) error {
	return answerError(w, r, h.logger, "checkout failed", err, r.Method == http.MethodPost && !wantsJSON(r))
}

// parseCheckout sets up the handler from Caddyfile tokens.
func parseCheckout(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(Checkout)
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return c, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
//
// Syntax:
//
//	kassa_checkout [<matcher>] [<payment>] {
//		payment      <name>
//		amount       <amount>          # proxied storefront: placeholders
//		order_id     <id>
//		description  <text>
//		items        <json>
//		email        <email>
//		phone        <phone>
//		amount_range <min> <max>       # buyer-chosen amount
//		redirect     <url>             # {kassa.order_id} is the order's id
//		max_body     <bytes>           # default 65536
//		allowed_origins <origin>...    # other sites' pages may check out; others: 403
//	}
func (h *Checkout) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		h.Payment = d.Val()
		if d.NextArg() {
			return d.ArgErr()
		}
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "payment":
			err = parseOneArg(d, &h.Payment)
		case "amount":
			err = parseOneArg(d, &h.Amount)
		case "order_id":
			err = parseOneArg(d, &h.OrderID)
		case "description":
			err = parseOneArg(d, &h.Description)
		case "items":
			err = parseOneArg(d, &h.Items)
		case "email":
			err = parseOneArg(d, &h.Email)
		case "phone":
			err = parseOneArg(d, &h.Phone)
		case "redirect":
			err = parseOneArg(d, &h.Redirect)
		case "amount_range":
			err = h.parseAmountRange(d)
		case "max_body":
			err = parseSize(d, &h.MaxBody)
		case "allowed_origins":
			err = parseOrigins(d, &h.AllowedOrigins)
		default:
			err = d.Errf("unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *Checkout) parseAmountRange(d *caddyfile.Dispenser) error {
	if h.AmountRange != nil {
		return d.Errf("amount_range given twice")
	}
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.ArgErr()
	}
	minimum, err := ParseAmount("amount_range", args[0])
	if err != nil {
		return d.Errf("amount_range: %v", err)
	}
	maximum, err := ParseAmount("amount_range", args[1])
	if err != nil {
		return d.Errf("amount_range: %v", err)
	}
	if !minimum.IsPositive() || maximum.LessThan(minimum) {
		return d.Errf("amount_range %s %s: want 0 < min ≤ max", args[0], args[1])
	}
	h.AmountRange = &AmountRange{Min: minimum, Max: maximum}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Checkout)(nil)
	_ caddy.Validator             = (*Checkout)(nil)
	_ caddyhttp.MiddlewareHandler = (*Checkout)(nil)
	_ caddyfile.Unmarshaler       = (*Checkout)(nil)
)
