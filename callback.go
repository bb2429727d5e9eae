package kassa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(CallbackHandler{})
	httpcaddyfile.RegisterHandlerDirective("kassa_callback", parseCallbackHandler)
	httpcaddyfile.RegisterDirectiveOrder("kassa_callback", httpcaddyfile.Before, "respond")
}

// maxCallbackBody caps a callback's body: a CrystalPAY callback is an
// invoice of about a kilobyte.
const maxCallbackBody = 64 << 10

// callbackReadTimeout bounds the reading of a callback's body: CrystalPAY
// sends it at once, and the route is public, so one that trickles in
// (slowloris) is cut off rather than holding a connection open. Caddy
// sets no body read timeout by default.
const callbackReadTimeout = 10 * time.Second

// forgeryLogEvery is how often, at most, a handler logs the callbacks it
// refused for their signature.
const forgeryLogEvery = time.Minute

// The results of a callback, counted in kassa_callbacks_total.
const (
	callbackPaid           = "paid"
	callbackNotPaid        = "not_paid"
	callbackProblem        = "problem"
	callbackPayout         = "payout"
	callbackBadSignature   = "bad_signature"
	callbackInvalid        = "invalid"
	callbackUnknownPayment = "unknown_payment"
	callbackFailed         = "failed"
)

// CallbackHandler receives the signed callbacks a payment account's
// provider posts when a payment changes (CrystalPAY with api v3): it is
// the route the account's callback URL names. A callback only says where
// to look: the handler checks its signature, finds the order it names,
// and reads the payment back from the provider before it changes
// anything, so a replayed or stale callback can do no harm.
//
// It answers a POST only (405 otherwise), with a body of at most 64 KiB
// (413) read within 10 s (400). A body that is not a callback is 400; one whose signature does not
// hold is 403, changes nothing, and is logged at most once a minute with
// the count since the last line. A payout's callback is logged and
// answered 200: the admin API asks for a payout's fate itself. A payment
// whose order is not this account's, or whose order does not hold that
// payment, is 404 unknown_payment. Otherwise the provider is asked: paid
// records the order paid (or paid late, if it had closed unpaid) with its
// receipt, durably, before the 200; paid short of the order, or a problem
// the provider reports, is noted on the order; not paid changes nothing.
// The provider or the order storage failing is 503, so that the provider
// sends the callback again; the reconciler's polling stays the fallback.
// Success is 200 with the text OK, which is what CrystalPAY expects.
type CallbackHandler struct {
	// Payment names the payment account whose callbacks this route
	// receives.
	Payment string `json:"payment"`

	app      *App
	acc      *account
	receiver CallbackReceiver
	logger   *zap.Logger
	forged   *forgeries
	// readTimeout bounds the reading of a callback's body.
	readTimeout time.Duration
}

// CaddyModule returns the Caddy module information.
func (CallbackHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kassa_callback",
		New: func() caddy.Module { return new(CallbackHandler) },
	}
}

// Provision finds the kassa app and the payment account, whose provider
// must send callbacks.
func (h *CallbackHandler) Provision(ctx caddy.Context) error {
	app, err := findApp(ctx, "kassa_callback")
	if err != nil {
		return err
	}
	return h.use(app, ctx.Logger())
}

// use sets the handler up on app's account h.Payment.
func (h *CallbackHandler) use(app *App, logger *zap.Logger) error {
	if h.Payment == "" {
		return errors.New("kassa_callback: name the payment account whose callbacks this route receives")
	}
	acc, err := app.account(h.Payment)
	if err != nil {
		return fmt.Errorf("kassa_callback: %v", err)
	}
	receiver, ok := acc.PaymentProvider.(CallbackReceiver)
	if !ok {
		return fmt.Errorf("kassa_callback: payment account %q (%s) sends no callbacks; only an account whose provider does can have this route (%s)",
			acc.name, acc.provider, callbackAccounts(app))
	}
	h.app, h.acc, h.receiver, h.logger, h.forged = app, acc, receiver, logger, new(forgeries)
	h.readTimeout = callbackReadTimeout
	return nil
}

// callbackAccounts says which of app's accounts send callbacks.
func callbackAccounts(app *App) string {
	var names []string
	for _, acc := range app.sortedAccounts() {
		if _, ok := acc.PaymentProvider.(CallbackReceiver); ok {
			names = append(names, acc.name)
		}
	}
	if len(names) == 0 {
		return "CrystalPAY with `api v3` sends them; this app has no such account"
	}
	return "CrystalPAY with `api v3` sends them; in this app: " + strings.Join(names, ", ")
}

// ServeHTTP receives one callback.
func (h *CallbackHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return answerError(w, r, h.logger, "callback refused", &RequestError{Status: http.StatusMethodNotAllowed,
			Code: "method_not_allowed", Message: "a payment callback is a POST"}, false)
	}
	// Where the connection cannot take a deadline (HTTP/3, a test's
	// recorder), the server's own timeouts are all there is.
	_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(h.readTimeout))
	result, err := h.receive(r)
	countCallback(h.acc.name, result)
	if err != nil {
		return answerError(w, r, h.logger, "callback failed", err, false)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, err = w.Write([]byte("OK"))
	return err
}

// receive handles a callback and returns its result, and the error to
// answer when it was not taken.
func (h *CallbackHandler) receive(r *http.Request) (string, error) {
	body, err := readBody(r, maxCallbackBody)
	if err != nil {
		return callbackInvalid, err
	}
	cb, err := h.receiver.ParseCallback(body)
	switch {
	case errors.Is(err, ErrBadSignature):
		h.forgery(r)
		return callbackBadSignature, &RequestError{Status: http.StatusForbidden, Code: "bad_signature",
			Message: "the callback's signature does not hold"}
	case err != nil:
		return callbackInvalid, badRequest("bad_callback", "", "the body is not a payment callback")
	case cb.Payout:
		h.logger.Info("payout callback", zap.String("account", h.acc.name), zap.String("payout_id", cb.PaymentID))
		return callbackPayout, nil
	}

	// An id that cannot be an order's is not looked up: it names none.
	var o *Order
	err = ErrOrderNotFound
	if ValidOrderID(cb.OrderID) && cb.PaymentID != "" {
		o, err = h.app.orders.Load(r.Context(), cb.OrderID)
	}
	if errors.Is(err, ErrOrderNotFound) || (err == nil && (o.Account != h.acc.name || o.Payment.ID != cb.PaymentID)) {
		h.logger.Info("callback for an unknown payment", zap.String("account", h.acc.name), zap.String("payment_id", cb.PaymentID))
		return callbackUnknownPayment, &RequestError{Status: http.StatusNotFound, Code: "unknown_payment", Message: "no order of this account holds that payment"}
	}
	if err != nil {
		return callbackFailed, err
	}
	if o.State == OrderPaid {
		return callbackPaid, nil // a callback sent again: nothing left to learn
	}

	// The body is not trusted: the provider itself says where the payment
	// stands, now, never a status another poll fetched a moment ago. The
	// call takes a token of the account's rate limit if one is there, and
	// never waits for one, as a buyer's poll does.
	h.acc.spend()
	st, err := h.acc.PaymentStatus(r.Context(), PaymentRef{ID: o.Payment.ID, OrderID: o.ID})
	if err != nil {
		h.logger.Warn("payment status for a callback failed; the provider will send it again",
			zap.String("order_id", o.ID), zap.String("account", h.acc.name), zap.Error(err))
		return callbackFailed, &RequestError{Status: http.StatusServiceUnavailable, Code: "provider_unavailable",
			Message: "the payment service did not answer; send the callback again later"}
	}
	// From here on the provider's answer is recorded whether or not the
	// provider waits for ours.
	ctx := context.WithoutCancel(r.Context())
	switch {
	case st.Paid:
		stored, err := h.app.paid(ctx, o.ID, st, "")
		if err != nil {
			return callbackFailed, err
		}
		if stored.State != OrderPaid {
			// Paid short of the order: the shortfall is noted on it, for
			// an operator, and it is not paid.
			return callbackProblem, nil
		}
		h.app.reconciler.nudge(o.ID)
		return callbackPaid, nil
	case st.Problem != "":
		if _, err := h.app.paymentProblem(ctx, o.ID, st); err != nil {
			return callbackFailed, err
		}
		return callbackProblem, nil
	}
	return callbackNotPaid, nil
}

// forgery counts a callback refused for its signature, and logs the count
// at most once a minute. Neither the body nor its signature is logged.
func (h *CallbackHandler) forgery(r *http.Request) {
	if n, ok := h.forged.add(h.app.now()); ok {
		h.logger.Warn("callbacks refused: their signature does not hold (forged, or signed with another salt)",
			zap.String("account", h.acc.name), zap.Int("count", n), zap.String("last_remote", r.RemoteAddr))
	}
}

// forgeries counts the callbacks refused for their signature since the
// last log line.
type forgeries struct {
	mu     sync.Mutex
	count  int
	logged time.Time
}

// add counts one at now; when the last line is a minute old (or there was
// none), it returns the count to log, and starts counting anew.
func (f *forgeries) add(now time.Time) (int, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	if !f.logged.IsZero() && now.Sub(f.logged) < forgeryLogEvery {
		return 0, false
	}
	n := f.count
	f.count, f.logged = 0, now
	return n, true
}

// parseCallbackHandler sets up the handler from Caddyfile tokens.
func parseCallbackHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(CallbackHandler)
	err := c.UnmarshalCaddyfile(h.Dispenser)
	return c, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
//
// Syntax:
//
//	kassa_callback [<matcher>] <payment>
func (h *CallbackHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if !d.NextArg() {
		return d.Errf("kassa_callback needs the payment account whose callbacks the route receives")
	}
	h.Payment = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	if d.NextBlock(0) {
		return d.Errf("kassa_callback takes no block")
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*CallbackHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*CallbackHandler)(nil)
	_ caddyfile.Unmarshaler       = (*CallbackHandler)(nil)
)
