package kassa

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(ReceiptHandler{})
	httpcaddyfile.RegisterHandlerDirective("kassa_receipt", parseReceiptHandler)
	httpcaddyfile.RegisterDirectiveOrder("kassa_receipt", httpcaddyfile.Before, "respond")
}

// maxReceiptBody caps a receipt posted by a trusted caller.
const maxReceiptBody = 64 << 10

// ReceiptHandler shows an order's fiscal receipt: JSON for API clients, a
// printable page with the tax service's QR code for browsers, and the
// Pegas-kassa payment document as PDF or JPEG. With Issue, it also issues
// receipts for a trusted caller (a till, a backend): protect such a route
// with remote_ip or basic_auth.
type ReceiptHandler struct {
	// Issue lets POST issue receipts and GET ?operation= report them.
	Issue bool `json:"issue,omitempty"`
	// Shop is the seller's name printed on the receipt page; default the
	// request's host.
	Shop string `json:"shop,omitempty"`

	app    *App
	logger *zap.Logger
	qr     *qrCache
	docs   *docCache
}

// CaddyModule returns the Caddy module information.
func (ReceiptHandler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.kassa_receipt",
		New: func() caddy.Module { return new(ReceiptHandler) },
	}
}

// Provision finds the kassa app.
func (h *ReceiptHandler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	app, err := findApp(ctx, "kassa_receipt")
	if err != nil {
		return err
	}
	h.app = app
	h.qr = new(qrCache)
	h.docs = newDocCache(maxCachedDocument, maxCachedDocuments)
	if h.Issue && app.receipts == nil {
		return errors.New("kassa_receipt: issue needs a receipt service: add `receipts smartcashier { ... }` to the kassa option")
	}
	return nil
}

// ServeHTTP answers GET ?order= and, with Issue, POST and GET ?operation=.
func (h *ReceiptHandler) ServeHTTP(w http.ResponseWriter, r *http.Request, _ caddyhttp.Handler) error {
	w.Header().Set("Cache-Control", "no-store")
	q := r.URL.Query()
	var err error
	switch {
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && q.Has("order"):
		err = h.showOrder(w, r, q.Get("order"), q.Get("format"))
	case (r.Method == http.MethodGet || r.Method == http.MethodHead) && q.Has("operation") && h.Issue:
		err = h.showOperation(w, r, q.Get("operation"))
	case r.Method == http.MethodPost && h.Issue:
		err = h.issue(w, r)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		err = badRequest("bad_request", "order", "ask for ?order=<id>")
	default:
		allow := "GET, HEAD"
		if h.Issue {
			allow += ", POST"
		}
		w.Header().Set("Allow", allow)
		err = &RequestError{Status: http.StatusMethodNotAllowed, Code: "method_not_allowed", Message: "this receipt route takes " + allow}
	}
	if err == nil {
		return nil
	}
	return answerError(w, r, h.logger, "receipt request failed", err, false)
}

// showOrder answers an order's receipt, or streams its payment document.
func (h *ReceiptHandler) showOrder(w http.ResponseWriter, r *http.Request, id, format string) error {
	if !ValidOrderID(id) {
		return badRequest("bad_order_id", "order", "that is not an order id")
	}
	o, err := h.app.orders.Load(r.Context(), id)
	if errors.Is(err, ErrOrderNotFound) {
		return &RequestError{Status: http.StatusNotFound, Code: "unknown_order", Message: "no such order"}
	}
	if err != nil {
		return err
	}
	if format != "" {
		return h.streamDocument(w, r, o, format)
	}
	if strings.Contains(r.Header.Get("Accept"), "text/html") {
		return h.writeReceiptPage(w, r, o)
	}
	view := newReceiptView(o).forBuyer()
	view.OrderID = o.ID
	return writeJSON(w, http.StatusOK, view)
}

// streamDocument answers the Pegas-kassa payment document of a paid order:
// from the handler's cache, or else from the provider, within the buyers'
// budget of the account's calls.
func (h *ReceiptHandler) streamDocument(w http.ResponseWriter, r *http.Request, o *Order, format string) error {
	if format != "pdf" && format != "jpeg" {
		return badRequest("bad_format", "format", "format is pdf or jpeg")
	}
	if o.State != OrderPaid {
		return &RequestError{Status: http.StatusConflict, Code: "order_not_paid", Message: "the order is not paid: its payment document comes once it is"}
	}
	key := o.ID + "." + format
	if doc, ok := h.docs.get(key); ok {
		return h.writeDocument(w, r, o.ID, format, doc.contentType, int64(len(doc.body)), bytes.NewReader(doc.body))
	}
	acc := h.app.accounts[o.Account]
	var docs DocumentProvider
	if acc != nil {
		docs, _ = acc.PaymentProvider.(DocumentProvider)
	}
	if docs == nil {
		return &RequestError{Status: http.StatusNotFound, Code: "no_document", Message: "this order's payment provider has no documents"}
	}
	if !acc.buyerCall() {
		w.Header().Set("Retry-After", acc.buyerRetryAfter())
		return &RequestError{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "too many documents are being asked of the payment provider just now; try again in a moment"}
	}
	doc, err := docs.PaymentDocument(r.Context(), PaymentRef{ID: o.Payment.ID, OrderID: o.ID}, format)
	if errors.Is(err, ErrNotFound) {
		return &RequestError{Status: http.StatusNotFound, Code: "no_document", Message: "the order has no payment document (yet)"}
	}
	if err != nil {
		return err
	}
	defer doc.Body.Close()
	// A document within the cache's cap is read whole and kept; a larger
	// one is streamed on.
	head, err := io.ReadAll(io.LimitReader(doc.Body, maxCachedDocument+1))
	if err != nil {
		return fmt.Errorf("reading order %s's payment document: %w", o.ID, ErrUnavailable)
	}
	if len(head) <= maxCachedDocument {
		h.docs.put(key, doc.ContentType, head)
		return h.writeDocument(w, r, o.ID, format, doc.ContentType, int64(len(head)), bytes.NewReader(head))
	}
	return h.writeDocument(w, r, o.ID, format, doc.ContentType, doc.Length, io.MultiReader(bytes.NewReader(head), doc.Body))
}

// writeDocument writes a payment document of length bytes (-1: unknown).
func (h *ReceiptHandler) writeDocument(w http.ResponseWriter, r *http.Request, id, format, contentType string, length int64, body io.Reader) error {
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="receipt-%s.%s"`, id, format))
	if length >= 0 {
		w.Header().Set("Content-Length", fmt.Sprint(length))
	}
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return nil
	}
	if _, err := io.Copy(w, body); err != nil {
		h.logger.Warn("streaming a payment document", zap.String("order_id", id), zap.Error(err))
	}
	return nil
}

// showOperation reports a receipt a trusted caller issued.
func (h *ReceiptHandler) showOperation(w http.ResponseWriter, r *http.Request, id string) error {
	if err := validateOperationID(id); err != nil {
		return err
	}
	op, err := h.app.receipts.ReceiptStatus(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		return &RequestError{Status: http.StatusNotFound, Code: "unknown_operation", Message: "no such operation"}
	}
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, newOperationView(id, op))
}

// issue validates a trusted caller's receipt and sends it. Only a JSON
// body from no other site's page is read: a till's network is trusted, and
// so are the browsers on it.
func (h *ReceiptHandler) issue(w http.ResponseWriter, r *http.Request) error {
	if err := sameSiteJSON(r); err != nil {
		return err
	}
	body, err := readBody(r, maxReceiptBody)
	if err != nil {
		return err
	}
	receipt, err := parseReceiptRequest(body)
	if err != nil {
		return err
	}
	if err := h.app.receipts.FormReceipt(r.Context(), receipt); err != nil {
		return err
	}
	h.logger.Info("receipt issued", zap.String("operation_id", receipt.OperationID), zap.String("type", receipt.Type.String()))
	return writeJSON(w, http.StatusAccepted, map[string]string{"operation_id": receipt.OperationID, "state": string(ReceiptQueued)})
}

// receiptRequest is a receipt as a trusted caller posts it; amounts are
// strings in plain decimal notation.
type receiptRequest struct {
	OperationID string `json:"operation_id"`
	Type        string `json:"type"`
	Taxation    string `json:"taxation"`
	Items       []struct {
		Name  string      `json:"name"`
		Qty   json.Number `json:"qty"`
		Price string      `json:"price"`
		VAT   string      `json:"vat"`
	} `json:"items"`
	Cash      string `json:"cash"`
	Cashless  string `json:"cashless"`
	Email     string `json:"email"`
	Phone     string `json:"phone"`
	Print     *bool  `json:"print"`
	CashboxID string `json:"cashbox_id"`
}

// parseReceiptRequest reads a posted receipt strictly: a body that is not
// one valid-UTF-8 JSON object, unknown fields, amounts in any notation but
// plain decimals, names with bidi controls, contacts ValidateContacts
// refuses, and operation ids in the plugin's own namespace are refused.
func parseReceiptRequest(body []byte) (Receipt, error) {
	if !utf8.Valid(body) {
		return Receipt{}, badRequest("bad_request", "", "the receipt is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var req receiptRequest
	if err := dec.Decode(&req); err != nil {
		return Receipt{}, badRequest("bad_request", "", "the receipt is not valid JSON of the documented shape: %s", jsonErrorText(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return Receipt{}, badRequest("bad_request", "", "the body holds more than one JSON value")
	}
	if strings.HasPrefix(req.OperationID, "kassa-") || strings.HasPrefix(req.OperationID, "cash-") {
		return Receipt{}, badRequest("bad_operation_id", "operation_id",
			"operation ids starting with kassa- belong to order receipts, and cash- to cash operations")
	}
	rc := Receipt{OperationID: req.OperationID, Print: req.Print, CashboxID: req.CashboxID}
	var err error
	if rc.Email, rc.Phone, err = ValidateContacts(req.Email, req.Phone); err != nil {
		return Receipt{}, err
	}
	if req.Type != "" {
		if rc.Type, err = ParseReceiptType(req.Type); err != nil {
			return Receipt{}, unknownName("bad_type", "type", receiptTypeNames, req.Type)
		}
	}
	if req.Taxation != "" {
		if rc.Taxation, err = ParseTaxationSystem(req.Taxation); err != nil {
			return Receipt{}, unknownName("bad_taxation", "taxation", taxationNames, req.Taxation)
		}
	}
	if rc.Cash, err = ParseAmount("cash", cmp.Or(req.Cash, "0")); err != nil {
		return Receipt{}, err
	}
	if rc.Cashless, err = ParseAmount("cashless", cmp.Or(req.Cashless, "0")); err != nil {
		return Receipt{}, err
	}
	for i, it := range req.Items {
		field := fmt.Sprintf("items[%d]", i)
		qty, err := it.Qty.Int64()
		if err != nil {
			return Receipt{}, badRequest("bad_quantity", field+".qty", "quantity must be a whole number")
		}
		price, err := ParseAmount(field+".price", it.Price)
		if err != nil {
			return Receipt{}, err
		}
		if hasBidiControl(it.Name) {
			return Receipt{}, badRequest("bad_name", field+".name", "%s.name contains a bidi control character", field)
		}
		p := Position{Name: it.Name, Quantity: qty, Price: price}
		if it.VAT != "" {
			if p.VAT, err = ParseVAT(it.VAT); err != nil {
				return Receipt{}, unknownName("bad_vat", field+".vat", vatNames, it.VAT)
			}
		}
		rc.Positions = append(rc.Positions, p)
	}
	return rc, nil
}

// unknownName is the 400 for a name that is not in d, quoting it safely.
func unknownName[T ~int](code, field string, d directory[T], name string) error {
	names := slices.Sorted(maps.Keys(d.byName))
	return badRequest(code, field, "unknown %s %s (want one of %s)", d.what, quoteInput(name), strings.Join(names, ", "))
}

func (h *ReceiptHandler) shopName(r *http.Request) string {
	if h.Shop != "" {
		return h.Shop
	}
	return r.Host
}

// parseReceiptHandler sets up the handler from Caddyfile tokens.
func parseReceiptHandler(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	rh := new(ReceiptHandler)
	err := rh.UnmarshalCaddyfile(h.Dispenser)
	return rh, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens.
//
// Syntax:
//
//	kassa_receipt [<matcher>] {
//		issue             # POST issues receipts: protect the route!
//		shop  <name>      # seller's name on the receipt page
//	}
func (h *ReceiptHandler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next()
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "issue":
			if h.Issue {
				err = d.Err("issue given twice")
			} else if d.NextArg() {
				err = d.ArgErr()
			}
			h.Issue = true
		case "shop":
			err = parseOneArg(d, &h.Shop)
		default:
			err = d.Errf("unrecognized subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ReceiptHandler)(nil)
	_ caddyhttp.MiddlewareHandler = (*ReceiptHandler)(nil)
	_ caddyfile.Unmarshaler       = (*ReceiptHandler)(nil)
)
