package kassa

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Admin{})
}

// maxAdminBody caps an admin request's body.
const maxAdminBody = 64 << 10

// Admin is the operator API on Caddy's admin endpoint (local-only by
// default, as Caddy's admin is): the morning check, balances, orders, cancel and confirm,
// receipts and refunds, payouts and their status, and cash in and out of
// the till. It finds
// the running kassa app at request time.
type Admin struct{}

// CaddyModule returns the Caddy module information.
func (Admin) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "admin.api.kassa",
		New: func() caddy.Module { return new(Admin) },
	}
}

// Routes serves everything under /kassa/.
func (Admin) Routes() []caddy.AdminRoute {
	return []caddy.AdminRoute{{Pattern: "/kassa/", Handler: caddy.AdminHandlerFunc(serveAdmin)}}
}

// serveAdmin routes an admin request to the running app.
func serveAdmin(w http.ResponseWriter, r *http.Request) error {
	app, err := runningApp()
	if err == nil {
		err = app.serveAdmin(w, r)
	}
	if err != nil {
		writeAdminError(w, err)
	}
	return nil
}

// runningApp is the kassa app of the running config.
func runningApp() (*App, error) {
	mod, err := caddy.ActiveContext().AppIfConfigured("kassa")
	if err != nil {
		return nil, &RequestError{Status: http.StatusServiceUnavailable, Code: "no_kassa_app",
			Message: "the running config has no kassa app: add the kassa global option"}
	}
	app, ok := mod.(*App)
	if !ok {
		return nil, fmt.Errorf("the kassa app is a %T", mod)
	}
	return app, nil
}

func (a *App) serveAdmin(w http.ResponseWriter, r *http.Request) error {
	parts := strings.Split(strings.Trim(strings.TrimPrefix(r.URL.Path, "/kassa/"), "/"), "/")
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	switch {
	case get && len(parts) == 1 && parts[0] == "balance":
		return a.adminBalance(w, r)
	case get && len(parts) == 1 && parts[0] == "check":
		return a.adminCheck(w, r)
	case get && len(parts) == 1 && parts[0] == "orders":
		return a.adminOrders(w, r)
	case get && len(parts) == 2 && parts[0] == "orders" && parts[1] == "export":
		return a.adminExport(w, r)
	case get && len(parts) == 2 && parts[0] == "orders" && parts[1] == "totals":
		return a.adminTotals(w, r)
	case get && len(parts) == 2 && parts[0] == "orders":
		o, err := a.adminOrder(r.Context(), parts[1])
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, o)
	case post && len(parts) == 3 && parts[0] == "orders":
		return a.adminOrderAction(w, r, parts[1], parts[2])
	case post && len(parts) == 1 && parts[0] == "payouts":
		return a.adminPayout(w, r)
	case get && len(parts) == 2 && parts[0] == "payouts":
		return a.adminPayoutStatus(w, r, parts[1])
	case post && len(parts) == 2 && parts[0] == "cash" && (parts[1] == "deposit" || parts[1] == "withdraw"):
		return a.adminCash(w, r, parts[1])
	case get && len(parts) == 2 && parts[0] == "operations":
		return a.adminOperation(w, r, parts[1])
	case get && len(parts) == 1 && parts[0] == "events":
		return a.adminEvents(w, r)
	case get && len(parts) == 2 && parts[0] == "events":
		return a.adminEvent(w, r, parts[1])
	case post && len(parts) == 3 && parts[0] == "events" && parts[2] == "redeliver":
		return a.adminRedeliver(w, r, parts[1])
	case adminRouteExists(parts):
		return &RequestError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: r.Method + " is not allowed here"}
	default:
		return &RequestError{Status: http.StatusNotFound, Code: "not_found", Message: "no such kassa admin route"}
	}
}

func adminRouteExists(parts []string) bool {
	switch {
	case len(parts) == 1:
		return slices.Contains([]string{"balance", "check", "orders", "payouts", "events"}, parts[0])
	case len(parts) == 2:
		return slices.Contains([]string{"orders", "operations", "cash", "events", "payouts"}, parts[0])
	case len(parts) == 3:
		return parts[0] == "orders" || (parts[0] == "events" && parts[2] == "redeliver")
	}
	return false
}

// balanceView is an account's balance, or why it could not be read.
type balanceView struct {
	Provider string            `json:"provider"`
	Balance  string            `json:"balance,omitempty"`
	Wallets  map[string]string `json:"wallets,omitempty"`
	Error    *adminErrorBody   `json:"error,omitempty"`
}

// adminBalance reports every account's balance. It answers 200 when at
// least one account answered, and the status of the failure otherwise.
func (a *App) adminBalance(w http.ResponseWriter, r *http.Request) error {
	out := make(map[string]balanceView, len(a.accounts))
	status, failures := http.StatusOK, 0
	for _, acc := range a.sortedAccounts() {
		b, err := acc.Balance(r.Context())
		if err != nil {
			failures++
			status = StatusCode(err)
			body := adminError(err)
			out[acc.name] = balanceView{Provider: acc.provider, Error: &body}
			continue
		}
		v := balanceView{Provider: acc.provider, Balance: FormatAmount(b.Total)}
		if len(b.Wallets) > 0 {
			v.Wallets = make(map[string]string, len(b.Wallets))
			for name, amount := range b.Wallets {
				v.Wallets[name] = FormatAmount(amount)
			}
		}
		out[acc.name] = v
	}
	if failures < len(a.accounts) {
		status = http.StatusOK
	}
	return writeJSON(w, status, map[string]any{"accounts": out})
}

// orderSummary is an order in a list.
type orderSummary struct {
	ID           string     `json:"id"`
	State        OrderState `json:"state"`
	Account      string     `json:"account"`
	Provider     string     `json:"provider"`
	Amount       string     `json:"amount"`
	CreatedAt    time.Time  `json:"created_at"`
	PaidAt       *time.Time `json:"paid_at"`
	ReceiptState string     `json:"receipt_state"`
	Email        string     `json:"email,omitempty"`
	Phone        string     `json:"phone,omitempty"`
}

// adminOrders answers one page of orders, newest first: at most limit (1
// to 1000, default 50), created in [from, to), in state, after the cursor
// before (the previous page's next); next, when set, is the cursor of the
// page that follows. With shop_order_id, it answers the one order of that
// id instead.
func (a *App) adminOrders(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	if q.Has("shop_order_id") {
		o, err := a.adminShopOrder(r.Context(), q)
		if err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, o)
	}
	pq := PageQuery{Before: q.Get("before"), State: OrderState(q.Get("state"))}
	if q.Has("before") && pq.Before == "" {
		return badRequest("bad_cursor", "before", "before is empty: give the next cursor of the previous page, or leave it out")
	}
	if raw := q.Get("limit"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 || n > maxPageLimit {
			return badRequest("bad_limit", "limit", "limit is a whole number from 1 to %d", maxPageLimit)
		}
		pq.Limit = n
	}
	var err error
	if pq.From, pq.To, err = a.timeRange(q); err != nil {
		return err
	}
	orders, next, err := a.orders.Page(r.Context(), pq)
	if err != nil {
		return err
	}
	out := make([]orderSummary, 0, len(orders))
	for _, o := range orders {
		s := orderSummary{ID: o.ID, State: o.State, Account: o.Account, Provider: o.Provider, Amount: FormatAmount(o.Amount),
			CreatedAt: o.CreatedAt, Email: o.Email, Phone: o.Phone, ReceiptState: "none"}
		if !o.PaidAt.IsZero() {
			paid := o.PaidAt
			s.PaidAt = &paid
		}
		if o.Receipt != nil {
			s.ReceiptState = string(o.Receipt.State.Public())
		}
		out = append(out, s)
	}
	return writeJSON(w, http.StatusOK, orderPage{Orders: out, Next: next})
}

// orderPage is a page of GET /kassa/orders.
type orderPage struct {
	Orders []orderSummary `json:"orders"`
	// Next is the cursor of the next page (its before); absent at the end.
	Next string `json:"next,omitempty"`
}

// timeRange reads a request's from and to: RFC 3339 times, or dates
// (YYYY-MM-DD: midnight in the app's time zone). From is inclusive, to
// exclusive, and from must come before to.
func (a *App) timeRange(q url.Values) (from, to time.Time, err error) {
	if from, err = a.parseTimeParam(q, "from"); err != nil {
		return
	}
	if to, err = a.parseTimeParam(q, "to"); err != nil {
		return
	}
	if !from.IsZero() && !to.IsZero() && !from.Before(to) {
		err = badRequest("bad_range", "to", "to must come after from (from is inclusive, to exclusive)")
	}
	return
}

// parseTimeParam reads a time parameter; a missing one is the zero time.
func (a *App) parseTimeParam(q url.Values, name string) (time.Time, error) {
	if !q.Has(name) {
		return time.Time{}, nil
	}
	raw := q.Get(name)
	// An offset's + that a shell's URL left unescaped arrives as a space.
	if t, err := time.Parse(time.RFC3339Nano, strings.Replace(raw, " ", "+", 1)); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation(time.DateOnly, raw, a.location()); err == nil {
		return t, nil
	}
	return time.Time{}, badRequest("bad_"+name, name, "%s is a date (2026-11-01, midnight in the app's time zone %s) or an RFC 3339 time (2026-11-01T00:00:00+03:00), got %s",
		name, a.location(), quoteInput(raw))
}

func (a *App) adminOrder(ctx context.Context, id string) (*Order, error) {
	o, err := a.orders.Load(ctx, id)
	if errors.Is(err, ErrOrderNotFound) {
		return nil, &RequestError{Status: http.StatusNotFound, Code: "unknown_order", Message: "no such order"}
	}
	return o, err
}

// adminShopOrder finds the order a proxied checkout made for the
// upstream's order id in q's shop_order_id, answered as GET
// /kassa/orders/{id} answers it. That checkout claims the id's idempotency
// scope (shopIdempotencyKey), so one id names at most one order and this
// is two storage reads, the mapping and the order, however many orders are
// stored: never a scan.
func (a *App) adminShopOrder(ctx context.Context, q url.Values) (*Order, error) {
	for _, p := range []string{"state", "limit", "before", "from", "to"} {
		if q.Has(p) {
			return nil, badRequest("bad_query", "shop_order_id", "shop_order_id names one order: it takes no state, limit, before, from or to")
		}
	}
	shopID := q["shop_order_id"]
	if len(shopID) != 1 || !validShopOrderID(shopID[0]) {
		return nil, badRequest("bad_shop_order_id", "shop_order_id",
			"shop_order_id is one order id of 1 to %d ASCII letters, digits, dots, underscores, dashes or colons", maxShopOrderID)
	}
	id, ok, err := a.orders.ByIdempotencyKey(ctx, shopIdempotencyKey(shopID[0]))
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, &RequestError{Status: http.StatusNotFound, Code: "unknown_order", Message: "no order has this shop_order_id"}
	}
	return a.adminOrder(ctx, id)
}

// adminOrderAction cancels or confirms an order, or issues its receipt or
// refund (whose optional body gives the buyer's contacts: refundcontacts.go).
func (a *App) adminOrderAction(w http.ResponseWriter, r *http.Request, id, action string) error {
	var o *Order
	var err error
	switch action {
	case "cancel":
		o, err = a.cancelOrder(r.Context(), id)
	case "confirm":
		o, err = a.confirmOrder(r.Context(), id)
	case "receipt":
		if o, err = a.reissueReceipt(r.Context(), id, ReceiptSale, nil); err == nil {
			err = receiptOutcome(o.Receipt)
		}
	case "refund":
		var to *buyerContacts
		if to, err = decodeRefundBody(r); err != nil {
			return err
		}
		if o, err = a.reissueReceipt(r.Context(), id, ReceiptSaleReturn, to); err == nil {
			err = receiptOutcome(o.Refund)
		}
	default:
		return &RequestError{Status: http.StatusNotFound, Code: "not_found", Message: "no such order action: " + quoteInput(action)}
	}
	if errors.Is(err, ErrOrderNotFound) {
		return &RequestError{Status: http.StatusNotFound, Code: "unknown_order", Message: "no such order"}
	}
	if err != nil {
		return err
	}
	a.logger.Info("operator: order "+action, zap.String("order_id", o.ID), zap.String("state", string(o.State)))
	return writeJSON(w, http.StatusOK, o)
}

// cancelOrder cancels a pending order at its provider. An order the
// provider reports paid is recorded paid instead, and the cancel refused.
func (a *App) cancelOrder(ctx context.Context, id string) (*Order, error) {
	o, acc, err := a.operatorOrder(ctx, id)
	if err != nil {
		return o, err
	}
	if o.State != OrderPending {
		return o, &RequestError{Status: http.StatusConflict, Code: "not_pending", Message: "the order is " + string(o.State.Public())}
	}
	ref := PaymentRef{ID: o.Payment.ID, OrderID: o.ID}
	if st, err := acc.PaymentStatus(ctx, ref); err == nil && st.Paid {
		if o, err = a.paid(ctx, id, st, ""); err != nil {
			return o, err
		}
		return o, &RequestError{Status: http.StatusConflict, Code: "already_paid", Message: "the buyer has paid this order"}
	}
	err = acc.CancelPayment(ctx, ref)
	if errors.Is(err, ErrNotSupported) {
		return o, &RequestError{Status: http.StatusConflict, Code: "cannot_cancel",
			Message: acc.provider + " cannot cancel a payment link; the order expires after order_ttl"}
	}
	if err != nil {
		return o, err
	}
	if o, err = a.cancelled(ctx, id, "cancelled by an operator"); err != nil {
		return o, err
	}
	if o.State != OrderCancelled {
		return o, &RequestError{Status: http.StatusConflict, Code: "not_pending", Message: "the order became " + string(o.State) + " meanwhile"}
	}
	return o, nil
}

// confirmOrder records an order as paid on an operator's word, for a
// payment the provider cannot report or reported late: a pending order
// becomes paid, one that closed unpaid becomes paid late. Its receipt
// follows.
func (a *App) confirmOrder(ctx context.Context, id string) (*Order, error) {
	o, _, err := a.operatorOrder(ctx, id)
	if err != nil {
		return o, err
	}
	if o.State == OrderCreating || o.State == OrderPaid {
		return o, &RequestError{Status: http.StatusConflict, Code: "cannot_confirm", Message: "the order is " + string(o.State)}
	}
	return a.paid(ctx, id, PaymentStatus{Paid: true}, "operator")
}

// receiptOutcome is the error an operator gets for a receipt that was
// sent and then failed at the till: 502, and it stays failed until the
// next retry, which issues it under a new operation id. A send that failed
// is reissueReceipt's own error.
func receiptOutcome(rec *OrderReceipt) error {
	if rec != nil && rec.State == ReceiptFailed {
		return &RequestError{Status: http.StatusBadGateway, Code: "provider_error",
			Message: "receipt " + rec.OperationID + " failed: " + rec.Error}
	}
	return nil
}

// operatorOrder loads an order an operator acts on, with its payment
// account.
func (a *App) operatorOrder(ctx context.Context, id string) (*Order, *account, error) {
	o, err := a.orders.Load(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	acc, ok := a.accounts[o.Account]
	if !ok {
		return o, nil, &RequestError{Status: http.StatusConflict, Code: "unknown_account", Message: "the order's payment account is no longer configured"}
	}
	return o, acc, nil
}

// cashRequest is cash put into or taken out of a till.
type cashRequest struct {
	Amount      string `json:"amount"`
	CashboxID   string `json:"cashbox_id"`
	OperationID string `json:"operation_id"`
}

// adminCash records cash in or out of a till. An operation id may be given
// (a retry with the same id does nothing twice); one is made otherwise.
func (a *App) adminCash(w http.ResponseWriter, r *http.Request, direction string) error {
	if a.receipts == nil {
		return &RequestError{Status: http.StatusConflict, Code: "no_receipt_service", Message: "no receipt service is configured"}
	}
	var req cashRequest
	if err := decodeAdminBody(r, &req); err != nil {
		return err
	}
	amount, err := ParseAmount("amount", req.Amount)
	if err != nil {
		return err
	}
	if strings.HasPrefix(req.OperationID, "kassa-") {
		// Smart Cashier has one namespace of operation ids: this one would
		// take an order receipt's id.
		return badRequest("bad_operation_id", "operation_id", "operation ids starting with kassa- belong to order receipts")
	}
	given := req.OperationID != ""
	if !given {
		req.OperationID = "cash-" + NewOrderID()
	}
	op := CashOperation{OperationID: req.OperationID, CashboxID: req.CashboxID, Amount: amount}
	if direction == "deposit" {
		err = a.receipts.DepositCash(r.Context(), op)
	} else {
		err = a.receipts.WithdrawCash(r.Context(), op)
	}
	if err != nil {
		if errors.Is(err, ErrInvalid) {
			return err // nothing was sent
		}
		// It may have been recorded (a lost reply): the operator sends it
		// again under the same id, which Smart Cashier records once.
		return &cashError{err: err, operationID: op.OperationID}
	}
	state := ReceiptQueued
	if given {
		// It may have been sent before: Smart Cashier answers a repeated id
		// with its first result and does nothing, so the operator hears
		// where that operation stands.
		if state, err = a.cashOperationState(r.Context(), op.OperationID); err != nil {
			return err
		}
	}
	a.logger.Info("operator: cash "+direction, zap.String("operation_id", op.OperationID), zap.String("state", string(state)))
	return writeJSON(w, http.StatusAccepted, map[string]string{"operation_id": op.OperationID, "state": string(state)})
}

// cashOperationState is where a cash operation just sent under an id the
// operator gave stands: queued or done. One the till did not process
// (status 3: an earlier send under the id) is a 409: Smart Cashier answers
// a repeated id with its first result, so it is done again only under a
// new operation id.
func (a *App) cashOperationState(ctx context.Context, id string) (ReceiptState, error) {
	op, err := a.receipts.ReceiptStatus(ctx, id)
	switch {
	case err != nil:
		// Sent, its state unknown for now: GET /kassa/operations/{id}.
		return ReceiptQueued, nil
	case op.Status == OperationFailed:
		return "", &RequestError{Status: http.StatusConflict, Code: "operation_failed", Field: "operation_id",
			Message: "operation " + id + " was not processed (" + op.Error + "): send it again under a new operation_id, or none to have one made"}
	case op.Status == OperationProcessed:
		return ReceiptDone, nil
	}
	return ReceiptQueued, nil
}

// cashError is a cash operation that was sent and failed, with the
// operation id it was sent under (perhaps one made for it): sent again with
// that id, it is recorded at most once.
type cashError struct {
	err         error
	operationID string
}

func (e *cashError) Error() string { return e.err.Error() }
func (e *cashError) Unwrap() error { return e.err }

// adminOperation reports a receipt-service operation.
func (a *App) adminOperation(w http.ResponseWriter, r *http.Request, id string) error {
	if a.receipts == nil {
		return &RequestError{Status: http.StatusConflict, Code: "no_receipt_service", Message: "no receipt service is configured"}
	}
	if err := validateOperationID(id); err != nil {
		return err
	}
	op, err := a.receipts.ReceiptStatus(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return &RequestError{Status: http.StatusNotFound, Code: "unknown_operation", Message: "no such operation"}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newOperationView(id, op))
}

// decodeAdminBody reads a JSON body strictly into v: one valid-UTF-8 JSON
// value with only v's fields.
func decodeAdminBody(r *http.Request, v any) error {
	body, err := readBody(r, maxAdminBody)
	if err != nil {
		return err
	}
	return decodeAdminJSON(body, v)
}

// decodeAdminJSON is decodeAdminBody of a body read.
func decodeAdminJSON(body []byte, v any) error {
	if !utf8.Valid(body) {
		return badRequest("bad_request", "", "the body is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return badRequest("bad_request", "", "the body is not the documented JSON: %s", jsonErrorText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return badRequest("bad_request", "", "the body holds more than one JSON value")
	}
	return nil
}

// adminErrorBody is an error as the admin API reports it.
type adminErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
	// OperationID is the id a failed cash operation was sent under, to
	// send it again with.
	OperationID string `json:"operation_id,omitempty"`
}

// adminError describes err for an operator: unlike a buyer, an operator is
// told the provider's own code and message (never a secret: provider
// errors carry none).
func adminError(err error) adminErrorBody {
	var re *RequestError
	var ve *ValidationError
	var pe *ProviderError
	var tooNew *RecordTooNewError
	switch {
	case errors.As(err, &re):
		return adminErrorBody{Code: re.Code, Message: re.Message, Field: re.Field}
	case errors.As(err, &tooNew):
		// The message names the record and the versions: the operator
		// runs a newer release, never edits the record.
		return adminErrorBody{Code: "record_too_new", Message: err.Error()}
	case errors.As(err, &ve):
		return adminErrorBody{Code: "invalid", Message: ve.Error(), Field: ve.Field}
	case errors.As(err, &pe):
		_, code, _ := publicError(err)
		return adminErrorBody{Code: code, Message: pe.Error(), Field: pe.Path}
	default:
		_, code, message := publicError(err)
		return adminErrorBody{Code: code, Message: message}
	}
}

func writeAdminError(w http.ResponseWriter, err error) {
	status := StatusCode(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "5")
	}
	body := adminError(err)
	var cash *cashError
	if errors.As(err, &cash) {
		body.OperationID = cash.operationID
	}
	writeJSON(w, status, map[string]adminErrorBody{"error": body})
}

// Interface guards
var _ caddy.AdminRouter = (*Admin)(nil)
