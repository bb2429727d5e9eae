package sandbox

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// controlRoutes lists the methods of every control route.
var controlRoutes = map[string][]string{
	"state":    {http.MethodGet},
	"calls":    {http.MethodGet, http.MethodDelete},
	"faults":   {http.MethodGet, http.MethodPost, http.MethodDelete},
	"pay":      {http.MethodPost},
	"invoice":  {http.MethodPost},
	"payoff":   {http.MethodPost},
	"callback": {http.MethodPost},
	"settings": {http.MethodGet, http.MethodPost},
	"reset":    {http.MethodPost},
}

// controlError answers a control request that failed.
func controlError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]string{"error": fmt.Sprintf(format, args...)})
}

// serveControl answers /control/{route}.
func (h *Handler) serveControl(w http.ResponseWriter, r *http.Request, route string) {
	methods, ok := controlRoutes[route]
	if !ok {
		controlError(w, http.StatusNotFound, "unknown control route /control/%s", route)
		return
	}
	if !slices.Contains(methods, r.Method) {
		w.Header().Set("Allow", strings.Join(methods, ", "))
		controlError(w, http.StatusMethodNotAllowed, "method %s not allowed on /control/%s", r.Method, route)
		return
	}
	if r.Method != http.MethodGet && refuseCrossSite(w, r) {
		return
	}
	switch route + " " + r.Method {
	case "state GET":
		writeJSON(w, http.StatusOK, h.st.view())
	case "calls GET":
		h.controlCalls(w, r)
	case "calls DELETE":
		writeJSON(w, http.StatusOK, map[string]int{"cleared": h.st.clearCalls()})
	case "faults GET":
		writeJSON(w, http.StatusOK, map[string][]faultView{"faults": h.st.listFaults()})
	case "faults POST":
		var f Fault
		if err := decodeControl(r, &f); err != nil {
			controlError(w, http.StatusBadRequest, "%v", err)
			return
		}
		f, err := h.st.addFault(f)
		if err != nil {
			controlError(w, http.StatusBadRequest, "%v", err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]faultView{"fault": f.view()})
	case "faults DELETE":
		writeJSON(w, http.StatusOK, map[string]int{"cleared": h.st.clearFaults()})
	case "pay POST":
		h.controlPay(w, r)
	case "invoice POST":
		h.controlInvoice(w, r)
	case "payoff POST":
		h.controlPayoff(w, r)
	case "callback POST":
		h.controlCallback(w, r)
	case "settings GET":
		writeJSON(w, http.StatusOK, h.st.currentSettings())
	case "settings POST":
		h.controlSettings(w, r)
	case "reset POST":
		h.st.reset()
		writeJSON(w, http.StatusOK, map[string]bool{"reset": true})
	}
}

// refuseCrossSite answers 403 a control request that changes state from
// another site's page (a foreign Origin, or Sec-Fetch-Site: cross-site),
// and 415 a POST that is not application/json: only a JSON content type
// makes a browser ask a CORS preflight before it sends anything. It
// reports whether it answered.
func refuseCrossSite(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if u, err := url.Parse(origin); r.Header.Get("Sec-Fetch-Site") == "cross-site" ||
		origin != "" && (err != nil || !strings.EqualFold(u.Host, r.Host)) {
		controlError(w, http.StatusForbidden, "control requests from another site's pages are refused")
		return true
	}
	if mediaType, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); r.Method == http.MethodPost && mediaType != "application/json" {
		controlError(w, http.StatusUnsupportedMediaType, "send control requests as application/json (an empty body is fine for reset)")
		return true
	}
	return false
}

func (h *Handler) controlCalls(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for k := range q {
		if k != "api" && k != "op" {
			controlError(w, http.StatusBadRequest, "unknown query parameter %q (want api, op)", k)
			return
		}
	}
	api := q.Get("api")
	if _, ok := apiOps[api]; api != "" && !ok {
		controlError(w, http.StatusBadRequest, "unknown api %q (want crystalpay, pegas or smartcashier)", api)
		return
	}
	writeJSON(w, http.StatusOK, map[string][]Call{"calls": h.st.calls(api, q.Get("op"))})
}

// payRequest is the body of POST /control/pay.
type payRequest struct {
	API     string          `json:"api"`
	ID      json.RawMessage `json:"id"`
	OrderID string          `json:"order_id"`
}

func (h *Handler) controlPay(w http.ResponseWriter, r *http.Request) {
	var req payRequest
	if err := decodeControl(r, &req); err != nil {
		controlError(w, http.StatusBadRequest, "%v", err)
		return
	}
	id, err := rawID(req.ID)
	if err != nil {
		controlError(w, http.StatusBadRequest, "%v", err)
		return
	}
	var invoice any
	switch req.API {
	case APICrystalPay:
		if id == "" || req.OrderID != "" {
			controlError(w, http.StatusBadRequest, "crystalpay: give the invoice id, and only it")
			return
		}
		inv, paidNow, perr := h.st.payCrystalPay(id)
		if err = perr; err == nil {
			invoice = inv.view()
			h.logPaid(req.API, id, inv.amount.String(), paidNow)
		} else if errors.Is(err, errUnknownInvoice) {
			inv, paidNow, perr := h.st.payV3(id)
			if err = perr; err == nil {
				invoice = inv.info()
				h.logPaid(req.API, id, inv.amount.String(), paidNow)
			}
		}
	case APIPegas:
		if (id == "") == (req.OrderID == "") {
			controlError(w, http.StatusBadRequest, "pegas: give either id or order_id")
			return
		}
		var n int64
		if req.OrderID != "" {
			var ok bool
			if n, ok = h.st.pegasIDByOrder(req.OrderID); !ok {
				err = errUnknownInvoice
			}
		} else if n, err = strconv.ParseInt(id, 10, 64); err != nil {
			controlError(w, http.StatusBadRequest, "pegas: id must be an integer")
			return
		}
		if err == nil {
			inv, paidNow, perr := h.st.payPegas(n)
			if err = perr; err == nil {
				invoice = inv.view()
				h.logPaid(req.API, strconv.FormatInt(n, 10), inv.amount.String(), paidNow)
			}
		}
	default:
		controlError(w, http.StatusBadRequest, "api must be crystalpay or pegas")
		return
	}
	switch {
	case errors.Is(err, errUnknownInvoice):
		controlError(w, http.StatusNotFound, "unknown %s invoice", req.API)
	case errors.Is(err, errInvoiceCancelled), errors.Is(err, errInvoiceExpired), errors.Is(err, errInvoiceClosed):
		controlError(w, http.StatusConflict, "the %s invoice cannot be paid: %v", req.API, err)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"invoice": invoice})
	}
}

// invoiceRequest is the body of POST /control/invoice.
type invoiceRequest struct {
	ID     string `json:"id"`
	State  string `json:"state"`
	Amount string `json:"amount"`
}

// controlInvoice puts a CrystalPAY v3 invoice into processing, wrongamount
// (paid "amount", not the invoice's) or failed.
func (h *Handler) controlInvoice(w http.ResponseWriter, r *http.Request) {
	var req invoiceRequest
	if err := decodeControl(r, &req); err != nil {
		controlError(w, http.StatusBadRequest, "%v", err)
		return
	}
	received, ok := parseMoney(req.Amount)
	switch {
	case req.ID == "":
		controlError(w, http.StatusBadRequest, "give the id of a crystalpay v3 invoice")
		return
	case req.State != v3Processing && req.State != v3WrongAmount && req.State != v3Failed:
		controlError(w, http.StatusBadRequest, "state must be processing, wrongamount or failed")
		return
	case (req.State == v3WrongAmount) != (req.Amount != ""):
		controlError(w, http.StatusBadRequest, "give amount, the sum paid, with wrongamount and only with it")
		return
	case req.Amount != "" && (!ok || !received.IsPositive()):
		controlError(w, http.StatusBadRequest, "amount must be a positive sum in rubles, at most 2 decimals")
		return
	}
	info, err := h.st.setV3InvoiceState(req.ID, req.State, received)
	switch {
	case errors.Is(err, errUnknownInvoice):
		controlError(w, http.StatusNotFound, "unknown crystalpay v3 invoice")
	case errors.Is(err, errInvoiceClosed):
		controlError(w, http.StatusConflict, "the invoice is %s", info.State)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"invoice": info})
	}
}

// payoffRequest is the body of POST /control/payoff.
type payoffRequest struct {
	ID    string `json:"id"`
	State string `json:"state"`
}

// controlPayoff ends a processing CrystalPAY v3 payoff now, as payed or
// failed.
func (h *Handler) controlPayoff(w http.ResponseWriter, r *http.Request) {
	var req payoffRequest
	if err := decodeControl(r, &req); err != nil {
		controlError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if req.ID == "" || (req.State != payoffPayed && req.State != payoffFailed) {
		controlError(w, http.StatusBadRequest, "give the id of a crystalpay v3 payoff and state payed or failed")
		return
	}
	info, err := h.st.finishV3Payoff(req.ID, req.State)
	switch {
	case errors.Is(err, errUnknownPayoff):
		controlError(w, http.StatusNotFound, "unknown crystalpay v3 payoff")
	case errors.Is(err, errPayoffState):
		controlError(w, http.StatusConflict, "the payoff is %s, not processing", info.State)
	default:
		writeJSON(w, http.StatusOK, map[string]any{"payoff": info})
	}
}

// callbackRequest is the body of POST /control/callback.
type callbackRequest struct {
	ID string `json:"id"`
}

// controlCallback sends the callback of a CrystalPAY v3 invoice or payoff
// now, with its current state.
func (h *Handler) controlCallback(w http.ResponseWriter, r *http.Request) {
	var req callbackRequest
	if err := decodeControl(r, &req); err != nil {
		controlError(w, http.StatusBadRequest, "%v", err)
		return
	}
	target, err := h.st.queueCallback(req.ID)
	switch {
	case errors.Is(err, errUnknownInvoice):
		controlError(w, http.StatusNotFound, "unknown crystalpay v3 invoice or payoff")
	case errors.Is(err, errNoCallbackURL):
		controlError(w, http.StatusConflict, "the invoice or payoff has no callback_url")
	default:
		writeJSON(w, http.StatusOK, map[string]any{"callback": map[string]string{"id": req.ID, "url": withoutQuery(target)}})
	}
}

// rawID reads an id given as a JSON string or number.
func rawID(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", errors.New("id must be a string or a number")
	}
	return n.String(), nil
}

// settingsView is the JSON of the run-time settings.
type settingsView struct {
	Latency           string `json:"latency"`
	ReceiptDelay      string `json:"receipt_delay"`
	CrystalPayWallets bool   `json:"crystalpay_wallets"`
}

func viewSettings(s settings) settingsView {
	return settingsView{Latency: s.Latency.String(), ReceiptDelay: s.ReceiptDelay.String(), CrystalPayWallets: s.CrystalPayWallets}
}

func (s *state) currentSettings() settingsView {
	s.mu.Lock()
	defer s.mu.Unlock()
	return viewSettings(s.settings)
}

// settingsRequest is the body of POST /control/settings.
type settingsRequest struct {
	Latency           *caddy.Duration `json:"latency"`
	ReceiptDelay      *caddy.Duration `json:"receipt_delay"`
	CrystalPayWallets *bool           `json:"crystalpay_wallets"`
}

func (h *Handler) controlSettings(w http.ResponseWriter, r *http.Request) {
	var req settingsRequest
	if err := decodeControl(r, &req); err != nil {
		controlError(w, http.StatusBadRequest, "%v", err)
		return
	}
	if (req.Latency != nil && *req.Latency < 0) || (req.ReceiptDelay != nil && *req.ReceiptDelay < 0) {
		controlError(w, http.StatusBadRequest, "durations must not be negative")
		return
	}
	writeJSON(w, http.StatusOK, h.st.changeSettings(req))
}

// changeSettings applies the settings given; the others are kept.
func (s *state) changeSettings(req settingsRequest) settingsView {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Operations already due under the old delay are processed under it.
	s.processLocked()
	if req.Latency != nil {
		s.settings.Latency = time.Duration(*req.Latency)
	}
	if req.ReceiptDelay != nil {
		s.settings.ReceiptDelay = time.Duration(*req.ReceiptDelay)
	}
	if req.CrystalPayWallets != nil {
		s.settings.CrystalPayWallets = *req.CrystalPayWallets
	}
	return viewSettings(s.settings)
}

// decodeControl decodes a control request body: one JSON object, no
// unknown fields.
func decodeControl(r *http.Request, v any) error {
	body, err := readBody(r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return errors.New("a JSON object body is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("bad JSON body: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("bad JSON body: unexpected data after the object")
	}
	return nil
}
